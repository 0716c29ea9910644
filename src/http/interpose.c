/*
 * The lookup of an interposed function's next definition (see interpose.h).
 */
#include "http/interpose.h"

#include <dlfcn.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "util/log.h"

/*
 * Every worker thread comes through here, and two may arrive first at once: both look the
 * function up and store the same pointer. That is harmless only if the slot is atomic; with
 * a plain static it is a data race (undefined behaviour, and ThreadSanitizer reports it).
 * Relaxed ordering is enough: the pointer leads to code, not to data that another thread
 * wrote. On x86-64 a relaxed load is a plain load, so the hot path (epoll_wait, epoll_ctl)
 * pays nothing.
 */
void *sk_interpose_next(_Atomic(void *) *cache, const char *name)
{
    void *function = atomic_load_explicit(cache, memory_order_relaxed);
    if (function != NULL)
        return function;
    function = dlsym(RTLD_NEXT, name);
    if (function == NULL) {
        sk_log(SK_LOG_ERROR, "http", "dlsym(%s) failed: %s", name, dlerror());
        abort();
    }
    atomic_store_explicit(cache, function, memory_order_relaxed);
    return function;
}
