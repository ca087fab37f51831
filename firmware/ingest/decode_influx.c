/*
 * decode_influx — InfluxDB line protocol (grammar, naming and bounds in
 * decode_influx.h).
 *
 * Design: one pass over the bytes with a cursor (struct lp); a line is
 * parsed in place: the measurement and tag values are unescaped straight
 * into a prefix buffer on the stack, each numeric field appends its key and
 * copies prefix/key into decode_result.names. Numbers are copied into a
 * bounded stack buffer for strtod/strtoll/strtoull (the payload is not
 * NUL-terminated); strtod uses LC_NUMERIC, which the daemon keeps "C".
 * The first error stops the message: its reason, and "line N: what" in
 * out->detail.
 *
 * Threading: pure; any thread; reentrant.
 */
#include "decode_influx.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LP_NUM_MAX 64

struct lp {
    const char *p;
    size_t n, i;
    uint32_t line;
    enum decode_reason reason;
    struct decode_result *out;
    char prefix[DECODE_NAME_MAX + 1]; /* measurement[/tag value...] */
    size_t prefix_len;
    int ts_seen; /* -1 unknown, 0 lines without, 1 lines with a timestamp */
};

static bool fail(struct lp *lp, enum decode_reason reason, const char *what)
{
    lp->reason = reason;
    snprintf(lp->out->detail, sizeof lp->out->detail, "line %u: %s", lp->line, what);
    return false;
}

static bool at_end_of_line(const struct lp *lp)
{
    return lp->i >= lp->n || lp->p[lp->i] == '\n' ||
           (lp->p[lp->i] == '\r' && (lp->i + 1 >= lp->n || lp->p[lp->i + 1] == '\n'));
}

/* Reads a measurement, tag key/value or field key up to an unescaped
 * delimiter in stops, unescaping "\," "\ " "\=", into dst (cap bytes);
 * *dn is its length. Empty, too long, or cut by the line's end: false. */
static bool read_name(struct lp *lp, const char *stops, char *dst, size_t cap, size_t *dn,
                      const char *what)
{
    size_t k = 0;
    while (lp->i < lp->n && !at_end_of_line(lp) && strchr(stops, lp->p[lp->i]) == NULL) {
        char c = lp->p[lp->i++];
        if (c == '\\' && lp->i < lp->n &&
            (lp->p[lp->i] == ',' || lp->p[lp->i] == ' ' || lp->p[lp->i] == '='))
            c = lp->p[lp->i++];
        if (k == cap)
            return fail(lp, DECODE_MALFORMED, "series name longer than 255 bytes");
        dst[k++] = c;
    }
    if (k == 0 || at_end_of_line(lp)) {
        char msg[48];
        snprintf(msg, sizeof msg, "expected %s", what);
        return fail(lp, DECODE_MALFORMED, msg);
    }
    *dn = k;
    return true;
}

/* Appends "/" (unless first) and a level to the prefix, checking it. */
static bool prefix_add(struct lp *lp, const char *s, size_t n, bool first)
{
    if (!decode_name_ok(s, n))
        return fail(lp, DECODE_MALFORMED, "name has a control character, '\\', '+' or '#'");
    if (lp->prefix_len + (first ? 0 : 1) + n > DECODE_NAME_MAX)
        return fail(lp, DECODE_MALFORMED, "series name longer than 255 bytes");
    if (!first)
        lp->prefix[lp->prefix_len++] = '/';
    memcpy(lp->prefix + lp->prefix_len, s, n);
    lp->prefix_len += n;
    return true;
}

static void skip_spaces(struct lp *lp)
{
    while (lp->i < lp->n && lp->p[lp->i] == ' ')
        lp->i++;
}

/* measurement[,k=v...] then the spaces before the fields. */
static bool read_series(struct lp *lp)
{
    char buf[DECODE_NAME_MAX + 1];
    size_t n;
    lp->prefix_len = 0;
    if (!read_name(lp, ", ", buf, sizeof buf - 1, &n, "measurement") ||
        !prefix_add(lp, buf, n, true))
        return false;
    while (lp->p[lp->i] == ',') {
        lp->i++;
        if (!read_name(lp, ",= ", buf, sizeof buf - 1, &n, "tag key"))
            return false;
        if (lp->p[lp->i] != '=')
            return fail(lp, DECODE_MALFORMED, "expected '=' after tag key");
        lp->i++;
        if (!read_name(lp, ", ", buf, sizeof buf - 1, &n, "tag value") ||
            !prefix_add(lp, buf, n, false))
            return false;
    }
    skip_spaces(lp);
    if (at_end_of_line(lp))
        return fail(lp, DECODE_MALFORMED, "expected fields");
    return true;
}

/* Copies number text [start, end) into buf (NUL-terminated); false if long. */
static bool num_text(const struct lp *lp, size_t start, size_t end, char *buf)
{
    if (end - start >= LP_NUM_MAX)
        return false;
    memcpy(buf, lp->p + start, end - start);
    buf[end - start] = '\0';
    return true;
}

static bool float_syntax_ok(const char *s)
{
    size_t i = s[0] == '-' ? 1 : 0, digits = 0;
    while (s[i] >= '0' && s[i] <= '9')
        i++, digits++;
    if (s[i] == '.') {
        i++;
        while (s[i] >= '0' && s[i] <= '9')
            i++, digits++;
    }
    if (digits == 0)
        return false;
    if (s[i] == 'e' || s[i] == 'E') {
        i++;
        if (s[i] == '+' || s[i] == '-')
            i++;
        if (s[i] < '0' || s[i] > '9')
            return false;
        while (s[i] >= '0' && s[i] <= '9')
            i++;
    }
    return s[i] == '\0';
}

/* A number field value "[start, end)": float, "12i" or "12u". */
static bool parse_number(struct lp *lp, size_t start, size_t end, double *out)
{
    char buf[LP_NUM_MAX];
    if (!num_text(lp, start, end, buf))
        return fail(lp, DECODE_MALFORMED, "number too long");
    size_t len = end - start;
    char suffix = buf[len - 1];
    char *stop = NULL;
    errno = 0;
    if (suffix == 'i' || suffix == 'u') {
        buf[len - 1] = '\0';
        bool digits = len > 1 && buf[len - 2] >= '0' && buf[len - 2] <= '9' &&
                      ((buf[0] >= '0' && buf[0] <= '9') || (suffix == 'i' && buf[0] == '-'));
        if (suffix == 'i')
            *out = (double)strtoll(buf, &stop, 10);
        else
            *out = (double)strtoull(buf, &stop, 10);
        if (!digits || *stop != '\0')
            return fail(lp, DECODE_MALFORMED, "bad integer field value");
        if (errno == ERANGE)
            return fail(lp, DECODE_MALFORMED, "integer field value out of range");
        return true;
    }
    if (!float_syntax_ok(buf))
        return fail(lp, DECODE_MALFORMED, "expected field value");
    *out = strtod(buf, &stop);
    if (!isfinite(*out))
        return fail(lp, DECODE_NON_FINITE, "field value out of range");
    return true;
}

/* t T true True TRUE f F false False FALSE. */
static bool bool_word(const char *s, size_t n, double *out)
{
    static const char *const words[] = {"t", "T", "true",  "True",  "TRUE",
                                        "f", "F", "false", "False", "FALSE"};
    for (size_t k = 0; k < sizeof words / sizeof words[0]; k++) {
        if (strlen(words[k]) == n && memcmp(words[k], s, n) == 0) {
            *out = k < 5 ? 1.0 : 0.0;
            return true;
        }
    }
    return false;
}

/* Skips a quoted string field value (the cursor is on its opening quote). */
static bool skip_string(struct lp *lp)
{
    for (lp->i++; lp->i < lp->n && lp->p[lp->i] != '\n'; lp->i++) {
        if (lp->p[lp->i] == '\\' && lp->i + 1 < lp->n && lp->p[lp->i + 1] != '\n')
            lp->i++;
        else if (lp->p[lp->i] == '"') {
            lp->i++;
            return true;
        }
    }
    return fail(lp, DECODE_MALFORMED, "unterminated string field value");
}

/* One field value; *numeric false for a string. */
static bool read_value(struct lp *lp, double *out, bool *numeric)
{
    *numeric = false;
    if (lp->i < lp->n && lp->p[lp->i] == '"')
        return skip_string(lp);
    size_t start = lp->i;
    while (lp->i < lp->n && !at_end_of_line(lp) && lp->p[lp->i] != ',' && lp->p[lp->i] != ' ')
        lp->i++;
    if (lp->i == start)
        return fail(lp, DECODE_MALFORMED, "expected field value");
    *numeric = true;
    if (bool_word(lp->p + start, lp->i - start, out))
        return true;
    return parse_number(lp, start, lp->i, out);
}

/* Adds one event named prefix/key. */
static bool add_event(struct lp *lp, const char *key, size_t kn, double value)
{
    struct decode_result *out = lp->out;
    if (out->n_events == DECODE_MAX_FIELDS)
        return fail(lp, DECODE_TOO_MANY_FIELDS, "more than 64 numeric fields in the message");
    if (!decode_name_ok(key, kn))
        return fail(lp, DECODE_MALFORMED, "name has a control character, '\\', '+' or '#'");
    size_t len = lp->prefix_len + 1 + kn;
    if (len > DECODE_NAME_MAX)
        return fail(lp, DECODE_MALFORMED, "series name longer than 255 bytes");
    char *dst = out->names + out->names_len; /* fits: <= 64 names of <= 256 bytes */
    memcpy(dst, lp->prefix, lp->prefix_len);
    dst[lp->prefix_len] = '/';
    memcpy(dst + lp->prefix_len + 1, key, kn);
    out->ev[out->n_events++] = (struct decode_event){
        .value = value, .name_off = out->names_len, .name_len = (uint32_t)len};
    out->names_len += (uint32_t)len;
    return true;
}

/* field=value[,field=value...]: an event per numeric field. */
static bool read_fields(struct lp *lp)
{
    bool any_numeric = false;
    for (;;) {
        char key[DECODE_NAME_MAX + 1];
        size_t kn;
        double v = 0;
        bool numeric;
        if (!read_name(lp, ",= ", key, sizeof key - 1, &kn, "field key"))
            return false;
        if (lp->p[lp->i] != '=')
            return fail(lp, DECODE_MALFORMED, "expected '=' after field key");
        lp->i++;
        if (!read_value(lp, &v, &numeric))
            return false;
        if (numeric && !add_event(lp, key, kn, v))
            return false;
        any_numeric = any_numeric || numeric;
        if (lp->i >= lp->n || lp->p[lp->i] != ',')
            break;
        lp->i++;
    }
    if (!any_numeric)
        return fail(lp, DECODE_NON_NUMERIC, "no numeric field");
    return true;
}

/* floor(t * unit) in ms, exact integer arithmetic. */
static bool ts_to_ms(int64_t t, enum decode_precision prec, int64_t *ms)
{
    int64_t div = prec == DECODE_PREC_NS ? 1000000 : prec == DECODE_PREC_US ? 1000 : 1;
    if (prec == DECODE_PREC_S) {
        if (t > INT64_MAX / 1000 || t < INT64_MIN / 1000)
            return false;
        *ms = t * 1000;
        return true;
    }
    *ms = t / div - (t % div < 0 ? 1 : 0);
    return true;
}

/* The optional timestamp, then the end of the line. */
static bool read_timestamp(struct lp *lp, enum decode_precision prec, int64_t *ms, bool *has)
{
    skip_spaces(lp);
    *has = !at_end_of_line(lp);
    if (!*has)
        return true;
    size_t start = lp->i;
    while (lp->i < lp->n && !at_end_of_line(lp) && lp->p[lp->i] != ' ')
        lp->i++;
    char buf[LP_NUM_MAX], *stop = NULL;
    bool ok =
        num_text(lp, start, lp->i, buf) && (buf[0] == '-' || (buf[0] >= '0' && buf[0] <= '9'));
    errno = 0;
    int64_t t = ok ? strtoll(buf, &stop, 10) : 0;
    if (!ok || *stop != '\0' || errno == ERANGE || !ts_to_ms(t, prec, ms))
        return fail(lp, DECODE_BAD_TIMESTAMP, "bad timestamp");
    skip_spaces(lp);
    if (!at_end_of_line(lp))
        return fail(lp, DECODE_MALFORMED, "unexpected text after the timestamp");
    return true;
}

/* One non-blank line: its events get its time (or recv). */
static bool read_line(struct lp *lp, enum decode_precision prec, int64_t recv_ms)
{
    uint32_t first = lp->out->n_events;
    int64_t ts_ms = recv_ms;
    bool has;
    if (!read_series(lp) || !read_fields(lp) || !read_timestamp(lp, prec, &ts_ms, &has))
        return false;
    if (lp->ts_seen >= 0 && lp->ts_seen != (int)has)
        return fail(lp, DECODE_MALFORMED, "lines with and without a timestamp");
    lp->ts_seen = has;
    for (uint32_t k = first; k < lp->out->n_events; k++)
        lp->out->ev[k].ts_ms = ts_ms;
    return true;
}

/* Every line of the payload. */
static bool read_lines(struct lp *lp, const struct decode_opts *opts, enum decode_precision prec,
                       int64_t recv_ms, bool synced)
{
    while (lp->i < lp->n) {
        lp->line++;
        skip_spaces(lp);
        if (!at_end_of_line(lp) && lp->p[lp->i] != '#') {
            uint32_t first = lp->out->n_events;
            if (!read_line(lp, prec, recv_ms))
                return false;
            if (lp->ts_seen == 1 &&
                !decode_ts_plausible(opts, lp->out->ev[first].ts_ms, recv_ms, synced))
                return fail(lp, DECODE_BAD_TIMESTAMP, "timestamp out of range");
        }
        while (lp->i < lp->n && lp->p[lp->i] != '\n') /* a comment, or "\r" */
            lp->i++;
        lp->i++; /* past '\n' (or the end) */
    }
    if (lp->out->n_events == 0) {
        lp->reason = DECODE_NO_VALUE;
        snprintf(lp->out->detail, sizeof lp->out->detail, "no line");
        return false;
    }
    return true;
}

enum decode_reason decode_influx(const struct decode_opts *opts, enum decode_precision precision,
                                 const char *payload, size_t len, int64_t recv_wall_ms,
                                 bool clock_synced, struct decode_result *out)
{
    struct decode_opts effective;
    enum decode_reason begin = decode_begin(opts, len, &effective, out);
    if (begin != DECODE_OK)
        return begin;
    opts = &effective;
    if (payload == NULL || memchr(payload, '\0', len) != NULL)
        return DECODE_MALFORMED;
    struct lp lp = {.p = payload, .n = len, .out = out, .ts_seen = -1, .reason = DECODE_OK};
    if (!read_lines(&lp, opts, precision, recv_wall_ms, clock_synced)) {
        out->n_events = 0;
        out->names_len = 0;
        return lp.reason;
    }
    out->has_ts = lp.ts_seen == 1;
    return DECODE_OK;
}
