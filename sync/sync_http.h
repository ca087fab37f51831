/*
 * sync_http — the upstream transport: one libcurl easy handle, reused for
 * every request so the connection (and its TLS session) is kept alive.
 *
 * Each batch is one POST to sync.url with the headers
 *   Content-Type: application/x-ndjson | text/plain; charset=utf-8
 *   Content-Encoding: gzip | zstd           (absent for none)
 *   X-Edgelambda-Device: <device_id>
 *   X-Edgelambda-First-Seq: <first seq>     X-Edgelambda-Last-Seq: <last seq>
 *   Idempotency-Key: <device_id>-<first seq>-<last seq>
 *   X-Edgelambda-Lane: live | backlog       (which lane cut it; sync.c)
 *   Authorization: Bearer <token>           (with sync.token_file)
 *   Expect:                                 (no 100-continue round trip)
 * A retried batch carries the same range, so the same key: a receiver that
 * remembers keys (or dedups by (device, seq)) drops resends.
 *
 * TLS: certificate and host-name verification are on unless sync.insecure;
 * CAs from sync.ca_file, else the system store; a client certificate and key
 * for mutual TLS. Verification happens in the handshake, before a byte of the
 * request is sent. Only http and https are allowed; redirects are not
 * followed (a 3xx is an answer like any other).
 *
 * Bearer token: read from sync.token_file at creation and again whenever
 * the file's mtime or size changes (token rotation without a restart);
 * a file that others may access is refused (plat_file_check_private), at
 * creation (EL_INVAL) and at a reload (the request is not sent, an error is
 * reported and the worker retries later). Trailing blanks and newlines are
 * trimmed; the token is at most SYNC_HTTP_TOKEN_MAX - 1 bytes.
 *
 * Timeouts: connect min(10 s, sync.timeout_s), whole request sync.timeout_s.
 * A request also ends early when the caller's abort function says so (it is
 * polled about once a second), so stopping the daemon is prompt.
 *
 * Ownership: sync_http_new copies everything from opts it needs except the
 * abort context, which must outlive the handle.
 *
 * Threading: a handle belongs to one thread. curl_global_init must have run
 * (sync_http_global_init, called once before any thread is started).
 */
#ifndef EL_SYNC_HTTP_H
#define EL_SYNC_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "el_status.h"

#define SYNC_HTTP_TOKEN_MAX 4096
#define SYNC_HTTP_EXCERPT 200
/* The URL has at most SYNC_URL_MAX - 1 bytes, a file path (TLS files, the
 * token file) at most SYNC_PATH_MAX - 1; the device id at most
 * SYNC_DEVICE_ID_MAX - 1 (sync_encode.h). */
#define SYNC_URL_MAX 512
#define SYNC_PATH_MAX 512

struct sync_http;

struct sync_http_opts {
    const char *url;                                         /* < SYNC_URL_MAX bytes */
    const char *ca_file, *cert_file, *key_file, *token_file; /* "" or NULL = none */
    const char *device_id; /* < SYNC_DEVICE_ID_MAX bytes; token_file < SYNC_PATH_MAX */
    bool insecure;
    int timeout_s;
    bool (*should_abort)(void *ctx); /* may be NULL */
    void *abort_ctx;
};

struct sync_http_req {
    const void *body; /* borrowed for the call */
    size_t len;
    const char *content_type;
    const char *content_encoding; /* NULL = none */
    int64_t first_seq, last_seq;
    const char *lane; /* X-Edgelambda-Lane, NULL = no such header */
};

struct sync_http_resp {
    long status;                  /* HTTP status; 0 when no response was received */
    bool aborted;                 /* ended by should_abort */
    char error[320];              /* status 0: what went wrong ("" otherwise) */
    char retry_after[64];         /* Retry-After value, "" if absent (see below) */
    char body[SYNC_HTTP_EXCERPT]; /* first bytes of the response body, printable */
    int64_t bytes_sent;           /* request body bytes curl uploaded */
    double seconds;               /* total time of the request */
};

/* Process-wide libcurl initialisation; call once before threads start. */
EL_MUST_CHECK el_status sync_http_global_init(void);

/* EL_INVAL for a refused token file, a string over its limit or an unusable
 * option; EL_IO if the token file cannot be read; EL_NOMEM. */
EL_MUST_CHECK el_status sync_http_new(const struct sync_http_opts *opts, struct sync_http **out);
/* NULL is fine. */
void sync_http_free(struct sync_http *h);

/* Sends one request and fills *resp. Returns EL_OK when an HTTP response was
 * received (whatever its status), EL_AGAIN for a transport failure (resp->error
 * says which: connect, TLS, timeout, reset, token file), EL_INVAL for a
 * request that could not be set up. */
EL_MUST_CHECK el_status sync_http_post(struct sync_http *h, const struct sync_http_req *req,
                                       struct sync_http_resp *resp);

/* Bytes the Authorization header adds to a request on the wire ("Authorization:
 * Bearer <token>" and its CRLF), 0 without sync.token_file: the token as
 * last read (a rotated file is read again by the next sync_http_post). */
size_t sync_http_auth_bytes(const struct sync_http *h);

/* Response parsing, pure (no I/O, no curl): the libcurl callbacks of
 * sync_http_post call these; they are public for tests/fuzz/sync_response_fuzz.c.
 *
 * sync_http_parse_header_line takes one header line of n bytes exactly as
 * libcurl hands it to CURLOPT_HEADERFUNCTION (not NUL-terminated, may hold
 * NULs, usually ending in "\r\n"; the status line and the final empty line
 * come the same way). A status line ("HTTP/...") starts a new response
 * (after a 1xx) and clears r->retry_after; a Retry-After line (name in any
 * case) sets it, the last one wins; other lines are ignored. The value is
 * stored so that sync_policy_parse_retry_after reads it as it would read the
 * whole value: without the blanks around it (' ', '\t', '\r', '\n', the
 * ones that parser skips); a value that cannot be valid and does not fit,
 * or that holds a NUL byte, is stored as "" (absent); delay-seconds that do
 * not fit lose their leading zeros, then digits at the end (still at least
 * 10^62 seconds: clamped to SYNC_RETRY_AFTER_MAX_MS either way).
 *
 * sync_http_body_excerpt appends n body bytes to the excerpt r->body, of
 * which *len bytes are filled (0 before the first call; updated): printable
 * ASCII only, every run of other bytes and blanks becomes one ' ', no
 * leading blank; it stops at SYNC_HTTP_EXCERPT - 1 bytes and the rest of
 * the body is ignored. r->body stays NUL-terminated. */
void sync_http_parse_header_line(struct sync_http_resp *r, const char *line, size_t n);
void sync_http_body_excerpt(struct sync_http_resp *r, size_t *len, const char *data, size_t n);

#endif
