/*
 * Tests of sk_persister_step (src/store/distributed/persister.c) against the backends' real
 * Redis (a database of this program's own, redis_db.h) and MariaDB (a database of its own,
 * mysql_db.h). Grants are made by the real grab script; then a step writes them to SQL once
 * and deletes them from the streams; a replayed grant changes nothing in SQL; entries left
 * pending by a consumer that died are claimed; a failing SQL statement leaves the entries
 * pending on this consumer, and the next step with SK_PERSIST_OWN_PENDING writes them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mysql_db.h"
#include "redis_db.h"
#include "store/distributed/persister.h"

#define REDIS_DB 6 /* test_hot_state uses 5 */
#define NOW 1700000000

static sk_test_mysql_db_t db;

typedef struct fixture {
    sk_hot_state_t hot;
    sk_redis_config_t redis_config;
    sk_redis_sync_t *redis;
    sk_mysql_t *sql;
    sk_store_counters_t counters;
} fixture_t;

static int group_setup(void **state)
{
    (void)state;
    return sk_test_mysql_db_create(&db, "persister");
}

static int group_teardown(void **state)
{
    (void)state;
    sk_test_mysql_db_destroy(&db);
    return 0;
}

static void add_coupon(fixture_t *f, const char *name, int64_t amount)
{
    sk_mysql_coupon_t coupon = {.seller = "shop",
                                .seller_len = 4,
                                .name = name,
                                .name_len = strlen(name),
                                .description = "",
                                .amount = amount,
                                .stock = 1,
                                .created_at = NOW};
    assert_int_equal(sk_mysql_coupon_insert(f->sql, &coupon), SK_MYSQL_OK);
    coupon.remaining = amount;
    assert_int_equal(sk_hot_state_load_coupon(&f->hot, f->redis, &coupon, NULL, NULL, 0), 0);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    *state = f;
    sk_hot_state_init(&f->hot);
    f->redis = sk_test_redis_db_open(REDIS_DB, &f->redis_config);
    sk_test_mysql_db_reset(&db);
    char err[256];
    f->sql = sk_mysql_connect(&db.config, 2000, err, sizeof(err));
    if (f->sql == NULL)
        fail_msg("sk_mysql_connect: %s", err);
    assert_int_equal(sk_mysql_ensure_schema(f->sql), SK_MYSQL_OK);
    add_coupon(f, "c1", 5);
    add_coupon(f, "c2", 5);
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    sk_mysql_close(f->sql);
    sk_redis_sync_close(f->redis);
    free(f);
    return 0;
}

/* One grant by the real grab script; asserts it was granted. */
static void grab(fixture_t *f, const char *customer, const char *name)
{
    char member[130], now[16];
    int member_len = snprintf(member, sizeof(member), "shop/%s", name);
    snprintf(now, sizeof(now), "%d", NOW);
    unsigned shard = sk_hot_shard(member, (size_t)member_len);
    char keys[3][SK_HOT_KEY_MAX];
    size_t key_lens[3] = {
        sk_hot_key(keys[0], &f->hot, shard, 'c', "shop", 4, name, strlen(name)),
        sk_hot_key(keys[1], &f->hot, shard, 'u', customer, strlen(customer), NULL, 0),
        sk_hot_key(keys[2], &f->hot, shard, 'g', NULL, 0, NULL, 0),
    };
    const char *key_ptrs[] = {keys[0], keys[1], keys[2]};
    const char *args[] = {customer, "shop", name, member, now};
    size_t arg_lens[5];
    for (int i = 0; i != 5; ++i)
        arg_lens[i] = strlen(args[i]);
    redisReply *reply =
        sk_redis_sync_eval(f->redis, &f->hot.grab, 3, key_ptrs, key_lens, 5, args, arg_lens);
    assert_non_null(reply);
    assert_int_equal(reply->type, REDIS_REPLY_ARRAY);
    assert_int_equal(strncmp(reply->element[0]->str, "0 ", 2), 0);
    freeReplyObject(reply);
}

static long step(fixture_t *f, const char *consumer, unsigned claim_idle_ms, int flags,
                 int *sql_failed)
{
    return sk_persister_step(&f->hot, f->redis, f->sql, consumer, claim_idle_ms, flags, 0,
                             &f->counters, sql_failed);
}

/* Sums a per-shard command with the stream key (XLEN) over every shard. */
static long long over_streams(fixture_t *f, const char *command)
{
    long long total = 0;
    for (unsigned shard = 0; shard != SK_HOT_SHARDS; ++shard) {
        char key[SK_HOT_KEY_MAX];
        sk_hot_key(key, &f->hot, shard, 'g', NULL, 0, NULL, 0);
        const char *argv[] = {command, key};
        total += sk_test_redis_db_number(f->redis, 2, argv);
    }
    return total;
}

/* Entries pending in the persister group, over every shard (0 when there is no group). */
static long long pending(fixture_t *f)
{
    long long total = 0;
    for (unsigned shard = 0; shard != SK_HOT_SHARDS; ++shard) {
        char key[SK_HOT_KEY_MAX];
        size_t key_len = sk_hot_key(key, &f->hot, shard, 'g', NULL, 0, NULL, 0);
        const char *argv[] = {"XPENDING", key, SK_HOT_GROUP};
        size_t lens[] = {8, key_len, strlen(SK_HOT_GROUP)};
        redisReply *reply = sk_redis_sync_command(f->redis, key, key_len, 3, argv, lens);
        assert_non_null(reply);
        if (reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1 &&
            reply->element[0]->type == REDIS_REPLY_INTEGER)
            total += reply->element[0]->integer;
        freeReplyObject(reply);
    }
    return total;
}

/* Reads the new entries of every shard as consumer `consumer` without acknowledging them
 * (what a persister that died right after reading leaves behind). */
static long long read_without_ack(fixture_t *f, const char *consumer)
{
    long long read = 0;
    for (unsigned shard = 0; shard != SK_HOT_SHARDS; ++shard) {
        char key[SK_HOT_KEY_MAX];
        size_t key_len = sk_hot_key(key, &f->hot, shard, 'g', NULL, 0, NULL, 0);
        const char *create[] = {"XGROUP", "CREATE", key, SK_HOT_GROUP, "0", "MKSTREAM"};
        size_t create_lens[] = {6, 6, key_len, strlen(SK_HOT_GROUP), 1, 8};
        freeReplyObject(sk_redis_sync_command(f->redis, key, key_len, 6, create, create_lens));
        const char *argv[] = {"XREADGROUP", "GROUP", SK_HOT_GROUP, consumer, "STREAMS", key, ">"};
        size_t lens[] = {10, 5, strlen(SK_HOT_GROUP), strlen(consumer), 7, key_len, 1};
        redisReply *reply = sk_redis_sync_command(f->redis, key, key_len, 7, argv, lens);
        assert_non_null(reply);
        if (reply->type == REDIS_REPLY_ARRAY)
            read += (long long)reply->element[0]->element[1]->elements;
        freeReplyObject(reply);
    }
    return read;
}

static long long sql_grants(void)
{
    return sk_test_mysql_db_number(&db, "SELECT count(*) FROM grants");
}

static long long sql_remaining(const char *name)
{
    char sql[128];
    snprintf(sql, sizeof(sql),
             "SELECT remaining FROM coupons WHERE seller = 'shop' AND name = '%s'", name);
    return sk_test_mysql_db_number(&db, sql);
}

static void test_batch_written_once(void **state)
{
    fixture_t *f = *state;
    int sql_failed = -1;
    grab(f, "alice", "c1");
    grab(f, "bob", "c1");
    grab(f, "alice", "c2");
    assert_int_equal(step(f, "me", 0, 0, &sql_failed), 3);
    assert_int_equal(sql_failed, 0);
    assert_int_equal(sql_grants(), 3);
    assert_int_equal(sql_remaining("c1"), 3);
    assert_int_equal(sql_remaining("c2"), 4);
    assert_int_equal(
        sk_test_mysql_db_number(&db, "SELECT granted_at FROM grants WHERE customer = 'bob'"), NOW);
    /* acknowledged and deleted: nothing pending, nothing left to read */
    assert_int_equal(over_streams(f, "XLEN"), 0);
    assert_int_equal(pending(f), 0);
    assert_int_equal(step(f, "me", 0, SK_PERSIST_OWN_PENDING, &sql_failed), 0);
    assert_int_equal(step(f, "me", 0, 0, &sql_failed), 0);
    assert_int_equal(sql_grants(), 3);
    assert_int_equal(atomic_load(&f->counters.backlog), 0);
}

static void test_replay_changes_nothing(void **state)
{
    fixture_t *f = *state;
    int sql_failed = -1;
    grab(f, "alice", "c1");
    grab(f, "bob", "c1");
    /* A persister that wrote SQL but died before its XACK: the entries are read again. */
    assert_int_equal(read_without_ack(f, "me"), 2);
    assert_int_equal(step(f, "me", 0, SK_PERSIST_OWN_PENDING, &sql_failed), 2);
    assert_int_equal(sql_grants(), 2);
    assert_int_equal(sql_remaining("c1"), 3);

    /* The same grant again, with a stale (higher) left: no row, remaining not raised. */
    char member[] = "shop/c1";
    char key[SK_HOT_KEY_MAX];
    sk_hot_key(key, &f->hot, sk_hot_shard(member, strlen(member)), 'g', NULL, 0, NULL, 0);
    const char *add[] = {"XADD", key, "*", "g", "alice\nshop\nc1\n4\n1700000000\n1"};
    freeReplyObject(sk_test_redis_db_run(f->redis, 5, add));
    assert_int_equal(step(f, "me", 0, 0, &sql_failed), 1);
    assert_int_equal(sql_failed, 0);
    assert_int_equal(sql_grants(), 2);
    assert_int_equal(sql_remaining("c1"), 3);
    assert_int_equal(over_streams(f, "XLEN"), 0);
}

static void test_dead_consumer_claimed(void **state)
{
    fixture_t *f = *state;
    int sql_failed = -1;
    grab(f, "alice", "c1");
    grab(f, "bob", "c2");
    assert_int_equal(read_without_ack(f, "dead"), 2);
    /* Not ours, and not claimed without SK_PERSIST_CLAIM or before the claim age. */
    assert_int_equal(step(f, "alive", 0, SK_PERSIST_OWN_PENDING, &sql_failed), 0);
    assert_int_equal(step(f, "alive", 60000, SK_PERSIST_CLAIM, &sql_failed), 0);
    assert_int_equal(pending(f), 2);
    assert_int_equal(sql_grants(), 0);
    /* Idle longer than the claim age: claimed, written, acknowledged. */
    assert_int_equal(step(f, "alive", 0, SK_PERSIST_CLAIM, &sql_failed), 2);
    assert_int_equal(sql_grants(), 2);
    assert_int_equal(pending(f), 0);
    assert_int_equal(over_streams(f, "XLEN"), 0);
}

static void test_failing_sql_leaves_entries_pending(void **state)
{
    fixture_t *f = *state;
    int sql_failed = -1;
    grab(f, "alice", "c1");
    grab(f, "bob", "c1");
    /* The grants table gone: the batch's INSERT fails. */
    sk_test_mysql_db_query(&db, "RENAME TABLE grants TO grants_away");
    assert_int_equal(step(f, "me", 0, 0, &sql_failed), -1);
    assert_int_equal(sql_failed, 1);
    assert_int_equal(atomic_load(&f->counters.failures), 1);
    assert_int_equal(pending(f), 2);
    assert_int_equal(over_streams(f, "XLEN"), 2);
    /* Without OWN_PENDING they are not read again: ">" gives only new entries. */
    sk_test_mysql_db_query(&db, "RENAME TABLE grants_away TO grants");
    assert_int_equal(step(f, "me", 0, 0, &sql_failed), 0);
    assert_int_equal(pending(f), 2);
    /* The persister's retry re-reads its own pending entries and writes them. */
    assert_int_equal(step(f, "me", 0, SK_PERSIST_OWN_PENDING, &sql_failed), 2);
    assert_int_equal(sql_failed, 0);
    assert_int_equal(sql_grants(), 2);
    assert_int_equal(sql_remaining("c1"), 3);
    assert_int_equal(pending(f), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_batch_written_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_consumer_claimed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failing_sql_leaves_entries_pending, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
