/*
 * decode_sparkplug — Eclipse Sparkplug B payloads (protobuf, schema in
 * sparkplug_b.proto) on topics
 *
 *   spBv1.0/<group_id>/<message_type>/<edge_node_id>[/<device_id>]
 *   spBv1.0/STATE/<host_id>
 *
 * message_type: NBIRTH NDEATH NDATA NCMD (four levels) and DBIRTH DDEATH
 * DDATA DCMD (five levels, with the device). Unlike the other decoders it is
 * STATEFUL: a birth binds metric names to aliases, and later DATA messages
 * may carry only the alias, so the decoder remembers, per edge node
 * (group_id + edge_node_id):
 *   - name <-> alias and the datatype of each metric born (NBIRTH replaces
 *     the node's table, DBIRTH adds its device's metrics to it: Sparkplug
 *     aliases are unique across a node and its devices);
 *   - the last seq (0..255, wrapping): a message whose seq is not the last
 *     plus one counts a gap (the same seq again, an MQTT redelivery, does
 *     not); NBIRTH starts the count;
 *   - NDEATH marks the node dead (its aliases are kept until its next
 *     NBIRTH); NDEATH and DDEATH count deaths, NBIRTH and DBIRTH births.
 *
 * Events: each metric with a numeric or boolean value becomes one event
 * named <group>/<edge_node>[/<device>]/<metric name> (NCMD/DCMD metrics:
 * <group>/<edge_node>[/<device>]/NCMD|DCMD/<metric name>, so a command is not
 * mistaken for a reading), written into decode_result.names with name_topic
 * false. Values by datatype (the metric's, else the one its birth gave, else
 * told by the value field): Int8/16/32 from int_value as signed (sign-
 * extended or not), UInt8/16/32 unsigned, Int64 from long_value as signed,
 * UInt64 unsigned (above 2^53 rounded to a double), Float, Double, Boolean
 * (1/0). Skipped metrics: is_null, no value, DateTime, strings, bytes,
 * datasets, templates, extensions, NaN/Inf. Historical and transient metrics
 * are kept (their own timestamp places them). Time: the metric's timestamp,
 * else the payload's, else the receive time (has_ts is true when no event
 * took the receive time); a carried time must pass decode_ts_plausible, or
 * the message is bad_timestamp.
 *
 * When no metric gives an event the message is rejected, the first that
 * applies: a metric whose alias did not resolve -> malformed, "unknown alias
 * 17" (never born, or unknown because the node's table was full: "alias 17:
 * table full"); a NaN/Inf value -> non_finite; a string (or other
 * non-numeric value) -> non_numeric; else no_value ("no metric with a
 * value"). When some metric gives an event, unresolved metrics are dropped
 * and counted (unknown_alias). Other rejections: a topic not of the shapes
 * above, a level that fails decode_name_ok, bytes that are not a Sparkplug
 * B payload, or nesting deeper than SPARKPLUG_MAX_DEPTH -> malformed; more
 * than DECODE_MAX_FIELDS events -> too_many_fields; a metric name that
 * fails decode_name_ok or a series name over DECODE_NAME_MAX bytes ->
 * malformed; len > opts->max_payload, or a payload whose decoded tree does
 * not fit the arena -> oversized. The node's state (births, aliases, seq,
 * deaths) is updated by every message that decodes as protobuf, even one
 * whose events are then rejected.
 *
 * STATE (host application online/offline): the payload is Sparkplug 3.0's
 * JSON {"online": true, "timestamp": <ms>} or 2.2's text ONLINE/OFFLINE,
 * decoded by decode_payload into one event named STATE/<host_id>/online
 * (1/0). It does not touch the node tables.
 *
 * Bounds (all preallocated by sparkplug_new, about 4.6 MiB, resident only as
 * used): SPARKPLUG_MAX_NODES edge nodes; when a new node finds the table full
 * it takes the slot of the dead node seen longest ago, and if none is dead it
 * gets no slot (its seq is not tracked and its aliases are not remembered).
 * Per node SPARKPLUG_MAX_ALIASES metrics and SPARKPLUG_NAME_POOL bytes of
 * their names; a born alias that does not fit is counted (aliases_full) and
 * DATA metrics using it are dropped ("table full" as above). protobuf-c's
 * unpack allocates from a bump arena of SPARKPLUG_ARENA bytes inside the
 * state, reset per message: the hot path does no malloc. Typical payloads
 * expand 3-8 times when unpacked, so payloads up to ~128 KiB of ordinary
 * metrics fit; pathological ones (many empty submessages) are oversized.
 *
 * Threading: NOT thread-safe: one state is used from one thread only (the
 * MQTT callback thread that receives the messages). Payloads are not
 * NUL-terminated and are read only within len.
 */
#ifndef EL_DECODE_SPARKPLUG_H
#define EL_DECODE_SPARKPLUG_H

#include "decode.h"
#include "el_status.h"

#define SPARKPLUG_MAX_NODES 64
#define SPARKPLUG_MAX_ALIASES 1024 /* metrics remembered per edge node */
#define SPARKPLUG_NAME_POOL 32768  /* bytes of their names per edge node */
#define SPARKPLUG_ARENA (1u << 20) /* bytes for one unpacked payload */
#define SPARKPLUG_MAX_DEPTH 32     /* nested protobuf messages (templates, property sets) */

struct sparkplug_state;

/* Monotonic since sparkplug_new. */
struct sparkplug_counters {
    uint64_t births;        /* NBIRTH and DBIRTH messages */
    uint64_t deaths;        /* NDEATH and DDEATH messages */
    uint64_t seq_gaps;      /* messages whose seq was not the node's last + 1 */
    uint64_t unknown_alias; /* DATA/CMD metrics dropped: alias not resolved */
    uint64_t aliases_full;  /* born aliases not remembered: node or alias table full */
};

/* Allocates and initialises a state (the only allocation): EL_OK, EL_INVAL (out NULL)
 * or EL_NOMEM. */
el_status sparkplug_new(struct sparkplug_state **out);
void sparkplug_free(struct sparkplug_state *st);

/* Decodes one message received on topic[0..topic_len) with payload[0..len)
 * (neither NUL-terminated). opts NULL: the defaults (its value/ts field
 * names and fields_all are not used). On DECODE_OK out->n_events >= 1 and
 * every event has name_len > 0 and name_topic false; otherwise n_events is
 * 0 and out->detail says why. st, out or topic NULL: DECODE_MALFORMED. */
enum decode_reason decode_sparkplug(struct sparkplug_state *st, const struct decode_opts *opts,
                                    const char *topic, size_t topic_len, const char *payload,
                                    size_t len, int64_t recv_wall_ms, bool clock_synced,
                                    struct decode_result *out);

void sparkplug_counters(const struct sparkplug_state *st, struct sparkplug_counters *out);

#endif
