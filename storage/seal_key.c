/* seal's keys: the keyring of master keys (parsed from the key file, one
 * 64-hex-digit key a line, ids derived by HMAC), the validation of key ids,
 * wrapped keys and chunk sizes, and the per-archive data key, wrapped with
 * AES-256-GCM under a master key and bound to the spaceId. See seal.h and
 * docs/PROTOCOL.md. */
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
#include "storage/seal_int.h"

#define SEAL_WRAP_BYTES (SEAL_NONCE_BYTES + SEAL_KEY_BYTES + SEAL_TAG_BYTES)
#define SEAL_FILE_MAX   (64u * 1024u)
#define SEAL_ID_LABEL   "sila-archiver key id v1"
#define SEAL_WRAP_LABEL "sila-seal-v1 data key"

struct seal_key {
    unsigned char key[SEAL_KEY_BYTES];
    char id[SEAL_KEY_ID_CHARS + 1];
};

struct seal_keyring {
    size_t n;
    struct seal_key keys[SEAL_KEYS_MAX];
};

static void key_id(const unsigned char key[SEAL_KEY_BYTES],
                   char id[SEAL_KEY_ID_CHARS + 1])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;

    HMAC(EVP_sha256(), key, (int)SEAL_KEY_BYTES,
         (const unsigned char *)SEAL_ID_LABEL, strlen(SEAL_ID_LABEL), mac,
         &maclen);
    wk_hex_encode(mac, SEAL_KEY_ID_CHARS / 2, id);
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
