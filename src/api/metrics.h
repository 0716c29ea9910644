/*
 * Counters for /metrics (Prometheus text format 0.0.4): requests by route and status,
 * grab outcomes, request latency histograms by route, the store's journal figures, and,
 * read at each scrape, the HTTP server's connections and the process collector's standard
 * series (process_cpu_seconds_total, process_resident_memory_bytes, ...).
 *
 * Each worker thread owns one sk_metrics_thread_t and is its only writer, so counting is a
 * plain load and store (relaxed atomics: no lock prefix, no shared cache line); rendering
 * sums every thread's counters, each possibly a moment old.
 */
#ifndef SK_API_METRICS_H
#define SK_API_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "api/router.h"
#include "store/store.h"

#define SK_METRICS_STATUS_SLOTS 12
#define SK_METRICS_LATENCY_BUCKETS 14
#define SK_METRICS_GRAB_OUTCOMES 9

/*
 * The live sale view's figures (GET /status.json): the answers of the grab route by
 * outcome, and their latency, per Unix second. Each thread keeps the last
 * SK_METRICS_SALE_RING seconds in a ring; a slot is zeroed by its writer when a new second
 * takes it, under a sequence word (`second`, 0 while being zeroed) that readers check
 * before and after, so a reader never adds up a half-zeroed slot and no lock is taken.
 *
 * Latency buckets (SK_STORE_SALE_LATENCY_BUCKETS of them) hold microseconds: 0..15 one
 * each, then every power of two is split in 8 equal buckets (at most 12.5 % wide), up to
 * 2^28 us (268 s) and above in the last.
 */
#define SK_METRICS_SALE_RING 64 /* a power of two, more than SK_STORE_SALE_WINDOW */

typedef enum sk_metrics_sale_outcome {
    SK_METRICS_SALE_GRANTED = 0,  /* 201 */
    SK_METRICS_SALE_SOLD_OUT,     /* 204 sold-out */
    SK_METRICS_SALE_ALREADY_HELD, /* 204 already-held */
    SK_METRICS_SALE_REJECTED      /* any other answer to a grab (see sk_metrics_count_sale) */
} sk_metrics_sale_outcome_t;

typedef struct sk_metrics_sale_slot {
    _Atomic int64_t second; /* the Unix second counted here; 0: none, or being zeroed */
    _Atomic uint32_t outcomes[SK_STORE_SALE_OUTCOMES];
    _Atomic uint32_t latency[SK_STORE_SALE_LATENCY_BUCKETS];
} sk_metrics_sale_slot_t;

typedef struct sk_metrics sk_metrics_t;

typedef struct sk_metrics_thread {
    _Atomic uint64_t requests[SK_ROUTE_COUNT][SK_METRICS_STATUS_SLOTS];
    _Atomic uint64_t latency[SK_ROUTE_COUNT][SK_METRICS_LATENCY_BUCKETS];
    _Atomic uint64_t latency_usec_sum[SK_ROUTE_COUNT];
    _Atomic uint64_t grabs[SK_METRICS_GRAB_OUTCOMES];  /* by sk_store_result_t */
    sk_metrics_sale_slot_t sale[SK_METRICS_SALE_RING]; /* by second modulo the ring */
    struct sk_metrics_thread *next;
} sk_metrics_thread_t;

sk_metrics_t *sk_metrics_create(void);
void sk_metrics_destroy(sk_metrics_t *metrics);

/* A zeroed counter set for one thread, owned by `metrics`. Thread-safe. */
sk_metrics_thread_t *sk_metrics_thread_create(sk_metrics_t *metrics);

/* Counts one answered request. Only from the owning thread. */
void sk_metrics_count_request(sk_metrics_thread_t *counters, sk_route_id_t route, int status,
                              uint64_t elapsed_usec);

/* Counts one grab outcome. Only from the owning thread. */
void sk_metrics_count_grab(sk_metrics_thread_t *counters, sk_store_result_t outcome);

/* Counts one answer of the grab route for the live sale view: `elapsed_usec` from request
 * to answer, in the Unix second `now`. Only from the owning thread; a few loads and
 * stores, no lock and no read-modify-write. */
void sk_metrics_count_sale(sk_metrics_thread_t *counters, sk_metrics_sale_outcome_t outcome,
                           uint64_t elapsed_usec, int64_t now);

/* The latency bucket of `usec`, and the microseconds bucket `bucket` holds: from *low to
 * below *high. */
unsigned sk_metrics_latency_bucket(uint64_t usec);
void sk_metrics_latency_bounds(unsigned bucket, uint64_t *low, uint64_t *high);

/* The `quantile` (0..1) of a latency histogram in microseconds, interpolated within its
 * bucket; -1 when the histogram is empty. */
double sk_metrics_latency_quantile(const uint64_t *latency, double quantile);

/* Every thread's figures of Unix second `second` added up into `out` (zeroed first; its
 * `second` set). Thread-safe. */
void sk_metrics_sale_second(sk_metrics_t *metrics, int64_t second, sk_store_sale_second_t *out);

/* The SK_STORE_SALE_WINDOW seconds from op->first_second into op's results, as
 * sk_store_sale_read gives them (instances: 1). Thread-safe. */
void sk_metrics_sale_window(sk_metrics_t *metrics, sk_store_sale_read_t *op);

/* Renders every counter, `stats`, the build (`deployment`: "embedded" or "distributed"),
 * the HTTP server's connections and the process's figures as Prometheus text into a new
 * malloc'd string (the caller frees it), or NULL when out of memory. */
char *sk_metrics_render(sk_metrics_t *metrics, const sk_store_stats_t *stats,
                        const char *deployment, size_t *len);

#endif
