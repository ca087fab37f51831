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
 * daemon subscribes to its query topic). The reply's properties are a
 * one-element array on the stack that points at the request's correlation
 * data, so answering allocates nothing here (Paho copies what it sends).
 * Threading: main thread (waits for the signal, and for "ready"), Paho's
 * callback thread; shared state is the atomics and the flags guarded by mu.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <MQTTAsync.h>

#define ECHO_BODY "{\"ok\":true,\"echo\":true}"
#define ECHO_TOPIC_MAX 4096

struct echo {
    MQTTAsync client;
    const char *topic;
    int qos;

    atomic_uint_fast64_t answered, ignored, failed;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool subscribed;
    bool broken; /* connect/subscribe failed or the connection was lost */
    char error[200];
};

static void echo_fail(struct echo *e, const char *what, const char *message, int code)
{
    pthread_mutex_lock(&e->mu);
    if (!e->broken)
        snprintf(e->error, sizeof e->error, "%s failed: %s (code %d)", what,
                 message ? message : MQTTAsync_strerror(code), code);
    e->broken = true;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

static int echo_on_message(void *context, char *topic, int topic_len, MQTTAsync_message *msg)
{
    struct echo *e = context;
    MQTTAsync_message reply = MQTTAsync_message_initializer;
    MQTTAsync_responseOptions ropts = MQTTAsync_responseOptions_initializer;
    MQTTProperty *rt =
        MQTTProperties_getProperty(&msg->properties, MQTTPROPERTY_CODE_RESPONSE_TOPIC);
    MQTTProperty *corr =
        MQTTProperties_getProperty(&msg->properties, MQTTPROPERTY_CODE_CORRELATION_DATA);
    MQTTProperty prop;
    char response_topic[ECHO_TOPIC_MAX + 1];

    (void)topic_len;
    if (rt == NULL || rt->value.data.len <= 0 || rt->value.data.len > ECHO_TOPIC_MAX) {
        atomic_fetch_add_explicit(&e->ignored, 1, memory_order_relaxed);
        goto out;
    }
    memcpy(response_topic, rt->value.data.data, (size_t)rt->value.data.len);
    response_topic[rt->value.data.len] = '\0';
    reply.payload = (void *)(uintptr_t)ECHO_BODY;
    reply.payloadlen = (int)(sizeof ECHO_BODY - 1);
    reply.qos = 0;
    if (corr != NULL) {
        prop = *corr;
        reply.properties.count = 1;
        reply.properties.max_count = 1;
        reply.properties.length = 1 + 2 + corr->value.data.len;
        reply.properties.array = &prop;
    }
    /* Paho sends a message's v5 properties only when responseOptions are given. */
    if (MQTTAsync_sendMessage(e->client, response_topic, &reply, &ropts) == MQTTASYNC_SUCCESS)
        atomic_fetch_add_explicit(&e->answered, 1, memory_order_relaxed);
    else
        atomic_fetch_add_explicit(&e->failed, 1, memory_order_relaxed);
out:
    MQTTAsync_freeMessage(&msg);
    MQTTAsync_free(topic);
    return 1;
}

static void echo_on_connection_lost(void *context, char *cause)
{
    echo_fail(context, "connection", cause ? cause : "connection lost", MQTTASYNC_DISCONNECTED);
}

static void echo_on_subscribe(void *context, MQTTAsync_successData5 *response)
{
    struct echo *e = context;
    /* One filter: its reason code is reasonCode (alt.sub is for many). */
    int code = response ? (int)response->reasonCode : 0;

    if (code >= 0x80) {
        echo_fail(e, "subscribe", MQTTReasonCode_toString((enum MQTTReasonCodes)code), code);
        return;
    }
    pthread_mutex_lock(&e->mu);
    e->subscribed = true;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

static void echo_on_subscribe_failure(void *context, MQTTAsync_failureData5 *response)
{
    echo_fail(context, "subscribe", response ? response->message : NULL,
              response ? response->code : MQTTASYNC_FAILURE);
}

static void echo_on_connect(void *context, MQTTAsync_successData5 *response)
{
    struct echo *e = context;
    MQTTAsync_responseOptions ropts = MQTTAsync_responseOptions_initializer;
    int rc;

    (void)response;
    ropts.onSuccess5 = echo_on_subscribe;
    ropts.onFailure5 = echo_on_subscribe_failure;
    ropts.context = e;
    rc = MQTTAsync_subscribe(e->client, e->topic, e->qos, &ropts);
    if (rc != MQTTASYNC_SUCCESS)
        echo_fail(e, "subscribe", NULL, rc);
}

static void echo_on_connect_failure(void *context, MQTTAsync_failureData5 *response)
{
    echo_fail(context, "connect", response ? response->message : NULL,
              response ? response->code : MQTTASYNC_FAILURE);
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

/* Waits (bounded) for the SUBACK; returns true once subscribed. */
static bool wait_subscribed(struct echo *e, int timeout_s)
{
    struct timespec deadline;
    bool ok;

    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_s;
    pthread_mutex_lock(&e->mu);
    while (!e->subscribed && !e->broken) {
        if (pthread_cond_timedwait(&e->cv, &e->mu, &deadline) == ETIMEDOUT)
            break;
    }
    ok = e->subscribed && !e->broken;
    if (!ok && !e->broken)
        snprintf(e->error, sizeof e->error, "no SUBACK within %d s", timeout_s);
    pthread_mutex_unlock(&e->mu);
    return ok;
}

int main(int argc, char **argv)
{
    MQTTAsync_createOptions create = MQTTAsync_createOptions_initializer5;
    MQTTAsync_connectOptions copts = MQTTAsync_connectOptions_initializer5;
    struct echo e;
    const char *uri = NULL;
    const char *client_id = NULL;
    char id_buf[64];
    sigset_t stop_signals;
    int sig = 0;
    int rc;
    int status = 1;

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
    pthread_cond_init(&e.cv, NULL);

    rc = MQTTAsync_createWithOptions(&e.client, uri, client_id, MQTTCLIENT_PERSISTENCE_NONE, NULL,
                                     &create);
    if (rc != MQTTASYNC_SUCCESS) {
        fprintf(stderr, "el_echo_responder: bad URI '%s': %s\n", uri, MQTTAsync_strerror(rc));
        return 2;
    }
    rc = MQTTAsync_setCallbacks(e.client, &e, echo_on_connection_lost, echo_on_message, NULL);
    copts.cleanstart = 1;
    copts.keepAliveInterval = 30;
    copts.onSuccess5 = echo_on_connect;
    copts.onFailure5 = echo_on_connect_failure;
    copts.context = &e;
    if (rc == MQTTASYNC_SUCCESS)
        rc = MQTTAsync_connect(e.client, &copts);
    if (rc != MQTTASYNC_SUCCESS) {
        fprintf(stderr, "el_echo_responder: connect: %s\n", MQTTAsync_strerror(rc));
        goto out;
    }
    if (!wait_subscribed(&e, 10)) {
        fprintf(stderr, "el_echo_responder: %s\n", e.error);
        goto out;
    }
    printf("ready\n");
    fflush(stdout);
    if (sigwait(&stop_signals, &sig) != 0)
        goto out;
    pthread_mutex_lock(&e.mu);
    status = e.broken ? 1 : 0;
    if (e.broken)
        fprintf(stderr, "el_echo_responder: %s\n", e.error);
    pthread_mutex_unlock(&e.mu);
    printf("echo_responder: answered=%llu ignored=%llu failed=%llu\n",
           (unsigned long long)atomic_load(&e.answered),
           (unsigned long long)atomic_load(&e.ignored), (unsigned long long)atomic_load(&e.failed));
out:
    if (MQTTAsync_isConnected(e.client)) {
        MQTTAsync_disconnectOptions dopts = MQTTAsync_disconnectOptions_initializer5;
        dopts.timeout = 1000;
        (void)MQTTAsync_disconnect(e.client, &dopts);
    }
    MQTTAsync_destroy(&e.client);
    pthread_cond_destroy(&e.cv);
    pthread_mutex_destroy(&e.mu);
    return status;
}
