/* sync_compress — gzip (zlib) and zstd request bodies (see sync_compress.h). */
#include "sync_compress.h"

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "plat_log.h"

struct sync_compressor {
    enum sync_compression kind;
    size_t max_in;
    unsigned char *buf;
    size_t cap;
    z_stream zs;
    bool zs_ready;
    ZSTD_CCtx *zctx;
};

el_status sync_compress_new(enum sync_compression kind, size_t max_in, struct sync_compressor **out)
{
    struct sync_compressor *c = calloc(1, sizeof *c);
    *out = NULL;
    if (!c)
        return EL_NOMEM;
    c->kind = kind;
    c->max_in = max_in;
    if (kind == SYNC_COMPRESS_GZIP) {
        if (max_in > UINT_MAX / 2)
            goto fail;
        /* windowBits 15 + 16: a gzip header and trailer instead of zlib's */
        if (deflateInit2(&c->zs, SYNC_GZIP_LEVEL, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
            Z_OK)
            goto fail;
        c->zs_ready = true;
        c->cap = deflateBound(&c->zs, (uLong)max_in);
    } else if (kind == SYNC_COMPRESS_ZSTD) {
        c->zctx = ZSTD_createCCtx();
        if (!c->zctx)
            goto fail;
        c->cap = ZSTD_compressBound(max_in);
    }
    if (c->cap) {
        c->buf = malloc(c->cap);
        if (!c->buf)
            goto fail;
    }
    *out = c;
    return EL_OK;
fail:
    sync_compress_free(c);
    return EL_NOMEM;
}

void sync_compress_free(struct sync_compressor *c)
{
    if (!c)
        return;
    if (c->zs_ready)
        deflateEnd(&c->zs);
    ZSTD_freeCCtx(c->zctx);
    free(c->buf);
    free(c);
}

el_status sync_compress(struct sync_compressor *c, const void *in, size_t len, const void **out,
                        size_t *out_len)
{
    if (len > c->max_in)
        return EL_INVAL;
    if (c->kind == SYNC_COMPRESS_NONE) {
        *out = in;
        *out_len = len;
        return EL_OK;
    }
    if (c->kind == SYNC_COMPRESS_ZSTD) {
        size_t n = ZSTD_compressCCtx(c->zctx, c->buf, c->cap, in, len, SYNC_ZSTD_LEVEL);
        if (ZSTD_isError(n)) {
            log_error("zstd compression failed: %s", ZSTD_getErrorName(n));
            return EL_IO;
        }
        *out = c->buf;
        *out_len = n;
        return EL_OK;
    }
    if (deflateReset(&c->zs) != Z_OK)
        return EL_IO;
    c->zs.next_in = (Bytef *)(uintptr_t)in; /* zlib's API is not const-correct */
    c->zs.avail_in = (uInt)len;
    c->zs.next_out = c->buf;
    c->zs.avail_out = (uInt)c->cap;
    int rc = deflate(&c->zs, Z_FINISH);
    if (rc != Z_STREAM_END) {
        log_error("gzip compression failed (%d)", rc);
        return EL_IO;
    }
    *out = c->buf;
    *out_len = c->zs.total_out;
    return EL_OK;
}

const char *sync_compress_encoding(enum sync_compression kind)
{
    switch (kind) {
    case SYNC_COMPRESS_GZIP: return "gzip";
    case SYNC_COMPRESS_ZSTD: return "zstd";
    case SYNC_COMPRESS_NONE: break;
    }
    return NULL;
}

static el_status gunzip(const void *in, size_t len, void *buf, size_t cap, size_t *out_len)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (len > UINT_MAX || cap > UINT_MAX || inflateInit2(&zs, 15 + 16) != Z_OK)
        return EL_INVAL;
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)len;
    zs.next_out = buf;
    zs.avail_out = (uInt)cap;
    int rc = inflate(&zs, Z_FINISH);
    el_status st = EL_OK;
    if (rc == Z_STREAM_END && zs.avail_in == 0)
        *out_len = zs.total_out;
    else if (rc == Z_BUF_ERROR && zs.avail_out == 0)
        st = EL_FULL;
    else
        st = EL_CORRUPT;
    inflateEnd(&zs);
    return st;
}

el_status sync_decompress(enum sync_compression kind, const void *in, size_t len, void *buf,
                          size_t cap, size_t *out_len)
{
    if (kind == SYNC_COMPRESS_NONE) {
        if (len > cap)
            return EL_FULL;
        if (len)
            memcpy(buf, in, len);
        *out_len = len;
        return EL_OK;
    }
    if (kind == SYNC_COMPRESS_GZIP)
        return gunzip(in, len, buf, cap, out_len);
    size_t n = ZSTD_decompress(buf, cap, in, len);
    if (ZSTD_isError(n))
        return ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall ? EL_FULL : EL_CORRUPT;
    *out_len = n;
    return EL_OK;
}
