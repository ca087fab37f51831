/* plat_hash — CRC-32 (zlib) and FNV-1a 64 (see plat_hash.h). */
#include "plat_hash.h"

#include <zlib.h>

uint32_t plat_crc32(uint32_t crc, const void *data, size_t len)
{
    return (uint32_t)crc32_z(crc, (const Bytef *)data, len);
}

uint64_t plat_hash64(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}
