/*
 * The persister (see persister.h): Redis grant streams → MySQL, idempotently.
 */
#include "store/distributed/persister.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "store/revocations.h"
#include "util/log.h"

#define READ_COUNT "1000" /* entries per shard per step */
#define IDLE_SLEEP_USEC 20000
#define FAILURE_SLEEP_USEC 200000
#define STOP_GRACE_USEC 1000000 /* a stopping persister starts no step after this */
#define FENCE_WAIT_MS 500       /* the replicas get this long to hold what was read */

struct sk_persister {
    sk_persister_config_t config;
    pthread_t thread;
    _Atomic int stopping;
};

typedef struct step_batch {
    redisReply *replies[2 * SK_HOT_SHARDS]; /* kept until acked: grants point into them */
    size_t reply_count;
    struct ordered_grant {
        sk_mysql_grant_t grant;
        int64_t order; /* the grab order the script recorded */
    } * grants;
    size_t grant_count, grant_capacity;
    /* ids to acknowledge, per shard (pointers into replies) */
    const char **ids[SK_HOT_SHARDS];
    size_t *id_lens[SK_HOT_SHARDS];
    size_t id_count[SK_HOT_SHARDS], id_capacity[SK_HOT_SHARDS];
} step_batch_t;

static int push_id(step_batch_t *batch, unsigned shard, const char *id, size_t len)
{
    if (batch->id_count[shard] == batch->id_capacity[shard]) {
        size_t capacity = batch->id_capacity[shard] ? batch->id_capacity[shard] * 2 : 64;
        const char **ids = realloc(batch->ids[shard], capacity * sizeof(*ids));
        if (ids == NULL)
            return -1;
        batch->ids[shard] = ids;
        size_t *lens = realloc(batch->id_lens[shard], capacity * sizeof(*lens));
        if (lens == NULL)
            return -1;
        batch->id_lens[shard] = lens;
        batch->id_capacity[shard] = capacity;
    }
    batch->ids[shard][batch->id_count[shard]] = id;
    batch->id_lens[shard][batch->id_count[shard]++] = len;
    return 0;
}

/* The number at the start of `text` (`len` bytes), or -1. */
static int64_t packed_number(const char *text, size_t len)
{
    int64_t value = 0;
    if (len == 0 || len > 19)
        return -1;
    for (size_t i = 0; i != len; ++i) {
        if (text[i] < '0' || text[i] > '9')
            return -1;
        value = value * 10 + (text[i] - '0');
    }
    return value;
}

/* One grant "CUSTOMER\nSELLER\nNAME\nLEFT\nT\nORDER" (see hot_state.h); its strings point
 * into the reply. */
static int add_grant(step_batch_t *batch, const redisReply *id, const redisReply *value)
{
    const char *parts[6];
    size_t lens[6], count = 0;
    const char *at = value->str, *end = value->str + value->len;
    while (count != 6) {
        const char *newline = memchr(at, '\n', (size_t)(end - at));
        const char *stop = newline != NULL ? newline : end;
        parts[count] = at;
        lens[count++] = (size_t)(stop - at);
        if (newline == NULL)
            break;
        at = newline + 1;
    }
    sk_mysql_grant_t grant = {
        .customer = parts[0],
        .customer_len = lens[0],
        .seller = parts[1],
        .seller_len = count > 1 ? lens[1] : 0,
        .coupon = parts[2],
        .coupon_len = count > 2 ? lens[2] : 0,
    };
    int64_t order = -1;
    if (count == 6) {
        grant.remaining = packed_number(parts[3], lens[3]);
        grant.granted_at = packed_number(parts[4], lens[4]);
        order = packed_number(parts[5], lens[5]);
    }
    if (count != 6 || grant.customer_len == 0 || grant.seller_len == 0 || grant.coupon_len == 0 ||
        grant.remaining < 0 || grant.granted_at < 0 || order < 0) {
        sk_log(SK_LOG_ERROR, "persister", "skipping a malformed grant in stream entry %.*s",
               (int)id->len, id->str);
        return 0;
    }
    if (batch->grant_count == batch->grant_capacity) {
        size_t capacity = batch->grant_capacity ? batch->grant_capacity * 2 : 256;
        struct ordered_grant *grown = realloc(batch->grants, capacity * sizeof(*grown));
        if (grown == NULL)
            return -1;
        batch->grants = grown;
        batch->grant_capacity = capacity;
    }
    batch->grants[batch->grant_count++] = (struct ordered_grant){grant, order};
    return 0;
}

/* One stream entry [id, [field, value, ...]] (fields nil: deleted, only acknowledged):
 * the grants of one batch of grabs, one field `g` each. */
static int add_entry(step_batch_t *batch, unsigned shard, const redisReply *entry)
{
    if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 ||
        entry->element[0]->type != REDIS_REPLY_STRING)
        return 0;
    const redisReply *id = entry->element[0], *fields = entry->element[1];
    if (push_id(batch, shard, id->str, id->len) != 0)
        return -1;
    if (fields->type != REDIS_REPLY_ARRAY)
        return 0;
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *name = fields->element[i], *value = fields->element[i + 1];
        if (name->type != REDIS_REPLY_STRING || value->type != REDIS_REPLY_STRING ||
            name->len != 1 || name->str[0] != 'g') {
            sk_log(SK_LOG_ERROR, "persister", "skipping an unknown field in stream entry %.*s",
                   (int)id->len, id->str);
            continue;
        }
        if (add_grant(batch, id, value) != 0)
            return -1;
    }
    return 0;
}

static int add_entries(step_batch_t *batch, unsigned shard, const redisReply *entries)
{
    if (entries->type != REDIS_REPLY_ARRAY)
        return 0;
    for (size_t i = 0; i != entries->elements; ++i)
        if (add_entry(batch, shard, entries->element[i]) != 0)
            return -1;
    return 0;
}

static int is_error(const redisReply *reply, const char *prefix)
{
    return reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, prefix, strlen(prefix)) == 0;
}

static int create_group(sk_redis_sync_t *redis, const char *key, size_t key_len)
{
    /* From id 0: entries written before the group existed are persisted too. */
    const char *argv[] = {"XGROUP", "CREATE", key, SK_HOT_GROUP, "0", "MKSTREAM"};
    size_t lens[] = {6, 6, key_len, strlen(SK_HOT_GROUP), 1, 8};
    redisReply *reply = sk_redis_sync_command(redis, key, key_len, 6, argv, lens);
    if (reply == NULL)
        return -1;
    int status = reply->type == REDIS_REPLY_ERROR && !is_error(reply, "BUSYGROUP") ? -1 : 0;
    if (status != 0)
        sk_log(SK_LOG_ERROR, "persister", "XGROUP CREATE failed: %s", reply->str);
    freeReplyObject(reply);
    return status;
}

/* Reads one shard: XREADGROUP (own pending with "0", new with ">"), retried once after
 * creating the group when it is missing (new stream, or Redis lost its data). */
static int read_shard(step_batch_t *batch, sk_redis_sync_t *redis, const char *key, size_t key_len,
                      unsigned shard, const char *consumer, const char *from)
{
    const char *argv[] = {"XREADGROUP", "GROUP",   SK_HOT_GROUP, consumer, "COUNT",
                          READ_COUNT,   "STREAMS", key,          from};
    size_t lens[] = {10, 5,       strlen(SK_HOT_GROUP), strlen(consumer), 5, strlen(READ_COUNT),
                     7,  key_len, strlen(from)};
    for (int attempt = 0; attempt != 2; ++attempt) {
        redisReply *reply = sk_redis_sync_command(redis, key, key_len, 9, argv, lens);
        if (reply == NULL)
            return -1;
        if (is_error(reply, "NOGROUP") && attempt == 0) {
            freeReplyObject(reply);
            if (create_group(redis, key, key_len) != 0)
                return -1;
            continue;
        }
        if (reply->type == REDIS_REPLY_ERROR) {
            sk_log(SK_LOG_ERROR, "persister", "XREADGROUP failed: %s", reply->str);
            freeReplyObject(reply);
            return -1;
        }
        batch->replies[batch->reply_count++] = reply;
        /* [[key, [entries]]] or nil */
        if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 1 &&
            reply->element[0]->type == REDIS_REPLY_ARRAY && reply->element[0]->elements == 2)
            return add_entries(batch, shard, reply->element[0]->element[1]);
        return 0;
    }
    return -1;
}

static int claim_shard(step_batch_t *batch, sk_redis_sync_t *redis, const char *key, size_t key_len,
                       unsigned shard, const char *consumer, unsigned idle_ms)
{
    char idle[16];
    snprintf(idle, sizeof(idle), "%u", idle_ms);
    const char *argv[] = {"XAUTOCLAIM", key,   SK_HOT_GROUP, consumer,
                          idle,         "0-0", "COUNT",      READ_COUNT};
    size_t lens[] = {10, key_len, strlen(SK_HOT_GROUP), strlen(consumer), strlen(idle),
                     3,  5,       strlen(READ_COUNT)};
    redisReply *reply = sk_redis_sync_command(redis, key, key_len, 8, argv, lens);
    if (reply == NULL)
        return -1;
    if (reply->type == REDIS_REPLY_ERROR) {
        /* NOGROUP: nothing was ever pending here. */
        int status = is_error(reply, "NOGROUP") ? 0 : -1;
        if (status != 0)
            sk_log(SK_LOG_ERROR, "persister", "XAUTOCLAIM failed: %s", reply->str);
        freeReplyObject(reply);
        return status;
    }
    batch->replies[batch->reply_count++] = reply;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements >= 2) {
        if (reply->element[1]->type == REDIS_REPLY_ARRAY && reply->element[1]->elements != 0)
            sk_log(SK_LOG_WARN, "persister",
                   "claimed %zu grants another instance left pending (it stopped)",
                   reply->element[1]->elements);
        return add_entries(batch, shard, reply->element[1]);
    }
    return 0;
}

static int ack_shard(step_batch_t *batch, const sk_hot_state_t *hot, sk_redis_sync_t *redis,
                     const char *key, size_t key_len, unsigned shard)
{
    if (batch->id_count[shard] == 0)
        return 0;
    const char *keys[] = {key};
    size_t key_lens[] = {key_len};
    redisReply *reply =
        sk_redis_sync_eval(redis, &hot->ack, 1, keys, key_lens, (int)batch->id_count[shard],
                           batch->ids[shard], batch->id_lens[shard]);
    int status = reply != NULL && reply->type == REDIS_REPLY_INTEGER ? 0 : -1;
    if (reply != NULL) {
        if (reply->type == REDIS_REPLY_ERROR)
            sk_log(SK_LOG_ERROR, "persister", "acknowledging failed: %s", reply->str);
        freeReplyObject(reply);
    }
    return status;
}

static int compare_order(const void *a, const void *b)
{
    const struct ordered_grant *left = a, *right = b;
    return (left->order > right->order) - (left->order < right->order);
}

/* Whether the replicas hold every entry read from the shards that gave some: one fence per
 * shard on a Cluster (each master has its own replicas), one in all on a single master. */
static int replicas_hold(const step_batch_t *batch, const sk_hot_state_t *hot,
                         sk_redis_sync_t *redis, int wait_replicas)
{
    for (unsigned shard = 0; shard != SK_HOT_SHARDS; ++shard) {
        if (batch->id_count[shard] == 0)
            continue;
        char fence[SK_HOT_KEY_MAX];
        size_t fence_len = sk_hot_key(fence, hot, shard, 'f', NULL, 0, NULL, 0);
        int acknowledged =
            sk_redis_sync_fence(redis, fence, fence_len, wait_replicas, FENCE_WAIT_MS);
        if (acknowledged < wait_replicas) {
            sk_log(SK_LOG_WARN, "persister",
                   "%d of %d Redis replicas hold the grants read (WAIT %d ms): not writing "
                   "them to SQL yet",
                   acknowledged < 0 ? 0 : acknowledged, wait_replicas, FENCE_WAIT_MS);
            return 0;
        }
        /* One master holds every shard: its fence covers them all. */
        if (!sk_redis_sync_is_cluster(redis))
            break;
    }
    return 1;
}

long sk_persister_step(const sk_hot_state_t *hot, sk_redis_sync_t *redis, sk_mysql_t *sql,
                       const char *consumer, unsigned claim_idle_ms, int flags, int wait_replicas,
                       sk_store_counters_t *counters, int *sql_failed)
{
    step_batch_t batch = {0};
    sk_mysql_grant_t *grants = NULL;
    long result = -1;
    char keys[SK_HOT_SHARDS][SK_HOT_KEY_MAX];
    size_t key_lens[SK_HOT_SHARDS];
    *sql_failed = 0;
    for (unsigned shard = 0; shard != SK_HOT_SHARDS; ++shard) {
        key_lens[shard] = sk_hot_key(keys[shard], hot, shard, 'g', NULL, 0, NULL, 0);
        const char *from = (flags & SK_PERSIST_OWN_PENDING) ? "0" : ">";
        if (read_shard(&batch, redis, keys[shard], key_lens[shard], shard, consumer, from) != 0)
            goto done;
        if ((flags & SK_PERSIST_CLAIM) && claim_shard(&batch, redis, keys[shard], key_lens[shard],
                                                      shard, consumer, claim_idle_ms) != 0)
            goto done;
    }
    if (batch.grant_count != 0 && wait_replicas > 0 &&
        !replicas_hold(&batch, hot, redis, wait_replicas))
        goto done; /* pending still: read again at the next step */
    if (batch.grant_count != 0) {
        int64_t started = sk_store_monotonic_usec();
        atomic_store_explicit(&counters->backlog, batch.grant_count, memory_order_relaxed);
        /* Rows in grab order across the shards: their ids are the order a rebuild restores. */
        qsort(batch.grants, batch.grant_count, sizeof(batch.grants[0]), compare_order);
        grants = malloc(batch.grant_count * sizeof(*grants));
        if (grants == NULL)
            goto done;
        for (size_t i = 0; i != batch.grant_count; ++i)
            grants[i] = batch.grants[i].grant;
        sk_mysql_result_t applied = sk_mysql_grants_apply(sql, grants, batch.grant_count, NULL);
        if (applied != SK_MYSQL_OK) {
            sk_log(SK_LOG_ERROR, "persister", "writing %zu grants to SQL failed: %s",
                   batch.grant_count, sk_mysql_error(sql));
            atomic_fetch_add_explicit(&counters->failures, 1, memory_order_relaxed);
            *sql_failed = 1;
            goto done;
        }
        sk_store_counters_batch(counters, batch.grant_count,
                                (uint64_t)(sk_store_monotonic_usec() - started));
    }
    for (unsigned shard = 0; shard != SK_HOT_SHARDS; ++shard)
        if (ack_shard(&batch, hot, redis, keys[shard], key_lens[shard], shard) != 0)
            goto done;
    atomic_store_explicit(&counters->backlog, 0, memory_order_relaxed);
    result = (long)batch.grant_count;
done:
    for (size_t i = 0; i != batch.reply_count; ++i)
        freeReplyObject(batch.replies[i]);
    for (unsigned shard = 0; shard != SK_HOT_SHARDS; ++shard) {
        free(batch.ids[shard]);
        free(batch.id_lens[shard]);
    }
    free(batch.grants);
    free(grants);
    return result;
}

/* ---- the thread ---- */

static void pause_unless_stopping(sk_persister_t *persister, useconds_t usec)
{
    if (!atomic_load(&persister->stopping))
        usleep(usec);
}

static void *persister_main(void *arg)
{
    sk_persister_t *persister = arg;
    sk_persister_config_t *config = &persister->config;
    sk_persister_health_t *health = config->health;
    sk_redis_sync_t *redis = NULL;
    sk_mysql_t *sql = NULL;
    int schema_ready = 0, aof_checked = 0, own_pending = 1;
    int64_t last_check = 0, last_claim = 0, last_prune = 0;
    int64_t prune_usec = (int64_t)sk_revocations_prune_interval_ms() * 1000;
    int pruned_once = 0;
    char error[256];

    int64_t stop_seen = 0;
    for (;;) {
        int stopping = atomic_load(&persister->stopping);
        if (stopping) {
            /* The copy at a stop is a courtesy (every grant is durable in Redis, and the
             * next persister copies what is left): it gets STOP_GRACE_USEC, not a wait on
             * a backend that hangs. */
            int64_t now = sk_store_monotonic_usec();
            if (stop_seen == 0)
                stop_seen = now;
            else if (now - stop_seen > STOP_GRACE_USEC)
                break;
        }
        if (redis == NULL) {
            redis = sk_redis_sync_connect(config->redis, 2000, error, sizeof(error));
            if (redis != NULL)
                atomic_store(&health->redis_cluster, sk_redis_sync_is_cluster(redis));
            if (redis == NULL) {
                atomic_store(&health->redis_ok, 0);
                atomic_fetch_add(&health->redis_errors, 1);
                sk_log(SK_LOG_WARN, "persister", "Redis unreachable: %s", error);
                if (stopping)
                    break;
                usleep(FAILURE_SLEEP_USEC);
                continue;
            }
        }
        if (sql == NULL || !schema_ready) {
            if (sql == NULL)
                sql = sk_mysql_connect(config->mysql, 2000, error, sizeof(error));
            if (sql == NULL || sk_mysql_ensure_schema(sql) != SK_MYSQL_OK) {
                atomic_store(&health->sql_ok, 0);
                atomic_fetch_add(&health->sql_errors, 1);
                sk_log(SK_LOG_WARN, "persister", "SQL unreachable: %s",
                       sql == NULL ? error : sk_mysql_error(sql));
                if (stopping)
                    break;
                usleep(FAILURE_SLEEP_USEC);
                continue;
            }
            schema_ready = 1;
            atomic_store(&health->sql_ok, 1);
        }
        if (!aof_checked) {
            sk_hot_state_check_aof(redis);
            sk_hot_state_check_replicas(redis, config->wait_replicas);
            aof_checked = 1;
        }
        int64_t now = sk_store_monotonic_usec();
        if (!stopping && now - last_check >= 1000000) {
            /* Once a second: is the hot state there (Redis may have lost it), does SQL answer
             * (a quiet persister would not notice otherwise)? */
            last_check = now;
            int ensured = sk_hot_state_ensure(config->hot, redis, sql, &persister->stopping);
            atomic_store(&health->hot_state_ok, ensured >= 0);
            if (ensured < 0)
                atomic_store(&health->redis_ok, 0);
            atomic_store(&health->sql_ok, sk_mysql_ping(sql));
        }
        if (!stopping && (!pruned_once || now - last_prune >= prune_usec)) {
            /* At start and then periodically: expired revocations leave SQL. Every instance
             * does it; deleting twice deletes nothing more. */
            last_prune = now;
            pruned_once = 1;
            uint64_t deleted = 0;
            if (sk_mysql_revoked_prune(sql, (int64_t)time(NULL) - SK_STORE_REVOCATION_GRACE,
                                       &deleted) == SK_MYSQL_OK &&
                deleted != 0)
                sk_log(SK_LOG_INFO, "persister",
                       "deleted %llu expired revocations from revoked_tokens",
                       (unsigned long long)deleted);
        }
        int flags = own_pending ? SK_PERSIST_OWN_PENDING : 0;
        if (now - last_claim >= 2000000) {
            last_claim = now;
            flags |= SK_PERSIST_CLAIM;
        }
        int sql_failed = 0;
        long written =
            sk_persister_step(config->hot, redis, sql, config->consumer, config->claim_idle_ms,
                              flags, config->wait_replicas, config->counters, &sql_failed);
        if (written < 0) {
            own_pending = 1; /* what was read stays pending on this consumer: re-read it */
            if (sql_failed) {
                atomic_store(&health->sql_ok, 0);
                atomic_fetch_add(&health->sql_errors, 1);
            } else {
                atomic_store(&health->redis_ok, 0);
                atomic_fetch_add(&health->redis_errors, 1);
            }
            if (stopping)
                break;
            usleep(FAILURE_SLEEP_USEC);
            continue;
        }
        atomic_store(&health->redis_ok, 1);
        if (!sql_failed && written > 0)
            atomic_store(&health->sql_ok, 1);
        /* After reading its own pending entries (all written now), read new ones. */
        if (own_pending) {
            own_pending = 0;
            continue;
        }
        if (written == 0) {
            if (stopping)
                break; /* drained: nothing more could be read */
            pause_unless_stopping(persister, IDLE_SLEEP_USEC);
        }
    }
    if (sql != NULL)
        sk_mysql_close(sql);
    if (redis != NULL)
        sk_redis_sync_close(redis);
    return NULL;
}

sk_persister_t *sk_persister_start(const sk_persister_config_t *config)
{
    sk_persister_t *persister = calloc(1, sizeof(*persister));
    if (persister == NULL)
        return NULL;
    persister->config = *config;
    if (pthread_create(&persister->thread, NULL, persister_main, persister) != 0) {
        sk_log(SK_LOG_ERROR, "persister", "pthread_create failed");
        free(persister);
        return NULL;
    }
    return persister;
}

void sk_persister_stop(sk_persister_t *persister)
{
    atomic_store(&persister->stopping, 1);
    pthread_join(persister->thread, NULL);
    free(persister);
}
