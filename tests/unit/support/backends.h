/*
 * Where the test servers of the distributed deployment listen. CTest's `backends_start`
 * fixture (tests/backends/backends.py) starts a Redis, a three-master Redis Cluster and a
 * MariaDB on free loopback ports and writes their URLs, one KEY=VALUE a line, to the file
 * that the environment variable SK_TEST_BACKENDS names:
 *
 *   SK_TEST_REDIS_URL          redis://127.0.0.1:PORT/0       (standalone, AOF on)
 *   SK_TEST_REDIS_CLUSTER_URL  redis://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3
 *   SK_TEST_MYSQL_URL          mysql://USER:PASSWORD@127.0.0.1:PORT/DATABASE
 */
#ifndef SK_TEST_BACKENDS_H
#define SK_TEST_BACKENDS_H

/* The value of `key`, or NULL when the file or the key is missing (the caller fails the
 * test: a test of a backend never passes without its backend). The string lives until
 * exit. The process environment wins over the file, for running a test by hand. */
const char *sk_test_backend(const char *key);

#endif
