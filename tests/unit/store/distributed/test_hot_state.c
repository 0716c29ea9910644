/*
 * Tests of the hot state's Lua scripts (src/store/distributed/hot_state.c) against the
 * backends' real Redis, on a database of this program's own (redis_db.h): the grab
 * script's outcomes (granted, already held, sold out, no such coupon, not started, ended,
 * loading), the holding and the stream entry a grant writes (the persister's input), a
 * batch of grabs in one call with one stream entry, and the load script: idempotent (a
 * second load of a coupon leaves its `left` and holders as they are) and adding holders;
 * the unload script (a creation's undo: the hash goes unless a grab took one);
 * and counts exact at the largest --max-amount, 2^53 - 1 (the script's numbers are
 * doubles, written back through redis.call and string.format('%d')).
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "redis_db.h"
#include "store/distributed/hot_state.h"

#define REDIS_DB 5 /* test_persister uses 6 */
#define NOW 1700000000

typedef struct fixture {
    sk_hot_state_t hot;
    sk_redis_config_t config;
    sk_redis_sync_t *redis;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    sk_hot_state_init(&f->hot);
    f->redis = sk_test_redis_db_open(REDIS_DB, &f->config);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    sk_redis_sync_close(f->redis);
    free(f);
    return 0;
}

static void load(fixture_t *f, const char *seller, const char *name, int64_t amount,
                 int64_t remaining, const char *const *holders, size_t holder_count,
                 int64_t start_at, int64_t end_at)
{
    sk_mysql_coupon_t coupon = {
        .id = 1,
        .seller = seller,
        .seller_len = strlen(seller),
        .name = name,
        .name_len = strlen(name),
        .description = "d",
        .description_len = 1,
        .amount = amount,
        .remaining = remaining,
        .stock = 10,
        .has_start = start_at != 0,
        .start_at = start_at,
        .has_end = end_at != 0,
        .end_at = end_at,
    };
    int64_t scores[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    assert_true(holder_count <= 8);
    assert_int_equal(
        sk_hot_state_load_coupon(&f->hot, f->redis, &coupon, holders, scores, holder_count), 0);
}

typedef struct grab {
    const char *customer, *seller, *name;
} grab_t;

typedef struct key_set {
    char coupon[SK_HOT_KEY_MAX], holdings[SK_HOT_KEY_MAX], stream[SK_HOT_KEY_MAX];
    char member[130];
} key_set_t;

static void keys_of(fixture_t *f, const grab_t *grab, key_set_t *keys)
{
    int member_len =
        snprintf(keys->member, sizeof(keys->member), "%s/%s", grab->seller, grab->name);
    unsigned shard = sk_hot_shard(keys->member, (size_t)member_len);
    sk_hot_key(keys->coupon, &f->hot, shard, 'c', grab->seller, strlen(grab->seller), grab->name,
               strlen(grab->name));
    sk_hot_key(keys->holdings, &f->hot, shard, 'u', grab->customer, strlen(grab->customer), NULL,
               0);
    sk_hot_key(keys->stream, &f->hot, shard, 'g', NULL, 0, NULL, 0);
}

/* Runs the grab script on `count` grabs at Unix time `now`; writes each grab's reply
 * "code left start end" into `out`. */
static void grab_batch(fixture_t *f, const grab_t *grabs, size_t count, long now, char out[][64])
{
    key_set_t keys[4];
    const char *key_ptrs[12], *args[20];
    size_t key_lens[12], arg_lens[20];
    char now_text[32];
    snprintf(now_text, sizeof(now_text), "%ld", now);
    assert_true(count <= 4);
    for (size_t i = 0; i != count; ++i) {
        keys_of(f, &grabs[i], &keys[i]);
        key_ptrs[3 * i] = keys[i].coupon;
        key_ptrs[3 * i + 1] = keys[i].holdings;
        key_ptrs[3 * i + 2] = keys[i].stream;
        args[5 * i] = grabs[i].customer;
        args[5 * i + 1] = grabs[i].seller;
        args[5 * i + 2] = grabs[i].name;
        args[5 * i + 3] = keys[i].member;
        args[5 * i + 4] = now_text;
    }
    for (size_t i = 0; i != 3 * count; ++i)
        key_lens[i] = strlen(key_ptrs[i]);
    for (size_t i = 0; i != 5 * count; ++i)
        arg_lens[i] = strlen(args[i]);
    redisReply *reply = sk_redis_sync_eval(f->redis, &f->hot.grab, (int)(3 * count), key_ptrs,
                                           key_lens, (int)(5 * count), args, arg_lens);
    assert_non_null(reply);
    if (reply->type == REDIS_REPLY_ERROR)
        fail_msg("grab script: %s", reply->str);
    assert_int_equal(reply->type, REDIS_REPLY_ARRAY);
    assert_int_equal(reply->elements, count);
    for (size_t i = 0; i != count; ++i) {
        assert_int_equal(reply->element[i]->type, REDIS_REPLY_STRING);
        snprintf(out[i], 64, "%s", reply->element[i]->str);
    }
    freeReplyObject(reply);
}

static void expect_grab(fixture_t *f, const char *customer, const char *seller, const char *name,
                        long now, const char *expected)
{
    grab_t grab = {customer, seller, name};
    char out[1][64];
    grab_batch(f, &grab, 1, now, out);
    assert_string_equal(out[0], expected);
}

static long long number(fixture_t *f, const char *command, const char *key)
{
    const char *argv[] = {command, key};
    return sk_test_redis_db_number(f->redis, 2, argv);
}

static void test_granted_writes_holding_and_stream_entry(void **state)
{
    fixture_t *f = *state;
    load(f, "shop", "c1", 3, 3, NULL, 0, 0, 0);
    expect_grab(f, "alice", "shop", "c1", NOW, "0 2 - -");

    grab_t grab = {"alice", "shop", "c1"};
    key_set_t keys;
    keys_of(f, &grab, &keys);
    const char *left[] = {"HGET", keys.coupon, "left"};
    redisReply *reply = sk_test_redis_db_run(f->redis, 3, left);
    assert_string_equal(reply->str, "2");
    freeReplyObject(reply);
    const char *holding[] = {"ZSCORE", keys.holdings, "shop/c1"};
    reply = sk_test_redis_db_run(f->redis, 3, holding);
    assert_int_equal(reply->type, REDIS_REPLY_STRING); /* held: a score */
    char order[32];
    snprintf(order, sizeof(order), "%s", reply->str);
    freeReplyObject(reply);

    /* one stream entry, one field g: "CUSTOMER\nSELLER\nNAME\nLEFT\nT\nORDER" */
    const char *range[] = {"XRANGE", keys.stream, "-", "+"};
    reply = sk_test_redis_db_run(f->redis, 4, range);
    assert_int_equal(reply->elements, 1);
    redisReply *fields = reply->element[0]->element[1];
    assert_int_equal(fields->elements, 2);
    assert_string_equal(fields->element[0]->str, "g");
    char expected[128];
    snprintf(expected, sizeof(expected), "alice\nshop\nc1\n2\n%d\n%s", NOW, order);
    assert_string_equal(fields->element[1]->str, expected);
    freeReplyObject(reply);
}

static void test_already_held_and_sold_out(void **state)
{
    fixture_t *f = *state;
    load(f, "shop", "one", 2, 2, NULL, 0, 0, 0);
    expect_grab(f, "alice", "shop", "one", NOW, "0 1 - -");
    expect_grab(f, "alice", "shop", "one", NOW, "5 1 - -"); /* already held: left unchanged */
    expect_grab(f, "bob", "shop", "one", NOW, "0 0 - -");
    expect_grab(f, "carol", "shop", "one", NOW, "4 0 - -"); /* sold out */
    /* the refused grabs wrote nothing: two grants, two stream entries */
    grab_t grab = {"carol", "shop", "one"};
    key_set_t keys;
    keys_of(f, &grab, &keys);
    assert_int_equal(number(f, "XLEN", keys.stream), 2);
    assert_int_equal(number(f, "ZCARD", keys.holdings), 0);
}

static void test_no_such_coupon_and_window(void **state)
{
    fixture_t *f = *state;
    expect_grab(f, "alice", "shop", "missing", NOW, "1 0 - -");
    load(f, "shop", "later", 5, 5, NULL, 0, NOW + 60, NOW + 120);
    expect_grab(f, "alice", "shop", "later", NOW, "2 5 1700000060 1700000120");
    expect_grab(f, "alice", "shop", "later", NOW + 120, "3 5 1700000060 1700000120");
    /* the window is [start, end): open at start, closed at end */
    expect_grab(f, "alice", "shop", "later", NOW + 60, "0 4 1700000060 1700000120");
    expect_grab(f, "bob", "shop", "later", NOW + 119, "0 3 1700000060 1700000120");
}

static void test_loading_coupon_answers_loading(void **state)
{
    fixture_t *f = *state;
    load(f, "shop", "busy", 5, 5, NULL, 0, 0, 0);
    grab_t grab = {"alice", "shop", "busy"};
    key_set_t keys;
    keys_of(f, &grab, &keys);
    const char *mark[] = {"HSET", keys.coupon, "loading", "1"};
    freeReplyObject(sk_test_redis_db_run(f->redis, 4, mark));
    expect_grab(f, "alice", "shop", "busy", NOW, "6 5 - -");
    assert_int_equal(number(f, "XLEN", keys.stream), 0);
}

static void test_batch_of_grabs(void **state)
{
    fixture_t *f = *state;
    load(f, "shop", "last", 1, 1, NULL, 0, 0, 0);
    grab_t grabs[3] = {{"alice", "shop", "last"}, {"bob", "shop", "last"}, {"x", "shop", "none"}};
    char out[3][64];
    grab_batch(f, grabs, 3, NOW, out);
    assert_string_equal(out[0], "0 0 - -");
    assert_string_equal(out[1], "4 0 - -"); /* the batch sees its own grant */
    assert_string_equal(out[2], "1 0 - -");
    key_set_t keys;
    keys_of(f, &grabs[0], &keys);
    assert_int_equal(number(f, "XLEN", keys.stream), 1);
}

static void test_load_is_idempotent(void **state)
{
    fixture_t *f = *state;
    const char *holders[] = {"alice", "bob"};
    load(f, "shop", "again", 5, 3, holders, 2, 0, 0);
    expect_grab(f, "alice", "shop", "again", NOW, "5 3 - -"); /* a loaded holder holds it */
    expect_grab(f, "carol", "shop", "again", NOW, "0 2 - -");
    /* The rebuild runs again (another instance, a retry): what Redis has stays. */
    load(f, "shop", "again", 5, 3, holders, 2, 0, 0);
    expect_grab(f, "dave", "shop", "again", NOW, "0 1 - -");
    grab_t grab = {"alice", "shop", "again"};
    key_set_t keys;
    keys_of(f, &grab, &keys);
    assert_int_equal(number(f, "ZCARD", keys.holdings), 1);
    /* `left` never exceeds what the holders allow, whatever SQL's remaining says */
    load(f, "shop", "capped", 3, 3, holders, 2, 0, 0);
    expect_grab(f, "carol", "shop", "capped", NOW, "0 0 - -");

    /* the seller's list has each coupon once, "again" loaded twice included */
    char seller_key[SK_HOT_KEY_MAX];
    sk_hot_key(seller_key, &f->hot, sk_hot_shard("shop", 4), 's', "shop", 4, NULL, 0);
    assert_int_equal(number(f, "ZCARD", seller_key), 2);
}

static void test_add_holders_leaves_left(void **state)
{
    fixture_t *f = *state;
    load(f, "shop", "repair", 5, 5, NULL, 0, 0, 0);
    expect_grab(f, "alice", "shop", "repair", NOW, "0 4 - -");
    sk_mysql_coupon_t coupon = {.id = 1,
                                .seller = "shop",
                                .seller_len = 4,
                                .name = "repair",
                                .name_len = 6,
                                .description = "d",
                                .description_len = 1,
                                .amount = 5,
                                .remaining = 1};
    const char *holders[] = {"bob"};
    int64_t scores[] = {7};
    assert_int_equal(sk_hot_state_add_holders(&f->hot, f->redis, &coupon, holders, scores, 1), 0);
    expect_grab(f, "bob", "shop", "repair", NOW, "5 4 - -");
}

static long long unload(fixture_t *f, const char *seller, const char *name)
{
    grab_t grab = {"nobody", seller, name};
    key_set_t keys;
    keys_of(f, &grab, &keys);
    const char *key_ptrs[] = {keys.coupon};
    size_t key_lens[] = {strlen(keys.coupon)};
    redisReply *reply =
        sk_redis_sync_eval(f->redis, &f->hot.unload, 1, key_ptrs, key_lens, 0, NULL, NULL);
    assert_non_null(reply);
    if (reply->type == REDIS_REPLY_ERROR)
        fail_msg("unload script: %s", reply->str);
    assert_int_equal(reply->type, REDIS_REPLY_INTEGER);
    long long result = reply->integer;
    freeReplyObject(reply);
    return result;
}

/* The undo of a creation whose load call went unanswered: the hash goes (or was never
 * made), unless a grab made the coupon real already. */
static void test_unload_removes_an_ungrabbed_coupon(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(unload(f, "shop", "never"), 1);
    load(f, "shop", "undone", 3, 3, NULL, 0, 0, 0);
    assert_int_equal(unload(f, "shop", "undone"), 1);
    expect_grab(f, "alice", "shop", "undone", NOW, "1 0 - -"); /* no such coupon */
    load(f, "shop", "taken", 3, 3, NULL, 0, 0, 0);
    expect_grab(f, "alice", "shop", "taken", NOW, "0 2 - -");
    assert_int_equal(unload(f, "shop", "taken"), 0);
    expect_grab(f, "bob", "shop", "taken", NOW, "0 1 - -");
}

/* A coupon of the largest amount --max-amount allows: the grab script reads `left` with
 * tonumber, subtracts in a double and writes it back through redis.call's number argument
 * (HSET) and string.format('%d') (the reply, the stream entry): every one exact there. */
static void test_counts_exact_at_the_amount_limit(void **state)
{
    fixture_t *f = *state;
    const int64_t limit = SK_CONFIG_MAX_AMOUNT_LIMIT;
    assert_true(limit == (1LL << 53) - 1);
    load(f, "shop", "huge", limit, limit, NULL, 0, 0, 0);
    const char *customers[] = {"alice", "bob"};
    for (int i = 0; i != 2; ++i) {
        char expected[64], left[32];
        snprintf(left, sizeof(left), "%" PRId64, limit - 1 - i);
        snprintf(expected, sizeof(expected), "0 %s - -", left);
        expect_grab(f, customers[i], "shop", "huge", NOW, expected);

        grab_t grab = {customers[i], "shop", "huge"};
        key_set_t keys;
        keys_of(f, &grab, &keys);
        const char *hget[] = {"HGET", keys.coupon, "left"};
        redisReply *reply = sk_test_redis_db_run(f->redis, 3, hget);
        assert_string_equal(reply->str, left);
        freeReplyObject(reply);
        /* the stream entry's LEFT, which the persister writes to SQL */
        const char *range[] = {"XREVRANGE", keys.stream, "+", "-", "COUNT", "1"};
        reply = sk_test_redis_db_run(f->redis, 6, range);
        assert_int_equal(reply->elements, 1);
        const char *entry = reply->element[0]->element[1]->element[1]->str;
        snprintf(expected, sizeof(expected), "%s\nshop\nhuge\n%s\n%d\n", customers[i], left, NOW);
        assert_true(strncmp(entry, expected, strlen(expected)) == 0);
        freeReplyObject(reply);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_granted_writes_holding_and_stream_entry, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_already_held_and_sold_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_such_coupon_and_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loading_coupon_answers_loading, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_of_grabs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_is_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add_holders_leaves_left, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counts_exact_at_the_amount_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unload_removes_an_ungrabbed_coupon, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
