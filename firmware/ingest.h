/*
 * ingest — the MQTT side of the daemon: the Paho MQTTAsync client, the
 * messageArrived callback that makes each reading safe, and publishing
 * (status, replies) for the core.
 *
 * DESIGN. messageArrived runs on Paho's thread, one message at a time, and
 * Paho sends the QoS 1/2 acknowledgement only after it returns 1
 * (RELIABILITY.md). So the callback decodes the payload (pure, no heap),
 * writes ONE journal record (journal.h: safe against a process crash once
 * written, against power loss in strict mode) and only then returns 1. It
 * never returns 0 (that makes Paho acknowledge at once and lose the message
 * on a crash). Bad input becomes a dead-letter record in the same journal, so
 * it is kept and counted, never dropped.
 *
 * Duplicates: after a crash between journal write and PUBACK the broker
 * redelivers the message with DUP=1. A DUP delivery whose (first series
 * name, payload) hash matches one of the last INGEST_DEDUP_WINDOW messages
 * is counted and dropped. The window is seeded from the master log at
 * start-up; the broker can only redeliver its in-flight window (at most
 * mqtt.max_inflight messages), far fewer than the dedup window.
 *
 * Session: MQTT v5, clean start off with a session expiry, a stable client
 * id, so the broker queues readings while the daemon is down; automatic
 * reconnect; subscriptions are (re)made on every connect.
 *
 * Outbox: Paho holds its client mutex while messageArrived runs, and
 * messageArrived may wait for the core (the journal is full, or held while
 * the master log cannot be written). A core thread calling into Paho then
 * would wait for that mutex and never commit: a deadlock. So the core never
 * calls Paho after ingest_start: it leaves the latest status and its replies
 * in a bounded outbox (copies) and the "el-mqtt-out" thread sends them, and
 * also runs connection retries and the disconnect at stop.
 *
 * Threading: ingest_new/start/stop on the core thread; the callbacks run on
 * Paho's threads and touch only the journal (producer side), the dedup
 * window and atomics; ingest_publish_status and ingest_reply only copy into
 * the outbox and never block on Paho.
 */
#ifndef EL_INGEST_H
#define EL_INGEST_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "decode.h"
#include "el_status.h"
#include "journal.h"

#define INGEST_DEDUP_WINDOW 8192

/* Dead-letter reason codes stored in journal records: decode reasons first. */
enum ingest_reason {
    INGEST_REASON_NAME_TOO_LONG = DECODE_REASON_COUNT, /* series name > 255 bytes */
    INGEST_REASON_SERIES_LIMIT,                        /* speed.max_series reached */
    INGEST_REASON_COUNT
};
const char *ingest_reason_str(unsigned reason);

struct ingest;

/* Counters the core reads for status (atomics; written by Paho threads). */
struct ingest_counters {
    _Atomic uint64_t received;   /* messages that reached messageArrived */
    _Atomic uint64_t duplicates; /* DUP redeliveries recognised and dropped */
    _Atomic uint64_t connects;   /* successful (re)connections */
    _Atomic int connected;
    _Atomic int64_t broker_dropped; /* $SYS/broker/publish/messages/dropped, -1 unknown */
};

/* cfg and journal are borrowed and must outlive the ingest. wake(ctx) is
 * called from Paho threads when the connection state changes. */
EL_MUST_CHECK el_status ingest_new(const struct el_config *cfg, struct journal *journal,
                                   struct ingest **out);
void ingest_free(struct ingest *ing);
const struct ingest_counters *ingest_counters(const struct ingest *ing);

/* Seeds the duplicate window (before ingest_start): one series name and payload. */
void ingest_seed_recent(struct ingest *ing, const char *series, size_t series_len,
                        const void *payload, size_t payload_len);

/* Starts connecting (returns at once; connection and subscriptions follow in
 * the background, retried with backoff). */
EL_MUST_CHECK el_status ingest_start(struct ingest *ing);
/* Asks the outbox thread to publish {"state":"offline"} (retained), then
 * disconnect (done, or given up, after timeout_ms). The core must keep
 * draining the journal meanwhile: poll ingest_stopped(). */
void ingest_stop_begin(struct ingest *ing, int timeout_ms);
bool ingest_stopped(const struct ingest *ing);

/* ---- requests (queries and commands) ----
 * Messages on <prefix>/query and <prefix>/command are copied by the Paho
 * thread into a bounded queue of INGEST_REQ_SLOTS requests of at most
 * INGEST_REQ_MAX bytes; the core takes them with ingest_take_request. When
 * the queue is full, the request is answered at once with a "busy" error. */
#define INGEST_REQ_SLOTS 32
#define INGEST_REQ_MAX 16384
#define INGEST_PROP_MAX 256

struct ingest_request {
    bool is_command;
    size_t len;
    char payload[INGEST_REQ_MAX];
    char response_topic[INGEST_PROP_MAX + 1]; /* "" when none (MQTT 3.1.1 style) */
    unsigned char correlation[INGEST_PROP_MAX];
    size_t correlation_len;
    bool has_correlation;
};

/* Core: copies the oldest waiting request into *out; false when none, or
 * while the outbox has no room for its answer (requests then wait; when
 * their queue is full, new ones are answered "busy"). */
bool ingest_take_request(struct ingest *ing, struct ingest_request *out);
/* Queues a reply on topic with the request's correlation data (MQTT v5);
 * sent by the outbox thread. EL_AGAIN when INGEST_OUT_REPLIES replies are
 * still waiting or the reply is larger than INGEST_REPLY_MAX. */
#define INGEST_OUT_REPLIES 4
#define INGEST_REPLY_MAX (4u << 20)
EL_MUST_CHECK el_status ingest_reply(struct ingest *ing, const char *topic,
                                     const struct ingest_request *req, const void *payload,
                                     size_t len);
/* True if a request is waiting (core, before sleeping). */
bool ingest_has_request(struct ingest *ing);
/* Wake-up hook for requests (called from the Paho thread). */
void ingest_set_request_wakeup(struct ingest *ing, void (*fn)(void *ctx), void *ctx);

/* Leaves the status document (retained, QoS 1) in the outbox, replacing an
 * unsent older one; sent when connected. EL_INVAL if over INGEST_STATUS_MAX. */
#define INGEST_STATUS_MAX 8192
EL_MUST_CHECK el_status ingest_publish_status(struct ingest *ing, const void *payload, size_t len);
/* The status topic ("<prefix>/status"). */
const char *ingest_status_topic(const struct ingest *ing);

#endif
