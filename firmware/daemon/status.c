/*
 * status — formats the status document (see status.h), table-driven: each
 * section of the document is a table of (key, kind, where in the snapshot,
 * when to show it), so adding a field is one line and the document's shape
 * is readable at a glance.
 */
#include "status.h"

#include <stddef.h>

#include "plat_clock.h"
#include "plat_jsonw.h"

enum kind {
    K_I64,       /* int64_t */
    K_U64,       /* uint64_t */
    K_DBL,       /* double */
    K_BOOL,      /* bool */
    K_STR,       /* const char *, NULL: null */
    K_TEXT,      /* char[], "": null */
    K_TIME,      /* int64_t epoch ms, <= 0: null, else RFC 3339 */
    K_I64_KNOWN, /* int64_t, < 0: null (not known) */
    K_COUNTS,    /* uint64_t[]: an object of counters named by the field's names() */
};

struct field {
    const char *key;
    enum kind kind;
    size_t off;
    bool (*when)(const struct status_snapshot *s); /* NULL: always */
    const char *(*names)(unsigned i);              /* K_COUNTS */
    unsigned first, count;                         /* K_COUNTS: indexes first..count-1 */
};

#define F(key, kind, member)                                                                       \
    {                                                                                              \
        key, kind, offsetof(struct status_snapshot, member), NULL, NULL, 0, 0                      \
    }
#define FW(key, kind, member, when)                                                                \
    {                                                                                              \
        key, kind, offsetof(struct status_snapshot, member), when, NULL, 0, 0                      \
    }
#define FC(key, member, names, first, count)                                                       \
    {                                                                                              \
        key, K_COUNTS, offsetof(struct status_snapshot, member), NULL, names, first, count         \
    }

static bool unsynced(const struct status_snapshot *s)
{
    return !s->clock_synced;
}
static bool bounded(const struct status_snapshot *s)
{
    return s->log_max_bytes > 0;
}
static bool ran(const struct status_snapshot *s)
{
    return s->batch.runs > 0;
}
static bool syncing(const struct status_snapshot *s)
{
    return s->sync.enabled;
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

static const struct field top[] = {
    F("state", K_STR, state),
    F("version", K_STR, version),
    F("uptime_s", K_I64, uptime_s),
    F("clock_synced", K_BOOL, clock_synced),
};
static const struct field clock_fields[] = {
    F("unanchored_events", K_I64, clock_unanchored),
    F("anchored_events", K_U64, clock_anchored),
    F("steps", K_U64, clock_steps),
    F("source", K_STR, clock_source),
    FW("waiting", K_STR, clock_waiting, unsynced),
};
static const struct field mqtt_fields[] = {
    F("connected", K_BOOL, mqtt_connected),
    F("connects", K_U64, mqtt_connects),
    F("tcp_nodelay", K_BOOL, mqtt_tcp_nodelay),
    F("broker_dropped", K_I64_KNOWN, broker_dropped),
    F("control_connected", K_BOOL, control_connected),
    F("control_connects", K_U64, control_connects),
};
static const struct field ingest_fields[] = {
    F("held", K_BOOL, ingest_held),
    F("received", K_U64, received),
    F("accepted", K_U64, accepted),
    FC("rejected", rejected, reason_name, 1, INGEST_REASON_COUNT),
    F("dead_letters", K_U64, dead_letters),
    F("duplicates", K_U64, duplicates),
    F("rate_per_s", K_DBL, rate_per_s),
};
static const struct field log_fields[] = {
    F("seq", K_I64, log_seq),
    F("bytes", K_I64, log_bytes),
    F("journal_bytes", K_U64, journal_bytes),
    F("commit_ms", K_I64, commit_ms),
    F("commit_ms_max", K_I64, commit_ms_max),
    F("replayed", K_U64, replayed),
    FW("used_bytes", K_I64, log_used_bytes, bounded),
    FW("max_bytes", K_I64, log_max_bytes, bounded),
    FW("full", K_BOOL, log_full_paused, bounded),
    FW("trimmed_events", K_U64, log_trimmed_events, bounded),
    FW("oldest_seq", K_I64, log_oldest_seq, bounded),
    F("error", K_STR, storage_error),
};
static const struct field speed_fields[] = {
    F("series", K_U64, series),
    F("memory_bytes", K_U64, speed_memory_bytes),
};
static const struct field query_fields[] = {
    F("received", K_U64, queries.received),
    F("answered", K_U64, queries.answered),
    FC("errors", queries.errors, error_name, 0, RQ_ERR_COUNT),
    FC("rejected", queries.rejected, problem_name, MQTT_TOPIC_NONE, MQTT_TOPIC_COUNT),
    F("unsent", K_U64, queries.unsent),
    F("busy_at_intake", K_U64, queries.busy_at_intake),
    F("busy_unsent", K_U64, queries.busy_unsent),
    F("slow", K_U64, queries.slow),
    F("memory_bytes", K_U64, queries.memory_bytes),
};
static const struct field batch_fields[] = {
    F("watermark_seq", K_I64, batch.watermark_seq),
    F("last_run", K_TIME, batch.last_run_wall_ms),
    F("running", K_BOOL, batch.running),
    F("runs", K_I64, batch.runs),
    F("failures", K_I64, batch.failures),
    FW("last_trigger", K_TEXT, batch.last_trigger, ran),
    FW("last_full", K_BOOL, batch.last.full, ran),
    FW("last_events", K_U64, batch.last.events, ran),
    FW("last_rows", K_U64, batch.last.groups, ran),
    FW("last_seconds", K_DBL, batch_last_seconds, ran),
    FW("last_cpu_seconds", K_DBL, batch.last.cpu_s, ran),
    F("error", K_TEXT, batch.last_error),
};
static const struct field sync_fields[] = {
    F("enabled", K_BOOL, sync.enabled),
    FW("acked_seq", K_I64, sync.acked_seq, syncing),
    FW("backlog_events", K_I64, sync.backlog_events, syncing),
    FW("backlog_bytes", K_I64, sync.backlog_bytes, syncing),
    FW("oldest_unsent_age_s", K_I64, sync.oldest_unsent_age_s, syncing),
    FW("rate_per_s", K_DBL, sync.rate_per_s, syncing),
    FW("last_success", K_TIME, sync.last_success_ms, syncing),
    FW("last_error", K_TEXT, sync.last_error, syncing),
    FW("parked_batches", K_I64, sync.parked_batches, syncing),
    FW("parked_events", K_I64, sync.parked_events, syncing),
    FW("cursor_seq", K_I64, sync.cursor_seq, syncing),
    FW("events_sent", K_I64, sync.events_sent, syncing),
    FW("wire_bytes", K_I64, sync.wire_bytes, syncing),
    FW("batches_sent", K_I64, sync.batches_sent, syncing),
    FW("retries", K_I64, sync.retries, syncing),
};

#define N(t) (sizeof(t) / sizeof((t)[0]))

static void write_counts(struct jw *w, const struct field *f, const void *at)
{
    const uint64_t *v = at;
    jw_obj_begin(w);
    for (unsigned i = f->first; i < f->count; i++) {
        jw_key(w, f->names(i));
        jw_uint(w, v[i]);
    }
    jw_obj_end(w);
}

static void write_value(struct jw *w, const struct field *f, const void *at)
{
    char t[40];
    switch (f->kind) {
    case K_I64: jw_int(w, *(const int64_t *)at); break;
    case K_U64: jw_uint(w, *(const uint64_t *)at); break;
    case K_DBL: jw_double(w, *(const double *)at); break;
    case K_BOOL: jw_bool(w, *(const bool *)at); break;
    case K_STR: {
        const char *v = *(const char *const *)at;
        if (v)
            jw_str(w, v);
        else
            jw_null(w);
        break;
    }
    case K_TEXT:
        if (((const char *)at)[0])
            jw_str(w, at);
        else
            jw_null(w);
        break;
    case K_TIME: {
        int64_t ms = *(const int64_t *)at;
        if (ms > 0)
            jw_str(w, plat_clock_format_rfc3339(ms, t, sizeof t));
        else
            jw_null(w);
        break;
    }
    case K_I64_KNOWN: {
        int64_t v = *(const int64_t *)at;
        if (v >= 0)
            jw_int(w, v);
        else
            jw_null(w);
        break;
    }
    case K_COUNTS: write_counts(w, f, at); break;
    }
}

static void write_fields(struct jw *w, const struct status_snapshot *s, const struct field *f,
                         size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (f[i].when && !f[i].when(s))
            continue;
        jw_key(w, f[i].key);
        write_value(w, &f[i], (const char *)s + f[i].off);
    }
}

static void write_section(struct jw *w, const struct status_snapshot *s, const char *key,
                          const struct field *f, size_t n)
{
    jw_key(w, key);
    jw_obj_begin(w);
    write_fields(w, s, f, n);
    jw_obj_end(w);
}

size_t status_format(const struct status_snapshot *s, char *buf, size_t len)
{
    struct jw w;
    jw_init(&w, buf, len);
    jw_obj_begin(&w);
    write_fields(&w, s, top, N(top));
    write_section(&w, s, "clock", clock_fields, N(clock_fields));
    write_section(&w, s, "mqtt", mqtt_fields, N(mqtt_fields));
    write_section(&w, s, "ingest", ingest_fields, N(ingest_fields));
    write_section(&w, s, "log", log_fields, N(log_fields));
    write_section(&w, s, "speed", speed_fields, N(speed_fields));
    if (s->has_queries)
        write_section(&w, s, "queries", query_fields, N(query_fields));
    write_section(&w, s, "batch", batch_fields, N(batch_fields));
    write_section(&w, s, "sync", sync_fields, N(sync_fields));
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
