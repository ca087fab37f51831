/* Unit tests of the speed layer (firmware/speed): ring windows, late data,
 * raw-sample completeness, and no heap allocation per event. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <malloc.h>
#include <string.h>

#include "speed.h"

#define T0 INT64_C(1767225600000) /* 2026-01-01, aligned to every bucket size used */

static void test_buckets_and_window(void **state)
{
    struct speed *sp;
    struct agg out[10];
    (void)state;
    assert_int_equal(speed_new(4, 10, 1000, 8, &sp), EL_OK);
    assert_true(speed_window_start(sp, 1) == INT64_MAX);
    for (int i = 0; i < 30; i++)
        speed_add(sp, 1, T0 + i * 500, (double)i, i + 1); /* 2 events per 1 s bucket */
    /* newest bucket T0+14s; window = 10 slots */
    assert_true(speed_window_start(sp, 1) == T0 + 5000);
    for (int k = 0; k < 10; k++)
        agg_init(&out[k]);
    speed_collect(sp, 1, T0 + 5000, T0 + 15000, T0 + 5000, 1000, out, 10);
    for (int k = 0; k < 10; k++) {
        assert_int_equal(out[k].count, 2);
        assert_true(out[k].min == (double)(10 + 2 * k));
        assert_true(out[k].last_value == (double)(11 + 2 * k));
    }
    /* a late event older than the window is not in the ring */
    speed_add(sp, 1, T0, 99.0, 31);
    assert_int_equal(speed_out_of_window(sp), 1);
    /* a late event inside the window is */
    speed_add(sp, 1, T0 + 5100, -1.0, 32);
    for (int k = 0; k < 10; k++)
        agg_init(&out[k]);
    speed_collect(sp, 1, T0 + 5000, T0 + 15000, T0, 10000, out, 2);
    assert_int_equal(out[0].count, 11);
    assert_true(out[0].min == -1.0);
    assert_int_equal(out[1].count, 10);
    assert_int_equal(speed_totals(sp, 1)->count, 32);
    assert_true(speed_totals(sp, 1)->last_value == 29.0);
    speed_free(sp);
}

static void test_raw_completeness(void **state)
{
    struct speed *sp;
    double vals[64];
    bool complete;
    (void)state;
    assert_int_equal(speed_new(2, 100, 1000, 4, &sp), EL_OK);
    for (int i = 0; i < 4; i++)
        speed_add(sp, 2, T0 + i * 1000, (double)i, i + 1);
    size_t n = speed_raw_values(sp, 2, T0, T0 + 4000, vals, 64, &complete);
    assert_int_equal(n, 4);
    assert_true(complete);
    speed_add(sp, 2, T0 + 4000, 4.0, 5); /* the raw ring (4) drops the oldest */
    n = speed_raw_values(sp, 2, T0, T0 + 5000, vals, 64, &complete);
    assert_int_equal(n, 4);
    assert_false(complete);
    n = speed_raw_values(sp, 2, T0 + 1000, T0 + 5000, vals, 64, &complete);
    assert_true(complete);
    struct speed_raw last[3];
    assert_int_equal(speed_last(sp, 2, last, 3), 3);
    assert_true(last[0].value == 4.0 && last[1].value == 3.0 && last[2].value == 2.0);
    speed_free(sp);
}

static void test_no_allocation_per_event(void **state)
{
    struct speed *sp;
    (void)state;
    assert_int_equal(speed_new(1000, 600, 1000, 64, &sp), EL_OK);
    struct mallinfo2 before = mallinfo2();
    for (int64_t i = 0; i < 1000000; i++)
        speed_add(sp, (uint32_t)(i % 1000) + 1, T0 + i * 7, (double)(i % 977), i + 1);
    struct mallinfo2 after = mallinfo2();
    assert_int_equal(before.uordblks, after.uordblks);
    assert_int_equal(before.hblkhd, after.hblkhd);
    assert_true(speed_memory_bytes(sp) > (size_t)1000 * 600 * sizeof(struct agg));
    speed_free(sp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buckets_and_window),
        cmocka_unit_test(test_raw_completeness),
        cmocka_unit_test(test_no_allocation_per_event),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
