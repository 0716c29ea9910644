/*
 * sd_notify (see sdnotify.h). The protocol is one datagram of "KEY=value" lines to the
 * socket named by NOTIFY_SOCKET: a path, or an abstract-namespace name when it starts with
 * '@'. Writing it by hand spares the service a libsystemd dependency for ten lines.
 */
#include "util/sdnotify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/error.h"
#include "util/log.h"

int sk_sd_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (path == NULL || path[0] == '\0')
        return 0;
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    size_t path_len = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || path_len >= sizeof(address.sun_path)) {
        sk_log(SK_LOG_WARN, "sdnotify", "NOTIFY_SOCKET is neither a path nor an abstract name");
        return SK_EIO;
    }
    memcpy(address.sun_path, path, path_len);
    if (path[0] == '@')
        address.sun_path[0] = '\0';
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        sk_log(SK_LOG_WARN, "sdnotify", "socket failed: %s", strerror(errno));
        return SK_EIO;
    }
    socklen_t address_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + path_len);
    ssize_t sent =
        sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&address, address_len);
    int saved_errno = errno;
    close(fd);
    if (sent < 0) {
        sk_log(SK_LOG_WARN, "sdnotify", "sendto NOTIFY_SOCKET failed: %s", strerror(saved_errno));
        return SK_EIO;
    }
    return 1;
}
