/*
 * el_countsub — the cheapest Paho MQTTAsync consumer of a stream: it only
 * counts. The "broker-path limit" of the ingest benchmark: edgelambdad's
 * rate is reported as a ratio to what this program receives from the same
 * broker and publisher in the same run.
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
 * Design: MQTT 3.1.1, clean session, no persistence. messageArrived frees
 * the message and returns 1 (so Paho sends the PUBACK); it updates relaxed
 * atomics (count, first/last arrival time) and signals the main thread only
 * when the target is reached. The main thread polls every 100 ms for the
 * no-progress timeout.
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

#include <MQTTAsync.h>

#include "plat_clock.h"

struct countsub {
    MQTTAsync client;
    const char *topic;
    int qos;
    uint64_t target;

    atomic_uint_fast64_t received;
    atomic_int_fast64_t first_ns;
    atomic_int_fast64_t last_ns;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool subscribed;
    bool failed; /* connect/subscribe failed or the connection was lost */
    char error[200];
};

static void cs_fail(struct countsub *cs, const char *what, const char *message, int code)
{
    pthread_mutex_lock(&cs->mu);
    if (!cs->failed) {
        cs->failed = true;
        snprintf(cs->error, sizeof cs->error, "%s: %s (code %d)", what,
                 message ? message : MQTTAsync_strerror(code), code);
    }
    pthread_cond_signal(&cs->cv);
    pthread_mutex_unlock(&cs->mu);
}

static int cs_on_message(void *context, char *topic, int topic_len, MQTTAsync_message *msg)
{
    struct countsub *cs = context;
    int64_t now = plat_clock_mono_ns();
    uint64_t n;

    (void)topic_len;
    MQTTAsync_freeMessage(&msg);
    MQTTAsync_free(topic);
    n = atomic_fetch_add_explicit(&cs->received, 1, memory_order_relaxed) + 1;
    if (n == 1)
        atomic_store_explicit(&cs->first_ns, now, memory_order_relaxed);
    atomic_store_explicit(&cs->last_ns, now, memory_order_relaxed);
    if (n == cs->target) {
        pthread_mutex_lock(&cs->mu);
        pthread_cond_signal(&cs->cv);
        pthread_mutex_unlock(&cs->mu);
    }
    return 1;
}

static void cs_on_connection_lost(void *context, char *cause)
{
    cs_fail(context, "connection lost", cause ? cause : "no cause given", MQTTASYNC_DISCONNECTED);
}

static void cs_on_subscribe(void *context, MQTTAsync_successData *response)
{
    struct countsub *cs = context;

    if (response != NULL && response->alt.qos == 0x80) {
        cs_fail(cs, "subscribe", "refused by the broker", 0x80);
        return;
    }
    pthread_mutex_lock(&cs->mu);
    cs->subscribed = true;
    pthread_cond_signal(&cs->cv);
    pthread_mutex_unlock(&cs->mu);
}

static void cs_on_subscribe_failure(void *context, MQTTAsync_failureData *response)
{
    cs_fail(context, "subscribe", response ? response->message : NULL,
            response ? response->code : MQTTASYNC_FAILURE);
}

static void cs_on_connect(void *context, MQTTAsync_successData *response)
{
    struct countsub *cs = context;
    MQTTAsync_responseOptions ropts = MQTTAsync_responseOptions_initializer;
    int rc;

    (void)response;
    ropts.onSuccess = cs_on_subscribe;
    ropts.onFailure = cs_on_subscribe_failure;
    ropts.context = cs;
    rc = MQTTAsync_subscribe(cs->client, cs->topic, cs->qos, &ropts);
    if (rc != MQTTASYNC_SUCCESS)
        cs_fail(cs, "subscribe", NULL, rc);
}

static void cs_on_connect_failure(void *context, MQTTAsync_failureData *response)
{
    cs_fail(context, "connect", response ? response->message : NULL,
            response ? response->code : MQTTASYNC_FAILURE);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: el_countsub --uri URI --topic FILTER --qos 0|1|2 --count N\n"
                 "                   [--client-id ID] [--timeout SECONDS]\n"
                 "Counts messages; prints \"ready\" once subscribed, then\n"
                 "countsub: received=N seconds=S rate=R first_to_last_s=X\n"
                 "Exit 0 after N messages, 1 after --timeout s (default 10) without one.\n");
}

static bool parse_u64(const char *text, const char *what, uint64_t max, uint64_t *out)
{
    char *end = NULL;
    unsigned long long v;

    errno = 0;
    if (text[0] < '0' || text[0] > '9')
        goto bad;
    v = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0' || v > max)
        goto bad;
    *out = (uint64_t)v;
    return true;
bad:
    fprintf(stderr, "el_countsub: bad %s '%s'\n", what, text);
    return false;
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
        case 'q': ok = parse_u64(optarg, "--qos", 2, &a->qos); break;
        case 'n':
            ok = parse_u64(optarg, "--count", UINT64_MAX, &a->count) && a->count > 0;
            have_count = true;
            break;
        case 'T': ok = parse_u64(optarg, "--timeout", 86400, &a->timeout_s); break;
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

static int cs_connect(struct countsub *cs, const struct cs_args *a)
{
    MQTTAsync_connectOptions copts = MQTTAsync_connectOptions_initializer;
    char id[64];
    const char *client_id = a->client_id;
    int rc;

    if (client_id == NULL) {
        snprintf(id, sizeof id, "el-countsub-%ld", (long)getpid());
        client_id = id;
    }
    rc = MQTTAsync_create(&cs->client, a->uri, client_id, MQTTCLIENT_PERSISTENCE_NONE, NULL);
    if (rc != MQTTASYNC_SUCCESS) {
        fprintf(stderr, "el_countsub: bad URI '%s': %s\n", a->uri, MQTTAsync_strerror(rc));
        cs->client = NULL;
        return rc;
    }
    rc = MQTTAsync_setCallbacks(cs->client, cs, cs_on_connection_lost, cs_on_message, NULL);
    if (rc != MQTTASYNC_SUCCESS)
        return rc;
    copts.MQTTVersion = MQTTVERSION_3_1_1;
    copts.cleansession = 1;
    copts.keepAliveInterval = 30;
    copts.connectTimeout = 10;
    copts.onSuccess = cs_on_connect;
    copts.onFailure = cs_on_connect_failure;
    copts.context = cs;
    rc = MQTTAsync_connect(cs->client, &copts);
    if (rc != MQTTASYNC_SUCCESS)
        fprintf(stderr, "el_countsub: connect: %s\n", MQTTAsync_strerror(rc));
    return rc;
}

static struct timespec mono_after_ms(int64_t ms)
{
    int64_t ns = plat_clock_mono_ns() + ms * 1000000LL;
    struct timespec ts;

    ts.tv_sec = (time_t)(ns / 1000000000LL);
    ts.tv_nsec = (long)(ns % 1000000000LL);
    return ts;
}

/* Waits for the SUBACK (or failure) up to 15 s; true when subscribed. */
static bool cs_wait_subscribed(struct countsub *cs)
{
    struct timespec deadline = mono_after_ms(15000);
    bool ok;

    pthread_mutex_lock(&cs->mu);
    while (!cs->subscribed && !cs->failed) {
        if (pthread_cond_timedwait(&cs->cv, &cs->mu, &deadline) == ETIMEDOUT)
            break;
    }
    ok = cs->subscribed && !cs->failed;
    if (!ok)
        fprintf(stderr, "el_countsub: %s\n", cs->failed ? cs->error : "no SUBACK within 15 s");
    pthread_mutex_unlock(&cs->mu);
    return ok;
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
        tick = mono_after_ms(100);
        (void)pthread_cond_timedwait(&cs->cv, &cs->mu, &tick);
    }
    pthread_mutex_unlock(&cs->mu);
    return ok;
}

int main(int argc, char **argv)
{
    struct cs_args args = {.qos = 1, .timeout_s = 10};
    struct countsub cs;
    pthread_condattr_t cattr;
    int64_t ready_ns;
    int64_t end_ns;
    int rc = parse_args(argc, argv, &args);
    bool ok = false;

    if (rc != 0)
        return rc < 0 ? 0 : rc;
    memset(&cs, 0, sizeof cs);
    cs.topic = args.topic;
    cs.qos = (int)args.qos;
    cs.target = args.count;
    atomic_init(&cs.received, 0);
    atomic_init(&cs.first_ns, 0);
    atomic_init(&cs.last_ns, 0);
    pthread_mutex_init(&cs.mu, NULL);
    pthread_condattr_init(&cattr);
    pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
    pthread_cond_init(&cs.cv, &cattr);
    pthread_condattr_destroy(&cattr);

    if (cs_connect(&cs, &args) != MQTTASYNC_SUCCESS || !cs_wait_subscribed(&cs))
        goto out;
    ready_ns = plat_clock_mono_ns();
    printf("ready\n");
    fflush(stdout);
    ok = cs_wait_count(&cs, args.timeout_s);
    end_ns = plat_clock_mono_ns();
    {
        uint64_t n = atomic_load_explicit(&cs.received, memory_order_relaxed);
        int64_t span = atomic_load_explicit(&cs.last_ns, memory_order_relaxed) -
                       atomic_load_explicit(&cs.first_ns, memory_order_relaxed);
        double span_s = n > 0 ? (double)span / 1e9 : 0.0;

        printf("countsub: received=%llu seconds=%.3f rate=%.0f first_to_last_s=%.3f\n",
               (unsigned long long)n, (double)(end_ns - ready_ns) / 1e9,
               span_s > 0 ? (double)n / span_s : 0.0, span_s);
        fflush(stdout);
    }
out:
    if (cs.client != NULL) {
        MQTTAsync_disconnectOptions dopts = MQTTAsync_disconnectOptions_initializer;

        if (MQTTAsync_isConnected(cs.client)) {
            dopts.timeout = 1000;
            (void)MQTTAsync_disconnect(cs.client, &dopts);
        }
        MQTTAsync_destroy(&cs.client);
    }
    pthread_cond_destroy(&cs.cv);
    pthread_mutex_destroy(&cs.mu);
    return ok ? 0 : 1;
}
