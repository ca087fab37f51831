/*
 * status — formats the status document (see status.h), table-driven: each
 * section of the document is a table of (key, kind, where in the snapshot,
 * when to show it, its Prometheus metric), so adding a field is one line and
 * the document's shape is readable at a glance. metrics.c turns the document
 * into the Prometheus text format by walking the same tables.
 */
#include "status.h"

#include <stddef.h>

#include "plat_clock.h"
#include "plat_jsonw.h"

/* A row: key, kind, snapshot member, [when,] metric. */
#define F(key, kind, member, metric)                                                               \
    {                                                                                              \
        key, kind, offsetof(struct status_snapshot, member), NULL, NULL, 0, 0, metric              \
    }
#define FW(key, kind, member, when, metric)                                                        \
    {                                                                                              \
        key, kind, offsetof(struct status_snapshot, member), when, NULL, 0, 0, metric              \
    }
#define FC(key, member, names, first, count, metric)                                               \
    {                                                                                              \
        key, SK_COUNTS, offsetof(struct status_snapshot, member), NULL, names, first, count,       \
            metric                                                                                 \
    }
/* The metric of a row (status.h, struct status_metric). */
#define METRIC(name, type, label, div, help)                                                       \
    {                                                                                              \
        name, type, label, div, help                                                               \
    }
#define COUNTER(name, help) METRIC(name, SM_COUNTER, NULL, 1, help)
#define COUNTERS(name, label, help) METRIC(name, SM_COUNTER, label, 1, help)
#define GAUGE(name, help) METRIC(name, SM_GAUGE, NULL, 1, help)
#define GAUGE_MS(name, help) METRIC(name, SM_GAUGE, NULL, 1000, help)
#define COUNTER_MS(name, help) METRIC(name, SM_COUNTER, NULL, 1000, help)
#define INFO(name, label, help) METRIC(name, SM_INFO, label, 1, help)
#define SET(name, help) METRIC(name, SM_SET, NULL, 1, help)
#define NO_METRIC METRIC(NULL, SM_NONE, NULL, 1, NULL)

static bool unsynced(const struct status_snapshot *s)
{
    return !s->clock_synced;
}
static bool bounded(const struct status_snapshot *s)
{
    return s->log_max_bytes > 0;
}
static bool tiers(const struct status_snapshot *s)
{
    return s->batch.tiers_known;
}
static bool ran(const struct status_snapshot *s)
{
    return s->batch.runs > 0;
}
static bool syncing(const struct status_snapshot *s)
{
    return s->sync.enabled;
}
static bool serving(const struct status_snapshot *s)
{
    return s->has_queries;
}
static bool sparkplug(const struct status_snapshot *s)
{
    return s->sparkplug_on;
}

static const char *reason_name(unsigned i)
{
    return ingest_reason_str(i);
}
static const char *error_name(unsigned i)
{
    return requests_error_str((enum requests_error)i);
}
static const char *problem_name(unsigned i)
{
    return mqtt_topic_problem_str((enum mqtt_topic_problem)i);
}

static const struct status_field top[] = {
    F("state", SK_STR, state, NO_METRIC),
    F("version", SK_STR, version,
      INFO("edgelambda_build_info", "version", "The daemon's version (the value is 1).")),
    F("uptime_s", SK_I64, uptime_s,
      GAUGE("edgelambda_uptime_seconds", "Seconds since the daemon started.")),
    F("clock_synced", SK_BOOL, clock_synced,
      GAUGE("edgelambda_clock_synced", "1 if the wall clock is taken for true (clock.synced).")),
};
static const struct status_field clock_fields[] = {
    F("unanchored_events", SK_I64, clock_unanchored,
      GAUGE("edgelambda_clock_unanchored_events",
            "Committed readings waiting for a synchronised clock.")),
    F("anchored_events", SK_U64, clock_anchored,
      COUNTER("edgelambda_clock_anchored_events_total", "Waiting readings placed in time.")),
    F("steps", SK_U64, clock_steps,
      COUNTER("edgelambda_clock_steps_total", "Wall-clock steps seen.")),
    F("source", SK_STR, clock_source,
      INFO("edgelambda_clock_source_info", "source",
           "What decided whether the clock is synchronised (the value is 1).")),
    FW("waiting", SK_STR, clock_waiting, unsynced, NO_METRIC),
};
static const struct status_field mqtt_fields[] = {
    F("connected", SK_BOOL, mqtt_connected,
      GAUGE("edgelambda_mqtt_connected", "1 while connected to the broker.")),
    F("connects", SK_U64, mqtt_connects,
      COUNTER("edgelambda_mqtt_connects_total", "Successful (re)connections to the broker.")),
    F("tcp_nodelay", SK_BOOL, mqtt_tcp_nodelay,
      GAUGE("edgelambda_mqtt_tcp_nodelay", "1 if TCP_NODELAY is set on the broker connection.")),
    F("broker_dropped", SK_I64_KNOWN, broker_dropped,
      COUNTER("edgelambda_mqtt_broker_dropped_messages_total",
              "Messages the broker says it dropped ($SYS); absent when it does not tell.")),
    F("control_connected", SK_BOOL, control_connected,
      GAUGE("edgelambda_mqtt_control_connected",
            "1 while the control connection (queries, commands, status) is up.")),
    F("control_connects", SK_U64, control_connects,
      COUNTER("edgelambda_mqtt_control_connects_total",
              "Successful (re)connections of the control connection.")),
};
static const struct status_field ingest_fields[] = {
    F("held", SK_BOOL, ingest_held,
      GAUGE("edgelambda_ingest_held",
            "1 while ingest waits for the journal (full, no space, failing msync): nothing is "
            "acknowledged.")),
    F("received", SK_U64, received,
      COUNTER("edgelambda_ingest_received_total", "Messages received on the ingest topics.")),
    F("accepted", SK_U64, accepted,
      COUNTER("edgelambda_ingest_accepted_total", "Events committed to the master log.")),
    FC("rejected", rejected, reason_name, 1, INGEST_REASON_COUNT,
       COUNTERS("edgelambda_ingest_rejected_total", "reason",
                "Messages dead-lettered, by reason.")),
    F("dead_letters", SK_U64, dead_letters,
      COUNTER("edgelambda_ingest_dead_letters_total", "Dead letters (all reasons).")),
    F("duplicates", SK_U64, duplicates,
      COUNTER("edgelambda_ingest_duplicates_total",
              "Redeliveries recognised as duplicates and dropped.")),
    F("rate_per_s", SK_DBL, rate_per_s,
      GAUGE("edgelambda_ingest_rate_per_second", "Events committed per second, last second.")),
    F("dead_letters_replayed", SK_U64, dl_replayed,
      COUNTER("edgelambda_ingest_dead_letters_replayed_total",
              "Dead letters replayed into the master log (committed).")),
    F("replayed_events", SK_U64, dl_replayed_events,
      COUNTER("edgelambda_ingest_replayed_events_total",
              "Events committed from replayed dead letters.")),
    F("replay_runs", SK_U64, dl_replay_runs,
      COUNTER("edgelambda_ingest_replay_runs_total", "replay_deadletters requests answered.")),
    F("replay_failed", SK_U64, dl_replay_failed,
      COUNTER("edgelambda_ingest_replay_failed_total",
              "Dead letters that still failed to decode when a replay tried them.")),
    F("replay_refused", SK_U64, dl_replay_refused,
      COUNTER("edgelambda_ingest_replay_refused_total",
              "Replayed dead letters the core did not store: an event would be refused again "
              "(series_limit, name_too_long); they stay replayable.")),
    F("replay_skipped", SK_U64, dl_replay_skipped,
      COUNTER("edgelambda_ingest_replay_skipped_total",
              "Dead letters a replay skipped (never replayable: truncated, sparkplug_b, ...).")),
    FW("sparkplug_births", SK_U64, sp_births, sparkplug,
       COUNTER("edgelambda_ingest_sparkplug_births_total", "Sparkplug B NBIRTH/DBIRTH messages.")),
    FW("sparkplug_deaths", SK_U64, sp_deaths, sparkplug,
       COUNTER("edgelambda_ingest_sparkplug_deaths_total", "Sparkplug B NDEATH/DDEATH messages.")),
    FW("sparkplug_seq_gaps", SK_U64, sp_seq_gaps, sparkplug,
       COUNTER("edgelambda_ingest_sparkplug_seq_gaps_total",
               "Sparkplug B messages whose seq did not follow the node's last.")),
    FW("sparkplug_unknown_alias", SK_U64, sp_unknown_alias, sparkplug,
       COUNTER("edgelambda_ingest_sparkplug_unknown_alias_total",
               "Sparkplug B metrics dropped: an alias no birth named.")),
    FW("sparkplug_aliases_full", SK_U64, sp_aliases_full, sparkplug,
       COUNTER("edgelambda_ingest_sparkplug_aliases_full_total",
               "Sparkplug B aliases not remembered: the node or alias table was full.")),
};
static const struct status_field log_fields[] = {
    F("seq", SK_I64, log_seq,
      GAUGE("edgelambda_log_seq", "Highest sequence committed to the master log.")),
    F("bytes", SK_I64, log_bytes,
      GAUGE("edgelambda_log_bytes", "Size of the master log (database and WAL).")),
    F("journal_bytes", SK_U64, journal_bytes,
      GAUGE("edgelambda_log_journal_bytes", "Acknowledged bytes not committed yet.")),
    F("commit_ms", SK_I64, commit_ms,
      GAUGE_MS("edgelambda_log_commit_seconds", "Duration of the last group commit.")),
    F("commit_ms_max", SK_I64, commit_ms_max,
      GAUGE_MS("edgelambda_log_commit_max_seconds", "Longest group commit since start.")),
    F("replayed", SK_U64, replayed,
      COUNTER("edgelambda_log_replayed_total", "Journal records replayed at start-up.")),
    FW("used_bytes", SK_I64, log_used_bytes, bounded,
       GAUGE("edgelambda_log_used_bytes", "Bytes counted against storage.max_bytes.")),
    FW("max_bytes", SK_I64, log_max_bytes, bounded,
       GAUGE("edgelambda_log_max_bytes", "storage.max_bytes.")),
    FW("full", SK_BOOL, log_full_paused, bounded,
       GAUGE("edgelambda_log_full", "1 while stop_ingest holds commits (storage.max_bytes).")),
    FW("trimmed_events", SK_U64, log_trimmed_events, bounded,
       COUNTER("edgelambda_log_trimmed_events_total", "Events removed by retention.")),
    FW("oldest_seq", SK_I64, log_oldest_seq, bounded,
       GAUGE("edgelambda_log_oldest_seq", "Lowest sequence still in the master log.")),
    F("error", SK_STR, storage_error,
      SET("edgelambda_log_error", "1 while storage fails (status log.error says why).")),
};
#define VIEW_TIER(name, k)                                                                         \
    FW("view_" name "_rows", SK_I64, batch.tiers.tier[k].rows, tiers,                              \
       GAUGE("edgelambda_storage_view_" name "_rows", "Batch view rows of " name " buckets.")),    \
        FW("view_" name "_oldest", SK_TIME, batch.tiers.tier[k].oldest, tiers,                     \
           GAUGE("edgelambda_storage_view_" name "_oldest_timestamp_seconds",                      \
                 "Start of the oldest " name " bucket (epoch seconds).")),                         \
        FW("view_" name "_dropped_before", SK_TIME, batch.tiers.tier[k].horizon, tiers,            \
           GAUGE("edgelambda_storage_view_" name "_dropped_before_timestamp_seconds",              \
                 name " buckets before this were dropped by retention (epoch seconds)."))
static const struct status_field storage_fields[] = {
    F("total_bytes", SK_I64, storage_total_bytes,
      GAUGE("edgelambda_storage_total_bytes",
            "master.db and views.db pages in use plus uncommitted journal records: what "
            "storage.max_bytes bounds.")),
    FW("max_bytes", SK_I64, log_max_bytes, bounded,
       GAUGE("edgelambda_storage_max_bytes", "storage.max_bytes.")),
    F("raw_events", SK_I64, raw_events,
      GAUGE("edgelambda_storage_raw_events", "Raw events in the master log.")),
    F("raw_oldest", SK_TIME, raw_oldest_ts,
      GAUGE("edgelambda_storage_raw_oldest_timestamp_seconds",
            "Event time of the oldest raw event (epoch seconds).")),
    F("raw_bytes", SK_I64, log_used_bytes,
      GAUGE("edgelambda_storage_raw_bytes", "master.db pages in use.")),
    F("raw_aged_events", SK_U64, aged_events,
      COUNTER("edgelambda_storage_raw_aged_events_total",
              "Raw events removed for being older than storage.max_age_s.")),
    F("journal_bytes", SK_U64, journal_bytes,
      GAUGE("edgelambda_storage_journal_bytes", "Journal records not committed yet.")),
    FW("views_bytes", SK_I64, batch.tiers.used_bytes, tiers,
       GAUGE("edgelambda_storage_views_bytes", "views.db pages in use.")),
    VIEW_TIER("1m", 0),
    VIEW_TIER("1h", 1),
    VIEW_TIER("1d", 2),
    FW("views_dropped_rows", SK_I64, batch.dropped_rows, tiers,
       COUNTER("edgelambda_storage_views_dropped_rows_total",
               "Batch view rows removed by the retention ladder since start.")),
};
static const struct status_field speed_fields[] = {
    F("series", SK_U64, series, GAUGE("edgelambda_speed_series", "Series known.")),
    F("memory_bytes", SK_U64, speed_memory_bytes,
      GAUGE("edgelambda_speed_memory_bytes", "Memory of the speed layer's rings.")),
};
static const struct status_field query_fields[] = {
    F("received", SK_U64, queries.received,
      COUNTER("edgelambda_query_requests_total", "Query and command requests received.")),
    F("answered", SK_U64, queries.answered,
      COUNTER("edgelambda_query_answered_total", "Requests answered successfully.")),
    FC("errors", queries.errors, error_name, 0, RQ_ERR_COUNT,
       COUNTERS("edgelambda_query_errors_total", "code", "Error answers, by error code.")),
    FC("rejected", queries.rejected, problem_name, MQTT_TOPIC_NONE, MQTT_TOPIC_COUNT,
       COUNTERS("edgelambda_query_rejected_total", "reason",
                "Requests not answered: no usable reply topic, by reason.")),
    F("unsent", SK_U64, queries.unsent,
      COUNTER("edgelambda_query_unsent_total", "Replies that could not be sent.")),
    F("busy_at_intake", SK_U64, queries.busy_at_intake,
      COUNTER("edgelambda_query_busy_at_intake_total",
              "Requests answered busy at once (the queue was full).")),
    F("busy_unsent", SK_U64, queries.busy_unsent,
      COUNTER("edgelambda_query_busy_unsent_total", "Busy replies that could not be sent.")),
    F("slow", SK_U64, queries.slow,
      COUNTER("edgelambda_query_slow_total", "Answers that took longer than 100 ms.")),
    F("quick", SK_U64, queries.quick,
      COUNTER("edgelambda_query_quick_total",
              "Queries answered on the quick lane (the control thread, no hand-off).")),
    F("quick_declined", SK_U64, queries.quick_declined,
      COUNTER("edgelambda_query_quick_declined_total",
              "Queries the quick lane began and handed to the serving thread.")),
    F("memory_bytes", SK_U64, queries.memory_bytes,
      GAUGE("edgelambda_query_memory_bytes", "Working memory of the serving thread.")),
};
static const struct status_field continuous_fields[] = {
    F("queries", SK_U64, continuous.queries,
      GAUGE("edgelambda_continuous_queries", "Continuous queries configured.")),
    F("watches", SK_U64, continuous.watches,
      GAUGE("edgelambda_continuous_watches", "Watches ({\"op\":\"watch\"}) active.")),
    F("published", SK_U64, continuous.published,
      COUNTER("edgelambda_continuous_published_total",
              "Continuous-query and watch messages published.")),
    F("corrections", SK_U64, continuous.corrections,
      COUNTER("edgelambda_continuous_corrections_total",
              "Published messages that corrected a bucket (late data).")),
    F("partials", SK_U64, continuous.partials,
      COUNTER("edgelambda_continuous_partials_total",
              "Published messages of open buckets (watches with \"open\").")),
    F("dropped", SK_U64, continuous.dropped,
      COUNTER("edgelambda_continuous_dropped_total",
              "Messages dropped over continuous.max_msgs_per_s.")),
    F("unsent", SK_U64, continuous.unsent,
      COUNTER("edgelambda_continuous_unsent_total",
              "Messages not sent: not connected, or a topic that may not be used.")),
    F("errors", SK_U64, continuous.errors,
      COUNTER("edgelambda_continuous_errors_total", "Buckets whose answer was an error.")),
    F("too_late", SK_U64, continuous.too_late,
      COUNTER("edgelambda_continuous_too_late_total",
              "Events too late (past max_lateness) to correct a published bucket.")),
    F("cells_full", SK_U64, continuous.cells_full,
      COUNTER("edgelambda_continuous_cells_full_total",
              "Events of new buckets dropped over continuous.max_cells.")),
    F("tail_seq", SK_I64, continuous.tail_seq,
      GAUGE("edgelambda_continuous_tail_seq", "Sequence the continuous queries have read to.")),
};
static const struct status_field batch_fields[] = {
    F("watermark_seq", SK_I64, batch.watermark_seq,
      GAUGE("edgelambda_batch_watermark_seq", "Highest sequence the batch views cover.")),
    F("last_run", SK_TIME, batch.last_run_wall_ms,
      GAUGE("edgelambda_batch_last_run_timestamp_seconds",
            "When the last batch run ended (epoch seconds); absent before the first.")),
    F("running", SK_BOOL, batch.running,
      GAUGE("edgelambda_batch_running", "1 while a batch run is going on.")),
    F("runs", SK_I64, batch.runs, COUNTER("edgelambda_batch_runs_total", "Batch runs finished.")),
    F("failures", SK_I64, batch.failures,
      COUNTER("edgelambda_batch_failures_total", "Batch runs that failed.")),
    FW("last_trigger", SK_TEXT, batch.last_trigger, ran, NO_METRIC),
    FW("last_full", SK_BOOL, batch.last.full, ran,
       GAUGE("edgelambda_batch_last_full", "1 if the last run rebuilt the views in full.")),
    FW("last_events", SK_U64, batch.last.events, ran,
       GAUGE("edgelambda_batch_last_events", "Events the last run read.")),
    FW("last_rows", SK_U64, batch.last.groups, ran,
       GAUGE("edgelambda_batch_last_rows", "View rows the last run wrote.")),
    FW("last_seconds", SK_DBL, batch_last_seconds, ran,
       GAUGE("edgelambda_batch_last_duration_seconds", "Wall time of the last run.")),
    FW("last_cpu_seconds", SK_DBL, batch.last.cpu_s, ran,
       GAUGE("edgelambda_batch_last_cpu_seconds", "CPU time of the last run.")),
    F("error", SK_TEXT, batch.last_error,
      SET("edgelambda_batch_error", "1 while the last batch run failed (status batch.error).")),
};
static const struct status_field sync_fields[] = {
    F("enabled", SK_BOOL, sync.enabled,
      GAUGE("edgelambda_sync_enabled", "1 if sync upstream is configured.")),
    FW("acked_seq", SK_I64, sync.acked_seq, syncing,
       GAUGE("edgelambda_sync_acked_seq", "Every event up to this sequence is acknowledged.")),
    FW("backlog_events", SK_I64, sync.backlog_events, syncing,
       GAUGE("edgelambda_sync_backlog_events", "Events not acknowledged upstream yet.")),
    FW("backlog_bytes", SK_I64, sync.backlog_bytes, syncing,
       GAUGE("edgelambda_sync_backlog_bytes", "Estimated bytes not acknowledged upstream yet.")),
    FW("oldest_unsent_age_s", SK_I64, sync.oldest_unsent_age_s, syncing,
       GAUGE("edgelambda_sync_oldest_unsent_age_seconds",
             "Age of the oldest event not acknowledged upstream; -1: none.")),
    FW("rate_per_s", SK_DBL, sync.rate_per_s, syncing,
       GAUGE("edgelambda_sync_rate_per_second", "Events acknowledged upstream per second.")),
    FW("last_success", SK_TIME, sync.last_success_ms, syncing,
       GAUGE("edgelambda_sync_last_success_timestamp_seconds",
             "When the upstream last acknowledged a batch (epoch seconds).")),
    FW("last_error", SK_TEXT, sync.last_error, syncing,
       SET("edgelambda_sync_error", "1 while status sync.last_error is set.")),
    FW("parked_batches", SK_I64, sync.parked_batches, syncing,
       GAUGE("edgelambda_sync_parked_batches", "Batches the upstream refused (kept, parked).")),
    FW("parked_events", SK_I64, sync.parked_events, syncing,
       GAUGE("edgelambda_sync_parked_events", "Events in parked batches.")),
    FW("cursor_seq", SK_I64, sync.cursor_seq, syncing,
       GAUGE("edgelambda_sync_cursor_seq", "Shipping cursor: acknowledged or parked up to here.")),
    FW("events_sent", SK_I64, sync.events_sent, syncing,
       COUNTER("edgelambda_sync_events_sent_total", "Events acknowledged upstream.")),
    FW("wire_bytes", SK_I64, sync.wire_bytes, syncing,
       COUNTER("edgelambda_sync_wire_bytes_total",
               "Request body bytes of acknowledged batches (after compression).")),
    FW("batches_sent", SK_I64, sync.batches_sent, syncing,
       COUNTER("edgelambda_sync_batches_sent_total", "Batches acknowledged upstream.")),
    FW("retries", SK_I64, sync.retries, syncing,
       COUNTER("edgelambda_sync_retries_total", "Upstream requests retried.")),
    FW("live_from_seq", SK_I64, sync.live_from_seq, syncing,
       GAUGE("edgelambda_sync_live_from_seq",
             "Start of the live lane while a backlog drains; 0 = one lane.")),
    FW("lane_live_events", SK_I64, sync.lane_live_events, syncing,
       GAUGE("edgelambda_sync_lane_live_events", "Events the live lane has not shipped yet.")),
    FW("lane_backlog_events", SK_I64, sync.lane_backlog_events, syncing,
       GAUGE("edgelambda_sync_lane_backlog_events",
             "Events the backlog lane has not shipped yet (all of them without a live lane).")),
    FW("sent_bytes", SK_I64, sync.sent_bytes, syncing,
       COUNTER("edgelambda_sync_sent_bytes_total",
               "Bytes of every upstream request, retries included (body + header estimate).")),
    FW("rate_limited_ms", SK_I64, sync.rate_limited_ms, syncing,
       COUNTER_MS("edgelambda_sync_rate_limited_seconds_total",
                  "Time upstream requests waited for sync.max_kbps.")),
};

#define N(t) (sizeof(t) / sizeof((t)[0]))

static void write_counts(struct jw *w, const struct status_field *f, const void *at)
{
    const uint64_t *v = at;
    jw_obj_begin(w);
    for (unsigned i = f->first; i < f->count; i++) {
        jw_key(w, f->names(i));
        jw_uint(w, v[i]);
    }
    jw_obj_end(w);
}

static void write_value(struct jw *w, const struct status_field *f, const void *at)
{
    char t[40];
    switch (f->kind) {
    case SK_I64: jw_int(w, *(const int64_t *)at); break;
    case SK_U64: jw_uint(w, *(const uint64_t *)at); break;
    case SK_DBL: jw_double(w, *(const double *)at); break;
    case SK_BOOL: jw_bool(w, *(const bool *)at); break;
    case SK_STR: {
        const char *v = *(const char *const *)at;
        if (v)
            jw_str(w, v);
        else
            jw_null(w);
        break;
    }
    case SK_TEXT:
        if (((const char *)at)[0])
            jw_str(w, at);
        else
            jw_null(w);
        break;
    case SK_TIME: {
        int64_t ms = *(const int64_t *)at;
        if (ms > 0)
            jw_str(w, plat_clock_format_rfc3339(ms, t, sizeof t));
        else
            jw_null(w);
        break;
    }
    case SK_I64_KNOWN: {
        int64_t v = *(const int64_t *)at;
        if (v >= 0)
            jw_int(w, v);
        else
            jw_null(w);
        break;
    }
    case SK_COUNTS: write_counts(w, f, at); break;
    }
}

static void write_fields(struct jw *w, const struct status_snapshot *s,
                         const struct status_field *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (f[i].when && !f[i].when(s))
            continue;
        jw_key(w, f[i].key);
        write_value(w, &f[i], (const char *)s + f[i].off);
    }
}

static void write_section(struct jw *w, const struct status_snapshot *s, const char *key,
                          const struct status_field *f, size_t n)
{
    jw_key(w, key);
    jw_obj_begin(w);
    write_fields(w, s, f, n);
    jw_obj_end(w);
}

static bool reloaded(const struct status_snapshot *s)
{
    return s->reloads > 0;
}
static const struct status_field reload_fields[] = {
    F("count", SK_U64, reloads,
      COUNTER("edgelambda_reload_total", "Reloads of the configuration (SIGHUP).")),
    F("failures", SK_U64, reload_failures,
      COUNTER("edgelambda_reload_failures_total",
              "Reloads that did not load, or left a live key unapplied.")),
    FW("last", SK_TIME, reload_last_ms, reloaded,
       GAUGE("edgelambda_reload_last_timestamp_seconds", "When the last reload happened.")),
    FW("result", SK_TEXT, reload_result, reloaded, NO_METRIC),
};

const struct status_section status_sections[] = {
    {NULL, top, N(top), NULL},
    {"clock", clock_fields, N(clock_fields), NULL},
    {"mqtt", mqtt_fields, N(mqtt_fields), NULL},
    {"ingest", ingest_fields, N(ingest_fields), NULL},
    {"log", log_fields, N(log_fields), NULL},
    {"storage", storage_fields, N(storage_fields), NULL},
    {"speed", speed_fields, N(speed_fields), NULL},
    {"queries", query_fields, N(query_fields), serving},
    {"continuous", continuous_fields, N(continuous_fields), serving},
    {"batch", batch_fields, N(batch_fields), NULL},
    {"sync", sync_fields, N(sync_fields), NULL},
    {"reload", reload_fields, N(reload_fields), NULL},
};
const size_t status_n_sections = N(status_sections);

size_t status_format(const struct status_snapshot *s, char *buf, size_t len)
{
    struct jw w;
    jw_init(&w, buf, len);
    jw_obj_begin(&w);
    for (size_t i = 0; i < status_n_sections; i++) {
        const struct status_section *sec = &status_sections[i];
        if (sec->when && !sec->when(s))
            continue;
        if (sec->key)
            write_section(&w, s, sec->key, sec->fields, sec->n);
        else
            write_fields(&w, s, sec->fields, sec->n);
    }
    jw_obj_end(&w);
    return jw_ok(&w) ? jw_len(&w) : 0;
}

void status_derive(struct status_snapshot *s)
{
    s->state = "online";
    s->version = EL_VERSION;
    s->clock_source = plat_clock_sync_source();
    s->clock_waiting = "the system clock is not synchronised: readings without their own "
                       "timestamp are served provisionally at the board's clock; batch views and "
                       "sync wait for them until NTP synchronises the clock or clock.synced = yes "
                       "declares it good";
    s->dead_letters = 0;
    for (unsigned r = 1; r < INGEST_REASON_COUNT; r++)
        s->dead_letters += s->rejected[r];
    s->batch_last_seconds = (double)s->batch.last.wall_ms / 1000.0;
}
