/*
 * decode_cbor — CBOR payloads (RFC 8949), read as the JSON decoder
 * (decode.h) reads the equivalent JSON document, so that a fleet can switch
 * encodings without renaming series. Pure: no I/O, no heap.
 *
 * Accepted payloads (exactly one data item, nothing after it):
 *   - a bare value: an integer, a float (half, single or double), a boolean
 *     (1/0) or a text string holding a state word or exactly a JSON number;
 *     one event named by the topic, at the receive time;
 *   - a map (a reading): in value mode the member opts->value_field is the
 *     value; with fields_all every member whose value is a value becomes an
 *     event named <topic>/<key>, other strings, null, undefined, byte strings
 *     and arrays are skipped; a nested map is flattened: its members are
 *     named <topic>/<key>/<subkey> (up to the depth bound). The member
 *     opts->ts_field of the reading is its time and never an event.
 *     As in decode_payload, opts->drop_fields and keep_fields select
 *     members by dotted path (a map listed stands for everything below it),
 *     and with opts->strict_strings a string member that is no value makes
 *     the message non_numeric (`field "mode" is a string`) instead of being
 *     skipped;
 *   - an array of maps: one reading per element, each with its own value(s)
 *     and time; every reading has a time or none has (mixing is malformed,
 *     because the record carries one "has a time" flag).
 * Values as decode_payload: a text value field that is neither a word nor a
 * number is non_numeric (`field "value" is a string`); NaN and infinities
 * are non_finite. Tags are transparent, except tag 2/3 bignums (a byte
 * string: its magnitude as a double, beyond a double is non_finite) and the
 * time tags below. Duplicate keys: the last wins (an earlier one is skipped,
 * as in JSON); a flattened name that an earlier event of the same reading
 * already has takes the later value.
 * Time (the ts member): null or undefined is "no time" (the receive time,
 * has_ts false); an integer or float is epoch s, ms, us or ns told apart by
 * magnitude as decode_parse_time (floats through their shortest decimal
 * text, so 1767225600.123 is ...123 ms); a text string is RFC 3339 or such
 * digits (tag 0 or none); tag 1 is epoch seconds (integer or float). Then
 * decode_ts_plausible; anything else is bad_timestamp.
 *
 * Names: a reading's own definite-length key is field_off/field_len (bytes
 * of the payload), like JSON; a flattened or chunked key is written into
 * decode_result.names with name_topic true. Every key that names a series
 * must pass decode_name_ok, and the part after "<topic>/" is at most
 * DECODE_NAME_MAX bytes; else malformed.
 *
 * Rejections: malformed ("byte 12: truncated", "byte 3: map key is not a text
 * string", "byte 40: nested deeper than 8", unknown simple values, reserved
 * encodings, bytes after the item, a break outside an indefinite-length
 * item), oversized (len > max_payload), too_many_fields (more than
 * DECODE_MAX_FIELDS events), no_value, non_finite, non_numeric,
 * bad_timestamp; in an array the detail starts "reading N: ".
 *
 * Bounds: the payload is walked once with libcbor's streaming decoder into
 * a fixed array of DECODE_MAX_TOKENS items (more: malformed) and an explicit
 * stack of CBOR_MAX_DEPTH open arrays, maps and chunked strings (deeper:
 * malformed); a chunked (indefinite-length) text string is at most
 * DECODE_NAME_MAX bytes. No recursion.
 *
 * Threading: pure; any thread; reentrant. Stack use is about 18 KiB.
 */
#ifndef EL_DECODE_CBOR_H
#define EL_DECODE_CBOR_H

#include "decode.h"

#define CBOR_MAX_DEPTH 8

/* Decodes a CBOR payload of len bytes. opts NULL, or a NULL field name,
 * means the defaults. On DECODE_OK out->n_events >= 1; otherwise n_events is
 * 0 and out->detail says why (empty for oversized). out NULL:
 * DECODE_MALFORMED. */
enum decode_reason decode_cbor(const struct decode_opts *opts, const char *payload, size_t len,
                               int64_t recv_wall_ms, bool clock_synced, struct decode_result *out);

#endif
