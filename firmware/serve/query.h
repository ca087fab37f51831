/*
 * query — parses serving requests (docs/SPEC.md §7) into a struct query. Pure: no
 * I/O, no heap; the text is not NUL-terminated and is never read past len.
 *
 * Requests (JSON objects):
 *   {"series":"a/b","from":"-1h","to":"now","step":"1m","agg":["count","p95"]}
 *   {"match":"sensors/+/temp", ...}            one answer entry per series
 *   {"op":"series"[,"match":F]}  {"op":"last"[,"series":S|"match":F][,"n":N]}
 *   {"op":"status"}  {"op":"metrics"} (the status as Prometheus text)
 *   {"op":"recompute","full":false}  {"op":"sync"[,"retry_parked":true]}
 *   {"op":"deadletters"[,"match":F|"series":TOPIC][,"reason":R][,"since":T][,"n":N]}
 *                                                the newest N (default 100) dead letters
 *   {"op":"replay_deadletters"[,"match":F|"series":TOPIC][,"reason":R][,"since":T]
 *    [,"after":SEQ][,"n":N]}                     a command: replays the oldest N (default
 *                                                1000) dead letters after SEQ not replayed yet
 *   {"op":"watch","series":S|"match":F[,"step":..][,"agg":[..]][,"expires_s":N]
 *    [,"open":true]}  each closed bucket, as a range answer, until expiry
 *    (continuous.h); {"op":"unwatch"} ends it (same reply topic and "id")
 *   MQTT 3.1.1 clients add "reply_to":"topic" and an optional "id" (echoed).
 * Times: epoch ms (JSON number), RFC 3339 text, "now", or a duration
 * relative to now ("-90s", "-1h", "-7d"; units ms s m h d w). Steps: a
 * duration ("1m", "500ms") or a number of ms. Defaults: from -1h, to now,
 * step 1m, agg [count, mean, min, max, last].
 *
 * Bounds (a request beyond them gets an error, never a partial answer):
 * QUERY_MAX_BUCKETS buckets per series, QUERY_MAX_AGGS aggregates, names up
 * to 255 bytes, DECODE_MAX_TOKENS tokens (deeper/larger JSON is refused).
 *
 * Threading: pure; any thread.
 */
#ifndef EL_QUERY_H
#define EL_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqtt_topic.h"

#define QUERY_MAX_AGGS 16
#define QUERY_MAX_BUCKETS 10000
#define QUERY_NAME_MAX 255
#define QUERY_ID_MAX 128

enum query_op {
    QUERY_RANGE = 0,
    QUERY_SERIES,
    QUERY_LAST,
    QUERY_STATUS,
    QUERY_RECOMPUTE,
    QUERY_SYNC,
    QUERY_DEAD_LETTERS,
    QUERY_METRICS,
    QUERY_REPLAY_DEAD_LETTERS, /* a command: firmware/daemon/replay.h */
    QUERY_WATCH,
    QUERY_UNWATCH
};

#define QUERY_WATCH_MAX_S 3600 /* longest "expires_s" of a watch */

enum query_agg_kind {
    QAGG_COUNT = 0,
    QAGG_SUM,
    QAGG_MIN,
    QAGG_MAX,
    QAGG_MEAN,
    QAGG_STDDEV,
    QAGG_LAST,
    QAGG_QUANTILE
};

struct query_agg {
    enum query_agg_kind kind;
    double q;     /* QAGG_QUANTILE: 0 < q <= 1 */
    char name[8]; /* as requested: "p95", "p99.9" is not accepted */
};

struct query {
    enum query_op op;
    char series[QUERY_NAME_MAX + 1]; /* series name, or topic filter when is_match */
    bool is_match, has_series;
    int64_t from_ms, to_ms, step_ms;
    struct query_agg aggs[QUERY_MAX_AGGS];
    int n_aggs;
    bool wants_quantiles;
    int limit; /* op last: samples per series (default 1, max 1000); op deadletters:
                  rows (default 100, max 1000) */
    bool has_limit;
    char reason[32]; /* op deadletters: only this reason */
    bool has_reason;
    int64_t since_ms;  /* op deadletters: received at or after (default: all) */
    int64_t after_seq; /* op replay_deadletters: only dead letters with seq > this */
    bool full, retry_parked;
    int expires_s;                           /* op watch: 1..QUERY_WATCH_MAX_S, default 300 */
    bool open;                               /* op watch: also the open bucket's partial value */
    char reply_to[MQTT_TOPIC_REPLY_MAX + 1]; /* as given (cut); check it before use */
    size_t reply_to_len;                     /* its full length */
    bool has_reply_to;
    char id[QUERY_ID_MAX + 1]; /* raw JSON text of "id" (string with quotes, or number) */
    bool has_id;
};

/* Error codes of replies: "bad_request", "too_large", "not_found",
 * "unsupported", "busy", "internal". On failure err holds the message and
 * *code the code; q->reply_to/id are still filled when they could be read,
 * so the error can be delivered to a 3.1.1 client. Returns true on success. */
bool query_parse(const char *text, size_t len, int64_t now_ms, struct query *q, const char **code,
                 char *err, size_t errlen);

/* The "reply_to" of a request's text alone, read as query_parse reads it
 * (escapes decoded, the last one wins; cut to cap - 1 bytes, *full then cap,
 * above any valid length, so mqtt_topic_check_reply refuses it): for a reply
 * to a request that will not be parsed (the request queue is full). False
 * when there is none, or the text is not a JSON object. Any thread. */
bool query_reply_to(const char *text, size_t len, char *out, size_t cap, size_t *full);

/* True if a series or topic name is selected by q's "series" (that name)
 * or "match" (a topic filter); all when it has neither. */
bool query_name_selected(const struct query *q, const char *name, size_t len);
/* Parses a comma-separated aggregate list ("count, mean, p95") into q's
 * aggs, n_aggs and wants_quantiles, as "agg" of a request is read (config
 * files name aggregates this way). false: err says which item is wrong. */
bool query_parse_agg_list(const char *list, struct query *q, char *err, size_t errlen);

/* Parses a time ("now", "-1h", epoch ms digits, RFC 3339). */
bool query_parse_time(const char *s, size_t n, int64_t now_ms, int64_t *out_ms);
/* Parses a duration ("90s", "1m", "500ms", "2h", "7d", "1w"), > 0. */
bool query_parse_duration(const char *s, size_t n, int64_t *out_ms);

#endif
