/* sync_batch — deterministic batches by sequence range (see sync_batch.h). */
#include "sync_batch.h"

#include <stdlib.h>

#include "plat_log.h"

struct sync_batch_reader {
    sqlite3 *db;
    sqlite3_stmt *range;
};

el_status sync_batch_reader_new(sqlite3 *db, struct sync_batch_reader **out)
{
    struct sync_batch_reader *r = calloc(1, sizeof *r);
    *out = NULL;
    if (!r)
        return EL_NOMEM;
    r->db = db;
    if (sqlite3_prepare_v3(db,
                           "SELECT e.seq, s.name, e.ts, e.value FROM events e"
                           " CROSS JOIN series s ON s.id = e.series"
                           " WHERE e.seq > ?1 AND e.seq <= ?2 ORDER BY e.seq LIMIT ?3",
                           -1, SQLITE_PREPARE_PERSISTENT, &r->range, NULL) != SQLITE_OK) {
        log_error("sync: cannot read the master log: %s", sqlite3_errmsg(db));
        free(r);
        return EL_DB;
    }
    *out = r;
    return EL_OK;
}

void sync_batch_reader_free(struct sync_batch_reader *r)
{
    if (!r)
        return;
    sqlite3_finalize(r->range);
    free(r);
}

el_status sync_batch_cut(struct sync_batch_reader *r, const struct sync_encoder *enc,
                         int64_t after_seq, int64_t upto_seq, int64_t max_events, size_t max_bytes,
                         char *buf, size_t cap, struct sync_batch *out)
{
    sqlite3_stmt *s = r->range;
    el_status st = EL_OK;
    int rc;
    out->first_seq = out->last_seq = 0;
    out->events = 0;
    out->len = 0;
    if (max_events <= 0 || upto_seq <= after_seq)
        return EL_NOTFOUND;
    if (sqlite3_bind_int64(s, 1, after_seq) != SQLITE_OK ||
        sqlite3_bind_int64(s, 2, upto_seq) != SQLITE_OK ||
        sqlite3_bind_int64(s, 3, max_events) != SQLITE_OK) {
        sqlite3_reset(s);
        return EL_DB;
    }
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(s, 1);
        size_t name_len = (size_t)sqlite3_column_bytes(s, 1);
        /* max_bytes is the batch limit; cap only guarantees the first event fits */
        size_t limit = out->events == 0 || max_bytes > cap ? cap : max_bytes;
        size_t room = limit > out->len ? limit - out->len : 0;
        size_t n = sync_encode_event(enc, name ? name : "", name_len, sqlite3_column_int64(s, 0),
                                     sqlite3_column_int64(s, 2), sqlite3_column_double(s, 3),
                                     buf + out->len, room);
        if (n == 0) {
            if (out->events == 0)
                st = EL_FULL;
            break;
        }
        if (out->events == 0)
            out->first_seq = sqlite3_column_int64(s, 0);
        out->last_seq = sqlite3_column_int64(s, 0);
        out->events++;
        out->len += n;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        log_error("sync: reading the master log: %s", sqlite3_errmsg(r->db));
        st = EL_DB;
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (st == EL_OK && out->events == 0)
        st = EL_NOTFOUND;
    return st;
}
