/*
 * status_summary — `edgelambda status` for a person: problems first, then one
 * line per part of the daemon (rates, ages, sizes in KiB/MiB), from the
 * status document (docs/SPEC.md §7). `--json` prints the document as it came
 * for scripts.
 *
 * Design: reads members by dotted path with plat_json; a member the document
 * lacks (an older daemon, sync off) leaves its part out rather than printing
 * zeros. Problems are the states an operator must act on: offline, ingest
 * held, a storage or sync error, parked batches, a clock not synchronised
 * with readings waiting, dead letters, messages the broker dropped, the
 * control connection down.
 *
 * Threading: main thread only.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* Token of the member at a dotted path below the document's root, or -1. */
static int at(const struct plat_json *d, const char *path)
{
    char key[64];
    int i = 0;
    for (const char *p = path; i >= 0 && *p;) {
        size_t n = strcspn(p, ".");
        if (n >= sizeof key)
            return -1;
        memcpy(key, p, n);
        key[n] = '\0';
        i = plat_json_member(d, i, key);
        p += n + (p[n] == '.');
    }
    return i;
}

static bool num(const struct plat_json *d, const char *path, double *out)
{
    int i = at(d, path);
    return i >= 0 && plat_json_double(d, i, out) == EL_OK;
}

static bool flag(const struct plat_json *d, const char *path)
{
    bool b = false;
    int i = at(d, path);
    return i >= 0 && plat_json_bool(d, i, &b) == EL_OK && b;
}

static bool text(const struct plat_json *d, const char *path, char *out, size_t cap)
{
    int i = at(d, path);
    out[0] = '\0';
    return i >= 0 && !plat_json_is_null(d, i) &&
           plat_json_string(d, i, out, cap, NULL) != EL_INVAL && out[0];
}

/* 1234567 -> "1,234,567" */
static const char *count(double v, char *buf, size_t cap)
{
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%.0f", v), o = 0;
    for (int k = 0; k < n && (size_t)o + 2 < cap; k++) {
        if (k > 0 && digits[k - 1] != '-' && (n - k) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = digits[k];
    }
    buf[o] = '\0';
    return buf;
}

static const char *bytes(double v, char *buf, size_t cap)
{
    if (v >= 1024.0 * 1024 * 1024)
        snprintf(buf, cap, "%.1f GiB", v / (1024.0 * 1024 * 1024));
    else if (v >= 1024.0 * 1024)
        snprintf(buf, cap, "%.1f MiB", v / (1024.0 * 1024));
    else if (v >= 1024.0)
        snprintf(buf, cap, "%.1f KiB", v / 1024.0);
    else
        snprintf(buf, cap, "%.0f B", v);
    return buf;
}

static const char *duration(double s, char *buf, size_t cap)
{
    if (s >= 86400)
        snprintf(buf, cap, "%.0fd %.0fh", s / 86400 - 0.5, (double)((int64_t)s % 86400 / 3600));
    else if (s >= 3600)
        snprintf(buf, cap, "%.0fh %.0fm", (double)((int64_t)s / 3600),
                 (double)((int64_t)s % 3600 / 60));
    else if (s >= 60)
        snprintf(buf, cap, "%.0fm %.0fs", (double)((int64_t)s / 60), (double)((int64_t)s % 60));
    else
        snprintf(buf, cap, "%.0fs", s);
    return buf;
}

/* "malformed 3, non_finite 7" of the non-zero counters of an object. */
static void nonzero(const struct plat_json *d, const char *path, char *out, size_t cap)
{
    int o = at(d, path);
    size_t n = 0;
    out[0] = '\0';
    for (int k = o >= 0 ? plat_json_first(d, o) : -1; k >= 0; k = plat_json_next(d, o, k)) {
        double v = 0;
        char key[48];
        if (plat_json_double(d, k + 1, &v) != EL_OK || v == 0 ||
            plat_json_string(d, k, key, sizeof key, NULL) == EL_INVAL)
            continue;
        int w = snprintf(out + n, cap - n, "%s%s %.0f", n ? ", " : "", key, v);
        if (w < 0 || (size_t)w >= cap - n)
            break;
        n += (size_t)w;
    }
}

static void problems(const struct plat_json *d, FILE *out)
{
    char t[256], r[256], a[32];
    double v;
    int n = 0;
#define PROBLEM(...) (fprintf(out, "! " __VA_ARGS__), n++)
    if (text(d, "state", t, sizeof t) && strcmp(t, "online") != 0)
        PROBLEM("the daemon is %s\n", t);
    if (flag(d, "ingest.held"))
        PROBLEM("ingest is held: nothing is acknowledged until the journal has room\n");
    if (text(d, "log.error", t, sizeof t))
        PROBLEM("storage: %s\n", t);
    if (flag(d, "log.full"))
        PROBLEM("the master log is at storage.max_bytes and nothing may be removed\n");
    if (text(d, "sync.last_error", t, sizeof t))
        PROBLEM("sync: %s\n", t);
    if (num(d, "sync.parked_batches", &v) && v > 0)
        PROBLEM("sync: %s batches parked (edgelambda sync --retry-parked)\n",
                count(v, a, sizeof a));
    if (num(d, "clock.unanchored_events", &v) && v > 0)
        PROBLEM("clock: %s readings wait for a synchronised clock%s%s\n", count(v, a, sizeof a),
                text(d, "clock.waiting", t, sizeof t) ? ": " : "", t);
    if (num(d, "ingest.dead_letters", &v) && v > 0) {
        nonzero(d, "ingest.rejected", r, sizeof r);
        PROBLEM("%s dead letters (%s): edgelambda deadletters\n", count(v, a, sizeof a), r);
    }
    if (num(d, "mqtt.broker_dropped", &v) && v > 0)
        PROBLEM("the broker dropped %s messages (its max_queued_messages)\n",
                count(v, a, sizeof a));
    if (at(d, "mqtt.control_connected") >= 0 && !flag(d, "mqtt.control_connected"))
        PROBLEM("the control connection is down: queries are not answered\n");
    if (!flag(d, "mqtt.connected"))
        PROBLEM("not connected to the broker\n");
#undef PROBLEM
    if (n)
        fputc('\n', out);
}

void cli_print_status_summary(const struct plat_json *d, FILE *out)
{
    char t[256], a[32], b[32], c[32], e[32];
    double v = 0, w = 0, x = 0, y = 0;
    problems(d, out);
    text(d, "version", t, sizeof t);
    num(d, "uptime_s", &v);
    char state[32];
    text(d, "state", state, sizeof state);
    fprintf(out, "edgelambdad %s  %s, up %s\n", t, state, duration(v, a, sizeof a));
    if (num(d, "ingest.rate_per_s", &v) && num(d, "ingest.accepted", &w)) {
        num(d, "ingest.dead_letters", &x);
        num(d, "ingest.duplicates", &y);
        fprintf(out, "ingest   %.1f events/s, %s accepted, %s dead letters, %s duplicates\n", v,
                count(w, a, sizeof a), count(x, b, sizeof b), count(y, c, sizeof c));
    }
    if (num(d, "log.seq", &v) && num(d, "log.bytes", &w)) {
        num(d, "log.journal_bytes", &x);
        num(d, "log.commit_ms_max", &y);
        fprintf(out, "log      seq %s, %s, journal %s, longest commit %.0f ms\n",
                count(v, a, sizeof a), bytes(w, b, sizeof b), bytes(x, c, sizeof c), y);
    }
    if (num(d, "storage.total_bytes", &v) && num(d, "storage.raw_events", &w)) {
        char since[40], bound[48] = "";
        text(d, "storage.raw_oldest", since, sizeof since);
        if (num(d, "storage.max_bytes", &x))
            snprintf(bound, sizeof bound, " of %s", bytes(x, c, sizeof c));
        fprintf(out, "storage  %s%s: raw %s events%s%.10s", bytes(v, a, sizeof a), bound,
                count(w, b, sizeof b), since[0] ? " since " : "", since);
        if (num(d, "storage.view_1m_rows", &x) && num(d, "storage.view_1h_rows", &y) &&
            num(d, "storage.view_1d_rows", &w))
            fprintf(out, "; views 1 min %s, 1 h %s, 1 d %s rows", count(x, a, sizeof a),
                    count(y, b, sizeof b), count(w, e, sizeof e));
        fputc('\n', out);
    }
    if (num(d, "speed.series", &v) && num(d, "speed.memory_bytes", &w))
        fprintf(out, "speed    %s series, %s of rings\n", count(v, a, sizeof a),
                bytes(w, b, sizeof b));
    if (num(d, "queries.received", &v) && num(d, "queries.answered", &w)) {
        num(d, "queries.busy_at_intake", &x);
        fprintf(out, "queries  %s received, %s answered, %s busy\n", count(v, a, sizeof a),
                count(w, b, sizeof b), count(x, c, sizeof c));
    }
    if (num(d, "batch.watermark_seq", &v)) {
        num(d, "batch.runs", &w);
        text(d, "batch.last_run", t, sizeof t);
        fprintf(out, "batch    views up to seq %s, %s runs%s%s%s\n", count(v, a, sizeof a),
                count(w, b, sizeof b), t[0] ? ", last " : "", t,
                flag(d, "batch.running") ? " (running)" : "");
    }
    if (flag(d, "sync.enabled") && num(d, "sync.acked_seq", &v)) {
        num(d, "sync.backlog_events", &w);
        fprintf(out, "sync     shipped up to seq %s, backlog %s events\n", count(v, a, sizeof a),
                count(w, b, sizeof b));
    } else if (at(d, "sync.enabled") >= 0) {
        fprintf(out, "sync     off\n");
    }
    text(d, "clock.source", t, sizeof t);
    num(d, "clock.steps", &v);
    fprintf(out, "clock    %s (%s), %s steps seen\n",
            flag(d, "clock_synced") ? "synchronised" : "NOT synchronised", t[0] ? t : "?",
            count(v, e, sizeof e));
}
