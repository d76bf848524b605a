/*
 * seal: client-side envelope encryption of archive objects, "sila-seal-v1"
 * (docs/PROTOCOL.md, "Client-side encryption", is the normative format).
 *
 * Keys. A keyring holds the operator's master keys (256-bit, from
 * SILA_ENCRYPTION_KEY_FILE); the first one seals new archives, every one
 * opens old archives. A key's id is derived from the key itself
 * (HMAC-SHA256(key, "sila-archiver key id v1"), first 8 bytes in hex), so
 * ids never collide by mistake and never need configuring. Each archive
 * has its own random data key, stored only wrapped (AES-256-GCM under the
 * master key, bound to the spaceId) in the manifest.
 *
 * Object. A 16-byte header ("SILASEAL", version, chunk size), then the ZIP
 * in chunks of chunk_bytes plaintext, each AES-256-GCM sealed on its own
 * (nonce = chunk index and a last-chunk flag, AAD = the header) and
 * followed by its 16-byte tag. Any changed, missing, reordered or appended
 * byte fails a tag; a cut at a chunk boundary fails the last-chunk flag.
 * A plaintext range maps to whole chunks, so range reads (cat) still work.
 *
 * Ownership: a keyring is released with seal_keyring_free(); a data key is
 * plain data, wiped with seal_dk_wipe(). Nothing blocks except through the
 * store_writer a seal writer wraps. Key material never reaches a message,
 * a log line or an error (only key ids do).
 */
#ifndef WK_STORAGE_SEAL_H
#define WK_STORAGE_SEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/wk_buf.h"
#include "common/wk_err.h"

struct store_writer;
struct seal_keyring;
struct seal_writer;
struct seal_dec;

#define SEAL_SCHEME        "sila-seal-v1"
#define SEAL_ALGORITHM     "AES-256-GCM"
#define SEAL_KEY_BYTES     32u
#define SEAL_KEY_ID_CHARS  16u /* hex */
#define SEAL_KEYS_MAX      16u
#define SEAL_HEADER_BYTES  16u
#define SEAL_TAG_BYTES     16u
#define SEAL_CHUNK_BYTES   (64u * 1024u) /* what new archives use */
#define SEAL_CHUNK_MIN     (4u * 1024u)
#define SEAL_CHUNK_MAX     (16u * 1024u * 1024u)
#define SEAL_WRAPPED_CHARS 80u /* base64 of nonce(12) + key(32) + tag(16) */

/* What the manifest records about a sealed archive ("encryption"). */
struct seal_info {
    bool on;                              /* false: a plain ZIP object */
    char key_id[SEAL_KEY_ID_CHARS + 1];   /* master key that wraps it */
    char wrapped[SEAL_WRAPPED_CHARS + 1]; /* base64 */
    uint32_t chunk_bytes;
};

/* An archive's data key, unwrapped. Plain data: wipe it when done. */
struct seal_dk {
    unsigned char key[SEAL_KEY_BYTES];
    uint32_t chunk_bytes;
};

/* The keyring from a key file: exactly 32 raw bytes (one key), or text with
 * one key of 64 hex digits per line ('#' comments and blank lines allowed),
 * the first line being the current key. WK_E_INVAL names the file and the
 * line, never the content. */
enum wk_code seal_keyring_load(const char *path, struct seal_keyring **out,
                               struct wk_err *err);
/* The same from memory (what the file holds); what names it in messages. */
enum wk_code seal_keyring_parse(const void *data, size_t len, const char *what,
                                struct seal_keyring **out, struct wk_err *err);
size_t seal_keyring_count(const struct seal_keyring *kr);
/* Id of key i (0 = current), SEAL_KEY_ID_CHARS hex digits. */
const char *seal_keyring_id(const struct seal_keyring *kr, size_t i);
void seal_keyring_free(struct seal_keyring *kr);

/* True when s is a well-formed key id / wrapped key / chunk size (for the
 * manifest parser). */
bool seal_key_id_valid(const char *s);
bool seal_wrapped_valid(const char *s);
bool seal_chunk_valid(uint64_t n);

/* A new random data key for an archive of space_id, wrapped under the
 * current master key: info and dk are filled. */
enum wk_code seal_dk_new(const struct seal_keyring *kr, const char *space_id,
                         struct seal_info *info, struct seal_dk *dk,
                         struct wk_err *err);
/* Wrap an existing data key dk (of an archive of space_id) under the
 * current master key into info: rotation without touching the archive. */
enum wk_code seal_dk_wrap(const struct seal_keyring *kr, const char *space_id,
                          const struct seal_dk *dk, struct seal_info *info,
                          struct wk_err *err);
/* Unwrap an archive's data key. WK_E_INVAL when the keyring lacks the key
 * id (not configured), WK_E_CORRUPT when the wrapped key does not
 * authenticate (tampered, or moved from another space). */
enum wk_code seal_dk_open(const struct seal_keyring *kr, const char *space_id,
                          const struct seal_info *info, struct seal_dk *dk,
                          struct wk_err *err);
void seal_dk_wipe(struct seal_dk *dk);

/* Stored size of plain bytes sealed with chunk_bytes, and the reverse
 * (WK_E_CORRUPT when no plaintext seals to that size). */
uint64_t seal_stored_size(uint64_t plain, uint32_t chunk_bytes);
enum wk_code seal_plain_size(uint64_t stored, uint32_t chunk_bytes,
                             uint64_t *plain, struct wk_err *err);

/* A writer that seals what it is given into inner, which it owns from now
 * on (also on failure). The sealed stream is hashed (SHA-256) and counted
 * on its way to inner. Release with store_writer_free(seal_writer_sink()),
 * which frees inner (aborting it unless committed). */
enum wk_code seal_writer_new(struct store_writer *inner,
                             const struct seal_dk *dk, struct seal_writer **out,
                             struct wk_err *err);
struct store_writer *seal_writer_sink(struct seal_writer *sw);
/* Stored bytes handed to inner so far, and (after commit) their SHA-256. */
uint64_t seal_writer_bytes_out(const struct seal_writer *sw);
void seal_writer_sha256_hex(const struct seal_writer *sw, char hex[65]);

/* Sequential opening of a whole sealed object of stored_size bytes: feed
 * its bytes in order, in pieces of any size; the plaintext of each chunk
 * is appended to out once its tag checks (a piece of chunk_bytes + 16
 * bytes can complete two chunks: the end of one and a short last one).
 * seal_dec_final() fails unless the whole object came through. Tampering is
 * WK_E_CORRUPT. */
enum wk_code seal_dec_new(const struct seal_dk *dk, uint64_t stored_size,
                          struct seal_dec **out, struct wk_err *err);
enum wk_code seal_dec_update(struct seal_dec *d, const void *p, size_t n,
                             struct wk_buf *out, struct wk_err *err);
enum wk_code seal_dec_final(struct seal_dec *d, struct wk_err *err);
/* Stored bytes that complete the next chunk (the header first): a piece of
 * exactly this size, or fed from a chunk boundary, is opened in place,
 * without a copy. 0 once everything came. */
size_t seal_dec_want(const struct seal_dec *d);
void seal_dec_free(struct seal_dec *d);

/* Random access. The stored range [*s_off, *s_off + *s_len) holds the whole
 * chunks that cover plaintext [off, off + len) (clamped to plain_size);
 * *p_off is the plaintext offset of the first of them. */
void seal_range(uint64_t plain_size, uint32_t chunk_bytes, uint64_t off,
                uint64_t len, uint64_t *s_off, uint64_t *s_len,
                uint64_t *p_off);
/* Open the whole chunks of such a range (stored bytes in p, n) and append
 * their plaintext to out. */
enum wk_code seal_open_range(const struct seal_dk *dk, uint64_t plain_size,
                             uint64_t s_off, const void *p, size_t n,
                             struct wk_buf *out, struct wk_err *err);

#endif
