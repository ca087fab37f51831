/*
 * core — event loop: journal -> master log group commit, status (design in
 * core.h).
 *
 * Ownership: core_run owns journal, mlog and ingest and frees them in
 * reverse order of creation on every path.
 */
#include "core.h"
#include "core_int.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "batch.h"
#include "ingest.h"
#include "journal.h"
#include "mlog.h"
#include "options.h"
#include "query.h"
#include "requests.h"
#include "speed.h"
#include "plat_align.h"
#include "plat_clock.h"
#include "plat_hash.h"
#include "plat_log.h"
#include "plat_systemd.h"
#include "status.h"
#include "sync.h"
#include "views.h"

void core_block_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

void core_wake(void *ctx)
{
    struct core *c = ctx;
    uint64_t one = 1;
    ssize_t w = write(c->evfd, &one, sizeof one);
    (void)w; /* a full eventfd counter already means "wake up" */
}

/* ---- the loop ---- */

static el_status setup_fds(struct core *c)
{
    sigset_t set;
    struct epoll_event ev = {.events = EPOLLIN};
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    c->epfd = epoll_create1(EPOLL_CLOEXEC);
    c->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    c->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (c->epfd < 0 || c->evfd < 0 || c->sigfd < 0) {
        log_error("cannot create event loop descriptors: %s", strerror(errno));
        return EL_IO;
    }
    ev.data.fd = c->evfd;
    if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->evfd, &ev) != 0)
        return EL_IO;
    ev.data.fd = c->sigfd;
    if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->sigfd, &ev) != 0)
        return EL_IO;
    return EL_OK;
}

static void handle_events(struct core *c, int timeout_ms)
{
    struct epoll_event evs[4];
    int n = epoll_wait(c->epfd, evs, 4, timeout_ms);
    for (int i = 0; i < n; i++) {
        if (evs[i].data.fd == c->evfd) {
            uint64_t v;
            ssize_t r = read(c->evfd, &v, sizeof v);
            (void)r;
        } else if (evs[i].data.fd == c->sigfd) {
            struct signalfd_siginfo si;
            while (read(c->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
                if (si.ssi_signo == SIGHUP) {
                    core_reload(c);
                    continue;
                }
                if (!c->stopping) {
                    log_info("signal %u: stopping (draining the journal)", si.ssi_signo);
                    c->stopping = true;
                    c->stop_started_ms = plat_clock_mono_ms();
                    plat_systemd_stopping();
                    replay_stop(c->replay); /* a replay running journals nothing more */
                    ingest_stop_begin(c->ingest);
                }
            }
        }
    }
}

static int next_timeout_ms(const struct core *c, int64_t now)
{
    int64_t t = STATUS_MIN_INTERVAL_MS;
    if (c->oldest_pending_mono_ms != 0) {
        int64_t due = c->oldest_pending_mono_ms + c->cfg->storage.flush_interval_ms - now;
        t = due < t ? due : t;
    }
    if (c->storage_failed)
        t = t < STORAGE_RETRY_MS ? t : STORAGE_RETRY_MS;
    if (c->stopping)
        t = t < 10 ? t : 10;
    if (c->watchdog_period_ms > 0) {
        int64_t due = c->watchdog_last_ms + c->watchdog_period_ms - now;
        t = due < t ? due : t;
    }
    return t < 0 ? 0 : (int)t;
}

static void loop(struct core *c)
{
    for (;;) {
        int n = core_drain(c);
        core_sync_requests(c);
        int64_t now = plat_clock_mono_ms();
        if (core_commit_due(c, now))
            core_commit(c);
        core_status_tick(c, now, false);
        if (status_board_wanted(c->board))
            core_refresh_board(c, now);
        if (c->watchdog_period_ms > 0 && now - c->watchdog_last_ms >= c->watchdog_period_ms) {
            plat_systemd_watchdog();
            c->watchdog_last_ms = now;
        }
        /* A disconnect that never completes (the broker vanished at the same
         * moment) must not hold the stop forever. */
        bool mqtt_done =
            c->stopping && (ingest_stopped(c->ingest) || now - c->stop_started_ms > 5000);
        if (mqtt_done && (c->storage_failed || c->log_full_paused) &&
            now - c->stop_started_ms > 5000) {
            log_error("stopping while the master log cannot be written; acknowledged events stay "
                      "in the journal and are replayed at the next start");
            /* A message held unacknowledged in the Paho thread cannot be
             * refused: ingest exits without acknowledging it (redelivered). */
            journal_shutdown(c->journal);
            return;
        }
        if (mqtt_done && n == 0 && !journal_has_unread(c->journal)) {
            core_commit(c);
            if (!c->storage_failed)
                return;
            if (now - c->stop_started_ms > 5000) {
                log_error("stopping with uncommitted events; they stay in the journal and are "
                          "replayed at the next start");
                return;
            }
        }
        if (n == DRAIN_BATCH)
            continue;
        /* Waiting for storage (a failed commit's retry, or stop_ingest): sleep
         * instead of spinning; signals, requests and the timer still wake us. */
        if (c->log_full_paused || (c->storage_failed && now < c->storage_retry_at_ms)) {
            handle_events(c, next_timeout_ms(c, now));
            continue;
        }
        if (n > 0 && !c->stopping && !core_commit_due(c, plat_clock_mono_ms())) {
            /* More is arriving: nap LINGER_MS without asking the producers to
             * wake us (signals, requests and the status board still do), then
             * drain what came meanwhile in one go. Spinning here instead took
             * one drain and one epoll_wait per message -- 70 % of a core at
             * 50,000 msg/s -- and sleeping until the next record cost both
             * threads a wake-up per message (docs/BENCHMARKS.md). */
            handle_events(c, LINGER_MS);
            continue;
        }
        if (journal_consumer_sleep(c->journal)) {
            handle_events(c, next_timeout_ms(c, plat_clock_mono_ms()));
            journal_consumer_awake(c->journal);
        } else {
            handle_events(c, 0);
        }
    }
}

/* {"op":"recompute"} (the serving thread): starts a run unless one goes on. */
static void command_recompute(void *ctx, bool full, bool *started, int64_t *watermark_seq)
{
    struct core *c = ctx;
    struct batch_status bs;
    batch_get_status(c->batch, &bs);
    if (!bs.running)
        batch_request(c->batch, full, full ? "request-full" : "request");
    *started = !bs.running;
    *watermark_seq = bs.watermark_seq;
}

/* {"op":"sync"} (the serving thread): ships now. c->sync belongs to the
 * core thread (a reload replaces it): the request goes through atomics
 * (core_sync_requests). False when sync is off. */
static bool command_sync(void *ctx, bool retry_parked)
{
    struct core *c = ctx;
    if (!atomic_load(&c->sync_on))
        return false;
    atomic_fetch_or(&c->sync_req, CORE_SYNC_KICK | (retry_parked ? CORE_SYNC_RETRY_PARKED : 0u));
    core_wake(c);
    return true;
}

/* {"op":"metrics"} (the serving thread): the status document on the board
 * as Prometheus text (metrics.h: pure, so any thread). */
_Static_assert(METRICS_TEXT_MAX <= REQUESTS_METRICS_MAX, "op metrics has room for the text");
static size_t command_metrics(void *ctx, const char *status_json, size_t len, char *out, size_t cap)
{
    (void)ctx;
    return metrics_format(status_json, len, out, cap);
}

/* {"op":"replay_deadletters"} (the serving thread): replay.h. */
static size_t command_replay(void *ctx, const struct query *q, char *buf, size_t cap,
                             const char **code)
{
    struct core *c = ctx;
    return replay_answer(c->replay, q, buf, cap, code);
}

/* Start-up, part 1: the speed layer, the master log, the journal and the
 * ingest (not connected yet), then the journal's replay and the speed
 * layer's rebuild (core_recover). */
static el_status open_storage(struct core *c, const struct el_config *cfg)
{
    struct journal_opts jo;
    struct mlog_opts mo;
    struct ingest_opts io;
    char boot_id[64];
    el_status st = speed_new((uint32_t)cfg->speed.max_series, (uint32_t)cfg->speed.slots,
                             cfg->speed.bucket_ms, (uint32_t)cfg->speed.raw_samples, &c->speed);
    if (st != EL_OK) {
        log_error("cannot allocate the speed layer (%d series x %d slots): %s",
                  cfg->speed.max_series, cfg->speed.slots, el_status_str(st));
        return st;
    }
    plat_clock_boot_id(boot_id, sizeof boot_id);
    options_mlog(cfg, &mo);
    c->ceiling_bytes = mo.max_db_bytes;
    st = mlog_open(&mo, boot_id, plat_clock_wall_ms(), plat_clock_mono_ms(), &c->log);
    if (st != EL_OK) {
        log_error("cannot open the master log in %s: %s", cfg->storage.dir, el_status_str(st));
        return st;
    }
    options_journal(cfg, &jo);
    st = journal_open(&jo, &c->journal);
    if (st != EL_OK) {
        log_error("cannot open the ingest journal in %s: %s", cfg->storage.dir, el_status_str(st));
        return st;
    }
    options_ingest(cfg, c->filters, c->decoders, &io);
    st = ingest_new(&io, c->journal, &c->ingest);
    if (st == EL_OK)
        st = core_recover(c);
    int64_t min_unanchored;
    if (st == EL_OK)
        st = mlog_unanchored(c->log, &c->unanchored, &min_unanchored);
    return st;
}

/* Start-up, part 2: the batch worker, sync, the serving thread, then the
 * MQTT connections: the control plane's first, so that queries are
 * answered by the time readings flow (the serving thread's wake-up hook is
 * set before the control thread exists). */
static el_status start_workers(struct core *c, const struct el_config *cfg)
{
    struct batch_opts bo;
    struct sync_opts so;
    struct requests_opts ro;
    struct control_opts co;
    options_batch(cfg, &bo);
    el_status st = batch_new(&bo, &c->batch);
    if (st != EL_OK) {
        log_error("cannot start the batch worker: %s", el_status_str(st));
        return st;
    }
    options_sync(cfg, &so);
    st = sync_new(&so, &c->sync);
    if (st == EL_OK && c->sync) {
        sync_notify_committed(c->sync, c->visible_seq);
        st = sync_start(c->sync);
    }
    if (st != EL_OK) {
        log_error("cannot start sync: %s", el_status_str(st));
        return st;
    }
    struct replay_opts rpo = {
        .dir = cfg->storage.dir,
        .max_series = (uint32_t)cfg->speed.max_series,
        .flush_interval_ms = cfg->storage.flush_interval_ms,
        .max_rows = (uint64_t)cfg->query.max_rows,
    };
    st = replay_new(&rpo, c->ingest, c->speed, &c->replay);
    if (st != EL_OK) {
        log_error("cannot set up dead-letter replay: %s", el_status_str(st));
        return st;
    }
    atomic_store(&c->sync_on, c->sync != NULL);
    struct requests_commands commands = {
        .ctx = c,
        .recompute = command_recompute,
        .sync = command_sync,
        .metrics = command_metrics,
        .replay_deadletters = command_replay,
    };
    options_requests(cfg, &commands, &ro);
    options_control(cfg, c->filters, &co);
    st = control_new(&co, &c->control);
    if (st == EL_OK)
        st = requests_start(&ro, c->control, c->speed, c->board, &c->requests);
    if (st == EL_OK)
        st = control_start(c->control);
    return st == EL_OK ? ingest_start(c->ingest) : st;
}

/* Everything core_run made, in reverse order; the serving thread stops
 * first, then the control plane says "offline" and disconnects (its thread
 * may wake the serving thread until then). */
static void teardown(struct core *c)
{
    /* A replay waiting for its commit ends now, and one blocked in
     * journal_append on a full journal (the core no longer drains it)
     * returns EL_AGAIN: the serving thread can be joined. */
    replay_stop(c->replay);
    if (c->journal)
        journal_shutdown(c->journal);
    requests_stop(c->requests);
    control_stop(c->control, CONTROL_STOP_MS);
    replay_free(c->replay);
    ingest_free(c->ingest);
    requests_free(c->requests);
    control_free(c->control);
    sync_free(c->sync);
    batch_free(c->batch);
    speed_free(c->speed);
    status_board_free(c->board);
    metrics_free(c->metrics);
    free(c->pending);
    journal_close(c->journal);
    mlog_close(c->log);
    if (c->sigfd >= 0)
        close(c->sigfd);
    if (c->evfd >= 0)
        close(c->evfd);
    if (c->epfd >= 0)
        close(c->epfd);
    free(c->live);
    free(c);
}

el_status core_run(const struct el_config *cfg_in, const struct core_reload *reload)
{
    struct core *c = calloc(1, sizeof *c);
    el_status st;
    if (!c)
        return EL_NOMEM;
    c->live = malloc(sizeof *c->live);
    if (!c->live) {
        free(c);
        return EL_NOMEM;
    }
    *c->live = *cfg_in;
    c->sync_floor = -1;
    const struct el_config *cfg = c->live;
    c->cfg = cfg;
    if (reload)
        c->reload = *reload;
    c->commit_cap = COMMIT_MAX_EVENTS;
    c->clock_synced_logged = -1;
    c->epfd = c->evfd = c->sigfd = -1;
    c->start_mono_ms = plat_clock_mono_ms();
    st = core_reload_check();
    if (st == EL_OK)
        st = setup_fds(c);
    if (st == EL_OK) {
        c->pending = calloc(PENDING_MAX, sizeof c->pending[0]);
        st = c->pending ? status_board_new(core_wake, c, &c->board) : EL_NOMEM;
    }
    if (st == EL_OK)
        st = metrics_new(cfg->metrics.textfile, &c->metrics);
    if (st == EL_OK)
        st = open_storage(c, cfg);
    if (st != EL_OK)
        goto out;
    c->has_unanchored = c->unanchored > 0;
    c->visible_seq = mlog_visible_seq(c->log);
    journal_set_wakeup(c->journal, core_wake, c);
    log_info("edgelambdad %s: master log %s/master.db at sequence %lld, %u series, durability %s",
             EL_VERSION, cfg->storage.dir, (long long)mlog_last_seq(c->log),
             mlog_series_count(c->log),
             cfg->storage.durability == EL_DURABILITY_STRICT ? "strict" : "normal");
    st = start_workers(c, cfg);
    if (st != EL_OK)
        goto out;
    c->watchdog_period_ms = plat_systemd_watchdog_period_ms();
    plat_systemd_ready("ingesting");
    loop(c);
    log_info("stopped cleanly at sequence %lld", (long long)mlog_last_seq(c->log));
out:
    teardown(c);
    return st;
}
