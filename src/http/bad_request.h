/*
 * The JSON body of the 400 that libh2o 2.2.5 answers a request head it cannot parse
 * (API.md: every response with a body is JSON with errMsg). h2o writes that answer as one
 * constant text/plain buffer straight to the socket (http1.c, send_bad_request()), before
 * the request is bound to any host or path, so no filter, handler or error hook of h2o's
 * ever sees it; the only place to change it is the write.
 *
 * Invariants:
 * - Interposes h2o_socket_write(), which libh2o exports and calls through its PLT. The
 *   definition here wins in the whole process, for every socket write h2o makes on any
 *   thread (stateless; the cost is one length compare per write). A write of exactly one
 *   buffer equal, byte for byte, to h2o's text 400 is replaced by the same response with
 *   a JSON body ({"errMsg":"Bad request."}, still "Connection: close"); every other write
 *   passes through unchanged.
 * - If it is missing from a binary (or a later h2o changes those bytes or stops calling
 *   h2o_socket_write through its PLT), unparsable requests get h2o's text/plain 400; the
 *   black-box test of malformed bodies (tests/api/test_http.py) and
 *   tests/unit/http/test_bad_request.c fail.
 *
 * The 400, 413 and 417 that h2o sends through h2o_send_error_generic() (a broken length or
 * chunk, a body over its limit, an unknown Expect) need no interposition: error_json.h
 * rewrites them with a filter, h2o's public API.
 */
#ifndef SK_HTTP_BAD_REQUEST_H
#define SK_HTTP_BAD_REQUEST_H

/* What http1.c writes for a request it cannot parse, byte for byte. */
#define SK_BAD_REQUEST_H2O                                                                         \
    "HTTP/1.1 400 Bad Request\r\n"                                                                 \
    "Content-Type: text/plain; charset=utf-8\r\n"                                                  \
    "Connection: close\r\n"                                                                        \
    "Content-Length: 11\r\n"                                                                       \
    "\r\n"                                                                                         \
    "Bad Request"

/* What goes to the socket instead. */
#define SK_BAD_REQUEST_JSON                                                                        \
    "HTTP/1.1 400 Bad Request\r\n"                                                                 \
    "Content-Type: application/json; charset=utf-8\r\n"                                            \
    "Connection: close\r\n"                                                                        \
    "Content-Length: 25\r\n"                                                                       \
    "\r\n"                                                                                         \
    "{\"errMsg\":\"Bad request.\"}"

#endif
