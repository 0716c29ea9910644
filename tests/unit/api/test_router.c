/*
 * Tests of src/api/router.c: every route of API.md with and without its trailing slash, the
 * 404 shapes (empty, extra or missing segments, wrong prefixes, "/" and ""), percent-decoding
 * of the {user} / {name} segments (including bad and truncated escapes), the raw query after
 * '?', the method classifier, and the Allow header and metrics name of each route. Paths are
 * copied into heap buffers of their exact size, without a terminating NUL, so that the
 * sanitizer build catches any read past the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/router.h"

/* The outcome of matching one path, with the path buffer kept alive for the segments that
 * point into it. */
typedef struct match {
    h2o_mem_pool_t pool;
    char *buffer;
    sk_route_t route;
} match_t;

static void match_run(match_t *match, const char *path, size_t len)
{
    h2o_mem_init_pool(&match->pool);
    match->buffer = malloc(len > 0 ? len : 1);
    assert_non_null(match->buffer);
    memcpy(match->buffer, path, len);
    /* Garbage first: the router must reset every field. */
    memset(&match->route, 0x5a, sizeof(match->route));
    sk_router_match(&match->pool, h2o_iovec_init(match->buffer, len), &match->route);
}

static void match_dispose(match_t *match)
{
    h2o_mem_clear_pool(&match->pool);
    free(match->buffer);
}

static void assert_iovec(h2o_iovec_t actual, const char *expected, size_t expected_len,
                         const char *path, const char *what)
{
    if (actual.len != expected_len ||
        (expected_len != 0 && memcmp(actual.base, expected, expected_len) != 0))
        fail_msg("%s: %s is '%.*s' (%zu bytes), expected '%.*s' (%zu bytes)", path, what,
                 (int)actual.len, actual.base, actual.len, (int)expected_len, expected,
                 expected_len);
}

/* Matches `path` and checks every field of the result. */
static void expect_route(const char *path, sk_route_id_t id, const char *user, const char *coupon,
                         const char *query)
{
    match_t match;
    match_run(&match, path, strlen(path));
    if (match.route.id != id)
        fail_msg("%s: route %s, expected %s", path, sk_router_name(match.route.id),
                 sk_router_name(id));
    assert_iovec(match.route.user, user, strlen(user), path, "user");
    assert_iovec(match.route.coupon, coupon, strlen(coupon), path, "coupon");
    assert_iovec(match.route.query, query, strlen(query), path, "query");
    match_dispose(&match);
}

static void expect_not_found(const char *path)
{
    match_t match;
    match_run(&match, path, strlen(path));
    if (match.route.id != SK_ROUTE_NOT_FOUND)
        fail_msg("%s: matched %s, expected not found", path, sk_router_name(match.route.id));
    match_dispose(&match);
}

static void test_fixed_routes(void **state)
{
    (void)state;
    expect_route("/api/users", SK_ROUTE_USERS, "", "", "");
    expect_route("/api/users/", SK_ROUTE_USERS, "", "", "");
    expect_route("/api/auth", SK_ROUTE_AUTH, "", "", "");
    expect_route("/api/auth/", SK_ROUTE_AUTH, "", "", "");
    expect_route("/api/auth/logout", SK_ROUTE_LOGOUT, "", "", "");
    expect_route("/api/auth/logout/", SK_ROUTE_LOGOUT, "", "", "");
    expect_route("/healthz", SK_ROUTE_HEALTHZ, "", "", "");
    expect_route("/healthz/", SK_ROUTE_HEALTHZ, "", "", "");
    expect_route("/readyz", SK_ROUTE_READYZ, "", "", "");
    expect_route("/readyz/", SK_ROUTE_READYZ, "", "", "");
    expect_route("/metrics", SK_ROUTE_METRICS, "", "", "");
    expect_route("/metrics/", SK_ROUTE_METRICS, "", "", "");
    expect_route("/openapi.json", SK_ROUTE_OPENAPI, "", "", "");
    expect_route("/openapi.json/", SK_ROUTE_OPENAPI, "", "", "");
    expect_route("/openapi%2Ejson", SK_ROUTE_OPENAPI, "", "", "");
    expect_route("/status", SK_ROUTE_STATUS, "", "", "");
    expect_route("/status/", SK_ROUTE_STATUS, "", "", "");
    expect_route("/status.json", SK_ROUTE_STATUS_DATA, "", "", "");
    expect_route("/status.json?seller=a&page=2", SK_ROUTE_STATUS_DATA, "", "", "seller=a&page=2");
    expect_route("/status%2Ejson", SK_ROUTE_STATUS_DATA, "", "", "");
}

static void test_coupon_routes(void **state)
{
    (void)state;
    expect_route("/api/users/saler_0/coupons", SK_ROUTE_COUPONS, "saler_0", "", "");
    expect_route("/api/users/saler_0/coupons/", SK_ROUTE_COUPONS, "saler_0", "", "");
    expect_route("/api/users/c/coupons", SK_ROUTE_COUPONS, "c", "", "");
    expect_route("/api/users/saler_0/coupons/saler_0_0", SK_ROUTE_GRAB, "saler_0", "saler_0_0", "");
    expect_route("/api/users/saler_0/coupons/saler_0_0/", SK_ROUTE_GRAB, "saler_0", "saler_0_0",
                 "");
    expect_route("/api/users/s/coupons/n", SK_ROUTE_GRAB, "s", "n", "");
    /* Names are case-sensitive and kept as they are; fixed words match exactly. */
    expect_route("/api/users/Saler/coupons/Coupon", SK_ROUTE_GRAB, "Saler", "Coupon", "");
    /* Names that look like fixed words are still names. */
    expect_route("/api/users/coupons/coupons", SK_ROUTE_COUPONS, "coupons", "", "");
    expect_route("/api/users/users/coupons/api", SK_ROUTE_GRAB, "users", "api", "");
    /* Characters other than '/', '?' and '%' pass through untouched ('+' is not a space). */
    expect_route("/api/users/a+b/coupons/x.y~z", SK_ROUTE_GRAB, "a+b", "x.y~z", "");
}

static void test_not_found_shapes(void **state)
{
    (void)state;
    static const char *const paths[] = {
        "",
        "/",
        "//",
        "///",
        "api/users",
        "api",
        "healthz",
        "/api",
        "/api/",
        "//api/users",
        "/api//users",
        "/api/users//",
        "/api/users//coupons",
        "/api/users//coupons/",
        "/api/users//coupons/c",
        "/api/users/alice",
        "/api/users/alice/",
        "/api/users/alice//coupons",
        "/api/users/alice/coupon",
        "/api/users/alice/Coupons",
        "/api/users/alice/couponsx",
        "/api/users/alice/coupons//",
        "/api/users/alice/coupons//c",
        "/api/users/alice/coupons/c//",
        "/api/users/alice/coupons/c/extra",
        "/api/users/alice/coupons/c/extra/",
        "/api/users/alice/coupons/c/d/e",
        "/api/users/alice/coupons/c/d/e/f/g/h/i/j",
        "/a/b/c/d/e/f",
        "/a/b/c/d/e/f/g",
        "/API/users",
        "/Api/users",
        "/api/Users",
        "/api/user",
        "/api/usersx",
        "/apix/users",
        "/ap/users",
        "/api/auth/logout/x",
        "/api/auth/logoutx",
        "/api/auth/login",
        "/api/auth//logout",
        "/api/authx",
        "/api/healthz",
        "/api/metrics",
        "/healthz/x",
        "/healthz//",
        "/Healthz",
        "/healthzz",
        "/health",
        "/metrics/x",
        "/openapi",
        "/openapi.json/x",
        "/openapi.yaml",
        "/api/openapi.json",
        "/status.jso",
        "/status.json/x",
        "/status/x",
        "/Status",
        "/statusjson",
        "/api/status",
        "/x",
        "/users",
        "/auth",
        "/users/a/coupons",
        "/x/users/a/coupons",
        "/x/users/a/coupons/b",
        "/api/x/a/coupons",
        "/api/x/a/coupons/b",
        "/api/auth/a/coupons",
        " /api/users",
        "/api/users ",
        "\\api\\users",
        /* Fixed words are decoded too, but must then match exactly. */
        "/api/%75ser",
        "/%61pi/user",
        "/api/users/a/%63oupon",
        "/api/users/a/%zzoupons",
    };
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        expect_not_found(paths[i]);
}

static void test_deep_path_not_found(void **state)
{
    (void)state;
    /* 10000 segments: the matcher stops after the sixth, and reads nothing past the end. */
    size_t count = 10000;
    char *path = malloc(2 * count);
    assert_non_null(path);
    for (size_t i = 0; i < count; i++) {
        path[2 * i] = '/';
        path[2 * i + 1] = 'a';
    }
    match_t match;
    match_run(&match, path, 2 * count);
    assert_int_equal(match.route.id, SK_ROUTE_NOT_FOUND);
    match_dispose(&match);
    free(path);
}

static void test_long_name_is_routed(void **state)
{
    (void)state;
    /* Length limits belong to the handlers; the router passes any length through. */
    char path[400];
    char name[300];
    memset(name, 'n', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    snprintf(path, sizeof(path), "/api/users/%s/coupons", name);
    expect_route(path, SK_ROUTE_COUPONS, name, "", "");
}

static void test_percent_decoding(void **state)
{
    (void)state;
    expect_route("/api/users/a%2Fb/coupons", SK_ROUTE_COUPONS, "a/b", "", "");
    expect_route("/api/users/a%2fb/coupons", SK_ROUTE_COUPONS, "a/b", "", "");
    expect_route("/api/users/%2F/coupons", SK_ROUTE_COUPONS, "/", "", "");
    expect_route("/api/users/%2F%2F/coupons/%2F", SK_ROUTE_GRAB, "//", "/", "");
    expect_route("/api/users/%41%62c/coupons", SK_ROUTE_COUPONS, "Abc", "", "");
    expect_route("/api/users/%4a%4A/coupons", SK_ROUTE_COUPONS, "JJ", "", "");
    expect_route("/api/users/s/coupons/big%20sale", SK_ROUTE_GRAB, "s", "big sale", "");
    expect_route("/api/users/s/coupons/50%25", SK_ROUTE_GRAB, "s", "50%", "");
    /* One decoding pass only: "%2541" is "%41", not "A". */
    expect_route("/api/users/%2541/coupons", SK_ROUTE_COUPONS, "%41", "", "");
    /* '?' encoded is part of the name, not the query. */
    expect_route("/api/users/s/coupons/a%3Fb?page=2", SK_ROUTE_GRAB, "s", "a?b", "page=2");
    /* UTF-8 bytes come through as bytes. */
    expect_route("/api/users/%E4%BD%A0%E5%A5%BD/coupons", SK_ROUTE_COUPONS,
                 "\xe4\xbd\xa0\xe5\xa5\xbd", "", "");
    expect_route("/api/users/\xe4\xbd\xa0/coupons", SK_ROUTE_COUPONS, "\xe4\xbd\xa0", "", "");
    /* An escape at the very end of the segment and of the path. */
    expect_route("/api/users/s/coupons/ab%41", SK_ROUTE_GRAB, "s", "abA", "");
    expect_route("/api/users/s/coupons/ab%41/", SK_ROUTE_GRAB, "s", "abA", "");
    expect_route("/api/users/s/coupons/ab%41?", SK_ROUTE_GRAB, "s", "abA", "");
}

static void test_fixed_words_are_decoded(void **state)
{
    (void)state;
    /* API.md: path segments are percent-decoded before use; the original (Gin) matched
     * routes on the decoded path, so its clients may have escaped any letter. */
    expect_route("/api/%75sers", SK_ROUTE_USERS, "", "", "");
    expect_route("/%61pi/users/a/%63oupons", SK_ROUTE_COUPONS, "a", "", "");
    expect_route("/api/auth/log%6Fut", SK_ROUTE_LOGOUT, "", "", "");
    expect_route("/%68ealthz", SK_ROUTE_HEALTHZ, "", "", "");
}

static void test_percent_decoding_nul(void **state)
{
    (void)state;
    /* %00 decodes to a NUL byte inside the name; rejecting it is the handlers' job. */
    static const char path[] = "/api/users/a%00b/coupons";
    match_t match;
    match_run(&match, path, sizeof(path) - 1);
    assert_int_equal(match.route.id, SK_ROUTE_COUPONS);
    assert_int_equal(match.route.user.len, 3);
    assert_memory_equal(match.route.user.base, "a\0b", 3);
    match_dispose(&match);
}

static void test_bad_escapes_not_found(void **state)
{
    (void)state;
    static const char *const paths[] = {
        "/api/users/%zz/coupons",
        "/api/users/%G0/coupons",
        "/api/users/%0G/coupons",
        "/api/users/%/coupons",
        "/api/users/%4/coupons",
        "/api/users/ab%/coupons",
        "/api/users/ab%4/coupons",
        "/api/users/%%41/coupons",
        "/api/users/% 1/coupons",
        "/api/users/%-1/coupons",
        "/api/users/s/coupons/%zz",
        "/api/users/s/coupons/%",
        "/api/users/s/coupons/%4",
        "/api/users/s/coupons/ab%4",
        "/api/users/s/coupons/ab%4/",
        "/api/users/s/coupons/ab%4?page=1",
        "/api/users/s/coupons/ab%",
        "/api/users/s/coupons/%41%4",
        "/api/users/%zz/coupons/ok",
        "/api/users/ok/coupons/%zz",
        /* Segments that would be empty, before or after decoding. */
        "/api/users//coupons/%41",
        "/api/users/%41/coupons//",
    };
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        expect_not_found(paths[i]);
}

static void test_query_extraction(void **state)
{
    (void)state;
    expect_route("/api/users/s/coupons?page=2", SK_ROUTE_COUPONS, "s", "", "page=2");
    expect_route("/api/users/s/coupons/?page=2", SK_ROUTE_COUPONS, "s", "", "page=2");
    expect_route("/api/users/s/coupons?page=1&page=2", SK_ROUTE_COUPONS, "s", "", "page=1&page=2");
    expect_route("/api/users/s/coupons?", SK_ROUTE_COUPONS, "s", "", "");
    expect_route("/api/users?x", SK_ROUTE_USERS, "", "", "x");
    expect_route("/api/users/?", SK_ROUTE_USERS, "", "", "");
    expect_route("/api/auth?a=b", SK_ROUTE_AUTH, "", "", "a=b");
    expect_route("/healthz?probe", SK_ROUTE_HEALTHZ, "", "", "probe");
    /* Only the first '?' splits; the query is raw (no decoding). */
    expect_route("/metrics?a?b/c%zz", SK_ROUTE_METRICS, "", "", "a?b/c%zz");
    /* A '/' in the query does not make a segment. */
    expect_route("/api/users/s/coupons?next=/api/users", SK_ROUTE_COUPONS, "s", "",
                 "next=/api/users");
    expect_route("/api/users/s/coupons/c?x", SK_ROUTE_GRAB, "s", "c", "x");
    /* The query is extracted even when the path matches nothing. */
    expect_route("?page=3", SK_ROUTE_NOT_FOUND, "", "", "page=3");
    expect_route("/nowhere?page=3", SK_ROUTE_NOT_FOUND, "", "", "page=3");
    expect_route("/?q", SK_ROUTE_NOT_FOUND, "", "", "q");
    expect_route("/api/users//coupons?page=1", SK_ROUTE_NOT_FOUND, "", "", "page=1");
}

static void test_query_points_into_path(void **state)
{
    (void)state;
    static const char path[] = "/api/users/s/coupons?page=7";
    match_t match;
    match_run(&match, path, sizeof(path) - 1);
    assert_int_equal(match.route.id, SK_ROUTE_COUPONS);
    assert_ptr_equal(match.route.query.base, match.buffer + strlen("/api/users/s/coupons?"));
    assert_int_equal(match.route.query.len, 6);
    match_dispose(&match);
}

static void test_methods(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        sk_method_t method;
    } cases[] = {
        {"GET", SK_METHOD_GET},       {"POST", SK_METHOD_POST},     {"PATCH", SK_METHOD_PATCH},
        {"get", SK_METHOD_OTHER},     {"Post", SK_METHOD_OTHER},    {"patch", SK_METHOD_OTHER},
        {"PUT", SK_METHOD_OTHER},     {"DELETE", SK_METHOD_OTHER},  {"HEAD", SK_METHOD_GET},
        {"OPTIONS", SK_METHOD_OTHER}, {"", SK_METHOD_OTHER},        {"GE", SK_METHOD_OTHER},
        {"GETT", SK_METHOD_OTHER},    {"POSTS", SK_METHOD_OTHER},   {"PATC", SK_METHOD_OTHER},
        {" GET", SK_METHOD_OTHER},    {"CONNECT", SK_METHOD_OTHER}, {"TRACE", SK_METHOD_OTHER},
        {"head", SK_METHOD_OTHER},    {"HEA", SK_METHOD_OTHER},     {"HEADS", SK_METHOD_OTHER},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = strlen(cases[i].text);
        char *copy = malloc(len > 0 ? len : 1);
        assert_non_null(copy);
        memcpy(copy, cases[i].text, len);
        sk_method_t method = sk_router_method(h2o_iovec_init(copy, len));
        free(copy);
        if (method != cases[i].method)
            fail_msg("method '%s': %d, expected %d", cases[i].text, (int)method,
                     (int)cases[i].method);
    }
}

static void test_allowed_methods(void **state)
{
    (void)state;
    assert_int_equal(sk_router_allowed(SK_ROUTE_NOT_FOUND), 0);
    assert_int_equal(sk_router_allowed(SK_ROUTE_USERS), SK_METHOD_POST);
    assert_int_equal(sk_router_allowed(SK_ROUTE_AUTH), SK_METHOD_POST);
    assert_int_equal(sk_router_allowed(SK_ROUTE_LOGOUT), SK_METHOD_POST);
    assert_int_equal(sk_router_allowed(SK_ROUTE_COUPONS), SK_METHOD_GET | SK_METHOD_POST);
    assert_int_equal(sk_router_allowed(SK_ROUTE_GRAB), SK_METHOD_PATCH);
    assert_int_equal(sk_router_allowed(SK_ROUTE_HEALTHZ), SK_METHOD_GET);
    assert_int_equal(sk_router_allowed(SK_ROUTE_READYZ), SK_METHOD_GET);
    assert_int_equal(sk_router_allowed(SK_ROUTE_METRICS), SK_METHOD_GET);
    assert_int_equal(sk_router_allowed(SK_ROUTE_OPENAPI), SK_METHOD_GET);
    assert_int_equal(sk_router_allowed(SK_ROUTE_STATUS), SK_METHOD_GET);
    assert_int_equal(sk_router_allowed(SK_ROUTE_STATUS_DATA), SK_METHOD_GET);
    assert_int_equal(sk_router_allowed(SK_ROUTE_COUNT), 0);
    /* No route ever allows an unknown method. */
    for (int route = 0; route < SK_ROUTE_COUNT; route++)
        assert_int_equal(sk_router_allowed((sk_route_id_t)route) & SK_METHOD_OTHER, 0);
}

static void test_allow_header(void **state)
{
    (void)state;
    assert_string_equal(sk_router_allow_header(SK_ROUTE_NOT_FOUND), "");
    assert_string_equal(sk_router_allow_header(SK_ROUTE_USERS), "POST");
    assert_string_equal(sk_router_allow_header(SK_ROUTE_AUTH), "POST");
    assert_string_equal(sk_router_allow_header(SK_ROUTE_LOGOUT), "POST");
    assert_string_equal(sk_router_allow_header(SK_ROUTE_COUPONS), "GET, HEAD, POST");
    assert_string_equal(sk_router_allow_header(SK_ROUTE_GRAB), "PATCH");
    assert_string_equal(sk_router_allow_header(SK_ROUTE_HEALTHZ), "GET, HEAD");
    assert_string_equal(sk_router_allow_header(SK_ROUTE_READYZ), "GET, HEAD");
    assert_string_equal(sk_router_allow_header(SK_ROUTE_METRICS), "GET, HEAD");
    assert_string_equal(sk_router_allow_header(SK_ROUTE_OPENAPI), "GET, HEAD");
    assert_string_equal(sk_router_allow_header(SK_ROUTE_STATUS), "GET, HEAD");
    assert_string_equal(sk_router_allow_header(SK_ROUTE_STATUS_DATA), "GET, HEAD");
    assert_string_equal(sk_router_allow_header(SK_ROUTE_COUNT), "");
}

static void test_route_names(void **state)
{
    (void)state;
    assert_string_equal(sk_router_name(SK_ROUTE_NOT_FOUND), "not_found");
    assert_string_equal(sk_router_name(SK_ROUTE_USERS), "register");
    assert_string_equal(sk_router_name(SK_ROUTE_AUTH), "login");
    assert_string_equal(sk_router_name(SK_ROUTE_LOGOUT), "logout");
    assert_string_equal(sk_router_name(SK_ROUTE_COUPONS), "coupons");
    assert_string_equal(sk_router_name(SK_ROUTE_GRAB), "grab");
    assert_string_equal(sk_router_name(SK_ROUTE_HEALTHZ), "healthz");
    assert_string_equal(sk_router_name(SK_ROUTE_READYZ), "readyz");
    assert_string_equal(sk_router_name(SK_ROUTE_METRICS), "metrics");
    assert_string_equal(sk_router_name(SK_ROUTE_OPENAPI), "openapi");
    assert_string_equal(sk_router_name(SK_ROUTE_STATUS), "status");
    assert_string_equal(sk_router_name(SK_ROUTE_STATUS_DATA), "status_json");
    assert_string_equal(sk_router_name(SK_ROUTE_COUNT), "unknown");
    assert_string_equal(sk_router_name((sk_route_id_t)1000), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_routes),
        cmocka_unit_test(test_coupon_routes),
        cmocka_unit_test(test_not_found_shapes),
        cmocka_unit_test(test_deep_path_not_found),
        cmocka_unit_test(test_long_name_is_routed),
        cmocka_unit_test(test_percent_decoding),
        cmocka_unit_test(test_fixed_words_are_decoded),
        cmocka_unit_test(test_percent_decoding_nul),
        cmocka_unit_test(test_bad_escapes_not_found),
        cmocka_unit_test(test_query_extraction),
        cmocka_unit_test(test_query_points_into_path),
        cmocka_unit_test(test_methods),
        cmocka_unit_test(test_allowed_methods),
        cmocka_unit_test(test_allow_header),
        cmocka_unit_test(test_route_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
