/*
 * mqtt_client — the one MQTT client helper of the project, over Eclipse
 * Paho MQTTAsync: connect (MQTT v5 or 3.1.1), keep subscriptions, publish
 * with v5 properties, ask a question and wait for its answer, and reconnect.
 * Used by the `edgelambda` CLI, loadgen and the perf tools; shaped so that
 * a daemon's control plane fits too (a retained status with a will, request
 * topics answered from a message callback, a first connection retried with
 * backoff).
 *
 * Not for: persistence of in-flight messages across restarts (Paho's
 * persistence is off), several brokers, or more than one request in flight
 * per client.
 *
 * Design:
 *   - mqtt_client_new creates the Paho client; nothing goes on the wire
 *     until mqtt_client_connect (start, then wait until ready) or
 *     mqtt_client_start (start only). "Ready" means connected AND every
 *     subscription of opts.subs (plus opts.reply_topic) acknowledged. The
 *     subscriptions are made again after every (re)connection, from Paho's
 *     `connected` callback, so a clean or expired session loses nothing; a
 *     refused one (reason >= 0x80) is an error.
 *   - Reconnection: with opts.auto_reconnect Paho reconnects by itself after
 *     a lost connection (waits from retry_min_s doubling to retry_max_s). A
 *     FIRST connection that fails is not retried by Paho: an owner that wants
 *     that calls mqtt_client_maintain periodically, which starts a new
 *     attempt after the same backoff.
 *   - Incoming messages go to opts.on_message on Paho's thread, as a
 *     borrowed view (struct mqtt_client_in: topic, payload, flags and the v5
 *     Response Topic and Correlation Data) valid only during the call; the
 *     helper frees Paho's copy afterwards and the message counts as taken
 *     (acknowledged) when the callback returns. Messages on opts.reply_topic
 *     are the helper's own (request/response) and never reach on_message.
 *   - Publishing copies nothing and allocates nothing here: v5 properties
 *     (Response Topic, Correlation Data) are built on the stack and Paho
 *     copies what it sends. Completion (PUBACK for QoS 1, PUBCOMP for QoS 2,
 *     the socket write for QoS 0) or failure is reported to an optional
 *     struct mqtt_client_done that the caller keeps alive until then.
 *   - Request/response (MQTT v5, docs/SPEC.md §7): mqtt_client_request publishes with
 *     Response Topic = opts.reply_topic (subscribed before "ready", so the
 *     answer cannot be missed) and 16 bytes of Correlation Data (8 random
 *     bytes per client, then a big-endian request counter), and waits for
 *     the message on the reply topic that carries the same correlation
 *     data; anything else there (a late answer to a request that timed out,
 *     a stranger's message) is dropped. The answer is copied into one
 *     growable buffer owned by the client (bounded by opts.max_reply_bytes),
 *     so a loop of requests allocates nothing once it has grown.
 *   - TCP_NODELAY (opts.tcp_nodelay): set on Paho's socket after every
 *     CONNACK by mqtt_socket.h (Paho has no option for it);
 *     mqtt_client_nodelay says whether it was found. Request/response wants
 *     it; a stream of small publishes may prefer Nagle's batching.
 *   - Errors: calls made by the thread that created the client record why
 *     they failed in a message (mqtt_client_error), "<what> failed:
 *     <reason> (code N)" for broker and connection failures.
 *
 * Limits: MQTT_CLIENT_MAX_SUBS filters (plus the reply topic); reply topic
 * up to MQTT_CLIENT_TOPIC_MAX bytes; answers up to opts.max_reply_bytes
 * (default 64 MiB); payloads up to 256 MiB (MQTT's limit).
 *
 * Threading: one owner thread calls the mqtt_client_* functions, except
 * mqtt_client_publish and mqtt_client_is_connected, which any thread may
 * call (callbacks included). Callbacks run on Paho's threads, never with a
 * helper lock held, so they may publish. Waits use CLOCK_MONOTONIC and end
 * early (within 100 ms) when *opts.cancel becomes non-zero.
 * Ownership: opts and everything it points at are borrowed for the
 * client's whole life; the client owns the Paho handle, the reply buffer
 * and its locks, released by mqtt_client_free.
 */
#ifndef EL_MQTT_CLIENT_H
#define EL_MQTT_CLIENT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "el_status.h"
#include "mqtt_socket.h"

#define MQTT_CLIENT_MAX_SUBS 32
#define MQTT_CLIENT_TOPIC_MAX 1024
#define MQTT_CLIENT_ERROR_MAX 256
#define MQTT_CLIENT_CORRELATION_LEN 16
#define MQTT_CLIENT_DEFAULT_MAX_REPLY (64u << 20)
#define MQTT_CLIENT_ID_MAX 64

enum mqtt_client_version {
    MQTT_CLIENT_V5 = 0, /* the default */
    MQTT_CLIENT_V311,
};

/* A topic filter to subscribe, with its maximum QoS. */
struct mqtt_client_sub {
    const char *filter;
    int qos;
};

/* The will: what the broker publishes when the connection dies uncleanly
 * (or, v5, on mqtt_client_disconnect with send_will). */
struct mqtt_client_will {
    const char *topic;
    const void *payload;
    size_t len;
    int qos;
    bool retained;
};

/* TLS files for ssl://, mqtts:// and wss:// URIs (each may be NULL). */
struct mqtt_client_tls {
    const char *ca_file;
    const char *cert_file;
    const char *key_file;
    bool verify; /* check the broker's certificate and host name */
};

/* An incoming message, borrowed for the duration of the callback. */
struct mqtt_client_in {
    const char *topic; /* NUL-terminated */
    size_t topic_len;
    const void *payload;
    size_t len;
    int qos;
    bool retained;
    bool dup;
    int packet_id;              /* 0 for QoS 0 */
    const char *response_topic; /* v5 property, NULL if absent; not NUL-terminated */
    size_t response_topic_len;
    const void *correlation; /* v5 property, NULL if absent */
    size_t correlation_len;
};

/* An outgoing message; read during mqtt_client_publish only. */
struct mqtt_client_msg {
    const char *topic;
    const void *payload;
    size_t len;
    int qos;
    bool retained;
    const char *response_topic; /* v5 Response Topic, NULL: none */
    const void *correlation;    /* v5 Correlation Data, NULL: none */
    size_t correlation_len;
};

/* Completion of one publish, on Paho's thread: ok, or Paho's code and a
 * message (never NULL on failure). */
struct mqtt_client_done {
    void (*fn)(void *ctx, bool ok, int code, const char *message);
    void *ctx;
};

struct mqtt_client_opts {
    const char *uri;       /* tcp://, mqtt://, ssl://, mqtts://, ws://, wss:// host:port */
    const char *client_id; /* mqtt_client_make_id makes a unique one */
    enum mqtt_client_version version;
    bool clean_start;             /* v5 clean start / 3.1.1 clean session */
    uint32_t session_expiry_s;    /* v5: how long the broker keeps the session */
    int keepalive_s;              /* 0: 30 */
    int connect_timeout_s;        /* 0: 10 */
    uint16_t receive_max;         /* v5 Receive Maximum sent in CONNECT; 0: not sent */
    int max_inflight;             /* Paho's window of unacknowledged publishes; 0: Paho's default */
    int max_buffered;             /* publishes Paho may queue; 0: Paho's default (100) */
    bool send_while_disconnected; /* queue publishes while reconnecting */
    const char *username;         /* NULL: none */
    const char *password;         /* NULL: none */
    const struct mqtt_client_will *will; /* NULL: none */
    const struct mqtt_client_tls *tls;   /* NULL: defaults (verify, system CAs) */
    bool auto_reconnect;
    int retry_min_s; /* 0: 1 */
    int retry_max_s; /* 0: 30 */
    bool tcp_nodelay;
    const struct mqtt_client_sub *subs; /* made on every connection */
    size_t n_subs;
    const char *reply_topic;   /* request/response (v5): subscribed at QoS 1 */
    size_t max_reply_bytes;    /* 0: MQTT_CLIENT_DEFAULT_MAX_REPLY */
    int disconnect_timeout_ms; /* mqtt_client_free's grace for in-flight work; 0: 1000 */
    void (*on_message)(void *ctx, const struct mqtt_client_in *msg);
    /* Connection up (also after an automatic reconnect) or lost (cause may
     * be NULL); on Paho's thread. */
    void (*on_connection)(void *ctx, bool up, const char *cause);
    void *ctx;
    const volatile sig_atomic_t *cancel; /* non-zero: waits end early */
};

struct mqtt_client;

/* Writes "<stem>-<pid>-<8 random hex digits>" into buf; returns its length
 * (0 if it does not fit). */
size_t mqtt_client_make_id(const char *stem, char *buf, size_t cap);

/* Creates a client from opts (borrowed until mqtt_client_free). EL_INVAL:
 * a URI or client id Paho refuses, too many subscriptions, a reply topic
 * that is too long or has wildcards, or a reply topic without v5; EL_NOMEM.
 * On failure *out is NULL and err (err_len bytes, may be NULL) says why. */
EL_MUST_CHECK el_status mqtt_client_new(const struct mqtt_client_opts *opts,
                                        struct mqtt_client **out, char *err, size_t err_len);

/* Disconnects (waiting at most opts.disconnect_timeout_ms for in-flight
 * work), stops Paho (no callback runs after this returns) and frees. NULL
 * is a no-op. */
void mqtt_client_free(struct mqtt_client *c);

/* Starts connecting without waiting. EL_MQTT if Paho refused to start. */
EL_MUST_CHECK el_status mqtt_client_start(struct mqtt_client *c);

/* Waits at most timeout_s until ready (connected and subscribed). EL_OK;
 * EL_MQTT: refused, failed or lost (mqtt_client_error says why); EL_AGAIN:
 * not ready in time, or cancelled. */
EL_MUST_CHECK el_status mqtt_client_wait_ready(struct mqtt_client *c, double timeout_s);

/* mqtt_client_start, then mqtt_client_wait_ready. */
EL_MUST_CHECK el_status mqtt_client_connect(struct mqtt_client *c, double timeout_s);

/* For owners that retry a failed first connection (auto_reconnect): call
 * now and then (e.g. once a second) with the monotonic time; starts a new
 * attempt once the backoff since the failure has passed. No-op otherwise. */
void mqtt_client_maintain(struct mqtt_client *c, int64_t now_mono_ms);

/* Publishes msg (QoS 0-2, retained, v5 properties). EL_OK: handed to Paho
 * (done->fn runs later, if done is not NULL; done must stay valid until
 * then or until mqtt_client_free). EL_MQTT/EL_AGAIN: refused now (not
 * connected and not buffering, queue full, bad topic): done->fn will not
 * run. EL_INVAL: properties on a 3.1.1 client, or over 256 MiB. */
EL_MUST_CHECK el_status mqtt_client_publish(struct mqtt_client *c,
                                            const struct mqtt_client_msg *msg,
                                            const struct mqtt_client_done *done);

/* Publishes payload[0..len) to topic at qos as a v5 request and waits at
 * most timeout_s for its answer on opts.reply_topic. EL_OK: *reply
 * (NUL-terminated) and *reply_len point into the client's buffer, valid
 * until the next request or mqtt_client_free. EL_AGAIN: no answer in time
 * (or cancelled); EL_MQTT: the publish failed or the connection was lost;
 * EL_NOMEM: the answer exceeded max_reply_bytes or its buffer could not
 * grow; EL_INVAL: no reply topic, not connected yet, or over 256 MiB. */
EL_MUST_CHECK el_status mqtt_client_request(struct mqtt_client *c, const char *topic,
                                            const void *payload, size_t len, int qos,
                                            double timeout_s, const char **reply,
                                            size_t *reply_len);

/* Disconnects now, waiting at most timeout_ms for in-flight work and the
 * broker's goodbye; v5 with send_will asks the broker to publish the will
 * anyway. Automatic reconnection stops. EL_OK also when not connected. */
EL_MUST_CHECK el_status mqtt_client_disconnect(struct mqtt_client *c, int timeout_ms,
                                               bool send_will);

/* True while a connection is up (any thread). */
bool mqtt_client_is_connected(struct mqtt_client *c);

/* True if TCP_NODELAY was found set or was set on the current connection's
 * socket (opts.tcp_nodelay). */
bool mqtt_client_nodelay(struct mqtt_client *c);

/* The CLOCK_MONOTONIC time seconds from now: the clock of the helper's own
 * waits, for owners that wait on a condition variable of their own (created
 * with CLOCK_MONOTONIC) for what their callbacks receive. */
struct timespec mqtt_client_deadline(double seconds);

/* Why the owner's last call failed ("" if none); owned by c, valid until
 * the next call on c. */
const char *mqtt_client_error(const struct mqtt_client *c);

#endif
