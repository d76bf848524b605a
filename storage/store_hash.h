/*
 * store_hash: streaming SHA-256 (OpenSSL EVP), so that jobs can hash what
 * they move without including OpenSSL. A hash is owned by its creator and
 * released with store_sha256_free(). Nothing blocks.
 */
#ifndef WK_STORAGE_STORE_HASH_H
#define WK_STORAGE_STORE_HASH_H

#include <stddef.h>

#include "common/wk_err.h"

struct store_sha256;

enum wk_code store_sha256_new(struct store_sha256 **out, struct wk_err *err);
void store_sha256_update(struct store_sha256 *h, const void *p, size_t n);
/* Lowercase hex digest into hex[65]; the hash can be reused after reset. */
void store_sha256_final_hex(struct store_sha256 *h, char hex[65]);
void store_sha256_reset(struct store_sha256 *h);
void store_sha256_free(struct store_sha256 *h);

/* One-shot convenience. */
void store_sha256_hex(const void *p, size_t n, char hex[65]);

#endif
