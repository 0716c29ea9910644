/*
 * Unit tests of the live sale view's figures in api/metrics.c: the latency buckets and
 * their bounds, quantiles read from them, and the per-thread ring of seconds (a slot taken
 * by a new second starts from zero; readers add up every thread's slot of one second and
 * nothing of another).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "api/metrics.h"

static void test_buckets_hold_their_values(void **state)
{
    (void)state;
    unsigned previous = 0;
    for (uint64_t usec = 0; usec < ((uint64_t)1 << 29);
         usec = usec < 4096 ? usec + 1 : usec * 9 / 8) {
        unsigned bucket = sk_metrics_latency_bucket(usec);
        assert_true(bucket < SK_STORE_SALE_LATENCY_BUCKETS);
        assert_true(bucket >= previous); /* monotonic */
        previous = bucket;
        uint64_t low, high;
        sk_metrics_latency_bounds(bucket, &low, &high);
        if (bucket != SK_STORE_SALE_LATENCY_BUCKETS - 1 && !(low <= usec && usec < high))
            fail_msg("%llu us in bucket %u of [%llu, %llu)", (unsigned long long)usec, bucket,
                     (unsigned long long)low, (unsigned long long)high);
        /* At most 1 us or 12.5 % wide, but the last (all that is longer). */
        assert_true(bucket == SK_STORE_SALE_LATENCY_BUCKETS - 1 || high - low <= 1 ||
                    (high - low) * 8 <= low);
    }
    assert_int_equal(sk_metrics_latency_bucket(0), 0);
    assert_int_equal(sk_metrics_latency_bucket(15), 15);
    assert_int_equal(sk_metrics_latency_bucket(16), 16);
    assert_int_equal(sk_metrics_latency_bucket(UINT64_MAX), SK_STORE_SALE_LATENCY_BUCKETS - 1);
    /* Every bucket's bounds follow on from the previous one's. */
    for (unsigned b = 1; b != SK_STORE_SALE_LATENCY_BUCKETS; ++b) {
        uint64_t low, high, previous_low, previous_high;
        sk_metrics_latency_bounds(b, &low, &high);
        sk_metrics_latency_bounds(b - 1, &previous_low, &previous_high);
        assert_int_equal(low, previous_high);
        assert_true(high > low);
        assert_int_equal(sk_metrics_latency_bucket(low), b);
    }
}

static void test_quantiles(void **state)
{
    (void)state;
    uint64_t latency[SK_STORE_SALE_LATENCY_BUCKETS] = {0};
    assert_true(sk_metrics_latency_quantile(latency, 0.5) < 0); /* empty */

    /* 99 answers at 100 us and one at 10 ms: p50 near 100 us, p99 still there, p100 10 ms. */
    latency[sk_metrics_latency_bucket(100)] = 99;
    latency[sk_metrics_latency_bucket(10000)] = 1;
    double p50 = sk_metrics_latency_quantile(latency, 0.5);
    double p99 = sk_metrics_latency_quantile(latency, 0.99);
    double top = sk_metrics_latency_quantile(latency, 1.0);
    assert_true(p50 >= 96 && p50 <= 104);
    assert_true(p99 >= 96 && p99 <= 104);
    assert_true(top >= 9000 && top <= 11000);

    /* 1..1000 us once each: each quantile within its bucket's width of the exact one. */
    memset(latency, 0, sizeof(latency));
    for (uint64_t usec = 1; usec <= 1000; ++usec)
        ++latency[sk_metrics_latency_bucket(usec)];
    double median = sk_metrics_latency_quantile(latency, 0.5);
    double p90 = sk_metrics_latency_quantile(latency, 0.9);
    assert_true(median >= 500 * 0.875 && median <= 500 * 1.125);
    assert_true(p90 >= 900 * 0.875 && p90 <= 900 * 1.125);
    assert_true(sk_metrics_latency_quantile(latency, 0.0) >= 1);
}

static uint64_t sum(const uint64_t *counts, size_t n)
{
    uint64_t total = 0;
    for (size_t i = 0; i != n; ++i)
        total += counts[i];
    return total;
}

static void test_ring_of_seconds(void **state)
{
    (void)state;
    sk_metrics_t *metrics = sk_metrics_create();
    assert_non_null(metrics);
    sk_metrics_thread_t *a = sk_metrics_thread_create(metrics);
    sk_metrics_thread_t *b = sk_metrics_thread_create(metrics);
    assert_non_null(a);
    assert_non_null(b);
    const int64_t t = 1800000000;

    sk_metrics_count_sale(a, SK_METRICS_SALE_GRANTED, 120, t);
    sk_metrics_count_sale(a, SK_METRICS_SALE_GRANTED, 130, t);
    sk_metrics_count_sale(b, SK_METRICS_SALE_SOLD_OUT, 50, t);
    sk_metrics_count_sale(b, SK_METRICS_SALE_REJECTED, 7, t + 1);
    sk_metrics_count_sale(a, SK_METRICS_SALE_ALREADY_HELD, 90, t + 2);

    sk_store_sale_second_t second;
    sk_metrics_sale_second(metrics, t, &second);
    assert_int_equal(second.second, t);
    assert_int_equal(second.outcomes[SK_METRICS_SALE_GRANTED], 2);
    assert_int_equal(second.outcomes[SK_METRICS_SALE_SOLD_OUT], 1);
    assert_int_equal(second.outcomes[SK_METRICS_SALE_ALREADY_HELD], 0);
    assert_int_equal(sum(second.latency, SK_STORE_SALE_LATENCY_BUCKETS), 3);
    assert_int_equal(second.latency[sk_metrics_latency_bucket(120)], 1);
    assert_int_equal(second.latency[sk_metrics_latency_bucket(50)], 1);

    /* The window from t - 57: t at index 57, t + 1 at 58, t + 2 at 59. */
    sk_store_sale_read_t window;
    memset(&window, 0, sizeof(window));
    window.first_second = t - 57;
    sk_metrics_sale_window(metrics, &window);
    assert_int_equal(window.instances, 1);
    assert_int_equal(window.outcomes[57][SK_METRICS_SALE_GRANTED], 2);
    assert_int_equal(window.outcomes[58][SK_METRICS_SALE_REJECTED], 1);
    assert_int_equal(window.outcomes[59][SK_METRICS_SALE_ALREADY_HELD], 1);
    assert_int_equal(sum(window.latency, SK_STORE_SALE_LATENCY_BUCKETS), 5);
    for (int i = 0; i != 57; ++i)
        assert_int_equal(sum(window.outcomes[i], SK_STORE_SALE_OUTCOMES), 0);

    /* A second that takes the slot of t (a ring later) starts from zero, and t is gone. */
    sk_metrics_count_sale(a, SK_METRICS_SALE_REJECTED, 10, t + SK_METRICS_SALE_RING);
    sk_metrics_sale_second(metrics, t + SK_METRICS_SALE_RING, &second);
    assert_int_equal(second.outcomes[SK_METRICS_SALE_REJECTED], 1);
    assert_int_equal(second.outcomes[SK_METRICS_SALE_GRANTED], 0);
    sk_metrics_sale_second(metrics, t, &second);
    assert_int_equal(second.outcomes[SK_METRICS_SALE_GRANTED], 0);  /* a's slot moved on */
    assert_int_equal(second.outcomes[SK_METRICS_SALE_SOLD_OUT], 1); /* b's did not */
    /* A second never counted reads as nothing. */
    sk_metrics_sale_second(metrics, t - 1, &second);
    assert_int_equal(sum(second.outcomes, SK_STORE_SALE_OUTCOMES), 0);
    sk_metrics_destroy(metrics);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buckets_hold_their_values),
        cmocka_unit_test(test_quantiles),
        cmocka_unit_test(test_ring_of_seconds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
