/* store_hash: streaming SHA-256 over OpenSSL EVP (see store_hash.h). */
#include "storage/store_hash.h"

#include <openssl/evp.h>
#include <stdlib.h>

#include "common/wk_parse.h"

struct store_sha256 {
    EVP_MD_CTX *ctx; /* owned */
};

enum wk_code store_sha256_new(struct store_sha256 **out, struct wk_err *err)
{
    struct store_sha256 *h = calloc(1, sizeof(*h));
    if (!h)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    h->ctx = EVP_MD_CTX_new();
    if (!h->ctx || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
        store_sha256_free(h);
        return wk_err_set(err, WK_E_INTERNAL, "sha256 init failed");
    }
    *out = h;
    return WK_OK;
}

void store_sha256_update(struct store_sha256 *h, const void *p, size_t n)
{
    EVP_DigestUpdate(h->ctx, p, n);
}

void store_sha256_final_hex(struct store_sha256 *h, char hex[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    EVP_DigestFinal_ex(h->ctx, md, &len);
    wk_hex_encode(md, len, hex);
    EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL);
}

void store_sha256_reset(struct store_sha256 *h)
{
    EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL);
}

void store_sha256_free(struct store_sha256 *h)
{
    if (!h)
        return;
    EVP_MD_CTX_free(h->ctx);
    free(h);
}

void store_sha256_hex(const void *p, size_t n, char hex[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    EVP_Digest(p, n, md, &len, EVP_sha256(), NULL);
    wk_hex_encode(md, len, hex);
}
