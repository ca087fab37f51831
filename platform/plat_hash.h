/*
 * plat_hash — checksums and hashes used by the on-disk formats.
 *
 * plat_crc32c() is zlib's CRC-32 (journal record checks); plat_hash64() is
 * 64-bit FNV-1a (duplicate detection of redelivered MQTT messages, where a
 * collision costs at most one wrongly dropped DUP redelivery in 2^64).
 *
 * Threading: pure, any thread.
 */
#ifndef PLAT_HASH_H
#define PLAT_HASH_H

#include <stddef.h>
#include <stdint.h>

uint32_t plat_crc32(uint32_t crc, const void *data, size_t len);
/* Continues a running hash: pass PLAT_HASH64_INIT first. */
#define PLAT_HASH64_INIT 0xcbf29ce484222325ULL
uint64_t plat_hash64(uint64_t h, const void *data, size_t len);

#endif
