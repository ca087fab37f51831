/* sync_http — libcurl transport of upstream batches (see sync_http.h). */
#include "sync_http.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "plat_file.h"
#include "plat_log.h"
#include "sync_encode.h"

#define CONNECT_TIMEOUT_MAX_S 10

struct sync_http {
    CURL *curl;
    char url[SYNC_URL_MAX];
    char device_id[SYNC_DEVICE_ID_MAX];
    char token_file[SYNC_PATH_MAX];
    char auth_header[SYNC_HTTP_TOKEN_MAX + 32]; /* "Authorization: Bearer ..." or "" */
    struct timespec token_mtime;
    off_t token_size;
    bool (*should_abort)(void *ctx);
    void *abort_ctx;
    char errbuf[CURL_ERROR_SIZE];
    struct sync_http_resp *resp; /* the response being filled (callbacks) */
    size_t body_len;
};

el_status sync_http_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? EL_OK : EL_IO;
}

static bool set(const char *path)
{
    return path && path[0];
}

/* Reads the token file into auth_header; *changed tells whether it was re-read. */
static el_status token_load(struct sync_http *h, bool force, char *err, size_t errlen)
{
    struct stat sb;
    char token[SYNC_HTTP_TOKEN_MAX + 1];
    if (!h->token_file[0])
        return EL_OK;
    if (stat(h->token_file, &sb) != 0) {
        snprintf(err, errlen, "token file %s: %s", h->token_file, strerror(errno));
        return EL_IO;
    }
    if (!force && sb.st_mtim.tv_sec == h->token_mtime.tv_sec &&
        sb.st_mtim.tv_nsec == h->token_mtime.tv_nsec && sb.st_size == h->token_size)
        return EL_OK;
    if (plat_file_check_private(h->token_file) != EL_OK) {
        snprintf(err, errlen, "token file %s is accessible by others; refusing it", h->token_file);
        return EL_INVAL;
    }
    int fd = open(h->token_file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "token file %s: %s", h->token_file, strerror(errno));
        return EL_IO;
    }
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, token + len, sizeof token - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "token file %s: %s", h->token_file, strerror(errno));
            close(fd);
            return EL_IO;
        }
        if (n == 0 || len + (size_t)n >= sizeof token - 1) {
            len += (size_t)n;
            break;
        }
        len += (size_t)n;
    }
    close(fd);
    while (len > 0 && isspace((unsigned char)token[len - 1]))
        len--;
    token[len] = '\0';
    if (len == 0 || len >= SYNC_HTTP_TOKEN_MAX || strpbrk(token, "\r\n")) {
        snprintf(err, errlen, "token file %s: expected one line of 1..%d bytes", h->token_file,
                 SYNC_HTTP_TOKEN_MAX - 1);
        return EL_INVAL;
    }
    snprintf(h->auth_header, sizeof h->auth_header, "Authorization: Bearer %s", token);
    memset(token, 0, sizeof token);
    h->token_mtime = sb.st_mtim;
    h->token_size = sb.st_size;
    return EL_OK;
}

void sync_http_body_excerpt(struct sync_http_resp *r, size_t *len, const char *data, size_t n)
{
    size_t l = *len;
    for (size_t i = 0; i < n && l + 1 < sizeof r->body; i++) {
        unsigned char c = (unsigned char)data[i];
        char out = (c > 0x20 && c < 0x7f) ? (char)c : ' ';
        /* one line for status and logs: control bytes become blanks, runs collapse */
        if (out == ' ' && (l == 0 || r->body[l - 1] == ' '))
            continue;
        r->body[l++] = out;
    }
    r->body[l] = '\0';
    *len = l;
}

/* The blanks around a Retry-After value: exactly those that
 * sync_policy_parse_retry_after skips, so trimming never changes a verdict. */
static bool blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Stores the Retry-After value line[i, end) so that it means to
 * sync_policy_parse_retry_after what the whole value means (sync_http.h). */
static void set_retry_after(struct sync_http_resp *r, const char *line, size_t i, size_t end)
{
    const size_t room = sizeof r->retry_after - 1;
    while (i < end && blank(line[i]))
        i++;
    while (end > i && blank(line[end - 1]))
        end--;
    bool digits = true;
    for (size_t k = i; k < end && digits; k++)
        digits = line[k] >= '0' && line[k] <= '9';
    /* Only delay-seconds can be longer than the buffer (an HTTP-date is at
     * most 33 bytes): leading zeros go; what is still too long is at least
     * 10^63 s and its first `room` digits at least 10^62 s, both clamped to
     * the same maximum, so it is cut. */
    while (digits && end - i > room && line[i] == '0')
        i++;
    size_t len = end - i;
    if (memchr(line + i, '\0', len) || (len > room && !digits))
        len = 0; /* not a valid value, and cutting could make it one */
    else if (len > room)
        len = room;
    memcpy(r->retry_after, line + i, len);
    r->retry_after[len] = '\0';
}

void sync_http_parse_header_line(struct sync_http_resp *r, const char *line, size_t n)
{
    static const char name[] = "retry-after:";
    if (n >= 5 && strncmp(line, "HTTP/", 5) == 0)
        r->retry_after[0] = '\0'; /* a new response (after a 1xx) */
    else if (n >= sizeof name - 1 && strncasecmp(line, name, sizeof name - 1) == 0)
        set_retry_after(r, line, sizeof name - 1, n);
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ctx)
{
    struct sync_http *h = ctx;
    size_t n = size * nmemb;
    sync_http_body_excerpt(h->resp, &h->body_len, ptr, n);
    return n; /* read (and discard) the whole body: keeps the connection reusable */
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ctx)
{
    struct sync_http *h = ctx;
    size_t n = size * nmemb;
    sync_http_parse_header_line(h->resp, ptr, n);
    return n;
}

static int on_progress(void *ctx, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    struct sync_http *h = ctx;
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return h->should_abort && h->should_abort(h->abort_ctx) ? 1 : 0;
}

static el_status setup(struct sync_http *h, const struct sync_http_opts *o)
{
    CURL *c = h->curl;
    long connect_s = o->timeout_s < CONNECT_TIMEOUT_MAX_S ? o->timeout_s : CONNECT_TIMEOUT_MAX_S;
    CURLcode rc = CURLE_OK;
#define SETOPT(opt, val)                                                                           \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = curl_easy_setopt(c, opt, val);                                                    \
    } while (0)
    SETOPT(CURLOPT_URL, h->url);
#if LIBCURL_VERSION_NUM >= 0x075500
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
#else
    SETOPT(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_POST, 1L);
    SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(CURLOPT_CONNECTTIMEOUT, connect_s);
    SETOPT(CURLOPT_TIMEOUT, (long)o->timeout_s);
    SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
    SETOPT(CURLOPT_ERRORBUFFER, h->errbuf);
    SETOPT(CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(CURLOPT_WRITEDATA, h);
    SETOPT(CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(CURLOPT_HEADERDATA, h);
    SETOPT(CURLOPT_NOPROGRESS, 0L);
    SETOPT(CURLOPT_XFERINFOFUNCTION, on_progress);
    SETOPT(CURLOPT_XFERINFODATA, h);
    SETOPT(CURLOPT_USERAGENT, "edgelambda/" EL_VERSION);
    SETOPT(CURLOPT_SSL_VERIFYPEER, o->insecure ? 0L : 1L);
    SETOPT(CURLOPT_SSL_VERIFYHOST, o->insecure ? 0L : 2L);
    if (set(o->ca_file))
        SETOPT(CURLOPT_CAINFO, o->ca_file);
    if (set(o->cert_file))
        SETOPT(CURLOPT_SSLCERT, o->cert_file);
    if (set(o->key_file))
        SETOPT(CURLOPT_SSLKEY, o->key_file);
#undef SETOPT
    if (rc != CURLE_OK) {
        log_error("sync: cannot set up libcurl: %s", curl_easy_strerror(rc));
        return EL_INVAL;
    }
    return EL_OK;
}

el_status sync_http_new(const struct sync_http_opts *o, struct sync_http **out)
{
    char err[SYNC_PATH_MAX + 128];
    el_status st;
    struct sync_http *h = calloc(1, sizeof *h);
    *out = NULL;
    if (!h)
        return EL_NOMEM;
    if (strlen(o->url) >= sizeof h->url || strlen(o->device_id) >= sizeof h->device_id ||
        (set(o->token_file) && strlen(o->token_file) >= sizeof h->token_file)) {
        log_error("sync: the URL, device id or token file name is too long");
        st = EL_INVAL;
        goto fail;
    }
    snprintf(h->url, sizeof h->url, "%s", o->url);
    snprintf(h->device_id, sizeof h->device_id, "%s", o->device_id);
    if (set(o->token_file))
        snprintf(h->token_file, sizeof h->token_file, "%s", o->token_file);
    h->should_abort = o->should_abort;
    h->abort_ctx = o->abort_ctx;
    st = token_load(h, true, err, sizeof err);
    if (st != EL_OK) {
        log_error("sync: %s", err);
        goto fail;
    }
    h->curl = curl_easy_init();
    if (!h->curl) {
        st = EL_NOMEM;
        goto fail;
    }
    st = setup(h, o);
    if (st != EL_OK)
        goto fail;
    *out = h;
    return EL_OK;
fail:
    sync_http_free(h);
    return st;
}

void sync_http_free(struct sync_http *h)
{
    if (!h)
        return;
    if (h->curl)
        curl_easy_cleanup(h->curl);
    memset(h->auth_header, 0, sizeof h->auth_header);
    free(h);
}

size_t sync_http_auth_bytes(const struct sync_http *h)
{
    size_t n = strlen(h->auth_header);
    return n > 0 ? n + 2 : 0; /* the line and its CRLF */
}

/* Builds the per-request header list; NULL on allocation failure. */
static struct curl_slist *headers(const struct sync_http *h, const struct sync_http_req *req)
{
    char line[SYNC_DEVICE_ID_MAX + 96];
    struct curl_slist *list = NULL, *next;
    const char *fixed[3] = {"Expect:", NULL, NULL};
    int n = 1;
    if (h->auth_header[0])
        fixed[n++] = h->auth_header;
    for (int i = 0; i < n; i++) {
        if (!(next = curl_slist_append(list, fixed[i])))
            goto fail;
        list = next;
    }
    for (int i = 0; i < 7; i++) {
        switch (i) {
        case 0: snprintf(line, sizeof line, "Content-Type: %s", req->content_type); break;
        case 1:
            if (!req->content_encoding)
                continue;
            snprintf(line, sizeof line, "Content-Encoding: %s", req->content_encoding);
            break;
        case 2: snprintf(line, sizeof line, "X-Edgelambda-Device: %s", h->device_id); break;
        case 3:
            snprintf(line, sizeof line, "X-Edgelambda-First-Seq: %lld", (long long)req->first_seq);
            break;
        case 4:
            snprintf(line, sizeof line, "X-Edgelambda-Last-Seq: %lld", (long long)req->last_seq);
            break;
        case 5:
            if (!req->lane)
                continue;
            snprintf(line, sizeof line, "X-Edgelambda-Lane: %s", req->lane);
            break;
        default:
            snprintf(line, sizeof line, "Idempotency-Key: %s-%lld-%lld", h->device_id,
                     (long long)req->first_seq, (long long)req->last_seq);
            break;
        }
        if (!(next = curl_slist_append(list, line)))
            goto fail;
        list = next;
    }
    return list;
fail:
    curl_slist_free_all(list);
    return NULL;
}

el_status sync_http_post(struct sync_http *h, const struct sync_http_req *req,
                         struct sync_http_resp *resp)
{
    memset(resp, 0, sizeof *resp);
    h->resp = resp;
    h->body_len = 0;
    h->errbuf[0] = '\0';
    el_status st = token_load(h, false, resp->error, sizeof resp->error);
    if (st != EL_OK)
        return EL_AGAIN;
    struct curl_slist *list = headers(h, req);
    if (!list) {
        snprintf(resp->error, sizeof resp->error, "out of memory building request headers");
        return EL_AGAIN;
    }
    CURL *c = h->curl;
    CURLcode rc = curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->len);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body);
    if (rc == CURLE_OK)
        rc = curl_easy_perform(c);
    curl_off_t up = 0;
    double total = 0;
    (void)curl_easy_getinfo(c, CURLINFO_SIZE_UPLOAD_T, &up);
    (void)curl_easy_getinfo(c, CURLINFO_TOTAL_TIME, &total);
    resp->bytes_sent = (int64_t)up;
    resp->seconds = total;
    if (rc == CURLE_OK)
        (void)curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
    /* The list is referenced by the handle until the next request: unset it
     * before freeing so no dangling pointer stays behind. */
    (void)curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    (void)curl_easy_setopt(c, CURLOPT_POSTFIELDS, NULL);
    curl_slist_free_all(list);
    h->resp = NULL;
    if (rc == CURLE_OK && resp->status > 0)
        return EL_OK;
    resp->status = 0;
    resp->aborted = rc == CURLE_ABORTED_BY_CALLBACK;
    snprintf(resp->error, sizeof resp->error, "%s%s%s", curl_easy_strerror(rc),
             h->errbuf[0] ? ": " : "", h->errbuf);
    return EL_AGAIN;
}
