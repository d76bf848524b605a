/*
 * zipcd: the one parser of a ZIP's central directory and end records.
 *
 * Two layers. The record layer (zipcd_record_len, zipcd_record_parse,
 * zipcd_zip64_extra, zipcd_z64_end_problem, zipcd_eocd_matches and
 * zipcd_eocd_problem) decodes bytes the caller holds; zipr_cd.c uses it for
 * the central directory it reads at the end of a streamed archive. The store
 * layer, zipcd_read(), reads an archive object's end records and central
 * directory with ranged GETs (a sealed archive through storage/seal.h, every
 * chunk authenticated before use) and hands each entry to a callback, checking
 * the structure: every offset inside the object, the central directory ending
 * exactly where the ZIP64 end record (or the end record) starts, ZIP64 records
 * present whenever a value needs them, and the entry count.
 *
 * Cost of zipcd_read: one GET for the tail (ZIPCD_TAIL_BYTES: the end
 * records, a comment and, for up to about a thousand entries, the central
 * directory itself), one more when the ZIP64 end record lies before that
 * tail, and ceil(cd_size / block_bytes) GETs for a central directory that
 * does not fit in the tail. Memory: the tail buffer plus one block plus
 * one record (at most ZIPCD_RECORD_MAX), plus a sealed chunk on each side;
 * never a function of the entry count.
 *
 * Ownership: strings handed to the callback are borrowed for the call.
 * Blocks while reading. Errors: a bad archive is WK_E_CORRUPT with a
 * message that names the entry or the record; store failures come back as
 * they are; a callback's failure is returned as it is.
 */
#ifndef WK_ZIP_ZIPCD_H
#define WK_ZIP_ZIPCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/wk_err.h"

struct store;
struct seal_dk;

/* Fixed part of a central directory record; the longest whole record. */
#define ZIPCD_RECORD_FIXED 46u
#define ZIPCD_RECORD_MAX   (46u + 3u * 65535u)
/* Bytes read from the end of the archive first. */
#define ZIPCD_TAIL_BYTES (128u * 1024u)
/* Default and smallest block for streaming a large central directory. */
#define ZIPCD_BLOCK_BYTES (1024u * 1024u)
#define ZIPCD_BLOCK_MIN   (64u * 1024u)

/* One central directory record, decoded (ZIP64 values applied). */
struct zipcd_entry {
    const char *name; /* borrowed; zipcd_read: NUL-terminated copy (a NUL
                         inside shows as name_len != strlen(name));
                         zipcd_record_parse: points into the record */
    size_t name_len;
    uint64_t index;  /* 0-based position in the central directory */
    uint64_t csize;  /* compressed */
    uint64_t usize;  /* uncompressed */
    uint64_t offset; /* of the local header */
    uint32_t crc;    /* CRC-32 */
    uint32_t disk;
    uint32_t ext_attr;     /* external attributes */
    uint16_t version_made; /* high byte: the system (3 = Unix) */
    uint16_t method;       /* 0 stored, 8 deflate */
    uint16_t flags;        /* general purpose bit flags */
    bool zip64;            /* carries a ZIP64 extra field */
    bool extra_ok;         /* its ZIP64 extra field is well formed and holds
                              every value the fixed fields defer to it */
};

/* What the end records say, checked against the central directory. */
struct zipcd_info {
    uint64_t entries;
    uint64_t cd_offset;
    uint64_t cd_size;
    uint64_t eocd_offset; /* of the end record (plain ZIP offsets) */
    uint64_t zip_size;    /* plain ZIP bytes (sealed: after opening) */
    bool zip64;           /* ZIP64 end record and locator present */
    unsigned requests;    /* ranged GETs issued */
};

/* ---- record layer ---- */

/* The full length of the record whose fixed part is at p (46 bytes). */
size_t zipcd_record_len(const unsigned char *p);

/* Decode the whole record at p (zipcd_record_len(p) bytes, signature
 * checked by the caller). e->name points into p. */
void zipcd_record_parse(const unsigned char *p, struct zipcd_entry *e);

/* The ZIP64 extra field (0x0001) in extra x (m bytes): the 64-bit values
 * of those fields that hold 0xffffffff (0xffff for the disk), in the order
 * usize, csize, offset, disk; a NULL pointer skips a field. false if the
 * extra data is malformed, or the ZIP64 field lacks a deferred value (with
 * no ZIP64 field at all, *found is false and the values stay as they are). */
bool zipcd_zip64_extra(const unsigned char *x, size_t m, bool *found,
                       uint64_t *usize, uint64_t *csize, uint64_t *offset,
                       uint32_t *disk);

/* The ZIP64 end record at p (56 bytes) against the central directory:
 * NULL, or what is wrong (written into why). */
const char *zipcd_z64_end_problem(const unsigned char *p, uint64_t n_cd,
                                  uint64_t cd_size, uint64_t cd_start,
                                  char *why, size_t whylen);

/* The end record at p (22 bytes) says exactly this central directory: each
 * field holds the value, or (zip64 only) the ZIP64 sentinel; without a ZIP64
 * end record, no value may need one. */
bool zipcd_eocd_matches(const unsigned char *p, uint64_t n_cd, uint64_t cd_size,
                        uint64_t cd_start, bool zip64);

/* The same check as a message: NULL when the end record at p matches,
 * else what it says against what the central directory is (in why). */
const char *zipcd_eocd_problem(const unsigned char *p, uint64_t n_cd,
                               uint64_t cd_size, uint64_t cd_start, bool zip64,
                               char *why, size_t whylen);

/* ---- store layer ---- */

/* Called for every record in order; a failure stops the read. */
typedef enum wk_code (*zipcd_entry_cb)(const struct zipcd_entry *e, void *ud,
                                       struct wk_err *err);

/* Read the central directory of the ZIP object key (stored_size bytes as
 * stored; sealed with dk, NULL for a plain ZIP), block_bytes per GET of a
 * central directory that does not fit in the tail (0: ZIPCD_BLOCK_BYTES;
 * less than ZIPCD_BLOCK_MIN is raised to it). cb may be NULL; info (may be
 * NULL) is filled on success. Checks, besides the end records: every
 * record's signature, its ZIP64 extra where a value needs it, disk 0, its
 * local header and data inside the part before the central directory, no
 * two entries overlapping (checked between neighbours in offset order), the
 * record count. Names are not judged here (the callback does that). */
enum wk_code zipcd_read(struct store *st, const char *key, uint64_t stored_size,
                        const struct seal_dk *dk, size_t block_bytes,
                        zipcd_entry_cb cb, void *ud, struct zipcd_info *info,
                        struct wk_err *err);

#endif
