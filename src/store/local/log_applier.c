/*
 * The applier (see log_applier.h and grant_log.c's design note).
 *
 * One thread, woken every interval_ms, runs rounds. A round reads, for each writer, what
 * its oldest listed segment holds past what was applied (up to the end the writer
 * published, so only whole written records), decodes it, sorts the grants by key, and
 * applies everything in one transaction with sk_journal_apply; only once that committed do
 * the applied offsets move. A segment the writer has finished and that is applied to its
 * end is deleted and dropped from the writer's list. A round that left records behind
 * (more than MAX_READ_BYTES of one writer) is followed by another at once.
 *
 * The workers never wait for the applier: they publish segment ends with an atomic store,
 * and take the writer's lock only to list a new segment (once a second at most). The
 * applier's own lock guards the list of writers and the queue of prunes.
 */
#include "store/local/log_applier.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/counters.h"
#include "util/error.h"
#include "util/log.h"

#define DEFAULT_SEGMENT_BYTES ((uint64_t)32 << 20)
#define DEFAULT_SEGMENT_MS 1000
#define DEFAULT_INTERVAL_MS 100
/* Of one writer's log per transaction: about 60,000 grants. */
#define MAX_READ_BYTES ((size_t)4 << 20)
/* Entries per transaction at recovery. */
#define RECOVERY_BATCH 65536
/* Below the workers (nice 0), but not so far that it cannot keep up under full load: at
 * nice 2 its share of two busy cores is about a quarter of one, several times what
 * applying ~100k grants a second costs. */
#define APPLIER_NICE 2
/* The promise: the SQLite copy is never more than this behind the logs. */
#define MAX_LAG_USEC 1000000

typedef struct slot {
    sk_grant_log_writer_t *writer;
    int released; /* guarded by the applier's lock */
    int fd;       /* open on fd_segment, or -1 */
    const sk_grant_log_segment_t *fd_segment;
    uint64_t offset;        /* bytes of the first listed segment applied */
    uint64_t next_sequence; /* of the record at offset */
    char *bytes;            /* this round's read */
    size_t bytes_capacity;
    uint64_t round_offset, round_sequence; /* where this round's read ends */
    size_t round_records;
    struct slot *next;
} slot_t;

typedef struct entries {
    sk_journal_entry_t *items;
    size_t count, capacity, limit;
    sk_journal_entry_t **sorted;
    size_t sorted_capacity;
} entries_t;

struct sk_log_applier {
    sk_journal_t *journal;
    char *dir;
    sk_grant_log_options_t writer_options;
    unsigned interval_ms;
    pthread_t thread;
    int thread_started;
    pthread_mutex_t lock;
    pthread_cond_t wakeup, stopped_changed;
    slot_t *slots;            /* guarded by lock; a slot's other fields are the thread's */
    unsigned next_writer_id;  /* guarded by lock */
    sk_journal_entry_t *side; /* prunes, guarded by lock */
    int stopping, stopped;    /* guarded by lock */
    int stop_status;          /* the last round's, once stopped */
    _Atomic uint64_t written, applied;
    /* When a round last began that applied all there was: everything written before it is
     * in SQLite. Written by the thread, read by stats. */
    _Atomic int64_t caught_up_usec;
    entries_t entries; /* the thread's */
};

/* ---- entries of one transaction ---- */

static int append_entry(void *data, sk_journal_entry_t *entry)
{
    entries_t *entries = data;
    if (entries->limit != 0 && entries->count == entries->limit)
        return 1;
    if (entries->count == entries->capacity) {
        size_t capacity = entries->capacity ? entries->capacity * 2 : 1024;
        sk_journal_entry_t *grown = realloc(entries->items, capacity * sizeof(*grown));
        if (grown == NULL)
            return 1;
        entries->items = grown;
        entries->capacity = capacity;
    }
    entries->items[entries->count++] = *entry;
    return 0;
}

static int kind_rank(sk_journal_kind_t kind)
{
    switch (kind) {
    case SK_JOURNAL_USER:
        return 0;
    case SK_JOURNAL_COUPON:
        return 1;
    case SK_JOURNAL_GRANT:
        return 2;
    case SK_JOURNAL_REVOKE:
        return 3;
    default:
        return 4;
    }
}

/* Creations first (not needed for correctness, see grant_log.c, but the coupon rows are
 * then there for their grants' takes), grants in the grants table's key order: one coupon's
 * together (its id stands for seller and name), then by customer as SQLite compares text. */
static int compare_entries(const void *a, const void *b)
{
    const sk_journal_entry_t *x = *(sk_journal_entry_t *const *)a;
    const sk_journal_entry_t *y = *(sk_journal_entry_t *const *)b;
    int rank_x = kind_rank(x->kind), rank_y = kind_rank(y->kind);
    if (rank_x != rank_y)
        return rank_x < rank_y ? -1 : 1;
    if (x->kind != SK_JOURNAL_GRANT)
        return 0;
    if (x->u.grant.coupon_id != y->u.grant.coupon_id)
        return x->u.grant.coupon_id < y->u.grant.coupon_id ? -1 : 1;
    h2o_iovec_t cx = x->u.grant.customer, cy = y->u.grant.customer;
    int order = memcmp(cx.base, cy.base, cx.len < cy.len ? cx.len : cy.len);
    if (order != 0)
        return order;
    return cx.len < cy.len ? -1 : cx.len > cy.len;
}

/* Sorts the entries (and `side`, a list linked by next) into one list; returns its head and
 * sets *count. NULL when there is nothing, or when out of memory (*count is then nonzero). */
static sk_journal_entry_t *sort_entries(entries_t *entries, sk_journal_entry_t *side, size_t *count)
{
    size_t total = entries->count;
    for (sk_journal_entry_t *entry = side; entry != NULL; entry = entry->next)
        ++total;
    *count = total;
    if (total == 0)
        return NULL;
    if (total > entries->sorted_capacity) {
        sk_journal_entry_t **grown = realloc(entries->sorted, total * sizeof(sk_journal_entry_t *));
        if (grown == NULL)
            return NULL;
        entries->sorted = grown;
        entries->sorted_capacity = total;
    }
    size_t n = 0;
    for (size_t i = 0; i != entries->count; ++i)
        entries->sorted[n++] = &entries->items[i];
    for (sk_journal_entry_t *entry = side; entry != NULL; entry = entry->next)
        entries->sorted[n++] = entry;
    qsort(entries->sorted, n, sizeof(sk_journal_entry_t *), compare_entries);
    for (size_t i = 0; i != n; ++i)
        entries->sorted[i]->next = i + 1 != n ? entries->sorted[i + 1] : NULL;
    return entries->sorted[0];
}

static void entries_dispose(entries_t *entries)
{
    free(entries->items);
    free(entries->sorted);
    memset(entries, 0, sizeof(*entries));
}

static int apply_entries(sk_journal_t *journal, entries_t *entries, sk_journal_entry_t *side)
{
    size_t count;
    sk_journal_entry_t *batch = sort_entries(entries, side, &count);
    if (batch == NULL)
        return count == 0 ? 0 : SK_ENOMEM;
    return sk_journal_apply(journal, batch, count);
}

/* ---- reading ---- */

/* Reads `len` bytes at `offset` of `fd` into `out`; 0, or SK_EIO (logged). */
static int read_exactly(int fd, char *out, size_t len, uint64_t offset, const char *dir,
                        const char *name)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, out + done, len - done, (off_t)(offset + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            sk_log(SK_LOG_ERROR, "applier", "pread(%s/%s) failed: %s", dir, name,
                   n < 0 ? strerror(errno) : "the file is shorter than written");
            return SK_EIO;
        }
        done += (size_t)n;
    }
    return 0;
}

static const char *stop_reason(sk_grant_log_stop_t stop)
{
    switch (stop) {
    case SK_GRANT_LOG_INCOMPLETE:
        return "a torn tail (a record cut off by the end of the file)";
    case SK_GRANT_LOG_CORRUPT:
        return "a record whose checksum or layout is wrong";
    case SK_GRANT_LOG_SEQUENCE:
        return "a record out of sequence";
    case SK_GRANT_LOG_LIMIT:
        return "records of a failed write, voided by the next segment";
    case SK_GRANT_LOG_CALLBACK:
        return "out of memory";
    default:
        return "nothing";
    }
}

static void close_slot_file(slot_t *slot)
{
    if (slot->fd >= 0)
        close(slot->fd);
    slot->fd = -1;
    slot->fd_segment = NULL;
}

/* The slot's first segment is finished and applied to its end: delete it. */
static void drop_segment(sk_log_applier_t *applier, slot_t *slot, sk_grant_log_segment_t *segment)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", applier->dir, segment->name);
    if (unlink(path) != 0 && errno != ENOENT)
        sk_log(SK_LOG_WARN, "applier", "unlink(%s) failed: %s", path, strerror(errno));
    close_slot_file(slot);
    sk_grant_log_writer_pop_segment(slot->writer);
    slot->offset = 0;
}

/*
 * Reads the next part of the slot's log into `entries` (deleting applied segments on the
 * way). Returns 1 when another round may find more at once, 0 when it read all there is,
 * or an error (logged).
 */
static int collect(sk_log_applier_t *applier, slot_t *slot, entries_t *entries)
{
    for (;;) {
        /* Set again after a drop: the round must not move the next segment's offset to
         * where the dropped one ended. */
        slot->round_offset = slot->offset;
        slot->round_sequence = slot->next_sequence;
        slot->round_records = 0;
        sk_grant_log_segment_t *segment = sk_grant_log_writer_first_segment(slot->writer);
        if (segment == NULL)
            return 0;
        /* finished first: once it is set, end is final. */
        int finished = atomic_load_explicit(&segment->finished, memory_order_acquire);
        uint64_t end = atomic_load_explicit(&segment->end, memory_order_acquire);
        if (slot->offset == end) {
            if (!finished)
                return 0;
            drop_segment(applier, slot, segment);
            continue;
        }
        if (slot->fd_segment != segment) {
            close_slot_file(slot);
            char path[PATH_MAX];
            snprintf(path, sizeof(path), "%s/%s", applier->dir, segment->name);
            slot->fd = open(path, O_RDONLY | O_CLOEXEC);
            if (slot->fd < 0) {
                sk_log(SK_LOG_ERROR, "applier", "open(%s) failed: %s", path, strerror(errno));
                return SK_EIO;
            }
            slot->fd_segment = segment;
        }
        size_t want =
            end - slot->offset < MAX_READ_BYTES ? (size_t)(end - slot->offset) : MAX_READ_BYTES;
        if (want > slot->bytes_capacity) {
            char *grown = realloc(slot->bytes, want);
            if (grown == NULL)
                return SK_ENOMEM;
            slot->bytes = grown;
            slot->bytes_capacity = want;
        }
        int status =
            read_exactly(slot->fd, slot->bytes, want, slot->offset, applier->dir, segment->name);
        if (status != 0)
            return status;
        uint64_t sequence = slot->offset == 0 ? segment->first_sequence : slot->next_sequence;
        size_t before = entries->count;
        sk_grant_log_stop_t stop;
        size_t consumed = sk_grant_log_parse(slot->bytes, want, &sequence, UINT64_MAX, append_entry,
                                             entries, &stop);
        /* Within what the writer published every record is whole; only a read cut short by
         * MAX_READ_BYTES may end inside one. */
        if (stop != SK_GRANT_LOG_END &&
            !(stop == SK_GRANT_LOG_INCOMPLETE && want == MAX_READ_BYTES && consumed != 0)) {
            sk_log(SK_LOG_ERROR, "applier", "%s/%s at byte %" PRIu64 ": %s; not applied",
                   applier->dir, segment->name, slot->offset + consumed, stop_reason(stop));
            entries->count = before;
            return stop == SK_GRANT_LOG_CALLBACK ? SK_ENOMEM : SK_EIO;
        }
        slot->round_offset = slot->offset + consumed;
        slot->round_sequence = sequence;
        slot->round_records = entries->count - before;
        /* A finished segment is dropped by the next round, which may find its successor
         * holding more already. */
        return slot->round_offset < end || finished;
    }
}

/* ---- the thread ---- */

static void free_slot(slot_t *slot)
{
    close_slot_file(slot);
    sk_grant_log_writer_destroy(slot->writer);
    free(slot->bytes);
    free(slot);
}

/* Frees released writers whose every segment is applied and deleted. */
static void free_released(sk_log_applier_t *applier)
{
    pthread_mutex_lock(&applier->lock);
    for (slot_t **link = &applier->slots; *link != NULL;) {
        slot_t *slot = *link;
        if (slot->released && sk_grant_log_writer_first_segment(slot->writer) == NULL) {
            *link = slot->next;
            free_slot(slot);
        } else {
            link = &slot->next;
        }
    }
    pthread_mutex_unlock(&applier->lock);
}

/* One round; returns the records applied (>= 0) or an error, and sets *more. */
static int64_t run_round(sk_log_applier_t *applier, int *more)
{
    int64_t started = sk_store_monotonic_usec();
    pthread_mutex_lock(&applier->lock);
    slot_t *slots = applier->slots;
    sk_journal_entry_t *side = applier->side;
    applier->side = NULL;
    pthread_mutex_unlock(&applier->lock);

    /* Slots are only freed on this thread, and new ones go to the front: the list from
     * `slots` on stays valid for the round. */
    entries_t *entries = &applier->entries;
    entries->count = 0;
    entries->limit = 0;
    *more = 0;
    int status = 0;
    for (slot_t *slot = slots; slot != NULL && status == 0; slot = slot->next) {
        int collected = collect(applier, slot, entries);
        if (collected < 0)
            status = collected;
        else if (collected > 0)
            *more = 1;
    }
    size_t side_count = 0;
    for (sk_journal_entry_t *entry = side; entry != NULL; entry = entry->next)
        ++side_count;
    if (status == 0 && entries->count + side_count != 0)
        status = apply_entries(applier->journal, entries, side);

    uint64_t records = 0;
    if (status == 0) {
        for (slot_t *slot = slots; slot != NULL; slot = slot->next) {
            slot->offset = slot->round_offset;
            slot->next_sequence = slot->round_sequence;
            records += slot->round_records;
        }
        atomic_fetch_add_explicit(&applier->applied, records, memory_order_release);
        int64_t now = sk_store_monotonic_usec();
        int64_t caught_up = atomic_load_explicit(&applier->caught_up_usec, memory_order_relaxed);
        if (records != 0 && now - caught_up > MAX_LAG_USEC)
            sk_log(SK_LOG_WARN, "applier", "the SQLite copy was %lld ms behind the logs",
                   (long long)((now - caught_up) / 1000));
        if (!*more)
            atomic_store_explicit(&applier->caught_up_usec, started, memory_order_relaxed);
    }
    for (sk_journal_entry_t *entry = side, *next; entry != NULL; entry = next) {
        next = entry->next; /* on_committed may reuse the entry */
        entry->status = status == 0 ? 0 : SK_EIO;
        entry->on_committed(entry);
    }
    free_released(applier);
    return status == 0 ? (int64_t)records : status;
}

static void wait_interval(sk_log_applier_t *applier)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += (long)(applier->interval_ms % 1000) * 1000000;
    until.tv_sec += applier->interval_ms / 1000 + until.tv_nsec / 1000000000;
    until.tv_nsec %= 1000000000;
    pthread_mutex_lock(&applier->lock);
    if (!applier->stopping)
        pthread_cond_timedwait(&applier->wakeup, &applier->lock, &until);
    pthread_mutex_unlock(&applier->lock);
}

static void *applier_main(void *arg)
{
    sk_log_applier_t *applier = arg;
    if (setpriority(PRIO_PROCESS, (id_t)gettid(), APPLIER_NICE) != 0)
        sk_log(SK_LOG_WARN, "applier", "setpriority(%d) failed: %s", APPLIER_NICE, strerror(errno));
    int status = 0;
    for (;;) {
        pthread_mutex_lock(&applier->lock);
        int stopping = applier->stopping;
        pthread_mutex_unlock(&applier->lock);
        int more;
        int64_t applied = run_round(applier, &more);
        status = applied < 0 ? (int)applied : 0;
        /* The stop was asked before this round began: once a round then finds nothing
         * left, everything written before the stop is applied (or SQLite refuses it). */
        if (stopping && (status != 0 || (applied == 0 && !more)))
            break;
        if (!more || status != 0)
            wait_interval(applier);
    }
    pthread_mutex_lock(&applier->lock);
    applier->stop_status = status;
    applier->stopped = 1;
    /* A prune queued after the last round is answered here, not left waiting. */
    sk_journal_entry_t *side = applier->side;
    applier->side = NULL;
    pthread_cond_broadcast(&applier->stopped_changed);
    pthread_mutex_unlock(&applier->lock);
    for (sk_journal_entry_t *entry = side, *next; entry != NULL; entry = next) {
        next = entry->next;
        entry->status = SK_EIO;
        entry->on_committed(entry);
    }
    return NULL;
}

sk_log_applier_t *sk_log_applier_start(sk_journal_t *journal, const char *dir,
                                       const sk_log_applier_options_t *options)
{
    sk_log_applier_t *applier = calloc(1, sizeof(*applier));
    if (applier == NULL)
        return NULL;
    applier->dir = strdup(dir);
    if (applier->dir == NULL) {
        free(applier);
        return NULL;
    }
    applier->journal = journal;
    applier->writer_options.sync_commits = options->sync_commits;
    applier->writer_options.segment_bytes =
        options->segment_bytes ? options->segment_bytes : DEFAULT_SEGMENT_BYTES;
    applier->writer_options.segment_ms =
        options->segment_ms ? options->segment_ms : DEFAULT_SEGMENT_MS;
    applier->writer_options.written = &applier->written;
    applier->interval_ms = options->interval_ms ? options->interval_ms : DEFAULT_INTERVAL_MS;
    atomic_init(&applier->caught_up_usec, sk_store_monotonic_usec());
    pthread_mutex_init(&applier->lock, NULL);
    pthread_condattr_t attributes;
    pthread_condattr_init(&attributes);
    pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC);
    pthread_cond_init(&applier->wakeup, &attributes);
    pthread_condattr_destroy(&attributes);
    pthread_cond_init(&applier->stopped_changed, NULL);
    if (pthread_create(&applier->thread, NULL, applier_main, applier) != 0) {
        sk_log(SK_LOG_ERROR, "applier", "pthread_create failed");
        applier->stopped = 1;
        sk_log_applier_destroy(applier);
        return NULL;
    }
    applier->thread_started = 1;
    return applier;
}

sk_grant_log_writer_t *sk_log_applier_writer_create(sk_log_applier_t *applier)
{
    pthread_mutex_lock(&applier->lock);
    int refused = applier->stopping || applier->stopped;
    unsigned id = applier->next_writer_id++;
    pthread_mutex_unlock(&applier->lock);
    if (refused)
        return NULL;
    slot_t *slot = calloc(1, sizeof(*slot));
    if (slot == NULL)
        return NULL;
    slot->fd = -1;
    slot->next_sequence = 1;
    slot->writer = sk_grant_log_writer_create(applier->dir, id, &applier->writer_options);
    if (slot->writer == NULL) {
        free(slot);
        return NULL;
    }
    /* Listed even if a stop came meanwhile: the last rounds, or the release after the stop,
     * take care of it like of any other. */
    pthread_mutex_lock(&applier->lock);
    slot->next = applier->slots;
    applier->slots = slot;
    pthread_mutex_unlock(&applier->lock);
    return slot->writer;
}

void sk_log_applier_writer_release(sk_log_applier_t *applier, sk_grant_log_writer_t *writer)
{
    sk_grant_log_writer_close(writer);
    pthread_mutex_lock(&applier->lock);
    for (slot_t **link = &applier->slots; *link != NULL; link = &(*link)->next) {
        slot_t *slot = *link;
        if (slot->writer != writer)
            continue;
        if (applier->stopped) {
            *link = slot->next;
            free_slot(slot);
        } else {
            slot->released = 1;
        }
        break;
    }
    pthread_mutex_unlock(&applier->lock);
}

int sk_log_applier_submit(sk_log_applier_t *applier, sk_journal_entry_t *entry)
{
    pthread_mutex_lock(&applier->lock);
    int refused = applier->stopping || applier->stopped;
    if (!refused) {
        entry->next = applier->side;
        applier->side = entry;
    }
    pthread_mutex_unlock(&applier->lock);
    return refused ? SK_EUNAVAILABLE : 0;
}

void sk_log_applier_stats(sk_log_applier_t *applier, sk_store_stats_t *out)
{
    sk_journal_stats(applier->journal, out);
    /* applied first: it never passes written, so the difference cannot wrap. */
    uint64_t applied = atomic_load_explicit(&applier->applied, memory_order_acquire);
    uint64_t written = atomic_load_explicit(&applier->written, memory_order_acquire);
    out->journal_backlog = written - applied;
    int64_t behind = sk_store_monotonic_usec() -
                     atomic_load_explicit(&applier->caught_up_usec, memory_order_relaxed);
    out->journal_lag_usec = out->journal_backlog != 0 && behind > 0 ? (uint64_t)behind : 0;
}

int sk_log_applier_stop(sk_log_applier_t *applier)
{
    pthread_mutex_lock(&applier->lock);
    applier->stopping = 1;
    pthread_cond_signal(&applier->wakeup);
    while (!applier->stopped)
        pthread_cond_wait(&applier->stopped_changed, &applier->lock);
    int status = applier->stop_status;
    pthread_mutex_unlock(&applier->lock);
    if (applier->thread_started) {
        pthread_join(applier->thread, NULL);
        applier->thread_started = 0;
    }
    return status;
}

void sk_log_applier_destroy(sk_log_applier_t *applier)
{
    if (applier == NULL)
        return;
    if (applier->thread_started)
        sk_log_applier_stop(applier);
    for (slot_t *slot = applier->slots, *next; slot != NULL; slot = next) {
        next = slot->next;
        free_slot(slot);
    }
    entries_dispose(&applier->entries);
    pthread_cond_destroy(&applier->stopped_changed);
    pthread_cond_destroy(&applier->wakeup);
    pthread_mutex_destroy(&applier->lock);
    free(applier->dir);
    free(applier);
}

/* ---- recovery ---- */

/* Reads the whole file at `path` into *bytes (free it); 0 or SK_EIO / SK_ENOMEM. */
static int read_file(const char *path, char **bytes, size_t *len)
{
    *bytes = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat info;
    if (fd < 0 || fstat(fd, &info) != 0) {
        sk_log(SK_LOG_ERROR, "applier", "open(%s) failed: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return SK_EIO;
    }
    size_t size = (size_t)info.st_size;
    *bytes = malloc(size ? size : 1);
    int status = *bytes == NULL ? SK_ENOMEM : 0;
    size_t done = 0;
    while (status == 0 && done < size) {
        ssize_t n = read(fd, *bytes + done, size - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            sk_log(SK_LOG_ERROR, "applier", "read(%s) failed: %s", path, strerror(errno));
            status = SK_EIO;
        }
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    close(fd);
    if (status != 0) {
        free(*bytes);
        *bytes = NULL;
        return status;
    }
    *len = done;
    return 0;
}

/* Applies one segment's valid records in transactions of RECOVERY_BATCH; sets *next_sequence
 * to the one after the last applied and *applied to their count. */
static int recover_segment(sk_journal_t *journal, const char *dir, const sk_grant_log_file_t *file,
                           uint64_t limit_sequence, entries_t *entries, uint64_t *next_sequence,
                           size_t *applied)
{
    *next_sequence = file->first_sequence;
    *applied = 0;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, file->name);
    char *bytes;
    size_t len;
    int status = read_file(path, &bytes, &len);
    if (status != 0)
        return status;
    size_t offset = 0;
    sk_grant_log_stop_t stop = SK_GRANT_LOG_END;
    entries->limit = RECOVERY_BATCH;
    do {
        entries->count = 0;
        offset += sk_grant_log_parse(bytes + offset, len - offset, next_sequence, limit_sequence,
                                     append_entry, entries, &stop);
        if (stop == SK_GRANT_LOG_CALLBACK && entries->count == 0) {
            status = SK_ENOMEM;
            break;
        }
        status = apply_entries(journal, entries, NULL);
        *applied += entries->count;
    } while (status == 0 && stop == SK_GRANT_LOG_CALLBACK);
    entries->limit = 0;
    if (status == 0 && offset != len)
        sk_log(SK_LOG_WARN, "applier", "%s: %zu bytes dropped after %zu records: %s", path,
               len - offset, *applied, stop_reason(stop));
    free(bytes);
    return status;
}

int sk_log_applier_recover(sk_journal_t *journal, const char *dir)
{
    sk_grant_log_file_t *files;
    size_t count;
    int status = sk_grant_log_list(dir, &files, &count);
    if (status != 0 || count == 0)
        return status;
    entries_t entries;
    memset(&entries, 0, sizeof(entries));
    size_t total = 0;
    uint64_t expected = 0;
    for (size_t i = 0; i != count && status == 0; ++i) {
        const sk_grant_log_file_t *file = &files[i];
        int same_writer_next = i + 1 != count && files[i + 1].writer_id == file->writer_id;
        int same_writer_before = i != 0 && files[i - 1].writer_id == file->writer_id;
        /* A gap: records that should be there are not (a segment deleted by hand?). */
        if (same_writer_before && expected != file->first_sequence)
            sk_log(SK_LOG_WARN, "applier",
                   "%s/%s: records %" PRIu64 " to %" PRIu64 " of writer %u are missing", dir,
                   file->name, expected, file->first_sequence - 1, file->writer_id);
        size_t applied = 0;
        status = recover_segment(journal, dir, file,
                                 same_writer_next ? files[i + 1].first_sequence : UINT64_MAX,
                                 &entries, &expected, &applied);
        total += applied;
    }
    entries_dispose(&entries);
    /* Deleted only once everything is in SQLite: a crash before this replays them. */
    for (size_t i = 0; i != count && status == 0; ++i) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s", dir, files[i].name);
        if (unlink(path) != 0) {
            sk_log(SK_LOG_ERROR, "applier", "unlink(%s) failed: %s", path, strerror(errno));
            status = SK_EIO;
        }
    }
    if (status == 0)
        sk_log(SK_LOG_INFO, "applier", "applied %zu changes from %zu log segments in %s", total,
               count, dir);
    free(files);
    return status;
}
