/* Unit tests of the Prometheus exposition (firmware/daemon/metrics) and of
 * the status schema it is derived from (status.h): every number or boolean
 * of the status document has a well-named metric, and a document with
 * every section and field shown converts to samples carrying exactly its
 * values (found by walking the JSON itself, not the schema); nulls and
 * hidden sections write nothing; labels are escaped; the textfile is
 * replaced whole with mode 0644. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "metrics.h"
#include "plat_json.h"
#include "status.h"

#define DOC_MAX 8192
#define MAX_FAMILIES 256

static bool numeric(enum status_kind k)
{
    return k != SK_STR && k != SK_TEXT;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Every field that holds a number (or a boolean, a time, counters) has a
 * metric; names are unique, snake_case, prefixed, in base units, and a
 * name ends in _total exactly when it is a counter. */
static void test_every_numeric_field_has_a_metric(void **state)
{
    const char *names[MAX_FAMILIES];
    size_t n_names = 0, numeric_fields = 0;
    (void)state;
    for (size_t s = 0; s < status_n_sections; s++) {
        const struct status_section *sec = &status_sections[s];
        for (size_t i = 0; i < sec->n; i++) {
            const struct status_field *f = &sec->fields[i];
            const struct status_metric *m = &f->metric;
            if (numeric(f->kind)) {
                numeric_fields++;
                if (m->type != SM_COUNTER && m->type != SM_GAUGE)
                    fail_msg("status %s.%s is a number without a metric", sec->key ? sec->key : "",
                             f->key);
            }
            if (m->type == SM_NONE)
                continue;
            assert_non_null(m->name);
            assert_non_null(m->help);
            assert_true(m->help[0] != '\0');
            assert_int_equal(strncmp(m->name, "edgelambda_", 11), 0);
            for (const char *p = m->name; *p; p++)
                assert_true((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_');
            if (ends_with(m->name, "_total") != (m->type == SM_COUNTER))
                fail_msg("%s: _total is for counters, and counters only", m->name);
            /* base units: no _ms, _s, _us, _kb ... words */
            static const char *const abbrev[] = {"_ms_", "_s_",  "_us_",  "_ns_",
                                                 "_kb_", "_mb_", "_min_", "_sec_"};
            char padded[160];
            snprintf(padded, sizeof padded, "%s_", m->name);
            for (size_t a = 0; a < sizeof abbrev / sizeof abbrev[0]; a++)
                if (strstr(padded, abbrev[a]))
                    fail_msg("%s: abbreviated unit %s", m->name, abbrev[a]);
            assert_true(m->div == 1 || m->div == 1000);
            if (m->div == 1000)
                assert_true(ends_with(f->key, "_ms") || strstr(f->key, "_ms_") != NULL);
            if (ends_with(f->key, "_ms") || strstr(f->key, "_ms_") != NULL)
                assert_true(m->div == 1000 && strstr(m->name, "_seconds") != NULL);
            if (f->kind == SK_COUNTS)
                assert_non_null(m->label);
            if (m->type == SM_INFO || m->type == SM_SET) {
                assert_false(numeric(f->kind));
                assert_true(m->type == SM_SET || m->label != NULL);
            }
            for (size_t k = 0; k < n_names; k++)
                if (strcmp(names[k], m->name) == 0)
                    fail_msg("metric %s named twice", m->name);
            assert_true(n_names < MAX_FAMILIES);
            names[n_names++] = m->name;
        }
    }
    assert_true(numeric_fields > 60);
}

/* A snapshot with every section and every field shown, each number
 * distinct. */
static void fill_everything(struct status_snapshot *s)
{
    memset(s, 0, sizeof *s);
    for (size_t sec = 0; sec < status_n_sections; sec++) {
        for (size_t i = 0; i < status_sections[sec].n; i++) {
            const struct status_field *f = &status_sections[sec].fields[i];
            char *at = (char *)s + f->off;
            int64_t v = (int64_t)(1000 * (sec + 1) + 10 * i + 7);
            switch (f->kind) {
            case SK_I64:
            case SK_I64_KNOWN: *(int64_t *)at = v; break;
            case SK_U64: *(uint64_t *)at = (uint64_t)v; break;
            case SK_DBL: *(double *)at = (double)v + 0.25; break;
            case SK_BOOL: *(bool *)at = true; break;
            case SK_TIME: *(int64_t *)at = INT64_C(1767225600123) + v; break;
            case SK_TEXT: strcpy(at, "x"); break;
            case SK_STR: break; /* status_derive's, or NULL */
            case SK_COUNTS:
                for (unsigned k = 0; k < f->count; k++)
                    ((uint64_t *)at)[k] = (uint64_t)(v * 100 + k);
                break;
            }
        }
    }
    s->has_queries = true;
    s->clock_synced = false; /* clock.waiting shown */
    s->storage_error = "disk on fire";
    status_derive(s);
}

static const struct status_field *row(const char *section, const char *key)
{
    for (size_t s = 0; s < status_n_sections; s++) {
        const struct status_section *sec = &status_sections[s];
        if ((sec->key == NULL) != (section == NULL) || (section && strcmp(sec->key, section)))
            continue;
        for (size_t i = 0; i < sec->n; i++)
            if (strcmp(sec->fields[i].key, key) == 0)
                return &sec->fields[i];
    }
    return NULL;
}

/* The sample line a JSON leaf must have in text. */
static void expect_sample(const char *text, const struct plat_json *d, const char *section,
                          const char *key, const char *label, int v)
{
    const struct status_field *f = row(section, key);
    char line[512], value[64];
    size_t n;
    const char *raw = plat_json_raw(d, v, &n);
    if (!f)
        fail_msg("status %s.%s has no row in the schema", section ? section : "", key);
    const struct status_metric *m = &f->metric;
    if (m->type != SM_COUNTER && m->type != SM_GAUGE)
        fail_msg("status %s.%s: a number without a metric", section ? section : "", key);
    if (plat_json_type(d, v) == PLAT_JSON_PRIMITIVE && (raw[0] == 't' || raw[0] == 'f'))
        snprintf(value, sizeof value, "%d", raw[0] == 't');
    else if (m->div == 1000) {
        int64_t i;
        assert_int_equal(plat_json_int64(d, v, &i), EL_OK);
        snprintf(value, sizeof value, "%" PRId64 ".%03d", i / 1000, (int)(i % 1000));
    } else
        snprintf(value, sizeof value, "%.*s", (int)n, raw);
    if (label)
        snprintf(line, sizeof line, "\n%s{%s=\"%s\"} %s\n", m->name, m->label, label, value);
    else
        snprintf(line, sizeof line, "\n%s %s\n", m->name, value);
    if (!strstr(text, line))
        fail_msg("status %s.%s%s%s = %s: no sample%s", section ? section : "", key,
                 label ? "." : "", label ? label : "", value, line);
}

/* Checks the families: "# HELP", "# TYPE" once each, then their samples. */
static size_t check_families(const char *text)
{
    char name[128], family[128] = "";
    char seen[MAX_FAMILIES][128];
    size_t n_seen = 0, samples = 0;
    const char *p = text;
    while (*p) {
        const char *eol = strchr(p, '\n');
        assert_non_null(eol);
        if (strncmp(p, "# HELP ", 7) == 0) {
            assert_int_equal(sscanf(p + 7, "%127s", name), 1);
            for (size_t k = 0; k < n_seen; k++)
                if (strcmp(seen[k], name) == 0)
                    fail_msg("family %s twice", name);
            assert_true(n_seen < MAX_FAMILIES);
            strcpy(seen[n_seen++], name);
            strcpy(family, name);
            p = eol + 1;
            eol = strchr(p, '\n');
            assert_non_null(eol);
            char type[160];
            snprintf(type, sizeof type, "# TYPE %s ", family);
            assert_int_equal(strncmp(p, type, strlen(type)), 0);
        } else {
            size_t fl = strlen(family);
            assert_true(fl > 0);
            if (strncmp(p, family, fl) != 0 || (p[fl] != ' ' && p[fl] != '{'))
                fail_msg("sample outside its family %s: %.*s", family, (int)(eol - p), p);
            samples++;
        }
        p = eol + 1;
    }
    return samples;
}

/* Calls expect_sample for every number and boolean below container c, at
 * path names[0..depth) (section, key, label); returns how many. */
static size_t walk(const char *text, const struct plat_json *d, int c, const char **names,
                   int depth)
{
    char key[128]; /* this level's key: names[depth] points here */
    size_t n = 0, len;
    if (depth < 0 || depth >= 3) { /* sections, keys and labels: no deeper */
        fail_msg("status document nested deeper than 3 levels");
        return 0;
    }
    for (int k = plat_json_first(d, c); k >= 0; k = plat_json_next(d, c, k)) {
        int v = k + 1;
        assert_int_equal(plat_json_string(d, k, key, sizeof key, &len), EL_OK);
        names[depth] = key;
        if (plat_json_type(d, v) == PLAT_JSON_OBJECT) {
            n += walk(text, d, v, names, depth + 1);
        } else if (plat_json_type(d, v) == PLAT_JSON_PRIMITIVE && !plat_json_is_null(d, v)) {
            /* top level: (NULL, key); in a section: (section, key); a counter: + label */
            if (depth == 0)
                expect_sample(text, d, NULL, names[0], NULL, v);
            else
                expect_sample(text, d, names[0], names[1], depth == 2 ? names[2] : NULL, v);
            n++;
        }
    }
    return n;
}

static void test_exposition_carries_every_value(void **state)
{
    static char doc[DOC_MAX], text[METRICS_TEXT_MAX + 1];
    struct status_snapshot s;
    struct plat_json_tok tok[1024];
    struct plat_json d;
    const char *names[3];
    size_t leaves;
    (void)state;
    fill_everything(&s);
    size_t n = status_format(&s, doc, sizeof doc);
    assert_true(n > 0);
    text[0] = '\n'; /* so every line, the first too, follows a newline */
    size_t m = metrics_format(doc, n, text + 1, sizeof text - 1);
    assert_true(m > 0);
    assert_int_equal(strlen(text + 1), m);
    assert_int_equal(plat_json_parse(&d, doc, n, tok, 1024), EL_OK);
    /* Walk the JSON: every number and boolean, at any depth, has its sample. */
    leaves = walk(text, &d, 0, names, 0);
    assert_true(leaves > 80);
    /* ms -> seconds, RFC 3339 -> epoch seconds, texts -> info/0-1 gauges */
    char line[128];
    snprintf(line, sizeof line, "\nedgelambda_log_commit_seconds %" PRId64 ".%03d\n",
             s.commit_ms / 1000, (int)(s.commit_ms % 1000));
    assert_non_null(strstr(text, line));
    snprintf(line, sizeof line, "\nedgelambda_batch_last_run_timestamp_seconds %" PRId64 ".%03d\n",
             s.batch.last_run_wall_ms / 1000, (int)(s.batch.last_run_wall_ms % 1000));
    assert_non_null(strstr(text, line));
    assert_non_null(strstr(text, "\nedgelambda_build_info{version=\"" EL_VERSION "\"} 1\n"));
    assert_non_null(strstr(text, "\nedgelambda_log_error 1\n"));
    assert_non_null(strstr(text, "\nedgelambda_batch_error 1\n"));
    assert_non_null(strstr(text, "\nedgelambda_query_errors_total{code=\"timeout\"} "));
    assert_non_null(strstr(text, "\nedgelambda_ingest_rejected_total{reason=\"malformed\"} "));
    assert_non_null(strstr(text, "\n# TYPE edgelambda_query_unsent_total counter\n"));
    assert_non_null(strstr(text, "\n# TYPE edgelambda_speed_memory_bytes gauge\n"));
    assert_true(check_families(text + 1) >= leaves);
}

/* Hidden sections and nulls write nothing (not even a header); an unset
 * error is 0; label values are escaped. */
static void test_nulls_hidden_and_escapes(void **state)
{
    static char doc[DOC_MAX], text[METRICS_TEXT_MAX];
    struct status_snapshot s;
    (void)state;
    memset(&s, 0, sizeof s);
    s.broker_dropped = -1; /* not known: null */
    status_derive(&s);
    s.clock_source = "a\"b\\c";
    size_t n = status_format(&s, doc, sizeof doc);
    assert_true(n > 0);
    assert_true(metrics_format(doc, n, text, sizeof text) > 0);
    assert_null(strstr(text, "edgelambda_query_"));         /* no serving thread */
    assert_null(strstr(text, "broker_dropped"));            /* null */
    assert_null(strstr(text, "edgelambda_batch_last_run")); /* never ran */
    assert_null(strstr(text, "edgelambda_log_used_bytes")); /* no max_bytes */
    assert_null(strstr(text, "edgelambda_sync_acked_seq")); /* sync off */
    assert_non_null(strstr(text, "\nedgelambda_sync_enabled 0\n"));
    assert_non_null(strstr(text, "\nedgelambda_log_error 0\n"));
    assert_non_null(strstr(text, "\nedgelambda_clock_source_info{source=\"a\\\"b\\\\c\"} 1\n"));
    check_families(text);
}

static void test_bounds(void **state)
{
    static char doc[DOC_MAX], text[METRICS_TEXT_MAX];
    struct status_snapshot s;
    (void)state;
    memset(&s, 0, sizeof s);
    status_derive(&s);
    size_t n = status_format(&s, doc, sizeof doc);
    size_t m = metrics_format(doc, n, text, sizeof text);
    assert_true(m > 0);
    assert_int_equal(metrics_format(doc, n, text, m), 0); /* no room for the NUL */
    assert_int_equal(metrics_format(doc, n, text, m + 1), m);
    assert_int_equal(metrics_format(doc, n, text, 0), 0);
    assert_int_equal(metrics_format("{\"uptime_s\":", 12, text, sizeof text), 0);
    assert_int_equal(metrics_format("[1]", 3, text, sizeof text), 0);
    /* a value of the wrong kind is not a status document */
    assert_int_equal(metrics_format("{\"uptime_s\":\"x\"}", 16, text, sizeof text), 0);
    assert_true(metrics_format("{}", 2, text, sizeof text) == 0);
}

static void test_textfile(void **state)
{
    static char doc[DOC_MAX], text[METRICS_TEXT_MAX], file[METRICS_TEXT_MAX + 1];
    char dir[] = "/tmp/el-metrics-XXXXXX", path[64], tmp[80];
    struct status_snapshot s;
    struct metrics *m = NULL;
    struct stat sb;
    (void)state;
    assert_int_equal(metrics_new("", &m), EL_OK);
    assert_null(m);
    metrics_publish(NULL, "{}", 2); /* off: nothing, no crash */
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/edgelambda.prom", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_int_equal(metrics_new(path, &m), EL_OK);
    assert_non_null(m);
    memset(&s, 0, sizeof s);
    s.accepted = 42;
    status_derive(&s);
    size_t n = status_format(&s, doc, sizeof doc);
    size_t want = metrics_format(doc, n, text, sizeof text);
    mode_t old = umask(077); /* the systemd unit's UMask is 0027 */
    metrics_publish(m, doc, n);
    umask(old);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t got = fread(file, 1, sizeof file, f);
    fclose(f);
    assert_int_equal(got, want);
    assert_memory_equal(file, text, want);
    assert_non_null(strstr(file, "\nedgelambda_ingest_accepted_total 42\n"));
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0644); /* node_exporter's user reads it */
    assert_int_equal(access(tmp, F_OK), -1);   /* renamed, not left behind */
    /* a failed write leaves the last good file and the daemon going */
    s.accepted = 43;
    n = status_format(&s, doc, sizeof doc);
    assert_int_equal(chmod(dir, 0500), 0);
    if (access(dir, W_OK) != 0) { /* root writes anyway */
        metrics_publish(m, doc, n);
        f = fopen(path, "r");
        assert_non_null(f);
        got = fread(file, 1, sizeof file, f);
        fclose(f);
        assert_int_equal(got, want);
    }
    assert_int_equal(chmod(dir, 0700), 0);
    metrics_publish(m, doc, n);
    f = fopen(path, "r");
    assert_non_null(f);
    got = fread(file, 1, sizeof file - 1, f);
    fclose(f);
    file[got] = '\0';
    assert_non_null(strstr(file, "\nedgelambda_ingest_accepted_total 43\n"));
    metrics_free(m);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_numeric_field_has_a_metric),
        cmocka_unit_test(test_exposition_carries_every_value),
        cmocka_unit_test(test_nulls_hidden_and_escapes),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_textfile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
