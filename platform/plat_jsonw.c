/* plat_jsonw — bounded JSON writer (see plat_jsonw.h). */
#include "plat_jsonw.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void jw_init(struct jw *w, char *buf, size_t len)
{
    memset(w, 0, sizeof *w);
    w->buf = buf;
    w->len = len;
    if (len > 0)
        buf[0] = '\0';
    else
        w->overflow = true;
}

static void put(struct jw *w, const char *s, size_t n)
{
    if (w->overflow)
        return;
    if (w->pos + n + 1 > w->len) {
        w->overflow = true;
        return;
    }
    memcpy(w->buf + w->pos, s, n);
    w->pos += n;
    w->buf[w->pos] = '\0';
}

/* Before a value or key: a comma unless first in its container. */
static void sep(struct jw *w)
{
    if (w->depth > 0 && w->depth <= JW_MAX_DEPTH) {
        if (w->need_comma[w->depth - 1])
            put(w, ",", 1);
        w->need_comma[w->depth - 1] = true;
    }
}

static void open_c(struct jw *w, char c)
{
    sep(w);
    put(w, &c, 1);
    if (w->depth >= JW_MAX_DEPTH) {
        w->overflow = true;
        return;
    }
    w->need_comma[w->depth++] = false;
}

static void close_c(struct jw *w, char c)
{
    put(w, &c, 1);
    if (w->depth > 0)
        w->depth--;
}

void jw_obj_begin(struct jw *w)
{
    open_c(w, '{');
}

void jw_obj_end(struct jw *w)
{
    close_c(w, '}');
}

void jw_arr_begin(struct jw *w)
{
    open_c(w, '[');
}

void jw_arr_end(struct jw *w)
{
    close_c(w, ']');
}

static void put_escaped(struct jw *w, const char *s, size_t n)
{
    put(w, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(w, esc, 2);
        } else if (c == '\n' || c == '\r' || c == '\t') {
            esc[0] = '\\';
            esc[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
            put(w, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            put(w, esc, 6);
        } else {
            put(w, (const char *)&s[i], 1);
        }
    }
    put(w, "\"", 1);
}

void jw_key(struct jw *w, const char *key)
{
    sep(w);
    put_escaped(w, key, strlen(key));
    put(w, ":", 1);
    /* the value that follows must not add a comma */
    if (w->depth > 0)
        w->need_comma[w->depth - 1] = false;
}

/* After a value inside a container, the next item needs a comma. */
static void done_value(struct jw *w)
{
    if (w->depth > 0)
        w->need_comma[w->depth - 1] = true;
}

/* A value written as is: n bytes of text (a number, a literal, raw JSON). */
static void put_value(struct jw *w, const char *text, size_t n)
{
    sep(w);
    put(w, text, n);
    done_value(w);
}

void jw_strn(struct jw *w, const char *s, size_t n)
{
    sep(w);
    put_escaped(w, s, n);
    done_value(w);
}

void jw_str(struct jw *w, const char *s)
{
    jw_strn(w, s, strlen(s));
}

void jw_int(struct jw *w, int64_t v)
{
    char b[32];
    int n = snprintf(b, sizeof b, "%" PRId64, v);
    put_value(w, b, (size_t)n);
}

void jw_uint(struct jw *w, uint64_t v)
{
    char b[32];
    int n = snprintf(b, sizeof b, "%" PRIu64, v);
    put_value(w, b, (size_t)n);
}

void jw_double(struct jw *w, double v)
{
    char b[40];
    if (!isfinite(v)) {
        jw_null(w);
        return;
    }
    /* The shortest of %.15g/%.16g/%.17g that reads back as the same double
     * (%.17g always does): exact, and 21.5 stays "21.5". */
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(b, sizeof b, "%.*g", prec, v);
        if (strtod(b, NULL) == v)
            break;
    }
    put_value(w, b, (size_t)n);
}

void jw_bool(struct jw *w, bool v)
{
    put_value(w, v ? "true" : "false", v ? 4u : 5u);
}

void jw_null(struct jw *w)
{
    put_value(w, "null", 4);
}

bool jw_ok(const struct jw *w)
{
    return !w->overflow && w->depth == 0;
}

size_t jw_len(const struct jw *w)
{
    return w->pos;
}

void jw_raw(struct jw *w, const char *json)
{
    put_value(w, json, strlen(json));
}

bool jw_ok_so_far(const struct jw *w)
{
    return !w->overflow;
}

bool jw_utf8_valid(const char *s, size_t n)
{
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t len = p[i] < 0x80             ? 1
                     : (p[i] & 0xE0) == 0xC0 ? 2
                     : (p[i] & 0xF0) == 0xE0 ? 3
                     : (p[i] & 0xF8) == 0xF0 ? 4
                                             : 0;
        if (len == 0 || len > n - i)
            return false;
        uint32_t cp = len == 1 ? p[i] : p[i] & (0x7Fu >> len);
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3Fu);
        }
        if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}
