/*
 * sync_compress — request-body compression: none, gzip (zlib, RFC 1952) or
 * zstd (RFC 8878 frame with the content size), one whole batch at a time.
 *
 * Design: a compressor owns one output buffer sized at creation for the
 * worst case of max_in input bytes (deflateBound / ZSTD_compressBound), and
 * one reusable zlib stream / ZSTD_CCtx, so compressing a batch allocates
 * nothing. Levels: gzip 1 and zstd 1 — on sensor data they give most of the
 * ratio of higher levels at a fraction of the CPU (docs/LIMITS.md: gzip-1 6.1x at
 * 390 ns/event vs gzip-6 7.7x at 1.3 us/event), and the board's CPU is what
 * a sync costs. Output is deterministic for the same input (same library
 * version), so a retried batch is byte-identical.
 *
 * Threading: a compressor belongs to one thread.
 */
#ifndef EL_SYNC_COMPRESS_H
#define EL_SYNC_COMPRESS_H

#include <stddef.h>

#include "el_status.h"

#define SYNC_GZIP_LEVEL 1
#define SYNC_ZSTD_LEVEL 1

/* The request-body encodings (sync.compression). */
enum sync_compression { SYNC_COMPRESS_NONE = 0, SYNC_COMPRESS_GZIP, SYNC_COMPRESS_ZSTD };

struct sync_compressor;

/* Creates a compressor for inputs of at most max_in bytes. EL_NOMEM. */
EL_MUST_CHECK el_status sync_compress_new(enum sync_compression kind, size_t max_in,
                                          struct sync_compressor **out);
/* NULL is fine. */
void sync_compress_free(struct sync_compressor *c);

/* Compresses in[0..len) (len <= max_in). With kind none, *out == in. Otherwise
 * *out points into the compressor's buffer, valid until the next call.
 * EL_INVAL if len > max_in; EL_IO if the library fails. */
EL_MUST_CHECK el_status sync_compress(struct sync_compressor *c, const void *in, size_t len,
                                      const void **out, size_t *out_len);

/* The Content-Encoding token, NULL for none. */
const char *sync_compress_encoding(enum sync_compression kind);

/* Decompresses a whole body into buf (tests and tools). EL_FULL when the
 * result does not fit in cap, EL_CORRUPT for bad input. */
EL_MUST_CHECK el_status sync_decompress(enum sync_compression kind, const void *in, size_t len,
                                        void *buf, size_t cap, size_t *out_len);

#endif
