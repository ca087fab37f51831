/*
 * replay — {"op":"replay_deadletters"} and `edgelambda deadletters --replay`
 * (issue #13): dead letters are decoded again with the configuration now in
 * force, after it was fixed, and those that decode enter the master log as
 * new events, exactly once per dead letter, as late data.
 *
 * DESIGN.
 * - Path: a replayed dead letter becomes ONE journal record, written by
 *   ingest_replay (ingest.h, "Replay") exactly like a live message's, with
 *   its ORIGINAL receive and monotonic times (so a payload without a time
 *   of its own is placed when it arrived, not now), MLOG_F_REPLAYED in its
 *   flags, and the dead letter's seq as the record's ref (journal.h). It gets
 *   new sequence numbers from the journal, so seqs stay monotonic, and the
 *   core handles it like any record: the speed layer takes it (late data:
 *   its ring or the side structure for old times), the batch layer's next
 *   incremental run covers the buckets it touches (touched by seq > the
 *   watermark), sync ships it after the cursor, in seq order.
 * - Exactly once: the core sets dead_letters.replayed_seq (NULL -> the first
 *   seq of the events) with "WHERE replayed_seq IS NULL" in the SAME SQLite
 *   transaction that appends the events (core_commit.c, mark_replayed). A
 *   crash before that commit leaves the journal record, which the start-up
 *   replay commits (both or neither); a dead letter already marked is never
 *   replayed again: the scan skips it, and a record whose dead letter is
 *   already marked (only possible if two records for it were journaled) is
 *   not stored (its seqs stay unused). Requests are serialised (one serving
 *   thread) and a request first waits until the previous one's records are
 *   committed, so a second record is never written in practice.
 * - The flag: no new column. events.flags already exists (MLOG_F_REPLAYED,
 *   0 bytes more per event on flash), and dead_letters.replayed_seq links a
 *   dead letter to its events.
 * - Not replayed (skipped, counted, never retried by a later request's
 *   cursor): payloads cut at ingest.max_payload ("truncated"), Sparkplug B
 *   ("sparkplug_b": aliases and seq belong to their session), readings with
 *   no time of their own received while the clock was not synchronised
 *   ("no_true_time"), and the core's per-event dead letters it cannot place
 *   (MLOG_F_PART: only that one event of the message is replayed;
 *   "part_unknown", "part_mismatch"). A dead letter that still fails stays
 *   as it is (no new row); its reason and detail are in the reply.
 * - Refused again: a dead letter whose events the core would refuse
 *   (series_limit: more new series than speed.max_series leaves room for;
 *   name_too_long) still fails: the serving thread checks against its
 *   reader's series dictionary (and the series its own earlier records of
 *   the request add) and journals nothing; the core checks again when it
 *   stores the record, BEFORE marking the dead letter (core_commit.c,
 *   replay_refusal: a live message may have taken the room meanwhile) and
 *   then stores nothing of it, leaves it unmarked (replayable once the limit
 *   is raised) and keeps its seqs taken (mlog_skip_seqs). Storing the
 *   refused event as a new PART dead letter instead would hide the original
 *   and could never be replayed ("part_mismatch").
 * - Stopping: replay_stop (at SIGTERM and in the teardown) ends the scan at
 *   the next dead letter ("after" stays before the first one not
 *   journaled), and the core shuts the journal's producer side before it
 *   joins the serving thread, so a replay blocked on a full journal returns.
 * - Bounded: at most "n" (default and max 1000) dead letters per request,
 *   oldest first after "after" (a seq); the reply's "after" and "done" let
 *   the client loop (the CLI does). Rows examined per request are bounded by
 *   query.max_rows. The wait for the commit is bounded by
 *   storage.flush_interval_ms + REPLAY_COMMIT_SLACK_MS ("committed":false
 *   after it; the next request answers "busy" until it is committed).
 *
 * Threading: replay_new/free on the core thread; replay_answer on the
 * serving thread only (it owns the reader and the decode scratch);
 * replay_stop and the counters from any thread.
 */
#ifndef EL_REPLAY_H
#define EL_REPLAY_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "el_status.h"
#include "ingest.h"
#include "query.h"
#include "speed.h"

#define REPLAY_COMMIT_SLACK_MS 5000
#define REPLAY_LISTED_MAX 20 /* dead letters named in a reply (still failing or skipped) */

struct replay_opts {
    const char *dir; /* storage.dir */
    uint32_t max_series;
    int flush_interval_ms;
    uint64_t max_rows; /* rows examined per request (query.max_rows) */
};

/* Counters for status (since start; atomics). */
struct replay_counters {
    _Atomic uint64_t runs;      /* requests answered */
    _Atomic uint64_t journaled; /* dead letters handed to the journal */
    _Atomic uint64_t failed;    /* still failing when last tried */
    _Atomic uint64_t skipped;   /* never replayable */
};

struct replay;

/* ing and sp are borrowed and must outlive the replay. Opens its reader. */
EL_MUST_CHECK el_status replay_new(const struct replay_opts *opts, struct ingest *ing,
                                   const struct speed *sp, struct replay **out);
void replay_free(struct replay *rp);
/* Any thread: ends a wait for the commit at once, and a running scan at
 * its next dead letter (shutdown). */
void replay_stop(struct replay *rp);
const struct replay_counters *replay_counters(const struct replay *rp);

/* Serving thread: runs one request (q->op == QUERY_REPLAY_DEAD_LETTERS) and
 * writes its reply into buf (cap bytes); returns its length (0: did not
 * fit). *code is set for an error reply ("busy", "unavailable",
 * "internal"). */
size_t replay_answer(struct replay *rp, const struct query *q, char *buf, size_t cap,
                     const char **code);

#endif
