/*
 * el_echo_responder — the cheapest MQTT v5 responder: the "bare broker echo
 * round trip" baseline of the query benchmark (tools/bench query). The
 * daemon's query latency is reported as a ratio to what a request of the
 * same size costs when this program answers it through the same broker in
 * the same run.
 *
 *   el_echo_responder --uri URI --topic TOPIC [--client-id ID] [--qos Q]
 *
 * Answers every message on TOPIC at once, from Paho's callback thread, on
 * its Response Topic with the same Correlation Data and the fixed body
 * {"ok":true,"echo":true} (QoS 0, like edgelambdad's answers); messages
 * without a Response Topic are ignored. Prints "ready" (flushed) once the
 * SUBACK arrived; runs until SIGINT/SIGTERM and then prints
 * "echo_responder: answered=N ignored=N failed=N". Exit status 0, or 1
 * when connect/subscribe failed or the connection was lost.
 *
 * Design: MQTT 5, clean start, no persistence, subscription QoS 1 (as the
 * daemon subscribes to its query topic), TCP_NODELAY (a responder's small
 * writes must not wait for the broker's delayed ACK), all through
 * mqtt_client.h. Answering allocates nothing here: the reply names the
 * request's correlation data in place (Paho copies what it sends).
 * Threading: main thread (waits for the signal, and for "ready"), Paho's
 * callback thread; shared state is the atomics and the flags guarded by mu.
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli_common.h"
#include "mqtt_client.h"

#define ECHO_BODY "{\"ok\":true,\"echo\":true}"
#define ECHO_TOPIC_MAX 4096

struct echo {
    struct mqtt_client *client; /* set before connecting */
    const char *topic;
    int qos;

    atomic_uint_fast64_t answered, ignored, failed;

    pthread_mutex_t mu;
    bool broken; /* the connection was lost */
    char error[200];
};

static void echo_on_message(void *ctx, const struct mqtt_client_in *in)
{
    struct echo *e = ctx;
    char response_topic[ECHO_TOPIC_MAX + 1];
    struct mqtt_client_msg reply = {
        .topic = response_topic,
        .payload = ECHO_BODY,
        .len = sizeof ECHO_BODY - 1,
        .qos = 0,
        .correlation = in->correlation,
        .correlation_len = in->correlation_len,
    };

    if (in->response_topic == NULL || in->response_topic_len == 0 ||
        in->response_topic_len > ECHO_TOPIC_MAX) {
        atomic_fetch_add_explicit(&e->ignored, 1, memory_order_relaxed);
        return;
    }
    memcpy(response_topic, in->response_topic, in->response_topic_len);
    response_topic[in->response_topic_len] = '\0';
    if (mqtt_client_publish(e->client, &reply, NULL) == EL_OK)
        atomic_fetch_add_explicit(&e->answered, 1, memory_order_relaxed);
    else
        atomic_fetch_add_explicit(&e->failed, 1, memory_order_relaxed);
}

static void echo_on_connection(void *ctx, bool up, const char *cause)
{
    struct echo *e = ctx;

    if (up)
        return;
    pthread_mutex_lock(&e->mu);
    if (!e->broken)
        snprintf(e->error, sizeof e->error, "connection failed: %s",
                 cause ? cause : "connection lost");
    e->broken = true;
    pthread_mutex_unlock(&e->mu);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: el_echo_responder --uri URI --topic TOPIC [--client-id ID] [--qos Q]\n"
                 "Answers every MQTT v5 request on TOPIC with {\"ok\":true,\"echo\":true} on its\n"
                 "response topic (same correlation data). Prints \"ready\" once subscribed;\n"
                 "stops on SIGINT/SIGTERM.\n");
}

/* Returns 0, 2 (usage), or -1 after --help. */
static int parse_args(int argc, char **argv, const char **uri, const char **client_id,
                      struct echo *e)
{
    static const struct option longopts[] = {
        {"uri", required_argument, NULL, 'u'},
        {"topic", required_argument, NULL, 't'},
        {"client-id", required_argument, NULL, 'i'},
        {"qos", required_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;

    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'u': *uri = optarg; break;
        case 't': e->topic = optarg; break;
        case 'i': *client_id = optarg; break;
        case 'q':
            if (strcmp(optarg, "0") != 0 && strcmp(optarg, "1") != 0 && strcmp(optarg, "2") != 0) {
                fprintf(stderr, "el_echo_responder: bad --qos '%s'\n", optarg);
                return 2;
            }
            e->qos = optarg[0] - '0';
            break;
        case 'h': usage(stdout); return -1;
        default: usage(stderr); return 2;
        }
    }
    if (*uri == NULL || e->topic == NULL || optind < argc) {
        usage(stderr);
        return 2;
    }
    return 0;
}

/* Creates the client and waits (up to 10 s) until subscribed; 0, 1 or 2. */
static int echo_connect(struct echo *e, const char *uri, const char *client_id,
                        struct mqtt_client_opts *o, struct mqtt_client_sub *sub)
{
    cli_client_opts(o, uri, client_id, MQTT_CLIENT_V5, 30);
    o->tcp_nodelay = true;
    cli_client_subscribe(o, sub, e->topic, e->qos, echo_on_message, echo_on_connection, e);
    return cli_client_start(o, &e->client, 10.0);
}

int main(int argc, char **argv)
{
    struct echo e;
    struct mqtt_client_opts opts = {0};
    struct mqtt_client_sub sub;
    const char *uri = NULL;
    const char *client_id = NULL;
    char id_buf[64];
    sigset_t stop_signals;
    int sig = 0;
    int rc;

    cli_program = "el_echo_responder";
    memset(&e, 0, sizeof e);
    e.qos = 1;
    rc = parse_args(argc, argv, &uri, &client_id, &e);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    if (client_id == NULL) {
        snprintf(id_buf, sizeof id_buf, "el-echo-%ld", (long)getpid());
        client_id = id_buf;
    }
    /* Block the stop signals before Paho starts its threads: main sigwaits. */
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    pthread_mutex_init(&e.mu, NULL);

    rc = echo_connect(&e, uri, client_id, &opts, &sub);
    if (rc == 0) {
        printf("ready\n");
        fflush(stdout);
        rc = sigwait(&stop_signals, &sig) != 0 ? 1 : 0;
    }
    if (rc == 0) {
        pthread_mutex_lock(&e.mu);
        if (e.broken) {
            fprintf(stderr, "el_echo_responder: %s\n", e.error);
            rc = 1;
        }
        pthread_mutex_unlock(&e.mu);
        printf("echo_responder: answered=%llu ignored=%llu failed=%llu\n",
               (unsigned long long)atomic_load(&e.answered),
               (unsigned long long)atomic_load(&e.ignored),
               (unsigned long long)atomic_load(&e.failed));
    }
    mqtt_client_free(e.client);
    pthread_mutex_destroy(&e.mu);
    return rc;
}
