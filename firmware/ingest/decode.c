/*
 * decode — pure decoders for sensor payloads (docs/SPEC.md §3); see decode.h for the
 * accepted forms. Not for: topics, series limits, dead-lettering (ingest).
 *
 * Design:
 *   - len > max_payload is checked before any byte is read. Payloads holding a
 *     NUL byte are malformed (JSON never contains one; jsmn would stop there).
 *   - A payload whose first non-blank byte is '{' is JSON; anything else must
 *     be one bare JSON number. jsmn (strict) tokenises into DECODE_MAX_TOKENS
 *     tokens on the stack; more tokens is "too complex" = malformed. jsmn is
 *     lax about separators (it accepts "{,}", "[1 2]", trailing commas, two
 *     top-level values), so json_check() walks the tokens in document order
 *     and verifies that the bytes between tokens are exactly white space plus
 *     the one separator the grammar expects, that every primitive is a JSON
 *     literal and that no string holds a raw control character. Nesting is
 *     limited to JSON_MAX_DEPTH (deeper = malformed).
 *   - Values: a JSON number, true/false (1/0), a string holding exactly a JSON
 *     number, or a string that is exactly a state word (opts->words). Number
 *     text is copied into a NUM_MAX_CHARS stack buffer for strtod (longer =
 *     malformed). strtod uses LC_NUMERIC: the daemon must keep the "C" locale
 *     for numbers (it never calls setlocale for LC_NUMERIC).
 *   - Timestamps never go through a double: the decimal text is scaled by a
 *     power of ten exactly, so "1732435200.123" is 1732435200123 ms, not ...122.
 *     RFC 3339 uses a days-from-civil formula (no timegm, no TZ, no locale).
 *   - Duplicate keys: the last occurrence wins (as in JavaScript and Python).
 *     Keys are compared as raw bytes (no unescaping).
 *   - fields_all: members whose value is such a value count; other strings,
 *     null, objects and arrays are skipped; keys that become series names must be non-empty UTF-8
 *     without '\\', '+', '#' or control characters, else malformed. A bare
 *     number gives one event with field_len 0.
 *   - Order of checks: oversized, malformed, value (no_value, non_finite,
 *     too_many_fields), then timestamp.
 *
 * Threading: pure; any thread; reentrant. Stack use is about 10 KiB.
 */
#include "decode.h"

#include "plat_time.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSMN_STATIC
#define JSMN_STRICT
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#pragma GCC diagnostic ignored "-Wshadow"
#include <jsmn.h>
#pragma GCC diagnostic pop

#define NUM_MAX_CHARS 64
#define JSON_MAX_DEPTH 64
#define TS_MAX_MS INT64_C(4102444800000) /* 2100-01-01T00:00:00Z: always absurd */

static const char *const reason_names[DECODE_REASON_COUNT] = {
    [DECODE_OK] = "ok",
    [DECODE_MALFORMED] = "malformed",
    [DECODE_NO_VALUE] = "no_value",
    [DECODE_NON_FINITE] = "non_finite",
    [DECODE_BAD_TIMESTAMP] = "bad_timestamp",
    [DECODE_OVERSIZED] = "oversized",
    [DECODE_TOO_MANY_FIELDS] = "too_many_fields",
    [DECODE_NON_NUMERIC] = "non_numeric",
};

const char *decode_reason_str(enum decode_reason reason)
{
    if ((unsigned)reason >= DECODE_REASON_COUNT || !reason_names[reason])
        return "unknown";
    return reason_names[reason];
}

const char *decode_format_str(enum decode_format f)
{
    static const char *const names[DECODE_FMT_COUNT] = {
        [DECODE_FMT_AUTO] = "auto",     [DECODE_FMT_JSON] = "json",
        [DECODE_FMT_NUMBER] = "number", [DECODE_FMT_INFLUX] = "influx",
        [DECODE_FMT_CBOR] = "cbor",     [DECODE_FMT_SPARKPLUG_B] = "sparkplug_b",
    };
    return (unsigned)f < DECODE_FMT_COUNT ? names[f] : "?";
}

void decode_opts_default(struct decode_opts *opts)
{
    *opts = (struct decode_opts){0};
    opts->value_field = "value";
    opts->ts_field = "ts";
    opts->fields_all = false;
    opts->max_payload = 65536;
    opts->ts_min_ms = INT64_C(946684800000); /* 2000-01-01T00:00:00Z */
    opts->max_future_ms = INT64_C(86400000); /* one day */
    opts->words = NULL;
}

/* ---------- numbers ---------- */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* JSON number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool number_syntax_ok(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && s[i] == '-')
        i++;
    if (i >= n || !is_digit(s[i]))
        return false;
    if (s[i] == '0') {
        i++;
    } else {
        while (i < n && is_digit(s[i]))
            i++;
    }
    if (i < n && s[i] == '.') {
        i++;
        if (i >= n || !is_digit(s[i]))
            return false;
        while (i < n && is_digit(s[i]))
            i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= n || !is_digit(s[i]))
            return false;
        while (i < n && is_digit(s[i]))
            i++;
    }
    return i == n;
}

static bool equals_nocase(const char *s, size_t n, const char *word)
{
    size_t i = 0;
    for (; i < n && word[i] != '\0'; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != word[i])
            return false;
    }
    return i == n && word[i] == '\0';
}

/* nan, inf, infinity, any case, optionally signed: what printf and many
 * sensor libraries write for a failed reading. */
static bool is_non_finite_word(const char *s, size_t n)
{
    if (n > 0 && (s[0] == '-' || s[0] == '+')) {
        s++;
        n--;
    }
    return equals_nocase(s, n, "nan") || equals_nocase(s, n, "inf") ||
           equals_nocase(s, n, "infinity");
}

/* Parses a JSON number of n bytes (not NUL-terminated) into a finite double. */
static enum decode_reason number_parse(const char *s, size_t n, double *out)
{
    if (!number_syntax_ok(s, n))
        return is_non_finite_word(s, n) ? DECODE_NON_FINITE : DECODE_MALFORMED;
    if (n >= NUM_MAX_CHARS)
        return DECODE_MALFORMED;
    char buf[NUM_MAX_CHARS];
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end = NULL;
    double v = strtod(buf, &end);
    if (end != buf + n)
        return DECODE_MALFORMED;
    if (!isfinite(v))
        return DECODE_NON_FINITE; /* overflow: 1e999 */
    *out = v;
    return DECODE_OK;
}

/* ---------- time (RFC 3339: plat_time) ---------- */

/* A JSON number as exact decimal: value = -1^neg * digits * 10^exp10, where
 * digits are the integer then the fraction digits, leading zeros skipped. */
struct decimal {
    bool neg;
    const char *int_digits, *frac_digits;
    size_t n_int, n_frac;
    size_t skip;   /* leading zeros of int||frac */
    int64_t exp10; /* power of ten of the last digit */
};

static char decimal_digit(const struct decimal *d, size_t idx)
{
    return idx < d->n_int ? d->int_digits[idx] : d->frac_digits[idx - d->n_int];
}

/* Splits number text that number_syntax_ok() accepted. */
static void decimal_scan(const char *s, size_t n, struct decimal *d)
{
    size_t i = 0;
    d->neg = s[0] == '-';
    if (d->neg)
        i++;
    d->int_digits = s + i;
    while (i < n && is_digit(s[i]))
        i++;
    d->n_int = (size_t)(s + i - d->int_digits);
    d->frac_digits = s + i;
    d->n_frac = 0;
    if (i < n && s[i] == '.') {
        d->frac_digits = s + ++i;
        while (i < n && is_digit(s[i]))
            i++;
        d->n_frac = (size_t)(s + i - d->frac_digits);
    }
    int64_t exp10 = 0;
    if (i < n) { /* 'e' or 'E' */
        i++;
        bool exp_neg = s[i] == '-';
        if (s[i] == '-' || s[i] == '+')
            i++;
        for (; i < n; i++) {
            if (exp10 < 1000000) /* saturate: far beyond any plausible time */
                exp10 = exp10 * 10 + (s[i] - '0');
        }
        if (exp_neg)
            exp10 = -exp10;
    }
    d->exp10 = exp10 - (int64_t)d->n_frac;
    d->skip = 0;
    while (d->skip < d->n_int + d->n_frac && decimal_digit(d, d->skip) == '0')
        d->skip++;
}

/* floor(value * 10^shift) into *out; false beyond 18 digits. */
static bool decimal_scaled_floor(const struct decimal *d, int64_t shift, int64_t *out)
{
    int64_t n_sig = (int64_t)(d->n_int + d->n_frac - d->skip);
    int64_t n_whole = n_sig + d->exp10 + shift; /* digits left of the point */
    if (n_whole > 18)
        return false;
    int64_t acc = 0;
    bool frac_nonzero = false;
    for (int64_t k = 0; k < n_sig; k++) {
        char c = decimal_digit(d, d->skip + (size_t)k);
        if (k < n_whole)
            acc = acc * 10 + (c - '0');
        else if (c != '0')
            frac_nonzero = true;
    }
    for (int64_t k = n_sig; k < n_whole; k++)
        acc *= 10;
    if (d->neg)
        acc = frac_nonzero ? -acc - 1 : -acc;
    *out = acc;
    return true;
}

/* A JSON number of epoch s, ms, us or ns (by magnitude) → floor(ms), computed
 * exactly on the decimal digits. False if not a JSON number or beyond 1e18 ms. */
static bool epoch_number_parse(const char *s, size_t n, int64_t *out_ms)
{
    if (!number_syntax_ok(s, n))
        return false;
    struct decimal d;
    decimal_scan(s, n, &d);
    int64_t n_sig = (int64_t)(d.n_int + d.n_frac - d.skip);
    if (n_sig == 0) {
        *out_ms = 0;
        return true;
    }
    int64_t lead = n_sig - 1 + d.exp10; /* value is in [10^lead, 10^(lead+1)) */
    int64_t to_ms = lead >= 17 ? -6 : lead >= 14 ? -3 : lead >= 11 ? 0 : 3;
    return decimal_scaled_floor(&d, to_ms, out_ms);
}

bool decode_parse_time(const char *text, size_t len, int64_t *out_ms)
{
    int64_t ms;
    if (text == NULL || len == 0 || out_ms == NULL)
        return false;
    if (!plat_time_parse_rfc3339(text, len, &ms) && !epoch_number_parse(text, len, &ms))
        return false;
    *out_ms = ms;
    return true;
}

/* ---------- JSON structure ---------- */

struct json_doc {
    const char *text;
    size_t len;
    int n_tok;
    jsmntok_t tok[DECODE_MAX_TOKENS];
};

/* Byte span of a token including the quotes of a string. */
static size_t tok_outer_start(const jsmntok_t *t)
{
    return (size_t)t->start - (t->type == JSMN_STRING ? 1u : 0u);
}

static size_t tok_outer_end(const jsmntok_t *t)
{
    return (size_t)t->end + (t->type == JSMN_STRING ? 1u : 0u);
}

/* True if text[from, to) is white space around exactly one sep ('\0': none). */
static bool gap_is(const char *text, size_t from, size_t to, char sep)
{
    if (to < from)
        return false;
    bool seen = sep == '\0';
    for (size_t i = from; i < to; i++) {
        if (is_json_space(text[i]))
            continue;
        if (text[i] != sep || seen)
            return false;
        seen = true;
    }
    return seen;
}

static bool literal_ok(const char *s, size_t n)
{
    return (n == 4 && memcmp(s, "true", 4) == 0) || (n == 5 && memcmp(s, "false", 5) == 0) ||
           (n == 4 && memcmp(s, "null", 4) == 0) || number_syntax_ok(s, n);
}

/* A leaf (string or primitive) token: sizes are jsmn's count of children. */
static bool leaf_ok(const struct json_doc *doc, const jsmntok_t *t, bool is_key)
{
    const char *s = doc->text + t->start;
    size_t n = (size_t)(t->end - t->start);
    if (t->type == JSMN_STRING) {
        if (t->size != (is_key ? 1 : 0))
            return false;
        for (size_t i = 0; i < n; i++) {
            if ((unsigned char)s[i] < 0x20)
                return false;
        }
        return true;
    }
    return !is_key && t->type == JSMN_PRIMITIVE && t->size == 0 && literal_ok(s, n);
}

struct json_frame {
    int tok;       /* the container's token */
    int remaining; /* children (members for an object) still to come */
    bool is_object;
    bool want_key;
    bool first;
};

/* The separator the grammar wants before the next token in frame f. */
static char frame_sep(const struct json_frame *f)
{
    if (f->is_object && !f->want_key)
        return ':';
    return f->first ? '\0' : ',';
}

/* The walk over the tokens: open containers and the first byte not yet
 * accounted for. */
struct json_walk {
    const struct json_doc *doc;
    struct json_frame stack[JSON_MAX_DEPTH];
    int depth;
    size_t pos;
};

/* After a value ended (completed) or a container opened: closes every
 * container whose last child has ended, checking the bytes before its
 * closing bracket. */
static bool walk_close(struct json_walk *w, bool completed)
{
    while (w->depth > 0) {
        struct json_frame *top = &w->stack[w->depth - 1];
        if (completed) {
            top->remaining--;
            top->first = false;
            top->want_key = true;
        }
        if (top->remaining > 0)
            return true;
        if (top->remaining < 0)
            return false;
        const jsmntok_t *c = &w->doc->tok[top->tok];
        if (c->end < 1 || !gap_is(w->doc->text, w->pos, (size_t)c->end - 1, '\0'))
            return false;
        w->pos = (size_t)c->end;
        w->depth--;
        completed = true;
    }
    return true;
}

/* Accounts for token i: the separator before it, its content, its children. */
static bool walk_token(struct json_walk *w, int i)
{
    const jsmntok_t *t = &w->doc->tok[i];
    struct json_frame *f = w->depth > 0 ? &w->stack[w->depth - 1] : NULL;
    bool is_key = f != NULL && f->is_object && f->want_key;
    if (t->start < 0 || t->end < t->start)
        return false;
    if (!gap_is(w->doc->text, w->pos, tok_outer_start(t), f ? frame_sep(f) : '\0'))
        return false;
    if (t->type == JSMN_OBJECT || t->type == JSMN_ARRAY) {
        if (is_key || w->depth >= JSON_MAX_DEPTH || t->size < 0)
            return false;
        w->stack[w->depth++] = (struct json_frame){.tok = i,
                                                   .remaining = t->size,
                                                   .is_object = t->type == JSMN_OBJECT,
                                                   .want_key = true,
                                                   .first = true};
        w->pos = (size_t)t->start + 1;
        return walk_close(w, false); /* closes it at once if empty */
    }
    if (!leaf_ok(w->doc, t, is_key))
        return false;
    w->pos = tok_outer_end(t);
    if (is_key) {
        f->want_key = false;
        return true;
    }
    return walk_close(w, true);
}

/* Verifies that the token stream is exactly one JSON value with correct
 * separators, and nothing but white space around it. */
static bool json_check(const struct json_doc *doc)
{
    struct json_walk w = {.doc = doc, .depth = 0, .pos = 0};
    int i = 0;
    do {
        if (i >= doc->n_tok || !walk_token(&w, i))
            return false;
        i++;
    } while (w.depth > 0);
    return i == doc->n_tok && gap_is(doc->text, w.pos, doc->len, '\0');
}

/* Index of the token after the subtree rooted at i (sizes are validated). */
static int json_skip(const struct json_doc *doc, int i)
{
    int pending = 1;
    while (pending > 0 && i < doc->n_tok) {
        pending += doc->tok[i].size - 1;
        i++;
    }
    return i;
}

static bool tok_same_text(const struct json_doc *doc, const jsmntok_t *a, const jsmntok_t *b)
{
    int n = a->end - a->start;
    return n == b->end - b->start &&
           memcmp(doc->text + a->start, doc->text + b->start, (size_t)n) == 0;
}

/* ---------- payload ---------- */

/* A field name must be usable as a series-name level. */
bool decode_name_ok(const char *s, size_t n)
{
    if (n == 0)
        return false;
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || c == '\\' || c == '+' || c == '#')
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        /* Well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
        size_t extra = c >= 0xc2 && c <= 0xdf   ? 1
                       : c >= 0xe0 && c <= 0xef ? 2
                       : c >= 0xf0 && c <= 0xf4 ? 3
                                                : 0;
        if (extra == 0 || n - i <= extra)
            return false;
        unsigned char c1 = (unsigned char)s[i + 1];
        if ((c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 > 0x9f) || (c == 0xf0 && c1 < 0x90) ||
            (c == 0xf4 && c1 > 0x8f))
            return false;
        for (size_t k = 1; k <= extra; k++) {
            if (((unsigned char)s[i + k] & 0xc0) != 0x80)
                return false;
        }
        i += extra + 1;
    }
    return true;
}

/* ---------- values ---------- */

static bool word_lookup(const struct decode_words *words, const char *s, size_t n, double *out)
{
    if (words == NULL)
        return false;
    for (uint32_t i = 0; i < words->n && i < DECODE_MAX_WORDS; i++) {
        if (words->w[i].len == n && memcmp(words->w[i].text, s, n) == 0) {
            *out = words->w[i].value;
            return true;
        }
    }
    return false;
}

/* The text of a string value (no quotes): a state word or exactly a JSON
 * number; else non_numeric (number_parse's non_finite stays). */
static enum decode_reason string_value(const struct decode_opts *opts, const char *s, size_t n,
                                       double *out)
{
    if (word_lookup(opts->words, s, n, out))
        return DECODE_OK;
    enum decode_reason r = number_parse(s, n, out);
    return r == DECODE_MALFORMED ? DECODE_NON_NUMERIC : r;
}

enum decode_reason decode_text_value(const struct decode_opts *opts, const char *s, size_t n,
                                     double *out)
{
    return string_value(opts, s, n, out);
}

/* A JSON value token as a reading: DECODE_OK with *out; no_value for null,
 * objects and arrays; non_numeric for other strings; number_parse's reasons. */
static enum decode_reason value_of(const struct json_doc *doc, const struct decode_opts *opts,
                                   const jsmntok_t *t, double *out)
{
    const char *s = doc->text + t->start;
    size_t n = (size_t)(t->end - t->start);
    if (t->type == JSMN_STRING)
        return string_value(opts, s, n, out);
    if (t->type != JSMN_PRIMITIVE)
        return DECODE_NO_VALUE;
    if (s[0] == 't' || s[0] == 'f') { /* json_check: exactly true or false */
        *out = s[0] == 't' ? 1.0 : 0.0;
        return DECODE_OK;
    }
    if (s[0] == 'n')
        return DECODE_NO_VALUE; /* null */
    return number_parse(s, n, out);
}

static void set_detail_field(struct decode_result *out, const char *what, const char *s, size_t n)
{
    int shown = n > 32 ? 32 : (int)n;
    snprintf(out->detail, sizeof out->detail, "%s \"%.*s%s\" is a string", what, shown, s,
             n > 32 ? "..." : "");
}

/* ---------- members and paths ---------- */

/* Value token of the last member of object o named key[0..n), or -1. */
static int member_n(const struct json_doc *doc, int o, const char *key, size_t n)
{
    int found = -1, end = json_skip(doc, o);
    for (int k = o + 1; k < end; k = json_skip(doc, k + 1)) {
        const jsmntok_t *t = &doc->tok[k];
        if ((size_t)(t->end - t->start) == n && memcmp(doc->text + t->start, key, n) == 0)
            found = k + 1;
    }
    return found;
}

/* Value token at path below object o: the whole path as one member name
 * first (a key may hold dots), then level by level at the dots; -1: none. */
static int json_find_path(const struct json_doc *doc, int o, const char *path)
{
    int v = member_n(doc, o, path, strlen(path));
    const char *p = path;
    if (v >= 0 || strchr(path, '.') == NULL)
        return v;
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (doc->tok[o].type != JSMN_OBJECT || (v = member_n(doc, o, p, n)) < 0 || !dot)
            return v;
        o = v;
        p = dot + 1;
    }
}

/* Is the dotted path[0..n), or an object above it, in list (paths
 * separated by commas, blanks around them ignored)? */
bool decode_path_listed(const char *list, const char *path, size_t n)
{
    for (const char *p = list ? list : ""; *p != '\0';) {
        const char *comma = strchr(p, ',');
        const char *b = p, *e = comma ? comma : p + strlen(p);
        while (b < e && (*b == ' ' || *b == '\t'))
            b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        size_t m = (size_t)(e - b);
        if (m > 0 && m <= n && memcmp(b, path, m) == 0 && (m == n || path[m] == '.'))
            return true;
        p = comma ? comma + 1 : b + m;
        if (!comma)
            break;
    }
    return false;
}

/* ---------- readings ---------- */

#define FLATTEN_MAX_DEPTH 8

/* A JSON number of epoch time in a stated unit → floor(ms), exactly. */
static bool epoch_number_unit(const char *s, size_t n, enum decode_time_unit unit, int64_t *out_ms)
{
    static const int64_t to_ms[] = {
        [DECODE_TIME_S] = 3, [DECODE_TIME_MS] = 0, [DECODE_TIME_US] = -3, [DECODE_TIME_NS] = -6};
    if (!number_syntax_ok(s, n))
        return false;
    struct decimal d;
    decimal_scan(s, n, &d);
    if (d.n_int + d.n_frac == d.skip) {
        *out_ms = 0;
        return true;
    }
    return decimal_scaled_floor(&d, to_ms[unit], out_ms);
}

bool decode_parse_time_unit(const struct decode_opts *opts, const char *s, size_t n, int64_t *ms)
{
    if (opts->time_unit == DECODE_TIME_AUTO || plat_time_parse_rfc3339(s, n, ms))
        return decode_parse_time(s, n, ms);
    return epoch_number_unit(s, n, opts->time_unit, ms);
}

/* Appends one event; too_many_fields past DECODE_MAX_FIELDS. */
static enum decode_reason add_event(struct decode_result *out, struct decode_event ev)
{
    if (out->n_events == DECODE_MAX_FIELDS)
        return DECODE_TOO_MANY_FIELDS;
    out->ev[out->n_events++] = ev;
    return DECODE_OK;
}

/* value mode: the value member (path) of object o as a number, boolean,
 * numeric string or state word. */
static enum decode_reason value_member(const struct json_doc *doc, int o,
                                       const struct decode_opts *opts, struct decode_result *out)
{
    int v = json_find_path(doc, o, opts->value_field);
    if (v < 0)
        return DECODE_NO_VALUE;
    double value;
    enum decode_reason r = value_of(doc, opts, &doc->tok[v], &value);
    if (r == DECODE_NON_NUMERIC)
        set_detail_field(out, "field", opts->value_field, strlen(opts->value_field));
    return r == DECODE_OK ? add_event(out, (struct decode_event){.value = value}) : r;
}

/* fields_all: a walk over an object's members, flattening nested objects. */
struct fields_walk {
    const struct json_doc *doc;
    const struct decode_opts *opts;
    struct decode_result *out;
    char path[DECODE_NAME_MAX + 1]; /* dotted: for ts_field, keep and drop */
    char name[DECODE_NAME_MAX + 1]; /* with '/': the series name below the topic */
};

/* Does key token k occur again in its object (ending at token end) after
 * it? (The last one wins.) */
static bool repeated_later(const struct json_doc *doc, int k, int end)
{
    for (int j = json_skip(doc, k + 1); j < end; j = json_skip(doc, j + 1)) {
        if (tok_same_text(doc, &doc->tok[k], &doc->tok[j]))
            return true;
    }
    return false;
}

/* One member at w->path[0..n) (depth 0: top level) with value token t. */
/* One member at w->path[0..n) (depth 0: top level) with value token t. Its
 * value is read once; its key names a series level and is checked only
 * where the member counts (a skipped member's key does not matter): not for
 * null, arrays, unflattened objects, or strings skipped by the old rule. */
static enum decode_reason member_event(struct fields_walk *w, const jsmntok_t *key,
                                       const jsmntok_t *t, size_t n, int depth)
{
    const struct decode_opts *o = w->opts;
    struct decode_result *out = w->out;
    double value = 0;
    enum decode_reason r = value_of(w->doc, o, t, &value);
    bool counts =
        r != DECODE_NO_VALUE && (t->type != JSMN_STRING || r == DECODE_OK || o->strict_strings);
    if (counts && !decode_name_ok(w->doc->text + key->start, (size_t)(key->end - key->start)))
        return DECODE_MALFORMED;
    if (!counts ||
        (o->keep_fields && o->keep_fields[0] && !decode_path_listed(o->keep_fields, w->path, n)))
        return DECODE_OK;
    if (t->type == JSMN_STRING && r != DECODE_OK) { /* strict strings */
        set_detail_field(out, "field", w->path, n);
        return r;
    }
    if (r != DECODE_OK)
        return r;
    struct decode_event ev = {.value = value};
    if (depth == 0) { /* the key's own bytes, as before names existed */
        ev.field_off = (uint32_t)key->start;
        ev.field_len = (uint32_t)(key->end - key->start);
    } else {
        if (out->names_len + n > sizeof out->names)
            return DECODE_TOO_MANY_FIELDS;
        memcpy(out->names + out->names_len, w->name, n);
        ev.name_off = out->names_len;
        ev.name_len = (uint32_t)n;
        ev.name_topic = true;
        out->names_len += (uint32_t)n;
    }
    return add_event(out, ev);
}

static enum decode_reason collect_members(struct fields_walk *w, int o, size_t plen, int depth)
{
    const struct json_doc *doc = w->doc;
    int end = json_skip(doc, o);
    for (int k = o + 1; k < end; k = json_skip(doc, k + 1)) {
        const jsmntok_t *key = &doc->tok[k], *t = &doc->tok[k + 1];
        size_t kl = (size_t)(key->end - key->start), n = plen + (plen ? 1u : 0u) + kl;
        if (repeated_later(doc, k, end))
            continue;
        if (n > DECODE_NAME_MAX) {
            snprintf(w->out->detail, sizeof w->out->detail, "a field path is over %d bytes",
                     DECODE_NAME_MAX);
            return DECODE_MALFORMED;
        }
        if (plen) {
            w->path[plen] = '.';
            w->name[plen] = '/';
        }
        memcpy(w->path + n - kl, doc->text + key->start, kl);
        memcpy(w->name + n - kl, doc->text + key->start, kl);
        w->path[n] = '\0';
        if (strcmp(w->path, w->opts->ts_field) == 0 ||
            (w->opts->drop_fields && decode_path_listed(w->opts->drop_fields, w->path, n)))
            continue;
        enum decode_reason r;
        if (t->type == JSMN_OBJECT && w->opts->flatten) {
            if (!decode_name_ok(doc->text + key->start, kl)) /* a level of its members' names */
                return DECODE_MALFORMED;
            if (depth + 1 >= FLATTEN_MAX_DEPTH) {
                snprintf(w->out->detail, sizeof w->out->detail, "objects nested over %d deep",
                         FLATTEN_MAX_DEPTH);
                return DECODE_MALFORMED;
            }
            r = collect_members(w, k + 1, n, depth + 1);
        } else {
            r = member_event(w, key, t, n, depth);
        }
        if (r != DECODE_OK)
            return r;
    }
    return DECODE_OK;
}

/* The time member (path) of object o, if any: absent or null → *has_ts false. */
static enum decode_reason ts_member(const struct json_doc *doc, int o,
                                    const struct decode_opts *opts, int64_t *ts_ms, bool *has_ts)
{
    int v = json_find_path(doc, o, opts->ts_field);
    *has_ts = false;
    if (v < 0)
        return DECODE_OK;
    const jsmntok_t *t = &doc->tok[v];
    const char *s = doc->text + t->start;
    size_t n = (size_t)(t->end - t->start);
    if (t->type == JSMN_PRIMITIVE && n == 4 && memcmp(s, "null", 4) == 0)
        return DECODE_OK;
    if ((t->type != JSMN_PRIMITIVE && t->type != JSMN_STRING) ||
        !decode_parse_time_unit(opts, s, n, ts_ms))
        return DECODE_BAD_TIMESTAMP; /* true, false, "soon", "2026-02-30..." */
    *has_ts = true;
    return DECODE_OK;
}

/* One reading: object o's events (value mode or fields_all), stamped with
 * its time; *has_ts says whether it had one. */
static enum decode_reason decode_reading(const struct json_doc *doc, int o,
                                         const struct decode_opts *opts, int64_t recv_wall_ms,
                                         bool clock_synced, struct decode_result *out, bool *has_ts)
{
    uint32_t first = out->n_events;
    enum decode_reason r;
    if (opts->fields_all) {
        struct fields_walk w = {.doc = doc, .opts = opts, .out = out};
        r = collect_members(&w, o, 0, 0);
        if (r == DECODE_OK && out->n_events == first)
            r = DECODE_NO_VALUE;
    } else {
        r = value_member(doc, o, opts, out);
    }
    int64_t ts_ms = recv_wall_ms;
    if (r == DECODE_OK)
        r = ts_member(doc, o, opts, &ts_ms, has_ts);
    if (r == DECODE_OK && *has_ts && !decode_ts_plausible(opts, ts_ms, recv_wall_ms, clock_synced))
        r = DECODE_BAD_TIMESTAMP;
    for (uint32_t i = first; i < out->n_events; i++)
        out->ev[i].ts_ms = ts_ms;
    return r;
}

/* A JSON array of readings: objects, or bare values at the receive time.
 * Either every element has a time or none has (one flag per message). */
static enum decode_reason decode_array(const struct json_doc *doc, const struct decode_opts *opts,
                                       int64_t recv_wall_ms, bool clock_synced,
                                       struct decode_result *out)
{
    int end = json_skip(doc, 0), idx = 0, with_ts = 0;
    for (int e = 1; e < end; e = json_skip(doc, e), idx++) {
        enum decode_reason r;
        bool has_ts = false;
        if (doc->tok[e].type == JSMN_OBJECT) {
            r = decode_reading(doc, e, opts, recv_wall_ms, clock_synced, out, &has_ts);
        } else {
            double value;
            r = value_of(doc, opts, &doc->tok[e], &value);
            if (r == DECODE_OK)
                r = add_event(out, (struct decode_event){.ts_ms = recv_wall_ms, .value = value});
        }
        if (r != DECODE_OK) {
            if (out->detail[0] == '\0')
                snprintf(out->detail, sizeof out->detail, "element %d: %s", idx,
                         decode_reason_str(r));
            return r;
        }
        with_ts += has_ts;
    }
    if (idx == 0)
        return DECODE_NO_VALUE;
    if (with_ts != 0 && with_ts != idx) {
        snprintf(out->detail, sizeof out->detail, "%d of %d elements have a time", with_ts, idx);
        return DECODE_BAD_TIMESTAMP;
    }
    out->has_ts = with_ts != 0;
    return DECODE_OK;
}

static int64_t add_saturating(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b)
        return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b)
        return INT64_MIN;
    return a + b;
}

bool decode_ts_plausible(const struct decode_opts *opts, int64_t ts_ms, int64_t recv_wall_ms,
                         bool clock_synced)
{
    if (ts_ms < opts->ts_min_ms || ts_ms >= TS_MAX_MS)
        return false;
    return !clock_synced || ts_ms <= add_saturating(recv_wall_ms, opts->max_future_ms);
}

static enum decode_reason decode_object(const struct decode_opts *opts, const char *payload,
                                        size_t len, int64_t recv_wall_ms, bool clock_synced,
                                        struct decode_result *out)
{
    struct json_doc doc;
    doc.text = payload;
    doc.len = len;
    jsmn_parser parser;
    jsmn_init(&parser);
    doc.n_tok = jsmn_parse(&parser, payload, len, doc.tok, DECODE_MAX_TOKENS);
    if (doc.n_tok < 1 || !json_check(&doc))
        return DECODE_MALFORMED;
    if (doc.tok[0].type == JSMN_ARRAY)
        return decode_array(&doc, opts, recv_wall_ms, clock_synced, out);
    if (doc.tok[0].type != JSMN_OBJECT)
        return DECODE_MALFORMED;
    bool has_ts = false;
    enum decode_reason r = decode_reading(&doc, 0, opts, recv_wall_ms, clock_synced, out, &has_ts);
    out->has_ts = has_ts;
    return r;
}

/* A bare payload (trimmed, n > 0): a number, true/false, a state word, or a
 * JSON string holding a number or a state word. */
static enum decode_reason decode_bare(const struct decode_opts *opts, const char *s, size_t n,
                                      double *value, struct decode_result *out)
{
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
        for (size_t i = 1; i + 1 < n; i++) {
            if (s[i] == '"' || s[i] == '\\' || (unsigned char)s[i] < 0x20)
                return DECODE_MALFORMED; /* escapes: never a number or a word */
        }
        enum decode_reason r = string_value(opts, s + 1, n - 2, value);
        if (r == DECODE_NON_NUMERIC)
            set_detail_field(out, "payload", s + 1, n - 2);
        return r;
    }
    enum decode_reason r = number_parse(s, n, value);
    if (r != DECODE_MALFORMED)
        return r;
    if ((n == 4 && memcmp(s, "true", 4) == 0) || (n == 5 && memcmp(s, "false", 5) == 0)) {
        *value = n == 4 ? 1.0 : 0.0;
        return DECODE_OK;
    }
    /* JSON: a state word must be a JSON string ("ON", not ON). */
    return opts->format != DECODE_FMT_JSON && word_lookup(opts->words, s, n, value)
               ? DECODE_OK
               : DECODE_MALFORMED;
}

enum decode_reason decode_begin(const struct decode_opts *opts, size_t len,
                                struct decode_opts *effective, struct decode_result *out)
{
    if (opts != NULL)
        *effective = *opts;
    else
        decode_opts_default(effective);
    if (effective->value_field == NULL)
        effective->value_field = "value";
    if (effective->ts_field == NULL)
        effective->ts_field = "ts";
    if (out == NULL)
        return DECODE_MALFORMED;
    out->has_ts = false;
    out->n_events = 0;
    out->detail[0] = '\0';
    out->names_len = 0;
    return len > effective->max_payload ? DECODE_OVERSIZED : DECODE_OK;
}

enum decode_reason decode_payload(const struct decode_opts *opts, const char *payload, size_t len,
                                  int64_t recv_wall_ms, bool clock_synced,
                                  struct decode_result *out)
{
    struct decode_opts effective;
    enum decode_reason begin = decode_begin(opts, len, &effective, out);
    if (begin != DECODE_OK)
        return begin;
    opts = &effective;
    /* jsmn counts in int; a NUL would end its scan early. */
    if (payload == NULL || len > (size_t)INT32_MAX || memchr(payload, '\0', len) != NULL)
        return DECODE_MALFORMED;

    size_t first = 0, last = len;
    while (first < last && is_json_space(payload[first]))
        first++;
    while (last > first && is_json_space(payload[last - 1]))
        last--;
    if (first == last)
        return DECODE_MALFORMED;
    bool structured = payload[first] == '{' || payload[first] == '[';
    if (structured && opts->format == DECODE_FMT_NUMBER) {
        snprintf(out->detail, sizeof out->detail, "format = number: expected one bare value");
        return DECODE_MALFORMED;
    }
    if (structured) {
        enum decode_reason r = decode_object(opts, payload, len, recv_wall_ms, clock_synced, out);
        if (r != DECODE_OK) {
            out->n_events = 0;
            out->names_len = 0;
            out->has_ts = false;
        }
        return r;
    }

    double value;
    enum decode_reason r = decode_bare(opts, payload + first, last - first, &value, out);
    if (r != DECODE_OK)
        return r;
    out->ev[0] = (struct decode_event){.ts_ms = recv_wall_ms, .value = value};
    out->n_events = 1;
    return DECODE_OK;
}

/* ---------- state words ---------- */

static bool word_char_ok(char c)
{
    return (unsigned char)c > 0x20 && c != 0x7f && c != ',' && c != '=' && c != '"' && c != '\\';
}

/* One "WORD=NUMBER" of n bytes into *w. */
static bool word_parse(const char *s, size_t n, struct decode_word *w, char *err, size_t errlen)
{
    const char *eq = memchr(s, '=', n);
    size_t wl = eq ? (size_t)(eq - s) : n;
    for (size_t i = 0; i < wl; i++) {
        if (!word_char_ok(s[i])) {
            snprintf(err, errlen, "'%.*s': a word has no white space, quote, ',' or '='",
                     (int)(n > 40 ? 40 : n), s);
            return false;
        }
    }
    double v;
    if (eq == NULL || wl == 0 || wl > DECODE_WORD_MAX ||
        number_parse(eq + 1, n - wl - 1, &v) != DECODE_OK || number_syntax_ok(s, wl)) {
        snprintf(err, errlen,
                 "'%.*s': expected WORD=NUMBER (a word of 1..%d bytes that is not a number)",
                 (int)(n > 40 ? 40 : n), s, DECODE_WORD_MAX);
        return false;
    }
    memcpy(w->text, s, wl);
    w->len = (uint32_t)wl;
    w->value = v;
    return true;
}

bool decode_words_parse(const char *spec, struct decode_words *out, char *err, size_t errlen)
{
    static struct decode_words zero;
    struct decode_words words = zero;
    char dummy[8];
    if (err == NULL || errlen == 0) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err[0] = '\0';
    if (spec == NULL || out == NULL)
        return false;
    for (const char *p = spec; *p != '\0';) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (words.n == DECODE_MAX_WORDS) {
            snprintf(err, errlen, "more than %d words", DECODE_MAX_WORDS);
            return false;
        }
        if (!word_parse(p, n, &words.w[words.n], err, errlen))
            return false;
        const struct decode_word *w = &words.w[words.n];
        double ignored;
        if (word_lookup(&words, w->text, w->len, &ignored)) {
            snprintf(err, errlen, "'%.*s' is given twice", (int)w->len, w->text);
            return false;
        }
        words.n++;
        p += n;
        if (*p == ',' && *++p == '\0') {
            snprintf(err, errlen, "a ',' with no word after it");
            return false;
        }
    }
    *out = words;
    return true;
}

size_t decode_event_name(const struct decode_result *res, const struct decode_event *ev,
                         const char *topic, size_t topic_len, const char *payload, char *buf,
                         size_t cap)
{
    const char *tail = NULL;
    size_t tail_len = 0, n = 0;
    bool under_topic = true;
    if (ev->name_len > 0) {
        tail = res->names + ev->name_off;
        tail_len = ev->name_len;
        under_topic = ev->name_topic;
    } else if (ev->field_len > 0) {
        tail = payload + ev->field_off;
        tail_len = ev->field_len;
    }
    size_t need = (under_topic ? topic_len : 0) + (under_topic && tail ? 1 : 0) + tail_len;
    if (need == 0 || need > cap)
        return 0;
    if (under_topic) {
        memcpy(buf, topic, topic_len);
        n = topic_len;
        if (tail)
            buf[n++] = '/';
    }
    if (tail) {
        memcpy(buf + n, tail, tail_len);
        n += tail_len;
    }
    return n;
}
