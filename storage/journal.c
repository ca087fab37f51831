/*
 * journal — memory-mapped ingest journal segments (format and design in
 * journal.h).
 *
 * Ownership: struct journal owns its segment mappings and files. Records
 * handed to the consumer point into the mappings and stay valid until the
 * consumer's next journal_commit/journal_rewind.
 *
 * Segment slots: segment number n lives in slot n % nslots. A slot is free
 * when its segno is 0; only the consumer frees slots (after a commit), only
 * the producer fills them, both under `mu`. The producer prepares segment
 * n+1 before it seals segment n, so a consumer that sees n sealed (acquire)
 * also sees n+1's slot filled.
 */
#include "journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plat_file.h"
#include "plat_hash.h"
#include "plat_log.h"

#define REC_HDR_BYTES 48u
#define REC_EVENT_BYTES 24u
#define MAX_OLD_SEGMENTS 4096

struct seg {
    uint64_t segno; /* 0: slot free */
    char *base;
    _Atomic size_t written;
    _Atomic int sealed;
};

struct journal {
    char dir[PATH_MAX]; /* <storage.dir>/journal */
    size_t seg_bytes;
    uint32_t nslots;
    bool strict;
    size_t page;
    struct seg *slots;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    _Atomic int shutdown;
    _Atomic int sync_each; /* journal_sync_each: msync every record, as strict does */

    /* producer */
    uint64_t w_segno;
    size_t w_off;
    uint64_t next_seq;
    _Atomic int sync_failing;  /* strict: an msync is failing and being retried */
    _Atomic int rotate_held;   /* the producer waits for a free segment or a new one */
    _Atomic int segment_error; /* el_status of the failing segment creation; 0: none */

    /* consumer */
    uint64_t r_segno, c_segno;
    size_t r_off, c_off;
    _Atomic int consumer_sleeping;
    void (*wake_fn)(void *ctx);
    void *wake_ctx;

    /* segments found at open, for replay */
    uint64_t *old;
    size_t n_old;
};

static size_t align8(size_t n)
{
    return (n + 7u) & ~(size_t)7u;
}

size_t journal_max_body(size_t segment_bytes)
{
    return segment_bytes - REC_HDR_BYTES - 8u;
}

static void seg_path(const struct journal *j, uint64_t segno, char *buf, size_t len)
{
    snprintf(buf, len, "%s/seg-%016" PRIx64 ".jnl", j->dir, segno);
}

static struct seg *slot_of(struct journal *j, uint64_t segno)
{
    return &j->slots[segno % j->nslots];
}

/* Creates, preallocates and maps segment segno into its (free) slot. */
static el_status seg_create(struct journal *j, uint64_t segno)
{
    char path[PATH_MAX + 32];
    struct seg *s = slot_of(j, segno);
    seg_path(j, segno, path, sizeof path);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) {
        log_error("journal: cannot create %s: %s", path, strerror(errno));
        return errno == ENOSPC || errno == EDQUOT ? EL_FULL : EL_IO;
    }
    /* Allocate the blocks now so that writing through the mapping can never
     * hit ENOSPC (which would be a SIGBUS, not an error code). */
    int err = posix_fallocate(fd, 0, (off_t)j->seg_bytes);
    if (err == EOPNOTSUPP || err == EINVAL) {
        err = ftruncate(fd, (off_t)j->seg_bytes) == 0 ? 0 : errno;
    }
    if (err != 0) {
        log_error("journal: cannot allocate %zu bytes for %s: %s", j->seg_bytes, path,
                  strerror(err));
        close(fd);
        unlink(path);
        return err == ENOSPC || err == EDQUOT ? EL_FULL : EL_IO;
    }
    void *base = mmap(NULL, j->seg_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int map_errno = errno;
    close(fd);
    if (base == MAP_FAILED) {
        log_error("journal: cannot map %s: %s", path, strerror(map_errno));
        unlink(path);
        return EL_IO;
    }
    /* Under mu: the consumer reads slot segnos in journal_uncommitted_bytes. */
    pthread_mutex_lock(&j->mu);
    s->base = base;
    atomic_store(&s->written, 0);
    atomic_store(&s->sealed, 0);
    s->segno = segno;
    pthread_mutex_unlock(&j->mu);
    if (j->strict || atomic_load(&j->sync_each)) {
        /* The new file's directory entry must survive a power cut too. */
        el_status st = plat_file_fsync_dir(j->dir);
        if (st != EL_OK)
            return st;
    }
    return EL_OK;
}

/* Consumer side: forget a fully committed segment. */
static void seg_retire(struct journal *j, uint64_t segno)
{
    char path[PATH_MAX + 32];
    struct seg *s = slot_of(j, segno);
    seg_path(j, segno, path, sizeof path);
    munmap(s->base, j->seg_bytes);
    if (unlink(path) != 0)
        log_warn("journal: cannot remove %s: %s", path, strerror(errno));
    pthread_mutex_lock(&j->mu);
    s->base = NULL;
    s->segno = 0;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static el_status find_old_segments(struct journal *j, uint64_t *max_segno)
{
    DIR *d = opendir(j->dir);
    struct dirent *de;
    *max_segno = 0;
    if (!d) {
        log_error("journal: cannot open %s: %s", j->dir, strerror(errno));
        return EL_IO;
    }
    while ((de = readdir(d)) != NULL) {
        char *end;
        if (strncmp(de->d_name, "seg-", 4) != 0)
            continue;
        errno = 0;
        unsigned long long n = strtoull(de->d_name + 4, &end, 16);
        if (errno != 0 || strcmp(end, ".jnl") != 0 || n == 0)
            continue;
        if (j->n_old == MAX_OLD_SEGMENTS) {
            closedir(d);
            log_error("journal: more than %d segments in %s", MAX_OLD_SEGMENTS, j->dir);
            return EL_CORRUPT;
        }
        j->old[j->n_old++] = n;
        if (n > *max_segno)
            *max_segno = n;
    }
    closedir(d);
    qsort(j->old, j->n_old, sizeof j->old[0], cmp_u64);
    return EL_OK;
}

el_status journal_open(const struct journal_opts *opts, struct journal **out)
{
    el_status st = EL_NOMEM;
    uint64_t max_old = 0;
    struct journal *j = calloc(1, sizeof *j);
    *out = NULL;
    if (!j)
        return EL_NOMEM;
    if (opts->segments < 2 || opts->segment_bytes < 65536 || opts->segment_bytes % 4096 != 0) {
        free(j);
        return EL_INVAL;
    }
    pthread_mutex_init(&j->mu, NULL);
    pthread_condattr_t ca; /* timed waits measure monotonic time: the wall clock may jump */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&j->cv, &ca);
    pthread_condattr_destroy(&ca);
    j->seg_bytes = opts->segment_bytes;
    j->nslots = opts->segments;
    j->strict = opts->strict;
    j->page = (size_t)sysconf(_SC_PAGESIZE);
    j->next_seq = 1;
    if (snprintf(j->dir, sizeof j->dir, "%s/journal", opts->dir) >= (int)sizeof j->dir) {
        st = EL_INVAL;
        goto fail;
    }
    j->slots = calloc(j->nslots, sizeof j->slots[0]);
    j->old = calloc(MAX_OLD_SEGMENTS, sizeof j->old[0]);
    if (!j->slots || !j->old)
        goto fail;
    st = plat_file_mkdirs(j->dir);
    if (st == EL_OK) /* the journal dir's own entry must survive a power cut */
        st = plat_file_fsync_dir(opts->dir);
    if (st != EL_OK)
        goto fail;
    st = find_old_segments(j, &max_old);
    if (st != EL_OK)
        goto fail;
    j->w_segno = j->r_segno = j->c_segno = max_old + 1;
    st = seg_create(j, j->w_segno);
    if (st != EL_OK)
        goto fail;
    *out = j;
    return EL_OK;
fail:
    free(j->old);
    free(j->slots);
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    free(j);
    return st;
}

void journal_close(struct journal *j)
{
    if (!j)
        return;
    /* Everything written was committed (clean shutdown): nothing to replay. */
    bool all_committed = j->c_segno == j->w_segno && j->c_off == j->w_off && j->r_off == j->c_off;
    for (uint32_t i = 0; i < j->nslots; i++) {
        if (!j->slots[i].base)
            continue;
        munmap(j->slots[i].base, j->seg_bytes);
        if (all_committed) {
            char path[PATH_MAX + 32];
            seg_path(j, j->slots[i].segno, path, sizeof path);
            unlink(path);
        }
    }
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    free(j->old);
    free(j->slots);
    free(j);
}

/* Parses and checks the record at base+off of a mapping of size bytes.
 * Returns its length, or 0 at the end of valid data. verify: check the CRC
 * (recovery, where a record may be torn). The live consumer does not: it
 * reads only below the producer's published `written` (release/acquire), so
 * the bytes are the ones written -- the CRC there cost 1-3 % of the daemon's
 * CPU at 50,000 msg/s (perf, docs/BENCHMARKS.md) to re-prove it. */
static size_t rec_parse(const char *base, size_t size, size_t off, bool verify,
                        struct journal_rec *rec)
{
    uint32_t len, crc;
    uint16_t u16[4];
    if (size - off < REC_HDR_BYTES)
        return 0;
    const char *p = base + off;
    len = __atomic_load_n((const uint32_t *)(const void *)p, __ATOMIC_ACQUIRE);
    if (len < REC_HDR_BYTES || len % 8 != 0 || len > size - off)
        return 0;
    memcpy(&crc, p + 4, 4);
    if (verify && plat_crc32(0, p + 8, len - 8u) != crc)
        return 0;
    memcpy(&rec->seq, p + 8, 8);
    memcpy(&rec->recv_ms, p + 16, 8);
    memcpy(&rec->mono_ms, p + 24, 8);
    memcpy(&rec->orig_len, p + 32, 4);
    uint32_t payload_len;
    memcpy(&payload_len, p + 36, 4);
    memcpy(u16, p + 40, 8);
    rec->topic_len = u16[0];
    rec->n_events = u16[1];
    rec->reason = u16[2];
    rec->flags = u16[3];
    rec->payload_len = payload_len;
    rec->names_len = rec->n_events ? rec->reason : (uint16_t)(rec->reason >> 8);
    rec->reason = rec->n_events ? 0 : (uint16_t)(rec->reason & 0xff);
    bool has_ref = (rec->flags & JOURNAL_F_REF) != 0;
    rec->flags &= (uint16_t)~JOURNAL_F_REF;
    size_t body = REC_HDR_BYTES + (size_t)rec->n_events * REC_EVENT_BYTES + rec->topic_len +
                  rec->payload_len + rec->names_len + (has_ref ? 8u : 0u);
    if (align8(body) != len || (has_ref && rec->n_events == 0))
        return 0;
    rec->events = (const struct journal_event *)(const void *)(p + REC_HDR_BYTES);
    rec->topic = p + REC_HDR_BYTES + (size_t)rec->n_events * REC_EVENT_BYTES;
    rec->payload = rec->topic + rec->topic_len;
    rec->ref = 0;
    if (has_ref)
        memcpy(&rec->ref, rec->payload + rec->payload_len + rec->names_len, 8);
    return len;
}

static uint64_t rec_last_seq(const struct journal_rec *rec)
{
    return rec->seq + (rec->n_events ? rec->n_events : 1u) - 1u;
}

/* Replays the records of one segment file (path) after *max_seq, raising
 * it; *torn when the segment ends in a record that fails its check (later
 * segments are then not trusted either). EL_IO when the file cannot be read,
 * else fn's first failure or EL_OK. */
static el_status replay_segment(const char *path, journal_replay_fn fn, void *ctx,
                                uint64_t *max_seq, bool *torn)
{
    struct stat sb;
    size_t off = 0, len;
    struct journal_rec rec;
    el_status st = EL_OK;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &sb) != 0) {
        log_error("journal: cannot read %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return EL_IO;
    }
    if (sb.st_size < (off_t)REC_HDR_BYTES) {
        close(fd);
        return EL_OK;
    }
    size_t size = (size_t)sb.st_size;
    void *base = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (base == MAP_FAILED) {
        log_error("journal: cannot map %s: %s", path, strerror(errno));
        return EL_IO;
    }
    while ((len = rec_parse(base, size, off, true, &rec)) > 0) {
        if (rec.seq <= *max_seq) {
            *torn = true; /* sequence went backwards: not ours to trust */
            break;
        }
        st = fn(ctx, &rec);
        if (st != EL_OK)
            break;
        *max_seq = rec_last_seq(&rec);
        off += len;
    }
    /* Anything after the first record that fails its check is not trusted:
     * in strict mode records are synced in order, so only the last can be
     * torn; in normal mode a power cut may lose any unsynced tail. */
    if (len == 0 && off + REC_HDR_BYTES <= size) {
        uint32_t tail;
        memcpy(&tail, (const char *)base + off, 4);
        *torn = *torn || tail != 0;
    }
    munmap(base, size);
    if (*torn)
        log_warn("journal: %s ends in a torn record at offset %zu; later records ignored", path,
                 off);
    return st;
}

el_status journal_replay(struct journal *j, journal_replay_fn fn, void *ctx, uint64_t *max_seq)
{
    char path[PATH_MAX + 32];
    el_status st = EL_OK;
    bool torn = false;
    *max_seq = 0;
    for (size_t i = 0; i < j->n_old && st == EL_OK && !torn; i++) {
        seg_path(j, j->old[i], path, sizeof path);
        st = replay_segment(path, fn, ctx, max_seq, &torn);
    }
    return st;
}

el_status journal_drop_replayed(struct journal *j)
{
    char path[PATH_MAX + 32];
    for (size_t i = 0; i < j->n_old; i++) {
        seg_path(j, j->old[i], path, sizeof path);
        if (unlink(path) != 0 && errno != ENOENT) {
            log_error("journal: cannot remove %s: %s", path, strerror(errno));
            return EL_IO;
        }
    }
    j->n_old = 0;
    return plat_file_fsync_dir(j->dir);
}

void journal_set_next_seq(struct journal *j, uint64_t next_seq)
{
    j->next_seq = next_seq;
}

uint64_t journal_next_seq(const struct journal *j)
{
    return j->next_seq;
}

/* Producer: moves to segment w_segno+1, waiting for its slot to be free. */
static el_status rotate(struct journal *j)
{
    uint64_t next = j->w_segno + 1;
    struct seg *cur = slot_of(j, j->w_segno);
    struct seg *s = slot_of(j, next);
    bool warned = false;
    for (;;) {
        pthread_mutex_lock(&j->mu);
        if (s->segno != 0)
            atomic_store(&j->rotate_held, 1);
        while (s->segno != 0 && !atomic_load(&j->shutdown))
            pthread_cond_wait(&j->cv, &j->mu);
        pthread_mutex_unlock(&j->mu);
        if (atomic_load(&j->shutdown)) {
            atomic_store(&j->rotate_held, 0);
            return EL_AGAIN;
        }
        el_status st = seg_create(j, next);
        if (st == EL_OK)
            break;
        atomic_store(&j->rotate_held, 1);
        atomic_store(&j->segment_error, (int)st);
        /* Disk full or failing: hold the message (and so the broker's copy)
         * and try again; the broker keeps what we do not acknowledge. */
        if (!warned)
            log_error("journal: cannot start a new segment (%s); holding ingest until it can",
                      el_status_str(st));
        warned = true;
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    atomic_store(&j->rotate_held, 0);
    atomic_store(&j->segment_error, 0);
    if (warned)
        log_info("journal: new segment created; ingest resumes");
    atomic_store(&cur->sealed, 1);
    j->w_segno = next;
    j->w_off = 0;
    if (atomic_exchange(&j->consumer_sleeping, 0) && j->wake_fn)
        j->wake_fn(j->wake_ctx);
    return EL_OK;
}

/* Strict mode: makes the record's pages durable before it is acknowledged.
 * A failed msync (EIO, ENOSPC on thin storage) is retried with backoff up
 * to 5 s until it works or the journal shuts down, holding the Paho thread
 * here: the message is not acknowledged, the broker keeps it (as with a
 * full disk). After a failed writeback Linux may mark the pages clean, and
 * a second msync would then succeed without writing anything; so each retry
 * first dirties the pages again by storing their bytes back. */
static el_status sync_record(struct journal *j, char *p, size_t len)
{
    char *start = (char *)((uintptr_t)p & ~(uintptr_t)(j->page - 1));
    size_t span = (size_t)(p + len - start);
    long delay_ms = 10;
    int err = 0;
    while (msync(start, span, MS_SYNC) != 0) {
        int e = errno;
        if (e != err)
            log_error("journal: msync failed: %s; holding ingest (not acknowledged) and retrying",
                      strerror(e));
        err = e;
        atomic_store(&j->sync_failing, 1);
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += delay_ms / 1000;
        until.tv_nsec += (delay_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&j->mu);
        while (!atomic_load(&j->shutdown) &&
               pthread_cond_timedwait(&j->cv, &j->mu, &until) != ETIMEDOUT) {
        }
        pthread_mutex_unlock(&j->mu);
        if (atomic_load(&j->shutdown))
            return EL_IO;
        delay_ms = delay_ms * 2 > 5000 ? 5000 : delay_ms * 2;
        for (volatile char *q = start; q < start + span; q += j->page)
            *q = *q;
    }
    if (err != 0) {
        log_info("journal: msync works again; ingest resumes");
        atomic_store(&j->sync_failing, 0);
    }
    return EL_OK;
}

void journal_sync_each(struct journal *j, bool on)
{
    if (atomic_exchange(&j->sync_each, on ? 1 : 0) == (int)on || !on || j->strict)
        return;
    /* Records written before the switch: the producer checks the flag after
     * writing each record, so whatever it did not sync itself is here. */
    pthread_mutex_lock(&j->mu);
    for (uint32_t i = 0; i < j->nslots; i++)
        if (j->slots[i].base && msync(j->slots[i].base, j->seg_bytes, MS_SYNC) != 0)
            log_error("journal: msync failed: %s", strerror(errno));
    pthread_mutex_unlock(&j->mu);
    if (plat_file_fsync_dir(j->dir) != EL_OK)
        log_error("journal: the segments' directory entries may not survive a power cut");
}

el_status journal_segment_error(const struct journal *j)
{
    return (el_status)atomic_load(&j->segment_error);
}

bool journal_held(const struct journal *j)
{
    return atomic_load(&j->rotate_held) != 0 || atomic_load(&j->sync_failing) != 0;
}

bool journal_sync_failing(const struct journal *j)
{
    return atomic_load(&j->sync_failing) != 0;
}

el_status journal_append(struct journal *j, const struct journal_msg *m, uint64_t *seq)
{
    size_t ev_bytes = (size_t)m->n_events * REC_EVENT_BYTES;
    size_t names_len = m->n_events || m->names_len <= 255 ? m->names_len : 255u;
    size_t ref_bytes = m->ref ? 8u : 0u;
    size_t body = REC_HDR_BYTES + ev_bytes + m->topic_len + m->payload_len + names_len + ref_bytes;
    size_t len = align8(body);
    uint16_t tag = m->n_events ? (uint16_t)names_len : (uint16_t)(m->reason | names_len << 8);
    uint16_t flags = (uint16_t)(m->flags | (m->ref ? JOURNAL_F_REF : 0u));
    uint16_t u16[4] = {(uint16_t)m->topic_len, m->n_events, tag, flags};
    uint32_t payload_len = (uint32_t)m->payload_len, crc, len32 = (uint32_t)len;

    if (len > j->seg_bytes || m->topic_len > UINT16_MAX || m->payload_len > UINT32_MAX ||
        names_len > UINT16_MAX || (!m->n_events && m->reason > 255) ||
        (m->flags & JOURNAL_F_REF) != 0 || (m->ref && !m->n_events))
        return EL_INVAL;
    if (j->w_off + len > j->seg_bytes) {
        el_status st = rotate(j);
        if (st != EL_OK)
            return st;
    }
    struct seg *s = slot_of(j, j->w_segno);
    char *p = s->base + j->w_off;
    *seq = j->next_seq;
    memcpy(p + 8, seq, 8);
    memcpy(p + 16, &m->recv_ms, 8);
    memcpy(p + 24, &m->mono_ms, 8);
    memcpy(p + 32, &m->orig_len, 4);
    memcpy(p + 36, &payload_len, 4);
    memcpy(p + 40, u16, 8);
    for (uint16_t i = 0; i < m->n_events; i++) {
        char *e = p + REC_HDR_BYTES + (size_t)i * REC_EVENT_BYTES;
        memcpy(e, &m->events[i].ts_ms, 8);
        memcpy(e + 8, &m->events[i].value, 8);
        memcpy(e + 16, &m->events[i].field_off, 4);
        memcpy(e + 20, &m->events[i].field_len, 4);
    }
    memcpy(p + REC_HDR_BYTES + ev_bytes, m->topic, m->topic_len);
    memcpy(p + REC_HDR_BYTES + ev_bytes + m->topic_len, m->payload, m->payload_len);
    if (names_len)
        memcpy(p + REC_HDR_BYTES + ev_bytes + m->topic_len + m->payload_len, m->names, names_len);
    if (ref_bytes)
        memcpy(p + body - ref_bytes, &m->ref, 8);
    memset(p + body, 0, len - body);
    crc = plat_crc32(0, p + 8, len - 8u);
    memcpy(p + 4, &crc, 4);
    /* The length goes last: it is what makes the record exist. */
    __atomic_store_n((uint32_t *)(void *)p, len32, __ATOMIC_RELEASE);
    if ((j->strict || atomic_load(&j->sync_each)) && sync_record(j, p, len) != EL_OK) {
        __atomic_store_n((uint32_t *)(void *)p, 0u, __ATOMIC_RELEASE);
        return EL_AGAIN; /* shutdown while the flash failed: not acknowledged */
    }
    j->w_off += len;
    j->next_seq += m->n_events ? m->n_events : 1u;
    atomic_store(&s->written, j->w_off);
    if (atomic_exchange(&j->consumer_sleeping, 0) && j->wake_fn)
        j->wake_fn(j->wake_ctx);
    return EL_OK;
}

void journal_shutdown(struct journal *j)
{
    pthread_mutex_lock(&j->mu);
    atomic_store(&j->shutdown, 1);
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

bool journal_next(struct journal *j, struct journal_rec *rec)
{
    for (;;) {
        struct seg *s = slot_of(j, j->r_segno);
        int sealed = atomic_load(&s->sealed);
        size_t written = atomic_load(&s->written);
        if (j->r_off < written) {
            size_t len = rec_parse(s->base, j->seg_bytes, j->r_off, false, rec);
            if (len == 0) {
                /* Cannot happen unless memory is corrupted: we wrote it. */
                log_error("journal: unreadable record in segment %" PRIu64 " at %zu", j->r_segno,
                          j->r_off);
                abort();
            }
            j->r_off += len;
            return true;
        }
        if (!sealed)
            return false;
        j->r_segno++;
        j->r_off = 0;
    }
}

void journal_commit(struct journal *j)
{
    while (j->c_segno < j->r_segno)
        seg_retire(j, j->c_segno++);
    j->c_off = j->r_off;
}

void journal_rewind(struct journal *j)
{
    j->r_segno = j->c_segno;
    j->r_off = j->c_off;
}

uint64_t journal_uncommitted_bytes(struct journal *j)
{
    uint64_t total = 0;
    pthread_mutex_lock(&j->mu);
    for (uint64_t n = j->c_segno;; n++) {
        struct seg *s = slot_of(j, n);
        if (s->segno != n)
            break;
        total += atomic_load(&s->written);
    }
    pthread_mutex_unlock(&j->mu);
    return total - j->c_off;
}

void journal_set_wakeup(struct journal *j, void (*fn)(void *ctx), void *ctx)
{
    j->wake_fn = fn;
    j->wake_ctx = ctx;
}

bool journal_has_unread(struct journal *j)
{
    struct seg *s = slot_of(j, j->r_segno);
    return j->r_off < atomic_load(&s->written) || atomic_load(&s->sealed);
}

bool journal_consumer_sleep(struct journal *j)
{
    atomic_store(&j->consumer_sleeping, 1);
    if (journal_has_unread(j)) {
        atomic_store(&j->consumer_sleeping, 0);
        return false;
    }
    return true;
}

void journal_consumer_awake(struct journal *j)
{
    atomic_store(&j->consumer_sleeping, 0);
}

size_t journal_event_name(const char *topic, size_t topic_len, const char *payload,
                          size_t payload_len, const char *names, size_t names_len,
                          const struct journal_event *ev, char *buf, size_t cap)
{
    bool whole = (ev->field_len & JOURNAL_NAME_WHOLE) != 0;
    size_t len = ev->field_len & ~JOURNAL_NAME_WHOLE, off = ev->field_off, n = 0;
    size_t need = whole ? len : topic_len + (len ? 1 + len : 0);
    if (off + len > payload_len + names_len || need == 0 || need >= cap)
        return 0;
    if (!whole) {
        memcpy(buf, topic, topic_len);
        n = topic_len;
        if (len > 0)
            buf[n++] = '/';
    }
    /* the payload's part, then the names' (the bytes after the payload) */
    size_t in_payload = off < payload_len ? (payload_len - off < len ? payload_len - off : len) : 0;
    if (in_payload > 0)
        memcpy(buf + n, payload + off, in_payload);
    if (len > in_payload)
        memcpy(buf + n + in_payload, names + (off + in_payload - payload_len), len - in_payload);
    return n + len;
}

bool journal_new_names(const char *topic, size_t topic_len, const char *payload, size_t payload_len,
                       const char *names, size_t names_len, const struct journal_event *evs,
                       uint16_t n, journal_known_fn known, void *ctx, uint32_t *fresh)
{
    char name[JOURNAL_NAME_MAX + 1], other[JOURNAL_NAME_MAX + 1];
    *fresh = 0;
    for (uint16_t i = 0; i < n; i++) {
        struct journal_event ev;
        memcpy(&ev, &evs[i], sizeof ev);
        size_t len = journal_event_name(topic, topic_len, payload, payload_len, names, names_len,
                                        &ev, name, sizeof name);
        if (len == 0)
            return false;
        if (known(ctx, name, len))
            continue;
        bool seen = false; /* an earlier event of the same new series */
        for (uint16_t j = 0; j < i && !seen; j++) {
            memcpy(&ev, &evs[j], sizeof ev);
            size_t m = journal_event_name(topic, topic_len, payload, payload_len, names, names_len,
                                          &ev, other, sizeof other);
            seen = m == len && memcmp(name, other, len) == 0;
        }
        if (!seen)
            (*fresh)++;
    }
    return true;
}
