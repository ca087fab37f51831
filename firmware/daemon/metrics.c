/*
 * metrics — the status document as Prometheus text (design in metrics.h).
 *
 * One pass over status_sections[] (status.h): per row with a metric, its
 * JSON value is looked up in the parsed document and written as a family
 * (# HELP, # TYPE, samples). A row whose value is absent (a section or field
 * the document does not show now) or null writes nothing, not even its
 * header, so every family has at least one sample.
 */
#include "metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plat_file.h"
#include "plat_json.h"
#include "plat_log.h"
#include "plat_time.h"
#include "status.h"

#define METRICS_TOKENS 1024 /* a status document has about 300 */
#define METRICS_LABEL_MAX 256

struct out {
    char *buf;
    size_t cap, len;
    bool ok;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    if (!o->ok)
        return;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= o->cap - o->len) {
        o->ok = false;
        return;
    }
    o->len += (size_t)n;
}

/* Text escaped for HELP (\\ and \n) or, with quote, for a label value
 * (\\, \" and \n), as the text format wants. */
static void put_escaped(struct out *o, const char *s, size_t n, bool quote)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\')
            put(o, "\\\\");
        else if (s[i] == '\n')
            put(o, "\\n");
        else if (quote && s[i] == '"')
            put(o, "\\\"");
        else
            put(o, "%c", s[i]);
    }
}

static void put_header(struct out *o, const struct status_metric *m)
{
    put(o, "# HELP %s ", m->name);
    put_escaped(o, m->help, strlen(m->help), false);
    put(o, "\n# TYPE %s %s\n", m->name, m->type == SM_COUNTER ? "counter" : "gauge");
}

/* v / div, exactly: integers as they are, div 1000 as a three-place
 * decimal (milliseconds -> seconds). */
static void put_int(struct out *o, int64_t v, unsigned div)
{
    if (div <= 1) {
        put(o, "%" PRId64, v);
        return;
    }
    uint64_t a = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    if (div == 1000)
        put(o, "%s%" PRIu64 ".%03u", v < 0 ? "-" : "", a / 1000, (unsigned)(a % 1000));
    else
        put(o, "%.17g", (double)v / div);
}

/* A JSON number as a sample value: as written when unscaled (a JSON number
 * is valid text-format float syntax; uint64 counters stay exact). */
static bool put_number(struct out *o, const struct plat_json *d, int v, unsigned div)
{
    int64_t i;
    double x;
    size_t n;
    const char *raw = plat_json_raw(d, v, &n);
    if (plat_json_double(d, v, &x) != EL_OK)
        return false;
    if (div <= 1)
        put(o, "%.*s", (int)n, raw);
    else if (plat_json_int64(d, v, &i) == EL_OK)
        put_int(o, i, div);
    else
        put(o, "%.17g", x / div);
    return true;
}

/* A counter object ({"malformed":3,...}) as one labelled family. */
static bool put_counts(struct out *o, const struct plat_json *d, const struct status_metric *m,
                       int v)
{
    char text[METRICS_LABEL_MAX];
    size_t n;
    if (plat_json_type(d, v) != PLAT_JSON_OBJECT)
        return false;
    put_header(o, m);
    for (int k = plat_json_first(d, v); k >= 0; k = plat_json_next(d, v, k)) {
        if (plat_json_string(d, k, text, sizeof text, &n) != EL_OK)
            return false;
        put(o, "%s{%s=\"", m->name, m->label);
        put_escaped(o, text, n, true);
        put(o, "\"} ");
        if (!put_number(o, d, k + 1, m->div))
            return false;
        put(o, "\n");
    }
    return true;
}

/* A field's family; false if its value is not what its kind says. */
static bool put_field(struct out *o, const struct plat_json *d, const struct status_field *f, int v)
{
    const struct status_metric *m = &f->metric;
    char text[METRICS_LABEL_MAX];
    size_t n;
    bool b;
    if (plat_json_is_null(d, v) && m->type != SM_SET)
        return true; /* not known (yet): no sample */
    if (m->type == SM_SET) {
        put_header(o, m);
        put(o, "%s %d\n", m->name, plat_json_is_null(d, v) ? 0 : 1);
        return plat_json_is_null(d, v) || plat_json_type(d, v) == PLAT_JSON_STRING;
    }
    if (m->type == SM_INFO) {
        if (plat_json_string(d, v, text, sizeof text, &n) == EL_INVAL)
            return false;
        put_header(o, m);
        put(o, "%s{%s=\"", m->name, m->label);
        put_escaped(o, text, n, true);
        put(o, "\"} 1\n");
        return true;
    }
    switch (f->kind) {
    case SK_COUNTS: return put_counts(o, d, m, v);
    case SK_BOOL:
        if (plat_json_bool(d, v, &b) != EL_OK)
            return false;
        put_header(o, m);
        put(o, "%s %d\n", m->name, b ? 1 : 0);
        return true;
    case SK_TIME: {
        int64_t ms;
        const char *raw = plat_json_raw(d, v, &n);
        if (plat_json_type(d, v) != PLAT_JSON_STRING || !plat_time_parse_rfc3339(raw, n, &ms))
            return false;
        put_header(o, m);
        put(o, "%s ", m->name);
        put_int(o, ms, 1000);
        put(o, "\n");
        return true;
    }
    default:
        put_header(o, m);
        put(o, "%s ", m->name);
        if (!put_number(o, d, v, m->div))
            return false;
        put(o, "\n");
        return true;
    }
}

size_t metrics_format(const char *json, size_t len, char *out, size_t cap)
{
    struct plat_json_tok tok[METRICS_TOKENS];
    struct plat_json d;
    struct out o = {out, cap, 0, cap > 0};
    if (plat_json_parse(&d, json, len, tok, METRICS_TOKENS) != EL_OK ||
        plat_json_type(&d, 0) != PLAT_JSON_OBJECT)
        return 0;
    for (size_t s = 0; s < status_n_sections; s++) {
        const struct status_section *sec = &status_sections[s];
        int obj = sec->key ? plat_json_member(&d, 0, sec->key) : 0;
        if (plat_json_type(&d, obj) != PLAT_JSON_OBJECT)
            continue; /* not shown now (e.g. no serving thread) */
        for (size_t i = 0; i < sec->n; i++) {
            const struct status_field *f = &sec->fields[i];
            int v = plat_json_member(&d, obj, f->key);
            if (f->metric.type == SM_NONE || v < 0)
                continue;
            if (!put_field(&o, &d, f, v))
                return 0;
        }
    }
    return o.ok && o.len > 0 ? o.len : 0;
}

/* ---- the textfile ---- */

struct metrics {
    char *path;
    char text[METRICS_TEXT_MAX];
    struct plat_log_limit limit;
};

el_status metrics_new(const char *textfile, struct metrics **out)
{
    *out = NULL;
    if (!textfile || !textfile[0])
        return EL_OK;
    struct metrics *m = calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(textfile))) {
        free(m);
        return EL_NOMEM;
    }
    log_info("metrics: Prometheus text in %s at every status publish", m->path);
    *out = m;
    return EL_OK;
}

void metrics_free(struct metrics *m)
{
    if (!m)
        return;
    free(m->path);
    free(m);
}

void metrics_publish(struct metrics *m, const char *json, size_t len)
{
    if (!m)
        return;
    size_t n = metrics_format(json, len, m->text, sizeof m->text);
    if (n == 0) {
        plat_log_limited(&m->limit, 60000, PLAT_LOG_ERROR,
                         "metrics: the status document did not convert (%zu bytes); %s not written",
                         len, m->path);
        return;
    }
    if (plat_file_replace(m->path, m->text, n, 0644) != EL_OK)
        plat_log_limited(&m->limit, 60000, PLAT_LOG_ERROR, "metrics: cannot write %s: %s", m->path,
                         strerror(errno));
}
