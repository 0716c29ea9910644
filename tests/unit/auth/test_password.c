/*
 * Tests of src/auth/password.c: argon2id hashing and verification on the pool's threads
 * (SK_PWHASH_MIN, two threads), with results delivered through an h2o receiver on the
 * test's own loop, never inside the submit call; right, wrong, empty and binary passwords;
 * many jobs in flight at once; jobs queued when the pool is destroyed still complete; and
 * the verification cache: a hit only for the exact (user name, password, stored hash) that
 * was added, nothing shared between pools.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fixture.h"
#include <pthread.h>

#include "auth/password.h"

typedef struct fixture {
    h2o_evloop_t *loop;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t *receiver;
    sk_password_pool_t *pool;
} fixture_t;

static int setup_fixture(void **state)
{
    if (sodium_init() < 0)
        return -1;
    fixture_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    sk_test_loop_create(&f->loop, &f->queue);
    f->receiver = sk_password_receiver_create(f->queue);
    f->pool = sk_password_pool_create(2, SK_PWHASH_MIN);
    *state = f;
    return f->receiver != NULL && f->pool != NULL ? 0 : -1;
}

static int teardown_fixture(void **state)
{
    fixture_t *f = *state;
    if (f->pool != NULL)
        sk_password_pool_destroy(f->pool);
    sk_password_receiver_destroy(f->receiver);
    sk_test_loop_destroy(f->loop, f->queue);
    free(f);
    return 0;
}

/* A job and what its completion saw. */
typedef struct test_job {
    sk_password_job_t job;
    char *password; /* heap copy of exactly password_len bytes */
    int calls;
    int on_loop_thread;
    int *completed; /* shared counter, may be NULL */
} test_job_t;

static pthread_t loop_thread;

static void on_job_done(sk_password_job_t *job)
{
    test_job_t *test_job = job->data;
    ++test_job->calls;
    test_job->on_loop_thread = pthread_equal(pthread_self(), loop_thread);
    if (test_job->completed != NULL)
        ++*test_job->completed;
}

/* Fills `job` for `password` (`len` bytes, copied without a terminating NUL). */
static void job_init(test_job_t *job, sk_password_job_kind_t kind, const char *password, size_t len,
                     const char *stored_hash)
{
    memset(job, 0, sizeof(*job));
    job->password = malloc(len > 0 ? len : 1);
    assert_non_null(job->password);
    memcpy(job->password, password, len);
    job->job.kind = kind;
    job->job.password = job->password;
    job->job.password_len = len;
    job->job.stored_hash = stored_hash;
    job->job.on_done = on_job_done;
    job->job.data = job;
    job->job.status = -12345;
}

static void job_dispose(test_job_t *job)
{
    free(job->password);
}

static void run_until(fixture_t *f, const int *counter, int target)
{
    assert_int_equal(sk_test_run_until(f->loop, counter, target), target);
}

/* Submits one job and waits for it; checks it completed once, later, on this thread. */
static int run_job(fixture_t *f, test_job_t *job)
{
    loop_thread = pthread_self();
    sk_password_submit(f->pool, f->receiver, &job->job);
    /* Hashing never runs on the caller's thread. */
    assert_int_equal(job->calls, 0);
    run_until(f, &job->calls, 1);
    h2o_evloop_run(f->loop, 0);
    assert_int_equal(job->calls, 1);
    assert_int_equal(job->on_loop_thread, 1);
    return job->job.status;
}

/* Hashes `password` into `hash` (crypto_pwhash_STRBYTES). */
static void hash_password(fixture_t *f, const char *password, size_t len, char *hash)
{
    test_job_t job;
    job_init(&job, SK_PASSWORD_HASH, password, len, NULL);
    assert_int_equal(run_job(f, &job), 0);
    memcpy(hash, job.job.hash, crypto_pwhash_STRBYTES);
    job_dispose(&job);
}

static int verify_password(fixture_t *f, const char *password, size_t len, const char *hash)
{
    test_job_t job;
    job_init(&job, SK_PASSWORD_VERIFY, password, len, hash);
    int status = run_job(f, &job);
    job_dispose(&job);
    return status;
}

static void test_hash_is_argon2id_min(void **state)
{
    fixture_t *f = *state;
    char hash[crypto_pwhash_STRBYTES];
    hash_password(f, "123456", 6, hash);
    assert_non_null(memchr(hash, '\0', sizeof(hash)));
    assert_memory_equal(hash, "$argon2id$", 10);
    /* Made with the MIN cost the pool was created with... */
    assert_int_equal(crypto_pwhash_str_needs_rehash(hash, crypto_pwhash_OPSLIMIT_MIN,
                                                    crypto_pwhash_MEMLIMIT_MIN),
                     0);
    assert_int_equal(crypto_pwhash_str_needs_rehash(hash, crypto_pwhash_OPSLIMIT_INTERACTIVE,
                                                    crypto_pwhash_MEMLIMIT_INTERACTIVE),
                     1);
    /* ...and verifiable by libsodium directly. */
    assert_int_equal(crypto_pwhash_str_verify(hash, "123456", 6), 0);
    assert_int_not_equal(crypto_pwhash_str_verify(hash, "123457", 6), 0);
    /* The password itself appears nowhere in it. */
    assert_null(strstr(hash, "123456"));
}

static void test_hashes_are_salted(void **state)
{
    fixture_t *f = *state;
    char first[crypto_pwhash_STRBYTES], second[crypto_pwhash_STRBYTES];
    hash_password(f, "same password", 13, first);
    hash_password(f, "same password", 13, second);
    assert_string_not_equal(first, second);
    assert_int_equal(verify_password(f, "same password", 13, first), 0);
    assert_int_equal(verify_password(f, "same password", 13, second), 0);
}

static void test_verify_right_and_wrong(void **state)
{
    fixture_t *f = *state;
    char hash[crypto_pwhash_STRBYTES];
    hash_password(f, "123456", 6, hash);
    assert_int_equal(verify_password(f, "123456", 6, hash), 0);
    assert_int_equal(verify_password(f, "123457", 6, hash), 1);
    assert_int_equal(verify_password(f, "12345", 5, hash), 1);
    assert_int_equal(verify_password(f, "1234567", 7, hash), 1);
    assert_int_equal(verify_password(f, "", 0, hash), 1);
    /* Only `password_len` bytes count: a longer buffer with the right prefix is not it. */
    assert_int_equal(verify_password(f, "123456 trailing", 6, hash), 0);
    assert_int_equal(verify_password(f, "123456 trailing", 15, hash), 1);
}

static void test_binary_and_empty_passwords(void **state)
{
    fixture_t *f = *state;
    char hash[crypto_pwhash_STRBYTES];
    /* Bytes after a NUL still count. */
    hash_password(f, "ab\0cd", 5, hash);
    assert_int_equal(verify_password(f, "ab\0cd", 5, hash), 0);
    assert_int_equal(verify_password(f, "ab", 2, hash), 1);
    assert_int_equal(verify_password(f, "ab\0ce", 5, hash), 1);

    char empty_hash[crypto_pwhash_STRBYTES];
    hash_password(f, "", 0, empty_hash);
    assert_int_equal(verify_password(f, "", 0, empty_hash), 0);
    assert_int_equal(verify_password(f, "\0", 1, empty_hash), 1);

    /* The longest password the API accepts. */
    char longest[SK_PASSWORD_MAX];
    memset(longest, 'p', sizeof(longest));
    char long_hash[crypto_pwhash_STRBYTES];
    hash_password(f, longest, sizeof(longest), long_hash);
    assert_int_equal(verify_password(f, longest, sizeof(longest), long_hash), 0);
    assert_int_equal(verify_password(f, longest, sizeof(longest) - 1, long_hash), 1);
}

static void test_verify_against_garbage_hash(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(verify_password(f, "123456", 6, ""), 1);
    assert_int_equal(verify_password(f, "123456", 6, "not a hash"), 1);
    assert_int_equal(verify_password(f, "123456", 6, "$argon2id$v=19$m=8,t=1,p=1$"), 1);
    /* An MD5 hex digest, as the original service stored. */
    assert_int_equal(verify_password(f, "123456", 6, "e10adc3949ba59abbe56e057f20f883e"), 1);
}

static void test_many_jobs_in_flight(void **state)
{
    fixture_t *f = *state;
    char hash[crypto_pwhash_STRBYTES];
    hash_password(f, "right", 5, hash);

    enum { JOBS = 12 };
    test_job_t jobs[JOBS];
    int completed = 0;
    loop_thread = pthread_self();
    for (int i = 0; i < JOBS; i++) {
        /* Even jobs right, odd jobs wrong; a few hash jobs mixed in. */
        if (i % 5 == 4)
            job_init(&jobs[i], SK_PASSWORD_HASH, "fresh", 5, NULL);
        else if (i % 2 == 0)
            job_init(&jobs[i], SK_PASSWORD_VERIFY, "right", 5, hash);
        else
            job_init(&jobs[i], SK_PASSWORD_VERIFY, "wrong", 5, hash);
        jobs[i].completed = &completed;
        sk_password_submit(f->pool, f->receiver, &jobs[i].job);
    }
    run_until(f, &completed, JOBS);
    h2o_evloop_run(f->loop, 0);
    assert_int_equal(completed, JOBS);
    for (int i = 0; i < JOBS; i++) {
        assert_int_equal(jobs[i].calls, 1);
        assert_int_equal(jobs[i].on_loop_thread, 1);
        if (i % 5 == 4) {
            assert_int_equal(jobs[i].job.status, 0);
            assert_int_equal(crypto_pwhash_str_verify(jobs[i].job.hash, "fresh", 5), 0);
        } else {
            assert_int_equal(jobs[i].job.status, i % 2 == 0 ? 0 : 1);
        }
        job_dispose(&jobs[i]);
    }
}

static void test_queued_jobs_complete_after_destroy(void **state)
{
    fixture_t *f = *state;
    char hash[crypto_pwhash_STRBYTES];
    hash_password(f, "pw", 2, hash);

    enum { JOBS = 6 };
    test_job_t jobs[JOBS];
    int completed = 0;
    loop_thread = pthread_self();
    for (int i = 0; i < JOBS; i++) {
        job_init(&jobs[i], SK_PASSWORD_VERIFY, i % 2 ? "pw" : "px", 2, hash);
        jobs[i].completed = &completed;
        sk_password_submit(f->pool, f->receiver, &jobs[i].job);
    }
    /* "Stops the threads after the queued jobs": every job is done, its message waits. */
    sk_password_pool_destroy(f->pool);
    f->pool = NULL;
    run_until(f, &completed, JOBS);
    for (int i = 0; i < JOBS; i++) {
        assert_int_equal(jobs[i].calls, 1);
        assert_int_equal(jobs[i].job.status, i % 2 ? 0 : 1);
        job_dispose(&jobs[i]);
    }
}

#define HIT(pool, user, password, hash)                                                            \
    sk_password_cache_hit(pool, user, strlen(user), password, strlen(password), hash)
#define ADD(pool, user, password, hash)                                                            \
    sk_password_cache_add(pool, user, strlen(user), password, strlen(password), hash)

static void test_cache_hit_and_miss(void **state)
{
    fixture_t *f = *state;
    static const char hash_a[] = "$argon2id$v=19$m=8,t=1,p=1$AAAA$BBBB";
    static const char hash_b[] = "$argon2id$v=19$m=8,t=1,p=1$AAAA$BBBC";

    assert_int_equal(HIT(f->pool, "customer_0", "123456", hash_a), 0);
    ADD(f->pool, "customer_0", "123456", hash_a);
    assert_int_equal(HIT(f->pool, "customer_0", "123456", hash_a), 1);
    /* Still a hit when asked again (a hit does not consume the entry). */
    assert_int_equal(HIT(f->pool, "customer_0", "123456", hash_a), 1);

    /* Any part different: a miss. */
    assert_int_equal(HIT(f->pool, "customer_1", "123456", hash_a), 0);
    assert_int_equal(HIT(f->pool, "Customer_0", "123456", hash_a), 0);
    assert_int_equal(HIT(f->pool, "customer_0", "123457", hash_a), 0);
    assert_int_equal(HIT(f->pool, "customer_0", "12345", hash_a), 0);
    assert_int_equal(HIT(f->pool, "customer_0", "", hash_a), 0);
    assert_int_equal(HIT(f->pool, "customer_0", "123456", hash_b), 0);
    assert_int_equal(HIT(f->pool, "customer_0", "123456", ""), 0);
    assert_int_equal(HIT(f->pool, "", "123456", hash_a), 0);

    /* The same bytes split differently between name and password are another entry. */
    ADD(f->pool, "ab", "c", hash_a);
    assert_int_equal(HIT(f->pool, "ab", "c", hash_a), 1);
    assert_int_equal(HIT(f->pool, "a", "bc", hash_a), 0);
    assert_int_equal(HIT(f->pool, "abc", "", hash_a), 0);

    /* After a password change (a new stored hash), the old entry does not answer. */
    ADD(f->pool, "customer_0", "new password", hash_b);
    assert_int_equal(HIT(f->pool, "customer_0", "new password", hash_b), 1);
    assert_int_equal(HIT(f->pool, "customer_0", "new password", hash_a), 0);
    assert_int_equal(HIT(f->pool, "customer_0", "123456", hash_b), 0);
}

static void test_cache_binary_lengths(void **state)
{
    fixture_t *f = *state;
    static const char hash[] = "h";
    sk_password_cache_add(f->pool, "u\0v", 3, "p\0q", 3, hash);
    assert_int_equal(sk_password_cache_hit(f->pool, "u\0v", 3, "p\0q", 3, hash), 1);
    assert_int_equal(sk_password_cache_hit(f->pool, "u", 1, "p\0q", 3, hash), 0);
    assert_int_equal(sk_password_cache_hit(f->pool, "u\0v", 3, "p", 1, hash), 0);
    assert_int_equal(sk_password_cache_hit(f->pool, "u\0v", 3, "p\0r", 3, hash), 0);
}

static void test_cache_is_per_pool(void **state)
{
    fixture_t *f = *state;
    static const char hash[] = "$argon2id$v=19$m=8,t=1,p=1$AAAA$BBBB";
    sk_password_pool_t *other = sk_password_pool_create(1, SK_PWHASH_MIN);
    assert_non_null(other);
    ADD(f->pool, "user", "secret", hash);
    assert_int_equal(HIT(f->pool, "user", "secret", hash), 1);
    assert_int_equal(HIT(other, "user", "secret", hash), 0);
    ADD(other, "user", "secret", hash);
    assert_int_equal(HIT(other, "user", "secret", hash), 1);
    sk_password_pool_destroy(other);
    /* Destroying one pool leaves the other's cache alone. */
    assert_int_equal(HIT(f->pool, "user", "secret", hash), 1);
}

int main(void)
{
#define POOL_TEST(name) cmocka_unit_test_setup_teardown(name, setup_fixture, teardown_fixture)
    const struct CMUnitTest tests[] = {
        POOL_TEST(test_hash_is_argon2id_min),
        POOL_TEST(test_hashes_are_salted),
        POOL_TEST(test_verify_right_and_wrong),
        POOL_TEST(test_binary_and_empty_passwords),
        POOL_TEST(test_verify_against_garbage_hash),
        POOL_TEST(test_many_jobs_in_flight),
        POOL_TEST(test_queued_jobs_complete_after_destroy),
        POOL_TEST(test_cache_hit_and_miss),
        POOL_TEST(test_cache_binary_lengths),
        POOL_TEST(test_cache_is_per_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
