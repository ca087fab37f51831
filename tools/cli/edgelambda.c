/*
 * edgelambda — the command-line client of edgelambdad (SPEC §9).
 *
 *   edgelambda [--uri URI] [--prefix PREFIX] <command> [options]
 *
 * Purpose: talk to the daemon through the same MQTT API as any other client
 * (status now; query, series, last, recompute, sync later) and generate
 * load (loadgen.c). It never opens the daemon's files.
 *
 * Design: main() parses the global options (stopping at the first non-option,
 * the command name), then dispatches through cli_commands[], a table of
 * {name, function, one-line help}; adding a command is one row plus its
 * function. Every command parses its own options with getopt_long (and also
 * accepts --uri/--prefix after its name), prints its usage on --help, and
 * returns an exit code: 0 ok, 1 failure, 2 usage error.
 * `status` subscribes to the retained <prefix>/status topic with Paho
 * MQTTAsync, waits (bounded) for one message and prints it as aligned
 * "dotted.key  value" lines (JSON flattened with jsmn, no allocation per
 * token beyond one token array) or raw with --json.
 *
 * Threading: main thread, plus Paho's threads inside a command; the status
 * command hands the payload from Paho's callback thread to main under a
 * mutex, copied into memory main frees.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <MQTTAsync.h>

#define JSMN_STATIC
#define JSMN_STRICT
#include <jsmn.h>

#include "cli.h"

/* ------------------------------------------------------------------ */
/* Shared helpers (declared in cli.h)                                  */

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

static void bad_number(const char *what, const char *text)
{
    fprintf(stderr, "edgelambda: bad %s: '%s'\n", what, text);
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

/* ------------------------------------------------------------------ */
/* status                                                              */

#define STATUS_MAX_PAYLOAD (1024 * 1024)
#define STATUS_TOPIC_MAX 512
#define STATUS_PATH_MAX 512

/* Shared between main and Paho's callback thread; guarded by mu. */
struct status_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    MQTTAsync client;
    const char *topic;
    bool done;     /* payload arrived or error set */
    char *payload; /* malloc'ed copy, NUL-terminated; main frees */
    size_t payload_len;
    char error[256]; /* non-empty on connect/subscribe failure */
};

static void status_finish_error(struct status_wait *sw, const char *what, int code,
                                const char *message)
{
    pthread_mutex_lock(&sw->mu);
    if (!sw->done) {
        snprintf(sw->error, sizeof sw->error, "%s failed: %s (code %d)", what,
                 message ? message : MQTTAsync_strerror(code), code);
        sw->done = true;
        pthread_cond_signal(&sw->cv);
    }
    pthread_mutex_unlock(&sw->mu);
}

static void status_on_subscribe_failure(void *context, MQTTAsync_failureData *response)
{
    status_finish_error(context, "subscribe", response ? response->code : MQTTASYNC_FAILURE,
                        response ? response->message : NULL);
}

static void status_on_subscribe(void *context, MQTTAsync_successData *response)
{
    struct status_wait *sw = context;

    /* MQTT 3.1.1 reports a refused subscription as granted QoS 0x80. */
    if (response != NULL && response->alt.qos == 0x80)
        status_finish_error(sw, "subscribe", 0x80, "refused by the broker");
}

static void status_on_connect_failure(void *context, MQTTAsync_failureData *response)
{
    status_finish_error(context, "connect", response ? response->code : MQTTASYNC_FAILURE,
                        response ? response->message : NULL);
}

static void status_on_connect(void *context, MQTTAsync_successData *response)
{
    struct status_wait *sw = context;
    MQTTAsync_responseOptions ropts = MQTTAsync_responseOptions_initializer;
    int rc;

    (void)response;
    ropts.onSuccess = status_on_subscribe;
    ropts.onFailure = status_on_subscribe_failure;
    ropts.context = sw;
    rc = MQTTAsync_subscribe(sw->client, sw->topic, 1, &ropts);
    if (rc != MQTTASYNC_SUCCESS)
        status_finish_error(sw, "subscribe", rc, NULL);
}

static int status_on_message(void *context, char *topic, int topic_len, MQTTAsync_message *msg)
{
    struct status_wait *sw = context;
    size_t len = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;

    (void)topic_len;
    pthread_mutex_lock(&sw->mu);
    if (!sw->done) {
        if (len > STATUS_MAX_PAYLOAD) {
            snprintf(sw->error, sizeof sw->error, "status payload too large (%zu bytes)", len);
        } else {
            sw->payload = malloc(len + 1);
            if (sw->payload == NULL) {
                snprintf(sw->error, sizeof sw->error, "out of memory");
            } else {
                if (len > 0)
                    memcpy(sw->payload, msg->payload, len);
                sw->payload[len] = '\0';
                sw->payload_len = len;
            }
        }
        sw->done = true;
        pthread_cond_signal(&sw->cv);
    }
    pthread_mutex_unlock(&sw->mu);
    MQTTAsync_freeMessage(&msg);
    MQTTAsync_free(topic);
    return 1;
}

static void status_on_connection_lost(void *context, char *cause)
{
    status_finish_error(context, "connection", MQTTASYNC_DISCONNECTED,
                        cause ? cause : "connection lost");
}

/* Waits until done or the monotonic deadline; returns done. */
static bool status_wait_done(struct status_wait *sw, const struct timespec *deadline)
{
    bool done;

    pthread_mutex_lock(&sw->mu);
    while (!sw->done) {
        if (pthread_cond_timedwait(&sw->cv, &sw->mu, deadline) == ETIMEDOUT)
            break;
    }
    done = sw->done;
    pthread_mutex_unlock(&sw->mu);
    return done;
}

/* JSON flattening: walks the token tree; with out == NULL it only measures
 * the widest key into *width. Returns the index after the subtree. */
static int json_walk(const char *js, const jsmntok_t *toks, int count, int idx, char *path,
                     size_t path_len, int *width, FILE *out);

static void json_emit(const char *js, const jsmntok_t *tok, const char *path, int *width, FILE *out)
{
    int len = (int)strlen(path);
    const char *text = js + tok->start;
    int text_len = tok->end - tok->start;

    if (out == NULL) {
        if (len > *width)
            *width = len;
        return;
    }
    if (tok->type == JSMN_OBJECT)
        fprintf(out, "%-*s  {}\n", *width, path);
    else if (tok->type == JSMN_ARRAY)
        fprintf(out, "%-*s  []\n", *width, path);
    else
        fprintf(out, "%-*s  %.*s\n", *width, path, text_len, text);
}

static int json_walk_children(const char *js, const jsmntok_t *toks, int count, int idx, char *path,
                              size_t path_len, int *width, FILE *out)
{
    const jsmntok_t *parent = &toks[idx];
    int next = idx + 1;

    for (int child = 0; child < parent->size && next < count; child++) {
        size_t cap = STATUS_PATH_MAX - path_len;
        int added;

        if (parent->type == JSMN_OBJECT) {
            const jsmntok_t *key = &toks[next];
            added = snprintf(path + path_len, cap, "%s%.*s", path_len ? "." : "",
                             key->end - key->start, js + key->start);
            next++;
        } else {
            added = snprintf(path + path_len, cap, "[%d]", child);
        }
        if (added < 0 || (size_t)added >= cap)
            added = (int)(cap - 1); /* keep the truncated key: display only */
        next = json_walk(js, toks, count, next, path, path_len + (size_t)added, width, out);
        path[path_len] = '\0';
    }
    return next;
}

static int json_walk(const char *js, const jsmntok_t *toks, int count, int idx, char *path,
                     size_t path_len, int *width, FILE *out)
{
    const jsmntok_t *tok;

    if (idx >= count)
        return count;
    tok = &toks[idx];
    if ((tok->type == JSMN_OBJECT || tok->type == JSMN_ARRAY) && tok->size > 0)
        return json_walk_children(js, toks, count, idx, path, path_len, width, out);
    json_emit(js, tok, path_len ? path : "value", width, out);
    return idx + 1;
}

/* Prints payload as aligned key/value lines; false if it is not JSON. */
static bool status_print_pretty(const char *payload, size_t len, FILE *out)
{
    jsmn_parser parser;
    jsmntok_t *toks;
    int count;
    int width = 0;
    char path[STATUS_PATH_MAX];

    jsmn_init(&parser);
    count = jsmn_parse(&parser, payload, len, NULL, 0);
    if (count <= 0)
        return false;
    toks = calloc((size_t)count, sizeof *toks);
    if (toks == NULL)
        return false;
    jsmn_init(&parser);
    if (jsmn_parse(&parser, payload, len, toks, (unsigned int)count) != count) {
        free(toks);
        return false;
    }
    path[0] = '\0';
    (void)json_walk(payload, toks, count, 0, path, 0, &width, NULL);
    (void)json_walk(payload, toks, count, 0, path, 0, &width, out);
    free(toks);
    return true;
}

static void status_usage(FILE *out)
{
    fprintf(out, "usage: edgelambda [global options] status [--json] [--timeout SECONDS]\n"
                 "\n"
                 "Prints the daemon's retained status (<prefix>/status).\n"
                 "\n"
                 "  --json             print the raw JSON instead of key/value lines\n"
                 "  --timeout SECONDS  wait at most this long for the status (default 5)\n"
                 "  --uri URI          broker (default $EDGELAMBDA_URI or " CLI_DEFAULT_URI ")\n"
                 "  --prefix PREFIX    daemon topic prefix (default " CLI_DEFAULT_PREFIX ")\n"
                 "  -h, --help         this help\n"
                 "\n"
                 "Exit status: 0 printed, 1 nothing arrived in time or the broker failed,\n"
                 "2 usage error.\n");
}

static int status_parse(struct cli_global *global, int argc, char **argv, bool *json,
                        double *timeout_s)
{
    enum { OPT_JSON = CLI_OPT_FIRST_PRIVATE, OPT_TIMEOUT };
    static const struct option longopts[] = {
        {"json", no_argument, NULL, OPT_JSON},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"uri", required_argument, NULL, CLI_OPT_URI},
        {"prefix", required_argument, NULL, CLI_OPT_PREFIX},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;

    optind = 0;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (cli_common_option(global, opt, optarg))
            continue;
        switch (opt) {
        case OPT_JSON: *json = true; break;
        case OPT_TIMEOUT:
            if (!cli_parse_double(optarg, "--timeout", 0.001, 86400.0, timeout_s))
                return CLI_EXIT_USAGE;
            break;
        case 'h': status_usage(stdout); return -1;
        default: status_usage(stderr); return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "edgelambda status: unexpected argument '%s'\n", argv[optind]);
        return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}

static struct timespec deadline_after(double seconds)
{
    struct timespec ts;
    double whole = floor(seconds);

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)whole;
    ts.tv_nsec += (long)((seconds - whole) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* Connects, subscribes and waits; on success sw->payload is set. */
static int status_fetch(const struct cli_global *global, struct status_wait *sw, double timeout_s)
{
    MQTTAsync_connectOptions copts = MQTTAsync_connectOptions_initializer;
    MQTTAsync_disconnectOptions dopts = MQTTAsync_disconnectOptions_initializer;
    struct timespec deadline = deadline_after(timeout_s);
    char client_id[64];
    int rc;
    int result = CLI_EXIT_FAIL;

    snprintf(client_id, sizeof client_id, "edgelambda-cli-%ld", (long)getpid());
    rc = MQTTAsync_create(&sw->client, global->uri, client_id, MQTTCLIENT_PERSISTENCE_NONE, NULL);
    if (rc != MQTTASYNC_SUCCESS) {
        fprintf(stderr, "edgelambda: bad broker URI '%s': %s\n", global->uri,
                MQTTAsync_strerror(rc));
        return CLI_EXIT_USAGE;
    }
    rc = MQTTAsync_setCallbacks(sw->client, sw, status_on_connection_lost, status_on_message, NULL);
    if (rc != MQTTASYNC_SUCCESS)
        goto out;
    copts.MQTTVersion = MQTTVERSION_3_1_1;
    copts.cleansession = 1;
    copts.keepAliveInterval = 30;
    copts.connectTimeout = (int)ceil(timeout_s);
    copts.onSuccess = status_on_connect;
    copts.onFailure = status_on_connect_failure;
    copts.context = sw;
    rc = MQTTAsync_connect(sw->client, &copts);
    if (rc != MQTTASYNC_SUCCESS) {
        fprintf(stderr, "edgelambda: cannot connect to %s: %s\n", global->uri,
                MQTTAsync_strerror(rc));
        goto out;
    }
    if (!status_wait_done(sw, &deadline)) {
        fprintf(stderr,
                "edgelambda: no status on '%s' from %s within %g s "
                "(is edgelambdad running with this --prefix?)\n",
                sw->topic, global->uri, timeout_s);
        goto out;
    }
    pthread_mutex_lock(&sw->mu);
    if (sw->error[0] != '\0')
        fprintf(stderr, "edgelambda: %s: %s\n", global->uri, sw->error);
    else
        result = CLI_EXIT_OK;
    pthread_mutex_unlock(&sw->mu);
out:
    if (MQTTAsync_isConnected(sw->client)) {
        dopts.timeout = 1000;
        (void)MQTTAsync_disconnect(sw->client, &dopts);
    }
    MQTTAsync_destroy(&sw->client);
    return result;
}

static int cmd_status(struct cli_global *global, int argc, char **argv)
{
    struct status_wait sw;
    pthread_condattr_t cattr;
    char topic[STATUS_TOPIC_MAX];
    bool json = false;
    double timeout_s = 5.0;
    int rc = status_parse(global, argc, argv, &json, &timeout_s);

    if (rc != CLI_EXIT_OK)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if ((size_t)snprintf(topic, sizeof topic, "%s/status", global->prefix) >= sizeof topic) {
        fprintf(stderr, "edgelambda: --prefix too long\n");
        return CLI_EXIT_USAGE;
    }
    memset(&sw, 0, sizeof sw);
    sw.topic = topic;
    pthread_mutex_init(&sw.mu, NULL);
    pthread_condattr_init(&cattr);
    pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
    pthread_cond_init(&sw.cv, &cattr);
    pthread_condattr_destroy(&cattr);

    rc = status_fetch(global, &sw, timeout_s);
    if (rc == CLI_EXIT_OK) {
        if (json || !status_print_pretty(sw.payload, sw.payload_len, stdout))
            printf("%s\n", sw.payload);
        if (fflush(stdout) != 0)
            rc = CLI_EXIT_FAIL;
    }
    free(sw.payload);
    pthread_cond_destroy(&sw.cv);
    pthread_mutex_destroy(&sw.mu);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Dispatcher                                                          */

struct cli_command {
    const char *name;
    cli_command_fn fn;
    const char *help; /* one line */
};

static int cmd_help(struct cli_global *global, int argc, char **argv);

static const struct cli_command cli_commands[] = {
    {"status", cmd_status, "print the daemon's status (retained <prefix>/status)"},
    {"loadgen", cli_loadgen, "publish a deterministic synthetic sensor stream"},
    {"help", cmd_help, "show help for a command: edgelambda help <command>"},
};

#define CLI_NCOMMANDS (sizeof cli_commands / sizeof cli_commands[0])

static void usage(FILE *out)
{
    fprintf(out, "usage: edgelambda [--uri URI] [--prefix PREFIX] <command> [options]\n"
                 "       edgelambda --help | --version | <command> --help\n"
                 "\n"
                 "Global options:\n"
                 "  --uri URI        broker (default $EDGELAMBDA_URI or " CLI_DEFAULT_URI ")\n"
                 "  --prefix PREFIX  daemon topic prefix (default " CLI_DEFAULT_PREFIX ")\n"
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
    static const struct option longopts[] = {
        {"uri", required_argument, NULL, CLI_OPT_URI},
        {"prefix", required_argument, NULL, CLI_OPT_PREFIX},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    struct cli_global global;
    const struct cli_command *cmd;
    const char *env_uri = getenv("EDGELAMBDA_URI");
    int opt;

    global.uri = (env_uri != NULL && env_uri[0] != '\0') ? env_uri : CLI_DEFAULT_URI;
    global.prefix = CLI_DEFAULT_PREFIX;

    /* "+": stop at the command name; its options belong to the command. */
    while ((opt = getopt_long(argc, argv, "+hV", longopts, NULL)) != -1) {
        if (cli_common_option(&global, opt, optarg))
            continue;
        switch (opt) {
        case 'h': usage(stdout); return CLI_EXIT_OK;
        case 'V': printf("edgelambda %s\n", EL_VERSION); return CLI_EXIT_OK;
        default: usage(stderr); return CLI_EXIT_USAGE;
        }
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
