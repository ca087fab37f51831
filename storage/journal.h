/*
 * journal — the ingest journal: where a message becomes safe before the
 * broker gets its acknowledgement.
 *
 * Why: Paho MQTTAsync sends the QoS 1 PUBACK when messageArrived returns 1
 * (docs/RELIABILITY.md), and it calls messageArrived for one message at a time.
 * A SQLite commit per message would cap ingest at a few thousand messages/s
 * and write ~4.5 KB of flash per event, so the callback instead writes the
 * message once into this journal and the core thread group-commits journal
 * records into the master log every storage.flush_interval_ms.
 *
 * DESIGN. A ring of `segments` fixed-size segment files
 * <dir>/journal/seg-<16 hex segno>.jnl, each preallocated (posix_fallocate)
 * and mapped MAP_SHARED. Writing a record is a memcpy into the mapping: once
 * the bytes are in the page cache they survive a crash of this process
 * (durability "normal"). In "strict" mode the record's pages are msync'ed
 * (MS_SYNC, i.e. written and fdatasync'ed) before journal_append returns, so
 * they survive a power cut. A segment whose records are all committed to the
 * master log is unlinked; unlinked dirty pages are never written to flash,
 * so in normal mode the journal costs (almost) no flash wear.
 *
 * The journal is also the queue between the Paho thread (single producer)
 * and the core thread (single consumer): the producer publishes a segment's
 * written length with a release store, the consumer reads it with acquire.
 * When every segment is in use (the core is behind, or the disk is full) the
 * producer blocks, which delays the PUBACK: the broker keeps the message.
 *
 * RECORD FORMAT (little-endian host order, 8-byte aligned, never crosses a
 * segment end):
 *   u32 len        total record bytes incl. this header and padding; 0 = end
 *   u32 crc        CRC-32 of bytes [8, len)
 *   u64 seq        first sequence number of the record
 *   i64 recv_ms    receive wall time, epoch ms
 *   i64 mono_ms    receive CLOCK_MONOTONIC, ms
 *   u32 orig_len   the payload's size on the wire
 *   u32 payload_len bytes of payload stored (< orig_len when cut)
 *   u16 topic_len
 *   u16 n_events   0 = dead letter
 *   u16 reason     dead letter: its reason code (the caller's numbering, < 256)
 *                  plus names_len << 8 (a detail of up to 255 bytes);
 *                  with events: names_len, the bytes of names after the payload
 *   u16 flags      the caller's flag bits (< JOURNAL_F_REF), and JOURNAL_F_REF
 *   n_events x { i64 ts_ms; f64 value; u32 field_off; u32 field_len }
 *   topic bytes, payload bytes, names bytes,
 *   with JOURNAL_F_REF only: u64 ref (unaligned; the caller's reference: a
 *                  replayed dead letter's seq, never 0; records with events only)
 *   zero padding to 8
 * An event's field_off/field_len are the caller's: ingest points them into
 * the bytes after the topic (the payload, then the names a decoder built),
 * with JOURNAL_NAME_WHOLE in field_len for a whole series name (not under
 * the topic). Records written before names existed carry names_len 0.
 * The record takes max(n_events, 1) sequence numbers. The length is stored
 * last (after the CRC), so a torn record fails its CRC and ends recovery.
 *
 * Threading: journal_append/journal_set_* on the producer thread only;
 * journal_next/journal_commit/journal_rewind on the consumer thread only;
 * journal_open/replay/reset/close before and after both run.
 */
#ifndef EL_JOURNAL_H
#define EL_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "el_status.h"

struct journal;

struct journal_opts {
    const char *dir;      /* storage.dir; the journal lives in <dir>/journal */
    size_t segment_bytes; /* size of each segment file */
    uint32_t segments;    /* segment slots (>= 2) */
    bool strict;          /* msync every record before journal_append returns */
};

struct journal_event {
    int64_t ts_ms;
    double value;
    uint32_t field_off;
    uint32_t field_len;
};
#define JOURNAL_NAME_WHOLE 0x80000000u /* in field_len: see RECORD FORMAT */
/* The journal's own flag bit: the record carries a ref (RECORD FORMAT).
 * Callers' flags stay below it; journal_rec.flags never shows it. */
#define JOURNAL_F_REF 0x8000u

/* A record as the consumer sees it: pointers into the mapping, valid until
 * the next journal_commit/journal_rewind (or until replay's callback returns). */
struct journal_rec {
    uint64_t seq;
    int64_t recv_ms;
    int64_t mono_ms;
    uint32_t orig_len;
    uint16_t n_events;
    uint16_t reason;
    uint16_t flags;
    const struct journal_event *events; /* n_events, 8-aligned in the mapping */
    const char *topic;
    size_t topic_len;
    const char *payload;
    size_t payload_len;
    size_t names_len; /* bytes right after the payload: names, or a dead letter's detail */
    uint64_t ref;     /* journal_msg.ref (0: none) */
};

/* What the producer hands in; all borrowed for the call. */
struct journal_msg {
    int64_t recv_ms;
    int64_t mono_ms;
    uint32_t orig_len;
    uint16_t n_events;
    uint16_t reason;
    uint16_t flags;
    const struct journal_event *events;
    const char *topic;
    size_t topic_len;
    const char *payload;
    size_t payload_len;
    /* written after the payload: for events the names decoders built (<=
     * UINT16_MAX), for a dead letter its detail (cut to 255, reason < 256) */
    const char *names;
    size_t names_len;
    /* 0, or the caller's reference kept with a record that has events (a
     * replayed dead letter's seq: the core marks it in the same transaction) */
    uint64_t ref;
};

/* An event's series name (RECORD FORMAT: the topic, then field_off/field_len
 * into the payload and names, JOURNAL_NAME_WHOLE for a name of its own) into
 * buf[cap]; 0 if it is empty, does not fit cap or lies outside. For a
 * journal_rec, names is payload + payload_len. */
size_t journal_event_name(const char *topic, size_t topic_len, const char *payload,
                          size_t payload_len, const char *names, size_t names_len,
                          const struct journal_event *ev, char *buf, size_t cap);

#define JOURNAL_NAME_MAX 255 /* longest name journal_new_names checks (MLOG_MAX_SERIES_NAME) */
/* True if name is a series known already. */
typedef bool (*journal_known_fn)(void *ctx, const char *name, size_t len);
/* Whether the n events' series could all be created: false if a name is
 * empty or longer than JOURNAL_NAME_MAX (*too_long), else true with *fresh
 * the distinct names known() does not know (the series they would add).
 * Bounded: n x n name comparisons, no allocation. */
bool journal_new_names(const char *topic, size_t topic_len, const char *payload, size_t payload_len,
                       const char *names, size_t names_len, const struct journal_event *evs,
                       uint16_t n, journal_known_fn known, void *ctx, uint32_t *fresh);

/* Largest topic+payload+events a record may carry for this segment size. */
size_t journal_max_body(size_t segment_bytes);

/* Opens the journal directory (creating it). Existing segments are kept for
 * journal_replay; new records go to fresh segments after them. */
EL_MUST_CHECK el_status journal_open(const struct journal_opts *opts, struct journal **out);
/* Unmaps everything. Call only after both threads stopped. If every record
 * written was committed, the segment files are deleted (nothing to replay);
 * otherwise they stay for the next journal_open. NULL is fine. */
void journal_close(struct journal *j);

/* Calls fn for every intact record of the segments found at open, in order,
 * stopping at the first torn or missing one. Sets *max_seq to the highest
 * sequence seen (last seq of the last record), 0 if none. */
typedef el_status (*journal_replay_fn)(void *ctx, const struct journal_rec *rec);
EL_MUST_CHECK el_status journal_replay(struct journal *j, journal_replay_fn fn, void *ctx,
                                       uint64_t *max_seq);
/* Deletes the segments found at open (call once their records are committed). */
EL_MUST_CHECK el_status journal_drop_replayed(struct journal *j);

/* Producer: the next sequence number to hand out. */
void journal_set_next_seq(struct journal *j, uint64_t next_seq);
uint64_t journal_next_seq(const struct journal *j);

/* Producer: appends one record, assigning it the next sequence number(s),
 * returned in *seq. Blocks while the journal is full, and in strict mode
 * while msync fails (retried with backoff); returns EL_AGAIN if
 * journal_shutdown was called while blocked (the record is NOT written),
 * EL_INVAL if the record can never fit. */
EL_MUST_CHECK el_status journal_append(struct journal *j, const struct journal_msg *msg,
                                       uint64_t *seq);
/* Consumer: while on, every record is msync'ed before journal_append
 * returns, as in strict mode; switching on first msyncs what is already
 * written. The core turns it on while it cannot commit (storage failing, or
 * stop_ingest at storage.max_bytes): in normal mode an acknowledged record
 * is otherwise only in the page cache until its group commit, and "a power
 * cut loses at most flush_interval_ms" must stay true however long the
 * commits wait. (Blocking the producer instead would also freeze Paho, which
 * holds its client lock during messageArrived.) */
void journal_sync_each(struct journal *j, bool on);
/* Any thread: true while a strict-mode msync is failing and being retried. */
bool journal_sync_failing(const struct journal *j);
/* Any thread: true while the producer waits in journal_append (every segment
 * in use, a new one cannot be created, or a strict msync failing). */
bool journal_held(const struct journal *j);
/* Any thread: why a new segment cannot be created while the producer waits
 * for one (EL_FULL: no space), EL_OK when it is not failing. */
el_status journal_segment_error(const struct journal *j);
/* Wakes a blocked producer for good (shutdown). */
void journal_shutdown(struct journal *j);

/* Consumer: the next unread record, or false when none is available now. */
bool journal_next(struct journal *j, struct journal_rec *rec);
/* Consumer: true if a record is waiting to be read. */
bool journal_has_unread(struct journal *j);
/* Consumer: everything read so far is committed to the master log; frees
 * segments wholly behind the read position. */
void journal_commit(struct journal *j);
/* Consumer: the master-log commit failed: read again from the last commit. */
void journal_rewind(struct journal *j);
/* Consumer: records written but not yet committed (read or not). */
uint64_t journal_uncommitted_bytes(struct journal *j);

/* Wake-up hook: the producer calls fn(ctx) after an append when the consumer
 * said it is going to sleep (journal_consumer_sleep), at most once per sleep. */
void journal_set_wakeup(struct journal *j, void (*fn)(void *ctx), void *ctx);
/* Consumer: about to sleep; returns false if a record is already waiting
 * (then do not sleep). */
bool journal_consumer_sleep(struct journal *j);
void journal_consumer_awake(struct journal *j);

#endif
