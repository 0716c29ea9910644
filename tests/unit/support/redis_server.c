#include "redis_server.h"

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A port nobody listens on now: bind to port 0 and let the kernel choose. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(addr);
    int port = -1;
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 &&
        getsockname(fd, (struct sockaddr *)&addr, &len) == 0)
        port = ntohs(addr.sin_port);
    close(fd);
    return port;
}

static int answers_ping(int port)
{
    struct timeval timeout = {0, 200000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, timeout);
    int ok = 0;
    if (c != NULL && c->err == 0) {
        redisSetTimeout(c, timeout);
        redisReply *reply = redisCommand(c, "PING");
        ok = reply != NULL && reply->type == REDIS_REPLY_STATUS;
        if (reply != NULL)
            freeReplyObject(reply);
    }
    if (c != NULL)
        redisFree(c);
    return ok;
}

int sk_test_redis_server_start(sk_test_redis_server_t *server)
{
    if (server->dir[0] == '\0') {
        snprintf(server->dir, sizeof(server->dir), "/tmp/sk-test-redis-XXXXXX");
        if (mkdtemp(server->dir) == NULL)
            return -1;
    }
    if (server->port == 0 && (server->port = free_port()) < 0)
        return -1;
    snprintf(server->url, sizeof(server->url), "redis://127.0.0.1:%d", server->port);
    char port_text[16], log_path[96];
    snprintf(log_path, sizeof(log_path), "%s/redis.log", server->dir);
    snprintf(port_text, sizeof(port_text), "%d", server->port);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        execlp("redis-server", "redis-server", "--port", port_text, "--bind", "127.0.0.1", "--dir",
               server->dir, "--save", "", "--appendonly", "no", "--loglevel", "warning",
               "--logfile", log_path, (char *)NULL);
        _exit(127);
    }
    server->pid = pid;
    for (int i = 0; i < 250; ++i) {
        if (answers_ping(server->port))
            return 0;
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            server->pid = 0;
            return -1;
        }
        struct timespec pause = {0, 20000000};
        nanosleep(&pause, NULL);
    }
    sk_test_redis_server_kill(server);
    return -1;
}

void sk_test_redis_server_kill(sk_test_redis_server_t *server)
{
    if (server->pid > 0) {
        kill(server->pid, SIGCONT); /* a stopped process dies on SIGKILL too; be explicit */
        kill(server->pid, SIGKILL);
        waitpid(server->pid, NULL, 0);
        server->pid = 0;
    }
}

void sk_test_redis_server_cleanup(sk_test_redis_server_t *server)
{
    sk_test_redis_server_kill(server);
    if (server->dir[0] != '\0') {
        char command[128];
        snprintf(command, sizeof(command), "rm -rf '%s'", server->dir);
        if (system(command) != 0)
            fprintf(stderr, "could not remove %s\n", server->dir);
        server->dir[0] = '\0';
    }
}
