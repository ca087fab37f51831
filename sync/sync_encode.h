/*
 * sync_encode — the two upstream wire formats, one event per line.
 *
 * ndjson (Content-Type application/x-ndjson), one JSON object per line:
 *   {"device":"<device_id>","series":"<name>","ts":<epoch ms>,"value":<number>,"seq":<seq>}\n
 *   Strings are JSON-escaped: '"' and '\' with a backslash, \b \f \n \r \t,
 *   other bytes below 0x20 and 0x7f as \u00XX; bytes that are not valid
 *   UTF-8 (MQTT topics must be, so this is defensive) become \ufffd, so the
 *   output is always valid JSON in valid UTF-8. A non-finite value (which
 *   ingest never stores) is written as null. Accepted as is by ClickHouse
 *   "INSERT INTO t FORMAT JSONEachRow", Vector, Fluent Bit and Logstash.
 *
 * influx (Content-Type text/plain; charset=utf-8), InfluxDB line protocol:
 *   <measurement>,device=<device_id> value=<float>,seq=<seq>i <ts in ns>\n
 *   measurement = the series name with ',' and ' ' escaped by a backslash;
 *   the device tag value with ',', '=' and ' ' escaped. In both a backslash
 *   is written as "\\" (InfluxDB 2+, VictoriaMetrics and Telegraf read that
 *   as one backslash), and the control characters that would end or corrupt
 *   the line are written as the two characters \t \n \r \f (Telegraf's
 *   serializer does the same) or "\x" plus two hex digits for the others; a
 *   measurement that starts with '#' gets a leading backslash (a line that
 *   starts with '#' is a comment). The timestamp is in nanoseconds (the line
 *   protocol's default precision, so no "precision=" is needed in the URL);
 *   event times beyond the year 2262 are clamped. A non-finite value leaves
 *   out the value field (line protocol has no NaN); seq then makes the point.
 *   The seq field is written only with include_seq (sync.include_seq, off by
 *   default: VictoriaMetrics would store a second metric "<series>_seq" for
 *   every event beside "<series>_value", doubling what it keeps).
 *
 * Numbers: integers in decimal; doubles as the shortest plain decimal with at
 * most 6 fraction digits that reads back as the same double ("21.5",
 * "-0.25", "0.000001", |v| < 1e9), else the shortest of %.15g / %.16g / %.17g
 * that does ("0.30000000000000004", "1e+21"), so every value arrives exact.
 *
 * Threading: an encoder is read-only after init; any thread.
 */
#ifndef EL_SYNC_ENCODE_H
#define EL_SYNC_ENCODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "el_status.h"

/* Upper bound of one encoded event whose series name has at most 1024 bytes
 * (the master log allows 255); the batch buffer has this much headroom so
 * a single event always fits. */
#define SYNC_ENCODE_EVENT_MAX 16384
/* A device id has at most SYNC_DEVICE_ID_MAX - 1 bytes. */
#define SYNC_DEVICE_ID_MAX 256
#define SYNC_ENCODE_DEVICE_MAX (6 * SYNC_DEVICE_ID_MAX + 1)

/* The wire formats (sync.format). */
enum sync_format { SYNC_NDJSON = 0, SYNC_INFLUX };

struct sync_encoder {
    enum sync_format format;
    bool include_seq; /* influx: a seq field beside value (sync.include_seq); ndjson always */
    char device[SYNC_ENCODE_DEVICE_MAX]; /* pre-escaped for the format */
    size_t device_len;
};

/* EL_INVAL if device_id is empty or longer than SYNC_DEVICE_ID_MAX - 1 bytes. */
EL_MUST_CHECK el_status sync_encoder_init(struct sync_encoder *enc, enum sync_format format,
                                          const char *device_id);

/* Appends one event at buf (cap bytes available). Returns the bytes written,
 * or 0 when it does not fit (buf content past the return is then undefined). */
size_t sync_encode_event(const struct sync_encoder *enc, const char *series, size_t series_len,
                         int64_t seq, int64_t ts_ms, double value, char *buf, size_t cap);

const char *sync_encode_content_type(enum sync_format format);

/* Exposed for tests: escapers in the given style; return bytes written or
 * SIZE_MAX when cap is too small. */
enum sync_escape { SYNC_ESC_JSON = 0, SYNC_ESC_MEASUREMENT, SYNC_ESC_TAG };
size_t sync_encode_escape(enum sync_escape style, const char *s, size_t len, char *buf, size_t cap);
/* Shortest round-trip text of a finite double; returns its length (< cap) or 0. */
size_t sync_encode_double(double v, char *buf, size_t cap);

#endif
