/*
 * agg_test — unit tests of the mergeable aggregates and the quantile sketch
 * (storage/agg.c).
 *
 * Method: values from several distributions (uniform, normal-ish, lognormal
 * over 12 decades, around and across zero, all equal, tiny and huge scales,
 * a large offset, small integers), each in generated, ascending, descending
 * and shuffled order, are aggregated once sequentially and once split into
 * random partitions (random or contiguous, some parts empty) whose aggs are
 * merged in random order and random tree shapes. Checked against references
 * computed here:
 *   - count, min, max, last: exactly (ts drawn from a small range, so ties on
 *     ts are common and broken by seq);
 *   - sum: exactly equal to the correctly rounded sum, computed by ref_fsum
 *     (Shewchuk's exact expansion + the half-way correction, i.e. Python's
 *     math.fsum algorithm; self-tested below);
 *   - mean, stddev: within 1e-9 relative of a two-pass reference in long
 *     double (mean from the exact sum, so the reference does not depend on
 *     long double being wider than double, as on 32-bit ARM);
 *   - sketch quantiles for q in {0, .01, .25, .5, .9, .95, .99, 1}: within
 *     relative error AGG_SKETCH_ALPHA of agg_quantile_exact (or 0 when the
 *     exact value is in the zero bucket); merged sketches (struct merges and
 *     merges of serialised blobs) have exactly the bins of the sketch built
 *     from all values at once.
 * Adversarial sums: +-1e308 mixes (finite results must be exact; a partial
 * sum that overflows must give a non-finite sum), catastrophic cancellation
 * (1e16 + 1 - 1e16 and kin), subnormals. Serialisation: round trips, every
 * truncation of valid blobs rejected, a table of corrupted blobs rejected,
 * random byte mutations never crash and, when accepted, re-encode to the
 * same bytes. Limits: EL_NOMEM at AGG_SKETCH_MAX_BINS and at a bin count of
 * UINT32_MAX, with the sketch unchanged.
 *
 * Reproducible: one splitmix64 generator with fixed seeds; a failing trial
 * prints its seed and distribution.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agg.h"

/* ---- deterministic PRNG ---- */

struct rng {
    uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
    uint64_t z = (r->s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* uniform in [0, 1) */
static double rng_unit(struct rng *r)
{
    return (double)(rng_next(r) >> 11) * 0x1p-53;
}

/* uniform in [0, n) */
static uint64_t rng_below(struct rng *r, uint64_t n)
{
    return rng_next(r) % n;
}

/* approximately standard normal (Irwin-Hall, 12 terms) */
static double rng_normal(struct rng *r)
{
    double s = 0.0;
    for (int i = 0; i < 12; i++)
        s += rng_unit(r);
    return s - 6.0;
}

/* ---- reference: correctly rounded sum (math.fsum's algorithm) ---- */

#define REF_MAX_PARTIALS 256

/* Correctly rounded sum of v[0..n); *overflow set if a partial overflowed. */
static double ref_fsum(const double *v, size_t n, bool *overflow)
{
    double partials[REF_MAX_PARTIALS];
    size_t np = 0;
    *overflow = false;
    for (size_t k = 0; k < n; k++) {
        double x = v[k];
        size_t i = 0;
        for (size_t j = 0; j < np; j++) {
            double y = partials[j];
            if (fabs(x) < fabs(y)) {
                double t = x;
                x = y;
                y = t;
            }
            double hi = x + y;
            double lo = y - (hi - x);
            if (lo != 0.0)
                partials[i++] = lo;
            x = hi;
        }
        if (!isfinite(x)) {
            *overflow = true;
            return x;
        }
        assert_true(i < REF_MAX_PARTIALS);
        partials[i] = x;
        np = i + 1;
    }
    if (np == 0)
        return 0.0;
    size_t m = np - 1;
    double hi = partials[m];
    double lo = 0.0;
    while (m > 0) {
        double x = hi;
        double y = partials[--m];
        hi = x + y;
        double yr = hi - x;
        lo = y - yr;
        if (lo != 0.0)
            break;
    }
    /* half-way case: round according to the sign of the rest */
    if (m > 0 && ((lo < 0.0 && partials[m - 1] < 0.0) || (lo > 0.0 && partials[m - 1] > 0.0))) {
        double y = lo * 2.0;
        double x = hi + y;
        double yr = x - hi;
        if (y == yr)
            hi = x;
    }
    return hi;
}

static void test_ref_fsum_self(void **state)
{
    (void)state;
    bool of;
    double a[] = {1e16, 1.0, -1e16};
    assert_true(ref_fsum(a, 3, &of) == 1.0 && !of);
    double b[10];
    for (int i = 0; i < 10; i++)
        b[i] = 0.1;
    assert_true(ref_fsum(b, 10, &of) == 1.0);
    double c[] = {1.0, 1e100, 1.0, -1e100};
    assert_true(ref_fsum(c, 4, &of) == 2.0);
    double d[] = {1.0, 0x1p-53, 0x1p-106}; /* just above a tie: rounds up */
    assert_true(ref_fsum(d, 3, &of) == 1.0 + 0x1p-52);
    double e[] = {1.0, 0x1p-53}; /* a tie: to even */
    assert_true(ref_fsum(e, 2, &of) == 1.0);
    double f[] = {1e308, 1e308, -1e308};
    (void)ref_fsum(f, 3, &of);
    assert_true(of);
}

/* ---- value sets ---- */

enum dist {
    D_UNIFORM,
    D_NORMAL,
    D_LOGNORMAL,
    D_CROSS_ZERO,
    D_ALL_EQUAL,
    D_TINY,
    D_HUGE,
    D_OFFSET,
    D_INTEGERS,
    D_WIDE_SIGNED,
    D_COUNT
};

static const char *const dist_names[D_COUNT] = {
    "uniform", "normal", "lognormal", "cross-zero", "all-equal",
    "tiny",    "huge",   "offset",    "integers",   "wide-signed",
};

static double dist_value(enum dist d, struct rng *r)
{
    switch (d) {
    case D_UNIFORM: return rng_unit(r) * 100.0;
    case D_NORMAL: return 20.0 + 5.0 * rng_normal(r);
    case D_LOGNORMAL: {
        double e = 2.0 * rng_normal(r);
        e = e < -6.0 ? -6.0 : e > 6.0 ? 6.0 : e;
        return pow(10.0, e);
    }
    case D_CROSS_ZERO: {
        uint64_t k = rng_below(r, 10);
        if (k == 0)
            return 0.0;
        if (k == 1)
            return (rng_unit(r) - 0.5) * 1e-9; /* the zero bucket */
        return 0.05 + rng_normal(r);
    }
    case D_ALL_EQUAL: return 3.7;
    case D_TINY: return (rng_unit(r) - 0.3) * 1e-150;
    case D_HUGE: return (rng_unit(r) - 0.3) * 1e150;
    case D_OFFSET: return 1e5 + rng_normal(r);
    case D_INTEGERS: return (double)((int64_t)rng_below(r, 2001) - 1000);
    case D_WIDE_SIGNED: {
        double m = pow(10.0, 12.0 * rng_unit(r) - 6.0);
        return (rng_next(r) & 1) ? m : -m;
    }
    case D_COUNT: break;
    }
    return 0.0;
}

enum order { O_AS_IS, O_ASCENDING, O_DESCENDING, O_SHUFFLED, O_COUNT };

static int cmp_up(const void *pa, const void *pb)
{
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a > b) - (a < b);
}

static int cmp_down(const void *pa, const void *pb)
{
    return cmp_up(pb, pa);
}

static void shuffle_doubles(double *v, size_t n, struct rng *r)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)rng_below(r, i);
        double t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
}

static void apply_order(double *v, size_t n, enum order o, struct rng *r)
{
    switch (o) {
    case O_ASCENDING: qsort(v, n, sizeof v[0], cmp_up); break;
    case O_DESCENDING: qsort(v, n, sizeof v[0], cmp_down); break;
    case O_SHUFFLED: shuffle_doubles(v, n, r); break;
    case O_AS_IS:
    case O_COUNT: break;
    }
}

/* One event set: values with their event times and (unique) sequences. */
struct events {
    size_t n;
    double *v;
    int64_t *ts, *seq;
};

static void events_alloc(struct events *e, size_t n)
{
    e->n = n;
    e->v = calloc(n ? n : 1, sizeof e->v[0]);
    e->ts = calloc(n ? n : 1, sizeof e->ts[0]);
    e->seq = calloc(n ? n : 1, sizeof e->seq[0]);
    assert_non_null(e->v);
    assert_non_null(e->ts);
    assert_non_null(e->seq);
}

static void events_free(struct events *e)
{
    free(e->v);
    free(e->ts);
    free(e->seq);
}

/* Times from a small range (many ties), sequences a random permutation. */
static void events_stamp(struct events *e, struct rng *r)
{
    uint64_t span = e->n / 4 + 1;
    for (size_t i = 0; i < e->n; i++) {
        e->ts[i] = INT64_C(1700000000000) + (int64_t)rng_below(r, span);
        e->seq[i] = (int64_t)i + 1;
    }
    for (size_t i = e->n; i > 1; i--) {
        size_t j = (size_t)rng_below(r, i);
        int64_t t = e->seq[i - 1];
        e->seq[i - 1] = e->seq[j];
        e->seq[j] = t;
    }
}

/* ---- references ---- */

struct ref {
    uint64_t count;
    double min, max, sum, last;
    double max_abs; /* stddevs below ~1 ulp of this are the noise of the inputs */
    bool sum_overflow;
    long double mean, stddev;
};

static void ref_compute(const struct events *e, struct ref *out)
{
    out->count = e->n;
    out->min = INFINITY;
    out->max = -INFINITY;
    size_t last = 0;
    for (size_t i = 0; i < e->n; i++) {
        out->min = fmin(out->min, e->v[i]);
        out->max = fmax(out->max, e->v[i]);
        if (e->ts[i] > e->ts[last] || (e->ts[i] == e->ts[last] && e->seq[i] > e->seq[last]))
            last = i;
    }
    out->last = e->n ? e->v[last] : NAN;
    out->max_abs = fmax(fabs(out->min), fabs(out->max));
    out->sum = ref_fsum(e->v, e->n, &out->sum_overflow);
    if (e->n == 0)
        return;
    /* corrected two-pass: the exact sum's rounding is taken back out */
    long double n = (long double)e->n, mean = (long double)out->sum / n, corr = 0.0L;
    for (size_t i = 0; i < e->n; i++)
        corr += (long double)e->v[i] - mean;
    out->mean = mean + corr / n;
    long double m2 = 0.0L;
    for (size_t i = 0; i < e->n; i++) {
        long double d = (long double)e->v[i] - out->mean;
        m2 += d * d;
    }
    out->stddev = sqrtl(m2 / (long double)e->n);
}

static bool rel_close(double got, long double want, double rel, double abs_floor)
{
    long double diff = fabsl((long double)got - want);
    return diff <= (long double)rel * fabsl(want) + (long double)abs_floor;
}

/* ---- agg helpers ---- */

#define MAX_PARTS 24

/* Merges parts[0..n) in a random order and tree shape; the result is parts[0]. */
static void agg_merge_random(struct agg *parts, size_t n, struct rng *r)
{
    while (n > 1) {
        size_t i = (size_t)rng_below(r, n);
        size_t j = (size_t)rng_below(r, n - 1);
        if (j >= i)
            j++;
        agg_merge(&parts[i], &parts[j]);
        parts[j] = parts[n - 1];
        n--;
    }
}

/* Assigns each event to a part: random, or contiguous chunks. */
static void partition(size_t n, size_t parts, unsigned *part_of, struct rng *r)
{
    bool contiguous = rng_below(r, 3) == 0;
    for (size_t i = 0; i < n; i++)
        part_of[i] =
            contiguous ? (unsigned)(i * parts / (n ? n : 1)) : (unsigned)rng_below(r, parts);
}

enum sum_check { SUM_EXACT, SUM_EXACT_IF_FINITE };

static void check_agg(const struct agg *a, const struct ref *ref, enum sum_check sc,
                      bool check_moments, const char *what)
{
    bool ok = a->count == ref->count && a->min == ref->min && a->max == ref->max;
    if (ref->count > 0)
        ok = ok && a->last_value == ref->last;
    double sum = agg_sum(a);
    if (sc == SUM_EXACT)
        ok = ok && !ref->sum_overflow && sum == ref->sum;
    else if (isfinite(sum))
        ok = ok && sum == ref->sum;
    if (check_moments && ref->count > 0) {
        ok = ok && rel_close(agg_mean(a), ref->mean, 1e-9, 0.0);
        ok = ok && rel_close(agg_stddev(a), ref->stddev, 1e-9, 2.0 * DBL_EPSILON * ref->max_abs);
    }
    if (!ok) {
        print_error("%s: count %" PRIu64 "/%" PRIu64 " min %a/%a max %a/%a last %a/%a sum %a/%a "
                    "mean %.17g/%.17Lg stddev %.17g/%.17Lg\n",
                    what, a->count, ref->count, a->min, ref->min, a->max, ref->max, a->last_value,
                    ref->last, sum, ref->sum, agg_mean(a), ref->mean, agg_stddev(a), ref->stddev);
        fail();
    }
}

/*
 * Sequential aggregation (sum checked as sc_whole) plus one random
 * partition-and-merge (sum checked as sc_parts). ref_sum, if not NULL, is
 * the correctly rounded sum (for orders in which ref_fsum would overflow).
 */
static void run_agg_trial(const struct events *e, struct rng *r, enum sum_check sc_whole,
                          enum sum_check sc_parts, const double *ref_sum, bool check_moments,
                          const char *what)
{
    struct ref ref;
    ref_compute(e, &ref);
    if (ref_sum != NULL) {
        ref.sum = *ref_sum;
        ref.sum_overflow = false;
    }
    struct agg whole;
    agg_init(&whole);
    for (size_t i = 0; i < e->n; i++)
        agg_add(&whole, e->v[i], e->ts[i], e->seq[i]);
    check_agg(&whole, &ref, sc_whole, check_moments, what);

    size_t parts = 1 + (size_t)rng_below(r, MAX_PARTS);
    unsigned *part_of = malloc((e->n ? e->n : 1) * sizeof *part_of);
    assert_non_null(part_of);
    partition(e->n, parts, part_of, r);
    struct agg agg_parts[MAX_PARTS];
    for (size_t p = 0; p < parts; p++)
        agg_init(&agg_parts[p]);
    for (size_t i = 0; i < e->n; i++)
        agg_add(&agg_parts[part_of[i]], e->v[i], e->ts[i], e->seq[i]);
    agg_merge_random(agg_parts, parts, r);
    check_agg(&agg_parts[0], &ref, sc_parts, check_moments, what);
    free(part_of);
}

static size_t trial_size(struct rng *r)
{
    static const size_t sizes[] = {1, 2, 3, 17, 256, 1000, 5000, 20000};
    return sizes[rng_below(r, sizeof sizes / sizeof sizes[0])];
}

static void fill_dist(struct events *e, enum dist d, enum order o, struct rng *r)
{
    for (size_t i = 0; i < e->n; i++)
        e->v[i] = dist_value(d, r);
    apply_order(e->v, e->n, o, r);
    events_stamp(e, r);
}

/* ---- agg tests ---- */

static void test_agg_basics(void **state)
{
    (void)state;
    struct agg a, b;
    agg_init(&a);
    assert_true(a.count == 0 && a.min == INFINITY && a.max == -INFINITY);
    assert_true(isnan(agg_mean(&a)) && isnan(agg_stddev(&a)));
    assert_true(agg_sum(&a) == 0.0);

    /* empty merges are no-ops, both ways */
    agg_init(&b);
    agg_merge(&a, &b);
    assert_int_equal(a.count, 0);
    agg_add(&b, 5.0, 100, 7);
    struct agg b_copy = b;
    agg_init(&a);
    agg_merge(&b, &a);
    assert_memory_equal(&b, &b_copy, sizeof b);
    agg_merge(&a, &b);
    assert_memory_equal(&a, &b, sizeof a);

    /* non-finite values are ignored */
    agg_add(&a, NAN, 200, 8);
    agg_add(&a, INFINITY, 200, 9);
    agg_add(&a, -INFINITY, 200, 10);
    assert_memory_equal(&a, &b, sizeof a);

    /* last: greatest ts, then greatest seq; an older event never wins */
    agg_add(&a, 1.0, 300, 5);
    agg_add(&a, 2.0, 300, 4);
    assert_true(a.last_value == 1.0 && a.last_ts_ms == 300 && a.last_seq == 5);
    agg_add(&a, 3.0, 299, 99);
    assert_true(a.last_value == 1.0);
    agg_add(&a, 4.0, 300, 6);
    assert_true(a.last_value == 4.0 && a.last_seq == 6);

    /* identical (ts, seq): merge is still commutative */
    struct agg x, y, xy, yx;
    agg_init(&x);
    agg_init(&y);
    agg_add(&x, 1.5, 10, 10);
    agg_add(&y, 2.5, 10, 10);
    xy = x;
    agg_merge(&xy, &y);
    yx = y;
    agg_merge(&yx, &x);
    assert_true(xy.last_value == yx.last_value);

    /* self-merge equals merging a copy */
    struct agg s1, s2, copy;
    agg_init(&s1);
    for (int i = 0; i < 10; i++)
        agg_add(&s1, (double)i * 0.3, i, i);
    s2 = s1;
    copy = s1;
    agg_merge(&s1, &s1);
    agg_merge(&s2, &copy);
    assert_memory_equal(&s1, &s2, sizeof s1);
    assert_int_equal(s1.count, 20);

    /* all equal: stddev exactly 0, mean exact */
    agg_init(&a);
    for (int i = 0; i < 1000; i++)
        agg_add(&a, 0.1, i, i);
    assert_true(agg_stddev(&a) == 0.0);
    assert_true(agg_mean(&a) == 0.1);
}

static void test_agg_random(void **state)
{
    (void)state;
    struct rng r = {UINT64_C(0x5eed0001)};
    char what[96];
    for (int rep = 0; rep < 10; rep++) {
        for (int d = 0; d < D_COUNT; d++) {
            for (int o = 0; o < O_COUNT; o++) {
                struct events e;
                uint64_t seed = r.s;
                events_alloc(&e, trial_size(&r));
                fill_dist(&e, (enum dist)d, (enum order)o, &r);
                snprintf(what, sizeof what, "agg %s order %d n %zu seed %#" PRIx64, dist_names[d],
                         o, e.n, seed);
                run_agg_trial(&e, &r, SUM_EXACT, SUM_EXACT, NULL, true, what);
                events_free(&e);
            }
        }
    }
}

/* Sums at the edges of double: 1e308 mixes, cancellation, subnormals. */
static void test_agg_adversarial(void **state)
{
    (void)state;
    struct rng r = {UINT64_C(0x5eed0002)};
    char what[96];

    for (int t = 0; t < 40; t++) {
        /* +-1e308 in pairs (net -1e308, 0 or +1e308) plus small integers and
         * dyadic fractions, interleaved so that no partial sum overflows */
        size_t pairs = 1 + (size_t)rng_below(&r, 50), small = (size_t)rng_below(&r, 200);
        int extra = (int)rng_below(&r, 3) - 1;
        struct events e;
        events_alloc(&e, 2 * pairs + small + 1);
        size_t k = 0;
        for (size_t i = 0; i < pairs; i++) {
            e.v[k++] = 1e308;
            e.v[k++] = -1e308;
            for (size_t j = 0; j < small / pairs; j++)
                e.v[k++] = (double)((int64_t)rng_below(&r, 2001) - 1000) / 1024.0;
        }
        e.v[k++] = extra * 1e308;
        while (k < e.n)
            e.v[k++] = (double)rng_below(&r, 7);
        events_stamp(&e, &r);
        bool of;
        double exact = ref_fsum(e.v, e.n, &of);
        assert_false(of);
        /* in this order no partial sum overflows: exact; in any other order
         * and grouping a finite sum is exact, an overflow is not finite */
        snprintf(what, sizeof what, "1e308 interleaved t %d", t);
        run_agg_trial(&e, &r, SUM_EXACT, SUM_EXACT_IF_FINITE, NULL, false, what);
        shuffle_doubles(e.v, e.n, &r);
        snprintf(what, sizeof what, "1e308 shuffled t %d", t);
        run_agg_trial(&e, &r, SUM_EXACT_IF_FINITE, SUM_EXACT_IF_FINITE, &exact, false, what);
        events_free(&e);
    }

    /* a partial sum that overflows stays non-finite */
    struct agg a;
    agg_init(&a);
    agg_add(&a, 1e308, 1, 1);
    agg_add(&a, 1e308, 2, 2);
    agg_add(&a, -1e308, 3, 3);
    assert_true(isinf(agg_sum(&a)) && agg_sum(&a) > 0.0);
    assert_true(a.min == -1e308 && a.max == 1e308 && a.count == 3);
    assert_true(isinf(agg_stddev(&a)));
    assert_true(isfinite(agg_mean(&a))); /* the Welford fallback */

    /* catastrophic cancellation: 1e16 + 1 - 1e16 and kin, in any grouping;
     * every value and partial sum is a multiple of 2^-30 below 2^73, so it
     * fits the double-double's 106 bits and must come out exact */
    for (int t = 0; t < 40; t++) {
        size_t triples = 1 + (size_t)rng_below(&r, 300);
        struct events e;
        events_alloc(&e, 3 * triples);
        for (size_t i = 0; i < triples; i++) {
            double big = ldexp(1.0 + (double)rng_below(&r, 1000), 40 + (int)rng_below(&r, 15));
            double small = (rng_next(&r) & 1) ? 1.0 : ldexp(1.0, -(int)rng_below(&r, 31));
            e.v[3 * i] = big;
            e.v[3 * i + 1] = small;
            e.v[3 * i + 2] = -big;
        }
        if (t % 2)
            shuffle_doubles(e.v, e.n, &r);
        events_stamp(&e, &r);
        snprintf(what, sizeof what, "cancellation t %d", t);
        run_agg_trial(&e, &r, SUM_EXACT, SUM_EXACT, NULL, false, what);
        events_free(&e);
    }
    /* merging two double-doubles whose hi parts cancel: the lo parts must be
     * added error-free too (a plain lo + lo loses 2^-10 and rounds a near-tie
     * the wrong way) */
    {
        double va[] = {0x1p100, 0x1p46 + 0x1p-5}, vb[] = {-(0x1p100 - 0x1p48), 0x1p-10};
        double all[] = {va[0], va[1], vb[0], vb[1]};
        bool of;
        double want = ref_fsum(all, 4, &of);
        assert_true(want == 0x1p48 + 0x1p46 + 0x1p-4);
        struct agg pa, pb;
        agg_init(&pa);
        agg_init(&pb);
        for (int i = 0; i < 2; i++) {
            agg_add(&pa, va[i], i, i);
            agg_add(&pb, vb[i], i, 2 + i);
        }
        struct agg ab = pa, ba = pb;
        agg_merge(&ab, &pb);
        agg_merge(&ba, &pa);
        assert_true(agg_sum(&ab) == want && agg_sum(&ba) == want);
    }

    agg_init(&a);
    agg_add(&a, 1e16, 1, 1);
    agg_add(&a, 1.0, 2, 2);
    agg_add(&a, -1e16, 3, 3);
    assert_true(agg_sum(&a) == 1.0);

    /* subnormals (sums of subnormals are exact, so must be the merges) */
    for (int t = 0; t < 40; t++) {
        struct events e;
        events_alloc(&e, 1 + (size_t)rng_below(&r, 2000));
        for (size_t i = 0; i < e.n; i++) {
            double m = (double)rng_below(&r, 1u << 20) * DBL_TRUE_MIN;
            if (rng_below(&r, 10) == 0)
                m = DBL_MIN * rng_unit(&r);
            e.v[i] = (rng_next(&r) & 1) ? m : -m;
        }
        events_stamp(&e, &r);
        snprintf(what, sizeof what, "subnormal t %d", t);
        run_agg_trial(&e, &r, SUM_EXACT, SUM_EXACT, NULL, false, what);
        events_free(&e);
    }

    /* huge and tiny magnitudes (sums only: m2 over/underflows by design) */
    for (int t = 0; t < 20; t++) {
        struct events e;
        events_alloc(&e, 1 + (size_t)rng_below(&r, 3000));
        double scale = (t % 2) ? 1e300 : 1e-300;
        for (size_t i = 0; i < e.n; i++)
            e.v[i] = (rng_unit(&r) - 0.4) * scale;
        events_stamp(&e, &r);
        snprintf(what, sizeof what, "scale %g t %d", scale, t);
        run_agg_trial(&e, &r, SUM_EXACT, SUM_EXACT, NULL, false, what);
        events_free(&e);
    }
}

/* ---- quantiles ---- */

static void test_rank_and_exact(void **state)
{
    (void)state;
    assert_int_equal(agg_quantile_rank(0, 0.5), 0);
    assert_int_equal(agg_quantile_rank(10, 0.0), 1);
    assert_int_equal(agg_quantile_rank(10, -1.0), 1);
    assert_int_equal(agg_quantile_rank(10, NAN), 1);
    assert_int_equal(agg_quantile_rank(10, 1.0), 10);
    assert_int_equal(agg_quantile_rank(10, 2.0), 10);
    assert_int_equal(agg_quantile_rank(1, 0.5), 1);
    assert_int_equal(agg_quantile_rank(100, 0.07), 7);
    assert_int_equal(agg_quantile_rank(100, 0.95), 95);
    assert_int_equal(agg_quantile_rank(100, 0.951), 96);
    assert_int_equal(agg_quantile_rank(1000, 0.999), 999);
    assert_int_equal(agg_quantile_rank(3, 0.5), 2);
    for (unsigned nn = 1; nn <= 200; nn++)
        for (unsigned pct = 1; pct <= 100; pct++)
            assert_int_equal(agg_quantile_rank(nn, pct / 100.0), (nn * pct + 99) / 100);

    double v[] = {3.0, -1.0, 2.0, 10.0, 0.5};
    assert_true(agg_quantile_exact(v, 5, 0.0) == -1.0);
    assert_true(agg_quantile_exact(v, 5, 1.0) == 10.0);
    assert_true(agg_quantile_exact(v, 5, 0.5) == 2.0);
    assert_true(agg_quantile_exact(v, 5, 0.2) == -1.0);
    assert_true(agg_quantile_exact(v, 5, 0.21) == 0.5);
    assert_true(isnan(agg_quantile_exact(v, 0, 0.5)));
    assert_true(isnan(agg_quantile_exact(v, 5, NAN)));
}

static const double quantile_qs[] = {0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0};

static bool sketch_equal(const struct agg_sketch *a, const struct agg_sketch *b)
{
    if (a->count != b->count || a->zero_count != b->zero_count || a->n_bins != b->n_bins)
        return false;
    return a->n_bins == 0 || memcmp(a->bins, b->bins, a->n_bins * sizeof a->bins[0]) == 0;
}

static bool sketch_valid(const struct agg_sketch *s)
{
    uint64_t total = s->zero_count;
    for (uint32_t i = 0; i < s->n_bins; i++) {
        if (s->bins[i].count == 0 || s->bins[i].key == 0)
            return false;
        if (i > 0 && s->bins[i].key <= s->bins[i - 1].key)
            return false;
        total += s->bins[i].count;
    }
    return total == s->count && s->n_bins <= s->cap && s->n_bins <= AGG_SKETCH_MAX_BINS;
}

static void check_quantile(double est, double exact, const char *what, double q)
{
    bool ok = fabs(est - exact) <= AGG_SKETCH_ALPHA * fabs(exact) ||
              (fabs(exact) < AGG_SKETCH_MIN_ABS && est == 0.0);
    if (!ok) {
        print_error("%s: q %g sketch %.17g exact %.17g\n", what, q, est, exact);
        fail();
    }
}

/* Serialises s into a malloc'ed blob of exactly its size. */
static uint8_t *blob_of(const struct agg_sketch *s, size_t *len)
{
    *len = agg_sketch_serialized_size(s);
    uint8_t *b = malloc(*len);
    assert_non_null(b);
    assert_int_equal(agg_sketch_serialize(s, b, *len), *len);
    return b;
}

/* Merges parts[0..n) in random order/tree shape, sometimes through blobs. */
static void sketch_merge_random(struct agg_sketch *parts, size_t n, struct rng *r)
{
    while (n > 1) {
        size_t i = (size_t)rng_below(r, n);
        size_t j = (size_t)rng_below(r, n - 1);
        if (j >= i)
            j++;
        if (rng_below(r, 2) == 0) {
            assert_int_equal(agg_sketch_merge(&parts[i], &parts[j]), EL_OK);
        } else {
            size_t len;
            uint8_t *b = blob_of(&parts[j], &len);
            assert_int_equal(agg_sketch_merge_serialized(&parts[i], b, len), EL_OK);
            free(b);
        }
        assert_true(sketch_valid(&parts[i]));
        agg_sketch_cleanup(&parts[j]);
        parts[j] = parts[n - 1];
        n--;
    }
}

static void run_sketch_trial(const struct events *e, struct rng *r, const char *what)
{
    struct agg_sketch whole;
    agg_sketch_init(&whole);
    for (size_t i = 0; i < e->n; i++)
        assert_int_equal(agg_sketch_add(&whole, e->v[i]), EL_OK);
    assert_true(sketch_valid(&whole));
    assert_int_equal(whole.count, e->n);

    double *sorted = malloc((e->n ? e->n : 1) * sizeof *sorted);
    assert_non_null(sorted);
    memcpy(sorted, e->v, e->n * sizeof *sorted);
    for (size_t k = 0; k < sizeof quantile_qs / sizeof quantile_qs[0]; k++) {
        double q = quantile_qs[k];
        check_quantile(agg_sketch_quantile(&whole, q), agg_quantile_exact(sorted, e->n, q), what,
                       q);
    }
    for (int k = 0; k < 20; k++) {
        double q = rng_unit(r);
        check_quantile(agg_sketch_quantile(&whole, q), agg_quantile_exact(sorted, e->n, q), what,
                       q);
    }
    free(sorted);

    size_t parts = 1 + (size_t)rng_below(r, MAX_PARTS);
    unsigned *part_of = malloc((e->n ? e->n : 1) * sizeof *part_of);
    assert_non_null(part_of);
    partition(e->n, parts, part_of, r);
    struct agg_sketch sk[MAX_PARTS];
    for (size_t p = 0; p < parts; p++)
        agg_sketch_init(&sk[p]);
    for (size_t i = 0; i < e->n; i++)
        assert_int_equal(agg_sketch_add(&sk[part_of[i]], e->v[i]), EL_OK);
    sketch_merge_random(sk, parts, r);
    if (!sketch_equal(&sk[0], &whole)) {
        print_error("%s: merged sketch differs from the whole\n", what);
        fail();
    }

    /* round trip */
    size_t len;
    uint8_t *b = blob_of(&whole, &len);
    struct agg_sketch back;
    agg_sketch_init(&back);
    assert_int_equal(agg_sketch_deserialize(&back, b, len), EL_OK);
    assert_true(sketch_equal(&back, &whole));
    if (len > 0)
        assert_int_equal(agg_sketch_serialize(&whole, b, len - 1), 0);
    free(b);
    agg_sketch_cleanup(&back);
    agg_sketch_cleanup(&sk[0]);
    agg_sketch_cleanup(&whole);
    free(part_of);
}

static void test_sketch_random(void **state)
{
    (void)state;
    struct rng r = {UINT64_C(0x5eed0003)};
    char what[96];
    for (int rep = 0; rep < 6; rep++) {
        for (int d = 0; d < D_COUNT; d++) {
            for (int o = 0; o < O_COUNT; o++) {
                struct events e;
                uint64_t seed = r.s;
                events_alloc(&e, trial_size(&r));
                fill_dist(&e, (enum dist)d, (enum order)o, &r);
                snprintf(what, sizeof what, "sketch %s order %d n %zu seed %#" PRIx64,
                         dist_names[d], o, e.n, seed);
                run_sketch_trial(&e, &r, what);
                events_free(&e);
            }
        }
    }
}

static void test_sketch_basics(void **state)
{
    (void)state;
    struct agg_sketch s;
    agg_sketch_init(&s);
    assert_true(isnan(agg_sketch_quantile(&s, 0.5)));
    assert_int_equal(agg_sketch_add(&s, NAN), EL_INVAL);
    assert_int_equal(agg_sketch_add(&s, INFINITY), EL_INVAL);
    assert_int_equal(agg_sketch_add(&s, -INFINITY), EL_INVAL);
    assert_int_equal(s.count, 0);

    /* zero bucket between negatives and positives */
    assert_int_equal(agg_sketch_add(&s, 0.0), EL_OK);
    assert_int_equal(agg_sketch_add(&s, -0.0), EL_OK);
    assert_int_equal(agg_sketch_add(&s, 0.9e-9), EL_OK);
    assert_int_equal(agg_sketch_add(&s, -5.0), EL_OK);
    assert_int_equal(agg_sketch_add(&s, 5.0), EL_OK);
    assert_int_equal(agg_sketch_add(&s, -500.0), EL_OK);
    assert_true(s.count == 6 && s.zero_count == 3 && s.n_bins == 3);
    assert_true(s.bins[0].key < s.bins[1].key && s.bins[1].key < 0 && s.bins[2].key > 0);
    assert_true(fabs(agg_sketch_quantile(&s, 0.0) + 500.0) <= 5.0);
    assert_true(fabs(agg_sketch_quantile(&s, 2.0 / 6) + 5.0) <= 0.05);
    assert_true(agg_sketch_quantile(&s, 0.5) == 0.0);
    assert_true(fabs(agg_sketch_quantile(&s, 1.0) - 5.0) <= 0.05);
    assert_true(isnan(agg_sketch_quantile(&s, NAN)));

    /* reset keeps memory; self-merge doubles */
    struct agg_bin *mem = s.bins;
    agg_sketch_reset(&s);
    assert_true(s.count == 0 && s.n_bins == 0 && s.bins == mem);
    assert_int_equal(agg_sketch_add(&s, 7.0), EL_OK);
    assert_int_equal(agg_sketch_add(&s, 0.0), EL_OK);
    assert_int_equal(agg_sketch_merge(&s, &s), EL_OK);
    assert_true(s.count == 4 && s.zero_count == 2 && s.n_bins == 1 && s.bins[0].count == 2);

    /* merging an empty sketch, and into one */
    struct agg_sketch empty, copy;
    agg_sketch_init(&empty);
    agg_sketch_init(&copy);
    assert_int_equal(agg_sketch_merge(&s, &empty), EL_OK);
    assert_int_equal(s.count, 4);
    assert_int_equal(agg_sketch_merge(&copy, &s), EL_OK);
    assert_true(sketch_equal(&copy, &s));
    size_t len;
    uint8_t *b = blob_of(&empty, &len);
    assert_int_equal(len, 4);
    assert_int_equal(agg_sketch_merge_serialized(&copy, b, len), EL_OK);
    assert_true(sketch_equal(&copy, &s));
    free(b);
    agg_sketch_cleanup(&copy);
    agg_sketch_cleanup(&empty);
    agg_sketch_cleanup(&s);
    assert_null(s.bins);
    agg_sketch_cleanup(NULL);
}

/* Relative error at and around bin edges over the whole double range. */
static void test_sketch_accuracy_range(void **state)
{
    (void)state;
    const double a = AGG_SKETCH_ALPHA;
    const double ln_gamma = log((1.0 + a) / (1.0 - a));
    struct agg_sketch s;
    agg_sketch_init(&s);
    struct rng r = {UINT64_C(0x5eed0004)};
    for (int i = -1040; i <= 35500; i++) {
        double edge = exp((double)i * ln_gamma);
        double cand[] = {edge,
                         nextafter(edge, 0.0),
                         nextafter(edge, INFINITY),
                         edge * (1.0 + 1e-12),
                         edge * (1.0 - 1e-12),
                         edge * (1.0 + rng_unit(&r) * 0.03)};
        for (size_t k = 0; k < sizeof cand / sizeof cand[0]; k++) {
            double v = cand[k];
            if (!isfinite(v) || v > DBL_MAX)
                continue;
            for (int sign = 0; sign < 2; sign++) {
                double x = sign ? -v : v;
                agg_sketch_reset(&s);
                assert_int_equal(agg_sketch_add(&s, x), EL_OK);
                double est = agg_sketch_quantile(&s, 0.5);
                if (fabs(x) < AGG_SKETCH_MIN_ABS) {
                    assert_true(est == 0.0);
                } else if (!(fabs(est - x) <= a * fabs(x))) {
                    print_error("value %a estimate %a\n", x, est);
                    fail();
                }
            }
        }
    }
    agg_sketch_reset(&s);
    assert_int_equal(agg_sketch_add(&s, DBL_MAX), EL_OK);
    assert_int_equal(agg_sketch_add(&s, -DBL_MAX), EL_OK);
    assert_int_equal(agg_sketch_add(&s, AGG_SKETCH_MIN_ABS), EL_OK);
    assert_int_equal(agg_sketch_add(&s, DBL_TRUE_MIN), EL_OK);
    assert_true(fabs(agg_sketch_quantile(&s, 1.0) - DBL_MAX) <= a * DBL_MAX);
    assert_true(fabs(agg_sketch_quantile(&s, 0.0) + DBL_MAX) <= a * DBL_MAX);
    assert_true(agg_sketch_quantile(&s, 0.5) == 0.0);
    assert_true(fabs(agg_sketch_quantile(&s, 0.75) - AGG_SKETCH_MIN_ABS) <= a * AGG_SKETCH_MIN_ABS);
    size_t len;
    uint8_t *b = blob_of(&s, &len);
    struct agg_sketch back;
    agg_sketch_init(&back);
    assert_int_equal(agg_sketch_deserialize(&back, b, len), EL_OK);
    assert_true(sketch_equal(&back, &s));
    free(b);
    agg_sketch_cleanup(&back);
    agg_sketch_cleanup(&s);
}

/* ---- serialisation ---- */

/* Every proper prefix of blob must be rejected, by both decoders, leaving dst as is. */
static void check_truncations(const uint8_t *blob, size_t len, const struct agg_sketch *dst)
{
    struct agg_sketch s, d;
    agg_sketch_init(&s);
    agg_sketch_init(&d);
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *p = malloc(cut ? cut : 1); /* exact size: ASan sees over-reads */
        assert_non_null(p);
        memcpy(p, blob, cut);
        assert_int_equal(agg_sketch_deserialize(&s, p, cut), EL_CORRUPT);
        assert_int_equal(s.count, 0);
        agg_sketch_reset(&d);
        assert_int_equal(agg_sketch_merge(&d, dst), EL_OK);
        assert_int_equal(agg_sketch_merge_serialized(&d, p, cut), EL_CORRUPT);
        assert_true(sketch_equal(&d, dst));
        free(p);
    }
    agg_sketch_cleanup(&s);
    agg_sketch_cleanup(&d);
}

static void test_sketch_truncations(void **state)
{
    (void)state;
    struct rng r = {UINT64_C(0x5eed0005)};
    struct agg_sketch src, dst;
    agg_sketch_init(&src);
    agg_sketch_init(&dst);
    for (int i = 0; i < 50; i++)
        assert_int_equal(agg_sketch_add(&dst, rng_normal(&r)), EL_OK);
    static const size_t sizes[] = {0, 1, 5, 300, 1000};
    for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
        agg_sketch_reset(&src);
        for (size_t i = 0; i < sizes[t]; i++)
            assert_int_equal(agg_sketch_add(&src, dist_value(D_WIDE_SIGNED, &r)), EL_OK);
        if (t == 2)
            assert_int_equal(agg_sketch_add(&src, 0.0), EL_OK);
        size_t len;
        uint8_t *b = blob_of(&src, &len);
        check_truncations(b, len, &dst);
        free(b);
    }
    /* no buffer at all */
    struct agg_sketch s;
    agg_sketch_init(&s);
    assert_int_equal(agg_sketch_deserialize(&s, NULL, 0), EL_CORRUPT);
    assert_int_equal(agg_sketch_merge_serialized(&dst, NULL, 0), EL_CORRUPT);
    agg_sketch_cleanup(&s);
    agg_sketch_cleanup(&src);
    agg_sketch_cleanup(&dst);
}

struct bad_blob {
    const char *name;
    size_t len;
    uint8_t b[24];
};

/* A valid key: zigzag(2048) = 4096 = varint 0x80 0x20 (index 0, value 1). */
static const struct bad_blob bad_blobs[] = {
    {"version 0", 4, {0, 0, 0, 0}},
    {"version 2", 4, {2, 0, 0, 0}},
    {"version 255", 4, {255, 0, 0, 0}},
    {"count mismatch (too big)", 7, {1, 2, 0, 1, 0x80, 0x20, 1}},
    {"count mismatch (too small)", 7, {1, 1, 0, 1, 0x80, 0x20, 2}},
    {"zero_count > count", 4, {1, 1, 2, 0}},
    {"zeros not counted", 4, {1, 0, 1, 0}},
    {"n_bins > max", 5, {1, 0, 0, 0x81, 0x40}},
    {"n_bins beyond data", 7, {1, 1, 0, 2, 0x80, 0x20, 1}},
    {"empty bin", 7, {1, 0, 0, 1, 0x80, 0x20, 0}},
    {"duplicate key", 9, {1, 2, 0, 2, 0x80, 0x20, 1, 0, 1}},
    {"key 0", 6, {1, 1, 0, 1, 0, 1}},
    {"key 1 (below range)", 6, {1, 1, 0, 1, 2, 1}},
    {"key -1 (below range)", 6, {1, 1, 0, 1, 1, 1}},
    {"key above range", 8, {1, 1, 0, 1, 0x80, 0x80, 0x10, 1}},
    {"key beyond int32", 10, {1, 1, 0, 1, 0x80, 0x80, 0x80, 0x80, 0x10, 1}},
    {"delta out of range", 11, {1, 2, 0, 2, 0x80, 0x20, 1, 0x80, 0x80, 0x04, 1}},
    {"bin count > UINT32_MAX", 11, {1, 0, 0, 1, 0x80, 0x20, 0x80, 0x80, 0x80, 0x80, 0x10}},
    {"trailing byte", 5, {1, 0, 0, 0, 0}},
    {"overlong varint 0", 5, {1, 0x80, 0x00, 0, 0}},
    {"overlong varint 1", 5, {1, 0x81, 0x00, 1, 0}},
    {"varint of 11 bytes",
     15,
     {1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0, 0, 0}},
    {"varint beyond 64 bits",
     13,
     {1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0}},
    {"truncated varint", 3, {1, 0, 0x80}},
};

static void test_sketch_corrupt_blobs(void **state)
{
    (void)state;
    /* the valid neighbours of the table: so the table tests what it says */
    static const uint8_t good1[] = {1, 1, 0, 1, 0x80, 0x20, 1};
    static const uint8_t good2[] = {1, 5, 2, 2, 0x80, 0x20, 1, 1, 2};
    static const uint8_t good3[] = {1,    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                    0xff, 0xff, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff,
                                    0xff, 0xff, 0xff, 0xff, 0x01, 0};
    struct agg_sketch s, d, d_before;
    agg_sketch_init(&s);
    agg_sketch_init(&d);
    agg_sketch_init(&d_before);
    assert_int_equal(agg_sketch_deserialize(&s, good1, sizeof good1), EL_OK);
    assert_true(s.count == 1 && s.n_bins == 1 && s.bins[0].key == AGG_SKETCH_KEY_OFFSET);
    assert_true(fabs(agg_sketch_quantile(&s, 0.5) - 1.0) <= AGG_SKETCH_ALPHA);
    assert_int_equal(agg_sketch_deserialize(&s, good2, sizeof good2), EL_OK);
    assert_true(s.count == 5 && s.zero_count == 2 && s.bins[1].count == 2);
    assert_int_equal(agg_sketch_deserialize(&s, good3, sizeof good3), EL_OK);
    assert_true(s.count == UINT64_MAX && s.zero_count == UINT64_MAX);

    for (int i = 0; i < 10; i++)
        assert_int_equal(agg_sketch_add(&d, (double)i - 4.5), EL_OK);
    assert_int_equal(agg_sketch_merge(&d_before, &d), EL_OK);
    for (size_t k = 0; k < sizeof bad_blobs / sizeof bad_blobs[0]; k++) {
        const struct bad_blob *bb = &bad_blobs[k];
        uint8_t *p = malloc(bb->len);
        assert_non_null(p);
        memcpy(p, bb->b, bb->len);
        el_status st = agg_sketch_deserialize(&s, p, bb->len);
        if (st != EL_CORRUPT) {
            print_error("%s: status %d\n", bb->name, (int)st);
            fail();
        }
        assert_int_equal(s.count, 0);
        assert_int_equal(agg_sketch_merge_serialized(&d, p, bb->len), EL_CORRUPT);
        assert_true(sketch_equal(&d, &d_before));
        free(p);
    }
    agg_sketch_cleanup(&s);
    agg_sketch_cleanup(&d);
    agg_sketch_cleanup(&d_before);
}

/* Random byte mutations: never a crash; accepted blobs are canonical and valid. */
static void test_sketch_mutations(void **state)
{
    (void)state;
    struct rng r = {UINT64_C(0x5eed0006)};
    struct agg_sketch src, s, d;
    agg_sketch_init(&src);
    agg_sketch_init(&s);
    agg_sketch_init(&d);
    for (int i = 0; i < 40; i++)
        assert_int_equal(agg_sketch_add(&src, dist_value(D_CROSS_ZERO, &r)), EL_OK);
    size_t len;
    uint8_t *blob = blob_of(&src, &len);
    size_t accepted = 0;
    uint8_t *scratch = malloc(len);
    assert_non_null(scratch);
    for (int t = 0; t < 20000; t++) {
        memcpy(scratch, blob, len);
        int flips = 1 + (int)rng_below(&r, 3);
        for (int f = 0; f < flips; f++) {
            size_t at = (size_t)rng_below(&r, len);
            if (rng_below(&r, 2))
                scratch[at] ^= (uint8_t)(1u << rng_below(&r, 8));
            else
                scratch[at] = (uint8_t)rng_next(&r);
        }
        size_t plen = len - (rng_below(&r, 4) == 0 ? (size_t)rng_below(&r, len) : 0);
        uint8_t *p = malloc(plen); /* exact size: ASan sees over-reads */
        assert_non_null(p);
        memcpy(p, scratch, plen);
        el_status st = agg_sketch_deserialize(&s, p, plen);
        agg_sketch_reset(&d);
        el_status st2 = agg_sketch_merge_serialized(&d, p, plen);
        assert_int_equal(st, st2);
        if (st == EL_OK) {
            accepted++;
            assert_true(sketch_valid(&s));
            assert_true(sketch_equal(&s, &d));
            assert_int_equal(agg_sketch_serialized_size(&s), plen);
            uint8_t *again = malloc(plen);
            assert_non_null(again);
            assert_int_equal(agg_sketch_serialize(&s, again, plen), plen);
            assert_memory_equal(again, p, plen);
            free(again);
        } else {
            assert_int_equal(st, EL_CORRUPT);
        }
        free(p);
    }
    assert_true(accepted > 0); /* some flips (a bin count byte) stay valid */
    free(scratch);
    free(blob);
    agg_sketch_cleanup(&src);
    agg_sketch_cleanup(&s);
    agg_sketch_cleanup(&d);
}

/* ---- limits ---- */

static void test_sketch_bin_cap(void **state)
{
    (void)state;
    struct agg_sketch s, before, other;
    agg_sketch_init(&s);
    agg_sketch_init(&before);
    agg_sketch_init(&other);
    /* ratio 1.03 > gamma: every value gets its own bin */
    double v = 1.0;
    for (int i = 0; i < AGG_SKETCH_MAX_BINS; i++, v *= 1.03)
        assert_int_equal(agg_sketch_add(&s, v), EL_OK);
    assert_int_equal(s.n_bins, AGG_SKETCH_MAX_BINS);
    assert_int_equal(agg_sketch_merge(&before, &s), EL_OK);
    assert_int_equal(agg_sketch_add(&s, v), EL_NOMEM);
    assert_int_equal(agg_sketch_add(&s, -1.0), EL_NOMEM);
    assert_true(sketch_equal(&s, &before));
    assert_int_equal(agg_sketch_add(&s, 1.0), EL_OK); /* an existing bin still counts */
    assert_int_equal(agg_sketch_add(&s, 0.0), EL_OK); /* and the zero bucket */
    assert_int_equal(s.count, AGG_SKETCH_MAX_BINS + 2);

    /* merges beyond the cap: EL_NOMEM, dst unchanged */
    agg_sketch_reset(&before);
    assert_int_equal(agg_sketch_merge(&before, &s), EL_OK);
    assert_int_equal(agg_sketch_add(&other, 1.0), EL_OK);
    assert_int_equal(agg_sketch_add(&other, -3.0), EL_OK);
    assert_int_equal(agg_sketch_merge(&s, &other), EL_NOMEM);
    assert_true(sketch_equal(&s, &before));
    size_t len;
    uint8_t *b = blob_of(&other, &len);
    assert_int_equal(agg_sketch_merge_serialized(&s, b, len), EL_NOMEM);
    assert_true(sketch_equal(&s, &before));
    free(b);
    /* a full sketch still round-trips */
    b = blob_of(&s, &len);
    agg_sketch_reset(&other);
    assert_int_equal(agg_sketch_deserialize(&other, b, len), EL_OK);
    assert_true(sketch_equal(&other, &s));
    free(b);
    agg_sketch_cleanup(&s);
    agg_sketch_cleanup(&before);
    agg_sketch_cleanup(&other);
}

static void test_sketch_count_overflow(void **state)
{
    (void)state;
    /* one bin holding UINT32_MAX values of 1.0 (key 2048, zigzag 4096) */
    static const uint8_t full[] = {1,    0xff, 0xff, 0xff, 0xff, 0x0f, 0,   1,
                                   0x80, 0x20, 0xff, 0xff, 0xff, 0xff, 0x0f};
    struct agg_sketch s, t, before;
    agg_sketch_init(&s);
    agg_sketch_init(&t);
    agg_sketch_init(&before);
    assert_int_equal(agg_sketch_deserialize(&s, full, sizeof full), EL_OK);
    assert_true(s.count == UINT32_MAX && s.bins[0].count == UINT32_MAX);
    assert_int_equal(agg_sketch_merge(&before, &s), EL_OK);
    assert_int_equal(agg_sketch_add(&s, 1.0), EL_NOMEM);
    assert_true(sketch_equal(&s, &before));
    assert_int_equal(agg_sketch_add(&s, 2.0), EL_OK);
    assert_int_equal(agg_sketch_merge(&s, &before), EL_NOMEM);
    assert_int_equal(agg_sketch_merge_serialized(&s, full, sizeof full), EL_NOMEM);
    assert_int_equal(agg_sketch_merge(&s, &s), EL_NOMEM);
    assert_int_equal(s.count, (uint64_t)UINT32_MAX + 1);
    assert_int_equal(agg_sketch_add(&t, 1.0), EL_OK);
    assert_int_equal(agg_sketch_merge(&t, &before), EL_NOMEM);
    assert_int_equal(t.count, 1);
    agg_sketch_cleanup(&s);
    agg_sketch_cleanup(&t);
    agg_sketch_cleanup(&before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ref_fsum_self),
        cmocka_unit_test(test_agg_basics),
        cmocka_unit_test(test_agg_random),
        cmocka_unit_test(test_agg_adversarial),
        cmocka_unit_test(test_rank_and_exact),
        cmocka_unit_test(test_sketch_basics),
        cmocka_unit_test(test_sketch_accuracy_range),
        cmocka_unit_test(test_sketch_random),
        cmocka_unit_test(test_sketch_truncations),
        cmocka_unit_test(test_sketch_corrupt_blobs),
        cmocka_unit_test(test_sketch_mutations),
        cmocka_unit_test(test_sketch_bin_cap),
        cmocka_unit_test(test_sketch_count_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
