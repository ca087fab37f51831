/*
 * decode_fuzz — libFuzzer target for the payload decoder (firmware/decode.c).
 *
 * Each input is decoded as a payload under several option sets (value mode,
 * fields_all, a small max_payload, custom field names, synced and unsynced
 * clocks, and the [decode] section options: dotted paths, flattening with
 * strict strings, keep/drop lists, stated time units, formats json and
 * number) and parsed with decode_parse_time. Invariants (abort on violation):
 *   - the reason is in range and has a name; on failure n_events is 0;
 *   - on OK: 1 <= n_events <= DECODE_MAX_FIELDS, every value finite; with
 *     has_ts every time lies in [ts_min_ms, 2100) and, with a synced clock,
 *     not after recv + max_future_ms; without it every time is recv (a JSON
 *     array gives each reading its own time); value mode names no field;
 *     fields_all keys lie inside the input and hold no '"', '\\', '+' or '#';
 *     built names lie inside names_len, follow the topic, and hold no
 *     control character, '+' or '#';
 *   - len > max_payload gives oversized;
 *   - decoding is deterministic (same input, same options, same result);
 *   - a time that decode_parse_time accepts within years 0000-9999 formats
 *     back (RFC 3339, ms) to text that parses to the same instant.
 * Runs under libFuzzer (clang -fsanitize=fuzzer) or tests/fuzz/replay_main.c.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "plat_clock.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RECV_MS INT64_C(1732440000000)
#define TS_MAX_MS INT64_C(4102444800000)

static void check(bool ok)
{
    if (!ok)
        abort();
}

static void check_result(const struct decode_opts *o, const char *p, size_t n, int64_t recv_ms,
                         bool synced, enum decode_reason r, const struct decode_result *res)
{
    check((unsigned)r < DECODE_REASON_COUNT);
    check(decode_reason_str(r) != NULL);
    if (n > o->max_payload)
        check(r == DECODE_OVERSIZED);
    if (r != DECODE_OK) {
        check(res->n_events == 0);
        return;
    }
    check(res->n_events >= 1 && res->n_events <= DECODE_MAX_FIELDS);
    for (uint32_t i = 0; i < res->n_events; i++) {
        const struct decode_event *ev = &res->ev[i];
        int64_t ts = ev->ts_ms;
        if (res->has_ts) {
            check(ts >= o->ts_min_ms && ts < TS_MAX_MS);
            if (synced)
                check(ts <= recv_ms + o->max_future_ms);
        } else {
            check(ts == recv_ms);
        }
        check(isfinite(ev->value));
        check((size_t)ev->field_off + ev->field_len <= n);
        if (ev->name_len > 0) {
            check(o->fields_all && ev->name_topic && ev->field_len == 0);
            check((size_t)ev->name_off + ev->name_len <= res->names_len &&
                  res->names_len <= sizeof res->names);
            for (uint32_t k = 0; k < ev->name_len; k++) {
                unsigned char c = (unsigned char)res->names[ev->name_off + k];
                check(c >= 0x20 && c != 0x7f && c != '+' && c != '#');
            }
            continue;
        }
        if (!o->fields_all) {
            check(ev->field_len == 0);
            continue;
        }
        for (uint32_t k = 0; k < ev->field_len; k++) {
            char c = p[ev->field_off + k];
            check(c != '"' && c != '\\' && c != '+' && c != '#' && c != '\0');
        }
    }
}

static void run(const struct decode_opts *o, const char *p, size_t n, bool synced)
{
    static struct decode_result a, b;
    enum decode_reason ra = decode_payload(o, p, n, RECV_MS, synced, &a);
    check_result(o, p, n, RECV_MS, synced, ra, &a);
    enum decode_reason rb = decode_payload(o, p, n, RECV_MS, synced, &b);
    check(ra == rb && a.n_events == b.n_events && a.has_ts == b.has_ts);
    for (uint32_t i = 0; i < a.n_events; i++) {
        check(memcmp(&a.ev[i].value, &b.ev[i].value, sizeof a.ev[i].value) == 0);
        check(a.ev[i].ts_ms == b.ev[i].ts_ms && a.ev[i].field_off == b.ev[i].field_off &&
              a.ev[i].field_len == b.ev[i].field_len);
    }
}

static void check_time(const char *p, size_t n)
{
    int64_t ms = 0;
    if (!decode_parse_time(p, n, &ms))
        return;
    /* 0000-01-01 .. 9999-12-31: the range RFC 3339 can write */
    if (ms < INT64_C(-62167219200000) || ms >= INT64_C(253402300800000))
        return;
    char text[40];
    plat_clock_format_rfc3339(ms, text, sizeof text);
    int64_t again = ms + 1;
    check(decode_parse_time(text, strlen(text), &again));
    check(again == ms);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    struct decode_opts value_mode;
    decode_opts_default(&value_mode);
    struct decode_opts all = value_mode;
    all.fields_all = true;
    struct decode_opts small = value_mode;
    small.max_payload = 32;
    struct decode_opts custom = all;
    custom.value_field = "v";
    custom.ts_field = "t";
    custom.ts_min_ms = 0;
    custom.max_future_ms = 0;
    struct decode_opts custom_value = custom;
    custom_value.fields_all = false;

    run(&value_mode, p, size, false);
    run(&value_mode, p, size, true);
    run(&all, p, size, false);
    run(&all, p, size, true);
    run(&small, p, size, true);
    run(&custom, p, size, true);
    run(&custom_value, p, size, false);
    /* [decode] section options (decode.h) */
    struct decode_opts section = all;
    section.flatten = section.strict_strings = true;
    section.drop_fields = "update, a.b";
    section.ts_field = "m.ts";
    section.time_unit = DECODE_TIME_MS;
    run(&section, p, size, true);
    struct decode_opts kept = section;
    kept.keep_fields = "a, b.c";
    kept.format = DECODE_FMT_JSON;
    kept.time_unit = DECODE_TIME_NS;
    run(&kept, p, size, false);
    struct decode_opts path = value_mode;
    path.value_field = "data.v";
    path.ts_field = "data.t";
    path.time_unit = DECODE_TIME_S;
    path.format = DECODE_FMT_NUMBER;
    run(&path, p, size, true);
    path.format = DECODE_FMT_AUTO;
    run(&path, p, size, false);
    check_time(p, size);
    return 0;
}
