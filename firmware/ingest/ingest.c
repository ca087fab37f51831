/*
 * ingest — Paho MQTTAsync adapter (design in ingest.h).
 *
 * Ownership: struct ingest owns the Paho client. Messages handed to
 * messageArrived are freed here before returning 1.
 */
#include "ingest.h"

#include <MQTTAsync.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mlog.h"
#include "mqtt_socket.h"
#include "plat_clock.h"
#include "plat_hash.h"
#include "plat_file.h"
#include "plat_json.h"
#include "plat_log.h"

struct ingest {
    struct ingest_opts o; /* borrowed strings: they outlive the ingest */
    struct journal *journal;
    MQTTAsync client;
    struct decode_result res; /* Paho callback thread only: the message being decoded */
    /* The journal's producer side (journal_append and the ids table around
     * it): the Paho thread and ingest_replay (ingest.h, "Replay"). */
    pthread_mutex_t produce_mu;

    /* The decoding rules (ingest.h, "Reload"). rules_next: the newest
     * table, published by the core (release); rules: the one the Paho
     * thread picked up at its last message boundary (acquire), whose gen it
     * acknowledges in rules_seen (release). replay_rules: the table
     * ingest_replay reads now, NULL when none (rules_hold). */
    _Atomic(struct ingest_rules *) rules_next;
    _Atomic uint64_t rules_seen;
    _Atomic(const struct ingest_rules *) replay_rules;
    const struct ingest_rules *rules; /* Paho callback thread only */
    /* core thread only: the last generation published, and older tables
     * the Paho thread may still read (freed once it acknowledged rules_gen) */
    uint64_t rules_gen;
    struct ingest_rules *retired[INGEST_RULES_RETIRED];
    int n_retired;
    /* Sparkplug B state: per edge node, so it survives reloads; made on the
     * core thread by the first table that needs it, used by the Paho thread
     * through the tables. NULL unless a section uses it. */
    struct sparkplug_state *sparkplug;
    struct ingest_counters counters;
    char password[INGEST_STR_MAX];

    /* Paho callback thread only (set up before start): duplicate detection
     * (ingest.h, "Duplicates"). */
    struct ids_hdr *ids_hdr;
    struct ids_slot *ids_slot; /* IDS_SLOTS, indexed by packet id */
    void *ids_map;
    bool ids_persistent; /* false: anonymous memory (the file was unusable) */
    bool ids_started;    /* ids_start ran */
    uint64_t *fb;        /* fallback content set, FB_SLOTS; NULL when unused */
    uint32_t fb_count;
    struct plat_log_limit bad_input_limit;
    struct plat_log_limit dup_limit;
    struct plat_log_limit dropped_limit;

    size_t prefix_len; /* o.conn.topic_prefix: the daemon's own topics */

    /* initial-connection retries (outbox thread after ingest_start) */
    _Atomic int connect_failed;
    _Atomic int ever_connected;
    struct plat_log_limit connect_limit;
    struct mqtt_peers peers; /* the broker's addresses, for TCP_NODELAY */
    int64_t next_connect_ms;
    int backoff_ms;
    _Atomic int stopped;
    _Atomic int disconnected; /* the clean disconnect at stop completed */
    bool stopping;

    /* the el-mqtt-out thread (ingest.h): connection retries and the stop */
    pthread_mutex_t out_mu;
    pthread_cond_t out_cv;
    pthread_t out_thread;
    bool out_started, out_quit, out_stop_req;
};

#define SYS_DROPPED_TOPIC "$SYS/broker/publish/messages/dropped"

static const char *const reason_names[INGEST_REASON_COUNT] = {
    [INGEST_REASON_NAME_TOO_LONG] = "name_too_long",
    [INGEST_REASON_SERIES_LIMIT] = "series_limit",
};

const char *ingest_reason_str(unsigned reason)
{
    if (reason < INGEST_REASON_COUNT && reason_names[reason])
        return reason_names[reason];
    return decode_reason_str((enum decode_reason)reason);
}

const struct ingest_counters *ingest_counters(const struct ingest *ing)
{
    return &ing->counters;
}

/* ---- duplicate detection (ingest.h, "Duplicates") ---- */

/* <storage.dir>/ingest-ids: a header page, then IDS_SLOTS slots. Host byte
 * order; only ever read by this build on this machine. */
#define IDS_FILE "ingest-ids"
#define IDS_MAGIC 0x3173646965676c65ull /* "elgeids1" */
#define IDS_SLOTS 65536u
#define IDS_HDR_BYTES 4096u
#define IDS_BYTES (IDS_HDR_BYTES + IDS_SLOTS * sizeof(struct ids_slot))
/* The fallback content set: open addressing at load <= 1/2. */
#define FB_SLOTS (2u * INGEST_DEDUP_WINDOW)

struct ids_slot {
    uint64_t fp;  /* fingerprint of topic and payload; 0 = none */
    uint64_t ord; /* the delivery's ordinal */
};

struct ids_hdr {
    uint64_t magic;
    uint64_t session;        /* hash of mqtt.uri and mqtt.client_id */
    char boot_id[64];        /* the boot that last wrote the table */
    uint64_t next_seq;       /* journal_next_seq() after the last slot written */
    uint64_t next_ord;       /* ordinal of the next new delivery */
    uint64_t fallback_until; /* the content rule applies while next_ord < this */
    uint32_t clean;          /* 1: msync'ed at a clean stop */
    uint32_t pending;        /* 1: the slot below is being journaled */
    uint64_t pending_next;   /* journal_next_seq() once its record is in */
    uint64_t pending_fp;
    uint64_t pending_ord;
    uint32_t pending_id;
    uint32_t pending_noslot; /* 1: the pending record has no packet id (a replay) */
};
_Static_assert(sizeof(struct ids_hdr) <= IDS_HDR_BYTES, "ids header fits its page");

/* What a crash leaves is the program order of these stores (a killed thread
 * stops at an instruction boundary): keep the compiler from reordering. */
#define IDS_ORDER() atomic_signal_fence(memory_order_seq_cst)

static uint64_t delivery_fp(const char *topic, size_t topic_len, const void *payload, size_t len)
{
    uint64_t h = plat_hash64(PLAT_HASH64_INIT, topic, topic_len);
    h = plat_hash64(h, "\0", 1);
    h = plat_hash64(h, payload, len);
    return h ? h : 1;
}

/* True if a DUP delivery with this id and fingerprint is a message we
 * already took (journaled, or queued as a request). */
static bool ids_seen(const struct ingest *ing, int msgid, uint64_t fp)
{
    const struct ids_slot *s = &ing->ids_slot[(unsigned)msgid & (IDS_SLOTS - 1)];
    return s->fp == fp && ing->ids_hdr->next_ord - s->ord <= INGEST_IDS_MAX_AGE;
}

/* A new delivery that is not journaled (a request, our own status). */
static void ids_note(struct ingest *ing, const MQTTAsync_message *msg, const char *topic,
                     size_t topic_len)
{
    if (msg->qos <= 0 || msg->msgid <= 0)
        return;
    uint64_t fp = delivery_fp(topic, topic_len, msg->payload,
                              msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0);
    if (msg->dup && ids_seen(ing, msg->msgid, fp))
        return; /* taken before: not a new delivery */
    struct ids_slot *s = &ing->ids_slot[(unsigned)msg->msgid & (IDS_SLOTS - 1)];
    s->fp = fp;
    s->ord = ing->ids_hdr->next_ord;
    IDS_ORDER();
    ing->ids_hdr->next_ord++;
}

/* Before journal_append: announces the slot the record will get. */
static void ids_announce(struct ingest *ing, int msgid, uint64_t fp, uint32_t nseq)
{
    struct ids_hdr *h = ing->ids_hdr;
    h->pending_id = (unsigned)msgid & (IDS_SLOTS - 1);
    h->pending_noslot = 0;
    h->pending_fp = fp;
    h->pending_ord = h->next_ord;
    h->pending_next = journal_next_seq(ing->journal) + nseq;
    IDS_ORDER();
    h->pending = 1;
    IDS_ORDER();
}

/* Before journal_append of a replayed dead letter: no packet id, but the
 * table's journal position must follow the record (ids_start compares it). */
static void ids_announce_noslot(struct ingest *ing, uint32_t nseq)
{
    struct ids_hdr *h = ing->ids_hdr;
    h->pending_noslot = 1;
    h->pending_next = journal_next_seq(ing->journal) + nseq;
    IDS_ORDER();
    h->pending = 1;
    IDS_ORDER();
}

/* After journal_append (or at start-up when the journal holds the record). */
static void ids_apply_pending(struct ingest *ing)
{
    struct ids_hdr *h = ing->ids_hdr;
    if (!h->pending_noslot) {
        struct ids_slot *s = &ing->ids_slot[h->pending_id & (IDS_SLOTS - 1)];
        s->fp = h->pending_fp;
        s->ord = h->pending_ord;
        h->next_ord = h->pending_ord + 1;
    }
    h->next_seq = h->pending_next;
    IDS_ORDER();
    h->pending = 0;
}

static el_status ids_open(struct ingest *ing)
{
    char path[PATH_MAX];
    void *map = MAP_FAILED;
    int err = 0;
    snprintf(path, sizeof path, "%s/%s", ing->o.dir, IDS_FILE);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        err = errno;
    if (fd >= 0) {
        struct stat sb;
        if (fstat(fd, &sb) != 0)
            err = errno;
        else if (sb.st_size != (off_t)IDS_BYTES && ftruncate(fd, 0) != 0)
            err = errno; /* not ours (or from another version): start over */
        if (!err)
            err = posix_fallocate(fd, 0, (off_t)IDS_BYTES); /* no SIGBUS on a full disk */
        if (!err) {
            map = mmap(NULL, IDS_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (map == MAP_FAILED)
                err = errno;
        }
        close(fd);
    }
    ing->ids_persistent = map != MAP_FAILED;
    if (!ing->ids_persistent) {
        log_warn("cannot use %s (%s): duplicate detection will not survive a crash", path,
                 strerror(err));
        map = mmap(NULL, IDS_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (map == MAP_FAILED)
            return EL_NOMEM;
    }
    ing->ids_map = map;
    ing->ids_hdr = map;
    ing->ids_slot = (struct ids_slot *)(void *)((char *)map + IDS_HDR_BYTES);
    return EL_OK;
}

static uint64_t session_hash(const struct ingest_opts *o)
{
    uint64_t h = plat_hash64(PLAT_HASH64_INIT, o->conn.uri, strlen(o->conn.uri));
    h = plat_hash64(h, "\0", 1);
    return plat_hash64(h, o->conn.client_id, strlen(o->conn.client_id));
}

/* Core thread, after the journal replay (journal_next_seq is final) and
 * before ingest_start: decides whether the table can be trusted. */
static void ids_start(struct ingest *ing)
{
    struct ids_hdr *h = ing->ids_hdr;
    if (ing->ids_started)
        return;
    ing->ids_started = true;
    uint64_t next_seq = journal_next_seq(ing->journal);
    uint64_t session = session_hash(&ing->o);
    char boot[sizeof h->boot_id];
    const char *why = NULL;
    memset(boot, 0, sizeof boot); /* all of it goes to the file */
    plat_clock_boot_id(boot, sizeof boot);
    if (!ing->ids_persistent)
        why = "is kept in memory only";
    else if (h->magic != IDS_MAGIC || h->session != session)
        why = "is new (or was for another broker session)";
    else if (!h->clean && strncmp(h->boot_id, boot, sizeof boot) != 0)
        why = "was written before a reboot or power cut";
    else {
        if (!h->clean && h->pending && next_seq >= h->pending_next)
            ids_apply_pending(ing); /* journaled, then killed before the slot */
        if (h->next_seq != next_seq)
            why = "does not match the journal (data lost or restored)";
    }
    if (why) {
        uint64_t ord = h->magic == IDS_MAGIC ? h->next_ord : 0;
        memset(h, 0, sizeof *h);
        memset(ing->ids_slot, 0, IDS_SLOTS * sizeof(struct ids_slot));
        h->magic = IDS_MAGIC;
        h->session = session;
        h->next_ord = ord;
        /* Nothing journaled yet (an empty log): nothing to recognise. */
        h->fallback_until = next_seq > 1 ? ord + INGEST_IDS_MAX_AGE + 1 : ord;
        if (next_seq > 1)
            log_info("duplicate detection: the packet-id table %s; for the next %u deliveries a "
                     "redelivery is also recognised by its content (the newest %d events)",
                     why, INGEST_IDS_MAX_AGE + 1, INGEST_DEDUP_WINDOW);
    }
    h->pending = 0;
    h->clean = 0;
    h->next_seq = next_seq;
    memcpy(h->boot_id, boot, sizeof boot);
    if (h->next_ord >= h->fallback_until) {
        free(ing->fb); /* not needed: the table covers everything that can come back */
        ing->fb = NULL;
    }
}

/* ingest_free: after a completed clean disconnect the table is made durable
 * and marked clean, so it is trusted after a reboot too. */
static void ids_close(struct ingest *ing)
{
    if (!ing->ids_map)
        return;
    if (ing->ids_persistent && atomic_load(&ing->disconnected) && !ing->ids_hdr->pending &&
        ing->ids_hdr->magic == IDS_MAGIC) {
        ing->ids_hdr->clean = 1;
        if (msync(ing->ids_map, IDS_BYTES, MS_SYNC) != 0)
            log_warn("cannot sync %s/%s: %s", ing->o.dir, IDS_FILE, strerror(errno));
    }
    munmap(ing->ids_map, IDS_BYTES);
    ing->ids_map = NULL;
}

/* The fallback rule's key: first series name and payload. */
static uint64_t dedup_key(const char *series, size_t series_len, const void *payload,
                          size_t payload_len)
{
    uint64_t h = plat_hash64(PLAT_HASH64_INIT, series, series_len);
    h = plat_hash64(h, "\0", 1);
    h = plat_hash64(h, payload, payload_len);
    return h ? h : 1;
}

static bool fb_active(const struct ingest *ing)
{
    return ing->fb && ing->ids_hdr->next_ord < ing->ids_hdr->fallback_until;
}

static bool fb_has(const struct ingest *ing, uint64_t key)
{
    for (uint32_t i = (uint32_t)key & (FB_SLOTS - 1);; i = (i + 1) & (FB_SLOTS - 1)) {
        if (ing->fb[i] == key)
            return true;
        if (ing->fb[i] == 0)
            return false;
    }
}

bool ingest_wants_seed(struct ingest *ing)
{
    ids_start(ing);
    return ing->fb != NULL;
}

void ingest_seed_recent(struct ingest *ing, const char *series, size_t series_len,
                        const void *payload, size_t payload_len)
{
    uint64_t key = dedup_key(series, series_len, payload, payload_len);
    if (!ing->fb || ing->fb_count >= FB_SLOTS / 2)
        return; /* the core seeds at most INGEST_DEDUP_WINDOW */
    for (uint32_t i = (uint32_t)key & (FB_SLOTS - 1);; i = (i + 1) & (FB_SLOTS - 1)) {
        if (ing->fb[i] == key)
            return;
        if (ing->fb[i] == 0) {
            ing->fb[i] = key;
            ing->fb_count++;
            return;
        }
    }
}

/* ---- the decoding rules (ingest.h, "Reload") ---- */

#define RULE_PATH_MAX 512 /* keep_fields, drop_fields (with their NUL) */

/* The [ingest] decoding keys and the [decode] sections as the decoders read
 * them, with copies of every string (the configuration they came from
 * changes at a reload). Built on the core thread; read-only once published. */
struct ingest_rules {
    uint64_t gen;
    struct decode_words words;
    struct decode_opts dopts; /* topics no section matches */
    int n;
    struct ingest_decoder d[INGEST_MAX_DECODERS];
    struct decode_opts opts[INGEST_MAX_DECODERS]; /* d[i] over dopts */
    struct sparkplug_state *sparkplug;            /* the ingest's; NULL unless a section uses it */
    char value_field[INGEST_STR_MAX], ts_field[INGEST_STR_MAX];
    struct rule_strings {
        char filter[INGEST_STR_MAX], value[INGEST_STR_MAX], ts[INGEST_STR_MAX];
        char keep[RULE_PATH_MAX], drop[RULE_PATH_MAX];
    } s[INGEST_MAX_DECODERS];
};

/* Copies src (NULL: "") into dst[cap]; clears *ok if it does not fit. */
static void copy_str(char *dst, size_t cap, const char *src, bool *ok)
{
    size_t n = src ? strlen(src) : 0;
    if (n >= cap) {
        *ok = false;
        return;
    }
    memcpy(dst, src ? src : "", n + 1);
}

/* Section i of o into r (r->dopts already set). */
static void rules_add(struct ingest_rules *r, int i, const struct ingest_decoder *src, bool *ok)
{
    struct rule_strings *s = &r->s[i];
    struct ingest_decoder *d = &r->d[i];
    *d = *src;
    copy_str(s->filter, sizeof s->filter, src->filter, ok);
    copy_str(s->value, sizeof s->value, src->value_field, ok);
    copy_str(s->ts, sizeof s->ts, src->ts_field, ok);
    copy_str(s->keep, sizeof s->keep, src->keep_fields, ok);
    copy_str(s->drop, sizeof s->drop, src->drop_fields, ok);
    d->filter = s->filter;
    d->value_field = s->value;
    d->ts_field = s->ts;
    d->keep_fields = s->keep;
    d->drop_fields = s->drop;
    struct decode_opts *o = &r->opts[i];
    *o = r->dopts; /* limits and the state words */
    o->format = d->format;
    o->value_field = s->value[0] ? s->value : r->value_field;
    o->ts_field = s->ts[0] ? s->ts : r->ts_field;
    o->time_unit = d->time_unit;
    o->fields_all = d->fields_all < 0 ? r->dopts.fields_all : d->fields_all != 0;
    o->flatten = o->strict_strings = d->flatten;
    o->keep_fields = s->keep;
    o->drop_fields = s->drop;
}

/* Core thread: the Sparkplug B state, made the first time a table needs it. */
static el_status rules_sparkplug(struct ingest *ing, struct ingest_rules *r)
{
    for (int i = 0; i < r->n; i++) {
        if (r->d[i].format != DECODE_FMT_SPARKPLUG_B)
            continue;
        if (!ing->sparkplug && sparkplug_new(&ing->sparkplug) != EL_OK)
            return EL_NOMEM;
        atomic_store(&ing->counters.sparkplug_on, 1);
        r->sparkplug = ing->sparkplug;
        break;
    }
    return EL_OK;
}

static el_status rules_build(struct ingest *ing, const struct ingest_opts *o,
                             struct ingest_rules **out)
{
    char werr[160];
    bool ok = true;
    struct ingest_rules *r = calloc(1, sizeof *r);
    *out = NULL;
    if (!r)
        return EL_NOMEM;
    decode_opts_default(&r->dopts);
    copy_str(r->value_field, sizeof r->value_field, o->value_field, &ok);
    copy_str(r->ts_field, sizeof r->ts_field, o->ts_field, &ok);
    r->dopts.value_field = r->value_field;
    r->dopts.ts_field = r->ts_field;
    r->dopts.fields_all = o->fields_all;
    r->dopts.max_payload = (size_t)ing->o.max_payload;
    r->dopts.max_future_ms = o->max_future_s * 1000;
    if (o->state_words && !decode_words_parse(o->state_words, &r->words, werr, sizeof werr)) {
        log_error("ingest.state_words: %s", werr);
        free(r);
        return EL_INVAL;
    }
    r->dopts.words = &r->words;
    r->n = o->n_decoders < INGEST_MAX_DECODERS ? o->n_decoders : INGEST_MAX_DECODERS;
    for (int i = 0; i < r->n; i++)
        rules_add(r, i, &o->decoders[i], &ok);
    el_status st = ok ? rules_sparkplug(ing, r) : EL_INVAL;
    if (!ok)
        log_error("ingest: a decoding option is too long");
    if (st != EL_OK) {
        free(r);
        return st;
    }
    *out = r;
    return EL_OK;
}

bool ingest_rules_collect(struct ingest *ing)
{
    /* a replay reading a table older than the newest keeps them all (rules_hold) */
    const struct ingest_rules *replaying = atomic_load(&ing->replay_rules);
    if (ing->n_retired > 0 &&
        atomic_load_explicit(&ing->rules_seen, memory_order_acquire) == ing->rules_gen &&
        (replaying == NULL || replaying == atomic_load(&ing->rules_next))) {
        for (int i = 0; i < ing->n_retired; i++)
            free(ing->retired[i]);
        ing->n_retired = 0;
    }
    return ing->n_retired == 0;
}

el_status ingest_set_rules(struct ingest *ing, const struct ingest_opts *o)
{
    struct ingest_rules *r;
    if (!ingest_rules_collect(ing) && ing->n_retired == INGEST_RULES_RETIRED)
        return EL_AGAIN;
    el_status st = rules_build(ing, o, &r);
    if (st != EL_OK)
        return st;
    r->gen = ++ing->rules_gen;
    struct ingest_rules *old = atomic_exchange(&ing->rules_next, r); /* seq_cst: rules_hold */
    if (old)
        ing->retired[ing->n_retired++] = old;
    return EL_OK;
}

/* ---- the callback that makes a message safe ---- */

/* Key of the message's first series (its name and the payload). */
static uint64_t message_key(const char *topic, size_t topic_len, const char *payload,
                            size_t payload_len, const struct decode_result *res)
{
    char name[MLOG_MAX_SERIES_NAME + 1];
    size_t n = decode_event_name(res, &res->ev[0], topic, topic_len, payload, name, sizeof name);
    return dedup_key(name, n, payload, payload_len);
}

static unsigned check_names(const struct decode_result *res, const char *topic, size_t topic_len,
                            const char *payload)
{
    char name[MLOG_MAX_SERIES_NAME + 1];
    for (uint32_t i = 0; i < res->n_events; i++) {
        if (decode_event_name(res, &res->ev[i], topic, topic_len, payload, name,
                              MLOG_MAX_SERIES_NAME) == 0)
            return INGEST_REASON_NAME_TOO_LONG;
    }
    return DECODE_OK;
}

/* Paho thread: the broker's own count of dropped messages ($SYS). */
static void note_broker_dropped(struct ingest *ing, const MQTTAsync_message *msg)
{
    char buf[32];
    size_t n = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;
    if (n == 0 || n >= sizeof buf)
        return;
    memcpy(buf, msg->payload, n);
    buf[n] = '\0';
    char *end;
    long long v = strtoll(buf, &end, 10);
    if (*end != '\0' || v < 0)
        return;
    int64_t before = atomic_exchange(&ing->counters.broker_dropped, (int64_t)v);
    /* Warn on the first report too: drops while we were down count. */
    if (v > 0 && v > before)
        plat_log_limited(&ing->dropped_limit, 60000, PLAT_LOG_WARN,
                         "the broker dropped %lld messages so far (it counts all clients): size "
                         "its max_queued_messages / max_queued_bytes",
                         v);
}

static void dropped_duplicate(struct ingest *ing, const char *topic, size_t topic_len,
                              const char *rule)
{
    atomic_fetch_add_explicit(&ing->counters.duplicates, 1, memory_order_relaxed);
    plat_log_limited(&ing->dup_limit, 10000, PLAT_LOG_INFO,
                     "dropped a redelivered duplicate on %.*s (already journaled: %s)",
                     (int)(topic_len > 200 ? 200 : topic_len), topic, rule);
}

/* The journal record of a message: its events, or a dead letter. Returns
 * false when it is a redelivery the content rule recognises (Duplicates). */
/* Paho thread: the Sparkplug B state's counters, for status (atomics). */
static void note_sparkplug(struct ingest *ing, struct sparkplug_state *sp)
{
    struct sparkplug_counters sc;
    sparkplug_counters(sp, &sc);
    atomic_store(&ing->counters.sp_births, sc.births);
    atomic_store(&ing->counters.sp_deaths, sc.deaths);
    atomic_store(&ing->counters.sp_seq_gaps, sc.seq_gaps);
    atomic_store(&ing->counters.sp_unknown_alias, sc.unknown_alias);
    atomic_store(&ing->counters.sp_aliases_full, sc.aliases_full);
}

/* The first [decode] section of rules whose filter matches the topic (*o
 * its options), NULL for the [ingest] keys' (format auto, *o = dopts). */
static const struct ingest_decoder *decoder_of(const struct ingest_rules *rules, const char *topic,
                                               size_t topic_len, const struct decode_opts **o)
{
    *o = &rules->dopts;
    for (int i = 0; i < rules->n; i++) {
        if (mqtt_topic_matches(rules->d[i].filter, topic, topic_len)) {
            *o = &rules->opts[i];
            return &rules->d[i];
        }
    }
    return NULL;
}

/* Decodes jm's payload with the decoder its topic routes to. Sparkplug B
 * (state per session) only on the Paho thread: ingest_replay skips it. */
static unsigned decode_routed(struct ingest *ing, const struct ingest_rules *rules,
                              const struct journal_msg *jm, bool synced, struct decode_result *res)
{
    const struct decode_opts *o;
    const struct ingest_decoder *d = decoder_of(rules, jm->topic, jm->topic_len, &o);
    if (d != NULL && d->format == DECODE_FMT_INFLUX)
        return decode_influx(o, d->precision, jm->payload, jm->payload_len, jm->recv_ms, synced,
                             res);
    if (d != NULL && d->format == DECODE_FMT_CBOR)
        return decode_cbor(o, jm->payload, jm->payload_len, jm->recv_ms, synced, res);
    if (d != NULL && d->format == DECODE_FMT_SPARKPLUG_B) {
        unsigned r = decode_sparkplug(rules->sparkplug, o, jm->topic, jm->topic_len, jm->payload,
                                      jm->payload_len, jm->recv_ms, synced, res);
        note_sparkplug(ing, rules->sparkplug);
        return r;
    }
    return decode_payload(o, jm->payload, jm->payload_len, jm->recv_ms, synced, res);
}

/* decode_routed, then every series name checked against the master log's
 * limit (a name too long is the whole message's dead letter). */
static unsigned decode_checked(struct ingest *ing, const struct ingest_rules *rules,
                               const struct journal_msg *jm, bool synced, struct decode_result *res)
{
    unsigned reason = decode_routed(ing, rules, jm, synced, res);
    if (reason == DECODE_OK &&
        (reason = check_names(res, jm->topic, jm->topic_len, jm->payload)) != DECODE_OK)
        snprintf(res->detail, sizeof res->detail, "a series name over %d bytes",
                 MLOG_MAX_SERIES_NAME);
    return reason;
}

/* The journal's form of a decoded event: its name's bytes are indexed in
 * the record's payload and then names (journal.h, JOURNAL_NAME_WHOLE). */
static struct journal_event journal_event_of(const struct decode_event *ev, size_t payload_len)
{
    struct journal_event je = {.ts_ms = ev->ts_ms, .value = ev->value};
    if (ev->name_len > 0) {
        je.field_off = (uint32_t)payload_len + ev->name_off;
        je.field_len = ev->name_len | (ev->name_topic ? 0u : JOURNAL_NAME_WHOLE);
    } else {
        je.field_off = ev->field_off;
        je.field_len = ev->field_len;
    }
    return je;
}

/* Paho thread, at a message boundary: the newest rules the core
 * published, acknowledged so that the core may free older ones. One
 * message is decoded with one table from start to end. */
static const struct ingest_rules *rules_pickup(struct ingest *ing)
{
    struct ingest_rules *r = atomic_load_explicit(&ing->rules_next, memory_order_acquire);
    if (r != ing->rules) {
        ing->rules = r;
        atomic_store_explicit(&ing->rules_seen, r->gen, memory_order_release);
    }
    return r;
}

/* The replaying thread: the newest rules, held against ingest_rules_collect
 * until rules_release. The table is announced, then the pointer read again
 * and the table used only if it is still the newest: seq_cst on both sides
 * (the core swaps rules_next, then reads replay_rules), so either the core
 * sees the announcement and keeps the table, or this thread sees the newer
 * one and takes that instead (never touching the old one, maybe freed). */
static const struct ingest_rules *rules_hold(struct ingest *ing)
{
    for (;;) {
        const struct ingest_rules *r = atomic_load(&ing->rules_next);
        atomic_store(&ing->replay_rules, r);
        if (atomic_load(&ing->rules_next) == r)
            return r;
    }
}

static void rules_release(struct ingest *ing)
{
    atomic_store_explicit(&ing->replay_rules, NULL, memory_order_release);
}

static bool make_record(struct ingest *ing, const MQTTAsync_message *msg, struct journal_msg *jm,
                        struct journal_event *events, struct decode_result *res)
{
    bool synced = plat_clock_synced();
    jm->flags = (uint16_t)((synced ? MLOG_F_CLOCK_SYNCED : 0u) | (msg->dup ? MLOG_F_MQTT_DUP : 0u));
    unsigned reason = decode_checked(ing, rules_pickup(ing), jm, synced, res);
    if (reason != DECODE_OK) {
        jm->reason = (uint16_t)reason;
        jm->names = res->detail; /* kept with the dead letter (journal.h) */
        jm->names_len = strlen(res->detail);
        if (jm->payload_len > (size_t)ing->o.max_payload) {
            jm->payload_len = (size_t)ing->o.max_payload;
            jm->flags |= MLOG_F_TRUNCATED;
        }
        plat_log_limited(
            &ing->bad_input_limit, 10000, PLAT_LOG_WARN, "dead letter on %.*s: %s%s%s (%u bytes)",
            (int)(jm->topic_len > 200 ? 200 : jm->topic_len), jm->topic, ingest_reason_str(reason),
            res->detail[0] ? ": " : "", res->detail, jm->orig_len);
        return true;
    }
    if (msg->dup && fb_active(ing) &&
        fb_has(ing, message_key(jm->topic, jm->topic_len, jm->payload, jm->payload_len, res)))
        return false;
    for (uint32_t i = 0; i < res->n_events; i++)
        events[i] = journal_event_of(&res->ev[i], jm->payload_len);
    jm->n_events = (uint16_t)res->n_events;
    jm->events = events;
    jm->names = res->names;
    jm->names_len = res->names_len;
    if (res->has_ts)
        jm->flags |= MLOG_F_HAS_TS;
    return true;
}

/* Paho thread: a reading. Recognises a redelivery, else makes it safe (one
 * journal record) before returning, i.e. before Paho acknowledges it. */
static void take_reading(struct ingest *ing, const char *topic, size_t topic_len,
                         const MQTTAsync_message *msg)
{
    struct journal_event events[DECODE_MAX_FIELDS];
    struct journal_msg jm;
    uint64_t seq;
    size_t len = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;
    atomic_fetch_add_explicit(&ing->counters.received, 1, memory_order_relaxed);
    bool tracked = msg->qos > 0 && msg->msgid > 0;
    uint64_t fp = tracked ? delivery_fp(topic, topic_len, msg->payload, len) : 0;
    if (tracked && msg->dup && ids_seen(ing, msg->msgid, fp)) {
        dropped_duplicate(ing, topic, topic_len, "same packet id");
        return;
    }
    memset(&jm, 0, sizeof jm);
    jm.recv_ms = plat_clock_wall_ms();
    jm.mono_ms = plat_clock_mono_ms();
    jm.orig_len = (uint32_t)len;
    jm.topic = topic;
    jm.topic_len = topic_len > UINT16_MAX ? UINT16_MAX : topic_len;
    jm.payload = msg->payload ? msg->payload : "";
    jm.payload_len = len;
    if (!make_record(ing, msg, &jm, events, &ing->res)) {
        dropped_duplicate(ing, topic, topic_len, "same content as a stored event");
        return;
    }
    pthread_mutex_lock(&ing->produce_mu); /* uncontended but for a replay */
    if (tracked)
        ids_announce(ing, msg->msgid, fp, jm.n_events ? jm.n_events : 1u);
    el_status st = journal_append(ing->journal, &jm, &seq);
    if (st != EL_OK) {
        /* Shutdown while the journal was full or a strict msync kept
         * failing: the message is not safe, so it must not be acknowledged.
         * Paho has no way to refuse a message, so the only safe move is to
         * stop before returning: the broker redelivers it to the next run. */
        log_error("ingest: cannot journal a message (%s); exiting without acknowledging it",
                  el_status_str(st));
        _exit(75);
    }
    if (tracked)
        ids_apply_pending(ing);
    pthread_mutex_unlock(&ing->produce_mu);
}

/* ---- replaying a dead letter (ingest.h, "Replay") ---- */

struct ingest_replay_scratch {
    struct decode_result res;
    struct journal_event events[DECODE_MAX_FIELDS];
};

el_status ingest_replay_scratch_new(struct ingest_replay_scratch **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? EL_OK : EL_NOMEM;
}

void ingest_replay_scratch_free(struct ingest_replay_scratch *s)
{
    free(s);
}

static void replay_skip(struct ingest_replay_out *out, const char *why, const char *detail)
{
    out->outcome = INGEST_REPLAY_SKIPPED;
    out->reason = why;
    snprintf(out->detail, sizeof out->detail, "%s", detail);
}

/* Why the dead letter cannot be replayed whatever the configuration (NULL:
 * it can); the skip is filled in. */
static const char *replay_refused(const struct ingest_rules *rules,
                                  const struct ingest_replay_in *in, struct ingest_replay_out *out)
{
    const struct decode_opts *o;
    const struct ingest_decoder *d = decoder_of(rules, in->topic, in->topic_len, &o);
    if ((in->flags & MLOG_F_TRUNCATED) || in->payload_len < in->payload_bytes)
        replay_skip(out, "truncated", "only the first ingest.max_payload bytes were kept");
    else if (d != NULL && d->format == DECODE_FMT_SPARKPLUG_B)
        replay_skip(out, "sparkplug_b",
                    "Sparkplug B aliases and sequence belong to the session it arrived in");
    else if (!(in->flags & MLOG_F_PART) &&
             (strcmp(in->reason, "series_limit") == 0 ||
              (in->detail && strcmp(in->detail, INGEST_CORE_NAME_DETAIL) == 0)))
        replay_skip(out, "part_unknown",
                    "one event of a message, stored before replay existed: which one is unknown");
    else
        return NULL;
    return out->reason;
}

/* ingest_replay_in.known: whether the core would refuse an event again
 * (then *out is filled: failed). */
static bool replay_would_refuse(const struct ingest_replay_in *in, const struct journal_msg *jm,
                                struct ingest_replay_out *out)
{
    uint32_t fresh = 0;
    if (in->known == NULL)
        return false;
    if (!journal_new_names(jm->topic, jm->topic_len, jm->payload, jm->payload_len, jm->names,
                           jm->names_len, jm->events, jm->n_events, in->known, in->known_ctx,
                           &fresh)) {
        out->reason = ingest_reason_str(INGEST_REASON_NAME_TOO_LONG);
        snprintf(out->detail, sizeof out->detail, "%s", INGEST_CORE_NAME_DETAIL);
    } else if (fresh > in->series_room) {
        out->reason = ingest_reason_str(INGEST_REASON_SERIES_LIMIT);
        snprintf(out->detail, sizeof out->detail,
                 "%u new series, room for %u below speed.max_series", fresh, in->series_room);
    } else {
        out->new_series = fresh;
        return false;
    }
    out->outcome = INGEST_REPLAY_FAILED;
    return true;
}

/* Decodes the dead letter into jm (events in scratch); false with *out
 * filled when it does not decode (failed) or must not be replayed (skipped). */
static bool replay_decode(struct ingest *ing, const struct ingest_rules *rules,
                          struct ingest_replay_scratch *s, const struct ingest_replay_in *in,
                          struct journal_msg *jm, struct ingest_replay_out *out)
{
    struct decode_result *res = &s->res;
    bool synced = (in->flags & MLOG_F_CLOCK_SYNCED) != 0;
    if (replay_refused(rules, in, out))
        return false;
    unsigned reason = decode_checked(ing, rules, jm, synced, res);
    if (reason != DECODE_OK) {
        out->outcome = INGEST_REPLAY_FAILED;
        out->reason = ingest_reason_str(reason);
        snprintf(out->detail, sizeof out->detail, "%s", res->detail);
        return false;
    }
    if (!res->has_ts && !synced) {
        replay_skip(out, "no_true_time",
                    "no timestamp of its own, and the clock was not synchronised at receive");
        return false;
    }
    uint32_t first = 0, n = res->n_events;
    if (in->flags & MLOG_F_PART) { /* the one event the core refused */
        if (res->n_events != MLOG_PART_COUNT(in->flags)) {
            replay_skip(out, "part_mismatch",
                        "decodes into another number of events than the message it was part of");
            return false;
        }
        first = MLOG_PART_INDEX(in->flags);
        n = 1;
    }
    for (uint32_t i = 0; i < n; i++)
        s->events[i] = journal_event_of(&res->ev[first + i], jm->payload_len);
    jm->n_events = (uint16_t)n;
    jm->events = s->events;
    jm->names = res->names;
    jm->names_len = res->names_len;
    jm->flags = (uint16_t)((synced ? MLOG_F_CLOCK_SYNCED : 0u) | MLOG_F_REPLAYED |
                           (res->has_ts ? MLOG_F_HAS_TS : 0u));
    jm->ref = (uint64_t)in->dead_seq;
    return !replay_would_refuse(in, jm, out);
}

el_status ingest_replay(struct ingest *ing, struct ingest_replay_scratch *s,
                        const struct ingest_replay_in *in, struct ingest_replay_out *out)
{
    struct journal_msg jm;
    uint64_t seq = 0;
    memset(out, 0, sizeof *out);
    if (in->dead_seq <= 0) { /* no dead letter to mark: never journaled */
        replay_skip(out, "no_seq", "the dead letter has no sequence number");
        return EL_OK;
    }
    memset(&jm, 0, sizeof jm);
    jm.recv_ms = in->recv_ms; /* the original receive: late data, not new data */
    jm.mono_ms = in->mono_ms;
    jm.orig_len = (uint32_t)in->payload_bytes;
    jm.topic = in->topic;
    jm.topic_len = in->topic_len > UINT16_MAX ? UINT16_MAX : in->topic_len;
    jm.payload = in->payload ? in->payload : "";
    jm.payload_len = in->payload_len;
    const struct ingest_rules *rules = rules_hold(ing);
    bool decoded = replay_decode(ing, rules, s, in, &jm, out);
    rules_release(ing); /* jm's events and names are in s, not in the rules */
    if (!decoded)
        return EL_OK;
    pthread_mutex_lock(&ing->produce_mu);
    ids_announce_noslot(ing, jm.n_events);
    el_status st = journal_append(ing->journal, &jm, &seq);
    if (st == EL_OK)
        ids_apply_pending(ing);
    else
        ing->ids_hdr->pending = 0; /* not journaled: nothing to apply at start-up */
    pthread_mutex_unlock(&ing->produce_mu);
    if (st != EL_OK)
        return st;
    out->outcome = INGEST_REPLAYED;
    out->first_seq = seq;
    out->n_events = jm.n_events;
    return EL_OK;
}

static int on_message(void *ctx, char *topic, int topic_len_in, MQTTAsync_message *msg)
{
    struct ingest *ing = ctx;
    size_t topic_len = topic_len_in > 0 ? (size_t)topic_len_in : strlen(topic);
    if (strcmp(topic, SYS_DROPPED_TOPIC) == 0) {
        note_broker_dropped(ing, msg);
    } else if (strncmp(topic, ing->o.conn.topic_prefix, ing->prefix_len) == 0 &&
               topic[ing->prefix_len] == '/') {
        /* The daemon's own topics (status, queries, replies: the control
         * plane's, control.h) matched a broad filter such as "#": not a reading. */
        ids_note(ing, msg, topic, topic_len);
    } else {
        take_reading(ing, topic, topic_len, msg);
    }
    MQTTAsync_freeMessage(&msg);
    MQTTAsync_free(topic);
    return 1;
}

/* ---- connection management ---- */

static void on_subscribed(void *ctx, MQTTAsync_successData5 *resp)
{
    struct ingest *ing = ctx;
    int n = resp->alt.sub.reasonCodeCount;
    for (int i = 0; i < n && i < ing->o.n_filters; i++) {
        int code = (int)resp->alt.sub.reasonCodes[i];
        if (code >= 0x80)
            log_error("broker refused subscription %s (reason %d)", ing->o.filters[i], code);
    }
    log_info("subscribed to %d topic filter(s)", ing->o.n_filters);
}

static void on_subscribe_failed(void *ctx, MQTTAsync_failureData5 *resp)
{
    (void)ctx;
    log_error("subscribe failed: %s (code %d)", resp->message ? resp->message : "?", resp->code);
}

static void on_connected(void *ctx, char *cause)
{
    struct ingest *ing = ctx;
    char *filters[INGEST_MAX_FILTERS + 1];
    int qos[INGEST_MAX_FILTERS + 1];
    int n = ing->o.n_filters;
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    (void)cause;
    atomic_store(&ing->counters.connected, 1);
    atomic_store(&ing->ever_connected, 1);
    atomic_fetch_add(&ing->counters.connects, 1);
    bool nodelay = ing->o.conn.tcp_nodelay && mqtt_peers_nodelay(&ing->peers);
    atomic_store(&ing->counters.tcp_nodelay, nodelay ? 1 : 0);
    log_info("connected to %s as %s%s", ing->o.conn.uri, ing->o.conn.client_id,
             ing->o.conn.tcp_nodelay && !nodelay ? " (could not set TCP_NODELAY)" : "");
    /* Always subscribe: the session may have expired, or been clean. */
    for (int i = 0; i < n; i++) {
        filters[i] = (char *)(uintptr_t)ing->o.filters[i];
        qos[i] = ing->o.qos;
    }
    /* mosquitto counts the messages it dropped (full queues): docs/RELIABILITY.md.
     * Readable only where the broker's ACLs allow it; harmless otherwise. */
    filters[n] = (char *)(uintptr_t)SYS_DROPPED_TOPIC;
    qos[n++] = 0;
    ro.onSuccess5 = on_subscribed;
    ro.onFailure5 = on_subscribe_failed;
    ro.context = ing;
    int rc = MQTTAsync_subscribeMany(ing->client, n, filters, qos, &ro);
    if (rc != MQTTASYNC_SUCCESS)
        log_error("subscribe request failed: %s", MQTTAsync_strerror(rc));
}

static void on_connection_lost(void *ctx, char *cause)
{
    struct ingest *ing = ctx;
    atomic_store(&ing->counters.connected, 0);
    if (!ing->stopping)
        log_warn("connection to the broker lost (%s); reconnecting", cause ? cause : "no reason");
}

static void on_connect_failed(void *ctx, MQTTAsync_failureData5 *resp)
{
    struct ingest *ing = ctx;
    plat_log_limited(&ing->connect_limit, 30000, PLAT_LOG_WARN,
                     "cannot connect to %s: %s (code %d)", ing->o.conn.uri,
                     resp && resp->message ? resp->message : "no reason", resp ? resp->code : 0);
    /* After a first success Paho's automatic reconnect keeps trying on its
     * own; only a failed first connection is ours to retry. */
    if (!atomic_load(&ing->ever_connected))
        atomic_store(&ing->connect_failed, 1);
}

static el_status read_password(struct ingest *ing)
{
    if (!ing->o.conn.password_file[0])
        return EL_OK;
    return plat_file_read_secret(ing->o.conn.password_file, ing->password, sizeof ing->password);
}

/* ingest_new's part that cannot fail: options, topics, locks. */
static void init_fields(struct ingest *ing, const struct ingest_opts *o, struct journal *journal)
{
    ing->o = *o;
    /* The decoding options live in the rules tables, which copy them. */
    ing->o.decoders = NULL;
    ing->o.n_decoders = 0;
    ing->o.value_field = ing->o.ts_field = ing->o.state_words = NULL;
    ing->journal = journal;
    ing->prefix_len = strlen(o->conn.topic_prefix);
    atomic_store(&ing->counters.broker_dropped, -1);
    pthread_mutex_init(&ing->out_mu, NULL);
    pthread_mutex_init(&ing->produce_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&ing->out_cv, &ca);
    pthread_condattr_destroy(&ca);
}

el_status ingest_new(const struct ingest_opts *o, struct journal *journal, struct ingest **out)
{
    MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer5;
    el_status st;
    struct ingest *ing = calloc(1, sizeof *ing);
    *out = NULL;
    if (!ing)
        return EL_NOMEM;
    init_fields(ing, o, journal);
    ing->backoff_ms = 1000;
    st = ingest_set_rules(ing, o);
    if (st == EL_OK) {
        ing->fb = calloc(FB_SLOTS, sizeof ing->fb[0]);
        st = ing->fb ? ids_open(ing) : EL_NOMEM;
    }
    if (st == EL_OK)
        st = read_password(ing);
    if (st != EL_OK) {
        ingest_free(ing);
        return st;
    }
    co.MQTTVersion = MQTTVERSION_5;
    int rc = MQTTAsync_createWithOptions(&ing->client, o->conn.uri, o->conn.client_id,
                                         MQTTCLIENT_PERSISTENCE_NONE, NULL, &co);
    if (rc != MQTTASYNC_SUCCESS) {
        log_error("cannot create MQTT client for %s: %s", o->conn.uri, MQTTAsync_strerror(rc));
        ing->client = NULL;
        ingest_free(ing);
        return EL_MQTT;
    }
    mqtt_paho_quiet();
    MQTTAsync_setCallbacks(ing->client, ing, on_connection_lost, on_message, NULL);
    MQTTAsync_setConnected(ing->client, ing, on_connected);
    *out = ing;
    return EL_OK;
}

void ingest_free(struct ingest *ing)
{
    if (!ing)
        return;
    if (ing->out_started) {
        pthread_mutex_lock(&ing->out_mu);
        ing->out_quit = true;
        pthread_cond_broadcast(&ing->out_cv);
        pthread_mutex_unlock(&ing->out_mu);
        pthread_join(ing->out_thread, NULL);
    }
    if (ing->client)
        MQTTAsync_destroy(&ing->client);
    ids_close(ing);
    free(atomic_load(&ing->rules_next));
    for (int i = 0; i < ing->n_retired; i++)
        free(ing->retired[i]);
    sparkplug_free(ing->sparkplug);
    free(ing->fb);
    pthread_mutex_destroy(&ing->out_mu);
    pthread_mutex_destroy(&ing->produce_mu);
    pthread_cond_destroy(&ing->out_cv);
    free(ing);
}

static el_status connect_now(struct ingest *ing)
{
    const struct ingest_opts *o = &ing->o;
    MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer5;
    MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
    MQTTProperties props = MQTTProperties_initializer;
    MQTTProperty p;

    co.keepAliveInterval = o->conn.keepalive_s;
    co.cleanstart = 0;
    co.automaticReconnect = 1;
    co.minRetryInterval = 1;
    co.maxRetryInterval = 30;
    co.connectTimeout = 10;
    co.onFailure5 = on_connect_failed;
    co.context = ing;
    /* Without a session expiry an MQTT v5 session ends with the connection
     * and the broker would drop what arrives while we restart. */
    p.identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL;
    p.value.integer4 = (unsigned)o->conn.session_expiry_s;
    MQTTProperties_add(&props, &p);
    p.identifier = MQTTPROPERTY_CODE_RECEIVE_MAXIMUM;
    p.value.integer2 = (unsigned short)o->max_inflight;
    MQTTProperties_add(&props, &p);
    co.connectProperties = &props;
    if (o->conn.username[0]) {
        co.username = o->conn.username;
        co.password = ing->password[0] ? ing->password : NULL;
    }
    if (mqtt_uri_tls(o->conn.uri)) {
        ssl.trustStore = o->conn.ca_file[0] ? o->conn.ca_file : NULL;
        ssl.keyStore = o->conn.cert_file[0] ? o->conn.cert_file : NULL;
        ssl.privateKey = o->conn.key_file[0] ? o->conn.key_file : NULL;
        ssl.enableServerCertAuth = 1;
        ssl.verify = 1;
        co.ssl = &ssl;
    }
    int rc = MQTTAsync_connect(ing->client, &co);
    MQTTProperties_free(&props);
    if (rc != MQTTASYNC_SUCCESS) {
        log_error("cannot start connecting to %s: %s", o->conn.uri, MQTTAsync_strerror(rc));
        return EL_MQTT;
    }
    return EL_OK;
}

static void *out_main(void *arg);

el_status ingest_start(struct ingest *ing)
{
    ids_start(ing);
    if (ing->o.conn.tcp_nodelay)
        mqtt_peers_resolve(&ing->peers, ing->o.conn.uri);
    ing->next_connect_ms = 0;
    el_status st = connect_now(ing);
    if (st != EL_OK)
        return st;
    if (pthread_create(&ing->out_thread, NULL, out_main, ing) != 0) {
        log_error("cannot start the MQTT outbox thread");
        return EL_NOMEM;
    }
    ing->out_started = true;
    return EL_OK;
}

/* Outbox thread: retries a failed initial connection when due. */
static void connect_tick(struct ingest *ing)
{
    int64_t now = plat_clock_mono_ms();
    if (ing->stopping)
        return;
    if (atomic_exchange(&ing->connect_failed, 0)) {
        ing->next_connect_ms = now + ing->backoff_ms;
        ing->backoff_ms = (int)plat_backoff_next(ing->backoff_ms, 30000);
    }
    if (ing->next_connect_ms != 0 && now >= ing->next_connect_ms) {
        ing->next_connect_ms = 0;
        if (connect_now(ing) != EL_OK)
            atomic_store(&ing->connect_failed, 1);
    }
    if (atomic_load(&ing->counters.connected))
        ing->backoff_ms = 1000;
}

static void on_disconnected(void *ctx, MQTTAsync_successData5 *resp)
{
    struct ingest *ing = ctx;
    (void)resp;
    atomic_store(&ing->disconnected, 1);
    atomic_store(&ing->counters.connected, 0);
    atomic_store(&ing->stopped, 1);
}

static void on_disconnect_failed(void *ctx, MQTTAsync_failureData5 *resp)
{
    struct ingest *ing = ctx;
    (void)resp;
    atomic_store(&ing->counters.connected, 0);
    atomic_store(&ing->stopped, 1);
}

/* Outbox thread: starts the disconnect (the control plane says "offline"). */
static void stop_now(struct ingest *ing)
{
    MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer5;
    ing->stopping = true;
    if (!MQTTAsync_isConnected(ing->client)) {
        atomic_store(&ing->stopped, 1);
        return;
    }
    /* No grace period: Paho waits for the broker to go quiet, which under
     * ingest it never does (3 s measured, whatever the timeout asked).
     * What was not acknowledged comes back to the next session. */
    d.timeout = 0;
    d.onSuccess5 = on_disconnected;
    d.onFailure5 = on_disconnect_failed;
    d.context = ing;
    if (MQTTAsync_disconnect(ing->client, &d) != MQTTASYNC_SUCCESS)
        atomic_store(&ing->stopped, 1);
}

bool ingest_stopped(const struct ingest *ing)
{
    return atomic_load(&ing->stopped) != 0;
}

/* ---- the el-mqtt-out thread (ingest.h) ---- */

void ingest_stop_begin(struct ingest *ing)
{
    if (!ing->out_started) {
        atomic_store(&ing->stopped, 1);
        return;
    }
    pthread_mutex_lock(&ing->out_mu);
    ing->out_stop_req = true;
    pthread_cond_broadcast(&ing->out_cv);
    pthread_mutex_unlock(&ing->out_mu);
}

#define OUT_TICK_MS 200

/* Waits on out_cv (out_mu held) for at most ms. */
static void out_wait(struct ingest *ing, int ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += ms * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    (void)pthread_cond_timedwait(&ing->out_cv, &ing->out_mu, &until);
}

static void *out_main(void *arg)
{
    struct ingest *ing = arg;
    pthread_mutex_lock(&ing->out_mu);
    while (!ing->out_quit) {
        if (ing->out_stop_req) {
            ing->out_stop_req = false;
            pthread_mutex_unlock(&ing->out_mu);
            stop_now(ing);
            pthread_mutex_lock(&ing->out_mu);
        } else {
            out_wait(ing, OUT_TICK_MS);
            pthread_mutex_unlock(&ing->out_mu);
            connect_tick(ing);
            pthread_mutex_lock(&ing->out_mu);
        }
    }
    pthread_mutex_unlock(&ing->out_mu);
    return NULL;
}
