/*
 * status — the daemon's status document (docs/SPEC.md §7), published retained on
 * <prefix>/status and answered to {"op":"status"}.
 *
 * Pure formatting: the core fills a snapshot, status_format writes JSON into
 * a caller buffer. Counters are since the daemon started, except log.* which
 * describe the master log on disk.
 *
 * The document's shape is a schema, status_sections[]: per section a table
 * of fields (key, kind, where in the snapshot, when shown) and, on the same
 * row, how the field is exposed as a Prometheus metric (metrics.h). A new
 * field is one row, metric included; tests/unit/metrics_test.c fails for a
 * number or boolean without a metric.
 *
 * Threading: pure, any thread.
 */
#ifndef EL_STATUS_DOC_H
#define EL_STATUS_DOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "ingest.h"
#include "mqtt_topic.h"
#include "requests.h"
#include "sync.h"

/* Counters of requests (requests.h), copied from their atomics. */
struct status_queries {
    uint64_t received, answered;
    uint64_t errors[RQ_ERR_COUNT];
    uint64_t rejected[MQTT_TOPIC_COUNT]; /* at the serving thread and at intake */
    uint64_t unsent, busy_at_intake, busy_unsent, slow;
    uint64_t quick, quick_declined; /* the quick lane (requests.h) */
    uint64_t memory_bytes;          /* the serving thread's working set */
};

/* The core's buffer for the document: what the control plane and the
 * status board take (a unit test checks the worst case fits; it measured
 * 3.7 KiB with every section shown, over the 4 KiB this buffer had). */
#define STATUS_DOC_MAX CONTROL_STATUS_MAX
/* Room for status reload.result (what the last reload did, cut). */
#define STATUS_RELOAD_RESULT 192
/* Continuous queries and watches (continuous.h). */
struct status_continuous {
    uint64_t queries, watches, published, corrections, partials, dropped, unsent, errors, too_late,
        cells_full;
    int64_t tail_seq;
};

struct status_snapshot {
    const char *state, *version; /* status_derive */
    int64_t uptime_s;
    bool clock_synced;
    int64_t clock_unanchored;  /* events waiting for a synchronised clock */
    uint64_t clock_anchored;   /* events placed in time since start */
    uint64_t clock_steps;      /* wall-clock steps seen since start */
    const char *clock_source;  /* status_derive: what decided clock_synced */
    const char *clock_waiting; /* status_derive: why readings wait, and what to do */
    bool mqtt_connected;
    uint64_t mqtt_connects;
    bool mqtt_tcp_nodelay;
    int64_t broker_dropped; /* -1: the broker does not tell us */
    bool control_connected; /* the control plane's connection (control.h) */
    uint64_t control_connects;
    /* ingest */
    bool ingest_held; /* the Paho callback waits: journal full or strict msync failing */
    uint64_t received;
    uint64_t accepted;
    uint64_t rejected[INGEST_REASON_COUNT];
    uint64_t dead_letters; /* status_derive: the sum of rejected */
    uint64_t duplicates;
    /* dead-letter replay (replay.h): committed dead letters and their events;
     * requests, and dead letters still failing or skipped, as answered */
    uint64_t dl_replayed, dl_replayed_events, dl_replay_runs, dl_replay_failed, dl_replay_skipped;
    uint64_t dl_replay_refused; /* records the core did not store (core_commit.c) */
    double rate_per_s;
    bool sparkplug_on; /* a [decode] section reads Sparkplug B */
    uint64_t sp_births, sp_deaths, sp_seq_gaps, sp_unknown_alias, sp_aliases_full;
    /* master log */
    int64_t log_seq;           /* highest sequence committed */
    int64_t log_bytes;         /* database + WAL */
    uint64_t journal_bytes;    /* acknowledged, not yet committed */
    int64_t commit_ms;         /* the last group commit took (ms) */
    int64_t commit_ms_max;     /* the longest since start */
    uint64_t replayed;         /* journal records replayed at start-up */
    const char *storage_error; /* NULL when healthy */
    int64_t log_used_bytes, log_max_bytes;
    bool log_full_paused;        /* stop_ingest in force */
    uint64_t log_trimmed_events; /* removed by retention since start */
    int64_t log_oldest_seq;      /* raw events below this are only in the views */
    /* storage: what each tier holds (storage/retention.h); the views' from batch.tiers */
    int64_t storage_total_bytes; /* master + views + journal: what max_bytes bounds */
    int64_t raw_events;          /* rows of the master log's events table */
    int64_t raw_oldest_ts;       /* oldest event time (block summaries), 0: none */
    uint64_t aged_events;        /* removed by storage.max_age_s since start */
    uint64_t series;
    uint64_t speed_memory_bytes;
    bool has_queries;
    struct status_queries queries;
    struct status_continuous continuous;
    struct batch_status batch;
    double batch_last_seconds; /* status_derive */
    struct sync_status sync;
    /* reload (SIGHUP) */
    uint64_t reloads, reload_failures;
    int64_t reload_last_ms; /* wall clock of the last reload, 0 = none */
    char reload_result[STATUS_RELOAD_RESULT];
};

/* What a field holds (and how its JSON value looks). */
enum status_kind {
    SK_I64,       /* int64_t */
    SK_U64,       /* uint64_t */
    SK_DBL,       /* double */
    SK_BOOL,      /* bool */
    SK_STR,       /* const char *, NULL: null */
    SK_TEXT,      /* char[], "": null */
    SK_TIME,      /* int64_t epoch ms, <= 0: null, else RFC 3339 text */
    SK_I64_KNOWN, /* int64_t, < 0: null (not known) */
    SK_COUNTS,    /* uint64_t[]: an object of counters named by the field's names() */
};

/* How a field is exposed in the Prometheus text format (metrics.h). */
enum status_metric_type {
    SM_NONE = 0, /* prose for people (no metric); numbers and booleans must have one */
    SM_COUNTER,  /* since the daemon started; the name ends in _total */
    SM_GAUGE,    /* a number, a boolean (1/0) or a time (epoch seconds) */
    SM_INFO,     /* text: a gauge that is 1, the text in label `label` (absent when null) */
    SM_SET,      /* text or null: a gauge, 1 while the text is set (an error message) */
};

struct status_metric {
    const char *name; /* the whole name, edgelambda_<section>_..., units in base units */
    enum status_metric_type type;
    const char *label; /* SM_INFO: the label holding the text; SK_COUNTS: the counter's name */
    unsigned div;      /* the status value / div is the metric (1000: ms -> seconds); 0 = 1 */
    const char *help;
};

struct status_field {
    const char *key;
    enum status_kind kind;
    size_t off;
    bool (*when)(const struct status_snapshot *s); /* NULL: always shown */
    const char *(*names)(unsigned i);              /* SK_COUNTS */
    unsigned first, count;                         /* SK_COUNTS: indexes first..count-1 */
    struct status_metric metric;
};

struct status_section {
    const char *key; /* NULL: the document's top level */
    const struct status_field *fields;
    size_t n;
    bool (*when)(const struct status_snapshot *s); /* NULL: always shown */
};

/* The document, in order. */
extern const struct status_section status_sections[];
extern const size_t status_n_sections;

/* Fills the derived members (marked above) from the others. */
void status_derive(struct status_snapshot *s);
/* Writes the JSON document; returns its length, or 0 if buf was too small. */
size_t status_format(const struct status_snapshot *s, char *buf, size_t len);

#endif
