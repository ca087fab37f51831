/*
 * sync_encode_test — unit tests of the upstream encoders (sync/sync_encode.c).
 *
 * What is covered: JSON string escaping (quotes, backslashes, every control
 * character, DEL, valid multi-byte UTF-8 kept, invalid UTF-8 replaced by
 * U+FFFD, overlong and surrogate forms); InfluxDB line-protocol escaping of
 * measurements (comma, space, backslash, leading '#', control characters) and
 * tag values (comma, equals, space); shortest round-trip doubles; whole
 * ndjson and influx lines byte for byte, including negative and huge
 * timestamps and non-finite values; bounds (no overflow, 0 when it does not
 * fit); the encoder's device-id checks.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync_encode.h"

static void esc_is(enum sync_escape style, const char *in, size_t len, const char *want)
{
    char buf[512];
    size_t n = sync_encode_escape(style, in, len, buf, sizeof buf);
    assert_int_not_equal(n, SIZE_MAX);
    buf[n] = '\0';
    assert_string_equal(buf, want);
}

#define ESC(style, lit, want) esc_is(style, lit, sizeof(lit) - 1, want)

static void test_json_escaping(void **state)
{
    (void)state;
    ESC(SYNC_ESC_JSON, "sensors/kitchen/temp", "sensors/kitchen/temp");
    ESC(SYNC_ESC_JSON, "a\"b\\c", "a\\\"b\\\\c");
    ESC(SYNC_ESC_JSON, "\b\f\n\r\t", "\\b\\f\\n\\r\\t");
    ESC(SYNC_ESC_JSON, "\x01\x1f\x7f", "\\u0001\\u001f\\u007f");
    ESC(SYNC_ESC_JSON, "a\0b", "a\\u0000b");
    ESC(SYNC_ESC_JSON, "caf\xc3\xa9/\xe2\x82\xac/\xf0\x9f\x98\x80",
        "caf\xc3\xa9/\xe2\x82\xac/\xf0\x9f\x98\x80");
    /* invalid: lone continuation, truncated sequence, overlong, surrogate, > U+10FFFF */
    ESC(SYNC_ESC_JSON, "a\x80z", "a\\ufffdz");
    ESC(SYNC_ESC_JSON, "a\xc3", "a\\ufffd");
    ESC(SYNC_ESC_JSON, "\xc0\xaf", "\\ufffd\\ufffd");
    ESC(SYNC_ESC_JSON, "\xed\xa0\x80", "\\ufffd\\ufffd\\ufffd");
    ESC(SYNC_ESC_JSON, "\xf4\x90\x80\x80", "\\ufffd\\ufffd\\ufffd\\ufffd");
    ESC(SYNC_ESC_JSON, "\xe2\x82", "\\ufffd\\ufffd");
    ESC(SYNC_ESC_JSON, "", "");
}

static void test_influx_escaping(void **state)
{
    (void)state;
    ESC(SYNC_ESC_MEASUREMENT, "sensors/dev1/temp", "sensors/dev1/temp");
    ESC(SYNC_ESC_MEASUREMENT, "a,b c", "a\\,b\\ c");
    ESC(SYNC_ESC_MEASUREMENT, "a=b", "a=b"); /* '=' is fine in a measurement */
    ESC(SYNC_ESC_MEASUREMENT, "back\\slash", "back\\\\slash");
    ESC(SYNC_ESC_MEASUREMENT, "trailing\\", "trailing\\\\");
    ESC(SYNC_ESC_MEASUREMENT, "#comment", "\\#comment");
    ESC(SYNC_ESC_MEASUREMENT, "a#b", "a#b");
    ESC(SYNC_ESC_MEASUREMENT, "l1\nl2\r\t\f", "l1\\nl2\\r\\t\\f");
    ESC(SYNC_ESC_MEASUREMENT, "\x01\x7f", "\\x01\\x7f");
    ESC(SYNC_ESC_MEASUREMENT, "\"quoted\"", "\"quoted\"");
    ESC(SYNC_ESC_TAG, "dev 1,a=b", "dev\\ 1\\,a\\=b");
    ESC(SYNC_ESC_TAG, "#tag", "#tag");
    ESC(SYNC_ESC_TAG, "x\\", "x\\\\");
}

static void test_escape_bounds(void **state)
{
    (void)state;
    char buf[8];
    assert_int_equal(sync_encode_escape(SYNC_ESC_JSON, "abcdefgh", 8, buf, 8), 8);
    assert_int_equal(sync_encode_escape(SYNC_ESC_JSON, "abcdefghi", 9, buf, 8), SIZE_MAX);
    assert_int_equal(sync_encode_escape(SYNC_ESC_JSON, "\x01", 1, buf, 5), SIZE_MAX);
    assert_int_equal(sync_encode_escape(SYNC_ESC_TAG, "a b c d", 7, buf, 8), SIZE_MAX);
}

static void double_is(double v, const char *want)
{
    char buf[40];
    size_t n = sync_encode_double(v, buf, sizeof buf);
    assert_int_not_equal(n, 0);
    assert_string_equal(buf, want);
    assert_true(strtod(buf, NULL) == v);
}

static void test_doubles(void **state)
{
    (void)state;
    double_is(21.5, "21.5");
    double_is(-49.99, "-49.99");
    double_is(0.1, "0.1");
    char buf[40];
    double_is(0.1 + 0.2, "0.30000000000000004");
    double_is(1e300, "1e+300");
    double_is(5e-324, "4.94065645841247e-324");
    double_is(0.0, "0");
    double_is(-0.0, "-0");
    double_is(123456789012345678.0, "1.2345678901234568e+17");
    double_is(1.0 / 3.0, "0.3333333333333333");
    /* the plain-decimal fast path and its edges */
    double_is(1e-6, "0.000001");
    double_is(1e-7, "1e-07");
    double_is(-123456.789, "-123456.789");
    double_is(999999999.5, "999999999.5");
    double_is(1e9, "1000000000");
    double_is(3.0, "3");
    double_is(1e15, "1e+15");
    double_is(0.1234567, "0.1234567");
    double_is(4503599627370495.5, "4503599627370495.5");
    /* many random doubles round-trip (either path) */
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double v;
        if (i % 2) {
            memcpy(&v, &x, sizeof v);
        } else {
            v = (double)(int64_t)(x % 2000000000ULL) / (double)(1ULL << (x >> 60));
        }
        if (!isfinite(v))
            continue;
        size_t n = sync_encode_double(v, buf, sizeof buf);
        assert_true(n > 0 && n < sizeof buf && strlen(buf) == n);
        assert_true(strtod(buf, NULL) == v || (v == 0 && strtod(buf, NULL) == 0));
        assert_true(signbit(strtod(buf, NULL)) == signbit(v));
    }
    assert_int_equal(sync_encode_double(NAN, buf, sizeof buf), 0);
    assert_int_equal(sync_encode_double(INFINITY, buf, sizeof buf), 0);
    /* every loadgen value (text "%.2f" read by strtod) comes back as its own text */
    for (int i = 0; i < 20000; i++) {
        char text[16];
        snprintf(text, sizeof text, "%.2f", (double)i / 100.0 - 50.0);
        double v = strtod(text, NULL);
        size_t n = sync_encode_double(v, buf, sizeof buf);
        assert_true(n > 0 && n <= 6);
        assert_true(strtod(buf, NULL) == v);
        assert_true(strtod(buf, NULL) == strtod(text, NULL));
    }
}

static void line_is(const struct sync_encoder *e, const char *series, int64_t seq, int64_t ts,
                    double v, const char *want)
{
    char buf[1024];
    size_t n = sync_encode_event(e, series, strlen(series), seq, ts, v, buf, sizeof buf);
    assert_int_not_equal(n, 0);
    buf[n] = '\0';
    assert_string_equal(buf, want);
    /* too small by one byte: refused, never a cut line */
    assert_int_equal(sync_encode_event(e, series, strlen(series), seq, ts, v, buf, n - 1), 0);
    assert_int_equal(sync_encode_event(e, series, strlen(series), seq, ts, v, buf, n), n);
}

static void test_ndjson_lines(void **state)
{
    (void)state;
    struct sync_encoder e;
    assert_int_equal(sync_encoder_init(&e, SYNC_NDJSON, "pi-7"), EL_OK);
    line_is(&e, "sensors/dev1/temp", 42, 1767225600000, 21.5,
            "{\"device\":\"pi-7\",\"series\":\"sensors/dev1/temp\",\"ts\":1767225600000,"
            "\"value\":21.5,\"seq\":42}\n");
    line_is(&e, "a\"b\n", 1, -5, -0.25,
            "{\"device\":\"pi-7\",\"series\":\"a\\\"b\\n\",\"ts\":-5,\"value\":-0.25,\"seq\":1}\n");
    line_is(&e, "x", INT64_MAX, INT64_MIN, NAN,
            "{\"device\":\"pi-7\",\"series\":\"x\",\"ts\":-9223372036854775808,\"value\":null,"
            "\"seq\":9223372036854775807}\n");
    assert_int_equal(sync_encoder_init(&e, SYNC_NDJSON, "dev\"1\\"), EL_OK);
    line_is(&e, "s", 1, 2, 3,
            "{\"device\":\"dev\\\"1\\\\\",\"series\":\"s\",\"ts\":2,\"value\":3,\"seq\":1}\n");
    assert_string_equal(sync_encode_content_type(SYNC_NDJSON), "application/x-ndjson");
}

static void test_influx_lines(void **state)
{
    (void)state;
    struct sync_encoder e;
    assert_int_equal(sync_encoder_init(&e, SYNC_INFLUX, "pi 7,a=b"), EL_OK);
    e.include_seq = true;
    line_is(&e, "sensors/dev1/temp", 42, 1767225600000, 21.5,
            "sensors/dev1/temp,device=pi\\ 7\\,a\\=b value=21.5,seq=42i 1767225600000000000\n");
    line_is(&e, "room 1,temp", 7, 0, -3,
            "room\\ 1\\,temp,device=pi\\ 7\\,a\\=b value=-3,seq=7i 0\n");
    line_is(&e, "#x", 7, -1, 1e21, "\\#x,device=pi\\ 7\\,a\\=b value=1e+21,seq=7i -1000000\n");
    /* no NaN in line protocol: the point keeps seq, value is left out */
    line_is(&e, "n", 8, 1, NAN, "n,device=pi\\ 7\\,a\\=b seq=8i 1000000\n");
    /* beyond year 2262 the ns timestamp is clamped instead of overflowing */
    line_is(&e, "t", 9, INT64_MAX / 1000, 1,
            "t,device=pi\\ 7\\,a\\=b value=1,seq=9i 9223372036854000000\n");
    /* sync.include_seq off (the default): value only; a NaN still needs seq */
    e.include_seq = false;
    line_is(&e, "sensors/dev1/temp", 42, 1767225600000, 21.5,
            "sensors/dev1/temp,device=pi\\ 7\\,a\\=b value=21.5 1767225600000000000\n");
    line_is(&e, "n", 8, 1, NAN, "n,device=pi\\ 7\\,a\\=b seq=8i 1000000\n");
    assert_string_equal(sync_encode_content_type(SYNC_INFLUX), "text/plain; charset=utf-8");
}

static void test_encoder_init(void **state)
{
    (void)state;
    struct sync_encoder e;
    char longid[SYNC_DEVICE_ID_MAX + 1];
    memset(longid, 'a', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    assert_int_equal(sync_encoder_init(&e, SYNC_NDJSON, ""), EL_INVAL);
    assert_int_equal(sync_encoder_init(&e, SYNC_NDJSON, longid), EL_INVAL);
    longid[SYNC_DEVICE_ID_MAX - 1] = '\0';
    memset(longid, '\x01', SYNC_DEVICE_ID_MAX - 1); /* worst case: every byte becomes \u0001 */
    assert_int_equal(sync_encoder_init(&e, SYNC_NDJSON, longid), EL_OK);
    assert_int_equal(e.device_len, 6 * (SYNC_DEVICE_ID_MAX - 1));
    /* the longest series with the worst escaping and the worst device fit the headroom */
    char series[1024];
    memset(series, '\x01', sizeof series);
    char *buf = malloc(SYNC_ENCODE_EVENT_MAX);
    assert_non_null(buf);
    assert_int_not_equal(sync_encode_event(&e, series, sizeof series, INT64_MIN, INT64_MIN,
                                           -1.2345678901234567e-300, buf, SYNC_ENCODE_EVENT_MAX),
                         0);
    assert_int_equal(sync_encoder_init(&e, SYNC_INFLUX, longid), EL_OK);
    assert_int_not_equal(sync_encode_event(&e, series, sizeof series, INT64_MIN, INT64_MIN,
                                           -1.2345678901234567e-300, buf, SYNC_ENCODE_EVENT_MAX),
                         0);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_escaping), cmocka_unit_test(test_influx_escaping),
        cmocka_unit_test(test_escape_bounds), cmocka_unit_test(test_doubles),
        cmocka_unit_test(test_ndjson_lines),  cmocka_unit_test(test_influx_lines),
        cmocka_unit_test(test_encoder_init),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
