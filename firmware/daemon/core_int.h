/*
 * core_int — what the core's files share (internal to firmware/daemon): the
 * struct core and the functions each file gives the others. The core is
 * one thread (the event loop) split by concern:
 *   core.c         the loop: signals, wake-ups, timers, start and stop;
 *   core_commit.c  journal records -> the master log (the group commit),
 *                  applying committed events to the speed layer, start-up
 *                  replay and the speed layer's rebuild;
 *   core_clock.c   wall-clock steps and placing waiting readings in time;
 *   core_status.c  the status document (published, and on the board for
 *                  {"op":"status"}), the per-second ticks (rate, batch,
 *                  retention via storage/retention, clocks);
 *   core_reload.c  SIGHUP: the live keys, each applied where it is owned.
 *
 * Threading: everything here runs on the core thread.
 */
#ifndef EL_CORE_INT_H
#define EL_CORE_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "batch.h"
#include "config.h"
#include "decode.h"
#include "control.h"
#include "core.h"
#include "ingest.h"
#include "journal.h"
#include "metrics.h"
#include "mlog.h"
#include "plat_log.h"
#include "replay.h"
#include "requests.h"
#include "retention.h"
#include "speed.h"
#include "status.h"
#include "sync.h"

#define COMMIT_MAX_EVENTS 20000
#define COMMIT_MIN_EVENTS 64
#define DRAIN_BATCH 4096
#define LINGER_MS 1 /* the core's nap while a stream arrives (core.c, loop) */
#define STATUS_MIN_INTERVAL_MS 1000
#define STATUS_HEARTBEAT_MS 30000
/* At most this long for the "offline" status and the disconnect at stop. */
#define CONTROL_STOP_MS 600
#define STORAGE_RETRY_MS 500
#define PENDING_MAX (COMMIT_MAX_EVENTS + DECODE_MAX_FIELDS)

/* An event appended to the open transaction, applied to the speed layer
 * only once the transaction commits (so speed state == committed state). */
struct pending_event {
    int64_t seq, ts_ms;
    double value;
    uint32_t id;
    enum speed_lane lane; /* provisional: no true time yet, ts = receive time */
};

struct core {
    const struct el_config *cfg; /* == live */
    struct el_config *live;      /* the core's copy: SIGHUP updates its live keys */
    struct core_reload reload;
    /* reloads (status "reload") */
    uint64_t reloads, reload_failures;
    int64_t reload_last_ms;
    char reload_result[STATUS_RELOAD_RESULT];
    /* {"op":"sync"}: the serving thread sets CORE_SYNC_* bits, the core
     * acts on them (c->sync is the core's: a reload replaces it) */
    atomic_bool sync_on;
    atomic_uint sync_req;
    struct journal *journal;
    struct mlog *log;
    struct ingest *ingest;
    struct control *control; /* queries, commands, status: control.h */
    struct sync *sync;
    /* A reload stopped sync and could not start it again (core_reload.c):
     * its last acknowledged sequence, which retention still respects while
     * sync.url is set and no worker runs; -1 when none. */
    int64_t sync_floor;
    struct speed *speed;
    struct requests *requests;  /* the serving thread */
    struct replay *replay;      /* dead-letter replay, run by the serving thread */
    struct status_board *board; /* the status document for {"op":"status"} */
    struct batch *batch;
    struct metrics *metrics;                             /* metrics.textfile; NULL when off */
    struct pending_event *pending;                       /* PENDING_MAX */
    const char *filters[INGEST_MAX_FILTERS];             /* ingest_opts.filters */
    struct ingest_decoder decoders[INGEST_MAX_DECODERS]; /* ingest_opts.decoders */
    uint32_t n_pending;
    int epfd, evfd, sigfd;
    bool stopping;
    int64_t stop_started_ms;

    int64_t start_mono_ms;
    int64_t oldest_pending_mono_ms; /* receive time of the oldest uncommitted record */
    int64_t storage_retry_at_ms;
    char storage_error[128];
    bool storage_failed;
    /* Group-commit size in events: COMMIT_MAX_EVENTS, halved after a commit
     * failed for lack of space (a quota or a full disk) down to
     * COMMIT_MIN_EVENTS, doubled back after each success ("Retention"). */
    uint32_t commit_cap;
    bool commit_no_space;  /* the last commit or append failed with EL_FULL */
    uint32_t txn_events;   /* events in the transaction that just failed */
    int64_t ceiling_bytes; /* master.db's hard ceiling (storage.hard_max_bytes), 0 = none */

    /* counters (core thread) */
    uint64_t accepted, accepted_committed;
    uint64_t rejected[INGEST_REASON_COUNT], rejected_committed[INGEST_REASON_COUNT];
    int64_t commit_ms_last, commit_ms_max; /* group commit durations (status) */
    uint64_t replayed;
    /* dead letters replayed (replay.h): marked, their events, records refused
     * because the dead letter was already marked, records not stored because
     * an event would be refused again (left replayable); committed like accepted */
    uint64_t replay_letters, replay_letters_committed;
    uint64_t replay_events, replay_events_committed;
    uint64_t replay_doubles, replay_doubles_committed;
    uint64_t replay_refused, replay_refused_committed;
    struct plat_log_limit storage_limit;

    /* status publishing */
    int64_t status_tick_ms; /* the last status tick (once a second) */
    int64_t status_last_ms; /* the last publish */
    uint64_t status_last_key;
    uint64_t rate_last_accepted;
    int64_t rate_last_ms;
    double rate_per_s;
    char status_buf[STATUS_DOC_MAX];
    int64_t watchdog_period_ms, watchdog_last_ms;

    /* clocks (mlog.h, "Clocks") */
    bool has_unanchored;     /* events wait for a synchronised clock */
    int64_t unanchored;      /* how many (committed), refreshed once a second */
    int64_t visible_seq;     /* sync and batch stop here (mlog_visible_seq) */
    int64_t clock_offset_ms; /* wall - monotonic at the last check */
    uint64_t clock_steps;    /* wall-clock steps seen */
    uint64_t anchored;       /* events placed in time since start */
    int clock_synced_logged; /* -1 until the first tick */

    /* retention (storage.max_bytes, max_age_s; storage/retention.h) */
    int64_t used_bytes;
    int64_t total_bytes; /* what max_bytes bounds: master + views + journal */
    uint64_t trimmed_events;
    uint64_t aged_events;     /* of them, removed by storage.max_age_s */
    int64_t raw_oldest_ts;    /* refreshed every RAW_TS_PERIOD_MS */
    int64_t raw_oldest_at_ms; /* when (monotonic) */
    bool log_full_paused;     /* stop_ingest in force */
    struct plat_log_limit retention_limit;
};

/* core_commit.c */
void core_commit(struct core *c);
int core_drain(struct core *c);
bool core_commit_due(const struct core *c, int64_t now);
void core_storage_failed(struct core *c, el_status st, const char *what);
EL_MUST_CHECK el_status core_recover(struct core *c);
/* mlog_scan_unanchored's callback: a waiting reading into the provisional lane. */
void core_rebuild_provisional(void *ctx, int64_t seq, uint32_t series_id, int64_t recv_ms,
                              double value);
/* core_clock.c */
void core_clock_tick(struct core *c);
/* core_status.c */
void core_status_tick(struct core *c, int64_t now, bool force);
void core_refresh_board(struct core *c, int64_t now);
void core_retention_tick(struct core *c);
void core_set_paused(struct core *c, bool paused);
/* core.c */
void core_wake(void *ctx);
/* core_reload.c */
#define CORE_SYNC_KICK 1u
#define CORE_SYNC_RETRY_PARKED 2u
/* At start: every LIVE key of config.c has a reload rule (else EL_INVAL). */
EL_MUST_CHECK el_status core_reload_check(void);
/* SIGHUP: re-reads the configuration and applies its live keys. */
void core_reload(struct core *c);
/* Carries out {"op":"sync"} requests (cheap when there are none). */
void core_sync_requests(struct core *c);

#endif
