/*
 * query — request parser (see query.h). jsmn tokenises into a fixed token
 * array on the stack; every member is checked for type and bounds.
 */
#include "query.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"

#define JSMN_STATIC
#define JSMN_STRICT
#define JSMN_PARENT_LINKS
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wunused-function"
#include <jsmn.h>
#pragma GCC diagnostic pop

#define MAX_SPAN_MS (INT64_C(200) * 365 * 86400000)

struct tok_text {
    const char *s;
    size_t n;
};

static struct tok_text tok(const char *text, const jsmntok_t *t)
{
    struct tok_text r = {text + t->start, (size_t)(t->end - t->start)};
    return r;
}

static bool tok_is(const char *text, const jsmntok_t *t, const char *word)
{
    size_t n = strlen(word);
    return (size_t)(t->end - t->start) == n && memcmp(text + t->start, word, n) == 0;
}

/* Index just past token i and all its children. */
static int skip(const jsmntok_t *t, int n, int i)
{
    int end = t[i].end;
    int j = i + 1;
    while (j < n && t[j].start < end)
        j++;
    return j;
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
    return decode_parse_time(s, n, out_ms);
}

bool query_topic_matches(const char *filter, const char *name, size_t name_len)
{
    size_t i = 0;
    const char *f = filter;
    /* MQTT: wildcards at the first level do not match topics starting with '$'. */
    if (name_len > 0 && name[0] == '$' && (f[0] == '+' || f[0] == '#'))
        return false;
    for (;;) {
        if (f[0] == '#' && f[1] == '\0')
            return true;
        if (f[0] == '+' && (f[1] == '/' || f[1] == '\0')) {
            while (i < name_len && name[i] != '/')
                i++;
            f++;
        } else {
            while (*f && *f != '/') {
                if (i >= name_len || name[i] != *f)
                    return false;
                i++;
                f++;
            }
        }
        if (*f == '\0')
            return i == name_len;
        /* *f == '/' */
        if (i >= name_len) {
            /* "a/#" matches "a" too */
            return f[1] == '#' && f[2] == '\0';
        }
        if (name[i] != '/')
            return false;
        i++;
        f++;
    }
}

static bool fail(const char **code, const char *c, char *err, size_t errlen, const char *msg)
{
    *code = c;
    snprintf(err, errlen, "%s", msg);
    return false;
}

static bool copy_string(const char *text, const jsmntok_t *t, char *dst, size_t cap)
{
    struct tok_text v = tok(text, t);
    if (t->type != JSMN_STRING || v.n == 0 || v.n >= cap || memchr(v.s, '\\', v.n))
        return false;
    for (size_t i = 0; i < v.n; i++)
        if ((unsigned char)v.s[i] < 0x20)
            return false;
    memcpy(dst, v.s, v.n);
    dst[v.n] = '\0';
    return true;
}

static bool parse_agg(const char *text, const jsmntok_t *t, struct query_agg *a)
{
    static const struct {
        const char *name;
        enum query_agg_kind kind;
    } names[] = {{"count", QAGG_COUNT}, {"sum", QAGG_SUM},   {"min", QAGG_MIN},
                 {"max", QAGG_MAX},     {"mean", QAGG_MEAN}, {"stddev", QAGG_STDDEV},
                 {"last", QAGG_LAST}};
    if (t->type != JSMN_STRING)
        return false;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (tok_is(text, t, names[i].name)) {
            a->kind = names[i].kind;
            snprintf(a->name, sizeof a->name, "%s", names[i].name);
            return true;
        }
    }
    /* pNN or pNN.N: 0 < NN <= 100 */
    struct tok_text v = tok(text, t);
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

static bool parse_aggs(const char *text, const jsmntok_t *t, int n, int i, struct query *q)
{
    if (t[i].type != JSMN_ARRAY || t[i].size == 0 || t[i].size > QUERY_MAX_AGGS)
        return false;
    q->n_aggs = 0;
    for (int j = i + 1, k = 0; k < t[i].size; k++, j = skip(t, n, j)) {
        if (j >= n || !parse_agg(text, &t[j], &q->aggs[q->n_aggs]))
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

static bool parse_time_tok(const char *text, const jsmntok_t *t, int64_t now, int64_t *out)
{
    struct tok_text v = tok(text, t);
    if (t->type == JSMN_PRIMITIVE) {
        if (v.n == 0 || !((v.s[0] >= '0' && v.s[0] <= '9') || v.s[0] == '-'))
            return false;
        for (size_t i = 1; i < v.n; i++)
            if (v.s[i] < '0' || v.s[i] > '9')
                return false; /* epoch ms: an integer */
        if (v.n > 18)
            return false;
        int64_t x = 0;
        size_t i = v.s[0] == '-' ? 1 : 0;
        for (; i < v.n; i++)
            x = x * 10 + (v.s[i] - '0');
        *out = v.s[0] == '-' ? -x : x;
        return true;
    }
    return t->type == JSMN_STRING && query_parse_time(v.s, v.n, now, out);
}

static void defaults(struct query *q, int64_t now)
{
    static const char *const dflt[] = {"count", "mean", "min", "max", "last"};
    memset(q, 0, sizeof *q);
    q->op = QUERY_RANGE;
    q->from_ms = now - 3600000;
    q->to_ms = now;
    q->step_ms = 60000;
    q->limit = 1;
    for (int i = 0; i < 5; i++) {
        q->aggs[i].kind = i == 0   ? QAGG_COUNT
                          : i == 1 ? QAGG_MEAN
                          : i == 2 ? QAGG_MIN
                          : i == 3 ? QAGG_MAX
                                   : QAGG_LAST;
        snprintf(q->aggs[i].name, sizeof q->aggs[i].name, "%s", dflt[i]);
    }
    q->n_aggs = 5;
}

static bool parse_op(const char *text, const jsmntok_t *t, struct query *q)
{
    static const struct {
        const char *name;
        enum query_op op;
    } ops[] = {{"range", QUERY_RANGE}, {"query", QUERY_RANGE},   {"series", QUERY_SERIES},
               {"last", QUERY_LAST},   {"status", QUERY_STATUS}, {"recompute", QUERY_RECOMPUTE},
               {"sync", QUERY_SYNC}};
    if (t->type != JSMN_STRING)
        return false;
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (tok_is(text, t, ops[i].name)) {
            q->op = ops[i].op;
            return true;
        }
    return false;
}

static bool parse_bool(const char *text, const jsmntok_t *t, bool *out)
{
    if (tok_is(text, t, "true"))
        *out = true;
    else if (tok_is(text, t, "false"))
        *out = false;
    else
        return false;
    return true;
}

/* reply_to as written (query_check_reply_topic judges it): a JSON string
 * without escapes; one that is too long is kept cut so the check says so. */
static bool copy_reply_to(const char *text, const jsmntok_t *t, struct query *q)
{
    struct tok_text v = tok(text, t);
    if (t->type != JSMN_STRING || memchr(v.s, '\\', v.n))
        return false;
    size_t n = v.n < sizeof q->reply_to - 1 ? v.n : sizeof q->reply_to - 1;
    memcpy(q->reply_to, v.s, n);
    q->reply_to[n] = '\0';
    q->reply_to_len = v.n;
    return true;
}

/* First pass: reply_to and id, so even a bad request can be answered. */
static void parse_reply_fields(const char *text, const jsmntok_t *t, int n, struct query *q)
{
    for (int i = 1; i + 1 < n; i = skip(t, n, i + 1)) {
        if (t[i].parent != 0)
            continue;
        if (tok_is(text, &t[i], "reply_to"))
            q->has_reply_to = copy_reply_to(text, &t[i + 1], q);
        else if (tok_is(text, &t[i], "id")) {
            const jsmntok_t *v = &t[i + 1];
            struct tok_text tv = tok(text, v);
            size_t start = v->type == JSMN_STRING ? (size_t)v->start - 1 : (size_t)v->start;
            size_t len = v->type == JSMN_STRING ? tv.n + 2 : tv.n;
            if ((v->type == JSMN_STRING || v->type == JSMN_PRIMITIVE) && len <= QUERY_ID_MAX &&
                !memchr(text + start, '\n', len)) {
                memcpy(q->id, text + start, len);
                q->id[len] = '\0';
                q->has_id = true;
            }
        }
    }
}

bool query_parse(const char *text, size_t len, int64_t now_ms, struct query *q, const char **code,
                 char *err, size_t errlen)
{
    jsmn_parser p;
    jsmntok_t t[DECODE_MAX_TOKENS];
    char msg[160];
    bool has_step = false;
    defaults(q, now_ms);
    jsmn_init(&p);
    int n = jsmn_parse(&p, text, len, t, DECODE_MAX_TOKENS);
    if (n == JSMN_ERROR_NOMEM)
        return fail(code, "too_large", err, errlen, "request too complex");
    if (n < 1 || t[0].type != JSMN_OBJECT)
        return fail(code, "bad_request", err, errlen, "request must be a JSON object");
    for (size_t i = (size_t)t[0].end; i < len; i++)
        if (text[i] != ' ' && text[i] != '\n' && text[i] != '\r' && text[i] != '\t')
            return fail(code, "bad_request", err, errlen, "trailing bytes after the JSON object");
    parse_reply_fields(text, t, n, q);

    for (int i = 1; i < n; i = skip(t, n, i + 1)) {
        const jsmntok_t *k = &t[i], *v = i + 1 < n ? &t[i + 1] : NULL;
        if (!v || k->type != JSMN_STRING)
            return fail(code, "bad_request", err, errlen, "malformed object");
        struct tok_text kt = tok(text, k);
        bool ok = true;
        if (tok_is(text, k, "op"))
            ok = parse_op(text, v, q);
        else if (tok_is(text, k, "series") || tok_is(text, k, "match")) {
            if (q->has_series)
                return fail(code, "bad_request", err, errlen, "give one of series and match");
            ok = copy_string(text, v, q->series, sizeof q->series);
            q->has_series = ok;
            q->is_match = tok_is(text, k, "match");
        } else if (tok_is(text, k, "from"))
            ok = parse_time_tok(text, v, now_ms, &q->from_ms);
        else if (tok_is(text, k, "to"))
            ok = parse_time_tok(text, v, now_ms, &q->to_ms);
        else if (tok_is(text, k, "step")) {
            struct tok_text vt = tok(text, v);
            has_step = true;
            if (v->type == JSMN_STRING)
                ok = query_parse_duration(vt.s, vt.n, &q->step_ms);
            else
                ok = parse_time_tok(text, v, 0, &q->step_ms) && q->step_ms > 0;
        } else if (tok_is(text, k, "agg"))
            ok = parse_aggs(text, t, n, i + 1, q);
        else if (tok_is(text, k, "n")) {
            int64_t lim;
            ok = parse_time_tok(text, v, 0, &lim) && lim >= 1 && lim <= 1000;
            q->limit = ok ? (int)lim : 1;
        } else if (tok_is(text, k, "full"))
            ok = parse_bool(text, v, &q->full);
        else if (tok_is(text, k, "retry_parked"))
            ok = parse_bool(text, v, &q->retry_parked);
        else if (tok_is(text, k, "reply_to") || tok_is(text, k, "id"))
            ok = true; /* read above */
        else {
            snprintf(msg, sizeof msg, "unknown member \"%.*s\"", (int)(kt.n > 40 ? 40 : kt.n),
                     kt.s);
            return fail(code, "bad_request", err, errlen, msg);
        }
        if (!ok) {
            snprintf(msg, sizeof msg, "bad value for \"%.*s\"", (int)(kt.n > 40 ? 40 : kt.n), kt.s);
            return fail(code, "bad_request", err, errlen, msg);
        }
    }
    if (q->op != QUERY_RANGE)
        return true;
    if (!q->has_series)
        return fail(code, "bad_request", err, errlen,
                    "a range query needs \"series\" or \"match\"");
    if (q->from_ms >= q->to_ms)
        return fail(code, "bad_request", err, errlen, "\"from\" must be before \"to\"");
    if (q->to_ms - q->from_ms > MAX_SPAN_MS)
        return fail(code, "too_large", err, errlen,
                    "the range is longer than 200 years, the bound of one query");
    (void)has_step;
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

/* ---- where a reply may go ---- */

const char *query_topic_problem_str(enum query_topic_problem p)
{
    static const char *const names[QTOPIC_COUNT] = {
        [QTOPIC_OK] = "ok",
        [QTOPIC_NONE] = "no_reply_topic",
        [QTOPIC_EMPTY] = "empty",
        [QTOPIC_TOO_LONG] = "too_long",
        [QTOPIC_WILDCARD] = "wildcard",
        [QTOPIC_BAD_UTF8] = "bad_utf8",
        [QTOPIC_RESERVED] = "reserved",
        [QTOPIC_INGEST] = "ingest_topic",
        [QTOPIC_OWN] = "own_topic",
    };
    return (unsigned)p < QTOPIC_COUNT ? names[p] : "unknown";
}

/* One UTF-8 character at s (n bytes left): its length, or 0 if invalid —
 * overlong forms, surrogates, beyond U+10FFFF, and what MQTT and mosquitto
 * refuse in a topic name: U+0000, control characters, non-characters. */
static size_t utf8_char(const unsigned char *s, size_t n)
{
    uint32_t cp;
    size_t len;
    if (s[0] < 0x80) {
        cp = s[0];
        len = 1;
    } else if ((s[0] & 0xE0) == 0xC0) {
        cp = s[0] & 0x1Fu;
        len = 2;
    } else if ((s[0] & 0xF0) == 0xE0) {
        cp = s[0] & 0x0Fu;
        len = 3;
    } else if ((s[0] & 0xF8) == 0xF0) {
        cp = s[0] & 0x07u;
        len = 4;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3Fu);
    }
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    if (cp <= 0x1F || (cp >= 0x7F && cp <= 0x9F))
        return 0;
    if ((cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE)
        return 0;
    return len;
}

enum query_topic_problem query_check_reply_topic(const char *topic, size_t len,
                                                 const struct query_reply_rules *rules)
{
    if (!topic)
        return QTOPIC_NONE;
    if (len == 0)
        return QTOPIC_EMPTY;
    if (len > QUERY_REPLY_TOPIC_MAX)
        return QTOPIC_TOO_LONG;
    for (size_t i = 0; i < len;) {
        size_t c = utf8_char((const unsigned char *)topic + i, len - i);
        if (c == 0)
            return QTOPIC_BAD_UTF8;
        i += c;
    }
    if (memchr(topic, '+', len) || memchr(topic, '#', len))
        return QTOPIC_WILDCARD;
    if (topic[0] == '$')
        return QTOPIC_RESERVED;
    for (int i = 0; rules && i < rules->n_own; i++)
        if (strlen(rules->own[i]) == len && memcmp(rules->own[i], topic, len) == 0)
            return QTOPIC_OWN;
    for (int i = 0; rules && i < rules->n_filters; i++)
        if (query_topic_matches(rules->filters[i], topic, len))
            return QTOPIC_INGEST;
    return QTOPIC_OK;
}
