/*
 * ingest — the MQTT side of the daemon: the Paho MQTTAsync client, the
 * messageArrived callback that makes each reading safe, and publishing
 * (status, replies) for the core.
 *
 * DESIGN. messageArrived runs on Paho's thread, one message at a time, and
 * Paho sends the QoS 1/2 acknowledgement only after it returns 1
 * (docs/RELIABILITY.md). So the callback decodes the payload (pure, no heap),
 * writes ONE journal record (journal.h: safe against a process crash once
 * written, against power loss in strict mode) and only then returns 1. It
 * never returns 0 (that makes Paho acknowledge at once and lose the message
 * on a crash). Bad input becomes a dead-letter record in the same journal, so
 * it is kept and counted, never dropped.
 *
 * Duplicates: after a crash the broker redelivers (DUP=1) every message
 * whose PUBACK it had not processed, journaled or not. How many that is is
 * NOT bounded by our Receive Maximum (mqtt.max_inflight) or by mosquitto's
 * max_inflight_messages: mosquitto 2.0.11 refills its in-flight list from
 * the client's queue by the acknowledged message's position, not by the
 * in-flight count, so with a backlog queued it keeps tens of thousands of
 * messages in flight; and PUBACKs written to the socket but not yet read
 * by the broker are discarded when our connection dies (docs/RELIABILITY.md:
 * 11,000 journaled messages redelivered after one kill -9). So the key is
 * the MQTT packet identifier, not a window of recent payloads:
 *
 *   ids[P] = (fingerprint of topic+payload, ordinal) of the last QoS>0
 *   delivery we handled with packet id P; the ordinal counts deliveries
 *   that were new (journaled, or requests), not recognised redeliveries.
 *   A DUP delivery with id P is a duplicate iff ids[P] holds its
 *   fingerprint and at most INGEST_IDS_MAX_AGE new deliveries came since.
 *
 * Why that is exact, relying on (1) MQTT: a redelivery reuses the original
 * packet id, an id is not given to another message until the broker has
 * processed its PUBACK, redeliveries come first on reconnect and in the
 * original order, a connection's PUBACKs are processed in order; (2) the
 * broker assigns packet ids sequentially (mosquitto: last_mid + 1):
 * - no duplicate missed: if we journaled M with id P and M comes back, its
 *   PUBACK was never processed, so P was not reused since and ids[P] is
 *   still M's. Every new delivery after M was acknowledged after M, so
 *   none of their PUBACKs was processed either: they all hold distinct ids,
 *   fewer than 65535 of them, so M's age is <= INGEST_IDS_MAX_AGE.
 * - nothing dropped that was not journaled: if ids[P] is an earlier M'
 *   with the same fingerprint, P was freed and handed out again, i.e. all
 *   other 65534 ids were assigned after M'; those messages came before M
 *   and were all handled as new deliveries before M arrives, so M' is
 *   older than INGEST_IDS_MAX_AGE. (With a broker that reuses ids at once,
 *   a false match would also need a byte-identical topic and payload.)
 * Not covered: a broker with more than 65,535 messages in flight to us, which
 * must then give one id to two of them (mosquitto 2.0.11 starved for minutes
 * may: docs/RELIABILITY.md, "Open"); the older one can be stored twice.
 * The table (1 MiB + a header) lives in the shared file mapping
 * <storage.dir>/ingest-ids, written with plain stores on the Paho thread:
 * it survives a process crash in the page cache like the journal. A slot is
 * written after journal_append, announced before it by a "pending" entry
 * (applied at start-up if the journal holds that record). At start
 * (ingest_start) the table is trusted only if it was written in this boot
 * and its journal position equals the recovered one (journal_next_seq);
 * after a clean stop no journaled message can come back, so it is emptied;
 * otherwise (power cut, reboot, restored data, a new broker session) it is
 * emptied and, for the next INGEST_IDS_MAX_AGE deliveries, a DUP delivery
 * whose (first series name, payload) hash matches one of the newest
 * INGEST_DEDUP_WINDOW events of the master log (seeded by the core) is
 * taken for a duplicate instead: the content rule used before, kept only
 * for that case. Recognised duplicates are acknowledged, counted, dropped.
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
 * also runs connection retries and the disconnect at stop. The Paho thread
 * itself never calls Paho either: a request refused because the queue is
 * full leaves its "busy" reply (address only) in the outbox too. Paho copies
 * what it sends: the outbox hands it at most 4 replies at a time and waits
 * for their completion callbacks, so its copies stay bounded too.
 *
 * Threading: ingest_new/start/stop on the core thread; the callbacks run on
 * Paho's threads and touch only the journal (producer side), the dedup
 * tables and atomics; ingest_publish_status and ingest_reply only copy into
 * the outbox and never block on Paho.
 */
#ifndef EL_INGEST_H
#define EL_INGEST_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "decode.h"
#include "el_status.h"
#include "journal.h"
#include "mqtt_topic.h"

/* Events of the master log seeded for the fallback rule (Duplicates). */
#define INGEST_DEDUP_WINDOW 65536
/* Most new deliveries after a message while it may still come back. */
#define INGEST_IDS_MAX_AGE 65534u

/* Dead-letter reason codes stored in journal records: decode reasons first. */
/* Dead-letter reasons of ingest's own, numbered beside decode's (the
 * numbers are stored in journal records: never renumber, see decode.h). */
enum ingest_reason {
    INGEST_REASON_NAME_TOO_LONG = 7, /* series name > 255 bytes */
    INGEST_REASON_SERIES_LIMIT = 8,  /* speed.max_series reached */
    INGEST_REASON_COUNT = DECODE_REASON_COUNT
};
_Static_assert(DECODE_TOO_MANY_FIELDS == 6 && DECODE_NON_NUMERIC == 9 &&
                   (int)INGEST_REASON_SERIES_LIMIT < (int)DECODE_REASON_COUNT,
               "reason numbers are stored in the journal");
const char *ingest_reason_str(unsigned reason);

struct ingest;

/* Counters the core reads for status (atomics; written by Paho threads). */
struct ingest_counters {
    _Atomic uint64_t received;   /* messages that reached messageArrived */
    _Atomic uint64_t duplicates; /* DUP redeliveries recognised and dropped */
    _Atomic uint64_t connects;   /* successful (re)connections */
    _Atomic int connected;
    _Atomic int tcp_nodelay;        /* set on the current connection */
    _Atomic int64_t broker_dropped; /* $SYS/broker/publish/messages/dropped, -1 unknown */
    /* requests refused at intake because the queue was full: */
    _Atomic uint64_t requests_busy;                       /* answered "busy" */
    _Atomic uint64_t requests_busy_unsent;                /* the busy reply could not be sent */
    _Atomic uint64_t requests_rejected[MQTT_TOPIC_COUNT]; /* no usable reply topic, by reason */
    _Atomic uint64_t replies_unsent; /* replies Paho refused or failed to write */
};

#define INGEST_STR_MAX 256    /* names, topics, field names (with their NUL) */
#define INGEST_MAX_FILTERS 16 /* ingest subscriptions */

/* What ingest needs of the configuration ([mqtt] and [ingest] keys, and
 * storage.dir for the redelivery table). Strings are borrowed: they must
 * outlive the ingest (the daemon's configuration does). */
struct ingest_opts {
    const char *uri, *client_id, *username, *password_file, *topic_prefix;
    const char *ca_file, *cert_file, *key_file; /* "" = none */
    int keepalive_s, session_expiry_s, max_inflight;
    bool tcp_nodelay;           /* on the broker connection (mqtt_socket.h) */
    const char *const *filters; /* n_filters subscription filters */
    int n_filters;
    int qos;
    const char *value_field, *ts_field;
    bool fields_all;
    const char *state_words; /* decode_words_parse syntax; NULL: none */
    int64_t max_payload, max_future_s;
    const char *dir;
};

/* opts (and its strings) and journal are borrowed and must outlive the ingest. */
EL_MUST_CHECK el_status ingest_new(const struct ingest_opts *opts, struct journal *journal,
                                   struct ingest **out);
void ingest_free(struct ingest *ing);
const struct ingest_counters *ingest_counters(const struct ingest *ing);

/* Core, after the journal replay (journal_next_seq final): decides whether
 * the packet-id table can be trusted ("Duplicates" above); true if the
 * fallback rule applies, i.e. ingest_seed_recent wants the newest
 * INGEST_DEDUP_WINDOW events. (ingest_start decides if this was not called.) */
bool ingest_wants_seed(struct ingest *ing);
/* Seeds the fallback rule (before ingest_start): one series name and payload
 * of a recent event. */
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
#define INGEST_REQ_SLOTS 128
#define INGEST_PAHO_QUEUE 2048 /* messages Paho may queue for sending */
#define INGEST_REQ_MAX 16384
#define INGEST_PROP_MAX 256

struct ingest_request {
    bool is_command;
    size_t len;
    char payload[INGEST_REQ_MAX];
    char response_topic[INGEST_PROP_MAX + 1]; /* "" when none (MQTT 3.1.1 style); cut */
    size_t response_topic_len;                /* its full length on the wire */
    bool has_response_topic;                  /* the v5 Response Topic property was present */
    unsigned char correlation[INGEST_PROP_MAX];
    size_t correlation_len;
    bool has_correlation;
    int64_t arrived_mono_ms; /* when the Paho thread queued it (CLOCK_MONOTONIC) */
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
/* Where replies may not go (mqtt_topic.h): the ingest filters and the daemon's
 * query/command/status topics. Built at ingest_new; read-only after. */
const struct mqtt_topic_rules *ingest_reply_rules(const struct ingest *ing);
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
