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
 * Reads: one mlog_reader_scan_seq_chunk with series names (mlog_read.h: the
 * master log's own statement, a rowid-range scan of events with one series
 * lookup per row), at most max_events rows, stepped only as far as the
 * batch goes. The reader is used outside a snapshot, so the read
 * transaction lasts one batch at most (WAL checkpoints are not starved).
 * Nothing is allocated per batch: the caller owns the buffer.
 *
 * Threading: the thread that owns the master-log reader.
 */
#ifndef EL_SYNC_BATCH_H
#define EL_SYNC_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "el_status.h"
#include "mlog_read.h"
#include "sync_encode.h"

struct sync_batch {
    int64_t first_seq, last_seq;
    int64_t events;
    size_t len; /* encoded bytes in the caller's buffer */
};

/* Encodes the next batch read through log (borrowed; a sequential reader,
 * mlog_reader_open_seq, outside a snapshot) into buf (cap bytes, at least
 * max_bytes + SYNC_ENCODE_EVENT_MAX). EL_NOTFOUND when no event has
 * after_seq < seq <= upto_seq; EL_FULL when the first event alone does not
 * fit in cap; EL_DB (or EL_TIMEOUT) when the read fails. */
EL_MUST_CHECK el_status sync_batch_cut(struct mlog_reader *log, const struct sync_encoder *enc,
                                       int64_t after_seq, int64_t upto_seq, int64_t max_events,
                                       size_t max_bytes, char *buf, size_t cap,
                                       struct sync_batch *out);

#endif
