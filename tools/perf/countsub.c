/*
 * el_countsub — the cheapest MQTT consumer of a stream: it only counts.
 * The "broker-path limit" of the ingest benchmark: edgelambdad's rate is
 * reported as a ratio to what this program receives from the same broker
 * and publisher in the same run.
 *
 *   el_countsub --uri URI --topic FILTER --qos Q --count N
 *               [--client-id ID] [--timeout S]
 *
 * Prints "ready" (flushed) on stdout once the SUBACK arrived, so a script
 * can start the publisher; exits 0 after N messages, or 1 after --timeout
 * seconds (default 10) without a new message (or on connection loss).
 * Last line: countsub: received=N seconds=S rate=R first_to_last_s=X
 * where seconds runs from "ready" to the end and rate = received /
 * first_to_last_s (first to last message).
 *
 * Design: MQTT 3.1.1, clean session, no persistence, Nagle left on (as the
 * daemon's ingest connection), through mqtt_client.h. The message callback
 * updates relaxed atomics (count, first/last arrival time) and signals the
 * main thread only when the target is reached; returning from it lets Paho
 * send the PUBACK. The main thread polls every 100 ms for the no-progress
 * timeout.
 * Threading: main thread plus Paho's callback thread; shared state is the
 * atomics and the flags guarded by mu.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli_common.h"
#include "mqtt_client.h"
#include "plat_clock.h"

struct countsub {
    uint64_t target;

    atomic_uint_fast64_t received;
    atomic_int_fast64_t first_ns;
    atomic_int_fast64_t last_ns;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool failed; /* the connection was lost */
    char error[200];
};

static void cs_on_message(void *ctx, const struct mqtt_client_in *msg)
{
    struct countsub *cs = ctx;
    int64_t now = plat_clock_mono_ns();
    uint64_t n;

    (void)msg;
    n = atomic_fetch_add_explicit(&cs->received, 1, memory_order_relaxed) + 1;
    if (n == 1)
        atomic_store_explicit(&cs->first_ns, now, memory_order_relaxed);
    atomic_store_explicit(&cs->last_ns, now, memory_order_relaxed);
    if (n == cs->target) {
        pthread_mutex_lock(&cs->mu);
        pthread_cond_signal(&cs->cv);
        pthread_mutex_unlock(&cs->mu);
    }
}

static void cs_on_connection(void *ctx, bool up, const char *cause)
{
    struct countsub *cs = ctx;

    if (up)
        return;
    pthread_mutex_lock(&cs->mu);
    if (!cs->failed) {
        cs->failed = true;
        snprintf(cs->error, sizeof cs->error, "connection lost: %s",
                 cause ? cause : "no cause given");
    }
    pthread_cond_signal(&cs->cv);
    pthread_mutex_unlock(&cs->mu);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: el_countsub --uri URI --topic FILTER --qos 0|1|2 --count N\n"
                 "                   [--client-id ID] [--timeout SECONDS]\n"
                 "Counts messages; prints \"ready\" once subscribed, then\n"
                 "countsub: received=N seconds=S rate=R first_to_last_s=X\n"
                 "Exit 0 after N messages, 1 after --timeout s (default 10) without one.\n");
}

struct cs_args {
    const char *uri;
    const char *topic;
    const char *client_id;
    uint64_t qos;
    uint64_t count;
    uint64_t timeout_s;
};

/* Returns 0 ok, 2 usage error, -1 after --help. */
static int parse_args(int argc, char **argv, struct cs_args *a)
{
    static const struct option longopts[] = {
        {"uri", required_argument, NULL, 'u'},
        {"topic", required_argument, NULL, 't'},
        {"qos", required_argument, NULL, 'q'},
        {"count", required_argument, NULL, 'n'},
        {"client-id", required_argument, NULL, 'i'},
        {"timeout", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool have_count = false;
    int opt;

    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        bool ok = true;

        switch (opt) {
        case 'u': a->uri = optarg; break;
        case 't': a->topic = optarg; break;
        case 'i': a->client_id = optarg; break;
        case 'q': ok = cli_parse_u64(optarg, "--qos", 0, 2, &a->qos); break;
        case 'n':
            ok = cli_parse_u64(optarg, "--count", 1, UINT64_MAX, &a->count);
            have_count = true;
            break;
        case 'T': ok = cli_parse_u64(optarg, "--timeout", 0, 86400, &a->timeout_s); break;
        case 'h': usage(stdout); return -1;
        default: ok = false; break;
        }
        if (!ok) {
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc || a->uri == NULL || a->topic == NULL || !have_count) {
        usage(stderr);
        return 2;
    }
    return 0;
}

/* Creates the client and waits (up to 15 s) until subscribed. */
static bool cs_connect(struct countsub *cs, const struct cs_args *a, struct mqtt_client_opts *o,
                       struct mqtt_client_sub *sub, struct mqtt_client **client)
{
    cli_client_opts(o, a->uri, a->client_id, MQTT_CLIENT_V311, 10);
    cli_client_subscribe(o, sub, a->topic, (int)a->qos, cs_on_message, cs_on_connection, cs);
    return cli_client_start(o, client, 15.0) == CLI_EXIT_OK;
}

/* Waits for the target count; false on timeout without progress or failure. */
static bool cs_wait_count(struct countsub *cs, uint64_t timeout_s)
{
    uint64_t seen = 0;
    int64_t progress_ns = plat_clock_mono_ns();
    bool ok = false;

    pthread_mutex_lock(&cs->mu);
    for (;;) {
        uint64_t n = atomic_load_explicit(&cs->received, memory_order_relaxed);
        int64_t now = plat_clock_mono_ns();
        struct timespec tick;

        if (n >= cs->target) {
            ok = true;
            break;
        }
        if (cs->failed) {
            fprintf(stderr, "el_countsub: %s\n", cs->error);
            break;
        }
        if (n != seen) {
            seen = n;
            progress_ns = now;
        } else if (now - progress_ns >= (int64_t)timeout_s * 1000000000LL) {
            fprintf(stderr, "el_countsub: no message for %llu s; giving up at %llu of %llu\n",
                    (unsigned long long)timeout_s, (unsigned long long)n,
                    (unsigned long long)cs->target);
            break;
        }
        tick = mqtt_client_deadline(0.1);
        (void)pthread_cond_timedwait(&cs->cv, &cs->mu, &tick);
    }
    pthread_mutex_unlock(&cs->mu);
    return ok;
}

static void cs_report(struct countsub *cs, int64_t ready_ns, int64_t end_ns)
{
    uint64_t n = atomic_load_explicit(&cs->received, memory_order_relaxed);
    int64_t span = atomic_load_explicit(&cs->last_ns, memory_order_relaxed) -
                   atomic_load_explicit(&cs->first_ns, memory_order_relaxed);
    double span_s = n > 0 ? (double)span / 1e9 : 0.0;

    printf("countsub: received=%llu seconds=%.3f rate=%.0f first_to_last_s=%.3f\n",
           (unsigned long long)n, (double)(end_ns - ready_ns) / 1e9,
           span_s > 0 ? (double)n / span_s : 0.0, span_s);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    struct cs_args args = {.qos = 1, .timeout_s = 10};
    struct countsub cs;
    struct mqtt_client_opts opts = {0};
    struct mqtt_client_sub sub;
    struct mqtt_client *client = NULL;
    pthread_condattr_t cattr;
    char id[64];
    int64_t ready_ns;
    bool ok = false;
    int rc;

    cli_program = "el_countsub";
    rc = parse_args(argc, argv, &args);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    if (args.client_id == NULL) {
        snprintf(id, sizeof id, "el-countsub-%ld", (long)getpid());
        args.client_id = id;
    }
    memset(&cs, 0, sizeof cs);
    cs.target = args.count;
    atomic_init(&cs.received, 0);
    atomic_init(&cs.first_ns, 0);
    atomic_init(&cs.last_ns, 0);
    pthread_mutex_init(&cs.mu, NULL);
    pthread_condattr_init(&cattr);
    pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
    pthread_cond_init(&cs.cv, &cattr);
    pthread_condattr_destroy(&cattr);

    if (cs_connect(&cs, &args, &opts, &sub, &client)) {
        ready_ns = plat_clock_mono_ns();
        printf("ready\n");
        fflush(stdout);
        ok = cs_wait_count(&cs, args.timeout_s);
        cs_report(&cs, ready_ns, plat_clock_mono_ns());
    }
    mqtt_client_free(client);
    pthread_cond_destroy(&cs.cv);
    pthread_mutex_destroy(&cs.mu);
    return ok ? 0 : 1;
}
