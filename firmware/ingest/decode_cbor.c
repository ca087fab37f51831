/*
 * decode_cbor — CBOR payloads (forms, naming and bounds in decode_cbor.h).
 *
 * Design: two passes over bounded state on the stack, no recursion.
 *   1. scan(): cbor_stream_decode (libcbor's stateless streaming decoder)
 *      reads one head per call; its callbacks only note what they saw
 *      (struct item). The loop keeps an explicit stack of open containers
 *      (struct frame, CBOR_MAX_DEPTH) and appends one token per data item
 *      (struct tok, DECODE_MAX_TOKENS) in document order. A container's
 *      token learns where its subtree ends (next) when it closes, so the
 *      second pass steps over a member in O(1). Well-formedness is checked
 *      here: map keys are text, the chunks of an indefinite-length string
 *      are definite strings of its type, a break closes an indefinite-length
 *      item only, a tag is followed by an item, exactly one item in all.
 *      libcbor hands lengths and counts over as size_t: head_fits() first
 *      rejects an argument larger than the bytes left, so none wraps on a
 *      32-bit board and no count exceeds what the payload could hold.
 *   2. The readings: the top map, or each map of a top array, read as
 *      decode_payload reads a JSON object (value mode or fields_all); nested
 *      maps are flattened with a second explicit stack (struct level) and a
 *      prefix buffer. Text values go through decode_text_value and times
 *      through decode_parse_time_unit (decode.c: the section's time_unit;
 *      the epoch tag 1 means seconds), numbers printed as decimal text
 *      first (a float as its shortest round-trip form), so CBOR and JSON
 *      agree to the millisecond.
 * The first error stops the message: its reason and out->detail.
 *
 * Threading: pure; any thread; reentrant (the callbacks table is const).
 */
#include "decode_cbor.h"

#include <cbor/callbacks.h>
#include <cbor/streaming.h>

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEXT_MAX DECODE_NAME_MAX /* bytes of a chunked text string */
#define SHOWN_MAX 32             /* bytes of a key or string quoted in a detail */
#define EPOCH_S_MAX 1e11         /* tag 1 at or beyond this many seconds: absurd */

enum kind {
    K_NONE,
    K_UINT,
    K_NEGINT, /* -1 - u */
    K_FLOAT,
    K_BOOL,
    K_NULL,
    K_UNDEF,
    K_BYTES,
    K_TEXT,
    K_ARRAY,
    K_MAP,
    K_TAG,
    K_BREAK
};

enum tag { T_NONE, T_EPOCH, T_BIGNUM, T_NEG_BIGNUM };

/* What one cbor_stream_decode call saw. */
struct item {
    enum kind kind;
    bool indef;    /* an indefinite-length string, array or map */
    uint64_t u;    /* integer magnitude, count, tag number, boolean */
    double d;      /* a float */
    const void *s; /* a definite string's bytes */
    size_t n;      /* and their number */
};

/* One data item of the payload, in document order. The chunks of an
 * indefinite-length string are the tokens between it and its next. */
struct tok {
    uint8_t kind;  /* enum kind */
    uint8_t tag;   /* enum tag: the innermost tag on the item that matters */
    bool indef;    /* a chunked string */
    uint32_t off;  /* byte offset of the item's first head (its first tag's) */
    uint32_t next; /* index of the token after the item and its children */
    uint32_t n;    /* string: bytes (all chunks); array: items; map: pairs */
    uint32_t str;  /* a definite string: offset of its bytes */
    union {
        uint64_t u;
        double d;
    } v;
};

/* An open container while scanning. */
struct frame {
    uint32_t tok;
    uint64_t left; /* children still to come (definite) */
    uint64_t seen; /* children so far (a map's keys and values) */
    bool indef;
    uint8_t kind;
};

struct dec {
    const unsigned char *p;
    size_t len;
    const struct decode_opts *opts;
    struct decode_result *out;
    enum decode_reason reason;
    uint32_t reading; /* 1-based number in a top array; 0 otherwise */
    uint32_t n_tok;
    struct item item;
    struct tok tok[DECODE_MAX_TOKENS];
};

__attribute__((format(printf, 3, 4))) static bool fail(struct dec *d, enum decode_reason reason,
                                                       const char *fmt, ...)
{
    char *dst = d->out->detail;
    size_t cap = sizeof d->out->detail, k = 0;
    if (d->reading > 0) {
        int w = snprintf(dst, cap, "reading %" PRIu32 ": ", d->reading);
        k = w > 0 && (size_t)w < cap ? (size_t)w : 0;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst + k, cap - k, fmt, ap);
    va_end(ap);
    d->reason = reason;
    return false;
}

/* "<what> "<s, at most SHOWN_MAX bytes, control bytes as '?'>[...]" <tail>" */
static bool fail_quoted(struct dec *d, enum decode_reason reason, const char *what, const char *s,
                        size_t n, const char *tail)
{
    char shown[SHOWN_MAX + 1];
    size_t k = n > SHOWN_MAX ? SHOWN_MAX : n;
    for (size_t i = 0; i < k; i++)
        shown[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    shown[k] = '\0';
    return fail(d, reason, "%s \"%s%s\" %s", what, shown, n > SHOWN_MAX ? "..." : "", tail);
}

/* ---------- libcbor's callbacks: note the item ---------- */

static void note(void *ctx, enum kind kind, uint64_t u, double dv)
{
    *(struct item *)ctx = (struct item){.kind = kind, .u = u, .d = dv};
}

static void note_string(void *ctx, enum kind kind, const void *s, size_t n)
{
    *(struct item *)ctx = (struct item){.kind = kind, .s = s, .n = n};
}

static void note_indef(void *ctx, enum kind kind)
{
    *(struct item *)ctx = (struct item){.kind = kind, .indef = true};
}

#define CB_INT(name, type, kind)                                                                   \
    static void name(void *ctx, type v)                                                            \
    {                                                                                              \
        note(ctx, kind, v, 0.0);                                                                   \
    }
CB_INT(cb_uint8, uint8_t, K_UINT)
CB_INT(cb_uint16, uint16_t, K_UINT)
CB_INT(cb_uint32, uint32_t, K_UINT)
CB_INT(cb_uint64, uint64_t, K_UINT)
CB_INT(cb_negint8, uint8_t, K_NEGINT)
CB_INT(cb_negint16, uint16_t, K_NEGINT)
CB_INT(cb_negint32, uint32_t, K_NEGINT)
CB_INT(cb_negint64, uint64_t, K_NEGINT)
CB_INT(cb_tag, uint64_t, K_TAG)
CB_INT(cb_array, size_t, K_ARRAY)
CB_INT(cb_map, size_t, K_MAP)
CB_INT(cb_bool, bool, K_BOOL)
#undef CB_INT

static void cb_float(void *ctx, float v)
{
    note(ctx, K_FLOAT, 0, (double)v);
}

static void cb_double(void *ctx, double v)
{
    note(ctx, K_FLOAT, 0, v);
}

static void cb_bytes(void *ctx, cbor_data s, size_t n)
{
    note_string(ctx, K_BYTES, s, n);
}

static void cb_text(void *ctx, cbor_data s, size_t n)
{
    note_string(ctx, K_TEXT, s, n);
}

static void cb_bytes_start(void *ctx)
{
    note_indef(ctx, K_BYTES);
}

static void cb_text_start(void *ctx)
{
    note_indef(ctx, K_TEXT);
}

static void cb_array_start(void *ctx)
{
    note_indef(ctx, K_ARRAY);
}

static void cb_map_start(void *ctx)
{
    note_indef(ctx, K_MAP);
}

static void cb_null(void *ctx)
{
    note(ctx, K_NULL, 0, 0.0);
}

static void cb_undefined(void *ctx)
{
    note(ctx, K_UNDEF, 0, 0.0);
}

static void cb_break(void *ctx)
{
    note(ctx, K_BREAK, 0, 0.0);
}

static const struct cbor_callbacks callbacks = {
    .uint8 = cb_uint8,
    .uint16 = cb_uint16,
    .uint32 = cb_uint32,
    .uint64 = cb_uint64,
    .negint8 = cb_negint8,
    .negint16 = cb_negint16,
    .negint32 = cb_negint32,
    .negint64 = cb_negint64,
    .byte_string_start = cb_bytes_start,
    .byte_string = cb_bytes,
    .string = cb_text,
    .string_start = cb_text_start,
    .indef_array_start = cb_array_start,
    .array_start = cb_array,
    .indef_map_start = cb_map_start,
    .map_start = cb_map,
    .tag = cb_tag,
    .float2 = cb_float,
    .float4 = cb_float,
    .float8 = cb_double,
    .undefined = cb_undefined,
    .null = cb_null,
    .boolean = cb_bool,
    .indef_break = cb_break,
};

/* ---------- pass 1: the items ---------- */

/* False if the head at p (left bytes) carries a string length, or an array
 * or map count, larger than the bytes after the head could hold. */
static bool head_fits(const unsigned char *p, size_t left)
{
    unsigned major = p[0] >> 5, info = p[0] & 0x1fu;
    if (major < 2 || major > 5 || info > 27)
        return true;
    size_t width = info < 24 ? 0 : (size_t)1 << (info - 24);
    if (left < 1 + width)
        return true; /* libcbor says it is truncated */
    uint64_t arg = info < 24 ? info : 0;
    for (size_t i = 1; i <= width; i++)
        arg = arg << 8 | p[i];
    uint64_t room = left - 1 - width;
    return major == 5 ? arg <= room / 2 : arg <= room;
}

/* The item just read is complete (top_closed: the top frame itself ended):
 * counts it in its parent and closes every definite container it fills. */
static void item_done(struct dec *d, struct frame *stack, int *depth, bool top_closed)
{
    for (;;) {
        if (top_closed) {
            const struct frame *c = &stack[*depth - 1];
            struct tok *t = &d->tok[c->tok];
            t->next = d->n_tok;
            if (t->kind == K_ARRAY)
                t->n = (uint32_t)c->seen;
            else if (t->kind == K_MAP)
                t->n = (uint32_t)(c->seen / 2);
            (*depth)--;
        }
        if (*depth == 0)
            return;
        struct frame *f = &stack[*depth - 1];
        f->seen++;
        if (f->indef || --f->left > 0)
            return;
        top_closed = true;
    }
}

static uint8_t tag_of(uint64_t number)
{
    return number == 1 ? T_EPOCH : number == 2 ? T_BIGNUM : number == 3 ? T_NEG_BIGNUM : T_NONE;
}

/* Reads one head at *pos into d->item; false (malformed) if there is none. */
static bool read_head(struct dec *d, size_t *pos)
{
    size_t at = *pos;
    if (at >= d->len || !head_fits(d->p + at, d->len - at))
        return fail(d, DECODE_MALFORMED, "byte %zu: truncated", at);
    d->item = (struct item){.kind = K_NONE};
    struct cbor_decoder_result r = cbor_stream_decode(d->p + at, d->len - at, &callbacks, &d->item);
    if (r.status == CBOR_DECODER_NEDATA)
        return fail(d, DECODE_MALFORMED, "byte %zu: truncated", at);
    if (r.status != CBOR_DECODER_FINISHED || r.read == 0 || d->item.kind == K_NONE)
        return fail(d, DECODE_MALFORMED, "byte %zu: reserved or unassigned head 0x%02x", at,
                    d->p[at]);
    *pos = at + r.read;
    return true;
}

/* Checks a data item against its container: a chunk of a string, a key. */
static bool item_fits(struct dec *d, const struct frame *f, size_t at, bool tagged)
{
    const struct item *it = &d->item;
    if (f != NULL && (f->kind == K_TEXT || f->kind == K_BYTES)) {
        struct tok *s = &d->tok[f->tok];
        if (tagged || it->kind != f->kind || it->indef)
            return fail(d, DECODE_MALFORMED,
                        "byte %zu: not a chunk of the indefinite-length string", at);
        s->n += (uint32_t)it->n; /* <= len <= INT32_MAX */
        if (s->kind == K_TEXT && s->n > TEXT_MAX)
            return fail(d, DECODE_MALFORMED,
                        "byte %zu: indefinite-length text longer than %d bytes", at, TEXT_MAX);
    } else if (f != NULL && f->kind == K_MAP && f->seen % 2 == 0 && it->kind != K_TEXT) {
        return fail(d, DECODE_MALFORMED, "byte %zu: map key is not a text string", at);
    }
    if (d->n_tok == DECODE_MAX_TOKENS)
        return fail(d, DECODE_MALFORMED, "byte %zu: more than %d items", at, DECODE_MAX_TOKENS);
    return true;
}

/* Pass 1: the one item of the payload into d->tok. */
static bool scan(struct dec *d)
{
    struct frame stack[CBOR_MAX_DEPTH];
    int depth = 0;
    size_t pos = 0, tag_at = 0;
    uint8_t tag = T_NONE;
    bool tagged = false;
    do {
        size_t at = pos;
        if (!read_head(d, &pos))
            return false;
        const struct item *it = &d->item;
        struct frame *f = depth > 0 ? &stack[depth - 1] : NULL;
        if (it->kind == K_TAG) {
            if (!tagged)
                tag_at = at;
            tagged = true;
            tag = tag_of(it->u);
            continue;
        }
        if (it->kind == K_BREAK) {
            if (tagged || f == NULL || !f->indef || (f->kind == K_MAP && f->seen % 2 == 1))
                return fail(d, DECODE_MALFORMED, "byte %zu: unexpected break", at);
            item_done(d, stack, &depth, true);
            continue;
        }
        if (!item_fits(d, f, tagged ? tag_at : at, tagged))
            return false;
        uint32_t i = d->n_tok++;
        struct tok *t = &d->tok[i];
        *t = (struct tok){.kind = (uint8_t)it->kind,
                          .tag = tag,
                          .indef = it->indef,
                          .off = (uint32_t)(tagged ? tag_at : at),
                          .next = i + 1,
                          .n = (uint32_t)it->n,
                          .str = it->s ? (uint32_t)((const unsigned char *)it->s - d->p) : 0};
        if (it->kind == K_FLOAT)
            t->v.d = it->d;
        else
            t->v.u = it->u;
        tagged = false;
        tag = T_NONE;
        bool container = it->kind == K_ARRAY || it->kind == K_MAP || it->indef;
        if (container) {
            if (depth == CBOR_MAX_DEPTH)
                return fail(d, DECODE_MALFORMED, "byte %zu: nested deeper than %d", at,
                            CBOR_MAX_DEPTH);
            stack[depth++] = (struct frame){.tok = i,
                                            .left = it->kind == K_MAP ? 2 * it->u : it->u,
                                            .indef = it->indef,
                                            .kind = (uint8_t)it->kind};
            if (it->indef || it->u > 0)
                continue;
        }
        item_done(d, stack, &depth, container);
    } while (depth > 0 || tagged);
    if (pos != d->len)
        return fail(d, DECODE_MALFORMED, "byte %zu: bytes after the item", pos);
    return true;
}

/* ---------- pass 2: the readings ---------- */

/* The bytes of string token i: in place, or its chunks gathered into buf
 * (TEXT_MAX + 1 bytes: scan() bounds a chunked text string). */
static const char *text_of(const struct dec *d, uint32_t i, char *buf, size_t *n)
{
    const struct tok *t = &d->tok[i];
    *n = t->n;
    if (!t->indef)
        return (const char *)d->p + t->str;
    size_t k = 0;
    for (uint32_t c = i + 1; c < t->next; c++) {
        memcpy(buf + k, d->p + d->tok[c].str, d->tok[c].n);
        k += d->tok[c].n;
    }
    return buf;
}

static bool key_is(const struct dec *d, uint32_t k, const char *name)
{
    char buf[TEXT_MAX + 1];
    size_t n;
    const char *s = text_of(d, k, buf, &n);
    return n == strlen(name) && memcmp(s, name, n) == 0;
}

/* Does key k of map m occur again after it? (The last one wins.) */
static bool key_repeated_later(const struct dec *d, uint32_t m, uint32_t k)
{
    char a[TEXT_MAX + 1], b[TEXT_MAX + 1];
    size_t an, bn;
    const char *as = text_of(d, k, a, &an);
    for (uint32_t j = d->tok[d->tok[k].next].next; j < d->tok[m].next;
         j = d->tok[d->tok[j].next].next) {
        if (d->tok[j].n != an)
            continue;
        const char *bs = text_of(d, j, b, &bn);
        if (memcmp(as, bs, an) == 0)
            return true;
    }
    return false;
}

/* Value token of the last member of map m named name, or -1. */
static int64_t find_member(const struct dec *d, uint32_t m, const char *name)
{
    int64_t found = -1;
    for (uint32_t k = m + 1; k < d->tok[m].next; k = d->tok[d->tok[k].next].next) {
        if (key_is(d, k, name))
            found = d->tok[k].next;
    }
    return found;
}

/* A bignum's magnitude (tag 2/3 on a byte string, chunked or not). */
static double bignum_of(const struct dec *d, uint32_t i)
{
    const struct tok *t = &d->tok[i];
    uint32_t first = t->indef ? i + 1 : i, end = t->indef ? t->next : i + 1;
    double v = 0;
    for (uint32_t c = first; c < end; c++) {
        for (uint32_t k = 0; k < d->tok[c].n; k++)
            v = v * 256.0 + d->p[d->tok[c].str + k];
    }
    return v;
}

/* Token v as a reading, as decode.c's value_of: DECODE_OK with *out;
 * no_value for null, undefined, byte strings, arrays and maps; non_numeric
 * for other text; non_finite for NaN and infinities. */
static enum decode_reason value_of(const struct dec *d, uint32_t v, double *out)
{
    const struct tok *t = &d->tok[v];
    char buf[TEXT_MAX + 1];
    size_t n;
    switch ((enum kind)t->kind) {
    case K_UINT: *out = (double)t->v.u; return DECODE_OK;
    case K_NEGINT: *out = -1.0 - (double)t->v.u; return DECODE_OK;
    case K_BOOL: *out = t->v.u ? 1.0 : 0.0; return DECODE_OK;
    case K_FLOAT: *out = t->v.d; return isfinite(t->v.d) ? DECODE_OK : DECODE_NON_FINITE;
    case K_TEXT: {
        const char *s = text_of(d, v, buf, &n);
        return decode_text_value(d->opts, s, n, out);
    }
    case K_BYTES:
        if (t->tag != T_BIGNUM && t->tag != T_NEG_BIGNUM)
            return DECODE_NO_VALUE;
        *out = bignum_of(d, v);
        if (!isfinite(*out))
            return DECODE_NON_FINITE;
        if (t->tag == T_NEG_BIGNUM)
            *out = -1.0 - *out;
        return DECODE_OK;
    default: return DECODE_NO_VALUE;
    }
}

/* Name text of an event added by this decoder. */
static const char *event_name(const struct dec *d, const struct decode_event *ev, size_t *n)
{
    *n = ev->name_len > 0 ? ev->name_len : ev->field_len;
    return ev->name_len > 0 ? d->out->names + ev->name_off : (const char *)d->p + ev->field_off;
}

/* Adds an event of the reading whose events start at first, named by the
 * topic (n 0), by payload bytes (in_payload) or by name (copied into
 * names); a name the reading already has takes the new value. */
static bool add_event(struct dec *d, uint32_t first, double value, const char *name, size_t n,
                      bool in_payload)
{
    struct decode_result *out = d->out;
    for (uint32_t e = first; n > 0 && e < out->n_events; e++) {
        size_t en;
        const char *es = event_name(d, &out->ev[e], &en);
        if (en == n && memcmp(es, name, n) == 0) {
            out->ev[e].value = value;
            return true;
        }
    }
    if (out->n_events == DECODE_MAX_FIELDS)
        return fail(d, DECODE_TOO_MANY_FIELDS, "more than %d events", DECODE_MAX_FIELDS);
    struct decode_event *ev = &out->ev[out->n_events++];
    *ev = (struct decode_event){.value = value};
    if (n > 0 && in_payload) {
        ev->field_off = (uint32_t)((const unsigned char *)name - d->p);
        ev->field_len = (uint32_t)n;
    } else if (n > 0) {
        memcpy(out->names + out->names_len, name, n); /* <= 64 names of <= 255 bytes */
        ev->name_off = out->names_len;
        ev->name_len = (uint32_t)n;
        ev->name_topic = true;
        out->names_len += (uint32_t)n;
    }
    return true;
}

/* value mode: the value field of map m. */
static bool value_member(struct dec *d, uint32_t m)
{
    const char *name = d->opts->value_field;
    int64_t v = find_member(d, m, name);
    if (v < 0)
        return fail_quoted(d, DECODE_NO_VALUE, "no", name, strlen(name), "field");
    double value = 0;
    enum decode_reason r = value_of(d, (uint32_t)v, &value);
    if (r != DECODE_OK)
        return fail_quoted(d, r, "field", name, strlen(name),
                           r == DECODE_NON_NUMERIC ? "is a string"
                           : r == DECODE_NO_VALUE  ? "is not a value"
                                                   : "is not finite");
    return add_event(d, d->out->n_events, value, NULL, 0, false);
}

/* A map being flattened: its next key, and the name prefix of its keys. */
struct level {
    uint32_t map, key;
    size_t base;     /* prefix bytes: "" at the top, "a/b" below */
    const char *bad; /* why names below cannot be series names, or NULL */
};

static const char *name_problem(const char *key, size_t kn, size_t base)
{
    if (!decode_name_ok(key, kn))
        return "name has a control character, '\\', '+' or '#'";
    if (base + (base > 0 ? 1 : 0) + kn > DECODE_NAME_MAX)
        return "series name longer than 255 bytes";
    return NULL;
}

/* One member of the map at the top of the flattening stack; may push. */
static bool flatten_member(struct dec *d, struct level *st, int *depth, char *prefix,
                           uint32_t first)
{
    struct level *l = &st[*depth - 1];
    uint32_t k = l->key, v = d->tok[k].next;
    l->key = d->tok[v].next;
    if ((*depth == 1 && key_is(d, k, d->opts->ts_field)) || key_repeated_later(d, l->map, k))
        return true;
    char kb[TEXT_MAX + 1];
    size_t kn;
    const char *key = text_of(d, k, kb, &kn);
    const char *bad = l->bad ? l->bad : name_problem(key, kn, l->base);
    size_t len = bad ? 0 : l->base + (l->base > 0 ? 1 : 0) + kn;
    if (!bad) {
        if (l->base > 0)
            prefix[l->base] = '/';
        memcpy(prefix + len - kn, key, kn);
    }
    /* keep_fields / drop_fields take the dotted path ([decode] sections) */
    char path[DECODE_NAME_MAX + 1];
    for (size_t i = 0; !bad && i < len; i++)
        path[i] = prefix[i] == '/' ? '.' : prefix[i];
    const struct decode_opts *o = d->opts;
    if (!bad && o->drop_fields && decode_path_listed(o->drop_fields, path, len))
        return true;
    if (d->tok[v].kind == K_MAP) {
        if (*depth < CBOR_MAX_DEPTH) /* scan() bounds the nesting: always */
            st[(*depth)++] = (struct level){.map = v, .key = v + 1, .base = len, .bad = bad};
        return true;
    }
    if (!bad && o->keep_fields && o->keep_fields[0] &&
        !decode_path_listed(o->keep_fields, path, len))
        return true;
    double value = 0;
    enum decode_reason r = value_of(d, v, &value);
    if (r == DECODE_NO_VALUE)
        return true;
    if (d->tok[v].kind == K_TEXT && r != DECODE_OK) {
        if (!o->strict_strings || bad)
            return true;
        return fail_quoted(d, DECODE_NON_NUMERIC, "field", path, len, "is a string");
    }
    if (bad)
        return fail(d, DECODE_MALFORMED, "%s", bad);
    if (d->out->n_events == DECODE_MAX_FIELDS)
        return fail(d, DECODE_TOO_MANY_FIELDS, "more than %d events", DECODE_MAX_FIELDS);
    if (r != DECODE_OK)
        return fail_quoted(d, r, "field", key, kn, "is not finite");
    if (*depth == 1 && !d->tok[k].indef)
        return add_event(d, first, value, key, kn, true);
    return add_event(d, first, value, prefix, len, false);
}

/* fields_all: every member of map m that is a value, nested maps flattened;
 * the timestamp field (of m itself) and earlier duplicates are skipped. */
static bool all_members(struct dec *d, uint32_t m)
{
    struct level st[CBOR_MAX_DEPTH];
    char prefix[DECODE_NAME_MAX + 1];
    uint32_t first = d->out->n_events;
    int depth = 1;
    st[0] = (struct level){.map = m, .key = m + 1, .base = 0, .bad = NULL};
    while (depth > 0) {
        if (st[depth - 1].key >= d->tok[st[depth - 1].map].next)
            depth--;
        else if (!flatten_member(d, st, &depth, prefix, first))
            return false;
    }
    if (d->out->n_events == first)
        return fail(d, DECODE_NO_VALUE, "no numeric field");
    return true;
}

/* A number token as decimal text, as a JSON encoder would write it. */
static bool number_text(const struct tok *t, char *buf, size_t cap)
{
    if (t->kind == K_UINT) {
        snprintf(buf, cap, "%" PRIu64, t->v.u);
    } else if (t->kind == K_NEGINT && t->v.u < UINT64_MAX) {
        snprintf(buf, cap, "-%" PRIu64, t->v.u + 1);
    } else if (t->kind == K_FLOAT && isfinite(t->v.d)) {
        for (int digits = 15; digits <= 17; digits++) {
            snprintf(buf, cap, "%.*g", digits, t->v.d);
            if (strtod(buf, NULL) == t->v.d)
                break;
        }
    } else {
        return false;
    }
    return true;
}

/* The timestamp token v: null/undefined: none; else epoch ms in *ms. */
static bool ts_of(struct dec *d, uint32_t v, int64_t *ms, bool *has)
{
    const struct tok *t = &d->tok[v];
    char buf[TEXT_MAX + 1];
    const char *s = buf;
    size_t n = 0;
    *has = false;
    if (t->kind == K_NULL || t->kind == K_UNDEF)
        return true;
    bool ok;
    if (t->kind == K_TEXT) {
        s = text_of(d, v, buf, &n);
        ok = true;
    } else {
        ok = number_text(t, buf, sizeof buf);
        n = ok ? strlen(buf) : 0;
        double mag = t->kind == K_FLOAT ? fabs(t->v.d) : (double)t->v.u;
        if (t->tag == T_EPOCH && mag >= EPOCH_S_MAX)
            ok = false; /* seconds, not ms: far beyond 2100 */
    }
    /* CBOR's epoch tag says seconds; otherwise the section's time_unit. */
    bool parsed = ok && (t->tag == T_EPOCH ? decode_parse_time(s, n, ms)
                                           : decode_parse_time_unit(d->opts, s, n, ms));
    if (!parsed)
        return fail(d, DECODE_BAD_TIMESTAMP, "bad timestamp");
    *has = true;
    return true;
}

/* One map m: its events (appended) and their time. */
static bool read_map(struct dec *d, uint32_t m, int64_t recv, bool synced, bool *has_ts)
{
    uint32_t first = d->out->n_events;
    int64_t ts = recv;
    *has_ts = false;
    if (!(d->opts->fields_all ? all_members(d, m) : value_member(d, m)))
        return false;
    int64_t v = find_member(d, m, d->opts->ts_field);
    if (v >= 0 && !ts_of(d, (uint32_t)v, &ts, has_ts))
        return false;
    if (*has_ts && !decode_ts_plausible(d->opts, ts, recv, synced))
        return fail(d, DECODE_BAD_TIMESTAMP, "timestamp out of range");
    for (uint32_t k = first; k < d->out->n_events; k++)
        d->out->ev[k].ts_ms = ts;
    return true;
}

/* A top array: a map per reading, each with its own time (all or none). */
static bool read_array(struct dec *d, int64_t recv, bool synced)
{
    int ts_seen = -1;
    if (d->tok[0].n == 0)
        return fail(d, DECODE_NO_VALUE, "empty array");
    for (uint32_t m = 1; m < d->tok[0].next; m = d->tok[m].next) {
        bool has;
        d->reading++;
        if (d->tok[m].kind != K_MAP)
            return fail(d, DECODE_MALFORMED, "byte %" PRIu32 ": not a map", d->tok[m].off);
        if (!read_map(d, m, recv, synced, &has))
            return false;
        if (ts_seen >= 0 && ts_seen != (int)has)
            return fail(d, DECODE_MALFORMED, "readings with and without a timestamp");
        ts_seen = has;
    }
    d->out->has_ts = ts_seen == 1;
    return true;
}

/* Pass 2: the top item. */
static bool read_top(struct dec *d, int64_t recv, bool synced)
{
    const struct tok *t = &d->tok[0];
    if (t->kind == K_MAP)
        return read_map(d, 0, recv, synced, &d->out->has_ts);
    if (t->kind == K_ARRAY)
        return read_array(d, recv, synced);
    double value = 0;
    enum decode_reason r = value_of(d, 0, &value);
    if (r == DECODE_NON_NUMERIC) {
        char buf[TEXT_MAX + 1];
        size_t n;
        const char *s = text_of(d, 0, buf, &n);
        return fail_quoted(d, r, "payload", s, n, "is a string");
    }
    if (r == DECODE_NO_VALUE)
        return fail(d, DECODE_MALFORMED, "not a number, text, map or array");
    if (r != DECODE_OK)
        return fail(d, r, "payload is not finite");
    if (!add_event(d, 0, value, NULL, 0, false))
        return false;
    d->out->ev[0].ts_ms = recv;
    return true;
}

enum decode_reason decode_cbor(const struct decode_opts *opts, const char *payload, size_t len,
                               int64_t recv_wall_ms, bool clock_synced, struct decode_result *out)
{
    struct decode_opts effective;
    enum decode_reason begin = decode_begin(opts, len, &effective, out);
    if (begin != DECODE_OK)
        return begin;
    struct dec d; /* not zeroed: the tokens are written before they are read */
    d.p = (const unsigned char *)payload;
    d.len = len;
    d.opts = &effective;
    d.out = out;
    d.reason = DECODE_OK;
    d.reading = 0;
    d.n_tok = 0;
    bool ok;
    if (payload == NULL || len == 0)
        ok = fail(&d, DECODE_MALFORMED, "empty payload");
    else if (len > (size_t)INT32_MAX)
        ok = fail(&d, DECODE_MALFORMED, "payload longer than 2 GiB");
    else
        ok = scan(&d) && read_top(&d, recv_wall_ms, clock_synced);
    if (!ok) {
        out->has_ts = false;
        out->n_events = 0;
        out->names_len = 0;
        return d.reason;
    }
    return DECODE_OK;
}
