"""The answers h2o gives by itself, before any handler of ours runs, over raw sockets: each
has API.md's JSON body ("every response with a body is JSON ... and always has the key
errMsg"), the Content-Length of that body, and closes the connection. Three mechanisms give
them: src/http/bad_request.c (the 400 for a head h2o cannot parse, including the heads
src/http/parse_guard.c refuses), and src/http/error_json.c's filter (the 400, 413 and 417
h2o sends through h2o_send_error_generic)."""

import json

import pytest

from seckill_harness import JSON_CT, SocketReader, connect

BAD = "Bad request."

# name: (raw request, method for reading the answer, status, errMsg)
CASES = {
    # bad_request.c: what h2o cannot parse, and what parse_guard.c makes it refuse
    "garbage": (b"GARBAGE\r\n\r\n", "GET", 400, BAD),
    "folded": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n", "GET", 400, BAD),
    "two-lengths": (b"POST /api/users HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                    b"Content-Length: 3\r\n\r\n{}", "POST", 400, BAD),
    "length-and-chunked": (b"POST /api/users HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                           b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "POST", 400, BAD),
    # error_json.c: h2o_send_error_generic on the fallback path
    "broken-length": (b"POST /api/users HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
                      "POST", 400, BAD),
    "unknown-coding": (b"POST /api/users HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
                       "POST", 400, BAD),
    "broken-chunk": (b"POST /api/users HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                     b"\r\nzz\r\n", "POST", 400, BAD),
    # over h2o's own limit (1 MiB with the default --max-body): refused before the body
    "length-over-h2o-limit": (b"POST /api/users HTTP/1.1\r\nHost: x\r\n"
                              b"Content-Length: 10000000\r\n\r\n{", "POST", 413,
                              "Request body too large."),
    "unknown-expectation": (b"POST /api/users HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n"
                            b"Content-Length: 2\r\n\r\n", "POST", 417, "Expectation failed."),
    # HEAD: the same headers, and no body
    "head-unknown-expectation": (b"HEAD /healthz HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n"
                                 b"Content-Length: 0\r\n\r\n", "HEAD", 417, None),
}


@pytest.mark.parametrize("name", list(CASES))
def test_h2o_error_is_json(server, name):
    raw, method, status, err_msg = CASES[name]
    sock = connect(server)
    try:
        sock.sendall(raw)
        reader = SocketReader(sock)
        response = reader.read_response(method)
        assert response.status == status, response
        assert response.header("content-type") == JSON_CT, response.headers
        if err_msg is None:
            assert response.body == b""
            expected = len(json.dumps({"errMsg": "Expectation failed."}, separators=(",", ":")))
            assert int(response.header("content-length")) == expected, response.headers
        else:
            assert int(response.header("content-length")) == len(response.body), response
            assert json.loads(response.body) == {"errMsg": err_msg}, response.body
        assert reader.closed_by_peer(), "connection kept open after h2o's own error"
    finally:
        sock.close()


def test_chunked_body_over_h2o_limit_is_json(server):
    """A chunked body growing past h2o's limit (1 MiB) is cut off by h2o with its 413."""
    sock = connect(server)
    try:
        sock.sendall(b"POST /api/users HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n%s\r\n" % (65536, b"p" * 65536)
        reader = SocketReader(sock)
        try:
            for _ in range(20):
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # h2o answered and closed while we were still sending
        response = reader.read_response("POST")
        assert response.status == 413, response
        assert response.header("content-type") == JSON_CT, response.headers
        assert json.loads(response.body) == {"errMsg": "Request body too large."}
    finally:
        sock.close()
