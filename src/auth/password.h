/*
 * Passwords: argon2id hashing and verification (libsodium) on a small pool of threads, so
 * that the slow hash never runs on an event loop, and a memory-only cache of recent
 * successful verifications, so that a login storm with the same credentials (the original's
 * load test logs in before every grab) does not re-run argon2 every time.
 *
 * The cache is keyed by a keyed BLAKE2b hash of (user name, password, stored hash) under a
 * random key made at start: it holds no password and nothing that could be attacked
 * offline, and it dies with the process.
 */
#ifndef SK_AUTH_PASSWORD_H
#define SK_AUTH_PASSWORD_H

#include <h2o.h>
#include <sodium.h>
#include <stddef.h>

#include "util/workpool.h"

#define SK_PASSWORD_MAX 256 /* bytes; longer passwords are refused at registration */

/* How much argon2id work a hash costs (--pwhash-cost). */
typedef enum sk_pwhash_cost {
    SK_PWHASH_MIN = 0,     /* for tests and benchmarks only */
    SK_PWHASH_INTERACTIVE, /* the default: libsodium's interactive limits */
    SK_PWHASH_MODERATE
} sk_pwhash_cost_t;

typedef struct sk_password_pool sk_password_pool_t;
typedef struct sk_password_job sk_password_job_t;

typedef enum sk_password_job_kind { SK_PASSWORD_HASH, SK_PASSWORD_VERIFY } sk_password_job_kind_t;

struct sk_password_job {
    /* set by the caller */
    sk_password_job_kind_t kind;
    const char *password; /* not NUL-terminated; must stay valid until on_done */
    size_t password_len;
    const char *stored_hash; /* SK_PASSWORD_VERIFY: NUL-terminated */
    void (*on_done)(sk_password_job_t *job);
    void *data;
    /* results */
    int status; /* 0: hashed / matches; 1: does not match; SK_ENOMEM: hashing failed */
    char hash[crypto_pwhash_STRBYTES]; /* SK_PASSWORD_HASH: the new hash */
    /* private */
    sk_workpool_job_t _work;
    sk_password_pool_t *_pool;
};

/* Starts `threads` hashing threads using `cost`. Returns NULL (logged) on failure. */
sk_password_pool_t *sk_password_pool_create(int threads, sk_pwhash_cost_t cost);

/* Stops the threads after the queued jobs. */
void sk_password_pool_destroy(sk_password_pool_t *pool);

/* Registers, on a worker loop's queue, the receiver through which that thread's jobs
 * complete. One per worker thread; free with sk_password_receiver_destroy on that thread. */
h2o_multithread_receiver_t *sk_password_receiver_create(h2o_multithread_queue_t *queue);
void sk_password_receiver_destroy(h2o_multithread_receiver_t *receiver);

/* Queues `job`; job->on_done runs later on the thread owning `reply_to`. */
void sk_password_submit(sk_password_pool_t *pool, h2o_multithread_receiver_t *reply_to,
                        sk_password_job_t *job);

/* Whether (username, password) recently verified against `stored_hash`. Thread-safe. */
int sk_password_cache_hit(sk_password_pool_t *pool, const char *username, size_t username_len,
                          const char *password, size_t password_len, const char *stored_hash);

/* Records a successful verification. Thread-safe. */
void sk_password_cache_add(sk_password_pool_t *pool, const char *username, size_t username_len,
                           const char *password, size_t password_len, const char *stored_hash);

#endif
