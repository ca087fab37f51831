/*
 * requests — the serving thread (design in requests.h).
 *
 * Ownership: struct requests owns the thread, its struct serve (with its
 * SQLite connections), one request copy and one answer buffer of
 * CONTROL_REPLY_MAX bytes, all allocated at start. It borrows the control
 * plane (request queue, replies), the speed layer and the status board.
 */
#include "requests.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "plat_clock.h"
#include "plat_jsonw.h"
#include "plat_log.h"
#include "serve.h"

/* ---- status board ---- */

struct status_board {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    void (*wake)(void *ctx);
    void *wake_ctx;
    atomic_int wanted;
    uint64_t generation;
    char doc[CONTROL_STATUS_MAX];
    size_t len;
};

el_status status_board_new(void (*wake)(void *ctx), void *ctx, struct status_board **out)
{
    struct status_board *b = calloc(1, sizeof *b);
    *out = b;
    if (!b)
        return EL_NOMEM;
    pthread_mutex_init(&b->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cv, &ca);
    pthread_condattr_destroy(&ca);
    b->wake = wake;
    b->wake_ctx = ctx;
    return EL_OK;
}

void status_board_free(struct status_board *b)
{
    if (!b)
        return;
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

void status_board_set(struct status_board *b, const char *json, size_t len)
{
    if (len >= sizeof b->doc)
        return;
    pthread_mutex_lock(&b->mu);
    memcpy(b->doc, json, len);
    b->doc[len] = '\0';
    b->len = len;
    b->generation++;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

bool status_board_wanted(struct status_board *b)
{
    return atomic_exchange(&b->wanted, 0) != 0;
}

static void deadline_in(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

size_t status_board_get(struct status_board *b, char *buf, size_t cap, int max_wait_ms)
{
    struct timespec until;
    size_t n = 0;
    deadline_in(&until, max_wait_ms);
    pthread_mutex_lock(&b->mu);
    uint64_t gen = b->generation;
    atomic_store(&b->wanted, 1);
    if (b->wake)
        b->wake(b->wake_ctx);
    while (b->generation == gen && pthread_cond_timedwait(&b->cv, &b->mu, &until) == 0)
        ;
    if (b->len > 0 && b->len < cap) {
        memcpy(buf, b->doc, b->len + 1);
        n = b->len;
    }
    pthread_mutex_unlock(&b->mu);
    return n;
}

/* ---- the serving thread ---- */

#define REQ_LOG_EVERY_MS 10000
#define SLOW_MS 100

/* The quick lane (el-control answers a cheap query itself): what "cheap" is,
 * and how much of el-control's time it may take. */
#define QUICK_MS 5                 /* wall-time bound; past it the serving thread answers */
#define QUICK_ROWS 20000           /* master-log rows, likewise */
#define QUICK_MAX_BUCKETS 1440     /* a range's buckets (a day of minutes) */
#define QUICK_MAX_LAST 10          /* op last: samples */
#define QUICK_SHARE_NS 250000000   /* at most 250 ms of answering ... */
#define QUICK_WINDOW_NS 1000000000 /* ... per second */

struct requests {
    struct requests_commands commands;
    struct control *ctl;
    const struct speed *sp;
    struct status_board *board;
    struct serve *serve;
    struct continuous *cq;
    struct requests_counters counters;
    /* Whoever answers holds serve_mu: the serving thread, or el-control on
     * the quick lane (which only ever tries it). It guards serve, cq and the
     * answer/status/metrics buffers. */
    pthread_mutex_t serve_mu;
    int64_t quick_window_ns, quick_spent_ns; /* el-control only */
    int64_t next_tick;                       /* CLOCK_MONOTONIC ms */
    long fault_start_ms;                     /* EDGELAMBDA_FAULT_SERVING_START_MS (tests) */
    int quick_ms;                            /* QUICK_MS; EDGELAMBDA_FAULT_QUICK_MS (tests) */
    /* a new table of continuous queries, handed over under mu */
    struct cq_def *pending_defs; /* CONTINUOUS_MAX_DEFS, under mu */
    struct cq_def *taken_defs;   /* CONTINUOUS_MAX_DEFS, the serving thread's copy */
    int pending_n;               /* -1: none */

    pthread_t thread;
    bool started;
    atomic_int stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool woken;

    struct control_request *req;
    char *answer;  /* CONTROL_REPLY_MAX */
    char *status;  /* CONTROL_STATUS_MAX */
    char *metrics; /* REQUESTS_METRICS_MAX */
    struct plat_log_limit reject_limit, slow_limit;
    const struct mqtt_topic_rules *rules; /* where replies may not go (control.h) */
};

const char *requests_error_str(enum requests_error e)
{
    static const char *const names[RQ_ERR_COUNT] = {
        [RQ_ERR_BAD_REQUEST] = "bad_request",   [RQ_ERR_TOO_LARGE] = "too_large",
        [RQ_ERR_TIMEOUT] = "timeout",           [RQ_ERR_NOT_FOUND] = "not_found",
        [RQ_ERR_UNSUPPORTED] = "unsupported",   [RQ_ERR_BUSY] = "busy",
        [RQ_ERR_UNAVAILABLE] = "unavailable",   [RQ_ERR_INTERNAL] = "internal",
        [RQ_ERR_NOT_RETAINED] = "not_retained",
    };
    return (unsigned)e < RQ_ERR_COUNT ? names[e] : "internal";
}

static enum requests_error error_of(const char *code)
{
    for (int e = 0; e < RQ_ERR_COUNT; e++)
        if (strcmp(code, requests_error_str((enum requests_error)e)) == 0)
            return (enum requests_error)e;
    return RQ_ERR_INTERNAL;
}

void requests_set_limits(struct requests *r, const struct serve_opts *o)
{
    serve_set_limits(r->serve, o);
}

const struct requests_counters *requests_counters(const struct requests *r)
{
    return &r->counters;
}

size_t requests_memory_bytes(const struct requests *r)
{
    return serve_working_set_bytes(r->serve) + CONTROL_REPLY_MAX + CONTROL_STATUS_MAX +
           REQUESTS_METRICS_MAX + sizeof *r->req + continuous_memory_bytes(r->cq);
}

const struct continuous_counters *requests_continuous_counters(const struct requests *r)
{
    return continuous_counters(r->cq);
}

el_status requests_set_continuous(struct requests *r, const struct cq_def *defs, int n)
{
    if (n < 0 || n > CONTINUOUS_MAX_DEFS)
        return EL_INVAL;
    pthread_mutex_lock(&r->mu);
    memcpy(r->pending_defs, defs, (size_t)n * sizeof defs[0]);
    r->pending_n = n;
    pthread_mutex_unlock(&r->mu);
    return EL_OK;
}

/* Serving thread: views.db tried again if it could not be opened, a table
 * handed over, then the continuous queries' tick. */
static void continuous_step(struct requests *r)
{
    int64_t now = plat_clock_mono_ms();
    if (now < r->next_tick)
        return;
    r->next_tick = now + CONTINUOUS_TICK_MS;
    /* the table is copied out under mu, applied outside it (wake() takes mu) */
    pthread_mutex_lock(&r->mu);
    int n = r->pending_n;
    if (n >= 0)
        memcpy(r->taken_defs, r->pending_defs, (size_t)n * sizeof r->pending_defs[0]);
    r->pending_n = -1;
    pthread_mutex_unlock(&r->mu);
    pthread_mutex_lock(&r->serve_mu);
    serve_retry_views(r->serve);
    if (n >= 0 && continuous_set_defs(r->cq, r->taken_defs, n) != EL_OK)
        log_error("continuous queries: out of memory for the new table; the running ones go on "
                  "(reload again)");
    continuous_tick(r->cq, r->serve, r->ctl, r->rules);
    pthread_mutex_unlock(&r->serve_mu);
}

/* Called by the control thread: a request arrived, or a reply slot freed. */
static void wake(void *ctx)
{
    struct requests *r = ctx;
    pthread_mutex_lock(&r->mu);
    r->woken = true;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void wait_for_work(struct requests *r)
{
    struct timespec until;
    pthread_mutex_lock(&r->mu);
    if (!r->woken && !atomic_load(&r->stop)) {
        deadline_in(&until, CONTINUOUS_TICK_MS / 2); /* the tick; a missed wake-up */
        pthread_cond_timedwait(&r->cv, &r->mu, &until);
    }
    r->woken = false;
    pthread_mutex_unlock(&r->mu);
}

static size_t answer_command(struct requests *r, const struct query *q, char *buf, size_t cap,
                             const char **code)
{
    const char *id = q->has_id ? q->id : NULL;
    int n;
    if (q->op == QUERY_RECOMPUTE) {
        if (!r->commands.recompute) {
            *code = "unsupported";
            return serve_error(*code, "the batch layer is not running", id, buf, cap);
        }
        bool started = false;
        int64_t watermark = 0;
        r->commands.recompute(r->commands.ctx, q->full, &started, &watermark);
        n = snprintf(buf, cap,
                     "{\"ok\":true%s%s,\"op\":\"recompute\",\"full\":%s,\"started\":%s,"
                     "\"watermark_seq\":%lld}",
                     id ? ",\"id\":" : "", id ? id : "", q->full ? "true" : "false",
                     started ? "true" : "false", (long long)watermark);
        return n > 0 && (size_t)n < cap ? (size_t)n : 0;
    }
    if (q->op == QUERY_REPLAY_DEAD_LETTERS) {
        if (!r->commands.replay_deadletters) {
            *code = "unsupported";
            return serve_error(*code, "replay is not available", id, buf, cap);
        }
        return r->commands.replay_deadletters(r->commands.ctx, q, buf, cap, code);
    }
    if (q->op != QUERY_SYNC) {
        *code = "bad_request";
        return serve_error(*code, "commands are recompute, sync and replay_deadletters", id, buf,
                           cap);
    }
    if (!r->commands.sync || !r->commands.sync(r->commands.ctx, q->retry_parked)) {
        *code = "unsupported";
        return serve_error(*code, "sync is disabled (sync.url is empty)", id, buf, cap);
    }
    n = snprintf(buf, cap, "{\"ok\":true%s%s,\"op\":\"sync\",\"retry_parked\":%s}",
                 id ? ",\"id\":" : "", id ? id : "", q->retry_parked ? "true" : "false");
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

static size_t answer_status(struct requests *r, const struct query *q, char *buf, size_t cap,
                            const char **code)
{
    const char *id = q->has_id ? q->id : NULL;
    if (status_board_get(r->board, r->status, CONTROL_STATUS_MAX, 200) < 2) {
        *code = "unavailable";
        return serve_error(*code, "no status yet; ask again in a second", id, buf, cap);
    }
    /* {"ok":true[,"id":..],<the status document's members>} */
    int n = snprintf(buf, cap, "{\"ok\":true,%s%s%s%s", id ? "\"id\":" : "", id ? id : "",
                     id ? "," : "", r->status + 1);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* {"ok":true[,"id":..],"op":"metrics","text":"<Prometheus text>"}: the
 * daemon converts the same fresh document {"op":"status"} gets. */
static size_t answer_metrics(struct requests *r, const struct query *q, char *buf, size_t cap,
                             const char **code)
{
    const char *id = q->has_id ? q->id : NULL;
    size_t len = status_board_get(r->board, r->status, CONTROL_STATUS_MAX, 200);
    if (!r->commands.metrics) {
        *code = "unsupported";
        return serve_error(*code, "no metrics in this build", id, buf, cap);
    }
    if (len < 2) {
        *code = "unavailable";
        return serve_error(*code, "no status yet; ask again in a second", id, buf, cap);
    }
    size_t n =
        r->commands.metrics(r->commands.ctx, r->status, len, r->metrics, REQUESTS_METRICS_MAX);
    if (n == 0) {
        *code = "internal";
        return serve_error(*code, "the status document did not convert to metrics", id, buf, cap);
    }
    struct jw w;
    jw_init(&w, buf, cap);
    serve_reply_head(&w, true, id);
    jw_key(&w, "op");
    jw_str(&w, "metrics");
    jw_key(&w, "text");
    jw_strn(&w, r->metrics, n);
    jw_obj_end(&w);
    return jw_ok(&w) ? jw_len(&w) : 0;
}

/* Answers a parsed request into r->answer; *code NULL for an answer. */
static size_t answer(struct requests *r, const struct control_request *req, const struct query *q,
                     const char **code)
{
    const char *id = q->has_id ? q->id : NULL;
    bool command =
        q->op == QUERY_RECOMPUTE || q->op == QUERY_SYNC || q->op == QUERY_REPLAY_DEAD_LETTERS;
    if (req->is_command != command) {
        *code = "bad_request";
        return serve_error(*code,
                           req->is_command ? "not a command (use the query topic)"
                                           : "commands go to the command topic",
                           id, r->answer, CONTROL_REPLY_MAX);
    }
    if (command)
        return answer_command(r, q, r->answer, CONTROL_REPLY_MAX, code);
    if (q->op == QUERY_STATUS)
        return answer_status(r, q, r->answer, CONTROL_REPLY_MAX, code);
    if (q->op == QUERY_METRICS)
        return answer_metrics(r, q, r->answer, CONTROL_REPLY_MAX, code);
    return serve_answer(r->serve, q, req->arrived_mono_ms, r->answer, CONTROL_REPLY_MAX, code);
}

/* A query the quick lane may try: one named series, a bounded answer, no
 * quantiles (they gather raw values). */
static bool quick_kind(const struct query *q)
{
    if (!q->has_series || q->is_match)
        return false;
    if (q->op == QUERY_LAST)
        return !q->has_limit || q->limit <= QUICK_MAX_LAST;
    /* Whole minutes: a batch view can serve the buckets, not raw reads. */
    if (q->op != QUERY_RANGE || q->wants_quantiles || q->step_ms < 60000 || q->step_ms % 60000 != 0)
        return false;
    return q->to_ms > q->from_ms && (q->to_ms - q->from_ms) / q->step_ms < QUICK_MAX_BUCKETS;
}

/* Where the reply goes: the v5 Response Topic, else reply_to; NULL when
 * neither is usable (*problem says why). *fallback: the response topic was
 * refused and reply_to is used to say so. */
static const char *reply_topic(struct requests *r, const struct control_request *req,
                               const struct query *q, enum mqtt_topic_problem *problem,
                               bool *fallback)
{
    enum mqtt_topic_problem rt = MQTT_TOPIC_NONE, rto = MQTT_TOPIC_NONE;
    *fallback = false;
    if (req->has_response_topic)
        rt = mqtt_topic_check_reply(req->response_topic, req->response_topic_len, r->rules);
    if (rt == MQTT_TOPIC_OK)
        return req->response_topic;
    if (q->has_reply_to)
        rto = mqtt_topic_check_reply(q->reply_to, q->reply_to_len, r->rules);
    *problem = rt != MQTT_TOPIC_NONE ? rt : rto;
    if (rto == MQTT_TOPIC_OK) {
        *fallback = rt != MQTT_TOPIC_NONE;
        return q->reply_to;
    }
    return NULL;
}

static void reject(struct requests *r, const struct control_request *req,
                   enum mqtt_topic_problem problem)
{
    atomic_fetch_add(&r->counters.rejected[problem], 1);
    plat_log_limited(&r->reject_limit, REQ_LOG_EVERY_MS, PLAT_LOG_WARN,
                     "a %s came with no usable reply topic (%s%s%.60s): not answered; counted "
                     "in status queries.rejected",
                     req->is_command ? "command" : "query", mqtt_topic_problem_str(problem),
                     req->has_response_topic ? ", response topic " : "",
                     req->has_response_topic ? req->response_topic : "");
}

/* Answers a parsed request and publishes the reply (under serve_mu). quick:
 * on the quick lane, which gives a query up (returns false, nothing counted
 * or sent) when it needs more than the lane's bounds. */
static bool respond(struct requests *r, const struct control_request *req, const struct query *q,
                    bool ok, const char *code, const char *err, bool quick)
{
    enum mqtt_topic_problem problem = MQTT_TOPIC_NONE;
    bool fallback;
    int64_t t0 = plat_clock_mono_ms();
    size_t len;

    const char *topic = reply_topic(r, req, q, &problem, &fallback);
    if (quick && (!topic || fallback))
        return false;
    if (!quick)
        atomic_fetch_add(&r->counters.received, 1);
    if (!topic) {
        reject(r, req, problem);
        /* A command with no reply path at all still runs (fire and forget). */
        if (ok && problem == MQTT_TOPIC_NONE && req->is_command && !fallback)
            (void)answer_command(r, q, r->answer, CONTROL_REPLY_MAX, &code);
        return true;
    }
    if (fallback) {
        reject(r, req, problem);
        char why[200];
        code = "bad_request";
        snprintf(why, sizeof why, "the response topic cannot be published to (%s)",
                 mqtt_topic_problem_str(problem));
        len = serve_error(code, why, q->has_id ? q->id : NULL, r->answer, CONTROL_REPLY_MAX);
    } else if (!ok) {
        len = serve_error(code, err, q->has_id ? q->id : NULL, r->answer, CONTROL_REPLY_MAX);
    } else if ((q->op == QUERY_WATCH || q->op == QUERY_UNWATCH) && !req->is_command) {
        len = continuous_request(r->cq, q, topic, req, r->answer, CONTROL_REPLY_MAX, &code);
    } else if (quick) {
        bool declined;
        len = serve_answer_quick(r->serve, q, r->quick_ms, QUICK_ROWS, r->answer, CONTROL_REPLY_MAX,
                                 &code, &declined);
        if (declined) {
            atomic_fetch_add(&r->counters.quick_declined, 1);
            return false;
        }
        atomic_fetch_add(&r->counters.received, 1);
        atomic_fetch_add(&r->counters.quick, 1);
    } else {
        len = answer(r, req, q, &code);
    }
    int64_t took = plat_clock_mono_ms() - t0;
    if (took > SLOW_MS) {
        atomic_fetch_add(&r->counters.slow, 1);
        plat_log_limited(&r->slow_limit, REQ_LOG_EVERY_MS, PLAT_LOG_INFO,
                         "a query took %lld ms (%s)", (long long)took, code ? code : "answered");
    }
    if (code)
        atomic_fetch_add(&r->counters.errors[error_of(code)], 1);
    else
        atomic_fetch_add(&r->counters.answered, 1);
    if (len == 0 || control_reply(r->ctl, topic, req, r->answer, len) != EL_OK) {
        atomic_fetch_add(&r->counters.unsent, 1);
        log_warn("could not publish a reply to %.80s", topic);
    }
    return true;
}

/* Serving thread, under serve_mu: one request from the queue. */
static void handle(struct requests *r, const struct control_request *req)
{
    struct query q;
    const char *code = NULL;
    char err[200];
    bool ok = query_parse(req->payload, req->len, plat_clock_wall_ms(), &q, &code, err, sizeof err);
    (void)respond(r, req, &q, ok, code, err, false);
}

/* el-control (control_set_quick_lane): answers a cheap query here and now
 * when the serving thread is idle and the lane's share of time is left. */
static bool quick_lane(void *ctx, const struct control_request *req)
{
    struct requests *r = ctx;
    struct query q;
    const char *code = NULL;
    char err[200];
    int64_t t0 = plat_clock_mono_ns();
    if (atomic_load(&r->stop))
        return false;
    if (t0 - r->quick_window_ns >= QUICK_WINDOW_NS) {
        r->quick_window_ns = t0;
        r->quick_spent_ns = 0;
    }
    if (r->quick_spent_ns >= QUICK_SHARE_NS)
        return false;
    if (!query_parse(req->payload, req->len, plat_clock_wall_ms(), &q, &code, err, sizeof err) ||
        !quick_kind(&q))
        return false;
    if (pthread_mutex_trylock(&r->serve_mu) != 0)
        return false; /* the serving thread is at work: wait behind it */
    bool done = respond(r, req, &q, true, NULL, "", true);
    pthread_mutex_unlock(&r->serve_mu);
    r->quick_spent_ns += plat_clock_mono_ns() - t0;
    return done;
}

static void *serving_main(void *arg)
{
    struct requests *r = arg;
    /* Ingest first: on a busy board a query waits, a reading never does. */
    if (setpriority(PRIO_PROCESS, (id_t)gettid(), 5) != 0)
        log_debug("serving: cannot lower the thread's priority");
    if (r->fault_start_ms > 0) /* tests: a loaded board schedules the thread late */
        plat_sleep_ms(r->fault_start_ms);
    while (!atomic_load(&r->stop)) {
        /* Taken and answered under serve_mu: the quick lane cannot slip a
         * later request in between (replies keep the order of arrival). */
        pthread_mutex_lock(&r->serve_mu);
        bool got = control_take_request(r->ctl, r->req);
        if (got)
            handle(r, r->req);
        pthread_mutex_unlock(&r->serve_mu);
        if (!got)
            wait_for_work(r);
        continuous_step(r);
    }
    return NULL;
}

el_status requests_start(const struct requests_opts *opts, struct control *ctl,
                         const struct speed *sp, struct status_board *board, struct requests **out)
{
    struct requests *r = calloc(1, sizeof *r);
    el_status st;
    *out = NULL;
    if (!r)
        return EL_NOMEM;
    r->commands = opts->commands;
    r->ctl = ctl;
    r->sp = sp;
    r->board = board;
    r->rules = control_reply_rules(ctl);
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->serve_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    r->req = malloc(sizeof *r->req);
    r->answer = malloc(CONTROL_REPLY_MAX);
    r->status = malloc(CONTROL_STATUS_MAX);
    r->metrics = malloc(REQUESTS_METRICS_MAX);
    r->pending_defs = calloc(CONTINUOUS_MAX_DEFS, sizeof r->pending_defs[0]);
    r->taken_defs = calloc(CONTINUOUS_MAX_DEFS, sizeof r->taken_defs[0]);
    r->pending_n = -1;
    if (!r->req || !r->answer || !r->status || !r->metrics || !r->pending_defs || !r->taken_defs) {
        requests_free(r);
        return EL_NOMEM;
    }
    st = serve_new(&opts->serve, sp, &r->stop, &r->serve);
    if (st != EL_OK) {
        log_error("cannot set up the serving thread: %s", el_status_str(st));
        requests_free(r);
        return st;
    }
    struct continuous_opts co = opts->continuous;
    co.dir = opts->serve.dir;
    co.max_series = opts->serve.max_series;
    st = continuous_new(&co, &r->cq);
    if (st != EL_OK) {
        log_error("cannot set up the continuous queries: %s", el_status_str(st));
        requests_free(r);
        return st;
    }
    const char *late = getenv("EDGELAMBDA_FAULT_SERVING_START_MS");
    if (late) {
        r->fault_start_ms = strtol(late, NULL, 10);
        log_warn("fault injection: the serving thread starts %ld ms late", r->fault_start_ms);
    }
    /* Tests of the row bound: a loaded machine would otherwise decide by time. */
    r->quick_ms = QUICK_MS;
    const char *quick_ms = getenv("EDGELAMBDA_FAULT_QUICK_MS");
    if (quick_ms) {
        long ms = strtol(quick_ms, NULL, 10);
        r->quick_ms = ms > 0 && ms < 60000 ? (int)ms : QUICK_MS;
        log_warn("fault injection: the quick lane's time bound is %d ms", r->quick_ms);
    }
    /* Set before the control thread starts (control_start comes later). */
    control_set_request_wakeup(ctl, wake, r);
    control_set_quick_lane(ctl, quick_lane, r);
    if (pthread_create(&r->thread, NULL, serving_main, r) != 0) {
        requests_free(r);
        return EL_NOMEM;
    }
    r->started = true;
    *out = r;
    return EL_OK;
}

void requests_stop(struct requests *r)
{
    if (!r)
        return;
    atomic_store(&r->stop, 1);
    if (r->started) {
        wake(r);
        pthread_join(r->thread, NULL);
        r->started = false;
    }
}

void requests_free(struct requests *r)
{
    if (!r)
        return;
    requests_stop(r);
    serve_free(r->serve);
    continuous_free(r->cq);
    free(r->pending_defs);
    free(r->taken_defs);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    pthread_mutex_destroy(&r->serve_mu);
    free(r->req);
    free(r->answer);
    free(r->status);
    free(r->metrics);
    free(r);
}
