/*
 * The distributed deployment's hot state in Redis (see hot_state.h): key names, scripts,
 * and the loader that rebuilds it from SQL.
 */
#include "store/distributed/hot_state.h"

#include <assert.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/error.h"
#include "util/index.h"
#include "store/distributed/sql_snapshot.h"
#include "util/log.h"

/* Checks run in API.md's order: no such coupon, window, sold out, already held. A coupon
 * still being rebuilt answers LOADING, never a wrong "no such coupon". The grant, its
 * holder, the customer's holding and the stream entry that makes it durable are one
 * atomic step. The holding's score orders a customer's list by grab time: Redis's clock in
 * microseconds (a stream id's milliseconds would tie across shards); the stream entry
 * carries it as `o` so that the persister writes SQL rows in the same order. */
/*
 * A batch of grabs in one call: a worker sends the grabs that arrive in one turn of its
 * loop together (those of one shard on a Redis Cluster, where one call must stay in one
 * slot; all of them on a standalone Redis), which spares Redis most of the per-call cost
 * (measured at 256 connections: 17.8 us of Redis CPU per grab with one call each, 9.1 in
 * batches).
 *
 * KEYS: per grab: coupon, the customer's holdings, the shard's stream.
 * ARGV: per grab: customer, seller, name, "seller/name", now (Unix seconds).
 * Reply: per grab one string "code left start end" (start and end "-" when absent): one
 * reply object per grab for the client to parse, not five.
 *
 * Checks run in API.md's order: no such coupon, window, sold out, already held. A coupon
 * still being rebuilt answers LOADING, never a wrong "no such coupon". ZADD NX into the
 * customer's holdings is the already-held check and the holding's record at once. Each
 * coupon's hash is read once and written once per batch; each stream gets one entry for
 * the batch's grants in it, one field `g` per grant (see hot_state.h). The grants, the
 * holdings and the stream entries that make them durable are one atomic step. A
 * holding's score orders a customer's list by grab time: Redis's clock in microseconds
 * plus the grant's place in the batch; the stream carries it so that the persister writes
 * SQL rows in the same order.
 */
static const char grab_source[] =
    "local time = redis.call('TIME')\n"
    "local base = tonumber(time[1]) * 1000000 + tonumber(time[2])\n"
    "local coupons, dirty, out, entries, granted = {}, {}, {}, {}, 0\n"
    "for i = 0, #KEYS / 3 - 1 do\n"
    "  local ck, uk, sk = KEYS[1 + 3 * i], KEYS[2 + 3 * i], KEYS[3 + 3 * i]\n"
    "  local now = tonumber(ARGV[5 + 5 * i])\n"
    "  local c = coupons[ck]\n"
    "  if c == nil then\n"
    "    local h = redis.call('HMGET', ck, 'left', 'start', 'end', 'loading')\n"
    "    c = {h[1] and tonumber(h[1]), h[2] or '', h[3] or '', h[4]}\n"
    "    coupons[ck] = c\n"
    "  end\n"
    "  local code, order = 5, nil\n"
    "  if not c[1] then code = 1\n"
    "  elseif c[4] then code = 6\n"
    "  elseif c[2] ~= '' and now < tonumber(c[2]) then code = 2\n"
    "  elseif c[3] ~= '' and now >= tonumber(c[3]) then code = 3\n"
    "  elseif c[1] <= 0 then code = 4\n"
    "  else\n"
    "    order = string.format('%d', base + granted)\n"
    "    if redis.call('ZADD', uk, 'NX', order, ARGV[4 + 5 * i]) == 1 then code = 0 end\n"
    "  end\n"
    "  if code == 0 then\n"
    "    c[1] = c[1] - 1\n"
    "    dirty[ck] = c\n"
    "    granted = granted + 1\n"
    "    local entry = entries[sk]\n"
    "    if entry == nil then entry = {}; entries[sk] = entry end\n"
    "    entry[#entry + 1] = 'g'\n"
    "    entry[#entry + 1] = ARGV[1 + 5 * i] .. '\\n' .. ARGV[2 + 5 * i] .. '\\n' ..\n"
    "      ARGV[3 + 5 * i] .. '\\n' .. string.format('%d', c[1]) .. '\\n' .. ARGV[5 + 5 * i] ..\n"
    "      '\\n' .. order\n"
    "  end\n"
    "  out[i + 1] = string.format('%d %d %s %s', code, c[1] or 0,\n"
    "    c[2] ~= '' and c[2] or '-', c[3] ~= '' and c[3] or '-')\n"
    "end\n"
    "for ck, c in pairs(dirty) do redis.call('HSET', ck, 'left', c[1]) end\n"
    "for sk, entry in pairs(entries) do redis.call('XADD', sk, '*', unpack(entry)) end\n"
    "return out\n";

static const char load_source[] =
    "if ARGV[1] == '1' then\n"
    "  if redis.call('EXISTS', KEYS[1]) == 1 and not redis.call('HGET', KEYS[1], 'loading') then\n"
    "    return 0\n"
    "  end\n"
    "  redis.call('HSET', KEYS[1], 'amount', ARGV[3], 'left', ARGV[4], 'stock', ARGV[5],\n"
    "             'desc', ARGV[6], 'start', ARGV[7], 'end', ARGV[8], 'id', ARGV[9])\n"
    "  if ARGV[2] ~= '1' then redis.call('HSET', KEYS[1], 'loading', '1') end\n"
    "end\n"
    "for i = 2, #KEYS do\n"
    "  redis.call('ZADD', KEYS[i], 'NX', ARGV[9 + i], ARGV[10])\n"
    "end\n"
    "if ARGV[2] == '1' then redis.call('HDEL', KEYS[1], 'loading') end\n"
    "return 1\n";

static const char unload_source[] = "local h = redis.call('HMGET', KEYS[1], 'amount', 'left')\n"
                                    "if h[1] and h[2] ~= h[1] then return 0 end\n"
                                    "redis.call('DEL', KEYS[1])\n"
                                    "return 1\n";

static const char ack_source[] = "redis.call('XACK', KEYS[1], '" SK_HOT_GROUP "', unpack(ARGV))\n"
                                 "return redis.call('XDEL', KEYS[1], unpack(ARGV))\n";

static const char rate_source[] =
    "local time = redis.call('TIME')\n"
    "local now = tonumber(time[1]) * 1000000 + tonumber(time[2])\n"
    "local interval, tolerance = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local due = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
    "if due < now then due = now end\n"
    "if due - now > tolerance then return due - now - tolerance end\n"
    "due = due + interval\n"
    "redis.call('SET', KEYS[1], string.format('%d', due), 'PX',\n"
    "           math.floor((due - now) / 1000) + 1000)\n"
    "return 0\n";

void sk_hot_state_init(sk_hot_state_t *hot)
{
    /* Shard i gets the first tag "s<i>.<k>" whose slot lies in the i-th sixteenth of the
     * slot space; a plain "s<i>" would leave the shards' masters to chance. */
    for (unsigned shard = 0; shard != SK_HOT_SHARDS; ++shard) {
        unsigned low = shard * (SK_REDIS_SLOTS / SK_HOT_SHARDS);
        unsigned high = low + SK_REDIS_SLOTS / SK_HOT_SHARDS;
        for (unsigned k = 0;; ++k) {
            char tag[SK_HOT_TAG_MAX];
            int len = snprintf(tag, sizeof(tag), "%x.%x", shard, k);
            assert(len > 0 && (size_t)len < sizeof(tag));
            unsigned slot = sk_redis_key_slot(tag, (size_t)len);
            if (slot >= low && slot < high) {
                memcpy(hot->tags[shard], tag, (size_t)len + 1);
                break;
            }
        }
    }
    sk_redis_script_init(&hot->grab, grab_source);
    sk_redis_script_init(&hot->load, load_source);
    sk_redis_script_init(&hot->unload, unload_source);
    sk_redis_script_init(&hot->ack, ack_source);
    sk_redis_script_init(&hot->rate, rate_source);
}

unsigned sk_hot_shard(const char *bytes, size_t len)
{
    return (unsigned)(sk_index_hash(bytes, len) % SK_HOT_SHARDS);
}

size_t sk_hot_key(char *out, const sk_hot_state_t *hot, unsigned shard, char kind, const char *a,
                  size_t a_len, const char *b, size_t b_len)
{
    assert(shard < SK_HOT_SHARDS && a_len <= 64 && b_len <= 64);
    char *p = out;
    memcpy(p, "sk:{", 4);
    p += 4;
    size_t tag_len = strlen(hot->tags[shard]);
    memcpy(p, hot->tags[shard], tag_len);
    p += tag_len;
    *p++ = '}';
    *p++ = ':';
    *p++ = kind;
    if (a != NULL) {
        *p++ = ':';
        memcpy(p, a, a_len);
        p += a_len;
        if (b != NULL) {
            *p++ = '/';
            memcpy(p, b, b_len);
            p += b_len;
        }
    }
    *p = '\0';
    return (size_t)(p - out);
}

redisReply *sk_hot_command(sk_redis_sync_t *redis, int master, int argc, const char **argv)
{
    size_t lens[16];
    assert(argc <= 16);
    for (int i = 0; i != argc; ++i)
        lens[i] = strlen(argv[i]);
    return master < 0 ? sk_redis_sync_command(redis, NULL, 0, argc, argv, lens)
                      : sk_redis_sync_command_on_master(redis, (size_t)master, argc, argv, lens);
}

int sk_hot_state_check_aof(sk_redis_sync_t *redis)
{
    int without = 0;
    for (size_t i = 0; i != sk_redis_sync_master_count(redis); ++i) {
        const char *argv[] = {"INFO", "persistence"};
        redisReply *reply = sk_hot_command(redis, (int)i, 2, argv);
        int aof = reply != NULL && reply->type == REDIS_REPLY_STRING &&
                  strstr(reply->str, "aof_enabled:1") != NULL;
        if (reply != NULL && !aof) {
            sk_log(SK_LOG_WARN, "redis",
                   "!!! Redis master %zu runs WITHOUT appendonly (AOF): a Redis crash will lose "
                   "granted coupons that are not yet in SQL. Run it with --appendonly yes !!!",
                   i);
            ++without;
        }
        if (reply != NULL)
            freeReplyObject(reply);
    }
    return without;
}

int sk_hot_state_check_replicas(sk_redis_sync_t *redis, int wait_replicas)
{
    int warned = 0;
    for (size_t i = 0; i != sk_redis_sync_master_count(redis); ++i) {
        const char *argv[] = {"INFO", "replication"};
        redisReply *reply = sk_hot_command(redis, (int)i, 2, argv);
        const char *field = reply != NULL && reply->type == REDIS_REPLY_STRING
                                ? strstr(reply->str, "connected_slaves:")
                                : NULL;
        if (field != NULL) {
            long replicas = strtol(field + strlen("connected_slaves:"), NULL, 10);
            if (replicas > 0 && wait_replicas == 0) {
                sk_log(SK_LOG_WARN, "redis",
                       "Redis master %zu has %ld replica(s) but --redis-wait-replicas is 0: a "
                       "failover to a replica that lagged loses grants already answered 201",
                       i, replicas);
                ++warned;
            } else if (wait_replicas > replicas) {
                sk_log(SK_LOG_WARN, "redis",
                       "--redis-wait-replicas is %d but Redis master %zu has %ld replica(s) "
                       "connected: grabs answer 503 until enough replicas are",
                       wait_replicas, i, replicas);
                ++warned;
            }
        }
        if (reply != NULL)
            freeReplyObject(reply);
    }
    return warned;
}

/* ---- the loader ---- */

#define LOAD_CHUNK 256 /* holders per script call: bounds one call's time inside Redis */

static int load_coupon(const sk_hot_state_t *hot, sk_redis_sync_t *redis,
                       const sk_mysql_coupon_t *coupon, const char *const *customers,
                       const int64_t *scores, size_t holder_count, int create)
{
    char member[2 * 64 + 2];
    int member_len = snprintf(member, sizeof(member), "%.*s/%.*s", (int)coupon->seller_len,
                              coupon->seller, (int)coupon->name_len, coupon->name);
    unsigned shard = sk_hot_shard(member, (size_t)member_len);
    int status = SK_EUNAVAILABLE; /* until the last call answered */

    /* The seller's list first: a listed coupon whose hash is missing is skipped by the
     * list, while a hash without its list entry would be invisible to the seller. */
    char seller_key[SK_HOT_KEY_MAX], score[32];
    size_t seller_key_len =
        sk_hot_key(seller_key, hot, sk_hot_shard(coupon->seller, coupon->seller_len), 's',
                   coupon->seller, coupon->seller_len, NULL, 0);
    int score_len = snprintf(score, sizeof(score), "%" PRId64, coupon->id);
    const char *zadd[] = {"ZADD", seller_key, "NX", score, coupon->name};
    size_t zadd_len[] = {4, seller_key_len, 2, (size_t)score_len, coupon->name_len};
    redisReply *reply = sk_redis_sync_command(redis, NULL, 0, 5, zadd, zadd_len);
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR)
        goto done;
    freeReplyObject(reply);
    reply = NULL;

    size_t key_count = 1 + LOAD_CHUNK, arg_count = 10 + LOAD_CHUNK;
    char(*keys)[SK_HOT_KEY_MAX] = malloc(key_count * sizeof(*keys));
    const char **key_ptrs = malloc(key_count * sizeof(*key_ptrs));
    size_t *key_lens = malloc(key_count * sizeof(*key_lens));
    char(*numbers)[32] = malloc((6 + LOAD_CHUNK) * sizeof(*numbers));
    const char **args = malloc(arg_count * sizeof(*args));
    size_t *arg_lens = malloc(arg_count * sizeof(*arg_lens));
    if (keys == NULL || key_ptrs == NULL || key_lens == NULL || numbers == NULL || args == NULL ||
        arg_lens == NULL)
        goto free_buffers;
    key_lens[0] = sk_hot_key(keys[0], hot, shard, 'c', coupon->seller, coupon->seller_len,
                             coupon->name, coupon->name_len);
    /* Never more left than the holders allow: SQL's remaining and its grants are written in
     * one transaction, but a hand-edited row must not make Redis oversell. */
    int64_t left = coupon->remaining;
    if (left > coupon->amount - (int64_t)holder_count)
        left = coupon->amount - (int64_t)holder_count;
    if (left < 0)
        left = 0;
    int64_t values[5] = {coupon->amount, left, coupon->stock, coupon->start_at, coupon->end_at};
    for (int i = 0; i != 5; ++i)
        snprintf(numbers[i], sizeof(numbers[i]), "%" PRId64, values[i]);
    snprintf(numbers[5], sizeof(numbers[5]), "%" PRId64, coupon->id);
    size_t done_holders = 0;
    do {
        size_t chunk = holder_count - done_holders;
        if (chunk > LOAD_CHUNK)
            chunk = LOAD_CHUNK;
        int first = create && done_holders == 0;
        int last = create && done_holders + chunk == holder_count;
        args[0] = first ? "1" : "0";
        args[1] = last ? "1" : "0";
        args[2] = numbers[0];
        args[3] = numbers[1];
        args[4] = numbers[2];
        args[5] = coupon->description;
        args[6] = coupon->has_start ? numbers[3] : "";
        args[7] = coupon->has_end ? numbers[4] : "";
        args[8] = numbers[5];
        args[9] = member;
        for (int i = 0; i != 10; ++i)
            arg_lens[i] = strlen(args[i]);
        arg_lens[5] = coupon->description_len;
        arg_lens[9] = (size_t)member_len;
        for (size_t h = 0; h != chunk; ++h) {
            const char *customer = customers[done_holders + h];
            key_lens[1 + h] =
                sk_hot_key(keys[1 + h], hot, shard, 'u', customer, strlen(customer), NULL, 0);
            snprintf(numbers[6 + h], sizeof(numbers[6 + h]), "%" PRId64, scores[done_holders + h]);
            args[10 + h] = numbers[6 + h];
            arg_lens[10 + h] = strlen(numbers[6 + h]);
        }
        for (size_t k = 0; k != 1 + chunk; ++k)
            key_ptrs[k] = keys[k];
        reply = sk_redis_sync_eval(redis, &hot->load, (int)(1 + chunk), key_ptrs, key_lens,
                                   (int)(10 + chunk), args, arg_lens);
        if (reply == NULL || reply->type != REDIS_REPLY_INTEGER)
            goto free_buffers;
        long long created = reply->integer;
        freeReplyObject(reply);
        reply = NULL;
        if (first && created == 0)
            break; /* complete in Redis already: leave it as it is */
        done_holders += chunk;
    } while (done_holders < holder_count);
    status = 0;
free_buffers:
    free(keys);
    free(key_ptrs);
    free(key_lens);
    free(numbers);
    free(args);
    free(arg_lens);
done:
    if (reply != NULL) {
        if (reply->type == REDIS_REPLY_ERROR)
            sk_log(SK_LOG_ERROR, "loader", "loading a coupon failed: %s", reply->str);
        freeReplyObject(reply);
    }
    return status;
}

int sk_hot_state_load_coupon(const sk_hot_state_t *hot, sk_redis_sync_t *redis,
                             const sk_mysql_coupon_t *coupon, const char *const *customers,
                             const int64_t *scores, size_t holder_count)
{
    return load_coupon(hot, redis, coupon, customers, scores, holder_count, 1);
}

int sk_hot_state_add_holders(const sk_hot_state_t *hot, sk_redis_sync_t *redis,
                             const sk_mysql_coupon_t *coupon, const char *const *customers,
                             const int64_t *scores, size_t holder_count)
{
    return holder_count == 0 ? 0
                             : load_coupon(hot, redis, coupon, customers, scores, holder_count, 0);
}

static int ready_key_exists(sk_redis_sync_t *redis)
{
    const char *argv[] = {"EXISTS", SK_HOT_READY_KEY};
    redisReply *reply = sk_hot_command(redis, -1, 2, argv);
    int result = reply == NULL || reply->type != REDIS_REPLY_INTEGER ? -1 : reply->integer != 0;
    if (reply != NULL)
        freeReplyObject(reply);
    return result;
}

static int load_everything(const sk_hot_state_t *hot, sk_redis_sync_t *redis, sk_mysql_t *sql,
                           const _Atomic int *stopping)
{
    sk_sql_snapshot_t snapshot;
    if (sk_sql_snapshot_load(&snapshot, sql) != 0)
        return -1;
    int status = -1;
    size_t grants = 0;
    for (size_t i = 0; i != snapshot.count; ++i) {
        sk_sql_coupon_t *coupon = snapshot.coupons[i];
        if (atomic_load(stopping)) {
            sk_log(SK_LOG_INFO, "loader", "stopping: the rebuild is left to the next start");
            goto done;
        }
        /* Holdings rebuilt from SQL keep the SQL order and sort before every later grab
         * (whose scores are microseconds since 1970). */
        if (sk_hot_state_load_coupon(hot, redis, &coupon->row,
                                     (const char *const *)coupon->customers, coupon->orders,
                                     coupon->customer_count) != 0)
            goto done;
        grants += coupon->customer_count;
    }
    /* An empty SQL is a new deployment; anything else means Redis had lost its data. */
    if (snapshot.count != 0)
        sk_log(SK_LOG_WARN, "loader",
               "rebuilt the hot state from SQL (Redis had none): %zu coupons, %zu grants",
               snapshot.count, grants);
    else
        sk_log(SK_LOG_INFO, "loader", "a new deployment: Redis and SQL are empty");
    status = 0;
done:
    sk_sql_snapshot_dispose(&snapshot);
    return status;
}

int sk_hot_state_ensure(const sk_hot_state_t *hot, sk_redis_sync_t *redis, sk_mysql_t *sql,
                        const _Atomic int *stopping)
{
    int exists = ready_key_exists(redis);
    if (exists != 0)
        return exists < 0 ? -1 : 0;
    char owner[64];
    snprintf(owner, sizeof(owner), "%ld-%ld", (long)getpid(), (long)time(NULL));
    /* The lock expires so that a loader that died does not block the others for ever. */
    const char *lock[] = {"SET", SK_HOT_LOADING_KEY, owner, "NX", "PX", "120000"};
    redisReply *reply = sk_hot_command(redis, -1, 6, lock);
    if (reply == NULL)
        return -1;
    int locked = reply->type == REDIS_REPLY_STATUS;
    freeReplyObject(reply);
    if (!locked) {
        /* Another instance loads: wait for it (two minutes at most, the lock's life). */
        for (int i = 0; i != 1200 && !atomic_load(stopping); ++i) {
            usleep(100 * 1000);
            exists = ready_key_exists(redis);
            if (exists != 0)
                return exists < 0 ? -1 : 0;
        }
        return -1;
    }
    sk_log(SK_LOG_INFO, "loader", "Redis has no hot state: loading it from SQL");
    int status = load_everything(hot, redis, sql, stopping);
    if (status == 0) {
        const char *ready[] = {"SET", SK_HOT_READY_KEY, "1"};
        reply = sk_hot_command(redis, -1, 3, ready);
        if (reply == NULL || reply->type == REDIS_REPLY_ERROR)
            status = -1;
        if (reply != NULL)
            freeReplyObject(reply);
    }
    const char *unlock[] = {"DEL", SK_HOT_LOADING_KEY};
    reply = sk_hot_command(redis, -1, 2, unlock);
    if (reply != NULL)
        freeReplyObject(reply);
    return status == 0 ? 1 : -1;
}
