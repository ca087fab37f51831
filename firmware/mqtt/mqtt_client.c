/*
 * mqtt_client — MQTT over Paho MQTTAsync (design in mqtt_client.h).
 *
 * State shared with Paho's threads is guarded by mu and signalled on cv (a
 * CLOCK_MONOTONIC condition variable): the connection flags, cb_error (the
 * first failure a callback saw since the owner last started something), the
 * pending request's expected correlation data and the reply buffer while a
 * request is pending. The owner thread alone touches error, the correlation
 * counter and the retry schedule; the subscription arrays and the resolved
 * broker addresses are written before Paho is started and only read after.
 *
 * Paho calls the *5 callbacks for MQTT v5 clients and the plain ones for
 * 3.1.1 clients; each pair below reduces to one function.
 */
#include "mqtt_client.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <MQTTAsync.h>

#define INITIAL_REPLY 4096
#define MAX_PAYLOAD (256u << 20)
#define WAIT_SLICE_NS 100000000L
#define SUBSCRIBE_REFUSED 0x80

struct mqtt_client {
    struct mqtt_client_opts o; /* defaults filled in; pointers borrowed */
    MQTTAsync h;
    bool created;
    pthread_t owner;
    char *filters[MQTT_CLIENT_MAX_SUBS + 1]; /* opts.subs, then the reply topic */
    int qos[MQTT_CLIENT_MAX_SUBS + 1];
    int n_filters;
    struct mqtt_peers peers; /* the broker, for TCP_NODELAY */

    /* owner thread only */
    char error[MQTT_CLIENT_ERROR_MAX];
    unsigned char corr_key[8];
    unsigned char corr[MQTT_CLIENT_CORRELATION_LEN];
    uint64_t request_no;
    struct mqtt_client_done request_done;
    int64_t retry_at_ms;
    int backoff_s;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool connected, ready, first_failed, disconnected, nodelay;
    bool ever_connected;
    char cb_error[MQTT_CLIENT_ERROR_MAX];
    bool pending, replied;
    unsigned char expect[MQTT_CLIENT_CORRELATION_LEN];
    char *reply; /* reply_cap bytes, NUL-terminated reply */
    size_t reply_len, reply_cap;
    el_status reply_status;
};

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */

struct timespec mqtt_client_deadline(double seconds)
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

size_t mqtt_client_make_id(const char *stem, char *buf, size_t cap)
{
    unsigned char r[4];
    int n;

    random_bytes(r, sizeof r);
    n = snprintf(buf, cap, "%s-%ld-%02x%02x%02x%02x", stem, (long)getpid(), r[0], r[1], r[2], r[3]);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

static bool is_owner(const struct mqtt_client *c)
{
    return pthread_equal(pthread_self(), c->owner) != 0;
}

/* Callback thread: records the first failure and wakes the owner. */
static void cb_fail(struct mqtt_client *c, const char *what, int code, const char *message)
{
    pthread_mutex_lock(&c->mu);
    if (c->cb_error[0] == '\0')
        snprintf(c->cb_error, sizeof c->cb_error, "%s failed: %s (code %d)", what,
                 message ? message : MQTTAsync_strerror(code), code);
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* Owner thread: copies the callbacks' error, or fallback, for mqtt_client_error. */
static void take_error(struct mqtt_client *c, const char *fallback)
{
    pthread_mutex_lock(&c->mu);
    snprintf(c->error, sizeof c->error, "%s", c->cb_error[0] ? c->cb_error : fallback);
    pthread_mutex_unlock(&c->mu);
}

static bool earlier(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* Owner thread, mu held: waits until done(c), the deadline or a cancel
 * (looked at every WAIT_SLICE_NS when opts.cancel is set). */
static bool wait_locked(struct mqtt_client *c, bool (*done)(const struct mqtt_client *),
                        const struct timespec *deadline)
{
    while (!done(c)) {
        struct timespec until = *deadline;

        if (c->o.cancel != NULL) {
            struct timespec slice = mqtt_client_deadline(WAIT_SLICE_NS / 1e9);

            if (*c->o.cancel)
                return false;
            if (earlier(&slice, &until))
                until = slice;
        }
        if (pthread_cond_timedwait(&c->cv, &c->mu, &until) == ETIMEDOUT &&
            !earlier(&until, deadline))
            return done(c);
    }
    return true;
}

/* ------------------------------------------------------------------ */
/* Paho callbacks: subscriptions                                       */

static void mark_ready(struct mqtt_client *c)
{
    pthread_mutex_lock(&c->mu);
    c->ready = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* A SUBACK: one reason code (v5) or granted QoS (3.1.1) per filter, >= 0x80
 * meaning refused. Paho gives a single filter's code in a field of its own
 * (`single`) and fills the array (v5 codes or 3.1.1 QoS values) only for
 * more than one filter: the array is not even initialised otherwise. */
static void subscribed(struct mqtt_client *c, int single, const enum MQTTReasonCodes *v5_codes,
                       const int *v3_codes)
{
    int n = c->n_filters;

    for (int k = 0; k < n; k++) {
        int code = n == 1 ? single : v5_codes ? (int)v5_codes[k] : v3_codes ? v3_codes[k] : 0;

        if (code >= SUBSCRIBE_REFUSED) {
            cb_fail(c, "subscribe", code,
                    c->o.version == MQTT_CLIENT_V5
                        ? MQTTReasonCode_toString((enum MQTTReasonCodes)code)
                        : "refused by the broker");
            return;
        }
    }
    mark_ready(c);
}

static void on_subscribe5(void *context, MQTTAsync_successData5 *response)
{
    struct mqtt_client *c = context;
    bool many =
        response != NULL && c->n_filters > 1 && response->alt.sub.reasonCodeCount >= c->n_filters;

    subscribed(c, response ? (int)response->reasonCode : 0,
               many ? response->alt.sub.reasonCodes : NULL, NULL);
}

static void on_subscribe3(void *context, MQTTAsync_successData *response)
{
    struct mqtt_client *c = context;
    bool many = response != NULL && c->n_filters > 1;

    subscribed(c, response ? response->alt.qos : 0, NULL, many ? response->alt.qosList : NULL);
}

/* A failure report: Paho's code and message, else the v5 reason code. */
static void failed(struct mqtt_client *c, const char *what, int code, const char *message,
                   int reason)
{
    if (message == NULL && reason >= SUBSCRIBE_REFUSED) {
        message = c->o.version == MQTT_CLIENT_V5
                      ? MQTTReasonCode_toString((enum MQTTReasonCodes)reason)
                      : "refused by the broker";
        code = code != 0 ? code : reason;
    }
    cb_fail(c, what, code, message);
}

static void on_subscribe_failure5(void *context, MQTTAsync_failureData5 *response)
{
    failed(context, "subscribe", response ? response->code : MQTTASYNC_FAILURE,
           response ? response->message : NULL, response ? (int)response->reasonCode : 0);
}

static void on_subscribe_failure3(void *context, MQTTAsync_failureData *response)
{
    int code = response ? response->code : MQTTASYNC_FAILURE;

    failed(context, "subscribe", code, response ? response->message : NULL, code);
}

/* Callback thread: (re)subscribes everything after a CONNACK. */
static void subscribe_all(struct mqtt_client *c)
{
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    int rc;

    if (c->n_filters == 0) {
        mark_ready(c);
        return;
    }
    if (c->o.version == MQTT_CLIENT_V5) {
        ro.onSuccess5 = on_subscribe5;
        ro.onFailure5 = on_subscribe_failure5;
    } else {
        ro.onSuccess = on_subscribe3;
        ro.onFailure = on_subscribe_failure3;
    }
    ro.context = c;
    rc = MQTTAsync_subscribeMany(c->h, c->n_filters, c->filters, c->qos, &ro);
    if (rc != MQTTASYNC_SUCCESS)
        cb_fail(c, "subscribe", rc, NULL);
}

/* ------------------------------------------------------------------ */
/* Paho callbacks: connection                                          */

static void on_connected(void *context, char *cause)
{
    struct mqtt_client *c = context;
    bool nodelay = c->o.tcp_nodelay && mqtt_peers_nodelay(&c->peers);

    pthread_mutex_lock(&c->mu);
    c->connected = true;
    c->ever_connected = true;
    c->ready = false;
    c->nodelay = nodelay;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    subscribe_all(c);
    if (c->o.on_connection != NULL)
        c->o.on_connection(c->o.ctx, true, cause);
}

static void connect_failed(struct mqtt_client *c, int code, const char *message, int reason)
{
    pthread_mutex_lock(&c->mu);
    if (!c->ever_connected)
        c->first_failed = true;
    pthread_mutex_unlock(&c->mu);
    failed(c, "connect", code, message, reason);
}

static void on_connect_failure5(void *context, MQTTAsync_failureData5 *response)
{
    connect_failed(context, response ? response->code : MQTTASYNC_FAILURE,
                   response ? response->message : NULL, response ? (int)response->reasonCode : 0);
}

/* MQTT 3.1.1 CONNACK return codes 1-5 (Paho passes them as the code, and
 * its message says only "CONNACK return code"). */
static const char *connack3_reason(int code)
{
    static const char *const reasons[] = {
        NULL,
        "refused: unacceptable protocol version",
        "refused: client identifier rejected",
        "refused: server unavailable",
        "refused: bad user name or password",
        "refused: not authorised (the broker wants a user name and password)",
    };
    return code >= 1 && code <= 5 ? reasons[code] : NULL;
}

static void on_connect_failure3(void *context, MQTTAsync_failureData *response)
{
    int code = response ? response->code : MQTTASYNC_FAILURE;
    const char *message = response ? response->message : NULL;
    connect_failed(context, code, connack3_reason(code) ? connack3_reason(code) : message, 0);
}

static void on_connection_lost(void *context, char *cause)
{
    struct mqtt_client *c = context;

    pthread_mutex_lock(&c->mu);
    c->connected = false;
    c->ready = false;
    pthread_mutex_unlock(&c->mu);
    cb_fail(c, "connection", MQTTASYNC_DISCONNECTED, cause ? cause : "connection lost");
    if (c->o.on_connection != NULL)
        c->o.on_connection(c->o.ctx, false, cause);
}

static void disconnect_done(struct mqtt_client *c)
{
    pthread_mutex_lock(&c->mu);
    c->disconnected = true;
    c->connected = false;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void on_disconnect5(void *context, MQTTAsync_successData5 *response)
{
    (void)response;
    disconnect_done(context);
}

static void on_disconnect_failure5(void *context, MQTTAsync_failureData5 *response)
{
    (void)response;
    disconnect_done(context);
}

static void on_disconnect3(void *context, MQTTAsync_successData *response)
{
    (void)response;
    disconnect_done(context);
}

static void on_disconnect_failure3(void *context, MQTTAsync_failureData *response)
{
    (void)response;
    disconnect_done(context);
}

/* ------------------------------------------------------------------ */
/* Paho callbacks: messages                                            */

static const MQTTProperty *property(MQTTAsync_message *msg, enum MQTTPropertyCodes code)
{
    MQTTProperty *p = MQTTProperties_getProperty(&msg->properties, code);

    return p != NULL && p->value.data.len >= 0 && p->value.data.data != NULL ? p : NULL;
}

/* Callback thread, mu held: copies an answer into the reply buffer. */
static void store_reply(struct mqtt_client *c, const struct mqtt_client_in *in)
{
    c->reply_status = EL_OK;
    if (in->len >= c->o.max_reply_bytes) {
        c->reply_status = EL_NOMEM;
        snprintf(c->cb_error, sizeof c->cb_error, "reply too large (%zu bytes)", in->len);
        return;
    }
    if (in->len + 1 > c->reply_cap) {
        size_t cap = c->reply_cap ? c->reply_cap : INITIAL_REPLY;
        char *grown;

        while (cap < in->len + 1)
            cap *= 2;
        grown = realloc(c->reply, cap);
        if (grown == NULL) {
            c->reply_status = EL_NOMEM;
            snprintf(c->cb_error, sizeof c->cb_error, "out of memory for a %zu-byte reply",
                     in->len);
            return;
        }
        c->reply = grown;
        c->reply_cap = cap;
    }
    if (in->len > 0)
        memcpy(c->reply, in->payload, in->len);
    c->reply[in->len] = '\0';
    c->reply_len = in->len;
}

/* Callback thread: a message on the reply topic answers the pending
 * request only if its correlation data is the request's. */
static void take_reply(struct mqtt_client *c, const struct mqtt_client_in *in)
{
    pthread_mutex_lock(&c->mu);
    if (c->pending && in->correlation != NULL && in->correlation_len == sizeof c->expect &&
        memcmp(in->correlation, c->expect, sizeof c->expect) == 0) {
        store_reply(c, in);
        c->pending = false;
        c->replied = true;
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
}

static int on_message(void *context, char *topic, int topic_len, MQTTAsync_message *msg)
{
    struct mqtt_client *c = context;
    const MQTTProperty *rt = property(msg, MQTTPROPERTY_CODE_RESPONSE_TOPIC);
    const MQTTProperty *corr = property(msg, MQTTPROPERTY_CODE_CORRELATION_DATA);
    struct mqtt_client_in in = {
        .topic = topic,
        .topic_len = topic_len > 0 ? (size_t)topic_len : strlen(topic),
        .payload = msg->payload != NULL ? msg->payload : "",
        .len = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0,
        .qos = msg->qos,
        .retained = msg->retained != 0,
        .dup = msg->dup != 0,
        .packet_id = msg->msgid,
        .response_topic = rt ? rt->value.data.data : NULL,
        .response_topic_len = rt ? (size_t)rt->value.data.len : 0,
        .correlation = corr ? corr->value.data.data : NULL,
        .correlation_len = corr ? (size_t)corr->value.data.len : 0,
    };

    if (c->o.reply_topic != NULL && strcmp(topic, c->o.reply_topic) == 0)
        take_reply(c, &in);
    else if (c->o.on_message != NULL)
        c->o.on_message(c->o.ctx, &in);
    MQTTAsync_freeMessage(&msg);
    MQTTAsync_free(topic);
    return 1;
}

/* Publish completions: struct mqtt_client_done is the context. */
static void publish_done(void *context, bool ok, int code, const char *message)
{
    const struct mqtt_client_done *d = context;

    d->fn(d->ctx, ok, code, ok ? NULL : message ? message : MQTTAsync_strerror(code));
}

static void on_publish5(void *context, MQTTAsync_successData5 *response)
{
    (void)response;
    publish_done(context, true, 0, NULL);
}

static void on_publish_failure5(void *context, MQTTAsync_failureData5 *response)
{
    const char *message = response ? response->message : NULL;

    if (message == NULL && response != NULL && response->reasonCode >= SUBSCRIBE_REFUSED)
        message = MQTTReasonCode_toString(response->reasonCode);
    publish_done(context, false, response ? response->code : -1, message);
}

static void on_publish3(void *context, MQTTAsync_successData *response)
{
    (void)response;
    publish_done(context, true, 0, NULL);
}

static void on_publish_failure3(void *context, MQTTAsync_failureData *response)
{
    publish_done(context, false, response ? response->code : -1,
                 response ? response->message : NULL);
}

/* The request's own publish: a failure ends the wait. */
static void request_published(void *ctx, bool ok, int code, const char *message)
{
    if (!ok)
        cb_fail(ctx, "publish", code, message);
}

/* ------------------------------------------------------------------ */
/* Creating and freeing                                                */

/* Copies opts with defaults filled in and checks what Paho would not. */
static bool take_opts(struct mqtt_client *c, const struct mqtt_client_opts *opts, char *err,
                      size_t err_len)
{
    c->o = *opts;
    c->o.keepalive_s = opts->keepalive_s > 0 ? opts->keepalive_s : 30;
    c->o.connect_timeout_s = opts->connect_timeout_s > 0 ? opts->connect_timeout_s : 10;
    c->o.retry_min_s = opts->retry_min_s > 0 ? opts->retry_min_s : 1;
    c->o.retry_max_s = opts->retry_max_s > 0 ? opts->retry_max_s : 30;
    if (c->o.retry_max_s < c->o.retry_min_s)
        c->o.retry_max_s = c->o.retry_min_s;
    c->o.max_reply_bytes =
        opts->max_reply_bytes ? opts->max_reply_bytes : MQTT_CLIENT_DEFAULT_MAX_REPLY;
    c->o.disconnect_timeout_ms =
        opts->disconnect_timeout_ms > 0 ? opts->disconnect_timeout_ms : 1000;
    if (opts->uri == NULL || opts->client_id == NULL || opts->n_subs > MQTT_CLIENT_MAX_SUBS) {
        snprintf(err, err_len, "no broker URI or client id, or more than %d subscriptions",
                 MQTT_CLIENT_MAX_SUBS);
        return false;
    }
    if (opts->reply_topic != NULL &&
        (opts->version != MQTT_CLIENT_V5 || strlen(opts->reply_topic) > MQTT_CLIENT_TOPIC_MAX ||
         strpbrk(opts->reply_topic, "+#") != NULL)) {
        snprintf(err, err_len, "reply topic '%s' is too long, has wildcards or lacks MQTT v5",
                 opts->reply_topic);
        return false;
    }
    for (size_t k = 0; k < opts->n_subs; k++) {
        c->filters[c->n_filters] = (char *)(uintptr_t)opts->subs[k].filter;
        c->qos[c->n_filters++] = opts->subs[k].qos;
    }
    if (opts->reply_topic != NULL) {
        c->filters[c->n_filters] = (char *)(uintptr_t)opts->reply_topic;
        c->qos[c->n_filters++] = 1;
    }
    return true;
}

static int create_paho(struct mqtt_client *c)
{
    MQTTAsync_createOptions v5 = MQTTAsync_createOptions_initializer5;
    MQTTAsync_createOptions v3 = MQTTAsync_createOptions_initializer;
    MQTTAsync_createOptions *co = c->o.version == MQTT_CLIENT_V5 ? &v5 : &v3;
    int rc;

    if (c->o.version != MQTT_CLIENT_V5)
        co->MQTTVersion = MQTTVERSION_3_1_1;
    co->sendWhileDisconnected = c->o.send_while_disconnected ? 1 : 0;
    if (c->o.max_buffered > 0)
        co->maxBufferedMessages = c->o.max_buffered;
    co->persistQoS0 = 0;
    rc = MQTTAsync_createWithOptions(&c->h, c->o.uri, c->o.client_id, MQTTCLIENT_PERSISTENCE_NONE,
                                     NULL, co);
    if (rc != MQTTASYNC_SUCCESS)
        return rc;
    c->created = true;
    mqtt_paho_quiet();
    rc = MQTTAsync_setCallbacks(c->h, c, on_connection_lost, on_message, NULL);
    if (rc == MQTTASYNC_SUCCESS)
        rc = MQTTAsync_setConnected(c->h, c, on_connected);
    return rc;
}

el_status mqtt_client_new(const struct mqtt_client_opts *opts, struct mqtt_client **out, char *err,
                          size_t err_len)
{
    char scratch[MQTT_CLIENT_ERROR_MAX];
    struct mqtt_client *c;
    pthread_condattr_t cattr;
    int rc;

    *out = NULL;
    if (err == NULL || err_len == 0) {
        err = scratch;
        err_len = sizeof scratch;
    }
    err[0] = '\0';
    c = calloc(1, sizeof *c);
    if (c == NULL) {
        snprintf(err, err_len, "out of memory");
        return EL_NOMEM;
    }
    c->owner = pthread_self();
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_init(&cattr);
    pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &cattr);
    pthread_condattr_destroy(&cattr);
    random_bytes(c->corr_key, sizeof c->corr_key);
    c->request_done = (struct mqtt_client_done){request_published, c};
    if (!take_opts(c, opts, err, err_len)) {
        mqtt_client_free(c);
        return EL_INVAL;
    }
    rc = create_paho(c);
    if (rc != MQTTASYNC_SUCCESS) {
        snprintf(err, err_len, "%s", MQTTAsync_strerror(rc));
        mqtt_client_free(c);
        return EL_INVAL;
    }
    *out = c;
    return EL_OK;
}

void mqtt_client_free(struct mqtt_client *c)
{
    if (c == NULL)
        return;
    if (c->created) {
        if (MQTTAsync_isConnected(c->h) &&
            mqtt_client_disconnect(c, c->o.disconnect_timeout_ms, false) != EL_OK) {
            /* Paho refused to start the goodbye: destroy closes the socket anyway */
        }
        MQTTAsync_destroy(&c->h);
    }
    free(c->reply);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* ------------------------------------------------------------------ */
/* Connecting                                                          */

static bool is_tls_uri(const char *uri)
{
    return strncmp(uri, "ssl://", 6) == 0 || strncmp(uri, "mqtts://", 8) == 0 ||
           strncmp(uri, "wss://", 6) == 0;
}

/* Fills the parts of the connect options that need storage of their own. */
static void connect_extras(const struct mqtt_client *c, MQTTAsync_connectOptions *co,
                           MQTTAsync_willOptions *will, MQTTAsync_SSLOptions *ssl,
                           MQTTProperties *props)
{
    const struct mqtt_client_will *w = c->o.will;
    const struct mqtt_client_tls *tls = c->o.tls;
    MQTTProperty p;

    if (c->o.version == MQTT_CLIENT_V5) {
        p.identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL;
        p.value.integer4 = c->o.session_expiry_s;
        (void)MQTTProperties_add(props, &p); /* fails only without memory: then not sent */
        if (c->o.receive_max > 0) {
            p.identifier = MQTTPROPERTY_CODE_RECEIVE_MAXIMUM;
            p.value.integer2 = c->o.receive_max;
            (void)MQTTProperties_add(props, &p);
        }
        co->connectProperties = props;
    }
    if (w != NULL) {
        will->topicName = w->topic;
        will->message = NULL;
        will->payload.data = w->payload;
        will->payload.len = (int)w->len;
        will->qos = w->qos;
        will->retained = w->retained ? 1 : 0;
        co->will = will;
    }
    if (is_tls_uri(c->o.uri)) {
        ssl->trustStore = tls != NULL ? tls->ca_file : NULL;
        ssl->keyStore = tls != NULL ? tls->cert_file : NULL;
        ssl->privateKey = tls != NULL ? tls->key_file : NULL;
        ssl->enableServerCertAuth = tls == NULL || tls->verify ? 1 : 0;
        ssl->verify = ssl->enableServerCertAuth;
        co->ssl = ssl;
    }
    co->username = c->o.username;
    co->password = c->o.password;
}

el_status mqtt_client_start(struct mqtt_client *c)
{
    MQTTAsync_connectOptions v5 = MQTTAsync_connectOptions_initializer5;
    MQTTAsync_connectOptions v3 = MQTTAsync_connectOptions_initializer;
    MQTTAsync_connectOptions *co = c->o.version == MQTT_CLIENT_V5 ? &v5 : &v3;
    MQTTAsync_willOptions will = MQTTAsync_willOptions_initializer;
    MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
    MQTTProperties props = MQTTProperties_initializer;
    int rc;

    c->error[0] = '\0';
    if (c->o.tcp_nodelay)
        mqtt_peers_resolve(&c->peers, c->o.uri);
    if (c->o.version == MQTT_CLIENT_V5) {
        co->cleanstart = c->o.clean_start ? 1 : 0;
        co->onFailure5 = on_connect_failure5;
    } else {
        co->MQTTVersion = MQTTVERSION_3_1_1;
        co->cleansession = c->o.clean_start ? 1 : 0;
        co->onFailure = on_connect_failure3;
    }
    co->keepAliveInterval = c->o.keepalive_s;
    co->connectTimeout = c->o.connect_timeout_s;
    if (c->o.max_inflight > 0)
        co->maxInflight = c->o.max_inflight;
    co->automaticReconnect = c->o.auto_reconnect ? 1 : 0;
    co->minRetryInterval = c->o.retry_min_s;
    co->maxRetryInterval = c->o.retry_max_s;
    co->context = c;
    connect_extras(c, co, &will, &ssl, &props);
    pthread_mutex_lock(&c->mu);
    c->cb_error[0] = '\0';
    c->first_failed = false;
    pthread_mutex_unlock(&c->mu);
    rc = MQTTAsync_connect(c->h, co);
    MQTTProperties_free(&props);
    if (rc != MQTTASYNC_SUCCESS) {
        snprintf(c->error, sizeof c->error, "connect failed: %s (code %d)", MQTTAsync_strerror(rc),
                 rc);
        return EL_MQTT;
    }
    return EL_OK;
}

static bool ready_or_failed(const struct mqtt_client *c)
{
    return c->ready || c->cb_error[0] != '\0';
}

el_status mqtt_client_wait_ready(struct mqtt_client *c, double timeout_s)
{
    struct timespec deadline = mqtt_client_deadline(timeout_s);
    bool ready, connected, cancelled;
    el_status st;

    pthread_mutex_lock(&c->mu);
    (void)wait_locked(c, ready_or_failed, &deadline);
    ready = c->ready;
    connected = c->connected;
    st = ready ? EL_OK : c->cb_error[0] != '\0' ? EL_MQTT : EL_AGAIN;
    pthread_mutex_unlock(&c->mu);
    cancelled = c->o.cancel != NULL && *c->o.cancel;
    if (st == EL_AGAIN)
        take_error(c, cancelled                  ? "cancelled"
                      : !connected               ? "no connection to the broker in time"
                      : c->o.reply_topic != NULL ? "no SUBACK for the reply topic in time"
                                                 : "no SUBACK in time");
    else if (st != EL_OK)
        take_error(c, "connect failed");
    return st;
}

el_status mqtt_client_connect(struct mqtt_client *c, double timeout_s)
{
    el_status st = mqtt_client_start(c);

    return st == EL_OK ? mqtt_client_wait_ready(c, timeout_s) : st;
}

void mqtt_client_maintain(struct mqtt_client *c, int64_t now_mono_ms)
{
    bool failed_first, ever_connected;

    if (!c->o.auto_reconnect)
        return;
    pthread_mutex_lock(&c->mu);
    ever_connected = c->ever_connected;
    failed_first = c->first_failed && !ever_connected;
    pthread_mutex_unlock(&c->mu);
    if (ever_connected) { /* Paho's automatic reconnect has it from here */
        c->retry_at_ms = 0;
        c->backoff_s = 0;
        return;
    }
    if (!failed_first) /* an attempt is under way */
        return;
    if (c->retry_at_ms == 0) {
        c->backoff_s = c->backoff_s == 0 ? c->o.retry_min_s : c->backoff_s * 2;
        if (c->backoff_s > c->o.retry_max_s)
            c->backoff_s = c->o.retry_max_s;
        c->retry_at_ms = now_mono_ms + (int64_t)c->backoff_s * 1000;
        return;
    }
    if (now_mono_ms < c->retry_at_ms)
        return;
    c->retry_at_ms = 0;
    if (mqtt_client_start(c) != EL_OK) { /* Paho refused to start: retry after more backoff */
        pthread_mutex_lock(&c->mu);
        c->first_failed = true;
        pthread_mutex_unlock(&c->mu);
    }
}

el_status mqtt_client_disconnect(struct mqtt_client *c, int timeout_ms, bool send_will)
{
    MQTTAsync_disconnectOptions v5 = MQTTAsync_disconnectOptions_initializer5;
    MQTTAsync_disconnectOptions v3 = MQTTAsync_disconnectOptions_initializer;
    MQTTAsync_disconnectOptions *d = c->o.version == MQTT_CLIENT_V5 ? &v5 : &v3;
    struct timespec deadline =
        mqtt_client_deadline((timeout_ms > 0 ? timeout_ms : 0) / 1000.0 + 1.0);
    int rc;

    if (!MQTTAsync_isConnected(c->h))
        return EL_OK;
    d->timeout = timeout_ms > 0 ? timeout_ms : 0;
    d->context = c;
    if (c->o.version == MQTT_CLIENT_V5) {
        if (send_will)
            d->reasonCode = MQTTREASONCODE_DISCONNECT_WITH_WILL_MESSAGE;
        d->onSuccess5 = on_disconnect5;
        d->onFailure5 = on_disconnect_failure5;
    } else {
        d->onSuccess = on_disconnect3;
        d->onFailure = on_disconnect_failure3;
    }
    pthread_mutex_lock(&c->mu);
    c->disconnected = false;
    pthread_mutex_unlock(&c->mu);
    rc = MQTTAsync_disconnect(c->h, d);
    if (rc != MQTTASYNC_SUCCESS) {
        snprintf(c->error, sizeof c->error, "disconnect failed: %s (code %d)",
                 MQTTAsync_strerror(rc), rc);
        return EL_MQTT;
    }
    pthread_mutex_lock(&c->mu);
    while (!c->disconnected && pthread_cond_timedwait(&c->cv, &c->mu, &deadline) != ETIMEDOUT)
        ;
    pthread_mutex_unlock(&c->mu);
    return EL_OK;
}

/* ------------------------------------------------------------------ */
/* Publishing and asking                                               */

/* v5 properties of msg in props[0..2), attached to m without allocating. */
static void attach_properties(MQTTAsync_message *m, MQTTProperty props[2],
                              const struct mqtt_client_msg *msg)
{
    int count = 0, length = 0;

    if (msg->response_topic != NULL) {
        props[count].identifier = MQTTPROPERTY_CODE_RESPONSE_TOPIC;
        props[count].value.data.data = (char *)(uintptr_t)msg->response_topic;
        props[count].value.data.len = (int)strlen(msg->response_topic);
        length += 1 + 2 + props[count++].value.data.len;
    }
    if (msg->correlation != NULL) {
        props[count].identifier = MQTTPROPERTY_CODE_CORRELATION_DATA;
        props[count].value.data.data = (char *)(uintptr_t)msg->correlation;
        props[count].value.data.len = (int)msg->correlation_len;
        length += 1 + 2 + props[count++].value.data.len;
    }
    m->properties.count = count;
    m->properties.max_count = count;
    m->properties.length = length;
    m->properties.array = count > 0 ? props : NULL;
}

el_status mqtt_client_publish(struct mqtt_client *c, const struct mqtt_client_msg *msg,
                              const struct mqtt_client_done *done)
{
    MQTTAsync_message m = MQTTAsync_message_initializer;
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    MQTTProperty props[2];
    bool v5 = c->o.version == MQTT_CLIENT_V5;
    int rc;

    if (msg->len > MAX_PAYLOAD || (!v5 && (msg->response_topic || msg->correlation)))
        return EL_INVAL;
    m.payload = (void *)(uintptr_t)msg->payload;
    m.payloadlen = (int)msg->len;
    m.qos = msg->qos;
    m.retained = msg->retained ? 1 : 0;
    if (v5)
        attach_properties(&m, props, msg);
    if (done != NULL) {
        ro.onSuccess5 = v5 ? on_publish5 : NULL;
        ro.onFailure5 = v5 ? on_publish_failure5 : NULL;
        ro.onSuccess = v5 ? NULL : on_publish3;
        ro.onFailure = v5 ? NULL : on_publish_failure3;
        ro.context = (void *)(uintptr_t)done;
    }
    /* Paho sends a message's v5 properties only when responseOptions are given. */
    rc = MQTTAsync_sendMessage(c->h, msg->topic, &m, &ro);
    if (rc == MQTTASYNC_SUCCESS)
        return EL_OK;
    if (is_owner(c))
        snprintf(c->error, sizeof c->error, "%s (code %d)", MQTTAsync_strerror(rc), rc);
    return rc == MQTTASYNC_MAX_BUFFERED_MESSAGES ? EL_AGAIN : EL_MQTT;
}

static bool replied_or_failed(const struct mqtt_client *c)
{
    return c->replied || !c->connected || c->cb_error[0] != '\0';
}

/* Owner thread: waits for the pending answer; returns its status. */
static el_status wait_reply(struct mqtt_client *c, const struct timespec *deadline)
{
    el_status st;

    pthread_mutex_lock(&c->mu);
    (void)wait_locked(c, replied_or_failed, deadline);
    if (c->replied)
        st = c->reply_status;
    else
        st = !c->connected || c->cb_error[0] != '\0' ? EL_MQTT : EL_AGAIN;
    c->pending = false;
    pthread_mutex_unlock(&c->mu);
    return st;
}

el_status mqtt_client_request(struct mqtt_client *c, const char *topic, const void *payload,
                              size_t len, int qos, double timeout_s, const char **reply,
                              size_t *reply_len)
{
    struct timespec deadline = mqtt_client_deadline(timeout_s);
    uint64_t n = ++c->request_no;
    struct mqtt_client_msg msg = {topic, payload,          len,     qos,
                                  false, c->o.reply_topic, c->corr, sizeof c->corr};
    el_status st;

    *reply = NULL;
    *reply_len = 0;
    c->error[0] = '\0';
    if (c->o.reply_topic == NULL || len > MAX_PAYLOAD) {
        snprintf(c->error, sizeof c->error, "%s",
                 c->o.reply_topic ? "request too large" : "no reply topic");
        return EL_INVAL;
    }
    memcpy(c->corr, c->corr_key, sizeof c->corr_key);
    for (int i = 0; i < 8; i++)
        c->corr[8 + i] = (unsigned char)(n >> (56 - 8 * i));
    pthread_mutex_lock(&c->mu);
    memcpy(c->expect, c->corr, sizeof c->expect);
    c->cb_error[0] = '\0';
    c->pending = true;
    c->replied = false;
    pthread_mutex_unlock(&c->mu);
    if (mqtt_client_publish(c, &msg, &c->request_done) != EL_OK) {
        char why[MQTT_CLIENT_ERROR_MAX];

        pthread_mutex_lock(&c->mu);
        c->pending = false;
        pthread_mutex_unlock(&c->mu);
        snprintf(why, sizeof why, "%s", c->error);
        snprintf(c->error, sizeof c->error, "publish to '%.100s' failed: %.120s", topic, why);
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

/* ------------------------------------------------------------------ */
/* State                                                               */

bool mqtt_client_is_connected(struct mqtt_client *c)
{
    return MQTTAsync_isConnected(c->h) != 0;
}

bool mqtt_client_nodelay(struct mqtt_client *c)
{
    bool on;

    pthread_mutex_lock(&c->mu);
    on = c->nodelay;
    pthread_mutex_unlock(&c->mu);
    return on;
}

const char *mqtt_client_error(const struct mqtt_client *c)
{
    return c->error;
}
