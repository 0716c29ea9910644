/*
 * The password pool and cache (see password.h). Hashing runs on a util/workpool; a
 * finished job goes back to its worker through that worker's h2o multithread receiver,
 * which wakes the worker's loop.
 */
#include "auth/password.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/error.h"
#include "util/log.h"

#define CACHE_SLOTS 16384
#define CACHE_TTL_SECONDS 600

struct sk_password_pool {
    unsigned long long opslimit;
    size_t memlimit;
    sk_workpool_t *workers;

    unsigned char cache_key[crypto_generichash_KEYBYTES];
    pthread_mutex_t cache_lock;
    struct cache_entry {
        unsigned char digest[32];
        time_t added;
    } * cache; /* guarded by cache_lock */
};

static void run_job(sk_workpool_job_t *work, void **thread_state)
{
    (void)thread_state;
    sk_password_job_t *job = H2O_STRUCT_FROM_MEMBER(sk_password_job_t, _work, work);
    sk_password_pool_t *pool = job->_pool;
    if (job->kind == SK_PASSWORD_HASH) {
        job->status = crypto_pwhash_str(job->hash, job->password, job->password_len, pool->opslimit,
                                        pool->memlimit) == 0
                          ? 0
                          : SK_ENOMEM;
        if (job->status != 0)
            sk_log(SK_LOG_ERROR, "password", "crypto_pwhash_str failed (out of memory?)");
    } else {
        job->status =
            crypto_pwhash_str_verify(job->stored_hash, job->password, job->password_len) == 0 ? 0
                                                                                              : 1;
    }
}

static void on_job_done(sk_workpool_job_t *work)
{
    sk_password_job_t *job = H2O_STRUCT_FROM_MEMBER(sk_password_job_t, _work, work);
    job->on_done(job);
}

h2o_multithread_receiver_t *sk_password_receiver_create(h2o_multithread_queue_t *queue)
{
    h2o_multithread_receiver_t *receiver = calloc(1, sizeof(*receiver));
    if (receiver != NULL)
        sk_workpool_receiver_init(receiver, queue);
    return receiver;
}

void sk_password_receiver_destroy(h2o_multithread_receiver_t *receiver)
{
    sk_workpool_receiver_dispose(receiver);
    free(receiver);
}

sk_password_pool_t *sk_password_pool_create(int threads, sk_pwhash_cost_t cost)
{
    sk_password_pool_t *pool = calloc(1, sizeof(*pool));
    if (pool == NULL)
        return NULL;
    switch (cost) {
    case SK_PWHASH_MIN:
        pool->opslimit = crypto_pwhash_OPSLIMIT_MIN;
        pool->memlimit = crypto_pwhash_MEMLIMIT_MIN;
        break;
    case SK_PWHASH_INTERACTIVE:
        pool->opslimit = crypto_pwhash_OPSLIMIT_INTERACTIVE;
        pool->memlimit = crypto_pwhash_MEMLIMIT_INTERACTIVE;
        break;
    case SK_PWHASH_MODERATE:
        pool->opslimit = crypto_pwhash_OPSLIMIT_MODERATE;
        pool->memlimit = crypto_pwhash_MEMLIMIT_MODERATE;
        break;
    }
    pthread_mutex_init(&pool->cache_lock, NULL);
    randombytes_buf(pool->cache_key, sizeof(pool->cache_key));
    pool->cache = calloc(CACHE_SLOTS, sizeof(pool->cache[0]));
    if (pool->cache == NULL)
        goto fail;
    sk_workpool_config_t workers = {.threads = threads, .name = "password"};
    pool->workers = sk_workpool_create(&workers);
    if (pool->workers == NULL)
        goto fail;
    return pool;
fail:
    sk_password_pool_destroy(pool);
    return NULL;
}

void sk_password_pool_destroy(sk_password_pool_t *pool)
{
    if (pool->workers != NULL)
        sk_workpool_destroy(pool->workers);
    if (pool->cache != NULL)
        sodium_memzero(pool->cache, CACHE_SLOTS * sizeof(pool->cache[0]));
    free(pool->cache);
    sodium_memzero(pool->cache_key, sizeof(pool->cache_key));
    pthread_mutex_destroy(&pool->cache_lock);
    free(pool);
}

void sk_password_submit(sk_password_pool_t *pool, h2o_multithread_receiver_t *reply_to,
                        sk_password_job_t *job)
{
    job->_pool = pool;
    job->_work.run = run_job;
    job->_work.done = on_job_done;
    sk_workpool_submit(pool->workers, reply_to, &job->_work);
}

static void cache_digest(sk_password_pool_t *pool, const char *username, size_t username_len,
                         const char *password, size_t password_len, const char *stored_hash,
                         unsigned char digest[32])
{
    crypto_generichash_state state;
    /* Length prefixes keep ("ab","c") and ("a","bc") apart. */
    uint64_t lengths[2] = {username_len, password_len};
    crypto_generichash_init(&state, pool->cache_key, sizeof(pool->cache_key), 32);
    crypto_generichash_update(&state, (const unsigned char *)lengths, sizeof(lengths));
    crypto_generichash_update(&state, (const unsigned char *)username, username_len);
    crypto_generichash_update(&state, (const unsigned char *)password, password_len);
    crypto_generichash_update(&state, (const unsigned char *)stored_hash, strlen(stored_hash));
    crypto_generichash_final(&state, digest, 32);
}

static size_t cache_slot(const unsigned char digest[32])
{
    uint32_t slot;
    memcpy(&slot, digest, sizeof(slot));
    return slot & (CACHE_SLOTS - 1);
}

int sk_password_cache_hit(sk_password_pool_t *pool, const char *username, size_t username_len,
                          const char *password, size_t password_len, const char *stored_hash)
{
    unsigned char digest[32];
    cache_digest(pool, username, username_len, password, password_len, stored_hash, digest);
    time_t now = time(NULL);
    pthread_mutex_lock(&pool->cache_lock);
    struct cache_entry *entry = &pool->cache[cache_slot(digest)];
    int hit = entry->added != 0 && now - entry->added < CACHE_TTL_SECONDS &&
              sodium_memcmp(entry->digest, digest, sizeof(digest)) == 0;
    pthread_mutex_unlock(&pool->cache_lock);
    return hit;
}

void sk_password_cache_add(sk_password_pool_t *pool, const char *username, size_t username_len,
                           const char *password, size_t password_len, const char *stored_hash)
{
    unsigned char digest[32];
    cache_digest(pool, username, username_len, password, password_len, stored_hash, digest);
    pthread_mutex_lock(&pool->cache_lock);
    struct cache_entry *entry = &pool->cache[cache_slot(digest)];
    memcpy(entry->digest, digest, sizeof(digest));
    entry->added = time(NULL);
    pthread_mutex_unlock(&pool->cache_lock);
}
