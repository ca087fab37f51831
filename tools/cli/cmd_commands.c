/*
 * cmd_commands — the commands on <prefix>/command (docs/SPEC.md §7):
 *   recompute [--full]      recompute the batch views now
 *   sync [--retry-parked]   ship the master log upstream now
 *
 * Design: both send {"op":<name>, <flag>:true|false} through
 * cli_ask_and_print and print the daemon's answer as aligned "key  value"
 * lines (cli_print_flat); one table of options serves both, the flag
 * named per command.
 *
 * Threading: main thread.
 */
#include <getopt.h>
#include <string.h>

#include "cli.h"

enum {
    OPT_FULL = CLI_OPT_FIRST_COMMAND,
    OPT_RETRY_PARKED,
};

static void recompute_usage(FILE *out)
{
    fprintf(out, "usage: edgelambda [global options] recompute [--full] [--json]\n"
                 "\n"
                 "Asks edgelambdad to recompute its batch views now\n"
                 "({\"op\":\"recompute\"} on <prefix>/command) and prints its answer.\n"
                 "\n"
                 "  --full             rebuild every view from the whole master log\n"
                 "                     (default: only what changed)\n" CLI_ASK_USAGE_OPTIONS
                     CLI_ASK_USAGE_EXIT);
}

static void sync_usage(FILE *out)
{
    fprintf(
        out,
        "usage: edgelambda [global options] sync [--retry-parked] [--json]\n"
        "\n"
        "Asks edgelambdad to ship its master log upstream now\n"
        "({\"op\":\"sync\"} on <prefix>/command) and prints its answer.\n"
        "\n"
        "  --retry-parked     also retry batches parked after a 4xx answer\n" CLI_ASK_USAGE_OPTIONS
            CLI_ASK_USAGE_EXIT);
}

/* The answer's members as aligned "key  value" lines. */
static int command_print(const struct plat_json *answer, const void *ctx)
{
    (void)ctx;
    cli_print_flat(answer, stdout);
    return CLI_EXIT_OK;
}

/* Parses the options; returns CLI_EXIT_OK, CLI_EXIT_USAGE or -1 after --help. */
static int command_parse(struct cli_global *global, int argc, char **argv, bool is_sync,
                         struct cli_ask_opts *o, bool *flag)
{
    static const struct option recompute_opts[] = {
        {"full", no_argument, NULL, OPT_FULL},
        CLI_ASK_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    static const struct option sync_opts[] = {
        {"retry-parked", no_argument, NULL, OPT_RETRY_PARKED},
        CLI_ASK_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    void (*usage_fn)(FILE *) = is_sync ? sync_usage : recompute_usage;
    int opt;

    optind = 0;
    while ((opt = cli_ask_getopt(global, o, argc, argv, "h",
                                 is_sync ? sync_opts : recompute_opts)) != -1) {
        switch (opt) {
        case CLI_OPT_BAD: return CLI_EXIT_USAGE;
        case OPT_FULL:
        case OPT_RETRY_PARKED: *flag = true; break;
        case 'h': usage_fn(stdout); return -1;
        default: usage_fn(stderr); return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "edgelambda %s: unexpected argument '%s'\n", is_sync ? "sync" : "recompute",
                argv[optind]);
        usage_fn(stderr);
        return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}

static int command_run(struct cli_global *global, int argc, char **argv, bool is_sync)
{
    const char *name = is_sync ? "sync" : "recompute";
    struct cli_ask_opts o = {.json = false, .timeout_s = CLI_ASK_DEFAULT_TIMEOUT_S};
    bool flag = false;
    char buf[256];
    struct jw w;
    int rc = command_parse(global, argc, argv, is_sync, &o, &flag);

    if (rc != CLI_EXIT_OK)
        return rc < 0 ? CLI_EXIT_OK : rc;
    cli_jw_request_begin(&w, buf, sizeof buf, name);
    jw_key(&w, is_sync ? "retry_parked" : "full");
    jw_bool(&w, flag);
    jw_obj_end(&w);
    return cli_ask_and_print(global, name, "command", &w, &o, command_print, NULL);
}

int cli_recompute(struct cli_global *global, int argc, char **argv)
{
    return command_run(global, argc, argv, false);
}

int cli_sync(struct cli_global *global, int argc, char **argv)
{
    return command_run(global, argc, argv, true);
}
