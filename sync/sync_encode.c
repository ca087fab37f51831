/* sync_encode — ndjson and InfluxDB line protocol encoders (formats in sync_encode.h). */
#include "sync_encode.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_PER_MS 1000000LL
#define MAX_TS_MS (INT64_MAX / NS_PER_MS)

static const char hexdigits[] = "0123456789abcdef";

/* Length of the valid UTF-8 sequence at s (1..4), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t need;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
        need = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 2;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f; /* no UTF-16 surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 3;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else {
        return 0;
    }
    if (n < need + 1 || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i <= need; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return need + 1;
}

/* A small bounded writer: pos grows, overflow sticks. */
struct out {
    char *buf;
    size_t cap, pos;
    bool overflow;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->overflow || o->cap - o->pos < n) {
        o->overflow = true;
        return;
    }
    memcpy(o->buf + o->pos, s, n);
    o->pos += n;
}

static void putc1(struct out *o, char c)
{
    put(o, &c, 1);
}

static void put_i64(struct out *o, int64_t v)
{
    char tmp[24];
    size_t i = sizeof tmp;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[--i] = (char)('0' + (u % 10));
        u /= 10;
    } while (u);
    if (v < 0)
        tmp[--i] = '-';
    put(o, tmp + i, sizeof tmp - i);
}

static void escape_json(struct out *o, const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        size_t run = i;
        /* copy the longest run of bytes that need no escaping at once */
        while (run < len && s[run] >= 0x20 && s[run] < 0x7f && s[run] != '"' && s[run] != '\\')
            run++;
        put(o, (const char *)s + i, run - i);
        i = run;
        if (i >= len)
            break;
        unsigned char c = s[i];
        if (c >= 0x80) {
            size_t n = utf8_len(s + i, len - i);
            if (n == 0) {
                put(o, "\\ufffd", 6);
                i++;
            } else {
                put(o, (const char *)s + i, n);
                i += n;
            }
            continue;
        }
        char esc[6] = {'\\', 'u', '0', '0', hexdigits[c >> 4], hexdigits[c & 15]};
        switch (c) {
        case '"': put(o, "\\\"", 2); break;
        case '\\': put(o, "\\\\", 2); break;
        case '\b': put(o, "\\b", 2); break;
        case '\f': put(o, "\\f", 2); break;
        case '\n': put(o, "\\n", 2); break;
        case '\r': put(o, "\\r", 2); break;
        case '\t': put(o, "\\t", 2); break;
        default: put(o, esc, 6); break;
        }
        i++;
    }
}

static void escape_influx(struct out *o, const unsigned char *s, size_t len, bool tag)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = s[i];
        if (c == ',' || c == ' ' || c == '\\' || (tag && c == '=') ||
            (!tag && i == 0 && c == '#')) {
            putc1(o, '\\');
            putc1(o, (char)c);
        } else if (c < 0x20 || c == 0x7f) {
            char esc[4] = {'\\', 'x', hexdigits[c >> 4], hexdigits[c & 15]};
            switch (c) {
            case '\t': put(o, "\\t", 2); break;
            case '\n': put(o, "\\n", 2); break;
            case '\r': put(o, "\\r", 2); break;
            case '\f': put(o, "\\f", 2); break;
            default: put(o, esc, 4); break;
            }
        } else {
            putc1(o, (char)c);
        }
    }
}

size_t sync_encode_escape(enum sync_escape style, const char *s, size_t len, char *buf, size_t cap)
{
    struct out o = {buf, cap, 0, false};
    if (style == SYNC_ESC_JSON)
        escape_json(&o, (const unsigned char *)s, len);
    else
        escape_influx(&o, (const unsigned char *)s, len, style == SYNC_ESC_TAG);
    return o.overflow ? SIZE_MAX : o.pos;
}

/* Fast path for the common sensor value with at most 6 decimals and |v| < 1e9:
 * v == k / 10^d exactly in IEEE arithmetic (k and 10^d are exact doubles and
 * the division is correctly rounded, as strtod of the decimal text k/10^d is),
 * so the text reads back as v; the smallest such d gives the fewest digits.
 * About 10x cheaper than snprintf + strtod. Returns 0 when it does not apply. */
static size_t short_decimal(double v, char *buf, size_t cap)
{
    static const double pow10[] = {1, 10, 100, 1e3, 1e4, 1e5, 1e6};
    double a = fabs(v);
    if (!(a < 1e9) || cap < 32)
        return 0;
    for (unsigned d = 0; d < sizeof pow10 / sizeof pow10[0]; d++) {
        double k = nearbyint(a * pow10[d]);
        if (k / pow10[d] != a)
            continue;
        uint64_t u = (uint64_t)k, ip = u, frac = 0, scale = 1;
        for (unsigned i = 0; i < d; i++)
            scale *= 10;
        ip = u / scale;
        frac = u % scale;
        char tmp[32];
        size_t n = sizeof tmp;
        for (unsigned i = 0; i < d; i++) {
            tmp[--n] = (char)('0' + frac % 10);
            frac /= 10;
        }
        if (d)
            tmp[--n] = '.';
        do {
            tmp[--n] = (char)('0' + ip % 10);
            ip /= 10;
        } while (ip);
        if (signbit(v))
            tmp[--n] = '-';
        memcpy(buf, tmp + n, sizeof tmp - n);
        buf[sizeof tmp - n] = '\0';
        return sizeof tmp - n;
    }
    return 0;
}

size_t sync_encode_double(double v, char *buf, size_t cap)
{
    if (!isfinite(v) || cap < 32)
        return 0;
    size_t fast = short_decimal(v, buf, cap);
    if (fast)
        return fast;
    for (int prec = 15; prec <= 17; prec++) {
        int n = snprintf(buf, cap, "%.*g", prec, v);
        if (n <= 0 || (size_t)n >= cap)
            return 0;
        if (prec == 17 || strtod(buf, NULL) == v)
            return (size_t)n;
    }
    return 0;
}

el_status sync_encoder_init(struct sync_encoder *enc, enum sync_format format,
                            const char *device_id)
{
    size_t len = strlen(device_id);
    memset(enc, 0, sizeof *enc);
    enc->format = format;
    if (len == 0 || len >= SYNC_DEVICE_ID_MAX)
        return EL_INVAL;
    size_t n = sync_encode_escape(format == SYNC_NDJSON ? SYNC_ESC_JSON : SYNC_ESC_TAG, device_id,
                                  len, enc->device, sizeof enc->device - 1);
    if (n == SIZE_MAX)
        return EL_INVAL;
    enc->device_len = n;
    enc->device[n] = '\0';
    return EL_OK;
}

size_t sync_encode_event(const struct sync_encoder *enc, const char *series, size_t series_len,
                         int64_t seq, int64_t ts_ms, double value, char *buf, size_t cap)
{
    struct out o = {buf, cap, 0, false};
    char num[40];
    size_t numlen = sync_encode_double(value, num, sizeof num);
    if (enc->format == SYNC_NDJSON) {
        put(&o, "{\"device\":\"", 11);
        put(&o, enc->device, enc->device_len);
        put(&o, "\",\"series\":\"", 12);
        escape_json(&o, (const unsigned char *)series, series_len);
        put(&o, "\",\"ts\":", 7);
        put_i64(&o, ts_ms);
        put(&o, ",\"value\":", 9);
        if (numlen)
            put(&o, num, numlen);
        else
            put(&o, "null", 4);
        put(&o, ",\"seq\":", 7);
        put_i64(&o, seq);
        put(&o, "}\n", 2);
    } else {
        escape_influx(&o, (const unsigned char *)series, series_len, false);
        put(&o, ",device=", 8);
        put(&o, enc->device, enc->device_len);
        if (numlen) {
            put(&o, " value=", 7);
            put(&o, num, numlen);
        }
        if (enc->include_seq || !numlen) {
            put(&o, numlen ? ",seq=" : " seq=", 5);
            put_i64(&o, seq);
            putc1(&o, 'i');
        }
        putc1(&o, ' ');
        if (ts_ms > MAX_TS_MS)
            ts_ms = MAX_TS_MS;
        else if (ts_ms < -MAX_TS_MS)
            ts_ms = -MAX_TS_MS;
        put_i64(&o, ts_ms * NS_PER_MS);
        putc1(&o, '\n');
    }
    return o.overflow ? 0 : o.pos;
}

const char *sync_encode_content_type(enum sync_format format)
{
    return format == SYNC_NDJSON ? "application/x-ndjson" : "text/plain; charset=utf-8";
}
