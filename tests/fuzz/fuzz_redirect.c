/* libFuzzer driver: the MOVED / ASK redirection parser on an error reply's text. */
#include <stdint.h>
#include <string.h>

#include "client/redis/cluster.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int slot = -1;
    sk_redis_node_addr_t addr;
    memset(&addr, 0x55, sizeof(addr));
    const char *error = (const char *)data;
    int kind = sk_redis_parse_redirect(error, size, &slot, &addr);
    if (kind == 0)
        return 0;
    if (kind != 1 && kind != 2)
        __builtin_trap();
    if (slot < 0 || slot >= SK_REDIS_SLOTS || addr.port < 1 || addr.port > 65535)
        __builtin_trap();
    size_t host_len = strnlen(addr.host, sizeof(addr.host));
    if (host_len == sizeof(addr.host))
        __builtin_trap(); /* not NUL-terminated */
    /* The host is the text between the slot and the last ':', byte for byte. */
    size_t prefix = kind == 1 ? 6 : 4;
    if (memcmp(error, kind == 1 ? "MOVED " : "ASK ", prefix) != 0)
        __builtin_trap();
    const char *host = memchr(error + prefix, ' ', size - prefix);
    if (host == NULL || (size_t)(++host - error) + host_len >= size ||
        memcmp(host, addr.host, host_len) != 0 || host[host_len] != ':')
        __builtin_trap();
    return 0;
}
