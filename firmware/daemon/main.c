/*
 * edgelambdad — the daemon's entry point: command line, configuration,
 * then core_run. Everything else lives in the modules.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "config_files.h"
#include "core.h"
#include "plat_clock.h"
#include "plat_log.h"

#define MAX_OVERRIDES 64

static void usage(FILE *out)
{
    fprintf(out, "usage: edgelambdad [-c FILE] [--set SECTION.KEY=VALUE]... [--check-config]\n"
                 "\n"
                 "  -c, --config FILE   configuration file (default " EL_CONFIG_DEFAULT_PATH ";\n"
                 "                      built-in defaults when that file does not exist)\n"
                 "  -s, --set S.K=V     override one key, e.g. --set storage.dir=./var\n"
                 "      --check-config  validate the configuration and exit (0 valid, 1 not)\n"
                 "      --help-config   print every key with its default and meaning\n"
                 "                      (--help-config=man: as the edgelambda.conf(5) page)\n"
                 "  -h, --help          this text\n"
                 "  -V, --version       print the version\n");
}

struct args {
    const char *path;
    const char *overrides[MAX_OVERRIDES];
    int n_overrides;
    bool check_only;
};

/* --help-config[=man]; returns the exit status. */
static int help_config(const char *format)
{
    if (format == NULL) {
        config_print_help(stdout);
    } else if (strcmp(format, "man") == 0) {
        config_print_man(stdout);
    } else {
        fprintf(stderr, "edgelambdad: --help-config takes no value or 'man'; got '%s'\n", format);
        return 1;
    }
    return fflush(stdout) == 0 ? 0 : 1;
}

/* Parses the command line; returns -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, struct args *a)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"set", required_argument, NULL, 's'},
                                         {"check-config", no_argument, NULL, 'k'},
                                         {"help-config", optional_argument, NULL, 'H'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "c:s:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c': a->path = optarg; break;
        case 's':
            if (a->n_overrides == MAX_OVERRIDES) {
                fprintf(stderr, "edgelambdad: too many --set options\n");
                return 1;
            }
            a->overrides[a->n_overrides++] = optarg;
            break;
        case 'k': a->check_only = true; break;
        case 'H': return help_config(optarg);
        case 'h': usage(stdout); return 0;
        case 'V': printf("edgelambdad %s\n", EL_VERSION); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "edgelambdad: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 1;
    }
    return -1;
}

/* Defaults, then the file (the default path only if it exists), then the
 * --set overrides, then the cross-key checks. */
static el_status load_config(struct args *a, struct el_config *cfg, char *err, size_t errlen)
{
    config_defaults(cfg);
    if (!a->path && access(EL_CONFIG_DEFAULT_PATH, F_OK) == 0)
        a->path = EL_CONFIG_DEFAULT_PATH;
    if (a->path && config_load_file(cfg, a->path, err, errlen) != EL_OK)
        return EL_INVAL;
    for (int i = 0; i < a->n_overrides; i++)
        if (config_set(cfg, a->overrides[i], err, errlen) != EL_OK)
            return EL_INVAL;
    return config_finish(cfg, err, errlen);
}

/* SIGHUP (core.h): the same file and --set overrides as at start. */
static el_status reload_config(void *ctx, struct el_config *out, char *err, size_t errlen)
{
    return load_config(ctx, out, err, errlen);
}

int main(int argc, char **argv)
{
    struct args a = {NULL, {NULL}, 0, false};
    char err[512];

    /* First thing: a SIGTERM during start-up (journal replay, speed rebuild)
     * stays pending and becomes a clean stop once the loop runs. */
    core_block_signals();
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0)
        return rc;
    struct el_config *cfg = malloc(sizeof *cfg);
    if (!cfg) {
        fprintf(stderr, "edgelambdad: out of memory\n");
        return 1;
    }
    if (load_config(&a, cfg, err, sizeof err) != EL_OK) {
        fprintf(stderr, "edgelambdad: %s\n", err);
        free(cfg);
        return 1;
    }
    if (a.check_only && config_check_files(cfg, err, sizeof err) != EL_OK) {
        fprintf(stderr, "edgelambdad: %s: %s\n", a.path ? a.path : "built-in defaults", err);
        free(cfg);
        return 1;
    }
    if (a.check_only) {
        printf("%s: configuration is valid\n", a.path ? a.path : "built-in defaults");
        free(cfg);
        return 0;
    }
    plat_log_set_level((enum plat_log_level)cfg->log.level);
    plat_clock_set_sync_mode((enum plat_clock_sync_mode)cfg->clock.synced);
    if (!a.path)
        log_info("no %s: running on built-in defaults", EL_CONFIG_DEFAULT_PATH);
    struct core_reload reload = {reload_config, &a};
    el_status st = core_run(cfg, &reload);
    free(cfg);
    return st == EL_OK ? 0 : 1;
}
