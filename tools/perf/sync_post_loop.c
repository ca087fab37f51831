/*
 * sync_post_loop — the transport limit for tools/lib/bench_sync.py: the same
 * batches the sync worker would send, pre-encoded, POSTed in a plain libcurl
 * loop (one easy handle, keep-alive, nothing else).
 *
 * Usage: el_sync_post_loop --dir STORAGE_DIR --url URL [--ca-file F]
 *          [--format ndjson|influx] [--compression none|gzip|zstd]
 *          [--batch-events N] [--batch-bytes N] [--device ID] [--repeat N]
 * Reads every event of STORAGE_DIR/master.db with sync_batch_cut (the worker's
 * own cutting and encoding), compresses each batch with sync_compress, keeps
 * all bodies in memory, then times only the POST loop. Prints one JSON line:
 *   {"events":N,"batches":B,"raw_bytes":R,"wire_bytes":W,"encode_s":E,
 *    "compress_s":C,"post_s":P,"events_per_s":N/P,"http_errors":K}
 * encode_s includes the SQLite reads; with --repeat the POST loop runs N
 * times and post_s is the fastest run (events_per_s from it).
 *
 * Threading: single-threaded. Exit 0, or 1 on bad arguments or I/O errors.
 */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "mlog_read.h"
#include "plat_clock.h"
#include "sync_batch.h"
#include "sync_compress.h"
#include "sync_encode.h"

struct body {
    void *data;
    size_t len;
};

struct opts {
    const char *dir, *url, *ca_file, *device;
    enum sync_format format;
    enum sync_compression compression;
    int64_t batch_events;
    size_t batch_bytes;
    int repeat;
};

static size_t discard(char *p, size_t size, size_t n, void *ctx)
{
    (void)p;
    (void)ctx;
    return size * n;
}

static int usage(void)
{
    fprintf(stderr, "usage: el_sync_post_loop --dir DIR --url URL [--ca-file F] [--format "
                    "ndjson|influx] [--compression none|gzip|zstd] [--batch-events N] "
                    "[--batch-bytes N] [--device ID] [--repeat N]\n");
    return 1;
}

/* --repeat: a positive count, else 1. */
static int repeat_count(const char *text)
{
    long n = strtol(text, NULL, 10);

    return n > 0 && n <= INT_MAX ? (int)n : 1;
}

static int parse(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {{"dir", required_argument, NULL, 'd'},
                                             {"url", required_argument, NULL, 'u'},
                                             {"ca-file", required_argument, NULL, 'c'},
                                             {"format", required_argument, NULL, 'f'},
                                             {"compression", required_argument, NULL, 'z'},
                                             {"batch-events", required_argument, NULL, 'e'},
                                             {"batch-bytes", required_argument, NULL, 'b'},
                                             {"device", required_argument, NULL, 'i'},
                                             {"repeat", required_argument, NULL, 'r'},
                                             {NULL, 0, NULL, 0}};
    int c;
    *o = (struct opts){.device = "bench",
                       .batch_events = 5000,
                       .batch_bytes = 1 << 20,
                       .format = SYNC_NDJSON,
                       .compression = SYNC_COMPRESS_GZIP,
                       .repeat = 1};
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'd': o->dir = optarg; break;
        case 'u': o->url = optarg; break;
        case 'c': o->ca_file = optarg; break;
        case 'i': o->device = optarg; break;
        case 'f': o->format = strcmp(optarg, "influx") == 0 ? SYNC_INFLUX : SYNC_NDJSON; break;
        case 'z':
            o->compression = strcmp(optarg, "none") == 0   ? SYNC_COMPRESS_NONE
                             : strcmp(optarg, "zstd") == 0 ? SYNC_COMPRESS_ZSTD
                                                           : SYNC_COMPRESS_GZIP;
            break;
        case 'e': o->batch_events = strtoll(optarg, NULL, 10); break;
        case 'b': o->batch_bytes = (size_t)strtoull(optarg, NULL, 10); break;
        case 'r': o->repeat = repeat_count(optarg); break;
        default: return usage();
        }
    }
    return o->dir && o->url && o->batch_events > 0 && o->batch_bytes > 0 ? 0 : usage();
}

/* Every batch of the master log, cut, encoded and compressed, in memory. */
struct bodies {
    struct body *v;
    size_t n, cap;
    size_t raw_bytes, wire_bytes;
    int64_t events, encode_ns, compress_ns;
};

static bool bodies_push(struct bodies *b, const void *z, size_t zlen)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        struct body *grown = realloc(b->v, cap * sizeof *b->v);

        if (!grown)
            return false;
        b->v = grown;
        b->cap = cap;
    }
    b->v[b->n].data = malloc(zlen ? zlen : 1);
    if (!b->v[b->n].data)
        return false;
    memcpy(b->v[b->n].data, z, zlen);
    b->v[b->n++].len = zlen;
    return true;
}

/* The sync worker's own cutting, encoding and compression over all of db. */
static bool encode_all(const struct opts *o, struct mlog_reader *reader, struct sync_encoder *enc,
                       struct sync_compressor *comp, char *buf, size_t buf_cap, struct bodies *out)
{
    int64_t after = 0;

    for (;;) {
        struct sync_batch b;
        const void *z;
        size_t zlen;
        int64_t t0 = plat_clock_mono_ns();
        el_status st = sync_batch_cut(reader, enc, after, INT64_MAX, o->batch_events,
                                      o->batch_bytes, buf, buf_cap, &b);
        int64_t t1 = plat_clock_mono_ns();
        if (st == EL_NOTFOUND)
            return true;
        if (st != EL_OK || sync_compress(comp, buf, b.len, &z, &zlen) != EL_OK)
            return false;
        out->encode_ns += t1 - t0;
        out->compress_ns += plat_clock_mono_ns() - t1;
        if (!bodies_push(out, z, zlen))
            return false;
        out->raw_bytes += b.len;
        out->wire_bytes += zlen;
        out->events += b.events;
        after = b.last_seq;
    }
}

/* POSTs every body --repeat times on one handle; returns the fastest pass. */
static int64_t post_all(const struct opts *o, const struct bodies *b, int64_t *errors)
{
    CURL *curl;
    struct curl_slist *hdr = curl_slist_append(NULL, "Expect:");
    char line[128];
    int64_t best_ns = INT64_MAX;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    curl = curl_easy_init();
    snprintf(line, sizeof line, "Content-Type: %s", sync_encode_content_type(o->format));
    hdr = curl_slist_append(hdr, line);
    if (sync_compress_encoding(o->compression)) {
        snprintf(line, sizeof line, "Content-Encoding: %s", sync_compress_encoding(o->compression));
        hdr = curl_slist_append(hdr, line);
    }
    curl_easy_setopt(curl, CURLOPT_URL, o->url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    if (o->ca_file)
        curl_easy_setopt(curl, CURLOPT_CAINFO, o->ca_file);
    for (int r = 0; r < o->repeat; r++) {
        int64_t t0 = plat_clock_mono_ns();
        for (size_t i = 0; i < b->n; i++) {
            long status = 0;
            curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)b->v[i].len);
            curl_easy_setopt(curl, CURLOPT_POSTFIELDS, b->v[i].data);
            if (curl_easy_perform(curl) != CURLE_OK ||
                curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK ||
                status < 200 || status > 299)
                (*errors)++;
        }
        int64_t dt = plat_clock_mono_ns() - t0;
        best_ns = dt < best_ns ? dt : best_ns;
    }
    curl_slist_free_all(hdr);
    curl_easy_cleanup(curl);
    return best_ns;
}

int main(int argc, char **argv)
{
    struct opts o;
    char path[4096];
    struct mlog_reader *reader = NULL;
    struct sync_compressor *comp = NULL;
    struct sync_encoder enc;
    struct bodies b = {0};
    int64_t best_ns, errors = 0;
    size_t buf_cap;
    char *buf = NULL;
    int rc = 1;
    if (parse(argc, argv, &o) != 0)
        return 1;
    buf_cap = o.batch_bytes + SYNC_ENCODE_EVENT_MAX;
    snprintf(path, sizeof path, "%s/master.db", o.dir);
    if (mlog_reader_open_seq(o.dir, 10000, &reader) != EL_OK ||
        sync_encoder_init(&enc, o.format, o.device) != EL_OK ||
        sync_compress_new(o.compression, buf_cap, &comp) != EL_OK || !(buf = malloc(buf_cap))) {
        fprintf(stderr, "el_sync_post_loop: cannot read %s\n", path);
        goto out;
    }
    if (!encode_all(&o, reader, &enc, comp, buf, buf_cap, &b))
        goto out;
    best_ns = post_all(&o, &b, &errors);
    printf("{\"events\":%lld,\"batches\":%zu,\"raw_bytes\":%zu,\"wire_bytes\":%zu,"
           "\"encode_s\":%.6f,\"compress_s\":%.6f,\"post_s\":%.6f,\"events_per_s\":%.1f,"
           "\"http_errors\":%lld}\n",
           (long long)b.events, b.n, b.raw_bytes, b.wire_bytes, (double)b.encode_ns / 1e9,
           (double)b.compress_ns / 1e9, (double)best_ns / 1e9,
           best_ns > 0 ? (double)b.events * 1e9 / (double)best_ns : 0.0, (long long)errors);
    rc = errors ? 1 : 0;
out:
    for (size_t i = 0; i < b.n; i++)
        free(b.v[i].data);
    free(b.v);
    free(buf);
    sync_compress_free(comp);
    mlog_reader_close(reader);
    return rc;
}
