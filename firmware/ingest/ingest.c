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

/* Where one reply goes: topic and the request's correlation data. */
struct reply_addr {
    char topic[MQTT_TOPIC_REPLY_MAX + 1];
    unsigned char correlation[INGEST_PROP_MAX];
    size_t correlation_len;
    bool has_correlation;
};

#define INGEST_BUSY_SLOTS 4096

struct ingest {
    struct ingest_opts o; /* borrowed strings: they outlive the ingest */
    struct journal *journal;
    MQTTAsync client;
    struct decode_opts dopts;
    struct decode_words words; /* dopts.words: parsed once at ingest_new */
    struct ingest_counters counters;
    char status_topic[INGEST_STR_MAX + 16];
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

    /* request queue: Paho thread produces, core consumes, under req_mu */
    pthread_mutex_t req_mu;
    struct ingest_request *req_slots; /* INGEST_REQ_SLOTS */
    uint32_t req_head, req_count;
    void (*req_wake)(void *ctx);
    void *req_wake_ctx;
    char query_topic[INGEST_STR_MAX + 16];
    size_t prefix_len;
    char command_topic[INGEST_STR_MAX + 16];
    const char *own_ptr[3];
    const char *filter_ptr[INGEST_MAX_FILTERS];
    struct mqtt_topic_rules reply_rules;
    struct plat_log_limit req_limit;

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

    /* outbox (ingest.h): the core writes under out_mu, the el-mqtt-out
     * thread sends; out_mu is never held across a Paho call */
    pthread_mutex_t out_mu;
    pthread_cond_t out_cv;
    pthread_t out_thread;
    bool out_started, out_quit, out_stop_req;
    int out_stop_timeout_ms;
    char out_status[INGEST_STATUS_MAX];
    char out_sending[INGEST_STATUS_MAX]; /* outbox thread's copy being sent */
    size_t out_status_len;
    bool out_status_dirty;
    struct out_reply {
        struct reply_addr to;
        char *payload; /* INGEST_REPLY_MAX, allocated once */
        size_t len;
    } out_replies[INGEST_OUT_REPLIES];
    uint32_t out_head, out_count;
    /* "busy" replies the Paho thread leaves for the outbox thread (it must
     * not call Paho from inside messageArrived) */
    struct reply_addr out_busy[INGEST_BUSY_SLOTS];
    uint32_t busy_head, busy_count;
    struct reply_addr out_sending_busy; /* outbox thread's copy being sent */
    int out_in_paho;                    /* replies handed to Paho, not yet written (under out_mu) */
    struct plat_log_limit reply_limit;
    _Atomic int out_full; /* out_count == INGEST_OUT_REPLIES: requests wait */
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

const char *ingest_status_topic(const struct ingest *ing)
{
    return ing->status_topic;
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
    h->pending_fp = fp;
    h->pending_ord = h->next_ord;
    h->pending_next = journal_next_seq(ing->journal) + nseq;
    IDS_ORDER();
    h->pending = 1;
    IDS_ORDER();
}

/* After journal_append (or at start-up when the journal holds the record). */
static void ids_apply_pending(struct ingest *ing)
{
    struct ids_hdr *h = ing->ids_hdr;
    struct ids_slot *s = &ing->ids_slot[h->pending_id & (IDS_SLOTS - 1)];
    s->fp = h->pending_fp;
    s->ord = h->pending_ord;
    h->next_ord = h->pending_ord + 1;
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
    uint64_t h = plat_hash64(PLAT_HASH64_INIT, o->uri, strlen(o->uri));
    h = plat_hash64(h, "\0", 1);
    return plat_hash64(h, o->client_id, strlen(o->client_id));
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

/* ---- the callback that makes a message safe ---- */

/* Key of the message's first series: the topic, or topic/field. */
static uint64_t message_key(const char *topic, size_t topic_len, const char *payload,
                            size_t payload_len, const struct decode_result *res)
{
    char name[MLOG_MAX_SERIES_NAME + 1];
    size_t n = topic_len;
    memcpy(name, topic, topic_len);
    if (res->ev[0].field_len > 0) {
        name[n++] = '/';
        memcpy(name + n, payload + res->ev[0].field_off, res->ev[0].field_len);
        n += res->ev[0].field_len;
    }
    return dedup_key(name, n, payload, payload_len);
}

static unsigned check_names(const struct decode_result *res, size_t topic_len)
{
    for (uint32_t i = 0; i < res->n_events; i++) {
        size_t len = topic_len + (res->ev[i].field_len ? 1u + res->ev[i].field_len : 0u);
        if (len > MLOG_MAX_SERIES_NAME)
            return INGEST_REASON_NAME_TOO_LONG;
    }
    return DECODE_OK;
}

static void set_addr(struct reply_addr *a, const char *topic, const struct ingest_request *req)
{
    snprintf(a->topic, sizeof a->topic, "%s", topic);
    a->has_correlation = req->has_correlation;
    a->correlation_len = req->correlation_len;
    memcpy(a->correlation, req->correlation, req->correlation_len);
}

/* The "reply_to" of an MQTT 3.1.1 request, as written: a JSON string
 * without escapes (the serving layer's rule, query.h), cut to cap - 1
 * bytes; *full its length. False when there is none (or the request is not
 * a JSON object of at most DECODE_MAX_TOKENS tokens). */
static bool request_reply_to(const char *payload, size_t len, char *out, size_t cap, size_t *full)
{
    struct plat_json_tok tok[DECODE_MAX_TOKENS]; /* 10 KiB of Paho's stack */
    struct plat_json doc;
    size_t n;
    if (plat_json_parse(&doc, payload, len, tok, DECODE_MAX_TOKENS) != EL_OK)
        return false;
    int v = plat_json_member(&doc, 0, "reply_to");
    const char *raw = plat_json_raw(&doc, v, &n);
    if (plat_json_type(&doc, v) != PLAT_JSON_STRING || !raw || memchr(raw, '\\', n))
        return false;
    *full = n;
    n = n < cap - 1 ? n : cap - 1;
    memcpy(out, raw, n);
    out[n] = '\0';
    return true;
}

/* Where a "busy" reply may go: the Response Topic, else the JSON's
 * reply_to (copied into reply_to[MQTT_TOPIC_REPLY_MAX + 1]), when
 * mqtt_topic_check_reply accepts it; NULL and *problem otherwise. */
static const char *busy_topic(struct ingest *ing, const struct ingest_request *req,
                              const MQTTAsync_message *msg, char *reply_to,
                              enum mqtt_topic_problem *problem)
{
    enum mqtt_topic_problem rt = MQTT_TOPIC_NONE, rto = MQTT_TOPIC_NONE;
    size_t full = 0;
    if (req->has_response_topic)
        rt =
            mqtt_topic_check_reply(req->response_topic, req->response_topic_len, &ing->reply_rules);
    if (rt == MQTT_TOPIC_OK)
        return req->response_topic;
    size_t len = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;
    if (request_reply_to(msg->payload, len < INGEST_REQ_MAX ? len : INGEST_REQ_MAX, reply_to,
                         MQTT_TOPIC_REPLY_MAX + 1, &full))
        rto = mqtt_topic_check_reply(reply_to, full, &ing->reply_rules);
    *problem = rt != MQTT_TOPIC_NONE ? rt : rto;
    return rto == MQTT_TOPIC_OK ? reply_to : NULL;
}

/* Paho thread, the request queue full: "busy" to wherever the reply may
 * safely go (the same rules as every reply, query.h), counted either way. */
static void reply_busy(struct ingest *ing, const struct ingest_request *req,
                       const MQTTAsync_message *msg)
{
    char reply_to[MQTT_TOPIC_REPLY_MAX + 1];
    enum mqtt_topic_problem problem = MQTT_TOPIC_NONE;
    const char *topic = busy_topic(ing, req, msg, reply_to, &problem);
    if (!topic) {
        atomic_fetch_add(&ing->counters.requests_rejected[problem], 1);
        return;
    }
    bool queued = false;
    pthread_mutex_lock(&ing->out_mu);
    if (ing->busy_count < INGEST_BUSY_SLOTS) {
        set_addr(&ing->out_busy[(ing->busy_head + ing->busy_count) % INGEST_BUSY_SLOTS], topic,
                 req);
        ing->busy_count++;
        queued = true;
        pthread_cond_broadcast(&ing->out_cv);
    }
    pthread_mutex_unlock(&ing->out_mu);
    if (!queued)
        atomic_fetch_add(&ing->counters.requests_busy_unsent, 1);
}

const struct mqtt_topic_rules *ingest_reply_rules(const struct ingest *ing)
{
    return &ing->reply_rules;
}

/* The topics replies may not go to (query.h), from the configuration. */
static void init_reply_rules(struct ingest *ing)
{
    const struct ingest_opts *o = &ing->o;
    ing->own_ptr[0] = ing->query_topic;
    ing->own_ptr[1] = ing->command_topic;
    ing->own_ptr[2] = ing->status_topic;
    for (int i = 0; i < o->n_filters; i++)
        ing->filter_ptr[i] = o->filters[i];
    ing->reply_rules.filters = ing->filter_ptr;
    ing->reply_rules.n_filters = o->n_filters;
    ing->reply_rules.own = ing->own_ptr;
    ing->reply_rules.n_own = 3;
}

static void copy_properties(struct ingest_request *r, MQTTAsync_message *msg)
{
    MQTTProperty *p =
        MQTTProperties_getProperty(&msg->properties, MQTTPROPERTY_CODE_RESPONSE_TOPIC);
    r->response_topic[0] = '\0';
    r->response_topic_len = 0;
    r->has_response_topic = p != NULL;
    r->has_correlation = false;
    r->correlation_len = 0;
    if (p && p->value.data.len > 0) {
        /* Kept (cut) whatever its length: the serving thread judges it and
         * counts a refusal (mqtt_topic_check_reply), never a silent drop. */
        size_t n = (size_t)p->value.data.len;
        r->response_topic_len = n;
        n = n < INGEST_PROP_MAX ? n : INGEST_PROP_MAX;
        memcpy(r->response_topic, p->value.data.data, n);
        r->response_topic[n] = '\0';
    }
    p = MQTTProperties_getProperty(&msg->properties, MQTTPROPERTY_CODE_CORRELATION_DATA);
    if (p && p->value.data.len >= 0 && p->value.data.len <= INGEST_PROP_MAX) {
        memcpy(r->correlation, p->value.data.data, (size_t)p->value.data.len);
        r->correlation_len = (size_t)p->value.data.len;
        r->has_correlation = true;
    }
}

/* Paho thread: queue a query/command for the core. */
static void take_in_request(struct ingest *ing, bool is_command, MQTTAsync_message *msg)
{
    size_t len = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;
    struct ingest_request *r;
    pthread_mutex_lock(&ing->req_mu);
    bool full = ing->req_count == INGEST_REQ_SLOTS;
    if (!full) {
        r = &ing->req_slots[(ing->req_head + ing->req_count) % INGEST_REQ_SLOTS];
        r->is_command = is_command;
        r->arrived_mono_ms = plat_clock_mono_ms();
        copy_properties(r, msg);
        /* Oversized requests are cut: the parser then reports them as bad. */
        r->len = len < INGEST_REQ_MAX ? len : INGEST_REQ_MAX;
        if (r->len)
            memcpy(r->payload, msg->payload, r->len);
        ing->req_count++;
    }
    pthread_mutex_unlock(&ing->req_mu);
    if (full) {
        struct ingest_request tmp;
        tmp.is_command = is_command;
        copy_properties(&tmp, msg);
        plat_log_limited(&ing->req_limit, 10000, PLAT_LOG_WARN,
                         "request queue full: answering busy");
        reply_busy(ing, &tmp, msg);
        return;
    }
    if (ing->req_wake)
        ing->req_wake(ing->req_wake_ctx);
}

bool ingest_take_request(struct ingest *ing, struct ingest_request *out)
{
    bool got = false;
    if (atomic_load(&ing->out_full))
        return false; /* no room for the answer yet: the request waits */
    pthread_mutex_lock(&ing->req_mu);
    if (ing->req_count > 0) {
        struct ingest_request *r = &ing->req_slots[ing->req_head];
        out->is_command = r->is_command;
        out->len = r->len;
        memcpy(out->payload, r->payload, r->len);
        memcpy(out->response_topic, r->response_topic, sizeof out->response_topic);
        out->response_topic_len = r->response_topic_len;
        out->has_response_topic = r->has_response_topic;
        memcpy(out->correlation, r->correlation, r->correlation_len);
        out->correlation_len = r->correlation_len;
        out->has_correlation = r->has_correlation;
        out->arrived_mono_ms = r->arrived_mono_ms;
        ing->req_head = (ing->req_head + 1) % INGEST_REQ_SLOTS;
        ing->req_count--;
        got = true;
    }
    pthread_mutex_unlock(&ing->req_mu);
    return got;
}

bool ingest_has_request(struct ingest *ing)
{
    if (atomic_load(&ing->out_full))
        return false; /* the outbox thread wakes the core when there is room */
    pthread_mutex_lock(&ing->req_mu);
    bool any = ing->req_count > 0;
    pthread_mutex_unlock(&ing->req_mu);
    return any;
}

void ingest_set_request_wakeup(struct ingest *ing, void (*fn)(void *ctx), void *ctx)
{
    ing->req_wake = fn;
    ing->req_wake_ctx = ctx;
}

/* Paho threads (the outbox thread, or a callback): sends a reply now. */
/* Paho's threads: a reply left the outbox's hands for good (written to the
 * socket, or failed). */
static void on_reply_written(void *ctx, MQTTAsync_successData5 *resp)
{
    struct ingest *ing = ctx;
    (void)resp;
    pthread_mutex_lock(&ing->out_mu);
    if (ing->out_in_paho > 0)
        ing->out_in_paho--;
    pthread_cond_broadcast(&ing->out_cv);
    pthread_mutex_unlock(&ing->out_mu);
}

static void on_reply_failed(void *ctx, MQTTAsync_failureData5 *resp)
{
    struct ingest *ing = ctx;
    (void)resp;
    atomic_fetch_add(&ing->counters.replies_unsent, 1);
    on_reply_written(ctx, NULL);
}

static void on_busy_failed(void *ctx, MQTTAsync_failureData5 *resp)
{
    struct ingest *ing = ctx;
    (void)resp;
    atomic_fetch_add(&ing->counters.replies_unsent, 1);
}

/* Sends a reply (QoS 0, with the request's correlation data). outbox: it
 * counts against the replies Paho may hold at once (OUT_IN_PAHO_MAX), whose
 * completion callbacks release it; otherwise only a failure is counted. */
static el_status send_reply(struct ingest *ing, const struct reply_addr *to, const void *payload,
                            size_t len, bool outbox)
{
    MQTTAsync_message m = MQTTAsync_message_initializer;
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    MQTTProperty p;
    if (!MQTTAsync_isConnected(ing->client))
        return EL_AGAIN;
    ro.context = ing;
    ro.onSuccess5 = outbox ? on_reply_written : NULL;
    ro.onFailure5 = outbox ? on_reply_failed : on_busy_failed;
    m.payload = (void *)(uintptr_t)payload;
    m.payloadlen = (int)len;
    m.qos = 0;
    if (to->has_correlation) {
        p.identifier = MQTTPROPERTY_CODE_CORRELATION_DATA;
        p.value.data.data = (char *)(uintptr_t)to->correlation;
        p.value.data.len = (int)to->correlation_len;
        MQTTProperties_add(&m.properties, &p);
    }
    int rc = MQTTAsync_sendMessage(ing->client, to->topic, &m, &ro);
    MQTTProperties_free(&m.properties);
    return rc == MQTTASYNC_SUCCESS ? EL_OK : EL_AGAIN;
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
static bool make_record(struct ingest *ing, const MQTTAsync_message *msg, struct journal_msg *jm,
                        struct journal_event *events)
{
    struct decode_result res;
    bool synced = plat_clock_synced();
    jm->flags = (uint16_t)((synced ? MLOG_F_CLOCK_SYNCED : 0u) | (msg->dup ? MLOG_F_MQTT_DUP : 0u));
    unsigned reason =
        decode_payload(&ing->dopts, jm->payload, jm->payload_len, jm->recv_ms, synced, &res);
    if (reason == DECODE_OK)
        reason = check_names(&res, jm->topic_len);
    if (reason != DECODE_OK) {
        jm->reason = (uint16_t)reason;
        if (jm->payload_len > (size_t)ing->o.max_payload) {
            jm->payload_len = (size_t)ing->o.max_payload;
            jm->flags |= MLOG_F_TRUNCATED;
        }
        plat_log_limited(
            &ing->bad_input_limit, 10000, PLAT_LOG_WARN, "dead letter on %.*s: %s%s%s (%u bytes)",
            (int)(jm->topic_len > 200 ? 200 : jm->topic_len), jm->topic, ingest_reason_str(reason),
            res.detail[0] ? ": " : "", res.detail, jm->orig_len);
        return true;
    }
    if (msg->dup && fb_active(ing) &&
        fb_has(ing, message_key(jm->topic, jm->topic_len, jm->payload, jm->payload_len, &res)))
        return false;
    for (uint32_t i = 0; i < res.n_events; i++) {
        events[i].ts_ms = res.ev[i].ts_ms;
        events[i].value = res.ev[i].value;
        events[i].field_off = res.ev[i].field_off;
        events[i].field_len = res.ev[i].field_len;
    }
    jm->n_events = (uint16_t)res.n_events;
    jm->events = events;
    if (res.has_ts)
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
    if (!make_record(ing, msg, &jm, events)) {
        dropped_duplicate(ing, topic, topic_len, "same content as a stored event");
        return;
    }
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
}

static int on_message(void *ctx, char *topic, int topic_len_in, MQTTAsync_message *msg)
{
    struct ingest *ing = ctx;
    size_t topic_len = topic_len_in > 0 ? (size_t)topic_len_in : strlen(topic);
    if (strcmp(topic, SYS_DROPPED_TOPIC) == 0) {
        note_broker_dropped(ing, msg);
    } else if (strcmp(topic, ing->query_topic) == 0 || strcmp(topic, ing->command_topic) == 0) {
        ids_note(ing, msg, topic, topic_len);
        take_in_request(ing, strcmp(topic, ing->command_topic) == 0, msg);
    } else if (strncmp(topic, ing->o.topic_prefix, ing->prefix_len) == 0 &&
               topic[ing->prefix_len] == '/') {
        /* Our own status/replies matched a broad filter such as "#": not a reading. */
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
    log_info("subscribed to %d topic filter(s) and %s, %s", ing->o.n_filters, ing->query_topic,
             ing->command_topic);
}

static void on_subscribe_failed(void *ctx, MQTTAsync_failureData5 *resp)
{
    (void)ctx;
    log_error("subscribe failed: %s (code %d)", resp->message ? resp->message : "?", resp->code);
}

static void on_connected(void *ctx, char *cause)
{
    struct ingest *ing = ctx;
    char *filters[INGEST_MAX_FILTERS + 3];
    int qos[INGEST_MAX_FILTERS + 3];
    int n = ing->o.n_filters;
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    (void)cause;
    atomic_store(&ing->counters.connected, 1);
    atomic_store(&ing->ever_connected, 1);
    atomic_fetch_add(&ing->counters.connects, 1);
    bool nodelay = ing->o.tcp_nodelay && mqtt_peers_nodelay(&ing->peers);
    atomic_store(&ing->counters.tcp_nodelay, nodelay ? 1 : 0);
    log_info("connected to %s as %s%s", ing->o.uri, ing->o.client_id,
             ing->o.tcp_nodelay && !nodelay ? " (could not set TCP_NODELAY)" : "");
    /* Always subscribe: the session may have expired, or been clean. */
    for (int i = 0; i < n; i++) {
        filters[i] = (char *)(uintptr_t)ing->o.filters[i];
        qos[i] = ing->o.qos;
    }
    filters[n] = ing->query_topic;
    qos[n++] = 1;
    filters[n] = ing->command_topic;
    qos[n++] = 1;
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
    pthread_mutex_lock(&ing->out_mu); /* QoS 0 replies in Paho's queue are gone */
    ing->out_in_paho = 0;
    pthread_cond_broadcast(&ing->out_cv);
    pthread_mutex_unlock(&ing->out_mu);
    if (!ing->stopping)
        log_warn("connection to the broker lost (%s); reconnecting", cause ? cause : "no reason");
}

static void on_connect_failed(void *ctx, MQTTAsync_failureData5 *resp)
{
    struct ingest *ing = ctx;
    plat_log_limited(&ing->connect_limit, 30000, PLAT_LOG_WARN,
                     "cannot connect to %s: %s (code %d)", ing->o.uri,
                     resp && resp->message ? resp->message : "no reason", resp ? resp->code : 0);
    /* After a first success Paho's automatic reconnect keeps trying on its
     * own; only a failed first connection is ours to retry. */
    if (!atomic_load(&ing->ever_connected))
        atomic_store(&ing->connect_failed, 1);
}

static el_status read_password(struct ingest *ing)
{
    const char *path = ing->o.password_file;
    if (!path[0])
        return EL_OK;
    el_status st = plat_file_check_private(path);
    if (st != EL_OK)
        return st;
    FILE *f = fopen(path, "r");
    if (!f || !fgets(ing->password, sizeof ing->password, f)) {
        log_error("cannot read mqtt.password_file %s", path);
        if (f)
            fclose(f);
        return EL_IO;
    }
    fclose(f);
    ing->password[strcspn(ing->password, "\r\n")] = '\0';
    return EL_OK;
}

/* ingest_new's part that cannot fail: options, topics, locks. */
static void init_fields(struct ingest *ing, const struct ingest_opts *o, struct journal *journal)
{
    ing->o = *o;
    ing->journal = journal;
    decode_opts_default(&ing->dopts);
    ing->dopts.value_field = o->value_field;
    ing->dopts.ts_field = o->ts_field;
    ing->dopts.fields_all = o->fields_all;
    ing->dopts.max_payload = (size_t)o->max_payload;
    ing->dopts.max_future_ms = o->max_future_s * 1000;
    snprintf(ing->status_topic, sizeof ing->status_topic, "%s/status", o->topic_prefix);
    snprintf(ing->query_topic, sizeof ing->query_topic, "%s/query", o->topic_prefix);
    snprintf(ing->command_topic, sizeof ing->command_topic, "%s/command", o->topic_prefix);
    ing->prefix_len = strlen(o->topic_prefix);
    init_reply_rules(ing);
    atomic_store(&ing->counters.broker_dropped, -1);
    pthread_mutex_init(&ing->req_mu, NULL);
    pthread_mutex_init(&ing->out_mu, NULL);
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
    char werr[160];
    if (o->state_words && !decode_words_parse(o->state_words, &ing->words, werr, sizeof werr)) {
        log_error("ingest.state_words: %s", werr);
        ingest_free(ing);
        return EL_INVAL;
    }
    ing->dopts.words = &ing->words;
    ing->req_slots = calloc(INGEST_REQ_SLOTS, sizeof ing->req_slots[0]);
    bool out_ok = true;
    for (int i = 0; i < INGEST_OUT_REPLIES; i++) /* virtual until used */
        out_ok = (ing->out_replies[i].payload = malloc(INGEST_REPLY_MAX)) != NULL && out_ok;
    if (!ing->req_slots || !out_ok) {
        ingest_free(ing);
        return EL_NOMEM;
    }
    ing->backoff_ms = 1000;
    ing->fb = calloc(FB_SLOTS, sizeof ing->fb[0]);
    st = ing->fb ? ids_open(ing) : EL_NOMEM;
    if (st == EL_OK)
        st = read_password(ing);
    if (st != EL_OK) {
        ingest_free(ing);
        return st;
    }
    co.MQTTVersion = MQTTVERSION_5;
    /* Paho refuses a publish once this many wait in its queue (its default
     * is 100; a flood of "busy" replies needs more); the outbox bounds
     * the big ones (OUT_IN_PAHO_MAX). */
    co.maxBufferedMessages = INGEST_PAHO_QUEUE;
    int rc = MQTTAsync_createWithOptions(&ing->client, o->uri, o->client_id,
                                         MQTTCLIENT_PERSISTENCE_NONE, NULL, &co);
    if (rc != MQTTASYNC_SUCCESS) {
        log_error("cannot create MQTT client for %s: %s", o->uri, MQTTAsync_strerror(rc));
        ing->client = NULL;
        ingest_free(ing);
        return EL_MQTT;
    }
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
    free(ing->fb);
    pthread_mutex_destroy(&ing->req_mu);
    pthread_mutex_destroy(&ing->out_mu);
    pthread_cond_destroy(&ing->out_cv);
    for (int i = 0; i < INGEST_OUT_REPLIES; i++)
        free(ing->out_replies[i].payload);
    free(ing->req_slots);
    free(ing);
}

static el_status connect_now(struct ingest *ing)
{
    const struct ingest_opts *o = &ing->o;
    MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer5;
    MQTTAsync_willOptions will = MQTTAsync_willOptions_initializer;
    MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
    MQTTProperties props = MQTTProperties_initializer;
    MQTTProperty p;
    static const char offline[] = "{\"state\":\"offline\"}";

    co.keepAliveInterval = o->keepalive_s;
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
    p.value.integer4 = (unsigned)o->session_expiry_s;
    MQTTProperties_add(&props, &p);
    p.identifier = MQTTPROPERTY_CODE_RECEIVE_MAXIMUM;
    p.value.integer2 = (unsigned short)o->max_inflight;
    MQTTProperties_add(&props, &p);
    co.connectProperties = &props;
    will.topicName = ing->status_topic;
    will.message = NULL;
    will.payload.data = offline;
    will.payload.len = (int)(sizeof offline - 1);
    will.retained = 1;
    will.qos = 1;
    co.will = &will;
    if (o->username[0]) {
        co.username = o->username;
        co.password = ing->password[0] ? ing->password : NULL;
    }
    if (strncmp(o->uri, "ssl://", 6) == 0 || strncmp(o->uri, "mqtts://", 8) == 0 ||
        strncmp(o->uri, "wss://", 6) == 0) {
        ssl.trustStore = o->ca_file[0] ? o->ca_file : NULL;
        ssl.keyStore = o->cert_file[0] ? o->cert_file : NULL;
        ssl.privateKey = o->key_file[0] ? o->key_file : NULL;
        ssl.enableServerCertAuth = 1;
        ssl.verify = 1;
        co.ssl = &ssl;
    }
    int rc = MQTTAsync_connect(ing->client, &co);
    MQTTProperties_free(&props);
    if (rc != MQTTASYNC_SUCCESS) {
        log_error("cannot start connecting to %s: %s", o->uri, MQTTAsync_strerror(rc));
        return EL_MQTT;
    }
    return EL_OK;
}

static void *out_main(void *arg);

el_status ingest_start(struct ingest *ing)
{
    ids_start(ing);
    if (ing->o.tcp_nodelay)
        mqtt_peers_resolve(&ing->peers, ing->o.uri);
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
        ing->backoff_ms = ing->backoff_ms * 2 > 30000 ? 30000 : ing->backoff_ms * 2;
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

static el_status publish(struct ingest *ing, const char *topic, const void *payload, size_t len,
                         int qos, bool retained);

/* Outbox thread: publishes "offline" and starts the disconnect. */
static void stop_now(struct ingest *ing, int timeout_ms)
{
    static const char offline[] = "{\"state\":\"offline\"}";
    MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer5;
    ing->stopping = true;
    if (!MQTTAsync_isConnected(ing->client)) {
        atomic_store(&ing->stopped, 1);
        return;
    }
    /* A clean disconnect does not fire the will: say it ourselves. */
    if (publish(ing, ing->status_topic, offline, sizeof offline - 1, 1, true) != EL_OK)
        log_debug("could not publish the offline status");
    /* No grace period: Paho waits for the broker to go quiet, which under
     * ingest it never does (3 s measured, whatever the timeout asked).
     * What was not acknowledged comes back to the next session; the
     * reason code makes the broker publish our will ("offline", retained)
     * should the publish above not have made it out. */
    (void)timeout_ms;
    d.timeout = 0;
    d.reasonCode = MQTTREASONCODE_DISCONNECT_WITH_WILL_MESSAGE;
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

static el_status publish(struct ingest *ing, const char *topic, const void *payload, size_t len,
                         int qos, bool retained)
{
    MQTTAsync_message m = MQTTAsync_message_initializer;
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    if (!MQTTAsync_isConnected(ing->client))
        return EL_AGAIN;
    m.payload = (void *)(uintptr_t)payload;
    m.payloadlen = (int)len;
    m.qos = qos;
    m.retained = retained;
    int rc = MQTTAsync_sendMessage(ing->client, topic, &m, &ro);
    return rc == MQTTASYNC_SUCCESS ? EL_OK : EL_AGAIN;
}

/* ---- outbox (ingest.h) ---- */

void ingest_stop_begin(struct ingest *ing, int timeout_ms)
{
    if (!ing->out_started) {
        atomic_store(&ing->stopped, 1);
        return;
    }
    pthread_mutex_lock(&ing->out_mu);
    ing->out_stop_req = true;
    ing->out_stop_timeout_ms = timeout_ms;
    pthread_cond_broadcast(&ing->out_cv);
    pthread_mutex_unlock(&ing->out_mu);
}

el_status ingest_publish_status(struct ingest *ing, const void *payload, size_t len)
{
    if (len > INGEST_STATUS_MAX)
        return EL_INVAL;
    pthread_mutex_lock(&ing->out_mu);
    memcpy(ing->out_status, payload, len);
    ing->out_status_len = len;
    ing->out_status_dirty = true;
    pthread_cond_broadcast(&ing->out_cv);
    pthread_mutex_unlock(&ing->out_mu);
    return EL_OK;
}

el_status ingest_reply(struct ingest *ing, const char *topic, const struct ingest_request *req,
                       const void *payload, size_t len)
{
    el_status st = EL_AGAIN;
    size_t tlen = strlen(topic);
    if (len > INGEST_REPLY_MAX || tlen >= sizeof ing->out_replies[0].to.topic)
        return EL_AGAIN;
    pthread_mutex_lock(&ing->out_mu);
    if (ing->out_count < INGEST_OUT_REPLIES) {
        struct out_reply *r =
            &ing->out_replies[(ing->out_head + ing->out_count) % INGEST_OUT_REPLIES];
        set_addr(&r->to, topic, req);
        memcpy(r->payload, payload, len);
        r->len = len;
        ing->out_count++;
        atomic_store(&ing->out_full, ing->out_count == INGEST_OUT_REPLIES);
        pthread_cond_broadcast(&ing->out_cv);
        st = EL_OK;
    }
    pthread_mutex_unlock(&ing->out_mu);
    return st;
}

#define OUT_TICK_MS 200
#define OUT_IN_PAHO_MAX 4

/* Waits on out_cv (out_mu held) for at most ms; true on a timeout. */
static bool out_wait(struct ingest *ing, int ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += ms * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    return pthread_cond_timedwait(&ing->out_cv, &ing->out_mu, &until) != 0;
}

/* The outbox's jobs; each is called with out_mu held and returns with it
 * held, releasing it around the Paho call. */

static void out_send_status(struct ingest *ing, int64_t now, int64_t *retry_ms)
{
    size_t len = ing->out_status_len;
    memcpy(ing->out_sending, ing->out_status, len);
    ing->out_status_dirty = false;
    pthread_mutex_unlock(&ing->out_mu);
    bool sent =
        !ing->stopping && publish(ing, ing->status_topic, ing->out_sending, len, 1, true) == EL_OK;
    pthread_mutex_lock(&ing->out_mu);
    if (!sent && !ing->stopping && !ing->out_status_dirty) {
        ing->out_status_dirty = true; /* unchanged meanwhile: still ours to send */
        *retry_ms = now + OUT_TICK_MS;
    }
}

static void out_send_busy(struct ingest *ing)
{
    static const char busy[] = "{\"ok\":false,\"error\":{\"code\":\"busy\",\"message\":"
                               "\"too many requests waiting\"}}";
    struct reply_addr *to = &ing->out_sending_busy;
    *to = ing->out_busy[ing->busy_head];
    ing->busy_head = (ing->busy_head + 1) % INGEST_BUSY_SLOTS;
    ing->busy_count--;
    pthread_mutex_unlock(&ing->out_mu);
    if (send_reply(ing, to, busy, sizeof busy - 1, false) == EL_OK)
        atomic_fetch_add(&ing->counters.requests_busy, 1);
    else
        atomic_fetch_add(&ing->counters.requests_busy_unsent, 1);
    pthread_mutex_lock(&ing->out_mu);
}

static void out_send_reply(struct ingest *ing)
{
    struct out_reply *r = &ing->out_replies[ing->out_head];
    /* Paho copies what it sends: at most OUT_IN_PAHO_MAX replies (each up
     * to INGEST_REPLY_MAX) held there at once. Completions are lost with a
     * dropped connection: do not wait for them forever (the
     * connection-lost callback resets the count). */
    for (int waited = 0; ing->out_in_paho >= OUT_IN_PAHO_MAX && !ing->out_quit;) {
        if (out_wait(ing, OUT_TICK_MS) && (waited += OUT_TICK_MS) >= 5000) {
            log_warn("replies handed to the MQTT library never completed; going on");
            ing->out_in_paho = 0;
        }
    }
    ing->out_in_paho++;
    pthread_mutex_unlock(&ing->out_mu);
    if (send_reply(ing, &r->to, r->payload, r->len, true) != EL_OK) {
        atomic_fetch_add(&ing->counters.replies_unsent, 1);
        plat_log_limited(&ing->reply_limit, 10000, PLAT_LOG_WARN,
                         "could not send a reply to %s (counted in status)", r->to.topic);
        on_reply_written(ing, NULL);
    }
    pthread_mutex_lock(&ing->out_mu);
    ing->out_head = (ing->out_head + 1) % INGEST_OUT_REPLIES;
    ing->out_count--;
    if (atomic_exchange(&ing->out_full, 0) && ing->req_wake)
        ing->req_wake(ing->req_wake_ctx); /* requests may be waiting for room */
}

static void *out_main(void *arg)
{
    struct ingest *ing = arg;
    int64_t status_retry_ms = 0;
    pthread_mutex_lock(&ing->out_mu);
    while (!ing->out_quit) {
        int64_t now = plat_clock_mono_ms();
        bool status_due = ing->out_status_dirty && now >= status_retry_ms;
        if (ing->out_stop_req) {
            ing->out_stop_req = false;
            int timeout_ms = ing->out_stop_timeout_ms;
            pthread_mutex_unlock(&ing->out_mu);
            stop_now(ing, timeout_ms);
            pthread_mutex_lock(&ing->out_mu);
        } else if (status_due) {
            out_send_status(ing, now, &status_retry_ms);
        } else if (ing->busy_count > 0) {
            out_send_busy(ing);
        } else if (ing->out_count > 0) {
            out_send_reply(ing);
        } else {
            (void)out_wait(ing, OUT_TICK_MS);
            pthread_mutex_unlock(&ing->out_mu);
            connect_tick(ing);
            pthread_mutex_lock(&ing->out_mu);
        }
    }
    pthread_mutex_unlock(&ing->out_mu);
    return NULL;
}
