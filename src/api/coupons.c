/*
 * Coupons: POST (create) and GET (list) /api/users/{user}/coupons, and the flash-sale
 * route PATCH /api/users/{seller}/coupons/{name}. The grab is the hot path: no JSON, no
 * allocation beyond the request pool, answers from constant bodies.
 */
#include "api/api_internal.h"

#include <string.h>

#include "api/body.h"

#define ERROR_BODY(message) "{\"errMsg\":\"" message "\"}"
#define MAX_STOCK 9007199254740991LL /* 2^53 - 1: exact in every JSON client */

/* ---- create ---- */

static void on_created(sk_store_op_t *op)
{
    api_request_t *r = op->data;
    switch (op->result) {
    case SK_STORE_OK:
        sk_api__send_json(r, 201, h2o_iovec_init(H2O_STRLIT(ERROR_BODY(""))));
        break;
    case SK_STORE_DUPLICATE:
        sk_api__send_error(r, 400, "Create failed. Maybe (username,coupon name) duplicates");
        break;
    case SK_STORE_NOT_FOUND:
        /* The token is well signed but names no seller of that name and id. */
        sk_api__send_json(r, 401, h2o_iovec_init(H2O_STRLIT(ERROR_BODY("Token is invalid."))));
        break;
    default:
        sk_api__send_unavailable(r);
        break;
    }
}

/* A coupon name: 1..64 bytes, no '/', no control character (C0, DEL, C1). */
static int coupon_name_is_valid(h2o_iovec_t name)
{
    if (name.len > SK_STORE_MAX_NAME)
        return 0;
    const unsigned char *bytes = (const unsigned char *)name.base;
    for (size_t i = 0; i < name.len; ++i) {
        if (bytes[i] < 0x20 || bytes[i] == 0x7F || bytes[i] == '/')
            return 0;
        if (bytes[i] == 0xC2 && i + 1 < name.len && bytes[i + 1] >= 0x80 && bytes[i + 1] <= 0x9F)
            return 0;
    }
    return 1;
}

void sk_api__handle_coupon_create(api_request_t *r)
{
    if (sk_api__authenticate(r) != 0)
        return;
    if (strcmp(r->claims->kind, "saler") != 0) {
        sk_api__send_error(r, 401, "Only sellers can create coupons.");
        return;
    }
    if (strlen(r->claims->username) != r->route.user.len ||
        memcmp(r->claims->username, r->route.user.base, r->route.user.len) != 0) {
        sk_api__send_error(r, 401, "Cannot create coupons for other users.");
        return;
    }
    json_t *body = sk_api__parse_body(r, 0);
    if (body == NULL)
        return;

    sk_store_coupon_create_t *op = h2o_mem_alloc_pool(&r->req->pool, sizeof(*op));
    memset(op, 0, sizeof(*op));
    h2o_iovec_t name, description;
    if (sk_body_int(json_object_get(body, "amount"), 1, r->thread->api->config.max_amount,
                    &op->amount) != 0) {
        sk_api__send_error(r, 400, "Amount field wrong format.");
        goto done;
    }
    if (sk_body_int(json_object_get(body, "stock"), 0, MAX_STOCK, &op->stock) != 0) {
        sk_api__send_error(r, 400, "Stock field wrong format.");
        goto done;
    }
    if (sk_api__string_field(r, body, "name", &name) != 0 ||
        sk_api__string_field(r, body, "description", &description) != 0)
        goto done;
    if (name.len == 0 || description.len == 0) {
        sk_api__send_error(r, 400, "Coupon name or description should not be empty.");
        goto done;
    }
    if (!coupon_name_is_valid(name) || description.len > SK_STORE_MAX_DESCRIPTION) {
        sk_api__send_error(r, 400, "Coupon name or description too long or invalid.");
        goto done;
    }
    int has_start = sk_body_time(json_object_get(body, "start_at"), &op->start_at);
    int has_end = sk_body_time(json_object_get(body, "end_at"), &op->end_at);
    if (has_start < 0 || has_end < 0 ||
        (has_start == 1 && has_end == 1 && op->end_at <= op->start_at)) {
        sk_api__send_error(r, 400, "Sale window invalid.");
        goto done;
    }
    if (has_start != 1)
        op->start_at = SK_STORE_NO_TIME;
    if (has_end != 1)
        op->end_at = SK_STORE_NO_TIME;

    op->seller = r->route.user;
    op->seller_id = r->claims->uid;
    op->name = h2o_strdup(&r->req->pool, name.base, name.len);
    op->description = h2o_strdup(&r->req->pool, description.base, description.len);
    op->op.on_done = on_created;
    op->op.data = r;
    op->op.pool = &r->req->pool;
    json_decref(body);
    body = NULL;
    sk_store_coupon_create(r->thread->api->store, r->thread->store, op);
done:
    json_decref(body);
}

/* ---- list ---- */

typedef struct list_request {
    api_request_t *r;
    int page_is_valid;
    sk_store_coupon_list_t list;
} list_request_t;

static json_t *item_value(const sk_store_coupon_item_t *item, sk_user_kind_t listed_kind)
{
    json_t *value = json_object();
    json_object_set_new(value, "name", json_stringn(item->name.base, item->name.len));
    json_object_set_new(value, "stock", json_integer(item->stock));
    json_object_set_new(value, "description",
                        json_stringn(item->description.base, item->description.len));
    if (listed_kind == SK_USER_SELLER) {
        json_object_set_new(value, "amount", json_integer(item->amount));
        json_object_set_new(value, "left", json_integer(item->left));
        if (item->start_at != SK_STORE_NO_TIME)
            json_object_set_new(value, "start_at", json_integer(item->start_at));
        if (item->end_at != SK_STORE_NO_TIME)
            json_object_set_new(value, "end_at", json_integer(item->end_at));
    } else {
        json_object_set_new(value, "seller", json_stringn(item->seller.base, item->seller.len));
    }
    return value;
}

static void on_listed(sk_store_op_t *op)
{
    list_request_t *ctx = op->data;
    api_request_t *r = ctx->r;
    sk_store_coupon_list_t *list = &ctx->list;
    if (op->result == SK_STORE_NOT_FOUND) {
        sk_api__send_error(r, 400, "Record not found.");
        return;
    }
    if (op->result != SK_STORE_OK) {
        sk_api__send_unavailable(r);
        return;
    }
    int is_self = strlen(r->claims_copy.username) == list->username.len &&
                  memcmp(r->claims_copy.username, list->username.base, list->username.len) == 0;
    /* The token's user, looked up anyway: the name must still be that user. */
    if (is_self && list->user_id != r->claims_copy.uid) {
        sk_api__send_json(r, 401, h2o_iovec_init(H2O_STRLIT(ERROR_BODY("Token is invalid."))));
        return;
    }
    if (list->kind == SK_USER_CUSTOMER && !is_self) {
        sk_api__send_json(r, 401,
                          h2o_iovec_init(H2O_STRLIT(
                              "{\"errMsg\":\"Cannot check other customer.\",\"data\":[]}")));
        return;
    }
    if (!ctx->page_is_valid) {
        sk_api__send_error(r, 400, "Wrong format of page.");
        return;
    }
    if (list->count == 0) {
        sk_api__send_no_content(r, NULL);
        return;
    }
    json_t *data = json_array();
    for (size_t i = 0; i != list->count; ++i)
        json_array_append_new(data, item_value(&list->items[i], list->kind));
    sk_api__send_value(r, 200, json_pack("{s:s,s:o}", "errMsg", "", "data", data));
}

void sk_api__handle_coupon_list(api_request_t *r)
{
    if (sk_api__authenticate(r) != 0)
        return;
    r->claims_copy = *r->claims;
    list_request_t *ctx = h2o_mem_alloc_pool(&r->req->pool, sizeof(*ctx));
    memset(ctx, 0, sizeof(*ctx));
    ctx->r = r;
    /* A bad page is reported only after the user and the right to look are checked. */
    ctx->page_is_valid =
        sk_body_query_page(r->route.query.base, r->route.query.len, &ctx->list.page) == 0;
    if (!ctx->page_is_valid)
        ctx->list.page = 1;
    ctx->list.username = r->route.user;
    ctx->list.op.on_done = on_listed;
    ctx->list.op.data = ctx;
    ctx->list.op.pool = &r->req->pool;
    sk_store_coupon_list(r->thread->api->store, r->thread->store, &ctx->list);
}

/* ---- grab ---- */

static void on_grabbed(sk_store_op_t *op)
{
    /* X-Seckill-Reason of each 204 outcome. */
    static const char *const no_content_reasons[] = {
        [SK_STORE_NO_SUCH_COUPON] = "no-such-coupon",
        [SK_STORE_NOT_STARTED] = "not-started",
        [SK_STORE_ENDED] = "ended",
        [SK_STORE_SOLD_OUT] = "sold-out",
        [SK_STORE_ALREADY_HELD] = "already-held",
    };
    api_request_t *r = op->data;
    sk_metrics_count_grab(r->thread->metrics, op->result);
    if (r->sale_outcome >= 0) {
        if (op->result == SK_STORE_OK)
            r->sale_outcome = SK_METRICS_SALE_GRANTED;
        else if (op->result == SK_STORE_SOLD_OUT)
            r->sale_outcome = SK_METRICS_SALE_SOLD_OUT;
        else if (op->result == SK_STORE_ALREADY_HELD)
            r->sale_outcome = SK_METRICS_SALE_ALREADY_HELD;
    }
    switch (op->result) {
    case SK_STORE_OK:
        sk_api__send_json(r, 201, h2o_iovec_init(H2O_STRLIT(ERROR_BODY(""))));
        break;
    case SK_STORE_NO_SUCH_COUPON:
    case SK_STORE_NOT_STARTED:
    case SK_STORE_ENDED:
    case SK_STORE_SOLD_OUT:
    case SK_STORE_ALREADY_HELD:
        sk_api__send_no_content(r, no_content_reasons[op->result]);
        break;
    case SK_STORE_NOT_FOUND:
        /* A well-signed token whose customer is gone, or another user of that name (the
         * embedded store compares the id it looks up anyway). */
        sk_api__send_json(r, 401, h2o_iovec_init(H2O_STRLIT(ERROR_BODY("Token is invalid."))));
        break;
    default:
        sk_api__send_unavailable(r);
        break;
    }
}

static void start_grab(api_request_t *r, h2o_iovec_t customer, int64_t customer_id)
{
    sk_store_grab_t *op = h2o_mem_alloc_pool(&r->req->pool, sizeof(*op));
    memset(op, 0, sizeof(*op));
    op->op.on_done = on_grabbed;
    op->op.data = r;
    op->op.pool = &r->req->pool;
    op->customer = customer;
    op->customer_id = customer_id;
    op->seller = r->route.user;
    op->name = r->route.coupon;
    op->now = sk_api__unix_now(r);
    sk_store_grab(r->thread->api->store, r->thread->store, op);
}

static void on_rate_taken(sk_store_op_t *op)
{
    sk_store_rate_take_t *take = (sk_store_rate_take_t *)op;
    api_request_t *r = op->data;
    if (op->result == SK_STORE_LIMITED) {
        sk_api__send_too_many(r, take->retry_after_usec);
        return;
    }
    if (op->result != SK_STORE_OK) {
        sk_api__send_unavailable(r);
        return;
    }
    start_grab(r, take->user, r->claims_copy.uid);
}

void sk_api__handle_grab(api_request_t *r)
{
    if (sk_api__authenticate(r) != 0)
        return;
    if (strcmp(r->claims->kind, "customer") != 0) {
        sk_api__send_error(r, 401, "Sellers aren't allowed to get coupons.");
        return;
    }
    /* The claims live in the token cache, which the next request may overwrite. */
    h2o_iovec_t customer =
        h2o_strdup(&r->req->pool, r->claims->username, strlen(r->claims->username));
    int64_t customer_id = r->claims->uid;
    /* The limit comes before the store, so a limited grab changes nothing. Several
     * instances share each user's bucket through the store; one process keeps its own. */
    sk_api_t *api = r->thread->api;
    if (api->config.rate_limit > 0 && sk_store_shares_rate_limits(api->store)) {
        r->claims_copy = *r->claims; /* for the grab after the round trip */
        sk_store_rate_take_t *take = h2o_mem_alloc_pool(&r->req->pool, sizeof(*take));
        memset(take, 0, sizeof(*take));
        take->op.on_done = on_rate_taken;
        take->op.data = r;
        take->op.pool = &r->req->pool;
        take->user = customer;
        take->rate = api->config.rate_limit;
        take->burst = api->config.rate_burst;
        sk_store_rate_take(api->store, r->thread->store, take);
        return;
    }
    /* The request's start time (the monotonic clock) spares a clock read. */
    int64_t retry_after_usec;
    if (api->ratelimit != NULL && !sk_ratelimit_take(api->ratelimit, customer.base, customer.len,
                                                     (int64_t)r->started_usec, &retry_after_usec)) {
        sk_api__send_too_many(r, retry_after_usec);
        return;
    }
    start_grab(r, customer, customer_id);
}
