/*
 * el_decode_bench — the per-message cost of each payload decoder, for
 * `tools/bench decode` (docs/BENCHMARKS.md, "Decode").
 *
 *   el_decode_bench [--iterations N] [--repeats R] [--json]
 *
 * For each format: 256 realistic payloads (loadgen's own stream where it has
 * the style, lg_stream.h; the README's fleet examples with varying values
 * otherwise) are built once and each checked to decode to the expected
 * number of events; then, single-threaded, a warm-up of N/10 messages and R
 * timed runs of N messages cycling through them. A run's cost is wall time
 * (CLOCK_MONOTONIC) and this thread's CPU time (CLOCK_THREAD_CPUTIME_ID,
 * which leaves out time the thread waited for a core on a busy machine)
 * divided by N; the report is the median run, with the fastest and slowest
 * runs' wall figures. "decode" is decode_payload() (or decode_influx(),
 * decode_cbor(), decode_sparkplug())
 * alone; "+names" adds decode_event_name() for every event, as ingest's
 * callback does to check each series name before the journal append.
 *
 * CBOR and Sparkplug B payloads are written here byte by byte (the same
 * z2m reading as a CBOR map; a DDATA with three named metrics).
 *
 * Output: one line per format, then the load average at start and end
 * (/proc/loadavg: a figure on a busy machine is only comparable with the
 * load beside it); with --json, one more line, a JSON object of the same
 * figures (machine-readable; tools/bench prints it as is).
 *
 * Design: links only el_decode (and the stream's lg_stream.c); no heap, no
 * threads; the results of every decode are folded into a volatile sink so
 * the loop cannot be optimised away.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "decode.h"
#include "decode_cbor.h"
#include "decode_influx.h"
#include "decode_sparkplug.h"
#include "lg_stream.h"

#define VARIANTS 256
#define PAYLOAD_CAP 512
#define TS_BASE INT64_C(1767225600000) /* 2026-01-01, as tools/lib/bench.py */
#define RECV_MS (TS_BASE + INT64_C(3600000))
#define MAX_REPEATS 101

enum decoder { DEC_JSON, DEC_INFLUX, DEC_CBOR, DEC_SPARKPLUG };

struct payloads {
    char text[VARIANTS][PAYLOAD_CAP];
    size_t len[VARIANTS];
};

struct format {
    const char *name; /* printed */
    const char *key;  /* in the JSON line */
    const char *topic;
    size_t (*build)(uint64_t i, char *buf); /* payload variant i */
    void (*opts)(struct decode_opts *o);    /* beyond the ingest defaults */
    enum decoder decoder;
    uint32_t events; /* per message */
};

struct figures {
    double wall_ns, cpu_ns, wall_min_ns, wall_max_ns; /* per message */
    double names_wall_ns, names_cpu_ns;
    size_t bytes; /* mean payload size */
};

static struct decode_result result; /* 20 KB: not on the stack */
static struct payloads set;
static struct decode_words words;
static volatile double sink;

static int64_t ts_of(uint64_t i)
{
    return TS_BASE + (int64_t)i;
}

static size_t build_bare(uint64_t i, char *buf)
{
    return lg_stream_payload(LG_BARE, i, ts_of(i), buf);
}

static size_t build_json_ts(uint64_t i, char *buf)
{
    return lg_stream_payload(LG_JSON_TS, i, ts_of(i), buf);
}

static size_t build_device(uint64_t i, char *buf)
{
    return lg_stream_payload(LG_DEVICE, i, ts_of(i), buf);
}

static size_t build_z2m(uint64_t i, char *buf)
{
    return lg_stream_payload(LG_Z2M, i, ts_of(i), buf);
}

static size_t build_tasmota(uint64_t i, char *buf)
{
    int n =
        snprintf(buf, PAYLOAD_CAP,
                 "{\"Time\":\"2026-12-04T10:%02u:%02u\",\"AM2301\":{\"Temperature\":%.1f,"
                 "\"Humidity\":%.1f},\"TempUnit\":\"C\"}",
                 (unsigned)(i / 60 % 60), (unsigned)(i % 60),
                 (double)lg_stream_value_centi(i) / 100.0, (double)lg_stream_hum_centi(i) / 100.0);
    return n > 0 ? (size_t)n : 0;
}

static size_t build_array10(uint64_t i, char *buf)
{
    size_t n = 0;
    buf[n++] = '[';
    for (uint64_t k = 0; k < 10; k++) {
        uint64_t j = i * 10 + k;
        n += (size_t)snprintf(buf + n, PAYLOAD_CAP - n, "%s{\"ts\":%lld,\"value\":%.2f}",
                              k ? "," : "", (long long)ts_of(j),
                              (double)lg_stream_value_centi(j) / 100.0);
    }
    buf[n++] = ']';
    return n;
}

static size_t build_influx(uint64_t i, char *buf)
{
    int n = snprintf(buf, PAYLOAD_CAP,
                     "cpu,host=pi%u usage_idle=%.2f,usage_user=%.2f,usage_system=%.2f "
                     "%lld000000",
                     (unsigned)(i % 16), (double)lg_stream_hum_centi(i) / 100.0,
                     (double)(lg_stream_hum_centi(i + 1) % 5000) / 100.0,
                     (double)(lg_stream_hum_centi(i + 2) % 2000) / 100.0, (long long)ts_of(i));
    return n > 0 ? (size_t)n : 0;
}

static void opts_none(struct decode_opts *o)
{
    (void)o;
}

static void opts_z2m(struct decode_opts *o)
{
    /* README, "Payloads": [decode "zigbee2mqtt/#"] fields = all, drop_fields */
    o->fields_all = o->flatten = o->strict_strings = true;
    o->drop_fields = "update, update_available, power_on_behavior";
}

static void opts_tasmota(struct decode_opts *o)
{
    o->fields_all = o->flatten = o->strict_strings = true;
    o->drop_fields = "Time, TempUnit";
}

/* ---- CBOR and Sparkplug B payloads, written here byte by byte ---- */

static size_t put_head(unsigned char *b, unsigned major, uint64_t n)
{
    if (n < 24) {
        b[0] = (unsigned char)(major << 5 | n);
        return 1;
    }
    b[0] = (unsigned char)(major << 5 | 25); /* bench values stay below 65536 */
    b[1] = (unsigned char)(n >> 8);
    b[2] = (unsigned char)n;
    return 3;
}

static size_t put_text(unsigned char *b, const char *s)
{
    size_t n = strlen(s), k = put_head(b, 3, n);
    memcpy(b + k, s, n);
    return k + n;
}

static size_t put_double(unsigned char *b, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    b[0] = 0xfb;
    for (int i = 0; i < 8; i++)
        b[1 + i] = (unsigned char)(u >> (56 - 8 * i));
    return 9;
}

/* The z2m reading as a CBOR map (6 members). */
static size_t build_cbor(uint64_t i, char *buf)
{
    unsigned char *b = (unsigned char *)buf;
    size_t n = put_head(b, 5, 6);
    n += put_text(b + n, "temperature");
    n += put_double(b + n, (double)lg_stream_value_centi(i) / 100.0);
    n += put_text(b + n, "humidity");
    n += put_double(b + n, (double)lg_stream_hum_centi(i) / 100.0);
    n += put_text(b + n, "battery");
    n += put_head(b + n, 0, 50 + i % 50);
    n += put_text(b + n, "occupancy");
    b[n++] = (i & 1) ? 0xf5 : 0xf4;
    n += put_text(b + n, "linkquality");
    n += put_head(b + n, 0, 100 + i % 150);
    n += put_text(b + n, "voltage");
    n += put_head(b + n, 0, 2900 + i % 200);
    return n;
}

static size_t pb_varint(unsigned char *b, uint64_t v)
{
    size_t n = 0;
    do {
        b[n] = (unsigned char)(v & 0x7f);
        v >>= 7;
        b[n++] |= v ? 0x80 : 0;
    } while (v);
    return n;
}

/* One Sparkplug B metric: name, datatype Double (10), double_value. */
static size_t pb_metric(unsigned char *b, const char *name, double v)
{
    unsigned char m[64];
    size_t k = 0, len = strlen(name), n = 0;
    m[k++] = 1 << 3 | 2;
    k += pb_varint(m + k, len);
    memcpy(m + k, name, len);
    k += len;
    m[k++] = 4 << 3;
    m[k++] = 10;
    m[k++] = 13 << 3 | 1;
    memcpy(m + k, &v, 8); /* protobuf fixed64 is little-endian, as this host */
    k += 8;
    b[n++] = 2 << 3 | 2;
    n += pb_varint(b + n, k);
    memcpy(b + n, m, k);
    return n + k;
}

/* A DDATA payload: timestamp, three metrics by name, seq. */
static size_t build_sparkplug(uint64_t i, char *buf)
{
    unsigned char *b = (unsigned char *)buf;
    size_t n = 0;
    b[n++] = 1 << 3;
    n += pb_varint(b + n, (uint64_t)ts_of(i));
    n += pb_metric(b + n, "temperature", (double)lg_stream_value_centi(i) / 100.0);
    n += pb_metric(b + n, "humidity", (double)lg_stream_hum_centi(i) / 100.0);
    n += pb_metric(b + n, "pressure", 1000.0 + (double)(i % 50));
    b[n++] = 3 << 3;
    n += pb_varint(b + n, i % 256);
    return n;
}

static const struct format formats[] = {
    {"bare number", "bare", "sensors/dev1/temp", build_bare, opts_none, DEC_JSON, 1},
    {"json-ts", "json_ts", "sensors/dev1/temp", build_json_ts, opts_none, DEC_JSON, 1},
    {"device (loadgen --style device)", "device", "sensors/dev1/temp", build_device, opts_none,
     DEC_JSON, 1},
    {"zigbee2mqtt fields=all (z2m)", "z2m_fields_all", "zigbee2mqtt/kitchen", build_z2m, opts_z2m,
     DEC_JSON, 6},
    {"tasmota nested fields=all", "tasmota_fields_all", "tele/sonoff1/SENSOR", build_tasmota,
     opts_tasmota, DEC_JSON, 2},
    {"json array of 10 readings", "json_array_10", "batch/meter", build_array10, opts_none,
     DEC_JSON, 10},
    {"influx 1 line / 3 fields", "influx_1x3", "telegraf/pi", build_influx, opts_none, DEC_INFLUX,
     3},
    {"cbor z2m map fields=all", "cbor_z2m_fields_all", "cbor/kitchen", build_cbor, opts_z2m,
     DEC_CBOR, 6},
    {"sparkplug b DDATA, 3 metrics", "sparkplug_ddata_3", "spBv1.0/plant/DDATA/edge1/dev1",
     build_sparkplug, opts_none, DEC_SPARKPLUG, 3},
};
#define N_FORMATS (sizeof formats / sizeof formats[0])

static double now_ns(clockid_t clock)
{
    struct timespec t;
    clock_gettime(clock, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static enum decode_reason decode_one(const struct format *f, const struct decode_opts *o,
                                     const char *p, size_t len)
{
    static struct sparkplug_state *sp;
    switch (f->decoder) {
    case DEC_INFLUX: return decode_influx(o, DECODE_PREC_NS, p, len, RECV_MS, true, &result);
    case DEC_CBOR: return decode_cbor(o, p, len, RECV_MS, true, &result);
    case DEC_SPARKPLUG:
        if (sp == NULL && sparkplug_new(&sp) != EL_OK)
            return DECODE_MALFORMED;
        return decode_sparkplug(sp, o, f->topic, strlen(f->topic), p, len, RECV_MS, true, &result);
    default: return decode_payload(o, p, len, RECV_MS, true, &result);
    }
}

/* n messages through the decoder (and the names); returns false on a
 * decode failure. */
static bool run(const struct format *f, const struct decode_opts *o, uint64_t n, bool names)
{
    size_t topic_len = strlen(f->topic);
    char name[DECODE_NAME_MAX + 1];
    double acc = 0;

    for (uint64_t i = 0; i < n; i++) {
        uint64_t v = i % VARIANTS;
        if (decode_one(f, o, set.text[v], set.len[v]) != DECODE_OK)
            return false;
        acc += result.ev[0].value;
        if (names) {
            for (uint32_t k = 0; k < result.n_events; k++)
                acc += (double)decode_event_name(&result, &result.ev[k], f->topic, topic_len,
                                                 set.text[v], name, sizeof name);
        }
    }
    sink = acc;
    return true;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* R timed runs; the medians (and the wall extremes) per message. */
static bool timed(const struct format *f, const struct decode_opts *o, uint64_t iters, int repeats,
                  bool names, double *wall, double *cpu, double *wall_min, double *wall_max)
{
    double w[MAX_REPEATS], c[MAX_REPEATS];
    if (!run(f, o, iters / 10 + 1, names)) /* warm-up */
        return false;
    for (int r = 0; r < repeats; r++) {
        double w0 = now_ns(CLOCK_MONOTONIC), c0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
        if (!run(f, o, iters, names))
            return false;
        c[r] = (now_ns(CLOCK_THREAD_CPUTIME_ID) - c0) / (double)iters;
        w[r] = (now_ns(CLOCK_MONOTONIC) - w0) / (double)iters;
    }
    *cpu = median(c, repeats);
    *wall = median(w, repeats); /* sorts w */
    if (wall_min)
        *wall_min = w[0];
    if (wall_max)
        *wall_max = w[repeats - 1];
    return true;
}

/* Builds the variants and checks each decodes to f->events events. */
static bool prepare(const struct format *f, const struct decode_opts *o, size_t *mean_bytes)
{
    size_t total = 0;
    for (uint64_t v = 0; v < VARIANTS; v++) {
        set.len[v] = f->build(1000 + v, set.text[v]);
        total += set.len[v];
        enum decode_reason r = decode_one(f, o, set.text[v], set.len[v]);
        if (r != DECODE_OK || result.n_events != f->events) {
            fprintf(stderr, "el_decode_bench: %s: variant %llu: %s, %u events (want %u) %s: %.*s\n",
                    f->name, (unsigned long long)v, decode_reason_str(r), result.n_events,
                    f->events, result.detail, (int)set.len[v], set.text[v]);
            return false;
        }
    }
    *mean_bytes = total / VARIANTS;
    return true;
}

static void loadavg(char *buf, size_t cap)
{
    FILE *f = fopen("/proc/loadavg", "r");
    double a = 0, b = 0, c = 0;
    if (f == NULL || fscanf(f, "%lf %lf %lf", &a, &b, &c) != 3)
        snprintf(buf, cap, "unknown");
    else
        snprintf(buf, cap, "%.2f %.2f %.2f", a, b, c);
    if (f != NULL)
        fclose(f);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: el_decode_bench [--iterations N] [--repeats R] [--json]\n"
                 "  --iterations N   messages per timed run (default 200000)\n"
                 "  --repeats R      timed runs per format, median reported (default 5, max 101)\n"
                 "  --json           also print the figures as one JSON line\n");
}

static void print_json(const struct figures *fig, uint64_t iters, int repeats, const char *load0,
                       const char *load1)
{
    const struct figures *json_ts = &fig[1];
    printf("{\"iterations\":%llu,\"repeats\":%d,\"loadavg_start\":\"%s\",\"loadavg_end\":\"%s\","
           "\"formats\":[",
           (unsigned long long)iters, repeats, load0, load1);
    for (size_t k = 0; k < N_FORMATS; k++) {
        const struct figures *x = &fig[k];
        printf("%s{\"format\":\"%s\",\"bytes\":%zu,\"events\":%u,\"ns_per_msg\":%.1f,"
               "\"cpu_ns_per_msg\":%.1f,\"msgs_per_s\":%.0f,\"ns_min\":%.1f,\"ns_max\":%.1f,"
               "\"names_ns_per_msg\":%.1f,\"names_cpu_ns_per_msg\":%.1f,\"vs_json_ts\":%.2f}",
               k ? "," : "", formats[k].key, x->bytes, formats[k].events, x->wall_ns, x->cpu_ns,
               1e9 / x->wall_ns, x->wall_min_ns, x->wall_max_ns, x->names_wall_ns, x->names_cpu_ns,
               x->cpu_ns / json_ts->cpu_ns);
    }
    printf("]}\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"iterations", required_argument, NULL, 'n'},
                                         {"repeats", required_argument, NULL, 'r'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    unsigned long long iters = 200000;
    int repeats = 5;
    bool json = false;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'n': iters = strtoull(optarg, &end, 10); break;
        case 'r': repeats = (int)strtol(optarg, &end, 10); break;
        case 'j': json = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        if (end != NULL && (*end != '\0' || end == optarg)) {
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc || iters < 1 || repeats < 1 || repeats > MAX_REPEATS) {
        usage(stderr);
        return 2;
    }
    char err[128];
    if (!decode_words_parse(DECODE_DEFAULT_WORDS, &words, err, sizeof err)) {
        fprintf(stderr, "el_decode_bench: state words: %s\n", err);
        return 1;
    }
    char load0[64], load1[64];
    loadavg(load0, sizeof load0);
    printf("decode benchmark: %llu messages x %d runs per format (median), one thread, "
           "load average %s\n",
           iters, repeats, load0);
    printf("  %-34s %6s %6s %12s %12s %12s %14s %12s\n", "format", "bytes", "events", "ns/msg",
           "cpu ns/msg", "msgs/s", "min..max ns", "+names ns");
    static struct figures fig[N_FORMATS];
    for (size_t k = 0; k < N_FORMATS; k++) {
        const struct format *f = &formats[k];
        struct decode_opts o;
        decode_opts_default(&o); /* ingest's defaults, its state words */
        o.words = &words;
        f->opts(&o);
        struct figures *x = &fig[k];
        if (!prepare(f, &o, &x->bytes) ||
            !timed(f, &o, iters, repeats, false, &x->wall_ns, &x->cpu_ns, &x->wall_min_ns,
                   &x->wall_max_ns) ||
            !timed(f, &o, iters, repeats, true, &x->names_wall_ns, &x->names_cpu_ns, NULL, NULL))
            return 1;
        char range[32];
        snprintf(range, sizeof range, "%.0f..%.0f", x->wall_min_ns, x->wall_max_ns);
        printf("  %-34s %6zu %6u %12.1f %12.1f %12.0f %14s %12.1f\n", f->name, x->bytes, f->events,
               x->wall_ns, x->cpu_ns, 1e9 / x->wall_ns, range, x->names_wall_ns);
        fflush(stdout);
    }
    loadavg(load1, sizeof load1);
    printf("  cost against json-ts (cpu ns/msg):");
    for (size_t k = 0; k < N_FORMATS; k++)
        printf(" %s %.2fx%s", formats[k].key, fig[k].cpu_ns / fig[1].cpu_ns,
               k + 1 < N_FORMATS ? "," : "\n");
    printf("  load average at the end: %s (wall figures include time spent waiting for a core, "
           "cpu figures do not)\n",
           load1);
    if (json)
        print_json(fig, iters, repeats, load0, load1);
    return 0;
}
