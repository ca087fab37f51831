/*
 * decode_cbor_fuzz — libFuzzer target for the CBOR decoder
 * (firmware/ingest/decode_cbor.c).
 *
 * Each input is decoded in value mode and with fields_all, with a synced and
 * an unsynced clock, with custom field names and a small max_payload.
 * Invariants (abort on violation):
 *   - the reason is in range and has a name; the detail is NUL-terminated;
 *     on failure n_events is 0 and the detail is non-empty (but for
 *     oversized);
 *   - on OK: 1 <= n_events <= DECODE_MAX_FIELDS, every value finite; a name
 *     is either payload bytes (field_off/field_len inside the input) or
 *     names bytes (inside names_len, name_topic), 1..DECODE_NAME_MAX bytes
 *     accepted by decode_name_ok, or none (the topic: value mode, a bare
 *     value); with has_ts
 *     every time lies in [ts_min_ms, 2100) (and not after recv +
 *     max_future_ms when synced), without it every time is recv;
 *   - len > max_payload gives oversized; decoding is deterministic.
 * Runs under libFuzzer (clang -fsanitize=fuzzer) or tests/fuzz/replay_main.c.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "decode_cbor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RECV_MS INT64_C(1767225600000)
#define TS_MAX_MS INT64_C(4102444800000)

static void check(bool ok)
{
    if (!ok)
        abort();
}

static void check_event(const struct decode_opts *o, const struct decode_result *res,
                        const struct decode_event *ev, const char *p, size_t n, bool synced)
{
    check(isfinite(ev->value));
    const char *name = NULL;
    size_t len = 0;
    if (ev->name_len > 0) {
        check(ev->field_len == 0 && ev->name_topic);
        check((size_t)ev->name_off + ev->name_len <= res->names_len);
        name = res->names + ev->name_off;
        len = ev->name_len;
    } else if (ev->field_len > 0) {
        check((size_t)ev->field_off + ev->field_len <= n);
        name = p + ev->field_off;
        len = ev->field_len;
    }
    check(res->names_len <= DECODE_NAMES_MAX);
    check(len == 0 || (o->fields_all && len <= DECODE_NAME_MAX && decode_name_ok(name, len)));
    if (res->has_ts) {
        check(ev->ts_ms >= o->ts_min_ms && ev->ts_ms < TS_MAX_MS);
        if (synced)
            check(ev->ts_ms <= RECV_MS + o->max_future_ms);
    } else {
        check(ev->ts_ms == RECV_MS);
    }
}

static void run(const struct decode_opts *o, const char *p, size_t n, bool synced)
{
    static struct decode_result a, b;
    enum decode_reason ra = decode_cbor(o, p, n, RECV_MS, synced, &a);
    check((unsigned)ra < DECODE_REASON_COUNT && decode_reason_str(ra) != NULL);
    check(memchr(a.detail, '\0', sizeof a.detail) != NULL);
    if (n > o->max_payload)
        check(ra == DECODE_OVERSIZED);
    if (ra != DECODE_OK) {
        check(a.n_events == 0);
        check(ra == DECODE_OVERSIZED || a.detail[0] != '\0');
    } else {
        check(a.n_events >= 1 && a.n_events <= DECODE_MAX_FIELDS);
        for (uint32_t i = 0; i < a.n_events; i++)
            check_event(o, &a, &a.ev[i], p, n, synced);
    }
    enum decode_reason rb = decode_cbor(o, p, n, RECV_MS, synced, &b);
    check(ra == rb && a.n_events == b.n_events && a.has_ts == b.has_ts);
    check(strcmp(a.detail, b.detail) == 0);
    for (uint32_t i = 0; i < a.n_events; i++) {
        check(memcmp(&a.ev[i].value, &b.ev[i].value, sizeof a.ev[i].value) == 0);
        check(a.ev[i].ts_ms == b.ev[i].ts_ms && a.ev[i].name_len == b.ev[i].name_len &&
              a.ev[i].field_off == b.ev[i].field_off && a.ev[i].field_len == b.ev[i].field_len);
        check(memcmp(a.names + a.ev[i].name_off, b.names + b.ev[i].name_off, a.ev[i].name_len) ==
              0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct decode_words words;
    static bool have_words;
    if (!have_words)
        have_words = decode_words_parse(DECODE_DEFAULT_WORDS, &words, NULL, 0);
    const char *p = (const char *)data;
    struct decode_opts o;
    decode_opts_default(&o);
    o.words = &words;
    run(&o, p, size, false);
    run(&o, p, size, true);
    struct decode_opts all = o;
    all.fields_all = true;
    run(&all, p, size, false);
    run(&all, p, size, true);
    struct decode_opts named = all;
    named.ts_field = "Time";
    named.value_field = "v";
    run(&named, p, size, true);
    named.fields_all = false;
    run(&named, p, size, false);
    struct decode_opts small = o;
    small.max_payload = 16;
    run(&small, p, size, true);
    struct decode_opts section = all; /* a [decode] section: strict strings, keep/drop */
    section.flatten = section.strict_strings = true;
    section.drop_fields = "update, a.b";
    run(&section, p, size, true);
    section.keep_fields = "a, b.c";
    run(&section, p, size, false);
    return 0;
}
