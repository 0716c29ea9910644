/*
 * Tests of src/client/redis/cluster.c, no server needed: key slots as Redis Cluster computes
 * them (known values, hash tags and their edge cases), the --redis URL (valid forms and
 * hostile ones, never echoing the password), MOVED/ASK parsing, the slot map from a
 * synthetic CLUSTER SLOTS reply and its update keeping node indexes, command formatting and
 * the EVALSHA → EVAL rewrite on NOSCRIPT, the retry decisions, and the script SHA1.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "client/redis/cluster.h"
#include "util/error.h"
#include "client/redis/cluster_internal.h"

static uint16_t slot_of(const char *key)
{
    return sk_redis_key_slot(key, strlen(key));
}

static void test_key_slots(void **state)
{
    (void)state;
    assert_int_equal(slot_of("foo"), 12182);
    assert_int_equal(slot_of("bar"), 5061);
    /* CRC16/XMODEM check value of "123456789" is 0x31C3; modulo 16384 gives 0x31C3. */
    assert_int_equal(slot_of("123456789"), 0x31C3);
    assert_int_equal(slot_of(""), 0);
    assert_int_equal(slot_of("{user1000}.following"), slot_of("{user1000}.followers"));
    assert_int_equal(slot_of("{user1000}.following"), slot_of("user1000"));
    /* An empty tag does not count: the whole key is hashed. */
    assert_int_not_equal(slot_of("{}"), slot_of(""));
    assert_int_equal(slot_of("foo{}{bar}"), sk_redis_key_slot("foo{}{bar}", 10));
    assert_int_not_equal(slot_of("foo{}{bar}"), slot_of("bar"));
    /* Only the first '{' and the first '}' after it. */
    assert_int_equal(slot_of("foo{{bar}}zap"), slot_of("{bar"));
    assert_int_equal(slot_of("foo{bar}{zap}"), slot_of("bar"));
    assert_int_equal(slot_of("{unclosed"), sk_redis_key_slot("{unclosed", 9));
    /* Bytes after a NUL count; the length is what matters. */
    assert_int_not_equal(sk_redis_key_slot("a\0b", 3), sk_redis_key_slot("a\0c", 3));
    for (int i = 0; i < 1000; ++i) {
        char key[32];
        snprintf(key, sizeof(key), "key:%d", i);
        assert_true(slot_of(key) < SK_REDIS_SLOTS);
    }
}

static void test_url_valid(void **state)
{
    (void)state;
    sk_redis_config_t config;
    char err[128] = "";
    assert_int_equal(sk_redis_config_parse("redis://127.0.0.1:6380/2", &config, err, sizeof(err)),
                     0);
    assert_int_equal(config.seed_count, 1);
    assert_string_equal(config.seeds[0].host, "127.0.0.1");
    assert_int_equal(config.seeds[0].port, 6380);
    assert_int_equal(config.db, 2);
    assert_string_equal(config.password, "");

    assert_int_equal(sk_redis_config_parse("REDIS://localhost", &config, err, sizeof(err)), 0);
    assert_int_equal(config.seeds[0].port, 6379);
    assert_int_equal(config.db, 0);

    assert_int_equal(sk_redis_config_parse("redis://:s3cret@h/", &config, err, sizeof(err)), 0);
    assert_string_equal(config.username, "");
    assert_string_equal(config.password, "s3cret");

    /* Percent escapes, and '@' or '/' in a password: the host part starts after the last
     * '@'. */
    assert_int_equal(
        sk_redis_config_parse("redis://app%3Auser:p@ss/w%40rd@h:7000", &config, err, sizeof(err)),
        0);
    assert_string_equal(config.username, "app:user");
    assert_string_equal(config.password, "p@ss/w@rd");
    assert_string_equal(config.seeds[0].host, "h");
    assert_int_equal(config.seeds[0].port, 7000);

    assert_int_equal(sk_redis_config_parse("redis://10.0.0.1:7000,10.0.0.2,[::1]:7002", &config,
                                           err, sizeof(err)),
                     0);
    assert_int_equal(config.seed_count, 3);
    assert_int_equal(config.seeds[1].port, 6379);
    assert_string_equal(config.seeds[2].host, "::1");
    assert_int_equal(config.seeds[2].port, 7002);
}

static void test_url_hostile(void **state)
{
    (void)state;
    static const char *const bad[] = {
        NULL,
        "",
        "http://h",
        "rediss://h",
        "redis://",
        "redis://h:",
        "redis://h:0",
        "redis://h:65536",
        "redis://h:123456",
        "redis://h:12a",
        "redis://h:-1",
        "redis://h/abc",
        "redis://h/-1",
        "redis://h/1234567890",
        "redis://h/1/2",
        "redis://h,",
        "redis://,h",
        "redis://h,,k",
        "redis://h?db=1",
        "redis://h#x",
        "redis://h k",
        "redis://h\r\nSET",
        "redis://[::1",
        "redis://[::1]x",
        "redis://[zz]:1",
        "redis://h::1",
        "redis://h%41",
        "redis://bad_user_no_colon@h",
        "redis://u:@h",
        "redis://u:%zz@h",
        "redis://u:%4@h",
        "redis://u:a%00b@h",
        "redis://a:1,b:2/3",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        sk_redis_config_t config;
        char err[128] = "";
        if (sk_redis_config_parse(bad[i], &config, err, sizeof(err)) != SK_EINVAL)
            fail_msg("accepted %s", bad[i] ? bad[i] : "(null)");
        assert_true(err[0] != '\0');
        assert_string_equal(config.password, "");
    }

    /* A host longer than the limit, a user name or password too long, too many hosts. */
    char url[8192];
    snprintf(url, sizeof(url), "redis://%0300d", 0);
    sk_redis_config_t config;
    char err[128];
    assert_int_equal(sk_redis_config_parse(url, &config, err, sizeof(err)), SK_EINVAL);
    snprintf(url, sizeof(url), "redis://:%0300d@h", 0);
    assert_int_equal(sk_redis_config_parse(url, &config, err, sizeof(err)), SK_EINVAL);
    snprintf(url, sizeof(url), "redis://%0200d:p@h", 0);
    assert_int_equal(sk_redis_config_parse(url, &config, err, sizeof(err)), SK_EINVAL);
    size_t used = (size_t)snprintf(url, sizeof(url), "redis://h");
    for (int i = 0; i < SK_REDIS_MAX_NODES; ++i)
        used += (size_t)snprintf(url + used, sizeof(url) - used, ",h%d", i);
    assert_int_equal(sk_redis_config_parse(url, &config, err, sizeof(err)), SK_EINVAL);

    /* The password never appears in the message, whatever went wrong after it. */
    static const char *const with_password[] = {
        "redis://u:topsecretpw@h:99999", "redis://u:topsecretpw@h/x", "redis://u:topsecretpw@h?x"};
    for (size_t i = 0; i < 3; ++i) {
        assert_int_equal(sk_redis_config_parse(with_password[i], &config, err, sizeof(err)),
                         SK_EINVAL);
        assert_null(strstr(err, "topsecret"));
    }
    /* A tiny or absent error buffer is fine. */
    assert_int_equal(sk_redis_config_parse("x", &config, err, 1), SK_EINVAL);
    assert_int_equal(sk_redis_config_parse("x", &config, NULL, 0), SK_EINVAL);
}

static void test_url_sentinel(void **state)
{
    (void)state;
    sk_redis_config_t config;
    char err[128] = "";
    assert_int_equal(sk_redis_config_parse("redis-sentinel://10.0.0.1,10.0.0.2:26380/3#mymaster",
                                           &config, err, sizeof(err)),
                     0);
    assert_true(config.sentinel);
    assert_string_equal(config.master_name, "mymaster");
    assert_int_equal(config.seed_count, 2);
    assert_string_equal(config.seeds[0].host, "10.0.0.1");
    assert_int_equal(config.seeds[0].port, 26379); /* Sentinel's port by default */
    assert_int_equal(config.seeds[1].port, 26380);
    assert_int_equal(config.db, 3); /* several Sentinels, one database: not a Cluster */
    assert_string_equal(config.password, "");

    /* The user information is all password (':' and '#' included); the name follows the
     * last '#', percent-decoded. */
    assert_int_equal(sk_redis_config_parse("REDIS-SENTINEL://p:a#ss%40@h#my%2Dmaster", &config, err,
                                           sizeof(err)),
                     0);
    assert_string_equal(config.password, "p:a#ss@");
    assert_string_equal(config.master_name, "my-master");
    assert_string_equal(config.seeds[0].host, "h");

    /* A plain URL is not a Sentinel one. */
    assert_int_equal(sk_redis_config_parse("redis://h", &config, err, sizeof(err)), 0);
    assert_false(config.sentinel);

    static const char *const bad[] = {
        "redis-sentinel://h",         "redis-sentinel://h#",         "redis-sentinel://#m",
        "redis-sentinel://@h#m",      "redis-sentinel://h?x#m",      "redis-sentinel://h:0#m",
        "redis-sentinel://h/x#m",     "redis-sentinel://h#m%0d%0aX", "redis-sentinel://h#%zz",
        "redis-sentinel://p%00w@h#m", "redis-sentinel://h#a%20b",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        memset(err, 0, sizeof(err));
        if (sk_redis_config_parse(bad[i], &config, err, sizeof(err)) != SK_EINVAL)
            fail_msg("accepted %s", bad[i]);
        assert_true(err[0] != '\0');
        assert_string_equal(config.password, "");
    }
    char url[512];
    snprintf(url, sizeof(url), "redis-sentinel://h#%0200d", 0);
    assert_int_equal(sk_redis_config_parse(url, &config, err, sizeof(err)), SK_EINVAL);
    /* The password never appears in a message. */
    assert_int_equal(
        sk_redis_config_parse("redis-sentinel://topsecretpw@h:99999#m", &config, err, sizeof(err)),
        SK_EINVAL);
    assert_null(strstr(err, "topsecret"));
}

static void test_redirects(void **state)
{
    (void)state;
    int slot = -1;
    sk_redis_node_addr_t addr;
    const char *moved = "MOVED 3999 127.0.0.1:6381";
    assert_int_equal(sk_redis_parse_redirect(moved, strlen(moved), &slot, &addr), 1);
    assert_int_equal(slot, 3999);
    assert_string_equal(addr.host, "127.0.0.1");
    assert_int_equal(addr.port, 6381);
    const char *ask = "ASK 16383 ::1:7000";
    assert_int_equal(sk_redis_parse_redirect(ask, strlen(ask), &slot, &addr), 2);
    assert_int_equal(slot, 16383);
    assert_string_equal(addr.host, "::1");
    assert_int_equal(addr.port, 7000);
    const char *empty_host = "MOVED 0 :6380";
    assert_int_equal(sk_redis_parse_redirect(empty_host, strlen(empty_host), &slot, &addr), 1);
    assert_string_equal(addr.host, "");
    static const char *const other[] = {
        "ERR wrong number", "MOVED",       "MOVED 16384 h:1", "MOVED -1 h:1",
        "MOVED 1 h",        "MOVED 1 h:0", "MOVED 1 h:65536", "MOVED x h:1",
        "MOVED 1  h:1",     "ASK 1 h:1x",  "MOVED 1 h h:1",   "NOSCRIPT No matching",
        "MOVED 1 h\r\n:1",  "moved 1 h:1",
    };
    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); ++i)
        if (sk_redis_parse_redirect(other[i], strlen(other[i]), &slot, &addr) != 0)
            fail_msg("took %s for a redirection", other[i]);
    /* The length bounds the parse, not a NUL. */
    assert_int_equal(sk_redis_parse_redirect(moved, 12, &slot, &addr), 0);
}

/* Synthetic replies: integers, strings and arrays built on the stack. */
typedef struct fake_range {
    redisReply start, end, master, host, port;
    redisReply *master_elements[2];
    redisReply *elements[3];
    redisReply range;
} fake_range_t;

static void fake_range_init(fake_range_t *r, long long start, long long end, const char *host,
                            long long port)
{
    memset(r, 0, sizeof(*r));
    r->start = (redisReply){.type = REDIS_REPLY_INTEGER, .integer = start};
    r->end = (redisReply){.type = REDIS_REPLY_INTEGER, .integer = end};
    r->host = (redisReply){.type = REDIS_REPLY_STRING, .str = (char *)host, .len = strlen(host)};
    r->port = (redisReply){.type = REDIS_REPLY_INTEGER, .integer = port};
    r->master_elements[0] = &r->host;
    r->master_elements[1] = &r->port;
    r->master =
        (redisReply){.type = REDIS_REPLY_ARRAY, .elements = 2, .element = r->master_elements};
    r->elements[0] = &r->start;
    r->elements[1] = &r->end;
    r->elements[2] = &r->master;
    r->range = (redisReply){.type = REDIS_REPLY_ARRAY, .elements = 3, .element = r->elements};
}

static void test_slot_map(void **state)
{
    (void)state;
    fake_range_t ranges[3];
    fake_range_init(&ranges[0], 0, 5460, "10.0.0.1", 7000);
    fake_range_init(&ranges[1], 5461, 10922, "", 7001); /* the seed's host */
    fake_range_init(&ranges[2], 10923, 16383, "10.0.0.3", 7002);
    redisReply *elements[3] = {&ranges[2].range, &ranges[0].range, &ranges[1].range};
    redisReply reply = {.type = REDIS_REPLY_ARRAY, .elements = 3, .element = elements};
    sk_redis_node_addr_t seed = {"seed.example", 7001};
    static sk_redis_slot_map_t map, scratch;
    assert_int_equal(sk_redis_slot_map_from_reply(&map, &reply, &seed), 0);
    assert_int_equal(map.cluster, 1);
    assert_int_equal(map.node_count, 3);
    assert_string_equal(map.nodes[map.slot_node[0]].host, "10.0.0.1");
    assert_string_equal(map.nodes[map.slot_node[5461]].host, "seed.example");
    assert_int_equal(map.nodes[map.slot_node[16383]].port, 7002);
    assert_int_equal(map.slot_node[10922], map.slot_node[5461]);

    /* A hole: slot 5461 of nobody. */
    ranges[1].start.integer = 5462;
    assert_int_equal(sk_redis_slot_map_from_reply(&map, &reply, &seed), SK_EINVAL);
    ranges[1].start.integer = 5461;
    /* Malformed: end before start, out of range, a port that is not a port, not arrays. */
    ranges[0].end.integer = -1;
    assert_int_equal(sk_redis_slot_map_from_reply(&map, &reply, &seed), SK_EINVAL);
    ranges[0].end.integer = 16384;
    assert_int_equal(sk_redis_slot_map_from_reply(&map, &reply, &seed), SK_EINVAL);
    ranges[0].end.integer = 5460;
    ranges[0].port.integer = 0;
    assert_int_equal(sk_redis_slot_map_from_reply(&map, &reply, &seed), SK_EINVAL);
    ranges[0].port.integer = 7000;
    ranges[0].master.elements = 1;
    assert_int_equal(sk_redis_slot_map_from_reply(&map, &reply, &seed), SK_EINVAL);
    ranges[0].master.elements = 2;
    ranges[0].range.elements = 2;
    assert_int_equal(sk_redis_slot_map_from_reply(&map, &reply, &seed), SK_EINVAL);
    ranges[0].range.elements = 3;
    ranges[0].host.len = 3; /* "10.\0..." : a NUL inside */
    assert_int_equal(sk_redis_slot_map_from_reply(&map, &reply, &seed), SK_EINVAL);
    ranges[0].host.len = strlen("10.0.0.1");
    redisReply status = {.type = REDIS_REPLY_STATUS, .str = "OK", .len = 2};
    assert_int_equal(sk_redis_slot_map_from_reply(&map, &status, &seed), SK_EINVAL);
    assert_int_equal(sk_redis_slot_map_from_reply(&map, NULL, &seed), SK_EINVAL);

    /* Updates keep the indexes of known nodes and append new ones. */
    memset(&map, 0, sizeof(map));
    assert_int_equal(sk_redis_slot_map_node(&map, "10.0.0.3", 7002), 0);
    assert_int_equal(sk_redis__slot_map_update(&map, &reply, &seed, &scratch), 0);
    assert_int_equal(map.node_count, 3);
    assert_int_equal(map.slot_node[16383], 0);
    assert_true(sk_redis__slot_map_serves(&map, 0));
    ranges[2].host.str = "10.0.0.1"; /* node 3's slots go to node 1 */
    ranges[2].port.integer = 7000;
    assert_int_equal(sk_redis__slot_map_update(&map, &reply, &seed, &scratch), 0);
    assert_int_equal(map.node_count, 3);
    assert_false(sk_redis__slot_map_serves(&map, 0));
    assert_string_equal(map.nodes[map.slot_node[16383]].host, "10.0.0.1");
    /* A malformed answer leaves the map as it was. */
    ranges[1].start.integer = 5462;
    assert_int_equal(sk_redis__slot_map_update(&map, &reply, &seed, &scratch), SK_EINVAL);
    assert_string_equal(map.nodes[map.slot_node[16383]].host, "10.0.0.1");

    /* A Redis without cluster support: everything on the node that answered. */
    char disabled[] = "ERR This instance has cluster support disabled";
    redisReply error = {.type = REDIS_REPLY_ERROR, .str = disabled, .len = strlen(disabled)};
    sk_redis_node_addr_t standalone = {"127.0.0.1", 6379};
    memset(&map, 0, sizeof(map));
    assert_int_equal(sk_redis__slot_map_update(&map, &error, &standalone, &scratch), 0);
    assert_int_equal(map.cluster, 0);
    assert_int_equal(map.node_count, 1);
    assert_int_equal(map.slot_node[12345], 0);

    /* The node table's limits. */
    memset(&map, 0, sizeof(map));
    char host[SK_REDIS_HOST_MAX + 8];
    for (int i = 0; i < SK_REDIS_MAX_NODES; ++i) {
        snprintf(host, sizeof(host), "n%d", i);
        assert_int_equal(sk_redis_slot_map_node(&map, host, 1), i);
    }
    assert_int_equal(sk_redis_slot_map_node(&map, "one-more", 1), -1);
    assert_int_equal(sk_redis_slot_map_node(&map, "n5", 1), 5);
    memset(&map, 0, sizeof(map));
    memset(host, 'h', SK_REDIS_HOST_MAX);
    host[SK_REDIS_HOST_MAX] = '\0';
    assert_int_equal(sk_redis_slot_map_node(&map, host, 1), -1);
    assert_int_equal(sk_redis_slot_map_node(&map, "", 1), -1);
}

static void test_commands(void **state)
{
    (void)state;
    sk_redis__command_t command = {0};
    const char *argv[] = {"SET", "{t}k", ""};
    size_t argvlen[] = {3, 4, 0};
    assert_int_equal(sk_redis__command_format(&command, NULL, 0, 3, argv, argvlen), 0);
    assert_int_equal(command.len, strlen("*3\r\n$3\r\nSET\r\n$4\r\n{t}k\r\n$0\r\n\r\n"));
    assert_memory_equal(command.text, "*3\r\n$3\r\nSET\r\n$4\r\n{t}k\r\n$0\r\n\r\n", command.len);
    assert_int_equal(command.slot, slot_of("t"));
    assert_int_equal(sk_redis__command_format(&command, "foo", 3, 1, argv, argvlen), 0);
    assert_int_equal(command.slot, 12182);

    sk_redis_script_t script;
    sk_redis_script_init(&script, "return 1");
    assert_string_equal(script.sha1, "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
    const char *keys[] = {"{c}a", "{c}b"};
    size_t keylens[] = {4, 4};
    const char *args[] = {"x"};
    size_t arglens[] = {1};
    assert_int_equal(
        sk_redis__command_format_evalsha(&command, &script, 2, keys, keylens, 1, args, arglens), 0);
    assert_int_equal(command.slot, slot_of("c"));
    const char *evalsha = "*6\r\n$7\r\nEVALSHA\r\n$40\r\ne0e1f9fabfc9d4800c877a703b823ac0578ff8db"
                          "\r\n$1\r\n2\r\n$4\r\n{c}a\r\n$4\r\n{c}b\r\n$1\r\nx\r\n";
    assert_int_equal(command.len, strlen(evalsha));
    assert_memory_equal(command.text, evalsha, command.len);

    /* Errors: what each asks of the client. */
    int slot;
    sk_redis_node_addr_t addr;
    char text[64];
    redisReply error = {.type = REDIS_REPLY_ERROR, .str = text};
#define ERROR_REPLY(s) (snprintf(text, sizeof(text), "%s", s), error.len = strlen(text), &error)
    assert_int_equal(sk_redis__next_step(ERROR_REPLY("MOVED 1 h:2"), &command, 0, &slot, &addr),
                     SK_REDIS__MOVED);
    assert_int_equal(sk_redis__next_step(ERROR_REPLY("ASK 1 h:2"), &command, 0, &slot, &addr),
                     SK_REDIS__ASK);
    assert_int_equal(sk_redis__next_step(ERROR_REPLY("TRYAGAIN x"), &command, 0, &slot, &addr),
                     SK_REDIS__RETRY);
    assert_int_equal(sk_redis__next_step(ERROR_REPLY("CLUSTERDOWN x"), &command, 0, &slot, &addr),
                     SK_REDIS__RETRY);
    assert_int_equal(sk_redis__next_step(ERROR_REPLY("ERR x"), &command, 0, &slot, &addr),
                     SK_REDIS__DONE);
    /* The last attempt passes the error on. */
    assert_int_equal(sk_redis__next_step(ERROR_REPLY("MOVED 1 h:2"), &command,
                                         SK_REDIS__MAX_ATTEMPTS - 1, &slot, &addr),
                     SK_REDIS__DONE);
    redisReply ok = {.type = REDIS_REPLY_STATUS, .str = "OK", .len = 2};
    assert_int_equal(sk_redis__next_step(&ok, &command, 0, &slot, &addr), SK_REDIS__DONE);

    /* NOSCRIPT: the same call as EVAL, once. */
    assert_int_equal(
        sk_redis__next_step(ERROR_REPLY("NOSCRIPT No matching script"), &command, 0, &slot, &addr),
        SK_REDIS__RESEND);
    const char *eval = "*6\r\n$4\r\nEVAL\r\n$8\r\nreturn 1\r\n$1\r\n2\r\n$4\r\n{c}a\r\n$4\r\n{c}b"
                       "\r\n$1\r\nx\r\n";
    assert_int_equal(command.len, strlen(eval));
    assert_memory_equal(command.text, eval, command.len);
    assert_int_equal(
        sk_redis__next_step(ERROR_REPLY("NOSCRIPT No matching script"), &command, 1, &slot, &addr),
        SK_REDIS__DONE);
    /* NOSCRIPT to a plain command is passed on. */
    assert_int_equal(sk_redis__command_format(&command, NULL, 0, 3, argv, argvlen), 0);
    assert_int_equal(sk_redis__next_step(ERROR_REPLY("NOSCRIPT x"), &command, 0, &slot, &addr),
                     SK_REDIS__DONE);
#undef ERROR_REPLY
    sk_redis__command_dispose(&command);

    /* A large command grows the buffer. */
    size_t big_len = 100000;
    char *big = malloc(big_len);
    assert_non_null(big);
    memset(big, 'v', big_len);
    const char *big_argv[] = {"SET", "k", big};
    size_t big_argvlen[] = {3, 1, big_len};
    assert_int_equal(sk_redis__command_format(&command, NULL, 0, 3, big_argv, big_argvlen), 0);
    assert_int_equal(command.len, 4 + 9 + 7 + 1 + 6 + 2 + big_len + 2);
    free(big);
    sk_redis__command_dispose(&command);
}

static void test_handshake(void **state)
{
    (void)state;
    sk_redis_config_t config;
    char err[64];
    sk_redis__handshake_t handshake;
    assert_int_equal(sk_redis_config_parse("redis://h", &config, err, sizeof(err)), 0);
    assert_int_equal(sk_redis__handshake_init(&handshake, &config), 0);
    assert_int_equal(sk_redis_config_parse("redis://:pw@h/3", &config, err, sizeof(err)), 0);
    assert_int_equal(sk_redis__handshake_init(&handshake, &config), 2);
    assert_int_equal(handshake.argc[0], 2);
    assert_string_equal(handshake.argv[0][1], "pw");
    assert_int_equal(handshake.argc[1], 2);
    assert_string_equal(handshake.argv[1][1], "3");
    assert_int_equal(sk_redis_config_parse("redis://u:pw@h", &config, err, sizeof(err)), 0);
    assert_int_equal(sk_redis__handshake_init(&handshake, &config), 1);
    assert_int_equal(handshake.argc[0], 3);
    assert_string_equal(handshake.argv[0][1], "u");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_slots),   cmocka_unit_test(test_url_valid),
        cmocka_unit_test(test_url_hostile), cmocka_unit_test(test_redirects),
        cmocka_unit_test(test_slot_map),    cmocka_unit_test(test_commands),
        cmocka_unit_test(test_handshake),   cmocka_unit_test(test_url_sentinel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
