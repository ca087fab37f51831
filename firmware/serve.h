/*
 * serve — the serving layer: answers parsed queries (query.h) by merging the
 * speed layer's ring buckets with events read from the master log, exactly
 * (SPEC §7).
 *
 * DESIGN. For a range query on one series with step S and ring bucket B:
 *   - answer buckets are aligned to multiples of S since the epoch; the first
 *     and last are clipped to [from, to);
 *   - the ring serves R = [max(ceil_B(from), window_start), floor_B(to)) when
 *     S is a multiple of B (each ring bucket then falls in exactly one answer
 *     bucket); the rest of [from, to) — edges finer than B, times older than
 *     the ring's window (backfills, late data) — is read from the master log
 *     through its block-range summary. Each time span has exactly one source,
 *     so nothing is counted twice or missed;
 *   - older than the ring, the batch views (views.h) serve the middle of the
 *     span aligned to the coarsest view resolution that divides S — exactly
 *     the events with seq <= the views' watermark W — together with the
 *     events of that middle with seq > W read from the master log's tail
 *     (late events the views do not cover yet); the unaligned edges are raw
 *     master-log reads. Views and W are read in one snapshot;
 *   - quantiles are exact nearest-rank over the raw values where no view
 *     feeds the bucket: from the speed layer's raw-sample ring where it
 *     provably holds every event of the span (its count equals the ring
 *     buckets' count), else from the master log; where a view feeds the
 *     bucket, from the view sketches merged with the bucket's other raw
 *     values (relative error <= AGG_SKETCH_ALPHA).
 * Answers carry "seq": the core commits before answering, so an answer is
 * exact for exactly the events with sequence <= seq. "sources" counts answer
 * buckets fed by each source.
 *
 * Bounds: answers are written into a caller buffer (too large -> error
 * reply), at most SERVE_MAX_MATCH series per match, SERVE_MAX_ROWS master-log
 * rows and SERVE_MAX_VALUES raw values per query.
 *
 * Threading: core thread (it owns the master log connection and the speed layer).
 */
#ifndef EL_SERVE_H
#define EL_SERVE_H

#include <stddef.h>
#include <stdint.h>

#include "el_status.h"
#include "mlog.h"
#include "query.h"
#include "speed.h"
#include "views.h"

#define SERVE_MAX_MATCH 1000
#define SERVE_MAX_ROWS 5000000
#define SERVE_MAX_VALUES 1000000

struct serve;

/* views may be NULL (no batch layer); all three are borrowed. */
EL_MUST_CHECK el_status serve_new(struct mlog *log, struct speed *sp, struct views *views,
                                  struct serve **out);
void serve_free(struct serve *sv);

/* Writes the JSON answer to q (or an error reply) into buf; returns its
 * length (0 only if cap is absurdly small). status_json is the current
 * status document (for op status). seq is the committed sequence. */
size_t serve_answer(struct serve *sv, const struct query *q, int64_t seq, const char *status_json,
                    char *buf, size_t cap);
/* Retention removed raw events below oldest_seq (0: none removed): range
 * answers then say "raw_from_seq", since their raw-read parts (edges finer
 * than the views) cannot include the removed events. */
void serve_set_log_oldest(struct serve *sv, int64_t oldest_seq);
/* An error reply {"ok":false,"error":{"code":..,"message":..}[,"id":..]}. */
size_t serve_error(const char *code, const char *message, const char *id_json, char *buf,
                   size_t cap);

#endif
