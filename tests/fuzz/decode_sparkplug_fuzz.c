/*
 * decode_sparkplug_fuzz — libFuzzer target for the Sparkplug B decoder
 * (firmware/ingest/decode_sparkplug.c), which is stateful: an input is a
 * sequence of messages fed to one fresh state, so births, aliases, seq and
 * deaths interact.
 *
 * Input: records of [topic selector: 1 byte][length: 2 bytes, little
 * endian][payload: length bytes (fewer at the end of the input)]. The
 * selector picks one of the topics below (node and device messages of two
 * nodes, STATE); the selector past the list uses the record's bytes as the
 * topic and an empty payload. The seeds (tests/fuzz/corpus/decode_sparkplug)
 * are written by `decode_sparkplug_test --write-seeds DIR` from the unit
 * test's messages.
 *
 * Invariants (abort on violation): the reason is in range and named; on
 * failure n_events is 0 and the detail is NUL-terminated; on OK 1 <= n_events
 * <= DECODE_MAX_FIELDS, every value finite, every name 1..DECODE_NAME_MAX
 * bytes inside names_len, name_topic false, no '+', '#' or control bytes;
 * with has_ts every time lies in [ts_min_ms, 2100) (not after recv +
 * max_future_ms, the clock being synced); without it some event has the
 * receive time; len > max_payload is oversized; the counters never go down.
 * Runs under libFuzzer (clang -fsanitize=fuzzer) or tests/fuzz/replay_main.c.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "decode_sparkplug.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RECV_MS INT64_C(1767225600000)
#define TS_MAX_MS INT64_C(4102444800000)

static const char *const topics[] = {
    "spBv1.0/plant/NBIRTH/gw1",     "spBv1.0/plant/NDATA/gw1",     "spBv1.0/plant/DBIRTH/gw1/pump",
    "spBv1.0/plant/DDATA/gw1/pump", "spBv1.0/plant/NDEATH/gw1",    "spBv1.0/plant/DDEATH/gw1/pump",
    "spBv1.0/plant/NCMD/gw1",       "spBv1.0/plant/DCMD/gw1/pump", "spBv1.0/plant/NBIRTH/gw2",
    "spBv1.0/plant/NDATA/gw2",      "spBv1.0/STATE/scada",
};
#define N_TOPICS (sizeof topics / sizeof topics[0])

static void check(bool ok)
{
    if (!ok)
        abort();
}

static void check_result(const struct decode_opts *o, enum decode_reason r,
                         const struct decode_result *res, size_t len)
{
    check((unsigned)r < DECODE_REASON_COUNT && decode_reason_str(r) != NULL);
    check(memchr(res->detail, '\0', sizeof res->detail) != NULL);
    if (len > o->max_payload)
        check(r == DECODE_OVERSIZED);
    if (r != DECODE_OK) {
        check(res->n_events == 0);
        return;
    }
    check(res->n_events >= 1 && res->n_events <= DECODE_MAX_FIELDS);
    check(res->names_len <= DECODE_NAMES_MAX);
    bool recv_seen = false;
    for (uint32_t i = 0; i < res->n_events; i++) {
        const struct decode_event *ev = &res->ev[i];
        check(isfinite(ev->value) && ev->field_len == 0 && !ev->name_topic);
        check(ev->name_len >= 1 && ev->name_len <= DECODE_NAME_MAX);
        check((size_t)ev->name_off + ev->name_len <= res->names_len);
        for (uint32_t k = 0; k < ev->name_len; k++) {
            unsigned char c = (unsigned char)res->names[ev->name_off + k];
            check(c >= 0x20 && c != 0x7f && c != '+' && c != '#');
        }
        if (res->has_ts)
            check(ev->ts_ms >= o->ts_min_ms && ev->ts_ms < TS_MAX_MS &&
                  ev->ts_ms <= RECV_MS + o->max_future_ms);
        recv_seen = recv_seen || ev->ts_ms == RECV_MS;
    }
    check(res->has_ts || recv_seen);
}

static void check_counters(const struct sparkplug_counters *a, const struct sparkplug_counters *b)
{
    check(b->births >= a->births && b->deaths >= a->deaths && b->seq_gaps >= a->seq_gaps &&
          b->unknown_alias >= a->unknown_alias && b->aliases_full >= a->aliases_full);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct decode_result res;
    struct sparkplug_state *st = NULL;
    if (sparkplug_new(&st) != EL_OK)
        abort();
    struct decode_opts o;
    decode_opts_default(&o);
    struct sparkplug_counters before, after;
    sparkplug_counters(st, &before);
    size_t i = 0;
    while (i < size) {
        uint8_t sel = data[i++];
        size_t len = 0;
        if (i + 2 <= size)
            len = (size_t)data[i] | (size_t)data[i + 1] << 8;
        i += i + 2 <= size ? 2 : size - i;
        if (len > size - i)
            len = size - i;
        /* the payload in its own buffer of exactly len bytes (ASan) */
        char *p = malloc(len > 0 ? len : 1);
        check(p != NULL);
        if (len > 0)
            memcpy(p, data + i, len);
        i += len;
        enum decode_reason r;
        if (sel % (N_TOPICS + 1) == N_TOPICS) {
            r = decode_sparkplug(st, &o, p, len, "", 0, RECV_MS, true, &res);
            check_result(&o, r, &res, 0);
        } else {
            const char *t = topics[sel % (N_TOPICS + 1)];
            r = decode_sparkplug(st, &o, t, strlen(t), p, len, RECV_MS, true, &res);
            check_result(&o, r, &res, len);
        }
        free(p);
        sparkplug_counters(st, &after);
        check_counters(&before, &after);
        before = after;
    }
    sparkplug_free(st);
    return 0;
}
