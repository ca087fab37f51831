/*
 * replay — dead-letter replay (design in replay.h).
 *
 * Ownership: struct replay owns its master-log reader and the decode
 * scratch; the ingest and the speed layer are borrowed. A request's tallies
 * live in struct replay (no allocation per request).
 */
#include "replay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mlog_read.h"
#include "plat_clock.h"
#include "plat_jsonw.h"
#include "plat_log.h"
#include "serve.h"

#define REASONS_MAX 16 /* distinct reasons tallied per request */

struct tally {
    const char *reason[REASONS_MAX]; /* static strings (ingest_replay_out.reason) */
    uint32_t count[REASONS_MAX];
    uint32_t n;
};

struct listed {
    int64_t seq;
    char topic[128];
    const char *reason;
    char detail[DECODE_DETAIL_MAX + 40];
};

/* One request's progress. */
struct run {
    const struct query *q;
    uint32_t examined, taken, replayed, events;
    int64_t last_seq;      /* the highest dead letter examined: the next "after" */
    uint64_t last_journal; /* the last seq journaled, 0 if none */
    uint32_t new_series;   /* series the records journaled will add (not in the reader yet) */
    struct tally failed, skipped;
    struct listed listed[REPLAY_LISTED_MAX];
    uint32_t n_listed;
    el_status error; /* the journal refused (shutdown): stop */
};

struct replay {
    struct replay_opts o;
    struct ingest *ing;
    const struct speed *sp;
    struct mlog_reader *reader;
    struct ingest_replay_scratch *scratch;
    struct replay_counters counters;
    _Atomic int stop;
    uint64_t pending_upto; /* the last seq journaled by a request, maybe not committed */
    struct run run;
};

el_status replay_new(const struct replay_opts *opts, struct ingest *ing, const struct speed *sp,
                     struct replay **out)
{
    struct replay *rp = calloc(1, sizeof *rp);
    *out = NULL;
    if (!rp)
        return EL_NOMEM;
    rp->o = *opts;
    rp->ing = ing;
    rp->sp = sp;
    el_status st = ingest_replay_scratch_new(&rp->scratch);
    if (st == EL_OK)
        st = mlog_reader_open(opts->dir, opts->max_series, &rp->reader);
    if (st != EL_OK) {
        replay_free(rp);
        return st;
    }
    *out = rp;
    return EL_OK;
}

void replay_free(struct replay *rp)
{
    if (!rp)
        return;
    mlog_reader_close(rp->reader);
    ingest_replay_scratch_free(rp->scratch);
    free(rp);
}

void replay_stop(struct replay *rp)
{
    if (rp)
        atomic_store(&rp->stop, 1);
}

const struct replay_counters *replay_counters(const struct replay *rp)
{
    return &rp->counters;
}

/* Waits (bounded) until the core committed everything up to seq; true if
 * it did. Polls the speed layer's cursor: the core publishes it after each
 * commit and has no other wake-up for this thread. */
static bool wait_committed(struct replay *rp, uint64_t seq)
{
    int64_t deadline = plat_clock_mono_ms() + rp->o.flush_interval_ms + REPLAY_COMMIT_SLACK_MS;
    for (;;) {
        if ((uint64_t)speed_cursor(rp->sp) >= seq)
            return true;
        if (atomic_load(&rp->stop) || plat_clock_mono_ms() > deadline)
            return false;
        plat_sleep_ms(2);
    }
}

static void tally_add(struct tally *t, const char *reason)
{
    uint32_t i = 0;
    while (i < t->n && strcmp(t->reason[i], reason) != 0)
        i++;
    if (i == t->n && t->n < REASONS_MAX) {
        t->reason[t->n++] = reason;
    } else if (i == t->n) { /* the last entry holds the rest */
        i = REASONS_MAX - 1;
        t->reason[i] = "other";
    }
    t->count[i]++;
}

static void list_one(struct run *run, const struct mlog_dead_row *d,
                     const struct ingest_replay_out *out)
{
    if (run->n_listed >= REPLAY_LISTED_MAX)
        return;
    struct listed *l = &run->listed[run->n_listed++];
    l->seq = d->seq;
    snprintf(l->topic, sizeof l->topic, "%.*s", (int)d->topic_len, d->topic);
    l->reason = out->reason;
    snprintf(l->detail, sizeof l->detail, "%s", out->detail);
}

/* ingest_replay_in.known: the reader's series dictionary (this snapshot's). */
static bool series_known(void *ctx, const char *name, size_t len)
{
    uint32_t id;
    return series_dict_find(ctx, name, len, &id);
}

/* The scan's callback: one dead letter not replayed yet. */
static bool replay_row(void *ctx, const struct mlog_dead_row *d)
{
    struct replay *rp = ctx;
    struct run *run = &rp->run;
    struct ingest_replay_out out;
    if (atomic_load(&rp->stop) && run->error == EL_OK)
        run->error = EL_AGAIN; /* shutdown: journal nothing more */
    if (run->error != EL_OK)
        return false; /* the cursor stays before this row: it is asked again */
    run->examined++;
    if (!query_name_selected(run->q, d->topic, d->topic_len)) {
        run->last_seq = d->seq > run->last_seq ? d->seq : run->last_seq;
        return false;
    }
    const struct series_dict *dict = mlog_reader_series(rp->reader);
    struct ingest_replay_in in = {
        .dead_seq = d->seq,
        .topic = d->topic,
        .topic_len = d->topic_len,
        .payload = d->payload,
        .payload_len = d->payload_len,
        .payload_bytes = d->payload_bytes,
        .recv_ms = d->recv_ms,
        .mono_ms = d->mono_ms,
        .flags = d->flags,
        .reason = d->reason,
        .detail = d->detail,
        .known = dict ? series_known : NULL,
        .known_ctx = (void *)(uintptr_t)dict,
    };
    if (dict) {
        uint32_t used = series_dict_count(dict) + run->new_series;
        in.series_room = used < series_dict_capacity(dict) ? series_dict_capacity(dict) - used : 0;
    }
    el_status st = ingest_replay(rp->ing, rp->scratch, &in, &out);
    if (st == EL_INVAL) { /* cannot fit a journal segment: report, keep it */
        out.outcome = INGEST_REPLAY_FAILED;
        out.reason = "too_large";
        snprintf(out.detail, sizeof out.detail, "the record would not fit a journal segment");
    } else if (st != EL_OK) {
        run->error = st; /* not journaled: the cursor stays before it */
        return false;
    }
    run->last_seq = d->seq > run->last_seq ? d->seq : run->last_seq;
    run->taken++;
    if (out.outcome == INGEST_REPLAYED) {
        run->replayed++;
        run->events += out.n_events;
        run->new_series += out.new_series;
        if (out.n_events > 0)
            run->last_journal = out.first_seq + out.n_events - 1u;
        return true;
    }
    tally_add(out.outcome == INGEST_REPLAY_FAILED ? &run->failed : &run->skipped, out.reason);
    list_one(run, d, &out);
    return true;
}

static void write_tally(struct jw *w, const char *key, const struct tally *t)
{
    jw_key(w, key);
    jw_obj_begin(w);
    for (uint32_t i = 0; i < t->n; i++) {
        jw_key(w, t->reason[i]);
        jw_uint(w, t->count[i]);
    }
    jw_obj_end(w);
}

static uint32_t tally_total(const struct tally *t)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < t->n; i++)
        n += t->count[i];
    return n;
}

/* {"ok":true,"op":"replay_deadletters","examined":..,"replayed":..,"events":..,
 *  "failed":N,"failed_by_reason":{..},"skipped":N,"skipped_by_reason":{..},
 *  "not_replayed":[{"seq","topic","reason","detail"},..],"after":SEQ,"done":B,
 *  "committed":B,"seq":S} */
static size_t write_reply(const struct run *run, const char *id, bool done, bool committed,
                          uint64_t seq, char *buf, size_t cap)
{
    struct jw w;
    jw_init(&w, buf, cap);
    serve_reply_head(&w, true, id);
    jw_key(&w, "op");
    jw_str(&w, "replay_deadletters");
    jw_key(&w, "examined");
    jw_uint(&w, run->examined);
    jw_key(&w, "replayed");
    jw_uint(&w, run->replayed);
    jw_key(&w, "events");
    jw_uint(&w, run->events);
    jw_key(&w, "failed");
    jw_uint(&w, tally_total(&run->failed));
    write_tally(&w, "failed_by_reason", &run->failed);
    jw_key(&w, "skipped");
    jw_uint(&w, tally_total(&run->skipped));
    write_tally(&w, "skipped_by_reason", &run->skipped);
    jw_key(&w, "not_replayed");
    jw_arr_begin(&w);
    for (uint32_t i = 0; i < run->n_listed; i++) {
        const struct listed *l = &run->listed[i];
        jw_obj_begin(&w);
        jw_key(&w, "seq");
        jw_int(&w, l->seq);
        jw_key(&w, "topic");
        jw_str(&w, l->topic);
        jw_key(&w, "reason");
        jw_str(&w, l->reason);
        jw_key(&w, "detail");
        jw_str(&w, l->detail);
        jw_obj_end(&w);
    }
    jw_arr_end(&w);
    jw_key(&w, "after");
    jw_int(&w, run->last_seq);
    jw_key(&w, "done");
    jw_bool(&w, done);
    jw_key(&w, "committed");
    jw_bool(&w, committed);
    jw_key(&w, "seq");
    jw_uint(&w, seq);
    jw_obj_end(&w);
    return jw_ok(&w) ? jw_len(&w) : 0;
}

/* Scans and replays; *done when nothing matching is left after the cursor. */
static el_status replay_scan(struct replay *rp, const struct query *q, bool *done)
{
    struct run *run = &rp->run;
    uint64_t budget = rp->o.max_rows;
    memset(run, 0, sizeof *run);
    run->q = q;
    run->last_seq = q->after_seq;
    el_status st = mlog_reader_begin(rp->reader);
    if (st == EL_OK)
        st = mlog_reader_scan_replayable(rp->reader, q->after_seq, mlog_reader_last_seq(rp->reader),
                                         q->since_ms, q->has_reason ? q->reason : NULL,
                                         (uint32_t)q->limit, &budget, replay_row, rp);
    mlog_reader_end(rp->reader);
    /* Budget spent (EL_FULL): more rows wait after run->last_seq. */
    *done = st == EL_OK && run->taken < (uint32_t)q->limit && run->error == EL_OK;
    if (st == EL_FULL)
        st = EL_OK;
    return st != EL_OK ? st : run->error;
}

size_t replay_answer(struct replay *rp, const struct query *q, char *buf, size_t cap,
                     const char **code)
{
    const char *id = q->has_id ? q->id : NULL;
    bool done = false;
    if (rp->pending_upto > 0 && !wait_committed(rp, rp->pending_upto)) {
        *code = "busy";
        return serve_error(*code, "the previous replay is not committed yet; ask again", id, buf,
                           cap);
    }
    el_status st = replay_scan(rp, q, &done);
    struct run *run = &rp->run;
    if (run->last_journal > 0)
        rp->pending_upto = run->last_journal;
    if (run->taken)
        log_info("replay: %u dead letters examined, %u journaled (%u events, seq up to %llu), "
                 "%u still failing, %u skipped",
                 run->examined, run->replayed, run->events, (unsigned long long)run->last_journal,
                 tally_total(&run->failed), tally_total(&run->skipped));
    bool committed = rp->pending_upto == 0 || wait_committed(rp, rp->pending_upto);
    if (!committed)
        log_warn("replay: seq %llu not committed within %d ms; the journal keeps it (committed "
                 "later, or at the next start)",
                 (unsigned long long)rp->pending_upto,
                 rp->o.flush_interval_ms + REPLAY_COMMIT_SLACK_MS);
    atomic_fetch_add(&rp->counters.runs, 1);
    atomic_fetch_add(&rp->counters.journaled, run->replayed);
    atomic_fetch_add(&rp->counters.failed, tally_total(&run->failed));
    atomic_fetch_add(&rp->counters.skipped, tally_total(&run->skipped));
    if (st != EL_OK && run->replayed == 0) {
        bool stopping = st == EL_AGAIN;
        *code = stopping ? "unavailable" : "internal";
        const char *why = stopping ? "the daemon is stopping" : "reading the dead letters failed";
        return serve_error(*code, why, id, buf, cap);
    }
    return write_reply(run, id, done && st == EL_OK, committed, rp->pending_upto, buf, cap);
}
