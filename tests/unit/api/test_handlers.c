/*
 * Tests of the api's handlers (src/api: api.c, users.c, coupons.c, ops.c) against the fake
 * store of tests/unit/support/fake_store.h: the real sk_api app, its per-thread state made
 * by its own thread_create on an h2o loop of the test, requests handed to its handler on a
 * loopback connection (no socket), answers read from what h2o would have written.
 *
 * What API.md says and this checks: the order of the checks (route 404/405, body size 413,
 * token 401, the caller's right to the path 401, body JSON 400, then the fields in the
 * order of each table), each with its errMsg; that no store operation starts when an
 * earlier check refused the request; each route's 503 with Retry-After when the store is
 * unavailable; the grab's outcomes (201, the 204s with X-Seckill-Reason, 401, 429, 503);
 * 204s without a body or Content-Type; and that every request is answered exactly once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <jansson.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sodium.h>
#include <time.h>

#include "api/api.h"
#include "api/openapi.h"
#include "auth/jwt.h"
#include "fake_store.h"
#include "fixture.h"
#include "store/store.h"

#define DEPLOYMENT "0123456789abcdef0123456789abcdef"
#define OTHER_DEPLOYMENT "fedcba9876543210fedcba9876543210"
#define MAX_BODY 1024
#define JSON_TYPE "application/json; charset=utf-8"

static const char secret[] = "handlers-test-secret-0123456789abcdef";
static const char other_secret[] = "another-secret-of-enough-length-0123456";

typedef struct harness {
    h2o_evloop_t *loop;
    h2o_multithread_queue_t *queue;
    h2o_globalconf_t globalconf;
    h2o_hostconf_t *hosts[2];
    h2o_pathconf_t *pathconf;
    h2o_context_t context;
    sk_fake_store_t *fake;
    sk_password_pool_t *passwords;
    sk_api_t *api;
    const sk_http_app_t *app;
    void *thread_data;
    int64_t seller_a, seller_b, customer_c, customer_d; /* user ids in the fake */
} harness_t;

typedef struct response {
    int status;
    char *body; /* malloc'd, NUL-terminated; freed by done() */
    size_t body_len;
    json_t *json; /* the body parsed, NULL when empty or not JSON */
    char content_type[64], retry_after[16], allow[32], reason[32];
    char authorization[SK_JWT_MAX_TOKEN];
    int has_content_type, has_retry_after, has_reason;
} response_t;

/* A connection that keeps what h2o sends instead of writing it to a socket. */
typedef struct loopback {
    h2o_conn_t conn;
    h2o_ostream_t ostream;
    response_t *response;
    int done;
    h2o_req_t req;
} loopback_t;

static void on_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt,
                    h2o_send_state_t state)
{
    loopback_t *lb = H2O_STRUCT_FROM_MEMBER(loopback_t, ostream, self);
    response_t *response = lb->response;
    for (size_t i = 0; i != bufcnt; ++i) {
        response->body = realloc(response->body, response->body_len + bufs[i].len + 1);
        assert_non_null(response->body);
        memcpy(response->body + response->body_len, bufs[i].base, bufs[i].len);
        response->body_len += bufs[i].len;
        response->body[response->body_len] = '\0';
    }
    if (h2o_send_state_is_in_progress(state))
        h2o_proceed_response(req);
    else
        ++lb->done;
}

static socklen_t get_address(h2o_conn_t *conn, struct sockaddr *sa)
{
    (void)conn;
    struct sockaddr_in *sin = (struct sockaddr_in *)sa;
    memset(sin, 0, sizeof(*sin));
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(0x7f000001);
    return sizeof(*sin);
}

static void copy_header(const h2o_headers_t *headers, const h2o_token_t *token, const char *name,
                        char *out, size_t size, int *found)
{
    ssize_t index = token != NULL ? h2o_find_header(headers, token, -1)
                                  : h2o_find_header_by_str(headers, name, strlen(name), -1);
    if (found != NULL)
        *found = index >= 0;
    if (index < 0)
        return;
    const h2o_iovec_t *value = &headers->entries[index].value;
    assert_true(value->len < size);
    memcpy(out, value->base, value->len);
    out[value->len] = '\0';
}

/* Runs one request through the api's handler and the loop until it is answered. The
 * response is the caller's; free its json with json_decref. */
static void request(harness_t *h, response_t *response, const char *method, const char *path,
                    const char *authorization, const char *body)
{
    static const h2o_conn_callbacks_t callbacks = {.get_sockname = get_address,
                                                   .get_peername = get_address};
    memset(response, 0, sizeof(*response));
    loopback_t *lb = calloc(1, sizeof(*lb));
    assert_non_null(lb);
    lb->conn.ctx = &h->context;
    lb->conn.hosts = h->hosts;
    lb->conn.callbacks = &callbacks;
    lb->response = response;
    h2o_init_request(&lb->req, &lb->conn, NULL);
    lb->req._ostr_top = &lb->ostream;
    lb->ostream.do_send = on_send;
    h2o_req_t *req = &lb->req;
    req->version = 0x101;
    req->pathconf = h->pathconf;
    req->input.method = req->method = h2o_strdup(&req->pool, method, SIZE_MAX);
    req->input.path = req->path = h2o_strdup(&req->pool, path, SIZE_MAX);
    if (authorization != NULL)
        h2o_add_header(&req->pool, &req->headers, H2O_TOKEN_AUTHORIZATION, NULL,
                       h2o_strdup(&req->pool, authorization, SIZE_MAX).base, strlen(authorization));
    if (body != NULL)
        req->entity = h2o_strdup(&req->pool, body, SIZE_MAX);

    h->app->handle(h->thread_data, req);
    for (int i = 0; !lb->done && i < 1000; ++i)
        h2o_evloop_run(h->loop, 10);
    assert_int_equal(lb->done, 1);
    /* Answered exactly once: the api counts requests started and answered. */
    assert_false(h->app->thread_busy(h->thread_data));

    response->status = req->res.status;
    copy_header(&req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, response->content_type,
                sizeof(response->content_type), &response->has_content_type);
    copy_header(&req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, response->retry_after,
                sizeof(response->retry_after), &response->has_retry_after);
    copy_header(&req->res.headers, H2O_TOKEN_ALLOW, NULL, response->allow, sizeof(response->allow),
                NULL);
    copy_header(&req->res.headers, NULL, "x-seckill-reason", response->reason,
                sizeof(response->reason), &response->has_reason);
    copy_header(&req->res.headers, H2O_TOKEN_AUTHORIZATION, NULL, response->authorization,
                sizeof(response->authorization), NULL);
    if (response->body_len != 0)
        response->json = json_loadb(response->body, response->body_len, 0, NULL);
    h2o_dispose_request(req);
    free(lb);
}

/* Checks status and errMsg, and that a body is JSON with the JSON content type. */
static void expect(const response_t *response, int status, const char *err_msg)
{
    if (response->status != status)
        fail_msg("status %d, expected %d; body %.*s", response->status, status,
                 (int)response->body_len, response->body);
    assert_non_null(response->json);
    assert_string_equal(response->content_type, JSON_TYPE);
    const char *actual = json_string_value(json_object_get(response->json, "errMsg"));
    assert_non_null(actual);
    assert_string_equal(actual, err_msg);
}

/* Checks a 503 as API.md wants it: a JSON errMsg and Retry-After. */
static void expect_unavailable(const response_t *response)
{
    assert_int_equal(response->status, 503);
    assert_non_null(response->json);
    assert_non_null(json_string_value(json_object_get(response->json, "errMsg")));
    assert_true(response->has_retry_after);
    assert_string_equal(response->retry_after, "1");
}

/* Checks a 204: no body, no Content-Type, the X-Seckill-Reason given (NULL: none). */
static void expect_no_content(const response_t *response, const char *reason)
{
    assert_int_equal(response->status, 204);
    assert_int_equal(response->body_len, 0);
    assert_false(response->has_content_type);
    if (reason == NULL) {
        assert_false(response->has_reason);
    } else {
        assert_true(response->has_reason);
        assert_string_equal(response->reason, reason);
    }
}

static void done(response_t *response)
{
    json_decref(response->json);
    response->json = NULL;
    free(response->body);
    response->body = NULL;
}

/* ---- tokens ---- */

typedef struct token_spec {
    const char *username, *kind;
    int64_t uid;
    int64_t exp_delta; /* seconds from now */
    const char *dep;
    const char *key;
} token_spec_t;

static void make_token_from(const token_spec_t *spec, char *out, size_t size)
{
    sk_jwt_claims_t claims;
    memset(&claims, 0, sizeof(claims));
    snprintf(claims.username, sizeof(claims.username), "%s", spec->username);
    snprintf(claims.kind, sizeof(claims.kind), "%s", spec->kind);
    memcpy(claims.dep, spec->dep != NULL ? spec->dep : DEPLOYMENT, SK_JWT_DEP_LEN);
    claims.uid = spec->uid;
    claims.iat = claims.nbf = (int64_t)time(NULL) - (spec->exp_delta < 0 ? 7200 : 0);
    claims.exp = (int64_t)time(NULL) + (spec->exp_delta != 0 ? spec->exp_delta : 3600);
    sk_jwt_new_jti(&claims);
    const char *key = spec->key != NULL ? spec->key : secret;
    assert_true(sk_jwt_sign((const uint8_t *)key, strlen(key), &claims, out, size) > 0);
}

/* A valid token of a user of the harness. */
static void make_token(const char *username, const char *kind, int64_t uid, char *out, size_t size)
{
    token_spec_t spec = {.username = username, .kind = kind, .uid = uid};
    make_token_from(&spec, out, size);
}

/* ---- the harness ---- */

static void harness_open(harness_t *h, int shares_rate_limits, double rate_limit)
{
    memset(h, 0, sizeof(*h));
    assert_true(sodium_init() >= 0);
    sk_test_loop_create(&h->loop, &h->queue);
    h2o_config_init(&h->globalconf);
    h->hosts[0] =
        h2o_config_register_host(&h->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h->pathconf = h2o_config_register_path(h->hosts[0], "/", 0);
    h2o_context_init(&h->context, h->loop, &h->globalconf);

    h->fake = sk_fake_store_create(DEPLOYMENT, shares_rate_limits);
    assert_non_null(h->fake);
    h->seller_a = sk_fake_store_add_user(h->fake, "saler_a", SK_USER_SELLER, NULL);
    h->seller_b = sk_fake_store_add_user(h->fake, "saler_b", SK_USER_SELLER, NULL);
    h->customer_c = sk_fake_store_add_user(h->fake, "customer_c", SK_USER_CUSTOMER, NULL);
    h->customer_d = sk_fake_store_add_user(h->fake, "customer_d", SK_USER_CUSTOMER, NULL);
    h->passwords = sk_password_pool_create(1, SK_PWHASH_MIN);
    assert_non_null(h->passwords);
    sk_api_config_t config = {
        .jwt_secret = (const uint8_t *)secret,
        .jwt_secret_len = strlen(secret),
        .token_ttl = 3600,
        .max_amount = 1000,
        .max_body = MAX_BODY,
        .rate_limit = rate_limit,
        .rate_burst = 1,
    };
    h->api = sk_api_create(&config, sk_fake_store_base(h->fake), h->passwords);
    assert_non_null(h->api);
    h->app = sk_api_app(h->api);
    h->thread_data = h->app->thread_create(h->app->data, &h->context, h->queue);
    assert_non_null(h->thread_data);
}

static void harness_close(harness_t *h)
{
    h->app->thread_destroy(h->thread_data);
    sk_api_destroy(h->api);
    sk_password_pool_destroy(h->passwords);
    assert_int_equal(sk_fake_store_threads(h->fake), 0);
    sk_store_destroy(sk_fake_store_base(h->fake));
    h2o_multithread_queue_t *context_queue = h->context.queue;
    h2o_context_dispose(&h->context);
#if H2O_VERSION_MAJOR == 2 && H2O_VERSION_MINOR == 2
    /* As in sk_test_loop_destroy: h2o 2.2 closes the context's own queue but never frees
     * it. */
    free(context_queue);
#else
    (void)context_queue;
#endif
    h2o_config_dispose(&h->globalconf);
    sk_test_loop_destroy(h->loop, h->queue);
}

static int setup(void **state)
{
    harness_t *h = malloc(sizeof(*h));
    if (h == NULL)
        return -1;
    harness_open(h, 0, 0);
    *state = h;
    return 0;
}

static int teardown(void **state)
{
    harness_close(*state);
    free(*state);
    return 0;
}

/* Creates a coupon of saler_a through the api. */
static void create_coupon(harness_t *h, const char *name, int amount, const char *window)
{
    char token[SK_JWT_MAX_TOKEN], body[512];
    make_token("saler_a", "saler", h->seller_a, token, sizeof(token));
    snprintf(body, sizeof(body),
             "{\"name\":\"%s\",\"amount\":%d,\"stock\":10,\"description\":\"d\"%s}", name, amount,
             window != NULL ? window : "");
    response_t r;
    request(h, &r, "POST", "/api/users/saler_a/coupons", token, body);
    expect(&r, 201, "");
    done(&r);
}

/* ---- route, size ---- */

static void test_route_then_method(void **state)
{
    harness_t *h = *state;
    response_t r;
    request(h, &r, "GET", "/nope", NULL, NULL);
    expect(&r, 404, "Not found.");
    done(&r);
    request(h, &r, "POST", "/api/users/saler_a/coupons/x/y", NULL, "{}");
    expect(&r, 404, "Not found.");
    done(&r);
    request(h, &r, "DELETE", "/api/users", NULL, "not json");
    expect(&r, 405, "Method not allowed.");
    assert_string_equal(r.allow, "POST");
    done(&r);
    request(h, &r, "GET", "/api/users/saler_a/coupons/c", "garbage", NULL);
    expect(&r, 405, "Method not allowed.");
    assert_string_equal(r.allow, "PATCH");
    done(&r);
    request(h, &r, "PATCH", "/api/users/saler_a/coupons", NULL, NULL);
    expect(&r, 405, "Method not allowed.");
    assert_string_equal(r.allow, "GET, HEAD, POST");
    done(&r);
    assert_int_equal(sk_fake_store_all_calls(h->fake), 0);
}

static void test_body_size_before_token(void **state)
{
    harness_t *h = *state;
    char big[MAX_BODY + 2];
    memset(big, ' ', sizeof(big) - 1);
    big[0] = '{';
    big[sizeof(big) - 2] = '}';
    big[sizeof(big) - 1] = '\0';
    response_t r;
    request(h, &r, "POST", "/api/users/saler_a/coupons", NULL, big);
    assert_int_equal(r.status, 413);
    assert_non_null(r.json);
    done(&r);
    request(h, &r, "POST", "/api/users", NULL, big);
    assert_int_equal(r.status, 413);
    done(&r);
    /* Exactly the limit is allowed: the next check (the token) answers. */
    big[MAX_BODY - 1] = '}';
    big[MAX_BODY] = '\0';
    request(h, &r, "POST", "/api/users/saler_a/coupons", NULL, big);
    expect(&r, 401, "Not Authorized.");
    done(&r);
    assert_int_equal(sk_fake_store_all_calls(h->fake), 0);
}

/* ---- tokens ---- */

/* Each route that needs a token, with a body that would fail every later check. */
static const struct {
    const char *method, *path;
} authenticated[] = {
    {"POST", "/api/users/saler_b/coupons"},
    {"GET", "/api/users/saler_b/coupons?page=x"},
    {"PATCH", "/api/users/saler_a/coupons/none"},
};

static void expect_token_refused(harness_t *h, const char *authorization, const char *err_msg)
{
    for (size_t i = 0; i != sizeof(authenticated) / sizeof(authenticated[0]); ++i) {
        response_t r;
        request(h, &r, authenticated[i].method, authenticated[i].path, authorization, "not json");
        expect(&r, 401, err_msg);
        done(&r);
    }
}

static void test_token_cases(void **state)
{
    harness_t *h = *state;
    char token[SK_JWT_MAX_TOKEN];
    expect_token_refused(h, NULL, "Not Authorized.");
    expect_token_refused(h, "   ", "Not Authorized.");
    expect_token_refused(h, "Bearer ", "Not Authorized.");
    expect_token_refused(h, "not.a.jwt", "Token is invalid.");

    token_spec_t spec = {.username = "customer_c", .kind = "customer", .uid = h->customer_c};
    spec.exp_delta = -60;
    make_token_from(&spec, token, sizeof(token));
    expect_token_refused(h, token, "Authorization has expired.");
    spec.exp_delta = 0;
    spec.key = other_secret;
    make_token_from(&spec, token, sizeof(token));
    expect_token_refused(h, token, "Token is invalid.");
    spec.key = NULL;
    spec.dep = OTHER_DEPLOYMENT;
    make_token_from(&spec, token, sizeof(token));
    expect_token_refused(h, token, "Token is invalid.");
    /* Another deployment's token is invalid even when it is expired. */
    spec.exp_delta = -60;
    make_token_from(&spec, token, sizeof(token));
    expect_token_refused(h, token, "Token is invalid.");
    assert_int_equal(sk_fake_store_all_calls(h->fake), 0);

    /* Revoked: log out with it, then it is refused everywhere. */
    make_token("customer_c", "customer", h->customer_c, token, sizeof(token));
    response_t r;
    request(h, &r, "POST", "/api/auth/logout", token, NULL);
    expect(&r, 200, "log out.");
    done(&r);
    assert_int_equal(sk_fake_store_calls(h->fake, SK_FAKE_REVOKE), 1);
    expect_token_refused(h, token, "Authorization has been revoked.");
    char bearer[SK_JWT_MAX_TOKEN + 16];
    snprintf(bearer, sizeof(bearer), "Bearer %s", token);
    expect_token_refused(h, bearer, "Authorization has been revoked.");
    assert_int_equal(sk_fake_store_all_calls(h->fake), 1);
}

static void test_token_forms_accepted(void **state)
{
    harness_t *h = *state;
    char token[SK_JWT_MAX_TOKEN], header[SK_JWT_MAX_TOKEN + 16];
    make_token("customer_c", "customer", h->customer_c, token, sizeof(token));
    const char *prefixes[] = {"", "   ", "Bearer ", "bearer "};
    for (size_t i = 0; i != sizeof(prefixes) / sizeof(prefixes[0]); ++i) {
        snprintf(header, sizeof(header), "%s%s", prefixes[i], token);
        response_t r;
        request(h, &r, "PATCH", "/api/users/saler_a/coupons/none", header, NULL);
        expect_no_content(&r, "no-such-coupon");
        done(&r);
    }
    assert_int_equal(sk_fake_store_calls(h->fake, SK_FAKE_GRAB), 4);
}

static void test_token_unknown_deployment(void **state)
{
    harness_t *h = *state;
    char token[SK_JWT_MAX_TOKEN];
    make_token("customer_c", "customer", h->customer_c, token, sizeof(token));
    sk_fake_store_set_deployment_id(h->fake, NULL);
    for (size_t i = 0; i != sizeof(authenticated) / sizeof(authenticated[0]); ++i) {
        response_t r;
        request(h, &r, authenticated[i].method, authenticated[i].path, token, "not json");
        expect_unavailable(&r);
        done(&r);
    }
    /* The client should retry a logout, not believe it logged out. */
    response_t r;
    request(h, &r, "POST", "/api/auth/logout", token, NULL);
    expect_unavailable(&r);
    done(&r);
    assert_int_equal(sk_fake_store_all_calls(h->fake), 0);
}

/* ---- the right to the path, then the body ---- */

static void test_path_owner_before_json(void **state)
{
    harness_t *h = *state;
    char seller[SK_JWT_MAX_TOKEN], customer[SK_JWT_MAX_TOKEN];
    make_token("saler_a", "saler", h->seller_a, seller, sizeof(seller));
    make_token("customer_c", "customer", h->customer_c, customer, sizeof(customer));
    response_t r;
    request(h, &r, "POST", "/api/users/saler_b/coupons", seller, "not json");
    expect(&r, 401, "Cannot create coupons for other users.");
    done(&r);
    request(h, &r, "POST", "/api/users/customer_c/coupons", customer, "not json");
    expect(&r, 401, "Only sellers can create coupons.");
    done(&r);
    request(h, &r, "PATCH", "/api/users/saler_a/coupons/x", seller, NULL);
    expect(&r, 401, "Sellers aren't allowed to get coupons.");
    done(&r);
    assert_int_equal(sk_fake_store_all_calls(h->fake), 0);

    /* A customer's list is the customer's own: the store says whose the name is. */
    request(h, &r, "GET", "/api/users/customer_d/coupons?page=x", customer, NULL);
    expect(&r, 401, "Cannot check other customer.");
    assert_true(json_is_array(json_object_get(r.json, "data")));
    assert_int_equal(json_array_size(json_object_get(r.json, "data")), 0);
    done(&r);
}

/* A body and the 400 errMsg it must get. */
typedef struct bad_body {
    const char *body, *err_msg;
} bad_body_t;

/* Posts each body to `path` and checks its 400; none may reach the store. */
static void expect_bad_bodies(harness_t *h, const char *path, const char *token,
                              const bad_body_t *cases, size_t count)
{
    for (size_t i = 0; i != count; ++i) {
        response_t r;
        request(h, &r, "POST", path, token, cases[i].body);
        expect(&r, 400, cases[i].err_msg);
        done(&r);
    }
    assert_int_equal(sk_fake_store_all_calls(h->fake), 0);
}

static void test_create_json_then_fields(void **state)
{
    harness_t *h = *state;
    char token[SK_JWT_MAX_TOKEN];
    make_token("saler_a", "saler", h->seller_a, token, sizeof(token));
    static const bad_body_t cases[] = {
        {"not json", "Only receive JSON format."},
        {"[1]", "Only receive JSON format."},
        {"", "Only receive JSON format."},
        /* every field wrong: the first of the table answers */
        {"{\"amount\":0,\"stock\":-1,\"name\":\"\"}", "Amount field wrong format."},
        {"{\"amount\":1001,\"stock\":1,\"name\":\"n\",\"description\":\"d\"}",
         "Amount field wrong format."},
        {"{\"amount\":\"1e2\",\"stock\":1,\"name\":\"n\",\"description\":\"d\"}",
         "Amount field wrong format."},
        {"{\"amount\":\"5\",\"stock\":-1,\"name\":\"\"}", "Stock field wrong format."},
        {"{\"amount\":5,\"stock\":9007199254740992,\"name\":\"n\",\"description\":\"d\"}",
         "Stock field wrong format."},
        {"{\"amount\":5,\"stock\":1,\"name\":5,\"description\":\"d\"}",
         "Only receive JSON format."},
        {"{\"amount\":5,\"stock\":1,\"name\":\"\",\"description\":\"d\"}",
         "Coupon name or description should not be empty."},
        {"{\"amount\":5,\"stock\":1,\"name\":\"n\"}",
         "Coupon name or description should not be empty."},
        {"{\"amount\":5,\"stock\":1,\"name\":\"a/b\",\"description\":\"d\"}",
         "Coupon name or description too long or invalid."},
        {"{\"amount\":5,\"stock\":1,\"name\":\"n\",\"description\":\"d\",\"start_at\":20,"
         "\"end_at\":10}",
         "Sale window invalid."},
        {"{\"amount\":5,\"stock\":1,\"name\":\"n\",\"description\":\"d\",\"end_at\":\"soon\"}",
         "Sale window invalid."},
    };
    expect_bad_bodies(h, "/api/users/saler_a/coupons", token, cases,
                      sizeof(cases) / sizeof(cases[0]));
}

static void test_create_outcomes(void **state)
{
    harness_t *h = *state;
    char token[SK_JWT_MAX_TOKEN];
    make_token("saler_a", "saler", h->seller_a, token, sizeof(token));
    const char *body = "{\"Name\":\"c%201\",\"amount\":\"3\",\"stock\":7,\"description\":\"d\"}";
    response_t r;
    request(h, &r, "POST", "/api/users/saler_a/coupons", token, body);
    expect(&r, 201, "");
    done(&r);
    const sk_fake_call_t *call = sk_fake_store_last(h->fake, SK_FAKE_COUPON_CREATE);
    assert_string_equal(call->seller, "saler_a");
    assert_string_equal(call->name, "c%201"); /* a body's name is not percent-decoded */
    assert_int_equal(call->user_id, h->seller_a);

    request(h, &r, "POST", "/api/users/saler_a/coupons", token, body);
    expect(&r, 400, "Create failed. Maybe (username,coupon name) duplicates");
    done(&r);
    sk_fake_store_answer_next(h->fake, SK_FAKE_COUPON_CREATE, SK_STORE_UNAVAILABLE);
    request(h, &r, "POST", "/api/users/saler_a/coupons", token, body);
    expect_unavailable(&r);
    done(&r);

    /* A well-signed token whose uid is not the seller's. */
    token_spec_t spec = {.username = "saler_a", .kind = "saler", .uid = h->seller_b};
    make_token_from(&spec, token, sizeof(token));
    request(h, &r, "POST", "/api/users/saler_a/coupons", token, body);
    expect(&r, 401, "Token is invalid.");
    done(&r);
    assert_int_equal(sk_fake_store_calls(h->fake, SK_FAKE_COUPON_CREATE), 4);
}

/* ---- users ---- */

static void test_register_field_order(void **state)
{
    harness_t *h = *state;
    static const bad_body_t cases[] = {
        {"{\"username\":", "Only receive JSON format."},
        {"{\"username\":\"\",\"password\":\"\",\"kind\":\"x\"}", "User name too short."},
        {"{\"username\":\"u\",\"password\":\"\",\"kind\":\"x\"}", "Password too short."},
        {"{\"username\":\"u\",\"password\":\"p\"}", "Empty field of kind."},
        {"{\"username\":\"u\",\"password\":\"p\",\"kind\":\"admin\"}",
         "Unexpected value of kind, admin"},
        {"{\"username\":\"a b\",\"password\":\"p\",\"kind\":\"customer\"}", "Invalid user name."},
        {"{\"username\":[],\"password\":\"p\",\"kind\":\"customer\"}", "Only receive JSON format."},
    };
    expect_bad_bodies(h, "/api/users", NULL, cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_register_outcomes(void **state)
{
    harness_t *h = *state;
    response_t r;
    /* A taken name is refused before the password is hashed and without an insert. */
    request(h, &r, "POST", "/api/users/", NULL,
            "{\"username\":\"saler_a\",\"password\":\"p\",\"kind\":\"saler\"}");
    expect(&r, 400, "Insert user failed. Maybe user name duplicates.");
    done(&r);
    assert_int_equal(sk_fake_store_calls(h->fake, SK_FAKE_USER_FIND), 1);
    assert_int_equal(sk_fake_store_calls(h->fake, SK_FAKE_USER_REGISTER), 0);

    char body[600];
    char password[SK_PASSWORD_MAX + 2];
    memset(password, 'p', sizeof(password) - 1);
    password[sizeof(password) - 1] = '\0';
    snprintf(body, sizeof(body), "{\"username\":\"new\",\"password\":\"%s\",\"kind\":\"saler\"}",
             password);
    request(h, &r, "POST", "/api/users", NULL, body);
    expect(&r, 400, "Password too long.");
    done(&r);
    assert_int_equal(sk_fake_store_calls(h->fake, SK_FAKE_USER_REGISTER), 0);

    const char *new_user = "{\"USERNAME\":\"new\",\"password\":\"pw\",\"kind\":\"customer\"}";
    request(h, &r, "POST", "/api/users", NULL, new_user);
    expect(&r, 201, "");
    done(&r);
    assert_string_equal(sk_fake_store_last(h->fake, SK_FAKE_USER_REGISTER)->user, "new");

    /* Taken between the lookup and the insert. */
    sk_fake_store_answer_next(h->fake, SK_FAKE_USER_REGISTER, SK_STORE_DUPLICATE);
    request(h, &r, "POST", "/api/users", NULL,
            "{\"username\":\"other\",\"password\":\"pw\",\"kind\":\"customer\"}");
    expect(&r, 400, "Insert user failed. Maybe user name duplicates.");
    done(&r);
    sk_fake_store_answer_next(h->fake, SK_FAKE_USER_REGISTER, SK_STORE_UNAVAILABLE);
    request(h, &r, "POST", "/api/users", NULL,
            "{\"username\":\"other\",\"password\":\"pw\",\"kind\":\"customer\"}");
    expect_unavailable(&r);
    done(&r);
    assert_int_equal(sk_fake_store_calls(h->fake, SK_FAKE_USER_REGISTER), 3);
}

static void expect_login(const response_t *r, int status, const char *kind, const char *err_msg)
{
    expect(r, status, err_msg);
    assert_string_equal(json_string_value(json_object_get(r->json, "kind")), kind);
}

static void test_login(void **state)
{
    harness_t *h = *state;
    char hash[crypto_pwhash_STRBYTES];
    assert_int_equal(
        crypto_pwhash_str(hash, "right", 5, crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_MEMLIMIT_MIN),
        0);
    int64_t uid = sk_fake_store_add_user(h->fake, "login_user", SK_USER_CUSTOMER, hash);
    response_t r;
    request(h, &r, "POST", "/api/auth", NULL, "{nope");
    expect_login(&r, 400, "", "Only receive JSON format.");
    done(&r);
    request(h, &r, "POST", "/api/auth", NULL, "{\"username\":1,\"password\":\"x\"}");
    expect_login(&r, 400, "", "Only receive JSON format.");
    done(&r);
    assert_int_equal(sk_fake_store_all_calls(h->fake), 0);
    request(h, &r, "POST", "/api/auth", NULL, "{\"username\":\"nobody\",\"password\":\"x\"}");
    expect_login(&r, 401, "", "No such queryUser.");
    done(&r);
    request(h, &r, "POST", "/api/auth", NULL, "{\"username\":\"login_user\",\"password\":\"x\"}");
    expect_login(&r, 401, "customer", "Password mismatched.");
    done(&r);
    sk_fake_store_answer_next(h->fake, SK_FAKE_USER_FIND, SK_STORE_UNAVAILABLE);
    request(h, &r, "POST", "/api/auth", NULL,
            "{\"username\":\"login_user\",\"password\":\"right\"}");
    expect_unavailable(&r);
    done(&r);

    request(h, &r, "POST", "/api/auth/", NULL,
            "{\"Username\":\"login_user\",\"password\":\"right\"}");
    expect_login(&r, 200, "customer", "");
    assert_true(strlen(r.authorization) > 0);
    assert_string_equal(json_string_value(json_object_get(r.json, "token")), r.authorization);
    sk_jwt_claims_t claims;
    assert_int_equal(sk_jwt_verify((const uint8_t *)secret, strlen(secret), r.authorization,
                                   strlen(r.authorization), (int64_t)time(NULL), &claims),
                     SK_JWT_VALID);
    assert_string_equal(claims.username, "login_user");
    assert_int_equal(claims.uid, uid);
    assert_memory_equal(claims.dep, DEPLOYMENT, SK_JWT_DEP_LEN);
    char token[SK_JWT_MAX_TOKEN];
    snprintf(token, sizeof(token), "%s", r.authorization);
    done(&r);
    /* The token it gave works: the grab reaches the store as that customer. */
    request(h, &r, "PATCH", "/api/users/saler_a/coupons/none", token, NULL);
    expect_no_content(&r, "no-such-coupon");
    done(&r);
    assert_string_equal(sk_fake_store_last(h->fake, SK_FAKE_GRAB)->user, "login_user");
    assert_int_equal(sk_fake_store_last(h->fake, SK_FAKE_GRAB)->user_id, uid);
}

static void test_logout(void **state)
{
    harness_t *h = *state;
    response_t r;
    request(h, &r, "POST", "/api/auth/logout", NULL, NULL);
    expect(&r, 200, "log out.");
    done(&r);
    request(h, &r, "POST", "/api/auth/logout", "garbage", NULL);
    expect(&r, 200, "log out.");
    done(&r);
    assert_int_equal(sk_fake_store_all_calls(h->fake), 0);

    char token[SK_JWT_MAX_TOKEN];
    make_token("customer_c", "customer", h->customer_c, token, sizeof(token));
    sk_fake_store_answer_next(h->fake, SK_FAKE_REVOKE, SK_STORE_UNAVAILABLE);
    request(h, &r, "POST", "/api/auth/logout", token, NULL);
    expect_unavailable(&r);
    done(&r);
    /* Not revoked: the token still works. */
    request(h, &r, "PATCH", "/api/users/saler_a/coupons/none", token, NULL);
    expect_no_content(&r, "no-such-coupon");
    done(&r);

    request(h, &r, "POST", "/api/auth/logout", token, NULL);
    expect(&r, 200, "log out.");
    done(&r);
    sk_jwt_claims_t claims;
    assert_int_equal(sk_jwt_verify((const uint8_t *)secret, strlen(secret), token, strlen(token),
                                   (int64_t)time(NULL), &claims),
                     SK_JWT_VALID);
    assert_string_equal(sk_fake_store_last(h->fake, SK_FAKE_REVOKE)->jti, claims.jti);
    request(h, &r, "PATCH", "/api/users/saler_a/coupons/none", token, NULL);
    expect(&r, 401, "Authorization has been revoked.");
    done(&r);
    assert_int_equal(sk_fake_store_calls(h->fake, SK_FAKE_GRAB), 1);
}

/* ---- coupons: list ---- */

static void test_list(void **state)
{
    harness_t *h = *state;
    char customer[SK_JWT_MAX_TOKEN];
    make_token("customer_c", "customer", h->customer_c, customer, sizeof(customer));
    response_t r;
    /* The user is checked before the page. */
    request(h, &r, "GET", "/api/users/nobody/coupons?page=x", customer, NULL);
    expect(&r, 400, "Record not found.");
    done(&r);
    request(h, &r, "GET", "/api/users/customer_c/coupons?page=x", customer, NULL);
    expect(&r, 400, "Wrong format of page.");
    done(&r);
    request(h, &r, "GET", "/api/users/customer_c/coupons", customer, NULL);
    expect_no_content(&r, NULL);
    done(&r);
    request(h, &r, "GET", "/api/users/saler_a/coupons?page=1", customer, NULL);
    expect_no_content(&r, NULL);
    done(&r);
    sk_fake_store_answer_next(h->fake, SK_FAKE_COUPON_LIST, SK_STORE_UNAVAILABLE);
    request(h, &r, "GET", "/api/users/saler_a/coupons", customer, NULL);
    expect_unavailable(&r);
    done(&r);

    create_coupon(h, "c1", 5, NULL);
    create_coupon(h, "c2", 5, ",\"start_at\":100,\"end_at\":\"2100-01-01T00:00:00Z\"");
    request(h, &r, "GET", "/api/users/saler_a/coupons?page=0", customer, NULL);
    expect(&r, 200, "");
    json_t *data = json_object_get(r.json, "data");
    assert_int_equal(json_array_size(data), 2);
    json_t *first = json_array_get(data, 0);
    assert_string_equal(json_string_value(json_object_get(first, "name")), "c1");
    assert_int_equal(json_integer_value(json_object_get(first, "amount")), 5);
    assert_int_equal(json_integer_value(json_object_get(first, "left")), 5);
    assert_int_equal(json_integer_value(json_object_get(first, "stock")), 10);
    assert_null(json_object_get(first, "start_at"));
    assert_int_equal(json_integer_value(json_object_get(json_array_get(data, 1), "start_at")), 100);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(data, 1), "end_at")),
                     4102444800);
    done(&r);
    assert_int_equal(sk_fake_store_last(h->fake, SK_FAKE_COUPON_LIST)->page, 1);
    request(h, &r, "GET", "/api/users/saler_a/coupons?page=2", customer, NULL);
    expect_no_content(&r, NULL);
    done(&r);

    request(h, &r, "PATCH", "/api/users/saler_a/coupons/c1", customer, NULL);
    expect(&r, 201, "");
    done(&r);
    request(h, &r, "GET", "/api/users/customer_c/coupons", customer, NULL);
    expect(&r, 200, "");
    data = json_object_get(r.json, "data");
    assert_int_equal(json_array_size(data), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(data, 0), "seller")),
                        "saler_a");
    assert_null(json_object_get(json_array_get(data, 0), "left"));
    done(&r);

    /* The listed user is the token's name but another id: the token is not that user's. */
    token_spec_t spec = {.username = "customer_c", .kind = "customer", .uid = h->customer_d};
    make_token_from(&spec, customer, sizeof(customer));
    request(h, &r, "GET", "/api/users/customer_c/coupons", customer, NULL);
    expect(&r, 401, "Token is invalid.");
    done(&r);
}

/* ---- coupons: grab ---- */

static void test_grab_outcomes(void **state)
{
    harness_t *h = *state;
    char token[SK_JWT_MAX_TOKEN];
    make_token("customer_c", "customer", h->customer_c, token, sizeof(token));
    static const struct {
        sk_store_result_t result;
        const char *reason;
    } no_content[] = {
        {SK_STORE_NO_SUCH_COUPON, "no-such-coupon"},
        {SK_STORE_NOT_STARTED, "not-started"},
        {SK_STORE_ENDED, "ended"},
        {SK_STORE_SOLD_OUT, "sold-out"},
        {SK_STORE_ALREADY_HELD, "already-held"},
    };
    response_t r;
    for (size_t i = 0; i != sizeof(no_content) / sizeof(no_content[0]); ++i) {
        sk_fake_store_answer_next(h->fake, SK_FAKE_GRAB, no_content[i].result);
        request(h, &r, "PATCH", "/api/users/saler_a/coupons/any", token, NULL);
        expect_no_content(&r, no_content[i].reason);
        done(&r);
    }
    sk_fake_store_answer_next(h->fake, SK_FAKE_GRAB, SK_STORE_OK);
    request(h, &r, "PATCH", "/api/users/saler_a/coupons/any", token, NULL);
    expect(&r, 201, "");
    done(&r);
    sk_fake_store_answer_next(h->fake, SK_FAKE_GRAB, SK_STORE_NOT_FOUND);
    request(h, &r, "PATCH", "/api/users/saler_a/coupons/any", token, NULL);
    expect(&r, 401, "Token is invalid.");
    done(&r);
    sk_fake_store_answer_next(h->fake, SK_FAKE_GRAB, SK_STORE_UNAVAILABLE);
    request(h, &r, "PATCH", "/api/users/saler_a/coupons/any", token, NULL);
    expect_unavailable(&r);
    done(&r);
    assert_int_equal(sk_fake_store_calls(h->fake, SK_FAKE_GRAB), 8);
    const sk_fake_call_t *call = sk_fake_store_last(h->fake, SK_FAKE_GRAB);
    assert_string_equal(call->user, "customer_c");
    assert_int_equal(call->user_id, h->customer_c);
    assert_string_equal(call->seller, "saler_a");
    assert_string_equal(call->name, "any");
}

/* The same outcomes from the fake's state, through the api end to end. */
static void test_grab_flow(void **state)
{
    harness_t *h = *state;
    char c[SK_JWT_MAX_TOKEN], d[SK_JWT_MAX_TOKEN];
    make_token("customer_c", "customer", h->customer_c, c, sizeof(c));
    make_token("customer_d", "customer", h->customer_d, d, sizeof(d));
    create_coupon(h, "one", 1, NULL);
    create_coupon(h, "two c", 2, NULL);
    create_coupon(h, "later", 2, ",\"start_at\":4102444800");
    create_coupon(h, "over", 2, ",\"end_at\":100");
    static const struct {
        int customer_d;
        const char *path, *reason; /* reason NULL: 201 */
    } steps[] = {
        {0, "/api/users/saler_a/coupons/one", NULL},
        {0, "/api/users/saler_a/coupons/one", "sold-out"}, /* before already-held */
        {1, "/api/users/saler_a/coupons/one", "sold-out"},
        {0, "/api/users/saler_a/coupons/two%20c", NULL}, /* the path is percent-decoded */
        {0, "/api/users/saler_a/coupons/two%20c", "already-held"},
        {1, "/api/users/saler_a/coupons/two%20c", NULL},
        {0, "/api/users/saler_b/coupons/one", "no-such-coupon"},
        {0, "/api/users/saler_a/coupons/later", "not-started"},
        {0, "/api/users/saler_a/coupons/over", "ended"},
    };
    for (size_t i = 0; i != sizeof(steps) / sizeof(steps[0]); ++i) {
        response_t r;
        request(h, &r, "PATCH", steps[i].path, steps[i].customer_d ? d : c, NULL);
        if (steps[i].reason == NULL)
            expect(&r, 201, "");
        else
            expect_no_content(&r, steps[i].reason);
        done(&r);
    }
}

static void test_grab_rate_limit_local(void **state)
{
    (void)state;
    harness_t h;
    harness_open(&h, 0, 0.001);
    char token[SK_JWT_MAX_TOKEN];
    make_token("customer_c", "customer", h.customer_c, token, sizeof(token));
    response_t r;
    request(&h, &r, "PATCH", "/api/users/saler_a/coupons/x", token, NULL);
    expect_no_content(&r, "no-such-coupon");
    done(&r);
    request(&h, &r, "PATCH", "/api/users/saler_a/coupons/x", token, NULL);
    expect(&r, 429, "Too many requests.");
    assert_true(r.has_retry_after);
    assert_true(atoi(r.retry_after) >= 1);
    done(&r);
    assert_int_equal(sk_fake_store_calls(h.fake, SK_FAKE_GRAB), 1);
    assert_int_equal(sk_fake_store_calls(h.fake, SK_FAKE_RATE_TAKE), 0);
    harness_close(&h);
}

static void test_grab_rate_limit_shared(void **state)
{
    (void)state;
    harness_t h;
    harness_open(&h, 1, 5);
    char token[SK_JWT_MAX_TOKEN];
    make_token("customer_c", "customer", h.customer_c, token, sizeof(token));
    response_t r;
    sk_fake_store_answer_next(h.fake, SK_FAKE_RATE_TAKE, SK_STORE_LIMITED);
    request(&h, &r, "PATCH", "/api/users/saler_a/coupons/x", token, NULL);
    expect(&r, 429, "Too many requests.");
    assert_string_equal(r.retry_after, "2"); /* the fake's 1.5 s, rounded up */
    done(&r);
    sk_fake_store_answer_next(h.fake, SK_FAKE_RATE_TAKE, SK_STORE_UNAVAILABLE);
    request(&h, &r, "PATCH", "/api/users/saler_a/coupons/x", token, NULL);
    expect_unavailable(&r);
    done(&r);
    assert_int_equal(sk_fake_store_calls(h.fake, SK_FAKE_GRAB), 0);
    request(&h, &r, "PATCH", "/api/users/saler_a/coupons/x", token, NULL);
    expect_no_content(&r, "no-such-coupon");
    done(&r);
    assert_int_equal(sk_fake_store_calls(h.fake, SK_FAKE_RATE_TAKE), 3);
    assert_string_equal(sk_fake_store_last(h.fake, SK_FAKE_RATE_TAKE)->user, "customer_c");
    assert_int_equal(sk_fake_store_last(h.fake, SK_FAKE_GRAB)->user_id, h.customer_c);
    harness_close(&h);
}

/* ---- every route's 503 ---- */

static void test_unavailable_each_route(void **state)
{
    harness_t *h = *state;
    char seller[SK_JWT_MAX_TOKEN], customer[SK_JWT_MAX_TOKEN];
    make_token("saler_a", "saler", h->seller_a, seller, sizeof(seller));
    make_token("customer_c", "customer", h->customer_c, customer, sizeof(customer));
    const struct {
        sk_fake_op_t op;
        const char *method, *path, *token, *body;
    } routes[] = {
        {SK_FAKE_USER_REGISTER, "POST", "/api/users", NULL,
         "{\"username\":\"n\",\"password\":\"p\",\"kind\":\"customer\"}"},
        {SK_FAKE_USER_FIND, "POST", "/api/auth", NULL, "{\"username\":\"n\",\"password\":\"p\"}"},
        {SK_FAKE_REVOKE, "POST", "/api/auth/logout", customer, NULL},
        {SK_FAKE_COUPON_CREATE, "POST", "/api/users/saler_a/coupons", seller,
         "{\"name\":\"n\",\"amount\":1,\"stock\":1,\"description\":\"d\"}"},
        {SK_FAKE_COUPON_LIST, "GET", "/api/users/saler_a/coupons", customer, NULL},
        {SK_FAKE_GRAB, "PATCH", "/api/users/saler_a/coupons/n", customer, NULL},
    };
    for (size_t i = 0; i != sizeof(routes) / sizeof(routes[0]); ++i) {
        unsigned before = sk_fake_store_calls(h->fake, routes[i].op);
        sk_fake_store_answer_next(h->fake, routes[i].op, SK_STORE_UNAVAILABLE);
        response_t r;
        request(h, &r, routes[i].method, routes[i].path, routes[i].token, routes[i].body);
        expect_unavailable(&r);
        done(&r);
        assert_int_equal(sk_fake_store_calls(h->fake, routes[i].op), before + 1);
    }
}

/* ---- operations ---- */

static void test_ops_routes(void **state)
{
    harness_t *h = *state;
    response_t r;
    request(h, &r, "GET", "/healthz", NULL, NULL);
    expect(&r, 200, "");
    assert_string_equal(json_string_value(json_object_get(r.json, "status")), "ok");
    done(&r);
    request(h, &r, "HEAD", "/healthz", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    done(&r);
    request(h, &r, "GET", "/readyz", NULL, NULL);
    expect(&r, 200, "");
    done(&r);
    sk_fake_store_set_ready(h->fake, 0);
    request(h, &r, "GET", "/readyz", NULL, NULL);
    expect_unavailable(&r);
    done(&r);
    request(h, &r, "GET", "/metrics", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "text/plain; version=0.0.4");
    assert_non_null(strstr(r.body, "deployment=\"embedded\""));
    done(&r);
    assert_int_equal(sk_fake_store_all_calls(h->fake), 0);
}

/* GET /openapi.json: the built-in document byte for byte; HEAD: its length, no body. */
static void test_openapi_route(void **state)
{
    harness_t *h = *state;
    response_t r;
    request(h, &r, "GET", "/openapi.json", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, JSON_TYPE);
    assert_int_equal(r.body_len, sk_openapi_document_len);
    assert_memory_equal(r.body, sk_openapi_document, sk_openapi_document_len);
    assert_non_null(r.json);
    assert_string_equal(json_string_value(json_object_get(r.json, "openapi")), "3.1.0");
    assert_non_null(json_object_get(json_object_get(r.json, "paths"), "/openapi.json"));
    done(&r);
    request(h, &r, "HEAD", "/openapi.json", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    done(&r);
    request(h, &r, "POST", "/openapi.json", NULL, "{}");
    expect(&r, 405, "Method not allowed.");
    assert_string_equal(r.allow, "GET, HEAD");
    done(&r);
    assert_int_equal(sk_fake_store_all_calls(h->fake), 0);
}

/* A worker thread whose store thread cannot be made is refused, and the next one works. */
static void test_thread_create_failure(void **state)
{
    harness_t *h = *state;
    sk_fake_store_fail_next_thread(h->fake);
    assert_null(h->app->thread_create(h->app->data, &h->context, h->queue));
    assert_int_equal(sk_fake_store_threads(h->fake), 1); /* the harness's own */
    void *second = h->app->thread_create(h->app->data, &h->context, h->queue);
    assert_non_null(second);
    assert_int_equal(sk_fake_store_threads(h->fake), 2);
    h->app->thread_destroy(second);
    assert_int_equal(sk_fake_store_threads(h->fake), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_route_then_method, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_size_before_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_cases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_forms_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_unknown_deployment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_path_owner_before_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_json_then_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_outcomes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_register_field_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_register_outcomes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_login, setup, teardown),
        cmocka_unit_test_setup_teardown(test_logout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grab_outcomes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grab_flow, setup, teardown),
        cmocka_unit_test(test_grab_rate_limit_local),
        cmocka_unit_test(test_grab_rate_limit_shared),
        cmocka_unit_test_setup_teardown(test_unavailable_each_route, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ops_routes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_openapi_route, setup, teardown),
        cmocka_unit_test_setup_teardown(test_thread_create_failure, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
