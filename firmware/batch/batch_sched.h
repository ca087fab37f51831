/*
 * batch_sched — when the batch layer runs: the scheduler's decision, pure
 * (no clock, no /proc, no threads), so it can be tested on its own.
 *
 * Once a second the core hands it what it sees (struct batch_sched_input)
 * and it answers which trigger, if any, should start a run now:
 *   - "schedule": batch.schedule is due: "every <N>s|m|h|d" since the last
 *     scheduled run, or the daily "HH:MM" (UTC, only with a synchronised
 *     clock, once per day);
 *   - "idle": CPU busy < idle_cpu_pct and ingest rate < idle_ingest_rate,
 *     continuously for idle_for_s; the next idle run needs another
 *     idle_for_s of idleness;
 *   - "max_lag": no run has ended for max_lag_s (even on a busy board), at
 *     most one such run per max_lag_s.
 * Nothing is started while a run is going on or when the views already
 * cover every committed event (no empty runs: issue 17). A request
 * ({"op":"recompute"}) does not go through here.
 *
 * Threading: the owner's (the core thread).
 */
#ifndef EL_BATCH_SCHED_H
#define EL_BATCH_SCHED_H

#include <stdbool.h>
#include <stdint.h>

#include "el_status.h"

struct batch_sched {
    /* configuration */
    int idle_cpu_pct;
    double idle_ingest_rate;
    int64_t idle_for_ms;
    int64_t max_lag_ms;
    int64_t schedule_every_ms;  /* 0: none */
    int schedule_minute_of_day; /* -1: none */
    /* state */
    int64_t idle_since_ms; /* 0: not idle */
    int64_t last_run_end_ms;
    int64_t last_schedule_ms;
    int64_t last_daily_day;
};

struct batch_sched_input {
    int64_t now_mono_ms;
    int64_t wall_ms;   /* UTC epoch ms */
    bool clock_synced; /* the wall clock can be trusted */
    double busy_pct;   /* CPU busy since the last call, < 0: not known yet */
    double ingest_rate;
    bool running;   /* a run is going on */
    bool uncovered; /* committed events exist beyond the views' watermark */
};

/* batch.schedule: "" (none), "every <N>s|m|h|d" (at most 7 days) or a daily
 * "HH:MM" (UTC). Sets *every_ms (0: none) and *minute_of_day (-1: none);
 * EL_INVAL for anything else. The config layer checks the key with it. */
#define BATCH_SCHEDULE_MAX_S (7 * 86400)
EL_MUST_CHECK el_status batch_schedule_parse(const char *spec, int64_t *every_ms,
                                             int *minute_of_day);

/* Starts the scheduler at now_mono_ms; EL_INVAL for a bad schedule. */
EL_MUST_CHECK el_status batch_sched_init(struct batch_sched *s, const char *schedule,
                                         int idle_cpu_pct, double idle_ingest_rate, int idle_for_s,
                                         int max_lag_s, int64_t now_mono_ms);

/* A reload: the configuration above changes, the state stays (when the
 * last run ended, the last scheduled run, idleness), so a shorter interval
 * counts from the last scheduled run and a run is neither lost nor doubled.
 * EL_INVAL for a bad schedule: nothing changes. */
EL_MUST_CHECK el_status batch_sched_configure(struct batch_sched *s, const char *schedule,
                                              int idle_cpu_pct, double idle_ingest_rate,
                                              int idle_for_s, int max_lag_s);

/* The trigger that should start a run now ("schedule", "idle", "max_lag"),
 * or NULL. Updates the state as if the run was started. */
const char *batch_sched_decide(struct batch_sched *s, const struct batch_sched_input *in);

#endif
