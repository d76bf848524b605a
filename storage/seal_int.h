/*
 * seal_int: what seal.c (the chunked object) and seal_key.c (the keys)
 * share. Not for use outside storage/.
 */
#ifndef WK_STORAGE_SEAL_INT_H
#define WK_STORAGE_SEAL_INT_H

/* AES-256-GCM nonces, of the chunks and of the wrapped data key. */
#define SEAL_NONCE_BYTES 12u

#endif
