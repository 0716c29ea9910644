/*
 * JSON Web Tokens, HS256 only (RFC 7519 / RFC 7515 compact form).
 *
 * A token carries the user's name, kind and id (uid), the id of the deployment that issued
 * it (dep), iat, nbf, exp and a random jti; never a password or a hash of one. Verification accepts
 * only {"alg":"HS256"} (any "typ"), compares the signature in constant time and allows at most
 * SK_JWT_LEEWAY seconds of clock skew. Both calls are thread-safe and allocate nothing that
 * outlives them.
 */
#ifndef SK_AUTH_JWT_H
#define SK_AUTH_JWT_H

#include <stddef.h>
#include <stdint.h>

#define SK_JWT_LEEWAY 5        /* seconds of clock skew accepted on nbf and exp */
#define SK_JWT_MAX_USERNAME 64 /* bytes, as the API limits user names */
#define SK_JWT_JTI_LEN 32      /* hex characters of a jti (16 random bytes) */
#define SK_JWT_DEP_LEN 32      /* characters of a deployment id: exactly this many */
#define SK_JWT_MAX_TOKEN 576   /* a token we sign never exceeds this, NUL included */

typedef struct sk_jwt_claims {
    char username[SK_JWT_MAX_USERNAME + 1]; /* NUL-terminated */
    char kind[16];                          /* "customer" or "saler", NUL-terminated */
    int64_t iat, nbf, exp;                  /* Unix seconds */
    char jti[SK_JWT_JTI_LEN + 1];           /* NUL-terminated */
    char dep[SK_JWT_DEP_LEN + 1];           /* the issuing deployment's id, NUL-terminated */
    int64_t uid;                            /* the user's id, >= 1 */
} sk_jwt_claims_t;

typedef enum sk_jwt_status {
    SK_JWT_VALID = 0,
    SK_JWT_INVALID, /* not a JWT, wrong alg, bad signature, not yet valid, bad claims */
    SK_JWT_EXPIRED  /* well signed, but exp + leeway is in the past */
} sk_jwt_status_t;

/* Fills `claims->jti` with a fresh random id (libsodium randombytes; sodium_init() first). */
void sk_jwt_new_jti(sk_jwt_claims_t *claims);

/*
 * Signs `claims` with `key` (the secret's bytes as given) into `out`, NUL-terminated.
 * Returns the token's length, or SK_EINVAL when it does not fit in `out_size`, would reach
 * SK_JWT_MAX_TOKEN, the key is empty, or the claims are ones sk_jwt_verify() would refuse
 * (empty or unterminated strings, unknown kind, a user name that is not UTF-8, a dep that
 * is not SK_JWT_DEP_LEN characters, a uid below 1);
 * SK_ENOMEM when jansson cannot allocate.
 */
int sk_jwt_sign(const uint8_t *key, size_t key_len, const sk_jwt_claims_t *claims, char *out,
                size_t out_size);

/*
 * Verifies `token` (`token_len` bytes, need not be NUL-terminated) at time `now`.
 * On SK_JWT_VALID and SK_JWT_EXPIRED `claims` is filled; otherwise its content is undefined.
 * A token must carry username, kind, uid, dep, iat, nbf, exp and jti to be valid (tokens of
 * versions before uid and dep are not). Tokens of
 * SK_JWT_MAX_TOKEN bytes or more, and any token under an empty key, are SK_JWT_INVALID.
 */
sk_jwt_status_t sk_jwt_verify(const uint8_t *key, size_t key_len, const char *token,
                              size_t token_len, int64_t now, sk_jwt_claims_t *claims);

#endif
