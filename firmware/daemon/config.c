/*
 * config — edgelambdad's configuration (see config.h for the interface).
 *
 * Not for: applying the configuration (the daemon sets the log level, opens
 * files and checks secret files' permissions); this module only parses and
 * validates.
 *
 * Design: cfg_table[] below is the single description of every key: section,
 * key, type, where it lives in struct el_config (offsetof/sizeof), bounds,
 * default text, enum names, an optional extra check and the help text. One
 * setter per type turns text into a field, so the built-in defaults, the INI
 * file, "section.key=value" overrides and the example config all go through
 * the same code: config_defaults() parses each default with its setter and
 * aborts if one fails (a programming error a unit test catches at once).
 * Setters validate completely before they store, so a rejected value leaves
 * the field as it was. Per-key checks that need only the key's own value
 * (URI scheme, topic filters, schedule syntax) run in the setter, so their
 * errors carry the file's line; config_finish() runs them again (callers may
 * have filled the struct by hand), then derives values and runs the checks
 * that involve several keys.
 *
 * Types: string and path (text that fits the field, no control characters,
 * min = shortest allowed length), int and int64 (decimal, no trailing
 * characters, within min..max), bytes (int64 with an optional K/M/G or
 * KiB/MiB/GiB suffix, powers of 1024), double (finite, within min..max),
 * bool (true/false, yes/no, on/off, 1/0) and enum (one of the names; value =
 * index, stored into an int-sized enum field or a bool).
 *
 * INI dialect (inih): "[section]" lines; "key = value" (or "key: value");
 * whole-line comments start with '#' or ';'; an inline comment is ';' after
 * whitespace (so a value cannot contain " ;"); surrounding whitespace is
 * trimmed; when a key is given twice the last one wins. Leading whitespace
 * is removed by our reader, so inih's multi-line continuation never applies:
 * an indented line is an ordinary line, not part of the previous value.
 *
 * Line numbers: Debian's libinih is built without INI_HANDLER_LINENO and
 * with INI_MAX_LINE 200, so we parse through ini_parse_stream() with our own
 * reader. inih calls the reader once per line, so the reader's count is the
 * line of the key the handler is looking at. The reader also rejects what
 * inih would silently mangle: a line longer than inih's buffer (inih would
 * split it in two), a NUL byte, and an unknown "[section]" even when no key
 * follows it. Limit: a line holds at most (inih's buffer - 1) characters,
 * 199 with Debian's build, so values are shorter than the larger fields.
 *
 * Errors: the first error stops parsing; its message is
 * "<name>:<line>: [<section>] <key>: <what is wrong>", "command line: ..."
 * for config_set(), and "[<section>] <key>: ..." for config_finish().
 * Offending text is quoted at most 64 bytes long, control characters as '?'.
 *
 * Threading: load on one thread at start-up; the table is read-only.
 */
#include "config.h"
#include "mqtt_topic.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <ini.h>

#include "batch_sched.h"
#include "decode.h"
#include "decode_influx.h"
#include "plat_clock.h"
#include "plat_log.h"
#include "query.h"

#define KIB INT64_C(1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)
/* Room for a "what is wrong" text and for a quoted value inside it. */
#define WHAT_LEN 384
#define SHOWN_LEN 72

enum cfg_type {
    CFG_STRING,
    CFG_PATH,
    CFG_INT,
    CFG_INT64,
    CFG_BYTES,
    CFG_DOUBLE,
    CFG_BOOL,
    CFG_ENUM
};

/* Extra validation of a text value (after the type's own checks). Returns
 * false and writes what is wrong into what. */
typedef bool (*cfg_check_fn)(const char *value, char *what, size_t whatlen);

struct cfg_entry {
    const char *section;
    const char *key;
    enum cfg_type type;
    size_t offset; /* into struct el_config */
    size_t size;   /* sizeof the field */
    int64_t min;   /* numbers: bounds (double too); strings: shortest length */
    int64_t max;
    const char *def;          /* default, parsed by the type's setter */
    const char *const *names; /* CFG_ENUM: names[i] is value i, NULL-terminated */
    cfg_check_fn check;       /* NULL or an extra check of string values */
    const char *help;         /* one or more lines, '\n'-separated */
    bool live;                /* SIGHUP applies it (core_reload.c, reload_rules): LIVE below */
};

static bool check_mqtt_uri(const char *v, char *what, size_t whatlen);
static bool check_topic_prefix(const char *v, char *what, size_t whatlen);
static bool check_subscribe(const char *v, char *what, size_t whatlen);
static bool check_schedule(const char *v, char *what, size_t whatlen);
static bool check_sync_url(const char *v, char *what, size_t whatlen);
static bool check_state_words(const char *v, char *what, size_t whatlen);
static bool check_textfile(const char *v, char *what, size_t whatlen);
static bool check_duration(const char *v, char *what, size_t whatlen);
static bool check_cq_step(const char *v, char *what, size_t whatlen);
static bool check_aggs(const char *v, char *what, size_t whatlen);
static bool check_cq_match(const char *v, char *what, size_t whatlen);
static bool check_cq_topic(const char *v, char *what, size_t whatlen);
static bool filter_ok(const char *f, size_t n, char *what, size_t whatlen);

/* Enum names: the index is the value stored (checked below). */
static const char *const fields_names[] = {"value", "all", NULL};
static const char *const durability_names[] = {"normal", "strict", NULL};
static const char *const full_policy_names[] = {"stop_ingest", "drop_oldest", NULL};
static const char *const format_names[] = {"ndjson", "influx", NULL};
static const char *const compression_names[] = {"none", "gzip", "zstd", NULL};
static const char *const level_names[] = {"error", "warn", "info", "debug", NULL};
static const char *const synced_names[] = {"auto", "yes", "no", NULL};

_Static_assert(EL_DURABILITY_STRICT == 1, "durability_names order");
_Static_assert(EL_FULL_DROP_OLDEST == 1, "full_policy_names order");
_Static_assert(EL_SYNC_INFLUX == 1, "format_names order");
_Static_assert(EL_COMPRESS_GZIP == 1 && EL_COMPRESS_ZSTD == 2, "compression_names order");
_Static_assert(PLAT_LOG_ERROR == 0 && PLAT_LOG_DEBUG == 3, "level_names order");
_Static_assert(PLAT_CLOCK_SYNC_AUTO == 0 && PLAT_CLOCK_SYNC_YES == 1 && PLAT_CLOCK_SYNC_NO == 2,
               "synced_names order");
_Static_assert(sizeof(enum el_durability) == sizeof(int) &&
                   sizeof(enum el_full_policy) == sizeof(int) &&
                   sizeof(enum el_sync_format) == sizeof(int) &&
                   sizeof(enum el_compression) == sizeof(int),
               "enum fields are stored as int");

#define OFF(S, K) offsetof(struct el_config, S.K)
#define SIZE(S, K) sizeof(((struct el_config *)0)->S.K)
/* A key SIGHUP applies without a restart: the last argument of its row,
 * e.g. INT(query, deadline_ms, ..., "help", LIVE). core_reload.c's reload_rules
 * must have an apply function for it (checked at start). */
#define LIVE +1
#define ENTRY(S, K, TYPE, MIN, MAX, DEF, NAMES, CHECK, HELP, ...)                                  \
    {                                                                                              \
        .section = #S, .key = #K, .type = TYPE, .offset = OFF(S, K), .size = SIZE(S, K),           \
        .min = MIN, .max = MAX, .def = DEF, .names = NAMES, .check = CHECK, .help = HELP,          \
        .live = (0 __VA_ARGS__)                                                                    \
    }
#define STR(S, K, MINLEN, DEF, CHECK, HELP, ...)                                                   \
    ENTRY(S, K, CFG_STRING, MINLEN, 0, DEF, NULL, CHECK, HELP, __VA_ARGS__)
#define PATH(S, K, DEF, HELP, ...) ENTRY(S, K, CFG_PATH, 0, 0, DEF, NULL, NULL, HELP, __VA_ARGS__)
#define INT(S, K, MIN, MAX, DEF, HELP, ...)                                                        \
    ENTRY(S, K, CFG_INT, MIN, MAX, DEF, NULL, NULL, HELP, __VA_ARGS__)
#define INT64(S, K, MIN, MAX, DEF, HELP, ...)                                                      \
    ENTRY(S, K, CFG_INT64, MIN, MAX, DEF, NULL, NULL, HELP, __VA_ARGS__)
#define BYTES(S, K, MIN, MAX, DEF, HELP, ...)                                                      \
    ENTRY(S, K, CFG_BYTES, MIN, MAX, DEF, NULL, NULL, HELP, __VA_ARGS__)
#define DOUBLE(S, K, MIN, MAX, DEF, HELP, ...)                                                     \
    ENTRY(S, K, CFG_DOUBLE, MIN, MAX, DEF, NULL, NULL, HELP, __VA_ARGS__)
#define BOOL(S, K, DEF, HELP, ...) ENTRY(S, K, CFG_BOOL, 0, 1, DEF, NULL, NULL, HELP, __VA_ARGS__)
#define ENUM(S, K, NAMES, DEF, HELP, ...)                                                          \
    ENTRY(S, K, CFG_ENUM, 0, 0, DEF, NAMES, NULL, HELP, __VA_ARGS__)
#define FIELDS_ALL(S, DEF, HELP, ...)                                                              \
    {                                                                                              \
        .section = #S, .key = "fields", .type = CFG_ENUM, .offset = OFF(S, fields_all),            \
        .size = SIZE(S, fields_all), .def = DEF, .names = fields_names, .help = HELP,              \
        .live = (0 __VA_ARGS__)                                                                    \
    }

static const struct cfg_entry cfg_table[] = {
    STR(mqtt, uri, 1, "tcp://127.0.0.1:1883", check_mqtt_uri,
        "Broker: tcp://, ssl://, mqtt://, mqtts://, ws:// or wss:// then host[:port]."),
    STR(mqtt, client_id, 0, "", NULL,
        "Client id of the persistent session; empty means edgelambda-<hostname>."),
    STR(mqtt, username, 0, "", NULL, "Broker user name; empty means no credentials."),
    PATH(mqtt, password_file, "",
         "File holding the broker password (must not be readable by others)."),
    STR(mqtt, topic_prefix, 1, "edgelambda", check_topic_prefix,
        "Prefix of the <prefix>/query, /status and /command topics (no '+' or '#')."),
    PATH(mqtt, ca_file, "",
         "CA certificates that verify the broker (ssl://, mqtts://, wss://);\n"
         "empty uses the system store."),
    PATH(mqtt, cert_file, "", "Client certificate for mutual TLS; set together with key_file."),
    PATH(mqtt, key_file, "", "Private key of cert_file."),
    INT(mqtt, keepalive_s, 5, 3600, "30", "Seconds between keep-alive pings."),
    INT(mqtt, session_expiry_s, 1, INT32_MAX, "86400",
        "Seconds the broker keeps our session (and queues messages)\n"
        "while the daemon is away."),
    INT(mqtt, max_inflight, 1, 65535, "100",
        "Most unacknowledged messages the broker may send us\n"
        "(MQTT v5 receive maximum)."),
    BOOL(mqtt, tcp_nodelay, "true",
         "Set TCP_NODELAY on the connection to the broker, so a reply is not\n"
         "held ~40 ms behind an unacknowledged PUBACK (Nagle + delayed ACK).\n"
         "Pair it with mosquitto's 'set_tcp_nodelay true'."),

    STR(ingest, subscribe, 1, "sensors/#", check_subscribe,
        "Comma-separated MQTT topic filters to ingest ('+' and '#' wildcards)."),
    INT(ingest, qos, 0, 2, "1", "QoS of the subscriptions."),
    STR(ingest, value_field, 1, "value", NULL, "JSON field holding the reading.", LIVE),
    STR(ingest, ts_field, 1, "ts", NULL,
        "JSON field holding the event time (epoch ms, epoch s or RFC 3339).", LIVE),
    FIELDS_ALL(ingest, "value",
               "value: one series per topic;\n"
               "all: every numeric field of a JSON object becomes series <topic>/<field>.",
               LIVE),
    STR(ingest, state_words, 0, DECODE_DEFAULT_WORDS, check_state_words,
        "Strings that stand for numbers in a value (exact, case-sensitive), as\n"
        "WORD=NUMBER,...: at most 16 words of at most 16 bytes; empty for none.\n"
        "JSON true/false are always 1/0; other strings are dead letters (non_numeric).",
        LIVE),
    BYTES(ingest, max_payload, 16, 16 * MIB, "65536",
          "Largest payload accepted; larger ones are dead-lettered."),
    INT64(ingest, max_future_s, 1, 315360000, "86400",
          "Event times this many seconds ahead of a synchronised clock are rejected.", LIVE),

    INT(speed, bucket_ms, 10, 3600000, "1000", "Width of one speed-layer bucket (milliseconds)."),
    INT(speed, slots, 16, 1048576, "600",
        "Buckets per series (the ring covers slots * bucket_ms of event time)."),
    INT(speed, raw_samples, 1, 65536, "256",
        "Newest raw samples kept per series (exact quantiles, last)."),
    INT(speed, max_series, 1, 1000000, "1000",
        "Most series held in RAM; events of further series are dead-lettered."),

    PATH(storage, dir, "/var/lib/edgelambda",
         "Directory of the SQLite files and the ingest journal."),
    ENUM(storage, durability, durability_names, "normal",
         "normal: acknowledge after commit (a power cut loses at most flush_interval_ms);\n"
         "strict: acknowledge only once the data is synced to flash."),
    INT(storage, flush_interval_ms, 1, 10000, "10",
        "Longest an event waits for its group commit (milliseconds).", LIVE),
    BYTES(storage, max_bytes, 0, 16384 * GIB, "0",
          "Size bound of master.db + views.db + uncommitted journal records; 0 means no\n"
          "limit, else at least 1M. Over it: covered raw events go first, then old views.",
          LIVE),
    ENUM(storage, full_policy, full_policy_names, "stop_ingest",
         "At max_bytes with nothing removable: stop_ingest (the broker keeps the data)\n"
         "or drop_oldest.",
         LIVE),
    BYTES(storage, hard_max_bytes, 0, 16384 * GIB, "0",
          "Hard ceiling of master.db (SQLite max_page_count): commits beyond it fail like a\n"
          "full disk until retention frees space. 0: max_bytes + max(max_bytes / 4, 4M) when\n"
          "max_bytes is set, else none."),
    BYTES(storage, journal_segment_bytes, MIB, GIB, "8M",
          "Size of one ingest journal segment; at least 4 * ingest.max_payload + 1M."),
    INT(storage, journal_segments, 2, 64, "4", "Number of ingest journal segments."),
    INT64(storage, max_age_s, 0, 3153600000, "0",
          "Raw events older than this (event time, seconds) are removed once the views\n"
          "cover them and sync shipped them; 0 keeps them (max_bytes still applies).",
          LIVE),
    INT64(storage, keep_1m_s, 0, 3153600000, "0",
          "Seconds of 1 min views kept (by bucket time); 0 keeps them forever. A query\n"
          "at a finer step than what is kept there is refused (not_retained), even\n"
          "while raw events remain: e.g. 2592000 (30 d) with max_age_s below it.",
          LIVE),
    INT64(storage, keep_1h_s, 0, 3153600000, "0",
          "Seconds of 1 h views kept; 0 keeps them forever (e.g. 31536000, a year).", LIVE),
    INT64(storage, keep_1d_s, 0, 3153600000, "0", "Seconds of 1 d views kept; 0: forever.", LIVE),

    INT(batch, idle_cpu_pct, 0, 100, "20",
        "Idle means CPU use below this percentage (see idle_for_s).", LIVE),
    DOUBLE(batch, idle_ingest_rate, 0, 1000000000, "200",
           "Idle also means ingest below this many events per second.", LIVE),
    INT(batch, idle_for_s, 1, 86400, "30",
        "A recompute starts once the board has been idle for this many seconds.", LIVE),
    STR(batch, schedule, 0, "", check_schedule,
        "Also recompute on a schedule: empty (none), 'every <N>s|m|h|d'\n"
        "or daily at 'HH:MM'.",
        LIVE),
    INT(batch, max_lag_s, 10, 604800, "300",
        "Longest time between two batch runs, idle or not (seconds).", LIVE),

    STR(sync, url, 0, "", check_sync_url,
        "Upstream http:// or https:// endpoint; empty disables sync.", LIVE),
    ENUM(sync, format, format_names, "ndjson",
         "ndjson (one JSON object per event) or influx (line protocol).", LIVE),
    ENUM(sync, compression, compression_names, "gzip", "Compression of request bodies.", LIVE),
    INT(sync, batch_events, 1, 1000000, "5000", "Most events per upstream request.", LIVE),
    BYTES(sync, batch_bytes, KIB, 256 * MIB, "1M", "Most uncompressed bytes per upstream request.",
          LIVE),
    PATH(sync, ca_file, "",
         "CA certificates that verify the upstream; empty uses the system store.", LIVE),
    PATH(sync, cert_file, "", "Client certificate for mutual TLS; set together with key_file.",
         LIVE),
    PATH(sync, key_file, "", "Private key of cert_file.", LIVE),
    PATH(sync, token_file, "", "File holding a bearer token (must not be readable by others).",
         LIVE),
    STR(sync, device_id, 0, "", NULL,
        "Device identity sent with every batch; empty means the hostname.", LIVE),
    BOOL(sync, insecure, "false", "Skip TLS certificate verification (testing only).", LIVE),
    INT(sync, timeout_s, 1, 3600, "30", "Timeout of one upstream request (seconds).", LIVE),
    BOOL(sync, include_seq, "false",
         "With format = influx, also send each event's master-log sequence as a field\n"
         "(VictoriaMetrics then stores a <series>_seq metric beside <series>_value,\n"
         "doubling what it keeps; points of one series at one time stay distinct).",
         LIVE),
    INT(sync, live_window_s, 0, 604800, "300",
        "After an outage, events received within this many seconds go in a live lane\n"
        "that alternates with the backlog lane (oldest first), so recent data arrives\n"
        "while a backlog drains. 0: one lane, oldest first.",
        LIVE),
    INT(sync, max_kbps, 0, 10000000, "0",
        "Most kilobits per second sync puts on the wire (request bodies after\n"
        "compression plus headers; both lanes and retries). 0: unlimited.",
        LIVE),

    INT(query, deadline_ms, 10, 60000, "500",
        "Longest a query may run (milliseconds of wall time); longer ones are\n"
        "refused with error \"timeout\", and one that waited this long behind\n"
        "other requests with \"busy\". Queries run beside ingest, never on it.",
        LIVE),
    INT64(query, max_rows, 1000, 1000000000, "2000000",
          "Most master-log rows one query may examine (\"too_large\" beyond).", LIVE),
    INT(query, max_cells, 1, 10000000, "100000",
        "Most series x buckets in one answer; about 120 bytes of working memory each."),
    INT(query, max_values, 1, 100000000, "1000000",
        "Most raw values one query holds for exact quantiles; 16 bytes each."),
    INT(query, max_sketch_bins, 1, 100000000, "2000000",
        "Most quantile-sketch bins one query holds (views' quantiles); 8 bytes each.", LIVE),
    INT(query, max_match, 1, 1000000, "1000", "Most series one \"match\" filter may select."),

    ENUM(log, level, level_names, "info", "Log level.", LIVE),

    ENUM(clock, synced, synced_names, "auto",
         "Trust the wall clock? auto: when the kernel or timesyncd says it is synchronised;\n"
         "yes: always (battery-backed RTC); no: never (tests)."),

    ENTRY(metrics, textfile, CFG_PATH, 0, 0, "", NULL, check_textfile,
          "File to keep the Prometheus text metrics in, rewritten at every status\n"
          "publish (node_exporter's textfile collector reads *.prom files in its\n"
          "directory, on Debian /var/lib/prometheus/node-exporter); empty: off."),

    INT(continuous, max_msgs_per_s, 1, 100000, "100",
        "Most continuous-query and watch messages per second (a token bucket of\n"
        "one second's worth); more are dropped and counted (status continuous.dropped)."),
    INT(continuous, max_watches, 1, 1024, "64",
        "Most {\"op\":\"watch\"} subscriptions at once; more get an error reply."),
    INT(continuous, max_cells, 16, 1000000, "4096",
        "(series, bucket) pairs each continuous query remembers (pending and\n"
        "published buckets; a watch 1/16 of it, at least 64), 96 bytes each; past it\n"
        "new buckets are dropped and counted (status continuous.cells_full)."),
};

#define CFG_N (sizeof cfg_table / sizeof cfg_table[0])

/* [decode "<filter>"] sections: the same kind of table, its offsets into
 * struct el_decode_rule (entry_set's base is the rule). */
static const char *const decode_format_names[] = {"auto", "json",        "number", "influx",
                                                  "cbor", "sparkplug_b", NULL};
static const char *const time_unit_names[] = {"auto", "s", "ms", "us", "ns", NULL};
static const char *const decode_fields_names[] = {"value", "all", "inherit", NULL};
static const char *const precision_names[] = {"ns", "us", "ms", "s", NULL};
_Static_assert(DECODE_FMT_JSON == 1 && DECODE_FMT_NUMBER == 2 && DECODE_FMT_INFLUX == 3 &&
                   DECODE_FMT_CBOR == 4 && DECODE_FMT_SPARKPLUG_B == 5,
               "decode_format_names order");
_Static_assert(DECODE_TIME_S == 1 && DECODE_TIME_NS == 4, "time_unit_names order");
_Static_assert(DECODE_PREC_US == 1 && DECODE_PREC_S == 3, "precision_names order");
#define DECODE_FIELDS_INHERIT 2

#define DENTRY(K, TYPE, DEF, NAMES, HELP)                                                          \
    {                                                                                              \
        .section = "decode", .key = #K, .type = TYPE,                                              \
        .offset = offsetof(struct el_decode_rule, K),                                              \
        .size = sizeof(((struct el_decode_rule *)0)->K), .def = DEF, .names = NAMES, .help = HELP  \
    }

static const struct cfg_entry decode_table[] = {
    DENTRY(format, CFG_ENUM, "auto", decode_format_names,
           "What the payloads are: auto (a JSON object or array, a number, true/false\n"
           "or a state word), json, number (one bare value), influx (InfluxDB line\n"
           "protocol: series <measurement>[/<tag value>...]/<field>), cbor (CBOR, read\n"
           "like JSON) or sparkplug_b (Eclipse Sparkplug B on spBv1.0/...: series\n"
           "<group>/<edge node>[/<device>]/<metric>, aliases from the births)."),
    DENTRY(value, CFG_STRING, "", NULL,
           "The value member, a dotted path into nested objects (AM2301.Temperature);\n"
           "empty: [ingest] value_field."),
    DENTRY(time, CFG_STRING, "", NULL,
           "The event-time member, a dotted path; empty: [ingest] ts_field."),
    DENTRY(time_unit, CFG_ENUM, "auto", time_unit_names,
           "Unit of a numeric event time; auto tells s, ms, us or ns by magnitude."),
    DENTRY(fields, CFG_ENUM, "inherit", decode_fields_names,
           "value: one series per topic; all: every numeric member is a series\n"
           "<topic>/<member>; inherit: [ingest] fields."),
    DENTRY(flatten, CFG_BOOL, "true", NULL,
           "With fields = all, nested objects become series <topic>/<key>/<key>, and\n"
           "a string member that is no number or state word makes the message a\n"
           "non_numeric dead letter unless drop_fields names it."),
    DENTRY(keep_fields, CFG_PATH, "", NULL,
           "With fields = all: only these members (comma-separated dotted paths; an\n"
           "object keeps everything below it); empty: all."),
    DENTRY(drop_fields, CFG_PATH, "", NULL,
           "With fields = all: members never stored (comma-separated dotted paths)."),
    DENTRY(precision, CFG_ENUM, "ns", precision_names,
           "format = influx: the unit of line-protocol timestamps (Telegraf: ns)."),
};
#define DECODE_N (sizeof decode_table / sizeof decode_table[0])

/* [continuous "<name>"] sections: offsets into struct el_continuous_def. */
#define CENTRY(K, TYPE, MIN, MAX, DEF, CHECK, HELP)                                                \
    {                                                                                              \
        .section = "continuous", .key = #K, .type = TYPE,                                          \
        .offset = offsetof(struct el_continuous_def, K),                                           \
        .size = sizeof(((struct el_continuous_def *)0)->K), .min = MIN, .max = MAX, .def = DEF,    \
        .check = CHECK, .help = HELP                                                               \
    }

static const struct cfg_entry continuous_table[] = {
    CENTRY(match, CFG_STRING, 0, 0, "", check_cq_match,
           "The series, an MQTT topic filter ('+' and '#' wildcards); required."),
    CENTRY(step, CFG_STRING, 1, 0, "1m", check_cq_step,
           "Bucket width, a duration (500ms, 10s, 1m, 1h; 100ms to 1d)."),
    CENTRY(grace, CFG_STRING, 1, 0, "2s", check_duration,
           "A bucket closes, and is published, when the clock passes its end plus this."),
    CENTRY(max_lateness, CFG_STRING, 1, 0, "10m", check_duration,
           "Late data up to this long after a bucket closed republishes it as a\n"
           "correction (\"revision\" + 1); later data is stored but not republished."),
    CENTRY(agg, CFG_STRING, 1, 0, "count,mean,min,max,last", check_aggs,
           "Aggregates, comma-separated, as \"agg\" of a query (count sum min max\n"
           "mean stddev last pNN)."),
    CENTRY(topic, CFG_STRING, 0, 0, "", check_cq_topic,
           "Messages go to <topic>/<series>; empty: <prefix>/continuous/<name>."),
    CENTRY(qos, CFG_INT, 0, 2, "1", NULL, "QoS of the messages."),
    CENTRY(retain, CFG_BOOL, 0, 1, "false", NULL,
           "Publish retained (a new subscriber gets each series' latest bucket)."),
};
#define CONTINUOUS_N (sizeof continuous_table / sizeof continuous_table[0])

/* ---------------------------------------------------------------- helpers */

static void put_msg(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* snprintf into a caller's message buffer, which may be NULL or empty. */
static void put_msg(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;

    if (buf == NULL || len == 0)
        return;
    va_start(ap, fmt);
    int n = vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    if (n < 0)
        buf[0] = '\0';
}

/* Copies text into out for quoting in a message: at most SHOWN_LEN - 4
 * bytes, control characters as '?', "..." when cut. Returns out. */
static const char *shown(const char *text, char *out, size_t outlen)
{
    size_t n = 0;

    for (; text[n] != '\0' && n + 4 < outlen; n++) {
        unsigned char c = (unsigned char)text[n];
        out[n] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (text[n] != '\0') {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
    return out;
}

static bool is_blank(int c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Formats a byte count with the largest exact suffix ("64K", "8M", "16"). */
static const char *bytes_str(int64_t v, char *out, size_t outlen)
{
    if (v != 0 && v % GIB == 0)
        snprintf(out, outlen, "%" PRId64 "G", v / GIB);
    else if (v != 0 && v % MIB == 0)
        snprintf(out, outlen, "%" PRId64 "M", v / MIB);
    else if (v != 0 && v % KIB == 0)
        snprintf(out, outlen, "%" PRId64 "K", v / KIB);
    else
        snprintf(out, outlen, "%" PRId64, v);
    return out;
}

/* Writes "a, b, c" (sep ", ") or "a|b|c" (sep "|") of an enum's names. */
static void names_str(const char *const *names, const char *sep, char *out, size_t outlen)
{
    size_t n = 0;

    out[0] = '\0';
    for (size_t i = 0; names[i] != NULL && n < outlen; i++) {
        int k = snprintf(out + n, outlen - n, "%s%s", i ? sep : "", names[i]);
        if (k < 0)
            break;
        n += (size_t)k;
    }
}

static bool section_known(const char *name, size_t len)
{
    for (size_t i = 0; i < CFG_N; i++)
        if (strlen(cfg_table[i].section) == len && memcmp(cfg_table[i].section, name, len) == 0)
            return true;
    return false;
}

static const struct cfg_entry *entry_find(const char *section, const char *key)
{
    for (size_t i = 0; i < CFG_N; i++)
        if (strcmp(cfg_table[i].section, section) == 0 && strcmp(cfg_table[i].key, key) == 0)
            return &cfg_table[i];
    return NULL;
}

static char *field_at(void *base, const struct cfg_entry *e)
{
    return (char *)base + e->offset;
}

/* ---------------------------------------------------------------- setters */

enum num_result { NUM_OK, NUM_SYNTAX, NUM_RANGE };

/* Strict decimal integer: optional sign, digits, then the rest in *end. */
static enum num_result parse_int64(const char *s, int64_t *out, const char **end)
{
    char *stop;

    if (is_blank((unsigned char)s[0]))
        return NUM_SYNTAX;
    errno = 0;
    long long v = strtoll(s, &stop, 10);
    int saved = errno;
    if (stop == s)
        return NUM_SYNTAX;
    *end = stop;
    if (saved == ERANGE)
        return NUM_RANGE;
    *out = (int64_t)v;
    return NUM_OK;
}

static bool set_integer(const struct cfg_entry *e, char *field, const char *v, char *what,
                        size_t whatlen)
{
    char s[SHOWN_LEN];
    const char *end = v;
    int64_t x = 0;

    enum num_result r = parse_int64(v, &x, &end);
    if (r == NUM_OK && *end != '\0')
        r = NUM_SYNTAX;
    if (r == NUM_OK && (x < e->min || x > e->max))
        r = NUM_RANGE;
    if (r != NUM_OK) {
        put_msg(what, whatlen, "%s %" PRId64 "..%" PRId64 "; got '%s'",
                r == NUM_SYNTAX ? "expected an integer in" : "out of range", e->min, e->max,
                shown(v, s, sizeof s));
        return false;
    }
    if (e->type == CFG_INT) {
        int i = (int)x;
        memcpy(field, &i, sizeof i);
    } else {
        memcpy(field, &x, sizeof x);
    }
    return true;
}

/* "65536", "64K", "64KiB", "8M", "1G" (any case); powers of 1024. */
static enum num_result parse_bytes(const char *v, int64_t *out)
{
    static const struct {
        const char *suffix;
        int64_t mult;
    } suffixes[] = {{"", 1},      {"K", KIB}, {"KiB", KIB}, {"M", MIB},
                    {"MiB", MIB}, {"G", GIB}, {"GiB", GIB}};
    const char *end = v;
    int64_t x = 0;

    enum num_result r = parse_int64(v, &x, &end);
    if (r != NUM_OK)
        return r;
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        if (strcasecmp(end, suffixes[i].suffix) != 0)
            continue;
        if (x > INT64_MAX / suffixes[i].mult || x < INT64_MIN / suffixes[i].mult)
            return NUM_RANGE;
        *out = x * suffixes[i].mult;
        return NUM_OK;
    }
    return NUM_SYNTAX;
}

static bool set_bytes(const struct cfg_entry *e, char *field, const char *v, char *what,
                      size_t whatlen)
{
    char s[SHOWN_LEN], lo[32], hi[32];
    int64_t x = 0;

    enum num_result r = parse_bytes(v, &x);
    if (r == NUM_OK && (x < e->min || x > e->max))
        r = NUM_RANGE;
    if (r != NUM_OK) {
        put_msg(what, whatlen, "%s %s..%s bytes (suffix K, M or G allowed); got '%s'",
                r == NUM_SYNTAX ? "expected a size in" : "out of range",
                bytes_str(e->min, lo, sizeof lo), bytes_str(e->max, hi, sizeof hi),
                shown(v, s, sizeof s));
        return false;
    }
    memcpy(field, &x, sizeof x);
    return true;
}

static bool set_double(const struct cfg_entry *e, char *field, const char *v, char *what,
                       size_t whatlen)
{
    char s[SHOWN_LEN];
    char *end;
    enum num_result r = NUM_OK;

    errno = 0;
    double x = strtod(v, &end);
    int saved = errno;
    if (end == v || *end != '\0' || is_blank((unsigned char)v[0]))
        r = NUM_SYNTAX;
    else if (saved == ERANGE)
        r = NUM_RANGE;
    else if (!isfinite(x)) /* "nan", "inf" */
        r = NUM_SYNTAX;
    else if (x < (double)e->min || x > (double)e->max)
        r = NUM_RANGE;
    if (r != NUM_OK) {
        put_msg(what, whatlen, "%s %" PRId64 "..%" PRId64 "; got '%s'",
                r == NUM_SYNTAX ? "expected a number in" : "out of range", e->min, e->max,
                shown(v, s, sizeof s));
        return false;
    }
    memcpy(field, &x, sizeof x);
    return true;
}

static bool set_bool(char *field, const char *v, char *what, size_t whatlen)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    char s[SHOWN_LEN];

    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        bool b = strcasecmp(v, yes[i]) == 0;
        if (b || strcasecmp(v, no[i]) == 0) {
            memcpy(field, &b, sizeof b);
            return true;
        }
    }
    put_msg(what, whatlen, "expected true or false (or yes/no, on/off, 1/0); got '%s'",
            shown(v, s, sizeof s));
    return false;
}

static bool set_enum(const struct cfg_entry *e, char *field, const char *v, char *what,
                     size_t whatlen)
{
    char s[SHOWN_LEN], list[128];

    for (int i = 0; e->names[i] != NULL; i++) {
        if (strcasecmp(v, e->names[i]) != 0)
            continue;
        if (e->size == sizeof(bool)) {
            bool b = i != 0;
            memcpy(field, &b, sizeof b);
        } else {
            memcpy(field, &i, sizeof i);
        }
        return true;
    }
    names_str(e->names, ", ", list, sizeof list);
    put_msg(what, whatlen, "expected one of %s; got '%s'", list, shown(v, s, sizeof s));
    return false;
}

static bool set_string(const struct cfg_entry *e, char *field, const char *v, char *what,
                       size_t whatlen)
{
    size_t len = strlen(v);

    if (len >= e->size) {
        put_msg(what, whatlen, "too long: %zu bytes, at most %zu", len, e->size - 1);
        return false;
    }
    if (len < (size_t)e->min) {
        put_msg(what, whatlen, "must not be empty");
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < 0x20 || c == 0x7f) {
            put_msg(what, whatlen, "contains a control character (byte %zu)", i + 1);
            return false;
        }
    }
    if (e->check != NULL && !e->check(v, what, whatlen))
        return false;
    memcpy(field, v, len + 1);
    return true;
}

/* Parses v into e's field of base (a struct el_config, or a struct
 * el_decode_rule for the decode table). On failure the field is unchanged
 * and what says what is wrong. */
static bool entry_set(const struct cfg_entry *e, void *base, const char *v, char *what,
                      size_t whatlen)
{
    char *field = field_at(base, e);

    switch (e->type) {
    case CFG_STRING:
    case CFG_PATH: return set_string(e, field, v, what, whatlen);
    case CFG_INT:
    case CFG_INT64: return set_integer(e, field, v, what, whatlen);
    case CFG_BYTES: return set_bytes(e, field, v, what, whatlen);
    case CFG_DOUBLE: return set_double(e, field, v, what, whatlen);
    case CFG_BOOL: return set_bool(field, v, what, whatlen);
    case CFG_ENUM: return set_enum(e, field, v, what, whatlen);
    }
    put_msg(what, whatlen, "internal error: bad type");
    return false;
}

/* ----------------------------------------------------------- value checks */

/* host[:port][/path] after a scheme; '[v6]' hosts; port 1..65535. */
static bool check_host_port(const char *v, const char *rest, bool allow_path, char *what,
                            size_t whatlen)
{
    char s[SHOWN_LEN];
    const char *p = rest;

    if (*p == '[') {
        p = strchr(p, ']');
        if (p == NULL || p == rest + 1)
            goto bad_host;
        p++;
    } else {
        while (*p != '\0' && *p != ':' && *p != '/')
            p++;
        if (p == rest)
            goto bad_host;
    }
    for (const char *q = rest; q < p; q++)
        if (is_blank((unsigned char)*q))
            goto bad_host;
    if (*p == ':') {
        const char *digits = ++p;
        long port = 0;
        while (*p >= '0' && *p <= '9' && port <= 65535)
            port = port * 10 + (*p++ - '0');
        if (p == digits || port < 1 || port > 65535 || (*p >= '0' && *p <= '9')) {
            put_msg(what, whatlen, "port must be 1..65535; got '%s'", shown(v, s, sizeof s));
            return false;
        }
    }
    if (*p == '\0' || (*p == '/' && allow_path && strpbrk(p, " \t") == NULL))
        return true;
    put_msg(what, whatlen, "unexpected '%s' after host[:port]", shown(p, s, sizeof s));
    return false;
bad_host:
    put_msg(what, whatlen, "missing or bad host in '%s'", shown(v, s, sizeof s));
    return false;
}

static bool check_mqtt_uri(const char *v, char *what, size_t whatlen)
{
    static const char *const schemes[] = {"tcp://",   "ssl://", "mqtt://",
                                          "mqtts://", "ws://",  "wss://"};
    char s[SHOWN_LEN];

    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
        size_t n = strlen(schemes[i]);
        if (strncmp(v, schemes[i], n) == 0)
            return check_host_port(v, v + n, schemes[i][0] == 'w', what, whatlen);
    }
    put_msg(what, whatlen,
            "expected tcp://, ssl://, mqtt://, mqtts://, ws:// or wss:// and host[:port]; got '%s'",
            shown(v, s, sizeof s));
    return false;
}

static bool check_sync_url(const char *v, char *what, size_t whatlen)
{
    char s[SHOWN_LEN];

    if (v[0] == '\0')
        return true;
    if (strncmp(v, "https://", 8) == 0)
        return check_host_port(v, v + 8, true, what, whatlen);
    if (strncmp(v, "http://", 7) == 0)
        return check_host_port(v, v + 7, true, what, whatlen);
    put_msg(what, whatlen, "expected empty, http://... or https://...; got '%s'",
            shown(v, s, sizeof s));
    return false;
}

/* node_exporter's textfile collector reads only *.prom files: any other
 * name would be written and silently never read. */
static bool check_textfile(const char *v, char *what, size_t whatlen)
{
    size_t n = strlen(v);
    const char *base = strrchr(v, '/');
    base = base ? base + 1 : v;
    if (n == 0)
        return true;
    if (n < 5 || strcmp(v + n - 5, ".prom") != 0 || strlen(base) <= 5) {
        put_msg(what, whatlen,
                "expected empty or a file name ending in .prom (node_exporter reads only those)");
        return false;
    }
    return true;
}

static bool check_duration(const char *v, char *what, size_t whatlen)
{
    char sh[SHOWN_LEN];
    int64_t ms;
    if (query_parse_duration(v, strlen(v), &ms) && ms <= INT64_C(366) * 86400000)
        return true;
    put_msg(what, whatlen, "expected a duration such as 500ms, 10s, 1m or 1h; got '%s'",
            shown(v, sh, sizeof sh));
    return false;
}

static bool check_cq_step(const char *v, char *what, size_t whatlen)
{
    char sh[SHOWN_LEN];
    int64_t ms;
    if (!check_duration(v, what, whatlen))
        return false;
    if (query_parse_duration(v, strlen(v), &ms) && ms >= 100 && ms <= 86400000)
        return true;
    put_msg(what, whatlen, "a step is 100ms to 1d; got '%s'", shown(v, sh, sizeof sh));
    return false;
}

static bool check_aggs(const char *v, char *what, size_t whatlen)
{
    struct query q;
    return query_parse_agg_list(v, &q, what, whatlen);
}

static bool check_cq_match(const char *v, char *what, size_t whatlen)
{
    return v[0] == '\0' || filter_ok(v, strlen(v), what, whatlen);
}

static bool check_cq_topic(const char *v, char *what, size_t whatlen)
{
    char sh[SHOWN_LEN];
    if (strpbrk(v, "+#") == NULL && (v[0] == '\0' || v[strlen(v) - 1] != '/'))
        return true;
    put_msg(what, whatlen, "a topic (no '+', '#' or trailing '/'); got '%s'",
            shown(v, sh, sizeof sh));
    return false;
}

static bool check_topic_prefix(const char *v, char *what, size_t whatlen)
{
    if (strpbrk(v, "+#") != NULL) {
        put_msg(what, whatlen, "must not contain '+' or '#'");
        return false;
    }
    if (v[0] != '\0' && v[strlen(v) - 1] == '/') {
        put_msg(what, whatlen, "must not end with '/'");
        return false;
    }
    return true;
}

/* One MQTT topic filter of n bytes: non-empty, '+' only as a whole level,
 * '#' only as the whole last level. */
static bool filter_ok(const char *f, size_t n, char *what, size_t whatlen)
{
    char s[SHOWN_LEN], copy[EL_CFG_STR];

    if (n == 0) {
        put_msg(what, whatlen, "empty topic filter");
        return false;
    }
    snprintf(copy, sizeof copy, "%.*s", (int)(n < sizeof copy ? n : sizeof copy - 1), f);
    if (n >= EL_CFG_STR) {
        put_msg(what, whatlen, "topic filter '%s' too long (at most %d bytes)",
                shown(copy, s, sizeof s), EL_CFG_STR - 1);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        bool level_start = i == 0 || f[i - 1] == '/';
        bool level_end = i + 1 == n || f[i + 1] == '/';
        if (f[i] == '+' && !(level_start && level_end)) {
            put_msg(what, whatlen, "topic filter '%s': '+' must be a whole level",
                    shown(copy, s, sizeof s));
            return false;
        }
        if (f[i] == '#' && !(level_start && i + 1 == n)) {
            put_msg(what, whatlen, "topic filter '%s': '#' must be the whole last level",
                    shown(copy, s, sizeof s));
            return false;
        }
    }
    return true;
}

/* Splits a comma-separated list, trims each filter and validates it. With
 * out != NULL stores the filters there and their count in *n_out. */
static bool split_filters(const char *list, char (*out)[EL_CFG_STR], int *n_out, char *what,
                          size_t whatlen)
{
    char found[EL_CFG_MAX_SUBS][EL_CFG_STR];
    int n = 0;
    const char *p = list;

    for (;;) {
        const char *comma = strchr(p, ',');
        const char *end = comma != NULL ? comma : p + strlen(p);
        const char *b = p, *e = end;
        while (b < e && is_blank((unsigned char)*b))
            b++;
        while (e > b && is_blank((unsigned char)e[-1]))
            e--;
        size_t len = (size_t)(e - b);
        if (!filter_ok(b, len, what, whatlen))
            return false;
        if (n == EL_CFG_MAX_SUBS) {
            put_msg(what, whatlen, "more than %d topic filters", EL_CFG_MAX_SUBS);
            return false;
        }
        memcpy(found[n], b, len);
        found[n][len] = '\0';
        for (int i = 0; i < n; i++) {
            if (strcmp(found[i], found[n]) == 0) {
                char s[SHOWN_LEN];
                put_msg(what, whatlen, "topic filter '%s' listed twice",
                        shown(found[n], s, sizeof s));
                return false;
            }
        }
        n++;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    if (out != NULL) {
        memcpy(out, found, sizeof found);
        *n_out = n;
    }
    return true;
}

static bool check_subscribe(const char *v, char *what, size_t whatlen)
{
    return split_filters(v, NULL, NULL, what, whatlen);
}

static bool check_state_words(const char *v, char *what, size_t whatlen)
{
    struct decode_words words;
    return decode_words_parse(v, &words, what, whatlen);
}

static bool check_schedule(const char *v, char *what, size_t whatlen)
{
    char s[SHOWN_LEN];
    int64_t every_ms;
    int minute;

    if (batch_schedule_parse(v, &every_ms, &minute) == EL_OK)
        return true;
    put_msg(what, whatlen,
            "expected empty, 'every <N>s|m|h|d' (at most 7 days) or 'HH:MM'; got '%s'",
            shown(v, s, sizeof s));
    return false;
}

/* MQTT filter matching (for the own-topics check): '$' topics are not
 * matched by a leading wildcard. */

/* ------------------------------------------------------------- INI input */

struct cfg_parse {
    struct el_config *cfg;
    const char *name; /* for messages */
    FILE *fp;         /* input: a file, or text/len */
    const char *text;
    size_t len, pos;
    int line;    /* lines handed to inih so far = the line being parsed */
    bool failed; /* an error message is in err; stop reading */
    int read_errno;
    char *err;
    size_t errlen;
};

static void parse_fail(struct cfg_parse *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void parse_fail(struct cfg_parse *p, const char *fmt, ...)
{
    char msg[WHAT_LEN + 64];
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        msg[0] = '\0';
    put_msg(p->err, p->errlen, "%s:%d: %s", p->name, p->line, msg);
    p->failed = true;
}

static int src_getc(struct cfg_parse *p)
{
    if (p->fp != NULL) {
        int c = getc(p->fp);
        if (c == EOF && ferror(p->fp))
            p->read_errno = errno;
        return c;
    }
    if (p->pos >= p->len)
        return EOF;
    return (unsigned char)p->text[p->pos++];
}

/* Named sections, [<word> "<name>"]: a table of keys over an array of
 * structs in struct el_config, each starting with its name (EL_CFG_STR). */
struct named_kind {
    const char *word;     /* "decode" */
    const char *name_is;  /* what the name is, in messages */
    const char *why_once; /* why a name may not be given twice */
    const struct cfg_entry *table;
    size_t n_keys;
    size_t elem_size, array_off, count_off, line_off;
    int max;
    bool (*name_ok)(const char *name, size_t n, char *what, size_t whatlen);
};

static bool cq_name_ok(const char *name, size_t n, char *what, size_t whatlen)
{
    bool ok = n > 0 && n < EL_CFG_CQ_NAME;
    for (size_t i = 0; ok && i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '_' || c == '-';
    }
    if (!ok)
        put_msg(what, whatlen, "a name is 1 to %d letters, digits, '_' or '-'", EL_CFG_CQ_NAME - 1);
    return ok;
}

static const struct named_kind named_kinds[] = {
    {"decode", "topic filter", "the first would never be used", decode_table, DECODE_N,
     sizeof(struct el_decode_rule), offsetof(struct el_config, decode.rule),
     offsetof(struct el_config, decode.n), offsetof(struct el_decode_rule, line), EL_CFG_MAX_DECODE,
     filter_ok},
    {"continuous", "name", "names must be unique", continuous_table, CONTINUOUS_N,
     sizeof(struct el_continuous_def), offsetof(struct el_config, continuous.def),
     offsetof(struct el_config, continuous.n), offsetof(struct el_continuous_def, line),
     EL_CFG_MAX_CONTINUOUS, cq_name_ok},
};
#define NAMED_KINDS (sizeof named_kinds / sizeof named_kinds[0])

/* Is name[0..len) a named section, '<word> "<name>"'? Its kind, and the
 * name, when it fits, into out[cap]. */
static const struct named_kind *named_section(const char *name, size_t len, char *out, size_t cap)
{
    const char *p = name, *end = name + len;
    const struct named_kind *k = NULL;
    for (size_t i = 0; i < NAMED_KINDS && !k; i++) {
        size_t w = strlen(named_kinds[i].word);
        if (len > w + 2 && memcmp(p, named_kinds[i].word, w) == 0 && is_blank((unsigned char)p[w]))
            k = &named_kinds[i];
    }
    if (!k)
        return NULL;
    for (p += strlen(k->word); p < end && is_blank((unsigned char)*p); p++)
        ;
    if (p == end || *p != '"' || end[-1] != '"' || end - p < 2)
        return NULL;
    size_t n = (size_t)(end - p - 2);
    snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), p + 1);
    return n < cap ? k : NULL;
}

/* Is name[0..len) meant as a named section (it starts with a kind's word)? */
static bool named_word(const char *name, size_t len)
{
    for (size_t i = 0; i < NAMED_KINDS; i++) {
        size_t w = strlen(named_kinds[i].word);
        if (len > w && memcmp(name, named_kinds[i].word, w) == 0)
            return true;
    }
    return false;
}

static int *named_count(const struct named_kind *k, struct el_config *cfg)
{
    return (int *)((char *)cfg + k->count_off);
}

static char *named_elem(const struct named_kind *k, struct el_config *cfg, int i)
{
    return (char *)cfg + k->array_off + (size_t)i * k->elem_size;
}

static char *named_find(const struct named_kind *k, struct el_config *cfg, const char *name)
{
    for (int i = 0; i < *named_count(k, cfg); i++)
        if (strcmp(named_elem(k, cfg, i), name) == 0)
            return named_elem(k, cfg, i);
    return NULL;
}

/* A new [<word> "<name>"] section at line p->line, at its defaults. */
static void named_add(struct cfg_parse *p, const char *section, size_t len)
{
    char name[EL_CFG_STR], what[WHAT_LEN], s[SHOWN_LEN];
    const struct named_kind *k = named_section(section, len, name, sizeof name);
    if (!k) {
        parse_fail(p, "[%.*s]: expected [<decode|continuous> \"<name>\"] (at most %d bytes)",
                   (int)(len > 60 ? 60 : len), section, EL_CFG_STR - 1);
        return;
    }
    if (!k->name_ok(name, strlen(name), what, sizeof what)) {
        parse_fail(p, "[%s]: %s", k->word, what);
        return;
    }
    if (named_find(k, p->cfg, name) != NULL) {
        parse_fail(p, "[%s \"%s\"]: given twice (%s)", k->word, shown(name, s, sizeof s),
                   k->why_once);
        return;
    }
    if (*named_count(k, p->cfg) == k->max) {
        parse_fail(p, "[%s \"%s\"]: more than %d %s sections", k->word, shown(name, s, sizeof s),
                   k->max, k->word);
        return;
    }
    char *r = named_elem(k, p->cfg, (*named_count(k, p->cfg))++);
    memset(r, 0, k->elem_size);
    snprintf(r, EL_CFG_STR, "%s", name);
    *(int *)(r + k->line_off) = p->line;
    for (size_t i = 0; i < k->n_keys; i++)
        if (!entry_set(&k->table[i], r, k->table[i].def, what, sizeof what))
            abort(); /* a broken table: a programming error */
}

/* Rejects an unknown "[section]" at its own line (even with no key after
 * it) and text after the ']'. A '[' line without ']' is left to inih, which
 * reports it as a syntax error. */
static void check_section_line(struct cfg_parse *p, const char *line)
{
    char s[SHOWN_LEN], name[SHOWN_LEN];
    const char *close = strchr(line, ']');

    if (close == NULL)
        return;
    size_t len = (size_t)(close - line - 1);
    snprintf(name, sizeof name, "%.*s", (int)(len < sizeof name ? len : sizeof name - 1), line + 1);
    if (named_word(line + 1, len) && !section_known(line + 1, len)) {
        named_add(p, line + 1, len);
    } else if (!section_known(line + 1, len)) {
        parse_fail(p, "[%s]: unknown section", shown(name, s, sizeof s));
        return;
    }
    const char *rest = close + 1;
    while (is_blank((unsigned char)*rest))
        rest++;
    if (*rest != '\0' && *rest != ';' && *rest != '#')
        parse_fail(p, "[%s]: unexpected text after ']'", name);
}

/* inih's fgets-style reader: one line per call, counted. */
static char *cfg_reader(char *buf, int num, void *stream)
{
    struct cfg_parse *p = stream;
    size_t cap, n = 0;
    bool eol = false, eof = false;

    if (p->failed || num < 3)
        return NULL;
    cap = (size_t)num - 1;
    while (n < cap) {
        int c = src_getc(p);
        if (c == EOF) {
            eof = true;
            break;
        }
        buf[n++] = (char)c;
        if (c == '\n') {
            eol = true;
            break;
        }
    }
    if (n == 0 && eof)
        return NULL;
    p->line++;
    buf[n] = '\0';
    if (!eol && !eof) {
        /* The buffer is full: the line fits only if its end comes next. */
        int c = src_getc(p);
        if (c != '\n' && c != EOF) {
            parse_fail(p, "line too long (at most %zu characters)", cap);
            return NULL;
        }
    }
    if (strlen(buf) != n) {
        parse_fail(p, "NUL byte in line");
        return NULL;
    }
    size_t skip = 0;
    if (p->line == 1 && n >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
        skip = 3; /* UTF-8 byte order mark */
    while (skip < n && buf[skip] != '\n' && is_blank((unsigned char)buf[skip]))
        skip++;
    /* Without leading blanks inih never sees a continuation line. */
    memmove(buf, buf + skip, n - skip + 1);
    if (buf[0] == '[')
        check_section_line(p, buf);
    return p->failed ? NULL : buf;
}

/* key = value in [<word> "<name>"] (the section line made the struct). */
static int named_handler(struct cfg_parse *p, const struct named_kind *k, const char *name,
                         const char *key, const char *value)
{
    char what[WHAT_LEN], s1[SHOWN_LEN], s2[SHOWN_LEN];
    char *r = named_find(k, p->cfg, name);
    const struct cfg_entry *e = NULL;
    for (size_t i = 0; i < k->n_keys && e == NULL; i++)
        if (strcmp(k->table[i].key, key) == 0)
            e = &k->table[i];
    if (r == NULL || e == NULL) {
        parse_fail(p, "[%s \"%s\"] %s: unknown key", k->word, shown(name, s1, sizeof s1),
                   shown(key, s2, sizeof s2));
        return 0;
    }
    if (!entry_set(e, r, value, what, sizeof what)) {
        parse_fail(p, "[%s \"%s\"] %s: %s", k->word, shown(name, s1, sizeof s1), key, what);
        return 0;
    }
    return 1;
}

static int cfg_handler(void *user, const char *section, const char *key, const char *value)
{
    struct cfg_parse *p = user;
    char what[WHAT_LEN], s1[SHOWN_LEN], s2[SHOWN_LEN];

    if (p->failed)
        return 0;
    char name[EL_CFG_STR];
    const struct named_kind *k = named_section(section, strlen(section), name, sizeof name);
    if (k)
        return named_handler(p, k, name, key, value);
    const struct cfg_entry *e = entry_find(section, key);
    if (e == NULL) {
        if (section[0] == '\0')
            parse_fail(p, "%s: key before any [section]", shown(key, s2, sizeof s2));
        else if (!section_known(section, strlen(section)))
            parse_fail(p, "[%s]: unknown section", shown(section, s1, sizeof s1));
        else
            parse_fail(p, "[%s] %s: unknown key", section, shown(key, s2, sizeof s2));
        return 0;
    }
    if (!entry_set(e, p->cfg, value, what, sizeof what)) {
        parse_fail(p, "[%s] %s: %s", e->section, e->key, what);
        return 0;
    }
    return 1;
}

static el_status parse_input(struct cfg_parse *p)
{
    int ret = ini_parse_stream(cfg_reader, p, cfg_handler, p);

    if (ret > 0 && (!p->failed || ret < p->line)) {
        /* inih found a line that is neither "[section]" nor "key = value". */
        p->line = ret;
        parse_fail(p, "syntax error: expected '[section]' or 'key = value'");
    }
    if (p->failed)
        return EL_INVAL;
    if (p->read_errno != 0) {
        put_msg(p->err, p->errlen, "%s: read error: %s", p->name, strerror(p->read_errno));
        return EL_IO;
    }
    if (ret < 0) {
        put_msg(p->err, p->errlen, "%s: the INI parser failed (%d)", p->name, ret);
        return EL_NOMEM;
    }
    return EL_OK;
}

/* -------------------------------------------------------------- interface */

/* Does the table's type match the size of the field it points at? */
static bool entry_size_ok(const struct cfg_entry *e)
{
    switch (e->type) {
    case CFG_STRING:
    case CFG_PATH: return e->size >= 2;
    case CFG_INT: return e->size == sizeof(int);
    case CFG_INT64:
    case CFG_BYTES: return e->size == sizeof(int64_t);
    case CFG_DOUBLE: return e->size == sizeof(double);
    case CFG_BOOL: return e->size == sizeof(bool);
    case CFG_ENUM: return e->size == sizeof(int) || e->size == sizeof(bool);
    }
    return false;
}

void config_defaults(struct el_config *cfg)
{
    char what[WHAT_LEN];

    memset(cfg, 0, sizeof *cfg);
    for (size_t k = 0; k < NAMED_KINDS; k++)
        for (size_t i = 0; i < named_kinds[k].n_keys; i++)
            if (!entry_size_ok(&named_kinds[k].table[i])) {
                fprintf(stderr, "config: [%s] %s: the field's size does not match its type\n",
                        named_kinds[k].word, named_kinds[k].table[i].key);
                abort();
            }
    for (size_t i = 0; i < CFG_N; i++) {
        const struct cfg_entry *e = &cfg_table[i];
        if (!entry_size_ok(e))
            snprintf(what, sizeof what, "%s", "the field's size does not match its type");
        if (!entry_size_ok(e) || !entry_set(e, cfg, e->def, what, sizeof what)) {
            /* A broken table is a programming error: fail loudly, at once. */
            fprintf(stderr, "config: built-in default of [%s] %s is invalid: %s\n", e->section,
                    e->key, what);
            abort();
        }
    }
}

el_status config_load_string(struct el_config *cfg, const char *text, size_t len, const char *name,
                             char *err, size_t errlen)
{
    struct cfg_parse p = {
        .cfg = cfg, .name = name, .text = text, .len = len, .err = err, .errlen = errlen};

    put_msg(err, errlen, "%s", "");
    if (cfg == NULL || (text == NULL && len != 0)) {
        put_msg(err, errlen, "config: bad arguments");
        return EL_INVAL;
    }
    if (p.name == NULL)
        p.name = "config";
    return parse_input(&p);
}

el_status config_load_file(struct el_config *cfg, const char *path, char *err, size_t errlen)
{
    put_msg(err, errlen, "%s", "");
    if (cfg == NULL || path == NULL) {
        put_msg(err, errlen, "config: bad arguments");
        return EL_INVAL;
    }
    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        int saved = errno;
        put_msg(err, errlen, "%s: cannot open: %s", path, strerror(saved));
        return EL_IO;
    }
    struct cfg_parse p = {.cfg = cfg, .name = path, .fp = fp, .err = err, .errlen = errlen};
    el_status st = parse_input(&p);
    fclose(fp);
    return st;
}

/* Narrows [*b, *e) to leave out surrounding blanks. */
static void trim(const char **b, const char **e)
{
    while (*b < *e && is_blank((unsigned char)**b))
        (*b)++;
    while (*e > *b && is_blank((unsigned char)(*e)[-1]))
        (*e)--;
}

el_status config_set(struct el_config *cfg, const char *assignment, char *err, size_t errlen)
{
    char section[64], key[64], what[WHAT_LEN], s[SHOWN_LEN], value[EL_CFG_PATH + 1];

    put_msg(err, errlen, "%s", "");
    if (cfg == NULL || assignment == NULL) {
        put_msg(err, errlen, "command line: bad arguments");
        return EL_INVAL;
    }
    /* "section.key=value": the first '=' ends the name, its first '.' splits it. */
    const char *eq = strchr(assignment, '=');
    const char *sb = assignment, *se = eq;
    if (eq != NULL)
        trim(&sb, &se);
    const char *dot = eq != NULL ? memchr(sb, '.', (size_t)(se - sb)) : NULL;
    if (dot == NULL) {
        put_msg(err, errlen, "command line: '%s': expected section.key=value",
                shown(assignment, s, sizeof s));
        return EL_INVAL;
    }
    const char *kb = dot + 1, *ke = se, *vb = eq + 1, *ve = eq + 1 + strlen(eq + 1);
    se = dot;
    trim(&sb, &se);
    trim(&kb, &ke);
    trim(&vb, &ve);
    size_t slen = (size_t)(se - sb), klen = (size_t)(ke - kb), vlen = (size_t)(ve - vb);
    snprintf(section, sizeof section, "%.*s", (int)(slen < sizeof section ? slen : 0), sb);
    snprintf(key, sizeof key, "%.*s", (int)(klen < sizeof key ? klen : 0), kb);
    if (slen >= sizeof section || !section_known(section, slen)) {
        snprintf(section, sizeof section, "%.*s", (int)(slen < 60 ? slen : 60), sb);
        put_msg(err, errlen, "command line: [%s]: unknown section", shown(section, s, sizeof s));
        return EL_INVAL;
    }
    const struct cfg_entry *e = klen < sizeof key ? entry_find(section, key) : NULL;
    if (e == NULL) {
        snprintf(key, sizeof key, "%.*s", (int)(klen < 60 ? klen : 60), kb);
        put_msg(err, errlen, "command line: [%s] %s: unknown key", section,
                shown(key, s, sizeof s));
        return EL_INVAL;
    }
    if (vlen >= sizeof value) {
        put_msg(err, errlen, "command line: [%s] %s: too long: %zu bytes", section, key, vlen);
        return EL_INVAL;
    }
    memcpy(value, vb, vlen);
    value[vlen] = '\0';
    if (!entry_set(e, cfg, value, what, sizeof what)) {
        put_msg(err, errlen, "command line: [%s] %s: %s", section, key, what);
        return EL_INVAL;
    }
    return EL_OK;
}

/* Both or neither of a certificate and its key. */
static bool check_pair(const char *section, const char *cert, const char *key, char *err,
                       size_t errlen)
{
    if ((cert[0] == '\0') == (key[0] == '\0'))
        return true;
    put_msg(err, errlen, "[%s] %s: cert_file and key_file must be set together", section,
            cert[0] == '\0' ? "cert_file" : "key_file");
    return false;
}

/* The journal and database size rules between keys (bounds of a single key
 * are the table's). */
static el_status check_storage_sizes(const struct el_config *cfg, char *err, size_t errlen)
{
    char lo[32];

    if (cfg->ingest.max_payload < 0 || cfg->ingest.max_payload > GIB) {
        put_msg(err, errlen, "[ingest] max_payload: out of range; got %" PRId64,
                cfg->ingest.max_payload); /* only when filled by hand */
        return EL_INVAL;
    }
    /* A segment must hold several records of the largest size (payload plus
     * topic and header), so that rotation is rare and no record straddles
     * the end; 1 MiB on top keeps small-payload setups sensibly sized. */
    int64_t min_segment = 4 * cfg->ingest.max_payload + MIB;
    if (cfg->storage.journal_segment_bytes < min_segment) {
        put_msg(err, errlen,
                "[storage] journal_segment_bytes: must be at least 4 * ingest.max_payload + 1M "
                "= %s; got %" PRId64,
                bytes_str(min_segment, lo, sizeof lo), cfg->storage.journal_segment_bytes);
        return EL_INVAL;
    }
    if (cfg->storage.max_bytes != 0 && cfg->storage.max_bytes < MIB) {
        put_msg(err, errlen,
                "[storage] max_bytes: must be 0 (no limit) or at least 1M; got %" PRId64,
                cfg->storage.max_bytes);
        return EL_INVAL;
    }
    /* The ladder: a finer resolution never outlives a coarser one (0 = forever). */
    int64_t k1m = cfg->storage.keep_1m_s, k1h = cfg->storage.keep_1h_s,
            k1d = cfg->storage.keep_1d_s;
    if ((k1m == 0 && (k1h != 0 || k1d != 0)) || (k1h == 0 && k1d != 0) || (k1h != 0 && k1m > k1h) ||
        (k1d != 0 && k1h > k1d)) {
        put_msg(err, errlen,
                "[storage] keep_1m_s, keep_1h_s, keep_1d_s: a finer view must not be kept longer "
                "than a coarser one (0 = forever); got %" PRId64 ", %" PRId64 ", %" PRId64,
                k1m, k1h, k1d);
        return EL_INVAL;
    }
    if (cfg->storage.hard_max_bytes != 0 && cfg->storage.hard_max_bytes < MIB) {
        put_msg(err, errlen,
                "[storage] hard_max_bytes: must be 0 (automatic) or at least 1M; got %" PRId64,
                cfg->storage.hard_max_bytes);
        return EL_INVAL;
    }
    if (cfg->storage.hard_max_bytes != 0 && cfg->storage.hard_max_bytes < cfg->storage.max_bytes) {
        put_msg(err, errlen,
                "[storage] hard_max_bytes: must be at least max_bytes (%" PRId64 "); got %" PRId64,
                cfg->storage.max_bytes, cfg->storage.hard_max_bytes);
        return EL_INVAL;
    }
    return EL_OK;
}

/* Ingesting our own status and replies would feed on itself. */
static el_status check_own_topics(const struct el_config *cfg, char *err, size_t errlen)
{
    static const char *const own[] = {"status", "query", "command"};
    char topic[EL_CFG_STR + 16];

    for (int i = 0; i < cfg->ingest.n_filters; i++) {
        for (size_t k = 0; k < sizeof own / sizeof own[0]; k++) {
            snprintf(topic, sizeof topic, "%s/%s", cfg->mqtt.topic_prefix, own[k]);
            if (mqtt_topic_matches(cfg->ingest.filters[i], topic, strlen(topic))) {
                put_msg(err, errlen,
                        "[ingest] subscribe: filter '%s' matches our own topic '%s'; narrow it or "
                        "change mqtt.topic_prefix",
                        cfg->ingest.filters[i], topic);
                return EL_INVAL;
            }
        }
    }
    return EL_OK;
}

static el_status finish_cross_checks(const struct el_config *cfg, char *err, size_t errlen)
{
    if (!check_pair("mqtt", cfg->mqtt.cert_file, cfg->mqtt.key_file, err, errlen) ||
        !check_pair("sync", cfg->sync.cert_file, cfg->sync.key_file, err, errlen))
        return EL_INVAL;
    el_status st = check_storage_sizes(cfg, err, errlen);
    /* No rule ties slots * bucket_ms to batch.max_lag_s: answers stay exact
     * whatever the ring covers (serve.h); a short ring only means more
     * master-log reads for recent-but-older-than-the-ring ranges. */
    return st != EL_OK ? st : check_own_topics(cfg, err, errlen);
}

el_status config_finish(struct el_config *cfg, char *err, size_t errlen)
{
    char host[256], what[WHAT_LEN];

    put_msg(err, errlen, "%s", "");
    if (cfg == NULL) {
        put_msg(err, errlen, "config: bad arguments");
        return EL_INVAL;
    }
    if (gethostname(host, sizeof host) != 0 || host[0] == '\0')
        snprintf(host, sizeof host, "%s", "localhost");
    host[sizeof host - 1] = '\0';
    if (cfg->mqtt.client_id[0] == '\0')
        snprintf(cfg->mqtt.client_id, sizeof cfg->mqtt.client_id, "edgelambda-%.200s", host);
    if (cfg->sync.device_id[0] == '\0')
        snprintf(cfg->sync.device_id, sizeof cfg->sync.device_id, "%s", host);

    for (size_t i = 0; i < CFG_N; i++) {
        const struct cfg_entry *e = &cfg_table[i];
        const char *v = field_at(cfg, e);
        if (e->check == NULL)
            continue;
        bool ok = memchr(v, '\0', e->size) != NULL;
        if (!ok)
            put_msg(what, sizeof what, "not NUL-terminated");
        else
            ok = e->check(v, what, sizeof what);
        if (!ok) {
            put_msg(err, errlen, "[%s] %s: %s", e->section, e->key, what);
            return EL_INVAL;
        }
    }
    if (!split_filters(cfg->ingest.subscribe, cfg->ingest.filters, &cfg->ingest.n_filters, what,
                       sizeof what)) {
        put_msg(err, errlen, "[ingest] subscribe: %s", what);
        return EL_INVAL;
    }
    for (int i = 0; i < cfg->continuous.n; i++) {
        const struct el_continuous_def *d = &cfg->continuous.def[i];
        if (d->match[0] == '\0') {
            put_msg(err, errlen, "[continuous \"%s\"] match: required (the section at line %d)",
                    d->name, d->line);
            return EL_INVAL;
        }
    }
    return finish_cross_checks(cfg, err, errlen);
}

/* "[5..3600]", "[16..16M bytes]", "[normal|strict]", ... */
static void type_str(const struct cfg_entry *e, char *out, size_t outlen)
{
    char lo[32], hi[32], list[128];

    switch (e->type) {
    case CFG_STRING: snprintf(out, outlen, "%s", "[text]"); break;
    case CFG_PATH: snprintf(out, outlen, "%s", "[path]"); break;
    case CFG_INT:
    case CFG_INT64:
    case CFG_DOUBLE: snprintf(out, outlen, "[%" PRId64 "..%" PRId64 "]", e->min, e->max); break;
    case CFG_BYTES:
        snprintf(out, outlen, "[%s..%s bytes]", bytes_str(e->min, lo, sizeof lo),
                 bytes_str(e->max, hi, sizeof hi));
        break;
    case CFG_BOOL: snprintf(out, outlen, "%s", "[true|false]"); break;
    case CFG_ENUM:
        names_str(e->names, "|", list, sizeof list);
        snprintf(out, outlen, "[%s]", list);
        break;
    }
}

/* Calls key(out, e, starts) for every entry of the table in order; starts:
 * e is the first key of its section. */
static void each_entry(FILE *out, void (*key)(FILE *out, const struct cfg_entry *e, bool starts))
{
    for (size_t i = 0; i < CFG_N; i++)
        key(out, &cfg_table[i],
            i == 0 || strcmp(cfg_table[i - 1].section, cfg_table[i].section) != 0);
}

static void help_key(FILE *out, const struct cfg_entry *e, bool starts)
{
    char type[160];

    if (starts)
        fprintf(out, "\n[%s]\n", e->section);
    else
        fputc('\n', out);
    type_str(e, type, sizeof type);
    for (const char *h = e->help; *h != '\0';) {
        size_t n = strcspn(h, "\n");
        fprintf(out, "# %.*s%s%s\n", (int)n, h, h[n] == '\0' ? " " : "", h[n] == '\0' ? type : "");
        h += n + (h[n] == '\n');
    }
    if (e->live)
        fputs("# Live: a reload (SIGHUP) applies a change at once.\n", out);
    fprintf(out, "# %s =%s%s\n", e->key, e->def[0] != '\0' ? " " : "", e->def);
}

bool config_key_live(const char *section, const char *key)
{
    if ((strcmp(section, "decode") == 0 || strcmp(section, "continuous") == 0) &&
        strcmp(key, "sections") == 0)
        return true; /* the named sections, one key each in config_diff */
    const struct cfg_entry *e = entry_find(section, key);
    return e != NULL && e->live;
}

void config_each_live(void (*fn)(void *ctx, const char *section, const char *key), void *ctx)
{
    for (size_t i = 0; i < CFG_N; i++)
        if (cfg_table[i].live)
            fn(ctx, cfg_table[i].section, cfg_table[i].key);
    fn(ctx, "decode", "sections");
    fn(ctx, "continuous", "sections");
}

void config_diff(const struct el_config *a, const struct el_config *b,
                 void (*fn)(void *ctx, const char *section, const char *key), void *ctx)
{
    for (size_t i = 0; i < CFG_N; i++) {
        const struct cfg_entry *e = &cfg_table[i];
        if (memcmp((const char *)a + e->offset, (const char *)b + e->offset, e->size) != 0)
            fn(ctx, e->section, e->key);
    }
    for (size_t k = 0; k < NAMED_KINDS; k++) {
        const struct named_kind *nk = &named_kinds[k];
        struct el_config *x = (struct el_config *)a, *y = (struct el_config *)b;
        bool same = *named_count(nk, x) == *named_count(nk, y);
        for (int i = 0; same && i < *named_count(nk, x); i++) {
            const char *ex = named_elem(nk, x, i), *ey = named_elem(nk, y, i);
            /* where a section starts is no setting */
            same = memcmp(ex, ey, nk->line_off) == 0 &&
                   memcmp(ex + nk->line_off + sizeof(int), ey + nk->line_off + sizeof(int),
                          nk->elem_size - nk->line_off - sizeof(int)) == 0;
        }
        if (!same)
            fn(ctx, nk->word, "sections");
    }
}

static void help_named(FILE *out, const struct named_kind *k);

void config_print_help(FILE *out)
{
    fputs("# edgelambda configuration (INI). Every key is optional: each line below\n"
          "# shows a key commented out with its built-in default.\n"
          "# Comments start with '#' or ';' (inline: ' ;'); if a key is given twice,\n"
          "# the last one wins. Sizes take K, M or G suffixes (powers of 1024);\n"
          "# booleans are true/false, yes/no, on/off or 1/0.\n",
          out);
    each_entry(out, help_key);
    fputs("\n# [decode \"<topic filter>\"] sections (at most 16) choose how payloads on\n"
          "# matching topics are read; the first section whose filter matches wins,\n"
          "# and topics no section matches are read with the [ingest] keys above.\n"
          "# For example (README, \"Payloads\", has one per fleet):\n"
          "#\n"
          "#   [decode \"zigbee2mqtt/#\"]\n"
          "#   fields = all\n"
          "#   drop_fields = update, update_available\n"
          "#\n"
          "# A reload (SIGHUP) applies changed decode sections at once, between two\n"
          "# messages (Sparkplug B aliases survive it).\n"
          "#\n"
          "# The keys of a decode section, each with its default:\n",
          out);
    help_named(out, &named_kinds[0]);
    fputs("\n# [continuous \"<name>\"] sections (at most 16) are continuous queries: when\n"
          "# a bucket closes (the clock passes its end plus grace) the daemon publishes\n"
          "# one message per matching series, the range answer for that bucket, to\n"
          "# <topic>/<series>; late data republishes it with \"revision\" + 1.\n"
          "# For example (README, \"Continuous queries\"):\n"
          "#\n"
          "#   [continuous \"temps\"]\n"
          "#   match = sensors/+/temp\n"
          "#   step = 1m\n"
          "#   agg = count,mean,max\n"
          "#\n"
          "# A reload (SIGHUP) applies changed continuous sections at the serving\n"
          "# thread's next tick: unchanged ones keep their state, changed ones start afresh.\n"
          "#\n"
          "# The keys of a continuous section, each with its default:\n",
          out);
    help_named(out, &named_kinds[1]);
}

/* The keys of a named section, commented, for --help-config. */
static void help_named(FILE *out, const struct named_kind *k)
{
    for (size_t i = 0; i < k->n_keys; i++) {
        const struct cfg_entry *e = &k->table[i];
        char type[160];
        type_str(e, type, sizeof type);
        fprintf(out, "#\n#   %s = %s %s\n", e->key, e->def, type);
        for (const char *h = e->help; *h != '\0';) {
            size_t n = strcspn(h, "\n");
            fprintf(out, "#     %.*s\n", (int)n, h);
            h += n + (h[n] == '\n');
        }
    }
}

/* Writes n bytes of text for roff's fill mode: a backslash as \e, '-' as \-
 * (a minus sign, so values like -1h copy as typed), and a '.' or '\'' that
 * starts the line behind \& (it would be read as a request). */
static void roff_text(FILE *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i == 0 && (s[i] == '.' || s[i] == '\''))
            fputs("\\&", out);
        if (s[i] == '\\')
            fputs("\\e", out);
        else if (s[i] == '-')
            fputs("\\-", out);
        else
            fputc(s[i], out);
    }
}

static void roff_line(FILE *out, const char *s)
{
    roff_text(out, s, strlen(s));
    fputc('\n', out);
}

static void man_key(FILE *out, const struct cfg_entry *e, bool starts)
{
    char type[160];

    if (starts)
        fprintf(out, ".SS [%s]\n", e->section);
    fputs(".TP\n.B ", out);
    roff_line(out, e->key);
    for (const char *h = e->help; *h != '\0';) {
        size_t n = strcspn(h, "\n");
        roff_text(out, h, n);
        fputc('\n', out);
        h += n + (h[n] == '\n');
    }
    type_str(e, type, sizeof type);
    roff_line(out, type);
    fputs(".br\nDefault: ", out);
    if (e->def[0] == '\0') {
        fputs("empty.\n", out);
    } else {
        fputs("\\fB", out);
        roff_text(out, e->def, strlen(e->def));
        fputs("\\fR\n", out);
    }
    if (e->live)
        fputs(".br\nLive: a reload (SIGHUP) applies a change at once.\n", out);
}

/* A named section's heading and text (roff), then its keys. */
static void man_named(FILE *out, const struct named_kind *k, const char *intro)
{
    fputs(intro, out);
    for (size_t i = 0; i < k->n_keys; i++)
        man_key(out, &k->table[i], false);
}

void config_print_man(FILE *out)
{
    fputs(".\\\" edgelambda.conf(5), generated by `edgelambdad --help-config=man` from the\n"
          ".\\\" configuration table (firmware/daemon/config.c): edit the table, not this.\n",
          out);
    fprintf(out, ".TH EDGELAMBDA.CONF 5 \"\" \"edgelambda %s\" \"File Formats Manual\"\n",
            EL_VERSION);
    fputs(
        ".SH NAME\n"
        "edgelambda.conf \\- configuration file of edgelambdad\n"
        ".SH SYNOPSIS\n"
        ".I " EL_CONFIG_DEFAULT_PATH "\n"
        ".SH DESCRIPTION\n"
        ".B edgelambdad\n"
        "reads an INI file,\n.I " EL_CONFIG_DEFAULT_PATH "\n"
        "unless \\fB\\-c\\fR \\fIFILE\\fR names another.\n"
        "Every key has a built\\-in default, so an empty file, or none at all, is valid.\n"
        "Unknown keys and bad values are errors that name the file, line, section and key;\n"
        "\\fBedgelambdad \\-\\-check\\-config\\fR validates a file without starting.\n"
        "Any key can be overridden on the command line with\n"
        "\\fB\\-\\-set\\fR \\fIsection.key\\fR=\\fIvalue\\fR.\n"
        ".PP\n"
        "Sections are \\fB[\\fR\\fIname\\fR\\fB]\\fR lines; keys are \\fIkey\\fR = \\fIvalue\\fR.\n"
        "Comments start with \\(aq#\\(aq or \\(aq;\\(aq (inline: \\(aq ;\\(aq);\n"
        "if a key is given twice, the last one wins.\n"
        "Sizes take K, M or G suffixes (powers of 1024);\n"
        "booleans are true/false, yes/no, on/off or 1/0.\n"
        "Each key below shows the values it accepts in brackets and its default.\n"
        ".SH KEYS\n",
        out);
    each_entry(out, man_key);
    man_named(out, &named_kinds[0],
              ".SS [decode \\(dq\\fIFILTER\\fP\\(dq]\n"
              "Sections (at most 16) that choose how payloads on topics matching the MQTT\n"
              "topic filter \\fIFILTER\\fR are read; the first section whose filter matches\n"
              "wins, and topics no section matches are read with the [ingest] keys.\n"
              "A reload (SIGHUP) applies changed sections at once, between two messages\n"
              "(Sparkplug B aliases survive it).\n");
    man_named(out, &named_kinds[1],
              ".SS [continuous \\(dq\\fINAME\\fP\\(dq]\n"
              "Continuous queries (at most 16): when a bucket closes (the clock passes its\n"
              "end plus \\fBgrace\\fR) the daemon publishes one message per matching series,\n"
              "the range answer for that bucket, to \\fItopic\\fR/\\fIseries\\fR; late data\n"
              "republishes it with \\(dqrevision\\(dq + 1.\n"
              "A reload (SIGHUP) applies changed sections at the serving thread's next tick\n"
              "(a changed section starts afresh; unchanged ones keep their state).\n");
    fputs(".SH FILES\n"
          ".TP\n.I " EL_CONFIG_DEFAULT_PATH "\n"
          "The configuration file; the package installs it with every key commented out\n"
          "at its default (a conffile).\n"
          ".TP\n.I /usr/share/doc/edgelambda/edgelambda.conf.example\n"
          "The same commented example, as \\fBedgelambdad \\-\\-help\\-config\\fR prints it.\n"
          ".SH SEE ALSO\n"
          ".BR edgelambdad (8),\n"
          ".BR edgelambda (1)\n",
          out);
}
