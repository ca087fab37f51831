/*
 * lg_stream — loadgen's deterministic stream (the contract is in
 * lg_stream.h).
 */
#include "lg_stream.h"

#include <string.h>

const char *const lg_stream_style_names[LG_STYLE_COUNT] = {"json-ts", "json",   "bare",
                                                           "fields",  "device", "z2m"};

bool lg_stream_topic_has_temp(enum lg_style style)
{
    return style != LG_FIELDS && style != LG_Z2M;
}

size_t lg_stream_fmt_u64(char *dst, uint64_t v)
{
    char tmp[LG_STREAM_U64_MAX];
    size_t n = 0;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t k = 0; k < n; k++)
        dst[k] = tmp[n - 1 - k];
    return n;
}

static size_t fmt_i64(char *dst, int64_t v)
{
    if (v < 0) {
        dst[0] = '-';
        return 1 + lg_stream_fmt_u64(dst + 1, (uint64_t)0 - (uint64_t)v);
    }
    return lg_stream_fmt_u64(dst, (uint64_t)v);
}

/* Hundredths as "%.2f" text: -4999 -> "-49.99", 5 -> "0.05". */
static size_t fmt_centi(char *dst, int64_t centi)
{
    uint64_t mag = centi < 0 ? (uint64_t)0 - (uint64_t)centi : (uint64_t)centi;
    size_t n = 0;

    if (centi < 0)
        dst[n++] = '-';
    n += lg_stream_fmt_u64(dst + n, mag / 100);
    dst[n++] = '.';
    dst[n++] = (char)('0' + (mag % 100) / 10);
    dst[n++] = (char)('0' + mag % 10);
    return n;
}

static size_t put_str(char *dst, const char *s)
{
    size_t n = strlen(s);

    memcpy(dst, s, n);
    return n;
}

/* `<sep_key>` then v in decimal: `,"battery":97`. */
static size_t put_u64_member(char *dst, const char *sep_key, uint64_t v)
{
    size_t n = put_str(dst, sep_key);
    return n + lg_stream_fmt_u64(dst + n, v);
}

/* (i mod m)*k mod m == i*k mod m, without overflow. */
int64_t lg_stream_value_centi(uint64_t i)
{
    return (int64_t)(((i % 20000) * 7919) % 20000) - 5000;
}

int64_t lg_stream_hum_centi(uint64_t i)
{
    return (int64_t)(((i % 10000) * 104729) % 10000);
}

/* `{"<temp>":V,"<hum>":H` of message i (styles fields and z2m). */
static size_t put_temp_hum(char *dst, uint64_t i, const char *open_temp, const char *sep_hum)
{
    size_t n = put_str(dst, open_temp);
    n += fmt_centi(dst + n, lg_stream_value_centi(i));
    n += put_str(dst + n, sep_hum);
    return n + fmt_centi(dst + n, lg_stream_hum_centi(i));
}

size_t lg_stream_payload(enum lg_style style, uint64_t i, int64_t ts, char *buf)
{
    size_t n = 0;

    switch (style) {
    case LG_JSON_TS:
        n += put_str(buf + n, "{\"value\":");
        n += fmt_centi(buf + n, lg_stream_value_centi(i));
        n += put_str(buf + n, ",\"ts\":");
        n += fmt_i64(buf + n, ts);
        buf[n++] = '}';
        break;
    case LG_JSON:
        n += put_str(buf + n, "{\"value\":");
        n += fmt_centi(buf + n, lg_stream_value_centi(i));
        buf[n++] = '}';
        break;
    case LG_BARE: n += fmt_centi(buf + n, lg_stream_value_centi(i)); break;
    case LG_FIELDS:
        n += put_temp_hum(buf + n, i, "{\"temp\":", ",\"hum\":");
        n += put_str(buf + n, ",\"ts\":");
        n += fmt_i64(buf + n, ts);
        buf[n++] = '}';
        break;
    case LG_DEVICE:
        n += put_str(buf + n, "{\"value\":");
        n += fmt_centi(buf + n, lg_stream_value_centi(i));
        n += put_str(buf + n, ",\"ts\":");
        n += fmt_i64(buf + n, ts);
        n += put_u64_member(buf + n, ",\"unit\":\"celsius\",\"battery\":", i % 100);
        n += put_u64_member(buf + n, ",\"linkquality\":", i % 256);
        n += put_str(buf + n, ",\"fw\":\"1.4.2\"}");
        break;
    case LG_Z2M:
        n += put_temp_hum(buf + n, i, "{\"temperature\":", ",\"humidity\":");
        n += put_u64_member(buf + n, ",\"battery\":", i % 100);
        n += put_str(buf + n, i % 2 == 0 ? ",\"occupancy\":true" : ",\"occupancy\":false");
        n += put_u64_member(buf + n, ",\"linkquality\":", i % 256);
        n += put_u64_member(buf + n, ",\"voltage\":", 2500 + (i % 700) * 7 % 700);
        buf[n++] = '}';
        break;
    case LG_STYLE_COUNT: break;
    }
    return n;
}
