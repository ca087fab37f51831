/* retention — size bound of the master log (design in retention.h). */
#include "retention.h"

#include <string.h>

/* How many events to remove so that used pages fall to target_bytes,
 * estimated from the average size of a stored event. */
static int64_t events_to_free(struct mlog *log, int64_t oldest, int64_t used, int64_t target)
{
    int64_t span = mlog_committed_seq(log) - oldest + 1;
    int64_t excess = used - target;
    if (span <= 0 || excess <= 0)
        return 1;
    int64_t per_event = used / span;
    int64_t n = excess / (per_event > 0 ? per_event : 1) + 1;
    return n < RETENTION_MAX_EVENTS ? n : RETENTION_MAX_EVENTS;
}

/* The last sequence of a tick's range: about n events from oldest, rounded
 * to whole blocks, never past limit. Below oldest: nothing may go. */
static int64_t range_end(int64_t oldest, int64_t n, int64_t limit)
{
    int64_t upto = oldest + n - 1 < limit ? oldest + n - 1 : limit;
    upto = ((upto >> MLOG_BLOCK_SHIFT) << MLOG_BLOCK_SHIFT) + (1 << MLOG_BLOCK_SHIFT) - 1;
    if (upto > limit)
        upto = (((limit + 1) >> MLOG_BLOCK_SHIFT) << MLOG_BLOCK_SHIFT) - 1;
    return upto;
}

void retention_tick(struct mlog *log, const struct retention_opts *opts, int64_t removable,
                    bool no_room, struct retention_result *out)
{
    memset(out, 0, sizeof *out);
    if (opts->max_bytes <= 0)
        return;
    out->used_bytes = mlog_used_bytes(log);
    out->over = out->used_bytes > opts->max_bytes;
    if (!out->over && !no_room)
        return;
    int64_t oldest = mlog_oldest_seq(log);
    int64_t block = (int64_t)1 << MLOG_BLOCK_SHIFT;
    out->views_behind = removable < oldest + block - 1;
    if (opts->drop_oldest && removable < oldest + block)
        removable = mlog_committed_seq(log); /* the user chose to lose the oldest */
    /* Aim an eighth below max_bytes, so a tick's worth of commits fits. */
    int64_t n = events_to_free(log, oldest, out->used_bytes, opts->max_bytes - opts->max_bytes / 8);
    int64_t upto = range_end(oldest, n, removable);
    if (upto < oldest) {
        out->outcome = RETENTION_BLOCKED;
        return;
    }
    out->st = mlog_trim(log, upto);
    if (out->st != EL_OK) {
        out->outcome = RETENTION_FAILED;
        return;
    }
    out->outcome = RETENTION_TRIMMED;
    out->first = oldest;
    out->upto = upto;
    out->used_bytes = mlog_used_bytes(log);
}
