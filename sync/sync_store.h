/*
 * sync_store — the sync worker's own SQLite connection to
 * <storage.dir>/master.db and the two tables it owns there: its state, not
 * the master log's. Only these two tables are touched here; the worker
 * reads the master log's tables (events, series) through a master-log
 * reader (mlog_read.h), never through this connection.
 *
 * FILE FORMAT (created if missing, in master.db next to the master log):
 *
 *   sync_cursor(id INTEGER PRIMARY KEY CHECK(id = 1),
 *               acked_seq INTEGER NOT NULL,      every event with seq <= acked_seq
 *                                                was acknowledged (2xx) or is parked
 *               inflight_first INTEGER,          the batch being sent, NULL = none:
 *               inflight_last INTEGER,           written before its first attempt,
 *                                                so a retry after a crash resends
 *                                                exactly the same range (of either
 *                                                lane: it is the live lane's when
 *                                                inflight_first >= live_from)
 *               live_from INTEGER,               the live lane (sync.c), NULL = none:
 *               live_to INTEGER)                 every event with live_from <= seq
 *                                                <= live_to was acknowledged or
 *                                                parked; the backlog lane ships
 *                                                (acked_seq, live_from) and, when it
 *                                                gets there, acked_seq := live_to
 *                                                and the live lane ends (merge)
 *   sync_parked(first_seq INTEGER PRIMARY KEY,   a batch the upstream refused with
 *               last_seq INTEGER NOT NULL,       a permanent 4xx: [first_seq, last_seq]
 *               events INTEGER NOT NULL,         holds this many events
 *               http_status INTEGER NOT NULL,
 *               response TEXT NOT NULL,          the start of the response body
 *               parked_ms INTEGER NOT NULL,      wall clock of the last refusal
 *               attempts INTEGER NOT NULL)       refusals so far
 *
 * A file without live_from/live_to (written before the live lane) gets the
 * two columns, NULL, at open.
 *
 * Retention (storage.max_bytes) may delete events with seq <= acked_seq,
 * except those inside a sync_parked range: they are not shipped yet.
 *
 * Every state change is one short BEGIN IMMEDIATE transaction, so the cursor
 * moves in the same transaction as the parked-batch bookkeeping. The
 * connection runs with synchronous=NORMAL: in WAL mode its commits become
 * durable with the master log's next fdatasync'ed group commit; losing the
 * last cursor step to a power cut only resends an acknowledged batch (with
 * the same range when inflight_* survived too), never loses one. The two
 * steps that decide how later batches are cut — the live lane's start and
 * the merge — are made durable at their own commit (synchronous=FULL for
 * that one statement): losing them would let the next run cut the same
 * events under other ranges, so other Idempotency-Keys a receiver could not
 * match with what it already has.
 * A busy handler polling every 0.5 ms (up to SYNC_STORE_BUSY_TIMEOUT_MS)
 * covers the core's group commits holding the write lock: it finds the short
 * gaps between them, where SQLite's default backoff sleeps through them.
 *
 * Threading: one owner thread at a time (created on the core thread,
 * then used only by the sync worker).
 */
#ifndef EL_SYNC_STORE_H
#define EL_SYNC_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "el_status.h"

#define SYNC_STORE_BUSY_TIMEOUT_MS 10000
#define SYNC_STORE_RESPONSE_MAX 200

struct sync_store;

struct sync_store_state {
    int64_t acked_seq;
    int64_t inflight_first, inflight_last; /* 0 = none */
    int64_t parked_batches, parked_events;
    int64_t parked_min_first;   /* 0 = none */
    int64_t live_from, live_to; /* the live lane, live_from = 0: none */
};

struct sync_parked {
    int64_t first_seq, last_seq, events;
    long http_status;
};

/* Opens <dir>/master.db (which must exist), creates the tables if missing. */
EL_MUST_CHECK el_status sync_store_open(const char *dir, struct sync_store **out);
void sync_store_close(struct sync_store *st); /* NULL is fine */

EL_MUST_CHECK el_status sync_store_load(struct sync_store *st, struct sync_store_state *out);

/* Records the range about to be sent (first = last = 0 clears it). */
EL_MUST_CHECK el_status sync_store_set_inflight(struct sync_store *st, int64_t first, int64_t last);
/* After a 2xx: acked_seq = acked, no inflight batch. */
EL_MUST_CHECK el_status sync_store_ack(struct sync_store *st, int64_t acked);
/* Starts the live lane at seq from: live_from = from, live_to = from - 1;
 * durable when it returns EL_OK (synchronous=FULL). */
EL_MUST_CHECK el_status sync_store_live_start(struct sync_store *st, int64_t from);
/* After a 2xx of a live batch: live_to = live_to, no inflight batch. */
EL_MUST_CHECK el_status sync_store_live_ack(struct sync_store *st, int64_t live_to);
/* The backlog lane met the live lane: acked_seq = acked (the live lane's
 * live_to), live lane and inflight batch cleared, in one statement;
 * durable when it returns EL_OK (synchronous=FULL). */
EL_MUST_CHECK el_status sync_store_merge(struct sync_store *st, int64_t acked);
/* Parks [first, last] and, in the same transaction, sets acked_seq = acked
 * (live: live_to = acked) and clears the inflight batch. response is cut to
 * SYNC_STORE_RESPONSE_MAX. */
EL_MUST_CHECK el_status sync_store_park(struct sync_store *st, int64_t first, int64_t last,
                                        int64_t events, long http_status, const char *response,
                                        int64_t now_ms, int64_t acked, bool live);
/* A parked batch refused again: new status, response, time; attempts + 1. */
EL_MUST_CHECK el_status sync_store_repark(struct sync_store *st, int64_t first, long http_status,
                                          const char *response, int64_t now_ms);
/* A parked batch was delivered: forget it. */
EL_MUST_CHECK el_status sync_store_unpark(struct sync_store *st, int64_t first);
/* A parked batch split by a 413: [first, mid_last] stays, [second_first,
 * old last] becomes a parked batch of its own. */
EL_MUST_CHECK el_status sync_store_split_parked(struct sync_store *st, int64_t first,
                                                int64_t mid_last, int64_t first_events,
                                                int64_t second_first, int64_t second_events);
/* The parked batch with the smallest first_seq > after; EL_NOTFOUND if none. */
EL_MUST_CHECK el_status sync_store_next_parked(struct sync_store *st, int64_t after,
                                               struct sync_parked *out);
/* The most recently refused parked batch and the start of its response
 * (NUL-terminated in response[len]); EL_NOTFOUND if none. */
EL_MUST_CHECK el_status sync_store_latest_parked(struct sync_store *st, struct sync_parked *out,
                                                 char *response, size_t len);

#endif
