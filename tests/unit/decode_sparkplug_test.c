/*
 * decode_sparkplug_test — unit tests of the Sparkplug B decoder
 * (firmware/ingest/decode_sparkplug.c). The decoder is stateful, so the
 * table is a story told to one state, row after row: an edge node is born
 * with names and aliases, sends data by alias, its device is born and sends
 * data, seq jumps, aliases are unknown, values of every type, timestamps of
 * the metric, the payload or the receive time, the node dies and is born
 * again; each row names the counters expected after it. Payloads are built
 * with the generated pack functions (struct pl describes one) and decoded
 * from heap copies of exactly their length (ASan catches any over-read).
 * Bounds (too many metrics, full tables, nesting, the arena) are tests of
 * their own.
 *
 * `decode_sparkplug_test --write-seeds DIR` writes the table's messages as
 * seeds for tests/fuzz/decode_sparkplug_fuzz.c (its record format) instead.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode_sparkplug.h"
#include "sparkplug_b.pb-c.h"

typedef Org__Eclipse__Tahu__Protobuf__Payload sp_payload;
typedef Org__Eclipse__Tahu__Protobuf__Payload__Metric sp_metric;

#define RECV_MS INT64_C(1767225600000) /* 2026-01-01T00:00:00Z */
#define T0 INT64_C(1767225500000)
#define NONE (-1)

enum {
    INT8 = 1,
    INT16,
    INT32,
    INT64,
    UINT8,
    UINT16,
    UINT32,
    UINT64,
    FLOAT,
    DOUBLE,
    BOOLEAN,
    STRING,
    DATETIME
};

/* One metric: kind 'i' int_value, 'l' long_value, 'f' float, 'd' double,
 * 'b' boolean, 's' string, 'y' bytes, 'n' is_null, 0 no value. */
struct met {
    const char *name; /* NULL: none */
    int64_t alias;    /* NONE: none */
    uint32_t dt;      /* 0: none */
    char kind;
    double v;   /* f, d */
    uint64_t u; /* i, l, b */
    int64_t ts; /* NONE: none */
};

struct pl {
    int64_t ts, seq; /* NONE: none */
    uint32_t n;
    struct met m[6];
};

struct want {
    const char *name;
    double value;
    int64_t ts_ms;
};

struct row {
    const char *topic;
    struct pl p;
    const char *raw; /* instead of p (then raw_len bytes) */
    size_t raw_len;
    size_t cut; /* drop this many bytes off the end of the packed p */
    enum decode_reason reason;
    const char *detail;
    bool has_ts;
    uint32_t n;
    struct want ev[6];
    /* counters after the row: births, deaths, seq_gaps, unknown_alias, aliases_full */
    struct sparkplug_counters c;
};

#define NB "spBv1.0/plant/NBIRTH/gw1"
#define ND "spBv1.0/plant/NDATA/gw1"
#define DB "spBv1.0/plant/DBIRTH/gw1/pump1"
#define DD "spBv1.0/plant/DDATA/gw1/pump1"
#define OK DECODE_OK

static const struct row rows[] = {
    /* 0: the node's birth: names, aliases, datatypes; a string is skipped */
    {NB,
     {T0,
      0,
      4,
      {{"Temp", 1, FLOAT, 'f', 21.5, 0, NONE},
       {"Pressure", 2, INT32, 'i', 0, (uint32_t)-5, NONE},
       {"Running", 3, BOOLEAN, 'b', 0, 1, NONE},
       {"Label", 4, STRING, 's', 0, 0, NONE}}},
     NULL,
     0,
     0,
     OK,
     "",
     true,
     3,
     {{"plant/gw1/Temp", 21.5, T0}, {"plant/gw1/Pressure", -5, T0}, {"plant/gw1/Running", 1, T0}},
     {1, 0, 0, 0, 0}},
    /* 1: data by alias only; datatypes from the birth; a metric's own time */
    {ND,
     {T0 + 1000,
      1,
      3,
      {{NULL, 1, 0, 'f', 22, 0, NONE},
       {NULL, 2, 0, 'i', 0, (uint32_t)-10, NONE},
       {NULL, 3, 0, 'b', 0, 0, T0 + 500}}},
     NULL,
     0,
     0,
     OK,
     "",
     true,
     3,
     {{"plant/gw1/Temp", 22, T0 + 1000},
      {"plant/gw1/Pressure", -10, T0 + 1000},
      {"plant/gw1/Running", 0, T0 + 500}},
     {1, 0, 0, 0, 0}},
    /* 2, 3: a device's birth and data */
    {DB,
     {T0 + 2000,
      2,
      3,
      {{"Speed", 10, UINT16, 'i', 0, 1500, NONE},
       {"Flow", 11, DOUBLE, 'd', 3.25, 0, NONE},
       {"Count", 12, INT64, 'l', 0, (uint64_t)-3, NONE}}},
     NULL,
     0,
     0,
     OK,
     "",
     true,
     3,
     {{"plant/gw1/pump1/Speed", 1500, T0 + 2000},
      {"plant/gw1/pump1/Flow", 3.25, T0 + 2000},
      {"plant/gw1/pump1/Count", -3, T0 + 2000}},
     {2, 0, 0, 0, 0}},
    {DD,
     {T0 + 3000,
      3,
      3,
      {{NULL, 10, 0, 'i', 0, 1600, NONE},
       {NULL, 12, 0, 'l', 0, (uint64_t)-7, NONE},
       {NULL, 11, 0, 'd', 3.5, 0, T0 + 2500}}},
     NULL,
     0,
     0,
     OK,
     "",
     true,
     3,
     {{"plant/gw1/pump1/Speed", 1600, T0 + 3000},
      {"plant/gw1/pump1/Count", -7, T0 + 3000},
      {"plant/gw1/pump1/Flow", 3.5, T0 + 2500}},
     {2, 0, 0, 0, 0}},
    /* 4: seq 3 -> 7 is a gap; 5: seq 7 again (a redelivery) is not */
    {ND,
     {T0, 7, 1, {{NULL, 1, 0, 'f', 23, 0, NONE}}},
     NULL,
     0,
     0,
     OK,
     "",
     true,
     1,
     {{"plant/gw1/Temp", 23, T0}},
     {2, 0, 1, 0, 0}},
    {ND,
     {T0, 7, 1, {{NULL, 1, 0, 'f', 23, 0, NONE}}},
     NULL,
     0,
     0,
     OK,
     "",
     true,
     1,
     {{"plant/gw1/Temp", 23, T0}},
     {2, 0, 1, 0, 0}},
    /* 6: an unknown alias alone is a dead letter; 7: beside a known one, dropped */
    {ND,
     {T0, 8, 1, {{NULL, 17, 0, 'f', 1, 0, NONE}}},
     NULL,
     0,
     0,
     DECODE_MALFORMED,
     "unknown alias 17",
     false,
     0,
     {{0}},
     {2, 0, 1, 1, 0}},
    {ND,
     {T0, 9, 2, {{NULL, 17, 0, 'f', 1, 0, NONE}, {NULL, 1, 0, 'f', 24, 0, NONE}}},
     NULL,
     0,
     0,
     OK,
     "",
     true,
     1,
     {{"plant/gw1/Temp", 24, T0}},
     {2, 0, 1, 2, 0}},
    /* 8: by name, mixed types; Pressure's datatype (Int32) comes from the birth */
    {ND,
     {T0,
      10,
      6,
      {{"Running", NONE, BOOLEAN, 'b', 0, 1, NONE},
       {"Label", NONE, STRING, 's', 0, 0, NONE},
       {"Nothing", NONE, DOUBLE, 'n', 0, 0, NONE},
       {"Pressure", NONE, 0, 'i', 0, 0xffffffffu, NONE},
       {"Raw", NONE, UINT64, 'l', 0, 5, NONE},
       {"When", NONE, DATETIME, 'l', 0, (uint64_t)T0, NONE}}},
     NULL,
     0,
     0,
     OK,
     "",
     true,
     3,
     {{"plant/gw1/Running", 1, T0}, {"plant/gw1/Pressure", -1, T0}, {"plant/gw1/Raw", 5, T0}},
     {2, 0, 1, 2, 0}},
    /* 9: Int8/Int16 sign-extended or not, UInt32 and an inferred uint32 */
    {ND,
     {T0,
      11,
      5,
      {{"i8", NONE, INT8, 'i', 0, 0xffffff80u, NONE},
       {"i8b", NONE, INT8, 'i', 0, 0x80, NONE},
       {"i16", NONE, INT16, 'i', 0, 0xfffe, NONE},
       {"u32", NONE, UINT32, 'i', 0, 0xffffffffu, NONE},
       {"bytes", NONE, 17, 'y', 0, 0, NONE}}},
     NULL,
     0,
     0,
     OK,
     "",
     true,
     4,
     {{"plant/gw1/i8", -128, T0},
      {"plant/gw1/i8b", -128, T0},
      {"plant/gw1/i16", -2, T0},
      {"plant/gw1/u32", 4294967295.0, T0}},
     {2, 0, 1, 2, 0}},
    /* 10-12: strings only, nulls only, NaN only */
    {ND,
     {T0, 12, 1, {{"Label", NONE, STRING, 's', 0, 0, NONE}}},
     NULL,
     0,
     0,
     DECODE_NON_NUMERIC,
     "no numeric metric",
     false,
     0,
     {{0}},
     {2, 0, 1, 2, 0}},
    {ND,
     {T0, 13, 2, {{"Temp", NONE, FLOAT, 'n', 0, 0, NONE}, {"Empty", NONE, FLOAT, 0, 0, 0, NONE}}},
     NULL,
     0,
     0,
     DECODE_NO_VALUE,
     "no metric with a value",
     false,
     0,
     {{0}},
     {2, 0, 1, 2, 0}},
    {ND,
     {T0, 14, 1, {{NULL, 1, 0, 'f', __builtin_nan(""), 0, NONE}}},
     NULL,
     0,
     0,
     DECODE_NON_FINITE,
     "metric 'Temp' is not finite",
     false,
     0,
     {{0}},
     {2, 0, 1, 2, 0}},
    /* 13: no timestamp at all: the receive time; 14: some metrics carry one */
    {ND,
     {NONE, 15, 1, {{NULL, 1, 0, 'f', 1.5, 0, NONE}}},
     NULL,
     0,
     0,
     OK,
     "",
     false,
     1,
     {{"plant/gw1/Temp", 1.5, RECV_MS}},
     {2, 0, 1, 2, 0}},
    {ND,
     {NONE, 16, 2, {{NULL, 1, 0, 'f', 1, 0, T0}, {NULL, 3, 0, 'b', 0, 1, NONE}}},
     NULL,
     0,
     0,
     OK,
     "",
     false,
     2,
     {{"plant/gw1/Temp", 1, T0}, {"plant/gw1/Running", 1, RECV_MS}},
     {2, 0, 1, 2, 0}},
    /* 15, 16: implausible times */
    {ND,
     {T0, 17, 1, {{NULL, 1, 0, 'f', 1, 0, 5}}},
     NULL,
     0,
     0,
     DECODE_BAD_TIMESTAMP,
     "metric 1: timestamp out of range",
     false,
     0,
     {{0}},
     {2, 0, 1, 2, 0}},
    {ND,
     {RECV_MS + 2 * 86400000, 18, 1, {{NULL, 1, 0, 'f', 1, 0, NONE}}},
     NULL,
     0,
     0,
     DECODE_BAD_TIMESTAMP,
     "metric 1: timestamp out of range",
     false,
     0,
     {{0}},
     {2, 0, 1, 2, 0}},
    /* 17: a name that cannot be a series name */
    {ND,
     {T0, 19, 1, {{"a+b", NONE, FLOAT, 'f', 1, 0, NONE}}},
     NULL,
     0,
     0,
     DECODE_MALFORMED,
     "metric 1: name has a control character, '\\', '+' or '#'",
     false,
     0,
     {{0}},
     {2, 0, 1, 2, 0}},
    /* 18: commands: their own series */
    {"spBv1.0/plant/NCMD/gw1",
     {T0, NONE, 1, {{"Node Control/Rebirth", NONE, BOOLEAN, 'b', 0, 1, NONE}}},
     NULL,
     0,
     0,
     OK,
     "",
     true,
     1,
     {{"plant/gw1/NCMD/Node Control/Rebirth", 1, T0}},
     {2, 0, 1, 2, 0}},
    {"spBv1.0/plant/DCMD/gw1/pump1",
     {T0, NONE, 1, {{NULL, 10, 0, 'i', 0, 1000, NONE}}},
     NULL,
     0,
     0,
     OK,
     "",
     true,
     1,
     {{"plant/gw1/pump1/DCMD/Speed", 1000, T0}},
     {2, 0, 1, 2, 0}},
    /* 20: the device dies (no metric), 21: the node dies (bdSeq) */
    {"spBv1.0/plant/DDEATH/gw1/pump1",
     {T0, 20, 0, {{0}}},
     NULL,
     0,
     0,
     DECODE_NO_VALUE,
     "no metric with a value",
     false,
     0,
     {{0}},
     {2, 1, 1, 2, 0}},
    {"spBv1.0/plant/NDEATH/gw1",
     {NONE, NONE, 1, {{"bdSeq", NONE, UINT64, 'l', 0, 3, NONE}}},
     NULL,
     0,
     0,
     OK,
     "",
     false,
     1,
     {{"plant/gw1/bdSeq", 3, RECV_MS}},
     {2, 2, 1, 2, 0}},
    /* 22: dead, its aliases are kept; 23: a new birth replaces them */
    {ND,
     {T0, NONE, 1, {{NULL, 2, 0, 'i', 0, 7, NONE}}},
     NULL,
     0,
     0,
     OK,
     "",
     true,
     1,
     {{"plant/gw1/Pressure", 7, T0}},
     {2, 2, 1, 2, 0}},
    {NB,
     {T0, 0, 1, {{"Level", 5, DOUBLE, 'd', 0.5, 0, NONE}}},
     NULL,
     0,
     0,
     OK,
     "",
     true,
     1,
     {{"plant/gw1/Level", 0.5, T0}},
     {3, 2, 1, 2, 0}},
    {ND,
     {T0, 1, 2, {{NULL, 2, 0, 'i', 0, 7, NONE}, {NULL, 5, 0, 'd', 0.25, 0, NONE}}},
     NULL,
     0,
     0,
     OK,
     "",
     true,
     1,
     {{"plant/gw1/Level", 0.25, T0}},
     {3, 2, 1, 3, 0}},
    /* 25: another node, never born, by alias */
    {"spBv1.0/plant/NDATA/gw9",
     {T0, 4, 1, {{NULL, 3, 0, 'b', 0, 1, NONE}}},
     NULL,
     0,
     0,
     DECODE_MALFORMED,
     "unknown alias 3",
     false,
     0,
     {{0}},
     {3, 2, 1, 4, 0}},
    /* 26-28: bytes that are no Sparkplug payload, a truncated one, empty */
    {ND,
     {0},
     "\xff\xff\xff\xff",
     4,
     0,
     DECODE_MALFORMED,
     "not a Sparkplug B payload",
     false,
     0,
     {{0}},
     {3, 2, 1, 4, 0}},
    {ND,
     {T0, 2, 2, {{NULL, 5, 0, 'd', 1, 0, NONE}, {"Level", NONE, DOUBLE, 'd', 2, 0, NONE}}},
     NULL,
     0,
     3,
     DECODE_MALFORMED,
     "not a Sparkplug B payload",
     false,
     0,
     {{0}},
     {3, 2, 1, 4, 0}},
    {ND,
     {0},
     "",
     0,
     0,
     DECODE_NO_VALUE,
     "no metric with a value",
     false,
     0,
     {{0}},
     {3, 2, 1, 4, 0}},
    /* 29, 30: host application STATE, 3.0 JSON and 2.2 text */
    {"spBv1.0/STATE/scada1",
     {0},
     "{\"online\": true, \"timestamp\": 1767225500000}",
     0,
     0,
     OK,
     "",
     true,
     1,
     {{"STATE/scada1/online", 1, T0}},
     {3, 2, 1, 4, 0}},
    {"spBv1.0/STATE/scada1",
     {0},
     "OFFLINE",
     0,
     0,
     OK,
     "",
     false,
     1,
     {{"STATE/scada1/online", 0, RECV_MS}},
     {3, 2, 1, 4, 0}},
};

/* Packs p into a malloc'd buffer; *len its size. */
static uint8_t *pack(const struct pl *p, size_t *len)
{
    sp_payload pl = ORG__ECLIPSE__TAHU__PROTOBUF__PAYLOAD__INIT;
    sp_metric ms[6], *mp[6];
    pl.has_timestamp = p->ts != NONE;
    pl.timestamp = (uint64_t)p->ts;
    pl.has_seq = p->seq != NONE;
    pl.seq = (uint64_t)p->seq;
    pl.n_metrics = p->n;
    pl.metrics = mp;
    for (uint32_t i = 0; i < p->n; i++) {
        const struct met *m = &p->m[i];
        sp_metric *o = &ms[i];
        org__eclipse__tahu__protobuf__payload__metric__init(o);
        mp[i] = o;
        o->name = (char *)m->name;
        o->has_alias = m->alias != NONE;
        o->alias = (uint64_t)m->alias;
        o->has_datatype = m->dt != 0;
        o->datatype = m->dt;
        o->has_timestamp = m->ts != NONE;
        o->timestamp = (uint64_t)m->ts;
        switch (m->kind) {
        case 'i':
            o->value_case = ORG__ECLIPSE__TAHU__PROTOBUF__PAYLOAD__METRIC__VALUE_INT_VALUE;
            o->int_value = (uint32_t)m->u;
            break;
        case 'l':
            o->value_case = ORG__ECLIPSE__TAHU__PROTOBUF__PAYLOAD__METRIC__VALUE_LONG_VALUE;
            o->long_value = m->u;
            break;
        case 'f':
            o->value_case = ORG__ECLIPSE__TAHU__PROTOBUF__PAYLOAD__METRIC__VALUE_FLOAT_VALUE;
            o->float_value = (float)m->v;
            break;
        case 'd':
            o->value_case = ORG__ECLIPSE__TAHU__PROTOBUF__PAYLOAD__METRIC__VALUE_DOUBLE_VALUE;
            o->double_value = m->v;
            break;
        case 'b':
            o->value_case = ORG__ECLIPSE__TAHU__PROTOBUF__PAYLOAD__METRIC__VALUE_BOOLEAN_VALUE;
            o->boolean_value = m->u != 0;
            break;
        case 's':
            o->value_case = ORG__ECLIPSE__TAHU__PROTOBUF__PAYLOAD__METRIC__VALUE_STRING_VALUE;
            o->string_value = (char *)"text";
            break;
        case 'y':
            o->value_case = ORG__ECLIPSE__TAHU__PROTOBUF__PAYLOAD__METRIC__VALUE_BYTES_VALUE;
            o->bytes_value.len = 3;
            o->bytes_value.data = (uint8_t *)"abc";
            break;
        case 'n':
            o->has_is_null = true;
            o->is_null = true;
            break;
        default: break;
        }
    }
    *len = org__eclipse__tahu__protobuf__payload__get_packed_size(&pl);
    uint8_t *buf = malloc(*len > 0 ? *len : 1);
    assert_non_null(buf);
    assert_int_equal(org__eclipse__tahu__protobuf__payload__pack(&pl, buf), *len);
    return buf;
}

/* The payload of a row in a buffer of exactly its size. */
static char *row_payload(const struct row *r, size_t *len)
{
    if (r->raw != NULL) {
        *len = r->raw_len > 0 ? r->raw_len : strlen(r->raw);
        char *b = malloc(*len > 0 ? *len : 1);
        assert_non_null(b);
        memcpy(b, r->raw, *len);
        return b;
    }
    char *b = (char *)pack(&r->p, len);
    *len -= r->cut;
    return b;
}

static void check_row(struct sparkplug_state *st, size_t i, const struct row *r)
{
    struct decode_result *res = malloc(sizeof *res);
    assert_non_null(res);
    size_t n;
    char *buf = row_payload(r, &n);
    memset(res, 0xa5, sizeof *res);
    enum decode_reason got =
        decode_sparkplug(st, NULL, r->topic, strlen(r->topic), buf, n, RECV_MS, true, res);
    if (got != r->reason)
        fail_msg("row %zu: %s (%s), want %s", i, decode_reason_str(got), res->detail,
                 decode_reason_str(r->reason));
    if (strcmp(res->detail, r->detail) != 0)
        fail_msg("row %zu: detail '%s', want '%s'", i, res->detail, r->detail);
    if (res->n_events != r->n)
        fail_msg("row %zu: %u events, want %u", i, res->n_events, r->n);
    if (got == DECODE_OK && res->has_ts != r->has_ts)
        fail_msg("row %zu: has_ts %d", i, res->has_ts);
    for (uint32_t k = 0; k < r->n; k++) {
        const struct decode_event *ev = &res->ev[k];
        if (ev->name_len != strlen(r->ev[k].name) || ev->name_topic ||
            memcmp(res->names + ev->name_off, r->ev[k].name, ev->name_len) != 0)
            fail_msg("row %zu event %u: name '%.*s', want '%s'", i, k, (int)ev->name_len,
                     res->names + ev->name_off, r->ev[k].name);
        if (ev->value != r->ev[k].value || ev->ts_ms != r->ev[k].ts_ms)
            fail_msg("row %zu event %u: %g at %lld, want %g at %lld", i, k, ev->value,
                     (long long)ev->ts_ms, r->ev[k].value, (long long)r->ev[k].ts_ms);
        /* decode_event_name gives the same name */
        char name[DECODE_NAME_MAX + 1];
        size_t nl = decode_event_name(res, ev, r->topic, strlen(r->topic), buf, name, sizeof name);
        assert_int_equal(nl, strlen(r->ev[k].name));
        assert_memory_equal(name, r->ev[k].name, nl);
    }
    struct sparkplug_counters c;
    sparkplug_counters(st, &c);
    if (memcmp(&c, &r->c, sizeof c) != 0)
        fail_msg("row %zu: counters births %llu deaths %llu seq_gaps %llu unknown_alias %llu "
                 "aliases_full %llu",
                 i, (unsigned long long)c.births, (unsigned long long)c.deaths,
                 (unsigned long long)c.seq_gaps, (unsigned long long)c.unknown_alias,
                 (unsigned long long)c.aliases_full);
    free(buf);
    free(res);
}

static void test_rows(void **state)
{
    (void)state;
    struct sparkplug_state *st;
    assert_int_equal(sparkplug_new(&st), EL_OK);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        check_row(st, i, &rows[i]);
    sparkplug_free(st);
}

/* A birth of n metrics named m0.. with aliases from alias0. */
static uint8_t *birth(uint32_t n, uint64_t alias0, size_t *len)
{
    sp_payload pl = ORG__ECLIPSE__TAHU__PROTOBUF__PAYLOAD__INIT;
    sp_metric *ms = calloc(n, sizeof *ms), **mp = calloc(n, sizeof *mp);
    char(*names)[16] = calloc(n, sizeof *names);
    assert_true(ms != NULL && mp != NULL && names != NULL);
    pl.has_timestamp = true;
    pl.timestamp = (uint64_t)T0;
    pl.n_metrics = n;
    pl.metrics = mp;
    for (uint32_t i = 0; i < n; i++) {
        org__eclipse__tahu__protobuf__payload__metric__init(&ms[i]);
        mp[i] = &ms[i];
        snprintf(names[i], sizeof names[i], "m%u", i);
        ms[i].name = names[i];
        ms[i].has_alias = true;
        ms[i].alias = alias0 + i;
        ms[i].has_datatype = true;
        ms[i].datatype = INT32;
        ms[i].value_case = ORG__ECLIPSE__TAHU__PROTOBUF__PAYLOAD__METRIC__VALUE_INT_VALUE;
        ms[i].int_value = i;
    }
    *len = org__eclipse__tahu__protobuf__payload__get_packed_size(&pl);
    uint8_t *buf = malloc(*len);
    assert_non_null(buf);
    org__eclipse__tahu__protobuf__payload__pack(&pl, buf);
    free(ms);
    free(mp);
    free(names);
    return buf;
}

static enum decode_reason dec(struct sparkplug_state *st, const char *topic, const void *p,
                              size_t len, struct decode_result *res)
{
    return decode_sparkplug(st, NULL, topic, strlen(topic), p, len, RECV_MS, true, res);
}

static void test_bounds(void **state)
{
    (void)state;
    static struct decode_result res;
    struct sparkplug_state *st;
    struct sparkplug_counters c;
    size_t len;
    assert_int_equal(sparkplug_new(&st), EL_OK);
    /* 64 numeric metrics are fine, 65 too many */
    uint8_t *b = birth(64, 1, &len);
    assert_int_equal(dec(st, NB, b, len, &res), DECODE_OK);
    assert_int_equal(res.n_events, 64);
    free(b);
    b = birth(65, 1, &len);
    assert_int_equal(dec(st, NB, b, len, &res), DECODE_TOO_MANY_FIELDS);
    assert_string_equal(res.detail, "more than 64 numeric metrics in the message");
    assert_int_equal(res.n_events, 0);
    free(b);
    /* the rejected birth still bound its aliases: alias 65 is m64 */
    struct pl p = {T0, 1, 1, {{NULL, 65, 0, 'i', 0, (uint32_t)-2, NONE}}};
    b = pack(&p, &len);
    assert_int_equal(dec(st, ND, b, len, &res), DECODE_OK);
    assert_int_equal(res.ev[0].name_len, strlen("plant/gw1/m64"));
    assert_memory_equal(res.names, "plant/gw1/m64", res.ev[0].name_len);
    assert_true(res.ev[0].value == -2);
    free(b);
    /* 1024 aliases per node, the 1025th is counted and is "table full" */
    b = birth(SPARKPLUG_MAX_ALIASES + 1, 1000, &len);
    assert_int_equal(dec(st, NB, b, len, &res), DECODE_TOO_MANY_FIELDS);
    free(b);
    sparkplug_counters(st, &c);
    assert_int_equal(c.aliases_full, 1);
    p.m[0].alias = 1000 + SPARKPLUG_MAX_ALIASES - 1;
    b = pack(&p, &len);
    assert_int_equal(dec(st, ND, b, len, &res), DECODE_OK);
    free(b);
    p.m[0].alias = 1000 + SPARKPLUG_MAX_ALIASES;
    b = pack(&p, &len);
    assert_int_equal(dec(st, ND, b, len, &res), DECODE_MALFORMED);
    assert_string_equal(res.detail, "alias 2024: table full");
    free(b);
    /* 64 nodes; a 65th gets no slot until one of them dies */
    size_t blen;
    b = birth(1, 1, &blen);
    for (int k = 2; k <= SPARKPLUG_MAX_NODES; k++) {
        char t[64];
        snprintf(t, sizeof t, "spBv1.0/plant/NBIRTH/gw%d", k);
        assert_int_equal(dec(st, t, b, blen, &res), DECODE_OK);
    }
    assert_int_equal(dec(st, "spBv1.0/plant/NBIRTH/late", b, blen, &res), DECODE_OK);
    sparkplug_counters(st, &c);
    assert_int_equal(c.aliases_full, 2);
    p.m[0].alias = 1;
    uint8_t *d = pack(&p, &len);
    size_t dlen = len;
    assert_int_equal(dec(st, "spBv1.0/plant/NDATA/late", d, dlen, &res), DECODE_MALFORMED);
    assert_string_equal(res.detail, "alias 1: table full");
    assert_int_equal(dec(st, "spBv1.0/plant/NDEATH/gw7", "", 0, &res), DECODE_NO_VALUE);
    assert_int_equal(dec(st, "spBv1.0/plant/NBIRTH/late", b, blen, &res), DECODE_OK);
    assert_int_equal(dec(st, "spBv1.0/plant/NDATA/late", d, dlen, &res), DECODE_OK);
    free(b);
    free(d);
    /* topics of another shape */
    static const char *const bad_topics[] = {
        "spBv1.0/plant/NDATA",     "spBv1.0/plant/DDATA/gw1", "spBv1.0/plant/NDATA/gw1/pump1",
        "spAv1.0/plant/NDATA/gw1", "spBv1.0/plant/NDATA/",    "spBv1.0/plant/XDATA/gw1",
        "spBv1.0//NDATA/gw1",      "spBv1.0/pl#nt/NDATA/gw1", "spBv1.0/STATE",
    };
    for (size_t k = 0; k < sizeof bad_topics / sizeof bad_topics[0]; k++) {
        assert_int_equal(dec(st, bad_topics[k], "", 0, &res), DECODE_MALFORMED);
        assert_string_equal(res.detail, "topic is not spBv1.0/<group>/<type>/<node>[/<device>]");
    }
    /* max_payload; NULL arguments */
    struct decode_opts o;
    decode_opts_default(&o);
    o.max_payload = 2;
    assert_int_equal(
        decode_sparkplug(st, &o, ND, strlen(ND), "\x08\x01\x18", 3, RECV_MS, true, &res),
        DECODE_OVERSIZED);
    assert_int_equal(decode_sparkplug(NULL, NULL, ND, strlen(ND), "", 0, RECV_MS, true, &res),
                     DECODE_MALFORMED);
    assert_int_equal(decode_sparkplug(st, NULL, NULL, 0, "", 0, RECV_MS, true, &res),
                     DECODE_MALFORMED);
    assert_int_equal(decode_sparkplug(st, NULL, ND, strlen(ND), "", 0, RECV_MS, true, NULL),
                     DECODE_MALFORMED);
    assert_int_equal(sparkplug_new(NULL), EL_INVAL);
    sparkplug_free(st);
}

#define NEST_BUF 70000

/* Wraps the tail of buf (from *start) in a length-delimited field: prepends
 * the key (tag: its varint bytes, least significant first) and the length. */
static void wrap(uint8_t *buf, size_t *start, unsigned tag)
{
    uint8_t tmp[16];
    size_t t = 0, len = NEST_BUF - *start;
    for (unsigned v = tag; v != 0; v >>= 8)
        tmp[t++] = (uint8_t)(v & 0xff);
    do {
        tmp[t++] = (uint8_t)((len & 0x7f) | (len > 0x7f ? 0x80 : 0));
        len >>= 7;
    } while (len != 0);
    *start -= t;
    memcpy(buf + *start, tmp, t);
}

/* Nesting beyond SPARKPLUG_MAX_DEPTH is refused before unpacking; a payload
 * whose unpacked tree outgrows the arena is oversized; prefixes of a valid
 * payload never read past their length. */
static void test_nesting_arena(void **state)
{
    (void)state;
    static struct decode_result res;
    static uint8_t buf[NEST_BUF];
    struct sparkplug_state *st;
    assert_int_equal(sparkplug_new(&st), EL_OK);
    /* metric { template_value { metrics { ... } } }, built inside out */
    for (int depth = 10; depth <= 40; depth += 30) {
        size_t start = NEST_BUF;
        for (int k = 0; k < depth; k++) {
            wrap(buf, &start, 0x12);   /* Template.metrics */
            wrap(buf, &start, 0x0192); /* Metric.template_value (field 18) */
        }
        start -= 3;
        memcpy(buf + start, "\x0a\x01t", 3); /* the metric's name "t" */
        wrap(buf, &start, 0x12);             /* Payload.metrics */
        enum decode_reason r = dec(st, ND, buf + start, sizeof buf - start, &res);
        if (depth == 10) {
            assert_int_equal(r, DECODE_NON_NUMERIC);
        } else {
            assert_int_equal(r, DECODE_MALFORMED);
            assert_string_equal(res.detail, "nested deeper than 32 messages");
        }
    }
    /* 32768 empty metrics: 64 KiB on the wire, megabytes unpacked */
    for (size_t k = 0; k < 65536; k += 2) {
        buf[k] = 0x12;
        buf[k + 1] = 0;
    }
    assert_int_equal(dec(st, ND, buf, 65536, &res), DECODE_OVERSIZED);
    assert_string_equal(res.detail, "unpacked, larger than the 1048576-byte arena");
    /* every prefix of a birth */
    size_t len;
    uint8_t *b = birth(8, 1, &len);
    for (size_t k = 0; k <= len; k++) {
        uint8_t *h = malloc(k ? k : 1);
        assert_non_null(h);
        memcpy(h, b, k);
        (void)dec(st, NB, h, k, &res);
        free(h);
    }
    free(b);
    sparkplug_free(st);
}

/* The rows as fuzz seeds: the record format of decode_sparkplug_fuzz.c
 * (selectors index its topic list), the whole story in one seed and each
 * message after the births it needs in others. */
static int fuzz_selector(const char *topic)
{
    static const char *const types[] = {"NBIRTH", "NDATA",  "DBIRTH", "DDATA",
                                        "NDEATH", "DDEATH", "NCMD",   "DCMD"};
    if (strstr(topic, "STATE") != NULL)
        return 10;
    for (int k = 0; k < 8; k++) {
        char needle[16];
        snprintf(needle, sizeof needle, "/%s/", types[k]);
        if (strstr(topic, needle) != NULL)
            return strstr(topic, "gw9") != NULL && k < 2 ? 8 + k : k;
    }
    return 1;
}

static void put_record(FILE *f, const char *topic, const char *p, size_t n)
{
    uint8_t hdr[3] = {(uint8_t)fuzz_selector(topic), (uint8_t)(n & 0xff), (uint8_t)(n >> 8)};
    fwrite(hdr, 1, 3, f);
    fwrite(p, 1, n, f);
}

static int write_seeds(const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/story", dir);
    FILE *all = fopen(path, "wb");
    if (all == NULL)
        return 1;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        size_t n;
        char *p = row_payload(&rows[i], &n);
        put_record(all, rows[i].topic, p, n);
        snprintf(path, sizeof path, "%s/row%02zu", dir, i);
        FILE *f = fopen(path, "wb");
        if (f == NULL)
            return 1;
        if (i > 0) { /* after the births it needs */
            size_t bn;
            char *bp = row_payload(&rows[0], &bn);
            put_record(f, rows[0].topic, bp, bn);
            free(bp);
            bp = row_payload(&rows[2], &bn);
            put_record(f, rows[2].topic, bp, bn);
            free(bp);
        }
        put_record(f, rows[i].topic, p, n);
        fclose(f);
        free(p);
    }
    fclose(all);
    size_t len;
    uint8_t *b = birth(70, 1, &len);
    snprintf(path, sizeof path, "%s/birth70", dir);
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return 1;
    put_record(f, "spBv1.0/plant/NBIRTH/gw1", (const char *)b, len);
    fclose(f);
    free(b);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--write-seeds") == 0)
        return write_seeds(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_nesting_arena),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
