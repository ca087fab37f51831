/*
 * query — request parser (see query.h). plat_json tokenises into a fixed
 * token array on the stack and checks the JSON strictly; every member is
 * then checked for type and bounds.
 */
#include "query.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plat_json.h"
#include "plat_time.h"

#define MAX_SPAN_MS (INT64_C(200) * 365 * 86400000)
#define MAX_TOKENS 512 /* a request with more is refused as too complex */

/* A token's bytes as written (a string without its quotes). */
struct tok_text {
    const char *s;
    size_t n;
};

static struct tok_text tok(const struct plat_json *doc, int i)
{
    struct tok_text r;
    r.s = plat_json_raw(doc, i, &r.n);
    if (!r.s)
        r.s = "";
    return r;
}

bool query_parse_duration(const char *s, size_t n, int64_t *out_ms)
{
    char buf[32];
    char *end;
    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (!(buf[0] >= '0' && buf[0] <= '9'))
        return false;
    errno = 0;
    double v = strtod(buf, &end);
    if (errno != 0 || end == buf || !isfinite(v) || v <= 0)
        return false;
    double mult;
    if (strcmp(end, "ms") == 0)
        mult = 1;
    else if (strcmp(end, "s") == 0)
        mult = 1000;
    else if (strcmp(end, "m") == 0)
        mult = 60000;
    else if (strcmp(end, "h") == 0)
        mult = 3600000;
    else if (strcmp(end, "d") == 0)
        mult = 86400000;
    else if (strcmp(end, "w") == 0)
        mult = 604800000;
    else
        return false;
    double ms = v * mult;
    if (ms < 1 || ms > (double)MAX_SPAN_MS || ms != floor(ms))
        return false;
    *out_ms = (int64_t)ms;
    return true;
}

bool query_parse_time(const char *s, size_t n, int64_t now_ms, int64_t *out_ms)
{
    int64_t d;
    if (n == 3 && memcmp(s, "now", 3) == 0) {
        *out_ms = now_ms;
        return true;
    }
    if (n > 1 && (s[0] == '-' || s[0] == '+')) {
        if (!query_parse_duration(s + 1, n - 1, &d))
            return false;
        *out_ms = s[0] == '-' ? now_ms - d : now_ms + d;
        return true;
    }
    bool digits = n > 0;
    for (size_t i = 0; i < n && digits; i++)
        digits = s[i] >= '0' && s[i] <= '9';
    if (digits && n > 18)
        return false; /* 19 digits may overflow int64 (found by fuzzing) */
    if (digits) {
        int64_t v = 0;
        for (size_t i = 0; i < n; i++)
            v = v * 10 + (s[i] - '0');
        *out_ms = v; /* epoch milliseconds, as the specification says */
        return true;
    }
    return plat_time_parse_rfc3339(s, n, out_ms);
}

/* A non-empty JSON string without escapes or control characters. */
static bool copy_string(const struct plat_json *doc, int i, char *dst, size_t cap)
{
    struct tok_text v = tok(doc, i);
    if (plat_json_type(doc, i) != PLAT_JSON_STRING || v.n == 0 || v.n >= cap ||
        memchr(v.s, '\\', v.n))
        return false;
    for (size_t k = 0; k < v.n; k++)
        if ((unsigned char)v.s[k] < 0x20)
            return false;
    memcpy(dst, v.s, v.n);
    dst[v.n] = '\0';
    return true;
}

static bool parse_agg(const struct plat_json *doc, int i, struct query_agg *a)
{
    static const struct {
        const char *name;
        enum query_agg_kind kind;
    } names[] = {{"count", QAGG_COUNT}, {"sum", QAGG_SUM},   {"min", QAGG_MIN},
                 {"max", QAGG_MAX},     {"mean", QAGG_MEAN}, {"stddev", QAGG_STDDEV},
                 {"last", QAGG_LAST}};
    if (plat_json_type(doc, i) != PLAT_JSON_STRING)
        return false;
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        if (plat_json_eq(doc, i, names[k].name)) {
            a->kind = names[k].kind;
            snprintf(a->name, sizeof a->name, "%s", names[k].name);
            return true;
        }
    }
    /* pNN or pNN.N: 0 < NN <= 100 */
    struct tok_text v = tok(doc, i);
    if (v.n < 2 || v.n > 6 || v.s[0] != 'p')
        return false;
    char buf[8];
    memcpy(buf, v.s + 1, v.n - 1);
    buf[v.n - 1] = '\0';
    char *end;
    if (!(buf[0] >= '0' && buf[0] <= '9'))
        return false;
    double q = strtod(buf, &end);
    if (*end != '\0' || !(q > 0 && q <= 100))
        return false;
    a->kind = QAGG_QUANTILE;
    a->q = q / 100.0;
    memcpy(a->name, v.s, v.n);
    a->name[v.n] = '\0';
    return true;
}

static bool parse_aggs(const struct plat_json *doc, int arr, struct query *q)
{
    int n = plat_json_count_children(doc, arr);
    if (plat_json_type(doc, arr) != PLAT_JSON_ARRAY || n == 0 || n > QUERY_MAX_AGGS)
        return false;
    q->n_aggs = 0;
    for (int e = plat_json_first(doc, arr); e >= 0; e = plat_json_next(doc, arr, e)) {
        if (!parse_agg(doc, e, &q->aggs[q->n_aggs]))
            return false;
        for (int m = 0; m < q->n_aggs; m++)
            if (strcmp(q->aggs[m].name, q->aggs[q->n_aggs].name) == 0)
                return false; /* duplicates make ambiguous answers */
        if (q->aggs[q->n_aggs].kind == QAGG_QUANTILE)
            q->wants_quantiles = true;
        q->n_aggs++;
    }
    return true;
}

/* A time: an integer of epoch ms (at most 18 digits), or a string
 * (query_parse_time). */
static bool parse_time_tok(const struct plat_json *doc, int i, int64_t now, int64_t *out)
{
    struct tok_text v = tok(doc, i);
    if (plat_json_type(doc, i) == PLAT_JSON_PRIMITIVE) {
        if (v.n == 0 || !((v.s[0] >= '0' && v.s[0] <= '9') || v.s[0] == '-'))
            return false;
        for (size_t k = 1; k < v.n; k++)
            if (v.s[k] < '0' || v.s[k] > '9')
                return false; /* epoch ms: an integer */
        if (v.n > 18)
            return false;
        int64_t x = 0;
        size_t k = v.s[0] == '-' ? 1 : 0;
        for (; k < v.n; k++)
            x = x * 10 + (v.s[k] - '0');
        *out = v.s[0] == '-' ? -x : x;
        return true;
    }
    return plat_json_type(doc, i) == PLAT_JSON_STRING && query_parse_time(v.s, v.n, now, out);
}

static void defaults(struct query *q, int64_t now)
{
    static const char *const dflt[] = {"count", "mean", "min", "max", "last"};
    static const enum query_agg_kind kinds[] = {QAGG_COUNT, QAGG_MEAN, QAGG_MIN, QAGG_MAX,
                                                QAGG_LAST};
    memset(q, 0, sizeof *q);
    q->op = QUERY_RANGE;
    q->from_ms = now - 3600000;
    q->to_ms = now;
    q->step_ms = 60000;
    q->limit = 1;
    q->expires_s = 300;
    for (int i = 0; i < 5; i++) {
        q->aggs[i].kind = kinds[i];
        snprintf(q->aggs[i].name, sizeof q->aggs[i].name, "%s", dflt[i]);
    }
    q->n_aggs = 5;
}

static bool parse_op(const struct plat_json *doc, int i, struct query *q)
{
    static const struct {
        const char *name;
        enum query_op op;
    } ops[] = {{"range", QUERY_RANGE},     {"query", QUERY_RANGE},
               {"series", QUERY_SERIES},   {"last", QUERY_LAST},
               {"status", QUERY_STATUS},   {"recompute", QUERY_RECOMPUTE},
               {"sync", QUERY_SYNC},       {"deadletters", QUERY_DEAD_LETTERS},
               {"metrics", QUERY_METRICS}, {"replay_deadletters", QUERY_REPLAY_DEAD_LETTERS},
               {"watch", QUERY_WATCH},     {"unwatch", QUERY_UNWATCH}};
    if (plat_json_type(doc, i) != PLAT_JSON_STRING)
        return false;
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++)
        if (plat_json_eq(doc, i, ops[k].name)) {
            q->op = ops[k].op;
            return true;
        }
    return false;
}

static bool parse_bool(const struct plat_json *doc, int i, bool *out)
{
    return plat_json_bool(doc, i, out) == EL_OK;
}

/* reply_to, escapes decoded (mqtt_topic_check_reply judges the bytes, a NUL
 * or control character from a \u escape included); one that is too long is
 * kept cut, with a length above the cap, so the check says so. */
static bool reply_to_value(const struct plat_json *doc, int i, char *out, size_t cap, size_t *len)
{
    size_t n = 0;
    el_status st = plat_json_string(doc, i, out, cap, &n);
    if (st == EL_INVAL)
        return false;
    *len = st == EL_OK ? n : cap;
    return true;
}

static bool copy_reply_to(const struct plat_json *doc, int i, struct query *q)
{
    return reply_to_value(doc, i, q->reply_to, sizeof q->reply_to, &q->reply_to_len);
}

/* "id": a string (with its quotes) or a primitive, echoed verbatim. */
static void copy_id(const struct plat_json *doc, int i, struct query *q)
{
    enum plat_json_type t = plat_json_type(doc, i);
    struct tok_text v = tok(doc, i);
    const char *start = t == PLAT_JSON_STRING ? v.s - 1 : v.s;
    size_t len = t == PLAT_JSON_STRING ? v.n + 2 : v.n;
    if ((t == PLAT_JSON_STRING || t == PLAT_JSON_PRIMITIVE) && len <= QUERY_ID_MAX &&
        !memchr(start, '\n', len)) {
        memcpy(q->id, start, len);
        q->id[len] = '\0';
        q->has_id = true;
    }
}

/* First pass: reply_to and id, so even a bad request can be answered. */
static void parse_reply_fields(const struct plat_json *doc, struct query *q)
{
    for (int k = plat_json_first(doc, 0); k >= 0; k = plat_json_next(doc, 0, k)) {
        if (plat_json_eq(doc, k, "reply_to"))
            q->has_reply_to = copy_reply_to(doc, k + 1, q);
        else if (plat_json_eq(doc, k, "id"))
            copy_id(doc, k + 1, q);
    }
}

static bool fail(const char **code, const char *c, char *err, size_t errlen, const char *msg)
{
    *code = c;
    snprintf(err, errlen, "%s", msg);
    return false;
}

/* One member of the request; false for a bad value, *unknown for a name
 * that is not one. */
static bool parse_member(const struct plat_json *doc, int k, int64_t now_ms, struct query *q,
                         bool *unknown, bool *both)
{
    int v = k + 1;
    if (plat_json_eq(doc, k, "op"))
        return parse_op(doc, v, q);
    if (plat_json_eq(doc, k, "series") || plat_json_eq(doc, k, "match")) {
        *both = q->has_series;
        q->has_series = copy_string(doc, v, q->series, sizeof q->series);
        q->is_match = plat_json_eq(doc, k, "match");
        return q->has_series;
    }
    if (plat_json_eq(doc, k, "from"))
        return parse_time_tok(doc, v, now_ms, &q->from_ms);
    if (plat_json_eq(doc, k, "to"))
        return parse_time_tok(doc, v, now_ms, &q->to_ms);
    if (plat_json_eq(doc, k, "step")) {
        struct tok_text vt = tok(doc, v);
        if (plat_json_type(doc, v) == PLAT_JSON_STRING)
            return query_parse_duration(vt.s, vt.n, &q->step_ms);
        return parse_time_tok(doc, v, 0, &q->step_ms) && q->step_ms > 0;
    }
    if (plat_json_eq(doc, k, "agg"))
        return parse_aggs(doc, v, q);
    if (plat_json_eq(doc, k, "n")) {
        int64_t lim;
        bool ok = parse_time_tok(doc, v, 0, &lim) && lim >= 1 && lim <= 1000;
        q->limit = ok ? (int)lim : 1;
        q->has_limit = ok;
        return ok;
    }
    if (plat_json_eq(doc, k, "reason"))
        return (q->has_reason = copy_string(doc, v, q->reason, sizeof q->reason));
    if (plat_json_eq(doc, k, "since"))
        return parse_time_tok(doc, v, now_ms, &q->since_ms);
    if (plat_json_eq(doc, k, "after"))
        return plat_json_type(doc, v) == PLAT_JSON_PRIMITIVE &&
               parse_time_tok(doc, v, 0, &q->after_seq) && q->after_seq >= 0;
    if (plat_json_eq(doc, k, "full"))
        return parse_bool(doc, v, &q->full);
    if (plat_json_eq(doc, k, "retry_parked"))
        return parse_bool(doc, v, &q->retry_parked);
    if (plat_json_eq(doc, k, "open"))
        return parse_bool(doc, v, &q->open);
    if (plat_json_eq(doc, k, "expires_s")) {
        int64_t s;
        bool ok = parse_time_tok(doc, v, 0, &s) && s >= 1 && s <= QUERY_WATCH_MAX_S;
        q->expires_s = ok ? (int)s : q->expires_s;
        return ok;
    }
    if (plat_json_eq(doc, k, "reply_to") || plat_json_eq(doc, k, "id"))
        return true; /* read above */
    *unknown = true;
    return false;
}

/* A range's own checks: a series, a forward range, its span, its buckets. */
static bool check_range(const struct query *q, const char **code, char *err, size_t errlen)
{
    char msg[160];
    if (!q->has_series)
        return fail(code, "bad_request", err, errlen,
                    "a range query needs \"series\" or \"match\"");
    if (q->from_ms >= q->to_ms)
        return fail(code, "bad_request", err, errlen, "\"from\" must be before \"to\"");
    if (q->to_ms - q->from_ms > MAX_SPAN_MS)
        return fail(code, "too_large", err, errlen,
                    "the range is longer than 200 years, the bound of one query");
    int64_t first = q->from_ms - (((q->from_ms % q->step_ms) + q->step_ms) % q->step_ms);
    int64_t buckets = (q->to_ms - first + q->step_ms - 1) / q->step_ms;
    if (buckets > QUERY_MAX_BUCKETS) {
        snprintf(msg, sizeof msg,
                 "%lld buckets requested; at most %d per series (use a larger step)",
                 (long long)buckets, QUERY_MAX_BUCKETS);
        return fail(code, "too_large", err, errlen, msg);
    }
    return true;
}

bool query_name_selected(const struct query *q, const char *name, size_t len)
{
    if (!q->has_series)
        return true;
    if (q->is_match)
        return mqtt_topic_matches(q->series, name, len);
    return len == strlen(q->series) && memcmp(q->series, name, len) == 0;
}

bool query_reply_to(const char *text, size_t len, char *out, size_t cap, size_t *full)
{
    struct plat_json_tok t[MAX_TOKENS];
    struct plat_json doc;
    bool found = false;
    if (plat_json_parse(&doc, text, len, t, MAX_TOKENS) != EL_OK ||
        plat_json_type(&doc, 0) != PLAT_JSON_OBJECT)
        return false;
    for (int k = plat_json_first(&doc, 0); k >= 0; k = plat_json_next(&doc, 0, k))
        if (plat_json_eq(&doc, k, "reply_to"))
            found = reply_to_value(&doc, k + 1, out, cap, full); /* the last one, as query_parse */
    return found;
}

bool query_parse(const char *text, size_t len, int64_t now_ms, struct query *q, const char **code,
                 char *err, size_t errlen)
{
    struct plat_json_tok t[MAX_TOKENS];
    struct plat_json doc;
    char msg[160];
    defaults(q, now_ms);
    el_status st = plat_json_parse(&doc, text, len, t, MAX_TOKENS);
    if (st == EL_NOMEM)
        return fail(code, "too_large", err, errlen, "request too complex");
    if (st != EL_OK || plat_json_type(&doc, 0) != PLAT_JSON_OBJECT)
        return fail(code, "bad_request", err, errlen, "request must be one JSON object");
    parse_reply_fields(&doc, q);
    for (int k = plat_json_first(&doc, 0); k >= 0; k = plat_json_next(&doc, 0, k)) {
        bool unknown = false, both = false;
        struct tok_text kt = tok(&doc, k);
        bool ok = parse_member(&doc, k, now_ms, q, &unknown, &both);
        if (both)
            return fail(code, "bad_request", err, errlen, "give one of series and match");
        if (ok)
            continue;
        snprintf(msg, sizeof msg, unknown ? "unknown member \"%.*s\"" : "bad value for \"%.*s\"",
                 (int)(kt.n > 40 ? 40 : kt.n), kt.s);
        return fail(code, "bad_request", err, errlen, msg);
    }
    if (q->op == QUERY_DEAD_LETTERS && !q->has_limit)
        q->limit = 100;
    if (q->op == QUERY_REPLAY_DEAD_LETTERS && !q->has_limit)
        q->limit = 1000;
    if (q->op == QUERY_WATCH && !q->has_series)
        return fail(code, "bad_request", err, errlen, "a watch needs \"series\" or \"match\"");
    return q->op != QUERY_RANGE || check_range(q, code, err, errlen);
}

bool query_parse_agg_list(const char *list, struct query *q, char *err, size_t errlen)
{
    struct plat_json_tok t[4];
    struct plat_json doc;
    char one[16];
    q->n_aggs = 0;
    q->wants_quantiles = false;
    for (const char *p = list;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        size_t n = strcspn(p, ",");
        size_t m = n;
        while (m > 0 && (p[m - 1] == ' ' || p[m - 1] == '\t'))
            m--;
        struct query_agg *a = &q->aggs[q->n_aggs];
        int len = snprintf(one, sizeof one, "\"%.*s\"", (int)(m < 12 ? m : 12), p);
        bool ok = m > 0 && m < 12 && !memchr(p, '"', m) && !memchr(p, '\\', m) &&
                  plat_json_parse(&doc, one, (size_t)len, t, 4) == EL_OK && parse_agg(&doc, 0, a);
        if (!ok) {
            snprintf(err, errlen,
                     "'%.*s' is no aggregate (count, sum, min, max, mean, stddev, last, pNN)",
                     (int)(m > 40 ? 40 : m), p);
            return false;
        }
        for (int k = 0; k < q->n_aggs; k++)
            if (strcmp(q->aggs[k].name, a->name) == 0) {
                snprintf(err, errlen, "'%s' is given twice", a->name);
                return false;
            }
        q->wants_quantiles |= a->kind == QAGG_QUANTILE;
        if (++q->n_aggs > QUERY_MAX_AGGS - 1 && p[n] == ',') {
            snprintf(err, errlen, "more than %d aggregates", QUERY_MAX_AGGS);
            return false;
        }
        if (p[n] != ',')
            return true;
        p += n + 1;
    }
}
