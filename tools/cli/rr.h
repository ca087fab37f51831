/*
 * rr — MQTT v5 request/response over one Paho MQTTAsync connection: the way
 * the `edgelambda` client asks edgelambdad a question (SPEC §7).
 *
 * Not for: MQTT 3.1.1 ("reply_to"/"id" in the JSON), streams, or more than
 * one request in flight.
 *
 * Design: rr_connect connects with MQTTVERSION_5 (clean start) and
 * subscribes to a reply topic of its own, "<prefix>/reply/<client id>/<n>"
 * (client id "elcli-<pid>-<random hex>", n counts connections in this
 * process), and waits for the SUBACK, so the subscription exists BEFORE any
 * request is published. rr_request publishes the payload with two v5
 * properties, Response Topic (that topic) and Correlation Data (16 bytes: 8
 * random bytes drawn per connection, then a big-endian request counter), and
 * waits until a message whose correlation data equals the request's arrives
 * on the reply topic; anything else (a late answer to a request that timed
 * out, a stranger's message) is dropped. Requests are strictly sequential.
 * Requests are published at QoS 0, like mosquitto_rr's default: the broker
 * is local and a lost request ends in the caller's timeout. QoS 1 would cost ~40 ms per request
 * against a Paho responder (edgelambdad, el_echo_responder): its PUBACK and its answer are two
 * small writes on a socket without TCP_NODELAY, so the answer waits for the broker's delayed ACK of
 * the PUBACK (Nagle). The properties are built once per connection; a request only rewrites the
 * correlation bytes in place, and the reply is copied into one growable
 * buffer owned by the client (bounded by RR_MAX_REPLY), so a loop of
 * requests allocates nothing in this module (Paho copies what it sends and
 * allocates what it receives).
 *
 * Limits: reply topics up to RR_TOPIC_MAX bytes (edgelambdad accepts response
 * topics up to 256); replies up to RR_MAX_REPLY bytes (larger ones fail the
 * request with EL_NOMEM); requests up to 256 MiB (MQTT's limit).
 *
 * Threading: one thread calls the rr_* functions of a client; Paho's
 * callback thread hands the reply over under the client's mutex.
 */
#ifndef EL_RR_H
#define EL_RR_H

#include <stddef.h>

#include "el_status.h"

#define RR_TOPIC_MAX 256
#define RR_MAX_REPLY (64u << 20)
#define RR_CORRELATION_LEN 16

struct rr_client;

/* Allocates a client for broker uri; prefix is the reply topics' prefix
 * (the daemon's topic prefix; copied). Nothing is sent until rr_connect.
 * Returns EL_INVAL for a URI Paho refuses or a prefix too long for a reply
 * topic, EL_NOMEM; *out is NULL on failure and the reason is printed to
 * stderr (there is no client to hold it). */
EL_MUST_CHECK el_status rr_new(const char *uri, const char *prefix, struct rr_client **out);

/* Disconnects (bounded to 1 s) and frees; NULL is a no-op. */
void rr_free(struct rr_client *c);

/* Connects and subscribes to the reply topic, waiting at most timeout_s.
 * EL_OK when the subscription is in place; EL_AGAIN on timeout; EL_MQTT
 * when the broker refused or the connection failed (rr_error says why). */
EL_MUST_CHECK el_status rr_connect(struct rr_client *c, double timeout_s);

/* Publishes payload[0..len) to topic (QoS 0) and waits at most timeout_s
 * for the matching reply. On EL_OK, *reply (NUL-terminated) and *reply_len
 * point into the client's buffer, valid until the next rr_request or
 * rr_free. EL_AGAIN: no reply in time; EL_MQTT: publish failed or the
 * connection was lost; EL_NOMEM: the reply exceeded RR_MAX_REPLY or its
 * buffer could not grow. rr_error says why on failure. */
EL_MUST_CHECK el_status rr_request(struct rr_client *c, const char *topic, const void *payload,
                                   size_t len, double timeout_s, const char **reply,
                                   size_t *reply_len);

/* The reply topic ("<prefix>/reply/<client id>/<n>"); owned by c. */
const char *rr_reply_topic(const struct rr_client *c);

/* The last failure's description ("" if none); owned by c, valid until
 * the next call on c. */
const char *rr_error(const struct rr_client *c);

#endif
