/*
 * Tests of src/util/index.c, the lock-free-read hash index under the in-memory store:
 * insert and find, duplicate keys and the keep_existing rule (keep, replace, NULL = keep),
 * keys that differ only in length, in their last byte or around NUL bytes, the empty key,
 * growth from the initial 64 slots past a hundred thousand keys, foreach and count, the
 * published hash function, and two concurrent runs: writers inserting disjoint keys while
 * readers look up every key a writer has announced, and threads racing to insert the same
 * keys (exactly one value wins per key).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>

#include "util/index.h"

static int setup_index(void **state)
{
    sk_index_t *index = sk_index_create();
    if (index == NULL)
        return -1;
    *state = index;
    return 0;
}

static int teardown_index(void **state)
{
    sk_index_destroy(*state);
    return 0;
}

/* keep_existing callbacks that record what they were asked about. */
static void *last_existing;
static int keep_calls;

static int keep_never(void *existing)
{
    last_existing = existing;
    ++keep_calls;
    return 0;
}

static int keep_always(void *existing)
{
    last_existing = existing;
    ++keep_calls;
    return 1;
}

static void *find_str(sk_index_t *index, const char *key)
{
    return sk_index_find(index, key, strlen(key));
}

static void *insert_str(sk_index_t *index, const char *key, void *value,
                        int (*keep_existing)(void *existing))
{
    return sk_index_insert(index, key, strlen(key), value, keep_existing);
}

static void test_empty(void **state)
{
    sk_index_t *index = *state;
    assert_int_equal(sk_index_count(index), 0);
    assert_null(find_str(index, "a"));
    assert_null(find_str(index, ""));
}

static void test_insert_and_find(void **state)
{
    sk_index_t *index = *state;
    int alice = 1, bob = 2;
    assert_ptr_equal(insert_str(index, "alice", &alice, NULL), &alice);
    assert_ptr_equal(insert_str(index, "bob", &bob, NULL), &bob);
    assert_ptr_equal(find_str(index, "alice"), &alice);
    assert_ptr_equal(find_str(index, "bob"), &bob);
    assert_null(find_str(index, "carol"));
    assert_null(find_str(index, "Alice"));
    assert_null(find_str(index, "alic"));
    assert_null(find_str(index, "alicee"));
    assert_int_equal(sk_index_count(index), 2);
}

static void test_key_is_copied(void **state)
{
    sk_index_t *index = *state;
    int value = 7;
    char key[16];
    strcpy(key, "temporary");
    assert_ptr_equal(sk_index_insert(index, key, strlen(key), &value, NULL), &value);
    memset(key, 'x', sizeof(key));
    assert_ptr_equal(find_str(index, "temporary"), &value);
    assert_null(sk_index_find(index, key, strlen("temporary")));
}

static void test_duplicate_keeps_first_without_callback(void **state)
{
    sk_index_t *index = *state;
    int first = 1, second = 2;
    assert_ptr_equal(insert_str(index, "k", &first, NULL), &first);
    assert_ptr_equal(insert_str(index, "k", &second, NULL), &first);
    assert_ptr_equal(find_str(index, "k"), &first);
    assert_int_equal(sk_index_count(index), 1);
}

static void test_keep_existing_true_keeps(void **state)
{
    sk_index_t *index = *state;
    int first = 1, second = 2;
    keep_calls = 0;
    assert_ptr_equal(insert_str(index, "k", &first, keep_always), &first);
    /* No existing value: the callback is not consulted. */
    assert_int_equal(keep_calls, 0);
    assert_ptr_equal(insert_str(index, "k", &second, keep_always), &first);
    assert_int_equal(keep_calls, 1);
    assert_ptr_equal(last_existing, &first);
    assert_ptr_equal(find_str(index, "k"), &first);
    assert_int_equal(sk_index_count(index), 1);
}

static void test_keep_existing_false_replaces(void **state)
{
    sk_index_t *index = *state;
    int first = 1, second = 2, third = 3;
    keep_calls = 0;
    assert_ptr_equal(insert_str(index, "k", &first, keep_never), &first);
    assert_int_equal(keep_calls, 0);
    assert_ptr_equal(insert_str(index, "k", &second, keep_never), &second);
    assert_int_equal(keep_calls, 1);
    assert_ptr_equal(last_existing, &first);
    assert_ptr_equal(find_str(index, "k"), &second);
    /* A replacement is not a new key. */
    assert_int_equal(sk_index_count(index), 1);
    /* And the replaced value is what the next insert sees. */
    assert_ptr_equal(insert_str(index, "k", &third, keep_always), &second);
    assert_ptr_equal(last_existing, &second);
    assert_ptr_equal(find_str(index, "k"), &second);
    /* Other keys are not disturbed. */
    assert_ptr_equal(insert_str(index, "other", &third, keep_never), &third);
    assert_ptr_equal(find_str(index, "k"), &second);
    assert_int_equal(sk_index_count(index), 2);
}

static void test_keys_with_nul_bytes(void **state)
{
    sk_index_t *index = *state;
    static const struct {
        const char *bytes;
        size_t len;
    } keys[] = {
        {"a", 1},
        {"a\0", 2},
        {"a\0b", 3},
        {"a\0c", 3},
        {"\0a", 2},
        {"\0", 1},
        {"\0\0", 2},
        {"a\0\0", 3},
        {"seller\0coupon", 14},
        {"sell\0ercoupon", 13},
        {"seller\0coupo", 13},
    };
    enum { KEY_COUNT = sizeof(keys) / sizeof(keys[0]) };
    int values[KEY_COUNT];
    for (size_t i = 0; i < KEY_COUNT; i++)
        assert_ptr_equal(sk_index_insert(index, keys[i].bytes, keys[i].len, &values[i], NULL),
                         &values[i]);
    assert_int_equal(sk_index_count(index), KEY_COUNT);
    for (size_t i = 0; i < KEY_COUNT; i++) {
        /* Found through a copy, so that the match is by content. */
        char copy[32];
        memcpy(copy, keys[i].bytes, keys[i].len);
        assert_ptr_equal(sk_index_find(index, copy, keys[i].len), &values[i]);
    }
    assert_null(sk_index_find(index, "a\0d", 3));
    assert_null(sk_index_find(index, "\0\0\0", 3));
    assert_null(sk_index_find(index, "seller\0coupon\0", 15));
}

static void test_empty_key(void **state)
{
    sk_index_t *index = *state;
    int empty = 0, nul = 1;
    assert_ptr_equal(sk_index_insert(index, "", 0, &empty, NULL), &empty);
    assert_ptr_equal(sk_index_insert(index, "\0", 1, &nul, NULL), &nul);
    assert_ptr_equal(sk_index_find(index, "x", 0), &empty);
    assert_ptr_equal(sk_index_find(index, "\0", 1), &nul);
    assert_int_equal(sk_index_count(index), 2);
}

static void test_keys_differing_in_last_byte(void **state)
{
    sk_index_t *index = *state;
    /* 256 keys that differ only in their last byte, so FNV's weak low bits would all
     * collide without the final mix; lookups must stay exact either way. */
    int values[256];
    char key[8] = "coupon_";
    for (int i = 0; i < 256; i++) {
        key[7] = (char)i;
        assert_ptr_equal(sk_index_insert(index, key, 8, &values[i], NULL), &values[i]);
    }
    assert_int_equal(sk_index_count(index), 256);
    for (int i = 0; i < 256; i++) {
        key[7] = (char)i;
        assert_ptr_equal(sk_index_find(index, key, 8), &values[i]);
    }
    assert_null(sk_index_find(index, key, 7));
}

#define GROWTH_KEYS 150000

static void test_growth(void **state)
{
    sk_index_t *index = *state;
    int *values = calloc(GROWTH_KEYS, sizeof(*values));
    assert_non_null(values);
    char key[32];
    for (int i = 0; i < GROWTH_KEYS; i++) {
        values[i] = i;
        int len = snprintf(key, sizeof(key), "user_%d", i);
        assert_ptr_equal(sk_index_insert(index, key, (size_t)len, &values[i], NULL), &values[i]);
        /* Count at every power of two, just before and after the table grows. */
        if ((i & (i - 1)) == 0)
            assert_int_equal(sk_index_count(index), (size_t)i + 1);
    }
    assert_int_equal(sk_index_count(index), GROWTH_KEYS);
    for (int i = 0; i < GROWTH_KEYS; i++) {
        int len = snprintf(key, sizeof(key), "user_%d", i);
        int *found = sk_index_find(index, key, (size_t)len);
        if (found != &values[i])
            fail_msg("key %s: found %p, expected %p", key, (void *)found, (void *)&values[i]);
    }
    for (int i = GROWTH_KEYS; i < GROWTH_KEYS + 1000; i++) {
        int len = snprintf(key, sizeof(key), "user_%d", i);
        assert_null(sk_index_find(index, key, (size_t)len));
    }
    /* Duplicates after growth still find the original. */
    int late = -1;
    assert_ptr_equal(insert_str(index, "user_0", &late, NULL), &values[0]);
    assert_ptr_equal(insert_str(index, "user_149999", &late, keep_never), &late);
    assert_ptr_equal(find_str(index, "user_149999"), &late);
    assert_int_equal(sk_index_count(index), GROWTH_KEYS);
    free(values);
}

static size_t visits;
static long long visit_sum;

static void visit(void *value)
{
    ++visits;
    visit_sum += *(int *)value;
}

static void test_foreach_visits_each_value_once(void **state)
{
    sk_index_t *index = *state;
    enum { COUNT = 1000 };
    static int values[COUNT];
    char key[16];
    for (int i = 0; i < COUNT; i++) {
        values[i] = i + 1;
        int len = snprintf(key, sizeof(key), "k%d", i);
        sk_index_insert(index, key, (size_t)len, &values[i], NULL);
    }
    /* A replaced value is visited instead of the old one. */
    static int replacement = 1000000;
    assert_ptr_equal(insert_str(index, "k0", &replacement, keep_never), &replacement);
    visits = 0;
    visit_sum = 0;
    sk_index_foreach(index, visit);
    assert_int_equal(visits, COUNT);
    assert_int_equal(visit_sum, (long long)COUNT * (COUNT + 1) / 2 - 1 + 1000000);
}

/* The FNV-1a 64 reference, followed by the mix documented in index.c. */
static uint64_t reference_hash(const void *key, size_t len, int mix)
{
    const unsigned char *bytes = key;
    uint64_t hash = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        hash ^= bytes[i];
        hash *= 0x100000001b3ULL;
    }
    if (mix) {
        hash ^= hash >> 33;
        hash *= 0xff51afd7ed558ccdULL;
        hash ^= hash >> 33;
    }
    return hash;
}

static void test_hash(void **state)
{
    (void)state;
    /* Published FNV-1a 64 test vectors validate the reference itself. */
    assert_int_equal(reference_hash("", 0, 0), 0xcbf29ce484222325ULL);
    assert_int_equal(reference_hash("a", 1, 0), 0xaf63dc4c8601ec8cULL);
    assert_int_equal(reference_hash("foobar", 6, 0), 0x85944171f73967e8ULL);
    static const char *const keys[] = {"", "a", "foobar", "seller\0coupon", "user_12345"};
    static const size_t lens[] = {0, 1, 6, 13, 10};
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(sk_index_hash(keys[i], lens[i]), reference_hash(keys[i], lens[i], 1));
    assert_int_not_equal(sk_index_hash("a", 1), sk_index_hash("a\0", 2));
    assert_int_not_equal(sk_index_hash("ab", 2), sk_index_hash("ba", 2));

    /* The low bits (the slot in a small table) are spread even for keys differing only at
     * the end: 1024 such keys cover all 64 slots of the initial table. */
    int used[64] = {0};
    char key[16];
    for (int i = 0; i < 1024; i++) {
        int len = snprintf(key, sizeof(key), "user_%d", i);
        used[sk_index_hash(key, (size_t)len) & 63] = 1;
    }
    for (int slot = 0; slot < 64; slot++)
        assert_int_equal(used[slot], 1);
}

/* ---- concurrency ---- */

#define WRITERS 4
#define READERS 4
#define KEYS_PER_WRITER 25000

typedef struct concurrent_run {
    sk_index_t *index;
    int *values;                   /* WRITERS * KEYS_PER_WRITER */
    _Atomic int progress[WRITERS]; /* keys inserted so far by each writer */
    _Atomic int writers_done;
    _Atomic int failures;
    _Atomic long lookups;
} concurrent_run_t;

typedef struct worker_arg {
    concurrent_run_t *run;
    int id;
} worker_arg_t;

static int concurrent_key(char *key, size_t size, int writer, int i)
{
    return snprintf(key, size, "w%d-key-%d", writer, i);
}

static void *writer_main(void *arg)
{
    worker_arg_t *worker = arg;
    concurrent_run_t *run = worker->run;
    char key[32];
    for (int i = 0; i < KEYS_PER_WRITER; i++) {
        int *value = &run->values[worker->id * KEYS_PER_WRITER + i];
        int len = concurrent_key(key, sizeof(key), worker->id, i);
        if (sk_index_insert(run->index, key, (size_t)len, value, NULL) != value)
            atomic_fetch_add(&run->failures, 1);
        atomic_store_explicit(&run->progress[worker->id], i + 1, memory_order_release);
    }
    atomic_fetch_add(&run->writers_done, 1);
    return NULL;
}

static void *reader_main(void *arg)
{
    worker_arg_t *worker = arg;
    concurrent_run_t *run = worker->run;
    unsigned seed = (unsigned)worker->id * 2654435761u + 1;
    char key[32];
    long lookups = 0;
    while (atomic_load(&run->writers_done) != WRITERS || lookups < 1000) {
        seed = seed * 1103515245u + 12345u;
        int writer = (int)((seed >> 16) % WRITERS);
        int announced = atomic_load_explicit(&run->progress[writer], memory_order_acquire);
        seed = seed * 1103515245u + 12345u;
        /* A key the writer has announced must be found; one it has not yet reached may be
         * found or not, but never with a wrong value. */
        int i = (int)((seed >> 8) % KEYS_PER_WRITER);
        int len = concurrent_key(key, sizeof(key), writer, i);
        int *found = sk_index_find(run->index, key, (size_t)len);
        int *expected = &run->values[writer * KEYS_PER_WRITER + i];
        if ((i < announced && found != expected) || (found != NULL && found != expected))
            atomic_fetch_add(&run->failures, 1);
        /* Something that was never inserted is never found. */
        len = snprintf(key, sizeof(key), "absent-%d", i);
        if (sk_index_find(run->index, key, (size_t)len) != NULL)
            atomic_fetch_add(&run->failures, 1);
        ++lookups;
    }
    atomic_fetch_add(&run->lookups, lookups);
    return NULL;
}

static void test_concurrent_insert_and_find(void **state)
{
    concurrent_run_t *run = calloc(1, sizeof(*run));
    assert_non_null(run);
    run->index = *state;
    run->values = calloc(WRITERS * KEYS_PER_WRITER, sizeof(run->values[0]));
    assert_non_null(run->values);

    pthread_t threads[WRITERS + READERS];
    worker_arg_t args[WRITERS + READERS];
    for (int t = 0; t < WRITERS + READERS; t++) {
        args[t].run = run;
        args[t].id = t < WRITERS ? t : t - WRITERS;
        assert_int_equal(
            pthread_create(&threads[t], NULL, t < WRITERS ? writer_main : reader_main, &args[t]),
            0);
    }
    for (int t = 0; t < WRITERS + READERS; t++)
        assert_int_equal(pthread_join(threads[t], NULL), 0);

    assert_int_equal(atomic_load(&run->failures), 0);
    assert_true(atomic_load(&run->lookups) >= READERS * 1000);
    assert_int_equal(sk_index_count(run->index), WRITERS * KEYS_PER_WRITER);
    char key[32];
    for (int writer = 0; writer < WRITERS; writer++) {
        for (int i = 0; i < KEYS_PER_WRITER; i++) {
            int len = concurrent_key(key, sizeof(key), writer, i);
            if (sk_index_find(run->index, key, (size_t)len) !=
                &run->values[writer * KEYS_PER_WRITER + i])
                fail_msg("key %s lost", key);
        }
    }
    free(run->values);
    free(run);
}

#define RACERS 4
#define RACE_KEYS 5000

typedef struct race_arg {
    sk_index_t *index;
    int id;
    int values[RACE_KEYS];
    void *stored[RACE_KEYS];
} race_arg_t;

static void *racer_main(void *arg)
{
    race_arg_t *racer = arg;
    char key[32];
    for (int i = 0; i < RACE_KEYS; i++) {
        int len = snprintf(key, sizeof(key), "same-%d", i);
        racer->stored[i] = sk_index_insert(racer->index, key, (size_t)len, &racer->values[i], NULL);
    }
    return NULL;
}

static void test_concurrent_same_keys_one_winner(void **state)
{
    sk_index_t *index = *state;
    race_arg_t *racers = calloc(RACERS, sizeof(*racers));
    assert_non_null(racers);
    pthread_t threads[RACERS];
    for (int t = 0; t < RACERS; t++) {
        racers[t].index = index;
        racers[t].id = t;
        assert_int_equal(pthread_create(&threads[t], NULL, racer_main, &racers[t]), 0);
    }
    for (int t = 0; t < RACERS; t++)
        assert_int_equal(pthread_join(threads[t], NULL), 0);

    assert_int_equal(sk_index_count(index), RACE_KEYS);
    char key[32];
    for (int i = 0; i < RACE_KEYS; i++) {
        int len = snprintf(key, sizeof(key), "same-%d", i);
        void *winner = sk_index_find(index, key, (size_t)len);
        assert_non_null(winner);
        int winners = 0;
        for (int t = 0; t < RACERS; t++) {
            /* Every racer was told the same stored value: the winner's. */
            assert_ptr_equal(racers[t].stored[i], winner);
            winners += winner == &racers[t].values[i];
        }
        assert_int_equal(winners, 1);
    }
    free(racers);
}

int main(void)
{
#define INDEX_TEST(name) cmocka_unit_test_setup_teardown(name, setup_index, teardown_index)
    const struct CMUnitTest tests[] = {
        INDEX_TEST(test_empty),
        INDEX_TEST(test_insert_and_find),
        INDEX_TEST(test_key_is_copied),
        INDEX_TEST(test_duplicate_keeps_first_without_callback),
        INDEX_TEST(test_keep_existing_true_keeps),
        INDEX_TEST(test_keep_existing_false_replaces),
        INDEX_TEST(test_keys_with_nul_bytes),
        INDEX_TEST(test_empty_key),
        INDEX_TEST(test_keys_differing_in_last_byte),
        INDEX_TEST(test_growth),
        INDEX_TEST(test_foreach_visits_each_value_once),
        cmocka_unit_test(test_hash),
        INDEX_TEST(test_concurrent_insert_and_find),
        INDEX_TEST(test_concurrent_same_keys_one_winner),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
