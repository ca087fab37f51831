/*
 * cmd_query — the read commands on <prefix>/query (docs/SPEC.md §7):
 *   query SERIES|--match FILTER   range query, bucketed, one table per series
 *   series [--match FILTER]       series with counts and their newest event
 *   last [SERIES|--match FILTER]  newest raw samples
 *
 * Design: each command builds its request with the bounded JSON writer
 * (plat_jsonw, at most CLI_ASK_REQUEST_MAX bytes), asks through
 * cli_ask_and_print, and prints the parsed answer as aligned tables
 * (table.c): one row per non-empty bucket / series / sample, cells from
 * cli_fmt_cell and cli_fmt_time_cell, then a footer line with the answer's
 * master-log sequence ("the answer is exact up to seq N") and, for query,
 * how many events each layer contributed.
 *
 * Threading: main thread.
 */
#include <getopt.h>
#include <string.h>

#include "cli.h"

#define QUERY_AGG_MAX 16 /* edgelambdad's QUERY_MAX_AGGS */
#define QUERY_AGG_NAME_MAX 16

enum {
    OPT_MATCH = CLI_OPT_FIRST_COMMAND,
    OPT_FROM,
    OPT_TO,
    OPT_STEP,
    OPT_AGG,
};

/* The first element of arr, or -1 when arr is empty or not an array. */
static int array_first(const struct plat_json *d, int arr)
{
    return plat_json_type(d, arr) == PLAT_JSON_ARRAY ? plat_json_first(d, arr) : -1;
}

/* Elements of arr; 0 when arr is not an array. */
static int array_count(const struct plat_json *d, int arr)
{
    return plat_json_type(d, arr) == PLAT_JSON_ARRAY ? plat_json_count_children(d, arr) : 0;
}

/* ------------------------------------------------------------------ */
/* query                                                               */

struct query_args {
    struct cli_ask_opts ask;
    const char *series;
    bool match;
    const char *from, *to, *step;
    char aggs[QUERY_AGG_MAX][QUERY_AGG_NAME_MAX];
    size_t n_aggs;
    bool aggs_given;
};

static void query_usage(FILE *out)
{
    fprintf(out,
            "usage: edgelambda [global options] query SERIES [--match] [--from T] [--to T]\n"
            "                  [--step D] [--agg a,b,...] [--json] [--timeout SECONDS]\n"
            "\n"
            "Asks edgelambdad (<prefix>/query) for a range of a series, bucketed by --step,\n"
            "merged from the batch and speed layers, and prints one row per non-empty\n"
            "bucket: t (the bucket's start, RFC 3339 UTC) and one column per aggregate,\n"
            "then \"seq N \xc2\xb7 sources: speed S, batch B, log L\" (the answer is exact for\n"
            "the events with sequence <= N).\n"
            "\n"
            "  SERIES             series name, e.g. sensors/kitchen/temp; with --match an\n"
            "                     MQTT topic filter (sensors/+/temp, sensors/#): one table\n"
            "                     per matching series\n"
            "  --match            SERIES is a topic filter\n"
            "  --from T           start, inclusive (default -1h)\n"
            "  --to T             end, exclusive (default now)\n"
            "                     T: now, -90s, -1h, -7d, RFC 3339 (2026-01-01T00:00:00Z)\n"
            "                     or epoch milliseconds\n"
            "  --step D           bucket width, aligned to the epoch (default 1m):\n"
            "                     500ms, 10s, 1m, 1h, 1d, 1w or milliseconds\n"
            "  --agg LIST         comma-separated aggregates (default count,mean,min,max,last):\n"
            "                     count sum min max mean stddev last pNN (p50, p95, "
            "p99)\n" CLI_ASK_USAGE_OPTIONS CLI_ASK_USAGE_EXIT);
}

/* Splits the --agg list into args->aggs; false (message printed) if bad. */
static bool query_split_aggs(struct query_args *a, const char *list)
{
    const char *p = list;

    a->n_aggs = 0;
    a->aggs_given = true;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);

        while (n > 0 && *p == ' ') {
            p++;
            n--;
        }
        while (n > 0 && p[n - 1] == ' ')
            n--;
        if (n == 0 || n >= QUERY_AGG_NAME_MAX || a->n_aggs == QUERY_AGG_MAX) {
            fprintf(stderr, "edgelambda query: bad --agg '%s' (at most %d names like count,p95)\n",
                    list, QUERY_AGG_MAX);
            return false;
        }
        memcpy(a->aggs[a->n_aggs], p, n);
        a->aggs[a->n_aggs][n] = '\0';
        a->n_aggs++;
        if (comma == NULL)
            return true;
        p = comma + 1;
    }
}

/* Returns CLI_EXIT_OK, CLI_EXIT_USAGE, or -1 after --help. */
static int query_parse_args(struct cli_global *global, int argc, char **argv, void *args)
{
    struct query_args *a = args;
    static const struct option longopts[] = {
        {"match", no_argument, NULL, OPT_MATCH},
        {"from", required_argument, NULL, OPT_FROM},
        {"to", required_argument, NULL, OPT_TO},
        {"step", required_argument, NULL, OPT_STEP},
        {"agg", required_argument, NULL, OPT_AGG},
        CLI_ASK_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    static const char *const default_aggs[] = {"count", "mean", "min", "max", "last"};
    int opt;

    for (size_t k = 0; k < 5; k++)
        snprintf(a->aggs[k], sizeof a->aggs[k], "%s", default_aggs[k]);
    a->n_aggs = 5;
    optind = 0;
    while ((opt = cli_ask_getopt(global, &a->ask, argc, argv, "h", longopts)) != -1) {
        switch (opt) {
        case CLI_OPT_BAD: return CLI_EXIT_USAGE;
        case OPT_MATCH: a->match = true; break;
        case OPT_FROM: a->from = optarg; break;
        case OPT_TO: a->to = optarg; break;
        case OPT_STEP: a->step = optarg; break;
        case OPT_AGG:
            if (!query_split_aggs(a, optarg))
                return CLI_EXIT_USAGE;
            break;
        case 'h': query_usage(stdout); return -1;
        default: query_usage(stderr); return CLI_EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "edgelambda query: %s\n",
                optind >= argc ? "give one SERIES (or a topic filter with --match)"
                               : "give exactly one SERIES");
        query_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    a->series = argv[optind];
    return CLI_EXIT_OK;
}

/* The request's members (no "op": a range query is the default). */
static void query_request(const void *args, struct jw *w)
{
    const struct query_args *a = args;

    cli_jw_opt_str(w, a->match ? "match" : "series", a->series);
    cli_jw_opt_time(w, "from", a->from);
    cli_jw_opt_time(w, "to", a->to);
    cli_jw_opt_time(w, "step", a->step);
    if (a->aggs_given) {
        jw_key(w, "agg");
        jw_arr_begin(w);
        for (size_t k = 0; k < a->n_aggs; k++)
            jw_str(w, a->aggs[k]);
        jw_arr_end(w);
    }
}

/* "seq N · sources: speed S, batch B, log L" for one series' answer. */
static void query_footer(const struct plat_json *d, int obj, int64_t seq)
{
    int src = plat_json_member(d, obj, "sources");
    char speed[CLI_CELL_MAX], batch[CLI_CELL_MAX], log_[CLI_CELL_MAX];

    cli_fmt_cell(d, plat_json_member(d, src, "speed"), speed, sizeof speed);
    cli_fmt_cell(d, plat_json_member(d, src, "batch"), batch, sizeof batch);
    cli_fmt_cell(d, plat_json_member(d, src, "log"), log_, sizeof log_);
    printf("seq %lld \xc2\xb7 sources: speed %s, batch %s, log %s\n", (long long)seq,
           speed[0] ? speed : "0", batch[0] ? batch : "0", log_[0] ? log_ : "0");
}

/* One series' buckets as a table; obj holds "buckets" and "sources". */
static int query_print_series(const struct plat_json *d, int obj, const struct query_args *a,
                              int64_t seq)
{
    int buckets = plat_json_member(d, obj, "buckets");
    struct table *t = NULL;
    char text[CLI_CELL_MAX];
    int rc;

    if (table_new(a->n_aggs + 1, &t) != EL_OK)
        return cli_table_emit(NULL);
    for (size_t k = 0; k < a->n_aggs; k++)
        table_align(t, k + 1, TABLE_RIGHT);
    cli_cell(&t, "t");
    for (size_t k = 0; k < a->n_aggs; k++)
        cli_cell(&t, a->aggs[k]);
    for (int b = array_first(d, buckets); b >= 0; b = plat_json_next(d, buckets, b)) {
        cli_fmt_time_cell(d, plat_json_member(d, b, "t"), text, sizeof text);
        cli_cell(&t, text);
        for (size_t m = 0; m < a->n_aggs; m++) {
            cli_fmt_cell(d, plat_json_member(d, b, a->aggs[m]), text, sizeof text);
            cli_cell(&t, text);
        }
    }
    rc = cli_table_emit(t);
    if (rc == CLI_EXIT_OK && array_count(d, buckets) == 0)
        printf("(no data in the range)\n");
    if (rc == CLI_EXIT_OK)
        query_footer(d, obj, seq);
    table_free(t);
    return rc;
}

static int query_print(const struct plat_json *d, const void *ctx)
{
    const struct query_args *a = ctx;
    int list = plat_json_member(d, 0, "series");
    int64_t seq = 0;
    char name[CLI_CELL_MAX];
    int k = 0, rc = CLI_EXIT_OK;

    (void)cli_json_int(d, plat_json_member(d, 0, "seq"), &seq);
    if (!a->match)
        return query_print_series(d, 0, a, seq);
    if (array_count(d, list) == 0) {
        printf("(no series match '%s')\n", a->series);
        return CLI_EXIT_OK;
    }
    for (int s = array_first(d, list); s >= 0 && rc == CLI_EXIT_OK;
         s = plat_json_next(d, list, s), k++) {
        (void)cli_json_text(d, plat_json_member(d, s, "series"), name, sizeof name);
        printf("%s%s\n", k > 0 ? "\n" : "", name);
        rc = query_print_series(d, s, a, seq);
    }
    return rc;
}

int cli_query(struct cli_global *global, int argc, char **argv)
{
    static const struct cli_ask_command cmd = {
        "query", NULL, "query", query_parse_args, query_request, query_print,
    };
    struct query_args a = {0};

    return cli_ask_run(global, argc, argv, &cmd, &a, &a.ask);
}

/* ------------------------------------------------------------------ */
/* series and last                                                     */

struct list_args {
    struct cli_ask_opts ask;
    bool is_last;       /* last, else series */
    const char *series; /* last: one series */
    const char *match;  /* topic filter */
    uint64_t n;         /* last: samples per series */
};

static void series_usage(FILE *out)
{
    fprintf(out, "usage: edgelambda [global options] series [--match FILTER] [--json]\n"
                 "\n"
                 "Lists the daemon's series ({\"op\":\"series\"} on <prefix>/query): name,\n"
                 "event count, time and value of the newest event.\n"
                 "\n"
                 "  --match FILTER     only series matching this MQTT topic filter\n"
                 "                     (sensors/+/temp, sensors/#)\n" CLI_ASK_USAGE_OPTIONS
                     CLI_ASK_USAGE_EXIT);
}

static void last_usage(FILE *out)
{
    fprintf(
        out,
        "usage: edgelambda [global options] last [SERIES | --match FILTER] [-n N]\n"
        "                  [--json]\n"
        "\n"
        "Prints the newest raw samples ({\"op\":\"last\"} on <prefix>/query) of one\n"
        "series, of the series matching FILTER, or of every series: series, event\n"
        "time (RFC 3339 UTC), value and master-log sequence.\n"
        "\n"
        "  SERIES             one series name\n"
        "  --match FILTER     series matching this MQTT topic filter\n"
        "  -n N               samples per series, newest first (default 1)\n" CLI_ASK_USAGE_OPTIONS
            CLI_ASK_USAGE_EXIT);
}

/* Parses series/last options; returns CLI_EXIT_OK, CLI_EXIT_USAGE or -1. */
static int list_parse_args(struct cli_global *global, int argc, char **argv, void *args)
{
    struct list_args *a = args;
    bool is_last = a->is_last;
    static const struct option longopts[] = {
        {"match", required_argument, NULL, OPT_MATCH},
        CLI_ASK_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    void (*usage_fn)(FILE *) = is_last ? last_usage : series_usage;
    const char *name = is_last ? "last" : "series";
    int opt;

    optind = 0;
    while ((opt = cli_ask_getopt(global, &a->ask, argc, argv, is_last ? "hn:" : "h", longopts)) !=
           -1) {
        switch (opt) {
        case CLI_OPT_BAD: return CLI_EXIT_USAGE;
        case OPT_MATCH: a->match = optarg; break;
        case 'n':
            if (!cli_parse_u64(optarg, "-n", 1, 1000, &a->n))
                return CLI_EXIT_USAGE;
            break;
        case 'h': usage_fn(stdout); return -1;
        default: usage_fn(stderr); return CLI_EXIT_USAGE;
        }
    }
    if (is_last && optind < argc && a->match == NULL)
        a->series = argv[optind++];
    if (optind < argc) {
        fprintf(stderr, "edgelambda %s: unexpected argument '%s'\n", name, argv[optind]);
        usage_fn(stderr);
        return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}

/* A four-column table with the given header, columns `right` right-aligned. */
static struct table *list_table(const char *const header[4], size_t right_a, size_t right_b)
{
    struct table *t = NULL;

    if (table_new(4, &t) != EL_OK)
        return NULL;
    table_align(t, right_a, TABLE_RIGHT);
    table_align(t, right_b, TABLE_RIGHT);
    for (size_t k = 0; k < 4; k++)
        cli_cell(&t, header[k]);
    return t;
}

/* The table, then "N series · seq S". */
static int list_finish(const struct plat_json *d, struct table *t, int n_series)
{
    int64_t seq = 0;
    int rc = cli_table_emit(t);

    table_free(t);
    (void)cli_json_int(d, plat_json_member(d, 0, "seq"), &seq);
    if (rc == CLI_EXIT_OK)
        printf("%d series \xc2\xb7 seq %lld\n", n_series, (long long)seq);
    return rc;
}

/* Appends the cell of member key of obj (a time when is_time). */
static void member_cell(struct table **t, const struct plat_json *d, int obj, const char *key,
                        bool is_time)
{
    char text[CLI_CELL_MAX];

    if (is_time)
        cli_fmt_time_cell(d, plat_json_member(d, obj, key), text, sizeof text);
    else
        cli_fmt_cell(d, plat_json_member(d, obj, key), text, sizeof text);
    cli_cell(t, text);
}

static int series_print(const struct plat_json *d, const void *ctx)
{
    static const char *const header[4] = {"series", "count", "last time", "last value"};
    int list = plat_json_member(d, 0, "series");
    struct table *t = list_table(header, 1, 3);

    (void)ctx;
    if (t == NULL)
        return cli_table_emit(NULL);
    for (int s = array_first(d, list); s >= 0; s = plat_json_next(d, list, s)) {
        member_cell(&t, d, s, "series", false);
        member_cell(&t, d, s, "count", false);
        member_cell(&t, d, s, "last_t", true);
        member_cell(&t, d, s, "last", false);
    }
    return list_finish(d, t, array_count(d, list));
}

static int last_print(const struct plat_json *d, const void *ctx)
{
    static const char *const header[4] = {"series", "t", "value", "seq"};
    const struct list_args *a = ctx;
    int list = plat_json_member(d, 0, "series");
    int n = array_count(d, list);
    struct table *t;
    char name[CLI_CELL_MAX];

    if (a->series != NULL && n == 0) {
        fprintf(stderr, "edgelambda last: no series '%s'\n", a->series);
        return CLI_EXIT_FAIL;
    }
    t = list_table(header, 2, 3);
    if (t == NULL)
        return cli_table_emit(NULL);
    for (int s = array_first(d, list); s >= 0; s = plat_json_next(d, list, s)) {
        int samples = plat_json_member(d, s, "samples");

        cli_fmt_cell(d, plat_json_member(d, s, "series"), name, sizeof name);
        for (int p = array_first(d, samples); p >= 0; p = plat_json_next(d, samples, p)) {
            cli_cell(&t, name);
            member_cell(&t, d, p, "t", true);
            member_cell(&t, d, p, "value", false);
            member_cell(&t, d, p, "seq", false);
        }
    }
    return list_finish(d, t, n);
}

static void list_request(const void *args, struct jw *w)
{
    const struct list_args *a = args;

    cli_jw_opt_str(w, "match", a->match);
    cli_jw_opt_str(w, "series", a->series);
    cli_jw_opt_uint(w, "n", a->n);
}

static const struct cli_ask_command series_command = {
    "series", "series", "query", list_parse_args, list_request, series_print,
};
static const struct cli_ask_command last_command = {
    "last", "last", "query", list_parse_args, list_request, last_print,
};

static int list_command(struct cli_global *global, int argc, char **argv, bool is_last)
{
    struct list_args a = {.is_last = is_last};

    return cli_ask_run(global, argc, argv, is_last ? &last_command : &series_command, &a, &a.ask);
}

int cli_series(struct cli_global *global, int argc, char **argv)
{
    return list_command(global, argc, argv, false);
}

int cli_last(struct cli_global *global, int argc, char **argv)
{
    return list_command(global, argc, argv, true);
}
