/*
 * core_reload — SIGHUP: re-reads the configuration and applies every key
 * the table in config.c marks LIVE, each on the thread that owns it,
 * without stopping ingest (README, "Reload").
 *
 * Design: reload_rules[] maps a key ("section.key") or a whole section
 * ("section.") to the function that applies it. config_diff names the
 * changed keys; each live one marks its rule's function, and each marked
 * function runs once, in table order, with the new configuration. An apply
 * function either takes its keys into the core's copy of the configuration
 * (c->live) or fails and leaves them, and what runs, as they were. Keys that
 * are not live are named in the one log line and keep their running value
 * until a restart. At start, core_reload_check makes sure every live key
 * has a rule (so the LIVE flags, --help-config and the man page cannot
 * promise what the daemon does not do). Adding a live key: LIVE in its
 * config.c row and one line here.
 *
 * Who owns what a rule changes:
 *   log, storage.*   the core thread itself (these fields of c->live);
 *   ingest decoding  the Paho thread: a new rules table published with an
 *                    atomic pointer, freed once acknowledged (ingest.h,
 *                    "Reload");
 *   sync.*           the sync worker: the open group commit is committed
 *                    first (sync_new writes master.db), then the worker is
 *                    stopped (an upload in flight is
 *                    interrupted and resent by the next worker: same range,
 *                    same Idempotency-Key) and started again with the new
 *                    options; its cursor and parked batches are on disk.
 *                    Other threads never hold c->sync: {"op":"sync"} goes
 *                    through atomics the core reads (core_sync_requests);
 *   batch.*          the scheduler, which runs on the core thread;
 *   query limits     the serving thread: atomics read at each query's start;
 *   continuous       the serving thread: a new table handed over under the
 *                    requests' mutex, taken at its next tick (continuous.h:
 *                    unchanged queries keep their state).
 *
 * Threading: the core thread.
 */
#include "core_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"
#include "plat_clock.h"
#include "plat_log.h"

typedef el_status (*reload_apply_fn)(struct core *c, const struct el_config *next, char *err,
                                     size_t errlen);

static el_status apply_log(struct core *c, const struct el_config *next, char *err, size_t len);
static el_status apply_storage(struct core *c, const struct el_config *next, char *err, size_t len);
static el_status apply_decoding(struct core *c, const struct el_config *next, char *err,
                                size_t len);
static el_status apply_sync(struct core *c, const struct el_config *next, char *err, size_t len);
static el_status apply_batch(struct core *c, const struct el_config *next, char *err, size_t len);
static el_status apply_query(struct core *c, const struct el_config *next, char *err, size_t len);
static el_status apply_continuous(struct core *c, const struct el_config *next, char *err,
                                  size_t len);

/* "section.key", or "section." for every live key of a section. */
static const struct reload_rule {
    const char *key;
    reload_apply_fn apply;
} reload_rules[] = {
    {"log.level", apply_log},
    {"storage.flush_interval_ms", apply_storage},
    {"storage.max_bytes", apply_storage},
    {"storage.full_policy", apply_storage},
    {"storage.max_age_s", apply_storage},
    {"storage.keep_1m_s", apply_storage},
    {"storage.keep_1h_s", apply_storage},
    {"storage.keep_1d_s", apply_storage},
    {"ingest.value_field", apply_decoding},
    {"ingest.ts_field", apply_decoding},
    {"ingest.fields", apply_decoding},
    {"ingest.state_words", apply_decoding},
    {"ingest.max_future_s", apply_decoding},
    {"decode.sections", apply_decoding},
    {"sync.", apply_sync},
    {"batch.", apply_batch},
    {"query.deadline_ms", apply_query},
    {"query.max_rows", apply_query},
    {"query.max_sketch_bins", apply_query},
    {"continuous.sections", apply_continuous},
};
#define N_RULES (sizeof reload_rules / sizeof reload_rules[0])

static const struct reload_rule *rule_of(const char *section, const char *key)
{
    size_t sl = strlen(section);
    for (size_t i = 0; i < N_RULES; i++) {
        const char *k = reload_rules[i].key;
        if (strncmp(k, section, sl) != 0 || k[sl] != '.')
            continue;
        if (k[sl + 1] == '\0' || strcmp(k + sl + 1, key) == 0)
            return &reload_rules[i];
    }
    return NULL;
}

static void check_one(void *ctx, const char *section, const char *key)
{
    bool *ok = ctx;
    if (!rule_of(section, key)) {
        log_error("internal: %s.%s is marked live but no reload rule applies it", section, key);
        *ok = false;
    }
}

el_status core_reload_check(void)
{
    bool ok = true;
    config_each_live(check_one, &ok);
    return ok ? EL_OK : EL_INVAL;
}

/* ---- the apply functions ---- */

static el_status apply_log(struct core *c, const struct el_config *next, char *err, size_t len)
{
    (void)err;
    (void)len;
    c->live->log = next->log;
    plat_log_set_level((enum plat_log_level)c->live->log.level);
    return EL_OK;
}

static el_status apply_storage(struct core *c, const struct el_config *next, char *err, size_t len)
{
    /* The automatic ceiling (hard_max_bytes = 0) follows max_bytes. */
    if (next->storage.max_bytes != c->live->storage.max_bytes &&
        c->live->storage.hard_max_bytes == 0) {
        struct el_config *m = malloc(sizeof *m);
        struct mlog_opts mo;
        if (!m) {
            snprintf(err, len, "out of memory");
            return EL_NOMEM;
        }
        *m = *c->live;
        m->storage.max_bytes = next->storage.max_bytes;
        options_mlog(m, &mo);
        free(m);
        el_status st = mlog_set_ceiling(c->log, mo.max_db_bytes);
        if (st != EL_OK) {
            snprintf(err, len, "cannot set the master log's ceiling: %s", el_status_str(st));
            return st;
        }
        c->ceiling_bytes = mo.max_db_bytes;
    }
    c->live->storage.max_bytes = next->storage.max_bytes;
    c->live->storage.full_policy = next->storage.full_policy;
    c->live->storage.flush_interval_ms = next->storage.flush_interval_ms;
    c->live->storage.max_age_s = next->storage.max_age_s; /* retention and the ladder: */
    c->live->storage.keep_1m_s = next->storage.keep_1m_s; /* read at each tick */
    c->live->storage.keep_1h_s = next->storage.keep_1h_s;
    c->live->storage.keep_1d_s = next->storage.keep_1d_s;
    return EL_OK;
}

static el_status apply_decoding(struct core *c, const struct el_config *next, char *err, size_t len)
{
    const char *filters[INGEST_MAX_FILTERS];
    struct ingest_decoder decoders[INGEST_MAX_DECODERS];
    struct ingest_opts io;
    options_ingest(next, filters, decoders, &io);
    el_status st = ingest_set_rules(c->ingest, &io); /* copies what it keeps */
    if (st == EL_AGAIN) {
        snprintf(err, len, "the previous decoding change still waits for a message; reload again");
        return st;
    }
    if (st != EL_OK) {
        snprintf(err, len, "cannot build the decoding rules: %s", el_status_str(st));
        return st;
    }
    struct el_config *l = c->live;
    memcpy(l->ingest.value_field, next->ingest.value_field, sizeof l->ingest.value_field);
    memcpy(l->ingest.ts_field, next->ingest.ts_field, sizeof l->ingest.ts_field);
    memcpy(l->ingest.state_words, next->ingest.state_words, sizeof l->ingest.state_words);
    l->ingest.fields_all = next->ingest.fields_all;
    l->ingest.max_future_s = next->ingest.max_future_s;
    l->decode = next->decode;
    return EL_OK;
}

/* A new sync worker from cfg's [sync] keys (none when sync.url is empty). */
static el_status sync_open(struct core *c, const struct el_config *cfg)
{
    struct sync_opts so;
    options_sync(cfg, &so);
    el_status st = sync_new(&so, &c->sync);
    if (st == EL_OK && c->sync) {
        sync_notify_committed(c->sync, c->visible_seq);
        st = sync_start(c->sync);
    }
    if (st != EL_OK) {
        sync_free(c->sync);
        c->sync = NULL;
    }
    atomic_store(&c->sync_on, c->sync != NULL);
    return st;
}

static el_status apply_sync(struct core *c, const struct el_config *next, char *err, size_t len)
{
    /* sync_new writes its tables in master.db: the core's open group-commit
     * transaction would hold the lock it waits for (on this very thread). */
    core_commit(c);
    if (mlog_pending(c->log) > 0) {
        snprintf(err, len, "the master log cannot be written now; reload again");
        return EL_AGAIN;
    }
    /* One worker at a time owns the cursor: stop the old one first. Should
     * neither the new nor the running settings start again, retention keeps
     * what the old worker had not acknowledged (c->sync_floor). */
    if (c->sync) {
        struct sync_status ss;
        sync_get_status(c->sync, &ss);
        c->sync_floor = ss.acked_seq;
    }
    atomic_store(&c->sync_on, false);
    sync_free(c->sync);
    c->sync = NULL;
    /* Only the [sync] keys change: storage.dir and the rest stay as they run. */
    struct el_config *m = malloc(sizeof *m);
    if (!m) {
        snprintf(err, len, "out of memory");
        if (sync_open(c, c->live) != EL_OK)
            log_error("reload: sync cannot start again: off until a reload or restart");
        return EL_NOMEM;
    }
    *m = *c->live;
    m->sync = next->sync;
    el_status st = sync_open(c, m);
    free(m);
    if (st == EL_OK) {
        c->live->sync = next->sync;
        if (c->sync || c->live->sync.url[0] == '\0')
            c->sync_floor = -1; /* running, or off on purpose */
        return EL_OK;
    }
    snprintf(err, len, "sync cannot start with the new settings (%s)", el_status_str(st));
    if (sync_open(c, c->live) != EL_OK)
        log_error("reload: sync cannot start again with the running settings either: sync is "
                  "off until a reload or restart, and retention keeps every event it has not "
                  "shipped (up to seq %lld)",
                  (long long)c->sync_floor);
    else
        c->sync_floor = -1;
    return st;
}

static el_status apply_batch(struct core *c, const struct el_config *next, char *err, size_t len)
{
    struct batch_opts bo;
    options_batch(next, &bo);
    el_status st = batch_configure(c->batch, &bo);
    if (st != EL_OK) {
        snprintf(err, len, "batch.schedule '%s' is not valid", next->batch.schedule);
        return st;
    }
    memcpy(&c->live->batch, &next->batch, sizeof c->live->batch);
    return EL_OK;
}

static el_status apply_query(struct core *c, const struct el_config *next, char *err, size_t len)
{
    struct requests_commands none = {0};
    struct requests_opts ro;
    (void)err;
    (void)len;
    options_requests(next, &none, &ro);
    requests_set_limits(c->requests, &ro.serve);
    c->live->query.deadline_ms = next->query.deadline_ms;
    c->live->query.max_rows = next->query.max_rows;
    c->live->query.max_sketch_bins = next->query.max_sketch_bins;
    return EL_OK;
}

static el_status apply_continuous(struct core *c, const struct el_config *next, char *err,
                                  size_t len)
{
    struct cq_def *defs = malloc(CONTINUOUS_MAX_DEFS * sizeof *defs);
    if (!defs) {
        snprintf(err, len, "out of memory");
        return EL_NOMEM;
    }
    /* Only the sections change: the default topics keep the running prefix. */
    struct el_config *m = malloc(sizeof *m);
    if (!m) {
        free(defs);
        snprintf(err, len, "out of memory");
        return EL_NOMEM;
    }
    *m = *c->live;
    memcpy(m->continuous.def, next->continuous.def, sizeof m->continuous.def);
    m->continuous.n = next->continuous.n;
    int n = options_continuous(m, defs);
    free(m);
    el_status st = requests_set_continuous(c->requests, defs, n);
    free(defs);
    if (st != EL_OK) {
        snprintf(err, len, "the serving thread refused the table (%s)", el_status_str(st));
        return st;
    }
    memcpy(c->live->continuous.def, next->continuous.def, sizeof next->continuous.def);
    c->live->continuous.n = next->continuous.n;
    return EL_OK;
}

/* ---- SIGHUP ---- */

struct reload_plan {
    bool run[N_RULES];       /* per rule: its first entry of each apply function */
    char keys[N_RULES][384]; /* every [sync] key fits */
    char kept[512];
};

/* Appends ", text" (or text first) to buf[cap]. */
static void list_add(char *buf, size_t cap, const char *text)
{
    size_t n = strlen(buf);
    if (n + 1 < cap)
        snprintf(buf + n, cap - n, "%s%s", n ? ", " : "", text);
}

/* config_diff's callback: a changed key goes to its rule (the first rule
 * with the same apply function, so each function runs once) or is kept. */
static void plan_key(void *ctx, const char *section, const char *key)
{
    struct reload_plan *p = ctx;
    char name[96];
    snprintf(name, sizeof name, "%s.%s", section, key);
    const struct reload_rule *r = config_key_live(section, key) ? rule_of(section, key) : NULL;
    if (!r) {
        list_add(p->kept, sizeof p->kept, name);
        return;
    }
    size_t i = 0;
    while (reload_rules[i].apply != r->apply)
        i++;
    p->run[i] = true;
    list_add(p->keys[i], sizeof p->keys[i], name);
}

static void note_result(struct core *c, bool failed, const char *text)
{
    c->reloads++;
    c->reload_failures += failed ? 1u : 0u;
    c->reload_last_ms = plat_clock_wall_ms();
    size_t n = strnlen(text, sizeof c->reload_result - 1); /* cut: status keeps the start */
    memcpy(c->reload_result, text, n);
    c->reload_result[n] = '\0';
    c->status_last_key = 0; /* publish status now: it shows the new values */
}

void core_reload(struct core *c)
{
    char err[512], applied[1024] = "", failed[1024] = "";
    struct el_config *next = c->reload.load ? malloc(sizeof *next) : NULL;
    struct reload_plan *p = calloc(1, sizeof *p);
    if (!next || !p) {
        log_warn("SIGHUP: reload %s", c->reload.load ? "failed: out of memory" : "not available");
        free(next);
        free(p);
        return;
    }
    if (c->reload.load(c->reload.ctx, next, err, sizeof err) != EL_OK) {
        log_error("reload: %s; keeping the running configuration", err);
        note_result(c, true, err);
        free(next);
        free(p);
        return;
    }
    config_diff(c->live, next, plan_key, p);
    /* A reload that failed left sync off: any reload tries again. */
    const struct reload_rule *sr = rule_of("sync", "url");
    if (!c->sync && c->live->sync.url[0] != '\0' && !p->run[sr - reload_rules]) {
        p->run[sr - reload_rules] = true;
        list_add(p->keys[sr - reload_rules], sizeof p->keys[0], "sync (off since a failed reload)");
    }
    for (size_t i = 0; i < N_RULES; i++) {
        if (!p->run[i])
            continue;
        if (reload_rules[i].apply(c, next, err, sizeof err) == EL_OK) {
            list_add(applied, sizeof applied, p->keys[i]);
        } else {
            log_error("reload: %s not applied: %s; the running values stay", p->keys[i], err);
            list_add(failed, sizeof failed, p->keys[i]);
        }
    }
    char line[2688];
    if (!applied[0] && !failed[0] && !p->kept[0])
        snprintf(line, sizeof line, "the configuration is unchanged");
    else
        snprintf(line, sizeof line, "applied %s; kept until a restart: %s%s%s",
                 applied[0] ? applied : "none", p->kept[0] ? p->kept : "none",
                 failed[0] ? "; failed (running values stay): " : "", failed);
    log_info("reload: %s", line);
    note_result(c, failed[0] != '\0', line);
    free(next);
    free(p);
}

/* {"op":"sync"} from the serving thread (core.c, command_sync), done here
 * where c->sync is owned. */
void core_sync_requests(struct core *c)
{
    if (atomic_load_explicit(&c->sync_req, memory_order_relaxed) == 0)
        return;
    unsigned req = atomic_exchange(&c->sync_req, 0);
    if (c->sync && (req & CORE_SYNC_RETRY_PARKED))
        sync_retry_parked(c->sync);
    if (c->sync)
        sync_kick(c->sync);
}
