/*
 * A store for the api's unit tests (DESIGN.md: "a handler must be testable with a fake
 * store"): the vtable of store/store_internal.h over a few arrays in memory, no I/O, no
 * threads. Users, coupons and holdings behave as the interface says (a grab checks
 * NO_SUCH_COUPON, NOT_STARTED, ENDED, SOLD_OUT, ALREADY_HELD in that order), so a test can
 * run whole flows; and a test can script what the next call of an operation answers
 * (UNAVAILABLE, DUPLICATE, SOLD_OUT, ...) and read which operations were called, with
 * what. Every operation completes before its start call returns, as store.h allows.
 *
 * Single-threaded: create, script, run requests and inspect from one thread.
 */
#ifndef SK_TEST_FAKE_STORE_H
#define SK_TEST_FAKE_STORE_H

#include <stdint.h>

#include "store/store.h"

/* The operations of store.h that a handler starts. */
typedef enum sk_fake_op {
    SK_FAKE_USER_REGISTER = 0,
    SK_FAKE_USER_FIND,
    SK_FAKE_COUPON_CREATE,
    SK_FAKE_COUPON_LIST,
    SK_FAKE_GRAB,
    SK_FAKE_REVOKE,
    SK_FAKE_RATE_TAKE,
    SK_FAKE_OP_COUNT
} sk_fake_op_t;

/* The arguments of the last call of one operation, copied (the op itself lives in a
 * request's pool). Fields an operation does not have stay empty / 0. */
typedef struct sk_fake_call {
    char user[SK_STORE_MAX_NAME + 1];   /* register/find/list username, grab customer,
                                           rate_take user */
    char seller[SK_STORE_MAX_NAME + 1]; /* create, grab */
    char name[SK_STORE_MAX_NAME + 1];   /* create, grab: the coupon */
    char jti[64];                       /* revoke */
    int64_t user_id;                    /* create seller_id, grab customer_id */
    int64_t page;                       /* list */
} sk_fake_call_t;

typedef struct sk_fake_store sk_fake_store_t;

/* Creates a ready fake store with deployment id `deployment_id` (SK_STORE_DEPLOYMENT_ID_LEN
 * hex characters, copied). With `shares_rate_limits`, it has a rate_take (answering OK
 * unless scripted), as the distributed store has. NULL when out of memory. */
sk_fake_store_t *sk_fake_store_create(const char *deployment_id, int shares_rate_limits);

/* The store to hand to the code under test; sk_store_destroy() on it frees the fake. */
sk_store_t *sk_fake_store_base(sk_fake_store_t *fake);

/* Adds a user as registration would (id = the next id, from 1) and returns its id. */
int64_t sk_fake_store_add_user(sk_fake_store_t *fake, const char *username, sk_user_kind_t kind,
                               const char *password_hash);

/* Queues `result` as the answer of the next call of `op` (up to 8 per op), which then
 * changes no state and fills no result fields: a scripted OK makes sense only for ops
 * without results (register, create, grab, revoke, rate_take). */
void sk_fake_store_answer_next(sk_fake_store_t *fake, sk_fake_op_t op, sk_store_result_t result);

/* How often `op` was called; and all ops together. */
unsigned sk_fake_store_calls(const sk_fake_store_t *fake, sk_fake_op_t op);
unsigned sk_fake_store_all_calls(const sk_fake_store_t *fake);

/* The arguments of the last call of `op` (zeroed while it was never called). */
const sk_fake_call_t *sk_fake_store_last(const sk_fake_store_t *fake, sk_fake_op_t op);

/* Settings the tests flip: the deployment id (NULL: not known yet, as the distributed store
 * before SQL answered), readiness, and whether the next thread_create fails. */
void sk_fake_store_set_deployment_id(sk_fake_store_t *fake, const char *deployment_id);
void sk_fake_store_set_ready(sk_fake_store_t *fake, int ready);
void sk_fake_store_fail_next_thread(sk_fake_store_t *fake);

/* Store threads alive now (created and not destroyed). */
int sk_fake_store_threads(const sk_fake_store_t *fake);

#endif
