/*
 * Tests of src/store/revocations.c: adding and finding ids, the epoch moving only for new
 * ids, a second revocation keeping the later expiry, pruning exactly the entries before the
 * cutoff (thousands of them, so that probe runs collide and every removal must keep the
 * rest findable), the table shrinking back, and the test-only interval knob.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store/revocations.h"

static int contains(sk_revocations_t *set, const char *jti)
{
    return sk_revocations_contains(set, jti, strlen(jti));
}

static void add(sk_revocations_t *set, const char *jti, int64_t expires_at)
{
    assert_int_equal(sk_revocations_add(set, jti, strlen(jti), expires_at), 0);
}

static void test_add_and_find(void **state)
{
    (void)state;
    sk_revocations_t *set = sk_revocations_create();
    assert_non_null(set);
    uint64_t epoch0 = sk_revocations_epoch(set);
    assert_int_equal(contains(set, "a"), 0);
    add(set, "a", 100);
    assert_int_equal(contains(set, "a"), 1);
    assert_int_equal(contains(set, "A"), 0);
    assert_int_equal(contains(set, "ab"), 0);
    assert_int_equal(contains(set, ""), 0);
    uint64_t epoch1 = sk_revocations_epoch(set);
    assert_int_not_equal(epoch1, epoch0);
    /* Again: no new entry, no epoch move, the later expiry kept. */
    add(set, "a", 50);
    assert_int_equal(sk_revocations_epoch(set), epoch1);
    assert_int_equal(sk_revocations_count(set), 1);
    assert_int_equal(sk_revocations_prune(set, 60), 0);
    assert_int_equal(contains(set, "a"), 1);
    add(set, "a", 200);
    assert_int_equal(sk_revocations_prune(set, 150), 0);
    assert_int_equal(contains(set, "a"), 1);
    assert_int_equal(sk_revocations_prune(set, 201), 1);
    assert_int_equal(contains(set, "a"), 0);
    assert_int_equal(sk_revocations_count(set), 0);
    sk_revocations_destroy(set);
}

static void test_prune_many(void **state)
{
    (void)state;
    enum { COUNT = 5000 };
    sk_revocations_t *set = sk_revocations_create();
    assert_non_null(set);
    char jti[32];
    /* Expiries interleaved, so the removed entries sit inside every probe run. */
    for (int i = 0; i < COUNT; i++) {
        snprintf(jti, sizeof(jti), "jti-%d", i);
        add(set, jti, i % 3 == 0 ? 10 : 1000 + i);
    }
    assert_int_equal(sk_revocations_count(set), COUNT);
    size_t expected = (COUNT + 2) / 3;
    /* The cutoff is exclusive: an entry expiring at it stays. */
    assert_int_equal(sk_revocations_prune(set, 10), 0);
    assert_int_equal(sk_revocations_prune(set, 11), expected);
    assert_int_equal(sk_revocations_count(set), COUNT - expected);
    for (int i = 0; i < COUNT; i++) {
        snprintf(jti, sizeof(jti), "jti-%d", i);
        if (contains(set, jti) != (i % 3 != 0))
            fail_msg("%s: found %d after the prune", jti, contains(set, jti));
    }
    /* Everything else too; the table shrinks and still works. */
    assert_int_equal(sk_revocations_prune(set, INT64_MAX), COUNT - expected);
    assert_int_equal(sk_revocations_count(set), 0);
    for (int i = 0; i < COUNT; i += 7) {
        snprintf(jti, sizeof(jti), "jti-%d", i);
        assert_int_equal(contains(set, jti), 0);
    }
    add(set, "after", 5);
    assert_int_equal(contains(set, "after"), 1);
    sk_revocations_destroy(set);
}

static void test_interval_knob(void **state)
{
    (void)state;
    unsetenv("SECKILL_REVOCATION_PRUNE_MS");
    assert_int_equal(sk_revocations_prune_interval_ms(), 60000);
    setenv("SECKILL_REVOCATION_PRUNE_MS", "250", 1);
    assert_int_equal(sk_revocations_prune_interval_ms(), 250);
    /* Never longer than a minute, never silly: anything else is the default. */
    static const char *const refused[] = {"", "0", "9", "60001", "abc", "100x", "-5"};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        setenv("SECKILL_REVOCATION_PRUNE_MS", refused[i], 1);
        assert_int_equal(sk_revocations_prune_interval_ms(), 60000);
    }
    unsetenv("SECKILL_REVOCATION_PRUNE_MS");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_and_find),
        cmocka_unit_test(test_prune_many),
        cmocka_unit_test(test_interval_knob),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
