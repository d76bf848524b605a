/*
 * zipw_int: what zipw.c (new entries) and zipw_copy.c (entries copied from
 * an earlier archive) share: the writer's state and its output helpers.
 */
#ifndef WK_ZIP_ZIPW_INT_H
#define WK_ZIP_ZIPW_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <zlib.h>

#include "common/wk_buf.h"
#include "common/wk_err.h"
#include "common/wk_path.h"
#include "zip/zip_fmt.h"
#include "zip/zipw.h"

#define ZIPW_U32_MAX  0xffffffffu
#define ZIPW_U16_MAX  0xffffu
#define ZIPW_UT_BYTES 9u      /* id, size, flags, mtime */
#define ZIPW_MADE_BY  0x032du /* Unix, APPNOTE 4.5 */
#define ZIPW_EXT_ATTR (0100644u << 16)
/* Ceiling of the central directory kept in memory (~12 million entries of
 * 100-byte names; the entry count hits other limits long before). */
#define ZIPW_CD_MAX ((size_t)2 << 30)

/* Extra fields of a copied local header: what zipw writes (ZIP64, UT) */
#define ZIPW_CP_EXTRA_MAX 64u

struct store_sha256;

struct zipw {
    struct store_writer *sink; /* borrowed */
    struct store_sha256 *hash; /* owned */
    uint64_t bytes_out;
    int level;
    unsigned char *blk; /* owned: ZIPW_BLOCK_BYTES of output */
    size_t blk_len;
    z_stream z; /* owned once z_ready */
    bool z_ready;
    int z_level; /* the level z is set to */

    /* the current entry */
    char name[128]; /* cut for messages */
    uint64_t entry_size;
    uint64_t entry_written;
    uint64_t entry_offset; /* of its local header */
    uint64_t entry_csize;  /* data bytes out so far */
    uint32_t entry_crc;
    uint32_t want_crc; /* stored: the CRC announced */
    uint16_t entry_flags;
    bool entry_stored;
    bool entry_zip64;   /* ZIP64 extra in the local header */
    uint32_t entry_dos; /* date << 16 | time */
    uint32_t entry_ut;  /* mtime for the UT field */

    struct wk_buf cd;      /* owned: the central directory so far */
    struct zipw_rec *recs; /* owned: one per completed entry */
    size_t n_recs, cap_recs;
    bool in_entry;
    bool finished;
    bool failed;
    char hex[65];            /* SHA-256 of the output, set by zipw_finish() */
    struct wk_nameset names; /* owned: every entry name so far */
    const char *cur_name;    /* borrowed: the name given to begin */
    size_t cur_name_len;
    char *cd_name; /* owned: the current entry's name for its CD record */

    /* an entry being copied (zipw_copy.c): its record as it passes */
    bool copying;
    uint64_t cp_len;                       /* the record's bytes */
    uint64_t cp_got;                       /* of them handed over */
    uint64_t cp_hdr_len;                   /* local header, 0 until known */
    unsigned char cp_hdr[ZIP_LOCAL_FIXED]; /* its fixed part */
    unsigned char cp_extra[ZIPW_CP_EXTRA_MAX];
    unsigned cp_name_len, cp_extra_len, cp_desc_len;
    unsigned char cp_desc[24]; /* the data descriptor */
    uint32_t cp_crc;           /* stored: CRC-32 of the data so far */
};

/* Fails once the writer failed or finished. */
enum wk_code zipw_check_usable(const struct zipw *zw, const char *what,
                               struct wk_err *err);
/* Name rules, the duplicate check; remembers the name for the record. */
enum wk_code zipw_begin_checks(struct zipw *zw, const char *name, uint64_t size,
                               struct wk_err *err);
/* Append n bytes to the output (through the block). */
enum wk_code zipw_out_put(struct zipw *zw, const void *p, size_t n,
                          struct wk_err *err);
/* The current entry's central directory record, appended to zw->cd. */
enum wk_code zipw_cd_append(struct zipw *zw, struct wk_err *err);
/* Close the current entry: its central directory record, and its record
 * for the checks (zw->recs; zipw_rec_room first). */
enum wk_code zipw_entry_close(struct zipw *zw, struct wk_err *err);
/* Room for one more struct zipw_rec. */
enum wk_code zipw_rec_room(struct zipw *zw, struct wk_err *err);

#endif
