/*
 * core — the daemon's event loop (docs/DESIGN.md §3 "core thread").
 *
 * Owns the master log connection, the journal's consumer side and the
 * status document. At start-up it replays the journal into the master log
 * (records a crash left uncommitted), seeds duplicate detection, then starts
 * MQTT ingest. The loop drains journal records into an open SQLite
 * transaction and commits it when its oldest record is flush_interval_ms
 * old (or 20,000 events are pending): the group commit. It publishes status
 * at most once a second when something changed, and on SIGTERM/SIGINT stops
 * taking messages, drains, commits and closes. On SIGHUP it re-reads the
 * configuration through reload->load and applies every live key (config.c's
 * LIVE flag) on the thread that owns it (core_reload.c); every other
 * changed key is named in one log line and keeps its running value until a
 * restart.
 *
 * Threading: core_run runs on the calling (main) thread; signals must be
 * blocked in every thread before it is called (core_block_signals).
 */
#ifndef EL_CORE_H
#define EL_CORE_H

#include "config.h"
#include "el_status.h"

/* Blocks SIGTERM, SIGINT, SIGHUP (delivered through signalfd) and ignores
 * SIGPIPE. Call before any thread is created. */
void core_block_signals(void);

/* How SIGHUP re-reads the configuration (the same file and overrides as at
 * start): fills *out or says why in err. NULL load: SIGHUP is ignored. */
struct core_reload {
    el_status (*load)(void *ctx, struct el_config *out, char *err, size_t errlen);
    void *ctx;
};

/* Runs the daemon until a termination signal. Returns EL_OK on a clean stop. */
EL_MUST_CHECK el_status core_run(const struct el_config *cfg, const struct core_reload *reload);

#endif
