/*
 * views — batch views: per series and bucket (1 min, 1 h, 1 d) the same
 * mergeable aggregates as the speed layer (agg.h), with a quantile sketch,
 * recomputed from the master log (docs/SPEC.md §6).
 *
 * FILE FORMAT (<storage.dir>/views.db, SQLite WAL; its own file so that a
 * recompute never blocks master-log commits):
 *   meta(key TEXT PRIMARY KEY, value)   watermark_seq: the views cover exactly
 *                                       the events with seq <= watermark_seq;
 *                                       last_run_ms, last_full_ms, schema_version
 *   views(res INTEGER, series INTEGER, t INTEGER,       res: bucket width in ms
 *         count INTEGER, sum_hi REAL, sum_lo REAL, min REAL, max REAL,
 *         mean REAL, m2 REAL, last_value REAL, last_ts INTEGER, last_seq INTEGER,
 *         sketch BLOB,                                   agg_sketch_serialize()
 *         PRIMARY KEY(res, series, t)) WITHOUT ROWID
 *
 * RECOMPUTE. A run takes snapshot S = the highest committed event sequence
 * of the master log below any reading still waiting for a true time
 * (mlog_reader_snapshot_for_batch, in one short read snapshot with the
 * probe for new events) and covers seq <= S. Incremental (the normal path):
 * the events in (watermark, S] — late ones included — are aggregated per
 * (res, series, bucket) and MERGED into the existing rows (aggregates are
 * mergeable, so this equals a recompute of those buckets). Full: every row
 * is deleted and rebuilt from all events <= S (except buckets whose raw
 * events retention removed: RETENTION below). The master log is read
 * through a read-only master-log reader of the run's own (mlog_read.h: all
 * SQL on the master log's tables lives in storage/mlog*.c) in chunks of
 * VIEWS_CHUNK_ROWS events, each chunk in a short read transaction of its
 * own (S fixes what a run covers, not a snapshot held for the whole run; no
 * snapshot is held between chunks, nor while the worker yields), so a long
 * recompute never keeps the WAL from being checkpointed. That is exact
 * because rows <= S never change during a run: rows are never updated,
 * readings placed in time later get sequences above S, and retention does
 * not trim while a run is going on (the core; a full run also checks that
 * no trim slipped in: RETENTION). After each chunk a
 * cancellation is honoured (the run rolls back) or the yield callback
 * runs. Either way the views' side of a run is ONE write
 * transaction on views.db that also sets watermark_seq = S:
 * readers (WAL snapshots) see the old views until the commit and the new
 * ones after it, never a half-built view; a crash mid-run rolls back and
 * the old views keep serving. Memory is bounded: groups are flushed to the
 * database every VIEWS_MAX_GROUPS groups.
 *
 * RETENTION (storage/retention.h). The ladder drops old buckets of one
 * resolution (views_drop): it first records meta dropped_before_<res> = T
 * (the horizon: buckets of that resolution with t < T are no longer
 * retained), then deletes them in bounded transactions. Queries read the
 * horizons in their snapshot and never answer from a dropped resolution
 * (serve.h). A run adds nothing below a horizon. A full run rebuilds only
 * the buckets whose raw events are all still in the master log (t after the
 * master log's trimmed_max_ts, aligned up per resolution); older buckets
 * keep what earlier runs aggregated, since their raw events are gone, and
 * take only the events the views did not cover yet (seq above the
 * watermark before the run), merged as an incremental run would. A trim can
 * start just before a full run does (a requested run starts between the
 * core's batch_running check and its trim): the run reads trimmed_max_ts
 * again after its last chunk, before COMMIT, and if it moved it rolls back
 * and runs again (at most VIEWS_TRIM_RETRIES times, then EL_AGAIN). A
 * master log trimmed by a version that did not record trimmed_max_ts gets
 * a conservative one when opened (mlog.h).
 *
 * Threading: a struct views belongs to one thread. The batch worker owns a
 * writer; each serving thread owns a reader.
 */
#ifndef EL_VIEWS_H
#define EL_VIEWS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agg.h"
#include "el_status.h"

#define VIEWS_N_RES 3
#define VIEWS_MAX_GROUPS 65536
#define VIEWS_CHUNK_ROWS 100000 /* master-log events read per short read transaction */
extern const int64_t views_res_ms[VIEWS_N_RES]; /* 60000, 3600000, 86400000 */

struct views;

EL_MUST_CHECK el_status views_open(const char *dir, struct views **out);
void views_close(struct views *v);

/* ---- reading (serving threads) ---- */

/* expired(ctx) is checked from inside SQLite every ~1000 steps; true
 * interrupts the read (views_read returns EL_TIMEOUT). NULL: none. */
void views_set_interrupt(struct views *v, bool (*expired)(void *ctx), void *ctx);

/* Starts a read snapshot and returns the watermark it covers (0 = none). */
EL_MUST_CHECK el_status views_begin_read(struct views *v, int64_t *watermark_seq);
void views_end_read(struct views *v);
/* Rows of one resolution and series with from <= t < to, in t order; the
 * sketch blob is borrowed for the call. */
typedef void (*views_row_fn)(void *ctx, int64_t t, const struct agg *a, const uint8_t *sketch,
                             size_t sketch_len);
EL_MUST_CHECK el_status views_read(struct views *v, int64_t res_ms, uint32_t series,
                                   int64_t from_ms, int64_t to_ms, views_row_fn fn, void *ctx);

/* Per series, in the read snapshot: the events the views cover (count) and
 * the newest of them (by event time, then seq), from the 1 d rows. */
typedef void (*views_totals_fn)(void *ctx, uint32_t series, uint64_t count, int64_t last_ts_ms,
                                int64_t last_seq, double last_value);
EL_MUST_CHECK el_status views_series_totals(struct views *v, views_totals_fn fn, void *ctx);

/* ---- recompute (batch worker) ---- */

struct views_run {
    bool full;
    int64_t snapshot_seq; /* S */
    int64_t previous_seq; /* watermark before the run */
    uint64_t events;      /* events aggregated */
    uint64_t groups;      /* view rows written */
    int64_t wall_ms;
    double cpu_s;
    bool skipped;           /* incremental run with no event to cover: nothing written */
    int64_t trimmed_max_ts; /* full: the master log's (mlog.h meta); INT64_MIN + 1: none */
    bool trim_raced;        /* full: a trim changed trimmed_max_ts during the run */
    int trim_retries;       /* full: runs rolled back because of one (run again) */
};

/* How many times a full run that raced with a trim is run (RETENTION). */
#define VIEWS_TRIM_RETRIES 3

/* Runs one recompute against <dir>/master.db, through a master-log reader
 * (mlog_read.h) the run opens and closes itself. The log is read in chunks
 * of VIEWS_CHUNK_ROWS events, each in its own short read transaction. After
 * each chunk: if *cancel (cancel may be NULL; set by another thread, or by
 * yield_fn) is non-zero the run rolls back and returns EL_AGAIN, leaving the
 * views and the watermark as they were; else yield_fn, when not NULL, is
 * called (the worker uses it to step aside for ingest). A cancel seen only
 * after the last chunk does not stop the run. A full run that raced with a
 * trim VIEWS_TRIM_RETRIES times in a row also returns EL_AGAIN (RETENTION). run is filled in either
 * case (run->skipped: nothing to cover, nothing written). EL_DB, EL_FULL (views.db cannot grow),
 * EL_NOMEM. */
EL_MUST_CHECK el_status views_recompute(struct views *v, const char *dir, bool full,
                                        atomic_int *cancel, void (*yield_fn)(void *ctx),
                                        void *yield_ctx, struct views_run *run);
/* The current watermark (its own short read). */
int64_t views_watermark(struct views *v);

/* ---- retention: the ladder (batch worker; storage/retention.h) ---- */

/* The read snapshot's horizon of resolution index k (views_begin_read):
 * buckets with t < it were dropped by the ladder (0: none dropped). */
int64_t views_horizon(const struct views *v, int k);

/* Drops the buckets of resolution index k with t < before: first the
 * horizon (meta dropped_before_<res>, its own commit), then the rows, series
 * by series, a write transaction per DROP_TXN_ROWS rows or so; stop(ctx)
 * (may be NULL), asked after each such commit, ends it early (the rows left
 * below the horizon go in a later step). *deleted: rows removed (also on
 * failure: what was committed). */
EL_MUST_CHECK el_status views_drop(struct views *v, int k, int64_t before, bool (*stop)(void *ctx),
                                   void *ctx, int64_t *deleted);

struct views_tier {
    int64_t rows;    /* buckets held */
    int64_t oldest;  /* oldest bucket start (rows > 0) */
    int64_t horizon; /* buckets before it were dropped (0: none) */
};
struct views_tiers {
    struct views_tier tier[VIEWS_N_RES];
    int64_t used_bytes; /* views.db's pages in use */
};
/* What each resolution holds (the writer: counts and oldest buckets are kept
 * as it writes and deletes; counted once when unknown; the oldest bucket is
 * found again, one indexed seek per series, after a drop or a full run). */
EL_MUST_CHECK el_status views_tiers(struct views *v, struct views_tiers *out);

#endif
