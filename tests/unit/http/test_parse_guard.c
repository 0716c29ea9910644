/*
 * Tests of src/http/parse_guard.c through phr_parse_request(), as libh2o's http1.c calls
 * it: ordinary heads parse as picohttpparser parses them (repeated identical lengths
 * included, incomplete heads stay incomplete); folded lines, two different lengths and a
 * length with Transfer-Encoding are malformed (-1). In a binary without the guard the
 * call reaches libh2o's own parser, which accepts all three.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <h2o.h>

#include "http/parse_guard.h"

static struct phr_header headers[16];

static int parse(const char *head)
{
    const char *method, *path;
    size_t method_len, path_len, num_headers = 16;
    int minor_version;
    return phr_parse_request(head, strlen(head), &method, &method_len, &path, &path_len,
                             &minor_version, headers, &num_headers, 0);
}

static void test_ordinary_heads_parse(void **state)
{
    (void)state;
    const char *get = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\n";
    assert_int_equal(parse(get), (int)strlen(get));
    const char *post = "POST /api/users HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";
    assert_int_equal(parse(post), (int)strlen(post) - 2);
    /* read as http1.c reads it (and so libh2o, the guard's next definition, is loaded) */
    assert_int_equal(h2o_strtosize(headers[1].value, headers[1].value_len), 2);
    const char *same = "POST /a HTTP/1.1\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\n";
    assert_int_equal(parse(same), (int)strlen(same));
    const char *chunked = "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_int_equal(parse(chunked), (int)strlen(chunked));
    assert_int_equal(parse("GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n"), -2);
    assert_int_equal(parse("GARBAGE\r\n\r\n"), -1);
}

static void test_folded_lines_refused(void **state)
{
    (void)state;
    assert_int_equal(parse("GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n"), -1);
    assert_int_equal(parse("GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\t2\r\n\r\n"), -1);
    assert_int_equal(parse("GET /healthz HTTP/1.1\r\n Host: x\r\n\r\n"), -1);
    assert_int_equal(parse("POST /a HTTP/1.1\r\nContent-Length: 20\r\n\t0\r\n\r\n"), -1);
}

static void test_ambiguous_framing_refused(void **state)
{
    (void)state;
    assert_int_equal(parse("POST /a HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n"),
                     -1);
    assert_int_equal(parse("POST /a HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 02\r\n\r\n"),
                     -1);
    assert_int_equal(
        parse("POST /a HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), -1);
    assert_int_equal(
        parse("POST /a HTTP/1.1\r\nTRANSFER-ENCODING: chunked\r\ncontent-length: 5\r\n\r\n"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ordinary_heads_parse),
        cmocka_unit_test(test_folded_lines_refused),
        cmocka_unit_test(test_ambiguous_framing_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
