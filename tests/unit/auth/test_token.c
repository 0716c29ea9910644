/*
 * Tests of src/auth/token.c: reading the token out of an Authorization header (raw, after
 * spaces, "Bearer" in any case) and sk_token_check against a real local store in a temp
 * directory: a valid token (first verified, then answered from the per-thread cache), a
 * missing one, garbage, a wrong key, a tampered signature, not yet valid, expired (with the
 * 5 s leeway, both on first sight and for a cached token when `now` moves on), revoked
 * through the store before or after the token was cached, and bound to the deployment: a
 * token of another deployment id (an earlier, wiped database) is invalid, expired or not,
 * and never cached.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fixture.h"
#include <sodium.h>
#include <time.h>
#include <unistd.h>

#include "auth/token.h"
#include "store/local/store_local.h"
#include "util/log.h"

#define NOW INT64_C(1700000000)
#define TTL 3600

static const char secret_text[] = "token-test-secret-0123456789abcdef";

/* The deployment id make_token puts in the tokens: the fixture store's, unless a test
 * changes it. */
static char token_dep[SK_JWT_DEP_LEN + 1];

typedef struct fixture {
    sk_test_store_t ts;
    uint8_t key[sizeof(secret_text) - 1]; /* mutable: the cache keeps a pointer to it */
    sk_token_cache_t *cache;
} fixture_t;

static int setup_fixture(void **state)
{
    if (sodium_init() < 0)
        return -1;
    fixture_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    *state = f;
    if (sk_test_store_open(&f->ts, "token") != 0)
        return -1;
    memcpy(f->key, secret_text, sizeof(f->key));
    f->cache = sk_token_cache_create(f->key, sizeof(f->key), f->ts.store);
    const char *dep = sk_store_deployment_id(f->ts.store);
    if (dep == NULL || strlen(dep) != SK_JWT_DEP_LEN)
        return -1;
    memcpy(token_dep, dep, sizeof(token_dep));
    return f->cache != NULL ? 0 : -1;
}

static int teardown_fixture(void **state)
{
    fixture_t *f = *state;
    sk_token_cache_destroy(f->cache);
    sk_test_store_close(&f->ts);
    free(f);
    return 0;
}

static void on_revoked(sk_store_op_t *op)
{
    ++*(int *)op->data;
}

static void revoke_jti(fixture_t *f, const char *jti, int64_t expires_at)
{
    sk_store_revoke_t op;
    int done = 0;
    memset(&op, 0, sizeof(op));
    op.op.on_done = on_revoked;
    op.op.data = &done;
    op.op.pool = &f->ts.pool;
    op.jti = jti;
    op.expires_at = expires_at;
    sk_store_revoke(f->ts.store, f->ts.thread, &op);
    assert_int_equal(sk_test_run_until(f->ts.loop, &done, 1), 1);
    assert_int_equal(op.op.result, SK_STORE_OK);
}

/* A signed token for `username`, valid from nbf to exp; its jti goes to `jti` if given. */
static void make_token(const uint8_t *key, size_t key_len, const char *username, int64_t nbf,
                       int64_t exp, char *out, size_t out_size, char *jti)
{
    sk_jwt_claims_t claims;
    memset(&claims, 0, sizeof(claims));
    strcpy(claims.username, username);
    strcpy(claims.kind, "customer");
    claims.iat = nbf;
    claims.nbf = nbf;
    claims.exp = exp;
    memcpy(claims.dep, token_dep, sizeof(claims.dep));
    claims.uid = 42;
    sk_jwt_new_jti(&claims);
    int len = sk_jwt_sign(key, key_len, &claims, out, out_size);
    assert_true(len > 0);
    if (jti != NULL)
        strcpy(jti, claims.jti);
}

static void good_token(fixture_t *f, char *out, size_t out_size, char *jti)
{
    make_token(f->key, sizeof(f->key), "customer_0", NOW, NOW + TTL, out, out_size, jti);
}

/* Checks `header` from a heap copy of exactly its bytes. */
static sk_token_status_t check_at(fixture_t *f, const char *header, int64_t now,
                                  const sk_jwt_claims_t **claims)
{
    size_t len = strlen(header);
    char *copy = malloc(len > 0 ? len : 1);
    assert_non_null(copy);
    memcpy(copy, header, len);
    const sk_jwt_claims_t *ignored = NULL;
    sk_token_status_t status = sk_token_check(f->cache, copy, len, now, claims ? claims : &ignored);
    free(copy);
    return status;
}

static sk_token_status_t check(fixture_t *f, const char *header)
{
    return check_at(f, header, NOW, NULL);
}

/* ---- the header ---- */

static void expect_token(const char *header, const char *expected)
{
    size_t len = strlen(header);
    char *copy = malloc(len > 0 ? len : 1);
    assert_non_null(copy);
    memcpy(copy, header, len);
    const char *token = copy;
    size_t token_len = len;
    sk_token_from_header(&token, &token_len);
    if (token_len != strlen(expected) || memcmp(token, expected, token_len) != 0)
        fail_msg("'%s' gave '%.*s', expected '%s'", header, (int)token_len, token, expected);
    /* The token is a slice of the header, not a copy. */
    assert_true(token >= copy && token + token_len <= copy + len);
    free(copy);
}

static void test_token_from_header(void **state)
{
    (void)state;
    expect_token("tok", "tok");
    expect_token("  tok", "tok");
    expect_token("Bearer tok", "tok");
    expect_token("bearer  tok", "tok");
    expect_token("BEARER tok", "tok");
    expect_token("bEaReR tok", "tok");
    expect_token("tok  ", "tok");
    expect_token("  Bearer   tok  ", "tok");
    expect_token("\ttok\t", "tok");
    expect_token("\t Bearer tok \t", "tok");
    expect_token("a.b.c", "a.b.c");
    /* Only a whole "Bearer " prefix is a scheme. */
    expect_token("Bearertok", "Bearertok");
    expect_token("Bearer", "Bearer");
    expect_token("Bear tok", "Bear tok");
    expect_token("Bearer Bearer tok", "Bearer tok");
    /* Nothing left. */
    expect_token("", "");
    expect_token("   ", "");
    expect_token("Bearer ", "");
    expect_token("Bearer    ", "");
}

/* ---- checks ---- */

static void test_valid_token_then_cached(void **state)
{
    fixture_t *f = *state;
    char token[SK_JWT_MAX_TOKEN], jti[SK_JWT_JTI_LEN + 1];
    good_token(f, token, sizeof(token), jti);

    const sk_jwt_claims_t *claims = NULL;
    assert_int_equal(check_at(f, token, NOW, &claims), SK_TOKEN_OK);
    assert_non_null(claims);
    assert_string_equal(claims->username, "customer_0");
    assert_string_equal(claims->kind, "customer");
    assert_string_equal(claims->jti, jti);
    assert_int_equal(claims->exp, NOW + TTL);

    /* Prove the second answer comes from the cache: with the key changed under the cache,
     * a fresh verification would fail, yet the cached token still passes. */
    f->key[0] ^= 1;
    claims = NULL;
    assert_int_equal(check_at(f, token, NOW + 1, &claims), SK_TOKEN_OK);
    assert_non_null(claims);
    assert_string_equal(claims->username, "customer_0");
    assert_string_equal(claims->jti, jti);
    /* The same token in the other header forms hits the same entry. */
    char header[SK_JWT_MAX_TOKEN + 16];
    snprintf(header, sizeof(header), "Bearer %s", token);
    assert_int_equal(check(f, header), SK_TOKEN_OK);
    snprintf(header, sizeof(header), "   %s  ", token);
    assert_int_equal(check(f, header), SK_TOKEN_OK);
    /* A token never seen is verified, and fails under the changed key. */
    char other[SK_JWT_MAX_TOKEN];
    make_token((const uint8_t *)secret_text, sizeof(secret_text) - 1, "customer_1", NOW, NOW + TTL,
               other, sizeof(other), NULL);
    assert_int_equal(check(f, other), SK_TOKEN_INVALID);
    f->key[0] ^= 1;
    assert_int_equal(check(f, other), SK_TOKEN_OK);
}

static void test_many_tokens(void **state)
{
    fixture_t *f = *state;
    enum { TOKENS = 64 };
    char(*tokens)[SK_JWT_MAX_TOKEN] = calloc(TOKENS, SK_JWT_MAX_TOKEN);
    assert_non_null(tokens);
    char name[32];
    for (int i = 0; i < TOKENS; i++) {
        snprintf(name, sizeof(name), "user_%d", i);
        make_token(f->key, sizeof(f->key), name, NOW, NOW + TTL, tokens[i], SK_JWT_MAX_TOKEN, NULL);
    }
    /* Twice over: each answer carries its own token's claims, cached or not. */
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < TOKENS; i++) {
            const sk_jwt_claims_t *claims = NULL;
            assert_int_equal(check_at(f, tokens[i], NOW, &claims), SK_TOKEN_OK);
            snprintf(name, sizeof(name), "user_%d", i);
            assert_string_equal(claims->username, name);
        }
    }
    free(tokens);
}

static void test_missing(void **state)
{
    fixture_t *f = *state;
    const sk_jwt_claims_t *claims = NULL;
    assert_int_equal(sk_token_check(f->cache, NULL, 0, NOW, &claims), SK_TOKEN_MISSING);
    assert_null(claims);
    /* A header with nothing in it is as good as none. */
    assert_int_equal(check(f, ""), SK_TOKEN_MISSING);
    assert_int_equal(check(f, "    "), SK_TOKEN_MISSING);
    assert_int_equal(check(f, "Bearer "), SK_TOKEN_MISSING);
}

static void test_invalid(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(check(f, "garbage"), SK_TOKEN_INVALID);
    assert_int_equal(check(f, "a.b.c"), SK_TOKEN_INVALID);
    assert_int_equal(check(f, "Bearer"), SK_TOKEN_INVALID);
    assert_int_equal(check(f, "Bearer garbage"), SK_TOKEN_INVALID);

    /* Signed with another key. */
    static const uint8_t other_key[] = "another-secret-another-secret-xx";
    char token[SK_JWT_MAX_TOKEN];
    make_token(other_key, sizeof(other_key) - 1, "customer_0", NOW, NOW + TTL, token, sizeof(token),
               NULL);
    assert_int_equal(check(f, token), SK_TOKEN_INVALID);
    /* Asked twice: a refused token is not cached as good. */
    assert_int_equal(check(f, token), SK_TOKEN_INVALID);

    /* A tampered signature, and a tampered payload. */
    good_token(f, token, sizeof(token), NULL);
    size_t len = strlen(token);
    token[len - 2] = token[len - 2] == 'A' ? 'B' : 'A';
    assert_int_equal(check(f, token), SK_TOKEN_INVALID);
    good_token(f, token, sizeof(token), NULL);
    char *payload = strchr(token, '.') + 1;
    payload[3] = payload[3] == 'A' ? 'B' : 'A';
    assert_int_equal(check(f, token), SK_TOKEN_INVALID);

    /* A valid token with junk after it. */
    good_token(f, token, sizeof(token), NULL);
    char header[SK_JWT_MAX_TOKEN + 16];
    snprintf(header, sizeof(header), "%s x", token);
    assert_int_equal(check(f, header), SK_TOKEN_INVALID);

    /* Too long to be one of ours. */
    char *huge = malloc(SK_JWT_MAX_TOKEN + 1);
    assert_non_null(huge);
    memset(huge, 'a', SK_JWT_MAX_TOKEN);
    huge[SK_JWT_MAX_TOKEN] = '\0';
    assert_int_equal(check(f, huge), SK_TOKEN_INVALID);
    free(huge);
}

static void test_not_yet_valid(void **state)
{
    fixture_t *f = *state;
    char token[SK_JWT_MAX_TOKEN];
    make_token(f->key, sizeof(f->key), "customer_0", NOW + 60, NOW + TTL, token, sizeof(token),
               NULL);
    assert_int_equal(check_at(f, token, NOW, NULL), SK_TOKEN_INVALID);
    /* The leeway is 5 seconds. */
    assert_int_equal(check_at(f, token, NOW + 54, NULL), SK_TOKEN_INVALID);
    assert_int_equal(check_at(f, token, NOW + 55, NULL), SK_TOKEN_OK);
}

static void test_expired(void **state)
{
    fixture_t *f = *state;
    char token[SK_JWT_MAX_TOKEN];
    make_token(f->key, sizeof(f->key), "customer_0", NOW - TTL, NOW - 10, token, sizeof(token),
               NULL);
    assert_int_equal(check(f, token), SK_TOKEN_EXPIRED);
    assert_int_equal(check(f, token), SK_TOKEN_EXPIRED);

    /* Within the leeway it still passes; one second past it, it does not. */
    make_token(f->key, sizeof(f->key), "customer_1", NOW - TTL, NOW - 5, token, sizeof(token),
               NULL);
    assert_int_equal(check(f, token), SK_TOKEN_OK);
    make_token(f->key, sizeof(f->key), "customer_2", NOW - TTL, NOW - 6, token, sizeof(token),
               NULL);
    assert_int_equal(check(f, token), SK_TOKEN_EXPIRED);
}

static void test_cached_token_expires(void **state)
{
    fixture_t *f = *state;
    char token[SK_JWT_MAX_TOKEN];
    good_token(f, token, sizeof(token), NULL);
    assert_int_equal(check_at(f, token, NOW, NULL), SK_TOKEN_OK);
    assert_int_equal(check_at(f, token, NOW + TTL, NULL), SK_TOKEN_OK);
    assert_int_equal(check_at(f, token, NOW + TTL + 5, NULL), SK_TOKEN_OK);
    assert_int_equal(check_at(f, token, NOW + TTL + 6, NULL), SK_TOKEN_EXPIRED);
    assert_int_equal(check_at(f, token, NOW + 10 * TTL, NULL), SK_TOKEN_EXPIRED);
    /* Expiry is judged against each call's `now`; nothing about it is remembered. */
    assert_int_equal(check_at(f, token, NOW + 1, NULL), SK_TOKEN_OK);
}

static void test_revoked_after_cached(void **state)
{
    fixture_t *f = *state;
    char token[SK_JWT_MAX_TOKEN], jti[SK_JWT_JTI_LEN + 1];
    char bystander[SK_JWT_MAX_TOKEN];
    good_token(f, token, sizeof(token), jti);
    make_token(f->key, sizeof(f->key), "customer_9", NOW, NOW + TTL, bystander, sizeof(bystander),
               NULL);
    assert_int_equal(check(f, token), SK_TOKEN_OK);
    assert_int_equal(check(f, token), SK_TOKEN_OK);
    assert_int_equal(check(f, bystander), SK_TOKEN_OK);

    revoke_jti(f, jti, NOW + TTL);
    assert_int_equal(check(f, token), SK_TOKEN_REVOKED);
    assert_int_equal(check(f, token), SK_TOKEN_REVOKED);
    char header[SK_JWT_MAX_TOKEN + 16];
    snprintf(header, sizeof(header), "Bearer %s", token);
    assert_int_equal(check(f, header), SK_TOKEN_REVOKED);
    /* Other tokens are re-checked once and stay good. */
    assert_int_equal(check(f, bystander), SK_TOKEN_OK);
    assert_int_equal(check(f, bystander), SK_TOKEN_OK);

    /* Another thread's cache, which never saw the token, refuses it as well. */
    sk_token_cache_t *other = sk_token_cache_create(f->key, sizeof(f->key), f->ts.store);
    assert_non_null(other);
    const sk_jwt_claims_t *claims = NULL;
    assert_int_equal(sk_token_check(other, token, strlen(token), NOW, &claims), SK_TOKEN_REVOKED);
    assert_int_equal(sk_token_check(other, bystander, strlen(bystander), NOW, &claims),
                     SK_TOKEN_OK);
    sk_token_cache_destroy(other);
}

static void test_revoked_before_seen(void **state)
{
    fixture_t *f = *state;
    char token[SK_JWT_MAX_TOKEN], jti[SK_JWT_JTI_LEN + 1];
    good_token(f, token, sizeof(token), jti);
    revoke_jti(f, jti, NOW + TTL);
    assert_int_equal(check(f, token), SK_TOKEN_REVOKED);
    /* Not cached as good on the way. */
    assert_int_equal(check(f, token), SK_TOKEN_REVOKED);
}

static void test_revoked_and_expired(void **state)
{
    fixture_t *f = *state;
    char token[SK_JWT_MAX_TOKEN], jti[SK_JWT_JTI_LEN + 1];
    good_token(f, token, sizeof(token), jti);
    assert_int_equal(check(f, token), SK_TOKEN_OK);
    revoke_jti(f, jti, NOW + TTL);
    /* Cached or not, expiry is reported first. */
    assert_int_equal(check_at(f, token, NOW + TTL + 6, NULL), SK_TOKEN_EXPIRED);
    sk_token_cache_t *other = sk_token_cache_create(f->key, sizeof(f->key), f->ts.store);
    assert_non_null(other);
    const sk_jwt_claims_t *claims = NULL;
    assert_int_equal(sk_token_check(other, token, strlen(token), NOW + TTL + 6, &claims),
                     SK_TOKEN_EXPIRED);
    sk_token_cache_destroy(other);
}

static void test_revocation_survives_restart(void **state)
{
    fixture_t *f = *state;
    char token[SK_JWT_MAX_TOKEN], jti[SK_JWT_JTI_LEN + 1];
    int64_t now = (int64_t)time(NULL);
    make_token(f->key, sizeof(f->key), "customer_0", now, now + TTL, token, sizeof(token), jti);
    assert_int_equal(check_at(f, token, now, NULL), SK_TOKEN_OK);
    revoke_jti(f, jti, now + TTL);

    /* A restarted service: a new store on the same file, a new cache. */
    sk_token_cache_destroy(f->cache);
    sk_store_thread_destroy(f->ts.store, f->ts.thread);
    sk_store_destroy(f->ts.store);
    f->ts.store = sk_store_local_create(f->ts.db_path, 0);
    assert_non_null(f->ts.store);
    f->ts.thread = sk_store_thread_create(f->ts.store, f->ts.loop, f->ts.queue);
    assert_non_null(f->ts.thread);
    f->cache = sk_token_cache_create(f->key, sizeof(f->key), f->ts.store);
    assert_non_null(f->cache);
    assert_int_equal(check_at(f, token, now, NULL), SK_TOKEN_REVOKED);
}

static void test_far_future_expiry_cached(void **state)
{
    fixture_t *f = *state;
    char token[SK_JWT_MAX_TOKEN];
    make_token(f->key, sizeof(f->key), "customer_0", NOW, INT64_MAX, token, sizeof(token), NULL);
    assert_int_equal(check(f, token), SK_TOKEN_OK);
    assert_int_equal(check(f, token), SK_TOKEN_OK);
}

/* The token a wiped database's service issued, signed with the same secret: another
 * deployment id, so invalid, whether still fresh or already expired, and not cached. */
static void test_token_of_another_deployment(void **state)
{
    fixture_t *f = *state;
    char token[SK_JWT_MAX_TOKEN], expired[SK_JWT_MAX_TOKEN], ours[SK_JWT_MAX_TOKEN];
    char saved[SK_JWT_DEP_LEN + 1];
    memcpy(saved, token_dep, sizeof(saved));
    memcpy(token_dep, "0123456789abcdef0123456789abcdef", sizeof(token_dep));
    assert_string_not_equal(token_dep, saved);
    good_token(f, token, sizeof(token), NULL);
    make_token(f->key, sizeof(f->key), "customer_0", NOW - TTL, NOW - 10, expired, sizeof(expired),
               NULL);
    /* One differing character, the last one, is enough. */
    memcpy(token_dep, saved, sizeof(token_dep));
    token_dep[SK_JWT_DEP_LEN - 1] = token_dep[SK_JWT_DEP_LEN - 1] == '0' ? '1' : '0';
    char last[SK_JWT_MAX_TOKEN];
    good_token(f, last, sizeof(last), NULL);
    memcpy(token_dep, saved, sizeof(token_dep));
    good_token(f, ours, sizeof(ours), NULL);

    assert_int_equal(check(f, token), SK_TOKEN_INVALID);
    assert_int_equal(check(f, token), SK_TOKEN_INVALID);
    assert_int_equal(check(f, expired), SK_TOKEN_INVALID);
    assert_int_equal(check(f, last), SK_TOKEN_INVALID);
    /* The control: the same claims under this store's id pass. */
    const sk_jwt_claims_t *claims = NULL;
    assert_int_equal(check_at(f, ours, NOW, &claims), SK_TOKEN_OK);
    assert_string_equal(claims->dep, saved);
    assert_int_equal(claims->uid, 42);
}

/* The wipe: a store on a new database (same secret) refuses the old store's tokens. */
static void test_token_after_database_wipe(void **state)
{
    fixture_t *f = *state;
    char token[SK_JWT_MAX_TOKEN];
    good_token(f, token, sizeof(token), NULL);
    assert_int_equal(check(f, token), SK_TOKEN_OK);

    sk_test_store_t wiped;
    memset(&wiped, 0, sizeof(wiped));
    assert_int_equal(sk_test_store_open(&wiped, "token-wiped"), 0);
    assert_string_not_equal(sk_store_deployment_id(wiped.store), token_dep);
    sk_token_cache_t *cache = sk_token_cache_create(f->key, sizeof(f->key), wiped.store);
    assert_non_null(cache);
    const sk_jwt_claims_t *claims = NULL;
    assert_int_equal(sk_token_check(cache, token, strlen(token), NOW, &claims), SK_TOKEN_INVALID);
    sk_token_cache_destroy(cache);
    sk_test_store_close(&wiped);
}

int main(void)
{
    sk_log_set_level(SK_LOG_ERROR);
#define TOKEN_TEST(name) cmocka_unit_test_setup_teardown(name, setup_fixture, teardown_fixture)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_from_header),
        TOKEN_TEST(test_valid_token_then_cached),
        TOKEN_TEST(test_many_tokens),
        TOKEN_TEST(test_missing),
        TOKEN_TEST(test_invalid),
        TOKEN_TEST(test_not_yet_valid),
        TOKEN_TEST(test_expired),
        TOKEN_TEST(test_cached_token_expires),
        TOKEN_TEST(test_revoked_after_cached),
        TOKEN_TEST(test_revoked_before_seen),
        TOKEN_TEST(test_revoked_and_expired),
        TOKEN_TEST(test_revocation_survives_restart),
        TOKEN_TEST(test_far_future_expiry_cached),
        TOKEN_TEST(test_token_of_another_deployment),
        TOKEN_TEST(test_token_after_database_wipe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
