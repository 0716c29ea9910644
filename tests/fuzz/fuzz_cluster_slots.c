/* libFuzzer driver: the CLUSTER SLOTS reply parser and the slot map update. The input is
 * RESP; each reply becomes the map of a node that answered, then updates that map. */
#include <stdint.h>
#include <string.h>

#include "client/redis/cluster.h"
#include "client/redis/cluster_internal.h"
#include "resp_replies.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct maps {
    sk_redis_slot_map_t map, scratch, before;
    int have_map;
} maps_t;

static const sk_redis_node_addr_t seed = {"127.0.0.1", 7000};

/* What every map must be, whatever reply made it: every slot on a node it lists. */
static void check_map(const sk_redis_slot_map_t *map)
{
    if (map->node_count == 0 || map->node_count > SK_REDIS_MAX_NODES)
        __builtin_trap();
    for (size_t slot = 0; slot != SK_REDIS_SLOTS; ++slot)
        if (map->slot_node[slot] >= map->node_count)
            __builtin_trap();
    for (size_t i = 0; i != map->node_count; ++i)
        if (memchr(map->nodes[i].host, '\0', sizeof(map->nodes[i].host)) == NULL ||
            map->nodes[i].port < 1 || map->nodes[i].port > 65535)
            __builtin_trap();
}

static void on_reply(redisReply *reply, void *arg)
{
    maps_t *maps = arg;
    if (sk_redis_slot_map_from_reply(&maps->scratch, reply, &seed) == 0) {
        check_map(&maps->scratch);
        if (!maps->scratch.cluster)
            __builtin_trap();
    }
    if (!maps->have_map) {
        sk_redis_slot_map_standalone(&maps->map, &seed);
        maps->have_map = 1;
    }
    maps->before = maps->map;
    if (sk_redis__slot_map_update(&maps->map, reply, &seed, &maps->scratch) == 0) {
        check_map(&maps->map);
        /* Nodes keep their indexes: an update only appends. */
        for (size_t i = 0; i != maps->before.node_count; ++i)
            if (strcmp(maps->map.nodes[i].host, maps->before.nodes[i].host) != 0 ||
                maps->map.nodes[i].port != maps->before.nodes[i].port)
                __builtin_trap();
    } else if (memcmp(maps->map.slot_node, maps->before.slot_node, sizeof(maps->map.slot_node)) !=
                   0 ||
               maps->map.cluster != maps->before.cluster) {
        __builtin_trap(); /* a refused reply routes nothing differently */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static maps_t maps; /* 50 KiB: static, not allocated for every input */
    maps.have_map = 0;
    sk_fuzz_each_reply(data, size, on_reply, &maps);
    return 0;
}
