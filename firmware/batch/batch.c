/*
 * batch — the worker thread, and the core's side of the scheduler (design in
 * batch.h; the decision itself is batch_sched.c).
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

#include "batch_sched.h"
#include "plat_clock.h"
#include "plat_idle.h"
#include "plat_log.h"
#include "retention.h"

enum { REQ_NONE = 0, REQ_INCREMENTAL, REQ_FULL };

struct batch {
    struct batch_opts o; /* borrowed strings */
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
    _Atomic int64_t keep_ms[VIEWS_N_RES];
    atomic_int drop_oldest;
    atomic_int shed; /* the core asks for a pressure step */
    char pending_trigger[16];
    long fault_pause_ms;

    /* core thread: scheduling */
    struct plat_idle idle;
    struct batch_sched sched;
};

/*
 * SCHED_BATCH at nice 19: about 1.5% of a core while anything else wants it,
 * all of it when nothing does. Not SCHED_IDLE: on a board that is never idle
 * (a busy process per core, measured) an idle-class worker never finished a
 * run, so the views stopped and a run forced by batch.max_lag_s never came.
 */
static void lower_priority(void)
{
    struct sched_param sp = {0};
    bool ok = pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp) == 0;
    if (setpriority(PRIO_PROCESS, (id_t)gettid(), 19) != 0 && !ok)
        log_warn("batch: cannot lower the worker's priority");
}

/* Between chunks of a run. Fault injection for the crash tests: with
 * EDGELAMBDA_FAULT_RECOMPUTE_PAUSE_MS set, each chunk boundary pauses that
 * long, so a test can SIGKILL the daemon in the middle of a run. */
static void worker_yield(void *ctx)
{
    const struct batch *b = ctx;
    if (b->fault_pause_ms > 0)
        plat_sleep_ms(b->fault_pause_ms);
    sched_yield();
}

static void run_once(struct batch *b, struct views *v, bool full, const char *trigger)
{
    struct views_run run;
    atomic_store(&b->running, 1);
    atomic_store(&b->cancel, 0);
    el_status rc = views_recompute(v, b->o.dir, full, &b->cancel, worker_yield, b, &run);
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

/* Ladder steps per pass: a pass ends early for a requested run. */
#define LADDER_STEPS 16

static void publish_tiers(struct batch *b, struct views *v)
{
    struct views_tiers t;
    if (views_tiers(v, &t) != EL_OK)
        return;
    pthread_mutex_lock(&b->mu);
    b->st.tiers = t;
    b->st.tiers_known = true;
    pthread_mutex_unlock(&b->mu);
}

/* A ladder step gives way to a requested run and to shutdown. */
static bool ladder_interrupted(void *ctx)
{
    struct batch *b = ctx;
    return atomic_load(&b->stop) || atomic_load(&b->requested) != REQ_NONE;
}

/* Applies the ladder (keep durations, and one pressure step when the core
 * asked) a bounded step at a time, from the tiers last published. */
static void ladder_pass(struct batch *b, struct views *v)
{
    bool pressure = atomic_exchange(&b->shed, 0) != 0;
    if (!plat_clock_synced())
        return; /* bucket times are compared with the wall clock: only a true one */
    for (int i = 0; i < LADDER_STEPS && !ladder_interrupted(b); i++) {
        struct ladder_tier lt[RETENTION_LADDER_N];
        struct ladder_step step;
        pthread_mutex_lock(&b->mu);
        for (int k = 0; k < RETENTION_LADDER_N; k++)
            lt[k] = (struct ladder_tier){views_res_ms[k], atomic_load(&b->keep_ms[k]),
                                         b->st.tiers.tier[k].rows, b->st.tiers.tier[k].oldest,
                                         b->st.tiers.tier[k].horizon};
        pthread_mutex_unlock(&b->mu);
        if (!retention_ladder_next(lt, plat_clock_wall_ms(), pressure,
                                   atomic_load(&b->drop_oldest) != 0, &step))
            break;
        int64_t deleted = 0;
        el_status rc = views_drop(v, step.tier, step.before, ladder_interrupted, b, &deleted);
        pthread_mutex_lock(&b->mu);
        b->st.dropped_rows += deleted;
        pthread_mutex_unlock(&b->mu);
        log_info("views retention: dropped %lld %s bucket(s) before %lld (%s)%s%s",
                 (long long)deleted,
                 step.tier == 0   ? "1 min"
                 : step.tier == 1 ? "1 h"
                                  : "1 d",
                 (long long)step.before, step.pressure ? "over storage.max_bytes" : "keep duration",
                 rc == EL_OK ? "" : ": ", rc == EL_OK ? "" : el_status_str(rc));
        publish_tiers(b, v);
        if (rc != EL_OK || step.pressure)
            break; /* one pressure step per request: the core looks again */
    }
}

/* The worker tries views.db again after 1 s, 2 s, 4 s, ... up to this. */
#define REOPEN_MAX_MS 60000

/*
 * views.db, opened on the worker thread. A failure (a full or read-only
 * disk, a file in the way) does not switch the batch layer off for the
 * daemon's life: the worker says so once and tries again, backing off to
 * REOPEN_MAX_MS, until it succeeds or the daemon stops (false).
 */
static bool open_views(struct batch *b, struct views **v)
{
    int64_t pause_ms = 1000;
    for (int tries = 0;; tries++) {
        el_status rc = views_open(b->o.dir, v);
        pthread_mutex_lock(&b->mu);
        if (rc == EL_OK)
            b->st.last_error[0] = '\0';
        else
            snprintf(b->st.last_error, sizeof b->st.last_error, "cannot open views.db: %s",
                     el_status_str(rc));
        pthread_mutex_unlock(&b->mu);
        if (rc == EL_OK) {
            if (tries > 0)
                log_info("batch: views.db opened; the batch layer is on");
            return true;
        }
        if (tries == 0)
            log_error("batch: cannot open views.db (%s); the batch layer is off until it can"
                      " (trying again, at least every %d s)",
                      el_status_str(rc), REOPEN_MAX_MS / 1000);
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += pause_ms / 1000;
        pause_ms = plat_backoff_next(pause_ms, REOPEN_MAX_MS);
        pthread_mutex_lock(&b->mu);
        while (!atomic_load(&b->stop))
            if (pthread_cond_timedwait(&b->cv, &b->mu, &until) != 0)
                break; /* time to try again */
        bool stop = atomic_load(&b->stop);
        pthread_mutex_unlock(&b->mu);
        if (stop)
            return false;
    }
}

static void *worker(void *arg)
{
    struct batch *b = arg;
    struct views *v = NULL;
    lower_priority();
    if (!open_views(b, &v))
        return NULL; /* stopped before views.db could be opened */
    atomic_store(&b->watermark, views_watermark(v));
    publish_tiers(b, v);
    pthread_mutex_lock(&b->mu);
    b->st.watermark_seq = atomic_load(&b->watermark);
    for (;;) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += BATCH_LADDER_PERIOD_MS / 1000;
        while (!atomic_load(&b->stop) && atomic_load(&b->requested) == REQ_NONE &&
               !atomic_load(&b->shed))
            if (pthread_cond_timedwait(&b->cv, &b->mu, &until) != 0)
                break; /* the ladder's period */
        if (atomic_load(&b->stop))
            break;
        int req = atomic_exchange(&b->requested, REQ_NONE);
        char trigger[16];
        snprintf(trigger, sizeof trigger, "%s", b->pending_trigger);
        pthread_mutex_unlock(&b->mu);
        if (req != REQ_NONE) {
            run_once(b, v, req == REQ_FULL, trigger);
            publish_tiers(b, v);
        }
        ladder_pass(b, v);
        pthread_mutex_lock(&b->mu);
    }
    pthread_mutex_unlock(&b->mu);
    views_close(v);
    return NULL;
}

el_status batch_new(const struct batch_opts *opts, struct batch **out)
{
    struct batch *b = calloc(1, sizeof *b);
    *out = NULL;
    if (!b)
        return EL_NOMEM;
    b->o = *opts;
    if (batch_sched_init(&b->sched, opts->schedule, opts->idle_cpu_pct, opts->idle_ingest_rate,
                         opts->idle_for_s, opts->max_lag_s, plat_clock_mono_ms()) != EL_OK) {
        free(b);
        return EL_INVAL;
    }
    pthread_mutex_init(&b->mu, NULL);
    /* The ladder's period is monotonic: a wall-clock step must not stretch it. */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cv, &ca);
    pthread_condattr_destroy(&ca);
    const char *pause = getenv("EDGELAMBDA_FAULT_RECOMPUTE_PAUSE_MS");
    if (pause) {
        b->fault_pause_ms = strtol(pause, NULL, 10);
        log_warn("fault injection: recompute pauses %ld ms between chunks", b->fault_pause_ms);
    }
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
        /* Out of the batch class for its last steps (the cancel makes a
         * running recompute roll back at its next check). */
        struct sched_param sp = {0};
        (void)pthread_setschedparam(b->thread, SCHED_OTHER, &sp);
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

el_status batch_configure(struct batch *b, const struct batch_opts *o)
{
    return batch_sched_configure(&b->sched, o->schedule, o->idle_cpu_pct, o->idle_ingest_rate,
                                 o->idle_for_s, o->max_lag_s);
}

void batch_tick(struct batch *b, double ingest_rate, int64_t committed_seq)
{
    struct batch_sched_input in = {
        .now_mono_ms = plat_clock_mono_ms(),
        .wall_ms = plat_clock_wall_ms(),
        .clock_synced = plat_clock_synced(),
        .busy_pct = plat_idle_busy_pct(&b->idle),
        .ingest_rate = ingest_rate,
        .running = atomic_load(&b->running) != 0,
        .uncovered = committed_seq > atomic_load(&b->watermark),
    };
    const char *trigger = batch_sched_decide(&b->sched, &in);
    if (trigger)
        batch_request(b, false, trigger);
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

void batch_set_ladder(struct batch *b, const int64_t keep_ms[VIEWS_N_RES], bool drop_oldest)
{
    for (int k = 0; k < VIEWS_N_RES; k++)
        atomic_store(&b->keep_ms[k], keep_ms[k]);
    atomic_store(&b->drop_oldest, drop_oldest ? 1 : 0);
}

void batch_request_shed(struct batch *b)
{
    pthread_mutex_lock(&b->mu);
    atomic_store(&b->shed, 1);
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
}
