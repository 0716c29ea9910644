/*
 * The JSON 400 for unparsable requests (see bad_request.h), at libh2o 2.2.5's
 * h2o_socket_write().
 */
#include "http/bad_request.h"

#include <h2o.h>
#include <string.h>

#include "http/interpose.h"

/* The body after the blank line must be exactly the Content-Length it announces. */
_Static_assert(sizeof("{\"errMsg\":\"Bad request.\"}") - 1 == 25, "SK_BAD_REQUEST_JSON length");

typedef void (*socket_write_fn)(h2o_socket_t *, h2o_iovec_t *, size_t, h2o_socket_cb);

void h2o_socket_write(h2o_socket_t *sock, h2o_iovec_t *bufs, size_t bufcnt, h2o_socket_cb cb)
{
    static _Atomic(void *) cache;
    static const char h2o_text[] = SK_BAD_REQUEST_H2O;
    /* Static: h2o may still point at it when the write completes later. */
    static h2o_iovec_t json = {(char *)SK_BAD_REQUEST_JSON, sizeof(SK_BAD_REQUEST_JSON) - 1};
    socket_write_fn real_write = (socket_write_fn)sk_interpose_next(&cache, "h2o_socket_write");
    if (bufcnt == 1 && bufs[0].len == sizeof(h2o_text) - 1 &&
        memcmp(bufs[0].base, h2o_text, sizeof(h2o_text) - 1) == 0) {
        real_write(sock, &json, 1, cb);
        return;
    }
    real_write(sock, bufs, bufcnt, cb);
}
