/*
 * mlog_verify — checks of a master log and its views (design in
 * mlog_verify.h). All SQL on the master log's tables stays in storage/.
 */
#include "mlog_verify.h"

#include <limits.h>
#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mlog.h"

static void note(struct mlog_verify_report *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void note(struct mlog_verify_report *r, const char *fmt, ...)
{
    va_list ap;
    if (r->n_notes == MLOG_VERIFY_NOTES)
        return;
    va_start(ap, fmt);
    vsnprintf(r->notes[r->n_notes++], MLOG_VERIFY_NOTE_MAX, fmt, ap);
    va_end(ap);
}

static int64_t one_int(sqlite3 *db, const char *sql, int64_t dflt)
{
    sqlite3_stmt *st = NULL;
    int64_t v = dflt;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
        sqlite3_column_type(st, 0) != SQLITE_NULL)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static bool quick_check(sqlite3 *db, const char *name, struct mlog_verify_report *r)
{
    sqlite3_stmt *st = NULL;
    bool ok = false;
    if (sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        ok = t && strcmp(t, "ok") == 0;
        if (!ok)
            note(r, "%s is damaged: %s", name, t ? t : "?");
    }
    sqlite3_finalize(st);
    return ok;
}

/* Sequence continuity: first..last each stored exactly once somewhere. */
static void check_sequences(sqlite3 *db, struct mlog_verify_report *r)
{
    r->events = one_int(db, "SELECT count(*) FROM events", 0);
    r->dead_letters = one_int(db, "SELECT count(*) FROM dead_letters", 0);
    r->waiting = one_int(db, "SELECT count(*) FROM unanchored", 0);
    /* The per-block counts (status storage.raw_events) */
    r->counted_events = one_int(db, "SELECT sum(n) FROM blocks", -1);
    if (r->counted_events >= 0 && r->counted_events != r->events)
        note(r, "the block summaries count %lld events but the master log holds %lld",
             (long long)r->counted_events, (long long)r->events);
    r->first_seq = one_int(db,
                           "SELECT min(s) FROM (SELECT min(seq) s FROM events UNION ALL SELECT "
                           "min(seq) FROM dead_letters UNION ALL SELECT min(seq) FROM unanchored)",
                           0);
    r->last_seq = one_int(db,
                          "SELECT max(s) FROM (SELECT max(seq) s FROM events UNION ALL SELECT "
                          "max(seq) FROM dead_letters UNION ALL SELECT max(seq) FROM unanchored)",
                          0);
    int64_t stored = r->events + r->dead_letters + r->waiting;
    int64_t span = r->first_seq > 0 ? r->last_seq - r->first_seq + 1 : 0;
    r->missing_seqs = span - stored;
    if (r->missing_seqs > 0) {
        int64_t gap =
            one_int(db,
                    "WITH s(seq) AS (SELECT seq FROM events UNION ALL SELECT seq FROM "
                    "dead_letters UNION ALL SELECT seq FROM unanchored) SELECT min(seq)+1 "
                    "FROM s WHERE seq < (SELECT max(seq) FROM s) AND seq+1 NOT IN "
                    "(SELECT seq FROM s)",
                    0);
        note(r, "%lld sequence numbers between %lld and %lld are missing, the first %lld",
             (long long)r->missing_seqs, (long long)r->first_seq, (long long)r->last_seq,
             (long long)gap);
    } else if (r->missing_seqs < 0) {
        note(r, "%lld sequence numbers are stored twice (an event and a dead letter?)",
             (long long)-r->missing_seqs);
    }
}

/* Each block's summary covers its events' times. */
static void check_blocks(sqlite3 *db, struct mlog_verify_report *r)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT e.seq >> %d AS blk, min(e.ts), max(e.ts), b.min_ts, b.max_ts FROM events e "
             "LEFT JOIN blocks b ON b.block = e.seq >> %d GROUP BY blk HAVING b.block IS NULL OR "
             "min(e.ts) < b.min_ts OR max(e.ts) > b.max_ts",
             MLOG_BLOCK_SHIFT, MLOG_BLOCK_SHIFT);
    sqlite3_stmt *st = NULL;
    r->blocks = one_int(db, "SELECT count(*) FROM blocks", 0);
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (r->bad_blocks++ == 0)
            note(r,
                 "block %lld (sequences %lld..) holds event times %lld..%lld beyond its summary: "
                 "time-range reads would miss them",
                 (long long)sqlite3_column_int64(st, 0),
                 (long long)(sqlite3_column_int64(st, 0) << MLOG_BLOCK_SHIFT),
                 (long long)sqlite3_column_int64(st, 1), (long long)sqlite3_column_int64(st, 2));
    }
    sqlite3_finalize(st);
}

/* One view row against the raw events it stands for. */
static void check_view_row(sqlite3_stmt *raw, sqlite3_stmt *v, struct mlog_verify_report *r)
{
    int64_t res = sqlite3_column_int64(v, 0), series = sqlite3_column_int64(v, 1);
    int64_t t = sqlite3_column_int64(v, 2), count = sqlite3_column_int64(v, 3);
    double sum = sqlite3_column_double(v, 4) + sqlite3_column_double(v, 5);
    double mn = sqlite3_column_double(v, 6), mx = sqlite3_column_double(v, 7);
    sqlite3_bind_int64(raw, 1, series);
    sqlite3_bind_int64(raw, 2, t);
    sqlite3_bind_int64(raw, 3, t + res);
    sqlite3_bind_int64(raw, 4, r->watermark_seq);
    if (sqlite3_step(raw) == SQLITE_ROW) {
        int64_t n = sqlite3_column_int64(raw, 0);
        double rmn = sqlite3_column_double(raw, 1), rmx = sqlite3_column_double(raw, 2);
        double rsum = sqlite3_column_double(raw, 3);
        bool sum_ok = fabs(rsum - sum) <= 1e-9 * (fabs(sum) + 1.0);
        if (n < count && r->first_seq > 1) {
            r->views_uncheckable++; /* retention removed raw events the view keeps */
        } else if (n != count || (n > 0 && (rmn != mn || rmx != mx || !sum_ok))) {
            if (r->views_wrong++ == 0)
                note(r,
                     "the %lld ms view of series %lld at %lld says count %lld, min %g, max %g, "
                     "sum %.17g; the raw events say %lld, %g, %g, %.17g",
                     (long long)res, (long long)series, (long long)t, (long long)count, mn, mx, sum,
                     (long long)n, rmn, rmx, rsum);
        }
        r->views_checked++;
    }
    sqlite3_reset(raw);
}

static void check_views(sqlite3 *db, const char *views_path, int sample,
                        struct mlog_verify_report *r)
{
    sqlite3 *vdb = NULL;
    sqlite3_stmt *v = NULL, *raw = NULL;
    char sql[600];
    if (sqlite3_open_v2(views_path, &vdb, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        sqlite3_close(vdb);
        r->views_ok = true; /* no views yet: nothing to check */
        return;
    }
    sqlite3_busy_timeout(vdb, 5000);
    r->views_ok = quick_check(vdb, "views.db", r);
    (void)sqlite3_exec(vdb, "BEGIN", NULL, NULL, NULL);
    r->watermark_seq = one_int(vdb, "SELECT value FROM meta WHERE key='watermark_seq'", 0);
    snprintf(
        sql, sizeof sql,
        "SELECT count(*), min(e.value), max(e.value), sum(e.value) FROM blocks b JOIN events e "
        "ON e.seq >= b.block << %d AND e.seq < (b.block + 1) << %d WHERE b.min_ts < ?3 AND "
        "b.max_ts >= ?2 AND e.series = ?1 AND e.ts >= ?2 AND e.ts < ?3 AND e.seq <= ?4",
        MLOG_BLOCK_SHIFT, MLOG_BLOCK_SHIFT);
    if (sqlite3_prepare_v2(vdb,
                           "SELECT res, series, t, count, sum_hi, sum_lo, min, max FROM views "
                           "ORDER BY random() LIMIT ?1",
                           -1, &v, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &raw, NULL) == SQLITE_OK) {
        sqlite3_bind_int(v, 1, sample);
        while (sqlite3_step(v) == SQLITE_ROW)
            check_view_row(raw, v, r);
    }
    sqlite3_finalize(raw);
    sqlite3_finalize(v);
    (void)sqlite3_exec(vdb, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(vdb);
    if (r->views_uncheckable)
        note(r, "%lld sampled view rows cover events retention removed: not recomputable",
             (long long)r->views_uncheckable);
}

el_status mlog_verify(const char *dir, int sample_rows, struct mlog_verify_report *out)
{
    char path[PATH_MAX];
    sqlite3 *db = NULL;
    memset(out, 0, sizeof *out);
    snprintf(path, sizeof path, "%s/master.db", dir);
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        note(out, "cannot open %s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return EL_IO;
    }
    sqlite3_busy_timeout(db, 5000);
    out->master_ok = quick_check(db, "master.db", out);
    /* One snapshot for every check: the daemon may commit meanwhile. */
    if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
        one_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'events'", 0) == 0) {
        note(out, "%s is not a master log (no events table)", path);
        sqlite3_close(db);
        return EL_DB;
    }
    check_sequences(db, out);
    check_blocks(db, out);
    snprintf(path, sizeof path, "%s/views.db", dir);
    check_views(db, path, sample_rows, out);
    (void)sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(db);
    return EL_OK;
}
