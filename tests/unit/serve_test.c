/*
 * serve_test — the serving layer's merge (firmware/serve/serve.c) over real
 * SQLite files in a fresh temp dir, no mocks. The three sources are built the
 * way the daemon builds them:
 *   - the master log through storage/mlog.h (mlog_open, mlog_series_get,
 *     mlog_append_event, mlog_append_dead taking sequence numbers in
 *     between, mlog_commit), as the core's group commit does
 *     (firmware/daemon/core_commit.c);
 *   - the speed layer: after a commit, the core's step — speed_add for every
 *     committed event, then speed_publish(mlog_committed_seq) — or not yet,
 *     which leaves committed events the speed layer has not applied; and the
 *     start-up rebuild of the ring window (speed_set_horizon,
 *     mlog_scan_since), as core_recover does;
 *   - batch views by views_recompute (the batch worker's call), covering the
 *     events committed when it runs (watermark W).
 * A struct serve (serve_new with serve_opts, as requests.c builds it) is
 * asked requests parsed by query_parse; replies are read with plat_json.
 *
 * Every range answer is checked against a brute-force aggregation of the
 * events the test wrote (count, sum, min, max, mean, stddev, last, and
 * nearest-rank p50/p95: exact where no batch view feeds the bucket, within
 * the sketch's 1% where one does), over exactly the events with seq <= the
 * answer's "seq", which must be N = max(c_s, W) (serve.h; W counts only when
 * a view resolution divides the step, else the views are not read and
 * N = c_s, the speed layer's cursor). Each bucket's "src" and the "sources"
 * counts are checked against the routing rules of serve.h, computed here
 * from the speed layer's geometry: the ring span (the window from the
 * series' newest bucket, its start on a whole minute when views fit the
 * step, never before the horizon) answers events with seq <= c_s ("speed")
 * and the log those above it ("log": the tail); older time comes from the
 * views for whole minutes and seq <= W ("batch") and from the log for the
 * rest: the edge at `from`, late events above W, everything when no view
 * fits the step. Values are multiples of 1/4 of small magnitude, so every
 * sum is exact in any order. Inputs come from a fixed PRNG seed.
 *
 * Scenarios, one test each:
 *   1. log only: a speed layer that never applied anything answers as of
 *      seq 0 (nothing); one whose horizon lies past every event answers
 *      everything from the log; no views.
 *   2. views (seq <= W), speed (W < seq <= c_s) and committed events the
 *      speed layer has not applied (c_s < seq <= N): the answer is as of
 *      c_s, without them; once the views cover N (a batch run between a
 *      commit and the core's publish) an answer whose step fits the views
 *      is as of N and reads the log's tail (c_s, N] for the ring span, one
 *      whose step does not stays as of c_s; once applied, as of N with the
 *      newest from the rings.
 *   3. late data: events older than the ring window appended after W are in
 *      the answer beside the views (from the log), and counted once after an
 *      incremental and after a full recompute.
 *   4. `match` over several series, op series and op last.
 *   5. bounds: query.max_match, query.max_cells, query.max_rows,
 *      query.max_values, a 1 ms deadline (timeout) on a large log and while
 *      the core holds the speed layer's epoch (anchoring), and a stop —
 *      each refusal names its bound, no snapshot is left open, and the same
 *      serve object answers the next query exactly.
 *   6. restart: the speed layer rebuilt from the ring window only (HORIZON),
 *      with a series whose lane holds nothing.
 *   7. the edge cache (serve.h): the same single-series range asked again
 *      with `from` moving inside a minute, late rows into that minute, an
 *      anchoring epoch and retention in between.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <math.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mlog.h"
#include "plat_clock.h"
#include "plat_json.h"
#include "plat_log.h"
#include "query.h"
#include "serve.h"
#include "speed.h"
#include "test_fs.h"
#include "test_mlog.h"
#include "views.h"

#define T0 INT64_C(1767225600000) /* 2026-01-01 00:00 UTC: a day boundary */
#define SECOND INT64_C(1000)
#define MINUTE INT64_C(60000)
#define HOUR INT64_C(3600000)
#define DAY INT64_C(86400000)
#define NOW (T0 + 30 * DAY) /* requests use epoch ms; "now" only for defaults */

#define MAX_SERIES 16
#define BUCKET_MS SECOND
#define SLOTS 1800 /* ring window: 30 min */
#define RAW 32     /* raw samples per series: older ring buckets lack values */
#define REPLY_CAP (4u << 20)

#define SRC_BATCH 1u
#define SRC_SPEED 2u
#define SRC_LOG 4u

static const char *const names[] = {"sensors/a/temp", "sensors/a/hum",  "sensors/b/temp",
                                    "sensors/b/hum",  "sensors/c/temp", "sensors/c/hum",
                                    "sensors/d/temp", "other/e/temp"};
#define N_NAMES 8
#define OTHER 7 /* names[OTHER] only has events in the first hour after T0 */

/* What a failing check was looking at. */
static char g_ctx[600];

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fail_msg("%s: failed: %s (line %d)", g_ctx, #cond, __LINE__);                          \
    } while (0)

/* ---- fixture: a temp dir with master.db (writer open), views.db, a speed
 * layer and a serve object ---- */

struct ev {
    int64_t seq;
    uint32_t series;
    int64_t ts;
    double value;
    bool in_speed; /* given to the speed layer's events lane */
};

struct fixture {
    char dir[PATH_MAX];
    struct mlog *log;
    struct views *batch; /* the batch worker's handle */
    struct speed *sp;
    int64_t horizon; /* as given to speed_set_horizon */
    struct serve *sv;
    atomic_int stop;
    struct ev *evs; /* every event in `events`, in seq order */
    size_t n, cap;
    size_t applied; /* evs[0, applied) went through the core's apply step */
    int64_t next_seq;
    int64_t W; /* the views' watermark */
    uint64_t rng;
    int64_t last_ts[N_NAMES];
    int64_t arrived_mono_ms; /* serve_answer's arrival time, 0: now */
    char *reply;
    size_t reply_len;
    struct plat_json doc;
    struct plat_json_tok *tok;
    size_t tok_cap;
};

static struct serve_opts default_opts(const struct fixture *f)
{
    struct serve_opts o = {
        .dir = f->dir,
        .max_series = MAX_SERIES,
        .deadline_ms = 60000, /* generous: the unit tests also run under valgrind */
        .max_rows = 2000000,
        .max_cells = 50000,
        .max_values = 200000,
        .max_sketch_bins = 2000000,
        .max_match = 1000,
    };
    return o;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    if (test_mkdtemp(f->dir, sizeof f->dir, "serve") != 0) {
        free(f);
        return -1;
    }
    struct mlog_opts o = {.dir = f->dir, .max_series = MAX_SERIES};
    if (mlog_open(&o, "boot-serve", T0, 1000, &f->log) != EL_OK ||
        views_open(f->dir, &f->batch) != EL_OK ||
        speed_new(MAX_SERIES, SLOTS, BUCKET_MS, RAW, &f->sp) != EL_OK)
        return -1;
    atomic_init(&f->stop, 0);
    struct serve_opts so = default_opts(f);
    if (serve_new(&so, f->sp, &f->stop, &f->sv) != EL_OK)
        return -1;
    f->horizon = SPEED_MIN_TS;
    f->next_seq = 1;
    f->rng = UINT64_C(0x5e7e5e7e20260101);
    f->reply = malloc(REPLY_CAP);
    if (!f->reply)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    serve_free(f->sv);
    speed_free(f->sp);
    views_close(f->batch);
    mlog_close(f->log);
    int rc = test_rmtree(f->dir);
    free(f->evs);
    free(f->tok);
    free(f->reply);
    free(f);
    return rc;
}

/* ---- deterministic inputs ---- */

static uint64_t rnd(struct fixture *f)
{
    uint64_t z = (f->rng += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static int64_t rnd_in(struct fixture *f, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rnd(f) % (uint64_t)(hi - lo));
}

/* A multiple of 1/4 in [-20, 60]: zeros and repeated values included. */
static double rnd_value(struct fixture *f)
{
    return (double)(rnd_in(f, 0, 321) - 80) * 0.25;
}

static int64_t align_down(int64_t t, int64_t a)
{
    int64_t r = t % a;
    return r < 0 ? t - r - a : t - r;
}

static int64_t align_up(int64_t t, int64_t a)
{
    return -align_down(-t, a);
}

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* ---- writing: the core's group commit ---- */

static int64_t add_event(struct fixture *f, int name, int64_t ts, double value)
{
    const char *s = names[name];
    uint32_t id;
    int64_t seq = f->next_seq++;
    assert_int_equal(mlog_series_get(f->log, s, strlen(s), seq, &id), EL_OK);
    struct mlog_event e = {.seq = seq,
                           .series_id = id,
                           .ts_ms = ts,
                           .value = value,
                           .recv_ms = ts,
                           .mono_ms = 5000 + seq,
                           .flags = MLOG_F_CLOCK_SYNCED | MLOG_F_HAS_TS,
                           .payload = "{}",
                           .payload_len = 2};
    assert_int_equal(mlog_append_event(f->log, &e), EL_OK);
    if (f->n == f->cap) {
        f->cap = f->cap ? 2 * f->cap : 1024;
        f->evs = realloc(f->evs, f->cap * sizeof f->evs[0]);
        assert_non_null(f->evs);
    }
    f->evs[f->n++] = (struct ev){.seq = seq, .series = id, .ts = ts, .value = value};
    f->last_ts[name] = ts;
    return seq;
}

static void add_dead(struct fixture *f)
{
    (void)test_add_dead(f->log, f->next_seq++, "sensors/bad", "malformed", T0, MLOG_F_CLOCK_SYNCED);
}

/* The core after a commit: every committed event to the speed layer, then
 * the cursor (core_commit). */
static void apply(struct fixture *f)
{
    for (; f->applied < f->n; f->applied++) {
        struct ev *e = &f->evs[f->applied];
        speed_add(f->sp, SPEED_EVENTS, e->series, e->ts, e->value, e->seq);
        e->in_speed = true;
    }
    speed_publish(f->sp, mlog_committed_seq(f->log));
}

static void commit(struct fixture *f, bool then_apply)
{
    assert_int_equal(mlog_commit(f->log), EL_OK);
    if (then_apply)
        apply(f);
}

/* count events over [t_lo, t_hi): time grows with seq, each up to 2 min
 * early; 1 in 40 repeats its series' previous time (a tie, the higher seq is
 * `last`); 1 in 60 is followed by a dead letter; a commit every `chunk`. */
static void gen(struct fixture *f, int count, int64_t t_lo, int64_t t_hi, int chunk,
                bool then_apply)
{
    for (int i = 0; i < count; i++) {
        int64_t ts = t_lo + (t_hi - t_lo) * i / count - rnd_in(f, 0, 2 * MINUTE);
        int name = (int)rnd_in(f, 0, N_NAMES);
        if (name == OTHER && ts >= T0 + HOUR)
            name = (int)rnd_in(f, 0, OTHER);
        if (f->last_ts[name] != 0 && rnd_in(f, 0, 40) == 0)
            ts = f->last_ts[name];
        (void)add_event(f, name, ts, rnd_value(f));
        if (rnd_in(f, 0, 60) == 0)
            add_dead(f);
        if ((i + 1) % chunk == 0)
            commit(f, then_apply);
    }
    commit(f, then_apply);
}

static int name_index(const struct fixture *f, uint32_t id)
{
    for (int k = 0; k < N_NAMES; k++)
        if (strcmp(mlog_series_name(f->log, id), names[k]) == 0)
            return k;
    fail_msg("series %u has no name", id);
    return -1;
}

static int64_t last_event_seq(const struct fixture *f)
{
    return f->n ? f->evs[f->n - 1].seq : 0;
}

/* The batch worker's run: the views cover every committed event. */
static void recompute(struct fixture *f, bool full)
{
    struct views_run run;
    assert_int_equal(views_recompute(f->batch, f->dir, full, NULL, NULL, NULL, &run), EL_OK);
    assert_false(run.skipped);
    assert_int_equal(run.snapshot_seq, last_event_seq(f));
    f->W = run.snapshot_seq;
}

/* ---- asking ---- */

static bool topic_match(const char *filter, const char *name)
{
    while (*filter) {
        if (*filter == '#')
            return true;
        if (*filter == '+') {
            while (*name && *name != '/')
                name++;
            filter++;
        } else if (*filter++ != *name++) {
            return false;
        }
    }
    return *name == '\0';
}

/* Parses text (a request), asks sv, reads the reply into f->doc; returns the
 * error code, NULL for an answer. */
static const char *ask(struct fixture *f, struct serve *sv, const char *text)
{
    struct query q;
    const char *code = NULL, *acode = NULL;
    char err[256];
    size_t need = 0;
    snprintf(g_ctx, sizeof g_ctx, "%s", text);
    if (!query_parse(text, strlen(text), NOW, &q, &code, err, sizeof err))
        fail_msg("request refused by the parser: %s: %s", text, err);
    f->reply_len = serve_answer(sv, &q, f->arrived_mono_ms, f->reply, REPLY_CAP, &acode);
    CHECK(f->reply_len > 0 && f->reply_len <= REPLY_CAP);
    CHECK(plat_json_count(f->reply, f->reply_len, &need) == EL_OK);
    if (need > f->tok_cap) {
        free(f->tok);
        f->tok_cap = need;
        f->tok = malloc(need * sizeof f->tok[0]);
        assert_non_null(f->tok);
    }
    CHECK(plat_json_parse(&f->doc, f->reply, f->reply_len, f->tok, f->tok_cap) == EL_OK);
    bool ok = false;
    CHECK(plat_json_bool(&f->doc, plat_json_member(&f->doc, 0, "ok"), &ok) == EL_OK);
    CHECK(ok == (acode == NULL));
    if (acode) {
        char c[64];
        int e = plat_json_member(&f->doc, 0, "error");
        CHECK(plat_json_string(&f->doc, plat_json_member(&f->doc, e, "code"), c, sizeof c, NULL) ==
              EL_OK);
        CHECK(strcmp(c, acode) == 0);
        CHECK(plat_json_type(&f->doc, plat_json_member(&f->doc, e, "message")) == PLAT_JSON_STRING);
    }
    return acode;
}

/* An error answer with this code whose message names `bound`. */
static void expect_error(struct fixture *f, struct serve *sv, const char *text, const char *code,
                         const char *bound)
{
    char msg[300];
    const char *got = ask(f, sv, text);
    CHECK(got != NULL && strcmp(got, code) == 0);
    int e = plat_json_member(&f->doc, 0, "error");
    CHECK(plat_json_string(&f->doc, plat_json_member(&f->doc, e, "message"), msg, sizeof msg,
                           NULL) == EL_OK);
    CHECK(bound == NULL || strstr(msg, bound) != NULL);
}

static int64_t get_i64(const struct plat_json *d, int obj, const char *key)
{
    int64_t v = 0;
    CHECK(plat_json_int64(d, plat_json_member(d, obj, key), &v) == EL_OK);
    return v;
}

static double get_dbl(const struct plat_json *d, int obj, const char *key)
{
    double v = 0;
    CHECK(plat_json_double(d, plat_json_member(d, obj, key), &v) == EL_OK);
    return v;
}

static uint32_t entry_id(const struct fixture *f, const struct plat_json *d, int obj)
{
    char name[QUERY_NAME_MAX + 1];
    uint32_t id = 0;
    CHECK(plat_json_string(d, plat_json_member(d, obj, "series"), name, sizeof name, NULL) ==
          EL_OK);
    CHECK(mlog_series_find(f->log, name, strlen(name), &id) == EL_OK);
    return id;
}

/* ---- the model: serve.h's rules over the test's own events ---- */

struct rq {
    const char *series, *match; /* one of them */
    int64_t from, to, step;
    bool quantiles;
};

struct plan {
    int64_t from, to, step, base, view_lo;
    int64_t c, W, N;
    bool views_fit; /* a minute divides the step */
    bool use_views; /* ... and the views cover something */
};

struct span {
    int64_t ring_lo, ring_hi, old_end, views_hi;
};

/* What a range answer covered, by bucket, over a whole check. */
struct stats {
    uint64_t buckets, batch, speed, log, batch_log, speed_log, tail, exact_q, sketch_q;
};

static const int pcts[] = {50, 95};

static void plan_of(const struct fixture *f, const struct rq *r, struct plan *p)
{
    p->from = r->from;
    p->to = r->to;
    p->step = r->step;
    p->base = align_down(r->from, r->step);
    p->view_lo = align_up(r->from, MINUTE);
    p->c = speed_cursor(f->sp);
    p->views_fit = r->step % MINUTE == 0;
    p->W = p->views_fit ? f->W : 0; /* the views' snapshot is taken only when they fit */
    p->use_views = p->W > 0;
    p->N = max64(p->c, p->W);
}

/* The series' ring span and older parts (speed.h lane span, serve.h). */
static void span_of(const struct fixture *f, const struct plan *p, uint32_t id, struct span *s)
{
    int64_t newest = INT64_MIN, lo = 0, hi = 0;
    for (size_t i = 0; i < f->n; i++)
        if (f->evs[i].in_speed && f->evs[i].series == id)
            newest = max64(newest, align_down(f->evs[i].ts, BUCKET_MS));
    if (newest != INT64_MIN && p->step % BUCKET_MS == 0) {
        int64_t a = align_up(p->from, BUCKET_MS);
        int64_t ws = max64(newest - (SLOTS - 1) * BUCKET_MS, f->horizon);
        lo = a > ws ? a : align_up(ws, p->views_fit ? MINUTE : BUCKET_MS);
        hi = align_down(p->to, BUCKET_MS);
        if (lo >= hi)
            lo = hi = 0;
    }
    if (lo < hi) {
        s->ring_lo = s->old_end = lo;
        s->ring_hi = hi;
    } else if (newest == INT64_MIN) { /* no ring data: only events above c from the horizon */
        int64_t h = max64(align_up(f->horizon, p->views_fit ? MINUTE : 1), p->from);
        s->ring_lo = s->old_end = min64(h, p->to);
        s->ring_hi = p->to;
    } else { /* the range is older than the ring */
        s->ring_lo = s->ring_hi = s->old_end = p->to;
    }
    s->views_hi = align_down(s->old_end, MINUTE);
}

static unsigned route(const struct plan *p, const struct span *s, const struct ev *e)
{
    if (e->ts >= s->ring_lo && e->ts < s->ring_hi)
        return e->seq > p->c ? SRC_LOG : SRC_SPEED;
    if (p->use_views && e->ts >= p->view_lo && e->ts < s->views_hi && e->seq <= p->W)
        return SRC_BATCH;
    return SRC_LOG;
}

struct item {
    int64_t k, ts, seq;
    double v;
    unsigned src;
};

static int cmp_item(const void *x, const void *y)
{
    const struct item *a = x, *b = y;
    if (a->k != b->k)
        return a->k < b->k ? -1 : 1;
    return (a->v > b->v) - (a->v < b->v);
}

static unsigned src_bits(const struct plat_json *d, int bucket)
{
    int arr = plat_json_member(d, bucket, "src");
    unsigned bits = 0;
    CHECK(plat_json_type(d, arr) == PLAT_JSON_ARRAY);
    for (int i = plat_json_first(d, arr); i >= 0; i = plat_json_next(d, arr, i)) {
        unsigned b = plat_json_eq(d, i, "batch")   ? SRC_BATCH
                     : plat_json_eq(d, i, "speed") ? SRC_SPEED
                     : plat_json_eq(d, i, "log")   ? SRC_LOG
                                                   : 0u;
        CHECK(b != 0 && (bits & b) == 0);
        bits |= b;
    }
    return bits;
}

/* One series' buckets in the answer against the brute force. */
static void check_member(const struct fixture *f, const struct plan *p, const struct rq *r,
                         uint32_t id, int buckets, struct stats *st, uint64_t src_count[3])
{
    const struct plat_json *d = &f->doc;
    struct span s;
    struct item *it = malloc((f->n ? f->n : 1) * sizeof *it);
    size_t n = 0;
    char ctx[sizeof g_ctx];
    assert_non_null(it);
    span_of(f, p, id, &s);
    for (size_t i = 0; i < f->n; i++) {
        const struct ev *e = &f->evs[i];
        if (e->series != id || e->seq > p->N || e->ts < p->from || e->ts >= p->to)
            continue;
        it[n++] = (struct item){.k = (e->ts - p->base) / p->step,
                                .ts = e->ts,
                                .seq = e->seq,
                                .v = e->value,
                                .src = route(p, &s, e)};
    }
    qsort(it, n, sizeof *it, cmp_item);
    snprintf(ctx, sizeof ctx, "%s", g_ctx);
    CHECK(plat_json_type(d, buckets) == PLAT_JSON_ARRAY);
    int b = plat_json_first(d, buckets);
    for (size_t i = 0, j; i < n; i = j, b = plat_json_next(d, buckets, b)) {
        int64_t t = p->base + it[i].k * p->step;
        uint64_t count;
        double sum = 0, last = NAN;
        int64_t last_ts = INT64_MIN, last_seq = -1;
        unsigned src = 0;
        bool tail = false;
        for (j = i; j < n && it[j].k == it[i].k; j++) {
            sum += it[j].v;
            src |= it[j].src;
            tail |= it[j].seq > p->c;
            if (it[j].ts > last_ts || (it[j].ts == last_ts && it[j].seq > last_seq)) {
                last_ts = it[j].ts;
                last_seq = it[j].seq;
                last = it[j].v;
            }
        }
        count = (uint64_t)(j - i);
        long double mean = (long double)sum / (long double)count, m2 = 0;
        for (size_t k = i; k < j; k++)
            m2 += ((long double)it[k].v - mean) * ((long double)it[k].v - mean);
        double sd = (double)sqrtl(m2 / (long double)count);
        snprintf(g_ctx, sizeof g_ctx, "%.400s | series %u, bucket t=%lld (T0%+lld s)", ctx, id,
                 (long long)t, (long long)((t - T0) / SECOND));
        CHECK(b >= 0);
        CHECK(get_i64(d, b, "t") == t);
        CHECK((uint64_t)get_i64(d, b, "count") == count);
        CHECK(get_dbl(d, b, "sum") == sum);
        CHECK(get_dbl(d, b, "min") == it[i].v);
        CHECK(get_dbl(d, b, "max") == it[j - 1].v);
        CHECK(get_dbl(d, b, "mean") == sum / (double)count);
        CHECK(fabs(get_dbl(d, b, "stddev") - sd) <= 1e-9 * (1 + sd));
        CHECK(get_dbl(d, b, "last") == last);
        CHECK(src_bits(d, b) == src);
        for (size_t q = 0; r->quantiles && q < sizeof pcts / sizeof pcts[0]; q++) {
            char key[8];
            uint64_t rank = ((uint64_t)pcts[q] * count + 99) / 100; /* ceil(q n), >= 1 */
            double exact = it[i + (size_t)rank - 1].v;
            snprintf(key, sizeof key, "p%d", pcts[q]);
            double got = get_dbl(d, b, key);
            if (src & SRC_BATCH) {
                CHECK(fabs(got - exact) <= AGG_SKETCH_ALPHA * fabs(exact) + 1e-12);
                st->sketch_q++;
            } else {
                CHECK(got == exact);
                st->exact_q++;
            }
        }
        st->buckets++;
        st->batch += (src & SRC_BATCH) != 0;
        st->speed += (src & SRC_SPEED) != 0;
        st->log += (src & SRC_LOG) != 0;
        st->batch_log += (src & SRC_BATCH) && (src & SRC_LOG);
        st->speed_log += (src & SRC_SPEED) && (src & SRC_LOG);
        st->tail += tail;
        src_count[0] += (src & SRC_BATCH) != 0;
        src_count[1] += (src & SRC_SPEED) != 0;
        src_count[2] += (src & SRC_LOG) != 0;
    }
    snprintf(g_ctx, sizeof g_ctx, "%.400s | series %u: more buckets than expected", ctx, id);
    CHECK(b < 0);
    snprintf(g_ctx, sizeof g_ctx, "%s", ctx);
    free(it);
}

/* Asks a range query and checks the whole answer. */
static void check_range(struct fixture *f, struct serve *sv, const struct rq *r, struct stats *st)
{
    char text[512];
    struct plan p;
    uint64_t src_count[3] = {0, 0, 0};
    bool seen[MAX_SERIES + 1] = {false};
    uint32_t expected = 0;
    const struct plat_json *d = &f->doc;
    snprintf(text, sizeof text,
             "{\"%s\":\"%s\",\"from\":%lld,\"to\":%lld,\"step\":%lld,\"agg\":[\"count\",\"sum\","
             "\"min\",\"max\",\"mean\",\"stddev\",\"last\"%s]}",
             r->match ? "match" : "series", r->match ? r->match : r->series, (long long)r->from,
             (long long)r->to, (long long)r->step, r->quantiles ? ",\"p50\",\"p95\"" : "");
    plan_of(f, r, &p);
    for (uint32_t id = 1; id <= mlog_series_count(f->log); id++)
        expected += r->match ? topic_match(r->match, mlog_series_name(f->log, id)) : 0;
    if (r->match && expected == 0)
        p.N = mlog_committed_seq(f->log); /* no member: as of the log */
    CHECK(ask(f, sv, text) == NULL);
    snprintf(g_ctx + strlen(g_ctx), sizeof g_ctx - strlen(g_ctx), " (c_s %lld, W %lld)",
             (long long)p.c, (long long)p.W);
    CHECK(get_i64(d, 0, "seq") == p.N);
    CHECK(get_i64(d, 0, "step_ms") == r->step);
    if (r->match) {
        int arr = plat_json_member(d, 0, "series");
        CHECK(plat_json_type(d, arr) == PLAT_JSON_ARRAY);
        CHECK(plat_json_count_children(d, arr) == (int)expected);
        for (int e = plat_json_first(d, arr); e >= 0; e = plat_json_next(d, arr, e)) {
            uint32_t id = entry_id(f, d, e);
            CHECK(topic_match(r->match, mlog_series_name(f->log, id)) && !seen[id]);
            seen[id] = true;
            check_member(f, &p, r, id, plat_json_member(d, e, "buckets"), st, src_count);
        }
    } else {
        uint32_t id = 0;
        CHECK(mlog_series_find(f->log, r->series, strlen(r->series), &id) == EL_OK);
        check_member(f, &p, r, id, plat_json_member(d, 0, "buckets"), st, src_count);
    }
    int so = plat_json_member(d, 0, "sources");
    CHECK((uint64_t)get_i64(d, so, "batch") == src_count[0]);
    CHECK((uint64_t)get_i64(d, so, "speed") == src_count[1]);
    CHECK((uint64_t)get_i64(d, so, "log") == src_count[2]);
}

/* A battery of range queries over data in [lo, hi): views fitting the step
 * or not, ring usable or not, unaligned edges, every resolution. */
static void check_all(struct fixture *f, struct serve *sv, int64_t lo, int64_t hi, struct stats *st)
{
    const struct rq rqs[] = {
        {.match = "#",
         .from = lo - 30 * MINUTE + 17123,
         .to = hi + 5 * MINUTE + 500,
         .step = MINUTE,
         .quantiles = true},
        {.match = "#", .from = lo - HOUR, .to = hi + HOUR, .step = HOUR, .quantiles = true},
        {.match = "sensors/+/temp",
         .from = lo + 7777,
         .to = hi + 1001,
         .step = 30 * SECOND,
         .quantiles = true},
        {.match = "sensors/+/hum",
         .from = hi - HOUR + 3,
         .to = hi + 100,
         .step = 7 * SECOND,
         .quantiles = true},
        {.match = "#", .from = lo + 61000, .to = hi - 61000, .step = 2 * MINUTE},
        {.series = names[0], .from = lo - DAY, .to = hi + DAY, .step = DAY, .quantiles = true},
        {.series = names[2],
         .from = hi - 90 * MINUTE,
         .to = hi + 1,
         .step = 1500,
         .quantiles = true},
        {.series = names[3],
         .from = align_down(hi - 20 * MINUTE, MINUTE),
         .to = hi + 10 * MINUTE,
         .step = MINUTE,
         .quantiles = true},
        {.series = names[OTHER], .from = lo, .to = hi, .step = 5 * MINUTE, .quantiles = true},
    };
    for (size_t i = 0; i < sizeof rqs / sizeof rqs[0]; i++)
        check_range(f, sv, &rqs[i], st);
}

/* ---- op series and op last against the brute force ---- */

/* op series [with match]: count, last_t and last of every selected series,
 * as of the log's last seq. */
static void check_series_op(struct fixture *f, struct serve *sv, const char *match)
{
    char text[256];
    const struct plat_json *d = &f->doc;
    bool seen[MAX_SERIES + 1] = {false};
    int expected = 0;
    if (match)
        snprintf(text, sizeof text, "{\"op\":\"series\",\"match\":\"%s\"}", match);
    else
        snprintf(text, sizeof text, "{\"op\":\"series\"}");
    CHECK(ask(f, sv, text) == NULL);
    int64_t N = get_i64(d, 0, "seq");
    CHECK(N == mlog_committed_seq(f->log));
    for (uint32_t id = 1; id <= mlog_series_count(f->log); id++)
        expected += !match || topic_match(match, mlog_series_name(f->log, id));
    int arr = plat_json_member(d, 0, "series");
    CHECK(plat_json_count_children(d, arr) == expected);
    for (int e = plat_json_first(d, arr); e >= 0; e = plat_json_next(d, arr, e)) {
        uint32_t id = entry_id(f, d, e);
        uint64_t count = 0;
        int64_t last_ts = INT64_MIN, last_seq = -1;
        double last = NAN;
        CHECK(!seen[id] && (!match || topic_match(match, mlog_series_name(f->log, id))));
        seen[id] = true;
        for (size_t i = 0; i < f->n; i++) {
            const struct ev *ev = &f->evs[i];
            if (ev->series != id || ev->seq > N)
                continue;
            count++;
            if (ev->ts > last_ts || (ev->ts == last_ts && ev->seq > last_seq)) {
                last_ts = ev->ts;
                last_seq = ev->seq;
                last = ev->value;
            }
        }
        CHECK((uint64_t)get_i64(d, e, "count") == count);
        CHECK(get_i64(d, e, "last_t") == last_ts);
        CHECK(get_dbl(d, e, "last") == last);
    }
}

/* op last: the newest `n` samples received (by seq) of each selected
 * series, newest first, and the series' count. */
static void check_last_op(struct fixture *f, struct serve *sv, const char *key, const char *sel,
                          int n)
{
    char text[256];
    const struct plat_json *d = &f->doc;
    int expected = 0;
    snprintf(text, sizeof text, "{\"op\":\"last\",\"%s\":\"%s\",\"n\":%d}", key, sel, n);
    CHECK(ask(f, sv, text) == NULL);
    int64_t N = get_i64(d, 0, "seq");
    CHECK(N == mlog_committed_seq(f->log));
    for (uint32_t id = 1; id <= mlog_series_count(f->log); id++)
        expected += strcmp(key, "match") == 0 ? topic_match(sel, mlog_series_name(f->log, id))
                                              : strcmp(sel, mlog_series_name(f->log, id)) == 0;
    int arr = plat_json_member(d, 0, "series");
    CHECK(plat_json_count_children(d, arr) == expected);
    for (int e = plat_json_first(d, arr); e >= 0; e = plat_json_next(d, arr, e)) {
        uint32_t id = entry_id(f, d, e);
        uint64_t count = 0;
        for (size_t i = 0; i < f->n; i++)
            count += f->evs[i].series == id && f->evs[i].seq <= N;
        CHECK((uint64_t)get_i64(d, e, "count") == count);
        int samples = plat_json_member(d, e, "samples");
        int s = plat_json_first(d, samples), got = 0;
        for (size_t i = f->n; i-- > 0 && got < n;) {
            const struct ev *ev = &f->evs[i];
            if (ev->series != id || ev->seq > N)
                continue;
            CHECK(s >= 0);
            CHECK(get_i64(d, s, "seq") == ev->seq);
            CHECK(get_i64(d, s, "t") == ev->ts);
            CHECK(get_dbl(d, s, "value") == ev->value);
            CHECK(plat_json_member(d, s, "provisional") < 0);
            s = plat_json_next(d, samples, s);
            got++;
        }
        CHECK(s < 0);
    }
}

/* ---- tests ---- */

/* 1. No views; the speed layer holds nothing. */
static void test_log_only(void **state)
{
    struct fixture *f = *state;
    struct stats st = {0};
    gen(f, 1500, T0, T0 + 90 * MINUTE, 250, false);

    /* The speed layer never applied anything (cursor 0): the answer is
     * exact as of seq max(c_s, W) = 0, i.e. empty. */
    assert_int_equal(speed_cursor(f->sp), 0);
    struct rq r0 = {.match = "#", .from = T0, .to = T0 + 90 * MINUTE, .step = MINUTE};
    check_range(f, f->sv, &r0, &st);
    assert_int_equal(st.buckets, 0);

    /* Its horizon past every event and the cursor at the log's end: the
     * speed layer holds exactly the events at or after the horizon, none;
     * every bucket comes from the log. */
    int64_t newest = INT64_MIN;
    for (size_t i = 0; i < f->n; i++)
        newest = max64(newest, f->evs[i].ts);
    f->horizon = align_up(newest + 1, MINUTE);
    speed_set_horizon(f->sp, f->horizon);
    speed_publish(f->sp, mlog_committed_seq(f->log));
    check_all(f, f->sv, T0, T0 + 90 * MINUTE, &st);
    assert_true(st.buckets > 1000);
    assert_int_equal(st.log, st.buckets);
    assert_int_equal(st.batch, 0);
    assert_int_equal(st.speed, 0);
    assert_true(st.exact_q > 0);
}

/* 2. Views (seq <= W), speed (W < seq <= c_s), unapplied commits (c_s, N]. */
static void test_views_speed_and_tail(void **state)
{
    struct fixture *f = *state;
    gen(f, 1500, T0, T0 + 90 * MINUTE, 250, true);
    recompute(f, false);
    int64_t W = f->W;
    gen(f, 1000, T0 + 90 * MINUTE, T0 + 150 * MINUTE, 250, true);
    int64_t c_s = speed_cursor(f->sp);
    size_t applied = f->applied;
    gen(f, 500, T0 + 150 * MINUTE, T0 + 3 * HOUR, 250, false); /* committed, not applied yet */
    int64_t N = mlog_committed_seq(f->log);
    assert_true(W < c_s && c_s < last_event_seq(f) && applied < f->n);

    /* As of c_s: views, rings and the log (the edges, events above W older
     * than the ring); nothing above c_s. */
    struct stats a = {0};
    check_all(f, f->sv, T0, T0 + 3 * HOUR, &a);
    CHECK(get_i64(&f->doc, 0, "seq") == c_s);
    assert_true(a.batch > 0 && a.speed > 0 && a.log > 0 && a.exact_q > 0 && a.sketch_q > 0);
    assert_int_equal(a.tail, 0);

    /* A batch run between the commit and the core's publish: the views
     * cover N > c_s, so the answer is as of N and the ring span's events in
     * (c_s, N] come from the log's tail. */
    recompute(f, false);
    assert_true(f->W > c_s && f->W == last_event_seq(f));
    struct stats b = {0};
    check_all(f, f->sv, T0, T0 + 3 * HOUR, &b);
    CHECK(get_i64(&f->doc, 0, "seq") == f->W);
    assert_true(b.tail > 0 && b.speed_log > 0 && b.batch > a.batch);

    /* The core applies and publishes: as of N, the rings hold the newest. */
    apply(f);
    assert_int_equal(speed_cursor(f->sp), N);
    struct stats c = {0};
    check_all(f, f->sv, T0, T0 + 3 * HOUR, &c);
    CHECK(get_i64(&f->doc, 0, "seq") == N);
    assert_int_equal(c.tail, 0);
    assert_true(c.speed > 0 && c.batch > 0);
}

/* 3. Late data older than the ring window, after the views' watermark. */
static void test_late_data(void **state)
{
    struct fixture *f = *state;
    gen(f, 1000, T0, T0 + 2 * HOUR, 250, true);
    recompute(f, false);
    int64_t newest = INT64_MIN;
    for (size_t i = 0; i < f->n; i++)
        newest = max64(newest, f->evs[i].ts);
    int64_t window_start = align_down(newest, BUCKET_MS) - (SLOTS - 1) * BUCKET_MS;

    /* late events into [T0, T0 + 1h): 1 in 8 at the very time of an earlier
     * event of its series (the later seq is `last`), plus a few inside the
     * ring window */
    uint64_t out_before = speed_out_of_window(f->sp);
    size_t base_n = f->n;
    int late_old = 0;
    for (int i = 0; i < 150; i++) {
        int name = (int)rnd_in(f, 0, OTHER);
        int64_t ts = T0 + rnd_in(f, 0, HOUR);
        const struct ev *e = &f->evs[rnd_in(f, 0, (int64_t)base_n)];
        if (rnd_in(f, 0, 8) == 0 && e->ts < T0 + HOUR && name_index(f, e->series) != OTHER) {
            ts = e->ts;
            name = name_index(f, e->series);
        }
        (void)add_event(f, name, ts, rnd_value(f));
        late_old++;
        if (i % 25 == 0) {
            (void)add_event(f, name, window_start + rnd_in(f, 0, 20 * MINUTE), rnd_value(f));
            add_dead(f);
        }
        if (i % 50 == 49)
            commit(f, true);
    }
    commit(f, true);
    assert_int_equal(speed_out_of_window(f->sp) - out_before, (uint64_t)late_old);

    /* In the answer beside the views, from the log. */
    struct stats a = {0};
    check_all(f, f->sv, T0, T0 + 2 * HOUR, &a);
    assert_true(a.batch_log > 50);

    /* Covered by an incremental run, then a full one: still counted once. */
    recompute(f, false);
    struct stats b = {0};
    check_all(f, f->sv, T0, T0 + 2 * HOUR, &b);
    assert_true(b.batch_log < a.batch_log);
    recompute(f, true);
    struct stats c = {0};
    check_all(f, f->sv, T0, T0 + 2 * HOUR, &c);
    assert_int_equal(c.batch_log, b.batch_log);
    assert_int_equal(c.buckets, b.buckets);
}

/* 4. match over several series; op series and op last. */
static void test_match_series_last(void **state)
{
    struct fixture *f = *state;
    struct stats st = {0};
    gen(f, 1200, T0, T0 + 2 * HOUR, 200, true);
    recompute(f, false);
    gen(f, 800, T0 + 2 * HOUR, T0 + 3 * HOUR, 200, true);
    const struct rq rqs[] = {
        {.match = "sensors/+/temp",
         .from = T0,
         .to = T0 + 3 * HOUR,
         .step = MINUTE,
         .quantiles = true},
        {.match = "sensors/a/#",
         .from = T0 - 999,
         .to = T0 + 4 * HOUR,
         .step = 10 * MINUTE,
         .quantiles = true},
        {.match = "+/+/temp", .from = T0 + HOUR, .to = T0 + 3 * HOUR, .step = 20 * SECOND},
        {.match = "nothing/+/here", .from = T0, .to = T0 + 3 * HOUR, .step = MINUTE},
    };
    for (size_t i = 0; i < sizeof rqs / sizeof rqs[0]; i++)
        check_range(f, f->sv, &rqs[i], &st);
    assert_true(st.batch > 0 && st.speed > 0 && st.log > 0);
    expect_error(f, f->sv,
                 "{\"series\":\"sensors/none\",\"from\":1767225600000,\"to\":1767229200000}",
                 "not_found", NULL);

    check_series_op(f, f->sv, NULL);
    check_series_op(f, f->sv, "sensors/+/hum");
    check_series_op(f, f->sv, "other/#");
    check_last_op(f, f->sv, "series", names[0], 1);
    check_last_op(f, f->sv, "series", names[2], 5);
    check_last_op(f, f->sv, "match", "sensors/+/hum", 3);
    check_last_op(f, f->sv, "match", "#", RAW);

    /* a late event, a new newest one, ties on the newest time (the later seq
     * is `last`; for names[OTHER] the earlier one is in the views) and a
     * dead letter: counts, last_t, last, samples */
    int64_t other_newest = INT64_MIN;
    for (size_t i = 0; i < f->n; i++)
        if (name_index(f, f->evs[i].series) == OTHER)
            other_newest = max64(other_newest, f->evs[i].ts);
    assert_true(other_newest < T0 + HOUR); /* covered by the views */
    (void)add_event(f, 1, T0 + 5 * MINUTE, 12.25);
    (void)add_event(f, 1, T0 + 3 * HOUR + 7, -3.5); /* the newest of its series */
    (void)add_event(f, 1, T0 + 3 * HOUR + 7, 8.75);
    (void)add_event(f, OTHER, other_newest, 33.5);
    add_dead(f);
    commit(f, true);
    check_series_op(f, f->sv, NULL);
    check_last_op(f, f->sv, "series", names[1], 2);

    /* More samples than the rings keep: refused, naming the bound. */
    char text[128];
    snprintf(text, sizeof text, "{\"op\":\"last\",\"match\":\"#\",\"n\":%d}", RAW + 1);
    expect_error(f, f->sv, text, "too_large", "speed.raw_samples");
    /* Committed but not yet applied by the core: op last cannot show the
     * newest samples from the rings yet, so it waits for them (here, the
     * deadline: this test is the core); op series answers from the log.
     * Once applied, the samples match the answer's seq. */
    struct serve_opts o = default_opts(f);
    struct serve *b = NULL;
    o.deadline_ms = 50;
    assert_int_equal(serve_new(&o, f->sp, &f->stop, &b), EL_OK);
    (void)add_event(f, 1, T0 + 3 * HOUR + 9, 1.25);
    (void)add_event(f, 1, T0 + 3 * HOUR + 10, 2.5);
    commit(f, false);
    snprintf(text, sizeof text, "{\"op\":\"last\",\"series\":\"%s\",\"n\":3}", names[1]);
    expect_error(f, b, text, "timeout", "query.deadline_ms");
    check_series_op(f, b, NULL);
    apply(f);
    check_last_op(f, b, "series", names[1], 3);
    check_last_op(f, b, "series", names[1], RAW);
    serve_free(b);
}

/* 7. op series / op last keep their per-series summary from one answer to
 * the next and read only the log after it (serve.c, summarise). Exact
 * across: new events, new series, new views (W moves) and retention removing
 * rows the views do not cover (the log's oldest seq moves). */
static void test_summary_across_requests(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < 50; i++)
        (void)add_event(f, i % 2, T0 + i * SECOND, rnd_value(f));
    commit(f, true);
    check_series_op(f, f->sv, NULL); /* the summary from scratch: two series */
    gen(f, 600, T0 + MINUTE, T0 + HOUR, 100, true);
    check_series_op(f, f->sv, NULL); /* only the log after the last answer; new series */
    check_last_op(f, f->sv, "match", "#", 3);
    recompute(f, false);
    gen(f, 300, T0 + HOUR, T0 + 2 * HOUR, 100, true);
    check_series_op(f, f->sv, NULL); /* new views: from scratch again */
    gen(f, 300, T0 + 2 * HOUR, T0 + 3 * HOUR, 100, true);
    check_series_op(f, f->sv, "sensors/+/temp");
    /* Retention past the views' watermark: those rows are gone from every
     * answer (the views still count what they cover). */
    int64_t upto = f->W + 150;
    assert_int_equal(mlog_trim(f->log, upto), EL_OK);
    size_t kept = 0;
    for (size_t i = 0; i < f->n; i++)
        if (f->evs[i].seq <= f->W || f->evs[i].seq > upto)
            f->evs[kept++] = f->evs[i];
    assert_true(kept < f->n);
    f->n = kept;
    f->applied = kept;
    check_series_op(f, f->sv, NULL);
}

/* 7. The edge cache: a dashboard's "the last hour of S in minutes" asked
 * again and again, `from` moving on inside one minute. Each answer is checked
 * whole; the cache must be used, take late rows of the edge (above what it
 * read), and be dropped by anchoring (the speed epoch) and by retention. */
static void test_edge_across_requests(void **state)
{
    struct fixture *f = *state;
    const int64_t edge = T0 + 40 * MINUTE; /* the partial minute [edge + 17 s, edge + 1 min) */
    gen(f, 2000, T0, T0 + 2 * HOUR, 250, true);
    for (int i = 0; i < 5; i++)
        (void)add_event(f, 1, edge + 20 * SECOND + i * 7 * SECOND, rnd_value(f));
    commit(f, true);
    recompute(f, false);
    struct stats st = {0};
    struct rq r = {.series = names[1],
                   .from = edge + 17 * SECOND,
                   .to = T0 + 2 * HOUR + MINUTE,
                   .step = MINUTE,
                   .quantiles = true};
    uint64_t hits = serve_edge_hits(f->sv);
    check_range(f, f->sv, &r, &st); /* reads the edge, keeps it */
    assert_int_equal(serve_edge_hits(f->sv), hits);
    r.from += 5 * SECOND;
    check_range(f, f->sv, &r, &st);
    assert_int_equal(serve_edge_hits(f->sv), hits + 1);

    /* Late rows in the edge minute, of S (one before `from`) and of others. */
    (void)add_event(f, 1, edge + 30 * SECOND, rnd_value(f));
    (void)add_event(f, 1, edge + 59 * SECOND, rnd_value(f));
    (void)add_event(f, 1, edge + 10 * SECOND, rnd_value(f));
    (void)add_event(f, 2, edge + 30 * SECOND, rnd_value(f));
    commit(f, true);
    r.from += 3 * SECOND;
    check_range(f, f->sv, &r, &st);
    assert_int_equal(serve_edge_hits(f->sv), hits + 2);

    /* Anchoring (the speed epoch moved): read again, then kept again. */
    speed_epoch_begin(f->sp);
    speed_epoch_end(f->sp);
    check_range(f, f->sv, &r, &st);
    assert_int_equal(serve_edge_hits(f->sv), hits + 2);
    check_range(f, f->sv, &r, &st);
    assert_int_equal(serve_edge_hits(f->sv), hits + 3);

    /* Retention (the oldest seq moved): read again. The trimmed rows are
     * older than the views' watermark, which still counts them. */
    assert_true(f->W > 100);
    assert_int_equal(mlog_trim(f->log, 100), EL_OK);
    check_range(f, f->sv, &r, &st);
    assert_int_equal(serve_edge_hits(f->sv), hits + 3);
    check_range(f, f->sv, &r, &st);
    assert_int_equal(serve_edge_hits(f->sv), hits + 4);
    assert_true(st.log > 0);
}

/* 5. Bounds: each refusal names its bound, and the serve object answers the
 * next query exactly. */
static void test_bounds(void **state)
{
    struct fixture *f = *state;
    struct stats st = {0};
    char text[300];
    struct serve *a = NULL, *b = NULL, *c = NULL;
    gen(f, 40000, T0, T0 + 6 * HOUR, 5000, true);
    int64_t end = T0 + 6 * HOUR;

    struct serve_opts oa = default_opts(f);
    oa.max_rows = 1000;
    oa.max_cells = 2000;
    oa.max_match = 6;
    assert_int_equal(serve_new(&oa, f->sp, &f->stop, &a), EL_OK);
    snprintf(text, sizeof text, "{\"match\":\"#\",\"from\":%lld,\"to\":%lld,\"step\":\"1h\"}",
             (long long)T0, (long long)end);
    expect_error(f, a, text, "too_large", "query.max_match");
    snprintf(text, sizeof text,
             "{\"match\":\"sensors/+/temp\",\"from\":%lld,\"to\":%lld,\"step\":\"30s\"}",
             (long long)T0, (long long)end);
    expect_error(f, a, text, "too_large", "query.max_cells");
    snprintf(text, sizeof text, "{\"series\":\"%s\",\"from\":%lld,\"to\":%lld,\"step\":\"30s\"}",
             names[0], (long long)T0, (long long)end);
    expect_error(f, a, text, "too_large", "query.max_rows");
    /* inside the ring window, no edge at `from`: no master-log row needed */
    const struct rq ring = {
        .series = names[2], .from = end - 20 * MINUTE, .to = end + MINUTE, .step = MINUTE};
    check_range(f, a, &ring, &st);
    assert_true(st.buckets > 15 && st.speed == st.buckets && st.log == 0);

    struct serve_opts oc = default_opts(f);
    oc.max_values = 200;
    assert_int_equal(serve_new(&oc, f->sp, &f->stop, &c), EL_OK);
    snprintf(text, sizeof text,
             "{\"series\":\"%s\",\"from\":%lld,\"to\":%lld,\"step\":\"30s\",\"agg\":[\"p50\"]}",
             names[0], (long long)T0, (long long)end);
    expect_error(f, c, text, "too_large", "query.max_values");
    const struct rq whole = {.series = names[0], .from = T0, .to = end, .step = 30 * SECOND};
    check_range(f, c, &whole, &st);

    /* A 1 ms deadline on 40,000 rows to read (no view fits 30 s): the reads
     * alone take ~10 ms natively. */
    struct serve_opts ob = default_opts(f);
    ob.deadline_ms = 1;
    assert_int_equal(serve_new(&ob, f->sp, &f->stop, &b), EL_OK);
    snprintf(text, sizeof text,
             "{\"match\":\"#\",\"from\":%lld,\"to\":%lld,\"step\":\"30s\",\"agg\":[\"count\","
             "\"p50\",\"p99\",\"stddev\"]}",
             (long long)T0, (long long)end);
    expect_error(f, b, text, "timeout", "query.deadline_ms");

    /* No snapshot is left open: the core commits, and a TRUNCATE checkpoint
     * from another connection completes (a reader's snapshot would block it). */
    gen(f, 500, end, end + 10 * MINUTE, 500, true);
    char path[PATH_MAX + 16];
    sqlite3 *db = NULL;
    sqlite3_stmt *ck = NULL;
    snprintf(path, sizeof path, "%s/master.db", f->dir);
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA wal_checkpoint(TRUNCATE)", -1, &ck, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(ck), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(ck, 0), 0); /* not busy */
    sqlite3_finalize(ck);
    sqlite3_close(db);
    expect_error(f, b, text, "timeout", "query.deadline_ms");
    /* Whatever the machine's speed: the core is moving readings between
     * the speed layer's lanes (anchoring) for longer than the deadline. */
    speed_epoch_begin(f->sp);
    expect_error(f, b, text, "timeout", "query.deadline_ms");
    speed_epoch_end(f->sp);

    /* Queued behind other requests for longer than the deadline: "busy" at
     * once, naming the bound; queued for less, the rest of the deadline. */
    f->arrived_mono_ms = plat_clock_mono_ms() - 60;
    expect_error(f, b, text, "busy", "query.deadline_ms");
    f->arrived_mono_ms = plat_clock_mono_ms() - 5000;
    expect_error(f, b, "{\"op\":\"series\"}", "busy", "request queue");
    f->arrived_mono_ms = 0;

    /* A stop ends the query being answered; cleared, the same object answers. */
    const struct rq after = {
        .series = names[4], .from = end - 10 * MINUTE, .to = end + 11 * MINUTE, .step = MINUTE};
    snprintf(text, sizeof text, "{\"series\":\"%s\",\"from\":%lld,\"to\":%lld}", after.series,
             (long long)after.from, (long long)after.to);
    atomic_store(&f->stop, 1);
    expect_error(f, a, text, "unavailable", "stopping");
    atomic_store(&f->stop, 0);
    check_range(f, a, &after, &st);
    check_range(f, c, &whole, &st);
    const struct rq all = {
        .match = "#", .from = end - HOUR, .to = end + 11 * MINUTE, .step = 30 * SECOND};
    check_range(f, f->sv, &all, &st);

    serve_free(a);
    serve_free(b);
    serve_free(c);
}

/* The start-up rebuild (core_recover): the rings from the ring window only. */
static void rebuild_one(void *ctx, int64_t seq, uint32_t series_id, int64_t ts_ms, double value)
{
    struct fixture *f = ctx;
    size_t lo = 0, hi = f->n;
    speed_add(f->sp, SPEED_EVENTS, series_id, ts_ms, value, seq);
    while (lo < hi) { /* evs are in seq order */
        size_t mid = lo + (hi - lo) / 2;
        if (f->evs[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    assert_true(lo < f->n && f->evs[lo].seq == seq && f->evs[lo].ts == ts_ms);
    f->evs[lo].in_speed = true;
}

/* 6. After a restart the speed layer holds the ring window only. */
static void test_restart_horizon(void **state)
{
    struct fixture *f = *state;
    struct stats st = {0};
    gen(f, 1200, T0, T0 + 90 * MINUTE, 300, true);
    recompute(f, false);
    gen(f, 500, T0 + 90 * MINUTE, T0 + 2 * HOUR, 300, true);

    serve_free(f->sv);
    speed_free(f->sp);
    f->sv = NULL;
    assert_int_equal(speed_new(MAX_SERIES, SLOTS, BUCKET_MS, RAW, &f->sp), EL_OK);
    for (size_t i = 0; i < f->n; i++)
        f->evs[i].in_speed = false;
    int64_t newest = mlog_newest_ts(f->log);
    f->horizon = align_down(max64(newest - (SLOTS - 1) * BUCKET_MS, SPEED_MIN_TS), BUCKET_MS);
    speed_set_horizon(f->sp, f->horizon);
    assert_int_equal(mlog_scan_since(f->log, f->horizon, rebuild_one, f), EL_OK);
    speed_publish(f->sp, mlog_committed_seq(f->log));
    struct serve_opts so = default_opts(f);
    assert_int_equal(serve_new(&so, f->sp, &f->stop, &f->sv), EL_OK);

    check_all(f, f->sv, T0, T0 + 2 * HOUR, &st);
    assert_true(st.batch > 0 && st.speed > 0 && st.log > 0);

    /* new events after the restart, some late */
    gen(f, 200, T0 + 2 * HOUR, T0 + 2 * HOUR + 20 * MINUTE, 100, true);
    (void)add_event(f, OTHER, T0 + 10 * MINUTE, 1.75);
    commit(f, true);
    check_all(f, f->sv, T0, T0 + 2 * HOUR + 30 * MINUTE, &st);
}

int main(void)
{
    plat_log_set_level(PLAT_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_log_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_views_speed_and_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_late_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_match_series_last, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_horizon, setup, teardown),
        cmocka_unit_test_setup_teardown(test_summary_across_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_edge_across_requests, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
