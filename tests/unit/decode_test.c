/*
 * decode_test — unit tests of the payload decoder (firmware/decode.c).
 *
 * Every accepted form and every rejection reason, with exact expected values;
 * boundaries (max_payload, timestamp limits, token and depth limits); and
 * buffers that are not NUL-terminated (slices of longer strings, heap buffers
 * of exactly len bytes so that ASan catches any over-read).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"

#define RECV_MS INT64_C(1732440000000)      /* 2024-11-24T09:20:00Z */
#define T_2024_11_24 INT64_C(1732435200000) /* 2024-11-24T08:00:00Z */

static struct decode_result res;

static struct decode_opts opts_value(void)
{
    struct decode_opts o;
    decode_opts_default(&o);
    return o;
}

static struct decode_opts opts_all(void)
{
    struct decode_opts o = opts_value();
    o.fields_all = true;
    return o;
}

static enum decode_reason dec_with(const struct decode_opts *o, const char *s)
{
    memset(&res, 0xa5, sizeof res);
    return decode_payload(o, s, strlen(s), RECV_MS, false, &res);
}

static enum decode_reason dec(const char *s)
{
    struct decode_opts o = opts_value();
    return dec_with(&o, s);
}

static enum decode_reason dec_all(const char *s)
{
    struct decode_opts o = opts_all();
    return dec_with(&o, s);
}

/* Decodes a copy of s in a heap buffer of exactly strlen(s) bytes. */
static enum decode_reason dec_heap(const struct decode_opts *o, const char *s, bool synced)
{
    size_t n = strlen(s);
    char *buf = malloc(n > 0 ? n : 1);
    assert_non_null(buf);
    memcpy(buf, s, n);
    enum decode_reason r = decode_payload(o, buf, n, RECV_MS, synced, &res);
    free(buf);
    return r;
}

static void expect_num(const char *s, double value)
{
    assert_int_equal(dec(s), DECODE_OK);
    assert_int_equal(res.n_events, 1);
    assert_true(res.ev[0].value == value);
    assert_int_equal(res.ev[0].field_len, 0);
}

/* A {"value":1,"ts":<ts_json>} payload with the expected event time. */
static void expect_ts_ms(const char *ts_json, int64_t ts_ms)
{
    char buf[256];
    snprintf(buf, sizeof buf, "{\"value\":1,\"ts\":%s}", ts_json);
    assert_int_equal(dec(buf), DECODE_OK);
    assert_true(res.has_ts);
    assert_int_equal(res.n_events, 1);
    assert_int_equal(res.ev[0].ts_ms, ts_ms);
}

static void expect_ts_reason(const char *ts_json, enum decode_reason reason)
{
    char buf[256];
    snprintf(buf, sizeof buf, "{\"value\":1,\"ts\":%s}", ts_json);
    assert_int_equal(dec(buf), reason);
    assert_int_equal(res.n_events, 0);
}

static void expect_time_ms(const char *text, int64_t ms)
{
    int64_t got = -1;
    assert_true(decode_parse_time(text, strlen(text), &got));
    assert_int_equal(got, ms);
}

static void expect_no_time(const char *text)
{
    int64_t got = 12345;
    assert_false(decode_parse_time(text, strlen(text), &got));
    assert_int_equal(got, 12345);
}

/* ---------- names and defaults ---------- */

static void test_reason_names(void **state)
{
    (void)state;
    assert_string_equal(decode_reason_str(DECODE_OK), "ok");
    assert_string_equal(decode_reason_str(DECODE_MALFORMED), "malformed");
    assert_string_equal(decode_reason_str(DECODE_NO_VALUE), "no_value");
    assert_string_equal(decode_reason_str(DECODE_NON_FINITE), "non_finite");
    assert_string_equal(decode_reason_str(DECODE_BAD_TIMESTAMP), "bad_timestamp");
    assert_string_equal(decode_reason_str(DECODE_OVERSIZED), "oversized");
    assert_string_equal(decode_reason_str(DECODE_TOO_MANY_FIELDS), "too_many_fields");
    assert_string_equal(decode_reason_str(DECODE_NON_NUMERIC), "non_numeric");
    assert_string_equal(decode_reason_str((enum decode_reason)7), "unknown"); /* ingest's */
    assert_non_null(decode_reason_str(DECODE_REASON_COUNT));
    assert_non_null(decode_reason_str((enum decode_reason) - 1));
}

static void test_opts_default(void **state)
{
    (void)state;
    struct decode_opts o;
    memset(&o, 0xff, sizeof o);
    decode_opts_default(&o);
    assert_string_equal(o.value_field, "value");
    assert_string_equal(o.ts_field, "ts");
    assert_false(o.fields_all);
    assert_int_equal(o.max_payload, 65536);
    assert_int_equal(o.ts_min_ms, INT64_C(946684800000));
    assert_int_equal(o.max_future_ms, INT64_C(86400000));
}

/* ---------- bare numbers ---------- */

static void test_bare_numbers(void **state)
{
    (void)state;
    expect_num("21.5", 21.5);
    assert_false(res.has_ts);
    assert_int_equal(res.ev[0].ts_ms, RECV_MS);
    assert_int_equal(res.ev[0].field_off, 0);
    expect_num(" \t\r\n21.5 \r\n\t", 21.5);
    expect_num("0", 0.0);
    expect_num("-0", 0.0);
    expect_num("-17", -17.0);
    expect_num("1e3", 1000.0);
    expect_num("1E+3", 1000.0);
    expect_num("-1.5e-2", -0.015);
    expect_num("0.25", 0.25);
    expect_num("123456789012", 123456789012.0);
    expect_num("1e-999", 0.0); /* underflow is a (tiny) finite number */
    expect_num("1.7976931348623157e308", 1.7976931348623157e308);
    /* 63 characters fit the number buffer */
    expect_num("1.0000000000000000000000000000000000000000000000000000000000000", 1.0);
}

static void test_bare_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        " ",
        " \t\r\n",
        "0x10",
        "0X1F",
        "+1",
        ".5",
        "1.",
        "01",
        "-01",
        "1e",
        "1e+",
        "--1",
        "-",
        "1.5.2",
        "21.5 22",
        "21,5",
        "abc",
        "null",
        "\"21.5",
        "[1",
        "1f",
        "0b101",
        "1_000",
        "\v1",
        "\f1",
        "nanx",
        "infinit",
        "in",
        "1 e3",
        "１",
        /* 64 characters: longer than the number buffer */
        "1.00000000000000000000000000000000000000000000000000000000000000",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (dec(bad[i]) != DECODE_MALFORMED)
            fail_msg("\"%s\" not malformed", bad[i]);
        assert_int_equal(res.n_events, 0);
    }
}

static void test_bare_non_finite(void **state)
{
    (void)state;
    static const char *const words[] = {"nan",       "NaN",          "NAN",    "-nan",  "inf",
                                        "Inf",       "INF",          "-inf",   "+inf",  "Infinity",
                                        "-Infinity", "INFINITY",     " nan\n", "1e999", "-1e999",
                                        "1e400",     "123456789e305"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        if (dec(words[i]) != DECODE_NON_FINITE)
            fail_msg("\"%s\" not non_finite", words[i]);
        assert_int_equal(res.n_events, 0);
    }
}

static void test_bare_number_with_fields_all(void **state)
{
    (void)state;
    assert_int_equal(dec_all("42"), DECODE_OK);
    assert_int_equal(res.n_events, 1);
    assert_true(res.ev[0].value == 42.0);
    assert_int_equal(res.ev[0].field_len, 0);
}

/* ---------- value mode ---------- */

static void test_value_object(void **state)
{
    (void)state;
    expect_num("{\"value\":21.5}", 21.5);
    assert_false(res.has_ts);
    assert_int_equal(res.ev[0].ts_ms, RECV_MS);
    expect_num(" {\n \"value\" : -3 ,\n \"unit\" : \"C\" } \n", -3.0);
    expect_num("{\"unit\":\"C\",\"meta\":{\"value\":9,\"a\":[1,{\"b\":null}]},\"value\":7}", 7.0);
    expect_num("{\"value\":1e2,\"ok\":true,\"bad\":false,\"n\":null,\"l\":[]}", 100.0);
    expect_num("{\"value\":0,\"s\":\"esc \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9\"}", 0.0);
    expect_num("{\"value\":5,\"n\":\"caf\xc3\xa9\"}", 5.0);
}

static void test_value_numeric_string(void **state)
{
    (void)state;
    expect_num("{\"value\":\"21.5\"}", 21.5);
    expect_num("{\"value\":\"-1e3\"}", -1000.0);
    assert_int_equal(dec("{\"value\":\"NaN\"}"), DECODE_NON_FINITE);
    assert_int_equal(dec("{\"value\":\"-inf\"}"), DECODE_NON_FINITE);
    assert_int_equal(dec("{\"value\":\"1e999\"}"), DECODE_NON_FINITE);
    static const char *const not_numbers[] = {
        "{\"value\":\"abc\"}",   "{\"value\":\"\"}",     "{\"value\":\" 21\"}",
        "{\"value\":\" 7 \"}",   "{\"value\":\"0x10\"}", "{\"value\":\"+1\"}",
        "{\"value\":\"21.5 \"}", "{\"value\":\"1,5\"}",  "{\"value\":\"on\\u0020\"}",
        "{\"value\":\"On\"}",
    };
    for (size_t i = 0; i < sizeof not_numbers / sizeof not_numbers[0]; i++) {
        struct decode_words w;
        assert_true(decode_words_parse(DECODE_DEFAULT_WORDS, &w, NULL, 0));
        struct decode_opts o = opts_value();
        o.words = &w;
        if (dec_with(&o, not_numbers[i]) != DECODE_NON_NUMERIC)
            fail_msg("%s not non_numeric", not_numbers[i]);
        assert_int_equal(res.n_events, 0);
        assert_string_equal(res.detail, "field \"value\" is a string");
    }
}

static void test_value_missing_or_not_numeric(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "{}",
        "{\"temp\":21.5}",
        "{\"Value\":1}",
        "{\"values\":1}",
        "{\"data\":{\"value\":1}}",
        "{\"value\":null}",
        "{\"value\":{}}",
        "{\"value\":{\"value\":1}}",
        "{\"value\":[1]}",
        "{\"a\":[{\"value\":1}]}",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (dec(cases[i]) != DECODE_NO_VALUE)
            fail_msg("%s not no_value", cases[i]);
        assert_int_equal(res.n_events, 0);
    }
}

static struct decode_words default_words;

static struct decode_opts opts_words(bool all)
{
    assert_true(decode_words_parse(DECODE_DEFAULT_WORDS, &default_words, NULL, 0));
    struct decode_opts o = all ? opts_all() : opts_value();
    o.words = &default_words;
    return o;
}

/* One row: payload, options (fields_all, words), expected reason and values. */
struct value_row {
    const char *payload;
    bool all, words;
    enum decode_reason reason;
    uint32_t n;
    double v[4];
};

static void test_value_types(void **state)
{
    (void)state;
    static const struct value_row rows[] = {
        {"{\"value\":true}", false, false, DECODE_OK, 1, {1}},
        {"{\"value\":false}", false, false, DECODE_OK, 1, {0}},
        {"{\"value\":\"22.5\"}", false, false, DECODE_OK, 1, {22.5}},
        {"{\"value\":\"ON\"}", false, true, DECODE_OK, 1, {1}},
        {"{\"value\":\"closed\"}", false, true, DECODE_OK, 1, {0}},
        {"{\"value\":\"ON\"}", false, false, DECODE_NON_NUMERIC, 0, {0}},
        {"{\"value\":\"warm\"}", false, true, DECODE_NON_NUMERIC, 0, {0}},
        {"{\"value\":null}", false, true, DECODE_NO_VALUE, 0, {0}},
        {"true", false, false, DECODE_OK, 1, {1}},
        {" false\n", false, false, DECODE_OK, 1, {0}},
        {"ON", false, true, DECODE_OK, 1, {1}},
        {"\"OFF\"", false, true, DECODE_OK, 1, {0}},
        {"\"21.5\"", false, false, DECODE_OK, 1, {21.5}},
        {"ON", false, false, DECODE_MALFORMED, 0, {0}},
        {"\"hello\"", false, true, DECODE_NON_NUMERIC, 0, {0}},
        {"\" 7 \"", false, true, DECODE_NON_NUMERIC, 0, {0}},
        {"\"NaN\"", false, true, DECODE_NON_FINITE, 0, {0}},
        {"hello", false, true, DECODE_MALFORMED, 0, {0}},
        {"TRUE", false, true, DECODE_MALFORMED, 0, {0}},
        /* Zigbee2MQTT with fields = all: booleans, a state word, a numeric string */
        {"{\"temperature\":21.4,\"occupancy\":true,\"state\":\"ON\",\"battery\":\"97\","
         "\"update\":{\"state\":\"idle\"},\"name\":\"hall\"}",
         true,
         true,
         DECODE_OK,
         4,
         {21.4, 1, 1, 97}},
        {"{\"contact\":false,\"mode\":\"eco\"}", true, true, DECODE_OK, 1, {0}},
        {"{\"mode\":\"eco\",\"x\":null}", true, true, DECODE_NO_VALUE, 0, {0}},
        {"{\"a\":\"NaN\",\"b\":1}", true, true, DECODE_OK, 1, {1}},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const struct value_row *r = &rows[i];
        struct decode_opts o = r->words ? opts_words(r->all) : r->all ? opts_all() : opts_value();
        enum decode_reason got = dec_with(&o, r->payload);
        if (got != r->reason)
            fail_msg("row %zu %s: %s, want %s", i, r->payload, decode_reason_str(got),
                     decode_reason_str(r->reason));
        assert_int_equal(res.n_events, r->n);
        for (uint32_t k = 0; k < r->n; k++) {
            if (res.ev[k].value != r->v[k])
                fail_msg("row %zu event %u: %g, want %g", i, k, res.ev[k].value, r->v[k]);
        }
    }
    assert_string_equal(decode_reason_str(DECODE_NON_NUMERIC), "non_numeric");
}

static void test_words_parse(void **state)
{
    (void)state;
    struct decode_words w;
    char err[128];
    assert_true(decode_words_parse(DECODE_DEFAULT_WORDS, &w, err, sizeof err));
    assert_int_equal(w.n, 8);
    assert_true(decode_words_parse("", &w, err, sizeof err));
    assert_int_equal(w.n, 0);
    assert_true(decode_words_parse("heat=2.5,cool=-1e1,sixteen_bytes_ab=3", &w, err, sizeof err));
    assert_int_equal(w.n, 3);
    assert_true(w.w[1].value == -10.0);
    assert_int_equal(w.w[2].len, 16);
    static const char *const bad[] = {
        "ON",
        "ON=",
        "=1",
        "ON=x",
        "ON=1,",
        ",ON=1",
        "O N=1",
        "ON=1,ON=0",
        "ON=nan",
        "7=1",
        "ON=+1",
        "ON=1 ",
        "a\"b=1",
        "seventeen_bytes_x=1",
        "a=1,b=1,c=1,d=1,e=1,f=1,g=1,h=1,i=1,j=1,k=1,l=1,m=1,n=1,o=1,p=1,q=1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        w.n = 99;
        if (decode_words_parse(bad[i], &w, err, sizeof err))
            fail_msg("'%s' accepted", bad[i]);
        assert_int_equal(w.n, 99); /* unchanged */
        assert_true(err[0] != '\0');
    }
}

static void test_value_non_finite(void **state)
{
    (void)state;
    assert_int_equal(dec("{\"value\":1e999}"), DECODE_NON_FINITE);
    assert_int_equal(dec("{\"value\":-1e999,\"ts\":1732435200}"), DECODE_NON_FINITE);
    /* JSON has no NaN literal: Python's json.dumps(float("nan")) is not JSON */
    assert_int_equal(dec("{\"value\":NaN}"), DECODE_MALFORMED);
    assert_int_equal(dec("{\"value\":nan}"), DECODE_MALFORMED);
    assert_int_equal(dec("{\"value\":Infinity}"), DECODE_MALFORMED);
}

static void test_custom_field_names(void **state)
{
    (void)state;
    struct decode_opts o = opts_value();
    o.value_field = "temp";
    o.ts_field = "time";
    assert_int_equal(dec_with(&o, "{\"time\":\"2024-11-24T08:00:00Z\",\"temp\":3.25}"), DECODE_OK);
    assert_true(res.ev[0].value == 3.25);
    assert_true(res.has_ts);
    assert_int_equal(res.ev[0].ts_ms, T_2024_11_24);
    /* "value" and "ts" are ordinary members now */
    assert_int_equal(dec_with(&o, "{\"value\":1,\"ts\":1}"), DECODE_NO_VALUE);
    assert_int_equal(dec_with(&o, "{\"temp\":1,\"ts\":\"junk\"}"), DECODE_OK);
    assert_false(res.has_ts);
}

static void test_null_opts_and_names(void **state)
{
    (void)state;
    assert_int_equal(decode_payload(NULL, "{\"value\":2}", 11, RECV_MS, false, &res), DECODE_OK);
    assert_true(res.ev[0].value == 2.0);
    struct decode_opts o = opts_value();
    o.value_field = NULL;
    o.ts_field = NULL;
    assert_int_equal(
        decode_payload(&o, "{\"value\":2,\"ts\":1732435200}", 27, RECV_MS, false, &res), DECODE_OK);
    assert_int_equal(res.ev[0].ts_ms, T_2024_11_24);
    assert_int_equal(decode_payload(&o, NULL, 0, RECV_MS, false, &res), DECODE_MALFORMED);
    assert_int_equal(decode_payload(&o, NULL, 5, RECV_MS, false, &res), DECODE_MALFORMED);
    assert_int_equal(decode_payload(&o, "1", 1, RECV_MS, false, NULL), DECODE_MALFORMED);
}

static void test_duplicate_keys_last_wins(void **state)
{
    (void)state;
    expect_num("{\"value\":1,\"value\":2}", 2.0);
    assert_int_equal(dec("{\"value\":1,\"value\":null}"), DECODE_NO_VALUE);
    expect_ts_ms("1, \"ts\":1732435200", T_2024_11_24);
    assert_int_equal(dec("{\"value\":1,\"ts\":1732435200,\"ts\":null}"), DECODE_OK);
    assert_false(res.has_ts);
    assert_int_equal(dec_all("{\"a\":1,\"b\":2,\"a\":3}"), DECODE_OK);
    assert_int_equal(res.n_events, 2);
    assert_true(res.ev[0].value == 2.0);
    assert_true(res.ev[1].value == 3.0);
    assert_int_equal(res.ev[1].field_off, 14);
    assert_int_equal(dec_all("{\"a\":1,\"a\":\"x\"}"), DECODE_NO_VALUE);
}

/* ---------- timestamps in payloads ---------- */

static void test_ts_epoch_magnitudes(void **state)
{
    (void)state;
    expect_ts_ms("1732435200", T_2024_11_24);            /* s */
    expect_ts_ms("1732435200.123", T_2024_11_24 + 123);  /* fractional s, exact */
    expect_ts_ms("1732435200.1239", T_2024_11_24 + 123); /* floored */
    expect_ts_ms("1732435200.5", T_2024_11_24 + 500);
    expect_ts_ms("1732435200123", T_2024_11_24 + 123);     /* ms */
    expect_ts_ms("1732435200123.999", T_2024_11_24 + 123); /* fractional ms floored */
    expect_ts_ms("1732435200123456", T_2024_11_24 + 123);  /* us */
    expect_ts_ms("1732435200123999", T_2024_11_24 + 123);
    expect_ts_ms("1732435200123456789", T_2024_11_24 + 123); /* ns */
    expect_ts_ms("1732435200123999999", T_2024_11_24 + 123); /* beyond double precision */
    expect_ts_ms("1.7324352e9", T_2024_11_24);               /* exponent forms */
    expect_ts_ms("1.7324352E12", T_2024_11_24);
    expect_ts_ms("17324352000000e-4", T_2024_11_24 + 0);
    expect_time_ms("99999999999", INT64_C(99999999999000));       /* < 1e11: s (year 5138) ... */
    expect_time_ms("100000000000", INT64_C(100000000000));        /* >= 1e11: ms (1973) */
    expect_time_ms("99999999999999", INT64_C(99999999999999));    /* < 1e14: ms */
    expect_time_ms("100000000000000", INT64_C(100000000000));     /* >= 1e14: us */
    expect_time_ms("99999999999999999", INT64_C(99999999999999)); /* < 1e17: us */
    expect_time_ms("100000000000000000", INT64_C(100000000000));  /* >= 1e17: ns */
    /* ... which is absurd (>= 2100) and rejected by the range check */
    assert_int_equal(dec("{\"value\":1,\"ts\":99999999999}"), DECODE_BAD_TIMESTAMP);
}

static void test_ts_numeric_strings(void **state)
{
    (void)state;
    expect_ts_ms("\"1732435200\"", T_2024_11_24);
    expect_ts_ms("\"1732435200.25\"", T_2024_11_24 + 250);
    expect_ts_ms("\"1732435200123\"", T_2024_11_24 + 123);
    expect_ts_ms("\"1732435200123456\"", T_2024_11_24 + 123);
    expect_ts_ms("\"1732435200123456789\"", T_2024_11_24 + 123);
}

static void test_ts_rfc3339(void **state)
{
    (void)state;
    expect_ts_ms("\"2024-11-24T08:00:00Z\"", T_2024_11_24);
    expect_ts_ms("\"2024-11-24t08:00:00z\"", T_2024_11_24);
    expect_ts_ms("\"2024-11-24 08:00:00Z\"", T_2024_11_24);
    expect_ts_ms("\"2024-11-24T09:00:00+01:00\"", T_2024_11_24);
    expect_ts_ms("\"2024-11-24T03:30:00-04:30\"", T_2024_11_24);
    expect_ts_ms("\"2024-11-24T08:00:00-00:00\"", T_2024_11_24);
    expect_ts_ms("\"2024-11-25T07:59:00+23:59\"", T_2024_11_24);
    expect_ts_ms("\"2024-11-24T08:00:00.5Z\"", T_2024_11_24 + 500);
    expect_ts_ms("\"2024-11-24T08:00:00.12Z\"", T_2024_11_24 + 120);
    expect_ts_ms("\"2024-11-24T08:00:00.123Z\"", T_2024_11_24 + 123);
    expect_ts_ms("\"2024-11-24T08:00:00.123999999Z\"", T_2024_11_24 + 123);
    expect_ts_ms("\"2024-11-24T10:00:00.250+02:00\"", T_2024_11_24 + 250);
}

static void test_ts_absent_or_null(void **state)
{
    (void)state;
    assert_int_equal(dec("{\"value\":1}"), DECODE_OK);
    assert_false(res.has_ts);
    assert_int_equal(res.ev[0].ts_ms, RECV_MS);
    assert_int_equal(dec("{\"value\":1,\"ts\":null}"), DECODE_OK);
    assert_false(res.has_ts);
    assert_int_equal(res.ev[0].ts_ms, RECV_MS);
    /* a nested ts is not the payload's */
    assert_int_equal(dec("{\"value\":1,\"meta\":{\"ts\":\"junk\"}}"), DECODE_OK);
    assert_false(res.has_ts);
}

static void test_ts_unparsable(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "true",
        "false",
        "{}",
        "{\"s\":1}",
        "[]",
        "[1732435200]",
        "\"\"",
        "\"soon\"",
        "\"1732435200 \"",
        "\" 1732435200\"",
        "\"0x10\"",
        "\"+1732435200\"",
        "\"NaN\"",
        "\"2024-11-24\"",
        "\"2024-11-24T08:00:00\"",
        "\"2024-11-24T08:00Z\"",
        "\"2024-11-24T08:00:00+0100\"",
        "\"2024-11-24T08:00:00+01\"",
        "\"2024-11-24T08:00:00.Z\"",
        "\"2024-11-24X08:00:00Z\"",
        "\"2024-11-24T08:00:00ZZ\"",
        "\"2024-13-01T00:00:00Z\"",
        "\"2024-00-01T00:00:00Z\"",
        "\"2024-11-00T00:00:00Z\"",
        "\"2024-11-31T00:00:00Z\"",
        "\"2024-04-31T00:00:00Z\"",
        "\"2023-02-29T00:00:00Z\"",
        "\"2024-11-24T24:00:00Z\"",
        "\"2024-11-24T08:60:00Z\"",
        "\"2024-11-24T08:00:61Z\"",
        "\"2024-11-24T08:00:00+24:00\"",
        "\"2024-11-24T08:00:00+01:60\"",
        "\"24-11-24T08:00:00Z\"",
        "\"2024-1-24T08:00:00Z\"",
        "\"2024-11-24T08:00:00\\u005a\"",
        "1e999",
        "\"1e999\"",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char buf[128];
        snprintf(buf, sizeof buf, "{\"value\":1,\"ts\":%s}", bad[i]);
        if (dec(buf) != DECODE_BAD_TIMESTAMP)
            fail_msg("%s not bad_timestamp", buf);
        assert_int_equal(res.n_events, 0);
    }
}

static void test_ts_leap_years_and_seconds(void **state)
{
    (void)state;
    expect_ts_ms("\"2024-02-29T12:00:00Z\"", INT64_C(1709208000000));
    expect_ts_ms("\"2000-02-29T00:00:00Z\"", INT64_C(951782400000)); /* 400-year rule */
    expect_ts_reason("\"2023-02-29T00:00:00Z\"", DECODE_BAD_TIMESTAMP);
    /* 23:59:60 clamps to 23:59:59.999, fraction or not */
    expect_ts_ms("\"2016-12-31T23:59:60Z\"", INT64_C(1483228799999));
    expect_ts_ms("\"2016-12-31T23:59:60.5Z\"", INT64_C(1483228799999));
    expect_ts_ms("\"2017-01-01T08:59:60+09:00\"", INT64_C(1483228799999));
}

static void test_ts_range(void **state)
{
    (void)state;
    /* ts_min_ms (2000-01-01) is the first plausible instant */
    expect_ts_ms("946684800000", INT64_C(946684800000));
    expect_ts_ms("\"2000-01-01T00:00:00Z\"", INT64_C(946684800000));
    expect_ts_reason("946684799999", DECODE_BAD_TIMESTAMP);
    expect_ts_reason("\"1999-12-31T23:59:59.999Z\"", DECODE_BAD_TIMESTAMP);
    expect_ts_reason("0", DECODE_BAD_TIMESTAMP);
    expect_ts_reason("-1732435200", DECODE_BAD_TIMESTAMP);
    expect_ts_reason("\"1970-01-01T00:00:00Z\"", DECODE_BAD_TIMESTAMP);
    /* 2100-01-01 is always absurd, clock synced or not */
    expect_ts_ms("4102444799999", INT64_C(4102444799999));
    expect_ts_ms("\"2099-12-31T23:59:59.999Z\"", INT64_C(4102444799999));
    expect_ts_reason("4102444800000", DECODE_BAD_TIMESTAMP);
    expect_ts_reason("\"2100-01-01T00:00:00Z\"", DECODE_BAD_TIMESTAMP);
    expect_ts_reason("\"9999-12-31T23:59:59Z\"", DECODE_BAD_TIMESTAMP);
    expect_ts_reason("1e30", DECODE_BAD_TIMESTAMP);

    struct decode_opts o = opts_value();
    o.ts_min_ms = 0;
    assert_int_equal(dec_with(&o, "{\"value\":1,\"ts\":0}"), DECODE_OK);
    assert_int_equal(res.ev[0].ts_ms, 0);
    assert_int_equal(dec_with(&o, "{\"value\":1,\"ts\":-0.001}"), DECODE_BAD_TIMESTAMP);
}

static enum decode_reason dec_synced(const char *s, bool synced)
{
    struct decode_opts o = opts_value();
    return decode_payload(&o, s, strlen(s), RECV_MS, synced, &res);
}

static void test_ts_future(void **state)
{
    (void)state;
    char buf[128];
    /* recv + 1 day is the latest plausible event time with a synced clock */
    snprintf(buf, sizeof buf, "{\"value\":1,\"ts\":%lld}", (long long)(RECV_MS + 86400000));
    assert_int_equal(dec_synced(buf, true), DECODE_OK);
    assert_int_equal(res.ev[0].ts_ms, RECV_MS + 86400000);
    snprintf(buf, sizeof buf, "{\"value\":1,\"ts\":%lld}", (long long)(RECV_MS + 86400001));
    assert_int_equal(dec_synced(buf, true), DECODE_BAD_TIMESTAMP);
    /* an unsynced clock (a board that booted in 1970) is no reference */
    assert_int_equal(dec_synced(buf, false), DECODE_OK);
    assert_int_equal(res.ev[0].ts_ms, RECV_MS + 86400001);
    assert_int_equal(decode_payload(NULL, buf, strlen(buf), 0, false, &res), DECODE_OK);
    assert_int_equal(decode_payload(NULL, buf, strlen(buf), 0, true, &res), DECODE_BAD_TIMESTAMP);
    /* no overflow at the extremes of recv and max_future */
    struct decode_opts o = opts_value();
    o.max_future_ms = INT64_MAX;
    assert_int_equal(decode_payload(&o, buf, strlen(buf), INT64_MAX, true, &res), DECODE_OK);
    o.max_future_ms = INT64_MIN;
    assert_int_equal(decode_payload(&o, buf, strlen(buf), INT64_MIN, true, &res),
                     DECODE_BAD_TIMESTAMP);
    /* without a timestamp, recv is used as is, even in 1970 */
    assert_int_equal(decode_payload(NULL, "5", 1, 1234, true, &res), DECODE_OK);
    assert_int_equal(res.ev[0].ts_ms, 1234);
}

/* ---------- decode_parse_time ---------- */

static void test_parse_time(void **state)
{
    (void)state;
    expect_time_ms("2024-11-24T08:00:00Z", T_2024_11_24);
    expect_time_ms("2024-11-24 09:00:00.999+01:00", T_2024_11_24 + 999);
    expect_time_ms("1970-01-01T00:00:00Z", 0);
    expect_time_ms("1969-12-31T23:59:59.999Z", -1);
    expect_time_ms("0000-01-01T00:00:00Z", INT64_C(-62167219200000));
    expect_time_ms("9999-12-31T23:59:59Z", INT64_C(253402300799000));
    expect_time_ms("2100-03-01T00:00:00Z", INT64_C(4107542400000));
    expect_time_ms("1732435200", T_2024_11_24);
    expect_time_ms("1732435200123", T_2024_11_24 + 123);
    expect_time_ms("1732435200123456", T_2024_11_24 + 123);
    expect_time_ms("1732435200123456789", T_2024_11_24 + 123);
    expect_time_ms("1732435200.9999", T_2024_11_24 + 999);
    expect_time_ms("0", 0);
    expect_time_ms("0.0009", 0);
    expect_time_ms("-0.0009", -1); /* floor, not truncation */
    expect_time_ms("-1", -1000);
    expect_time_ms("1e-99999999999", 0);
    expect_time_ms("999999999999999999999", INT64_C(999999999999999)); /* ns magnitude */
    expect_no_time("");
    expect_no_time("2100-02-29T00:00:00Z"); /* century, not leap */
    expect_no_time("now");
    expect_no_time("-1h");
    expect_no_time(" 1732435200");
    expect_no_time("1732435200 ");
    expect_no_time("2024-11-24T08:00:00Z ");
    expect_no_time("1e99999999999"); /* beyond int64 ms */
    expect_no_time("1e30");
    expect_no_time("99999999999999999999999999"); /* 1e25 ns = 1e19 ms */
    int64_t ms = 7;
    assert_false(decode_parse_time(NULL, 3, &ms));
    assert_false(decode_parse_time("123", 3, NULL));
    assert_int_equal(ms, 7);
}

static void test_parse_time_slices(void **state)
{
    (void)state;
    int64_t ms = 0;
    /* the byte after len must not be read: a digit, then a truncated offset */
    const char *s = "17324352001";
    assert_true(decode_parse_time(s, 10, &ms));
    assert_int_equal(ms, T_2024_11_24);
    const char *r = "2024-11-24T08:00:00Z";
    assert_false(decode_parse_time(r, 19, &ms));
    assert_false(decode_parse_time(r, 10, &ms));
    const char *o = "2024-11-24T09:00:00+01:00";
    for (size_t n = 5; n < strlen(o); n++) /* "2024" alone is an epoch number */
        assert_false(decode_parse_time(o, n, &ms));
    /* heap buffers of exactly len bytes, every prefix length */
    for (size_t n = 1; n <= strlen(o); n++) {
        char *buf = malloc(n);
        assert_non_null(buf);
        memcpy(buf, o, n);
        bool ok = decode_parse_time(buf, n, &ms);
        free(buf);
        assert_true(ok == (n <= 4 || n == strlen(o)));
    }
}

/* ---------- fields_all ---------- */

static void expect_field(uint32_t i, const char *payload, const char *name, double value)
{
    assert_true(i < res.n_events);
    assert_int_equal(res.ev[i].field_len, strlen(name));
    assert_memory_equal(payload + res.ev[i].field_off, name, strlen(name));
    assert_true(res.ev[i].value == value);
}

static void test_fields_all_mixed(void **state)
{
    (void)state;
    const char *p = "{\"temp\":21.5,\"name\":\"kitchen\",\"hum\":40,\"ts\":1732435200,"
                    "\"ok\":true,\"off\":false,\"n\":null,\"nested\":{\"a\":1,\"b\":[2]},"
                    "\"arr\":[1,2,3],\"s\":\"5\",\"value\":-1e-3,\"caf\xc3\xa9\":7}";
    assert_int_equal(dec_all(p), DECODE_OK);
    assert_int_equal(res.n_events, 7);
    assert_true(res.has_ts);
    expect_field(0, p, "temp", 21.5);
    expect_field(1, p, "hum", 40.0);
    expect_field(2, p, "ok", 1.0);
    expect_field(3, p, "off", 0.0);
    expect_field(4, p, "s", 5.0);
    expect_field(5, p, "value", -1e-3);
    expect_field(6, p, "caf\xc3\xa9", 7.0);
    assert_int_equal(res.ev[0].field_off, 2);
    for (uint32_t i = 0; i < res.n_events; i++)
        assert_int_equal(res.ev[i].ts_ms, T_2024_11_24);

    assert_int_equal(dec_all("{\"a\":1,\"b\":2}"), DECODE_OK);
    assert_false(res.has_ts);
    assert_int_equal(res.ev[1].ts_ms, RECV_MS);
}

static void test_fields_all_no_value(void **state)
{
    (void)state;
    assert_int_equal(dec_all("{}"), DECODE_NO_VALUE);
    assert_int_equal(dec_all("{\"name\":\"x\",\"s\":\" 5\",\"u\":\"ON\",\"n\":null}"),
                     DECODE_NO_VALUE); /* no state words configured */
    assert_int_equal(dec_all("{\"ts\":1732435200}"), DECODE_NO_VALUE);
    assert_int_equal(dec_all("{\"o\":{\"a\":1},\"l\":[1]}"), DECODE_NO_VALUE);
}

static void test_fields_all_bad_keys(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{\"a+b\":1}",
        "{\"a#\":1}",
        "{\"#\":1}",
        "{\"\":1}",
        "{\"a\\nb\":1}",
        "{\"a\\u002bb\":1}",
        "{\"ok\":1,\"a/+\":2}",
        "{\"del\x7f\":1}",
        "{\"\xff\":1}",
        "{\"\xc3\":1}",
        "{\"\xc0\xaf\":1}",
        "{\"\xed\xa0\x80\":1}",
        "{\"\xf4\x90\x80\x80\":1}",
        "{\"\xe2\x82\":1}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (dec_all(bad[i]) != DECODE_MALFORMED)
            fail_msg("%s not malformed", bad[i]);
    }
    /* keys of ignored members do not matter; nor in value mode */
    assert_int_equal(dec_all("{\"a+b\":\"x\",\"#\":{},\"t\":1}"), DECODE_OK);
    assert_int_equal(res.n_events, 1);
    assert_int_equal(dec("{\"a+b\":1,\"value\":2}"), DECODE_OK);
    /* '/' and valid multi-byte UTF-8 are fine */
    assert_int_equal(dec_all("{\"a/b\":1,\"\xe2\x82\xac\":2,\"\xf0\x9f\x8c\xa1\":3}"), DECODE_OK);
    assert_int_equal(res.n_events, 3);
}

static void test_fields_all_non_finite(void **state)
{
    (void)state;
    assert_int_equal(dec_all("{\"a\":1,\"b\":1e999}"), DECODE_NON_FINITE);
    assert_int_equal(res.n_events, 0);
    /* numeric strings are not fields, so "NaN" is simply ignored */
    assert_int_equal(dec_all("{\"a\":1,\"b\":\"NaN\"}"), DECODE_OK);
    assert_int_equal(res.n_events, 1);
}

static void build_members(char *buf, size_t cap, int n_numeric, int n_other)
{
    size_t pos = 0;
    pos += (size_t)snprintf(buf + pos, cap - pos, "{");
    for (int i = 0; i < n_numeric; i++)
        pos += (size_t)snprintf(buf + pos, cap - pos, "%s\"f%d\":%d", i ? "," : "", i, i);
    for (int i = 0; i < n_other; i++)
        pos +=
            (size_t)snprintf(buf + pos, cap - pos, "%s\"s%d\":\"x\"", i || n_numeric ? "," : "", i);
    snprintf(buf + pos, cap - pos, "}");
}

static void test_fields_all_limits(void **state)
{
    (void)state;
    static char buf[16384];
    build_members(buf, sizeof buf, DECODE_MAX_FIELDS, 100);
    assert_int_equal(dec_all(buf), DECODE_OK);
    assert_int_equal(res.n_events, DECODE_MAX_FIELDS);
    expect_field(DECODE_MAX_FIELDS - 1, buf, "f63", 63.0);
    build_members(buf, sizeof buf, DECODE_MAX_FIELDS + 1, 0);
    assert_int_equal(dec_all(buf), DECODE_TOO_MANY_FIELDS);
    assert_int_equal(res.n_events, 0);
    build_members(buf, sizeof buf, 255, 0); /* 511 tokens: the most that fit */
    assert_int_equal(dec_all(buf), DECODE_TOO_MANY_FIELDS);
    build_members(buf, sizeof buf, 256, 0); /* 513 tokens: too complex */
    assert_int_equal(dec_all(buf), DECODE_MALFORMED);
}

/* ---------- structure ---------- */

static void test_malformed_json(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{",
        "}",
        "{\"value\":1",
        "{\"value\":1}}",
        "{\"value\":1} x",
        "{\"value\":1}{}",
        "{\"value\":1} 2",
        "{\"value\":1}\"\"",
        "{\"value\":1,}",
        "{,\"value\":1}",
        "{\"value\":1,,\"a\":2}",
        "{\"value\" 1}",
        "{\"value\"::1}",
        "{\"value\":1:2}",
        "{\"value\":1 \"a\":2}",
        "{\"a\":\"b\":\"c\",\"value\":1}",
        "{\"a\",\"value\":1}",
        "{\"a\":,\"value\":1}",
        "{\"value\":}",
        "{\"value\"}",
        "{1:2,\"value\":1}",
        "{{}:1,\"value\":1}",
        "{\"a\":[1 2],\"value\":1}",
        "{\"a\":[1,],\"value\":1}",
        "{\"a\":[,1],\"value\":1}",
        "{\"a\":[1,2},\"value\":1}",
        "{\"a\":{\"b\":1],\"value\":1}",
        "{\"value\":tru}",
        "{\"value\":nul}",
        "{\"value\":1.2.3}",
        "{\"value\":01}",
        "{\"value\":+1}",
        "{\"value\":.5}",
        "{\"value\":0x10}",
        "{\"value\":-}",
        "{'value':1}",
        "{value:1}",
        "{\"value\":1,\"a\":\"x\ty\"}",
        "{\"value\":1,\"a\":\"x\ny\"}",
        "{\"value\":1,\"a\":\"\\x\"}",
        "{\"value\":1,\"a\":\"\\u12\"}",
        "{\"value\":1,\"a\":\"unterminated}",
        "{\"value\":1,\"a\":tr ue}",
        "{\"value\":1}\v",
        "\xef\xbb\xbf{\"value\":1}",
        "[{\"value\":1},2,]", /* arrays are batches of readings: still JSON */
        "[1 2]",
        "\"{\\\"value\\\":1}\"",
        "{\"value\":1e}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (dec(bad[i]) != DECODE_MALFORMED)
            fail_msg("%s not malformed (%s)", bad[i], decode_reason_str(dec(bad[i])));
        assert_int_equal(res.n_events, 0);
        if (dec_all(bad[i]) != DECODE_MALFORMED)
            fail_msg("%s not malformed with fields_all", bad[i]);
    }
}

static void test_embedded_nul(void **state)
{
    (void)state;
    static const char p[] = "{\"value\":1}\0garbage";
    assert_int_equal(decode_payload(NULL, p, sizeof p - 1, RECV_MS, false, &res), DECODE_MALFORMED);
    assert_int_equal(decode_payload(NULL, p, 12, RECV_MS, false, &res), DECODE_MALFORMED);
    assert_int_equal(decode_payload(NULL, p, 11, RECV_MS, false, &res), DECODE_OK);
    static const char q[] = "{\"value\":1,\"a\":\"x\0y\"}";
    assert_int_equal(decode_payload(NULL, q, sizeof q - 1, RECV_MS, false, &res), DECODE_MALFORMED);
    assert_int_equal(decode_payload(NULL, "2\0", 2, RECV_MS, false, &res), DECODE_MALFORMED);
}

static void test_deep_nesting(void **state)
{
    (void)state;
    static char buf[4096];
    /* 62 arrays inside the top-level object: within the depth limit */
    size_t pos = (size_t)snprintf(buf, sizeof buf, "{\"a\":");
    for (int i = 0; i < 62; i++)
        buf[pos++] = '[';
    for (int i = 0; i < 62; i++)
        buf[pos++] = ']';
    snprintf(buf + pos, sizeof buf - pos, ",\"value\":4}");
    expect_num(buf, 4.0);
    /* 100 nested arrays fit the token array but not the depth limit */
    pos = (size_t)snprintf(buf, sizeof buf, "{\"value\":1,\"a\":");
    for (int i = 0; i < 100; i++)
        buf[pos++] = '[';
    for (int i = 0; i < 100; i++)
        buf[pos++] = ']';
    snprintf(buf + pos, sizeof buf - pos, "}");
    assert_int_equal(dec(buf), DECODE_MALFORMED);
    /* 300 levels: too many tokens too, rejected without recursion or a crash */
    pos = (size_t)snprintf(buf, sizeof buf, "{\"value\":1,\"a\":");
    for (int i = 0; i < 300; i++)
        pos += (size_t)snprintf(buf + pos, sizeof buf - pos, "{\"a\":");
    pos += (size_t)snprintf(buf + pos, sizeof buf - pos, "1");
    for (int i = 0; i < 301; i++)
        buf[pos++] = '}';
    buf[pos] = '\0';
    assert_int_equal(dec(buf), DECODE_MALFORMED);
    /* 2000 opening brackets, never closed */
    memset(buf, '[', 2000);
    buf[0] = '{';
    buf[2000] = '\0';
    assert_int_equal(dec(buf), DECODE_MALFORMED);
}

static void test_token_overflow(void **state)
{
    (void)state;
    static char buf[32768];
    build_members(buf, sizeof buf, 0, 600);
    assert_int_equal(dec(buf), DECODE_MALFORMED);
    assert_int_equal(dec_all(buf), DECODE_MALFORMED);
    build_members(buf, sizeof buf, 600, 0);
    assert_int_equal(dec_all(buf), DECODE_MALFORMED);
    /* an array of 1000 numbers as a member: too many tokens */
    size_t pos = (size_t)snprintf(buf, sizeof buf, "{\"value\":1,\"a\":[0");
    for (int i = 0; i < 1000; i++)
        pos += (size_t)snprintf(buf + pos, sizeof buf - pos, ",%d", i);
    snprintf(buf + pos, sizeof buf - pos, "]}");
    assert_int_equal(dec(buf), DECODE_MALFORMED);
    /* 200 other members plus the value: 403 tokens, fine */
    build_members(buf, sizeof buf, 0, 200);
    buf[strlen(buf) - 1] = '\0';
    strcat(buf, ",\"value\":9}");
    expect_num(buf, 9.0);
}

/* ---------- sizes and buffers ---------- */

static void test_max_payload_boundary(void **state)
{
    (void)state;
    struct decode_opts o = opts_value();
    o.max_payload = 14;
    assert_int_equal(dec_with(&o, "{\"value\":21.5}"), DECODE_OK); /* exactly 14 bytes */
    assert_int_equal(dec_with(&o, "{\"value\":21.55}"), DECODE_OVERSIZED);
    assert_int_equal(dec_with(&o, "not json at all!"), DECODE_OVERSIZED); /* checked first */
    o.max_payload = 0;
    assert_int_equal(dec_with(&o, ""), DECODE_MALFORMED);
    assert_int_equal(dec_with(&o, "1"), DECODE_OVERSIZED);

    /* the default: 64 KiB, exactly and one byte over */
    static char big[65537 + 1];
    memset(big, ' ', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    memcpy(big, "{\"value\":3}", 11);
    assert_int_equal(decode_payload(NULL, big, 65536, RECV_MS, false, &res), DECODE_OK);
    assert_true(res.ev[0].value == 3.0);
    assert_int_equal(decode_payload(NULL, big, 65537, RECV_MS, false, &res), DECODE_OVERSIZED);
}

static void test_not_nul_terminated(void **state)
{
    (void)state;
    /* slices whose next byte would change the meaning if it were read */
    assert_int_equal(decode_payload(NULL, "21.5999", 4, RECV_MS, false, &res), DECODE_OK);
    assert_true(res.ev[0].value == 21.5);
    assert_int_equal(decode_payload(NULL, "1e3x", 3, RECV_MS, false, &res), DECODE_OK);
    assert_true(res.ev[0].value == 1000.0);
    assert_int_equal(decode_payload(NULL, "12", 1, RECV_MS, false, &res), DECODE_OK);
    assert_true(res.ev[0].value == 1.0);
    assert_int_equal(decode_payload(NULL, "-5", 1, RECV_MS, false, &res), DECODE_MALFORMED);
    assert_int_equal(decode_payload(NULL, "nan9", 3, RECV_MS, false, &res), DECODE_NON_FINITE);
    const char *obj = "{\"value\":1}7";
    assert_int_equal(decode_payload(NULL, obj, 11, RECV_MS, false, &res), DECODE_OK);
    assert_true(res.ev[0].value == 1.0);
    assert_int_equal(decode_payload(NULL, obj, 10, RECV_MS, false, &res), DECODE_MALFORMED);
    const char *ts = "{\"value\":1,\"ts\":1732435200}123";
    assert_int_equal(decode_payload(NULL, ts, 27, RECV_MS, false, &res), DECODE_OK);
    assert_int_equal(res.ev[0].ts_ms, T_2024_11_24);

    /* heap buffers of exactly len bytes: ASan reports any over-read */
    struct decode_opts o = opts_value();
    struct decode_opts a = opts_all();
    assert_int_equal(dec_heap(&o, "21.5", false), DECODE_OK);
    assert_int_equal(dec_heap(&o, "7", false), DECODE_OK);
    assert_int_equal(dec_heap(&o, "-", false), DECODE_MALFORMED);
    assert_int_equal(dec_heap(&o, "1e", false), DECODE_MALFORMED);
    assert_int_equal(dec_heap(&o, "Infinity", false), DECODE_NON_FINITE);
    assert_int_equal(dec_heap(&o, "", false), DECODE_MALFORMED);
    assert_int_equal(dec_heap(&o, "{\"value\":\"2024\"}", false), DECODE_OK);
    assert_int_equal(dec_heap(&o, "{\"value\":1,\"ts\":\"2024-11-24T08:00:00.123+00:00\"}", true),
                     DECODE_OK);
    assert_int_equal(res.ev[0].ts_ms, T_2024_11_24 + 123);
    assert_int_equal(dec_heap(&a, "{\"k\":-2}", false), DECODE_OK);
    assert_int_equal(res.ev[0].field_off, 2);
    assert_int_equal(res.ev[0].field_len, 1);
    assert_true(res.ev[0].value == -2.0);
}

static void test_heap_prefixes(void **state)
{
    (void)state;
    /* Every prefix of these payloads, each in an exact-size heap buffer: no
     * over-read, and only the complete payload (or a complete number) is OK. */
    static const char *const payloads[] = {
        "{\"value\":21.5,\"ts\":\"2024-11-24T09:00:00.5+01:00\"}",
        "{\"a\":1,\"b\":[1,{\"c\":\"\\u00e9\"}],\"ts\":1732435200123456}",
        "{\"value\":\"-1.5e2\",\"ts\":null}",
        "  -1.25e+2  ",
    };
    struct decode_opts o = opts_value();
    struct decode_opts a = opts_all();
    for (size_t p = 0; p < sizeof payloads / sizeof payloads[0]; p++) {
        size_t n = strlen(payloads[p]);
        for (size_t k = 0; k <= n; k++) {
            char *buf = malloc(k > 0 ? k : 1);
            assert_non_null(buf);
            memcpy(buf, payloads[p], k);
            enum decode_reason r1 = decode_payload(&o, buf, k, RECV_MS, true, &res);
            enum decode_reason r2 = decode_payload(&a, buf, k, RECV_MS, false, &res);
            free(buf);
            if (payloads[p][0] == '{' && k < n) {
                assert_int_equal(r1, DECODE_MALFORMED);
                assert_int_equal(r2, DECODE_MALFORMED);
            }
        }
    }
    assert_int_equal(dec_heap(&o, payloads[0], true), DECODE_OK);
    assert_true(res.ev[0].value == 21.5);
    assert_int_equal(res.ev[0].ts_ms, T_2024_11_24 + 500);
    assert_int_equal(dec_heap(&a, payloads[1], false), DECODE_OK);
    assert_int_equal(res.n_events, 1);
    assert_int_equal(res.ev[0].field_off, 2);
    assert_int_equal(res.ev[0].field_len, 1);
    assert_int_equal(res.ev[0].ts_ms, T_2024_11_24 + 123);
    assert_int_equal(dec_heap(&o, payloads[2], false), DECODE_OK);
    assert_true(res.ev[0].value == -150.0);
    assert_false(res.has_ts);
    assert_int_equal(dec_heap(&o, payloads[3], false), DECODE_OK);
    assert_true(res.ev[0].value == -125.0);
}

/* ---- [decode] options: paths, flattening, drop/keep, arrays, units ---- */

enum row_mode { M_VALUE, M_ALL, M_SECTION }; /* M_SECTION: fields_all, flatten, strict */

struct fleet_row {
    const char *what;
    enum row_mode mode;
    enum decode_format format;
    const char *value_field, *ts_field, *keep, *drop;
    enum decode_time_unit unit;
    const char *payload;
    enum decode_reason want;
    const char *events; /* "name=value;..." names below topic "t" ("" = t), in order */
    int64_t ts;         /* 0: the receive time */
    const char *detail; /* a substring of the detail, or NULL */
};

static const struct fleet_row fleet_rows[] = {
    {"zigbee2mqtt, fields = all", M_SECTION, DECODE_FMT_AUTO, NULL, NULL, NULL, NULL, 0,
     "{\"temperature\":21.4,\"humidity\":40.1,\"battery\":97,\"occupancy\":true,"
     "\"linkquality\":120}",
     DECODE_OK, "t/temperature=21.4;t/humidity=40.1;t/battery=97;t/occupancy=1;t/linkquality=120",
     0, NULL},
    {"zigbee2mqtt with a string member: a dead letter, not silence", M_SECTION, DECODE_FMT_AUTO,
     NULL, NULL, NULL, NULL, 0, "{\"temperature\":21.4,\"update\":\"idle\"}", DECODE_NON_NUMERIC,
     "", 0, "field \"update\" is a string"},
    {"... unless drop_fields names it", M_SECTION, DECODE_FMT_AUTO, NULL, NULL, NULL, "update", 0,
     "{\"temperature\":21.4,\"update\":\"idle\"}", DECODE_OK, "t/temperature=21.4", 0, NULL},
    {"tasmota: nested object flattened, strings dropped", M_SECTION, DECODE_FMT_AUTO, NULL, NULL,
     NULL, "Time, TempUnit", 0,
     "{\"Time\":\"2026-12-04T10:00:00\",\"AM2301\":{\"Temperature\":21.4,\"Humidity\":40.1},"
     "\"TempUnit\":\"C\"}",
     DECODE_OK, "t/AM2301/Temperature=21.4;t/AM2301/Humidity=40.1", 0, NULL},
    {"tasmota: one value by path", M_VALUE, DECODE_FMT_AUTO, "AM2301.Temperature", NULL, NULL, NULL,
     0, "{\"Time\":\"x\",\"AM2301\":{\"Temperature\":21.4,\"Humidity\":40.1}}", DECODE_OK, "=21.4",
     0, NULL},
    {"shelly gen2: keep_fields picks members, nested by path", M_SECTION, DECODE_FMT_AUTO, NULL,
     NULL, "apower, voltage, aenergy.total", NULL, 0,
     "{\"id\":0,\"apower\":12.5,\"voltage\":231.2,\"aenergy\":{\"total\":1234.5,"
     "\"by_minute\":[1,2,3]}}",
     DECODE_OK, "t/apower=12.5;t/voltage=231.2;t/aenergy/total=1234.5", 0, NULL},
    {"a time field of another name", M_VALUE, DECODE_FMT_AUTO, NULL, "timestamp", NULL, NULL, 0,
     "{\"value\":5,\"timestamp\":1767225600000}", DECODE_OK, "=5", 1767225600000, NULL},
    {"a nested time in seconds, stated", M_VALUE, DECODE_FMT_AUTO, "data.v", "meta.t", NULL, NULL,
     DECODE_TIME_S, "{\"data\":{\"v\":1.5},\"meta\":{\"t\":1767225600.25}}", DECODE_OK, "=1.5",
     1767225600250, NULL},
    {"time in ns, stated (magnitude would agree)", M_VALUE, DECODE_FMT_AUTO, NULL, NULL, NULL, NULL,
     DECODE_TIME_NS, "{\"value\":1,\"ts\":1767225600123456789}", DECODE_OK, "=1", 1767225600123,
     NULL},
    {"time in ms, stated, small", M_VALUE, DECODE_FMT_AUTO, NULL, NULL, NULL, NULL, DECODE_TIME_MS,
     "{\"value\":1,\"ts\":1000}", DECODE_BAD_TIMESTAMP, "", 0, NULL},
    {"an array of readings, each with its time", M_VALUE, DECODE_FMT_AUTO, NULL, NULL, NULL, NULL,
     0, "[{\"ts\":1767225600000,\"value\":1},{\"ts\":1767225601000,\"value\":2}]", DECODE_OK,
     "=1;=2", -1, NULL},
    {"an array of bare values", M_VALUE, DECODE_FMT_AUTO, NULL, NULL, NULL, NULL, 0,
     "[1, 2.5, true, \"ON\"]", DECODE_OK, "=1;=2.5;=1;=1", 0, NULL},
    {"an array where only some have a time", M_VALUE, DECODE_FMT_AUTO, NULL, NULL, NULL, NULL, 0,
     "[{\"ts\":1767225600000,\"value\":1},{\"value\":2}]", DECODE_BAD_TIMESTAMP, "", 0,
     "1 of 2 elements have a time"},
    {"an array with a bad element", M_VALUE, DECODE_FMT_AUTO, NULL, NULL, NULL, NULL, 0,
     "[{\"value\":1},{\"v\":2}]", DECODE_NO_VALUE, "", 0, "element 1"},
    {"an empty array", M_VALUE, DECODE_FMT_AUTO, NULL, NULL, NULL, NULL, 0, "[]", DECODE_NO_VALUE,
     "", 0, NULL},
    {"state word, auto", M_VALUE, DECODE_FMT_AUTO, NULL, NULL, NULL, NULL, 0, "OFF", DECODE_OK,
     "=0", 0, NULL},
    {"state word unquoted, json", M_VALUE, DECODE_FMT_JSON, NULL, NULL, NULL, NULL, 0, "OFF",
     DECODE_MALFORMED, "", 0, NULL},
    {"state word quoted, json", M_VALUE, DECODE_FMT_JSON, NULL, NULL, NULL, NULL, 0, "\"open\"",
     DECODE_OK, "=1", 0, NULL},
    {"format = number refuses an object", M_VALUE, DECODE_FMT_NUMBER, NULL, NULL, NULL, NULL, 0,
     "{\"value\":1}", DECODE_MALFORMED, "", 0, "format = number"},
    {"format = number takes a bare value", M_VALUE, DECODE_FMT_NUMBER, NULL, NULL, NULL, NULL, 0,
     " 22.5\n", DECODE_OK, "=22.5", 0, NULL},
    {"fields = all of old: nested skipped, strings skipped", M_ALL, DECODE_FMT_AUTO, NULL, NULL,
     NULL, NULL, 0, "{\"a\":1,\"b\":{\"c\":2},\"s\":\"x\"}", DECODE_OK, "t/a=1", 0, NULL},
    {"drop_fields drops a whole object", M_SECTION, DECODE_FMT_AUTO, NULL, NULL, NULL, "b", 0,
     "{\"a\":1,\"b\":{\"c\":2,\"d\":\"x\"}}", DECODE_OK, "t/a=1", 0, NULL},
    {"keep_fields of a parent keeps its children", M_SECTION, DECODE_FMT_AUTO, NULL, NULL, "b",
     NULL, 0, "{\"a\":1,\"b\":{\"c\":2,\"e\":{\"f\":3}}}", DECODE_OK, "t/b/c=2;t/b/e/f=3", 0, NULL},
    {"the time member is not a series, nested either", M_SECTION, DECODE_FMT_AUTO, NULL, "m.ts",
     NULL, NULL, 0, "{\"m\":{\"ts\":1767225600000,\"v\":3}}", DECODE_OK, "t/m/v=3", 1767225600000,
     NULL},
    {"a key that is a dotted name wins over the path", M_VALUE, DECODE_FMT_AUTO, "a.b", NULL, NULL,
     NULL, 0, "{\"a.b\":7,\"a\":{\"b\":8}}", DECODE_OK, "=7", 0, NULL},
};

/* Builds "name=value;..." of the decoded events (names below topic "t"). */
static void events_text(const struct decode_result *r, const char *payload, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    for (uint32_t i = 0; i < r->n_events && n + 1 < cap; i++) {
        char name[DECODE_NAME_MAX + 8];
        size_t len = decode_event_name(r, &r->ev[i], "t", 1, payload, name, sizeof name);
        int w = snprintf(buf + n, cap - n, "%s%.*s=%.15g", i ? ";" : "", len == 1 ? 0 : (int)len,
                         name, r->ev[i].value);
        n += w > 0 ? (size_t)w : 0;
    }
}

static void test_fleet_rows(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof fleet_rows / sizeof fleet_rows[0]; i++) {
        const struct fleet_row *row = &fleet_rows[i];
        struct decode_opts o = row->mode == M_VALUE ? opts_value() : opts_all();
        char got[1024];
        o.format = row->format;
        o.flatten = o.strict_strings = row->mode == M_SECTION;
        o.value_field = row->value_field ? row->value_field : o.value_field;
        o.ts_field = row->ts_field ? row->ts_field : o.ts_field;
        o.keep_fields = row->keep;
        o.drop_fields = row->drop;
        o.time_unit = row->unit;
        struct decode_words words;
        assert_true(decode_words_parse(DECODE_DEFAULT_WORDS, &words, NULL, 0));
        o.words = &words;
        enum decode_reason r = dec_with(&o, row->payload);
        events_text(&res, row->payload, got, sizeof got);
        if (r != row->want || strcmp(got, row->events) != 0)
            fail_msg("row %zu (%s): %s [%s], want %s [%s] (detail '%s')", i, row->what,
                     decode_reason_str(r), got, decode_reason_str(row->want), row->events,
                     res.detail);
        if (row->detail && !strstr(res.detail, row->detail))
            fail_msg("row %zu (%s): detail '%s', want '%s'", i, row->what, res.detail, row->detail);
        for (uint32_t k = 0; r == DECODE_OK && k < res.n_events; k++) {
            int64_t want_ts = row->ts > 0   ? row->ts
                              : row->ts < 0 ? 1767225600000 + 1000 * (int64_t)k
                                            : RECV_MS;
            if (res.ev[k].ts_ms != want_ts)
                fail_msg("row %zu (%s) event %u: ts %lld, want %lld", i, row->what, k,
                         (long long)res.ev[k].ts_ms, (long long)want_ts);
        }
        assert_int_equal(res.has_ts, r == DECODE_OK && row->ts != 0);
    }
}

int main(void)

{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reason_names),
        cmocka_unit_test(test_opts_default),
        cmocka_unit_test(test_bare_numbers),
        cmocka_unit_test(test_bare_malformed),
        cmocka_unit_test(test_bare_non_finite),
        cmocka_unit_test(test_bare_number_with_fields_all),
        cmocka_unit_test(test_value_object),
        cmocka_unit_test(test_value_numeric_string),
        cmocka_unit_test(test_value_missing_or_not_numeric),
        cmocka_unit_test(test_value_non_finite),
        cmocka_unit_test(test_value_types),
        cmocka_unit_test(test_words_parse),
        cmocka_unit_test(test_custom_field_names),
        cmocka_unit_test(test_null_opts_and_names),
        cmocka_unit_test(test_duplicate_keys_last_wins),
        cmocka_unit_test(test_ts_epoch_magnitudes),
        cmocka_unit_test(test_ts_numeric_strings),
        cmocka_unit_test(test_ts_rfc3339),
        cmocka_unit_test(test_ts_absent_or_null),
        cmocka_unit_test(test_ts_unparsable),
        cmocka_unit_test(test_ts_leap_years_and_seconds),
        cmocka_unit_test(test_ts_range),
        cmocka_unit_test(test_ts_future),
        cmocka_unit_test(test_parse_time),
        cmocka_unit_test(test_parse_time_slices),
        cmocka_unit_test(test_fields_all_mixed),
        cmocka_unit_test(test_fields_all_no_value),
        cmocka_unit_test(test_fields_all_bad_keys),
        cmocka_unit_test(test_fields_all_non_finite),
        cmocka_unit_test(test_fields_all_limits),
        cmocka_unit_test(test_malformed_json),
        cmocka_unit_test(test_embedded_nul),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_token_overflow),
        cmocka_unit_test(test_max_payload_boundary),
        cmocka_unit_test(test_not_nul_terminated),
        cmocka_unit_test(test_heap_prefixes),
        cmocka_unit_test(test_fleet_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
