/* Unit tests of the status document (firmware/daemon/status): the JSON
 * shape a snapshot turns into, and the bound of the caller's buffer. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "status.h"

static void test_status_document(void **state)
{
    char buf[4096];
    struct status_snapshot s;
    (void)state;
    memset(&s, 0, sizeof s);
    s.uptime_s = 7;
    s.accepted = 100;
    s.rejected[DECODE_MALFORMED] = 2;
    s.rejected[INGEST_REASON_SERIES_LIMIT] = 3;
    s.log_seq = 105;
    status_derive(&s);
    size_t n = status_format(&s, buf, sizeof buf);
    assert_true(n > 0);
    assert_non_null(strstr(buf, "\"state\":\"online\""));
    assert_non_null(strstr(buf, "\"accepted\":100"));
    assert_non_null(strstr(buf, "\"malformed\":2"));
    assert_non_null(strstr(buf, "\"series_limit\":3"));
    assert_non_null(strstr(buf, "\"dead_letters\":5"));
    assert_non_null(strstr(buf, "\"seq\":105"));
    assert_non_null(strstr(buf, "\"error\":null"));
    assert_non_null(strstr(buf, "\"source\":"));
    assert_null(strstr(buf, "\"queries\""));      /* no serving thread in this snapshot */
    assert_null(strstr(buf, "\"used_bytes\""));   /* no storage.max_bytes */
    assert_null(strstr(buf, "\"last_trigger\"")); /* no batch run yet */
    assert_non_null(strstr(buf, "\"waiting\":")); /* clock_synced false */
    assert_int_equal(status_format(&s, buf, 50), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_document),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
