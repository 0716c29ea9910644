/*
 * Tests of src/api/ratelimit.c, the per-user token buckets of the grab route, with an
 * injected clock: arguments refused at creation; a burst, then refill at the rate, and the
 * exact wait reported when limited; refill time carried across many small steps (no
 * drift) and never banked beyond a full bucket; a clock read late by another thread;
 * users independent of each other, keys that differ only in length or after a NUL byte;
 * exactness under concurrency (threads hammering one user, and many users, with a frozen
 * clock get exactly the burst); and the memory bound: full buckets dropped exactly, the
 * cap held, and only the buckets nearest to full forgotten at the cap.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>

#include "api/ratelimit.h"

#define SECOND ((int64_t)1000000) /* microseconds */
#define START (1000 * SECOND)

static int take(sk_ratelimit_t *limiter, const char *user, int64_t now_usec,
                int64_t *retry_after_usec)
{
    return sk_ratelimit_take(limiter, user, strlen(user), now_usec, retry_after_usec);
}

/* How many of `attempts` takes at `now_usec` are allowed. */
static int allowed_of(sk_ratelimit_t *limiter, const char *user, int64_t now_usec, int attempts)
{
    int allowed = 0;
    int64_t retry_after_usec;
    for (int i = 0; i != attempts; ++i)
        allowed += take(limiter, user, now_usec, &retry_after_usec);
    return allowed;
}

static void test_create_refuses_bad_arguments(void **state)
{
    (void)state;
    assert_null(sk_ratelimit_create(0, 10));
    assert_null(sk_ratelimit_create(-1, 10));
    assert_null(sk_ratelimit_create(NAN, 10));
    assert_null(sk_ratelimit_create(INFINITY, 10));
    assert_null(sk_ratelimit_create(1, 0));
    assert_null(sk_ratelimit_create(1, -5));
    sk_ratelimit_destroy(NULL);
    sk_ratelimit_t *limiter = sk_ratelimit_create(1e6, 1000000);
    assert_non_null(limiter);
    assert_int_equal(sk_ratelimit_users(limiter), 0);
    sk_ratelimit_destroy(limiter);
}

static void test_burst_then_refill(void **state)
{
    (void)state;
    sk_ratelimit_t *limiter = sk_ratelimit_create(2, 3); /* a token every 500 ms */
    int64_t retry_after_usec = -1;
    for (int i = 0; i != 3; ++i)
        assert_true(take(limiter, "alice", START, &retry_after_usec));
    assert_int_equal(retry_after_usec, -1); /* untouched when allowed */
    assert_false(take(limiter, "alice", START, &retry_after_usec));
    assert_int_equal(retry_after_usec, SECOND / 2);
    assert_false(take(limiter, "alice", START + 200000, &retry_after_usec));
    assert_int_equal(retry_after_usec, 300000);
    assert_false(take(limiter, "alice", START + 499999, &retry_after_usec));
    assert_int_equal(retry_after_usec, 1);
    assert_true(take(limiter, "alice", START + 500000, &retry_after_usec));
    assert_false(take(limiter, "alice", START + 500000, &retry_after_usec));
    assert_int_equal(retry_after_usec, SECOND / 2);
    /* 1.2 s later: two tokens and 200 ms towards the third. */
    assert_int_equal(allowed_of(limiter, "alice", START + 1700000, 5), 2);
    assert_false(take(limiter, "alice", START + 1700000, &retry_after_usec));
    assert_int_equal(retry_after_usec, 300000);
    /* Long idle: the bucket holds the burst, no more. */
    assert_int_equal(allowed_of(limiter, "alice", START + 3600 * SECOND, 10), 3);
    assert_false(take(limiter, "alice", START + 3600 * SECOND, &retry_after_usec));
    assert_int_equal(retry_after_usec, SECOND / 2);
    sk_ratelimit_destroy(limiter);
}

static void test_burst_of_one(void **state)
{
    (void)state;
    sk_ratelimit_t *limiter = sk_ratelimit_create(10, 1);
    int64_t retry_after_usec;
    assert_true(take(limiter, "bob", START, &retry_after_usec));
    assert_false(take(limiter, "bob", START, &retry_after_usec));
    assert_int_equal(retry_after_usec, 100000);
    assert_false(take(limiter, "bob", START + 30000, &retry_after_usec));
    assert_int_equal(retry_after_usec, 70000);
    assert_true(take(limiter, "bob", START + 100000, &retry_after_usec));
    sk_ratelimit_destroy(limiter);
}

static void test_refill_carries_across_small_steps(void **state)
{
    (void)state;
    /* 3 a second: 333,333,333 ns a token, not a whole number of microseconds. */
    sk_ratelimit_t *limiter = sk_ratelimit_create(3, 3);
    int64_t retry_after_usec;
    assert_int_equal(allowed_of(limiter, "carol", START, 4), 3);
    /* Ten steps of 100 ms: the partial refills add up to three tokens, none lost. */
    int allowed = 0;
    for (int step = 1; step <= 10; ++step)
        allowed += take(limiter, "carol", START + (int64_t)step * 100000, &retry_after_usec);
    assert_int_equal(allowed, 3);
    /* Nine steps of 111,111 us: 999,999 us, just short of a third token. */
    int64_t now = START + SECOND;
    assert_false(take(limiter, "carol", now, &retry_after_usec));
    allowed = 0;
    for (int step = 1; step <= 9; ++step)
        allowed += take(limiter, "carol", now + (int64_t)step * 111111, &retry_after_usec);
    assert_int_equal(allowed, 2);
    assert_false(take(limiter, "carol", now + 999999, &retry_after_usec));
    assert_int_equal(retry_after_usec, 1); /* 998 ns, rounded up */
    assert_true(take(limiter, "carol", now + 1000000, &retry_after_usec));
    sk_ratelimit_destroy(limiter);
}

static void test_tiny_and_huge_rates(void **state)
{
    (void)state;
    sk_ratelimit_t *slow = sk_ratelimit_create(0.001, 2); /* a token every 1000 s */
    int64_t retry_after_usec;
    assert_int_equal(allowed_of(slow, "dave", START, 5), 2);
    assert_false(take(slow, "dave", START, &retry_after_usec));
    assert_int_equal(retry_after_usec, 1000 * SECOND);
    assert_false(take(slow, "dave", START + 999 * SECOND, &retry_after_usec));
    assert_int_equal(retry_after_usec, SECOND);
    assert_true(take(slow, "dave", START + 1000 * SECOND, &retry_after_usec));
    sk_ratelimit_destroy(slow);

    /* So slow that a period, or the burst's periods, overflow 64-bit nanoseconds: the burst
     * is whole, and the wait is as long as can be said. */
    sk_ratelimit_t *glacial = sk_ratelimit_create(1e-12, 1000000);
    assert_int_equal(allowed_of(glacial, "erin", START, 3), 3);
    sk_ratelimit_destroy(glacial);
    glacial = sk_ratelimit_create(1e-12, 2);
    assert_int_equal(allowed_of(glacial, "erin", START, 3), 2);
    assert_false(take(glacial, "erin", START + 1000 * SECOND, &retry_after_usec));
    assert_true(retry_after_usec > (int64_t)1e15); /* over 30 years */
    sk_ratelimit_destroy(glacial);

    sk_ratelimit_t *fast = sk_ratelimit_create(1e6, 1); /* a token every microsecond */
    assert_true(take(fast, "frank", START, &retry_after_usec));
    assert_false(take(fast, "frank", START, &retry_after_usec));
    assert_int_equal(retry_after_usec, 1);
    assert_true(take(fast, "frank", START + 1, &retry_after_usec));
    sk_ratelimit_destroy(fast);
}

static void test_clock_read_late_counts_as_latest(void **state)
{
    (void)state;
    sk_ratelimit_t *limiter = sk_ratelimit_create(1, 2);
    int64_t retry_after_usec;
    assert_int_equal(allowed_of(limiter, "gina", START, 2), 2);
    /* Another thread read the clock before this one but takes the lock after it. */
    assert_false(take(limiter, "gina", START - 10 * SECOND, &retry_after_usec));
    assert_int_equal(retry_after_usec, SECOND);
    assert_false(take(limiter, "gina", START + SECOND / 2, &retry_after_usec));
    assert_int_equal(retry_after_usec, SECOND / 2);
    assert_false(take(limiter, "gina", START, &retry_after_usec));
    assert_int_equal(retry_after_usec, SECOND / 2);
    assert_true(take(limiter, "gina", START + SECOND, &retry_after_usec));
    sk_ratelimit_destroy(limiter);
}

static void test_users_are_independent(void **state)
{
    (void)state;
    sk_ratelimit_t *limiter = sk_ratelimit_create(1, 2);
    int64_t retry_after_usec;
    assert_int_equal(allowed_of(limiter, "user", START, 3), 2);
    assert_int_equal(allowed_of(limiter, "user1", START, 3), 2);
    assert_int_equal(allowed_of(limiter, "use", START, 3), 2);
    assert_int_equal(allowed_of(limiter, "User", START, 3), 2);
    assert_int_equal(allowed_of(limiter, "", START, 3), 2);
    /* Keys are bytes with a length: a NUL byte and what follows count. */
    assert_int_equal(sk_ratelimit_take(limiter, "user\0a", 6, START, &retry_after_usec), 1);
    assert_int_equal(sk_ratelimit_take(limiter, "user\0b", 6, START, &retry_after_usec), 1);
    assert_int_equal(sk_ratelimit_take(limiter, "user\0", 5, START, &retry_after_usec), 1);
    assert_int_equal(sk_ratelimit_users(limiter), 8);
    assert_false(take(limiter, "user", START, &retry_after_usec));
    sk_ratelimit_destroy(limiter);
}

/* ---- concurrency ---- */

#define THREADS 8
#define HAMMER_USERS 100

typedef struct hammer {
    sk_ratelimit_t *limiter;
    pthread_barrier_t *start;
    int users; /* 1: everyone on "hot"; otherwise round-robin over u0..u<users-1> */
    int rounds;
    atomic_int *allowed; /* per user */
} hammer_t;

static void *hammer_main(void *arg)
{
    hammer_t *hammer = arg;
    char name[16];
    int64_t retry_after_usec;
    pthread_barrier_wait(hammer->start);
    for (int round = 0; round != hammer->rounds; ++round) {
        for (int u = 0; u != hammer->users; ++u) {
            snprintf(name, sizeof(name), "u%d", u);
            if (take(hammer->limiter, name, START, &retry_after_usec))
                atomic_fetch_add(&hammer->allowed[u], 1);
        }
    }
    return NULL;
}

static void hammer_run(sk_ratelimit_t *limiter, int users, int rounds, atomic_int *allowed)
{
    pthread_t threads[THREADS];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, THREADS);
    hammer_t hammer = {limiter, &start, users, rounds, allowed};
    for (int t = 0; t != THREADS; ++t)
        assert_int_equal(pthread_create(&threads[t], NULL, hammer_main, &hammer), 0);
    for (int t = 0; t != THREADS; ++t)
        pthread_join(threads[t], NULL);
    pthread_barrier_destroy(&start);
}

static void test_concurrent_one_user_exact(void **state)
{
    (void)state;
    sk_ratelimit_t *limiter = sk_ratelimit_create(0.5, 1000);
    atomic_int allowed[1] = {0};
    hammer_run(limiter, 1, 20000, allowed); /* 160,000 takes against a burst of 1,000 */
    assert_int_equal(atomic_load(&allowed[0]), 1000);
    sk_ratelimit_destroy(limiter);
}

static void test_concurrent_many_users_exact(void **state)
{
    (void)state;
    sk_ratelimit_t *limiter = sk_ratelimit_create(0.5, 37);
    atomic_int allowed[HAMMER_USERS] = {0};
    hammer_run(limiter, HAMMER_USERS, 50, allowed); /* 400 takes per user */
    for (int u = 0; u != HAMMER_USERS; ++u)
        assert_int_equal(atomic_load(&allowed[u]), 37);
    assert_int_equal(sk_ratelimit_users(limiter), HAMMER_USERS);
    sk_ratelimit_destroy(limiter);
}

/* ---- memory bound ---- */

static void test_full_buckets_are_dropped(void **state)
{
    (void)state;
    sk_ratelimit_t *limiter = sk_ratelimit_create(1, 2);
    int64_t retry_after_usec;
    char name[32];
    enum { EARLY = 10000, LATE = 30000 };
    for (int i = 0; i != EARLY; ++i) {
        snprintf(name, sizeof(name), "early%d", i);
        assert_true(take(limiter, name, START, &retry_after_usec));
    }
    /* Each still misses a token, so none can go yet. */
    assert_int_equal(sk_ratelimit_users(limiter), EARLY);
    /* Two seconds on, every early bucket is full again: the sweeps the late users trigger
     * drop them all, and keep every late one. */
    for (int i = 0; i != LATE; ++i) {
        snprintf(name, sizeof(name), "late%d", i);
        assert_true(take(limiter, name, START + 2 * SECOND, &retry_after_usec));
    }
    assert_int_equal(sk_ratelimit_users(limiter), LATE);
    /* A dropped user is answered as if still known: a full bucket. */
    assert_int_equal(allowed_of(limiter, "early0", START + 2 * SECOND, 3), 2);
    assert_int_equal(allowed_of(limiter, "late0", START + 2 * SECOND, 3), 1);
    sk_ratelimit_destroy(limiter);
}

static void test_cap_forgets_nearest_to_full_only(void **state)
{
    (void)state;
    sk_ratelimit_t *limiter = sk_ratelimit_create(1, 4);
    int64_t retry_after_usec;
    char name[32];
    enum { EMPTIED = SK_RATELIMIT_MAX_USERS / 2, LIGHT = 2 * SK_RATELIMIT_MAX_USERS };
    /* Half the cap in users that emptied their bucket (4 s from full)... */
    for (int i = 0; i != EMPTIED; ++i) {
        snprintf(name, sizeof(name), "emptied%d", i);
        assert_int_equal(allowed_of(limiter, name, START, 4), 4);
    }
    /* ...then twice the cap in users that took one token (1 s from full), at the same
     * instant: nothing is full, so the cap must forget someone. */
    size_t most_users = 0;
    for (int i = 0; i != LIGHT; ++i) {
        snprintf(name, sizeof(name), "light%d", i);
        assert_true(take(limiter, name, START, &retry_after_usec));
        size_t users = i % 4096 == 0 ? sk_ratelimit_users(limiter) : 0;
        most_users = users > most_users ? users : most_users;
    }
    size_t users = sk_ratelimit_users(limiter);
    assert_true(users <= SK_RATELIMIT_MAX_USERS);
    assert_true(most_users <= SK_RATELIMIT_MAX_USERS);
    assert_true(users > EMPTIED);
    /* The forgotten were light users; every emptied one is still limited. */
    for (int i = 0; i != EMPTIED; ++i) {
        snprintf(name, sizeof(name), "emptied%d", i);
        assert_false(take(limiter, name, START, &retry_after_usec));
        assert_int_equal(retry_after_usec, SECOND);
    }
    sk_ratelimit_destroy(limiter);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_refuses_bad_arguments),
        cmocka_unit_test(test_burst_then_refill),
        cmocka_unit_test(test_burst_of_one),
        cmocka_unit_test(test_refill_carries_across_small_steps),
        cmocka_unit_test(test_tiny_and_huge_rates),
        cmocka_unit_test(test_clock_read_late_counts_as_latest),
        cmocka_unit_test(test_users_are_independent),
        cmocka_unit_test(test_concurrent_one_user_exact),
        cmocka_unit_test(test_concurrent_many_users_exact),
        cmocka_unit_test(test_full_buckets_are_dropped),
        cmocka_unit_test(test_cap_forgets_nearest_to_full_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
