/* libFuzzer driver: the command line. The input is split at NUL bytes into argv. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    char *argv[64];
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    int argc = 0;
    argv[argc++] = "seckill";
    for (char *word = text; word <= text + size && argc < 63; word += strlen(word) + 1)
        argv[argc++] = word;
    argv[argc] = NULL;

    sk_config_t config;
    char error[512];
    sk_config_action_t action = sk_config_parse(&config, argc, argv, error, sizeof(error));
    if (action == SK_CONFIG_RUN) {
        /* Whatever was accepted must be within the documented ranges. */
        if (config.threads < 1 || config.threads > 256 || config.token_ttl < 1 ||
            config.max_amount < 1 || config.max_body < 1 || config.max_connections < 1 ||
            config.rate_limit < 0 || config.rate_burst < 1 || config.data_dir == NULL ||
            (config.redis_url == NULL) != (config.mysql_url == NULL))
            __builtin_trap();
    } else if (action == SK_CONFIG_ERROR && memchr(error, '\0', sizeof(error)) == NULL) {
        __builtin_trap();
    }
    sk_config_dispose(&config);
    free(text);
    return 0;
}
