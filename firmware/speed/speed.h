/*
 * speed — the speed layer: real-time views in RAM (docs/SPEC.md §5), written by the
 * core thread and read by the serving threads without stopping it.
 *
 * DESIGN. Per series (dense ids 1..max_series, the master log's ids) and per
 * lane — SPEED_EVENTS: events with a true event time; SPEED_PROVISIONAL:
 * readings without a timestamp of their own received while the clock was
 * not synchronised, at their receive time on the board's clock, kept until
 * anchoring places them in time (mlog.h, "Clocks") —
 *   - a ring of `slots` event-time buckets of `bucket_ms`, each a struct agg.
 *     Bucket start is aligned to bucket_ms since the epoch; slot = (start /
 *     bucket_ms) % slots;
 *   - a ring of the newest `raw_samples` raw samples (ts, seq, value): exact
 *     quantiles where it holds every event of a span, and `last`;
 *   - totals: count, newest event (by event time, then seq).
 * The ring's WINDOW is [newest_start - (slots-1)*bucket_ms, ...). Invariant:
 * every event of the lane with event time inside the current window is in
 * the ring (the window only moves forward, and an event is put in the ring
 * iff its time is inside the window when it arrives). Older events
 * (backfills) are counted as out_of_window and answered from the master log.
 * Event times outside [SPEED_MIN_TS, SPEED_MAX_TS) (before 1970, after 2099)
 * are never in a ring.
 *
 * HORIZON: at start-up the core rebuilds the events lane from the ring
 * window only (constant time, whatever the size of the master log): the
 * events with time >= horizon. Older events of a series whose window
 * reaches further back are not in its ring, so readers treat the events
 * lane as holding exactly the events >= horizon (speed_read.span_lo never
 * starts earlier; the older part comes from views and the log). The
 * provisional lane is rebuilt whole and has no horizon.
 *
 * CONCURRENCY: one writer (the core), any number of readers, no locks.
 *   - Every shared word is a uint64_t written and read with relaxed atomics
 *     (doubles travel as their bit patterns), so nothing is ever torn and
 *     there is no data race (ThreadSanitizer agrees).
 *   - Each series has a sequence lock: the writer makes it odd, changes the
 *     series (both lanes), makes it even (release); a reader copies what it
 *     needs and retries if the lock was odd or moved.
 *   - `cursor`: after applying a committed batch the writer publishes the
 *     batch's last sequence: every committed event with seq <= cursor is
 *     applied. Each series also records the highest seq applied to it. A
 *     read that loads cursor c (acquire) and then finds the series' highest
 *     applied seq <= c holds exactly the series' events with seq <= c; the
 *     reader retries otherwise. The serving layer adds the events in (c, N]
 *     from the master log, so an answer is exact "as of N".
 *   - `epoch` is odd while the writer moves readings between the lanes
 *     (anchoring); readers that saw it change start again.
 *
 * Memory: allocated once by speed_new from the configuration (2 lanes x
 * max_series x (slots x 88 + raw_samples x 24) bytes, plus the headers) and
 * reported by speed_memory_bytes; calloc'ed, so backed by the kernel only as
 * series and slots are touched. speed_add never allocates.
 */
#ifndef EL_SPEED_H
#define EL_SPEED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agg.h"
#include "el_status.h"

#define SPEED_MIN_TS INT64_C(0)             /* 1970-01-01 */
#define SPEED_MAX_TS INT64_C(4102444800000) /* 2100-01-01 */

enum speed_lane { SPEED_EVENTS = 0, SPEED_PROVISIONAL = 1, SPEED_LANES = 2 };

struct speed;

struct speed_raw {
    int64_t ts_ms;
    int64_t seq;
    double value;
};

struct speed_totals {
    uint64_t count;     /* events of the lane */
    int64_t last_ts_ms; /* newest event time, INT64_MIN if none */
    int64_t last_seq;   /* -1 if none */
    double last_value;
};

EL_MUST_CHECK el_status speed_new(uint32_t max_series, uint32_t slots, int64_t bucket_ms,
                                  uint32_t raw_samples, struct speed **out);
void speed_free(struct speed *sp);
size_t speed_memory_bytes(const struct speed *sp);
int64_t speed_bucket_ms(const struct speed *sp);
uint32_t speed_max_series(const struct speed *sp);

/* ---- writer (the core thread only) ---- */

/* The hot path: one committed event of series id (1-based). Never allocates. */
void speed_add(struct speed *sp, enum speed_lane lane, uint32_t id, int64_t ts_ms, double value,
               int64_t seq);
/* Every committed sequence <= seq is applied (release). */
void speed_publish(struct speed *sp, int64_t seq);
/* Start-up, before any reader: the events lane holds every event with time
 * >= horizon_ms (see HORIZON). */
void speed_set_horizon(struct speed *sp, int64_t horizon_ms);
/* Anchoring: epoch_begin, then lane resets and adds, then epoch_end. */
void speed_epoch_begin(struct speed *sp);
void speed_epoch_end(struct speed *sp);
/* Empties one lane of every series (ring, raw samples, totals). */
void speed_lane_reset(struct speed *sp, enum speed_lane lane);
uint64_t speed_out_of_window(const struct speed *sp);

/* ---- readers (any thread) ---- */

int64_t speed_cursor(const struct speed *sp);
/* Odd while lanes are being rebuilt. */
uint64_t speed_epoch(const struct speed *sp);

/* What a serving query asks of one series: answer buckets of width step_ms
 * aligned at base_ms, n of them, covering [from_ms, to_ms) (inside
 * [SPEED_MIN_TS, SPEED_MAX_TS)). */
struct speed_query {
    int64_t from_ms, to_ms, base_ms, step_ms;
    size_t n;
    int64_t align_ms; /* the events lane's span starts on a multiple of this (a
                       * multiple of bucket_ms), so older views line up with it */
    bool want_values; /* raw values for exact quantiles */
};

/* Caller's working memory for speed_read_range; every array has n entries
 * (vals: vals_cap) and must be zeroed/empty on entry. */
struct speed_cells {
    struct agg *aggs;        /* merged ring buckets per answer bucket (agg_init'ed) */
    uint8_t *from;           /* |= 1 << lane for buckets the lane's ring fed */
    uint8_t *need_values;    /* |= 1 << lane: the raw ring lacks some values of the bucket */
    uint32_t *lane_count;    /* scratch */
    double *vals;            /* raw values (when want_values) ... */
    uint32_t *val_bucket;    /* ... and their answer bucket */
    size_t n_vals, vals_cap; /* n_vals is advanced */
};

/* The result of a read: per lane, the ring-served span [span_lo, span_hi)
 * (empty when span_lo >= span_hi): every event of the lane with event time
 * in it and seq <= seq is in cells; events with seq > seq are not. */
struct speed_read {
    int64_t seq;
    int64_t span_lo[SPEED_LANES], span_hi[SPEED_LANES];
    uint64_t events[SPEED_LANES]; /* events merged into the cells from each lane */
    bool empty[SPEED_LANES];      /* the lane holds no ring data for the series at all:
                                   * none of its events <= seq has a time >= horizon */
    int64_t horizon;              /* the events lane's (see HORIZON) */
    bool vals_overflow;           /* vals_cap was too small: values missing */
};

/* Reads series id consistently (retrying while the writer changes it; on a
 * retry the cells are re-initialised). */
void speed_read_range(const struct speed *sp, uint32_t id, const struct speed_query *q,
                      struct speed_cells *cells, struct speed_read *out);
/* Totals of both lanes, consistent; returns the cursor they are exact for. */
int64_t speed_read_totals(const struct speed *sp, uint32_t id,
                          struct speed_totals out[SPEED_LANES]);
/* Newest raw samples of both lanes by sequence, newest first (provisional
 * ones flagged in prov[i] when prov is not NULL); returns how many. The
 * rings hold the newest speed_raw_samples() of each lane of the series'
 * events with seq <= *cursor (the writer's cursor they are exact for). */
size_t speed_read_last(const struct speed *sp, uint32_t id, struct speed_raw *out, bool *prov,
                       size_t cap, int64_t *cursor);
uint32_t speed_raw_samples(const struct speed *sp);

#endif
