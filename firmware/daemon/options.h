/*
 * options — the one place that turns the daemon's configuration (config.h,
 * the only module that knows struct el_config) into each module's own small
 * options struct. Modules never see el_config: each takes what it needs,
 * which keeps the layers' include graph one-way (issue 16).
 *
 * Threading: start-up, on the core thread. The options borrow strings from
 * the configuration, which lives as long as the daemon.
 */
#ifndef EL_OPTIONS_H
#define EL_OPTIONS_H

#include "batch.h"
#include "config.h"
#include "control.h"
#include "ingest.h"
#include "journal.h"
#include "mlog.h"
#include "requests.h"
#include "sync.h"

/* filters: storage for the subscription pointers (INGEST_MAX_FILTERS). */
/* filters[INGEST_MAX_FILTERS] and decoders[INGEST_MAX_DECODERS]: the
 * caller's arrays the options point into. */
void options_ingest(const struct el_config *cfg, const char *filters[],
                    struct ingest_decoder decoders[], struct ingest_opts *o);
/* filters: the array options_ingest filled (borrowed). */
void options_control(const struct el_config *cfg, const char *const filters[],
                     struct control_opts *o);
void options_batch(const struct el_config *cfg, struct batch_opts *o);
void options_journal(const struct el_config *cfg, struct journal_opts *o);
/* The master log's ceiling: storage.hard_max_bytes, or automatic. */
void options_mlog(const struct el_config *cfg, struct mlog_opts *o);
/* commands: what recompute/sync do (the core supplies them). */
void options_requests(const struct el_config *cfg, const struct requests_commands *commands,
                      struct requests_opts *o);
/* The [continuous "<name>"] sections as the serving layer's definitions
 * (defs: room for CONTINUOUS_MAX_DEFS); returns how many. A reload passes
 * them to requests_set_continuous. */
int options_continuous(const struct el_config *cfg, struct cq_def *defs);
/* The sync worker's: config's enums mapped to sync's own. */
void options_sync(const struct el_config *cfg, struct sync_opts *o);

#endif
