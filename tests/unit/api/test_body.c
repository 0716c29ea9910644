/*
 * Tests of src/api/body.c: the JSON object reader (including hostile input), the field
 * accessors, RFC 3339 times and the `page` query parameter. Inputs are copied into buffers
 * of their exact size, without a terminating NUL, so that a sanitizer build catches any read
 * past the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/body.h"

/* Parses exactly `len` bytes held in a buffer of exactly that size. */
static json_t *parse_bytes(const char *data, size_t len)
{
    char *copy = malloc(len > 0 ? len : 1);
    assert_non_null(copy);
    memcpy(copy, data, len);
    json_t *object = sk_body_parse_object(copy, len);
    free(copy);
    return object;
}

static json_t *parse(const char *text)
{
    return parse_bytes(text, strlen(text));
}

/* Builds prefix + `count` copies of `unit` + suffix. */
static char *repeat(const char *prefix, const char *unit, size_t count, const char *suffix)
{
    size_t prefix_len = strlen(prefix);
    size_t unit_len = strlen(unit);
    size_t suffix_len = strlen(suffix);
    char *text = malloc(prefix_len + unit_len * count + suffix_len + 1);
    assert_non_null(text);
    char *p = text;
    memcpy(p, prefix, prefix_len);
    p += prefix_len;
    for (size_t i = 0; i < count; i++) {
        memcpy(p, unit, unit_len);
        p += unit_len;
    }
    memcpy(p, suffix, suffix_len);
    p[suffix_len] = '\0';
    return text;
}

static void assert_rejected(const char *text)
{
    json_t *object = parse(text);
    if (object != NULL) {
        fail_msg("accepted: %s", text);
    }
}

static void assert_string_field(json_t *object, const char *name, const char *expected,
                                size_t expected_len)
{
    const char *value = NULL;
    size_t len = 0;
    assert_int_equal(sk_body_string(object, name, &value, &len), 0);
    assert_int_equal(len, expected_len);
    assert_memory_equal(value, expected, expected_len);
}

/* The single string field "s" of `text`, which must parse. */
static void assert_decodes_to(const char *text, const char *expected, size_t expected_len)
{
    json_t *object = parse(text);
    if (object == NULL) {
        fail_msg("rejected: %s", text);
    }
    assert_string_field(object, "s", expected, expected_len);
    json_decref(object);
}

static void test_parse_simple_object(void **state)
{
    (void)state;
    json_t *object = parse("{\"username\":\"customer_0\",\"password\":\"123456\","
                           "\"kind\":\"customer\",\"amount\":20,\"ok\":true,\"no\":false,"
                           "\"nothing\":null,\"list\":[1,\"two\",{\"x\":3}],\"sub\":{}}");
    assert_non_null(object);
    assert_true(json_is_object(object));
    assert_int_equal(json_object_size(object), 9);
    assert_string_field(object, "username", "customer_0", 10);
    assert_string_field(object, "kind", "customer", 8);
    assert_true(json_is_integer(json_object_get(object, "amount")));
    assert_int_equal(json_integer_value(json_object_get(object, "amount")), 20);
    assert_true(json_is_true(json_object_get(object, "ok")));
    assert_true(json_is_false(json_object_get(object, "no")));
    assert_true(json_is_null(json_object_get(object, "nothing")));
    json_t *list = json_object_get(object, "list");
    assert_true(json_is_array(list));
    assert_int_equal(json_array_size(list), 3);
    assert_int_equal(json_integer_value(json_array_get(list, 0)), 1);
    assert_string_equal(json_string_value(json_array_get(list, 1)), "two");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(list, 2), "x")), 3);
    assert_true(json_is_object(json_object_get(object, "sub")));
    json_decref(object);
}

static void test_parse_whitespace(void **state)
{
    (void)state;
    json_t *object = parse(" \t\r\n{ \t\r\n\"a\" \t\r\n: \t\r\n[ 1 , 2 ] \t\r\n, \"b\" : { } }"
                           " \t\r\n");
    assert_non_null(object);
    assert_int_equal(json_array_size(json_object_get(object, "a")), 2);
    json_decref(object);

    object = parse("{}");
    assert_non_null(object);
    assert_int_equal(json_object_size(object), 0);
    json_decref(object);
}

static void test_parse_rejects_non_objects(void **state)
{
    (void)state;
    static const char *const inputs[] = {
        "",   " ",   "\n",   "[]",   "[{}]",  "\"x\"", "\"{}\"", "1",
        "-1", "1.5", "true", "null", "false", "{}}",   "{}{}",   "{} []",
    };
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        assert_rejected(inputs[i]);
    }
    assert_null(sk_body_parse_object(NULL, 0));
    assert_null(parse_bytes("", 0));
}

static void test_parse_rejects_malformed(void **state)
{
    (void)state;
    static const char *const inputs[] = {
        "{",
        "}",
        "{{}}",
        "{\"a\"}",
        "{\"a\":}",
        "{\"a\" 1}",
        "{\"a\":1,}",
        "{,}",
        "{,\"a\":1}",
        "{\"a\":1,,\"b\":2}",
        "{\"a\":1 \"b\":2}",
        "{\"a\":1;\"b\":2}",
        "{'a':1}",
        "{\"a\":'x'}",
        "{a:1}",
        "{1:1}",
        "{null:1}",
        "{\"a\":01}",
        "{\"a\":-01}",
        "{\"a\":00}",
        "{\"a\":1.}",
        "{\"a\":.5}",
        "{\"a\":-}",
        "{\"a\":-a}",
        "{\"a\":+1}",
        "{\"a\":1e}",
        "{\"a\":1e+}",
        "{\"a\":1E-}",
        "{\"a\":1.e5}",
        "{\"a\":0x10}",
        "{\"a\":1_000}",
        "{\"a\":NaN}",
        "{\"a\":Infinity}",
        "{\"a\":-Infinity}",
        "{\"a\":tru}",
        "{\"a\":True}",
        "{\"a\":TRUE}",
        "{\"a\":nul}",
        "{\"a\":nulll}",
        "{\"a\":falsey}",
        "{\"a\":[1,]}",
        "{\"a\":[,1]}",
        "{\"a\":[1 2]}",
        "{\"a\":[}",
        "{\"a\":{]}",
        "{\"a\":[1}",
        "{\"a\":{\"b\":1]}",
        "{\"a\":\"x}",
        "{\"a\":\"x\\\"}",
        "{\"a\":\"\\x\"}",
        "{\"a\":\"\\a\"}",
        "{\"a\":\"\\U0041\"}",
        "{\"a\":\"\\u12\"}",
        "{\"a\":\"\\u12g4\"}",
        "{\"a\":\"\\u\"}",
        "{\"a\":\"\\",
        "{\"a\":\"tab\there\"}",
        "{\"a\":\"line\nbreak\"}",
        "{\"a\":\"\x1f\"}",
        "{\"a\":1}x",
        "{\"a\":1} 1",
        "{\"a\":1}\n,",
        "{\"a\":1}//",
        "{/*c*/}",
        "{\"a\":1/*c*/}",
        "\xEF\xBB\xBF{}",
        "{\"a\"\xC2\xA0:1}",
        "{\"a\":1\x0b}",
        "{\"a\":1\x0c}",
        "{\"a\" :: 1}",
        "{\"a\":1:2}",
        "{\"a\":\"1\"\"2\"}",
    };
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        assert_rejected(inputs[i]);
    }
}

static void test_parse_rejects_every_truncation(void **state)
{
    (void)state;
    const char *text = "{\"a\":[1,-2.5e3,\"x\\u00e9\\ud83d\\ude00\",{\"b\":null}],\"c\":true,"
                       "\"d\":false,\"e\":\"\xE2\x82\xAC\"}";
    size_t len = strlen(text);
    json_t *whole = parse_bytes(text, len);
    assert_non_null(whole);
    json_decref(whole);
    for (size_t cut = 0; cut < len; cut++) {
        json_t *object = parse_bytes(text, cut);
        if (object != NULL) {
            fail_msg("accepted a prefix of %zu bytes", cut);
        }
    }
}

static void test_parse_rejects_nul_bytes(void **state)
{
    (void)state;
    static const char trailing[] = "{\"a\":1}\0";
    static const char in_object[] = "{\0}";
    static const char in_key[] = "{\"a\0\":1}";
    static const char in_string[] = "{\"a\":\"x\0y\"}";
    static const char leading[] = "\0{}";
    static const char in_number[] = "{\"a\":1\0}";
    assert_null(parse_bytes(trailing, sizeof(trailing) - 1));
    assert_null(parse_bytes(in_object, sizeof(in_object) - 1));
    assert_null(parse_bytes(in_key, sizeof(in_key) - 1));
    assert_null(parse_bytes(in_string, sizeof(in_string) - 1));
    assert_null(parse_bytes(leading, sizeof(leading) - 1));
    assert_null(parse_bytes(in_number, sizeof(in_number) - 1));
}

static void test_parse_depth_limit(void **state)
{
    (void)state;
    /* The body itself is level 1: 31 more levels are allowed, 32 more are not. */
    char *text = repeat("{\"a\":", "[", SK_BODY_MAX_DEPTH - 1, "");
    char *closing = repeat(text, "]", SK_BODY_MAX_DEPTH - 1, "}");
    json_t *object = parse(closing);
    assert_non_null(object);
    json_t *value = json_object_get(object, "a");
    for (int i = 0; i < SK_BODY_MAX_DEPTH - 2; i++) {
        assert_true(json_is_array(value));
        value = json_array_get(value, 0);
    }
    assert_true(json_is_array(value));
    assert_int_equal(json_array_size(value), 0);
    json_decref(object);
    free(text);
    free(closing);

    text = repeat("{\"a\":", "[", SK_BODY_MAX_DEPTH, "");
    closing = repeat(text, "]", SK_BODY_MAX_DEPTH, "}");
    assert_rejected(closing);
    free(text);
    free(closing);

    text = repeat("", "{\"a\":", SK_BODY_MAX_DEPTH, "1");
    closing = repeat(text, "}", SK_BODY_MAX_DEPTH, "");
    object = parse(closing);
    assert_non_null(object);
    json_decref(object);
    free(text);
    free(closing);

    text = repeat("", "{\"a\":", SK_BODY_MAX_DEPTH + 1, "1");
    closing = repeat(text, "}", SK_BODY_MAX_DEPTH + 1, "");
    assert_rejected(closing);
    free(text);
    free(closing);
}

static void test_parse_hostile_nesting(void **state)
{
    (void)state;
    char *text = repeat("{\"a\":", "[", 10000, "");
    assert_rejected(text);
    free(text);

    text = repeat("", "[", 10000, "");
    assert_rejected(text);
    free(text);

    text = repeat("", "{\"a\":", 10000, "");
    assert_rejected(text);
    free(text);

    text = repeat("{\"a\":", "[", 10000, "");
    char *closed = repeat(text, "]", 10000, "}");
    assert_rejected(closed);
    free(text);
    free(closed);

    text = repeat("", "{", 10000, "");
    assert_rejected(text);
    free(text);
}

static void test_parse_rejects_invalid_utf8(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "\x80",                     /* lone continuation byte */
        "\xBF",                     /* lone continuation byte */
        "\xC3",                     /* truncated two-byte sequence */
        "\xC3(",                    /* bad continuation */
        "\xC0\xAF",                 /* overlong '/' */
        "\xC1\xBF",                 /* overlong */
        "\xE0\x80\xAF",             /* overlong '/' */
        "\xE0\x9F\xBF",             /* overlong */
        "\xE2\x82",                 /* truncated three-byte sequence */
        "\xF0\x80\x80\xAF",         /* overlong '/' */
        "\xF0\x8F\xBF\xBF",         /* overlong */
        "\xED\xA0\x80",             /* U+D800 encoded in UTF-8 */
        "\xED\xBF\xBF",             /* U+DFFF encoded in UTF-8 */
        "\xED\xA0\xBD\xED\xB8\x80", /* CESU-8 surrogate pair */
        "\xF4\x90\x80\x80",         /* above U+10FFFF */
        "\xF5\x80\x80\x80",         /* invalid lead byte */
        "\xF8\x88\x80\x80\x80",     /* five-byte form */
        "\xFE",
        "\xFF",
        "\xF0\x9F\x98", /* truncated four-byte sequence */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char in_value[64];
        char in_key[64];
        char outside[64];
        snprintf(in_value, sizeof(in_value), "{\"s\":\"a%sb\"}", bad[i]);
        snprintf(in_key, sizeof(in_key), "{\"k%s\":1}", bad[i]);
        snprintf(outside, sizeof(outside), "{\"s\":1}%s", bad[i]);
        assert_rejected(in_value);
        assert_rejected(in_key);
        assert_rejected(outside);
    }
    /* Invalid bytes at the very end of the input, inside an unterminated string. */
    assert_null(parse_bytes("{\"s\":\"\xC3", 7));
    assert_null(parse_bytes("{\"s\":\"\xF0\x9F\x98", 9));
}

static void test_parse_accepts_valid_utf8(void **state)
{
    (void)state;
    assert_decodes_to("{\"s\":\"\xC3\xA9\"}", "\xC3\xA9", 2);
    assert_decodes_to("{\"s\":\"\xC2\x80\"}", "\xC2\x80", 2);
    assert_decodes_to("{\"s\":\"\xE2\x82\xAC\"}", "\xE2\x82\xAC", 3);
    assert_decodes_to("{\"s\":\"\xE0\xA0\x80\"}", "\xE0\xA0\x80", 3);
    assert_decodes_to("{\"s\":\"\xED\x9F\xBF\"}", "\xED\x9F\xBF", 3);
    assert_decodes_to("{\"s\":\"\xEE\x80\x80\"}", "\xEE\x80\x80", 3);
    assert_decodes_to("{\"s\":\"\xEF\xBF\xBF\"}", "\xEF\xBF\xBF", 3);
    assert_decodes_to("{\"s\":\"\xF0\x90\x80\x80\"}", "\xF0\x90\x80\x80", 4);
    assert_decodes_to("{\"s\":\"\xF0\x9F\x98\x80\"}", "\xF0\x9F\x98\x80", 4);
    assert_decodes_to("{\"s\":\"\xF4\x8F\xBF\xBF\"}", "\xF4\x8F\xBF\xBF", 4);
    assert_decodes_to("{\"s\":\"\x7F\"}", "\x7F", 1);
    assert_decodes_to("{\"s\":\"\"}", "", 0);
}

static void test_parse_escapes(void **state)
{
    (void)state;
    assert_decodes_to("{\"s\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}", "\"\\/\b\f\n\r\t", 8);
    assert_decodes_to("{\"s\":\"\\u0041\\u00e9\\u00E9\"}", "A\xC3\xA9\xC3\xA9", 5);
    assert_decodes_to("{\"s\":\"\\u20ac\"}", "\xE2\x82\xAC", 3);
    assert_decodes_to("{\"s\":\"\\u0080\\u07ff\\u0800\\uffff\"}",
                      "\xC2\x80\xDF\xBF\xE0\xA0\x80\xEF\xBF\xBF", 10);
    assert_decodes_to("{\"s\":\"\\ud83d\\ude00\"}", "\xF0\x9F\x98\x80", 4);
    assert_decodes_to("{\"s\":\"\\uD800\\uDC00\"}", "\xF0\x90\x80\x80", 4);
    assert_decodes_to("{\"s\":\"\\uDBFF\\uDFFF\"}", "\xF4\x8F\xBF\xBF", 4);
    assert_decodes_to("{\"s\":\"a\\u0000b\"}", "a\0b", 3);
    assert_decodes_to("{\"s\":\"\\u001f\"}", "\x1f", 1);

    assert_rejected("{\"s\":\"\\ud800\"}");
    assert_rejected("{\"s\":\"\\uDBFF\"}");
    assert_rejected("{\"s\":\"\\udc00\"}");
    assert_rejected("{\"s\":\"\\uDFFF\"}");
    assert_rejected("{\"s\":\"\\ude00\\ud83d\"}");
    assert_rejected("{\"s\":\"\\ud800\\u0041\"}");
    assert_rejected("{\"s\":\"\\ud800\\ud800\"}");
    assert_rejected("{\"s\":\"\\ud800x\"}");
    assert_rejected("{\"s\":\"\\ud800\\\"}");
    assert_rejected("{\"s\":\"\\ud800\\n\"}");
    assert_rejected("{\"s\":\"\\ud800\\u\"}");
    assert_rejected("{\"s\":\"\\ud800\\udc0\"}");
    assert_rejected("{\"\\ud800\":1}");
}

static void test_keys_last_occurrence_wins(void **state)
{
    (void)state;
    json_t *object = parse("{\"username\":\"a\",\"Username\":\"b\",\"username\":\"c\"}");
    assert_non_null(object);
    assert_int_equal(json_object_size(object), 1);
    assert_string_field(object, "username", "c", 1);
    assert_null(json_object_get(object, "Username"));
    json_decref(object);

    object = parse("{\"USERNAME\":\"a\",\"username\":\"b\",\"UserName\":\"c\"}");
    assert_non_null(object);
    assert_int_equal(json_object_size(object), 1);
    assert_string_field(object, "username", "c", 1);
    json_decref(object);

    object = parse("{\"a\":1,\"a\":2,\"A\":3,\"a\":4,\"b\":5}");
    assert_non_null(object);
    assert_int_equal(json_object_size(object), 2);
    assert_int_equal(json_integer_value(json_object_get(object, "a")), 4);
    json_decref(object);

    /* A later value of another type replaces an earlier one. */
    object = parse("{\"Amount\":\"1\",\"AMOUNT\":{\"x\":1},\"amount\":null}");
    assert_non_null(object);
    assert_true(json_is_null(json_object_get(object, "amount")));
    json_decref(object);
}

static void test_keys_fold_after_decoding(void **state)
{
    (void)state;
    json_t *object = parse("{\"user\\u006eame\":\"a\",\"USER\\u004eAME\":\"b\"}");
    assert_non_null(object);
    assert_int_equal(json_object_size(object), 1);
    assert_string_field(object, "username", "b", 1);
    json_decref(object);

    object = parse("{\"KIND\":\"saler\",\"Start_At\":5,\"\":1,\"X-Y_Z\":2}");
    assert_non_null(object);
    assert_string_field(object, "kind", "saler", 5);
    assert_int_equal(json_integer_value(json_object_get(object, "start_at")), 5);
    assert_int_equal(json_integer_value(json_object_get(object, "")), 1);
    assert_int_equal(json_integer_value(json_object_get(object, "x-y_z")), 2);
    json_decref(object);

    /* Only ASCII letters fold; other bytes stay as they are. */
    object = parse("{\"\xC3\x84\":1,\"\xC3\xA4\":2}");
    assert_non_null(object);
    assert_int_equal(json_object_size(object), 2);
    json_decref(object);

    /* A key with an escaped NUL is a key of its own, not a truncated "a". */
    object = parse("{\"a\\u0000\":1,\"a\":2}");
    assert_non_null(object);
    assert_int_equal(json_object_size(object), 2);
    assert_int_equal(json_integer_value(json_object_get(object, "a")), 2);
    assert_int_equal(json_integer_value(json_object_getn(object, "a\0", 2)), 1);
    json_decref(object);
}

static void test_nested_keys_not_folded(void **state)
{
    (void)state;
    json_t *object = parse("{\"Outer\":{\"Inner\":1,\"inner\":2,\"Inner\":3}}");
    assert_non_null(object);
    json_t *outer = json_object_get(object, "outer");
    assert_non_null(outer);
    assert_int_equal(json_object_size(outer), 2);
    assert_int_equal(json_integer_value(json_object_get(outer, "Inner")), 3);
    assert_int_equal(json_integer_value(json_object_get(outer, "inner")), 2);
    json_decref(object);
}

static void test_numbers(void **state)
{
    (void)state;
    json_t *object = parse("{\"max\":9223372036854775807,\"min\":-9223372036854775808,"
                           "\"zero\":0,\"negzero\":-0,\"big\":9223372036854775808,"
                           "\"small\":-9223372036854775809,\"huge\":99999999999999999999,"
                           "\"exp\":1e30,\"frac\":10.0,\"half\":1.5,\"e2\":1E2,"
                           "\"neg\":-2.5e-3,\"tiny\":1e-400,\"inf\":1e999999999,"
                           "\"ninf\":-1e400,\"zeroes\":0.000000000000000000000000000025,"
                           "\"plus\":1e+2}");
    assert_non_null(object);
    json_t *value = json_object_get(object, "max");
    assert_true(json_is_integer(value));
    assert_true(json_integer_value(value) == INT64_MAX);
    value = json_object_get(object, "min");
    assert_true(json_is_integer(value));
    assert_true(json_integer_value(value) == INT64_MIN);
    assert_true(json_is_integer(json_object_get(object, "zero")));
    assert_int_equal(json_integer_value(json_object_get(object, "negzero")), 0);
    assert_true(json_is_integer(json_object_get(object, "negzero")));

    static const char *const reals[] = {"big", "small", "huge", "exp",  "frac",   "half", "e2",
                                        "neg", "tiny",  "inf",  "ninf", "zeroes", "plus"};
    for (size_t i = 0; i < sizeof(reals) / sizeof(reals[0]); i++) {
        value = json_object_get(object, reals[i]);
        if (!json_is_real(value)) {
            fail_msg("not a real: %s", reals[i]);
        }
    }
    assert_float_equal(json_real_value(json_object_get(object, "half")), 1.5, 0);
    assert_float_equal(json_real_value(json_object_get(object, "frac")), 10.0, 0);
    assert_float_equal(json_real_value(json_object_get(object, "e2")), 100.0, 0);
    assert_float_equal(json_real_value(json_object_get(object, "plus")), 100.0, 0);
    assert_float_equal(json_real_value(json_object_get(object, "exp")), 1e30, 1e16);
    assert_float_equal(json_real_value(json_object_get(object, "big")), 9.223372036854775808e18,
                       1e4);
    assert_true(json_real_value(json_object_get(object, "small")) < -9.2e18);
    assert_float_equal(json_real_value(json_object_get(object, "neg")), -2.5e-3, 1e-15);
    assert_float_equal(json_real_value(json_object_get(object, "zeroes")), 2.5e-29, 1e-40);
    assert_true(json_real_value(json_object_get(object, "inf")) > 1e308);
    assert_true(json_real_value(json_object_get(object, "ninf")) < -1e308);
    json_decref(object);
}

static void test_very_long_numbers(void **state)
{
    (void)state;
    char *text = repeat("{\"n\":1", "0", 100000, "}");
    json_t *object = parse(text);
    assert_non_null(object);
    assert_true(json_is_real(json_object_get(object, "n")));
    json_decref(object);
    free(text);

    text = repeat("{\"n\":0.", "0", 100000, "1e100000}");
    object = parse(text);
    assert_non_null(object);
    assert_true(json_is_real(json_object_get(object, "n")));
    json_decref(object);
    free(text);

    text = repeat("{\"n\":1e", "9", 100000, "}");
    object = parse(text);
    assert_non_null(object);
    assert_true(json_is_real(json_object_get(object, "n")));
    json_decref(object);
    free(text);
}

static void test_many_keys_and_long_strings(void **state)
{
    (void)state;
    /* 100000 duplicates of one field, in alternating case: linear, and the last wins. */
    char *text = repeat("{", "\"Kind\":\"x\",\"kind\":\"y\",", 50000, "\"KIND\":\"saler\"}");
    json_t *object = parse(text);
    assert_non_null(object);
    assert_int_equal(json_object_size(object), 1);
    assert_string_field(object, "kind", "saler", 5);
    json_decref(object);
    free(text);

    text = repeat("{\"s\":\"", "\\u00e9", 200000, "\"}");
    object = parse(text);
    assert_non_null(object);
    const char *value = NULL;
    size_t len = 0;
    assert_int_equal(sk_body_string(object, "s", &value, &len), 0);
    assert_int_equal(len, 400000);
    assert_memory_equal(value + 399998, "\xC3\xA9", 2);
    json_decref(object);
    free(text);
}

static void test_body_string(void **state)
{
    (void)state;
    json_t *object = parse("{\"name\":\"x\\u0000y\",\"num\":1,\"nul\":null,\"arr\":[\"a\"],"
                           "\"empty\":\"\"}");
    assert_non_null(object);
    assert_string_field(object, "name", "x\0y", 3);
    assert_string_field(object, "empty", "", 0);

    const char *value = "untouched";
    size_t len = 99;
    assert_int_equal(sk_body_string(object, "num", &value, &len), SK_EINVAL);
    assert_int_equal(sk_body_string(object, "nul", &value, &len), SK_EINVAL);
    assert_int_equal(sk_body_string(object, "arr", &value, &len), SK_EINVAL);
    assert_int_equal(sk_body_string(object, "absent", &value, &len), SK_EINVAL);
    assert_int_equal(sk_body_string(object, "NAME", &value, &len), SK_EINVAL);
    assert_int_equal(sk_body_string(NULL, "name", &value, &len), SK_EINVAL);
    assert_string_equal(value, "untouched");
    assert_int_equal(len, 99);
    json_decref(object);
}

static void assert_int_accepted(json_t *value, int64_t min, int64_t max, int64_t expected)
{
    int64_t out = 12345;
    assert_int_equal(sk_body_int(value, min, max, &out), 0);
    assert_true(out == expected);
}

static void assert_int_rejected(json_t *value, int64_t min, int64_t max)
{
    int64_t out = 12345;
    assert_int_equal(sk_body_int(value, min, max, &out), SK_EINVAL);
    assert_int_equal(out, 12345);
}

static void test_body_int_integers(void **state)
{
    (void)state;
    json_t *value = json_integer(20);
    assert_int_accepted(value, 1, 1000000000, 20);
    assert_int_accepted(value, 20, 20, 20);
    assert_int_rejected(value, 21, 100);
    assert_int_rejected(value, 1, 19);
    json_decref(value);

    value = json_integer(0);
    assert_int_accepted(value, 0, 9007199254740991, 0);
    assert_int_rejected(value, 1, 10);
    json_decref(value);

    value = json_integer(-5);
    assert_int_accepted(value, -5, 5, -5);
    assert_int_rejected(value, 0, 5);
    json_decref(value);

    value = json_integer(INT64_MAX);
    assert_int_accepted(value, INT64_MIN, INT64_MAX, INT64_MAX);
    assert_int_rejected(value, 0, INT64_MAX - 1);
    json_decref(value);

    value = json_integer(INT64_MIN);
    assert_int_accepted(value, INT64_MIN, INT64_MAX, INT64_MIN);
    assert_int_rejected(value, INT64_MIN + 1, 0);
    json_decref(value);

    value = json_integer(9007199254740992);
    assert_int_rejected(value, 0, 9007199254740991);
    json_decref(value);
}

static void test_body_int_strings(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int64_t expected;
    } good[] = {
        {"0", 0},
        {"7", 7},
        {"007", 7},
        {"-0", 0},
        {"-007", -7},
        {"20", 20},
        {"-42", -42},
        {"0000000000000000000000000000000001", 1},
        {"9223372036854775807", INT64_MAX},
        {"-9223372036854775808", INT64_MIN},
        {"9007199254740991", 9007199254740991},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        json_t *value = json_string(good[i].text);
        assert_int_accepted(value, INT64_MIN, INT64_MAX, good[i].expected);
        json_decref(value);
    }

    static const char *const bad[] = {
        "+1",
        " 1",
        "1 ",
        "",
        "-",
        "--1",
        "-+1",
        "1e2",
        "10.0",
        "1.",
        ".1",
        "0x10",
        "1_0",
        "1,000",
        "abc",
        "1a",
        "a1",
        "\t1",
        "1\n",
        "\xEF\xBC\x91",
        "9223372036854775808",
        "-9223372036854775809",
        "99999999999999999999",
        "-99999999999999999999",
        "Infinity",
        "NaN",
        "null",
        "true",
        "1-",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *value = json_string(bad[i]);
        int64_t out = 12345;
        if (sk_body_int(value, INT64_MIN, INT64_MAX, &out) != SK_EINVAL) {
            fail_msg("accepted \"%s\"", bad[i]);
        }
        assert_int_equal(out, 12345);
        json_decref(value);
    }

    json_t *value = json_stringn("1\0", 2);
    assert_int_rejected(value, INT64_MIN, INT64_MAX);
    json_decref(value);
    value = json_stringn("\0"
                         "1",
                         2);
    assert_int_rejected(value, INT64_MIN, INT64_MAX);
    json_decref(value);

    value = json_string("1000000001");
    assert_int_rejected(value, 1, 1000000000);
    json_decref(value);
    value = json_string("1000000000");
    assert_int_accepted(value, 1, 1000000000, 1000000000);
    json_decref(value);
    value = json_string("0");
    assert_int_rejected(value, 1, 1000000000);
    json_decref(value);
}

static void test_body_int_other_types(void **state)
{
    (void)state;
    json_t *object = parse("{\"real\":10.0,\"exp\":1e2,\"t\":true,\"f\":false,\"n\":null,"
                           "\"arr\":[1],\"obj\":{\"a\":1},\"big\":99999999999999999999,"
                           "\"small\":-9223372036854775809,\"huge\":1e30}");
    assert_non_null(object);
    static const char *const names[] = {"real", "exp", "t",     "f",    "n",     "arr",
                                        "obj",  "big", "small", "huge", "absent"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        int64_t out = 12345;
        if (sk_body_int(json_object_get(object, names[i]), INT64_MIN, INT64_MAX, &out) !=
            SK_EINVAL) {
            fail_msg("accepted field %s", names[i]);
        }
        assert_int_equal(out, 12345);
    }
    assert_int_rejected(NULL, INT64_MIN, INT64_MAX);
    json_decref(object);
}

static void test_body_int_from_body(void **state)
{
    (void)state;
    json_t *object =
        parse("{\"name\":\"saler_0_0\",\"Amount\":\"20\",\"description\":\"fsdfd\",\"stock\":10}");
    assert_non_null(object);
    assert_int_accepted(json_object_get(object, "amount"), 1, 1000000000, 20);
    assert_int_accepted(json_object_get(object, "stock"), 0, 9007199254740991, 10);
    json_decref(object);
}

static void assert_time(json_t *value, int expected_status, int64_t expected)
{
    int64_t out = 12345;
    assert_int_equal(sk_body_time(value, &out), expected_status);
    if (expected_status == 1) {
        assert_true(out == expected);
    } else {
        assert_int_equal(out, 12345);
    }
}

static void assert_time_text(const char *text, int expected_status, int64_t expected)
{
    json_t *value = json_string(text);
    assert_non_null(value);
    int64_t out = 12345;
    int status = sk_body_time(value, &out);
    if (status != expected_status) {
        fail_msg("\"%s\": status %d, expected %d", text, status, expected_status);
    }
    if (expected_status == 1 && out != expected) {
        fail_msg("\"%s\": %lld, expected %lld", text, (long long)out, (long long)expected);
    }
    if (expected_status != 1) {
        assert_int_equal(out, 12345);
    }
    json_decref(value);
}

static void test_body_time_integers(void **state)
{
    (void)state;
    assert_time(NULL, 0, 0);
    json_t *value = json_null();
    assert_time(value, 0, 0);
    value = json_integer(0);
    assert_time(value, 1, 0);
    json_decref(value);
    value = json_integer(1795600800);
    assert_time(value, 1, 1795600800);
    json_decref(value);
    value = json_integer(INT64_MAX);
    assert_time(value, 1, INT64_MAX);
    json_decref(value);
    value = json_integer(-1);
    assert_time(value, SK_EINVAL, 0);
    json_decref(value);
    value = json_real(1795600800.0);
    assert_time(value, SK_EINVAL, 0);
    json_decref(value);
    value = json_true();
    assert_time(value, SK_EINVAL, 0);
    value = json_false();
    assert_time(value, SK_EINVAL, 0);
    value = json_array();
    assert_time(value, SK_EINVAL, 0);
    json_decref(value);
    value = json_object();
    assert_time(value, SK_EINVAL, 0);
    json_decref(value);

    assert_time_text("1795600800", 1, 1795600800);
    assert_time_text("0", 1, 0);
    assert_time_text("00042", 1, 42);
    assert_time_text("-0", 1, 0);
    assert_time_text("-1", SK_EINVAL, 0);
    assert_time_text("9223372036854775807", 1, INT64_MAX);
    assert_time_text("9223372036854775808", SK_EINVAL, 0);
    assert_time_text("99999999999999999999", SK_EINVAL, 0);
    assert_time_text("+1", SK_EINVAL, 0);
    assert_time_text(" 1", SK_EINVAL, 0);
    assert_time_text("1 ", SK_EINVAL, 0);
    assert_time_text("1e9", SK_EINVAL, 0);
    assert_time_text("1.5", SK_EINVAL, 0);
    assert_time_text("", SK_EINVAL, 0);
    assert_time_text("null", SK_EINVAL, 0);

    json_t *object = parse("{\"start_at\":null,\"end_at\":1e9}");
    assert_non_null(object);
    assert_time(json_object_get(object, "start_at"), 0, 0);
    assert_time(json_object_get(object, "end_at"), SK_EINVAL, 0);
    assert_time(json_object_get(object, "absent"), 0, 0);
    json_decref(object);
}

static void test_body_time_rfc3339_valid(void **state)
{
    (void)state;
    assert_time_text("2026-11-25T10:00:00Z", 1, 1795600800);
    assert_time_text("2026-11-25t10:00:00z", 1, 1795600800);
    assert_time_text("2026-11-25T10:00:00+00:00", 1, 1795600800);
    assert_time_text("2026-11-25T10:00:00-00:00", 1, 1795600800);
    assert_time_text("2026-11-25T10:00:00+02:00", 1, 1795593600);
    assert_time_text("2026-11-25T10:00:00-05:30", 1, 1795620600);
    assert_time_text("2026-11-25T10:00:00.999999999Z", 1, 1795600800);
    assert_time_text("2026-11-25T10:00:00.5+02:00", 1, 1795593600);
    assert_time_text("2026-11-25T10:00:00.000000000000000000000000000001Z", 1, 1795600800);
    assert_time_text("2026-01-01T00:00:00+23:59", 1, 1767139260);
    assert_time_text("2026-01-01T00:00:00-23:59", 1, 1767311940);
    assert_time_text("1970-01-01T00:00:00Z", 1, 0);
    assert_time_text("1970-01-01T01:00:00+01:00", 1, 0);
    assert_time_text("1969-12-31T23:00:00-01:00", 1, 0);
    assert_time_text("2024-02-29T00:00:00Z", 1, 1709164800);
    assert_time_text("2000-02-29T12:34:56Z", 1, 951827696);
    assert_time_text("9999-12-31T23:59:59Z", 1, 253402300799);
    assert_time_text("2026-12-31T23:59:59Z", 1, 1798761599);
    assert_time_text("2026-04-30T00:00:00Z", 1, 1777507200);
}

static void test_body_time_rfc3339_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "2023-02-29T00:00:00Z", /* not a leap year */
        "1900-02-29T00:00:00Z", /* century, not a leap year */
        "2100-02-29T00:00:00Z",
        "2024-02-30T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "2026-06-31T00:00:00Z",
        "2026-09-31T00:00:00Z",
        "2026-11-31T00:00:00Z",
        "2026-01-32T00:00:00Z",
        "2026-01-00T00:00:00Z",
        "2026-00-10T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "2026-11-25T24:00:00Z",
        "2026-11-25T10:60:00Z",
        "2026-11-25T10:00:60Z", /* leap second */
        "2026-11-25T10:00:61Z",
        "2026-11-25T10:00:00", /* no offset */
        "2026-11-25T10:00:00+0200",
        "2026-11-25T10:00:00+02",
        "2026-11-25T10:00:00+2:00",
        "2026-11-25T10:00:00+24:00",
        "2026-11-25T10:00:00+02:60",
        "2026-11-25T10:00:00 Z",
        "2026-11-25T10:00:00Z ",
        "2026-11-25T10:00:00ZZ",
        "2026-11-25T10:00:00UTC",
        "2026-11-25T10:00:00.Z",
        "2026-11-25T10:00:00,5Z",
        "2026-11-25T10:00:00.5",
        "2026-11-25T10:00Z",
        "2026-11-25 10:00:00Z",
        "2026-11-25",
        "2026-11-25T",
        "2026-1-25T10:00:00Z",
        "26-11-25T10:00:00Z",
        "+2026-11-25T10:00:00Z",
        " 2026-11-25T10:00:00Z",
        "2026/11/25T10:00:00Z",
        "2026-11-25T10-00-00Z",
        "2026-11-25X10:00:00Z",
        "2026-11-25T1a:00:00Z",
        "20261125T100000Z",
        "1969-12-31T23:59:59Z", /* before the epoch */
        "1970-01-01T00:30:00+01:00",
        "0000-01-01T00:00:00Z",
        "Z",
        "T",
        "x",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_time_text(bad[i], SK_EINVAL, 0);
    }
    json_t *value = json_stringn("2026-11-25T10:00:00Z\0", 21);
    assert_time(value, SK_EINVAL, 0);
    json_decref(value);
}

/* Runs sk_body_query_page on an exact-size copy of `query`. */
static int query_page(const char *query, int64_t *page)
{
    size_t len = strlen(query);
    char *copy = malloc(len > 0 ? len : 1);
    assert_non_null(copy);
    memcpy(copy, query, len);
    int status = sk_body_query_page(copy, len, page);
    free(copy);
    return status;
}

static void assert_page(const char *query, int64_t expected)
{
    int64_t page = 12345;
    int status = query_page(query, &page);
    if (status != 0 || page != expected) {
        fail_msg("\"%s\": status %d, page %lld, expected %lld", query, status, (long long)page,
                 (long long)expected);
    }
}

static void assert_page_invalid(const char *query)
{
    int64_t page = 12345;
    int status = query_page(query, &page);
    if (status != SK_EINVAL) {
        fail_msg("\"%s\": status %d, page %lld, expected SK_EINVAL", query, status,
                 (long long)page);
    }
}

static void test_query_page(void **state)
{
    (void)state;
    int64_t page = 12345;
    assert_int_equal(sk_body_query_page(NULL, 0, &page), 0);
    assert_int_equal(page, 1);

    assert_page("", 1);
    assert_page("page=3", 3);
    assert_page("a=1&page=3&page=5", 3);
    assert_page("page=3&page=abc", 3);
    assert_page("page=&page=5", 1);
    assert_page("page&page=5", 1);
    assert_page("page=", 1);
    assert_page("page", 1);
    assert_page("page=0", 1);
    assert_page("page=1", 1);
    assert_page("page=2", 2);
    assert_page("page=-0", 1);
    assert_page("page=-7", 1);
    assert_page("page=-9223372036854775808", 1);
    assert_page("page=-99999999999999999999", 1);
    assert_page("page=007", 7);
    assert_page("page=9223372036854775806", INT64_MAX - 1);
    assert_page("page=9223372036854775807", INT64_MAX);
    assert_page("page=9223372036854775808", INT64_MAX);
    assert_page("page=99999999999999999999999999999999999999", INT64_MAX);
    assert_page("page=%32", 2);
    assert_page("page=1%30", 10);
    assert_page("page=%2D5", 1);
    assert_page("pag%65=4", 4);
    assert_page("%70%61%67%65=4", 4);
    assert_page("Page=3", 1);
    assert_page("PAGE=3", 1);
    assert_page("pages=3", 1);
    assert_page("xpage=3", 1);
    assert_page("page%00=3", 1);
    assert_page("a=%zz&page=2", 2);
    assert_page("%zz=1&page=2", 2);
    assert_page("page=2&", 2);
    assert_page("&&page=2&&", 2);
    assert_page("size=10&page=4&sort=name", 4);
    assert_page("=&=&page=6", 6);

    static const char *const bad[] = {
        "page=abc",  "page=1.5", "page=+2",  "page=%2B2",     "page=%",
        "page=%3",   "page=%zz", "page=-",   "page=1e2",      "page=%00",
        "page=2%00", "page=2=3", "page= 2",  "page=2 ",       "page=0x10",
        "page=--1",  "page=1-",  "page=%G1", "page=\xC3\xA9", "a=1&page=x&page=2",
        "page=%2",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_page_invalid(bad[i]);
    }
}

static void test_query_page_respects_length(void **state)
{
    (void)state;
    const char *query = "page=12&x=1";
    int64_t page = 0;
    assert_int_equal(sk_body_query_page(query, 6, &page), 0);
    assert_int_equal(page, 1);
    assert_int_equal(sk_body_query_page(query, 7, &page), 0);
    assert_int_equal(page, 12);
    assert_int_equal(sk_body_query_page(query, 4, &page), 0);
    assert_int_equal(page, 1);
    assert_int_equal(sk_body_query_page(query, 0, &page), 0);
    assert_int_equal(page, 1);
    /* A '%' at the very end must not read past the given length. */
    assert_int_equal(sk_body_query_page("page=%31", 7, &page), SK_EINVAL);
}

/* sk_body_query_string on an exact-size copy of `query`, for the parameter `seller`. */
static void assert_query_string(const char *query, int expected_status, const char *expected)
{
    size_t len = strlen(query);
    char *copy = malloc(len > 0 ? len : 1);
    assert_non_null(copy);
    memcpy(copy, query, len);
    char out[8];
    size_t out_len = 99;
    int status = sk_body_query_string(copy, len, "seller", out, sizeof(out), &out_len);
    free(copy);
    if (status != expected_status || out_len != strlen(expected) ||
        memcmp(out, expected, out_len + 1) != 0)
        fail_msg("\"%s\": status %d, \"%.*s\" (%zu bytes); expected %d, \"%s\"", query, status,
                 (int)(out_len < sizeof(out) ? out_len : 0), out, out_len, expected_status,
                 expected);
}

static void test_query_string(void **state)
{
    (void)state;
    char out[8];
    size_t len = 99;
    assert_int_equal(sk_body_query_string(NULL, 0, "seller", out, sizeof(out), &len), 0);
    assert_int_equal(len, 0);
    assert_query_string("", 0, "");
    assert_query_string("page=2", 0, "");
    assert_query_string("sellers=a", 0, "");
    assert_query_string("Seller=a", 0, "");
    assert_query_string("seller=shop", 1, "shop");
    assert_query_string("seller=", 1, "");
    assert_query_string("seller", 1, "");
    assert_query_string("page=2&seller=a&seller=b", 1, "a"); /* the first wins */
    assert_query_string("seller=a+b", 1, "a b");
    assert_query_string("seller=%61%2Fb", 1, "a/b");
    assert_query_string("sell%65r=x", 1, "x");
    assert_query_string("seller=1234567", 1, "1234567"); /* 7 bytes and the NUL: fits */
    assert_query_string("seller=12345678", SK_EINVAL, "");
    assert_query_string("seller=%zz", SK_EINVAL, "");
    assert_query_string("seller=%4", SK_EINVAL, "");
    assert_query_string("seller=%zz&seller=ok", SK_EINVAL, "");
    /* Nothing past the given length is read. */
    assert_int_equal(sk_body_query_string("seller=ab&x", 8, "seller", out, sizeof(out), &len), 1);
    assert_int_equal(len, 1);
    assert_string_equal(out, "a");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_simple_object),
        cmocka_unit_test(test_parse_whitespace),
        cmocka_unit_test(test_parse_rejects_non_objects),
        cmocka_unit_test(test_parse_rejects_malformed),
        cmocka_unit_test(test_parse_rejects_every_truncation),
        cmocka_unit_test(test_parse_rejects_nul_bytes),
        cmocka_unit_test(test_parse_depth_limit),
        cmocka_unit_test(test_parse_hostile_nesting),
        cmocka_unit_test(test_parse_rejects_invalid_utf8),
        cmocka_unit_test(test_parse_accepts_valid_utf8),
        cmocka_unit_test(test_parse_escapes),
        cmocka_unit_test(test_keys_last_occurrence_wins),
        cmocka_unit_test(test_keys_fold_after_decoding),
        cmocka_unit_test(test_nested_keys_not_folded),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_very_long_numbers),
        cmocka_unit_test(test_many_keys_and_long_strings),
        cmocka_unit_test(test_body_string),
        cmocka_unit_test(test_body_int_integers),
        cmocka_unit_test(test_body_int_strings),
        cmocka_unit_test(test_body_int_other_types),
        cmocka_unit_test(test_body_int_from_body),
        cmocka_unit_test(test_body_time_integers),
        cmocka_unit_test(test_body_time_rfc3339_valid),
        cmocka_unit_test(test_body_time_rfc3339_invalid),
        cmocka_unit_test(test_query_page),
        cmocka_unit_test(test_query_page_respects_length),
        cmocka_unit_test(test_query_string),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
