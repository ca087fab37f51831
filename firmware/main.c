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
                 "  -h, --help          this text\n"
                 "  -V, --version       print the version\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"set", required_argument, NULL, 's'},
                                         {"check-config", no_argument, NULL, 'k'},
                                         {"help-config", no_argument, NULL, 'H'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {NULL, 0, NULL, 0}};
    const char *path = NULL;
    const char *overrides[MAX_OVERRIDES];
    int n_overrides = 0, c;
    bool check_only = false;
    char err[512];
    struct el_config *cfg;

    /* First thing: a SIGTERM during start-up (journal replay, speed rebuild)
     * stays pending and becomes a clean stop once the loop runs. */
    core_block_signals();
    while ((c = getopt_long(argc, argv, "c:s:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c': path = optarg; break;
        case 's':
            if (n_overrides == MAX_OVERRIDES) {
                fprintf(stderr, "edgelambdad: too many --set options\n");
                return 1;
            }
            overrides[n_overrides++] = optarg;
            break;
        case 'k': check_only = true; break;
        case 'H': config_print_help(stdout); return 0;
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

    cfg = malloc(sizeof *cfg);
    if (!cfg) {
        fprintf(stderr, "edgelambdad: out of memory\n");
        return 1;
    }
    config_defaults(cfg);
    if (!path && access(EL_CONFIG_DEFAULT_PATH, F_OK) == 0)
        path = EL_CONFIG_DEFAULT_PATH;
    if (path && config_load_file(cfg, path, err, sizeof err) != EL_OK)
        goto bad_config;
    for (int i = 0; i < n_overrides; i++)
        if (config_set(cfg, overrides[i], err, sizeof err) != EL_OK)
            goto bad_config;
    if (config_finish(cfg, err, sizeof err) != EL_OK)
        goto bad_config;
    if (check_only) {
        printf("%s: configuration is valid\n", path ? path : "built-in defaults");
        free(cfg);
        return 0;
    }

    plat_log_set_level((enum plat_log_level)cfg->log.level);
    plat_clock_set_sync_mode((enum plat_clock_sync_mode)cfg->clock.synced);
    if (!path)
        log_info("no %s: running on built-in defaults", EL_CONFIG_DEFAULT_PATH);
    el_status st = core_run(cfg);
    free(cfg);
    return st == EL_OK ? 0 : 1;

bad_config:
    fprintf(stderr, "edgelambdad: %s\n", err);
    free(cfg);
    return 1;
}
