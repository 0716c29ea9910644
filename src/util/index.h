/*
 * A read-mostly hash index from byte-string keys to pointers, for the in-memory store.
 *
 * Lookups take no lock and never wait: the flash-sale hot path reads the coupon index on
 * every request from every worker thread, while coupons and users are added rarely. Entries
 * are never removed (the store marks a value dead instead), so a reader can never see freed
 * memory; a growing table is published with one atomic store and old tables are kept until
 * the index is destroyed. Inserts serialize on a mutex.
 */
#ifndef SK_UTIL_INDEX_H
#define SK_UTIL_INDEX_H

#include <stddef.h>
#include <stdint.h>

typedef struct sk_index sk_index_t;

/* Creates an empty index. Returns NULL when out of memory. Free with sk_index_destroy. */
sk_index_t *sk_index_create(void);

/* Frees the index and its tables; the values are the caller's to free beforehand. */
void sk_index_destroy(sk_index_t *index);

/* The value stored under `key`, or NULL. Thread-safe, lock-free. */
void *sk_index_find(sk_index_t *index, const void *key, size_t key_len);

/*
 * Stores `value` under `key` unless a value is there that `keep_existing` (called under
 * the insert lock, may be NULL = always keep) says to keep. Returns the value now stored:
 * `value` when it was inserted, the existing one otherwise; NULL when out of memory.
 */
void *sk_index_insert(sk_index_t *index, const void *key, size_t key_len, void *value,
                      int (*keep_existing)(void *existing));

/* Calls `visit` with every value; for teardown only (not safe against concurrent inserts). */
void sk_index_foreach(sk_index_t *index, void (*visit)(void *value));

/* How many keys the index holds. */
size_t sk_index_count(sk_index_t *index);

/* A 64-bit hash of `len` bytes (FNV-1a folded with a final mix); exposed for tests. */
uint64_t sk_index_hash(const void *key, size_t len);

#endif
