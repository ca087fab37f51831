/* Unit tests of the civil-date helper (platform/plat_time): day numbers both
 * ways against the C library, RFC 3339 parsing and formatting by tables
 * whose expected values were computed with Python's datetime. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>
#include <time.h>

#include "plat_time.h"

static void test_leap_years_and_month_lengths(void **state)
{
    static const struct {
        int64_t year;
        bool leap;
    } rows[] = {{1900, false}, {2000, true}, {2023, false}, {2024, true},  {2100, false},
                {2400, true},  {0, true},    {-4, true},    {-100, false}, {1970, false}};
    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        assert_int_equal(plat_time_is_leap(rows[i].year), rows[i].leap);
    assert_int_equal(plat_time_days_in_month(2000, 2), 29);
    assert_int_equal(plat_time_days_in_month(1900, 2), 28);
    assert_int_equal(plat_time_days_in_month(2023, 4), 30);
    assert_int_equal(plat_time_days_in_month(2023, 12), 31);
    assert_int_equal(plat_time_days_in_month(2023, 0), 0);
    assert_int_equal(plat_time_days_in_month(2023, 13), 0);
}

static void test_day_numbers_known_dates(void **state)
{
    static const struct {
        int64_t y;
        int m, d;
        int64_t days;
    } rows[] = {
        {1970, 1, 1, 0},         {1969, 12, 31, -1},   {2000, 2, 29, 11016}, {2000, 3, 1, 11017},
        {2099, 12, 31, 47481},   {1900, 3, 1, -25508}, {0, 1, 1, -719528},   {0, 3, 1, -719468},
        {9999, 12, 31, 2932896}, {2026, 1, 1, 20454},  {2024, 2, 29, 19782},
    };
    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        int64_t y;
        int m, d;

        assert_int_equal(plat_time_days_from_civil(rows[i].y, rows[i].m, rows[i].d), rows[i].days);
        plat_time_civil_from_days(rows[i].days, &y, &m, &d);
        assert_int_equal(y, rows[i].y);
        assert_int_equal(m, rows[i].m);
        assert_int_equal(d, rows[i].d);
    }
}

/* Every day of 0000..9999 round-trips and follows the one before it; the
 * 64-bit C library agrees on the days it can represent. */
static void test_day_numbers_every_day(void **state)
{
    int64_t prev_y = -1;
    int prev_m = 12, prev_d = 31;
    (void)state;
    for (int64_t days = -719528; days <= 2932896; days++) {
        int64_t y;
        int m, d;

        plat_time_civil_from_days(days, &y, &m, &d);
        assert_int_equal(plat_time_days_from_civil(y, m, d), days);
        if (d > 1)
            assert_true(y == prev_y && m == prev_m && d == prev_d + 1);
        else
            assert_true(prev_d == plat_time_days_in_month(prev_y, prev_m) &&
                        (m == prev_m + 1 || (m == 1 && prev_m == 12 && y == prev_y + 1)));
        if (sizeof(time_t) == 8 && days >= -25000 && days <= 50000) {
            time_t t = (time_t)(days * 86400);
            struct tm tm;

            assert_non_null(gmtime_r(&t, &tm));
            assert_true(tm.tm_year + 1900 == y && tm.tm_mon + 1 == m && tm.tm_mday == d);
        }
        prev_y = y;
        prev_m = m;
        prev_d = d;
    }
}

struct parse_row {
    const char *text;
    bool ok;
    int64_t ms;
};

static void test_parse_rfc3339(void **state)
{
    static const struct parse_row rows[] = {
        {"1970-01-01T00:00:00Z", true, 0},
        {"1969-12-31T23:59:59.999Z", true, -1},
        {"2000-02-29T12:00:00Z", true, INT64_C(951825600000)},
        {"2024-02-29T00:00:00Z", true, INT64_C(1709164800000)},
        {"2099-12-31T23:59:59.999Z", true, INT64_C(4102444799999)},
        {"2026-01-01T00:00:00Z", true, INT64_C(1767225600000)},
        {"2026-01-01t00:00:00z", true, INT64_C(1767225600000)},
        {"2026-01-01 00:00:00Z", true, INT64_C(1767225600000)},
        {"2026-01-01T00:00:00.250+01:00", true, INT64_C(1767222000250)},
        {"2026-01-01T00:00:00-05:30", true, INT64_C(1767245400000)},
        {"2026-01-01T00:00:00-00:00", true, INT64_C(1767225600000)},
        {"2100-02-28T00:00:00+23:59", true, INT64_C(4107369660000)},
        {"2026-01-01T00:00:00.1Z", true, INT64_C(1767225600100)},
        {"2026-01-01T00:00:00.123456789Z", true, INT64_C(1767225600123)}, /* floored */
        {"2026-01-01T00:00:60Z", true, INT64_C(1767225659999)},           /* leap second */
        {"9999-12-31T23:59:59.999Z", true, INT64_C(253402300799999)},
        {"0000-01-01T00:00:00Z", true, INT64_C(-62167219200000)},
        {"2001-02-29T00:00:00Z", false, 0},
        {"1900-02-29T00:00:00Z", false, 0},
        {"2000-02-30T00:00:00Z", false, 0},
        {"2026-04-31T00:00:00Z", false, 0},
        {"2026-13-01T00:00:00Z", false, 0},
        {"2026-00-01T00:00:00Z", false, 0},
        {"2026-01-00T00:00:00Z", false, 0},
        {"2026-01-01T24:00:00Z", false, 0},
        {"2026-01-01T00:60:00Z", false, 0},
        {"2026-01-01T00:00:61Z", false, 0},
        {"2026-01-01T00:00:00", false, 0},
        {"2026-01-01T00:00:00.Z", false, 0},
        {"2026-01-01T00:00:00+0100", false, 0},
        {"2026-01-01T00:00:00+24:00", false, 0},
        {"2026-01-01T00:00:00+01:60", false, 0},
        {"2026-01-01T00:00:00Z ", false, 0},
        {" 2026-01-01T00:00:00Z", false, 0},
        {"2026-01-01X00:00:00Z", false, 0},
        {"26-01-01T00:00:00Z", false, 0},
        {"2026-1-01T00:00:00Z", false, 0},
        {"2026-01-01", false, 0},
        {"", false, 0},
        {"1767225600000", false, 0},
    };
    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        int64_t ms = 42;
        bool ok = plat_time_parse_rfc3339(rows[i].text, strlen(rows[i].text), &ms);

        if (ok != rows[i].ok)
            fail_msg("'%s': %s", rows[i].text, ok ? "accepted" : "refused");
        assert_int_equal(ms, rows[i].ok ? rows[i].ms : 42);
    }
}

static void test_parse_reads_only_len_bytes(void **state)
{
    static const char text[] = "2026-01-01T00:00:00Zgarbage";
    int64_t ms = 0;
    (void)state;
    assert_true(plat_time_parse_rfc3339(text, 20, &ms));
    assert_int_equal(ms, INT64_C(1767225600000));
    assert_false(plat_time_parse_rfc3339(text, 19, &ms));
    assert_false(plat_time_parse_rfc3339(NULL, 0, &ms));
}

static void test_format_rfc3339(void **state)
{
    static const struct {
        int64_t ms;
        const char *always, *nonzero;
    } rows[] = {
        {0, "1970-01-01T00:00:00.000Z", "1970-01-01T00:00:00Z"},
        {-1, "1969-12-31T23:59:59.999Z", "1969-12-31T23:59:59.999Z"},
        {INT64_C(951825600000), "2000-02-29T12:00:00.000Z", "2000-02-29T12:00:00Z"},
        {INT64_C(4102444799999), "2099-12-31T23:59:59.999Z", "2099-12-31T23:59:59.999Z"},
        {INT64_C(1767225600250), "2026-01-01T00:00:00.250Z", "2026-01-01T00:00:00.250Z"},
        {INT64_C(1767225600005), "2026-01-01T00:00:00.005Z", "2026-01-01T00:00:00.005Z"},
        {INT64_C(253402300799999), "9999-12-31T23:59:59.999Z", "9999-12-31T23:59:59.999Z"},
        {INT64_C(-62167219200000), "0000-01-01T00:00:00.000Z", "0000-01-01T00:00:00Z"},
        {INT64_C(253402300800000), "", ""}, /* year 10000 */
        {INT64_C(-62167219200001), "", ""}, /* year -1 */
        {INT64_MIN, "", ""},
    };
    char buf[PLAT_TIME_RFC3339_MAX];
    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        size_t n = plat_time_format_rfc3339(rows[i].ms, PLAT_TIME_MS_ALWAYS, buf, sizeof buf);

        assert_string_equal(buf, rows[i].always);
        assert_int_equal(n, strlen(rows[i].always));
        n = plat_time_format_rfc3339(rows[i].ms, PLAT_TIME_MS_NONZERO, buf, sizeof buf);
        assert_string_equal(buf, rows[i].nonzero);
        assert_int_equal(n, strlen(rows[i].nonzero));
    }
}

static void test_format_bounds_and_round_trip(void **state)
{
    char buf[PLAT_TIME_RFC3339_MAX];
    int64_t back = 0;
    (void)state;
    assert_int_equal(plat_time_format_rfc3339(0, PLAT_TIME_MS_ALWAYS, buf, 24), 0);
    assert_string_equal(buf, "");
    assert_int_equal(plat_time_format_rfc3339(0, PLAT_TIME_MS_NONZERO, buf, 21), 20);
    assert_int_equal(plat_time_format_rfc3339(0, PLAT_TIME_MS_NONZERO, buf, 20), 0);
    assert_int_equal(plat_time_format_rfc3339(0, PLAT_TIME_MS_ALWAYS, buf, 0), 0);
    for (int64_t ms = INT64_C(-62167219200000); ms < INT64_C(253402300800000);
         ms += INT64_C(987654321987)) {
        size_t n = plat_time_format_rfc3339(ms, PLAT_TIME_MS_ALWAYS, buf, sizeof buf);

        assert_int_equal(n, 24);
        assert_true(plat_time_parse_rfc3339(buf, n, &back));
        assert_int_equal(back, ms);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_leap_years_and_month_lengths),
        cmocka_unit_test(test_day_numbers_known_dates),
        cmocka_unit_test(test_day_numbers_every_day),
        cmocka_unit_test(test_parse_rfc3339),
        cmocka_unit_test(test_parse_reads_only_len_bytes),
        cmocka_unit_test(test_format_rfc3339),
        cmocka_unit_test(test_format_bounds_and_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
