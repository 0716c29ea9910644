/*
 * systemd's readiness protocol (sd_notify(3)), without libsystemd: under a unit with
 * Type=notify, systemd sets NOTIFY_SOCKET to a Unix datagram socket, and the service sends
 * "READY=1" once it serves and "STOPPING=1" when it starts to drain. Elsewhere a no-op.
 */
#ifndef SK_UTIL_SDNOTIFY_H
#define SK_UTIL_SDNOTIFY_H

/* Sends `state` (e.g. "READY=1\nSTATUS=serving") to $NOTIFY_SOCKET if it is set. Returns
 * 1 when sent, 0 when there is no socket, SK_EIO when sending failed (logged). */
int sk_sd_notify(const char *state);

#endif
