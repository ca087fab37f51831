/*
 * retention — keeps what matters: raw events in the master log by size and
 * age, and the decisions of the batch views' ladder (the views themselves
 * are deleted by their one writer, the batch worker: views.h RETENTION).
 *
 * DESIGN.
 * 1. Size. storage.max_bytes bounds master.db's used pages (the file's pages
 *    minus its freelist: removed rows leave free pages later commits reuse)
 *    + views.db's used pages + the journal's records not yet committed (the
 *    journal's preallocated segment files, journal_segments x
 *    journal_segment_bytes, are a fixed cost outside the bound). Over it,
 *    in this order:
 *      a. raw events the views cover and (with sync) the upstream
 *         acknowledged, oldest first, in whole blocks (nothing is lost:
 *         the views keep their history);
 *      b. when a. has nothing left: the core asks the batch worker to shed
 *         views (retention_ladder_next with pressure): the oldest 1 min
 *         buckets older than RETENTION_FLOOR_1M (every 1 min bucket is
 *         also in its 1 h bucket: one run computes all three resolutions
 *         from the same events), then the oldest 1 h buckets older than
 *         RETENTION_FLOOR_1H; 1 d buckets (older than RETENTION_FLOOR_1D)
 *         only with drop_oldest;
 *      c. still over: full_policy. stop_ingest stops commits (the journal,
 *         then the broker, keep the readings); drop_oldest removes the
 *         oldest raw events whether covered or not (as before: the user
 *         chose to lose the oldest), once the ladder has nothing left to
 *         shed (retention_opts.nothing_to_shed, which the core works out
 *         from the tiers the batch worker last published; until then a
 *         tick over the bound with nothing removable is BLOCKED, which
 *         does not pause ingest under drop_oldest).
 *    A tick removes about what brings the total an eighth under max_bytes
 *    (estimated from the average size of an event), at most
 *    RETENTION_MAX_EVENTS; the next tick (a second later) goes on.
 * 2. Hard ceiling. mlog_opts.max_db_bytes (SQLite max_page_count) makes a
 *    commit that needs more pages than master.db may still grow by fail with
 *    EL_FULL. A group commit can be megabytes (a backlog drained at once),
 *    more than ceiling - max_bytes, so "total <= max_bytes" does not mean
 *    the next commit fits: after such a failure (no_room) a tick frees room
 *    even under max_bytes, and the core retries smaller transactions, so a
 *    commit that fits always exists (issue 11).
 * 3. Age. storage.max_age_s > 0: raw events whose EVENT time is older than
 *    now - max_age go once covered and acknowledged (the same `removable`
 *    as 1a), in whole blocks from the oldest: the block summaries
 *    (mlog.h `blocks`) say which blocks hold only old events
 *    (mlog_aged_upto). The master log stays a sequence prefix (sync, verify
 *    and queries rely on "everything below oldest_seq is gone"), so a block
 *    holding a young (late-stamped) event stops the age trim there until it
 *    ages too: nothing younger than max_age is ever removed, some older
 *    events may stay a while. At most RETENTION_MAX_EVENTS per tick.
 * 4. The views ladder (storage.keep_1m_s, keep_1h_s, keep_1d_s; 0 =
 *    forever): buckets whose start is older than now - keep go, a bounded
 *    chunk at a time (retention_ladder_next decides; the batch worker
 *    deletes). Pressure (1b) uses the same steps with the floors above.
 *    Rows left below a horizon (a step stopped early, or killed after
 *    recording it) are deleted first, whatever the keep durations are now.
 *
 * Threading: retention_tick on the thread that owns the struct mlog (the
 * core); retention_ladder_next is pure (the batch worker calls it).
 */
#ifndef EL_RETENTION_H
#define EL_RETENTION_H

#include <stdbool.h>
#include <stdint.h>

#include "el_status.h"
#include "mlog.h"

#define RETENTION_MAX_EVENTS ((int64_t)64 << MLOG_BLOCK_SHIFT)
#define RETENTION_DAY_MS 86400000LL
/* Under pressure the ladder never sheds buckets newer than these. */
#define RETENTION_FLOOR_1M (1 * RETENTION_DAY_MS)
#define RETENTION_FLOOR_1H (30 * RETENTION_DAY_MS)
#define RETENTION_FLOOR_1D (365 * RETENTION_DAY_MS)
#define RETENTION_LADDER_N 3 /* = VIEWS_N_RES: 1 min, 1 h, 1 d */
/* One ladder step removes at most this many buckets per series (pressure:
 * at most a day's worth, or one bucket of 1 d). */
#define RETENTION_LADDER_BUCKETS 10080

struct retention_opts {
    int64_t max_bytes;    /* 0: no size bound */
    bool drop_oldest;     /* else stop_ingest */
    int64_t max_age_ms;   /* 0: no age bound */
    int64_t now_ms;       /* wall clock (event time is compared with it) */
    bool nothing_to_shed; /* the views ladder has nothing left to shed (1b): drop_oldest may
                             go on to remove uncovered or unshipped raw events (1c) */
};

enum retention_outcome {
    RETENTION_IDLE = 0, /* under the bound: nothing to do */
    RETENTION_TRIMMED,  /* [first, upto] removed */
    RETENTION_BLOCKED,  /* over the bound, nothing may be removed (stop_ingest holds) */
    RETENTION_FAILED    /* mlog_trim failed (st) */
};

struct retention_result {
    enum retention_outcome outcome;
    int64_t used_bytes;  /* master.db's used pages after the tick */
    int64_t total_bytes; /* used_bytes + other_bytes: what max_bytes bounds */
    int64_t first, upto; /* RETENTION_TRIMMED */
    bool by_age;         /* RETENTION_TRIMMED by storage.max_age */
    bool over;           /* the total was over max_bytes (else: room for a commit) */
    bool views_behind;   /* over, nothing removable yet (views or sync behind): ask a run */
    int64_t aged_upto;   /* max_age: the blocks up to here are old (removable or not) */
    bool shed_views;     /* over, and no covered raw event is left: ask the ladder (1b) */
    el_status st;        /* RETENTION_FAILED */
};

/* One tick: removable is the highest sequence that may go without losing
 * anything; other_bytes: views.db's used pages + the journal's uncommitted
 * records; no_room says a commit failed for lack of room since the last
 * trim. The caller commits its open transaction first (mlog_trim needs none
 * open). */
void retention_tick(struct mlog *log, const struct retention_opts *opts, int64_t removable,
                    int64_t other_bytes, bool no_room, struct retention_result *out);

/* After a tick that trimmed by age: true when a stop_ingest pause may be
 * lifted (the total is under max_bytes, or there is none, and no commit
 * failed for lack of room since). A size trim lifts it by itself; the
 * size checks do not run in a tick that trimmed by age. */
bool retention_age_unpauses(const struct retention_result *r, int64_t max_bytes, bool no_room);

/* ---- the views ladder (pure) ---- */

struct ladder_tier {
    int64_t res_ms;
    int64_t keep_ms; /* 0: forever */
    int64_t rows;    /* rows held */
    int64_t oldest;  /* oldest bucket start (valid when rows > 0) */
    int64_t horizon; /* buckets with t < horizon were dropped (0: none); rows left below it go */
};

struct ladder_step {
    int tier;       /* index into the tiers */
    int64_t before; /* delete buckets with t < before; the horizon becomes before */
    bool pressure;  /* shed for max_bytes (else: keep duration) */
};

/* The next bounded step of the ladder, or false when there is none: first
 * rows left below a horizon, then keep durations (finest first), then, with
 * pressure, shedding (1b).
 * A step deletes at most RETENTION_LADDER_BUCKETS buckets per series. */
bool retention_ladder_next(const struct ladder_tier tiers[RETENTION_LADDER_N], int64_t now_ms,
                           bool pressure, bool drop_oldest, struct ladder_step *out);

#endif
