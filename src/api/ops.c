/* Operations routes: GET /healthz, /readyz and /metrics. */
#include "api/api_internal.h"

#include <stdlib.h>

void sk_api__handle_healthz(api_request_t *r)
{
    sk_api__send_json(r, 200, h2o_iovec_init(H2O_STRLIT("{\"errMsg\":\"\",\"status\":\"ok\"}")));
}

void sk_api__handle_readyz(api_request_t *r)
{
    if (sk_store_is_ready(r->thread->api->store)) {
        sk_api__send_json(r, 200,
                          h2o_iovec_init(H2O_STRLIT("{\"errMsg\":\"\",\"status\":\"ready\"}")));
        return;
    }
    h2o_add_header(&r->req->pool, &r->req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL,
                   H2O_STRLIT("1"));
    sk_api__send_json(
        r, 503,
        h2o_iovec_init(
            H2O_STRLIT("{\"errMsg\":\"A backend is unavailable.\",\"status\":\"unavailable\"}")));
}

void sk_api__handle_metrics(api_request_t *r)
{
    sk_store_stats_t stats;
    sk_store_stats(r->thread->api->store, &stats);
    size_t len;
    /* Only the distributed store shares state between instances. */
    const char *deployment =
        sk_store_shares_rate_limits(r->thread->api->store) ? "distributed" : "embedded";
    char *text = sk_metrics_render(r->thread->api->metrics, &stats, deployment, &len);
    if (text == NULL) {
        sk_api__send_unavailable(r);
        return;
    }
    /* Counted before rendering would be more exact; counting after keeps one code path. */
    ++r->thread->answered;
    sk_metrics_count_request(r->thread->metrics, r->route.id, 200, 0);
    h2o_req_t *req = r->req;
    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/plain; version=0.0.4"));
    h2o_send_inline(req, text, len);
    free(text);
}
