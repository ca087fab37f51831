/*
 * el_bench_rr — request/response round-trip latency over MQTT v5, for
 * tools/bench query (tools/lib/bench_query.py). Formerly the hidden
 * `edgelambda bench-rr` command.
 *
 *   el_bench_rr [--uri URI] [--prefix PREFIX] --request JSON [--topic TOPIC]
 *               [--echo-topic TOPIC] [--count N] [--warmup N] [--qos 0|1]
 *               [--timeout SECONDS]
 *
 * Sends the same request N times, one at a time, over ONE connection (the
 * CLI's own client: cli_rr_open, response topic + correlation data) and
 * prints, per target,
 *   bench-rr: topic=T n=N errors=E p50_us=.. p90_us=.. p99_us=.. max_us=..
 *   mean_us=.. reply_bytes=B
 * With --echo-topic every round sends the request to both topics (in
 * alternating order), so both are measured under the same conditions. An
 * error is a reply that does not start with {"ok":true, or none in time.
 * Exit status: 0 no errors, 1 errors or broker failure, 2 usage error.
 *
 * Design: latencies go into arrays allocated before the loop; the measured
 * loop allocates nothing (mqtt_client_request reuses its reply buffer).
 * Percentiles are nearest-rank over the sorted latencies.
 * Threading: main thread, plus Paho's inside the client.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "plat_clock.h"

#define BENCH_MAX_COUNT 10000000ULL

enum {
    OPT_URI = 0x1000,
    OPT_PREFIX,
    OPT_REQUEST,
    OPT_TOPIC,
    OPT_ECHO_TOPIC,
    OPT_COUNT,
    OPT_WARMUP,
    OPT_QOS,
    OPT_TIMEOUT,
};

static void usage(FILE *out)
{
    fprintf(out, "usage: el_bench_rr [--uri URI] [--prefix PREFIX] --request JSON [--topic TOPIC]\n"
                 "                   [--echo-topic TOPIC] [--count N] [--warmup N] [--qos 0|1]\n"
                 "                   [--timeout SECONDS]\n"
                 "\n"
                 "Benchmark helper (tools/bench query): sends the same request N times, one\n"
                 "at a time, over one MQTT v5 connection and prints its round-trip latency:\n"
                 "  bench-rr: topic=T n=N errors=E p50_us=.. p90_us=.. p99_us=.. max_us=..\n"
                 "  mean_us=.. reply_bytes=B\n"
                 "With --echo-topic, every round sends the request to both topics (in\n"
                 "alternating order) and one such line is printed per topic, so both are\n"
                 "measured under the same conditions. An error is a reply that does not\n"
                 "start with {\"ok\":true, or none in time.\n"
                 "\n"
                 "  --uri URI            broker (default $EDGELAMBDA_URI or " CLI_DEFAULT_URI ")\n"
                 "  --prefix PREFIX      daemon topic prefix (default " CLI_DEFAULT_PREFIX ")\n"
                 "  --request JSON       the request payload\n"
                 "  --topic TOPIC        request topic (default <prefix>/query)\n"
                 "  --echo-topic TOPIC   a second responder to interleave (el_echo_responder)\n"
                 "  --count N            measured rounds (default 1000)\n"
                 "  --warmup N           unmeasured rounds first (default 100)\n"
                 "  --qos 0|1            request QoS (default 0, as the CLI)\n"
                 "  --timeout SECONDS    per request (default 5)\n"
                 "  -h, --help           this help\n"
                 "\n"
                 "Exit status: 0 no errors, 1 errors or broker failure, 2 usage error.\n");
}

struct bench_args {
    const char *uri, *prefix;
    const char *request;
    const char *topic;
    const char *echo_topic;
    uint64_t count, warmup, qos;
    double timeout_s;
};

/* One measured target: its topic, latencies and outcome. */
struct bench_target {
    char topic[CLI_RR_TOPIC_MAX + 64];
    int64_t *lat_ns; /* count entries, allocated before the loop */
    uint64_t errors;
    size_t reply_bytes;
};

/* One option; false on a bad value (message printed). */
static bool bench_option(void *ctx, int opt, const char *arg)
{
    struct bench_args *a = ctx;

    switch (opt) {
    case OPT_URI: a->uri = arg; return true;
    case OPT_PREFIX: a->prefix = arg; return true;
    case OPT_REQUEST: a->request = arg; return true;
    case OPT_TOPIC: a->topic = arg; return true;
    case OPT_ECHO_TOPIC: a->echo_topic = arg; return true;
    case OPT_COUNT: return cli_parse_u64(arg, "--count", 1, BENCH_MAX_COUNT, &a->count);
    case OPT_WARMUP: return cli_parse_u64(arg, "--warmup", 0, BENCH_MAX_COUNT, &a->warmup);
    case OPT_QOS: return cli_parse_u64(arg, "--qos", 0, 1, &a->qos);
    case OPT_TIMEOUT: return cli_parse_double(arg, "--timeout", 0.001, 3600.0, &a->timeout_s);
    default: usage(stderr); return false;
    }
}

/* Returns 0, 2 (usage) or -1 after --help. */
static int bench_parse_args(int argc, char **argv, struct bench_args *a)
{
    static const struct option longopts[] = {
        {"uri", required_argument, NULL, OPT_URI},
        {"prefix", required_argument, NULL, OPT_PREFIX},
        {"request", required_argument, NULL, OPT_REQUEST},
        {"topic", required_argument, NULL, OPT_TOPIC},
        {"echo-topic", required_argument, NULL, OPT_ECHO_TOPIC},
        {"count", required_argument, NULL, OPT_COUNT},
        {"warmup", required_argument, NULL, OPT_WARMUP},
        {"qos", required_argument, NULL, OPT_QOS},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int rc = cli_getopt_each(argc, argv, longopts, usage, bench_option, a);

    if (rc != 0)
        return rc;
    if (a->request == NULL || optind < argc) {
        fprintf(stderr, "el_bench_rr: give --request JSON (and no other arguments)\n");
        return 2;
    }
    return 0;
}

static int cmp_i64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;

    return (a > b) - (a < b);
}

/* Nearest-rank percentile of sorted v[0..n), in microseconds. */
static double percentile_us(const int64_t *v, size_t n, double q)
{
    size_t rank = (size_t)ceil(q * (double)n);

    if (rank < 1)
        rank = 1;
    return (double)v[rank - 1] / 1000.0;
}

/* One request to target t; measured as round `slot` unless slot < 0. */
static void bench_one(struct mqtt_client *client, const struct bench_args *a, size_t len,
                      struct bench_target *t, int64_t slot)
{
    const char *reply = NULL;
    size_t reply_len = 0;
    int64_t t0 = plat_clock_mono_ns();
    el_status st = mqtt_client_request(client, t->topic, a->request, len, (int)a->qos, a->timeout_s,
                                       &reply, &reply_len);
    int64_t t1 = plat_clock_mono_ns();
    bool ok = st == EL_OK && strncmp(reply, "{\"ok\":true", 10) == 0;

    if (slot < 0)
        return;
    t->lat_ns[slot] = t1 - t0;
    t->reply_bytes = reply_len;
    if (!ok) {
        if (t->errors == 0)
            fprintf(stderr, "el_bench_rr: %s: request %lld: %.200s\n", t->topic, (long long)slot,
                    st == EL_OK ? reply : mqtt_client_error(client));
        t->errors++;
    }
}

/* The measured loop. Round i sends to every target, starting with target
 * i % n_targets. */
static void bench_loop(struct mqtt_client *client, const struct bench_args *a,
                       struct bench_target *t, size_t n_targets)
{
    size_t len = strlen(a->request);

    for (uint64_t i = 0; i < a->warmup + a->count; i++) {
        int64_t slot = i < a->warmup ? -1 : (int64_t)(i - a->warmup);

        for (size_t k = 0; k < n_targets; k++)
            bench_one(client, a, len, &t[(i + k) % n_targets], slot);
    }
}

static void bench_print(const struct bench_target *t, uint64_t count)
{
    double sum = 0;

    for (uint64_t i = 0; i < count; i++)
        sum += (double)t->lat_ns[i];
    printf("bench-rr: topic=%s n=%llu errors=%llu p50_us=%.1f p90_us=%.1f p99_us=%.1f "
           "max_us=%.1f mean_us=%.1f reply_bytes=%zu\n",
           t->topic, (unsigned long long)count, (unsigned long long)t->errors,
           percentile_us(t->lat_ns, (size_t)count, 0.50),
           percentile_us(t->lat_ns, (size_t)count, 0.90),
           percentile_us(t->lat_ns, (size_t)count, 0.99), (double)t->lat_ns[count - 1] / 1000.0,
           sum / (double)count / 1000.0, t->reply_bytes);
}

/* The targets' topics; false (message printed) when one is too long. */
static bool bench_topics(const struct bench_args *a, struct bench_target t[2])
{
    int n = a->topic != NULL ? snprintf(t[0].topic, sizeof t[0].topic, "%s", a->topic)
                             : snprintf(t[0].topic, sizeof t[0].topic, "%s/query", a->prefix);

    if (n < 0 || (size_t)n >= sizeof t[0].topic ||
        (a->echo_topic != NULL && (size_t)snprintf(t[1].topic, sizeof t[1].topic, "%s",
                                                   a->echo_topic) >= sizeof t[1].topic)) {
        fprintf(stderr, "el_bench_rr: topic too long\n");
        return false;
    }
    return true;
}

/* Connects, runs the rounds and prints; returns the exit status. */
static int bench_run(const struct bench_args *a, struct bench_target *t, size_t n_targets)
{
    struct cli_rr rr;
    int rc = 1;

    if (cli_rr_open(&rr, a->uri, a->prefix, a->timeout_s) != EL_OK)
        return 1;
    if (mqtt_client_connect(rr.client, a->timeout_s) != EL_OK) {
        fprintf(stderr, "el_bench_rr: %s: %s\n", a->uri, mqtt_client_error(rr.client));
    } else {
        bench_loop(rr.client, a, t, n_targets);
        rc = 0;
        for (size_t k = 0; k < n_targets; k++) {
            qsort(t[k].lat_ns, (size_t)a->count, sizeof *t[k].lat_ns, cmp_i64);
            bench_print(&t[k], a->count);
            if (t[k].errors > 0)
                rc = 1;
        }
        if (fflush(stdout) != 0)
            rc = 1;
    }
    cli_rr_close(&rr);
    return rc;
}

int main(int argc, char **argv)
{
    const char *env_uri = getenv("EDGELAMBDA_URI");
    struct bench_args a = {(env_uri != NULL && env_uri[0] != '\0') ? env_uri : CLI_DEFAULT_URI,
                           CLI_DEFAULT_PREFIX,
                           NULL,
                           NULL,
                           NULL,
                           1000,
                           100,
                           0,
                           5.0};
    struct bench_target t[2];
    size_t n_targets;
    int rc;

    cli_program = "el_bench_rr";
    rc = bench_parse_args(argc, argv, &a);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    memset(t, 0, sizeof t);
    n_targets = a.echo_topic != NULL ? 2 : 1;
    if (!bench_topics(&a, t))
        return 2;
    rc = 1;
    for (size_t k = 0; k < n_targets; k++) {
        t[k].lat_ns = calloc((size_t)a.count, sizeof *t[k].lat_ns);
        if (t[k].lat_ns == NULL)
            break;
        if (k + 1 == n_targets)
            rc = bench_run(&a, t, n_targets);
    }
    for (size_t k = 0; k < n_targets; k++)
        free(t[k].lat_ns);
    return rc;
}
