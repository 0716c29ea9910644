/*
 * A redis-server of the test's own, on a free loopback port in a temporary directory, for
 * the tests that kill, stop or restart their server (the shared servers of backends.h
 * must stay up for the other tests).
 */
#ifndef SK_TEST_REDIS_SERVER_H
#define SK_TEST_REDIS_SERVER_H

#include <sys/types.h>

typedef struct sk_test_redis_server {
    pid_t pid; /* 0: not running */
    int port;
    char dir[64];
    char url[96]; /* redis://127.0.0.1:PORT */
} sk_test_redis_server_t;

/* Starts redis-server on a free port (or on server->port when not 0, to restart it where it
 * was) and waits until it answers PING, for at most five seconds. Returns 0 or -1. */
int sk_test_redis_server_start(sk_test_redis_server_t *server);

/* SIGKILL and reap; the directory stays for a restart. */
void sk_test_redis_server_kill(sk_test_redis_server_t *server);

/* Kills the server (when running) and removes its directory. */
void sk_test_redis_server_cleanup(sk_test_redis_server_t *server);

#endif
