/*
 * el_mlog_fill — writes a genuine master log of N events: what edgelambdad
 * finds on a board that has been ingesting for a while. For tools/bench
 * startup (tools/lib/bench_startup.py), which times the daemon's start on it.
 *
 *   el_mlog_fill --dir DIR --events N --series S [--span-ms MS]
 *
 * Creates DIR/master.db through the daemon's own writer (storage/mlog.h:
 * mlog_open, mlog_series_get, mlog_append_event, mlog_commit, mlog_close),
 * so the schema, the series dictionary, the block-range summaries and the
 * boots table are exactly what the daemon writes. DIR must hold neither a
 * master log with anything in it nor a journal/ folder (exit 1): no journal
 * is written, so the daemon replays nothing and continues at sequence N+1.
 *
 * CONTENT. Event k (sequence k = 1..N, no gaps: no dead letters), i = k-1:
 *   series   "bench/dev<i mod S>/temp" (created at its first event, ids 1..S)
 *   ts       start + floor(k * span / N), start = end - span, end = the wall
 *            clock when the tool starts: event times spread evenly over the
 *            last --span-ms ms (default 7 days), the last one at `end`
 *   value    loadgen's json-ts message i (tools/cli/lg_stream.h), payload its
 *            text {"value":V,"ts":T} (~37 bytes), as the daemon stores it
 *   flags    MLOG_F_CLOCK_SYNCED | MLOG_F_HAS_TS (time from the payload)
 *   recv     ts; mono = ts - start
 * The rows belong to a boot of their own, "el-mlog-fill", that began at
 * `start` (mono 0): the daemon registers its real boot at its first start,
 * as after a reboot.
 *
 * Design: one write transaction per 50,000 events (FILL_TXN_EVENTS; the
 * daemon's group commits are smaller, which only changes how fast this tool
 * writes); series ids are cached in an array, so the name is formatted once
 * per series. Event times are computed without overflow for N <= 1e9:
 * k * (span / N) + (k * (span % N)) / N. Prints progress every 1,000,000 events and
 * at the end, on stderr:
 *   mlog_fill: events=N series=S span_ms=MS seconds=T rate=R last_seq=N bytes=B
 * Exit status: 0 done, 1 failure (message printed), 2 usage error.
 *
 * Threading: single-threaded. Ownership: main owns the struct mlog and the
 * id cache; both released at `out`.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli_common.h"
#include "lg_stream.h"
#include "mlog.h"
#include "plat_clock.h"

#define FILL_MAX_EVENTS 1000000000ULL /* keeps k * (span % N) below 2^63 */
#define FILL_MAX_SERIES 1000000ULL    /* speed.max_series' own bound */
#define FILL_TXN_EVENTS 50000ULL
#define FILL_PROGRESS_EVENTS 1000000ULL
#define FILL_DEFAULT_SPAN_MS 604800000LL /* 7 days */
#define FILL_MIN_TS 946684800000LL       /* 2000-01-01: the daemon's oldest event time */
#define FILL_BOOT_ID "el-mlog-fill"

enum {
    OPT_DIR = 0x1000,
    OPT_EVENTS,
    OPT_SERIES,
    OPT_SPAN_MS,
};

struct fill_args {
    const char *dir;
    uint64_t events, series;
    int64_t span_ms;
    bool have_events, have_series;
};

static void usage(FILE *out)
{
    fprintf(out, "usage: el_mlog_fill --dir DIR --events N --series S [--span-ms MS]\n"
                 "\n"
                 "Benchmark helper (tools/bench startup): writes DIR/master.db with the\n"
                 "daemon's own master-log writer: events 1..N over S series\n"
                 "(bench/dev<i>/temp), event times spread evenly over the last MS\n"
                 "milliseconds ending now, loadgen's json-ts payloads. DIR must hold no\n"
                 "master log with events and no journal.\n"
                 "\n"
                 "  --dir DIR       storage directory (created if missing)\n"
                 "  --events N      events to write (0..1000000000)\n"
                 "  --series S      series (1..1000000; the daemon's speed.max_series must\n"
                 "                  be at least S)\n"
                 "  --span-ms MS    event-time span ending now (default 604800000: 7 days)\n"
                 "  -h, --help      this help\n"
                 "\n"
                 "Exit status: 0 done, 1 failure, 2 usage error.\n");
}

/* One option; false on a bad value (message printed). */
static bool fill_option(void *ctx, int opt, const char *arg)
{
    struct fill_args *a = ctx;

    switch (opt) {
    case OPT_DIR: a->dir = arg; return true;
    case OPT_EVENTS:
        a->have_events = true;
        return cli_parse_u64(arg, "--events", 0, FILL_MAX_EVENTS, &a->events);
    case OPT_SERIES:
        a->have_series = true;
        return cli_parse_u64(arg, "--series", 1, FILL_MAX_SERIES, &a->series);
    case OPT_SPAN_MS:
        return cli_parse_i64(arg, "--span-ms", 1, plat_clock_wall_ms() - FILL_MIN_TS, &a->span_ms);
    default: usage(stderr); return false;
    }
}

/* Returns 0, 2 (usage) or -1 after --help. */
static int fill_parse_args(int argc, char **argv, struct fill_args *a)
{
    static const struct option longopts[] = {
        {"dir", required_argument, NULL, OPT_DIR},
        {"events", required_argument, NULL, OPT_EVENTS},
        {"series", required_argument, NULL, OPT_SERIES},
        {"span-ms", required_argument, NULL, OPT_SPAN_MS},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int rc = cli_getopt_each(argc, argv, longopts, usage, fill_option, a);

    if (rc != 0)
        return rc;
    if (a->dir == NULL || !a->have_events || !a->have_series || optind < argc) {
        fprintf(stderr, "el_mlog_fill: give --dir, --events and --series (and no other "
                        "arguments)\n");
        return 2;
    }
    return 0;
}

/* False (message printed) when DIR already has a journal/ folder. */
static bool no_journal(const char *dir)
{
    char path[4096];
    struct stat sb;

    if ((size_t)snprintf(path, sizeof path, "%s/journal", dir) >= sizeof path) {
        fprintf(stderr, "el_mlog_fill: --dir too long\n");
        return false;
    }
    if (stat(path, &sb) == 0) {
        fprintf(stderr, "el_mlog_fill: %s exists: give a directory without a journal\n", path);
        return false;
    }
    if (errno != ENOENT) {
        fprintf(stderr, "el_mlog_fill: %s: %s\n", path, strerror(errno));
        return false;
    }
    return true;
}

/* The id of series s (0-based), created at sequence seq on first use. */
static el_status series_id(struct mlog *log, uint32_t *ids, uint64_t s, int64_t seq, uint32_t *id)
{
    char name[MLOG_MAX_SERIES_NAME + 1];
    int len;

    if (ids[s] != 0) {
        *id = ids[s];
        return EL_OK;
    }
    len = snprintf(name, sizeof name, "bench/dev%" PRIu64 "/temp", s);
    el_status st = mlog_series_get(log, name, (size_t)len, seq, &ids[s]);
    *id = ids[s];
    return st;
}

static void report(const struct fill_args *a, struct mlog *log, uint64_t done, int64_t t0_ns)
{
    double seconds = (double)(plat_clock_mono_ns() - t0_ns) / 1e9;

    fprintf(stderr,
            "mlog_fill: events=%" PRIu64 " series=%" PRIu64 " span_ms=%" PRId64
            " seconds=%.3f rate=%.0f last_seq=%" PRId64 " bytes=%" PRId64 "\n",
            done, a->series, a->span_ms, seconds, seconds > 0 ? (double)done / seconds : 0.0,
            mlog_last_seq(log), mlog_bytes(log));
}

/* Appends events 1..N, committing every FILL_TXN_EVENTS. */
static el_status fill(const struct fill_args *a, struct mlog *log, uint32_t *ids, int64_t start)
{
    uint64_t n = a->events;
    int64_t q = n ? a->span_ms / (int64_t)n : 0, r = n ? a->span_ms % (int64_t)n : 0;
    int64_t t0_ns = plat_clock_mono_ns();
    char payload[LG_STREAM_PAYLOAD_MAX];
    el_status st = EL_OK;

    for (uint64_t i = 0; i < n && st == EL_OK; i++) {
        int64_t k = (int64_t)i + 1;
        int64_t ts = start + k * q + (k * r) / (int64_t)n;
        struct mlog_event ev = {
            .seq = k,
            .ts_ms = ts,
            .value = (double)lg_stream_value_centi(i) / 100.0,
            .recv_ms = ts,
            .mono_ms = ts - start,
            .flags = MLOG_F_CLOCK_SYNCED | MLOG_F_HAS_TS,
            .payload = payload,
        };
        ev.payload_len = lg_stream_payload(LG_JSON_TS, i, ts, payload);
        st = series_id(log, ids, i % a->series, k, &ev.series_id);
        if (st == EL_OK)
            st = mlog_append_event(log, &ev);
        if (st == EL_OK && (k % (int64_t)FILL_TXN_EVENTS == 0 || (uint64_t)k == n))
            st = mlog_commit(log);
        if (st == EL_OK && (uint64_t)k % FILL_PROGRESS_EVENTS == 0 && (uint64_t)k < n)
            report(a, log, (uint64_t)k, t0_ns);
    }
    if (st != EL_OK) {
        fprintf(stderr, "el_mlog_fill: writing %s/master.db failed: %s\n", a->dir,
                el_status_str(st));
        mlog_rollback(log);
        return st;
    }
    report(a, log, n, t0_ns);
    return EL_OK;
}

int main(int argc, char **argv)
{
    struct fill_args a = {.span_ms = FILL_DEFAULT_SPAN_MS};
    struct mlog *log = NULL;
    uint32_t *ids = NULL;
    int rc;

    cli_program = "el_mlog_fill";
    rc = fill_parse_args(argc, argv, &a);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    if (!no_journal(a.dir))
        return 1;
    rc = 1;
    int64_t start = plat_clock_wall_ms() - a.span_ms;
    struct mlog_opts mo = {.dir = a.dir, .max_series = (uint32_t)a.series, .max_db_bytes = 0};
    ids = calloc((size_t)a.series, sizeof *ids);
    if (ids == NULL) {
        fprintf(stderr, "el_mlog_fill: out of memory\n");
        goto out;
    }
    el_status st = mlog_open(&mo, FILL_BOOT_ID, start, 0, &log);
    if (st != EL_OK) {
        fprintf(stderr, "el_mlog_fill: cannot open %s/master.db: %s\n", a.dir, el_status_str(st));
        goto out;
    }
    if (mlog_last_seq(log) != 0 || mlog_series_count(log) != 0) {
        fprintf(stderr,
                "el_mlog_fill: %s/master.db already holds sequences up to %" PRId64
                " (%u series): give an empty directory\n",
                a.dir, mlog_last_seq(log), mlog_series_count(log));
        goto out;
    }
    if (fill(&a, log, ids, start) == EL_OK)
        rc = 0;
out:
    mlog_close(log);
    free(ids);
    return rc;
}
