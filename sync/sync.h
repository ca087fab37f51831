/*
 * sync — store-and-forward of the master log upstream over HTTPS (docs/SPEC.md §8,
 * docs/DESIGN.md §7).
 *
 * The sync worker is one thread with its own read-only master-log reader
 * (storage/mlog_read.h) on <storage.dir>/master.db, its own SQLite
 * connection for the two tables of its state (sync_store.h) and its own
 * curl handle. It ships events with seq > cursor in sequence order, in
 * deterministic batches cut by sequence range (batch_events / batch_bytes),
 * encoded (ndjson | influx), compressed (none | gzip | zstd), and advances
 * the cursor in SQLite only after a 2xx. After an outage (live_window_s) a
 * live lane ships the recent events beside the backlog, batch by batch, and
 * max_kbps caps the bytes on the wire. See sync.c for the design and
 * sync_store.h for the on-disk tables it owns.
 *
 * Options: struct sync_opts below, sync's own; the daemon maps its
 * configuration onto it (sync knows nothing of the daemon's config).
 *
 * Threading: sync_new/start/stop/free on the core thread; sync_kick,
 * sync_retry_parked and sync_get_status from any thread.
 *
 * Modules (one owner each): sync_batch (cutting by seq range), sync_encode
 * (ndjson, influx), sync_compress (gzip, zstd), sync_http (libcurl),
 * sync_policy (classification, backoff, Retry-After), sync_store (the
 * cursor and parked-batch tables), sync.c (the worker).
 */
#ifndef EL_SYNC_H
#define EL_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "el_status.h"
#include "sync_compress.h" /* enum sync_compression */
#include "sync_encode.h"   /* enum sync_format, SYNC_DEVICE_ID_MAX */
#include "sync_http.h"     /* SYNC_URL_MAX, SYNC_PATH_MAX */

struct sync;

/* What the worker is to do. Strings are borrowed for the call to sync_new
 * only: it copies what it keeps (libcurl copies the TLS file names), so the
 * caller may reuse them afterwards. NULL and "" both mean "not set". A
 * string at or over its limit makes sync_new fail with EL_INVAL (never
 * silently cut). */
struct sync_opts {
    const char *url; /* upstream, http or https, < SYNC_URL_MAX bytes; unset: sync off */
    const char *dir; /* the storage directory holding master.db, < SYNC_PATH_MAX bytes */
    enum sync_format format;
    enum sync_compression compression;
    int64_t batch_events;             /* events per batch at most (below 1: 1) */
    int64_t batch_bytes;              /* encoded bytes per batch at most (below 1: 1) */
    const char *ca_file;              /* CA bundle; unset: the system's */
    const char *cert_file, *key_file; /* client certificate and key (mutual TLS) */
    const char *token_file;           /* bearer token, < SYNC_PATH_MAX bytes; unset: none */
    const char *device_id;            /* < SYNC_DEVICE_ID_MAX bytes; unset: the host name */
    bool insecure;                    /* no TLS certificate or host-name verification */
    bool include_seq;                 /* influx: a seq field per point (sync_encode.h) */
    int timeout_s;                    /* one request, whole */
    int64_t live_window_s; /* the live lane's window (sync.c); 0: one lane, oldest first */
    int64_t max_kbps;      /* bytes on the wire, kbit/s (token bucket); 0: unlimited */
};

/* A consistent copy of the worker's state for the status document. */
struct sync_status {
    bool enabled;
    int64_t acked_seq;           /* every event with seq <= acked_seq was acknowledged by the
                                    upstream (retention may remove them); stays below the first
                                    parked batch until it is delivered */
    int64_t backlog_events;      /* committed events not yet acknowledged */
    int64_t backlog_bytes;       /* estimate */
    int64_t oldest_unsent_age_s; /* receive age of the oldest unacknowledged event, -1 none */
    double rate_per_s;           /* events acknowledged per second, recent */
    int64_t last_success_ms;     /* wall clock of the last 2xx, 0 = never */
    char last_error[256];        /* "" = none */
    int64_t parked_batches;
    int64_t batches_sent, retries;
    /* additions (not yet in the status document) */
    int64_t cursor_seq;    /* the shipping cursor: seq <= cursor_seq acknowledged or parked */
    int64_t parked_events; /* events inside parked batches (part of backlog_events) */
    int64_t events_sent;   /* events acknowledged by the upstream since start */
    int64_t wire_bytes;    /* request body bytes of acknowledged batches since start */
    /* lanes and the bandwidth cap (sync.c) */
    int64_t live_from_seq;       /* the live lane starts here; 0 = no live lane */
    int64_t lane_live_events;    /* committed events the live lane has not shipped */
    int64_t lane_backlog_events; /* events the backlog lane has not shipped (all unshipped
                                    events when there is no live lane) */
    int64_t sent_bytes;          /* bytes of every request since start, retries included
                                    (body + SYNC_WIRE_HEADER_BYTES each) */
    int64_t rate_limited_ms;     /* time requests waited for sync.max_kbps since start */
};

/* Opens the worker's state (its tables in master.db, which must exist; a
 * master-log reader; the encoder, compressor and curl handle) without
 * starting it. Returns EL_OK with *out == NULL when sync is disabled (no
 * url). On success *out is the caller's (sync_free). EL_INVAL for a bad
 * option or token file, EL_NOTFOUND without master.db, EL_DB, EL_NOMEM. */
EL_MUST_CHECK el_status sync_new(const struct sync_opts *o, struct sync **out);
EL_MUST_CHECK el_status sync_start(struct sync *s);
/* Tells the worker that events up to committed_seq are in the master log
 * (cheap; called by the core after each group commit). */
void sync_notify_committed(struct sync *s, int64_t committed_seq);
/* Ship now (ends any idle wait; backoff of a failing upstream still applies). */
void sync_kick(struct sync *s);
/* Moves parked batches back into the queue to be retried. */
void sync_retry_parked(struct sync *s);
void sync_get_status(struct sync *s, struct sync_status *out);
/* Stops the worker (bounded by the HTTP timeouts) and frees; NULL is fine. */
void sync_free(struct sync *s);

#endif
