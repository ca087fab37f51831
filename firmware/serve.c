/*
 * serve — range/series/last answers (design in serve.h).
 *
 * Ownership: struct serve owns its working arrays (answer-bucket aggregates,
 * raw-value buffer), allocated once at serve_new; it borrows the master log
 * and speed layer.
 */
#include "serve.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agg.h"
#include "plat_jsonw.h"
#include "plat_align.h"
#include "plat_log.h"
#include "views.h"

struct value_ref {
    uint32_t k; /* answer bucket */
    double v;
};

struct serve {
    struct mlog *log;
    struct speed *sp;
    struct views *views;         /* may be NULL: no batch layer */
    int64_t watermark;           /* of the current read snapshot; 0 = no views */
    struct agg_sketch *sketches; /* QUERY_MAX_BUCKETS, used where views feed a bucket */
    unsigned char *from_batch;   /* QUERY_MAX_BUCKETS flags */
    int64_t log_oldest_seq;      /* 0: nothing trimmed */
    int64_t upto_seq;            /* the answer's seq: master-log reads stop there */
    struct agg *aggs;            /* QUERY_MAX_BUCKETS */
    unsigned char *from_speed;   /* QUERY_MAX_BUCKETS flags */
    unsigned char *from_log;     /* QUERY_MAX_BUCKETS flags */
    struct value_ref *vals;      /* SERVE_MAX_VALUES */
    size_t n_vals;
    bool vals_overflow;
    double *tmp; /* SERVE_MAX_VALUES */
};

/* State of one series' range computation. */
struct range_ctx {
    struct serve *sv;
    int64_t base, step;
    size_t n;
    bool collect_values;
};

el_status serve_new(struct mlog *log, struct speed *sp, struct views *views, struct serve **out)
{
    struct serve *sv = calloc(1, sizeof *sv);
    *out = NULL;
    if (!sv)
        return EL_NOMEM;
    sv->log = log;
    sv->sp = sp;
    sv->views = views;
    sv->sketches = calloc(QUERY_MAX_BUCKETS, sizeof sv->sketches[0]);
    sv->from_batch = calloc(QUERY_MAX_BUCKETS, 1);
    if (!sv->sketches || !sv->from_batch) {
        serve_free(sv);
        return EL_NOMEM;
    }
    for (size_t k = 0; k < QUERY_MAX_BUCKETS; k++)
        agg_sketch_init(&sv->sketches[k]);
    sv->aggs = calloc(QUERY_MAX_BUCKETS, sizeof sv->aggs[0]);
    sv->from_speed = calloc(QUERY_MAX_BUCKETS, 1);
    sv->from_log = calloc(QUERY_MAX_BUCKETS, 1);
    sv->vals = calloc(SERVE_MAX_VALUES, sizeof sv->vals[0]);
    sv->tmp = calloc(SERVE_MAX_VALUES, sizeof sv->tmp[0]);
    if (!sv->aggs || !sv->from_speed || !sv->from_log || !sv->vals || !sv->tmp) {
        serve_free(sv);
        return EL_NOMEM;
    }
    *out = sv;
    return EL_OK;
}

void serve_free(struct serve *sv)
{
    if (!sv)
        return;
    if (sv->sketches)
        for (size_t k = 0; k < QUERY_MAX_BUCKETS; k++)
            agg_sketch_cleanup(&sv->sketches[k]);
    free(sv->sketches);
    free(sv->from_batch);
    free(sv->aggs);
    free(sv->from_speed);
    free(sv->from_log);
    free(sv->vals);
    free(sv->tmp);
    free(sv);
}

void serve_set_log_oldest(struct serve *sv, int64_t oldest_seq)
{
    sv->log_oldest_seq = oldest_seq;
}

size_t serve_error(const char *code, const char *message, const char *id_json, char *buf,
                   size_t cap)
{
    struct jw w;
    jw_init(&w, buf, cap);
    jw_obj_begin(&w);
    jw_key(&w, "ok");
    jw_bool(&w, false);
    if (id_json) {
        /* id is echoed verbatim: the parser only accepts a JSON string or primitive */
        jw_key(&w, "id");
        jw_raw(&w, id_json);
    }
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

/* ---- range ---- */

static void value_push(struct serve *sv, uint32_t k, double v)
{
    if (sv->n_vals == SERVE_MAX_VALUES) {
        sv->vals_overflow = true;
        return;
    }
    sv->vals[sv->n_vals].k = k;
    sv->vals[sv->n_vals].v = v;
    sv->n_vals++;
}

static void on_row(void *ctx, int64_t seq, int64_t ts, double value)
{
    struct range_ctx *rc = ctx;
    int64_t k = plat_floor_div(ts - rc->base, rc->step);
    if (k < 0 || (size_t)k >= rc->n)
        return;
    agg_add(&rc->sv->aggs[k], value, ts, seq);
    rc->sv->from_log[k] = 1;
    if (rc->collect_values)
        value_push(rc->sv, (uint32_t)k, value);
}

static void on_value_only(void *ctx, int64_t seq, int64_t ts, double value)
{
    struct range_ctx *rc = ctx;
    (void)seq;
    int64_t k = plat_floor_div(ts - rc->base, rc->step);
    if (k >= 0 && (size_t)k < rc->n)
        value_push(rc->sv, (uint32_t)k, value);
}

static el_status read_log(struct range_ctx *rc, uint32_t id, int64_t a, int64_t b,
                          int64_t after_seq, mlog_row_fn fn, uint64_t *rows)
{
    uint64_t examined = 0;
    if (a >= b)
        return EL_OK;
    el_status st = mlog_read_range(rc->sv->log, id, a, b, after_seq, rc->sv->upto_seq,
                                   SERVE_MAX_ROWS - *rows, fn, rc, &examined);
    *rows += examined;
    return st;
}

/* Raw values of the ring span [a, b) for quantiles, answer bucket by bucket. */
static el_status ring_values(struct range_ctx *rc, uint32_t id, int64_t a, int64_t b,
                             uint64_t *rows)
{
    struct serve *sv = rc->sv;
    for (int64_t lo = a; lo < b;) {
        int64_t k = plat_floor_div(lo - rc->base, rc->step);
        int64_t hi = rc->base + (k + 1) * rc->step;
        if (hi > b)
            hi = b;
        bool complete;
        size_t room = SERVE_MAX_VALUES - sv->n_vals;
        size_t got = speed_raw_values(sv->sp, id, lo, hi, sv->tmp, room, &complete);
        if (complete) {
            for (size_t i = 0; i < got; i++)
                value_push(sv, (uint32_t)k, sv->tmp[i]);
        } else {
            el_status st = read_log(rc, id, lo, hi, 0, on_value_only, rows);
            if (st != EL_OK)
                return st;
        }
        lo = hi;
    }
    return EL_OK;
}

static int cmp_value_ref(const void *x, const void *y)
{
    const struct value_ref *a = x, *b = y;
    if (a->k != b->k)
        return a->k < b->k ? -1 : 1;
    return a->v < b->v ? -1 : a->v > b->v;
}

static void on_view_row(void *ctx, int64_t t, const struct agg *a, const uint8_t *sketch,
                        size_t sketch_len)
{
    struct range_ctx *rc = ctx;
    struct serve *sv = rc->sv;
    int64_t k = plat_floor_div(t - rc->base, rc->step);
    if (k < 0 || (size_t)k >= rc->n)
        return;
    agg_merge(&sv->aggs[k], a);
    sv->from_batch[k] = 1;
    if (rc->collect_values &&
        agg_sketch_merge_serialized(&sv->sketches[k], sketch, sketch_len) != EL_OK)
        sv->vals_overflow = true; /* a damaged sketch: answer "too large" rather than wrong */
}

/* The part of [from, to) older than the ring: batch views (seq <= watermark)
 * plus the events the views do not cover yet (seq > watermark), for the
 * view-aligned middle; raw master-log reads for the edges. */
static el_status old_span(struct serve *sv, const struct query *q, uint32_t id,
                          struct range_ctx *rc, int64_t from, int64_t to, uint64_t *rows)
{
    int64_t res = 0;
    if (from >= to)
        return EL_OK;
    if (sv->views && sv->watermark > 0)
        for (int i = VIEWS_N_RES - 1; i >= 0 && res == 0; i--)
            if (q->step_ms % views_res_ms[i] == 0)
                res = views_res_ms[i];
    int64_t v_lo = res ? plat_align_up(from, res) : to, v_hi = res ? plat_align_down(to, res) : to;
    if (v_lo >= v_hi)
        return read_log(rc, id, from, to, 0, on_row, rows);
    el_status st = views_read(sv->views, res, id, v_lo, v_hi, on_view_row, rc);
    if (st == EL_OK)
        st = read_log(rc, id, v_lo, v_hi, sv->watermark, on_row, rows);
    if (st == EL_OK)
        st = read_log(rc, id, from, v_lo, 0, on_row, rows);
    if (st == EL_OK)
        st = read_log(rc, id, v_hi, to, 0, on_row, rows);
    return st;
}

/* Fills aggs[0..n) for one series; returns EL_FULL when over a bound. */
static el_status compute_range(struct serve *sv, const struct query *q, uint32_t id,
                               struct range_ctx *rc)
{
    int64_t bms = speed_bucket_ms(sv->sp);
    uint64_t rows = 0;
    el_status st;
    rc->sv = sv;
    rc->step = q->step_ms;
    rc->base = plat_align_down(q->from_ms, q->step_ms);
    rc->n = (size_t)((q->to_ms - rc->base + q->step_ms - 1) / q->step_ms);
    rc->collect_values = q->wants_quantiles;
    for (size_t k = 0; k < rc->n; k++) {
        agg_init(&sv->aggs[k]);
        if (sv->from_batch[k])
            agg_sketch_reset(&sv->sketches[k]);
    }
    memset(sv->from_speed, 0, rc->n);
    memset(sv->from_log, 0, rc->n);
    memset(sv->from_batch, 0, rc->n);
    sv->n_vals = 0;
    sv->vals_overflow = false;

    int64_t r_lo = plat_align_up(q->from_ms, bms), r_hi = plat_align_down(q->to_ms, bms);
    int64_t w = speed_window_start(sv->sp, id);
    if (w > r_lo)
        r_lo = plat_align_up(w, bms);
    bool ring = q->step_ms % bms == 0 && r_lo < r_hi;
    if (ring) {
        speed_collect(sv->sp, id, r_lo, r_hi, rc->base, rc->step, sv->aggs, rc->n);
        for (size_t k = 0; k < rc->n; k++)
            sv->from_speed[k] = sv->aggs[k].count > 0;
        st = old_span(sv, q, id, rc, q->from_ms, r_lo, &rows);
        if (st == EL_OK)
            st = read_log(rc, id, r_hi, q->to_ms, 0, on_row, &rows);
        if (st == EL_OK && q->wants_quantiles)
            st = ring_values(rc, id, r_lo, r_hi, &rows);
    } else {
        st = old_span(sv, q, id, rc, q->from_ms, q->to_ms, &rows);
    }
    if (st == EL_OK && sv->vals_overflow)
        st = EL_FULL;
    if (st == EL_OK && q->wants_quantiles) {
        qsort(sv->vals, sv->n_vals, sizeof sv->vals[0], cmp_value_ref);
        /* Buckets fed by views answer quantiles from their sketch, which
         * must then also hold the raw values of the same bucket. */
        for (size_t i = 0; i < sv->n_vals && st == EL_OK; i++)
            if (sv->from_batch[sv->vals[i].k])
                st = agg_sketch_add(&sv->sketches[sv->vals[i].k], sv->vals[i].v) == EL_OK ? EL_OK
                                                                                          : EL_FULL;
    }
    return st;
}

/* Nearest-rank quantile of answer bucket k from the sorted value list. */
static double bucket_quantile(const struct serve *sv, size_t *cursor, uint32_t k, uint64_t count,
                              double q)
{
    while (*cursor < sv->n_vals && sv->vals[*cursor].k < k)
        (*cursor)++;
    size_t first = *cursor;
    uint64_t rank = agg_quantile_rank(count, q);
    if (first + rank - 1 >= sv->n_vals || sv->vals[first + rank - 1].k != k)
        return NAN; /* cannot happen: counts are checked */
    return sv->vals[first + rank - 1].v;
}

static void write_bucket(struct jw *w, const struct serve *sv, const struct query *q, size_t k,
                         int64_t t, size_t *cursor)
{
    const struct agg *a = &sv->aggs[k];
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
            if (sv->from_batch[k])
                jw_double(w, agg_sketch_quantile(&sv->sketches[k], qa->q));
            else
                jw_double(w, bucket_quantile(sv, cursor, (uint32_t)k, a->count, qa->q));
            break;
        }
    }
    jw_obj_end(w);
}

/* Writes "buckets":[...] and "sources":{...} for the computed series. */
static void write_buckets(struct jw *w, const struct serve *sv, const struct query *q,
                          const struct range_ctx *rc)
{
    size_t cursor = 0;
    uint64_t n_speed = 0, n_log = 0, n_batch = 0;
    jw_key(w, "buckets");
    jw_arr_begin(w);
    for (size_t k = 0; k < rc->n && jw_ok_so_far(w); k++) {
        if (sv->aggs[k].count == 0)
            continue;
        int64_t t = rc->base + (int64_t)k * rc->step;
        write_bucket(w, sv, q, k, t, &cursor);
        n_speed += sv->from_speed[k];
        n_log += sv->from_log[k];
        n_batch += sv->from_batch[k];
    }
    jw_arr_end(w);
    jw_key(w, "sources");
    jw_obj_begin(w);
    jw_key(w, "batch");
    jw_uint(w, n_batch);
    jw_key(w, "speed");
    jw_uint(w, n_speed);
    jw_key(w, "log");
    jw_uint(w, n_log);
    jw_obj_end(w);
}

static size_t range_failed(el_status st, const struct query *q, char *buf, size_t cap)
{
    if (st == EL_FULL)
        return serve_error("too_large", "the range needs too many raw events; narrow it",
                           q->has_id ? q->id : NULL, buf, cap);
    log_warn("serving a range of %s failed: %s", q->series, el_status_str(st));
    return serve_error("internal", el_status_str(st), q->has_id ? q->id : NULL, buf, cap);
}

static size_t answer_range(struct serve *sv, const struct query *q, int64_t seq, char *buf,
                           size_t cap)
{
    struct jw w;
    struct range_ctx rc;
    uint32_t id = 0;
    jw_init(&w, buf, cap);
    jw_obj_begin(&w);
    jw_key(&w, "ok");
    jw_bool(&w, true);
    if (q->has_id) {
        jw_key(&w, "id");
        jw_raw(&w, q->id);
    }
    jw_key(&w, q->is_match ? "match" : "series");
    jw_str(&w, q->series);
    jw_key(&w, "step_ms");
    jw_int(&w, q->step_ms);
    jw_key(&w, "seq");
    jw_int(&w, seq);
    if (sv->log_oldest_seq > 0) {
        jw_key(&w, "raw_from_seq");
        jw_int(&w, sv->log_oldest_seq);
    }
    if (!q->is_match) {
        if (mlog_series_find(sv->log, q->series, strlen(q->series), &id) != EL_OK)
            return serve_error("not_found", "no such series", q->has_id ? q->id : NULL, buf, cap);
        el_status st = compute_range(sv, q, id, &rc);
        if (st != EL_OK)
            return range_failed(st, q, buf, cap);
        write_buckets(&w, sv, q, &rc);
    } else {
        uint32_t matched = 0;
        jw_key(&w, "series");
        jw_arr_begin(&w);
        for (id = 1; id <= mlog_series_count(sv->log); id++) {
            const char *name = mlog_series_name(sv->log, id);
            if (!query_topic_matches(q->series, name, strlen(name)))
                continue;
            if (++matched > SERVE_MAX_MATCH)
                return serve_error("too_large", "the filter matches too many series",
                                   q->has_id ? q->id : NULL, buf, cap);
            el_status st = compute_range(sv, q, id, &rc);
            if (st != EL_OK)
                return range_failed(st, q, buf, cap);
            jw_obj_begin(&w);
            jw_key(&w, "series");
            jw_str(&w, name);
            write_buckets(&w, sv, q, &rc);
            jw_obj_end(&w);
        }
        jw_arr_end(&w);
    }
    jw_obj_end(&w);
    if (!jw_ok(&w))
        return serve_error("too_large",
                           "the answer exceeds the reply size limit; use a larger step",
                           q->has_id ? q->id : NULL, buf, cap);
    return jw_len(&w);
}

/* ---- series / last ---- */

static bool selected(const struct query *q, const char *name)
{
    if (!q->has_series)
        return true;
    if (q->is_match)
        return query_topic_matches(q->series, name, strlen(name));
    return strcmp(q->series, name) == 0;
}

static size_t answer_list(struct serve *sv, const struct query *q, int64_t seq, char *buf,
                          size_t cap)
{
    struct jw w;
    struct speed_raw samples[64];
    jw_init(&w, buf, cap);
    jw_obj_begin(&w);
    jw_key(&w, "ok");
    jw_bool(&w, true);
    if (q->has_id) {
        jw_key(&w, "id");
        jw_raw(&w, q->id);
    }
    jw_key(&w, "seq");
    jw_int(&w, seq);
    jw_key(&w, "series");
    jw_arr_begin(&w);
    for (uint32_t id = 1; id <= mlog_series_count(sv->log) && jw_ok_so_far(&w); id++) {
        const char *name = mlog_series_name(sv->log, id);
        const struct speed_totals *tot = speed_totals(sv->sp, id);
        if (!selected(q, name) || !tot)
            continue;
        jw_obj_begin(&w);
        jw_key(&w, "series");
        jw_str(&w, name);
        jw_key(&w, "count");
        jw_uint(&w, tot->count);
        if (q->op == QUERY_SERIES) {
            jw_key(&w, "last_t");
            if (tot->last_seq >= 0)
                jw_int(&w, tot->last_ts_ms);
            else
                jw_null(&w);
            jw_key(&w, "last");
            if (tot->last_seq >= 0)
                jw_double(&w, tot->last_value);
            else
                jw_null(&w);
        } else {
            size_t lim = (size_t)q->limit < 64 ? (size_t)q->limit : 64;
            size_t n = speed_last(sv->sp, id, samples, lim);
            jw_key(&w, "samples");
            jw_arr_begin(&w);
            for (size_t i = 0; i < n; i++) {
                jw_obj_begin(&w);
                jw_key(&w, "t");
                jw_int(&w, samples[i].ts_ms);
                jw_key(&w, "value");
                jw_double(&w, samples[i].value);
                jw_key(&w, "seq");
                jw_int(&w, samples[i].seq);
                jw_obj_end(&w);
            }
            jw_arr_end(&w);
        }
        jw_obj_end(&w);
    }
    jw_arr_end(&w);
    jw_obj_end(&w);
    if (!jw_ok(&w))
        return serve_error("too_large", "the answer exceeds the reply size limit; use match",
                           q->has_id ? q->id : NULL, buf, cap);
    return jw_len(&w);
}

size_t serve_answer(struct serve *sv, const struct query *q, int64_t seq, const char *status_json,
                    char *buf, size_t cap)
{
    const char *id = q->has_id ? q->id : NULL;
    sv->upto_seq = seq;
    switch (q->op) {
    case QUERY_RANGE: {
        sv->watermark = 0;
        if (sv->views && views_begin_read(sv->views, &sv->watermark) != EL_OK)
            sv->watermark = 0;
        if (sv->watermark > seq)
            sv->watermark = 0; /* cannot happen: views are built from committed events */
        size_t n = answer_range(sv, q, seq, buf, cap);
        if (sv->views)
            views_end_read(sv->views);
        return n;
    }
    case QUERY_SERIES:
    case QUERY_LAST: return answer_list(sv, q, seq, buf, cap);
    case QUERY_STATUS: {
        /* {"ok":true[,"id":..],<the status document's members>} */
        int n = snprintf(buf, cap, "{\"ok\":true,%s%s%s%s", id ? "\"id\":" : "", id ? id : "",
                         id ? "," : "", status_json + 1);
        return n > 0 && (size_t)n < cap ? (size_t)n : 0;
    }
    default: return serve_error("unsupported", "not a query operation", id, buf, cap);
    }
}
