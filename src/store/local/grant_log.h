/*
 * The grant log of the embedded store: the durable record of every change (grants, users,
 * coupons, revocations), one append-only log per worker thread, written with one write(2)
 * per loop turn before the turn's answers go out. grant_log.c opens with the design: the
 * record format, segment files, sequence numbers, checksums and recovery.
 *
 * A writer belongs to one worker thread, except for its list of segments, which it shares
 * with one reader (the applier, log_applier.h) under the rules given below. Parsing and
 * listing are plain functions, safe on any thread.
 */
#ifndef SK_STORE_LOCAL_GRANT_LOG_H
#define SK_STORE_LOCAL_GRANT_LOG_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "store/local/journal.h"

/* Bytes of a record's header: checksum, payload length, sequence. */
#define SK_GRANT_LOG_HEADER_SIZE 16
/* Bytes of a segment file name ("WWWW-SSSSSSSSSSSSSSSSSSSS.log") and its NUL. */
#define SK_GRANT_LOG_NAME_SIZE 30

typedef struct sk_grant_log_writer sk_grant_log_writer_t;

typedef struct sk_grant_log_options {
    int sync_commits;       /* fdatasync after every write (and fsync the directory for a new
                             * segment): a written record then survives power loss */
    uint64_t segment_bytes; /* a segment at least this long is closed at the next write */
    int64_t segment_ms;     /* so is a non-empty one older than this */
    /* When not NULL, every successful flush adds its record count here (the applier's
     * backlog), before sk_grant_log_writer_flush returns. */
    _Atomic uint64_t *written;
} sk_grant_log_options_t;

/*
 * One segment file of a writer, as the writer shares it with its reader. The writer appends
 * segments; the reader takes them from the front once it has applied them (and deleted the
 * file). `end` grows after every successful write and only covers whole records that were
 * written; once `finished` is set (release), `end` is final. Read `finished` first, then
 * `end`, both with acquire loads.
 */
typedef struct sk_grant_log_segment {
    struct sk_grant_log_segment *next; /* guarded by the writer's lock */
    uint64_t first_sequence;
    _Atomic uint64_t end;
    _Atomic int finished;
    char name[SK_GRANT_LOG_NAME_SIZE];
} sk_grant_log_segment_t;

/*
 * Opens writer number `writer_id` on directory `dir`, which must exist and hold no segment of
 * that number. No file is made before the first flush. Returns NULL (logged) on failure.
 * `options` is copied.
 */
sk_grant_log_writer_t *sk_grant_log_writer_create(const char *dir, unsigned writer_id,
                                                  const sk_grant_log_options_t *options);

/*
 * Encodes `entry` (a user, coupon, grant or revocation) as the next record of the current
 * turn, in memory: no system call. Its strings are copied. Returns 0, SK_ENOMEM, or
 * SK_EINVAL for an entry that has no record (a prune) or a string too long for one.
 */
int sk_grant_log_writer_append(sk_grant_log_writer_t *writer, const sk_journal_entry_t *entry);

/* Records appended since the last flush. */
size_t sk_grant_log_writer_pending(const sk_grant_log_writer_t *writer);

/*
 * Writes every record appended since the last flush with one write(2), then fdatasync with
 * sync_commits; first closes the current segment and starts a new one when it is due by
 * size or by age (`now_ms`, any monotonic clock in ms). Returns 0 once the records are
 * in the log, or SK_EIO (logged) when they are not: the log then holds none of them (the
 * partial write is cut off again, or the segment ended before it), and their sequence
 * numbers are used again by the next records.
 */
int sk_grant_log_writer_flush(sk_grant_log_writer_t *writer, int64_t now_ms);

/*
 * The writer's last act: finishes its current segment and closes its file. Records not
 * flushed are dropped (flush first). The segment list stays readable until
 * sk_grant_log_writer_destroy, which only the reader calls once it has taken every segment.
 */
void sk_grant_log_writer_close(sk_grant_log_writer_t *writer);

/* 1 once sk_grant_log_writer_close ran. For the reader; thread-safe. */
int sk_grant_log_writer_closed(sk_grant_log_writer_t *writer);

/* The oldest segment still listed, or NULL. For the reader; thread-safe. */
sk_grant_log_segment_t *sk_grant_log_writer_first_segment(sk_grant_log_writer_t *writer);

/* Drops the oldest segment from the list and frees it; it must be finished. The reader's,
 * after it applied the segment and deleted its file. Thread-safe. */
void sk_grant_log_writer_pop_segment(sk_grant_log_writer_t *writer);

/* Frees a closed writer and every segment still listed (the files stay). */
void sk_grant_log_writer_destroy(sk_grant_log_writer_t *writer);

/* A segment file found in a directory: whose it is and where its sequence starts. */
typedef struct sk_grant_log_file {
    unsigned writer_id;
    uint64_t first_sequence;
    char name[SK_GRANT_LOG_NAME_SIZE];
} sk_grant_log_file_t;

/*
 * Lists the segment files of `dir` (other names are ignored), sorted by writer and then by
 * first sequence. On 0, *files (free it) holds *count of them. SK_EIO (logged) when the
 * directory cannot be read, SK_ENOMEM.
 */
int sk_grant_log_list(const char *dir, sk_grant_log_file_t **files, size_t *count);

/* Why sk_grant_log_parse stopped before the end of its bytes. */
typedef enum sk_grant_log_stop {
    SK_GRANT_LOG_END = 0,    /* every byte was a valid record */
    SK_GRANT_LOG_INCOMPLETE, /* the bytes end inside a record: a torn tail, or a short read */
    SK_GRANT_LOG_CORRUPT,    /* a checksum that does not match, a malformed record */
    SK_GRANT_LOG_SEQUENCE,   /* a valid record with another sequence than the next one */
    SK_GRANT_LOG_LIMIT,      /* the record at `limit_sequence` (void: see grant_log.c) */
    SK_GRANT_LOG_CALLBACK    /* on_entry returned nonzero */
} sk_grant_log_stop_t;

/*
 * Decodes the records in `bytes`, the first of which must carry sequence *next_sequence,
 * calling `on_entry` for each with an entry whose strings point into `bytes` (password
 * hashes and token ids NUL-terminated) and whose other bookkeeping fields are zero. Stops at
 * the end, or before the first record that is incomplete, corrupt, out of sequence, or at
 * or past `limit_sequence`. Returns the bytes of the records decoded; *next_sequence is then
 * the sequence after the last of them, and *stop says why it stopped.
 */
size_t sk_grant_log_parse(const char *bytes, size_t len, uint64_t *next_sequence,
                          uint64_t limit_sequence,
                          int (*on_entry)(void *data, sk_journal_entry_t *entry), void *data,
                          sk_grant_log_stop_t *stop);

/* For tests: the next `count` flushes of every writer fail as a full disk would, after
 * writing half their bytes. Thread-safe. */
void sk_grant_log__fail_flushes(int count);

#endif
