/*
 * core_commit — the group commit (design in core.h and core_int.h): journal
 * records are appended to the open master-log transaction and committed
 * every storage.flush_interval_ms (or COMMIT_MAX_EVENTS); only committed
 * events reach the speed layer, which then publishes how far it got. Also
 * the start-up: journal replay, the speed layer's rebuild from the ring
 * window, duplicate detection's seed.
 *
 * Threading: the core thread.
 */
#include <stdio.h>
#include <string.h>

#include "core_int.h"
#include "plat_align.h"
#include "plat_clock.h"

/* ---- applying journal records to the master log ---- */

/* A dead letter: the record's own (its detail after the payload), or one
 * event of it the core refused (detail: why). */
static el_status append_dead(struct core *c, const struct journal_rec *r, uint64_t seq,
                             unsigned reason, const char *detail, uint32_t part)
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
        .flags = r->flags | part,
        .reason = ingest_reason_str(reason),
        .detail = detail ? detail : r->payload + r->payload_len,
        .detail_len = detail        ? strlen(detail)
                      : r->n_events ? 0u
                                    : r->names_len,
    };
    el_status st = mlog_append_dead(c->log, &dl);
    if (st == EL_OK && reason < INGEST_REASON_COUNT)
        c->rejected[reason]++;
    return st;
}

/* An event's series name from its record into buf[cap]; 0 if it does not
 * fit or lies outside (journal_event_name). */
static size_t record_event_name(const struct journal_rec *r, const struct journal_event *ev,
                                char *buf, size_t cap)
{
    return journal_event_name(r->topic, r->topic_len, r->payload, r->payload_len,
                              r->payload + r->payload_len, r->names_len, ev, buf, cap);
}

static bool series_known(void *ctx, const char *name, size_t len)
{
    uint32_t id;
    return mlog_series_find(ctx, name, len, &id) == EL_OK;
}

/* A replayed dead letter's record is stored whole or not at all: a dead
 * letter the core would refuse again (a name too long, or no room for its
 * new series) stays as it is, unmarked and replayable once the limit is
 * raised; storing a new, partial dead letter instead would hide the
 * original (replay.h). NULL if every event gets its series. */
static const char *replay_refusal(struct core *c, const struct journal_rec *r, unsigned *reason)
{
    uint32_t fresh = 0;
    _Static_assert(JOURNAL_NAME_MAX == MLOG_MAX_SERIES_NAME, "one name limit");
    if (!journal_new_names(r->topic, r->topic_len, r->payload, r->payload_len,
                           r->payload + r->payload_len, r->names_len, r->events, r->n_events,
                           series_known, c->log, &fresh)) {
        *reason = INGEST_REASON_NAME_TOO_LONG;
        return INGEST_CORE_NAME_DETAIL;
    }
    if (fresh > mlog_series_max(c->log) - mlog_series_count(c->log)) {
        *reason = INGEST_REASON_SERIES_LIMIT;
        return "a new series beyond speed.max_series";
    }
    return NULL;
}

/* A replayed dead letter's record (ref): marks the dead letter in this
 * transaction; *skip when it was replayed before (its events must not be
 * stored twice: firmware/daemon/replay.h, exactly once), or when an event
 * would be refused again (replay_refusal: checked BEFORE the mark). The
 * seqs of a skipped record stay taken (mlog_skip_seqs). */
static el_status mark_replayed(struct core *c, const struct journal_rec *r, bool *skip)
{
    bool fresh = false;
    unsigned reason = 0;
    *skip = false;
    if (r->ref == 0)
        return EL_OK;
    const char *refused = replay_refusal(c, r, &reason);
    if (refused) {
        *skip = true;
        c->replay_refused++;
        log_warn("replay: dead letter %llu is still refused (%s: %s); it stays as it is, "
                 "replayable later, and its record at seq %llu is not stored",
                 (unsigned long long)r->ref, ingest_reason_str(reason), refused,
                 (unsigned long long)r->seq);
        return mlog_skip_seqs(c->log, (int64_t)(r->seq + r->n_events - 1u));
    }
    el_status st = mlog_mark_replayed(c->log, (int64_t)r->ref, (int64_t)r->seq,
                                      (int64_t)(r->seq + r->n_events - 1u), &fresh);
    if (st != EL_OK)
        return st;
    if (!fresh) {
        *skip = true;
        c->replay_doubles++;
        log_warn("replay: dead letter %llu was replayed before (or removed); its record at seq "
                 "%llu is not stored again",
                 (unsigned long long)r->ref, (unsigned long long)r->seq);
        return EL_OK;
    }
    c->replay_letters++;
    return EL_OK;
}

static el_status apply_record(struct core *c, const struct journal_rec *r)
{
    char name[MLOG_MAX_SERIES_NAME + 1];
    bool skip;
    if (r->n_events == 0)
        return append_dead(c, r, r->seq, r->reason, NULL, 0);
    el_status st = mark_replayed(c, r, &skip);
    if (st != EL_OK || skip)
        return st;
    for (uint16_t i = 0; i < r->n_events; i++) {
        struct journal_event ev;
        uint32_t id;
        uint64_t seq = r->seq + i;
        memcpy(&ev, &r->events[i], sizeof ev);
        size_t n = record_event_name(r, &ev, name, sizeof name);
        st = n ? mlog_series_get(c->log, name, n, (int64_t)seq, &id) : EL_INVAL;
        if (st == EL_FULL || st == EL_INVAL) {
            uint32_t part = MLOG_PART_FLAGS(i, r->n_events); /* replay.h: only this one */
            st = st == EL_FULL ? append_dead(c, r, seq, INGEST_REASON_SERIES_LIMIT,
                                             "a new series beyond speed.max_series", part)
                               : append_dead(c, r, seq, INGEST_REASON_NAME_TOO_LONG,
                                             INGEST_CORE_NAME_DETAIL, part);
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
        if (r->ref)
            c->replay_events++;
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

void core_storage_failed(struct core *c, el_status st, const char *what)
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
    c->replay_letters = c->replay_letters_committed;
    c->replay_events = c->replay_events_committed;
    c->replay_doubles = c->replay_doubles_committed;
    c->replay_refused = c->replay_refused_committed;
    memcpy(c->rejected, c->rejected_committed, sizeof c->rejected);
    c->oldest_pending_mono_ms = 0;
    c->n_pending = 0;
}

void core_commit(struct core *c)
{
    if (mlog_pending(c->log) == 0 && c->oldest_pending_mono_ms == 0)
        return;
    c->txn_events = mlog_pending(c->log);
    int64_t t0 = plat_clock_mono_ms();
    el_status st = mlog_commit(c->log);
    c->commit_ms_last = plat_clock_mono_ms() - t0; /* the fdatasync, mostly */
    if (c->commit_ms_last > c->commit_ms_max)
        c->commit_ms_max = c->commit_ms_last;
    if (st != EL_OK) {
        core_storage_failed(c, st, "commit");
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
    c->replay_letters_committed = c->replay_letters;
    c->replay_events_committed = c->replay_events;
    c->replay_doubles_committed = c->replay_doubles;
    c->replay_refused_committed = c->replay_refused;
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
int core_drain(struct core *c)
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
            core_storage_failed(c, st, "append");
            return n;
        }
        n++;
        if (mlog_pending(c->log) >= c->commit_cap || c->n_pending >= COMMIT_MAX_EVENTS)
            core_commit(c);
    }
    return n;
}

bool core_commit_due(const struct core *c, int64_t now)
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

void core_rebuild_provisional(void *ctx, int64_t seq, uint32_t series_id, int64_t recv_ms,
                              double value)
{
    speed_add(ctx, SPEED_PROVISIONAL, series_id, recv_ms, value, seq);
}

/* Start-up: the journal's records above the master log's last sequence
 * (acknowledged, not yet committed when the previous run ended) into the
 * master log; the journal then continues after the highest sequence seen. */
static el_status replay_journal(struct core *c)
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
        c->replayed = c->replay_letters = c->replay_events = c->replay_doubles = 0;
        c->replay_refused = 0;
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
    /* Replays the journal held count (they are committed now). */
    c->replay_letters_committed = c->replay_letters;
    c->replay_events_committed = c->replay_events;
    c->replay_doubles_committed = c->replay_doubles;
    c->replay_refused_committed = c->replay_refused;
    memset(c->rejected, 0, sizeof c->rejected);
    memset(c->rejected_committed, 0, sizeof c->rejected_committed);
    return EL_OK;
}

/* Start-up: the speed layer is rebuilt from the ring window only (speed.h,
 * HORIZON): the events whose time is at most a window before the newest
 * one, found through the block-range summary, so start-up costs the same at
 * 10 million events as at 10 thousand; plus the readings still waiting for
 * a true time (provisional lane). */
static el_status rebuild_speed(struct core *c)
{
    int64_t t0 = plat_clock_mono_ms();
    int64_t newest = mlog_newest_ts(c->log);
    int64_t window = (int64_t)(c->cfg->speed.slots - 1) * c->cfg->speed.bucket_ms;
    int64_t horizon = newest == INT64_MIN ? SPEED_MIN_TS : newest - window;
    horizon =
        plat_align_down(horizon > SPEED_MIN_TS ? horizon : SPEED_MIN_TS, c->cfg->speed.bucket_ms);
    speed_set_horizon(c->speed, horizon);
    el_status st = mlog_scan_since(c->log, horizon, rebuild_one, c->speed);
    if (st == EL_OK)
        st = mlog_scan_unanchored(c->log, core_rebuild_provisional, c->speed);
    if (st != EL_OK)
        return st;
    speed_publish(c->speed, mlog_committed_seq(c->log));
    log_info("speed layer rebuilt from the ring window (events since %lld) in %lld ms",
             (long long)horizon, (long long)(plat_clock_mono_ms() - t0));
    return EL_OK;
}

el_status core_recover(struct core *c)
{
    el_status st = replay_journal(c);
    if (st == EL_OK)
        st = rebuild_speed(c);
    if (st != EL_OK || !ingest_wants_seed(c->ingest)) /* duplicates: by packet id */
        return st;
    return mlog_scan_recent(c->log, INGEST_DEDUP_WINDOW, seed_recent, c->ingest);
}
