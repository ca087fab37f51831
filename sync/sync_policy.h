/*
 * sync_policy — what to do with an upstream answer, and how long to wait
 * before the next attempt. Pure: no I/O, no clock reads, no global state; the
 * caller passes the wall-clock time and a random number source, so unit
 * tests are deterministic.
 *
 * Classification (docs/RELIABILITY.md, "Upstream over HTTPS"):
 *   2xx                                   SUCCESS  advance the cursor
 *   413 Payload Too Large                 SPLIT    cut the batch in halves
 *   408, 425, 429                         RETRY    same batch, after a backoff
 *   any other 4xx                         PARK     a permanent refusal of this
 *                                                  batch: remember it, go on
 *   5xx                                   RETRY
 *   transport errors (connect, TLS,       RETRY    (TLS failures are a setup
 *   timeout, reset), 1xx, 3xx                      problem, not a bad batch:
 *                                                  parking would park everything)
 *
 * Backoff: exponential with FULL jitter (AWS architecture blog, "Exponential
 * Backoff And Jitter"): the n-th consecutive failure (n >= 1) waits a uniform
 * random time in [0, min(cap, base * 2^(n-1))]. A Retry-After on a 429 or 503
 * replaces the jittered delay (clamped to SYNC_RETRY_AFTER_MAX_MS so that a
 * misbehaving server cannot stall shipping for days).
 *
 * Retry-After (RFC 9110 §10.2.3): delay-seconds (1*DIGIT) or an HTTP-date in
 * any of the three forms a recipient must accept: IMF-fixdate
 * ("Sun, 06 Nov 1994 08:49:37 GMT"), obsolete RFC 850
 * ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime ("Sun Nov  6 08:49:37 1994").
 * A date in the past means "now".
 *
 * Threading: pure, any thread.
 */
#ifndef EL_SYNC_POLICY_H
#define EL_SYNC_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SYNC_BACKOFF_BASE_MS 250
#define SYNC_BACKOFF_CAP_MS 30000
#define SYNC_RETRY_AFTER_MAX_MS (600 * 1000)

enum sync_verdict { SYNC_SUCCESS = 0, SYNC_RETRY, SYNC_SPLIT, SYNC_PARK };

/* http_status is 0 when no HTTP response was received (transport error). */
enum sync_verdict sync_policy_classify(long http_status);
const char *sync_verdict_str(enum sync_verdict v);

/* A random source: returns 64 uniformly distributed bits. */
typedef uint64_t (*sync_rng_fn)(void *ctx);

/* xorshift64* — the worker's default source; *state must not be 0. */
uint64_t sync_policy_xorshift(void *state);

/* The full-jitter delay of the attempt-th consecutive failure (attempt >= 1;
 * 0 is treated as 1), in [0, min(cap_ms, base_ms << (attempt-1))]. */
int64_t sync_policy_backoff_ms(uint32_t attempt, int64_t base_ms, int64_t cap_ms, sync_rng_fn rng,
                               void *rng_ctx);

/* Parses a Retry-After value (leading/trailing blanks allowed) into a delay
 * in [0, SYNC_RETRY_AFTER_MAX_MS]. now_wall_ms is the current wall time for
 * the HTTP-date form. Returns false (and leaves *delay_ms alone) when the
 * value is neither form. */
bool sync_policy_parse_retry_after(const char *value, int64_t now_wall_ms, int64_t *delay_ms);

/* The wait before retrying after a RETRY verdict: Retry-After (retry_after_ms
 * >= 0, only honoured for 429 and 503) clamped to SYNC_RETRY_AFTER_MAX_MS,
 * else the full-jitter backoff with the default base and cap. */
int64_t sync_policy_retry_delay_ms(long http_status, int64_t retry_after_ms, uint32_t attempt,
                                   sync_rng_fn rng, void *rng_ctx);

/* Token bucket on bytes on the wire (sync.max_kbps), pure: the caller passes
 * CLOCK_MONOTONIC milliseconds. rate = max_kbps * 125 bytes per second
 * (1 kbit = 1000 bits); the bucket holds at most one second of rate (the
 * burst) and starts full. A request of n bytes may go when the bucket holds
 * min(n, burst); sending takes all n, so the bucket may go negative (by up
 * to n - burst) and a request larger than the burst delays the next one:
 * over any interval the bytes sent stay below burst + the largest request +
 * rate * interval (the last request of the interval may be sent on credit),
 * and a steady stream runs at the rate. max_kbps <= 0: unlimited (delay
 * always 0). */
struct sync_bucket {
    double rate_per_ms; /* bytes per millisecond; 0 = unlimited */
    double burst;       /* bytes */
    double tokens;
    int64_t last_ms;
};

void sync_bucket_init(struct sync_bucket *b, int64_t max_kbps, int64_t now_ms);
/* Milliseconds until n bytes may be sent (0 = now). */
int64_t sync_bucket_delay_ms(struct sync_bucket *b, int64_t now_ms, size_t n);
/* n bytes were sent (or are being sent) now. */
void sync_bucket_take(struct sync_bucket *b, int64_t now_ms, size_t n);

#endif
