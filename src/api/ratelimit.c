/*
 * The per-user token buckets behind the grab route's 429 (see ratelimit.h). A bucket keeps
 * whole tokens and, in integer nanoseconds, the progress towards the next one: no floating
 * point drifts across refills, so a test with an injected clock sees exact counts and an
 * exact wait.
 */
#include "api/ratelimit.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "util/index.h"
#include "util/log.h"

#define SHARD_BITS 6
#define SHARD_COUNT (1 << SHARD_BITS)
#define SHARD_MAX (SK_RATELIMIT_MAX_USERS / SHARD_COUNT) /* buckets, and chains, per shard */
#define SWEEP_FLOOR 64 /* a shard this small is not worth sweeping */
/* The longest period and time to fill: sums of two of them cannot overflow. */
#define MAX_NSEC (INT64_MAX / 4)

typedef struct bucket {
    struct bucket *next;
    uint64_t hash;
    int64_t tokens;       /* whole tokens, 0..burst */
    int64_t credit_nsec;  /* refill time towards the next token, 0..period-1; 0 when full */
    int64_t updated_usec; /* the time `tokens` and `credit_nsec` are true for */
    size_t len;
    char user[];
} bucket_t;

typedef struct shard {
    /* Aligned so that two shards' mutexes never share a cache line. */
    _Alignas(64) pthread_mutex_t lock;
    bucket_t **chains; /* SHARD_MAX of them */
    size_t count;
    size_t sweep_at; /* the count that triggers the next sweep */
} shard_t;

struct sk_ratelimit {
    int64_t burst;
    int64_t period_nsec; /* one token's refill time */
    int64_t fill_nsec;   /* empty to full: burst periods, at most MAX_NSEC */
    atomic_flag cap_reached;
    shard_t shards[SHARD_COUNT];
};

sk_ratelimit_t *sk_ratelimit_create(double rate, int64_t burst)
{
    if (!(rate > 0) || !isfinite(rate) || burst < 1)
        return NULL;
    /* aligned_alloc wants a multiple of the alignment, which sizeof already is. */
    sk_ratelimit_t *limiter = aligned_alloc(_Alignof(sk_ratelimit_t), sizeof(*limiter));
    if (limiter == NULL)
        return NULL;
    memset(limiter, 0, sizeof(*limiter));
    atomic_flag_clear(&limiter->cap_reached);
    limiter->burst = burst;
    double period = round(1e9 / rate);
    limiter->period_nsec = period < 1 ? 1 : period > (double)MAX_NSEC ? MAX_NSEC : (int64_t)period;
    limiter->fill_nsec =
        burst > MAX_NSEC / limiter->period_nsec ? MAX_NSEC : burst * limiter->period_nsec;
    int shards_ready = 0;
    for (; shards_ready != SHARD_COUNT; ++shards_ready) {
        shard_t *shard = &limiter->shards[shards_ready];
        shard->chains = calloc(SHARD_MAX, sizeof(bucket_t *));
        if (shard->chains == NULL)
            goto fail;
        if (pthread_mutex_init(&shard->lock, NULL) != 0) {
            free(shard->chains);
            goto fail;
        }
        shard->sweep_at = SWEEP_FLOOR;
    }
    return limiter;
fail:
    while (shards_ready-- > 0) {
        pthread_mutex_destroy(&limiter->shards[shards_ready].lock);
        free(limiter->shards[shards_ready].chains);
    }
    free(limiter);
    return NULL;
}

void sk_ratelimit_destroy(sk_ratelimit_t *limiter)
{
    if (limiter == NULL)
        return;
    for (int s = 0; s != SHARD_COUNT; ++s) {
        shard_t *shard = &limiter->shards[s];
        for (size_t c = 0; c != SHARD_MAX; ++c) {
            bucket_t *bucket = shard->chains[c];
            while (bucket != NULL) {
                bucket_t *next = bucket->next;
                free(bucket);
                bucket = next;
            }
        }
        free(shard->chains);
        pthread_mutex_destroy(&shard->lock);
    }
    free(limiter);
}

/* Brings a bucket to `now_usec`: the tokens refilled since its last update. */
static void refill(const sk_ratelimit_t *limiter, bucket_t *bucket, int64_t now_usec)
{
    /* Two threads may read the clock in one order and take the lock in the other: time
     * never runs back for a bucket. */
    if (now_usec <= bucket->updated_usec)
        return;
    int64_t elapsed_usec = now_usec - bucket->updated_usec;
    bucket->updated_usec = now_usec;
    if (bucket->tokens == limiter->burst)
        return;
    /* Beyond the time to fill from empty, the bucket is full whatever it held; below it,
     * the nanoseconds cannot overflow. */
    if (elapsed_usec <= limiter->fill_nsec / 1000) {
        int64_t progress_nsec = bucket->credit_nsec + elapsed_usec * 1000;
        int64_t refilled = progress_nsec / limiter->period_nsec;
        if (refilled < limiter->burst - bucket->tokens) {
            bucket->tokens += refilled;
            bucket->credit_nsec = progress_nsec % limiter->period_nsec;
            return;
        }
    }
    /* A full bucket does not bank refill time: the burst is the most a user ever gets. */
    bucket->tokens = limiter->burst;
    bucket->credit_nsec = 0;
}

/* Nanoseconds until a refilled bucket is full again (0 when full), at most MAX_NSEC. */
static int64_t nsec_to_full(const sk_ratelimit_t *limiter, const bucket_t *bucket)
{
    int64_t missing = limiter->burst - bucket->tokens;
    if (missing == 0)
        return 0;
    if (missing > MAX_NSEC / limiter->period_nsec)
        return MAX_NSEC;
    return missing * limiter->period_nsec - bucket->credit_nsec;
}

/* The number of bits of a wait: buckets are ranked by it, which needs no sort. */
static int wait_rank(int64_t wait_nsec)
{
    return wait_nsec == 0 ? 0 : 64 - __builtin_clzll((unsigned long long)wait_nsec);
}

/* Unlinks and frees the buckets of a shard whose wait_rank is below `below_rank`; the
 * others are counted by rank into `by_rank` (when not NULL). Buckets are refilled first. */
static void drop_buckets(const sk_ratelimit_t *limiter, shard_t *shard, int64_t now_usec,
                         int below_rank, size_t *by_rank)
{
    for (size_t c = 0; c != SHARD_MAX; ++c) {
        bucket_t **link = &shard->chains[c];
        while (*link != NULL) {
            bucket_t *bucket = *link;
            refill(limiter, bucket, now_usec);
            int rank = wait_rank(nsec_to_full(limiter, bucket));
            if (rank < below_rank) {
                *link = bucket->next;
                free(bucket);
                --shard->count;
                continue;
            }
            if (by_rank != NULL)
                ++by_rank[rank];
            link = &bucket->next;
        }
    }
}

/*
 * Makes room in a shard before it takes a new bucket. Full buckets (rank 0) go: dropping
 * them changes no answer. A shard still at its cap then drops the buckets nearest to full,
 * whole ranks at a time, down to seven eighths of the cap. A sweep walks the buckets it
 * drops, each paid for by its own creation, and those it keeps, at most seven times as many
 * as the new buckets before the next sweep: a constant cost per new bucket.
 */
static void sweep(sk_ratelimit_t *limiter, shard_t *shard, int64_t now_usec)
{
    size_t by_rank[65] = {0};
    drop_buckets(limiter, shard, now_usec, 1, by_rank);
    if (shard->count == SHARD_MAX) {
        const size_t keep = SHARD_MAX - SHARD_MAX / 8;
        size_t excess = shard->count - keep, dropping = 0;
        int below_rank = 1;
        while (dropping < excess)
            dropping += by_rank[below_rank++];
        /* Once: under such a load a line per sweep would flood the log. */
        if (!atomic_flag_test_and_set(&limiter->cap_reached))
            sk_log(SK_LOG_WARN, "ratelimit",
                   "a shard holds %d users not yet refilled: forgetting the %zu nearest to a "
                   "full bucket (logged once)",
                   SHARD_MAX, dropping);
        drop_buckets(limiter, shard, now_usec, below_rank, NULL);
    }
    size_t next = shard->count * 2;
    shard->sweep_at = next < SWEEP_FLOOR ? SWEEP_FLOOR : next > SHARD_MAX ? SHARD_MAX : next;
}

int sk_ratelimit_take(sk_ratelimit_t *limiter, const char *user, size_t len, int64_t now_usec,
                      int64_t *retry_after_usec)
{
    uint64_t hash = sk_index_hash(user, len);
    /* The high bits pick the shard, the low ones the chain: independent of each other. */
    shard_t *shard = &limiter->shards[hash >> (64 - SHARD_BITS)];
    bucket_t **chain = &shard->chains[hash & (SHARD_MAX - 1)];
    int allowed = 1;
    pthread_mutex_lock(&shard->lock);
    bucket_t *bucket = *chain;
    while (bucket != NULL &&
           (bucket->hash != hash || bucket->len != len || memcmp(bucket->user, user, len) != 0))
        bucket = bucket->next;
    if (bucket != NULL) {
        refill(limiter, bucket, now_usec);
    } else {
        if (shard->count >= shard->sweep_at)
            sweep(limiter, shard, now_usec);
        bucket = malloc(sizeof(*bucket) + len);
        if (bucket == NULL)
            goto out; /* allowed: the limit protects the service, it is not a guarantee */
        bucket->hash = hash;
        bucket->tokens = limiter->burst; /* a user never seen, or forgotten when full */
        bucket->credit_nsec = 0;
        bucket->updated_usec = now_usec;
        bucket->len = len;
        memcpy(bucket->user, user, len);
        bucket->next = *chain;
        *chain = bucket;
        ++shard->count;
    }
    if (bucket->tokens > 0) {
        --bucket->tokens;
    } else {
        allowed = 0;
        *retry_after_usec = (limiter->period_nsec - bucket->credit_nsec + 999) / 1000;
    }
out:
    pthread_mutex_unlock(&shard->lock);
    if (bucket == NULL)
        sk_log(SK_LOG_WARN, "ratelimit", "malloc failed for a new bucket: grab allowed");
    return allowed;
}

size_t sk_ratelimit_users(sk_ratelimit_t *limiter)
{
    size_t users = 0;
    for (int s = 0; s != SHARD_COUNT; ++s) {
        pthread_mutex_lock(&limiter->shards[s].lock);
        users += limiter->shards[s].count;
        pthread_mutex_unlock(&limiter->shards[s].lock);
    }
    return users;
}
