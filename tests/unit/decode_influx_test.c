/*
 * decode_influx_test — unit tests of the line-protocol decoder
 * (firmware/ingest/decode_influx.c), one table row per payload: what
 * Telegraf sends, every field type, escapes, timestamps in each precision,
 * and malformed lines with the reason and detail each must give. Payloads
 * are decoded from heap copies of exactly their length (ASan catches any
 * over-read).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode_influx.h"

#define RECV_MS INT64_C(1767225600000) /* 2026-01-01T00:00:00Z */

struct want {
    const char *name;
    double value;
    int64_t ts_ms;
};

struct row {
    const char *payload;
    enum decode_precision prec;
    enum decode_reason reason;
    const char *detail; /* expected detail on failure */
    bool has_ts;
    uint32_t n;
    struct want ev[4];
};

#define NS DECODE_PREC_NS
#define T0 INT64_C(1767225600000)

static const struct row rows[] = {
    /* Telegraf outputs.mqtt, data_format = "influx" */
    {"cpu,host=pi usage_idle=97.5 1767225600000000000\n",
     NS,
     DECODE_OK,
     "",
     true,
     1,
     {{"cpu/pi/usage_idle", 97.5, T0}}},
    {"cpu,cpu=cpu-total,host=pi usage_idle=97.5,usage_user=1.25 1767225600123456789",
     NS,
     DECODE_OK,
     "",
     true,
     2,
     {{"cpu/cpu-total/pi/usage_idle", 97.5, T0 + 123},
      {"cpu/cpu-total/pi/usage_user", 1.25, T0 + 123}}},
    {"mem,host=pi used=512i,free=12u 1767225600000000000\r\n"
     "\n"
     "# a comment\n"
     "disk,host=pi,path=/ used_percent=41.5,ro=false 1767225601000000000\n",
     NS,
     DECODE_OK,
     "",
     true,
     4,
     {{"mem/pi/used", 512, T0},
      {"mem/pi/free", 12, T0},
      {"disk/pi///used_percent", 41.5, T0 + 1000},
      {"disk/pi///ro", 0, T0 + 1000}}},
    /* escapes in measurement, tags and keys; strings with escapes are skipped */
    {"my\\ meas\\,x,ta\\=g=v\\ 1\\,2 f\\=k=1e3,s=\"a \\\"q\\\" \\\\ ,= b\",b=T",
     NS,
     DECODE_OK,
     "",
     false,
     2,
     {{"my meas,x/v 1,2/f=k", 1000, RECV_MS}, {"my meas,x/v 1,2/b", 1, RECV_MS}}},
    {"sw state=true,on=True,off=FALSE,x=F",
     NS,
     DECODE_OK,
     "",
     false,
     4,
     {{"sw/state", 1, RECV_MS},
      {"sw/on", 1, RECV_MS},
      {"sw/off", 0, RECV_MS},
      {"sw/x", 0, RECV_MS}}},
    {"m v=-1.5,w=.5,x=1.,y=-2e-3",
     NS,
     DECODE_OK,
     "",
     false,
     4,
     {{"m/v", -1.5, RECV_MS},
      {"m/w", 0.5, RECV_MS},
      {"m/x", 1, RECV_MS},
      {"m/y", -0.002, RECV_MS}}},
    {"m v=-9223372036854775808i,u=18446744073709551615u",
     NS,
     DECODE_OK,
     "",
     false,
     2,
     {{"m/v", -9223372036854775808.0, RECV_MS}, {"m/u", 18446744073709551615.0, RECV_MS}}},
    /* precisions */
    {"m v=1 1767225600123456", DECODE_PREC_US, DECODE_OK, "", true, 1, {{"m/v", 1, T0 + 123}}},
    {"m v=1 1767225600123", DECODE_PREC_MS, DECODE_OK, "", true, 1, {{"m/v", 1, T0 + 123}}},
    {"m v=1 1767225600", DECODE_PREC_S, DECODE_OK, "", true, 1, {{"m/v", 1, T0}}},
    {"m  v=1   1767225600  ", DECODE_PREC_S, DECODE_OK, "", true, 1, {{"m/v", 1, T0}}},
    /* strings only: non_numeric; a numeric field beside a string: kept */
    {"log msg=\"started\"", NS, DECODE_NON_NUMERIC, "line 1: no numeric field", false, 0, {{0}}},
    {"log msg=\"started\",code=3i", NS, DECODE_OK, "", false, 1, {{"log/code", 3, RECV_MS}}},
    /* malformed lines */
    {"m v=1\nm w=", NS, DECODE_MALFORMED, "line 2: expected field value", false, 0, {{0}}},
    {"m v=1\n\nm", NS, DECODE_MALFORMED, "line 3: expected measurement", false, 0, {{0}}},
    {"m", NS, DECODE_MALFORMED, "line 1: expected measurement", false, 0, {{0}}},
    {"m ", NS, DECODE_MALFORMED, "line 1: expected fields", false, 0, {{0}}},
    {",t=1 v=1", NS, DECODE_MALFORMED, "line 1: expected measurement", false, 0, {{0}}},
    {"m,t v=1", NS, DECODE_MALFORMED, "line 1: expected '=' after tag key", false, 0, {{0}}},
    {"m,t= v=1", NS, DECODE_MALFORMED, "line 1: expected tag value", false, 0, {{0}}},
    {"m v", NS, DECODE_MALFORMED, "line 1: expected field key", false, 0, {{0}}},
    {"m v=abc", NS, DECODE_MALFORMED, "line 1: expected field value", false, 0, {{0}}},
    {"m v=1.2.3", NS, DECODE_MALFORMED, "line 1: expected field value", false, 0, {{0}}},
    {"m v=1x", NS, DECODE_MALFORMED, "line 1: expected field value", false, 0, {{0}}},
    {"m v=1.5i", NS, DECODE_MALFORMED, "line 1: bad integer field value", false, 0, {{0}}},
    {"m v=-1u", NS, DECODE_MALFORMED, "line 1: bad integer field value", false, 0, {{0}}},
    {"m v=9223372036854775808i",
     NS,
     DECODE_MALFORMED,
     "line 1: integer field value out of range",
     false,
     0,
     {{0}}},
    {"m v=1e999", NS, DECODE_NON_FINITE, "line 1: field value out of range", false, 0, {{0}}},
    {"m s=\"open",
     NS,
     DECODE_MALFORMED,
     "line 1: unterminated string field value",
     false,
     0,
     {{0}}},
    {"m v=1,", NS, DECODE_MALFORMED, "line 1: expected field key", false, 0, {{0}}},
    {"m v=1 12x", NS, DECODE_BAD_TIMESTAMP, "line 1: bad timestamp", false, 0, {{0}}},
    {"m v=1 1767225600000000000 extra",
     NS,
     DECODE_MALFORMED,
     "line 1: unexpected text after the timestamp",
     false,
     0,
     {{0}}},
    {"m v=1 5", NS, DECODE_BAD_TIMESTAMP, "line 1: timestamp out of range", false, 0, {{0}}},
    {"m v=1 1767225600000000000\nm v=2",
     NS,
     DECODE_MALFORMED,
     "line 2: lines with and without a timestamp",
     false,
     0,
     {{0}}},
    {"m,t=a+b v=1",
     NS,
     DECODE_MALFORMED,
     "line 1: name has a control character, '\\', '+' or '#'",
     false,
     0,
     {{0}}},
    {"", NS, DECODE_NO_VALUE, "no line", false, 0, {{0}}},
    {"# only a comment\n\n", NS, DECODE_NO_VALUE, "no line", false, 0, {{0}}},
};

static void check_row(size_t i, const struct row *r)
{
    struct decode_result *res = malloc(sizeof *res);
    size_t n = strlen(r->payload);
    char *buf = malloc(n > 0 ? n : 1);
    assert_non_null(res);
    assert_non_null(buf);
    memcpy(buf, r->payload, n);
    memset(res, 0xa5, sizeof *res);
    enum decode_reason got = decode_influx(NULL, r->prec, buf, n, RECV_MS, true, res);
    if (got != r->reason)
        fail_msg("row %zu: %s (%s), want %s", i, decode_reason_str(got), res->detail,
                 decode_reason_str(r->reason));
    if (strcmp(res->detail, r->detail) != 0)
        fail_msg("row %zu: detail '%s', want '%s'", i, res->detail, r->detail);
    assert_int_equal(res->n_events, r->n);
    if (got == DECODE_OK)
        assert_int_equal(res->has_ts, r->has_ts);
    for (uint32_t k = 0; k < r->n; k++) {
        const struct decode_event *ev = &res->ev[k];
        if (ev->name_len != strlen(r->ev[k].name) ||
            memcmp(res->names + ev->name_off, r->ev[k].name, ev->name_len) != 0)
            fail_msg("row %zu event %u: name '%.*s', want '%s'", i, k, (int)ev->name_len,
                     res->names + ev->name_off, r->ev[k].name);
        if (ev->value != r->ev[k].value || ev->ts_ms != r->ev[k].ts_ms)
            fail_msg("row %zu event %u: %g at %lld, want %g at %lld", i, k, ev->value,
                     (long long)ev->ts_ms, r->ev[k].value, (long long)r->ev[k].ts_ms);
        assert_int_equal(ev->field_len, 0);
    }
    free(buf);
    free(res);
}

static void test_rows(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        check_row(i, &rows[i]);
}

static void test_bounds(void **state)
{
    (void)state;
    static struct decode_result res;
    char buf[2048];
    size_t n = 0;
    /* 64 numeric fields are fine, 65 are too many (strings do not count) */
    n += (size_t)snprintf(buf + n, sizeof buf - n, "m s=\"x\"");
    for (int k = 0; k < 64; k++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, ",f%d=%d", k, k);
    assert_int_equal(decode_influx(NULL, NS, buf, n, RECV_MS, false, &res), DECODE_OK);
    assert_int_equal(res.n_events, 64);
    assert_true(res.ev[63].value == 63.0);
    n += (size_t)snprintf(buf + n, sizeof buf - n, "\nm x=1");
    assert_int_equal(decode_influx(NULL, NS, buf, n, RECV_MS, false, &res), DECODE_TOO_MANY_FIELDS);
    assert_string_equal(res.detail, "line 2: more than 64 numeric fields in the message");
    assert_int_equal(res.n_events, 0);
    /* a 255-byte name is fine, 256 is not */
    memset(buf, 'a', 253);
    memcpy(buf + 253, " v=1", 4); /* "a...a/v": 253 + 2 */
    assert_int_equal(decode_influx(NULL, NS, buf, 257, RECV_MS, false, &res), DECODE_OK);
    assert_int_equal(res.ev[0].name_len, 255);
    buf[253] = 'a';
    memcpy(buf + 254, " v=1", 4);
    assert_int_equal(decode_influx(NULL, NS, buf, 258, RECV_MS, false, &res), DECODE_MALFORMED);
    assert_string_equal(res.detail, "line 1: series name longer than 255 bytes");
    /* max_payload, NUL bytes, NULL */
    struct decode_opts o;
    decode_opts_default(&o);
    o.max_payload = 4;
    assert_int_equal(decode_influx(&o, NS, "m v=1", 5, RECV_MS, false, &res), DECODE_OVERSIZED);
    assert_int_equal(decode_influx(NULL, NS, "m v=1\0", 6, RECV_MS, false, &res), DECODE_MALFORMED);
    assert_int_equal(decode_influx(NULL, NS, NULL, 0, RECV_MS, false, &res), DECODE_MALFORMED);
    assert_int_equal(decode_influx(NULL, NS, "m v=1", 5, RECV_MS, false, NULL), DECODE_MALFORMED);
    /* prefixes of a valid message never read past their length */
    const char *full = "cpu,host=pi usage_idle=97.5,s=\"a b\" 1767225600000000000";
    for (size_t k = 0; k <= strlen(full); k++) {
        char *h = malloc(k ? k : 1);
        assert_non_null(h);
        memcpy(h, full, k);
        (void)decode_influx(NULL, NS, h, k, RECV_MS, false, &res);
        free(h);
    }
}

/* A future timestamp with a synced clock is rejected; unsynced it is kept. */
static void test_future(void **state)
{
    (void)state;
    static struct decode_result res;
    const char *p = "m v=1 1767400000000";
    assert_int_equal(decode_influx(NULL, DECODE_PREC_MS, p, strlen(p), RECV_MS, true, &res),
                     DECODE_BAD_TIMESTAMP);
    assert_int_equal(decode_influx(NULL, DECODE_PREC_MS, p, strlen(p), RECV_MS, false, &res),
                     DECODE_OK);
    assert_true(res.has_ts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_future),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
