/*
 * decode — pure decoders for sensor payloads (docs/SPEC.md §3). No I/O, no heap.
 *
 * Accepted payloads:
 *   - a bare JSON number, optionally surrounded by white space: "21.5"; a bare
 *     true/false (1/0) or state word ("ON"), bare or as a JSON string;
 *   - a JSON object with a value field and an optional timestamp field (names
 *     from decode_opts; defaults "value" and "ts");
 *   - with fields_all, a JSON object whose every numeric top-level member
 *     (except the timestamp field) becomes one event, named by its key.
 * Values (the value field, every fields_all member, a bare payload): a JSON
 * number; true/false as 1/0; a string that is exactly a JSON number ("22.5";
 * not " 7 ", "+1", "0x10"); a string that is exactly a configured state word
 * (decode_words, case-sensitive). A value field holding any other string is
 * non_numeric; with fields_all such members (and null, objects, arrays) are
 * skipped. InfluxDB line protocol is decode_influx.h, CBOR decode_cbor.h.
 * Timestamps: a JSON number or numeric string of epoch seconds (integer or
 * fractional), milliseconds, microseconds or nanoseconds (told apart by
 * magnitude: >= 1e17 ns, >= 1e14 us, >= 1e11 ms, else s), or RFC 3339 text
 * ("2026-11-24T08:00:00Z", fractional seconds, "+01:00" offsets, 't'/' '
 * separators). Absent: the receive time is used and has_ts is false.
 *
 * Rejections carry a reason (decode_reason_str gives the stable name used in
 * the dead-letter table and in status): malformed, no_value, non_finite,
 * bad_timestamp, oversized, too_many_fields, non_numeric; and a short detail
 * for the log (decode_result.detail, "" when there is none).
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
#define DECODE_MAX_WORDS 16  /* state words */
#define DECODE_WORD_MAX 16   /* bytes of one state word */
#define DECODE_NAME_MAX 255  /* bytes of a series name a decoder builds */
#define DECODE_DETAIL_MAX 80 /* bytes of a rejection's detail, with its NUL */
#define DECODE_NAMES_MAX (DECODE_MAX_FIELDS * (DECODE_NAME_MAX + 1))
#define DECODE_DEFAULT_WORDS "ON=1,OFF=0,on=1,off=0,open=1,closed=0,true=1,false=0"

/* The numbers are stored in ingest journal records (a dead letter is named
 * when the core commits it, after a crash perhaps by a newer binary): never
 * renumber; 7 and 8 are ingest's own reasons (ingest.h); new ones go last. */
enum decode_reason {
    DECODE_OK = 0,
    DECODE_MALFORMED,       /* not a number, not JSON, not an object, too complex */
    DECODE_NO_VALUE,        /* JSON without the value field (or no numeric field with fields_all) */
    DECODE_NON_FINITE,      /* NaN, Inf, or a number that overflows a double */
    DECODE_BAD_TIMESTAMP,   /* unparsable or absurd event time */
    DECODE_OVERSIZED,       /* len > max_payload */
    DECODE_TOO_MANY_FIELDS, /* fields_all with more than DECODE_MAX_FIELDS numeric members */
    DECODE_NON_NUMERIC = 9, /* the value is a string that is neither a number nor a state word */
    DECODE_REASON_COUNT     /* one past the largest (ingest's reasons included) */
};

/* State words: exact strings that stand for numbers ("ON" = 1). Parsed once
 * from the configuration (decode_words_parse); bounded, no heap. */
struct decode_words {
    uint32_t n;
    struct decode_word {
        char text[DECODE_WORD_MAX]; /* len bytes, no NUL */
        uint32_t len;
        double value;
    } w[DECODE_MAX_WORDS];
};

/* What a payload is expected to be ([decode "<filter>"] format). */
enum decode_format {
    DECODE_FMT_AUTO = 0,    /* a JSON object or array, a number, true/false, a state word */
    DECODE_FMT_JSON,        /* JSON only (a bare state word is malformed) */
    DECODE_FMT_NUMBER,      /* a bare number, true/false or state word (no object) */
    DECODE_FMT_INFLUX,      /* InfluxDB line protocol (decode_influx.h) */
    DECODE_FMT_CBOR,        /* CBOR (decode_cbor.h) */
    DECODE_FMT_SPARKPLUG_B, /* Eclipse Sparkplug B (decode_sparkplug.h) */
    DECODE_FMT_COUNT
};
const char *decode_format_str(enum decode_format f);

/* Units of a numeric event time (time_unit); AUTO tells them by magnitude. */
enum decode_time_unit {
    DECODE_TIME_AUTO = 0,
    DECODE_TIME_S,
    DECODE_TIME_MS,
    DECODE_TIME_US,
    DECODE_TIME_NS
};

struct decode_opts {
    enum decode_format format; /* decode_payload: AUTO, JSON or NUMBER */
    /* The value and time members, NUL-terminated, not owned. A name that is
     * not a member of the object is read as a dotted path into nested
     * objects ("AM2301.Temperature"). */
    const char *value_field;
    const char *ts_field;
    enum decode_time_unit time_unit;
    bool fields_all;
    /* fields_all: nested objects become series <topic>/<key>/<key> (else
     * they are skipped), and a string member that is neither a number nor a
     * state word makes the message a non_numeric dead letter (else it is
     * skipped: the "auto" rule of old) unless drop_fields names it. */
    bool flatten;
    bool strict_strings;
    /* fields_all: comma-separated dotted paths; a member is dropped when it
     * or an object above it is listed in drop_fields, and kept only if it
     * or an object above it is listed in keep_fields (when that is set). */
    const char *keep_fields; /* NULL or "": every member */
    const char *drop_fields; /* NULL or "": none */
    size_t max_payload;
    int64_t ts_min_ms;                /* earliest plausible event time (default 2000-01-01) */
    int64_t max_future_ms;            /* with a synced clock: latest plausible = recv + this */
    const struct decode_words *words; /* not owned; NULL: none */
};

/* An event's series name is one of:
 *   name_len == 0, field_len == 0:  <topic>
 *   name_len == 0, field_len > 0:   <topic>/<payload[field_off..+field_len)>
 *   name_len > 0, name_topic:       <topic>/<names[name_off..+name_len)>
 *   name_len > 0, !name_topic:      <names[name_off..+name_len)> (whole name)
 * decode_event_name() builds it. */
struct decode_event {
    int64_t ts_ms;
    double value;
    uint32_t field_off; /* fields_all: the member's key, as bytes of the payload */
    uint32_t field_len; /* 0 in value mode */
    uint32_t name_off;  /* a name the decoder built, in decode_result.names */
    uint32_t name_len;  /* 0: the name comes from the topic (and field) */
    bool name_topic;    /* names[name_off..] follows "<topic>/" */
};

struct decode_result {
    bool has_ts; /* the payload carried a timestamp */
    uint32_t n_events;
    struct decode_event ev[DECODE_MAX_FIELDS];
    char detail[DECODE_DETAIL_MAX]; /* why it was rejected, "" if not said */
    uint32_t names_len;             /* bytes of names used (decode_influx) */
    char names[DECODE_NAMES_MAX];
};

/* Writes ev's series name (struct decode_event) for a message on
 * topic[0..topic_len) with payload into buf[cap]; returns its length, or 0
 * when it does not fit in cap bytes. */
size_t decode_event_name(const struct decode_result *res, const struct decode_event *ev,
                         const char *topic, size_t topic_len, const char *payload, char *buf,
                         size_t cap);

/* Is the dotted path[0..n), or an object above it, in list (keep_fields /
 * drop_fields syntax: comma-separated dotted paths)? For every decoder. */
bool decode_path_listed(const char *list, const char *path, size_t n);

/* Fills opts with the SPEC defaults (value, ts, value mode, 64 KiB, 2000-01-01, 1 day). */
void decode_opts_default(struct decode_opts *opts);

/* Decodes one payload (formats AUTO, JSON and NUMBER). A JSON array is a
 * batch of readings: each element an object (decoded like a whole payload,
 * with its own time) or a bare value; at most DECODE_MAX_FIELDS events in
 * all. recv_wall_ms is used when the payload has no
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
/* The same with a section's time_unit: a number is in that unit (AUTO: by
 * magnitude); RFC 3339 text is read as such whatever the unit. */
bool decode_parse_time_unit(const struct decode_opts *opts, const char *text, size_t len,
                            int64_t *out_ms);

/* Parses "WORD=NUMBER,WORD=NUMBER,..." (at most DECODE_MAX_WORDS words of
 * 1..DECODE_WORD_MAX bytes, no white space, quote, ',' or '='; numbers in JSON
 * syntax; "" is no words). False with a message in err on anything else;
 * *out is then unchanged. */
bool decode_words_parse(const char *spec, struct decode_words *out, char *err, size_t errlen);

/* For the decoders: is s[0..n) usable in a series name (non-empty UTF-8, no
 * control characters, '\\', '+' or '#')? Is ts_ms a plausible event time
 * (ts_min_ms .. 2100, and with a synced clock not after recv + max_future)? */
bool decode_name_ok(const char *s, size_t n);
bool decode_ts_plausible(const struct decode_opts *opts, int64_t ts_ms, int64_t recv_wall_ms,
                         bool clock_synced);

/* For the decoders: the start of a decode call. Fills *effective from opts
 * (NULL opts or field names: the defaults) and empties *out (n_events 0,
 * has_ts false, no names, detail ""). Returns DECODE_MALFORMED when out is
 * NULL, DECODE_OVERSIZED when len > max_payload, else DECODE_OK. */
enum decode_reason decode_begin(const struct decode_opts *opts, size_t len,
                                struct decode_opts *effective, struct decode_result *out);

/* For the decoders: a value given as text s[0..n) (not NUL-terminated), as
 * decode_payload reads a JSON string: a state word (opts->words) or exactly a
 * JSON number; DECODE_NON_FINITE for "nan", "inf" and numbers beyond a
 * double; DECODE_NON_NUMERIC for anything else. opts must not be NULL. */
enum decode_reason decode_text_value(const struct decode_opts *opts, const char *s, size_t n,
                                     double *out);

/* Stable snake_case name of a reason; never NULL. */
const char *decode_reason_str(enum decode_reason reason);

#endif
