/*
 * The in-memory set of revoked token ids that both deployments keep, each entry with the
 * expiry of its token, and its pruning.
 *
 * Read on every token a worker thread verifies (a miss of its token cache) and whenever a
 * logout moved the epoch, so lookups must be cheap; entries must also go away once their
 * token has expired, or the set grows for as long as the process lives. Both are served by
 * one mutex around an open-addressing table: a lookup holds it for a hash and a probe or
 * two, a prune (once a minute) for one walk of the table.
 */
#ifndef SK_STORE_REVOCATIONS_H
#define SK_STORE_REVOCATIONS_H

#include <stddef.h>
#include <stdint.h>

typedef struct sk_revocations sk_revocations_t;

/* Creates an empty set. Returns NULL when out of memory. */
sk_revocations_t *sk_revocations_create(void);

void sk_revocations_destroy(sk_revocations_t *set);

/*
 * Adds `jti` (`len` bytes) until `expires_at`; a jti already there keeps the later expiry.
 * Moves the epoch when the jti is new. Returns 0 or SK_ENOMEM. Thread-safe.
 */
int sk_revocations_add(sk_revocations_t *set, const char *jti, size_t len, int64_t expires_at);

/* 1 when `jti` is in the set. Thread-safe. */
int sk_revocations_contains(sk_revocations_t *set, const char *jti, size_t len);

/* A counter that moves whenever a jti is added (see sk_store_revocation_epoch). Lock-free. */
uint64_t sk_revocations_epoch(sk_revocations_t *set);

/* Removes every entry whose expires_at is before `cutoff`; returns how many. Thread-safe. */
size_t sk_revocations_prune(sk_revocations_t *set, int64_t cutoff);

/* How many entries the set holds. Thread-safe. */
size_t sk_revocations_count(sk_revocations_t *set);

/*
 * How often the stores prune, in milliseconds: a minute, as API.md promises at most. The
 * environment variable SECKILL_REVOCATION_PRUNE_MS (10 .. 60000) shortens it, for tests
 * only: a test cannot wait a minute.
 */
unsigned sk_revocations_prune_interval_ms(void);

#endif
