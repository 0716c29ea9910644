/*
 * The backends' standalone Redis (backends.h) seen through the service's sync client, on
 * a database number of one test program's own (no other test uses it), emptied when
 * opened: tests of the hot state's fixed key names never meet another program's keys.
 */
#ifndef SK_TEST_REDIS_DB_H
#define SK_TEST_REDIS_DB_H

#include "client/redis/sync.h"

/* Connects, SELECTs `db` (1..15) and FLUSHDBs it. A missing backend fails the test. */
sk_redis_sync_t *sk_test_redis_db_open(int db, sk_redis_config_t *config);

/* A command of NUL-terminated words; returns the reply (the caller frees it). A lost
 * connection or an error reply fails the test. */
redisReply *sk_test_redis_db_run(sk_redis_sync_t *redis, int argc, const char **argv);

/* The integer reply of a command of words (XLEN, ZCARD, ...). */
long long sk_test_redis_db_number(sk_redis_sync_t *redis, int argc, const char **argv);

#endif
