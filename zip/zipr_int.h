/*
 * zipr_int: what the files of the zipr module share (zipr.c the API and
 * errors, zipr_src.c the raw bytes, zipr_entry.c the local header and its
 * rules, zipr_data.c the data path and limits, zipr_cd.c the central
 * directory check): the reader's state and the functions between them.
 * Not for use outside zip/zipr*.c.
 */
#ifndef WK_ZIP_ZIPR_INT_H
#define WK_ZIP_ZIPR_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/wk_err.h"
#include "zip/zip_fmt.h"
#include "zip/zipr.h"

struct archive;
struct archive_entry;

/* Largest piece handed to libarchive at once. */
#define ZIPR_PIECE_BYTES ((size_t)64 * 1024)
/* Raw bytes kept for our own parsing: a local header (30 + 2 x 64 KiB), a
 * central directory record (46 + 3 x 64 KiB), plus one piece, fit. */
#define ZIPR_CAPTURE_MAX ((size_t)1024 * 1024)
/* Names in messages are cut to this many bytes. */
#define ZIPR_SHOWN_MAX 100u

struct zipr_rec {
    char *name; /* owned; valid UTF-8, no NUL inside */
    size_t name_len;
    uint64_t offset; /* of the local header */
    uint64_t csize;
    uint64_t usize;
    uint32_t crc; /* the one libarchive checked the data against */
    uint16_t method;
    bool in_cd;
};

struct zipr {
    struct archive *ar; /* owned */
    zipr_read_cb cb;
    void *ud;                     /* borrowed: the callback's */
    zipr_declared_cb declared_cb; /* NULL: no authority for sizes */
    void *declared_ud;            /* borrowed: declared's */
    struct zipr_limits lim;
    struct wk_err src_err; /* first failure of the callback */

    /* the caller's current piece */
    const unsigned char *src; /* borrowed until the next callback call */
    size_t src_len;
    size_t src_pos;
    bool src_eof;

    /* raw bytes [cap_off, cap_off + cap_len); cap_off + cap_len is the
     * offset of the next byte taken from the callback */
    unsigned char *cap; /* owned */
    size_t cap_len;
    size_t cap_size;
    uint64_t cap_off;
    uint64_t keep_from; /* keep bytes from here on ... */
    bool keep_follow;   /* ... or from what libarchive has not consumed */
    bool cap_overflow;

    /* entries so far, and a hash set of their names */
    struct zipr_rec *recs; /* owned */
    size_t n_recs;
    size_t recs_size;
    size_t *slots; /* owned; index + 1, 0 = empty */
    size_t n_slots;

    /* the current entry */
    char shown[ZIPR_SHOWN_MAX + 4]; /* its name, cut and cleaned */
    bool in_entry;
    bool entry_done;
    uint16_t flags;
    bool zip64;        /* a ZIP64 extra field: 64-bit data descriptor */
    uint64_t declared; /* uncompressed size; UINT64_MAX if unknown */
    bool authority;    /* declared comes from the authority: no ratio */
    uint32_t auth_crc; /* and the CRC-32 it declares */
    uint64_t local_csize;
    uint64_t data_start;
    uint64_t produced;
    const unsigned char *blk; /* borrowed from libarchive until its next call */
    size_t blk_len;

    uint64_t next_hdr; /* where the next header must start */
    uint64_t total;
    bool failed;
    bool done;
};

/* ---- zipr.c: errors ---- */

/* The entry is refused (zr->shown names it): WK_E_CORRUPT, zr fails. */
enum wk_code zipr_refuse(struct zipr *zr, struct wk_err *err, const char *why);
/* A libarchive failure: the caller's read error if that was the cause,
 * else the archive is bad. hdr: the offset of the header libarchive was
 * reading, or UINT64_MAX. */
enum wk_code zipr_ar_fail(struct zipr *zr, uint64_t hdr, struct wk_err *err);
/* The name for messages (see wk_path_shown), into ZIPR_SHOWN_MAX + 4. */
void zipr_show_name(char *dst, const unsigned char *s, size_t len);

/* ---- zipr_src.c: raw bytes ---- */

uint64_t zipr_cap_end(const struct zipr *zr);
/* The kept bytes [off, off + n), or NULL when we do not hold them all. */
const unsigned char *zipr_cap_peek(const struct zipr *zr, uint64_t off,
                                   size_t n);
/* The next piece of at most ZIPR_PIECE_BYTES from the caller (n == 0 at
 * the end), also appended to our copy. */
enum wk_code zipr_src_take(struct zipr *zr, const unsigned char **p, size_t *n);
/* Make [off, off + n) available from the caller's bytes (after libarchive
 * has stopped reading), forgetting everything before off. */
enum wk_code zipr_src_need(struct zipr *zr, uint64_t off, size_t n,
                           const unsigned char **p, struct wk_err *err);
/* archive_read_open() of zr->ar on our read callback: its ARCHIVE_ code. */
int zipr_src_open(struct zipr *zr);

/* ---- zipr_entry.c: local headers, names seen ---- */

struct zipr_rec *zipr_rec_find(const struct zipr *zr, const char *name,
                               size_t len);
/* A file type from external attributes (central directory), or NULL. */
const char *zipr_attr_problem(unsigned system, uint32_t ext);
/* Check the header libarchive just parsed against the raw bytes, and the
 * entry against the rules; fills e. */
enum wk_code zipr_begin_entry(struct zipr *zr, struct archive_entry *ae,
                              struct zipr_entry *e, struct wk_err *err);

/* ---- zipr_data.c: entry data ---- */

/* The entry's next block from libarchive into blk, or entry_done. */
enum wk_code zipr_next_block(struct zipr *zr, struct wk_err *err);

/* ---- zipr_cd.c: the end of the archive ---- */

/* The central directory and end records after the last entry, checked. */
enum wk_code zipr_read_cd(struct zipr *zr, struct wk_err *err);

#endif
