/*
 * core_clock — the wall clock as the core sees it (mlog.h, "Clocks"): steps
 * are noticed and counted; once the clock is synchronised, readings that
 * waited for a true time are moved into the master log's events in bounded
 * chunks, into the speed layer's events lane, and the provisional lane is
 * rebuilt from what still waits (readers restart their query meanwhile:
 * speed epoch).
 *
 * Threading: the core thread.
 */
#include "core_int.h"
#include "plat_clock.h"

/* ---- clocks ---- */

#define CLOCK_STEP_MS 1000
#define ANCHOR_CHUNKS_PER_TICK 5

static void anchor_one(void *ctx, int64_t seq, uint32_t series_id, int64_t ts_ms, double value)
{
    struct core *c = ctx;
    struct pending_event *pe = &c->pending[c->n_pending++]; /* <= COMMIT_MAX_EVENTS per chunk */
    pe->seq = seq;
    pe->ts_ms = ts_ms;
    pe->value = value;
    pe->id = series_id;
    pe->lane = SPEED_EVENTS;
}

/* Moves up to ANCHOR_CHUNKS_PER_TICK chunks of waiting readings into the
 * master log's events at their true time, each chunk its own commit (which
 * puts them in the speed layer's events lane), then rebuilds the
 * provisional lane from what still waits. Serving threads that read the
 * speed layer meanwhile start their query again (speed epoch). */
static void anchor_chunks(struct core *c, int64_t offset)
{
    uint32_t moved = COMMIT_MAX_EVENTS;
    speed_epoch_begin(c->speed);
    for (int i = 0; i < ANCHOR_CHUNKS_PER_TICK && moved == COMMIT_MAX_EVENTS; i++) {
        el_status st = mlog_anchor(c->log, offset, COMMIT_MAX_EVENTS, anchor_one, c, &moved);
        if (st != EL_OK) {
            core_storage_failed(c, st, "anchoring");
            break;
        }
        core_commit(c);
        if (c->storage_failed)
            break;
        c->anchored += moved;
    }
    speed_lane_reset(c->speed, SPEED_PROVISIONAL);
    if (mlog_scan_unanchored(c->log, core_rebuild_provisional, c->speed) != EL_OK)
        log_error("cannot rebuild the provisional speed lane; those readings are missing from "
                  "answers until the next anchoring tick");
    speed_epoch_end(c->speed);
}

/* Once a second: notices wall-clock steps, and once the clock is
 * synchronised places the events that waited for it (mlog.h, "Clocks") in
 * time, a bounded number of chunks per tick, each its own commit. */
void core_clock_tick(struct core *c)
{
    int64_t offset = plat_clock_wall_ms() - plat_clock_mono_ms();
    int64_t step = offset - c->clock_offset_ms;
    if (c->clock_offset_ms != 0 && (step > CLOCK_STEP_MS || step < -CLOCK_STEP_MS)) {
        c->clock_steps++;
        log_warn("the wall clock stepped by %+lld ms (synchronised: %s); order stays by sequence, "
                 "timers use the monotonic clock",
                 (long long)step, plat_clock_synced() ? "yes" : "no");
    }
    c->clock_offset_ms = offset;
    int synced = plat_clock_synced() ? 1 : 0;
    if (synced != c->clock_synced_logged) {
        c->clock_synced_logged = synced;
        if (synced)
            log_info("the system clock is synchronised (%s)", plat_clock_sync_source());
        else
            log_warn("the system clock is not synchronised: readings without their own timestamp "
                     "are served provisionally at the board's clock and wait for a true time "
                     "before batch views and sync take them; if this clock is right, say so "
                     "with clock.synced = yes");
    }
    if (!c->has_unanchored || c->storage_failed)
        return;
    uint64_t before = c->anchored;
    if (plat_clock_synced()) {
        core_commit(c); /* each chunk gets the whole pending list */
        if (c->storage_failed)
            return;
        anchor_chunks(c, offset);
    }
    int64_t min_seq;
    if (mlog_unanchored(c->log, &c->unanchored, &min_seq) == EL_OK && c->unanchored == 0)
        c->has_unanchored = false;
    c->visible_seq = c->has_unanchored ? mlog_visible_seq(c->log) : mlog_committed_seq(c->log);
    sync_notify_committed(c->sync, c->visible_seq);
    if (c->anchored > before)
        log_info("clock synchronised: %llu events received before it placed in time "
                 "(wall = monotonic %+lld ms); %lld still waiting",
                 (unsigned long long)(c->anchored - before), (long long)offset,
                 (long long)c->unanchored);
}
