/*
 * lg_stream — the deterministic synthetic sensor stream of `edgelambda
 * loadgen`, shared with the benchmarks that must store or expect the very
 * same bytes (el_sqlite_baseline writes loadgen's json-ts message i as row
 * i; the integration tests recompute it in Python, harness.py).
 *
 * STREAM (a contract: tests recompute it). For message index i, with N
 * series:
 *   series s = i mod N
 *   topic    <topic-prefix>/dev<s>/temp      (styles fields, z2m: <topic-prefix>/dev<s>)
 *   value    v(i) = ((i*7919) mod 20000)/100.0 - 50.0, text "%.2f"
 *   humidity h(i) = ((i*104729) mod 10000)/100.0, text "%.2f"
 *   ts(i)    = ts_base + i * ts_step (epoch ms; the caller computes it)
 *   payloads json-ts {"value":V,"ts":T}   json {"value":V}   bare V
 *            fields  {"temp":V,"hum":H,"ts":T}
 *            device  {"value":V,"ts":T,"unit":"celsius","battery":B,
 *                     "linkquality":L,"fw":"1.4.2"}   (~100 bytes, what a
 *                     Zigbee2MQTT-style device sends; B = i mod 100,
 *                     L = i mod 256; the daemon stores V, ignores the rest)
 *            z2m     {"temperature":V,"humidity":H,"battery":B,"occupancy":O,
 *                     "linkquality":L,"voltage":M}   (96-103 bytes, a
 *                     Zigbee2MQTT sensor's state message: six members that
 *                     are numbers or booleans, no time; with fields = all
 *                     they are six series <topic>/<member>; B and L as in
 *                     device, O = true when i is even else false,
 *                     M = 2500 + (i*7 mod 700) millivolts)
 * Values are formatted from integer hundredths, so the text is exactly what
 * "%.2f" prints and strtod() of it is the double a consumer stores; i is
 * at most LG_STREAM_MAX_INDEX, so i*7919 and i*104729 never overflow.
 *
 * Design: digits are written by hand (no printf), so building a message
 * costs a few dozen nanoseconds and allocates nothing.
 * Threading: pure functions; any thread.
 */
#ifndef EL_LG_STREAM_H
#define EL_LG_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LG_STREAM_MAX_INDEX 1000000000000000ULL /* 1e15 */
#define LG_STREAM_PAYLOAD_MAX 128               /* bytes a payload may need */
#define LG_STREAM_U64_MAX 20                    /* digits of a uint64_t */

enum lg_style { LG_JSON_TS, LG_JSON, LG_BARE, LG_FIELDS, LG_DEVICE, LG_Z2M, LG_STYLE_COUNT };

/* "json-ts", "json", "bare", "fields", "device", "z2m", by enum lg_style. */
extern const char *const lg_stream_style_names[LG_STYLE_COUNT];

/* Does style's topic end in "/temp" (every style but fields and z2m, whose
 * members name the series)? */
bool lg_stream_topic_has_temp(enum lg_style style);

/* v(i) and h(i) in hundredths. */
int64_t lg_stream_value_centi(uint64_t i);
int64_t lg_stream_hum_centi(uint64_t i);

/* Message i's payload in style with event time ts into buf (at least
 * LG_STREAM_PAYLOAD_MAX bytes, not NUL-terminated); returns its length. */
size_t lg_stream_payload(enum lg_style style, uint64_t i, int64_t ts, char *buf);

/* v in decimal into dst (at least LG_STREAM_U64_MAX bytes, not
 * NUL-terminated); returns the digit count. */
size_t lg_stream_fmt_u64(char *dst, uint64_t v);

#endif
