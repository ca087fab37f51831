/*
 * speed — per-series rings of event-time buckets and raw samples, one
 * writer and lock-free readers (design in speed.h).
 *
 * Ownership: struct speed owns three arrays allocated in speed_new:
 * buckets[lanes * max_series * slots], raw[lanes * max_series * raw_samples]
 * and series[max_series].
 */
#include "speed.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "plat_align.h"

typedef uint64_t word;

#define EMPTY INT64_MIN

/* Shared words: relaxed atomics ordered by the sequence locks' fences
 * (speed.h, CONCURRENCY). ThreadSanitizer does not model fences (gcc
 * refuses them with -fsanitize=thread), so there every data store is a
 * release and every data load an acquire instead: the same protocol, each
 * fence's ordering carried by the accesses themselves. */
#if defined(__SANITIZE_THREAD__)
#define DATA_STORE __ATOMIC_RELEASE
#define DATA_LOAD __ATOMIC_ACQUIRE
#define FENCE_RELEASE() ((void)0)
#define FENCE_ACQUIRE() ((void)0)
#else
#define DATA_STORE __ATOMIC_RELAXED
#define DATA_LOAD __ATOMIC_RELAXED
#define FENCE_RELEASE() __atomic_thread_fence(__ATOMIC_RELEASE)
#define FENCE_ACQUIRE() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#endif

static inline word ld(const word *w)
{
    return __atomic_load_n(w, DATA_LOAD);
}
static inline void st(word *w, word v)
{
    __atomic_store_n(w, v, DATA_STORE);
}
static inline word dw(double d)
{
    word w;
    memcpy(&w, &d, sizeof w);
    return w;
}
static inline double wd(word w)
{
    double d;
    memcpy(&d, &w, sizeof d);
    return d;
}

struct bucket {
    word start, count, sum_hi, sum_lo, min, max, mean, m2, last_value, last_ts, last_seq;
};

struct raw {
    word ts, seq, value;
};

struct lane_hdr {
    word newest_start; /* EMPTY: no ring data */
    word raw_pos, raw_n;
    word count, last_ts, last_seq, last_value;
};

struct series {
    word lock;    /* odd while the writer changes the series */
    word applied; /* highest seq applied to the series */
    struct lane_hdr lane[SPEED_LANES];
};

struct speed {
    uint32_t max_series, slots, raw_samples;
    int64_t bucket_ms;
    struct bucket *buckets;
    struct raw *raw;
    struct series *series;
    size_t memory_bytes;
    uint64_t out_of_window; /* writer only */
    word cursor;
    word epoch;
    word horizon; /* SPEED_MIN_TS unless the start-up rebuild was partial */
};

el_status speed_new(uint32_t max_series, uint32_t slots, int64_t bucket_ms, uint32_t raw_samples,
                    struct speed **out)
{
    struct speed *sp = calloc(1, sizeof *sp);
    *out = NULL;
    if (!sp || max_series == 0 || slots == 0 || bucket_ms <= 0 || raw_samples == 0) {
        free(sp);
        return sp ? EL_INVAL : EL_NOMEM;
    }
    sp->max_series = max_series;
    sp->slots = slots;
    sp->bucket_ms = bucket_ms;
    sp->raw_samples = raw_samples;
    size_t nb = (size_t)SPEED_LANES * max_series * slots;
    size_t nr = (size_t)SPEED_LANES * max_series * raw_samples;
    sp->buckets = calloc(nb, sizeof sp->buckets[0]);
    sp->raw = calloc(nr, sizeof sp->raw[0]);
    sp->series = calloc(max_series, sizeof sp->series[0]);
    if (!sp->buckets || !sp->raw || !sp->series) {
        speed_free(sp);
        return EL_NOMEM;
    }
    /* EMPTY is not all-zero bits: only the per-series headers need it; a
     * bucket counts only if its start matches and its count is not 0. */
    for (uint32_t i = 0; i < max_series; i++)
        for (int l = 0; l < SPEED_LANES; l++) {
            sp->series[i].lane[l].newest_start = (word)EMPTY;
            sp->series[i].lane[l].last_ts = (word)EMPTY;
            sp->series[i].lane[l].last_seq = (word)-1;
        }
    sp->horizon = (word)SPEED_MIN_TS;
    sp->memory_bytes = sizeof *sp + nb * sizeof sp->buckets[0] + nr * sizeof sp->raw[0] +
                       (size_t)max_series * sizeof sp->series[0];
    *out = sp;
    return EL_OK;
}

void speed_free(struct speed *sp)
{
    if (!sp)
        return;
    free(sp->buckets);
    free(sp->raw);
    free(sp->series);
    free(sp);
}

size_t speed_memory_bytes(const struct speed *sp)
{
    return sp->memory_bytes;
}

int64_t speed_bucket_ms(const struct speed *sp)
{
    return sp->bucket_ms;
}

uint32_t speed_max_series(const struct speed *sp)
{
    return sp->max_series;
}

uint64_t speed_out_of_window(const struct speed *sp)
{
    return sp->out_of_window;
}

static struct bucket *bucket_at(const struct speed *sp, int lane, uint32_t id, int64_t start)
{
    uint64_t k = (uint64_t)plat_floor_div(start, sp->bucket_ms) % sp->slots;
    size_t base = ((size_t)lane * sp->max_series + (id - 1)) * sp->slots;
    return &sp->buckets[base + k];
}

static struct raw *raw_ring(const struct speed *sp, int lane, uint32_t id)
{
    return &sp->raw[((size_t)lane * sp->max_series + (id - 1)) * sp->raw_samples];
}

static void bucket_load(const struct bucket *b, struct agg *a)
{
    a->count = ld(&b->count);
    a->sum_hi = wd(ld(&b->sum_hi));
    a->sum_lo = wd(ld(&b->sum_lo));
    a->min = wd(ld(&b->min));
    a->max = wd(ld(&b->max));
    a->mean = wd(ld(&b->mean));
    a->m2 = wd(ld(&b->m2));
    a->last_value = wd(ld(&b->last_value));
    a->last_ts_ms = (int64_t)ld(&b->last_ts);
    a->last_seq = (int64_t)ld(&b->last_seq);
}

static void bucket_store(struct bucket *b, int64_t start, const struct agg *a)
{
    st(&b->start, (word)start);
    st(&b->count, a->count);
    st(&b->sum_hi, dw(a->sum_hi));
    st(&b->sum_lo, dw(a->sum_lo));
    st(&b->min, dw(a->min));
    st(&b->max, dw(a->max));
    st(&b->mean, dw(a->mean));
    st(&b->m2, dw(a->m2));
    st(&b->last_value, dw(a->last_value));
    st(&b->last_ts, (word)a->last_ts_ms);
    st(&b->last_seq, (word)a->last_seq);
}

/* ---- writer ---- */

static word lock_begin(struct series *s)
{
    word v = ld(&s->lock);
    st(&s->lock, v + 1);
    FENCE_RELEASE();
    return v;
}

static void lock_end(struct series *s, word v)
{
    __atomic_store_n(&s->lock, v + 2, __ATOMIC_RELEASE);
}

static int64_t window_start(const struct speed *sp, int64_t newest)
{
    return newest - (int64_t)(sp->slots - 1) * sp->bucket_ms;
}

static void add_totals(struct lane_hdr *h, int64_t ts_ms, double value, int64_t seq)
{
    int64_t last_ts = (int64_t)ld(&h->last_ts), last_seq = (int64_t)ld(&h->last_seq);
    st(&h->count, ld(&h->count) + 1);
    if (ts_ms > last_ts || (ts_ms == last_ts && seq > last_seq)) {
        st(&h->last_ts, (word)ts_ms);
        st(&h->last_seq, (word)seq);
        st(&h->last_value, dw(value));
    }
}

static void add_raw(struct speed *sp, struct lane_hdr *h, int lane, uint32_t id, int64_t ts_ms,
                    double value, int64_t seq)
{
    word pos = ld(&h->raw_pos), n = ld(&h->raw_n);
    struct raw *r = &raw_ring(sp, lane, id)[pos];
    st(&r->ts, (word)ts_ms);
    st(&r->seq, (word)seq);
    st(&r->value, dw(value));
    st(&h->raw_pos, (pos + 1) % sp->raw_samples);
    if (n < sp->raw_samples)
        st(&h->raw_n, n + 1);
}

/* The bucket ring: only inside the window (and the time domain). */
static void add_ring(struct speed *sp, struct lane_hdr *h, int lane, uint32_t id, int64_t ts_ms,
                     double value, int64_t seq)
{
    if (ts_ms < SPEED_MIN_TS || ts_ms >= SPEED_MAX_TS) {
        sp->out_of_window++;
        return;
    }
    int64_t start = plat_align_down(ts_ms, sp->bucket_ms);
    int64_t newest = (int64_t)ld(&h->newest_start);
    if (newest == EMPTY || start > newest) {
        st(&h->newest_start, (word)start);
    } else if (start < window_start(sp, newest)) {
        sp->out_of_window++;
        return;
    }
    struct bucket *b = bucket_at(sp, lane, id, start);
    struct agg a;
    if ((int64_t)ld(&b->start) != start || ld(&b->count) == 0)
        agg_init(&a); /* stale slot from an older lap of the ring, or unused */
    else
        bucket_load(b, &a);
    agg_add(&a, value, ts_ms, seq);
    bucket_store(b, start, &a);
}

void speed_add(struct speed *sp, enum speed_lane lane, uint32_t id, int64_t ts_ms, double value,
               int64_t seq)
{
    if (id == 0 || id > sp->max_series || (unsigned)lane >= SPEED_LANES)
        return;
    struct series *s = &sp->series[id - 1];
    struct lane_hdr *h = &s->lane[lane];
    word v = lock_begin(s);
    add_totals(h, ts_ms, value, seq);
    add_raw(sp, h, (int)lane, id, ts_ms, value, seq);
    add_ring(sp, h, (int)lane, id, ts_ms, value, seq);
    if ((int64_t)ld(&s->applied) < seq)
        st(&s->applied, (word)seq);
    lock_end(s, v);
}

void speed_publish(struct speed *sp, int64_t seq)
{
    if ((int64_t)ld(&sp->cursor) < seq)
        __atomic_store_n(&sp->cursor, (word)seq, __ATOMIC_RELEASE);
}

void speed_set_horizon(struct speed *sp, int64_t horizon_ms)
{
    __atomic_store_n(&sp->horizon, (word)horizon_ms, __ATOMIC_RELEASE);
}

void speed_epoch_begin(struct speed *sp)
{
    st(&sp->epoch, ld(&sp->epoch) + 1);
    FENCE_RELEASE();
}

void speed_epoch_end(struct speed *sp)
{
    __atomic_store_n(&sp->epoch, ld(&sp->epoch) + 1, __ATOMIC_RELEASE);
}

void speed_lane_reset(struct speed *sp, enum speed_lane lane)
{
    for (uint32_t id = 1; id <= sp->max_series; id++) {
        struct series *s = &sp->series[id - 1];
        struct lane_hdr *h = &s->lane[lane];
        if ((int64_t)ld(&h->newest_start) == EMPTY && ld(&h->count) == 0)
            continue; /* never touched: leave its pages alone */
        word v = lock_begin(s);
        st(&h->newest_start, (word)EMPTY);
        st(&h->raw_pos, 0);
        st(&h->raw_n, 0);
        st(&h->count, 0);
        st(&h->last_ts, (word)EMPTY);
        st(&h->last_seq, (word)-1);
        struct bucket *b = &sp->buckets[((size_t)lane * sp->max_series + (id - 1)) * sp->slots];
        for (uint32_t k = 0; k < sp->slots; k++)
            if (ld(&b[k].count) != 0)
                st(&b[k].count, 0);
        lock_end(s, v);
    }
}

/* ---- readers ---- */

int64_t speed_cursor(const struct speed *sp)
{
    return (int64_t)__atomic_load_n(&sp->cursor, __ATOMIC_ACQUIRE);
}

uint64_t speed_epoch(const struct speed *sp)
{
    return __atomic_load_n(&sp->epoch, __ATOMIC_ACQUIRE);
}

/* A consistent read of one series: begin returns the lock value to check
 * (waiting while the writer is inside), valid says whether the copy holds. */
static word read_begin(const struct series *s, unsigned *spins)
{
    for (;;) {
        word v = __atomic_load_n(&s->lock, __ATOMIC_ACQUIRE);
        if ((v & 1) == 0)
            return v;
        if (++*spins % 64 == 0)
            sched_yield();
    }
}

static bool read_valid(const struct series *s, word v)
{
    FENCE_ACQUIRE();
    return ld(&s->lock) == v;
}

struct lane_copy {
    int64_t newest;
    uint32_t raw_pos, raw_n;
};

static void copy_hdr(const struct lane_hdr *h, struct lane_copy *c)
{
    c->newest = (int64_t)ld(&h->newest_start);
    c->raw_pos = (uint32_t)ld(&h->raw_pos);
    c->raw_n = (uint32_t)ld(&h->raw_n);
}

/* The lane's ring-served span of the query (see struct speed_read). */
static void lane_span(const struct speed *sp, const struct speed_query *q, int lane,
                      const struct lane_copy *c, int64_t *lo, int64_t *hi)
{
    *lo = *hi = 0;
    if (c->newest == EMPTY || q->step_ms % sp->bucket_ms != 0)
        return;
    int64_t a = plat_align_up(q->from_ms, sp->bucket_ms);
    int64_t ws = window_start(sp, c->newest);
    int64_t align = lane == SPEED_EVENTS && q->align_ms > 0 ? q->align_ms : sp->bucket_ms;
    if (lane == SPEED_EVENTS) {
        int64_t h = (int64_t)__atomic_load_n(&sp->horizon, __ATOMIC_ACQUIRE);
        ws = h > ws ? h : ws;
    }
    *lo = a > ws ? a : plat_align_up(ws, align);
    *hi = plat_align_down(q->to_ms, sp->bucket_ms);
    if (*lo >= *hi)
        *lo = *hi = 0;
}

static size_t bucket_index(const struct speed_query *q, int64_t t, bool *ok)
{
    int64_t k = plat_floor_div(t - q->base_ms, q->step_ms);
    *ok = k >= 0 && (uint64_t)k < q->n;
    return *ok ? (size_t)k : 0;
}

/* Merges the lane's ring buckets of [lo, hi) into the cells; returns the
 * number of events merged. */
static uint64_t collect_lane(const struct speed *sp, const struct speed_query *q, int lane,
                             uint32_t id, const struct lane_copy *c, int64_t lo, int64_t hi,
                             struct speed_cells *cells)
{
    uint64_t events = 0;
    int64_t end = c->newest + sp->bucket_ms < hi ? c->newest + sp->bucket_ms : hi;
    for (int64_t t = lo; t < end; t += sp->bucket_ms) {
        const struct bucket *b = bucket_at(sp, lane, id, t);
        if ((int64_t)ld(&b->start) != t || ld(&b->count) == 0)
            continue;
        bool ok;
        size_t k = bucket_index(q, t, &ok);
        if (!ok)
            continue;
        struct agg a;
        bucket_load(b, &a);
        agg_merge(&cells->aggs[k], &a);
        cells->from[k] |= (uint8_t)(1u << lane);
        cells->lane_count[k] += (uint32_t)a.count;
        events += a.count;
    }
    return events;
}

/* Raw values of [lo, hi): kept for the answer buckets whose every event of
 * the span is in the raw ring (its count there equals the ring buckets'),
 * the others are flagged need_values. */
static void lane_values(const struct speed *sp, const struct speed_query *q, int lane, uint32_t id,
                        const struct lane_copy *c, int64_t lo, int64_t hi,
                        struct speed_cells *cells, bool *overflow)
{
    const struct raw *ring = raw_ring(sp, lane, id);
    size_t first = cells->n_vals;
    for (uint32_t i = 0; i < c->raw_n; i++) {
        int64_t ts = (int64_t)ld(&ring[i].ts);
        bool ok;
        if (ts < lo || ts >= hi)
            continue;
        size_t k = bucket_index(q, ts, &ok);
        if (!ok)
            continue;
        cells->lane_count[k]--;
        if (cells->n_vals == cells->vals_cap) {
            *overflow = true;
            continue;
        }
        cells->vals[cells->n_vals] = wd(ld(&ring[i].value));
        cells->val_bucket[cells->n_vals++] = (uint32_t)k;
    }
    size_t w = first;
    for (size_t i = first; i < cells->n_vals; i++)
        if (cells->lane_count[cells->val_bucket[i]] == 0) {
            cells->vals[w] = cells->vals[i];
            cells->val_bucket[w++] = cells->val_bucket[i];
        }
    cells->n_vals = w;
}

static void cells_reset(struct speed_cells *c, size_t n, size_t n_vals)
{
    for (size_t k = 0; k < n; k++)
        agg_init(&c->aggs[k]);
    memset(c->from, 0, n);
    memset(c->need_values, 0, n);
    memset(c->lane_count, 0, n * sizeof c->lane_count[0]);
    c->n_vals = n_vals;
}

/* Answer buckets [*k0, *k1) that [lo, hi) touches. */
static void bucket_range(const struct speed_query *q, int64_t lo, int64_t hi, size_t *k0,
                         size_t *k1)
{
    int64_t a = plat_floor_div(lo - q->base_ms, q->step_ms);
    int64_t b = plat_floor_div(hi - 1 - q->base_ms, q->step_ms) + 1;
    a = a < 0 ? 0 : a;
    b = b > (int64_t)q->n ? (int64_t)q->n : b;
    *k0 = (size_t)a;
    *k1 = b > a ? (size_t)b : (size_t)a;
}

/* One attempt at reading series id; false if the writer got in the way. */
static bool try_read_range(const struct speed *sp, uint32_t id, const struct speed_query *q,
                           struct speed_cells *cells, struct speed_read *out, unsigned *spins)
{
    const struct series *s = &sp->series[id - 1];
    out->seq = speed_cursor(sp);
    out->horizon = (int64_t)__atomic_load_n(&sp->horizon, __ATOMIC_ACQUIRE);
    word v = read_begin(s, spins);
    for (int l = 0; l < SPEED_LANES; l++) {
        struct lane_copy c;
        size_t k0, k1;
        copy_hdr(&s->lane[l], &c);
        out->empty[l] = c.newest == EMPTY;
        lane_span(sp, q, l, &c, &out->span_lo[l], &out->span_hi[l]);
        if (out->span_lo[l] >= out->span_hi[l])
            continue;
        out->events[l] = collect_lane(sp, q, l, id, &c, out->span_lo[l], out->span_hi[l], cells);
        if (q->want_values)
            lane_values(sp, q, l, id, &c, out->span_lo[l], out->span_hi[l], cells,
                        &out->vals_overflow);
        bucket_range(q, out->span_lo[l], out->span_hi[l], &k0, &k1);
        for (size_t k = k0; k < k1; k++) {
            if (q->want_values && cells->lane_count[k] != 0)
                cells->need_values[k] |= (uint8_t)(1u << l);
            cells->lane_count[k] = 0;
        }
    }
    int64_t applied = (int64_t)ld(&s->applied);
    if (!read_valid(s, v))
        return false;
    return applied <= out->seq; /* else: events beyond the cursor, wait for it */
}

void speed_read_range(const struct speed *sp, uint32_t id, const struct speed_query *q,
                      struct speed_cells *cells, struct speed_read *out)
{
    size_t n_vals = cells->n_vals;
    unsigned spins = 0;
    memset(out, 0, sizeof *out);
    if (id == 0 || id > sp->max_series)
        return;
    while (!try_read_range(sp, id, q, cells, out, &spins)) {
        cells_reset(cells, q->n, n_vals);
        memset(out, 0, sizeof *out);
        if (++spins % 64 == 0)
            sched_yield();
    }
}

int64_t speed_read_totals(const struct speed *sp, uint32_t id, struct speed_totals out[SPEED_LANES])
{
    unsigned spins = 0;
    if (id == 0 || id > sp->max_series) {
        memset(out, 0, sizeof(struct speed_totals) * SPEED_LANES);
        return speed_cursor(sp);
    }
    const struct series *s = &sp->series[id - 1];
    for (;;) {
        int64_t c = speed_cursor(sp);
        word v = read_begin(s, &spins);
        for (int l = 0; l < SPEED_LANES; l++) {
            const struct lane_hdr *h = &s->lane[l];
            out[l].count = ld(&h->count);
            out[l].last_ts_ms = (int64_t)ld(&h->last_ts);
            out[l].last_seq = (int64_t)ld(&h->last_seq);
            out[l].last_value = wd(ld(&h->last_value));
        }
        int64_t applied = (int64_t)ld(&s->applied);
        if (read_valid(s, v) && applied <= c)
            return c;
        if (++spins % 64 == 0)
            sched_yield();
    }
}

uint32_t speed_raw_samples(const struct speed *sp)
{
    return sp->raw_samples;
}

size_t speed_read_last(const struct speed *sp, uint32_t id, struct speed_raw *out, bool *prov,
                       size_t cap, int64_t *cursor)
{
    unsigned spins = 0;
    *cursor = speed_cursor(sp);
    if (id == 0 || id > sp->max_series)
        return 0;
    const struct series *s = &sp->series[id - 1];
    for (;;) {
        int64_t cur = speed_cursor(sp);
        word v = read_begin(s, &spins);
        size_t n = 0;
        uint32_t taken[SPEED_LANES] = {0, 0};
        struct lane_copy c[SPEED_LANES];
        for (int l = 0; l < SPEED_LANES; l++)
            copy_hdr(&s->lane[l], &c[l]);
        /* Merge the two rings newest first (each ring is in arrival order). */
        while (n < cap) {
            int best = -1;
            struct speed_raw cand[SPEED_LANES];
            for (int l = 0; l < SPEED_LANES; l++) {
                if (taken[l] >= c[l].raw_n)
                    continue;
                uint32_t k = (c[l].raw_pos + sp->raw_samples - 1 - taken[l]) % sp->raw_samples;
                const struct raw *r = &raw_ring(sp, l, id)[k];
                cand[l].ts_ms = (int64_t)ld(&r->ts);
                cand[l].seq = (int64_t)ld(&r->seq);
                cand[l].value = wd(ld(&r->value));
                if (best < 0 || cand[l].seq > cand[best].seq)
                    best = l;
            }
            if (best < 0)
                break;
            if (prov)
                prov[n] = best == SPEED_PROVISIONAL;
            out[n++] = cand[best];
            taken[best]++;
        }
        int64_t applied = (int64_t)ld(&s->applied);
        if (read_valid(s, v) && applied <= cur) {
            *cursor = cur;
            return n;
        }
        if (++spins % 64 == 0)
            sched_yield();
    }
}
