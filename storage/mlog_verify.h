/*
 * mlog_verify — checks a master log and its batch views for `edgelambda
 * verify`, read-only, beside a running daemon (one read snapshot of each
 * file).
 *
 * What it checks:
 *   - SQLite's own integrity (PRAGMA quick_check) of master.db and views.db;
 *   - sequence continuity: every sequence from the oldest stored to the
 *     newest is an event, a dead letter or a waiting reading, once;
 *   - the block summaries' event counts add up to the rows of `events`;
 *   - block summaries: each blocks row covers the event times of its block
 *     (the time index answers would otherwise miss rows);
 *   - batch views against a recompute: up to sample_rows view rows, spread
 *     over the views, recomputed from the raw events (count, min, max, sum)
 *     with seq <= the views' watermark. A bucket whose raw events retention
 *     already removed cannot be recomputed: counted as such, not as wrong.
 * Each finding carries a sentence for a person ("sequence 1200 is missing").
 *
 * Threading: any thread; no state beyond the call.
 */
#ifndef EL_MLOG_VERIFY_H
#define EL_MLOG_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "el_status.h"

#define MLOG_VERIFY_NOTES 16
#define MLOG_VERIFY_NOTE_MAX 200

struct mlog_verify_report {
    int64_t first_seq, last_seq; /* stored range (0, 0: empty) */
    int64_t events, dead_letters, waiting;
    int64_t counted_events; /* sum of blocks.n (mlog.h; -1: none) */
    int64_t missing_seqs;   /* gaps in first..last */
    int64_t blocks, bad_blocks;
    int64_t watermark_seq; /* the views' (0: no views) */
    int64_t views_checked, views_wrong, views_uncheckable;
    bool master_ok, views_ok; /* quick_check */
    int n_notes;              /* problems found, in words */
    char notes[MLOG_VERIFY_NOTES][MLOG_VERIFY_NOTE_MAX];
};

/* Verifies <dir>/master.db and, when present, <dir>/views.db. EL_OK: the
 * checks ran (the report says what they found); EL_IO/EL_DB: a file could
 * not be read (a note says why). */
EL_MUST_CHECK el_status mlog_verify(const char *dir, int sample_rows,
                                    struct mlog_verify_report *out);

#endif
