/*
 * config_test — unit tests of firmware/config.c: defaults, every key, each
 * type's bad values with the exact "<name>:<line>: [section] key:" prefix,
 * the INI dialect (comments, indentation, CRLF, BOM, over-long lines, NUL),
 * command-line overrides, config_finish's derived values and cross-key
 * checks, and the example config at the repository root (which must list
 * every key of the table with its default).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ini.h>

#include "config.h"
#include "decode.h"
#include "plat_clock.h"
#include "plat_log.h"

#define ERRLEN 512
#define MAX_KEYS 128

static el_status load(struct el_config *cfg, const char *text, char *err)
{
    config_defaults(cfg);
    return config_load_string(cfg, text, strlen(text), "test.conf", err, ERRLEN);
}

/* Loads text over the defaults and requires EL_INVAL with expect in the message. */
static void expect_load_error(const char *text, const char *expect)
{
    struct el_config cfg;
    char err[ERRLEN];

    el_status st = load(&cfg, text, err);
    if (st != EL_INVAL || strstr(err, expect) == NULL)
        fail_msg("input:\n%s\nstatus %s, message '%s'; expected '%s'", text, el_status_str(st), err,
                 expect);
}

static void expect_set_error(struct el_config *cfg, const char *assignment, const char *expect)
{
    char err[ERRLEN];

    el_status st = config_set(cfg, assignment, err, sizeof err);
    if (st != EL_INVAL || strstr(err, expect) == NULL)
        fail_msg("config_set(\"%s\"): status %s, message '%s'; expected '%s'", assignment,
                 el_status_str(st), err, expect);
}

static void expect_finish_error(const char *text, const char *expect)
{
    struct el_config cfg;
    char err[ERRLEN];

    el_status st = load(&cfg, text, err);
    if (st != EL_OK)
        fail_msg("input:\n%s\ndid not load: %s", text, err);
    st = config_finish(&cfg, err, sizeof err);
    if (st != EL_INVAL || strstr(err, expect) == NULL)
        fail_msg("input:\n%s\nfinish: status %s, message '%s'; expected '%s'", text,
                 el_status_str(st), err, expect);
}

static void load_ok(struct el_config *cfg, const char *text)
{
    char err[ERRLEN];

    el_status st = load(cfg, text, err);
    if (st != EL_OK)
        fail_msg("input:\n%s\nstatus %s: %s", text, el_status_str(st), err);
}

static char *read_whole_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        fail_msg("cannot open %s", path);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    long size = ftell(fp);
    assert_true(size >= 0);
    rewind(fp);
    char *buf = malloc((size_t)size + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)size, fp), (size_t)size);
    buf[size] = '\0';
    fclose(fp);
    return buf;
}

/* The example config at the repository root, found from this file's path. */
static void example_path(char *out, size_t len)
{
    const char *slash = strrchr(__FILE__, '/');
    int dirlen = slash != NULL ? (int)(slash - __FILE__) : 1;

    snprintf(out, len, "%.*s/../../edgelambda.conf.example", dirlen,
             slash != NULL ? __FILE__ : ".");
}

static char *print_help_text(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&text, &len);

    assert_non_null(fp);
    config_print_help(fp);
    assert_int_equal(fclose(fp), 0);
    return text;
}

/* "# key = value" or "# key =" (a commented-out key line)? */
static int is_key_comment(const char *line)
{
    size_t k = 2;

    if (line[0] != '#' || line[1] != ' ')
        return 0;
    while ((line[k] >= 'a' && line[k] <= 'z') || (line[k] >= '0' && line[k] <= '9') ||
           line[k] == '_')
        k++;
    return k > 2 && line[k] == ' ' && line[k + 1] == '=';
}

/* Copy of text with every commented-out key line un-commented. */
static char *uncomment(const char *text)
{
    char *out = malloc(strlen(text) + 1);
    char *o = out;

    assert_non_null(out);
    for (const char *p = text; *p != '\0';) {
        const char *nl = strchr(p, '\n');
        size_t len = nl != NULL ? (size_t)(nl - p) + 1 : strlen(p);
        if (is_key_comment(p)) {
            p += 2;
            len -= 2;
        }
        memcpy(o, p, len);
        o += len;
        p += len;
    }
    *o = '\0';
    return out;
}

/* Collects "section.key" of every key line (plain or commented out). */
static int collect_keys(const char *text, char keys[][96])
{
    char section[32] = "";
    int n = 0;

    for (const char *p = text; *p != '\0';) {
        const char *line = is_key_comment(p) ? p + 2 : p;
        size_t klen = strcspn(line, " =\n");
        if (p[0] == '[') {
            snprintf(section, sizeof section, "%.*s", (int)strcspn(p + 1, "]"), p + 1);
        } else if (line != p || (p[0] >= 'a' && p[0] <= 'z' && line[klen] == ' ')) {
            assert_true(n < MAX_KEYS);
            snprintf(keys[n++], 96, "%s.%.*s", section, (int)klen, line);
        }
        const char *nl = strchr(p, '\n');
        if (nl == NULL)
            break;
        p = nl + 1;
    }
    return n;
}

static int has_key(char keys[][96], int n, const char *key)
{
    for (int i = 0; i < n; i++)
        if (strcmp(keys[i], key) == 0)
            return 1;
    return 0;
}

static void assert_same_keys(char a[][96], int na, char b[][96], int nb)
{
    for (int i = 0; i < na; i++)
        if (!has_key(b, nb, a[i]))
            fail_msg("key %s is missing from the other list", a[i]);
    for (int i = 0; i < nb; i++)
        if (!has_key(a, na, b[i]))
            fail_msg("key %s is missing from the other list", b[i]);
    assert_int_equal(na, nb);
}

/* ------------------------------------------------------------------ tests */

static void test_defaults(void **state)
{
    struct el_config cfg;
    (void)state;

    config_defaults(&cfg);
    assert_string_equal(cfg.mqtt.uri, "tcp://127.0.0.1:1883");
    assert_string_equal(cfg.mqtt.client_id, "");
    assert_string_equal(cfg.mqtt.topic_prefix, "edgelambda");
    assert_int_equal(cfg.mqtt.keepalive_s, 30);
    assert_int_equal(cfg.mqtt.session_expiry_s, 86400);
    assert_int_equal(cfg.mqtt.max_inflight, 100);
    assert_true(cfg.mqtt.tcp_nodelay);
    assert_string_equal(cfg.ingest.subscribe, "sensors/#");
    assert_int_equal(cfg.ingest.n_filters, 0);
    assert_int_equal(cfg.ingest.qos, 1);
    assert_string_equal(cfg.ingest.value_field, "value");
    assert_string_equal(cfg.ingest.ts_field, "ts");
    assert_false(cfg.ingest.fields_all);
    assert_int_equal(cfg.ingest.max_payload, 65536);
    assert_int_equal(cfg.ingest.max_future_s, 86400);
    assert_string_equal(cfg.ingest.state_words, DECODE_DEFAULT_WORDS);
    assert_int_equal(cfg.speed.bucket_ms, 1000);
    assert_int_equal(cfg.speed.slots, 600);
    assert_int_equal(cfg.speed.raw_samples, 256);
    assert_int_equal(cfg.speed.max_series, 1000);
    assert_string_equal(cfg.storage.dir, "/var/lib/edgelambda");
    assert_int_equal(cfg.storage.durability, EL_DURABILITY_NORMAL);
    assert_int_equal(cfg.storage.flush_interval_ms, 10);
    assert_int_equal(cfg.storage.max_bytes, 0);
    assert_int_equal(cfg.storage.full_policy, EL_FULL_STOP_INGEST);
    assert_int_equal(cfg.storage.hard_max_bytes, 0);
    assert_int_equal(cfg.storage.journal_segment_bytes, 8 * 1024 * 1024);
    assert_int_equal(cfg.storage.journal_segments, 4);
    assert_int_equal(cfg.batch.idle_cpu_pct, 20);
    assert_true(cfg.batch.idle_ingest_rate == 200.0);
    assert_int_equal(cfg.batch.idle_for_s, 30);
    assert_string_equal(cfg.batch.schedule, "");
    assert_int_equal(cfg.batch.max_lag_s, 300);
    assert_string_equal(cfg.sync.url, "");
    assert_int_equal(cfg.sync.format, EL_SYNC_NDJSON);
    assert_int_equal(cfg.sync.compression, EL_COMPRESS_GZIP);
    assert_int_equal(cfg.sync.batch_events, 5000);
    assert_int_equal(cfg.sync.batch_bytes, 1024 * 1024);
    assert_string_equal(cfg.sync.device_id, "");
    assert_false(cfg.sync.insecure);
    assert_int_equal(cfg.sync.timeout_s, 30);
    assert_int_equal(cfg.sync.live_window_s, 300);
    assert_int_equal(cfg.sync.max_kbps, 0);
    assert_int_equal(cfg.log.level, PLAT_LOG_INFO);
    assert_int_equal(cfg.clock.synced, PLAT_CLOCK_SYNC_AUTO);
    assert_string_equal(cfg.metrics.textfile, "");
}

static void test_empty_file_is_defaults(void **state)
{
    struct el_config def, cfg;
    char err[ERRLEN];
    (void)state;

    config_defaults(&def);
    load_ok(&cfg, "");
    assert_memory_equal(&cfg, &def, sizeof cfg);
    load_ok(&cfg, "# only a comment\n\n; another\n");
    assert_memory_equal(&cfg, &def, sizeof cfg);
    config_defaults(&cfg);
    assert_int_equal(config_load_string(&cfg, NULL, 0, "none", err, sizeof err), EL_OK);
    assert_memory_equal(&cfg, &def, sizeof cfg);
    assert_int_equal(config_finish(&cfg, err, sizeof err), EL_OK);
    assert_string_equal(err, "");
}

static const char every_key[] = "[mqtt]\n"
                                "uri = ssl://broker.example:8883\n"
                                "client_id = dev-1\n"
                                "username = alice\n"
                                "password_file = /etc/edgelambda/pw\n"
                                "topic_prefix = site/el\n"
                                "ca_file = /etc/ca.pem\n"
                                "cert_file = /etc/c.pem\n"
                                "key_file = /etc/k.pem\n"
                                "keepalive_s = 60\n"
                                "session_expiry_s = 3600\n"
                                "max_inflight = 500\n"
                                "tcp_nodelay = no\n"
                                "[ingest]\n"
                                "subscribe = a/+/temp, b/#\n"
                                "qos = 2\n"
                                "value_field = v\n"
                                "ts_field = time\n"
                                "fields = all\n"
                                "state_words = heat=2,idle=0\n"
                                "max_payload = 128K\n"
                                "max_future_s = 3600\n"
                                "[speed]\n"
                                "bucket_ms = 500\n"
                                "slots = 7200\n"
                                "raw_samples = 128\n"
                                "max_series = 500\n"
                                "[storage]\n"
                                "dir = ./var\n"
                                "durability = strict\n"
                                "flush_interval_ms = 50\n"
                                "max_bytes = 2G\n"
                                "full_policy = drop_oldest\n"
                                "hard_max_bytes = 3G\n"
                                "journal_segment_bytes = 16M\n"
                                "journal_segments = 8\n"
                                "max_age_s = 7776000\n"
                                "keep_1m_s = 86400\n"
                                "keep_1h_s = 604800\n"
                                "keep_1d_s = 31536000\n"
                                "[batch]\n"
                                "idle_cpu_pct = 35\n"
                                "idle_ingest_rate = 12.5\n"
                                "idle_for_s = 60\n"
                                "schedule = every 15m\n"
                                "max_lag_s = 1200\n"
                                "[sync]\n"
                                "url = https://collector.example/ingest\n"
                                "format = influx\n"
                                "compression = zstd\n"
                                "batch_events = 1000\n"
                                "batch_bytes = 512K\n"
                                "ca_file = /etc/sync-ca.pem\n"
                                "cert_file = /etc/sync-c.pem\n"
                                "key_file = /etc/sync-k.pem\n"
                                "token_file = /etc/token\n"
                                "device_id = pi-7\n"
                                "insecure = yes\n"
                                "timeout_s = 10\n"
                                "include_seq = true\n"
                                "live_window_s = 60\n"
                                "max_kbps = 256\n"
                                "[query]\n"
                                "deadline_ms = 750\n"
                                "max_rows = 5000\n"
                                "max_cells = 77\n"
                                "max_values = 99\n"
                                "max_sketch_bins = 123\n"
                                "max_match = 9\n"
                                "[log]\n"
                                "level = debug\n"
                                "[clock]\n"
                                "synced = no\n"
                                "[metrics]\n"
                                "textfile = /var/lib/prometheus/node-exporter/edgelambda.prom\n"
                                "[continuous]\n"
                                "max_msgs_per_s = 50\n"
                                "max_watches = 8\n"
                                "max_cells = 512\n";

static void test_every_key(void **state)
{
    struct el_config cfg;
    char err[ERRLEN];
    (void)state;

    load_ok(&cfg, every_key);
    assert_int_equal(cfg.query.deadline_ms, 750);
    assert_true(cfg.query.max_rows == 5000);
    assert_int_equal(cfg.query.max_cells, 77);
    assert_int_equal(cfg.query.max_values, 99);
    assert_int_equal(cfg.query.max_sketch_bins, 123);
    assert_int_equal(cfg.query.max_match, 9);
    assert_string_equal(cfg.mqtt.uri, "ssl://broker.example:8883");
    assert_string_equal(cfg.mqtt.client_id, "dev-1");
    assert_string_equal(cfg.mqtt.username, "alice");
    assert_string_equal(cfg.mqtt.password_file, "/etc/edgelambda/pw");
    assert_string_equal(cfg.mqtt.topic_prefix, "site/el");
    assert_string_equal(cfg.mqtt.ca_file, "/etc/ca.pem");
    assert_string_equal(cfg.mqtt.cert_file, "/etc/c.pem");
    assert_string_equal(cfg.mqtt.key_file, "/etc/k.pem");
    assert_int_equal(cfg.mqtt.keepalive_s, 60);
    assert_int_equal(cfg.mqtt.session_expiry_s, 3600);
    assert_int_equal(cfg.mqtt.max_inflight, 500);
    assert_false(cfg.mqtt.tcp_nodelay);
    assert_string_equal(cfg.ingest.subscribe, "a/+/temp, b/#");
    assert_int_equal(cfg.ingest.qos, 2);
    assert_string_equal(cfg.ingest.value_field, "v");
    assert_string_equal(cfg.ingest.ts_field, "time");
    assert_true(cfg.ingest.fields_all);
    assert_string_equal(cfg.ingest.state_words, "heat=2,idle=0");
    assert_int_equal(cfg.ingest.max_payload, 128 * 1024);
    assert_int_equal(cfg.ingest.max_future_s, 3600);
    assert_int_equal(cfg.speed.bucket_ms, 500);
    assert_int_equal(cfg.speed.slots, 7200);
    assert_int_equal(cfg.speed.raw_samples, 128);
    assert_int_equal(cfg.speed.max_series, 500);
    assert_string_equal(cfg.storage.dir, "./var");
    assert_int_equal(cfg.storage.durability, EL_DURABILITY_STRICT);
    assert_int_equal(cfg.storage.flush_interval_ms, 50);
    assert_int_equal(cfg.storage.max_bytes, INT64_C(2) << 30);
    assert_int_equal(cfg.storage.full_policy, EL_FULL_DROP_OLDEST);
    assert_int_equal(cfg.storage.hard_max_bytes, INT64_C(3) << 30);
    assert_int_equal(cfg.storage.journal_segment_bytes, 16 << 20);
    assert_int_equal(cfg.storage.journal_segments, 8);
    assert_int_equal(cfg.storage.max_age_s, 7776000);
    assert_int_equal(cfg.storage.keep_1m_s, 86400);
    assert_int_equal(cfg.storage.keep_1h_s, 604800);
    assert_int_equal(cfg.storage.keep_1d_s, 31536000);
    assert_int_equal(cfg.batch.idle_cpu_pct, 35);
    assert_true(cfg.batch.idle_ingest_rate == 12.5);
    assert_int_equal(cfg.batch.idle_for_s, 60);
    assert_string_equal(cfg.batch.schedule, "every 15m");
    assert_int_equal(cfg.batch.max_lag_s, 1200);
    assert_string_equal(cfg.sync.url, "https://collector.example/ingest");
    assert_int_equal(cfg.sync.format, EL_SYNC_INFLUX);
    assert_int_equal(cfg.sync.compression, EL_COMPRESS_ZSTD);
    assert_int_equal(cfg.sync.batch_events, 1000);
    assert_int_equal(cfg.sync.batch_bytes, 512 * 1024);
    assert_string_equal(cfg.sync.ca_file, "/etc/sync-ca.pem");
    assert_string_equal(cfg.sync.cert_file, "/etc/sync-c.pem");
    assert_string_equal(cfg.sync.key_file, "/etc/sync-k.pem");
    assert_string_equal(cfg.sync.token_file, "/etc/token");
    assert_string_equal(cfg.sync.device_id, "pi-7");
    assert_true(cfg.sync.insecure);
    assert_int_equal(cfg.sync.timeout_s, 10);
    assert_true(cfg.sync.include_seq);
    assert_int_equal(cfg.sync.live_window_s, 60);
    assert_int_equal(cfg.sync.max_kbps, 256);
    assert_int_equal(cfg.log.level, PLAT_LOG_DEBUG);
    assert_int_equal(cfg.clock.synced, PLAT_CLOCK_SYNC_NO);
    assert_string_equal(cfg.metrics.textfile, "/var/lib/prometheus/node-exporter/edgelambda.prom");
    assert_int_equal(cfg.continuous.max_msgs_per_s, 50);
    assert_int_equal(cfg.continuous.max_watches, 8);
    assert_int_equal(cfg.continuous.max_cells, 512);

    assert_int_equal(config_finish(&cfg, err, sizeof err), EL_OK);
    assert_int_equal(cfg.ingest.n_filters, 2);
    assert_string_equal(cfg.ingest.filters[0], "a/+/temp");
    assert_string_equal(cfg.ingest.filters[1], "b/#");
    assert_string_equal(cfg.mqtt.client_id, "dev-1");
    assert_string_equal(cfg.sync.device_id, "pi-7");
}

/* every_key above really names every key of the table. */
static void test_every_key_covers_table(void **state)
{
    static char a[MAX_KEYS][96], b[MAX_KEYS][96];
    (void)state;

    char *help = print_help_text();
    int na = collect_keys(every_key, a);
    int nb = collect_keys(help, b);
    assert_same_keys(a, na, b, nb);
    free(help);
}

struct bad_case {
    const char *section, *key, *value, *expect;
};

static const struct bad_case bad_cases[] = {
    {"mqtt", "keepalive_s", "abc", "expected an integer in 5..3600; got 'abc'"},
    {"mqtt", "keepalive_s", "30s", "expected an integer in 5..3600; got '30s'"},
    {"mqtt", "keepalive_s", "0x10", "expected an integer in 5..3600; got '0x10'"},
    {"mqtt", "keepalive_s", "", "expected an integer in 5..3600; got ''"},
    {"mqtt", "keepalive_s", "4", "out of range 5..3600; got '4'"},
    {"mqtt", "keepalive_s", "99999999999999999999", "out of range 5..3600"},
    {"mqtt", "session_expiry_s", "2147483648", "out of range 1..2147483647"},
    {"mqtt", "max_inflight", "-1", "out of range 1..65535"},
    {"ingest", "qos", "3", "out of range 0..2; got '3'"},
    {"ingest", "max_future_s", "-5", "out of range 1..315360000"},
    {"ingest", "max_future_s", "1e3", "expected an integer in 1..315360000"},
    {"ingest", "max_payload", "64X", "expected a size in 16..16M bytes"},
    {"ingest", "max_payload", "64KB", "expected a size in 16..16M bytes"},
    {"ingest", "max_payload", "1.5M", "expected a size in 16..16M bytes"},
    {"ingest", "max_payload", "K", "expected a size in 16..16M bytes"},
    {"ingest", "max_payload", "64 K", "expected a size in 16..16M bytes"},
    {"ingest", "max_payload", "32M", "out of range 16..16M bytes"},
    {"ingest", "max_payload", "8", "out of range 16..16M bytes"},
    {"storage", "max_bytes", "-1", "out of range 0..16384G bytes"},
    {"storage", "max_bytes", "9999999999999G", "out of range 0..16384G bytes"},
    {"storage", "max_bytes", "99999999999999999999", "out of range 0..16384G bytes"},
    {"storage", "journal_segment_bytes", "2G", "out of range 1M..1G bytes"},
    {"batch", "idle_ingest_rate", "fast", "expected a number in 0..1000000000; got 'fast'"},
    {"batch", "idle_ingest_rate", "nan", "expected a number in 0..1000000000"},
    {"batch", "idle_ingest_rate", "inf", "expected a number in 0..1000000000"},
    {"batch", "idle_ingest_rate", "1.5x", "expected a number in 0..1000000000"},
    {"batch", "idle_ingest_rate", "-1", "out of range 0..1000000000; got '-1'"},
    {"batch", "idle_ingest_rate", "1e999", "out of range 0..1000000000"},
    {"sync", "insecure", "maybe", "expected true or false (or yes/no, on/off, 1/0); got 'maybe'"},
    {"sync", "insecure", "2", "expected true or false"},
    {"storage", "durability", "fast", "expected one of normal, strict; got 'fast'"},
    {"storage", "full_policy", "panic", "expected one of stop_ingest, drop_oldest"},
    {"ingest", "fields", "some", "expected one of value, all; got 'some'"},
    {"ingest", "state_words", "ON", "'ON': expected WORD=NUMBER"},
    {"ingest", "state_words", "ON=1,ON=0", "'ON' is given twice"},
    {"ingest", "state_words", "a b=1", "'a b=1': a word has no white space"},
    {"sync", "format", "csv", "expected one of ndjson, influx"},
    {"sync", "compression", "lz4", "expected one of none, gzip, zstd"},
    {"log", "level", "verbose", "expected one of error, warn, info, debug; got 'verbose'"},
    {"clock", "synced", "sometimes", "expected one of auto, yes, no"},
    {"mqtt", "uri", "http://broker:1883", "expected tcp://, ssl://, mqtt://, mqtts://"},
    {"mqtt", "uri", "", "must not be empty"},
    {"mqtt", "uri", "tcp://", "missing or bad host"},
    {"mqtt", "uri", "tcp://:1883", "missing or bad host"},
    {"mqtt", "uri", "tcp://host:0", "port must be 1..65535"},
    {"mqtt", "uri", "tcp://host:65536", "port must be 1..65535"},
    {"mqtt", "uri", "tcp://host:1883x", "unexpected 'x' after host[:port]"},
    {"mqtt", "uri", "tcp://host/path", "unexpected '/path'"},
    {"mqtt", "topic_prefix", "a/+", "must not contain '+' or '#'"},
    {"mqtt", "topic_prefix", "a/#", "must not contain '+' or '#'"},
    {"mqtt", "topic_prefix", "a/", "must not end with '/'"},
    {"mqtt", "topic_prefix", "", "must not be empty"},
    {"mqtt", "username", "a\x01z", "contains a control character"},
    {"ingest", "subscribe", "a/#/b", "topic filter 'a/#/b': '#' must be the whole last level"},
    {"ingest", "subscribe", "x, a/b#", "topic filter 'a/b#': '#' must be the whole last level"},
    {"ingest", "subscribe", "a/b+/c", "topic filter 'a/b+/c': '+' must be a whole level"},
    {"ingest", "subscribe", "a/b\tc", "contains a control character"},
    {"ingest", "subscribe", "a/b,", "empty topic filter"},
    {"ingest", "subscribe", "a/b, a/b", "topic filter 'a/b' listed twice"},
    {"ingest", "value_field", "", "must not be empty"},
    {"batch", "schedule", "sometimes", "expected empty, 'every <N>s|m|h|d'"},
    {"batch", "schedule", "24:00", "expected empty"},
    {"batch", "schedule", "every 8d", "expected empty"},
    {"batch", "schedule", "every 0m", "expected empty"},
    {"batch", "schedule", "every 5", "expected empty"},
    {"sync", "url", "ftp://x/y", "expected empty, http://... or https://..."},
    {"sync", "url", "https:///path", "missing or bad host"},
    {"metrics", "textfile", "/tmp/el.txt", "expected empty or a file name ending in .prom"},
    {"metrics", "textfile", "/tmp/.prom", "expected empty or a file name ending in .prom"},
    {"metrics", "textfile", "prom", "expected empty or a file name ending in .prom"},
};

/* Each bad value is reported at its line (4), naming section and key. */
static void test_bad_values(void **state)
{
    char text[512], expect[512];
    (void)state;

    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const struct bad_case *c = &bad_cases[i];
        snprintf(text, sizeof text, "# header\n[%s]\n\n%s = %s\n[log]\nlevel = info\n", c->section,
                 c->key, c->value);
        snprintf(expect, sizeof expect, "test.conf:4: [%s] %s: %s", c->section, c->key, c->expect);
        expect_load_error(text, expect);
    }
}

/* A rejected value leaves the field as it was. */
static void test_bad_value_keeps_field(void **state)
{
    struct el_config cfg;
    char err[ERRLEN];
    (void)state;

    config_defaults(&cfg);
    assert_int_equal(config_set(&cfg, "mqtt.keepalive_s=45", err, sizeof err), EL_OK);
    assert_int_equal(config_set(&cfg, "mqtt.keepalive_s=4", err, sizeof err), EL_INVAL);
    assert_int_equal(cfg.mqtt.keepalive_s, 45);
    assert_int_equal(config_set(&cfg, "mqtt.uri=foo://x", err, sizeof err), EL_INVAL);
    assert_string_equal(cfg.mqtt.uri, "tcp://127.0.0.1:1883");
}

static void test_bad_value_line_7(void **state)
{
    struct el_config cfg;
    char err[ERRLEN];
    static const char text[] = "# edgelambda test config\n"
                               "; a semicolon comment\n"
                               "\n"
                               "[storage]\n"
                               "dir = ./var   ; inline comment\n"
                               "# durability = strict\n"
                               "durability = fast\n"
                               "flush_interval_ms = 5\n";
    (void)state;

    assert_int_equal(load(&cfg, text, err), EL_INVAL);
    assert_string_equal(
        err, "test.conf:7: [storage] durability: expected one of normal, strict; got 'fast'");
    assert_string_equal(cfg.storage.dir, "./var");
}

static void test_unknown_key_and_section(void **state)
{
    (void)state;

    expect_load_error("[mqtt]\nuri = tcp://x:1\nbogus = 1\n",
                      "test.conf:3: [mqtt] bogus: unknown key");
    expect_load_error("[mqtt]\n\n[foo]\nbar = 1\n", "test.conf:3: [foo]: unknown section");
    /* Reported even when no key follows. */
    expect_load_error("[mqtt]\nuri = tcp://x:1\n[mqqt]\n", "test.conf:3: [mqqt]: unknown section");
    expect_load_error("[ mqtt ]\n", "test.conf:1: [ mqtt ]: unknown section");
    expect_load_error("uri = tcp://x:1\n", "test.conf:1: uri: key before any [section]");
    expect_load_error("[mqtt] extra\n", "test.conf:1: [mqtt]: unexpected text after ']'");
    expect_load_error("[log]\nLevel = info\n", "test.conf:2: [log] Level: unknown key");
}

static void test_syntax_errors(void **state)
{
    (void)state;

    expect_load_error("[mqtt]\nuri\n", "test.conf:2: syntax error");
    expect_load_error("[mqtt\nuri = tcp://x:1\n", "test.conf:1: syntax error");
    /* The first error wins, whichever kind it is. */
    expect_load_error("[mqtt]\nnot a pair\nkeepalive_s = x\n", "test.conf:2: syntax error");
    expect_load_error("[mqtt]\nkeepalive_s = x\nnot a pair\n", "test.conf:2: [mqtt] keepalive_s");
}

static void test_long_lines(void **state)
{
    struct el_config cfg;
    char text[1024], err[ERRLEN];
    int max = INI_MAX_LINE - 1; /* longest line the reader accepts */
    (void)state;

    /* A line that just fits, with and without a newline after it. */
    snprintf(text, sizeof text, "[log]\n#%0*d\nlevel = warn\n", max - 1, 0);
    load_ok(&cfg, text);
    assert_int_equal(cfg.log.level, PLAT_LOG_WARN);
    snprintf(text, sizeof text, "[log]\n#%0*d", max - 1, 0);
    load_ok(&cfg, text);
    /* One character more is an error naming the line, not a split line. */
    snprintf(text, sizeof text, "[log]\n\n#%0*d\nlevel = warn\n", max, 0);
    expect_load_error(text, "test.conf:3: line too long");
    snprintf(text, sizeof text, "[storage]\ndir = /%0*d\n", 300, 0);
    expect_load_error(text, "test.conf:2: line too long");
    /* The key before it was applied, nothing after it. */
    snprintf(text, sizeof text, "[log]\nlevel = debug\n#%0*d\nlevel = error\n", 400, 0);
    assert_int_equal(load(&cfg, text, err), EL_INVAL);
    assert_int_equal(cfg.log.level, PLAT_LOG_DEBUG);
}

static void test_dialect(void **state)
{
    struct el_config cfg;
    (void)state;

    /* Indented lines are ordinary lines, never continuations. */
    load_ok(&cfg, "  [mqtt]\n  keepalive_s = 10\n\tmax_inflight = 7\n");
    assert_int_equal(cfg.mqtt.keepalive_s, 10);
    assert_int_equal(cfg.mqtt.max_inflight, 7);
    /* CRLF, a byte order mark, "key: value", inline comment, no final newline. */
    load_ok(
        &cfg,
        "\xEF\xBB\xBF[mqtt]\r\nkeepalive_s: 11\r\nmax_inflight = 8 ; eight\r\n[log]\nlevel=error");
    assert_int_equal(cfg.mqtt.keepalive_s, 11);
    assert_int_equal(cfg.mqtt.max_inflight, 8);
    assert_int_equal(cfg.log.level, PLAT_LOG_ERROR);
    /* Duplicate keys (and sections): the last one wins. */
    load_ok(&cfg, "[mqtt]\nkeepalive_s = 10\n[log]\n[mqtt]\nkeepalive_s = 20\n");
    assert_int_equal(cfg.mqtt.keepalive_s, 20);
    /* Enum and bool names are case-insensitive. */
    load_ok(&cfg, "[storage]\ndurability = STRICT\n[sync]\ninsecure = True\n");
    assert_int_equal(cfg.storage.durability, EL_DURABILITY_STRICT);
    assert_true(cfg.sync.insecure);
}

static void test_nul_byte(void **state)
{
    struct el_config cfg;
    char err[ERRLEN];
    static const char text[] = "[log]\nlevel = in\0fo\n";
    (void)state;

    config_defaults(&cfg);
    assert_int_equal(config_load_string(&cfg, text, sizeof text - 1, "nul.conf", err, sizeof err),
                     EL_INVAL);
    assert_non_null(strstr(err, "nul.conf:2: NUL byte"));
}

static void test_size_suffixes(void **state)
{
    static const struct {
        const char *text;
        int64_t bytes;
    } cases[] = {
        {"65536", 65536},
        {"64K", 65536},
        {"64k", 65536},
        {"64KiB", 65536},
        {"64kib", 65536},
        {"8M", 8 << 20},
        {"8MiB", 8 << 20},
        {"1G", INT64_C(1) << 30},
        {"1GiB", INT64_C(1) << 30},
        {"2g", INT64_C(2) << 30},
        {"0", 0},
        {"16384G", INT64_C(16384) << 30},
    };
    struct el_config cfg;
    char text[128];
    (void)state;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(text, sizeof text, "[storage]\nmax_bytes = %s\n", cases[i].text);
        load_ok(&cfg, text);
        assert_int_equal(cfg.storage.max_bytes, cases[i].bytes);
    }
    load_ok(&cfg, "[ingest]\nmax_payload = 16M\n[storage]\njournal_segment_bytes = 1G\n");
    assert_int_equal(cfg.ingest.max_payload, 16 << 20);
    assert_int_equal(cfg.storage.journal_segment_bytes, INT64_C(1) << 30);
}

static void test_bool_forms(void **state)
{
    static const char *const yes[] = {"true", "yes", "on", "1", "TRUE", "Yes", "ON"};
    static const char *const no[] = {"false", "no", "off", "0", "FALSE", "No", "Off"};
    struct el_config cfg;
    char text[128];
    (void)state;

    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        snprintf(text, sizeof text, "[sync]\ninsecure = %s\n", yes[i]);
        load_ok(&cfg, text);
        assert_true(cfg.sync.insecure);
        snprintf(text, sizeof text, "[sync]\ninsecure = yes\ninsecure = %s\n", no[i]);
        load_ok(&cfg, text);
        assert_false(cfg.sync.insecure);
    }
    expect_load_error("[sync]\ninsecure = y\n", "test.conf:2: [sync] insecure: expected true");
    expect_load_error("[sync]\ninsecure =\n", "test.conf:2: [sync] insecure: expected true");
}

static void test_config_set(void **state)
{
    struct el_config cfg;
    char err[ERRLEN], long_value[400];
    (void)state;

    config_defaults(&cfg);
    assert_int_equal(config_set(&cfg, "mqtt.keepalive_s=45", err, sizeof err), EL_OK);
    assert_int_equal(cfg.mqtt.keepalive_s, 45);
    assert_int_equal(config_set(&cfg, "  storage.durability =  strict ", err, sizeof err), EL_OK);
    assert_int_equal(cfg.storage.durability, EL_DURABILITY_STRICT);
    assert_int_equal(config_set(&cfg, "ingest.subscribe=a/b, c/#", err, sizeof err), EL_OK);
    assert_string_equal(cfg.ingest.subscribe, "a/b, c/#");
    assert_int_equal(config_set(&cfg, "storage.max_bytes=1G", err, sizeof err), EL_OK);
    assert_int_equal(cfg.storage.max_bytes, INT64_C(1) << 30);
    assert_int_equal(config_set(&cfg, "sync.url=https://h/x=1", err, sizeof err), EL_OK);
    assert_string_equal(cfg.sync.url, "https://h/x=1");
    assert_int_equal(config_set(&cfg, "sync.url=", err, sizeof err), EL_OK);
    assert_string_equal(cfg.sync.url, "");
    assert_int_equal(config_set(&cfg, " mqtt . max_inflight = 9 ", err, sizeof err), EL_OK);
    assert_int_equal(cfg.mqtt.max_inflight, 9);
    assert_int_equal(config_set(&cfg, "clock.synced=yes", err, sizeof err), EL_OK);
    assert_int_equal(cfg.clock.synced, PLAT_CLOCK_SYNC_YES);

    expect_set_error(&cfg, "mqtt.keepalive_s",
                     "command line: 'mqtt.keepalive_s': expected section.key=value");
    expect_set_error(&cfg, "keepalive_s=5", "command line: 'keepalive_s=5': expected section.key");
    expect_set_error(&cfg, "", "expected section.key=value");
    expect_set_error(&cfg, "foo.bar=1", "command line: [foo]: unknown section");
    expect_set_error(&cfg, "mqtt.bogus=1", "command line: [mqtt] bogus: unknown key");
    expect_set_error(&cfg, "mqtt.=1", "command line: [mqtt] : unknown key");
    expect_set_error(&cfg, ".uri=1", "command line: []: unknown section");
    expect_set_error(&cfg, "a=b.c", "command line: 'a=b.c': expected section.key=value");
    expect_set_error(&cfg, "mqtt.keepalive_s=1",
                     "command line: [mqtt] keepalive_s: out of range 5..3600; got '1'");
    expect_set_error(
        &cfg, "storage.durability=fast",
        "command line: [storage] durability: expected one of normal, strict; got 'fast'");
    expect_set_error(&cfg, "mqtt.username=a\tb",
                     "command line: [mqtt] username: contains a control");
    memset(long_value, 0, sizeof long_value);
    snprintf(long_value, sizeof long_value, "mqtt.username=%0300d", 0);
    expect_set_error(&cfg, long_value,
                     "command line: [mqtt] username: too long: 300 bytes, at most 255");
    snprintf(long_value, sizeof long_value, "ingest.subscribe=a/%0300d", 0);
    expect_set_error(&cfg, long_value, "command line: [ingest] subscribe: topic filter");
    assert_int_equal(cfg.mqtt.keepalive_s, 45);
    assert_int_equal(cfg.storage.durability, EL_DURABILITY_STRICT);
    assert_int_equal(config_set(NULL, "mqtt.keepalive_s=45", err, sizeof err), EL_INVAL);
    assert_int_equal(config_set(&cfg, NULL, err, sizeof err), EL_INVAL);
}

static void test_finish_filters(void **state)
{
    struct el_config cfg;
    char err[ERRLEN], text[2048];
    size_t n;
    (void)state;

    load_ok(&cfg, "[ingest]\nsubscribe =  a/b ,c/+/d  , e/#,$SYS/broker/#,+ \n");
    assert_int_equal(config_finish(&cfg, err, sizeof err), EL_OK);
    assert_int_equal(cfg.ingest.n_filters, 5);
    assert_string_equal(cfg.ingest.filters[0], "a/b");
    assert_string_equal(cfg.ingest.filters[1], "c/+/d");
    assert_string_equal(cfg.ingest.filters[2], "e/#");
    assert_string_equal(cfg.ingest.filters[3], "$SYS/broker/#");
    assert_string_equal(cfg.ingest.filters[4], "+");

    /* EL_CFG_MAX_SUBS filters are fine, one more is not. */
    n = (size_t)snprintf(text, sizeof text, "[ingest]\nsubscribe = s/0");
    for (int i = 1; i < EL_CFG_MAX_SUBS; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, ",s/%d", i);
    snprintf(text + n, sizeof text - n, "\n");
    load_ok(&cfg, text);
    assert_int_equal(config_finish(&cfg, err, sizeof err), EL_OK);
    assert_int_equal(cfg.ingest.n_filters, EL_CFG_MAX_SUBS);
    assert_string_equal(cfg.ingest.filters[EL_CFG_MAX_SUBS - 1], "s/15");
    snprintf(text + n, sizeof text - n, ",s/x\n");
    expect_load_error(text, "test.conf:2: [ingest] subscribe: more than 16 topic filters");

    /* Filled by hand, bypassing the setter: config_finish checks again. */
    config_defaults(&cfg);
    snprintf(cfg.ingest.subscribe, sizeof cfg.ingest.subscribe, "%s", "a,,b");
    assert_int_equal(config_finish(&cfg, err, sizeof err), EL_INVAL);
    assert_string_equal(err, "[ingest] subscribe: empty topic filter");
    snprintf(cfg.ingest.subscribe, sizeof cfg.ingest.subscribe, "%s", "x/#/y");
    assert_int_equal(config_finish(&cfg, err, sizeof err), EL_INVAL);
    assert_non_null(strstr(err, "[ingest] subscribe: topic filter 'x/#/y'"));
    snprintf(cfg.ingest.subscribe, sizeof cfg.ingest.subscribe, "%s", "");
    assert_int_equal(config_finish(&cfg, err, sizeof err), EL_INVAL);

    /* Filters that would feed our own status and replies back to us. */
    expect_finish_error("[ingest]\nsubscribe = #\n",
                        "[ingest] subscribe: filter '#' matches our own topic 'edgelambda/status'");
    expect_finish_error("[ingest]\nsubscribe = a/b, +/query\n", "filter '+/query' matches our own");
    expect_finish_error("[mqtt]\ntopic_prefix = sensors/el\n",
                        "filter 'sensors/#' matches our own");
    load_ok(&cfg, "[mqtt]\ntopic_prefix = $el\n[ingest]\nsubscribe = #\n");
    assert_int_equal(config_finish(&cfg, err, sizeof err), EL_OK);
}

static void test_finish_hostname(void **state)
{
    struct el_config cfg;
    char err[ERRLEN], host[256] = "", expect[300];
    (void)state;

    assert_int_equal(gethostname(host, sizeof host - 1), 0);
    config_defaults(&cfg);
    assert_int_equal(config_finish(&cfg, err, sizeof err), EL_OK);
    snprintf(expect, sizeof expect, "edgelambda-%s", host);
    assert_string_equal(cfg.mqtt.client_id, expect);
    assert_string_equal(cfg.sync.device_id, host);
    assert_int_equal(cfg.ingest.n_filters, 1);
    assert_string_equal(cfg.ingest.filters[0], "sensors/#");

    load_ok(&cfg, "[mqtt]\nclient_id = mine\n[sync]\ndevice_id = dev\n");
    assert_int_equal(config_finish(&cfg, err, sizeof err), EL_OK);
    assert_string_equal(cfg.mqtt.client_id, "mine");
    assert_string_equal(cfg.sync.device_id, "dev");
}

static void test_finish_cross_checks(void **state)
{
    struct el_config cfg;
    char err[ERRLEN];
    (void)state;

    expect_finish_error("[mqtt]\ncert_file = /c.pem\n",
                        "[mqtt] key_file: cert_file and key_file must be set together");
    expect_finish_error("[sync]\nkey_file = /k.pem\n",
                        "[sync] cert_file: cert_file and key_file must be set together");
    load_ok(&cfg, "[mqtt]\nuri = ssl://b:8883\ncert_file = /c\nkey_file = /k\n");
    assert_int_equal(config_finish(&cfg, err, sizeof err), EL_OK);
    load_ok(&cfg, "[mqtt]\nuri = ssl://b:8883\n");
    assert_int_equal(config_finish(&cfg, err, sizeof err), EL_OK);

    /* 4 * 4M + 1M = 17M > the default 8M segment. */
    expect_finish_error("[ingest]\nmax_payload = 4M\n",
                        "[storage] journal_segment_bytes: must be at least 4 * ingest.max_payload "
                        "+ 1M = 17M; got 8388608");
    load_ok(&cfg, "[ingest]\nmax_payload = 4M\n[storage]\njournal_segment_bytes = 17M\n");
    assert_int_equal(config_finish(&cfg, err, sizeof err), EL_OK);

    expect_finish_error("[storage]\nmax_bytes = 512K\n",
                        "[storage] max_bytes: must be 0 (no limit) or at least 1M");
    expect_finish_error("[storage]\nhard_max_bytes = 512K\n",
                        "[storage] hard_max_bytes: must be 0 (automatic) or at least 1M");
    expect_finish_error(
        "[storage]\nmax_bytes = 4M\nhard_max_bytes = 2M\n",
        "[storage] hard_max_bytes: must be at least max_bytes (4194304); got 2097152");
    load_ok(&cfg, "[speed]\nslots = 16\n[batch]\nmax_lag_s = 86400\n");
    assert_int_equal(config_finish(&cfg, err, sizeof err), EL_OK);
    /* The views ladder: a finer resolution is never kept longer. */
    expect_finish_error("[storage]\nkeep_1m_s = 864000\nkeep_1h_s = 86400\n",
                        "[storage] keep_1m_s, keep_1h_s, keep_1d_s: a finer view must not be kept "
                        "longer than a coarser one (0 = forever); got 864000, 86400, 0");
    expect_finish_error("[storage]\nkeep_1m_s = 0\nkeep_1h_s = 31536000\n",
                        "[storage] keep_1m_s, keep_1h_s, keep_1d_s: a finer view must not be kept "
                        "longer than a coarser one (0 = forever); got 0, 31536000, 0");
    expect_finish_error("[storage]\nkeep_1h_s = 86400\n",
                        "[storage] keep_1m_s, keep_1h_s, keep_1d_s: a finer view must not be kept "
                        "longer than a coarser one (0 = forever); got 0, 86400, 0");
    load_ok(&cfg, "[storage]\nkeep_1m_s = 60\nkeep_1h_s = 60\nkeep_1d_s = 86400\n");
    assert_int_equal(config_finish(&cfg, err, sizeof err), EL_OK);

    /* Values filled by hand are checked too. */
    config_defaults(&cfg);
    snprintf(cfg.mqtt.uri, sizeof cfg.mqtt.uri, "%s", "udp://x");
    assert_int_equal(config_finish(&cfg, err, sizeof err), EL_INVAL);
    assert_non_null(strstr(err, "[mqtt] uri: expected tcp://"));
    config_defaults(&cfg);
    snprintf(cfg.mqtt.topic_prefix, sizeof cfg.mqtt.topic_prefix, "%s", "a/#");
    assert_int_equal(config_finish(&cfg, err, sizeof err), EL_INVAL);
    assert_non_null(strstr(err, "[mqtt] topic_prefix: must not contain"));

    /* Every accepted URI form. */
    static const char *const uris[] = {"tcp://127.0.0.1:1883", "ssl://h:8883",     "mqtt://h",
                                       "mqtts://h:8883",       "ws://h:8080/mqtt", "wss://h/mqtt",
                                       "tcp://[::1]:1883",     "tcp://localhost"};
    for (size_t i = 0; i < sizeof uris / sizeof uris[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "[mqtt]\nuri = %s\n", uris[i]);
        load_ok(&cfg, text);
        assert_int_equal(config_finish(&cfg, err, sizeof err), EL_OK);
    }
    static const char *const schedules[] = {"every 15m", "every 30s", "every 2h",
                                            "every 7d",  "00:00",     "23:59"};
    for (size_t i = 0; i < sizeof schedules / sizeof schedules[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "[batch]\nschedule = %s\n", schedules[i]);
        load_ok(&cfg, text);
        assert_string_equal(cfg.batch.schedule, schedules[i]);
    }
}

static void test_load_file(void **state)
{
    struct el_config cfg;
    char path[] = "/tmp/config_test_XXXXXX", err[ERRLEN], expect[128];
    static const char text[] = "[mqtt]\nkeepalive_s = 12\n\n[log]\nlevel = loud\n";
    (void)state;

    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    assert_int_equal(close(fd), 0);
    config_defaults(&cfg);
    assert_int_equal(config_load_file(&cfg, path, err, sizeof err), EL_INVAL);
    snprintf(expect, sizeof expect, "%s:5: [log] level: expected one of", path);
    assert_non_null(strstr(err, expect));
    assert_int_equal(cfg.mqtt.keepalive_s, 12);
    assert_int_equal(unlink(path), 0);

    assert_int_equal(config_load_file(&cfg, path, err, sizeof err), EL_IO);
    assert_non_null(strstr(err, "cannot open"));
    assert_int_equal(config_load_file(&cfg, "/", err, sizeof err), EL_IO);
    assert_non_null(strstr(err, "/: read error"));
    assert_int_equal(config_load_file(&cfg, NULL, err, sizeof err), EL_INVAL);
}

static void test_err_buffer(void **state)
{
    struct el_config cfg;
    char small[8];
    (void)state;

    config_defaults(&cfg);
    memset(small, 'x', sizeof small);
    assert_int_equal(config_load_string(&cfg, "[nope]\n", 7, "t", small, sizeof small), EL_INVAL);
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_int_equal(config_load_string(&cfg, "[nope]\n", 7, "t", NULL, 0), EL_INVAL);
    assert_int_equal(config_set(&cfg, "x", NULL, 0), EL_INVAL);
    assert_int_equal(config_load_string(&cfg, "[log]\n", 6, NULL, small, sizeof small), EL_OK);
    assert_string_equal(small, "");
}

static void test_example_parses(void **state)
{
    struct el_config cfg, def;
    char path[1024], err[ERRLEN];
    (void)state;

    example_path(path, sizeof path);
    config_defaults(&def);
    config_defaults(&cfg);
    if (config_load_file(&cfg, path, err, sizeof err) != EL_OK)
        fail_msg("%s", err);
    assert_memory_equal(&cfg, &def, sizeof cfg);
    assert_int_equal(config_finish(&cfg, err, sizeof err), EL_OK);
}

/* Un-commented, the example sets every key of the table to its default, and
 * names no key the table lacks (that would be an "unknown key" error). */
static void test_example_lists_every_key_with_default(void **state)
{
    static char a[MAX_KEYS][96], b[MAX_KEYS][96];
    struct el_config cfg, def;
    char path[1024], err[ERRLEN];
    (void)state;

    example_path(path, sizeof path);
    char *example = read_whole_file(path);
    char *active = uncomment(example);
    config_defaults(&def);
    config_defaults(&cfg);
    if (config_load_string(&cfg, active, strlen(active), "example", err, sizeof err) != EL_OK)
        fail_msg("%s", err);
    assert_memory_equal(&cfg, &def, sizeof cfg);
    assert_int_equal(config_finish(&cfg, err, sizeof err), EL_OK);

    char *help = print_help_text();
    int na = collect_keys(active, a);
    int nb = collect_keys(help, b);
    assert_true(na >= 40);
    assert_same_keys(a, na, b, nb);
    free(help);
    free(active);
    free(example);
}

/* --help-config output is itself a valid config of the defaults. */
static void diff_collect(void *ctx, const char *section, const char *key)
{
    char *out = ctx;
    size_t n = strlen(out);
    snprintf(out + n, 512 - n, "%s.%s;", section, key);
}

static void diff_live(void *ctx, const char *section, const char *key)
{
    char *out = ctx;
    size_t n = strlen(out);
    snprintf(out + n, 2048 - n, "%s.%s;", section, key);
}

/* config_diff names exactly the changed keys; [decode] sections count as one,
 * and where a section starts (its line) is no change. */
static void test_diff_names_changed_keys(void **state)
{
    struct el_config a, b;
    char err[ERRLEN], got[512] = "";
    (void)state;
    config_defaults(&a);
    config_defaults(&b);
    static const char one[] = "[decode \"z/#\"]\nfields = all\n";
    static const char two[] = "\n\n[decode \"z/#\"]\nfields = all\n";
    assert_int_equal(config_load_string(&a, one, strlen(one), "a", err, sizeof err), EL_OK);
    assert_int_equal(config_load_string(&b, two, strlen(two), "b", err, sizeof err), EL_OK);
    config_diff(&a, &b, diff_collect, got);
    assert_string_equal(got, "");
    assert_int_equal(config_set(&b, "storage.max_bytes=64M", err, sizeof err), EL_OK);
    assert_int_equal(config_set(&b, "mqtt.keepalive_s=10", err, sizeof err), EL_OK);
    static const char three[] = "[decode \"z/#\"]\nfields = value\n";
    struct el_config c;
    config_defaults(&c);
    assert_int_equal(config_load_string(&c, three, strlen(three), "c", err, sizeof err), EL_OK);
    b.decode = c.decode;
    config_diff(&a, &b, diff_collect, got);
    assert_string_equal(got, "mqtt.keepalive_s;storage.max_bytes;decode.sections;");
}

/* The LIVE flags: what SIGHUP applies (core_reload.c), shown by
 * --help-config; config_each_live lists exactly the live keys. */
static void test_live_keys(void **state)
{
    char got[2048] = "";
    (void)state;
    assert_true(config_key_live("log", "level"));
    assert_true(config_key_live("sync", "url"));
    assert_true(config_key_live("batch", "schedule"));
    assert_true(config_key_live("query", "deadline_ms"));
    assert_true(config_key_live("decode", "sections"));
    assert_false(config_key_live("query", "max_cells")); /* sizes the serving buffers */
    assert_false(config_key_live("mqtt", "uri"));
    assert_false(config_key_live("storage", "dir"));
    assert_false(config_key_live("nosuch", "key"));
    config_each_live(diff_live, got);
    assert_non_null(strstr(got, "log.level;"));
    assert_null(strstr(got, "mqtt."));
    assert_non_null(strstr(got, "decode.sections;"));
    char *help = print_help_text();
    const char *live = "# Live: a reload (SIGHUP) applies a change at once.\n# deadline_ms =";
    assert_non_null(strstr(help, live));
    assert_null(strstr(help, "# Live: a reload (SIGHUP) applies a change at once.\n# uri ="));
    free(help);
}

/* [continuous "<name>"] sections: every key, defaults, and errors that
 * name the section, the key and the line. */
static void test_continuous_sections(void **state)
{
    struct el_config cfg;
    char err[ERRLEN];
    (void)state;
    load_ok(&cfg, "[continuous \"temps\"]\nmatch = s/+/temp\nstep = 10s\ngrace = 500ms\n"
                  "max_lateness = 1h\nagg = count, p95,mean\ntopic = out/t\nqos = 2\n"
                  "retain = true\n[continuous \"b-2\"]\nmatch = x/#\n");
    assert_int_equal(cfg.continuous.n, 2);
    const struct el_continuous_def *d = &cfg.continuous.def[0];
    assert_string_equal(d->name, "temps");
    assert_string_equal(d->match, "s/+/temp");
    assert_string_equal(d->step, "10s");
    assert_string_equal(d->grace, "500ms");
    assert_string_equal(d->max_lateness, "1h");
    assert_string_equal(d->agg, "count, p95,mean");
    assert_string_equal(d->topic, "out/t");
    assert_true(d->qos == 2 && d->retain && d->line == 1);
    d = &cfg.continuous.def[1];
    assert_true(strcmp(d->step, "1m") == 0 && strcmp(d->grace, "2s") == 0 && d->qos == 1 &&
                !d->retain && d->line == 10 && d->topic[0] == '\0');
    assert_int_equal(config_finish(&cfg, err, sizeof err), EL_OK);
    expect_load_error("[continuous \"t\"]\nmatch = a/#\nbogus = 1\n",
                      "test.conf:3: [continuous \"t\"] bogus: unknown key");
    expect_load_error("[continuous \"t\"]\nagg = count,p0\n",
                      "test.conf:2: [continuous \"t\"] agg: "
                      "'p0' is no aggregate");
    expect_load_error("[continuous \"t\"]\nagg = count,count\n", "'count' is given twice");
    expect_load_error("[continuous \"t\"]\nstep = 0s\n", "[continuous \"t\"] step: expected a");
    expect_load_error("[continuous \"t\"]\nstep = 10ms\n",
                      "step: a step is 100ms to 1d; got '10ms'");
    expect_load_error("[continuous \"t\"]\nstep = 2d\n", "step: a step is 100ms to 1d");
    expect_load_error("[continuous \"t\"]\nmatch = a/#/b\n", "[continuous \"t\"] match:");
    expect_load_error("[continuous \"t\"]\ntopic = a/+\n", "[continuous \"t\"] topic:");
    expect_load_error("[continuous \"t\"]\nqos = 3\n", "[continuous \"t\"] qos: out of range");
    expect_load_error("[continuous \"a b\"]\n", "test.conf:1: [continuous]: a name is 1 to 63");
    expect_load_error("[continuous \"t\"]\n[continuous \"t\"]\n",
                      "test.conf:2: [continuous \"t\"]: "
                      "given twice");
    load_ok(&cfg, "[continuous \"t\"]\nstep = 1s\n");
    assert_int_equal(config_finish(&cfg, err, sizeof err), EL_INVAL);
    assert_non_null(strstr(err, "[continuous \"t\"] match: required (the section at line 1)"));
}

static void test_print_help(void **state)
{
    struct el_config cfg, def;
    char err[ERRLEN];
    (void)state;

    char *help = print_help_text();
    char *active = uncomment(help);
    assert_non_null(strstr(help, "[storage]\n"));
    assert_non_null(strstr(help, "# durability = normal\n"));
    assert_non_null(strstr(help, "[normal|strict]"));
    config_defaults(&def);
    config_defaults(&cfg);
    if (config_load_string(&cfg, help, strlen(help), "help", err, sizeof err) != EL_OK)
        fail_msg("%s", err);
    if (config_load_string(&cfg, active, strlen(active), "help", err, sizeof err) != EL_OK)
        fail_msg("%s", err);
    assert_memory_equal(&cfg, &def, sizeof cfg);
    free(active);
    free(help);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_empty_file_is_defaults),
        cmocka_unit_test(test_every_key),
        cmocka_unit_test(test_every_key_covers_table),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_bad_value_keeps_field),
        cmocka_unit_test(test_bad_value_line_7),
        cmocka_unit_test(test_unknown_key_and_section),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_long_lines),
        cmocka_unit_test(test_dialect),
        cmocka_unit_test(test_nul_byte),
        cmocka_unit_test(test_size_suffixes),
        cmocka_unit_test(test_bool_forms),
        cmocka_unit_test(test_config_set),
        cmocka_unit_test(test_finish_filters),
        cmocka_unit_test(test_finish_hostname),
        cmocka_unit_test(test_finish_cross_checks),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_err_buffer),
        cmocka_unit_test(test_example_parses),
        cmocka_unit_test(test_example_lists_every_key_with_default),
        cmocka_unit_test(test_print_help),
        cmocka_unit_test(test_diff_names_changed_keys),
        cmocka_unit_test(test_live_keys),
        cmocka_unit_test(test_continuous_sections),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
