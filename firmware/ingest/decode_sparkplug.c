/*
 * decode_sparkplug — Sparkplug B payloads (topics, events, state and bounds
 * in decode_sparkplug.h).
 *
 * Design: one message = parse the topic (levels point into it), check the
 * protobuf nesting depth with a small wire walker driven by protobuf-c's
 * descriptors (protobuf-c's unpack recurses without a limit, and a 64 KiB
 * payload of nested templates would overflow the stack of the MQTT thread),
 * unpack into the bump arena, update the node's state, then turn metrics
 * into events. A node's table is an array of entries (metric key, alias,
 * datatype) with two open-addressing indexes of 2 * SPARKPLUG_MAX_ALIASES
 * slots (by alias, by key; kept at most half full so a probe always ends).
 * The key is the metric name, or "<device>+<name>" for a device's metric
 * ('+' cannot appear in a name that passes decode_name_ok), stored in the
 * node's name pool. An alias given anew (a DBIRTH again) moves to its new
 * entry; the stale index slot fails the alias check and probing goes on.
 * Memory is only reclaimed by the node's next NBIRTH.
 *
 * Threading: one thread per state (decode_sparkplug.h).
 */
#include "decode_sparkplug.h"

#include <math.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sparkplug_b.pb-c.h"

typedef Org__Eclipse__Tahu__Protobuf__Payload sp_payload;
typedef Org__Eclipse__Tahu__Protobuf__Payload__Metric sp_metric;
#define SP_PAYLOAD_DESC org__eclipse__tahu__protobuf__payload__descriptor

#define SP_SLOTS (2 * SPARKPLUG_MAX_ALIASES)
#define SP_PREFIX "spBv1.0/"

enum sp_type { SP_NBIRTH, SP_NDEATH, SP_NDATA, SP_NCMD, SP_DBIRTH, SP_DDEATH, SP_DDATA, SP_DCMD };
static const char *const sp_type_names[] = {"NBIRTH", "NDEATH", "NDATA", "NCMD",
                                            "DBIRTH", "DDEATH", "DDATA", "DCMD"};

struct sp_entry {
    uint64_t alias;
    uint16_t key_off; /* in the node's pool */
    uint16_t key_len; /* "<device>+<name>" or "<name>" */
    uint16_t name_at; /* where <name> starts in the key */
    uint8_t datatype; /* DataType, 0 unknown */
    bool has_alias;   /* alias is (still) bound to this entry */
};

struct sp_node {
    bool used, dead, seq_known, overflow;
    uint8_t seq;
    uint16_t key_len; /* "<group>/<edge_node>" */
    char key[DECODE_NAME_MAX + 1];
    uint64_t last_seen; /* message counter, for reusing the oldest dead slot */
    uint32_t n_entries, pool_len, alias_slots;
    uint16_t by_alias[SP_SLOTS]; /* entry index + 1; 0 empty */
    uint16_t by_key[SP_SLOTS];
    struct sp_entry e[SPARKPLUG_MAX_ALIASES];
    char pool[SPARKPLUG_NAME_POOL];
};

struct sparkplug_state {
    struct sparkplug_counters c;
    uint64_t clock;
    struct decode_words state_words; /* ONLINE=1,OFFLINE=0 */
    size_t arena_used;
    bool arena_exhausted;
    struct sp_node nodes[SPARKPLUG_MAX_NODES];
    alignas(max_align_t) unsigned char arena[SPARKPLUG_ARENA];
};

struct sp_topic {
    bool state;
    enum sp_type type;
    const char *group, *node, *device; /* device NULL for node messages */
    size_t gl, nl, dl;
};

/* --- the arena: protobuf-c's allocator ---------------------------------- */

static void *arena_alloc(void *data, size_t size)
{
    struct sparkplug_state *st = data;
    size_t align = alignof(max_align_t);
    size_t off = (st->arena_used + align - 1) & ~(align - 1);
    if (off > SPARKPLUG_ARENA || size > SPARKPLUG_ARENA - off) {
        st->arena_exhausted = true;
        return NULL;
    }
    st->arena_used = off + size;
    return st->arena + off;
}

static void arena_free(void *data, void *p)
{
    (void)data;
    (void)p; /* reclaimed all at once by the next message */
}

/* --- helpers ----------------------------------------------------------- */

static enum decode_reason fail(struct decode_result *out, enum decode_reason r, const char *fmt,
                               ...) __attribute__((format(printf, 3, 4)));

static enum decode_reason fail(struct decode_result *out, enum decode_reason r, const char *fmt,
                               ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->detail, sizeof out->detail, fmt, ap);
    va_end(ap);
    out->n_events = 0;
    out->names_len = 0;
    out->has_ts = false;
    return r;
}

static uint32_t fnv(uint32_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static uint32_t key_hash(const char *dev, size_t dl, const char *name, size_t nl)
{
    uint32_t h = 2166136261u;
    if (dev != NULL)
        h = fnv(fnv(h, dev, dl), "+", 1);
    return fnv(h, name, nl);
}

static uint32_t alias_hash(uint64_t alias)
{
    alias *= UINT64_C(0x9e3779b97f4a7c15);
    return (uint32_t)(alias >> 32);
}

/* --- topics -------------------------------------------------------------- */

/* Splits topic into levels; false if it is no Sparkplug B topic. */
static bool parse_topic(const char *t, size_t n, struct sp_topic *tp)
{
    const char *lv[6];
    size_t ll[6], k = 0, start = sizeof SP_PREFIX - 1;
    if (n < start || memcmp(t, SP_PREFIX, start) != 0)
        return false;
    for (size_t i = start; i <= n; i++) {
        if (i == n || t[i] == '/') {
            if (k == 4)
                return false;
            lv[k] = t + start;
            ll[k] = i - start;
            if (!decode_name_ok(lv[k], ll[k]))
                return false;
            k++;
            start = i + 1;
        }
    }
    memset(tp, 0, sizeof *tp);
    if (k == 2 && ll[0] == 5 && memcmp(lv[0], "STATE", 5) == 0) {
        tp->state = true;
        tp->node = lv[1];
        tp->nl = ll[1];
        return true;
    }
    if (k < 3)
        return false;
    for (size_t ty = 0; ty < sizeof sp_type_names / sizeof sp_type_names[0]; ty++) {
        if (strlen(sp_type_names[ty]) == ll[1] && memcmp(sp_type_names[ty], lv[1], ll[1]) == 0) {
            tp->type = (enum sp_type)ty;
            if ((k == 4) != (ty >= SP_DBIRTH))
                return false;
            tp->group = lv[0];
            tp->gl = ll[0];
            tp->node = lv[2];
            tp->nl = ll[2];
            if (k == 4) {
                tp->device = lv[3];
                tp->dl = ll[3];
            }
            return true;
        }
    }
    return false;
}

/* --- nesting depth: a wire walk guided by the descriptors ---------------- */

static bool read_varint(const uint8_t *p, size_t n, size_t *i, uint64_t *v)
{
    *v = 0;
    for (unsigned shift = 0; shift < 64 && *i < n; shift += 7) {
        uint8_t b = p[(*i)++];
        *v |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0)
            return true;
    }
    return false;
}

/* False when a submessage nests deeper than SPARKPLUG_MAX_DEPTH. Bytes that
 * are no valid protobuf end the walk with true: unpack rejects them. */
static bool depth_ok(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n,
                     unsigned depth)
{
    if (depth > SPARKPLUG_MAX_DEPTH)
        return false;
    size_t i = 0;
    while (i < n) {
        uint64_t tag, v;
        if (!read_varint(p, n, &i, &tag))
            return true;
        switch (tag & 7) {
        case 0:
            if (!read_varint(p, n, &i, &v))
                return true;
            break;
        case 1:
            if (n - i < 8)
                return true;
            i += 8;
            break;
        case 5:
            if (n - i < 4)
                return true;
            i += 4;
            break;
        case 2: {
            if (!read_varint(p, n, &i, &v) || v > n - i)
                return true;
            const ProtobufCFieldDescriptor *f =
                tag >> 3 <= UINT32_MAX
                    ? protobuf_c_message_descriptor_get_field(d, (unsigned)(tag >> 3))
                    : NULL;
            if (f != NULL && f->type == PROTOBUF_C_TYPE_MESSAGE &&
                !depth_ok(f->descriptor, p + i, (size_t)v, depth + 1))
                return false;
            i += (size_t)v;
            break;
        }
        default: return true; /* groups and bad wire types: unpack's to reject */
        }
    }
    return true;
}

/* --- nodes and their tables ---------------------------------------------- */

static struct sp_node *find_node(struct sparkplug_state *st, const struct sp_topic *tp)
{
    size_t kl = tp->gl + 1 + tp->nl;
    for (size_t i = 0; i < SPARKPLUG_MAX_NODES; i++) {
        struct sp_node *nd = &st->nodes[i];
        if (nd->used && nd->key_len == kl && memcmp(nd->key, tp->group, tp->gl) == 0 &&
            nd->key[tp->gl] == '/' && memcmp(nd->key + tp->gl + 1, tp->node, tp->nl) == 0)
            return nd;
    }
    return NULL;
}

static void node_reset_table(struct sp_node *nd)
{
    nd->n_entries = nd->pool_len = nd->alias_slots = 0;
    nd->overflow = false;
    memset(nd->by_alias, 0, sizeof nd->by_alias);
    memset(nd->by_key, 0, sizeof nd->by_key);
}

/* The node's slot, made if it has none (a free one, else the dead node seen
 * longest ago); NULL when every slot holds a live node, or the key is too
 * long (it cannot be: the series names would be too). */
static struct sp_node *node_slot(struct sparkplug_state *st, const struct sp_topic *tp)
{
    struct sp_node *nd = find_node(st, tp), *victim = NULL;
    if (nd != NULL)
        return nd;
    if (tp->gl + 1 + tp->nl > DECODE_NAME_MAX)
        return NULL;
    for (size_t i = 0; i < SPARKPLUG_MAX_NODES; i++) {
        struct sp_node *c = &st->nodes[i];
        if (!c->used) {
            victim = c;
            break;
        }
        if (c->dead && (victim == NULL || c->last_seen < victim->last_seen))
            victim = c;
    }
    if (victim == NULL)
        return NULL;
    victim->used = true;
    victim->dead = victim->seq_known = false;
    victim->key_len = (uint16_t)(tp->gl + 1 + tp->nl);
    memcpy(victim->key, tp->group, tp->gl);
    victim->key[tp->gl] = '/';
    memcpy(victim->key + tp->gl + 1, tp->node, tp->nl);
    node_reset_table(victim);
    return victim;
}

static bool key_eq(const struct sp_node *nd, const struct sp_entry *e, const char *dev, size_t dl,
                   const char *name, size_t nl)
{
    const char *k = nd->pool + e->key_off;
    if (dev == NULL)
        return e->name_at == 0 && e->key_len == nl && memcmp(k, name, nl) == 0;
    return e->name_at == dl + 1 && e->key_len == dl + 1 + nl && memcmp(k, dev, dl) == 0 &&
           memcmp(k + dl + 1, name, nl) == 0;
}

/* The entry of a metric by (device, name); *slot: where it would go. */
static struct sp_entry *find_key(struct sp_node *nd, const char *dev, size_t dl, const char *name,
                                 size_t nl, uint32_t *slot)
{
    uint32_t s = key_hash(dev, dl, name, nl) & (SP_SLOTS - 1);
    for (uint32_t probe = 0; probe < SP_SLOTS; probe++, s = (s + 1) & (SP_SLOTS - 1)) {
        if (nd->by_key[s] == 0)
            break;
        struct sp_entry *e = &nd->e[nd->by_key[s] - 1];
        if (key_eq(nd, e, dev, dl, name, nl))
            return e;
    }
    if (slot != NULL)
        *slot = s;
    return NULL;
}

static struct sp_entry *find_alias(struct sp_node *nd, uint64_t alias)
{
    uint32_t s = alias_hash(alias) & (SP_SLOTS - 1);
    for (uint32_t probe = 0; probe < SP_SLOTS; probe++, s = (s + 1) & (SP_SLOTS - 1)) {
        if (nd->by_alias[s] == 0)
            break;
        struct sp_entry *e = &nd->e[nd->by_alias[s] - 1];
        if (e->has_alias && e->alias == alias)
            return e;
    }
    return NULL;
}

/* Remembers a born metric (its name passed decode_name_ok); false when the
 * node's tables are full. */
static bool remember(struct sp_node *nd, const struct sp_topic *tp, const sp_metric *m, size_t nl)
{
    uint32_t kslot = 0;
    struct sp_entry *e = find_key(nd, tp->device, tp->dl, m->name, nl, &kslot);
    if (e == NULL) {
        size_t kl = (tp->device != NULL ? tp->dl + 1 : 0) + nl;
        if (nd->n_entries == SPARKPLUG_MAX_ALIASES || kl > SPARKPLUG_NAME_POOL - nd->pool_len)
            return false;
        e = &nd->e[nd->n_entries++];
        *e = (struct sp_entry){.key_off = (uint16_t)nd->pool_len, .key_len = (uint16_t)kl};
        char *k = nd->pool + nd->pool_len;
        if (tp->device != NULL) {
            memcpy(k, tp->device, tp->dl);
            k[tp->dl] = '+';
            e->name_at = (uint16_t)(tp->dl + 1);
        }
        memcpy(k + e->name_at, m->name, nl);
        nd->pool_len += (uint32_t)kl;
        nd->by_key[kslot] = (uint16_t)(nd->n_entries);
    }
    e->datatype = m->has_datatype && m->datatype <= UINT8_MAX ? (uint8_t)m->datatype : 0;
    if (!m->has_alias)
        return true;
    if (e->has_alias && e->alias == m->alias)
        return true;
    if (nd->alias_slots == SPARKPLUG_MAX_ALIASES)
        return false;
    struct sp_entry *old = find_alias(nd, m->alias);
    if (old != NULL)
        old->has_alias = false; /* the alias moves to this metric; its slot goes stale */
    e->has_alias = true;
    e->alias = m->alias;
    uint32_t s = alias_hash(m->alias) & (SP_SLOTS - 1);
    while (nd->by_alias[s] != 0) /* ends: at most half the slots are taken */
        s = (s + 1) & (SP_SLOTS - 1);
    nd->by_alias[s] = (uint16_t)(e - nd->e + 1);
    nd->alias_slots++;
    return true;
}

/* seq bookkeeping for a message of the node that carries one. */
static void track_seq(struct sparkplug_state *st, struct sp_node *nd, const sp_payload *pl,
                      bool birth)
{
    if (nd == NULL || !pl->has_seq)
        return;
    if (pl->seq > 255) {
        st->c.seq_gaps++;
        nd->seq_known = false;
        return;
    }
    uint8_t seq = (uint8_t)pl->seq;
    if (!birth && nd->seq_known && seq != (uint8_t)(nd->seq + 1) && seq != nd->seq)
        st->c.seq_gaps++;
    nd->seq = seq;
    nd->seq_known = true;
}

/* The node's state after a message of type tp->type. */
static struct sp_node *update_state(struct sparkplug_state *st, const struct sp_topic *tp,
                                    const sp_payload *pl)
{
    struct sp_node *nd;
    switch (tp->type) {
    case SP_NDEATH:
        st->c.deaths++;
        nd = find_node(st, tp);
        if (nd != NULL)
            nd->dead = true;
        return nd;
    case SP_NCMD:
    case SP_DCMD: return find_node(st, tp);
    default: break;
    }
    nd = node_slot(st, tp);
    if (nd != NULL)
        nd->last_seen = ++st->clock;
    if (tp->type == SP_NBIRTH && nd != NULL) {
        node_reset_table(nd);
        nd->dead = false;
    }
    if (tp->type == SP_NBIRTH || tp->type == SP_DBIRTH)
        st->c.births++;
    else if (tp->type == SP_DDEATH)
        st->c.deaths++;
    track_seq(st, nd, pl, tp->type == SP_NBIRTH);
    if (tp->type != SP_NBIRTH && tp->type != SP_DBIRTH)
        return nd;
    for (size_t i = 0; i < pl->n_metrics; i++) {
        const sp_metric *m = pl->metrics[i];
        size_t nl = m->name != NULL ? strlen(m->name) : 0;
        if (nl == 0 || nl > DECODE_NAME_MAX || !decode_name_ok(m->name, nl))
            continue;
        if ((nd == NULL || !remember(nd, tp, m, nl)) && m->has_alias) {
            st->c.aliases_full++;
            if (nd != NULL)
                nd->overflow = true;
        }
    }
    return nd;
}

/* --- metrics to events --------------------------------------------------- */

enum sp_kind { K_EVENT, K_NONE, K_NON_NUMERIC, K_NON_FINITE };

/* The value of m by datatype dt (0: told by the value field). */
static enum sp_kind metric_value(const sp_metric *m, uint32_t dt, double *v)
{
    enum { INT8 = 1, INT16, INT32, INT64, DATETIME = 13 };
    if (m->has_is_null && m->is_null)
        return K_NONE;
    switch (m->value_case) {
    case ORG__ECLIPSE__TAHU__PROTOBUF__PAYLOAD__METRIC__VALUE_INT_VALUE:
        *v = dt == INT8    ? (double)(int8_t)(uint8_t)m->int_value
             : dt == INT16 ? (double)(int16_t)(uint16_t)m->int_value
             : dt == INT32 ? (double)(int32_t)m->int_value
                           : (double)m->int_value;
        return K_EVENT;
    case ORG__ECLIPSE__TAHU__PROTOBUF__PAYLOAD__METRIC__VALUE_LONG_VALUE:
        if (dt == DATETIME)
            return K_NON_NUMERIC;
        *v = dt == INT64 ? (double)(int64_t)m->long_value : (double)m->long_value;
        return K_EVENT;
    case ORG__ECLIPSE__TAHU__PROTOBUF__PAYLOAD__METRIC__VALUE_FLOAT_VALUE:
        *v = m->float_value;
        return isfinite(*v) ? K_EVENT : K_NON_FINITE;
    case ORG__ECLIPSE__TAHU__PROTOBUF__PAYLOAD__METRIC__VALUE_DOUBLE_VALUE:
        *v = m->double_value;
        return isfinite(*v) ? K_EVENT : K_NON_FINITE;
    case ORG__ECLIPSE__TAHU__PROTOBUF__PAYLOAD__METRIC__VALUE_BOOLEAN_VALUE:
        *v = m->boolean_value ? 1.0 : 0.0;
        return K_EVENT;
    case ORG__ECLIPSE__TAHU__PROTOBUF__PAYLOAD__METRIC__VALUE__NOT_SET: return K_NONE;
    default: return K_NON_NUMERIC;
    }
}

struct sp_msg {
    struct sparkplug_state *st;
    const struct sp_topic *tp;
    struct sp_node *nd;
    const sp_payload *pl;
    struct decode_result *out;
    char prefix[DECODE_NAME_MAX + 1]; /* <group>/<node>[/<device>][/NCMD|DCMD] */
    size_t prefix_len;
    /* why no metric gave an event, the first of each */
    bool unresolved, non_finite, non_numeric;
    char unresolved_detail[DECODE_DETAIL_MAX];
    char non_finite_name[48];
};

static void prefix_add(struct sp_msg *mm, const char *s, size_t n)
{
    if (mm->prefix_len + 1 + n > DECODE_NAME_MAX) {
        mm->prefix_len = DECODE_NAME_MAX + 1; /* too long: every name will be */
        return;
    }
    if (mm->prefix_len > 0)
        mm->prefix[mm->prefix_len++] = '/';
    memcpy(mm->prefix + mm->prefix_len, s, n);
    mm->prefix_len += n;
}

/* Resolves metric i's name and datatype; false (noted) if its alias does not. */
static bool resolve(struct sp_msg *mm, size_t i, const char **name, size_t *nl, uint32_t *dt)
{
    const sp_metric *m = mm->pl->metrics[i];
    const struct sp_entry *e = NULL;
    if (m->name != NULL) {
        *name = m->name;
        *nl = strlen(m->name);
        if (mm->nd != NULL && !m->has_datatype)
            e = find_key(mm->nd, mm->tp->device, mm->tp->dl, m->name, *nl, NULL);
    } else if (m->has_alias && mm->nd != NULL && (e = find_alias(mm->nd, m->alias)) != NULL) {
        *name = mm->nd->pool + e->key_off + e->name_at;
        *nl = (size_t)(e->key_len - e->name_at);
    } else {
        if (m->has_alias)
            mm->st->c.unknown_alias++;
        if (!mm->unresolved) {
            mm->unresolved = true;
            if (!m->has_alias)
                snprintf(mm->unresolved_detail, sizeof mm->unresolved_detail,
                         "metric %zu has neither name nor alias", i + 1);
            else if (mm->nd == NULL || mm->nd->overflow)
                snprintf(mm->unresolved_detail, sizeof mm->unresolved_detail,
                         "alias %llu: table full", (unsigned long long)m->alias);
            else
                snprintf(mm->unresolved_detail, sizeof mm->unresolved_detail, "unknown alias %llu",
                         (unsigned long long)m->alias);
        }
        return false;
    }
    *dt = m->has_datatype ? m->datatype : e != NULL ? e->datatype : 0;
    return true;
}

/* Metric i as an event, if it is one; a rejection of the message otherwise. */
static enum decode_reason add_metric(struct sp_msg *mm, size_t i, const struct decode_opts *opts,
                                     int64_t recv_ms, bool synced, bool *recv_used)
{
    const sp_metric *m = mm->pl->metrics[i];
    struct decode_result *out = mm->out;
    const char *name;
    size_t nl;
    uint32_t dt;
    double v = 0;
    if (!resolve(mm, i, &name, &nl, &dt))
        return DECODE_OK;
    enum sp_kind kind = metric_value(m, dt, &v);
    if (kind == K_NON_FINITE && !mm->non_finite) {
        mm->non_finite = true;
        snprintf(mm->non_finite_name, sizeof mm->non_finite_name, "%.*s", (int)(nl > 40 ? 40 : nl),
                 name);
    }
    mm->non_numeric = mm->non_numeric || kind == K_NON_NUMERIC;
    if (kind != K_EVENT)
        return DECODE_OK;
    if (out->n_events == DECODE_MAX_FIELDS)
        return fail(out, DECODE_TOO_MANY_FIELDS, "more than %d numeric metrics in the message",
                    DECODE_MAX_FIELDS);
    if (!decode_name_ok(name, nl))
        return fail(out, DECODE_MALFORMED,
                    "metric %zu: name has a control character, '\\', '+' or '#'", i + 1);
    size_t len = mm->prefix_len + 1 + nl;
    if (len > DECODE_NAME_MAX)
        return fail(out, DECODE_MALFORMED, "metric %zu: series name longer than %d bytes", i + 1,
                    DECODE_NAME_MAX);
    int64_t ts = recv_ms;
    bool carried = m->has_timestamp || mm->pl->has_timestamp;
    uint64_t t = m->has_timestamp ? m->timestamp : mm->pl->timestamp;
    if (carried && (t > INT64_MAX || !decode_ts_plausible(opts, (int64_t)t, recv_ms, synced)))
        return fail(out, DECODE_BAD_TIMESTAMP, "metric %zu: timestamp out of range", i + 1);
    if (carried)
        ts = (int64_t)t;
    else
        *recv_used = true;
    char *dst = out->names + out->names_len; /* fits: <= 64 names of <= 255 bytes */
    memcpy(dst, mm->prefix, mm->prefix_len);
    dst[mm->prefix_len] = '/';
    memcpy(dst + mm->prefix_len + 1, name, nl);
    out->ev[out->n_events++] = (struct decode_event){
        .ts_ms = ts, .value = v, .name_off = out->names_len, .name_len = (uint32_t)len};
    out->names_len += (uint32_t)len;
    return DECODE_OK;
}

static enum decode_reason metrics_to_events(struct sp_msg *mm, const struct decode_opts *opts,
                                            int64_t recv_ms, bool synced)
{
    const struct sp_topic *tp = mm->tp;
    struct decode_result *out = mm->out;
    bool recv_used = false;
    prefix_add(mm, tp->group, tp->gl);
    prefix_add(mm, tp->node, tp->nl);
    if (tp->device != NULL)
        prefix_add(mm, tp->device, tp->dl);
    if (tp->type == SP_NCMD || tp->type == SP_DCMD)
        prefix_add(mm, sp_type_names[tp->type], 4);
    for (size_t i = 0; i < mm->pl->n_metrics; i++) {
        enum decode_reason r = add_metric(mm, i, opts, recv_ms, synced, &recv_used);
        if (r != DECODE_OK)
            return r;
    }
    if (out->n_events > 0) {
        out->has_ts = !recv_used;
        return DECODE_OK;
    }
    if (mm->unresolved)
        return fail(out, DECODE_MALFORMED, "%s", mm->unresolved_detail);
    if (mm->non_finite)
        return fail(out, DECODE_NON_FINITE, "metric '%s' is not finite", mm->non_finite_name);
    if (mm->non_numeric)
        return fail(out, DECODE_NON_NUMERIC, "no numeric metric");
    return fail(out, DECODE_NO_VALUE, "no metric with a value");
}

/* STATE/<host_id>: {"online": true, "timestamp": ms} or ONLINE/OFFLINE. */
static enum decode_reason decode_state(struct sparkplug_state *st, const struct decode_opts *opts,
                                       const struct sp_topic *tp, const char *payload, size_t len,
                                       int64_t recv_ms, bool synced, struct decode_result *out)
{
    struct decode_opts o = *opts;
    o.value_field = "online";
    o.ts_field = "timestamp";
    o.fields_all = false;
    o.words = &st->state_words;
    enum decode_reason r = decode_payload(&o, payload, len, recv_ms, synced, out);
    if (r != DECODE_OK)
        return r;
    int n = snprintf(out->names, DECODE_NAME_MAX + 1, "STATE/%.*s/online", (int)tp->nl, tp->node);
    if (n < 0 || n > DECODE_NAME_MAX)
        return fail(out, DECODE_MALFORMED, "series name longer than %d bytes", DECODE_NAME_MAX);
    out->names_len = (uint32_t)n;
    out->ev[0].name_off = 0;
    out->ev[0].name_len = (uint32_t)n;
    out->ev[0].name_topic = false;
    return DECODE_OK;
}

/* --- the API ----------------------------------------------------------- */

el_status sparkplug_new(struct sparkplug_state **out)
{
    if (out == NULL)
        return EL_INVAL;
    *out = NULL;
    struct sparkplug_state *st = calloc(1, sizeof *st);
    if (st == NULL)
        return EL_NOMEM;
    char err[64];
    if (!decode_words_parse("ONLINE=1,OFFLINE=0", &st->state_words, err, sizeof err)) {
        free(st);
        return EL_INVAL;
    }
    *out = st;
    return EL_OK;
}

void sparkplug_free(struct sparkplug_state *st)
{
    free(st);
}

void sparkplug_counters(const struct sparkplug_state *st, struct sparkplug_counters *out)
{
    static const struct sparkplug_counters zero;
    *out = st != NULL ? st->c : zero;
}

enum decode_reason decode_sparkplug(struct sparkplug_state *st, const struct decode_opts *opts,
                                    const char *topic, size_t topic_len, const char *payload,
                                    size_t len, int64_t recv_wall_ms, bool clock_synced,
                                    struct decode_result *out)
{
    struct decode_opts defaults;
    if (opts == NULL) {
        decode_opts_default(&defaults);
        opts = &defaults;
    }
    if (out == NULL)
        return DECODE_MALFORMED;
    out->has_ts = false;
    out->n_events = 0;
    out->names_len = 0;
    out->detail[0] = '\0';
    if (st == NULL || topic == NULL || (payload == NULL && len > 0))
        return DECODE_MALFORMED;
    if (len > opts->max_payload)
        return DECODE_OVERSIZED;
    struct sp_topic tp;
    if (!parse_topic(topic, topic_len, &tp))
        return fail(out, DECODE_MALFORMED, "topic is not spBv1.0/<group>/<type>/<node>[/<device>]");
    if (tp.state)
        return decode_state(st, opts, &tp, payload, len, recv_wall_ms, clock_synced, out);
    if (len > SPARKPLUG_ARENA)
        return fail(out, DECODE_OVERSIZED, "larger than the %u-byte arena", SPARKPLUG_ARENA);
    const uint8_t *bytes = (const uint8_t *)(payload != NULL ? payload : "");
    if (!depth_ok(&SP_PAYLOAD_DESC, bytes, len, 0))
        return fail(out, DECODE_MALFORMED, "nested deeper than %d messages", SPARKPLUG_MAX_DEPTH);
    ProtobufCAllocator alloc = {.alloc = arena_alloc, .free = arena_free, .allocator_data = st};
    st->arena_used = 0;
    st->arena_exhausted = false;
    sp_payload *pl = org__eclipse__tahu__protobuf__payload__unpack(&alloc, len, bytes);
    if (pl == NULL) {
        if (st->arena_exhausted)
            return fail(out, DECODE_OVERSIZED, "unpacked, larger than the %u-byte arena",
                        SPARKPLUG_ARENA);
        return fail(out, DECODE_MALFORMED, "not a Sparkplug B payload");
    }
    static struct sp_msg zero;
    struct sp_msg mm = zero;
    mm.st = st;
    mm.tp = &tp;
    mm.pl = pl;
    mm.out = out;
    mm.nd = update_state(st, &tp, pl);
    return metrics_to_events(&mm, opts, recv_wall_ms, clock_synced);
}
