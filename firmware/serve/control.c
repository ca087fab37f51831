/*
 * control — the control plane's libmosquitto connection (design in control.h).
 *
 * Ownership: struct control owns the libmosquitto client, the el-control
 * thread and the request queue (CONTROL_REQ_SLOTS requests, allocated at
 * control_new). Replies are copied by libmosquitto; the reply slots here
 * only count them.
 */
#include "control.h"

#include <limits.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mqtt_socket.h"
#include "plat_clock.h"
#include "plat_file.h"
#include "plat_log.h"
#include "query.h"

#define LOOP_TIMEOUT_MS 100
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define PROBE_TIMEOUT_MS 3000
#define SLOT_STUCK_MS 5000 /* a reply not written by then went with its connection */

static const char OFFLINE[] = "{\"state\":\"offline\"}";
static const char BUSY[] = "{\"ok\":false,\"error\":{\"code\":\"busy\",\"message\":"
                           "\"too many requests waiting\"}}";

/* A reply handed to libmosquitto and not yet written (on_publish). */
struct out_slot {
    bool busy; /* handed to libmosquitto, on_publish not seen yet */
    int mid;
    int64_t taken_ms; /* CLOCK_MONOTONIC */
};

struct control {
    struct control_opts o;
    struct mosquitto *mosq;
    struct control_counters counters;
    char host[256];
    int port;
    bool tls;
    char password[256];
    char client_id[256];
    bool props_set; /* el-control: the CONNECT properties are in libmosquitto */
    char query_topic[CONTROL_PROP_MAX];
    char command_topic[CONTROL_PROP_MAX];
    char status_topic[CONTROL_PROP_MAX];
    const char *own_ptr[3];
    const char *filter_ptr[CONTROL_MAX_FILTERS];
    struct mqtt_topic_rules reply_rules;

    pthread_t thread;
    bool started;
    _Atomic int quit;
    _Atomic int stopping;
    _Atomic int disconnected;

    /* request queue: el-control produces, the serving thread consumes */
    pthread_mutex_t mu;
    struct control_request *slots; /* CONTROL_REQ_SLOTS */
    uint32_t head, count;
    void (*wake)(void *ctx);
    void *wake_ctx;
    bool (*quick)(void *ctx, const struct control_request *req);
    void *quick_ctx;
    struct control_request *quick_req;      /* el-control's copy for the quick lane */
    struct out_slot out[CONTROL_OUT_SLOTS]; /* under mu */
    struct plat_log_limit busy_limit, connect_limit, reply_limit;
};

const struct control_counters *control_counters(const struct control *c)
{
    return &c->counters;
}

const struct mqtt_topic_rules *control_reply_rules(const struct control *c)
{
    return &c->reply_rules;
}

const char *control_status_topic(const struct control *c)
{
    return c->status_topic;
}

void control_set_request_wakeup(struct control *c, void (*fn)(void *ctx), void *ctx)
{
    c->wake = fn;
    c->wake_ctx = ctx;
}

void control_set_quick_lane(struct control *c,
                            bool (*fn)(void *ctx, const struct control_request *req), void *ctx)
{
    c->quick = fn;
    c->quick_ctx = ctx;
}

/* ---- reply slots (under mu) ----
 * Lock order: the serving thread holds mu across mosquitto_publish_v5 (which
 * in threaded mode takes only the library's out_packet, mid and state
 * mutexes), so a reply's on_publish -- on el-control, inside the library's
 * current_out_packet and callback mutexes -- finds the slot that knows its
 * mid. Nothing takes a library mutex while holding mu otherwise, and the
 * library never takes out_packet/mid/state before calling back: no cycle. */

/* el-control: a reply (or some other publish) was written. */
static void on_publish(struct mosquitto *m, void *ctx, int mid, int reason,
                       const mosquitto_property *props)
{
    struct control *c = ctx;
    bool freed = false;
    (void)m;
    (void)reason;
    (void)props;
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < CONTROL_OUT_SLOTS && !freed; i++) {
        if (c->out[i].busy && c->out[i].mid == mid) {
            c->out[i].busy = false;
            freed = true;
        }
    }
    pthread_mutex_unlock(&c->mu);
    if (freed && c->wake)
        c->wake(c->wake_ctx); /* requests may wait for a free slot */
}

/* Under mu: a free slot's index, or -1. A reply not reported written after
 * SLOT_STUCK_MS went with a connection the library did not tell us of: its
 * slot is taken back and the reply counted unsent. */
static int slot_free_locked(struct control *c)
{
    int64_t now = plat_clock_mono_ms();
    int free_slot = -1;
    for (int i = 0; i < CONTROL_OUT_SLOTS; i++) {
        if (c->out[i].busy && now - c->out[i].taken_ms > SLOT_STUCK_MS) {
            c->out[i].busy = false;
            atomic_fetch_add(&c->counters.replies_unsent, 1);
            plat_log_limited(&c->reply_limit, 10000, PLAT_LOG_WARN,
                             "control: a reply was not written in %d s; counted unsent",
                             SLOT_STUCK_MS / 1000);
        }
        if (!c->out[i].busy && free_slot < 0)
            free_slot = i;
    }
    return free_slot;
}

/* Publishes with correlation data (corr_len > 0); a libmosquitto code. */
static int publish_with(struct control *c, const char *topic, const void *corr, size_t corr_len,
                        const void *payload, size_t len, int qos, bool retain, int *mid)
{
    mosquitto_property *props = NULL;
    int rc = MOSQ_ERR_SUCCESS;
    if (corr_len > 0)
        rc = mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, corr,
                                           (uint16_t)corr_len);
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_publish_v5(c->mosq, mid, topic, (int)len, payload, qos, retain, props);
    mosquitto_property_free_all(&props);
    return rc;
}

/* Publishes a reply (QoS 0) with req's correlation data; a libmosquitto code. */
static int publish_reply(struct control *c, const char *topic, const struct control_request *req,
                         const void *payload, size_t len, int *mid)
{
    return publish_with(c, topic, req->correlation, req->has_correlation ? req->correlation_len : 0,
                        payload, len, 0, false, mid);
}

el_status control_publish(struct control *c, const char *topic, const void *corr, size_t corr_len,
                          const void *payload, size_t len, int qos, bool retain)
{
    if (!atomic_load(&c->counters.subscribed) || atomic_load(&c->stopping) ||
        len > CONTROL_REPLY_MAX || corr_len > CONTROL_PROP_MAX)
        return EL_AGAIN;
    int rc = publish_with(c, topic, corr, corr_len, payload, len, qos, retain, NULL);
    return rc == MOSQ_ERR_SUCCESS ? EL_OK : EL_AGAIN;
}

el_status control_reply(struct control *c, const char *topic, const struct control_request *req,
                        const void *payload, size_t len)
{
    int mid = 0, rc = MOSQ_ERR_NO_CONN;
    if (!atomic_load(&c->counters.connected) || len > CONTROL_REPLY_MAX)
        return EL_AGAIN;
    pthread_mutex_lock(&c->mu); /* across the publish: see "reply slots" */
    int slot = slot_free_locked(c);
    if (slot >= 0)
        rc = publish_reply(c, topic, req, payload, len, &mid);
    if (rc == MOSQ_ERR_SUCCESS)
        c->out[slot] =
            (struct out_slot){.busy = true, .mid = mid, .taken_ms = plat_clock_mono_ms()};
    pthread_mutex_unlock(&c->mu);
    if (slot >= 0 && rc != MOSQ_ERR_SUCCESS)
        plat_log_limited(&c->reply_limit, 10000, PLAT_LOG_WARN,
                         "could not send a reply to %.80s: %s (counted in status)", topic,
                         mosquitto_strerror(rc));
    return rc == MOSQ_ERR_SUCCESS ? EL_OK : EL_AGAIN;
}

el_status control_publish_status(struct control *c, const void *payload, size_t len)
{
    if (len > CONTROL_STATUS_MAX)
        return EL_INVAL;
    /* Not queued while disconnected (libmosquitto would keep every QoS 1
     * message until the next connection): the core retries each second.
     * Nor before the SUBACK: libmosquitto resends what was queued while it
     * handled the CONNACK, so the first status would go out twice. */
    if (!atomic_load(&c->counters.subscribed) || atomic_load(&c->stopping))
        return EL_AGAIN;
    int rc = mosquitto_publish_v5(c->mosq, NULL, c->status_topic, (int)len, payload, 1, true, NULL);
    return rc == MOSQ_ERR_SUCCESS ? EL_OK : EL_AGAIN;
}

/* ---- requests ---- */

/* The v5 Response Topic and Correlation Data of a request. */
static void copy_properties(struct control_request *r, const mosquitto_property *props)
{
    char *rt = NULL;
    void *cd = NULL;
    uint16_t cd_len = 0;
    r->response_topic[0] = '\0';
    r->response_topic_len = 0;
    r->has_response_topic = false;
    r->has_correlation = false;
    r->correlation_len = 0;
    if (mosquitto_property_read_string(props, MQTT_PROP_RESPONSE_TOPIC, &rt, false)) {
        /* Kept (cut) whatever its length: the serving thread judges it and
         * counts a refusal (mqtt_topic_check_reply), never a silent drop. */
        size_t n = strlen(rt);
        r->has_response_topic = true;
        r->response_topic_len = n;
        n = n < CONTROL_PROP_MAX ? n : CONTROL_PROP_MAX;
        memcpy(r->response_topic, rt, n);
        r->response_topic[n] = '\0';
        free(rt);
    }
    if (mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &cd, &cd_len, false)) {
        if (cd_len <= CONTROL_PROP_MAX) {
            memcpy(r->correlation, cd, cd_len);
            r->correlation_len = cd_len;
            r->has_correlation = true;
        }
        free(cd);
    }
}

/* el-control, the request queue full: "busy" to wherever the reply may
 * safely go (the same rules as every reply, query.h), counted either way. */
static void reply_busy(struct control *c, const struct control_request *req,
                       const struct mosquitto_message *msg)
{
    char reply_to[MQTT_TOPIC_REPLY_MAX + 1];
    enum mqtt_topic_problem rt = MQTT_TOPIC_NONE, rto = MQTT_TOPIC_NONE;
    const char *topic = NULL;
    size_t full = 0;
    if (req->has_response_topic)
        rt = mqtt_topic_check_reply(req->response_topic, req->response_topic_len, &c->reply_rules);
    if (rt == MQTT_TOPIC_OK) {
        topic = req->response_topic;
    } else {
        size_t len = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;
        if (query_reply_to(msg->payload, len < CONTROL_REQ_MAX ? len : CONTROL_REQ_MAX, reply_to,
                           sizeof reply_to, &full))
            rto = mqtt_topic_check_reply(reply_to, full, &c->reply_rules);
        if (rto == MQTT_TOPIC_OK)
            topic = reply_to;
    }
    if (!topic) {
        atomic_fetch_add(&c->counters.requests_rejected[rt != MQTT_TOPIC_NONE ? rt : rto], 1);
        return;
    }
    int rc = publish_reply(c, topic, req, BUSY, sizeof BUSY - 1, NULL);
    atomic_fetch_add(
        rc == MOSQ_ERR_SUCCESS ? &c->counters.requests_busy : &c->counters.requests_busy_unsent, 1);
}

/* el-control: a request's copy (its payload cut at CONTROL_REQ_MAX: the
 * parser then reports it as bad). */
static void fill_request(struct control_request *r, bool is_command,
                         const struct mosquitto_message *msg, const mosquitto_property *props)
{
    size_t len = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;
    r->is_command = is_command;
    r->arrived_mono_ms = plat_clock_mono_ms();
    copy_properties(r, props);
    r->len = len < CONTROL_REQ_MAX ? len : CONTROL_REQ_MAX;
    if (r->len)
        memcpy(r->payload, msg->payload, r->len);
}

/* A request's copy, its payload's length only. */
static void copy_request(struct control_request *out, const struct control_request *r)
{
    out->is_command = r->is_command;
    out->len = r->len;
    memcpy(out->payload, r->payload, r->len);
    memcpy(out->response_topic, r->response_topic, sizeof out->response_topic);
    out->response_topic_len = r->response_topic_len;
    out->has_response_topic = r->has_response_topic;
    memcpy(out->correlation, r->correlation, r->correlation_len);
    out->correlation_len = r->correlation_len;
    out->has_correlation = r->has_correlation;
    out->arrived_mono_ms = r->arrived_mono_ms;
}

/* el-control: the quick lane answered a query (see control_set_quick_lane).
 * *tried: it was handed c->quick_req (filled), and declined it. */
static bool answered_quickly(struct control *c, bool is_command,
                             const struct mosquitto_message *msg, const mosquitto_property *props,
                             bool *tried)
{
    *tried = false;
    if (is_command || !c->quick || !c->quick_req)
        return false;
    pthread_mutex_lock(&c->mu);
    bool idle = c->count == 0 && slot_free_locked(c) >= 0;
    pthread_mutex_unlock(&c->mu);
    if (!idle)
        return false;
    fill_request(c->quick_req, is_command, msg, props);
    *tried = true;
    return c->quick(c->quick_ctx, c->quick_req);
}

/* el-control: queue a query/command for the serving thread. One the quick
 * lane declined is queued as it was read then: its arrival time (the
 * deadline counts from it, quick attempt included) and properties. */
static void take_in_request(struct control *c, bool is_command, const struct mosquitto_message *msg,
                            const mosquitto_property *props)
{
    bool tried;
    if (answered_quickly(c, is_command, msg, props, &tried))
        return;
    pthread_mutex_lock(&c->mu);
    bool full = c->count == CONTROL_REQ_SLOTS;
    struct control_request *slot = &c->slots[(c->head + c->count) % CONTROL_REQ_SLOTS];
    if (!full && tried)
        copy_request(slot, c->quick_req);
    else if (!full)
        fill_request(slot, is_command, msg, props);
    if (!full)
        c->count++;
    pthread_mutex_unlock(&c->mu);
    if (full) {
        static _Thread_local struct control_request tmp; /* el-control only */
        tmp.is_command = is_command;
        copy_properties(&tmp, props);
        plat_log_limited(&c->busy_limit, 10000, PLAT_LOG_WARN,
                         "request queue full: answering busy");
        reply_busy(c, &tmp, msg);
        return;
    }
    if (c->wake)
        c->wake(c->wake_ctx);
}

bool control_take_request(struct control *c, struct control_request *out)
{
    bool got = false;
    pthread_mutex_lock(&c->mu);
    if (c->count > 0 && slot_free_locked(c) >= 0) {
        copy_request(out, &c->slots[c->head]);
        c->head = (c->head + 1) % CONTROL_REQ_SLOTS;
        c->count--;
        got = true;
    }
    pthread_mutex_unlock(&c->mu);
    return got;
}

static void on_message(struct mosquitto *m, void *ctx, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
    struct control *c = ctx;
    (void)m;
    bool query = strcmp(msg->topic, c->query_topic) == 0;
    if (query || strcmp(msg->topic, c->command_topic) == 0)
        take_in_request(c, !query, msg, props);
}

/* ---- the connection ---- */

static void on_subscribe(struct mosquitto *m, void *ctx, int mid, int n, const int *granted,
                         const mosquitto_property *props)
{
    struct control *c = ctx;
    bool ok = true;
    (void)m;
    (void)mid;
    (void)props;
    for (int i = 0; i < n; i++)
        ok = ok && granted[i] < 0x80;
    if (!ok) {
        log_error("control: the broker refused the subscription to %s or %s (ACL?): queries "
                  "and commands will not be answered",
                  c->query_topic, c->command_topic);
        return;
    }
    atomic_store(&c->counters.subscribed, 1);
    log_info("control: answering queries on %s and commands on %s", c->query_topic,
             c->command_topic);
}

static void on_connect(struct mosquitto *m, void *ctx, int rc, int flags,
                       const mosquitto_property *props)
{
    struct control *c = ctx;
    char *subs[2] = {c->query_topic, c->command_topic};
    (void)flags;
    (void)props;
    if (rc != 0) {
        plat_log_limited(&c->connect_limit, 30000, PLAT_LOG_WARN,
                         "control: the broker at %s refused the connection: %s", c->o.conn.uri,
                         mosquitto_reason_string(rc));
        return;
    }
    atomic_store(&c->disconnected, 0);
    atomic_store(&c->counters.connected, 1);
    atomic_fetch_add(&c->counters.connects, 1);
    log_info("control: connected to %s as %s", c->o.conn.uri, c->client_id);
    rc = mosquitto_subscribe_multiple(m, NULL, 2, subs, 1, 0, NULL);
    if (rc != MOSQ_ERR_SUCCESS)
        log_error("control: subscribe request failed: %s", mosquitto_strerror(rc));
}

static void on_disconnect(struct mosquitto *m, void *ctx, int rc, const mosquitto_property *props)
{
    struct control *c = ctx;
    int lost = 0;
    (void)m;
    (void)props;
    atomic_store(&c->counters.connected, 0);
    atomic_store(&c->counters.subscribed, 0);
    atomic_store(&c->disconnected, 1);
    /* Replies not yet written went with the connection. */
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < CONTROL_OUT_SLOTS; i++) {
        lost += c->out[i].busy;
        c->out[i].busy = false;
    }
    pthread_mutex_unlock(&c->mu);
    atomic_fetch_add(&c->counters.replies_unsent, (uint64_t)lost);
    if (lost && c->wake)
        c->wake(c->wake_ctx);
    if (!atomic_load(&c->stopping))
        log_warn("control: connection to the broker lost (%s); reconnecting",
                 rc ? mosquitto_strerror(rc) : "closed");
}

/* el-control: one connection attempt. The first is made with
 * mosquitto_connect_bind_v5, the only call that takes CONNECT properties (the
 * session expiry); libmosquitto keeps a copy for mosquitto_reconnect_async.
 * That call connects TCP blocking, so a probe with a timeout goes first: an
 * unreachable broker must not hold the stop for the kernel's SYN timeout. */
static int try_connect(struct control *c)
{
    char port[16];
    if (c->props_set)
        return mosquitto_reconnect_async(c->mosq);
    snprintf(port, sizeof port, "%d", c->port);
    if (!mqtt_tcp_probe(c->host, port, PROBE_TIMEOUT_MS))
        return MOSQ_ERR_NO_CONN;
    mosquitto_property *props = NULL;
    int rc = mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL,
                                          (uint32_t)c->o.conn.session_expiry_s);
    if (rc == MOSQ_ERR_SUCCESS) {
        rc = mosquitto_connect_bind_v5(c->mosq, c->host, c->port, c->o.conn.keepalive_s, NULL,
                                       props);
        c->props_set = rc != MOSQ_ERR_INVAL && rc != MOSQ_ERR_PROTOCOL;
    }
    mosquitto_property_free_all(&props);
    return rc;
}

/* el-control: sleeps the backoff (in steps, watching quit) and doubles it. */
static void back_off(struct control *c, int *backoff)
{
    for (int waited = 0; waited < *backoff && !atomic_load(&c->quit); waited += LOOP_TIMEOUT_MS)
        plat_sleep_ms(LOOP_TIMEOUT_MS);
    *backoff = (int)plat_backoff_next(*backoff, BACKOFF_MAX_MS);
}

/* el-control: connect, loop, reconnect with backoff until quit. */
static void *control_main(void *arg)
{
    struct control *c = arg;
    int backoff = BACKOFF_MIN_MS;
    bool up = false;
    while (!atomic_load(&c->quit)) {
        if (!up) {
            if (atomic_load(&c->stopping))
                break;
            int rc = try_connect(c);
            if (rc != MOSQ_ERR_SUCCESS) {
                plat_log_limited(&c->connect_limit, 30000, PLAT_LOG_WARN,
                                 "control: cannot connect to %s: %s", c->o.conn.uri,
                                 rc == MOSQ_ERR_NO_CONN ? "no answer" : mosquitto_strerror(rc));
                back_off(c, &backoff);
                continue;
            }
            up = true;
        }
        int rc = mosquitto_loop(c->mosq, LOOP_TIMEOUT_MS, 1);
        if (atomic_load(&c->counters.connected))
            backoff = BACKOFF_MIN_MS;
        if (rc != MOSQ_ERR_SUCCESS) {
            up = false;
            if (atomic_load(&c->counters.connected))
                on_disconnect(c->mosq, c, rc, NULL);
            atomic_store(&c->counters.connected, 0);
            if (atomic_load(&c->stopping))
                break;
            if (rc != MOSQ_ERR_NO_CONN && rc != MOSQ_ERR_CONN_LOST)
                plat_log_limited(&c->connect_limit, 30000, PLAT_LOG_WARN,
                                 "control: connection to %s failed: %s", c->o.conn.uri,
                                 mosquitto_strerror(rc));
            back_off(c, &backoff);
        }
    }
    return NULL;
}

static el_status configure(struct control *c)
{
    const struct control_opts *o = &c->o;
    char port[16];
    if (!mqtt_uri_endpoint(o->conn.uri, c->host, sizeof c->host, port, sizeof port)) {
        log_error("control: cannot read host and port from mqtt.uri %s", o->conn.uri);
        return EL_INVAL;
    }
    c->port = atoi(port);
    c->tls = mqtt_uri_tls(o->conn.uri);
    if (strncmp(o->conn.uri, "ws", 2) == 0) {
        log_error("control: mqtt.uri %s: websockets are not supported for the control "
                  "connection (use mqtt:// or mqtts://)",
                  o->conn.uri);
        return EL_INVAL;
    }
    mosquitto_int_option(c->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_int_option(c->mosq, MOSQ_OPT_TCP_NODELAY, o->conn.tcp_nodelay ? 1 : 0);
    mosquitto_threaded_set(c->mosq, true);
    mosquitto_connect_v5_callback_set(c->mosq, on_connect);
    mosquitto_disconnect_v5_callback_set(c->mosq, on_disconnect);
    mosquitto_message_v5_callback_set(c->mosq, on_message);
    mosquitto_subscribe_v5_callback_set(c->mosq, on_subscribe);
    mosquitto_publish_v5_callback_set(c->mosq, on_publish);
    int rc = mosquitto_will_set_v5(c->mosq, c->status_topic, (int)sizeof OFFLINE - 1, OFFLINE, 1,
                                   true, NULL);
    if (rc == MOSQ_ERR_SUCCESS && o->conn.username[0])
        rc = mosquitto_username_pw_set(c->mosq, o->conn.username,
                                       c->password[0] ? c->password : NULL);
    if (rc == MOSQ_ERR_SUCCESS && c->tls)
        rc = mosquitto_tls_set(c->mosq, o->conn.ca_file[0] ? o->conn.ca_file : NULL,
                               o->conn.ca_file[0] ? NULL : "/etc/ssl/certs",
                               o->conn.cert_file[0] ? o->conn.cert_file : NULL,
                               o->conn.key_file[0] ? o->conn.key_file : NULL, NULL);
    if (rc != MOSQ_ERR_SUCCESS) {
        log_error("control: cannot set up the MQTT client: %s", mosquitto_strerror(rc));
        return EL_INVAL;
    }
    return EL_OK;
}

static void init_topics(struct control *c)
{
    const struct control_opts *o = &c->o;
    snprintf(c->status_topic, sizeof c->status_topic, "%s/status", o->conn.topic_prefix);
    snprintf(c->query_topic, sizeof c->query_topic, "%s/query", o->conn.topic_prefix);
    snprintf(c->command_topic, sizeof c->command_topic, "%s/command", o->conn.topic_prefix);
    snprintf(c->client_id, sizeof c->client_id, "%.200s-ctl", o->conn.client_id);
    c->own_ptr[0] = c->query_topic;
    c->own_ptr[1] = c->command_topic;
    c->own_ptr[2] = c->status_topic;
    int n = o->n_filters < CONTROL_MAX_FILTERS ? o->n_filters : CONTROL_MAX_FILTERS;
    for (int i = 0; i < n; i++)
        c->filter_ptr[i] = o->filters[i];
    c->reply_rules.filters = c->filter_ptr;
    c->reply_rules.n_filters = n;
    c->reply_rules.own = c->own_ptr;
    c->reply_rules.n_own = 3;
}

el_status control_new(const struct control_opts *o, struct control **out)
{
    static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
    struct control *c = calloc(1, sizeof *c);
    el_status st = EL_OK;
    *out = NULL;
    if (!c)
        return EL_NOMEM;
    c->o = *o;
    pthread_mutex_init(&c->mu, NULL);
    init_topics(c);
    (void)pthread_once(&lib_once, (void (*)(void))mosquitto_lib_init);
    c->slots = calloc(CONTROL_REQ_SLOTS, sizeof c->slots[0]);
    c->quick_req = calloc(1, sizeof *c->quick_req);
    c->mosq = mosquitto_new(c->client_id, false, c);
    if (!c->slots || !c->quick_req || !c->mosq)
        st = EL_NOMEM;
    if (st == EL_OK && o->conn.password_file[0])
        st = plat_file_read_secret(o->conn.password_file, c->password, sizeof c->password);
    if (st == EL_OK)
        st = configure(c);
    if (st != EL_OK) {
        control_free(c);
        return st;
    }
    *out = c;
    return EL_OK;
}

el_status control_start(struct control *c)
{
    if (pthread_create(&c->thread, NULL, control_main, c) != 0) {
        log_error("cannot start the control thread");
        return EL_NOMEM;
    }
    c->started = true;
    return EL_OK;
}

/* Waits (polling: libmosquitto's callbacks set the flag) at most ms. */
static void wait_flag(_Atomic int *flag, int ms)
{
    for (int64_t end = plat_clock_mono_ms() + ms; !atomic_load(flag) && plat_clock_mono_ms() < end;)
        plat_sleep_ms(2);
}

void control_stop(struct control *c, int timeout_ms)
{
    if (!c || !c->started)
        return;
    atomic_store(&c->stopping, 1);
    if (atomic_load(&c->counters.connected)) {
        /* A clean disconnect does not fire the will: say it ourselves, and
         * ask for the will too should the publish not make it out. The
         * library writes in order, so no need to wait for the PUBACK. */
        if (mosquitto_publish_v5(c->mosq, NULL, c->status_topic, (int)sizeof OFFLINE - 1, OFFLINE,
                                 1, true, NULL) != MOSQ_ERR_SUCCESS)
            log_debug("control: could not publish the offline status");
        if (mosquitto_disconnect_v5(c->mosq, MQTT_RC_DISCONNECT_WITH_WILL_MSG, NULL) ==
            MOSQ_ERR_SUCCESS)
            wait_flag(&c->disconnected, timeout_ms);
    }
    atomic_store(&c->quit, 1);
    pthread_join(c->thread, NULL);
    c->started = false;
}

void control_free(struct control *c)
{
    if (!c)
        return;
    control_stop(c, 0);
    if (c->mosq)
        mosquitto_destroy(c->mosq);
    pthread_mutex_destroy(&c->mu);
    free(c->slots);
    free(c->quick_req);
    free(c);
}
