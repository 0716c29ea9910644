#include "backends.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ENTRIES 32

static struct {
    char *key, *value;
} entries[MAX_ENTRIES];
static size_t entry_count;
static int loaded;

static void load(void)
{
    loaded = 1;
    const char *path = getenv("SK_TEST_BACKENDS");
    if (path == NULL)
        return;
    FILE *file = fopen(path, "r");
    if (file == NULL)
        return;
    char line[1024];
    while (entry_count < MAX_ENTRIES && fgets(line, sizeof(line), file) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        char *equals = strchr(line, '=');
        if (equals == NULL)
            continue;
        *equals = '\0';
        entries[entry_count].key = strdup(line);
        entries[entry_count].value = strdup(equals + 1);
        ++entry_count;
    }
    fclose(file);
}

const char *sk_test_backend(const char *key)
{
    const char *from_env = getenv(key);
    if (from_env != NULL && from_env[0] != '\0')
        return from_env;
    if (!loaded)
        load();
    for (size_t i = 0; i < entry_count; ++i)
        if (strcmp(entries[i].key, key) == 0)
            return entries[i].value;
    return NULL;
}
