/*
 * core_status — once a second: the ingest rate, the batch layer's tick,
 * retention (storage/retention.h decides and trims; here the policy's
 * consequences: pausing commits under stop_ingest, asking the views to
 * catch up), the clocks; then the status document, published retained on
 * change (at most once a second, and every STATUS_HEARTBEAT_MS) and left
 * on the board for {"op":"status"}.
 *
 * Threading: the core thread.
 */
#include <string.h>

#include "core_int.h"
#include "plat_clock.h"
#include "plat_hash.h"

/* ---- retention ---- */

#define RAW_TS_PERIOD_MS 10000 /* status: the oldest event time, at most this often */

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
    } else if (c->sync_floor >= 0 && c->live->sync.url[0] != '\0' && c->sync_floor < limit) {
        limit = c->sync_floor; /* sync failed to restart: what it had not shipped stays */
    }
    return limit;
}

void core_set_paused(struct core *c, bool paused)
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

/* What storage.max_bytes counts beside master.db: views.db's used pages (as
 * the batch worker last measured them) and the journal's uncommitted records. */
static int64_t other_bytes(struct core *c)
{
    int64_t n = (int64_t)journal_uncommitted_bytes(c->journal);
    if (c->batch) {
        struct batch_status bs;
        batch_get_status(c->batch, &bs);
        n += bs.tiers.used_bytes;
    }
    return n;
}

/* The views ladder's settings go to the batch worker every second (a reload
 * applies them). */
static void ladder_settings(struct core *c)
{
    const struct el_config *cfg = c->cfg;
    int64_t keep[VIEWS_N_RES] = {cfg->storage.keep_1m_s * 1000, cfg->storage.keep_1h_s * 1000,
                                 cfg->storage.keep_1d_s * 1000};
    batch_set_ladder(c->batch, keep, cfg->storage.full_policy == EL_FULL_DROP_OLDEST);
}

/* retention.h 1c after 1b: drop_oldest removes uncovered or unshipped raw
 * events only once the ladder has nothing left to shed, judged from the
 * tiers the batch worker last published (with no batch layer, none known,
 * or no true clock, the worker sheds nothing). */
static bool nothing_to_shed(struct core *c, bool drop_oldest)
{
    struct batch_status bs;
    struct ladder_tier lt[RETENTION_LADDER_N];
    struct ladder_step step;
    if (!c->batch || !plat_clock_synced())
        return true;
    batch_get_status(c->batch, &bs);
    if (!bs.tiers_known)
        return true;
    for (int k = 0; k < RETENTION_LADDER_N; k++)
        lt[k] = (struct ladder_tier){views_res_ms[k], 0, bs.tiers.tier[k].rows,
                                     bs.tiers.tier[k].oldest, 0};
    return !retention_ladder_next(lt, plat_clock_wall_ms(), true, drop_oldest, &step);
}

static void retention_outcome(struct core *c, const struct retention_result *r, bool drop_oldest)
{
    switch (r->outcome) {
    case RETENTION_IDLE: core_set_paused(c, false); break;
    case RETENTION_BLOCKED: core_set_paused(c, !drop_oldest); break;
    case RETENTION_FAILED:
        plat_log_limited(&c->retention_limit, 60000, PLAT_LOG_ERROR, "retention failed: %s",
                         el_status_str(r->st));
        break;
    case RETENTION_TRIMMED:
        c->raw_oldest_at_ms = 0; /* status reads the oldest event time again */
        c->trimmed_events += (uint64_t)(r->upto - r->first + 1);
        if (r->by_age)
            c->aged_events += (uint64_t)(r->upto - r->first + 1);
        plat_log_limited(&c->retention_limit, 60000, PLAT_LOG_INFO,
                         "retention: removed sequences %lld..%lld from the master log (%s)",
                         (long long)r->first, (long long)r->upto,
                         r->by_age ? "older than storage.max_age_s"
                         : r->over ? "over storage.max_bytes"
                                   : "a commit did not fit under the hard quota");
        if (!r->by_age) {
            c->commit_no_space = false; /* room was made: the next failure says again */
            core_set_paused(c, false);
        } else if (retention_age_unpauses(r, c->cfg->storage.max_bytes, c->commit_no_space)) {
            core_set_paused(c, false); /* the age trim left the total under the bound */
        }
        break;
    }
}

/* Once a second: storage/retention.h keeps the master log under
 * storage.max_bytes and max_age_s; here what its outcome means for ingest. */
void core_retention_tick(struct core *c)
{
    const struct el_config *cfg = c->cfg;
    bool drop_oldest = cfg->storage.full_policy == EL_FULL_DROP_OLDEST;
    /* Event time is compared with the wall clock: only a synchronised one. */
    struct retention_opts ro = {cfg->storage.max_bytes, drop_oldest,
                                plat_clock_synced() ? cfg->storage.max_age_s * 1000 : 0,
                                plat_clock_wall_ms(), false};
    struct retention_result r;
    if (c->batch)
        ladder_settings(c);
    int64_t other = other_bytes(c);
    if (cfg->storage.max_bytes <= 0 && ro.max_age_ms <= 0) {
        c->used_bytes = mlog_used_bytes(c->log);
        c->total_bytes = c->used_bytes + other;
        core_set_paused(c, false); /* a reload may have lifted the bound */
        return;
    }
    if (c->batch && batch_running(c->batch)) {
        /* A run reads the log in chunks: nothing may vanish under it (views.h). */
        c->used_bytes = mlog_used_bytes(c->log);
        c->total_bytes = c->used_bytes + other;
        if ((cfg->storage.max_bytes <= 0 || c->total_bytes <= cfg->storage.max_bytes) &&
            !c->commit_no_space)
            core_set_paused(c, false);
        return;
    }
    if (c->oldest_pending_mono_ms != 0 && !c->storage_failed) {
        core_commit(c);         /* mlog_trim needs no transaction open */
        other = other_bytes(c); /* what it committed left the journal's uncommitted bytes */
    }
    ro.nothing_to_shed = nothing_to_shed(c, drop_oldest);
    retention_tick(c->log, &ro, removable_upto(c), other, c->commit_no_space, &r);
    c->used_bytes = r.used_bytes;
    c->total_bytes = r.total_bytes;
    /* Let the views catch up when they (not sync) keep old or excess raw
     * events from going. */
    int64_t ev = mlog_committed_event_seq(c->log);
    if (c->batch && !batch_running(c->batch) &&
        ((r.views_behind && r.outcome != RETENTION_IDLE) ||
         r.aged_upto > batch_watermark(c->batch)) &&
        batch_watermark(c->batch) < (ev < c->visible_seq ? ev : c->visible_seq))
        batch_request(c->batch, false, "retention");
    /* Views are shed only once they cover everything: until then a run
     * makes raw events removable (retention.h 1a before 1b). */
    if (r.shed_views && c->batch &&
        batch_watermark(c->batch) >= (ev < c->visible_seq ? ev : c->visible_seq))
        batch_request_shed(c->batch);
    retention_outcome(c, &r, drop_oldest);
}

/* ---- status ---- */

/* The per-request counters: the serving thread's and the intake's. */
static void fill_queries(struct core *c, struct status_queries *q)
{
    const struct control_counters *cc = control_counters(c->control);
    const struct requests_counters *rc = requests_counters(c->requests);
    q->received = atomic_load(&rc->received);
    q->answered = atomic_load(&rc->answered);
    for (int e = 0; e < RQ_ERR_COUNT; e++)
        q->errors[e] = atomic_load(&rc->errors[e]);
    for (int p = 0; p < MQTT_TOPIC_COUNT; p++)
        q->rejected[p] = atomic_load(&rc->rejected[p]) + atomic_load(&cc->requests_rejected[p]);
    q->unsent = atomic_load(&rc->unsent) + atomic_load(&cc->replies_unsent);
    q->busy_at_intake = atomic_load(&cc->requests_busy);
    q->busy_unsent = atomic_load(&cc->requests_busy_unsent);
    q->slow = atomic_load(&rc->slow);
    q->quick = atomic_load(&rc->quick);
    q->quick_declined = atomic_load(&rc->quick_declined);
    q->memory_bytes = requests_memory_bytes(c->requests);
}

static void fill_continuous(struct core *c, struct status_continuous *s)
{
    const struct continuous_counters *k = requests_continuous_counters(c->requests);
    s->queries = (uint64_t)atomic_load(&k->queries);
    s->watches = (uint64_t)atomic_load(&k->watches);
    s->published = atomic_load(&k->published);
    s->corrections = atomic_load(&k->corrections);
    s->partials = atomic_load(&k->partials);
    s->dropped = atomic_load(&k->dropped);
    s->unsent = atomic_load(&k->unsent);
    s->errors = atomic_load(&k->errors);
    s->too_late = atomic_load(&k->too_late);
    s->cells_full = atomic_load(&k->cells_full);
    s->tail_seq = atomic_load(&k->tail_seq);
}

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
    s->mqtt_tcp_nodelay = atomic_load(&ic->tcp_nodelay) != 0;
    s->broker_dropped = atomic_load(&ic->broker_dropped);
    if (c->control) {
        const struct control_counters *cc = control_counters(c->control);
        s->control_connected = atomic_load(&cc->connected) != 0;
        s->control_connects = atomic_load(&cc->connects);
    }
    s->ingest_held = journal_held(c->journal);
    s->sparkplug_on = atomic_load(&ic->sparkplug_on) != 0;
    s->sp_births = atomic_load(&ic->sp_births);
    s->sp_deaths = atomic_load(&ic->sp_deaths);
    s->sp_seq_gaps = atomic_load(&ic->sp_seq_gaps);
    s->sp_unknown_alias = atomic_load(&ic->sp_unknown_alias);
    s->sp_aliases_full = atomic_load(&ic->sp_aliases_full);
    s->received = atomic_load(&ic->received);
    s->duplicates = atomic_load(&ic->duplicates);
    s->dl_replayed = c->replay_letters_committed;
    s->dl_replayed_events = c->replay_events_committed;
    s->dl_replay_refused = c->replay_refused_committed;
    if (c->replay) {
        const struct replay_counters *rc = replay_counters(c->replay);
        s->dl_replay_runs = atomic_load(&rc->runs);
        s->dl_replay_failed = atomic_load(&rc->failed);
        s->dl_replay_skipped = atomic_load(&rc->skipped);
    }
    s->accepted = c->accepted_committed;
    memcpy(s->rejected, c->rejected_committed, sizeof s->rejected);
    s->rate_per_s = c->rate_per_s;
    s->log_seq = mlog_committed_seq(c->log);
    s->log_bytes = mlog_bytes(c->log);
    s->journal_bytes = journal_uncommitted_bytes(c->journal);
    s->commit_ms = c->commit_ms_last;
    s->commit_ms_max = c->commit_ms_max;
    s->replayed = c->replayed;
    s->storage_error = c->storage_failed ? c->storage_error : NULL;
    if (!s->storage_error && journal_sync_failing(c->journal))
        s->storage_error = "journal: msync failing (strict: ingest held, not acknowledged)";
    if (!s->storage_error && journal_segment_error(c->journal) == EL_FULL)
        s->storage_error = "journal: no space for a new segment (ingest held, not acknowledged)";
    else if (!s->storage_error && journal_segment_error(c->journal) != EL_OK)
        s->storage_error = "journal: cannot create a new segment (ingest held, not acknowledged)";
    s->log_used_bytes = c->used_bytes;
    s->log_max_bytes = c->cfg->storage.max_bytes;
    s->log_full_paused = c->log_full_paused;
    s->log_trimmed_events = c->trimmed_events;
    s->log_oldest_seq = c->trimmed_events ? mlog_oldest_seq(c->log) : 1;
    s->storage_total_bytes = c->total_bytes ? c->total_bytes : c->used_bytes;
    s->raw_events = mlog_event_count(c->log);
    if (c->raw_oldest_at_ms == 0 || now - c->raw_oldest_at_ms >= RAW_TS_PERIOD_MS) {
        c->raw_oldest_ts = mlog_oldest_ts(c->log); /* a scan of the block summaries */
        c->raw_oldest_at_ms = now;
    }
    s->raw_oldest_ts = c->raw_oldest_ts;
    s->aged_events = c->aged_events;
    s->series = mlog_series_count(c->log);
    s->speed_memory_bytes = speed_memory_bytes(c->speed);
    s->has_queries = c->requests != NULL;
    if (c->requests)
        fill_queries(c, &s->queries);
    if (s->has_queries)
        fill_continuous(c, &s->continuous);
    if (c->batch)
        batch_get_status(c->batch, &s->batch);
    if (c->sync)
        sync_get_status(c->sync, &s->sync);
    s->reloads = c->reloads;
    s->reload_failures = c->reload_failures;
    s->reload_last_ms = c->reload_last_ms;
    memcpy(s->reload_result, c->reload_result, sizeof s->reload_result);
    status_derive(s);
}

/* A serving thread asked for the status document as of now. */
void core_refresh_board(struct core *c, int64_t now)
{
    struct status_snapshot s;
    status_fill(c, &s, now);
    size_t len = status_format(&s, c->status_buf, sizeof c->status_buf);
    if (len > 0)
        status_board_set(c->board, c->status_buf, len);
}

void core_status_tick(struct core *c, int64_t now, bool force)
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
        core_retention_tick(c);
        core_clock_tick(c);
        (void)ingest_rules_collect(c->ingest); /* decoding rules a reload replaced */
    }
    status_fill(c, &s, now);
    /* "On change": everything but uptime and rate. */
    uint64_t key = s.accepted * 31 + s.received * 17 + s.duplicates * 7 + (uint64_t)s.log_seq +
                   s.dl_replay_runs * 1019 + s.series * 131 + (s.mqtt_connected ? 1u : 0u) +
                   s.mqtt_connects * 1009 + s.control_connects * 1013 + (s.ingest_held ? 53u : 0u) +
                   (s.storage_error ? 99991u : 0u) + (s.clock_synced ? 7919u : 0u) +
                   (uint64_t)s.batch.watermark_seq * 13 + (s.batch.running ? 5u : 0u) +
                   (uint64_t)s.batch.runs * 10007 + (uint64_t)s.sync.acked_seq * 17 +
                   (uint64_t)s.sync.parked_batches * 23 + (s.log_full_paused ? 29u : 0u) +
                   s.log_trimmed_events * 31 + (uint64_t)s.broker_dropped * 37 +
                   (uint64_t)s.sync.backlog_events * 41 + (uint64_t)s.clock_unanchored * 43 +
                   s.clock_steps * 47 + (uint64_t)s.raw_events * 53 + s.aged_events * 59 +
                   (uint64_t)s.batch.dropped_rows * 61 + (uint64_t)s.batch.tiers.tier[0].rows * 67 +
                   (uint64_t)s.batch.tiers.tier[1].rows * 71 +
                   (uint64_t)s.batch.tiers.tier[2].rows * 73 + (uint64_t)s.raw_oldest_ts * 79 +
                   plat_hash64(PLAT_HASH64_INIT, s.sync.last_error, strlen(s.sync.last_error));
    for (unsigned r = 0; r < INGEST_REASON_COUNT; r++)
        key = key * 3 + s.rejected[r];
    key = key * 3 + s.queries.received;
    /* The document for {"op":"status"} is at most a second old. */
    size_t len = status_format(&s, c->status_buf, sizeof c->status_buf);
    if (len == 0)
        return;
    status_board_set(c->board, c->status_buf, len);
    if (!force && key == c->status_last_key && now - c->status_last_ms < STATUS_HEARTBEAT_MS)
        return;
    metrics_publish(c->metrics, c->status_buf, len); /* metrics.textfile */
    if (c->control && control_publish_status(c->control, c->status_buf, len) == EL_OK) {
        c->status_last_key = key;
        c->status_last_ms = now;
    }
}
