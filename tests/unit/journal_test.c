/*
 * journal_test — unit tests for the memory-mapped ingest journal (storage/journal.c).
 *
 * What is covered: record round trip (every field, the ref of a replayed
 * dead letter on every fourth record with events, sequence numbering,
 * journal_set_next_seq), segment rotation and deletion of committed segment
 * files, rewind, producer/consumer back-pressure across two threads (200,000
 * records through 3 small segments), journal_shutdown waking a blocked
 * producer, the consumer wake-up hook, crash replay, torn-record detection
 * (corrupted byte, length field, zeroed tail, CRC byte, truncated file),
 * invalid options and strict (msync) mode.
 *
 * Each test runs in its own fresh directory from mkdtemp under $TMPDIR (or
 * /tmp), removed by the teardown. Threads are synchronised with joins,
 * eventfd wake-ups and bounded polls only; no sleep is relied upon for
 * correctness.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "journal.h"
#include "plat_log.h"
#include "test_fs.h"

#define REC_HDR 48u
#define REC_EV 24u
#define MAX_EVENTS 64

/* ---- fixture: one fresh temp dir per test ---- */

struct fixture {
    char dir[PATH_MAX];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    if (test_mkdtemp(f->dir, sizeof f->dir, "journal") != 0) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    int rc = test_rmtree(f->dir);
    free(f);
    return rc;
}

/* ---- helpers ---- */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

static uint64_t rng_below(uint64_t *s, uint64_t n)
{
    return n ? rng_next(s) % n : 0;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void short_pause(void)
{
    /* Polling interval of bounded polls; never used as synchronisation. */
    struct timespec ts = {0, 1000 * 1000};
    nanosleep(&ts, NULL);
}

/* Names (events) or a dead letter's detail (cut to 255) after the payload. */
static size_t stored_names(const struct journal_msg *m)
{
    return m->n_events || m->names_len <= 255 ? m->names_len : 255u;
}

static size_t rec_len(const struct journal_msg *m)
{
    size_t body = REC_HDR + (size_t)m->n_events * REC_EV + m->topic_len + m->payload_len +
                  stored_names(m) + (m->ref ? 8u : 0u);
    return (body + 7u) & ~(size_t)7u;
}

static uint64_t seq_span(const struct journal_msg *m)
{
    return m->n_events ? m->n_events : 1u;
}

static struct journal *open_journal(const char *dir, size_t seg_bytes, uint32_t segments,
                                    bool strict)
{
    struct journal_opts o = {
        .dir = dir, .segment_bytes = seg_bytes, .segments = segments, .strict = strict};
    struct journal *j = NULL;
    assert_int_equal(journal_open(&o, &j), EL_OK);
    assert_non_null(j);
    return j;
}

static void journal_dir(const char *dir, char *buf, size_t len)
{
    if (snprintf(buf, len, "%s/journal", dir) >= (int)len)
        abort();
}

static void seg_file(const char *dir, uint64_t segno, char *buf, size_t len)
{
    if (snprintf(buf, len, "%s/journal/seg-%016llx.jnl", dir, (unsigned long long)segno) >=
        (int)len)
        abort();
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Segment numbers of the files in <dir>/journal, sorted; returns the count.
 * Any other file in there fails the test. */
static size_t list_segments(const char *dir, uint64_t *out, size_t max)
{
    char path[PATH_MAX];
    size_t n = 0;
    struct dirent *de;
    journal_dir(dir, path, sizeof path);
    DIR *d = opendir(path);
    if (!d && errno == ENOENT)
        return 0;
    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        unsigned long long segno;
        char tail[8];
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        assert_int_equal(sscanf(de->d_name, "seg-%16llx%7s", &segno, tail), 2);
        assert_string_equal(tail, ".jnl");
        assert_true(n < max);
        out[n++] = segno;
    }
    closedir(d);
    qsort(out, n, sizeof out[0], cmp_u64);
    return n;
}

/* Asserts that exactly segments first..last exist. */
static void expect_segments(const char *dir, uint64_t first, uint64_t last)
{
    uint64_t segs[64];
    size_t n = list_segments(dir, segs, 64);
    assert_int_equal(n, last - first + 1);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(segs[i], first + i);
}

static void expect_no_segments(const char *dir)
{
    uint64_t segs[64];
    assert_int_equal(list_segments(dir, segs, 64), 0);
}

/* ---- messages with owned storage and their expected placement ---- */

struct spec {
    struct journal_msg m;
    struct journal_event ev[MAX_EVENTS];
    char *topic;
    char *payload;
    char names[300]; /* a decoder's names after the payload (events only) */
    uint64_t seq;    /* expected first sequence number */
    uint64_t segno;  /* expected segment */
    size_t off;      /* expected offset in that segment */
    size_t len;      /* expected record length */
};

struct spec_limits {
    size_t max_topic;
    size_t max_payload;
    unsigned max_events;
};

static void spec_fill(struct spec *sp, uint64_t *rng, const struct spec_limits *lim)
{
    size_t topic_len = (size_t)rng_below(rng, lim->max_topic + 1);
    size_t payload_len = (size_t)rng_below(rng, lim->max_payload + 1);
    bool dead = rng_below(rng, 6) == 0;
    memset(sp, 0, sizeof *sp);
    /* Never NULL, even for zero lengths: that is what ingest passes. */
    sp->topic = malloc(topic_len + 1);
    sp->payload = malloc(payload_len + 1);
    assert_non_null(sp->topic);
    assert_non_null(sp->payload);
    for (size_t i = 0; i < topic_len; i++)
        sp->topic[i] = (char)(' ' + rng_below(rng, 95));
    for (size_t i = 0; i < payload_len; i++)
        sp->payload[i] = (char)rng_next(rng); /* binary, NULs included */
    sp->m.recv_ms = (int64_t)rng_next(rng);
    sp->m.mono_ms = (int64_t)rng_next(rng);
    sp->m.orig_len = (uint32_t)(payload_len + rng_below(rng, 3) * 1000u);
    sp->m.flags = (uint16_t)(rng_next(rng) & ~JOURNAL_F_REF); /* the journal's own bit */
    if (dead) {
        sp->m.reason = (uint16_t)(1u + rng_below(rng, 20));
        sp->m.n_events = 0;
    } else {
        sp->m.n_events = (uint16_t)(1u + rng_below(rng, lim->max_events));
        for (unsigned i = 0; i < sp->m.n_events; i++) {
            static const double specials[] = {0.0, -0.0, 1e308, -1e-308, 3.25, -7.5};
            sp->ev[i].ts_ms = (int64_t)rng_next(rng);
            if (rng_below(rng, 4) == 0)
                sp->ev[i].value = specials[rng_below(rng, 6)];
            else
                sp->ev[i].value = (double)(int64_t)rng_next(rng) / 1024.0;
            sp->ev[i].field_off = (uint32_t)rng_next(rng);
            sp->ev[i].field_len = (uint32_t)rng_next(rng);
        }
        sp->m.names_len = rng_below(rng, 3) == 0 ? (size_t)rng_below(rng, sizeof sp->names) : 0;
        for (size_t i = 0; i < sp->m.names_len; i++)
            sp->names[i] = (char)('a' + rng_below(rng, 26));
        sp->m.names = sp->names;
        /* a replayed dead letter's seq, on every fourth record (no rng draw:
         * the layouts the tests assert stay as they were) */
        if ((sp->m.mono_ms & 3) == 0)
            sp->m.ref = (uint64_t)sp->m.recv_ms | 1u;
    }
    sp->m.events = sp->ev;
    sp->m.topic = sp->topic;
    sp->m.topic_len = topic_len;
    sp->m.payload = sp->payload;
    sp->m.payload_len = payload_len;
    sp->len = rec_len(&sp->m);
}

/* Where the journal will put each record: the writer moves to the next
 * segment when a record does not fit, first segment first_segno. */
static void specs_layout(struct spec *sp, size_t n, uint64_t first_seq, uint64_t first_segno,
                         size_t seg_bytes)
{
    uint64_t seq = first_seq, segno = first_segno;
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        if (off + sp[i].len > seg_bytes) {
            segno++;
            off = 0;
        }
        sp[i].seq = seq;
        sp[i].segno = segno;
        sp[i].off = off;
        off += sp[i].len;
        seq += seq_span(&sp[i].m);
    }
}

static struct spec *specs_new(size_t n, uint64_t seed, const struct spec_limits *lim)
{
    struct spec *sp = calloc(n, sizeof *sp);
    uint64_t rng = seed;
    assert_non_null(sp);
    for (size_t i = 0; i < n; i++)
        spec_fill(&sp[i], &rng, lim);
    return sp;
}

static void specs_free(struct spec *sp, size_t n)
{
    if (!sp)
        return;
    for (size_t i = 0; i < n; i++) {
        free(sp[i].topic);
        free(sp[i].payload);
    }
    free(sp);
}

static void check_rec(const struct journal_rec *r, const struct journal_msg *m, uint64_t seq)
{
    assert_int_equal(r->seq, seq);
    assert_int_equal(r->recv_ms, m->recv_ms);
    assert_int_equal(r->mono_ms, m->mono_ms);
    assert_int_equal(r->orig_len, m->orig_len);
    assert_int_equal(r->n_events, m->n_events);
    assert_int_equal(r->reason, m->n_events ? 0u : m->reason); /* events: no reason */
    assert_int_equal(r->flags, m->flags);
    assert_int_equal(r->topic_len, m->topic_len);
    assert_int_equal(r->payload_len, m->payload_len);
    assert_int_equal(r->names_len, stored_names(m));
    assert_int_equal(r->ref, m->ref);
    if (r->names_len) /* right after the payload */
        assert_memory_equal(r->payload + r->payload_len, m->names, r->names_len);
    assert_true(((uintptr_t)r->events & 7u) == 0);
    for (unsigned i = 0; i < m->n_events; i++) {
        assert_int_equal(r->events[i].ts_ms, m->events[i].ts_ms);
        assert_memory_equal(&r->events[i].value, &m->events[i].value, sizeof(double));
        assert_int_equal(r->events[i].field_off, m->events[i].field_off);
        assert_int_equal(r->events[i].field_len, m->events[i].field_len);
    }
    if (m->topic_len)
        assert_memory_equal(r->topic, m->topic, m->topic_len);
    if (m->payload_len)
        assert_memory_equal(r->payload, m->payload, m->payload_len);
}

static void append_spec(struct journal *j, const struct spec *sp)
{
    uint64_t seq = 0;
    assert_int_equal(journal_next_seq(j), sp->seq);
    assert_int_equal(journal_append(j, &sp->m, &seq), EL_OK);
    assert_int_equal(seq, sp->seq);
    assert_int_equal(journal_next_seq(j), sp->seq + seq_span(&sp->m));
}

static void read_spec(struct journal *j, const struct spec *sp)
{
    struct journal_rec r;
    assert_true(journal_has_unread(j));
    assert_true(journal_next(j, &r));
    check_rec(&r, &sp->m, sp->seq);
}

static uint64_t bytes_of(const struct spec *sp, size_t from, size_t to)
{
    uint64_t total = 0;
    for (size_t i = from; i < to; i++)
        total += sp[i].len;
    return total;
}

/* ---- round trip ---- */

static void test_roundtrip(void **state)
{
    struct fixture *f = *state;
    const size_t seg = 1u << 20, n = 400;
    const struct spec_limits lim = {2048, 4096, MAX_EVENTS};
    struct spec *sp = specs_new(n, 0x9e3779b97f4a7c15ull, &lim);
    struct journal_rec r;

    /* Edge cases first: an empty dead letter, a maximal one, a 64-event one. */
    sp[0].m.n_events = 0;
    sp[0].m.reason = 7;
    sp[0].m.topic_len = 0;
    sp[0].m.payload_len = 0;
    sp[0].len = rec_len(&sp[0].m);
    sp[1].m.n_events = MAX_EVENTS;
    sp[1].len = rec_len(&sp[1].m);
    sp[2].m.n_events = 0;
    sp[2].m.topic_len = 2048;
    sp[2].m.payload_len = 4096;
    free(sp[2].topic);
    free(sp[2].payload);
    sp[2].topic = calloc(1, 2048);
    sp[2].payload = calloc(1, 4096);
    assert_non_null(sp[2].topic);
    assert_non_null(sp[2].payload);
    memset(sp[2].topic, 'T', 2048);
    memset(sp[2].payload, 0xA5, 4096);
    sp[2].m.topic = sp[2].topic;
    sp[2].m.payload = sp[2].payload;
    sp[2].len = rec_len(&sp[2].m);
    specs_layout(sp, n, 1000, 1, seg);
    assert_true(sp[n - 1].segno >= 2 && sp[n - 1].segno <= 3); /* rotates, never blocks */

    struct journal *j = open_journal(f->dir, seg, 4, false);
    assert_int_equal(journal_next_seq(j), 1);
    journal_set_next_seq(j, 1000);
    assert_int_equal(journal_next_seq(j), 1000);
    assert_false(journal_has_unread(j));
    assert_false(journal_next(j, &r));
    assert_int_equal(journal_uncommitted_bytes(j), 0);

    for (size_t i = 0; i < n; i++)
        append_spec(j, &sp[i]);
    assert_int_equal(journal_uncommitted_bytes(j), bytes_of(sp, 0, n));
    expect_segments(f->dir, 1, sp[n - 1].segno);

    for (size_t i = 0; i < n; i++)
        read_spec(j, &sp[i]);
    assert_false(journal_next(j, &r));
    assert_false(journal_has_unread(j));
    /* Read but not committed still counts. */
    assert_int_equal(journal_uncommitted_bytes(j), bytes_of(sp, 0, n));
    journal_commit(j);
    assert_int_equal(journal_uncommitted_bytes(j), 0);
    expect_segments(f->dir, sp[n - 1].segno, sp[n - 1].segno);
    journal_close(j);
    /* Clean run: everything committed, nothing left to replay. */
    expect_no_segments(f->dir);
    specs_free(sp, n);
}

/* ---- rotation and deletion of committed segments ---- */

static void test_rotation(void **state)
{
    struct fixture *f = *state;
    const size_t seg = 65536, n = 2000;
    const struct spec_limits lim = {512, 3000, 16};
    struct spec *sp = specs_new(n, 42, &lim);
    struct journal_rec r;
    size_t appended = 0, read = 0, committed = 0;
    uint64_t commit_seg = 1;

    specs_layout(sp, n, 1, 1, seg);
    struct journal *j = open_journal(f->dir, seg, 4, false);
    expect_segments(f->dir, 1, 1);

    for (int round = 0; round < 12; round++) {
        /* Fill about two more segments: with the one in use that makes three
         * live segments of four, so the producer never has to wait. */
        uint64_t target = sp[appended ? appended - 1 : 0].segno + 2;
        while (appended < n && sp[appended].segno <= target &&
               !(sp[appended].segno == target && sp[appended].off > 0))
            append_spec(j, &sp[appended++]);
        assert_true(appended < n);
        uint64_t w_seg = sp[appended - 1].segno;
        expect_segments(f->dir, commit_seg, w_seg);
        assert_int_equal(journal_uncommitted_bytes(j), bytes_of(sp, committed, appended));

        /* Read half of what is there and commit: segments wholly behind the
         * read position go away. */
        size_t half = read + (appended - read) / 2;
        while (read < half)
            read_spec(j, &sp[read++]);
        journal_commit(j);
        committed = read;
        commit_seg = sp[read - 1].segno;
        expect_segments(f->dir, commit_seg, w_seg);
        assert_int_equal(journal_uncommitted_bytes(j), bytes_of(sp, committed, appended));

        /* Read everything and commit: only the writer's segment is left. */
        while (read < appended)
            read_spec(j, &sp[read++]);
        assert_false(journal_next(j, &r));
        assert_int_equal(journal_uncommitted_bytes(j), bytes_of(sp, committed, appended));
        journal_commit(j);
        committed = read;
        commit_seg = w_seg;
        expect_segments(f->dir, w_seg, w_seg);
        assert_int_equal(journal_uncommitted_bytes(j), 0);
    }
    assert_true(sp[appended - 1].segno >= 20);
    journal_close(j);
    expect_no_segments(f->dir);
    specs_free(sp, n);
}

/* ---- rewind ---- */

static void make_fixed_specs(struct spec *sp, size_t n, uint64_t seed)
{
    uint64_t rng = seed;
    const struct spec_limits lim = {0, 0, 1};
    for (size_t i = 0; i < n; i++) {
        spec_fill(&sp[i], &rng, &lim);
        free(sp[i].topic);
        free(sp[i].payload);
        sp[i].topic = malloc(100);
        sp[i].payload = malloc(1900);
        assert_non_null(sp[i].topic);
        assert_non_null(sp[i].payload);
        for (size_t k = 0; k < 100; k++)
            sp[i].topic[k] = (char)('a' + (i + k) % 26);
        for (size_t k = 0; k < 1900; k++)
            sp[i].payload[k] = (char)(i * 31u + k);
        sp[i].m.topic = sp[i].topic;
        sp[i].m.topic_len = 100;
        sp[i].m.payload = sp[i].payload;
        sp[i].m.payload_len = 1900;
        sp[i].m.n_events = (uint16_t)(i % 5 == 0 ? 0 : 4); /* 2144-byte records */
        sp[i].m.ref = 0;                                   /* fixed sizes */
        for (unsigned k = 0; k < sp[i].m.n_events; k++) {
            sp[i].ev[k].ts_ms = (int64_t)(i * 100 + k);
            sp[i].ev[k].value = (double)i + (double)k / 8.0;
            sp[i].ev[k].field_off = (uint32_t)k;
            sp[i].ev[k].field_len = (uint32_t)(k + 1);
        }
        sp[i].len = rec_len(&sp[i].m);
    }
}

static void test_rewind(void **state)
{
    struct fixture *f = *state;
    const size_t seg = 65536, n = 80;
    struct spec *sp = calloc(n, sizeof *sp);
    struct journal_rec r;
    assert_non_null(sp);
    make_fixed_specs(sp, n, 7);
    specs_layout(sp, n, 1, 1, seg);
    assert_int_equal(sp[n - 1].segno, 3);

    struct journal *j = open_journal(f->dir, seg, 4, false);
    /* Nothing read: rewind is a no-op. */
    journal_rewind(j);
    for (size_t i = 0; i < n; i++)
        append_spec(j, &sp[i]);

    /* Read 45 (into the second segment), rewind, the same 45 again. */
    for (size_t i = 0; i < 45; i++)
        read_spec(j, &sp[i]);
    assert_true(sp[44].segno == 2);
    journal_rewind(j);
    for (size_t i = 0; i < 45; i++)
        read_spec(j, &sp[i]);

    /* Back to the start, read 10, commit; read on, rewind: back to 10. */
    journal_rewind(j);
    for (size_t i = 0; i < 10; i++)
        read_spec(j, &sp[i]);
    journal_commit(j);
    for (size_t i = 10; i < 50; i++)
        read_spec(j, &sp[i]);
    journal_rewind(j);
    for (size_t i = 10; i < n; i++)
        read_spec(j, &sp[i]);
    assert_false(journal_next(j, &r));
    journal_rewind(j);
    read_spec(j, &sp[10]);

    /* Commit in the second segment: the first is deleted, and rewind never
     * goes back before the commit point. */
    journal_rewind(j);
    for (size_t i = 10; i < 40; i++)
        read_spec(j, &sp[i]);
    journal_commit(j);
    expect_segments(f->dir, 2, 3);
    assert_int_equal(journal_uncommitted_bytes(j), bytes_of(sp, 40, n));
    journal_rewind(j);
    journal_rewind(j);
    read_spec(j, &sp[40]);
    journal_rewind(j);
    for (size_t i = 40; i < n; i++)
        read_spec(j, &sp[i]);
    journal_commit(j);
    journal_rewind(j);
    assert_false(journal_next(j, &r));
    assert_false(journal_has_unread(j));
    journal_close(j);
    expect_no_segments(f->dir);
    specs_free(sp, n);
}

/* ---- threads: back-pressure ---- */

/* Deterministic small message number i, regenerated by the consumer. */
struct gen_buf {
    char topic[48];
    char payload[160];
    struct journal_event ev[3];
};

static void gen_msg(uint32_t i, struct gen_buf *b, struct journal_msg *m)
{
    uint64_t h = (uint64_t)i * 0x9e3779b97f4a7c15ull + 1;
    int tl = snprintf(b->topic, sizeof b->topic, "site/%u/dev/%u", i % 97u, i);
    size_t pl = (size_t)((h >> 20) % sizeof b->payload);
    for (size_t k = 0; k < pl; k++)
        b->payload[k] = (char)(h >> (k % 56));
    memset(m, 0, sizeof *m);
    m->recv_ms = (int64_t)i * 10;
    m->mono_ms = (int64_t)i * 10 + 1;
    m->orig_len = (uint32_t)pl + (i & 1u);
    m->n_events = (uint16_t)(i % 4u); /* 0: dead letter */
    m->reason = (uint16_t)(m->n_events ? 0 : 3);
    m->flags = (uint16_t)(i & 0xfu);
    for (unsigned k = 0; k < m->n_events; k++) {
        b->ev[k].ts_ms = (int64_t)i * 1000 + k;
        b->ev[k].value = (double)i / 3.0 + k;
        b->ev[k].field_off = k * 2u;
        b->ev[k].field_len = 2;
    }
    m->events = b->ev;
    m->topic = b->topic;
    m->topic_len = (size_t)tl;
    m->payload = b->payload;
    m->payload_len = pl;
}

#define GEN_MAX_REC (REC_HDR + 3 * REC_EV + 48 + 160)

struct producer {
    struct journal *j;
    uint32_t n;            /* records to append; UINT32_MAX: until an error */
    _Atomic uint32_t done; /* records appended */
    _Atomic int tid;
    el_status st; /* status of the append that stopped it */
};

static void *producer_main(void *arg)
{
    struct producer *p = arg;
    uint64_t expect = journal_next_seq(p->j);
    atomic_store(&p->tid, (int)syscall(SYS_gettid));
    p->st = EL_OK;
    for (uint32_t i = 0; i < p->n; i++) {
        struct gen_buf b;
        struct journal_msg m;
        uint64_t seq = 0;
        gen_msg(i, &b, &m);
        el_status st = journal_append(p->j, &m, &seq);
        if (st != EL_OK) {
            p->st = st;
            break;
        }
        if (seq != expect) {
            p->st = EL_CORRUPT;
            break;
        }
        expect += seq_span(&m);
        atomic_store(&p->done, i + 1);
    }
    return NULL;
}

/* True when the thread is asleep in the kernel (waiting on a futex). */
static bool thread_sleeping(int tid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
    FILE *fp = fopen(path, "r");
    if (!fp)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    return p && p[1] == ' ' && p[2] == 'S';
}

/* Bounded poll: waits until the producer (tid known) is asleep with at
 * least min_bytes uncommitted, i.e. blocked on a full journal. */
static void wait_producer_blocked(struct journal *j, struct producer *p, uint64_t min_bytes,
                                  uint64_t max_bytes)
{
    int64_t deadline = mono_ms() + 20000;
    for (;;) {
        uint64_t u = journal_uncommitted_bytes(j);
        assert_true(u <= max_bytes);
        int tid = atomic_load(&p->tid);
        if (u >= min_bytes && tid != 0 && thread_sleeping(tid))
            break;
        assert_true(mono_ms() < deadline);
        short_pause();
    }
}

static void join_bounded(pthread_t t, int seconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += seconds;
    assert_int_equal(pthread_timedjoin_np(t, NULL, &ts), 0);
}

static void efd_wake(void *ctx)
{
    int fd = *(const int *)ctx;
    uint64_t one = 1;
    ssize_t w = write(fd, &one, sizeof one);
    (void)w;
}

static uint64_t efd_drain(int fd)
{
    uint64_t v = 0;
    if (read(fd, &v, sizeof v) != (ssize_t)sizeof v)
        return 0;
    return v;
}

static void test_backpressure_threads(void **state)
{
    struct fixture *f = *state;
    const size_t seg = 65536;
    const uint32_t nslots = 3, n = 200000;
    struct journal *j = open_journal(f->dir, seg, nslots, false);
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct producer p = {.j = j, .n = n};
    pthread_t t;
    assert_true(efd >= 0);
    journal_set_wakeup(j, efd_wake, &efd);
    assert_int_equal(pthread_create(&t, NULL, producer_main, &p), 0);

    /* Do not consume until the producer filled every segment and sleeps:
     * it must block, not overwrite or fail. */
    wait_producer_blocked(j, &p, (uint64_t)nslots * (seg - GEN_MAX_REC), (uint64_t)nslots * seg);
    assert_true(atomic_load(&p.done) < n);

    uint32_t next_i = 0, committed_i = 0, in_batch = 0, batch_no = 0, batch_target = 1;
    uint64_t next_seq = 1, committed_seq = 1, lost_wakeups = 0, rewinds = 0;
    int64_t deadline = mono_ms() + 100000;
    while (committed_i < n) {
        struct journal_rec r;
        if (journal_next(j, &r)) {
            struct gen_buf b;
            struct journal_msg m;
            assert_true(next_i < n);
            gen_msg(next_i, &b, &m);
            check_rec(&r, &m, next_seq);
            next_i++;
            next_seq += seq_span(&m);
            if (++in_batch < batch_target)
                continue;
        } else if (in_batch == 0) {
            /* Nothing read since the last commit and nothing there: sleep
             * until the producer's wake-up (bounded). */
            if (journal_consumer_sleep(j)) {
                struct pollfd pfd = {.fd = efd, .events = POLLIN};
                int rc = poll(&pfd, 1, 5000);
                assert_true(rc >= 0);
                if (rc == 0 && journal_has_unread(j))
                    lost_wakeups++;
                journal_consumer_awake(j);
            }
            (void)efd_drain(efd);
            assert_true(mono_ms() < deadline);
            continue;
        }
        /* End of a batch (or nothing more to read): commit, or sometimes
         * pretend the master-log commit failed and rewind. */
        batch_no++;
        if (batch_no % 7 == 3) {
            journal_rewind(j);
            next_i = committed_i;
            next_seq = committed_seq;
            rewinds++;
        } else {
            journal_commit(j);
            committed_i = next_i;
            committed_seq = next_seq;
        }
        in_batch = 0;
        batch_target = 1 + (batch_no * 7919u) % 3000u;
        assert_true(journal_uncommitted_bytes(j) <= (uint64_t)nslots * seg);
    }
    join_bounded(t, 30);
    assert_int_equal(p.st, EL_OK);
    assert_int_equal(atomic_load(&p.done), n);
    assert_int_equal(lost_wakeups, 0);
    assert_true(rewinds > 0);
    struct journal_rec r;
    assert_false(journal_next(j, &r));
    assert_int_equal(journal_uncommitted_bytes(j), 0);
    assert_int_equal(journal_next_seq(j), next_seq);
    journal_close(j);
    expect_no_segments(f->dir);
    close(efd);
}

static void test_shutdown_wakes_producer(void **state)
{
    struct fixture *f = *state;
    const size_t seg = 65536;
    struct journal *j = open_journal(f->dir, seg, 2, false);
    struct producer p = {.j = j, .n = UINT32_MAX};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, producer_main, &p), 0);

    /* The consumer never commits: the producer fills both segments and
     * blocks; shutdown must wake it with EL_AGAIN. */
    wait_producer_blocked(j, &p, 2 * (seg - GEN_MAX_REC), 2 * seg);
    uint32_t before = atomic_load(&p.done);
    journal_shutdown(j);
    join_bounded(t, 10);
    assert_int_equal(p.st, EL_AGAIN);
    assert_int_equal(atomic_load(&p.done), before);

    /* Exactly the appended records are there; the refused one is not. */
    struct journal_rec r;
    uint64_t seq = 1;
    uint32_t got = 0;
    while (journal_next(j, &r)) {
        struct gen_buf b;
        struct journal_msg m;
        gen_msg(got, &b, &m);
        check_rec(&r, &m, seq);
        seq += seq_span(&m);
        got++;
    }
    assert_int_equal(got, before);
    assert_int_equal(journal_next_seq(j), seq);
    journal_commit(j);
    journal_close(j);
    expect_no_segments(f->dir);
}

/* ---- wake-up hook ---- */

struct one_shot {
    struct journal *j;
    uint32_t first, count;
    el_status st;
};

static void *append_some(void *arg)
{
    struct one_shot *o = arg;
    o->st = EL_OK;
    for (uint32_t i = o->first; i < o->first + o->count && o->st == EL_OK; i++) {
        struct gen_buf b;
        struct journal_msg m;
        uint64_t seq;
        gen_msg(i, &b, &m);
        o->st = journal_append(o->j, &m, &seq);
    }
    return NULL;
}

static void run_appender(struct journal *j, uint32_t first, uint32_t count)
{
    struct one_shot o = {.j = j, .first = first, .count = count};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, append_some, &o), 0);
    join_bounded(t, 10);
    assert_int_equal(o.st, EL_OK);
}

static void test_wakeup_hook(void **state)
{
    struct fixture *f = *state;
    struct journal *j = open_journal(f->dir, 65536, 2, false);
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct journal_rec r;
    assert_true(efd >= 0);
    journal_set_wakeup(j, efd_wake, &efd);

    /* Consumer awake: appends do not call the hook. */
    run_appender(j, 0, 2);
    assert_int_equal(efd_drain(efd), 0);
    /* A record is waiting: do not sleep. */
    assert_false(journal_consumer_sleep(j));
    assert_true(journal_next(j, &r));
    assert_true(journal_next(j, &r));
    assert_false(journal_next(j, &r));

    /* Asleep on the eventfd; an append on another thread wakes it. */
    assert_true(journal_consumer_sleep(j));
    pthread_t t;
    struct one_shot o = {.j = j, .first = 2, .count = 1};
    assert_int_equal(pthread_create(&t, NULL, append_some, &o), 0);
    struct pollfd pfd = {.fd = efd, .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, 10000), 1);
    join_bounded(t, 10);
    assert_int_equal(o.st, EL_OK);
    assert_int_equal(efd_drain(efd), 1);
    journal_consumer_awake(j);
    assert_true(journal_next(j, &r));
    assert_int_equal(r.recv_ms, 20);

    /* At most one call per sleep, however many appends. */
    assert_true(journal_consumer_sleep(j));
    run_appender(j, 3, 5);
    assert_int_equal(efd_drain(efd), 1);
    journal_consumer_awake(j);
    for (int i = 0; i < 5; i++)
        assert_true(journal_next(j, &r));
    assert_false(journal_next(j, &r));

    /* The append that starts a new segment wakes too. */
    for (uint32_t i = 8;; i++) {
        uint64_t segs[4];
        assert_true(i < 2000);
        assert_true(journal_consumer_sleep(j));
        run_appender(j, i, 1);
        assert_int_equal(efd_drain(efd), 1);
        journal_consumer_awake(j);
        assert_true(journal_next(j, &r));
        assert_int_equal(r.recv_ms, (int64_t)i * 10);
        journal_commit(j);
        if (list_segments(f->dir, segs, 4) == 1 && segs[0] == 2)
            break;
    }
    journal_close(j);
    expect_no_segments(f->dir);
    close(efd);
}

/* ---- crash replay ---- */

struct replay_ctx {
    const struct spec *sp;
    size_t n_expected; /* records the callback may see */
    size_t got;
    size_t fail_at; /* return EL_IO for this record (SIZE_MAX: never) */
};

static el_status replay_check(void *ctx, const struct journal_rec *rec)
{
    struct replay_ctx *c = ctx;
    if (c->got == c->fail_at)
        return EL_IO;
    assert_true(c->got < c->n_expected);
    check_rec(rec, &c->sp[c->got].m, c->sp[c->got].seq);
    c->got++;
    return EL_OK;
}

static size_t replay_all(struct journal *j, const struct spec *sp, size_t n_max, uint64_t *max_seq)
{
    struct replay_ctx c = {.sp = sp, .n_expected = n_max, .fail_at = SIZE_MAX};
    assert_int_equal(journal_replay(j, replay_check, &c, max_seq), EL_OK);
    return c.got;
}

static uint64_t last_seq_of(const struct spec *sp)
{
    return sp->seq + seq_span(&sp->m) - 1;
}

static void test_crash_replay(void **state)
{
    struct fixture *f = *state;
    const size_t seg = 65536, n = 90, n2 = 7;
    const struct spec_limits lim = {300, 2500, 20};
    struct spec *sp = specs_new(n + n2, 1234, &lim);
    uint64_t max_seq = 99;
    specs_layout(sp, n, 500, 1, seg);
    assert_int_equal(sp[n - 1].segno, 3);

    /* Run 1: appends, reads some, commits nothing, "crashes". */
    struct journal *j = open_journal(f->dir, seg, 4, false);
    journal_set_next_seq(j, 500);
    for (size_t i = 0; i < n; i++)
        append_spec(j, &sp[i]);
    for (size_t i = 0; i < 10; i++)
        read_spec(j, &sp[i]);
    journal_close(j);
    expect_segments(f->dir, 1, 3);

    /* Run 2: replay yields exactly those records; new records go to a
     * fresh segment after the old ones. */
    j = open_journal(f->dir, seg, 4, false);
    expect_segments(f->dir, 1, 4);
    assert_int_equal(replay_all(j, sp, n, &max_seq), n);
    assert_int_equal(max_seq, last_seq_of(&sp[n - 1]));
    /* Replaying twice gives the same (nothing is consumed). */
    assert_int_equal(replay_all(j, sp, n, &max_seq), n);
    /* A failing callback stops the replay with its status. */
    struct replay_ctx c = {.sp = sp, .n_expected = n, .fail_at = 40};
    assert_int_equal(journal_replay(j, replay_check, &c, &max_seq), EL_IO);
    assert_int_equal(c.got, 40);
    assert_int_equal(max_seq, last_seq_of(&sp[39]));

    /* It crashes again before dropping the replayed segments, after
     * appending a few more records. */
    specs_layout(sp + n, n2, last_seq_of(&sp[n - 1]) + 1, 4, seg);
    journal_set_next_seq(j, last_seq_of(&sp[n - 1]) + 1);
    for (size_t i = n; i < n + n2; i++)
        append_spec(j, &sp[i]);
    journal_close(j);
    expect_segments(f->dir, 1, 4);

    /* Run 3: both runs' records, in order. */
    j = open_journal(f->dir, seg, 4, false);
    expect_segments(f->dir, 1, 5);
    assert_int_equal(replay_all(j, sp, n + n2, &max_seq), n + n2);
    assert_int_equal(max_seq, last_seq_of(&sp[n + n2 - 1]));
    assert_int_equal(journal_drop_replayed(j), EL_OK);
    expect_segments(f->dir, 5, 5);
    /* Dropped: nothing to replay any more. */
    assert_int_equal(replay_all(j, sp, 0, &max_seq), 0);
    assert_int_equal(max_seq, 0);
    journal_close(j);
    expect_no_segments(f->dir);

    /* Run 4: clean start, nothing to replay. */
    j = open_journal(f->dir, seg, 4, false);
    assert_int_equal(replay_all(j, sp, 0, &max_seq), 0);
    assert_int_equal(max_seq, 0);
    assert_int_equal(journal_drop_replayed(j), EL_OK);
    journal_close(j);
    expect_no_segments(f->dir);
    specs_free(sp, n + n2);
}

/* ---- torn records ---- */

enum damage {
    DMG_BODY_BYTE, /* flip a byte in the middle of the record */
    DMG_CRC_BYTE,  /* flip a byte of the stored CRC */
    DMG_LEN_SHORT, /* length field 8 bytes too small */
    DMG_LEN_HUGE,  /* length field beyond the segment */
    DMG_LEN_ZERO,  /* length field zeroed */
    DMG_TAIL_ZERO, /* everything from the record on zeroed (lost pages) */
    DMG_TRUNCATE,  /* file cut inside the record */
};

static void damage_file(const char *path, const struct spec *s, enum damage d)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    unsigned char b[4];
    uint32_t len;
    struct stat sb;
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &sb), 0);
    off_t at = (off_t)s->off;
    switch (d) {
    case DMG_BODY_BYTE:
    case DMG_CRC_BYTE:
        if (d == DMG_BODY_BYTE)
            at += (off_t)(s->len / 2);
        else
            at += 5;
        assert_int_equal(pread(fd, b, 1, at), 1);
        b[0] ^= 0x10;
        assert_int_equal(pwrite(fd, b, 1, at), 1);
        break;
    case DMG_LEN_SHORT:
    case DMG_LEN_HUGE:
    case DMG_LEN_ZERO:
        assert_int_equal(pread(fd, &len, 4, at), 4);
        assert_int_equal(len, s->len);
        len = d == DMG_LEN_SHORT ? len - 8u : d == DMG_LEN_HUGE ? 0xfffffff8u : 0u;
        assert_int_equal(pwrite(fd, &len, 4, at), 4);
        break;
    case DMG_TAIL_ZERO: {
        size_t n = (size_t)sb.st_size - s->off;
        char *zero = calloc(1, n);
        assert_non_null(zero);
        assert_int_equal(pwrite(fd, zero, n, at), (ssize_t)n);
        free(zero);
        break;
    }
    case DMG_TRUNCATE: assert_int_equal(ftruncate(fd, at + 20), 0); break;
    }
    close(fd);
}

/* Writes sp[0..n) uncommitted, "crashes", damages record `bad` on disk and
 * checks that replay stops exactly before it. */
static void torn_case(const char *dir, struct spec *sp, size_t n, size_t seg, size_t bad,
                      enum damage d)
{
    char path[PATH_MAX + 64];
    uint64_t max_seq = 1;
    specs_layout(sp, n, 1, 1, seg);
    struct journal *j = open_journal(dir, seg, 4, false);
    for (size_t i = 0; i < n; i++)
        append_spec(j, &sp[i]);
    journal_close(j);

    seg_file(dir, sp[bad].segno, path, sizeof path);
    damage_file(path, &sp[bad], d);

    j = open_journal(dir, seg, 4, false);
    assert_int_equal(replay_all(j, sp, bad, &max_seq), bad);
    assert_int_equal(max_seq, bad ? last_seq_of(&sp[bad - 1]) : 0);
    assert_int_equal(journal_drop_replayed(j), EL_OK);
    journal_close(j);
    expect_no_segments(dir);
}

static void test_torn_records(void **state)
{
    struct fixture *f = *state;
    const size_t n = 30;
    const struct spec_limits lim = {200, 1500, 30};
    struct spec *sp = specs_new(n, 77, &lim);
    static const enum damage all[] = {DMG_BODY_BYTE, DMG_CRC_BYTE,  DMG_LEN_SHORT, DMG_LEN_HUGE,
                                      DMG_LEN_ZERO,  DMG_TAIL_ZERO, DMG_TRUNCATE};
    char dir[PATH_MAX + 32];
    int k = 0;

    /* One segment: record 17 damaged, the last one damaged, the first one. */
    for (size_t di = 0; di < sizeof all / sizeof all[0]; di++) {
        const size_t bad[] = {17, n - 1, 0};
        for (size_t bi = 0; bi < 3; bi++) {
            snprintf(dir, sizeof dir, "%s/case%d", f->dir, k++);
            torn_case(dir, sp, n, 1u << 20, bad[bi], all[di]);
        }
    }
    specs_free(sp, n);

    /* Several segments: garbage in the middle of the second one stops the
     * replay there; the third segment's records are not trusted either. */
    const size_t n3 = 120;
    sp = specs_new(n3, 78, &lim);
    specs_layout(sp, n3, 1, 1, 65536);
    assert_int_equal(sp[n3 - 1].segno, 3);
    size_t bad = 0;
    while (sp[bad].segno < 2)
        bad++;
    bad += 5;
    const enum damage torn[] = {DMG_BODY_BYTE, DMG_CRC_BYTE, DMG_LEN_SHORT};
    for (size_t di = 0; di < 3; di++) {
        snprintf(dir, sizeof dir, "%s/case%d", f->dir, k++);
        torn_case(dir, sp, n3, 65536, bad, torn[di]);
    }
    /* The last record of all, in the last segment: only it is lost. */
    snprintf(dir, sizeof dir, "%s/case%d", f->dir, k++);
    torn_case(dir, sp, n3, 65536, n3 - 1, DMG_TAIL_ZERO);
    specs_free(sp, n3);
}

/* ---- invalid arguments ---- */

static void test_invalid(void **state)
{
    struct fixture *f = *state;
    struct journal *j = (struct journal *)(uintptr_t)1;
    struct journal_opts o = {.dir = f->dir, .segment_bytes = 65536, .segments = 1};
    char longdir[PATH_MAX + 16];

    assert_int_equal(journal_open(&o, &j), EL_INVAL);
    assert_null(j);
    o.segments = 0;
    assert_int_equal(journal_open(&o, &j), EL_INVAL);
    o.segments = 2;
    o.segment_bytes = 65536 + 100;
    assert_int_equal(journal_open(&o, &j), EL_INVAL);
    o.segment_bytes = 65536 - 4096;
    assert_int_equal(journal_open(&o, &j), EL_INVAL);
    o.segment_bytes = 0;
    assert_int_equal(journal_open(&o, &j), EL_INVAL);
    memset(longdir, 'x', sizeof longdir - 1);
    longdir[0] = '/';
    longdir[sizeof longdir - 1] = '\0';
    o.dir = longdir;
    o.segment_bytes = 65536;
    assert_int_equal(journal_open(&o, &j), EL_INVAL);
    assert_null(j);
    expect_no_segments(f->dir);
    journal_close(NULL);

    /* Records that can never fit. */
    j = open_journal(f->dir, 65536, 2, false);
    journal_set_next_seq(j, 10);
    char *big = calloc(1, 70000);
    assert_non_null(big);
    struct journal_msg m = {.topic = "t", .topic_len = 1, .payload = big, .payload_len = 65536};
    uint64_t seq = 0;
    assert_int_equal(journal_append(j, &m, &seq), EL_INVAL);
    m.payload_len = 0;
    m.topic = big;
    m.topic_len = 70000; /* > UINT16_MAX */
    assert_int_equal(journal_append(j, &m, &seq), EL_INVAL);
    /* A ref only with events; the journal's own flag bit is not the caller's. */
    m.topic = "t";
    m.topic_len = 1;
    m.ref = 5;
    assert_int_equal(journal_append(j, &m, &seq), EL_INVAL);
    m.ref = 0;
    m.flags = JOURNAL_F_REF;
    assert_int_equal(journal_append(j, &m, &seq), EL_INVAL);
    m.flags = 0;
    assert_int_equal(journal_next_seq(j), 10);
    assert_int_equal(journal_uncommitted_bytes(j), 0);

    /* The largest body journal_max_body allows does fit, twice (rotating). */
    size_t max_body = journal_max_body(65536);
    m.topic = "t";
    m.topic_len = 1;
    m.payload = big;
    m.payload_len = max_body - 1;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(journal_append(j, &m, &seq), EL_OK);
        assert_int_equal(seq, 10u + (unsigned)i);
    }
    struct journal_rec r;
    for (int i = 0; i < 2; i++) {
        assert_true(journal_next(j, &r));
        check_rec(&r, &m, 10u + (unsigned)i);
    }
    assert_false(journal_next(j, &r));
    journal_commit(j);
    journal_close(j);
    expect_no_segments(f->dir);
    free(big);
}

/* ---- strict mode ---- */

static void test_strict(void **state)
{
    struct fixture *f = *state;
    const size_t seg = 65536, n = 60;
    const struct spec_limits lim = {100, 3000, 8};
    struct spec *sp = specs_new(n, 99, &lim);
    uint64_t max_seq = 0;
    specs_layout(sp, n, 1, 1, seg);
    assert_true(sp[n - 1].segno >= 2);

    struct journal *j = open_journal(f->dir, seg, 4, true);
    for (size_t i = 0; i < n; i++)
        append_spec(j, &sp[i]);
    for (size_t i = 0; i < n; i++)
        read_spec(j, &sp[i]);
    journal_close(j); /* read, not committed: kept */
    j = open_journal(f->dir, seg, 4, true);
    assert_int_equal(replay_all(j, sp, n, &max_seq), n);
    assert_int_equal(max_seq, last_seq_of(&sp[n - 1]));
    assert_int_equal(journal_drop_replayed(j), EL_OK);
    journal_close(j);
    expect_no_segments(f->dir);
    specs_free(sp, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rewind, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backpressure_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_wakes_producer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wakeup_hook, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_replay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_strict, setup, teardown),
    };
    plat_log_set_level(PLAT_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
