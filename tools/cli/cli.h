/*
 * cli — shared declarations of the `edgelambda` command-line client.
 *
 * Design (the layout of git's builtin/ or curl's tool_*.c): edgelambda.c
 * owns main(), the global options, the table of commands ({name, function,
 * one-line help}) and the usage text; each command family lives in a file
 * of its own and parses its own options with getopt_long over the argv
 * slice that starts at its name:
 *   cmd_query.c     query, series, last  (<prefix>/query)
 *   cmd_status.c    status               (the retained <prefix>/status)
 *   cmd_metrics.c   metrics              (<prefix>/query: Prometheus text)
 *   cmd_commands.c  recompute, sync      (<prefix>/command)
 *   cmd_deadletters.c  deadletters       (<prefix>/query)
 *   loadgen.c       loadgen              (publishes a synthetic stream)
 * cli_ask.c holds what the request/response commands share: the shared
 * options (--json, --timeout), asking (mqtt_client.h through cli_rr_open),
 * checking the answer, and formatting its values as table cells (table.c).
 * Commands return a process exit code: 0 success, 1 run-time failure,
 * 2 usage error (CLI_EXIT_*, cli_common.h).
 *
 * Threading: main thread only (commands may start their own threads, e.g.
 * Paho's, and must join/destroy them before returning).
 * Ownership: struct cli_global's strings are borrowed from argv/environ and
 * live for the whole process.
 */
#ifndef EL_CLI_H
#define EL_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cli_common.h"
#include "plat_json.h"
#include "plat_jsonw.h"
#include "table.h"

/* Options common to every command (given before or after the command name). */
struct cli_global {
    const char *uri;    /* broker URI (--uri, $EDGELAMBDA_URI, CLI_DEFAULT_URI) */
    const char *prefix; /* topic prefix of the daemon's API (--prefix) */
};

/* A command: argv[0] is the command's name, options follow. */
typedef int (*cli_command_fn)(struct cli_global *global, int argc, char **argv);

/* Long-option ids shared by every command's getopt_long table; a command's
 * own ids start at CLI_OPT_FIRST_COMMAND. */
enum {
    CLI_OPT_URI = 0x1000,
    CLI_OPT_PREFIX,
    CLI_OPT_JSON,
    CLI_OPT_TIMEOUT,
    CLI_OPT_FIRST_COMMAND,
};

/* Handles CLI_OPT_URI / CLI_OPT_PREFIX; returns false for other options. */
bool cli_common_option(struct cli_global *global, int opt, const char *arg);

/* The commands. */
int cli_query(struct cli_global *global, int argc, char **argv);
int cli_series(struct cli_global *global, int argc, char **argv);
int cli_last(struct cli_global *global, int argc, char **argv);
int cli_deadletters(struct cli_global *global, int argc, char **argv);
int cli_export(struct cli_global *global, int argc, char **argv);
int cli_verify(struct cli_global *global, int argc, char **argv);
int cli_status(struct cli_global *global, int argc, char **argv);
int cli_metrics(struct cli_global *global, int argc, char **argv);
int cli_recompute(struct cli_global *global, int argc, char **argv);
int cli_sync(struct cli_global *global, int argc, char **argv);
int cli_loadgen(struct cli_global *global, int argc, char **argv);

/* ---- request/response commands (cli_ask.c) ---- */

#define CLI_ASK_REQUEST_MAX 16384 /* edgelambdad's request limit (INGEST_REQ_MAX) */
#define CLI_ASK_DEFAULT_TIMEOUT_S 10.0
#define CLI_CELL_MAX 320

/* Options every request/response command shares. */
struct cli_ask_opts {
    bool json;
    double timeout_s;
    /* An error answer with this code (NULL: none) is not reported:
     * cli_ask_and_print returns CLI_ASK_RETRY (the caller asks again). */
    const char *retry_code;
};
#define CLI_ASK_RETRY (-3) /* cli_ask_and_print: the answer was o->retry_code */

#define CLI_ASK_LONGOPTS                                                                           \
    {"json", no_argument, NULL, CLI_OPT_JSON},                                                     \
        {"timeout", required_argument, NULL, CLI_OPT_TIMEOUT},                                     \
        {"uri", required_argument, NULL, CLI_OPT_URI},                                             \
        {"prefix", required_argument, NULL, CLI_OPT_PREFIX},                                       \
    {                                                                                              \
        "help", no_argument, NULL, 'h'                                                             \
    }

#define CLI_ASK_USAGE_OPTIONS                                                                      \
    "  --json             print the daemon's raw JSON answer\n"                                    \
    "  --timeout SECONDS  wait at most this long for the answer (default 10)\n"                    \
    "  --uri URI          broker (default $EDGELAMBDA_URI or " CLI_DEFAULT_URI ")\n"               \
    "  --prefix PREFIX    daemon topic prefix (default " CLI_DEFAULT_PREFIX ")\n"                  \
    "  -h, --help         this help\n"

#define CLI_ASK_USAGE_EXIT                                                                         \
    "\nExit status: 0 answered, 1 error answer, no answer in time or broker failure,\n"            \
    "2 usage error.\n"

/* cli_ask_getopt's answer for a bad value of a shared option. */
#define CLI_OPT_BAD (-2)

/* getopt_long for a request/response command: handles the shared options
 * (--json, --timeout, --uri, --prefix) itself and returns the next other
 * one, -1 at the end, or CLI_OPT_BAD after a bad --timeout (message
 * printed). Set optind = 0 before the first call. */
int cli_ask_getopt(struct cli_global *global, struct cli_ask_opts *o, int argc, char **argv,
                   const char *shortopts, const struct option *longopts);

/* Prints a successful answer (not --json); returns an exit code. */
typedef int (*cli_answer_print_fn)(const struct plat_json *answer, const void *ctx);

/* Asks: checks request (a bounded writer of at most CLI_ASK_REQUEST_MAX
 * bytes), sends it to <prefix>/<suffix>, waits (o->timeout_s), prints the
 * raw answer with --json, reports an error answer ({"ok":false,"error":
 * {code,message}}) on stderr, and otherwise calls print. cmd names the
 * command in messages. Returns the exit code, or CLI_ASK_RETRY for an error
 * answer with code o->retry_code (not reported). */
int cli_ask_and_print(const struct cli_global *global, const char *cmd, const char *suffix,
                      const struct jw *request, const struct cli_ask_opts *o,
                      cli_answer_print_fn print, const void *ctx);
/* The same over the caller's connection, for commands that ask several
 * times (deadletters --replay): rr starts zeroed, is opened and connected by
 * the first call and kept; the caller closes it (cli_rr_close). */
int cli_ask_and_print_on(struct cli_rr *rr, const struct cli_global *global, const char *cmd,
                         const char *suffix, const struct jw *request, const struct cli_ask_opts *o,
                         cli_answer_print_fn print, const void *ctx);

/* A request/response command, step by step: parse reads its options into
 * args (CLI_EXIT_OK, CLI_EXIT_USAGE, or -1 after --help), request adds the
 * request's members after "op", print shows the answer. */
struct cli_ask_command {
    const char *name;   /* the command, in messages */
    const char *op;     /* the request's "op"; NULL: none */
    const char *suffix; /* asked on <prefix>/<suffix> */
    int (*parse)(struct cli_global *global, int argc, char **argv, void *args);
    void (*request)(const void *args, struct jw *w);
    cli_answer_print_fn print; /* given args as its ctx */
};

/* Runs cmd over argv: ask (the options inside args) starts with the default
 * timeout, the rest of args as the caller set it (zeroed); parses, builds
 * the request ({"op": cmd->op, ...}) and asks with cli_ask_and_print.
 * Returns the exit code (CLI_EXIT_OK after --help). */
int cli_ask_run(struct cli_global *global, int argc, char **argv, const struct cli_ask_command *cmd,
                void *args, struct cli_ask_opts *ask);

/* A parsed JSON text and the token array it owns (cli_doc_free). */
struct cli_doc {
    struct plat_json json;
    struct plat_json_tok *tok;
};

/* Parses text[0..len) (any JSON value); false if it is not JSON. */
bool cli_doc_parse(struct cli_doc *d, const char *text, size_t len);
void cli_doc_free(struct cli_doc *d);

/* Token i as display text: strings unescaped, control characters shown as
 * '?', cut to cap - 1 bytes; "" for i < 0. Returns its length. */
size_t cli_json_text(const struct plat_json *d, int i, char *out, size_t cap);

/* Token i as a table cell: numbers "%.6g" (whole numbers in full), null as
 * "-", text as is, a missing member (i < 0) as "". */
void cli_fmt_cell(const struct plat_json *d, int i, char *out, size_t cap);

/* Like cli_fmt_cell, but an integer is epoch ms shown as RFC 3339 UTC. */
void cli_fmt_time_cell(const struct plat_json *d, int i, char *out, size_t cap);

/* An integer token (a whole number within +/-9.2e18 also counts). */
bool cli_json_int(const struct plat_json *d, int i, int64_t *out);

/* Adds one cell; on failure frees the table and sets *t to NULL, so a
 * sequence of calls ends in one cli_table_emit check. */
void cli_cell(struct table **t, const char *text);

/* Prints a table to stdout (or reports why it could not); exit code. */
int cli_table_emit(struct table *t);

/* ---- flat key/value output (cmd_status.c) ---- */

/* Prints a JSON document as aligned "dotted.key  value" lines, one per
 * leaf (raw text; {} and [] for empty containers). */
void cli_print_flat(const struct plat_json *doc, FILE *out);
/* `edgelambda status` for a person: problems first, then a line per part
 * (status_summary.c). */
void cli_print_status_summary(const struct plat_json *doc, FILE *out);

#endif
