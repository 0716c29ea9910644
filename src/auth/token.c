/*
 * The per-thread cache of verified tokens (see token.h): two-way set-associative, indexed
 * by a hash of the token's signature part, each entry holding the whole token so that a
 * hit is an exact match. Only tokens that verified are cached; a token is at most
 * SK_JWT_MAX_TOKEN bytes, or it could not have verified. Two ways, because direct mapping
 * let 40 % of 2000 customers' tokens evict each other (measured by the benchmark).
 */
#include "auth/token.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

_Static_assert(SK_JWT_DEP_LEN == SK_STORE_DEPLOYMENT_ID_LEN, "a dep claim holds a deployment id");
_Static_assert(SK_STORE_REVOCATION_GRACE > SK_JWT_LEEWAY,
               "a revocation outlives every token check that could still accept its token");

#define CACHE_SETS 4096 /* a power of two; two entries each: ~6 MiB per thread */

typedef struct token_entry {
    uint64_t revocation_epoch;
    uint16_t token_len; /* 0: empty slot */
    sk_jwt_claims_t claims;
    char token[SK_JWT_MAX_TOKEN];
} token_entry_t;

struct sk_token_cache {
    const uint8_t *key;
    size_t key_len;
    sk_store_t *store;
    struct token_set {
        token_entry_t ways[2];
        uint8_t last_used; /* which way was hit or filled last: the other is evicted */
    } sets[CACHE_SETS];
};

sk_token_cache_t *sk_token_cache_create(const uint8_t *key, size_t key_len, sk_store_t *store)
{
    sk_token_cache_t *cache = calloc(1, sizeof(*cache));
    if (cache == NULL)
        return NULL;
    cache->key = key;
    cache->key_len = key_len;
    cache->store = store;
    return cache;
}

void sk_token_cache_destroy(sk_token_cache_t *cache)
{
    free(cache);
}

void sk_token_from_header(const char **token, size_t *token_len)
{
    const char *text = *token;
    size_t len = *token_len;
    while (len != 0 && (*text == ' ' || *text == '\t')) {
        ++text;
        --len;
    }
    if (len >= 7 && strncasecmp(text, "Bearer ", 7) == 0) {
        text += 7;
        len -= 7;
        while (len != 0 && *text == ' ') {
            ++text;
            --len;
        }
    }
    while (len != 0 && (text[len - 1] == ' ' || text[len - 1] == '\t'))
        --len;
    *token = text;
    *token_len = len;
}

static size_t slot_of(const char *token, size_t len)
{
    /* The tail of a JWT is its HMAC in base64url: already uniformly distributed. */
    uint64_t h = 0;
    size_t take = len < 8 ? len : 8;
    memcpy(&h, token + len - take, take);
    h *= 0x9e3779b97f4a7c15ULL;
    return (size_t)(h >> 52) & (CACHE_SETS - 1);
}

static sk_token_status_t check_claims(sk_token_cache_t *cache, token_entry_t *entry, int64_t now)
{
    /* exp comes from a token we signed, but may be near INT64_MAX: move `now` instead. */
    if (now - SK_JWT_LEEWAY > entry->claims.exp)
        return SK_TOKEN_EXPIRED;
    uint64_t epoch = sk_store_revocation_epoch(cache->store);
    if (epoch != entry->revocation_epoch) {
        if (sk_store_is_revoked(cache->store, entry->claims.jti))
            return SK_TOKEN_REVOKED;
        entry->revocation_epoch = epoch;
    }
    return SK_TOKEN_OK;
}

sk_token_status_t sk_token_check(sk_token_cache_t *cache, const char *header, size_t header_len,
                                 int64_t now, const sk_jwt_claims_t **claims)
{
    if (header == NULL)
        return SK_TOKEN_MISSING;
    const char *token = header;
    size_t len = header_len;
    sk_token_from_header(&token, &len);
    if (len == 0 || len >= SK_JWT_MAX_TOKEN)
        return len == 0 ? SK_TOKEN_MISSING : SK_TOKEN_INVALID;

    struct token_set *set = &cache->sets[slot_of(token, len)];
    for (uint8_t way = 0; way != 2; ++way) {
        token_entry_t *entry = &set->ways[way];
        if (entry->token_len == len && memcmp(entry->token, token, len) == 0) {
            set->last_used = way;
            *claims = &entry->claims;
            return check_claims(cache, entry, now);
        }
    }

    sk_jwt_claims_t verified;
    /* Read the epoch before the revocation check it stands for, so that a revocation
     * racing with this check moves the epoch past the stored one. */
    uint64_t epoch = sk_store_revocation_epoch(cache->store);
    sk_jwt_status_t verdict = sk_jwt_verify(cache->key, cache->key_len, token, len, now, &verified);
    if (verdict == SK_JWT_INVALID)
        return SK_TOKEN_INVALID;
    /* A token of another deployment (an earlier database, the same secret) is not ours,
     * expired or not. Both ids have SK_JWT_DEP_LEN bytes: compare them in constant time. */
    const char *deployment_id = sk_store_deployment_id(cache->store);
    if (deployment_id == NULL)
        return SK_TOKEN_UNAVAILABLE;
    if (sodium_memcmp(verified.dep, deployment_id, SK_JWT_DEP_LEN) != 0)
        return SK_TOKEN_INVALID;
    if (verdict == SK_JWT_EXPIRED)
        return SK_TOKEN_EXPIRED;
    if (sk_store_is_revoked(cache->store, verified.jti))
        return SK_TOKEN_REVOKED;
    set->last_used ^= 1;
    token_entry_t *entry = &set->ways[set->last_used];
    entry->claims = verified;
    entry->revocation_epoch = epoch;
    entry->token_len = (uint16_t)len;
    memcpy(entry->token, token, len);
    *claims = &entry->claims;
    return SK_TOKEN_OK;
}
