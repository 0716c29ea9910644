/*
 * The request-head guard: libh2o 2.2.5's picohttpparser accepts two heads that RFC 9112
 * calls invalid, and this module makes it refuse them, so that h2o answers them as it
 * answers any head it cannot parse (400, connection closed; bad_request.h gives that
 * answer its JSON body):
 *
 * - ambiguous message framing: two different Content-Length values, or Content-Length
 *   with Transfer-Encoding (RFC 9112 6.1, 6.3). h2o picks one (the first length; chunked
 *   over a length), which is how requests are smuggled past a proxy that picked the other.
 * - a header line folded onto the next (obs-fold, RFC 9112 5.2). h2o keeps only the first
 *   line's part of the value, a proxy that unfolds reads all of it.
 *
 * Why an interposition and not a check in the request handler: h2o frames and reads the
 * whole body before any handler runs, so a handler would answer only after waiting for a
 * body of the length h2o picked (which, for a folded length, may never come), and it could
 * not even see the framing: h2o 2.2.5 keeps Content-Length and Transfer-Encoding out of
 * req->headers. The refusal has to come while h2o parses the head.
 *
 * Invariants:
 * - Interposes phr_parse_request(), which libh2o exports and calls through its PLT from
 *   http1.c's handle_incoming_request(). The definition here wins in the whole process:
 *   every caller of phr_parse_request gets the guard; it calls the real parser first and
 *   only turns some complete parses (> 0) into errors (-1), never the reverse.
 * - Stateless: safe on any thread, any number at once.
 * - If it is missing from a binary (or a later h2o stops calling the parser through its
 *   PLT), folded and ambiguously framed requests are served as h2o frames them; the
 *   black-box tests of folded headers and conflicting lengths (tests/api/test_http.py) and
 *   tests/unit/http/test_parse_guard.c fail.
 */
#ifndef SK_HTTP_PARSE_GUARD_H
#define SK_HTTP_PARSE_GUARD_H

#include <stddef.h>

/* picohttpparser's header record, as compiled into libh2o 2.2.5; Debian installs no
 * picohttpparser.h, and this layout has not changed since picohttpparser's first release. */
struct phr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* picohttpparser's request parser with the guard: the real parser's result, except that a
 * complete head that is folded or ambiguously framed gives -1 (malformed). */
int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len,
                      const char **path, size_t *path_len, int *minor_version,
                      struct phr_header *headers, size_t *num_headers, size_t last_len);

#endif
