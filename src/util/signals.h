/*
 * The process's stop signals. SIGTERM and SIGINT ask the service to stop, SIGHUP is logged
 * and ignored. sk_signals_start() blocks all three in the calling thread before any other
 * thread exists, so every thread inherits the mask and none can take a signal's default
 * action (issue 14: a thread started before the mask was set once ended the process with
 * status -15); one thread of this module takes them with sigwait(). Blocked signals are
 * queued even for process 1, whose default-action signals the kernel would drop.
 */
#ifndef SK_UTIL_SIGNALS_H
#define SK_UTIL_SIGNALS_H

/* Blocks SIGTERM, SIGINT and SIGHUP, ignores SIGPIPE and starts the signal thread. Call
 * first in main(), before any thread is created. Returns 0 or SK_EIO. */
int sk_signals_start(void);

/* Whether a stop was asked for (a signal, or sk_signals_request_stop). Any thread. */
int sk_signals_stop_requested(void);

/* Asks for a stop as SIGTERM would (tests, and fatal start-up paths). Any thread. */
void sk_signals_request_stop(void);

/* Blocks until a stop is asked for. */
void sk_signals_wait_for_stop(void);

/* Sleeps up to `ms` milliseconds, less if a stop is asked for meanwhile. Returns 1 when a
 * stop was asked for, 0 otherwise. For start-up waits that must end at once on SIGTERM. */
int sk_signals_sleep_ms(unsigned ms);

#endif
