/* sync_store — the sync worker's SQLite tables in master.db (format in sync_store.h). */
#include "sync_store.h"

#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plat_clock.h"
#include "plat_log.h"

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS sync_cursor(id INTEGER PRIMARY KEY CHECK(id = 1),"
    " acked_seq INTEGER NOT NULL, inflight_first INTEGER, inflight_last INTEGER,"
    " live_from INTEGER, live_to INTEGER);"
    "INSERT OR IGNORE INTO sync_cursor(id, acked_seq) VALUES(1, 0);"
    "CREATE TABLE IF NOT EXISTS sync_parked(first_seq INTEGER PRIMARY KEY,"
    " last_seq INTEGER NOT NULL, events INTEGER NOT NULL, http_status INTEGER NOT NULL,"
    " response TEXT NOT NULL, parked_ms INTEGER NOT NULL, attempts INTEGER NOT NULL);";

struct sync_store {
    sqlite3 *db;
    char path[PATH_MAX];
    int64_t busy_since_ms; /* when the current wait for the write lock began */
};

/* The write lock is the core's for most of every group-commit interval under
 * ingest (its transaction stays open until the flush), and free only between
 * a COMMIT and the next event. SQLite's default busy handler sleeps 50-100 ms
 * between tries once it has waited a while and so kept missing those short
 * gaps: a cursor step could wait seconds. This one tries again every
 * SYNC_STORE_BUSY_POLL_US, up to SYNC_STORE_BUSY_TIMEOUT_MS in all. */
#define SYNC_STORE_BUSY_POLL_US 500

static int on_busy(void *ctx, int count)
{
    struct sync_store *st = ctx;
    int64_t now = plat_clock_mono_ms();
    if (count == 0)
        st->busy_since_ms = now;
    else if (now - st->busy_since_ms >= SYNC_STORE_BUSY_TIMEOUT_MS)
        return 0;
    usleep(SYNC_STORE_BUSY_POLL_US);
    return 1;
}

static el_status db_fail(struct sync_store *st, const char *what)
{
    log_error("sync: %s on %s: %s", what, st->path, sqlite3_errmsg(st->db));
    return EL_DB;
}

static el_status exec(struct sync_store *st, const char *sql)
{
    if (sqlite3_exec(st->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(st, "SQL");
    return EL_OK;
}

/* Files written before the live lane have sync_cursor without live_from and
 * live_to: add them (NULL = no live lane, which is what such a file meant). */
static el_status migrate(struct sync_store *st)
{
    sqlite3_stmt *s = NULL;
    bool has_live = false;
    if (sqlite3_prepare_v2(st->db, "SELECT name FROM pragma_table_info('sync_cursor')", -1, &s,
                           NULL) != SQLITE_OK)
        return db_fail(st, "reading sync_cursor's columns");
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const unsigned char *name = sqlite3_column_text(s, 0);
        if (name && strcmp((const char *)name, "live_from") == 0)
            has_live = true;
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE)
        return db_fail(st, "reading sync_cursor's columns");
    if (has_live)
        return EL_OK;
    log_info("sync: adding the live lane's columns to sync_cursor in %s", st->path);
    return exec(st, "ALTER TABLE sync_cursor ADD COLUMN live_from INTEGER;"
                    "ALTER TABLE sync_cursor ADD COLUMN live_to INTEGER;");
}

el_status sync_store_open(const char *dir, struct sync_store **out)
{
    el_status rc;
    struct sync_store *st = calloc(1, sizeof *st);
    *out = NULL;
    if (!st)
        return EL_NOMEM;
    snprintf(st->path, sizeof st->path, "%s/master.db", dir);
    if (access(st->path, F_OK) != 0) {
        log_error("sync: %s does not exist", st->path);
        free(st);
        return EL_NOTFOUND;
    }
    if (sqlite3_open_v2(st->path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        rc = db_fail(st, "opening");
        goto fail;
    }
    sqlite3_extended_result_codes(st->db, 1);
    sqlite3_busy_handler(st->db, on_busy, st);
    rc = exec(st, "PRAGMA synchronous=NORMAL");
    if (rc == EL_OK)
        rc = exec(st, "BEGIN IMMEDIATE");
    if (rc == EL_OK) {
        rc = exec(st, schema_sql);
        if (rc == EL_OK)
            rc = migrate(st);
        if (rc == EL_OK)
            rc = exec(st, "COMMIT");
        else
            (void)exec(st, "ROLLBACK");
    }
    if (rc != EL_OK)
        goto fail;
    *out = st;
    return EL_OK;
fail:
    sync_store_close(st);
    return rc;
}

void sync_store_close(struct sync_store *st)
{
    if (!st)
        return;
    if (st->db)
        sqlite3_close(st->db);
    free(st);
}

/* Binds int64 values ?1..?n and text at text_index (0 = none), steps once.
 * Returns the sqlite step result or an error; the statement is finalised
 * unless keep is given (then the caller reads the row and finalises). */
static int run(struct sync_store *st, const char *sql, const int64_t *vals, int n, int text_index,
               const char *text, sqlite3_stmt **keep)
{
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL);
    for (int i = 0; rc == SQLITE_OK && i < n; i++)
        rc = sqlite3_bind_int64(stmt, i + 1, vals[i]);
    if (rc == SQLITE_OK && text_index > 0)
        rc = sqlite3_bind_text(stmt, text_index, text, -1, SQLITE_TRANSIENT);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(stmt);
    if (keep && rc == SQLITE_ROW) {
        *keep = stmt;
        return rc;
    }
    sqlite3_finalize(stmt);
    return rc;
}

static el_status begin(struct sync_store *st)
{
    return exec(st, "BEGIN IMMEDIATE");
}

static el_status finish(struct sync_store *st, el_status rc)
{
    if (rc == EL_OK)
        rc = exec(st, "COMMIT");
    if (rc != EL_OK && !sqlite3_get_autocommit(st->db))
        (void)exec(st, "ROLLBACK");
    return rc;
}

static el_status done(struct sync_store *st, int rc, const char *what)
{
    return rc == SQLITE_DONE ? EL_OK : db_fail(st, what);
}

/* run for a statement that returns no row: EL_OK when it ran to the end,
 * else EL_DB (what failed is logged). */
static el_status run_write(struct sync_store *st, const char *sql, const int64_t *vals, int n,
                           int text_index, const char *text, const char *what)
{
    return done(st, run(st, sql, vals, n, text_index, text, NULL), what);
}

/* The row a SELECT over sync_parked stepped to (rc), its first columns
 * first_seq, last_seq, events, http_status, into out. EL_NOTFOUND: no row;
 * on EL_OK the statement is still open for the caller's further columns
 * (the caller finalises it). */
static el_status parked_row(struct sync_store *st, int rc, sqlite3_stmt *s, struct sync_parked *out)
{
    if (rc == SQLITE_DONE)
        return EL_NOTFOUND;
    if (rc != SQLITE_ROW)
        return db_fail(st, "reading sync_parked");
    out->first_seq = sqlite3_column_int64(s, 0);
    out->last_seq = sqlite3_column_int64(s, 1);
    out->events = sqlite3_column_int64(s, 2);
    out->http_status = (long)sqlite3_column_int64(s, 3);
    return EL_OK;
}

/* The one row of sql (no parameters), three integer columns, into v. */
static el_status read_three(struct sync_store *st, const char *sql, int64_t *v[3], const char *what)
{
    sqlite3_stmt *s = NULL;
    if (run(st, sql, NULL, 0, 0, NULL, &s) != SQLITE_ROW)
        return db_fail(st, what);
    for (int i = 0; i < 3; i++)
        *v[i] = sqlite3_column_int64(s, i);
    sqlite3_finalize(s);
    return EL_OK;
}

el_status sync_store_load(struct sync_store *st, struct sync_store_state *out)
{
    int64_t *cursor[3] = {&out->acked_seq, &out->inflight_first, &out->inflight_last};
    int64_t *parked[3] = {&out->parked_batches, &out->parked_events, &out->parked_min_first};
    memset(out, 0, sizeof *out);
    el_status rc = read_three(st,
                              "SELECT acked_seq, coalesce(inflight_first, 0),"
                              " coalesce(inflight_last, 0) FROM sync_cursor WHERE id = 1",
                              cursor, "reading sync_cursor");
    if (rc != EL_OK)
        return rc;
    rc = read_three(st,
                    "SELECT count(*), coalesce(sum(events), 0), coalesce(min(first_seq), 0)"
                    " FROM sync_parked",
                    parked, "reading sync_parked");
    if (rc != EL_OK)
        return rc;
    int64_t unused;
    int64_t *live[3] = {&out->live_from, &out->live_to, &unused};
    return read_three(st,
                      "SELECT coalesce(live_from, 0), coalesce(live_to, 0), 0"
                      " FROM sync_cursor WHERE id = 1",
                      live, "reading sync_cursor");
}

el_status sync_store_set_inflight(struct sync_store *st, int64_t first, int64_t last)
{
    int64_t v[2] = {first, last};
    return first > 0
               ? run_write(st,
                           "UPDATE sync_cursor SET inflight_first = ?1, inflight_last = ?2"
                           " WHERE id = 1",
                           v, 2, 0, NULL, "recording the batch in flight")
               : run_write(st,
                           "UPDATE sync_cursor SET inflight_first = NULL, inflight_last = NULL"
                           " WHERE id = 1",
                           NULL, 0, 0, NULL, "recording the batch in flight");
}

el_status sync_store_ack(struct sync_store *st, int64_t acked)
{
    return run_write(st,
                     "UPDATE sync_cursor SET acked_seq = ?1, inflight_first = NULL,"
                     " inflight_last = NULL WHERE id = 1",
                     &acked, 1, 0, NULL, "advancing the cursor");
}

/* run_write made durable before it returns: the WAL is synced at this commit
 * (synchronous=FULL for the one statement), not with a later group commit.
 * For the lane start and the merge, whose loss to a power cut would let the
 * next run cut the same events under different ranges (other
 * Idempotency-Keys). */
static el_status run_durable(struct sync_store *st, const char *sql, const int64_t *vals, int n,
                             const char *what)
{
    el_status rc = exec(st, "PRAGMA synchronous=FULL");
    if (rc != EL_OK)
        return rc;
    rc = run_write(st, sql, vals, n, 0, NULL, what);
    el_status back = exec(st, "PRAGMA synchronous=NORMAL");
    return rc != EL_OK ? rc : back;
}

el_status sync_store_live_start(struct sync_store *st, int64_t from)
{
    int64_t v[2] = {from, from - 1};
    return run_durable(st, "UPDATE sync_cursor SET live_from = ?1, live_to = ?2 WHERE id = 1", v, 2,
                       "starting the live lane");
}

el_status sync_store_live_ack(struct sync_store *st, int64_t live_to)
{
    return run_write(st,
                     "UPDATE sync_cursor SET live_to = ?1, inflight_first = NULL,"
                     " inflight_last = NULL WHERE id = 1",
                     &live_to, 1, 0, NULL, "advancing the live lane");
}

el_status sync_store_merge(struct sync_store *st, int64_t acked)
{
    return run_durable(st,
                       "UPDATE sync_cursor SET acked_seq = ?1, live_from = NULL, live_to = NULL,"
                       " inflight_first = NULL, inflight_last = NULL WHERE id = 1",
                       &acked, 1, "merging the live lane into the cursor");
}

static void cut_response(const char *response, char *buf, size_t len)
{
    snprintf(buf, len, "%s", response ? response : "");
}

el_status sync_store_park(struct sync_store *st, int64_t first, int64_t last, int64_t events,
                          long http_status, const char *response, int64_t now_ms, int64_t acked,
                          bool live)
{
    char resp[SYNC_STORE_RESPONSE_MAX + 1];
    int64_t v[5] = {first, last, events, (int64_t)http_status, now_ms};
    cut_response(response, resp, sizeof resp);
    el_status rc = begin(st);
    if (rc == EL_OK)
        rc = run_write(st,
                       "INSERT OR REPLACE INTO sync_parked(first_seq, last_seq, events,"
                       " http_status, response, parked_ms, attempts)"
                       " VALUES(?1, ?2, ?3, ?4, ?6, ?5, 1)",
                       v, 5, 6, resp, "parking a batch");
    if (rc == EL_OK)
        rc = live ? sync_store_live_ack(st, acked) : sync_store_ack(st, acked);
    return finish(st, rc);
}

el_status sync_store_repark(struct sync_store *st, int64_t first, long http_status,
                            const char *response, int64_t now_ms)
{
    char resp[SYNC_STORE_RESPONSE_MAX + 1];
    int64_t v[3] = {first, (int64_t)http_status, now_ms};
    cut_response(response, resp, sizeof resp);
    return run_write(st,
                     "UPDATE sync_parked SET http_status = ?2, response = ?4, parked_ms = ?3,"
                     " attempts = attempts + 1 WHERE first_seq = ?1",
                     v, 3, 4, resp, "updating a parked batch");
}

el_status sync_store_unpark(struct sync_store *st, int64_t first)
{
    return run_write(st, "DELETE FROM sync_parked WHERE first_seq = ?1", &first, 1, 0, NULL,
                     "removing a delivered parked batch");
}

el_status sync_store_split_parked(struct sync_store *st, int64_t first, int64_t mid_last,
                                  int64_t first_events, int64_t second_first, int64_t second_events)
{
    int64_t v[5] = {first, mid_last, first_events, second_first, second_events};
    el_status rc = begin(st);
    if (rc == EL_OK)
        rc = run_write(st,
                       "INSERT INTO sync_parked(first_seq, last_seq, events, http_status,"
                       " response, parked_ms, attempts)"
                       " SELECT ?4, last_seq, ?5, http_status, response, parked_ms, attempts"
                       " FROM sync_parked WHERE first_seq = ?1",
                       v, 5, 0, NULL, "splitting a parked batch");
    if (rc == EL_OK)
        rc = run_write(st, "UPDATE sync_parked SET last_seq = ?2, events = ?3 WHERE first_seq = ?1",
                       v, 3, 0, NULL, "splitting a parked batch");
    return finish(st, rc);
}

el_status sync_store_next_parked(struct sync_store *st, int64_t after, struct sync_parked *out)
{
    sqlite3_stmt *s = NULL;
    int rc = run(st,
                 "SELECT first_seq, last_seq, events, http_status FROM sync_parked"
                 " WHERE first_seq > ?1 ORDER BY first_seq LIMIT 1",
                 &after, 1, 0, NULL, &s);
    el_status found = parked_row(st, rc, s, out);
    if (found == EL_OK)
        sqlite3_finalize(s);
    return found;
}

el_status sync_store_latest_parked(struct sync_store *st, struct sync_parked *out, char *response,
                                   size_t len)
{
    sqlite3_stmt *s = NULL;
    int rc = run(st,
                 "SELECT first_seq, last_seq, events, http_status, response FROM sync_parked"
                 " ORDER BY parked_ms DESC, first_seq DESC LIMIT 1",
                 NULL, 0, 0, NULL, &s);
    el_status found = parked_row(st, rc, s, out);
    if (found != EL_OK)
        return found;
    const unsigned char *text = sqlite3_column_text(s, 4);
    snprintf(response, len, "%s", text ? (const char *)text : "");
    sqlite3_finalize(s);
    return EL_OK;
}
