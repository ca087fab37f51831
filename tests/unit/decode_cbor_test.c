/*
 * decode_cbor_test — unit tests of the CBOR decoder
 * (firmware/ingest/decode_cbor.c), one table row per payload: the fleet's
 * messages (Zigbee2MQTT, Tasmota, Shelly, value/ts, arrays of readings),
 * every value and time form, and malformed items with the reason and detail
 * each must give. Then the bounds, and parity with decode_payload: the same
 * documents written as JSON and as CBOR give the same events.
 *
 * Payloads are written in CBOR diagnostic notation (RFC 8949 §8, the subset
 * in diag()): JSON plus h'..' byte strings, tags N(..), [_ ..] {_ ..} and
 * (_ "a", "b") for indefinite lengths, floats with _2 (single precision),
 * NaN, Infinity, undefined. What diag cannot say (half floats, reserved
 * heads, truncations) a row gives as hex bytes. Payloads are decoded from
 * heap copies of exactly their length (ASan catches any over-read).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode_cbor.h"

#define RECV_MS INT64_C(1767225600000) /* 2026-01-01T00:00:00Z */
#define T0 RECV_MS
#define TOPIC "dev"
#define ENC_MAX 8192

/* ---------- diagnostic notation → CBOR ---------- */

struct enc {
    const char *s;
    unsigned char b[ENC_MAX];
    size_t n;
};

static void put(struct enc *e, unsigned char c)
{
    assert_true(e->n < ENC_MAX);
    e->b[e->n++] = c;
}

static void put_be(struct enc *e, uint64_t v, int bytes)
{
    for (int k = bytes - 1; k >= 0; k--)
        put(e, (unsigned char)(v >> (8 * k)));
}

/* The smallest head of major type major with argument arg. */
static void head(struct enc *e, unsigned major, uint64_t arg)
{
    unsigned m = major << 5;
    if (arg < 24) {
        put(e, (unsigned char)(m | arg));
    } else if (arg <= UINT8_MAX) {
        put(e, (unsigned char)(m | 24));
        put_be(e, arg, 1);
    } else if (arg <= UINT16_MAX) {
        put(e, (unsigned char)(m | 25));
        put_be(e, arg, 2);
    } else if (arg <= UINT32_MAX) {
        put(e, (unsigned char)(m | 26));
        put_be(e, arg, 4);
    } else {
        put(e, (unsigned char)(m | 27));
        put_be(e, arg, 8);
    }
}

static void skip_ws(struct enc *e)
{
    while (*e->s == ' ' || *e->s == ',' || *e->s == ':' || *e->s == '\n')
        e->s++;
}

static bool word(struct enc *e, const char *w)
{
    size_t n = strlen(w);
    if (strncmp(e->s, w, n) != 0)
        return false;
    e->s += n;
    return true;
}

static void value(struct enc *e);

/* Items up to close; a definite container's head is written before them
 * once they are counted (moved into place). */
static void items(struct enc *e, unsigned major, char close, int per_item)
{
    bool indef = *e->s == '_';
    if (indef) {
        e->s++;
        put(e, (unsigned char)(major << 5 | 31));
    }
    size_t at = e->n;
    uint64_t count = 0;
    for (skip_ws(e); *e->s != close; skip_ws(e)) {
        assert_true(*e->s != '\0');
        value(e);
        count++;
    }
    e->s++;
    if (indef) {
        put(e, 0xff);
        return;
    }
    unsigned char body[ENC_MAX];
    size_t len = e->n - at;
    memcpy(body, e->b + at, len);
    e->n = at;
    head(e, major, count / (uint64_t)per_item);
    for (size_t k = 0; k < len; k++)
        put(e, body[k]);
}

static void put_double(struct enc *e, double d);

static void number(struct enc *e)
{
    char *end;
    const char *start = e->s;
    bool neg = *start == '-';
    size_t n = strspn(start + neg, "0123456789");
    if (start[neg + n] != '.' && start[neg + n] != 'e' && start[neg + n] != '_') {
        errno = 0;
        uint64_t u = strtoull(start + neg, &end, 10);
        if (errno == ERANGE) /* -18446744073709551616 */
            u = 0;
        e->s = end;
        if (*e->s == '(') { /* a tag */
            e->s++;
            head(e, 6, u);
            skip_ws(e);
            value(e);
            assert_true(*e->s == ')');
            e->s++;
            return;
        }
        head(e, neg ? 1 : 0, neg ? u - 1 : u);
        return;
    }
    double d = strtod(start, &end);
    e->s = end;
    if (word(e, "_2")) {
        float f = (float)d;
        uint32_t bits;
        memcpy(&bits, &f, sizeof bits);
        put(e, 0xfa);
        put_be(e, bits, 4);
        return;
    }
    put_double(e, d);
}

static void string(struct enc *e, unsigned major, char quote)
{
    const char *end = strchr(e->s, quote);
    assert_non_null(end);
    if (major == 3) {
        head(e, 3, (uint64_t)(end - e->s));
        while (e->s < end)
            put(e, (unsigned char)*e->s++);
    } else {
        head(e, 2, (uint64_t)(end - e->s) / 2);
        for (; e->s < end; e->s += 2) {
            char hex[3] = {e->s[0], e->s[1], '\0'};
            put(e, (unsigned char)strtoul(hex, NULL, 16));
        }
    }
    e->s = end + 1;
}

static void put_double(struct enc *e, double d)
{
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    put(e, 0xfb);
    put_be(e, bits, 8);
}

static void value(struct enc *e)
{
    skip_ws(e);
    char c = *e->s;
    if (c == '{' || c == '[') {
        e->s++;
        items(e, c == '{' ? 5 : 4, c == '{' ? '}' : ']', c == '{' ? 2 : 1);
    } else if (c == '(') { /* (_ "chunk", ...) */
        e->s += 2;
        put(e, 0x7f);
        for (skip_ws(e); *e->s != ')'; skip_ws(e))
            value(e);
        e->s++;
        put(e, 0xff);
    } else if (c == '"') {
        e->s++;
        string(e, 3, '"');
    } else if (word(e, "h'")) {
        string(e, 2, '\'');
    } else if (word(e, "true")) {
        put(e, 0xf5);
    } else if (word(e, "false")) {
        put(e, 0xf4);
    } else if (word(e, "null")) {
        put(e, 0xf6);
    } else if (word(e, "undefined")) {
        put(e, 0xf7);
    } else if (word(e, "NaN")) {
        put_double(e, NAN);
    } else if (word(e, "Infinity")) {
        put_double(e, INFINITY);
    } else if (word(e, "-Infinity")) {
        put_double(e, -INFINITY);
    } else {
        number(e);
    }
}

/* Diagnostic notation (or, with hex set, hex bytes) into a fresh buffer
 * of exactly the payload's length; *n is its length. */
static char *payload_of(const char *diag, const char *hex, size_t *n)
{
    static struct enc e;
    e.n = 0;
    if (hex != NULL) {
        for (const char *p = hex; *p != '\0';) {
            if (*p == ' ') {
                p++;
                continue;
            }
            char h[3] = {p[0], p[1], '\0'};
            put(&e, (unsigned char)strtoul(h, NULL, 16));
            p += 2;
        }
    } else {
        e.s = diag;
        value(&e);
        skip_ws(&e);
        assert_true(*e.s == '\0');
    }
    *n = e.n;
    char *buf = malloc(e.n > 0 ? e.n : 1);
    assert_non_null(buf);
    memcpy(buf, e.b, e.n);
    return buf;
}

/* ---------- rows ---------- */

struct want {
    const char *name; /* with the topic */
    double value;
    int64_t ts_ms;
};

/* ALL_TIME: fields_all, ts_field "Time"; SECTION: a [decode] section's
 * fields_all with strict strings, drop_fields "update, power.unit" and
 * KEEP: keep_fields "a, b.c" */
enum mode { VALUE = 0, ALL, ALL_TIME, SECTION, KEEP };

struct row {
    const char *diag;
    const char *hex; /* instead of diag */
    enum mode mode;
    enum decode_reason reason;
    const char *detail;
    bool has_ts;
    uint32_t n;
    struct want ev[6];
};

#define OK DECODE_OK
/* a rejected payload: no events */
#define BAD(diag, hex, mode, reason, detail)                                                       \
    {                                                                                              \
        diag, hex, mode, reason, detail, false, 0,                                                 \
        {                                                                                          \
            {                                                                                      \
                0                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }
#define MAL DECODE_MALFORMED

static const struct row rows[] = {
    /* the fleet: Zigbee2MQTT, Tasmota (nested, local time), Shelly, value/ts */
    {"{\"temperature\": 21.4, \"humidity\": 40.1, \"battery\": 97, \"occupancy\": true, "
     "\"linkquality\": 120}",
     NULL,
     ALL,
     OK,
     "",
     false,
     5,
     {{"dev/temperature", 21.4, T0},
      {"dev/humidity", 40.1, T0},
      {"dev/battery", 97, T0},
      {"dev/occupancy", 1, T0},
      {"dev/linkquality", 120, T0}}},
    {"{\"Time\": \"2026-12-04T10:00:00\", \"AM2301\": {\"Temperature\": 21.4, \"Humidity\": "
     "40.1}, \"TempUnit\": \"C\"}",
     NULL,
     ALL,
     OK,
     "",
     false,
     2,
     {{"dev/AM2301/Temperature", 21.4, T0}, {"dev/AM2301/Humidity", 40.1, T0}}},
    /* Tasmota's local time has no offset: not RFC 3339, as for JSON */
    BAD("{\"Time\": \"2026-12-04T10:00:00\", \"AM2301\": {\"Temperature\": 21.4}}", NULL, ALL_TIME,
        DECODE_BAD_TIMESTAMP, "bad timestamp"),
    {"{\"Time\": \"2025-12-31T23:00:00Z\", \"AM2301\": {\"Temperature\": 21.4, \"Humidity\": "
     "40.1}, \"TempUnit\": \"C\"}",
     NULL,
     ALL_TIME,
     OK,
     "",
     true,
     2,
     {{"dev/AM2301/Temperature", 21.4, T0 - 3600000}, {"dev/AM2301/Humidity", 40.1, T0 - 3600000}}},
    {"{\"id\": 0, \"apower\": 12.5, \"aenergy\": {\"total\": 1234.5, \"by_minute\": [1, 2]}}",
     NULL,
     ALL,
     OK,
     "",
     false,
     3,
     {{"dev/id", 0, T0}, {"dev/apower", 12.5, T0}, {"dev/aenergy/total", 1234.5, T0}}},
    {"{\"value\": 5, \"ts\": 1767225600000}", NULL, VALUE, OK, "", true, 1, {{"dev", 5, T0}}},
    /* arrays of readings, each with its own time */
    {"[{\"value\": 1, \"ts\": 1767225600}, {\"value\": 2.5, \"ts\": 1767225601}]",
     NULL,
     VALUE,
     OK,
     "",
     true,
     2,
     {{"dev", 1, T0}, {"dev", 2.5, T0 + 1000}}},
    {"[{\"t\": 1, \"ts\": 1767225600000}, {\"t\": 2, \"h\": 3, \"ts\": 1767225660000}]",
     NULL,
     ALL,
     OK,
     "",
     true,
     3,
     {{"dev/t", 1, T0}, {"dev/t", 2, T0 + 60000}, {"dev/h", 3, T0 + 60000}}},
    {"[{\"value\": 1}, {\"value\": 2}]",
     NULL,
     VALUE,
     OK,
     "",
     false,
     2,
     {{"dev", 1, T0}, {"dev", 2, T0}}},
    BAD("[]", NULL, VALUE, DECODE_NO_VALUE, "empty array"),
    BAD("[{\"value\": 1}, 2]", NULL, VALUE, MAL, "reading 2: byte 9: not a map"),
    BAD("[{\"value\": 1, \"ts\": 1767225600}, {\"value\": 2}]", NULL, VALUE, MAL,
        "reading 2: readings with and without a timestamp"),
    BAD("[{\"value\": 1}, {\"v\": 2}]", NULL, VALUE, DECODE_NO_VALUE,
        "reading 2: no \"value\" field"),
    /* bare values */
    {"21.5", NULL, VALUE, OK, "", false, 1, {{"dev", 21.5, T0}}},
    {"-7", NULL, VALUE, OK, "", false, 1, {{"dev", -7, T0}}},
    {"21.5_2", NULL, VALUE, OK, "", false, 1, {{"dev", 21.5, T0}}},
    {"true", NULL, VALUE, OK, "", false, 1, {{"dev", 1, T0}}},
    {"false", NULL, VALUE, OK, "", false, 1, {{"dev", 0, T0}}},
    {"\"22.5\"", NULL, VALUE, OK, "", false, 1, {{"dev", 22.5, T0}}},
    {"\"ON\"", NULL, VALUE, OK, "", false, 1, {{"dev", 1, T0}}},
    BAD("\"hello\"", NULL, VALUE, DECODE_NON_NUMERIC, "payload \"hello\" is a string"),
    BAD("\"nan\"", NULL, VALUE, DECODE_NON_FINITE, "payload is not finite"),
    BAD("null", NULL, VALUE, MAL, "not a number, text, map or array"),
    BAD("h'01'", NULL, VALUE, MAL, "not a number, text, map or array"),
    /* half floats: 1.0, 20.0 in a map, -0.0, NaN, infinity */
    {NULL, "f9 3c 00", VALUE, OK, "", false, 1, {{"dev", 1.0, T0}}},
    {NULL, "a1 65 76 61 6c 75 65 f9 4d 00", VALUE, OK, "", false, 1, {{"dev", 20.0, T0}}},
    {NULL, "f9 80 00", VALUE, OK, "", false, 1, {{"dev", 0, T0}}},
    BAD(NULL, "f9 7e 00", VALUE, DECODE_NON_FINITE, "payload is not finite"),
    BAD(NULL, "f9 7c 00", VALUE, DECODE_NON_FINITE, "payload is not finite"),
    BAD("NaN", NULL, VALUE, DECODE_NON_FINITE, "payload is not finite"),
    BAD("{\"a\": 1, \"b\": -Infinity}", NULL, ALL, DECODE_NON_FINITE, "field \"b\" is not finite"),
    /* huge integers and bignums */
    {"18446744073709551615", NULL, VALUE, OK, "", false, 1, {{"dev", 18446744073709551615.0, T0}}},
    {"-18446744073709551616",
     NULL,
     VALUE,
     OK,
     "",
     false,
     1,
     {{"dev", -18446744073709551616.0, T0}}},
    {"2(h'010000000000000000')",
     NULL,
     VALUE,
     OK,
     "",
     false,
     1,
     {{"dev", 18446744073709551616.0, T0}}},
    {"{\"value\": 3(h'00ff')}", NULL, VALUE, OK, "", false, 1, {{"dev", -256, T0}}},
    /* value mode: words, numeric strings, other strings, null */
    {"{\"value\": \"ON\"}", NULL, VALUE, OK, "", false, 1, {{"dev", 1, T0}}},
    {"{\"value\": \"closed\"}", NULL, VALUE, OK, "", false, 1, {{"dev", 0, T0}}},
    {"{\"value\": \"-1.5e1\"}", NULL, VALUE, OK, "", false, 1, {{"dev", -15, T0}}},
    BAD("{\"value\": \"hello\"}", NULL, VALUE, DECODE_NON_NUMERIC, "field \"value\" is a string"),
    BAD("{\"value\": \" 7\"}", NULL, VALUE, DECODE_NON_NUMERIC, "field \"value\" is a string"),
    BAD("{\"value\": null}", NULL, VALUE, DECODE_NO_VALUE, "field \"value\" is not a value"),
    BAD("{\"v\": 1}", NULL, VALUE, DECODE_NO_VALUE, "no \"value\" field"),
    {"{\"value\": 1, \"value\": 2}", NULL, VALUE, OK, "", false, 1, {{"dev", 2, T0}}},
    /* fields_all: strings are skipped unless words or numbers */
    {"{\"state\": \"ON\", \"power\": \"12.5\", \"note\": \"hi\", \"n\": null, \"b\": h'00'}",
     NULL,
     ALL,
     OK,
     "",
     false,
     2,
     {{"dev/state", 1, T0}, {"dev/power", 12.5, T0}}},
    BAD("{\"note\": \"hi\"}", NULL, ALL, DECODE_NO_VALUE, "no numeric field"),
    {"{\"a\": 1, \"a\": \"x\", \"b\": 2}", NULL, ALL, OK, "", false, 1, {{"dev/b", 2, T0}}},
    {"{\"a/b\": 1, \"a\": {\"b\": 2}}", NULL, ALL, OK, "", false, 1, {{"dev/a/b", 2, T0}}},
    BAD("{\"a+b\": 1}", NULL, ALL, MAL, "name has a control character, '\\', '+' or '#'"),
    BAD("{\"a#\": {\"b\": 1}}", NULL, ALL, MAL, "name has a control character, '\\', '+' or '#'"),
    {"{\"a#\": {\"b\": \"x\"}, \"c\": 1}", NULL, ALL, OK, "", false, 1, {{"dev/c", 1, T0}}},
    {"{\"a\": {\"b\": {\"c\": {\"d\": {\"e\": {\"f\": {\"g\": {\"h\": 1}}}}}}}}",
     NULL,
     ALL,
     OK,
     "",
     false,
     1,
     {{"dev/a/b/c/d/e/f/g/h", 1, T0}}},
    {"{\"ts\": 1767225600, \"x\": 1}", NULL, ALL, OK, "", true, 1, {{"dev/x", 1, T0}}},
    /* times */
    {"{\"value\": 1, \"ts\": 1767225600.123}",
     NULL,
     VALUE,
     OK,
     "",
     true,
     1,
     {{"dev", 1, T0 + 123}}},
    {"{\"value\": 1, \"ts\": 1767225600123456}",
     NULL,
     VALUE,
     OK,
     "",
     true,
     1,
     {{"dev", 1, T0 + 123}}},
    {"{\"value\": 1, \"ts\": 1767225600123456789}",
     NULL,
     VALUE,
     OK,
     "",
     true,
     1,
     {{"dev", 1, T0 + 123}}},
    {"{\"value\": 1, \"ts\": 1(1767225600)}", NULL, VALUE, OK, "", true, 1, {{"dev", 1, T0}}},
    {"{\"value\": 1, \"ts\": 1(1767225600.5)}",
     NULL,
     VALUE,
     OK,
     "",
     true,
     1,
     {{"dev", 1, T0 + 500}}},
    BAD("{\"value\": 1, \"ts\": 1(1767225600000)}", NULL, VALUE, DECODE_BAD_TIMESTAMP,
        "bad timestamp"),
    {"{\"value\": 1, \"ts\": \"2026-01-01T00:00:01.5Z\"}",
     NULL,
     VALUE,
     OK,
     "",
     true,
     1,
     {{"dev", 1, T0 + 1500}}},
    {"{\"value\": 1, \"ts\": 0(\"2026-01-01T01:00:00+01:00\")}",
     NULL,
     VALUE,
     OK,
     "",
     true,
     1,
     {{"dev", 1, T0}}},
    {"{\"value\": 1, \"ts\": \"1767225600000\"}", NULL, VALUE, OK, "", true, 1, {{"dev", 1, T0}}},
    {"{\"value\": 1, \"ts\": null}", NULL, VALUE, OK, "", false, 1, {{"dev", 1, T0}}},
    {"{\"value\": 1, \"ts\": undefined}", NULL, VALUE, OK, "", false, 1, {{"dev", 1, T0}}},
    BAD("{\"value\": 1, \"ts\": true}", NULL, VALUE, DECODE_BAD_TIMESTAMP, "bad timestamp"),
    BAD("{\"value\": 1, \"ts\": \"soon\"}", NULL, VALUE, DECODE_BAD_TIMESTAMP, "bad timestamp"),
    BAD("{\"value\": 1, \"ts\": 5}", NULL, VALUE, DECODE_BAD_TIMESTAMP, "timestamp out of range"),
    BAD("{\"value\": 1, \"ts\": 1767400000000}", NULL, VALUE, DECODE_BAD_TIMESTAMP,
        "timestamp out of range"),
    BAD("{\"value\": 1, \"ts\": -18446744073709551616}", NULL, VALUE, DECODE_BAD_TIMESTAMP,
        "bad timestamp"),
    /* indefinite lengths, chunked keys, tags */
    {"{_ \"value\": 5, \"ts\": 1767225600}", NULL, VALUE, OK, "", true, 1, {{"dev", 5, T0}}},
    {"[_ {_ \"value\": 1}, {\"value\": 2}]",
     NULL,
     VALUE,
     OK,
     "",
     false,
     2,
     {{"dev", 1, T0}, {"dev", 2, T0}}},
    {"{(_ \"val\", \"ue\"): 7}", NULL, VALUE, OK, "", false, 1, {{"dev", 7, T0}}},
    {"{(_ \"tem\", \"p\"): 7, \"x\": {(_ \"y\"): (_ \"2\", \"1\")}}",
     NULL,
     ALL,
     OK,
     "",
     false,
     2,
     {{"dev/temp", 7, T0}, {"dev/x/y", 21, T0}}},
    {"55799({\"value\": 5})", NULL, VALUE, OK, "", false, 1, {{"dev", 5, T0}}},
    {"{\"value\": 32(\"7\")}", NULL, VALUE, OK, "", false, 1, {{"dev", 7, T0}}},
    /* malformed */
    BAD(NULL, "", VALUE, MAL, "empty payload"),
    BAD(NULL, "a1 65 76 61 6c 75", VALUE, MAL, "byte 1: truncated"),
    BAD(NULL, "a1 65 76 61 6c 75 65", VALUE, MAL, "byte 7: truncated"),
    BAD(NULL, "fb 40 35", VALUE, MAL, "byte 0: truncated"),
    BAD(NULL, "c1", VALUE, MAL, "byte 1: truncated"),
    BAD(NULL, "9f 01", VALUE, MAL, "byte 2: truncated"),
    BAD(NULL, "7b 00 00 00 01 00 00 00 00 61", VALUE, MAL, "byte 0: truncated"),
    BAD(NULL, "9b ff ff ff ff ff ff ff ff 01", VALUE, MAL, "byte 0: truncated"),
    BAD(NULL, "01 02", VALUE, MAL, "byte 1: bytes after the item"),
    BAD(NULL, "ff", VALUE, MAL, "byte 0: unexpected break"),
    BAD(NULL, "81 ff", VALUE, MAL, "byte 1: unexpected break"),
    BAD(NULL, "bf 61 61 ff", VALUE, MAL, "byte 3: unexpected break"),
    BAD(NULL, "1c", VALUE, MAL, "byte 0: reserved or unassigned head 0x1c"),
    BAD(NULL, "f8 20", VALUE, MAL, "byte 0: reserved or unassigned head 0xf8"),
    BAD(NULL, "7f 41 00 ff", VALUE, MAL, "byte 1: not a chunk of the indefinite-length string"),
    BAD(NULL, "7f 7f ff ff", VALUE, MAL, "byte 1: not a chunk of the indefinite-length string"),
    BAD("{1: 2}", NULL, VALUE, MAL, "byte 1: map key is not a text string"),
    BAD("{\"a\": 1, h'61': 2}", NULL, ALL, MAL, "byte 4: map key is not a text string"),
    BAD("[[[[[[[[[1]]]]]]]]]", NULL, VALUE, MAL, "byte 8: nested deeper than 8"),
    BAD("{\"a\": {\"b\": {\"c\": {\"d\": {\"e\": {\"f\": {\"g\": {\"h\": {\"i\": 1}}}}}}}}}", NULL,
        ALL, MAL, "byte 24: nested deeper than 8"),
    /* [decode] sections: strict strings, drop_fields, keep_fields (dotted paths) */
    {"{\"t\": 1.5, \"update\": \"idle\", \"power\": {\"w\": 2, \"unit\": \"W\"}}",
     NULL,
     SECTION,
     OK,
     "",
     false,
     2,
     {{"dev/t", 1.5, T0}, {"dev/power/w", 2, T0}}},
    BAD("{\"t\": 1.5, \"mode\": \"auto\"}", NULL, SECTION, DECODE_NON_NUMERIC,
        "field \"mode\" is a string"),
    BAD("{\"t\": 1.5, \"x\": {\"mode\": \"auto\"}}", NULL, SECTION, DECODE_NON_NUMERIC,
        "field \"x.mode\" is a string"),
    {"{\"a\": 1, \"b\": {\"c\": 2, \"d\": 3}, \"e\": 4}",
     NULL,
     KEEP,
     OK,
     "",
     false,
     2,
     {{"dev/a", 1, T0}, {"dev/b/c", 2, T0}}},
};

static void set_opts(struct decode_opts *o, enum mode mode)
{
    static struct decode_words words;
    decode_opts_default(o);
    assert_true(decode_words_parse(DECODE_DEFAULT_WORDS, &words, NULL, 0));
    o->words = &words;
    o->fields_all = mode != VALUE;
    if (mode == ALL_TIME)
        o->ts_field = "Time";
    if (mode == SECTION) {
        o->flatten = o->strict_strings = true;
        o->drop_fields = "update, power.unit";
    }
    if (mode == KEEP)
        o->keep_fields = "a, b.c";
}

static void check_events(size_t i, const struct decode_result *res, const char *payload,
                         const struct want *want, uint32_t n)
{
    for (uint32_t k = 0; k < n; k++) {
        const struct decode_event *ev = &res->ev[k];
        char name[512];
        size_t nl = decode_event_name(res, ev, TOPIC, strlen(TOPIC), payload, name, sizeof name);
        if (nl != strlen(want[k].name) || memcmp(name, want[k].name, nl) != 0)
            fail_msg("row %zu event %u: name '%.*s', want '%s'", i, k, (int)nl, name, want[k].name);
        if (ev->value != want[k].value || ev->ts_ms != want[k].ts_ms)
            fail_msg("row %zu event %u: %.17g at %lld, want %.17g at %lld", i, k, ev->value,
                     (long long)ev->ts_ms, want[k].value, (long long)want[k].ts_ms);
    }
}

static void check_row(size_t i, const struct row *r)
{
    struct decode_result *res = malloc(sizeof *res);
    struct decode_opts o;
    size_t n;
    assert_non_null(res);
    char *buf = payload_of(r->diag, r->hex, &n);
    set_opts(&o, r->mode);
    memset(res, 0xa5, sizeof *res);
    enum decode_reason got = decode_cbor(&o, buf, n, RECV_MS, true, res);
    if (got != r->reason)
        fail_msg("row %zu: %s (%s), want %s", i, decode_reason_str(got), res->detail,
                 decode_reason_str(r->reason));
    if (strcmp(res->detail, r->detail) != 0)
        fail_msg("row %zu: detail '%s', want '%s'", i, res->detail, r->detail);
    assert_int_equal(res->n_events, r->n);
    if (got == DECODE_OK)
        assert_int_equal(res->has_ts, r->has_ts);
    check_events(i, res, buf, r->ev, r->n);
    free(buf);
    free(res);
}

static void test_rows(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        check_row(i, &rows[i]);
}

/* "{"f0": 0, ...}" with n members, or "[{"value": 0}, ...]" with n readings. */
static void many(char *out, size_t cap, int n, bool readings)
{
    size_t k = (size_t)snprintf(out, cap, readings ? "[" : "{");
    for (int i = 0; i < n; i++)
        k += (size_t)snprintf(out + k, cap - k, readings ? "{\"value\": %d}, " : "\"f%d\": %d, ", i,
                              i);
    snprintf(out + k, cap - k, readings ? "]" : "}");
}

static enum decode_reason decode_diag(const char *diag, enum mode mode, struct decode_result *res)
{
    struct decode_opts o;
    size_t n;
    char *buf = payload_of(diag, NULL, &n);
    set_opts(&o, mode);
    enum decode_reason r = decode_cbor(&o, buf, n, RECV_MS, false, res);
    free(buf);
    return r;
}

static void test_bounds(void **state)
{
    (void)state;
    static struct decode_result res;
    static char diag[6000];
    /* 64 events are fine, 65 too many: members and readings */
    many(diag, sizeof diag, 64, false);
    assert_int_equal(decode_diag(diag, ALL, &res), DECODE_OK);
    assert_int_equal(res.n_events, 64);
    assert_true(res.ev[63].value == 63.0);
    many(diag, sizeof diag, 65, false);
    assert_int_equal(decode_diag(diag, ALL, &res), DECODE_TOO_MANY_FIELDS);
    assert_string_equal(res.detail, "more than 64 events");
    many(diag, sizeof diag, 65, true);
    assert_int_equal(decode_diag(diag, VALUE, &res), DECODE_TOO_MANY_FIELDS);
    assert_string_equal(res.detail, "reading 65: more than 64 events");
    assert_int_equal(res.n_events, 0);
    /* 512 items are fine, 513 are not (an array of 511 numbers, then 512) */
    size_t k = (size_t)snprintf(diag, sizeof diag, "[{\"value\": 1}");
    for (int i = 0; i < 508; i++)
        k += (size_t)snprintf(diag + k, sizeof diag - k, ", {}");
    snprintf(diag + k, sizeof diag - k, "]");
    assert_int_equal(decode_diag(diag, VALUE, &res), DECODE_NO_VALUE);
    snprintf(diag + k, sizeof diag - k, ", {}]");
    assert_int_equal(decode_diag(diag, VALUE, &res), DECODE_MALFORMED);
    assert_string_equal(res.detail, "byte 519: more than 512 items");
    /* a 255-byte name is fine, 256 is not: "a.../b" */
    k = (size_t)snprintf(diag, sizeof diag, "{\"");
    memset(diag + k, 'a', 253);
    snprintf(diag + k + 253, sizeof diag - k - 253, "\": {\"b\": 1}}");
    assert_int_equal(decode_diag(diag, ALL, &res), DECODE_OK);
    assert_int_equal(res.ev[0].name_len, 255);
    assert_true(res.ev[0].name_topic);
    memset(diag + k, 'a', 254);
    snprintf(diag + k + 254, sizeof diag - k - 254, "\": {\"b\": 1}}");
    assert_int_equal(decode_diag(diag, ALL, &res), DECODE_MALFORMED);
    assert_string_equal(res.detail, "series name longer than 255 bytes");
    /* a chunked text string of 255 bytes is fine, 256 is not */
    k = (size_t)snprintf(diag, sizeof diag, "{(_ \"");
    memset(diag + k, 'a', 250);
    snprintf(diag + k + 250, sizeof diag - k - 250, "\", \"bbbbb\"): 1}");
    assert_int_equal(decode_diag(diag, ALL, &res), DECODE_OK);
    snprintf(diag + k + 250, sizeof diag - k - 250, "\", \"bbbbbb\"): 1}");
    assert_int_equal(decode_diag(diag, ALL, &res), DECODE_MALFORMED);
    assert_string_equal(res.detail, "byte 254: indefinite-length text longer than 255 bytes");
    /* max_payload, NULL */
    struct decode_opts o;
    decode_opts_default(&o);
    o.max_payload = 1;
    assert_int_equal(decode_cbor(&o, "\x18\x20", 2, RECV_MS, false, &res), DECODE_OVERSIZED);
    assert_string_equal(res.detail, "");
    assert_int_equal(decode_cbor(NULL, NULL, 0, RECV_MS, false, &res), DECODE_MALFORMED);
    assert_int_equal(decode_cbor(NULL, "\x01", 1, RECV_MS, false, NULL), DECODE_MALFORMED);
    assert_int_equal(decode_cbor(NULL, "\x01", 1, RECV_MS, false, &res), DECODE_OK);
    /* prefixes of a valid message are malformed and never read past their length */
    size_t n;
    char *full = payload_of("{_ \"value\": (_ \"2\", \"1\"), \"ts\": 1(1767225600.5), \"x\": "
                            "[h'00', 2(h'01')]}",
                            NULL, &n);
    for (size_t j = 0; j < n; j++) {
        char *h = malloc(j ? j : 1);
        assert_non_null(h);
        memcpy(h, full, j);
        assert_int_equal(decode_cbor(NULL, h, j, RECV_MS, false, &res), DECODE_MALFORMED);
        free(h);
    }
    assert_int_equal(decode_cbor(NULL, full, n, RECV_MS, false, &res), DECODE_OK);
    assert_true(res.ev[0].value == 21.0 && res.ev[0].ts_ms == T0 + 500);
    free(full);
}

/* The same documents as JSON (decode_payload) and CBOR give the same events. */
static void test_json_parity(void **state)
{
    (void)state;
    static const char *const docs[] = {
        "{\"temperature\": 21.4, \"humidity\": 40.1, \"battery\": 97, \"occupancy\": true}",
        "{\"Time\": \"2026-12-04T10:00:00Z\", \"Temperature\": 21.4, \"TempUnit\": \"C\"}",
        "{\"Time\": \"2026-12-04T10:00:00\", \"Temperature\": 21.4}",
        "{\"value\": 5, \"ts\": 1767225600000}",
        "{\"value\": \"22.5\", \"ts\": 1767225600.123}",
        "{\"value\": \"OFF\", \"ts\": \"2026-01-01T00:00:00.25Z\"}",
        "{\"value\": \"hello\"}",
        "{\"value\": null}",
        "{\"x\": 1}",
        "{\"a\": 1, \"a\": \"x\", \"b\": false, \"c\": \"open\", \"d\": \"nan\"}",
        "{\"value\": 1, \"ts\": 1767225600123456}",
        "{\"value\": 1, \"ts\": 1767225600.9999}",
        "{\"value\": 1, \"ts\": 17672256001234.5}",
        "{\"value\": 1, \"ts\": 99}",
        "{\"value\": 1, \"ts\": \"x\"}",
        "{\"value\": 1, \"ts\": 1767999999999}",
        "-0.5",
        "1e300",
        "\"closed\"",
        "{\"a#\": 1}",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        for (int mode = VALUE; mode <= ALL_TIME; mode++) {
            static struct decode_result rj, rc;
            struct decode_opts o;
            size_t n;
            char *cbor = payload_of(docs[i], NULL, &n);
            set_opts(&o, (enum mode)mode);
            enum decode_reason a = decode_payload(&o, docs[i], strlen(docs[i]), RECV_MS, true, &rj);
            enum decode_reason b = decode_cbor(&o, cbor, n, RECV_MS, true, &rc);
            if (a != b || rj.n_events != rc.n_events || rj.has_ts != rc.has_ts)
                fail_msg("doc %zu mode %d: json %s/%u, cbor %s/%u (%s)", i, mode,
                         decode_reason_str(a), rj.n_events, decode_reason_str(b), rc.n_events,
                         rc.detail);
            for (uint32_t k = 0; k < rj.n_events; k++) {
                char nj[300], nc[300];
                size_t lj = decode_event_name(&rj, &rj.ev[k], TOPIC, 3, docs[i], nj, sizeof nj);
                size_t lc = decode_event_name(&rc, &rc.ev[k], TOPIC, 3, cbor, nc, sizeof nc);
                assert_memory_equal(nj, nc, lj);
                assert_int_equal(lj, lc);
                assert_true(rj.ev[k].value == rc.ev[k].value);
                assert_int_equal(rj.ev[k].ts_ms, rc.ev[k].ts_ms);
            }
            free(cbor);
        }
    }
}

/* A section's time_unit applies to CBOR numbers as to JSON ones. */
static void test_time_unit_parity(void **state)
{
    (void)state;
    static const char *const docs[] = {
        "{\"value\": 1, \"ts\": 1767225600}",
        "{\"value\": 1, \"ts\": 1767225600.5}",
        "{\"value\": 1, \"ts\": 1767225600123}",
        "{\"value\": 1, \"ts\": 1767225600123456}",
        "{\"value\": 1, \"ts\": \"2026-01-01T00:00:00.25Z\"}",
    };
    static const enum decode_time_unit units[] = {DECODE_TIME_S, DECODE_TIME_MS, DECODE_TIME_US,
                                                  DECODE_TIME_NS};
    int differs_from_auto = 0;
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
            static struct decode_result rj, rc, ra;
            struct decode_opts o;
            size_t n;
            char *cbor = payload_of(docs[i], NULL, &n);
            set_opts(&o, VALUE);
            enum decode_reason a = decode_cbor(&o, cbor, n, RECV_MS, false, &ra);
            o.time_unit = units[u];
            enum decode_reason j =
                decode_payload(&o, docs[i], strlen(docs[i]), RECV_MS, false, &rj);
            enum decode_reason c = decode_cbor(&o, cbor, n, RECV_MS, false, &rc);
            if (j != c || rj.n_events != rc.n_events || rj.has_ts != rc.has_ts ||
                (j == DECODE_OK && rj.ev[0].ts_ms != rc.ev[0].ts_ms))
                fail_msg("doc %zu unit %zu: json %s %lld, cbor %s %lld (%s)", i, u,
                         decode_reason_str(j), (long long)rj.ev[0].ts_ms, decode_reason_str(c),
                         (long long)rc.ev[0].ts_ms, rc.detail);
            differs_from_auto += a != c || (c == DECODE_OK && ra.ev[0].ts_ms != rc.ev[0].ts_ms);
            free(cbor);
        }
    }
    assert_true(differs_from_auto > 0); /* the unit was not ignored */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows),
        cmocka_unit_test(test_time_unit_parity),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_json_parity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
