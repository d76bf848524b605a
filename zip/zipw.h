/*
 * zipw: a streaming ZIP writer over a store_writer, built on libarchive's
 * ZIP format writer (deflate or stored per entry, ZIP64 whenever needed,
 * sizes and CRC after each entry's data so the output is append-only).
 *
 * Every byte handed to the sink is also hashed (SHA-256; unless no_hash:
 * a sealing sink hashes what it stores instead) and counted, so the
 * archive's checksum and size are known at zipw_finish() without reading it
 * back. Memory: one libarchive work buffer plus one output block
 * (ZIPW_BLOCK_BYTES); never a function of entry or archive size.
 *
 * Ownership: the sink is borrowed and must outlive the zipw; zipw_finish()
 * writes the central directory but does not commit the sink. Calls block
 * while the sink blocks. Errors: wk_code + err; after any error the zipw is
 * only good for zipw_free().
 */
#ifndef WK_ZIP_ZIPW_H
#define WK_ZIP_ZIPW_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <time.h>

#include "common/wk_err.h"

struct store_writer;
struct zipw;

#define ZIPW_BLOCK_BYTES (64u * 1024u)

struct zipw_opts {
    int level;    /* deflate level 1..9; 0 = store every entry */
    bool no_hash; /* skip the SHA-256 (the sink hashes what it stores) */
};

enum wk_code zipw_new(struct store_writer *sink, const struct zipw_opts *opts,
                      struct zipw **out, struct wk_err *err);

/* Start an entry: name is the path inside the ZIP ("space-v1/space.json"),
 * size the exact number of bytes that will follow, mtime unix seconds.
 * store != 0 writes the entry without compression. */
enum wk_code zipw_entry_begin(struct zipw *zw, const char *name, uint64_t size,
                              time_t mtime, int store, struct wk_err *err);
/* Append entry data; the total must equal the size given to begin. */
enum wk_code zipw_entry_write(struct zipw *zw, const void *p, size_t n,
                              struct wk_err *err);
enum wk_code zipw_entry_end(struct zipw *zw, struct wk_err *err);

/* Write the central directory and flush everything to the sink. */
enum wk_code zipw_finish(struct zipw *zw, struct wk_err *err);

/* What the writer wrote for one entry, from the data it was handed. */
struct zipw_rec {
    uint64_t size;  /* uncompressed bytes */
    uint32_t crc32; /* CRC-32 of those bytes */
    bool stored;    /* written without compression */
};

/* The entries completed so far (zipw_entry_end), in archive order: *n of
 * them. Borrowed until the next zipw call or zipw_free(). Memory: one
 * struct zipw_rec (16 bytes) per entry, the only part of a zipw that grows
 * with the entry count; a verifier reads it back entry by entry against
 * the central directory the store holds. */
const struct zipw_rec *zipw_entries(const struct zipw *zw, size_t *n);

/* Bytes handed to the sink so far, and (after finish) their SHA-256. */
uint64_t zipw_bytes_out(const struct zipw *zw);
void zipw_sha256_hex(const struct zipw *zw, char hex[65]);

void zipw_free(struct zipw *zw);

#endif
