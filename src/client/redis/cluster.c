/*
 * The parts of a Redis Cluster client that do no I/O, shared by redis_async.c (worker
 * loops) and redis_sync.c (threads that may block): the `--redis` URL, the key → slot
 * hash, the slot map read from `CLUSTER SLOTS`, the redirections a node answers with, and
 * commands kept in the wire format so that a redirected one is resent byte for byte.
 *
 * Everything here parses what a network peer or an operator wrote, so it checks every
 * length and number and never trusts a reply's shape (tests/unit/test_redis_cluster.c).
 */
#include "client/redis/cluster.h"

#include <assert.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client/redis/cluster_internal.h"
#include "util/error.h"
#include "util/percent.h"

#define DEFAULT_PORT 6379
#define DEFAULT_SENTINEL_PORT 26379

/*
 * URL
 */

static void set_error(char *err, size_t errlen, const char *message)
{
    if (err != NULL && errlen != 0)
        snprintf(err, errlen, "%s", message);
}

/* Percent-decodes [begin, end) into out (NUL-terminated); -1 when it does not fit, has a
 * broken escape or decodes to a NUL byte (which AUTH could not carry in a C string). */
static int decode_userinfo(const char *begin, const char *end, char *out, size_t size)
{
    return sk_percent_decode_cstring(begin, (size_t)(end - begin), out, size) < 0 ? -1 : 0;
}

/* A decimal number of at most `max_digits` digits in [begin, end), no sign, no spaces. */
static long parse_decimal(const char *begin, const char *end, size_t max_digits)
{
    if (begin == end || (size_t)(end - begin) > max_digits)
        return -1;
    long value = 0;
    for (const char *p = begin; p < end; ++p) {
        if (*p < '0' || *p > '9')
            return -1;
        value = value * 10 + (*p - '0');
    }
    return value;
}

static int is_host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_';
}

static int is_ipv6_char(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' ||
           c == '.';
}

/* One `host[:port]` or `[ipv6][:port]` in [begin, end). */
static int parse_host_port(const char *begin, const char *end, long default_port,
                           sk_redis_node_addr_t *addr)
{
    const char *host = begin, *host_end, *after;
    if (begin < end && *begin == '[') {
        host = begin + 1;
        host_end = memchr(host, ']', (size_t)(end - host));
        if (host_end == NULL)
            return -1;
        for (const char *p = host; p < host_end; ++p)
            if (!is_ipv6_char(*p))
                return -1;
        after = host_end + 1;
    } else {
        host_end = host;
        while (host_end < end && *host_end != ':') {
            if (!is_host_char(*host_end))
                return -1;
            ++host_end;
        }
        after = host_end;
    }
    size_t host_len = (size_t)(host_end - host);
    if (host_len == 0 || host_len >= sizeof(addr->host))
        return -1;
    long port = default_port;
    if (after < end) {
        if (*after != ':')
            return -1;
        port = parse_decimal(after + 1, end, 5);
        if (port < 1 || port > 65535)
            return -1;
    }
    memcpy(addr->host, host, host_len);
    addr->host[host_len] = '\0';
    addr->port = (int)port;
    return 0;
}

int sk_redis_config_parse(const char *url, sk_redis_config_t *out, char *err, size_t errlen)
{
    static const char scheme[] = "redis://", sentinel_scheme[] = "redis-sentinel://";
    memset(out, 0, sizeof(*out));
    if (url == NULL) {
        set_error(err, errlen, "no Redis URL");
        return SK_EINVAL;
    }
    if (strncasecmp(url, "rediss://", 9) == 0) {
        set_error(err, errlen, "TLS (rediss://) is not supported");
        return SK_EINVAL;
    }
    const char *rest;
    if (strncasecmp(url, scheme, sizeof(scheme) - 1) == 0) {
        rest = url + sizeof(scheme) - 1;
    } else if (strncasecmp(url, sentinel_scheme, sizeof(sentinel_scheme) - 1) == 0) {
        rest = url + sizeof(sentinel_scheme) - 1;
        out->sentinel = 1;
    } else {
        set_error(err, errlen, "a Redis URL starts with redis:// or redis-sentinel://");
        return SK_EINVAL;
    }
    const char *rest_end = rest + strlen(rest);
    for (const char *p = rest; p < rest_end; ++p) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f) {
            set_error(err, errlen, "the Redis URL contains a space or a control character");
            return SK_EINVAL;
        }
    }
    /* Sentinel: "#name" names the master; the password may hold a '#', so the name is
     * what follows the last one. */
    if (out->sentinel) {
        const char *hash = NULL;
        for (const char *p = rest; p < rest_end; ++p)
            if (*p == '#')
                hash = p;
        if (hash == NULL || hash + 1 == rest_end) {
            set_error(err, errlen, "a redis-sentinel:// URL ends with #master-name");
            goto fail;
        }
        if (decode_userinfo(hash + 1, rest_end, out->master_name, sizeof(out->master_name)) != 0 ||
            strpbrk(out->master_name, " \r\n") != NULL) {
            set_error(err, errlen, "the Sentinel master name is malformed or too long");
            goto fail;
        }
        rest_end = hash;
    }

    /* The password may contain '/' or '@' unescaped: the host part starts after the last
     * '@', and only there does a '/' start the database number. */
    const char *hosts = rest;
    const char *at = NULL;
    for (const char *p = rest; p < rest_end; ++p)
        if (*p == '@')
            at = p;
    if (at != NULL && out->sentinel) {
        if (decode_userinfo(rest, at, out->password, sizeof(out->password)) != 0 ||
            out->password[0] == '\0') {
            set_error(err, errlen, "the Redis URL's password is malformed, empty or too long");
            goto fail;
        }
        hosts = at + 1;
    } else if (at != NULL) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        if (colon == NULL) {
            set_error(err, errlen, "the Redis URL's credentials must read [user]:password@");
            return SK_EINVAL;
        }
        if (decode_userinfo(rest, colon, out->username, sizeof(out->username)) != 0 ||
            decode_userinfo(colon + 1, at, out->password, sizeof(out->password)) != 0) {
            set_error(err, errlen,
                      "the Redis URL's user name or password is malformed or too long");
            goto fail;
        }
        if (out->password[0] == '\0') {
            set_error(err, errlen, "the Redis URL names a user without a password");
            goto fail;
        }
        hosts = at + 1;
    }
    if (memchr(hosts, '?', (size_t)(rest_end - hosts)) != NULL ||
        memchr(hosts, '#', (size_t)(rest_end - hosts)) != NULL) {
        set_error(err, errlen, "the Redis URL has parameters; none are supported");
        goto fail;
    }
    const char *hosts_end = memchr(hosts, '/', (size_t)(rest_end - hosts));
    if (hosts_end == NULL) {
        hosts_end = rest_end;
    } else if (hosts_end + 1 < rest_end) {
        long db = parse_decimal(hosts_end + 1, rest_end, 9);
        if (db < 0) {
            set_error(err, errlen, "the Redis URL's database is not a number");
            goto fail;
        }
        out->db = (int)db;
    }
    for (const char *begin = hosts; begin <= hosts_end;) {
        const char *end = memchr(begin, ',', (size_t)(hosts_end - begin));
        if (end == NULL)
            end = hosts_end;
        if (out->seed_count == SK_REDIS_MAX_NODES) {
            set_error(err, errlen, "the Redis URL names too many hosts");
            goto fail;
        }
        if (parse_host_port(begin, end, out->sentinel ? DEFAULT_SENTINEL_PORT : DEFAULT_PORT,
                            &out->seeds[out->seed_count]) != 0) {
            set_error(err, errlen, "the Redis URL has a malformed host or port");
            goto fail;
        }
        ++out->seed_count;
        begin = end + 1;
    }
    if (out->seed_count > 1 && out->db != 0 && !out->sentinel) {
        set_error(err, errlen, "Redis Cluster has only database 0");
        goto fail;
    }
    return 0;

fail:
    /* Leave no copy of a password behind in a configuration the caller will not use. */
    memset(out, 0, sizeof(*out));
    return SK_EINVAL;
}

/*
 * Slots
 */

/* CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), as Redis Cluster's crc16.c. */
static const uint16_t crc16_table[256] = {
    0x0000, 0x1021, 0x2042, 0x3063, 0x4084, 0x50a5, 0x60c6, 0x70e7, 0x8108, 0x9129, 0xa14a, 0xb16b,
    0xc18c, 0xd1ad, 0xe1ce, 0xf1ef, 0x1231, 0x0210, 0x3273, 0x2252, 0x52b5, 0x4294, 0x72f7, 0x62d6,
    0x9339, 0x8318, 0xb37b, 0xa35a, 0xd3bd, 0xc39c, 0xf3ff, 0xe3de, 0x2462, 0x3443, 0x0420, 0x1401,
    0x64e6, 0x74c7, 0x44a4, 0x5485, 0xa56a, 0xb54b, 0x8528, 0x9509, 0xe5ee, 0xf5cf, 0xc5ac, 0xd58d,
    0x3653, 0x2672, 0x1611, 0x0630, 0x76d7, 0x66f6, 0x5695, 0x46b4, 0xb75b, 0xa77a, 0x9719, 0x8738,
    0xf7df, 0xe7fe, 0xd79d, 0xc7bc, 0x48c4, 0x58e5, 0x6886, 0x78a7, 0x0840, 0x1861, 0x2802, 0x3823,
    0xc9cc, 0xd9ed, 0xe98e, 0xf9af, 0x8948, 0x9969, 0xa90a, 0xb92b, 0x5af5, 0x4ad4, 0x7ab7, 0x6a96,
    0x1a71, 0x0a50, 0x3a33, 0x2a12, 0xdbfd, 0xcbdc, 0xfbbf, 0xeb9e, 0x9b79, 0x8b58, 0xbb3b, 0xab1a,
    0x6ca6, 0x7c87, 0x4ce4, 0x5cc5, 0x2c22, 0x3c03, 0x0c60, 0x1c41, 0xedae, 0xfd8f, 0xcdec, 0xddcd,
    0xad2a, 0xbd0b, 0x8d68, 0x9d49, 0x7e97, 0x6eb6, 0x5ed5, 0x4ef4, 0x3e13, 0x2e32, 0x1e51, 0x0e70,
    0xff9f, 0xefbe, 0xdfdd, 0xcffc, 0xbf1b, 0xaf3a, 0x9f59, 0x8f78, 0x9188, 0x81a9, 0xb1ca, 0xa1eb,
    0xd10c, 0xc12d, 0xf14e, 0xe16f, 0x1080, 0x00a1, 0x30c2, 0x20e3, 0x5004, 0x4025, 0x7046, 0x6067,
    0x83b9, 0x9398, 0xa3fb, 0xb3da, 0xc33d, 0xd31c, 0xe37f, 0xf35e, 0x02b1, 0x1290, 0x22f3, 0x32d2,
    0x4235, 0x5214, 0x6277, 0x7256, 0xb5ea, 0xa5cb, 0x95a8, 0x8589, 0xf56e, 0xe54f, 0xd52c, 0xc50d,
    0x34e2, 0x24c3, 0x14a0, 0x0481, 0x7466, 0x6447, 0x5424, 0x4405, 0xa7db, 0xb7fa, 0x8799, 0x97b8,
    0xe75f, 0xf77e, 0xc71d, 0xd73c, 0x26d3, 0x36f2, 0x0691, 0x16b0, 0x6657, 0x7676, 0x4615, 0x5634,
    0xd94c, 0xc96d, 0xf90e, 0xe92f, 0x99c8, 0x89e9, 0xb98a, 0xa9ab, 0x5844, 0x4865, 0x7806, 0x6827,
    0x18c0, 0x08e1, 0x3882, 0x28a3, 0xcb7d, 0xdb5c, 0xeb3f, 0xfb1e, 0x8bf9, 0x9bd8, 0xabbb, 0xbb9a,
    0x4a75, 0x5a54, 0x6a37, 0x7a16, 0x0af1, 0x1ad0, 0x2ab3, 0x3a92, 0xfd2e, 0xed0f, 0xdd6c, 0xcd4d,
    0xbdaa, 0xad8b, 0x9de8, 0x8dc9, 0x7c26, 0x6c07, 0x5c64, 0x4c45, 0x3ca2, 0x2c83, 0x1ce0, 0x0cc1,
    0xef1f, 0xff3e, 0xcf5d, 0xdf7c, 0xaf9b, 0xbfba, 0x8fd9, 0x9ff8, 0x6e17, 0x7e36, 0x4e55, 0x5e74,
    0x2e93, 0x3eb2, 0x0ed1, 0x1ef0,
};

static uint16_t crc16(const char *data, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; ++i)
        crc = (uint16_t)((crc << 8) ^ crc16_table[((crc >> 8) ^ (uint8_t)data[i]) & 0xff]);
    return crc;
}

uint16_t sk_redis_key_slot(const char *key, size_t len)
{
    /* Only the part between the first '{' and the first '}' after it is hashed, when that
     * part is not empty: keys that share a tag share a slot. */
    const char *open = memchr(key, '{', len);
    if (open != NULL) {
        size_t after = (size_t)(open - key) + 1;
        const char *close = memchr(open + 1, '}', len - after);
        if (close != NULL && close != open + 1)
            return crc16(open + 1, (size_t)(close - open - 1)) & (SK_REDIS_SLOTS - 1);
    }
    return crc16(key, len) & (SK_REDIS_SLOTS - 1);
}

/*
 * Slot map
 */

#define SLOT_UNCOVERED 0xff

int sk_redis_slot_map_node(sk_redis_slot_map_t *map, const char *host, int port)
{
    for (size_t i = 0; i < map->node_count; ++i)
        if (map->nodes[i].port == port && strcmp(map->nodes[i].host, host) == 0)
            return (int)i;
    size_t host_len = strlen(host);
    if (map->node_count == SK_REDIS_MAX_NODES || host_len == 0 ||
        host_len >= sizeof(map->nodes[0].host) || port < 1 || port > 65535)
        return -1;
    sk_redis_node_addr_t *node = &map->nodes[map->node_count];
    memcpy(node->host, host, host_len + 1);
    node->port = port;
    return (int)map->node_count++;
}

void sk_redis_slot_map_standalone(sk_redis_slot_map_t *map, const sk_redis_node_addr_t *node)
{
    memset(map, 0, sizeof(*map));
    map->nodes[0] = *node;
    map->node_count = 1;
}

static int reply_integer_in(const redisReply *reply, long long low, long long high)
{
    return reply != NULL && reply->type == REDIS_REPLY_INTEGER && reply->integer >= low &&
           reply->integer <= high;
}

int sk_redis_slot_map_from_reply(sk_redis_slot_map_t *map, const redisReply *reply,
                                 const sk_redis_node_addr_t *seed)
{
    memset(map, 0, sizeof(*map));
    memset(map->slot_node, SLOT_UNCOVERED, sizeof(map->slot_node));
    map->cluster = 1;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY)
        return SK_EINVAL;
    for (size_t i = 0; i < reply->elements; ++i) {
        const redisReply *range = reply->element[i];
        if (range == NULL || range->type != REDIS_REPLY_ARRAY || range->elements < 3)
            return SK_EINVAL;
        const redisReply *master = range->element[2];
        if (!reply_integer_in(range->element[0], 0, SK_REDIS_SLOTS - 1) ||
            !reply_integer_in(range->element[1], range->element[0]->integer, SK_REDIS_SLOTS - 1) ||
            master == NULL || master->type != REDIS_REPLY_ARRAY || master->elements < 2 ||
            master->element[0] == NULL || master->element[0]->type != REDIS_REPLY_STRING ||
            !reply_integer_in(master->element[1], 1, 65535))
            return SK_EINVAL;
        /* Redis 7 leaves the host empty ("?" when the endpoint type is unknown) where the
         * client should use the address it reached the answering node at. */
        const char *host = master->element[0]->str;
        if (master->element[0]->len == 0 || strcmp(host, "?") == 0)
            host = seed->host;
        else if (strlen(host) != master->element[0]->len)
            return SK_EINVAL; /* a NUL byte inside a host name */
        int node = sk_redis_slot_map_node(map, host, (int)master->element[1]->integer);
        if (node < 0)
            return SK_EINVAL;
        memset(&map->slot_node[range->element[0]->integer], node,
               (size_t)(range->element[1]->integer - range->element[0]->integer + 1));
    }
    for (size_t slot = 0; slot < SK_REDIS_SLOTS; ++slot)
        if (map->slot_node[slot] == SLOT_UNCOVERED)
            return SK_EINVAL;
    return 0;
}

int sk_redis__slot_map_serves(const sk_redis_slot_map_t *map, size_t index)
{
    return memchr(map->slot_node, (int)index, sizeof(map->slot_node)) != NULL;
}

static int reply_is_error_containing(const redisReply *reply, const char *text)
{
    return reply != NULL && reply->type == REDIS_REPLY_ERROR && reply->str != NULL &&
           strstr(reply->str, text) != NULL;
}

int sk_redis__slot_map_update(sk_redis_slot_map_t *map, const redisReply *reply,
                              const sk_redis_node_addr_t *answered_by, sk_redis_slot_map_t *scratch)
{
    /* "ERR This instance has cluster support disabled": a standalone Redis. */
    if (reply_is_error_containing(reply, "cluster support disabled"))
        sk_redis_slot_map_standalone(scratch, answered_by);
    else if (sk_redis_slot_map_from_reply(scratch, reply, answered_by) != 0)
        return SK_EINVAL;
    int index_in_map[SK_REDIS_MAX_NODES];
    for (size_t i = 0; i < scratch->node_count; ++i) {
        index_in_map[i] =
            sk_redis_slot_map_node(map, scratch->nodes[i].host, scratch->nodes[i].port);
        if (index_in_map[i] < 0)
            return SK_EINVAL;
    }
    for (size_t slot = 0; slot < SK_REDIS_SLOTS; ++slot)
        map->slot_node[slot] = (uint8_t)index_in_map[scratch->slot_node[slot]];
    map->cluster = scratch->cluster;
    return 0;
}

/*
 * Redirections
 */

int sk_redis_parse_redirect(const char *error, size_t len, int *slot, sk_redis_node_addr_t *addr)
{
    int kind;
    size_t at;
    if (len > 6 && memcmp(error, "MOVED ", 6) == 0) {
        kind = 1;
        at = 6;
    } else if (len > 4 && memcmp(error, "ASK ", 4) == 0) {
        kind = 2;
        at = 4;
    } else {
        return 0;
    }
    const char *slot_begin = error + at, *end = error + len;
    const char *space = memchr(slot_begin, ' ', (size_t)(end - slot_begin));
    if (space == NULL)
        return 0;
    long slot_value = parse_decimal(slot_begin, space, 5);
    if (slot_value < 0 || slot_value >= SK_REDIS_SLOTS)
        return 0;
    /* host:port, the port after the last ':' (an IPv6 host has colons of its own). */
    const char *host = space + 1, *colon = NULL;
    for (const char *p = host; p < end; ++p)
        if (*p == ':')
            colon = p;
    if (colon == NULL)
        return 0;
    long port = parse_decimal(colon + 1, end, 5);
    size_t host_len = (size_t)(colon - host);
    if (port < 1 || port > 65535 || host_len >= sizeof(addr->host))
        return 0;
    for (const char *p = host; p < colon; ++p)
        if (!is_host_char(*p) && !is_ipv6_char(*p))
            return 0;
    memcpy(addr->host, host, host_len);
    addr->host[host_len] = '\0';
    addr->port = (int)port;
    *slot = (int)slot_value;
    return kind;
}

/*
 * Commands
 */

static size_t decimal_length(size_t value)
{
    size_t digits = 1;
    while (value >= 10) {
        value /= 10;
        ++digits;
    }
    return digits;
}

static char *put_decimal(char *out, size_t value)
{
    size_t digits = decimal_length(value);
    for (size_t i = digits; i > 0; --i) {
        out[i - 1] = (char)('0' + value % 10);
        value /= 10;
    }
    return out + digits;
}

/* Room for the protocol's framing of one argument of `len` bytes. */
static size_t arg_size(size_t len)
{
    return 1 + decimal_length(len) + 2 + len + 2;
}

static char *put_header(char *out, size_t argc)
{
    *out++ = '*';
    out = put_decimal(out, argc);
    *out++ = '\r';
    *out++ = '\n';
    return out;
}

static char *put_arg(char *out, const char *arg, size_t len)
{
    *out++ = '$';
    out = put_decimal(out, len);
    *out++ = '\r';
    *out++ = '\n';
    if (len != 0)
        memcpy(out, arg, len);
    out += len;
    *out++ = '\r';
    *out++ = '\n';
    return out;
}

static int reserve(sk_redis__command_t *command, size_t size)
{
    if (size <= command->cap)
        return 0;
    size_t cap = command->cap * 2 > size ? command->cap * 2 : size;
    char *grown = realloc(command->text, cap);
    if (grown == NULL)
        return SK_ENOMEM;
    command->text = grown;
    command->cap = cap;
    return 0;
}

int sk_redis__command_format(sk_redis__command_t *command, const char *slot_key,
                             size_t slot_key_len, int argc, const char **argv,
                             const size_t *argvlen)
{
    size_t size = 1 + decimal_length((size_t)argc) + 2;
    for (int i = 0; i < argc; ++i)
        size += arg_size(argvlen[i]);
    if (reserve(command, size) != 0)
        return SK_ENOMEM;
    char *out = put_header(command->text, (size_t)argc);
    for (int i = 0; i < argc; ++i)
        out = put_arg(out, argv[i], argvlen[i]);
    command->len = (size_t)(out - command->text);
    command->script = NULL;
    command->script_rest_at = 0;
    if (slot_key != NULL)
        command->slot = sk_redis_key_slot(slot_key, slot_key_len);
    else
        command->slot = argc > 1 ? sk_redis_key_slot(argv[1], argvlen[1]) : 0;
    return 0;
}

int sk_redis__command_format_evalsha(sk_redis__command_t *command, const sk_redis_script_t *script,
                                     int numkeys, const char **keys, const size_t *keylens,
                                     int nargs, const char **args, const size_t *arglens)
{
    char numkeys_text[16];
    size_t numkeys_len = (size_t)(put_decimal(numkeys_text, (size_t)numkeys) - numkeys_text);
    size_t argc = 3 + (size_t)numkeys + (size_t)nargs;
    size_t size = 1 + decimal_length(argc) + 2 + arg_size(7) + arg_size(40) + arg_size(numkeys_len);
    for (int i = 0; i < numkeys; ++i)
        size += arg_size(keylens[i]);
    for (int i = 0; i < nargs; ++i)
        size += arg_size(arglens[i]);
    if (reserve(command, size) != 0)
        return SK_ENOMEM;
    char *out = put_header(command->text, argc);
    out = put_arg(out, "EVALSHA", 7);
    out = put_arg(out, script->sha1, 40);
    command->script_rest_at = (size_t)(out - command->text);
    out = put_arg(out, numkeys_text, numkeys_len);
    for (int i = 0; i < numkeys; ++i)
        out = put_arg(out, keys[i], keylens[i]);
    for (int i = 0; i < nargs; ++i)
        out = put_arg(out, args[i], arglens[i]);
    command->len = (size_t)(out - command->text);
    command->script = script;
    command->slot = numkeys > 0 ? sk_redis_key_slot(keys[0], keylens[0]) : 0;
    return 0;
}

/* EVALSHA sha1 rest... → EVAL source rest...; the argument count is unchanged. */
static int command_to_eval(sk_redis__command_t *command)
{
    const char *source = command->script->source;
    size_t source_len = strlen(source);
    const char *header_end = memchr(command->text, '\n', command->len);
    assert(header_end != NULL);
    size_t header_len = (size_t)(header_end + 1 - command->text);
    size_t rest_len = command->len - command->script_rest_at;
    size_t size = header_len + arg_size(4) + arg_size(source_len) + rest_len;
    char *text = malloc(size > command->cap ? size : command->cap);
    if (text == NULL)
        return SK_ENOMEM;
    memcpy(text, command->text, header_len);
    char *out = put_arg(text + header_len, "EVAL", 4);
    out = put_arg(out, source, source_len);
    memcpy(out, command->text + command->script_rest_at, rest_len);
    free(command->text);
    command->text = text;
    command->cap = size > command->cap ? size : command->cap;
    command->len = size;
    command->script = NULL;
    command->script_rest_at = 0;
    return 0;
}

void sk_redis__command_dispose(sk_redis__command_t *command)
{
    free(command->text);
    memset(command, 0, sizeof(*command));
}

static int error_starts_with(const redisReply *reply, const char *prefix)
{
    size_t len = strlen(prefix);
    return reply->len >= len && memcmp(reply->str, prefix, len) == 0;
}

sk_redis__next_t sk_redis__next_step(const redisReply *reply, sk_redis__command_t *command,
                                     int attempts, int *slot, sk_redis_node_addr_t *addr)
{
    if (reply == NULL || reply->type != REDIS_REPLY_ERROR || reply->str == NULL ||
        attempts + 1 >= SK_REDIS__MAX_ATTEMPTS)
        return SK_REDIS__DONE;
    switch (sk_redis_parse_redirect(reply->str, reply->len, slot, addr)) {
    case 1:
        return SK_REDIS__MOVED;
    case 2:
        return SK_REDIS__ASK;
    default:
        break;
    }
    /* TRYAGAIN: a multi-key command during a slot migration; CLUSTERDOWN: a failover in
     * progress; LOADING: a restarted node reading its AOF. All pass within moments. */
    if (error_starts_with(reply, "TRYAGAIN") || error_starts_with(reply, "CLUSTERDOWN") ||
        error_starts_with(reply, "LOADING"))
        return SK_REDIS__RETRY;
    /* The node does not have the script (restarted, failed over, SCRIPT FLUSH): EVAL both
     * runs and caches it, so the next EVALSHA on that node succeeds. */
    if (command->script != NULL && error_starts_with(reply, "NOSCRIPT") &&
        command_to_eval(command) == 0)
        return SK_REDIS__RESEND;
    return SK_REDIS__DONE;
}

int sk_redis__handshake_init(sk_redis__handshake_t *handshake, const sk_redis_config_t *config)
{
    int count = 0;
    memset(handshake, 0, sizeof(*handshake));
    if (config->password[0] != '\0') {
        int argc = 0;
        handshake->argv[count][argc] = "AUTH";
        handshake->argvlen[count][argc++] = 4;
        if (config->username[0] != '\0') {
            handshake->argv[count][argc] = config->username;
            handshake->argvlen[count][argc++] = strlen(config->username);
        }
        handshake->argv[count][argc] = config->password;
        handshake->argvlen[count][argc++] = strlen(config->password);
        handshake->argc[count++] = argc;
    }
    if (config->db != 0) {
        snprintf(handshake->db_text, sizeof(handshake->db_text), "%d", config->db);
        handshake->argv[count][0] = "SELECT";
        handshake->argvlen[count][0] = 6;
        handshake->argv[count][1] = handshake->db_text;
        handshake->argvlen[count][1] = strlen(handshake->db_text);
        handshake->argc[count++] = 2;
    }
    return count;
}

/*
 * Scripts
 */

void sk_redis_script_init(sk_redis_script_t *script, const char *source)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    script->source = source;
    /* EVP_Digest with SHA-1 cannot fail short of a broken OpenSSL installation. */
    int ok = EVP_Digest(source, strlen(source), digest, &digest_len, EVP_sha1(), NULL);
    assert(ok == 1 && digest_len == 20);
    (void)ok;
    for (unsigned int i = 0; i < 20; ++i) {
        script->sha1[2 * i] = hex[digest[i] >> 4];
        script->sha1[2 * i + 1] = hex[digest[i] & 0xf];
    }
    script->sha1[40] = '\0';
}
