/*
 * sync_worker_test — the sync worker (sync/sync.c) driven directly: a real
 * master.db written with storage/mlog.h, the real libcurl transport, and a
 * small scripted HTTP/1.1 server in a thread of this test (plain http on a
 * free 127.0.0.1 port; TLS is covered by tests/integration/test_sync_tls.py).
 *
 * What is covered:
 *   - batches cut by batch_events in sequence order, gzip bodies, headers
 *     (device, first/last seq, Idempotency-Key, content type/encoding), the
 *     cursor in sync_cursor, status (acked_seq, backlog, batches_sent), and a
 *     restart resuming from the cursor without resending;
 *   - the retry path: 500 and 503 + Retry-After (the retry waits >= the
 *     Retry-After), a reset after the body was read (the resend is
 *     byte-identical with the same key), 413 (split to the first half, same
 *     start), 400 (parked: status parked_batches / last_error, the cursor
 *     moves on), and sync_retry_parked() shipping the parked range with its
 *     original key — so retry-parked is exercised on the real worker, the real
 *     tables and the real transport, without depending on the daemon's
 *     command topic;
 *   - the batch in flight survives a stop: after a 503 the worker is freed,
 *     more events are committed, and the new worker resends exactly the old
 *     range first;
 *   - a hanging upstream: the request times out (sync.timeout_s = 1) and is
 *     retried; sync_free interrupts a hanging request promptly;
 *   - dead letters (sequence gaps) at the end: the cursor moves past them;
 *   - the bearer token file: sent as Authorization, refused when others can
 *     read the file;
 *   - the live lane (sync.live_window_s): a full batch of recent events goes
 *     first, then the old backlog oldest first, then the lanes merge; an
 *     old-format sync_cursor is migrated at open; a live batch refused with
 *     400 is parked and keeps acked_seq below it until retry-parked.
 * Waiting is a bounded poll on the server's records, never a bare sleep.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mlog.h"
#include "plat_clock.h"
#include "plat_log.h"
#include "sync.h"
#include "sync_compress.h"
#include "test_fs.h"
#include "test_mlog.h"

#define MAX_RECS 512
#define MAX_BODY (4 << 20)
#define MAX_SCRIPT 64
#define TS_BASE 1767225600000LL

/* ---- scripted HTTP server ---- */

enum act_kind { ACT_RESPOND = 0, ACT_RESET_AFTER_BODY, ACT_HANG };

struct action {
    enum act_kind kind;
    int status;
    const char *retry_after;
};

struct rec {
    int64_t first, last;
    char key[128], auth[128], encoding[32], ctype[64], device[64], lane[16];
    int status; /* what we answered; -1 reset, -2 hang */
    int64_t mono_ms;
    char *body; /* decompressed, NUL-terminated */
    size_t len;
};

struct server {
    int lfd, port;
    pthread_t thread;
    atomic_bool stop;
    pthread_mutex_t mu;
    struct action script[MAX_SCRIPT];
    int n_script, next;
    struct rec recs[MAX_RECS];
    int n_recs;
    char *raw;
};

static struct server srv;

static bool read_some(int fd, char *buf, size_t cap, size_t *len)
{
    for (;;) {
        if (atomic_load(&srv.stop))
            return false;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, 50);
        if (r == 0)
            continue;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return false;
        ssize_t n = read(fd, buf + *len, cap - *len);
        if (n <= 0)
            return false;
        *len += (size_t)n;
        return true;
    }
}

static void header(const char *head, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    out[0] = '\0';
    for (const char *p = strstr(head, "\r\n"); p && p[2] != '\r'; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ')
                v++;
            const char *end = strstr(v, "\r\n");
            size_t n = (size_t)(end - v) < cap - 1 ? (size_t)(end - v) : cap - 1;
            memcpy(out, v, n);
            out[n] = '\0';
            return;
        }
    }
}

static void reset_close(int fd)
{
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

/* Serves one connection until the peer closes it or an action ends it. */
static void serve_conn(int fd)
{
    size_t len = 0;
    for (;;) {
        char *end;
        while (!(end = memmem(srv.raw, len, "\r\n\r\n", 4)))
            if (len == MAX_BODY || !read_some(fd, srv.raw, MAX_BODY, &len)) {
                close(fd);
                return;
            }
        size_t head_len = (size_t)(end - srv.raw) + 4;
        char head[8192], v[128];
        size_t hl = head_len < sizeof head ? head_len : sizeof head - 1;
        memcpy(head, srv.raw, hl);
        head[hl] = '\0';
        header(head, "Content-Length", v, sizeof v);
        size_t clen = (size_t)strtoull(v, NULL, 10);
        while (len < head_len + clen)
            if (!read_some(fd, srv.raw, MAX_BODY, &len)) {
                close(fd);
                return;
            }
        struct rec r;
        memset(&r, 0, sizeof r);
        header(head, "X-Edgelambda-First-Seq", v, sizeof v);
        r.first = strtoll(v, NULL, 10);
        header(head, "X-Edgelambda-Last-Seq", v, sizeof v);
        r.last = strtoll(v, NULL, 10);
        header(head, "Idempotency-Key", r.key, sizeof r.key);
        header(head, "Authorization", r.auth, sizeof r.auth);
        header(head, "Content-Encoding", r.encoding, sizeof r.encoding);
        header(head, "Content-Type", r.ctype, sizeof r.ctype);
        header(head, "X-Edgelambda-Device", r.device, sizeof r.device);
        header(head, "X-Edgelambda-Lane", r.lane, sizeof r.lane);
        enum sync_compression kind = strcmp(r.encoding, "gzip") == 0   ? SYNC_COMPRESS_GZIP
                                     : strcmp(r.encoding, "zstd") == 0 ? SYNC_COMPRESS_ZSTD
                                                                       : SYNC_COMPRESS_NONE;
        r.body = malloc(MAX_BODY + 1);
        assert_non_null(r.body);
        assert_int_equal(sync_decompress(kind, srv.raw + head_len, clen, r.body, MAX_BODY, &r.len),
                         EL_OK);
        r.body[r.len] = '\0';
        r.mono_ms = plat_clock_mono_ms();
        struct action a = {ACT_RESPOND, 200, NULL};
        pthread_mutex_lock(&srv.mu);
        if (srv.next < srv.n_script)
            a = srv.script[srv.next++];
        r.status = a.kind == ACT_RESPOND ? a.status : a.kind == ACT_RESET_AFTER_BODY ? -1 : -2;
        if (srv.n_recs < MAX_RECS)
            srv.recs[srv.n_recs++] = r;
        else
            free(r.body);
        pthread_mutex_unlock(&srv.mu);
        memmove(srv.raw, srv.raw + head_len + clen, len - head_len - clen);
        len -= head_len + clen;
        if (a.kind == ACT_RESET_AFTER_BODY) {
            reset_close(fd);
            return;
        }
        if (a.kind == ACT_HANG) {
            int64_t until = plat_clock_mono_ms() + 5000;
            char tmp[256];
            while (plat_clock_mono_ms() < until && !atomic_load(&srv.stop)) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                if (poll(&p, 1, 20) > 0 && read(fd, tmp, sizeof tmp) <= 0)
                    break; /* the client gave up */
            }
            close(fd);
            return;
        }
        char resp[512];
        const char *body = a.status >= 300 ? "scripted refusal" : "";
        int n = snprintf(resp, sizeof resp,
                         "HTTP/1.1 %d Scripted\r\nContent-Length: %zu\r\n%s%s%s\r\n%s", a.status,
                         strlen(body), a.retry_after ? "Retry-After: " : "",
                         a.retry_after ? a.retry_after : "", a.retry_after ? "\r\n" : "", body);
        if (write(fd, resp, (size_t)n) != n) {
            close(fd);
            return;
        }
    }
}

static void *server_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&srv.stop)) {
        struct pollfd p = {.fd = srv.lfd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int fd = accept(srv.lfd, NULL, NULL);
        if (fd >= 0)
            serve_conn(fd);
    }
    return NULL;
}

static void server_start(const struct action *script, int n)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    socklen_t alen = sizeof a;
    memset(&srv, 0, sizeof srv);
    pthread_mutex_init(&srv.mu, NULL);
    srv.raw = malloc(MAX_BODY);
    assert_non_null(srv.raw);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    srv.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(srv.lfd >= 0);
    assert_int_equal(bind(srv.lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(srv.lfd, 8), 0);
    assert_int_equal(getsockname(srv.lfd, (struct sockaddr *)&a, &alen), 0);
    srv.port = ntohs(a.sin_port);
    assert_true(n <= MAX_SCRIPT);
    if (n)
        memcpy(srv.script, script, (size_t)n * sizeof *script);
    srv.n_script = n;
    assert_int_equal(pthread_create(&srv.thread, NULL, server_main, NULL), 0);
}

static void server_stop(void)
{
    atomic_store(&srv.stop, true);
    pthread_join(srv.thread, NULL);
    close(srv.lfd);
    for (int i = 0; i < srv.n_recs; i++)
        free(srv.recs[i].body);
    free(srv.raw);
    pthread_mutex_destroy(&srv.mu);
}

static int n_recs(void)
{
    pthread_mutex_lock(&srv.mu);
    int n = srv.n_recs;
    pthread_mutex_unlock(&srv.mu);
    return n;
}

/* Bounded poll: waits until at least n requests were recorded. */
static void wait_recs(int n, int timeout_ms)
{
    int64_t until = plat_clock_mono_ms() + timeout_ms;
    while (n_recs() < n) {
        if (plat_clock_mono_ms() > until)
            fail_msg("timed out waiting for %d requests (have %d)", n, n_recs());
        usleep(5000);
    }
}

static void wait_status(struct sync *s, bool (*pred)(const struct sync_status *, int64_t),
                        int64_t arg, int timeout_ms, const char *what)
{
    struct sync_status st;
    int64_t until = plat_clock_mono_ms() + timeout_ms;
    for (;;) {
        sync_get_status(s, &st);
        if (pred(&st, arg))
            return;
        if (plat_clock_mono_ms() > until)
            fail_msg("timed out waiting for %s (acked %lld, parked %lld, error '%s')", what,
                     (long long)st.acked_seq, (long long)st.parked_batches, st.last_error);
        usleep(5000);
    }
}

static bool acked_at_least(const struct sync_status *st, int64_t seq)
{
    return st->acked_seq >= seq;
}

static bool cursor_at_least(const struct sync_status *st, int64_t seq)
{
    return st->cursor_seq >= seq;
}

static bool parked_is(const struct sync_status *st, int64_t n)
{
    return st->parked_batches == n;
}

/* ---- fixture: a temp dir with a master log ---- */

static char dir[400];

static int setup(void **state)
{
    (void)state;
    return test_mkdtemp(dir, sizeof dir, "sync-worker");
}

static int teardown(void **state)
{
    (void)state;
    (void)test_rmtree(dir);
    return 0;
}

static double value_of(int64_t seq)
{
    return (double)((seq * 7919) % 20000) / 100.0 - 50.0;
}

/* Events with seq >= this were received now (wall clock), older ones at
 * TS_BASE + seq (long ago): the live lane's window is about receive times. */
static int64_t recv_now_from = INT64_MAX;

/* Appends events with seqs first..last (skipping those in skip, which become
 * dead letters) in one commit. Returns the last seq. */
static int64_t write_events(int64_t first, int64_t last, const int64_t *skip, size_t n_skip)
{
    struct mlog_opts o = {.dir = dir, .max_series = 100};
    struct mlog *log;
    assert_int_equal(mlog_open(&o, "boot-test", TS_BASE, 1, &log), EL_OK);
    for (int64_t seq = first; seq <= last; seq++) {
        bool dead = false;
        for (size_t i = 0; i < n_skip; i++)
            dead = dead || skip[i] == seq;
        if (dead) {
            (void)test_add_dead(log, seq, "bad", "parse", TS_BASE, 0);
            continue;
        }
        char name[64];
        int nl = snprintf(name, sizeof name, "sensors/dev%d/temp", (int)(seq % 7));
        uint32_t id;
        assert_int_equal(mlog_series_get(log, name, (size_t)nl, seq, &id), EL_OK);
        struct mlog_event ev = {.seq = seq,
                                .series_id = id,
                                .ts_ms = TS_BASE + seq,
                                .value = value_of(seq),
                                .recv_ms =
                                    seq >= recv_now_from ? plat_clock_wall_ms() : TS_BASE + seq,
                                .mono_ms = seq,
                                .flags = MLOG_F_CLOCK_SYNCED,
                                .payload = "{}",
                                .payload_len = 2};
        assert_int_equal(mlog_append_event(log, &ev), EL_OK);
    }
    assert_int_equal(mlog_commit(log), EL_OK);
    mlog_close(log);
    return last;
}

/* The daemon's defaults (ndjson, 1 MiB batches, TLS verified) with this
 * test's server, directory and device; url lives as long as the test. */
static void make_opts(struct sync_opts *o, int batch_events, enum sync_compression comp)
{
    static char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/ingest?x=1", srv.port);
    *o = (struct sync_opts){.url = url,
                            .dir = dir,
                            .format = SYNC_NDJSON,
                            .compression = comp,
                            .batch_events = batch_events,
                            .batch_bytes = 1 << 20,
                            .device_id = "unit-dev",
                            .timeout_s = 5};
}

static struct sync *start_sync(const struct sync_opts *opts, int64_t committed)
{
    struct sync *s;
    assert_int_equal(sync_new(opts, &s), EL_OK);
    assert_non_null(s);
    sync_notify_committed(s, committed);
    assert_int_equal(sync_start(s), EL_OK);
    return s;
}

/* Parses the seqs of an ndjson body, checking every line's fields. */
static int body_seqs(const struct rec *r, int64_t *out, int cap)
{
    int n = 0;
    for (char *line = r->body; *line; line = strchr(line, '\n') + 1) {
        long long seq, ts;
        double v;
        char series[64];
        assert_int_equal(sscanf(line,
                                "{\"device\":\"unit-dev\",\"series\":\"%63[^\"]\",\"ts\":%lld,"
                                "\"value\":%lf,\"seq\":%lld}",
                                series, &ts, &v, &seq),
                         4);
        assert_int_equal(ts, TS_BASE + seq);
        assert_true(v == value_of(seq));
        char want[64];
        snprintf(want, sizeof want, "sensors/dev%d/temp", (int)(seq % 7));
        assert_string_equal(series, want);
        assert_true(n < cap);
        out[n++] = seq;
    }
    return n;
}

static int64_t db_int(const char *sql)
{
    char path[PATH_MAX + 16];
    sqlite3 *db;
    sqlite3_stmt *st;
    snprintf(path, sizeof path, "%s/master.db", dir);
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void db_exec(const char *sql)
{
    char path[PATH_MAX + 16];
    sqlite3 *db;
    snprintf(path, sizeof path, "%s/master.db", dir);
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

/* ---- tests ---- */

static void test_ships_in_order_and_resumes(void **state)
{
    (void)state;
    struct sync_opts opts;
    struct sync_status st;
    int64_t seqs[400];
    server_start(NULL, 0);
    int64_t last = write_events(1, 1000, NULL, 0);
    make_opts(&opts, 300, SYNC_COMPRESS_GZIP);
    struct sync *s = start_sync(&opts, last);
    wait_status(s, acked_at_least, 1000, 10000, "all acknowledged");
    sync_get_status(s, &st);
    assert_true(st.enabled);
    assert_int_equal(st.backlog_events, 0);
    assert_int_equal(st.batches_sent, 4);
    assert_int_equal(st.events_sent, 1000);
    assert_int_equal(st.retries, 0);
    assert_int_equal(st.oldest_unsent_age_s, -1);
    assert_true(st.last_success_ms > 0);
    assert_string_equal(st.last_error, "");
    assert_int_equal(n_recs(), 4);
    int64_t next = 1;
    for (int i = 0; i < 4; i++) {
        const struct rec *r = &srv.recs[i];
        int n = body_seqs(r, seqs, 400);
        assert_int_equal(n, i < 3 ? 300 : 100);
        assert_int_equal(r->first, next);
        assert_int_equal(r->last, next + n - 1);
        for (int k = 0; k < n; k++)
            assert_int_equal(seqs[k], next + k);
        char key[128];
        snprintf(key, sizeof key, "unit-dev-%lld-%lld", (long long)r->first, (long long)r->last);
        assert_string_equal(r->key, key);
        assert_string_equal(r->encoding, "gzip");
        assert_string_equal(r->ctype, "application/x-ndjson");
        assert_string_equal(r->device, "unit-dev");
        assert_string_equal(r->auth, "");
        next += n;
    }
    sync_free(s);
    assert_int_equal(db_int("SELECT acked_seq FROM sync_cursor"), 1000);
    assert_int_equal(db_int("SELECT count(*) FROM sync_cursor WHERE inflight_first IS NULL"), 1);
    /* a restart resumes from the cursor and ships only what is new */
    last = write_events(1001, 1050, NULL, 0);
    s = start_sync(&opts, last);
    sync_kick(s);
    wait_status(s, acked_at_least, 1050, 10000, "new events acknowledged");
    assert_int_equal(n_recs(), 5);
    assert_int_equal(srv.recs[4].first, 1001);
    assert_int_equal(srv.recs[4].last, 1050);
    sync_free(s);
    server_stop();
}

/* The live lane, deterministically: 1000 events received long ago and 100
 * received now, batches of 100, sync.live_window_s = 60, a sync_cursor of
 * the format before the live lane (no live_from/live_to: migrated at open).
 * The live lane starts at 1001 and, a full batch waiting, goes first; then
 * the backlog 1..1000 oldest first; then the lanes merge (cursor 1100, no
 * live lane on disk). The X-Edgelambda-Lane header names the lane. */
static void test_live_lane_and_migration(void **state)
{
    (void)state;
    struct sync_opts opts;
    struct sync_status st;
    server_start(NULL, 0);
    (void)write_events(1, 1000, NULL, 0);
    recv_now_from = 1001;
    int64_t last = write_events(1001, 1100, NULL, 0);
    recv_now_from = INT64_MAX;
    db_exec("CREATE TABLE sync_cursor(id INTEGER PRIMARY KEY CHECK(id = 1),"
            " acked_seq INTEGER NOT NULL, inflight_first INTEGER, inflight_last INTEGER);"
            "INSERT INTO sync_cursor(id, acked_seq) VALUES(1, 0)");
    make_opts(&opts, 100, SYNC_COMPRESS_NONE);
    opts.live_window_s = 60;
    struct sync *s = start_sync(&opts, last);
    wait_status(s, acked_at_least, 1100, 20000, "both lanes acknowledged and merged");
    sync_get_status(s, &st);
    assert_int_equal(st.live_from_seq, 0);
    assert_int_equal(st.backlog_events, 0);
    assert_int_equal(st.lane_live_events + st.lane_backlog_events, 0);
    assert_int_equal(st.rate_limited_ms, 0);
    assert_true(st.sent_bytes > 0);
    sync_free(s);
    assert_int_equal(n_recs(), 11);
    assert_int_equal(srv.recs[0].first, 1001);
    assert_int_equal(srv.recs[0].last, 1100);
    assert_string_equal(srv.recs[0].lane, "live");
    for (int i = 1; i < 11; i++) {
        assert_int_equal(srv.recs[i].first, (i - 1) * 100 + 1);
        assert_int_equal(srv.recs[i].last, i * 100);
        assert_string_equal(srv.recs[i].lane, "backlog");
    }
    assert_int_equal(db_int("SELECT acked_seq FROM sync_cursor"), 1100);
    assert_int_equal(db_int("SELECT count(*) FROM sync_cursor WHERE live_from IS NULL"
                            " AND live_to IS NULL AND inflight_first IS NULL"),
                     1);
    server_stop();
}

/* A live batch refused with 400 is parked like any other: the live lane
 * moves past it, the backlog drains, the lanes merge (cursor 1100), but the
 * acknowledged prefix (what retention may remove) stays below the parked
 * batch until a retry-parked pass delivers it with its original key. */
static void test_live_lane_parks(void **state)
{
    (void)state;
    struct sync_opts opts;
    struct sync_status st;
    const struct action script[] = {{ACT_RESPOND, 400, NULL}};
    server_start(script, 1);
    (void)write_events(1, 1000, NULL, 0);
    recv_now_from = 1001;
    int64_t last = write_events(1001, 1100, NULL, 0);
    recv_now_from = INT64_MAX;
    make_opts(&opts, 100, SYNC_COMPRESS_GZIP);
    opts.live_window_s = 60;
    struct sync *s = start_sync(&opts, last);
    wait_status(s, cursor_at_least, 1100, 20000, "the lanes merged past the parked batch");
    sync_get_status(s, &st);
    assert_int_equal(st.acked_seq, 1000);
    assert_int_equal(st.parked_batches, 1);
    assert_int_equal(st.parked_events, 100);
    assert_int_equal(st.live_from_seq, 0);
    assert_int_equal(db_int("SELECT first_seq FROM sync_parked"), 1001);
    sync_retry_parked(s);
    wait_status(s, acked_at_least, 1100, 20000, "the parked live batch delivered");
    sync_free(s);
    assert_int_equal(n_recs(), 12);
    assert_int_equal(srv.recs[0].status, 400);
    assert_string_equal(srv.recs[0].lane, "live");
    assert_int_equal(srv.recs[11].first, 1001);
    assert_int_equal(srv.recs[11].last, 1100);
    assert_string_equal(srv.recs[11].key, srv.recs[0].key);
    assert_int_equal(db_int("SELECT count(*) FROM sync_parked"), 0);
    server_stop();
}

static bool is_parked_key(const char *key, const char *const *parked, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(key, parked[i]) == 0)
            return true;
    return false;
}

static void test_faults_split_park_retry_parked(void **state)
{
    (void)state;
    static const struct action script[] = {
        {ACT_RESPOND, 500, NULL},                            /* 1: batch A retried */
        {ACT_RESPOND, 503, "1"},                             /* 2: A again, after >= 1 s */
        {ACT_RESPOND, 200, NULL},                            /* 3: A delivered */
        {ACT_RESET_AFTER_BODY, 0, NULL},                     /* 4: B received, no answer */
        {ACT_RESPOND, 200, NULL},                            /* 5: B resent identically */
        {ACT_RESPOND, 413, NULL},                            /* 6: C too large -> first half */
        {ACT_RESPOND, 200, NULL},                            /* 7: C1 */
        {ACT_RESPOND, 400, NULL},                            /* 8: next batch parked */
        {ACT_RESPOND, 429, "Thu, 01 Jan 1970 00:00:00 GMT"}, /* 9: retry at once */
    };
    struct sync_opts opts;
    struct sync_status st;
    server_start(script, (int)(sizeof script / sizeof script[0]));
    int64_t last = write_events(1, 500, NULL, 0);
    make_opts(&opts, 100, SYNC_COMPRESS_ZSTD);
    struct sync *s = start_sync(&opts, last);
    wait_status(s, cursor_at_least, 500, 20000, "all acknowledged or parked");
    wait_status(s, parked_is, 1, 5000, "one parked batch");
    sync_get_status(s, &st);
    /* the parked batch [251, 300] is not acknowledged: retention must keep it */
    assert_int_equal(st.acked_seq, 250);
    assert_int_equal(st.cursor_seq, 500);
    assert_non_null(strstr(st.last_error, "HTTP 400"));
    assert_non_null(strstr(st.last_error, "parked"));
    assert_int_equal(st.parked_events, 50);
    assert_int_equal(st.backlog_events, 50);
    /* 500, 503, 429; the reset after the body may be resent by libcurl itself
     * (a request on a reused connection that died) or by the worker */
    assert_true(st.retries >= 3);
    assert_int_equal(db_int("SELECT count(*) FROM sync_parked WHERE http_status = 400"), 1);

    const struct rec *r = srv.recs;
    /* 1-3: the same batch three times, the third at least Retry-After later */
    assert_int_equal(r[0].first, 1);
    assert_int_equal(r[0].last, 100);
    for (int i = 1; i < 3; i++) {
        assert_string_equal(r[i].key, r[0].key);
        assert_int_equal(r[i].len, r[0].len);
        assert_memory_equal(r[i].body, r[0].body, r[0].len);
    }
    assert_true(r[2].mono_ms - r[1].mono_ms >= 1000);
    /* 4-5: a reset after the body: the resend is byte-identical */
    assert_int_equal(r[3].first, 101);
    assert_string_equal(r[4].key, r[3].key);
    assert_int_equal(r[4].len, r[3].len);
    assert_memory_equal(r[4].body, r[3].body, r[3].len);
    /* 6-7: 413 splits [201, 300] to its first half [201, 250] */
    assert_int_equal(r[5].first, 201);
    assert_int_equal(r[5].last, 300);
    assert_int_equal(r[6].first, 201);
    assert_int_equal(r[6].last, 250);
    /* later batches stay at the halved size */
    assert_int_equal(r[7].first, 251);
    assert_int_equal(r[7].last, 300);
    const char *parked_key = r[7].key;
    /* 9: 429 with a date in the past: retried, same batch */
    assert_int_equal(r[8].first, 301);
    assert_string_equal(r[9].key, r[8].key);

    /* retry-parked: the parked range goes again, with its original key */
    int before = n_recs();
    sync_retry_parked(s);
    wait_status(s, parked_is, 0, 10000, "the parked batch delivered");
    sync_get_status(s, &st);
    assert_string_equal(st.last_error, "");
    assert_int_equal(st.backlog_events, 0);
    assert_int_equal(st.acked_seq, 500);
    assert_int_equal(n_recs(), before + 1);
    assert_string_equal(srv.recs[before].key, parked_key);
    assert_int_equal(db_int("SELECT count(*) FROM sync_parked"), 0);

    /* every event arrived in a 2xx-answered or reset (received) request;
     * duplicates only as resends of the same key; order within and across
     * batches holds except for the parked batch shipped late */
    static char seen[501];
    memset(seen, 0, sizeof seen);
    int64_t seqs[200], prev = 0;
    const char *parked[] = {parked_key};
    for (int i = 0; i < n_recs(); i++) {
        const struct rec *q = &srv.recs[i];
        int n = body_seqs(q, seqs, 200);
        assert_int_equal(seqs[0], q->first);
        assert_int_equal(seqs[n - 1], q->last);
        for (int k = 1; k < n; k++)
            assert_true(seqs[k] > seqs[k - 1]);
        bool delivered = q->status == 200 || q->status == -1;
        if (!delivered)
            continue;
        bool resend = i > 0 && strcmp(q->key, srv.recs[i - 1].key) == 0;
        if (!resend && !is_parked_key(q->key, parked, 1)) {
            assert_true(q->first > prev);
            prev = q->last;
        }
        for (int k = 0; k < n; k++)
            seen[seqs[k]]++;
    }
    for (int k = 1; k <= 500; k++)
        assert_true(seen[k] >= 1);
    sync_free(s);
    server_stop();
}

static void test_inflight_survives_stop(void **state)
{
    (void)state;
    static const struct action script[] = {{ACT_RESPOND, 503, "30"}};
    struct sync_opts opts;
    server_start(script, 1);
    int64_t last = write_events(1, 50, NULL, 0);
    make_opts(&opts, 1000, SYNC_COMPRESS_NONE);
    struct sync *s = start_sync(&opts, last);
    sync_kick(s);
    wait_recs(1, 10000);
    assert_int_equal(srv.recs[0].first, 1);
    assert_int_equal(srv.recs[0].last, 50);
    int64_t t0 = plat_clock_mono_ms();
    sync_free(s); /* waiting out a Retry-After of 30 s: must stop at once */
    assert_true(plat_clock_mono_ms() - t0 < 2000);
    assert_int_equal(db_int("SELECT inflight_last FROM sync_cursor"), 50);
    /* more events arrive while it is down; the next run resends [1, 50] first */
    last = write_events(51, 120, NULL, 0);
    s = start_sync(&opts, last);
    wait_status(s, acked_at_least, 120, 10000, "everything acknowledged");
    assert_int_equal(n_recs(), 3);
    assert_string_equal(srv.recs[1].key, srv.recs[0].key);
    assert_int_equal(srv.recs[1].len, srv.recs[0].len);
    assert_memory_equal(srv.recs[1].body, srv.recs[0].body, srv.recs[0].len);
    assert_int_equal(srv.recs[2].first, 51);
    assert_int_equal(srv.recs[2].last, 120);
    sync_free(s);
    server_stop();
}

static void test_hang_timeout_and_prompt_stop(void **state)
{
    (void)state;
    static const struct action script[] = {{ACT_HANG, 0, NULL}, {ACT_HANG, 0, NULL}};
    struct sync_opts opts;
    struct sync_status st;
    server_start(script, 2);
    int64_t last = write_events(1, 10, NULL, 0);
    make_opts(&opts, 1000, SYNC_COMPRESS_GZIP);
    opts.timeout_s = 1;
    struct sync *s = start_sync(&opts, last);
    sync_kick(s);
    wait_status(s, acked_at_least, 10, 15000, "delivery after two timeouts");
    sync_get_status(s, &st);
    assert_int_equal(st.retries, 2);
    assert_int_equal(n_recs(), 3);
    assert_string_equal(srv.recs[2].key, srv.recs[0].key);
    sync_free(s);
    server_stop();

    /* stopping during a hanging request is prompt (abort callback, not the timeout) */
    server_start(script, 1);
    last = write_events(11, 20, NULL, 0);
    make_opts(&opts, 1000, SYNC_COMPRESS_GZIP);
    opts.timeout_s = 60;
    s = start_sync(&opts, last);
    sync_kick(s);
    wait_recs(1, 10000);
    int64_t t0 = plat_clock_mono_ms();
    sync_free(s);
    assert_true(plat_clock_mono_ms() - t0 < 2500);
    server_stop();
}

static void test_dead_letters_at_end(void **state)
{
    (void)state;
    static const int64_t skip[] = {5, 9, 10};
    struct sync_opts opts;
    struct sync_status st;
    server_start(NULL, 0);
    int64_t last = write_events(1, 10, skip, 3);
    make_opts(&opts, 1000, SYNC_COMPRESS_NONE);
    struct sync *s = start_sync(&opts, last);
    sync_kick(s);
    wait_status(s, acked_at_least, 10, 10000, "cursor past trailing dead letters");
    sync_get_status(s, &st);
    assert_int_equal(st.backlog_events, 0);
    assert_int_equal(n_recs(), 1);
    assert_int_equal(srv.recs[0].first, 1);
    assert_int_equal(srv.recs[0].last, 8);
    int64_t seqs[16];
    assert_int_equal(body_seqs(&srv.recs[0], seqs, 16), 7);
    sync_free(s);
    server_stop();
}

static void test_token_file(void **state)
{
    (void)state;
    struct sync_opts opts;
    struct sync *s;
    char path[450];
    server_start(NULL, 0);
    int64_t last = write_events(1, 3, NULL, 0);
    make_opts(&opts, 1000, SYNC_COMPRESS_NONE);
    snprintf(path, sizeof path, "%s/token", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("s3cret-token\n", f);
    fclose(f);
    opts.token_file = path;
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(sync_new(&opts, &s), EL_INVAL); /* readable by others: refused */
    assert_null(s);
    assert_int_equal(chmod(path, 0600), 0);
    s = start_sync(&opts, last);
    sync_kick(s);
    wait_status(s, acked_at_least, 3, 10000, "delivery with a token");
    assert_string_equal(srv.recs[0].auth, "Bearer s3cret-token");
    /* the bucket's wire estimate counts the Authorization line: body +
     * SYNC_WIRE_HEADER_BYTES (300, sync.c) + "Authorization: Bearer
     * s3cret-token" and its CRLF */
    struct sync_status st;
    sync_get_status(s, &st);
    assert_int_equal(n_recs(), 1);
    assert_int_equal(st.sent_bytes, (int64_t)(srv.recs[0].len + 300 +
                                              strlen("Authorization: Bearer s3cret-token") + 2));
    sync_free(s);
    server_stop();
}

int main(void)
{
    plat_log_set_level(PLAT_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ships_in_order_and_resumes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_faults_split_park_retry_parked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inflight_survives_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hang_timeout_and_prompt_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_letters_at_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_live_lane_and_migration, setup, teardown),
        cmocka_unit_test_setup_teardown(test_live_lane_parks, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
