/* A Redis database of the test's own (see redis_db.h). */
#include "redis_db.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backends.h"

sk_redis_sync_t *sk_test_redis_db_open(int db, sk_redis_config_t *config)
{
    const char *url = sk_test_backend("SK_TEST_REDIS_URL");
    if (url == NULL)
        fail_msg("SK_TEST_REDIS_URL is not set: the test backends did not start");
    char err[256];
    if (sk_redis_config_parse(url, config, err, sizeof(err)) != 0)
        fail_msg("SK_TEST_REDIS_URL: %s", err);
    config->db = db;
    sk_redis_sync_t *redis = sk_redis_sync_connect(config, 2000, err, sizeof(err));
    if (redis == NULL)
        fail_msg("%s", err);
    const char *flush[] = {"FLUSHDB"};
    size_t flush_len[] = {7};
    redisReply *reply = sk_redis_sync_command_on_master(redis, 0, 1, flush, flush_len);
    if (reply == NULL || reply->type != REDIS_REPLY_STATUS)
        fail_msg("FLUSHDB failed");
    freeReplyObject(reply);
    return redis;
}

redisReply *sk_test_redis_db_run(sk_redis_sync_t *redis, int argc, const char **argv)
{
    size_t lens[32];
    assert_true(argc <= 32);
    for (int i = 0; i != argc; ++i)
        lens[i] = strlen(argv[i]);
    redisReply *reply = sk_redis_sync_command(redis, NULL, 0, argc, argv, lens);
    if (reply == NULL)
        fail_msg("%s: no reply", argv[0]);
    if (reply->type == REDIS_REPLY_ERROR)
        fail_msg("%s: %s", argv[0], reply->str);
    return reply;
}

long long sk_test_redis_db_number(sk_redis_sync_t *redis, int argc, const char **argv)
{
    redisReply *reply = sk_test_redis_db_run(redis, argc, argv);
    if (reply->type != REDIS_REPLY_INTEGER)
        fail_msg("%s: not an integer reply", argv[0]);
    long long value = reply->integer;
    freeReplyObject(reply);
    return value;
}
