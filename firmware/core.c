/*
 * core — event loop: journal -> master log group commit, status (design in
 * core.h).
 *
 * Ownership: core_run owns journal, mlog and ingest and frees them in
 * reverse order of creation on every path.
 */
#include "core.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "batch.h"
#include "ingest.h"
#include "journal.h"
#include "mlog.h"
#include "query.h"
#include "requests.h"
#include "speed.h"
#include "plat_align.h"
#include "plat_clock.h"
#include "plat_hash.h"
#include "plat_log.h"
#include "plat_systemd.h"
#include "status.h"
#include "sync.h"
#include "views.h"

#define COMMIT_MAX_EVENTS 20000
#define COMMIT_MIN_EVENTS 64
#define DRAIN_BATCH 4096
#define STATUS_MIN_INTERVAL_MS 1000
#define STATUS_HEARTBEAT_MS 30000
#define STORAGE_RETRY_MS 500
#define PENDING_MAX (COMMIT_MAX_EVENTS + DECODE_MAX_FIELDS)

/* An event appended to the open transaction, applied to the speed layer
 * only once the transaction commits (so speed state == committed state). */
struct pending_event {
    int64_t seq, ts_ms;
    double value;
    uint32_t id;
    enum speed_lane lane; /* provisional: no true time yet, ts = receive time */
};

struct core {
    const struct el_config *cfg;
    struct journal *journal;
    struct mlog *log;
    struct ingest *ingest;
    struct sync *sync;
    struct speed *speed;
    struct requests *requests;  /* the serving thread */
    struct status_board *board; /* the status document for {"op":"status"} */
    struct batch *batch;
    struct pending_event *pending; /* PENDING_MAX */
    uint32_t n_pending;
    int epfd, evfd, sigfd;
    bool stopping;
    int64_t stop_started_ms;

    int64_t start_mono_ms;
    int64_t oldest_pending_mono_ms; /* receive time of the oldest uncommitted record */
    int64_t storage_retry_at_ms;
    char storage_error[128];
    bool storage_failed;
    /* Group-commit size in events: COMMIT_MAX_EVENTS, halved after a commit
     * failed for lack of space (a quota or a full disk) down to
     * COMMIT_MIN_EVENTS, doubled back after each success ("Retention"). */
    uint32_t commit_cap;
    bool commit_no_space;  /* the last commit or append failed with EL_FULL */
    uint32_t txn_events;   /* events in the transaction that just failed */
    int64_t ceiling_bytes; /* master.db's hard ceiling (storage.hard_max_bytes), 0 = none */

    /* counters (core thread) */
    uint64_t accepted, accepted_committed;
    uint64_t rejected[INGEST_REASON_COUNT], rejected_committed[INGEST_REASON_COUNT];
    uint64_t replayed;
    struct plat_log_limit storage_limit;

    /* status publishing */
    int64_t status_tick_ms; /* the last status tick (once a second) */
    int64_t status_last_ms; /* the last publish */
    uint64_t status_last_key;
    uint64_t rate_last_accepted;
    int64_t rate_last_ms;
    double rate_per_s;
    char status_buf[4096];
    int64_t watchdog_period_ms, watchdog_last_ms;

    /* clocks (mlog.h, "Clocks") */
    bool has_unanchored;     /* events wait for a synchronised clock */
    int64_t unanchored;      /* how many (committed), refreshed once a second */
    int64_t visible_seq;     /* sync and batch stop here (mlog_visible_seq) */
    int64_t clock_offset_ms; /* wall - monotonic at the last check */
    uint64_t clock_steps;    /* wall-clock steps seen */
    uint64_t anchored;       /* events placed in time since start */
    int clock_synced_logged; /* -1 until the first tick */

    /* retention (storage.max_bytes) */
    int64_t used_bytes;
    uint64_t trimmed_events;
    bool log_full_paused; /* stop_ingest in force */
    struct plat_log_limit retention_limit;
};

void core_block_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static void core_wake(void *ctx)
{
    struct core *c = ctx;
    uint64_t one = 1;
    ssize_t w = write(c->evfd, &one, sizeof one);
    (void)w; /* a full eventfd counter already means "wake up" */
}

/* ---- applying journal records to the master log ---- */

static el_status append_dead(struct core *c, const struct journal_rec *r, uint64_t seq,
                             unsigned reason)
{
    struct mlog_dead dl = {
        .seq = (int64_t)seq,
        .topic = r->topic,
        .topic_len = r->topic_len,
        .payload = r->payload,
        .payload_len = r->payload_len,
        .payload_bytes = r->orig_len,
        .recv_ms = r->recv_ms,
        .mono_ms = r->mono_ms,
        .flags = r->flags,
        .reason = ingest_reason_str(reason),
    };
    el_status st = mlog_append_dead(c->log, &dl);
    if (st == EL_OK && reason < INGEST_REASON_COUNT)
        c->rejected[reason]++;
    return st;
}

static el_status apply_record(struct core *c, const struct journal_rec *r)
{
    char name[MLOG_MAX_SERIES_NAME + 1];
    el_status st;
    if (r->n_events == 0)
        return append_dead(c, r, r->seq, r->reason);
    for (uint16_t i = 0; i < r->n_events; i++) {
        struct journal_event ev;
        uint32_t id;
        size_t n = r->topic_len;
        uint64_t seq = r->seq + i;
        memcpy(&ev, &r->events[i], sizeof ev);
        memcpy(name, r->topic, n);
        if (ev.field_len > 0) {
            name[n++] = '/';
            memcpy(name + n, r->payload + ev.field_off, ev.field_len);
            n += ev.field_len;
        }
        st = mlog_series_get(c->log, name, n, (int64_t)seq, &id);
        if (st == EL_FULL || st == EL_INVAL) {
            st = append_dead(c, r, seq,
                             st == EL_FULL ? INGEST_REASON_SERIES_LIMIT
                                           : INGEST_REASON_NAME_TOO_LONG);
            if (st != EL_OK)
                return st;
            continue;
        }
        if (st != EL_OK)
            return st;
        struct mlog_event me = {
            .seq = (int64_t)seq,
            .series_id = id,
            .ts_ms = ev.ts_ms,
            .value = ev.value,
            .recv_ms = r->recv_ms,
            .mono_ms = r->mono_ms,
            .flags = r->flags,
            .payload = r->payload,
            .payload_len = r->payload_len,
        };
        st = mlog_append_event(c->log, &me);
        if (st != EL_OK)
            return st;
        c->accepted++;
        bool waiting = mlog_event_unanchored(me.flags);
        if (waiting)
            c->has_unanchored = true; /* served provisionally at the board's clock */
        if (c->n_pending < PENDING_MAX) {
            struct pending_event *pe = &c->pending[c->n_pending++];
            pe->seq = (int64_t)seq;
            pe->ts_ms = waiting ? r->recv_ms : ev.ts_ms;
            pe->value = ev.value;
            pe->id = id;
            pe->lane = waiting ? SPEED_PROVISIONAL : SPEED_EVENTS;
        }
    }
    return EL_OK;
}

static void storage_failed(struct core *c, el_status st, const char *what)
{
    snprintf(c->storage_error, sizeof c->storage_error, "%s: %s", what, el_status_str(st));
    c->storage_failed = true;
    if (st == EL_FULL) {
        /* The transaction did not fit in what the quota or the disk has
         * left. Retention frees whole blocks, but a transaction bigger than
         * the room it leaves would fail forever: retry smaller ones. */
        c->commit_no_space = true;
        uint32_t tried = c->txn_events;
        uint32_t cap = (tried < c->commit_cap ? tried : c->commit_cap) / 2;
        c->commit_cap = cap > COMMIT_MIN_EVENTS ? cap : COMMIT_MIN_EVENTS;
    }
    journal_sync_each(c->journal, true); /* acknowledged = on flash, however long this lasts */
    c->storage_retry_at_ms = plat_clock_mono_ms() + STORAGE_RETRY_MS;
    plat_log_limited(&c->storage_limit, 10000, PLAT_LOG_ERROR,
                     "master log %s failed (%s); acknowledged events stay in the journal (each "
                     "synced to flash) and ingest holds when it fills",
                     what, el_status_str(st));
    /* Forget everything since the last commit and read it again later. */
    mlog_rollback(c->log);
    journal_rewind(c->journal);
    c->accepted = c->accepted_committed;
    memcpy(c->rejected, c->rejected_committed, sizeof c->rejected);
    c->oldest_pending_mono_ms = 0;
    c->n_pending = 0;
}

static void commit(struct core *c)
{
    if (mlog_pending(c->log) == 0 && c->oldest_pending_mono_ms == 0)
        return;
    c->txn_events = mlog_pending(c->log);
    el_status st = mlog_commit(c->log);
    if (st != EL_OK) {
        storage_failed(c, st, "commit");
        return;
    }
    journal_commit(c->journal);
    for (uint32_t i = 0; i < c->n_pending; i++) {
        const struct pending_event *pe = &c->pending[i];
        speed_add(c->speed, pe->lane, pe->id, pe->ts_ms, pe->value, pe->seq);
    }
    c->n_pending = 0;
    speed_publish(c->speed, mlog_committed_seq(c->log)); /* serving threads may read it */
    c->visible_seq = c->has_unanchored ? mlog_visible_seq(c->log) : mlog_committed_seq(c->log);
    sync_notify_committed(c->sync, c->visible_seq);
    c->accepted_committed = c->accepted;
    memcpy(c->rejected_committed, c->rejected, sizeof c->rejected);
    c->oldest_pending_mono_ms = 0;
    c->commit_no_space = false;
    if (c->commit_cap < COMMIT_MAX_EVENTS)
        c->commit_cap =
            c->commit_cap * 2 < COMMIT_MAX_EVENTS ? c->commit_cap * 2 : COMMIT_MAX_EVENTS;
    if (c->storage_failed) {
        log_info("master log writes work again");
        c->storage_failed = false;
        journal_sync_each(c->journal, c->log_full_paused);
    }
}

/* Reads up to DRAIN_BATCH records into the open transaction. */
static int drain(struct core *c)
{
    struct journal_rec r;
    int n = 0;
    if (c->storage_failed && plat_clock_mono_ms() < c->storage_retry_at_ms)
        return 0;
    if (c->log_full_paused)
        return 0; /* stop_ingest (set_paused) */
    while (n < DRAIN_BATCH && journal_next(c->journal, &r)) {
        if (c->oldest_pending_mono_ms == 0)
            c->oldest_pending_mono_ms = r.mono_ms > 0 ? r.mono_ms : 1;
        el_status st = apply_record(c, &r);
        if (st != EL_OK) {
            c->txn_events = mlog_pending(c->log);
            storage_failed(c, st, "append");
            return n;
        }
        n++;
        if (mlog_pending(c->log) >= c->commit_cap || c->n_pending >= COMMIT_MAX_EVENTS)
            commit(c);
    }
    return n;
}

static bool commit_due(const struct core *c, int64_t now)
{
    if (c->oldest_pending_mono_ms == 0)
        return false;
    return c->stopping || now - c->oldest_pending_mono_ms >= c->cfg->storage.flush_interval_ms;
}

/* ---- start-up replay ---- */

static el_status replay_one(void *ctx, const struct journal_rec *r)
{
    struct core *c = ctx;
    uint64_t last = r->seq + (r->n_events ? r->n_events : 1u) - 1u;
    if ((int64_t)last <= mlog_last_seq(c->log))
        return EL_OK; /* committed before the crash */
    c->replayed++;
    el_status st = apply_record(c, r);
    c->n_pending = 0; /* the speed layer is rebuilt from the log after replay */
    if (st == EL_OK && mlog_pending(c->log) >= COMMIT_MAX_EVENTS)
        st = mlog_commit(c->log);
    return st;
}

static void seed_recent(void *ctx, const char *series, size_t series_len, const void *payload,
                        size_t payload_len)
{
    ingest_seed_recent(ctx, series, series_len, payload, payload_len);
}

static void rebuild_one(void *ctx, int64_t seq, uint32_t series_id, int64_t ts_ms, double value)
{
    speed_add(ctx, SPEED_EVENTS, series_id, ts_ms, value, seq);
}

static void rebuild_provisional(void *ctx, int64_t seq, uint32_t series_id, int64_t recv_ms,
                                double value)
{
    speed_add(ctx, SPEED_PROVISIONAL, series_id, recv_ms, value, seq);
}

static el_status recover(struct core *c)
{
    uint64_t max_seq = 0;
    el_status st = journal_replay(c->journal, replay_one, c, &max_seq);
    if (st == EL_OK)
        st = mlog_commit(c->log);
    if (st == EL_FULL && c->ceiling_bytes > 0) {
        /* The journal holds acknowledged readings that do not fit under
         * storage.hard_max_bytes; exiting would only restart into the same
         * wall. Lift the ceiling by the journal's size (bounded), replay,
         * and let retention bring the file down once ingest runs. */
        mlog_rollback(c->log);
        int64_t journal = c->cfg->storage.journal_segment_bytes * c->cfg->storage.journal_segments;
        log_warn("replaying the ingest journal needs more room than storage.hard_max_bytes; "
                 "lifting the ceiling by %lld bytes until retention has trimmed",
                 (long long)journal);
        c->replayed = 0;
        st = mlog_set_ceiling(c->log, c->ceiling_bytes + journal);
        if (st == EL_OK)
            st = journal_replay(c->journal, replay_one, c, &max_seq);
        if (st == EL_OK)
            st = mlog_commit(c->log);
        if (st == EL_OK)
            st = mlog_set_ceiling(c->log, c->ceiling_bytes);
    }
    if (st != EL_OK) {
        log_error("replaying the ingest journal failed: %s", el_status_str(st));
        return st;
    }
    st = journal_drop_replayed(c->journal);
    if (st != EL_OK)
        return st;
    int64_t last = mlog_last_seq(c->log);
    uint64_t next = (uint64_t)(last > (int64_t)max_seq ? last : (int64_t)max_seq) + 1;
    journal_set_next_seq(c->journal, next);
    if (c->replayed > 0)
        log_info("replayed %llu journal records left by the previous run; next sequence %llu",
                 (unsigned long long)c->replayed, (unsigned long long)next);
    c->accepted = c->accepted_committed = 0;
    memset(c->rejected, 0, sizeof c->rejected);
    memset(c->rejected_committed, 0, sizeof c->rejected_committed);
    /* The speed layer is rebuilt from the ring window only (speed.h,
     * HORIZON): the events whose time is at most a window before the
     * newest one, found through the block-range summary, so start-up costs
     * the same at 10 million events as at 10 thousand. */
    int64_t t0 = plat_clock_mono_ms();
    int64_t newest = mlog_newest_ts(c->log);
    int64_t window = (int64_t)(c->cfg->speed.slots - 1) * c->cfg->speed.bucket_ms;
    int64_t horizon = newest == INT64_MIN ? SPEED_MIN_TS : newest - window;
    horizon =
        plat_align_down(horizon > SPEED_MIN_TS ? horizon : SPEED_MIN_TS, c->cfg->speed.bucket_ms);
    speed_set_horizon(c->speed, horizon);
    st = mlog_scan_since(c->log, horizon, rebuild_one, c->speed);
    if (st == EL_OK) /* readings still waiting for a true time: provisional */
        st = mlog_scan_unanchored(c->log, rebuild_provisional, c->speed);
    if (st != EL_OK)
        return st;
    speed_publish(c->speed, mlog_committed_seq(c->log));
    log_info("speed layer rebuilt from the ring window (events since %lld) in %lld ms",
             (long long)horizon, (long long)(plat_clock_mono_ms() - t0));
    if (!ingest_wants_seed(c->ingest)) /* duplicates are recognised by packet id */
        return EL_OK;
    return mlog_scan_recent(c->log, INGEST_DEDUP_WINDOW, seed_recent, c->ingest);
}

/* ---- retention ---- */

#define TRIM_MAX_EVENTS ((int64_t)64 << MLOG_BLOCK_SHIFT)

/* Highest sequence retention may remove without losing anything: covered by
 * the batch views (which keep the history at 1 min/1 h/1 d) and, with sync
 * enabled, acknowledged upstream. */
static int64_t removable_upto(struct core *c)
{
    int64_t limit = mlog_committed_seq(c->log);
    if (c->batch && batch_watermark(c->batch) < limit)
        limit = batch_watermark(c->batch);
    if (c->sync) {
        struct sync_status ss;
        sync_get_status(c->sync, &ss);
        if (ss.acked_seq < limit)
            limit = ss.acked_seq;
    }
    return limit;
}

static void set_paused(struct core *c, bool paused)
{
    if (paused == c->log_full_paused)
        return;
    c->log_full_paused = paused;
    /* stop_ingest: no more commits; the journal takes what fits (each record
     * synced to flash), then acknowledgements stop and the broker keeps the rest */
    journal_sync_each(c->journal, paused || c->storage_failed);
    if (paused)
        log_error("master log over storage.max_bytes and nothing may be removed yet: "
                  "stop_ingest: no more commits; the journal takes what fits (synced to flash), "
                  "then acknowledgements stop (the broker keeps the readings)");
    else
        log_info("master log back under storage.max_bytes: ingest resumes");
}

/* How many events to remove so that used pages fall to target_bytes,
 * estimated from the average size of a stored event, in whole blocks. */
static int64_t events_to_free(struct core *c, int64_t oldest, int64_t target_bytes)
{
    int64_t span = mlog_committed_seq(c->log) - oldest + 1;
    int64_t excess = c->used_bytes - target_bytes;
    if (span <= 0 || excess <= 0)
        return 1;
    int64_t per_event = c->used_bytes / span;
    int64_t n = excess / (per_event > 0 ? per_event : 1) + 1;
    return n < TRIM_MAX_EVENTS ? n : TRIM_MAX_EVENTS;
}

/* Once a second: keeps the master log's used pages under storage.max_bytes
 * by removing the oldest events in whole block ranges.
 *
 * Two limits meet here. storage.max_bytes bounds the pages in use (file
 * pages minus the freelist: removed rows leave free pages that later
 * commits reuse). storage.hard_max_bytes is SQLite's max_page_count: a
 * commit that needs more pages than the file may still grow by fails with
 * EL_FULL. A group commit can be megabytes (COMMIT_MAX_EVENTS events after
 * a backlog), more than hard - max, so "used <= max_bytes" does not mean
 * the next commit fits: after such a failure (commit_no_space) retention
 * frees room for it even under max_bytes, and the core retries smaller
 * transactions (commit_cap), so a commit that fits always exists. */
static void retention_tick(struct core *c)
{
    const struct el_config *cfg = c->cfg;
    if (cfg->storage.max_bytes <= 0)
        return;
    c->used_bytes = mlog_used_bytes(c->log);
    bool over = c->used_bytes > cfg->storage.max_bytes;
    if (!over && !c->commit_no_space) {
        set_paused(c, false);
        return;
    }
    if (c->batch && batch_running(c->batch))
        return; /* a run reads the log in chunks: nothing may vanish under it (views.h) */
    if (c->oldest_pending_mono_ms != 0 && !c->storage_failed)
        commit(c);
    int64_t oldest = mlog_oldest_seq(c->log);
    int64_t limit = removable_upto(c);
    if (limit < oldest + (1 << MLOG_BLOCK_SHIFT) - 1 && c->batch)
        batch_request(c->batch, false, "retention"); /* let the views catch up */
    if (cfg->storage.full_policy == EL_FULL_DROP_OLDEST && limit < oldest + (1 << MLOG_BLOCK_SHIFT))
        limit = mlog_committed_seq(c->log); /* the user chose to lose the oldest */
    /* Aim below max_bytes by an eighth, so one tick's worth of commits fits. */
    int64_t n = events_to_free(c, oldest, cfg->storage.max_bytes - cfg->storage.max_bytes / 8);
    int64_t upto = oldest + n - 1 < limit ? oldest + n - 1 : limit;
    upto = ((upto >> MLOG_BLOCK_SHIFT) << MLOG_BLOCK_SHIFT) + (1 << MLOG_BLOCK_SHIFT) - 1;
    if (upto > limit)
        upto = (((limit + 1) >> MLOG_BLOCK_SHIFT) << MLOG_BLOCK_SHIFT) - 1; /* whole blocks */
    if (upto < oldest) {
        set_paused(c, cfg->storage.full_policy == EL_FULL_STOP_INGEST);
        return;
    }
    el_status st = mlog_trim(c->log, upto);
    if (st != EL_OK) {
        plat_log_limited(&c->retention_limit, 60000, PLAT_LOG_ERROR, "retention failed: %s",
                         el_status_str(st));
        return;
    }
    c->trimmed_events += (uint64_t)(upto - oldest + 1);
    plat_log_limited(
        &c->retention_limit, 60000, PLAT_LOG_INFO,
        "retention: removed sequences %lld..%lld from the master log (max_bytes %lld%s)",
        (long long)oldest, (long long)upto, (long long)cfg->storage.max_bytes,
        over ? "" : "; a commit did not fit under the hard quota");
    c->used_bytes = mlog_used_bytes(c->log);
    c->commit_no_space = false; /* room was made: the next failure says again */
    set_paused(c, false);
}

/* ---- status ---- */

static void status_fill(struct core *c, struct status_snapshot *s, int64_t now)
{
    const struct ingest_counters *ic = ingest_counters(c->ingest);
    memset(s, 0, sizeof *s);
    s->uptime_s = (now - c->start_mono_ms) / 1000;
    s->clock_synced = plat_clock_synced();
    s->clock_unanchored = c->unanchored;
    s->clock_anchored = c->anchored;
    s->clock_steps = c->clock_steps;
    s->mqtt_connected = atomic_load(&ic->connected) != 0;
    s->mqtt_connects = atomic_load(&ic->connects);
    s->broker_dropped = atomic_load(&ic->broker_dropped);
    s->received = atomic_load(&ic->received);
    s->duplicates = atomic_load(&ic->duplicates);
    s->accepted = c->accepted_committed;
    memcpy(s->rejected, c->rejected_committed, sizeof s->rejected);
    s->rate_per_s = c->rate_per_s;
    s->log_seq = mlog_committed_seq(c->log);
    s->log_bytes = mlog_bytes(c->log);
    s->journal_bytes = journal_uncommitted_bytes(c->journal);
    s->replayed = c->replayed;
    s->storage_error = c->storage_failed ? c->storage_error : NULL;
    if (!s->storage_error && journal_sync_failing(c->journal))
        s->storage_error = "journal: msync failing (strict: ingest held, not acknowledged)";
    s->log_used_bytes = c->used_bytes;
    s->log_max_bytes = c->cfg->storage.max_bytes;
    s->log_full_paused = c->log_full_paused;
    s->log_trimmed_events = c->trimmed_events;
    s->log_oldest_seq = c->trimmed_events ? mlog_oldest_seq(c->log) : 1;
    s->series = mlog_series_count(c->log);
    s->speed_memory_bytes = speed_memory_bytes(c->speed);
    s->queries = requests_counters(c->requests);
    s->requests_busy = atomic_load(&ic->requests_busy);
    s->requests_busy_unsent = atomic_load(&ic->requests_busy_unsent);
    s->replies_unsent = atomic_load(&ic->replies_unsent);
    for (int p = 0; p < QTOPIC_COUNT; p++)
        s->rejected_at_intake[p] = atomic_load(&ic->requests_rejected[p]);
    s->serving_memory_bytes = requests_memory_bytes(c->requests);
    if (c->batch) {
        s->batch_enabled = true;
        batch_get_status(c->batch, &s->batch);
    }
    if (c->sync)
        sync_get_status(c->sync, &s->sync);
}

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
            storage_failed(c, st, "anchoring");
            break;
        }
        commit(c);
        if (c->storage_failed)
            break;
        c->anchored += moved;
    }
    speed_lane_reset(c->speed, SPEED_PROVISIONAL);
    if (mlog_scan_unanchored(c->log, rebuild_provisional, c->speed) != EL_OK)
        log_error("cannot rebuild the provisional speed lane; those readings are missing from "
                  "answers until the next anchoring tick");
    speed_epoch_end(c->speed);
}

/* Once a second: notices wall-clock steps, and once the clock is
 * synchronised places the events that waited for it (mlog.h, "Clocks") in
 * time, a bounded number of chunks per tick, each its own commit. */
static void clock_tick(struct core *c)
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
        commit(c); /* each chunk gets the whole pending list */
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

/* A serving thread asked for the status document as of now. */
static void refresh_board(struct core *c, int64_t now)
{
    struct status_snapshot s;
    status_fill(c, &s, now);
    size_t len = status_format(&s, c->status_buf, sizeof c->status_buf);
    if (len > 0)
        status_board_set(c->board, c->status_buf, len);
}

static void status_tick(struct core *c, int64_t now, bool force)
{
    struct status_snapshot s;
    if (!force && now - c->status_tick_ms < STATUS_MIN_INTERVAL_MS)
        return;
    c->status_tick_ms = now;
    if (now - c->rate_last_ms >= 1000) {
        double dt = (double)(now - c->rate_last_ms) / 1000.0;
        double rate = (double)(c->accepted_committed - c->rate_last_accepted) / dt;
        c->rate_per_s = c->rate_last_ms ? (double)(int64_t)(rate * 10.0 + 0.5) / 10.0 : 0.0;
        c->rate_last_accepted = c->accepted_committed;
        c->rate_last_ms = now;
        if (c->batch) {
            /* Only events need covering: a trailing dead letter is no work. */
            int64_t ev = mlog_committed_event_seq(c->log);
            batch_tick(c->batch, c->rate_per_s, ev < c->visible_seq ? ev : c->visible_seq);
        }
        retention_tick(c);
        clock_tick(c);
    }
    status_fill(c, &s, now);
    /* "On change": everything but uptime and rate. */
    uint64_t key = s.accepted * 31 + s.received * 17 + s.duplicates * 7 + (uint64_t)s.log_seq +
                   s.series * 131 + (s.mqtt_connected ? 1u : 0u) + s.mqtt_connects * 1009 +
                   (s.storage_error ? 99991u : 0u) + (s.clock_synced ? 7919u : 0u) +
                   (uint64_t)s.batch.watermark_seq * 13 + (s.batch.running ? 5u : 0u) +
                   (uint64_t)s.batch.runs * 10007 + (uint64_t)s.sync.acked_seq * 17 +
                   (uint64_t)s.sync.parked_batches * 23 + (s.log_full_paused ? 29u : 0u) +
                   s.log_trimmed_events * 31 + (uint64_t)s.broker_dropped * 37 +
                   (uint64_t)s.sync.backlog_events * 41 + (uint64_t)s.clock_unanchored * 43 +
                   s.clock_steps * 47 +
                   plat_hash64(PLAT_HASH64_INIT, s.sync.last_error, strlen(s.sync.last_error));
    for (unsigned r = 0; r < INGEST_REASON_COUNT; r++)
        key = key * 3 + s.rejected[r];
    key = key * 3 + atomic_load(&s.queries->received);
    /* The document for {"op":"status"} is at most a second old. */
    size_t len = status_format(&s, c->status_buf, sizeof c->status_buf);
    if (len == 0)
        return;
    status_board_set(c->board, c->status_buf, len);
    if (!force && key == c->status_last_key && now - c->status_last_ms < STATUS_HEARTBEAT_MS)
        return;
    if (ingest_publish_status(c->ingest, c->status_buf, len) == EL_OK) {
        c->status_last_key = key;
        c->status_last_ms = now;
    }
}

/* ---- the loop ---- */

static el_status setup_fds(struct core *c)
{
    sigset_t set;
    struct epoll_event ev = {.events = EPOLLIN};
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    c->epfd = epoll_create1(EPOLL_CLOEXEC);
    c->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    c->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (c->epfd < 0 || c->evfd < 0 || c->sigfd < 0) {
        log_error("cannot create event loop descriptors: %s", strerror(errno));
        return EL_IO;
    }
    ev.data.fd = c->evfd;
    if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->evfd, &ev) != 0)
        return EL_IO;
    ev.data.fd = c->sigfd;
    if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->sigfd, &ev) != 0)
        return EL_IO;
    return EL_OK;
}

static void handle_events(struct core *c, int timeout_ms)
{
    struct epoll_event evs[4];
    int n = epoll_wait(c->epfd, evs, 4, timeout_ms);
    for (int i = 0; i < n; i++) {
        if (evs[i].data.fd == c->evfd) {
            uint64_t v;
            ssize_t r = read(c->evfd, &v, sizeof v);
            (void)r;
        } else if (evs[i].data.fd == c->sigfd) {
            struct signalfd_siginfo si;
            while (read(c->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
                if (si.ssi_signo == SIGHUP) {
                    log_info("SIGHUP ignored (restart to change the configuration)");
                    continue;
                }
                if (!c->stopping) {
                    log_info("signal %u: stopping (draining the journal)", si.ssi_signo);
                    c->stopping = true;
                    c->stop_started_ms = plat_clock_mono_ms();
                    plat_systemd_stopping();
                    ingest_stop_begin(c->ingest, 250);
                }
            }
        }
    }
}

static int next_timeout_ms(const struct core *c, int64_t now)
{
    int64_t t = STATUS_MIN_INTERVAL_MS;
    if (c->oldest_pending_mono_ms != 0) {
        int64_t due = c->oldest_pending_mono_ms + c->cfg->storage.flush_interval_ms - now;
        t = due < t ? due : t;
    }
    if (c->storage_failed)
        t = t < STORAGE_RETRY_MS ? t : STORAGE_RETRY_MS;
    if (c->stopping)
        t = t < 10 ? t : 10;
    if (c->watchdog_period_ms > 0) {
        int64_t due = c->watchdog_last_ms + c->watchdog_period_ms - now;
        t = due < t ? due : t;
    }
    return t < 0 ? 0 : (int)t;
}

static void loop(struct core *c)
{
    for (;;) {
        int n = drain(c);
        int64_t now = plat_clock_mono_ms();
        if (commit_due(c, now))
            commit(c);
        status_tick(c, now, false);
        if (status_board_wanted(c->board))
            refresh_board(c, now);
        if (c->watchdog_period_ms > 0 && now - c->watchdog_last_ms >= c->watchdog_period_ms) {
            plat_systemd_watchdog();
            c->watchdog_last_ms = now;
        }
        /* A disconnect that never completes (the broker vanished at the same
         * moment) must not hold the stop forever. */
        bool mqtt_done =
            c->stopping && (ingest_stopped(c->ingest) || now - c->stop_started_ms > 5000);
        if (mqtt_done && (c->storage_failed || c->log_full_paused) &&
            now - c->stop_started_ms > 5000) {
            log_error("stopping while the master log cannot be written; acknowledged events stay "
                      "in the journal and are replayed at the next start");
            /* A message held unacknowledged in the Paho thread cannot be
             * refused: ingest exits without acknowledging it (redelivered). */
            journal_shutdown(c->journal);
            return;
        }
        if (mqtt_done && n == 0 && !journal_has_unread(c->journal)) {
            commit(c);
            if (!c->storage_failed)
                return;
            if (now - c->stop_started_ms > 5000) {
                log_error("stopping with uncommitted events; they stay in the journal and are "
                          "replayed at the next start");
                return;
            }
        }
        if (n == DRAIN_BATCH)
            continue;
        /* Waiting for storage (a failed commit's retry, or stop_ingest): sleep
         * instead of spinning; signals, requests and the timer still wake us. */
        if (c->log_full_paused || (c->storage_failed && now < c->storage_retry_at_ms)) {
            handle_events(c, next_timeout_ms(c, now));
            continue;
        }
        if (n > 0 && !c->stopping && !commit_due(c, plat_clock_mono_ms())) {
            /* More may be arriving: check the signals without sleeping. */
            handle_events(c, 0);
            continue;
        }
        if (journal_consumer_sleep(c->journal)) {
            handle_events(c, next_timeout_ms(c, plat_clock_mono_ms()));
            journal_consumer_awake(c->journal);
        } else {
            handle_events(c, 0);
        }
    }
}

el_status core_run(const struct el_config *cfg)
{
    struct core *c = calloc(1, sizeof *c);
    struct journal_opts jo;
    struct mlog_opts mo;
    char boot_id[64];
    el_status st;
    if (!c)
        return EL_NOMEM;
    c->cfg = cfg;
    c->commit_cap = COMMIT_MAX_EVENTS;
    c->clock_synced_logged = -1;
    c->epfd = c->evfd = c->sigfd = -1;
    c->start_mono_ms = plat_clock_mono_ms();
    plat_clock_boot_id(boot_id, sizeof boot_id);

    st = setup_fds(c);
    if (st != EL_OK)
        goto out;
    c->pending = calloc(PENDING_MAX, sizeof c->pending[0]);
    if (!c->pending) {
        st = EL_NOMEM;
        goto out;
    }
    st = status_board_new(core_wake, c, &c->board);
    if (st != EL_OK)
        goto out;
    st = speed_new((uint32_t)cfg->speed.max_series, (uint32_t)cfg->speed.slots,
                   cfg->speed.bucket_ms, (uint32_t)cfg->speed.raw_samples, &c->speed);
    if (st != EL_OK) {
        log_error("cannot allocate the speed layer (%d series x %d slots): %s",
                  cfg->speed.max_series, cfg->speed.slots, el_status_str(st));
        goto out;
    }
    mo.dir = cfg->storage.dir;
    mo.max_series = (uint32_t)cfg->speed.max_series;
    mo.max_db_bytes = cfg->storage.hard_max_bytes;
    if (mo.max_db_bytes == 0 && cfg->storage.max_bytes > 0) {
        int64_t reserve = cfg->storage.max_bytes / 4;
        mo.max_db_bytes = cfg->storage.max_bytes + (reserve > (4 << 20) ? reserve : (4 << 20));
    }
    c->ceiling_bytes = mo.max_db_bytes;
    st = mlog_open(&mo, boot_id, plat_clock_wall_ms(), plat_clock_mono_ms(), &c->log);
    if (st != EL_OK) {
        log_error("cannot open the master log in %s: %s", cfg->storage.dir, el_status_str(st));
        goto out;
    }
    jo.dir = cfg->storage.dir;
    jo.segment_bytes = (size_t)cfg->storage.journal_segment_bytes;
    jo.segments = (uint32_t)cfg->storage.journal_segments;
    jo.strict = cfg->storage.durability == EL_DURABILITY_STRICT;
    st = journal_open(&jo, &c->journal);
    if (st != EL_OK) {
        log_error("cannot open the ingest journal in %s: %s", cfg->storage.dir, el_status_str(st));
        goto out;
    }
    st = ingest_new(cfg, c->journal, &c->ingest);
    if (st != EL_OK)
        goto out;
    st = recover(c);
    if (st != EL_OK)
        goto out;
    int64_t min_unanchored;
    st = mlog_unanchored(c->log, &c->unanchored, &min_unanchored);
    if (st != EL_OK)
        goto out;
    c->has_unanchored = c->unanchored > 0;
    c->visible_seq = mlog_visible_seq(c->log);
    journal_set_wakeup(c->journal, core_wake, c);
    log_info("edgelambdad %s: master log %s/master.db at sequence %lld, %u series, durability %s",
             EL_VERSION, cfg->storage.dir, (long long)mlog_last_seq(c->log),
             mlog_series_count(c->log),
             cfg->storage.durability == EL_DURABILITY_STRICT ? "strict" : "normal");
    st = batch_new(cfg, &c->batch);
    if (st != EL_OK) {
        log_error("cannot start the batch worker: %s", el_status_str(st));
        goto out;
    }
    st = sync_new(cfg, &c->sync);
    if (st == EL_OK && c->sync) {
        sync_notify_committed(c->sync, c->visible_seq);
        st = sync_start(c->sync);
    }
    if (st != EL_OK) {
        log_error("cannot start sync: %s", el_status_str(st));
        goto out;
    }
    st = requests_start(cfg, c->ingest, c->speed, c->batch, c->sync, c->board, &c->requests);
    if (st != EL_OK)
        goto out;
    st = ingest_start(c->ingest);
    if (st != EL_OK)
        goto out;
    c->watchdog_period_ms = plat_systemd_watchdog_period_ms();
    plat_systemd_ready("ingesting");
    loop(c);
    log_info("stopped cleanly at sequence %lld", (long long)mlog_last_seq(c->log));
out:
    requests_stop(c->requests); /* ends the query being answered, joins */
    ingest_free(c->ingest);     /* no more wake-ups into the requests after this */
    requests_free(c->requests);
    sync_free(c->sync);
    batch_free(c->batch);
    speed_free(c->speed);
    status_board_free(c->board);
    free(c->pending);
    journal_close(c->journal);
    mlog_close(c->log);
    if (c->sigfd >= 0)
        close(c->sigfd);
    if (c->evfd >= 0)
        close(c->evfd);
    if (c->epfd >= 0)
        close(c->epfd);
    free(c);
    return st;
}
