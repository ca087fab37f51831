/*
 * agg — mergeable aggregates and the DDSketch quantile sketch (definitions,
 * limits, key encoding and the serialised format are in agg.h).
 *
 * DESIGN
 *   Sum: a double-double (hi, lo) kept normalised (hi == fl(hi + lo)) by
 *   error-free transformations. Every step uses Knuth's branch-free TwoSum,
 *   not Fast2Sum, because after cancellation the new hi can be smaller than
 *   the old lo, which Fast2Sum's precondition forbids. Merging adds the two
 *   pairs with the "accurate" double-double addition (hi parts and lo parts
 *   each TwoSum'ed, then renormalised twice). TwoSum needs strict IEEE
 *   binary64 evaluation: no -ffast-math, no x87 excess precision (the
 *   targets are ARM and x86-64/SSE2). Overflow is made sticky (hi = +-inf,
 *   lo = 0) because TwoSum of an overflowed sum would produce NaN.
 *   Mean: agg_mean is sum/count (the correctly rounded sum makes it
 *   independent of merge order); the Welford mean field only serves m2 and
 *   is the fallback when the sum overflowed.
 *   Last: events are ordered by (ts, seq, value); the value only breaks ties
 *   between identical (ts, seq), which the log never produces, so that a
 *   merge is commutative even then.
 *   Sketch merge: a first pass over the source (an array or a blob, read
 *   through one small stream type) validates it and counts the union of the
 *   keys; then dst grows once, its bins move to the tail of the array, and
 *   a forward merge writes the union from the front. The write index never
 *   overtakes the read index (it is behind by the number of source-only
 *   keys still to come), so no temporary array is needed and every failure
 *   happens before dst is touched.
 *
 * Ownership: a sketch owns its bins array (malloc'ed, freed by cleanup);
 * nothing else allocates. Threading: none inside; callers own the structs.
 */
#include "agg.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SKETCH_INITIAL_CAP 16u
#define VARINT_MAX_BYTES 10u

/* ------------------------------------------------------------------ */
/* agg: exact sum, Welford/Chan moments, last                          */
/* ------------------------------------------------------------------ */

/* s = fl(a + b) and *err = (a + b) - s exactly (Knuth's TwoSum). */
static double two_sum(double a, double b, double *err)
{
    double s = a + b;
    double b_virtual = s - a;
    double a_virtual = s - b_virtual;
    *err = (a - a_virtual) + (b - b_virtual);
    return s;
}

/* (hi, lo) += v */
static void dd_add_double(double *hi, double *lo, double v)
{
    double e;
    double s = two_sum(*hi, v, &e);
    if (!isfinite(s)) {
        *hi = s;
        *lo = 0.0;
        return;
    }
    e += *lo;
    *hi = two_sum(s, e, lo);
}

/* (hi, lo) += (b_hi, b_lo) */
static void dd_add_dd(double *hi, double *lo, double b_hi, double b_lo)
{
    double e_hi, e_lo;
    double s = two_sum(*hi, b_hi, &e_hi);
    if (!isfinite(s)) {
        *hi = s;
        *lo = 0.0;
        return;
    }
    double t = two_sum(*lo, b_lo, &e_lo);
    e_hi += t;
    s = two_sum(s, e_hi, &e_hi);
    e_hi += e_lo;
    *hi = two_sum(s, e_hi, lo);
}

/* True when event (ts, seq, v) comes after the one recorded in a. */
static bool agg_event_after(const struct agg *a, int64_t ts_ms, int64_t seq, double v)
{
    if (ts_ms != a->last_ts_ms)
        return ts_ms > a->last_ts_ms;
    if (seq != a->last_seq)
        return seq > a->last_seq;
    return v > a->last_value;
}

void agg_init(struct agg *a)
{
    a->count = 0;
    a->sum_hi = 0.0;
    a->sum_lo = 0.0;
    a->min = INFINITY;
    a->max = -INFINITY;
    a->mean = 0.0;
    a->m2 = 0.0;
    a->last_value = NAN;
    a->last_ts_ms = INT64_MIN;
    a->last_seq = -1;
}

void agg_add(struct agg *a, double v, int64_t ts_ms, int64_t seq)
{
    if (!isfinite(v))
        return;
    if (a->count == 0) {
        a->count = 1;
        a->sum_hi = v;
        a->sum_lo = 0.0;
        a->min = v;
        a->max = v;
        a->mean = v;
        a->m2 = 0.0;
        a->last_value = v;
        a->last_ts_ms = ts_ms;
        a->last_seq = seq;
        return;
    }
    uint64_t n = a->count + 1;
    double n_d = (double)n;
    a->count = n;
    dd_add_double(&a->sum_hi, &a->sum_lo, v);
    if (v < a->min)
        a->min = v;
    if (v > a->max)
        a->max = v;
    double delta = v - a->mean;
    if (isfinite(delta)) {
        a->mean += delta / n_d;
        a->m2 += delta * (v - a->mean);
    } else {
        /* |v - mean| > DBL_MAX: the true m2 overflows too */
        a->mean = a->mean * ((double)(n - 1) / n_d) + v / n_d;
        a->m2 = INFINITY;
    }
    if (agg_event_after(a, ts_ms, seq, v)) {
        a->last_value = v;
        a->last_ts_ms = ts_ms;
        a->last_seq = seq;
    }
}

void agg_merge(struct agg *dst, const struct agg *src)
{
    if (src->count == 0)
        return;
    if (dst->count == 0) {
        *dst = *src;
        return;
    }
    const struct agg b = *src; /* src may be dst */
    double na = (double)dst->count;
    double nb = (double)b.count;
    double n = na + nb;
    dst->count += b.count;
    dd_add_dd(&dst->sum_hi, &dst->sum_lo, b.sum_hi, b.sum_lo);
    if (b.min < dst->min)
        dst->min = b.min;
    if (b.max > dst->max)
        dst->max = b.max;
    double delta = b.mean - dst->mean;
    if (isfinite(delta)) {
        /* Chan et al.: exact for the means and m2 of the two parts */
        dst->mean += delta * (nb / n);
        dst->m2 = dst->m2 + b.m2 + delta * delta * (na * (nb / n));
    } else {
        dst->mean = dst->mean * (na / n) + b.mean * (nb / n);
        dst->m2 = INFINITY;
    }
    if (agg_event_after(dst, b.last_ts_ms, b.last_seq, b.last_value)) {
        dst->last_value = b.last_value;
        dst->last_ts_ms = b.last_ts_ms;
        dst->last_seq = b.last_seq;
    }
}

double agg_sum(const struct agg *a)
{
    if (a->count == 0)
        return 0.0;
    return a->sum_hi + a->sum_lo;
}

double agg_mean(const struct agg *a)
{
    if (a->count == 0)
        return NAN;
    double sum = agg_sum(a);
    if (isfinite(sum))
        return sum / (double)a->count;
    return a->mean;
}

double agg_stddev(const struct agg *a)
{
    if (a->count == 0)
        return NAN;
    double m2 = a->m2 > 0.0 ? a->m2 : 0.0;
    return sqrt(m2 / (double)a->count);
}

/* ------------------------------------------------------------------ */
/* quantile ranks and exact quantiles                                  */
/* ------------------------------------------------------------------ */

uint64_t agg_quantile_rank(uint64_t n, double q)
{
    if (n == 0)
        return 0;
    if (!(q > 0.0))
        return 1;
    if (q >= 1.0)
        return n;
    double n_d = (double)n;
    double x = q * n_d;
    double nearest = nearbyint(x);
    /* q is usually a decimal such as 0.95 that binary cannot hold exactly */
    if (fabs(x - nearest) <= 8.0 * DBL_EPSILON * x)
        x = nearest;
    x = ceil(x);
    if (x < 1.0)
        return 1;
    if (x >= n_d)
        return n;
    return (uint64_t)x;
}

static int cmp_double(const void *pa, const void *pb)
{
    double a = *(const double *)pa;
    double b = *(const double *)pb;
    return (a > b) - (a < b);
}

double agg_quantile_exact(double *vals, size_t n, double q)
{
    if (n == 0 || isnan(q))
        return NAN;
    qsort(vals, n, sizeof vals[0], cmp_double);
    uint64_t rank = agg_quantile_rank((uint64_t)n, q);
    return vals[rank - 1];
}

/* ------------------------------------------------------------------ */
/* sketch mapping                                                      */
/* ------------------------------------------------------------------ */

/* ln gamma for gamma = (1+a)/(1-a), a a hair under AGG_SKETCH_ALPHA (agg.h). */
static double sketch_ln_gamma(void)
{
    const double a = AGG_SKETCH_ALPHA * (1.0 - 0x1p-24);
    return log1p(2.0 * a / (1.0 - a));
}

/* ln((gamma + 1) / 2): the representative value is gamma^i / ((gamma+1)/2). */
static double sketch_ln_half_gamma_plus_1(void)
{
    const double a = AGG_SKETCH_ALPHA * (1.0 - 0x1p-24);
    return log1p(a / (1.0 - a));
}

/* Index of a magnitude in [AGG_SKETCH_MIN_ABS, DBL_MAX]: ceil(ln mag / ln gamma). */
static int32_t sketch_index(double mag, double ln_gamma)
{
    return (int32_t)ceil(log(mag) / ln_gamma);
}

/* Key of a finite v with |v| >= AGG_SKETCH_MIN_ABS. */
static int32_t sketch_key(double v, double ln_gamma)
{
    int32_t k = AGG_SKETCH_KEY_OFFSET + sketch_index(fabs(v), ln_gamma);
    return v < 0.0 ? -k : k;
}

/* Representative value of a valid key. */
static double sketch_value(int32_t key)
{
    int32_t i = (key < 0 ? -key : key) - AGG_SKETCH_KEY_OFFSET;
    double mag = exp((double)i * sketch_ln_gamma() - sketch_ln_half_gamma_plus_1());
    if (mag > DBL_MAX)
        mag = DBL_MAX; /* the top bin reaches past DBL_MAX; the values in it do not */
    return key < 0 ? -mag : mag;
}

/* The range of |key| that agg_sketch_add can produce. */
static void sketch_key_range(int64_t *lo, int64_t *hi)
{
    double ln_gamma = sketch_ln_gamma();
    *lo = AGG_SKETCH_KEY_OFFSET + sketch_index(AGG_SKETCH_MIN_ABS, ln_gamma);
    *hi = AGG_SKETCH_KEY_OFFSET + sketch_index(DBL_MAX, ln_gamma);
}

/* ------------------------------------------------------------------ */
/* sketch: storage                                                     */
/* ------------------------------------------------------------------ */

void agg_sketch_init(struct agg_sketch *s)
{
    s->count = 0;
    s->zero_count = 0;
    s->n_bins = 0;
    s->cap = 0;
    s->bins = NULL;
}

void agg_sketch_cleanup(struct agg_sketch *s)
{
    if (s == NULL)
        return;
    free(s->bins);
    agg_sketch_init(s);
}

void agg_sketch_reset(struct agg_sketch *s)
{
    s->count = 0;
    s->zero_count = 0;
    s->n_bins = 0;
}

/* Makes room for need bins (geometric growth); s unchanged on failure. */
static el_status sketch_reserve(struct agg_sketch *s, uint64_t need)
{
    if (need <= s->cap)
        return EL_OK;
    if (need > AGG_SKETCH_MAX_BINS)
        return EL_NOMEM;
    uint32_t cap = s->cap > 0 ? s->cap : SKETCH_INITIAL_CAP;
    while (cap < need)
        cap *= 2;
    if (cap > AGG_SKETCH_MAX_BINS)
        cap = AGG_SKETCH_MAX_BINS;
    struct agg_bin *bins = realloc(s->bins, (size_t)cap * sizeof bins[0]);
    if (bins == NULL)
        return EL_NOMEM;
    s->bins = bins;
    s->cap = cap;
    return EL_OK;
}

/* Index of the first bin whose key is >= key. */
static uint32_t sketch_lower_bound(const struct agg_sketch *s, int32_t key)
{
    uint32_t lo = 0, hi = s->n_bins;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (s->bins[mid].key < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

el_status agg_sketch_add(struct agg_sketch *s, double v)
{
    if (!isfinite(v))
        return EL_INVAL;
    if (s->count == UINT64_MAX)
        return EL_NOMEM;
    if (fabs(v) < AGG_SKETCH_MIN_ABS) {
        s->zero_count++;
        s->count++;
        return EL_OK;
    }
    int32_t key = sketch_key(v, sketch_ln_gamma());
    uint32_t i = sketch_lower_bound(s, key);
    if (i < s->n_bins && s->bins[i].key == key) {
        if (s->bins[i].count == UINT32_MAX)
            return EL_NOMEM;
        s->bins[i].count++;
    } else {
        el_status st = sketch_reserve(s, (uint64_t)s->n_bins + 1);
        if (st != EL_OK)
            return st;
        memmove(&s->bins[i + 1], &s->bins[i], (size_t)(s->n_bins - i) * sizeof s->bins[0]);
        s->bins[i].key = key;
        s->bins[i].count = 1;
        s->n_bins++;
    }
    s->count++;
    return EL_OK;
}

double agg_sketch_quantile(const struct agg_sketch *s, double q)
{
    if (s->count == 0 || isnan(q))
        return NAN;
    uint64_t rank = agg_quantile_rank(s->count, q);
    uint64_t seen = 0;
    uint32_t i = 0;
    for (; i < s->n_bins && s->bins[i].key < 0; i++) {
        seen += s->bins[i].count;
        if (seen >= rank)
            return sketch_value(s->bins[i].key);
    }
    seen += s->zero_count;
    if (seen >= rank)
        return 0.0;
    for (; i < s->n_bins; i++) {
        seen += s->bins[i].count;
        if (seen >= rank)
            return sketch_value(s->bins[i].key);
    }
    /* unreachable while count == zero_count + the bin counts */
    return s->n_bins > 0 ? sketch_value(s->bins[s->n_bins - 1].key) : 0.0;
}

/* ------------------------------------------------------------------ */
/* sketch: serialised form                                             */
/* ------------------------------------------------------------------ */

static size_t varint_len(uint64_t x)
{
    size_t n = 1;
    while (x >= 0x80) {
        x >>= 7;
        n++;
    }
    return n;
}

static uint8_t *varint_put(uint8_t *p, uint64_t x)
{
    while (x >= 0x80) {
        *p++ = (uint8_t)(x | 0x80);
        x >>= 7;
    }
    *p++ = (uint8_t)x;
    return p;
}

static uint64_t zigzag32(int32_t key)
{
    uint32_t u = (uint32_t)key;
    return (uint64_t)((u << 1) ^ (key < 0 ? UINT32_MAX : 0u));
}

/* The varint that encodes bins[i].key (the first key zigzagged, then deltas). */
static uint64_t key_field(const struct agg_sketch *s, uint32_t i)
{
    if (i == 0)
        return zigzag32(s->bins[0].key);
    return (uint64_t)((int64_t)s->bins[i].key - (int64_t)s->bins[i - 1].key);
}

size_t agg_sketch_serialized_size(const struct agg_sketch *s)
{
    size_t n = 1 + varint_len(s->count) + varint_len(s->zero_count) + varint_len(s->n_bins);
    for (uint32_t i = 0; i < s->n_bins; i++)
        n += varint_len(key_field(s, i)) + varint_len(s->bins[i].count);
    return n;
}

size_t agg_sketch_serialize(const struct agg_sketch *s, uint8_t *buf, size_t len)
{
    size_t need = agg_sketch_serialized_size(s);
    if (buf == NULL || len < need)
        return 0;
    uint8_t *p = buf;
    *p++ = AGG_SKETCH_VERSION;
    p = varint_put(p, s->count);
    p = varint_put(p, s->zero_count);
    p = varint_put(p, s->n_bins);
    for (uint32_t i = 0; i < s->n_bins; i++) {
        p = varint_put(p, key_field(s, i));
        p = varint_put(p, s->bins[i].count);
    }
    return need;
}

/* A bounded reader over a blob; every read checks the end. */
struct blob_reader {
    const uint8_t *p, *end;
};

/* Reads one canonical varint; EL_CORRUPT if truncated, too long or redundant. */
static el_status varint_get(struct blob_reader *r, uint64_t *out)
{
    uint64_t x = 0;
    for (unsigned i = 0; i < VARINT_MAX_BYTES; i++) {
        if (r->p >= r->end)
            return EL_CORRUPT;
        uint8_t b = *r->p++;
        if (i == VARINT_MAX_BYTES - 1 && b > 1)
            return EL_CORRUPT; /* beyond 64 bits */
        x |= (uint64_t)(b & 0x7f) << (7 * i);
        if ((b & 0x80) == 0) {
            if (b == 0 && i > 0)
                return EL_CORRUPT; /* non-canonical: a redundant zero group */
            *out = x;
            return EL_OK;
        }
    }
    return EL_CORRUPT;
}

/*
 * A sorted stream of bins: either a sketch's array or a blob being decoded.
 * For a blob, stream_open reads the header and stream_next validates each
 * bin; stream_finish checks the totals and that nothing trails.
 */
struct bin_stream {
    const struct agg_sketch *sk; /* array source, or NULL for a blob */
    struct blob_reader rd;
    uint64_t count, zero_count, bins_total;
    uint32_t n_bins, next;
    int64_t prev_key;
    int64_t key_abs_lo, key_abs_hi; /* valid |key| (blob only) */
};

static void stream_open_sketch(struct bin_stream *st, const struct agg_sketch *sk)
{
    memset(st, 0, sizeof *st);
    st->sk = sk;
    st->count = sk->count;
    st->zero_count = sk->zero_count;
    st->n_bins = sk->n_bins;
}

static el_status stream_open_blob(struct bin_stream *st, const uint8_t *buf, size_t len)
{
    memset(st, 0, sizeof *st);
    if (buf == NULL || len == 0)
        return EL_CORRUPT;
    sketch_key_range(&st->key_abs_lo, &st->key_abs_hi);
    st->rd.p = buf;
    st->rd.end = buf + len;
    if (*st->rd.p++ != AGG_SKETCH_VERSION)
        return EL_CORRUPT;
    uint64_t n_bins;
    if (varint_get(&st->rd, &st->count) != EL_OK || varint_get(&st->rd, &st->zero_count) != EL_OK ||
        varint_get(&st->rd, &n_bins) != EL_OK)
        return EL_CORRUPT;
    if (st->zero_count > st->count || n_bins > AGG_SKETCH_MAX_BINS)
        return EL_CORRUPT;
    st->n_bins = (uint32_t)n_bins;
    return EL_OK;
}

/* Next bin into *out: EL_OK, EL_NOTFOUND at the end, EL_CORRUPT for a bad bin. */
static el_status stream_next(struct bin_stream *st, struct agg_bin *out)
{
    if (st->next >= st->n_bins)
        return EL_NOTFOUND;
    if (st->sk != NULL) {
        *out = st->sk->bins[st->next++];
        return EL_OK;
    }
    uint64_t key_field_v, count;
    if (varint_get(&st->rd, &key_field_v) != EL_OK || varint_get(&st->rd, &count) != EL_OK)
        return EL_CORRUPT;
    int64_t key;
    if (st->next == 0) {
        if (key_field_v > UINT32_MAX)
            return EL_CORRUPT;
        uint32_t z = (uint32_t)key_field_v;
        key = (z & 1u) ? -(int64_t)(z >> 1) - 1 : (int64_t)(z >> 1);
    } else {
        if (key_field_v == 0 || key_field_v > UINT32_MAX)
            return EL_CORRUPT; /* duplicate, or a jump no int32 key pair spans */
        key = st->prev_key + (int64_t)key_field_v;
    }
    int64_t key_abs = key < 0 ? -key : key;
    if (key_abs < st->key_abs_lo || key_abs > st->key_abs_hi || count == 0 || count > UINT32_MAX)
        return EL_CORRUPT;
    st->prev_key = key;
    st->next++;
    st->bins_total += count;
    out->key = (int32_t)key;
    out->count = (uint32_t)count;
    return EL_OK;
}

static el_status stream_finish(const struct bin_stream *st)
{
    if (st->sk != NULL)
        return EL_OK;
    if (st->rd.p != st->rd.end)
        return EL_CORRUPT; /* trailing bytes */
    if (st->count - st->zero_count != st->bins_total)
        return EL_CORRUPT;
    return EL_OK;
}

/* ------------------------------------------------------------------ */
/* sketch: merging                                                     */
/* ------------------------------------------------------------------ */

/*
 * Pass 1: validates the stream and counts the keys of dst ∪ src into
 * *union_bins. EL_CORRUPT (bad blob) takes precedence over EL_NOMEM (a bin
 * count would pass UINT32_MAX), so the whole stream is always read.
 */
static el_status merge_plan(const struct agg_sketch *dst, struct bin_stream *src,
                            uint64_t *union_bins)
{
    uint64_t n = dst->n_bins;
    uint32_t j = 0;
    bool overflow = false;
    struct agg_bin b;
    el_status st;
    while ((st = stream_next(src, &b)) == EL_OK) {
        while (j < dst->n_bins && dst->bins[j].key < b.key)
            j++;
        if (j < dst->n_bins && dst->bins[j].key == b.key) {
            if (dst->bins[j].count > UINT32_MAX - b.count)
                overflow = true;
        } else {
            n++;
        }
    }
    if (st != EL_NOTFOUND)
        return st;
    st = stream_finish(src);
    if (st != EL_OK)
        return st;
    if (overflow || n > AGG_SKETCH_MAX_BINS || dst->count > UINT64_MAX - src->count)
        return EL_NOMEM;
    *union_bins = n;
    return EL_OK;
}

/* Pass 2: dst's bins move to the tail, then the union is written from the front. */
static void merge_apply(struct agg_sketch *dst, struct bin_stream *src, uint32_t union_bins)
{
    uint32_t n = dst->n_bins;
    uint32_t r = union_bins - n; /* read index into dst's moved bins */
    uint32_t w = 0;
    if (n > 0 && r > 0)
        memmove(&dst->bins[r], &dst->bins[0], (size_t)n * sizeof dst->bins[0]);
    struct agg_bin b;
    while (stream_next(src, &b) == EL_OK) {
        while (r < union_bins && dst->bins[r].key < b.key)
            dst->bins[w++] = dst->bins[r++];
        if (r < union_bins && dst->bins[r].key == b.key) {
            b.count += dst->bins[r++].count;
        }
        dst->bins[w++] = b;
    }
    /* w == r here: every source-only key has been written */
    dst->n_bins = union_bins;
    dst->count += src->count;
    dst->zero_count += src->zero_count;
}

/* Merges a stream opened on src into dst; dst unchanged on error. */
static el_status merge_stream(struct agg_sketch *dst, struct bin_stream *src,
                              const struct bin_stream *restart)
{
    uint64_t union_bins = 0;
    el_status st = merge_plan(dst, src, &union_bins);
    if (st != EL_OK)
        return st;
    st = sketch_reserve(dst, union_bins);
    if (st != EL_OK)
        return st;
    *src = *restart;
    merge_apply(dst, src, (uint32_t)union_bins);
    return EL_OK;
}

/* dst += dst: every count doubles. */
static el_status sketch_double(struct agg_sketch *s)
{
    if (s->count > UINT64_MAX / 2)
        return EL_NOMEM;
    for (uint32_t i = 0; i < s->n_bins; i++)
        if (s->bins[i].count > UINT32_MAX / 2)
            return EL_NOMEM;
    for (uint32_t i = 0; i < s->n_bins; i++)
        s->bins[i].count *= 2;
    s->count *= 2;
    s->zero_count *= 2;
    return EL_OK;
}

el_status agg_sketch_merge(struct agg_sketch *dst, const struct agg_sketch *src)
{
    if (src->count == 0)
        return EL_OK;
    if (dst == src)
        return sketch_double(dst);
    struct bin_stream st, start;
    stream_open_sketch(&start, src);
    st = start;
    return merge_stream(dst, &st, &start);
}

el_status agg_sketch_merge_serialized(struct agg_sketch *dst, const uint8_t *buf, size_t len)
{
    struct bin_stream st, start;
    el_status rc = stream_open_blob(&start, buf, len);
    if (rc != EL_OK)
        return rc;
    st = start;
    return merge_stream(dst, &st, &start);
}

el_status agg_sketch_deserialize(struct agg_sketch *s, const uint8_t *buf, size_t len)
{
    agg_sketch_reset(s);
    return agg_sketch_merge_serialized(s, buf, len);
}
