/*
 * A per-user rate limit: one token bucket per user name, `burst` tokens deep, refilled at
 * `rate` tokens a second, full for a user never seen. Each grab takes a token; a user with
 * none left is told how long until the next one. Shared by every worker thread and exact
 * under concurrency: the buckets are spread over shards, each behind its own mutex, so two
 * requests of one user serialize while requests of different users rarely meet.
 *
 * Memory is bounded. A full bucket answers exactly as a missing one does, so buckets found
 * full are dropped whenever a shard sweeps itself (each time its size doubles since the
 * last sweep): the limiter holds about the users that grabbed within the last burst/rate
 * seconds, and at most SK_RATELIMIT_MAX_USERS. A shard at its cap with no full bucket to
 * drop also drops the buckets nearest to full, so those users get back early the few
 * tokens they were still missing: the limit errs on the lenient side, never the other.
 */
#ifndef SK_API_RATELIMIT_H
#define SK_API_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

/* The most buckets the limiter keeps (about 100 bytes each with a short user name). */
#define SK_RATELIMIT_MAX_USERS 262144

typedef struct sk_ratelimit sk_ratelimit_t;

/* Creates a limiter of `rate` tokens a second (> 0; callers skip the limiter for 0) and
 * buckets of `burst` tokens (>= 1). NULL when out of memory or for other values. Free with
 * sk_ratelimit_destroy. */
sk_ratelimit_t *sk_ratelimit_create(double rate, int64_t burst);

/* Frees the limiter and its buckets; NULL is ignored. No call may be running. */
void sk_ratelimit_destroy(sk_ratelimit_t *limiter);

/*
 * Takes a token from the bucket of `user` (`len` bytes, any bytes) at `now_usec`, a
 * CLOCK_MONOTONIC time in microseconds. Returns 1 when allowed; 0 when limited, with
 * *retry_after_usec set to the wait (> 0) until the bucket holds a token again. Thread-safe.
 * A time earlier than one already seen for the user counts as that time. When a new user's
 * bucket cannot be allocated, the grab is allowed (and logged): the limit guards the
 * service, it is no business rule.
 */
int sk_ratelimit_take(sk_ratelimit_t *limiter, const char *user, size_t len, int64_t now_usec,
                      int64_t *retry_after_usec);

/* How many buckets the limiter holds now (users seen and not yet dropped). Thread-safe. */
size_t sk_ratelimit_users(sk_ratelimit_t *limiter);

#endif
