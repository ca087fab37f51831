/*
 * continuous — continuous queries ([continuous "<name>"] sections) and ad hoc
 * watches ({"op":"watch"}): one message per series each time a bucket
 * closes, the ordinary range answer for exactly that bucket (serve.h, the
 * same merge, the same exactness "as of seq N") plus "cq" or "watch" and
 * "revision"; a correction ("revision" + 1, "correction":true) when late data
 * changes a published bucket (docs/SPEC.md §7a).
 *
 * DESIGN
 *   - It runs on the serving thread (requests.c calls continuous_tick about
 *     every CONTINUOUS_TICK_MS between requests), with the thread's struct
 *     serve: the core never waits for it, and no new thread shares data.
 *   - It tails the master log by seq with its own read-only reader
 *     (mlog_read.h), from the log's end when it starts, at most
 *     CONTINUOUS_TAIL_ROWS rows a tick: each committed event names a series
 *     and an event time, so a (series, bucket) pair of each query or watch
 *     whose filter matches gets a cell (cq_state.h).
 *   - A bucket [t, t+step) closes when the wall clock passes t + step +
 *     grace: each pending cell is answered as the range query
 *     {"series":S,"from":t,"to":t+step,"step":step,"agg":[..]} and published.
 *     While the clock is not synchronised no bucket closes (its end is not
 *     known on the board's clock); they close once it is. Readings received
 *     while it was not synchronised (provisional) are placed in time later
 *     with their old seq: the tail never sees them, so they make no message
 *     by themselves (a later message of their bucket counts them).
 *   - Late data (an event in a published bucket, seen by the tail: a late
 *     reading, a replayed dead letter) republishes the bucket with revision
 *     + 1, "correction":true and "changed":{"events":k,"after_seq":N} (k
 *     events arrived after the previous message's seq N). A cell is kept
 *     until close + max_lateness; later events are stored but not
 *     republished (counted "too_late").
 *   - Bounds: at most CONTINUOUS_MAX_DEFS queries and max_watches watches,
 *     max_cells cells per query (a watch max_cells / 16, at least 64; a
 *     cell is 48 bytes, in twice as many slots), and a token bucket
 *     of max_msgs_per_s messages: a message without a token is dropped and
 *     counted ("dropped", logged at most once per 10 s), its cell moves on.
 *     Ingest never waits for any of it. A message is one bucket of one series
 *     (small); libmosquitto copies it (one allocation per message).
 *   - Watches publish to the request's response topic with its correlation
 *     data; "expires_s" (<= QUERY_WATCH_MAX_S) bounds them, re-sending the
 *     same watch (same reply topic and "id") renews it, {"op":"unwatch"}
 *     ends it, and at expiry one {"ok":true,"watch":n,"expired":true} goes
 *     out. "open":true also publishes the open bucket's partial answer when
 *     it changed ("open":true), so a page is live before the bucket closes.
 *   - State is in memory: after a restart the tail starts at the log's end
 *     as of continuous_new, before ingest starts (a reading stored before the
 *     serving thread's first tick is still seen; no history is republished;
 *     a bucket open across the restart is published once it closes, with
 *     revision 0).
 *
 * Threading: continuous_new/free and continuous_set_defs on any one thread
 * at a time, everything else on the serving thread; counters are atomics
 * readable from any thread. Ownership: struct continuous owns its master-log
 * reader, its definitions (copied), cells and message buffer; it borrows the
 * struct serve and the control plane passed to each call.
 */
#ifndef EL_CONTINUOUS_H
#define EL_CONTINUOUS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "control.h"
#include "cq_state.h"
#include "el_status.h"
#include "query.h"
#include "serve.h"

#define CONTINUOUS_MAX_DEFS 16
#define CONTINUOUS_NAME_MAX 63
#define CONTINUOUS_TICK_MS 250
#define CONTINUOUS_TAIL_ROWS 20000 /* master-log rows read per tick */
#define CONTINUOUS_MSG_MAX 16384   /* one bucket of one series */
#define CONTINUOUS_WATCH_GRACE_MS 1000
#define CONTINUOUS_WATCH_LATENESS_MS 30000

/* One continuous query. */
struct cq_def {
    char name[CONTINUOUS_NAME_MAX + 1];
    char match[QUERY_NAME_MAX + 1]; /* topic filter of the series */
    struct query tmpl;              /* aggs, n_aggs, wants_quantiles, step_ms */
    struct cq_timing tm;
    char topic[MQTT_TOPIC_REPLY_MAX + 1]; /* messages go to <topic>/<series> */
    int qos;
    bool retain;
};

struct continuous_opts {
    const char *dir; /* storage.dir */
    uint32_t max_series;
    int max_msgs_per_s;
    int max_watches;
    uint32_t max_cells;
    const struct cq_def *defs;
    int n_defs;
};

struct continuous_counters {
    _Atomic uint64_t published;   /* messages handed to the broker connection */
    _Atomic uint64_t corrections; /* ... of them corrections */
    _Atomic uint64_t partials;    /* ... of them open buckets (watches) */
    _Atomic uint64_t dropped;     /* over max_msgs_per_s */
    _Atomic uint64_t unsent;      /* not connected, refused, or a topic we may not use */
    _Atomic uint64_t errors;      /* the bucket's answer was an error */
    _Atomic uint64_t too_late;    /* events past max_lateness of a published bucket */
    _Atomic uint64_t cells_full;  /* events of new buckets over max_cells */
    _Atomic int64_t tail_seq;     /* how far the tail has read */
    _Atomic int queries, watches;
};

struct continuous;

EL_MUST_CHECK el_status continuous_new(const struct continuous_opts *opts, struct continuous **out);
void continuous_free(struct continuous *c);
/* Replaces the continuous queries (a reload): a query whose definition is
 * unchanged keeps its pending and published buckets; a new or changed one
 * starts with no cells (what it saw before is not published); removed ones
 * are forgotten. Watches stay.
 * Serving thread (requests_set_continuous hands a table over from others). */
EL_MUST_CHECK el_status continuous_set_defs(struct continuous *c, const struct cq_def *defs, int n);
const struct continuous_counters *continuous_counters(const struct continuous *c);
size_t continuous_memory_bytes(const struct continuous *c);

/* Reads the log's tail, closes buckets and publishes (rules: where messages
 * may not go). Returns quickly when there is nothing to do. */
void continuous_tick(struct continuous *c, struct serve *sv, struct control *ctl,
                     const struct mqtt_topic_rules *rules);

/* {"op":"watch"} / {"op":"unwatch"} from a request whose reply goes to topic
 * (already checked): the reply into buf, *code NULL or an error code. */
size_t continuous_request(struct continuous *c, const struct query *q, const char *topic,
                          const struct control_request *req, char *buf, size_t cap,
                          const char **code);

#endif
