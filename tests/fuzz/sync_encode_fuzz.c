/*
 * sync_encode_fuzz — libFuzzer target for the upstream encoders
 * (sync/sync_encode.c) and the Retry-After parser (sync/sync_policy.c).
 *
 * The input is used as a series name (and, cut to a config-sized string, as
 * a device id) and as a Retry-After value. Invariants (abort on violation):
 *   - JSON escaping: no byte below 0x20 or DEL in the output, every '"' is
 *     escaped, every backslash starts a valid JSON escape; unescaping gives
 *     back the input exactly when the input is valid UTF-8 (the encoder only
 *     replaces invalid bytes);
 *   - line-protocol escaping: no unescaped ' ', ',' (and '=' in tags), no
 *     control byte, no leading '#' in a measurement; unescaping gives back
 *     the input when it has no control bytes;
 *   - a whole ndjson event is one line ending in "}\n"; an influx event is
 *     one line ending in '\n'; both fit SYNC_ENCODE_EVENT_MAX for names up
 *     to 1024 bytes; a buffer one byte short is refused (0), never cut;
 *   - Retry-After: accepted values give a delay in [0, SYNC_RETRY_AFTER_MAX_MS].
 * Runs under libFuzzer (clang -fsanitize=fuzzer) or tests/fuzz/replay_main.c.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sync_encode.h"
#include "sync_policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok)
        abort();
}

static bool valid_utf8(const uint8_t *s, size_t n)
{
    /* the same rules as the encoder, written independently: decode and
     * reject overlongs, surrogates and code points above U+10FFFF */
    size_t i = 0;
    while (i < n) {
        uint32_t c = s[i], cp;
        size_t len;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + len > n)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Checks the JSON escaping of in and, for valid UTF-8, that it round-trips. */
static void check_json(const uint8_t *in, size_t n, const char *out, size_t len)
{
    char *back = malloc(len + 1);
    size_t b = 0;
    bool replaced = false;
    check(back != NULL);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)out[i];
        check(c >= 0x20 && c != 0x7f && c != '"');
        if (c != '\\') {
            back[b++] = (char)c;
            continue;
        }
        check(i + 1 < len);
        static const char names[] = "\"\\bfnrt", raw[] = "\"\\\b\f\n\r\t";
        char e = out[++i];
        const char *simple = e ? strchr(names, e) : NULL;
        if (simple) {
            back[b++] = raw[(size_t)(simple - names)];
            continue;
        }
        check(e == 'u' && i + 4 < len);
        int h[4];
        for (size_t k = 0; k < 4; k++) {
            h[k] = hexval(out[i + 1 + k]);
            check(h[k] >= 0);
        }
        i += 4;
        int cp = (h[0] << 12) | (h[1] << 8) | (h[2] << 4) | h[3];
        if (cp == 0xfffd) {
            replaced = true;
            continue;
        }
        check(cp < 0x20 || cp == 0x7f);
        back[b++] = (char)cp;
    }
    if (valid_utf8(in, n)) {
        check(!replaced && b == n && memcmp(back, in, n) == 0);
    } else {
        check(replaced);
    }
    free(back);
}

/* Checks line-protocol escaping and, without control bytes, the round trip. */
static void check_influx(const uint8_t *in, size_t n, const char *out, size_t len, bool tag)
{
    char *back = malloc(len + 1);
    size_t b = 0;
    bool controls = false;
    check(back != NULL);
    for (size_t i = 0; i < n; i++)
        controls = controls || in[i] < 0x20 || in[i] == 0x7f;
    check(tag || len == 0 || out[0] != '#');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)out[i];
        check(c >= 0x20 && c != 0x7f && c != ' ' && c != ',' && !(tag && c == '='));
        if (c == '\\') {
            check(i + 1 < len);
            c = (unsigned char)out[++i];
        }
        back[b++] = (char)c;
    }
    if (!controls)
        check(b == n && memcmp(back, in, n) == 0);
    free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    size_t cap = size * 6 + 16;
    char *out = malloc(cap);
    check(out != NULL);

    size_t n = sync_encode_escape(SYNC_ESC_JSON, s, size, out, cap);
    check(n != SIZE_MAX);
    check_json(data, size, out, n);
    n = sync_encode_escape(SYNC_ESC_MEASUREMENT, s, size, out, cap);
    check(n != SIZE_MAX);
    check_influx(data, size, out, n, false);
    n = sync_encode_escape(SYNC_ESC_TAG, s, size, out, cap);
    check(n != SIZE_MAX);
    check_influx(data, size, out, n, true);
    free(out);

    /* whole events: the input as series name, its start as device id */
    if (size > 0 && size <= 1024) {
        char device[SYNC_DEVICE_ID_MAX];
        size_t dl = size < sizeof device - 1 ? size : sizeof device - 1;
        memcpy(device, data, dl);
        device[dl] = '\0';
        char *buf = malloc(SYNC_ENCODE_EVENT_MAX);
        check(buf != NULL);
        for (int f = 0; f < 2; f++) {
            struct sync_encoder enc;
            if (sync_encoder_init(&enc, f ? SYNC_INFLUX : SYNC_NDJSON, device) != EL_OK) {
                check(strlen(device) == 0);
                break;
            }
            double v = size > 8 ? (double)(int8_t)data[0] * 1e-3 : -0.0;
            size_t len = sync_encode_event(&enc, s, size, (int64_t)size, -(int64_t)size, v, buf,
                                           SYNC_ENCODE_EVENT_MAX);
            check(len > 0 && buf[len - 1] == '\n' && memchr(buf, '\n', len) == buf + len - 1);
            if (!f)
                check(len >= 2 && buf[len - 2] == '}');
            check(sync_encode_event(&enc, s, size, (int64_t)size, -(int64_t)size, v, buf,
                                    len - 1) == 0);
        }
        free(buf);
    }

    /* Retry-After */
    char *text = malloc(size + 1);
    check(text != NULL);
    memcpy(text, data, size);
    text[size] = '\0';
    int64_t delay = -1;
    if (sync_policy_parse_retry_after(text, 1767225600000LL, &delay))
        check(delay >= 0 && delay <= SYNC_RETRY_AFTER_MAX_MS);
    free(text);
    return 0;
}
