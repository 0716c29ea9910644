/*
 * Token checks for authenticated requests: the Authorization header read as API.md says
 * (a raw token, possibly after spaces, or "Bearer <token>"), the JWT verified, bound to this
 * deployment (its dep claim must be the store's deployment id), expiry and revocation
 * honoured. The uid claim is compared where a route looks its user up anyway (api).
 *
 * Verifying a JWT costs a few microseconds (HMAC key setup, base64, JSON), which is most of
 * the hot path's budget, so each worker thread keeps a small cache of tokens it verified.
 * A cache hit still checks expiry against the current time, and re-checks revocation
 * whenever the store's revocation epoch moved since the entry was checked. Only tokens of
 * this deployment are cached, and the deployment id never changes, so a hit needs no
 * second deployment check.
 */
#ifndef SK_AUTH_TOKEN_H
#define SK_AUTH_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "auth/jwt.h"
#include "store/store.h"

typedef enum sk_token_status {
    SK_TOKEN_OK = 0,
    SK_TOKEN_MISSING, /* no Authorization header */
    SK_TOKEN_INVALID, /* not a JWT, bad signature, not yet valid, another deployment's */
    SK_TOKEN_EXPIRED,
    SK_TOKEN_REVOKED,
    SK_TOKEN_UNAVAILABLE /* the deployment id is not known yet: the store cannot tell */
} sk_token_status_t;

typedef struct sk_token_cache sk_token_cache_t;

/* Creates a cache for one thread; `key` (not copied: must outlive the cache) is the HMAC
 * secret. Returns NULL when out of memory. */
sk_token_cache_t *sk_token_cache_create(const uint8_t *key, size_t key_len, sk_store_t *store);

void sk_token_cache_destroy(sk_token_cache_t *cache);

/*
 * Checks the Authorization header value (`header` NULL when absent) at Unix time `now`.
 * On SK_TOKEN_OK, *claims points at the verified claims, valid until the next call on this
 * cache. Not thread-safe: one cache per thread.
 */
sk_token_status_t sk_token_check(sk_token_cache_t *cache, const char *header, size_t header_len,
                                 int64_t now, const sk_jwt_claims_t **claims);

/* The token text inside an Authorization header value (spaces and "Bearer " stripped). */
void sk_token_from_header(const char **token, size_t *token_len);

#endif
