/*
 * GET /openapi.json: the built-in document of openapi.h, sent from its static bytes. Every
 * request gets the same answer, so nothing is built or copied per request.
 */
#include "api/openapi.h"

#include "api/api_internal.h"

void sk_api__handle_openapi(api_request_t *r)
{
    sk_api__send_static(r, 200, "application/json; charset=utf-8",
                        h2o_iovec_init(sk_openapi_document, sk_openapi_document_len));
}
