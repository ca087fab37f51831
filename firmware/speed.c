/*
 * speed — per-series rings of event-time buckets and raw samples (design in
 * speed.h).
 *
 * Ownership: struct speed owns three arrays allocated in speed_new:
 * buckets[max_series * slots], raw[max_series * raw_samples], series[max_series].
 */
#include "speed.h"

#include <stdlib.h>

#include "plat_align.h"
#include <string.h>

#define EMPTY INT64_MIN

struct speed_bucket {
    int64_t start_ms; /* EMPTY: unused */
    struct agg a;
};

struct speed_series {
    int64_t newest_start_ms; /* EMPTY: no ring data yet */
    uint32_t raw_pos, raw_n;
    struct speed_totals totals;
};

struct speed {
    uint32_t max_series, slots, raw_samples;
    int64_t bucket_ms;
    struct speed_bucket *buckets;
    struct speed_raw *raw;
    struct speed_series *series;
    size_t memory_bytes;
    uint64_t out_of_window;
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
    size_t nb = (size_t)max_series * slots, nr = (size_t)max_series * raw_samples;
    sp->buckets = calloc(nb, sizeof sp->buckets[0]);
    sp->raw = calloc(nr, sizeof sp->raw[0]);
    sp->series = calloc(max_series, sizeof sp->series[0]);
    if (!sp->buckets || !sp->raw || !sp->series) {
        speed_free(sp);
        return EL_NOMEM;
    }
    /* EMPTY is not all-zero bits: only the per-series state needs it; a
     * bucket is valid only if its start matches, and start 0 can only be
     * matched by an event in 1970, which the decoder rejects. */
    for (uint32_t i = 0; i < max_series; i++) {
        sp->series[i].newest_start_ms = EMPTY;
        sp->series[i].totals.last_ts_ms = EMPTY;
        sp->series[i].totals.last_seq = -1;
    }
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

uint64_t speed_out_of_window(const struct speed *sp)
{
    return sp->out_of_window;
}

static struct speed_bucket *slot_of(const struct speed *sp, uint32_t id, int64_t start)
{
    uint64_t k = (uint64_t)plat_floor_div(start, sp->bucket_ms) % sp->slots;
    return &sp->buckets[(size_t)(id - 1) * sp->slots + k];
}

static int64_t window_start(const struct speed *sp, const struct speed_series *s)
{
    if (s->newest_start_ms == EMPTY)
        return INT64_MAX;
    return s->newest_start_ms - (int64_t)(sp->slots - 1) * sp->bucket_ms;
}

void speed_add(struct speed *sp, uint32_t id, int64_t ts_ms, double value, int64_t seq)
{
    if (id == 0 || id > sp->max_series)
        return;
    struct speed_series *s = &sp->series[id - 1];
    int64_t start = plat_align_down(ts_ms, sp->bucket_ms);

    /* totals and raw ring: every event */
    s->totals.count++;
    if (ts_ms > s->totals.last_ts_ms ||
        (ts_ms == s->totals.last_ts_ms && seq > s->totals.last_seq)) {
        s->totals.last_ts_ms = ts_ms;
        s->totals.last_seq = seq;
        s->totals.last_value = value;
    }
    struct speed_raw *r = &sp->raw[(size_t)(id - 1) * sp->raw_samples + s->raw_pos];
    r->ts_ms = ts_ms;
    r->seq = seq;
    r->value = value;
    s->raw_pos = (s->raw_pos + 1) % sp->raw_samples;
    if (s->raw_n < sp->raw_samples)
        s->raw_n++;

    /* bucket ring: only inside the window */
    if (s->newest_start_ms == EMPTY || start > s->newest_start_ms)
        s->newest_start_ms = start;
    else if (start < window_start(sp, s)) {
        sp->out_of_window++;
        return;
    }
    struct speed_bucket *b = slot_of(sp, id, start);
    if (b->start_ms != start) {
        b->start_ms = start; /* stale slot from an older lap of the ring */
        agg_init(&b->a);
    }
    agg_add(&b->a, value, ts_ms, seq);
}

void speed_add_count(struct speed *sp, uint32_t id, uint64_t count)
{
    if (id == 0 || id > sp->max_series)
        return;
    sp->series[id - 1].totals.count += count;
}

int64_t speed_window_start(const struct speed *sp, uint32_t id)
{
    if (id == 0 || id > sp->max_series)
        return INT64_MAX;
    return window_start(sp, &sp->series[id - 1]);
}

void speed_collect(const struct speed *sp, uint32_t id, int64_t from_ms, int64_t to_ms,
                   int64_t base_ms, int64_t step_ms, struct agg *out, size_t n_out)
{
    if (id == 0 || id > sp->max_series)
        return;
    const struct speed_series *s = &sp->series[id - 1];
    if (s->newest_start_ms == EMPTY)
        return;
    int64_t lo = from_ms > window_start(sp, s) ? from_ms : window_start(sp, s);
    int64_t hi =
        to_ms < s->newest_start_ms + sp->bucket_ms ? to_ms : s->newest_start_ms + sp->bucket_ms;
    for (int64_t t = lo; t + sp->bucket_ms <= hi; t += sp->bucket_ms) {
        const struct speed_bucket *b = slot_of(sp, id, t);
        if (b->start_ms != t || b->a.count == 0)
            continue;
        int64_t k = plat_floor_div(t - base_ms, step_ms);
        if (k < 0 || (uint64_t)k >= n_out)
            continue;
        agg_merge(&out[k], &b->a);
    }
}

size_t speed_raw_values(const struct speed *sp, uint32_t id, int64_t from_ms, int64_t to_ms,
                        double *vals, size_t cap, bool *complete)
{
    size_t n = 0;
    uint64_t in_ring = 0;
    *complete = false;
    if (id == 0 || id > sp->max_series)
        return 0;
    const struct speed_series *s = &sp->series[id - 1];
    const struct speed_raw *base = &sp->raw[(size_t)(id - 1) * sp->raw_samples];
    for (uint32_t i = 0; i < s->raw_n; i++) {
        const struct speed_raw *r = &base[i];
        if (r->ts_ms >= from_ms && r->ts_ms < to_ms) {
            if (n < cap)
                vals[n] = r->value;
            n++;
        }
    }
    /* Complete iff the ring buckets count exactly as many events in the
     * range: then no event of the range fell out of the raw ring. */
    if (from_ms >= window_start(sp, s)) {
        for (int64_t t = from_ms; t < to_ms; t += sp->bucket_ms) {
            const struct speed_bucket *b = slot_of(sp, id, t);
            if (b->start_ms == t)
                in_ring += b->a.count;
        }
        *complete = in_ring == n && n <= cap;
    }
    return n < cap ? n : cap;
}

size_t speed_last(const struct speed *sp, uint32_t id, struct speed_raw *out, size_t cap)
{
    if (id == 0 || id > sp->max_series)
        return 0;
    const struct speed_series *s = &sp->series[id - 1];
    const struct speed_raw *base = &sp->raw[(size_t)(id - 1) * sp->raw_samples];
    size_t n = 0;
    for (uint32_t i = 0; i < s->raw_n && n < cap; i++) {
        uint32_t k = (s->raw_pos + sp->raw_samples - 1 - i) % sp->raw_samples;
        out[n++] = base[k];
    }
    return n;
}

const struct speed_totals *speed_totals(const struct speed *sp, uint32_t id)
{
    if (id == 0 || id > sp->max_series)
        return NULL;
    return &sp->series[id - 1].totals;
}
