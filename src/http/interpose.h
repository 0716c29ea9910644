/*
 * The one mechanism the interposing modules share (parse_guard, bad_request, epoll_keep):
 * finding the definition their own definition hides. Each of them defines a function that
 * libh2o or libc already defines; the executable's definition wins for every caller that
 * binds through the PLT, and reaches the hidden one with dlsym(RTLD_NEXT).
 *
 * These modules are not in the sk_core archive but in the sk_interpose OBJECT library,
 * whose object files CMake puts into every executable that links sk_core (the service,
 * every unit test): an archive member is linked only when something refers to one of its
 * symbols, and nothing refers to an interposer by name, so as archive members they were
 * in some binaries and not in others.
 */
#ifndef SK_HTTP_INTERPOSE_H
#define SK_HTTP_INTERPOSE_H

/*
 * The next definition of function `name` after this executable's (dlsym(RTLD_NEXT)), looked
 * up on the first call and kept in `*cache`, a static slot of the caller's, zero at first.
 * Any thread; threads racing on the first call store the same pointer. A symbol that cannot
 * be found is logged and aborts the process: the interposer cannot do its work without it.
 */
void *sk_interpose_next(_Atomic(void *) *cache, const char *name);

#endif
