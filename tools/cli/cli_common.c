/*
 * cli_common — option parsing, request building and the request/response
 * client shared by the CLI and the perf tools (design in cli_common.h).
 */
#include "cli_common.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plat_file.h"

const char *cli_program = "edgelambda";

static atomic_uint cli_rr_clients;

static void bad_number(const char *what, const char *text)
{
    fprintf(stderr, "%s: bad %s: '%s'\n", cli_program, what, text);
}

bool cli_parse_u64(const char *text, const char *what, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end = NULL;
    unsigned long long parsed;

    /* strtoull accepts "-1" (wrapping it): refuse signs explicitly. */
    if (text == NULL || text[0] < '0' || text[0] > '9') {
        bad_number(what, text ? text : "");
        return false;
    }
    errno = 0;
    parsed = strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || parsed < min || parsed > max) {
        bad_number(what, text);
        return false;
    }
    *out = (uint64_t)parsed;
    return true;
}

bool cli_parse_i64(const char *text, const char *what, int64_t min, int64_t max, int64_t *out)
{
    char *end = NULL;
    long long parsed;

    if (text == NULL || text[0] == '\0') {
        bad_number(what, "");
        return false;
    }
    errno = 0;
    parsed = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || parsed < min || parsed > max) {
        bad_number(what, text);
        return false;
    }
    *out = (int64_t)parsed;
    return true;
}

bool cli_parse_double(const char *text, const char *what, double min, double max, double *out)
{
    char *end = NULL;
    double parsed;

    if (text == NULL || text[0] == '\0') {
        bad_number(what, "");
        return false;
    }
    errno = 0;
    parsed = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !isfinite(parsed) || parsed < min ||
        parsed > max) {
        bad_number(what, text);
        return false;
    }
    *out = parsed;
    return true;
}

/* The process's broker credentials (cli_set_auth); main thread only. */
static struct {
    const char *username;
    char password[256];
    bool has_password;
    struct mqtt_client_tls tls;
    bool has_tls;
} cli_auth;

el_status cli_set_auth(const char *username, const char *password_file, const char *ca_file,
                       char *why, size_t cap)
{
    cli_auth.username = username && username[0] ? username : NULL;
    cli_auth.has_password = false;
    if (password_file && password_file[0]) {
        el_status st =
            plat_file_read_secret(password_file, cli_auth.password, sizeof cli_auth.password);
        if (st != EL_OK) {
            snprintf(why, cap, "cannot use password file %s: %s", password_file,
                     st == EL_INVAL ? "others may read it (chmod 600)" : "cannot be read");
            return st;
        }
        cli_auth.has_password = true;
    }
    cli_auth.has_tls = ca_file && ca_file[0];
    cli_auth.tls =
        (struct mqtt_client_tls){.ca_file = cli_auth.has_tls ? ca_file : NULL, .verify = true};
    return EL_OK;
}

void cli_client_opts(struct mqtt_client_opts *o, const char *uri, const char *client_id,
                     enum mqtt_client_version version, int connect_timeout_s)
{
    *o = (struct mqtt_client_opts){
        .uri = uri,
        .client_id = client_id,
        .version = version,
        .clean_start = true,
        .keepalive_s = 30,
        .connect_timeout_s = connect_timeout_s,
        .username = cli_auth.username,
        .password = cli_auth.has_password ? cli_auth.password : NULL,
        .tls = cli_auth.has_tls ? &cli_auth.tls : NULL,
    };
}

void cli_client_subscribe(struct mqtt_client_opts *o, struct mqtt_client_sub *sub,
                          const char *filter, int qos,
                          void (*on_message)(void *ctx, const struct mqtt_client_in *msg),
                          void (*on_connection)(void *ctx, bool up, const char *cause), void *ctx)
{
    *sub = (struct mqtt_client_sub){.filter = filter, .qos = qos};
    o->subs = sub;
    o->n_subs = 1;
    o->on_message = on_message;
    o->on_connection = on_connection;
    o->ctx = ctx;
}

int cli_client_start(const struct mqtt_client_opts *o, struct mqtt_client **client,
                     double timeout_s)
{
    char why[MQTT_CLIENT_ERROR_MAX];

    if (mqtt_client_new(o, client, why, sizeof why) != EL_OK) {
        fprintf(stderr, "%s: bad URI '%s': %s\n", cli_program, o->uri, why);
        return CLI_EXIT_USAGE;
    }
    if (mqtt_client_connect(*client, timeout_s) != EL_OK) {
        fprintf(stderr, "%s: %s\n", cli_program, mqtt_client_error(*client));
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

el_status cli_rr_open(struct cli_rr *rr, const char *uri, const char *prefix,
                      double connect_timeout_s)
{
    unsigned int n = atomic_fetch_add(&cli_rr_clients, 1) + 1;
    char why[MQTT_CLIENT_ERROR_MAX];
    el_status st;
    int len;

    memset(rr, 0, sizeof *rr);
    (void)mqtt_client_make_id("elcli", rr->client_id, sizeof rr->client_id);
    len = snprintf(rr->reply_topic, sizeof rr->reply_topic, "%s/reply/%s/%u", prefix, rr->client_id,
                   n);
    if (len < 0 || (size_t)len >= sizeof rr->reply_topic || strpbrk(prefix, "+#") != NULL) {
        fprintf(stderr, "%s: prefix '%s' is too long or has wildcards\n", cli_program, prefix);
        return EL_INVAL;
    }
    cli_client_opts(&rr->opts, uri, rr->client_id, MQTT_CLIENT_V5, (int)ceil(connect_timeout_s));
    rr->opts.tcp_nodelay = true;
    rr->opts.reply_topic = rr->reply_topic;
    st = mqtt_client_new(&rr->opts, &rr->client, why, sizeof why);
    if (st == EL_INVAL)
        fprintf(stderr, "%s: bad broker URI '%s': %s\n", cli_program, uri, why);
    else if (st != EL_OK)
        fprintf(stderr, "%s: %s\n", cli_program, why);
    return st;
}

void cli_rr_close(struct cli_rr *rr)
{
    mqtt_client_free(rr->client);
    rr->client = NULL;
}

void cli_jw_request_begin(struct jw *w, char *buf, size_t len, const char *op)
{
    jw_init(w, buf, len);
    jw_obj_begin(w);
    cli_jw_opt_str(w, "op", op);
}

void cli_jw_opt_str(struct jw *w, const char *key, const char *value)
{
    if (value == NULL)
        return;
    jw_key(w, key);
    jw_str(w, value);
}

void cli_jw_opt_uint(struct jw *w, const char *key, uint64_t value)
{
    if (value == 0)
        return;
    jw_key(w, key);
    jw_uint(w, value);
}

void cli_jw_time_value(struct jw *w, const char *text)
{
    bool digits = text[0] != '\0' && strlen(text) < 19;

    for (const char *p = text; *p && digits; p++)
        digits = *p >= '0' && *p <= '9';
    /* As an integer, not raw text: "007" is not a JSON number. */
    if (digits)
        jw_int(w, strtoll(text, NULL, 10));
    else
        jw_str(w, text);
}

void cli_jw_opt_time(struct jw *w, const char *key, const char *text)
{
    if (text == NULL)
        return;
    jw_key(w, key);
    cli_jw_time_value(w, text);
}

int cli_getopt_each(int argc, char **argv, const struct option *longopts, void (*usage)(FILE *out),
                    bool (*option)(void *ctx, int opt, const char *arg), void *ctx)
{
    int opt;

    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (opt == 'h') {
            usage(stdout);
            return -1;
        }
        if (!option(ctx, opt, optarg))
            return 2;
    }
    return 0;
}
