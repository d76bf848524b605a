/* libFuzzer target: archive entry names (what a hostile ZIP could hold):
 * a name accepted must stay inside the space. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "zip/zipr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Leaves the space: absolute, a "." or ".." or empty component, or a
 * backslash. */
static int escapes(const char *name, size_t size)
{
    const char *c = name;

    (void)size;
    if (name[0] == '/' || strchr(name, '\\'))
        return 1;
    for (;;) {
        const char *e = strchr(c, '/');
        size_t n = e ? (size_t)(e - c) : strlen(c);
        if (n == 0 || (n == 1 && c[0] == '.') ||
            (n == 2 && c[0] == '.' && c[1] == '.'))
            return 1;
        if (!e)
            return 0;
        c = e + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char name[1100], why[256];

    if (size >= sizeof(name))
        return 0;
    memcpy(name, data, size);
    name[size] = '\0';
    size = strlen(name); /* a C string: what follows a NUL is not seen */
    if (zipr_name_valid(name, why, sizeof(why)) && escapes(name, size))
        abort(); /* accepted a name that leaves the space */
    return 0;
}
