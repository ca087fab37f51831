/* libFuzzer target: the request parser must never crash, read past its input
 * or return inconsistent results. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "query.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct query q;
    const char *code = NULL;
    char err[200];
    /* an exact-size copy so ASan sees any over-read */
    char *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    bool ok = query_parse(buf, size, INT64_C(1767225600000), &q, &code, err, sizeof err);
    if (!ok && (!code || err[0] == '\0'))
        abort();
    if (ok && q.op == QUERY_RANGE &&
        (q.from_ms >= q.to_ms || q.step_ms <= 0 || q.n_aggs < 1 || q.n_aggs > QUERY_MAX_AGGS))
        abort();
    if (q.has_id && strlen(q.id) > QUERY_ID_MAX)
        abort();
    free(buf);
    return 0;
}
