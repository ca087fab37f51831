/* sync_batch — deterministic batches by sequence range (see sync_batch.h). */
#include "sync_batch.h"

#include "plat_log.h"

/* One cut in progress: the row callback's state. */
struct cut {
    const struct sync_encoder *enc;
    size_t max_bytes;
    char *buf;
    size_t cap;
    struct sync_batch *out;
    el_status st;
};

/* Encodes one event after the ones taken; false when it does not fit (the
 * batch ends before it; EL_FULL if it was the first). */
static bool take_event(void *ctx, const struct mlog_chunk_row *row)
{
    struct cut *c = ctx;
    struct sync_batch *out = c->out;
    /* max_bytes is the batch limit; cap only guarantees the first event fits */
    size_t limit = out->events == 0 || c->max_bytes > c->cap ? c->cap : c->max_bytes;
    size_t room = limit > out->len ? limit - out->len : 0;
    size_t n = sync_encode_event(c->enc, row->name, row->name_len, row->seq, row->ts_ms, row->value,
                                 c->buf + out->len, room);
    if (n == 0) {
        if (out->events == 0)
            c->st = EL_FULL;
        return false;
    }
    if (out->events == 0)
        out->first_seq = row->seq;
    out->last_seq = row->seq;
    out->events++;
    out->len += n;
    return true;
}

el_status sync_batch_cut(struct mlog_reader *log, const struct sync_encoder *enc, int64_t after_seq,
                         int64_t upto_seq, int64_t max_events, size_t max_bytes, char *buf,
                         size_t cap, struct sync_batch *out)
{
    struct cut c = {
        .enc = enc, .max_bytes = max_bytes, .buf = buf, .cap = cap, .out = out, .st = EL_OK};
    int64_t last;
    out->first_seq = out->last_seq = 0;
    out->events = 0;
    out->len = 0;
    if (max_events <= 0 || upto_seq <= after_seq)
        return EL_NOTFOUND;
    el_status st = mlog_reader_scan_seq_chunk(log, after_seq, upto_seq, max_events, MLOG_SCAN_NAMES,
                                              take_event, &c, &last);
    if (st != EL_OK) {
        log_error("sync: reading the master log failed (%s)", el_status_str(st));
        return st;
    }
    if (c.st == EL_OK && out->events == 0)
        return EL_NOTFOUND;
    return c.st;
}
