/*
 * ingest — Paho MQTTAsync adapter (design in ingest.h).
 *
 * Ownership: struct ingest owns the Paho client. Messages handed to
 * messageArrived are freed here before returning 1.
 */
#include "ingest.h"

#include <MQTTAsync.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mlog.h"
#include "plat_clock.h"
#include "plat_hash.h"
#include "plat_file.h"
#include "plat_log.h"

struct ingest {
    const struct el_config *cfg;
    struct journal *journal;
    MQTTAsync client;
    struct decode_opts dopts;
    struct ingest_counters counters;
    char status_topic[EL_CFG_STR + 16];
    char password[EL_CFG_STR];

    /* Paho callback thread only (seeded before start). */
    uint64_t recent[INGEST_DEDUP_WINDOW];
    uint32_t recent_pos;
    struct plat_log_limit bad_input_limit;
    struct plat_log_limit dup_limit;
    struct plat_log_limit dropped_limit;

    /* request queue: Paho thread produces, core consumes, under req_mu */
    pthread_mutex_t req_mu;
    struct ingest_request *req_slots; /* INGEST_REQ_SLOTS */
    uint32_t req_head, req_count;
    void (*req_wake)(void *ctx);
    void *req_wake_ctx;
    char query_topic[EL_CFG_STR + 16];
    size_t prefix_len;
    char command_topic[EL_CFG_STR + 16];
    struct plat_log_limit req_limit;

    /* initial-connection retries (outbox thread after ingest_start) */
    _Atomic int connect_failed;
    _Atomic int ever_connected;
    struct plat_log_limit connect_limit;
    int64_t next_connect_ms;
    int backoff_ms;
    _Atomic int stopped;
    bool stopping;

    /* outbox (ingest.h): the core writes under out_mu, the el-mqtt-out
     * thread sends; out_mu is never held across a Paho call */
    pthread_mutex_t out_mu;
    pthread_cond_t out_cv;
    pthread_t out_thread;
    bool out_started, out_quit, out_stop_req;
    int out_stop_timeout_ms;
    char out_status[INGEST_STATUS_MAX];
    char out_sending[INGEST_STATUS_MAX]; /* outbox thread's copy being sent */
    size_t out_status_len;
    bool out_status_dirty;
    struct out_reply {
        char topic[INGEST_PROP_MAX + EL_CFG_STR + 1];
        struct ingest_request req; /* correlation data only */
        char *payload;             /* INGEST_REPLY_MAX, allocated once */
        size_t len;
    } out_replies[INGEST_OUT_REPLIES];
    uint32_t out_head, out_count;
    _Atomic int out_full; /* out_count == INGEST_OUT_REPLIES: requests wait */
};

#define SYS_DROPPED_TOPIC "$SYS/broker/publish/messages/dropped"

static const char *const reason_names[INGEST_REASON_COUNT] = {
    [INGEST_REASON_NAME_TOO_LONG] = "name_too_long",
    [INGEST_REASON_SERIES_LIMIT] = "series_limit",
};

const char *ingest_reason_str(unsigned reason)
{
    if (reason < DECODE_REASON_COUNT)
        return decode_reason_str((enum decode_reason)reason);
    if (reason < INGEST_REASON_COUNT)
        return reason_names[reason];
    return "unknown";
}

const struct ingest_counters *ingest_counters(const struct ingest *ing)
{
    return &ing->counters;
}

const char *ingest_status_topic(const struct ingest *ing)
{
    return ing->status_topic;
}

/* ---- duplicate detection ---- */

static uint64_t dedup_key(const char *series, size_t series_len, const void *payload,
                          size_t payload_len)
{
    uint64_t h = plat_hash64(PLAT_HASH64_INIT, series, series_len);
    h = plat_hash64(h, "\0", 1);
    return plat_hash64(h, payload, payload_len);
}

static void recent_add(struct ingest *ing, uint64_t key)
{
    ing->recent[ing->recent_pos] = key;
    ing->recent_pos = (ing->recent_pos + 1) % INGEST_DEDUP_WINDOW;
}

static bool recent_has(const struct ingest *ing, uint64_t key)
{
    for (uint32_t i = 0; i < INGEST_DEDUP_WINDOW; i++)
        if (ing->recent[i] == key)
            return true;
    return false;
}

void ingest_seed_recent(struct ingest *ing, const char *series, size_t series_len,
                        const void *payload, size_t payload_len)
{
    recent_add(ing, dedup_key(series, series_len, payload, payload_len));
}

/* ---- the callback that makes a message safe ---- */

/* Key of the message's first series: the topic, or topic/field. */
static uint64_t message_key(const char *topic, size_t topic_len, const char *payload,
                            size_t payload_len, const struct decode_result *res)
{
    char name[MLOG_MAX_SERIES_NAME + 1];
    size_t n = topic_len;
    memcpy(name, topic, topic_len);
    if (res->ev[0].field_len > 0) {
        name[n++] = '/';
        memcpy(name + n, payload + res->ev[0].field_off, res->ev[0].field_len);
        n += res->ev[0].field_len;
    }
    return dedup_key(name, n, payload, payload_len);
}

static unsigned check_names(const struct decode_result *res, size_t topic_len)
{
    for (uint32_t i = 0; i < res->n_events; i++) {
        size_t len = topic_len + (res->ev[i].field_len ? 1u + res->ev[i].field_len : 0u);
        if (len > MLOG_MAX_SERIES_NAME)
            return INGEST_REASON_NAME_TOO_LONG;
    }
    return DECODE_OK;
}

static el_status send_reply(struct ingest *ing, const char *topic, const struct ingest_request *req,
                            const void *payload, size_t len);

static void reply_busy(struct ingest *ing, const struct ingest_request *req)
{
    static const char busy[] =
        "{\"ok\":false,\"error\":{\"code\":\"busy\",\"message\":\"too many requests waiting\"}}";
    if (req->response_topic[0] &&
        send_reply(ing, req->response_topic, req, busy, sizeof busy - 1) != EL_OK)
        log_debug("could not send a busy reply");
}

static void copy_properties(struct ingest_request *r, MQTTAsync_message *msg)
{
    MQTTProperty *p =
        MQTTProperties_getProperty(&msg->properties, MQTTPROPERTY_CODE_RESPONSE_TOPIC);
    r->response_topic[0] = '\0';
    r->has_correlation = false;
    r->correlation_len = 0;
    if (p && p->value.data.len > 0 && p->value.data.len <= INGEST_PROP_MAX) {
        memcpy(r->response_topic, p->value.data.data, (size_t)p->value.data.len);
        r->response_topic[p->value.data.len] = '\0';
    }
    p = MQTTProperties_getProperty(&msg->properties, MQTTPROPERTY_CODE_CORRELATION_DATA);
    if (p && p->value.data.len >= 0 && p->value.data.len <= INGEST_PROP_MAX) {
        memcpy(r->correlation, p->value.data.data, (size_t)p->value.data.len);
        r->correlation_len = (size_t)p->value.data.len;
        r->has_correlation = true;
    }
}

/* Paho thread: queue a query/command for the core. */
static void take_in_request(struct ingest *ing, bool is_command, MQTTAsync_message *msg)
{
    size_t len = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;
    struct ingest_request *r;
    pthread_mutex_lock(&ing->req_mu);
    bool full = ing->req_count == INGEST_REQ_SLOTS;
    if (!full) {
        r = &ing->req_slots[(ing->req_head + ing->req_count) % INGEST_REQ_SLOTS];
        r->is_command = is_command;
        copy_properties(r, msg);
        /* Oversized requests are cut: the parser then reports them as bad. */
        r->len = len < INGEST_REQ_MAX ? len : INGEST_REQ_MAX;
        if (r->len)
            memcpy(r->payload, msg->payload, r->len);
        ing->req_count++;
    }
    pthread_mutex_unlock(&ing->req_mu);
    if (full) {
        struct ingest_request tmp;
        tmp.is_command = is_command;
        copy_properties(&tmp, msg);
        plat_log_limited(&ing->req_limit, 10000, PLAT_LOG_WARN,
                         "request queue full: answering busy");
        reply_busy(ing, &tmp);
        return;
    }
    if (ing->req_wake)
        ing->req_wake(ing->req_wake_ctx);
}

bool ingest_take_request(struct ingest *ing, struct ingest_request *out)
{
    bool got = false;
    if (atomic_load(&ing->out_full))
        return false; /* no room for the answer yet: the request waits */
    pthread_mutex_lock(&ing->req_mu);
    if (ing->req_count > 0) {
        struct ingest_request *r = &ing->req_slots[ing->req_head];
        out->is_command = r->is_command;
        out->len = r->len;
        memcpy(out->payload, r->payload, r->len);
        memcpy(out->response_topic, r->response_topic, sizeof out->response_topic);
        memcpy(out->correlation, r->correlation, r->correlation_len);
        out->correlation_len = r->correlation_len;
        out->has_correlation = r->has_correlation;
        ing->req_head = (ing->req_head + 1) % INGEST_REQ_SLOTS;
        ing->req_count--;
        got = true;
    }
    pthread_mutex_unlock(&ing->req_mu);
    return got;
}

bool ingest_has_request(struct ingest *ing)
{
    if (atomic_load(&ing->out_full))
        return false; /* the outbox thread wakes the core when there is room */
    pthread_mutex_lock(&ing->req_mu);
    bool any = ing->req_count > 0;
    pthread_mutex_unlock(&ing->req_mu);
    return any;
}

void ingest_set_request_wakeup(struct ingest *ing, void (*fn)(void *ctx), void *ctx)
{
    ing->req_wake = fn;
    ing->req_wake_ctx = ctx;
}

/* Paho threads (the outbox thread, or a callback): sends a reply now. */
static el_status send_reply(struct ingest *ing, const char *topic, const struct ingest_request *req,
                            const void *payload, size_t len)
{
    MQTTAsync_message m = MQTTAsync_message_initializer;
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    MQTTProperty p;
    if (!MQTTAsync_isConnected(ing->client))
        return EL_AGAIN;
    m.payload = (void *)(uintptr_t)payload;
    m.payloadlen = (int)len;
    m.qos = 0;
    if (req->has_correlation) {
        p.identifier = MQTTPROPERTY_CODE_CORRELATION_DATA;
        p.value.data.data = (char *)(uintptr_t)req->correlation;
        p.value.data.len = (int)req->correlation_len;
        MQTTProperties_add(&m.properties, &p);
    }
    int rc = MQTTAsync_sendMessage(ing->client, topic, &m, &ro);
    MQTTProperties_free(&m.properties);
    return rc == MQTTASYNC_SUCCESS ? EL_OK : EL_AGAIN;
}

/* Paho thread: the broker's own count of dropped messages ($SYS). */
static void note_broker_dropped(struct ingest *ing, const MQTTAsync_message *msg)
{
    char buf[32];
    size_t n = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;
    if (n == 0 || n >= sizeof buf)
        return;
    memcpy(buf, msg->payload, n);
    buf[n] = '\0';
    char *end;
    long long v = strtoll(buf, &end, 10);
    if (*end != '\0' || v < 0)
        return;
    int64_t before = atomic_exchange(&ing->counters.broker_dropped, (int64_t)v);
    /* Warn on the first report too: drops while we were down count. */
    if (v > 0 && v > before)
        plat_log_limited(&ing->dropped_limit, 60000, PLAT_LOG_WARN,
                         "the broker dropped %lld messages so far (it counts all clients): size "
                         "its max_queued_messages / max_queued_bytes",
                         v);
}

static int on_message(void *ctx, char *topic, int topic_len_in, MQTTAsync_message *msg)
{
    struct ingest *ing = ctx;
    struct decode_result res;
    struct journal_event events[DECODE_MAX_FIELDS];
    struct journal_msg jm;
    uint64_t seq, key = 0;
    size_t topic_len = topic_len_in > 0 ? (size_t)topic_len_in : strlen(topic);
    const char *payload = msg->payload ? msg->payload : "";
    size_t len = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;
    bool synced = plat_clock_synced();
    unsigned reason;

    if (strcmp(topic, SYS_DROPPED_TOPIC) == 0) {
        note_broker_dropped(ing, msg);
        MQTTAsync_freeMessage(&msg);
        MQTTAsync_free(topic);
        return 1;
    }
    if (strcmp(topic, ing->query_topic) == 0 || strcmp(topic, ing->command_topic) == 0) {
        take_in_request(ing, strcmp(topic, ing->command_topic) == 0, msg);
        MQTTAsync_freeMessage(&msg);
        MQTTAsync_free(topic);
        return 1;
    }
    if (strncmp(topic, ing->cfg->mqtt.topic_prefix, ing->prefix_len) == 0 &&
        topic[ing->prefix_len] == '/') {
        /* Our own status/replies matched a broad filter such as "#": not a reading. */
        MQTTAsync_freeMessage(&msg);
        MQTTAsync_free(topic);
        return 1;
    }
    atomic_fetch_add_explicit(&ing->counters.received, 1, memory_order_relaxed);
    memset(&jm, 0, sizeof jm);
    jm.recv_ms = plat_clock_wall_ms();
    jm.mono_ms = plat_clock_mono_ms();
    jm.orig_len = (uint32_t)len;
    jm.topic = topic;
    jm.topic_len = topic_len > UINT16_MAX ? UINT16_MAX : topic_len;
    jm.payload = payload;
    jm.payload_len = len;
    jm.flags = (uint16_t)((synced ? MLOG_F_CLOCK_SYNCED : 0u) | (msg->dup ? MLOG_F_MQTT_DUP : 0u));

    reason = decode_payload(&ing->dopts, payload, len, jm.recv_ms, synced, &res);
    if (reason == DECODE_OK)
        reason = check_names(&res, topic_len);
    if (reason == DECODE_OK) {
        key = message_key(topic, topic_len, payload, len, &res);
        if (msg->dup && recent_has(ing, key)) {
            atomic_fetch_add_explicit(&ing->counters.duplicates, 1, memory_order_relaxed);
            plat_log_limited(&ing->dup_limit, 10000, PLAT_LOG_INFO,
                             "dropped a redelivered duplicate on %.*s (already journaled)",
                             (int)(topic_len > 200 ? 200 : topic_len), topic);
            goto done;
        }
        for (uint32_t i = 0; i < res.n_events; i++) {
            events[i].ts_ms = res.ev[i].ts_ms;
            events[i].value = res.ev[i].value;
            events[i].field_off = res.ev[i].field_off;
            events[i].field_len = res.ev[i].field_len;
        }
        jm.n_events = (uint16_t)res.n_events;
        jm.events = events;
        if (res.has_ts)
            jm.flags |= MLOG_F_HAS_TS;
    } else {
        jm.reason = (uint16_t)reason;
        if (len > (size_t)ing->cfg->ingest.max_payload) {
            jm.payload_len = (size_t)ing->cfg->ingest.max_payload;
            jm.flags |= MLOG_F_TRUNCATED;
        }
        plat_log_limited(
            &ing->bad_input_limit, 10000, PLAT_LOG_WARN, "dead letter on %.*s: %s (%zu bytes)",
            (int)(topic_len > 200 ? 200 : topic_len), topic, ingest_reason_str(reason), len);
    }

    el_status st = journal_append(ing->journal, &jm, &seq);
    if (st != EL_OK) {
        /* Shutdown while the journal was full or a strict msync kept
         * failing: the message is not safe, so it must not be acknowledged. Paho has no
         * way to refuse a message, so the only safe move is to stop before
         * returning: the broker redelivers it to the next run. */
        log_error("ingest: cannot journal a message (%s); exiting without acknowledging it",
                  el_status_str(st));
        _exit(75);
    }
    if (key != 0)
        recent_add(ing, key);
done:
    MQTTAsync_freeMessage(&msg);
    MQTTAsync_free(topic);
    return 1;
}

/* ---- connection management ---- */

static void on_subscribed(void *ctx, MQTTAsync_successData5 *resp)
{
    struct ingest *ing = ctx;
    int n = resp->alt.sub.reasonCodeCount;
    for (int i = 0; i < n && i < ing->cfg->ingest.n_filters; i++) {
        int code = (int)resp->alt.sub.reasonCodes[i];
        if (code >= 0x80)
            log_error("broker refused subscription %s (reason %d)", ing->cfg->ingest.filters[i],
                      code);
    }
    log_info("subscribed to %d topic filter(s) and %s, %s", ing->cfg->ingest.n_filters,
             ing->query_topic, ing->command_topic);
}

static void on_subscribe_failed(void *ctx, MQTTAsync_failureData5 *resp)
{
    (void)ctx;
    log_error("subscribe failed: %s (code %d)", resp->message ? resp->message : "?", resp->code);
}

static void on_connected(void *ctx, char *cause)
{
    struct ingest *ing = ctx;
    char *filters[EL_CFG_MAX_SUBS + 3];
    int qos[EL_CFG_MAX_SUBS + 3];
    int n = ing->cfg->ingest.n_filters;
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    (void)cause;
    atomic_store(&ing->counters.connected, 1);
    atomic_store(&ing->ever_connected, 1);
    atomic_fetch_add(&ing->counters.connects, 1);
    log_info("connected to %s as %s", ing->cfg->mqtt.uri, ing->cfg->mqtt.client_id);
    /* Always subscribe: the session may have expired, or been clean. */
    for (int i = 0; i < n; i++) {
        filters[i] = (char *)(uintptr_t)ing->cfg->ingest.filters[i];
        qos[i] = ing->cfg->ingest.qos;
    }
    filters[n] = ing->query_topic;
    qos[n++] = 1;
    filters[n] = ing->command_topic;
    qos[n++] = 1;
    /* mosquitto counts the messages it dropped (full queues): RELIABILITY.md.
     * Readable only where the broker's ACLs allow it; harmless otherwise. */
    filters[n] = (char *)(uintptr_t)SYS_DROPPED_TOPIC;
    qos[n++] = 0;
    ro.onSuccess5 = on_subscribed;
    ro.onFailure5 = on_subscribe_failed;
    ro.context = ing;
    int rc = MQTTAsync_subscribeMany(ing->client, n, filters, qos, &ro);
    if (rc != MQTTASYNC_SUCCESS)
        log_error("subscribe request failed: %s", MQTTAsync_strerror(rc));
}

static void on_connection_lost(void *ctx, char *cause)
{
    struct ingest *ing = ctx;
    atomic_store(&ing->counters.connected, 0);
    if (!ing->stopping)
        log_warn("connection to the broker lost (%s); reconnecting", cause ? cause : "no reason");
}

static void on_connect_failed(void *ctx, MQTTAsync_failureData5 *resp)
{
    struct ingest *ing = ctx;
    plat_log_limited(&ing->connect_limit, 30000, PLAT_LOG_WARN,
                     "cannot connect to %s: %s (code %d)", ing->cfg->mqtt.uri,
                     resp && resp->message ? resp->message : "no reason", resp ? resp->code : 0);
    /* After a first success Paho's automatic reconnect keeps trying on its
     * own; only a failed first connection is ours to retry. */
    if (!atomic_load(&ing->ever_connected))
        atomic_store(&ing->connect_failed, 1);
}

static el_status read_password(struct ingest *ing)
{
    const char *path = ing->cfg->mqtt.password_file;
    if (!path[0])
        return EL_OK;
    el_status st = plat_file_check_private(path);
    if (st != EL_OK)
        return st;
    FILE *f = fopen(path, "r");
    if (!f || !fgets(ing->password, sizeof ing->password, f)) {
        log_error("cannot read mqtt.password_file %s", path);
        if (f)
            fclose(f);
        return EL_IO;
    }
    fclose(f);
    ing->password[strcspn(ing->password, "\r\n")] = '\0';
    return EL_OK;
}

el_status ingest_new(const struct el_config *cfg, struct journal *journal, struct ingest **out)
{
    MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer5;
    el_status st;
    struct ingest *ing = calloc(1, sizeof *ing);
    *out = NULL;
    if (!ing)
        return EL_NOMEM;
    ing->cfg = cfg;
    ing->journal = journal;
    decode_opts_default(&ing->dopts);
    ing->dopts.value_field = cfg->ingest.value_field;
    ing->dopts.ts_field = cfg->ingest.ts_field;
    ing->dopts.fields_all = cfg->ingest.fields_all;
    ing->dopts.max_payload = (size_t)cfg->ingest.max_payload;
    ing->dopts.max_future_ms = cfg->ingest.max_future_s * 1000;
    snprintf(ing->status_topic, sizeof ing->status_topic, "%s/status", cfg->mqtt.topic_prefix);
    snprintf(ing->query_topic, sizeof ing->query_topic, "%s/query", cfg->mqtt.topic_prefix);
    snprintf(ing->command_topic, sizeof ing->command_topic, "%s/command", cfg->mqtt.topic_prefix);
    ing->prefix_len = strlen(cfg->mqtt.topic_prefix);
    atomic_store(&ing->counters.broker_dropped, -1);
    pthread_mutex_init(&ing->req_mu, NULL);
    pthread_mutex_init(&ing->out_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&ing->out_cv, &ca);
    pthread_condattr_destroy(&ca);
    ing->req_slots = calloc(INGEST_REQ_SLOTS, sizeof ing->req_slots[0]);
    bool out_ok = true;
    for (int i = 0; i < INGEST_OUT_REPLIES; i++) /* virtual until used */
        out_ok = (ing->out_replies[i].payload = malloc(INGEST_REPLY_MAX)) != NULL && out_ok;
    if (!ing->req_slots || !out_ok) {
        ingest_free(ing);
        return EL_NOMEM;
    }
    ing->backoff_ms = 1000;
    st = read_password(ing);
    if (st != EL_OK) {
        ingest_free(ing);
        return st;
    }
    co.MQTTVersion = MQTTVERSION_5;
    int rc = MQTTAsync_createWithOptions(&ing->client, cfg->mqtt.uri, cfg->mqtt.client_id,
                                         MQTTCLIENT_PERSISTENCE_NONE, NULL, &co);
    if (rc != MQTTASYNC_SUCCESS) {
        log_error("cannot create MQTT client for %s: %s", cfg->mqtt.uri, MQTTAsync_strerror(rc));
        ing->client = NULL;
        ingest_free(ing);
        return EL_MQTT;
    }
    MQTTAsync_setCallbacks(ing->client, ing, on_connection_lost, on_message, NULL);
    MQTTAsync_setConnected(ing->client, ing, on_connected);
    *out = ing;
    return EL_OK;
}

void ingest_free(struct ingest *ing)
{
    if (!ing)
        return;
    if (ing->out_started) {
        pthread_mutex_lock(&ing->out_mu);
        ing->out_quit = true;
        pthread_cond_broadcast(&ing->out_cv);
        pthread_mutex_unlock(&ing->out_mu);
        pthread_join(ing->out_thread, NULL);
    }
    if (ing->client)
        MQTTAsync_destroy(&ing->client);
    pthread_mutex_destroy(&ing->req_mu);
    pthread_mutex_destroy(&ing->out_mu);
    pthread_cond_destroy(&ing->out_cv);
    for (int i = 0; i < INGEST_OUT_REPLIES; i++)
        free(ing->out_replies[i].payload);
    free(ing->req_slots);
    free(ing);
}

static el_status connect_now(struct ingest *ing)
{
    const struct el_config *cfg = ing->cfg;
    MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer5;
    MQTTAsync_willOptions will = MQTTAsync_willOptions_initializer;
    MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
    MQTTProperties props = MQTTProperties_initializer;
    MQTTProperty p;
    static const char offline[] = "{\"state\":\"offline\"}";

    co.keepAliveInterval = cfg->mqtt.keepalive_s;
    co.cleanstart = 0;
    co.automaticReconnect = 1;
    co.minRetryInterval = 1;
    co.maxRetryInterval = 30;
    co.connectTimeout = 10;
    co.onFailure5 = on_connect_failed;
    co.context = ing;
    /* Without a session expiry an MQTT v5 session ends with the connection
     * and the broker would drop what arrives while we restart. */
    p.identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL;
    p.value.integer4 = (unsigned)cfg->mqtt.session_expiry_s;
    MQTTProperties_add(&props, &p);
    p.identifier = MQTTPROPERTY_CODE_RECEIVE_MAXIMUM;
    p.value.integer2 = (unsigned short)cfg->mqtt.max_inflight;
    MQTTProperties_add(&props, &p);
    co.connectProperties = &props;
    will.topicName = ing->status_topic;
    will.message = NULL;
    will.payload.data = offline;
    will.payload.len = (int)(sizeof offline - 1);
    will.retained = 1;
    will.qos = 1;
    co.will = &will;
    if (cfg->mqtt.username[0]) {
        co.username = cfg->mqtt.username;
        co.password = ing->password[0] ? ing->password : NULL;
    }
    if (strncmp(cfg->mqtt.uri, "ssl://", 6) == 0 || strncmp(cfg->mqtt.uri, "mqtts://", 8) == 0 ||
        strncmp(cfg->mqtt.uri, "wss://", 6) == 0) {
        ssl.trustStore = cfg->mqtt.ca_file[0] ? cfg->mqtt.ca_file : NULL;
        ssl.keyStore = cfg->mqtt.cert_file[0] ? cfg->mqtt.cert_file : NULL;
        ssl.privateKey = cfg->mqtt.key_file[0] ? cfg->mqtt.key_file : NULL;
        ssl.enableServerCertAuth = 1;
        ssl.verify = 1;
        co.ssl = &ssl;
    }
    int rc = MQTTAsync_connect(ing->client, &co);
    MQTTProperties_free(&props);
    if (rc != MQTTASYNC_SUCCESS) {
        log_error("cannot start connecting to %s: %s", cfg->mqtt.uri, MQTTAsync_strerror(rc));
        return EL_MQTT;
    }
    return EL_OK;
}

static void *out_main(void *arg);

el_status ingest_start(struct ingest *ing)
{
    ing->next_connect_ms = 0;
    el_status st = connect_now(ing);
    if (st != EL_OK)
        return st;
    if (pthread_create(&ing->out_thread, NULL, out_main, ing) != 0) {
        log_error("cannot start the MQTT outbox thread");
        return EL_NOMEM;
    }
    ing->out_started = true;
    return EL_OK;
}

/* Outbox thread: retries a failed initial connection when due. */
static void connect_tick(struct ingest *ing)
{
    int64_t now = plat_clock_mono_ms();
    if (ing->stopping)
        return;
    if (atomic_exchange(&ing->connect_failed, 0)) {
        ing->next_connect_ms = now + ing->backoff_ms;
        ing->backoff_ms = ing->backoff_ms * 2 > 30000 ? 30000 : ing->backoff_ms * 2;
    }
    if (ing->next_connect_ms != 0 && now >= ing->next_connect_ms) {
        ing->next_connect_ms = 0;
        if (connect_now(ing) != EL_OK)
            atomic_store(&ing->connect_failed, 1);
    }
    if (atomic_load(&ing->counters.connected))
        ing->backoff_ms = 1000;
}

static void on_disconnected(void *ctx, MQTTAsync_successData5 *resp)
{
    struct ingest *ing = ctx;
    (void)resp;
    atomic_store(&ing->counters.connected, 0);
    atomic_store(&ing->stopped, 1);
}

static void on_disconnect_failed(void *ctx, MQTTAsync_failureData5 *resp)
{
    struct ingest *ing = ctx;
    (void)resp;
    atomic_store(&ing->counters.connected, 0);
    atomic_store(&ing->stopped, 1);
}

static el_status publish(struct ingest *ing, const char *topic, const void *payload, size_t len,
                         int qos, bool retained);

/* Outbox thread: publishes "offline" and starts the disconnect. */
static void stop_now(struct ingest *ing, int timeout_ms)
{
    static const char offline[] = "{\"state\":\"offline\"}";
    MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer5;
    ing->stopping = true;
    if (!MQTTAsync_isConnected(ing->client)) {
        atomic_store(&ing->stopped, 1);
        return;
    }
    /* A clean disconnect does not fire the will: say it ourselves. */
    if (publish(ing, ing->status_topic, offline, sizeof offline - 1, 1, true) != EL_OK)
        log_debug("could not publish the offline status");
    d.timeout = timeout_ms;
    d.onSuccess5 = on_disconnected;
    d.onFailure5 = on_disconnect_failed;
    d.context = ing;
    if (MQTTAsync_disconnect(ing->client, &d) != MQTTASYNC_SUCCESS)
        atomic_store(&ing->stopped, 1);
}

bool ingest_stopped(const struct ingest *ing)
{
    return atomic_load(&ing->stopped) != 0;
}

static el_status publish(struct ingest *ing, const char *topic, const void *payload, size_t len,
                         int qos, bool retained)
{
    MQTTAsync_message m = MQTTAsync_message_initializer;
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    if (!MQTTAsync_isConnected(ing->client))
        return EL_AGAIN;
    m.payload = (void *)(uintptr_t)payload;
    m.payloadlen = (int)len;
    m.qos = qos;
    m.retained = retained;
    int rc = MQTTAsync_sendMessage(ing->client, topic, &m, &ro);
    return rc == MQTTASYNC_SUCCESS ? EL_OK : EL_AGAIN;
}

/* ---- outbox (ingest.h) ---- */

void ingest_stop_begin(struct ingest *ing, int timeout_ms)
{
    if (!ing->out_started) {
        atomic_store(&ing->stopped, 1);
        return;
    }
    pthread_mutex_lock(&ing->out_mu);
    ing->out_stop_req = true;
    ing->out_stop_timeout_ms = timeout_ms;
    pthread_cond_broadcast(&ing->out_cv);
    pthread_mutex_unlock(&ing->out_mu);
}

el_status ingest_publish_status(struct ingest *ing, const void *payload, size_t len)
{
    if (len > INGEST_STATUS_MAX)
        return EL_INVAL;
    pthread_mutex_lock(&ing->out_mu);
    memcpy(ing->out_status, payload, len);
    ing->out_status_len = len;
    ing->out_status_dirty = true;
    pthread_cond_broadcast(&ing->out_cv);
    pthread_mutex_unlock(&ing->out_mu);
    return EL_OK;
}

el_status ingest_reply(struct ingest *ing, const char *topic, const struct ingest_request *req,
                       const void *payload, size_t len)
{
    el_status st = EL_AGAIN;
    size_t tlen = strlen(topic);
    if (len > INGEST_REPLY_MAX || tlen >= sizeof ing->out_replies[0].topic)
        return EL_AGAIN;
    pthread_mutex_lock(&ing->out_mu);
    if (ing->out_count < INGEST_OUT_REPLIES) {
        struct out_reply *r =
            &ing->out_replies[(ing->out_head + ing->out_count) % INGEST_OUT_REPLIES];
        memcpy(r->topic, topic, tlen + 1);
        r->req.has_correlation = req->has_correlation;
        r->req.correlation_len = req->correlation_len;
        memcpy(r->req.correlation, req->correlation, req->correlation_len);
        memcpy(r->payload, payload, len);
        r->len = len;
        ing->out_count++;
        atomic_store(&ing->out_full, ing->out_count == INGEST_OUT_REPLIES);
        pthread_cond_broadcast(&ing->out_cv);
        st = EL_OK;
    }
    pthread_mutex_unlock(&ing->out_mu);
    return st;
}

#define OUT_TICK_MS 200

static void *out_main(void *arg)
{
    struct ingest *ing = arg;
    char *status = ing->out_sending;
    int64_t status_retry_ms = 0;
    pthread_mutex_lock(&ing->out_mu);
    while (!ing->out_quit) {
        int64_t now = plat_clock_mono_ms();
        bool status_due = ing->out_status_dirty && now >= status_retry_ms;
        if (!ing->out_stop_req && !status_due && ing->out_count == 0) {
            struct timespec until;
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_nsec += OUT_TICK_MS * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&ing->out_cv, &ing->out_mu, &until);
            pthread_mutex_unlock(&ing->out_mu);
            connect_tick(ing);
            pthread_mutex_lock(&ing->out_mu);
            continue;
        }
        if (ing->out_stop_req) {
            ing->out_stop_req = false;
            int timeout_ms = ing->out_stop_timeout_ms;
            pthread_mutex_unlock(&ing->out_mu);
            stop_now(ing, timeout_ms);
            pthread_mutex_lock(&ing->out_mu);
        } else if (status_due) {
            size_t len = ing->out_status_len;
            memcpy(status, ing->out_status, len);
            ing->out_status_dirty = false;
            pthread_mutex_unlock(&ing->out_mu);
            bool sent =
                !ing->stopping && publish(ing, ing->status_topic, status, len, 1, true) == EL_OK;
            pthread_mutex_lock(&ing->out_mu);
            if (!sent && !ing->stopping && !ing->out_status_dirty) {
                ing->out_status_dirty = true; /* unchanged meanwhile: still ours to send */
                status_retry_ms = now + OUT_TICK_MS;
            }
        } else {
            struct out_reply *r = &ing->out_replies[ing->out_head];
            pthread_mutex_unlock(&ing->out_mu);
            if (send_reply(ing, r->topic, &r->req, r->payload, r->len) != EL_OK)
                log_warn("could not send a reply to %s", r->topic);
            pthread_mutex_lock(&ing->out_mu);
            ing->out_head = (ing->out_head + 1) % INGEST_OUT_REPLIES;
            ing->out_count--;
            if (atomic_exchange(&ing->out_full, 0) && ing->req_wake)
                ing->req_wake(ing->req_wake_ctx); /* requests may be waiting for room */
        }
    }
    pthread_mutex_unlock(&ing->out_mu);
    return NULL;
}
