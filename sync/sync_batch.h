/*
 * sync_batch — cuts upstream batches out of the master log, by sequence
 * range, and encodes them.
 *
 * A batch is the events with after_seq < seq <= upto_seq in sequence order,
 * as many as fit both limits: at most max_events events and at most
 * max_bytes encoded bytes (the first event is always taken, so a batch is
 * never empty when an event exists). Its identity is [first_seq, last_seq]:
 * the seqs of its first and last event. The cut depends only on the data
 * and the limits, never on timing; and cutting again with after_seq =
 * first_seq - 1, upto_seq = last_seq and no event limit yields the same
 * events and the same bytes (the master log is append-only), which is how a
 * retry resends exactly the same batch.
 *
 * Reads: one prepared statement over events CROSS JOIN series (forced
 * order: a rowid-range scan of events, one series lookup by primary key per
 * row), stepped only as far as the batch goes and reset at once, so the
 * read snapshot is held for one batch at most (WAL checkpoints are not
 * starved). Nothing is allocated per batch: the caller owns the buffer.
 *
 * Threading: a reader belongs to the thread that owns its connection.
 */
#ifndef EL_SYNC_BATCH_H
#define EL_SYNC_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "el_status.h"
#include "sync_encode.h"

struct sync_batch {
    int64_t first_seq, last_seq;
    int64_t events;
    size_t len; /* encoded bytes in the caller's buffer */
};

struct sync_batch_reader;

/* Prepares the statements on db (borrowed; must outlive the reader). EL_DB
 * when the master log's tables are missing. */
EL_MUST_CHECK el_status sync_batch_reader_new(sqlite3 *db, struct sync_batch_reader **out);
void sync_batch_reader_free(struct sync_batch_reader *r); /* NULL is fine */

/* Encodes the next batch into buf (cap bytes, at least max_bytes +
 * SYNC_ENCODE_EVENT_MAX). EL_NOTFOUND when no event has after_seq < seq <=
 * upto_seq; EL_FULL when the first event alone does not fit in cap; EL_DB. */
EL_MUST_CHECK el_status sync_batch_cut(struct sync_batch_reader *r, const struct sync_encoder *enc,
                                       int64_t after_seq, int64_t upto_seq, int64_t max_events,
                                       size_t max_bytes, char *buf, size_t cap,
                                       struct sync_batch *out);

#endif
