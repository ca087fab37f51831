/*
 * ingest — the readings' MQTT connection: the Paho MQTTAsync client and the
 * messageArrived callback that makes each reading safe. Queries, commands,
 * replies and the status go over the control plane's own connection
 * (firmware/serve/control.h), which stays answerable while this one is held.
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
 *   that were new (journaled, or on the daemon's own topics), not recognised
 *   redeliveries.
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
 * The el-mqtt-out thread: Paho holds its client mutex while messageArrived
 * runs, and messageArrived may wait for the core (the journal is full, or
 * held while the master log cannot be written). A core thread calling into
 * Paho then would wait for that mutex and never commit: a deadlock. So the
 * core never calls Paho after ingest_start; "el-mqtt-out" retries a failed
 * first connection and disconnects at stop.
 *
 * Replay (issue #13, firmware/daemon/replay.h): a dead letter is decoded
 * again with the current [decode]/[ingest] configuration and, if it now
 * yields events, journaled as ONE record with its original receive and
 * monotonic times, MLOG_F_REPLAYED and the dead letter's seq as the
 * record's ref (journal.h); the core marks the dead letter in the
 * transaction that commits the events. So the journal has two producers:
 * the Paho thread and the thread that replays (the serving thread). They
 * take turns under produce_mu around journal_append and the packet-id
 * table's journal position (a replay record takes seqs too: without it the
 * table would not match the journal after a crash). The Paho thread's cost
 * is one uncontended lock per message (5 ns here, within the noise of a
 * ~450 ns append: docs/BENCHMARKS.md); a replay
 * holds it for one append, or while the journal is full (then ingest is held
 * anyway).
 *
 * Reload: the decoding rules (the [decode] sections and the [ingest]
 * value_field, ts_field, fields, state_words, max_future_s) are one table,
 * struct ingest_rules, that copies every string it uses. The core builds a
 * new one (ingest_set_rules: the allocation happens there, never per
 * message) and publishes it with an atomic pointer (release). The Paho
 * thread loads the pointer (acquire) once per message, before decoding it,
 * so a message is decoded wholly by one table, and acknowledges the table's
 * generation (release). The core frees older tables only once the newest
 * generation is acknowledged (ingest_rules_collect, acquire): after that the
 * Paho thread never reads them again. At most INGEST_RULES_RETIRED tables
 * wait for that (no message arrived since); a further reload of the rules
 * gets EL_AGAIN. No lock on the hot path. The Sparkplug B state (aliases
 * from the births, per edge node) belongs to the ingest, not to a table: it
 * survives a reload, and is made on the core thread by the first table with
 * a sparkplug_b section.
 *
 * Threading: ingest_new/start/stop/set_rules/rules_collect on the core
 * thread; the callbacks run on Paho's threads and touch only the journal
 * (producer side, under produce_mu), the dedup tables, the published rules
 * and atomics; ingest_replay on one other thread (the published rules, as
 * the Paho thread reads them; its own scratch; produce_mu).
 */
#ifndef EL_INGEST_H
#define EL_INGEST_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "decode.h"
#include "decode_cbor.h"
#include "decode_influx.h"
#include "decode_sparkplug.h"
#include "el_status.h"
#include "journal.h"
#include "mqtt_socket.h"
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
_Static_assert(INGEST_REASON_COUNT <= 255, "a dead letter's reason shares its journal field "
                                           "with the detail's length (journal.h)");
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
    /* Sparkplug B ([decode] format = sparkplug_b), copied after each message */
    _Atomic int sparkplug_on;
    _Atomic uint64_t sp_births, sp_deaths, sp_seq_gaps, sp_unknown_alias, sp_aliases_full;
};

#define INGEST_STR_MAX 256    /* names, topics, field names (with their NUL) */
#define INGEST_MAX_FILTERS 16 /* ingest subscriptions */

/* One [decode "<filter>"] section: how payloads on matching topics are
 * decoded (the first whose filter matches; none: the ingest_opts keys).
 * Strings are borrowed; "" means the ingest_opts value. */
struct ingest_decoder {
    const char *filter;
    enum decode_format format;
    enum decode_precision precision; /* influx */
    const char *value_field, *ts_field;
    enum decode_time_unit time_unit;
    int fields_all; /* 0, 1, or -1: ingest_opts.fields_all */
    bool flatten;   /* also: strings that are no value are dead letters */
    const char *keep_fields, *drop_fields;
};
#define INGEST_MAX_DECODERS 16
/* Replaced rules tables that may wait for the Paho thread ("Reload"). */
#define INGEST_RULES_RETIRED 8

/* What ingest needs of the configuration ([mqtt] and [ingest] keys, and
 * storage.dir for the redelivery table). Strings are borrowed: they must
 * outlive the ingest (the daemon's configuration does), except the
 * decoding ones (value_field, ts_field, state_words, decoders), which the
 * rules table copies ("Reload"). */
struct ingest_opts {
    struct mqtt_conn_opts conn;
    int max_inflight;           /* Receive Maximum */
    const char *const *filters; /* n_filters subscription filters */
    int n_filters;
    int qos;
    const char *value_field, *ts_field;
    bool fields_all;
    const char *state_words; /* decode_words_parse syntax; NULL: none */
    int64_t max_payload, max_future_s;
    const char *dir;
    const struct ingest_decoder *decoders; /* n_decoders, in the configuration's order */
    int n_decoders;
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

/* Core thread: replaces the decoding rules with o's (value_field, ts_field,
 * fields_all, state_words, max_future_s and the decoders; the other members
 * are ignored) without stopping ingest ("Reload"). EL_AGAIN: older tables
 * still wait for the Paho thread (no message came since): nothing changed,
 * try again later. EL_INVAL: a bad option; EL_NOMEM. */
EL_MUST_CHECK el_status ingest_set_rules(struct ingest *ing, const struct ingest_opts *o);
/* Core thread (once a second): frees the tables the Paho thread no longer
 * reads; true when none waits. */
bool ingest_rules_collect(struct ingest *ing);

/* ---- Replay (above) ---- */

/* A dead letter as stored (borrowed for the call). */
struct ingest_replay_in {
    int64_t dead_seq;
    const char *topic;
    size_t topic_len;
    const void *payload;
    size_t payload_len;
    uint64_t payload_bytes; /* original size: more than payload_len when cut */
    int64_t recv_ms, mono_ms;
    uint32_t flags;     /* the dead letter's MLOG_F_* (CLOCK_SYNCED, TRUNCATED, PART) */
    const char *reason; /* its reason */
    const char *detail; /* its detail, NULL when none */
    /* Optional (known NULL: not checked): the series the replaying thread
     * knows and the room left for new ones. A dead letter whose events the
     * core would refuse again (a name over MLOG_MAX_SERIES_NAME, more new
     * series than series_room) fails ("name_too_long", "series_limit") and
     * is not journaled. The core checks again when it stores the record
     * (core_commit.c, replay_refusal): this one only makes the reply right. */
    journal_known_fn known;
    void *known_ctx;
    uint32_t series_room;
};
/* The detail the core gives one event it refused for its over-long name
 * (core_commit.c): with no MLOG_F_PART flag, such a row is not replayable. */
#define INGEST_CORE_NAME_DETAIL "the series name is over 255 bytes"

enum ingest_replay_outcome {
    INGEST_REPLAYED,       /* journaled: first_seq, n_events */
    INGEST_REPLAY_FAILED,  /* still does not decode: reason, detail */
    INGEST_REPLAY_SKIPPED, /* never replayed: reason says why (truncated, sparkplug_b, ...) */
};

struct ingest_replay_out {
    enum ingest_replay_outcome outcome;
    const char *reason; /* static; failed: the decode reason; skipped: why */
    char detail[DECODE_DETAIL_MAX + 40];
    uint64_t first_seq;
    uint32_t n_events;
    uint32_t new_series; /* replayed with known set: the series it will add (at most) */
};

/* The replaying thread's decode buffers (one allocation, reused). */
struct ingest_replay_scratch;
EL_MUST_CHECK el_status ingest_replay_scratch_new(struct ingest_replay_scratch **out);
void ingest_replay_scratch_free(struct ingest_replay_scratch *s);

/* Decodes the dead letter with the current configuration and journals its
 * events (see Replay); *out says what happened. EL_OK with any outcome;
 * EL_AGAIN when the journal shut down while full (nothing journaled),
 * EL_INVAL when the record cannot fit a journal segment. Blocks while the
 * journal is full. */
EL_MUST_CHECK el_status ingest_replay(struct ingest *ing, struct ingest_replay_scratch *s,
                                      const struct ingest_replay_in *in,
                                      struct ingest_replay_out *out);

/* Starts connecting (returns at once; connection and subscriptions follow in
 * the background, retried with backoff). */
EL_MUST_CHECK el_status ingest_start(struct ingest *ing);
/* Asks the el-mqtt-out thread to disconnect. The core must keep draining
 * the journal meanwhile: poll ingest_stopped(). */
void ingest_stop_begin(struct ingest *ing);
bool ingest_stopped(const struct ingest *ing);

#endif
