/*
 * agg — mergeable aggregates, the one definition of "mean" and "p95" shared
 * by the speed layer (RAM rings), the batch layer (views in SQLite) and the
 * serving layer (merging both), so the layers can never disagree.
 *
 * struct agg (fixed size, no heap): count; sum as a double-double (sum_hi +
 * sum_lo, error-free TwoSum accumulation, so sums merged in any order match
 * a correctly rounded sum of the same values); min; max; mean and m2
 * (Welford / Chan et al. parallel merge: numerically stable population
 * variance); last value with its event time and sequence (greatest event
 * time wins, ties broken by the greater sequence).
 *   Limits: the double-double carries about 106 bits below the leading bit
 *   of the running sum, so agg_sum is the correctly rounded sum unless a
 *   partial sum holds bits spanning more than that and then cancels away:
 *   1e16 + 1 - 1e16 is exact in any grouping, but 1e20 + 0.1 + 0.2 + ... +
 *   1.0 - 1e20 gives 5.5000000000000009, not 5.5. A partial sum that
 *   overflows (|sum| > DBL_MAX, e.g. 1e308 + 1e308, whatever the values that
 *   follow) makes the sum +-inf (NaN if both signs overflowed) for good, like
 *   math.fsum's "intermediate overflow": a finite agg_sum is never silently
 *   wrong. m2 is a plain double: deviations beyond ~1e150 overflow it (stddev
 *   inf) and below ~1e-150 underflow it. Non-finite values are ignored by
 *   agg_add (not counted); the decoder never passes them.
 *
 * struct agg_sketch: a DDSketch-style quantile sketch with relative accuracy
 * AGG_SKETCH_ALPHA (1%): positive and negative values map to logarithmic
 * bins of ratio gamma = (1+a)/(1-a); |v| < AGG_SKETCH_MIN_ABS counts as
 * zero. Sparse sorted bins in a heap array that grows up to
 * AGG_SKETCH_MAX_BINS (never per message on the hot path: the speed layer
 * does not keep sketches; batch and serving do). Quantiles are nearest-rank
 * (rank = ceil(q*n)), returned as the bin's representative value, within
 * relative error alpha of the true nearest-rank value. Serialisable to a
 * compact, versioned, endian-independent blob for batch views.
 *   Mapping: a = AGG_SKETCH_ALPHA * (1 - 2^-24) (the hair under alpha absorbs
 *   the rounding of log/exp near bin edges, so the bound alpha holds
 *   strictly); index i = ceil(ln|v| / ln gamma), i.e. gamma^(i-1) < |v| <=
 *   gamma^i; i lies in [-1036, 35488] for |v| in [AGG_SKETCH_MIN_ABS,
 *   DBL_MAX]. Representative value 2 gamma^i / (gamma+1) (clamped to
 *   DBL_MAX), sign restored. A value whose true rank falls in the zero bucket
 *   is answered 0 (absolute error < AGG_SKETCH_MIN_ABS).
 *   Key encoding: key = +(AGG_SKETCH_KEY_OFFSET + i) for v > 0 and
 *   -(AGG_SKETCH_KEY_OFFSET + i) for v < 0; every key is nonzero, and
 *   ascending key order is ascending value order (most negative value
 *   first), so negatives, the zero bucket (between them) and positives live
 *   in one sorted array and merge in one pass.
 *   At a limit (a new bin beyond AGG_SKETCH_MAX_BINS, a bin count beyond
 *   UINT32_MAX, allocation failure) add and merge return EL_NOMEM and leave
 *   the sketch unchanged: the caller falls back to exact quantiles.
 *
 * SERIALISED SKETCH (version 1; varint = unsigned LEB128, canonical: at most
 * 10 bytes, no redundant trailing 0x80/0x00 groups):
 *
 *   u8      version                 1 (implies the mapping above: alpha,
 *                                   MIN_ABS, KEY_OFFSET; change any -> bump)
 *   varint  count                   all values, zeros included
 *   varint  zero_count              <= count
 *   varint  n_bins                  <= AGG_SKETCH_MAX_BINS
 *   n_bins times, in strictly ascending key order:
 *     varint  key                   first bin: zigzag(key) = (key << 1) ^
 *                                   (key >> 31); later bins: key - previous
 *                                   key (>= 1)
 *     varint  count                 1 .. UINT32_MAX
 *
 * Decoding rejects with EL_CORRUPT: truncation, trailing bytes, another
 * version, a non-canonical varint, a key outside the mapping's range,
 * duplicate keys (delta 0), an empty bin, and count != zero_count + the sum
 * of the bin counts. Nothing is read past len. Every valid sketch has
 * exactly one encoding, so decode-then-encode returns the same bytes.
 *
 * Threading: pure data structures; callers own them.
 */
#ifndef EL_AGG_H
#define EL_AGG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "el_status.h"

#define AGG_SKETCH_ALPHA 0.01
#define AGG_SKETCH_MIN_ABS 1e-9
#define AGG_SKETCH_MAX_BINS 8192
#define AGG_SKETCH_KEY_OFFSET 2048 /* see "Key encoding" above */
#define AGG_SKETCH_VERSION 1

struct agg {
    uint64_t count;
    double sum_hi, sum_lo;
    double min, max;
    double mean, m2;
    double last_value;
    int64_t last_ts_ms;
    int64_t last_seq;
};

/* Empty: count 0, sums 0, min +inf, max -inf, mean/m2 0, last_value NaN,
 * last_ts_ms INT64_MIN, last_seq -1. */
void agg_init(struct agg *a);
/* Adds one event; a non-finite v is ignored (not counted). */
void agg_add(struct agg *a, double v, int64_t ts_ms, int64_t seq);
/* dst += src; src may be dst; merging an empty agg is a no-op. Commutative
 * and associative for count/min/max/last/sum (within the limits above). */
void agg_merge(struct agg *dst, const struct agg *src);
/* agg_mean is sum/count (the Welford mean if the sum overflowed). */
double agg_sum(const struct agg *a);    /* 0 when empty */
double agg_mean(const struct agg *a);   /* NaN when empty */
double agg_stddev(const struct agg *a); /* population; NaN when empty */

struct agg_bin {
    int32_t key;
    uint32_t count;
};

struct agg_sketch {
    uint64_t count;      /* all values, zeros included */
    uint64_t zero_count; /* |v| < AGG_SKETCH_MIN_ABS */
    uint32_t n_bins, cap;
    struct agg_bin *bins; /* sorted by key; owned, malloc'ed */
};

void agg_sketch_init(struct agg_sketch *s);
/* Frees the bins and leaves s empty (as after init); NULL is accepted. */
void agg_sketch_cleanup(struct agg_sketch *s);
void agg_sketch_reset(struct agg_sketch *s); /* empties, keeps memory */
/* EL_NOMEM if memory fails or more than AGG_SKETCH_MAX_BINS bins would be needed
 * (or a bin would pass UINT32_MAX); EL_INVAL for a non-finite v. On any error s is
 * unchanged. */
EL_MUST_CHECK el_status agg_sketch_add(struct agg_sketch *s, double v);
/* dst += src (src may be dst); one sorted pass, no temporary. EL_NOMEM as for add;
 * on error dst is unchanged. */
EL_MUST_CHECK el_status agg_sketch_merge(struct agg_sketch *dst, const struct agg_sketch *src);
/* Nearest-rank quantile, q in [0,1] (clamped; rank as agg_quantile_rank); NaN when
 * empty or q is NaN. */
double agg_sketch_quantile(const struct agg_sketch *s, double q);

/* Serialised sizes and codecs (format above: versioned, byte-oriented, so
 * endian-independent). serialize writes agg_sketch_serialized_size(s) bytes and
 * returns that size, or writes nothing and returns 0 when len is too small. */
size_t agg_sketch_serialized_size(const struct agg_sketch *s);
size_t agg_sketch_serialize(const struct agg_sketch *s, uint8_t *buf, size_t len);
/* Replaces the contents of s (initialised by the caller; its memory is reused).
 * EL_CORRUPT for an invalid blob, EL_NOMEM if memory fails; on error s is empty. */
EL_MUST_CHECK el_status agg_sketch_deserialize(struct agg_sketch *s, const uint8_t *buf,
                                               size_t len);
/* Merges a serialised sketch into dst without materialising it (validates the
 * whole blob first, then one in-place merge pass). EL_CORRUPT for an invalid
 * blob, EL_NOMEM as for agg_sketch_merge; on error dst is unchanged. */
EL_MUST_CHECK el_status agg_sketch_merge_serialized(struct agg_sketch *dst, const uint8_t *buf,
                                                    size_t len);

/* Exact nearest-rank quantile of raw values (sorts vals in place); NaN if n == 0
 * or q is NaN. q = 0 gives the minimum, q = 1 the maximum. */
double agg_quantile_exact(double *vals, size_t n, double q);

/* The nearest rank both quantile functions use: 1-based, ceil(q*n) clamped to
 * [1, n], where a product q*n within a few ulps of an integer counts as that
 * integer (so q = 0.07, n = 100 gives rank 7 although 0.07*100 rounds to
 * 7.000000000000001). 0 when n == 0; q <= 0 or NaN gives 1. */
uint64_t agg_quantile_rank(uint64_t n, double q);

#endif
