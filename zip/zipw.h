/*
 * zipw: a streaming ZIP writer over a store_writer. It writes the records
 * itself (APPNOTE 6.3: local file headers, data descriptors, the central
 * directory, ZIP64 extra fields and end records) and deflates with zlib;
 * the output is append-only, so it can go straight into a multipart
 * upload.
 *
 * Two kinds of entries, so that every reader opens the archive, streaming
 * ones too (Java's ZipInputStream refuses a stored entry with a data
 * descriptor):
 * - stored (method 0), zipw_entry_begin_stored(): the caller knows the
 *   CRC-32 up front (it holds the object whole); CRC-32 and sizes are in
 *   the local header, no data descriptor (bit 3 clear). The CRC is checked
 *   again against the data as it is written.
 * - deflated (method 8), zipw_entry_begin(): the sizes and CRC follow the
 *   data in a data descriptor (bit 3); the local header holds the
 *   uncompressed size. store != 0 (content that is compressed already)
 *   deflates at level 0: stored deflate blocks, 5 bytes per 64 KiB, at
 *   memcpy speed.
 * ZIP64 whenever a size, an offset or the entry count needs it.
 *
 * Every byte handed to the sink is also hashed (SHA-256; unless no_hash:
 * a sealing sink hashes what it stores instead) and counted, so the
 * archive's checksum and size are known at zipw_finish() without reading it
 * back. Memory: one zlib deflate state (~300 KiB) plus one output block
 * (ZIPW_BLOCK_BYTES), plus, per entry, its central directory record (46
 * bytes + the name + ~40 bytes of extra fields) and its name in the
 * duplicate check until zipw_finish(); never a function of entry sizes.
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
    int level;    /* deflate level 1..9; 0 = no compression (level 0) */
    bool no_hash; /* skip the SHA-256 (the sink hashes what it stores) */
};

enum wk_code zipw_new(struct store_writer *sink, const struct zipw_opts *opts,
                      struct zipw **out, struct wk_err *err);

/* Start a deflated entry (method 8, data descriptor): name is the path
 * inside the ZIP ("space-v1/space.json"), size the exact number of bytes
 * that will follow, mtime unix seconds. store != 0 (content compressed
 * already, or an archive of level 0) deflates at level 0. */
enum wk_code zipw_entry_begin(struct zipw *zw, const char *name, uint64_t size,
                              time_t mtime, int store, struct wk_err *err);
/* Start a stored entry (method 0) whose data has CRC-32 crc (see
 * zipw_crc32): CRC-32 and sizes in the local header, no data descriptor.
 * The data written must have that CRC, or zipw_entry_end() fails
 * (WK_E_INTERNAL: the header is out already). */
enum wk_code zipw_entry_begin_stored(struct zipw *zw, const char *name,
                                     uint64_t size, time_t mtime, uint32_t crc,
                                     struct wk_err *err);
/* Append entry data; the total must equal the size given to begin. */
enum wk_code zipw_entry_write(struct zipw *zw, const void *p, size_t n,
                              struct wk_err *err);
enum wk_code zipw_entry_end(struct zipw *zw, struct wk_err *err);

/* Copy an entry whole from an earlier archive written by zipw (a re-archive
 * of a space that barely changed): its local header, data and data
 * descriptor, rec_len bytes, handed over in order with zipw_copy_write(),
 * placed at the current offset. name, usize, csize and crc are the entry's
 * values in that archive's central directory. The record is checked as it
 * passes: the local header's signature, name, method (0 or 8), no
 * encryption; a stored entry with its CRC-32 and sizes in the header and no
 * data descriptor (data CRC-checked on the way); a deflated one with a
 * data descriptor that says crc and both sizes (its data is not inflated);
 * and header + data + descriptor = rec_len. Extra fields other than ZIP64
 * and UT, or more than ZIPW_CP_EXTRA_MAX bytes of them, are refused (not
 * a record zipw wrote). Failures are WK_E_CORRUPT (the zipw is then
 * unusable: write the archive again without copies). The central
 * directory record is rebuilt from the header (flags, method, DOS time,
 * the UT mtime, ZIP64) with the new offset, so the new archive holds what
 * a fresh entry of the same bytes and mtime would. */
enum wk_code zipw_copy_begin(struct zipw *zw, const char *name, uint64_t usize,
                             uint64_t csize, uint32_t crc, uint64_t rec_len,
                             struct wk_err *err);
enum wk_code zipw_copy_write(struct zipw *zw, const void *p, size_t n,
                             struct wk_err *err);
enum wk_code zipw_copy_end(struct zipw *zw, struct wk_err *err);

/* Write the central directory and flush everything to the sink. */
enum wk_code zipw_finish(struct zipw *zw, struct wk_err *err);

/* What the writer wrote for one entry, from the data it was handed. */
struct zipw_rec {
    uint64_t size;  /* uncompressed bytes */
    uint32_t crc32; /* CRC-32 of those bytes */
    bool stored;    /* method 0 (zipw_entry_begin_stored), else method 8 */
};

/* The entries completed so far (zipw_entry_end), in archive order: *n of
 * them. Borrowed until the next zipw call or zipw_free(). Memory: one
 * struct zipw_rec (16 bytes) per entry; a verifier reads it back entry by
 * entry against the central directory the store holds. */
const struct zipw_rec *zipw_entries(const struct zipw *zw, size_t *n);

/* The CRC-32 (ZIP's, zlib's crc32()) of p[0..n) continued from crc (0 to
 * start). */
uint32_t zipw_crc32(uint32_t crc, const void *p, size_t n);

/* Bytes handed to the sink so far, and (after finish) their SHA-256. */
uint64_t zipw_bytes_out(const struct zipw *zw);
void zipw_sha256_hex(const struct zipw *zw, char hex[65]);

void zipw_free(struct zipw *zw);

#endif
