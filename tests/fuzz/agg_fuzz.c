/*
 * agg_fuzz — libFuzzer target for the aggregates and the quantile sketch
 * (storage/agg.c).
 *
 * Each input is used twice. Invariants (abort on violation):
 *   As a serialised sketch:
 *   - agg_sketch_deserialize returns EL_OK or EL_CORRUPT (EL_NOMEM only if
 *     malloc fails); on failure the sketch is empty;
 *   - on EL_OK the sketch is well formed (keys strictly ascending and
 *     nonzero, no empty bin, count = zero_count + the bin counts), its
 *     serialised size is the input size and re-serialising gives the input
 *     bytes; quantiles are non-decreasing in q;
 *   - agg_sketch_merge_serialized into a non-empty sketch fails exactly when
 *     decoding fails (EL_CORRUPT, destination unchanged) or reports EL_NOMEM
 *     exactly when agg_sketch_merge of the decoded sketch does; on success
 *     both give the same bins.
 *   As native-endian doubles (trailing bytes ignored):
 *   - agg_add counts exactly the finite values; min, max and last equal a
 *     plain reference; min <= mean <= max (within rounding); stddev is not
 *     NaN; the merge of two halves equals the whole for count/min/max/last;
 *   - agg_sketch_add accepts exactly the finite values (EL_INVAL otherwise);
 *     quantiles 0 and 1 are within AGG_SKETCH_ALPHA of min and max (0 when
 *     in the zero bucket); the merge of the halves has the bins of the
 *     whole; the sketch round-trips through its serialised form.
 * Runs under libFuzzer (clang -fsanitize=fuzzer) or tests/fuzz/replay_main.c.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_VALUES 4096 /* < AGG_SKETCH_MAX_BINS */

static void check(bool ok)
{
    if (!ok)
        abort();
}

static bool sketch_well_formed(const struct agg_sketch *s)
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

static bool sketch_equal(const struct agg_sketch *a, const struct agg_sketch *b)
{
    if (a->count != b->count || a->zero_count != b->zero_count || a->n_bins != b->n_bins)
        return false;
    return a->n_bins == 0 || memcmp(a->bins, b->bins, a->n_bins * sizeof a->bins[0]) == 0;
}

/* dst = a copy of src (dst initialised). */
static void sketch_copy(struct agg_sketch *dst, const struct agg_sketch *src)
{
    agg_sketch_reset(dst);
    check(agg_sketch_merge(dst, src) == EL_OK);
}

/* Serialises s and checks that it decodes back to s. */
static void check_round_trip(const struct agg_sketch *s)
{
    size_t len = agg_sketch_serialized_size(s);
    uint8_t *buf = malloc(len);
    check(buf != NULL);
    check(agg_sketch_serialize(s, buf, len) == len);
    check(agg_sketch_serialize(s, buf, len - 1) == 0);
    struct agg_sketch back;
    agg_sketch_init(&back);
    check(agg_sketch_deserialize(&back, buf, len) == EL_OK);
    check(sketch_equal(&back, s));
    agg_sketch_cleanup(&back);
    free(buf);
}

static void check_quantiles_monotone(const struct agg_sketch *s)
{
    if (s->count == 0) {
        check(isnan(agg_sketch_quantile(s, 0.5)));
        return;
    }
    double prev = -INFINITY;
    for (int k = 0; k <= 20; k++) {
        double q = agg_sketch_quantile(s, k / 20.0);
        check(isfinite(q) && q >= prev);
        prev = q;
    }
}

static void fuzz_blob(const uint8_t *data, size_t size)
{
    struct agg_sketch s, dst, before, via_struct;
    agg_sketch_init(&s);
    agg_sketch_init(&dst);
    agg_sketch_init(&before);
    agg_sketch_init(&via_struct);

    el_status st = agg_sketch_deserialize(&s, data, size);
    check(st == EL_OK || st == EL_CORRUPT || st == EL_NOMEM);
    if (st == EL_OK) {
        check(sketch_well_formed(&s));
        check(agg_sketch_serialized_size(&s) == size);
        uint8_t *again = malloc(size);
        check(again != NULL);
        check(agg_sketch_serialize(&s, again, size) == size);
        check(memcmp(again, data, size) == 0);
        free(again);
        check_quantiles_monotone(&s);
    } else {
        check(s.count == 0 && s.n_bins == 0);
    }

    static const double seed_values[] = {-2.5, -1e-12, 0.0, 1.0, 1.0, 3.25, 1e10};
    for (size_t i = 0; i < sizeof seed_values / sizeof seed_values[0]; i++)
        check(agg_sketch_add(&dst, seed_values[i]) == EL_OK);
    sketch_copy(&before, &dst);
    el_status st2 = agg_sketch_merge_serialized(&dst, data, size);
    if (st == EL_CORRUPT) {
        check(st2 == EL_CORRUPT);
        check(sketch_equal(&dst, &before));
    } else if (st == EL_OK) {
        sketch_copy(&via_struct, &before);
        el_status st3 = agg_sketch_merge(&via_struct, &s);
        check(st2 == st3 && (st2 == EL_OK || st2 == EL_NOMEM));
        if (st2 == EL_OK) {
            check(sketch_well_formed(&dst));
            check(sketch_equal(&dst, &via_struct));
        } else {
            check(sketch_equal(&dst, &before));
        }
    }

    agg_sketch_cleanup(&s);
    agg_sketch_cleanup(&dst);
    agg_sketch_cleanup(&before);
    agg_sketch_cleanup(&via_struct);
}

/* The sketch's answer for an extreme value x (a min or a max) is close to it. */
static bool sketch_close(double est, double x)
{
    if (fabs(x) < AGG_SKETCH_MIN_ABS)
        return est == 0.0;
    return fabs(est - x) <= AGG_SKETCH_ALPHA * fabs(x);
}

static void check_agg_vs_ref(const struct agg *a, uint64_t n, double min, double max, double last)
{
    check(a->count == n);
    if (n == 0) {
        check(isnan(agg_mean(a)) && isnan(agg_stddev(a)));
        return;
    }
    check(a->min == min && a->max == max && a->min <= a->max);
    check(a->last_value == last);
    double mean = agg_mean(a);
    double slack_lo = fabs(min) * 1e-9 + 1e-300, slack_hi = fabs(max) * 1e-9 + 1e-300;
    check(!isnan(mean) && mean >= min - slack_lo && mean <= max + slack_hi);
    double sd = agg_stddev(a);
    check(!isnan(sd) && sd >= 0.0);
}

static void fuzz_values(const uint8_t *data, size_t size)
{
    size_t n = size / sizeof(double);
    if (n > MAX_VALUES)
        n = MAX_VALUES;
    struct agg whole, half[2];
    struct agg_sketch sk, sk_half[2];
    agg_init(&whole);
    agg_init(&half[0]);
    agg_init(&half[1]);
    agg_sketch_init(&sk);
    agg_sketch_init(&sk_half[0]);
    agg_sketch_init(&sk_half[1]);

    uint64_t finite = 0;
    double min = INFINITY, max = -INFINITY, last = NAN;
    int64_t last_ts = INT64_MIN, last_seq = -1;
    for (size_t i = 0; i < n; i++) {
        double v;
        memcpy(&v, data + i * sizeof v, sizeof v);
        int64_t ts = (int64_t)(data[i * sizeof v] % 5); /* few distinct times: ties */
        int64_t seq = (int64_t)(i * 7919 % 4099);       /* unique, not monotone */
        agg_add(&whole, v, ts, seq);
        agg_add(&half[i % 2], v, ts, seq);
        el_status st = agg_sketch_add(&sk, v);
        if (!isfinite(v)) {
            check(st == EL_INVAL);
            continue;
        }
        check(st == EL_OK); /* MAX_VALUES < AGG_SKETCH_MAX_BINS: no limit is reachable */
        check(agg_sketch_add(&sk_half[i % 2], v) == EL_OK);
        finite++;
        min = fmin(min, v);
        max = fmax(max, v);
        if (ts > last_ts || (ts == last_ts && seq > last_seq)) {
            last_ts = ts;
            last_seq = seq;
            last = v;
        }
    }
    check_agg_vs_ref(&whole, finite, min, max, last);
    agg_merge(&half[0], &half[1]);
    check_agg_vs_ref(&half[0], finite, min, max, last);

    check(sketch_well_formed(&sk));
    check(sk.count == finite);
    if (finite > 0) {
        check(sketch_close(agg_sketch_quantile(&sk, 0.0), min));
        check(sketch_close(agg_sketch_quantile(&sk, 1.0), max));
    }
    check(agg_sketch_merge(&sk_half[0], &sk_half[1]) == EL_OK);
    check(sketch_equal(&sk_half[0], &sk));
    check_quantiles_monotone(&sk);
    check_round_trip(&sk);

    agg_sketch_cleanup(&sk);
    agg_sketch_cleanup(&sk_half[0]);
    agg_sketch_cleanup(&sk_half[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_blob(data, size);
    fuzz_values(data, size);
    return 0;
}
