/*
 * requests — the serving thread: takes queries and commands from the
 * control plane's request queue (control.h), decides where the reply may go,
 * answers them (serve.h for queries, the batch and sync workers for
 * commands, the status board for {"op":"status"}) and publishes each reply
 * on the control connection. Between requests it runs the continuous
 * queries and watches (continuous.h, about every CONTINUOUS_TICK_MS). The
 * core never waits for it: ingest, commits and the stop go on whatever a
 * query costs (docs/SPEC.md §7, docs/DESIGN.md §3 "serving threads").
 *
 * Every request ends in exactly one of these, each counted
 * (struct requests_counters, in status as "queries"):
 *   - an answer ("answered");
 *   - an error reply, by code ("errors": bad_request, too_large, timeout,
 *     not_found, unsupported, busy, unavailable, internal);
 *   - no reply because there is nowhere safe to send one ("rejected", by
 *     reason: query_topic_problem — a wildcard or malformed response topic
 *     would make the broker disconnect the daemon; a reply onto its own
 *     topics would loop). A v5 request with a bad Response Topic but a good
 *     "reply_to" gets an error reply there instead. Logged at most once per
 *     10 s. Commands without any reply path still run ("no_reply_topic");
 *   - a reply that could not be handed to the broker ("unsent").
 * (Requests the control thread refuses because the queue is full are
 * answered "busy" there and counted in control.h's counters.)
 *
 * The quick lane: el-control offers every query to requests first
 * (control_set_quick_lane). A cheap one -- op last of one series (<= 10
 * samples), or a range of one series in whole-minute steps, < 1440 buckets,
 * no quantile -- is answered there and then when the serving thread is idle
 * (serve_mu taken with trylock; el-control never waits), under 5 ms and
 * 20,000 master-log rows; past those it is queued for the serving thread
 * ("quick_declined"). At most 250 ms of each second go to the lane. Why:
 * the two thread hand-offs of the queued path, on a loaded board, doubled
 * a cheap query's round trip (docs/DESIGN.md §8).
 *
 * Threading: requests_start/stop on the core thread; one serving thread in
 * between; the quick lane on el-control. serve_mu guards the struct serve,
 * the continuous queries and the reply buffers: the serving thread holds it
 * while it takes and answers a request and for each continuous tick.
 * Counters are atomics readable from any thread.
 */
#ifndef EL_REQUESTS_H
#define EL_REQUESTS_H

#include <stdatomic.h>
#include <stdint.h>

#include "el_status.h"
#include "continuous.h"
#include "control.h"
#include "query.h"
#include "serve.h"
#include "speed.h"

/* The latest status document, written by the core (once a second, and when
 * a reader asks for a fresh one), read for {"op":"status"}. */
struct status_board;
/* wake(ctx) asks the core to refresh the board (status_board_wanted). */
EL_MUST_CHECK el_status status_board_new(void (*wake)(void *ctx), void *ctx,
                                         struct status_board **out);
void status_board_free(struct status_board *b);
void status_board_set(struct status_board *b, const char *json, size_t len);
/* Core: true once if a reader asked for a fresh document. */
bool status_board_wanted(struct status_board *b);
/* Copies a document at most max_wait_ms older than the call into buf
 * (NUL-terminated), or the last one if the core did not refresh it in that
 * time (it may be busy with storage); returns its length, 0 if none yet. */
size_t status_board_get(struct status_board *b, char *buf, size_t cap, int max_wait_ms);

enum requests_error {
    RQ_ERR_BAD_REQUEST = 0,
    RQ_ERR_TOO_LARGE,
    RQ_ERR_TIMEOUT,
    RQ_ERR_NOT_FOUND,
    RQ_ERR_UNSUPPORTED,
    RQ_ERR_BUSY,
    RQ_ERR_UNAVAILABLE,
    RQ_ERR_INTERNAL,
    RQ_ERR_NOT_RETAINED, /* the resolution the query needs was dropped by retention */
    RQ_ERR_COUNT
};
const char *requests_error_str(enum requests_error e);

struct requests_counters {
    _Atomic uint64_t received;
    _Atomic uint64_t answered;
    _Atomic uint64_t errors[RQ_ERR_COUNT];
    _Atomic uint64_t rejected[MQTT_TOPIC_COUNT]; /* by query_topic_problem */
    _Atomic uint64_t unsent;
    _Atomic uint64_t slow;           /* answers that took longer than 100 ms */
    _Atomic uint64_t quick;          /* answered on the quick lane (el-control) */
    _Atomic uint64_t quick_declined; /* tried there, past its bounds: queued */
};

struct requests;

/* What commands do ({"op":"recompute"}, {"op":"sync"}, {"op":"replay_deadletters"}):
 * supplied by the daemon, since the serving layer knows neither the batch
 * worker nor sync. A NULL function: that part is off ("unsupported"). Called
 * on the serving thread; they must not block (replay: a bounded wait). */
struct requests_commands {
    void *ctx;
    /* starts a run unless one is going on: *started, and the views' watermark */
    void (*recompute)(void *ctx, bool full, bool *started, int64_t *watermark_seq);
    /* ships now; retry_parked: parked batches are tried again; false when
     * sync is off (sync.url empty: a reload may turn it on or off) */
    bool (*sync)(void *ctx, bool retry_parked);
    /* {"op":"metrics"}: the status document json[0..len) as Prometheus text
     * into out (cap bytes); its length, 0 on failure. Must be pure. */
    size_t (*metrics)(void *ctx, const char *json, size_t len, char *out, size_t cap);
    /* {"op":"replay_deadletters"} (firmware/daemon/replay.h): the reply into
     * buf (cap bytes), its length; *code set for an error reply. May block
     * for a bounded time (the group commit of what it replayed). */
    size_t (*replay_deadletters)(void *ctx, const struct query *q, char *buf, size_t cap,
                                 const char **code);
};

/* Room for {"op":"metrics"}'s text (before JSON escaping). */
#define REQUESTS_METRICS_MAX (64 * 1024)

struct requests_opts {
    struct serve_opts serve;
    struct requests_commands commands;
    struct continuous_opts continuous;          /* its dir and max_series: serve's */
    struct cq_def cq_defs[CONTINUOUS_MAX_DEFS]; /* room for continuous.defs */
};

/* ctl, sp and board are borrowed and must outlive the requests. Opens the
 * serving thread's own SQLite connections and starts it. */
EL_MUST_CHECK el_status requests_start(const struct requests_opts *opts, struct control *ctl,
                                       const struct speed *sp, struct status_board *board,
                                       struct requests **out);
/* Ends the query being answered (within its next check, well under 1 s)
 * and joins the thread. The control plane may still call the wake-up hook
 * until it is stopped: free the requests after control_stop. NULL is fine
 * for both. */
void requests_stop(struct requests *r);
void requests_free(struct requests *r);
/* A reload (core thread): the serving limits a query reads at its start
 * (serve_set_limits). */
void requests_set_limits(struct requests *r, const struct serve_opts *o);
const struct requests_counters *requests_counters(const struct requests *r);
/* Working memory of the serving thread (the per-query bound). */
size_t requests_memory_bytes(const struct requests *r);
const struct continuous_counters *requests_continuous_counters(const struct requests *r);
/* Any thread (a reload): the serving thread takes these continuous queries
 * at its next tick (continuous_set_defs). EL_INVAL for more than
 * CONTINUOUS_MAX_DEFS. */
EL_MUST_CHECK el_status requests_set_continuous(struct requests *r, const struct cq_def *defs,
                                                int n);

#endif
