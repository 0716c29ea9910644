/*
 * JSON bodies for h2o's own errors (see error_json.h): a filter and the output stream it
 * puts in front of the response.
 */
#include "http/error_json.h"

#include <string.h>

static const char *json_body(int status)
{
    switch (status) {
    case 400:
        return "{\"errMsg\":\"Bad request.\"}";
    case 413:
        return "{\"errMsg\":\"Request body too large.\"}";
    case 417:
        return "{\"errMsg\":\"Expectation failed.\"}";
    default:
        return "{\"errMsg\":\"Internal error.\"}";
    }
}

/* h2o_send_error_generic() sends the whole text body in one final call (none for HEAD):
 * pass the JSON on instead, or nothing when there was nothing. */
static void send_json(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt,
                      h2o_send_state_t state)
{
    (void)bufs;
    const char *json = json_body(req->res.status);
    h2o_iovec_t body = h2o_iovec_init(json, strlen(json));
    h2o_ostream_send_next(self, req, bufcnt != 0 ? &body : NULL, bufcnt != 0 ? 1 : 0, state);
}

static void on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    (void)self;
    if (req->res.status >= 400) {
        const char *json = json_body(req->res.status);
        req->res.content_length = strlen(json);
        ssize_t index = h2o_find_header(&req->res.headers, H2O_TOKEN_CONTENT_TYPE, -1);
        h2o_iovec_t json_type = h2o_iovec_init(H2O_STRLIT("application/json; charset=utf-8"));
        if (index != -1)
            req->res.headers.entries[index].value = json_type;
        else
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                           json_type.base, json_type.len);
        h2o_ostream_t *stream = h2o_add_ostream(req, sizeof(*stream), slot);
        stream->do_send = send_json;
        slot = &stream->next;
    }
    h2o_setup_next_ostream(req, slot);
}

void sk_error_json_register(h2o_hostconf_t *hostconf)
{
    h2o_filter_t *filter = h2o_create_filter(&hostconf->fallback_path, sizeof(*filter));
    filter->on_setup_ostream = on_setup_ostream;
}
