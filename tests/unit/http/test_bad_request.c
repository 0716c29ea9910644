/*
 * Tests of src/http/bad_request.c through h2o_socket_write() on a real h2o evloop socket:
 * h2o's text 400 for an unparsable head reaches the peer as the JSON 400, and any other
 * write, the same bytes split in two buffers included, reaches it unchanged. In a binary
 * without the interposition the peer reads h2o's text 400.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <h2o.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/bad_request.h"

static int writes_done;

static void on_written(h2o_socket_t *sock, const char *err)
{
    (void)sock;
    assert_null(err);
    ++writes_done;
}

/* Writes `bufs` with h2o and returns what the peer received (static buffer). */
static const char *written(h2o_iovec_t *bufs, size_t bufcnt)
{
    static char received[1024];
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    h2o_evloop_t *loop = h2o_evloop_create();
    h2o_socket_t *sock = h2o_evloop_socket_create(loop, fds[0], H2O_SOCKET_FLAG_DONT_READ);
    writes_done = 0;
    h2o_socket_write(sock, bufs, bufcnt, on_written);
    for (int i = 0; i != 100 && writes_done == 0; ++i)
        h2o_evloop_run(loop, 10);
    assert_int_equal(writes_done, 1);
    h2o_socket_close(sock);
    h2o_evloop_run(loop, 0);
    h2o_evloop_destroy(loop);
    ssize_t len = read(fds[1], received, sizeof(received) - 1);
    assert_true(len > 0);
    received[len] = '\0';
    close(fds[1]);
    return received;
}

static void test_h2o_text_400_becomes_json(void **state)
{
    (void)state;
    h2o_iovec_t text = h2o_iovec_init(H2O_STRLIT(SK_BAD_REQUEST_H2O));
    assert_string_equal(written(&text, 1), SK_BAD_REQUEST_JSON);
}

static void test_other_writes_pass_unchanged(void **state)
{
    (void)state;
    h2o_iovec_t other = h2o_iovec_init(H2O_STRLIT("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
    assert_string_equal(written(&other, 1), "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    const char *text = SK_BAD_REQUEST_H2O;
    h2o_iovec_t halves[2] = {h2o_iovec_init(text, 20),
                             h2o_iovec_init(text + 20, strlen(text) - 20)};
    assert_string_equal(written(halves, 2), SK_BAD_REQUEST_H2O);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_h2o_text_400_becomes_json),
        cmocka_unit_test(test_other_writes_pass_unchanged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
