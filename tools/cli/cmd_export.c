/*
 * cmd_export — `edgelambda export`: streams raw events of the master log to
 * stdout as CSV or NDJSON, straight from <dir>/master.db (read-only, beside
 * a running daemon: SQLite WAL readers never block its writer).
 *
 * Design: the series are one name (--series) or every name matching an MQTT
 * topic filter (--match); each is read with mlog_reader_scan_time (block
 * summaries pick the ranges) in its own read transaction, so no snapshot
 * outlives one series. Rows come per series in the log's order. On a
 * terminal, stderr shows a progress bar (series done of series chosen) and
 * the count; redirected, it stays quiet but for errors.
 *
 * Threading: main thread only.
 */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "mlog_read.h"
#include "mqtt_topic.h"
#include "plat_clock.h"
#include "plat_time.h"
#include "query.h"

#define EXPORT_MAX_SERIES 1000000u
#define EXPORT_DEFAULT_DIR "/var/lib/edgelambda"

enum { OPT_DIR = CLI_OPT_FIRST_COMMAND, OPT_SERIES, OPT_MATCH, OPT_FROM, OPT_TO, OPT_FORMAT };

struct export
{
    const char *dir, *series, *match, *from, *to;
    bool ndjson;
    int64_t from_ms, to_ms;
    const struct series_dict *dict;
    uint64_t rows;
    bool progress, failed;
    int64_t last_draw_ms;
};

static void export_usage(FILE *out)
{
    fprintf(out,
            "usage: edgelambda export (--series NAME | --match FILTER) [--from TIME] [--to TIME]\n"
            "                         [--format csv|ndjson] [--dir DIR]\n"
            "\n"
            "Streams raw events from the master log (DIR/master.db, read-only) to stdout.\n"
            "\n"
            "  --series NAME      one series\n"
            "  --match FILTER     every series matching this MQTT topic filter\n"
            "  --from TIME        events at or after TIME (-7d, RFC 3339, epoch ms; default: all)\n"
            "  --to TIME          events before TIME (default: now)\n"
            "  --format F         csv (series,ts_ms,time,value,seq; the default) or ndjson\n"
            "  --dir DIR          storage.dir of the daemon (default " EXPORT_DEFAULT_DIR ")\n"
            "  -h, --help         this help\n"
            "\n"
            "Exit status: 0 done, 1 no such series or the log could not be read, 2 usage error.\n");
}

static int export_parse(int argc, char **argv, struct export *e)
{
    static const struct option longopts[] = {
        {"dir", required_argument, NULL, OPT_DIR},
        {"series", required_argument, NULL, OPT_SERIES},
        {"match", required_argument, NULL, OPT_MATCH},
        {"from", required_argument, NULL, OPT_FROM},
        {"to", required_argument, NULL, OPT_TO},
        {"format", required_argument, NULL, OPT_FORMAT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_DIR: e->dir = optarg; break;
        case OPT_SERIES: e->series = optarg; break;
        case OPT_MATCH: e->match = optarg; break;
        case OPT_FROM: e->from = optarg; break;
        case OPT_TO: e->to = optarg; break;
        case OPT_FORMAT:
            if (strcmp(optarg, "csv") != 0 && strcmp(optarg, "ndjson") != 0) {
                fprintf(stderr, "edgelambda export: --format is csv or ndjson, not '%s'\n", optarg);
                return CLI_EXIT_USAGE;
            }
            e->ndjson = strcmp(optarg, "ndjson") == 0;
            break;
        case 'h': export_usage(stdout); return -1;
        default: export_usage(stderr); return CLI_EXIT_USAGE;
        }
    }
    int64_t now = plat_clock_wall_ms();
    if ((e->series == NULL) == (e->match == NULL) || optind < argc) {
        fprintf(stderr, "edgelambda export: give one of --series or --match\n");
        return CLI_EXIT_USAGE;
    }
    if ((e->from && !query_parse_time(e->from, strlen(e->from), now, &e->from_ms)) ||
        (e->to && !query_parse_time(e->to, strlen(e->to), now, &e->to_ms))) {
        fprintf(stderr, "edgelambda export: a time is -7d, now, RFC 3339 or epoch ms\n");
        return CLI_EXIT_USAGE;
    }
    if (!e->to)
        e->to_ms = now + 1;
    return CLI_EXIT_OK;
}

static void draw(struct export *e, double done, bool last)
{
    int64_t now = plat_clock_mono_ms();
    if (!e->progress || (!last && now - e->last_draw_ms < 200))
        return;
    e->last_draw_ms = now;
    int fill = (int)(done * 30.0 + 0.5);
    fprintf(stderr, "\r[%.*s%.*s] %3.0f%% %" PRIu64 " events%s", fill,
            "##############################", 30 - fill, "..............................",
            done * 100.0, e->rows, last ? "\n" : "");
}

static void put_row(void *ctx, int64_t seq, uint32_t series, int64_t ts_ms, double value,
                    bool provisional)
{
    struct export *e = ctx;
    char when[PLAT_TIME_RFC3339_MAX], num[32], name[512];
    (void)provisional;
    const char *s = series_dict_name(e->dict, series);
    size_t n = series_dict_name_len(e->dict, series);
    if (plat_time_format_rfc3339(ts_ms, PLAT_TIME_MS_ALWAYS, when, sizeof when) == 0)
        when[0] = '\0';
    for (int prec = 15; prec <= 17; prec++) { /* the shortest text that reads back exact */
        snprintf(num, sizeof num, "%.*g", prec, value);
        if (strtod(num, NULL) == value)
            break;
    }
    if (e->ndjson) {
        struct jw w;
        jw_init(&w, name, sizeof name);
        jw_strn(&w, s, n);
        printf("{\"series\":%.*s,\"ts\":%" PRId64 ",\"time\":\"%s\",\"value\":%s,\"seq\":%" PRId64
               "}\n",
               (int)jw_len(&w), name, ts_ms, when, isfinite(value) ? num : "null", seq);
    } else {
        bool quote = memchr(s, ',', n) || memchr(s, '"', n);
        fputs(quote ? "\"" : "", stdout);
        for (size_t i = 0; i < n; i++) {
            if (s[i] == '"')
                fputc('"', stdout);
            fputc(s[i], stdout);
        }
        printf("%s,%" PRId64 ",%s,%s,%" PRId64 "\n", quote ? "\"" : "", ts_ms, when, num, seq);
    }
    e->rows++;
}

/* One series over from..to, in one read transaction (a snapshot as short
 * as the series is long: the daemon's writer never waits for it). */
static el_status export_series(struct export *e, struct mlog_reader *r, uint32_t id, size_t k,
                               size_t n_series)
{
    uint64_t budget = UINT64_MAX;
    el_status st = mlog_reader_begin(r);
    if (st == EL_OK)
        st = mlog_reader_scan_time(r, id, e->from_ms, e->to_ms, 0, mlog_reader_last_seq(r), &budget,
                                   put_row, e);
    mlog_reader_end(r);
    draw(e, (double)(k + 1) / (double)n_series, false);
    return st;
}

int cli_export(struct cli_global *global, int argc, char **argv)
{
    struct export e = {.dir = EXPORT_DEFAULT_DIR, .from_ms = INT64_MIN / 4};
    struct mlog_reader *r = NULL;
    (void)global;
    int rc = export_parse(argc, argv, &e);
    if (rc != CLI_EXIT_OK)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if (mlog_reader_open(e.dir, EXPORT_MAX_SERIES, &r) != EL_OK) {
        fprintf(stderr, "edgelambda export: cannot open %s/master.db\n", e.dir);
        return CLI_EXIT_FAIL;
    }
    el_status st = mlog_reader_begin(r); /* brings the series names up to date */
    mlog_reader_end(r);
    e.dict = mlog_reader_series(r);
    e.progress = isatty(STDERR_FILENO);
    if (e.from == NULL) /* all: from the oldest event there can be */
        e.from_ms = 0;
    uint32_t n = st == EL_OK ? series_dict_capacity(e.dict) : 0, chosen = 0, found = 0;
    for (uint32_t id = 1; id <= n; id++) {
        const char *name = series_dict_name(e.dict, id);
        size_t len = series_dict_name_len(e.dict, id);
        if (name && (e.match ? mqtt_topic_matches(e.match, name, len)
                             : len == strlen(e.series) && memcmp(name, e.series, len) == 0))
            chosen++;
    }
    if (!e.ndjson && st == EL_OK)
        printf("series,ts_ms,time,value,seq\n");
    for (uint32_t id = 1; id <= n && st == EL_OK; id++) {
        const char *name = series_dict_name(e.dict, id);
        size_t len = series_dict_name_len(e.dict, id);
        if (!name || !(e.match ? mqtt_topic_matches(e.match, name, len)
                               : len == strlen(e.series) && memcmp(name, e.series, len) == 0))
            continue;
        st = export_series(&e, r, id, found++, chosen);
    }
    draw(&e, 1.0, true);
    mlog_reader_close(r);
    if (st != EL_OK) {
        fprintf(stderr, "edgelambda export: reading %s/master.db: %s\n", e.dir, el_status_str(st));
        return CLI_EXIT_FAIL;
    }
    if (chosen == 0) {
        fprintf(stderr, "edgelambda export: no series %s '%s'\n", e.match ? "matches" : "is named",
                e.match ? e.match : e.series);
        return CLI_EXIT_FAIL;
    }
    return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}
