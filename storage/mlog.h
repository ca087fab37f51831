/*
 * mlog — the master log: an append-only SQLite database of every accepted
 * event, plus the dead letters, the series dictionary and the boots table.
 *
 * FILE FORMAT (<storage.dir>/master.db, SQLite, WAL mode, schema_version 1):
 *
 *   meta(key TEXT PRIMARY KEY, value)            schema_version, created_ms;
 *                                                 trimmed_max_ts: the newest event
 *                                                 time retention removed (absent:
 *                                                 none; files trimmed by older
 *                                                 versions get a conservative one
 *                                                 at mlog_open, MLOG_TRIMMED_UNKNOWN
 *                                                 when no event is left)
 *   boots(id INTEGER PRIMARY KEY, boot_id TEXT UNIQUE NOT NULL,
 *         first_seq INTEGER NOT NULL, first_wall_ms INTEGER NOT NULL,
 *         first_mono_ms INTEGER NOT NULL)        one row per kernel boot seen
 *   series(id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL,
 *          first_seq INTEGER NOT NULL)           dense ids 1..N, never reused
 *   events(seq INTEGER PRIMARY KEY,               the journal sequence (rowid)
 *          series INTEGER NOT NULL,               series.id
 *          ts INTEGER NOT NULL,                   event time, epoch ms UTC
 *          value REAL NOT NULL,
 *          recv INTEGER NOT NULL,                 receive wall time, epoch ms
 *          mono INTEGER NOT NULL,                 receive CLOCK_MONOTONIC, ms
 *          boot INTEGER NOT NULL,                 boots.id
 *          flags INTEGER NOT NULL,                MLOG_F_* below
 *          payload BLOB)                          the raw MQTT payload
 *   blocks(block INTEGER PRIMARY KEY,             seq >> MLOG_BLOCK_SHIFT
 *          min_ts INTEGER NOT NULL, max_ts INTEGER NOT NULL,
 *          n INTEGER)                             events in the block (added by
 *                                                 mlog_open to older files)
 *                                                 block-range summary (BRIN-like):
 *                                                 the event-time range of every
 *                                                 block of 1024 sequences, written
 *                                                 in the same transaction as them
 *   dead_letters(seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, payload BLOB,
 *                (detail TEXT, added by mlog_open to older files: the decoder's why),
 *                (replayed_seq INTEGER, added by mlog_open to older files: NULL, or
 *                 the first seq of the events a replay made of it; mlog_mark_replayed),
 *          payload_bytes INTEGER NOT NULL,        original size (payload may be cut)
 *          recv INTEGER NOT NULL, mono INTEGER NOT NULL, boot INTEGER NOT NULL,
 *          flags INTEGER NOT NULL, reason TEXT NOT NULL)
 *   unanchored(the columns of events)             events waiting for a true time
 *
 * Clocks (boards without a real-time clock): an event that carries no
 * timestamp of its own and arrived while the wall clock was not synchronised
 * has no trustworthy time yet. It is stored durably in `unanchored` (with its
 * monotonic receive time and boot), not in `events`, so no view, query or
 * sync ever orders it by a wrong wall clock. Once the clock is synchronised,
 * mlog_anchor moves the current boot's rows into `events` (same seq) with
 * ts = mono + (wall - mono at anchoring) and MLOG_F_ANCHORED. Readers that
 * cut by sequence (batch snapshot, sync cursor) stop below the smallest
 * unanchored seq (mlog_visible_seq), so the moved rows are never skipped.
 * Rows of a boot that ended before its clock was synchronised can never be
 * placed in time: mlog_open moves them to dead_letters ("clock_never_synced")
 * — kept, counted, never silently dropped.
 *
 * Sequence numbers are assigned once, in arrival order, by the ingest journal
 * (journal.h) and shared by events and dead letters: each message takes one
 * number per event it yields (one for a dead letter). So events.seq is
 * strictly increasing with gaps exactly where dead letters took a number.
 * Rows are never updated, with one exception: a dead letter's replayed_seq
 * is set once, NULL -> the seq of its replayed events, in the transaction
 * that appends them (exactly once: firmware/daemon/replay.h). A replayed
 * event (MLOG_F_REPLAYED) keeps the dead letter's receive time and monotonic
 * time; its boot is the replaying one. No secondary index on events: it would cost ~80%
 * of append throughput and ~7x the flash writes (docs/LIMITS.md).
 *
 * Durability: every commit runs with synchronous=FULL, i.e. the WAL is
 * fdatasync'ed at each group commit (one per storage.flush_interval_ms at
 * most), which is what bounds the power-loss window in "normal" mode.
 *
 * Series dictionary: loaded at open into a preallocated open-addressing hash
 * table (capacity fixed by max_series); lookups on the hot path allocate
 * nothing. Names are kept in one preallocated arena.
 *
 * Threading: a struct mlog belongs to one thread (the core thread). Other
 * threads open their own SQLite connections to the same file.
 */
#ifndef EL_MLOG_H
#define EL_MLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "el_status.h"

#define MLOG_SCHEMA_VERSION 1
#define MLOG_BLOCK_SHIFT 10
/* trimmed_max_ts of a file an older version trimmed to nothing: every view
 * bucket is kept (far in the future, aligned up without overflow). */
#define MLOG_TRIMMED_UNKNOWN (INT64_MAX / 2)
#define MLOG_MAX_SERIES_NAME 255

/* events.flags / dead_letters.flags */
#define MLOG_F_CLOCK_SYNCED 0x1u /* wall clock was synchronised at receive */
#define MLOG_F_HAS_TS 0x2u       /* event time came from the payload */
#define MLOG_F_MQTT_DUP 0x4u     /* the broker marked the delivery DUP */
#define MLOG_F_TRUNCATED 0x8u    /* dead letter: payload cut to max_payload bytes */
#define MLOG_F_ANCHORED 0x10u    /* ts = monotonic receive time + the boot's anchor */
#define MLOG_F_REPLAYED 0x20u    /* event: made by replaying a dead letter (replay.h) */
/* dead letter: ONE event of a message whose other events were stored (the
 * core refused it: series_limit, name_too_long); bits 16..23 hold its index
 * in the message's events, bits 24..31 how many the message had. */
#define MLOG_F_PART 0x40u
#define MLOG_PART_FLAGS(index, count)                                                              \
    (MLOG_F_PART | ((uint32_t)(index)&0xffu) << 16 | ((uint32_t)(count)&0xffu) << 24)
#define MLOG_PART_INDEX(flags) (((flags) >> 16) & 0xffu)
#define MLOG_PART_COUNT(flags) (((flags) >> 24) & 0xffu)

struct mlog;

struct mlog_opts {
    const char *dir;      /* storage.dir, created if missing */
    uint32_t max_series;  /* capacity of the series dictionary */
    int64_t max_db_bytes; /* ceiling of master.db (PRAGMA max_page_count), 0 = none */
};

struct mlog_event {
    int64_t seq;
    uint32_t series_id;
    int64_t ts_ms;
    double value;
    int64_t recv_ms;
    int64_t mono_ms;
    uint32_t flags;
    const void *payload; /* borrowed for the call */
    size_t payload_len;
};

struct mlog_dead {
    int64_t seq;
    const char *topic; /* borrowed, topic_len bytes, no NUL needed */
    size_t topic_len;
    const void *payload; /* borrowed */
    size_t payload_len;
    size_t payload_bytes; /* original size */
    int64_t recv_ms;
    int64_t mono_ms;
    uint32_t flags;
    const char *reason; /* NUL-terminated */
    const char *detail; /* why, in a few words ("field \"x\" is a string"); may be NULL */
    size_t detail_len;
};

/* Opens (creating and migrating) <dir>/master.db. boot_id identifies this
 * boot in the boots table. On success *out owns the connection. */
EL_MUST_CHECK el_status mlog_open(const struct mlog_opts *opts, const char *boot_id,
                                  int64_t wall_ms, int64_t mono_ms, struct mlog **out);
/* Commits nothing pending (call mlog_commit first), closes; NULL is fine. */
void mlog_close(struct mlog *log);

/* Highest sequence stored (events or dead letters), 0 when empty. */
int64_t mlog_last_seq(const struct mlog *log);
/* Number of series in the dictionary. */
uint32_t mlog_series_count(const struct mlog *log);
/* The dictionary's capacity (mlog_opts.max_series). */
uint32_t mlog_series_max(const struct mlog *log);
/* Name of series id (1-based), NULL if unknown. Valid until close. */
const char *mlog_series_name(const struct mlog *log, uint32_t id);

/* Finds a series; EL_NOTFOUND if absent (nothing is created). */
EL_MUST_CHECK el_status mlog_series_find(const struct mlog *log, const char *name, size_t len,
                                         uint32_t *id);
/* Finds or creates a series inside the current transaction. EL_FULL when
 * max_series is reached (the caller dead-letters the event). */
EL_MUST_CHECK el_status mlog_series_get(struct mlog *log, const char *name, size_t len,
                                        int64_t first_seq, uint32_t *id);

/* Appends inside the current write transaction (opened on first append).
 * An event with neither MLOG_F_CLOCK_SYNCED nor MLOG_F_HAS_TS goes to the
 * unanchored table (see "Clocks" above). */
EL_MUST_CHECK el_status mlog_append_event(struct mlog *log, const struct mlog_event *ev);
/* True when the event must wait for a synchronised clock. */
bool mlog_event_unanchored(uint32_t flags);
/* Moves up to max_rows of this boot's unanchored events into events (inside
 * the current transaction; the caller commits) with ts = mono + offset_ms,
 * calling fn for each; *moved = rows moved (0: none left). */
typedef void (*mlog_anchor_fn)(void *ctx, int64_t seq, uint32_t series_id, int64_t ts_ms,
                               double value);
EL_MUST_CHECK el_status mlog_anchor(struct mlog *log, int64_t offset_ms, uint32_t max_rows,
                                    mlog_anchor_fn fn, void *ctx, uint32_t *moved);
/* Committed state of the unanchored table: rows and smallest seq (0 if none). */
EL_MUST_CHECK el_status mlog_unanchored(struct mlog *log, int64_t *count, int64_t *min_seq);
/* The highest seq below which every committed event is in `events`: the
 * committed seq, or the smallest unanchored seq - 1. */
int64_t mlog_visible_seq(struct mlog *log);
EL_MUST_CHECK el_status mlog_append_dead(struct mlog *log, const struct mlog_dead *dl);
/* Inside the current transaction: marks dead letter dead_seq replayed as
 * events first_seq..last_seq, if it is still there and not marked yet
 * (*fresh true); *fresh false: it was replayed before (or retention removed
 * it), and the caller must not append the events: their seqs stay unused,
 * but count as taken (mlog_committed_seq passes them at the commit). */
EL_MUST_CHECK el_status mlog_mark_replayed(struct mlog *log, int64_t dead_seq, int64_t first_seq,
                                           int64_t last_seq, bool *fresh);
/* Inside the current transaction: seqs up to last_seq were handed out but
 * are not stored (a replay record skipped or refused): they count as taken
 * (mlog_committed_seq passes them at the commit) and stay taken after a
 * restart (meta 'seq_floor', which mlog_open's last seq takes into account),
 * so they are never handed out again once sync has acknowledged past them. */
EL_MUST_CHECK el_status mlog_skip_seqs(struct mlog *log, int64_t last_seq);
/* Commits the open transaction (no-op when none). On failure the transaction
 * is rolled back and the series dictionary forgets names it added, so the
 * caller can retry the same events later (EL_FULL for a full disk/quota). */
EL_MUST_CHECK el_status mlog_commit(struct mlog *log);
/* Drops the open transaction (after a failed append): like a failed commit. */
void mlog_rollback(struct mlog *log);
/* Highest sequence durably committed. */
int64_t mlog_committed_seq(const struct mlog *log);
/* Highest sequence of a committed event (events or unanchored, not dead
 * letters): what the batch layer has to cover. */
int64_t mlog_committed_event_seq(const struct mlog *log);
/* Events appended since the last commit (0 when no transaction is open). */
uint32_t mlog_pending(const struct mlog *log);

/* Sets the ceiling of master.db (PRAGMA max_page_count) to max_db_bytes
 * (0: none), as mlog_opts.max_db_bytes does at open; never below the pages
 * already used. */
EL_MUST_CHECK el_status mlog_set_ceiling(struct mlog *log, int64_t max_db_bytes);
/* Size of the database file plus its WAL, in bytes. */
int64_t mlog_bytes(const struct mlog *log);
/* Bytes of the database's pages in use (file size minus free pages): what
 * storage.max_bytes bounds. The file itself keeps its high-water mark and
 * reuses freed pages. */
int64_t mlog_used_bytes(struct mlog *log);
/* Lowest sequence still stored (events or dead letters), 0 when empty. */
int64_t mlog_oldest_seq(struct mlog *log);
/* Retention: deletes events and dead letters with seq <= upto (whole block
 * ranges are expected), and their block summaries, in one transaction of
 * its own (commit first). */
EL_MUST_CHECK el_status mlog_trim(struct mlog *log, int64_t upto);
/* Rows of `events` committed (the sum of blocks.n, kept in memory). */
int64_t mlog_event_count(const struct mlog *log);
/* The oldest event time in the block summaries (0 when empty). */
int64_t mlog_oldest_ts(struct mlog *log);
/* Retention by age: the highest sequence such that every block from the
 * oldest stored one up to it holds only events with ts < cutoff_ms, looking
 * at most max_blocks blocks ahead (a block without events, dead letters only,
 * counts as old). Below mlog_oldest_seq: nothing is that old. */
int64_t mlog_aged_upto(struct mlog *log, int64_t cutoff_ms, int64_t max_blocks);

/* Reads the events of one series with from_ms <= ts < to_ms and
 * after_seq < seq <= upto_seq, in sequence order, calling fn for each
 * (upto_seq bounds reads to committed events while a transaction is open). Only blocks whose time
 * range overlaps are read (by rowid range). Stops with EL_FULL after max_rows rows were examined
 * (the caller answers "too large"). *rows_examined may be NULL. */
typedef void (*mlog_row_fn)(void *ctx, int64_t seq, int64_t ts_ms, double value);
EL_MUST_CHECK el_status mlog_read_range(struct mlog *log, uint32_t series_id, int64_t from_ms,
                                        int64_t to_ms, int64_t after_seq, int64_t upto_seq,
                                        uint64_t max_rows, mlog_row_fn fn, void *ctx,
                                        uint64_t *rows_examined);
/* Calls fn for every event with seq > after_seq in sequence order (start-up
 * rebuild of the speed layer). */
typedef void (*mlog_event_fn)(void *ctx, int64_t seq, uint32_t series_id, int64_t ts_ms,
                              double value);
EL_MUST_CHECK el_status mlog_scan_after(struct mlog *log, int64_t after_seq, mlog_event_fn fn,
                                        void *ctx);
/* The newest event time in the block-range summary, INT64_MIN if none. */
int64_t mlog_newest_ts(struct mlog *log);
/* Calls fn for every event with ts >= from_ms, in sequence order, reading
 * only the blocks whose time range reaches from_ms (the start-up rebuild of
 * the speed layer's ring window: its cost follows the window, not the log). */
EL_MUST_CHECK el_status mlog_scan_since(struct mlog *log, int64_t from_ms, mlog_event_fn fn,
                                        void *ctx);
/* Calls fn(ctx, seq, series, recv_ms, value) for every reading waiting in
 * `unanchored` (this boot's: earlier boots' were retired at open), in
 * sequence order: the provisional lane of the speed layer. */
EL_MUST_CHECK el_status mlog_scan_unanchored(struct mlog *log, mlog_event_fn fn, void *ctx);
/* Per-series totals (count, newest event by (ts, seq)) for start-up. */
typedef void (*mlog_series_fn)(void *ctx, uint32_t series_id, int64_t count);
EL_MUST_CHECK el_status mlog_series_counts(struct mlog *log, mlog_series_fn fn, void *ctx);

/* Calls fn for the newest `limit` events (highest seq first) with their series
 * name and payload (borrowed for the call): used to seed duplicate detection
 * at start-up. */
typedef void (*mlog_recent_fn)(void *ctx, const char *series, size_t series_len,
                               const void *payload, size_t payload_len);
EL_MUST_CHECK el_status mlog_scan_recent(struct mlog *log, uint32_t limit, mlog_recent_fn fn,
                                         void *ctx);

#endif
