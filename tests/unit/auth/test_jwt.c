/*
 * Unit tests for src/auth/jwt.c: tokens round-trip, and everything that is not a token we
 * signed with this key (tampered, re-keyed, other algs, missing claims, garbage, late or
 * early) is refused with the exact status the HTTP layer maps to its 401 messages.
 * Hand-built tokens are signed here with libsodium directly, and each family of them has
 * a positive control so a refusal cannot come from a broken helper. Tokens without the
 * uid and dep claims (what versions before them signed) are refused.
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
#include <sodium.h>

#include "auth/jwt.h"
#include "util/error.h"

#define NOW INT64_C(1700000000)
#define TTL 3600
#define B64 sodium_base64_VARIANT_URLSAFE_NO_PADDING

static const uint8_t test_key[] = "seckill-test-secret-0123456789abcdef";
#define TEST_KEY_LEN (sizeof test_key - 1)

static const char hs256_header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
#define TEST_DEP "0123456789abcdef0123456789abcdef"
#define TEST_UID 7
static const char good_payload[] =
    "{\"username\":\"customer_0\",\"kind\":\"customer\",\"uid\":7,\"dep\":\"" TEST_DEP "\","
    "\"iat\":1700000000,\"nbf\":1700000000,\"exp\":1700003600,"
    "\"jti\":\"00112233445566778899aabbccddeeff\"}";

/* good_payload under hs256_header and test_key, signed by Python's hmac module. */
static const char python_token[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJ1c2VybmFtZSI6ImN1c3RvbWVyXzAiLCJraW5kIjoiY3VzdG9tZXIiLCJ1aWQiOjcsImRlcCI6IjAxMjM0NTY3OD"
    "lhYmNkZWYwMTIzNDU2Nzg5YWJjZGVmIiwiaWF0IjoxNzAwMDAwMDAwLCJuYmYiOjE3MDAwMDAwMDAsImV4cCI6MTcw"
    "MDAwMzYwMCwianRpIjoiMDAxMTIyMzM0NDU1NjY3Nzg4OTlhYWJiY2NkZGVlZmYifQ."
    "pTohhlIZfEIm01XY9mVJkaVRfYAQotbng4t0jngUVKg";

static int setup_sodium(void **state)
{
    (void)state;
    return sodium_init() < 0 ? -1 : 0;
}

static sk_jwt_claims_t make_claims(const char *username, const char *kind)
{
    sk_jwt_claims_t claims;

    memset(&claims, 0, sizeof claims);
    assert_true(strlen(username) < sizeof claims.username);
    strcpy(claims.username, username);
    strcpy(claims.kind, kind);
    claims.iat = NOW;
    claims.nbf = NOW;
    claims.exp = NOW + TTL;
    strcpy(claims.jti, "00112233445566778899aabbccddeeff");
    strcpy(claims.dep, TEST_DEP);
    claims.uid = TEST_UID;
    return claims;
}

static int sign_test_claims(const sk_jwt_claims_t *claims, char *out, size_t out_size)
{
    int len = sk_jwt_sign(test_key, TEST_KEY_LEN, claims, out, out_size);

    assert_true(len > 0);
    assert_int_equal(strlen(out), (size_t)len);
    return len;
}

static sk_jwt_status_t verify_at(const char *token, int64_t now, sk_jwt_claims_t *claims)
{
    return sk_jwt_verify(test_key, TEST_KEY_LEN, token, strlen(token), now, claims);
}

static sk_jwt_status_t verify_now(const char *token)
{
    sk_jwt_claims_t claims;

    return verify_at(token, NOW, &claims);
}

static void b64url(const void *data, size_t len, char *out, size_t out_size)
{
    assert_true(sodium_base64_ENCODED_LEN(len, B64) <= out_size);
    sodium_bin2base64(out, out_size, data, len, B64);
}

/* Appends "." and the HS256 signature of the `len` bytes at `token` under `key`. */
static void append_signature(const uint8_t *key, size_t key_len, char *token, size_t token_size)
{
    crypto_auth_hmacsha256_state state;
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    size_t len = strlen(token);

    crypto_auth_hmacsha256_init(&state, key, key_len);
    crypto_auth_hmacsha256_update(&state, (const unsigned char *)token, len);
    crypto_auth_hmacsha256_final(&state, mac);
    assert_true(len + 1 < token_size);
    token[len] = '.';
    b64url(mac, sizeof mac, token + len + 1, token_size - len - 1);
}

/* base64url(header) "." base64url(payload) "." HS256 under test_key, for any JSON text. */
static void hand_sign(const char *header, const char *payload, char *out, size_t out_size)
{
    size_t header_b64_len;

    b64url(header, strlen(header), out, out_size);
    header_b64_len = strlen(out);
    assert_true(header_b64_len + 1 < out_size);
    out[header_b64_len] = '.';
    b64url(payload, strlen(payload), out + header_b64_len + 1, out_size - header_b64_len - 1);
    append_signature(test_key, TEST_KEY_LEN, out, out_size);
}

static sk_jwt_status_t verify_hand_signed(const char *header, const char *payload)
{
    char token[4096];

    hand_sign(header, payload, token, sizeof token);
    return verify_now(token);
}

static void assert_claims_equal(const sk_jwt_claims_t *got, const sk_jwt_claims_t *want)
{
    assert_string_equal(got->username, want->username);
    assert_string_equal(got->kind, want->kind);
    assert_int_equal(got->iat, want->iat);
    assert_int_equal(got->nbf, want->nbf);
    assert_int_equal(got->exp, want->exp);
    assert_string_equal(got->jti, want->jti);
    assert_string_equal(got->dep, want->dep);
    assert_int_equal(got->uid, want->uid);
}

static json_t *decode_segment(const char *b64, size_t len)
{
    unsigned char bin[SK_JWT_MAX_TOKEN];
    size_t bin_len;

    assert_int_equal(sodium_base642bin(bin, sizeof bin, b64, len, NULL, &bin_len, NULL, B64), 0);
    return json_loadb((const char *)bin, bin_len, 0, NULL);
}

static void test_round_trip(void **state)
{
    sk_jwt_claims_t claims = make_claims("saler_0", "saler");
    sk_jwt_claims_t got;
    char token[SK_JWT_MAX_TOKEN];
    const char *dot1;
    const char *dot2;
    json_t *header;
    json_t *payload;
    (void)state;

    sk_jwt_new_jti(&claims);
    sign_test_claims(&claims, token, sizeof token);
    memset(&got, 0xAA, sizeof got);
    assert_int_equal(verify_at(token, NOW, &got), SK_JWT_VALID);
    assert_claims_equal(&got, &claims);

    dot1 = strchr(token, '.');
    dot2 = strchr(dot1 + 1, '.');
    assert_non_null(dot2);
    assert_null(strchr(dot2 + 1, '.'));
    header = decode_segment(token, (size_t)(dot1 - token));
    assert_non_null(header);
    assert_string_equal(json_string_value(json_object_get(header, "alg")), "HS256");
    assert_string_equal(json_string_value(json_object_get(header, "typ")), "JWT");
    assert_int_equal(json_object_size(header), 2);
    json_decref(header);
    payload = decode_segment(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    assert_non_null(payload);
    /* The eight claims and nothing else: no password, no hash of one. */
    assert_int_equal(json_object_size(payload), 8);
    assert_string_equal(json_string_value(json_object_get(payload, "dep")), TEST_DEP);
    assert_int_equal(json_integer_value(json_object_get(payload, "uid")), TEST_UID);
    assert_string_equal(json_string_value(json_object_get(payload, "username")), "saler_0");
    assert_string_equal(json_string_value(json_object_get(payload, "kind")), "saler");
    assert_int_equal(json_integer_value(json_object_get(payload, "exp")), NOW + TTL);
    json_decref(payload);
}

/* Interoperability: the same bytes as an independent implementation (Python hmac). */
static void test_matches_independent_implementation(void **state)
{
    sk_jwt_claims_t claims = make_claims("customer_0", "customer");
    sk_jwt_claims_t got;
    char token[SK_JWT_MAX_TOKEN];
    (void)state;

    sign_test_claims(&claims, token, sizeof token);
    assert_string_equal(token, python_token);
    assert_int_equal(verify_at(python_token, NOW, &got), SK_JWT_VALID);
    assert_claims_equal(&got, &claims);
}

static void test_token_need_not_be_nul_terminated(void **state)
{
    sk_jwt_claims_t claims = make_claims("customer_0", "customer");
    sk_jwt_claims_t got;
    char token[SK_JWT_MAX_TOKEN];
    char *exact;
    char padded[SK_JWT_MAX_TOKEN + 8];
    size_t len;
    (void)state;

    len = (size_t)sign_test_claims(&claims, token, sizeof token);
    /* An exact-size heap copy: ASan reports any read past token_len. */
    exact = malloc(len);
    assert_non_null(exact);
    memcpy(exact, token, len);
    assert_int_equal(sk_jwt_verify(test_key, TEST_KEY_LEN, exact, len, NOW, &got), SK_JWT_VALID);
    assert_claims_equal(&got, &claims);
    assert_int_equal(sk_jwt_verify(test_key, TEST_KEY_LEN, exact, len - 1, NOW, &got),
                     SK_JWT_INVALID);
    free(exact);

    memset(padded, 'A', sizeof padded);
    memcpy(padded, token, len);
    assert_int_equal(sk_jwt_verify(test_key, TEST_KEY_LEN, padded, len, NOW, &got), SK_JWT_VALID);
    assert_int_equal(sk_jwt_verify(test_key, TEST_KEY_LEN, padded, len + 1, NOW, &got),
                     SK_JWT_INVALID);
}

static void test_tampered_payload(void **state)
{
    sk_jwt_claims_t customer = make_claims("customer_0", "customer");
    sk_jwt_claims_t saler = make_claims("saler_0", "saler");
    char token[SK_JWT_MAX_TOKEN];
    char other[SK_JWT_MAX_TOKEN];
    char spliced[2 * SK_JWT_MAX_TOKEN];
    char *payload_start;
    char *payload_end;
    (void)state;

    sign_test_claims(&customer, token, sizeof token);
    payload_start = strchr(token, '.') + 1;
    payload_end = strchr(payload_start, '.');
    for (char *p = payload_start; p < payload_end; p++) {
        char saved = *p;

        *p = saved == 'A' ? 'B' : 'A';
        assert_int_equal(verify_now(token), SK_JWT_INVALID);
        *p = saved;
    }
    assert_int_equal(verify_now(token), SK_JWT_VALID);

    /* A validly signed payload of another token under this token's signature. */
    sign_test_claims(&saler, other, sizeof other);
    {
        const char *other_payload = strchr(other, '.') + 1;
        const char *other_end = strchr(other_payload, '.');

        snprintf(spliced, sizeof spliced, "%.*s%.*s%s", (int)(payload_start - token), token,
                 (int)(other_end - other_payload), other_payload, payload_end);
    }
    assert_int_equal(verify_now(spliced), SK_JWT_INVALID);
}

static void test_tampered_signature(void **state)
{
    sk_jwt_claims_t claims = make_claims("customer_0", "customer");
    char token[SK_JWT_MAX_TOKEN + 2];
    char *sig;
    size_t len;
    (void)state;

    len = (size_t)sign_test_claims(&claims, token, sizeof token);
    sig = strrchr(token, '.') + 1;
    assert_int_equal(strlen(sig), 43);
    /* Every position, including the last character whose low bits are padding. */
    for (char *p = sig; *p != '\0'; p++) {
        static const char replacements[] = "AB-_";

        for (const char *r = replacements; *r != '\0'; r++) {
            char saved = *p;

            if (*r == saved) {
                continue;
            }
            *p = *r;
            assert_int_equal(verify_now(token), SK_JWT_INVALID);
            *p = saved;
        }
    }
    assert_int_equal(verify_now(token), SK_JWT_VALID);

    token[len - 1] = '\0';
    assert_int_equal(verify_now(token), SK_JWT_INVALID);
    strcpy(token, python_token);
    strcat(token, "=");
    assert_int_equal(verify_now(token), SK_JWT_INVALID);
    strcpy(token, python_token);
    strcat(token, "A");
    assert_int_equal(verify_now(token), SK_JWT_INVALID);
}

static void test_wrong_key(void **state)
{
    sk_jwt_claims_t claims = make_claims("customer_0", "customer");
    sk_jwt_claims_t got;
    char token[SK_JWT_MAX_TOKEN];
    uint8_t other_key[sizeof test_key];
    size_t len;
    (void)state;

    len = (size_t)sign_test_claims(&claims, token, sizeof token);
    memcpy(other_key, test_key, sizeof other_key);
    other_key[TEST_KEY_LEN - 1] ^= 1;
    assert_int_equal(sk_jwt_verify(other_key, TEST_KEY_LEN, token, len, NOW, &got), SK_JWT_INVALID);
    other_key[TEST_KEY_LEN - 1] ^= 1;
    other_key[0] ^= 0x80;
    assert_int_equal(sk_jwt_verify(other_key, TEST_KEY_LEN, token, len, NOW, &got), SK_JWT_INVALID);
    other_key[0] ^= 0x80;
    assert_int_equal(sk_jwt_verify(other_key, TEST_KEY_LEN, token, len, NOW, &got), SK_JWT_VALID);
    /* An empty key would make every forger a signer, even of a token made for it. */
    assert_int_equal(sk_jwt_verify(test_key, 0, token, len, NOW, &got), SK_JWT_INVALID);
    *strrchr(token, '.') = '\0';
    append_signature(test_key, 0, token, sizeof token);
    assert_int_equal(sk_jwt_verify(test_key, 0, token, strlen(token), NOW, &got), SK_JWT_INVALID);
}

static void test_alg_none(void **state)
{
    char token[4096];
    const char *payload_b64 = strchr(python_token, '.') + 1;
    size_t payload_b64_len = (size_t)(strrchr(python_token, '.') - payload_b64);
    (void)state;

    /* {"alg":"none"}, unsigned, as the classic attack sends it. */
    snprintf(token, sizeof token, "eyJhbGciOiJub25lIn0.%.*s.", (int)payload_b64_len, payload_b64);
    assert_int_equal(verify_now(token), SK_JWT_INVALID);
    /* The same with a signature that matches under our key: alg alone must refuse it. */
    token[strlen(token) - 1] = '\0';
    append_signature(test_key, TEST_KEY_LEN, token, sizeof token);
    assert_int_equal(verify_now(token), SK_JWT_INVALID);

    assert_int_equal(verify_hand_signed("{\"alg\":\"none\",\"typ\":\"JWT\"}", good_payload),
                     SK_JWT_INVALID);
    assert_int_equal(verify_hand_signed("{\"alg\":\"None\"}", good_payload), SK_JWT_INVALID);
    assert_int_equal(verify_hand_signed("{\"alg\":\"\"}", good_payload), SK_JWT_INVALID);
}

static void test_header_variants_accepted(void **state)
{
    (void)state;

    /* Positive controls for the hand-built tokens: any typ, any key order. */
    assert_int_equal(verify_hand_signed(hs256_header, good_payload), SK_JWT_VALID);
    assert_int_equal(verify_hand_signed("{\"alg\":\"HS256\"}", good_payload), SK_JWT_VALID);
    assert_int_equal(verify_hand_signed("{\"typ\":\"JWT\",\"alg\":\"HS256\"}", good_payload),
                     SK_JWT_VALID);
    assert_int_equal(verify_hand_signed(" { \"alg\" : \"HS256\", \"typ\": \"at+jwt\", "
                                        "\"kid\": \"k1\" } ",
                                        good_payload),
                     SK_JWT_VALID);
}

static void test_other_algs_and_bad_headers(void **state)
{
    static const char *const headers[] = {
        "{\"alg\":\"HS512\",\"typ\":\"JWT\"}",
        "{\"alg\":\"HS384\"}",
        "{\"alg\":\"RS256\"}",
        "{\"alg\":\"hs256\"}",
        "{\"alg\":\"Hs256\"}",
        "{\"alg\":\"HS256 \"}",
        "{\"alg\":\" HS256\"}",
        "{\"alg\":\"HS2560\"}",
        "{\"alg\":\"HS256\\u0000\"}",
        "{\"typ\":\"JWT\"}",
        "{\"ALG\":\"HS256\"}",
        "{\"alg\":null}",
        "{\"alg\":256}",
        "{\"alg\":[\"HS256\"]}",
        "{\"alg\":{\"name\":\"HS256\"}}",
        "{\"alg\":\"HS256\",\"alg\":\"none\"}",
        "{\"alg\":\"none\",\"alg\":\"HS256\"}",
        "{\"alg\":\"HS256\",\"crit\":[\"exp\"]}",
        "{}",
        "[\"HS256\"]",
        "\"HS256\"",
        "null",
        "",
        "{\"alg\":\"HS256\"",
        "{\"alg\":\"HS256\"}x",
        "{\"alg\":\"HS256\"}{}",
    };
    (void)state;

    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        if (verify_hand_signed(headers[i], good_payload) != SK_JWT_INVALID) {
            fail_msg("header accepted: %s", headers[i]);
        }
    }
}

/* The eight claims as JSON members, and a payload of all of them but `skip` (-1: none). */
static const char *const claim_members[8] = {
    "\"username\":\"u\"", "\"kind\":\"customer\"", "\"uid\":7",          "\"dep\":\"" TEST_DEP "\"",
    "\"iat\":1700000000", "\"nbf\":1700000000",    "\"exp\":1700003600", "\"jti\":\"j1\"",
};

static void payload_without(int skip, const char *extra, char *out, size_t out_size)
{
    size_t len = (size_t)snprintf(out, out_size, "{");
    for (int i = 0; i < 8; i++) {
        if (i != skip) {
            len += (size_t)snprintf(out + len, out_size - len, "%s%s", len > 1 ? "," : "",
                                    claim_members[i]);
        }
    }
    snprintf(out + len, out_size - len, "%s}", extra);
}

static void test_missing_claims(void **state)
{
    char payload[1024];
    (void)state;

    /* The control: all eight present, short values, plus a claim we do not know. */
    payload_without(-1, ",\"aud\":\"x\"", payload, sizeof payload);
    assert_int_equal(verify_hand_signed(hs256_header, payload), SK_JWT_VALID);
    for (int skip = 0; skip < 8; skip++) {
        payload_without(skip, "", payload, sizeof payload);
        if (verify_hand_signed(hs256_header, payload) != SK_JWT_INVALID) {
            fail_msg("payload accepted: %s", payload);
        }
    }
    /* What versions before uid and dep signed: well signed, and still refused. */
    assert_int_equal(verify_hand_signed(hs256_header,
                                        "{\"username\":\"u\",\"kind\":\"customer\",\"iat\":"
                                        "1700000000,\"nbf\":1700000000,\"exp\":1700003600,"
                                        "\"jti\":\"j1\"}"),
                     SK_JWT_INVALID);
    assert_int_equal(verify_hand_signed(hs256_header, "{}"), SK_JWT_INVALID);
}

/* good_payload with one claim's JSON value replaced by `value`. */
static sk_jwt_status_t verify_with_claim(const char *name, const char *value)
{
    char payload[1024];
    const char *values[8] = {"\"customer_0\"", "\"customer\"", "7",          "\"" TEST_DEP "\"",
                             "1700000000",     "1700000000",   "1700003600", "\"j1\""};
    static const char *const names[8] = {"username", "kind", "uid", "dep",
                                         "iat",      "nbf",  "exp", "jti"};

    for (size_t i = 0; i < 8; i++) {
        if (strcmp(names[i], name) == 0) {
            values[i] = value;
        }
    }
    snprintf(payload, sizeof payload,
             "{\"username\":%s,\"kind\":%s,\"uid\":%s,\"dep\":%s,\"iat\":%s,\"nbf\":%s,"
             "\"exp\":%s,\"jti\":%s}",
             values[0], values[1], values[2], values[3], values[4], values[5], values[6],
             values[7]);
    return verify_hand_signed(hs256_header, payload);
}

static void test_bad_claim_values(void **state)
{
    static const struct {
        const char *name, *value;
    } bad[] = {
        {"username", "\"\""},
        {"username", "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\""},
        {"username", "42"},
        {"username", "null"},
        {"username", "[\"customer_0\"]"},
        {"username", "\"a\\u0000b\""},
        {"kind", "\"admin\""},
        {"kind", "\"Customer\""},
        {"kind", "\"seller\""},
        {"kind", "\"customer \""},
        {"kind", "\"\""},
        {"kind", "\"customer\\u0000x\""},
        {"kind", "\"customercustomercustomer\""},
        {"kind", "1"},
        {"iat", "\"1700000000\""},
        {"iat", "null"},
        {"nbf", "1.7e9"},
        {"nbf", "true"},
        {"exp", "1700003600.0"},
        {"exp", "1.5"},
        {"exp", "99999999999999999999"},
        {"exp", "\"1700003600\""},
        {"jti", "\"\""},
        {"jti", "\"00112233445566778899aabbccddeeff0\""},
        {"jti", "123"},
        {"uid", "0"},
        {"uid", "-1"},
        {"uid", "\"7\""},
        {"uid", "7.0"},
        {"uid", "null"},
        {"dep", "\"\""},
        {"dep", "\"0123456789abcdef0123456789abcde\""},
        {"dep", "\"0123456789abcdef0123456789abcdef0\""},
        {"dep", "42"},
        {"dep", "null"},
    };
    (void)state;

    /* Controls at the edges: 64-byte user name, 32-character jti. */
    assert_int_equal(verify_with_claim("username", "\"customer_0\""), SK_JWT_VALID);
    assert_int_equal(
        verify_with_claim("username",
                          "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\""),
        SK_JWT_VALID);
    assert_int_equal(verify_with_claim("jti", "\"00112233445566778899aabbccddeeff\""),
                     SK_JWT_VALID);
    assert_int_equal(verify_with_claim("kind", "\"saler\""), SK_JWT_VALID);
    assert_int_equal(verify_with_claim("uid", "1"), SK_JWT_VALID);
    assert_int_equal(verify_with_claim("uid", "9223372036854775807"), SK_JWT_VALID);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (verify_with_claim(bad[i].name, bad[i].value) != SK_JWT_INVALID) {
            fail_msg("claim accepted: %s = %s", bad[i].name, bad[i].value);
        }
    }
}

static void test_bad_payload_documents(void **state)
{
    static const char *const payloads[] = {
        "[]",
        "null",
        "\"customer_0\"",
        "",
        "{",
        /* Two user names: which one would another parser believe? */
        ("{\"username\":\"customer_0\",\"username\":\"admin\",\"kind\":\"customer\",\"iat\":1,"
         "\"nbf\":1,\"exp\":1700003600,\"jti\":\"j1\"}"),
    };
    char trailing[sizeof good_payload + 1];
    (void)state;

    for (size_t i = 0; i < sizeof payloads / sizeof payloads[0]; i++) {
        if (verify_hand_signed(hs256_header, payloads[i]) != SK_JWT_INVALID) {
            fail_msg("payload accepted: %s", payloads[i]);
        }
    }
    snprintf(trailing, sizeof trailing, "%sx", good_payload);
    assert_int_equal(verify_hand_signed(hs256_header, trailing), SK_JWT_INVALID);
}

static void test_expiry_and_leeway(void **state)
{
    sk_jwt_claims_t claims = make_claims("customer_0", "customer");
    sk_jwt_claims_t got;
    char token[SK_JWT_MAX_TOKEN];
    (void)state;

    sign_test_claims(&claims, token, sizeof token);
    assert_int_equal(verify_at(token, claims.exp - 1, &got), SK_JWT_VALID);
    assert_int_equal(verify_at(token, claims.exp, &got), SK_JWT_VALID);
    assert_int_equal(verify_at(token, claims.exp + SK_JWT_LEEWAY, &got), SK_JWT_VALID);

    memset(&got, 0xAA, sizeof got);
    assert_int_equal(verify_at(token, claims.exp + SK_JWT_LEEWAY + 1, &got), SK_JWT_EXPIRED);
    assert_claims_equal(&got, &claims);
    memset(&got, 0xAA, sizeof got);
    assert_int_equal(verify_at(token, claims.exp + 86400, &got), SK_JWT_EXPIRED);
    assert_claims_equal(&got, &claims);

    /* A forged expired token is invalid, not expired. */
    assert_int_equal(
        sk_jwt_verify(test_key, TEST_KEY_LEN - 1, token, strlen(token), claims.exp + 86400, &got),
        SK_JWT_INVALID);
}

static void test_not_before_and_leeway(void **state)
{
    sk_jwt_claims_t claims = make_claims("customer_0", "customer");
    sk_jwt_claims_t got;
    char token[SK_JWT_MAX_TOKEN];
    (void)state;

    claims.nbf = NOW + 100;
    sign_test_claims(&claims, token, sizeof token);
    assert_int_equal(verify_at(token, claims.nbf, &got), SK_JWT_VALID);
    assert_claims_equal(&got, &claims);
    assert_int_equal(verify_at(token, claims.nbf - SK_JWT_LEEWAY, &got), SK_JWT_VALID);
    assert_int_equal(verify_at(token, claims.nbf - SK_JWT_LEEWAY - 1, &got), SK_JWT_INVALID);
    assert_int_equal(verify_at(token, NOW, &got), SK_JWT_INVALID);
}

/* Times at the ends of int64_t must not overflow (UBSan watches). */
static void test_extreme_times(void **state)
{
    sk_jwt_claims_t claims = make_claims("customer_0", "customer");
    sk_jwt_claims_t got;
    char token[SK_JWT_MAX_TOKEN];
    (void)state;

    claims.iat = INT64_MIN;
    claims.nbf = INT64_MIN;
    claims.exp = INT64_MAX;
    sign_test_claims(&claims, token, sizeof token);
    assert_int_equal(verify_at(token, INT64_MAX, &got), SK_JWT_VALID);
    assert_claims_equal(&got, &claims);
    assert_int_equal(verify_at(token, INT64_MIN, &got), SK_JWT_VALID);

    claims.exp = INT64_MIN;
    sign_test_claims(&claims, token, sizeof token);
    assert_int_equal(verify_at(token, INT64_MIN, &got), SK_JWT_VALID);
    assert_int_equal(verify_at(token, INT64_MAX, &got), SK_JWT_EXPIRED);

    claims.nbf = INT64_MAX;
    claims.exp = INT64_MAX;
    sign_test_claims(&claims, token, sizeof token);
    assert_int_equal(verify_at(token, INT64_MAX, &got), SK_JWT_VALID);
    assert_int_equal(verify_at(token, INT64_MAX - SK_JWT_LEEWAY, &got), SK_JWT_VALID);
    assert_int_equal(verify_at(token, INT64_MAX - SK_JWT_LEEWAY - 1, &got), SK_JWT_INVALID);
    assert_int_equal(verify_at(token, INT64_MIN, &got), SK_JWT_INVALID);
}

static void test_garbage(void **state)
{
    static const char *const inputs[] = {
        ".",
        "..",
        "...",
        "....",
        "a",
        "a.b",
        "a.b.c",
        "a.b.c.d",
        "eyJhbGciOiJIUzI1NiJ9",
        "eyJhbGciOiJIUzI1NiJ9.eyJ9",
        "eyJhbGciOiJIUzI1NiJ9.eyJ9.",
        "..AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "Bearer x.y.z",
        "\xff\xfe.\x80.\x01",
    };
    sk_jwt_claims_t got;
    char token[SK_JWT_MAX_TOKEN + 8];
    char *huge;
    size_t len = strlen(python_token);
    size_t huge_len = 1 << 20;
    (void)state;

    assert_int_equal(sk_jwt_verify(test_key, TEST_KEY_LEN, "", 0, NOW, &got), SK_JWT_INVALID);
    assert_int_equal(sk_jwt_verify(test_key, TEST_KEY_LEN, NULL, 0, NOW, &got), SK_JWT_INVALID);
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        if (verify_now(inputs[i]) != SK_JWT_INVALID) {
            fail_msg("garbage accepted: %s", inputs[i]);
        }
    }

    /* Characters outside base64url, or extra dots, anywhere in an otherwise good token. */
    assert_int_equal(verify_now(python_token), SK_JWT_VALID);
    for (size_t i = 0; i < len; i++) {
        static const char intruders[] = "*+/= .\n";

        if (python_token[i] == '.') {
            continue;
        }
        for (const char *c = intruders; *c != '\0'; c++) {
            strcpy(token, python_token);
            token[i] = *c;
            if (verify_now(token) != SK_JWT_INVALID) {
                fail_msg("'%c' at %zu accepted", *c, i);
            }
        }
    }
    snprintf(token, sizeof token, ".%s", python_token);
    assert_int_equal(verify_now(token), SK_JWT_INVALID);
    snprintf(token, sizeof token, "%s.", python_token);
    assert_int_equal(verify_now(token), SK_JWT_INVALID);
    snprintf(token, sizeof token, " %s", python_token);
    assert_int_equal(verify_now(token), SK_JWT_INVALID);

    /* Embedded NUL: inside the token, and as one byte too many at its end. */
    memcpy(token, python_token, len + 1);
    token[50] = '\0';
    assert_int_equal(sk_jwt_verify(test_key, TEST_KEY_LEN, token, len, NOW, &got), SK_JWT_INVALID);
    memcpy(token, python_token, len + 1);
    assert_int_equal(sk_jwt_verify(test_key, TEST_KEY_LEN, token, len + 1, NOW, &got),
                     SK_JWT_INVALID);

    /* Huge: a good token followed by a megabyte of base64 characters. */
    huge = malloc(huge_len);
    assert_non_null(huge);
    memset(huge, 'A', huge_len);
    memcpy(huge, python_token, len);
    assert_int_equal(sk_jwt_verify(test_key, TEST_KEY_LEN, huge, huge_len, NOW, &got),
                     SK_JWT_INVALID);
    assert_int_equal(sk_jwt_verify(test_key, TEST_KEY_LEN, huge, len, NOW, &got), SK_JWT_VALID);
    assert_int_equal(sk_jwt_verify(test_key, TEST_KEY_LEN, huge, SK_JWT_MAX_TOKEN, NOW, &got),
                     SK_JWT_INVALID);
    free(huge);

    /* Correctly signed, but longer than any token we sign: an extra claim pads it out. */
    {
        char payload[512];
        char signed_token[1024];

        snprintf(payload, sizeof payload, "%.*s,\"aud\":\"%0300d\"}",
                 (int)(sizeof good_payload - 2), good_payload, 0);
        hand_sign(hs256_header, payload, signed_token, sizeof signed_token);
        assert_true(strlen(signed_token) >= SK_JWT_MAX_TOKEN);
        assert_int_equal(verify_now(signed_token), SK_JWT_INVALID);
        snprintf(payload, sizeof payload, "%.*s,\"aud\":\"%010d\"}", (int)(sizeof good_payload - 2),
                 good_payload, 0);
        hand_sign(hs256_header, payload, signed_token, sizeof signed_token);
        assert_int_equal(verify_now(signed_token), SK_JWT_VALID);
    }
}

static void test_secret_with_arbitrary_bytes(void **state)
{
    static const char want_sig[] = "I1t_DxNXM6sdT3D_3JgsX_0J52m26K4DPAbO1iC6_MY";
    sk_jwt_claims_t claims = make_claims("customer_0", "customer");
    sk_jwt_claims_t got;
    uint8_t key[256];
    char token[SK_JWT_MAX_TOKEN];
    size_t len;
    (void)state;

    /* Starts with a NUL and holds every byte value: nothing may treat it as a C string. */
    for (size_t i = 0; i < sizeof key; i++) {
        key[i] = (uint8_t)i;
    }
    /* 100 bytes, longer than the SHA-256 block, checked against Python's hmac. */
    len = (size_t)sk_jwt_sign(key, 100, &claims, token, sizeof token);
    assert_int_equal(len, strlen(python_token));
    assert_string_equal(strrchr(token, '.') + 1, want_sig);
    assert_int_equal(sk_jwt_verify(key, 100, token, len, NOW, &got), SK_JWT_VALID);
    assert_claims_equal(&got, &claims);

    key[1] ^= 0xff;
    assert_int_equal(sk_jwt_verify(key, 100, token, len, NOW, &got), SK_JWT_INVALID);
    key[1] ^= 0xff;
    key[99] ^= 0x01;
    assert_int_equal(sk_jwt_verify(key, 100, token, len, NOW, &got), SK_JWT_INVALID);
    key[99] ^= 0x01;

    len = (size_t)sk_jwt_sign(key, sizeof key, &claims, token, sizeof token);
    assert_int_equal(sk_jwt_verify(key, sizeof key, token, len, NOW, &got), SK_JWT_VALID);
    key[200] = 0;
    assert_int_equal(sk_jwt_verify(key, sizeof key, token, len, NOW, &got), SK_JWT_INVALID);
}

static void test_different_key_lengths(void **state)
{
    sk_jwt_claims_t claims = make_claims("customer_0", "customer");
    sk_jwt_claims_t got;
    uint8_t key[80];
    char token[SK_JWT_MAX_TOKEN];
    /* Around 32 bytes (the configured minimum) and around 64 (the block size, above which
     * HMAC hashes the key first). */
    static const size_t lengths[] = {32, 64, 65};
    (void)state;

    memset(key, 'k', sizeof key);
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
        size_t key_len = lengths[i];
        int signed_len = sk_jwt_sign(key, key_len, &claims, token, sizeof token);
        size_t len;

        assert_true(signed_len > 0);
        len = (size_t)signed_len;
        assert_int_equal(sk_jwt_verify(key, key_len, token, len, NOW, &got), SK_JWT_VALID);
        assert_int_equal(sk_jwt_verify(key, key_len - 1, token, len, NOW, &got), SK_JWT_INVALID);
        assert_int_equal(sk_jwt_verify(key, key_len + 1, token, len, NOW, &got), SK_JWT_INVALID);
    }
}

static void test_jti(void **state)
{
    sk_jwt_claims_t first;
    sk_jwt_claims_t second;
    (void)state;

    memset(&first, 'x', sizeof first);
    memset(&second, 'x', sizeof second);
    sk_jwt_new_jti(&first);
    sk_jwt_new_jti(&second);
    assert_int_equal(strlen(first.jti), SK_JWT_JTI_LEN);
    assert_int_equal(strlen(second.jti), SK_JWT_JTI_LEN);
    assert_int_equal(strspn(first.jti, "0123456789abcdef"), SK_JWT_JTI_LEN);
    assert_int_equal(strspn(second.jti, "0123456789abcdef"), SK_JWT_JTI_LEN);
    assert_string_not_equal(first.jti, second.jti);
}

static void test_sign_output_size(void **state)
{
    sk_jwt_claims_t claims = make_claims("customer_0", "customer");
    char token[SK_JWT_MAX_TOKEN];
    int len;
    (void)state;

    len = sign_test_claims(&claims, token, sizeof token);
    /* Exact-size heap buffers, so ASan sees any write past out_size. */
    for (size_t size = 0; size <= (size_t)len + 1; size++) {
        char *out = malloc(size == 0 ? 1 : size);
        int got;

        assert_non_null(out);
        got = sk_jwt_sign(test_key, TEST_KEY_LEN, &claims, out, size);
        if (size <= (size_t)len) {
            assert_int_equal(got, SK_EINVAL);
        } else {
            assert_int_equal(got, len);
            assert_string_equal(out, token);
        }
        free(out);
    }
}

static void test_sign_refuses_bad_claims(void **state)
{
    sk_jwt_claims_t claims;
    char token[SK_JWT_MAX_TOKEN];
    (void)state;

    claims = make_claims("", "customer");
    assert_int_equal(sk_jwt_sign(test_key, TEST_KEY_LEN, &claims, token, sizeof token), SK_EINVAL);
    claims = make_claims("customer_0", "admin");
    assert_int_equal(sk_jwt_sign(test_key, TEST_KEY_LEN, &claims, token, sizeof token), SK_EINVAL);
    claims = make_claims("customer_0", "");
    assert_int_equal(sk_jwt_sign(test_key, TEST_KEY_LEN, &claims, token, sizeof token), SK_EINVAL);
    claims = make_claims("customer_0", "customer");
    claims.jti[0] = '\0';
    assert_int_equal(sk_jwt_sign(test_key, TEST_KEY_LEN, &claims, token, sizeof token), SK_EINVAL);
    claims = make_claims("customer_0", "customer");
    memset(claims.username, 'a', sizeof claims.username);
    assert_int_equal(sk_jwt_sign(test_key, TEST_KEY_LEN, &claims, token, sizeof token), SK_EINVAL);
    claims = make_claims("customer_0", "customer");
    memset(claims.kind, 'a', sizeof claims.kind);
    assert_int_equal(sk_jwt_sign(test_key, TEST_KEY_LEN, &claims, token, sizeof token), SK_EINVAL);
    claims = make_claims("customer_0", "customer");
    memset(claims.jti, 'a', sizeof claims.jti);
    assert_int_equal(sk_jwt_sign(test_key, TEST_KEY_LEN, &claims, token, sizeof token), SK_EINVAL);
    claims = make_claims("bad\xff utf8", "customer");
    assert_int_equal(sk_jwt_sign(test_key, TEST_KEY_LEN, &claims, token, sizeof token), SK_EINVAL);
    claims = make_claims("customer_0", "customer");
    claims.dep[SK_JWT_DEP_LEN - 1] = '\0';
    assert_int_equal(sk_jwt_sign(test_key, TEST_KEY_LEN, &claims, token, sizeof token), SK_EINVAL);
    claims = make_claims("customer_0", "customer");
    memset(claims.dep, 'a', sizeof claims.dep);
    assert_int_equal(sk_jwt_sign(test_key, TEST_KEY_LEN, &claims, token, sizeof token), SK_EINVAL);
    claims = make_claims("customer_0", "customer");
    claims.uid = 0;
    assert_int_equal(sk_jwt_sign(test_key, TEST_KEY_LEN, &claims, token, sizeof token), SK_EINVAL);
    claims = make_claims("customer_0", "customer");
    assert_int_equal(sk_jwt_sign(test_key, 0, &claims, token, sizeof token), SK_EINVAL);
    assert_int_equal(sk_jwt_sign(NULL, 0, &claims, token, sizeof token), SK_EINVAL);
}

/* The worst user names the API admits still fit SK_JWT_MAX_TOKEN and round-trip. */
static void test_longest_claims_fit(void **state)
{
    static const char *const fillers[] = {"\"", "\\", "\xc3\xa9", "/", "<"};
    sk_jwt_claims_t claims;
    sk_jwt_claims_t got;
    char token[SK_JWT_MAX_TOKEN];
    char username[SK_JWT_MAX_USERNAME + 1];
    (void)state;

    for (size_t i = 0; i < sizeof fillers / sizeof fillers[0]; i++) {
        size_t filler_len = strlen(fillers[i]);

        username[0] = '\0';
        while (strlen(username) + filler_len <= SK_JWT_MAX_USERNAME) {
            strcat(username, fillers[i]);
        }
        claims = make_claims(username, "customer");
        claims.iat = INT64_MIN;
        claims.nbf = INT64_MIN;
        claims.exp = INT64_MIN;
        claims.uid = INT64_MAX;
        sk_jwt_new_jti(&claims);
        sign_test_claims(&claims, token, sizeof token);
        assert_int_equal(verify_at(token, INT64_MIN, &got), SK_JWT_VALID);
        assert_claims_equal(&got, &claims);
    }

    /* Control characters (refused by the API) escape to six bytes each: too long for
     * sk_jwt_verify(), so refused however large the output buffer. */
    for (size_t len = 40; len <= SK_JWT_MAX_USERNAME; len += 24) {
        char big[4096];

        memset(username, '\x01', len);
        username[len] = '\0';
        claims = make_claims(username, "customer");
        assert_int_equal(sk_jwt_sign(test_key, TEST_KEY_LEN, &claims, big, sizeof big), SK_EINVAL);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_matches_independent_implementation),
        cmocka_unit_test(test_token_need_not_be_nul_terminated),
        cmocka_unit_test(test_tampered_payload),
        cmocka_unit_test(test_tampered_signature),
        cmocka_unit_test(test_wrong_key),
        cmocka_unit_test(test_alg_none),
        cmocka_unit_test(test_header_variants_accepted),
        cmocka_unit_test(test_other_algs_and_bad_headers),
        cmocka_unit_test(test_missing_claims),
        cmocka_unit_test(test_bad_claim_values),
        cmocka_unit_test(test_bad_payload_documents),
        cmocka_unit_test(test_expiry_and_leeway),
        cmocka_unit_test(test_not_before_and_leeway),
        cmocka_unit_test(test_extreme_times),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_secret_with_arbitrary_bytes),
        cmocka_unit_test(test_different_key_lengths),
        cmocka_unit_test(test_jti),
        cmocka_unit_test(test_sign_output_size),
        cmocka_unit_test(test_sign_refuses_bad_claims),
        cmocka_unit_test(test_longest_claims_fit),
    };

    return cmocka_run_group_tests(tests, setup_sodium, NULL);
}
