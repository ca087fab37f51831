/*
 * views_test — the batch views (storage/views.c): recompute from a real
 * master log and the view reader, on real SQLite files in a fresh temp dir.
 *
 * The master log is written through storage/mlog.h (mlog_open, append,
 * commit) and stays open during the runs, as the core keeps it; the test
 * keeps its own list of the events it wrote and computes every expected
 * aggregate from that list, independently of storage/agg.c's merging.
 *
 * What is covered:
 *   - incremental runs (first, then late events into old buckets and new
 *     ones) and a full run: every row of views_read at 1 min, 1 h and 1 d
 *     (count, sum, min, max, last value/ts/seq, the sketch's count) against
 *     the events, views_series_totals, the watermark (views_watermark and
 *     views_begin_read agree) and the run record (previous/snapshot seq,
 *     events aggregated, skipped);
 *   - a trailing dead letter is not covered: the snapshot is the last event;
 *   - a reading waiting for a true time (`unanchored`) stops the snapshot
 *     below it; once anchored, the next incremental run takes it;
 *   - an incremental run with nothing to cover (nothing new, or only a dead
 *     letter) is skipped and writes nothing (views.db's data_version seen
 *     from another connection does not move);
 *   - a run over more than VIEWS_CHUNK_ROWS events reads in chunks with no
 *     master-log snapshot held between them (in the yield callback, after a
 *     commit to the master log, a TRUNCATE checkpoint from another
 *     connection completes), and a run
 *     cancelled from the yield callback (incremental and full) returns
 *     EL_AGAIN and leaves the old views and the watermark as they were;
 *   - retention: the ladder's drops and horizons; a full run after a trim
 *     keeps the buckets of trimmed events, merges into them the events
 *     committed after the watermark (answers equal the aggregation of all
 *     events), and a trim during a full run makes it roll back and run
 *     again (nothing rebuilt without the trimmed events).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agg.h"
#include "mlog.h"
#include "plat_log.h"
#include "test_fs.h"
#include "test_mlog.h"
#include "views.h"

#define T0 1767225600000LL /* 2026-01-01 00:00 UTC: a day boundary */
#define MINUTE 60000LL
#define MAX_ROWS 1024

/* ---- fixture: a temp dir with master.db (open) and views.db ---- */

struct ev {
    int64_t seq;
    uint32_t series;
    int64_t ts;
    double value;
};

struct fixture {
    char dir[PATH_MAX];
    struct mlog *log;
    struct views *v;
    struct ev *evs; /* every event in `events`, in seq order of writing */
    size_t n, cap;
    int64_t next_seq;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    if (test_mkdtemp(f->dir, sizeof f->dir, "views") != 0) {
        free(f);
        return -1;
    }
    struct mlog_opts o = {.dir = f->dir, .max_series = 16};
    if (mlog_open(&o, "boot-views", T0, 1000, &f->log) != EL_OK ||
        views_open(f->dir, &f->v) != EL_OK)
        return -1;
    f->next_seq = 1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    views_close(f->v);
    mlog_close(f->log);
    int rc = test_rmtree(f->dir);
    free(f->evs);
    free(f);
    return rc;
}

/* ---- writing the master log ---- */

static void model_add(struct fixture *f, int64_t seq, uint32_t series, int64_t ts, double value)
{
    if (f->n == f->cap) {
        f->cap = f->cap ? 2 * f->cap : 256;
        f->evs = realloc(f->evs, f->cap * sizeof f->evs[0]);
        assert_non_null(f->evs);
    }
    f->evs[f->n++] = (struct ev){.seq = seq, .series = series, .ts = ts, .value = value};
}

static uint32_t series_id(struct fixture *f, const char *name)
{
    uint32_t id;
    assert_int_equal(mlog_series_get(f->log, name, strlen(name), f->next_seq, &id), EL_OK);
    return id;
}

/* flags 0: no timestamp of its own, clock not synchronised -> `unanchored` */
static int64_t append(struct fixture *f, const char *name, int64_t ts, double value, uint32_t flags)
{
    uint32_t id = series_id(f, name);
    int64_t seq = f->next_seq++;
    struct mlog_event e = {.seq = seq,
                           .series_id = id,
                           .ts_ms = ts,
                           .value = value,
                           .recv_ms = ts,
                           .mono_ms = 5000 + seq,
                           .flags = flags,
                           .payload = "{}",
                           .payload_len = 2};
    assert_int_equal(mlog_append_event(f->log, &e), EL_OK);
    if (!mlog_event_unanchored(flags))
        model_add(f, e.seq, e.series_id, ts, value);
    return e.seq;
}

static int64_t add_event(struct fixture *f, const char *name, int64_t ts, double value)
{
    return append(f, name, ts, value, MLOG_F_CLOCK_SYNCED | MLOG_F_HAS_TS);
}

static int64_t add_dead(struct fixture *f)
{
    return test_add_dead(f->log, f->next_seq++, "bad/topic", "not_json", T0, MLOG_F_CLOCK_SYNCED);
}

static void commit(struct fixture *f)
{
    assert_int_equal(mlog_commit(f->log), EL_OK);
}

/* Three series over ~3 days, values exact in binary (sums are exact). */
static void add_spread(struct fixture *f, int first, int count)
{
    static const char *const names[] = {"sensors/a/temp", "sensors/b/temp", "sensors/c/hum"};
    for (int i = first; i < first + count; i++)
        (void)add_event(f, names[i % 3], T0 + (int64_t)i * 97 * MINUTE + (i % 5) * 1000,
                        (double)((i * 37) % 200) * 0.25 - 10.0);
}

/* VIEWS_CHUNK_ROWS + 500 events (more than one chunk) in two series, one a
 * minute over `minutes` minutes from T0 and round again, in a few commits. */
static void add_chunks(struct fixture *f, int minutes)
{
    for (int i = 0; i < VIEWS_CHUNK_ROWS + 500; i++) {
        (void)add_event(f, i % 2 ? "sensors/a/temp" : "sensors/b/temp",
                        T0 + (int64_t)(i % minutes) * MINUTE, (double)(i % 64) * 0.5);
        if (i % 20000 == 19999)
            commit(f);
    }
    commit(f);
}

/* ---- expected aggregates from the list ---- */

struct expect {
    uint64_t count;
    double sum, min, max, last_value;
    int64_t last_ts, last_seq;
};

static void expected(const struct fixture *f, int64_t res, uint32_t series, int64_t t,
                     int64_t upto_seq, struct expect *x)
{
    memset(x, 0, sizeof *x);
    x->last_ts = INT64_MIN;
    for (size_t i = 0; i < f->n; i++) {
        const struct ev *e = &f->evs[i];
        if (e->series != series || e->seq > upto_seq || e->ts - e->ts % res != t)
            continue;
        x->min = x->count == 0 || e->value < x->min ? e->value : x->min;
        x->max = x->count == 0 || e->value > x->max ? e->value : x->max;
        x->sum += e->value;
        x->count++;
        if (e->ts > x->last_ts || (e->ts == x->last_ts && e->seq > x->last_seq)) {
            x->last_ts = e->ts;
            x->last_seq = e->seq;
            x->last_value = e->value;
        }
    }
}

/* Distinct buckets of series at res among events with seq <= upto_seq. */
static size_t expected_buckets(const struct fixture *f, int64_t res, uint32_t series,
                               int64_t upto_seq)
{
    size_t n = 0;
    for (size_t i = 0; i < f->n; i++) {
        const struct ev *e = &f->evs[i];
        if (e->series != series || e->seq > upto_seq)
            continue;
        int64_t t = e->ts - e->ts % res;
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = f->evs[j].series == series && f->evs[j].seq <= upto_seq &&
                   f->evs[j].ts - f->evs[j].ts % res == t;
        n += !seen;
    }
    return n;
}

struct row {
    int64_t t;
    struct agg a;
    uint64_t sketch_count;
};

struct rows {
    struct row r[MAX_ROWS];
    size_t n;
};

static void collect_row(void *ctx, int64_t t, const struct agg *a, const uint8_t *sketch,
                        size_t sketch_len)
{
    struct rows *rs = ctx;
    struct agg_sketch sk;
    assert_true(rs->n < MAX_ROWS);
    agg_sketch_init(&sk);
    assert_int_equal(agg_sketch_deserialize(&sk, sketch, sketch_len), EL_OK);
    rs->r[rs->n++] = (struct row){.t = t, .a = *a, .sketch_count = sk.count};
    agg_sketch_cleanup(&sk);
}

/* Every view row of every series and resolution against the events with
 * seq <= upto_seq; the watermark is upto_seq. */
static void check_views(struct fixture *f, int64_t upto_seq)
{
    static struct rows rs;
    int64_t watermark = -1;
    assert_int_equal(views_watermark(f->v), upto_seq);
    assert_int_equal(views_begin_read(f->v, &watermark), EL_OK);
    assert_int_equal(watermark, upto_seq);
    for (uint32_t s = 1; s <= mlog_series_count(f->log); s++) {
        for (int k = 0; k < VIEWS_N_RES; k++) {
            int64_t res = views_res_ms[k];
            rs.n = 0;
            assert_int_equal(views_read(f->v, res, s, INT64_MIN, INT64_MAX, collect_row, &rs),
                             EL_OK);
            assert_int_equal(rs.n, expected_buckets(f, res, s, upto_seq));
            for (size_t i = 0; i < rs.n; i++) {
                struct expect x;
                const struct row *r = &rs.r[i];
                assert_true(i == 0 || r->t > rs.r[i - 1].t);
                expected(f, res, s, r->t, upto_seq, &x);
                assert_int_equal(r->a.count, x.count);
                assert_int_equal(r->sketch_count, x.count);
                assert_true(agg_sum(&r->a) == x.sum);
                assert_true(r->a.min == x.min);
                assert_true(r->a.max == x.max);
                assert_true(r->a.last_value == x.last_value);
                assert_int_equal(r->a.last_ts_ms, x.last_ts);
                assert_int_equal(r->a.last_seq, x.last_seq);
            }
        }
    }
    views_end_read(f->v);
}

/* ---- views_series_totals ---- */

struct totals {
    uint64_t count[17];
    int64_t last_ts[17], last_seq[17];
    double last_value[17];
    int calls;
};

static void collect_totals(void *ctx, uint32_t series, uint64_t count, int64_t last_ts_ms,
                           int64_t last_seq, double last_value)
{
    struct totals *t = ctx;
    assert_true(series >= 1 && series <= 16);
    t->count[series] = count;
    t->last_ts[series] = last_ts_ms;
    t->last_seq[series] = last_seq;
    t->last_value[series] = last_value;
    t->calls++;
}

static void check_totals(struct fixture *f, int64_t upto_seq)
{
    struct totals t = {0};
    int64_t watermark;
    assert_int_equal(views_begin_read(f->v, &watermark), EL_OK);
    assert_int_equal(views_series_totals(f->v, collect_totals, &t), EL_OK);
    views_end_read(f->v);
    assert_int_equal(t.calls, mlog_series_count(f->log));
    for (uint32_t s = 1; s <= mlog_series_count(f->log); s++) {
        struct expect x;
        /* the whole series: one bucket far wider than the data */
        expected(f, INT64_MAX, s, 0, upto_seq, &x);
        assert_int_equal(t.count[s], x.count);
        assert_int_equal(t.last_ts[s], x.last_ts);
        assert_int_equal(t.last_seq[s], x.last_seq);
        assert_true(t.last_value[s] == x.last_value);
    }
}

static void run_ok(struct fixture *f, bool full, struct views_run *run)
{
    assert_int_equal(views_recompute(f->v, f->dir, full, NULL, NULL, NULL, run), EL_OK);
    assert_int_equal(run->full, full);
}

/* views.db's data_version as another connection sees it: it moves when
 * anyone else commits to views.db. */
static sqlite3 *views_peer(const struct fixture *f)
{
    char path[PATH_MAX + 16];
    sqlite3 *db = NULL;
    snprintf(path, sizeof path, "%s/views.db", f->dir);
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    return db;
}

static int64_t data_version(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA data_version", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* ---- tests ---- */

static void test_incremental_then_full(void **state)
{
    struct fixture *f = *state;
    struct views_run run;

    /* an empty log: nothing to cover */
    run_ok(f, false, &run);
    assert_true(run.skipped);
    assert_int_equal(run.snapshot_seq, 0);

    add_spread(f, 0, 60);
    (void)add_dead(f); /* a gap inside */
    add_spread(f, 60, 30);
    int64_t s1 = f->next_seq - 1;
    commit(f);
    run_ok(f, false, &run);
    assert_false(run.skipped);
    assert_int_equal(run.previous_seq, 0);
    assert_int_equal(run.snapshot_seq, s1);
    assert_int_equal(run.events, 90);
    assert_true(run.groups > 0);
    check_views(f, s1);
    check_totals(f, s1);

    /* late events into old buckets (earlier times, higher seqs), new ones,
     * a tie on time (the higher seq is the last), and a trailing dead letter */
    (void)add_event(f, "sensors/a/temp", T0 + 3 * MINUTE, 99.5);
    (void)add_event(f, "sensors/b/temp", T0 + 97 * MINUTE + 1000, -40.25);
    (void)add_event(f, "sensors/b/temp", T0 + 97 * MINUTE + 1000, -41.25);
    (void)add_event(f, "sensors/d/new", T0 + 1000 * MINUTE, 7.0);
    add_spread(f, 90, 20);
    int64_t s2 = f->next_seq - 1;
    (void)add_dead(f);
    commit(f);
    run_ok(f, false, &run);
    assert_false(run.skipped);
    assert_int_equal(run.previous_seq, s1);
    assert_int_equal(run.snapshot_seq, s2); /* the dead letter after it is not an event */
    assert_int_equal(run.events, 24);
    check_views(f, s2);
    check_totals(f, s2);

    /* full: the same rows from scratch */
    run_ok(f, true, &run);
    assert_false(run.skipped);
    assert_int_equal(run.previous_seq, s2);
    assert_int_equal(run.snapshot_seq, s2);
    assert_int_equal(run.events, 114);
    check_views(f, s2);
    check_totals(f, s2);
}

static void anchored(void *ctx, int64_t seq, uint32_t series, int64_t ts_ms, double value)
{
    model_add(ctx, seq, series, ts_ms, value);
}

static void test_skipped_runs_write_nothing(void **state)
{
    struct fixture *f = *state;
    struct views_run run;
    add_spread(f, 0, 30);
    int64_t s1 = f->next_seq - 1;
    commit(f);
    run_ok(f, false, &run);
    check_views(f, s1);

    sqlite3 *peer = views_peer(f);
    int64_t version = data_version(peer);
    run_ok(f, false, &run); /* nothing new */
    assert_true(run.skipped);
    assert_int_equal(run.previous_seq, s1);
    assert_int_equal(run.snapshot_seq, s1);
    assert_int_equal(run.events, 0);
    assert_int_equal(run.groups, 0);
    (void)add_dead(f); /* only a dead letter */
    commit(f);
    run_ok(f, false, &run);
    assert_true(run.skipped);
    assert_int_equal(run.snapshot_seq, s1);
    assert_int_equal(data_version(peer), version);
    check_views(f, s1);

    /* A reading waiting for a true time stops the snapshot below it; the
     * event after it waits too. */
    int64_t waiting = append(f, "sensors/a/temp", 0, 12.5, 0);
    (void)add_event(f, "sensors/b/temp", T0 + 5 * MINUTE, 1.5);
    commit(f);
    run_ok(f, false, &run);
    assert_true(run.skipped); /* (s1, waiting - 1] holds only the dead letter */
    assert_int_equal(run.snapshot_seq, s1);
    assert_int_equal(data_version(peer), version);
    sqlite3_close(peer);

    /* Anchored: it enters `events` with its seq, and the next run covers both. */
    uint32_t moved = 0;
    size_t before = f->n;
    assert_int_equal(mlog_anchor(f->log, T0, 100, anchored, f, &moved), EL_OK);
    assert_int_equal(moved, 1);
    commit(f);
    assert_int_equal(f->n, before + 1);
    assert_int_equal(f->evs[before].seq, waiting);
    assert_int_equal(f->evs[before].ts, T0 + 5000 + waiting); /* mono + the anchor */
    run_ok(f, false, &run);
    assert_false(run.skipped);
    assert_int_equal(run.previous_seq, s1);
    assert_int_equal(run.snapshot_seq, f->next_seq - 1);
    assert_int_equal(run.events, 2);
    check_views(f, f->next_seq - 1);
    check_totals(f, f->next_seq - 1);
}

struct yield_probe {
    struct fixture *f;
    atomic_int *cancel;
    bool cancel_at_first;
    int calls;
    int checkpoint_busy; /* TRUNCATE checkpoints that could not complete */
};

/* Between chunks, ingest goes on (a commit to the master log: a dead letter
 * above the run's snapshot) and a TRUNCATE checkpoint runs from another
 * connection. It completes only when no reader still holds a snapshot (one
 * would keep the new frames from being copied back, or the WAL from being
 * reset), so it shows that no master-log snapshot is held between chunks. */
static void probe_yield(void *ctx)
{
    struct yield_probe *p = ctx;
    char path[PATH_MAX + 16];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    p->calls++;
    (void)add_dead(p->f);
    commit(p->f);
    snprintf(path, sizeof path, "%s/master.db", p->f->dir);
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA wal_checkpoint(TRUNCATE)", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    p->checkpoint_busy += sqlite3_column_int(st, 0) != 0;
    sqlite3_finalize(st);
    sqlite3_close(db);
    if (p->cancel_at_first)
        atomic_store(p->cancel, 1);
}

static void test_chunks_and_cancel(void **state)
{
    struct fixture *f = *state;
    struct views_run run;
    atomic_int cancel;
    atomic_init(&cancel, 0);
    add_spread(f, 0, 60);
    int64_t s1 = f->next_seq - 1;
    commit(f);
    run_ok(f, false, &run);
    check_views(f, s1);

    add_chunks(f, 5000); /* more than one chunk of new events */
    int64_t s2 = f->next_seq - 1;

    /* cancelled after the first chunk: the second is read, then rolled back */
    struct yield_probe p = {.f = f, .cancel = &cancel, .cancel_at_first = true};
    assert_int_equal(views_recompute(f->v, f->dir, false, &cancel, probe_yield, &p, &run),
                     EL_AGAIN);
    assert_int_equal(p.calls, 1);
    assert_int_equal(run.events, VIEWS_CHUNK_ROWS + 500);
    check_views(f, s1);
    atomic_store(&cancel, 0);
    p.calls = 0;
    assert_int_equal(views_recompute(f->v, f->dir, true, &cancel, probe_yield, &p, &run), EL_AGAIN);
    assert_int_equal(p.calls, 1);
    check_views(f, s1); /* the full run's DELETE was rolled back too */
    assert_int_equal(p.checkpoint_busy, 0);

    /* not cancelled: one yield after each chunk, no snapshot held at any */
    atomic_store(&cancel, 0);
    p = (struct yield_probe){.f = f, .cancel = &cancel};
    assert_int_equal(views_recompute(f->v, f->dir, false, &cancel, probe_yield, &p, &run), EL_OK);
    assert_int_equal(p.calls, 2);
    assert_int_equal(p.checkpoint_busy, 0);
    assert_int_equal(run.previous_seq, s1);
    assert_int_equal(run.snapshot_seq, s2);
    assert_int_equal(run.events, VIEWS_CHUNK_ROWS + 500);
    assert_int_equal(views_watermark(f->v), s2);
    check_totals(f, s2);
}

/* ---- retention: the ladder and a full run after trimmed raw events ---- */

/* views.db's rows as text, for comparing whole states. */
static void views_text(struct fixture *f, const char *where, char *buf, size_t cap)
{
    char path[PATH_MAX + 16], sql[512];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    snprintf(path, sizeof path, "%s/views.db", f->dir);
    snprintf(sql, sizeof sql,
             "SELECT coalesce(group_concat(res||','||series||','||t||','||count||','||sum_hi||','||"
             "sum_lo||','||min||','||max||','||last_seq, ';'), '') FROM (SELECT * FROM views %s "
             "ORDER BY res, series, t)",
             where);
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    snprintf(buf, cap, "%s", (const char *)sqlite3_column_text(st, 0));
    assert_true(strlen(buf) < cap - 1);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static int64_t views_count(struct fixture *f, const char *where)
{
    char path[PATH_MAX + 16], sql[256];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    snprintf(path, sizeof path, "%s/views.db", f->dir);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM views %s", where);
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static void test_ladder_drop_and_horizon(void **state)
{
    struct fixture *f = *state;
    struct views_run run;
    struct views_tiers t;
    int64_t w, deleted;
    add_spread(f, 0, 90); /* ~6 days */
    commit(f);
    run_ok(f, false, &run);
    assert_int_equal(views_tiers(f->v, &t), EL_OK);
    assert_int_equal(t.tier[0].rows, views_count(f, "WHERE res=60000"));
    assert_int_equal(t.tier[1].rows, views_count(f, "WHERE res=3600000"));
    assert_int_equal(t.tier[2].rows, views_count(f, "WHERE res=86400000"));
    assert_int_equal(t.tier[0].oldest, T0);
    assert_int_equal(t.tier[0].horizon, 0);
    assert_true(t.used_bytes > 0);
    /* Drop the 1 min buckets of the first two days. */
    int64_t cut = T0 + 2 * 86400000LL;
    int64_t below = views_count(f, "WHERE res=60000 AND t < 1767398400000");
    assert_true(below > 0);
    assert_int_equal(views_drop(f->v, 0, cut, NULL, NULL, &deleted), EL_OK);
    assert_int_equal(deleted, below);
    assert_int_equal(views_count(f, "WHERE res=60000 AND t < 1767398400000"), 0);
    assert_int_equal(views_tiers(f->v, &t), EL_OK);
    assert_int_equal(t.tier[0].rows, views_count(f, "WHERE res=60000"));
    assert_int_equal(t.tier[0].horizon, cut);
    assert_true(t.tier[0].oldest >= cut);
    assert_int_equal(views_begin_read(f->v, &w), EL_OK);
    assert_int_equal(views_horizon(f->v, 0), cut);
    assert_int_equal(views_horizon(f->v, 1), 0);
    views_end_read(f->v);
    /* A late event below the horizon: its 1 h and 1 d buckets take it, no
     * 1 min bucket comes back. */
    int64_t h1 = views_count(f, "WHERE res=3600000");
    (void)add_event(f, "sensors/a/temp", T0 + 3 * MINUTE + 7, 1.5);
    commit(f);
    run_ok(f, false, &run);
    assert_int_equal(views_count(f, "WHERE res=60000 AND t < 1767398400000"), 0);
    assert_true(views_count(f, "WHERE res=3600000") >= h1);
    assert_int_equal(views_tiers(f->v, &t), EL_OK);
    assert_int_equal(t.tier[0].rows, views_count(f, "WHERE res=60000"));
    assert_int_equal(t.tier[1].rows, views_count(f, "WHERE res=3600000"));
}

static void test_full_run_keeps_trimmed_buckets(void **state)
{
    struct fixture *f = *state;
    struct views_run run;
    static char before[1 << 20], after[1 << 20];
    add_spread(f, 0, 1500); /* blocks 0 and 1, ~100 days */
    commit(f);
    run_ok(f, false, &run);
    views_text(f, "", before, sizeof before);
    /* Retention removes block 0 (seq 1..1023): a full run must keep what
     * the views hold of those events and rebuild the rest identically. */
    assert_int_equal(mlog_trim(f->log, 1023), EL_OK);
    run_ok(f, true, &run);
    assert_true(run.trimmed_max_ts > T0);
    views_text(f, "", after, sizeof after);
    assert_string_equal(before, after);
    assert_true(run.events == 1500 - 1023);
}

/* Events committed after the watermark and before a full run, in buckets
 * the run keeps (their raw events were partly trimmed: below the floor),
 * and in rebuilt ones: the full run merges them into the kept rows, and
 * every answer equals the aggregation of all events (the trimmed ones
 * included, as the views learnt them before the trim). */
static void test_full_run_after_trim_takes_new_events(void **state)
{
    struct fixture *f = *state;
    struct views_run run;
    add_spread(f, 0, 1500); /* blocks 0 and 1, ~100 days */
    commit(f);
    run_ok(f, false, &run);
    int64_t w = f->next_seq - 1;
    assert_int_equal(mlog_trim(f->log, 1023), EL_OK);
    int64_t newest_trimmed = f->evs[1022].ts; /* seq 1023 */
    int64_t day = newest_trimmed - newest_trimmed % 86400000LL;
    (void)add_event(f, "sensors/a/temp", newest_trimmed + 1000, 3.5); /* its minute, or the next */
    (void)add_event(f, "sensors/b/temp", day + 5 * MINUTE, 1.25);     /* the same day */
    (void)add_event(f, "sensors/c/hum", T0 + 5 * MINUTE + 17, 2.0);   /* the first day */
    (void)add_event(f, "sensors/a/temp", f->evs[1400].ts + 1, 4.0);   /* a rebuilt bucket */
    commit(f);
    int64_t s = f->next_seq - 1;
    run_ok(f, true, &run);
    assert_int_equal(run.previous_seq, w);
    assert_int_equal(run.snapshot_seq, s);
    assert_true(run.trimmed_max_ts >= newest_trimmed);
    check_views(f, s);
    check_totals(f, s);
    /* and again: nothing is added twice */
    run_ok(f, true, &run);
    check_views(f, s);
}

/* A trim between the core's batch_running check and its mlog_trim can land
 * while a requested full run reads the log: the run rolls back and runs
 * again with the new trimmed_max_ts, so no bucket is rebuilt without the
 * trimmed events. */
struct trim_probe {
    struct fixture *f;
    int64_t upto;
    int calls;
};

static void trim_yield(void *ctx)
{
    struct trim_probe *p = ctx;
    if (p->calls++ == 0)
        assert_int_equal(mlog_trim(p->f->log, p->upto), EL_OK);
}

static void test_full_run_races_a_trim(void **state)
{
    struct fixture *f = *state;
    struct views_run run;
    static char before[8 << 20], after[8 << 20];
    add_chunks(f, 3000);
    int64_t s = f->next_seq - 1;
    run_ok(f, false, &run);
    views_text(f, "", before, sizeof before);
    /* After the first chunk (seq <= VIEWS_CHUNK_ROWS), whole blocks up to
     * past it go: events the second chunk has not read yet. */
    struct trim_probe p = {
        .f = f,
        .upto = ((((int64_t)VIEWS_CHUNK_ROWS >> MLOG_BLOCK_SHIFT) + 1) << MLOG_BLOCK_SHIFT) - 1};
    assert_true(p.upto > VIEWS_CHUNK_ROWS);
    assert_int_equal(views_recompute(f->v, f->dir, true, NULL, trim_yield, &p, &run), EL_OK);
    assert_int_equal(run.trim_retries, 1);
    assert_true(run.trimmed_max_ts > T0);
    views_text(f, "", after, sizeof after);
    assert_string_equal(before, after);
    assert_int_equal(views_watermark(f->v), s);
}

/* ---- opening views.db from several threads at once ---- */

#define OPENERS 4
#define OPEN_ROUNDS 40

struct opener {
    const char *dir;
    atomic_int *go;
    el_status st;
};

static void *open_one(void *arg)
{
    struct opener *o = arg;
    struct views *v = NULL;
    while (!atomic_load(o->go))
        ;
    o->st = views_open(o->dir, &v);
    if (o->st == EL_OK)
        o->st = views_watermark(v) == 0 ? EL_OK : EL_DB;
    views_close(v);
    return NULL;
}

/* The daemon opens views.db from the batch worker and from each serving
 * thread at start-up, at the same moment; on a fresh directory each of them
 * sets WAL mode and creates the schema. Every open must succeed (a CI run
 * under valgrind saw "database is locked" and the batch layer stayed off). */
static void test_concurrent_open_of_a_fresh_file(void **state)
{
    struct fixture *f = *state;
    for (int round = 0; round < OPEN_ROUNDS; round++) {
        char dir[PATH_MAX + 16];
        snprintf(dir, sizeof dir, "%s/r%d", f->dir, round);
        assert_int_equal(mkdir(dir, 0700), 0);
        atomic_int go = 0;
        pthread_t th[OPENERS];
        struct opener op[OPENERS];
        for (int i = 0; i < OPENERS; i++) {
            op[i] = (struct opener){.dir = dir, .go = &go, .st = EL_DB};
            assert_int_equal(pthread_create(&th[i], NULL, open_one, &op[i]), 0);
        }
        atomic_store(&go, 1);
        for (int i = 0; i < OPENERS; i++) {
            pthread_join(th[i], NULL);
            assert_int_equal(op[i].st, EL_OK);
        }
    }
}

/* An existing views.db opens without writing: a recompute's write
 * transaction in progress does not make a reader's open wait (and fail after
 * the busy timeout), which would leave a serving thread without views. */
static void test_open_beside_a_writer(void **state)
{
    struct fixture *f = *state;
    char path[PATH_MAX + 16];
    sqlite3 *w = NULL;
    snprintf(path, sizeof path, "%s/views.db", f->dir);
    assert_int_equal(sqlite3_open(path, &w), SQLITE_OK);
    assert_int_equal(sqlite3_exec(w, "BEGIN IMMEDIATE; INSERT OR REPLACE INTO meta VALUES('x', 1)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    struct views *v = NULL;
    assert_int_equal(views_open(f->dir, &v), EL_OK);
    assert_int_equal(views_watermark(v), 0);
    views_close(v);
    assert_false(sqlite3_get_autocommit(w)); /* the writer's transaction was open throughout */
    assert_int_equal(sqlite3_exec(w, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(w);
}

int main(void)
{
    plat_log_set_level(PLAT_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_incremental_then_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_skipped_runs_write_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunks_and_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ladder_drop_and_horizon, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_run_keeps_trimmed_buckets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_run_after_trim_takes_new_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_run_races_a_trim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_open_of_a_fresh_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_beside_a_writer, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
