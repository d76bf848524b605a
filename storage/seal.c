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
 */
#include "storage/seal.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/wk_parse.h"
#include "storage/store.h"
#include "storage/store_hash.h"

#define SEAL_NONCE_BYTES 12u
#define SEAL_WRAP_BYTES  (SEAL_NONCE_BYTES + SEAL_KEY_BYTES + SEAL_TAG_BYTES)
#define SEAL_FILE_MAX    (64u * 1024u)
#define SEAL_ID_LABEL    "sila-archiver key id v1"
#define SEAL_WRAP_LABEL  "sila-seal-v1 data key"

struct seal_key {
    unsigned char key[SEAL_KEY_BYTES];
    char id[SEAL_KEY_ID_CHARS + 1];
};

struct seal_keyring {
    size_t n;
    struct seal_key keys[SEAL_KEYS_MAX];
};

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

static void key_id(const unsigned char key[SEAL_KEY_BYTES],
                   char id[SEAL_KEY_ID_CHARS + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;

    HMAC(EVP_sha256(), key, (int)SEAL_KEY_BYTES,
         (const unsigned char *)SEAL_ID_LABEL, strlen(SEAL_ID_LABEL), mac,
         &maclen);
    for (size_t i = 0; i < SEAL_KEY_ID_CHARS / 2; i++) {
        id[2 * i] = hex[mac[i] >> 4];
        id[2 * i + 1] = hex[mac[i] & 15];
    }
    id[SEAL_KEY_ID_CHARS] = '\0';
    OPENSSL_cleanse(mac, sizeof(mac));
}

/* ---- keyring ---------------------------------------------------------- */

static enum wk_code ring_add(struct seal_keyring *kr,
                             const unsigned char key[SEAL_KEY_BYTES],
                             const char *what, unsigned line,
                             struct wk_err *err)
{
    struct seal_key *k;

    if (kr->n == SEAL_KEYS_MAX)
        return wk_err_set(err, WK_E_INVAL, "%s: more than %u keys", what,
                          SEAL_KEYS_MAX);
    k = &kr->keys[kr->n];
    memcpy(k->key, key, SEAL_KEY_BYTES);
    key_id(k->key, k->id);
    for (size_t i = 0; i < kr->n; i++)
        if (strcmp(kr->keys[i].id, k->id) == 0) {
            OPENSSL_cleanse(k, sizeof(*k));
            return wk_err_set(err, WK_E_INVAL,
                              "%s line %u: the same key as line %zu", what,
                              line, i + 1);
        }
    kr->n++;
    return WK_OK;
}

/* Text form: one key of 64 hex digits per line. */
static enum wk_code parse_text(struct seal_keyring *kr, const char *p,
                               size_t len, const char *what, struct wk_err *err)
{
    unsigned char key[SEAL_KEY_BYTES];
    unsigned line = 0;
    size_t i = 0;
    enum wk_code rc = WK_OK;

    while (i < len && rc == WK_OK) {
        size_t s = i, e;
        line++;
        while (i < len && p[i] != '\n')
            i++;
        e = i;
        if (i < len)
            i++; /* the newline */
        while (s < e && (p[s] == ' ' || p[s] == '\t'))
            s++;
        while (e > s &&
               (p[e - 1] == ' ' || p[e - 1] == '\t' || p[e - 1] == '\r'))
            e--;
        if (s == e || p[s] == '#')
            continue;
        if (e - s != 2 * SEAL_KEY_BYTES) {
            rc = wk_err_set(err, WK_E_INVAL,
                            "%s line %u: a key is 64 hex digits (256 bits), "
                            "this line has %zu characters",
                            what, line, e - s);
            break;
        }
        for (size_t j = 0; j < SEAL_KEY_BYTES; j++) {
            int hi = wk_hex_digit((unsigned char)p[s + 2 * j]);
            int lo = wk_hex_digit((unsigned char)p[s + 2 * j + 1]);
            if (hi < 0 || lo < 0) {
                rc = wk_err_set(err, WK_E_INVAL, "%s line %u: not a hex digit",
                                what, line);
                break;
            }
            key[j] = (unsigned char)(hi << 4 | lo);
        }
        if (rc == WK_OK)
            rc = ring_add(kr, key, what, line, err);
    }
    OPENSSL_cleanse(key, sizeof(key));
    if (rc == WK_OK && kr->n == 0)
        rc = wk_err_set(err, WK_E_INVAL, "%s holds no key", what);
    return rc;
}

enum wk_code seal_keyring_parse(const void *data, size_t len, const char *what,
                                struct seal_keyring **out, struct wk_err *err)
{
    struct seal_keyring *kr;
    bool text = true;
    enum wk_code rc;

    *out = NULL;
    kr = calloc(1, sizeof(*kr));
    if (!kr)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    for (size_t i = 0; i < len && text; i++) {
        unsigned char c = ((const unsigned char *)data)[i];
        if (c != '\n' && c != '\r' && c != '\t' && (c < 0x20 || c > 0x7e))
            text = false;
    }
    if (len == SEAL_KEY_BYTES && !text)
        rc = ring_add(kr, data, what, 1, err);
    else if (text)
        rc = parse_text(kr, data, len, what, err);
    else
        rc = wk_err_set(err, WK_E_INVAL,
                        "%s: neither 32 raw bytes nor lines of 64 hex digits "
                        "(%zu bytes)",
                        what, len);
    if (rc != WK_OK) {
        seal_keyring_free(kr);
        return rc;
    }
    *out = kr;
    return WK_OK;
}

enum wk_code seal_keyring_load(const char *path, struct seal_keyring **out,
                               struct wk_err *err)
{
    unsigned char buf[SEAL_FILE_MAX + 1];
    size_t len = 0;
    ssize_t got;
    int fd;
    enum wk_code rc;

    *out = NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return wk_err_sys(err, WK_E_INVAL, errno, "key file '%s'", path);
    while (len < sizeof(buf)) {
        got = read(fd, buf + len, sizeof(buf) - len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            int e = errno;
            close(fd);
            OPENSSL_cleanse(buf, len);
            return wk_err_sys(err, WK_E_INVAL, e, "key file '%s'", path);
        }
        if (got == 0)
            break;
        len += (size_t)got;
    }
    close(fd);
    if (len > SEAL_FILE_MAX) {
        OPENSSL_cleanse(buf, sizeof(buf));
        return wk_err_set(err, WK_E_INVAL,
                          "key file '%s' is larger than %u bytes", path,
                          SEAL_FILE_MAX);
    }
    {
        char what[600];
        snprintf(what, sizeof(what), "key file '%s'", path);
        rc = seal_keyring_parse(buf, len, what, out, err);
    }
    OPENSSL_cleanse(buf, len);
    return rc;
}

size_t seal_keyring_count(const struct seal_keyring *kr)
{
    return kr ? kr->n : 0;
}

const char *seal_keyring_id(const struct seal_keyring *kr, size_t i)
{
    return kr && i < kr->n ? kr->keys[i].id : "";
}

void seal_keyring_free(struct seal_keyring *kr)
{
    if (!kr)
        return;
    OPENSSL_cleanse(kr, sizeof(*kr));
    free(kr);
}

static const struct seal_key *ring_find(const struct seal_keyring *kr,
                                        const char *id)
{
    for (size_t i = 0; kr && i < kr->n; i++)
        if (strcmp(kr->keys[i].id, id) == 0)
            return &kr->keys[i];
    return NULL;
}

/* ---- validation ------------------------------------------------------- */

bool seal_key_id_valid(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
            return false;
    return n == SEAL_KEY_ID_CHARS;
}

static bool b64_char(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '+' || c == '/';
}

bool seal_wrapped_valid(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!b64_char((unsigned char)s[n]))
            return false;
    return n == SEAL_WRAPPED_CHARS;
}

bool seal_chunk_valid(uint64_t n)
{
    return n >= SEAL_CHUNK_MIN && n <= SEAL_CHUNK_MAX;
}

/* ---- data keys -------------------------------------------------------- */

/* One AES-256-GCM operation on a small buffer (the data key). */
static bool gcm_once(bool enc, const unsigned char *key,
                     const unsigned char *nonce, const unsigned char *aad,
                     size_t aadlen, const unsigned char *in, size_t n,
                     unsigned char *out, unsigned char *tag)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int len = 0;
    bool ok = c != NULL;

    ok = ok && EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, key, nonce,
                                 enc ? 1 : 0) == 1;
    ok = ok && EVP_CipherUpdate(c, NULL, &len, aad, (int)aadlen) == 1;
    ok = ok && EVP_CipherUpdate(c, out, &len, in, (int)n) == 1;
    if (ok && !enc)
        ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, (int)SEAL_TAG_BYTES,
                                 tag) == 1;
    ok = ok && EVP_CipherFinal_ex(c, out + len, &len) == 1;
    if (ok && enc)
        ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, (int)SEAL_TAG_BYTES,
                                 tag) == 1;
    EVP_CIPHER_CTX_free(c);
    return ok;
}

/* AAD of the wrap: label, NUL, spaceId. */
static size_t wrap_aad(const char *space_id, unsigned char *aad, size_t cap)
{
    size_t l = strlen(SEAL_WRAP_LABEL) + 1, s = strlen(space_id);
    if (l + s > cap)
        s = cap - l;
    memcpy(aad, SEAL_WRAP_LABEL, l);
    memcpy(aad + l, space_id, s);
    return l + s;
}

enum wk_code seal_dk_wrap(const struct seal_keyring *kr, const char *space_id,
                          const struct seal_dk *dk, struct seal_info *info,
                          struct wk_err *err)
{
    unsigned char w[SEAL_WRAP_BYTES];
    unsigned char aad[256];
    size_t aadlen;
    const struct seal_key *mk;

    memset(info, 0, sizeof(*info));
    if (!kr || kr->n == 0)
        return wk_err_set(err, WK_E_INVAL, "no encryption key configured");
    mk = &kr->keys[0];
    /* a random nonce per wrap: a key is wrapped only a few times */
    if (RAND_bytes(w, (int)SEAL_NONCE_BYTES) != 1)
        return wk_err_set(err, WK_E_INTERNAL, "no random bytes (OpenSSL)");
    aadlen = wrap_aad(space_id, aad, sizeof(aad));
    if (!gcm_once(true, mk->key, w, aad, aadlen, dk->key, SEAL_KEY_BYTES,
                  w + SEAL_NONCE_BYTES, w + SEAL_NONCE_BYTES + SEAL_KEY_BYTES))
        return wk_err_set(err, WK_E_INTERNAL, "wrapping a data key failed");
    EVP_EncodeBlock((unsigned char *)info->wrapped, w, (int)sizeof(w));
    memcpy(info->key_id, mk->id, sizeof(info->key_id));
    info->chunk_bytes = dk->chunk_bytes;
    info->on = true;
    return WK_OK;
}

enum wk_code seal_dk_new(const struct seal_keyring *kr, const char *space_id,
                         struct seal_info *info, struct seal_dk *dk,
                         struct wk_err *err)
{
    enum wk_code rc;

    memset(info, 0, sizeof(*info));
    memset(dk, 0, sizeof(*dk));
    if (!kr || kr->n == 0)
        return wk_err_set(err, WK_E_INVAL, "no encryption key configured");
    if (RAND_bytes(dk->key, (int)SEAL_KEY_BYTES) != 1)
        return wk_err_set(err, WK_E_INTERNAL, "no random bytes (OpenSSL)");
    dk->chunk_bytes = SEAL_CHUNK_BYTES;
    rc = seal_dk_wrap(kr, space_id, dk, info, err);
    if (rc != WK_OK)
        seal_dk_wipe(dk);
    return rc;
}

enum wk_code seal_dk_open(const struct seal_keyring *kr, const char *space_id,
                          const struct seal_info *info, struct seal_dk *dk,
                          struct wk_err *err)
{
    unsigned char w[SEAL_WRAP_BYTES + 3];
    unsigned char aad[256];
    size_t aadlen;
    const struct seal_key *mk;
    int n;

    memset(dk, 0, sizeof(*dk));
    if (!info->on || !seal_key_id_valid(info->key_id) ||
        !seal_wrapped_valid(info->wrapped) ||
        !seal_chunk_valid(info->chunk_bytes))
        return wk_err_set(err, WK_E_CORRUPT, "malformed encryption record");
    mk = ring_find(kr, info->key_id);
    if (!mk)
        return wk_err_set(err, WK_E_INVAL,
                          "archive is encrypted with key %s, which "
                          "SILA_ENCRYPTION_KEY_FILE does not hold",
                          info->key_id);
    n = EVP_DecodeBlock(w, (const unsigned char *)info->wrapped,
                        (int)SEAL_WRAPPED_CHARS);
    if (n != (int)SEAL_WRAP_BYTES)
        return wk_err_set(err, WK_E_CORRUPT, "malformed wrapped key");
    aadlen = wrap_aad(space_id, aad, sizeof(aad));
    if (!gcm_once(false, mk->key, w, aad, aadlen, w + SEAL_NONCE_BYTES,
                  SEAL_KEY_BYTES, dk->key,
                  w + SEAL_NONCE_BYTES + SEAL_KEY_BYTES)) {
        seal_dk_wipe(dk);
        return wk_err_set(err, WK_E_CORRUPT,
                          "the archive's data key does not authenticate under "
                          "key %s (tampered manifest, or an archive of "
                          "another space)",
                          info->key_id);
    }
    dk->chunk_bytes = info->chunk_bytes;
    return WK_OK;
}

void seal_dk_wipe(struct seal_dk *dk)
{
    OPENSSL_cleanse(dk, sizeof(*dk));
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
