/*
 * JSON bodies for the errors libh2o 2.2.5 answers by itself before any handler runs, through
 * h2o's public filter API: a malformed length or chunk (400), a body over its own
 * max_request_entity_size (413), an unknown expectation (417). h2o sends each with
 * h2o_send_error_generic(), which binds the request to its host's fallback path (no
 * request reaches that path otherwise: every path is under "/") and writes a text/plain
 * body; a filter on the fallback path rewrites the body and its Content-Type and
 * Content-Length. Status, reason and "Connection: close" stay h2o's.
 *
 * The 400 for a head h2o cannot parse at all never reaches a filter: see bad_request.h.
 */
#ifndef SK_HTTP_ERROR_JSON_H
#define SK_HTTP_ERROR_JSON_H

#include <h2o.h>

/* Registers the filter on `hostconf`'s fallback path. Call while configuring, before any
 * h2o_context_init. The filter is h2o's (freed with the configuration, never here). */
void sk_error_json_register(h2o_hostconf_t *hostconf);

#endif
