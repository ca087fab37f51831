/*
 * mlog_test — unit tests for the SQLite master log (storage/mlog.c).
 *
 * What is covered: the documented schema, WAL mode and meta rows; the boots
 * table; events and dead letters read back column by column through a
 * second SQLite connection; the series dictionary (dense ids, limits,
 * reload, rollback); group commit visibility; scan_recent; real failures
 * (a write lock held by another connection -> SQLITE_BUSY after mlog's busy
 * timeout, a file-size limit that makes the commit's WAL write fail,
 * corrupted or foreign master.db files), each followed by a check that the
 * log still works and PRAGMA integrity_check is ok; mlog_bytes; the
 * replayed_seq migration and marking a dead letter replayed exactly once.
 *
 * Each test runs in its own fresh directory from mkdtemp under $TMPDIR (or
 * /tmp), removed by the teardown.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mlog.h"
#include "plat_log.h"
#include "test_fs.h"
#include "test_mlog.h"

/* ---- fixture: one fresh temp dir per test ---- */

struct fixture {
    char dir[PATH_MAX];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    if (test_mkdtemp(f->dir, sizeof f->dir, "mlog") != 0) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    int rc = test_rmtree(f->dir);
    free(f);
    return rc;
}

/* ---- helpers ---- */

static struct mlog *open_log(const char *dir, uint32_t max_series, const char *boot,
                             int64_t wall_ms, int64_t mono_ms)
{
    struct mlog_opts o = {.dir = dir, .max_series = max_series};
    struct mlog *log = NULL;
    assert_int_equal(mlog_open(&o, boot, wall_ms, mono_ms, &log), EL_OK);
    assert_non_null(log);
    return log;
}

static el_status try_open(const char *dir, uint32_t max_series, struct mlog **log)
{
    struct mlog_opts o = {.dir = dir, .max_series = max_series};
    *log = (struct mlog *)(uintptr_t)1;
    return mlog_open(&o, "boot-x", 1, 2, log);
}

static void db_path(const char *dir, char *buf, size_t len)
{
    if (snprintf(buf, len, "%s/master.db", dir) >= (int)len)
        abort();
}

/* A second connection to master.db, as another thread or process would
 * have; no busy timeout. */
static sqlite3 *peer_open(const char *dir)
{
    char path[PATH_MAX + 16];
    sqlite3 *db = NULL;
    db_path(dir, path, sizeof path);
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    return db;
}

static void peer_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        print_error("%s: %s\n", sql, msg ? msg : "?");
    sqlite3_free(msg);
    assert_int_equal(rc, SQLITE_OK);
}

static int64_t peer_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void peer_text(sqlite3 *db, const char *sql, char *buf, size_t len)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    const unsigned char *t = sqlite3_column_text(st, 0);
    if (snprintf(buf, len, "%s", t ? (const char *)t : "(null)") >= (int)len)
        abort();
    sqlite3_finalize(st);
}

static void expect_integrity_ok(const char *dir)
{
    char res[256];
    sqlite3 *db = peer_open(dir);
    peer_text(db, "PRAGMA integrity_check", res, sizeof res);
    assert_string_equal(res, "ok");
    sqlite3_close(db);
}

static int64_t count_rows(const char *dir, const char *table)
{
    char sql[128];
    sqlite3 *db = peer_open(dir);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
    int64_t n = peer_int(db, sql);
    sqlite3_close(db);
    return n;
}

static uint32_t series(struct mlog *log, const char *name, int64_t first_seq)
{
    uint32_t id = 0;
    assert_int_equal(mlog_series_get(log, name, strlen(name), first_seq, &id), EL_OK);
    assert_true(id > 0);
    return id;
}

static void append_simple(struct mlog *log, int64_t seq, uint32_t series_id, const char *payload)
{
    struct mlog_event ev = {.seq = seq,
                            .series_id = series_id,
                            .ts_ms = seq * 1000,
                            .value = (double)seq / 2.0,
                            .recv_ms = seq * 1000 + 1,
                            .mono_ms = seq,
                            .flags = MLOG_F_CLOCK_SYNCED,
                            .payload = payload,
                            .payload_len = payload ? strlen(payload) : 0};
    assert_int_equal(mlog_append_event(log, &ev), EL_OK);
}

static int64_t wall_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- schema, WAL, meta, boots ---- */

struct col {
    const char *name, *type;
    int notnull, pk;
};

static void expect_columns(sqlite3 *db, const char *table, const struct col *cols, size_t n)
{
    char sql[128];
    sqlite3_stmt *st = NULL;
    size_t i = 0;
    snprintf(sql, sizeof sql, "SELECT name, type, \"notnull\", pk FROM pragma_table_info('%s')",
             table);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
        assert_true(i < n);
        assert_string_equal((const char *)sqlite3_column_text(st, 0), cols[i].name);
        assert_string_equal((const char *)sqlite3_column_text(st, 1), cols[i].type);
        if (cols[i].notnull >= 0)
            assert_int_equal(sqlite3_column_int(st, 2), cols[i].notnull);
        assert_int_equal(sqlite3_column_int(st, 3), cols[i].pk);
        i++;
    }
    sqlite3_finalize(st);
    assert_int_equal(i, n);
}

/* A master.db of an older version: only a dead_letters table, with the
 * columns of version 1 and extra_columns, and rows (insert_sql). */
static void old_dead_letters(const char *dir, const char *extra_columns, const char *insert_sql)
{
    char path[PATH_MAX + 16], sql[512];
    sqlite3 *db = NULL;
    db_path(dir, path, sizeof path);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    snprintf(sql, sizeof sql,
             "CREATE TABLE dead_letters(seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, payload "
             "BLOB, payload_bytes INTEGER NOT NULL, recv INTEGER NOT NULL, mono INTEGER NOT NULL, "
             "boot INTEGER NOT NULL, flags INTEGER NOT NULL, reason TEXT NOT NULL%s);%s",
             extra_columns, insert_sql);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

/* A master log written before dead letters had a detail gains the column
 * at open, keeps its rows, and takes details from then on. */
static void test_old_dead_letters_gain_detail(void **state)
{
    struct fixture *f = *state;
    sqlite3 *db = NULL;
    old_dead_letters(f->dir, "",
                     "INSERT INTO dead_letters VALUES(1,'t','x',1,2,3,1,0,'malformed')");
    struct mlog *log = open_log(f->dir, 10, "boot-a", 1700000000000, 1);
    const struct mlog_dead dl = {.seq = 2,
                                 .topic = "t",
                                 .topic_len = 1,
                                 .payload_bytes = 0,
                                 .reason = "non_numeric",
                                 .detail = "field \"v\" is a string",
                                 .detail_len = 21};
    assert_int_equal(mlog_append_dead(log, &dl), EL_OK);
    assert_int_equal(mlog_commit(log), EL_OK);
    mlog_close(log);
    db = peer_open(f->dir);
    sqlite3_stmt *st = NULL;
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT seq, detail FROM dead_letters ORDER BY seq", -1, &st, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_type(st, 1), SQLITE_NULL); /* the old row: no detail */
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 1), "field \"v\" is a string");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static int64_t replayed_seq_of(const char *dir, int64_t seq)
{
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT coalesce(replayed_seq, 0) FROM dead_letters WHERE seq=%lld",
             (long long)seq);
    sqlite3 *db = peer_open(dir);
    int64_t v = peer_int(db, sql);
    sqlite3_close(db);
    return v;
}

/* Replay (firmware/daemon/replay.h): an older file gains replayed_seq at
 * open; a dead letter is marked once, in the transaction of its events: a
 * rollback forgets the mark, a second mark is refused (and its seqs count
 * as taken), a missing dead letter is refused. */
static void test_dead_letters_replayed_once(void **state)
{
    struct fixture *f = *state;
    bool fresh = true;
    old_dead_letters(f->dir, ", detail TEXT",
                     "INSERT INTO dead_letters VALUES(1,'t','x',1,2,3,1,0,'malformed',NULL),"
                     "(2,'t','y',1,2,3,1,0,'no_value',NULL)");
    struct mlog *log = open_log(f->dir, 10, "boot-a", 1700000000000, 1);
    assert_int_equal(replayed_seq_of(f->dir, 1), 0);
    uint32_t id = series(log, "t", 3);
    /* rolled back: not marked */
    assert_int_equal(mlog_mark_replayed(log, 1, 3, 3, &fresh), EL_OK);
    assert_true(fresh);
    append_simple(log, 3, id, "x");
    mlog_rollback(log);
    assert_int_equal(replayed_seq_of(f->dir, 1), 0);
    /* committed with its event */
    id = series(log, "t", 3);
    assert_int_equal(mlog_mark_replayed(log, 1, 3, 3, &fresh), EL_OK);
    assert_true(fresh);
    append_simple(log, 3, id, "x");
    assert_int_equal(mlog_commit(log), EL_OK);
    assert_int_equal(replayed_seq_of(f->dir, 1), 3);
    /* a second record for the same dead letter is refused; its seqs are taken */
    assert_int_equal(mlog_mark_replayed(log, 1, 4, 5, &fresh), EL_OK);
    assert_false(fresh);
    assert_int_equal(mlog_commit(log), EL_OK);
    assert_int_equal(replayed_seq_of(f->dir, 1), 3);
    assert_int_equal(mlog_committed_seq(log), 5);
    /* a dead letter that is not there */
    assert_int_equal(mlog_mark_replayed(log, 99, 6, 6, &fresh), EL_OK);
    assert_false(fresh);
    assert_int_equal(mlog_commit(log), EL_OK);
    assert_int_equal(replayed_seq_of(f->dir, 2), 0);
    /* seqs skipped without a mark (a record the core refused) are taken too;
     * a lower skip changes nothing */
    assert_int_equal(mlog_skip_seqs(log, 8), EL_OK);
    assert_int_equal(mlog_skip_seqs(log, 7), EL_OK);
    assert_int_equal(mlog_commit(log), EL_OK);
    assert_int_equal(mlog_committed_seq(log), 8);
    /* a skip rolled back is forgotten */
    assert_int_equal(mlog_skip_seqs(log, 20), EL_OK);
    mlog_rollback(log);
    assert_int_equal(mlog_last_seq(log), 8);
    mlog_close(log);
    /* opening again migrates nothing twice, and the skipped seqs stay taken
     * (the highest stored seq is 3: reusing 4..8 would hand a new event a
     * seq that sync acknowledged already) */
    log = open_log(f->dir, 10, "boot-a", 1700000000000, 1);
    assert_int_equal(mlog_last_seq(log), 8);
    assert_int_equal(mlog_committed_seq(log), 8);
    mlog_close(log);
    assert_int_equal(replayed_seq_of(f->dir, 1), 3);
}

static void test_open_schema(void **state)
{
    struct fixture *f = *state;
    char dir[PATH_MAX + 16], text[256];
    snprintf(dir, sizeof dir, "%s/a/b", f->dir); /* created by mlog_open */
    int64_t before = wall_now_ms();
    struct mlog *log = open_log(dir, 100, "boot-a", 1700000000000, 12345);
    assert_int_equal(mlog_last_seq(log), 0);
    assert_int_equal(mlog_committed_seq(log), 0);
    assert_int_equal(mlog_series_count(log), 0);
    assert_int_equal(mlog_pending(log), 0);
    assert_true(mlog_bytes(log) > 0);

    sqlite3 *db = peer_open(dir);
    sqlite3_stmt *st = NULL;
    static const char *const tables[] = {"blocks", "boots",  "dead_letters", "events",
                                         "meta",   "series", "unanchored"};
    size_t nt = 0;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT name FROM sqlite_master WHERE type='table' "
                                        "ORDER BY name",
                                        -1, &st, NULL),
                     SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
        assert_true(nt < 7);
        assert_string_equal((const char *)sqlite3_column_text(st, 0), tables[nt++]);
    }
    sqlite3_finalize(st);
    assert_int_equal(nt, 7);

    static const struct col meta[] = {{"key", "TEXT", -1, 1}, {"value", "", 0, 0}};
    static const struct col boots[] = {{"id", "INTEGER", 0, 1},
                                       {"boot_id", "TEXT", 1, 0},
                                       {"first_seq", "INTEGER", 1, 0},
                                       {"first_wall_ms", "INTEGER", 1, 0},
                                       {"first_mono_ms", "INTEGER", 1, 0}};
    static const struct col ser[] = {
        {"id", "INTEGER", 0, 1}, {"name", "TEXT", 1, 0}, {"first_seq", "INTEGER", 1, 0}};
    static const struct col events[] = {
        {"seq", "INTEGER", 0, 1},  {"series", "INTEGER", 1, 0}, {"ts", "INTEGER", 1, 0},
        {"value", "REAL", 1, 0},   {"recv", "INTEGER", 1, 0},   {"mono", "INTEGER", 1, 0},
        {"boot", "INTEGER", 1, 0}, {"flags", "INTEGER", 1, 0},  {"payload", "BLOB", 0, 0}};
    static const struct col dead[] = {
        {"seq", "INTEGER", 0, 1},         {"topic", "TEXT", 1, 0},
        {"payload", "BLOB", 0, 0},        {"payload_bytes", "INTEGER", 1, 0},
        {"recv", "INTEGER", 1, 0},        {"mono", "INTEGER", 1, 0},
        {"boot", "INTEGER", 1, 0},        {"flags", "INTEGER", 1, 0},
        {"reason", "TEXT", 1, 0},         {"detail", "TEXT", 0, 0},
        {"replayed_seq", "INTEGER", 0, 0}};
    static const struct col blocks[] = {{"block", "INTEGER", 0, 1},
                                        {"min_ts", "INTEGER", 1, 0},
                                        {"max_ts", "INTEGER", 1, 0},
                                        {"n", "INTEGER", 0, 0}};
    expect_columns(db, "meta", meta, 2);
    expect_columns(db, "blocks", blocks, 4);
    expect_columns(db, "boots", boots, 5);
    expect_columns(db, "series", ser, 3);
    expect_columns(db, "events", events, 9);
    expect_columns(db, "dead_letters", dead, 11);
    /* UNIQUE on boots.boot_id and series.name; no secondary index on events. */
    assert_int_equal(peer_int(db, "SELECT count(*) FROM pragma_index_list('boots') "
                                  "WHERE \"unique\"=1"),
                     1);
    assert_int_equal(peer_int(db, "SELECT count(*) FROM pragma_index_list('series') "
                                  "WHERE \"unique\"=1"),
                     1);
    assert_int_equal(peer_int(db, "SELECT count(*) FROM pragma_index_list('events')"), 0);
    assert_int_equal(peer_int(db, "SELECT count(*) FROM pragma_index_list('dead_letters')"), 0);
    assert_int_equal(
        peer_int(db, "SELECT count(*) FROM sqlite_master WHERE tbl_name='meta' AND sql LIKE "
                     "'%WITHOUT ROWID%'"),
        1);

    peer_text(db, "PRAGMA journal_mode", text, sizeof text);
    assert_string_equal(text, "wal");
    assert_int_equal(peer_int(db, "SELECT value FROM meta WHERE key='schema_version'"),
                     MLOG_SCHEMA_VERSION);
    int64_t created = peer_int(db, "SELECT value FROM meta WHERE key='created_ms'");
    assert_true(created >= before / 1000 * 1000 && created <= wall_now_ms() + 1000);
    assert_int_equal(peer_int(db, "SELECT count(*) FROM meta"), 2);

    assert_int_equal(peer_int(db, "SELECT count(*) FROM boots"), 1);
    peer_text(db,
              "SELECT id||','||boot_id||','||first_seq||','||first_wall_ms||','||"
              "first_mono_ms FROM boots",
              text, sizeof text);
    assert_string_equal(text, "1,boot-a,1,1700000000000,12345");
    sqlite3_close(db);

    /* Same boot again: no new row. Then some events. */
    mlog_close(log);
    log = open_log(dir, 100, "boot-a", 1700000009999, 99999);
    assert_int_equal(count_rows(dir, "boots"), 1);
    uint32_t s = series(log, "x", 1);
    for (int64_t q = 1; q <= 3; q++)
        append_simple(log, q, s, "p");
    assert_int_equal(mlog_commit(log), EL_OK);
    mlog_close(log);

    /* Another boot: a second row starting after the last sequence, and its
     * events carry its row id. */
    log = open_log(dir, 100, "boot-b", 1800000000000, 77);
    assert_int_equal(mlog_last_seq(log), 3);
    assert_int_equal(mlog_committed_seq(log), 3);
    assert_int_equal(mlog_series_count(log), 1);
    append_simple(log, 4, s, "q");
    assert_int_equal(mlog_commit(log), EL_OK);
    mlog_close(log);
    log = open_log(dir, 100, "boot-a", 1, 1); /* back on boot-a's row */
    append_simple(log, 5, s, "r");
    assert_int_equal(mlog_commit(log), EL_OK);
    db = peer_open(dir);
    assert_int_equal(peer_int(db, "SELECT count(*) FROM boots"), 2);
    peer_text(db,
              "SELECT id||','||boot_id||','||first_seq||','||first_wall_ms||','||"
              "first_mono_ms FROM boots WHERE boot_id='boot-b'",
              text, sizeof text);
    assert_string_equal(text, "2,boot-b,4,1800000000000,77");
    peer_text(db, "SELECT group_concat(boot, ',') FROM (SELECT boot FROM events ORDER BY seq)",
              text, sizeof text);
    assert_string_equal(text, "1,1,1,2,1");
    sqlite3_close(db);
    mlog_close(log);
    mlog_close(NULL);
    expect_integrity_ok(dir);
}

/* ---- events and dead letters, column by column ---- */

static void test_append_readback(void **state)
{
    struct fixture *f = *state;
    struct mlog *log = open_log(f->dir, 16, "boot-1", 1000, 2000);
    static const unsigned char bin[] = {0x00, 0xff, 0x10, 0x00, 'a', 0x80, 0x7f, 0x00};
    const char topic_buf[] = "bad/topicXYZ"; /* topic_len 9: no NUL after it */
    const uint32_t s1 = series(log, "sensors/t1", 1), s2 = series(log, "sensors/h", 2);
    assert_int_equal(s1, 1);
    assert_int_equal(s2, 2);

    const struct mlog_event ev[] = {
        {1, s1, 1700000000123, 21.5, 1700000000200, 555, MLOG_F_CLOCK_SYNCED | MLOG_F_HAS_TS,
         "{\"t\":21.5}", 10},
        {2, s2, -5, -0.001, -7, 556, MLOG_F_CLOCK_SYNCED, bin, sizeof bin},
        {4, s1, INT64_MAX, 1e300, INT64_MIN, 0, MLOG_F_MQTT_DUP | MLOG_F_HAS_TS, "", 0},
        {5, s2, 0, -0.0, 1, 2, 0xffffffffu, NULL, 0},
        {7, s1, 42, INFINITY, 3, 4, MLOG_F_HAS_TS, "x", 1},
    };
    const struct mlog_dead dl[] = {
        {3, topic_buf, 9, "garbage\0x", 9, 5000, 1700000000300, 557, MLOG_F_TRUNCATED,
         "invalid_json", "line 1: expected", 16},
        {6, "", 0, NULL, 0, 0, 8, 9, 0, "empty", NULL, 0},
    };
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(mlog_append_event(log, &ev[i]), EL_OK);
        if (i == 1)
            assert_int_equal(mlog_append_dead(log, &dl[0]), EL_OK);
        if (i == 3)
            assert_int_equal(mlog_append_dead(log, &dl[1]), EL_OK);
    }
    assert_int_equal(mlog_pending(log), 7);
    assert_int_equal(mlog_last_seq(log), 7);
    assert_int_equal(mlog_committed_seq(log), 0);

    /* Not visible to another connection before the commit. */
    sqlite3 *db = peer_open(f->dir);
    assert_int_equal(peer_int(db, "SELECT count(*) FROM events"), 0);
    assert_int_equal(peer_int(db, "SELECT count(*) FROM dead_letters"), 0);
    assert_int_equal(peer_int(db, "SELECT count(*) FROM series"), 0);
    assert_int_equal(mlog_commit(log), EL_OK);
    assert_int_equal(mlog_pending(log), 0);
    assert_int_equal(mlog_committed_seq(log), 7);
    assert_int_equal(mlog_last_seq(log), 7);
    assert_int_equal(mlog_commit(log), EL_OK); /* nothing open: no-op */

    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT seq, series, ts, value, recv, mono, boot, flags,"
                                        " payload, typeof(payload) FROM events ORDER BY seq",
                                        -1, &st, NULL),
                     SQLITE_OK);
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int64(st, 0), ev[i].seq);
        assert_int_equal(sqlite3_column_int64(st, 1), ev[i].series_id);
        assert_int_equal(sqlite3_column_int64(st, 2), ev[i].ts_ms);
        /* Bit-exact, except that SQLite stores -0.0 as the integer 0. */
        double v = sqlite3_column_double(st, 3);
        if (ev[i].value != 0.0)
            assert_memory_equal(&v, &ev[i].value, sizeof v);
        else
            assert_true(v == 0.0);
        assert_int_equal(sqlite3_column_int64(st, 4), ev[i].recv_ms);
        assert_int_equal(sqlite3_column_int64(st, 5), ev[i].mono_ms);
        assert_int_equal(sqlite3_column_int64(st, 6), 1);
        assert_int_equal(sqlite3_column_int64(st, 7), ev[i].flags);
        const void *blob = sqlite3_column_blob(st, 8);
        assert_int_equal(sqlite3_column_bytes(st, 8), ev[i].payload_len);
        if (ev[i].payload_len)
            assert_memory_equal(blob, ev[i].payload, ev[i].payload_len);
        assert_string_equal((const char *)sqlite3_column_text(st, 9),
                            ev[i].payload ? "blob" : "null");
    }
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);

    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT seq, topic, payload, payload_bytes, recv, mono,"
                                        " boot, flags, reason, typeof(topic) FROM dead_letters"
                                        " ORDER BY seq",
                                        -1, &st, NULL),
                     SQLITE_OK);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int64(st, 0), dl[i].seq);
        const unsigned char *topic = sqlite3_column_text(st, 1);
        assert_int_equal(sqlite3_column_bytes(st, 1), dl[i].topic_len);
        assert_memory_equal(topic, dl[i].topic, dl[i].topic_len);
        assert_string_equal((const char *)sqlite3_column_text(st, 9), "text");
        const void *blob = sqlite3_column_blob(st, 2);
        assert_int_equal(sqlite3_column_bytes(st, 2), dl[i].payload_len);
        if (dl[i].payload_len)
            assert_memory_equal(blob, dl[i].payload, dl[i].payload_len);
        assert_int_equal(sqlite3_column_int64(st, 3), dl[i].payload_bytes);
        assert_int_equal(sqlite3_column_int64(st, 4), dl[i].recv_ms);
        assert_int_equal(sqlite3_column_int64(st, 5), dl[i].mono_ms);
        assert_int_equal(sqlite3_column_int64(st, 6), 1);
        assert_int_equal(sqlite3_column_int64(st, 7), dl[i].flags);
        assert_string_equal((const char *)sqlite3_column_text(st, 8), dl[i].reason);
    }
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);

    char text[256];
    peer_text(db, "SELECT group_concat(id||':'||name||':'||first_seq, ' ') FROM series", text,
              sizeof text);
    assert_string_equal(text, "1:sensors/t1:1 2:sensors/h:2");
    sqlite3_close(db);

    /* A sequence number already stored is refused (primary key) and
     * dropping the transaction restores the state. */
    assert_int_equal(mlog_append_event(log, &ev[4]) == EL_OK, 0);
    mlog_rollback(log);
    assert_int_equal(mlog_pending(log), 0);
    assert_int_equal(mlog_last_seq(log), 7);

    /* Closing with an open transaction keeps nothing of it. */
    append_simple(log, 8, s1, "lost");
    mlog_close(log);
    log = open_log(f->dir, 16, "boot-1", 1000, 2000);
    assert_int_equal(mlog_last_seq(log), 7);
    assert_int_equal(mlog_committed_seq(log), 7);
    mlog_close(log);
    assert_int_equal(count_rows(f->dir, "events"), 5);
    expect_integrity_ok(f->dir);
}

/* ---- series dictionary ---- */

static void test_series_dictionary(void **state)
{
    struct fixture *f = *state;
    char name[300];
    uint32_t id = 0;
    struct mlog *log = open_log(f->dir, 64, "b", 0, 0);

    for (uint32_t i = 0; i < 64; i++) {
        snprintf(name, sizeof name, "site/%u/temp", i * 7919u);
        assert_int_equal(mlog_series_find(log, name, strlen(name), &id), EL_NOTFOUND);
        assert_int_equal(series(log, name, 100 + i), i + 1);
        assert_int_equal(mlog_series_count(log), i + 1);
    }
    for (uint32_t i = 0; i < 64; i++) {
        snprintf(name, sizeof name, "site/%u/temp", i * 7919u);
        assert_int_equal(mlog_series_find(log, name, strlen(name), &id), EL_OK);
        assert_int_equal(id, i + 1);
        assert_string_equal(mlog_series_name(log, i + 1), name);
        /* A prefix is another name. */
        assert_int_equal(mlog_series_find(log, name, strlen(name) - 1, &id), EL_NOTFOUND);
    }
    assert_null(mlog_series_name(log, 0));
    assert_null(mlog_series_name(log, 65));
    /* Full: existing names still resolve, new ones are refused. */
    snprintf(name, sizeof name, "site/%u/temp", 5 * 7919u);
    assert_int_equal(mlog_series_get(log, name, strlen(name), 1, &id), EL_OK);
    assert_int_equal(id, 6);
    assert_int_equal(mlog_series_get(log, "new", 3, 1, &id), EL_FULL);
    assert_int_equal(mlog_series_find(log, "new", 3, &id), EL_NOTFOUND);
    assert_int_equal(mlog_series_count(log), 64);
    assert_int_equal(mlog_commit(log), EL_OK);
    mlog_close(log);

    /* A smaller max_series than the ids stored is refused. */
    struct mlog *bad = NULL;
    assert_int_equal(try_open(f->dir, 10, &bad), EL_INVAL);
    assert_null(bad);

    /* Reopen: same ids, more room. */
    log = open_log(f->dir, 300, "b", 0, 0);
    assert_int_equal(mlog_series_count(log), 64);
    for (uint32_t i = 0; i < 64; i++) {
        snprintf(name, sizeof name, "site/%u/temp", i * 7919u);
        assert_int_equal(mlog_series_find(log, name, strlen(name), &id), EL_OK);
        assert_int_equal(id, i + 1);
        assert_string_equal(mlog_series_name(log, i + 1), name);
    }

    /* Name lengths: 1 and MLOG_MAX_SERIES_NAME work, 0 and 256 do not. */
    memset(name, 'n', sizeof name);
    assert_int_equal(mlog_series_get(log, name, 0, 1, &id), EL_INVAL);
    assert_int_equal(mlog_series_get(log, name, MLOG_MAX_SERIES_NAME + 1, 1, &id), EL_INVAL);
    assert_int_equal(mlog_series_count(log), 64);
    assert_int_equal(mlog_series_get(log, name, MLOG_MAX_SERIES_NAME, 1, &id), EL_OK);
    assert_int_equal(id, 65);
    assert_int_equal(strlen(mlog_series_name(log, 65)), MLOG_MAX_SERIES_NAME);
    assert_int_equal(mlog_series_get(log, name, 1, 1, &id), EL_OK);
    assert_int_equal(id, 66);
    assert_string_equal(mlog_series_name(log, 66), "n");
    append_simple(log, 10, 65, "a");
    assert_int_equal(mlog_commit(log), EL_OK);
    assert_int_equal(mlog_committed_seq(log), 10);

    /* Rollback: series created in the transaction are forgotten, last_seq
     * returns to the committed value, nothing reaches the database. */
    uint32_t a = series(log, "rb/a", 11), b = series(log, "rb/b", 12);
    assert_int_equal(a, 67);
    assert_int_equal(b, 68);
    append_simple(log, 11, a, "x");
    append_simple(log, 12, b, "y");
    append_simple(log, 13, 1, "z");
    assert_int_equal(mlog_last_seq(log), 13);
    assert_int_equal(mlog_pending(log), 3);
    mlog_rollback(log);
    assert_int_equal(mlog_pending(log), 0);
    assert_int_equal(mlog_last_seq(log), 10);
    assert_int_equal(mlog_committed_seq(log), 10);
    assert_int_equal(mlog_series_count(log), 66);
    assert_int_equal(mlog_series_find(log, "rb/a", 4, &id), EL_NOTFOUND);
    assert_int_equal(mlog_series_find(log, "rb/b", 4, &id), EL_NOTFOUND);
    assert_null(mlog_series_name(log, 67));
    /* Committed names still resolve after the table was rebuilt. */
    for (uint32_t i = 0; i < 64; i++) {
        snprintf(name, sizeof name, "site/%u/temp", i * 7919u);
        assert_int_equal(mlog_series_find(log, name, strlen(name), &id), EL_OK);
        assert_int_equal(id, i + 1);
    }
    sqlite3 *db = peer_open(f->dir);
    assert_int_equal(peer_int(db, "SELECT count(*) FROM series"), 66);
    assert_int_equal(peer_int(db, "SELECT count(*) FROM series WHERE name LIKE 'rb/%'"), 0);
    assert_int_equal(peer_int(db, "SELECT max(seq) FROM events"), 10);
    sqlite3_close(db);

    /* Ids stay dense: the next new series takes 67 again. */
    assert_int_equal(series(log, "rb/b", 11), 67);
    append_simple(log, 11, 67, "x");
    assert_int_equal(mlog_commit(log), EL_OK);
    mlog_close(log);
    log = open_log(f->dir, 300, "b", 0, 0);
    assert_int_equal(mlog_series_count(log), 67);
    assert_string_equal(mlog_series_name(log, 67), "rb/b");
    assert_int_equal(mlog_series_find(log, "rb/b", 4, &id), EL_OK);
    assert_int_equal(id, 67);
    mlog_close(log);
    db = peer_open(f->dir);
    assert_int_equal(peer_int(db, "SELECT first_seq FROM series WHERE id=67"), 11);
    assert_int_equal(peer_int(db, "SELECT first_seq FROM series WHERE id=3"), 102);
    sqlite3_close(db);
    expect_integrity_ok(f->dir);
}

/* ---- group commit ---- */

static void test_group_commit(void **state)
{
    struct fixture *f = *state;
    struct mlog *log = open_log(f->dir, 8, "b", 0, 0);
    sqlite3 *db = peer_open(f->dir);
    uint32_t s = series(log, "load/x", 1);
    char payload[32];
    for (int64_t q = 1; q <= 10000; q++) {
        snprintf(payload, sizeof payload, "{\"v\":%lld}", (long long)q);
        append_simple(log, q, s, payload);
    }
    assert_int_equal(mlog_pending(log), 10000);
    assert_int_equal(peer_int(db, "SELECT count(*) FROM events"), 0);
    assert_int_equal(peer_int(db, "SELECT count(*) FROM series"), 0);
    assert_int_equal(mlog_commit(log), EL_OK);
    assert_int_equal(peer_int(db, "SELECT count(*) FROM events"), 10000);
    assert_int_equal(peer_int(db, "SELECT sum(seq) FROM events"), 10000 * 10001 / 2);
    assert_int_equal(peer_int(db, "SELECT count(*) FROM series"), 1);
    assert_int_equal(mlog_committed_seq(log), 10000);
    sqlite3_close(db);
    mlog_close(log);
    expect_integrity_ok(f->dir);
}

/* ---- scan_recent ---- */

struct seen {
    char series[64];
    char payload[64];
    size_t payload_len;
    bool payload_null;
};

struct scan_ctx {
    struct seen s[64];
    size_t n;
};

static void scan_cb(void *ctx, const char *name, size_t name_len, const void *payload,
                    size_t payload_len)
{
    struct scan_ctx *c = ctx;
    assert_true(c->n < 64);
    struct seen *e = &c->s[c->n++];
    assert_true(name_len < sizeof e->series && payload_len < sizeof e->payload);
    memcpy(e->series, name, name_len);
    e->series[name_len] = '\0';
    e->payload_null = payload == NULL;
    if (payload_len)
        memcpy(e->payload, payload, payload_len);
    e->payload_len = payload_len;
}

static void test_scan_recent(void **state)
{
    struct fixture *f = *state;
    static const char *const names[] = {"a/temp", "b/hum", "c/pressure"};
    struct mlog *log = open_log(f->dir, 8, "b", 0, 0);
    uint32_t ids[3];
    char payload[32];
    int64_t seqs[64];
    size_t n_ev = 0;
    for (int i = 0; i < 3; i++)
        ids[i] = series(log, names[i], 1);
    for (int64_t q = 1; q <= 45; q++) {
        if (q % 9 == 0) { /* dead letters take numbers but are not events */
            (void)test_add_dead(log, q, "t", "r", 0, 0);
            continue;
        }
        snprintf(payload, sizeof payload, "payload-%lld", (long long)q);
        append_simple(log, q, ids[q % 3], q == 44 ? NULL : payload);
        seqs[n_ev++] = q;
    }
    assert_int_equal(mlog_commit(log), EL_OK);

    const uint32_t limits[] = {0, 1, 10, 1000};
    for (size_t li = 0; li < 4; li++) {
        struct scan_ctx c;
        memset(&c, 0, sizeof c);
        assert_int_equal(mlog_scan_recent(log, limits[li], scan_cb, &c), EL_OK);
        size_t want = limits[li] < n_ev ? limits[li] : n_ev;
        assert_int_equal(c.n, want);
        for (size_t k = 0; k < c.n; k++) {
            int64_t q = seqs[n_ev - 1 - k]; /* newest first */
            assert_string_equal(c.s[k].series, names[q % 3]);
            if (q == 44) {
                assert_int_equal(c.s[k].payload_len, 0);
                assert_true(c.s[k].payload_null);
                continue;
            }
            snprintf(payload, sizeof payload, "payload-%lld", (long long)q);
            assert_int_equal(c.s[k].payload_len, strlen(payload));
            assert_memory_equal(c.s[k].payload, payload, strlen(payload));
        }
    }
    mlog_close(log);
}

/* ---- failures ---- */

/* Another connection holds the write lock: the append that has to begin a
 * transaction fails after mlog's busy timeout (5 s) with a clean status,
 * and the log works once the lock is gone. */
static void test_fail_busy(void **state)
{
    struct fixture *f = *state;
    struct mlog *log = open_log(f->dir, 8, "b", 0, 0);
    uint32_t id = 0, s = series(log, "ok/1", 1);
    append_simple(log, 1, s, "one");
    assert_int_equal(mlog_commit(log), EL_OK);

    sqlite3 *db = peer_open(f->dir);
    peer_exec(db, "BEGIN IMMEDIATE");
    el_status st = mlog_series_get(log, "busy/2", 6, 2, &id);
    assert_int_not_equal(st, EL_OK);
    assert_int_equal(st, EL_DB);
    assert_int_equal(mlog_series_count(log), 1);
    assert_int_equal(mlog_series_find(log, "busy/2", 6, &id), EL_NOTFOUND);
    assert_int_equal(mlog_pending(log), 0);
    mlog_rollback(log); /* what the core does after a failed append */
    assert_int_equal(mlog_last_seq(log), 1);
    assert_int_equal(mlog_commit(log), EL_OK); /* nothing open */
    peer_exec(db, "ROLLBACK");

    /* Usable again: the same work succeeds. */
    assert_int_equal(series(log, "busy/2", 2), 2);
    append_simple(log, 2, 2, "two");
    assert_int_equal(mlog_commit(log), EL_OK);
    assert_int_equal(peer_int(db, "SELECT count(*) FROM events"), 2);
    assert_int_equal(peer_int(db, "SELECT count(*) FROM series"), 2);
    sqlite3_close(db);
    mlog_close(log);
    expect_integrity_ok(f->dir);
}

static int64_t file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (int64_t)sb.st_size : 0;
}

/* The commit's WAL write fails for real (RLIMIT_FSIZE, like a full disk):
 * mlog_commit reports it, the transaction and its new series are rolled
 * back, and the same work commits once space is back. */
static void test_fail_commit_io(void **state)
{
    struct fixture *f = *state;
    char path[PATH_MAX + 16], wal[PATH_MAX + 32];
    struct mlog *log = open_log(f->dir, 8, "b", 0, 0);
    uint32_t id = 0, s = series(log, "ok/1", 1);
    char big[2048];
    memset(big, 'p', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    append_simple(log, 1, s, "one");
    assert_int_equal(mlog_commit(log), EL_OK);

    db_path(f->dir, path, sizeof path);
    snprintf(wal, sizeof wal, "%s-wal", path);
    int64_t limit = file_size(path);
    if (file_size(wal) > limit)
        limit = file_size(wal);
    limit += 64 * 1024;
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = (rlim_t)limit;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);

    for (int attempt = 0; attempt < 2; attempt++) {
        assert_int_equal(series(log, "new/2", 2), 2);
        for (int64_t q = 2; q < 202; q++)
            append_simple(log, q, q % 2 ? 1 : 2, big);
        assert_int_equal(mlog_pending(log), 200);
        el_status st = mlog_commit(log);
        if (attempt == 0) {
            /* ~400 KB of WAL cannot be written under the limit. */
            assert_int_not_equal(st, EL_OK);
            assert_true(st == EL_FULL || st == EL_IO);
            assert_int_equal(mlog_pending(log), 0);
            assert_int_equal(mlog_last_seq(log), 1);
            assert_int_equal(mlog_committed_seq(log), 1);
            assert_int_equal(mlog_series_count(log), 1);
            assert_int_equal(mlog_series_find(log, "new/2", 5, &id), EL_NOTFOUND);
            assert_int_equal(count_rows(f->dir, "events"), 1);
            assert_int_equal(count_rows(f->dir, "series"), 1);
            assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
            signal(SIGXFSZ, old_handler);
        } else {
            assert_int_equal(st, EL_OK);
        }
    }
    assert_int_equal(mlog_committed_seq(log), 201);
    assert_int_equal(count_rows(f->dir, "events"), 201);
    mlog_close(log);
    expect_integrity_ok(f->dir);
    log = open_log(f->dir, 8, "b", 0, 0);
    assert_int_equal(mlog_last_seq(log), 201);
    assert_int_equal(mlog_series_count(log), 2);
    mlog_close(log);
}

static void write_file(const char *path, const void *data, size_t len, off_t at, bool trunc)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (trunc ? O_TRUNC : 0), 0640);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, data, len, at), (ssize_t)len);
    close(fd);
}

static void test_fail_bad_files(void **state)
{
    struct fixture *f = *state;
    char dir[PATH_MAX + 16], path[PATH_MAX + 64];
    char junk[8192];
    struct mlog *log;
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (char)(i * 131u + 7u);

    /* Not a SQLite file at all. */
    snprintf(dir, sizeof dir, "%s/junk", f->dir);
    log = open_log(dir, 8, "b", 0, 0);
    mlog_close(log);
    db_path(dir, path, sizeof path);
    write_file(path, junk, sizeof junk, 0, true);
    el_status st = try_open(dir, 8, &log);
    assert_true(st == EL_CORRUPT || st == EL_DB);
    assert_null(log);

    /* A SQLite header with garbage behind it (schema page destroyed). */
    snprintf(dir, sizeof dir, "%s/torn", f->dir);
    log = open_log(dir, 8, "b", 0, 0);
    uint32_t s = series(log, "x", 1);
    append_simple(log, 1, s, "p");
    assert_int_equal(mlog_commit(log), EL_OK);
    mlog_close(log);
    db_path(dir, path, sizeof path);
    write_file(path, junk, 4096 - 100, 100, false);
    st = try_open(dir, 8, &log);
    assert_true(st == EL_CORRUPT || st == EL_DB);
    assert_null(log);

    /* A database from the future. */
    snprintf(dir, sizeof dir, "%s/future", f->dir);
    log = open_log(dir, 8, "b", 0, 0);
    mlog_close(log);
    sqlite3 *db = peer_open(dir);
    peer_exec(db, "UPDATE meta SET value=2 WHERE key='schema_version'");
    sqlite3_close(db);
    assert_int_equal(try_open(dir, 8, &log), EL_CORRUPT);
    assert_null(log);

    /* master.db is a directory. */
    snprintf(dir, sizeof dir, "%s/isdir", f->dir);
    db_path(dir, path, sizeof path);
    assert_int_equal(mkdir(dir, 0750), 0);
    assert_int_equal(mkdir(path, 0750), 0);
    assert_int_not_equal(try_open(dir, 8, &log), EL_OK);
    assert_null(log);

    /* An empty file is an empty database: it gets the schema. */
    snprintf(dir, sizeof dir, "%s/empty", f->dir);
    assert_int_equal(mkdir(dir, 0750), 0);
    db_path(dir, path, sizeof path);
    write_file(path, "", 0, 0, true);
    log = open_log(dir, 8, "b", 0, 0);
    assert_int_equal(mlog_last_seq(log), 0);
    mlog_close(log);
    expect_integrity_ok(dir);
}

/* ---- size ---- */

static void test_bytes(void **state)
{
    struct fixture *f = *state;
    char payload[512];
    struct mlog *log = open_log(f->dir, 8, "b", 0, 0);
    int64_t b0 = mlog_bytes(log);
    assert_true(b0 > 0);
    uint32_t s = series(log, "size/x", 1);
    memset(payload, 'z', sizeof payload - 1);
    payload[sizeof payload - 1] = '\0';
    for (int64_t q = 1; q <= 1000; q++)
        append_simple(log, q, s, payload);
    assert_int_equal(mlog_commit(log), EL_OK);
    int64_t b1 = mlog_bytes(log);
    assert_true(b1 >= b0 + 1000 * 511);
    for (int64_t q = 1001; q <= 2000; q++)
        append_simple(log, q, s, payload);
    assert_int_equal(mlog_commit(log), EL_OK);
    assert_true(mlog_bytes(log) > b1);
    mlog_close(log);
    expect_integrity_ok(f->dir);
}

/* ---- events waiting for a synchronised clock (mlog.h, "Clocks") ---- */

static void append_flags(struct mlog *log, int64_t seq, uint32_t id, int64_t mono, uint32_t flags)
{
    struct mlog_event ev = {.seq = seq,
                            .series_id = id,
                            .ts_ms = 1000,
                            .value = (double)seq,
                            .recv_ms = 1000, /* the unsynchronised wall clock */
                            .mono_ms = mono,
                            .flags = flags,
                            .payload = "p",
                            .payload_len = 1};
    assert_int_equal(mlog_append_event(log, &ev), EL_OK);
}

struct anchored {
    int n;
    int64_t seq[8], ts[8];
};

static void anchor_cb(void *ctx, int64_t seq, uint32_t series_id, int64_t ts_ms, double value)
{
    struct anchored *a = ctx;
    assert_int_equal(series_id, 1);
    assert_true(value == (double)seq);
    assert_true(a->n < 8);
    a->seq[a->n] = seq;
    a->ts[a->n++] = ts_ms;
}

static void test_unanchored(void **state)
{
    struct fixture *f = *state;
    struct mlog *log = open_log(f->dir, 8, "boot-1", 1000, 50);
    uint32_t s = series(log, "clock/x", 1);
    int64_t count, min_seq;
    append_flags(log, 1, s, 100, 0);                   /* waits */
    append_flags(log, 2, s, 110, MLOG_F_HAS_TS);       /* its own time */
    append_flags(log, 3, s, 120, MLOG_F_MQTT_DUP);     /* waits */
    append_flags(log, 4, s, 130, MLOG_F_CLOCK_SYNCED); /* a true wall time */
    append_flags(log, 5, s, 140, 0);                   /* waits */
    assert_int_equal(mlog_commit(log), EL_OK);
    assert_int_equal(count_rows(f->dir, "events"), 2);
    assert_int_equal(count_rows(f->dir, "unanchored"), 3);
    assert_int_equal(mlog_unanchored(log, &count, &min_seq), EL_OK);
    assert_int_equal(count, 3);
    assert_int_equal(min_seq, 1);
    assert_int_equal(mlog_committed_seq(log), 5);
    assert_int_equal(mlog_visible_seq(log), 0);

    /* Placed in time in chunks: ts = mono + offset, same seq, in seq order. */
    struct anchored a = {0};
    uint32_t moved = 0;
    assert_int_equal(mlog_anchor(log, 1700000000000, 2, anchor_cb, &a, &moved), EL_OK);
    assert_int_equal(moved, 2);
    assert_int_equal(mlog_commit(log), EL_OK);
    assert_int_equal(mlog_visible_seq(log), 4);
    assert_int_equal(mlog_anchor(log, 1700000000000, 2, anchor_cb, &a, &moved), EL_OK);
    assert_int_equal(moved, 1);
    assert_int_equal(mlog_commit(log), EL_OK);
    assert_int_equal(mlog_anchor(log, 1700000000000, 2, anchor_cb, &a, &moved), EL_OK);
    assert_int_equal(moved, 0);
    assert_int_equal(mlog_commit(log), EL_OK);
    assert_int_equal(a.n, 3);
    assert_int_equal(a.seq[0], 1);
    assert_int_equal(a.ts[0], 1700000000100);
    assert_int_equal(a.seq[1], 3);
    assert_int_equal(a.ts[1], 1700000000120);
    assert_int_equal(a.seq[2], 5);
    assert_int_equal(a.ts[2], 1700000000140);
    assert_int_equal(mlog_visible_seq(log), 5);
    assert_int_equal(count_rows(f->dir, "events"), 5);
    assert_int_equal(count_rows(f->dir, "unanchored"), 0);
    sqlite3 *db = peer_open(f->dir);
    assert_int_equal(peer_int(db, "SELECT count(*) FROM events WHERE flags & 16"), 3);
    assert_int_equal(peer_int(db, "SELECT recv FROM events WHERE seq = 3"), 1000);
    assert_int_equal(peer_int(db, "SELECT min_ts FROM blocks WHERE block = 0"), 1000);
    assert_int_equal(peer_int(db, "SELECT max_ts FROM blocks WHERE block = 0"), 1700000000140);
    sqlite3_close(db);

    /* Two more wait; the daemon restarts in the same boot: they still wait
     * and their numbers are not handed out again. */
    append_flags(log, 6, s, 150, 0);
    append_flags(log, 7, s, 160, 0);
    assert_int_equal(mlog_commit(log), EL_OK);
    mlog_close(log);
    log = open_log(f->dir, 8, "boot-1", 1000, 170);
    assert_int_equal(mlog_last_seq(log), 7);
    assert_int_equal(mlog_unanchored(log, &count, &min_seq), EL_OK);
    assert_int_equal(count, 2);
    mlog_close(log);

    /* Another boot: its monotonic clock says nothing about them. */
    log = open_log(f->dir, 8, "boot-2", 1000, 5);
    assert_int_equal(mlog_last_seq(log), 7);
    assert_int_equal(mlog_unanchored(log, &count, &min_seq), EL_OK);
    assert_int_equal(count, 0);
    db = peer_open(f->dir);
    assert_int_equal(
        peer_int(db, "SELECT count(*) FROM dead_letters WHERE reason = 'clock_never_synced'"
                     " AND topic = 'clock/x' AND seq IN (6, 7) AND payload_bytes = 1"),
        2);
    sqlite3_close(db);
    mlog_close(log);
    expect_integrity_ok(f->dir);
}

/* ---- trimmed_max_ts for files older versions trimmed ---- */

static int64_t trimmed_key(const char *dir, bool *present)
{
    sqlite3 *db = peer_open(dir);
    *present = peer_int(db, "SELECT count(*) FROM meta WHERE key='trimmed_max_ts'") == 1;
    int64_t v = *present ? peer_int(db, "SELECT value FROM meta WHERE key='trimmed_max_ts'") : 0;
    sqlite3_close(db);
    return v;
}

/* An older version trimmed without recording trimmed_max_ts (the key is
 * deleted, as such a file has none): mlog_open sets a conservative one (the
 * oldest block left's newest event time; none left: MLOG_TRIMMED_UNKNOWN),
 * so a full recompute keeps the view buckets of the trimmed events. A file
 * never trimmed gets none. */
static void test_trimmed_key_for_old_files(void **state)
{
    struct fixture *f = *state;
    bool present;
    struct mlog *log = open_log(f->dir, 8, "boot-1", 1000, 1);
    uint32_t id = series(log, "s", 1);
    for (int64_t q = 1; q <= 3000; q++)
        append_simple(log, q, id, "{}");
    assert_int_equal(mlog_commit(log), EL_OK);
    mlog_close(log);
    log = open_log(f->dir, 8, "boot-1", 1000, 1);
    (void)trimmed_key(f->dir, &present);
    assert_false(present); /* nothing trimmed: no key */
    assert_int_equal(mlog_trim(log, 1023), EL_OK);
    assert_int_equal(trimmed_key(f->dir, &present), 1023 * 1000);
    assert_true(present);
    mlog_close(log);

    sqlite3 *db = peer_open(f->dir);
    peer_exec(db, "DELETE FROM meta WHERE key='trimmed_max_ts'");
    sqlite3_close(db);
    log = open_log(f->dir, 8, "boot-2", 2000, 1);
    /* block 1 (seq 1024..2047, ts = seq s) is the oldest left */
    assert_int_equal(trimmed_key(f->dir, &present), 2047 * 1000);
    assert_true(present);
    /* kept as it is at the next open */
    mlog_close(log);
    log = open_log(f->dir, 8, "boot-2", 2000, 1);
    assert_int_equal(trimmed_key(f->dir, &present), 2047 * 1000);

    /* everything trimmed, then the key lost: every bucket is kept */
    assert_int_equal(mlog_trim(log, 3071), EL_OK);
    assert_int_equal(mlog_oldest_seq(log), 0);
    mlog_close(log);
    db = peer_open(f->dir);
    peer_exec(db, "DELETE FROM meta WHERE key='trimmed_max_ts'");
    sqlite3_close(db);
    log = open_log(f->dir, 8, "boot-3", 3000, 1);
    assert_int_equal(trimmed_key(f->dir, &present), MLOG_TRIMMED_UNKNOWN);
    assert_true(present);
    mlog_close(log);
    expect_integrity_ok(f->dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_schema, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_dead_letters_gain_detail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_letters_replayed_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_readback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_series_dictionary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan_recent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fail_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fail_commit_io, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fail_bad_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unanchored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trimmed_key_for_old_files, setup, teardown),
    };
    plat_log_set_level(PLAT_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
