/*
 * sync_response_fuzz — libFuzzer target for the upstream response handling:
 * the header and body parsing of sync/sync_http.c and the decision the sync
 * worker (sync/sync.c, send_current) takes from it with sync/sync_policy.c.
 *
 * The input is a raw HTTP/1.x response as it comes off the wire: heads (1xx
 * interim ones, then the final one) and the body. It is cut into lines at
 * '\n' and every line of the heads, the empty one that ends a head included,
 * goes to sync_http_parse_header_line on its own, as libcurl hands lines to
 * CURLOPT_HEADERFUNCTION; a head the input does not end is ended with "\r\n".
 * The status comes from the last head's status line as libcurl reads it
 * ("HTTP/1.x NNN", "HTTP/2 NNN", "HTTP/3 NNN"); without one it is a
 * transport error (status 0). The body goes to sync_http_body_excerpt in
 * pieces whose sizes come from a hash of the input. Then the worker's
 * decision: the verdict (sync_policy_classify) and the retry delay
 * (sync_policy_parse_retry_after at a fixed wall clock, then
 * sync_policy_retry_delay_ms) for several attempt numbers and random sources.
 *
 * Invariants (abort on violation):
 *   - headers: r->retry_after is NUL-terminated inside its buffer and means
 *     what the field means: parsing it gives the same delay (or the same
 *     refusal) as parsing the whole value of the last Retry-After line since
 *     the last status line (a value holding a NUL byte is invalid); the same
 *     value when header names change case and when lines end in "\n"
 *     instead of "\r\n" or the reverse;
 *   - body excerpt: NUL-terminated, at most SYNC_HTTP_EXCERPT - 1 bytes, the
 *     start of the body with every run of bytes other than printable ASCII
 *     made one blank and leading ones dropped, whatever the pieces the body
 *     comes in;
 *   - verdict (sync_policy.h): 2xx success, 413 split, 408/425/429 retry,
 *     other 4xx park, everything else (5xx, 1xx, 3xx, no response) retry;
 *   - Retry-After: an accepted value gives [0, SYNC_RETRY_AFTER_MAX_MS]; one
 *     second later on the wall clock, at most that and at most 1 s less;
 *   - retry delay: with an accepted Retry-After on a 429 or 503, exactly that
 *     whatever the attempt and random source; otherwise in [0, ceiling] with
 *     ceiling = min(SYNC_BACKOFF_CAP_MS, SYNC_BACKOFF_BASE_MS * 2^(attempt-1))
 *     (attempt 0 counts as 1): 0 for a source giving 0, the ceiling for one
 *     giving the ceiling.
 * Runs under libFuzzer (clang -fsanitize=fuzzer) or tests/fuzz/replay_main.c.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sync_http.h"
#include "sync_policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW_MS 1767225600000LL /* Thu, 01 Jan 2026 00:00:00 GMT */

enum variant { AS_IS, NAME_CASE, LINE_ENDS, VARIANTS };

struct outcome {
    struct sync_http_resp r;
    long status;     /* 0: no valid status line (a transport error) */
    size_t body_off; /* where the body starts in the input */
    /* the model: the last Retry-After value since the last status line */
    bool ra_seen;
    const uint8_t *ra_val;
    size_t ra_len;
};

static void check(bool ok)
{
    if (!ok)
        abort();
}

static bool is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

static size_t line_len(const uint8_t *p, size_t n)
{
    const uint8_t *nl = memchr(p, '\n', n);
    return nl ? (size_t)(nl - p) + 1 : n;
}

static bool empty_line(const uint8_t *p, size_t n)
{
    return (n == 1 && p[0] == '\n') || (n == 2 && p[0] == '\r' && p[1] == '\n');
}

static bool starts(const uint8_t *p, size_t n, const char *s)
{
    size_t k = strlen(s);
    return n >= k && memcmp(p, s, k) == 0;
}

/* The status of a status line as libcurl reads it; -1 if it is not one. */
static long status_code(const uint8_t *p, size_t n)
{
    size_t i;
    if (starts(p, n, "HTTP/1.") && n > 8 && is_digit(p[7]) && p[8] == ' ')
        i = 9;
    else if ((starts(p, n, "HTTP/2 ") || starts(p, n, "HTTP/3 ")))
        i = 7;
    else
        return -1;
    if (n < i + 3 || !is_digit(p[i]) || !is_digit(p[i + 1]) || !is_digit(p[i + 2]))
        return -1;
    if (n > i + 3 && p[i + 3] != ' ' && p[i + 3] != '\r' && p[i + 3] != '\n')
        return -1;
    return (p[i] - '0') * 100L + (p[i + 1] - '0') * 10L + (p[i + 2] - '0');
}

static bool ascii_letter(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Writes the variant of line p (n bytes) to out (n + 1 bytes); its length. */
static size_t transform(enum variant v, const uint8_t *p, size_t n, uint8_t *out)
{
    memcpy(out, p, n);
    if (v == NAME_CASE) {
        /* a status line stays one, a header line must not become one */
        bool http = n >= 5 && (out[0] | 0x20) == 'h' && (out[1] | 0x20) == 't' &&
                    (out[2] | 0x20) == 't' && (out[3] | 0x20) == 'p' && out[4] == '/';
        const uint8_t *colon = memchr(out, ':', n);
        if (!http && colon)
            for (uint8_t *c = out; c < colon; c++)
                if (ascii_letter(*c))
                    *c ^= 0x20;
        return n;
    }
    if (v == LINE_ENDS && n >= 1 && out[n - 1] == '\n') {
        if (n >= 2 && out[n - 2] == '\r') {
            out[n - 2] = '\n';
            return n - 1;
        }
        out[n - 1] = '\r';
        out[n] = '\n';
        return n + 1;
    }
    return n;
}

/* The model's view of one line: a status line forgets, a Retry-After sets. */
static void model_line(struct outcome *o, const uint8_t *p, size_t n)
{
    static const char name[] = "retry-after:";
    if (starts(p, n, "HTTP/")) {
        o->ra_seen = false;
        return;
    }
    if (n < sizeof name - 1)
        return;
    for (size_t i = 0; i < sizeof name - 1; i++)
        if ((ascii_letter(p[i]) ? p[i] | 0x20 : p[i]) != (uint8_t)name[i])
            return;
    o->ra_seen = true;
    o->ra_val = p + sizeof name - 1;
    o->ra_len = n - (sizeof name - 1);
}

static void feed(struct outcome *o, enum variant v, const uint8_t *p, size_t n, uint8_t *scratch)
{
    size_t len = transform(v, p, n, scratch);
    /* an exact-size copy so ASan sees any read past the line */
    char *line = malloc(len ? len : 1);
    check(line != NULL);
    memcpy(line, scratch, len);
    sync_http_parse_header_line(&o->r, line, len);
    free(line);
    check(memchr(o->r.retry_after, '\0', sizeof o->r.retry_after) != NULL);
    if (v == AS_IS)
        model_line(o, p, n);
}

/* Feeds the heads of the input line by line; sets status and body_off. */
static void run_heads(const uint8_t *data, size_t size, enum variant v, struct outcome *o)
{
    uint8_t *scratch = malloc(size + 2);
    size_t off = 0;
    check(scratch != NULL);
    memset(o, 0, sizeof *o);
    for (;;) {
        long code = -1;
        bool first = true, ended = false;
        while (off < size && !ended) {
            size_t n = line_len(data + off, size - off);
            if (first)
                code = status_code(data + off, n);
            first = false;
            ended = empty_line(data + off, n);
            feed(o, v, data + off, n, scratch);
            off += n;
        }
        if (!ended)
            feed(o, v, (const uint8_t *)"\r\n", 2, scratch);
        o->status = code < 0 ? 0 : code;
        /* an interim response: the final one follows */
        if (code < 100 || code > 199 || off >= size)
            break;
    }
    o->body_off = off;
    free(scratch);
}

/* The delay a Retry-After value gives at now, -1 if it is refused. */
static int64_t retry_after_ms(const char *value, int64_t now)
{
    int64_t d = -1;
    if (!sync_policy_parse_retry_after(value, now, &d))
        return -1;
    check(d >= 0 && d <= SYNC_RETRY_AFTER_MAX_MS);
    return d;
}

/* What the whole field value means (the model), -1 if absent or refused. */
static int64_t model_retry_after_ms(const struct outcome *o)
{
    if (!o->ra_seen || memchr(o->ra_val, '\0', o->ra_len))
        return -1;
    char *v = malloc(o->ra_len + 1);
    check(v != NULL);
    memcpy(v, o->ra_val, o->ra_len);
    v[o->ra_len] = '\0';
    int64_t d = retry_after_ms(v, NOW_MS);
    free(v);
    return d;
}

static void check_headers(const uint8_t *data, size_t size, struct outcome *o)
{
    run_heads(data, size, AS_IS, o);
    for (int v = AS_IS + 1; v < VARIANTS; v++) {
        struct outcome w;
        run_heads(data, size, (enum variant)v, &w);
        check(w.status == o->status && w.body_off == o->body_off);
        check(strcmp(w.r.retry_after, o->r.retry_after) == 0);
    }
    int64_t got = o->r.retry_after[0] ? retry_after_ms(o->r.retry_after, NOW_MS) : -1;
    check(got == model_retry_after_ms(o));
    if (got >= 0) {
        int64_t later = retry_after_ms(o->r.retry_after, NOW_MS + 1000);
        check(later >= 0 && later <= got && got - later <= 1000);
    }
}

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

static bool printable(uint8_t c)
{
    return c > 0x20 && c < 0x7f;
}

/* The body so collapsed, built from its words (runs of printable bytes):
 * joined by one blank, one more after the last if other bytes follow it.
 * out has room for n + 1 bytes: every blank stands for at least one byte. */
static size_t collapsed(const uint8_t *b, size_t n, char *out)
{
    size_t len = 0, i = 0;
    for (;;) {
        while (i < n && !printable(b[i]))
            i++;
        if (i == n)
            break;
        if (len > 0)
            out[len++] = ' ';
        while (i < n && printable(b[i]))
            out[len++] = (char)b[i++];
    }
    if (len > 0 && !printable(b[n - 1]))
        out[len++] = ' ';
    return len;
}

static void check_body(const uint8_t *b, size_t n, uint64_t h)
{
    struct sync_http_resp whole, pieces;
    size_t wl = 0, pl = 0;
    memset(&whole, 0x55, sizeof whole);
    memset(&pieces, 0x55, sizeof pieces);
    sync_http_body_excerpt(&whole, &wl, (const char *)b, n);
    for (size_t off = 0, k = 0; off < n || k == 0; k++) {
        size_t piece = 1 + (size_t)((h >> (k % 60)) % 37);
        if (piece > n - off)
            piece = n - off;
        sync_http_body_excerpt(&pieces, &pl, (const char *)b + off, piece);
        off += piece;
    }
    check(wl < SYNC_HTTP_EXCERPT && whole.body[wl] == '\0' && strlen(whole.body) == wl);
    check(pl == wl && memcmp(pieces.body, whole.body, wl + 1) == 0);
    for (size_t i = 0; i < wl; i++)
        check(printable((uint8_t)whole.body[i]) ||
              (whole.body[i] == ' ' && i > 0 && whole.body[i - 1] != ' '));

    char *want = malloc(n + 1);
    check(want != NULL);
    size_t len = collapsed(b, n, want);
    if (len > SYNC_HTTP_EXCERPT - 1)
        len = SYNC_HTTP_EXCERPT - 1;
    check(wl == len && memcmp(whole.body, want, len) == 0);
    free(want);
}

static void check_verdict(long status)
{
    enum sync_verdict v = sync_policy_classify(status);
    if (status >= 200 && status <= 299)
        check(v == SYNC_SUCCESS);
    else if (status == 413)
        check(v == SYNC_SPLIT);
    else if (status == 408 || status == 425 || status == 429)
        check(v == SYNC_RETRY);
    else if (status >= 400 && status <= 499)
        check(v == SYNC_PARK);
    else
        check(v == SYNC_RETRY);
    check(strcmp(sync_verdict_str(v), "unknown") != 0);
}

static uint64_t rng_const(void *ctx)
{
    return *(const uint64_t *)ctx;
}

static int64_t ceiling_ms(uint32_t attempt)
{
    uint32_t shift = attempt <= 1 ? 0 : attempt - 1;
    if (shift > 40)
        return SYNC_BACKOFF_CAP_MS;
    int64_t c = (int64_t)SYNC_BACKOFF_BASE_MS << shift;
    return c < SYNC_BACKOFF_CAP_MS ? c : SYNC_BACKOFF_CAP_MS;
}

/* sync.c: a refused or absent Retry-After is -1, then the policy's delay. */
static void check_delays(long status, const char *retry_after, uint64_t h)
{
    int64_t ra = retry_after[0] ? retry_after_ms(retry_after, NOW_MS) : -1;
    bool honoured = ra >= 0 && (status == 429 || status == 503);
    const uint32_t attempts[] = {
        0, 1, 2, 3, 7, 8, 9, 31, 32, 33, 64, UINT32_MAX, (uint32_t)(h >> 32)};
    for (size_t i = 0; i < sizeof attempts / sizeof attempts[0]; i++) {
        uint32_t a = attempts[i];
        int64_t ceiling = ceiling_ms(a);
        uint64_t zero = 0, max = UINT64_MAX, exact = (uint64_t)ceiling, seed = h | 1;
        int64_t d0 = sync_policy_retry_delay_ms(status, ra, a, rng_const, &zero);
        int64_t dmax = sync_policy_retry_delay_ms(status, ra, a, rng_const, &max);
        int64_t dexact = sync_policy_retry_delay_ms(status, ra, a, rng_const, &exact);
        int64_t drng = sync_policy_retry_delay_ms(status, ra, a, sync_policy_xorshift, &seed);
        if (honoured) {
            check(d0 == ra && dmax == ra && dexact == ra && drng == ra);
            continue;
        }
        check(d0 == 0 && dexact == ceiling);
        check(dmax >= 0 && dmax <= ceiling && drng >= 0 && drng <= ceiling);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct outcome o;
    uint64_t h = fnv1a(data, size);
    check_headers(data, size, &o);
    check_body(data + o.body_off, size - o.body_off, h);
    check_verdict(o.status);
    check_delays(o.status, o.r.retry_after, h);
    return 0;
}
