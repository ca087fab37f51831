/*
 * cli_ask — what the request/response commands share (see cli.h): their
 * common options, asking edgelambdad over MQTT v5 (cli_rr_open: response
 * topic + correlation data, one connection per command, bounded by
 * --timeout), checking the answer, and turning its values into table cells.
 *
 * Design: the answer is parsed once (plat_json: one token array, allocated
 * to the size plat_json_count gives) and read through token indices. Cell
 * text: numbers "%.6g" (whole numbers in full), times RFC 3339 UTC with
 * milliseconds only when not zero (plat_time), strings unescaped with
 * control characters shown as '?', everything cut to CLI_CELL_MAX - 1
 * bytes.
 *
 * Threading: main thread (Paho's threads live inside struct cli_rr).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "plat_time.h"

/* Handles the shared options: 1 handled, 0 not one of them, -1 bad value. */
static int ask_option(struct cli_global *global, struct cli_ask_opts *o, int opt, const char *arg)
{
    if (cli_common_option(global, opt, arg))
        return 1;
    if (opt == CLI_OPT_JSON) {
        o->json = true;
        return 1;
    }
    if (opt == CLI_OPT_TIMEOUT)
        return cli_parse_double(arg, "--timeout", 0.001, 86400.0, &o->timeout_s) ? 1 : -1;
    return 0;
}

int cli_ask_getopt(struct cli_global *global, struct cli_ask_opts *o, int argc, char **argv,
                   const char *shortopts, const struct option *longopts)
{
    int opt, handled;

    while ((opt = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        handled = ask_option(global, o, opt, optarg);
        if (handled < 0)
            return CLI_OPT_BAD;
        if (handled == 0)
            return opt;
    }
    return -1;
}

/* ------------------------------------------------------------------ */
/* Parsed answers                                                      */

bool cli_doc_parse(struct cli_doc *d, const char *text, size_t len)
{
    size_t count;

    d->tok = NULL;
    if (plat_json_count(text, len, &count) != EL_OK)
        return false;
    d->tok = calloc(count, sizeof *d->tok);
    if (d->tok == NULL || plat_json_parse(&d->json, text, len, d->tok, count) != EL_OK) {
        cli_doc_free(d);
        return false;
    }
    return true;
}

void cli_doc_free(struct cli_doc *d)
{
    free(d->tok);
    d->tok = NULL;
}

size_t cli_json_text(const struct plat_json *d, int i, char *out, size_t cap)
{
    size_t n = 0, raw_len;
    const char *raw = plat_json_raw(d, i, &raw_len);

    if (cap == 0)
        return 0;
    out[0] = '\0';
    if (raw == NULL)
        return 0;
    if (plat_json_type(d, i) == PLAT_JSON_STRING) {
        if (plat_json_string(d, i, out, cap, &n) != EL_OK) {
            /* cut to fit: display text only */
        }
    } else {
        n = raw_len < cap - 1 ? raw_len : cap - 1;
        memcpy(out, raw, n);
        out[n] = '\0';
    }
    for (size_t k = 0; k < n; k++) {
        if ((unsigned char)out[k] < 0x20)
            out[k] = '?';
    }
    return n;
}

bool cli_json_int(const struct plat_json *d, int i, int64_t *out)
{
    double v;

    if (plat_json_int64(d, i, out) == EL_OK)
        return true;
    if (plat_json_double(d, i, &v) != EL_OK || !(v >= -9.2e18 && v <= 9.2e18))
        return false;
    *out = (int64_t)v;
    return true;
}

/* Counts and other whole numbers in full; the rest with 6 significant
 * digits (a sensor reading rarely has more). */
static void fmt_number(double v, char *out, size_t cap)
{
    if (!isfinite(v))
        snprintf(out, cap, "-");
    else if (v == floor(v) && fabs(v) < 1e15)
        snprintf(out, cap, "%.0f", v == 0 ? 0.0 : v);
    else
        snprintf(out, cap, "%.6g", v);
}

void cli_fmt_cell(const struct plat_json *d, int i, char *out, size_t cap)
{
    double v;

    if (i < 0)
        snprintf(out, cap, "%s", "");
    else if (plat_json_eq(d, i, "null"))
        snprintf(out, cap, "-");
    else if (plat_json_double(d, i, &v) == EL_OK)
        fmt_number(v, out, cap);
    else
        (void)cli_json_text(d, i, out, cap);
}

void cli_fmt_time_cell(const struct plat_json *d, int i, char *out, size_t cap)
{
    int64_t ms;

    if (!cli_json_int(d, i, &ms))
        cli_fmt_cell(d, i, out, cap);
    else if (plat_time_format_rfc3339(ms, PLAT_TIME_MS_NONZERO, out, cap) == 0)
        snprintf(out, cap, "%lld", (long long)ms);
}

/* ------------------------------------------------------------------ */
/* Tables                                                              */

int cli_table_emit(struct table *t)
{
    if (t == NULL) {
        fprintf(stderr, "edgelambda: out of memory\n");
        return CLI_EXIT_FAIL;
    }
    return table_print(t, stdout) == EL_OK ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

void cli_cell(struct table **t, const char *text)
{
    if (*t != NULL && table_add(*t, text) != EL_OK) {
        table_free(*t);
        *t = NULL;
    }
}

/* ------------------------------------------------------------------ */
/* Asking                                                              */

/* Connects (unless rr is already), sends request to <prefix>/<suffix> and
 * waits for the answer; *reply points into rr's client. Returns an exit
 * code, messages printed. */
static int ask(const struct cli_global *global, const char *cmd, const char *suffix,
               const struct jw *request, double timeout_s, struct cli_rr *rr, const char **reply,
               size_t *reply_len)
{
    char topic[CLI_RR_TOPIC_MAX + 64];
    el_status st;

    if ((size_t)snprintf(topic, sizeof topic, "%s/%s", global->prefix, suffix) >= sizeof topic) {
        fprintf(stderr, "edgelambda %s: --prefix too long\n", cmd);
        return CLI_EXIT_USAGE;
    }
    if (rr->client == NULL) {
        st = cli_rr_open(rr, global->uri, global->prefix, timeout_s);
        if (st != EL_OK)
            return st == EL_INVAL ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
        st = mqtt_client_connect(rr->client, timeout_s);
        if (st != EL_OK) {
            fprintf(stderr, "edgelambda %s: cannot use the broker at %s: %s\n", cmd, global->uri,
                    mqtt_client_error(rr->client));
            return CLI_EXIT_FAIL;
        }
    }
    st = mqtt_client_request(rr->client, topic, request->buf, jw_len(request), 0, timeout_s, reply,
                             reply_len);
    if (st == EL_AGAIN) {
        fprintf(stderr,
                "edgelambda %s: no answer on '%s' from %s within %g s "
                "(is edgelambdad running with this --prefix?)\n",
                cmd, topic, global->uri, timeout_s);
        return CLI_EXIT_FAIL;
    }
    if (st != EL_OK) {
        fprintf(stderr, "edgelambda %s: %s: %s\n", cmd, global->uri, mqtt_client_error(rr->client));
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

/* Parses the answer; prints it raw with --json; reports an error answer on
 * stderr. On CLI_EXIT_OK, d holds the parsed answer (caller frees). */
static int answer_check(const char *cmd, const char *reply, size_t reply_len, bool json,
                        const char *retry_code, struct cli_doc *d)
{
    char message[CLI_CELL_MAX], code[64];
    const struct plat_json *a = &d->json;
    int err;

    if (json) {
        printf("%s\n", reply);
        if (fflush(stdout) != 0)
            return CLI_EXIT_FAIL;
    }
    if (!cli_doc_parse(d, reply, reply_len) || plat_json_type(a, 0) != PLAT_JSON_OBJECT) {
        fprintf(stderr, "edgelambda %s: the answer is not a JSON object: %.200s\n", cmd, reply);
        return CLI_EXIT_FAIL;
    }
    if (plat_json_eq(a, plat_json_member(a, 0, "ok"), "true"))
        return CLI_EXIT_OK;
    err = plat_json_member(a, 0, "error");
    (void)cli_json_text(a, plat_json_member(a, err, "message"), message, sizeof message);
    (void)cli_json_text(a, plat_json_member(a, err, "code"), code, sizeof code);
    if (retry_code && strcmp(code, retry_code) == 0)
        return CLI_ASK_RETRY;
    fprintf(stderr, "edgelambda %s: %s%s%s%s\n", cmd, message[0] ? message : "request failed",
            code[0] ? " (" : "", code, code[0] ? ")" : "");
    return CLI_EXIT_FAIL;
}

int cli_ask_and_print(const struct cli_global *global, const char *cmd, const char *suffix,
                      const struct jw *request, const struct cli_ask_opts *o,
                      cli_answer_print_fn print, const void *ctx)
{
    struct cli_rr rr = {0};
    int rc = cli_ask_and_print_on(&rr, global, cmd, suffix, request, o, print, ctx);
    cli_rr_close(&rr);
    return rc;
}

int cli_ask_and_print_on(struct cli_rr *rr, const struct cli_global *global, const char *cmd,
                         const char *suffix, const struct jw *request, const struct cli_ask_opts *o,
                         cli_answer_print_fn print, const void *ctx)
{
    struct cli_doc d = {0};
    const char *reply = NULL;
    size_t reply_len = 0;
    int rc;

    if (!jw_ok(request)) {
        fprintf(stderr, "edgelambda %s: request longer than %d bytes\n", cmd, CLI_ASK_REQUEST_MAX);
        return CLI_EXIT_USAGE;
    }
    rc = ask(global, cmd, suffix, request, o->timeout_s, rr, &reply, &reply_len);
    if (rc == CLI_EXIT_OK)
        rc = answer_check(cmd, reply, reply_len, o->json, o->retry_code, &d);
    if (rc == CLI_EXIT_OK && !o->json) {
        rc = print(&d.json, ctx);
        if (fflush(stdout) != 0)
            rc = CLI_EXIT_FAIL;
    }
    cli_doc_free(&d);
    return rc;
}

int cli_ask_run(struct cli_global *global, int argc, char **argv, const struct cli_ask_command *cmd,
                void *args, struct cli_ask_opts *ask)
{
    char buf[CLI_ASK_REQUEST_MAX];
    struct jw w;
    int rc;

    ask->timeout_s = CLI_ASK_DEFAULT_TIMEOUT_S;
    rc = cmd->parse(global, argc, argv, args);
    if (rc != CLI_EXIT_OK)
        return rc < 0 ? CLI_EXIT_OK : rc;
    cli_jw_request_begin(&w, buf, sizeof buf, cmd->op);
    cmd->request(args, &w);
    jw_obj_end(&w);
    return cli_ask_and_print(global, cmd->name, cmd->suffix, &w, ask, cmd->print, args);
}
