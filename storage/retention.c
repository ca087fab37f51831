/* retention — size and age bounds of the master log, the views ladder's
 * decisions (design in retention.h). */
#include "retention.h"

#include <string.h>

#include "plat_align.h"

/* How many events to remove so that the total falls by excess bytes,
 * estimated from the average size of a stored event. */
static int64_t events_to_free(struct mlog *log, int64_t oldest, int64_t used, int64_t excess)
{
    int64_t span = mlog_committed_seq(log) - oldest + 1;
    if (span <= 0 || excess <= 0)
        return 1;
    int64_t per_event = used / span;
    int64_t n = excess / (per_event > 0 ? per_event : 1) + 1;
    return n < RETENTION_MAX_EVENTS ? n : RETENTION_MAX_EVENTS;
}

/* The last sequence of a tick's range: about n events from oldest, rounded
 * to whole blocks, never past limit. Below oldest: nothing may go. */
static int64_t range_end(int64_t oldest, int64_t n, int64_t limit)
{
    int64_t upto = oldest + n - 1 < limit ? oldest + n - 1 : limit;
    upto = ((upto >> MLOG_BLOCK_SHIFT) << MLOG_BLOCK_SHIFT) + (1 << MLOG_BLOCK_SHIFT) - 1;
    if (upto > limit)
        upto = (((limit + 1) >> MLOG_BLOCK_SHIFT) << MLOG_BLOCK_SHIFT) - 1;
    return upto;
}

static void trim(struct mlog *log, int64_t oldest, int64_t upto, struct retention_result *out)
{
    out->st = mlog_trim(log, upto);
    if (out->st != EL_OK) {
        out->outcome = RETENTION_FAILED;
        return;
    }
    out->outcome = RETENTION_TRIMMED;
    out->first = oldest;
    out->upto = upto;
}

/* Age (retention.h 3): true when it trimmed (or failed). */
static bool age_tick(struct mlog *log, const struct retention_opts *opts, int64_t removable,
                     struct retention_result *out)
{
    int64_t oldest = mlog_oldest_seq(log);
    if (opts->max_age_ms <= 0 || oldest <= 0)
        return false;
    int64_t aged = mlog_aged_upto(log, opts->now_ms - opts->max_age_ms,
                                  RETENTION_MAX_EVENTS >> MLOG_BLOCK_SHIFT);
    out->aged_upto = aged;
    int64_t upto = range_end(oldest, RETENTION_MAX_EVENTS, aged < removable ? aged : removable);
    if (upto < oldest) {
        return false; /* old enough but not covered (or not shipped) yet */
    }
    trim(log, oldest, upto, out);
    out->by_age = true;
    return true;
}

void retention_tick(struct mlog *log, const struct retention_opts *opts, int64_t removable,
                    int64_t other_bytes, bool no_room, struct retention_result *out)
{
    memset(out, 0, sizeof *out);
    bool aged = age_tick(log, opts, removable, out);
    out->used_bytes = mlog_used_bytes(log);
    out->total_bytes = out->used_bytes + other_bytes;
    if (aged || opts->max_bytes <= 0)
        return;
    out->over = out->total_bytes > opts->max_bytes;
    if (!out->over && !no_room)
        return;
    int64_t oldest = mlog_oldest_seq(log);
    int64_t block = (int64_t)1 << MLOG_BLOCK_SHIFT;
    out->views_behind = removable < oldest + block - 1;
    out->shed_views = out->over && removable < oldest + block - 1;
    /* drop_oldest: the user chose to lose the oldest, but only once the
     * views have nothing left to shed (1c after 1b). */
    if (opts->drop_oldest && removable < oldest + block && opts->nothing_to_shed)
        removable = mlog_committed_seq(log);
    /* Aim an eighth below max_bytes, so a tick's worth of commits fits
     * (no_room under it: at least a block). */
    int64_t target = opts->max_bytes - opts->max_bytes / 8;
    int64_t excess = (out->over ? out->total_bytes : out->used_bytes) - target;
    int64_t n = events_to_free(log, oldest, out->used_bytes, excess);
    int64_t upto = range_end(oldest, n, removable);
    if (upto < oldest) {
        out->outcome = RETENTION_BLOCKED;
        return;
    }
    trim(log, oldest, upto, out);
    if (out->outcome == RETENTION_TRIMMED) {
        out->used_bytes = mlog_used_bytes(log);
        out->total_bytes = out->used_bytes + other_bytes;
    }
}

bool retention_age_unpauses(const struct retention_result *r, int64_t max_bytes, bool no_room)
{
    return r->outcome == RETENTION_TRIMMED && r->by_age &&
           (max_bytes <= 0 || r->total_bytes <= max_bytes) && !no_room;
}

/* ---- the views ladder ---- */

static const int64_t pressure_floor[RETENTION_LADDER_N] = {RETENTION_FLOOR_1M, RETENTION_FLOOR_1H,
                                                           RETENTION_FLOOR_1D};

/* A step of tier k towards cutoff (exclusive), if it holds older buckets:
 * at most RETENTION_LADDER_BUCKETS buckets past its oldest. */
static bool step_to(const struct ladder_tier *t, int k, int64_t cutoff, bool pressure,
                    struct ladder_step *out)
{
    cutoff = plat_align_down(cutoff, t->res_ms);
    if (t->rows <= 0 || t->oldest >= cutoff)
        return false;
    /* Pressure sheds a day at a time (the core asks again while over). */
    int64_t span = RETENTION_LADDER_BUCKETS * t->res_ms;
    if (pressure && span > RETENTION_DAY_MS)
        span = t->res_ms < RETENTION_DAY_MS ? RETENTION_DAY_MS : t->res_ms;
    int64_t chunk_end = plat_align_down(t->oldest, t->res_ms) + span;
    out->tier = k;
    out->before = chunk_end < cutoff ? chunk_end : cutoff;
    out->pressure = pressure;
    return true;
}

bool retention_ladder_next(const struct ladder_tier tiers[RETENTION_LADDER_N], int64_t now_ms,
                           bool pressure, bool drop_oldest, struct ladder_step *out)
{
    memset(out, 0, sizeof *out);
    /* Rows an interrupted step left below a horizon (whatever keep is now). */
    for (int k = 0; k < RETENTION_LADDER_N; k++)
        if (tiers[k].horizon > 0 && step_to(&tiers[k], k, tiers[k].horizon, false, out))
            return true;
    for (int k = 0; k < RETENTION_LADDER_N; k++)
        if (tiers[k].keep_ms > 0 && step_to(&tiers[k], k, now_ms - tiers[k].keep_ms, false, out))
            return true;
    if (!pressure)
        return false;
    int shed = drop_oldest ? RETENTION_LADDER_N : RETENTION_LADDER_N - 1;
    for (int k = 0; k < shed; k++)
        if (step_to(&tiers[k], k, now_ms - pressure_floor[k], true, out))
            return true;
    return false;
}
