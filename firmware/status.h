/*
 * status — the daemon's status document (SPEC §7), published retained on
 * <prefix>/status and answered to {"op":"status"}.
 *
 * Pure formatting: the core fills a snapshot, status_format writes JSON into
 * a caller buffer. Counters are since the daemon started, except log.* which
 * describe the master log on disk.
 *
 * Threading: pure, any thread.
 */
#ifndef EL_STATUS_DOC_H
#define EL_STATUS_DOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "ingest.h"
#include "requests.h"
#include "sync.h"

struct status_snapshot {
    int64_t uptime_s;
    bool clock_synced;
    int64_t clock_unanchored; /* events waiting for a synchronised clock */
    uint64_t clock_anchored;  /* events placed in time since start */
    uint64_t clock_steps;     /* wall-clock steps seen since start */
    bool mqtt_connected;
    uint64_t mqtt_connects;
    int64_t broker_dropped; /* -1: the broker does not tell us */
    /* ingest */
    uint64_t received;
    uint64_t accepted;
    uint64_t rejected[INGEST_REASON_COUNT];
    uint64_t duplicates;
    double rate_per_s;
    /* master log */
    int64_t log_seq;           /* highest sequence committed */
    int64_t log_bytes;         /* database + WAL */
    uint64_t journal_bytes;    /* acknowledged, not yet committed */
    uint64_t replayed;         /* journal records replayed at start-up */
    const char *storage_error; /* NULL when healthy */
    int64_t log_used_bytes, log_max_bytes;
    bool log_full_paused;        /* stop_ingest in force */
    uint64_t log_trimmed_events; /* removed by retention since start */
    int64_t log_oldest_seq;      /* raw events below this are only in the views */
    uint32_t series;
    uint64_t speed_memory_bytes;
    uint64_t serving_memory_bytes;             /* the serving thread's working set */
    const struct requests_counters *queries;   /* atomics, read while formatting */
    uint64_t requests_busy;                    /* refused by the Paho thread: queue full */
    uint64_t requests_busy_unsent;             /* ... and no busy reply could go out */
    uint64_t replies_unsent;                   /* replies the MQTT library failed to send */
    uint64_t rejected_at_intake[QTOPIC_COUNT]; /* queue full and no usable reply topic */
    bool batch_enabled;
    struct batch_status batch;
    struct sync_status sync;
};

/* Writes the JSON document; returns its length, or 0 if buf was too small. */
size_t status_format(const struct status_snapshot *s, char *buf, size_t len);

#endif
