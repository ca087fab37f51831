/*
 * mlog_read — read-only access to the master log (mlog.h has the format)
 * for the threads beside the core's writer — serving, the batch recompute,
 * the sync worker — each on a connection of its own.
 *
 * DESIGN. WAL lets readers run beside the core's writer: a reader's
 * snapshot (mlog_reader_begin .. mlog_reader_end, one read transaction) sees
 * exactly the transactions committed before it began, never a half commit,
 * and never holds up a commit (only a checkpoint waits for the snapshot to
 * end, which is why snapshots are short: one query). Reads:
 *   - by time: the block-range summary (`blocks`, one row per 1024
 *     sequences with their min and max event time) tells which sequence
 *     ranges can hold events of [from, to); those are read by rowid range
 *     (no index on events, docs/LIMITS.md);
 *   - by sequence: a rowid range of `events` and of `unanchored` (the tail
 *     of the log that the speed layer may not have applied yet);
 *   - provisional readings: `unanchored` rows (no true time yet) by their
 *     receive time on the board's clock, a scan of that (small) table.
 * Every read counts the rows it examines against the caller's budget
 * (EL_FULL when spent) and stops with EL_TIMEOUT when the interrupt callback
 * says so (SQLite's progress handler, checked every ~1000 VM steps), so a
 * query's work is bounded in rows and in time.
 *
 * The reader keeps its own series dictionary (series_dict.h), filled from the
 * `series` table as the snapshots move on; ids are the master log's. A
 * reader opened with mlog_reader_open_seq has none: it serves the
 * sequential reads at the end of this header (the batch recompute, the sync
 * worker), which are the only other SQL on the master log's tables outside
 * mlog.c.
 *
 * Threading: a reader belongs to one thread at a time (the sync worker's is
 * opened on the core thread and then handed to the worker).
 */
#ifndef EL_MLOG_READ_H
#define EL_MLOG_READ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "el_status.h"
#include "series_dict.h"

struct mlog_reader;

/* Opens <dir>/master.db read-only (it must exist: the core creates it). */
EL_MUST_CHECK el_status mlog_reader_open(const char *dir, uint32_t max_series,
                                         struct mlog_reader **out);
void mlog_reader_close(struct mlog_reader *r);

/* expired(ctx) is called from inside SQLite every ~1000 steps; returning
 * true interrupts the statement (the read returns EL_TIMEOUT). NULL: none. */
void mlog_reader_set_interrupt(struct mlog_reader *r, bool (*expired)(void *ctx), void *ctx);

/* Starts a snapshot and brings the series dictionary up to it. */
EL_MUST_CHECK el_status mlog_reader_begin(struct mlog_reader *r);
void mlog_reader_end(struct mlog_reader *r);
/* In the snapshot: the highest sequence stored (events, dead letters,
 * waiting readings) and the lowest one still stored (0 when empty). */
int64_t mlog_reader_last_seq(const struct mlog_reader *r);
int64_t mlog_reader_oldest_seq(const struct mlog_reader *r);
const struct series_dict *mlog_reader_series(const struct mlog_reader *r);

/* One row. provisional: an `unanchored` reading, ts = its receive time. */
typedef void (*mlog_read_fn)(void *ctx, int64_t seq, uint32_t series, int64_t ts_ms, double value,
                             bool provisional);

/* Events of series (0 = every series) with from <= ts < to and
 * after < seq <= upto, in sequence order. *budget: rows that may still be
 * examined, decremented; EL_FULL when it runs out. */
EL_MUST_CHECK el_status mlog_reader_scan_time(struct mlog_reader *r, uint32_t series,
                                              int64_t from_ms, int64_t to_ms, int64_t after_seq,
                                              int64_t upto_seq, uint64_t *budget, mlog_read_fn fn,
                                              void *ctx);
/* Every event and waiting reading with lo < seq <= hi, events first. */
EL_MUST_CHECK el_status mlog_reader_scan_seq(struct mlog_reader *r, int64_t lo, int64_t hi,
                                             uint64_t *budget, mlog_read_fn fn, void *ctx);
/* Waiting readings of series (0 = all) received in [from, to) on the
 * board's clock with seq <= upto. */
EL_MUST_CHECK el_status mlog_reader_scan_provisional(struct mlog_reader *r, uint32_t series,
                                                     int64_t from_ms, int64_t to_ms,
                                                     int64_t upto_seq, uint64_t *budget,
                                                     mlog_read_fn fn, void *ctx);
/* One dead letter, borrowed for the callback. */
struct mlog_dead_row {
    int64_t seq, recv_ms;
    const char *topic; /* topic_len bytes */
    size_t topic_len;
    const void *payload; /* as stored (cut at ingest.max_payload), may be NULL */
    size_t payload_len;
    uint64_t payload_bytes; /* the original size */
    const char *reason;     /* NUL-terminated */
    const char *detail;     /* NUL-terminated, NULL when none */
    int64_t replayed_seq;   /* 0, or the first seq of the events replaying it made */
    int64_t mono_ms;        /* receive CLOCK_MONOTONIC (of the dead letter's boot) */
    uint32_t flags;         /* MLOG_F_* (mlog.h) */
};
/* Returns true if it took the row (it counts towards max_rows). */
typedef bool (*mlog_dead_fn)(void *ctx, const struct mlog_dead_row *d);
/* Dead letters with seq <= upto_seq received at or after since_ms, of one
 * reason (NULL: any), newest first, until fn has taken max_rows; every row
 * walked spends one of *budget (EL_FULL when it runs out). */
EL_MUST_CHECK el_status mlog_reader_scan_dead(struct mlog_reader *r, int64_t upto_seq,
                                              int64_t since_ms, const char *reason,
                                              uint32_t max_rows, uint64_t *budget, mlog_dead_fn fn,
                                              void *ctx);
/* Dead letters not replayed yet with after_seq < seq <= upto_seq, received
 * at or after since_ms, of one reason (NULL: any), OLDEST first, until fn
 * has taken max_rows; *budget as above (firmware/daemon/replay.h). */
EL_MUST_CHECK el_status mlog_reader_scan_replayable(struct mlog_reader *r, int64_t after_seq,
                                                    int64_t upto_seq, int64_t since_ms,
                                                    const char *reason, uint32_t max_rows,
                                                    uint64_t *budget, mlog_dead_fn fn, void *ctx);
/* Number of waiting readings in the snapshot (0: nothing provisional). */
int64_t mlog_reader_provisional_count(struct mlog_reader *r);

/* ---- sequential reads: the batch recompute and the sync worker ----
 *
 * These read `events` by sequence (a rowid range) and need no series
 * dictionary. Each works inside a snapshot (mlog_reader_begin .. end) or
 * outside one: outside, each call is one read transaction of its own, ended
 * before it returns. That is how the batch layer reads a long range in
 * short snapshots (views.h, RECOMPUTE) and how the sync worker holds a
 * snapshot for one batch at most, so neither keeps the WAL from being
 * checkpointed. */

/* Opens <dir>/master.db read-only like mlog_reader_open, but without a
 * series dictionary (mlog_reader_series returns NULL; mlog_reader_begin only
 * starts the snapshot), waiting up to busy_timeout_ms for a lock. */
EL_MUST_CHECK el_status mlog_reader_open_seq(const char *dir, int busy_timeout_ms,
                                             struct mlog_reader **out);

/* What a batch recompute covers (*snapshot_seq): the highest seq in
 * `events`, but below the smallest seq still waiting in `unanchored` (that
 * reading enters `events` with its seq later, mlog.h "Clocks"); 0 when
 * there is no event. EL_DB. */
EL_MUST_CHECK el_status mlog_reader_snapshot_for_batch(struct mlog_reader *r,
                                                       int64_t *snapshot_seq);

/* *any: whether `events` holds a row with lo < seq <= hi (false when
 * hi <= lo). A rowid-range probe. EL_DB (then *any is false). */
EL_MUST_CHECK el_status mlog_reader_events_between(struct mlog_reader *r, int64_t lo, int64_t hi,
                                                   bool *any);

/* One event of a sequential read. name: with MLOG_SCAN_NAMES, its series
 * name (name_len bytes, borrowed for the call), else NULL. */
struct mlog_chunk_row {
    int64_t seq;
    uint32_t series;
    int64_t ts_ms;
    double value;
    const char *name;
    size_t name_len;
};
/* Returns true to take the row and go on, false to leave it and stop. */
typedef bool (*mlog_chunk_fn)(void *ctx, const struct mlog_chunk_row *row);

#define MLOG_SCAN_NAMES 0x1u /* join `series` for the names (sync's encoding) */

/* Calls fn for the events with lo < seq <= hi in sequence order, at most
 * max_rows of them, until fn returns false: one statement, stepped only as
 * far as fn goes and reset before return. With MLOG_SCAN_NAMES an event
 * whose series row is missing is not returned. Only `events` is read (never
 * `unanchored`). *last_seq: the seq of the last row fn took, lo when none
 * (a caller reading on in chunks passes it as the next lo). EL_TIMEOUT when
 * the interrupt callback ends it, EL_DB. */
EL_MUST_CHECK el_status mlog_reader_scan_seq_chunk(struct mlog_reader *r, int64_t lo, int64_t hi,
                                                   int64_t max_rows, unsigned flags,
                                                   mlog_chunk_fn fn, void *ctx, int64_t *last_seq);

/* The newest event time retention ever removed (meta trimmed_max_ts);
 * INT64_MIN + 1 when nothing was removed. EL_DB. */
EL_MUST_CHECK el_status mlog_reader_trimmed_max_ts(struct mlog_reader *r, int64_t *ts_ms);

/* Receive time (wall ms) of the event with the smallest seq > after;
 * EL_NOTFOUND if there is none, EL_DB. */
EL_MUST_CHECK el_status mlog_reader_first_recv_after(struct mlog_reader *r, int64_t after,
                                                     int64_t *recv_ms);

#endif
