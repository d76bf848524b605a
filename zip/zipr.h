/*
 * zipr: a streaming ZIP reader (libarchive) for archives we do not trust.
 *
 * Bytes come from a pull callback (the unarchive job reads the archive in
 * ranged GETs and hashes them on the way). Every entry is checked before
 * its data is handed out: the name must satisfy zipr_name_valid(), the
 * entry must be a regular file (no symlink, hard link, directory, device),
 * and no name may repeat. While data is read, limits are enforced on the
 * bytes actually produced (not on sizes the archive declares): the total
 * over all entries, and the expansion ratio of each entry (zip bombs),
 * unless the caller vouches for the entry's size (zipr_set_declared():
 * then the entry must produce exactly that size).
 * libarchive verifies each entry's CRC-32; a mismatch, a truncated or
 * corrupt archive is WK_E_CORRUPT. Limit violations and refused entries
 * are WK_E_CORRUPT too (permanent: the archive is bad), with a message
 * that names the entry and the rule. A failure of the read callback is
 * returned as it is (its code and message), never turned into CORRUPT.
 *
 * The central directory is read too, after the last entry, and checked
 * against the entries (names, offsets, sizes, CRCs, and file types, which
 * many writers put only there); nothing may follow the end record. So a
 * refusal can come from the zipr_next() that would have reported eof, after
 * every entry's data was handed out: nothing is final before eof.
 *
 * Memory: libarchive's decompression state, up to 1 MiB of raw bytes kept
 * for our own parsing, and the name set (bounded by max_entries).
 * Ownership: zipr_free() releases everything; strings in struct zipr_entry
 * are valid until the next zipr_next(). Calls block only inside the read
 * callback. Only zip/ includes archive.h (zipr*.c, zipw.c, zcat.c).
 */
#ifndef WK_ZIP_ZIPR_H
#define WK_ZIP_ZIPR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/wk_err.h"

struct zipr;

/* Next piece of the archive in (*p, *n), n == 0 at the end. The memory stays
 * valid until the next call. */
typedef enum wk_code (*zipr_read_cb)(void *ud, const void **p, size_t *n,
                                     struct wk_err *err);

struct zipr_limits {
    uint64_t max_total_bytes; /* sum of entry bytes produced */
    uint64_t max_entries;     /* entries (and names remembered) */
    unsigned max_ratio;       /* uncompressed / compressed per entry ... */
    uint64_t ratio_min_bytes; /* ... checked once an entry passes this */
};

struct zipr_entry {
    const char *name; /* borrowed until the next zipr_next() */
    uint64_t size;    /* declared size; UINT64_MAX when not declared (with
                         a data descriptor, a 0 in the header) */
    time_t mtime;
};

/* lim->max_ratio must be at least 1. Reads the archive's first bytes.
 * Release with zipr_free(). */
enum wk_code zipr_new(zipr_read_cb cb, void *ud, const struct zipr_limits *lim,
                      struct zipr **out, struct wk_err *err);

/* An authority for entry sizes, set before the first zipr_next(): what a
 * central directory read beforehand (zipcd) declares for the entry at
 * index (0-based, archive order). When declared returns true, that entry
 * is held to exactly *usize bytes (refused the moment its data goes past
 * them, or when it ends short; a local header declaring another size is
 * refused before any data) and to the CRC-32 *crc, and max_ratio does not
 * apply to it: its expansion is bounded by a size the archive recorded,
 * and the total still by max_total_bytes. Without it, or when it returns
 * false for an entry, max_ratio applies (a foreign archive). ud is
 * borrowed and must outlive zr. */
typedef bool (*zipr_declared_cb)(void *ud, uint64_t index, uint64_t *usize,
                                 uint32_t *crc);
void zipr_set_declared(struct zipr *zr, zipr_declared_cb declared, void *ud);

/* Next entry header, validated; *eof = true after the last entry, once
 * the central directory and end records were read and checked (the whole
 * archive has come through the callback by then). The rest of an entry
 * not read to its end is read and checked first. */
enum wk_code zipr_next(struct zipr *zr, struct zipr_entry *e, bool *eof,
                       struct wk_err *err);

/* Entry data: up to len bytes into buf; *nread == 0 at the entry's end
 * (which is when the CRC has been checked). */
enum wk_code zipr_read(struct zipr *zr, void *buf, size_t len, size_t *nread,
                       struct wk_err *err);

/* Bytes of entry data produced so far, over all entries. */
uint64_t zipr_total_bytes(const struct zipr *zr);

void zipr_free(struct zipr *zr);

/* The name policy (common/wk_path.h, wk_name_problem) for an entry name or
 * a space key without "active/<spaceId>/": UTF-8, relative, no empty, "."
 * or ".." component, no backslash, NUL or control character, at most
 * WK_NAME_MAX bytes; anywhere in the space (no layout rule). The entry
 * point the archive job, restore, `cat` and migrate call. On false, why
 * (if not NULL) says which rule failed, e.g. "'..' component". */
bool zipr_name_valid(const char *name, char *why, size_t whylen);

#endif
