/*
 * plat_json — JSON reading over jsmn (design in plat_json.h).
 *
 * jsmn is header-only: it is compiled here, static (JSMN_STATIC), strict
 * (JSMN_STRICT: primitives must start like a number or literal, keys must be
 * strings) and with parent links (JSMN_PARENT_LINKS), into the caller's
 * plat_json_tok array, whose layout the static assertions below tie to
 * jsmntok_t.
 *
 * The strict check (check_document) walks the tokens in document order with
 * a stack of the containers still open and `pos`, the first byte not yet
 * accounted for. Before each token it closes the containers that end before
 * the token begins (only white space may precede a closing bracket), works
 * out from the token's parent which separator must stand before it (none for
 * a first element or key, ',' for a later one, ':' before a member's value),
 * and checks the gap. Leaves are checked in place (literal or number grammar,
 * no raw control byte in a string); containers are pushed.
 */
#include "plat_json.h"

#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

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

_Static_assert(sizeof(struct plat_json_tok) == sizeof(jsmntok_t), "token size");
_Static_assert(offsetof(struct plat_json_tok, type) == offsetof(jsmntok_t, type), "type");
_Static_assert(offsetof(struct plat_json_tok, start) == offsetof(jsmntok_t, start), "start");
_Static_assert(offsetof(struct plat_json_tok, end) == offsetof(jsmntok_t, end), "end");
_Static_assert(offsetof(struct plat_json_tok, size) == offsetof(jsmntok_t, size), "size");
_Static_assert(offsetof(struct plat_json_tok, parent) == offsetof(jsmntok_t, parent), "parent");
_Static_assert(sizeof(enum plat_json_type) == sizeof(jsmntype_t), "type size");
_Static_assert((int)PLAT_JSON_OBJECT == (int)JSMN_OBJECT &&
                   (int)PLAT_JSON_ARRAY == (int)JSMN_ARRAY &&
                   (int)PLAT_JSON_STRING == (int)JSMN_STRING &&
                   (int)PLAT_JSON_PRIMITIVE == (int)JSMN_PRIMITIVE,
               "type values");

/* ---------- lexical rules ---------- */

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

static size_t digits_at(const char *s, size_t n, size_t i)
{
    size_t k = i;

    while (k < n && s[k] >= '0' && s[k] <= '9')
        k++;
    return k - i;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool is_number(const char *s, size_t n)
{
    size_t i = n > 0 && s[0] == '-' ? 1 : 0;
    size_t run = digits_at(s, n, i);

    if (run == 0 || (run > 1 && s[i] == '0'))
        return false;
    i += run;
    if (i < n && s[i] == '.') {
        run = digits_at(s, n, ++i);
        if (run == 0)
            return false;
        i += run;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        run = digits_at(s, n, i);
        if (run == 0)
            return false;
        i += run;
    }
    return i == n;
}

static bool raw_is(const char *s, size_t n, const char *word)
{
    size_t w = strlen(word);

    return n == w && memcmp(s, word, w) == 0;
}

/* text[from, to) is white space around exactly one sep ('\0': no sep). */
static bool gap_ok(const char *text, size_t from, size_t to, char sep)
{
    bool sep_seen = sep == '\0';

    if (to < from)
        return false;
    for (size_t i = from; i < to; i++) {
        if (is_space(text[i]))
            continue;
        if (sep_seen || text[i] != sep)
            return false;
        sep_seen = true;
    }
    return sep_seen;
}

/* ---------- the strict check ---------- */

struct open_container {
    int tok;
    bool expecting_first; /* no element or member yet */
};

struct checker {
    const struct plat_json *doc;
    struct open_container open[PLAT_JSON_MAX_DEPTH];
    int depth;
    size_t pos;
};

/* Where token t's text begins and ends, quotes of a string included. */
static size_t outer_start(const struct plat_json_tok *t)
{
    return (size_t)t->start - (t->type == PLAT_JSON_STRING ? 1u : 0u);
}

static size_t outer_end(const struct plat_json_tok *t)
{
    return (size_t)t->end + (t->type == PLAT_JSON_STRING ? 1u : 0u);
}

/* Closes every open container ending at or before byte `before`. */
static bool close_before(struct checker *c, size_t before)
{
    while (c->depth > 0) {
        const struct plat_json_tok *t = &c->doc->tok[c->open[c->depth - 1].tok];

        if ((size_t)t->end > before)
            return true;
        if (!gap_ok(c->doc->text, c->pos, (size_t)t->end - 1, '\0'))
            return false;
        c->pos = (size_t)t->end;
        c->depth--;
    }
    return true;
}

/* The separator due before token i; false if i does not belong where it
 * stands (a second top-level value, a key that is not a string). */
static bool separator_for(struct checker *c, int i, char *sep)
{
    const struct plat_json_tok *t = &c->doc->tok[i];
    struct open_container *top = c->depth > 0 ? &c->open[c->depth - 1] : NULL;
    const struct plat_json_tok *parent;

    if (t->parent < 0) {
        *sep = '\0';
        return i == 0 && top == NULL;
    }
    if (top == NULL || t->parent >= i)
        return false;
    parent = &c->doc->tok[t->parent];
    if (parent->type == PLAT_JSON_STRING) { /* a member's value, after its key */
        *sep = ':';
        return parent->parent == top->tok;
    }
    if (t->parent != top->tok)
        return false;
    *sep = top->expecting_first ? '\0' : ',';
    top->expecting_first = false;
    return true;
}

/* A string or primitive; keys are strings with exactly one value. */
static bool leaf_ok(const struct plat_json *doc, const struct plat_json_tok *t, bool is_key)
{
    const char *s = doc->text + t->start;
    size_t n = (size_t)(t->end - t->start);

    if (t->type == PLAT_JSON_STRING) {
        if (t->size != (is_key ? 1 : 0))
            return false;
        for (size_t k = 0; k < n; k++) {
            if ((unsigned char)s[k] < 0x20)
                return false;
        }
        return true;
    }
    return !is_key && t->type == PLAT_JSON_PRIMITIVE && t->size == 0 &&
           (raw_is(s, n, "true") || raw_is(s, n, "false") || raw_is(s, n, "null") ||
            is_number(s, n));
}

static bool check_token(struct checker *c, int i)
{
    const struct plat_json *doc = c->doc;
    const struct plat_json_tok *t = &doc->tok[i];
    bool is_key = t->parent >= 0 && doc->tok[t->parent].type == PLAT_JSON_OBJECT;
    char sep;

    if (t->start < (t->type == PLAT_JSON_STRING ? 1 : 0) || t->end < t->start)
        return false;
    if (!close_before(c, outer_start(t)) || !separator_for(c, i, &sep) ||
        !gap_ok(doc->text, c->pos, outer_start(t), sep))
        return false;
    if (t->type == PLAT_JSON_OBJECT || t->type == PLAT_JSON_ARRAY) {
        if (is_key || c->depth == PLAT_JSON_MAX_DEPTH)
            return false;
        c->open[c->depth++] = (struct open_container){.tok = i, .expecting_first = true};
        c->pos = (size_t)t->start + 1;
        return true;
    }
    if (!leaf_ok(doc, t, is_key))
        return false;
    c->pos = outer_end(t);
    return true;
}

static bool check_document(const struct plat_json *doc)
{
    struct checker c = {.doc = doc, .depth = 0, .pos = 0};

    for (int i = 0; i < doc->n; i++) {
        if (!check_token(&c, i))
            return false;
    }
    return doc->n > 0 && close_before(&c, SIZE_MAX) && gap_ok(doc->text, c.pos, doc->len, '\0');
}

/* ---------- tokenising ---------- */

/* True if the text's one value is a bare primitive (number or literal):
 * jsmn's strict mode wants a delimiter after a primitive, so at the end of
 * the text it reports "partial"; such a text is tokenised here instead. The
 * primitive's span is [*start, *end), white space around it excluded. */
static bool bare_primitive(const char *text, size_t len, size_t *start, size_t *end)
{
    size_t a = 0, b = len;

    while (a < b && is_space(text[a]))
        a++;
    while (b > a && is_space(text[b - 1]))
        b--;
    *start = a;
    *end = b;
    return a < b && text[a] != '{' && text[a] != '[' && text[a] != '"';
}

el_status plat_json_count(const char *text, size_t len, size_t *count)
{
    jsmn_parser parser;
    size_t start, end;
    int n;

    *count = 0;
    if (text == NULL || len > INT_MAX || memchr(text, '\0', len) != NULL)
        return EL_INVAL;
    if (bare_primitive(text, len, &start, &end)) {
        *count = 1;
        return EL_OK;
    }
    jsmn_init(&parser);
    n = jsmn_parse(&parser, text, len, NULL, 0);
    if (n <= 0)
        return EL_INVAL;
    *count = (size_t)n;
    return EL_OK;
}

el_status plat_json_parse(struct plat_json *doc, const char *text, size_t len,
                          struct plat_json_tok *tok, size_t cap)
{
    jsmn_parser parser;
    size_t start, end;
    int n;

    doc->text = text;
    doc->len = len;
    doc->tok = tok;
    doc->n = 0;
    if (text == NULL || tok == NULL || len > INT_MAX || memchr(text, '\0', len) != NULL)
        return EL_INVAL;
    if (cap > INT_MAX)
        cap = INT_MAX;
    if (bare_primitive(text, len, &start, &end)) {
        if (cap == 0)
            return EL_NOMEM;
        tok[0] = (struct plat_json_tok){PLAT_JSON_PRIMITIVE, (int)start, (int)end, 0, -1};
        n = 1;
    } else {
        jsmn_init(&parser);
        n = jsmn_parse(&parser, text, len, (jsmntok_t *)(void *)tok, (unsigned int)cap);
    }
    if (n == JSMN_ERROR_NOMEM)
        return EL_NOMEM;
    if (n <= 0)
        return EL_INVAL;
    doc->n = n;
    if (!check_document(doc)) {
        doc->n = 0;
        return EL_INVAL;
    }
    return EL_OK;
}

/* ---------- navigation ---------- */

static const struct plat_json_tok *tok_at(const struct plat_json *doc, int i)
{
    return doc != NULL && i >= 0 && i < doc->n ? &doc->tok[i] : NULL;
}

enum plat_json_type plat_json_type(const struct plat_json *doc, int i)
{
    const struct plat_json_tok *t = tok_at(doc, i);

    return t != NULL ? t->type : PLAT_JSON_NONE;
}

int plat_json_skip(const struct plat_json *doc, int i)
{
    const struct plat_json_tok *t = tok_at(doc, i);
    int j = i + 1;

    if (t == NULL)
        return doc != NULL ? doc->n : 0;
    /* Tokens nest by byte range: everything inside t starts before its end. */
    while (j < doc->n && doc->tok[j].start < t->end)
        j++;
    return j;
}

const char *plat_json_raw(const struct plat_json *doc, int i, size_t *len)
{
    const struct plat_json_tok *t = tok_at(doc, i);

    *len = t != NULL ? (size_t)(t->end - t->start) : 0;
    return t != NULL ? doc->text + t->start : NULL;
}

bool plat_json_eq(const struct plat_json *doc, int i, const char *s)
{
    size_t n;
    const char *raw = plat_json_raw(doc, i, &n);

    return raw != NULL && raw_is(raw, n, s);
}

int plat_json_count_children(const struct plat_json *doc, int container)
{
    enum plat_json_type type = plat_json_type(doc, container);

    return type == PLAT_JSON_OBJECT || type == PLAT_JSON_ARRAY ? doc->tok[container].size : 0;
}

int plat_json_first(const struct plat_json *doc, int container)
{
    return plat_json_count_children(doc, container) > 0 ? container + 1 : -1;
}

int plat_json_next(const struct plat_json *doc, int container, int i)
{
    int j;

    if (tok_at(doc, i) == NULL || doc->tok[i].parent != container)
        return -1;
    /* An object's key is followed by its value; the next key comes after it. */
    j = plat_json_skip(doc, plat_json_type(doc, container) == PLAT_JSON_OBJECT ? i + 1 : i);
    return j < doc->n && doc->tok[j].parent == container ? j : -1;
}

int plat_json_member(const struct plat_json *doc, int obj, const char *key)
{
    int found = -1;

    if (plat_json_type(doc, obj) != PLAT_JSON_OBJECT)
        return -1;
    for (int k = plat_json_first(doc, obj); k >= 0; k = plat_json_next(doc, obj, k)) {
        if (plat_json_eq(doc, k, key) && k + 1 < doc->n)
            found = k + 1;
    }
    return found;
}

/* ---------- values ---------- */

static int hex_digit(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* The four hex digits at s (end bounds them) as a number; -1 if malformed. */
static long hex4(const char *s, const char *end)
{
    long v = 0;

    if (end - s < 4)
        return -1;
    for (int k = 0; k < 4; k++) {
        int d = hex_digit(s[k]);

        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Code point cp as UTF-8 into b; returns the byte count (1..4). */
static size_t utf8_encode(unsigned long cp, unsigned char b[4])
{
    if (cp < 0x80) {
        b[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        b[0] = (unsigned char)(0xC0 | (cp >> 6));
        b[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        b[0] = (unsigned char)(0xE0 | (cp >> 12));
        b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    b[0] = (unsigned char)(0xF0 | (cp >> 18));
    b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    b[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* The \u escape whose hex digits start at *ps: a surrogate pair is joined,
 * a lone surrogate (or bad hex) becomes U+FFFD. Advances *ps past it. */
static unsigned long unicode_escape(const char **ps, const char *end)
{
    const char *s = *ps;
    long cp = hex4(s, end);
    long low;

    if (cp < 0)
        return 0xFFFD;
    s += 4;
    if (cp >= 0xD800 && cp < 0xDC00 && end - s >= 6 && s[0] == '\\' && s[1] == 'u') {
        low = hex4(s + 2, end);
        if (low >= 0xDC00 && low < 0xE000) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            s += 6;
        }
    }
    *ps = s;
    return cp >= 0xD800 && cp < 0xE000 ? 0xFFFD : (unsigned long)cp;
}

/* One character (an escape decoded) at *ps into b; returns its byte count. */
static size_t next_char(const char **ps, const char *end, unsigned char b[4])
{
    const char *s = *ps;
    char esc;

    if (*s != '\\' || s + 1 >= end) {
        b[0] = (unsigned char)*s;
        *ps = s + 1;
        return 1;
    }
    esc = s[1];
    *ps = s + 2;
    switch (esc) {
    case 'n': b[0] = '\n'; return 1;
    case 't': b[0] = '\t'; return 1;
    case 'r': b[0] = '\r'; return 1;
    case 'b': b[0] = '\b'; return 1;
    case 'f': b[0] = '\f'; return 1;
    case 'u': return utf8_encode(unicode_escape(ps, end), b);
    default: b[0] = (unsigned char)esc; return 1; /* \" \\ \/ */
    }
}

/* The longest prefix of s[0..n) that does not end inside a UTF-8 sequence
 * (raw bytes of the text are copied one at a time). */
static size_t whole_utf8(const char *s, size_t n)
{
    size_t i = n, need;
    unsigned char lead;

    while (i > 0 && n - i < 3 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
        i--;
    if (i == 0)
        return n;
    lead = (unsigned char)s[i - 1];
    need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    return n - (i - 1) < need ? i - 1 : n;
}

el_status plat_json_string(const struct plat_json *doc, int i, char *out, size_t cap, size_t *len)
{
    const char *s, *end;
    size_t n = 0, raw_len;
    el_status st = EL_OK;

    if (len != NULL)
        *len = 0;
    if (cap > 0)
        out[0] = '\0';
    if (plat_json_type(doc, i) != PLAT_JSON_STRING)
        return EL_INVAL;
    s = plat_json_raw(doc, i, &raw_len);
    end = s + raw_len;
    while (s < end) {
        unsigned char b[4];
        size_t k = next_char(&s, end, b);

        if (n + k >= cap) {
            st = EL_NOMEM;
            n = whole_utf8(out, n);
            break;
        }
        memcpy(out + n, b, k);
        n += k;
    }
    if (cap > 0)
        out[n] = '\0';
    if (len != NULL)
        *len = n;
    return st;
}

el_status plat_json_int64(const struct plat_json *doc, int i, int64_t *out)
{
    size_t n, k;
    const char *s = plat_json_raw(doc, i, &n);
    bool negative;
    uint64_t magnitude = 0, limit;

    if (plat_json_type(doc, i) != PLAT_JSON_PRIMITIVE || !is_number(s, n) ||
        memchr(s, '.', n) != NULL || memchr(s, 'e', n) != NULL || memchr(s, 'E', n) != NULL)
        return EL_INVAL;
    negative = s[0] == '-';
    limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (k = negative ? 1 : 0; k < n; k++) {
        uint64_t digit = (uint64_t)(s[k] - '0');

        if (magnitude > (limit - digit) / 10)
            return EL_INVAL;
        magnitude = magnitude * 10 + digit;
    }
    if (negative)
        *out = magnitude == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)magnitude;
    else
        *out = (int64_t)magnitude;
    return EL_OK;
}

el_status plat_json_double(const struct plat_json *doc, int i, double *out)
{
    char buf[PLAT_JSON_NUMBER_MAX + 1];
    size_t n;
    const char *s = plat_json_raw(doc, i, &n);

    if (plat_json_type(doc, i) != PLAT_JSON_PRIMITIVE || n > PLAT_JSON_NUMBER_MAX ||
        !is_number(s, n))
        return EL_INVAL;
    memcpy(buf, s, n);
    buf[n] = '\0';
    *out = strtod(buf, NULL); /* the grammar was checked: strtod takes it all */
    return EL_OK;
}

el_status plat_json_bool(const struct plat_json *doc, int i, bool *out)
{
    if (plat_json_type(doc, i) != PLAT_JSON_PRIMITIVE)
        return EL_INVAL;
    if (plat_json_eq(doc, i, "true"))
        *out = true;
    else if (plat_json_eq(doc, i, "false"))
        *out = false;
    else
        return EL_INVAL;
    return EL_OK;
}

bool plat_json_is_null(const struct plat_json *doc, int i)
{
    return plat_json_type(doc, i) == PLAT_JSON_PRIMITIVE && plat_json_eq(doc, i, "null");
}
