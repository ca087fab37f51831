/*
 * speed — the speed layer: real-time views in RAM (SPEC §5).
 *
 * DESIGN. Per series (dense ids 1..max_series, the master log's ids):
 *   - a ring of `slots` event-time buckets of `bucket_ms`, each a struct agg
 *     (count, sum, min, max, mean/m2, last). Bucket k of a series holds event
 *     times [start, start + bucket_ms) with start aligned to bucket_ms since
 *     the epoch; slot = (start / bucket_ms) % slots.
 *   - a ring of the newest `raw_samples` raw samples (ts, seq, value), used
 *     for exact quantiles and the "last" query.
 *   - totals: count of events, the newest event (by event time, then seq).
 * The ring's WINDOW is [newest_start - (slots-1)*bucket_ms, ...). Invariant:
 * every event of the series with event time inside the current window is in
 * the ring (the window only moves forward, and an event is put in the ring
 * iff its time is inside the window when it arrives). Events older than the
 * window (backfills, sensors flushing their buffers) are counted as
 * `out_of_window` and answered from the master log by the serving layer.
 *
 * All memory is allocated once by speed_new from the configuration and
 * reported by speed_memory_bytes; speed_add never allocates. calloc'ed
 * arrays are backed by the kernel only as series and slots are touched.
 *
 * Threading: owned by the core thread; no locks.
 */
#ifndef EL_SPEED_H
#define EL_SPEED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agg.h"
#include "el_status.h"

struct speed;

struct speed_raw {
    int64_t ts_ms;
    int64_t seq;
    double value;
};

struct speed_totals {
    uint64_t count;     /* events of the series (whole master log) */
    int64_t last_ts_ms; /* newest event time, INT64_MIN if none */
    int64_t last_seq;
    double last_value;
};

EL_MUST_CHECK el_status speed_new(uint32_t max_series, uint32_t slots, int64_t bucket_ms,
                                  uint32_t raw_samples, struct speed **out);
void speed_free(struct speed *sp);
size_t speed_memory_bytes(const struct speed *sp);
int64_t speed_bucket_ms(const struct speed *sp);

/* The hot path: one event of series id (1-based). Never allocates. */
void speed_add(struct speed *sp, uint32_t id, int64_t ts_ms, double value, int64_t seq);
/* Start-up: adds to the totals only (events already counted elsewhere). */
void speed_add_count(struct speed *sp, uint32_t id, uint64_t count);

/* Start of the ring window of series id: every event with ts >= this is in
 * the ring. INT64_MAX when the series has no ring data. */
int64_t speed_window_start(const struct speed *sp, uint32_t id);
/* Merges the ring buckets of series id with from <= start and start +
 * bucket_ms <= to (both must be bucket-aligned, inside the window) into
 * out[(start - base) / step], for buckets of width step (a multiple of
 * bucket_ms) aligned at base. n_out bounds the index. */
void speed_collect(const struct speed *sp, uint32_t id, int64_t from_ms, int64_t to_ms,
                   int64_t base_ms, int64_t step_ms, struct agg *out, size_t n_out);
/* Copies the raw samples of series id with from <= ts < to into vals (up to
 * cap) and returns how many matched; *complete says whether that is every
 * event of the series in the range (the raw ring reaches back far enough). */
size_t speed_raw_values(const struct speed *sp, uint32_t id, int64_t from_ms, int64_t to_ms,
                        double *vals, size_t cap, bool *complete);
/* Newest raw samples of series id, newest first; returns the number copied. */
size_t speed_last(const struct speed *sp, uint32_t id, struct speed_raw *out, size_t cap);
const struct speed_totals *speed_totals(const struct speed *sp, uint32_t id);
uint64_t speed_out_of_window(const struct speed *sp);

#endif
