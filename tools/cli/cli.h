/*
 * cli — shared declarations of the `edgelambda` command-line client.
 *
 * Design: edgelambda.c owns main(), the global options and a table of
 * commands ({name, function, one-line help}); each command lives in its own
 * function (here or in its own file, e.g. loadgen.c) and parses its own
 * options with getopt_long over the argv slice that starts at its name.
 * Commands return a process exit code: 0 success, 1 run-time failure,
 * 2 usage error (CLI_EXIT_*).
 *
 * Threading: main thread only (commands may start their own threads, e.g.
 * Paho's, and must join/destroy them before returning).
 * Ownership: struct cli_global's strings are borrowed from argv/environ and
 * live for the whole process.
 */
#ifndef EL_CLI_H
#define EL_CLI_H

#include <stdbool.h>
#include <stdint.h>

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

#define CLI_DEFAULT_URI "tcp://127.0.0.1:1883"
#define CLI_DEFAULT_PREFIX "edgelambda"

/* Options common to every command (given before or after the command name). */
struct cli_global {
    const char *uri;    /* broker URI (--uri, $EDGELAMBDA_URI, CLI_DEFAULT_URI) */
    const char *prefix; /* topic prefix of the daemon's API (--prefix) */
};

/* A command: argv[0] is the command's name, options follow. */
typedef int (*cli_command_fn)(struct cli_global *global, int argc, char **argv);

/* Long-option ids shared by every command's getopt_long table. */
enum { CLI_OPT_URI = 0x1000, CLI_OPT_PREFIX, CLI_OPT_FIRST_PRIVATE };

/* Handles CLI_OPT_URI / CLI_OPT_PREFIX; returns false for other options. */
bool cli_common_option(struct cli_global *global, int opt, const char *arg);

/* Strict decimal parsers: the whole text must be a number within
 * [min, max]; on failure they print "edgelambda: bad <what>: '<text>'" to
 * stderr and return false (*out untouched). */
bool cli_parse_u64(const char *text, const char *what, uint64_t min, uint64_t max, uint64_t *out);
bool cli_parse_i64(const char *text, const char *what, int64_t min, int64_t max, int64_t *out);
bool cli_parse_double(const char *text, const char *what, double min, double max, double *out);

/* Commands implemented outside edgelambda.c. */
int cli_loadgen(struct cli_global *global, int argc, char **argv);

#endif
