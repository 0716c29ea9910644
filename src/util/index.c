/*
 * The lock-free-read hash index (see index.h): open addressing with linear probing over
 * slots that point at immutable entries. A slot goes from NULL to an entry exactly once, so
 * a reader that loads it with acquire ordering sees a complete entry. Only the value can
 * change later (a dead reservation replaced by a live one), through an atomic pointer.
 */
#include "util/index.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef struct index_entry {
    uint64_t hash;
    _Atomic(void *) value;
    size_t key_len;
    char key[];
} index_entry_t;

typedef struct index_table {
    size_t capacity; /* a power of two */
    struct index_table *retired_next;
    _Atomic(index_entry_t *) slots[];
} index_table_t;

struct sk_index {
    _Atomic(index_table_t *) table;
    pthread_mutex_t insert_lock;
    size_t count;
    index_table_t *retired; /* older tables a reader may still be walking */
};

uint64_t sk_index_hash(const void *key, size_t len)
{
    const unsigned char *bytes = key;
    uint64_t hash = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i != len; ++i) {
        hash ^= bytes[i];
        hash *= 0x100000001b3ULL;
    }
    /* FNV's low bits are weak for short keys differing at the end: mix before masking. */
    hash ^= hash >> 33;
    hash *= 0xff51afd7ed558ccdULL;
    hash ^= hash >> 33;
    return hash;
}

static index_table_t *table_create(size_t capacity)
{
    index_table_t *table = calloc(1, sizeof(*table) + capacity * sizeof(table->slots[0]));
    if (table != NULL)
        table->capacity = capacity;
    return table;
}

sk_index_t *sk_index_create(void)
{
    sk_index_t *index = calloc(1, sizeof(*index));
    if (index == NULL)
        return NULL;
    index_table_t *table = table_create(64);
    if (table == NULL) {
        free(index);
        return NULL;
    }
    atomic_init(&index->table, table);
    pthread_mutex_init(&index->insert_lock, NULL);
    return index;
}

void sk_index_destroy(sk_index_t *index)
{
    if (index == NULL)
        return;
    index_table_t *table = atomic_load(&index->table);
    for (size_t i = 0; i != table->capacity; ++i)
        free(atomic_load_explicit(&table->slots[i], memory_order_relaxed));
    free(table);
    while (index->retired != NULL) {
        index_table_t *next = index->retired->retired_next;
        free(index->retired);
        index->retired = next;
    }
    pthread_mutex_destroy(&index->insert_lock);
    free(index);
}

static index_entry_t *table_find(index_table_t *table, uint64_t hash, const void *key,
                                 size_t key_len, size_t *free_slot)
{
    size_t mask = table->capacity - 1;
    for (size_t slot = hash & mask;; slot = (slot + 1) & mask) {
        index_entry_t *entry = atomic_load_explicit(&table->slots[slot], memory_order_acquire);
        if (entry == NULL) {
            if (free_slot != NULL)
                *free_slot = slot;
            return NULL;
        }
        if (entry->hash == hash && entry->key_len == key_len &&
            memcmp(entry->key, key, key_len) == 0)
            return entry;
    }
}

void *sk_index_find(sk_index_t *index, const void *key, size_t key_len)
{
    index_table_t *table = atomic_load_explicit(&index->table, memory_order_acquire);
    index_entry_t *entry = table_find(table, sk_index_hash(key, key_len), key, key_len, NULL);
    return entry != NULL ? atomic_load_explicit(&entry->value, memory_order_acquire) : NULL;
}

/* Called with the insert lock held: moves every entry into a table twice the size. */
static int grow(sk_index_t *index)
{
    index_table_t *old = atomic_load_explicit(&index->table, memory_order_relaxed);
    index_table_t *bigger = table_create(old->capacity * 2);
    if (bigger == NULL)
        return -1;
    size_t mask = bigger->capacity - 1;
    for (size_t i = 0; i != old->capacity; ++i) {
        index_entry_t *entry = atomic_load_explicit(&old->slots[i], memory_order_relaxed);
        if (entry == NULL)
            continue;
        size_t slot = entry->hash & mask;
        while (atomic_load_explicit(&bigger->slots[slot], memory_order_relaxed) != NULL)
            slot = (slot + 1) & mask;
        atomic_store_explicit(&bigger->slots[slot], entry, memory_order_relaxed);
    }
    atomic_store_explicit(&index->table, bigger, memory_order_release);
    old->retired_next = index->retired;
    index->retired = old;
    return 0;
}

void *sk_index_insert(sk_index_t *index, const void *key, size_t key_len, void *value,
                      int (*keep_existing)(void *existing))
{
    void *stored = NULL;
    uint64_t hash = sk_index_hash(key, key_len);

    pthread_mutex_lock(&index->insert_lock);
    index_table_t *table = atomic_load_explicit(&index->table, memory_order_relaxed);
    size_t free_slot = 0;
    index_entry_t *entry = table_find(table, hash, key, key_len, &free_slot);
    if (entry != NULL) {
        void *existing = atomic_load_explicit(&entry->value, memory_order_relaxed);
        if (keep_existing == NULL || keep_existing(existing)) {
            stored = existing;
        } else {
            atomic_store_explicit(&entry->value, value, memory_order_release);
            stored = value;
        }
        goto done;
    }
    /* Keep the load factor at most one half so probes stay short. */
    if ((index->count + 1) * 2 > table->capacity) {
        if (grow(index) != 0)
            goto done;
        table = atomic_load_explicit(&index->table, memory_order_relaxed);
        table_find(table, hash, key, key_len, &free_slot);
    }
    entry = malloc(sizeof(*entry) + key_len);
    if (entry == NULL)
        goto done;
    entry->hash = hash;
    entry->key_len = key_len;
    memcpy(entry->key, key, key_len);
    atomic_init(&entry->value, value);
    atomic_store_explicit(&table->slots[free_slot], entry, memory_order_release);
    ++index->count;
    stored = value;
done:
    pthread_mutex_unlock(&index->insert_lock);
    return stored;
}

size_t sk_index_count(sk_index_t *index)
{
    pthread_mutex_lock(&index->insert_lock);
    size_t count = index->count;
    pthread_mutex_unlock(&index->insert_lock);
    return count;
}

void sk_index_foreach(sk_index_t *index, void (*visit)(void *value))
{
    index_table_t *table = atomic_load(&index->table);
    for (size_t i = 0; i != table->capacity; ++i) {
        index_entry_t *entry = atomic_load_explicit(&table->slots[i], memory_order_relaxed);
        if (entry != NULL)
            visit(atomic_load_explicit(&entry->value, memory_order_relaxed));
    }
}
