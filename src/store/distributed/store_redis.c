/*
 * The distributed deployment's store (see store_redis.h): its operations.
 *
 * Worker side: every operation starts on a worker thread and completes there. Redis calls
 * go through the worker's own sk_redis_async_t; SQL calls are jobs on the SQL threads
 * (sql_jobs.c), whose continuation runs back on the worker. Other instances' logouts
 * arrive through the revocation listener (revocation_listener.c).
 */
#include "store/distributed/store_redis.h"

#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

#include "client/redis/sentinel.h"
#include "store/distributed/store_redis_internal.h"
#include "util/error.h"
#include "util/log.h"
#include "util/signals.h"

/* One pipelined connection carries a worker's every command. With WAIT a connection stalls
 * until the replicas answer (Redis blocks the client that sent it), so the commands of the
 * next turns go to the others meanwhile. */
#define REDIS_CONNECTIONS_PER_NODE 1
#ifndef REDIS_CONNECTIONS_PER_NODE_WAITING /* -D for the A/B of bench/NOTES-distributed.md */
#define REDIS_CONNECTIONS_PER_NODE_WAITING 4
#endif
#define REDIS_TIMEOUT_MS 2000
#define CLAIM_IDLE_MS 10000         /* a pending grant older than this: its instance died */
#define REVOCATIONS_MAXLEN "100000" /* older revocations come from SQL at start */
#define SEEN_FRESH_MS 3000          /* an instance silent for longer is gone: not waited for */
#define LOGOUT_WAIT_MS 1000         /* a logout waits at most this for the other instances */
#define LOGOUT_POLL_MS 2
#define UNDO_RETRY_MS 200 /* between attempts at undoing a creation in Redis */
#define UNDO_WAIT_MS 2000 /* no attempt starts later than this after the first */

typedef struct cached_user {
    int64_t id;
    sk_user_kind_t kind;
    char *password_hash;
} cached_user_t;

/* A coupon this instance saw sold out: answers without a round trip from then on (a
 * coupon never comes back once sold out). Keeps the window, which is checked first. */
typedef struct sold_out_coupon {
    int64_t start_at, end_at;
} sold_out_coupon_t;

static void complete(sk_store_op_t *op, sk_store_result_t result)
{
    op->result = result;
    op->on_done(op);
}

static sk_store_result_t from_sql(sk_mysql_result_t result)
{
    switch (result) {
    case SK_MYSQL_OK:
        return SK_STORE_OK;
    case SK_MYSQL_DUPLICATE:
        return SK_STORE_DUPLICATE;
    case SK_MYSQL_NOT_FOUND:
        return SK_STORE_NOT_FOUND;
    default:
        return SK_STORE_UNAVAILABLE;
    }
}

static char *pool_strndup(h2o_mem_pool_t *pool, const char *bytes, size_t len)
{
    char *copy = h2o_mem_alloc_pool(pool, len + 1);
    memcpy(copy, bytes, len);
    copy[len] = '\0';
    return copy;
}

int64_t sk__redis_reply_int(const redisReply *value, int64_t absent)
{
    if (value->type != REDIS_REPLY_STRING || value->len == 0 || value->len > 20)
        return absent;
    char digits[24];
    memcpy(digits, value->str, value->len);
    digits[value->len] = '\0';
    return strtoll(digits, NULL, 10);
}

/* ---- users ---- */

static int keep_existing(void *existing)
{
    (void)existing;
    return 1;
}

static cached_user_t *remember_user(sk__redis_store_t *store, h2o_iovec_t name, int64_t id,
                                    sk_user_kind_t kind, const char *password_hash)
{
    cached_user_t *user = malloc(sizeof(*user));
    if (user == NULL)
        return NULL;
    user->id = id;
    user->kind = kind;
    user->password_hash = strdup(password_hash);
    if (user->password_hash == NULL) {
        free(user);
        return NULL;
    }
    cached_user_t *stored = sk_index_insert(store->users, name.base, name.len, user, keep_existing);
    if (stored != user) {
        free(user->password_hash);
        free(user);
    }
    return stored;
}

static void on_user_registered(sk__sql_job_t *job)
{
    /* Not cached here: the insert does not tell the row's id, which tokens carry; the
     * first login reads the user (and caches it). */
    complete(job->op, from_sql(job->result));
}

static void redis_user_register(sk_store_thread_t *thread, sk_store_user_register_t *op)
{
    sk__sql_jobs_submit(thread, &op->op, SK__SQL_USER_REGISTER, on_user_registered);
}

/* A user lookup's answer from SQL, cached: the user, or NULL after completing the op with
 * what went wrong. */
static cached_user_t *found_user(sk__sql_job_t *job, h2o_iovec_t username)
{
    if (job->result != SK_MYSQL_OK) {
        complete(job->op, from_sql(job->result));
        return NULL;
    }
    cached_user_t *user =
        remember_user(job->op->_thread->store, username, job->user_id,
                      job->is_seller ? SK_USER_SELLER : SK_USER_CUSTOMER, job->password_hash);
    if (user == NULL)
        complete(job->op, SK_STORE_UNAVAILABLE);
    return user;
}

static void on_user_found(sk__sql_job_t *job)
{
    sk_store_user_find_t *op = (sk_store_user_find_t *)job->op;
    cached_user_t *user = found_user(job, op->username);
    if (user == NULL)
        return;
    op->id = user->id;
    op->kind = user->kind;
    op->password_hash = user->password_hash;
    complete(job->op, SK_STORE_OK);
}

static void redis_user_find(sk_store_thread_t *thread, sk_store_user_find_t *op)
{
    cached_user_t *user = sk_index_find(thread->store->users, op->username.base, op->username.len);
    if (user != NULL) {
        op->id = user->id;
        op->kind = user->kind;
        op->password_hash = user->password_hash;
        complete(&op->op, SK_STORE_OK);
        return;
    }
    sk__sql_jobs_submit(thread, &op->op, SK__SQL_USER_FIND, on_user_found);
}

/* ---- coupon creation: SQL row, the seller's list, then the coupon's hash ---- */

typedef struct create_state {
    sk_store_coupon_create_t *op;
    char seller_key[SK_HOT_KEY_MAX];
    size_t seller_key_len;
    char coupon_key[SK_HOT_KEY_MAX];
    size_t coupon_key_len;
    uint64_t unload_deadline;         /* loop time: no attempt at the undo starts after it */
    h2o_timeout_entry_t unload_retry; /* on thread->undo_retry */
} create_state_t;

static void ignore_reply(void *data, redisReply *reply)
{
    (void)data;
    (void)reply;
}

static void on_creation_undone(sk__sql_job_t *job)
{
    complete(job->op, SK_STORE_UNAVAILABLE);
}

/* Redis failed after the SQL row was made, and holds no hash of this coupon: take the row
 * (and the list entry) back, so that a retry can succeed. If even that fails,
 * `seckill reconcile --repair` finishes it. */
static void undo_creation(create_state_t *state)
{
    sk_store_thread_t *thread = state->op->op._thread;
    const char *zrem[] = {"ZREM", state->seller_key, state->op->name.base};
    size_t zrem_len[] = {4, state->seller_key_len, state->op->name.len};
    sk_redis_async_command(thread->redis, NULL, 0, 3, zrem, zrem_len, ignore_reply, NULL);
    sk_log(SK_LOG_WARN, "store", "Redis failed while creating a coupon: undoing its SQL row");
    sk__sql_jobs_submit(thread, &state->op->op, SK__SQL_COUPON_DELETE, on_creation_undone);
}

static void unload_coupon(create_state_t *state);

static void on_unload_retry(h2o_timeout_entry_t *entry)
{
    unload_coupon(H2O_STRUCT_FROM_MEMBER(create_state_t, unload_retry, entry));
}

static void on_unloaded(void *data, redisReply *reply)
{
    create_state_t *state = data;
    sk_store_thread_t *thread = state->op->op._thread;
    if (reply != NULL && reply->type == REDIS_REPLY_INTEGER) {
        if (reply->integer == 1)
            undo_creation(state);
        else /* a grab took one: the creation is complete in SQL and Redis, and stands */
            complete(&state->op->op, SK_STORE_OK);
        return;
    }
    /* A reply lost to a broken connection leaves it down until its reconnection (100 ms):
     * the next attempt finds it back. */
    if (h2o_now(thread->loop) < state->unload_deadline && !sk_signals_stop_requested()) {
        h2o_timeout_link(thread->loop, &thread->undo_retry, &state->unload_retry);
        return;
    }
    /* Whether Redis has the hash is unknown: the SQL row stays, so that no coupon can
     * exist in Redis alone, grabbable and unknown to SQL. */
    sk_log(SK_LOG_WARN, "store",
           "Redis did not answer a coupon's creation, nor its undo: the coupon stays in SQL "
           "(`seckill reconcile --repair` completes it in Redis)");
    complete(&state->op->op, SK_STORE_UNAVAILABLE);
}

/* The load script went unanswered: it may have run. The hash goes first (unless a grab
 * already made the coupon real), then the row; a hash left behind would be a coupon SQL
 * does not know, grabbable, with grants that no row accounts for. */
static void unload_coupon(create_state_t *state)
{
    sk_store_thread_t *thread = state->op->op._thread;
    const char *keys[] = {state->coupon_key};
    size_t key_lens[] = {state->coupon_key_len};
    /* Replicated: "a grab took one" then means the replicas have the coupon as well (this
     * WAIT follows the load script's write in the replication stream), so its 201 holds
     * through a failover like any other. */
    sk_redis_async_eval_replicated(thread->redis, &thread->store->hot.unload, 1, keys, key_lens, 0,
                                   NULL, NULL, on_unloaded, state);
}

static void on_coupon_hash_made(void *data, redisReply *reply)
{
    create_state_t *state = data;
    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        state->unload_deadline = h2o_now(state->op->op._thread->loop) + UNDO_WAIT_MS;
        unload_coupon(state);
        return;
    }
    complete(&state->op->op, SK_STORE_OK);
}

static void on_seller_listed(void *data, redisReply *reply)
{
    create_state_t *state = data;
    sk_store_coupon_create_t *op = state->op;
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        undo_creation(state);
        return;
    }
    sk__redis_store_t *store = op->op._thread->store;
    char numbers[4][24];
    snprintf(numbers[0], sizeof(numbers[0]), "%" PRId64, op->amount);
    snprintf(numbers[1], sizeof(numbers[1]), "%" PRId64, op->stock);
    snprintf(numbers[2], sizeof(numbers[2]), "%" PRId64, op->start_at);
    snprintf(numbers[3], sizeof(numbers[3]), "%" PRId64, op->end_at);
    char id[24], member[2 * SK_STORE_MAX_NAME + 2];
    sk__sql_job_t *job = op->op._store_data;
    snprintf(id, sizeof(id), "%" PRId64, job->coupon_id);
    int member_len = snprintf(member, sizeof(member), "%.*s/%.*s", (int)op->seller.len,
                              op->seller.base, (int)op->name.len, op->name.base);
    unsigned shard = sk_hot_shard(member, (size_t)member_len);
    state->coupon_key_len = sk_hot_key(state->coupon_key, &store->hot, shard, 'c', op->seller.base,
                                       op->seller.len, op->name.base, op->name.len);
    const char *key_ptrs[1] = {state->coupon_key};
    size_t key_lens[1] = {state->coupon_key_len};
    const char *args[10] = {"1",
                            "1",
                            numbers[0],
                            numbers[0],
                            numbers[1],
                            op->description.base,
                            op->start_at != SK_STORE_NO_TIME ? numbers[2] : "",
                            op->end_at != SK_STORE_NO_TIME ? numbers[3] : "",
                            id,
                            member};
    size_t arg_lens[10];
    for (int i = 0; i != 10; ++i)
        arg_lens[i] = strlen(args[i]);
    arg_lens[5] = op->description.len;
    arg_lens[9] = (size_t)member_len;
    sk_redis_async_eval_replicated(op->op._thread->redis, &store->hot.load, 1, key_ptrs, key_lens,
                                   10, args, arg_lens, on_coupon_hash_made, state);
}

static void on_coupon_inserted(sk__sql_job_t *job)
{
    sk_store_coupon_create_t *op = (sk_store_coupon_create_t *)job->op;
    if (job->result != SK_MYSQL_OK) {
        complete(job->op, from_sql(job->result));
        return;
    }
    sk__redis_store_t *store = job->op->_thread->store;
    create_state_t *state = h2o_mem_alloc_pool(job->op->pool, sizeof(*state));
    memset(state, 0, sizeof(*state));
    state->op = op;
    state->unload_retry.cb = on_unload_retry;
    state->seller_key_len =
        sk_hot_key(state->seller_key, &store->hot, sk_hot_shard(op->seller.base, op->seller.len),
                   's', op->seller.base, op->seller.len, NULL, 0);
    char score[24];
    int score_len = snprintf(score, sizeof(score), "%" PRId64, job->coupon_id);
    const char *argv[] = {"ZADD", state->seller_key, score, op->name.base};
    size_t lens[] = {4, state->seller_key_len, (size_t)score_len, op->name.len};
    sk_redis_async_command(job->op->_thread->redis, NULL, 0, 4, argv, lens, on_seller_listed,
                           state);
}

static void redis_coupon_create(sk_store_thread_t *thread, sk_store_coupon_create_t *op)
{
    if (!atomic_load(&thread->store->health.hot_state_ok)) {
        complete(&op->op, SK_STORE_UNAVAILABLE);
        return;
    }
    cached_user_t *seller = sk_index_find(thread->store->users, op->seller.base, op->seller.len);
    if (seller != NULL && (seller->kind != SK_USER_SELLER || seller->id != op->seller_id)) {
        complete(&op->op, SK_STORE_NOT_FOUND);
        return;
    }
    sk__sql_job_t *job =
        sk__sql_jobs_prepare(thread, &op->op, SK__SQL_COUPON_INSERT, on_coupon_inserted);
    job->user_found = seller != NULL;
    sk__sql_jobs_queue(job);
}

/* ---- listing ---- */

typedef struct holding {
    h2o_iovec_t member; /* "seller/name" */
    double score;
} holding_t;

typedef struct list_state {
    sk_store_coupon_list_t *op;
    size_t waiting; /* replies still to come */
    int failed;
    h2o_iovec_t *names; /* seller: coupon names; customer: "seller/name" members */
    size_t name_count;
    holding_t *holdings; /* customer: every holding, from every shard */
    size_t holding_count, holding_capacity;
    sk_store_coupon_item_t *items; /* filled by the hash replies, NULL name when missing */
} list_state_t;

typedef struct item_fetch {
    list_state_t *state;
    size_t index;
} item_fetch_t;

/* Moves the items whose hash was found (those given a name) to the front, in their order;
 * returns how many. A listed entry without a hash is a creation under way or undone. */
static size_t keep_found(sk_store_coupon_item_t *items, size_t count)
{
    size_t kept = 0;
    for (size_t i = 0; i != count; ++i)
        if (items[i].name.base != NULL)
            items[kept++] = items[i];
    return kept;
}

static void finish_list(list_state_t *state)
{
    sk_store_coupon_list_t *op = state->op;
    if (state->failed) {
        complete(&op->op, SK_STORE_UNAVAILABLE);
        return;
    }
    op->items =
        state->items != NULL ? state->items : h2o_mem_alloc_pool(op->op.pool, sizeof(op->items[0]));
    op->count = state->items != NULL ? keep_found(state->items, state->name_count) : 0;
    complete(&op->op, SK_STORE_OK);
}

static void on_item_hash(void *data, redisReply *reply)
{
    item_fetch_t *fetch = data;
    list_state_t *state = fetch->state;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 6) {
        state->failed = 1;
    } else if (reply->element[0]->type == REDIS_REPLY_STRING) {
        /* amount left stock desc start end; a missing hash (a list entry whose creation
         * was undone) is skipped */
        sk_store_coupon_item_t *item = &state->items[fetch->index];
        h2o_iovec_t member = state->names[fetch->index];
        h2o_mem_pool_t *pool = state->op->op.pool;
        if (state->op->kind == SK_USER_SELLER) {
            item->name = member;
            item->seller = state->op->username;
        } else {
            const char *slash = memchr(member.base, '/', member.len);
            size_t seller_len = slash != NULL ? (size_t)(slash - member.base) : 0;
            item->seller = h2o_iovec_init(member.base, seller_len);
            item->name = h2o_iovec_init(member.base + seller_len + 1, member.len - seller_len - 1);
        }
        item->amount = sk__redis_reply_int(reply->element[0], 0);
        item->left = sk__redis_reply_int(reply->element[1], 0);
        item->stock = sk__redis_reply_int(reply->element[2], 0);
        item->description =
            reply->element[3]->type == REDIS_REPLY_STRING
                ? h2o_iovec_init(pool_strndup(pool, reply->element[3]->str, reply->element[3]->len),
                                 reply->element[3]->len)
                : h2o_iovec_init("", 0);
        item->start_at = sk__redis_reply_int(reply->element[4], SK_STORE_NO_TIME);
        item->end_at = sk__redis_reply_int(reply->element[5], SK_STORE_NO_TIME);
    }
    if (--state->waiting == 0)
        finish_list(state);
}

/* Fetches the hash of every listed coupon, in one pipelined burst. */
static void fetch_items(list_state_t *state)
{
    sk_store_coupon_list_t *op = state->op;
    sk_store_thread_t *thread = op->op._thread;
    sk__redis_store_t *store = thread->store;
    if (state->name_count == 0) {
        finish_list(state);
        return;
    }
    state->items = h2o_mem_alloc_pool(op->op.pool, state->name_count * sizeof(state->items[0]));
    memset(state->items, 0, state->name_count * sizeof(state->items[0]));
    state->waiting = state->name_count;
    for (size_t i = 0; i != state->name_count; ++i) {
        item_fetch_t *fetch = h2o_mem_alloc_pool(op->op.pool, sizeof(*fetch));
        fetch->state = state;
        fetch->index = i;
        char member[2 * SK_STORE_MAX_NAME + 2];
        size_t member_len;
        if (op->kind == SK_USER_SELLER) {
            member_len =
                (size_t)snprintf(member, sizeof(member), "%.*s/%.*s", (int)op->username.len,
                                 op->username.base, (int)state->names[i].len, state->names[i].base);
        } else {
            member_len = state->names[i].len < sizeof(member) ? state->names[i].len : 0;
            memcpy(member, state->names[i].base, member_len);
        }
        const char *slash = memchr(member, '/', member_len);
        size_t seller_len = slash != NULL ? (size_t)(slash - member) : 0;
        char key[SK_HOT_KEY_MAX];
        size_t key_len = sk_hot_key(key, &store->hot, sk_hot_shard(member, member_len), 'c', member,
                                    seller_len, member + seller_len + 1,
                                    member_len - seller_len - (seller_len < member_len));
        const char *argv[] = {"HMGET", key, "amount", "left", "stock", "desc", "start", "end"};
        size_t lens[] = {5, key_len, 6, 4, 5, 4, 5, 3};
        sk_redis_async_command(thread->redis, NULL, 0, 8, argv, lens, on_item_hash, fetch);
    }
}

static void on_seller_page(void *data, redisReply *reply)
{
    list_state_t *state = data;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        state->failed = 1;
        finish_list(state);
        return;
    }
    h2o_mem_pool_t *pool = state->op->op.pool;
    state->names = h2o_mem_alloc_pool(pool, (reply->elements + 1) * sizeof(state->names[0]));
    for (size_t i = 0; i != reply->elements; ++i) {
        redisReply *name = reply->element[i];
        if (name->type != REDIS_REPLY_STRING || name->len > SK_STORE_MAX_NAME)
            continue;
        state->names[state->name_count++] =
            h2o_iovec_init(pool_strndup(pool, name->str, name->len), name->len);
    }
    fetch_items(state);
}

static int compare_holdings(const void *a, const void *b)
{
    const holding_t *left = a, *right = b;
    if (left->score != right->score)
        return left->score < right->score ? -1 : 1;
    size_t len = left->member.len < right->member.len ? left->member.len : right->member.len;
    int order = memcmp(left->member.base, right->member.base, len);
    return order != 0
               ? order
               : (left->member.len > right->member.len) - (left->member.len < right->member.len);
}

static void on_shard_holdings(void *data, redisReply *reply)
{
    list_state_t *state = data;
    h2o_mem_pool_t *pool = state->op->op.pool;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        state->failed = 1;
    } else {
        for (size_t i = 0; i + 1 < reply->elements; i += 2) {
            redisReply *member = reply->element[i], *score = reply->element[i + 1];
            if (member->type != REDIS_REPLY_STRING || score->type != REDIS_REPLY_STRING ||
                member->len > 2 * SK_STORE_MAX_NAME + 1)
                continue;
            if (state->holding_count == state->holding_capacity) {
                size_t capacity = state->holding_capacity ? state->holding_capacity * 2 : 64;
                holding_t *grown = h2o_mem_alloc_pool(pool, capacity * sizeof(*grown));
                if (state->holding_count != 0)
                    memcpy(grown, state->holdings, state->holding_count * sizeof(*grown));
                state->holdings = grown;
                state->holding_capacity = capacity;
            }
            state->holdings[state->holding_count++] = (holding_t){
                .member = h2o_iovec_init(pool_strndup(pool, member->str, member->len), member->len),
                .score = strtod(score->str, NULL),
            };
        }
    }
    if (--state->waiting != 0)
        return;
    if (state->failed) {
        finish_list(state);
        return;
    }
    /* Grab order across the shards, then the requested page. */
    if (state->holding_count > 1)
        qsort(state->holdings, state->holding_count, sizeof(holding_t), compare_holdings);
    int64_t page = state->op->page < 1 ? 1 : state->op->page;
    uint64_t skip = (uint64_t)(page - 1) * SK_STORE_PAGE_SIZE;
    state->names = h2o_mem_alloc_pool(pool, SK_STORE_PAGE_SIZE * sizeof(state->names[0]));
    for (uint64_t i = skip; i < state->holding_count && state->name_count != SK_STORE_PAGE_SIZE;
         ++i)
        state->names[state->name_count++] = state->holdings[i].member;
    fetch_items(state);
}

static void list_user_coupons(sk_store_coupon_list_t *op)
{
    sk_store_thread_t *thread = op->op._thread;
    sk__redis_store_t *store = thread->store;
    list_state_t *state = h2o_mem_alloc_pool(op->op.pool, sizeof(*state));
    memset(state, 0, sizeof(*state));
    state->op = op;
    int64_t page = op->page < 1 ? 1 : op->page;
    if (op->kind == SK_USER_SELLER) {
        if ((uint64_t)page > (uint64_t)INT64_MAX / SK_STORE_PAGE_SIZE) {
            finish_list(state);
            return;
        }
        char key[SK_HOT_KEY_MAX], start[24], stop[24];
        size_t key_len =
            sk_hot_key(key, &store->hot, sk_hot_shard(op->username.base, op->username.len), 's',
                       op->username.base, op->username.len, NULL, 0);
        int start_len = snprintf(start, sizeof(start), "%" PRId64, (page - 1) * SK_STORE_PAGE_SIZE);
        int stop_len = snprintf(stop, sizeof(stop), "%" PRId64, page * SK_STORE_PAGE_SIZE - 1);
        const char *argv[] = {"ZRANGE", key, start, stop};
        size_t lens[] = {6, key_len, (size_t)start_len, (size_t)stop_len};
        sk_redis_async_command(thread->redis, NULL, 0, 4, argv, lens, on_seller_page, state);
        return;
    }
    state->waiting = SK_HOT_SHARDS;
    for (unsigned shard = 0; shard != SK_HOT_SHARDS; ++shard) {
        char key[SK_HOT_KEY_MAX];
        size_t key_len =
            sk_hot_key(key, &store->hot, shard, 'u', op->username.base, op->username.len, NULL, 0);
        const char *argv[] = {"ZRANGE", key, "0", "-1", "WITHSCORES"};
        size_t lens[] = {6, key_len, 1, 2, 10};
        sk_redis_async_command(thread->redis, NULL, 0, 5, argv, lens, on_shard_holdings, state);
    }
}

static void on_list_user_found(sk__sql_job_t *job)
{
    sk_store_coupon_list_t *op = (sk_store_coupon_list_t *)job->op;
    cached_user_t *user = found_user(job, op->username);
    if (user == NULL)
        return;
    op->user_id = user->id;
    op->kind = user->kind;
    list_user_coupons(op);
}

static void redis_coupon_list(sk_store_thread_t *thread, sk_store_coupon_list_t *op)
{
    op->op._thread = thread;
    op->items = NULL;
    op->count = 0;
    cached_user_t *user = sk_index_find(thread->store->users, op->username.base, op->username.len);
    if (user != NULL) {
        op->user_id = user->id;
        op->kind = user->kind;
        list_user_coupons(op);
        return;
    }
    sk__sql_jobs_submit(thread, &op->op, SK__SQL_LIST_USER_FIND, on_list_user_found);
}

/* ---- the live sale view's pages: names and amounts from SQL, `left` from Redis ---- */

typedef struct catalog_state {
    sk__sql_job_t *job;
    sk_store_coupon_catalog_t *op;
    size_t waiting; /* replies still to come */
    int failed;
    sk_store_coupon_item_t *items; /* by row; a NULL name when the coupon has no hash */
} catalog_state_t;

typedef struct catalog_fetch {
    catalog_state_t *state;
    size_t index;
} catalog_fetch_t;

static void finish_catalog(catalog_state_t *state)
{
    sk_store_coupon_catalog_t *op = state->op;
    if (state->failed) {
        complete(&op->op, SK_STORE_UNAVAILABLE);
        return;
    }
    op->total = state->job->total;
    op->items = state->items;
    op->count = keep_found(state->items, state->job->row_count);
    complete(&op->op, SK_STORE_OK);
}

static void on_catalog_left(void *data, redisReply *reply)
{
    catalog_fetch_t *fetch = data;
    catalog_state_t *state = fetch->state;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
        state->failed = 1;
    } else if (reply->element[1]->type == REDIS_REPLY_STRING) {
        const sk_mysql_catalog_row_t *row = &state->job->rows[fetch->index];
        sk_store_coupon_item_t *item = &state->items[fetch->index];
        h2o_mem_pool_t *pool = state->op->op.pool;
        item->seller =
            h2o_iovec_init(pool_strndup(pool, row->seller, row->seller_len), row->seller_len);
        item->name = h2o_iovec_init(pool_strndup(pool, row->name, row->name_len), row->name_len);
        item->description = h2o_iovec_init("", 0);
        item->amount = sk__redis_reply_int(reply->element[0], row->amount);
        item->left = sk__redis_reply_int(reply->element[1], 0);
        item->start_at = item->end_at = SK_STORE_NO_TIME;
    }
    if (--state->waiting == 0)
        finish_catalog(state);
}

static void on_catalog_rows(sk__sql_job_t *job)
{
    sk_store_coupon_catalog_t *op = (sk_store_coupon_catalog_t *)job->op;
    sk_store_thread_t *thread = op->op._thread;
    if (job->result != SK_MYSQL_OK) {
        complete(&op->op, from_sql(job->result));
        return;
    }
    catalog_state_t *state = h2o_mem_alloc_pool(op->op.pool, sizeof(*state));
    memset(state, 0, sizeof(*state));
    state->job = job;
    state->op = op;
    state->items = h2o_mem_alloc_pool(op->op.pool, (job->row_count + 1) * sizeof(state->items[0]));
    memset(state->items, 0, (job->row_count + 1) * sizeof(state->items[0]));
    /* One more than the replies until every command is sent, so that none finishes early. */
    state->waiting = 1;
    for (size_t i = 0; i != job->row_count; ++i) {
        const sk_mysql_catalog_row_t *row = &job->rows[i];
        /* A row that SQL alone holds, written by hand with a name longer than the API's,
         * has no hot state. */
        if (row->seller_len > SK_STORE_MAX_NAME || row->name_len > SK_STORE_MAX_NAME)
            continue;
        catalog_fetch_t *fetch = h2o_mem_alloc_pool(op->op.pool, sizeof(*fetch));
        fetch->state = state;
        fetch->index = i;
        ++state->waiting;
        char member[2 * SK_STORE_MAX_NAME + 2], key[SK_HOT_KEY_MAX];
        int member_len = snprintf(member, sizeof(member), "%.*s/%.*s", (int)row->seller_len,
                                  row->seller, (int)row->name_len, row->name);
        size_t key_len =
            sk_hot_key(key, &thread->store->hot, sk_hot_shard(member, (size_t)member_len), 'c',
                       row->seller, row->seller_len, row->name, row->name_len);
        const char *argv[] = {"HMGET", key, "amount", "left"};
        size_t lens[] = {5, key_len, 6, 4};
        sk_redis_async_command(thread->redis, NULL, 0, 4, argv, lens, on_catalog_left, fetch);
    }
    if (--state->waiting == 0)
        finish_catalog(state);
}

static void redis_coupon_catalog(sk_store_thread_t *thread, sk_store_coupon_catalog_t *op)
{
    op->items = NULL;
    op->count = 0;
    op->total = 0;
    int64_t page = op->page < 1 ? 1 : op->page;
    sk__sql_job_t *job = sk__sql_jobs_prepare(thread, &op->op, SK__SQL_CATALOG, on_catalog_rows);
    job->offset = (uint64_t)page > (uint64_t)INT64_MAX / SK_STORE_CATALOG_PAGE_SIZE
                      ? INT64_MAX
                      : (page - 1) * SK_STORE_CATALOG_PAGE_SIZE;
    job->rows = h2o_mem_alloc_pool(op->op.pool, SK_STORE_CATALOG_PAGE_SIZE * sizeof(job->rows[0]));
    sk__sql_jobs_queue(job);
}

/* ---- the grab ---- */

/*
 * Grabs are sent in batches: those that arrive in one turn of the worker's loop go to
 * Redis as one script call (at most SK_HOT_GRAB_BATCH each), flushed at the end of the
 * turn: one batch per shard on a Redis Cluster (a call stays in one slot), one for all on
 * a standalone Redis. Redis's cost per grab is most of the distributed deployment's cost.
 */
typedef struct grab_call {
    sk_store_grab_t *op;
    size_t member_len, now_len;
    size_t key_lens[3]; /* coupon, the customer's holdings, the stream */
    char member[2 * SK_STORE_MAX_NAME + 2];
    char now[24];
    char keys[3][SK_HOT_KEY_MAX];
} grab_call_t;

typedef struct grab_batch {
    sk_store_thread_t *thread;
    size_t count;
    grab_call_t *calls[SK_HOT_GRAB_BATCH];
} grab_batch_t;

static void remember_sold_out(sk__redis_store_t *store, const grab_call_t *call, int64_t start_at,
                              int64_t end_at)
{
    if (sk_index_find(store->sold_out, call->member, call->member_len) != NULL)
        return;
    sold_out_coupon_t *coupon = malloc(sizeof(*coupon));
    if (coupon == NULL)
        return; /* only a shortcut is lost */
    coupon->start_at = start_at;
    coupon->end_at = end_at;
    if (sk_index_insert(store->sold_out, call->member, call->member_len, coupon, keep_existing) !=
        coupon)
        free(coupon);
}

/* One number of a grab's answer "code left start end" ("-": no window bound), advancing
 * *text past it. */
static int64_t answer_number(const char **text, const char *end)
{
    while (*text < end && **text == ' ')
        ++*text;
    if (*text < end && **text == '-' && (*text + 1 == end || (*text)[1] == ' ')) {
        ++*text;
        return SK_STORE_NO_TIME;
    }
    int negative = *text < end && **text == '-';
    if (negative)
        ++*text;
    int64_t value = 0;
    while (*text < end && **text >= '0' && **text <= '9')
        value = value * 10 + (*(*text)++ - '0');
    return negative ? -value : value;
}

/* One grab's answer, "code left start end", or NULL when the batch failed. */
static void complete_grab(sk__redis_store_t *store, grab_call_t *call, const redisReply *answer)
{
    static const sk_store_result_t results[] = {
        [SK_HOT_GRANTED] = SK_STORE_OK,
        [SK_HOT_NO_SUCH_COUPON] = SK_STORE_NO_SUCH_COUPON,
        [SK_HOT_NOT_STARTED] = SK_STORE_NOT_STARTED,
        [SK_HOT_ENDED] = SK_STORE_ENDED,
        [SK_HOT_SOLD_OUT] = SK_STORE_SOLD_OUT,
        [SK_HOT_ALREADY_HELD] = SK_STORE_ALREADY_HELD,
        [SK_HOT_LOADING] = SK_STORE_UNAVAILABLE,
    };
    if (answer == NULL || answer->type != REDIS_REPLY_STRING) {
        complete(&call->op->op, SK_STORE_UNAVAILABLE);
        return;
    }
    const char *text = answer->str, *end = answer->str + answer->len;
    int64_t code = answer_number(&text, end), left = answer_number(&text, end);
    if (code == SK_HOT_SOLD_OUT || (code == SK_HOT_GRANTED && left == 0)) {
        int64_t start_at = answer_number(&text, end);
        remember_sold_out(store, call, start_at, answer_number(&text, end));
    }
    complete(&call->op->op,
             code >= 0 && code <= SK_HOT_LOADING ? results[code] : SK_STORE_UNAVAILABLE);
}

static void on_batch_reply(void *data, redisReply *reply)
{
    grab_batch_t *batch = data;
    sk__redis_store_t *store = batch->thread->store;
    int whole =
        reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements == batch->count;
    if (!whole) {
        if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
            sk_log(SK_LOG_ERROR, "store", "grab script failed: %s", reply->str);
        atomic_fetch_add_explicit(&store->health.redis_errors, 1, memory_order_relaxed);
    }
    for (size_t i = 0; i != batch->count; ++i)
        complete_grab(store, batch->calls[i], whole ? reply->element[i] : NULL);
    free(batch);
}

static void flush_batch(sk_store_thread_t *thread, unsigned slot)
{
    grab_batch_t *pending = thread->pending_grabs[slot];
    thread->pending_grabs[slot] = NULL;
    if (pending == NULL)
        return;
    sk__redis_store_t *store = thread->store;
    const char *keys[3 * SK_HOT_GRAB_BATCH], *args[5 * SK_HOT_GRAB_BATCH];
    size_t key_lens[3 * SK_HOT_GRAB_BATCH], arg_lens[5 * SK_HOT_GRAB_BATCH];
    for (size_t i = 0; i != pending->count; ++i) {
        grab_call_t *call = pending->calls[i];
        sk_store_grab_t *op = call->op;
        for (int k = 0; k != 3; ++k) {
            keys[3 * i + k] = call->keys[k];
            key_lens[3 * i + k] = call->key_lens[k];
        }
        const char *values[5] = {op->customer.base, op->seller.base, op->name.base, call->member,
                                 call->now};
        size_t lens[5] = {op->customer.len, op->seller.len, op->name.len, call->member_len,
                          call->now_len};
        memcpy(args + 5 * i, values, sizeof(values));
        memcpy(arg_lens + 5 * i, lens, sizeof(lens));
    }
    sk_redis_async_eval_replicated(thread->redis, &store->hot.grab, (int)(3 * pending->count), keys,
                                   key_lens, (int)(5 * pending->count), args, arg_lens,
                                   on_batch_reply, pending);
}

static void on_flush_grabs(h2o_timeout_entry_t *entry)
{
    sk_store_thread_t *thread = H2O_STRUCT_FROM_MEMBER(sk_store_thread_t, flush_grabs_entry, entry);
    for (unsigned slot = 0; slot != SK_HOT_SHARDS; ++slot)
        flush_batch(thread, slot);
}

static void redis_grab(sk_store_thread_t *thread, sk_store_grab_t *op)
{
    sk__redis_store_t *store = thread->store;
    op->op._thread = thread;
    if (op->seller.len > SK_STORE_MAX_NAME || op->name.len > SK_STORE_MAX_NAME ||
        op->customer.len > SK_STORE_MAX_NAME) {
        complete(&op->op, SK_STORE_NO_SUCH_COUPON);
        return;
    }
    grab_call_t *call = h2o_mem_alloc_pool(op->op.pool, sizeof(*call));
    call->op = op;
    memcpy(call->member, op->seller.base, op->seller.len);
    call->member[op->seller.len] = '/';
    memcpy(call->member + op->seller.len + 1, op->name.base, op->name.len);
    call->member_len = op->seller.len + 1 + op->name.len;

    /* Sold out here before: answer without Redis (the window still comes first). */
    sold_out_coupon_t *sold_out = sk_index_find(store->sold_out, call->member, call->member_len);
    if (sold_out != NULL) {
        if (sold_out->start_at != SK_STORE_NO_TIME && op->now < sold_out->start_at)
            complete(&op->op, SK_STORE_NOT_STARTED);
        else if (sold_out->end_at != SK_STORE_NO_TIME && op->now >= sold_out->end_at)
            complete(&op->op, SK_STORE_ENDED);
        else
            complete(&op->op, SK_STORE_SOLD_OUT);
        return;
    }
    if (!atomic_load_explicit(&store->health.hot_state_ok, memory_order_relaxed)) {
        complete(&op->op, SK_STORE_UNAVAILABLE);
        return;
    }

    unsigned shard = sk_hot_shard(call->member, call->member_len);
    call->key_lens[0] = sk_hot_key(call->keys[0], &store->hot, shard, 'c', op->seller.base,
                                   op->seller.len, op->name.base, op->name.len);
    call->key_lens[1] = sk_hot_key(call->keys[1], &store->hot, shard, 'u', op->customer.base,
                                   op->customer.len, NULL, 0);
    call->key_lens[2] = sk_hot_key(call->keys[2], &store->hot, shard, 'g', NULL, 0, NULL, 0);
    call->now_len = (size_t)snprintf(call->now, sizeof(call->now), "%" PRId64, op->now);

    unsigned slot =
        atomic_load_explicit(&store->health.redis_cluster, memory_order_relaxed) ? shard : 0;
    grab_batch_t *batch = thread->pending_grabs[slot];
    if (batch == NULL) {
        batch = malloc(sizeof(*batch));
        if (batch == NULL) {
            complete(&op->op, SK_STORE_UNAVAILABLE);
            return;
        }
        batch->thread = thread;
        batch->count = 0;
        thread->pending_grabs[slot] = batch;
    }
    batch->calls[batch->count++] = call;
    if (batch->count == SK_HOT_GRAB_BATCH)
        flush_batch(thread, slot);
    else if (!h2o_timeout_is_linked(&thread->flush_grabs_entry))
        h2o_timeout_link(thread->loop, &thread->flush_grabs, &thread->flush_grabs_entry);
}

/* ---- revocations ---- */

/* A logout answers once every live instance refuses the token: each instance's listener
 * writes the last revocation it applied to REVOCATIONS_SEEN_KEY, and the logout polls that
 * until every instance heard from in the last SEEN_FRESH_MS is past its own entry. */
typedef struct logout_wait {
    sk_store_op_t *op;
    uint64_t id_ms, id_seq; /* the revocation's stream entry */
    uint64_t deadline;      /* loop time */
    h2o_timeout_entry_t timer;
} logout_wait_t;

/* "ms-seq" (or "ms") into *ms, *seq. Returns 0, or SK_EINVAL when empty or too long. */
static int parse_stream_id(const char *text, size_t len, uint64_t *ms, uint64_t *seq)
{
    char buffer[48];
    if (len == 0 || len >= sizeof(buffer))
        return SK_EINVAL;
    memcpy(buffer, text, len);
    buffer[len] = '\0';
    char *dash;
    *ms = strtoull(buffer, &dash, 10);
    *seq = *dash == '-' ? strtoull(dash + 1, NULL, 10) : 0;
    return 0;
}

static void poll_seen(logout_wait_t *wait);

static void on_seen(void *data, redisReply *reply)
{
    logout_wait_t *wait = data;
    sk_store_thread_t *thread = wait->op->_thread;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t now_ms = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
    int everyone = reply != NULL && reply->type == REDIS_REPLY_ARRAY;
    for (size_t i = 0; everyone && i + 1 < reply->elements; i += 2) {
        const redisReply *value = reply->element[i + 1];
        if (value->type != REDIS_REPLY_STRING)
            continue;
        uint64_t ms, seq;
        const char *space = memchr(value->str, ' ', value->len);
        if (space == NULL ||
            parse_stream_id(value->str, (size_t)(space - value->str), &ms, &seq) != 0)
            continue;
        uint64_t heard_ms = strtoull(space + 1, NULL, 10);
        if (heard_ms + SEEN_FRESH_MS < now_ms)
            continue; /* that instance stopped: it loads the revocation when it starts */
        if (ms < wait->id_ms || (ms == wait->id_ms && seq < wait->id_seq))
            everyone = 0;
    }
    if (everyone || h2o_now(thread->loop) >= wait->deadline) {
        complete(wait->op, SK_STORE_OK);
        return;
    }
    h2o_timeout_link(thread->loop, &thread->logout_poll, &wait->timer);
}

static void on_logout_poll(h2o_timeout_entry_t *entry)
{
    poll_seen(H2O_STRUCT_FROM_MEMBER(logout_wait_t, timer, entry));
}

static void poll_seen(logout_wait_t *wait)
{
    const char *argv[] = {"HGETALL", REVOCATIONS_SEEN_KEY};
    size_t lens[] = {7, strlen(REVOCATIONS_SEEN_KEY)};
    sk_redis_async_command(wait->op->_thread->redis, NULL, 0, 2, argv, lens, on_seen, wait);
}

static void on_revocation_published(void *data, redisReply *reply)
{
    sk_store_op_t *op = data;
    if (reply == NULL || reply->type != REDIS_REPLY_STRING) {
        complete(op, SK_STORE_UNAVAILABLE);
        return;
    }
    logout_wait_t *wait = h2o_mem_alloc_pool(op->pool, sizeof(*wait));
    memset(wait, 0, sizeof(*wait));
    wait->op = op;
    wait->timer.cb = on_logout_poll;
    wait->deadline = h2o_now(op->_thread->loop) + LOGOUT_WAIT_MS;
    if (parse_stream_id(reply->str, reply->len, &wait->id_ms, &wait->id_seq) != 0) {
        complete(op, SK_STORE_OK);
        return;
    }
    poll_seen(wait);
}

static void on_revocation_recorded(sk__sql_job_t *job)
{
    sk_store_revoke_t *op = (sk_store_revoke_t *)job->op;
    if (job->result != SK_MYSQL_OK) {
        complete(job->op, SK_STORE_UNAVAILABLE);
        return;
    }
    char expires[24];
    int expires_len = snprintf(expires, sizeof(expires), "%" PRId64, op->expires_at);
    const char *argv[] = {
        "XADD", SK_HOT_REVOCATIONS_KEY, "MAXLEN", "~", REVOCATIONS_MAXLEN, "*", "j", op->jti, "e",
        expires};
    size_t lens[] = {4,
                     strlen(SK_HOT_REVOCATIONS_KEY),
                     6,
                     1,
                     strlen(REVOCATIONS_MAXLEN),
                     1,
                     1,
                     strlen(op->jti),
                     1,
                     (size_t)expires_len};
    sk_redis_async_command_replicated(job->op->_thread->redis, NULL, 0, 10, argv, lens,
                                      on_revocation_published, job->op);
}

static void redis_revoke(sk_store_thread_t *thread, sk_store_revoke_t *op)
{
    /* Refused here at once; SQL makes it survive restarts, the stream tells the others. */
    if (sk_revocations_add(thread->store->revoked, op->jti, strlen(op->jti), op->expires_at) != 0) {
        complete(&op->op, SK_STORE_UNAVAILABLE);
        return;
    }
    sk__sql_jobs_submit(thread, &op->op, SK__SQL_REVOKE, on_revocation_recorded);
}

/* ---- the rate limit shared by every instance ---- */

static void on_rate_reply(void *data, redisReply *reply)
{
    sk_store_rate_take_t *op = data;
    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        atomic_fetch_add_explicit(&op->op._thread->store->health.redis_errors, 1,
                                  memory_order_relaxed);
        complete(&op->op, SK_STORE_UNAVAILABLE);
        return;
    }
    op->retry_after_usec = reply->integer;
    complete(&op->op, reply->integer == 0 ? SK_STORE_OK : SK_STORE_LIMITED);
}

static void redis_rate_take(sk_store_thread_t *thread, sk_store_rate_take_t *op)
{
    op->op._thread = thread;
    char key[16 + SK_STORE_MAX_NAME];
    if (op->user.len > SK_STORE_MAX_NAME) {
        complete(&op->op, SK_STORE_OK);
        return;
    }
    int key_len = snprintf(key, sizeof(key), "sk:rl:{%.*s}", (int)op->user.len, op->user.base);
    double interval = 1e6 / op->rate;
    char args[2][32];
    int interval_len = snprintf(args[0], sizeof(args[0]), "%.0f", interval < 1 ? 1 : interval);
    int tolerance_len =
        snprintf(args[1], sizeof(args[1]), "%.0f", interval * (double)(op->burst - 1));
    const char *keys[] = {key};
    size_t key_lens[] = {(size_t)key_len};
    const char *argv[] = {args[0], args[1]};
    size_t arg_lens[] = {(size_t)interval_len, (size_t)tolerance_len};
    sk_redis_async_eval(thread->redis, &thread->store->hot.rate, 1, keys, key_lens, 2, argv,
                        arg_lens, on_rate_reply, op);
}

static int redis_is_revoked(sk_store_t *super, const char *jti)
{
    sk__redis_store_t *store = (sk__redis_store_t *)super;
    return sk_revocations_contains(store->revoked, jti, strlen(jti));
}

static uint64_t redis_revocation_epoch(sk_store_t *super)
{
    sk__redis_store_t *store = (sk__redis_store_t *)super;
    return sk_revocations_epoch(store->revoked);
}

static const char *redis_deployment_id(sk_store_t *super)
{
    sk__redis_store_t *store = (sk__redis_store_t *)super;
    return atomic_load_explicit(&store->deployment_known, memory_order_acquire)
               ? store->deployment_id
               : NULL;
}

/* ---- threads, readiness, lifecycle ---- */

static sk_store_thread_t *redis_thread_create(sk_store_t *super, h2o_loop_t *loop,
                                              h2o_multithread_queue_t *queue)
{
    sk__redis_store_t *store = (sk__redis_store_t *)super;
    sk_store_thread_t *thread = calloc(1, sizeof(*thread));
    if (thread == NULL)
        return NULL;
    thread->store = store;
    thread->loop = loop;
    /* Before the Redis client: zero timeouts run in the order they were made, so the
     * batches of a turn are queued before the client writes what the turn queued. */
    h2o_timeout_init(loop, &thread->flush_grabs, 0);
    thread->flush_grabs_entry.cb = on_flush_grabs;
    thread->redis = sk_redis_async_create(loop, &store->redis_config, &store->redis_options);
    if (thread->redis == NULL) {
        h2o_timeout_dispose(loop, &thread->flush_grabs);
        free(thread);
        return NULL;
    }
    sk__sql_jobs_thread_init(thread, queue);
    h2o_timeout_init(loop, &thread->logout_poll, LOGOUT_POLL_MS);
    h2o_timeout_init(loop, &thread->undo_retry, UNDO_RETRY_MS);
    return thread;
}

static void redis_thread_destroy(sk_store_thread_t *thread)
{
    /* Every operation has completed: no grab is pending. */
    if (h2o_timeout_is_linked(&thread->flush_grabs_entry))
        h2o_timeout_unlink(&thread->flush_grabs_entry);
    sk_redis_async_destroy(thread->redis);
    h2o_timeout_dispose(thread->loop, &thread->logout_poll);
    h2o_timeout_dispose(thread->loop, &thread->undo_retry);
    h2o_timeout_dispose(thread->loop, &thread->flush_grabs);
    sk__sql_jobs_thread_dispose(thread);
    free(thread);
}

static int redis_is_ready(sk_store_t *super)
{
    sk__redis_store_t *store = (sk__redis_store_t *)super;
    return atomic_load(&store->health.redis_ok) && atomic_load(&store->health.sql_ok) &&
           atomic_load(&store->health.hot_state_ok);
}

static void redis_stats(sk_store_t *super, sk_store_stats_t *out)
{
    sk__redis_store_t *store = (sk__redis_store_t *)super;
    memset(out, 0, sizeof(*out));
    sk_store_counters_read(&store->counters, out);
    out->redis_errors = atomic_load_explicit(&store->health.redis_errors, memory_order_relaxed);
    out->sql_errors = atomic_load_explicit(&store->health.sql_errors, memory_order_relaxed);
}

static int redis_drain(sk_store_t *super)
{
    sk__redis_store_t *store = (sk__redis_store_t *)super;
    /* Every request is answered: the listener may stop, while the persister copies. */
    atomic_store(&store->listener_stopping, 1);
    /* Every 201 is durable in Redis already; copy what can be copied to SQL now. */
    if (store->persister != NULL) {
        sk_persister_stop(store->persister);
        store->persister = NULL;
    }
    sk__sql_jobs_stop(store);
    return 0;
}

static void free_user(void *value)
{
    cached_user_t *user = value;
    free(user->password_hash);
    free(user);
}

static void redis_destroy(sk_store_t *super)
{
    sk__redis_store_t *store = (sk__redis_store_t *)super;
    redis_drain(super);
    sk__revocation_listener_stop(store);
    if (store->users != NULL) {
        sk_index_foreach(store->users, free_user);
        sk_index_destroy(store->users);
    }
    if (store->sold_out != NULL) {
        sk_index_foreach(store->sold_out, free);
        sk_index_destroy(store->sold_out);
    }
    sk_revocations_destroy(store->revoked);
    sk__sale_figures_dispose(store);
    sk_redis_sentinel_stop(store->sentinel);
    free(store);
}

static const sk_store_vtable_t redis_vtable = {
    .thread_create = redis_thread_create,
    .thread_destroy = redis_thread_destroy,
    .user_register = redis_user_register,
    .user_find = redis_user_find,
    .coupon_create = redis_coupon_create,
    .coupon_list = redis_coupon_list,
    .coupon_catalog = redis_coupon_catalog,
    .sale_publish = sk__sale_publish,
    .sale_read = sk__sale_read,
    .grab = redis_grab,
    .revoke = redis_revoke,
    .rate_take = redis_rate_take,
    .is_revoked = redis_is_revoked,
    .revocation_epoch = redis_revocation_epoch,
    .deployment_id = redis_deployment_id,
    .is_ready = redis_is_ready,
    .stats = redis_stats,
    .drain = redis_drain,
    .destroy = redis_destroy,
};

sk_store_t *sk_store_redis_create(const sk_store_redis_options_t *options)
{
    const char *redis_url = options->redis_url, *mysql_url = options->mysql_url;
    unsigned startup_wait_ms = options->startup_wait_ms;
    sk__redis_store_t *store = calloc(1, sizeof(*store));
    if (store == NULL)
        return NULL;
    store->super.vtable = &redis_vtable;
    atomic_store(&store->health.redis_cluster, 1);
    char error[256];
    if (sk_redis_config_parse(redis_url, &store->redis_config, error, sizeof(error)) != 0) {
        sk_log(SK_LOG_ERROR, "store", "--redis: %s", error);
        goto fail;
    }
    if (sk_mysql_config_parse(mysql_url, &store->mysql_config, error, sizeof(error)) != 0) {
        sk_log(SK_LOG_ERROR, "store", "--mysql: %s", error);
        goto fail;
    }
    store->redis_options = (sk_redis_async_options_t){
        .connections_per_node = options->wait_replicas > 0 ? REDIS_CONNECTIONS_PER_NODE_WAITING
                                                           : REDIS_CONNECTIONS_PER_NODE,
        /* A WAIT may take its whole timeout: the connection is not dead meanwhile. */
        .timeout_ms =
            REDIS_TIMEOUT_MS + (options->wait_replicas > 0 ? options->wait_timeout_ms : 0),
        .wait_replicas = options->wait_replicas,
        .wait_timeout_ms = options->wait_timeout_ms,
    };
    if (store->redis_config.sentinel) {
        store->sentinel = sk_redis_sentinel_start(&store->redis_config);
        if (store->sentinel == NULL)
            goto fail;
        store->redis_options.sentinel = store->sentinel;
    }
    sk_hot_state_init(&store->hot);
    sk__sale_figures_init(store);
    char host[64] = "host";
    gethostname(host, sizeof(host) - 1);
    unsigned random_part;
    FILE *urandom = fopen("/dev/urandom", "r");
    if (urandom == NULL || fread(&random_part, sizeof(random_part), 1, urandom) != 1)
        random_part = (unsigned)time(NULL);
    if (urandom != NULL)
        fclose(urandom);
    snprintf(store->consumer, sizeof(store->consumer), "%s-%ld-%08x", host, (long)getpid(),
             random_part);
    store->users = sk_index_create();
    store->sold_out = sk_index_create();
    store->revoked = sk_revocations_create();
    if (store->users == NULL || store->sold_out == NULL || store->revoked == NULL)
        goto fail;

    if (sk__sql_jobs_start(store) != 0 || sk__revocation_listener_start(store) != 0)
        goto fail;
    sk_persister_config_t persister_config = {
        .hot = &store->hot,
        .redis = &store->redis_config,
        .mysql = &store->mysql_config,
        .consumer = store->consumer,
        .claim_idle_ms = CLAIM_IDLE_MS,
        .wait_replicas = options->wait_replicas,
        .health = &store->health,
        .counters = &store->counters,
    };
    store->persister = sk_persister_start(&persister_config);
    if (store->persister == NULL)
        goto fail;

    /* Serve once the hot state exists and every revocation is known, unless the backends
     * stay away: then serve 503s until they come (the process must not die for that). */
    for (unsigned waited = 0; waited < startup_wait_ms; waited += 20) {
        if (redis_is_ready(&store->super) && atomic_load(&store->revocations_loaded))
            break;
        if (sk_signals_sleep_ms(20))
            return &store->super; /* a stop during start-up: the caller drains at once */
    }
    if (!redis_is_ready(&store->super) || !atomic_load(&store->revocations_loaded))
        sk_log(SK_LOG_WARN, "store",
               "not ready yet (Redis %s, SQL %s, hot state %s, revocations %s): serving 503 "
               "until it is",
               atomic_load(&store->health.redis_ok) ? "up" : "down",
               atomic_load(&store->health.sql_ok) ? "up" : "down",
               atomic_load(&store->health.hot_state_ok) ? "loaded" : "missing",
               atomic_load(&store->revocations_loaded) ? "loaded" : "missing");
    sk_log(SK_LOG_INFO, "store", "distributed deployment, instance %s", store->consumer);
    return &store->super;
fail:
    redis_destroy(&store->super);
    return NULL;
}
