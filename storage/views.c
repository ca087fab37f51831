/*
 * views — batch views in views.db: reads and recompute (format and design
 * in views.h).
 *
 * Ownership: struct views owns its SQLite connection to views.db and its
 * statements (the only SQL here is on views.db's own tables); a recompute
 * opens (and closes) its own master-log reader (mlog_read.h), through which
 * it reads master.db, and owns the group table it aggregates into.
 */
#include "views.h"

#include <limits.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "mlog_read.h"
#include "plat_align.h"
#include "plat_clock.h"
#include "plat_hash.h"
#include "plat_log.h"

const int64_t views_res_ms[VIEWS_N_RES] = {60000, 3600000, 86400000};

/* How long a recompute's master-log reads wait for a lock. */
#define MASTER_BUSY_TIMEOUT_MS 10000

struct views {
    sqlite3 *db;
    sqlite3_stmt *read_rows, *get_row, *put_row;
    sqlite3_stmt *read_meta, *read_begin, *read_commit; /* prepared once */
    bool in_read;
    bool (*expired)(void *ctx);
    void *expired_ctx;
    /* Buckets with t < horizon[k] were dropped by the ladder (meta
     * dropped_before_<res>): the read snapshot's, or the run's. */
    int64_t horizon[VIEWS_N_RES];
    /* A full run keeps the buckets with t < floor[k] (their raw events were
     * partly trimmed): events it already covered (seq <= the watermark
     * before the run) are not added to them again, newer ones are merged. */
    int64_t floor[VIEWS_N_RES];
    int64_t run_previous_seq; /* the watermark before the run */
    int64_t run_new_rows[VIEWS_N_RES];
    int64_t run_new_min[VIEWS_N_RES]; /* the oldest bucket a run added */
    /* The writer's row counts (views_tiers), exact once known. */
    int64_t rows[VIEWS_N_RES];
    bool rows_known;
    int64_t oldest[VIEWS_N_RES]; /* the writer's oldest bucket per resolution (rows > 0) */
    bool oldest_known;           /* kept as runs add rows; found again after a drop */
};

struct group {
    int64_t res, t;
    uint32_t series;
    bool used;
    struct agg a;
    struct agg_sketch sk;
};

struct group_table {
    struct group *groups; /* VIEWS_MAX_GROUPS, open addressing over 2x slots */
    uint32_t *slots;      /* index+1, 0 = empty */
    uint32_t n, mask;
    uint32_t touched; /* groups whose sketch was ever initialised (high-water mark) */
};

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS views(res INTEGER NOT NULL, series INTEGER NOT NULL,"
    " t INTEGER NOT NULL, count INTEGER NOT NULL, sum_hi REAL, sum_lo REAL, min REAL, max REAL,"
    " mean REAL, m2 REAL, last_value REAL, last_ts INTEGER, last_seq INTEGER, sketch BLOB,"
    " PRIMARY KEY(res, series, t)) WITHOUT ROWID;"
    "INSERT OR IGNORE INTO meta VALUES('schema_version', 1);"
    "INSERT OR IGNORE INTO meta VALUES('watermark_seq', 0);";

/* How many ladder deletions one write transaction takes (views_drop). */
#define DROP_TXN_ROWS 20000

static el_status fail(sqlite3 *db, const char *what)
{
    log_error("views: %s: %s", what, sqlite3_errmsg(db));
    return (sqlite3_errcode(db) & 0xff) == SQLITE_FULL ? EL_FULL : EL_DB;
}

static el_status exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        log_error("views: %s: %s", sql, msg ? msg : "?");
        sqlite3_free(msg);
        return EL_DB;
    }
    return EL_OK;
}

/* How long opening views.db waits for the other connections opening it. */
#define OPEN_BUSY_TIMEOUT_MS 10000

/* The file is in WAL mode and has its schema: opening it writes nothing,
 * so it never waits for a recompute's write transaction. Reads only. */
static bool prepared_already(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    bool wal = false, schema = false;
    if (sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        const char *mode = (const char *)sqlite3_column_text(st, 0);
        wal = mode && strcmp(mode, "wal") == 0;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (wal && sqlite3_prepare_v2(db, "SELECT 1 FROM meta WHERE key='schema_version'", -1, &st,
                                  NULL) == SQLITE_OK)
        schema = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    return schema;
}

/*
 * WAL mode and the schema, on a file that the batch worker and every serving
 * thread open at the same moment at start-up. SQLite's busy handler does not
 * cover all of it: two connections both switching a fresh file to WAL, or
 * both upgrading a read to a write in autocommit, get SQLITE_BUSY at once
 * (one of them would deadlock waiting). So the schema is written in a
 * BEGIN IMMEDIATE transaction (the busy handler waits for the write lock),
 * and the whole step is retried on SQLITE_BUSY/SQLITE_LOCKED until
 * OPEN_BUSY_TIMEOUT_MS has passed. Every step is idempotent.
 */
static el_status prepare_file(sqlite3 *db)
{
    static const char *const steps[] = {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL",
                                        "BEGIN IMMEDIATE", schema_sql, "COMMIT"};
    if (prepared_already(db))
        return exec(db, "PRAGMA synchronous=NORMAL");
    int64_t deadline = plat_clock_mono_ms() + OPEN_BUSY_TIMEOUT_MS;
    int64_t pause_ms = 1;
    for (;;) {
        const char *failed = NULL;
        char *msg = NULL;
        int rc = SQLITE_OK;
        for (size_t i = 0; i < sizeof steps / sizeof steps[0] && !failed; i++)
            if ((rc = sqlite3_exec(db, steps[i], NULL, NULL, &msg)) != SQLITE_OK)
                failed = steps[i];
        if (!failed)
            return EL_OK;
        if (!sqlite3_get_autocommit(db))
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        bool busy = (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED;
        if (!busy || plat_clock_mono_ms() >= deadline) {
            log_error("views: %s: %s", failed, msg ? msg : "?");
            sqlite3_free(msg);
            return (rc & 0xff) == SQLITE_FULL ? EL_FULL : EL_DB;
        }
        sqlite3_free(msg);
        plat_sleep_ms(pause_ms);
        pause_ms = pause_ms < 64 ? 2 * pause_ms : 64;
    }
}

el_status views_open(const char *dir, struct views **out)
{
    char path[PATH_MAX];
    struct views *v = calloc(1, sizeof *v);
    el_status st = EL_DB;
    *out = NULL;
    if (!v)
        return EL_NOMEM;
    snprintf(path, sizeof path, "%s/views.db", dir);
    if (sqlite3_open_v2(path, &v->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        st = fail(v->db, "opening views.db");
        goto fail;
    }
    sqlite3_busy_timeout(v->db, OPEN_BUSY_TIMEOUT_MS);
    st = prepare_file(v->db);
    if (st != EL_OK)
        goto fail;
    if (sqlite3_prepare_v3(
            v->db,
            "SELECT t, count, sum_hi, sum_lo, min, max, mean, m2, last_value, last_ts,"
            " last_seq, sketch FROM views WHERE res=? AND series=? AND t>=? AND t<?"
            " ORDER BY t",
            -1, SQLITE_PREPARE_PERSISTENT, &v->read_rows, NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(v->db,
                           "SELECT count, sum_hi, sum_lo, min, max, mean, m2, last_value, last_ts,"
                           " last_seq, sketch FROM views WHERE res=? AND series=? AND t=?",
                           -1, SQLITE_PREPARE_PERSISTENT, &v->get_row, NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(v->db,
                           "INSERT OR REPLACE INTO views VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)", -1,
                           SQLITE_PREPARE_PERSISTENT, &v->put_row, NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(v->db, "SELECT value FROM meta WHERE key=?", -1,
                           SQLITE_PREPARE_PERSISTENT, &v->read_meta, NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(v->db, "BEGIN", -1, SQLITE_PREPARE_PERSISTENT, &v->read_begin, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v3(v->db, "COMMIT", -1, SQLITE_PREPARE_PERSISTENT, &v->read_commit, NULL) !=
            SQLITE_OK) {
        st = fail(v->db, "preparing statements");
        goto fail;
    }
    *out = v;
    return EL_OK;
fail:
    views_close(v);
    return st;
}

void views_close(struct views *v)
{
    if (!v)
        return;
    sqlite3_finalize(v->read_rows);
    sqlite3_finalize(v->get_row);
    sqlite3_finalize(v->put_row);
    sqlite3_finalize(v->read_meta);
    sqlite3_finalize(v->read_begin);
    sqlite3_finalize(v->read_commit);
    sqlite3_close(v->db);
    free(v);
}

/* A meta value (0: none), by a statement prepared once. */
static int64_t meta_int(struct views *v, const char *key)
{
    int64_t value = 0;
    sqlite3_bind_text(v->read_meta, 1, key, -1, SQLITE_STATIC);
    if (sqlite3_step(v->read_meta) == SQLITE_ROW)
        value = sqlite3_column_int64(v->read_meta, 0);
    sqlite3_reset(v->read_meta);
    return value;
}

static el_status meta_set(sqlite3 *db, const char *key, int64_t value)
{
    sqlite3_stmt *st = NULL;
    el_status rc = EL_OK;
    if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO meta VALUES(?,?)", -1, &st, NULL) !=
        SQLITE_OK)
        return fail(db, "writing meta");
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, value);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = fail(db, "writing meta");
    sqlite3_finalize(st);
    return rc;
}

int64_t views_watermark(struct views *v)
{
    return meta_int(v, "watermark_seq");
}

static int res_index(int64_t res)
{
    for (int k = 0; k < VIEWS_N_RES; k++)
        if (views_res_ms[k] == res)
            return k;
    return 0;
}

static void horizon_key(int k, char *buf, size_t cap)
{
    snprintf(buf, cap, "dropped_before_%lld", (long long)views_res_ms[k]);
}

/* Reads the ladder's horizons (in the caller's transaction). */
static void load_horizons(struct views *v)
{
    char key[40];
    for (int k = 0; k < VIEWS_N_RES; k++) {
        horizon_key(k, key, sizeof key);
        v->horizon[k] = meta_int(v, key);
    }
}

/* Steps a prepared BEGIN or COMMIT of a read. */
static bool step_tx(sqlite3_stmt *st)
{
    int s = sqlite3_step(st);
    sqlite3_reset(st);
    return s == SQLITE_DONE;
}

int64_t views_horizon(const struct views *v, int k)
{
    return k >= 0 && k < VIEWS_N_RES ? v->horizon[k] : 0;
}

/* ---- reads ---- */

el_status views_begin_read(struct views *v, int64_t *watermark_seq)
{
    if (v->in_read)
        views_end_read(v);
    if (!step_tx(v->read_begin))
        return fail(v->db, "BEGIN");
    v->in_read = true;
    /* The first read fixes the snapshot: the watermark, the horizons and the
     * rows agree. */
    *watermark_seq = meta_int(v, "watermark_seq");
    load_horizons(v);
    return EL_OK;
}

void views_end_read(struct views *v)
{
    if (v->in_read)
        sqlite3_reset(v->read_rows);
    if (v->in_read && !step_tx(v->read_commit))
        log_warn("views: ending a read: %s", sqlite3_errmsg(v->db));
    v->in_read = false;
}

static void row_to_agg(sqlite3_stmt *st, int first, struct agg *a)
{
    a->count = (uint64_t)sqlite3_column_int64(st, first);
    a->sum_hi = sqlite3_column_double(st, first + 1);
    a->sum_lo = sqlite3_column_double(st, first + 2);
    a->min = sqlite3_column_double(st, first + 3);
    a->max = sqlite3_column_double(st, first + 4);
    a->mean = sqlite3_column_double(st, first + 5);
    a->m2 = sqlite3_column_double(st, first + 6);
    a->last_value = sqlite3_column_double(st, first + 7);
    a->last_ts_ms = sqlite3_column_int64(st, first + 8);
    a->last_seq = sqlite3_column_int64(st, first + 9);
}

el_status views_series_totals(struct views *v, views_totals_fn fn, void *ctx)
{
    sqlite3_stmt *st = NULL;
    int r;
    /* One max() per group: SQLite takes the bare columns from that row;
     * the 1 d rows of a series cover disjoint days, so last_ts is unique. */
    if (sqlite3_prepare_v2(
            v->db,
            "SELECT series, sum(count), max(last_ts), last_seq, last_value FROM views"
            " WHERE res = 86400000 GROUP BY series",
            -1, &st, NULL) != SQLITE_OK)
        return fail(v->db, "reading view totals");
    while ((r = sqlite3_step(st)) == SQLITE_ROW)
        fn(ctx, (uint32_t)sqlite3_column_int64(st, 0), (uint64_t)sqlite3_column_int64(st, 1),
           sqlite3_column_int64(st, 2), sqlite3_column_int64(st, 3), sqlite3_column_double(st, 4));
    sqlite3_finalize(st);
    if (r == SQLITE_INTERRUPT)
        return EL_TIMEOUT;
    return r == SQLITE_DONE ? EL_OK : fail(v->db, "reading view totals");
}

static int views_progress(void *ctx)
{
    struct views *v = ctx;
    return v->expired && v->expired(v->expired_ctx) ? 1 : 0;
}

void views_set_interrupt(struct views *v, bool (*expired)(void *ctx), void *ctx)
{
    v->expired = expired;
    v->expired_ctx = ctx;
    sqlite3_progress_handler(v->db, expired ? 1000 : 0, expired ? views_progress : NULL, v);
}

el_status views_read(struct views *v, int64_t res_ms, uint32_t series, int64_t from_ms,
                     int64_t to_ms, views_row_fn fn, void *ctx)
{
    sqlite3_stmt *st = v->read_rows;
    struct agg a;
    int r;
    sqlite3_bind_int64(st, 1, res_ms);
    sqlite3_bind_int64(st, 2, series);
    sqlite3_bind_int64(st, 3, from_ms);
    sqlite3_bind_int64(st, 4, to_ms);
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        row_to_agg(st, 1, &a);
        fn(ctx, sqlite3_column_int64(st, 0), &a, sqlite3_column_blob(st, 11),
           (size_t)sqlite3_column_bytes(st, 11));
    }
    sqlite3_reset(st);
    if (r == SQLITE_INTERRUPT)
        return EL_TIMEOUT;
    return r == SQLITE_DONE ? EL_OK : fail(v->db, "reading views");
}

/* ---- recompute ---- */

static el_status groups_init(struct group_table *g)
{
    uint32_t cap = 1;
    while (cap < 2u * VIEWS_MAX_GROUPS)
        cap <<= 1;
    g->groups = calloc(VIEWS_MAX_GROUPS, sizeof g->groups[0]);
    g->slots = calloc(cap, sizeof g->slots[0]);
    g->mask = cap - 1;
    g->n = 0;
    g->touched = 0;
    /* Sketches are initialised on first use: a small incremental run then
     * touches only the pages of the groups it needs. */
    return g->groups && g->slots ? EL_OK : EL_NOMEM;
}

static void groups_cleanup(struct group_table *g)
{
    if (g->groups)
        for (uint32_t i = 0; i < g->touched; i++)
            agg_sketch_cleanup(&g->groups[i].sk);
    free(g->groups);
    free(g->slots);
}

static struct group *group_get(struct group_table *g, int64_t res, uint32_t series, int64_t t)
{
    uint64_t key[3] = {(uint64_t)res, series, (uint64_t)t};
    uint64_t h = plat_hash64(PLAT_HASH64_INIT, key, sizeof key);
    for (uint32_t i = (uint32_t)h & g->mask;; i = (i + 1) & g->mask) {
        if (g->slots[i] == 0) {
            if (g->n == VIEWS_MAX_GROUPS)
                return NULL;
            struct group *grp = &g->groups[g->n++];
            grp->res = res;
            grp->series = series;
            grp->t = t;
            agg_init(&grp->a);
            if (g->n > g->touched) {
                agg_sketch_init(&grp->sk);
                g->touched = g->n;
            } else {
                agg_sketch_reset(&grp->sk);
            }
            g->slots[i] = g->n;
            return grp;
        }
        struct group *grp = &g->groups[g->slots[i] - 1];
        if (grp->res == res && grp->series == series && grp->t == t)
            return grp;
    }
}

/* Merges every group into the view rows (inside the run's transaction). */
/* Merges the stored row of grp's bucket, if any, into grp (an incremental
 * run adds to what earlier runs aggregated). */
static el_status group_merge_stored(struct views *v, struct group *grp)
{
    sqlite3_stmt *st = v->get_row;
    el_status rc = EL_OK;
    sqlite3_bind_int64(st, 1, grp->res);
    sqlite3_bind_int64(st, 2, grp->series);
    sqlite3_bind_int64(st, 3, grp->t);
    if (sqlite3_step(st) != SQLITE_ROW) {
        int k = res_index(grp->res);
        v->run_new_rows[k]++;
        if (grp->t < v->run_new_min[k])
            v->run_new_min[k] = grp->t;
    } else {
        struct agg a;
        row_to_agg(st, 0, &a);
        agg_merge(&grp->a, &a);
        rc = agg_sketch_merge_serialized(&grp->sk, sqlite3_column_blob(st, 10),
                                         (size_t)sqlite3_column_bytes(st, 10));
    }
    sqlite3_reset(st);
    return rc;
}

/* Writes grp as its bucket's row, with its sketch serialized in blob. */
static el_status group_put(struct views *v, const struct group *grp, const uint8_t *blob,
                           size_t blen)
{
    sqlite3_stmt *st = v->put_row;
    el_status rc = EL_OK;
    sqlite3_bind_int64(st, 1, grp->res);
    sqlite3_bind_int64(st, 2, grp->series);
    sqlite3_bind_int64(st, 3, grp->t);
    sqlite3_bind_int64(st, 4, (int64_t)grp->a.count);
    sqlite3_bind_double(st, 5, grp->a.sum_hi);
    sqlite3_bind_double(st, 6, grp->a.sum_lo);
    sqlite3_bind_double(st, 7, grp->a.min);
    sqlite3_bind_double(st, 8, grp->a.max);
    sqlite3_bind_double(st, 9, grp->a.mean);
    sqlite3_bind_double(st, 10, grp->a.m2);
    sqlite3_bind_double(st, 11, grp->a.last_value);
    sqlite3_bind_int64(st, 12, grp->a.last_ts_ms);
    sqlite3_bind_int64(st, 13, grp->a.last_seq);
    sqlite3_bind_blob(st, 14, blob, (int)blen, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = fail(v->db, "writing a view row");
    sqlite3_reset(st);
    return rc;
}

static el_status groups_flush(struct views *v, struct group_table *g, struct views_run *run)
{
    uint8_t *blob = NULL;
    size_t blob_cap = 0;
    el_status rc = EL_OK;
    for (uint32_t i = 0; i < g->n && rc == EL_OK; i++) {
        struct group *grp = &g->groups[i];
        rc = group_merge_stored(v, grp);
        if (rc != EL_OK)
            break;
        size_t need = agg_sketch_serialized_size(&grp->sk);
        if (need > blob_cap) {
            uint8_t *nb = realloc(blob, need);
            if (!nb) {
                rc = EL_NOMEM;
                break;
            }
            blob = nb;
            blob_cap = need;
        }
        size_t blen = agg_sketch_serialize(&grp->sk, blob, blob_cap);
        rc = group_put(v, grp, blob, blen);
        run->groups++;
    }
    free(blob);
    memset(g->slots, 0, ((size_t)g->mask + 1) * sizeof g->slots[0]);
    g->n = 0;
    return rc;
}

static double thread_cpu_s(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_THREAD, &ru) != 0)
        return 0;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
           ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

/* One aggregation pass: the row callback's state. */
struct aggregate_ctx {
    struct views *v;
    struct group_table *g;
    struct views_run *run;
    el_status rc;
};

/* Adds one master-log event to its group at every resolution, flushing the
 * group table when it fills; false (rc set) on failure. */
static bool aggregate_row(void *ctx, const struct mlog_chunk_row *row)
{
    struct aggregate_ctx *a = ctx;
    a->run->events++;
    for (int k = 0; k < VIEWS_N_RES && a->rc == EL_OK; k++) {
        int64_t res = views_res_ms[k];
        int64_t t = plat_align_down(row->ts_ms, res);
        if (t < a->v->horizon[k])
            continue; /* dropped by the ladder */
        if (t < a->v->floor[k] && row->seq <= a->v->run_previous_seq)
            continue; /* full: already in a bucket kept from trimmed raw */
        struct group *grp = group_get(a->g, res, row->series, t);
        if (!grp) {
            a->rc = groups_flush(a->v, a->g, a->run);
            grp = a->rc == EL_OK ? group_get(a->g, res, row->series, t) : NULL;
            if (!grp)
                break;
        }
        agg_add(&grp->a, row->value, row->ts_ms, row->seq);
        if (agg_sketch_add(&grp->sk, row->value) != EL_OK)
            a->rc = EL_NOMEM;
    }
    return a->rc == EL_OK;
}

/* Aggregates events (lo, hi] of the master log into the group table, in
 * chunks of VIEWS_CHUNK_ROWS events. The reader is outside any snapshot, so
 * each chunk is one short read transaction of its own and none is held
 * between chunks: a long run never holds one read transaction (the WAL
 * could not be checkpointed behind it). Rows <= the run's snapshot never
 * change (views.h, RECOMPUTE), so the chunks add up to one consistent read. */
static el_status aggregate_range(struct views *v, struct mlog_reader *log, int64_t lo, int64_t hi,
                                 struct group_table *g, atomic_int *cancel,
                                 void (*yield_fn)(void *), void *yield_ctx, struct views_run *run)
{
    struct aggregate_ctx a = {.v = v, .g = g, .run = run, .rc = EL_OK};
    el_status rc = EL_OK;
    int64_t from = lo;
    while (rc == EL_OK && from < hi) {
        int64_t last = from;
        rc = mlog_reader_scan_seq_chunk(log, from, hi, VIEWS_CHUNK_ROWS, 0, aggregate_row, &a,
                                        &last);
        if (rc == EL_OK)
            rc = a.rc;
        if (last == from)
            break; /* no more rows */
        from = last;
        if (cancel && atomic_load(cancel))
            rc = EL_AGAIN;
        else if (yield_fn)
            yield_fn(yield_ctx);
    }
    return rc;
}

/* Fixes the run's snapshot S in one short read snapshot of the master log
 * and, for an incremental run, whether any event lies beyond the watermark:
 * with none (only dead letters arrived, or nothing) the run is skipped and
 * writes nothing at all. */
static el_status take_snapshot(struct views *v, struct mlog_reader *log, bool full,
                               struct views_run *run)
{
    int64_t watermark = meta_int(v, "watermark_seq");
    bool any = true;
    el_status rc = mlog_reader_begin(log);
    if (rc == EL_OK)
        rc = mlog_reader_snapshot_for_batch(log, &run->snapshot_seq);
    if (rc == EL_OK && full)
        rc = mlog_reader_trimmed_max_ts(log, &run->trimmed_max_ts);
    if (rc == EL_OK && !full &&
        mlog_reader_events_between(log, watermark, run->snapshot_seq, &any) != EL_OK)
        any = true; /* cannot tell: let the run find out */
    mlog_reader_end(log);
    if (rc == EL_OK && !full && !any) {
        run->previous_seq = run->snapshot_seq = watermark;
        run->skipped = true;
    }
    return rc;
}

/* A full run's clearing: every bucket whose raw events are all still in the
 * master log (t >= the first bucket after trimmed_max_ts) is deleted, to be
 * rebuilt; older ones keep what the views learnt before retention removed
 * their raw events, and the run adds nothing to them (floor). */
static el_status full_clear(struct views *v, int64_t trimmed_max_ts)
{
    sqlite3_stmt *st = NULL;
    el_status rc = EL_OK;
    if (sqlite3_prepare_v2(v->db, "DELETE FROM views WHERE res=?1 AND t >= ?2", -1, &st, NULL) !=
        SQLITE_OK)
        return fail(v->db, "clearing views");
    for (int k = 0; k < VIEWS_N_RES && rc == EL_OK; k++) {
        int64_t keep = trimmed_max_ts > INT64_MIN + 1
                           ? plat_align_up(trimmed_max_ts + 1, views_res_ms[k])
                           : INT64_MIN;
        v->floor[k] = keep > v->floor[k] ? keep : v->floor[k];
        sqlite3_bind_int64(st, 1, views_res_ms[k]);
        sqlite3_bind_int64(st, 2, keep);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = fail(v->db, "clearing views");
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    return rc;
}

/* A full run: retention must not have trimmed anything newer than the run's
 * trimmed_max_ts while the run read the log (the core does not trim while a
 * run is going on, but a requested run may start between its check and its
 * trim): the buckets it cleared would be rebuilt without those events.
 * Checked after the last chunk, before COMMIT: a trim after it removes
 * nothing the run did not read. EL_AGAIN with run->trim_raced: roll back,
 * the caller runs again. */
static el_status check_trimmed(struct mlog_reader *log, struct views_run *run)
{
    int64_t now = 0;
    el_status rc = mlog_reader_begin(log);
    if (rc == EL_OK)
        rc = mlog_reader_trimmed_max_ts(log, &now);
    mlog_reader_end(log);
    if (rc == EL_OK && now != run->trimmed_max_ts) {
        run->trim_raced = true;
        rc = EL_AGAIN;
    }
    return rc;
}

/* The views' side of a run: one write transaction on views.db that merges
 * (or, full, rebuilds) the rows and sets the watermark to S. */
static el_status write_run(struct views *v, struct mlog_reader *log, struct group_table *g,
                           atomic_int *cancel, void (*yield_fn)(void *ctx), void *yield_ctx,
                           struct views_run *run)
{
    bool full = run->full;
    el_status rc = exec(v->db, "BEGIN IMMEDIATE");
    if (rc != EL_OK)
        return rc;
    run->previous_seq = meta_int(v, "watermark_seq");
    int64_t lo = full ? 0 : run->previous_seq;
    load_horizons(v);
    memset(v->run_new_rows, 0, sizeof v->run_new_rows);
    for (int k = 0; k < VIEWS_N_RES; k++)
        v->run_new_min[k] = INT64_MAX;
    for (int k = 0; k < VIEWS_N_RES; k++)
        v->floor[k] = v->horizon[k];
    v->run_previous_seq = run->previous_seq;
    if (full)
        rc = full_clear(v, run->trimmed_max_ts);
    if (rc == EL_OK && run->snapshot_seq > lo)
        rc = aggregate_range(v, log, lo, run->snapshot_seq, g, cancel, yield_fn, yield_ctx, run);
    if (rc == EL_OK)
        rc = groups_flush(v, g, run);
    if (rc == EL_OK && full)
        rc = check_trimmed(log, run);
    if (rc == EL_OK && run->snapshot_seq > run->previous_seq)
        rc = meta_set(v->db, "watermark_seq", run->snapshot_seq);
    if (rc == EL_OK && full && run->snapshot_seq < run->previous_seq)
        rc = meta_set(v->db, "watermark_seq", run->snapshot_seq);
    if (rc == EL_OK)
        rc = meta_set(v->db, full ? "last_full_ms" : "last_run_ms", plat_clock_wall_ms());
    if (rc == EL_OK && full)
        rc = meta_set(v->db, "last_run_ms", plat_clock_wall_ms());
    /* The swap: one commit makes the whole new view visible at once. */
    if (rc == EL_OK)
        rc = exec(v->db, "COMMIT");
    if (rc == EL_OK && full)
        v->rows_known = v->oldest_known = false; /* found again when next asked */
    for (int k = 0; k < VIEWS_N_RES && rc == EL_OK; k++) {
        if (v->run_new_rows[k] > 0 && (v->rows[k] == 0 || v->run_new_min[k] < v->oldest[k]))
            v->oldest[k] = v->run_new_min[k];
        v->rows[k] += v->run_new_rows[k];
    }
    if (rc != EL_OK && !sqlite3_get_autocommit(v->db))
        (void)exec(v->db, "ROLLBACK");
    return rc;
}

el_status views_recompute(struct views *v, const char *dir, bool full, atomic_int *cancel,
                          void (*yield_fn)(void *ctx), void *yield_ctx, struct views_run *run)
{
    struct mlog_reader *log = NULL;
    struct group_table g = {0};
    int64_t t0 = plat_clock_mono_ms();
    double cpu0 = thread_cpu_s();
    memset(run, 0, sizeof *run);
    run->full = full;
    el_status rc = mlog_reader_open_seq(dir, MASTER_BUSY_TIMEOUT_MS, &log);
    if (rc == EL_OK)
        rc = groups_init(&g);
    /* A full run that raced with a trim (check_trimmed) runs again, a
     * bounded number of times: the core trims at most once a second. */
    for (int attempt = 0; rc == EL_OK && attempt < VIEWS_TRIM_RETRIES; attempt++) {
        rc = take_snapshot(v, log, full, run);
        if (rc == EL_OK && !run->skipped)
            rc = write_run(v, log, &g, cancel, yield_fn, yield_ctx, run);
        if (rc != EL_AGAIN || !run->trim_raced)
            break;
        log_info("views: a trim ran during the full recompute: running it again");
        run->trim_retries++;
        run->trim_raced = false;
        run->events = 0;
        run->groups = 0;
        rc = attempt + 1 < VIEWS_TRIM_RETRIES ? EL_OK : EL_AGAIN;
    }
    mlog_reader_close(log);
    groups_cleanup(&g);
    run->wall_ms = plat_clock_mono_ms() - t0;
    run->cpu_s = thread_cpu_s() - cpu0;
    return rc;
}

/* ---- the ladder (batch worker) ---- */

static el_status series_bounds(struct views *v, int k, int64_t *lo, int64_t *hi)
{
    sqlite3_stmt *st = NULL;
    *lo = 1;
    *hi = 0;
    if (sqlite3_prepare_v2(v->db, "SELECT min(series), max(series) FROM views WHERE res=?", -1, &st,
                           NULL) != SQLITE_OK)
        return fail(v->db, "reading view series");
    sqlite3_bind_int64(st, 1, views_res_ms[k]);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        *lo = sqlite3_column_int64(st, 0);
        *hi = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    return EL_OK;
}

/* Deletes tier k's buckets with t < before, series by series, committing
 * every DROP_TXN_ROWS rows or so. */
static el_status drop_rows(struct views *v, int k, int64_t before, bool (*stop)(void *ctx),
                           void *ctx, int64_t *deleted)
{
    sqlite3_stmt *st = NULL;
    int64_t lo, hi, in_txn = 0;
    el_status rc = series_bounds(v, k, &lo, &hi);
    if (rc == EL_OK &&
        sqlite3_prepare_v2(v->db, "DELETE FROM views WHERE res=?1 AND series=?2 AND t < ?3", -1,
                           &st, NULL) != SQLITE_OK)
        rc = fail(v->db, "preparing a ladder deletion");
    if (rc == EL_OK)
        rc = exec(v->db, "BEGIN IMMEDIATE");
    for (int64_t s = lo; s <= hi && rc == EL_OK; s++) {
        sqlite3_bind_int64(st, 1, views_res_ms[k]);
        sqlite3_bind_int64(st, 2, s);
        sqlite3_bind_int64(st, 3, before);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = fail(v->db, "dropping view rows");
        sqlite3_reset(st);
        in_txn += sqlite3_changes(v->db);
        if (rc == EL_OK && in_txn >= DROP_TXN_ROWS) {
            *deleted += in_txn;
            in_txn = 0;
            rc = exec(v->db, "COMMIT");
            if (rc == EL_OK && stop && stop(ctx))
                break; /* the horizon stands; the next step deletes the rest */
            if (rc == EL_OK)
                rc = exec(v->db, "BEGIN IMMEDIATE");
        }
    }
    if (rc == EL_OK && !sqlite3_get_autocommit(v->db))
        rc = exec(v->db, "COMMIT");
    if (rc == EL_OK)
        *deleted += in_txn;
    if (!sqlite3_get_autocommit(v->db))
        (void)exec(v->db, "ROLLBACK");
    sqlite3_finalize(st);
    return rc;
}

el_status views_drop(struct views *v, int k, int64_t before, bool (*stop)(void *ctx), void *ctx,
                     int64_t *deleted)
{
    char key[40];
    *deleted = 0;
    if (k < 0 || k >= VIEWS_N_RES)
        return EL_INVAL;
    /* The horizon first: a reader that sees a bucket gone also sees why. */
    horizon_key(k, key, sizeof key);
    el_status rc = exec(v->db, "BEGIN IMMEDIATE");
    if (rc == EL_OK && meta_int(v, key) < before)
        rc = meta_set(v->db, key, before);
    if (rc == EL_OK)
        rc = exec(v->db, "COMMIT");
    else if (!sqlite3_get_autocommit(v->db))
        (void)exec(v->db, "ROLLBACK");
    if (rc == EL_OK)
        rc = drop_rows(v, k, before, stop, ctx, deleted);
    v->rows[k] -= *deleted;
    v->oldest_known = false;
    return rc;
}

/* The oldest bucket of tier k: one indexed seek per series. */
static el_status oldest_bucket(struct views *v, int k, int64_t *oldest)
{
    sqlite3_stmt *st = NULL;
    int64_t lo, hi;
    el_status rc = series_bounds(v, k, &lo, &hi);
    *oldest = 0;
    if (rc == EL_OK && sqlite3_prepare_v2(v->db,
                                          "SELECT t FROM views WHERE res=?1 AND series=?2"
                                          " ORDER BY t LIMIT 1",
                                          -1, &st, NULL) != SQLITE_OK)
        rc = fail(v->db, "reading the oldest view row");
    bool any = false;
    for (int64_t s = lo; s <= hi && rc == EL_OK; s++) {
        sqlite3_bind_int64(st, 1, views_res_ms[k]);
        sqlite3_bind_int64(st, 2, s);
        int r = sqlite3_step(st);
        if (r == SQLITE_ROW && (!any || sqlite3_column_int64(st, 0) < *oldest)) {
            *oldest = sqlite3_column_int64(st, 0);
            any = true;
        } else if (r != SQLITE_ROW && r != SQLITE_DONE) {
            rc = fail(v->db, "reading the oldest view row");
        }
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    return rc;
}

static el_status count_rows(struct views *v)
{
    sqlite3_stmt *st = NULL;
    el_status rc = EL_OK;
    if (sqlite3_prepare_v2(v->db, "SELECT count(*) FROM views WHERE res=?", -1, &st, NULL) !=
        SQLITE_OK)
        return fail(v->db, "counting view rows");
    for (int k = 0; k < VIEWS_N_RES && rc == EL_OK; k++) {
        sqlite3_bind_int64(st, 1, views_res_ms[k]);
        if (sqlite3_step(st) == SQLITE_ROW)
            v->rows[k] = sqlite3_column_int64(st, 0);
        else
            rc = fail(v->db, "counting view rows");
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    v->rows_known = rc == EL_OK;
    return rc;
}

static int64_t pragma_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t v = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

el_status views_tiers(struct views *v, struct views_tiers *out)
{
    memset(out, 0, sizeof *out);
    el_status rc = v->rows_known ? EL_OK : count_rows(v);
    if (rc == EL_OK)
        rc = exec(v->db, "BEGIN");
    if (rc != EL_OK)
        return rc;
    load_horizons(v);
    for (int k = 0; k < VIEWS_N_RES && rc == EL_OK && !v->oldest_known; k++)
        rc = oldest_bucket(v, k, &v->oldest[k]);
    v->oldest_known = rc == EL_OK;
    for (int k = 0; k < VIEWS_N_RES; k++) {
        out->tier[k].rows = v->rows[k];
        out->tier[k].horizon = v->horizon[k];
        out->tier[k].oldest = v->rows[k] > 0 ? v->oldest[k] : 0;
    }
    (void)exec(v->db, "COMMIT");
    out->used_bytes =
        pragma_int(v->db, "PRAGMA page_count") - pragma_int(v->db, "PRAGMA freelist_count");
    out->used_bytes *= pragma_int(v->db, "PRAGMA page_size");
    return rc;
}
