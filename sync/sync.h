/*
 * sync — store-and-forward of the master log upstream over HTTPS (SPEC §8,
 * DESIGN §7).
 *
 * The sync worker is one thread with its own SQLite connection to
 * <storage.dir>/master.db and its own curl handle. It ships events with
 * seq > cursor in sequence order, in deterministic batches cut by sequence
 * range (sync.batch_events / sync.batch_bytes), encoded (ndjson | influx),
 * compressed (none | gzip | zstd), and advances the cursor in SQLite only
 * after a 2xx. See sync.c for the on-disk tables it owns.
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

#include "config.h"
#include "el_status.h"

struct sync;

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
};

/* Returns EL_OK with *out == NULL when sync is disabled (sync.url empty). */
EL_MUST_CHECK el_status sync_new(const struct el_config *cfg, struct sync **out);
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
