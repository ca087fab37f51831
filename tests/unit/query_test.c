/* Unit tests of the request parser (firmware/query). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "query.h"

#define NOW INT64_C(1767225600000)

static bool parse(const char *text, struct query *q, const char **code)
{
    char err[200];
    return query_parse(text, strlen(text), NOW, q, code, err, sizeof err);
}

static void test_range_defaults_and_fields(void **state)
{
    struct query q;
    const char *code;
    (void)state;
    assert_true(parse("{\"series\":\"a/b\"}", &q, &code));
    assert_int_equal(q.op, QUERY_RANGE);
    assert_string_equal(q.series, "a/b");
    assert_true(q.from_ms == NOW - 3600000 && q.to_ms == NOW && q.step_ms == 60000);
    assert_int_equal(q.n_aggs, 5);
    assert_true(parse("{\"match\":\"s/+/t\",\"from\":\"-90s\",\"to\":\"now\",\"step\":\"500ms\","
                      "\"agg\":[\"p95\",\"stddev\",\"p99.5\"],\"id\":7,\"reply_to\":\"r/x\"}",
                      &q, &code));
    assert_true(q.is_match && q.from_ms == NOW - 90000 && q.step_ms == 500);
    assert_int_equal(q.n_aggs, 3);
    assert_true(q.aggs[0].kind == QAGG_QUANTILE && q.aggs[0].q == 0.95);
    assert_true(q.aggs[2].q > 0.9949 && q.aggs[2].q < 0.9951);
    assert_true(q.wants_quantiles);
    assert_string_equal(q.id, "7");
    assert_string_equal(q.reply_to, "r/x");
    assert_true(parse("{\"series\":\"a\",\"from\":\"2026-01-01T00:00:00Z\",\"to\":1767229200000,"
                      "\"step\":60000,\"id\":\"x\"}",
                      &q, &code));
    assert_true(q.from_ms == NOW && q.to_ms == NOW + 3600000 && q.step_ms == 60000);
    assert_string_equal(q.id, "\"x\"");
    assert_true(parse("{\"op\":\"metrics\",\"id\":3}", &q, &code));
    assert_true(q.op == QUERY_METRICS);
    assert_string_equal(q.id, "3");
}

/* op deadletters: 100 rows by default, everything since 1970, any reason. */
static void test_dead_letters(void **state)
{
    struct query q;
    const char *code;
    (void)state;
    assert_true(parse("{\"op\":\"deadletters\"}", &q, &code));
    assert_true(q.op == QUERY_DEAD_LETTERS && q.limit == 100 && q.since_ms == 0 && !q.has_reason &&
                !q.has_series);
    assert_true(parse("{\"op\":\"deadletters\",\"reason\":\"no_value\",\"since\":\"-1h\","
                      "\"n\":7,\"match\":\"z/#\"}",
                      &q, &code));
    assert_true(q.has_reason && strcmp(q.reason, "no_value") == 0 && q.since_ms == NOW - 3600000 &&
                q.limit == 7 && q.is_match && strcmp(q.series, "z/#") == 0);
}

/* op replay_deadletters: 1000 per request by default, after seq 0; the
 * dead letters a topic filter or exact topic selects. */
static void test_replay_dead_letters(void **state)
{
    struct query q;
    const char *code;
    (void)state;
    assert_true(parse("{\"op\":\"replay_deadletters\"}", &q, &code));
    assert_true(q.op == QUERY_REPLAY_DEAD_LETTERS && q.limit == 1000 && q.after_seq == 0 &&
                q.since_ms == 0 && !q.has_reason && !q.has_series);
    assert_true(parse("{\"op\":\"replay_deadletters\",\"after\":1234,\"n\":50,"
                      "\"reason\":\"no_value\",\"match\":\"zigbee2mqtt/#\",\"since\":\"-1d\"}",
                      &q, &code));
    assert_true(q.after_seq == 1234 && q.limit == 50 && q.has_reason &&
                strcmp(q.reason, "no_value") == 0 && q.since_ms == NOW - 86400000);
    assert_true(query_name_selected(&q, "zigbee2mqtt/kitchen", 19));
    assert_false(query_name_selected(&q, "tele/x/SENSOR", 13));
    assert_true(parse("{\"op\":\"replay_deadletters\",\"series\":\"junk/x\"}", &q, &code));
    assert_true(query_name_selected(&q, "junk/x", 6));
    assert_false(query_name_selected(&q, "junk/xy", 7));
    assert_false(query_name_selected(&q, "junk/", 5));
}

static void test_errors(void **state)
{
    static const char *const bad[] = {"",
                                      "[]",
                                      "{",
                                      "{\"series\":1}",
                                      "{\"op\":\"nope\"}",
                                      "{\"series\":\"a\",\"agg\":[\"x\"]}",
                                      "{\"series\":\"a\",\"from\":5,\"to\":4}",
                                      "{\"series\":\"a\",\"step\":\"1y\"}",
                                      "{\"series\":\"a\",\"from\":\"-100d\",\"step\":\"1ms\"}",
                                      "{\"bogus\":1}",
                                      "{\"series\":\"a\"} {}",
                                      "{\"series\":\"a\",\"agg\":[\"p0\"]}",
                                      "{\"series\":\"a\",\"match\":\"b\"}",
                                      "{\"op\":\"last\",\"n\":1001}",
                                      "{\"op\":\"deadletters\",\"n\":0}",
                                      "{\"op\":\"deadletters\",\"reason\":\"a-reason-longer-than-"
                                      "thirty-one-bytes\"}",
                                      "{\"op\":\"deadletters\",\"since\":\"soon\"}",
                                      "{\"op\":\"replay_deadletters\",\"after\":-1}",
                                      "{\"op\":\"replay_deadletters\",\"after\":\"-1h\"}",
                                      "{\"op\":\"replay_deadletters\",\"n\":1001}",
                                      "{\"series\":\"a\\u0000\"}"};
    struct query q;
    const char *code;
    char err[200];
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        bool ok = query_parse(bad[i], strlen(bad[i]), NOW, &q, &code, err, sizeof err);
        assert_false(ok);
        assert_true(strlen(err) > 0);
        assert_true(strcmp(code, "bad_request") == 0 || strcmp(code, "too_large") == 0);
    }
    /* reply_to and id survive a bad request so the error can be delivered */
    const char *t = "{\"reply_to\":\"r/1\",\"id\":\"q\",\"op\":\"bad\"}";
    assert_false(query_parse(t, strlen(t), NOW, &q, &code, err, sizeof err));
    assert_true(q.has_reply_to && q.has_id);
    /* reply_to's escapes are decoded; what they decode to is the topic
     * check's business (a control character is refused there) */
    t = "{\"op\":\"series\",\"reply_to\":\"r\\/x\\u00e9\\u0001\"}";
    assert_true(query_parse(t, strlen(t), NOW, &q, &code, err, sizeof err));
    assert_true(q.has_reply_to);
    assert_int_equal(q.reply_to_len, 6);
    assert_memory_equal(q.reply_to, "r/x\xc3\xa9\x01", 6);
    /* too long: kept cut, with a length the check refuses */
    char big[2 * sizeof q.reply_to + 64];
    int n = snprintf(big, sizeof big, "{\"op\":\"series\",\"reply_to\":\"");
    memset(big + n, 'y', sizeof q.reply_to + 10);
    snprintf(big + n + sizeof q.reply_to + 10, sizeof big - (size_t)n - sizeof q.reply_to - 10,
             "\"}");
    assert_true(query_parse(big, strlen(big), NOW, &q, &code, err, sizeof err));
    assert_true(q.has_reply_to);
    assert_true(q.reply_to_len > sizeof q.reply_to - 1);
    assert_int_equal(strlen(q.reply_to), sizeof q.reply_to - 1);
}

/* The request queue is full: the busy reply's topic is read alone, exactly
 * as query_parse reads it (it refused escaped topics that a parsed request
 * was answered on). */
static void test_reply_to_alone(void **state)
{
    (void)state;
    struct query q;
    const char *code;
    char err[200], out[sizeof q.reply_to];
    size_t full = 0;
    static const char *const texts[] = {
        "{\"op\":\"series\",\"reply_to\":\"r\\/x\\u00e9\\u0001\"}",
        "{\"reply_to\":\"a/b\",\"op\":\"bad\",\"reply_to\":\"c/d\"}",
        "{\"reply_to\":\"plain/"
        "topic\",\"series\":\"s\",\"from\":\"-1h\",\"to\":\"now\",\"step\":\"1m\"}",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        (void)query_parse(texts[i], strlen(texts[i]), NOW, &q, &code, err, sizeof err);
        assert_true(q.has_reply_to);
        assert_true(query_reply_to(texts[i], strlen(texts[i]), out, sizeof out, &full));
        assert_int_equal(full, q.reply_to_len);
        assert_memory_equal(out, q.reply_to, full);
    }
    assert_string_equal(out, "plain/topic");
    /* none, not a string, not an object, not JSON */
    static const char *const none[] = {"{\"op\":\"series\"}", "{\"reply_to\":5}", "[\"reply_to\"]",
                                       "reply_to"};
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++)
        assert_false(query_reply_to(none[i], strlen(none[i]), out, sizeof out, &full));
    /* too long: cut, with a length above any valid one */
    char big[2 * sizeof out + 64];
    int n = snprintf(big, sizeof big, "{\"reply_to\":\"");
    memset(big + n, 'y', sizeof out + 10);
    snprintf(big + n + sizeof out + 10, sizeof big - (size_t)n - sizeof out - 10, "\"}");
    assert_true(query_reply_to(big, strlen(big), out, sizeof out, &full));
    assert_true(full > sizeof out - 1);
    assert_int_equal(strlen(out), sizeof out - 1);
}

static void test_topic_match(void **state)
{
    (void)state;
    assert_true(mqtt_topic_matches("#", "a/b", 3));
    assert_true(mqtt_topic_matches("a/#", "a", 1));
    assert_true(mqtt_topic_matches("a/+/c", "a/b/c", 5));
    assert_false(mqtt_topic_matches("a/+/c", "a/b/d", 5));
    assert_true(mqtt_topic_matches("+/+", "x/y", 3));
    assert_false(mqtt_topic_matches("+", "x/y", 3));
    assert_true(mqtt_topic_matches("a/b", "a/b", 3));
    assert_false(mqtt_topic_matches("a/b", "a/bc", 4));
    assert_true(mqtt_topic_matches("+/#", "a/b/c", 5));
}

static void test_durations(void **state)
{
    int64_t ms;
    (void)state;
    assert_true(query_parse_duration("90s", 3, &ms) && ms == 90000);
    assert_true(query_parse_duration("1.5h", 4, &ms) && ms == 5400000);
    assert_true(query_parse_duration("7d", 2, &ms) && ms == 604800000);
    assert_false(query_parse_duration("0s", 2, &ms));
    assert_false(query_parse_duration("-1s", 3, &ms));
    assert_false(query_parse_duration("1x", 2, &ms));
    assert_false(query_parse_duration("0.1ms", 5, &ms));
}

/* Epoch-ms digits: up to 18 are taken; 19 could overflow int64 (a fuzzing
 * find: 9999999999999999999 was multiplied past INT64_MAX). */
static void test_time_digits(void **state)
{
    (void)state;
    int64_t t = 0;
    assert_true(query_parse_time("1767225600000", 13, 0, &t));
    assert_int_equal(t, 1767225600000);
    assert_true(query_parse_time("999999999999999999", 18, 0, &t));
    assert_int_equal(t, 999999999999999999);
    assert_false(query_parse_time("9999999999999999999", 19, 0, &t));
    assert_false(query_parse_time("99999999999999999999", 20, 0, &t));
}

static void test_watch(void **state)
{
    struct query q;
    const char *code;
    char err[200];
    (void)state;
    assert_true(parse("{\"op\":\"watch\",\"series\":\"a/b\",\"step\":\"1s\",\"expires_s\":60,"
                      "\"open\":true,\"id\":\"w\"}",
                      &q, &code));
    assert_true(q.op == QUERY_WATCH && q.expires_s == 60 && q.open && q.step_ms == 1000);
    assert_true(parse("{\"op\":\"watch\",\"match\":\"a/#\"}", &q, &code));
    assert_true(q.expires_s == 300 && !q.open && q.is_match);
    assert_false(parse("{\"op\":\"watch\",\"series\":\"a\",\"expires_s\":3601}", &q, &code));
    assert_false(parse("{\"op\":\"watch\",\"series\":\"a\",\"expires_s\":0}", &q, &code));
    assert_false(parse("{\"op\":\"watch\"}", &q, &code));
    assert_string_equal(code, "bad_request");
    assert_true(parse("{\"op\":\"unwatch\",\"id\":3}", &q, &code));
    assert_int_equal(q.op, QUERY_UNWATCH);
    assert_true(query_parse_agg_list("count, p95 ,mean", &q, err, sizeof err));
    assert_true(q.n_aggs == 3 && q.wants_quantiles && q.aggs[1].q == 0.95);
    assert_string_equal(q.aggs[2].name, "mean");
    assert_false(query_parse_agg_list("count,", &q, err, sizeof err));
    assert_false(query_parse_agg_list("count,\"x", &q, err, sizeof err));
    assert_false(query_parse_agg_list("p101", &q, err, sizeof err));
    assert_non_null(strstr(err, "'p101' is no aggregate"));
    assert_false(query_parse_agg_list("p1,p2,p3,p4,p5,p6,p7,p8,p9,p10,p11,p12,p13,p14,p15,p16,p17",
                                      &q, err, sizeof err));
    assert_non_null(strstr(err, "more than 16"));
    assert_true(query_parse_agg_list("p1,p2,p3,p4,p5,p6,p7,p8,p9,p10,p11,p12,p13,p14,p15,p16", &q,
                                     err, sizeof err));
    assert_int_equal(q.n_aggs, 16);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_range_defaults_and_fields),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_dead_letters),
        cmocka_unit_test(test_replay_dead_letters),
        cmocka_unit_test(test_topic_match),
        cmocka_unit_test(test_reply_to_alone),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_watch),
        cmocka_unit_test(test_time_digits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
