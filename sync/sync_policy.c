/* sync_policy — response classification, backoff, Retry-After (see sync_policy.h). */
#include "sync_policy.h"

#include <string.h>

#include "plat_time.h"

enum sync_verdict sync_policy_classify(long http_status)
{
    if (http_status >= 200 && http_status <= 299)
        return SYNC_SUCCESS;
    if (http_status == 413)
        return SYNC_SPLIT;
    if (http_status == 408 || http_status == 425 || http_status == 429)
        return SYNC_RETRY;
    if (http_status >= 400 && http_status <= 499)
        return SYNC_PARK;
    return SYNC_RETRY; /* 0 (transport), 1xx, 3xx, 5xx, nonsense */
}

const char *sync_verdict_str(enum sync_verdict v)
{
    switch (v) {
    case SYNC_SUCCESS: return "success";
    case SYNC_RETRY: return "retry";
    case SYNC_SPLIT: return "split";
    case SYNC_PARK: return "park";
    }
    return "unknown";
}

uint64_t sync_policy_xorshift(void *state)
{
    uint64_t *s = state;
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

int64_t sync_policy_backoff_ms(uint32_t attempt, int64_t base_ms, int64_t cap_ms, sync_rng_fn rng,
                               void *rng_ctx)
{
    if (base_ms <= 0 || cap_ms <= 0)
        return 0;
    if (attempt == 0)
        attempt = 1;
    int64_t ceiling = base_ms;
    for (uint32_t i = 1; i < attempt && ceiling < cap_ms; i++)
        ceiling *= 2; /* base and cap are small: no overflow before the cap stops it */
    if (ceiling > cap_ms)
        ceiling = cap_ms;
    /* Uniform in [0, ceiling]: the modulo bias over 2^64 is negligible. */
    return (int64_t)(rng(rng_ctx) % (uint64_t)(ceiling + 1));
}

/* ---- Retry-After ---- */

static const char *skip_blanks(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
        p++;
    return p;
}

/* Reads exactly n digits; -1 if not. */
static int64_t digits(const char **pp, int n)
{
    const char *p = *pp;
    int64_t v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    *pp = p + n;
    return v;
}

static bool lit(const char **pp, const char *s)
{
    size_t n = strlen(s);
    if (strncmp(*pp, s, n) != 0)
        return false;
    *pp += n;
    return true;
}

/* Month "Jan".."Dec" -> 1..12, 0 if none. */
static int month(const char **pp)
{
    static const char names[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    for (int m = 0; m < 12; m++)
        if (strncmp(*pp, names + 3 * m, 3) == 0) {
            *pp += 3;
            return m + 1;
        }
    return 0;
}

/* Skips a day name: three letters ("Sun") or a full one ("Sunday"). */
static bool day_name(const char **pp, bool full)
{
    static const char *const names[] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                        "Friday", "Saturday", "Sunday"};
    for (int i = 0; i < 7; i++) {
        size_t n = full ? strlen(names[i]) : 3;
        if (strncmp(*pp, names[i], n) == 0) {
            *pp += n;
            return true;
        }
    }
    return false;
}

/* "HH:MM:SS" */
static bool clock_time(const char **pp, int64_t *secs)
{
    int64_t h = digits(pp, 2);
    if (h < 0 || !lit(pp, ":"))
        return false;
    int64_t mi = digits(pp, 2);
    if (mi < 0 || !lit(pp, ":"))
        return false;
    int64_t s = digits(pp, 2);
    if (s < 0 || h > 23 || mi > 59 || s > 60)
        return false;
    *secs = h * 3600 + mi * 60 + s;
    return true;
}

static bool valid_date(int64_t y, int64_t m, int64_t d)
{
    return y >= 1970 && y <= 9999 && m >= 1 && m <= 12 && d >= 1 &&
           d <= plat_time_days_in_month(y, (int)m);
}

/* Parses the three HTTP-date forms into epoch ms; the rest of p must be blank. */
static bool http_date(const char *p, int64_t *epoch_ms)
{
    int64_t y, m, d, secs;
    const char *q = p;
    if (day_name(&q, false) && lit(&q, ", ")) { /* IMF-fixdate */
        if ((d = digits(&q, 2)) < 0 || !lit(&q, " ") || (m = month(&q)) == 0 || !lit(&q, " ") ||
            (y = digits(&q, 4)) < 0 || !lit(&q, " ") || !clock_time(&q, &secs) || !lit(&q, " GMT"))
            return false;
    } else if ((q = p, day_name(&q, true)) && lit(&q, ", ")) { /* RFC 850 */
        if ((d = digits(&q, 2)) < 0 || !lit(&q, "-") || (m = month(&q)) == 0 || !lit(&q, "-") ||
            (y = digits(&q, 2)) < 0 || !lit(&q, " ") || !clock_time(&q, &secs) || !lit(&q, " GMT"))
            return false;
        /* RFC 9110: a two-digit year more than 50 years in the future is
         * in the past century; we simply read 70..99 as 19xx. */
        y += y >= 70 ? 1900 : 2000;
    } else if ((q = p, day_name(&q, false)) && lit(&q, " ")) { /* asctime */
        if ((m = month(&q)) == 0 || !lit(&q, " "))
            return false;
        if (*q == ' ') {
            q++;
            if ((d = digits(&q, 1)) < 0)
                return false;
        } else if ((d = digits(&q, 2)) < 0) {
            return false;
        }
        if (!lit(&q, " ") || !clock_time(&q, &secs) || !lit(&q, " ") || (y = digits(&q, 4)) < 0)
            return false;
    } else {
        return false;
    }
    if (*skip_blanks(q) != '\0' || !valid_date(y, m, d))
        return false;
    *epoch_ms = (plat_time_days_from_civil(y, (int)m, (int)d) * 86400 + secs) * 1000;
    return true;
}

bool sync_policy_parse_retry_after(const char *value, int64_t now_wall_ms, int64_t *delay_ms)
{
    const char *p = skip_blanks(value);
    if (*p >= '0' && *p <= '9') {
        int64_t secs = 0;
        while (*p >= '0' && *p <= '9') {
            if (secs <= SYNC_RETRY_AFTER_MAX_MS / 1000) /* saturate: no overflow */
                secs = secs * 10 + (*p - '0');
            p++;
        }
        if (*skip_blanks(p) != '\0')
            return false;
        *delay_ms = secs > SYNC_RETRY_AFTER_MAX_MS / 1000 ? SYNC_RETRY_AFTER_MAX_MS : secs * 1000;
        return true;
    }
    int64_t at_ms;
    if (!http_date(p, &at_ms))
        return false;
    at_ms = at_ms > now_wall_ms ? at_ms - now_wall_ms : 0;
    *delay_ms = at_ms > SYNC_RETRY_AFTER_MAX_MS ? SYNC_RETRY_AFTER_MAX_MS : at_ms;
    return true;
}

int64_t sync_policy_retry_delay_ms(long http_status, int64_t retry_after_ms, uint32_t attempt,
                                   sync_rng_fn rng, void *rng_ctx)
{
    if (retry_after_ms >= 0 && (http_status == 429 || http_status == 503))
        return retry_after_ms > SYNC_RETRY_AFTER_MAX_MS ? SYNC_RETRY_AFTER_MAX_MS : retry_after_ms;
    return sync_policy_backoff_ms(attempt, SYNC_BACKOFF_BASE_MS, SYNC_BACKOFF_CAP_MS, rng, rng_ctx);
}

/* ---- token bucket ---- */

void sync_bucket_init(struct sync_bucket *b, int64_t max_kbps, int64_t now_ms)
{
    b->rate_per_ms = max_kbps > 0 ? (double)max_kbps * 125.0 / 1000.0 : 0;
    b->burst = b->rate_per_ms * 1000.0;
    b->tokens = b->burst;
    b->last_ms = now_ms;
}

static void bucket_refill(struct sync_bucket *b, int64_t now_ms)
{
    if (now_ms > b->last_ms) {
        b->tokens += (double)(now_ms - b->last_ms) * b->rate_per_ms;
        if (b->tokens > b->burst)
            b->tokens = b->burst;
        b->last_ms = now_ms;
    }
}

int64_t sync_bucket_delay_ms(struct sync_bucket *b, int64_t now_ms, size_t n)
{
    if (b->rate_per_ms <= 0)
        return 0;
    bucket_refill(b, now_ms);
    double need = (double)n < b->burst ? (double)n : b->burst;
    if (b->tokens >= need)
        return 0;
    double ms = (need - b->tokens) / b->rate_per_ms;
    return (int64_t)ms + 1;
}

void sync_bucket_take(struct sync_bucket *b, int64_t now_ms, size_t n)
{
    if (b->rate_per_ms <= 0)
        return;
    bucket_refill(b, now_ms);
    b->tokens -= (double)n;
}
