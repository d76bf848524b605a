/* libFuzzer target: the sealed stream (storage/seal.h). The input is a
 * plaintext and a mutation; the plaintext is sealed (4 KiB chunks), must
 * open, in pieces of the size the input picks, to itself, and a range of it
 * must open to the same bytes; the mutated object (one byte changed, or
 * cut) must never open. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/seal.h"
#include "storage/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct store *mem;

static size_t seal_all(const struct seal_dk *dk, const uint8_t *p, size_t n,
                       struct wk_buf *out)
{
    struct store_writer_opts o;
    struct store_writer *w = NULL;
    struct seal_writer *sw = NULL;
    struct wk_err err;

    memset(&o, 0, sizeof(o));
    wk_err_clear(&err);
    if (!mem && store_mem_new(&mem, &err) != WK_OK)
        abort();
    if (store_open_write(mem, "a", &o, &w, &err) != WK_OK ||
        seal_writer_new(w, dk, &sw, &err) != WK_OK ||
        store_writer_write(seal_writer_sink(sw), p, n, &err) != WK_OK ||
        store_writer_commit(seal_writer_sink(sw), &err) != WK_OK)
        abort();
    store_writer_free(seal_writer_sink(sw));
    wk_buf_reset(out);
    if (store_get_all(mem, "a", out, &err) != WK_OK)
        abort();
    return out->len;
}

static enum wk_code open_all(const struct seal_dk *dk, const char *s, size_t n,
                             size_t step, struct wk_buf *out)
{
    struct seal_dec *d;
    struct wk_err err;
    enum wk_code rc;

    wk_err_clear(&err);
    wk_buf_reset(out);
    rc = seal_dec_new(dk, n, &d, &err);
    for (size_t off = 0; rc == WK_OK && off < n; off += step)
        rc = seal_dec_update(d, s + off, n - off < step ? n - off : step, out,
                             &err);
    if (rc == WK_OK)
        rc = seal_dec_final(d, &err);
    seal_dec_free(d);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct seal_dk dk;
    struct wk_buf sealed, plain;
    size_t n, at, step, off, len;
    uint64_t so, sl, po;
    struct wk_err err;
    uint8_t flip;

    if (size < 8 || size > 8 + 64 * 1024)
        return 0;
    memset(&dk, 0, sizeof(dk));
    memset(dk.key, 0x42, sizeof(dk.key));
    dk.chunk_bytes = SEAL_CHUNK_MIN;
    at = (size_t)data[0] << 16 | (size_t)data[1] << 8 | data[2];
    flip = data[3];
    step = 1 + ((size_t)data[4] << 8 | data[5]);
    off = (size_t)data[6] << 8 | data[7];
    data += 8;
    size -= 8;
    wk_buf_init(&sealed, 1u << 20);
    wk_buf_init(&plain, 1u << 20);
    n = seal_all(&dk, data, size, &sealed);
    if (open_all(&dk, sealed.data, n, step, &plain) != WK_OK ||
        plain.len != size || (size && memcmp(plain.data, data, size) != 0))
        abort();
    /* a range: whole chunks around [off, off + step) */
    seal_range(size, dk.chunk_bytes, off, step, &so, &sl, &po);
    wk_buf_reset(&plain);
    wk_err_clear(&err);
    if (so + sl > n ||
        seal_open_range(&dk, size, so, sealed.data + so, (size_t)sl, &plain,
                        &err) != WK_OK ||
        po > size || plain.len > size - po ||
        memcmp(plain.data, data + po, plain.len) != 0)
        abort();
    /* one byte changed, or the object cut short: never opens */
    at %= n;
    if (flip) {
        sealed.data[at] ^= (char)flip;
        len = n;
    } else {
        len = at; /* cut */
    }
    if (open_all(&dk, sealed.data, len, step, &plain) == WK_OK)
        abort();
    wk_buf_release(&sealed);
    wk_buf_release(&plain);
    return 0;
}
