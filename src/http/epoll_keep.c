/*
 * Lazy epoll deregistration (see epoll_keep.h). The kernel-side data of every registration
 * on a thread's loop is the fd; epoll_wait translates it back to h2o's pointer.
 */
#include "http/epoll_keep.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "http/interpose.h"
#include "util/log.h"

typedef struct polled_fd {
    void *h2o_data;         /* what h2o registered as data.ptr */
    uint32_t kernel_events; /* what the kernel has; 0 = not registered */
    uint8_t kept;           /* h2o asked to remove it; the kernel still has it */
} polled_fd_t;

static __thread struct {
    int epfd; /* the thread's loop; -1 = none yet */
    polled_fd_t *entries;
    size_t size;
    size_t registered; /* entries with kernel_events != 0 */
} polled = {-1, NULL, 0, 0};

typedef int (*epoll_ctl_fn)(int, int, int, struct epoll_event *);
typedef int (*epoll_wait_fn)(int, struct epoll_event *, int, int);
typedef int (*close_fn)(int);

static epoll_ctl_fn real_epoll_ctl(void)
{
    static _Atomic(void *) cache;
    return (epoll_ctl_fn)sk_interpose_next(&cache, "epoll_ctl");
}

/* Records what the kernel now has for `entry`, keeping polled.registered true. */
static void set_kernel_events(polled_fd_t *entry, uint32_t events)
{
    polled.registered += (events != 0) - (entry->kernel_events != 0);
    entry->kernel_events = events;
    if (events == 0)
        entry->kept = 0;
}

/* A thread that ends (unit tests end theirs; production's workers stay parked) frees its
 * table: the key's destructor runs in that thread, where `polled` is still its own. */
static pthread_key_t table_key;
static pthread_once_t table_key_once = PTHREAD_ONCE_INIT;

static void free_table(void *entries)
{
    free(entries);
    polled.entries = NULL;
    polled.size = 0;
    polled.registered = 0;
    polled.epfd = -1;
}

static void create_table_key(void)
{
    if (pthread_key_create(&table_key, free_table) != 0) {
        sk_log(SK_LOG_ERROR, "http", "pthread_key_create failed for the epoll table");
        abort();
    }
}

static polled_fd_t *polled_entry(int fd)
{
    if ((size_t)fd >= polled.size) {
        pthread_once(&table_key_once, create_table_key);
        size_t size = polled.size ? polled.size : 1024;
        while (size <= (size_t)fd)
            size *= 2;
        polled_fd_t *grown = realloc(polled.entries, size * sizeof(*grown));
        if (grown == NULL) {
            sk_log(SK_LOG_ERROR, "http", "out of memory tracking epoll registrations");
            abort();
        }
        memset(grown + polled.size, 0, (size - polled.size) * sizeof(*grown));
        polled.entries = grown;
        polled.size = size;
        pthread_setspecific(table_key, grown);
    }
    return &polled.entries[fd];
}

int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
{
    /* h2o 2.2.5 never closes a destroyed loop's epoll fd, so "the thread's loop" cannot
     * wait for a close: a thread's next loop (unit tests make one per test) takes over once
     * the table holds nothing, i.e. every socket of the last one was closed. */
    if (epfd != polled.epfd && polled.registered == 0)
        polled.epfd = epfd;
    if (epfd != polled.epfd || fd < 0)
        return real_epoll_ctl()(epfd, op, fd, event);
    polled_fd_t *entry = polled_entry(fd);
    if (op == EPOLL_CTL_DEL) {
        if (entry->kernel_events == 0)
            return real_epoll_ctl()(epfd, op, fd, event); /* let the kernel answer */
        entry->kept = 1;
        return 0;
    }
    if (op != EPOLL_CTL_ADD && op != EPOLL_CTL_MOD)
        return real_epoll_ctl()(epfd, op, fd, event);
    uint32_t wanted = event->events;
    entry->h2o_data = event->data.ptr;
    entry->kept = 0;
    if (entry->kernel_events == wanted)
        return 0;
    struct epoll_event registration = {.events = wanted, .data = {.u64 = (uint64_t)fd}};
    int real_op = entry->kernel_events != 0 ? EPOLL_CTL_MOD : op;
    int result = real_epoll_ctl()(epfd, real_op, fd, &registration);
    if (result == 0)
        set_kernel_events(entry, wanted);
    return result;
}

int epoll_wait(int epfd, struct epoll_event *events, int max_events, int timeout)
{
    static _Atomic(void *) cache;
    epoll_wait_fn real_wait = (epoll_wait_fn)sk_interpose_next(&cache, "epoll_wait");
    int count = real_wait(epfd, events, max_events, timeout);
    if (count <= 0 || epfd != polled.epfd)
        return count;
    int passed = 0;
    for (int i = 0; i != count; ++i) {
        int fd = (int)events[i].data.u64;
        polled_fd_t *entry = (size_t)fd < polled.size ? &polled.entries[fd] : NULL;
        if (entry == NULL || entry->kernel_events == 0)
            continue; /* cannot happen: every registration went through epoll_ctl above */
        if (entry->kept) {
            real_epoll_ctl()(epfd, EPOLL_CTL_DEL, fd, NULL);
            set_kernel_events(entry, 0);
            continue;
        }
        events[passed].events = events[i].events;
        events[passed].data.ptr = entry->h2o_data;
        ++passed;
    }
    return passed;
}

int close(int fd)
{
    static _Atomic(void *) cache;
    close_fn real_close = (close_fn)sk_interpose_next(&cache, "close");
    if (fd >= 0 && (size_t)fd < polled.size) {
        polled_fd_t *entry = &polled.entries[fd];
        if (entry->kept && entry->kernel_events != 0)
            real_epoll_ctl()(polled.epfd, EPOLL_CTL_DEL, fd, NULL);
        set_kernel_events(entry, 0);
    }
    if (fd == polled.epfd) {
        /* The loop goes, and every registration with it: a loop this thread makes next
         * (unit tests make many) starts from an empty table, not from the old one's. */
        if (polled.size != 0)
            memset(polled.entries, 0, polled.size * sizeof(*polled.entries));
        polled.registered = 0;
        polled.epfd = -1;
    }
    return real_close(fd);
}
