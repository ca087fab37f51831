/*
 * edgelambda — the command-line client of edgelambdad (SPEC §9).
 *
 *   edgelambda [--uri URI] [--prefix PREFIX] <command> [options]
 *
 * Purpose: talk to the daemon through the same MQTT API as any other client
 * (SPEC §7: query, series, last and status on <prefix>/query, recompute and
 * sync on <prefix>/command, the retained <prefix>/status) and generate load
 * (loadgen.c). It never opens the daemon's files.
 *
 * Design: main() parses the global options (stopping at the first non-option,
 * the command name), then dispatches through cli_commands[], a table of
 * {name, function, one-line help}; adding a command is one row plus its
 * function (a NULL help hides a command from the list: bench-rr, used by
 * tools/bench). Every command parses its own options with getopt_long (and
 * also accepts --uri/--prefix after its name), prints its usage on --help,
 * and returns an exit code: 0 ok, 1 failure, 2 usage error.
 * `status` subscribes to the retained <prefix>/status topic with Paho
 * MQTTAsync, waits (bounded) for one message and prints it as aligned
 * "dotted.key  value" lines (JSON flattened with jsmn, no allocation per
 * token beyond one token array) or raw with --json.
 * The request/response commands build their request with the bounded JSON
 * writer (plat_jsonw; at most ASK_REQUEST_MAX bytes, the daemon's limit),
 * ask over MQTT v5 (rr.c: response topic + correlation data, one connection
 * per command, bounded by --timeout), then either print the raw answer
 * (--json) or parse it once into a jsmn token array and print aligned tables
 * (table.c): numbers "%.6g" (whole numbers in full), times RFC 3339 UTC. An
 * error answer {"ok":false,"error":{code,message}} is reported on stderr
 * with exit 1 (with --json the raw answer is printed too); no answer in time
 * is exit 1 with a message naming the topic.
 *
 * Threading: main thread, plus Paho's threads inside a command; the status
 * command hands the payload from Paho's callback thread to main under a
 * mutex, copied into memory main frees; rr.c copies answers into a buffer
 * of its own under its mutex.
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
#include "plat_clock.h"
#include "plat_jsonw.h"
#include "rr.h"
#include "table.h"

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
/* Reading answers: a jsmn token array over the reply text             */

/* A parsed JSON document: tokens in document order over js (borrowed). */
struct jdoc {
    const char *js;
    jsmntok_t *t; /* malloc'ed; jdoc_free */
    int n;
};

static bool jdoc_parse(struct jdoc *d, const char *js, size_t len)
{
    jsmn_parser parser;
    int count;

    d->js = js;
    d->t = NULL;
    d->n = 0;
    jsmn_init(&parser);
    count = jsmn_parse(&parser, js, len, NULL, 0);
    if (count <= 0)
        return false;
    d->t = calloc((size_t)count, sizeof *d->t);
    if (d->t == NULL)
        return false;
    jsmn_init(&parser);
    if (jsmn_parse(&parser, js, len, d->t, (unsigned int)count) != count ||
        d->t[0].type != JSMN_OBJECT) {
        free(d->t);
        d->t = NULL;
        return false;
    }
    d->n = count;
    return true;
}

static void jdoc_free(struct jdoc *d)
{
    free(d->t);
    d->t = NULL;
    d->n = 0;
}

/* Index just past token i and all its children (tokens nest by offset). */
static int jd_skip(const struct jdoc *d, int i)
{
    int end = d->t[i].end;
    int j = i + 1;

    while (j < d->n && d->t[j].start < end)
        j++;
    return j;
}

static bool jd_eq(const struct jdoc *d, int i, const char *s)
{
    size_t n = strlen(s);

    return i >= 0 && i < d->n && (size_t)(d->t[i].end - d->t[i].start) == n &&
           memcmp(d->js + d->t[i].start, s, n) == 0;
}

/* The value of member key of object obj, or -1. */
static int jd_member(const struct jdoc *d, int obj, const char *key)
{
    int i;

    if (obj < 0 || obj >= d->n || d->t[obj].type != JSMN_OBJECT)
        return -1;
    i = obj + 1;
    for (int m = 0; m < d->t[obj].size && i + 1 < d->n; m++) {
        if (d->t[i].type == JSMN_STRING && jd_eq(d, i, key))
            return i + 1;
        i = jd_skip(d, i + 1);
    }
    return -1;
}

static bool jd_is_array(const struct jdoc *d, int i)
{
    return i >= 0 && i < d->n && d->t[i].type == JSMN_ARRAY;
}

static bool jd_number(const struct jdoc *d, int i, double *out)
{
    char buf[64];
    char *end = NULL;
    int len;

    if (i < 0 || i >= d->n || d->t[i].type != JSMN_PRIMITIVE)
        return false;
    len = d->t[i].end - d->t[i].start;
    if (len <= 0 || (size_t)len >= sizeof buf)
        return false;
    memcpy(buf, d->js + d->t[i].start, (size_t)len);
    buf[len] = '\0';
    if (buf[0] != '-' && (buf[0] < '0' || buf[0] > '9'))
        return false;
    *out = strtod(buf, &end);
    return end != buf && *end == '\0';
}

static bool jd_int(const struct jdoc *d, int i, int64_t *out)
{
    double v;

    if (!jd_number(d, i, &v) || !(v >= -9.2e18 && v <= 9.2e18))
        return false;
    *out = (int64_t)v;
    return true;
}

static int hex_value(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Reads the 4 hex digits at s (end bounds them); -1 if malformed. */
static long hex4(const char *s, const char *end)
{
    long v = 0;

    if (end - s < 4)
        return -1;
    for (int k = 0; k < 4; k++) {
        int h = hex_value(s[k]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

/* Appends code point cp as UTF-8 if it fits; returns the new length. */
static size_t put_utf8(char *out, size_t n, size_t cap, unsigned long cp)
{
    unsigned char b[4];
    size_t k;

    if (cp < 0x80) {
        b[0] = (unsigned char)cp;
        k = 1;
    } else if (cp < 0x800) {
        b[0] = (unsigned char)(0xC0 | (cp >> 6));
        b[1] = (unsigned char)(0x80 | (cp & 0x3F));
        k = 2;
    } else if (cp < 0x10000) {
        b[0] = (unsigned char)(0xE0 | (cp >> 12));
        b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (unsigned char)(0x80 | (cp & 0x3F));
        k = 3;
    } else {
        b[0] = (unsigned char)(0xF0 | (cp >> 18));
        b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (unsigned char)(0x80 | (cp & 0x3F));
        k = 4;
    }
    if (n + k >= cap)
        return n;
    memcpy(out + n, b, k);
    return n + k;
}

/* Decodes the \-escape at *ps (just past the backslash) into out. */
static size_t unescape_one(const char **ps, const char *end, char *out, size_t n, size_t cap)
{
    const char *s = *ps;
    char esc = *s++;
    unsigned long cp;
    long lo;

    switch (esc) {
    case 'n': cp = '\n'; break;
    case 't': cp = '\t'; break;
    case 'r': cp = '\r'; break;
    case 'b': cp = '\b'; break;
    case 'f': cp = '\f'; break;
    case 'u':
        lo = hex4(s, end);
        cp = lo < 0 ? 0xFFFD : (unsigned long)lo;
        s += lo < 0 ? 0 : 4;
        if (cp >= 0xD800 && cp < 0xDC00 && end - s >= 6 && s[0] == '\\' && s[1] == 'u') {
            lo = hex4(s + 2, end);
            if (lo >= 0xDC00 && lo < 0xE000) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + ((unsigned long)lo - 0xDC00);
                s += 6;
            }
        }
        if (cp >= 0xD800 && cp < 0xE000)
            cp = 0xFFFD;
        break;
    default: cp = (unsigned char)esc; break; /* \" \\ \/ */
    }
    *ps = s;
    return put_utf8(out, n, cap, cp);
}

/* Copies token i as display text (strings unescaped, control characters
 * shown as '?', cut to cap - 1 bytes); returns its length. */
static size_t jd_text(const struct jdoc *d, int i, char *out, size_t cap)
{
    const char *s, *end;
    size_t n = 0;

    if (cap == 0)
        return 0;
    out[0] = '\0';
    if (i < 0 || i >= d->n)
        return 0;
    s = d->js + d->t[i].start;
    end = d->js + d->t[i].end;
    while (s < end && n + 1 < cap) {
        if (*s == '\\' && d->t[i].type == JSMN_STRING && s + 1 < end) {
            s++;
            n = unescape_one(&s, end, out, n, cap);
        } else {
            out[n++] = *s++;
        }
    }
    out[n] = '\0';
    for (size_t k = 0; k < n; k++) {
        if ((unsigned char)out[k] < 0x20)
            out[k] = '?';
    }
    return n;
}

/* ------------------------------------------------------------------ */
/* Formatting cells                                                    */

#define CELL_MAX 320

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

/* Epoch ms as RFC 3339 UTC ("2026-01-01T00:00:00Z", ".123" when needed). */
static void fmt_time_ms(int64_t ms, char *out, size_t cap)
{
    int64_t sec = ms / 1000;
    int64_t frac = ms % 1000;
    time_t t;
    struct tm tm;
    char base[40];

    if (frac < 0) {
        frac += 1000;
        sec--;
    }
    t = (time_t)sec;
    if (gmtime_r(&t, &tm) == NULL || strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
        snprintf(out, cap, "%lld", (long long)ms);
        return;
    }
    if (frac != 0)
        snprintf(out, cap, "%s.%03dZ", base, (int)frac);
    else
        snprintf(out, cap, "%sZ", base);
}

/* A value token as a table cell: numbers formatted, null as "-", text
 * as is, a missing member as "". */
static void fmt_cell(const struct jdoc *d, int i, char *out, size_t cap)
{
    double v;

    if (i < 0)
        snprintf(out, cap, "%s", "");
    else if (jd_eq(d, i, "null"))
        snprintf(out, cap, "-");
    else if (jd_number(d, i, &v))
        fmt_number(v, out, cap);
    else
        (void)jd_text(d, i, out, cap);
}

static void fmt_time_cell(const struct jdoc *d, int i, char *out, size_t cap)
{
    int64_t ms;

    if (jd_int(d, i, &ms))
        fmt_time_ms(ms, out, cap);
    else
        fmt_cell(d, i, out, cap);
}

/* ------------------------------------------------------------------ */
/* Asking the daemon (MQTT v5 request/response, rr.c)                  */

#define ASK_REQUEST_MAX 16384 /* edgelambdad's request limit (INGEST_REQ_MAX) */
#define ASK_DEFAULT_TIMEOUT_S 10.0

/* Options every request/response command shares. */
struct ask_opts {
    bool json;
    double timeout_s;
};

enum {
    OPT_JSON = CLI_OPT_FIRST_PRIVATE,
    OPT_TIMEOUT,
    OPT_MATCH,
    OPT_FROM,
    OPT_TO,
    OPT_STEP,
    OPT_AGG,
    OPT_FULL,
    OPT_RETRY_PARKED,
    OPT_TOPIC,
    OPT_ECHO_TOPIC,
    OPT_REQUEST,
    OPT_COUNT,
    OPT_WARMUP,
};

#define ASK_LONGOPTS                                                                               \
    {"json", no_argument, NULL, OPT_JSON}, {"timeout", required_argument, NULL, OPT_TIMEOUT},      \
        {"uri", required_argument, NULL, CLI_OPT_URI},                                             \
        {"prefix", required_argument, NULL, CLI_OPT_PREFIX},                                       \
    {                                                                                              \
        "help", no_argument, NULL, 'h'                                                             \
    }

#define ASK_USAGE_OPTIONS                                                                          \
    "  --json             print the daemon's raw JSON answer\n"                                    \
    "  --timeout SECONDS  wait at most this long for the answer (default 10)\n"                    \
    "  --uri URI          broker (default $EDGELAMBDA_URI or " CLI_DEFAULT_URI ")\n"               \
    "  --prefix PREFIX    daemon topic prefix (default " CLI_DEFAULT_PREFIX ")\n"                  \
    "  -h, --help         this help\n"

#define ASK_USAGE_EXIT                                                                             \
    "\nExit status: 0 answered, 1 error answer, no answer in time or broker failure,\n"            \
    "2 usage error.\n"

/* Handles the shared options: 1 handled, 0 not one of them, -1 bad value. */
static int ask_option(struct cli_global *global, struct ask_opts *o, int opt, const char *arg)
{
    if (cli_common_option(global, opt, arg))
        return 1;
    if (opt == OPT_JSON) {
        o->json = true;
        return 1;
    }
    if (opt == OPT_TIMEOUT)
        return cli_parse_double(arg, "--timeout", 0.001, 86400.0, &o->timeout_s) ? 1 : -1;
    return 0;
}

/* Connects, sends request to <prefix>/<suffix> and waits for the answer.
 * *rr is set (or NULL) in every case and the caller rr_frees it; *reply
 * points into it. Returns an exit code, messages printed. */
static int ask(const struct cli_global *global, const char *cmd, const char *suffix,
               const char *request, size_t request_len, double timeout_s, struct rr_client **rr,
               const char **reply, size_t *reply_len)
{
    char topic[RR_TOPIC_MAX + 64];
    el_status st;

    *rr = NULL;
    if ((size_t)snprintf(topic, sizeof topic, "%s/%s", global->prefix, suffix) >= sizeof topic) {
        fprintf(stderr, "edgelambda %s: --prefix too long\n", cmd);
        return CLI_EXIT_USAGE;
    }
    st = rr_new(global->uri, global->prefix, rr);
    if (st != EL_OK)
        return st == EL_INVAL ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
    st = rr_connect(*rr, timeout_s);
    if (st != EL_OK) {
        fprintf(stderr, "edgelambda %s: cannot use the broker at %s: %s\n", cmd, global->uri,
                rr_error(*rr));
        return CLI_EXIT_FAIL;
    }
    st = rr_request(*rr, topic, request, request_len, timeout_s, reply, reply_len);
    if (st == EL_AGAIN) {
        fprintf(stderr,
                "edgelambda %s: no answer on '%s' from %s within %g s "
                "(is edgelambdad running with this --prefix?)\n",
                cmd, topic, global->uri, timeout_s);
        return CLI_EXIT_FAIL;
    }
    if (st != EL_OK) {
        fprintf(stderr, "edgelambda %s: %s: %s\n", cmd, global->uri, rr_error(*rr));
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

/* Parses the answer; prints it raw with --json; reports an error answer
 * ({"ok":false,"error":{...}}) on stderr. Returns an exit code; on
 * CLI_EXIT_OK without --json, d holds the parsed answer (caller frees). */
static int answer_check(const char *cmd, const char *reply, size_t reply_len, bool json,
                        struct jdoc *d)
{
    char message[CELL_MAX], code[64];
    int err;

    if (json) {
        printf("%s\n", reply);
        if (fflush(stdout) != 0)
            return CLI_EXIT_FAIL;
    }
    if (!jdoc_parse(d, reply, reply_len)) {
        fprintf(stderr, "edgelambda %s: the answer is not a JSON object: %.200s\n", cmd, reply);
        return CLI_EXIT_FAIL;
    }
    if (jd_eq(d, jd_member(d, 0, "ok"), "true"))
        return CLI_EXIT_OK;
    err = jd_member(d, 0, "error");
    (void)jd_text(d, jd_member(d, err, "message"), message, sizeof message);
    (void)jd_text(d, jd_member(d, err, "code"), code, sizeof code);
    fprintf(stderr, "edgelambda %s: %s%s%s%s\n", cmd, message[0] ? message : "request failed",
            code[0] ? " (" : "", code, code[0] ? ")" : "");
    jdoc_free(d);
    return CLI_EXIT_FAIL;
}

/* Common tail: ask, check, and on success without --json call print. */
typedef int (*answer_print_fn)(const struct jdoc *d, const void *ctx);

static int ask_and_print(const struct cli_global *global, const char *cmd, const char *suffix,
                         const struct jw *request, const struct ask_opts *o, answer_print_fn print,
                         const void *ctx)
{
    struct rr_client *rr = NULL;
    struct jdoc d = {0};
    const char *reply = NULL;
    size_t reply_len = 0;
    int rc;

    if (!jw_ok(request)) {
        fprintf(stderr, "edgelambda %s: request longer than %d bytes\n", cmd, ASK_REQUEST_MAX);
        return CLI_EXIT_USAGE;
    }
    rc = ask(global, cmd, suffix, request->buf, jw_len(request), o->timeout_s, &rr, &reply,
             &reply_len);
    if (rc == CLI_EXIT_OK)
        rc = answer_check(cmd, reply, reply_len, o->json, &d);
    if (rc == CLI_EXIT_OK && !o->json) {
        rc = print(&d, ctx);
        if (fflush(stdout) != 0)
            rc = CLI_EXIT_FAIL;
    }
    jdoc_free(&d);
    rr_free(rr);
    return rc;
}

/* Prints a table (or reports why it could not). */
static int table_emit(struct table *t)
{
    if (t == NULL) {
        fprintf(stderr, "edgelambda: out of memory\n");
        return CLI_EXIT_FAIL;
    }
    return table_print(t, stdout) == EL_OK ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

/* Adds one cell; on failure frees the table and sets *t to NULL, so a
 * sequence of calls ends in one table_emit check. */
static void cell(struct table **t, const char *text)
{
    if (*t != NULL && table_add(*t, text) != EL_OK) {
        table_free(*t);
        *t = NULL;
    }
}

/* Writes a time option: digits are epoch ms (a JSON number), anything else
 * ("now", "-1h", RFC 3339) is sent as text for the daemon to parse. */
static void jw_time_value(struct jw *w, const char *text)
{
    bool digits = text[0] != '\0' && strlen(text) < 19;

    for (const char *p = text; *p && digits; p++)
        digits = *p >= '0' && *p <= '9';
    if (digits)
        jw_raw(w, text);
    else
        jw_str(w, text);
}

/* ------------------------------------------------------------------ */
/* query                                                               */

#define QUERY_AGG_MAX 16 /* edgelambdad's QUERY_MAX_AGGS */
#define QUERY_AGG_NAME_MAX 16

struct query_args {
    struct ask_opts ask;
    const char *series;
    bool match;
    const char *from, *to, *step;
    char aggs[QUERY_AGG_MAX][QUERY_AGG_NAME_MAX];
    size_t n_aggs;
    bool aggs_given;
};

static void query_usage(FILE *out)
{
    fprintf(out,
            "usage: edgelambda [global options] query SERIES [--match] [--from T] [--to T]\n"
            "                  [--step D] [--agg a,b,...] [--json] [--timeout SECONDS]\n"
            "\n"
            "Asks edgelambdad (<prefix>/query) for a range of a series, bucketed by --step,\n"
            "merged from the batch and speed layers, and prints one row per non-empty\n"
            "bucket: t (the bucket's start, RFC 3339 UTC) and one column per aggregate,\n"
            "then \"seq N \xc2\xb7 sources: speed S, batch B, log L\" (the answer is exact for\n"
            "the events with sequence <= N).\n"
            "\n"
            "  SERIES             series name, e.g. sensors/kitchen/temp; with --match an\n"
            "                     MQTT topic filter (sensors/+/temp, sensors/#): one table\n"
            "                     per matching series\n"
            "  --match            SERIES is a topic filter\n"
            "  --from T           start, inclusive (default -1h)\n"
            "  --to T             end, exclusive (default now)\n"
            "                     T: now, -90s, -1h, -7d, RFC 3339 (2026-01-01T00:00:00Z)\n"
            "                     or epoch milliseconds\n"
            "  --step D           bucket width, aligned to the epoch (default 1m):\n"
            "                     500ms, 10s, 1m, 1h, 1d, 1w or milliseconds\n"
            "  --agg LIST         comma-separated aggregates (default count,mean,min,max,last):\n"
            "                     count sum min max mean stddev last pNN (p50, p95, "
            "p99)\n" ASK_USAGE_OPTIONS ASK_USAGE_EXIT);
}

/* Splits the --agg list into args->aggs; false (message printed) if bad. */
static bool query_split_aggs(struct query_args *a, const char *list)
{
    const char *p = list;

    a->n_aggs = 0;
    a->aggs_given = true;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);

        while (n > 0 && *p == ' ') {
            p++;
            n--;
        }
        while (n > 0 && p[n - 1] == ' ')
            n--;
        if (n == 0 || n >= QUERY_AGG_NAME_MAX || a->n_aggs == QUERY_AGG_MAX) {
            fprintf(stderr, "edgelambda query: bad --agg '%s' (at most %d names like count,p95)\n",
                    list, QUERY_AGG_MAX);
            return false;
        }
        memcpy(a->aggs[a->n_aggs], p, n);
        a->aggs[a->n_aggs][n] = '\0';
        a->n_aggs++;
        if (comma == NULL)
            return true;
        p = comma + 1;
    }
}

/* Returns CLI_EXIT_OK, CLI_EXIT_USAGE, or -1 after --help. */
static int query_parse_args(struct cli_global *global, int argc, char **argv, struct query_args *a)
{
    static const struct option longopts[] = {
        {"match", no_argument, NULL, OPT_MATCH},
        {"from", required_argument, NULL, OPT_FROM},
        {"to", required_argument, NULL, OPT_TO},
        {"step", required_argument, NULL, OPT_STEP},
        {"agg", required_argument, NULL, OPT_AGG},
        ASK_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    static const char *const default_aggs[] = {"count", "mean", "min", "max", "last"};
    int opt, handled;

    for (size_t k = 0; k < 5; k++)
        snprintf(a->aggs[k], sizeof a->aggs[k], "%s", default_aggs[k]);
    a->n_aggs = 5;
    optind = 0;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        handled = ask_option(global, &a->ask, opt, optarg);
        if (handled < 0)
            return CLI_EXIT_USAGE;
        if (handled > 0)
            continue;
        switch (opt) {
        case OPT_MATCH: a->match = true; break;
        case OPT_FROM: a->from = optarg; break;
        case OPT_TO: a->to = optarg; break;
        case OPT_STEP: a->step = optarg; break;
        case OPT_AGG:
            if (!query_split_aggs(a, optarg))
                return CLI_EXIT_USAGE;
            break;
        case 'h': query_usage(stdout); return -1;
        default: query_usage(stderr); return CLI_EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "edgelambda query: %s\n",
                optind >= argc ? "give one SERIES (or a topic filter with --match)"
                               : "give exactly one SERIES");
        query_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    a->series = argv[optind];
    return CLI_EXIT_OK;
}

static void query_request(const struct query_args *a, struct jw *w)
{
    jw_obj_begin(w);
    jw_key(w, a->match ? "match" : "series");
    jw_str(w, a->series);
    if (a->from) {
        jw_key(w, "from");
        jw_time_value(w, a->from);
    }
    if (a->to) {
        jw_key(w, "to");
        jw_time_value(w, a->to);
    }
    if (a->step) {
        jw_key(w, "step");
        jw_time_value(w, a->step);
    }
    if (a->aggs_given) {
        jw_key(w, "agg");
        jw_arr_begin(w);
        for (size_t k = 0; k < a->n_aggs; k++)
            jw_str(w, a->aggs[k]);
        jw_arr_end(w);
    }
    jw_obj_end(w);
}

/* "seq N · sources: speed S, batch B, log L" for one series' answer. */
static void query_footer(const struct jdoc *d, int obj, int64_t seq)
{
    int src = jd_member(d, obj, "sources");
    char speed[CELL_MAX], batch[CELL_MAX], log_[CELL_MAX];

    fmt_cell(d, jd_member(d, src, "speed"), speed, sizeof speed);
    fmt_cell(d, jd_member(d, src, "batch"), batch, sizeof batch);
    fmt_cell(d, jd_member(d, src, "log"), log_, sizeof log_);
    printf("seq %lld \xc2\xb7 sources: speed %s, batch %s, log %s\n", (long long)seq,
           speed[0] ? speed : "0", batch[0] ? batch : "0", log_[0] ? log_ : "0");
}

/* One series' buckets as a table; obj holds "buckets" and "sources". */
static int query_print_series(const struct jdoc *d, int obj, const struct query_args *a,
                              int64_t seq)
{
    int buckets = jd_member(d, obj, "buckets");
    struct table *t = NULL;
    char text[CELL_MAX];
    int b, rc;

    if (table_new(a->n_aggs + 1, &t) != EL_OK)
        return table_emit(NULL);
    for (size_t k = 0; k < a->n_aggs; k++)
        table_align(t, k + 1, TABLE_RIGHT);
    cell(&t, "t");
    for (size_t k = 0; k < a->n_aggs; k++)
        cell(&t, a->aggs[k]);
    b = buckets + 1;
    for (int k = 0; jd_is_array(d, buckets) && k < d->t[buckets].size; k++) {
        fmt_time_cell(d, jd_member(d, b, "t"), text, sizeof text);
        cell(&t, text);
        for (size_t m = 0; m < a->n_aggs; m++) {
            fmt_cell(d, jd_member(d, b, a->aggs[m]), text, sizeof text);
            cell(&t, text);
        }
        b = jd_skip(d, b);
    }
    rc = table_emit(t);
    if (rc == CLI_EXIT_OK && (!jd_is_array(d, buckets) || d->t[buckets].size == 0))
        printf("(no data in the range)\n");
    if (rc == CLI_EXIT_OK)
        query_footer(d, obj, seq);
    table_free(t);
    return rc;
}

static int query_print(const struct jdoc *d, const void *ctx)
{
    const struct query_args *a = ctx;
    int list = jd_member(d, 0, "series");
    int64_t seq = 0;
    char name[CELL_MAX];
    int s, rc = CLI_EXIT_OK;

    (void)jd_int(d, jd_member(d, 0, "seq"), &seq);
    if (!a->match)
        return query_print_series(d, 0, a, seq);
    if (!jd_is_array(d, list) || d->t[list].size == 0) {
        printf("(no series match '%s')\n", a->series);
        return CLI_EXIT_OK;
    }
    s = list + 1;
    for (int k = 0; k < d->t[list].size && rc == CLI_EXIT_OK; k++) {
        (void)jd_text(d, jd_member(d, s, "series"), name, sizeof name);
        printf("%s%s\n", k > 0 ? "\n" : "", name);
        rc = query_print_series(d, s, a, seq);
        s = jd_skip(d, s);
    }
    return rc;
}

static int cmd_query(struct cli_global *global, int argc, char **argv)
{
    struct query_args a;
    char buf[ASK_REQUEST_MAX];
    struct jw w;
    int rc;

    memset(&a, 0, sizeof a);
    a.ask.timeout_s = ASK_DEFAULT_TIMEOUT_S;
    rc = query_parse_args(global, argc, argv, &a);
    if (rc != CLI_EXIT_OK)
        return rc < 0 ? CLI_EXIT_OK : rc;
    jw_init(&w, buf, sizeof buf);
    query_request(&a, &w);
    return ask_and_print(global, "query", "query", &w, &a.ask, query_print, &a);
}

/* ------------------------------------------------------------------ */
/* series and last                                                     */

struct list_args {
    struct ask_opts ask;
    const char *series; /* last: one series */
    const char *match;  /* topic filter */
    uint64_t n;         /* last: samples per series */
};

static void series_usage(FILE *out)
{
    fprintf(out,
            "usage: edgelambda [global options] series [--match FILTER] [--json]\n"
            "\n"
            "Lists the daemon's series ({\"op\":\"series\"} on <prefix>/query): name,\n"
            "event count, time and value of the newest event.\n"
            "\n"
            "  --match FILTER     only series matching this MQTT topic filter\n"
            "                     (sensors/+/temp, sensors/#)\n" ASK_USAGE_OPTIONS ASK_USAGE_EXIT);
}

static void last_usage(FILE *out)
{
    fprintf(out,
            "usage: edgelambda [global options] last [SERIES | --match FILTER] [-n N]\n"
            "                  [--json]\n"
            "\n"
            "Prints the newest raw samples ({\"op\":\"last\"} on <prefix>/query) of one\n"
            "series, of the series matching FILTER, or of every series: series, event\n"
            "time (RFC 3339 UTC), value and master-log sequence.\n"
            "\n"
            "  SERIES             one series name\n"
            "  --match FILTER     series matching this MQTT topic filter\n"
            "  -n N               samples per series, newest first (default 1)\n" ASK_USAGE_OPTIONS
                ASK_USAGE_EXIT);
}

/* Parses series/last options; returns CLI_EXIT_OK, CLI_EXIT_USAGE or -1. */
static int list_parse_args(struct cli_global *global, int argc, char **argv, bool is_last,
                           struct list_args *a)
{
    static const struct option longopts[] = {
        {"match", required_argument, NULL, OPT_MATCH},
        ASK_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    void (*usage_fn)(FILE *) = is_last ? last_usage : series_usage;
    const char *name = is_last ? "last" : "series";
    int opt, handled;

    optind = 0;
    while ((opt = getopt_long(argc, argv, is_last ? "hn:" : "h", longopts, NULL)) != -1) {
        handled = ask_option(global, &a->ask, opt, optarg);
        if (handled < 0)
            return CLI_EXIT_USAGE;
        if (handled > 0)
            continue;
        switch (opt) {
        case OPT_MATCH: a->match = optarg; break;
        case 'n':
            if (!cli_parse_u64(optarg, "-n", 1, 1000, &a->n))
                return CLI_EXIT_USAGE;
            break;
        case 'h': usage_fn(stdout); return -1;
        default: usage_fn(stderr); return CLI_EXIT_USAGE;
        }
    }
    if (is_last && optind < argc && a->match == NULL)
        a->series = argv[optind++];
    if (optind < argc) {
        fprintf(stderr, "edgelambda %s: unexpected argument '%s'\n", name, argv[optind]);
        usage_fn(stderr);
        return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}

static int series_print(const struct jdoc *d, const void *ctx)
{
    int list = jd_member(d, 0, "series");
    int n = jd_is_array(d, list) ? d->t[list].size : 0;
    struct table *t = NULL;
    char text[CELL_MAX];
    int64_t seq = 0;
    int s = list + 1, rc;

    (void)ctx;
    if (table_new(4, &t) != EL_OK)
        return table_emit(NULL);
    table_align(t, 1, TABLE_RIGHT);
    table_align(t, 3, TABLE_RIGHT);
    cell(&t, "series");
    cell(&t, "count");
    cell(&t, "last time");
    cell(&t, "last value");
    for (int k = 0; k < n; k++) {
        fmt_cell(d, jd_member(d, s, "series"), text, sizeof text);
        cell(&t, text);
        fmt_cell(d, jd_member(d, s, "count"), text, sizeof text);
        cell(&t, text);
        fmt_time_cell(d, jd_member(d, s, "last_t"), text, sizeof text);
        cell(&t, text);
        fmt_cell(d, jd_member(d, s, "last"), text, sizeof text);
        cell(&t, text);
        s = jd_skip(d, s);
    }
    rc = table_emit(t);
    table_free(t);
    (void)jd_int(d, jd_member(d, 0, "seq"), &seq);
    if (rc == CLI_EXIT_OK)
        printf("%d series \xc2\xb7 seq %lld\n", n, (long long)seq);
    return rc;
}

static int last_print(const struct jdoc *d, const void *ctx)
{
    const struct list_args *a = ctx;
    int list = jd_member(d, 0, "series");
    int n = jd_is_array(d, list) ? d->t[list].size : 0;
    struct table *t = NULL;
    char name[CELL_MAX], text[CELL_MAX];
    int64_t seq = 0;
    int s = list + 1, rc;

    if (a->series != NULL && n == 0) {
        fprintf(stderr, "edgelambda last: no series '%s'\n", a->series);
        return CLI_EXIT_FAIL;
    }
    if (table_new(4, &t) != EL_OK)
        return table_emit(NULL);
    table_align(t, 2, TABLE_RIGHT);
    table_align(t, 3, TABLE_RIGHT);
    cell(&t, "series");
    cell(&t, "t");
    cell(&t, "value");
    cell(&t, "seq");
    for (int k = 0; k < n; k++) {
        int samples = jd_member(d, s, "samples");
        int p = samples + 1;

        fmt_cell(d, jd_member(d, s, "series"), name, sizeof name);
        for (int m = 0; jd_is_array(d, samples) && m < d->t[samples].size; m++) {
            cell(&t, name);
            fmt_time_cell(d, jd_member(d, p, "t"), text, sizeof text);
            cell(&t, text);
            fmt_cell(d, jd_member(d, p, "value"), text, sizeof text);
            cell(&t, text);
            fmt_cell(d, jd_member(d, p, "seq"), text, sizeof text);
            cell(&t, text);
            p = jd_skip(d, p);
        }
        s = jd_skip(d, s);
    }
    rc = table_emit(t);
    table_free(t);
    (void)jd_int(d, jd_member(d, 0, "seq"), &seq);
    if (rc == CLI_EXIT_OK)
        printf("%d series \xc2\xb7 seq %lld\n", n, (long long)seq);
    return rc;
}

static int list_command(struct cli_global *global, int argc, char **argv, bool is_last)
{
    struct list_args a;
    char buf[ASK_REQUEST_MAX];
    struct jw w;
    int rc;

    memset(&a, 0, sizeof a);
    a.ask.timeout_s = ASK_DEFAULT_TIMEOUT_S;
    rc = list_parse_args(global, argc, argv, is_last, &a);
    if (rc != CLI_EXIT_OK)
        return rc < 0 ? CLI_EXIT_OK : rc;
    jw_init(&w, buf, sizeof buf);
    jw_obj_begin(&w);
    jw_key(&w, "op");
    jw_str(&w, is_last ? "last" : "series");
    if (a.match != NULL || a.series != NULL) {
        jw_key(&w, a.match != NULL ? "match" : "series");
        jw_str(&w, a.match != NULL ? a.match : a.series);
    }
    if (a.n > 0) {
        jw_key(&w, "n");
        jw_uint(&w, a.n);
    }
    jw_obj_end(&w);
    return ask_and_print(global, is_last ? "last" : "series", "query", &w, &a.ask,
                         is_last ? last_print : series_print, &a);
}

static int cmd_series(struct cli_global *global, int argc, char **argv)
{
    return list_command(global, argc, argv, false);
}

static int cmd_last(struct cli_global *global, int argc, char **argv)
{
    return list_command(global, argc, argv, true);
}

/* ------------------------------------------------------------------ */
/* recompute and sync (commands on <prefix>/command)                   */

static void recompute_usage(FILE *out)
{
    fprintf(out,
            "usage: edgelambda [global options] recompute [--full] [--json]\n"
            "\n"
            "Asks edgelambdad to recompute its batch views now\n"
            "({\"op\":\"recompute\"} on <prefix>/command) and prints its answer.\n"
            "\n"
            "  --full             rebuild every view from the whole master log\n"
            "                     (default: only what changed)\n" ASK_USAGE_OPTIONS ASK_USAGE_EXIT);
}

static void sync_usage(FILE *out)
{
    fprintf(out,
            "usage: edgelambda [global options] sync [--retry-parked] [--json]\n"
            "\n"
            "Asks edgelambdad to ship its master log upstream now\n"
            "({\"op\":\"sync\"} on <prefix>/command) and prints its answer.\n"
            "\n"
            "  --retry-parked     also retry batches parked after a 4xx answer\n" ASK_USAGE_OPTIONS
                ASK_USAGE_EXIT);
}

/* The answer's members as aligned "key  value" lines. */
static int command_print(const struct jdoc *d, const void *ctx)
{
    (void)ctx;
    if (!status_print_pretty(d->js, (size_t)d->t[0].end, stdout))
        printf("%s\n", d->js);
    return CLI_EXIT_OK;
}

static int command_run(struct cli_global *global, int argc, char **argv, bool is_sync)
{
    static const struct option recompute_opts[] = {
        {"full", no_argument, NULL, OPT_FULL},
        ASK_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    static const struct option sync_opts[] = {
        {"retry-parked", no_argument, NULL, OPT_RETRY_PARKED},
        ASK_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    void (*usage_fn)(FILE *) = is_sync ? sync_usage : recompute_usage;
    const char *name = is_sync ? "sync" : "recompute";
    struct ask_opts o = {false, ASK_DEFAULT_TIMEOUT_S};
    bool flag = false;
    char buf[256];
    struct jw w;
    int opt, handled;

    optind = 0;
    while ((opt = getopt_long(argc, argv, "h", is_sync ? sync_opts : recompute_opts, NULL)) != -1) {
        handled = ask_option(global, &o, opt, optarg);
        if (handled < 0)
            return CLI_EXIT_USAGE;
        if (handled > 0)
            continue;
        switch (opt) {
        case OPT_FULL:
        case OPT_RETRY_PARKED: flag = true; break;
        case 'h': usage_fn(stdout); return CLI_EXIT_OK;
        default: usage_fn(stderr); return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "edgelambda %s: unexpected argument '%s'\n", name, argv[optind]);
        usage_fn(stderr);
        return CLI_EXIT_USAGE;
    }
    jw_init(&w, buf, sizeof buf);
    jw_obj_begin(&w);
    jw_key(&w, "op");
    jw_str(&w, name);
    jw_key(&w, is_sync ? "retry_parked" : "full");
    jw_bool(&w, flag);
    jw_obj_end(&w);
    return ask_and_print(global, name, "command", &w, &o, command_print, NULL);
}

static int cmd_recompute(struct cli_global *global, int argc, char **argv)
{
    return command_run(global, argc, argv, false);
}

static int cmd_sync(struct cli_global *global, int argc, char **argv)
{
    return command_run(global, argc, argv, true);
}

/* ------------------------------------------------------------------ */
/* bench-rr (hidden): request/response latency for tools/bench query   */

#define BENCH_MAX_COUNT 10000000ULL

static void bench_rr_usage(FILE *out)
{
    fprintf(out, "usage: edgelambda [global options] bench-rr --request JSON [--topic TOPIC]\n"
                 "                  [--echo-topic TOPIC] [--count N] [--warmup N]\n"
                 "                  [--timeout SECONDS]\n"
                 "\n"
                 "Benchmark helper (tools/bench query): sends the same request N times, one\n"
                 "at a time, over one MQTT v5 connection and prints its round-trip latency:\n"
                 "  bench-rr: topic=T n=N errors=E p50_us=.. p90_us=.. p99_us=.. max_us=..\n"
                 "  mean_us=.. reply_bytes=B\n"
                 "With --echo-topic, every round sends the request to both topics (in\n"
                 "alternating order) and one such line is printed per topic, so both are\n"
                 "measured under the same conditions. An error is a reply that does not\n"
                 "start with {\"ok\":true, or none in time.\n"
                 "\n"
                 "  --request JSON       the request payload\n"
                 "  --topic TOPIC        request topic (default <prefix>/query)\n"
                 "  --echo-topic TOPIC   a second responder to interleave (el_echo_responder)\n"
                 "  --count N            measured rounds (default 1000)\n"
                 "  --warmup N           unmeasured rounds first (default 100)\n"
                 "  --timeout SECONDS    per request (default 5)\n"
                 "  --uri URI, --prefix PREFIX, -h/--help as for every command\n"
                 "\n"
                 "Exit status: 0 no errors, 1 errors or broker failure, 2 usage error.\n");
}

struct bench_args {
    const char *request;
    const char *topic;
    const char *echo_topic;
    uint64_t count, warmup;
    double timeout_s;
};

/* One measured target: its topic, latencies and outcome. */
struct bench_target {
    char topic[RR_TOPIC_MAX + 64];
    int64_t *lat_ns; /* count entries, allocated before the loop */
    uint64_t errors;
    size_t reply_bytes;
};

static int bench_parse_args(struct cli_global *global, int argc, char **argv, struct bench_args *a)
{
    static const struct option longopts[] = {
        {"request", required_argument, NULL, OPT_REQUEST},
        {"topic", required_argument, NULL, OPT_TOPIC},
        {"echo-topic", required_argument, NULL, OPT_ECHO_TOPIC},
        {"count", required_argument, NULL, OPT_COUNT},
        {"warmup", required_argument, NULL, OPT_WARMUP},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"uri", required_argument, NULL, CLI_OPT_URI},
        {"prefix", required_argument, NULL, CLI_OPT_PREFIX},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    bool ok = true;

    optind = 0;
    while (ok && (opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (cli_common_option(global, opt, optarg))
            continue;
        switch (opt) {
        case OPT_REQUEST: a->request = optarg; break;
        case OPT_TOPIC: a->topic = optarg; break;
        case OPT_ECHO_TOPIC: a->echo_topic = optarg; break;
        case OPT_COUNT: ok = cli_parse_u64(optarg, "--count", 1, BENCH_MAX_COUNT, &a->count); break;
        case OPT_WARMUP:
            ok = cli_parse_u64(optarg, "--warmup", 0, BENCH_MAX_COUNT, &a->warmup);
            break;
        case OPT_TIMEOUT:
            ok = cli_parse_double(optarg, "--timeout", 0.001, 3600.0, &a->timeout_s);
            break;
        case 'h': bench_rr_usage(stdout); return -1;
        default: bench_rr_usage(stderr); return CLI_EXIT_USAGE;
        }
    }
    if (!ok)
        return CLI_EXIT_USAGE;
    if (a->request == NULL || optind < argc) {
        fprintf(stderr, "edgelambda bench-rr: give --request JSON (and no other arguments)\n");
        return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}

static int cmp_i64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;

    return (a > b) - (a < b);
}

/* Nearest-rank percentile of sorted v[0..n), in microseconds. */
static double percentile_us(const int64_t *v, size_t n, double q)
{
    size_t rank = (size_t)ceil(q * (double)n);

    if (rank < 1)
        rank = 1;
    return (double)v[rank - 1] / 1000.0;
}

/* One request to target t; measured as round `slot` unless slot < 0. */
static void bench_one(struct rr_client *rr, const struct bench_args *a, size_t len,
                      struct bench_target *t, int64_t slot)
{
    const char *reply = NULL;
    size_t reply_len = 0;
    int64_t t0 = plat_clock_mono_ns();
    el_status st = rr_request(rr, t->topic, a->request, len, a->timeout_s, &reply, &reply_len);
    int64_t t1 = plat_clock_mono_ns();
    bool ok = st == EL_OK && strncmp(reply, "{\"ok\":true", 10) == 0;

    if (slot < 0)
        return;
    t->lat_ns[slot] = t1 - t0;
    t->reply_bytes = reply_len;
    if (!ok) {
        if (t->errors == 0)
            fprintf(stderr, "edgelambda bench-rr: %s: request %lld: %.200s\n", t->topic,
                    (long long)slot, st == EL_OK ? reply : rr_error(rr));
        t->errors++;
    }
}

/* The measured loop: no allocation (rr_request reuses its buffers). Round
 * i sends to every target, starting with target i % n_targets. */
static void bench_loop(struct rr_client *rr, const struct bench_args *a, struct bench_target *t,
                       size_t n_targets)
{
    size_t len = strlen(a->request);

    for (uint64_t i = 0; i < a->warmup + a->count; i++) {
        int64_t slot = i < a->warmup ? -1 : (int64_t)(i - a->warmup);

        for (size_t k = 0; k < n_targets; k++)
            bench_one(rr, a, len, &t[(i + k) % n_targets], slot);
    }
}

static void bench_print(const struct bench_target *t, uint64_t count)
{
    double sum = 0;

    for (uint64_t i = 0; i < count; i++)
        sum += (double)t->lat_ns[i];
    printf("bench-rr: topic=%s n=%llu errors=%llu p50_us=%.1f p90_us=%.1f p99_us=%.1f "
           "max_us=%.1f mean_us=%.1f reply_bytes=%zu\n",
           t->topic, (unsigned long long)count, (unsigned long long)t->errors,
           percentile_us(t->lat_ns, (size_t)count, 0.50),
           percentile_us(t->lat_ns, (size_t)count, 0.90),
           percentile_us(t->lat_ns, (size_t)count, 0.99), (double)t->lat_ns[count - 1] / 1000.0,
           sum / (double)count / 1000.0, t->reply_bytes);
}

static int cmd_bench_rr(struct cli_global *global, int argc, char **argv)
{
    struct bench_args a = {NULL, NULL, NULL, 1000, 100, 5.0};
    struct bench_target t[2];
    struct rr_client *rr = NULL;
    size_t n_targets;
    int rc = bench_parse_args(global, argc, argv, &a);

    if (rc != CLI_EXIT_OK)
        return rc < 0 ? CLI_EXIT_OK : rc;
    memset(t, 0, sizeof t);
    n_targets = a.echo_topic != NULL ? 2 : 1;
    if (a.topic != NULL)
        rc = snprintf(t[0].topic, sizeof t[0].topic, "%s", a.topic);
    else
        rc = snprintf(t[0].topic, sizeof t[0].topic, "%s/query", global->prefix);
    if (rc < 0 || (size_t)rc >= sizeof t[0].topic ||
        (a.echo_topic != NULL && (size_t)snprintf(t[1].topic, sizeof t[1].topic, "%s",
                                                  a.echo_topic) >= sizeof t[1].topic)) {
        fprintf(stderr, "edgelambda bench-rr: topic too long\n");
        return CLI_EXIT_USAGE;
    }
    rc = CLI_EXIT_FAIL;
    for (size_t k = 0; k < n_targets; k++) {
        t[k].lat_ns = calloc((size_t)a.count, sizeof *t[k].lat_ns);
        if (t[k].lat_ns == NULL)
            goto out;
    }
    if (rr_new(global->uri, global->prefix, &rr) != EL_OK)
        goto out;
    if (rr_connect(rr, a.timeout_s) != EL_OK) {
        fprintf(stderr, "edgelambda bench-rr: %s: %s\n", global->uri, rr_error(rr));
        goto out;
    }
    bench_loop(rr, &a, t, n_targets);
    rc = CLI_EXIT_OK;
    for (size_t k = 0; k < n_targets; k++) {
        qsort(t[k].lat_ns, (size_t)a.count, sizeof *t[k].lat_ns, cmp_i64);
        bench_print(&t[k], a.count);
        if (t[k].errors > 0)
            rc = CLI_EXIT_FAIL;
    }
    if (fflush(stdout) != 0)
        rc = CLI_EXIT_FAIL;
out:
    rr_free(rr);
    for (size_t k = 0; k < n_targets; k++)
        free(t[k].lat_ns);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Dispatcher                                                          */

struct cli_command {
    const char *name;
    cli_command_fn fn;
    const char *help; /* one line; NULL: hidden from the command list */
};

static int cmd_help(struct cli_global *global, int argc, char **argv);

static const struct cli_command cli_commands[] = {
    {"query", cmd_query, "range query of a series (or --match FILTER), bucketed"},
    {"series", cmd_series, "list series with counts and their newest event"},
    {"last", cmd_last, "print the newest raw samples"},
    {"status", cmd_status, "print the daemon's status (retained <prefix>/status)"},
    {"recompute", cmd_recompute, "recompute the batch views now"},
    {"sync", cmd_sync, "ship the master log upstream now"},
    {"loadgen", cli_loadgen, "publish a deterministic synthetic sensor stream"},
    {"help", cmd_help, "show help for a command: edgelambda help <command>"},
    {"bench-rr", cmd_bench_rr, NULL}, /* hidden: tools/bench query */
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
    for (size_t i = 0; i < CLI_NCOMMANDS; i++) {
        if (cli_commands[i].help != NULL)
            fprintf(out, "  %-10s %s\n", cli_commands[i].name, cli_commands[i].help);
    }
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
