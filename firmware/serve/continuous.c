/*
 * continuous — continuous queries and watches (design in continuous.h).
 *
 * Ownership: struct continuous owns its master-log reader, its definitions
 * and their cells, the watch slots (a watch's cells are allocated when it is
 * made and freed when it ends: per watch request, never per message) and a
 * message buffer of CONTINUOUS_MSG_MAX bytes.
 */
#include "continuous.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mlog_read.h"
#include "plat_clock.h"
#include "plat_jsonw.h"
#include "plat_log.h"
#include "series_dict.h"

#define LOG_EVERY_MS 10000

/* A query being run: a [continuous] section or a watch. */
struct runner {
    struct cq_def def;
    struct cq_cells cells;
    bool active;
    /* watches */
    bool is_watch, open;
    uint32_t number;
    char reply_topic[CONTROL_PROP_MAX + 1];
    unsigned char corr[CONTROL_PROP_MAX];
    size_t corr_len;
    int64_t expires_mono, expires_wall;
};

struct continuous {
    struct continuous_opts o;
    struct continuous_counters counters;
    struct mlog_reader *log;
    bool started; /* the tail's start is set */
    int64_t pos;  /* the tail: every seq <= pos is seen */
    struct runner defs[CONTINUOUS_MAX_DEFS];
    int n_defs;
    struct runner *watches; /* max_watches */
    uint32_t next_watch;
    struct cq_tokens tokens;
    int64_t now; /* wall ms of the tick */
    bool synced;
    char *msg;                  /* CONTINUOUS_MSG_MAX */
    _Atomic size_t cells_bytes; /* of every runner's cells: read by the core (status) */
    char topic[2 * MQTT_TOPIC_REPLY_MAX + 2];
    struct plat_log_limit drop_limit, err_limit, full_limit, unsent_limit, tail_limit;
};

const struct continuous_counters *continuous_counters(const struct continuous *c)
{
    return &c->counters;
}

size_t continuous_memory_bytes(const struct continuous *c)
{
    return CONTINUOUS_MSG_MAX + (size_t)c->o.max_watches * sizeof c->watches[0] +
           atomic_load(&c->cells_bytes);
}

static size_t cells_bytes(const struct runner *r)
{
    return r->cells.slot ? cq_cells_slots(&r->cells) * sizeof(struct cq_cell) : 0;
}

/* A runner's cells (limit of them), counted in cells_bytes. */
static el_status runner_cells(struct continuous *c, struct runner *r, uint32_t limit)
{
    el_status st = cq_cells_init(&r->cells, limit);
    if (st == EL_OK)
        atomic_fetch_add(&c->cells_bytes, cells_bytes(r));
    return st;
}

el_status continuous_new(const struct continuous_opts *opts, struct continuous **out)
{
    struct continuous *c = calloc(1, sizeof *c);
    *out = NULL;
    if (!c)
        return EL_NOMEM;
    c->o = *opts;
    c->o.defs = NULL;
    c->o.n_defs = 0;
    c->msg = malloc(CONTINUOUS_MSG_MAX);
    c->watches = calloc((size_t)opts->max_watches, sizeof c->watches[0]);
    el_status st = c->msg && c->watches ? EL_OK : EL_NOMEM;
    if (st == EL_OK)
        st = mlog_reader_open(opts->dir, opts->max_series, &c->log);
    if (st == EL_OK)
        st = continuous_set_defs(c, opts->defs, opts->n_defs);
    if (st != EL_OK) {
        continuous_free(c);
        return st;
    }
    cq_tokens_init(&c->tokens, opts->max_msgs_per_s, plat_clock_mono_ms());
    /* The tail starts at the log's end as of now, before ingest starts
     * (core.c): a reading stored before the serving thread's first tick
     * (late on a loaded board) is still seen. Failing here, the first
     * tick starts it. */
    if (mlog_reader_begin(c->log) == EL_OK) {
        c->pos = mlog_reader_last_seq(c->log);
        c->started = true;
        mlog_reader_end(c->log);
    }
    *out = c;
    return EL_OK;
}

static void runner_end(struct continuous *c, struct runner *r)
{
    atomic_fetch_sub(&c->cells_bytes, cells_bytes(r));
    cq_cells_free(&r->cells);
    r->active = false;
}

void continuous_free(struct continuous *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->n_defs; i++)
        runner_end(c, &c->defs[i]);
    for (int i = 0; c->watches && i < c->o.max_watches; i++)
        runner_end(c, &c->watches[i]);
    mlog_reader_close(c->log);
    free(c->watches);
    free(c->msg);
    free(c);
}

/* Keeps the runner (pending and published buckets, revisions) of every
 * query whose definition did not change, moved to its new place; starts the
 * new and changed ones afresh and ends the others. The new runners' cells
 * are allocated first: on EL_NOMEM nothing changed. Allocates (a reload,
 * not the hot path). */
el_status continuous_set_defs(struct continuous *c, const struct cq_def *defs, int n)
{
    if (n < 0 || n > CONTINUOUS_MAX_DEFS)
        return EL_INVAL;
    int old_n = c->n_defs;
    struct runner *next = calloc((size_t)(n > 0 ? n : 1), sizeof *next);
    if (!next)
        return EL_NOMEM;
    bool used[CONTINUOUS_MAX_DEFS] = {false}, kept[CONTINUOUS_MAX_DEFS] = {false};
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < old_n && !kept[i]; j++) {
            if (!used[j] && memcmp(&c->defs[j].def, &defs[i], sizeof defs[i]) == 0) {
                next[i] = c->defs[j];
                used[j] = kept[i] = true;
            }
        }
    }
    el_status st = EL_OK;
    int made = 0;
    for (; made < n && st == EL_OK; made++) {
        if (kept[made])
            continue;
        next[made].def = defs[made];
        st = runner_cells(c, &next[made], c->o.max_cells);
        next[made].active = st == EL_OK;
    }
    if (st != EL_OK) { /* undo the new ones; the running queries go on */
        for (int i = 0; i < made; i++)
            if (!kept[i] && next[i].active)
                runner_end(c, &next[i]);
        free(next);
        return EL_NOMEM;
    }
    for (int j = 0; j < old_n; j++)
        if (!used[j])
            runner_end(c, &c->defs[j]);
    memset(c->defs, 0, sizeof c->defs);
    if (n > 0)
        memcpy(c->defs, next, (size_t)n * sizeof *next);
    free(next);
    c->n_defs = n;
    atomic_store(&c->counters.queries, n);
    return EL_OK;
}

/* ---- the tail ---- */

static void note_event(struct continuous *c, struct runner *r, uint32_t series, int64_t ts,
                       int64_t seq)
{
    int64_t t = cq_bucket_start(ts, r->def.tm.step_ms);
    if (c->synced && cq_too_late(t, &r->def.tm, c->now)) {
        atomic_fetch_add(&c->counters.too_late, 1);
        return;
    }
    if (!cq_cells_note(&r->cells, series, t, seq)) {
        atomic_fetch_add(&c->counters.cells_full, 1);
        plat_log_limited(&c->full_limit, LOG_EVERY_MS, PLAT_LOG_WARN,
                         "continuous %s: more than %u buckets pending or published "
                         "(continuous.max_cells); new ones are dropped and counted",
                         r->is_watch ? "watch" : r->def.name, r->cells.limit);
    }
}

/* Does the query or watch take the series? A watch of one "series" takes
 * exactly that name (a name may hold '+' or '#' that no filter matches). */
static bool selects(const struct runner *r, const char *name, size_t len)
{
    if (r->is_watch && !r->def.tmpl.is_match)
        return strlen(r->def.match) == len && memcmp(r->def.match, name, len) == 0;
    return mqtt_topic_matches(r->def.match, name, len);
}

static void on_row(void *ctx, int64_t seq, uint32_t series, int64_t ts, double value,
                   bool provisional)
{
    struct continuous *c = ctx;
    const struct series_dict *d = mlog_reader_series(c->log);
    (void)value;
    const char *name = provisional ? NULL : series_dict_name(d, series);
    if (!name)
        return;
    size_t len = series_dict_name_len(d, series);
    for (int i = 0; i < c->n_defs; i++)
        if (selects(&c->defs[i], name, len))
            note_event(c, &c->defs[i], series, ts, seq);
    for (int i = 0; i < c->o.max_watches; i++)
        if (c->watches[i].active && selects(&c->watches[i], name, len))
            note_event(c, &c->watches[i], series, ts, seq);
}

/* Reads the events committed since the last tick (at most a tick's worth);
 * idle (no query, no watch) it only moves to the log's end, so a new watch
 * sees what was committed from the tick before it on. */
static void read_tail(struct continuous *c, bool idle)
{
    el_status st = mlog_reader_begin(c->log);
    if (st != EL_OK) {
        plat_log_limited(&c->tail_limit, LOG_EVERY_MS, PLAT_LOG_WARN,
                         "continuous: cannot read the master log: %s (tried again)",
                         el_status_str(st));
        return;
    }
    int64_t last = mlog_reader_last_seq(c->log);
    if (!c->started || last < c->pos || idle) {
        c->pos = last; /* from the log's end (continuous.h) */
        c->started = true;
    }
    int64_t hi = last - c->pos > CONTINUOUS_TAIL_ROWS ? c->pos + CONTINUOUS_TAIL_ROWS : last;
    uint64_t budget = (uint64_t)(hi - c->pos) + 16;
    st = hi > c->pos ? mlog_reader_scan_seq(c->log, c->pos, hi, &budget, on_row, c) : EL_OK;
    if (st == EL_OK)
        c->pos = hi;
    else
        plat_log_limited(&c->tail_limit, LOG_EVERY_MS, PLAT_LOG_WARN,
                         "continuous: reading the master log after seq %lld failed: %s (tried "
                         "again)",
                         (long long)c->pos, el_status_str(st));
    mlog_reader_end(c->log);
    atomic_store(&c->counters.tail_seq, c->pos);
}

/* ---- messages ---- */

/* The answer's "seq" (the first one: the range answer's own). */
static int64_t answer_seq(const char *msg)
{
    const char *p = strstr(msg, ",\"seq\":");
    return p ? strtoll(p + 7, NULL, 10) : 0;
}

/* Ends the answer in c->msg[0..len) with the members that say what it is. */
static size_t add_members(struct continuous *c, const struct runner *r, const struct cq_cell *cell,
                          enum cq_action a, size_t len)
{
    char *p = c->msg + len - 1; /* over the closing '}' */
    size_t room = CONTINUOUS_MSG_MAX - (len - 1);
    int n;
    if (r->is_watch)
        n = snprintf(p, room, ",\"watch\":%u", r->number);
    else
        n = snprintf(p, room, ",\"cq\":\"%s\"", r->def.name);
    if (n < 0 || (size_t)n >= room)
        return 0;
    p += n;
    room -= (size_t)n;
    uint32_t rev = cell->revision + (a == CQ_CORRECTION);
    if (a == CQ_OPEN)
        n = snprintf(p, room, ",\"revision\":0,\"open\":true}");
    else if (a == CQ_CORRECTION)
        n = snprintf(p, room,
                     ",\"revision\":%u,\"correction\":true,\"changed\":{\"events\":%u,"
                     "\"after_seq\":%lld}}",
                     rev, cell->since, (long long)cell->seq);
    else
        n = snprintf(p, room, ",\"revision\":0}");
    if (n < 0 || (size_t)n >= room)
        return 0;
    return (size_t)(p + n - c->msg);
}

static void count_unsent(struct continuous *c, const char *topic, const char *why)
{
    atomic_fetch_add(&c->counters.unsent, 1);
    plat_log_limited(&c->unsent_limit, LOG_EVERY_MS, PLAT_LOG_WARN,
                     "continuous: a message to %.80s was not sent (%s); counted in status "
                     "continuous.unsent",
                     topic, why);
}

/* Publishes c->msg[0..len) for the cell (the topic checked first). */
static void publish_msg(struct continuous *c, const struct runner *r, const char *name,
                        enum cq_action a, size_t len, struct control *ctl,
                        const struct mqtt_topic_rules *rules)
{
    const char *topic = r->reply_topic;
    if (!r->is_watch) {
        snprintf(c->topic, sizeof c->topic, "%s/%s", r->def.topic, name);
        topic = c->topic;
    }
    enum mqtt_topic_problem pr = mqtt_topic_check_reply(topic, strlen(topic), rules);
    if (len == 0 || pr != MQTT_TOPIC_OK) {
        count_unsent(c, topic, len == 0 ? "too large" : mqtt_topic_problem_str(pr));
        return;
    }
    if (control_publish(ctl, topic, r->corr, r->corr_len, c->msg, len, r->is_watch ? 0 : r->def.qos,
                        !r->is_watch && r->def.retain) != EL_OK) {
        count_unsent(c, topic, "not connected");
        return;
    }
    atomic_fetch_add(&c->counters.published, 1);
    if (a == CQ_CORRECTION)
        atomic_fetch_add(&c->counters.corrections, 1);
    if (a == CQ_OPEN)
        atomic_fetch_add(&c->counters.partials, 1);
}

/* Answers the cell's bucket as a range query and publishes it. false: the
 * answer does not cover the events noted yet, ask again at the next tick;
 * true: done (published, dropped or failed, counted), *seq the answer's. */
static bool emit(struct continuous *c, struct runner *r, struct cq_cell *cell, enum cq_action a,
                 struct serve *sv, struct control *ctl, const struct mqtt_topic_rules *rules,
                 int64_t *seq)
{
    const char *name = series_dict_name(mlog_reader_series(c->log), cell->series), *code = NULL;
    *seq = cell->seq;
    if (!cq_tokens_take(&c->tokens, plat_clock_mono_ms())) {
        atomic_fetch_add(&c->counters.dropped, 1);
        plat_log_limited(&c->drop_limit, LOG_EVERY_MS, PLAT_LOG_WARN,
                         "continuous: over continuous.max_msgs_per_s (%d); messages are dropped "
                         "and counted in status continuous.dropped",
                         c->o.max_msgs_per_s);
        return true;
    }
    struct query q = r->def.tmpl;
    q.op = QUERY_RANGE;
    snprintf(q.series, sizeof q.series, "%s", name ? name : "");
    q.has_series = true;
    q.is_match = false;
    q.from_ms = cell->t;
    q.to_ms = cell->t + r->def.tm.step_ms;
    size_t len = serve_answer(sv, &q, 0, c->msg, CONTINUOUS_MSG_MAX, &code);
    if (code || len == 0 || !name) {
        atomic_fetch_add(&c->counters.errors, 1);
        plat_log_limited(&c->err_limit, LOG_EVERY_MS, PLAT_LOG_WARN,
                         "continuous: the bucket of %.80s could not be answered (%s)",
                         name ? name : "?", code ? code : "no series");
        return true;
    }
    int64_t at = answer_seq(c->msg);
    if (!cq_cell_answer_ok(cell, at)) {
        cq_tokens_give_back(&c->tokens);
        return false;
    }
    *seq = at;
    publish_msg(c, r, name, a, add_members(c, r, cell, a, len), ctl, rules);
    return true;
}

/* Every cell of one query or watch that is due. */
static void run_due(struct continuous *c, struct runner *r, struct serve *sv, struct control *ctl,
                    const struct mqtt_topic_rules *rules)
{
    struct cq_cells *cells = &r->cells;
    for (uint32_t i = 0; i < cq_cells_slots(cells);) {
        struct cq_cell *cell = &cells->slot[i];
        enum cq_action a = cq_cell_due(cell, &r->def.tm, c->now, r->open);
        if (a == CQ_EXPIRE) {
            cq_cells_remove_at(cells, i); /* a later cell may move into slot i */
            continue;
        }
        int64_t seq;
        if (a != CQ_NONE && emit(c, r, cell, a, sv, ctl, rules, &seq))
            cq_cell_done(cell, a, seq);
        i++;
    }
}

static void expire_watches(struct continuous *c, struct control *ctl)
{
    int64_t now = plat_clock_mono_ms();
    for (int i = 0; i < c->o.max_watches; i++) {
        struct runner *w = &c->watches[i];
        if (!w->active || now < w->expires_mono)
            continue;
        int n =
            snprintf(c->msg, CONTINUOUS_MSG_MAX, "{\"ok\":true%s%s,\"watch\":%u,\"expired\":true}",
                     w->def.tmpl.has_id ? ",\"id\":" : "", w->def.tmpl.has_id ? w->def.tmpl.id : "",
                     w->number);
        if (control_publish(ctl, w->reply_topic, w->corr, w->corr_len, c->msg, (size_t)n, 0,
                            false) != EL_OK)
            count_unsent(c, w->reply_topic, "not connected");
        runner_end(c, w);
        atomic_fetch_sub(&c->counters.watches, 1);
    }
}

void continuous_tick(struct continuous *c, struct serve *sv, struct control *ctl,
                     const struct mqtt_topic_rules *rules)
{
    c->now = plat_clock_wall_ms();
    c->synced = plat_clock_synced();
    expire_watches(c, ctl);
    bool idle = c->n_defs == 0 && atomic_load(&c->counters.watches) == 0;
    read_tail(c, idle);
    if (idle)
        return;
    if (!c->synced)
        return; /* no bucket closes on an unsynchronised clock (continuous.h) */
    for (int i = 0; i < c->n_defs; i++)
        run_due(c, &c->defs[i], sv, ctl, rules);
    for (int i = 0; i < c->o.max_watches; i++)
        if (c->watches[i].active)
            run_due(c, &c->watches[i], sv, ctl, rules);
}

/* ---- watches ---- */

static bool same_watch(const struct runner *w, const struct query *q, const char *topic)
{
    return w->active && strcmp(w->reply_topic, topic) == 0 && w->def.tmpl.has_id == q->has_id &&
           (!q->has_id || strcmp(w->def.tmpl.id, q->id) == 0);
}

static size_t watch_reply(const struct runner *w, const char *op, bool renewed, char *buf,
                          size_t cap)
{
    struct jw jw;
    jw_init(&jw, buf, cap);
    serve_reply_head(&jw, true, w->def.tmpl.has_id ? w->def.tmpl.id : NULL);
    jw_key(&jw, "op");
    jw_str(&jw, op);
    jw_key(&jw, "watch");
    jw_uint(&jw, w->number);
    if (strcmp(op, "watch") == 0) {
        jw_key(&jw, w->def.tmpl.is_match ? "match" : "series");
        jw_str(&jw, w->def.match);
        jw_key(&jw, "step_ms");
        jw_int(&jw, w->def.tm.step_ms);
        jw_key(&jw, "expires");
        jw_int(&jw, w->expires_wall);
        jw_key(&jw, "renewed");
        jw_bool(&jw, renewed);
    }
    jw_obj_end(&jw);
    return jw_ok(&jw) ? jw_len(&jw) : 0;
}

static size_t refuse(const char *code_s, const char *msg, const struct query *q, char *buf,
                     size_t cap, const char **code)
{
    *code = code_s;
    return serve_error(code_s, msg, q->has_id ? q->id : NULL, buf, cap);
}

/* A watch's series, step and aggregates: what its cells stand for. */
static void watch_define(struct runner *w, const struct query *q)
{
    w->def.tmpl = *q;
    snprintf(w->def.match, sizeof w->def.match, "%s", q->series);
    w->def.tm =
        (struct cq_timing){q->step_ms, CONTINUOUS_WATCH_GRACE_MS, CONTINUOUS_WATCH_LATENESS_MS};
}

static bool watch_same_def(const struct runner *w, const struct query *q)
{
    const struct query *t = &w->def.tmpl;
    bool same = strcmp(t->series, q->series) == 0 && t->is_match == q->is_match &&
                t->step_ms == q->step_ms && t->n_aggs == q->n_aggs;
    for (int i = 0; same && i < q->n_aggs; i++)
        same = strcmp(t->aggs[i].name, q->aggs[i].name) == 0;
    return same;
}

/* A new watch in a free slot: its cells are allocated here. */
static size_t watch_new(struct continuous *c, struct runner *w, const struct query *q,
                        const char *topic, const struct control_request *req, char *buf, size_t cap,
                        const char **code)
{
    memset(w, 0, sizeof *w);
    uint32_t limit = c->o.max_cells / 16 > 64 ? c->o.max_cells / 16 : 64;
    if (runner_cells(c, w, limit) != EL_OK)
        return refuse("internal", "out of memory", q, buf, cap, code);
    watch_define(w, q);
    w->is_watch = true;
    w->open = q->open;
    w->number = ++c->next_watch;
    snprintf(w->reply_topic, sizeof w->reply_topic, "%s", topic);
    if (req->has_correlation) {
        memcpy(w->corr, req->correlation, req->correlation_len);
        w->corr_len = req->correlation_len;
    }
    w->active = true;
    atomic_fetch_add(&c->counters.watches, 1);
    return 0;
}

size_t continuous_request(struct continuous *c, const struct query *q, const char *topic,
                          const struct control_request *req, char *buf, size_t cap,
                          const char **code)
{
    char msg[200];
    struct runner *w = NULL, *free_slot = NULL;
    *code = NULL;
    for (int i = 0; i < c->o.max_watches && !w; i++) {
        if (same_watch(&c->watches[i], q, topic))
            w = &c->watches[i];
        else if (!c->watches[i].active && !free_slot)
            free_slot = &c->watches[i];
    }
    if (q->op == QUERY_UNWATCH) {
        if (!w)
            return refuse("not_found", "no watch of this reply topic and \"id\"", q, buf, cap,
                          code);
        size_t n = watch_reply(w, "unwatch", false, buf, cap);
        runner_end(c, w);
        atomic_fetch_sub(&c->counters.watches, 1);
        return n;
    }
    if (q->step_ms < 100 || q->step_ms > INT64_C(86400000))
        return refuse("bad_request", "a watch's step is 100ms to 1d", q, buf, cap, code);
    bool renewed = w != NULL;
    if (!w && !free_slot) {
        snprintf(msg, sizeof msg,
                 "all %d watches are in use (continuous.max_watches); unwatch one or wait for "
                 "one to expire",
                 c->o.max_watches);
        return refuse("busy", msg, q, buf, cap, code);
    }
    if (!w) {
        w = free_slot;
        size_t n = watch_new(c, w, q, topic, req, buf, cap, code);
        if (*code)
            return n;
    } else if (!watch_same_def(w, q)) {
        watch_define(w, q); /* renewed with other series, step or aggregates: start afresh */
        cq_cells_clear(&w->cells);
    }
    w->open = q->open;
    w->expires_mono = plat_clock_mono_ms() + (int64_t)q->expires_s * 1000;
    w->expires_wall = plat_clock_wall_ms() + (int64_t)q->expires_s * 1000;
    return watch_reply(w, "watch", renewed, buf, cap);
}
