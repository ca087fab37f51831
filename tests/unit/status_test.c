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

static void fill_text(char *t, size_t cap)
{
    memset(t, 'x', cap - 1);
    t[cap - 1] = '\0';
}

/* Every optional section and field shown, every text at its longest,
 * every counter at its widest: the document still fits the core's buffer
 * (STATUS_DOC_MAX), and a reload's result shows. */
static void test_status_worst_case_fits(void **state)
{
    static char buf[STATUS_DOC_MAX];
    struct status_snapshot s;
    (void)state;
    memset(&s, 0xff, sizeof s); /* every counter at its widest; then each bool and double */
    s.state = s.version = s.clock_source = s.clock_waiting = NULL;
    s.mqtt_connected = s.mqtt_tcp_nodelay = s.control_connected = s.ingest_held = true;
    s.sparkplug_on = s.log_full_paused = s.has_queries = s.batch.running = true;
    s.batch.last.full = s.batch.last.skipped = s.sync.enabled = s.batch.tiers_known = true;
    s.storage_error = "journal: no space for a new segment (ingest held, not acknowledged)";
    s.broker_dropped = INT64_MAX;
    s.clock_synced = false;
    s.batch.watermark_seq = s.sync.acked_seq = INT64_MAX;
    s.batch.last_run_wall_ms = s.sync.last_success_ms = s.reload_last_ms = 4102444799000;
    s.batch.last.wall_ms = 4102444799000;
    s.batch.last.cpu_s = s.rate_per_s = s.sync.rate_per_s = 1e18;
    s.sync.oldest_unsent_age_s = INT64_MAX;
    fill_text(s.batch.last_trigger, sizeof s.batch.last_trigger);
    fill_text(s.batch.last_error, sizeof s.batch.last_error);
    fill_text(s.sync.last_error, sizeof s.sync.last_error);
    fill_text(s.reload_result, sizeof s.reload_result);
    s.log_max_bytes = s.log_used_bytes = INT64_MAX;
    status_derive(&s);
    size_t n = status_format(&s, buf, sizeof buf);
    print_message("worst-case status document: %zu bytes of %d\n", n, STATUS_DOC_MAX);
    assert_true(n > 0);
    assert_non_null(strstr(buf, "\"reload\":{\"count\":18446744073709551615"));
    assert_non_null(strstr(buf, "\"result\":\"xxx"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_document),
        cmocka_unit_test(test_status_worst_case_fits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
