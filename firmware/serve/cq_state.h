/*
 * cq_state — the pure bookkeeping of continuous queries (continuous.h): when
 * a bucket closes, which (series, bucket) pairs wait to be published, which
 * published ones got late data (a correction, "revision" + 1), and the token
 * bucket that bounds the messages per second. No I/O, no clock of its own
 * (every call takes "now"), no allocation after cq_cells_init.
 *
 * Cells: an open-addressing table (linear probing, deletion by backward
 * shift) of at most `limit` cells in 2 x limit rounded up to a power of two
 * slots, keyed by (series id, bucket start). A cell is
 *   PENDING   events seen, never published;
 *   PUBLISHED published at revision r (its answer's "seq" kept);
 *   DIRTY     published, then events seen: republish as revision r + 1.
 * A cell leaves the table once late data can no longer correct it (its close
 * time + max_lateness has passed); events for such a bucket are "too late".
 *
 * Threading: one owner (the serving thread).
 */
#ifndef EL_CQ_STATE_H
#define EL_CQ_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "el_status.h"

struct cq_timing {
    int64_t step_ms;     /* bucket width */
    int64_t grace_ms;    /* a bucket [t, t+step) closes at t + step + grace */
    int64_t lateness_ms; /* late data corrects it until close + lateness */
};

/* The bucket an event time falls in (floor, also for times before 1970). */
int64_t cq_bucket_start(int64_t ts_ms, int64_t step_ms);
/* When the bucket starting at t closes (wall ms). */
int64_t cq_close_at(int64_t t, const struct cq_timing *tm);
/* True once late data for the bucket at t is no longer published. */
bool cq_too_late(int64_t t, const struct cq_timing *tm, int64_t now_ms);

enum cq_cell_state { CQ_FREE = 0, CQ_PENDING, CQ_PUBLISHED, CQ_DIRTY };

struct cq_cell {
    uint32_t series;
    uint8_t state;     /* enum cq_cell_state */
    uint8_t changed;   /* events since the last open (partial) message */
    uint8_t tries;     /* answers that did not cover `noted` yet */
    uint32_t revision; /* of the last message (0: the first) */
    uint32_t since;    /* events seen since the last message */
    int64_t t;         /* bucket start */
    int64_t seq;       /* "seq" of the last message */
    int64_t noted;     /* highest seq of an event noted */
};

#define CQ_MAX_TRIES 8 /* ticks an answer may lag the noted events (then it goes out as is) */

struct cq_cells {
    struct cq_cell *slot;
    uint32_t mask; /* slots - 1 */
    uint32_t n, limit;
};

EL_MUST_CHECK el_status cq_cells_init(struct cq_cells *c, uint32_t limit);
void cq_cells_free(struct cq_cells *c);
void cq_cells_clear(struct cq_cells *c);
/* An event (seq) of series in the bucket at t: a new cell is PENDING, a
 * PUBLISHED one becomes DIRTY. false: a new cell was needed and limit cells
 * are held. */
bool cq_cells_note(struct cq_cells *c, uint32_t series, int64_t t, int64_t seq);
struct cq_cell *cq_cells_find(struct cq_cells *c, uint32_t series, int64_t t);

enum cq_action {
    CQ_NONE = 0,
    CQ_FINAL,      /* closed: publish revision 0 */
    CQ_CORRECTION, /* closed, published, new events: publish revision + 1 */
    CQ_OPEN,       /* not closed, new events, open messages wanted: a partial */
    CQ_EXPIRE      /* past close + lateness: forget the cell */
};
/* What the cell at slot i needs now (CQ_NONE for a free slot). */
enum cq_action cq_cell_due(const struct cq_cell *cell, const struct cq_timing *tm, int64_t now_ms,
                           bool open);
/* Does an answer as of answer_seq cover every event noted in the cell? The
 * tail can see a commit before the speed layer has applied it: false asks
 * again at the next tick, true after CQ_MAX_TRIES such answers. */
bool cq_cell_answer_ok(struct cq_cell *cell, int64_t answer_seq);
/* After the message of action a (sent or dropped) with answer seq. */
void cq_cell_done(struct cq_cell *cell, enum cq_action a, int64_t seq);
/* Removes the cell at slot i; a cell from later in its probe run may move
 * into slot i (look at i again). */
void cq_cells_remove_at(struct cq_cells *c, uint32_t i);
static inline uint32_t cq_cells_slots(const struct cq_cells *c)
{
    return c->mask + 1;
}

/* A token bucket of `rate` tokens per second holding at most `rate`. */
struct cq_tokens {
    double tokens, rate;
    int64_t last_ms;
};
void cq_tokens_init(struct cq_tokens *t, int rate_per_s, int64_t now_ms);
/* Takes a token if there is one (refilled for the time since the last call). */
bool cq_tokens_take(struct cq_tokens *t, int64_t now_ms);
/* Gives back a token taken for a message that did not go out. */
void cq_tokens_give_back(struct cq_tokens *t);

#endif
