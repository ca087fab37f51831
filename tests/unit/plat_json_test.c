/* Unit tests of the JSON reading helper (platform/plat_json): strict
 * tokenising, navigation, and the typed getters. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "plat_json.h"

#define TOKENS 128

static el_status parse(struct plat_json *doc, struct plat_json_tok *tok, const char *text)
{
    return plat_json_parse(doc, text, strlen(text), tok, TOKENS);
}

static void test_tokens_and_parents(void **state)
{
    static const char text[] = " {\"a\":1,\"b\":[true,false,null],\"c\":{\"d\":\"x\"},\"e\":[]} ";
    struct plat_json_tok tok[TOKENS];
    struct plat_json doc;
    int b, c;
    (void)state;
    assert_int_equal(parse(&doc, tok, text), EL_OK);
    assert_int_equal(doc.n, 14);
    assert_int_equal(plat_json_type(&doc, 0), PLAT_JSON_OBJECT);
    assert_int_equal(plat_json_count_children(&doc, 0), 4);
    assert_int_equal(tok[1].parent, 0); /* key "a" */
    assert_int_equal(tok[2].parent, 1); /* its value hangs off the key */
    b = plat_json_member(&doc, 0, "b");
    assert_int_equal(plat_json_type(&doc, b), PLAT_JSON_ARRAY);
    assert_int_equal(plat_json_count_children(&doc, b), 3);
    assert_int_equal(plat_json_skip(&doc, b), b + 4);
    c = plat_json_member(&doc, 0, "c");
    assert_true(plat_json_eq(&doc, plat_json_member(&doc, c, "d"), "x"));
    assert_int_equal(plat_json_count_children(&doc, plat_json_member(&doc, 0, "e")), 0);
    assert_int_equal(plat_json_first(&doc, plat_json_member(&doc, 0, "e")), -1);
    assert_int_equal(plat_json_skip(&doc, 0), doc.n);
}

static void test_strict_grammar(void **state)
{
    static const char *const bad[] = {
        "",
        "   ",
        "{,}",
        "[1 2]",
        "[1,]",
        "[,1]",
        "{\"a\":1,}",
        "{\"a\" 1}",
        "{\"a\":}",
        "{\"a\"}",
        "{1:2}",
        "1 2",
        "{} []",
        "[01]",
        "[1.]",
        "[.5]",
        "[-]",
        "[1e]",
        "[+1]",
        "[tru]",
        "[nul]",
        "[True]",
        "[\"a\nb\"]",
        "{\"a\":1}}",
        "[\"\\x\"]",
        "[\"\\u12\"]",
        "{\"a\":1",
        "[1,,2]",
        "{\"a\"::1}",
        "[1:2]",
        "{\"a\":1 \"b\":2}",
        "[0x10]",
        "[1]x",
        "{\"k\":[1,2]]",
        "\"unterminated",
    };
    static const char *const good[] = {
        "  {}  ",
        "[]",
        "0",
        "-0.5e+10",
        "\"s\"",
        "true",
        "null",
        "[[],{}]",
        "{\"a\":{\"b\":[1,{\"c\":null}]}}",
        "[1e5,-0,0.0,2E-3]",
        "{\"\":\"\"}",
        "\t[\n1 , 2\r]\n",
        "[\"\\u00e9\\n\\\"\"]",
    };
    struct plat_json_tok tok[TOKENS];
    struct plat_json doc;
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (parse(&doc, tok, bad[i]) != EL_INVAL)
            fail_msg("accepted '%s'", bad[i]);
        assert_int_equal(doc.n, 0);
    }
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        if (parse(&doc, tok, good[i]) != EL_OK)
            fail_msg("refused '%s'", good[i]);
    }
    assert_int_equal(plat_json_parse(&doc, "[1,\0 2]", 7, tok, TOKENS), EL_INVAL);
    assert_int_equal(plat_json_parse(&doc, NULL, 0, tok, TOKENS), EL_INVAL);
}

static void test_depth_limit(void **state)
{
    char text[2 * (PLAT_JSON_MAX_DEPTH + 1) + 1];
    struct plat_json_tok tok[TOKENS];
    struct plat_json doc;
    (void)state;
    for (int depth = PLAT_JSON_MAX_DEPTH; depth <= PLAT_JSON_MAX_DEPTH + 1; depth++) {
        memset(text, '[', (size_t)depth);
        memset(text + depth, ']', (size_t)depth);
        text[2 * depth] = '\0';
        assert_int_equal(parse(&doc, tok, text), depth <= PLAT_JSON_MAX_DEPTH ? EL_OK : EL_INVAL);
    }
}

static void test_token_bounds(void **state)
{
    static const char text[] = "{\"a\":[1,2,3],\"b\":\"x\"}";
    struct plat_json_tok tok[TOKENS];
    struct plat_json doc;
    size_t count = 0;
    (void)state;
    assert_int_equal(plat_json_count(text, strlen(text), &count), EL_OK);
    assert_int_equal(count, 8);
    assert_int_equal(plat_json_parse(&doc, text, strlen(text), tok, count - 1), EL_NOMEM);
    assert_int_equal(doc.n, 0);
    assert_int_equal(plat_json_parse(&doc, text, strlen(text), tok, count), EL_OK);
    assert_int_equal(plat_json_count("[1,@]", 5, &count), EL_INVAL);
    assert_int_equal(plat_json_count(" 12 ", 4, &count), EL_OK); /* a bare number */
    assert_int_equal(count, 1);
    assert_int_equal(plat_json_parse(&doc, " 12 ", 4, tok, 0), EL_NOMEM);
}

static void test_members_and_iteration(void **state)
{
    static const char text[] =
        "{\"k\":1,\"x\":{\"k\":5},\"k\":2,\"a\\u0062\":3,\"arr\":[10,[20,21],{\"v\":30}]}";
    struct plat_json_tok tok[TOKENS];
    struct plat_json doc;
    int arr, e, n = 0, keys = 0;
    int64_t v;
    (void)state;
    assert_int_equal(parse(&doc, tok, text), EL_OK);
    assert_int_equal(plat_json_int64(&doc, plat_json_member(&doc, 0, "k"), &v), EL_OK);
    assert_int_equal(v, 2);                                /* the last duplicate wins */
    assert_int_equal(plat_json_member(&doc, 0, "ab"), -1); /* keys compare raw */
    assert_true(plat_json_member(&doc, 0, "a\\u0062") > 0);
    assert_int_equal(plat_json_member(&doc, 0, "missing"), -1);
    assert_int_equal(plat_json_member(&doc, -1, "k"), -1);
    arr = plat_json_member(&doc, 0, "arr");
    assert_int_equal(plat_json_member(&doc, arr, "v"), -1); /* not an object */
    for (e = plat_json_first(&doc, arr); e >= 0; e = plat_json_next(&doc, arr, e))
        n++;
    assert_int_equal(n, 3);
    e = plat_json_next(&doc, arr, plat_json_first(&doc, arr));
    assert_int_equal(plat_json_type(&doc, e), PLAT_JSON_ARRAY);
    e = plat_json_next(&doc, arr, e);
    assert_true(plat_json_eq(&doc, plat_json_member(&doc, e, "v"), "30"));
    for (e = plat_json_first(&doc, 0); e >= 0; e = plat_json_next(&doc, 0, e))
        keys++;
    assert_int_equal(keys, 5);
    assert_int_equal(plat_json_next(&doc, 0, arr), -1); /* arr is not a child of 0 */
}

static void test_strings(void **state)
{
    static const char text[] =
        "[\"plain\",\"q\\\"\\\\\\/\\b\\f\\n\\r\\t\",\"\\u00e9\\u20ac\","
        "\"\\ud83d\\ude00\",\"\\ud83d!\",\"a\\u0000b\",\"\xc3\xa9\xc3\xa9\",5]";
    struct plat_json_tok tok[TOKENS];
    struct plat_json doc;
    char out[32];
    size_t len = 99;
    int s;
    (void)state;
    assert_int_equal(parse(&doc, tok, text), EL_OK);
    s = plat_json_first(&doc, 0);
    assert_int_equal(plat_json_string(&doc, s, out, sizeof out, &len), EL_OK);
    assert_string_equal(out, "plain");
    assert_int_equal(len, 5);
    s = plat_json_next(&doc, 0, s);
    assert_int_equal(plat_json_string(&doc, s, out, sizeof out, &len), EL_OK);
    assert_string_equal(out, "q\"\\/\b\f\n\r\t");
    s = plat_json_next(&doc, 0, s);
    assert_int_equal(plat_json_string(&doc, s, out, sizeof out, &len), EL_OK);
    assert_string_equal(out, "\xc3\xa9\xe2\x82\xac");
    s = plat_json_next(&doc, 0, s);
    assert_int_equal(plat_json_string(&doc, s, out, sizeof out, &len), EL_OK);
    assert_string_equal(out, "\xf0\x9f\x98\x80"); /* a surrogate pair joined */
    s = plat_json_next(&doc, 0, s);
    assert_int_equal(plat_json_string(&doc, s, out, sizeof out, &len), EL_OK);
    assert_string_equal(out, "\xef\xbf\xbd!"); /* a lone surrogate: U+FFFD */
    s = plat_json_next(&doc, 0, s);
    assert_int_equal(plat_json_string(&doc, s, out, sizeof out, &len), EL_OK);
    assert_int_equal(len, 3); /* \u0000 is a byte the length counts */
    assert_memory_equal(out, "a\0b", 4);
    s = plat_json_next(&doc, 0, s);
    assert_int_equal(plat_json_string(&doc, s, out, 4, &len), EL_NOMEM);
    assert_string_equal(out, "\xc3\xa9"); /* cut at a whole character */
    assert_int_equal(len, 2);
    assert_int_equal(plat_json_string(&doc, s, out, 0, &len), EL_NOMEM);
    s = plat_json_next(&doc, 0, s);
    assert_int_equal(plat_json_string(&doc, s, out, sizeof out, NULL), EL_INVAL);
    assert_string_equal(out, "");
    assert_int_equal(plat_json_string(&doc, -1, out, sizeof out, &len), EL_INVAL);
}

static void test_numbers_and_literals(void **state)
{
    static const char text[] = "[0,-0,9223372036854775807,-9223372036854775808,9223372036854775808,"
                               "1.0,1e3,\"5\",true,false,null,21.5,-1e-3,1e999,"
                               "1.000000000000000000000000000000000000000000000000000000000000001]";
    struct plat_json_tok tok[TOKENS];
    struct plat_json doc;
    int i[20], n = 0;
    int64_t v = 7;
    double d = 0;
    bool b = false;
    (void)state;
    assert_int_equal(parse(&doc, tok, text), EL_OK);
    for (int e = plat_json_first(&doc, 0); e >= 0 && n < 20; e = plat_json_next(&doc, 0, e))
        i[n++] = e;
    assert_int_equal(n, 15);
    assert_int_equal(plat_json_int64(&doc, i[0], &v), EL_OK);
    assert_int_equal(v, 0);
    assert_int_equal(plat_json_int64(&doc, i[1], &v), EL_OK);
    assert_int_equal(v, 0);
    assert_int_equal(plat_json_int64(&doc, i[2], &v), EL_OK);
    assert_true(v == INT64_MAX);
    assert_int_equal(plat_json_int64(&doc, i[3], &v), EL_OK);
    assert_true(v == INT64_MIN);
    for (int k = 4; k <= 10; k++)
        assert_int_equal(plat_json_int64(&doc, i[k], &v), EL_INVAL);
    assert_true(v == INT64_MIN); /* untouched on failure */
    assert_int_equal(plat_json_double(&doc, i[11], &d), EL_OK);
    assert_true(d == 21.5);
    assert_int_equal(plat_json_double(&doc, i[12], &d), EL_OK);
    assert_true(d == -1e-3);
    assert_int_equal(plat_json_double(&doc, i[5], &d), EL_OK);
    assert_true(d == 1.0);
    assert_int_equal(plat_json_double(&doc, i[13], &d), EL_OK);
    assert_true(isinf(d) && d > 0);
    assert_int_equal(plat_json_double(&doc, i[14], &d), EL_INVAL); /* > PLAT_JSON_NUMBER_MAX */
    assert_int_equal(plat_json_double(&doc, i[7], &d), EL_INVAL);  /* a string */
    assert_int_equal(plat_json_double(&doc, i[10], &d), EL_INVAL); /* null */
    assert_int_equal(plat_json_bool(&doc, i[8], &b), EL_OK);
    assert_true(b);
    assert_int_equal(plat_json_bool(&doc, i[9], &b), EL_OK);
    assert_false(b);
    assert_int_equal(plat_json_bool(&doc, i[0], &b), EL_INVAL);
    assert_true(plat_json_is_null(&doc, i[10]));
    assert_false(plat_json_is_null(&doc, i[8]));
    assert_false(plat_json_is_null(&doc, -1));
}

static void test_bad_indices(void **state)
{
    struct plat_json_tok tok[TOKENS];
    struct plat_json doc;
    size_t len = 5;
    int64_t v;
    (void)state;
    assert_int_equal(parse(&doc, tok, "[1]"), EL_OK);
    assert_int_equal(plat_json_type(&doc, -1), PLAT_JSON_NONE);
    assert_int_equal(plat_json_type(&doc, 2), PLAT_JSON_NONE);
    assert_null(plat_json_raw(&doc, 7, &len));
    assert_int_equal(len, 0);
    assert_false(plat_json_eq(&doc, -1, ""));
    assert_int_equal(plat_json_skip(&doc, -1), doc.n);
    assert_int_equal(plat_json_first(&doc, 1), -1);
    assert_int_equal(plat_json_next(&doc, 0, 1), -1);
    assert_int_equal(plat_json_count_children(&doc, -1), 0);
    assert_int_equal(plat_json_int64(&doc, -1, &v), EL_INVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokens_and_parents),    cmocka_unit_test(test_strict_grammar),
        cmocka_unit_test(test_depth_limit),           cmocka_unit_test(test_token_bounds),
        cmocka_unit_test(test_members_and_iteration), cmocka_unit_test(test_strings),
        cmocka_unit_test(test_numbers_and_literals),  cmocka_unit_test(test_bad_indices),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
