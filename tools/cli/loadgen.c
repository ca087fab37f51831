/*
 * loadgen — `edgelambda loadgen`: publishes a deterministic synthetic sensor
 * stream over MQTT 3.1.1 (clean session; mqtt_client.h over Paho
 * MQTTAsync), for benchmarks, integration tests and the demo.
 *
 * The stream (which topic and payload message i gets) is a contract kept
 * in lg_stream.h; this file publishes it.
 *
 * Design: the main thread generates and publishes; Paho's threads report
 * each publish done (PUBACK for QoS 1, PUBCOMP for QoS 2, socket write for
 * QoS 0) or failed through the slot's struct mqtt_client_done. Window:
 * message k (k = i - start_index) uses slot k mod window of a preallocated
 * array, whose address is the completion's context (it carries k back); the
 * slot is busy until its completion ran, so message k is sent only once
 * message k - window is done, i.e. at most `window` publishes are
 * outstanding. Nothing is allocated per message in this file (Paho itself
 * copies topic and payload). The hot path takes no lock: counters and slot
 * flags are atomics. When the window is full the main thread sleeps on a
 * condition variable and is woken once window/8 more publishes completed
 * (one wake-up per batch, not per ack).
 * Sends while the connection is down are buffered by Paho
 * (send_while_disconnected, max_buffered > window) and go out after the
 * automatic reconnect (1 s, doubling to 4 s); failed publishes are counted,
 * never retried. TCP_NODELAY stays off: a stream of small publishes gains
 * from Nagle's batching.
 * The acked file gets one decimal index per completed publish (written by
 * the callback before the publish counts as done), flushed by the main
 * thread at least every 100 ms and at exit.
 * Counters: sent = publishes handed to Paho; acked = completed; failed =
 * refused by mqtt_client_publish, failed, or still unresolved when the
 * drain timeout expires; at exit sent == acked + failed.
 *
 * Threading: struct loadgen is shared by main and Paho's callback threads:
 * `done`, `failed`, `waiting`, `wake_*`, `connected` and the slots' `busy`
 * are atomics (sequentially consistent where they pair: a callback clears
 * `busy` then reads `waiting`; main sets `waiting` then re-reads `busy`, so
 * no wake-up is lost; waits are also bounded to 100 ms). The acked FILE is
 * written by callbacks and flushed by main under stdio's own lock.
 * SIGINT/SIGTERM stop publishing (and the connect wait); the run drains and
 * reports; a second one kills (SA_RESETHAND).
 * Ownership: loadgen owns the MQTT client, the slot array and the acked
 * FILE; all are released before cli_loadgen returns.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "lg_stream.h"
#include "mqtt_client.h"
#include "plat_clock.h"

#define LG_MAX_INDEX LG_STREAM_MAX_INDEX
#define LG_MAX_TS_BASE 4000000000000000LL
#define LG_MAX_PREFIX 200
#define LG_TICK_NS 100000000LL /* acked-file flush period */
#define LG_CONNECT_TIMEOUT_S 10

struct lg_opts {
    uint64_t series;
    uint64_t count;
    double seconds; /* > 0: run for this long instead of count */
    double rate;    /* msgs/s, 0 = unlimited */
    int qos;
    enum lg_style style;
    const char *topic_prefix;
    uint64_t start_index;
    int64_t ts_base;
    int64_t ts_step;
    bool ts_base_set;
    const char *client_id;
    uint32_t window;
    const char *acked_path;
    double drain_timeout_s;
    bool quiet;
    bool progress;
};

struct loadgen;

/* Message k's publish: slot k mod window, busy until its callback ran. */
struct lg_slot {
    struct loadgen *lg;
    uint64_t offset;              /* k; set by main before the send, read by the callback */
    atomic_bool busy;             /* set by main, cleared by the callback */
    struct mqtt_client_done done; /* {lg_on_publish_done, this slot} */
};

struct loadgen {
    const struct lg_opts *opts;
    struct mqtt_client_opts mqtt_opts; /* the client borrows it */
    struct mqtt_client *client;
    struct lg_slot *slots; /* window entries */
    FILE *acked_file;      /* callbacks fwrite, main fflushes (stdio locks) */

    /* main thread only */
    int64_t start_ns;
    uint64_t sent;
    int64_t next_tick_ns;
    int64_t next_progress_ns;
    uint64_t progress_done;

    /* shared, lock-free */
    atomic_uint_fast64_t done; /* acked + failed */
    atomic_uint_fast64_t failed;
    atomic_bool waiting;              /* main sleeps on cv */
    atomic_uint_fast64_t wake_offset; /* signal when message >= this is done */
    atomic_uint_fast64_t wake_done;   /* ... or when done reaches this */
    atomic_bool connected;
    atomic_bool ever_connected;

    pthread_mutex_t mu; /* guards nothing but cv's waits */
    pthread_cond_t cv;
};

static volatile sig_atomic_t lg_stop_requested;

static void lg_on_signal(int sig)
{
    (void)sig;
    lg_stop_requested = 1;
}

/* ------------------------------------------------------------------ */
/* Deterministic stream                                                */

/* Builds the payload of message i into buf (>= LG_STREAM_PAYLOAD_MAX bytes). */
static size_t lg_payload(const struct lg_opts *o, uint64_t i, char *buf)
{
    return lg_stream_payload(o->style, i, o->ts_base + (int64_t)i * o->ts_step, buf);
}

/* Writes the topic of message i after the fixed "<prefix>/dev" stem. */
static void lg_topic(const struct lg_opts *o, uint64_t i, char *topic, size_t stem_len)
{
    size_t n = stem_len;

    n += lg_stream_fmt_u64(topic + n, i % o->series);
    if (lg_stream_topic_has_temp(o->style)) {
        memcpy(topic + n, "/temp", 5);
        n += 5;
    }
    topic[n] = '\0';
}

/* ------------------------------------------------------------------ */
/* Paho callbacks (Paho's thread)                                      */

/* Marks message slot->offset done; wakes main if it waits for it. */
static void lg_complete(struct lg_slot *slot, bool ok)
{
    struct loadgen *lg = slot->lg;
    uint64_t offset = slot->offset; /* the slot is reused once not busy */
    uint64_t done;

    if (ok && lg->acked_file != NULL) {
        char line[24];
        size_t n = lg_stream_fmt_u64(line, lg->opts->start_index + offset);

        line[n++] = '\n';
        (void)fwrite(line, 1, n, lg->acked_file); /* errors: ferror() at close */
    }
    if (!ok)
        atomic_fetch_add(&lg->failed, 1);
    done = atomic_fetch_add(&lg->done, 1) + 1;
    atomic_store(&slot->busy, false);
    if (atomic_load(&lg->waiting) &&
        (offset >= atomic_load(&lg->wake_offset) || done >= atomic_load(&lg->wake_done))) {
        pthread_mutex_lock(&lg->mu);
        pthread_cond_signal(&lg->cv);
        pthread_mutex_unlock(&lg->mu);
    }
}

static void lg_on_publish_done(void *ctx, bool ok, int code, const char *message)
{
    struct lg_slot *slot = ctx;
    uint64_t index = slot->lg->opts->start_index + slot->offset;
    bool first = !ok && atomic_load(&slot->lg->failed) == 0;

    lg_complete(slot, ok);
    if (first)
        fprintf(stderr, "loadgen: publish %llu failed: %s (code %d); counting further failures\n",
                (unsigned long long)index, message, code);
}

static void lg_on_connection(void *ctx, bool up, const char *cause)
{
    struct loadgen *lg = ctx;
    bool was_lost;

    if (!up) {
        atomic_store(&lg->connected, false);
        if (!lg->opts->quiet)
            fprintf(stderr, "loadgen: connection lost (%s), reconnecting\n",
                    cause ? cause : "no cause given");
        return;
    }
    was_lost = atomic_load(&lg->ever_connected) && !atomic_load(&lg->connected);
    atomic_store(&lg->connected, true);
    atomic_store(&lg->ever_connected, true);
    if (was_lost && !lg->opts->quiet)
        fprintf(stderr, "loadgen: reconnected\n");
}

/* ------------------------------------------------------------------ */
/* Main-thread helpers                                                 */

static struct timespec ns_to_timespec(int64_t ns)
{
    struct timespec ts;

    ts.tv_sec = (time_t)(ns / 1000000000LL);
    ts.tv_nsec = (long)(ns % 1000000000LL);
    return ts;
}

/* Flushes the acked file and prints progress when due. */
static void lg_tick(struct loadgen *lg, int64_t now_ns)
{
    if (now_ns < lg->next_tick_ns)
        return;
    lg->next_tick_ns = now_ns + LG_TICK_NS;
    if (lg->acked_file != NULL)
        (void)fflush(lg->acked_file);
    if (lg->opts->progress && now_ns >= lg->next_progress_ns) {
        uint64_t done = atomic_load(&lg->done);
        uint64_t failed = atomic_load(&lg->failed);

        fprintf(stderr,
                "loadgen: t=%.0fs sent=%llu acked=%llu failed=%llu inflight=%llu "
                "rate=%llu msgs/s%s\n",
                (double)(now_ns - lg->start_ns) / 1e9, (unsigned long long)lg->sent,
                (unsigned long long)(done - failed), (unsigned long long)failed,
                (unsigned long long)(lg->sent - done),
                (unsigned long long)(done - lg->progress_done),
                atomic_load(&lg->connected) ? "" : " (disconnected)");
        lg->progress_done = done;
        lg->next_progress_ns = now_ns + 1000000000LL;
    }
}

/* One bounded sleep on cv (100 ms at most, or to deadline_ns if set);
 * mu held, waiting set. */
static void lg_sleep_locked(struct loadgen *lg, int64_t deadline_ns)
{
    int64_t now = plat_clock_mono_ns();
    int64_t until = now + LG_TICK_NS;
    struct timespec ts;

    lg_tick(lg, now);
    if (deadline_ns != 0 && until > deadline_ns)
        until = deadline_ns;
    ts = ns_to_timespec(until);
    (void)pthread_cond_timedwait(&lg->cv, &lg->mu, &ts);
}

/* Returns message k's slot once message k - window is done; NULL when
 * stopped. Sleeps until window/8 more publishes completed (hysteresis). */
static struct lg_slot *lg_acquire(struct loadgen *lg, uint64_t k)
{
    uint64_t window = lg->opts->window;
    uint64_t batch = window / 8 > 0 ? window / 8 : 1;
    struct lg_slot *slot = &lg->slots[k % window];

    if (atomic_load(&slot->busy)) {
        pthread_mutex_lock(&lg->mu);
        atomic_store(&lg->wake_done, UINT64_MAX);
        atomic_store(&lg->wake_offset, k - window + batch - 1);
        atomic_store(&lg->waiting, true);
        while (atomic_load(&slot->busy) && !lg_stop_requested) {
            lg_sleep_locked(lg, 0);
            /* Still busy: acks came out of order; wake on this slot's own. */
            atomic_store(&lg->wake_offset, k - window);
        }
        atomic_store(&lg->waiting, false);
        pthread_mutex_unlock(&lg->mu);
    }
    if (lg_stop_requested)
        return NULL;
    slot->offset = k;
    atomic_store(&slot->busy, true);
    return slot;
}

/* Sleeps until message number k is due at the configured rate. */
static void lg_pace(struct loadgen *lg, uint64_t k)
{
    int64_t due = lg->start_ns + (int64_t)((double)k * 1e9 / lg->opts->rate);
    int64_t now = plat_clock_mono_ns();

    while (now < due && !lg_stop_requested) {
        int64_t until = due < lg->next_tick_ns ? due : lg->next_tick_ns;
        struct timespec ts = ns_to_timespec(until);

        (void)clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        now = plat_clock_mono_ns();
        lg_tick(lg, now);
    }
}

static void lg_publish_one(struct loadgen *lg, struct lg_slot *slot, uint64_t index, char *topic,
                           size_t stem_len)
{
    char payload[128];
    struct mqtt_client_msg msg = {.topic = topic, .payload = payload, .qos = lg->opts->qos};

    msg.len = lg_payload(lg->opts, index, payload);
    lg_topic(lg->opts, index, topic, stem_len);
    lg->sent++;
    if (mqtt_client_publish(lg->client, &msg, &slot->done) != EL_OK) {
        bool first = atomic_load(&lg->failed) == 0;

        lg_complete(slot, false);
        if (first) /* the error reads "<reason> (code N)" */
            fprintf(stderr, "loadgen: publish %llu refused: %s\n", (unsigned long long)index,
                    mqtt_client_error(lg->client));
    }
}

/* Publishes the whole stream; returns when done or stopped. */
static void lg_run(struct loadgen *lg, char *topic, size_t stem_len)
{
    const struct lg_opts *o = lg->opts;
    int64_t stop_ns = o->seconds > 0 ? lg->start_ns + (int64_t)(o->seconds * 1e9) : 0;
    uint64_t end = o->start_index + o->count;

    for (uint64_t index = o->start_index; lg_stop_requested == 0; index++) {
        int64_t now = plat_clock_mono_ns();
        struct lg_slot *slot;

        if (stop_ns != 0 ? now >= stop_ns || index >= LG_MAX_INDEX : index >= end)
            break;
        lg_tick(lg, now);
        if (o->rate > 0) {
            lg_pace(lg, index - o->start_index);
            if (stop_ns != 0 && plat_clock_mono_ns() >= stop_ns)
                break;
        }
        slot = lg_acquire(lg, index - o->start_index);
        if (slot == NULL)
            break;
        lg_publish_one(lg, slot, index, topic, stem_len);
    }
}

/* Waits for outstanding publishes (bounded); returns the end time. */
static int64_t lg_drain(struct loadgen *lg)
{
    int64_t deadline = plat_clock_mono_ns() + (int64_t)(lg->opts->drain_timeout_s * 1e9);
    bool stopped_before = lg_stop_requested != 0;
    uint64_t done;

    /* A stop request ends publishing, not the drain: clear it so the wait
     * below still waits for acknowledgements of what was sent (a signal
     * during the drain ends the drain). */
    lg_stop_requested = 0;
    pthread_mutex_lock(&lg->mu);
    atomic_store(&lg->wake_offset, UINT64_MAX);
    atomic_store(&lg->wake_done, lg->sent);
    atomic_store(&lg->waiting, true);
    while (atomic_load(&lg->done) < lg->sent && !lg_stop_requested &&
           plat_clock_mono_ns() < deadline)
        lg_sleep_locked(lg, deadline);
    atomic_store(&lg->waiting, false);
    pthread_mutex_unlock(&lg->mu);
    done = atomic_load(&lg->done);
    if (done < lg->sent)
        fprintf(stderr, "loadgen: %llu publishes unresolved after %.1f s; counted as failed\n",
                (unsigned long long)(lg->sent - done), lg->opts->drain_timeout_s);
    if (stopped_before)
        lg_stop_requested = 1;
    return plat_clock_mono_ns();
}

/* ------------------------------------------------------------------ */
/* Set-up and tear-down                                                */

static int lg_connect(struct loadgen *lg, const struct cli_global *global)
{
    struct mqtt_client_opts *o = &lg->mqtt_opts;
    char why[MQTT_CLIENT_ERROR_MAX];

    cli_client_opts(o, global->uri, lg->opts->client_id, MQTT_CLIENT_V311, LG_CONNECT_TIMEOUT_S);
    o->max_inflight = (int)lg->opts->window;
    o->send_while_disconnected = true; /* buffer across automatic reconnects */
    o->max_buffered = (int)lg->opts->window + 16;
    o->auto_reconnect = true;
    o->retry_min_s = 1;
    o->retry_max_s = 4;
    o->disconnect_timeout_ms = 2000;
    o->on_connection = lg_on_connection;
    o->ctx = lg;
    o->cancel = &lg_stop_requested;
    if (mqtt_client_new(o, &lg->client, why, sizeof why) != EL_OK) {
        fprintf(stderr, "loadgen: cannot create client for '%s': %s\n", global->uri, why);
        return CLI_EXIT_USAGE;
    }
    if (mqtt_client_connect(lg->client, LG_CONNECT_TIMEOUT_S + 2) != EL_OK) {
        fprintf(stderr, "loadgen: cannot connect to %s: %s\n", global->uri,
                mqtt_client_error(lg->client));
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

static int lg_init(struct loadgen *lg, const struct lg_opts *opts)
{
    pthread_condattr_t cattr;

    memset(lg, 0, sizeof *lg);
    lg->opts = opts;
    lg->slots = calloc(opts->window, sizeof *lg->slots);
    if (lg->slots == NULL) {
        fprintf(stderr, "loadgen: out of memory\n");
        return CLI_EXIT_FAIL;
    }
    for (uint32_t k = 0; k < opts->window; k++) {
        lg->slots[k].lg = lg;
        atomic_init(&lg->slots[k].busy, false);
        lg->slots[k].done = (struct mqtt_client_done){lg_on_publish_done, &lg->slots[k]};
    }
    atomic_init(&lg->done, 0);
    atomic_init(&lg->failed, 0);
    atomic_init(&lg->waiting, false);
    atomic_init(&lg->wake_offset, UINT64_MAX);
    atomic_init(&lg->wake_done, UINT64_MAX);
    atomic_init(&lg->connected, false);
    atomic_init(&lg->ever_connected, false);
    pthread_mutex_init(&lg->mu, NULL);
    pthread_condattr_init(&cattr);
    pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
    pthread_cond_init(&lg->cv, &cattr);
    pthread_condattr_destroy(&cattr);
    return CLI_EXIT_OK;
}

/* Stops Paho (no callbacks after this) and counts what never resolved. */
static void lg_disconnect(struct loadgen *lg)
{
    uint64_t unresolved;

    if (lg->client == NULL)
        return;
    mqtt_client_free(lg->client); /* waits up to 2 s for in-flight acks */
    lg->client = NULL;
    unresolved = lg->sent - atomic_load(&lg->done);
    atomic_fetch_add(&lg->failed, unresolved);
    atomic_fetch_add(&lg->done, unresolved);
}

static void lg_cleanup(struct loadgen *lg)
{
    pthread_cond_destroy(&lg->cv);
    pthread_mutex_destroy(&lg->mu);
    free(lg->slots);
}

/* ------------------------------------------------------------------ */
/* Options                                                             */

static void lg_usage(FILE *out)
{
    fprintf(out,
            "usage: edgelambda [global options] loadgen [options]\n"
            "\n"
            "Publishes a deterministic synthetic sensor stream (MQTT 3.1.1, Paho MQTTAsync).\n"
            "Message i (start-index <= i < start-index+count), series s = i mod SERIES:\n"
            "  topic  <topic-prefix>/dev<s>/temp   (styles fields, z2m: <topic-prefix>/dev<s>)\n"
            "  V = ((i*7919) mod 20000)/100 - 50, H = ((i*104729) mod 10000)/100, both %%.2f;\n"
            "  T = ts-base + i * ts-step (epoch ms)\n"
            "  json-ts {\"value\":V,\"ts\":T}  json {\"value\":V}  bare V  "
            "fields {\"temp\":V,\"hum\":H,\"ts\":T}\n"
            "  device {\"value\":V,\"ts\":T,\"unit\":\"celsius\",\"battery\":i%%100,"
            "\"linkquality\":i%%256,\"fw\":\"1.4.2\"} (~100 B)\n"
            "  z2m {\"temperature\":V,\"humidity\":H,\"battery\":i%%100,\"occupancy\":i even,\n"
            "      \"linkquality\":i%%256,\"voltage\":2500+(i*7)%%700} (~100 B, no time; a\n"
            "      Zigbee2MQTT sensor: six series per device with fields = all)\n"
            "\n"
            "  --series N          number of series (default 100)\n"
            "  --count N           messages to publish (default 10000)\n"
            "  --seconds S         publish for S seconds instead of --count\n"
            "  --rate R            messages per second, 0 = as fast as possible (default 0);\n"
            "                      a fixed schedule: after a stall it catches up at full speed\n"
            "  --qos 0|1|2         publish QoS (default 1)\n"
            "  --style STYLE       json-ts (default) | json | bare | fields | device | z2m\n"
            "  --topic-prefix P    topic prefix (default sensors)\n"
            "  --start-index K     first message index (default 0)\n"
            "  --ts-base MS        event time of index 0 (default: wall clock at start)\n"
            "  --ts-step MS        event time between two messages (default 1)\n"
            "  --client-id ID      MQTT client id (default edgelambda-loadgen-<pid>)\n"
            "  --window N          max unacknowledged publishes in flight (default 500)\n"
            "  --acked-file PATH   append the index of every completed publish, one per line\n"
            "  --drain-timeout S   wait at most S s for outstanding acks at the end (default 30)\n"
            "  --progress          print a progress line to stderr every second\n"
            "  --quiet             no informational messages on stderr\n"
            "  --uri URI, --prefix PREFIX   as the global options\n"
            "  -h, --help          this help\n"
            "\n"
            "Prints one line to stdout at the end:\n"
            "  loadgen: sent=N acked=N failed=N seconds=S rate=R msgs/s ts_base=T\n"
            "Exit status: 0 when every publish completed (acked == sent), 1 otherwise,\n"
            "2 usage error. SIGINT/SIGTERM stop publishing, drain, and report.\n");
}

enum {
    LG_OPT_SERIES = CLI_OPT_FIRST_COMMAND,
    LG_OPT_COUNT,
    LG_OPT_SECONDS,
    LG_OPT_RATE,
    LG_OPT_QOS,
    LG_OPT_STYLE,
    LG_OPT_TOPIC_PREFIX,
    LG_OPT_START_INDEX,
    LG_OPT_TS_BASE,
    LG_OPT_TS_STEP,
    LG_OPT_CLIENT_ID,
    LG_OPT_WINDOW,
    LG_OPT_ACKED_FILE,
    LG_OPT_DRAIN_TIMEOUT,
    LG_OPT_QUIET,
    LG_OPT_PROGRESS,
};

static bool lg_parse_style(const char *text, enum lg_style *style)
{
    for (size_t k = 0; k < LG_STYLE_COUNT; k++) {
        if (strcmp(text, lg_stream_style_names[k]) == 0) {
            *style = (enum lg_style)k;
            return true;
        }
    }
    fprintf(stderr,
            "edgelambda loadgen: bad --style '%s' (json-ts, json, bare, fields, device, "
            "z2m)\n",
            text);
    return false;
}

/* Returns false on a bad value (message printed). */
static bool lg_option(struct lg_opts *o, int opt, const char *arg, bool *count_set)
{
    uint64_t u = 0;

    switch (opt) {
    case LG_OPT_SERIES: return cli_parse_u64(arg, "--series", 1, 100000000, &o->series);
    case LG_OPT_COUNT:
        *count_set = true;
        return cli_parse_u64(arg, "--count", 0, LG_MAX_INDEX, &o->count);
    case LG_OPT_SECONDS: return cli_parse_double(arg, "--seconds", 0.001, 1e7, &o->seconds);
    case LG_OPT_RATE: return cli_parse_double(arg, "--rate", 0, 1e9, &o->rate);
    case LG_OPT_QOS:
        if (!cli_parse_u64(arg, "--qos", 0, 2, &u))
            return false;
        o->qos = (int)u;
        return true;
    case LG_OPT_STYLE: return lg_parse_style(arg, &o->style);
    case LG_OPT_TOPIC_PREFIX: o->topic_prefix = arg; return true;
    case LG_OPT_START_INDEX:
        return cli_parse_u64(arg, "--start-index", 0, LG_MAX_INDEX, &o->start_index);
    case LG_OPT_TS_BASE:
        o->ts_base_set = true;
        return cli_parse_i64(arg, "--ts-base", 0, LG_MAX_TS_BASE, &o->ts_base);
    case LG_OPT_TS_STEP: return cli_parse_i64(arg, "--ts-step", 1, 86400000, &o->ts_step);
    case LG_OPT_CLIENT_ID: o->client_id = arg; return true;
    case LG_OPT_WINDOW:
        if (!cli_parse_u64(arg, "--window", 1, 65535, &u))
            return false;
        o->window = (uint32_t)u;
        return true;
    case LG_OPT_ACKED_FILE: o->acked_path = arg; return true;
    case LG_OPT_DRAIN_TIMEOUT:
        return cli_parse_double(arg, "--drain-timeout", 0, 86400, &o->drain_timeout_s);
    case LG_OPT_QUIET: o->quiet = true; return true;
    case LG_OPT_PROGRESS: o->progress = true; return true;
    default: return false;
    }
}

/* The checks across options, after parsing: CLI_EXIT_OK or CLI_EXIT_USAGE. */
static int lg_check(const struct lg_opts *o, bool count_set)
{
    if (count_set && o->seconds > 0) {
        fprintf(stderr, "edgelambda loadgen: give --count or --seconds, not both\n");
        return CLI_EXIT_USAGE;
    }
    if (o->start_index + o->count > LG_MAX_INDEX) {
        fprintf(stderr, "edgelambda loadgen: --start-index + --count above %llu\n",
                (unsigned long long)LG_MAX_INDEX);
        return CLI_EXIT_USAGE;
    }
    if (strlen(o->topic_prefix) > LG_MAX_PREFIX || o->topic_prefix[0] == '\0' ||
        strpbrk(o->topic_prefix, "+#") != NULL) {
        fprintf(stderr, "edgelambda loadgen: bad --topic-prefix (1..%d chars, no + or #)\n",
                LG_MAX_PREFIX);
        return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}

/* Returns CLI_EXIT_OK, CLI_EXIT_USAGE, or -1 after --help. */
static int lg_parse(struct cli_global *global, int argc, char **argv, struct lg_opts *o)
{
    static const struct option longopts[] = {
        {"series", required_argument, NULL, LG_OPT_SERIES},
        {"count", required_argument, NULL, LG_OPT_COUNT},
        {"seconds", required_argument, NULL, LG_OPT_SECONDS},
        {"rate", required_argument, NULL, LG_OPT_RATE},
        {"qos", required_argument, NULL, LG_OPT_QOS},
        {"style", required_argument, NULL, LG_OPT_STYLE},
        {"topic-prefix", required_argument, NULL, LG_OPT_TOPIC_PREFIX},
        {"start-index", required_argument, NULL, LG_OPT_START_INDEX},
        {"ts-base", required_argument, NULL, LG_OPT_TS_BASE},
        {"ts-step", required_argument, NULL, LG_OPT_TS_STEP},
        {"client-id", required_argument, NULL, LG_OPT_CLIENT_ID},
        {"window", required_argument, NULL, LG_OPT_WINDOW},
        {"acked-file", required_argument, NULL, LG_OPT_ACKED_FILE},
        {"drain-timeout", required_argument, NULL, LG_OPT_DRAIN_TIMEOUT},
        {"quiet", no_argument, NULL, LG_OPT_QUIET},
        {"progress", no_argument, NULL, LG_OPT_PROGRESS},
        {"uri", required_argument, NULL, CLI_OPT_URI},
        {"prefix", required_argument, NULL, CLI_OPT_PREFIX},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool count_set = false;
    int opt;

    optind = 0;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (opt == 'h') {
            lg_usage(stdout);
            return -1;
        }
        if (cli_common_option(global, opt, optarg))
            continue;
        if (opt == '?' || !lg_option(o, opt, optarg, &count_set)) {
            fprintf(stderr, "(edgelambda loadgen --help for usage)\n");
            return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "edgelambda loadgen: unexpected argument '%s'\n", argv[optind]);
        return CLI_EXIT_USAGE;
    }
    return lg_check(o, count_set);
}

static void lg_defaults(struct lg_opts *o)
{
    memset(o, 0, sizeof *o);
    o->series = 100;
    o->count = 10000;
    o->qos = 1;
    o->style = LG_JSON_TS;
    o->topic_prefix = "sensors";
    o->window = 500;
    o->ts_step = 1;
    o->drain_timeout_s = 30;
}

static void lg_install_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = lg_on_signal;
    sa.sa_flags = (int)SA_RESETHAND; /* a second Ctrl-C kills */
    sigemptyset(&sa.sa_mask);
    (void)sigaction(SIGINT, &sa, NULL);
    (void)sigaction(SIGTERM, &sa, NULL);
}

/* Opens the acked file (--acked-file) for appending; false (message
 * printed) if it cannot be opened. */
static bool lg_open_acked(struct loadgen *lg)
{
    if (lg->opts->acked_path == NULL)
        return true;
    lg->acked_file = fopen(lg->opts->acked_path, "a");
    if (lg->acked_file == NULL) {
        fprintf(stderr, "loadgen: cannot open %s: %s\n", lg->opts->acked_path, strerror(errno));
        return false;
    }
    (void)setvbuf(lg->acked_file, NULL, _IOFBF, 1 << 16);
    return true;
}

/* Flushes and closes the acked file; false on a write error. */
static bool lg_close_acked(struct loadgen *lg)
{
    bool ok = true;

    if (lg->acked_file == NULL)
        return true;
    if (fflush(lg->acked_file) != 0 || ferror(lg->acked_file))
        ok = false;
    if (fclose(lg->acked_file) != 0)
        ok = false;
    lg->acked_file = NULL;
    if (!ok)
        fprintf(stderr, "loadgen: writing %s failed: %s\n", lg->opts->acked_path, strerror(errno));
    return ok;
}

static int lg_report(struct loadgen *lg, int64_t end_ns, bool acked_ok)
{
    double seconds = (double)(end_ns - lg->start_ns) / 1e9;
    uint64_t failed = atomic_load(&lg->failed);
    uint64_t acked = atomic_load(&lg->done) - failed;
    double rate = seconds > 0 ? (double)acked / seconds : 0.0;

    printf("loadgen: sent=%llu acked=%llu failed=%llu seconds=%.3f rate=%.0f msgs/s "
           "ts_base=%lld\n",
           (unsigned long long)lg->sent, (unsigned long long)acked, (unsigned long long)failed,
           seconds, rate, (long long)lg->opts->ts_base);
    if (fflush(stdout) != 0)
        return CLI_EXIT_FAIL;
    return (acked == lg->sent && acked_ok) ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

int cli_loadgen(struct cli_global *global, int argc, char **argv)
{
    struct lg_opts opts;
    struct loadgen lg;
    char client_id[64];
    char topic[LG_MAX_PREFIX + 48];
    size_t stem_len;
    int64_t end_ns;
    bool acked_ok;
    int rc;

    lg_defaults(&opts);
    rc = lg_parse(global, argc, argv, &opts);
    if (rc != CLI_EXIT_OK)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if (opts.client_id == NULL) {
        snprintf(client_id, sizeof client_id, "edgelambda-loadgen-%ld", (long)getpid());
        opts.client_id = client_id;
    }
    if (!opts.ts_base_set)
        opts.ts_base = plat_clock_wall_ms();
    stem_len = (size_t)snprintf(topic, sizeof topic, "%s/dev", opts.topic_prefix);

    rc = lg_init(&lg, &opts);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (!lg_open_acked(&lg)) {
        lg_cleanup(&lg);
        return CLI_EXIT_FAIL;
    }
    lg_stop_requested = 0;
    lg_install_signals();
    rc = lg_connect(&lg, global);
    if (rc != CLI_EXIT_OK) {
        lg_disconnect(&lg);
        (void)lg_close_acked(&lg);
        lg_cleanup(&lg);
        return rc;
    }
    if (!opts.quiet)
        fprintf(stderr,
                "loadgen: %s %s to %s/dev*/..., %llu series, style %s, qos %d, ts_base=%lld\n",
                global->uri, opts.seconds > 0 ? "timed run" : "count run", opts.topic_prefix,
                (unsigned long long)opts.series, lg_stream_style_names[opts.style], opts.qos,
                (long long)opts.ts_base);

    lg.start_ns = plat_clock_mono_ns();
    lg.next_tick_ns = lg.start_ns + LG_TICK_NS;
    lg.next_progress_ns = lg.start_ns + 1000000000LL;
    lg_run(&lg, topic, stem_len);
    end_ns = lg_drain(&lg);
    lg_disconnect(&lg);
    acked_ok = lg_close_acked(&lg);
    rc = lg_report(&lg, end_ns, acked_ok);
    lg_cleanup(&lg);
    return rc;
}
