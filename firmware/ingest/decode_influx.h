/*
 * decode_influx — InfluxDB line protocol payloads (what Telegraf's
 * outputs.mqtt publishes with data_format = "influx"). Pure: no I/O, no heap.
 *
 * Grammar handled, one message = one or more lines separated by '\n' (a '\r'
 * before it is dropped; blank lines and lines starting with '#' are skipped):
 *
 *   measurement[,tag_key=tag_value...] field_key=field_value[,...] [timestamp]
 *
 *   - measurement, tag keys, tag values, field keys: non-empty; "\," "\ " and
 *     "\=" stand for the character, any other backslash is kept as written.
 *     One or more spaces separate the three parts.
 *   - field values: floats (-1.5, 1e3, .5, 1.), integers "12i" (int64),
 *     unsigned "12u" (uint64), booleans t T true True TRUE f F false False
 *     FALSE (1/0), strings "..." with \" and \\ escapes (not stored: a line
 *     whose fields are all strings is non_numeric).
 *   - timestamp: an integer in the message's precision (ns by default, us,
 *     ms or s), floored to ms; every line has one or none has (mixing is
 *     malformed, because the record carries one "has a time" flag). Absent:
 *     the receive time, has_ts false. Range checks are decode_payload's.
 *
 * Events: each numeric field of each line, in order, with the series name
 * <measurement>[/<tag value>...]/<field key>, tag values in the order the
 * line gives them (Telegraf sorts tags by key, so that is stable). The name
 * is written into decode_result.names (name_off/name_len); it must be at most
 * DECODE_NAME_MAX bytes of UTF-8 without control characters, '+' or '#'.
 *
 * Bounds: at most DECODE_MAX_FIELDS events per message (beyond:
 * too_many_fields); opts->max_payload (oversized); no NUL bytes (malformed).
 * Rejections name the line and what was wrong in decode_result.detail
 * ("line 2: expected field value").
 *
 * Threading: pure; any thread; reentrant. Stack use is under 1 KiB.
 */
#ifndef EL_DECODE_INFLUX_H
#define EL_DECODE_INFLUX_H

#include "decode.h"

enum decode_precision { DECODE_PREC_NS = 0, DECODE_PREC_US, DECODE_PREC_MS, DECODE_PREC_S };

/* Decodes a line-protocol payload of len bytes (not NUL-terminated). Uses
 * opts' max_payload, ts_min_ms and max_future_ms (NULL: defaults). On
 * DECODE_OK out->n_events >= 1 and every event has name_len > 0; otherwise
 * n_events is 0 and out->detail says why. out NULL: DECODE_MALFORMED. */
enum decode_reason decode_influx(const struct decode_opts *opts, enum decode_precision precision,
                                 const char *payload, size_t len, int64_t recv_wall_ms,
                                 bool clock_synced, struct decode_result *out);

#endif
