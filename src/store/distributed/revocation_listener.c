/*
 * The distributed store's revocation listener (see store_redis_internal.h): one thread
 * that loads every unexpired revocation (and the deployment id) from SQL once, then follows
 * the sk:revocations stream, so that a logout on any instance is refused here too, and
 * tells the others through REVOCATIONS_SEEN_KEY how far it has applied the stream.
 */
#include <stdio.h>
#include <unistd.h>

#include "client/redis/sync.h"
#include "store/distributed/store_redis_internal.h"
#include "util/error.h"
#include "util/log.h"

#define LISTENER_STOP_MS 1000   /* the revocation listener sees a stop within this */
#define LISTENER_BLOCK_MS "250" /* its XREAD's BLOCK: well under LISTENER_STOP_MS */

/* The deployment id from SQL (ensure_schema made it if missing). Returns 0,
 * SK_EUNAVAILABLE when SQL did not answer, or SK_EINVAL when it holds something that is
 * not an id (logged). */
static int load_deployment_id(sk__redis_store_t *store, sk_mysql_t *sql)
{
    if (atomic_load(&store->deployment_known))
        return 0;
    char id[SK_STORE_DEPLOYMENT_ID_LEN + 2];
    sk_mysql_result_t result = sk_mysql_deployment_id(sql, id, sizeof(id));
    if (result != SK_MYSQL_OK || !sk_store_deployment_id_is_valid(id)) {
        if (result != SK_MYSQL_UNAVAILABLE)
            sk_log(SK_LOG_ERROR, "store",
                   "settings.deployment_id in SQL is missing or not %d lowercase hex digits; "
                   "delete that row to make a new one (every token issued so far becomes "
                   "invalid)",
                   SK_STORE_DEPLOYMENT_ID_LEN);
        return result == SK_MYSQL_UNAVAILABLE ? SK_EUNAVAILABLE : SK_EINVAL;
    }
    memcpy(store->deployment_id, id, sizeof(store->deployment_id));
    atomic_store_explicit(&store->deployment_known, 1, memory_order_release);
    return 0;
}

/* The listener's periodic step: every instance prunes its own memory (the persister
 * prunes SQL). */
static void prune_revocations(sk__redis_store_t *store, int64_t *next_prune_ms)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    if (now_ms < *next_prune_ms)
        return;
    *next_prune_ms = now_ms + sk_revocations_prune_interval_ms();
    size_t pruned =
        sk_revocations_prune(store->revoked, sk__unix_now() - SK_STORE_REVOCATION_GRACE);
    if (pruned != 0)
        sk_log(SK_LOG_INFO, "store", "pruned %zu expired revocations from memory", pruned);
}

static int load_revoked_row(void *data, const char *jti, int64_t expires_at)
{
    return sk_revocations_add(((sk__redis_store_t *)data)->revoked, jti, strlen(jti), expires_at) !=
           0;
}

/* Follows sk:revocations with a blocking XREAD (so another instance's logout is refused
 * here within a round trip), after loading every unexpired revocation from SQL once.
 * A stop must reach it within LISTENER_STOP_MS even when Redis hangs: the XREAD blocks
 * for less than that, its connection's I/O timeout is that, and the flag is read before
 * every call that may wait. */
static void *listener_main(void *arg)
{
    sk__redis_store_t *store = arg;
    sk_redis_sync_t *redis = NULL;
    char last_id[64] = "0", error[256];
    int sql_loaded = 0, stream_read = 0;
    int64_t next_prune_ms = 0;
    while (!atomic_load(&store->listener_stopping)) {
        prune_revocations(store, &next_prune_ms);
        if (!sql_loaded) {
            sk_mysql_t *sql =
                sk_mysql_connect(&store->mysql_config, SQL_TIMEOUT_MS, error, sizeof(error));
            if (sql != NULL && sk_mysql_ensure_schema(sql) == SK_MYSQL_OK &&
                load_deployment_id(store, sql) == 0 &&
                sk_mysql_revoked_each(sql, sk__unix_now() - SK_STORE_REVOCATION_GRACE,
                                      load_revoked_row, store) == SK_MYSQL_OK)
                sql_loaded = 1;
            if (sql != NULL)
                sk_mysql_close(sql);
            if (atomic_load(&store->listener_stopping))
                break;
        }
        if (redis == NULL) {
            redis =
                sk_redis_sync_connect(&store->redis_config, LISTENER_STOP_MS, error, sizeof(error));
            if (redis == NULL) {
                usleep(200 * 1000);
                continue;
            }
        }
        const char *argv[] = {"XREAD",
                              "COUNT",
                              "1000",
                              "BLOCK",
                              stream_read ? LISTENER_BLOCK_MS : "0",
                              "STREAMS",
                              SK_HOT_REVOCATIONS_KEY,
                              last_id};
        /* The first read does not block: it only catches up. */
        int argc = 8;
        if (!stream_read) {
            argv[3] = "STREAMS";
            argv[4] = SK_HOT_REVOCATIONS_KEY;
            argv[5] = last_id;
            argc = 6;
        }
        size_t lens[8];
        for (int i = 0; i != argc; ++i)
            lens[i] = strlen(argv[i]);
        redisReply *reply = sk_redis_sync_command(redis, SK_HOT_REVOCATIONS_KEY,
                                                  strlen(SK_HOT_REVOCATIONS_KEY), argc, argv, lens);
        if (reply == NULL) {
            usleep(200 * 1000);
            continue;
        }
        if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 1 &&
            reply->element[0]->type == REDIS_REPLY_ARRAY && reply->element[0]->elements == 2) {
            redisReply *entries = reply->element[0]->element[1];
            for (size_t i = 0; entries->type == REDIS_REPLY_ARRAY && i != entries->elements; ++i) {
                redisReply *entry = entries->element[i];
                if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 ||
                    entry->element[0]->type != REDIS_REPLY_STRING)
                    continue;
                snprintf(last_id, sizeof(last_id), "%s", entry->element[0]->str);
                redisReply *fields = entry->element[1];
                const redisReply *jti = NULL, *expires = NULL;
                for (size_t f = 0; fields->type == REDIS_REPLY_ARRAY && f + 1 < fields->elements;
                     f += 2) {
                    if (fields->element[f]->type != REDIS_REPLY_STRING)
                        continue;
                    if (strcmp(fields->element[f]->str, "j") == 0)
                        jti = fields->element[f + 1];
                    else if (strcmp(fields->element[f]->str, "e") == 0)
                        expires = fields->element[f + 1];
                }
                if (jti != NULL && jti->type == REDIS_REPLY_STRING && expires != NULL &&
                    sk__redis_reply_int(expires, 0) >= sk__unix_now() - SK_STORE_REVOCATION_GRACE)
                    sk_revocations_add(store->revoked, jti->str, jti->len,
                                       sk__redis_reply_int(expires, 0));
            }
        } else if (reply->type == REDIS_REPLY_NIL || reply->type == REDIS_REPLY_ARRAY) {
            stream_read = 1; /* caught up */
            if (sql_loaded)
                atomic_store(&store->revocations_loaded, 1);
        }
        freeReplyObject(reply);
        if (stream_read && !atomic_load(&store->listener_stopping)) {
            /* Applied up to last_id: logouts on other instances may answer now. */
            struct timespec now;
            clock_gettime(CLOCK_REALTIME, &now);
            char seen[96];
            snprintf(seen, sizeof(seen), "%s %lld", last_id,
                     (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000);
            const char *hset[] = {"HSET", REVOCATIONS_SEEN_KEY, store->consumer, seen};
            redisReply *written = sk_hot_command(redis, -1, 4, hset);
            if (written != NULL)
                freeReplyObject(written);
        }
    }
    if (redis != NULL)
        sk_redis_sync_close(redis);
    return NULL;
}

int sk__revocation_listener_start(sk__redis_store_t *store)
{
    int error = pthread_create(&store->listener, NULL, listener_main, store);
    if (error != 0) {
        sk_log(SK_LOG_ERROR, "store", "pthread_create failed: %s", strerror(error));
        return SK_EIO;
    }
    store->listener_started = 1;
    return 0;
}

void sk__revocation_listener_stop(sk__redis_store_t *store)
{
    atomic_store(&store->listener_stopping, 1);
    if (store->listener_started) {
        pthread_join(store->listener, NULL);
        store->listener_started = 0;
    }
}
