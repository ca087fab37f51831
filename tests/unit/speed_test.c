/* Unit tests of the speed layer (firmware/speed): ring windows, late data,
 * raw-sample completeness, the provisional lane, no heap allocation per
 * event, and readers racing the writer (every read exact for its cursor;
 * run under ThreadSanitizer by ./tools/check). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "speed.h"

#define T0 INT64_C(1767225600000) /* 2026-01-01, aligned to every bucket size used */
#define NB 16

struct cells {
    struct agg aggs[NB];
    uint8_t from[NB], need[NB];
    uint32_t lane_count[NB];
    double vals[256];
    uint32_t val_bucket[256];
    struct speed_cells c;
};

static void cells_init(struct cells *x)
{
    memset(x, 0, sizeof *x);
    for (int k = 0; k < NB; k++)
        agg_init(&x->aggs[k]);
    x->c.aggs = x->aggs;
    x->c.from = x->from;
    x->c.need_values = x->need;
    x->c.lane_count = x->lane_count;
    x->c.vals = x->vals;
    x->c.val_bucket = x->val_bucket;
    x->c.vals_cap = 256;
}

static struct speed_query range(int64_t from, int64_t to, int64_t base, int64_t step, size_t n,
                                bool values)
{
    struct speed_query q = {from, to, base, step, n, 0, values};
    return q;
}

static void test_buckets_and_window(void **state)
{
    struct speed *sp;
    struct cells x;
    struct speed_read rd;
    (void)state;
    assert_int_equal(speed_new(4, 10, 1000, 8, &sp), EL_OK);
    struct speed_query q = range(T0, T0 + 16000, T0, 1000, NB, false);
    cells_init(&x);
    speed_read_range(sp, 1, &q, &x.c, &rd);
    assert_true(rd.empty[SPEED_EVENTS] && rd.span_lo[SPEED_EVENTS] >= rd.span_hi[SPEED_EVENTS]);
    for (int i = 0; i < 30; i++)
        speed_add(sp, SPEED_EVENTS, 1, T0 + i * 500, (double)i, i + 1); /* 2 per 1 s bucket */
    speed_publish(sp, 30);
    /* newest bucket T0+14s; window = 10 slots: [T0+5s, ...) */
    cells_init(&x);
    speed_read_range(sp, 1, &q, &x.c, &rd);
    assert_int_equal(rd.seq, 30);
    assert_false(rd.empty[SPEED_EVENTS]);
    assert_true(rd.span_lo[SPEED_EVENTS] == T0 + 5000 && rd.span_hi[SPEED_EVENTS] == T0 + 16000);
    assert_int_equal(rd.events[SPEED_EVENTS], 20);
    for (int k = 5; k < 15; k++) {
        assert_int_equal(x.aggs[k].count, 2);
        assert_true(x.aggs[k].min == (double)(2 * k));
        assert_true(x.aggs[k].last_value == (double)(2 * k + 1));
        assert_true(x.from[k] == 1u << SPEED_EVENTS);
    }
    assert_int_equal(x.aggs[4].count, 0);
    /* a late event older than the window is not in the ring */
    speed_add(sp, SPEED_EVENTS, 1, T0, 99.0, 31);
    assert_int_equal(speed_out_of_window(sp), 1);
    /* a late event inside the window is */
    speed_add(sp, SPEED_EVENTS, 1, T0 + 5100, -1.0, 32);
    speed_publish(sp, 32);
    struct speed_query q10 = range(T0, T0 + 20000, T0, 10000, 2, false);
    cells_init(&x);
    speed_read_range(sp, 1, &q10, &x.c, &rd);
    assert_int_equal(x.aggs[0].count, 11);
    assert_true(x.aggs[0].min == -1.0);
    assert_int_equal(x.aggs[1].count, 10);
    struct speed_totals tot[SPEED_LANES];
    assert_int_equal(speed_read_totals(sp, 1, tot), 32);
    assert_int_equal(tot[SPEED_EVENTS].count, 32);
    assert_true(tot[SPEED_EVENTS].last_value == 29.0);
    /* times outside the domain never enter a ring */
    speed_add(sp, SPEED_EVENTS, 2, -5, 1.0, 33);
    speed_add(sp, SPEED_EVENTS, 2, SPEED_MAX_TS, 1.0, 34);
    assert_int_equal(speed_out_of_window(sp), 3);
    speed_free(sp);
}

static void test_raw_completeness(void **state)
{
    struct speed *sp;
    struct cells x;
    struct speed_read rd;
    (void)state;
    assert_int_equal(speed_new(2, 100, 1000, 4, &sp), EL_OK);
    for (int i = 0; i < 4; i++)
        speed_add(sp, SPEED_EVENTS, 2, T0 + i * 1000, (double)i, i + 1);
    speed_publish(sp, 4);
    struct speed_query q = range(T0, T0 + 5000, T0, 1000, 5, true);
    cells_init(&x);
    speed_read_range(sp, 2, &q, &x.c, &rd);
    assert_int_equal(x.c.n_vals, 4);
    for (int k = 0; k < 4; k++)
        assert_int_equal(x.need[k], 0);
    speed_add(sp, SPEED_EVENTS, 2, T0 + 4000, 4.0, 5); /* the raw ring (4) drops the oldest */
    speed_publish(sp, 5);
    cells_init(&x);
    speed_read_range(sp, 2, &q, &x.c, &rd);
    /* bucket 0 lost its raw sample: flagged, its value not kept; the rest complete */
    assert_int_equal(x.need[0], 1u << SPEED_EVENTS);
    assert_int_equal(x.c.n_vals, 4);
    for (size_t i = 0; i < x.c.n_vals; i++)
        assert_true(x.val_bucket[i] >= 1 && x.vals[i] == (double)x.val_bucket[i]);
    struct speed_raw last[3];
    bool prov[3];
    int64_t cur = -1;
    assert_int_equal(speed_read_last(sp, 2, last, prov, 3, &cur), 3);
    assert_int_equal(cur, 5);
    assert_true(last[0].value == 4.0 && last[1].value == 3.0 && last[2].value == 2.0);
    assert_false(prov[0]);
    speed_free(sp);
}

static void test_provisional_lane(void **state)
{
    struct speed *sp;
    struct cells x;
    struct speed_read rd;
    (void)state;
    assert_int_equal(speed_new(2, 60, 1000, 8, &sp), EL_OK);
    /* a board clock in 1970 (a Pi without RTC): receive times near 0 */
    for (int i = 0; i < 5; i++)
        speed_add(sp, SPEED_PROVISIONAL, 1, 100000 + i * 100, (double)i, i + 1);
    speed_add(sp, SPEED_EVENTS, 1, T0, 7.0, 6);
    speed_publish(sp, 6);
    struct speed_query q = range(99000, 102000, 99000, 1000, 3, false);
    cells_init(&x);
    speed_read_range(sp, 1, &q, &x.c, &rd);
    assert_int_equal(rd.events[SPEED_PROVISIONAL], 5);
    assert_int_equal(x.aggs[1].count, 5);
    assert_true(x.from[1] == 1u << SPEED_PROVISIONAL);
    assert_true(x.aggs[1].min == 0.0 && x.aggs[1].max == 4.0); /* not merged with a zeroed slot */
    struct speed_raw last[8];
    bool prov[8];
    int64_t cur = -1;
    size_t n = speed_read_last(sp, 1, last, prov, 8, &cur);
    assert_int_equal(cur, 6);
    assert_int_equal(n, 6);
    assert_true(last[0].seq == 6 && !prov[0] && last[1].seq == 5 && prov[1]);
    /* anchoring rebuilds the lane */
    speed_epoch_begin(sp);
    assert_true(speed_epoch(sp) & 1);
    speed_lane_reset(sp, SPEED_PROVISIONAL);
    speed_epoch_end(sp);
    assert_false(speed_epoch(sp) & 1);
    cells_init(&x);
    speed_read_range(sp, 1, &q, &x.c, &rd);
    assert_int_equal(x.aggs[1].count, 0);
    assert_true(rd.empty[SPEED_PROVISIONAL]);
    speed_add(sp, SPEED_PROVISIONAL, 1, 100050, 9.0, 7); /* the same slot again: fresh */
    speed_publish(sp, 7);
    cells_init(&x);
    speed_read_range(sp, 1, &q, &x.c, &rd);
    assert_int_equal(x.aggs[1].count, 1);
    assert_true(x.aggs[1].min == 9.0);
    speed_free(sp);
}

static void test_no_allocation_per_event(void **state)
{
    struct speed *sp;
    (void)state;
    assert_int_equal(speed_new(1000, 600, 1000, 64, &sp), EL_OK);
    struct mallinfo2 before = mallinfo2();
    for (int64_t i = 0; i < 1000000; i++)
        speed_add(sp, SPEED_EVENTS, (uint32_t)(i % 1000) + 1, T0 + i * 7, (double)(i % 977), i + 1);
    struct mallinfo2 after = mallinfo2();
    assert_int_equal(before.uordblks, after.uordblks);
    assert_int_equal(before.hblkhd, after.hblkhd);
    assert_true(speed_memory_bytes(sp) > (size_t)2 * 1000 * 600 * sizeof(struct agg));
    speed_free(sp);
}

/* ---- readers racing the writer ----
 * The writer adds events of 4 series, value 1 each, one per ms of event
 * time, in commit batches of 7, publishing after each batch. A reader's
 * copy of a series must hold exactly the series' events with seq <= the
 * cursor it reports: count == (events of that series up to that seq). */

#define RACE_SERIES 4
#define RACE_EVENTS 200000

struct race {
    struct speed *sp;
    atomic_int done;
    atomic_long reads, bad;
};

static void *race_writer(void *arg)
{
    struct race *r = arg;
    for (int64_t seq = 1; seq <= RACE_EVENTS; seq++) {
        uint32_t id = (uint32_t)(seq % RACE_SERIES) + 1;
        speed_add(r->sp, SPEED_EVENTS, id, T0 + seq, 1.0, seq);
        if (seq % 7 == 0)
            speed_publish(r->sp, seq);
    }
    speed_publish(r->sp, RACE_EVENTS);
    atomic_store(&r->done, 1);
    return NULL;
}

/* Events of series id among seqs 1..c. */
static uint64_t expected(uint32_t id, int64_t c)
{
    int64_t rem = (int64_t)id - 1 == 0 ? RACE_SERIES : (int64_t)id - 1;
    return c >= rem ? (uint64_t)((c - rem) / RACE_SERIES + 1) : 0;
}

static void *race_reader(void *arg)
{
    struct race *r = arg;
    struct cells *x = malloc(sizeof *x);
    /* one bucket covering everything: the whole ring of 600 x 1 s */
    struct speed_query q = {T0, T0 + 600000, T0, 600000, 1, 0, false};
    while (!atomic_load(&r->done) || atomic_load(&r->reads) < 100) {
        for (uint32_t id = 1; id <= RACE_SERIES; id++) {
            struct speed_read rd;
            struct speed_totals tot[SPEED_LANES];
            cells_init(x);
            speed_read_range(r->sp, id, &q, &x->c, &rd);
            if (x->aggs[0].count != expected(id, rd.seq))
                atomic_fetch_add(&r->bad, 1);
            int64_t c = speed_read_totals(r->sp, id, tot);
            if (tot[SPEED_EVENTS].count != expected(id, c))
                atomic_fetch_add(&r->bad, 1);
            atomic_fetch_add(&r->reads, 1);
        }
    }
    free(x);
    return NULL;
}

static void test_readers_race_writer(void **state)
{
    struct race r;
    pthread_t w, rd[2];
    (void)state;
    memset(&r, 0, sizeof r);
    assert_int_equal(speed_new(RACE_SERIES, 600, 1000, 16, &r.sp), EL_OK);
    assert_int_equal(pthread_create(&rd[0], NULL, race_reader, &r), 0);
    assert_int_equal(pthread_create(&rd[1], NULL, race_reader, &r), 0);
    assert_int_equal(pthread_create(&w, NULL, race_writer, &r), 0);
    pthread_join(w, NULL);
    pthread_join(rd[0], NULL);
    pthread_join(rd[1], NULL);
    assert_int_equal(atomic_load(&r.bad), 0);
    assert_true(atomic_load(&r.reads) >= 100);
    speed_free(r.sp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buckets_and_window),  cmocka_unit_test(test_raw_completeness),
        cmocka_unit_test(test_provisional_lane),    cmocka_unit_test(test_no_allocation_per_event),
        cmocka_unit_test(test_readers_race_writer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
