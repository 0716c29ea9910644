/*
 * Lazy epoll deregistration: epoll registrations kept while a grant waits.
 *
 * While a request waits for the store (the journal's commit, a Redis answer), h2o stops
 * reading its connection, and its evloop turns that into epoll_ctl(DEL), then
 * epoll_ctl(ADD) when the answer is sent: two system calls per grant, the most frequent
 * ones on the hot path. Here a DEL only marks the fd as kept: the registration stays, and
 * the matching ADD costs nothing. Should a kept fd report an event meanwhile (a pipelined
 * request, a client closing), that is when it is really removed, and the event is not
 * passed on, so h2o never sees an event it did not ask for. h2o 2.2.5 has no hook for any
 * of this: its evloop calls libc's epoll functions directly.
 *
 * Invariants:
 * - Interposes libc's epoll_ctl(), epoll_wait() and close() for the whole process: every
 *   caller, h2o or not, on every thread, goes through the definitions here.
 * - Per thread: the epoll fd a thread first calls epoll_ctl on is taken as that thread's
 *   h2o loop, and only its registrations are managed (a table per thread, indexed by fd,
 *   grown to the highest fd and kept for the thread's life). Calls on any other epoll fd
 *   pass straight through, unless the table holds no registration any more (every socket
 *   of the old loop closed, or its epoll fd closed): then that fd becomes the thread's
 *   loop. So a worker's loop is managed for its life, and so is each loop a unit test
 *   makes after destroying the last; a second epoll instance registered with while the
 *   loop has sockets just goes without the optimisation.
 * - An fd registered on a thread's loop is closed on that thread (h2o's sockets live on
 *   their loop's thread): close() removes a kept registration first, which matters for
 *   dup'ed descriptors (the listener) that would otherwise keep it alive, and it can only
 *   see the calling thread's table.
 * - The data h2o registers (a pointer) is kept in the table; the kernel holds the fd, and
 *   epoll_wait gives h2o back its pointer. Events of kept fds are dropped.
 * - Out of memory growing a table aborts (logged): a lost registration would hang a
 *   connection.
 * - If it is missing from a binary, everything still works, with the two system calls per
 *   waiting request back (strace -c -e trace=epoll_ctl shows them); and a loop tested
 *   without it is not the loop that runs in production, which is why it is linked into
 *   every executable (interpose.h). tests/unit/http/test_epoll_keep.c fails without it.
 *
 * This header declares nothing: the module's interface is libc's.
 */
#ifndef SK_HTTP_EPOLL_KEEP_H
#define SK_HTTP_EPOLL_KEEP_H

#endif
