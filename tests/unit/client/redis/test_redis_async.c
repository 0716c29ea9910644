/*
 * Tests of src/client/redis/async.c against real servers (backends.h) on an h2o loop with
 * src/http/epoll_keep.c's epoll and close interposition linked in, as in the service (every
 * executable linking sk_core has it, see CMakeLists.txt): ten thousand
 * INCRs issued in one turn answered in order; EVALSHA falling back to EVAL after SCRIPT
 * FLUSH; keys routed over the three masters of a Cluster; ASK and MOVED followed during a
 * real slot migration; and, on a redis-server of the test's own: a killed server (NULL
 * answers at once, later commands failing fast), the restart on the same port (the first
 * command after it answered, whatever the backoff), a stopped server (NULL within the timeout), and
 * destroy with commands pending (every callback gets NULL); on a master and replica of the test's
 * own, commands answered only once the replica holds them (WAIT), NULL while it is stopped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <signal.h>
#include <sys/time.h>

#include "backends.h"
#include "fixture.h"
#include "redis_server.h"
#include "client/redis/async.h"
#include "client/redis/sentinel.h"
#include "client/redis/sync.h"
#include "util/error.h"

#define TIMEOUT_MS 300

typedef struct test_loop {
    h2o_evloop_t *loop;
    h2o_multithread_queue_t *queue;
} test_loop_t;

/* A client with `connections` per node and no WAIT, no Sentinel. */
static sk_redis_async_t *make_client(h2o_loop_t *loop, const sk_redis_config_t *config,
                                     size_t connections, uint64_t timeout_ms)
{
    sk_redis_async_options_t options = {.connections_per_node = connections,
                                        .timeout_ms = timeout_ms};
    return sk_redis_async_create(loop, config, &options);
}

static int setup(void **state)
{
    test_loop_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return -1;
    sk_test_loop_create(&t->loop, &t->queue);
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    test_loop_t *t = *state;
    /* A failed test may have left its client (and its timeouts) behind: then the loop is
     * leaked rather than destroyed, so that cmocka reports the failure. */
    if (h2o_linklist_is_empty(&t->loop->_timeouts))
        sk_test_loop_destroy(t->loop, t->queue);
    free(t);
    return 0;
}

static uint64_t now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

static void parse_or_fail(const char *url_key, sk_redis_config_t *config)
{
    const char *url = sk_test_backend(url_key);
    if (url == NULL)
        fail_msg("%s is not set: the test backends did not start", url_key);
    char err[128];
    if (sk_redis_config_parse(url, config, err, sizeof(err)) != 0)
        fail_msg("%s: %s", url_key, err);
}

/* What the callbacks saw. */
typedef struct tally {
    int answered, nulls, errors, out_of_order;
    long long last_integer;
    char last_string[64];
} tally_t;

static void on_reply(void *data, redisReply *reply)
{
    tally_t *tally = data;
    ++tally->answered;
    if (reply == NULL) {
        ++tally->nulls;
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        ++tally->errors;
        snprintf(tally->last_string, sizeof(tally->last_string), "%s", reply->str);
    } else if (reply->type == REDIS_REPLY_INTEGER) {
        if (reply->integer != tally->last_integer + 1)
            ++tally->out_of_order;
        tally->last_integer = reply->integer;
    } else if (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS) {
        snprintf(tally->last_string, sizeof(tally->last_string), "%s", reply->str);
    }
}

static unsigned char *seen_values;
static size_t seen_count;

/* Marks each INCR result seen, for commands spread over several connections. */
static void on_seen_reply(void *data, redisReply *reply)
{
    tally_t *tally = data;
    ++tally->answered;
    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        ++tally->errors;
        return;
    }
    if (reply->integer >= 0 && (size_t)reply->integer < seen_count)
        ++seen_values[reply->integer];
}

static void command(sk_redis_async_t *client, tally_t *tally, int argc, const char **argv)
{
    size_t argvlen[8];
    for (int i = 0; i < argc; ++i)
        argvlen[i] = strlen(argv[i]);
    sk_redis_async_command(client, NULL, 0, argc, argv, argvlen, on_reply, tally);
}

/* Runs one command to its answer. */
static void run_command(test_loop_t *t, sk_redis_async_t *client, tally_t *tally, int argc,
                        const char **argv)
{
    int before = tally->answered;
    command(client, tally, argc, argv);
    assert_int_equal(sk_test_run_until(t->loop, &tally->answered, before + 1), before + 1);
}

static int connected;

static void wait_connected(test_loop_t *t, sk_redis_async_t *client)
{
    for (int i = 0; i < 500 && !sk_redis_async_is_connected(client); ++i)
        h2o_evloop_run(t->loop, 10);
    assert_true(sk_redis_async_is_connected(client));
    connected = 1;
}

static void test_pipelining(void **state)
{
    test_loop_t *t = *state;
    sk_redis_config_t config;
    parse_or_fail("SK_TEST_REDIS_URL", &config);
    /* One connection: replies come in the order of the commands. */
    sk_redis_async_t *client = make_client(t->loop, &config, 1, 5000);
    assert_non_null(client);
    tally_t tally = {0};
    const char *del[] = {"DEL", "sk-test-async:counter"};
    run_command(t, client, &tally, 2, del); /* issued before the map is known: waits */
    assert_int_equal(tally.nulls + tally.errors, 0);
    wait_connected(t, client);

    enum { COUNT = 10000 };
    tally_t incr = {0};
    const char *argv[] = {"INCR", "sk-test-async:counter"};
    uint64_t started = now_ms();
    for (int i = 0; i < COUNT; ++i)
        command(client, &incr, 2, argv);
    assert_int_equal(incr.answered, 0); /* nothing answered inside the calls */
    if (sk_test_run_until(t->loop, &incr.answered, COUNT) != COUNT)
        fail_msg("answered %d of %d (%d NULL)", incr.answered, COUNT, incr.nulls);
    assert_int_equal(incr.nulls + incr.errors + incr.out_of_order, 0);
    assert_int_equal(incr.last_integer, COUNT);
    printf("10000 pipelined INCRs in %llu ms\n", (unsigned long long)(now_ms() - started));
    sk_redis_async_destroy(client);

    /* Four connections: the commands spread over them, and each is answered once. */
    client = make_client(t->loop, &config, 4, 5000);
    assert_non_null(client);
    wait_connected(t, client);
    static unsigned char seen[2 * COUNT + 1];
    memset(seen, 0, sizeof(seen));
    seen_values = seen;
    seen_count = 2 * COUNT + 1;
    tally_t spread = {0};
    for (int i = 0; i < COUNT; ++i)
        sk_redis_async_command(client, NULL, 0, 2, argv, (size_t[]){4, strlen(argv[1])},
                               on_seen_reply, &spread);
    assert_int_equal(sk_test_run_until(t->loop, &spread.answered, COUNT), COUNT);
    assert_int_equal(spread.nulls + spread.errors, 0);
    for (int value = COUNT + 1; value <= 2 * COUNT; ++value)
        assert_int_equal(seen[value], 1);
    sk_redis_async_destroy(client);
}

static void test_eval_noscript(void **state)
{
    test_loop_t *t = *state;
    sk_redis_config_t config;
    parse_or_fail("SK_TEST_REDIS_URL", &config);
    sk_redis_async_t *client = make_client(t->loop, &config, 1, 5000);
    assert_non_null(client);
    tally_t tally = {0};
    const char *flush[] = {"SCRIPT", "FLUSH"};
    run_command(t, client, &tally, 2, flush);
    sk_redis_script_t script;
    sk_redis_script_init(&script, "return redis.call('SET', KEYS[1], ARGV[1])");
    const char *keys[] = {"sk-test-async:{script}"};
    size_t keylens[] = {strlen(keys[0])};
    const char *args[] = {"via-eval"};
    size_t arglens[] = {8};
    for (int round = 0; round < 2; ++round) { /* EVAL after NOSCRIPT, then EVALSHA */
        int before = tally.answered;
        tally.last_string[0] = '\0';
        sk_redis_async_eval(client, &script, 1, keys, keylens, 1, args, arglens, on_reply, &tally);
        assert_int_equal(sk_test_run_until(t->loop, &tally.answered, before + 1), before + 1);
        assert_int_equal(tally.errors + tally.nulls, 0);
        assert_string_equal(tally.last_string, "OK");
    }
    const char *get[] = {"GET", keys[0]};
    run_command(t, client, &tally, 2, get);
    assert_string_equal(tally.last_string, "via-eval");
    /* Other errors are passed on. */
    const char *bad[] = {"INCR", keys[0]};
    run_command(t, client, &tally, 2, bad);
    assert_int_equal(tally.errors, 1);
    sk_redis_async_destroy(client);
}

static void test_cluster_routing(void **state)
{
    test_loop_t *t = *state;
    sk_redis_config_t config;
    parse_or_fail("SK_TEST_REDIS_CLUSTER_URL", &config);
    sk_redis_async_t *client = make_client(t->loop, &config, 2, 5000);
    assert_non_null(client);
    enum { KEYS = 300 };
    tally_t tally = {0};
    char keys[KEYS][32];
    for (int i = 0; i < KEYS; ++i) {
        snprintf(keys[i], sizeof(keys[i]), "sk-test-async:route:%d", i);
        const char *argv[] = {"SET", keys[i], keys[i]};
        command(client, &tally, 3, argv);
    }
    assert_int_equal(sk_test_run_until(t->loop, &tally.answered, KEYS), KEYS);
    assert_int_equal(tally.nulls + tally.errors, 0);
    assert_true(sk_redis_async_is_connected(client));

    /* Every master holds some of them, and together exactly all: SCAN on each master. */
    char err[128];
    sk_redis_sync_t *sync = sk_redis_sync_connect(&config, 2000, err, sizeof(err));
    assert_non_null(sync);
    assert_int_equal(sk_redis_sync_master_count(sync), 3);
    int total = 0;
    for (size_t m = 0; m < 3; ++m) {
        int here = 0;
        char cursor[32] = "0";
        do {
            const char *argv[] = {"SCAN",  cursor, "MATCH", "sk-test-async:route:*",
                                  "COUNT", "1000"};
            size_t argvlen[6];
            for (int i = 0; i < 6; ++i)
                argvlen[i] = strlen(argv[i]);
            redisReply *reply = sk_redis_sync_command_on_master(sync, m, 6, argv, argvlen);
            assert_non_null(reply);
            assert_int_equal(reply->type, REDIS_REPLY_ARRAY);
            snprintf(cursor, sizeof(cursor), "%s", reply->element[0]->str);
            here += (int)reply->element[1]->elements;
            freeReplyObject(reply);
        } while (strcmp(cursor, "0") != 0);
        assert_true(here > 0);
        total += here;
    }
    assert_int_equal(total, KEYS);
    sk_redis_sync_close(sync);
    sk_redis_async_destroy(client);
}

/* A direct connection to one cluster node, for CLUSTER SETSLOT. */
static redisReply *node_command(const sk_redis_node_addr_t *node, const char *format, ...)
{
    redisContext *c = redisConnect(node->host, node->port);
    assert_non_null(c);
    assert_int_equal(c->err, 0);
    va_list ap;
    va_start(ap, format);
    redisReply *reply = redisvCommand(c, format, ap);
    va_end(ap);
    redisFree(c);
    assert_non_null(reply);
    return reply;
}

static void expect_ok(redisReply *reply)
{
    if (reply->type == REDIS_REPLY_ERROR)
        fail_msg("%s", reply->str);
    freeReplyObject(reply);
}

static void test_cluster_ask_and_moved(void **state)
{
    test_loop_t *t = *state;
    sk_redis_config_t config;
    parse_or_fail("SK_TEST_REDIS_CLUSTER_URL", &config);
    char err[128];
    sk_redis_sync_t *sync = sk_redis_sync_connect(&config, 2000, err, sizeof(err));
    assert_non_null(sync);

    /* The masters, their ids, and an empty slot to move from its owner to another. */
    static sk_redis_slot_map_t map;
    redisReply *slots = node_command(&config.seeds[0], "CLUSTER SLOTS");
    assert_int_equal(sk_redis_slot_map_from_reply(&map, slots, &config.seeds[0]), 0);
    freeReplyObject(slots);
    assert_int_equal(map.node_count, 3);
    char ids[3][64];
    for (int i = 0; i < 3; ++i) {
        redisReply *id = node_command(&map.nodes[i], "CLUSTER MYID");
        snprintf(ids[i], sizeof(ids[i]), "%s", id->str);
        freeReplyObject(id);
    }
    const char *key = "sk-test-async:{migrating}";
    int slot = sk_redis_key_slot(key, strlen(key));
    int from = map.slot_node[slot], to = (from + 1) % 3;
    expect_ok(node_command(&map.nodes[from], "DEL %s", key));

    sk_redis_async_t *client = make_client(t->loop, &config, 1, 5000);
    assert_non_null(client);
    wait_connected(t, client);

    /* Mid-migration: the owner answers ASK for a key it does not have. */
    expect_ok(node_command(&map.nodes[to], "CLUSTER SETSLOT %d IMPORTING %s", slot, ids[from]));
    expect_ok(node_command(&map.nodes[from], "CLUSTER SETSLOT %d MIGRATING %s", slot, ids[to]));
    tally_t tally = {0};
    const char *set[] = {"SET", key, "asked"};
    run_command(t, client, &tally, 3, set);
    assert_int_equal(tally.errors + tally.nulls, 0);
    assert_string_equal(tally.last_string, "OK");

    /* The migration ends: the old owner answers MOVED, the client follows and rereads. */
    for (int i = 0; i < 3; ++i)
        expect_ok(node_command(&map.nodes[i], "CLUSTER SETSLOT %d NODE %s", slot, ids[to]));
    const char *get[] = {"GET", key};
    run_command(t, client, &tally, 2, get);
    assert_int_equal(tally.errors + tally.nulls, 0);
    assert_string_equal(tally.last_string, "asked");
    redisReply *there = node_command(&map.nodes[to], "GET %s", key);
    assert_int_equal(there->type, REDIS_REPLY_STRING);
    freeReplyObject(there);

    /* And back, for the other tests. */
    const char *del[] = {"DEL", key};
    run_command(t, client, &tally, 2, del);
    for (int i = 0; i < 3; ++i)
        expect_ok(node_command(&map.nodes[i], "CLUSTER SETSLOT %d NODE %s", slot, ids[from]));
    run_command(t, client, &tally, 2, get);
    assert_int_equal(tally.errors + tally.nulls, 0);
    sk_redis_async_destroy(client);
    sk_redis_sync_close(sync);
}

static void test_server_killed_and_restarted(void **state)
{
    test_loop_t *t = *state;
    sk_test_redis_server_t server = {0};
    assert_int_equal(sk_test_redis_server_start(&server), 0);
    sk_redis_config_t config;
    char err[128];
    assert_int_equal(sk_redis_config_parse(server.url, &config, err, sizeof(err)), 0);
    sk_redis_async_t *client = make_client(t->loop, &config, 2, 2000);
    assert_non_null(client);
    wait_connected(t, client);
    tally_t tally = {0};
    const char *ping[] = {"PING"};
    run_command(t, client, &tally, 1, ping);
    assert_int_equal(tally.nulls, 0);

    /* Commands in flight when the server dies get NULL, quickly. */
    const char *block[] = {"BLPOP", "sk-test-async:never", "0"};
    command(client, &tally, 3, block);
    command(client, &tally, 3, block);
    for (int i = 0; i < 5; ++i)
        h2o_evloop_run(t->loop, 10);
    uint64_t killed_at = now_ms();
    sk_test_redis_server_kill(&server);
    assert_int_equal(sk_test_run_until(t->loop, &tally.answered, 3), 3);
    assert_int_equal(tally.nulls, 2);
    assert_true(now_ms() - killed_at < 500);
    assert_false(sk_redis_async_is_connected(client));

    /* While it is down, commands fail within a turn or two, never hang. */
    for (int i = 0; i < 20; ++i) {
        int before = tally.answered;
        uint64_t issued_at = now_ms();
        command(client, &tally, 1, ping);
        assert_int_equal(sk_test_run_until(t->loop, &tally.answered, before + 1), before + 1);
        assert_true(now_ms() - issued_at < 200);
    }
    assert_int_equal(tally.nulls, 22);

    /* Long enough down for the backoff to climb to 1.6 s: the next attempt of its own is
     * about 1.5 s away when the server comes back. */
    for (uint64_t until = now_ms() + 1700; now_ms() < until;)
        h2o_evloop_run(t->loop, 10);

    /* Back on the same port: the first command does not wait for that attempt, it makes one
     * and is answered (a request is not failed for seconds after Redis is back). */
    assert_int_equal(sk_test_redis_server_start(&server), 0);
    for (uint64_t until = now_ms() + 150; now_ms() < until;)
        h2o_evloop_run(t->loop, 10);
    uint64_t back_at = now_ms();
    run_command(t, client, &tally, 1, ping);
    assert_int_equal(tally.nulls, 22);
    assert_string_equal(tally.last_string, "PONG");
    assert_true(now_ms() - back_at < 500);
    wait_connected(t, client);
    sk_redis_async_destroy(client);
    sk_test_redis_server_cleanup(&server);
}

static void test_timeout(void **state)
{
    test_loop_t *t = *state;
    sk_test_redis_server_t server = {0};
    assert_int_equal(sk_test_redis_server_start(&server), 0);
    sk_redis_config_t config;
    char err[128];
    assert_int_equal(sk_redis_config_parse(server.url, &config, err, sizeof(err)), 0);
    sk_redis_async_t *client = make_client(t->loop, &config, 1, TIMEOUT_MS);
    assert_non_null(client);
    wait_connected(t, client);
    /* An idle connection is not timed out. */
    for (int i = 0; i < 50; ++i)
        h2o_evloop_run(t->loop, 10);
    assert_true(sk_redis_async_is_connected(client));

    kill(server.pid, SIGSTOP);
    tally_t tally = {0};
    const char *ping[] = {"PING"};
    uint64_t issued_at = now_ms();
    command(client, &tally, 1, ping);
    command(client, &tally, 1, ping);
    assert_int_equal(sk_test_run_until(t->loop, &tally.answered, 2), 2);
    uint64_t elapsed = now_ms() - issued_at;
    assert_int_equal(tally.nulls, 2);
    assert_true(elapsed >= TIMEOUT_MS - 20 && elapsed < TIMEOUT_MS + 500);

    kill(server.pid, SIGCONT);
    int ok = 0;
    for (int i = 0; i < 60 && !ok; ++i) {
        int nulls = tally.nulls;
        run_command(t, client, &tally, 1, ping);
        ok = tally.nulls == nulls;
        for (int j = 0; j < 10 && !ok; ++j)
            h2o_evloop_run(t->loop, 10);
    }
    assert_true(ok);
    sk_redis_async_destroy(client);
    sk_test_redis_server_cleanup(&server);
}

/* A callback that issues another command: during destroy it must get NULL at once. */
typedef struct chain {
    sk_redis_async_t *client;
    tally_t tally;
    int reissued;
} chain_t;

static void on_chain_reply(void *data, redisReply *reply)
{
    chain_t *chain = data;
    on_reply(&chain->tally, reply);
    if (!chain->reissued) {
        chain->reissued = 1;
        const char *argv[] = {"PING"};
        size_t argvlen[] = {4};
        sk_redis_async_command(chain->client, NULL, 0, 1, argv, argvlen, on_chain_reply, chain);
    }
}

static void test_destroy_with_pending(void **state)
{
    test_loop_t *t = *state;
    sk_redis_config_t config;
    parse_or_fail("SK_TEST_REDIS_URL", &config);

    /* Before the slot map is known. */
    sk_redis_async_t *client = make_client(t->loop, &config, 2, 5000);
    assert_non_null(client);
    tally_t tally = {0};
    const char *ping[] = {"PING"};
    for (int i = 0; i < 100; ++i)
        command(client, &tally, 1, ping);
    sk_redis_async_destroy(client);
    assert_int_equal(tally.answered, 100);
    assert_int_equal(tally.nulls, 100);

    /* Connected, with commands written and unwritten, and a callback issuing more. */
    client = make_client(t->loop, &config, 2, 5000);
    assert_non_null(client);
    wait_connected(t, client);
    memset(&tally, 0, sizeof(tally));
    const char *block[] = {"BLPOP", "sk-test-async:never", "0"};
    for (int i = 0; i < 10; ++i)
        command(client, &tally, 3, block);
    h2o_evloop_run(t->loop, 10);
    for (int i = 0; i < 10; ++i)
        command(client, &tally, 1, ping);
    chain_t chain = {.client = client};
    sk_redis_async_command(client, NULL, 0, 1, ping, (size_t[]){4}, on_chain_reply, &chain);
    sk_redis_async_destroy(client);
    assert_int_equal(tally.answered, 20);
    assert_int_equal(tally.nulls, 20);
    assert_int_equal(chain.tally.answered, 2);
    assert_int_equal(chain.tally.nulls, 2);
    for (int i = 0; i < 5; ++i)
        h2o_evloop_run(t->loop, 1); /* nothing of the client is left on the loop */
}

static void test_no_server(void **state)
{
    test_loop_t *t = *state;
    sk_test_redis_server_t server = {0};
    assert_int_equal(sk_test_redis_server_start(&server), 0);
    sk_redis_config_t config;
    char err[128];
    assert_int_equal(sk_redis_config_parse(server.url, &config, err, sizeof(err)), 0);
    sk_test_redis_server_cleanup(&server); /* a port where nobody listens */
    sk_redis_async_t *client = make_client(t->loop, &config, 1, 1000);
    assert_non_null(client);
    tally_t tally = {0};
    const char *ping[] = {"PING"};
    uint64_t issued_at = now_ms();
    command(client, &tally, 1, ping);
    assert_int_equal(sk_test_run_until(t->loop, &tally.answered, 1), 1);
    assert_int_equal(tally.nulls, 1);
    assert_true(now_ms() - issued_at < 500);
    assert_false(sk_redis_async_is_connected(client));
    sk_redis_async_destroy(client);
}

/* One command on `server` over a blocking connection; the reply is freed. */
static void server_command(const sk_test_redis_server_t *server, const char *format, ...)
{
    redisContext *c = redisConnect("127.0.0.1", server->port);
    assert_non_null(c);
    assert_int_equal(c->err, 0);
    va_list args;
    va_start(args, format);
    redisReply *reply = redisvCommand(c, format, args);
    va_end(args);
    assert_non_null(reply);
    if (reply->type == REDIS_REPLY_ERROR)
        fail_msg("%s: %s", format, reply->str);
    freeReplyObject(reply);
    redisFree(c);
}

/* Whether `master` reports a replica in sync. */
static int replica_online(const sk_test_redis_server_t *master)
{
    redisContext *c = redisConnect("127.0.0.1", master->port);
    redisReply *reply = c != NULL && c->err == 0 ? redisCommand(c, "INFO replication") : NULL;
    int online = reply != NULL && reply->type == REDIS_REPLY_STRING &&
                 strstr(reply->str, "state=online") != NULL;
    if (reply != NULL)
        freeReplyObject(reply);
    if (c != NULL)
        redisFree(c);
    return online;
}

static void replicated_incr(sk_redis_async_t *client, tally_t *tally)
{
    const char *argv[] = {"INCR", "sk-test-async:replicated"};
    size_t argvlen[] = {4, strlen(argv[1])};
    sk_redis_async_command_replicated(client, NULL, 0, 2, argv, argvlen, on_reply, tally);
}

/*
 * Replicated commands: answered once the replica holds them, NULL when it does not within
 * the WAIT timeout (a SIGSTOPped replica), answered again once it is back; a plain command
 * issued meanwhile on a second connection is not held behind the WAIT; and with more
 * replicas asked for than exist, every replicated command gets NULL.
 */
/* File-scope, so that a failing test's teardown still stops them. */
static sk_test_redis_server_t wait_master, wait_replica;

static int teardown_replication(void **state)
{
    sk_test_redis_server_cleanup(&wait_replica);
    sk_test_redis_server_cleanup(&wait_master);
    return teardown(state);
}

static void test_wait_replicas(void **state)
{
    test_loop_t *t = *state;
    assert_int_equal(sk_test_redis_server_start(&wait_master), 0);
    assert_int_equal(sk_test_redis_server_start(&wait_replica), 0);
    server_command(&wait_master, "CONFIG SET repl-diskless-sync-delay 0");
    server_command(&wait_replica, "REPLICAOF 127.0.0.1 %d", wait_master.port);
    uint64_t deadline = now_ms() + 10000;
    while (!replica_online(&wait_master) && now_ms() < deadline)
        h2o_evloop_run(t->loop, 20);
    assert_true(replica_online(&wait_master));
    /* A replica synced without disk gets the command stream only after its first ACK
     * (Redis 7), sent within a second: wait for one write to reach it. */
    redisContext *c = redisConnect("127.0.0.1", wait_master.port);
    assert_non_null(c);
    redisReply *reply = redisCommand(c, "SET sk-test-async:warm 1");
    freeReplyObject(reply);
    reply = redisCommand(c, "WAIT 1 5000");
    assert_non_null(reply);
    assert_int_equal(reply->integer, 1);
    freeReplyObject(reply);
    redisFree(c);

    sk_redis_config_t config;
    char err[128];
    assert_int_equal(sk_redis_config_parse(wait_master.url, &config, err, sizeof(err)), 0);
    sk_redis_async_options_t options = {
        .connections_per_node = 2, .timeout_ms = 2000, .wait_replicas = 1, .wait_timeout_ms = 100};
    sk_redis_async_t *client = sk_redis_async_create(t->loop, &config, &options);
    assert_non_null(client);
    wait_connected(t, client);

    /* A thousand in one turn (spread over both connections, one WAIT each): every one
     * answered, and the replica has them all. */
    tally_t tally = {0};
    for (int i = 0; i < 1000; ++i)
        replicated_incr(client, &tally);
    assert_int_equal(sk_test_run_until(t->loop, &tally.answered, 1000), 1000);
    assert_int_equal(tally.nulls + tally.errors, 0);
    redisContext *on_replica = redisConnect("127.0.0.1", wait_replica.port);
    assert_non_null(on_replica);
    redisReply *count = redisCommand(on_replica, "GET sk-test-async:replicated");
    assert_non_null(count);
    assert_int_equal(count->type, REDIS_REPLY_STRING);
    assert_string_equal(count->str, "1000");
    freeReplyObject(count);
    redisFree(on_replica);

    /* The replica stops: the replicated command is answered NULL after the WAIT timeout
     * (the write stands on the master); a PING issued after it is answered at once, on the
     * other connection. */
    kill(wait_replica.pid, SIGSTOP);
    tally_t held = {0}, plain = {0};
    uint64_t issued_at = now_ms();
    replicated_incr(client, &held);
    h2o_evloop_run(t->loop, 1);
    const char *ping[] = {"PING"};
    command(client, &plain, 1, ping);
    assert_int_equal(sk_test_run_until(t->loop, &plain.answered, 1), 1);
    assert_int_equal(plain.nulls, 0);
    assert_int_equal(held.answered, 0);
    uint64_t ping_ms = now_ms() - issued_at;
    assert_int_equal(sk_test_run_until(t->loop, &held.answered, 1), 1);
    uint64_t held_ms = now_ms() - issued_at;
    assert_int_equal(held.nulls, 1);
    printf("replica stopped: PING answered in %llu ms, the replicated INCR NULL in %llu ms\n",
           (unsigned long long)ping_ms, (unsigned long long)held_ms);
    assert_true(held_ms >= 90 && held_ms < 1000);
    assert_true(ping_ms < 90);

    /* Back: answered again, the count including the write the NULL covered. */
    kill(wait_replica.pid, SIGCONT);
    tally_t again = {0};
    again.last_integer = 1001;
    replicated_incr(client, &again);
    assert_int_equal(sk_test_run_until(t->loop, &again.answered, 1), 1);
    assert_int_equal(again.nulls + again.errors + again.out_of_order, 0);
    assert_int_equal(again.last_integer, 1002);
    sk_redis_async_destroy(client);

    /* Two replicas asked for, one connected: never acknowledged. */
    options.wait_replicas = 2;
    client = sk_redis_async_create(t->loop, &config, &options);
    assert_non_null(client);
    wait_connected(t, client);
    tally_t short_of = {0};
    for (int i = 0; i < 10; ++i)
        replicated_incr(client, &short_of);
    assert_int_equal(sk_test_run_until(t->loop, &short_of.answered, 10), 10);
    assert_int_equal(short_of.nulls, 10);
    sk_redis_async_destroy(client);
    sk_test_redis_server_cleanup(&wait_replica);
    sk_test_redis_server_cleanup(&wait_master);
}

/* Behind Sentinels that do not answer: resolve says so, the watcher knows no master, and a
 * client's commands fail fast (NULL) instead of waiting; stopping the watcher is quick. */
static void test_sentinel_unreachable(void **state)
{
    test_loop_t *t = *state;
    sk_test_redis_server_t server = {0};
    assert_int_equal(sk_test_redis_server_start(&server), 0);
    char url[128];
    snprintf(url, sizeof(url), "redis-sentinel://127.0.0.1:%d#nobody", server.port);
    sk_test_redis_server_cleanup(&server); /* a port where nobody listens */
    sk_redis_config_t config;
    char err[256] = "";
    assert_int_equal(sk_redis_config_parse(url, &config, err, sizeof(err)), 0);
    sk_redis_node_addr_t master;
    assert_int_equal(sk_redis_sentinel_resolve(&config, 500, &master, err, sizeof(err)),
                     SK_EUNAVAILABLE);
    assert_non_null(strstr(err, "does not answer"));

    sk_redis_sentinel_t *sentinel = sk_redis_sentinel_start(&config);
    assert_non_null(sentinel);
    sk_redis_async_options_t options = {
        .connections_per_node = 1, .timeout_ms = 1000, .sentinel = sentinel};
    sk_redis_async_t *client = sk_redis_async_create(t->loop, &config, &options);
    assert_non_null(client);
    tally_t tally = {0};
    const char *ping[] = {"PING"};
    uint64_t issued_at = now_ms();
    command(client, &tally, 1, ping);
    assert_int_equal(sk_test_run_until(t->loop, &tally.answered, 1), 1);
    assert_int_equal(tally.nulls, 1);
    assert_true(now_ms() - issued_at < 500);
    assert_int_equal(sk_redis_sentinel_generation(sentinel), 0);
    sk_redis_async_destroy(client);
    uint64_t stop_at = now_ms();
    sk_redis_sentinel_stop(sentinel);
    assert_true(now_ms() - stop_at < 1500);

    /* A Sentinel URL without a watcher is refused. */
    options.sentinel = NULL;
    assert_null(sk_redis_async_create(t->loop, &config, &options));
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pipelining, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eval_noscript, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_routing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_ask_and_moved, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_killed_and_restarted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_with_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait_replicas, setup, teardown_replication),
        cmocka_unit_test_setup_teardown(test_sentinel_unreachable, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
