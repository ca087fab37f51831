/*
 * retention_test — storage/retention.c: the views ladder's decisions (keep
 * durations, pressure floors, the order 1 min, 1 h, then 1 d only with
 * drop_oldest, bounded steps) and retention_tick against a real master log
 * (age by event time in whole blocks, only what is removable, a young
 * late-stamped event stopping the prefix; max_bytes counting the other
 * files' bytes; shedding asked once no covered raw event is left, and
 * drop_oldest removing uncovered events only once nothing is left to shed),
 * rows an interrupted step left below a horizon, with the event count kept
 * by mlog matching count(*).
 *
 * Each test that needs a master log gets a fresh directory (mkdtemp).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mlog.h"
#include "retention.h"
#include "test_fs.h"

#define MIN_MS 60000LL
#define HOUR_MS 3600000LL
#define DAY_MS RETENTION_DAY_MS
#define NOW (1780000000000LL / DAY_MS * DAY_MS) /* a whole day, 2026 */

/* ---- the ladder (pure) ---- */

static void tiers_init(struct ladder_tier t[3], int64_t keep_1m, int64_t keep_1h, int64_t keep_1d)
{
    t[0] = (struct ladder_tier){MIN_MS, keep_1m, 0, 0, 0};
    t[1] = (struct ladder_tier){HOUR_MS, keep_1h, 0, 0, 0};
    t[2] = (struct ladder_tier){DAY_MS, keep_1d, 0, 0, 0};
}

static void test_ladder_keep_durations(void **state)
{
    struct ladder_tier t[3];
    struct ladder_step s;
    (void)state;
    tiers_init(t, 30 * DAY_MS, 365 * DAY_MS, 0);
    assert_false(retention_ladder_next(t, NOW, false, false, &s)); /* nothing held */
    /* 1 min rows from 31 days ago: one day goes (the cutoff is 30 days). */
    t[0].rows = 1000;
    t[0].oldest = NOW - 31 * DAY_MS;
    assert_true(retention_ladder_next(t, NOW, false, false, &s));
    assert_int_equal(s.tier, 0);
    assert_int_equal(s.before, NOW - 30 * DAY_MS);
    assert_false(s.pressure);
    /* From a year back: one bounded step (RETENTION_LADDER_BUCKETS buckets). */
    t[0].oldest = NOW - 400 * DAY_MS + 17 * MIN_MS + 5;
    assert_true(retention_ladder_next(t, NOW, false, false, &s));
    assert_int_equal(s.before,
                     NOW - 400 * DAY_MS + 17 * MIN_MS + RETENTION_LADDER_BUCKETS * MIN_MS);
    /* Inside the keep duration: nothing; the 1 h tier's turn. */
    t[0].oldest = NOW - 30 * DAY_MS;
    t[1].rows = 10;
    t[1].oldest = NOW - 366 * DAY_MS - 5 * HOUR_MS;
    assert_true(retention_ladder_next(t, NOW, false, false, &s));
    assert_int_equal(s.tier, 1);
    assert_int_equal(s.before, NOW - 365 * DAY_MS);
    /* keep 0: forever, however old. */
    t[1].oldest = NOW - 30 * DAY_MS;
    t[2].rows = 5;
    t[2].oldest = NOW - 5000 * DAY_MS;
    assert_false(retention_ladder_next(t, NOW, false, false, &s));
    /* A cutoff inside a bucket keeps that bucket (aligned down). */
    tiers_init(t, 90 * MIN_MS + 30000, 0, 0);
    t[0].rows = 1;
    t[0].oldest = NOW - 91 * MIN_MS; /* the bucket holding the cutoff stays */
    assert_false(retention_ladder_next(t, NOW, false, false, &s));
    t[0].oldest = NOW - 93 * MIN_MS;
    assert_true(retention_ladder_next(t, NOW, false, false, &s));
    assert_int_equal(s.before, NOW - 91 * MIN_MS);
}

static void test_ladder_pressure_order(void **state)
{
    struct ladder_tier t[3];
    struct ladder_step s;
    (void)state;
    tiers_init(t, 0, 0, 0); /* keep forever: only pressure sheds */
    t[0].rows = t[1].rows = t[2].rows = 100;
    t[0].oldest = t[1].oldest = t[2].oldest = NOW - 800 * DAY_MS;
    assert_false(retention_ladder_next(t, NOW, false, false, &s));
    assert_true(retention_ladder_next(t, NOW, true, false, &s));
    assert_true(s.pressure);
    assert_int_equal(s.tier, 0);                             /* the finest first */
    assert_int_equal(s.before, NOW - 800 * DAY_MS + DAY_MS); /* a day at a time */
    /* 1 min down to its floor: then 1 h. */
    t[0].oldest = NOW - RETENTION_FLOOR_1M;
    assert_true(retention_ladder_next(t, NOW, true, false, &s));
    assert_int_equal(s.tier, 1);
    /* 1 h at its floor: 1 d only with drop_oldest. */
    t[1].oldest = NOW - RETENTION_FLOOR_1H;
    assert_false(retention_ladder_next(t, NOW, true, false, &s));
    assert_true(retention_ladder_next(t, NOW, true, true, &s));
    assert_int_equal(s.tier, 2);
    assert_int_equal(s.before, NOW - 799 * DAY_MS); /* one 1 d bucket */
    t[2].oldest = NOW - RETENTION_FLOOR_1D - DAY_MS;
    assert_true(retention_ladder_next(t, NOW, true, true, &s));
    assert_int_equal(s.before, NOW - RETENTION_FLOOR_1D);
    t[2].oldest = NOW - RETENTION_FLOOR_1D;
    assert_false(retention_ladder_next(t, NOW, true, true, &s));
    /* keep durations come before pressure */
    tiers_init(t, DAY_MS, 10 * DAY_MS, 0);
    t[0].rows = t[1].rows = 1;
    t[0].oldest = NOW - 3 * DAY_MS;
    t[1].oldest = NOW - 3 * DAY_MS;
    assert_true(retention_ladder_next(t, NOW, true, false, &s));
    assert_false(s.pressure);
    assert_int_equal(s.before, NOW - DAY_MS);
}

/* Rows an interrupted step left below a horizon go first, even when the
 * keep duration was raised (or removed) since. */
static void test_ladder_rows_below_horizon(void **state)
{
    struct ladder_tier t[3];
    struct ladder_step s;
    (void)state;
    tiers_init(t, 0, 60 * DAY_MS, 0); /* keep_1h raised to 60 days */
    t[1].rows = 100;
    t[1].oldest = NOW - 40 * DAY_MS;
    t[1].horizon = NOW - 30 * DAY_MS; /* a step to 30 days was stopped */
    assert_true(retention_ladder_next(t, NOW, false, false, &s));
    assert_int_equal(s.tier, 1);
    assert_false(s.pressure);
    assert_int_equal(s.before, t[1].horizon);
    /* Nothing below it: no step (keep 60 days holds the rest). */
    t[1].oldest = t[1].horizon;
    assert_false(retention_ladder_next(t, NOW, false, false, &s));
    /* Far below: a bounded step at a time. */
    t[1].oldest = NOW - 1000 * DAY_MS;
    assert_true(retention_ladder_next(t, NOW, false, false, &s));
    assert_int_equal(s.before, t[1].oldest + RETENTION_LADDER_BUCKETS * HOUR_MS);
}

/* ---- retention_tick on a real master log ---- */

struct fixture {
    char dir[PATH_MAX];
    struct mlog *log;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (!f || test_mkdtemp(f->dir, sizeof f->dir, "retention") != 0)
        return -1;
    struct mlog_opts o = {.dir = f->dir, .max_series = 16, .max_db_bytes = 0};
    if (mlog_open(&o, "boot-1", NOW, 1, &f->log) != EL_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    mlog_close(f->log);
    test_rmtree(f->dir);
    free(f);
    return 0;
}

/* Appends events seq first..last, event time ts(seq), and commits. */
static void add_events(struct mlog *log, int64_t first, int64_t last, int64_t (*ts)(int64_t))
{
    uint32_t id;
    assert_int_equal(mlog_series_get(log, "s", 1, first, &id), EL_OK);
    for (int64_t q = first; q <= last; q++) {
        struct mlog_event ev = {.seq = q,
                                .series_id = id,
                                .ts_ms = ts(q),
                                .value = (double)q,
                                .recv_ms = NOW,
                                .mono_ms = 1,
                                .flags = MLOG_F_CLOCK_SYNCED | MLOG_F_HAS_TS,
                                .payload = "{}",
                                .payload_len = 2};
        assert_int_equal(mlog_append_event(log, &ev), EL_OK);
    }
    assert_int_equal(mlog_commit(log), EL_OK);
}

/* Block b (1024 events) is b days older than the 10th block: 10 blocks span
 * days -10..-1 (block 0 holds seq 1..1023). */
static int64_t ts_by_block(int64_t seq)
{
    return NOW - (10 - (seq >> MLOG_BLOCK_SHIFT)) * DAY_MS + seq;
}

static int64_t count_events(const char *dir)
{
    char path[PATH_MAX + 16];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int64_t n = -1;
    snprintf(path, sizeof path, "%s/master.db", dir);
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM events", -1, &st, NULL),
                     SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

/* Closes and opens the master log again; forget: blocks.n set to NULL
 * first, as in a file written before it existed. */
static void reopen(struct fixture *f, bool forget)
{
    char path[PATH_MAX + 16];
    mlog_close(f->log);
    if (forget) {
        sqlite3 *db = NULL;
        snprintf(path, sizeof path, "%s/master.db", f->dir);
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, "UPDATE blocks SET n = NULL", NULL, NULL, NULL),
                         SQLITE_OK);
        sqlite3_close(db);
    }
    struct mlog_opts o = {.dir = f->dir, .max_series = 16, .max_db_bytes = 0};
    assert_int_equal(mlog_open(&o, "boot-2", NOW, 2, &f->log), EL_OK);
}

static void test_age_trims_whole_old_blocks(void **state)
{
    struct fixture *f = *state;
    struct retention_result r;
    int64_t last = 10 * 1024 - 1; /* blocks 0..9 */
    add_events(f->log, 1, last, ts_by_block);
    assert_int_equal(mlog_event_count(f->log), last);
    /* max_age 5.5 days: blocks 0..4 (days -10..-6) are old. Nothing
     * removable yet: nothing goes, the views are said to be behind. */
    struct retention_opts o = {.max_age_ms = 5 * DAY_MS + DAY_MS / 2, .now_ms = NOW};
    retention_tick(f->log, &o, 0, 0, false, &r);
    assert_int_equal(r.outcome, RETENTION_IDLE);
    assert_int_equal(r.aged_upto, 5 * 1024 - 1); /* blocks 0..4 are old */
    assert_int_equal(mlog_oldest_seq(f->log), 1);
    /* Covered up to the middle of block 2: blocks 0 and 1 go, whole. */
    retention_tick(f->log, &o, 2 * 1024 + 500, 0, false, &r);
    assert_int_equal(r.outcome, RETENTION_TRIMMED);
    assert_true(r.by_age);
    assert_int_equal(r.first, 1);
    assert_int_equal(r.upto, 2 * 1024 - 1);
    /* Everything covered: blocks 2..4 go, block 5 (day -5) stays. An age
     * trim returns before the size checks: a stop_ingest pause is lifted
     * when the total it left is under max_bytes and no commit failed. */
    o.max_bytes = 1LL << 40;
    retention_tick(f->log, &o, last, 4096, false, &r);
    assert_int_equal(r.outcome, RETENTION_TRIMMED);
    assert_true(r.by_age);
    assert_int_equal(r.upto, 5 * 1024 - 1);
    assert_int_equal(r.total_bytes, r.used_bytes + 4096);
    assert_true(retention_age_unpauses(&r, o.max_bytes, false));
    assert_true(retention_age_unpauses(&r, 0, false));
    assert_false(retention_age_unpauses(&r, o.max_bytes, true));
    assert_false(retention_age_unpauses(&r, r.total_bytes - 1, false));
    o.max_bytes = 0;
    retention_tick(f->log, &o, last, 0, false, &r);
    assert_int_equal(r.outcome, RETENTION_IDLE);
    assert_false(retention_age_unpauses(&r, 0, false)); /* not an age trim */
    assert_int_equal(mlog_oldest_seq(f->log), 5 * 1024);
    assert_int_equal(mlog_event_count(f->log), count_events(f->dir));
    assert_int_equal(mlog_event_count(f->log), last - 5 * 1024 + 1);
    assert_int_equal(mlog_oldest_ts(f->log), ts_by_block(5 * 1024));
    /* The count survives a restart, and a file whose blocks lack their
     * counts (written before blocks.n) is counted once at open. */
    reopen(f, false);
    assert_int_equal(mlog_event_count(f->log), last - 5 * 1024 + 1);
    reopen(f, true);
    assert_int_equal(mlog_event_count(f->log), last - 5 * 1024 + 1);
}

static int64_t ts_young_in_block_1(int64_t seq)
{
    return seq == 1500 ? NOW - 1000 : ts_by_block(seq);
}

static void test_age_young_event_stops_prefix(void **state)
{
    struct fixture *f = *state;
    struct retention_result r;
    add_events(f->log, 1, 4 * 1024 - 1, ts_young_in_block_1);
    struct retention_opts o = {.max_age_ms = DAY_MS, .now_ms = NOW};
    retention_tick(f->log, &o, 4 * 1024 - 1, 0, false, &r);
    assert_int_equal(r.outcome, RETENTION_TRIMMED);
    assert_int_equal(r.upto, 1023); /* block 1 holds a young event: it stays */
    retention_tick(f->log, &o, 4 * 1024 - 1, 0, false, &r);
    assert_int_equal(r.outcome, RETENTION_IDLE);
    assert_int_equal(mlog_oldest_seq(f->log), 1024);
}

static int64_t ts_now(int64_t seq)
{
    return NOW - 1000000 + seq;
}

static void test_bytes_count_other_files(void **state)
{
    struct fixture *f = *state;
    struct retention_result r;
    int64_t last = 8 * 1024 - 1;
    add_events(f->log, 1, last, ts_now);
    int64_t used = mlog_used_bytes(f->log);
    /* Under the bound by itself, over it with the views and the journal. */
    struct retention_opts o = {.max_bytes = used + 4096, .now_ms = NOW};
    retention_tick(f->log, &o, last, 0, false, &r);
    assert_int_equal(r.outcome, RETENTION_IDLE);
    assert_int_equal(r.total_bytes, used);
    retention_tick(f->log, &o, last, used / 2, false, &r);
    assert_true(r.over);
    assert_int_equal(r.outcome, RETENTION_TRIMMED);
    assert_false(r.by_age);
    assert_false(r.shed_views);
    assert_int_equal(r.first, 1);
    assert_true(r.upto >= 1023 && r.upto < last);
    assert_int_equal(r.total_bytes, r.used_bytes + used / 2);
    /* Only what is covered goes: with coverage at r.upto, nothing more;
     * the views are asked to shed (stop_ingest holds). */
    int64_t covered = r.upto;
    retention_tick(f->log, &o, covered, 10 * used, false, &r);
    assert_int_equal(r.outcome, RETENTION_BLOCKED);
    assert_true(r.shed_views);
    /* drop_oldest: views are shed first (1b), no uncovered raw event goes
     * while the ladder has something left to shed... */
    o.drop_oldest = true;
    int64_t oldest = mlog_oldest_seq(f->log);
    retention_tick(f->log, &o, covered, 10 * used, false, &r);
    assert_int_equal(r.outcome, RETENTION_BLOCKED);
    assert_true(r.shed_views);
    assert_int_equal(mlog_oldest_seq(f->log), oldest);
    /* ...then it removes the oldest anyway (and still asks to shed). */
    o.nothing_to_shed = true;
    retention_tick(f->log, &o, covered, 10 * used, false, &r);
    assert_int_equal(r.outcome, RETENTION_TRIMMED);
    assert_true(r.shed_views);
    assert_true(r.upto > covered);
    assert_int_equal(mlog_event_count(f->log), count_events(f->dir));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ladder_keep_durations),
        cmocka_unit_test(test_ladder_pressure_order),
        cmocka_unit_test(test_ladder_rows_below_horizon),
        cmocka_unit_test_setup_teardown(test_age_trims_whole_old_blocks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_age_young_event_stops_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bytes_count_other_files, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
