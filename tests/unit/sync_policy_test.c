/*
 * sync_policy_test — unit tests of the upstream policy (sync/sync_policy.c).
 *
 * What is covered: the verdict of every status class (2xx, 413, 408/425/429,
 * other 4xx, 5xx, 1xx/3xx, no response); full-jitter backoff bounds with an
 * injected RNG (the minimum, the maximum, the doubling per attempt, the cap,
 * attempt 0, a huge attempt count, the spread of a real generator);
 * Retry-After in delay-seconds and all three HTTP-date forms, dates in the
 * past, garbage, blanks, huge values; the retry delay combining them (only
 * 429/503 honour Retry-After, clamped to the maximum). The response parsing
 * of sync/sync_http.c that feeds them: Retry-After header lines (any case,
 * CRLF or LF, the last one wins, a status line clears it, values with a NUL,
 * too long or with odd blanks) and the body excerpt.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "sync_http.h"
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

/* Feeds lines (each a C string; "\x00" cannot appear) to the header parser. */
static void head(struct sync_http_resp *r, const char *const *lines)
{
    memset(r, 0, sizeof *r);
    for (; *lines; lines++)
        sync_http_parse_header_line(r, *lines, strlen(*lines));
}

static void test_header_lines(void **state)
{
    (void)state;
    struct sync_http_resp r;
    const char *const basic[] = {"HTTP/1.1 429 Too Many Requests\r\n", "Server: nginx\r\n",
                                 "Retry-After: 120\r\n", "\r\n", NULL};
    head(&r, basic);
    assert_string_equal(r.retry_after, "120");
    const char *const lower_lf[] = {"HTTP/2 503\n", "retry-after:\t 7 \t\n", "\n", NULL};
    head(&r, lower_lf);
    assert_string_equal(r.retry_after, "7");
    const char *const last_wins[] = {"HTTP/1.1 429 x\r\n", "RETRY-AFTER: 600\r\n",
                                     "Retry-After: Thu, 01 Jan 2026 00:02:00 GMT\r\n", NULL};
    head(&r, last_wins);
    assert_string_equal(r.retry_after, "Thu, 01 Jan 2026 00:02:00 GMT");
    /* an interim response's Retry-After is forgotten at the final status line */
    const char *const interim[] = {"HTTP/1.1 103 Early Hints\r\n",
                                   "Retry-After: 5\r\n",
                                   "\r\n",
                                   "HTTP/1.1 503 Service Unavailable\r\n",
                                   "\r\n",
                                   NULL};
    head(&r, interim);
    assert_string_equal(r.retry_after, "");
    /* an empty last one (even unterminated) wins too; near misses are ignored */
    const char *const empty_last[] = {"Retry-After: 5\r\n", "Retry-After:", NULL};
    head(&r, empty_last);
    assert_string_equal(r.retry_after, "");
    const char *const near[] = {"Retry-After: 5\r\n",
                                "Retry-After : 9\r\n",
                                "X-Retry-After: 9\r\n",
                                "Retry-Afte",
                                " 9\r\n",
                                NULL};
    head(&r, near);
    assert_string_equal(r.retry_after, "5");
    /* only the blanks the policy parser skips are trimmed */
    const char *const odd[] = {"Retry-After:\r\r 30 \x0b\r\n", NULL};
    head(&r, odd);
    assert_string_equal(r.retry_after, "30 \x0b");
    int64_t d = -1;
    assert_false(sync_policy_parse_retry_after(r.retry_after, 0, &d));
}

static void header_value(struct sync_http_resp *r, const char *value, size_t len)
{
    char line[256];
    assert_true(12 + len + 2 <= sizeof line);
    memcpy(line, "Retry-After:", 12);
    memcpy(line + 12, value, len);
    memcpy(line + 12 + len, "\r\n", 2);
    memset(r, 0, sizeof *r);
    sync_http_parse_header_line(r, line, 12 + len + 2);
}

static void test_header_values(void **state)
{
    (void)state;
    struct sync_http_resp r;
    char v[200];
    /* a NUL byte: stored as absent, not cut to a valid-looking "5" */
    header_value(&r, "5\0 minutes", 10);
    assert_string_equal(r.retry_after, "");
    /* long delay-seconds: leading zeros go (as many as needed), the value stays */
    memset(v, '0', 100);
    memcpy(v + 100, "120", 3);
    header_value(&r, v, 103);
    assert_int_equal(strlen(r.retry_after), sizeof r.retry_after - 1);
    ra_is(r.retry_after, 0, 120000);
    /* huge delay-seconds: cut, still the maximum */
    memset(v, '9', 150);
    header_value(&r, v, 150);
    assert_int_equal(strlen(r.retry_after), sizeof r.retry_after - 1);
    ra_is(r.retry_after, 0, SYNC_RETRY_AFTER_MAX_MS);
    /* too long otherwise: invalid, and no cut may make it valid */
    int n = snprintf(v, sizeof v, "Thu, 01 Jan 2026 00:02:00 GMT%34sgarbage", "");
    header_value(&r, v, (size_t)n);
    assert_string_equal(r.retry_after, "");
    /* exactly as long as fits */
    memset(v, '1', sizeof r.retry_after - 1);
    header_value(&r, v, sizeof r.retry_after - 1);
    assert_int_equal(strlen(r.retry_after), sizeof r.retry_after - 1);
    memset(v, '\r', 80);
    v[80] = '7';
    header_value(&r, v, 81);
    assert_string_equal(r.retry_after, "7");
}

static void test_body_excerpt(void **state)
{
    (void)state;
    struct sync_http_resp r;
    size_t len = 0;
    memset(&r, 0x55, sizeof r);
    sync_http_body_excerpt(&r, &len, "", 0);
    assert_int_equal(len, 0);
    assert_string_equal(r.body, "");
    const char body[] = "\r\n  <html>\r\n<title>413\tRequest\x01\xffToo Large</title>\n";
    sync_http_body_excerpt(&r, &len, body, 20);
    sync_http_body_excerpt(&r, &len, body + 20, sizeof body - 1 - 20);
    assert_string_equal(r.body, "<html> <title>413 Request Too Large</title> ");
    assert_int_equal(len, strlen(r.body));
    /* the bound: SYNC_HTTP_EXCERPT - 1 bytes, the rest ignored */
    char big[3 * SYNC_HTTP_EXCERPT];
    memset(big, 'x', sizeof big);
    len = 0;
    sync_http_body_excerpt(&r, &len, big, sizeof big);
    sync_http_body_excerpt(&r, &len, big, sizeof big);
    assert_int_equal(len, SYNC_HTTP_EXCERPT - 1);
    assert_int_equal(strlen(r.body), SYNC_HTTP_EXCERPT - 1);
}

/* The token bucket: 80 kbit/s = 10000 B/s, burst 10000 B, starts full. A
 * simulated sender that sends 3000-byte requests whenever the bucket allows
 * for 60 s moves 10000 + 60 * 10000 bytes at most, and not much less; a
 * request larger than the burst waits for the burst, then pushes the next
 * one back by its excess. */
static void test_bucket(void **state)
{
    (void)state;
    struct sync_bucket b;
    sync_bucket_init(&b, 80, 1000);
    assert_int_equal(sync_bucket_delay_ms(&b, 1000, 10000), 0);
    sync_bucket_take(&b, 1000, 10000);
    int64_t d = sync_bucket_delay_ms(&b, 1000, 3000);
    assert_in_range(d, 300, 301); /* 3000 B at 10 B/ms */
    int64_t now = 1000 + d, sent = 10000;
    while (now < 61000) {
        d = sync_bucket_delay_ms(&b, now, 3000);
        if (d > 0) {
            now += d;
            continue;
        }
        sync_bucket_take(&b, now, 3000);
        sent += 3000;
    }
    assert_in_range(sent, 600000 - 3000, 610000);
    /* bigger than the burst: waits until the bucket is full, then owes */
    sync_bucket_init(&b, 80, 0);
    assert_int_equal(sync_bucket_delay_ms(&b, 0, 25000), 0);
    sync_bucket_take(&b, 0, 25000);
    assert_in_range(sync_bucket_delay_ms(&b, 0, 100), 1510, 1511);
    /* unlimited */
    sync_bucket_init(&b, 0, 0);
    sync_bucket_take(&b, 0, 1u << 30);
    assert_int_equal(sync_bucket_delay_ms(&b, 0, 1u << 30), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify),     cmocka_unit_test(test_backoff_bounds),
        cmocka_unit_test(test_retry_after),  cmocka_unit_test(test_retry_delay),
        cmocka_unit_test(test_header_lines), cmocka_unit_test(test_header_values),
        cmocka_unit_test(test_body_excerpt), cmocka_unit_test(test_bucket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
