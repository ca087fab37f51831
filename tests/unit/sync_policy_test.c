/*
 * sync_policy_test — unit tests of the upstream policy (sync/sync_policy.c).
 *
 * What is covered: the verdict of every status class (2xx, 413, 408/425/429,
 * other 4xx, 5xx, 1xx/3xx, no response); full-jitter backoff bounds with an
 * injected RNG (the minimum, the maximum, the doubling per attempt, the cap,
 * attempt 0, a huge attempt count, the spread of a real generator);
 * Retry-After in delay-seconds and all three HTTP-date forms, dates in the
 * past, garbage, blanks, huge values; the retry delay combining them (only
 * 429/503 honour Retry-After, clamped to the maximum).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "sync_policy.h"

static void test_classify(void **state)
{
    (void)state;
    static const long success[] = {200, 201, 202, 204, 299};
    static const long retry[] = {0,   100, 301, 302, 304, 408, 425, 429,
                                 500, 502, 503, 504, 599, 600, -1};
    static const long park[] = {400, 401, 403, 404, 405, 409, 410, 415, 422, 499};
    for (size_t i = 0; i < sizeof success / sizeof success[0]; i++)
        assert_int_equal(sync_policy_classify(success[i]), SYNC_SUCCESS);
    for (size_t i = 0; i < sizeof retry / sizeof retry[0]; i++)
        assert_int_equal(sync_policy_classify(retry[i]), SYNC_RETRY);
    for (size_t i = 0; i < sizeof park / sizeof park[0]; i++)
        assert_int_equal(sync_policy_classify(park[i]), SYNC_PARK);
    assert_int_equal(sync_policy_classify(413), SYNC_SPLIT);
    assert_string_equal(sync_verdict_str(SYNC_PARK), "park");
}

static uint64_t rng_const(void *ctx)
{
    return *(uint64_t *)ctx;
}

static void test_backoff_bounds(void **state)
{
    (void)state;
    uint64_t zero = 0, max = UINT64_MAX;
    /* rng 0 -> always 0 (full jitter can retry at once) */
    for (uint32_t a = 0; a < 40; a++)
        assert_int_equal(sync_policy_backoff_ms(a, 250, 30000, rng_const, &zero), 0);
    /* rng max -> the ceiling: base * 2^(attempt-1), capped */
    int64_t want[] = {250, 250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000};
    for (uint32_t a = 0; a < 10; a++) {
        int64_t ceiling = want[a];
        /* UINT64_MAX % (ceiling + 1) is the largest value it can give, not always ceiling */
        int64_t got = sync_policy_backoff_ms(a, 250, 30000, rng_const, &max);
        assert_true(got >= 0 && got <= ceiling);
        uint64_t exact = (uint64_t)ceiling; /* rng == ceiling exactly */
        assert_int_equal(sync_policy_backoff_ms(a, 250, 30000, rng_const, &exact), ceiling);
    }
    uint64_t big = 1000000;
    assert_int_equal(sync_policy_backoff_ms(UINT32_MAX, 250, 30000, rng_const, &big),
                     (int64_t)(big % 30001));
    assert_int_equal(sync_policy_backoff_ms(3, 0, 30000, rng_const, &big), 0);

    /* a real generator spreads over the whole range and never leaves it */
    uint64_t seed = 12345;
    int64_t lo = INT64_MAX, hi = -1;
    for (int i = 0; i < 10000; i++) {
        int64_t d = sync_policy_backoff_ms(5, 250, 30000, sync_policy_xorshift, &seed);
        assert_true(d >= 0 && d <= 4000);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    assert_true(lo < 100 && hi > 3900);
    /* deterministic for a given seed */
    uint64_t s1 = 99, s2 = 99;
    for (int i = 0; i < 100; i++)
        assert_int_equal(sync_policy_backoff_ms(7, 250, 30000, sync_policy_xorshift, &s1),
                         sync_policy_backoff_ms(7, 250, 30000, sync_policy_xorshift, &s2));
}

static void ra_is(const char *v, int64_t now, int64_t want)
{
    int64_t d = -12345;
    assert_true(sync_policy_parse_retry_after(v, now, &d));
    assert_int_equal(d, want);
}

static void ra_bad(const char *v)
{
    int64_t d = -12345;
    assert_false(sync_policy_parse_retry_after(v, 0, &d));
    assert_int_equal(d, -12345);
}

static void test_retry_after(void **state)
{
    (void)state;
    const int64_t t1994 = 784111777000LL; /* Sun, 06 Nov 1994 08:49:37 GMT */
    ra_is("120", 0, 120000);
    ra_is("0", 0, 0);
    ra_is("  7 ", 0, 7000);
    ra_is("99999999999999999999999", 0, SYNC_RETRY_AFTER_MAX_MS);
    ra_is("601", 0, SYNC_RETRY_AFTER_MAX_MS);
    ra_is("600", 0, 600000);
    ra_is("Fri, 31 Dec 9999 23:59:59 GMT", 0, SYNC_RETRY_AFTER_MAX_MS);
    ra_is("Sun, 06 Nov 1994 08:49:37 GMT", t1994 - 5000, 5000);
    ra_is("Sunday, 06-Nov-94 08:49:37 GMT", t1994 - 5000, 5000);
    ra_is("Sun Nov  6 08:49:37 1994", t1994 - 5000, 5000);
    ra_is("Sun, 06 Nov 1994 08:49:37 GMT", t1994 + 5000, 0); /* in the past: now */
    ra_is("Thu, 01 Jan 2026 00:00:00 GMT", 1767225600000LL - 1500, 1500);
    ra_is("Tue, 29 Feb 2028 12:00:01 GMT", 1835438400000LL, 1000);
    ra_is("Wed, 21 Oct 2015 07:28:00 GMT\r\n", 1445412480000LL - 60000, 60000);
    ra_bad("");
    ra_bad("soon");
    ra_bad("-5");
    ra_bad("1.5");
    ra_bad("12 s");
    ra_bad("Sun, 06 Nov 1994 08:49:37 UTC");
    ra_bad("Sun, 31 Feb 1994 08:49:37 GMT");
    ra_bad("Sun, 06 Foo 1994 08:49:37 GMT");
    ra_bad("Sun, 06 Nov 1994 24:49:37 GMT");
    ra_bad("Sun, 6 Nov 1994 08:49:37 GMT");
    ra_bad("Sun, 06 Nov 1994 08:49:37 GMT trailing");
    ra_bad("Sunday, 06 Nov 1994 08:49:37 GMT");
}

static void test_retry_delay(void **state)
{
    (void)state;
    uint64_t zero = 0, exact = 250;
    assert_int_equal(sync_policy_retry_delay_ms(429, 3000, 1, rng_const, &zero), 3000);
    assert_int_equal(sync_policy_retry_delay_ms(503, 0, 9, rng_const, &exact), 0);
    assert_int_equal(sync_policy_retry_delay_ms(503, INT64_MAX, 1, rng_const, &zero),
                     SYNC_RETRY_AFTER_MAX_MS);
    /* not honoured for other statuses or when absent: jittered backoff instead */
    assert_int_equal(sync_policy_retry_delay_ms(500, 3000, 1, rng_const, &exact), 250);
    assert_int_equal(sync_policy_retry_delay_ms(429, -1, 1, rng_const, &exact), 250);
    assert_int_equal(sync_policy_retry_delay_ms(0, -1, 1, rng_const, &zero), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_backoff_bounds),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_retry_delay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
