/*
 * Tests of src/client/redis/sync.c against real servers (backends.h): commands and the
 * EVALSHA → EVAL fallback on the standalone Redis; keys routed over the three masters of
 * the Cluster and commands sent to each master; and on a redis-server of the test's own: a
 * killed server (NULL, promptly), the restart on the same port (the next call reconnects
 * by itself), and a stopped server (NULL within the timeout). A missing backend fails.
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
#include "redis_server.h"
#include "client/redis/sync.h"

static uint64_t now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

static sk_redis_sync_t *connect_to(const char *url_key, uint64_t timeout_ms)
{
    const char *url = sk_test_backend(url_key);
    if (url == NULL)
        fail_msg("%s is not set: the test backends did not start", url_key);
    sk_redis_config_t config;
    char err[128];
    if (sk_redis_config_parse(url, &config, err, sizeof(err)) != 0)
        fail_msg("%s: %s", url_key, err);
    sk_redis_sync_t *client = sk_redis_sync_connect(&config, timeout_ms, err, sizeof(err));
    if (client == NULL)
        fail_msg("%s", err);
    return client;
}

/* Runs a command given as words; returns the reply (the caller frees it). */
static redisReply *run(sk_redis_sync_t *client, int argc, const char **argv)
{
    size_t argvlen[8];
    for (int i = 0; i < argc; ++i)
        argvlen[i] = strlen(argv[i]);
    return sk_redis_sync_command(client, NULL, 0, argc, argv, argvlen);
}

static void expect_reply(redisReply *reply, const char *expected)
{
    assert_non_null(reply);
    if (reply->type == REDIS_REPLY_ERROR)
        fail_msg("error reply: %s", reply->str);
    assert_string_equal(reply->str, expected);
    freeReplyObject(reply);
}

static void test_standalone(void **state)
{
    (void)state;
    sk_redis_sync_t *client = connect_to("SK_TEST_REDIS_URL", 2000);
    assert_false(sk_redis_sync_is_cluster(client));
    assert_int_equal(sk_redis_sync_master_count(client), 1);
    const char *set[] = {"SET", "sk-test-sync:k", "v"};
    expect_reply(run(client, 3, set), "OK");
    const char *get[] = {"GET", "sk-test-sync:k"};
    expect_reply(run(client, 2, get), "v");

    const char *flush[] = {"SCRIPT", "FLUSH"};
    expect_reply(run(client, 2, flush), "OK");
    sk_redis_script_t script;
    sk_redis_script_init(&script, "return redis.call('GET', KEYS[1]) .. ARGV[1]");
    const char *keys[] = {"sk-test-sync:k"};
    size_t keylens[] = {strlen(keys[0])};
    const char *args[] = {"!"};
    size_t arglens[] = {1};
    for (int round = 0; round < 2; ++round) /* EVAL after NOSCRIPT, then EVALSHA */
        expect_reply(sk_redis_sync_eval(client, &script, 1, keys, keylens, 1, args, arglens), "v!");
    const char *dbsize[] = {"DBSIZE"};
    redisReply *reply = sk_redis_sync_command_on_master(client, 0, 1, dbsize, (size_t[]){6});
    assert_non_null(reply);
    assert_int_equal(reply->type, REDIS_REPLY_INTEGER);
    freeReplyObject(reply);
    assert_null(sk_redis_sync_command_on_master(client, 1, 1, dbsize, (size_t[]){6}));
    sk_redis_sync_close(client);
}

static void test_cluster(void **state)
{
    (void)state;
    sk_redis_sync_t *client = connect_to("SK_TEST_REDIS_CLUSTER_URL", 2000);
    assert_true(sk_redis_sync_is_cluster(client));
    assert_int_equal(sk_redis_sync_master_count(client), 3);
    enum { KEYS = 200 };
    for (int i = 0; i < KEYS; ++i) {
        char key[48];
        snprintf(key, sizeof(key), "sk-test-sync:route:%d", i);
        const char *set[] = {"SET", key, key};
        expect_reply(run(client, 3, set), "OK");
        const char *get[] = {"GET", key};
        expect_reply(run(client, 2, get), key);
    }
    /* Keys sharing a hash tag go to one node, so one script may touch them all. */
    sk_redis_script_t script;
    sk_redis_script_init(&script, "redis.call('SET', KEYS[1], ARGV[1]) "
                                  "return redis.call('SET', KEYS[2], ARGV[1])");
    const char *keys[] = {"sk-test-sync:{tag}a", "sk-test-sync:{tag}b"};
    size_t keylens[] = {strlen(keys[0]), strlen(keys[1])};
    const char *args[] = {"x"};
    size_t arglens[] = {1};
    expect_reply(sk_redis_sync_eval(client, &script, 2, keys, keylens, 1, args, arglens), "OK");
    int masters_with_keys = 0;
    for (size_t m = 0; m < 3; ++m) {
        const char *argv[] = {"SCAN", "0", "MATCH", "sk-test-sync:route:*", "COUNT", "100000"};
        size_t argvlen[6];
        for (int i = 0; i < 6; ++i)
            argvlen[i] = strlen(argv[i]);
        redisReply *reply = sk_redis_sync_command_on_master(client, m, 6, argv, argvlen);
        assert_non_null(reply);
        assert_int_equal(reply->type, REDIS_REPLY_ARRAY);
        masters_with_keys += reply->element[1]->elements > 0;
        freeReplyObject(reply);
    }
    assert_int_equal(masters_with_keys, 3);
    sk_redis_sync_close(client);
}

static void test_failures(void **state)
{
    (void)state;
    sk_test_redis_server_t server = {0};
    assert_int_equal(sk_test_redis_server_start(&server), 0);
    setenv("SK_TEST_OWN_REDIS_URL", server.url, 1);
    sk_redis_sync_t *client = connect_to("SK_TEST_OWN_REDIS_URL", 300);
    const char *ping[] = {"PING"};
    expect_reply(run(client, 1, ping), "PONG");

    sk_test_redis_server_kill(&server);
    uint64_t started = now_ms();
    assert_null(run(client, 1, ping));
    assert_null(run(client, 1, ping));
    assert_true(now_ms() - started < 1000);

    /* Restarted: the idle connection is broken, the call reconnects and succeeds. */
    assert_int_equal(sk_test_redis_server_start(&server), 0);
    expect_reply(run(client, 1, ping), "PONG");
    sk_test_redis_server_kill(&server);
    assert_int_equal(sk_test_redis_server_start(&server), 0);
    expect_reply(run(client, 1, ping), "PONG");

    /* Stopped: NULL within about the timeout, then fine again. */
    kill(server.pid, SIGSTOP);
    started = now_ms();
    assert_null(run(client, 1, ping));
    uint64_t elapsed = now_ms() - started;
    assert_true(elapsed >= 250 && elapsed < 1500);
    kill(server.pid, SIGCONT);
    expect_reply(run(client, 1, ping), "PONG");
    sk_redis_sync_close(client);

    /* Nobody listening: connect fails with a message. */
    sk_redis_config_t config;
    char err[128] = "";
    assert_int_equal(sk_redis_config_parse(server.url, &config, err, sizeof(err)), 0);
    sk_test_redis_server_cleanup(&server);
    assert_null(sk_redis_sync_connect(&config, 300, err, sizeof(err)));
    assert_true(err[0] != '\0');
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_standalone),
        cmocka_unit_test(test_cluster),
        cmocka_unit_test(test_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
