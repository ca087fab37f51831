/*
 * control — the daemon's control plane: its own MQTT connection (libmosquitto)
 * for queries, commands, replies and the retained status, beside the Paho
 * connection that ingests readings.
 *
 * WHY A SECOND CONNECTION, AND A SECOND LIBRARY. Paho's messageArrived must
 * not return before a reading is journaled (ingest.h), so it blocks while the
 * journal is full or a strict msync keeps failing. Paho MQTTAsync runs one
 * receive thread and one send thread for every client in the process, and
 * holds the client's lock during the callback: a second Paho client would be
 * held too, and so was everything the daemon said -- status went stale, the
 * broker ended the connection and published the will ("offline") while the
 * daemon was alive and reporting why it held ingest. Paho's synchronous
 * library (paho-mqtt3c) shares symbol names with the asynchronous one and
 * cannot be linked beside it. libmosquitto (Debian libmosquitto1, the
 * broker's own client library, already installed with mosquitto-clients)
 * runs each connection on a thread of our choosing: here "el-control", which
 * calls mosquitto_loop itself and reconnects with backoff (its
 * loop_forever gives up for good on TLS or auth errors).
 *
 * The connection is a persistent MQTT v5 session (clean start off, the
 * readings' session expiry): a request sent while the daemon restarts is
 * queued by the broker and answered once it is back, as a client with a
 * timeout expects. It carries the
 * will "offline" on <prefix>/status, subscribes to <prefix>/query and
 * <prefix>/command at QoS 1, and publishes the status (retained, QoS 1) and
 * replies (QoS 0, the request's correlation data). TCP_NODELAY is set through
 * the library (MOSQ_OPT_TCP_NODELAY).
 *
 * Requests: the el-control thread first offers a query to the quick lane
 * (control_set_quick_lane, requests.h): a cheap query, with nothing waiting
 * ahead of it, is answered there and then, on el-control, its reply written
 * by the same thread's next loop -- no thread hand-off. Everything else is
 * copied into a bounded queue of CONTROL_REQ_SLOTS; the serving thread takes
 * them (control_take_request).
 * When the queue is full the request is answered "busy" at once, from the
 * el-control thread. Replies: libmosquitto copies what it publishes (one
 * allocation per reply, not per reading); at most CONTROL_OUT_SLOTS replies
 * may wait to be written at once, after which control_take_request returns
 * false and requests wait in their queue (bounded memory: CONTROL_OUT_SLOTS x
 * CONTROL_REPLY_MAX). Reading the v5 properties allocates copies too
 * (libmosquitto's API); both are per request, never per reading.
 *
 * Threading: control_new/start/stop/free on the core thread;
 * control_publish_status from the core thread; control_take_request and
 * control_reply from the serving thread, or from the quick lane on el-control
 * (inside on_message); callbacks on el-control. One lock
 * of ours is held across a library call: control_reply holds the reply
 * slots' mutex across mosquitto_publish_v5, so that the reply's on_publish
 * finds the slot knowing its message id (the lock order is argued in
 * control.c, "reply slots"). An earlier design settled the id after the call
 * and kept early on_publish ids in a small ring; under a flood of "busy"
 * replies the ring overflowed, slots leaked and the serving thread stopped
 * taking requests (CI, test_hostile_requests).
 */
#ifndef EL_CONTROL_H
#define EL_CONTROL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "el_status.h"
#include "mqtt_socket.h"
#include "mqtt_topic.h"

#define CONTROL_REQ_SLOTS 128
#define CONTROL_REQ_MAX 16384
#define CONTROL_PROP_MAX 256
#define CONTROL_REPLY_MAX (4u << 20)
#define CONTROL_STATUS_MAX 8192
#define CONTROL_OUT_SLOTS 4
#define CONTROL_MAX_FILTERS 16

struct control;

struct control_opts {
    /* client_id gets "-ctl"; session_expiry_s: how long QoS 1 requests wait
     * in the broker while the daemon restarts */
    struct mqtt_conn_opts conn;
    /* The ingest subscriptions: replies may not be published there. */
    const char *const *filters;
    int n_filters;
};

/* Read by the core for status (atomics). */
struct control_counters {
    _Atomic int connected;  /* CONNACK received, not lost since */
    _Atomic int subscribed; /* the query and command subscriptions are in place */
    _Atomic uint64_t connects;
    _Atomic uint64_t requests_busy;                       /* answered "busy" at intake */
    _Atomic uint64_t requests_busy_unsent;                /* ... the reply could not be sent */
    _Atomic uint64_t requests_rejected[MQTT_TOPIC_COUNT]; /* busy, no usable reply topic */
    _Atomic uint64_t replies_unsent;                      /* refused or lost with the connection */
};

struct control_request {
    bool is_command;
    size_t len;
    char payload[CONTROL_REQ_MAX];
    char response_topic[CONTROL_PROP_MAX + 1]; /* "" when none; cut */
    size_t response_topic_len;                 /* its full length on the wire */
    bool has_response_topic;
    unsigned char correlation[CONTROL_PROP_MAX];
    size_t correlation_len;
    bool has_correlation;
    int64_t arrived_mono_ms; /* when el-control queued it (CLOCK_MONOTONIC) */
};

/* opts' strings are borrowed: they must outlive the control plane. */
EL_MUST_CHECK el_status control_new(const struct control_opts *opts, struct control **out);
/* Starts el-control: connects in the background, retried with backoff. */
EL_MUST_CHECK el_status control_start(struct control *c);
/* Publishes {"state":"offline"} (retained), disconnects with the will as the
 * reason, and joins el-control; returns within about timeout_ms. */
void control_stop(struct control *c, int timeout_ms);
void control_free(struct control *c);

const struct control_counters *control_counters(const struct control *c);
/* Where replies may not go (mqtt_topic.h): the ingest filters and the
 * daemon's query/command/status topics. Read-only after control_new. */
const struct mqtt_topic_rules *control_reply_rules(const struct control *c);
const char *control_status_topic(const struct control *c);

/* Serving thread: copies the oldest waiting request into *out; false when
 * none, or while CONTROL_OUT_SLOTS replies still wait to be written. */
bool control_take_request(struct control *c, struct control_request *out);
/* Called (from el-control) when a request arrives or a reply slot frees. */
void control_set_request_wakeup(struct control *c, void (*fn)(void *ctx), void *ctx);
/* The quick lane: el-control calls fn(ctx, req) for each query that arrives
 * while no request waits in the queue and a reply slot is free; fn answers
 * it (control_reply) and returns true, or returns false and the request is
 * queued as any other. fn runs inside libmosquitto's on_message with none of
 * our locks held. Set before control_start. */
void control_set_quick_lane(struct control *c,
                            bool (*fn)(void *ctx, const struct control_request *req), void *ctx);
/* Serving thread: publishes a reply (QoS 0) with the request's correlation
 * data. EL_AGAIN when not connected, no reply slot is free, or the library
 * refused it (the caller counts it unsent). */
EL_MUST_CHECK el_status control_reply(struct control *c, const char *topic,
                                      const struct control_request *req, const void *payload,
                                      size_t len);
/* Serving thread: a continuous-query or watch message (continuous.h), with
 * correlation data when corr_len > 0. Not bound by the reply slots: the
 * caller bounds the rate (a token bucket) and a message is one bucket.
 * EL_AGAIN when not connected or the library refused it. */
EL_MUST_CHECK el_status control_publish(struct control *c, const char *topic, const void *corr,
                                        size_t corr_len, const void *payload, size_t len, int qos,
                                        bool retain);
/* Core: the latest status document (retained, QoS 1); published now when
 * connected, else on the next connection. EL_INVAL if over CONTROL_STATUS_MAX. */
EL_MUST_CHECK el_status control_publish_status(struct control *c, const void *payload, size_t len);

#endif
