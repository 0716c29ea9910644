/*
 * Reconciliation of Redis with SQL (see reconcile.h).
 */
#include "cmd/reconcile.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/distributed/hot_state.h"
#include "store/distributed/sql_snapshot.h"
#include "util/index.h"
#include "client/mysql/mysql.h"
#include "store/distributed/persister.h"
#include "client/redis/sync.h"

/* The customers holding one coupon in Redis, gathered from every customer's holdings. */
typedef struct redis_holders {
    char **customers;
    size_t count, capacity;
} redis_holders_t;

typedef struct reconcile {
    sk_index_t *redis_holders; /* "seller/name" → redis_holders_t */
    const sk_hot_state_t *hot;
    sk_redis_sync_t *redis;
    sk_mysql_t *sql;
    int repair;
    FILE *out;
    size_t differences;
    size_t oversold; /* coupons whose grants, Redis's and SQL's together, exceed the amount */
    int failed;
} reconcile_t;

/* Which copy holds more of a coupon's sales, for an operator deciding what to trust. */
typedef enum ahead {
    AHEAD_REDIS,
    AHEAD_SQL,
    AHEAD_NEITHER /* both copies agree with each other, not with their grants */
} ahead_t;

static const char *const ahead_text[] = {" (Redis ahead)", " (SQL ahead)",
                                         " (neither ahead: Redis and SQL agree on it)"};

/* For counts of what is left: the copy with the lower count has recorded more grabs. */
static ahead_t ahead_by_left(int64_t redis_left, int64_t sql_remaining)
{
    return redis_left < sql_remaining   ? AHEAD_REDIS
           : redis_left > sql_remaining ? AHEAD_SQL
                                        : AHEAD_NEITHER;
}

/* One coupon's customers on each side, each array sorted: the two are merged to find the
 * grants one side has and the other lacks. */
typedef struct holder_sides {
    char **redis, **sql;
    size_t redis_count, sql_count;
} holder_sides_t;

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void report(reconcile_t *r, const char *what, const sk_sql_coupon_t *coupon,
                   const char *detail, ahead_t ahead)
{
    ++r->differences;
    fprintf(r->out, "%s: coupon %s/%s%s%s%s\n", what, coupon->row.seller, coupon->row.name,
            detail[0] ? ": " : "", detail, ahead_text[ahead]);
}

static int sides_init(reconcile_t *r, const sk_sql_coupon_t *coupon, holder_sides_t *sides)
{
    char member[2 * 64 + 2];
    int member_len =
        snprintf(member, sizeof(member), "%s/%s", coupon->row.seller, coupon->row.name);
    const redis_holders_t *holders = sk_index_find(r->redis_holders, member, (size_t)member_len);
    sides->redis_count = holders != NULL ? holders->count : 0;
    sides->sql_count = coupon->customer_count;
    sides->redis = calloc(sides->redis_count + 1, sizeof(*sides->redis));
    sides->sql = calloc(sides->sql_count + 1, sizeof(*sides->sql));
    if (sides->redis == NULL || sides->sql == NULL) {
        free(sides->redis);
        free(sides->sql);
        return -1;
    }
    if (sides->redis_count != 0)
        memcpy(sides->redis, holders->customers, sides->redis_count * sizeof(char *));
    if (sides->sql_count != 0)
        memcpy(sides->sql, coupon->customers, sides->sql_count * sizeof(char *));
    qsort(sides->redis, sides->redis_count, sizeof(char *), compare_strings);
    qsort(sides->sql, sides->sql_count, sizeof(char *), compare_strings);
    return 0;
}

static void sides_dispose(holder_sides_t *sides)
{
    free(sides->redis);
    free(sides->sql);
}

/* The next customer of the merge of the two sorted sides, in *customer: returns -1 when
 * only Redis has it, 1 when only SQL has it, 0 when both do; 2 at the end. */
static int sides_next(const holder_sides_t *sides, size_t *i, size_t *j, const char **customer)
{
    if (*i == sides->redis_count && *j == sides->sql_count)
        return 2;
    int order = *i == sides->redis_count ? 1
                : *j == sides->sql_count ? -1
                                         : strcmp(sides->redis[*i], sides->sql[*j]);
    if (order <= 0)
        *customer = sides->redis[(*i)++];
    if (order >= 0)
        *customer = sides->sql[(*j)++];
    return order < 0 ? -1 : order > 0 ? 1 : 0;
}

/* Every customer that either side says holds the coupon: each was answered 201. */
static size_t sides_union(const holder_sides_t *sides)
{
    size_t i = 0, j = 0, count = 0;
    const char *customer;
    while (sides_next(sides, &i, &j, &customer) != 2)
        ++count;
    return count;
}

/* Whether the union of the two sides exceeds the amount (after a lossy Redis failover:
 * Redis lost grants SQL had, and sold their stock again), reported. Repairing by the union
 * would make that oversell official: such a coupon needs a person to decide which grants
 * stand. */
static int check_oversold(reconcile_t *r, const sk_sql_coupon_t *coupon)
{
    holder_sides_t sides;
    if (sides_init(r, coupon, &sides) != 0) {
        r->failed = 1;
        return 0;
    }
    size_t union_count = sides_union(&sides);
    int oversold = (int64_t)union_count > coupon->row.amount;
    if (oversold) {
        ++r->oversold;
        fprintf(r->out,
                "more grants than its amount: coupon %s/%s: amount %" PRId64
                ", %zu customers hold one in Redis or SQL (Redis %zu, SQL %zu): not repairable "
                "by the union; decide by hand which grants stand\n",
                coupon->row.seller, coupon->row.name, coupon->row.amount, union_count,
                sides.redis_count, sides.sql_count);
    }
    sides_dispose(&sides);
    return oversold;
}

static redisReply *command(reconcile_t *r, int argc, const char **argv, const size_t *lens)
{
    redisReply *reply = sk_redis_sync_command(r->redis, NULL, 0, argc, argv, lens);
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        r->failed = 1;
        if (reply != NULL)
            freeReplyObject(reply);
        return NULL;
    }
    return reply;
}

/* Compares one SQL coupon with its Redis copy; repairs when asked. */
static void check_coupon(reconcile_t *r, sk_sql_coupon_t *coupon)
{
    const sk_mysql_coupon_t *row = &coupon->row;
    char member[2 * 64 + 2];
    int member_len = snprintf(member, sizeof(member), "%s/%s", row->seller, row->name);
    unsigned shard = sk_hot_shard(member, (size_t)member_len);
    char coupon_key[SK_HOT_KEY_MAX], detail[256];
    size_t coupon_key_len = sk_hot_key(coupon_key, r->hot, shard, 'c', row->seller, row->seller_len,
                                       row->name, row->name_len);
    const char *hmget[] = {"HMGET", coupon_key, "amount", "left"};
    size_t hmget_len[] = {5, coupon_key_len, 6, 4};
    redisReply *hash = command(r, 4, hmget, hmget_len);
    if (hash == NULL)
        return;
    int in_redis = hash->type == REDIS_REPLY_ARRAY && hash->elements == 2 &&
                   hash->element[0]->type == REDIS_REPLY_STRING;
    int64_t redis_left = in_redis ? strtoll(hash->element[1]->str, NULL, 10) : 0;
    freeReplyObject(hash);
    if (!in_redis) {
        snprintf(detail, sizeof(detail), "%zu grants in SQL", coupon->customer_count);
        report(r, "missing in Redis", coupon, detail, AHEAD_SQL);
        if (r->repair &&
            sk_hot_state_load_coupon(r->hot, r->redis, row, (const char *const *)coupon->customers,
                                     coupon->orders, coupon->customer_count) != 0)
            r->failed = 1;
        return;
    }

    /* Merge the two sorted sets of customers: each side's extras are differences. */
    holder_sides_t sides;
    const char **only_sql = calloc(coupon->customer_count + 1, sizeof(*only_sql));
    int64_t *scores = calloc(coupon->customer_count + 1, sizeof(*scores));
    if (only_sql == NULL || scores == NULL || sides_init(r, coupon, &sides) != 0) {
        r->failed = 1;
        free(only_sql);
        free(scores);
        return;
    }
    size_t i = 0, j = 0, only_sql_count = 0, union_count = 0;
    const char *customer;
    for (int step; (step = sides_next(&sides, &i, &j, &customer)) != 2; ++union_count) {
        if (step < 0) {
            snprintf(detail, sizeof(detail), "customer %s", customer);
            report(r, "grant in Redis, not in SQL", coupon, detail, AHEAD_REDIS);
            if (r->repair) {
                sk_mysql_grant_t grant = {
                    .customer = customer,
                    .customer_len = strlen(customer),
                    .seller = row->seller,
                    .seller_len = row->seller_len,
                    .coupon = row->name,
                    .coupon_len = row->name_len,
                    .granted_at = (int64_t)time(NULL),
                };
                if (sk_mysql_grant_insert(r->sql, &grant) != SK_MYSQL_OK)
                    r->failed = 1;
            }
        } else if (step > 0) {
            snprintf(detail, sizeof(detail), "customer %s", customer);
            report(r, "grant in SQL, not in Redis", coupon, detail, AHEAD_SQL);
            scores[only_sql_count] = (int64_t)only_sql_count + 1;
            only_sql[only_sql_count++] = customer;
        }
    }
    if (r->repair &&
        sk_hot_state_add_holders(r->hot, r->redis, row, only_sql, scores, only_sql_count) != 0)
        r->failed = 1;

    int64_t expected = row->amount - (int64_t)union_count;
    if (expected < 0)
        expected = 0;
    if (redis_left != expected) {
        snprintf(detail, sizeof(detail),
                 "Redis left %" PRId64 ", amount - grants %" PRId64 ", SQL remaining %" PRId64,
                 redis_left, expected, row->remaining);
        report(r, "left differs", coupon, detail, ahead_by_left(redis_left, row->remaining));
        if (r->repair) {
            char value[24];
            int value_len = snprintf(value, sizeof(value), "%" PRId64, expected);
            const char *hset[] = {"HSET", coupon_key, "left", value};
            size_t hset_len[] = {4, coupon_key_len, 4, (size_t)value_len};
            redisReply *reply = command(r, 4, hset, hset_len);
            if (reply != NULL)
                freeReplyObject(reply);
        }
    }
    if (row->remaining != expected) {
        snprintf(detail, sizeof(detail),
                 "SQL remaining %" PRId64 ", amount - grants %" PRId64 ", Redis left %" PRId64,
                 row->remaining, expected, redis_left);
        report(r, "remaining differs", coupon, detail, ahead_by_left(redis_left, row->remaining));
        if (r->repair &&
            sk_mysql_coupon_set_remaining(r->sql, row->seller, row->seller_len, row->name,
                                          row->name_len, expected) != SK_MYSQL_OK)
            r->failed = 1;
    }

    char seller_key[SK_HOT_KEY_MAX];
    size_t seller_key_len =
        sk_hot_key(seller_key, r->hot, sk_hot_shard(row->seller, row->seller_len), 's', row->seller,
                   row->seller_len, NULL, 0);
    const char *zscore[] = {"ZSCORE", seller_key, row->name};
    size_t zscore_len[] = {6, seller_key_len, row->name_len};
    redisReply *listed = command(r, 3, zscore, zscore_len);
    if (listed != NULL && listed->type == REDIS_REPLY_NIL) {
        report(r, "not in the seller's list in Redis", coupon, "", AHEAD_SQL);
        if (r->repair) {
            char score[24];
            int score_len = snprintf(score, sizeof(score), "%" PRId64, row->id);
            const char *zadd[] = {"ZADD", seller_key, score, row->name};
            size_t zadd_len[] = {4, seller_key_len, (size_t)score_len, row->name_len};
            redisReply *reply = command(r, 4, zadd, zadd_len);
            if (reply != NULL)
                freeReplyObject(reply);
        }
    }
    if (listed != NULL)
        freeReplyObject(listed);
    sides_dispose(&sides);
    free(only_sql);
    free(scores);
}

/* Calls `visit` with every key of kind `kind` (see hot_state.h) on every master and the
 * part of the key after "}:<kind>:", until it fails or a backend does (r->failed). */
static void scan_keys(reconcile_t *r, char kind,
                      void (*visit)(reconcile_t *r, const redisReply *key, const char *rest,
                                    void *data),
                      void *data)
{
    char pattern[16], infix[8];
    snprintf(pattern, sizeof(pattern), "sk:{*}:%c:*", kind);
    snprintf(infix, sizeof(infix), "}:%c:", kind);
    for (size_t master = 0; master != sk_redis_sync_master_count(r->redis) && !r->failed;
         ++master) {
        char cursor[32] = "0";
        do {
            const char *scan[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"};
            redisReply *reply = sk_hot_command(r->redis, (int)master, 6, scan);
            if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
                r->failed = 1;
                if (reply != NULL)
                    freeReplyObject(reply);
                return;
            }
            snprintf(cursor, sizeof(cursor), "%s", reply->element[0]->str);
            redisReply *keys = reply->element[1];
            for (size_t k = 0; k != keys->elements && !r->failed; ++k) {
                const char *rest = strstr(keys->element[k]->str, infix);
                if (rest != NULL)
                    visit(r, keys->element[k], rest + strlen(infix), data);
            }
            freeReplyObject(reply);
        } while (strcmp(cursor, "0") != 0 && !r->failed);
    }
}

static int add_redis_holder(reconcile_t *r, const redisReply *member, const char *customer)
{
    redis_holders_t *holders = sk_index_find(r->redis_holders, member->str, member->len);
    if (holders == NULL) {
        holders = calloc(1, sizeof(*holders));
        if (holders == NULL ||
            sk_index_insert(r->redis_holders, member->str, member->len, holders, NULL) != holders) {
            free(holders);
            return -1;
        }
    }
    if (holders->count == holders->capacity) {
        size_t capacity = holders->capacity ? holders->capacity * 2 : 8;
        char **grown = realloc(holders->customers, capacity * sizeof(*grown));
        if (grown == NULL)
            return -1;
        holders->customers = grown;
        holders->capacity = capacity;
    }
    if ((holders->customers[holders->count] = strdup(customer)) == NULL)
        return -1;
    ++holders->count;
    return 0;
}

/* One customer's holdings key: each coupon in it gets the customer as a holder. */
static void visit_holdings(reconcile_t *r, const redisReply *key, const char *customer, void *data)
{
    (void)data;
    const char *zrange[] = {"ZRANGE", key->str, "0", "-1"};
    size_t zrange_len[] = {6, key->len, 1, 2};
    redisReply *held = command(r, 4, zrange, zrange_len);
    for (size_t m = 0; held != NULL && m != held->elements && !r->failed; ++m)
        if (add_redis_holder(r, held->element[m], customer) != 0)
            r->failed = 1;
    if (held != NULL)
        freeReplyObject(held);
}

static void free_redis_holders(void *value)
{
    redis_holders_t *holders = value;
    for (size_t i = 0; i != holders->count; ++i)
        free(holders->customers[i]);
    free(holders->customers);
    free(holders);
}

/* A coupon hash that SQL does not have (a creation whose undo failed): reported, never
 * repaired, since SQL decides what exists and Redis alone does not hold all its fields. */
static void visit_coupon(reconcile_t *r, const redisReply *key, const char *member, void *data)
{
    sk_sql_snapshot_t *state = data;
    if (sk_index_find(state->by_member, member, strlen(member)) != NULL)
        return;
    ++r->differences;
    fprintf(r->out, "missing in SQL: coupon %s (only in Redis)%s\n", member,
            ahead_text[AHEAD_REDIS]);
    if (r->repair)
        fprintf(r->out, "  not repaired: create it again, or delete %s by hand\n", key->str);
}

/* Writes what the streams hold to SQL, waiting a little for the instances' persisters. */
static void settle_streams(reconcile_t *r)
{
    char consumer[64];
    snprintf(consumer, sizeof(consumer), "reconcile-%ld", (long)getpid());
    for (int round = 0; round != 50; ++round) {
        int sql_failed = 0;
        sk_store_counters_t counters = {0};
        long written = sk_persister_step(r->hot, r->redis, r->sql, consumer, 5000, SK_PERSIST_CLAIM,
                                         0, &counters, &sql_failed);
        if (written < 0) {
            r->failed = 1;
            return;
        }
        long long in_flight = 0;
        for (unsigned shard = 0; shard != SK_HOT_SHARDS; ++shard) {
            char key[SK_HOT_KEY_MAX];
            size_t key_len = sk_hot_key(key, r->hot, shard, 'g', NULL, 0, NULL, 0);
            const char *xlen[] = {"XLEN", key};
            size_t xlen_len[] = {4, key_len};
            redisReply *reply = command(r, 2, xlen, xlen_len);
            if (reply == NULL)
                return;
            in_flight += reply->type == REDIS_REPLY_INTEGER ? reply->integer : 0;
            freeReplyObject(reply);
        }
        if (in_flight == 0)
            return;
        if (round == 49)
            fprintf(r->out, "note: %lld grants are still on their way to SQL\n", in_flight);
        usleep(100 * 1000);
    }
}

int sk_reconcile_run(const char *redis_url, const char *mysql_url, int repair, FILE *out)
{
    sk_redis_config_t redis_config;
    sk_mysql_config_t mysql_config;
    sk_hot_state_t hot;
    char error[256];
    int status = 3;
    sk_sql_snapshot_t state = {0};
    int loaded = 0;
    reconcile_t r = {.hot = &hot, .repair = repair, .out = out};
    if (sk_redis_config_parse(redis_url, &redis_config, error, sizeof(error)) != 0 ||
        sk_mysql_config_parse(mysql_url, &mysql_config, error, sizeof(error)) != 0) {
        fprintf(stderr, "seckill reconcile: %s\n", error);
        return 2;
    }
    sk_hot_state_init(&hot);
    r.redis = sk_redis_sync_connect(&redis_config, 5000, error, sizeof(error));
    if (r.redis == NULL) {
        fprintf(stderr, "seckill reconcile: Redis: %s\n", error);
        goto done;
    }
    r.sql = sk_mysql_connect(&mysql_config, 5000, error, sizeof(error));
    if (r.sql == NULL || sk_mysql_ensure_schema(r.sql) != SK_MYSQL_OK) {
        fprintf(stderr, "seckill reconcile: SQL: %s\n", r.sql ? sk_mysql_error(r.sql) : error);
        goto done;
    }
    settle_streams(&r);
    if (r.failed || sk_sql_snapshot_load(&state, r.sql) != 0) {
        fprintf(stderr, "seckill reconcile: reading SQL failed\n");
        goto done;
    }
    loaded = 1;
    r.redis_holders = sk_index_create();
    if (r.redis_holders == NULL)
        goto done;
    scan_keys(&r, 'u', visit_holdings, NULL);
    /* First, whether the union can be the repair at all: if one coupon's grants exceed its
     * amount, nothing is repaired, anywhere. Such a state follows a lossy Redis failover,
     * after which no copy is to be trusted blindly, and a repair is easier to redo from
     * the report once a person has decided than to undo. */
    for (size_t i = 0; i != state.count && !r.failed; ++i)
        check_oversold(&r, state.coupons[i]);
    if (r.oversold != 0)
        r.repair = 0;
    for (size_t i = 0; i != state.count && !r.failed; ++i)
        check_coupon(&r, state.coupons[i]);
    if (!r.failed)
        scan_keys(&r, 'c', visit_coupon, &state);
    if (r.failed) {
        fprintf(stderr, "seckill reconcile: a backend failed during the comparison\n");
        goto done;
    }
    if (r.oversold != 0) {
        fprintf(out, "%zu differences; %zu coupon%s more grants than %s amount: %s\n",
                r.differences, r.oversold, r.oversold == 1 ? " holds" : "s hold",
                r.oversold == 1 ? "its" : "their",
                repair ? "nothing repaired (--repair would make the oversell official)"
                       : "--repair would refuse");
        status = 4;
    } else if (r.differences == 0) {
        fprintf(out, "in agreement: %zu coupons, %zu grants\n", state.count, state.grants);
        status = 0;
    } else {
        fprintf(out, "%zu differences%s\n", r.differences, repair ? ", repaired" : "");
        status = 1;
    }
done:
    if (loaded)
        sk_sql_snapshot_dispose(&state);
    if (r.redis_holders != NULL) {
        sk_index_foreach(r.redis_holders, free_redis_holders);
        sk_index_destroy(r.redis_holders);
    }
    if (r.sql != NULL)
        sk_mysql_close(r.sql);
    if (r.redis != NULL)
        sk_redis_sync_close(r.redis);
    return status;
}
