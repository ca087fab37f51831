/*
 * cmd_deadletters — `edgelambda deadletters`: the newest dead letters
 * ({"op":"deadletters"} on <prefix>/query, docs/SPEC.md §7): what the daemon
 * could not store as events, why, and the payload, so a fleet's operator can
 * see what to fix in the sensors or the configuration.
 *
 * Design: like cmd_query's list commands — the request built with the
 * bounded JSON writer, asked through cli_ask_and_print, the answer printed as
 * one table (seq, received, topic, reason, detail, payload), then "N dead letters ·
 * seq S". Payloads that are not UTF-8 come as hex (payload_hex) and print as
 * "hex:…"; long ones are cut in the table (--json shows what the daemon sent:
 * at most 512 bytes of each, with payload_bytes the original size).
 *
 * --replay: sends {"op":"replay_deadletters"} (a command, on
 * <prefix>/command; firmware/daemon/replay.h) with the same filters, again
 * with "after" = the reply's "after" until the daemon says "done" (each
 * request replays at most -n, default 1000), printing the dead letters that
 * still fail or were skipped as they come and the totals at the end; with
 * --json, each reply as one line (NDJSON). A round can wait twice for a
 * commit (replay.h), so --timeout defaults to DL_REPLAY_TIMEOUT_S; a "busy"
 * answer (the previous round not committed yet) is asked again, a bounded
 * number of times with a short bounded pause.
 *
 * Threading: main thread.
 */
#include <getopt.h>
#include <string.h>
#include <time.h>

#include "cli.h"

#define DL_PAYLOAD_CELL 60 /* payload characters shown in the table */

enum {
    OPT_MATCH = CLI_OPT_FIRST_COMMAND,
    OPT_REASON,
    OPT_SINCE,
    OPT_REPLAY,
};

#define DL_REPLAY_ROUNDS_MAX 1000000 /* a bound: each round moves "after" forward */
/* One round may wait for the previous round's commit, then for its own
 * (each up to storage.flush_interval_ms + 5 s, replay.h): --replay's default
 * --timeout is longer than other commands'. */
#define DL_REPLAY_TIMEOUT_S 30.0
/* "busy" (the previous round is not committed yet, e.g. after a round that
 * answered "committed":false): asked again this many times, after a pause
 * of DL_BUSY_PAUSE_MS doubling up to DL_BUSY_PAUSE_MAX_MS. */
#define DL_BUSY_RETRIES 5
#define DL_BUSY_PAUSE_MS 250
#define DL_BUSY_PAUSE_MAX_MS 2000

/* --replay's totals over the rounds. */
struct dl_replay {
    bool json;
    int64_t after;
    bool done, committed;
    uint64_t rounds, examined, replayed, events, failed, skipped;
};

struct dl_args {
    struct cli_ask_opts ask;
    const char *match, *reason, *since;
    uint64_t n;
    bool replay;
    struct dl_replay r;
};

static void dl_usage(FILE *out)
{
    fprintf(out,
            "usage: edgelambda [global options] deadletters [--match FILTER] [--reason R]\n"
            "                  [--since TIME] [-n N] [--replay] [--json]\n"
            "\n"
            "Lists the newest dead letters ({\"op\":\"deadletters\"} on <prefix>/query):\n"
            "messages stored but not as events, with the reason (malformed, no_value,\n"
            "non_finite, bad_timestamp, oversized, too_many_fields, series_limit, ...).\n"
            "\n"
            "  --match FILTER     only topics matching this MQTT topic filter\n"
            "  --reason R         only this reason\n"
            "  --since TIME       received at or after TIME (-1h, -7d, RFC 3339, epoch ms)\n"
            "  -n N               at most N, newest first (default 100, at most 1000);\n"
            "                     with --replay: per request (default 1000)\n"
            "  --replay           decode the selected dead letters again with the\n"
            "                     daemon's configuration now (after fixing it) and store\n"
            "                     those that decode as events, with their original\n"
            "                     receive time, exactly once ({\"op\":\"replay_deadletters\"}\n"
            "                     on <prefix>/command, repeated until done; --timeout\n"
            "                     defaults to 30 s, a \"busy\" answer is asked again up\n"
            "                     to 5 times)\n" CLI_ASK_USAGE_OPTIONS CLI_ASK_USAGE_EXIT);
}

/* Returns CLI_EXIT_OK, CLI_EXIT_USAGE, or -1 after --help. */
static int dl_parse_args(struct cli_global *global, int argc, char **argv, void *args)
{
    struct dl_args *a = args;
    static const struct option longopts[] = {
        {"match", required_argument, NULL, OPT_MATCH},
        {"reason", required_argument, NULL, OPT_REASON},
        {"since", required_argument, NULL, OPT_SINCE},
        {"replay", no_argument, NULL, OPT_REPLAY},
        CLI_ASK_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    int opt;

    optind = 0;
    while ((opt = cli_ask_getopt(global, &a->ask, argc, argv, "hn:", longopts)) != -1) {
        switch (opt) {
        case CLI_OPT_BAD: return CLI_EXIT_USAGE;
        case OPT_MATCH: a->match = optarg; break;
        case OPT_REASON: a->reason = optarg; break;
        case OPT_SINCE: a->since = optarg; break;
        case OPT_REPLAY: a->replay = true; break;
        case 'n':
            if (!cli_parse_u64(optarg, "-n", 1, 1000, &a->n))
                return CLI_EXIT_USAGE;
            break;
        case 'h': dl_usage(stdout); return -1;
        default: dl_usage(stderr); return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "edgelambda deadletters: unexpected argument '%s'\n", argv[optind]);
        dl_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}

/* The payload cell: its text (or "hex:" and its hex), cut for the table. */
static void dl_payload_cell(struct table **t, const struct plat_json *d, int obj)
{
    char text[CLI_CELL_MAX], cell[DL_PAYLOAD_CELL + 8];
    int hex = plat_json_member(d, obj, "payload_hex");
    int p = hex >= 0 ? hex : plat_json_member(d, obj, "payload");
    size_t n;

    cli_fmt_cell(d, p, text, sizeof text);
    n = strlen(text);
    snprintf(cell, sizeof cell, "%s%.*s%s", hex >= 0 ? "hex:" : "", DL_PAYLOAD_CELL, text,
             n > DL_PAYLOAD_CELL ? "..." : "");
    cli_cell(t, cell);
}

static int dl_print(const struct plat_json *d, const void *ctx)
{
    static const char *const header[] = {"seq", "received", "topic", "reason", "detail", "payload"};
    int list = plat_json_member(d, 0, "dead_letters"), n = 0, rc;
    int64_t seq = 0;
    struct table *t = NULL;
    char text[CLI_CELL_MAX];

    (void)ctx;
    if (table_new(6, &t) != EL_OK)
        return cli_table_emit(NULL);
    table_align(t, 0, TABLE_RIGHT);
    for (size_t k = 0; k < 6; k++)
        cli_cell(&t, header[k]);
    for (int e = plat_json_first(d, list); e >= 0; e = plat_json_next(d, list, e), n++) {
        cli_fmt_cell(d, plat_json_member(d, e, "seq"), text, sizeof text);
        cli_cell(&t, text);
        cli_fmt_time_cell(d, plat_json_member(d, e, "recv"), text, sizeof text);
        cli_cell(&t, text);
        cli_fmt_cell(d, plat_json_member(d, e, "topic"), text, sizeof text);
        cli_cell(&t, text);
        cli_fmt_cell(d, plat_json_member(d, e, "reason"), text, sizeof text);
        int64_t replayed = 0; /* --replay stored it as events from this seq on */
        if (cli_json_int(d, plat_json_member(d, e, "replayed_seq"), &replayed)) {
            size_t len = strlen(text);
            snprintf(text + len, sizeof text - len, ", replayed as seq %lld", (long long)replayed);
        }
        cli_cell(&t, text);
        int detail = plat_json_member(d, e, "detail");
        if (detail >= 0)
            cli_fmt_cell(d, detail, text, sizeof text);
        cli_cell(&t, detail >= 0 ? text : "");
        dl_payload_cell(&t, d, e);
    }
    rc = cli_table_emit(t);
    table_free(t);
    (void)cli_json_int(d, plat_json_member(d, 0, "seq"), &seq);
    if (rc == CLI_EXIT_OK)
        printf("%d dead letter%s \xc2\xb7 seq %lld\n", n, n == 1 ? "" : "s", (long long)seq);
    return rc;
}

static void dl_request(const void *args, struct jw *w)
{
    const struct dl_args *a = args;

    cli_jw_opt_str(w, "match", a->match);
    cli_jw_opt_str(w, "reason", a->reason);
    cli_jw_opt_time(w, "since", a->since);
    cli_jw_opt_uint(w, "n", a->n);
}

/* ---- --replay ---- */

static uint64_t dl_uint(const struct plat_json *d, const char *key)
{
    int64_t v = 0;
    return cli_json_int(d, plat_json_member(d, 0, key), &v) && v > 0 ? (uint64_t)v : 0;
}

/* The dead letters of one reply that were not replayed, one line each. */
static void dl_replay_lines(const struct plat_json *d)
{
    char seq[32], topic[CLI_CELL_MAX], reason[64], detail[CLI_CELL_MAX];
    int list = plat_json_member(d, 0, "not_replayed");
    for (int e = plat_json_first(d, list); e >= 0; e = plat_json_next(d, list, e)) {
        cli_fmt_cell(d, plat_json_member(d, e, "seq"), seq, sizeof seq);
        cli_fmt_cell(d, plat_json_member(d, e, "topic"), topic, sizeof topic);
        cli_fmt_cell(d, plat_json_member(d, e, "reason"), reason, sizeof reason);
        cli_fmt_cell(d, plat_json_member(d, e, "detail"), detail, sizeof detail);
        printf("not replayed: seq %s on %s: %s%s%s\n", seq, topic, reason, detail[0] ? ": " : "",
               detail);
    }
}

/* One reply: totals, the cursor, and its lines (or the raw reply, --json). */
static int dl_replay_print(const struct plat_json *d, const void *ctx)
{
    struct dl_replay *r = (struct dl_replay *)(uintptr_t)ctx;
    int64_t after = r->after;
    bool done = false, committed = false;
    if (!cli_json_int(d, plat_json_member(d, 0, "after"), &after) ||
        plat_json_bool(d, plat_json_member(d, 0, "done"), &done) != EL_OK ||
        plat_json_bool(d, plat_json_member(d, 0, "committed"), &committed) != EL_OK) {
        fprintf(stderr, "edgelambda deadletters: the replay answer lacks after/done/committed\n");
        return CLI_EXIT_FAIL;
    }
    r->done = done || after <= r->after; /* no progress: nothing more to do */
    r->after = after;
    r->committed = committed;
    r->rounds++;
    r->examined += dl_uint(d, "examined");
    r->replayed += dl_uint(d, "replayed");
    r->events += dl_uint(d, "events");
    r->failed += dl_uint(d, "failed");
    r->skipped += dl_uint(d, "skipped");
    if (r->json) {
        size_t n = 0;
        const char *raw = plat_json_raw(d, 0, &n);
        printf("%.*s\n", (int)n, raw ? raw : "");
    } else {
        dl_replay_lines(d);
    }
    return CLI_EXIT_OK;
}

static int dl_replay_run(const struct cli_global *global, struct dl_args *a)
{
    char buf[CLI_ASK_REQUEST_MAX];
    struct cli_ask_opts o = a->ask;
    struct cli_rr rr = {0}; /* one connection for every round */
    int rc = CLI_EXIT_OK, busy = 0, pause_ms = DL_BUSY_PAUSE_MS;
    o.json = false; /* every reply goes through dl_replay_print */
    o.retry_code = "busy";
    a->r.json = a->ask.json;
    while (rc == CLI_EXIT_OK && !a->r.done && a->r.rounds < DL_REPLAY_ROUNDS_MAX) {
        struct jw w;
        cli_jw_request_begin(&w, buf, sizeof buf, "replay_deadletters");
        dl_request(a, &w);
        if (a->r.after > 0) {
            jw_key(&w, "after");
            jw_int(&w, a->r.after);
        }
        jw_obj_end(&w);
        rc = cli_ask_and_print_on(&rr, global, "deadletters", "command", &w, &o, dl_replay_print,
                                  &a->r);
        if (rc == CLI_ASK_RETRY && busy >= DL_BUSY_RETRIES) {
            fprintf(stderr,
                    "edgelambda deadletters: the daemon is still committing the previous "
                    "replay (busy %d times); ask again later\n",
                    busy + 1);
            rc = CLI_EXIT_FAIL;
        } else if (rc == CLI_ASK_RETRY) {
            busy++;
            struct timespec ts = {pause_ms / 1000, (long)(pause_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
            pause_ms = pause_ms * 2 < DL_BUSY_PAUSE_MAX_MS ? pause_ms * 2 : DL_BUSY_PAUSE_MAX_MS;
            rc = CLI_EXIT_OK;
        } else {
            busy = 0;
            pause_ms = DL_BUSY_PAUSE_MS;
        }
    }
    cli_rr_close(&rr);
    if (rc == CLI_EXIT_OK && !a->r.json)
        printf("replayed %llu dead letter%s (%llu events) \xc2\xb7 %llu still failing \xc2\xb7 "
               "%llu skipped \xc2\xb7 %llu examined%s\n",
               (unsigned long long)a->r.replayed, a->r.replayed == 1 ? "" : "s",
               (unsigned long long)a->r.events, (unsigned long long)a->r.failed,
               (unsigned long long)a->r.skipped, (unsigned long long)a->r.examined,
               a->r.committed ? "" : " \xc2\xb7 not committed yet (the daemon is slow to commit)");
    if (rc == CLI_EXIT_OK && fflush(stdout) != 0)
        rc = CLI_EXIT_FAIL;
    return rc;
}

int cli_deadletters(struct cli_global *global, int argc, char **argv)
{
    static const struct cli_ask_command cmd = {
        "deadletters", "deadletters", "query", dl_parse_args, dl_request, dl_print,
    };
    struct dl_args a = {0};

    for (int i = 1; i < argc; i++) /* --replay asks in rounds: its own loop */
        if (strcmp(argv[i], "--replay") == 0) {
            a.ask.timeout_s = DL_REPLAY_TIMEOUT_S;
            int rc = dl_parse_args(global, argc, argv, &a);
            if (rc != CLI_EXIT_OK)
                return rc < 0 ? CLI_EXIT_OK : rc;
            return dl_replay_run(global, &a);
        }
    return cli_ask_run(global, argc, argv, &cmd, &a, &a.ask);
}
