/* libFuzzer driver: the JWT verifier on arbitrary bytes, and sign/verify round trips. */
#include <sodium.h>
#include <stdint.h>
#include <string.h>

#include "auth/jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t key[] = "fuzzing-key-fuzzing-key-fuzzing-key!";
    static int initialized;
    if (!initialized) {
        if (sodium_init() < 0)
            __builtin_trap();
        initialized = 1;
    }
    sk_jwt_claims_t claims;
    sk_jwt_status_t status =
        sk_jwt_verify(key, sizeof(key) - 1, (const char *)data, size, 1700000000, &claims);
    if (status == SK_JWT_VALID) {
        /* Only a token signed with the key can verify: re-signing must give a valid one. */
        char token[SK_JWT_MAX_TOKEN];
        int len = sk_jwt_sign(key, sizeof(key) - 1, &claims, token, sizeof(token));
        if (len < 0 || sk_jwt_verify(key, sizeof(key) - 1, token, (size_t)len, 1700000000,
                                     &claims) != SK_JWT_VALID)
            __builtin_trap();
    }
    /* Use the input as a user name for a round trip. */
    memset(&claims, 0, sizeof(claims));
    size_t name_len = size < SK_JWT_MAX_USERNAME ? size : SK_JWT_MAX_USERNAME;
    memcpy(claims.username, data, name_len);
    strcpy(claims.kind, "customer");
    claims.iat = claims.nbf = 1700000000;
    claims.exp = 1700003600;
    strcpy(claims.jti, "0123456789abcdef0123456789abcdef");
    strcpy(claims.dep, "fedcba9876543210fedcba9876543210");
    claims.uid = 1;
    char token[SK_JWT_MAX_TOKEN];
    int len = sk_jwt_sign(key, sizeof(key) - 1, &claims, token, sizeof(token));
    if (len >= 0) {
        sk_jwt_claims_t back;
        if (sk_jwt_verify(key, sizeof(key) - 1, token, (size_t)len, 1700000000, &back) !=
                SK_JWT_VALID ||
            strcmp(back.username, claims.username) != 0)
            __builtin_trap();
    }
    return 0;
}
