/*
 * el_sqlite_baseline — what SQLite itself costs for the rows edgelambdad
 * stores: the reference of the ingest benchmark's flash-write and
 * throughput figures.
 *
 *   el_sqlite_baseline DBPATH ROWS SERIES [TXN_ROWS=1000 [STYLE=json-ts]]
 *
 * Replaces DBPATH (and its -wal/-shm files) with a fresh database holding
 * exactly the `events` table of storage/mlog.h, in journal_mode=WAL with
 * synchronous=NORMAL, and inserts ROWS rows through one prepared statement
 * in TXN_ROWS-row transactions. Row i (0-based) is loadgen's message i in
 * STYLE (a loadgen --style name; json-ts by default): seq i+1, series
 * (i mod SERIES)+1, ts = ts_base + i, value = ((i*7919) mod 20000)/100 - 50,
 * recv = wall ms, mono = monotonic ms, boot 1, flags 3 (clock synced, ts
 * from payload), payload the message's text as a BLOB (json-ts:
 * {"value":V,"ts":T}), so that bytes per row compare with the daemon's for
 * the same stream. Closing the database checkpoints the
 * WAL into the main file. Prints
 *   sqlite_baseline: rows=N seconds=S rate=R write_bytes=B bytes_per_row=X
 * with seconds from open to close and B = the change of /proc/self/io
 * (write_bytes - cancelled_write_bytes) across open..close.
 *
 * Threading: single-threaded. Ownership: main owns the connection and the
 * statement; released at `out`.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "cli_common.h"
#include "lg_stream.h"
#include "plat_clock.h"

#define SQLB_MAX 1000000000000ULL /* ROWS, SERIES, TXN_ROWS */

static const char schema_sql[] =
    "CREATE TABLE events(seq INTEGER PRIMARY KEY, series INTEGER NOT NULL,"
    " ts INTEGER NOT NULL, value REAL NOT NULL, recv INTEGER NOT NULL,"
    " mono INTEGER NOT NULL, boot INTEGER NOT NULL, flags INTEGER NOT NULL,"
    " payload BLOB)";

static const char insert_sql[] =
    "INSERT INTO events(seq, series, ts, value, recv, mono, boot, flags, payload)"
    " VALUES(?1, ?2, ?3, ?4, ?5, ?6, 1, 3, ?7)";

/* Bytes this process sent to storage: write_bytes - cancelled_write_bytes. */
static bool io_written(int64_t *out)
{
    FILE *f = fopen("/proc/self/io", "r");
    char line[128];
    long long write_bytes = -1;
    long long cancelled = -1;

    if (f == NULL) {
        fprintf(stderr, "el_sqlite_baseline: /proc/self/io: %s\n", strerror(errno));
        return false;
    }
    while (fgets(line, sizeof line, f) != NULL) {
        long long v;

        if (sscanf(line, "write_bytes: %lld", &v) == 1)
            write_bytes = v;
        else if (sscanf(line, "cancelled_write_bytes: %lld", &v) == 1)
            cancelled = v;
    }
    fclose(f);
    if (write_bytes < 0 || cancelled < 0) {
        fprintf(stderr, "el_sqlite_baseline: /proc/self/io lacks write_bytes\n");
        return false;
    }
    *out = (int64_t)(write_bytes - cancelled);
    return true;
}

static bool exec_sql(sqlite3 *db, const char *sql)
{
    char *err = NULL;

    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "el_sqlite_baseline: %s: %s\n", sql, err ? err : sqlite3_errmsg(db));
        sqlite3_free(err);
        return false;
    }
    return true;
}

/* Removes DBPATH, DBPATH-wal and DBPATH-shm if present. */
static bool remove_db_files(const char *path)
{
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    char name[4096];

    for (size_t k = 0; k < 3; k++) {
        if ((size_t)snprintf(name, sizeof name, "%s%s", path, suffixes[k]) >= sizeof name) {
            fprintf(stderr, "el_sqlite_baseline: path too long\n");
            return false;
        }
        if (unlink(name) != 0 && errno != ENOENT) {
            fprintf(stderr, "el_sqlite_baseline: cannot remove %s: %s\n", name, strerror(errno));
            return false;
        }
    }
    return true;
}

static bool insert_rows(sqlite3 *db, sqlite3_stmt *stmt, uint64_t rows, uint64_t series,
                        uint64_t txn_rows, enum lg_style style)
{
    int64_t ts_base = plat_clock_wall_ms();
    char payload[LG_STREAM_PAYLOAD_MAX];

    for (uint64_t i = 0; i < rows; i++) {
        int64_t centi = lg_stream_value_centi(i);
        int64_t ts = ts_base + (int64_t)i;
        size_t len = lg_stream_payload(style, i, ts, payload);

        if (i % txn_rows == 0 && !exec_sql(db, "BEGIN"))
            return false;
        sqlite3_bind_int64(stmt, 1, (sqlite3_int64)(i + 1));
        sqlite3_bind_int64(stmt, 2, (sqlite3_int64)(i % series + 1));
        sqlite3_bind_int64(stmt, 3, ts);
        /* centi/100.0 is the correctly rounded double of the decimal text. */
        sqlite3_bind_double(stmt, 4, (double)centi / 100.0);
        sqlite3_bind_int64(stmt, 5, plat_clock_wall_ms());
        sqlite3_bind_int64(stmt, 6, plat_clock_mono_ms());
        sqlite3_bind_blob(stmt, 7, payload, (int)len, SQLITE_STATIC);
        if (sqlite3_step(stmt) != SQLITE_DONE) {
            fprintf(stderr, "el_sqlite_baseline: insert: %s\n", sqlite3_errmsg(db));
            return false;
        }
        sqlite3_reset(stmt);
        if ((i + 1) % txn_rows == 0 || i + 1 == rows) {
            if (!exec_sql(db, "COMMIT"))
                return false;
        }
    }
    return true;
}

static void report(uint64_t rows, int64_t ns, int64_t bytes)
{
    double seconds = (double)ns / 1e9;

    printf("sqlite_baseline: rows=%" PRIu64 " seconds=%.3f rate=%.0f write_bytes=%" PRId64
           " bytes_per_row=%.1f\n",
           rows, seconds, seconds > 0 ? (double)rows / seconds : 0.0, bytes,
           (double)bytes / (double)rows);
}

int main(int argc, char **argv)
{
    uint64_t rows, series, txn_rows = 1000;
    enum lg_style style = LG_JSON_TS;
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    int64_t io_before, io_after, start_ns, end_ns;
    int rc = 1;

    if (argc < 4 || argc > 6) {
        fprintf(stderr, "usage: el_sqlite_baseline DBPATH ROWS SERIES [TXN_ROWS=1000 "
                        "[STYLE=json-ts]]\n"
                        "DBPATH and its -wal/-shm files are replaced.\n");
        return 2;
    }
    cli_program = "el_sqlite_baseline";
    if (!cli_parse_u64(argv[2], "ROWS", 1, SQLB_MAX, &rows) ||
        !cli_parse_u64(argv[3], "SERIES", 1, SQLB_MAX, &series) ||
        (argc >= 5 && !cli_parse_u64(argv[4], "TXN_ROWS", 1, SQLB_MAX, &txn_rows)))
        return 2;
    if (argc == 6) {
        int k = 0;
        while (k < LG_STYLE_COUNT && strcmp(argv[5], lg_stream_style_names[k]) != 0)
            k++;
        if (k == LG_STYLE_COUNT) {
            fprintf(stderr, "el_sqlite_baseline: STYLE: not a loadgen style: %s\n", argv[5]);
            return 2;
        }
        style = (enum lg_style)k;
    }
    if (!remove_db_files(argv[1]) || !io_written(&io_before))
        return 1;

    start_ns = plat_clock_mono_ns();
    if (sqlite3_open(argv[1], &db) != SQLITE_OK) {
        fprintf(stderr, "el_sqlite_baseline: open %s: %s\n", argv[1],
                db ? sqlite3_errmsg(db) : "out of memory");
        goto out;
    }
    if (!exec_sql(db, "PRAGMA journal_mode=WAL") || !exec_sql(db, "PRAGMA synchronous=NORMAL") ||
        !exec_sql(db, schema_sql))
        goto out;
    if (sqlite3_prepare_v2(db, insert_sql, -1, &stmt, NULL) != SQLITE_OK) {
        fprintf(stderr, "el_sqlite_baseline: prepare: %s\n", sqlite3_errmsg(db));
        goto out;
    }
    if (!insert_rows(db, stmt, rows, series, txn_rows, style))
        goto out;
    sqlite3_finalize(stmt);
    stmt = NULL;
    if (sqlite3_close(db) != SQLITE_OK) {
        fprintf(stderr, "el_sqlite_baseline: close: %s\n", sqlite3_errmsg(db));
        goto out;
    }
    db = NULL;
    end_ns = plat_clock_mono_ns();
    if (!io_written(&io_after))
        goto out;
    report(rows, end_ns - start_ns, io_after - io_before);
    rc = 0;
out:
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return rc;
}
