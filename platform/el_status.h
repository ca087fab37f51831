/*
 * el_status — the one project-wide status code.
 *
 * Every fallible function returns an el_status (or a pointer that is NULL on
 * failure with the status in an out-parameter). EL_AGAIN ("try again later")
 * is distinct from failure: retry loops (sync, ENOSPC back-pressure) depend on
 * it. Ignoring a status is a compile error: the functions that return it are
 * marked EL_MUST_CHECK and warnings are errors.
 *
 * Threading: pure, any thread.
 */
#ifndef EL_STATUS_H
#define EL_STATUS_H

#define EL_MUST_CHECK __attribute__((warn_unused_result))

typedef enum el_status {
    EL_OK = 0,
    EL_AGAIN,    /* transient: retry later (queue full, disk full, busy) */
    EL_INVAL,    /* bad argument or bad input */
    EL_NOMEM,    /* allocation failed or a fixed bound was reached */
    EL_IO,       /* an OS call failed (errno logged where it was read) */
    EL_FULL,     /* no space left (disk, quota, ring) */
    EL_CORRUPT,  /* on-disk data failed its check */
    EL_NOTFOUND, /* no such item */
    EL_DB,       /* SQLite reported an error */
    EL_MQTT,     /* the MQTT library reported an error */
    EL_TIMEOUT   /* a deadline passed (or the work was cancelled) before it finished */
} el_status;

/* Static, never NULL. */
const char *el_status_str(el_status st);

#endif
