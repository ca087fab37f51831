/*
 * serve — range/series/last answers on a serving thread (design in serve.h).
 *
 * Ownership: struct serve owns its master-log reader, its views reader and
 * its working arrays (members, cells, values, sketches), all allocated at
 * serve_new; sketch bins are freed after each query. It borrows the speed
 * layer (read only) and the stop flag.
 */
#include "serve.h"

#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agg.h"
#include "mlog_read.h"
#include "plat_align.h"
#include "plat_clock.h"
#include "plat_jsonw.h"
#include "plat_log.h"
#include "plat_time.h"
#include "series_dict.h"
#include "views.h"

/* What fed a cell (sources). */
#define FROM_SPEED 1u     /* the events lane's ring */
#define FROM_PROV_RING 2u /* the provisional lane's ring */
#define FROM_LOG 4u       /* master-log events */
#define FROM_BATCH 8u     /* batch views */
#define FROM_PROV_LOG 16u /* waiting readings in the master log */

/* need[] bits: the raw ring lacks values of the cell (speed.h lanes). */
#define NEED_EVENTS 1u
#define NEED_PROV 2u

#define VIEW_ALIGN_MS 60000 /* the finest view resolution (views_res_ms[0]) */
#define ATTEMPTS 3          /* anchoring, or a new series, moved under a query */

struct member {
    uint32_t id;
    const char *name; /* in the reader's dictionary: valid for the query */
    int64_t c;        /* speed read: exact for the series' events <= c */
    int64_t ring_lo;  /* events lane: [ring_lo, ring_hi) is the ring's */
    int64_t ring_hi;  /*   (or, without ring data, "only seq > c there") */
    int64_t prov_lo;  /* provisional lane, likewise */
    int64_t prov_hi;
    int64_t old_end;      /* [from, old_end): older than the ring */
    int64_t views_hi;     /* [view_lo, views_hi): the views' (whole minutes) */
    uint64_t provisional; /* provisional events in the answer */
};

struct value_ref {
    uint32_t cell;
    double v;
};

/* One series for op series/last: its events <= N and the newest of them. */
struct summary {
    uint64_t count;
    int64_t last_ts, last_seq;
    double last_value;
};

/* The snapshot state a summary is exact for (summarise). */
struct sum_state {
    bool valid;
    int64_t W, N, oldest;
    uint64_t epoch;
    uint32_t ids;
};

struct interval {
    int64_t lo, hi;
};

/* The edge cache (serve.h): one series' pieces at a range's `from` shorter
 * than a minute -- the partial minute -- as last read. */
#define EDGE_SLOTS 8
#define EDGE_ROWS 1024
#define EDGE_MAX_MS VIEW_ALIGN_MS

struct edge_row {
    int64_t seq, ts;
    double value;
};

struct edge {
    bool valid, overflow;
    uint32_t series;
    int64_t lo, hi;        /* the piece: event time in [lo, hi) */
    int64_t upto;          /* holds every row of it with seq <= upto */
    int64_t oldest;        /* the log's oldest seq then (retention) */
    uint64_t epoch;        /* the speed epoch then (anchoring) */
    uint64_t used;         /* least recently used goes first */
    uint32_t n;            /* rows[0..n) */
    struct edge_row *rows; /* EDGE_ROWS */
};

struct serve {
    struct serve_opts o; /* serving thread; its live limits refreshed per query */
    /* The limits a reload may change (serve_set_limits, any thread). */
    _Atomic int live_deadline_ms;
    _Atomic uint64_t live_max_rows;
    _Atomic uint32_t live_max_sketch_bins;
    const struct speed *sp;
    const atomic_int *stop;
    struct mlog_reader *log;
    struct views *views;        /* NULL: no batch views (yet: serve_retry_views) */
    int64_t views_retry_ms;     /* monotonic: when the serving thread tries views.db again */
    int64_t views_retry_gap_ms; /* and the gap before the next try (backing off) */
    int64_t deadline;           /* monotonic ms */
    size_t bytes;

    /* the query being answered */
    const struct query *q;
    int64_t from, to, base, step, view_lo;
    size_t n;
    bool use_views, quantiles;
    int64_t N, W, t_lo;
    uint64_t budget;
    struct member *members; /* max_match */
    uint32_t n_members;
    uint32_t *member_of; /* series id -> member index + 1, max_series + 1 */
    uint32_t dict_count; /* dictionary size when the members were chosen */

    /* cells: member i, bucket k -> i * n + k */
    struct agg *aggs;
    uint8_t *from_bits, *need;
    uint32_t *lane_count;
    struct agg_sketch *sketches;
    uint8_t *has_sketch;
    uint32_t *sketched; /* cells with a sketch, to free after the query */
    uint32_t n_sketched;
    bool sketch_overflow;

    struct value_ref *vals; /* max_values */
    size_t n_vals;
    bool vals_overflow;
    double *tmp_vals; /* speed_read_range's output, per member */
    uint32_t *tmp_buckets;

    struct summary *sums;       /* series id -> what series/last answer, max_series + 1 */
    struct sum_state sum_at;    /* what sums[] is exact for (summarise) */
    struct speed_raw *last_buf; /* op last: both lanes' raw rings, 2 x raw_samples */
    bool *last_prov;
    int dropped_res;                  /* a resolution the query needs was dropped (-1: none) */
    int64_t dropped_before;           /*   its horizon (views.h RETENTION) */
    struct interval *iv0, *ivw, *ivt; /* log pieces: every seq / seq > W / the latter minus
                                       * the former */
    size_t n_iv0, n_ivt, iv_cap;

    uint64_t epoch;       /* the range attempt's speed epoch (stable across its snapshots) */
    struct edge *edges;   /* EDGE_SLOTS */
    struct edge *filling; /* the edge a piece's rows go to (on_edge_row) */
    uint64_t edge_clock, edge_hits;
};

/* ---- set-up ---- */

static bool expired(void *ctx)
{
    const struct serve *sv = ctx;
    return atomic_load_explicit(sv->stop, memory_order_relaxed) ||
           plat_clock_mono_ms() > sv->deadline;
}

static void *alloc(struct serve *sv, size_t n, size_t size)
{
    sv->bytes += n * size;
    return calloc(n ? n : 1, size);
}

/* The serving thread tries views.db again after 1 s, 2 s, 4 s, ... up to this. */
#define VIEWS_RETRY_MAX_MS 60000

void serve_retry_views(struct serve *sv)
{
    int64_t now = plat_clock_mono_ms();
    if (sv->views || now < sv->views_retry_ms)
        return;
    if (views_open(sv->o.dir, &sv->views) == EL_OK) {
        views_set_interrupt(sv->views, expired, sv);
        log_info("serving: views.db opened; answering from the batch views again");
    } else {
        sv->views_retry_gap_ms = plat_backoff_next(sv->views_retry_gap_ms, VIEWS_RETRY_MAX_MS);
        sv->views_retry_ms = now + sv->views_retry_gap_ms;
    }
}

el_status serve_new(const struct serve_opts *opts, const struct speed *sp, const atomic_int *stop,
                    struct serve **out)
{
    struct serve *sv = calloc(1, sizeof *sv);
    el_status rc;
    *out = NULL;
    if (!sv)
        return EL_NOMEM;
    sv->o = *opts;
    serve_set_limits(sv, opts);
    sv->sp = sp;
    sv->stop = stop;
    size_t cells = opts->max_cells;
    sv->members = alloc(sv, opts->max_match, sizeof sv->members[0]);
    sv->member_of = alloc(sv, (size_t)opts->max_series + 1, sizeof sv->member_of[0]);
    sv->sums = alloc(sv, (size_t)opts->max_series + 1, sizeof sv->sums[0]);
    sv->aggs = alloc(sv, cells, sizeof sv->aggs[0]);
    sv->from_bits = alloc(sv, cells, 1);
    sv->need = alloc(sv, cells, 1);
    sv->lane_count = alloc(sv, cells, sizeof sv->lane_count[0]);
    sv->sketches = alloc(sv, cells, sizeof sv->sketches[0]);
    sv->has_sketch = alloc(sv, cells, 1);
    sv->sketched = alloc(sv, cells, sizeof sv->sketched[0]);
    sv->vals = alloc(sv, opts->max_values, sizeof sv->vals[0]);
    sv->tmp_vals = alloc(sv, opts->max_values, sizeof sv->tmp_vals[0]);
    sv->tmp_buckets = alloc(sv, opts->max_values, sizeof sv->tmp_buckets[0]);
    sv->last_buf = alloc(sv, 2 * (size_t)speed_raw_samples(sp), sizeof sv->last_buf[0]);
    sv->last_prov = alloc(sv, 2 * (size_t)speed_raw_samples(sp), sizeof sv->last_prov[0]);
    sv->iv_cap = 4 * (size_t)opts->max_match + 8;
    sv->iv0 = alloc(sv, sv->iv_cap, sizeof sv->iv0[0]);
    sv->ivw = alloc(sv, sv->iv_cap, sizeof sv->ivw[0]);
    sv->ivt = alloc(sv, sv->iv_cap, sizeof sv->ivt[0]);
    sv->edges = alloc(sv, EDGE_SLOTS, sizeof sv->edges[0]);
    for (size_t i = 0; sv->edges && i < EDGE_SLOTS; i++)
        if (!(sv->edges[i].rows = alloc(sv, EDGE_ROWS, sizeof sv->edges[i].rows[0]))) {
            serve_free(sv);
            return EL_NOMEM;
        }
    sv->bytes += (size_t)opts->max_sketch_bins * sizeof(struct agg_bin);
    if (!sv->edges || !sv->members || !sv->member_of || !sv->sums || !sv->aggs || !sv->from_bits ||
        !sv->need || !sv->lane_count || !sv->sketches || !sv->has_sketch || !sv->sketched ||
        !sv->vals || !sv->tmp_vals || !sv->tmp_buckets || !sv->iv0 || !sv->ivw || !sv->ivt ||
        !sv->last_buf || !sv->last_prov) {
        serve_free(sv);
        return EL_NOMEM;
    }
    for (size_t i = 0; i < cells; i++)
        agg_sketch_init(&sv->sketches[i]);
    rc = mlog_reader_open(opts->dir, opts->max_series, &sv->log);
    if (rc != EL_OK) {
        serve_free(sv);
        return rc;
    }
    mlog_reader_set_interrupt(sv->log, expired, sv);
    if (views_open(opts->dir, &sv->views) != EL_OK) {
        log_warn("serving: cannot open views.db; answering from the speed layer and the log only"
                 " (trying again, at least every %d s)",
                 VIEWS_RETRY_MAX_MS / 1000);
        sv->views = NULL;
        sv->views_retry_gap_ms = 1000;
        sv->views_retry_ms = plat_clock_mono_ms() + sv->views_retry_gap_ms;
    } else {
        views_set_interrupt(sv->views, expired, sv);
    }
    *out = sv;
    return EL_OK;
}

void serve_free(struct serve *sv)
{
    if (!sv)
        return;
    mlog_reader_close(sv->log);
    views_close(sv->views);
    free(sv->members);
    free(sv->member_of);
    free(sv->sums);
    free(sv->aggs);
    free(sv->from_bits);
    free(sv->need);
    free(sv->lane_count);
    free(sv->sketches); /* bins are freed after every query */
    free(sv->has_sketch);
    free(sv->sketched);
    free(sv->vals);
    free(sv->tmp_vals);
    free(sv->tmp_buckets);
    free(sv->last_buf);
    free(sv->last_prov);
    free(sv->iv0);
    free(sv->ivw);
    free(sv->ivt);
    for (size_t i = 0; sv->edges && i < EDGE_SLOTS; i++)
        free(sv->edges[i].rows);
    free(sv->edges);
    free(sv);
}

size_t serve_working_set_bytes(const struct serve *sv)
{
    return sv->bytes;
}

void serve_reply_head(struct jw *w, bool ok, const char *id_json)
{
    jw_obj_begin(w);
    jw_key(w, "ok");
    jw_bool(w, ok);
    if (id_json) {
        /* id is echoed verbatim: the parser only accepts a JSON string or primitive */
        jw_key(w, "id");
        jw_raw(w, id_json);
    }
}

size_t serve_error(const char *code, const char *message, const char *id_json, char *buf,
                   size_t cap)
{
    struct jw w;
    jw_init(&w, buf, cap);
    serve_reply_head(&w, false, id_json);
    jw_key(&w, "error");
    jw_obj_begin(&w);
    jw_key(&w, "code");
    jw_str(&w, code);
    jw_key(&w, "message");
    jw_str(&w, message);
    jw_obj_end(&w);
    jw_obj_end(&w);
    return jw_ok(&w) ? jw_len(&w) : 0;
}

/* ---- errors ---- */

struct failure {
    const char *code;
    char message[200];
};

static el_status refuse(struct failure *f, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static el_status refuse(struct failure *f, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    f->code = code;
    vsnprintf(f->message, sizeof f->message, fmt, ap);
    va_end(ap);
    return EL_INVAL;
}

/* A read that stopped: which bound, in words. */
static el_status read_failed(struct serve *sv, el_status st, struct failure *f)
{
    if (st == EL_TIMEOUT && atomic_load(sv->stop))
        return refuse(f, "unavailable", "the daemon is stopping");
    if (st == EL_TIMEOUT)
        return refuse(f, "timeout", "the query ran past its deadline of %d ms (query.deadline_ms)",
                      sv->o.deadline_ms);
    if (st == EL_FULL)
        return refuse(f, "too_large",
                      "the query needs more than %llu master-log rows (query.max_rows); use a "
                      "step that is a multiple of 1m so batch views answer, or a shorter range",
                      (unsigned long long)sv->o.max_rows);
    log_warn("serving a query failed: %s", el_status_str(st));
    return refuse(f, "internal", "%s", el_status_str(st));
}

/* ---- members ---- */

static bool name_selected(const struct query *q, const char *name, size_t len)
{
    return query_name_selected(q, name, len);
}

/* Chooses the series of the query from the reader's dictionary. */
static el_status choose_members(struct serve *sv, struct failure *f)
{
    const struct series_dict *d = mlog_reader_series(sv->log);
    const struct query *q = sv->q;
    for (uint32_t i = 0; i < sv->n_members; i++)
        sv->member_of[sv->members[i].id] = 0;
    sv->n_members = 0;
    sv->dict_count = series_dict_count(d);
    if (q->has_series && !q->is_match) {
        uint32_t id;
        if (!series_dict_find(d, q->series, strlen(q->series), &id))
            return refuse(f, "not_found", "no such series");
        sv->members[0].id = id;
        sv->members[0].name = series_dict_name(d, id);
        sv->member_of[id] = 1;
        sv->n_members = 1;
        return EL_OK;
    }
    for (uint32_t id = 1; id <= sv->dict_count; id++) {
        const char *name = series_dict_name(d, id);
        if ((id & 1023) == 0 && expired(sv))
            return read_failed(sv, EL_TIMEOUT, f);
        if (!name || !name_selected(q, name, series_dict_name_len(d, id)))
            continue;
        if (sv->n_members == sv->o.max_match)
            return refuse(f, "too_large",
                          "the filter matches more than %u series (query.max_match); narrow it",
                          sv->o.max_match);
        sv->members[sv->n_members].id = id;
        sv->members[sv->n_members].name = name;
        sv->member_of[id] = ++sv->n_members;
    }
    return EL_OK;
}

/* True if a series added since the members were chosen belongs to them. */
static bool new_members(struct serve *sv)
{
    const struct series_dict *d = mlog_reader_series(sv->log);
    if (!sv->q->is_match)
        return false;
    for (uint32_t id = sv->dict_count + 1; id <= series_dict_count(d); id++) {
        const char *name = series_dict_name(d, id);
        if (name && name_selected(sv->q, name, series_dict_name_len(d, id)))
            return true;
    }
    return false;
}

/* ---- pass 1: the speed layer ---- */

static void cells_clear_at(struct serve *sv, size_t first, size_t cells)
{
    for (size_t i = first; i < first + cells; i++)
        agg_init(&sv->aggs[i]);
    memset(sv->from_bits + first, 0, cells);
    memset(sv->need + first, 0, cells);
    memset(sv->lane_count + first, 0, cells * sizeof sv->lane_count[0]);
}

static void cells_clear(struct serve *sv, size_t cells)
{
    cells_clear_at(sv, 0, cells);
}

/* Retention (views.h RETENTION): the coarsest view resolution dividing the
 * step, and the newest horizon of the finer ones that divide it. A ring span
 * starting below that horizon would need dropped buckets at its edge: such a
 * series is read again with its span on the coarse resolution (read_speed). */
static int64_t ring_align_horizon(struct serve *sv, int64_t *coarse_ms)
{
    int64_t w, need = 0;
    int coarsest = -1;
    *coarse_ms = VIEW_ALIGN_MS;
    if (!sv->use_views || views_begin_read(sv->views, &w) != EL_OK)
        return 0;
    for (int r = 0; r < VIEWS_N_RES; r++)
        if (sv->step % views_res_ms[r] == 0)
            coarsest = r;
    for (int r = 0; r < coarsest; r++)
        if (sv->step % views_res_ms[r] == 0 && views_horizon(sv->views, r) > need)
            need = views_horizon(sv->views, r);
    views_end_read(sv->views);
    if (coarsest >= 0)
        *coarse_ms = views_res_ms[coarsest];
    return need;
}

/* The member's spans from its speed read (see struct member). */
static void member_spans(struct serve *sv, struct member *m, const struct speed_read *rd)
{
    int64_t rl = rd->span_lo[SPEED_EVENTS], rh = rd->span_hi[SPEED_EVENTS];
    if (rl < rh) {
        m->ring_lo = rl;
        m->ring_hi = rh;
        m->old_end = rl;
    } else if (rd->empty[SPEED_EVENTS]) {
        /* No ring data at all: no event of the series <= c has a time >=
         * the horizon, so from there on the range holds only events > c. */
        int64_t h = plat_align_up(rd->horizon, sv->use_views ? VIEW_ALIGN_MS : 1);
        h = h > sv->from ? h : sv->from;
        m->ring_lo = m->old_end = h < sv->to ? h : sv->to;
        m->ring_hi = sv->to;
    } else {
        m->ring_lo = m->ring_hi = sv->to; /* the range is older than the ring */
        m->old_end = sv->to;
    }
    int64_t pl = rd->span_lo[SPEED_PROVISIONAL], ph = rd->span_hi[SPEED_PROVISIONAL];
    if (pl < ph) {
        m->prov_lo = pl;
        m->prov_hi = ph;
    } else if (rd->empty[SPEED_PROVISIONAL]) {
        m->prov_lo = sv->from;
        m->prov_hi = sv->to;
    } else {
        m->prov_lo = m->prov_hi = sv->to;
    }
}

static el_status read_speed(struct serve *sv, struct failure *f)
{
    struct speed_query sq = {
        .from_ms = sv->from,
        .to_ms = sv->to,
        .base_ms = sv->base,
        .step_ms = sv->step,
        .n = sv->n,
        .align_ms = sv->use_views ? VIEW_ALIGN_MS : 0,
        .want_values = sv->quantiles,
    };
    int64_t coarse_ms, need_h = ring_align_horizon(sv, &coarse_ms);
    sv->n_vals = 0;
    for (uint32_t i = 0; i < sv->n_members; i++) {
        struct member *m = &sv->members[i];
        size_t at = (size_t)i * sv->n;
        struct speed_cells cc = {
            .aggs = sv->aggs + at,
            .from = sv->from_bits + at,
            .need_values = sv->need + at,
            .lane_count = sv->lane_count + at,
            .vals = sv->tmp_vals,
            .val_bucket = sv->tmp_buckets,
            .vals_cap = sv->o.max_values - sv->n_vals,
        };
        struct speed_read rd;
        if (expired(sv))
            return read_failed(sv, EL_TIMEOUT, f);
        speed_read_range(sv->sp, m->id, &sq, &cc, &rd);
        if (rd.span_lo[SPEED_EVENTS] < rd.span_hi[SPEED_EVENTS] &&
            rd.span_lo[SPEED_EVENTS] < need_h) {
            /* a series silent since before a horizon: its ring on the coarse grid */
            struct speed_query coarse = sq;
            coarse.align_ms = coarse_ms;
            cells_clear_at(sv, at, sv->n);
            cc.n_vals = 0;
            speed_read_range(sv->sp, m->id, &coarse, &cc, &rd);
        }
        if (rd.vals_overflow) {
            sv->vals_overflow = true;
            break;
        }
        for (size_t j = 0; j < cc.n_vals; j++) {
            sv->vals[sv->n_vals].cell = (uint32_t)(at + sv->tmp_buckets[j]);
            sv->vals[sv->n_vals++].v = sv->tmp_vals[j];
        }
        m->c = rd.seq;
        m->provisional = rd.events[SPEED_PROVISIONAL];
        member_spans(sv, m, &rd);
        m->views_hi = plat_align_down(m->old_end, VIEW_ALIGN_MS);
    }
    return EL_OK;
}

/* ---- pass 2: views and the master log ---- */

static void push_value(struct serve *sv, uint32_t cell, double v)
{
    if (sv->n_vals == sv->o.max_values) {
        sv->vals_overflow = true;
        return;
    }
    sv->vals[sv->n_vals].cell = cell;
    sv->vals[sv->n_vals++].v = v;
}

static void add_row(struct serve *sv, uint32_t cell, double value, int64_t ts, int64_t seq,
                    unsigned from)
{
    agg_add(&sv->aggs[cell], value, ts, seq);
    sv->from_bits[cell] |= (uint8_t)from;
    if (sv->quantiles)
        push_value(sv, cell, value);
}

/* Every master-log row of the query passes here exactly once (the pieces
 * and the tail are disjoint); serve.h has the rules. */
static void on_row(void *ctx, int64_t seq, uint32_t series, int64_t ts, double value,
                   bool provisional)
{
    struct serve *sv = ctx;
    if (series > sv->o.max_series || sv->member_of[series] == 0 || ts < sv->from || ts >= sv->to)
        return;
    uint32_t i = sv->member_of[series] - 1;
    struct member *m = &sv->members[i];
    uint32_t cell = (uint32_t)((size_t)i * sv->n + (size_t)plat_floor_div(ts - sv->base, sv->step));
    if (provisional) {
        if (ts >= m->prov_lo && ts < m->prov_hi) {
            if (seq > m->c) {
                add_row(sv, cell, value, ts, seq, FROM_PROV_LOG);
                m->provisional++;
            } else if (sv->need[cell] & NEED_PROV) {
                push_value(sv, cell, value);
            }
            return;
        }
        add_row(sv, cell, value, ts, seq, FROM_PROV_LOG);
        m->provisional++;
        return;
    }
    if (ts >= m->ring_lo && ts < m->ring_hi) {
        if (seq > m->c)
            add_row(sv, cell, value, ts, seq, FROM_LOG);
        else if (sv->need[cell] & NEED_EVENTS)
            push_value(sv, cell, value);
        return;
    }
    if (sv->use_views && ts >= sv->view_lo && ts < m->views_hi && seq <= sv->W)
        return; /* the views hold it */
    add_row(sv, cell, value, ts, seq, FROM_LOG);
}

struct view_ctx {
    struct serve *sv;
    size_t first_cell;
};

static void view_row(void *ctx, int64_t t, const struct agg *a, const uint8_t *sketch,
                     size_t sketch_len)
{
    struct view_ctx *vc = ctx;
    struct serve *sv = vc->sv;
    int64_t k = plat_floor_div(t - sv->base, sv->step);
    if (k < 0 || (size_t)k >= sv->n || t < sv->from)
        return;
    size_t cell = vc->first_cell + (size_t)k;
    agg_merge(&sv->aggs[cell], a);
    sv->from_bits[cell] |= FROM_BATCH;
    if (!sv->quantiles || sv->sketch_overflow)
        return;
    struct agg_sketch *s = &sv->sketches[cell];
    if (!sv->has_sketch[cell]) {
        sv->has_sketch[cell] = 1;
        sv->sketched[sv->n_sketched++] = (uint32_t)cell;
    }
    if (agg_sketch_merge_serialized(s, sketch, sketch_len) != EL_OK)
        sv->sketch_overflow = true; /* damaged or too big: refuse, never guess */
}

/* Views for [lo, hi) (both multiples of the finest resolution): the
 * coarsest resolution that divides the step and fits, finer ones at the
 * edges. */
static el_status read_ladder(struct serve *sv, struct view_ctx *vc, uint32_t id, int64_t lo,
                             int64_t hi, int coarsest)
{
    for (int r = coarsest; r >= 0 && lo < hi; r--) {
        int64_t res = views_res_ms[r];
        if (sv->step % res != 0)
            continue;
        int64_t a = plat_align_up(lo, res), b = plat_align_down(hi, res);
        if (a >= b)
            continue;
        el_status st = read_ladder(sv, vc, id, lo, a, r - 1);
        if (a < views_horizon(sv->views, r)) {
            sv->dropped_res = r; /* no coarser resolution fits: refuse (read_views) */
            sv->dropped_before = views_horizon(sv->views, r);
        }
        if (st == EL_OK && sv->dropped_res < 0)
            st = views_read(sv->views, res, id, a, b, view_row, vc);
        if (st == EL_OK)
            st = read_ladder(sv, vc, id, b, hi, r - 1);
        return st;
    }
    return EL_OK;
}

/* The range needs a view resolution that retention dropped (storage.keep_*):
 * never answer it partly; say which step still works. */
static el_status refuse_dropped(struct serve *sv, struct failure *f)
{
    static const char *const names[VIEWS_N_RES] = {"1 min", "1 h", "1 d"};
    static const char *const keys[VIEWS_N_RES] = {"keep_1m_s", "keep_1h_s", "keep_1d_s"};
    int r = sv->dropped_res;
    char when[40];
    plat_time_format_rfc3339(sv->dropped_before, PLAT_TIME_MS_NONZERO, when, sizeof when);
    if (r + 1 < VIEWS_N_RES)
        return refuse(f, "not_retained",
                      "%s views before %s are no longer kept (storage.%s): ask with a step that "
                      "is a multiple of %s and from/to on %s boundaries",
                      names[r], when, keys[r], names[r + 1], names[r + 1]);
    return refuse(f, "not_retained", "%s views before %s are no longer kept (storage.%s)", names[r],
                  when, keys[r]);
}

static el_status read_views(struct serve *sv, struct failure *f)
{
    sv->dropped_res = -1;
    for (uint32_t i = 0; i < sv->n_members && sv->use_views; i++) {
        const struct member *m = &sv->members[i];
        struct view_ctx vc = {sv, (size_t)i * sv->n};
        el_status st = read_ladder(sv, &vc, m->id, sv->view_lo, m->views_hi, VIEWS_N_RES - 1);
        if (st != EL_OK)
            return read_failed(sv, st, f);
        if (sv->dropped_res >= 0)
            return refuse_dropped(sv, f);
    }
    if (sv->sketch_overflow)
        return refuse(f, "too_large", "the views' quantile sketches of this query do not fit");
    return EL_OK;
}

static int cmp_interval(const void *x, const void *y)
{
    const struct interval *a = x, *b = y;
    return a->lo < b->lo ? -1 : a->lo > b->lo;
}

/* Sorts and merges intervals in place; returns the new count. */
static size_t merge_intervals(struct interval *iv, size_t n)
{
    size_t w = 0;
    qsort(iv, n, sizeof iv[0], cmp_interval);
    for (size_t i = 0; i < n; i++) {
        if (iv[i].lo >= iv[i].hi)
            continue;
        if (w > 0 && iv[i].lo <= iv[w - 1].hi) {
            if (iv[i].hi > iv[w - 1].hi)
                iv[w - 1].hi = iv[i].hi;
        } else {
            iv[w++] = iv[i];
        }
    }
    return w;
}

static void push_iv(struct interval *iv, size_t *n, size_t cap, int64_t lo, int64_t hi)
{
    if (lo < hi && *n < cap) {
        iv[*n].lo = lo;
        iv[(*n)++].hi = hi;
    }
}

/* The time the log must be read over: iv0 (every seq) and ivt (seq > W
 * only: where the views answer), disjoint. */
static void plan_pieces(struct serve *sv)
{
    size_t n0 = 0, nw = 0, cap = sv->iv_cap;
    for (uint32_t i = 0; i < sv->n_members; i++) {
        const struct member *m = &sv->members[i];
        if (sv->use_views && sv->view_lo < m->views_hi) {
            push_iv(sv->iv0, &n0, cap, sv->from, sv->view_lo);
            push_iv(sv->ivw, &nw, cap, sv->view_lo, m->views_hi);
            push_iv(sv->iv0, &n0, cap, m->views_hi, m->old_end);
        } else {
            push_iv(sv->iv0, &n0, cap, sv->from, m->old_end);
        }
        if (m->ring_lo < m->ring_hi && m->ring_hi < sv->to)
            push_iv(sv->iv0, &n0, cap, m->ring_hi, sv->to);
        /* ring spans whose raw ring lacks values of a bucket */
        int64_t vlo = INT64_MAX, vhi = INT64_MIN;
        for (size_t k = 0; k < sv->n && sv->quantiles; k++)
            if (sv->need[(size_t)i * sv->n + k] & NEED_EVENTS) {
                int64_t a = sv->base + (int64_t)k * sv->step, b = a + sv->step;
                vlo = a < vlo ? a : vlo;
                vhi = b > vhi ? b : vhi;
            }
        if (vlo < vhi)
            push_iv(sv->iv0, &n0, cap, vlo > m->ring_lo ? vlo : m->ring_lo,
                    vhi < m->ring_hi ? vhi : m->ring_hi);
    }
    n0 = merge_intervals(sv->iv0, n0);
    nw = merge_intervals(sv->ivw, nw);
    /* ivw minus iv0 (both sorted and disjoint), into ivt */
    size_t nt = 0, j = 0;
    for (size_t i = 0; i < nw; i++) {
        int64_t lo = sv->ivw[i].lo, hi = sv->ivw[i].hi;
        while (j < n0 && sv->iv0[j].hi <= lo)
            j++;
        for (size_t k = j; k < n0 && sv->iv0[k].lo < hi; k++) {
            push_iv(sv->ivt, &nt, sv->iv_cap, lo, sv->iv0[k].lo);
            lo = sv->iv0[k].hi > lo ? sv->iv0[k].hi : lo;
        }
        push_iv(sv->ivt, &nt, sv->iv_cap, lo, hi);
    }
    sv->n_iv0 = n0;
    sv->n_ivt = nt;
}

/* ---- the edge cache ----
 *
 * A dashboard asks "the last hour of S in minutes" again and again: each
 * answer reads the partial minute at `from` from the log, and the log's block
 * summaries bound time, not series, so that is every block of that minute
 * (on a busy board, thousands of other series' rows). Such a piece -- one
 * series, shorter than a minute -- is kept as read (its rows with seq <=
 * upto) and the next request whose piece lies inside it replays those rows
 * and reads only the log after upto for it. Below upto the log changes only
 * as summarise() says: retention (the oldest seq) and anchoring (the speed
 * epoch), each of which drops the entry; views do not matter here (on_row
 * routes every row by the current W as if it were read). */

static void on_edge_row(void *ctx, int64_t seq, uint32_t series, int64_t ts, double value,
                        bool provisional)
{
    struct serve *sv = ctx;
    struct edge *e = sv->filling;
    if (e->n < EDGE_ROWS)
        e->rows[e->n++] = (struct edge_row){seq, ts, value};
    else
        e->overflow = true;
    on_row(ctx, seq, series, ts, value, provisional);
}

static struct edge *edge_find(struct serve *sv, uint32_t series, int64_t lo, int64_t hi,
                              int64_t oldest)
{
    for (size_t i = 0; i < EDGE_SLOTS; i++) {
        struct edge *e = &sv->edges[i];
        if (e->valid && e->series == series && e->lo <= lo && hi <= e->hi && e->oldest == oldest &&
            e->epoch == sv->epoch)
            return e;
    }
    return NULL;
}

static struct edge *edge_victim(struct serve *sv)
{
    struct edge *v = &sv->edges[0];
    for (size_t i = 1; i < EDGE_SLOTS && v->valid; i++)
        if (!sv->edges[i].valid || sv->edges[i].used < v->used)
            v = &sv->edges[i];
    return v;
}

/* One piece [lo, hi) of the log for every seq <= t_lo; through the edge
 * cache when it is one series' piece at `from` shorter than a minute. (Not
 * the piece at `to`: near "now" it is new at every request, and keeping it
 * would push out the entries that are read again.) */
static el_status read_piece(struct serve *sv, uint32_t one, int64_t lo, int64_t hi)
{
    if (one == 0 || lo != sv->from || hi - lo > EDGE_MAX_MS)
        return mlog_reader_scan_time(sv->log, one, lo, hi, 0, sv->t_lo, &sv->budget, on_row, sv);
    int64_t oldest = mlog_reader_oldest_seq(sv->log), after = 0;
    struct edge *e = edge_find(sv, one, lo, hi, oldest);
    el_status st = EL_OK;
    if (e) {
        /* The entry shrinks to this piece (a dashboard's `from` only moves on). */
        uint32_t kept = 0;
        sv->edge_hits++;
        for (uint32_t k = 0; k < e->n; k++) {
            const struct edge_row *r = &e->rows[k];
            if (r->ts < lo || r->ts >= hi)
                continue;
            if (r->seq <= sv->t_lo)
                on_row(sv, r->seq, one, r->ts, r->value, false);
            e->rows[kept++] = *r;
        }
        e->n = kept;
        e->lo = lo;
        e->hi = hi;
        e->used = ++sv->edge_clock;
        if (sv->t_lo <= e->upto)
            return EL_OK; /* the rows above t_lo come with the tail */
        after = e->upto;
    } else {
        e = edge_victim(sv);
        *e = (struct edge){.series = one,
                           .lo = lo,
                           .hi = hi,
                           .oldest = oldest,
                           .epoch = sv->epoch,
                           .rows = e->rows};
    }
    e->valid = false;
    e->overflow = false;
    sv->filling = e;
    st = mlog_reader_scan_time(sv->log, one, lo, hi, after, sv->t_lo, &sv->budget, on_edge_row, sv);
    sv->filling = NULL;
    e->upto = sv->t_lo;
    e->used = ++sv->edge_clock;
    e->valid = st == EL_OK && !e->overflow;
    return st;
}

uint64_t serve_edge_hits(const struct serve *sv)
{
    return sv->edge_hits;
}

static el_status read_log(struct serve *sv, struct failure *f)
{
    uint32_t one = sv->n_members == 1 ? sv->members[0].id : 0;
    el_status st = EL_OK;
    plan_pieces(sv);
    for (size_t i = 0; st == EL_OK && i < sv->n_iv0; i++)
        st = read_piece(sv, one, sv->iv0[i].lo, sv->iv0[i].hi);
    for (size_t i = 0; st == EL_OK && i < sv->n_ivt; i++)
        st = mlog_reader_scan_time(sv->log, one, sv->ivt[i].lo, sv->ivt[i].hi, sv->W, sv->t_lo,
                                   &sv->budget, on_row, sv);
    /* the tail: what the speed reads did not hold yet */
    if (st == EL_OK)
        st = mlog_reader_scan_seq(sv->log, sv->t_lo, sv->N, &sv->budget, on_row, sv);
    /* waiting readings outside the provisional rings (and their values) */
    if (st == EL_OK && mlog_reader_provisional_count(sv->log) > 0)
        st = mlog_reader_scan_provisional(sv->log, one, sv->from, sv->to, sv->t_lo, &sv->budget,
                                          on_row, sv);
    if (st != EL_OK)
        return read_failed(sv, st, f);
    if (sv->vals_overflow)
        return refuse(f, "too_large",
                      "the quantiles need more than %u raw values (query.max_values); narrow the "
                      "range or ask for no quantiles",
                      sv->o.max_values);
    return EL_OK;
}

/* ---- quantiles ---- */

static int cmp_value_ref(const void *x, const void *y)
{
    const struct value_ref *a = x, *b = y;
    if (a->cell != b->cell)
        return a->cell < b->cell ? -1 : 1;
    return a->v < b->v ? -1 : a->v > b->v;
}

/* Sorts the values by cell; cells fed by views take their raw values into
 * their sketch. */
static el_status prepare_quantiles(struct serve *sv, struct failure *f)
{
    uint64_t bins = 0;
    if (!sv->quantiles)
        return EL_OK;
    qsort(sv->vals, sv->n_vals, sizeof sv->vals[0], cmp_value_ref);
    for (size_t i = 0; i < sv->n_vals; i++) {
        uint32_t cell = sv->vals[i].cell;
        if (!sv->has_sketch[cell])
            continue;
        if (agg_sketch_add(&sv->sketches[cell], sv->vals[i].v) != EL_OK)
            return refuse(f, "too_large", "a quantile sketch of this query is full");
    }
    for (uint32_t i = 0; i < sv->n_sketched; i++)
        bins += sv->sketches[sv->sketched[i]].n_bins;
    if (bins > sv->o.max_sketch_bins)
        return refuse(f, "too_large",
                      "the quantile sketches need %llu bins, over query.max_sketch_bins (%u); "
                      "use a larger step or fewer series",
                      (unsigned long long)bins, sv->o.max_sketch_bins);
    return EL_OK;
}

static void release_sketches(struct serve *sv)
{
    for (uint32_t i = 0; i < sv->n_sketched; i++) {
        agg_sketch_cleanup(&sv->sketches[sv->sketched[i]]);
        sv->has_sketch[sv->sketched[i]] = 0;
    }
    sv->n_sketched = 0;
    sv->sketch_overflow = false;
}

/* Nearest-rank quantile of a cell from the sorted values (cursor moves on). */
static double cell_quantile(const struct serve *sv, size_t *cursor, uint32_t cell, uint64_t count,
                            double q)
{
    while (*cursor < sv->n_vals && sv->vals[*cursor].cell < cell)
        (*cursor)++;
    size_t first = *cursor;
    uint64_t rank = agg_quantile_rank(count, q);
    if (rank == 0 || first + rank - 1 >= sv->n_vals || sv->vals[first + rank - 1].cell != cell)
        return NAN; /* counts disagree: never expected, reported as null */
    return sv->vals[first + rank - 1].v;
}

/* ---- the answer ---- */

static void write_bucket(struct jw *w, const struct serve *sv, uint32_t cell, int64_t t,
                         size_t *cursor)
{
    const struct agg *a = &sv->aggs[cell];
    const struct query *q = sv->q;
    jw_obj_begin(w);
    jw_key(w, "t");
    jw_int(w, t);
    for (int i = 0; i < q->n_aggs; i++) {
        const struct query_agg *qa = &q->aggs[i];
        jw_key(w, qa->name);
        switch (qa->kind) {
        case QAGG_COUNT: jw_uint(w, a->count); break;
        case QAGG_SUM: jw_double(w, agg_sum(a)); break;
        case QAGG_MIN: jw_double(w, a->min); break;
        case QAGG_MAX: jw_double(w, a->max); break;
        case QAGG_MEAN: jw_double(w, agg_mean(a)); break;
        case QAGG_STDDEV: jw_double(w, agg_stddev(a)); break;
        case QAGG_LAST: jw_double(w, a->last_value); break;
        case QAGG_QUANTILE:
            if (sv->has_sketch[cell])
                jw_double(w, agg_sketch_quantile(&sv->sketches[cell], qa->q));
            else
                jw_double(w, cell_quantile(sv, cursor, cell, a->count, qa->q));
            break;
        }
    }
    uint8_t fb = sv->from_bits[cell];
    jw_key(w, "src");
    jw_arr_begin(w);
    if (fb & FROM_BATCH)
        jw_str(w, "batch");
    if (fb & FROM_SPEED)
        jw_str(w, "speed");
    if (fb & FROM_LOG)
        jw_str(w, "log");
    if (fb & (FROM_PROV_RING | FROM_PROV_LOG))
        jw_str(w, "provisional");
    jw_arr_end(w);
    jw_obj_end(w);
}

struct source_counts {
    uint64_t batch, speed, log, provisional;
};

static void write_member(struct jw *w, const struct serve *sv, uint32_t i, size_t *cursor,
                         struct source_counts *sc)
{
    size_t at = (size_t)i * sv->n;
    jw_key(w, "buckets");
    jw_arr_begin(w);
    for (size_t k = 0; k < sv->n && jw_ok_so_far(w); k++) {
        uint32_t cell = (uint32_t)(at + k);
        if (sv->aggs[cell].count == 0)
            continue;
        write_bucket(w, sv, cell, sv->base + (int64_t)k * sv->step, cursor);
        uint8_t fb = sv->from_bits[cell];
        sc->batch += (fb & FROM_BATCH) != 0;
        sc->speed += (fb & (FROM_SPEED | FROM_PROV_RING)) != 0;
        sc->log += (fb & (FROM_LOG | FROM_PROV_LOG)) != 0;
    }
    jw_arr_end(w);
    if (sv->members[i].provisional > 0) {
        jw_key(w, "provisional");
        jw_uint(w, sv->members[i].provisional);
    }
}

static void write_head(struct jw *w, const struct serve *sv, bool ok)
{
    serve_reply_head(w, ok, sv->q->has_id ? sv->q->id : NULL);
}

/* "clock_synced", and how many of the answer's readings are provisional
 * (no true time yet: received while the clock was not synchronised). */
static void write_clock(struct jw *w, const struct serve *sv)
{
    uint64_t provisional = 0;
    jw_key(w, "clock_synced");
    jw_bool(w, plat_clock_synced());
    for (uint32_t i = 0; i < sv->n_members; i++)
        provisional += sv->members[i].provisional;
    if (provisional > 0) {
        jw_key(w, "provisional");
        jw_uint(w, provisional);
    }
}

static size_t write_range(struct serve *sv, char *buf, size_t cap, struct failure *f)
{
    struct jw w;
    struct source_counts sc = {0, 0, 0, 0};
    size_t cursor = 0;
    const struct query *q = sv->q;
    jw_init(&w, buf, cap);
    write_head(&w, sv, true);
    jw_key(&w, q->is_match ? "match" : "series");
    jw_str(&w, q->series);
    jw_key(&w, "step_ms");
    jw_int(&w, q->step_ms);
    jw_key(&w, "seq");
    jw_int(&w, sv->N);
    int64_t oldest = mlog_reader_oldest_seq(sv->log);
    if (oldest > 1) {
        jw_key(&w, "raw_from_seq");
        jw_int(&w, oldest);
    }
    write_clock(&w, sv);
    if (!q->is_match) {
        if (sv->n_members == 1)
            write_member(&w, sv, 0, &cursor, &sc);
    } else {
        jw_key(&w, "series");
        jw_arr_begin(&w);
        for (uint32_t i = 0; i < sv->n_members && jw_ok_so_far(&w); i++) {
            jw_obj_begin(&w);
            jw_key(&w, "series");
            jw_str(&w, sv->members[i].name);
            write_member(&w, sv, i, &cursor, &sc);
            jw_obj_end(&w);
        }
        jw_arr_end(&w);
    }
    jw_key(&w, "sources");
    jw_obj_begin(&w);
    jw_key(&w, "batch");
    jw_uint(&w, sc.batch);
    jw_key(&w, "speed");
    jw_uint(&w, sc.speed);
    jw_key(&w, "log");
    jw_uint(&w, sc.log);
    jw_obj_end(&w);
    jw_obj_end(&w);
    if (!jw_ok(&w)) {
        refuse(f, "too_large",
               "the answer exceeds the reply size limit (%zu bytes); use a larger step or fewer "
               "series",
               cap);
        return 0;
    }
    return jw_len(&w);
}

/* Clips the range to the time domain and lays out the buckets. */
static void range_setup(struct serve *sv)
{
    const struct query *q = sv->q;
    sv->from = q->from_ms > SPEED_MIN_TS ? q->from_ms : SPEED_MIN_TS;
    sv->to = q->to_ms < SPEED_MAX_TS ? q->to_ms : SPEED_MAX_TS;
    sv->step = q->step_ms;
    sv->quantiles = q->wants_quantiles;
    if (sv->from >= sv->to) {
        sv->from = sv->to = sv->base = 0;
        sv->n = 0;
    } else {
        sv->base = plat_align_down(sv->from, sv->step);
        sv->n = (size_t)((sv->to - sv->base + sv->step - 1) / sv->step);
    }
    /* Views line up with the ring only when a minute divides the step and
     * the ring's buckets divide a minute. */
    sv->use_views =
        sv->views && sv->step % VIEW_ALIGN_MS == 0 && VIEW_ALIGN_MS % speed_bucket_ms(sv->sp) == 0;
    sv->view_lo = plat_align_up(sv->from, VIEW_ALIGN_MS);
}

static void end_snapshots(struct serve *sv)
{
    mlog_reader_end(sv->log);
    if (sv->views)
        views_end_read(sv->views);
}

/* Opens the views' and the log's snapshots (in that order: each holds
 * everything the one before it covers) and fixes N and the tail. */
static el_status open_snapshots(struct serve *sv, struct failure *f)
{
    int64_t max_c = 0;
    sv->W = 0;
    if (sv->use_views && views_begin_read(sv->views, &sv->W) != EL_OK)
        sv->W = 0;
    if (sv->W == 0)
        sv->use_views = false; /* nothing in them yet */
    el_status st = mlog_reader_begin(sv->log);
    if (st != EL_OK)
        return read_failed(sv, st, f);
    sv->t_lo = INT64_MAX;
    for (uint32_t i = 0; i < sv->n_members; i++) {
        max_c = sv->members[i].c > max_c ? sv->members[i].c : max_c;
        sv->t_lo = sv->members[i].c < sv->t_lo ? sv->members[i].c : sv->t_lo;
    }
    sv->N = max_c > sv->W ? max_c : sv->W;
    if (sv->n_members == 0)
        sv->N = mlog_reader_last_seq(sv->log);
    if (sv->N > mlog_reader_last_seq(sv->log))
        sv->N = mlog_reader_last_seq(sv->log); /* cannot happen: committed before */
    if (sv->t_lo > sv->N)
        sv->t_lo = sv->N;
    return EL_OK;
}

/* One attempt; EL_AGAIN when anchoring or a new series got in the way. */
static el_status range_attempt(struct serve *sv, struct failure *f)
{
    uint64_t epoch = speed_epoch(sv->sp);
    el_status st;
    while (epoch & 1) { /* lanes being rebuilt: brief */
        if (expired(sv))
            return read_failed(sv, EL_TIMEOUT, f);
        sched_yield();
        epoch = speed_epoch(sv->sp);
    }
    st = mlog_reader_begin(sv->log); /* brings the dictionary up to date */
    if (st != EL_OK)
        return read_failed(sv, st, f);
    mlog_reader_end(sv->log);
    st = choose_members(sv, f);
    if (st != EL_OK)
        return st;
    if ((uint64_t)sv->n_members * sv->n > sv->o.max_cells)
        return refuse(f, "too_large",
                      "%u series x %zu buckets = %llu cells, over query.max_cells (%u); use a "
                      "larger step or a narrower filter",
                      sv->n_members, sv->n, (unsigned long long)sv->n_members * sv->n,
                      sv->o.max_cells);
    cells_clear(sv, (size_t)sv->n_members * sv->n);
    sv->vals_overflow = false;
    st = read_speed(sv, f);
    if (st == EL_OK)
        st = open_snapshots(sv, f);
    if (st != EL_OK)
        return st;
    if (speed_epoch(sv->sp) != epoch || new_members(sv)) {
        end_snapshots(sv);
        return EL_AGAIN;
    }
    sv->epoch = epoch;
    st = read_views(sv, f);
    if (st == EL_OK)
        st = read_log(sv, f);
    if (st == EL_OK)
        st = prepare_quantiles(sv, f);
    return st;
}

static size_t answer_range(struct serve *sv, char *buf, size_t cap, struct failure *f)
{
    el_status st = EL_AGAIN;
    size_t len = 0;
    range_setup(sv);
    sv->budget = sv->o.max_rows;
    for (int attempt = 0; attempt < ATTEMPTS && st == EL_AGAIN; attempt++) {
        release_sketches(sv);
        st = range_attempt(sv, f);
    }
    if (st == EL_AGAIN)
        refuse(f, "busy", "readings were being placed in time; ask again");
    else if (st == EL_OK)
        len = write_range(sv, buf, cap, f);
    end_snapshots(sv);
    release_sketches(sv);
    return len;
}

/* ---- series / last ---- */

static void write_sample(struct jw *w, const struct speed_raw *r, bool provisional)
{
    jw_obj_begin(w);
    jw_key(w, "t");
    jw_int(w, r->ts_ms);
    jw_key(w, "value");
    jw_double(w, r->value);
    jw_key(w, "seq");
    jw_int(w, r->seq);
    if (provisional) {
        jw_key(w, "provisional");
        jw_bool(w, true);
    }
    jw_obj_end(w);
}

static void sum_event(struct summary *m, int64_t ts, int64_t seq, double value)
{
    m->count++;
    if (ts > m->last_ts || (ts == m->last_ts && seq > m->last_seq)) {
        m->last_ts = ts;
        m->last_seq = seq;
        m->last_value = value;
    }
}

static void on_view_totals(void *ctx, uint32_t series, uint64_t count, int64_t last_ts,
                           int64_t last_seq, double last_value)
{
    struct serve *sv = ctx;
    if (series == 0 || series > sv->o.max_series)
        return;
    struct summary *m = &sv->sums[series];
    m->count += count;
    if (last_ts > m->last_ts || (last_ts == m->last_ts && last_seq > m->last_seq)) {
        m->last_ts = last_ts;
        m->last_seq = last_seq;
        m->last_value = last_value;
    }
}

static void on_tail_row(void *ctx, int64_t seq, uint32_t series, int64_t ts, double value,
                        bool provisional)
{
    struct serve *sv = ctx;
    if (!provisional && series > 0 && series <= sv->o.max_series)
        sum_event(&sv->sums[series], ts, seq, value);
}

static void sums_reset(struct serve *sv, uint32_t from_id, uint32_t to_id)
{
    for (uint32_t id = from_id; id <= to_id && id <= sv->o.max_series; id++) {
        sv->sums[id].count = 0;
        sv->sums[id].last_ts = INT64_MIN;
        sv->sums[id].last_seq = -1;
        sv->sums[id].last_value = NAN;
    }
}

/*
 * Every series' events <= N (the log snapshot's last seq): what the views
 * cover (<= W, their snapshot taken before the log's, so W <= N) plus the
 * log's events after W — exact, whatever the speed layer holds (its
 * start-up rebuild reads only the ring window).
 *
 * Incremental: sums[] stays from the previous answer (sum_at: its W, N, the
 * log's oldest seq and the speed epoch), and the next one only reads the
 * log after that N — on a busy board with views far behind, op series and
 * op last read what arrived since the last request, not everything since
 * the last batch run. The log below N changes only three ways, each of which
 * starts over: new views (W), retention (the oldest seq), anchoring (moves
 * waiting readings into `events` below N; the core brackets it with the
 * speed epoch, read before the snapshot and checked after).
 */
static el_status summarise(struct serve *sv, struct failure *f, uint64_t epoch)
{
    uint32_t n = series_dict_count(mlog_reader_series(sv->log));
    int64_t oldest = mlog_reader_oldest_seq(sv->log), after = sv->W;
    el_status st = EL_OK;
    bool reuse = sv->sum_at.valid && sv->sum_at.W == sv->W && sv->sum_at.oldest == oldest &&
                 sv->sum_at.epoch == epoch && sv->sum_at.N <= sv->N && sv->sum_at.ids <= n;
    sv->sum_at.valid = false;
    if (reuse) {
        sums_reset(sv, sv->sum_at.ids + 1, n);
        after = sv->sum_at.N;
    } else {
        sums_reset(sv, 0, n);
        if (sv->W > 0)
            st = views_series_totals(sv->views, on_view_totals, sv);
    }
    if (st == EL_OK)
        st = mlog_reader_scan_seq(sv->log, after, sv->N, &sv->budget, on_tail_row, sv);
    if (st == EL_FULL)
        return refuse(f, "too_large",
                      "the batch views are more than %llu events behind (query.max_rows): ask "
                      "again after a recompute",
                      (unsigned long long)sv->o.max_rows);
    if (st != EL_OK)
        return read_failed(sv, st, f);
    if ((epoch & 1) == 0 && speed_epoch(sv->sp) == epoch)
        sv->sum_at = (struct sum_state){true, sv->W, sv->N, oldest, epoch, n};
    return EL_OK;
}

static void write_series_entry(struct jw *w, const struct serve *sv, uint32_t id)
{
    struct speed_totals tot[SPEED_LANES];
    (void)speed_read_totals(sv->sp, id, tot);
    const struct summary *m = &sv->sums[id];
    const struct speed_totals *p = &tot[SPEED_PROVISIONAL];
    bool prov_last = m->last_seq < 0 && p->last_seq >= 0;
    jw_key(w, "count");
    jw_uint(w, m->count + p->count);
    jw_key(w, "last_t");
    if (m->last_seq >= 0 || prov_last)
        jw_int(w, prov_last ? p->last_ts_ms : m->last_ts);
    else
        jw_null(w);
    jw_key(w, "last");
    if (m->last_seq >= 0 || prov_last)
        jw_double(w, prov_last ? p->last_value : m->last_value);
    else
        jw_null(w);
    if (p->count > 0) {
        jw_key(w, "provisional");
        jw_uint(w, p->count);
    }
}

/* op last for one series: its newest samples by sequence with seq <= N,
 * from the speed layer's raw rings. Returns false when the rings cannot
 * show exactly that yet (the core has not applied every event <= N, or
 * events newer than N pushed ones <= N out): the caller reads again. When
 * the rings hold nothing for the series (nothing received in the start-up
 * window) the sample is its newest event by event time, from the summary. */
static bool write_last_entry(struct jw *w, const struct serve *sv, uint32_t id)
{
    struct speed_totals tot[SPEED_LANES];
    size_t cap = 2 * (size_t)speed_raw_samples(sv->sp), lim = (size_t)sv->q->limit, first = 0;
    const struct summary *m = &sv->sums[id];
    int64_t cursor;
    size_t n = speed_read_last(sv->sp, id, sv->last_buf, sv->last_prov, cap, &cursor);
    if (cursor < sv->N)
        return false;
    while (first < n && sv->last_buf[first].seq > sv->N)
        first++;
    if (first > 0 && n - first < lim && n >= speed_raw_samples(sv->sp))
        return false; /* newer events may have pushed out ones <= N (a full ring) */
    (void)speed_read_totals(sv->sp, id, tot);
    jw_key(w, "count");
    jw_uint(w, m->count + tot[SPEED_PROVISIONAL].count);
    jw_key(w, "samples");
    jw_arr_begin(w);
    if (first == n && m->last_seq >= 0) {
        struct speed_raw r = {.ts_ms = m->last_ts, .seq = m->last_seq, .value = m->last_value};
        write_sample(w, &r, false);
    }
    for (size_t i = first; i < n && i - first < lim; i++)
        write_sample(w, &sv->last_buf[i], sv->last_prov[i]);
    jw_arr_end(w);
    return true;
}

/* The "series" array of op series / op last: one entry per selected series
 * of dictionary d. False when the deadline passed (f set) or op last's
 * rings were not yet exact (*retry); the writer is then abandoned. */
static bool write_list_series(struct jw *w, struct serve *sv, const struct series_dict *d,
                              struct failure *f, bool *retry)
{
    jw_key(w, "series");
    jw_arr_begin(w);
    for (uint32_t id = 1; id <= series_dict_count(d) && jw_ok_so_far(w); id++) {
        const char *name = series_dict_name(d, id);
        if ((id & 255) == 0 && expired(sv)) {
            read_failed(sv, EL_TIMEOUT, f);
            return false;
        }
        if (!name || !name_selected(sv->q, name, series_dict_name_len(d, id)) ||
            id > speed_max_series(sv->sp))
            continue;
        jw_obj_begin(w);
        jw_key(w, "series");
        jw_str(w, name);
        if (sv->q->op == QUERY_SERIES) {
            write_series_entry(w, sv, id);
        } else if (!write_last_entry(w, sv, id)) {
            *retry = true;
            return false;
        }
        jw_obj_end(w);
    }
    jw_arr_end(w);
    return true;
}

/* One pass of op series / op last over the snapshots: views first, then the
 * log, so W <= N. *retry: op last's rings were not yet exact for N. */
static size_t list_once(struct serve *sv, char *buf, size_t cap, struct failure *f, bool *retry)
{
    struct jw w;
    size_t len = 0;
    uint64_t epoch = speed_epoch(sv->sp); /* before the snapshots: see summarise */
    sv->W = 0;
    if (sv->views && views_begin_read(sv->views, &sv->W) != EL_OK)
        sv->W = 0;
    el_status st = mlog_reader_begin(sv->log);
    if (st != EL_OK) {
        read_failed(sv, st, f);
        goto out;
    }
    const struct series_dict *d = mlog_reader_series(sv->log);
    sv->N = mlog_reader_last_seq(sv->log);
    sv->budget = sv->o.max_rows;
    if (summarise(sv, f, epoch) != EL_OK)
        goto out;
    jw_init(&w, buf, cap);
    write_head(&w, sv, true);
    jw_key(&w, "seq");
    jw_int(&w, sv->N);
    jw_key(&w, "clock_synced");
    jw_bool(&w, plat_clock_synced());
    if (!write_list_series(&w, sv, d, f, retry))
        goto out;
    jw_obj_end(&w);
    if (!jw_ok(&w))
        refuse(f, "too_large",
               "the answer exceeds the reply size limit (%zu bytes); select fewer series with "
               "\"match\"",
               cap);
    else
        len = jw_len(&w);
out:
    end_snapshots(sv);
    return len;
}

/* op series / op last. op last reads again (briefly) while the core has not
 * yet applied the events the log snapshot holds: microseconds after a commit. */
static size_t answer_list(struct serve *sv, char *buf, size_t cap, struct failure *f)
{
    if (sv->q->op == QUERY_LAST && (uint32_t)sv->q->limit > speed_raw_samples(sv->sp)) {
        refuse(f, "too_large",
               "n = %d exceeds the raw samples kept per series (speed.raw_samples = %u)",
               sv->q->limit, speed_raw_samples(sv->sp));
        return 0;
    }
    for (;;) {
        bool retry = false;
        size_t len = list_once(sv, buf, cap, f, &retry);
        if (!retry)
            return len;
        if (expired(sv)) {
            read_failed(sv, EL_TIMEOUT, f);
            return 0;
        }
        sched_yield();
    }
}

/* ---- op deadletters ---- */

#define DEAD_PAYLOAD_SHOWN 512 /* bytes of each payload in a listing */

struct dead_listing {
    struct serve *sv;
    struct jw *w;
};

static void write_payload(struct jw *w, const struct mlog_dead_row *d)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = d->payload_len < DEAD_PAYLOAD_SHOWN ? d->payload_len : DEAD_PAYLOAD_SHOWN;
    const unsigned char *p = d->payload;
    char buf[2 * DEAD_PAYLOAD_SHOWN];
    if (n == 0 || jw_utf8_valid(d->payload, n)) {
        jw_key(w, "payload");
        jw_strn(w, n ? d->payload : "", n);
    } else {
        for (size_t i = 0; i < n; i++) {
            buf[2 * i] = hex[p[i] >> 4];
            buf[2 * i + 1] = hex[p[i] & 15];
        }
        jw_key(w, "payload_hex");
        jw_strn(w, buf, 2 * n);
    }
    jw_key(w, "payload_bytes");
    jw_uint(w, d->payload_bytes);
}

static bool on_dead(void *ctx, const struct mlog_dead_row *d)
{
    struct dead_listing *l = ctx;
    if (!name_selected(l->sv->q, d->topic, d->topic_len) || !jw_ok_so_far(l->w))
        return false;
    jw_obj_begin(l->w);
    jw_key(l->w, "seq");
    jw_int(l->w, d->seq);
    jw_key(l->w, "recv");
    jw_int(l->w, d->recv_ms);
    jw_key(l->w, "topic");
    jw_strn(l->w, d->topic, d->topic_len);
    jw_key(l->w, "reason");
    jw_str(l->w, d->reason);
    if (d->detail) {
        jw_key(l->w, "detail");
        jw_str(l->w, d->detail);
    }
    if (d->replayed_seq > 0) { /* replayed: its events start at this seq */
        jw_key(l->w, "replayed_seq");
        jw_int(l->w, d->replayed_seq);
    }
    write_payload(l->w, d);
    jw_obj_end(l->w);
    return true;
}

/* The newest dead letters (seq <= N), newest first. A payload shows as text
 * when it is UTF-8, else as hex; at most DEAD_PAYLOAD_SHOWN bytes of it. */
static size_t answer_dead_letters(struct serve *sv, char *buf, size_t cap, struct failure *f)
{
    const struct query *q = sv->q;
    struct jw w;
    size_t len = 0;
    el_status st = mlog_reader_begin(sv->log);
    if (st != EL_OK) {
        read_failed(sv, st, f);
        goto out;
    }
    sv->N = mlog_reader_last_seq(sv->log);
    sv->budget = sv->o.max_rows;
    jw_init(&w, buf, cap);
    write_head(&w, sv, true);
    jw_key(&w, "seq");
    jw_int(&w, sv->N);
    jw_key(&w, "dead_letters");
    jw_arr_begin(&w);
    struct dead_listing l = {sv, &w};
    st = mlog_reader_scan_dead(sv->log, sv->N, q->since_ms, q->has_reason ? q->reason : NULL,
                               (uint32_t)q->limit, &sv->budget, on_dead, &l);
    if (st == EL_FULL) {
        refuse(f, "too_large",
               "more than %llu dead letters examined (query.max_rows): narrow \"since\" or "
               "\"reason\"",
               (unsigned long long)sv->o.max_rows);
        goto out;
    }
    if (st != EL_OK) {
        read_failed(sv, st, f);
        goto out;
    }
    jw_arr_end(&w);
    jw_obj_end(&w);
    if (!jw_ok(&w))
        refuse(f, "too_large",
               "the listing exceeds the reply size limit (%zu bytes); ask for fewer (\"n\")", cap);
    else
        len = jw_len(&w);
out:
    mlog_reader_end(sv->log);
    return len;
}

void serve_set_limits(struct serve *sv, const struct serve_opts *o)
{
    atomic_store_explicit(&sv->live_deadline_ms, o->deadline_ms, memory_order_relaxed);
    atomic_store_explicit(&sv->live_max_rows, o->max_rows, memory_order_relaxed);
    atomic_store_explicit(&sv->live_max_sketch_bins, o->max_sketch_bins, memory_order_relaxed);
}

/* A query under the limits of its start (serve_set_limits), or tighter ones
 * (quick_ms/quick_rows > 0: the quick lane's). */
static size_t answer_within(struct serve *sv, const struct query *q, int64_t arrived_mono_ms,
                            int quick_ms, uint64_t quick_rows, char *buf, size_t cap,
                            const char **code)
{
    struct failure f = {NULL, ""};
    size_t len = 0;
    sv->o.deadline_ms = atomic_load_explicit(&sv->live_deadline_ms, memory_order_relaxed);
    sv->o.max_rows = atomic_load_explicit(&sv->live_max_rows, memory_order_relaxed);
    sv->o.max_sketch_bins = atomic_load_explicit(&sv->live_max_sketch_bins, memory_order_relaxed);
    if (quick_ms > 0 && quick_ms < sv->o.deadline_ms)
        sv->o.deadline_ms = quick_ms;
    if (quick_rows > 0 && quick_rows < sv->o.max_rows)
        sv->o.max_rows = quick_rows;
    int64_t now = plat_clock_mono_ms();
    int64_t arrived = arrived_mono_ms > 0 && arrived_mono_ms <= now ? arrived_mono_ms : now;
    sv->q = q;
    sv->deadline = now + sv->o.deadline_ms;
    if (now - arrived >= sv->o.deadline_ms) {
        refuse(&f, "busy",
               "waited %lld ms in the request queue behind other requests (query.deadline_ms = "
               "%d); ask again",
               (long long)(now - arrived), sv->o.deadline_ms);
        goto done;
    }
    switch (q->op) {
    case QUERY_RANGE: len = answer_range(sv, buf, cap, &f); break;
    case QUERY_SERIES:
    case QUERY_LAST: len = answer_list(sv, buf, cap, &f); break;
    case QUERY_DEAD_LETTERS: len = answer_dead_letters(sv, buf, cap, &f); break;
    default: refuse(&f, "unsupported", "not a query operation"); break;
    }
done:
    for (uint32_t i = 0; i < sv->n_members; i++)
        sv->member_of[sv->members[i].id] = 0;
    sv->n_members = 0;
    *code = f.code;
    if (f.code)
        len = serve_error(f.code, f.message, q->has_id ? q->id : NULL, buf, cap);
    sv->q = NULL;
    return len;
}

size_t serve_answer(struct serve *sv, const struct query *q, int64_t arrived_mono_ms, char *buf,
                    size_t cap, const char **code)
{
    return answer_within(sv, q, arrived_mono_ms, 0, 0, buf, cap, code);
}

size_t serve_answer_quick(struct serve *sv, const struct query *q, int quick_ms,
                          uint64_t quick_rows, char *buf, size_t cap, const char **code,
                          bool *declined)
{
    size_t len = answer_within(sv, q, 0, quick_ms, quick_rows, buf, cap, code);
    /* Past the quick limits only: the serving thread's would answer it. */
    *declined = *code && (strcmp(*code, "timeout") == 0 || strcmp(*code, "too_large") == 0);
    return len;
}
