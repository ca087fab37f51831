/*
 * cli_common — what the `edgelambda` CLI shares with the perf tools
 * (tools/perf): strict number parsing for options, building a request's
 * JSON object, and the request/response client that asks edgelambdad a
 * question (docs/SPEC.md §7).
 *
 * Design: the parsers accept the whole text or nothing, within [min, max],
 * and print "<program>: bad <what>: '<text>'" on stderr when they refuse
 * (cli_program names the program; "edgelambda" unless a tool sets it first
 * thing in main). cli_rr_open sets up an MQTT v5 client (mqtt_client.h)
 * with a reply topic of its own, "<prefix>/reply/<client id>/<n>" (client
 * id "elcli-<pid>-<random hex>", n counts the clients of this process), TCP_NODELAY and
 * clean start; requests go out at QoS 0, like mosquitto_rr's default: the
 * broker is local and a lost request ends in the caller's timeout. Requests
 * are written with the bounded JSON writer (plat_jsonw); the cli_jw_opt_*
 * helpers add a member only when the option was given, so a command's
 * request lists just what its user set and the daemon applies its defaults.
 *
 * Threading: main thread. Ownership: struct cli_rr owns its client, its
 * client id and reply topic (the client borrows them); uri and prefix are
 * borrowed and must outlive it.
 */
#ifndef EL_CLI_COMMON_H
#define EL_CLI_COMMON_H

#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>

#include "el_status.h"
#include "mqtt_client.h"
#include "plat_jsonw.h"

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

#define CLI_DEFAULT_URI "tcp://127.0.0.1:1883"
#define CLI_DEFAULT_PREFIX "edgelambda"

/* Reply topics up to this many bytes (edgelambdad accepts up to 256). */
#define CLI_RR_TOPIC_MAX 256

/* The program name in messages; set once in main. */
extern const char *cli_program;

/* Strict decimal parsers: the whole text must be a number within
 * [min, max]; on failure they print "<program>: bad <what>: '<text>'" to
 * stderr and return false (*out untouched). */
bool cli_parse_u64(const char *text, const char *what, uint64_t min, uint64_t max, uint64_t *out);
bool cli_parse_i64(const char *text, const char *what, int64_t min, int64_t max, int64_t *out);
bool cli_parse_double(const char *text, const char *what, double min, double max, double *out);

struct option;
/* The perf tools' option loop: getopt_long over argv with longopts; -h and
 * --help print usage(stdout) and give -1; every other option goes to
 * option(ctx, opt, arg), false meaning a bad one (2). 0 when all were taken;
 * optind is then the first operand. */
int cli_getopt_each(int argc, char **argv, const struct option *longopts, void (*usage)(FILE *out),
                    bool (*option)(void *ctx, int opt, const char *arg), void *ctx);

/* ---- building a request ({"op": ..., options}) ---- */

/* jw_init(w, buf, len) and opens the request object; op (borrowed), when
 * not NULL, becomes its first member "op". Close it with jw_obj_end. */
void cli_jw_request_begin(struct jw *w, char *buf, size_t len, const char *op);

/* Adds "key": value when value is not NULL (an option not given is left
 * out; "" is sent as given). */
void cli_jw_opt_str(struct jw *w, const char *key, const char *value);

/* Adds "key": value when value is not 0 (0: not given). */
void cli_jw_opt_uint(struct jw *w, const char *key, uint64_t value);

/* Writes a time option's value: up to 18 digits are epoch ms (a JSON
 * number), anything else ("now", "-1h", RFC 3339) is sent as text for the
 * daemon to parse. */
void cli_jw_time_value(struct jw *w, const char *text);

/* Adds "key": cli_jw_time_value(text) when text is not NULL. */
void cli_jw_opt_time(struct jw *w, const char *key, const char *text);

/* ---- MQTT clients ---- */

/* Broker credentials and TLS files for every client cli_client_opts sets
 * up from now on (the CLI's --username, --password-file and --cafile):
 * username and ca_file are borrowed for the life of the process (argv or
 * environ); the password is read once from password_file, which must not be
 * readable by others (plat_file_read_secret). Each may be NULL or "" (not
 * set). On failure *why says what. */
EL_MUST_CHECK el_status cli_set_auth(const char *username, const char *password_file,
                                     const char *ca_file, char *why, size_t cap);

/* Sets *o to what every client of the CLI and the perf tools starts from:
 * broker uri and client_id (both borrowed), version, clean start, a 30 s
 * keep-alive and connect_timeout_s, the credentials of cli_set_auth;
 * everything else zero. */
void cli_client_opts(struct mqtt_client_opts *o, const char *uri, const char *client_id,
                     enum mqtt_client_version version, int connect_timeout_s);

/* Makes o subscribe to filter at qos through *sub (borrowed, like filter)
 * and report messages and connection changes to the callbacks with ctx. */
void cli_client_subscribe(struct mqtt_client_opts *o, struct mqtt_client_sub *sub,
                          const char *filter, int qos,
                          void (*on_message)(void *ctx, const struct mqtt_client_in *msg),
                          void (*on_connection)(void *ctx, bool up, const char *cause), void *ctx);

/* Creates *client from o (borrowed) and connects it within timeout_s.
 * CLI_EXIT_OK; CLI_EXIT_USAGE when the client cannot be made ("<program>:
 * bad URI '<uri>': <why>"), CLI_EXIT_FAIL when it does not connect
 * ("<program>: <error>"), both on stderr. */
int cli_client_start(const struct mqtt_client_opts *o, struct mqtt_client **client,
                     double timeout_s);

/* A request/response client and the storage its options point at. */
struct cli_rr {
    struct mqtt_client_opts opts;
    char client_id[MQTT_CLIENT_ID_MAX];
    char reply_topic[CLI_RR_TOPIC_MAX + 1];
    struct mqtt_client *client;
};

/* Creates rr->client for broker uri, replies under prefix; connect_timeout_s
 * bounds Paho's TCP/MQTT connect. Nothing is sent until mqtt_client_connect.
 * EL_INVAL (a URI Paho refuses, a prefix too long for a reply topic or with
 * wildcards) and EL_NOMEM are printed to stderr; rr->client is NULL then. */
EL_MUST_CHECK el_status cli_rr_open(struct cli_rr *rr, const char *uri, const char *prefix,
                                    double connect_timeout_s);

/* Frees rr->client (disconnecting, bounded to 1 s); safe after a failed open. */
void cli_rr_close(struct cli_rr *rr);

#endif
