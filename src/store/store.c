/* Dispatch from the store interface to the deployment chosen at start. */
#include "store/store.h"

#include "store/store_internal.h"

sk_store_thread_t *sk_store_thread_create(sk_store_t *store, h2o_loop_t *loop,
                                          h2o_multithread_queue_t *queue)
{
    return store->vtable->thread_create(store, loop, queue);
}

void sk_store_thread_destroy(sk_store_t *store, sk_store_thread_t *thread)
{
    store->vtable->thread_destroy(thread);
}

void sk_store_user_register(sk_store_t *store, sk_store_thread_t *thread,
                            sk_store_user_register_t *op)
{
    store->vtable->user_register(thread, op);
}

void sk_store_user_find(sk_store_t *store, sk_store_thread_t *thread, sk_store_user_find_t *op)
{
    store->vtable->user_find(thread, op);
}

void sk_store_coupon_create(sk_store_t *store, sk_store_thread_t *thread,
                            sk_store_coupon_create_t *op)
{
    store->vtable->coupon_create(thread, op);
}

void sk_store_coupon_list(sk_store_t *store, sk_store_thread_t *thread, sk_store_coupon_list_t *op)
{
    store->vtable->coupon_list(thread, op);
}

void sk_store_grab(sk_store_t *store, sk_store_thread_t *thread, sk_store_grab_t *op)
{
    store->vtable->grab(thread, op);
}

void sk_store_revoke(sk_store_t *store, sk_store_thread_t *thread, sk_store_revoke_t *op)
{
    store->vtable->revoke(thread, op);
}

static void unavailable(sk_store_op_t *op)
{
    op->result = SK_STORE_UNAVAILABLE;
    op->on_done(op);
}

void sk_store_coupon_catalog(sk_store_t *store, sk_store_thread_t *thread,
                             sk_store_coupon_catalog_t *op)
{
    if (store->vtable->coupon_catalog == NULL) {
        unavailable(&op->op);
        return;
    }
    store->vtable->coupon_catalog(thread, op);
}

int sk_store_shares_sale_figures(sk_store_t *store)
{
    return store->vtable->sale_read != NULL;
}

int sk_store_sale_publish(sk_store_t *store, const sk_store_sale_second_t *seconds, size_t count)
{
    return store->vtable->sale_publish(store, seconds, count);
}

void sk_store_sale_read(sk_store_t *store, sk_store_thread_t *thread, sk_store_sale_read_t *op)
{
    store->vtable->sale_read(thread, op);
}

int sk_store_shares_rate_limits(sk_store_t *store)
{
    return store->vtable->rate_take != NULL;
}

void sk_store_rate_take(sk_store_t *store, sk_store_thread_t *thread, sk_store_rate_take_t *op)
{
    store->vtable->rate_take(thread, op);
}

int sk_store_is_revoked(sk_store_t *store, const char *jti)
{
    return store->vtable->is_revoked(store, jti);
}

uint64_t sk_store_revocation_epoch(sk_store_t *store)
{
    return store->vtable->revocation_epoch(store);
}

const char *sk_store_deployment_id(sk_store_t *store)
{
    return store->vtable->deployment_id(store);
}

int sk_store_deployment_id_is_valid(const char *text)
{
    size_t len = 0;
    for (; text[len] != '\0'; ++len) {
        if (len == SK_STORE_DEPLOYMENT_ID_LEN ||
            !((text[len] >= '0' && text[len] <= '9') || (text[len] >= 'a' && text[len] <= 'f')))
            return 0;
    }
    return len == SK_STORE_DEPLOYMENT_ID_LEN;
}

int sk_store_is_ready(sk_store_t *store)
{
    return store->vtable->is_ready(store);
}

void sk_store_stats(sk_store_t *store, sk_store_stats_t *out)
{
    store->vtable->stats(store, out);
}

int sk_store_drain(sk_store_t *store)
{
    return store->vtable->drain(store);
}

void sk_store_destroy(sk_store_t *store)
{
    store->vtable->destroy(store);
}
