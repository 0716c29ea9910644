/*
 * The in-memory store of the embedded deployment (see store_local.h).
 *
 * Users and coupons live in lock-free-read indexes and are never freed while the store
 * lives: results can point at them, and a reader never meets freed memory. A change is
 * made in memory first, under the lock of the one user or coupon it touches, then appended
 * to the worker thread's own grant log (grant_log.h); at the end of the loop turn the
 * turn's records are written with one write(2), and only then do their operations complete
 * (or are undone in memory, if the write failed). So the hot path, a grab, holds one
 * coupon lock for a few dozen instructions and hands nothing to another thread; SQLite is
 * a copy the applier (log_applier.h) keeps behind the logs.
 *
 * What a failed write may undo is never the ground for an answer: a grant is pending
 * until its record is written (the end of its worker's turn), and a grab that would be
 * answered `already-held` by a pending grant of its pair, or `sold-out` by a coupon that
 * pending grants emptied, waits on the coupon for their outcome and then runs again on its
 * own worker (see grab_or_wait).
 */
#include "store/local/store_local.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "util/index.h"
#include "store/local/grant_log.h"
#include "store/local/journal.h"
#include "store/local/log_applier.h"
#include "store/revocations.h"
#include "store/store_internal.h"
#include "util/error.h"
#include "util/log.h"
#include "util/signals.h"

typedef enum entry_state { ENTRY_PENDING = 0, ENTRY_LIVE, ENTRY_DEAD } entry_state_t;

typedef struct local_coupon local_coupon_t;

/* A growable array of coupons: a seller's published ones or a customer's held ones. Each
 * item is a coupon's address; a customer's holding whose grant is not committed yet also
 * has HOLDING_PENDING set (coupons are allocated with malloc, so bit 0 is free). */
typedef struct coupon_array {
    uintptr_t *items;
    size_t count, capacity;
} coupon_array_t;

#define HOLDING_PENDING ((uintptr_t)1)

typedef struct local_user {
    int64_t id;
    sk_user_kind_t kind;
    _Atomic int state;
    char *password_hash;
    h2o_iovec_t name; /* points at name_bytes */
    pthread_mutex_t lock;
    coupon_array_t coupons;      /* guarded by lock */
    struct local_user *all_next; /* every user ever made, dead ones too, for teardown */
    char name_bytes[SK_STORE_MAX_NAME + 1];
} local_user_t;

struct local_coupon {
    int64_t id, amount, stock, start_at, end_at;
    int64_t loaded_remaining; /* the database's `remaining`, checked once after the load */
    _Atomic int state;
    local_user_t *seller;
    h2o_iovec_t name, description;
    _Atomic int64_t left;
    /* Set once `left` is 0 with no grant pending: then no failed commit can give a unit
     * back, and a grab may answer sold-out without the lock. */
    _Atomic int sold_out;
    pthread_mutex_t lock;
    int64_t pending;        /* grants taken and not committed yet, guarded by lock */
    h2o_linklist_t waiters; /* grabs waiting for a pending grant's outcome, guarded by lock */
    /* Who holds one: an open-addressing set of user pointers, guarded by lock. */
    local_user_t **holders;
    size_t holder_count, holder_capacity;
    local_coupon_t *all_next; /* every coupon, for the check after the load */
};

typedef struct local_store {
    sk_store_t super;
    sk_index_t *users, *coupons;
    sk_revocations_t *revoked;
    sk_journal_t *journal;
    sk_log_applier_t *applier; /* owns the journal's connection once started */
    _Atomic int drained;       /* sk_store_drain ran: every change is refused */
    char log_dir[PATH_MAX];
    _Atomic int64_t next_user_id, next_coupon_id, next_grant_id;
    char deployment_id[SK_STORE_DEPLOYMENT_ID_LEN + 1];
    /* The periodic prune of revocations: every worker's timer fires, the one that moves
     * prune_due_ms runs it; one SQL delete at a time goes through the applier. */
    unsigned prune_interval_ms;
    _Atomic int64_t prune_due_ms;
    _Atomic int prune_in_flight;
    sk_journal_entry_t prune_entry;
    pthread_mutex_t all_lock;
    local_coupon_t *all_coupons; /* guarded by all_lock */
    coupon_array_t catalog;      /* every coupon in creation order, guarded by all_lock */
    local_user_t *all_users;     /* guarded by all_lock */
    size_t loaded_rows;          /* the load at start, on the opening thread only */
    _Atomic uint64_t grabs_waiting;
    /* On the journal thread: the coupon whose last `settled` grants committed, settled
     * together (one lock of the coupon for a run of its grants in a batch). */
    local_coupon_t *settling;
    int64_t settled;
} local_store_t;

/* Millions of rows take seconds to load (more under a sanitizer): a stop asked for
 * meanwhile ends the load within a thousand rows. */
static int load_interrupted(local_store_t *store)
{
    return (++store->loaded_rows & 1023) == 0 && sk_signals_stop_requested();
}

/*
 * A worker thread's side of the store: its grant log, and the changes of the current loop
 * turn, whose records wait in the log's buffer. A zero-length h2o timeout ends the turn:
 * h2o runs timeouts after the turn's I/O callbacks (and runs a zero timeout linked during
 * the turn in that same turn), so the records of every request read in one epoll round go
 * out in one write.
 */
struct sk_store_thread {
    local_store_t *store;
    sk_grant_log_writer_t *log;
    sk_journal_entry_t *turn, **turn_tail; /* this turn's changes, in order */
    /* The coupon whose last `settled` grants of this turn were written: settled together
     * after the turn (one lock of the coupon for a run of its grants). */
    local_coupon_t *settling;
    int64_t settled;
    /* Grabs of this worker parked on a coupon and woken by a settled grant, from any
     * worker: `wake` brings them back here to run again. */
    h2o_multithread_receiver_t receiver;
    h2o_multithread_message_t wake;
    pthread_mutex_t retries_lock;
    h2o_linklist_t retries; /* guarded by retries_lock, of sk_store_op_t._message.link */
    int wake_sent;          /* guarded by retries_lock */
    h2o_loop_t *loop;
    h2o_timeout_t turn_timeout;
    h2o_timeout_entry_t turn_timer;
    h2o_timeout_t prune_timeout;
    h2o_timeout_entry_t prune_timer;
};

static int64_t unix_now(void)
{
    return (int64_t)time(NULL);
}

static int keep_unless_dead_user(void *existing)
{
    return atomic_load(&((local_user_t *)existing)->state) != ENTRY_DEAD;
}

static int keep_unless_dead_coupon(void *existing)
{
    return atomic_load(&((local_coupon_t *)existing)->state) != ENTRY_DEAD;
}

static local_user_t *find_live_user(local_store_t *store, h2o_iovec_t name)
{
    local_user_t *user = sk_index_find(store->users, name.base, name.len);
    return user != NULL && atomic_load_explicit(&user->state, memory_order_acquire) == ENTRY_LIVE
               ? user
               : NULL;
}

/* Coupons are indexed by "seller NUL name": NUL cannot occur in either (API.md). */
static size_t coupon_key(char *key, h2o_iovec_t seller, h2o_iovec_t name)
{
    memcpy(key, seller.base, seller.len);
    key[seller.len] = '\0';
    memcpy(key + seller.len + 1, name.base, name.len);
    return seller.len + 1 + name.len;
}

static local_coupon_t *find_coupon(local_store_t *store, h2o_iovec_t seller, h2o_iovec_t name)
{
    char key[2 * SK_STORE_MAX_NAME + 1];
    if (seller.len > SK_STORE_MAX_NAME || name.len > SK_STORE_MAX_NAME)
        return NULL;
    return sk_index_find(store->coupons, key, coupon_key(key, seller, name));
}

static local_coupon_t *array_coupon(const coupon_array_t *array, size_t i)
{
    return (local_coupon_t *)(array->items[i] & ~HOLDING_PENDING);
}

static int array_push(coupon_array_t *array, uintptr_t item)
{
    if (array->count == array->capacity) {
        size_t capacity = array->capacity ? array->capacity * 2 : 8;
        uintptr_t *grown = realloc(array->items, capacity * sizeof(*grown));
        if (grown == NULL)
            return SK_ENOMEM;
        array->items = grown;
        array->capacity = capacity;
    }
    array->items[array->count++] = item;
    return 0;
}

/* The index of the last item for `coupon`, pending or not, or SIZE_MAX. Searched from the
 * end: the grant being settled or asked about is usually the customer's latest. */
static size_t array_find_last(const coupon_array_t *array, local_coupon_t *coupon)
{
    for (size_t i = array->count; i-- > 0;) {
        if (array_coupon(array, i) == coupon)
            return i;
    }
    return SIZE_MAX;
}

static void array_remove(coupon_array_t *array, size_t i)
{
    memmove(array->items + i, array->items + i + 1,
            (array->count - i - 1) * sizeof(array->items[0]));
    --array->count;
}

/* ---- the holder set of a coupon (linear probing, backward-shift deletion) ---- */

static size_t holder_slot(local_user_t *user, size_t mask)
{
    uint64_t h = (uint64_t)(uintptr_t)user;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 32;
    return (size_t)h & mask;
}

static int holders_contain(local_coupon_t *coupon, local_user_t *user)
{
    if (coupon->holder_capacity == 0)
        return 0;
    size_t mask = coupon->holder_capacity - 1;
    for (size_t slot = holder_slot(user, mask); coupon->holders[slot] != NULL;
         slot = (slot + 1) & mask) {
        if (coupon->holders[slot] == user)
            return 1;
    }
    return 0;
}

static void holders_put(local_user_t **holders, size_t capacity, local_user_t *user)
{
    size_t mask = capacity - 1;
    size_t slot = holder_slot(user, mask);
    while (holders[slot] != NULL)
        slot = (slot + 1) & mask;
    holders[slot] = user;
}

static int holders_add(local_coupon_t *coupon, local_user_t *user)
{
    if ((coupon->holder_count + 1) * 2 > coupon->holder_capacity) {
        size_t capacity = coupon->holder_capacity ? coupon->holder_capacity * 2 : 16;
        local_user_t **grown = calloc(capacity, sizeof(*grown));
        if (grown == NULL)
            return SK_ENOMEM;
        for (size_t i = 0; i != coupon->holder_capacity; ++i) {
            if (coupon->holders[i] != NULL)
                holders_put(grown, capacity, coupon->holders[i]);
        }
        free(coupon->holders);
        coupon->holders = grown;
        coupon->holder_capacity = capacity;
    }
    holders_put(coupon->holders, coupon->holder_capacity, user);
    ++coupon->holder_count;
    return 0;
}

static void holders_remove(local_coupon_t *coupon, local_user_t *user)
{
    size_t mask = coupon->holder_capacity - 1;
    size_t slot = holder_slot(user, mask);
    while (coupon->holders[slot] != user) {
        assert(coupon->holders[slot] != NULL && "removing a holder that is not there");
        slot = (slot + 1) & mask;
    }
    /* Shift back the entries of the probe run so that no lookup stops at the hole. */
    size_t hole = slot;
    for (size_t next = (hole + 1) & mask; coupon->holders[next] != NULL; next = (next + 1) & mask) {
        size_t home = holder_slot(coupon->holders[next], mask);
        if (((next - home) & mask) >= ((next - hole) & mask)) {
            coupon->holders[hole] = coupon->holders[next];
            hole = next;
        }
    }
    coupon->holders[hole] = NULL;
    --coupon->holder_count;
}

/* ---- completion: at the end of the worker's loop turn ---- */

/* On the worker, once the turn's log write returned (or failed): the answer may go out. */
static void post_completion(sk_store_op_t *op)
{
    op->on_done(op);
}

/* Any thread: hands every grab of `woken` (unlinked from its coupon's waiters) back to its
 * worker, which runs it again in on_wake(). One message is in flight per worker at most. */
static void requeue_waiters(local_store_t *store, h2o_linklist_t *woken)
{
    while (!h2o_linklist_is_empty(woken)) {
        sk_store_op_t *op = H2O_STRUCT_FROM_MEMBER(sk_store_op_t, _message.link, woken->next);
        sk_store_thread_t *thread = op->_thread;
        h2o_linklist_unlink(&op->_message.link);
        atomic_fetch_sub_explicit(&store->grabs_waiting, 1, memory_order_relaxed);
        pthread_mutex_lock(&thread->retries_lock);
        h2o_linklist_insert(&thread->retries, &op->_message.link);
        /* The send stays under the lock: h2o writes to the queue's pipe after it let go of
         * the queue's own mutex, and the worker may see the message before that write (its
         * loop drains every receiver of the queue on any wake-up), finish the grab and
         * close the pipe. on_wake() takes this lock first, so the write comes before. */
        if (!thread->wake_sent) {
            thread->wake_sent = 1;
            h2o_multithread_send_message(&thread->receiver, &thread->wake);
        }
        pthread_mutex_unlock(&thread->retries_lock);
    }
}

static void settle_written(sk_store_thread_t *thread);

/* Writes the turn's records with one write(2) and completes their operations, in order;
 * then the coupons' pending counts follow, and the grabs they parked run again. */
static void end_turn(sk_store_thread_t *thread)
{
    sk_journal_entry_t *entry = thread->turn;
    thread->turn = NULL;
    thread->turn_tail = &thread->turn;
    int status = sk_grant_log_writer_flush(thread->log, (int64_t)h2o_now(thread->loop));
    for (sk_journal_entry_t *next; entry != NULL; entry = next) {
        next = entry->next; /* on_committed may free or reuse the entry */
        entry->status = status == 0 ? 0 : SK_EIO;
        entry->on_committed(entry);
    }
    settle_written(thread);
}

static void on_turn_end(h2o_timeout_entry_t *timer)
{
    end_turn(H2O_STRUCT_FROM_MEMBER(sk_store_thread_t, turn_timer, timer));
}

static void local_grab(sk_store_thread_t *thread, sk_store_grab_t *op);

/* On the worker: grabs woken by a settled grant run again. */
static void on_wake(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    sk_store_thread_t *thread = H2O_STRUCT_FROM_MEMBER(sk_store_thread_t, receiver, receiver);
    h2o_linklist_t retries;
    h2o_linklist_init_anchor(&retries);
    while (!h2o_linklist_is_empty(messages))
        h2o_linklist_unlink(messages->next);
    pthread_mutex_lock(&thread->retries_lock);
    h2o_linklist_insert_list(&retries, &thread->retries);
    thread->wake_sent = 0;
    pthread_mutex_unlock(&thread->retries_lock);
    while (!h2o_linklist_is_empty(&retries)) {
        sk_store_op_t *op = H2O_STRUCT_FROM_MEMBER(sk_store_op_t, _message.link, retries.next);
        h2o_linklist_unlink(&op->_message.link);
        local_grab(thread, (sk_store_grab_t *)op);
    }
}

static void complete_now(sk_store_op_t *op, sk_store_result_t result)
{
    op->result = result;
    op->on_done(op);
}

static sk_journal_entry_t *new_entry(sk_store_op_t *op, sk_journal_kind_t kind,
                                     void (*on_committed)(sk_journal_entry_t *))
{
    sk_journal_entry_t *entry = h2o_mem_alloc_pool(op->pool, sizeof(*entry));
    memset(entry, 0, sizeof(*entry));
    entry->kind = kind;
    entry->on_committed = on_committed;
    entry->data = op;
    return entry;
}

/* ---- users ---- */

static local_user_t *user_create(int64_t id, h2o_iovec_t name, sk_user_kind_t kind,
                                 const char *password_hash, entry_state_t state)
{
    local_user_t *user = calloc(1, sizeof(*user));
    if (user == NULL)
        return NULL;
    user->password_hash = strdup(password_hash);
    if (user->password_hash == NULL) {
        free(user);
        return NULL;
    }
    user->id = id;
    user->kind = kind;
    atomic_init(&user->state, state);
    memcpy(user->name_bytes, name.base, name.len);
    user->name = h2o_iovec_init(user->name_bytes, name.len);
    pthread_mutex_init(&user->lock, NULL);
    return user;
}

static void remember_user(local_store_t *store, local_user_t *user)
{
    pthread_mutex_lock(&store->all_lock);
    user->all_next = store->all_users;
    store->all_users = user;
    pthread_mutex_unlock(&store->all_lock);
}

/* Appends `entry` to the thread's log for the end of this turn, when its on_committed runs;
 * SK_EUNAVAILABLE once the store was drained. Its strings are copied now. */
static int submit(sk_store_thread_t *thread, sk_journal_entry_t *entry)
{
    if (atomic_load_explicit(&thread->store->drained, memory_order_relaxed))
        return SK_EUNAVAILABLE;
    int status = sk_grant_log_writer_append(thread->log, entry);
    if (status != 0)
        return status;
    entry->next = NULL;
    *thread->turn_tail = entry;
    thread->turn_tail = &entry->next;
    if (!h2o_timeout_is_linked(&thread->turn_timer))
        h2o_timeout_link(thread->loop, &thread->turn_timeout, &thread->turn_timer);
    return 0;
}

/* A user or coupon goes live once its record is written, and dies when it could not be. */
static void on_creation_committed(sk_journal_entry_t *entry)
{
    sk_store_op_t *op = entry->data;
    _Atomic int *state = op->_store_data;
    atomic_store_explicit(state, entry->status == 0 ? ENTRY_LIVE : ENTRY_DEAD,
                          memory_order_release);
    op->result = entry->status == 0 ? SK_STORE_OK : SK_STORE_UNAVAILABLE;
    post_completion(op);
}

static void local_user_register(sk_store_thread_t *thread, sk_store_user_register_t *op)
{
    local_store_t *store = thread->store;
    op->op._thread = thread;
    assert(op->username.len <= SK_STORE_MAX_NAME);

    int64_t id = atomic_fetch_add(&store->next_user_id, 1);
    local_user_t *user = user_create(id, op->username, op->kind, op->password_hash, ENTRY_PENDING);
    if (user == NULL) {
        complete_now(&op->op, SK_STORE_UNAVAILABLE);
        return;
    }
    local_user_t *stored = sk_index_insert(store->users, op->username.base, op->username.len, user,
                                           keep_unless_dead_user);
    if (stored != user) {
        free(user->password_hash);
        free(user);
        complete_now(&op->op, stored == NULL ? SK_STORE_UNAVAILABLE : SK_STORE_DUPLICATE);
        return;
    }
    /* The index may have dropped a dead user for this one: the list keeps every user. */
    remember_user(store, user);
    op->op._store_data = &user->state;
    sk_journal_entry_t *entry = new_entry(&op->op, SK_JOURNAL_USER, on_creation_committed);
    entry->u.user.id = id;
    entry->u.user.created_at = unix_now();
    entry->u.user.username = user->name;
    entry->u.user.kind = op->kind;
    entry->u.user.password_hash = user->password_hash;
    if (submit(thread, entry) != 0) {
        atomic_store(&user->state, ENTRY_DEAD);
        complete_now(&op->op, SK_STORE_UNAVAILABLE);
    }
}

static void local_user_find(sk_store_thread_t *thread, sk_store_user_find_t *op)
{
    local_user_t *user = find_live_user(thread->store, op->username);
    if (user == NULL) {
        complete_now(&op->op, SK_STORE_NOT_FOUND);
        return;
    }
    op->id = user->id;
    op->kind = user->kind;
    op->password_hash = user->password_hash;
    complete_now(&op->op, SK_STORE_OK);
}

/* ---- coupons ---- */

static local_coupon_t *coupon_create(local_user_t *seller, int64_t id, h2o_iovec_t name,
                                     h2o_iovec_t description, int64_t amount, int64_t left,
                                     int64_t stock, int64_t start_at, int64_t end_at,
                                     entry_state_t state)
{
    local_coupon_t *coupon = calloc(1, sizeof(*coupon) + name.len + description.len);
    if (coupon == NULL)
        return NULL;
    char *bytes = (char *)(coupon + 1);
    memcpy(bytes, name.base, name.len);
    memcpy(bytes + name.len, description.base, description.len);
    coupon->name = h2o_iovec_init(bytes, name.len);
    coupon->description = h2o_iovec_init(bytes + name.len, description.len);
    coupon->id = id;
    coupon->seller = seller;
    coupon->amount = amount;
    coupon->stock = stock;
    coupon->start_at = start_at;
    coupon->end_at = end_at;
    atomic_init(&coupon->left, left);
    atomic_init(&coupon->sold_out, left == 0);
    atomic_init(&coupon->state, state);
    pthread_mutex_init(&coupon->lock, NULL);
    h2o_linklist_init_anchor(&coupon->waiters);
    return coupon;
}

/* Returns 0, or SK_ENOMEM when the catalog could not grow (the coupon is on the list of
 * every coupon all the same, so that it is freed). */
static int remember_coupon(local_store_t *store, local_coupon_t *coupon)
{
    pthread_mutex_lock(&store->all_lock);
    coupon->all_next = store->all_coupons;
    store->all_coupons = coupon;
    int pushed = array_push(&store->catalog, (uintptr_t)coupon);
    pthread_mutex_unlock(&store->all_lock);
    return pushed;
}

static void local_coupon_create(sk_store_thread_t *thread, sk_store_coupon_create_t *op)
{
    local_store_t *store = thread->store;
    op->op._thread = thread;
    local_user_t *seller = find_live_user(store, op->seller);
    if (seller == NULL || seller->kind != SK_USER_SELLER || seller->id != op->seller_id) {
        complete_now(&op->op, SK_STORE_NOT_FOUND);
        return;
    }
    assert(op->name.len <= SK_STORE_MAX_NAME);
    int64_t id = atomic_fetch_add(&store->next_coupon_id, 1);
    local_coupon_t *coupon =
        coupon_create(seller, id, op->name, op->description, op->amount, op->amount, op->stock,
                      op->start_at, op->end_at, ENTRY_PENDING);
    if (coupon == NULL) {
        complete_now(&op->op, SK_STORE_UNAVAILABLE);
        return;
    }
    char key[2 * SK_STORE_MAX_NAME + 1];
    size_t key_len = coupon_key(key, seller->name, op->name);
    local_coupon_t *stored =
        sk_index_insert(store->coupons, key, key_len, coupon, keep_unless_dead_coupon);
    if (stored != coupon) {
        free(coupon);
        complete_now(&op->op, stored == NULL ? SK_STORE_UNAVAILABLE : SK_STORE_DUPLICATE);
        return;
    }
    int pushed = remember_coupon(store, coupon);
    pthread_mutex_lock(&seller->lock);
    if (pushed == 0)
        pushed = array_push(&seller->coupons, (uintptr_t)coupon);
    pthread_mutex_unlock(&seller->lock);

    op->op._store_data = &coupon->state;
    sk_journal_entry_t *entry = new_entry(&op->op, SK_JOURNAL_COUPON, on_creation_committed);
    entry->u.coupon.id = id;
    entry->u.coupon.amount = op->amount;
    entry->u.coupon.stock = op->stock;
    entry->u.coupon.start_at = op->start_at;
    entry->u.coupon.end_at = op->end_at;
    entry->u.coupon.created_at = unix_now();
    entry->u.coupon.seller = seller->name;
    entry->u.coupon.name = coupon->name;
    entry->u.coupon.description = coupon->description;
    if (pushed != 0 || submit(thread, entry) != 0) {
        atomic_store(&coupon->state, ENTRY_DEAD);
        complete_now(&op->op, SK_STORE_UNAVAILABLE);
    }
}

static void fill_item(sk_store_coupon_item_t *item, local_coupon_t *coupon)
{
    item->name = coupon->name;
    item->description = coupon->description;
    item->seller = coupon->seller->name;
    item->stock = coupon->stock;
    item->amount = coupon->amount;
    item->left = atomic_load_explicit(&coupon->left, memory_order_relaxed);
    item->start_at = coupon->start_at;
    item->end_at = coupon->end_at;
}

static void local_coupon_list(sk_store_thread_t *thread, sk_store_coupon_list_t *op)
{
    local_user_t *user = find_live_user(thread->store, op->username);
    if (user == NULL) {
        complete_now(&op->op, SK_STORE_NOT_FOUND);
        return;
    }
    op->user_id = user->id;
    op->kind = user->kind;
    op->count = 0;
    op->items = NULL;
    int64_t page = op->page < 1 ? 1 : op->page;

    pthread_mutex_lock(&user->lock);
    size_t total = user->coupons.count;
    /* Pending and undone creations are not shown, nor holdings whose grant is pending: what
     * a failed commit would take back was never acknowledged. */
    if ((uint64_t)(page - 1) < (total + SK_STORE_PAGE_SIZE - 1) / SK_STORE_PAGE_SIZE + 1) {
        size_t skip = (size_t)(page - 1) * SK_STORE_PAGE_SIZE;
        op->items = h2o_mem_alloc_pool(op->op.pool, SK_STORE_PAGE_SIZE * sizeof(op->items[0]));
        for (size_t i = 0; i != total && op->count != SK_STORE_PAGE_SIZE; ++i) {
            local_coupon_t *coupon = array_coupon(&user->coupons, i);
            if (user->kind == SK_USER_SELLER &&
                atomic_load_explicit(&coupon->state, memory_order_acquire) != ENTRY_LIVE)
                continue;
            if ((user->coupons.items[i] & HOLDING_PENDING) != 0)
                continue;
            if (skip != 0) {
                --skip;
                continue;
            }
            fill_item(&op->items[op->count++], coupon);
        }
    }
    pthread_mutex_unlock(&user->lock);
    complete_now(&op->op, SK_STORE_OK);
}

/* The page of `op` from `coupons` (under the lock that guards it): live coupons only, as
 * in the seller's list. */
static void catalog_page(sk_store_coupon_catalog_t *op, const coupon_array_t *coupons)
{
    int64_t page = op->page < 1 ? 1 : op->page;
    uint64_t skip = (uint64_t)(page - 1) * SK_STORE_CATALOG_PAGE_SIZE;
    if ((uint64_t)page > (uint64_t)INT64_MAX / SK_STORE_CATALOG_PAGE_SIZE)
        skip = UINT64_MAX;
    op->items = h2o_mem_alloc_pool(op->op.pool, SK_STORE_CATALOG_PAGE_SIZE * sizeof(op->items[0]));
    for (size_t i = 0; i != coupons->count; ++i) {
        local_coupon_t *coupon = array_coupon(coupons, i);
        if (atomic_load_explicit(&coupon->state, memory_order_acquire) != ENTRY_LIVE)
            continue;
        if ((uint64_t)op->total++ < skip || op->count == SK_STORE_CATALOG_PAGE_SIZE)
            continue;
        fill_item(&op->items[op->count++], coupon);
    }
}

/* Off the grab path: the catalog's lock is taken by creations and this alone, and a
 * seller's by its creations and lists. */
static void local_coupon_catalog(sk_store_thread_t *thread, sk_store_coupon_catalog_t *op)
{
    local_store_t *store = thread->store;
    op->items = NULL;
    op->count = 0;
    op->total = 0;
    if (op->seller.len == 0) {
        pthread_mutex_lock(&store->all_lock);
        catalog_page(op, &store->catalog);
        pthread_mutex_unlock(&store->all_lock);
    } else {
        local_user_t *seller = find_live_user(store, op->seller);
        if (seller != NULL && seller->kind == SK_USER_SELLER) {
            pthread_mutex_lock(&seller->lock);
            catalog_page(op, &seller->coupons);
            pthread_mutex_unlock(&seller->lock);
        }
    }
    complete_now(&op->op, SK_STORE_OK);
}

/* ---- the grab ---- */

typedef struct grab_state {
    local_coupon_t *coupon;
    local_user_t *customer;
} grab_state_t;

/*
 * Under coupon->lock, after a pending grant was settled (`pending` fell, and `left` rose
 * if it failed): a coupon with nothing left and nothing pending is sold out for good, and
 * every waiting grab moves to `woken`, to run again (requeue_waiters) after the unlock.
 */
static void settled_locked(local_coupon_t *coupon, h2o_linklist_t *woken)
{
    if (coupon->pending == 0 && atomic_load_explicit(&coupon->left, memory_order_relaxed) == 0)
        atomic_store_explicit(&coupon->sold_out, 1, memory_order_relaxed);
    h2o_linklist_insert_list(woken, &coupon->waiters);
}

/* Gives back the unit a grab took (its holding is already off the customer's list). */
static void give_back(local_store_t *store, local_coupon_t *coupon, local_user_t *customer)
{
    h2o_linklist_t woken;
    h2o_linklist_init_anchor(&woken);
    pthread_mutex_lock(&coupon->lock);
    holders_remove(coupon, customer);
    atomic_fetch_add_explicit(&coupon->left, 1, memory_order_relaxed);
    --coupon->pending;
    settled_locked(coupon, &woken);
    pthread_mutex_unlock(&coupon->lock);
    requeue_waiters(store, &woken);
}

/* Undoes what a grab took, when its record could not be written. */
static void undo_grab(local_store_t *store, local_coupon_t *coupon, local_user_t *customer)
{
    pthread_mutex_lock(&customer->lock);
    size_t i = array_find_last(&customer->coupons, coupon);
    assert(i != SIZE_MAX && (customer->coupons.items[i] & HOLDING_PENDING) != 0 &&
           "undoing a grant that is not pending");
    array_remove(&customer->coupons, i);
    pthread_mutex_unlock(&customer->lock);
    give_back(store, coupon, customer);
}

/* On the worker, after its turn's write: the grants of thread->settling that were written
 * are no longer pending. */
static void settle_written(sk_store_thread_t *thread)
{
    local_coupon_t *coupon = thread->settling;
    if (coupon == NULL)
        return;
    h2o_linklist_t woken;
    h2o_linklist_init_anchor(&woken);
    pthread_mutex_lock(&coupon->lock);
    coupon->pending -= thread->settled;
    settled_locked(coupon, &woken);
    pthread_mutex_unlock(&coupon->lock);
    thread->settling = NULL;
    thread->settled = 0;
    requeue_waiters(thread->store, &woken);
}

static void on_grant_committed(sk_journal_entry_t *entry)
{
    sk_store_op_t *op = entry->data;
    grab_state_t *state = op->_store_data;
    local_store_t *store = op->_thread->store;
    if (entry->status == 0) {
        /* The holding is acknowledged from here on (the customer's lists show it, a grab
         * again is already-held); the coupon's count follows for the whole run. */
        local_user_t *customer = state->customer;
        pthread_mutex_lock(&customer->lock);
        size_t i = array_find_last(&customer->coupons, state->coupon);
        assert(i != SIZE_MAX && "a committed grant is not among the customer's holdings");
        customer->coupons.items[i] &= ~HOLDING_PENDING;
        pthread_mutex_unlock(&customer->lock);
        sk_store_thread_t *thread = op->_thread;
        if (thread->settling != state->coupon) {
            settle_written(thread);
            thread->settling = state->coupon;
        }
        ++thread->settled;
        op->result = SK_STORE_OK;
    } else {
        undo_grab(store, state->coupon, state->customer);
        op->result = SK_STORE_UNAVAILABLE;
    }
    post_completion(op);
}

/* Under coupon->lock, for a holder: whether that customer's grant is committed. Its
 * holding may be pending, or not on the customer's list yet (the grab that took it is
 * between its two locks): both count as pending. The one place where two locks nest: a
 * coupon's, then a user's; nothing takes them the other way round. */
static int holding_is_committed(local_user_t *customer, local_coupon_t *coupon)
{
    pthread_mutex_lock(&customer->lock);
    size_t i = array_find_last(&customer->coupons, coupon);
    int committed = i != SIZE_MAX && (customer->coupons.items[i] & HOLDING_PENDING) == 0;
    pthread_mutex_unlock(&customer->lock);
    return committed;
}

/*
 * Under coupon->lock: takes one for `customer` (SK_STORE_OK), answers SOLD_OUT or
 * ALREADY_HELD when that is final, or else parks `op` on the coupon (returns -1): a
 * pending grant decides it, and settled_locked() wakes the op when one is settled.
 */
static int grab_or_wait(local_store_t *store, local_coupon_t *coupon, local_user_t *customer,
                        sk_store_grab_t *op)
{
    int wait;
    if (atomic_load_explicit(&coupon->left, memory_order_relaxed) == 0) {
        wait = coupon->pending != 0;
        if (!wait) {
            atomic_store_explicit(&coupon->sold_out, 1, memory_order_relaxed);
            return SK_STORE_SOLD_OUT;
        }
    } else if (holders_contain(coupon, customer)) {
        wait = !holding_is_committed(customer, coupon);
        if (!wait)
            return SK_STORE_ALREADY_HELD;
    } else {
        if (holders_add(coupon, customer) != 0)
            return SK_STORE_UNAVAILABLE;
        atomic_fetch_sub_explicit(&coupon->left, 1, memory_order_relaxed);
        ++coupon->pending;
        return SK_STORE_OK;
    }
    h2o_linklist_insert(&coupon->waiters, &op->op._message.link);
    atomic_fetch_add_explicit(&store->grabs_waiting, 1, memory_order_relaxed);
    return -1;
}

static void local_grab(sk_store_thread_t *thread, sk_store_grab_t *op)
{
    local_store_t *store = thread->store;
    op->op._thread = thread;

    local_coupon_t *coupon = find_coupon(store, op->seller, op->name);
    if (coupon == NULL ||
        atomic_load_explicit(&coupon->state, memory_order_acquire) != ENTRY_LIVE) {
        complete_now(&op->op, SK_STORE_NO_SUCH_COUPON);
        return;
    }
    if (coupon->start_at != SK_STORE_NO_TIME && op->now < coupon->start_at) {
        complete_now(&op->op, SK_STORE_NOT_STARTED);
        return;
    }
    if (coupon->end_at != SK_STORE_NO_TIME && op->now >= coupon->end_at) {
        complete_now(&op->op, SK_STORE_ENDED);
        return;
    }
    /* Once sold out for good a coupon stays so: answer without the lock, which the crowd
     * after the sale would otherwise fight over. */
    if (atomic_load_explicit(&coupon->sold_out, memory_order_relaxed)) {
        complete_now(&op->op, SK_STORE_SOLD_OUT);
        return;
    }
    /* The lookup is needed for the holder set anyway: comparing the id costs nothing. */
    local_user_t *customer = find_live_user(store, op->customer);
    if (customer == NULL || customer->id != op->customer_id) {
        complete_now(&op->op, SK_STORE_NOT_FOUND);
        return;
    }

    pthread_mutex_lock(&coupon->lock);
    int result = grab_or_wait(store, coupon, customer, op);
    pthread_mutex_unlock(&coupon->lock);
    if (result < 0)
        return; /* on_doorbell runs it again */
    if (result != SK_STORE_OK) {
        complete_now(&op->op, (sk_store_result_t)result);
        return;
    }

    pthread_mutex_lock(&customer->lock);
    int pushed = array_push(&customer->coupons, (uintptr_t)coupon | HOLDING_PENDING);
    pthread_mutex_unlock(&customer->lock);
    if (pushed != 0) {
        give_back(store, coupon, customer);
        complete_now(&op->op, SK_STORE_UNAVAILABLE);
        return;
    }

    grab_state_t *state = h2o_mem_alloc_pool(op->op.pool, sizeof(*state));
    state->coupon = coupon;
    state->customer = customer;
    op->op._store_data = state;
    sk_journal_entry_t *entry = new_entry(&op->op, SK_JOURNAL_GRANT, on_grant_committed);
    entry->u.grant.id = atomic_fetch_add_explicit(&store->next_grant_id, 1, memory_order_relaxed);
    entry->u.grant.coupon_id = coupon->id;
    entry->u.grant.granted_at = op->now;
    entry->u.grant.customer = customer->name;
    entry->u.grant.seller = coupon->seller->name;
    entry->u.grant.coupon = coupon->name;
    if (submit(thread, entry) != 0) {
        undo_grab(store, coupon, customer);
        complete_now(&op->op, SK_STORE_UNAVAILABLE);
    }
}

/* ---- revocations ---- */

static void on_revoke_committed(sk_journal_entry_t *entry)
{
    sk_store_op_t *op = entry->data;
    /* A revocation that could not be recorded still holds in memory: refusing the token
     * until the restart is the safe side. The client is told it failed. */
    op->result = entry->status == 0 ? SK_STORE_OK : SK_STORE_UNAVAILABLE;
    post_completion(op);
}

static void local_revoke(sk_store_thread_t *thread, sk_store_revoke_t *op)
{
    local_store_t *store = thread->store;
    op->op._thread = thread;
    if (sk_revocations_add(store->revoked, op->jti, strlen(op->jti), op->expires_at) != 0) {
        complete_now(&op->op, SK_STORE_UNAVAILABLE);
        return;
    }
    sk_journal_entry_t *entry = new_entry(&op->op, SK_JOURNAL_REVOKE, on_revoke_committed);
    entry->u.revoke.jti = op->jti;
    entry->u.revoke.expires_at = op->expires_at;
    if (submit(thread, entry) != 0)
        complete_now(&op->op, SK_STORE_UNAVAILABLE);
}

static int local_is_revoked(sk_store_t *super, const char *jti)
{
    local_store_t *store = (local_store_t *)super;
    return sk_revocations_contains(store->revoked, jti, strlen(jti));
}

static uint64_t local_revocation_epoch(sk_store_t *super)
{
    local_store_t *store = (local_store_t *)super;
    return sk_revocations_epoch(store->revoked);
}

static const char *local_deployment_id(sk_store_t *super)
{
    return ((local_store_t *)super)->deployment_id;
}

/* ---- pruning expired revocations ---- */

static int64_t monotonic_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static void on_prune_committed(sk_journal_entry_t *entry)
{
    local_store_t *store = entry->data;
    atomic_store_explicit(&store->prune_in_flight, 0, memory_order_release);
}

/* On a worker, when its prune timer fires: the first worker past the due time prunes the
 * memory set and hands the SQL delete to the applier. */
static void prune_revocations(local_store_t *store)
{
    /* Due again after half an interval: whichever worker's timer (one interval long) fires
     * next is then past it, so no interval goes by without a prune. */
    int64_t now_ms = monotonic_ms();
    int64_t due = atomic_load(&store->prune_due_ms);
    if (now_ms < due || !atomic_compare_exchange_strong(&store->prune_due_ms, &due,
                                                        now_ms + store->prune_interval_ms / 2))
        return;
    int64_t cutoff = unix_now() - SK_STORE_REVOCATION_GRACE;
    size_t pruned = sk_revocations_prune(store->revoked, cutoff);
    if (pruned != 0)
        sk_log(SK_LOG_INFO, "store", "pruned %zu expired revocations from memory", pruned);
    int idle = 0;
    if (!atomic_compare_exchange_strong(&store->prune_in_flight, &idle, 1))
        return; /* the last delete is still queued: it covers most of this one */
    sk_journal_entry_t *entry = &store->prune_entry;
    memset(entry, 0, sizeof(*entry));
    entry->kind = SK_JOURNAL_PRUNE;
    entry->on_committed = on_prune_committed;
    entry->data = store;
    entry->u.prune.cutoff = cutoff;
    if (atomic_load(&store->drained) || sk_log_applier_submit(store->applier, entry) != 0)
        atomic_store(&store->prune_in_flight, 0);
}

static void on_prune_timer(h2o_timeout_entry_t *timer)
{
    sk_store_thread_t *thread = H2O_STRUCT_FROM_MEMBER(sk_store_thread_t, prune_timer, timer);
    prune_revocations(thread->store);
    h2o_timeout_link(thread->loop, &thread->prune_timeout, &thread->prune_timer);
}

/* ---- threads, stats, lifecycle ---- */

static sk_store_thread_t *local_thread_create(sk_store_t *super, h2o_loop_t *loop,
                                              h2o_multithread_queue_t *queue)
{
    sk_store_thread_t *thread = calloc(1, sizeof(*thread));
    if (thread == NULL)
        return NULL;
    local_store_t *store = (local_store_t *)super;
    thread->store = store;
    thread->log = sk_log_applier_writer_create(store->applier);
    if (thread->log == NULL) {
        free(thread);
        return NULL;
    }
    thread->turn_tail = &thread->turn;
    thread->loop = loop;
    h2o_timeout_init(loop, &thread->turn_timeout, 0);
    thread->turn_timer.cb = on_turn_end;
    h2o_timeout_init(loop, &thread->prune_timeout, store->prune_interval_ms);
    thread->prune_timer.cb = on_prune_timer;
    h2o_timeout_link(loop, &thread->prune_timeout, &thread->prune_timer);
    pthread_mutex_init(&thread->retries_lock, NULL);
    h2o_linklist_init_anchor(&thread->retries);
    h2o_multithread_register_receiver(queue, &thread->receiver, on_wake);
    return thread;
}

static void local_thread_destroy(sk_store_thread_t *thread)
{
    local_store_t *store = thread->store;
    if (thread->turn != NULL)
        end_turn(thread);
    if (h2o_timeout_is_linked(&thread->turn_timer))
        h2o_timeout_unlink(&thread->turn_timer);
    h2o_timeout_dispose(thread->loop, &thread->turn_timeout);
    if (h2o_timeout_is_linked(&thread->prune_timer))
        h2o_timeout_unlink(&thread->prune_timer);
    h2o_timeout_dispose(thread->loop, &thread->prune_timeout);
    sk_log_applier_writer_release(store->applier, thread->log);
    /* No grab of this worker is parked any more: a worker stops once it has answered
     * every request it started. */
    h2o_multithread_unregister_receiver(thread->receiver.queue, &thread->receiver);
    pthread_mutex_destroy(&thread->retries_lock);
    free(thread);
}

static int local_is_ready(sk_store_t *super)
{
    (void)super;
    return 1;
}

static void local_stats(sk_store_t *super, sk_store_stats_t *out)
{
    local_store_t *store = (local_store_t *)super;
    memset(out, 0, sizeof(*out));
    sk_log_applier_stats(store->applier, out);
    out->grabs_waiting = atomic_load_explicit(&store->grabs_waiting, memory_order_relaxed);
}

/* Refuses new changes and applies every written one to SQLite. The logs already hold every
 * acknowledged change; what SQLite refuses stays in them for the next start. */
static int local_drain(sk_store_t *super)
{
    local_store_t *store = (local_store_t *)super;
    atomic_store(&store->drained, 1);
    return sk_log_applier_stop(store->applier) == 0 ? 0 : SK_EIO;
}

static void free_user(local_user_t *user)
{
    free(user->coupons.items);
    free(user->password_hash);
    pthread_mutex_destroy(&user->lock);
    free(user);
}

static void local_destroy(sk_store_t *super)
{
    local_store_t *store = (local_store_t *)super;
    sk_log_applier_destroy(store->applier);
    if (store->journal != NULL)
        sk_journal_close(store->journal);
    /* Every coupon and user is reachable from the all-coupons list and the user index. */
    for (local_coupon_t *coupon = store->all_coupons, *next; coupon != NULL; coupon = next) {
        next = coupon->all_next;
        free(coupon->holders);
        pthread_mutex_destroy(&coupon->lock);
        free(coupon);
    }
    free(store->catalog.items);
    sk_index_destroy(store->coupons);
    sk_revocations_destroy(store->revoked);
    for (local_user_t *user = store->all_users, *next; user != NULL; user = next) {
        next = user->all_next;
        free_user(user);
    }
    sk_index_destroy(store->users);
    pthread_mutex_destroy(&store->all_lock);
    free(store);
}

/* ---- the load at start ---- */

/* Before the load: what the logs hold beyond SQLite goes into it first. */
static int recover_logs(void *data, sk_journal_t *journal)
{
    local_store_t *store = data;
    return sk_log_applier_recover(journal, store->log_dir);
}

/* A name as the API admits it: at most SK_STORE_MAX_NAME bytes, and no NUL, which the
 * coupon index keys use as their separator. */
static int name_is_valid(h2o_iovec_t name)
{
    return name.len <= SK_STORE_MAX_NAME && memchr(name.base, '\0', name.len) == NULL;
}

static int load_user(void *data, int64_t id, h2o_iovec_t username, sk_user_kind_t kind,
                     const char *password_hash)
{
    local_store_t *store = data;
    if (load_interrupted(store))
        return SK_ECANCELED;
    if (!name_is_valid(username)) {
        sk_log(SK_LOG_WARN, "store",
               "skipping user %lld: name longer than %d bytes or holding a NUL", (long long)id,
               SK_STORE_MAX_NAME);
        return 0;
    }
    local_user_t *user = user_create(id, username, kind, password_hash, ENTRY_LIVE);
    if (user == NULL)
        return SK_ENOMEM;
    remember_user(store, user);
    if (sk_index_insert(store->users, username.base, username.len, user, NULL) != user)
        return SK_ENOMEM;
    if (id >= atomic_load(&store->next_user_id))
        atomic_store(&store->next_user_id, id + 1);
    return 0;
}

static int load_coupon(void *data, int64_t id, h2o_iovec_t seller_name, h2o_iovec_t name,
                       h2o_iovec_t description, int64_t amount, int64_t remaining, int64_t stock,
                       int64_t start_at, int64_t end_at)
{
    local_store_t *store = data;
    if (load_interrupted(store))
        return SK_ECANCELED;
    local_user_t *seller = find_live_user(store, seller_name);
    if (seller == NULL || !name_is_valid(name)) {
        sk_log(SK_LOG_WARN, "store", "skipping coupon %lld: unknown seller or bad name",
               (long long)id);
        return 0;
    }
    local_coupon_t *coupon = coupon_create(seller, id, name, description, amount, amount, stock,
                                           start_at, end_at, ENTRY_LIVE);
    if (coupon == NULL)
        return SK_ENOMEM;
    coupon->loaded_remaining = remaining;
    char key[2 * SK_STORE_MAX_NAME + 1];
    if (sk_index_insert(store->coupons, key, coupon_key(key, seller->name, name), coupon, NULL) !=
            coupon ||
        array_push(&seller->coupons, (uintptr_t)coupon) != 0) {
        free(coupon);
        return SK_ENOMEM;
    }
    if (remember_coupon(store, coupon) != 0)
        return SK_ENOMEM;
    if (id >= atomic_load(&store->next_coupon_id))
        atomic_store(&store->next_coupon_id, id + 1);
    return 0;
}

static int load_grant(void *data, h2o_iovec_t customer_name, h2o_iovec_t seller,
                      h2o_iovec_t coupon_name, int64_t id)
{
    local_store_t *store = data;
    if (load_interrupted(store))
        return SK_ECANCELED;
    if (id >= atomic_load(&store->next_grant_id))
        atomic_store(&store->next_grant_id, id + 1);
    local_user_t *customer = find_live_user(store, customer_name);
    local_coupon_t *coupon = name_is_valid(seller) && name_is_valid(coupon_name)
                                 ? find_coupon(store, seller, coupon_name)
                                 : NULL;
    if (customer == NULL || coupon == NULL) {
        sk_log(SK_LOG_WARN, "store", "skipping a grant of an unknown customer or coupon");
        return 0;
    }
    if (holders_add(coupon, customer) != 0 ||
        array_push(&customer->coupons, (uintptr_t)coupon) != 0)
        return SK_ENOMEM;
    atomic_fetch_sub(&coupon->left, 1);
    return 0;
}

static int load_revoked(void *data, const char *jti, int64_t expires_at)
{
    local_store_t *store = data;
    /* The journal deleted the expired ones before the load. */
    return sk_revocations_add(store->revoked, jti, strlen(jti), expires_at);
}

static const sk_store_vtable_t local_vtable = {
    .thread_create = local_thread_create,
    .thread_destroy = local_thread_destroy,
    .user_register = local_user_register,
    .user_find = local_user_find,
    .coupon_create = local_coupon_create,
    .coupon_list = local_coupon_list,
    .coupon_catalog = local_coupon_catalog,
    .grab = local_grab,
    .revoke = local_revoke,
    .is_revoked = local_is_revoked,
    .revocation_epoch = local_revocation_epoch,
    .deployment_id = local_deployment_id,
    .is_ready = local_is_ready,
    .stats = local_stats,
    .drain = local_drain,
    .destroy = local_destroy,
};

sk_store_t *sk_store_local_create(const char *db_path, int sync_commits)
{
    local_store_t *store = calloc(1, sizeof(*store));
    if (store == NULL)
        return NULL;
    store->super.vtable = &local_vtable;
    pthread_mutex_init(&store->all_lock, NULL);
    atomic_init(&store->next_user_id, 1);
    atomic_init(&store->next_coupon_id, 1);
    atomic_init(&store->next_grant_id, 1);
    store->users = sk_index_create();
    store->coupons = sk_index_create();
    store->revoked = sk_revocations_create();
    if (store->users == NULL || store->coupons == NULL || store->revoked == NULL)
        goto fail;
    store->prune_interval_ms = sk_revocations_prune_interval_ms();
    atomic_init(&store->prune_due_ms, monotonic_ms() + store->prune_interval_ms / 2);

    snprintf(store->log_dir, sizeof(store->log_dir), "%s-log", db_path);
    if (mkdir(store->log_dir, 0700) != 0 && errno != EEXIST) {
        sk_log(SK_LOG_ERROR, "store", "mkdir(%s) failed: %s", store->log_dir, strerror(errno));
        goto fail;
    }
    sk_journal_hooks_t hooks = {store,        load_user, load_coupon, load_grant,
                                load_revoked, NULL,      recover_logs};
    store->journal =
        sk_journal_open(db_path, sync_commits, unix_now() - SK_STORE_REVOCATION_GRACE, &hooks);
    if (store->journal == NULL)
        goto fail;
    memcpy(store->deployment_id, sk_journal_deployment_id(store->journal),
           sizeof(store->deployment_id));

    /* The grants rows are the truth; a `remaining` that disagrees (edited by hand, say) is
     * rewritten so that SQL readers see what the service enforces. */
    for (local_coupon_t *coupon = store->all_coupons; coupon != NULL; coupon = coupon->all_next) {
        int64_t left = atomic_load(&coupon->left);
        if (left < 0) {
            sk_log(SK_LOG_WARN, "store", "coupon %lld has more grants than its amount",
                   (long long)coupon->id);
            atomic_store(&coupon->left, 0);
            left = 0;
        }
        if (left != coupon->loaded_remaining) {
            sk_log(SK_LOG_WARN, "store",
                   "coupon %lld: remaining %lld in SQL, %lld by grants; fixed",
                   (long long)coupon->id, (long long)coupon->loaded_remaining, (long long)left);
            if (sk_journal_fix_remaining(store->journal, coupon->id, left) != 0)
                goto fail;
        }
        atomic_store(&coupon->sold_out, left == 0);
    }
    sk_log_applier_options_t applier_options = {.sync_commits = sync_commits};
    store->applier = sk_log_applier_start(store->journal, store->log_dir, &applier_options);
    if (store->applier == NULL)
        goto fail;
    sk_log(SK_LOG_INFO, "store", "loaded %zu users, %zu coupons from %s",
           sk_index_count(store->users), sk_index_count(store->coupons), db_path);
    return &store->super;

fail:
    local_destroy(&store->super);
    return NULL;
}
