/*
 * edgelambda — the command-line client of edgelambdad (docs/SPEC.md §9).
 *
 *   edgelambda [--uri URI] [--prefix PREFIX] <command> [options]
 *
 * Purpose: talk to the daemon through the same MQTT API as any other client
 * (docs/SPEC.md §7: query, series, last, status and metrics on <prefix>/query, recompute and
 * sync on <prefix>/command, the retained <prefix>/status) and generate load
 * (loadgen.c). It never opens the daemon's files.
 *
 * Design: this file is the dispatcher. main() parses the global options
 * (stopping at the first non-option, the command name; the broker
 * credentials --username/--password-file/--cafile, or their EDGELAMBDA_*
 * variables, go to cli_set_auth for every client), then dispatches
 * through cli_commands[], a table of {name, function, one-line help};
 * adding a command is one row plus its function in its family's file (the
 * layout is in cli.h). Every command parses its own options with
 * getopt_long (and also accepts --uri/--prefix after its name), prints its
 * usage on --help, and returns an exit code: 0 ok, 1 failure, 2 usage
 * error. `edgelambda help <command>` runs "<command> --help".
 *
 * Threading: main thread; commands start and stop Paho's threads inside.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

bool cli_common_option(struct cli_global *global, int opt, const char *arg)
{
    if (opt == CLI_OPT_URI) {
        global->uri = arg;
        return true;
    }
    if (opt == CLI_OPT_PREFIX) {
        global->prefix = arg;
        return true;
    }
    return false;
}

struct cli_command {
    const char *name;
    cli_command_fn fn;
    const char *help; /* one line */
};

static int cmd_help(struct cli_global *global, int argc, char **argv);

static const struct cli_command cli_commands[] = {
    {"query", cli_query, "range query of a series (or --match FILTER), bucketed"},
    {"series", cli_series, "list series with counts and their newest event"},
    {"last", cli_last, "print the newest raw samples"},
    {"deadletters", cli_deadletters, "list the newest dead letters and why"},
    {"export", cli_export, "stream raw events from the master log as CSV or NDJSON"},
    {"verify", cli_verify, "check the master log and the batch views"},
    {"status", cli_status, "print the daemon's status (retained <prefix>/status)"},
    {"metrics", cli_metrics, "print the daemon's status as Prometheus text"},
    {"recompute", cli_recompute, "recompute the batch views now"},
    {"sync", cli_sync, "ship the master log upstream now"},
    {"loadgen", cli_loadgen, "publish a deterministic synthetic sensor stream"},
    {"help", cmd_help, "show help for a command: edgelambda help <command>"},
};

#define CLI_NCOMMANDS (sizeof cli_commands / sizeof cli_commands[0])

static void usage(FILE *out)
{
    fprintf(out,
            "usage: edgelambda [--uri URI] [--prefix PREFIX] [--username U] [--password-file F]\n"
            "                  [--cafile F] <command> [options]\n"
            "       edgelambda --help | --version | <command> --help\n"
            "\n"
            "Global options:\n"
            "  --uri URI        broker (default $EDGELAMBDA_URI or " CLI_DEFAULT_URI ")\n"
            "  --prefix PREFIX  daemon topic prefix (default " CLI_DEFAULT_PREFIX ")\n"
            "  --username U     broker user name (default $EDGELAMBDA_USERNAME)\n"
            "  --password-file F  broker password: the first line of F, a file others\n"
            "                   cannot read (default $EDGELAMBDA_PASSWORD_FILE)\n"
            "  --cafile F       CA certificates for ssl:// URIs (default\n"
            "                   $EDGELAMBDA_CAFILE, else the system's)\n"
            "  -h, --help       this help\n"
            "  -V, --version    print the version\n"
            "\n"
            "Commands:\n");
    for (size_t i = 0; i < CLI_NCOMMANDS; i++)
        fprintf(out, "  %-10s %s\n", cli_commands[i].name, cli_commands[i].help);
}

static const struct cli_command *find_command(const char *name)
{
    for (size_t i = 0; i < CLI_NCOMMANDS; i++) {
        if (strcmp(cli_commands[i].name, name) == 0)
            return &cli_commands[i];
    }
    return NULL;
}

static int cmd_help(struct cli_global *global, int argc, char **argv)
{
    const struct cli_command *cmd;
    char help_flag[] = "--help";
    char *sub_argv[3];

    if (argc < 2 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    cmd = find_command(argv[1]);
    if (cmd == NULL) {
        fprintf(stderr, "edgelambda: unknown command '%s'\n", argv[1]);
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    sub_argv[0] = argv[1];
    sub_argv[1] = help_flag;
    sub_argv[2] = NULL;
    return cmd->fn(global, 2, sub_argv);
}

int main(int argc, char **argv)
{
    enum { OPT_USERNAME = CLI_OPT_FIRST_COMMAND, OPT_PASSWORD_FILE, OPT_CAFILE };
    static const struct option longopts[] = {
        {"uri", required_argument, NULL, CLI_OPT_URI},
        {"prefix", required_argument, NULL, CLI_OPT_PREFIX},
        {"username", required_argument, NULL, OPT_USERNAME},
        {"password-file", required_argument, NULL, OPT_PASSWORD_FILE},
        {"cafile", required_argument, NULL, OPT_CAFILE},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    struct cli_global global;
    const struct cli_command *cmd;
    const char *env_uri = getenv("EDGELAMBDA_URI");
    const char *username = getenv("EDGELAMBDA_USERNAME");
    const char *password_file = getenv("EDGELAMBDA_PASSWORD_FILE");
    const char *ca_file = getenv("EDGELAMBDA_CAFILE");
    char why[512];
    int opt;

    global.uri = (env_uri != NULL && env_uri[0] != '\0') ? env_uri : CLI_DEFAULT_URI;
    global.prefix = CLI_DEFAULT_PREFIX;

    /* "+": stop at the command name; its options belong to the command. */
    while ((opt = getopt_long(argc, argv, "+hV", longopts, NULL)) != -1) {
        if (cli_common_option(&global, opt, optarg))
            continue;
        switch (opt) {
        case OPT_USERNAME: username = optarg; break;
        case OPT_PASSWORD_FILE: password_file = optarg; break;
        case OPT_CAFILE: ca_file = optarg; break;
        case 'h': usage(stdout); return CLI_EXIT_OK;
        case 'V': printf("edgelambda %s\n", EL_VERSION); return CLI_EXIT_OK;
        default: usage(stderr); return CLI_EXIT_USAGE;
        }
    }
    if (cli_set_auth(username, password_file, ca_file, why, sizeof why) != EL_OK) {
        fprintf(stderr, "edgelambda: %s\n", why);
        return CLI_EXIT_USAGE;
    }
    if (optind >= argc) {
        fprintf(stderr, "edgelambda: no command given\n");
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    cmd = find_command(argv[optind]);
    if (cmd == NULL) {
        fprintf(stderr, "edgelambda: unknown command '%s'\n", argv[optind]);
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    return cmd->fn(&global, argc - optind, argv + optind);
}
