/*
 * serve — the serving layer's answers: range, series and last queries
 * (query.h) answered by merging the speed layer (speed.h), the batch views
 * (views.h) and the master log (mlog_read.h), exactly (docs/SPEC.md §7). One struct
 * serve per serving thread; it never touches the core's state except through
 * the speed layer's lock-free readers.
 *
 * DESIGN — one range query (one series, or every series a `match` filter
 * selects), [from, to) clipped to [SPEED_MIN_TS, SPEED_MAX_TS):
 *   1. The speed layer first, series by series (speed_read_range): per series
 *      a consistent copy that is exact for its events with seq <= c_s (the
 *      writer's cursor when it was read), and the span of event time its
 *      ring serves. For the events lane that span starts on a whole minute
 *      when views can be used, so older time lines up with them.
 *   2. Then the batch views' snapshot (watermark W) and the master log's
 *      snapshot; the answer's seq is N = max(c_s, W), which that snapshot
 *      holds. Every event with seq <= N is counted exactly once:
 *        - inside a series' ring span: the ring (seq <= c_s), plus the log's
 *          tail (c_s < seq <= N);
 *        - older than the ring, where a view resolution divides the step:
 *          the views (seq <= W) — the coarsest resolution that fits, finer
 *          ones at the edges — plus log events with seq > W there (late
 *          data); whatever no view row can cover (less than a minute at
 *          `from`) and everything when no view fits: the log;
 *        - provisional readings (received while the clock was not
 *          synchronised; speed.h lanes): the provisional ring, then the
 *          waiting readings in the log by receive time.
 *      Log reads go in one pass over disjoint (time, sequence) pieces for
 *      all series of the query, plus one rowid range for the tail, each row
 *      routed to its series and bucket by the rules above.
 *   3. Quantiles: exact nearest-rank over raw values (the raw ring where it
 *      holds every event of a bucket's ring span, else the log) where no view
 *      feeds the bucket; where one does, its sketch merged with the bucket's
 *      other raw values (relative error <= AGG_SKETCH_ALPHA).
 *   Retention: a view resolution dropped for part of the range (views.h
 *   RETENTION) is never used there: when the ladder would need it the query
 *   is refused ("not_retained"); a series whose ring span starts below such
 *   a horizon (silent since) is read again with its span on the coarsest
 *   resolution dividing the step, so its edge needs no dropped bucket.
 *   If anchoring moved readings between the lanes meanwhile (speed epoch),
 *   the query starts again.
 *   4. The edge cache: the log piece of a one-series range at `from`, when
 *      shorter than a minute (the partial minute, which the log's block
 *      summaries cannot tell from every other series' rows of that minute),
 *      is kept as read, in EDGE_SLOTS entries of EDGE_ROWS rows (serve.c);
 *      the next request whose piece lies inside one replays its rows and
 *      reads only the log after it. Retention and anchoring drop the entries
 *      (the only ways the log changes below a seq already read).
 *
 * BOUNDS (each refusal names its bound; serve_opts, config [query]):
 * deadline_ms of wall time (checked between series and inside SQLite), max_rows
 * master-log rows examined, max_cells = series x buckets, max_values raw values
 * for quantiles, max_sketch_bins, max_match series per filter; the reply must
 * fit the caller's buffer. Memory is allocated once at serve_new: about
 * 120 B per cell, 16 B per value, 8 B per series slot and 8 B per sketch bin,
 * plus the edge cache's 192 KiB (virtual until used; serve_working_set_bytes
 * says how much).
 *
 * Threading: a struct serve belongs to one serving thread.
 */
#ifndef EL_SERVE_H
#define EL_SERVE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "el_status.h"
#include "plat_jsonw.h"
#include "query.h"
#include "speed.h"

struct serve_opts {
    const char *dir;          /* storage.dir (master.db, views.db) */
    uint32_t max_series;      /* speed.max_series */
    int deadline_ms;          /* per query, wall time */
    uint64_t max_rows;        /* master-log rows examined per query */
    uint32_t max_cells;       /* series x buckets per query */
    uint32_t max_values;      /* raw values held for quantiles */
    uint32_t max_sketch_bins; /* quantile sketch bins held */
    uint32_t max_match;       /* series per match */
};

struct serve;

/* sp is borrowed (read only); stop, when set by another thread, ends the
 * query being answered (EL_TIMEOUT) — the daemon's shutdown. */
EL_MUST_CHECK el_status serve_new(const struct serve_opts *opts, const struct speed *sp,
                                  const atomic_int *stop, struct serve **out);
void serve_free(struct serve *sv);
/* A reload (any thread): the limits that size no buffer — deadline_ms,
 * max_rows, max_sketch_bins (a budget, not an allocation) — from o; the
 * other members are ignored (they size serve_new's buffers: a restart).
 * Atomics: each query takes the values current when it starts. */
void serve_set_limits(struct serve *sv, const struct serve_opts *o);
/* The serving thread, between queries (with nothing answering on sv): if
 * views.db could not be opened (at serve_new, a full disk or a file in the
 * way), tries it again, backing off from 1 s to 60 s, so the answers go back
 * to the views once the batch worker can write them. Exact either way;
 * without views only slower. Not the quick lane's job: it must not wait. */
void serve_retry_views(struct serve *sv);
/* Requests whose edge piece came from the edge cache (tests, benchmarks). */
uint64_t serve_edge_hits(const struct serve *sv);
/* Bytes of working memory allocated at serve_new (the per-query bound). */
size_t serve_working_set_bytes(const struct serve *sv);

/* Writes the JSON answer to q (op range, series or last) or an error reply
 * into buf; returns its length (0 only if cap is absurdly small). *code is
 * NULL for an answer, else the error code ("too_large", "timeout",
 * "not_found", "bad_request", "busy", "internal"). arrived_mono_ms: when the
 * request arrived (CLOCK_MONOTONIC ms), 0 for now. A request that already
 * waited deadline_ms behind other requests is answered "busy" at once, not
 * late; one that waited less gets its whole deadline from now (work begun
 * is not thrown away for time it did not use), so a reply comes within two
 * deadlines of the request. */
size_t serve_answer(struct serve *sv, const struct query *q, int64_t arrived_mono_ms, char *buf,
                    size_t cap, const char **code);
/* As serve_answer, for the quick lane (requests.h): at most quick_ms of wall
 * time and quick_rows master-log rows (each the smaller of it and the live
 * limit). *declined: it needs more, or did not fit for another reason -- buf
 * holds nothing to send; answer it with serve_answer on the serving thread. */
size_t serve_answer_quick(struct serve *sv, const struct query *q, int quick_ms,
                          uint64_t quick_rows, char *buf, size_t cap, const char **code,
                          bool *declined);
/* Opens a reply object: {"ok":<ok>[,"id":<id_json, echoed verbatim>] (the
 * caller adds its members and closes it). */
void serve_reply_head(struct jw *w, bool ok, const char *id_json);
/* An error reply {"ok":false,"error":{"code":..,"message":..}[,"id":..]}. */
size_t serve_error(const char *code, const char *message, const char *id_json, char *buf,
                   size_t cap);

#endif
