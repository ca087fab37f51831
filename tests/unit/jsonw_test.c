/* Unit tests of the bounded JSON writer (platform/plat_jsonw) and the status document. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plat_jsonw.h"

/* jw_utf8_valid: well-formed UTF-8 only (control characters are fine:
 * jw_strn escapes them). */
static void test_utf8_valid(void **state)
{
    static const struct {
        const char *s;
        size_t n;
        bool ok;
    } rows[] = {
        {"", 0, true},
        {"plain \t\n text", 13, true},
        {"\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x8c\xa1", 14, true}, /* été € 🌡 */
        {"\x00", 1, true},
        {"\xff", 1, false},
        {"\xc3", 1, false},             /* cut */
        {"\xc0\xaf", 2, false},         /* overlong '/' */
        {"\xed\xa0\x80", 3, false},     /* a surrogate */
        {"\xf4\x90\x80\x80", 4, false}, /* beyond U+10FFFF */
        {"\xe2\x28\xa1", 3, false},     /* bad continuation */
    };
    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        assert_int_equal(jw_utf8_valid(rows[i].s, rows[i].n), rows[i].ok);
}

static void test_nested_and_escapes(void **state)
{
    char buf[256];
    struct jw w;
    (void)state;
    jw_init(&w, buf, sizeof buf);
    jw_obj_begin(&w);
    jw_key(&w, "a");
    jw_int(&w, -5);
    jw_key(&w, "s");
    jw_str(&w, "q\"\\\n\x01");
    jw_key(&w, "arr");
    jw_arr_begin(&w);
    jw_uint(&w, 1);
    jw_double(&w, 21.5);
    jw_double(&w, NAN);
    jw_bool(&w, true);
    jw_obj_begin(&w);
    jw_obj_end(&w);
    jw_arr_end(&w);
    jw_key(&w, "n");
    jw_null(&w);
    jw_obj_end(&w);
    assert_true(jw_ok(&w));
    assert_string_equal(buf,
                        "{\"a\":-5,\"s\":\"q\\\"\\\\\\n\\u0001\",\"arr\":[1,21.5,null,true,{}],"
                        "\"n\":null}");
    assert_int_equal(jw_len(&w), strlen(buf));
}

static void test_doubles_round_trip(void **state)
{
    static const double vals[] = {0.1, 1.0 / 3.0, 1e-300, -2.5e300, 123456789.125, 5e-324};
    char buf[64];
    struct jw w;
    (void)state;
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        jw_init(&w, buf, sizeof buf);
        jw_double(&w, vals[i]);
        assert_true(jw_ok(&w));
        assert_true(strtod(buf, NULL) == vals[i]);
    }
    jw_init(&w, buf, sizeof buf);
    jw_double(&w, 0.1);
    assert_string_equal(buf, "0.1");
}

static void test_overflow_is_reported_not_written_past(void **state)
{
    char buf[16];
    struct jw w;
    (void)state;
    memset(buf, 'Z', sizeof buf);
    jw_init(&w, buf, 10);
    jw_obj_begin(&w);
    jw_key(&w, "long key");
    jw_str(&w, "long value");
    jw_obj_end(&w);
    assert_false(jw_ok(&w));
    assert_true(jw_len(&w) < 10);
    assert_int_equal(buf[10], 'Z');
    assert_int_equal(buf[jw_len(&w)], '\0');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nested_and_escapes),
        cmocka_unit_test(test_utf8_valid),
        cmocka_unit_test(test_doubles_round_trip),
        cmocka_unit_test(test_overflow_is_reported_not_written_past),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
