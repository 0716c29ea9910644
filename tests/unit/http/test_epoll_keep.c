/*
 * Tests of src/http/epoll_keep.c on a real h2o evloop, read back from the kernel
 * (/proc/self/fdinfo of the loop's epoll fd lists every registration it holds): a socket
 * h2o stops reading stays registered, and starting again costs nothing; an event on a kept
 * socket is not passed to h2o and removes the registration for real; reading again
 * registers anew and sees the data; closing a kept socket whose file a dup keeps open
 * removes its registration; a loop made after the first one was destroyed is managed the
 * same.
 * Every check that a registration is still there fails in a binary without the
 * interposition, which is what keeps it linked into every executable.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <h2o.h>
#include <sys/socket.h>
#include <unistd.h>

/* Marks in `seen` (1024 entries) every fd of the process that is an epoll instance. */
static void mark_epoll_fds(char *seen)
{
    DIR *dir = opendir("/proc/self/fd");
    assert_non_null(dir);
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        char path[300], target[64];
        snprintf(path, sizeof(path), "/proc/self/fd/%s", entry->d_name);
        ssize_t len = readlink(path, target, sizeof(target) - 1);
        if (len <= 0)
            continue;
        target[len] = '\0';
        int fd = atoi(entry->d_name);
        if (strcmp(target, "anon_inode:[eventpoll]") == 0 && fd < 1024)
            seen[fd] = 1;
    }
    closedir(dir);
}

/* A new loop and its epoll fd: the one epoll instance that was not there before (h2o 2.2.5
 * never closes a destroyed loop's). */
static h2o_evloop_t *create_loop(int *epfd)
{
    char before[1024] = {0}, after[1024] = {0};
    mark_epoll_fds(before);
    h2o_evloop_t *loop = h2o_evloop_create();
    mark_epoll_fds(after);
    *epfd = -1;
    for (int fd = 0; fd != 1024; ++fd) {
        if (after[fd] && !before[fd]) {
            assert_int_equal(*epfd, -1);
            *epfd = fd;
        }
    }
    assert_true(*epfd >= 0);
    return loop;
}

/* Whether the kernel holds a registration of `fd` on epoll fd `epfd`. */
static int registered(int epfd, int fd)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", epfd);
    FILE *info = fopen(path, "r");
    assert_non_null(info);
    int found = 0, tfd;
    while (fgets(line, sizeof(line), info) != NULL) {
        if (sscanf(line, "tfd: %d", &tfd) == 1 && tfd == fd)
            found = 1;
    }
    fclose(info);
    return found;
}

typedef struct pair {
    h2o_evloop_t *loop;
    int epfd;
    int peer;
    h2o_socket_t *sock;
    int sock_fd;
    int reads;
} pair_t;

static void on_read(h2o_socket_t *sock, const char *err)
{
    pair_t *pair = sock->data;
    assert_null(err);
    ++pair->reads;
    h2o_buffer_consume(&sock->input, sock->input->size);
}

static void pair_open(pair_t *pair)
{
    memset(pair, 0, sizeof(*pair));
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    pair->loop = create_loop(&pair->epfd);
    pair->sock_fd = fds[0];
    pair->peer = fds[1];
    pair->sock = h2o_evloop_socket_create(pair->loop, fds[0], 0);
    pair->sock->data = pair;
}

/* One turn of the loop: h2o applies what changed (epoll_ctl), then polls. */
static void turn(pair_t *pair, int32_t max_wait_ms)
{
    h2o_evloop_run(pair->loop, max_wait_ms);
}

static void pair_close(pair_t *pair)
{
    if (pair->sock != NULL)
        h2o_socket_close(pair->sock);
    turn(pair, 0);
    close(pair->peer);
    h2o_evloop_destroy(pair->loop);
}

/* Reads, then stops reading (h2o's epoll_ctl ADD, then DEL): the socket is kept. */
static void read_then_stop(pair_t *pair)
{
    h2o_socket_read_start(pair->sock, on_read);
    turn(pair, 0);
    assert_true(registered(pair->epfd, pair->sock_fd));
    h2o_socket_read_stop(pair->sock);
    turn(pair, 0);
    assert_true(registered(pair->epfd, pair->sock_fd)); /* the DEL only marked it as kept */
}

static void test_stopped_socket_stays_registered(void **state)
{
    (void)state;
    pair_t pair;
    pair_open(&pair);
    read_then_stop(&pair);
    h2o_socket_read_start(pair.sock, on_read); /* its ADD: nothing to do */
    turn(&pair, 0);
    assert_true(registered(pair.epfd, pair.sock_fd));
    assert_int_equal(write(pair.peer, "x", 1), 1);
    turn(&pair, 100);
    assert_int_equal(pair.reads, 1);
    pair_close(&pair);
}

static void test_event_on_kept_socket_removes_it(void **state)
{
    (void)state;
    pair_t pair;
    pair_open(&pair);
    read_then_stop(&pair);
    assert_int_equal(write(pair.peer, "x", 1), 1);
    turn(&pair, 100); /* the event arrives, is dropped, and the registration goes */
    assert_int_equal(pair.reads, 0);
    assert_false(registered(pair.epfd, pair.sock_fd));

    h2o_socket_read_start(pair.sock, on_read); /* a real ADD again, and the data is there */
    turn(&pair, 0);
    assert_true(registered(pair.epfd, pair.sock_fd));
    turn(&pair, 100);
    assert_int_equal(pair.reads, 1);
    pair_close(&pair);
}

static void test_close_of_kept_socket_removes_it(void **state)
{
    (void)state;
    pair_t pair;
    pair_open(&pair);
    int duplicate = dup(pair.sock_fd); /* keeps the file, and so its registration, alive */
    assert_true(duplicate >= 0);
    read_then_stop(&pair);
    h2o_socket_close(pair.sock);
    pair.sock = NULL;
    turn(&pair, 0);
    assert_false(registered(pair.epfd, pair.sock_fd));
    close(duplicate);
    pair_close(&pair);
}

static void test_next_loop_is_managed(void **state)
{
    (void)state;
    /* The loops of the tests before were destroyed, their sockets closed: this one is the
     * thread's loop now, though h2o left their epoll fds open. */
    pair_t pair;
    pair_open(&pair);
    read_then_stop(&pair);
    pair_close(&pair);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stopped_socket_stays_registered),
        cmocka_unit_test(test_event_on_kept_socket_removes_it),
        cmocka_unit_test(test_close_of_kept_socket_removes_it),
        cmocka_unit_test(test_next_loop_is_managed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
