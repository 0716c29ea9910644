/*
 * The grant log (see grant_log.h): how the embedded store makes a change durable without
 * SQLite on the hot path, and how it finds it again after a crash.
 *
 * Why. Committing every grant through one journal thread into SQLite cost about 5 us of CPU
 * per grant more than a 204, and the B-tree insert grew with the table (DESIGN.md,
 * bench/NOTES.md). An append to a file the worker owns costs a memcpy and a share of one
 * write(2) per loop turn, and nothing about it grows with the sale.
 *
 * Files. One directory beside the database, `seckill.db-log/`. Each worker thread has its
 * own writer, numbered in the order the threads were made, and writes only its own segment
 * files, `WWWW-SSSSSSSSSSSSSSSSSSSS.log`: W the writer's number, S the sequence number of the
 * segment's first record, both zero-padded decimal, so that a sorted listing is in log order
 * and a name says where its sequence starts. A segment is closed at the first write after it
 * reached 32 MiB or became one second old (the applier deletes only closed segments, so a
 * segment's age bounds what a restart replays twice), and after a write that failed.
 *
 * Records. All integers little-endian:
 *
 *     u32 checksum   CRC-32 (zlib's) of the 12 header bytes after it and of the payload
 *     u32 length     of the payload in bytes
 *     u64 sequence   the writer's record number: 1, 2, 3, ... in order across its segments
 *     payload        u8 kind, then the kind's fields:
 *                    user    (1): i64 id, i64 created_at, u8 kind (0 customer, 1 seller),
 *                                 str username, str password_hash
 *                    coupon  (2): i64 id, amount, stock, start_at, end_at, created_at,
 *                                 str seller, str name, str description
 *                    grant   (3): i64 id, i64 coupon_id, i64 granted_at,
 *                                 str customer, str seller, str coupon
 *                    revoke  (4): i64 expires_at, str jti
 *                    where str is u16 length, the bytes, and a NUL (so that a decoded hash
 *                    or token id is a C string in place; a description may hold NULs, its
 *                    length says where it ends). Absent sale-window bounds are INT64_MIN.
 *
 * Writing. A worker appends the records of one loop turn to a buffer and, at the end of the
 * turn, writes them with one pwrite(2) at the segment's end (with --sync-commits 1, then
 * fdatasync): only then does it answer them. After the write returned, a kill -9 loses
 * nothing (the page cache has it); after fdatasync, a power loss neither. A write that fails
 * (a full disk) fails every change of the turn: the store undoes them in memory and answers
 * 503, and the log must not keep any of them, so what a partial write left is cut off with
 * ftruncate. Should that fail too, the segment ends there and the next one begins at the
 * failed records' sequence numbers, which the next records use again: a later segment's
 * first sequence voids every record at or past it in the earlier ones.
 *
 * Recovery (log_applier.c, at start, before memory is loaded from SQLite). Each writer's
 * segments are read in order. A segment's valid part ends before the first record that runs
 * past the end of the file, whose checksum does not match, whose sequence is not the next
 * one, or that is voided by the next segment's name. What follows is dropped with a warning
 * naming the file and the bytes: a torn tail, a write cut off by a crash or a power loss.
 * No answered change is ever in it, since answers go out only after the whole write
 * returned (and, with --sync-commits 1, after fdatasync). The valid records are applied to
 * SQLite, then the segments are deleted, then the memory is loaded from SQLite.
 *
 * The applier (log_applier.c) is a background thread at a lower priority than the workers.
 * Every 100 ms it reads what each writer has written since (the writer publishes each
 * segment's end after every write, so the applier never meets a half-written record),
 * sorts the grants by key (coupon, then customer: the order of the grants table's primary
 * key, so that inserts walk the B-tree instead of jumping around it) and applies everything
 * in one transaction. Closed segments it has applied are deleted.
 *
 * Ordering. Users, coupons and revocations go into the same logs as grants, each into the
 * log of the worker that made the change, in its turn's one write. Their order across
 * workers is not recorded and need not be: a user or coupon becomes visible only after its
 * record was written, so any grant that names it was written later, and applying is
 * independent of order anyway. Every insert is INSERT OR IGNORE (a replay after a crash
 * finds its rows there and changes nothing); a grant takes one from its coupon's
 * `remaining` only when its row was actually inserted; and a coupon row inserted after some
 * of its grants starts at amount minus the grants already there. Expired revocations are
 * pruned by the applier between transactions, after recovery at start.
 */
#include "store/local/grant_log.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "util/error.h"
#include "util/log.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "the grant log's records are written in host byte order, little-endian");

enum { KIND_USER = 1, KIND_COUPON = 2, KIND_GRANT = 3, KIND_REVOKE = 4 };

/* No record comes near this; a larger length is corruption, not a record to wait for. */
#define MAX_PAYLOAD (1u << 20)

struct sk_grant_log_writer {
    char *dir;
    unsigned id;
    sk_grant_log_options_t options;
    int fd;     /* the current segment's, -1 before the first write or after one ended it */
    int dir_fd; /* with sync_commits: fsynced after a segment file is made */
    uint64_t segment_bytes; /* whole written records in the current segment */
    int64_t segment_started_ms;
    uint64_t next_sequence; /* of the next record appended */
    uint64_t turn_sequence; /* of the first record since the last flush */
    char *buffer;
    size_t used, capacity, pending;
    pthread_mutex_t lock;
    sk_grant_log_segment_t *first;   /* guarded by lock */
    sk_grant_log_segment_t *current; /* the last one, written by this writer; NULL if ended */
    _Atomic int closed;
};

static _Atomic int injected_failures;

void sk_grant_log__fail_flushes(int count)
{
    atomic_store(&injected_failures, count);
}

static int take_injected_failure(void)
{
    int left = atomic_load_explicit(&injected_failures, memory_order_relaxed);
    while (left > 0) {
        if (atomic_compare_exchange_weak(&injected_failures, &left, left - 1))
            return 1;
    }
    return 0;
}

/* ---- encoding ---- */

static size_t string_size(h2o_iovec_t text)
{
    return 2 + text.len + 1;
}

static char *put_u8(char *out, uint8_t value)
{
    *out = (char)value;
    return out + 1;
}

static char *put_i64(char *out, int64_t value)
{
    memcpy(out, &value, 8);
    return out + 8;
}

static char *put_string(char *out, h2o_iovec_t text)
{
    uint16_t len = (uint16_t)text.len;
    memcpy(out, &len, 2);
    memcpy(out + 2, text.base, text.len);
    out[2 + text.len] = '\0';
    return out + string_size(text);
}

static h2o_iovec_t c_string(const char *text)
{
    return h2o_iovec_init(text, strlen(text));
}

/* The payload's size, or 0 when `entry` has no record or a string too long for one. */
static size_t payload_size(const sk_journal_entry_t *entry)
{
    h2o_iovec_t strings[3];
    size_t count, size;
    switch (entry->kind) {
    case SK_JOURNAL_USER:
        strings[0] = entry->u.user.username;
        strings[1] = c_string(entry->u.user.password_hash);
        count = 2, size = 1 + 8 + 8 + 1;
        break;
    case SK_JOURNAL_COUPON:
        strings[0] = entry->u.coupon.seller;
        strings[1] = entry->u.coupon.name;
        strings[2] = entry->u.coupon.description;
        count = 3, size = 1 + 6 * 8;
        break;
    case SK_JOURNAL_GRANT:
        strings[0] = entry->u.grant.customer;
        strings[1] = entry->u.grant.seller;
        strings[2] = entry->u.grant.coupon;
        count = 3, size = 1 + 3 * 8;
        break;
    case SK_JOURNAL_REVOKE:
        strings[0] = c_string(entry->u.revoke.jti);
        count = 1, size = 1 + 8;
        break;
    default:
        return 0;
    }
    for (size_t i = 0; i != count; ++i) {
        if (strings[i].len > UINT16_MAX)
            return 0;
        size += string_size(strings[i]);
    }
    return size;
}

static void encode_payload(char *out, const sk_journal_entry_t *entry)
{
    switch (entry->kind) {
    case SK_JOURNAL_USER:
        out = put_u8(out, KIND_USER);
        out = put_i64(out, entry->u.user.id);
        out = put_i64(out, entry->u.user.created_at);
        out = put_u8(out, entry->u.user.kind == SK_USER_SELLER ? 1 : 0);
        out = put_string(out, entry->u.user.username);
        put_string(out, c_string(entry->u.user.password_hash));
        break;
    case SK_JOURNAL_COUPON:
        out = put_u8(out, KIND_COUPON);
        out = put_i64(out, entry->u.coupon.id);
        out = put_i64(out, entry->u.coupon.amount);
        out = put_i64(out, entry->u.coupon.stock);
        out = put_i64(out, entry->u.coupon.start_at);
        out = put_i64(out, entry->u.coupon.end_at);
        out = put_i64(out, entry->u.coupon.created_at);
        out = put_string(out, entry->u.coupon.seller);
        out = put_string(out, entry->u.coupon.name);
        put_string(out, entry->u.coupon.description);
        break;
    case SK_JOURNAL_GRANT:
        out = put_u8(out, KIND_GRANT);
        out = put_i64(out, entry->u.grant.id);
        out = put_i64(out, entry->u.grant.coupon_id);
        out = put_i64(out, entry->u.grant.granted_at);
        out = put_string(out, entry->u.grant.customer);
        out = put_string(out, entry->u.grant.seller);
        put_string(out, entry->u.grant.coupon);
        break;
    default:
        out = put_u8(out, KIND_REVOKE);
        out = put_i64(out, entry->u.revoke.expires_at);
        put_string(out, c_string(entry->u.revoke.jti));
        break;
    }
}

/* The checksum covers everything after its own four bytes. */
static uint32_t record_checksum(const char *record, size_t payload_len)
{
    uLong crc = crc32(0L, Z_NULL, 0);
    return (uint32_t)crc32(crc, (const Bytef *)record + 4, (uInt)(12 + payload_len));
}

int sk_grant_log_writer_append(sk_grant_log_writer_t *writer, const sk_journal_entry_t *entry)
{
    size_t payload = payload_size(entry);
    if (payload == 0)
        return SK_EINVAL;
    size_t size = SK_GRANT_LOG_HEADER_SIZE + payload;
    if (writer->used + size > writer->capacity) {
        size_t capacity = writer->capacity ? writer->capacity : 16384;
        while (capacity < writer->used + size)
            capacity *= 2;
        char *grown = realloc(writer->buffer, capacity);
        if (grown == NULL)
            return SK_ENOMEM;
        writer->buffer = grown;
        writer->capacity = capacity;
    }
    char *record = writer->buffer + writer->used;
    uint32_t length = (uint32_t)payload;
    uint64_t sequence = writer->next_sequence;
    memcpy(record + 4, &length, 4);
    memcpy(record + 8, &sequence, 8);
    encode_payload(record + SK_GRANT_LOG_HEADER_SIZE, entry);
    uint32_t checksum = record_checksum(record, payload);
    memcpy(record, &checksum, 4);
    writer->used += size;
    writer->pending++;
    writer->next_sequence++;
    return 0;
}

size_t sk_grant_log_writer_pending(const sk_grant_log_writer_t *writer)
{
    return writer->pending;
}

/* ---- decoding ---- */

typedef struct cursor {
    const char *at, *end;
    int bad;
} cursor_t;

static int64_t get_i64(cursor_t *in)
{
    int64_t value = 0;
    if (in->end - in->at < 8) {
        in->bad = 1;
        return 0;
    }
    memcpy(&value, in->at, 8);
    in->at += 8;
    return value;
}

static uint8_t get_u8(cursor_t *in)
{
    if (in->at == in->end) {
        in->bad = 1;
        return 0;
    }
    return (uint8_t)*in->at++;
}

static h2o_iovec_t get_string(cursor_t *in)
{
    uint16_t len;
    if (in->end - in->at < 2) {
        in->bad = 1;
        return h2o_iovec_init(NULL, 0);
    }
    memcpy(&len, in->at, 2);
    if ((size_t)(in->end - in->at) < 2 + (size_t)len + 1 || in->at[2 + len] != '\0') {
        in->bad = 1;
        return h2o_iovec_init(NULL, 0);
    }
    h2o_iovec_t text = h2o_iovec_init(in->at + 2, len);
    in->at += 2 + (size_t)len + 1;
    return text;
}

/* Fills `entry` from one payload; 0, or SK_EINVAL when it is not a well-formed record. */
static int decode_payload(const char *payload, size_t len, sk_journal_entry_t *entry)
{
    cursor_t in = {payload, payload + len, 0};
    memset(entry, 0, sizeof(*entry));
    switch (get_u8(&in)) {
    case KIND_USER:
        entry->kind = SK_JOURNAL_USER;
        entry->u.user.id = get_i64(&in);
        entry->u.user.created_at = get_i64(&in);
        entry->u.user.kind = get_u8(&in) == 1 ? SK_USER_SELLER : SK_USER_CUSTOMER;
        entry->u.user.username = get_string(&in);
        entry->u.user.password_hash = get_string(&in).base;
        break;
    case KIND_COUPON:
        entry->kind = SK_JOURNAL_COUPON;
        entry->u.coupon.id = get_i64(&in);
        entry->u.coupon.amount = get_i64(&in);
        entry->u.coupon.stock = get_i64(&in);
        entry->u.coupon.start_at = get_i64(&in);
        entry->u.coupon.end_at = get_i64(&in);
        entry->u.coupon.created_at = get_i64(&in);
        entry->u.coupon.seller = get_string(&in);
        entry->u.coupon.name = get_string(&in);
        entry->u.coupon.description = get_string(&in);
        break;
    case KIND_GRANT:
        entry->kind = SK_JOURNAL_GRANT;
        entry->u.grant.id = get_i64(&in);
        entry->u.grant.coupon_id = get_i64(&in);
        entry->u.grant.granted_at = get_i64(&in);
        entry->u.grant.customer = get_string(&in);
        entry->u.grant.seller = get_string(&in);
        entry->u.grant.coupon = get_string(&in);
        break;
    case KIND_REVOKE:
        entry->kind = SK_JOURNAL_REVOKE;
        entry->u.revoke.expires_at = get_i64(&in);
        entry->u.revoke.jti = get_string(&in).base;
        break;
    default:
        return SK_EINVAL;
    }
    return in.bad || in.at != in.end ? SK_EINVAL : 0;
}

size_t sk_grant_log_parse(const char *bytes, size_t len, uint64_t *next_sequence,
                          uint64_t limit_sequence,
                          int (*on_entry)(void *data, sk_journal_entry_t *entry), void *data,
                          sk_grant_log_stop_t *stop)
{
    size_t offset = 0;
    *stop = SK_GRANT_LOG_END;
    while (offset != len) {
        const char *record = bytes + offset;
        uint32_t checksum, length;
        uint64_t sequence;
        if (len - offset < SK_GRANT_LOG_HEADER_SIZE) {
            *stop = SK_GRANT_LOG_INCOMPLETE;
            break;
        }
        memcpy(&checksum, record, 4);
        memcpy(&length, record + 4, 4);
        memcpy(&sequence, record + 8, 8);
        if (length > MAX_PAYLOAD) {
            *stop = SK_GRANT_LOG_CORRUPT;
            break;
        }
        if (len - offset - SK_GRANT_LOG_HEADER_SIZE < length) {
            *stop = SK_GRANT_LOG_INCOMPLETE;
            break;
        }
        sk_journal_entry_t entry;
        if (record_checksum(record, length) != checksum ||
            decode_payload(record + SK_GRANT_LOG_HEADER_SIZE, length, &entry) != 0) {
            *stop = SK_GRANT_LOG_CORRUPT;
            break;
        }
        if (sequence != *next_sequence) {
            *stop = SK_GRANT_LOG_SEQUENCE;
            break;
        }
        if (sequence >= limit_sequence) {
            *stop = SK_GRANT_LOG_LIMIT;
            break;
        }
        if (on_entry(data, &entry) != 0) {
            *stop = SK_GRANT_LOG_CALLBACK;
            break;
        }
        offset += SK_GRANT_LOG_HEADER_SIZE + length;
        ++*next_sequence;
    }
    return offset;
}

/* ---- the writer ---- */

sk_grant_log_writer_t *sk_grant_log_writer_create(const char *dir, unsigned writer_id,
                                                  const sk_grant_log_options_t *options)
{
    if (writer_id > 9999) {
        sk_log(SK_LOG_ERROR, "grant_log", "writer number %u has more than 4 digits", writer_id);
        return NULL;
    }
    sk_grant_log_writer_t *writer = calloc(1, sizeof(*writer));
    if (writer == NULL)
        return NULL;
    writer->dir = strdup(dir);
    if (writer->dir == NULL) {
        free(writer);
        return NULL;
    }
    writer->id = writer_id;
    writer->options = *options;
    writer->fd = -1;
    writer->dir_fd = -1;
    writer->next_sequence = writer->turn_sequence = 1;
    pthread_mutex_init(&writer->lock, NULL);
    if (options->sync_commits) {
        writer->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (writer->dir_fd < 0) {
            sk_log(SK_LOG_ERROR, "grant_log", "open(%s) failed: %s", dir, strerror(errno));
            sk_grant_log_writer_destroy(writer);
            return NULL;
        }
    }
    return writer;
}

/* Ends the current segment where its whole records end; the next flush starts another. */
static void finish_segment(sk_grant_log_writer_t *writer)
{
    if (writer->fd >= 0) {
        close(writer->fd);
        writer->fd = -1;
    }
    if (writer->current != NULL) {
        atomic_store_explicit(&writer->current->finished, 1, memory_order_release);
        writer->current = NULL;
    }
}

/* Makes the segment whose first record is the next to write, and lists it for the reader. */
static int start_segment(sk_grant_log_writer_t *writer, int64_t now_ms)
{
    sk_grant_log_segment_t *segment = calloc(1, sizeof(*segment));
    if (segment == NULL)
        return SK_ENOMEM;
    segment->first_sequence = writer->turn_sequence;
    snprintf(segment->name, sizeof(segment->name), "%04u-%020" PRIu64 ".log", writer->id,
             segment->first_sequence);
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", writer->dir, segment->name);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        sk_log(SK_LOG_ERROR, "grant_log", "open(%s) failed: %s", path, strerror(errno));
        free(segment);
        return SK_EIO;
    }
    /* A new file's name is in the directory, not in the file: without this a power loss
     * could lose the whole segment however often its data was synced. */
    if (writer->dir_fd >= 0 && fsync(writer->dir_fd) != 0) {
        sk_log(SK_LOG_ERROR, "grant_log", "fsync(%s) failed: %s", writer->dir, strerror(errno));
        close(fd);
        unlink(path);
        free(segment);
        return SK_EIO;
    }
    writer->fd = fd;
    writer->segment_bytes = 0;
    writer->segment_started_ms = now_ms;
    pthread_mutex_lock(&writer->lock);
    sk_grant_log_segment_t **link = &writer->first;
    while (*link != NULL)
        link = &(*link)->next;
    *link = segment;
    pthread_mutex_unlock(&writer->lock);
    writer->current = segment;
    return 0;
}

/* Writes the buffer at the segment's end; on failure, takes back what got written. */
static int write_turn(sk_grant_log_writer_t *writer, int64_t now_ms)
{
    size_t goal = writer->used, done = 0;
    int injected = take_injected_failure(), error = 0;
    if (injected)
        goal /= 2;
    while (done < goal) {
        ssize_t n = pwrite(writer->fd, writer->buffer + done, goal - done,
                           (off_t)(writer->segment_bytes + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            error = n < 0 ? errno : EIO;
            break;
        }
        done += (size_t)n;
    }
    if (error == 0 && injected)
        error = ENOSPC;
    int synced = 1;
    if (error == 0 && writer->options.sync_commits && fdatasync(writer->fd) != 0) {
        error = errno;
        synced = 0;
    }
    if (error == 0)
        return 0;

    sk_log(SK_LOG_ERROR, "grant_log", "%s(%s/%s) failed: %s; %zu changes not written",
           synced ? "pwrite" : "fdatasync", writer->dir, writer->current->name, strerror(error),
           writer->pending);
    int truncated = ftruncate(writer->fd, (off_t)writer->segment_bytes) == 0;
    if (!truncated)
        sk_log(SK_LOG_ERROR, "grant_log", "ftruncate(%s/%s) failed: %s", writer->dir,
               writer->current->name, strerror(errno));
    /* After a failed fdatasync the file's state is the kernel's guess: start afresh. A new
     * segment named by the failed records' first sequence also voids whatever of them a
     * failed ftruncate left behind; if it cannot be made now, the next flush tries. */
    if (!truncated || !synced) {
        finish_segment(writer);
        start_segment(writer, now_ms);
    }
    return SK_EIO;
}

int sk_grant_log_writer_flush(sk_grant_log_writer_t *writer, int64_t now_ms)
{
    if (writer->pending == 0)
        return 0;
    int status = 0;
    if (writer->fd >= 0 && (writer->segment_bytes >= writer->options.segment_bytes ||
                            (writer->segment_bytes != 0 &&
                             now_ms - writer->segment_started_ms >= writer->options.segment_ms)))
        finish_segment(writer);
    if (writer->fd < 0)
        status = start_segment(writer, now_ms);
    if (status == 0)
        status = write_turn(writer, now_ms);
    if (status == 0) {
        writer->segment_bytes += writer->used;
        /* Counted before the reader can see them, so that it never applies more than were
         * counted as written. */
        if (writer->options.written != NULL)
            atomic_fetch_add_explicit(writer->options.written, writer->pending,
                                      memory_order_relaxed);
        atomic_store_explicit(&writer->current->end, writer->segment_bytes, memory_order_release);
        writer->turn_sequence = writer->next_sequence;
    } else {
        writer->next_sequence = writer->turn_sequence;
        status = SK_EIO;
    }
    writer->used = 0;
    writer->pending = 0;
    return status;
}

void sk_grant_log_writer_close(sk_grant_log_writer_t *writer)
{
    pthread_mutex_lock(&writer->lock);
    finish_segment(writer);
    atomic_store_explicit(&writer->closed, 1, memory_order_release);
    pthread_mutex_unlock(&writer->lock);
    writer->used = 0;
    writer->pending = 0;
}

int sk_grant_log_writer_closed(sk_grant_log_writer_t *writer)
{
    return atomic_load_explicit(&writer->closed, memory_order_acquire);
}

sk_grant_log_segment_t *sk_grant_log_writer_first_segment(sk_grant_log_writer_t *writer)
{
    pthread_mutex_lock(&writer->lock);
    sk_grant_log_segment_t *first = writer->first;
    pthread_mutex_unlock(&writer->lock);
    return first;
}

void sk_grant_log_writer_pop_segment(sk_grant_log_writer_t *writer)
{
    pthread_mutex_lock(&writer->lock);
    sk_grant_log_segment_t *first = writer->first;
    assert(first != NULL && atomic_load(&first->finished) && "popping an open segment");
    writer->first = first->next;
    pthread_mutex_unlock(&writer->lock);
    free(first);
}

void sk_grant_log_writer_destroy(sk_grant_log_writer_t *writer)
{
    if (writer == NULL)
        return;
    if (writer->fd >= 0)
        close(writer->fd);
    if (writer->dir_fd >= 0)
        close(writer->dir_fd);
    for (sk_grant_log_segment_t *segment = writer->first, *next; segment != NULL; segment = next) {
        next = segment->next;
        free(segment);
    }
    pthread_mutex_destroy(&writer->lock);
    free(writer->buffer);
    free(writer->dir);
    free(writer);
}

/* ---- listing ---- */

/* Parses "WWWW-SSSSSSSSSSSSSSSSSSSS.log"; 0, or -1 for any other name. */
static int parse_name(const char *name, sk_grant_log_file_t *file)
{
    if (strlen(name) != SK_GRANT_LOG_NAME_SIZE - 1 || name[4] != '-' ||
        strcmp(name + 25, ".log") != 0)
        return -1;
    unsigned writer_id = 0;
    uint64_t sequence = 0;
    for (int i = 0; i != 25; ++i) {
        if (i == 4)
            continue;
        if (name[i] < '0' || name[i] > '9')
            return -1;
        unsigned digit = (unsigned)(name[i] - '0');
        if (i < 4) {
            writer_id = writer_id * 10 + digit;
        } else {
            if (sequence > (UINT64_MAX - digit) / 10)
                return -1;
            sequence = sequence * 10 + digit;
        }
    }
    file->writer_id = writer_id;
    file->first_sequence = sequence;
    memcpy(file->name, name, SK_GRANT_LOG_NAME_SIZE);
    return 0;
}

static int compare_files(const void *a, const void *b)
{
    const sk_grant_log_file_t *x = a, *y = b;
    if (x->writer_id != y->writer_id)
        return x->writer_id < y->writer_id ? -1 : 1;
    if (x->first_sequence != y->first_sequence)
        return x->first_sequence < y->first_sequence ? -1 : 1;
    return 0;
}

int sk_grant_log_list(const char *dir, sk_grant_log_file_t **files, size_t *count)
{
    *files = NULL;
    *count = 0;
    DIR *listing = opendir(dir);
    if (listing == NULL) {
        sk_log(SK_LOG_ERROR, "grant_log", "opendir(%s) failed: %s", dir, strerror(errno));
        return SK_EIO;
    }
    size_t capacity = 0;
    int status = 0;
    struct dirent *item;
    while ((item = readdir(listing)) != NULL) {
        sk_grant_log_file_t file;
        if (parse_name(item->d_name, &file) != 0)
            continue;
        if (*count == capacity) {
            capacity = capacity ? capacity * 2 : 16;
            sk_grant_log_file_t *grown = realloc(*files, capacity * sizeof(*grown));
            if (grown == NULL) {
                status = SK_ENOMEM;
                break;
            }
            *files = grown;
        }
        (*files)[(*count)++] = file;
    }
    closedir(listing);
    if (status != 0) {
        free(*files);
        *files = NULL;
        *count = 0;
        return status;
    }
    if (*count != 0)
        qsort(*files, *count, sizeof(**files), compare_files);
    return 0;
}
