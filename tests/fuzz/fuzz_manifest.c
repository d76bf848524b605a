/* libFuzzer target: manifests as read back from the store; what parses
 * must serialise and parse again to the same. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mf m, back;
    struct wk_err err;
    struct wk_buf b;

    wk_err_clear(&err);
    if (mf_parse((const char *)data, size, &m, &err) != WK_OK)
        return 0;
    wk_buf_init(&b, 1u << 20);
    if (mf_to_json(&m, &b, &err) != WK_OK ||
        mf_parse(b.data, b.len, &back, &err) != WK_OK ||
        back.state != m.state || back.generation != m.generation ||
        strcmp(back.archive_key, m.archive_key) != 0)
        abort(); /* a manifest that does not survive a round trip */
    wk_buf_release(&b);
    return 0;
}
