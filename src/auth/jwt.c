/*
 * HS256 JSON Web Tokens: the login route signs one, every authenticated request verifies
 * one. Verification checks the signature before it parses any JSON, so bytes nobody signed
 * with our key never reach the JSON parser, and it works in stack buffers sized by
 * SK_JWT_MAX_TOKEN: a token longer than any we sign cannot carry our signature.
 */
#include "auth/jwt.h"

#include <assert.h>
#include <stdbool.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "util/error.h"

#define B64_VARIANT sodium_base64_VARIANT_URLSAFE_NO_PADDING
#define SIG_LEN crypto_auth_hmacsha256_BYTES
#define SIG_B64_LEN (sodium_base64_ENCODED_LEN(SIG_LEN, B64_VARIANT) - 1)

/* base64url of {"alg":"HS256","typ":"JWT"}: every token we sign starts with these bytes. */
static const char our_header_b64[] = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";
#define OUR_HEADER_B64_LEN (sizeof our_header_b64 - 1)

static void hmac_sha256(const uint8_t *key, size_t key_len, const char *data, size_t data_len,
                        unsigned char mac[SIG_LEN])
{
    crypto_auth_hmacsha256_state state;

    /* The _init/_update/_final form takes a key of any length; crypto_auth_hmacsha256()
     * insists on exactly 32 bytes, and the API promises the secret's bytes as given. */
    crypto_auth_hmacsha256_init(&state, key, key_len);
    crypto_auth_hmacsha256_update(&state, (const unsigned char *)data, data_len);
    crypto_auth_hmacsha256_final(&state, mac);
}

static bool kind_is_known(const char *kind)
{
    return strcmp(kind, "customer") == 0 || strcmp(kind, "saler") == 0;
}

/* NULL unless `b64` is canonical base64url of a JSON object with no duplicate keys. */
static json_t *decode_json_object(const char *b64, size_t b64_len)
{
    unsigned char json[SK_JWT_MAX_TOKEN];
    size_t json_len;
    json_t *object;

    if (sodium_base642bin(json, sizeof json, b64, b64_len, NULL, &json_len, NULL, B64_VARIANT) !=
        0) {
        return NULL;
    }
    /* Duplicate keys would let a parser elsewhere read a different "alg" or "username"
     * than we did; without JSON_ALLOW_NUL, "\u0000" is refused, so strings stay C strings. */
    object = json_loadb((const char *)json, json_len, JSON_REJECT_DUPLICATES, NULL);
    if (object != NULL && !json_is_object(object)) {
        json_decref(object);
        return NULL;
    }
    return object;
}

static bool header_is_hs256(const char *b64, size_t b64_len)
{
    json_t *header;
    json_t *alg;
    bool hs256;

    /* The hot path: our own header, byte for byte, needs no parsing. */
    if (b64_len == OUR_HEADER_B64_LEN && memcmp(b64, our_header_b64, b64_len) == 0) {
        return true;
    }
    header = decode_json_object(b64, b64_len);
    if (header == NULL) {
        return false;
    }
    alg = json_object_get(header, "alg");
    /* RFC 7515 4.1.11: a "crit" header names extensions the reader must understand, and
     * we understand none. */
    hs256 = json_is_string(alg) && strcmp(json_string_value(alg), "HS256") == 0 &&
            json_object_get(header, "crit") == NULL;
    json_decref(header);
    return hs256;
}

/* Copies a string claim of 1 .. out_size - 1 bytes into `out`. */
static bool read_string_claim(json_t *payload, const char *name, char *out, size_t out_size)
{
    json_t *value = json_object_get(payload, name);
    size_t len;

    if (!json_is_string(value)) {
        return false;
    }
    len = json_string_length(value);
    if (len == 0 || len >= out_size) {
        return false;
    }
    memcpy(out, json_string_value(value), len + 1);
    return true;
}

static bool read_integer_claim(json_t *payload, const char *name, int64_t *out)
{
    json_t *value = json_object_get(payload, name);

    /* Reals such as 1.5 or 1e9 are not NumericDate as we sign it; out-of-range integers
     * already failed to parse. */
    if (!json_is_integer(value)) {
        return false;
    }
    *out = json_integer_value(value);
    return true;
}

/* A dep holds exactly SK_JWT_DEP_LEN bytes, so it can be compared in constant time. */
static bool dep_is_valid(const char *dep)
{
    return strnlen(dep, SK_JWT_DEP_LEN + 1) == SK_JWT_DEP_LEN;
}

static bool read_claims(json_t *payload, sk_jwt_claims_t *claims)
{
    return read_string_claim(payload, "username", claims->username, sizeof claims->username) &&
           read_integer_claim(payload, "uid", &claims->uid) && claims->uid >= 1 &&
           read_string_claim(payload, "dep", claims->dep, sizeof claims->dep) &&
           dep_is_valid(claims->dep) &&
           read_string_claim(payload, "kind", claims->kind, sizeof claims->kind) &&
           kind_is_known(claims->kind) && read_integer_claim(payload, "iat", &claims->iat) &&
           read_integer_claim(payload, "nbf", &claims->nbf) &&
           read_integer_claim(payload, "exp", &claims->exp) &&
           read_string_claim(payload, "jti", claims->jti, sizeof claims->jti);
}

/* A string field of `claims` holds 1 .. field_size - 1 bytes and its NUL. */
static bool field_is_filled(const char *field, size_t field_size)
{
    size_t len = strnlen(field, field_size);

    return len > 0 && len < field_size;
}

void sk_jwt_new_jti(sk_jwt_claims_t *claims)
{
    unsigned char id[SK_JWT_JTI_LEN / 2];

    assert(claims != NULL);
    randombytes_buf(id, sizeof id);
    sodium_bin2hex(claims->jti, sizeof claims->jti, id, sizeof id);
}

int sk_jwt_sign(const uint8_t *key, size_t key_len, const sk_jwt_claims_t *claims, char *out,
                size_t out_size)
{
    json_t *payload;
    json_error_t error;
    char payload_json[SK_JWT_MAX_TOKEN];
    size_t payload_json_len;
    size_t payload_b64_len;
    size_t signed_len;
    size_t token_len;
    unsigned char mac[SIG_LEN];
    int status;

    assert(claims != NULL && out != NULL);
    if (key == NULL || key_len == 0) {
        return SK_EINVAL;
    }
    /* Sign only what sk_jwt_verify() accepts, or the user would get a token that fails. */
    if (!field_is_filled(claims->username, sizeof claims->username) ||
        !field_is_filled(claims->kind, sizeof claims->kind) || !kind_is_known(claims->kind) ||
        !field_is_filled(claims->jti, sizeof claims->jti) || !dep_is_valid(claims->dep) ||
        claims->uid < 1) {
        return SK_EINVAL;
    }

    payload =
        json_pack_ex(&error, 0, "{s:s, s:s, s:I, s:s, s:I, s:I, s:I, s:s}", "username",
                     claims->username, "kind", claims->kind, "uid", (json_int_t)claims->uid, "dep",
                     claims->dep, "iat", (json_int_t)claims->iat, "nbf", (json_int_t)claims->nbf,
                     "exp", (json_int_t)claims->exp, "jti", claims->jti);
    if (payload == NULL) {
        /* Anything but memory is a string that is not UTF-8. */
        return json_error_code(&error) == json_error_out_of_memory ? SK_ENOMEM : SK_EINVAL;
    }
    payload_json_len = json_dumpb(payload, payload_json, sizeof payload_json, JSON_COMPACT);
    if (payload_json_len == 0) {
        status = SK_ENOMEM;
        goto fail;
    }
    /* json_dumpb() reports the size it needed even when that did not fit. */
    if (payload_json_len > sizeof payload_json) {
        status = SK_EINVAL;
        goto fail;
    }

    payload_b64_len = sodium_base64_ENCODED_LEN(payload_json_len, B64_VARIANT) - 1;
    signed_len = OUR_HEADER_B64_LEN + 1 + payload_b64_len;
    token_len = signed_len + 1 + SIG_B64_LEN;
    /* Past SK_JWT_MAX_TOKEN the token would be refused by sk_jwt_verify(). */
    if (token_len >= SK_JWT_MAX_TOKEN || token_len >= out_size) {
        status = SK_EINVAL;
        goto fail;
    }

    memcpy(out, our_header_b64, OUR_HEADER_B64_LEN);
    out[OUR_HEADER_B64_LEN] = '.';
    sodium_bin2base64(out + OUR_HEADER_B64_LEN + 1, payload_b64_len + 1,
                      (const unsigned char *)payload_json, payload_json_len, B64_VARIANT);
    out[signed_len] = '.';
    hmac_sha256(key, key_len, out, signed_len, mac);
    sodium_bin2base64(out + signed_len + 1, SIG_B64_LEN + 1, mac, sizeof mac, B64_VARIANT);
    status = (int)token_len;

fail:
    json_decref(payload);
    return status;
}

sk_jwt_status_t sk_jwt_verify(const uint8_t *key, size_t key_len, const char *token,
                              size_t token_len, int64_t now, sk_jwt_claims_t *claims)
{
    const char *first_dot;
    const char *second_dot;
    const char *payload_b64;
    const char *sig_b64;
    size_t sig_b64_len;
    unsigned char sig[SIG_LEN];
    unsigned char expected[SIG_LEN];
    size_t sig_len;
    int mismatch;
    json_t *payload;
    bool claims_ok;

    assert(claims != NULL);
    if (key == NULL || key_len == 0 || token == NULL || token_len == 0 ||
        token_len >= SK_JWT_MAX_TOKEN) {
        return SK_JWT_INVALID;
    }

    first_dot = memchr(token, '.', token_len);
    if (first_dot == NULL) {
        return SK_JWT_INVALID;
    }
    payload_b64 = first_dot + 1;
    second_dot = memchr(payload_b64, '.', token_len - (size_t)(payload_b64 - token));
    if (second_dot == NULL) {
        return SK_JWT_INVALID;
    }
    sig_b64 = second_dot + 1;
    sig_b64_len = token_len - (size_t)(sig_b64 - token);
    /* A third dot is not base64 and would fail to decode below; refuse it by name. */
    if (sig_b64_len != SIG_B64_LEN || memchr(sig_b64, '.', sig_b64_len) != NULL) {
        return SK_JWT_INVALID;
    }
    /* libsodium refuses non-zero trailing bits, so each signature has one spelling. */
    if (sodium_base642bin(sig, sizeof sig, sig_b64, sig_b64_len, NULL, &sig_len, NULL,
                          B64_VARIANT) != 0 ||
        sig_len != SIG_LEN) {
        return SK_JWT_INVALID;
    }

    hmac_sha256(key, key_len, token, (size_t)(second_dot - token), expected);
    mismatch = sodium_memcmp(sig, expected, SIG_LEN);
    /* `expected` is a valid signature for whatever the client sent: do not leave it behind. */
    sodium_memzero(expected, sizeof expected);
    if (mismatch != 0) {
        return SK_JWT_INVALID;
    }

    /* We never sign anything but HS256; a header naming another alg ("none" above all) is
     * refused even when the HMAC matches, as RFC 8725 3.1 asks. */
    if (!header_is_hs256(token, (size_t)(first_dot - token))) {
        return SK_JWT_INVALID;
    }
    payload = decode_json_object(payload_b64, (size_t)(second_dot - payload_b64));
    if (payload == NULL) {
        return SK_JWT_INVALID;
    }
    claims_ok = read_claims(payload, claims);
    json_decref(payload);
    if (!claims_ok) {
        return SK_JWT_INVALID;
    }

    /* Written as comparisons that cannot overflow for any int64_t a signer put there. */
    if (now <= INT64_MAX - SK_JWT_LEEWAY && claims->nbf > now + SK_JWT_LEEWAY) {
        return SK_JWT_INVALID;
    }
    if (claims->exp <= INT64_MAX - SK_JWT_LEEWAY && now > claims->exp + SK_JWT_LEEWAY) {
        return SK_JWT_EXPIRED;
    }
    return SK_JWT_VALID;
}
