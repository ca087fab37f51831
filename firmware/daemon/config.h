/*
 * config — edgelambdad's configuration: an INI file (parsed by inih) over
 * built-in defaults, plus "--set section.key=value" overrides.
 *
 * Design: one table (section, key, type, bounds, default, help) drives
 * defaults, parsing, validation, the example config check, --help-config
 * and the edgelambda.conf(5) manual page (--help-config=man);
 * no if-chains. Every key has a default, so an empty file is valid. Unknown
 * sections/keys and bad values are errors naming section, key and line
 * ("edgelambda.conf:12: [storage] durability: expected normal or strict, got 'fast'").
 * Strings live in fixed-size arrays inside struct el_config: no heap, the
 * caller owns the struct, copying it copies everything.
 *
 * Threading: load once at start-up on the main thread; afterwards read-only
 * and safe to share.
 */
#ifndef EL_CONFIG_H
#define EL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "el_status.h"

#define EL_CONFIG_DEFAULT_PATH "/etc/edgelambda/edgelambda.conf"
#define EL_CFG_STR 256  /* names, topics, field names */
#define EL_CFG_PATH 512 /* file paths, URLs */
#define EL_CFG_MAX_SUBS 16
#define EL_CFG_MAX_DECODE 16     /* [decode "<filter>"] sections */
#define EL_CFG_MAX_CONTINUOUS 16 /* [continuous "<name>"] sections */
#define EL_CFG_CQ_NAME 64        /* bytes of a continuous query's name, with the NUL */

enum el_durability { EL_DURABILITY_NORMAL = 0, EL_DURABILITY_STRICT };
enum el_full_policy { EL_FULL_STOP_INGEST = 0, EL_FULL_DROP_OLDEST };
enum el_sync_format { EL_SYNC_NDJSON = 0, EL_SYNC_INFLUX };
enum el_compression { EL_COMPRESS_NONE = 0, EL_COMPRESS_GZIP, EL_COMPRESS_ZSTD };

/* One [decode "<filter>"] section: how payloads on matching topics are read
 * (the first section whose filter matches wins; none: ingest's own keys). */
struct el_decode_rule {
    char filter[EL_CFG_STR];
    int format;                    /* enum decode_format: auto json number influx */
    char value[EL_CFG_STR];        /* "" = ingest.value_field; a dotted path */
    char time[EL_CFG_STR];         /* "" = ingest.ts_field; a dotted path */
    int time_unit;                 /* enum decode_time_unit */
    int fields;                    /* 0 value, 1 all, 2 = ingest.fields */
    bool flatten;                  /* nested objects become <topic>/<key>/<key> */
    char keep_fields[EL_CFG_PATH]; /* comma-separated dotted paths; "" = all */
    char drop_fields[EL_CFG_PATH];
    int precision; /* influx timestamps: ns us ms s */
    int line;      /* where the section starts (messages) */
};

/* One [continuous "<name>"] section: a continuous query (continuous.h). */
struct el_continuous_def {
    char name[EL_CFG_STR];  /* [A-Za-z0-9_-], at most EL_CFG_CQ_NAME - 1 bytes */
    char match[EL_CFG_STR]; /* topic filter of the series */
    char step[32];          /* bucket width, a duration ("1m") */
    char grace[32];         /* how long after its end a bucket closes */
    char max_lateness[32];  /* how long after closing late data still corrects it */
    char agg[EL_CFG_STR];   /* comma-separated aggregates */
    char topic[EL_CFG_STR]; /* output topic prefix; "" = <prefix>/continuous/<name> */
    int qos;                /* 0..2 */
    bool retain;
    int line; /* where the section starts (messages) */
};

struct el_config {
    struct {
        char uri[EL_CFG_PATH];      /* tcp://127.0.0.1:1883 */
        char client_id[EL_CFG_STR]; /* "" = edgelambda-<hostname>, filled by config_finish */
        char username[EL_CFG_STR];  /* "" = none */
        char password_file[EL_CFG_PATH];
        char topic_prefix[EL_CFG_STR]; /* edgelambda */
        char ca_file[EL_CFG_PATH];
        char cert_file[EL_CFG_PATH];
        char key_file[EL_CFG_PATH];
        int keepalive_s;      /* 30, 5..3600 */
        int session_expiry_s; /* 86400, 1..2^31-1: how long the broker keeps our session */
        int max_inflight;     /* 100, 1..65535: MQTT v5 receive maximum */
        bool tcp_nodelay;     /* true: TCP_NODELAY on the broker connection */
    } mqtt;
    struct {
        char subscribe[EL_CFG_PATH];               /* raw comma-separated list, "sensors/#" */
        char filters[EL_CFG_MAX_SUBS][EL_CFG_STR]; /* parsed, trimmed, validated filters */
        int n_filters;
        int qos;                      /* 1, 0..2 */
        char value_field[EL_CFG_STR]; /* value */
        char ts_field[EL_CFG_STR];    /* ts */
        bool fields_all;              /* fields = value|all */
        char state_words[EL_CFG_STR]; /* WORD=NUMBER,...: decode_words_parse */
        int64_t max_payload;          /* 65536, 16..16777216 bytes */
        int64_t max_future_s; /* 86400: event times further ahead of a synced clock are absurd */
    } ingest;
    struct {
        int bucket_ms;   /* 1000, 10..3600000 */
        int slots;       /* 600, 16..1048576 */
        int raw_samples; /* 256, 1..65536 */
        int max_series;  /* 1000, 1..1000000 */
    } speed;
    struct {
        char dir[EL_CFG_PATH];           /* /var/lib/edgelambda */
        enum el_durability durability;   /* normal */
        int flush_interval_ms;           /* 10, 1..10000 */
        int64_t max_bytes;               /* 0 = no limit */
        enum el_full_policy full_policy; /* stop_ingest */
        int64_t hard_max_bytes;          /* 0 = automatic (config.c) */
        int64_t journal_segment_bytes;   /* 8 MiB, >= 4*max_payload+1MiB */
        int journal_segments;            /* 4, 2..64 */
        int64_t max_age_s;               /* 0 = off: raw events by event time */
        int64_t keep_1m_s, keep_1h_s;    /* 30 d, 365 d of 1 min / 1 h views */
        int64_t keep_1d_s;               /* 0 = forever */
    } storage;
    struct {
        int idle_cpu_pct;          /* 20, 0..100 */
        double idle_ingest_rate;   /* 200 events/s */
        int idle_for_s;            /* 30 */
        char schedule[EL_CFG_STR]; /* "" = none, else "every 15m" style or HH:MM */
        int max_lag_s;             /* 300 */
    } batch;
    struct {
        char url[EL_CFG_PATH];           /* "" = disabled */
        enum el_sync_format format;      /* ndjson */
        enum el_compression compression; /* gzip */
        int batch_events;                /* 5000 */
        int64_t batch_bytes;             /* 1 MiB */
        char ca_file[EL_CFG_PATH];
        char cert_file[EL_CFG_PATH];
        char key_file[EL_CFG_PATH];
        char token_file[EL_CFG_PATH];
        char device_id[EL_CFG_STR]; /* "" = hostname */
        bool insecure;              /* false */
        bool include_seq;           /* false: influx points carry only value */
        int timeout_s;              /* 30 */
        int live_window_s;          /* 300; 0 = one lane, oldest first */
        int max_kbps;               /* 0 = unlimited */
    } sync;
    struct {
        int deadline_ms;     /* 500: wall time one query may take */
        int64_t max_rows;    /* 2000000 master-log rows examined per query */
        int max_cells;       /* 100000 series x buckets per query */
        int max_values;      /* 1000000 raw values for quantiles per query */
        int max_sketch_bins; /* 2000000 */
        int max_match;       /* 1000 series per match */
    } query;
    struct {
        int level; /* plat_log level, info */
    } log;
    struct {
        int synced; /* enum plat_clock_sync_mode: auto|yes|no */
    } clock;
    struct {
        char textfile[EL_CFG_PATH]; /* "" = off; else a *.prom file (node_exporter) */
    } metrics;
    struct {
        struct el_decode_rule rule[EL_CFG_MAX_DECODE];
        int n;
    } decode;
    struct {
        int max_msgs_per_s; /* 100: continuous and watch messages, a token bucket */
        int max_watches;    /* 64 */
        int max_cells;      /* 4096 (series, bucket) pairs remembered per query */
        struct el_continuous_def def[EL_CFG_MAX_CONTINUOUS];
        int n;
    } continuous;
};

/* Fills every field with its built-in default (client_id, device_id stay ""). */
void config_defaults(struct el_config *cfg);

/* Parses the INI file at path over the current contents of cfg (call
 * config_defaults first). On any error writes one line naming file, line,
 * section and key into err (always NUL-terminated) and returns EL_INVAL;
 * EL_IO if the file cannot be read. cfg may be partly updated on error. */
EL_MUST_CHECK el_status config_load_file(struct el_config *cfg, const char *path, char *err,
                                         size_t errlen);
/* Same for INI text in memory (tests, fuzzing); name is used in messages. */
EL_MUST_CHECK el_status config_load_string(struct el_config *cfg, const char *text, size_t len,
                                           const char *name, char *err, size_t errlen);
/* Applies one "section.key=value" override (command line). */
EL_MUST_CHECK el_status config_set(struct el_config *cfg, const char *assignment, char *err,
                                   size_t errlen);
/* Cross-key checks and derived values (client_id/device_id from hostname,
 * parsed subscription filters). Call once after loading and overrides. */
EL_MUST_CHECK el_status config_finish(struct el_config *cfg, char *err, size_t errlen);

/* Calls fn for every key whose value differs between a and b ("section",
 * "key"); the [decode] sections count as one key, ("decode", "sections"), and
 * so do the [continuous "<name>"] sections, ("continuous", "sections"). */
void config_diff(const struct el_config *a, const struct el_config *b,
                 void (*fn)(void *ctx, const char *section, const char *key), void *ctx);

/* True if SIGHUP applies a change of the key without a restart (the
 * table's LIVE flag; ("decode", "sections") is live). */
bool config_key_live(const char *section, const char *key);
/* Calls fn for every live key, ("decode", "sections") last. */
void config_each_live(void (*fn)(void *ctx, const char *section, const char *key), void *ctx);

/* Writes every key with its help text and default, as a commented INI file. */
void config_print_help(FILE *out);
/* Writes the edgelambda.conf(5) manual page (roff) from the same table: every
 * key with its help text, accepted values and default. */
void config_print_man(FILE *out);

#endif
