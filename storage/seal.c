/*
 * seal: AES-256-GCM envelope encryption in authenticated chunks, on
 * OpenSSL EVP. See seal.h and docs/PROTOCOL.md for the format.
 *
 * Layout of a sealed object of P plaintext bytes, chunk size C:
 *   header  "SILASEAL" | 0x01 | 0 0 0 | C (u32 big-endian)     16 bytes
 *   chunk i ciphertext of plaintext [iC, min((i+1)C, P)) | tag  16 bytes
 * with n = max(1, ceil(P / C)) chunks: every chunk but the last holds C
 * bytes, the last 1..C (0 only when P = 0). Chunk i is sealed under the
 * data key with nonce = i (u64 big-endian) | final (u32 big-endian, 1 for
 * the last chunk, else 0) and AAD = the header.
 * The data key is wrapped as nonce(12, random) | ciphertext(32) | tag(16)
 * under the master key with AAD = "sila-seal-v1 data key\0" | spaceId, and
 * stored in base64.
 *
 * This file: the chunked object (sizes, one chunk, the writer, the
 * sequential reader, range reads); the keys are in seal_key.c.
 */
#include "storage/seal.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/seal_int.h"
#include "storage/store.h"
#include "storage/store_hash.h"

/* ---- helpers ---------------------------------------------------------- */

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static void put_be64(unsigned char *p, uint64_t v)
{
    put_be32(p, (uint32_t)(v >> 32));
    put_be32(p + 4, (uint32_t)v);
}

static void make_header(uint32_t chunk, unsigned char h[SEAL_HEADER_BYTES])
{
    memcpy(h, "SILASEAL", 8);
    h[8] = 1;
    h[9] = h[10] = h[11] = 0;
    put_be32(h + 12, chunk);
}

static void make_nonce(uint64_t index, bool final,
                       unsigned char n[SEAL_NONCE_BYTES])
{
    put_be64(n, index);
    put_be32(n + 8, final ? 1u : 0u);
}

/* ---- sizes ------------------------------------------------------------ */

uint64_t seal_stored_size(uint64_t plain, uint32_t chunk_bytes)
{
    uint64_t n = plain == 0 ? 1 : (plain + chunk_bytes - 1) / chunk_bytes;
    return SEAL_HEADER_BYTES + plain + n * SEAL_TAG_BYTES;
}

enum wk_code seal_plain_size(uint64_t stored, uint32_t chunk_bytes,
                             uint64_t *plain, struct wk_err *err)
{
    uint64_t full = (uint64_t)chunk_bytes + SEAL_TAG_BYTES, body, n, last;

    *plain = 0;
    if (!seal_chunk_valid(chunk_bytes) ||
        stored < SEAL_HEADER_BYTES + SEAL_TAG_BYTES)
        return wk_err_set(err, WK_E_CORRUPT,
                          "%llu bytes cannot be a sealed archive",
                          (unsigned long long)stored);
    body = stored - SEAL_HEADER_BYTES;
    n = (body + full - 1) / full;
    last = body - (n - 1) * full; /* 1..full */
    if (last < SEAL_TAG_BYTES || (n > 1 && last == SEAL_TAG_BYTES))
        return wk_err_set(err, WK_E_CORRUPT,
                          "%llu bytes cannot be a sealed archive",
                          (unsigned long long)stored);
    *plain = body - n * SEAL_TAG_BYTES;
    return WK_OK;
}

static uint64_t chunk_count(uint64_t plain, uint32_t chunk_bytes)
{
    return plain == 0 ? 1 : (plain + chunk_bytes - 1) / chunk_bytes;
}

/* ---- one chunk -------------------------------------------------------- */

struct seal_aead {
    EVP_CIPHER_CTX *ctx;
    unsigned char header[SEAL_HEADER_BYTES];
};

static enum wk_code aead_init(struct seal_aead *a, const struct seal_dk *dk,
                              bool enc, struct wk_err *err)
{
    make_header(dk->chunk_bytes, a->header);
    a->ctx = EVP_CIPHER_CTX_new();
    if (!a->ctx || EVP_CipherInit_ex(a->ctx, EVP_aes_256_gcm(), NULL, dk->key,
                                     NULL, enc ? 1 : 0) != 1) {
        EVP_CIPHER_CTX_free(a->ctx);
        a->ctx = NULL;
        return wk_err_set(err, WK_E_NOMEM, "cannot set up AES-256-GCM");
    }
    return WK_OK;
}

/* Seal n bytes of chunk index into out (n bytes, then the tag). */
static bool chunk_seal(struct seal_aead *a, uint64_t index, bool final,
                       const unsigned char *in, size_t n, unsigned char *out)
{
    unsigned char nonce[SEAL_NONCE_BYTES];
    int len = 0, fin = 0;

    make_nonce(index, final, nonce);
    return EVP_EncryptInit_ex(a->ctx, NULL, NULL, NULL, nonce) == 1 &&
           EVP_EncryptUpdate(a->ctx, NULL, &len, a->header,
                             (int)SEAL_HEADER_BYTES) == 1 &&
           EVP_EncryptUpdate(a->ctx, out, &len, in, (int)n) == 1 &&
           EVP_EncryptFinal_ex(a->ctx, out + len, &fin) == 1 &&
           EVP_CIPHER_CTX_ctrl(a->ctx, EVP_CTRL_GCM_GET_TAG,
                               (int)SEAL_TAG_BYTES, out + n) == 1;
}

/* Open chunk index (n stored bytes, tag included) and append its plaintext
 * to out; nothing is appended unless the tag checks. */
static enum wk_code chunk_open(struct seal_aead *a, uint64_t index, bool final,
                               const unsigned char *in, size_t n,
                               struct wk_buf *out, struct wk_err *err)
{
    unsigned char nonce[SEAL_NONCE_BYTES];
    unsigned char tag[SEAL_TAG_BYTES];
    size_t pn = n - SEAL_TAG_BYTES;
    int len = 0, fin = 0;
    unsigned char *dst;
    bool ok;
    enum wk_code rc;

    WK_ASSERT(n >= SEAL_TAG_BYTES);
    rc = wk_buf_reserve(out, pn, err);
    if (rc != WK_OK)
        return rc;
    dst = (unsigned char *)out->data + out->len;
    memcpy(tag, in + pn, SEAL_TAG_BYTES);
    make_nonce(index, final, nonce);
    ok = EVP_DecryptInit_ex(a->ctx, NULL, NULL, NULL, nonce) == 1 &&
         EVP_DecryptUpdate(a->ctx, NULL, &len, a->header,
                           (int)SEAL_HEADER_BYTES) == 1 &&
         EVP_DecryptUpdate(a->ctx, dst, &len, in, (int)pn) == 1 &&
         EVP_CIPHER_CTX_ctrl(a->ctx, EVP_CTRL_GCM_SET_TAG, (int)SEAL_TAG_BYTES,
                             tag) == 1 &&
         EVP_DecryptFinal_ex(a->ctx, dst + len, &fin) == 1;
    if (!ok) {
        OPENSSL_cleanse(dst, pn);
        return wk_err_set(err, WK_E_CORRUPT,
                          "sealed archive: chunk %llu does not authenticate "
                          "(tampered or truncated)",
                          (unsigned long long)index);
    }
    out->len += pn;
    out->data[out->len] = '\0';
    return WK_OK;
}

/* ---- writer ----------------------------------------------------------- */

struct seal_writer {
    struct store_writer base; /* first: what zipw writes to */
    struct store_writer *inner;
    struct seal_aead aead;
    struct store_sha256 *hash;
    unsigned char *plain; /* chunk_bytes */
    unsigned char *out;   /* chunk_bytes + tag */
    size_t fill;
    uint32_t chunk;
    uint64_t index;
    uint64_t bytes_out;
    bool header_done;
    bool committed;
    char hex[65];
};

static enum wk_code sw_emit(struct seal_writer *sw, const void *p, size_t n,
                            struct wk_err *err)
{
    enum wk_code rc = store_writer_write(sw->inner, p, n, err);
    if (rc == WK_OK) {
        store_sha256_update(sw->hash, p, n);
        sw->bytes_out += n;
    }
    return rc;
}

static enum wk_code sw_flush(struct seal_writer *sw, bool final,
                             struct wk_err *err)
{
    enum wk_code rc;

    if (!sw->header_done) {
        rc = sw_emit(sw, sw->aead.header, SEAL_HEADER_BYTES, err);
        if (rc != WK_OK)
            return rc;
        sw->header_done = true;
    }
    if (!chunk_seal(&sw->aead, sw->index, final, sw->plain, sw->fill, sw->out))
        return wk_err_set(err, WK_E_INTERNAL, "AES-256-GCM failed");
    rc = sw_emit(sw, sw->out, sw->fill + SEAL_TAG_BYTES, err);
    if (rc != WK_OK)
        return rc;
    sw->index++;
    sw->fill = 0;
    return WK_OK;
}

static enum wk_code sw_write(struct store_writer *w, const void *p, size_t n,
                             struct wk_err *err)
{
    struct seal_writer *sw = (struct seal_writer *)w;
    const unsigned char *s = p;
    enum wk_code rc;

    while (n > 0) {
        size_t take;
        /* a full chunk is sealed only once more data shows it is not the
         * last one */
        if (sw->fill == sw->chunk) {
            rc = sw_flush(sw, false, err);
            if (rc != WK_OK)
                return rc;
        }
        take = sw->chunk - sw->fill;
        if (take > n)
            take = n;
        memcpy(sw->plain + sw->fill, s, take);
        sw->fill += take;
        s += take;
        n -= take;
    }
    return WK_OK;
}

static enum wk_code sw_commit(struct store_writer *w, struct wk_err *err)
{
    struct seal_writer *sw = (struct seal_writer *)w;
    enum wk_code rc;

    rc = sw_flush(sw, true, err);
    if (rc != WK_OK)
        return rc;
    store_sha256_final_hex(sw->hash, sw->hex);
    rc = store_writer_commit(sw->inner, err);
    if (rc == WK_OK)
        sw->committed = true;
    return rc;
}

static void sw_free(struct store_writer *w)
{
    struct seal_writer *sw = (struct seal_writer *)w;

    store_writer_free(sw->inner);
    EVP_CIPHER_CTX_free(sw->aead.ctx);
    store_sha256_free(sw->hash);
    if (sw->plain)
        OPENSSL_cleanse(sw->plain, sw->chunk);
    free(sw->plain);
    free(sw->out);
    OPENSSL_cleanse(sw, sizeof(*sw));
    free(sw);
}

static const struct store_writer_ops seal_writer_ops = {
    .name = "seal",
    .write = sw_write,
    .commit = sw_commit,
    .free = sw_free,
};

enum wk_code seal_writer_new(struct store_writer *inner,
                             const struct seal_dk *dk, struct seal_writer **out,
                             struct wk_err *err)
{
    struct seal_writer *sw;
    enum wk_code rc;

    *out = NULL;
    if (!seal_chunk_valid(dk->chunk_bytes)) {
        store_writer_free(inner);
        return wk_err_set(err, WK_E_INTERNAL, "bad chunk size %u",
                          (unsigned)dk->chunk_bytes);
    }
    sw = calloc(1, sizeof(*sw));
    if (!sw) {
        store_writer_free(inner);
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    }
    sw->base.ops = &seal_writer_ops;
    sw->inner = inner;
    sw->chunk = dk->chunk_bytes;
    sw->plain = malloc(sw->chunk);
    sw->out = malloc((size_t)sw->chunk + SEAL_TAG_BYTES);
    if (!sw->plain || !sw->out) {
        rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
        goto fail;
    }
    rc = store_sha256_new(&sw->hash, err);
    if (rc == WK_OK)
        rc = aead_init(&sw->aead, dk, true, err);
    if (rc != WK_OK)
        goto fail;
    *out = sw;
    return WK_OK;
fail:
    sw_free(&sw->base);
    return rc;
}

struct store_writer *seal_writer_sink(struct seal_writer *sw)
{
    return &sw->base;
}

uint64_t seal_writer_bytes_out(const struct seal_writer *sw)
{
    return sw->bytes_out;
}

void seal_writer_sha256_hex(const struct seal_writer *sw, char hex[65])
{
    memcpy(hex, sw->hex, 65);
}

/* ---- sequential reader ------------------------------------------------ */

struct seal_dec {
    struct seal_aead aead;
    uint64_t stored; /* object size */
    uint64_t seen;   /* bytes fed so far */
    uint64_t n_chunks;
    uint64_t index; /* next chunk */
    uint64_t plain; /* plaintext size */
    uint32_t chunk;
    unsigned char *buf; /* the chunk being gathered: chunk + tag */
    size_t fill;
    unsigned char head[SEAL_HEADER_BYTES];
    size_t head_fill;
};

enum wk_code seal_dec_new(const struct seal_dk *dk, uint64_t stored_size,
                          struct seal_dec **out, struct wk_err *err)
{
    struct seal_dec *d;
    uint64_t plain;
    enum wk_code rc;

    *out = NULL;
    rc = seal_plain_size(stored_size, dk->chunk_bytes, &plain, err);
    if (rc != WK_OK)
        return rc;
    d = calloc(1, sizeof(*d));
    if (!d)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    d->stored = stored_size;
    d->plain = plain;
    d->chunk = dk->chunk_bytes;
    d->n_chunks = chunk_count(plain, d->chunk);
    d->buf = malloc((size_t)d->chunk + SEAL_TAG_BYTES);
    if (!d->buf) {
        seal_dec_free(d);
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    }
    rc = aead_init(&d->aead, dk, false, err);
    if (rc != WK_OK) {
        seal_dec_free(d);
        return rc;
    }
    *out = d;
    return WK_OK;
}

/* Stored bytes of chunk index (tag included). */
static size_t chunk_stored(const struct seal_dec *d, uint64_t index)
{
    if (index + 1 < d->n_chunks)
        return (size_t)d->chunk + SEAL_TAG_BYTES;
    return (size_t)(d->plain - index * d->chunk) + SEAL_TAG_BYTES;
}

enum wk_code seal_dec_update(struct seal_dec *d, const void *p, size_t n,
                             struct wk_buf *out, struct wk_err *err)
{
    const unsigned char *s = p;
    enum wk_code rc;

    if (n > d->stored - d->seen)
        return wk_err_set(err, WK_E_CORRUPT,
                          "sealed archive: more than %llu bytes",
                          (unsigned long long)d->stored);
    d->seen += n;
    while (n > 0 && d->head_fill < SEAL_HEADER_BYTES) {
        d->head[d->head_fill++] = *s++;
        n--;
        if (d->head_fill == SEAL_HEADER_BYTES &&
            memcmp(d->head, d->aead.header, SEAL_HEADER_BYTES) != 0)
            return wk_err_set(err, WK_E_CORRUPT,
                              "sealed archive: bad header (not %s with "
                              "%u-byte chunks)",
                              SEAL_SCHEME, (unsigned)d->chunk);
    }
    while (n > 0) {
        size_t want = chunk_stored(d, d->index);
        size_t take = want - d->fill;
        if (take > n)
            take = n;
        /* a whole chunk in the input: open it in place */
        if (d->fill == 0 && take == want) {
            rc = chunk_open(&d->aead, d->index, d->index + 1 == d->n_chunks, s,
                            want, out, err);
        } else {
            memcpy(d->buf + d->fill, s, take);
            d->fill += take;
            rc = WK_OK;
            if (d->fill == want) {
                rc = chunk_open(&d->aead, d->index, d->index + 1 == d->n_chunks,
                                d->buf, want, out, err);
                d->fill = 0;
            } else {
                s += take;
                n -= take;
                continue;
            }
        }
        if (rc != WK_OK)
            return rc;
        d->index++;
        s += take;
        n -= take;
    }
    return WK_OK;
}

enum wk_code seal_dec_final(struct seal_dec *d, struct wk_err *err)
{
    if (d->seen != d->stored || d->index != d->n_chunks)
        return wk_err_set(
            err, WK_E_CORRUPT, "sealed archive: ends after %llu of %llu bytes",
            (unsigned long long)d->seen, (unsigned long long)d->stored);
    return WK_OK;
}

size_t seal_dec_want(const struct seal_dec *d)
{
    if (d->index >= d->n_chunks)
        return 0;
    return (SEAL_HEADER_BYTES - d->head_fill) + chunk_stored(d, d->index) -
           d->fill;
}

void seal_dec_free(struct seal_dec *d)
{
    if (!d)
        return;
    EVP_CIPHER_CTX_free(d->aead.ctx);
    if (d->buf)
        OPENSSL_cleanse(d->buf, (size_t)d->chunk + SEAL_TAG_BYTES);
    free(d->buf);
    free(d);
}

/* ---- random access ---------------------------------------------------- */

void seal_range(uint64_t plain_size, uint32_t chunk_bytes, uint64_t off,
                uint64_t len, uint64_t *s_off, uint64_t *s_len, uint64_t *p_off)
{
    uint64_t n = chunk_count(plain_size, chunk_bytes);
    uint64_t first, last, end;

    if (off > plain_size)
        off = plain_size;
    end = len > plain_size - off ? plain_size : off + len;
    first = off / chunk_bytes;
    if (first >= n)
        first = n - 1;
    last = end == 0 ? 0 : (end - 1) / chunk_bytes;
    if (last < first)
        last = first;
    if (last >= n)
        last = n - 1;
    *p_off = first * chunk_bytes;
    *s_off =
        SEAL_HEADER_BYTES + first * ((uint64_t)chunk_bytes + SEAL_TAG_BYTES);
    end = (last + 1 == n) ? plain_size : (last + 1) * chunk_bytes;
    *s_len = (end - *p_off) + (last - first + 1) * SEAL_TAG_BYTES;
}

enum wk_code seal_open_range(const struct seal_dk *dk, uint64_t plain_size,
                             uint64_t s_off, const void *p, size_t n,
                             struct wk_buf *out, struct wk_err *err)
{
    struct seal_aead a;
    uint64_t full = (uint64_t)dk->chunk_bytes + SEAL_TAG_BYTES;
    uint64_t nchunks = chunk_count(plain_size, dk->chunk_bytes);
    uint64_t index;
    const unsigned char *s = p;
    enum wk_code rc;

    if (s_off < SEAL_HEADER_BYTES || (s_off - SEAL_HEADER_BYTES) % full != 0)
        return wk_err_set(err, WK_E_INTERNAL, "unaligned sealed range");
    index = (s_off - SEAL_HEADER_BYTES) / full;
    rc = aead_init(&a, dk, false, err);
    if (rc != WK_OK)
        return rc;
    while (n > 0 && rc == WK_OK) {
        uint64_t want =
            index + 1 < nchunks
                ? full
                : (plain_size - index * dk->chunk_bytes) + SEAL_TAG_BYTES;
        if (index >= nchunks || want > n) {
            rc = wk_err_set(err, WK_E_CORRUPT,
                            "sealed archive: range ends inside chunk %llu",
                            (unsigned long long)index);
            break;
        }
        rc = chunk_open(&a, index, index + 1 == nchunks, s, (size_t)want, out,
                        err);
        s += want;
        n -= (size_t)want;
        index++;
    }
    EVP_CIPHER_CTX_free(a.ctx);
    return rc;
}
