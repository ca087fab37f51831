/*
 * batch — worker thread and idle-window scheduler (design in batch.h).
 *
 * Ownership: struct batch owns the worker thread and its views writer
 * connection (opened on the worker thread). The run record is shared under
 * `mu`; `requested`, `running` and `watermark` are atomics.
 */
#include "batch.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "plat_clock.h"
#include "plat_idle.h"
#include "plat_log.h"

enum { REQ_NONE = 0, REQ_INCREMENTAL, REQ_FULL };

struct batch {
    const struct el_config *cfg;
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_int requested; /* REQ_* */
    atomic_int running;
    atomic_int stop;
    atomic_int cancel;
    _Atomic int64_t watermark;
    struct batch_status st; /* under mu */
    char pending_trigger[16];
    long fault_pause_ms;

    /* core thread: scheduling */
    struct plat_idle idle;
    int64_t idle_since_ms;      /* 0: not idle */
    int64_t last_run_end_ms;    /* monotonic */
    int64_t schedule_every_ms;  /* 0: none */
    int schedule_minute_of_day; /* -1: none */
    int64_t last_schedule_ms;
    int64_t last_daily_day;
};

static void lower_priority(void)
{
    struct sched_param sp = {0};
    /* SCHED_IDLE: runs only when nothing else wants the CPU. */
    if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp) != 0 &&
        setpriority(PRIO_PROCESS, (id_t)gettid(), 19) != 0)
        log_warn("batch: cannot lower the worker's priority");
}

/* Between chunks of a run. Fault injection for the crash tests: with
 * EDGELAMBDA_FAULT_RECOMPUTE_PAUSE_MS set, each chunk boundary pauses that
 * long, so a test can SIGKILL the daemon in the middle of a run. */
static void worker_yield(void *ctx)
{
    const struct batch *b = ctx;
    if (b->fault_pause_ms > 0) {
        struct timespec ts = {b->fault_pause_ms / 1000, (b->fault_pause_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    sched_yield();
}

static void run_once(struct batch *b, struct views *v, bool full, const char *trigger)
{
    struct views_run run;
    atomic_store(&b->running, 1);
    atomic_store(&b->cancel, 0);
    el_status rc = views_recompute(v, b->cfg->storage.dir, full, &b->cancel, worker_yield, b, &run);
    if (rc == EL_OK && run.skipped) {
        log_debug("batch: %s run skipped: no event beyond sequence %lld", trigger,
                  (long long)run.previous_seq);
        atomic_store(&b->running, 0);
        return;
    }
    pthread_mutex_lock(&b->mu);
    snprintf(b->st.last_trigger, sizeof b->st.last_trigger, "%s", trigger);
    if (rc == EL_OK) {
        b->st.runs++;
        b->st.last = run;
        b->st.last_run_wall_ms = plat_clock_wall_ms();
        b->st.last_error[0] = '\0';
        atomic_store(&b->watermark, views_watermark(v));
    } else {
        b->st.failures++;
        snprintf(b->st.last_error, sizeof b->st.last_error, "%s recompute failed: %s",
                 full ? "full" : "incremental", el_status_str(rc));
    }
    pthread_mutex_unlock(&b->mu);
    if (rc == EL_OK)
        log_info("batch: %s recompute (%s) covered sequences %lld..%lld: %llu events, %llu view "
                 "rows, %lld ms, %.2f CPU s",
                 full ? "full" : "incremental", trigger, (long long)run.previous_seq,
                 (long long)run.snapshot_seq, (unsigned long long)run.events,
                 (unsigned long long)run.groups, (long long)run.wall_ms, run.cpu_s);
    else
        log_error("batch: %s recompute failed (%s); the previous views keep serving",
                  full ? "full" : "incremental", el_status_str(rc));
    atomic_store(&b->running, 0);
}

static void *worker(void *arg)
{
    struct batch *b = arg;
    struct views *v = NULL;
    lower_priority();
    if (views_open(b->cfg->storage.dir, &v) != EL_OK) {
        log_error("batch: cannot open views.db; the batch layer is off");
        return NULL;
    }
    atomic_store(&b->watermark, views_watermark(v));
    pthread_mutex_lock(&b->mu);
    b->st.watermark_seq = atomic_load(&b->watermark);
    for (;;) {
        while (!atomic_load(&b->stop) && atomic_load(&b->requested) == REQ_NONE)
            pthread_cond_wait(&b->cv, &b->mu);
        if (atomic_load(&b->stop))
            break;
        int req = atomic_exchange(&b->requested, REQ_NONE);
        char trigger[16];
        snprintf(trigger, sizeof trigger, "%s", b->pending_trigger);
        pthread_mutex_unlock(&b->mu);
        run_once(b, v, req == REQ_FULL, trigger);
        pthread_mutex_lock(&b->mu);
    }
    pthread_mutex_unlock(&b->mu);
    views_close(v);
    return NULL;
}

static void parse_schedule(struct batch *b)
{
    const char *s = b->cfg->batch.schedule;
    int hh, mm;
    char unit;
    long n;
    b->schedule_every_ms = 0;
    b->schedule_minute_of_day = -1;
    if (sscanf(s, "every %ld%c", &n, &unit) == 2 && n > 0) {
        int64_t mult = unit == 's' ? 1000 : unit == 'm' ? 60000 : unit == 'h' ? 3600000 : 86400000;
        b->schedule_every_ms = n * mult;
    } else if (sscanf(s, "%d:%d", &hh, &mm) == 2) {
        b->schedule_minute_of_day = hh * 60 + mm;
    }
}

el_status batch_new(const struct el_config *cfg, struct batch **out)
{
    struct batch *b = calloc(1, sizeof *b);
    *out = NULL;
    if (!b)
        return EL_NOMEM;
    b->cfg = cfg;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    parse_schedule(b);
    const char *pause = getenv("EDGELAMBDA_FAULT_RECOMPUTE_PAUSE_MS");
    if (pause) {
        b->fault_pause_ms = strtol(pause, NULL, 10);
        log_warn("fault injection: recompute pauses %ld ms between chunks", b->fault_pause_ms);
    }
    b->last_run_end_ms = plat_clock_mono_ms();
    b->last_schedule_ms = plat_clock_mono_ms();
    b->last_daily_day = -1;
    if (pthread_create(&b->thread, NULL, worker, b) != 0) {
        batch_free(b);
        return EL_IO;
    }
    b->started = true;
    *out = b;
    return EL_OK;
}

void batch_free(struct batch *b)
{
    if (!b)
        return;
    if (b->started) {
        pthread_mutex_lock(&b->mu);
        atomic_store(&b->stop, 1);
        atomic_store(&b->cancel, 1); /* a running recompute rolls back */
        pthread_cond_broadcast(&b->cv);
        pthread_mutex_unlock(&b->mu);
        pthread_join(b->thread, NULL);
    }
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

void batch_request(struct batch *b, bool full, const char *trigger)
{
    pthread_mutex_lock(&b->mu);
    if (!atomic_load(&b->running)) {
        int want = full ? REQ_FULL : REQ_INCREMENTAL;
        if (want > atomic_load(&b->requested)) {
            atomic_store(&b->requested, want);
            snprintf(b->pending_trigger, sizeof b->pending_trigger, "%s", trigger);
        }
        pthread_cond_signal(&b->cv);
    }
    pthread_mutex_unlock(&b->mu);
}

static bool schedule_due(struct batch *b, int64_t now)
{
    if (b->schedule_every_ms > 0 && now - b->last_schedule_ms >= b->schedule_every_ms) {
        b->last_schedule_ms = now;
        return true;
    }
    if (b->schedule_minute_of_day >= 0 && plat_clock_synced()) {
        int64_t wall = plat_clock_wall_ms();
        int64_t day = wall / 86400000;
        int minute = (int)((wall % 86400000) / 60000);
        if (minute == b->schedule_minute_of_day && day != b->last_daily_day) {
            b->last_daily_day = day;
            return true;
        }
    }
    return false;
}

void batch_tick(struct batch *b, double ingest_rate, int64_t committed_seq)
{
    int64_t now = plat_clock_mono_ms();
    double busy = plat_idle_busy_pct(&b->idle);
    bool running = atomic_load(&b->running) != 0;
    if (running)
        b->last_run_end_ms = now;
    bool uncovered = committed_seq > atomic_load(&b->watermark);
    bool idle = busy >= 0 && busy < b->cfg->batch.idle_cpu_pct &&
                ingest_rate < b->cfg->batch.idle_ingest_rate;
    if (!idle)
        b->idle_since_ms = 0;
    else if (b->idle_since_ms == 0)
        b->idle_since_ms = now;
    if (running || !uncovered)
        return;
    if (schedule_due(b, now))
        batch_request(b, false, "schedule");
    else if (b->idle_since_ms != 0 && now - b->idle_since_ms >= b->cfg->batch.idle_for_s * 1000LL) {
        batch_request(b, false, "idle");
        b->idle_since_ms = now; /* the next idle run needs another idle_for_s */
    } else if (now - b->last_run_end_ms >= b->cfg->batch.max_lag_s * 1000LL) {
        batch_request(b, false, "max_lag");
        b->last_run_end_ms = now; /* at most one lag run per max_lag_s, whatever it finds */
    }
}

void batch_get_status(struct batch *b, struct batch_status *out)
{
    pthread_mutex_lock(&b->mu);
    *out = b->st;
    pthread_mutex_unlock(&b->mu);
    out->running = atomic_load(&b->running) != 0;
    out->watermark_seq = atomic_load(&b->watermark);
}

bool batch_running(struct batch *b)
{
    return atomic_load(&b->running) != 0;
}

int64_t batch_watermark(struct batch *b)
{
    return atomic_load(&b->watermark);
}
