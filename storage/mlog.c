/*
 * mlog — SQLite master log (format, durability and threading in mlog.h).
 *
 * Ownership: struct mlog owns its connection, prepared statements, the
 * series dictionary (hash table + one malloc'ed name per series, allocated
 * when a series is first seen — bounded by max_series, never per message).
 */
#include "mlog.h"

#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "plat_file.h"
#include "plat_hash.h"
#include "plat_log.h"
#include "series_dict.h"

#define DIRTY_BLOCKS 64

struct block_range {
    int64_t block, min_ts, max_ts, n;
};

struct mlog {
    sqlite3 *db;
    sqlite3_stmt *ins_event, *ins_dead, *ins_series, *upsert_block, *ins_unanchored;
    sqlite3_stmt *mark_replayed;
    /* blocks touched by the open transaction (flushed before COMMIT) */
    struct block_range dirty[DIRTY_BLOCKS];
    uint32_t n_dirty;
    char path[PATH_MAX];
    char wal_path[PATH_MAX + 8];
    int64_t boot_row;

    uint32_t max_series;
    struct series_dict *series;
    uint32_t n_series_committed;

    bool in_txn;
    uint32_t pending;
    int64_t last_seq, last_seq_committed;
    int64_t last_event_seq, last_event_seq_committed; /* events only, not dead letters */
    int64_t n_events, n_events_committed;             /* rows of `events` (sum of blocks.n) */
};

static const char *const schema_sql =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS boots(id INTEGER PRIMARY KEY, boot_id TEXT UNIQUE NOT NULL,"
    " first_seq INTEGER NOT NULL, first_wall_ms INTEGER NOT NULL,"
    " first_mono_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS series(id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL,"
    " first_seq INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS events(seq INTEGER PRIMARY KEY, series INTEGER NOT NULL,"
    " ts INTEGER NOT NULL, value REAL NOT NULL, recv INTEGER NOT NULL, mono INTEGER NOT NULL,"
    " boot INTEGER NOT NULL, flags INTEGER NOT NULL, payload BLOB);"
    "CREATE TABLE IF NOT EXISTS blocks(block INTEGER PRIMARY KEY, min_ts INTEGER NOT NULL,"
    " max_ts INTEGER NOT NULL, n INTEGER);"
    "CREATE TABLE IF NOT EXISTS unanchored(seq INTEGER PRIMARY KEY, series INTEGER NOT NULL,"
    " ts INTEGER NOT NULL, value REAL NOT NULL, recv INTEGER NOT NULL, mono INTEGER NOT NULL,"
    " boot INTEGER NOT NULL, flags INTEGER NOT NULL, payload BLOB);"
    "CREATE TABLE IF NOT EXISTS dead_letters(seq INTEGER PRIMARY KEY, topic TEXT NOT NULL,"
    " payload BLOB, payload_bytes INTEGER NOT NULL, recv INTEGER NOT NULL,"
    " mono INTEGER NOT NULL, boot INTEGER NOT NULL, flags INTEGER NOT NULL,"
    " reason TEXT NOT NULL, detail TEXT, replayed_seq INTEGER);";

static el_status db_fail(struct mlog *log, const char *what)
{
    int code = sqlite3_extended_errcode(log->db);
    log_error("master log: %s: %s", what, sqlite3_errmsg(log->db));
    if ((code & 0xff) == SQLITE_FULL)
        return EL_FULL;
    if ((code & 0xff) == SQLITE_CORRUPT || (code & 0xff) == SQLITE_NOTADB)
        return EL_CORRUPT;
    if ((code & 0xff) == SQLITE_IOERR)
        return EL_IO;
    return EL_DB;
}

static el_status exec(struct mlog *log, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(log->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        log_error("master log: %s: %s", sql, msg ? msg : "?");
        sqlite3_free(msg);
        return EL_DB;
    }
    return EL_OK;
}

static int64_t query_int(struct mlog *log, const char *sql, int64_t dflt)
{
    sqlite3_stmt *st = NULL;
    int64_t v = dflt;
    if (sqlite3_prepare_v2(log->db, sql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* ---- series dictionary ---- */

/* Forgets series created by a rolled-back transaction. */
static void series_rollback(struct mlog *log)
{
    series_dict_truncate(log->series, log->n_series_committed);
}

static el_status series_load(struct mlog *log)
{
    sqlite3_stmt *st = NULL;
    el_status rc = EL_OK;
    int r;
    if (sqlite3_prepare_v2(log->db, "SELECT id, name FROM series ORDER BY id", -1, &st, NULL) !=
        SQLITE_OK)
        return db_fail(log, "reading series");
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        const char *name = (const char *)sqlite3_column_text(st, 1);
        size_t len = (size_t)sqlite3_column_bytes(st, 1);
        if (id < 1 || id > log->max_series) {
            log_error("master log holds series id %lld but speed.max_series is %u", (long long)id,
                      log->max_series);
            rc = EL_INVAL;
            break;
        }
        rc = series_dict_add(log->series, name, len, (uint32_t)id);
        if (rc != EL_OK)
            break;
    }
    if (rc == EL_OK && r != SQLITE_DONE)
        rc = db_fail(log, "reading series");
    sqlite3_finalize(st);
    log->n_series_committed = series_dict_count(log->series);
    return rc;
}

/* ---- unanchored events (mlog.h, "Clocks") ---- */

/* Runs sql with ?1 bound to this boot's row; *changes = rows changed. */
static el_status exec_boot(struct mlog *log, const char *sql, int64_t arg2, int *changes)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(log->db, sql, -1, &st, NULL) != SQLITE_OK)
        return db_fail(log, "moving unanchored events");
    sqlite3_bind_int64(st, 1, log->boot_row);
    if (sqlite3_bind_parameter_count(st) > 1)
        sqlite3_bind_int64(st, 2, arg2);
    int r = sqlite3_step(st);
    sqlite3_finalize(st);
    if (r != SQLITE_DONE)
        return db_fail(log, "moving unanchored events");
    if (changes)
        *changes = sqlite3_changes(log->db);
    return EL_OK;
}

/* Earlier boots' unanchored rows can never get a true time: dead letters. */
static el_status retire_unanchored(struct mlog *log)
{
    int n = 0;
    el_status rc = exec_boot(
        log,
        "INSERT INTO dead_letters(seq,topic,payload,payload_bytes,recv,mono,boot,flags,reason)"
        " SELECT u.seq, s.name, u.payload, coalesce(length(u.payload),0), u.recv, u.mono, u.boot,"
        " u.flags, 'clock_never_synced' FROM unanchored u JOIN series s ON s.id = u.series"
        " WHERE u.boot <> ?1",
        0, &n);
    if (rc == EL_OK)
        rc = exec_boot(log, "DELETE FROM unanchored WHERE boot <> ?1", 0, NULL);
    if (rc == EL_OK && n > 0)
        log_warn("master log: %d events received on an earlier boot whose clock was never "
                 "synchronised cannot be placed in time; moved to dead_letters "
                 "(clock_never_synced)",
                 n);
    return rc;
}

/* ---- open / close ---- */

static el_status prepare_all(struct mlog *log)
{
    static const char ins_event[] = "INSERT INTO events(seq,series,ts,value,recv,mono,boot,flags,"
                                    "payload) VALUES(?,?,?,?,?,?,?,?,?)";
    static const char ins_dead[] = "INSERT INTO dead_letters(seq,topic,payload,payload_bytes,recv,"
                                   "mono,boot,flags,reason,detail) VALUES(?,?,?,?,?,?,?,?,?,?)";
    static const char ins_series[] = "INSERT INTO series(id,name,first_seq) VALUES(?,?,?)";
    static const char mark_replayed[] = "UPDATE dead_letters SET replayed_seq=?2 WHERE seq=?1 AND "
                                        "replayed_seq IS NULL";
    static const char ins_unanchored[] = "INSERT INTO unanchored(seq,series,ts,value,recv,mono,"
                                         "boot,flags,payload) VALUES(?,?,?,?,?,?,?,?,?)";
    static const char upsert_block[] =
        "INSERT INTO blocks(block,min_ts,max_ts,n) VALUES(?,?,?,?) ON CONFLICT(block) DO UPDATE"
        " SET min_ts=min(min_ts,excluded.min_ts), max_ts=max(max_ts,excluded.max_ts),"
        " n=coalesce(n,0)+excluded.n";
    if (sqlite3_prepare_v3(log->db, upsert_block, -1, SQLITE_PREPARE_PERSISTENT, &log->upsert_block,
                           NULL) != SQLITE_OK)
        return db_fail(log, "preparing statements");
    if (sqlite3_prepare_v3(log->db, ins_event, -1, SQLITE_PREPARE_PERSISTENT, &log->ins_event,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(log->db, ins_dead, -1, SQLITE_PREPARE_PERSISTENT, &log->ins_dead,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(log->db, ins_series, -1, SQLITE_PREPARE_PERSISTENT, &log->ins_series,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(log->db, ins_unanchored, -1, SQLITE_PREPARE_PERSISTENT,
                           &log->ins_unanchored, NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(log->db, mark_replayed, -1, SQLITE_PREPARE_PERSISTENT,
                           &log->mark_replayed, NULL) != SQLITE_OK)
        return db_fail(log, "preparing statements");
    return EL_OK;
}

static el_status boot_register(struct mlog *log, const char *boot_id, int64_t wall_ms,
                               int64_t mono_ms)
{
    sqlite3_stmt *st = NULL;
    el_status rc = EL_OK;
    if (sqlite3_prepare_v2(log->db,
                           "INSERT OR IGNORE INTO boots(boot_id,first_seq,first_wall_ms,"
                           "first_mono_ms) VALUES(?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK)
        return db_fail(log, "registering boot");
    sqlite3_bind_text(st, 1, boot_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, log->last_seq + 1);
    sqlite3_bind_int64(st, 3, wall_ms);
    sqlite3_bind_int64(st, 4, mono_ms);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = db_fail(log, "registering boot");
    sqlite3_finalize(st);
    if (rc != EL_OK)
        return rc;
    if (sqlite3_prepare_v2(log->db, "SELECT id FROM boots WHERE boot_id=?", -1, &st, NULL) !=
        SQLITE_OK)
        return db_fail(log, "registering boot");
    sqlite3_bind_text(st, 1, boot_id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW)
        log->boot_row = sqlite3_column_int64(st, 0);
    else
        rc = db_fail(log, "registering boot");
    sqlite3_finalize(st);
    return rc;
}

/* Files trimmed by versions that did not record trimmed_max_ts (mlog_trim):
 * without it a full recompute would delete every view bucket and rebuild
 * them from the events left. Trimmed (the oldest sequence left is above 1,
 * or nothing is left of the series' events) and no key: a conservative one,
 * the newest event time of the oldest block left (events arrive mostly in
 * time order), or, with none left, MLOG_TRIMMED_UNKNOWN (every bucket is
 * kept). Too high only keeps more buckets from being rebuilt (views.h). */
static el_status trimmed_migrate(struct mlog *log)
{
    char sql[160];
    if (query_int(log, "SELECT count(*) FROM meta WHERE key='trimmed_max_ts'", 1) != 0)
        return EL_OK;
    int64_t oldest = query_int(log,
                               "SELECT min(s) FROM (SELECT min(seq) AS s FROM events UNION ALL"
                               " SELECT min(seq) FROM dead_letters UNION ALL"
                               " SELECT min(seq) FROM unanchored)",
                               0);
    if (oldest == 1 || (oldest == 0 && query_int(log, "SELECT count(*) FROM series", 0) == 0))
        return EL_OK; /* nothing was trimmed (or nothing was ever written) */
    int64_t ts =
        query_int(log, "SELECT max_ts FROM blocks ORDER BY block LIMIT 1", MLOG_TRIMMED_UNKNOWN);
    snprintf(sql, sizeof sql, "INSERT INTO meta VALUES('trimmed_max_ts', %lld)", (long long)ts);
    log_warn("master log %s was trimmed by an older version: the views keep their buckets up to "
             "event time %lld (trimmed_max_ts)",
             log->path, (long long)ts);
    return exec(log, sql);
}

/* mlog_open's one write transaction: the schema (created or checked), the
 * last sequences, this boot, and the waiting readings of boots that ended
 * unsynchronised retired to dead letters. */
static el_status open_txn(struct mlog *log, const char *boot_id, int64_t wall_ms, int64_t mono_ms)
{
    el_status rc = exec(log, "BEGIN IMMEDIATE");
    if (rc != EL_OK)
        return rc;
    rc = exec(log, schema_sql);
    if (rc == EL_OK && query_int(log, "SELECT value FROM meta WHERE key='schema_version'", 0) == 0)
        rc = exec(log, "INSERT INTO meta VALUES('schema_version',1),"
                       "('created_ms',CAST(strftime('%s','now') AS INTEGER)*1000)");
    if (rc == EL_OK && query_int(log, "SELECT value FROM meta WHERE key='schema_version'", 0) !=
                           MLOG_SCHEMA_VERSION) {
        log_error("master log %s has an unknown schema version", log->path);
        rc = EL_CORRUPT;
    }
    /* Additive columns of schema version 1 (older files lack them). */
    if (rc == EL_OK && query_int(log,
                                 "SELECT count(*) FROM pragma_table_info('dead_letters') WHERE "
                                 "name='detail'",
                                 1) == 0)
        rc = exec(log, "ALTER TABLE dead_letters ADD COLUMN detail TEXT");
    if (rc == EL_OK && query_int(log,
                                 "SELECT count(*) FROM pragma_table_info('dead_letters') WHERE "
                                 "name='replayed_seq'",
                                 1) == 0)
        rc = exec(log, "ALTER TABLE dead_letters ADD COLUMN replayed_seq INTEGER");
    if (rc == EL_OK) {
        int64_t a = query_int(log, "SELECT max(seq) FROM events", 0);
        int64_t b = query_int(log, "SELECT max(seq) FROM dead_letters", 0);
        int64_t u = query_int(log, "SELECT max(seq) FROM unanchored", 0);
        log->last_event_seq = log->last_event_seq_committed = a > u ? a : u;
        a = a > b ? a : b;
        a = a > u ? a : u;
        /* Seqs handed out but never stored (mlog_skip_seqs) stay taken. */
        int64_t f = query_int(log, "SELECT value FROM meta WHERE key='seq_floor'", 0);
        log->last_seq = log->last_seq_committed = a > f ? a : f;
        rc = boot_register(log, boot_id, wall_ms, mono_ms);
    }
    /* Events per block (blocks.n, written with the summaries at no extra
     * page): counted once for files written before it existed. */
    if (rc == EL_OK &&
        query_int(log, "SELECT count(*) FROM pragma_table_info('blocks') WHERE name='n'", 1) == 0)
        rc = exec(log, "ALTER TABLE blocks ADD COLUMN n INTEGER");
    if (rc == EL_OK)
        rc = exec(log, "UPDATE blocks SET n = (SELECT count(*) FROM events WHERE seq >= "
                       "blocks.block << 10 AND seq < (blocks.block + 1) << 10) WHERE n IS NULL");
    if (rc == EL_OK)
        log->n_events = log->n_events_committed =
            query_int(log, "SELECT coalesce(sum(n), 0) FROM blocks", 0);
    if (rc == EL_OK)
        rc = retire_unanchored(log);
    if (rc == EL_OK)
        rc = trimmed_migrate(log);
    if (rc == EL_OK)
        return exec(log, "COMMIT");
    (void)exec(log, "ROLLBACK");
    return rc;
}

el_status mlog_open(const struct mlog_opts *opts, const char *boot_id, int64_t wall_ms,
                    int64_t mono_ms, struct mlog **out)
{
    el_status rc;
    struct mlog *log = calloc(1, sizeof *log);
    *out = NULL;
    if (!log)
        return EL_NOMEM;
    log->max_series = opts->max_series;
    rc = series_dict_new(opts->max_series, &log->series);
    if (rc != EL_OK)
        goto fail;
    rc = plat_file_mkdirs(opts->dir);
    if (rc != EL_OK)
        goto fail;
    snprintf(log->path, sizeof log->path, "%s/master.db", opts->dir);
    snprintf(log->wal_path, sizeof log->wal_path, "%s-wal", log->path);
    if (sqlite3_open_v2(log->path, &log->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        rc = db_fail(log, "opening master.db");
        goto fail;
    }
    sqlite3_extended_result_codes(log->db, 1);
    sqlite3_busy_timeout(log->db, 5000);
    /* WAL for concurrent readers; FULL so every group commit is fdatasync'ed
     * (this bounds what a power cut can take in "normal" mode). */
    rc = exec(log, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                   "PRAGMA journal_size_limit=67108864;");
    if (rc == EL_OK && opts->max_db_bytes > 0)
        rc = mlog_set_ceiling(log, opts->max_db_bytes);
    if (rc == EL_OK)
        rc = open_txn(log, boot_id, wall_ms, mono_ms);
    if (rc == EL_OK)
        rc = series_load(log);
    if (rc == EL_OK)
        rc = prepare_all(log);
    if (rc != EL_OK)
        goto fail;
    *out = log;
    return EL_OK;
fail:
    mlog_close(log);
    return rc;
}

void mlog_close(struct mlog *log)
{
    if (!log)
        return;
    if (log->in_txn) {
        log_warn("master log: closing with %u uncommitted events (they stay in the journal)",
                 log->pending);
        (void)exec(log, "ROLLBACK");
    }
    sqlite3_finalize(log->ins_event);
    sqlite3_finalize(log->ins_dead);
    sqlite3_finalize(log->mark_replayed);
    sqlite3_finalize(log->ins_series);
    sqlite3_finalize(log->upsert_block);
    sqlite3_finalize(log->ins_unanchored);
    if (log->db)
        sqlite3_close(log->db);
    series_dict_free(log->series);
    free(log);
}

/* ---- reads ---- */

int64_t mlog_last_seq(const struct mlog *log)
{
    return log->last_seq;
}

uint32_t mlog_series_count(const struct mlog *log)
{
    return series_dict_count(log->series);
}

uint32_t mlog_series_max(const struct mlog *log)
{
    return log->max_series;
}

const char *mlog_series_name(const struct mlog *log, uint32_t id)
{
    return series_dict_name(log->series, id);
}

el_status mlog_series_find(const struct mlog *log, const char *name, size_t len, uint32_t *id)
{
    return series_dict_find(log->series, name, len, id) ? EL_OK : EL_NOTFOUND;
}

el_status mlog_set_ceiling(struct mlog *log, int64_t max_db_bytes)
{
    /* A quota below the free space: inserts beyond it fail (SQLITE_FULL)
     * while deletes still work, so retention can free room (docs/RELIABILITY.md). */
    char sql[64];
    int64_t pages = max_db_bytes / query_int(log, "PRAGMA page_size", 4096);
    snprintf(sql, sizeof sql, "PRAGMA max_page_count=%lld",
             (long long)(max_db_bytes > 0 ? pages : 4294967294LL));
    return exec(log, sql);
}

int64_t mlog_bytes(const struct mlog *log)
{
    struct stat a, b;
    int64_t total = 0;
    if (stat(log->path, &a) == 0)
        total += a.st_size;
    if (stat(log->wal_path, &b) == 0)
        total += b.st_size;
    return total;
}

el_status mlog_scan_recent(struct mlog *log, uint32_t limit, mlog_recent_fn fn, void *ctx)
{
    sqlite3_stmt *st = NULL;
    int r;
    if (sqlite3_prepare_v2(log->db,
                           /* the newest of events and unanchored (mlog.h, "Clocks") */
                           "SELECT s.name, r.payload FROM"
                           " (SELECT * FROM (SELECT seq, series, payload FROM events"
                           "   ORDER BY seq DESC LIMIT ?1)"
                           "  UNION ALL SELECT * FROM (SELECT seq, series, payload FROM unanchored"
                           "   ORDER BY seq DESC LIMIT ?1)) r"
                           " JOIN series s ON s.id = r.series ORDER BY r.seq DESC LIMIT ?1",
                           -1, &st, NULL) != SQLITE_OK)
        return db_fail(log, "reading recent events");
    sqlite3_bind_int64(st, 1, limit);
    while ((r = sqlite3_step(st)) == SQLITE_ROW)
        fn(ctx, (const char *)sqlite3_column_text(st, 0), (size_t)sqlite3_column_bytes(st, 0),
           sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1));
    sqlite3_finalize(st);
    return r == SQLITE_DONE ? EL_OK : db_fail(log, "reading recent events");
}

/* ---- writes ---- */

static el_status txn_begin(struct mlog *log)
{
    if (log->in_txn)
        return EL_OK;
    if (sqlite3_exec(log->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(log, "BEGIN");
    log->in_txn = true;
    log->pending = 0;
    return EL_OK;
}

el_status mlog_series_get(struct mlog *log, const char *name, size_t len, int64_t first_seq,
                          uint32_t *id)
{
    if (mlog_series_find(log, name, len, id) == EL_OK)
        return EL_OK;
    if (len == 0 || len > MLOG_MAX_SERIES_NAME)
        return EL_INVAL;
    if (series_dict_count(log->series) >= log->max_series)
        return EL_FULL;
    el_status rc = txn_begin(log);
    if (rc != EL_OK)
        return rc;
    uint32_t new_id = series_dict_count(log->series) + 1;
    sqlite3_stmt *st = log->ins_series;
    sqlite3_bind_int64(st, 1, new_id);
    sqlite3_bind_text(st, 2, name, (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, first_seq);
    int r = sqlite3_step(st);
    sqlite3_reset(st);
    if (r != SQLITE_DONE)
        return db_fail(log, "inserting series");
    rc = series_dict_add(log->series, name, len, new_id);
    if (rc != EL_OK)
        return rc;
    *id = new_id;
    return EL_OK;
}

static el_status blocks_flush(struct mlog *log)
{
    sqlite3_stmt *st = log->upsert_block;
    for (uint32_t i = 0; i < log->n_dirty; i++) {
        sqlite3_bind_int64(st, 1, log->dirty[i].block);
        sqlite3_bind_int64(st, 2, log->dirty[i].min_ts);
        sqlite3_bind_int64(st, 3, log->dirty[i].max_ts);
        sqlite3_bind_int64(st, 4, log->dirty[i].n);
        int r = sqlite3_step(st);
        sqlite3_reset(st);
        if (r != SQLITE_DONE)
            return db_fail(log, "updating block summary");
    }
    log->n_dirty = 0;
    return EL_OK;
}

/* Widens the in-memory summary of block b; sequences only grow, so the
 * block being touched is almost always the last one in the list. */
static el_status block_touch(struct mlog *log, int64_t b, int64_t ts)
{
    struct block_range *r = log->n_dirty ? &log->dirty[log->n_dirty - 1] : NULL;
    if (!r || r->block != b) {
        if (log->n_dirty == DIRTY_BLOCKS) {
            el_status st = blocks_flush(log);
            if (st != EL_OK)
                return st;
        }
        r = &log->dirty[log->n_dirty++];
        r->block = b;
        r->min_ts = ts;
        r->max_ts = ts;
        r->n = 1;
        return EL_OK;
    }
    r->n++;
    if (ts < r->min_ts)
        r->min_ts = ts;
    if (ts > r->max_ts)
        r->max_ts = ts;
    return EL_OK;
}

bool mlog_event_unanchored(uint32_t flags)
{
    return (flags & (MLOG_F_CLOCK_SYNCED | MLOG_F_HAS_TS | MLOG_F_ANCHORED)) == 0;
}

el_status mlog_append_event(struct mlog *log, const struct mlog_event *ev)
{
    el_status rc = txn_begin(log);
    if (rc != EL_OK)
        return rc;
    bool unanchored = mlog_event_unanchored(ev->flags);
    sqlite3_stmt *st = unanchored ? log->ins_unanchored : log->ins_event;
    sqlite3_bind_int64(st, 1, ev->seq);
    sqlite3_bind_int64(st, 2, ev->series_id);
    sqlite3_bind_int64(st, 3, ev->ts_ms);
    sqlite3_bind_double(st, 4, ev->value);
    sqlite3_bind_int64(st, 5, ev->recv_ms);
    sqlite3_bind_int64(st, 6, ev->mono_ms);
    sqlite3_bind_int64(st, 7, log->boot_row);
    sqlite3_bind_int64(st, 8, ev->flags);
    sqlite3_bind_blob(st, 9, ev->payload, (int)ev->payload_len, SQLITE_STATIC);
    int r = sqlite3_step(st);
    sqlite3_reset(st);
    if (r != SQLITE_DONE)
        return db_fail(log, "appending event");
    rc = unanchored ? EL_OK : block_touch(log, ev->seq >> MLOG_BLOCK_SHIFT, ev->ts_ms);
    if (rc != EL_OK)
        return rc;
    log->n_events += unanchored ? 0 : 1;
    log->pending++;
    if (ev->seq > log->last_seq)
        log->last_seq = ev->seq;
    if (ev->seq > log->last_event_seq)
        log->last_event_seq = ev->seq;
    return EL_OK;
}

el_status mlog_append_dead(struct mlog *log, const struct mlog_dead *dl)
{
    el_status rc = txn_begin(log);
    if (rc != EL_OK)
        return rc;
    sqlite3_stmt *st = log->ins_dead;
    sqlite3_bind_int64(st, 1, dl->seq);
    sqlite3_bind_text(st, 2, dl->topic, (int)dl->topic_len, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, dl->payload, (int)dl->payload_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (int64_t)dl->payload_bytes);
    sqlite3_bind_int64(st, 5, dl->recv_ms);
    sqlite3_bind_int64(st, 6, dl->mono_ms);
    sqlite3_bind_int64(st, 7, log->boot_row);
    sqlite3_bind_int64(st, 8, dl->flags);
    sqlite3_bind_text(st, 9, dl->reason, -1, SQLITE_STATIC);
    if (dl->detail && dl->detail_len)
        sqlite3_bind_text(st, 10, dl->detail, (int)dl->detail_len, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 10);
    int r = sqlite3_step(st);
    sqlite3_reset(st);
    if (r != SQLITE_DONE)
        return db_fail(log, "appending dead letter");
    log->pending++;
    if (dl->seq > log->last_seq)
        log->last_seq = dl->seq;
    return EL_OK;
}

el_status mlog_mark_replayed(struct mlog *log, int64_t dead_seq, int64_t first_seq,
                             int64_t last_seq, bool *fresh)
{
    *fresh = false;
    el_status rc = txn_begin(log);
    if (rc != EL_OK)
        return rc;
    sqlite3_stmt *st = log->mark_replayed;
    sqlite3_bind_int64(st, 1, dead_seq);
    sqlite3_bind_int64(st, 2, first_seq);
    int r = sqlite3_step(st);
    sqlite3_reset(st);
    if (r != SQLITE_DONE)
        return db_fail(log, "marking a dead letter replayed");
    *fresh = sqlite3_changes(log->db) == 1;
    return *fresh ? EL_OK : mlog_skip_seqs(log, last_seq);
}

el_status mlog_skip_seqs(struct mlog *log, int64_t last_seq)
{
    if (last_seq <= log->last_seq)
        return EL_OK;
    el_status rc = txn_begin(log);
    if (rc != EL_OK)
        return rc;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(log->db,
                           "INSERT INTO meta VALUES('seq_floor',?1) ON CONFLICT(key) DO UPDATE "
                           "SET value=max(value,?1)",
                           -1, &st, NULL) != SQLITE_OK)
        return db_fail(log, "keeping skipped seqs taken");
    sqlite3_bind_int64(st, 1, last_seq);
    int r = sqlite3_step(st);
    sqlite3_finalize(st);
    if (r != SQLITE_DONE)
        return db_fail(log, "keeping skipped seqs taken");
    log->last_seq = last_seq;
    return EL_OK;
}

el_status mlog_anchor(struct mlog *log, int64_t offset_ms, uint32_t max_rows, mlog_anchor_fn fn,
                      void *ctx, uint32_t *moved)
{
    sqlite3_stmt *sel = NULL;
    int64_t last = 0;
    int r = SQLITE_DONE;
    *moved = 0;
    el_status rc = txn_begin(log);
    if (rc != EL_OK)
        return rc;
    if (sqlite3_prepare_v2(log->db,
                           "SELECT seq,series,value,recv,mono,flags,payload FROM unanchored"
                           " WHERE boot=? ORDER BY seq LIMIT ?",
                           -1, &sel, NULL) != SQLITE_OK)
        return db_fail(log, "anchoring events");
    sqlite3_bind_int64(sel, 1, log->boot_row);
    sqlite3_bind_int64(sel, 2, max_rows);
    while (rc == EL_OK && (r = sqlite3_step(sel)) == SQLITE_ROW) {
        struct mlog_event ev = {
            .seq = sqlite3_column_int64(sel, 0),
            .series_id = (uint32_t)sqlite3_column_int64(sel, 1),
            .value = sqlite3_column_double(sel, 2),
            .recv_ms = sqlite3_column_int64(sel, 3),
            .mono_ms = sqlite3_column_int64(sel, 4),
            .flags = (uint32_t)sqlite3_column_int64(sel, 5) | MLOG_F_ANCHORED,
            .payload = sqlite3_column_blob(sel, 6),
            .payload_len = (size_t)sqlite3_column_bytes(sel, 6),
        };
        ev.ts_ms = ev.mono_ms + offset_ms;
        rc = mlog_append_event(log, &ev);
        if (rc == EL_OK) {
            fn(ctx, ev.seq, ev.series_id, ev.ts_ms, ev.value);
            last = ev.seq;
            (*moved)++;
        }
    }
    if (rc == EL_OK && r != SQLITE_DONE)
        rc = db_fail(log, "anchoring events");
    sqlite3_finalize(sel);
    if (rc == EL_OK && *moved > 0)
        rc = exec_boot(log, "DELETE FROM unanchored WHERE boot = ?1 AND seq <= ?2", last, NULL);
    return rc;
}

el_status mlog_unanchored(struct mlog *log, int64_t *count, int64_t *min_seq)
{
    sqlite3_stmt *st = NULL;
    *count = *min_seq = 0;
    if (sqlite3_prepare_v2(log->db, "SELECT count(*), coalesce(min(seq),0) FROM unanchored", -1,
                           &st, NULL) != SQLITE_OK)
        return db_fail(log, "counting unanchored events");
    if (sqlite3_step(st) == SQLITE_ROW) {
        *count = sqlite3_column_int64(st, 0);
        *min_seq = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    return EL_OK;
}

int64_t mlog_visible_seq(struct mlog *log)
{
    int64_t min = query_int(log, "SELECT min(seq) FROM unanchored", 0);
    return min > 0 && min - 1 < log->last_seq_committed ? min - 1 : log->last_seq_committed;
}

el_status mlog_commit(struct mlog *log)
{
    if (!log->in_txn)
        return EL_OK;
    el_status bst = blocks_flush(log);
    if (bst != EL_OK) {
        mlog_rollback(log);
        return bst;
    }
    if (sqlite3_exec(log->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK) {
        log->in_txn = false;
        log->pending = 0;
        log->n_series_committed = series_dict_count(log->series);
        log->last_seq_committed = log->last_seq;
        log->last_event_seq_committed = log->last_event_seq;
        log->n_events_committed = log->n_events;
        return EL_OK;
    }
    el_status rc = db_fail(log, "COMMIT");
    mlog_rollback(log);
    return rc;
}

void mlog_rollback(struct mlog *log)
{
    if (!sqlite3_get_autocommit(log->db) &&
        sqlite3_exec(log->db, "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK)
        log_error("master log: ROLLBACK: %s", sqlite3_errmsg(log->db));
    log->in_txn = false;
    log->pending = 0;
    log->n_dirty = 0;
    log->last_seq = log->last_seq_committed;
    log->last_event_seq = log->last_event_seq_committed;
    log->n_events = log->n_events_committed;
    series_rollback(log);
}

int64_t mlog_committed_seq(const struct mlog *log)
{
    return log->last_seq_committed;
}

int64_t mlog_committed_event_seq(const struct mlog *log)
{
    return log->last_event_seq_committed;
}

uint32_t mlog_pending(const struct mlog *log)
{
    return log->in_txn ? log->pending : 0;
}

/* ---- range reads ---- */

static el_status read_blocks(struct mlog *log, uint32_t series_id, int64_t from_ms, int64_t to_ms,
                             int64_t seq_lo, int64_t seq_hi, uint64_t max_rows, mlog_row_fn fn,
                             void *ctx, uint64_t *rows)
{
    sqlite3_stmt *st = NULL;
    int r;
    if (sqlite3_prepare_v2(log->db,
                           "SELECT seq, ts, value FROM events WHERE seq >= ? AND seq < ?"
                           " AND series = ? AND ts >= ? AND ts < ? ORDER BY seq",
                           -1, &st, NULL) != SQLITE_OK)
        return db_fail(log, "reading events");
    sqlite3_bind_int64(st, 1, seq_lo);
    sqlite3_bind_int64(st, 2, seq_hi);
    sqlite3_bind_int64(st, 3, series_id);
    sqlite3_bind_int64(st, 4, from_ms);
    sqlite3_bind_int64(st, 5, to_ms);
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        fn(ctx, sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1),
           sqlite3_column_double(st, 2));
    }
    sqlite3_finalize(st);
    if (r != SQLITE_DONE)
        return db_fail(log, "reading events");
    *rows += (uint64_t)(seq_hi - seq_lo);
    return *rows > max_rows ? EL_FULL : EL_OK;
}

el_status mlog_read_range(struct mlog *log, uint32_t series_id, int64_t from_ms, int64_t to_ms,
                          int64_t after_seq, int64_t upto_seq, uint64_t max_rows, mlog_row_fn fn,
                          void *ctx, uint64_t *rows_examined)
{
    sqlite3_stmt *st = NULL;
    uint64_t rows = 0;
    el_status rc = EL_OK;
    int64_t run_lo = -1, run_hi = -1;
    int r;
    if (from_ms >= to_ms)
        return EL_OK;
    /* Blocks written by the open transaction are not in the table yet. */
    rc = blocks_flush(log);
    if (rc != EL_OK)
        return rc;
    if (sqlite3_prepare_v2(log->db,
                           "SELECT block FROM blocks WHERE max_ts >= ? AND min_ts < ? AND block >= "
                           "? ORDER BY block",
                           -1, &st, NULL) != SQLITE_OK)
        return db_fail(log, "reading block summaries");
    sqlite3_bind_int64(st, 1, from_ms);
    sqlite3_bind_int64(st, 2, to_ms);
    sqlite3_bind_int64(st, 3, after_seq >> MLOG_BLOCK_SHIFT);
    while (rc == EL_OK && (r = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t lo = sqlite3_column_int64(st, 0) << MLOG_BLOCK_SHIFT;
        int64_t hi = lo + (1 << MLOG_BLOCK_SHIFT);
        if (lo <= after_seq)
            lo = after_seq + 1;
        if (hi > upto_seq + 1)
            hi = upto_seq + 1;
        if (lo >= hi)
            continue;
        if (lo == run_hi) {
            run_hi = hi; /* adjacent: one rowid range */
            continue;
        }
        if (run_lo >= 0)
            rc = read_blocks(log, series_id, from_ms, to_ms, run_lo, run_hi, max_rows, fn, ctx,
                             &rows);
        run_lo = lo;
        run_hi = hi;
    }
    if (rc == EL_OK && r != SQLITE_DONE)
        rc = db_fail(log, "reading block summaries");
    sqlite3_finalize(st);
    if (rc == EL_OK && run_lo >= 0)
        rc = read_blocks(log, series_id, from_ms, to_ms, run_lo, run_hi, max_rows, fn, ctx, &rows);
    if (rows_examined)
        *rows_examined = rows;
    return rc;
}

el_status mlog_scan_after(struct mlog *log, int64_t after_seq, mlog_event_fn fn, void *ctx)
{
    sqlite3_stmt *st = NULL;
    int r;
    if (sqlite3_prepare_v2(log->db,
                           "SELECT seq, series, ts, value FROM events WHERE seq > ? ORDER BY seq",
                           -1, &st, NULL) != SQLITE_OK)
        return db_fail(log, "scanning events");
    sqlite3_bind_int64(st, 1, after_seq);
    while ((r = sqlite3_step(st)) == SQLITE_ROW)
        fn(ctx, sqlite3_column_int64(st, 0), (uint32_t)sqlite3_column_int64(st, 1),
           sqlite3_column_int64(st, 2), sqlite3_column_double(st, 3));
    sqlite3_finalize(st);
    return r == SQLITE_DONE ? EL_OK : db_fail(log, "scanning events");
}

int64_t mlog_newest_ts(struct mlog *log)
{
    return query_int(log, "SELECT max(max_ts) FROM blocks", INT64_MIN);
}

el_status mlog_scan_since(struct mlog *log, int64_t from_ms, mlog_event_fn fn, void *ctx)
{
    sqlite3_stmt *blocks = NULL, *rows = NULL;
    el_status rc = EL_OK;
    int r;
    if (sqlite3_prepare_v2(log->db, "SELECT block FROM blocks WHERE max_ts >= ? ORDER BY block", -1,
                           &blocks, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(log->db,
                           "SELECT seq, series, ts, value FROM events WHERE seq >= ? AND seq < ?"
                           " AND ts >= ? ORDER BY seq",
                           -1, &rows, NULL) != SQLITE_OK) {
        rc = db_fail(log, "scanning the ring window");
        goto out;
    }
    sqlite3_bind_int64(blocks, 1, from_ms);
    while (rc == EL_OK && (r = sqlite3_step(blocks)) == SQLITE_ROW) {
        int64_t lo = sqlite3_column_int64(blocks, 0) << MLOG_BLOCK_SHIFT;
        sqlite3_bind_int64(rows, 1, lo);
        sqlite3_bind_int64(rows, 2, lo + (1 << MLOG_BLOCK_SHIFT));
        sqlite3_bind_int64(rows, 3, from_ms);
        int rr;
        while ((rr = sqlite3_step(rows)) == SQLITE_ROW)
            fn(ctx, sqlite3_column_int64(rows, 0), (uint32_t)sqlite3_column_int64(rows, 1),
               sqlite3_column_int64(rows, 2), sqlite3_column_double(rows, 3));
        if (rr != SQLITE_DONE)
            rc = db_fail(log, "scanning the ring window");
        sqlite3_reset(rows);
    }
    if (rc == EL_OK && r != SQLITE_DONE)
        rc = db_fail(log, "scanning block summaries");
out:
    sqlite3_finalize(blocks);
    sqlite3_finalize(rows);
    return rc;
}

el_status mlog_scan_unanchored(struct mlog *log, mlog_event_fn fn, void *ctx)
{
    sqlite3_stmt *st = NULL;
    int r;
    if (sqlite3_prepare_v2(log->db, "SELECT seq, series, recv, value FROM unanchored ORDER BY seq",
                           -1, &st, NULL) != SQLITE_OK)
        return db_fail(log, "scanning waiting readings");
    while ((r = sqlite3_step(st)) == SQLITE_ROW)
        fn(ctx, sqlite3_column_int64(st, 0), (uint32_t)sqlite3_column_int64(st, 1),
           sqlite3_column_int64(st, 2), sqlite3_column_double(st, 3));
    sqlite3_finalize(st);
    return r == SQLITE_DONE ? EL_OK : db_fail(log, "scanning waiting readings");
}

el_status mlog_series_counts(struct mlog *log, mlog_series_fn fn, void *ctx)
{
    sqlite3_stmt *st = NULL;
    int r;
    if (sqlite3_prepare_v2(log->db, "SELECT series, count(*) FROM events GROUP BY series", -1, &st,
                           NULL) != SQLITE_OK)
        return db_fail(log, "counting events");
    while ((r = sqlite3_step(st)) == SQLITE_ROW)
        fn(ctx, (uint32_t)sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1));
    sqlite3_finalize(st);
    return r == SQLITE_DONE ? EL_OK : db_fail(log, "counting events");
}

/* ---- retention ---- */

int64_t mlog_used_bytes(struct mlog *log)
{
    int64_t pages = query_int(log, "PRAGMA page_count", 0);
    int64_t free_pages = query_int(log, "PRAGMA freelist_count", 0);
    int64_t page_size = query_int(log, "PRAGMA page_size", 4096);
    return (pages - free_pages) * page_size;
}

int64_t mlog_oldest_seq(struct mlog *log)
{
    int64_t a = query_int(log, "SELECT min(seq) FROM events", 0);
    int64_t b = query_int(log, "SELECT min(seq) FROM dead_letters", 0);
    if (a == 0)
        return b;
    return b == 0 || a < b ? a : b;
}

el_status mlog_trim(struct mlog *log, int64_t upto)
{
    sqlite3_stmt *st = NULL;
    /* trimmed_max_ts: the newest event time ever trimmed (a full recompute
     * keeps the view buckets up to it: views.h). */
    static const char *const sql[] = {
        "INSERT OR REPLACE INTO meta SELECT 'trimmed_max_ts', max(coalesce((SELECT value FROM meta"
        " WHERE key='trimmed_max_ts'), -9223372036854775807), coalesce((SELECT max(max_ts) FROM"
        " blocks WHERE block < (?1 + 1) >> 10), -9223372036854775807))",
        "DELETE FROM events WHERE seq <= ?1", "DELETE FROM dead_letters WHERE seq <= ?1",
        "DELETE FROM blocks WHERE block < (?1 + 1) >> 10",
        /* a block cut in the middle (retention cuts whole blocks) */
        "UPDATE blocks SET n = (SELECT count(*) FROM events WHERE seq >= block << 10 AND seq < "
        "(block + 1) << 10) WHERE block = (?1 + 1) >> 10 AND ((?1 + 1) & 1023) != 0"};
    if (log->in_txn)
        return EL_INVAL;
    el_status rc = txn_begin(log);
    for (size_t i = 0; rc == EL_OK && i < sizeof sql / sizeof sql[0]; i++) {
        if (sqlite3_prepare_v2(log->db, sql[i], -1, &st, NULL) != SQLITE_OK) {
            rc = db_fail(log, "trimming");
            break;
        }
        sqlite3_bind_int64(st, 1, upto);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = db_fail(log, "trimming");
        else if (i == 1)
            log->n_events -= sqlite3_changes(log->db);
        sqlite3_finalize(st);
    }
    if (rc == EL_OK)
        return mlog_commit(log);
    mlog_rollback(log);
    return rc;
}

int64_t mlog_event_count(const struct mlog *log)
{
    return log->n_events_committed;
}

int64_t mlog_oldest_ts(struct mlog *log)
{
    return query_int(log, "SELECT coalesce(min(min_ts), 0) FROM blocks", 0);
}

int64_t mlog_aged_upto(struct mlog *log, int64_t cutoff_ms, int64_t max_blocks)
{
    int64_t oldest = mlog_oldest_seq(log);
    if (oldest <= 0)
        return 0;
    int64_t first = oldest >> MLOG_BLOCK_SHIFT, end = first + max_blocks, young = end;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(log->db,
                           "SELECT block FROM blocks WHERE block >= ?1 AND block < ?2 AND"
                           " max_ts >= ?3 ORDER BY block LIMIT 1",
                           -1, &st, NULL) != SQLITE_OK) {
        (void)db_fail(log, "reading block summaries");
        return 0;
    }
    sqlite3_bind_int64(st, 1, first);
    sqlite3_bind_int64(st, 2, end);
    sqlite3_bind_int64(st, 3, cutoff_ms);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW)
        young = sqlite3_column_int64(st, 0);
    else if (r != SQLITE_DONE)
        young = first; /* cannot tell: nothing is old */
    sqlite3_finalize(st);
    int64_t upto = (young << MLOG_BLOCK_SHIFT) - 1;
    return upto < log->last_seq_committed ? upto : log->last_seq_committed;
}
