/* status — formats the status document (see status.h). */
#include "status.h"

#include "plat_clock.h"
#include "plat_jsonw.h"

/* "queries": every request counted once (requests.h). */
static void format_queries(struct jw *w, const struct status_snapshot *s)
{
    const struct requests_counters *q = s->queries;
    jw_key(w, "queries");
    jw_obj_begin(w);
    jw_key(w, "received");
    jw_uint(w, atomic_load(&q->received));
    jw_key(w, "answered");
    jw_uint(w, atomic_load(&q->answered));
    jw_key(w, "errors");
    jw_obj_begin(w);
    for (int e = 0; e < RQ_ERR_COUNT; e++) {
        jw_key(w, requests_error_str((enum requests_error)e));
        jw_uint(w, atomic_load(&q->errors[e]));
    }
    jw_obj_end(w);
    jw_key(w, "rejected");
    jw_obj_begin(w);
    for (int p = QTOPIC_NONE; p < QTOPIC_COUNT; p++) {
        jw_key(w, query_topic_problem_str((enum query_topic_problem)p));
        jw_uint(w, atomic_load(&q->rejected[p]) + s->rejected_at_intake[p]);
    }
    jw_obj_end(w);
    jw_key(w, "unsent");
    jw_uint(w, atomic_load(&q->unsent) + s->replies_unsent);
    jw_key(w, "busy_at_intake");
    jw_uint(w, s->requests_busy);
    jw_key(w, "busy_unsent");
    jw_uint(w, s->requests_busy_unsent);
    jw_key(w, "slow");
    jw_uint(w, atomic_load(&q->slow));
    jw_key(w, "memory_bytes");
    jw_uint(w, s->serving_memory_bytes);
    jw_obj_end(w);
}

size_t status_format(const struct status_snapshot *s, char *buf, size_t len)
{
    struct jw w;
    uint64_t dead = 0;
    jw_init(&w, buf, len);
    jw_obj_begin(&w);
    jw_key(&w, "state");
    jw_str(&w, "online");
    jw_key(&w, "version");
    jw_str(&w, EL_VERSION);
    jw_key(&w, "uptime_s");
    jw_int(&w, s->uptime_s);
    jw_key(&w, "clock_synced");
    jw_bool(&w, s->clock_synced);
    jw_key(&w, "clock");
    jw_obj_begin(&w);
    jw_key(&w, "unanchored_events");
    jw_int(&w, s->clock_unanchored);
    jw_key(&w, "anchored_events");
    jw_uint(&w, s->clock_anchored);
    jw_key(&w, "steps");
    jw_uint(&w, s->clock_steps);
    jw_key(&w, "source");
    jw_str(&w, plat_clock_sync_source());
    if (!s->clock_synced) {
        /* Say plainly why data waits and what to do (issue: a board that
         * never synchronised its clock must not look broken). */
        jw_key(&w, "waiting");
        jw_str(&w, "the system clock is not synchronised: readings without their own timestamp "
                   "are served provisionally at the board's clock; batch views and sync wait "
                   "for them until NTP synchronises the clock or clock.synced = yes declares "
                   "it good");
    }
    jw_obj_end(&w);

    jw_key(&w, "mqtt");
    jw_obj_begin(&w);
    jw_key(&w, "connected");
    jw_bool(&w, s->mqtt_connected);
    jw_key(&w, "connects");
    jw_uint(&w, s->mqtt_connects);
    jw_key(&w, "broker_dropped");
    if (s->broker_dropped >= 0)
        jw_int(&w, s->broker_dropped);
    else
        jw_null(&w);
    jw_obj_end(&w);

    jw_key(&w, "ingest");
    jw_obj_begin(&w);
    jw_key(&w, "received");
    jw_uint(&w, s->received);
    jw_key(&w, "accepted");
    jw_uint(&w, s->accepted);
    jw_key(&w, "rejected");
    jw_obj_begin(&w);
    for (unsigned r = 1; r < INGEST_REASON_COUNT; r++) {
        jw_key(&w, ingest_reason_str(r));
        jw_uint(&w, s->rejected[r]);
        dead += s->rejected[r];
    }
    jw_obj_end(&w);
    jw_key(&w, "dead_letters");
    jw_uint(&w, dead);
    jw_key(&w, "duplicates");
    jw_uint(&w, s->duplicates);
    jw_key(&w, "rate_per_s");
    jw_double(&w, s->rate_per_s);
    jw_obj_end(&w);

    jw_key(&w, "log");
    jw_obj_begin(&w);
    jw_key(&w, "seq");
    jw_int(&w, s->log_seq);
    jw_key(&w, "bytes");
    jw_int(&w, s->log_bytes);
    jw_key(&w, "journal_bytes");
    jw_uint(&w, s->journal_bytes);
    jw_key(&w, "replayed");
    jw_uint(&w, s->replayed);
    if (s->log_max_bytes > 0) {
        jw_key(&w, "used_bytes");
        jw_int(&w, s->log_used_bytes);
        jw_key(&w, "max_bytes");
        jw_int(&w, s->log_max_bytes);
        jw_key(&w, "full");
        jw_bool(&w, s->log_full_paused);
        jw_key(&w, "trimmed_events");
        jw_uint(&w, s->log_trimmed_events);
        jw_key(&w, "oldest_seq");
        jw_int(&w, s->log_oldest_seq);
    }
    jw_key(&w, "error");
    if (s->storage_error)
        jw_str(&w, s->storage_error);
    else
        jw_null(&w);
    jw_obj_end(&w);

    jw_key(&w, "speed");
    jw_obj_begin(&w);
    jw_key(&w, "series");
    jw_uint(&w, s->series);
    jw_key(&w, "memory_bytes");
    jw_uint(&w, s->speed_memory_bytes);
    jw_obj_end(&w);

    if (s->queries)
        format_queries(&w, s);

    jw_key(&w, "batch");
    jw_obj_begin(&w);
    jw_key(&w, "watermark_seq");
    jw_int(&w, s->batch.watermark_seq);
    jw_key(&w, "last_run");
    if (s->batch.last_run_wall_ms > 0) {
        char t[40];
        jw_str(&w, plat_clock_format_rfc3339(s->batch.last_run_wall_ms, t, sizeof t));
    } else {
        jw_null(&w);
    }
    jw_key(&w, "running");
    jw_bool(&w, s->batch.running);
    jw_key(&w, "runs");
    jw_int(&w, s->batch.runs);
    jw_key(&w, "failures");
    jw_int(&w, s->batch.failures);
    if (s->batch.runs > 0) {
        jw_key(&w, "last_trigger");
        jw_str(&w, s->batch.last_trigger);
        jw_key(&w, "last_full");
        jw_bool(&w, s->batch.last.full);
        jw_key(&w, "last_events");
        jw_uint(&w, s->batch.last.events);
        jw_key(&w, "last_rows");
        jw_uint(&w, s->batch.last.groups);
        jw_key(&w, "last_seconds");
        jw_double(&w, (double)s->batch.last.wall_ms / 1000.0);
        jw_key(&w, "last_cpu_seconds");
        jw_double(&w, s->batch.last.cpu_s);
    }
    jw_key(&w, "error");
    if (s->batch.last_error[0])
        jw_str(&w, s->batch.last_error);
    else
        jw_null(&w);
    jw_obj_end(&w);

    jw_key(&w, "sync");
    jw_obj_begin(&w);
    jw_key(&w, "enabled");
    jw_bool(&w, s->sync.enabled);
    if (s->sync.enabled) {
        jw_key(&w, "acked_seq");
        jw_int(&w, s->sync.acked_seq);
        jw_key(&w, "backlog_events");
        jw_int(&w, s->sync.backlog_events);
        jw_key(&w, "backlog_bytes");
        jw_int(&w, s->sync.backlog_bytes);
        jw_key(&w, "oldest_unsent_age_s");
        jw_int(&w, s->sync.oldest_unsent_age_s);
        jw_key(&w, "rate_per_s");
        jw_double(&w, s->sync.rate_per_s);
        jw_key(&w, "last_success");
        if (s->sync.last_success_ms > 0) {
            char t[40];
            jw_str(&w, plat_clock_format_rfc3339(s->sync.last_success_ms, t, sizeof t));
        } else {
            jw_null(&w);
        }
        jw_key(&w, "last_error");
        if (s->sync.last_error[0])
            jw_str(&w, s->sync.last_error);
        else
            jw_null(&w);
        jw_key(&w, "parked_batches");
        jw_int(&w, s->sync.parked_batches);
        jw_key(&w, "parked_events");
        jw_int(&w, s->sync.parked_events);
        jw_key(&w, "cursor_seq");
        jw_int(&w, s->sync.cursor_seq);
        jw_key(&w, "events_sent");
        jw_int(&w, s->sync.events_sent);
        jw_key(&w, "wire_bytes");
        jw_int(&w, s->sync.wire_bytes);
        jw_key(&w, "batches_sent");
        jw_int(&w, s->sync.batches_sent);
        jw_key(&w, "retries");
        jw_int(&w, s->sync.retries);
    }
    jw_obj_end(&w);
    jw_obj_end(&w);
    return jw_ok(&w) ? jw_len(&w) : 0;
}
