/* The metrics registry and its Prometheus rendering (see metrics.h). */
#include "api/metrics.h"

#include <dirent.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "http/server.h"

static const int status_codes[SK_METRICS_STATUS_SLOTS] = {200, 201, 204, 400, 401, 404,
                                                          405, 413, 429, 500, 503, 0};
static const uint64_t latency_bounds_usec[SK_METRICS_LATENCY_BUCKETS - 1] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000};
static const char *const grab_outcomes[SK_METRICS_GRAB_OUTCOMES] = {
    "granted", "duplicate", "not_found",    "no_such_coupon", "not_started",
    "ended",   "sold_out",  "already_held", "unavailable"};

struct sk_metrics {
    pthread_mutex_t lock;
    sk_metrics_thread_t *threads; /* guarded by lock */
    double start_time;            /* seconds since the epoch; < 0 when /proc cannot say */
};

/* The `index`th field (1-based, as in proc(5)) of /proc/self/stat, or -1. */
static long long self_stat_field(int index)
{
    char text[1024];
    FILE *file = fopen("/proc/self/stat", "re");
    if (file == NULL)
        return -1;
    size_t len = fread(text, 1, sizeof(text) - 1, file);
    fclose(file);
    text[len] = '\0';
    /* Field 2, the command name, may hold spaces and parentheses: count after its end. */
    char *at = strrchr(text, ')');
    if (at == NULL)
        return -1;
    ++at;
    for (int field = 3; field != index; ++field) {
        at += strspn(at, " ");
        at += strcspn(at, " ");
    }
    char *end;
    long long value = strtoll(at, &end, 10);
    return end != at && value >= 0 ? value : -1;
}

/* When this process started, from the boot time and its start in ticks after boot. */
static double process_start_time(void)
{
    long long start_ticks = self_stat_field(22);
    long ticks_per_second = sysconf(_SC_CLK_TCK);
    FILE *file = fopen("/proc/stat", "re");
    if (start_ticks < 0 || ticks_per_second <= 0 || file == NULL) {
        if (file != NULL)
            fclose(file);
        return -1;
    }
    char line[256];
    long long boot_time = -1;
    while (boot_time < 0 && fgets(line, sizeof(line), file) != NULL) {
        if (strncmp(line, "btime ", 6) == 0)
            boot_time = strtoll(line + 6, NULL, 10);
    }
    fclose(file);
    return boot_time > 0 ? (double)boot_time + (double)start_ticks / (double)ticks_per_second : -1;
}

sk_metrics_t *sk_metrics_create(void)
{
    sk_metrics_t *metrics = calloc(1, sizeof(*metrics));
    if (metrics == NULL)
        return NULL;
    pthread_mutex_init(&metrics->lock, NULL);
    metrics->start_time = process_start_time();
    return metrics;
}

void sk_metrics_destroy(sk_metrics_t *metrics)
{
    while (metrics->threads != NULL) {
        sk_metrics_thread_t *next = metrics->threads->next;
        free(metrics->threads);
        metrics->threads = next;
    }
    pthread_mutex_destroy(&metrics->lock);
    free(metrics);
}

sk_metrics_thread_t *sk_metrics_thread_create(sk_metrics_t *metrics)
{
    sk_metrics_thread_t *counters = calloc(1, sizeof(*counters));
    if (counters == NULL)
        return NULL;
    pthread_mutex_lock(&metrics->lock);
    counters->next = metrics->threads;
    metrics->threads = counters;
    pthread_mutex_unlock(&metrics->lock);
    return counters;
}

static inline void bump(_Atomic uint64_t *counter, uint64_t by)
{
    /* Single writer: a relaxed load and store, without a locked read-modify-write. */
    atomic_store_explicit(counter, atomic_load_explicit(counter, memory_order_relaxed) + by,
                          memory_order_relaxed);
}

void sk_metrics_count_request(sk_metrics_thread_t *counters, sk_route_id_t route, int status,
                              uint64_t elapsed_usec)
{
    int slot = 0;
    while (slot < SK_METRICS_STATUS_SLOTS - 1 && status_codes[slot] != status)
        ++slot;
    int bucket = 0;
    while (bucket < SK_METRICS_LATENCY_BUCKETS - 1 && elapsed_usec > latency_bounds_usec[bucket])
        ++bucket;
    bump(&counters->requests[route][slot], 1);
    bump(&counters->latency[route][bucket], 1);
    bump(&counters->latency_usec_sum[route], elapsed_usec);
}

void sk_metrics_count_grab(sk_metrics_thread_t *counters, sk_store_result_t outcome)
{
    if ((unsigned)outcome < SK_METRICS_GRAB_OUTCOMES)
        bump(&counters->grabs[outcome], 1);
}

unsigned sk_metrics_latency_bucket(uint64_t usec)
{
    if (usec < 16)
        return (unsigned)usec;
    if (usec >= (uint64_t)1 << 28)
        return SK_STORE_SALE_LATENCY_BUCKETS - 1;
    unsigned top = 63 - (unsigned)__builtin_clzll(usec); /* 4..27 */
    return (top - 2) * 8 + (unsigned)((usec >> (top - 3)) & 7);
}

void sk_metrics_latency_bounds(unsigned bucket, uint64_t *low, uint64_t *high)
{
    if (bucket < 16) {
        *low = bucket;
        *high = bucket + 1;
        return;
    }
    unsigned top = bucket / 8 + 2, eighth = bucket % 8;
    *low = (uint64_t)(8 + eighth) << (top - 3);
    *high = bucket == SK_STORE_SALE_LATENCY_BUCKETS - 1 ? *low * 2
                                                        : (uint64_t)(9 + eighth) << (top - 3);
}

double sk_metrics_latency_quantile(const uint64_t *latency, double quantile)
{
    uint64_t total = 0;
    for (unsigned b = 0; b != SK_STORE_SALE_LATENCY_BUCKETS; ++b)
        total += latency[b];
    if (total == 0)
        return -1;
    /* The rank of the answer wanted, 1-based, as Prometheus's histogram_quantile reads
     * it: the bucket that holds it, and a linear guess inside. */
    double rank = quantile * (double)total;
    if (rank < 1)
        rank = 1;
    uint64_t below = 0;
    for (unsigned b = 0; b != SK_STORE_SALE_LATENCY_BUCKETS; ++b) {
        if (latency[b] == 0 || (double)(below + latency[b]) < rank) {
            below += latency[b];
            continue;
        }
        uint64_t low, high;
        sk_metrics_latency_bounds(b, &low, &high);
        double inside = (rank - (double)below) / (double)latency[b];
        return (double)low + inside * (double)(high - low);
    }
    return -1; /* not reached: the last bucket with a count holds the rank */
}

void sk_metrics_count_sale(sk_metrics_thread_t *counters, sk_metrics_sale_outcome_t outcome,
                           uint64_t elapsed_usec, int64_t now)
{
    sk_metrics_sale_slot_t *slot = &counters->sale[(uint64_t)now % SK_METRICS_SALE_RING];
    if (atomic_load_explicit(&slot->second, memory_order_relaxed) != now) {
        /* A seqlock's write: readers that see 0, or a different second after their reads,
         * throw what they read away. */
        atomic_store_explicit(&slot->second, 0, memory_order_relaxed);
        atomic_thread_fence(memory_order_release);
        for (int o = 0; o != SK_STORE_SALE_OUTCOMES; ++o)
            atomic_store_explicit(&slot->outcomes[o], 0, memory_order_relaxed);
        for (int b = 0; b != SK_STORE_SALE_LATENCY_BUCKETS; ++b)
            atomic_store_explicit(&slot->latency[b], 0, memory_order_relaxed);
        atomic_store_explicit(&slot->second, now, memory_order_release);
    }
    _Atomic uint32_t *count = &slot->outcomes[outcome];
    atomic_store_explicit(count, atomic_load_explicit(count, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    count = &slot->latency[sk_metrics_latency_bucket(elapsed_usec)];
    atomic_store_explicit(count, atomic_load_explicit(count, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* Adds one thread's slot of `second` to the sums, unless its writer moved it on
 * meanwhile. Under metrics->lock (the list of threads). */
static void add_sale_slot(const sk_metrics_thread_t *thread, int64_t second, uint64_t *outcomes,
                          uint64_t *latency)
{
    const sk_metrics_sale_slot_t *slot = &thread->sale[(uint64_t)second % SK_METRICS_SALE_RING];
    if (second == 0 || atomic_load_explicit(&slot->second, memory_order_acquire) != second)
        return;
    uint32_t read_outcomes[SK_STORE_SALE_OUTCOMES], read_latency[SK_STORE_SALE_LATENCY_BUCKETS];
    for (int o = 0; o != SK_STORE_SALE_OUTCOMES; ++o)
        read_outcomes[o] = atomic_load_explicit(&slot->outcomes[o], memory_order_relaxed);
    for (int b = 0; b != SK_STORE_SALE_LATENCY_BUCKETS; ++b)
        read_latency[b] = atomic_load_explicit(&slot->latency[b], memory_order_relaxed);
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&slot->second, memory_order_relaxed) != second)
        return;
    for (int o = 0; o != SK_STORE_SALE_OUTCOMES; ++o)
        outcomes[o] += read_outcomes[o];
    for (int b = 0; b != SK_STORE_SALE_LATENCY_BUCKETS; ++b)
        latency[b] += read_latency[b];
}

void sk_metrics_sale_second(sk_metrics_t *metrics, int64_t second, sk_store_sale_second_t *out)
{
    memset(out, 0, sizeof(*out));
    out->second = second;
    pthread_mutex_lock(&metrics->lock);
    for (sk_metrics_thread_t *t = metrics->threads; t != NULL; t = t->next)
        add_sale_slot(t, second, out->outcomes, out->latency);
    pthread_mutex_unlock(&metrics->lock);
}

void sk_metrics_sale_window(sk_metrics_t *metrics, sk_store_sale_read_t *op)
{
    memset(op->outcomes, 0, sizeof(op->outcomes));
    memset(op->latency, 0, sizeof(op->latency));
    op->instances = 1;
    pthread_mutex_lock(&metrics->lock);
    for (sk_metrics_thread_t *t = metrics->threads; t != NULL; t = t->next) {
        for (int i = 0; i != SK_STORE_SALE_WINDOW; ++i)
            add_sale_slot(t, op->first_second + i, op->outcomes[i], op->latency);
    }
    pthread_mutex_unlock(&metrics->lock);
}

typedef struct text_buffer {
    char *bytes;
    size_t len, capacity;
    int failed;
} text_buffer_t;

__attribute__((format(printf, 2, 3))) static void append(text_buffer_t *buffer, const char *format,
                                                         ...)
{
    for (;;) {
        if (buffer->failed)
            return;
        va_list args;
        va_start(args, format);
        int written =
            vsnprintf(buffer->bytes + buffer->len, buffer->capacity - buffer->len, format, args);
        va_end(args);
        if (written >= 0 && (size_t)written < buffer->capacity - buffer->len) {
            buffer->len += (size_t)written;
            return;
        }
        char *grown = realloc(buffer->bytes, buffer->capacity * 2);
        if (grown == NULL) {
            buffer->failed = 1;
            return;
        }
        buffer->bytes = grown;
        buffer->capacity *= 2;
    }
}

static void append_histogram(text_buffer_t *out, const char *name, const char *labels,
                             const uint64_t *buckets, const char *const *bounds, size_t count,
                             double sum)
{
    uint64_t cumulative = 0;
    for (size_t i = 0; i != count; ++i) {
        cumulative += buckets[i];
        append(out, "%s_bucket{%s%sle=\"%s\"} %llu\n", name, labels, labels[0] ? "," : "",
               bounds[i], (unsigned long long)cumulative);
    }
    append(out, "%s_sum{%s} %.6f\n%s_count{%s} %llu\n", name, labels, sum, name, labels,
           (unsigned long long)cumulative);
}

/* Open descriptors: the entries of /proc/self/fd but the one reading it; -1 if unknown. */
static long long count_open_fds(void)
{
    DIR *dir = opendir("/proc/self/fd");
    if (dir == NULL)
        return -1;
    long long count = 0;
    for (struct dirent *entry = readdir(dir); entry != NULL; entry = readdir(dir)) {
        if (entry->d_name[0] != '.')
            ++count;
    }
    closedir(dir);
    return count - 1;
}

/* The process collector's series, under the names every Prometheus client library uses;
 * a figure the kernel does not give is left out. */
static void append_process(text_buffer_t *out, const sk_metrics_t *metrics)
{
    struct rusage usage;
    if (getrusage(RUSAGE_SELF, &usage) == 0) {
        double cpu = (double)usage.ru_utime.tv_sec + (double)usage.ru_stime.tv_sec +
                     (double)(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
        append(out,
               "# HELP process_cpu_seconds_total Total user and system CPU time spent in "
               "seconds.\n# TYPE process_cpu_seconds_total counter\n"
               "process_cpu_seconds_total %.6f\n",
               cpu);
    }
    unsigned long long virtual_pages, resident_pages;
    FILE *file = fopen("/proc/self/statm", "re");
    if (file != NULL) {
        long page = sysconf(_SC_PAGESIZE);
        if (fscanf(file, "%llu %llu", &virtual_pages, &resident_pages) == 2 && page > 0)
            append(out,
                   "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
                   "# TYPE process_virtual_memory_bytes gauge\n"
                   "process_virtual_memory_bytes %llu\n"
                   "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                   "# TYPE process_resident_memory_bytes gauge\n"
                   "process_resident_memory_bytes %llu\n",
                   virtual_pages * (unsigned long long)page,
                   resident_pages * (unsigned long long)page);
        fclose(file);
    }
    long long open_fds = count_open_fds();
    if (open_fds >= 0)
        append(out,
               "# HELP process_open_fds Number of open file descriptors.\n"
               "# TYPE process_open_fds gauge\nprocess_open_fds %lld\n",
               open_fds);
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY)
        append(out,
               "# HELP process_max_fds Maximum number of open file descriptors.\n"
               "# TYPE process_max_fds gauge\nprocess_max_fds %llu\n",
               (unsigned long long)limit.rlim_cur);
    if (metrics->start_time >= 0)
        append(out,
               "# HELP process_start_time_seconds Start time of the process since unix epoch "
               "in seconds.\n# TYPE process_start_time_seconds gauge\n"
               "process_start_time_seconds %.2f\n",
               metrics->start_time);
}

char *sk_metrics_render(sk_metrics_t *metrics, const sk_store_stats_t *stats,
                        const char *deployment, size_t *len)
{
    static const char *const latency_bounds_text[SK_METRICS_LATENCY_BUCKETS] = {
        "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01",
        "0.025",  "0.05",    "0.1",    "0.25",  "0.5",    "1",     "+Inf"};
    static const char *const batch_bounds_text[8] = {"1",   "4",    "16",   "64",
                                                     "256", "1024", "4096", "+Inf"};
    static const char *const commit_bounds_text[8] = {"0.0001", "0.0003", "0.001", "0.003",
                                                      "0.01",   "0.03",   "0.1",   "+Inf"};
    uint64_t requests[SK_ROUTE_COUNT][SK_METRICS_STATUS_SLOTS] = {{0}};
    uint64_t latency[SK_ROUTE_COUNT][SK_METRICS_LATENCY_BUCKETS] = {{0}};
    uint64_t latency_sum[SK_ROUTE_COUNT] = {0};
    uint64_t grabs[SK_METRICS_GRAB_OUTCOMES] = {0};

    pthread_mutex_lock(&metrics->lock);
    for (sk_metrics_thread_t *t = metrics->threads; t != NULL; t = t->next) {
        for (int r = 0; r != SK_ROUTE_COUNT; ++r) {
            for (int s = 0; s != SK_METRICS_STATUS_SLOTS; ++s)
                requests[r][s] += atomic_load_explicit(&t->requests[r][s], memory_order_relaxed);
            for (int b = 0; b != SK_METRICS_LATENCY_BUCKETS; ++b)
                latency[r][b] += atomic_load_explicit(&t->latency[r][b], memory_order_relaxed);
            latency_sum[r] += atomic_load_explicit(&t->latency_usec_sum[r], memory_order_relaxed);
        }
        for (int g = 0; g != SK_METRICS_GRAB_OUTCOMES; ++g)
            grabs[g] += atomic_load_explicit(&t->grabs[g], memory_order_relaxed);
    }
    pthread_mutex_unlock(&metrics->lock);

    text_buffer_t out = {malloc(8192), 0, 8192, 0};
    if (out.bytes == NULL)
        return NULL;
    append(&out,
           "# HELP seckill_build_info The version of the running binary and its deployment; "
           "always 1.\n# TYPE seckill_build_info gauge\n"
           "seckill_build_info{version=\"%s\",deployment=\"%s\"} 1\n",
           SECKILL_VERSION, deployment);
    append(&out, "# HELP seckill_requests_total HTTP requests answered, by route and status.\n"
                 "# TYPE seckill_requests_total counter\n");
    for (int r = 0; r != SK_ROUTE_COUNT; ++r) {
        for (int s = 0; s != SK_METRICS_STATUS_SLOTS; ++s) {
            if (requests[r][s] == 0)
                continue;
            char status[8];
            if (status_codes[s] != 0)
                snprintf(status, sizeof(status), "%d", status_codes[s]);
            else
                strcpy(status, "other");
            append(&out, "seckill_requests_total{route=\"%s\",status=\"%s\"} %llu\n",
                   sk_router_name((sk_route_id_t)r), status, (unsigned long long)requests[r][s]);
        }
    }
    append(&out, "# HELP seckill_grabs_total Grab attempts by outcome.\n"
                 "# TYPE seckill_grabs_total counter\n");
    for (int g = 0; g != SK_METRICS_GRAB_OUTCOMES; ++g) {
        if (g == SK_STORE_DUPLICATE || g == SK_STORE_NOT_FOUND)
            continue;
        append(&out, "seckill_grabs_total{outcome=\"%s\"} %llu\n", grab_outcomes[g],
               (unsigned long long)grabs[g]);
    }
    append(&out, "# HELP seckill_request_duration_seconds Time from request to answer, by route.\n"
                 "# TYPE seckill_request_duration_seconds histogram\n");
    for (int r = 0; r != SK_ROUTE_COUNT; ++r) {
        char labels[48];
        snprintf(labels, sizeof(labels), "route=\"%s\"", sk_router_name((sk_route_id_t)r));
        append_histogram(&out, "seckill_request_duration_seconds", labels, latency[r],
                         latency_bounds_text, SK_METRICS_LATENCY_BUCKETS,
                         (double)latency_sum[r] / 1e6);
    }
    append(&out,
           "# HELP seckill_journal_backlog Changes waiting to be committed to the database.\n"
           "# TYPE seckill_journal_backlog gauge\nseckill_journal_backlog %llu\n"
           "# HELP seckill_journal_ops_total Changes committed.\n"
           "# TYPE seckill_journal_ops_total counter\nseckill_journal_ops_total %llu\n"
           "# HELP seckill_journal_failures_total Transactions that failed (backend errors).\n"
           "# TYPE seckill_journal_failures_total counter\nseckill_journal_failures_total %llu\n"
           "# HELP seckill_journal_lag_seconds Embedded: every change written to the grant logs "
           "longer ago than this is in SQLite (0 when none waits).\n"
           "# TYPE seckill_journal_lag_seconds gauge\nseckill_journal_lag_seconds %.3f\n"
           "# HELP seckill_grabs_waiting Grabs waiting for the outcome of a grant not written "
           "yet, which decides their answer.\n"
           "# TYPE seckill_grabs_waiting gauge\nseckill_grabs_waiting %llu\n",
           (unsigned long long)stats->journal_backlog, (unsigned long long)stats->journal_ops,
           (unsigned long long)stats->journal_failures, (double)stats->journal_lag_usec / 1e6,
           (unsigned long long)stats->grabs_waiting);
    append(&out,
           "# HELP seckill_backend_errors_total Calls to a backend of the distributed deployment "
           "that failed (unreachable, timed out, or an error).\n"
           "# TYPE seckill_backend_errors_total counter\n"
           "seckill_backend_errors_total{backend=\"redis\"} %llu\n"
           "seckill_backend_errors_total{backend=\"sql\"} %llu\n",
           (unsigned long long)stats->redis_errors, (unsigned long long)stats->sql_errors);
    append(&out, "# HELP seckill_journal_batch_size Changes per committed transaction.\n"
                 "# TYPE seckill_journal_batch_size histogram\n");
    append_histogram(&out, "seckill_journal_batch_size", "", stats->batch_size_buckets,
                     batch_bounds_text, 8, (double)stats->journal_ops);
    append(&out, "# HELP seckill_journal_commit_seconds Time to write and commit a batch.\n"
                 "# TYPE seckill_journal_commit_seconds histogram\n");
    append_histogram(&out, "seckill_journal_commit_seconds", "", stats->commit_usec_buckets,
                     commit_bounds_text, 8, (double)stats->commit_usec_sum / 1e6);
    sk_http_stats_t http;
    sk_http_stats(&http);
    append(&out,
           "# HELP seckill_connections_open Client connections open, all threads together.\n"
           "# TYPE seckill_connections_open gauge\nseckill_connections_open %llu\n"
           "# HELP seckill_connections_max The cap on open connections in effect "
           "(--max-connections, lowered to fit the file descriptor limit).\n"
           "# TYPE seckill_connections_max gauge\nseckill_connections_max %d\n"
           "# HELP seckill_connections_refused_total Connections answered 503 and closed "
           "because the cap was reached.\n"
           "# TYPE seckill_connections_refused_total counter\n"
           "seckill_connections_refused_total %llu\n",
           (unsigned long long)http.open_connections, http.max_connections,
           (unsigned long long)http.refused_connections);
    append_process(&out, metrics);
    if (out.failed) {
        free(out.bytes);
        return NULL;
    }
    *len = out.len;
    return out.bytes;
}
