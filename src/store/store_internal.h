/*
 * What a store implementation fills in (store/local/, store/distributed/, and the fake
 * store of the api's unit tests): the vtable behind store.h's functions. Only
 * implementations include this; callers use store.h.
 */
#ifndef SK_STORE_STORE_INTERNAL_H
#define SK_STORE_STORE_INTERNAL_H

#include "store/store.h"

typedef struct sk_store_vtable {
    sk_store_thread_t *(*thread_create)(sk_store_t *store, h2o_loop_t *loop,
                                        h2o_multithread_queue_t *queue);
    void (*thread_destroy)(sk_store_thread_t *thread);
    void (*user_register)(sk_store_thread_t *thread, sk_store_user_register_t *op);
    void (*user_find)(sk_store_thread_t *thread, sk_store_user_find_t *op);
    void (*coupon_create)(sk_store_thread_t *thread, sk_store_coupon_create_t *op);
    void (*coupon_list)(sk_store_thread_t *thread, sk_store_coupon_list_t *op);
    void (*grab)(sk_store_thread_t *thread, sk_store_grab_t *op);
    void (*revoke)(sk_store_thread_t *thread, sk_store_revoke_t *op);
    /* NULL: answers UNAVAILABLE (the api's fake stores). */
    void (*coupon_catalog)(sk_store_thread_t *thread, sk_store_coupon_catalog_t *op);
    /* Both NULL when the deployment has one process. */
    int (*sale_publish)(sk_store_t *store, const sk_store_sale_second_t *seconds, size_t count);
    void (*sale_read)(sk_store_thread_t *thread, sk_store_sale_read_t *op);
    /* NULL when the deployment has one process: the api's own limiter is exact there. */
    void (*rate_take)(sk_store_thread_t *thread, sk_store_rate_take_t *op);
    int (*is_revoked)(sk_store_t *store, const char *jti);
    uint64_t (*revocation_epoch)(sk_store_t *store);
    const char *(*deployment_id)(sk_store_t *store);
    int (*is_ready)(sk_store_t *store);
    void (*stats)(sk_store_t *store, sk_store_stats_t *out);
    int (*drain)(sk_store_t *store);
    void (*destroy)(sk_store_t *store);
} sk_store_vtable_t;

struct sk_store {
    const sk_store_vtable_t *vtable;
};

#endif
