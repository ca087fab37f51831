/*
 * mlog_read — read-only master-log connections for serving, the batch
 * recompute and the sync worker (design in mlog_read.h).
 *
 * Ownership: the reader owns its connection, its prepared statements and
 * its series dictionary (none for a sequential reader).
 */
#include "mlog_read.h"

#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>

#include "mlog.h"
#include "plat_log.h"

enum {
    ST_BLOCKS,
    ST_RANGE_ONE,
    ST_RANGE_ALL,
    ST_TAIL_EVENTS,
    ST_TAIL_WAITING,
    ST_PROV_ONE,
    ST_PROV_ALL,
    ST_SERIES,
    ST_BATCH_SNAPSHOT,
    ST_ANY_EVENT,
    ST_CHUNK,
    ST_CHUNK_NAMED,
    ST_FIRST_RECV,
    ST_BEGIN, /* BEGIN/COMMIT of a snapshot: prepared once, not parsed per query */
    ST_COMMIT,
    ST_DEAD, /* from here on prepared at first use: older files lack replayed_seq until the
              * daemon opened them (an offline export of one must still work) */
    ST_DEAD_REPLAY,
    ST_BOUNDS,
    ST_WAITING_SPAN,
    ST_COUNT
};
#define ST_LAZY_FIRST ST_DEAD

/* The columns of every event read, (seq, series, ts, value): events from the log, and
 * those still waiting for an anchor, whose receive time stands for ts. */
#define EVENT_ROWS "SELECT seq, series, ts, value FROM events"
#define WAITING_ROWS "SELECT seq, series, recv, value FROM unanchored"
#define DEAD_ROWS                                                                                  \
    "SELECT seq, recv, topic, payload, payload_bytes, reason, detail, replayed_seq, mono, flags"   \
    " FROM dead_letters"

static const char *const sql[ST_COUNT] = {
    [ST_BLOCKS] = "SELECT block FROM blocks WHERE max_ts >= ?1 AND min_ts < ?2 AND block >= ?3"
                  " AND block <= ?4 ORDER BY block",
    [ST_RANGE_ONE] = EVENT_ROWS " WHERE seq >= ?1 AND seq < ?2 AND series = ?3 AND ts >= ?4"
                                " AND ts < ?5",
    [ST_RANGE_ALL] = EVENT_ROWS " WHERE seq >= ?1 AND seq < ?2 AND ts >= ?4 AND ts < ?5",
    [ST_TAIL_EVENTS] = EVENT_ROWS " WHERE seq > ?1 AND seq <= ?2",
    [ST_TAIL_WAITING] = WAITING_ROWS " WHERE seq > ?1 AND seq <= ?2",
    [ST_PROV_ONE] = WAITING_ROWS " WHERE seq <= ?1 AND recv >= ?2 AND recv < ?3 AND series = ?4",
    [ST_PROV_ALL] = WAITING_ROWS " WHERE seq <= ?1 AND recv >= ?2 AND recv < ?3",
    [ST_SERIES] = "SELECT id, name FROM series WHERE id > ?1 ORDER BY id",
    [ST_BATCH_SNAPSHOT] = "SELECT min(coalesce((SELECT max(seq) FROM events), 0),"
                          " coalesce((SELECT min(seq) - 1 FROM unanchored), 1 << 62))",
    [ST_ANY_EVENT] = "SELECT 1 FROM events WHERE seq > ?1 AND seq <= ?2 LIMIT 1",
    [ST_CHUNK] = EVENT_ROWS " WHERE seq > ?1 AND seq <= ?2 ORDER BY seq LIMIT ?3",
    /* Forced order: a rowid-range scan of events, one series lookup by
     * primary key per row. */
    [ST_CHUNK_NAMED] = "SELECT e.seq, e.series, e.ts, e.value, s.name FROM events e"
                       " CROSS JOIN series s ON s.id = e.series"
                       " WHERE e.seq > ?1 AND e.seq <= ?2 ORDER BY e.seq LIMIT ?3",
    [ST_BEGIN] = "BEGIN",
    [ST_COMMIT] = "COMMIT",
    /* The snapshot's bounds: newest seq of events/dead letters/waiting
     * readings, then the oldest event and dead letter (NULL: none). */
    [ST_BOUNDS] = "SELECT (SELECT max(seq) FROM events), (SELECT max(seq) FROM dead_letters),"
                  " (SELECT max(seq) FROM unanchored), (SELECT min(seq) FROM events),"
                  " (SELECT min(seq) FROM dead_letters)",
    /* rowid bounds only: O(log n), an upper bound of the waiting rows */
    [ST_WAITING_SPAN] = "SELECT min(seq), max(seq) FROM unanchored",
    [ST_FIRST_RECV] = "SELECT recv FROM events WHERE seq > ?1 ORDER BY seq LIMIT 1",
    /* Newest first by rowid; receive time and reason filter the rows walked. */
    [ST_DEAD] = DEAD_ROWS " WHERE seq <= ?1 AND recv >= ?2 AND (?3 IS NULL OR reason = ?3)"
                          " ORDER BY seq DESC",
    /* Oldest first after a cursor, not replayed yet (replay.h). */
    [ST_DEAD_REPLAY] = DEAD_ROWS " WHERE seq > ?4 AND seq <= ?1 AND recv >= ?2 AND (?3 IS NULL OR"
                                 " reason = ?3) AND replayed_seq IS NULL ORDER BY seq",
};

struct mlog_reader {
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    struct series_dict *series;
    bool (*expired)(void *ctx);
    void *expired_ctx;
    bool in_snapshot;
    int64_t last_seq, oldest_seq;
};

static el_status fail(struct mlog_reader *r, int rc, const char *what)
{
    if (rc == SQLITE_INTERRUPT || sqlite3_errcode(r->db) == SQLITE_INTERRUPT)
        return EL_TIMEOUT;
    log_warn("master log (reader): %s: %s", what, sqlite3_errmsg(r->db));
    return EL_DB;
}

static int progress(void *ctx)
{
    struct mlog_reader *r = ctx;
    return r->expired && r->expired(r->expired_ctx) ? 1 : 0;
}

/* with_dict: keep a series dictionary of max_series names. */
static el_status open_reader(const char *dir, bool with_dict, uint32_t max_series,
                             int busy_timeout_ms, struct mlog_reader **out)
{
    char path[PATH_MAX];
    el_status rc = EL_OK;
    struct mlog_reader *r = calloc(1, sizeof *r);
    *out = NULL;
    if (!r)
        return EL_NOMEM;
    if (with_dict)
        rc = series_dict_new(max_series, &r->series);
    if (rc != EL_OK)
        goto fail;
    snprintf(path, sizeof path, "%s/master.db", dir);
    if (sqlite3_open_v2(path, &r->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        rc = fail(r, SQLITE_ERROR, "opening master.db");
        goto fail;
    }
    sqlite3_busy_timeout(r->db, busy_timeout_ms);
    sqlite3_progress_handler(r->db, 1000, progress, r);
    for (int i = 0; i < ST_LAZY_FIRST; i++)
        if (sqlite3_prepare_v3(r->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &r->st[i], NULL) !=
            SQLITE_OK) {
            rc = fail(r, SQLITE_ERROR, "preparing reads");
            goto fail;
        }
    *out = r;
    return EL_OK;
fail:
    mlog_reader_close(r);
    return rc;
}

el_status mlog_reader_open(const char *dir, uint32_t max_series, struct mlog_reader **out)
{
    return open_reader(dir, true, max_series, 2000, out);
}

el_status mlog_reader_open_seq(const char *dir, int busy_timeout_ms, struct mlog_reader **out)
{
    return open_reader(dir, false, 0, busy_timeout_ms, out);
}

void mlog_reader_close(struct mlog_reader *r)
{
    if (!r)
        return;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(r->st[i]);
    if (r->db)
        sqlite3_close(r->db);
    series_dict_free(r->series);
    free(r);
}

void mlog_reader_set_interrupt(struct mlog_reader *r, bool (*expired)(void *ctx), void *ctx)
{
    r->expired = expired;
    r->expired_ctx = ctx;
}

static int64_t one_int(struct mlog_reader *r, const char *q, el_status *rc)
{
    sqlite3_stmt *st = NULL;
    int64_t v = 0;
    int s = sqlite3_prepare_v2(r->db, q, -1, &st, NULL);
    if (s == SQLITE_OK)
        s = sqlite3_step(st);
    if (s == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        v = sqlite3_column_int64(st, 0);
    else if (s != SQLITE_ROW && *rc == EL_OK)
        *rc = fail(r, s, "reading the log's bounds");
    sqlite3_finalize(st);
    return v;
}

static el_status sync_series(struct mlog_reader *r)
{
    sqlite3_stmt *st = r->st[ST_SERIES];
    el_status rc = EL_OK;
    int s;
    if (!r->series)
        return EL_OK; /* a sequential reader: no names kept */
    sqlite3_bind_int64(st, 1, series_dict_count(r->series));
    while (rc == EL_OK && (s = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        const char *name = (const char *)sqlite3_column_text(st, 1);
        size_t len = (size_t)sqlite3_column_bytes(st, 1);
        if (id < 1 || id > UINT32_MAX || !name)
            continue;
        rc = series_dict_add(r->series, name, len, (uint32_t)id);
    }
    if (rc == EL_OK && s != SQLITE_DONE)
        rc = fail(r, s, "reading series");
    sqlite3_reset(st);
    return rc;
}

static el_status lazy_statement(struct mlog_reader *r, int which, sqlite3_stmt **out);

/* Steps a prepared BEGIN or COMMIT. */
static bool step_tx(struct mlog_reader *r, int which)
{
    int s = sqlite3_step(r->st[which]);
    sqlite3_reset(r->st[which]);
    return s == SQLITE_DONE;
}

el_status mlog_reader_begin(struct mlog_reader *r)
{
    sqlite3_stmt *st = NULL;
    int64_t v[5] = {0};
    mlog_reader_end(r);
    if (!step_tx(r, ST_BEGIN))
        return fail(r, SQLITE_ERROR, "BEGIN");
    r->in_snapshot = true;
    /* The first read fixes the snapshot. */
    el_status rc = lazy_statement(r, ST_BOUNDS, &st);
    int s = rc == EL_OK ? sqlite3_step(st) : SQLITE_ROW;
    if (rc == EL_OK && s != SQLITE_ROW)
        rc = fail(r, s, "reading the log's bounds");
    for (int i = 0; rc == EL_OK && i < 5; i++)
        v[i] = sqlite3_column_type(st, i) != SQLITE_NULL ? sqlite3_column_int64(st, i) : 0;
    if (st)
        sqlite3_reset(st);
    int64_t a = v[0] > v[1] ? v[0] : v[1];
    r->last_seq = a > v[2] ? a : v[2];
    int64_t oe = v[3], od = v[4];
    r->oldest_seq = oe == 0 ? od : od == 0 || oe < od ? oe : od;
    if (rc == EL_OK)
        rc = sync_series(r);
    if (rc != EL_OK)
        mlog_reader_end(r);
    return rc;
}

void mlog_reader_end(struct mlog_reader *r)
{
    if (!r->in_snapshot)
        return;
    for (int i = 0; i < ST_COUNT; i++)
        if (r->st[i])
            sqlite3_reset(r->st[i]);
    if (!step_tx(r, ST_COMMIT))
        log_warn("master log (reader): ending a snapshot: %s", sqlite3_errmsg(r->db));
    r->in_snapshot = false;
}

int64_t mlog_reader_last_seq(const struct mlog_reader *r)
{
    return r->last_seq;
}

int64_t mlog_reader_oldest_seq(const struct mlog_reader *r)
{
    return r->oldest_seq;
}

const struct series_dict *mlog_reader_series(const struct mlog_reader *r)
{
    return r->series;
}

/* Binds v[0..n) to the parameters ?1..?n of st. */
static void bind_ints(sqlite3_stmt *st, const int64_t *v, int n)
{
    for (int i = 0; i < n; i++)
        sqlite3_bind_int64(st, i + 1, v[i]);
}

/* Steps a bound statement to the end, calling fn for each row of
 * (seq, series, ts, value). */
static el_status drain(struct mlog_reader *r, sqlite3_stmt *st, bool provisional, mlog_read_fn fn,
                       void *ctx)
{
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW)
        fn(ctx, sqlite3_column_int64(st, 0), (uint32_t)sqlite3_column_int64(st, 1),
           sqlite3_column_int64(st, 2), sqlite3_column_double(st, 3), provisional);
    sqlite3_reset(st);
    return s == SQLITE_DONE ? EL_OK : fail(r, s, "reading events");
}

static el_status spend(uint64_t *budget, int64_t rows)
{
    uint64_t n = rows > 0 ? (uint64_t)rows : 0;
    if (n > *budget) {
        *budget = 0;
        return EL_FULL;
    }
    *budget -= n;
    return EL_OK;
}

static el_status read_run(struct mlog_reader *r, uint32_t series, int64_t lo, int64_t hi,
                          int64_t from_ms, int64_t to_ms, uint64_t *budget, mlog_read_fn fn,
                          void *ctx)
{
    el_status rc = spend(budget, hi - lo);
    if (rc != EL_OK)
        return rc;
    sqlite3_stmt *st = r->st[series ? ST_RANGE_ONE : ST_RANGE_ALL];
    bind_ints(st, (const int64_t[]){lo, hi, series, from_ms, to_ms}, 5);
    return drain(r, st, false, fn, ctx);
}

el_status mlog_reader_scan_time(struct mlog_reader *r, uint32_t series, int64_t from_ms,
                                int64_t to_ms, int64_t after_seq, int64_t upto_seq,
                                uint64_t *budget, mlog_read_fn fn, void *ctx)
{
    el_status rc = EL_OK;
    int64_t run_lo = -1, run_hi = -1;
    int s;
    if (from_ms >= to_ms || after_seq >= upto_seq)
        return EL_OK;
    sqlite3_stmt *st = r->st[ST_BLOCKS];
    bind_ints(st,
              (const int64_t[]){from_ms, to_ms, (after_seq + 1) >> MLOG_BLOCK_SHIFT,
                                upto_seq >> MLOG_BLOCK_SHIFT},
              4);
    /* Adjacent blocks become one rowid range; a range is read while the
     * block statement is still open (it is a different statement). */
    while (rc == EL_OK && (s = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t lo = sqlite3_column_int64(st, 0) << MLOG_BLOCK_SHIFT;
        int64_t hi = lo + (1 << MLOG_BLOCK_SHIFT);
        lo = lo <= after_seq ? after_seq + 1 : lo;
        hi = hi > upto_seq + 1 ? upto_seq + 1 : hi;
        if (lo >= hi)
            continue;
        if (lo == run_hi) {
            run_hi = hi;
            continue;
        }
        if (run_lo >= 0)
            rc = read_run(r, series, run_lo, run_hi, from_ms, to_ms, budget, fn, ctx);
        run_lo = lo;
        run_hi = hi;
    }
    if (rc == EL_OK && s != SQLITE_DONE)
        rc = fail(r, s, "reading block summaries");
    sqlite3_reset(st);
    if (rc == EL_OK && run_lo >= 0)
        rc = read_run(r, series, run_lo, run_hi, from_ms, to_ms, budget, fn, ctx);
    return rc;
}

el_status mlog_reader_scan_seq(struct mlog_reader *r, int64_t lo, int64_t hi, uint64_t *budget,
                               mlog_read_fn fn, void *ctx)
{
    if (lo >= hi)
        return EL_OK;
    el_status rc = spend(budget, hi - lo);
    for (int i = 0; rc == EL_OK && i < 2; i++) {
        sqlite3_stmt *st = r->st[i == 0 ? ST_TAIL_EVENTS : ST_TAIL_WAITING];
        sqlite3_bind_int64(st, 1, lo);
        sqlite3_bind_int64(st, 2, hi);
        rc = drain(r, st, i == 1, fn, ctx);
    }
    return rc;
}

el_status mlog_reader_scan_provisional(struct mlog_reader *r, uint32_t series, int64_t from_ms,
                                       int64_t to_ms, int64_t upto_seq, uint64_t *budget,
                                       mlog_read_fn fn, void *ctx)
{
    el_status rc = EL_OK;
    if (from_ms >= to_ms || mlog_reader_provisional_count(r) == 0)
        return EL_OK;
    /* No index on receive time: the whole (small) table is examined. */
    rc = spend(budget, mlog_reader_provisional_count(r));
    if (rc != EL_OK)
        return rc;
    sqlite3_stmt *st = r->st[series ? ST_PROV_ONE : ST_PROV_ALL];
    bind_ints(st, (const int64_t[]){upto_seq, from_ms, to_ms, series}, series ? 4 : 3);
    return drain(r, st, true, fn, ctx);
}

/* A statement of the lazy set (ST_LAZY_FIRST), prepared at its first use. */
static el_status lazy_statement(struct mlog_reader *r, int which, sqlite3_stmt **out)
{
    if (!r->st[which] && sqlite3_prepare_v3(r->db, sql[which], -1, SQLITE_PREPARE_PERSISTENT,
                                            &r->st[which], NULL) != SQLITE_OK)
        return fail(r, SQLITE_ERROR, "preparing a read");
    *out = r->st[which];
    return EL_OK;
}

/* The rows of a DEAD_ROWS statement (bound by the caller) to fn. */
static el_status dead_rows(struct mlog_reader *r, sqlite3_stmt *st, uint32_t max_rows,
                           uint64_t *budget, mlog_dead_fn fn, void *ctx)
{
    uint32_t taken = 0;
    el_status rc = EL_OK;
    int s = SQLITE_DONE;
    while (taken < max_rows && (s = sqlite3_step(st)) == SQLITE_ROW) {
        struct mlog_dead_row d = {
            .seq = sqlite3_column_int64(st, 0),
            .recv_ms = sqlite3_column_int64(st, 1),
            .topic = (const char *)sqlite3_column_text(st, 2),
            .topic_len = (size_t)sqlite3_column_bytes(st, 2),
            .payload = sqlite3_column_blob(st, 3),
            .payload_len = (size_t)sqlite3_column_bytes(st, 3),
            .payload_bytes = (uint64_t)sqlite3_column_int64(st, 4),
            .reason = (const char *)sqlite3_column_text(st, 5),
            .detail = (const char *)sqlite3_column_text(st, 6),
            .replayed_seq = sqlite3_column_int64(st, 7),
            .mono_ms = sqlite3_column_int64(st, 8),
            .flags = (uint32_t)sqlite3_column_int64(st, 9),
        };
        if ((rc = spend(budget, 1)) != EL_OK)
            break;
        if (d.topic && d.reason && fn(ctx, &d))
            taken++;
    }
    if (rc == EL_OK && taken < max_rows && s != SQLITE_DONE)
        rc = fail(r, s, "reading dead letters");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

static void bind_dead_filter(sqlite3_stmt *st, int64_t upto_seq, int64_t since_ms,
                             const char *reason)
{
    sqlite3_bind_int64(st, 1, upto_seq);
    sqlite3_bind_int64(st, 2, since_ms);
    if (reason)
        sqlite3_bind_text(st, 3, reason, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 3);
}

el_status mlog_reader_scan_dead(struct mlog_reader *r, int64_t upto_seq, int64_t since_ms,
                                const char *reason, uint32_t max_rows, uint64_t *budget,
                                mlog_dead_fn fn, void *ctx)
{
    sqlite3_stmt *st = NULL;
    el_status rc = lazy_statement(r, ST_DEAD, &st);
    if (rc != EL_OK)
        return rc;
    bind_dead_filter(st, upto_seq, since_ms, reason);
    return dead_rows(r, st, max_rows, budget, fn, ctx);
}

el_status mlog_reader_scan_replayable(struct mlog_reader *r, int64_t after_seq, int64_t upto_seq,
                                      int64_t since_ms, const char *reason, uint32_t max_rows,
                                      uint64_t *budget, mlog_dead_fn fn, void *ctx)
{
    sqlite3_stmt *st = NULL;
    el_status rc = lazy_statement(r, ST_DEAD_REPLAY, &st);
    if (rc != EL_OK)
        return rc;
    bind_dead_filter(st, upto_seq, since_ms, reason);
    sqlite3_bind_int64(st, 4, after_seq);
    return dead_rows(r, st, max_rows, budget, fn, ctx);
}

int64_t mlog_reader_provisional_count(struct mlog_reader *r)
{
    sqlite3_stmt *st = NULL;
    int64_t lo = 0, hi = 0;
    if (lazy_statement(r, ST_WAITING_SPAN, &st) != EL_OK)
        return 0;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        lo = sqlite3_column_int64(st, 0);
        hi = sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    return lo > 0 ? hi - lo + 1 : 0;
}

/* ---- sequential reads ---- */

el_status mlog_reader_snapshot_for_batch(struct mlog_reader *r, int64_t *snapshot_seq)
{
    sqlite3_stmt *st = r->st[ST_BATCH_SNAPSHOT];
    int s = sqlite3_step(st);
    *snapshot_seq = s == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    return s == SQLITE_ROW ? EL_OK : fail(r, s, "reading the batch snapshot");
}

el_status mlog_reader_events_between(struct mlog_reader *r, int64_t lo, int64_t hi, bool *any)
{
    sqlite3_stmt *st = r->st[ST_ANY_EVENT];
    *any = false;
    if (hi <= lo)
        return EL_OK;
    sqlite3_bind_int64(st, 1, lo);
    sqlite3_bind_int64(st, 2, hi);
    int s = sqlite3_step(st);
    *any = s == SQLITE_ROW;
    sqlite3_reset(st);
    return s == SQLITE_ROW || s == SQLITE_DONE ? EL_OK : fail(r, s, "probing events");
}

el_status mlog_reader_scan_seq_chunk(struct mlog_reader *r, int64_t lo, int64_t hi,
                                     int64_t max_rows, unsigned flags, mlog_chunk_fn fn, void *ctx,
                                     int64_t *last_seq)
{
    bool named = (flags & MLOG_SCAN_NAMES) != 0;
    sqlite3_stmt *st = r->st[named ? ST_CHUNK_NAMED : ST_CHUNK];
    struct mlog_chunk_row row = {0};
    int s;
    *last_seq = lo;
    if (lo >= hi || max_rows <= 0)
        return EL_OK;
    sqlite3_bind_int64(st, 1, lo);
    sqlite3_bind_int64(st, 2, hi);
    sqlite3_bind_int64(st, 3, max_rows);
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        row.seq = sqlite3_column_int64(st, 0);
        row.series = (uint32_t)sqlite3_column_int64(st, 1);
        row.ts_ms = sqlite3_column_int64(st, 2);
        row.value = sqlite3_column_double(st, 3);
        if (named) {
            const unsigned char *name = sqlite3_column_text(st, 4);
            row.name = name ? (const char *)name : "";
            row.name_len = name ? (size_t)sqlite3_column_bytes(st, 4) : 0;
        }
        if (!fn(ctx, &row)) {
            s = SQLITE_DONE;
            break;
        }
        *last_seq = row.seq;
    }
    /* The reset ends the statement's read transaction outside a snapshot. */
    sqlite3_reset(st);
    return s == SQLITE_DONE ? EL_OK : fail(r, s, "reading events by sequence");
}

el_status mlog_reader_first_recv_after(struct mlog_reader *r, int64_t after, int64_t *recv_ms)
{
    sqlite3_stmt *st = r->st[ST_FIRST_RECV];
    sqlite3_bind_int64(st, 1, after);
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW)
        *recv_ms = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    if (s == SQLITE_DONE)
        return EL_NOTFOUND;
    return s == SQLITE_ROW ? EL_OK : fail(r, s, "reading a receive time");
}

el_status mlog_reader_trimmed_max_ts(struct mlog_reader *r, int64_t *ts_ms)
{
    el_status rc = EL_OK;
    *ts_ms = one_int(r,
                     "SELECT coalesce((SELECT value FROM meta WHERE key='trimmed_max_ts'), "
                     "-9223372036854775807)",
                     &rc);
    return rc;
}
