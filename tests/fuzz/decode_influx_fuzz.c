/*
 * decode_influx_fuzz — libFuzzer target for the line-protocol decoder
 * (firmware/ingest/decode_influx.c).
 *
 * Each input is decoded in every precision, with a synced and an unsynced
 * clock and a small max_payload. Invariants (abort on violation):
 *   - the reason is in range and has a name; on failure n_events is 0 and
 *     the detail is a NUL-terminated, non-empty text;
 *   - on OK: 1 <= n_events <= DECODE_MAX_FIELDS, every value finite, every
 *     name 1..DECODE_NAME_MAX bytes inside names_len, without '+', '#' or
 *     control bytes, field_len 0; with has_ts every time lies in
 *     [ts_min_ms, 2100) (and not after recv + max_future_ms when synced),
 *     without it every time is recv;
 *   - len > max_payload gives oversized; decoding is deterministic.
 * Runs under libFuzzer (clang -fsanitize=fuzzer) or tests/fuzz/replay_main.c.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "decode_influx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RECV_MS INT64_C(1767225600000)
#define TS_MAX_MS INT64_C(4102444800000)

static void check(bool ok)
{
    if (!ok)
        abort();
}

static void check_event(const struct decode_opts *o, const struct decode_result *res,
                        const struct decode_event *ev, bool synced)
{
    check(isfinite(ev->value));
    check(ev->field_len == 0);
    check(ev->name_len >= 1 && ev->name_len <= DECODE_NAME_MAX);
    check((size_t)ev->name_off + ev->name_len <= res->names_len);
    check(res->names_len <= DECODE_NAMES_MAX);
    for (uint32_t k = 0; k < ev->name_len; k++) {
        unsigned char c = (unsigned char)res->names[ev->name_off + k];
        check(c >= 0x20 && c != 0x7f && c != '+' && c != '#');
    }
    if (res->has_ts) {
        check(ev->ts_ms >= o->ts_min_ms && ev->ts_ms < TS_MAX_MS);
        if (synced)
            check(ev->ts_ms <= RECV_MS + o->max_future_ms);
    } else {
        check(ev->ts_ms == RECV_MS);
    }
}

static void run(const struct decode_opts *o, enum decode_precision prec, const char *p, size_t n,
                bool synced)
{
    static struct decode_result a, b;
    enum decode_reason ra = decode_influx(o, prec, p, n, RECV_MS, synced, &a);
    check((unsigned)ra < DECODE_REASON_COUNT && decode_reason_str(ra) != NULL);
    check(memchr(a.detail, '\0', sizeof a.detail) != NULL);
    if (n > o->max_payload)
        check(ra == DECODE_OVERSIZED);
    if (ra != DECODE_OK) {
        check(a.n_events == 0);
        check(ra == DECODE_OVERSIZED || a.detail[0] != '\0' || ra == DECODE_MALFORMED);
    } else {
        check(a.n_events >= 1 && a.n_events <= DECODE_MAX_FIELDS);
        for (uint32_t i = 0; i < a.n_events; i++)
            check_event(o, &a, &a.ev[i], synced);
    }
    enum decode_reason rb = decode_influx(o, prec, p, n, RECV_MS, synced, &b);
    check(ra == rb && a.n_events == b.n_events && a.has_ts == b.has_ts);
    for (uint32_t i = 0; i < a.n_events; i++) {
        check(memcmp(&a.ev[i].value, &b.ev[i].value, sizeof a.ev[i].value) == 0);
        check(a.ev[i].ts_ms == b.ev[i].ts_ms && a.ev[i].name_len == b.ev[i].name_len);
        check(memcmp(a.names + a.ev[i].name_off, b.names + b.ev[i].name_off, a.ev[i].name_len) ==
              0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    struct decode_opts o;
    decode_opts_default(&o);
    struct decode_opts small = o;
    small.max_payload = 32;
    for (int prec = DECODE_PREC_NS; prec <= DECODE_PREC_S; prec++) {
        run(&o, (enum decode_precision)prec, p, size, false);
        run(&o, (enum decode_precision)prec, p, size, true);
    }
    run(&small, DECODE_PREC_NS, p, size, true);
    return 0;
}
