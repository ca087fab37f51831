/*
 * cmd_metrics — `edgelambda metrics`: prints the daemon's status in the
 * Prometheus text exposition format (version 0.0.4), e.g. for
 * `promtool check metrics`, a scrape by hand, or a cron job writing a
 * node_exporter textfile on another host.
 *
 * Design: asks {"op":"metrics"} on <prefix>/query through cli_ask_and_print
 * (as query, series and last do) and prints the answer's "text" member as
 * it is; --json prints the raw answer. The conversion from
 * the status document is the daemon's (firmware/daemon/metrics.h), not
 * repeated here: one implementation, which always follows the running
 * daemon's own status schema whatever the CLI's version.
 *
 * Threading: main thread.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void metrics_usage(FILE *out)
{
    fprintf(out, "usage: edgelambda [global options] metrics [--json]\n"
                 "\n"
                 "Prints edgelambdad's status as Prometheus text (format 0.0.4), asked\n"
                 "with {\"op\":\"metrics\"} on <prefix>/query.\n"
                 "\n" CLI_ASK_USAGE_OPTIONS CLI_ASK_USAGE_EXIT);
}

/* The answer's "text", escapes decoded, as it is. */
static int metrics_print(const struct plat_json *answer, const void *ctx)
{
    int t = plat_json_member(answer, 0, "text");
    size_t raw_len, len;
    (void)ctx;
    if (plat_json_type(answer, t) != PLAT_JSON_STRING) {
        fprintf(stderr, "edgelambda metrics: the answer has no \"text\"\n");
        return CLI_EXIT_FAIL;
    }
    (void)plat_json_raw(answer, t, &raw_len);
    char *text = malloc(raw_len + 1); /* decoding never lengthens a string */
    if (!text || plat_json_string(answer, t, text, raw_len + 1, &len) != EL_OK) {
        fprintf(stderr, "edgelambda metrics: cannot read the answer's text\n");
        free(text);
        return CLI_EXIT_FAIL;
    }
    fwrite(text, 1, len, stdout);
    free(text);
    return CLI_EXIT_OK;
}

int cli_metrics(struct cli_global *global, int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_ASK_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    struct cli_ask_opts o = {.json = false, .timeout_s = CLI_ASK_DEFAULT_TIMEOUT_S};
    char buf[64];
    struct jw w;
    int opt;

    optind = 0;
    while ((opt = cli_ask_getopt(global, &o, argc, argv, "h", longopts)) != -1) {
        switch (opt) {
        case CLI_OPT_BAD: return CLI_EXIT_USAGE;
        case 'h': metrics_usage(stdout); return CLI_EXIT_OK;
        default: metrics_usage(stderr); return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "edgelambda metrics: unexpected argument '%s'\n", argv[optind]);
        metrics_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    jw_init(&w, buf, sizeof buf);
    jw_obj_begin(&w);
    jw_key(&w, "op");
    jw_str(&w, "metrics");
    jw_obj_end(&w);
    return cli_ask_and_print(global, "metrics", "query", &w, &o, metrics_print, NULL);
}
