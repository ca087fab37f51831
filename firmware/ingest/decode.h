/*
 * decode — pure decoders for sensor payloads (docs/SPEC.md §3). No I/O, no heap.
 *
 * Accepted payloads:
 *   - a bare JSON number, optionally surrounded by white space: "21.5";
 *   - a JSON object with a numeric value field and an optional timestamp
 *     field (names from decode_opts; defaults "value" and "ts");
 *   - with fields_all, a JSON object whose every numeric top-level member
 *     (except the timestamp field) becomes one event, named by its key.
 * Timestamps: a JSON number or numeric string of epoch seconds (integer or
 * fractional), milliseconds, microseconds or nanoseconds (told apart by
 * magnitude: >= 1e17 ns, >= 1e14 us, >= 1e11 ms, else s), or RFC 3339 text
 * ("2026-11-24T08:00:00Z", fractional seconds, "+01:00" offsets, 't'/' '
 * separators). Absent: the receive time is used and has_ts is false.
 *
 * Rejections carry a reason (decode_reason_str gives the stable name used in
 * the dead-letter table and in status): malformed, no_value, non_finite,
 * bad_timestamp, oversized, too_many_fields.
 *
 * Payloads are NOT NUL-terminated: the decoder never reads past len. Numbers
 * are copied into a bounded stack buffer before strtod. JSON is tokenised by
 * jsmn (strict mode) into a fixed token array on the stack.
 *
 * Threading: pure; any thread; reentrant.
 */
#ifndef EL_DECODE_H
#define EL_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DECODE_MAX_FIELDS 64
#define DECODE_MAX_TOKENS 512

enum decode_reason {
    DECODE_OK = 0,
    DECODE_MALFORMED,       /* not a number, not JSON, not an object, too complex */
    DECODE_NO_VALUE,        /* JSON without the value field (or no numeric field with fields_all) */
    DECODE_NON_FINITE,      /* NaN, Inf, or a number that overflows a double */
    DECODE_BAD_TIMESTAMP,   /* unparsable or absurd event time */
    DECODE_OVERSIZED,       /* len > max_payload */
    DECODE_TOO_MANY_FIELDS, /* fields_all with more than DECODE_MAX_FIELDS numeric members */
    DECODE_REASON_COUNT
};

struct decode_opts {
    const char *value_field; /* NUL-terminated, not owned */
    const char *ts_field;    /* NUL-terminated, not owned */
    bool fields_all;
    size_t max_payload;
    int64_t ts_min_ms;     /* earliest plausible event time (default 2000-01-01) */
    int64_t max_future_ms; /* with a synced clock: latest plausible = recv + this */
};

struct decode_event {
    int64_t ts_ms;
    double value;
    uint32_t field_off; /* fields_all: the member's key, as bytes of the payload */
    uint32_t field_len; /* 0 in value mode */
};

struct decode_result {
    bool has_ts; /* the payload carried a timestamp */
    uint32_t n_events;
    struct decode_event ev[DECODE_MAX_FIELDS];
};

/* Fills opts with the SPEC defaults (value, ts, value mode, 64 KiB, 2000-01-01, 1 day). */
void decode_opts_default(struct decode_opts *opts);

/* Decodes one payload. recv_wall_ms is used when the payload has no
 * timestamp; clock_synced enables the "too far in the future" check.
 * On DECODE_OK, out->n_events >= 1; on any other reason it is 0. out is
 * caller-owned (NULL: DECODE_MALFORMED); payload is read only. opts NULL, or
 * a NULL field name, means the defaults. */
enum decode_reason decode_payload(const struct decode_opts *opts, const char *payload, size_t len,
                                  int64_t recv_wall_ms, bool clock_synced,
                                  struct decode_result *out);

/* Parses a timestamp text (RFC 3339 or digits) of len bytes into epoch ms.
 * "Digits" is any JSON number, its unit told by magnitude as above (floored
 * to ms); no white space, no plausibility range (decode_payload applies it).
 * Returns false if it is neither. Used by the query parser too. */
bool decode_parse_time(const char *text, size_t len, int64_t *out_ms);

/* Stable snake_case name of a reason; never NULL. */
const char *decode_reason_str(enum decode_reason reason);

#endif
