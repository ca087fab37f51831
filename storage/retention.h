/*
 * retention — keeps the master log inside storage.max_bytes by removing the
 * oldest events in whole block ranges, beside the master log it changes.
 *
 * DESIGN. Two limits meet here. max_bytes bounds the pages in use (the
 * file's pages minus its freelist: removed rows leave free pages that later
 * commits reuse). The hard ceiling (mlog_opts.max_db_bytes, SQLite's
 * max_page_count) makes a commit that needs more pages than the file may
 * still grow by fail with EL_FULL. A group commit can be megabytes (a backlog
 * drained at once), more than ceiling - max_bytes, so "used <= max_bytes"
 * does not mean the next commit fits: after such a failure (no_room) a tick
 * frees room even under max_bytes, and the core retries smaller
 * transactions, so a commit that fits always exists (issue 11: the old
 * code livelocked there).
 *
 * What may go: events up to `removable` (the caller's: covered by the batch
 * views and, with sync, acknowledged upstream), in whole blocks; with
 * drop_oldest anything once nothing is removable. A tick removes about what
 * brings the used pages an eighth under max_bytes (estimated from the
 * average size of an event), at most RETENTION_MAX_EVENTS.
 *
 * Threading: the thread that owns the struct mlog (the core).
 */
#ifndef EL_RETENTION_H
#define EL_RETENTION_H

#include <stdbool.h>
#include <stdint.h>

#include "el_status.h"
#include "mlog.h"

#define RETENTION_MAX_EVENTS ((int64_t)64 << MLOG_BLOCK_SHIFT)

struct retention_opts {
    int64_t max_bytes; /* 0: no bound, retention_tick does nothing */
    bool drop_oldest;  /* else stop_ingest */
};

enum retention_outcome {
    RETENTION_IDLE = 0, /* under the bound: nothing to do */
    RETENTION_TRIMMED,  /* [first, upto] removed */
    RETENTION_BLOCKED,  /* over the bound, nothing may be removed (stop_ingest holds) */
    RETENTION_FAILED    /* mlog_trim failed (st) */
};

struct retention_result {
    enum retention_outcome outcome;
    int64_t used_bytes;  /* after the tick */
    int64_t first, upto; /* RETENTION_TRIMMED */
    bool over;           /* used pages were over max_bytes (else: room for a commit) */
    bool views_behind;   /* nothing removable yet for lack of view coverage: ask a run */
    el_status st;        /* RETENTION_FAILED */
};

/* One tick: removable is the highest sequence that may go without losing
 * anything; no_room says a commit failed for lack of room since the last
 * trim. The caller commits its open transaction first (mlog_trim needs none
 * open). */
void retention_tick(struct mlog *log, const struct retention_opts *opts, int64_t removable,
                    bool no_room, struct retention_result *out);

#endif
