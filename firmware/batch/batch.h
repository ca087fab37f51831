/*
 * batch — the batch layer's worker and scheduler (docs/SPEC.md §6, docs/DESIGN.md §6).
 *
 * One worker thread, at a low CPU priority (SCHED_BATCH, nice 19; batch.c),
 * with its own SQLite connections (views.h: views.db writer, master.db
 * read-only), so ingest and the group commit never wait for it. It runs
 * views_recompute when asked. The core decides when to ask, once a second
 * (batch_tick; the decision is batch_sched.h, pure and unit-tested), from:
 *   - a request ({"op":"recompute"} / `edgelambda recompute [--full]`);
 *   - idle: CPU busy < batch.idle_cpu_pct and ingest rate <
 *     batch.idle_ingest_rate, continuously for batch.idle_for_s;
 *   - the schedule (batch.schedule: "every 15m" or a daily "HH:MM" UTC);
 *   - lag: the oldest event not covered by the views is older than
 *     batch.max_lag_s (then it runs even when the board is busy).
 * A failed or cancelled run leaves the previous views serving.
 * Between runs the worker also applies the views' retention ladder
 * (batch_set_ladder: drops old buckets in bounded steps, views.h RETENTION)
 * and publishes what each resolution holds (batch_status.tiers).
 *
 * Threading: batch_new/tick/request/free on the core thread; the worker
 * publishes its state through atomics and a mutex-protected run record.
 */
#ifndef EL_BATCH_H
#define EL_BATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "el_status.h"
#include "views.h"

struct batch;

struct batch_status {
    bool running;
    int64_t watermark_seq;
    int64_t runs, failures;
    int64_t last_run_wall_ms; /* 0 = never */
    struct views_run last;    /* the last finished run */
    char last_trigger[16];
    char last_error[128];
    struct views_tiers tiers; /* what each resolution holds (after the last run or drop) */
    bool tiers_known;
    int64_t dropped_rows; /* view rows the ladder removed since start */
};

/* What the batch layer needs of the configuration ([batch] keys and
 * storage.dir); strings borrowed for the batch's life. */
struct batch_opts {
    const char *dir;
    int idle_cpu_pct;
    double idle_ingest_rate;
    int idle_for_s;
    const char *schedule; /* "" = none, "every <N>s|m|h|d" or "HH:MM" */
    int max_lag_s;
};

EL_MUST_CHECK el_status batch_new(const struct batch_opts *opts, struct batch **out);
void batch_free(struct batch *b);
/* Core, once a second: ingest rate (events/s) and the receive time of the
 * oldest event not yet covered (0 when everything is covered). */
void batch_tick(struct batch *b, double ingest_rate, int64_t committed_seq);
/* Core thread (a reload): new [batch] keys for the scheduler, which runs on
 * the core thread (batch_tick), so the next decision uses them; its state
 * is kept (batch_sched_configure). o->dir is ignored. EL_INVAL: a bad
 * schedule, nothing changed. */
EL_MUST_CHECK el_status batch_configure(struct batch *b, const struct batch_opts *o);
/* Asks for a run now (full or incremental); ignored while one runs. */
void batch_request(struct batch *b, bool full, const char *trigger);
void batch_get_status(struct batch *b, struct batch_status *out);
/* True while a run is going on (any thread). */
bool batch_running(struct batch *b);
/* Called by the worker after each swap (the core re-reads views lazily). */
int64_t batch_watermark(struct batch *b);

/* The views ladder (storage/retention.h 4): keep durations per resolution
 * (ms, 0 = forever) and the policy; the core sets them every second (so a
 * reload applies). The worker applies them after each run and every
 * BATCH_LADDER_PERIOD_MS, a bounded step at a time, between runs. */
#define BATCH_LADDER_PERIOD_MS 10000
void batch_set_ladder(struct batch *b, const int64_t keep_ms[VIEWS_N_RES], bool drop_oldest);
/* The core: over storage.max_bytes with no covered raw event left: shed
 * views (retention.h 1b), one step now. */
void batch_request_shed(struct batch *b);

#endif
