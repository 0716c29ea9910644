/* libFuzzer driver: the path router and the page query on arbitrary request targets. */
#include <stdint.h>
#include <string.h>

#include "api/body.h"
#include "api/router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    h2o_mem_pool_t pool;
    h2o_mem_init_pool(&pool);
    sk_route_t route;
    sk_router_match(&pool, h2o_iovec_init(data, size), &route);
    if (route.id >= SK_ROUTE_COUNT)
        __builtin_trap();
    if ((route.id == SK_ROUTE_COUPONS || route.id == SK_ROUTE_GRAB) && route.user.len == 0)
        __builtin_trap();
    if (route.id == SK_ROUTE_GRAB && route.coupon.len == 0)
        __builtin_trap();
    int64_t page;
    if (sk_body_query_page(route.query.base, route.query.len, &page) == 0 && page < 1)
        __builtin_trap();
    /* The live sale view's seller: NUL-terminated within its buffer, whatever it returns. */
    char seller[65];
    size_t seller_len;
    int found = sk_body_query_string(route.query.base, route.query.len, "seller", seller,
                                     sizeof(seller), &seller_len);
    if (seller_len >= sizeof(seller) || seller[seller_len] != '\0' || (found != 1 && seller_len))
        __builtin_trap();
    h2o_mem_clear_pool(&pool);
    return 0;
}
