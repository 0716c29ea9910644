/*
 * The set of revoked token ids (see revocations.h): linear probing over pointers to
 * entries that carry their key, grown at half load, with backward-shift deletion, and
 * shrunk by a prune that left it mostly empty (after a burst of logouts).
 */
#include "store/revocations.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "util/index.h"
#include "util/error.h"

#define MIN_CAPACITY 64 /* a power of two */
#define DEFAULT_PRUNE_MS 60000u
#define MIN_PRUNE_MS 10u

typedef struct revocation {
    uint64_t hash;
    int64_t expires_at;
    size_t len;
    char jti[];
} revocation_t;

struct sk_revocations {
    pthread_mutex_t lock;
    revocation_t **slots; /* guarded by lock; capacity a power of two */
    size_t capacity, count;
    _Atomic uint64_t epoch;
};

static revocation_t **slots_create(size_t capacity)
{
    return calloc(capacity, sizeof(revocation_t *));
}

sk_revocations_t *sk_revocations_create(void)
{
    sk_revocations_t *set = calloc(1, sizeof(*set));
    if (set == NULL)
        return NULL;
    set->slots = slots_create(MIN_CAPACITY);
    if (set->slots == NULL) {
        free(set);
        return NULL;
    }
    set->capacity = MIN_CAPACITY;
    pthread_mutex_init(&set->lock, NULL);
    atomic_init(&set->epoch, 0);
    return set;
}

void sk_revocations_destroy(sk_revocations_t *set)
{
    if (set == NULL)
        return;
    for (size_t i = 0; i != set->capacity; ++i)
        free(set->slots[i]);
    free(set->slots);
    pthread_mutex_destroy(&set->lock);
    free(set);
}

/* The slot holding `jti`, or the empty slot where it would go. Under the lock. */
static size_t probe(revocation_t *const *slots, size_t capacity, uint64_t hash, const char *jti,
                    size_t len)
{
    size_t mask = capacity - 1;
    size_t slot = (size_t)hash & mask;
    for (; slots[slot] != NULL; slot = (slot + 1) & mask) {
        const revocation_t *entry = slots[slot];
        if (entry->hash == hash && entry->len == len && memcmp(entry->jti, jti, len) == 0)
            break;
    }
    return slot;
}

/* Moves every entry into a table of `capacity` slots. Under the lock. */
static int rehash(sk_revocations_t *set, size_t capacity)
{
    revocation_t **slots = slots_create(capacity);
    if (slots == NULL)
        return SK_ENOMEM;
    for (size_t i = 0; i != set->capacity; ++i) {
        revocation_t *entry = set->slots[i];
        if (entry != NULL)
            slots[probe(slots, capacity, entry->hash, entry->jti, entry->len)] = entry;
    }
    free(set->slots);
    set->slots = slots;
    set->capacity = capacity;
    return 0;
}

int sk_revocations_add(sk_revocations_t *set, const char *jti, size_t len, int64_t expires_at)
{
    uint64_t hash = sk_index_hash(jti, len);
    int status = 0;
    pthread_mutex_lock(&set->lock);
    size_t slot = probe(set->slots, set->capacity, hash, jti, len);
    revocation_t *entry = set->slots[slot];
    if (entry != NULL) {
        if (expires_at > entry->expires_at)
            entry->expires_at = expires_at;
        goto done;
    }
    if ((set->count + 1) * 2 > set->capacity) {
        status = rehash(set, set->capacity * 2);
        if (status != 0)
            goto done;
        slot = probe(set->slots, set->capacity, hash, jti, len);
    }
    entry = malloc(sizeof(*entry) + len);
    if (entry == NULL) {
        status = SK_ENOMEM;
        goto done;
    }
    entry->hash = hash;
    entry->expires_at = expires_at;
    entry->len = len;
    memcpy(entry->jti, jti, len);
    set->slots[slot] = entry;
    ++set->count;
    /* Release: a reader that sees the new epoch and then looks finds the entry (the lock
     * orders the entry itself). */
    atomic_fetch_add_explicit(&set->epoch, 1, memory_order_release);
done:
    pthread_mutex_unlock(&set->lock);
    return status;
}

int sk_revocations_contains(sk_revocations_t *set, const char *jti, size_t len)
{
    uint64_t hash = sk_index_hash(jti, len);
    pthread_mutex_lock(&set->lock);
    int found = set->slots[probe(set->slots, set->capacity, hash, jti, len)] != NULL;
    pthread_mutex_unlock(&set->lock);
    return found;
}

uint64_t sk_revocations_epoch(sk_revocations_t *set)
{
    return atomic_load_explicit(&set->epoch, memory_order_acquire);
}

/* Empties `hole` and shifts back the entries of its probe run, so that no lookup stops
 * early at the hole. Under the lock. */
static void remove_at(sk_revocations_t *set, size_t hole)
{
    size_t mask = set->capacity - 1;
    free(set->slots[hole]);
    for (size_t next = (hole + 1) & mask; set->slots[next] != NULL; next = (next + 1) & mask) {
        size_t home = (size_t)set->slots[next]->hash & mask;
        if (((next - home) & mask) >= ((next - hole) & mask)) {
            set->slots[hole] = set->slots[next];
            hole = next;
        }
    }
    set->slots[hole] = NULL;
    --set->count;
}

size_t sk_revocations_prune(sk_revocations_t *set, int64_t cutoff)
{
    size_t removed = 0;
    pthread_mutex_lock(&set->lock);
    for (size_t i = 0; i != set->capacity;) {
        revocation_t *entry = set->slots[i];
        if (entry != NULL && entry->expires_at < cutoff) {
            /* Another entry may have moved into slot i: look at it again. Entries only move
             * into the hole, never behind the walk, except ones it already kept. */
            remove_at(set, i);
            ++removed;
        } else {
            ++i;
        }
    }
    /* Give back what a burst of logouts made the table grow to; if that allocation fails
     * the table stays as it is, which is still valid. */
    size_t capacity = set->capacity;
    while (capacity > MIN_CAPACITY && set->count * 8 < capacity)
        capacity /= 2;
    if (capacity != set->capacity)
        rehash(set, capacity);
    pthread_mutex_unlock(&set->lock);
    return removed;
}

size_t sk_revocations_count(sk_revocations_t *set)
{
    pthread_mutex_lock(&set->lock);
    size_t count = set->count;
    pthread_mutex_unlock(&set->lock);
    return count;
}

unsigned sk_revocations_prune_interval_ms(void)
{
    const char *text = getenv("SECKILL_REVOCATION_PRUNE_MS");
    if (text == NULL || *text == '\0')
        return DEFAULT_PRUNE_MS;
    char *end;
    unsigned long value = strtoul(text, &end, 10);
    if (*end != '\0' || value < MIN_PRUNE_MS || value > DEFAULT_PRUNE_MS)
        return DEFAULT_PRUNE_MS;
    return (unsigned)value;
}
