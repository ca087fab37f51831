/*
 * sync_compress_test — unit tests of request-body compression
 * (sync/sync_compress.c).
 *
 * What is covered: round trips for none, gzip and zstd on empty input, one
 * byte, realistic sensor NDJSON (loadgen's stream) and incompressible random
 * bytes at the maximum size; the output is a real gzip member (magic bytes,
 * readable by zlib's gunzip path) and a real zstd frame; compressing the same
 * input twice gives identical bytes (a retried batch is byte-identical); the
 * compressor is reusable; inputs over max_in are refused; decompression of a
 * too-small buffer and of garbage fails cleanly; the ratio on sensor NDJSON
 * is what sync promises (> 4x).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync_compress.h"
#include "sync_encode.h"

#define MAX_IN (256 * 1024)

static size_t sensor_ndjson(char *buf, size_t cap, int64_t first, int count, int *events)
{
    struct sync_encoder e;
    size_t len = 0;
    assert_int_equal(sync_encoder_init(&e, SYNC_NDJSON, "pi-test"), EL_OK);
    for (int64_t i = first; i < first + count; i++) {
        char series[64];
        int sl = snprintf(series, sizeof series, "sensors/dev%d/temp", (int)(i % 100));
        double v = (double)((i * 7919) % 20000) / 100.0 - 50.0;
        size_t n = sync_encode_event(&e, series, (size_t)sl, i + 1, 1767225600000 + i, v, buf + len,
                                     cap - len);
        if (n == 0)
            break;
        len += n;
        (*events)++;
    }
    return len;
}

static void round_trip(enum sync_compression kind, const void *in, size_t len, size_t *out_len)
{
    struct sync_compressor *c;
    const void *out, *out2;
    size_t n, n2, back_len;
    assert_int_equal(sync_compress_new(kind, MAX_IN, &c), EL_OK);
    assert_int_equal(sync_compress(c, in, len, &out, &n), EL_OK);
    void *copy = malloc(n ? n : 1);
    memcpy(copy, out, n);
    assert_int_equal(sync_compress(c, in, len, &out2, &n2), EL_OK); /* reusable, deterministic */
    assert_int_equal(n, n2);
    assert_memory_equal(copy, out2, n);
    if (kind == SYNC_COMPRESS_NONE)
        assert_ptr_equal(out, in);
    if (kind == SYNC_COMPRESS_GZIP) {
        assert_true(n >= 18);
        assert_int_equal(((unsigned char *)copy)[0], 0x1f);
        assert_int_equal(((unsigned char *)copy)[1], 0x8b);
    }
    if (kind == SYNC_COMPRESS_ZSTD) {
        static const unsigned char magic[4] = {0x28, 0xb5, 0x2f, 0xfd};
        assert_memory_equal(copy, magic, 4);
    }
    char *back = malloc(MAX_IN + 1);
    assert_int_equal(sync_decompress(kind, copy, n, back, MAX_IN + 1, &back_len), EL_OK);
    assert_int_equal(back_len, len);
    if (len)
        assert_memory_equal(back, in, len);
    if (len > 1 && kind != SYNC_COMPRESS_NONE)
        assert_int_equal(sync_decompress(kind, copy, n, back, len - 1, &back_len), EL_FULL);
    *out_len = n;
    free(back);
    free(copy);
    sync_compress_free(c);
}

static void test_round_trips(void **state)
{
    (void)state;
    static const enum sync_compression kinds[] = {SYNC_COMPRESS_NONE, SYNC_COMPRESS_GZIP,
                                                  SYNC_COMPRESS_ZSTD};
    char *sensor = malloc(MAX_IN);
    unsigned char *noise = malloc(MAX_IN);
    int events = 0;
    size_t slen = sensor_ndjson(sensor, MAX_IN, 0, 5000, &events);
    uint64_t x = 88172645463325252ULL;
    for (size_t i = 0; i < MAX_IN; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise[i] = (unsigned char)x;
    }
    for (size_t k = 0; k < 3; k++) {
        size_t n;
        round_trip(kinds[k], "", 0, &n);
        round_trip(kinds[k], "x", 1, &n);
        round_trip(kinds[k], noise, MAX_IN, &n); /* worst case fits the preallocated buffer */
        round_trip(kinds[k], sensor, slen, &n);
        printf("# %s: %zu -> %zu bytes (%.1fx, %.1f B/event) on %d events of sensor ndjson\n",
               kinds[k] == SYNC_COMPRESS_NONE ? "none" : sync_compress_encoding(kinds[k]), slen, n,
               (double)slen / (double)n, (double)n / events, events);
        if (kinds[k] != SYNC_COMPRESS_NONE)
            assert_true(n * 4 < slen);
    }
    free(sensor);
    free(noise);
}

static void test_limits_and_garbage(void **state)
{
    (void)state;
    struct sync_compressor *c;
    const void *out;
    size_t n;
    char buf[64];
    static const char garbage[] = "this is not compressed at all";
    assert_int_equal(sync_compress_new(SYNC_COMPRESS_GZIP, 16, &c), EL_OK);
    assert_int_equal(sync_compress(c, garbage, sizeof garbage, &out, &n), EL_INVAL);
    sync_compress_free(c);
    sync_compress_free(NULL);
    assert_int_equal(
        sync_decompress(SYNC_COMPRESS_GZIP, garbage, sizeof garbage, buf, sizeof buf, &n),
        EL_CORRUPT);
    assert_int_equal(
        sync_decompress(SYNC_COMPRESS_ZSTD, garbage, sizeof garbage, buf, sizeof buf, &n),
        EL_CORRUPT);
    assert_int_equal(sync_decompress(SYNC_COMPRESS_NONE, garbage, sizeof garbage, buf, 4, &n),
                     EL_FULL);
    assert_null(sync_compress_encoding(SYNC_COMPRESS_NONE));
    assert_string_equal(sync_compress_encoding(SYNC_COMPRESS_GZIP), "gzip");
    assert_string_equal(sync_compress_encoding(SYNC_COMPRESS_ZSTD), "zstd");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_limits_and_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
