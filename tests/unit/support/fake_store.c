/*
 * The fake store (see fake_store.h): fixed arrays, linear searches, every op answered
 * before its start call returns. Small and obvious on purpose: a test that fails should
 * point at the handler, not at its fake.
 */
#include "fake_store.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

#define MAX_USERS 32
#define MAX_COUPONS 64
#define MAX_HOLDINGS 256
#define MAX_REVOKED 64
#define MAX_SCRIPTED 8

typedef struct fake_user {
    char name[SK_STORE_MAX_NAME + 1];
    sk_user_kind_t kind;
    int64_t id;
    char *password_hash;
} fake_user_t;

typedef struct fake_coupon {
    char seller[SK_STORE_MAX_NAME + 1], name[SK_STORE_MAX_NAME + 1];
    char description[SK_STORE_MAX_DESCRIPTION + 1];
    int64_t amount, left, stock, start_at, end_at;
} fake_coupon_t;

typedef struct fake_holding {
    size_t user, coupon; /* indexes into users / coupons */
} fake_holding_t;

struct sk_store_thread {
    sk_fake_store_t *fake;
};

struct sk_fake_store {
    sk_store_t base; /* first: the api's sk_store_t * is this struct */
    char deployment_id[SK_STORE_DEPLOYMENT_ID_LEN + 1];
    int has_deployment_id;
    int ready;
    int fail_next_thread;
    int threads;
    fake_user_t users[MAX_USERS];
    size_t user_count;
    fake_coupon_t coupons[MAX_COUPONS];
    size_t coupon_count;
    fake_holding_t holdings[MAX_HOLDINGS];
    size_t holding_count;
    char revoked[MAX_REVOKED][64];
    size_t revoked_count;
    uint64_t revocation_epoch;
    struct {
        sk_store_result_t answers[MAX_SCRIPTED];
        size_t count;
    } scripted[SK_FAKE_OP_COUNT];
    unsigned calls[SK_FAKE_OP_COUNT];
    sk_fake_call_t last[SK_FAKE_OP_COUNT];
};

/* Copies `text` into a field of `size` bytes, cut to fit. */
static void copy_field(char *field, size_t size, const char *text, size_t len)
{
    if (len >= size)
        len = size - 1;
    memcpy(field, text, len);
    field[len] = '\0';
}

static int iovec_is(h2o_iovec_t value, const char *text)
{
    return value.len == strlen(text) && memcmp(value.base, text, value.len) == 0;
}

static fake_user_t *find_user(sk_fake_store_t *fake, h2o_iovec_t name)
{
    for (size_t i = 0; i != fake->user_count; ++i) {
        if (iovec_is(name, fake->users[i].name))
            return &fake->users[i];
    }
    return NULL;
}

static fake_coupon_t *find_coupon(sk_fake_store_t *fake, h2o_iovec_t seller, h2o_iovec_t name)
{
    for (size_t i = 0; i != fake->coupon_count; ++i) {
        if (iovec_is(seller, fake->coupons[i].seller) && iovec_is(name, fake->coupons[i].name))
            return &fake->coupons[i];
    }
    return NULL;
}

static void complete(sk_store_op_t *base, sk_store_result_t result)
{
    base->result = result;
    base->on_done(base);
}

/* Counts a call of `op`, records its arguments and, when an answer was scripted, completes
 * `base` with it and returns 1: the caller then does nothing more. */
static int begin(sk_fake_store_t *fake, sk_fake_op_t op, sk_store_op_t *base,
                 const sk_fake_call_t *call)
{
    ++fake->calls[op];
    fake->last[op] = *call;
    if (fake->scripted[op].count == 0)
        return 0;
    sk_store_result_t result = fake->scripted[op].answers[0];
    --fake->scripted[op].count;
    memmove(fake->scripted[op].answers, fake->scripted[op].answers + 1,
            fake->scripted[op].count * sizeof(fake->scripted[op].answers[0]));
    complete(base, result);
    return 1;
}

static sk_store_thread_t *fake_thread_create(sk_store_t *store, h2o_loop_t *loop,
                                             h2o_multithread_queue_t *queue)
{
    (void)loop;
    (void)queue;
    sk_fake_store_t *fake = (sk_fake_store_t *)store;
    if (fake->fail_next_thread) {
        fake->fail_next_thread = 0;
        return NULL;
    }
    sk_store_thread_t *thread = calloc(1, sizeof(*thread));
    if (thread == NULL)
        return NULL;
    thread->fake = fake;
    ++fake->threads;
    return thread;
}

static void fake_thread_destroy(sk_store_thread_t *thread)
{
    --thread->fake->threads;
    free(thread);
}

static void fake_user_register(sk_store_thread_t *thread, sk_store_user_register_t *op)
{
    sk_fake_store_t *fake = thread->fake;
    sk_fake_call_t call = {0};
    copy_field(call.user, sizeof(call.user), op->username.base, op->username.len);
    if (begin(fake, SK_FAKE_USER_REGISTER, &op->op, &call))
        return;
    if (find_user(fake, op->username) != NULL || fake->user_count == MAX_USERS) {
        complete(&op->op, SK_STORE_DUPLICATE);
        return;
    }
    sk_fake_store_add_user(fake, call.user, op->kind, op->password_hash);
    complete(&op->op, SK_STORE_OK);
}

static void fake_user_find(sk_store_thread_t *thread, sk_store_user_find_t *op)
{
    sk_fake_store_t *fake = thread->fake;
    sk_fake_call_t call = {0};
    copy_field(call.user, sizeof(call.user), op->username.base, op->username.len);
    if (begin(fake, SK_FAKE_USER_FIND, &op->op, &call))
        return;
    fake_user_t *user = find_user(fake, op->username);
    if (user == NULL) {
        complete(&op->op, SK_STORE_NOT_FOUND);
        return;
    }
    op->id = user->id;
    op->kind = user->kind;
    op->password_hash = user->password_hash;
    complete(&op->op, SK_STORE_OK);
}

static void fake_coupon_create(sk_store_thread_t *thread, sk_store_coupon_create_t *op)
{
    sk_fake_store_t *fake = thread->fake;
    sk_fake_call_t call = {0};
    copy_field(call.seller, sizeof(call.seller), op->seller.base, op->seller.len);
    copy_field(call.name, sizeof(call.name), op->name.base, op->name.len);
    call.user_id = op->seller_id;
    if (begin(fake, SK_FAKE_COUPON_CREATE, &op->op, &call))
        return;
    fake_user_t *seller = find_user(fake, op->seller);
    if (seller == NULL || seller->kind != SK_USER_SELLER || seller->id != op->seller_id) {
        complete(&op->op, SK_STORE_NOT_FOUND);
        return;
    }
    if (find_coupon(fake, op->seller, op->name) != NULL || fake->coupon_count == MAX_COUPONS) {
        complete(&op->op, SK_STORE_DUPLICATE);
        return;
    }
    fake_coupon_t *coupon = &fake->coupons[fake->coupon_count++];
    memset(coupon, 0, sizeof(*coupon));
    memcpy(coupon->seller, call.seller, sizeof(coupon->seller));
    memcpy(coupon->name, call.name, sizeof(coupon->name));
    copy_field(coupon->description, sizeof(coupon->description), op->description.base,
               op->description.len);
    coupon->amount = coupon->left = op->amount;
    coupon->stock = op->stock;
    coupon->start_at = op->start_at;
    coupon->end_at = op->end_at;
    complete(&op->op, SK_STORE_OK);
}

static void fill_item(sk_store_coupon_item_t *item, const fake_coupon_t *coupon)
{
    item->name = h2o_iovec_init(coupon->name, strlen(coupon->name));
    item->description = h2o_iovec_init(coupon->description, strlen(coupon->description));
    item->seller = h2o_iovec_init(coupon->seller, strlen(coupon->seller));
    item->stock = coupon->stock;
    item->amount = coupon->amount;
    item->left = coupon->left;
    item->start_at = coupon->start_at;
    item->end_at = coupon->end_at;
}

static void fake_coupon_list(sk_store_thread_t *thread, sk_store_coupon_list_t *op)
{
    sk_fake_store_t *fake = thread->fake;
    sk_fake_call_t call = {0};
    copy_field(call.user, sizeof(call.user), op->username.base, op->username.len);
    call.page = op->page;
    if (begin(fake, SK_FAKE_COUPON_LIST, &op->op, &call))
        return;
    fake_user_t *user = find_user(fake, op->username);
    if (user == NULL) {
        complete(&op->op, SK_STORE_NOT_FOUND);
        return;
    }
    op->user_id = user->id;
    op->kind = user->kind;
    op->count = 0;
    op->items = h2o_mem_alloc_pool(op->op.pool, sizeof(*op->items) * SK_STORE_PAGE_SIZE);
    /* The n-th listed coupon of this user, from 0, is on page n / SK_STORE_PAGE_SIZE + 1. */
    size_t seen = 0;
    size_t total = user->kind == SK_USER_SELLER ? fake->coupon_count : fake->holding_count;
    for (size_t i = 0; i != total && op->count != SK_STORE_PAGE_SIZE; ++i) {
        const fake_coupon_t *coupon;
        if (user->kind == SK_USER_SELLER) {
            coupon = &fake->coupons[i];
            if (!iovec_is(op->username, coupon->seller))
                continue;
        } else {
            if (&fake->users[fake->holdings[i].user] != user)
                continue;
            coupon = &fake->coupons[fake->holdings[i].coupon];
        }
        if ((int64_t)(seen++ / SK_STORE_PAGE_SIZE) + 1 == op->page)
            fill_item(&op->items[op->count++], coupon);
    }
    complete(&op->op, SK_STORE_OK);
}

static void fake_grab(sk_store_thread_t *thread, sk_store_grab_t *op)
{
    sk_fake_store_t *fake = thread->fake;
    sk_fake_call_t call = {0};
    copy_field(call.user, sizeof(call.user), op->customer.base, op->customer.len);
    copy_field(call.seller, sizeof(call.seller), op->seller.base, op->seller.len);
    copy_field(call.name, sizeof(call.name), op->name.base, op->name.len);
    call.user_id = op->customer_id;
    if (begin(fake, SK_FAKE_GRAB, &op->op, &call))
        return;
    /* As the embedded store: the customer is looked up, and must be the token's. */
    fake_user_t *customer = find_user(fake, op->customer);
    if (customer == NULL || customer->id != op->customer_id) {
        complete(&op->op, SK_STORE_NOT_FOUND);
        return;
    }
    fake_coupon_t *coupon = find_coupon(fake, op->seller, op->name);
    if (coupon == NULL) {
        complete(&op->op, SK_STORE_NO_SUCH_COUPON);
        return;
    }
    if (coupon->start_at != SK_STORE_NO_TIME && op->now < coupon->start_at) {
        complete(&op->op, SK_STORE_NOT_STARTED);
        return;
    }
    if (coupon->end_at != SK_STORE_NO_TIME && op->now >= coupon->end_at) {
        complete(&op->op, SK_STORE_ENDED);
        return;
    }
    if (coupon->left == 0) {
        complete(&op->op, SK_STORE_SOLD_OUT);
        return;
    }
    size_t user_index = (size_t)(customer - fake->users);
    size_t coupon_index = (size_t)(coupon - fake->coupons);
    for (size_t i = 0; i != fake->holding_count; ++i) {
        if (fake->holdings[i].user == user_index && fake->holdings[i].coupon == coupon_index) {
            complete(&op->op, SK_STORE_ALREADY_HELD);
            return;
        }
    }
    if (fake->holding_count == MAX_HOLDINGS) {
        complete(&op->op, SK_STORE_UNAVAILABLE);
        return;
    }
    fake->holdings[fake->holding_count++] = (fake_holding_t){user_index, coupon_index};
    --coupon->left;
    complete(&op->op, SK_STORE_OK);
}

static void fake_revoke(sk_store_thread_t *thread, sk_store_revoke_t *op)
{
    sk_fake_store_t *fake = thread->fake;
    sk_fake_call_t call = {0};
    copy_field(call.jti, sizeof(call.jti), op->jti, strlen(op->jti));
    if (begin(fake, SK_FAKE_REVOKE, &op->op, &call))
        return;
    if (fake->revoked_count == MAX_REVOKED) {
        complete(&op->op, SK_STORE_UNAVAILABLE);
        return;
    }
    memcpy(fake->revoked[fake->revoked_count++], call.jti, sizeof(call.jti));
    ++fake->revocation_epoch;
    complete(&op->op, SK_STORE_OK);
}

static void fake_rate_take(sk_store_thread_t *thread, sk_store_rate_take_t *op)
{
    sk_fake_call_t call = {0};
    copy_field(call.user, sizeof(call.user), op->user.base, op->user.len);
    op->retry_after_usec = 1500000; /* read only when a scripted LIMITED answers */
    if (begin(thread->fake, SK_FAKE_RATE_TAKE, &op->op, &call))
        return;
    complete(&op->op, SK_STORE_OK);
}

static int fake_is_revoked(sk_store_t *store, const char *jti)
{
    sk_fake_store_t *fake = (sk_fake_store_t *)store;
    for (size_t i = 0; i != fake->revoked_count; ++i) {
        if (strcmp(fake->revoked[i], jti) == 0)
            return 1;
    }
    return 0;
}

static uint64_t fake_revocation_epoch(sk_store_t *store)
{
    return ((sk_fake_store_t *)store)->revocation_epoch;
}

static const char *fake_deployment_id(sk_store_t *store)
{
    sk_fake_store_t *fake = (sk_fake_store_t *)store;
    return fake->has_deployment_id ? fake->deployment_id : NULL;
}

static int fake_is_ready(sk_store_t *store)
{
    return ((sk_fake_store_t *)store)->ready;
}

static void fake_stats(sk_store_t *store, sk_store_stats_t *out)
{
    (void)store;
    memset(out, 0, sizeof(*out));
}

static int fake_drain(sk_store_t *store)
{
    (void)store;
    return 0;
}

static void fake_destroy(sk_store_t *store)
{
    sk_fake_store_t *fake = (sk_fake_store_t *)store;
    assert(fake->threads == 0);
    for (size_t i = 0; i != fake->user_count; ++i)
        free(fake->users[i].password_hash);
    free(fake);
}

#define FAKE_VTABLE_ENTRIES                                                                        \
    .thread_create = fake_thread_create, .thread_destroy = fake_thread_destroy,                    \
    .user_register = fake_user_register, .user_find = fake_user_find,                              \
    .coupon_create = fake_coupon_create, .coupon_list = fake_coupon_list, .grab = fake_grab,       \
    .revoke = fake_revoke, .is_revoked = fake_is_revoked,                                          \
    .revocation_epoch = fake_revocation_epoch, .deployment_id = fake_deployment_id,                \
    .is_ready = fake_is_ready, .stats = fake_stats, .drain = fake_drain, .destroy = fake_destroy

/* Whether a store shares rate limits is whether its vtable has rate_take (store.c). */
static const sk_store_vtable_t local_vtable = {FAKE_VTABLE_ENTRIES, .rate_take = NULL};
static const sk_store_vtable_t shared_vtable = {FAKE_VTABLE_ENTRIES, .rate_take = fake_rate_take};

sk_fake_store_t *sk_fake_store_create(const char *deployment_id, int shares_rate_limits)
{
    sk_fake_store_t *fake = calloc(1, sizeof(*fake));
    if (fake == NULL)
        return NULL;
    fake->base.vtable = shares_rate_limits ? &shared_vtable : &local_vtable;
    fake->ready = 1;
    sk_fake_store_set_deployment_id(fake, deployment_id);
    return fake;
}

sk_store_t *sk_fake_store_base(sk_fake_store_t *fake)
{
    return &fake->base;
}

int64_t sk_fake_store_add_user(sk_fake_store_t *fake, const char *username, sk_user_kind_t kind,
                               const char *password_hash)
{
    assert(fake->user_count < MAX_USERS);
    fake_user_t *user = &fake->users[fake->user_count++];
    copy_field(user->name, sizeof(user->name), username, strlen(username));
    user->kind = kind;
    user->id = (int64_t)fake->user_count;
    user->password_hash = strdup(password_hash != NULL ? password_hash : "");
    assert(user->password_hash != NULL);
    return user->id;
}

void sk_fake_store_answer_next(sk_fake_store_t *fake, sk_fake_op_t op, sk_store_result_t result)
{
    assert(fake->scripted[op].count < MAX_SCRIPTED);
    fake->scripted[op].answers[fake->scripted[op].count++] = result;
}

unsigned sk_fake_store_calls(const sk_fake_store_t *fake, sk_fake_op_t op)
{
    return fake->calls[op];
}

unsigned sk_fake_store_all_calls(const sk_fake_store_t *fake)
{
    unsigned total = 0;
    for (int op = 0; op != SK_FAKE_OP_COUNT; ++op)
        total += fake->calls[op];
    return total;
}

const sk_fake_call_t *sk_fake_store_last(const sk_fake_store_t *fake, sk_fake_op_t op)
{
    return &fake->last[op];
}

void sk_fake_store_set_deployment_id(sk_fake_store_t *fake, const char *deployment_id)
{
    fake->has_deployment_id = deployment_id != NULL;
    if (deployment_id != NULL)
        copy_field(fake->deployment_id, sizeof(fake->deployment_id), deployment_id,
                   strlen(deployment_id));
}

void sk_fake_store_set_ready(sk_fake_store_t *fake, int ready)
{
    fake->ready = ready;
}

void sk_fake_store_fail_next_thread(sk_fake_store_t *fake)
{
    fake->fail_next_thread = 1;
}

int sk_fake_store_threads(const sk_fake_store_t *fake)
{
    return fake->threads;
}
