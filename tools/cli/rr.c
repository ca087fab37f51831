/*
 * rr — MQTT v5 request/response helper (design in rr.h).
 *
 * State shared with Paho's callback thread (guarded by mu, signalled on cv,
 * a CLOCK_MONOTONIC condition variable): the connect/subscribe/disconnect
 * progress flags, the pending request's expected correlation data, the reply
 * buffer while a request is pending, and cb_error. Everything else (the
 * Paho handle, the properties, the counters) belongs to the calling thread.
 *
 * Ownership: struct rr_client owns the Paho client, the request properties
 * (Response Topic and Correlation Data copies made by MQTTProperties_add)
 * and the reply buffer; rr_free releases them in reverse order.
 */
#include "rr.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <MQTTAsync.h>

#define RR_ERROR_MAX 256
#define RR_INITIAL_REPLY 4096

struct rr_client {
    MQTTAsync client;
    bool created;
    char client_id[64];
    char reply_topic[RR_TOPIC_MAX + 1];
    MQTTProperties props;      /* Response Topic + Correlation Data, built once */
    unsigned char *corr_bytes; /* the Correlation Data copy inside props */
    unsigned char corr_key[8]; /* random, per connection */
    uint64_t request_no;
    char error[RR_ERROR_MAX]; /* main thread's copy, for rr_error */

    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool connected, subscribed, lost, disconnected;
    bool pending, replied;
    unsigned char expect[RR_CORRELATION_LEN];
    char *reply; /* reply_cap bytes; NUL-terminated reply */
    size_t reply_len, reply_cap;
    el_status reply_status; /* EL_OK, or EL_NOMEM when it did not fit */
    char cb_error[RR_ERROR_MAX];
};

static atomic_uint rr_connections;

/* ---- helpers ---- */

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

/* getrandom, falling back to time and pid: uniqueness, not secrecy. */
static void random_bytes(unsigned char *out, size_t n)
{
    ssize_t got = getrandom(out, n, GRND_NONBLOCK);

    if (got != (ssize_t)n) {
        struct timespec ts;
        uint64_t x;

        clock_gettime(CLOCK_REALTIME, &ts);
        x = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ULL ^ (uint64_t)getpid() << 32 ^
            (uint64_t)ts.tv_sec;
        for (size_t i = 0; i < n; i++) {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            out[i] = (unsigned char)((x * 0x2545F4914F6CDD1DULL) >> 56);
        }
    }
}

/* Callback thread: records the first error and wakes the waiter. */
static void cb_fail(struct rr_client *c, const char *what, int code, const char *message)
{
    pthread_mutex_lock(&c->mu);
    if (c->cb_error[0] == '\0')
        snprintf(c->cb_error, sizeof c->cb_error, "%s failed: %s (code %d)", what,
                 message ? message : MQTTAsync_strerror(code), code);
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* Main thread: copies the callback's error (or a fallback) for rr_error. */
static void take_error(struct rr_client *c, const char *fallback)
{
    pthread_mutex_lock(&c->mu);
    snprintf(c->error, sizeof c->error, "%s", c->cb_error[0] ? c->cb_error : fallback);
    pthread_mutex_unlock(&c->mu);
}

/* ---- Paho callbacks ---- */

static void on_connection_lost(void *context, char *cause)
{
    struct rr_client *c = context;

    pthread_mutex_lock(&c->mu);
    c->lost = true;
    pthread_mutex_unlock(&c->mu);
    cb_fail(c, "connection", MQTTASYNC_DISCONNECTED, cause ? cause : "connection lost");
}

static const unsigned char *correlation_of(MQTTAsync_message *msg, size_t *len)
{
    MQTTProperty *p =
        MQTTProperties_getProperty(&msg->properties, MQTTPROPERTY_CODE_CORRELATION_DATA);

    if (p == NULL || p->value.data.len < 0)
        return NULL;
    *len = (size_t)p->value.data.len;
    return (const unsigned char *)p->value.data.data;
}

/* Callback thread, mu held: stores the reply in the client's buffer. */
static void store_reply(struct rr_client *c, const MQTTAsync_message *msg)
{
    size_t len = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;

    c->reply_status = EL_OK;
    if (len >= RR_MAX_REPLY) {
        c->reply_status = EL_NOMEM;
        snprintf(c->cb_error, sizeof c->cb_error, "reply too large (%zu bytes)", len);
        return;
    }
    if (len + 1 > c->reply_cap) {
        size_t cap = c->reply_cap ? c->reply_cap : RR_INITIAL_REPLY;
        char *grown;

        while (cap < len + 1)
            cap *= 2;
        grown = realloc(c->reply, cap);
        if (grown == NULL) {
            c->reply_status = EL_NOMEM;
            snprintf(c->cb_error, sizeof c->cb_error, "out of memory for a %zu-byte reply", len);
            return;
        }
        c->reply = grown;
        c->reply_cap = cap;
    }
    if (len > 0)
        memcpy(c->reply, msg->payload, len);
    c->reply[len] = '\0';
    c->reply_len = len;
}

static int on_message(void *context, char *topic, int topic_len, MQTTAsync_message *msg)
{
    struct rr_client *c = context;
    size_t corr_len = 0;
    const unsigned char *corr = correlation_of(msg, &corr_len);

    (void)topic_len;
    pthread_mutex_lock(&c->mu);
    if (c->pending && corr != NULL && corr_len == RR_CORRELATION_LEN &&
        memcmp(corr, c->expect, RR_CORRELATION_LEN) == 0) {
        store_reply(c, msg);
        c->pending = false;
        c->replied = true;
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
    MQTTAsync_freeMessage(&msg);
    MQTTAsync_free(topic);
    return 1;
}

static void on_subscribe(void *context, MQTTAsync_successData5 *response)
{
    struct rr_client *c = context;
    int code = 0;

    /* One filter: its reason code is reasonCode (alt.sub is for many). */
    if (response != NULL)
        code = (int)response->reasonCode;
    if (code >= 0x80) {
        cb_fail(c, "subscribe", code, MQTTReasonCode_toString((enum MQTTReasonCodes)code));
        return;
    }
    pthread_mutex_lock(&c->mu);
    c->subscribed = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void on_subscribe_failure(void *context, MQTTAsync_failureData5 *response)
{
    cb_fail(context, "subscribe", response ? response->code : MQTTASYNC_FAILURE,
            response ? response->message : NULL);
}

static void on_connect(void *context, MQTTAsync_successData5 *response)
{
    struct rr_client *c = context;
    MQTTAsync_responseOptions ropts = MQTTAsync_responseOptions_initializer;
    int rc;

    (void)response;
    pthread_mutex_lock(&c->mu);
    c->connected = true;
    pthread_mutex_unlock(&c->mu);
    ropts.onSuccess5 = on_subscribe;
    ropts.onFailure5 = on_subscribe_failure;
    ropts.context = c;
    rc = MQTTAsync_subscribe(c->client, c->reply_topic, 1, &ropts);
    if (rc != MQTTASYNC_SUCCESS)
        cb_fail(c, "subscribe", rc, NULL);
}

static void on_connect_failure(void *context, MQTTAsync_failureData5 *response)
{
    int code = response ? response->code : MQTTASYNC_FAILURE;
    const char *message = response ? response->message : NULL;

    if (message == NULL && response != NULL && response->reasonCode != MQTTREASONCODE_SUCCESS)
        message = MQTTReasonCode_toString(response->reasonCode);
    cb_fail(context, "connect", code, message);
}

static void on_publish_failure(void *context, MQTTAsync_failureData5 *response)
{
    cb_fail(context, "publish", response ? response->code : MQTTASYNC_FAILURE,
            response ? response->message : NULL);
}

static void on_disconnect(void *context, MQTTAsync_successData5 *response)
{
    struct rr_client *c = context;

    (void)response;
    pthread_mutex_lock(&c->mu);
    c->disconnected = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void on_disconnect_failure(void *context, MQTTAsync_failureData5 *response)
{
    (void)response;
    on_disconnect(context, NULL);
}

/* ---- API ---- */

el_status rr_new(const char *uri, const char *prefix, struct rr_client **out)
{
    MQTTAsync_createOptions create = MQTTAsync_createOptions_initializer5;
    struct rr_client *c;
    pthread_condattr_t cattr;
    unsigned char id_bytes[4];
    unsigned int n = atomic_fetch_add(&rr_connections, 1) + 1;
    int rc;

    *out = NULL;
    c = calloc(1, sizeof *c);
    if (c == NULL)
        return EL_NOMEM;
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_init(&cattr);
    pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &cattr);
    pthread_condattr_destroy(&cattr);

    random_bytes(id_bytes, sizeof id_bytes);
    random_bytes(c->corr_key, sizeof c->corr_key);
    snprintf(c->client_id, sizeof c->client_id, "elcli-%ld-%02x%02x%02x%02x", (long)getpid(),
             id_bytes[0], id_bytes[1], id_bytes[2], id_bytes[3]);
    rc = snprintf(c->reply_topic, sizeof c->reply_topic, "%s/reply/%s/%u", prefix, c->client_id, n);
    if (rc < 0 || (size_t)rc >= sizeof c->reply_topic || strpbrk(prefix, "+#") != NULL) {
        fprintf(stderr, "edgelambda: prefix '%s' is too long or has wildcards\n", prefix);
        rr_free(c);
        return EL_INVAL;
    }
    rc = MQTTAsync_createWithOptions(&c->client, uri, c->client_id, MQTTCLIENT_PERSISTENCE_NONE,
                                     NULL, &create);
    if (rc != MQTTASYNC_SUCCESS) {
        fprintf(stderr, "edgelambda: bad broker URI '%s': %s\n", uri, MQTTAsync_strerror(rc));
        rr_free(c);
        return EL_INVAL;
    }
    c->created = true;
    *out = c;
    return EL_OK;
}

void rr_free(struct rr_client *c)
{
    if (c == NULL)
        return;
    if (c->created) {
        if (MQTTAsync_isConnected(c->client)) {
            MQTTAsync_disconnectOptions dopts = MQTTAsync_disconnectOptions_initializer5;
            struct timespec deadline = deadline_after(1.0);

            dopts.timeout = 1000;
            dopts.onSuccess5 = on_disconnect;
            dopts.onFailure5 = on_disconnect_failure;
            dopts.context = c;
            if (MQTTAsync_disconnect(c->client, &dopts) == MQTTASYNC_SUCCESS) {
                pthread_mutex_lock(&c->mu);
                while (!c->disconnected &&
                       pthread_cond_timedwait(&c->cv, &c->mu, &deadline) != ETIMEDOUT)
                    ;
                pthread_mutex_unlock(&c->mu);
            }
        }
        MQTTAsync_destroy(&c->client);
    }
    MQTTProperties_free(&c->props);
    free(c->reply);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Builds the request properties once: Response Topic and a Correlation
 * Data placeholder whose bytes each request rewrites. */
static el_status build_properties(struct rr_client *c)
{
    MQTTProperty p;
    unsigned char zero[RR_CORRELATION_LEN] = {0};
    MQTTProperty *stored;

    p.identifier = MQTTPROPERTY_CODE_RESPONSE_TOPIC;
    p.value.data.data = c->reply_topic;
    p.value.data.len = (int)strlen(c->reply_topic);
    if (MQTTProperties_add(&c->props, &p) != 0)
        return EL_NOMEM;
    p.identifier = MQTTPROPERTY_CODE_CORRELATION_DATA;
    p.value.data.data = (char *)zero;
    p.value.data.len = RR_CORRELATION_LEN;
    if (MQTTProperties_add(&c->props, &p) != 0)
        return EL_NOMEM;
    stored = MQTTProperties_getProperty(&c->props, MQTTPROPERTY_CODE_CORRELATION_DATA);
    if (stored == NULL || stored->value.data.data == NULL)
        return EL_NOMEM;
    c->corr_bytes = (unsigned char *)stored->value.data.data;
    return EL_OK;
}

el_status rr_connect(struct rr_client *c, double timeout_s)
{
    MQTTAsync_connectOptions copts = MQTTAsync_connectOptions_initializer5;
    struct timespec deadline = deadline_after(timeout_s);
    bool timed_out = false;
    bool connected;
    el_status st;
    int rc;

    c->error[0] = '\0';
    if (c->corr_bytes == NULL) {
        st = build_properties(c);
        if (st != EL_OK) {
            snprintf(c->error, sizeof c->error, "out of memory");
            return st;
        }
    }
    rc = MQTTAsync_setCallbacks(c->client, c, on_connection_lost, on_message, NULL);
    if (rc != MQTTASYNC_SUCCESS) {
        snprintf(c->error, sizeof c->error, "cannot set callbacks: %s", MQTTAsync_strerror(rc));
        return EL_MQTT;
    }
    copts.cleanstart = 1;
    copts.keepAliveInterval = 30;
    copts.connectTimeout = (int)ceil(timeout_s);
    copts.onSuccess5 = on_connect;
    copts.onFailure5 = on_connect_failure;
    copts.context = c;
    rc = MQTTAsync_connect(c->client, &copts);
    if (rc != MQTTASYNC_SUCCESS) {
        snprintf(c->error, sizeof c->error, "connect failed: %s", MQTTAsync_strerror(rc));
        return EL_MQTT;
    }
    pthread_mutex_lock(&c->mu);
    while (!c->subscribed && c->cb_error[0] == '\0' && !timed_out)
        timed_out = pthread_cond_timedwait(&c->cv, &c->mu, &deadline) == ETIMEDOUT;
    st = c->subscribed ? EL_OK : c->cb_error[0] != '\0' ? EL_MQTT : EL_AGAIN;
    connected = c->connected;
    pthread_mutex_unlock(&c->mu);
    if (st == EL_AGAIN)
        take_error(c, connected ? "no SUBACK for the reply topic in time"
                                : "no connection to the broker in time");
    else if (st != EL_OK)
        take_error(c, "connect failed");
    return st;
}

/* Main thread: sets the next correlation data (key then counter). */
static void next_correlation(struct rr_client *c, unsigned char *corr)
{
    uint64_t n = ++c->request_no;

    memcpy(corr, c->corr_key, sizeof c->corr_key);
    for (int i = 0; i < 8; i++)
        corr[8 + i] = (unsigned char)(n >> (56 - 8 * i));
}

/* Main thread: waits for the pending reply; returns its status. */
static el_status wait_reply(struct rr_client *c, const struct timespec *deadline)
{
    bool timed_out = false;
    el_status st;

    pthread_mutex_lock(&c->mu);
    while (!c->replied && !c->lost && c->cb_error[0] == '\0' && !timed_out)
        timed_out = pthread_cond_timedwait(&c->cv, &c->mu, deadline) == ETIMEDOUT;
    if (c->replied)
        st = c->reply_status;
    else
        st = c->lost ? EL_MQTT : c->cb_error[0] != '\0' ? EL_MQTT : EL_AGAIN;
    c->pending = false;
    pthread_mutex_unlock(&c->mu);
    return st;
}

el_status rr_request(struct rr_client *c, const char *topic, const void *payload, size_t len,
                     double timeout_s, const char **reply, size_t *reply_len)
{
    MQTTAsync_message msg = MQTTAsync_message_initializer;
    MQTTAsync_responseOptions ropts = MQTTAsync_responseOptions_initializer;
    struct timespec deadline = deadline_after(timeout_s);
    el_status st;
    int rc;

    *reply = NULL;
    *reply_len = 0;
    c->error[0] = '\0';
    if (c->corr_bytes == NULL || len > 256u * 1024u * 1024u) {
        snprintf(c->error, sizeof c->error, "%s",
                 c->corr_bytes ? "request too large" : "not connected");
        return EL_INVAL;
    }
    next_correlation(c, c->corr_bytes);
    pthread_mutex_lock(&c->mu);
    memcpy(c->expect, c->corr_bytes, RR_CORRELATION_LEN);
    c->cb_error[0] = '\0';
    c->pending = true;
    c->replied = false;
    pthread_mutex_unlock(&c->mu);

    msg.payload = (void *)(uintptr_t)payload;
    msg.payloadlen = (int)len;
    msg.qos = 0; /* see rr.h: QoS 1 would cost a delayed ACK per request */
    msg.retained = 0;
    msg.properties = c->props; /* shallow: Paho copies what it sends */
    /* Paho sends a message's v5 properties only when responseOptions are given. */
    ropts.onFailure5 = on_publish_failure;
    ropts.context = c;
    rc = MQTTAsync_sendMessage(c->client, topic, &msg, &ropts);
    if (rc != MQTTASYNC_SUCCESS) {
        pthread_mutex_lock(&c->mu);
        c->pending = false;
        pthread_mutex_unlock(&c->mu);
        snprintf(c->error, sizeof c->error, "publish to '%s' failed: %s", topic,
                 MQTTAsync_strerror(rc));
        return EL_MQTT;
    }
    st = wait_reply(c, &deadline);
    if (st == EL_OK) {
        *reply = c->reply;
        *reply_len = c->reply_len;
    } else {
        take_error(c, st == EL_AGAIN ? "no reply in time" : "request failed");
    }
    return st;
}

const char *rr_reply_topic(const struct rr_client *c)
{
    return c->reply_topic;
}

const char *rr_error(const struct rr_client *c)
{
    return c->error;
}
