/*
 * sync — the upstream sync worker (API in sync.h).
 *
 * DESIGN. One thread loops: wait for work, cut or reload a batch, POST it,
 * act on the verdict (sync_policy.h). The batch being sent ("current") is
 * identified by its sequence range [first, last]; that range is written to
 * sync_cursor.inflight_* before the first attempt, so every retry — after a
 * 5xx, a timeout, a reset, or a SIGKILL and restart — re-reads exactly the
 * same events and sends byte-identical bodies with the same Idempotency-Key.
 * Duplicates can therefore only be exact resends of one batch.
 *
 *   2xx   cursor := last (sync_cursor.acked_seq), inflight cleared, one
 *         transaction; the next batch goes at once (catch-up at full speed,
 *         oldest first).
 *   RETRY the same batch after the policy's delay (full-jitter backoff,
 *         Retry-After for 429/503), measured on CLOCK_MONOTONIC.
 *   413   the batch is cut again to its first ceil(n/2) events (same start,
 *         deterministic), recorded as the new inflight range, sent at once;
 *         later batches stay at most that many events for this run. A single
 *         event refused with 413 is parked.
 *   other 4xx  parked: the range goes to sync_parked and the cursor moves
 *         past it in one transaction; shipping goes on. Nothing is lost:
 *         sync_retry_parked() starts a pass that resends each parked range
 *         (oldest first, same range, same key) once; delivered ones are
 *         removed, refused ones stay parked with the new answer.
 *
 * LANES (sync.live_window_s > 0). After an outage the backlog is old and
 * the newest readings are what an operator watches, so the link is shared
 * by two lanes:
 *   backlog lane  ships (acked_seq, live_from) oldest first, from the cursor
 *                 (the contiguous shipped prefix: retention's meaning of
 *                 acked_seq is unchanged);
 *   live lane     ships [live_from, committed] in order from live_from, the
 *                 first event received within live_window_s of now when the
 *                 lane started; its shipped range is [live_from, live_to].
 * The lane starts between batches, when there is no live lane and the
 * oldest unshipped event was received more than live_window_s ago and more
 * than one batch lies before the window (binary search on seq over the
 * receive times: recv grows with seq). Interleaving: a live batch whenever
 * a full batch of live events waits and the live lane's next event was
 * received within live_window_s (so the live lane first catches up with its
 * window, newest data first) or the live lane has anything and the
 * previous batch was a backlog one; else a backlog batch. Once caught up,
 * live data waits for at most one backlog batch while the backlog drains,
 * and the backlog gets every other batch (all of the link's spare capacity
 * when live data comes slower than that); with the backlog drained
 * (acked_seq = live_from - 1) the lanes merge: acked_seq := live_to and the
 * live lane ends (one statement), and shipping is one lane again. Both lanes
 * cut deterministically from their recorded start (acked_seq or live_to),
 * so every batch of either lane is cut the same whenever it is cut again.
 * A second outage while a live lane exists: the live lane is not moved
 * forward (that would need a second gap in the shipped state); its next
 * event is then older than the window, so it loses its priority and the
 * lanes simply alternate (until its next event is within the window again,
 * or the backlog drains and they merge). The
 * newest readings then wait behind the second outage's events, which the
 * live lane ships oldest first, at half the link each.
 * live_window_s reloaded to 0 (or lowered) with a stored live lane: no new
 * lane starts, but the stored one finishes as above (alternating) and
 * merges first; its batches keep X-Edgelambda-Lane: live and the backlog's
 * "backlog" until then (the header follows the lane that cut the batch, so
 * a resend carries the same headers).
 * On disk (sync_store.h): acked_seq, live_from, live_to, and the one batch
 * in flight (inflight_first/last; the live lane's when >= live_from).
 * After a crash:
 *   - before live_from is stored: nothing of the live lane was sent; the
 *     next run decides afresh;
 *   - after: the next run (a restart, or a reload that replaces the worker
 *     through sync_free/sync_new) resumes both lanes from the stored state;
 *     only the alternation turn (taken from the lane of the batch in flight)
 *     and the token bucket (full again) are not kept;
 *   - with a batch in flight (either lane): it is re-cut from its recorded
 *     range, byte-identical, same Idempotency-Key, and sent first;
 *   - after a 2xx but before live_to/acked_seq moved: that batch is resent
 *     (same range, same bytes): the receiver's dedup drops it;
 *   - around the merge: it is one UPDATE, before or after.
 * Parked batches of either lane are parked as before (the lane's start moves
 * past them); retention keeps everything above the contiguous prefix.
 *
 * BANDWIDTH (sync.max_kbps > 0): a token bucket (sync_policy.h) shared by
 * both lanes and every attempt, charged with the compressed body plus
 * SYNC_WIRE_HEADER_BYTES (request line and headers, measured against nginx's
 * $request_length; TLS framing is not counted) plus the Authorization
 * header's length when there is a token, burst one second of rate (so over
 * any interval at most burst + the largest request + rate * interval).
 * A batch that must wait stays current and the worker sleeps on cv until the
 * bucket allows it (stop and kick still wake it). Measured through nginx
 * (test_sync_lanes.py, 800 kbit/s): 100.1% of the cap. curl's
 * CURLOPT_MAX_SEND_SPEED_LARGE at the same rate, measured the same way, gave
 * 103.5% with 10 KB bodies and 120% with 180 KB ones: it paces each transfer
 * on its own (starting afresh, with a burst, at every request) and counts
 * body bytes only, so it is not used.
 *
 * When to send: a full batch (batch_events since the cursor) goes at once;
 * a partial one after SYNC_LINGER_MS (so a trickle of readings makes one
 * request per half second, not one per event), or at once after sync_kick.
 * A failing upstream's backoff holds even against a kick.
 *
 * Bounded memory: one batch buffer of batch_bytes + SYNC_ENCODE_EVENT_MAX and
 * one compression buffer of its worst case, both allocated by sync_new.
 *
 * Threading: the worker owns the store (SQLite connection), the master-log
 * reader (opened on the core thread by sync_new, then the worker's), encoder,
 * compressor and curl handle. mu guards the fields marked "shared" and the
 * published status; the worker waits on cv (CLOCK_MONOTONIC) and is woken by
 * notify (when it waits for data), kick, retry_parked and stop. stop_flag is
 * also read by curl's progress callback so that sync_free interrupts a
 * request within about a second.
 */
#include "sync.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mlog_read.h"
#include "plat_clock.h"
#include "plat_log.h"
#include "sync_batch.h"
#include "sync_compress.h"
#include "sync_encode.h"
#include "sync_http.h"
#include "sync_policy.h"
#include "sync_store.h"

#define SYNC_LINGER_MS 500
#define SYNC_RATE_WINDOW_S 10
#define SYNC_LOG_INTERVAL_MS 10000
#define SYNC_DB_RETRY_MS 1000
/* Request line and headers of one POST as nginx counts them ($request_length
 * minus the body: 296-308 bytes with an 8-byte device id, no token, in
 * test_sync_lanes.py); the Authorization header is added to it per request
 * (sync_http_auth_bytes). */
#define SYNC_WIRE_HEADER_BYTES 300
/* Probes of the receive-time binary search that starts the live lane. */
#define SYNC_LIVE_SEARCH_MAX 64

struct sync_current {
    bool valid;
    bool parked;             /* from sync_parked (a retry-parked pass) */
    bool live;               /* cut by the live lane */
    int64_t parked_row;      /* its sync_parked.first_seq */
    struct sync_batch batch; /* range, events, encoded length */
    const void *body;        /* compressed body (buf or the compressor's) */
    size_t body_len;
};

struct sync {
    /* options, copied */
    char dir[SYNC_PATH_MAX];
    char url_shown[SYNC_URL_MAX];
    char device_id[SYNC_DEVICE_ID_MAX];
    enum sync_format format;
    enum sync_compression compression;
    int64_t batch_events;
    size_t batch_bytes;

    /* worker-owned */
    struct sync_store *store;
    struct mlog_reader *log; /* the master log, read-only, outside any snapshot */
    struct sync_encoder enc;
    struct sync_compressor *comp;
    struct sync_http *http;
    char *buf;
    size_t buf_cap;
    struct sync_current cur;
    int64_t acked;
    int64_t max_events; /* batch_events, lowered by 413s */
    uint32_t attempt;   /* consecutive failures of the current batch */
    int64_t next_try_mono_ms;
    int64_t pending_since_mono_ms; /* 0 = caught up */
    uint64_t rng;
    bool parked_pass;
    int64_t parked_after;
    struct sync_store_state parked; /* parked_* fields kept current */
    int64_t oldest_for_acked;       /* acked value oldest_recv_ms was computed for */
    int64_t oldest_recv_ms;         /* -1 none */
    char transient_error[256];
    char park_error[256];
    double wire_per_event;
    struct plat_log_limit log_limit;
    int64_t live_window_ms;        /* 0 = one lane */
    int64_t live_from, live_to;    /* the live lane; live_from = 0: none */
    bool last_live;                /* the previous batch was a live one */
    struct sync_bucket bucket;     /* sync.max_kbps */
    int64_t send_at_mono_ms;       /* the bucket holds the current batch until then */
    int64_t limited_since_mono_ms; /* 0 = not waiting for the bucket */

    /* shared: guarded by mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool started;
    int64_t committed;
    bool kick, retry_parked_req, stop, waiting;
    struct sync_status status;
    int64_t pub_oldest_recv_ms;
    int64_t pub_live_shipped; /* live_to - live_from + 1 of the published state */
    int64_t rate_events[SYNC_RATE_WINDOW_S];
    int64_t rate_sec[SYNC_RATE_WINDOW_S];
    int64_t start_mono_ms;
    atomic_bool stop_flag;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static el_status curl_init_status = EL_OK;

static void curl_init_once(void)
{
    curl_init_status = sync_http_global_init();
}

static bool should_abort(void *ctx)
{
    struct sync *s = ctx;
    return atomic_load(&s->stop_flag);
}

/* The URL without any user:password@ part, for logs and status. */
static void redact_url(const char *url, char *out, size_t len)
{
    const char *scheme = strstr(url, "://");
    const char *host = scheme ? scheme + 3 : url;
    const char *slash = strchr(host, '/');
    const char *at = strchr(host, '@');
    if (scheme && at && (!slash || at < slash))
        snprintf(out, len, "%.*s://%s", (int)(scheme - url), url, at + 1);
    else
        snprintf(out, len, "%s", url);
}

/* ---- status (shared) ---- */

static void rate_add_locked(struct sync *s, int64_t now_ms, int64_t events)
{
    int64_t sec = now_ms / 1000;
    size_t i = (size_t)(sec % SYNC_RATE_WINDOW_S);
    if (s->rate_sec[i] != sec) {
        s->rate_sec[i] = sec;
        s->rate_events[i] = 0;
    }
    s->rate_events[i] += events;
}

static double rate_locked(const struct sync *s, int64_t now_ms)
{
    int64_t sec = now_ms / 1000, sum = 0;
    for (size_t i = 0; i < SYNC_RATE_WINDOW_S; i++)
        if (s->rate_sec[i] > sec - SYNC_RATE_WINDOW_S && s->rate_sec[i] <= sec)
            sum += s->rate_events[i];
    int64_t span = (now_ms - s->start_mono_ms) / 1000 + 1;
    if (span > SYNC_RATE_WINDOW_S)
        span = SYNC_RATE_WINDOW_S;
    return (double)sum / (double)(span > 0 ? span : 1);
}

/* Copies the worker's view into the published status. */
static void publish(struct sync *s)
{
    pthread_mutex_lock(&s->mu);
    struct sync_status *st = &s->status;
    int64_t live_shipped = s->live_from > 0 ? s->live_to - s->live_from + 1 : 0;
    int64_t pending = s->committed > s->acked ? s->committed - s->acked - live_shipped : 0;
    if (pending < 0)
        pending = 0;
    st->enabled = true;
    st->cursor_seq = s->acked;
    st->live_from_seq = s->live_from;
    st->lane_live_events =
        s->live_from > 0 && s->committed > s->live_to ? s->committed - s->live_to : 0;
    st->lane_backlog_events = pending - st->lane_live_events;
    s->pub_live_shipped = live_shipped;
    /* parked events are not acknowledged: retention must keep them */
    st->acked_seq = s->parked.parked_min_first > 0 && s->parked.parked_min_first - 1 < s->acked
                        ? s->parked.parked_min_first - 1
                        : s->acked;
    st->parked_batches = s->parked.parked_batches;
    st->parked_events = s->parked.parked_events;
    st->backlog_events = pending + s->parked.parked_events;
    st->backlog_bytes = (int64_t)((double)st->backlog_events * s->wire_per_event);
    s->pub_oldest_recv_ms = s->oldest_recv_ms;
    if (s->transient_error[0])
        snprintf(st->last_error, sizeof st->last_error, "%s", s->transient_error);
    else if (s->parked.parked_batches > 0 && s->park_error[0])
        snprintf(st->last_error, sizeof st->last_error, "%s", s->park_error);
    else
        st->last_error[0] = '\0';
    pthread_mutex_unlock(&s->mu);
}

/* ---- worker steps ---- */

static void set_transient(struct sync *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_transient(struct sync *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->transient_error, sizeof s->transient_error, fmt, ap);
    va_end(ap);
}

static void backoff(struct sync *s, long http_status, int64_t retry_after_ms)
{
    s->attempt++;
    int64_t delay = sync_policy_retry_delay_ms(http_status, retry_after_ms, s->attempt,
                                               sync_policy_xorshift, &s->rng);
    s->next_try_mono_ms = plat_clock_mono_ms() + delay;
    pthread_mutex_lock(&s->mu);
    s->status.retries++;
    pthread_mutex_unlock(&s->mu);
    plat_log_limited(&s->log_limit, SYNC_LOG_INTERVAL_MS, PLAT_LOG_WARN,
                     "sync: %s; retrying seq %lld-%lld in %.1f s (attempt %u)", s->transient_error,
                     (long long)s->cur.batch.first_seq, (long long)s->cur.batch.last_seq,
                     (double)delay / 1000.0, s->attempt);
}

static void db_trouble(struct sync *s, el_status st, const char *what)
{
    set_transient(s, "master log: %s failed (%s)", what, el_status_str(st));
    s->next_try_mono_ms = plat_clock_mono_ms() + SYNC_DB_RETRY_MS;
}

/* Re-reads the parked totals and describes the latest refusal for status. */
static el_status reload_parked(struct sync *s)
{
    struct sync_store_state ps;
    struct sync_parked p;
    char response[SYNC_STORE_RESPONSE_MAX + 1];
    el_status st = sync_store_load(s->store, &ps);
    if (st != EL_OK)
        return st;
    s->parked.parked_batches = ps.parked_batches;
    s->parked.parked_events = ps.parked_events;
    s->parked.parked_min_first = ps.parked_min_first;
    s->oldest_for_acked = -1; /* recompute the oldest unsent event */
    st = sync_store_latest_parked(s->store, &p, response, sizeof response);
    if (st == EL_NOTFOUND) {
        s->park_error[0] = '\0';
        return EL_OK;
    }
    if (st == EL_OK)
        snprintf(s->park_error, sizeof s->park_error,
                 "HTTP %ld for seq %lld-%lld (parked; %lld parked batches): %s", p.http_status,
                 (long long)p.first_seq, (long long)p.last_seq, (long long)ps.parked_batches,
                 response);
    return st;
}

static void refresh_oldest(struct sync *s, int64_t committed)
{
    if (s->oldest_for_acked == s->acked && (s->oldest_recv_ms >= 0 || committed <= s->acked))
        return;
    int64_t a = -1, b = -1, recv;
    if (committed > s->acked && mlog_reader_first_recv_after(s->log, s->acked, &recv) == EL_OK)
        a = recv;
    if (s->parked.parked_min_first > 0 &&
        mlog_reader_first_recv_after(s->log, s->parked.parked_min_first - 1, &recv) == EL_OK)
        b = recv;
    s->oldest_recv_ms = a < 0 ? b : (b < 0 || a < b ? a : b);
    s->oldest_for_acked = s->acked;
}

/* Encodes exactly the events of [first, last] into cur (no event limit). */
static el_status encode_range(struct sync *s, int64_t first, int64_t last, int64_t max_events)
{
    return sync_batch_cut(s->log, &s->enc, first - 1, last, max_events, s->batch_bytes, s->buf,
                          s->buf_cap, &s->cur.batch);
}

static el_status compress_current(struct sync *s)
{
    return sync_compress(s->comp, s->buf, s->cur.batch.len, &s->cur.body, &s->cur.body_len);
}

/* The next parked batch (retry pass) into cur; false when none is left. */
static bool load_parked(struct sync *s)
{
    struct sync_current *c = &s->cur;
    struct sync_parked p;
    el_status st = sync_store_next_parked(s->store, s->parked_after, &p);
    if (st == EL_NOTFOUND) {
        s->parked_pass = false;
        log_info("sync: retry of parked batches done; %lld still parked",
                 (long long)s->parked.parked_batches);
        return false;
    }
    if (st != EL_OK) {
        db_trouble(s, st, "reading parked batches");
        return false;
    }
    s->parked_after = p.first_seq;
    st = encode_range(s, p.first_seq, p.last_seq, INT64_MAX);
    if (st == EL_NOTFOUND) { /* its events are gone: nothing left to ship */
        log_warn("sync: parked batch %lld-%lld has no events left; forgetting it",
                 (long long)p.first_seq, (long long)p.last_seq);
        if (sync_store_unpark(s->store, p.first_seq) != EL_OK || reload_parked(s) != EL_OK)
            db_trouble(s, EL_DB, "forgetting a parked batch");
        return false;
    }
    if (st == EL_OK && c->batch.last_seq < p.last_seq) /* batch_bytes lowered since */
        st = sync_store_split_parked(s->store, p.first_seq, c->batch.last_seq, c->batch.events,
                                     c->batch.last_seq + 1, p.events - c->batch.events);
    if (st != EL_OK) {
        db_trouble(s, st, "reading a parked batch");
        return false;
    }
    c->parked = true;
    c->live = false;
    c->parked_row = p.first_seq;
    return true;
}

/* ---- lanes ---- */

/* Receive time of the first event with seq >= at; INT64_MAX when there is
 * none (a gap of dead letters up to the end). */
static el_status recv_from(struct sync *s, int64_t at, int64_t *recv)
{
    el_status st = mlog_reader_first_recv_after(s->log, at - 1, recv);
    if (st == EL_NOTFOUND) {
        *recv = INT64_MAX;
        return EL_OK;
    }
    return st;
}

/* The first seq in (acked, committed] received at or after cutoff, by
 * binary search (receive times grow with seq); 0 when the oldest unshipped
 * event is itself that recent or none is (no live lane then). */
static el_status find_live_start(struct sync *s, int64_t committed, int64_t cutoff, int64_t *out)
{
    int64_t lo = s->acked + 1, hi = committed, recv;
    *out = 0;
    el_status st = recv_from(s, lo, &recv);
    if (st != EL_OK || recv >= cutoff)
        return st;
    if ((st = recv_from(s, hi, &recv)) != EL_OK || recv < cutoff)
        return st;
    /* recv(lo) < cutoff <= recv(hi) */
    for (int i = 0; i < SYNC_LIVE_SEARCH_MAX && hi - lo > 1; i++) {
        int64_t mid = lo + (hi - lo) / 2;
        if ((st = recv_from(s, mid, &recv)) != EL_OK)
            return st;
        if (recv >= cutoff)
            hi = mid;
        else
            lo = mid;
    }
    *out = hi;
    return EL_OK;
}

/* Between batches with no live lane: starts one when more than a batch of
 * the unshipped events is older than live_window_s. */
static el_status maybe_start_live(struct sync *s, int64_t committed)
{
    if (s->live_window_ms <= 0 || s->live_from > 0 || committed - s->acked <= s->max_events)
        return EL_OK;
    int64_t from;
    el_status st = find_live_start(s, committed, plat_clock_wall_ms() - s->live_window_ms, &from);
    if (st != EL_OK || from == 0 || from - 1 - s->acked <= s->max_events)
        return st;
    st = sync_store_live_start(s->store, from);
    if (st != EL_OK)
        return st;
    s->live_from = from;
    s->live_to = from - 1;
    s->last_live = false;
    log_info("sync: %lld events behind; live lane from seq %lld (received within %lld s), "
             "backlog lane from seq %lld",
             (long long)(committed - s->acked), (long long)from,
             (long long)(s->live_window_ms / 1000), (long long)(s->acked + 1));
    return EL_OK;
}

/* The backlog lane reached the live lane: one cursor again. */
static el_status merge_lanes(struct sync *s)
{
    el_status st = sync_store_merge(s->store, s->live_to);
    if (st != EL_OK)
        return st;
    log_info("sync: backlog drained up to the live lane; shipped up to seq %lld",
             (long long)s->live_to);
    s->acked = s->live_to;
    s->live_from = s->live_to = 0;
    return EL_OK;
}

/* Moves the start of a lane past [.., upto] with nothing to ship in it
 * (dead letters only, or nothing). */
static el_status skip_to(struct sync *s, bool live, int64_t upto)
{
    el_status st = live ? sync_store_live_ack(s->store, upto) : sync_store_ack(s->store, upto);
    if (st == EL_OK && live)
        s->live_to = upto;
    else if (st == EL_OK)
        s->acked = upto;
    return st;
}

/* Which lane cuts next: the live one when it has events and the backlog
 * has none, or a full batch of live events waits while the live lane's next
 * event is within the window (newest data first: the live lane catches up
 * with its window), or the backlog just had its turn. A live lane whose next
 * event is older than the window (a second outage) gets no priority: the
 * lanes alternate. */
static bool next_is_live(const struct sync *s, int64_t committed, bool live_stale)
{
    if (s->live_from == 0 || committed <= s->live_to)
        return false;
    return !s->last_live || s->live_from - 1 <= s->acked ||
           (!live_stale && committed - s->live_to >= s->max_events);
}

/* Whether the live lane's next event was received before the window (a
 * second outage, or live_window_s reloaded to 0 while the lane finishes). */
static el_status live_lane_stale(struct sync *s, int64_t committed, bool *stale)
{
    int64_t recv;
    *stale = false;
    if (s->live_from == 0 || committed <= s->live_to)
        return EL_OK;
    el_status st = recv_from(s, s->live_to + 1, &recv);
    if (st == EL_OK)
        *stale = recv < plat_clock_wall_ms() - s->live_window_ms;
    return st;
}

/* A new batch cut after the start of the next lane, recorded as in flight
 * before its first attempt; false when there is nothing to send now. */
static bool load_new(struct sync *s, int64_t committed)
{
    struct sync_current *c = &s->cur;
    el_status st = EL_OK;
    if (s->live_from > 0 && s->acked >= s->live_from - 1)
        st = merge_lanes(s);
    if (st == EL_OK)
        st = maybe_start_live(s, committed);
    bool stale = false;
    if (st == EL_OK)
        st = live_lane_stale(s, committed, &stale);
    if (st != EL_OK) {
        db_trouble(s, st, "choosing a lane");
        return false;
    }
    bool live = next_is_live(s, committed, stale);
    int64_t after = live ? s->live_to : s->acked;
    int64_t upto = live || s->live_from == 0 ? committed : s->live_from - 1;
    st = sync_batch_cut(s->log, &s->enc, after, upto, s->max_events, s->batch_bytes, s->buf,
                        s->buf_cap, &c->batch);
    if (st == EL_NOTFOUND) {
        /* only dead letters (or nothing) up to upto: move past them */
        if (upto > after && (st = skip_to(s, live, upto)) != EL_OK)
            db_trouble(s, st, "advancing the cursor");
        return false;
    }
    if (st == EL_OK)
        st = sync_store_set_inflight(s->store, c->batch.first_seq, c->batch.last_seq);
    if (st != EL_OK) {
        db_trouble(s, st, "cutting a batch");
        return false;
    }
    c->parked = false;
    c->live = live;
    s->last_live = live;
    return true;
}

/* Loads the batch to send into cur: the next parked one (retry pass) or a
 * new cut, compressed. Returns false when there is nothing to send. */
static bool load_batch(struct sync *s, int64_t committed)
{
    if (!(s->parked_pass ? load_parked(s) : load_new(s, committed)))
        return false;
    el_status st = compress_current(s);
    if (st != EL_OK) {
        db_trouble(s, st, "compressing a batch");
        return false;
    }
    s->cur.valid = true;
    return true;
}

static void on_success(struct sync *s, const struct sync_http_resp *r, int64_t committed)
{
    struct sync_current *c = &s->cur;
    el_status st;
    if (c->parked) {
        st = sync_store_unpark(s->store, c->parked_row);
        if (st == EL_OK)
            st = reload_parked(s);
        if (st == EL_OK)
            log_info("sync: parked batch %lld-%lld delivered", (long long)c->batch.first_seq,
                     (long long)c->batch.last_seq);
    } else {
        st = skip_to(s, c->live, c->batch.last_seq);
    }
    if (st != EL_OK) { /* delivered but not recorded: the same batch goes again */
        db_trouble(s, st, "recording a delivered batch");
        return;
    }
    if (s->attempt > 0)
        log_info("sync: upstream accepted seq %lld-%lld after %u retries",
                 (long long)c->batch.first_seq, (long long)c->batch.last_seq, s->attempt);
    int64_t now = plat_clock_mono_ms();
    s->wire_per_event = (double)c->body_len / (double)c->batch.events;
    pthread_mutex_lock(&s->mu);
    s->status.batches_sent++;
    s->status.events_sent += c->batch.events;
    s->status.wire_bytes += (int64_t)c->body_len;
    s->status.last_success_ms = plat_clock_wall_ms();
    rate_add_locked(s, now, c->batch.events);
    pthread_mutex_unlock(&s->mu);
    (void)r;
    s->attempt = 0;
    s->transient_error[0] = '\0';
    c->valid = false;
    /* what is left (less than a full batch) waits its linger from now */
    s->pending_since_mono_ms = committed > (s->live_from > 0 ? s->live_to : s->acked) ? now : 0;
}

static void on_park(struct sync *s, const struct sync_http_resp *r)
{
    struct sync_current *c = &s->cur;
    el_status st;
    int64_t wall = plat_clock_wall_ms();
    if (c->parked)
        st = sync_store_repark(s->store, c->parked_row, r->status, r->body, wall);
    else
        st = sync_store_park(s->store, c->batch.first_seq, c->batch.last_seq, c->batch.events,
                             r->status, r->body, wall, c->batch.last_seq, c->live);
    if (st == EL_OK)
        st = reload_parked(s);
    if (st != EL_OK) {
        db_trouble(s, st, "parking a batch");
        return;
    }
    if (!c->parked && c->live)
        s->live_to = c->batch.last_seq;
    else if (!c->parked)
        s->acked = c->batch.last_seq;
    log_warn("sync: upstream refused %lld events, seq %lld-%lld, with HTTP %ld; parked (%lld "
             "parked batches): %s",
             (long long)c->batch.events, (long long)c->batch.first_seq,
             (long long)c->batch.last_seq, r->status, (long long)s->parked.parked_batches, r->body);
    s->attempt = 0;
    s->transient_error[0] = '\0';
    c->valid = false;
}

/* 413: resend the first half at once. */
static void on_split(struct sync *s, const struct sync_http_resp *r)
{
    struct sync_current *c = &s->cur;
    struct sync_batch old = c->batch;
    int64_t half = (old.events + 1) / 2;
    el_status st = encode_range(s, old.first_seq, old.last_seq, half);
    if (st == EL_OK && c->parked)
        st = sync_store_split_parked(s->store, c->parked_row, c->batch.last_seq, c->batch.events,
                                     c->batch.last_seq + 1, old.events - c->batch.events);
    else if (st == EL_OK)
        st = sync_store_set_inflight(s->store, c->batch.first_seq, c->batch.last_seq);
    if (st == EL_OK)
        st = compress_current(s);
    if (st != EL_OK) {
        c->valid = false; /* cut again from the stored state */
        db_trouble(s, st, "splitting a batch");
        return;
    }
    if (c->parked)
        (void)reload_parked(s);
    else if (s->max_events > half)
        s->max_events = half;
    log_warn("sync: upstream answered HTTP %ld to %lld events (%zu bytes); sending seq "
             "%lld-%lld (%lld events) first",
             r->status, (long long)old.events, old.len, (long long)c->batch.first_seq,
             (long long)c->batch.last_seq, (long long)c->batch.events);
}

/* The token bucket (sync.max_kbps): true when the current batch may go now;
 * else it stays current and send_at_mono_ms says when to try again. */
static bool bucket_allows(struct sync *s, size_t wire)
{
    int64_t now = plat_clock_mono_ms();
    int64_t delay = sync_bucket_delay_ms(&s->bucket, now, wire);
    if (delay > 0) {
        if (s->limited_since_mono_ms == 0)
            s->limited_since_mono_ms = now;
        s->send_at_mono_ms = now + delay;
        return false;
    }
    sync_bucket_take(&s->bucket, now, wire);
    pthread_mutex_lock(&s->mu);
    s->status.sent_bytes += (int64_t)wire;
    if (s->limited_since_mono_ms > 0)
        s->status.rate_limited_ms += now - s->limited_since_mono_ms;
    pthread_mutex_unlock(&s->mu);
    s->limited_since_mono_ms = 0;
    s->send_at_mono_ms = 0;
    return true;
}

/* X-Edgelambda-Lane: the lane that cut the batch ("live" when a live lane
 * did), "backlog" while a live lane exists or may start, none with one lane
 * for good. Not live_window_ms alone: after a reload to live_window_s = 0 a
 * stored live lane finishes, and its batches (and their resends) keep their
 * labels. */
static const char *lane_header(const struct sync *s, const struct sync_current *c)
{
    if (c->live)
        return "live";
    return s->live_from > 0 || s->live_window_ms > 0 ? "backlog" : NULL;
}

static void send_current(struct sync *s, int64_t committed)
{
    struct sync_current *c = &s->cur;
    struct sync_http_resp r;
    if (!bucket_allows(s, c->body_len + SYNC_WIRE_HEADER_BYTES + sync_http_auth_bytes(s->http)))
        return;
    struct sync_http_req req = {
        .body = c->body,
        .len = c->body_len,
        .content_type = sync_encode_content_type(s->format),
        .content_encoding = sync_compress_encoding(s->compression),
        .first_seq = c->batch.first_seq,
        .last_seq = c->batch.last_seq,
        .lane = lane_header(s, c),
    };
    el_status st = sync_http_post(s->http, &req, &r);
    if (r.aborted)
        return;
    enum sync_verdict v = st == EL_OK ? sync_policy_classify(r.status) : SYNC_RETRY;
    if (v == SYNC_SPLIT && c->batch.events <= 1)
        v = SYNC_PARK;
    switch (v) {
    case SYNC_SUCCESS: on_success(s, &r, committed); break;
    case SYNC_PARK: on_park(s, &r); break;
    case SYNC_SPLIT: on_split(s, &r); break;
    case SYNC_RETRY: {
        int64_t retry_after = -1;
        if (r.retry_after[0] &&
            !sync_policy_parse_retry_after(r.retry_after, plat_clock_wall_ms(), &retry_after))
            retry_after = -1;
        if (st != EL_OK)
            set_transient(s, "%s", r.error);
        else
            set_transient(s, "HTTP %ld%s%s: %s", r.status, r.retry_after[0] ? ", Retry-After " : "",
                          r.retry_after, r.body);
        backoff(s, r.status, retry_after);
        break;
    }
    }
}

/* When may the worker act? 0 = now, -1 = when woken, else a monotonic deadline.
 * Called with mu held. */
static int64_t decide(struct sync *s, int64_t now)
{
    if (now < s->next_try_mono_ms)
        return s->next_try_mono_ms;
    if (s->cur.valid && now < s->send_at_mono_ms)
        return s->send_at_mono_ms;
    if (s->cur.valid || s->parked_pass)
        return 0;
    /* with a live lane the backlog lane drains (or merges) at once */
    if (s->live_from > 0 && s->acked < s->committed)
        return 0;
    if (s->committed > s->acked) {
        if (s->pending_since_mono_ms == 0)
            s->pending_since_mono_ms = now;
        int64_t due = s->pending_since_mono_ms + SYNC_LINGER_MS;
        if (s->kick || s->committed - s->acked >= s->max_events || now >= due)
            return 0;
        return due;
    }
    s->pending_since_mono_ms = 0;
    s->kick = false;
    return -1;
}

static void wait_until_mono(struct sync *s, int64_t deadline_ms)
{
    s->waiting = true;
    if (deadline_ms < 0) {
        pthread_cond_wait(&s->cv, &s->mu);
    } else {
        struct timespec ts = {.tv_sec = (time_t)(deadline_ms / 1000),
                              .tv_nsec = (long)(deadline_ms % 1000) * 1000000L};
        /* clockwait names the clock (cv is CLOCK_MONOTONIC too): libfaketime
         * (test_sync_lanes.py) wraps pthread_cond_timedwait and moves its
         * deadline with the faked wall clock, even a monotonic one */
        pthread_cond_clockwait(&s->cv, &s->mu, CLOCK_MONOTONIC, &ts);
    }
    s->waiting = false;
}

static void *worker(void *arg)
{
    struct sync *s = arg;
    for (;;) {
        int64_t committed;
        pthread_mutex_lock(&s->mu);
        for (;;) {
            if (s->stop)
                break;
            if (s->retry_parked_req) {
                s->retry_parked_req = false;
                if (!s->parked_pass) {
                    s->parked_pass = true;
                    s->parked_after = 0;
                }
            }
            int64_t when = decide(s, plat_clock_mono_ms());
            if (when == 0)
                break;
            wait_until_mono(s, when);
        }
        bool stop = s->stop;
        committed = s->committed;
        pthread_mutex_unlock(&s->mu);
        if (stop)
            break;
        /* A retry pass starts only between batches: finish the current one. */
        if (s->cur.valid || load_batch(s, committed)) {
            pthread_mutex_lock(&s->mu);
            s->kick = false;
            pthread_mutex_unlock(&s->mu);
            send_current(s, committed);
        }
        refresh_oldest(s, committed);
        publish(s);
    }
    return NULL;
}

/* ---- API ---- */

static el_status open_worker_state(struct sync *s, const struct sync_opts *o)
{
    struct sync_store_state ss;
    el_status st = sync_store_open(s->dir, &s->store);
    if (st == EL_OK)
        st = sync_store_load(s->store, &ss);
    /* After the store: its connection keeps master.db's WAL files in place
     * for a read-only reader. */
    if (st == EL_OK)
        st = mlog_reader_open_seq(s->dir, SYNC_STORE_BUSY_TIMEOUT_MS, &s->log);
    if (st == EL_OK)
        st = sync_encoder_init(&s->enc, s->format, s->device_id);
    s->enc.include_seq = o->include_seq;
    if (st == EL_OK)
        st = sync_compress_new(s->compression, s->buf_cap, &s->comp);
    if (st != EL_OK)
        return st;
    struct sync_http_opts ho = {
        .url = o->url,
        .ca_file = o->ca_file,
        .cert_file = o->cert_file,
        .key_file = o->key_file,
        .token_file = o->token_file,
        .device_id = s->device_id,
        .insecure = o->insecure,
        .timeout_s = o->timeout_s,
        .should_abort = should_abort,
        .abort_ctx = s,
    };
    st = sync_http_new(&ho, &s->http);
    if (st != EL_OK)
        return st;
    s->acked = ss.acked_seq;
    s->live_from = ss.live_from;
    s->live_to = ss.live_to;
    s->parked = ss;
    st = reload_parked(s);
    if (st != EL_OK)
        return st;
    if (ss.inflight_first > 0) {
        /* A batch was in flight when the last run ended: resend exactly it. */
        s->cur.live = s->live_from > 0 && ss.inflight_first >= s->live_from;
        s->last_live = s->cur.live;
        st = encode_range(s, ss.inflight_first, ss.inflight_last, INT64_MAX);
        if (st == EL_OK && s->cur.batch.last_seq != ss.inflight_last)
            st = sync_store_set_inflight(s->store, s->cur.batch.first_seq, s->cur.batch.last_seq);
        if (st == EL_OK)
            st = compress_current(s);
        if (st == EL_OK) {
            s->cur.valid = true;
            log_info("sync: resending the batch in flight at the last stop, seq %lld-%lld",
                     (long long)s->cur.batch.first_seq, (long long)s->cur.batch.last_seq);
        } else if (st == EL_NOTFOUND) {
            st = skip_to(s, s->cur.live, ss.inflight_last);
        }
    }
    return st;
}

/* Copies the options the worker keeps; EL_INVAL when one does not fit. */
static el_status copy_opts(struct sync *s, const struct sync_opts *o)
{
    const char *dir = o->dir ? o->dir : "";
    const char *device = o->device_id ? o->device_id : "";
    redact_url(o->url, s->url_shown, sizeof s->url_shown);
    if (strlen(o->url) >= SYNC_URL_MAX || strlen(dir) >= sizeof s->dir ||
        strlen(device) >= sizeof s->device_id) {
        log_error("sync: the URL, storage directory or device id is too long");
        return EL_INVAL;
    }
    if ((unsigned)o->format > SYNC_INFLUX || (unsigned)o->compression > SYNC_COMPRESS_ZSTD) {
        log_error("sync: unknown format or compression");
        return EL_INVAL;
    }
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    snprintf(s->device_id, sizeof s->device_id, "%s", device);
    if (!s->device_id[0] && gethostname(s->device_id, sizeof s->device_id - 1) != 0)
        snprintf(s->device_id, sizeof s->device_id, "unknown");
    s->format = o->format;
    s->compression = o->compression;
    s->batch_events = o->batch_events > 0 ? o->batch_events : 1;
    s->max_events = s->batch_events;
    s->batch_bytes = o->batch_bytes > 0 ? (size_t)o->batch_bytes : 1;
    s->buf_cap = s->batch_bytes + SYNC_ENCODE_EVENT_MAX;
    s->live_window_ms = o->live_window_s > 0 ? o->live_window_s * 1000 : 0;
    sync_bucket_init(&s->bucket, o->max_kbps, plat_clock_mono_ms());
    return EL_OK;
}

el_status sync_new(const struct sync_opts *o, struct sync **out)
{
    *out = NULL;
    if (!o->url || !o->url[0])
        return EL_OK;
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_status != EL_OK) {
        log_error("sync: libcurl initialisation failed");
        return curl_init_status;
    }
    struct sync *s = calloc(1, sizeof *s);
    if (!s)
        return EL_NOMEM;
    pthread_condattr_t ca;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&s->stop_flag, false);
    s->oldest_for_acked = -1;
    s->oldest_recv_ms = -1;
    s->pub_oldest_recv_ms = -1;
    s->wire_per_event = 100;
    s->start_mono_ms = plat_clock_mono_ms();
    s->rng = (uint64_t)plat_clock_mono_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)s;
    if (s->rng == 0)
        s->rng = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < SYNC_RATE_WINDOW_S; i++)
        s->rate_sec[i] = -1;
    el_status st = copy_opts(s, o);
    if (st == EL_OK) {
        s->buf = malloc(s->buf_cap);
        st = s->buf ? open_worker_state(s, o) : EL_NOMEM;
    }
    if (st != EL_OK) {
        log_error("sync: cannot start shipping to %s: %s", s->url_shown, el_status_str(st));
        sync_free(s);
        return st;
    }
    log_info("sync: shipping to %s as device '%s' (%s, %s), acknowledged up to seq %lld, %lld "
             "parked batches",
             s->url_shown, s->device_id, s->format == SYNC_NDJSON ? "ndjson" : "influx",
             s->compression == SYNC_COMPRESS_NONE ? "uncompressed"
                                                  : sync_compress_encoding(s->compression),
             (long long)s->acked, (long long)s->parked.parked_batches);
    if (o->insecure)
        log_warn("sync: sync.insecure is set: the upstream's TLS certificate and host name are "
                 "NOT verified");
    publish(s);
    *out = s;
    return EL_OK;
}

el_status sync_start(struct sync *s)
{
    if (!s || s->started)
        return EL_OK;
    if (pthread_create(&s->thread, NULL, worker, s) != 0) {
        log_error("sync: cannot start the worker thread");
        return EL_NOMEM;
    }
    (void)pthread_setname_np(s->thread, "el-sync"); /* for top/perf; failure is harmless */
    s->started = true;
    return EL_OK;
}

void sync_notify_committed(struct sync *s, int64_t committed_seq)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    if (committed_seq > s->committed) {
        s->committed = committed_seq;
        int64_t pending = committed_seq - s->status.cursor_seq - s->pub_live_shipped;
        s->status.backlog_events = (pending > 0 ? pending : 0) + s->status.parked_events;
        if (s->waiting)
            pthread_cond_signal(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
}

/* Raises a request flag of s (s->kick, s->retry_parked_req) under its lock
 * and wakes the worker. */
static void sync_request(struct sync *s, bool *flag)
{
    pthread_mutex_lock(&s->mu);
    *flag = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void sync_kick(struct sync *s)
{
    if (s)
        sync_request(s, &s->kick);
}

void sync_retry_parked(struct sync *s)
{
    if (s)
        sync_request(s, &s->retry_parked_req);
}

void sync_get_status(struct sync *s, struct sync_status *out)
{
    memset(out, 0, sizeof *out);
    out->oldest_unsent_age_s = -1;
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    *out = s->status;
    int64_t now = plat_clock_mono_ms();
    out->rate_per_s = rate_locked(s, now);
    if (s->pub_oldest_recv_ms >= 0 && out->backlog_events > 0) {
        int64_t age = (plat_clock_wall_ms() - s->pub_oldest_recv_ms) / 1000;
        out->oldest_unsent_age_s = age > 0 ? age : 0;
    } else {
        out->oldest_unsent_age_s = -1;
    }
    pthread_mutex_unlock(&s->mu);
}

void sync_free(struct sync *s)
{
    if (!s)
        return;
    if (s->started) {
        pthread_mutex_lock(&s->mu);
        s->stop = true;
        atomic_store(&s->stop_flag, true);
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    }
    sync_http_free(s->http);
    sync_compress_free(s->comp);
    mlog_reader_close(s->log);
    sync_store_close(s->store);
    free(s->buf);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
