/*
 * cmd_status — `edgelambda status`: prints the daemon's retained status
 * (<prefix>/status) as a short summary, problems first (status_summary.c),
 * or raw with --json. Also home of cli_print_flat ("dotted.key  value"
 * lines), which `recompute` and `sync` use for their answers.
 *
 * Design: an MQTT 3.1.1 client (mqtt_client.h; clean session, client id
 * "edgelambda-cli-<pid>") subscribes to the status topic at QoS 1; the
 * broker hands over the retained message right after the SUBACK. The first
 * message is copied (at most STATUS_MAX_PAYLOAD bytes) and the command
 * waits for it, bounded by --timeout from the start of the connection. The
 * flat printer walks the token tree of the parsed JSON (plat_json)
 * twice: once to measure the widest key, once to print; keys are joined
 * with '.', array elements shown as [i], leaves as their raw text, empty
 * containers as {} and [].
 *
 * Threading: Paho's callback thread hands the payload to main under
 * status_wait.mu, copied into memory main frees; the connection callback
 * reports a lost connection the same way.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define STATUS_MAX_PAYLOAD (1024 * 1024)
#define STATUS_TOPIC_MAX 512
#define STATUS_PATH_MAX 512

/* ------------------------------------------------------------------ */
/* Flat key/value printing                                             */

struct flat {
    const struct plat_json *doc;
    char path[STATUS_PATH_MAX];
    int width; /* widest key, measured in the first pass */
    FILE *out; /* NULL in the measuring pass */
};

static void flat_leaf(struct flat *f, int i, size_t path_len)
{
    const char *path = path_len ? f->path : "value";
    enum plat_json_type type = plat_json_type(f->doc, i);
    size_t len;
    const char *text = plat_json_raw(f->doc, i, &len);

    if (f->out == NULL) {
        if ((int)strlen(path) > f->width)
            f->width = (int)strlen(path);
        return;
    }
    if (type == PLAT_JSON_OBJECT)
        fprintf(f->out, "%-*s  {}\n", f->width, path);
    else if (type == PLAT_JSON_ARRAY)
        fprintf(f->out, "%-*s  []\n", f->width, path);
    else
        fprintf(f->out, "%-*s  %.*s\n", f->width, path, (int)len, text);
}

/* Recursion depth is bounded by PLAT_JSON_MAX_DEPTH. */
static void flat_walk(struct flat *f, int i, size_t path_len)
{
    bool is_object = plat_json_type(f->doc, i) == PLAT_JSON_OBJECT;
    int index = 0;

    if (plat_json_count_children(f->doc, i) == 0) {
        flat_leaf(f, i, path_len);
        return;
    }
    for (int child = plat_json_first(f->doc, i); child >= 0;
         child = plat_json_next(f->doc, i, child), index++) {
        size_t cap = STATUS_PATH_MAX - path_len, key_len;
        const char *key = plat_json_raw(f->doc, child, &key_len);
        int added;

        if (is_object)
            added =
                snprintf(f->path + path_len, cap, "%s%.*s", path_len ? "." : "", (int)key_len, key);
        else
            added = snprintf(f->path + path_len, cap, "[%d]", index);
        if (added < 0 || (size_t)added >= cap)
            added = (int)(cap - 1); /* keep the truncated key: display only */
        flat_walk(f, is_object ? child + 1 : child, path_len + (size_t)added);
        f->path[path_len] = '\0';
    }
}

void cli_print_flat(const struct plat_json *doc, FILE *out)
{
    struct flat f = {.doc = doc, .width = 0, .out = NULL};

    f.path[0] = '\0';
    flat_walk(&f, 0, 0);
    f.out = out;
    flat_walk(&f, 0, 0);
}

/* ------------------------------------------------------------------ */
/* Waiting for the status                                              */

/* Shared between main and Paho's callback thread; guarded by mu. */
struct status_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;     /* payload arrived or error set */
    char *payload; /* malloc'ed copy, NUL-terminated; main frees */
    size_t payload_len;
    char error[256]; /* non-empty when the connection was lost first */
};

static void status_on_message(void *ctx, const struct mqtt_client_in *msg)
{
    struct status_wait *sw = ctx;

    pthread_mutex_lock(&sw->mu);
    if (!sw->done) {
        if (msg->len > STATUS_MAX_PAYLOAD) {
            snprintf(sw->error, sizeof sw->error, "status payload too large (%zu bytes)", msg->len);
        } else {
            sw->payload = malloc(msg->len + 1);
            if (sw->payload == NULL) {
                snprintf(sw->error, sizeof sw->error, "out of memory");
            } else {
                memcpy(sw->payload, msg->payload, msg->len);
                sw->payload[msg->len] = '\0';
                sw->payload_len = msg->len;
            }
        }
        sw->done = true;
        pthread_cond_signal(&sw->cv);
    }
    pthread_mutex_unlock(&sw->mu);
}

static void status_on_connection(void *ctx, bool up, const char *cause)
{
    struct status_wait *sw = ctx;

    if (up)
        return;
    pthread_mutex_lock(&sw->mu);
    if (!sw->done) {
        snprintf(sw->error, sizeof sw->error, "connection failed: %s",
                 cause ? cause : "connection lost");
        sw->done = true;
        pthread_cond_signal(&sw->cv);
    }
    pthread_mutex_unlock(&sw->mu);
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

static void status_no_answer(const struct cli_global *global, const char *topic, double timeout_s)
{
    fprintf(stderr,
            "edgelambda: no status on '%s' from %s within %g s "
            "(is edgelambdad running with this --prefix?)\n",
            topic, global->uri, timeout_s);
}

/* Connects, subscribes and waits; on success sw->payload is set. */
static int status_fetch(const struct cli_global *global, struct status_wait *sw, const char *topic,
                        double timeout_s)
{
    struct timespec deadline = mqtt_client_deadline(timeout_s);
    struct mqtt_client_sub sub;
    struct mqtt_client_opts opts;
    struct mqtt_client *client = NULL;
    char client_id[64], why[MQTT_CLIENT_ERROR_MAX];
    el_status st;
    int result = CLI_EXIT_FAIL;

    snprintf(client_id, sizeof client_id, "edgelambda-cli-%ld", (long)getpid());
    cli_client_opts(&opts, global->uri, client_id, MQTT_CLIENT_V311, (int)ceil(timeout_s));
    cli_client_subscribe(&opts, &sub, topic, 1, status_on_message, status_on_connection, sw);
    if (mqtt_client_new(&opts, &client, why, sizeof why) != EL_OK) {
        fprintf(stderr, "edgelambda: bad broker URI '%s': %s\n", global->uri, why);
        return CLI_EXIT_USAGE;
    }
    st = mqtt_client_connect(client, timeout_s);
    if (st == EL_MQTT)
        fprintf(stderr, "edgelambda: %s: %s\n", global->uri, mqtt_client_error(client));
    else if (!status_wait_done(sw, &deadline))
        status_no_answer(global, topic, timeout_s);
    else if (sw->error[0] != '\0')
        fprintf(stderr, "edgelambda: %s: %s\n", global->uri, sw->error);
    else
        result = CLI_EXIT_OK;
    mqtt_client_free(client); /* no callback runs after this */
    return result;
}

/* ------------------------------------------------------------------ */
/* The command                                                         */

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

/* Returns CLI_EXIT_OK, CLI_EXIT_USAGE, or -1 after --help. */
static int status_parse(struct cli_global *global, int argc, char **argv, struct cli_ask_opts *o)
{
    static const struct option longopts[] = {
        CLI_ASK_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    int opt;

    optind = 0;
    while ((opt = cli_ask_getopt(global, o, argc, argv, "h", longopts)) != -1) {
        switch (opt) {
        case CLI_OPT_BAD: return CLI_EXIT_USAGE;
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

/* Prints the status: a summary for a person, or as it came (--json, or not JSON). */
static int status_print(const struct status_wait *sw, bool json)
{
    struct cli_doc d;

    if (!json && cli_doc_parse(&d, sw->payload, sw->payload_len)) {
        cli_print_status_summary(&d.json, stdout);
        cli_doc_free(&d);
    } else {
        printf("%s\n", sw->payload);
    }
    return fflush(stdout) != 0 ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

int cli_status(struct cli_global *global, int argc, char **argv)
{
    struct status_wait sw;
    pthread_condattr_t cattr;
    char topic[STATUS_TOPIC_MAX];
    struct cli_ask_opts o = {.json = false, .timeout_s = 5.0};
    int rc = status_parse(global, argc, argv, &o);

    if (rc != CLI_EXIT_OK)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if ((size_t)snprintf(topic, sizeof topic, "%s/status", global->prefix) >= sizeof topic) {
        fprintf(stderr, "edgelambda: --prefix too long\n");
        return CLI_EXIT_USAGE;
    }
    memset(&sw, 0, sizeof sw);
    pthread_mutex_init(&sw.mu, NULL);
    pthread_condattr_init(&cattr);
    pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
    pthread_cond_init(&sw.cv, &cattr);
    pthread_condattr_destroy(&cattr);

    rc = status_fetch(global, &sw, topic, o.timeout_s);
    if (rc == CLI_EXIT_OK)
        rc = status_print(&sw, o.json);
    free(sw.payload);
    pthread_cond_destroy(&sw.cv);
    pthread_mutex_destroy(&sw.mu);
    return rc;
}
