/* options — configuration to module options (see options.h). */
#include "options.h"

#include <stdio.h>
#include <string.h>

static void options_conn(const struct el_config *cfg, struct mqtt_conn_opts *o)
{
    *o = (struct mqtt_conn_opts){
        .uri = cfg->mqtt.uri,
        .client_id = cfg->mqtt.client_id,
        .username = cfg->mqtt.username,
        .password_file = cfg->mqtt.password_file,
        .topic_prefix = cfg->mqtt.topic_prefix,
        .ca_file = cfg->mqtt.ca_file,
        .cert_file = cfg->mqtt.cert_file,
        .key_file = cfg->mqtt.key_file,
        .keepalive_s = cfg->mqtt.keepalive_s,
        .session_expiry_s = cfg->mqtt.session_expiry_s,
        .tcp_nodelay = cfg->mqtt.tcp_nodelay,
    };
}

/* The configured subscription filters, at most INGEST_MAX_FILTERS. */
static int filter_count(const struct el_config *cfg)
{
    return cfg->ingest.n_filters < INGEST_MAX_FILTERS ? cfg->ingest.n_filters : INGEST_MAX_FILTERS;
}

_Static_assert(EL_CFG_MAX_DECODE <= INGEST_MAX_DECODERS, "every decode section reaches ingest");

static void options_decoders(const struct el_config *cfg, struct ingest_decoder decoders[],
                             struct ingest_opts *o)
{
    int n = cfg->decode.n < INGEST_MAX_DECODERS ? cfg->decode.n : INGEST_MAX_DECODERS;
    for (int i = 0; i < n; i++) {
        const struct el_decode_rule *r = &cfg->decode.rule[i];
        decoders[i] = (struct ingest_decoder){
            .filter = r->filter,
            .format = (enum decode_format)r->format,
            .precision = (enum decode_precision)r->precision,
            .value_field = r->value,
            .ts_field = r->time,
            .time_unit = (enum decode_time_unit)r->time_unit,
            .fields_all = r->fields == 2 ? -1 : r->fields,
            .flatten = r->flatten,
            .keep_fields = r->keep_fields,
            .drop_fields = r->drop_fields,
        };
    }
    o->decoders = decoders;
    o->n_decoders = n;
}

void options_ingest(const struct el_config *cfg, const char *filters[],
                    struct ingest_decoder decoders[], struct ingest_opts *o)
{
    memset(o, 0, sizeof *o);
    options_conn(cfg, &o->conn);
    o->max_inflight = cfg->mqtt.max_inflight;
    o->n_filters = filter_count(cfg);
    for (int i = 0; i < o->n_filters; i++)
        filters[i] = cfg->ingest.filters[i];
    o->filters = filters;
    o->qos = cfg->ingest.qos;
    o->value_field = cfg->ingest.value_field;
    o->ts_field = cfg->ingest.ts_field;
    o->fields_all = cfg->ingest.fields_all;
    o->state_words = cfg->ingest.state_words;
    o->max_payload = cfg->ingest.max_payload;
    o->max_future_s = cfg->ingest.max_future_s;
    o->dir = cfg->storage.dir;
    options_decoders(cfg, decoders, o);
}

void options_control(const struct el_config *cfg, const char *const filters[],
                     struct control_opts *o)
{
    memset(o, 0, sizeof *o);
    options_conn(cfg, &o->conn);
    o->filters = filters;
    o->n_filters = filter_count(cfg);
}

void options_batch(const struct el_config *cfg, struct batch_opts *o)
{
    o->dir = cfg->storage.dir;
    o->idle_cpu_pct = cfg->batch.idle_cpu_pct;
    o->idle_ingest_rate = cfg->batch.idle_ingest_rate;
    o->idle_for_s = cfg->batch.idle_for_s;
    o->schedule = cfg->batch.schedule;
    o->max_lag_s = cfg->batch.max_lag_s;
}

void options_journal(const struct el_config *cfg, struct journal_opts *o)
{
    o->dir = cfg->storage.dir;
    o->segment_bytes = (size_t)cfg->storage.journal_segment_bytes;
    o->segments = (uint32_t)cfg->storage.journal_segments;
    o->strict = cfg->storage.durability == EL_DURABILITY_STRICT;
}

void options_mlog(const struct el_config *cfg, struct mlog_opts *o)
{
    o->dir = cfg->storage.dir;
    o->max_series = (uint32_t)cfg->speed.max_series;
    o->max_db_bytes = cfg->storage.hard_max_bytes;
    if (o->max_db_bytes == 0 && cfg->storage.max_bytes > 0) {
        int64_t reserve = cfg->storage.max_bytes / 4;
        o->max_db_bytes = cfg->storage.max_bytes + (reserve > (4 << 20) ? reserve : (4 << 20));
    }
}

void options_requests(const struct el_config *cfg, const struct requests_commands *commands,
                      struct requests_opts *o)
{
    o->serve.dir = cfg->storage.dir;
    o->serve.max_series = (uint32_t)cfg->speed.max_series;
    o->serve.deadline_ms = cfg->query.deadline_ms;
    o->serve.max_rows = (uint64_t)cfg->query.max_rows;
    o->serve.max_cells = (uint32_t)cfg->query.max_cells;
    o->serve.max_values = (uint32_t)cfg->query.max_values;
    o->serve.max_sketch_bins = (uint32_t)cfg->query.max_sketch_bins;
    o->serve.max_match = (uint32_t)cfg->query.max_match;
    o->commands = *commands;
    o->continuous.max_msgs_per_s = cfg->continuous.max_msgs_per_s;
    o->continuous.max_watches = cfg->continuous.max_watches;
    o->continuous.max_cells = (uint32_t)cfg->continuous.max_cells;
    o->continuous.n_defs = options_continuous(cfg, o->cq_defs);
    o->continuous.defs = o->cq_defs;
}

/* A duration config has checked (check_duration). */
static int64_t duration_ms(const char *s)
{
    int64_t ms = 0;
    return query_parse_duration(s, strlen(s), &ms) ? ms : 1000;
}

int options_continuous(const struct el_config *cfg, struct cq_def *defs)
{
    char err[200];
    int n = 0;
    for (int i = 0; i < cfg->continuous.n && i < CONTINUOUS_MAX_DEFS; i++) {
        const struct el_continuous_def *e = &cfg->continuous.def[i];
        struct cq_def *d = &defs[n];
        memset(d, 0, sizeof *d);
        snprintf(d->name, sizeof d->name, "%.63s", e->name);
        snprintf(d->match, sizeof d->match, "%s", e->match);
        if (!query_parse_agg_list(e->agg, &d->tmpl, err, sizeof err))
            continue; /* config checked it */
        d->tm.step_ms = duration_ms(e->step);
        d->tm.grace_ms = duration_ms(e->grace);
        d->tm.lateness_ms = duration_ms(e->max_lateness);
        d->tmpl.step_ms = d->tm.step_ms;
        if (e->topic[0])
            snprintf(d->topic, sizeof d->topic, "%s", e->topic);
        else
            snprintf(d->topic, sizeof d->topic, "%.150s/continuous/%.63s", cfg->mqtt.topic_prefix,
                     e->name);
        d->qos = e->qos;
        d->retain = e->retain;
        n++;
    }
    return n;
}

/* The sync worker's options: config's enums mapped to sync's own; the
 * strings are borrowed (sync_new copies them). */
void options_sync(const struct el_config *cfg, struct sync_opts *o)
{
    _Static_assert(EL_CFG_PATH <= SYNC_URL_MAX && EL_CFG_PATH <= SYNC_PATH_MAX &&
                       EL_CFG_STR <= SYNC_DEVICE_ID_MAX,
                   "configured strings fit sync's limits");
    *o = (struct sync_opts){
        .url = cfg->sync.url,
        .dir = cfg->storage.dir,
        .format = cfg->sync.format == EL_SYNC_INFLUX ? SYNC_INFLUX : SYNC_NDJSON,
        .compression = cfg->sync.compression == EL_COMPRESS_GZIP   ? SYNC_COMPRESS_GZIP
                       : cfg->sync.compression == EL_COMPRESS_ZSTD ? SYNC_COMPRESS_ZSTD
                                                                   : SYNC_COMPRESS_NONE,
        .batch_events = cfg->sync.batch_events,
        .batch_bytes = cfg->sync.batch_bytes,
        .ca_file = cfg->sync.ca_file,
        .cert_file = cfg->sync.cert_file,
        .key_file = cfg->sync.key_file,
        .token_file = cfg->sync.token_file,
        .device_id = cfg->sync.device_id,
        .insecure = cfg->sync.insecure,
        .include_seq = cfg->sync.include_seq,
        .timeout_s = cfg->sync.timeout_s,
        .live_window_s = cfg->sync.live_window_s,
        .max_kbps = cfg->sync.max_kbps,
    };
}
