/*
 * zipr on libarchive's streaming ZIP reader, plus our own look at the raw
 * bytes that pass through the read callback.
 *
 * libarchive decompresses and checks CRCs; everything the ZIP format says
 * about an entry we read again from the bytes ourselves, because of what
 * libarchive 3.6.2's streamable ZIP reader does:
 * - Names are converted to the process locale. In the C locale (the
 *   worker's) a non-ASCII UTF-8 name fails: ARCHIVE_WARN "Pathname cannot
 *   be converted", and archive_entry_pathname() and _utf8() are both NULL.
 *   In a UTF-8 locale invalid UTF-8 passes through. Every conversion stops
 *   at the first NUL, so a name with an embedded NUL comes back shortened.
 *   When the high byte of "version needed" is 0 (MS-DOS, the usual value) a
 *   name with backslashes and no '/' has its backslashes turned into '/'.
 *   So we take the name from the local header (its exact declared length)
 *   and accept that one warning.
 * - Between entries it scans for the next "PK\3\4" and skips whatever else
 *   is there; it stops (ARCHIVE_EOF) at the first central directory or end
 *   record signature and never reads the central directory. File types
 *   that only the central directory's external attributes carry (Info-ZIP
 *   and Python write symlinks and devices that way) look like regular
 *   files to it. So each header must start exactly where the previous entry
 *   ended, and we read the central directory and end records ourselves and
 *   check them against the entries (names, offsets, sizes, CRCs, types).
 * - Only the 'xl' extra field (libarchive's own writer adds it) tells it a
 *   type in the local header: AE_IFLNK, AE_IFDIR... A FIFO is turned into
 *   a regular file; a name ending in '/' becomes a directory. ZIP has no
 *   hard links (archive_entry_hardlink() stays NULL; checked anyway).
 * - A stored entry with a data descriptor (bit 3; our writer does this) ends
 *   where "PK\7\8" is followed by the CRC of the data so far. With a wrong
 *   CRC that scan runs on through the rest of the archive, handing it out
 *   as entry data, and ends in ARCHIVE_FATAL "Truncated ZIP file data". We
 *   stop it at the size the local header declares, when it declares one.
 * - A CRC mismatch is ARCHIVE_WARN ("ZIP bad CRC: 0x.. should be 0x..") from
 *   the call that returns the entry's last block, and so are size
 *   mismatches ("ZIP compressed data is wrong size"); a truncated archive is
 *   ARCHIVE_FATAL "Truncated ZIP file ...", or ARCHIVE_FATAL with no message
 *   when it ends between entries. We fail on anything but ARCHIVE_OK/EOF.
 * - archive_filter_bytes(ar, -1) counts the bytes the format consumed, not
 *   what it read ahead. Deflate input is consumed exactly (zlib gives back
 *   what it did not decode), so the ratio check measures from the entry's
 *   data start to that position. Stored data is consumed one block late,
 *   and cannot expand anyway: the ratio check skips stored entries.
 *
 * The raw bytes: the read callback hands libarchive the caller's pieces
 * (cut to ZIPR_PIECE_BYTES) and keeps a copy of every byte from the
 * earliest offset we may still parse (the next header, or what libarchive
 * has not consumed yet) in a buffer capped at ZIPR_CAPTURE_MAX.
 *
 * Files: this one owns the API (zipr_new/next/read/free), the errors and
 * the name entry point (zipr_name_valid, the one policy of wk_path);
 * zipr_src.c the raw bytes, zipr_entry.c the local header and its rules,
 * zipr_data.c the data path and its limits, zipr_cd.c the central
 * directory check; zipr_int.h the state they share.
 */
#include "zip/zipr.h"

#include "zip/zipr_int.h"

#include "common/wk_path.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool zipr_name_valid(const char *name, char *why, size_t whylen)
{
    const char *problem = wk_name_problem(name, strlen(name));

    if (problem && why && whylen > 0)
        snprintf(why, whylen, "%s", problem);
    return problem == NULL;
}

/* The name for messages (see wk_path_shown). */
void zipr_show_name(char *dst, const unsigned char *s, size_t len)
{
    wk_path_shown(dst, ZIPR_SHOWN_MAX + 4, s, len);
}

/* ---- errors ---- */

enum wk_code zipr_refuse(struct zipr *zr, struct wk_err *err, const char *why)
{
    zr->failed = true;
    return wk_err_set(err, WK_E_CORRUPT, "entry '%s': %s", zr->shown, why);
}

/* A libarchive failure: the caller's read error if that was the cause,
 * else the archive is bad. hdr: the offset of the header libarchive was
 * reading, or UINT64_MAX. */
enum wk_code zipr_ar_fail(struct zipr *zr, uint64_t hdr, struct wk_err *err)
{
    const char *msg = archive_error_string(zr->ar);
    char text[200];
    size_t len;

    zr->failed = true;
    if (zr->src_err.code != WK_OK)
        return wk_err_copy(err, &zr->src_err);
    if (zr->cap_overflow)
        return wk_err_set(err, WK_E_CORRUPT,
                          "archive is truncated or corrupt: more than %zu "
                          "bytes of unexpected data after offset %llu",
                          ZIPR_CAPTURE_MAX, zip_ull(zr->next_hdr));
    if (archive_errno(zr->ar) == ENOMEM)
        return wk_err_set(err, WK_E_NOMEM, "zip: out of memory");
    snprintf(text, sizeof(text), "%s",
             msg && *msg ? msg : "unexpected end of the archive");
    /* libarchive ends some messages with ".\n" */
    len = strlen(text);
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '.'))
        text[--len] = '\0';
    if (zr->in_entry)
        return wk_err_set(err, WK_E_CORRUPT,
                          "archive is truncated or corrupt: entry '%s': %s",
                          zr->shown, text);
    if (hdr != UINT64_MAX)
        return wk_err_set(err, WK_E_CORRUPT,
                          "archive is truncated or corrupt: header at offset "
                          "%llu: %s",
                          zip_ull(hdr), text);
    return wk_err_set(err, WK_E_CORRUPT, "archive is truncated or corrupt: %s",
                      text);
}

static enum wk_code check_usable(const struct zipr *zr, const char *what,
                                 struct wk_err *err)
{
    if (zr->failed)
        return wk_err_set(err, WK_E_INTERNAL,
                          "%s: zip reader used after an error", what);
    return WK_OK;
}

/* ---- entries ---- */

/* The one warning we accept from archive_read_next_header(): a name (or
 * symlink target) that does not convert to the locale. We take the name
 * from the raw header, and refuse symlinks. */
static bool conversion_warning(struct archive *ar)
{
    const char *msg = archive_error_string(ar);

    return msg && (strncmp(msg, "Pathname cannot be converted", 28) == 0 ||
                   strncmp(msg, "Symlink cannot be converted", 27) == 0);
}

/* ---- API ---- */

enum wk_code zipr_new(zipr_read_cb cb, void *ud, const struct zipr_limits *lim,
                      struct zipr **out, struct wk_err *err)
{
    struct zipr *zr = NULL;
    enum wk_code rc = WK_OK;

    *out = NULL;
    if (!cb || !lim)
        return wk_err_set(err, WK_E_INVAL,
                          "zip reader: no read callback or limits");
    if (lim->max_ratio == 0)
        return wk_err_set(err, WK_E_INVAL,
                          "zip reader: max_ratio must be at least 1");
    zr = calloc(1, sizeof(*zr));
    if (!zr)
        return wk_err_set(err, WK_E_NOMEM, "zip: out of memory");
    zr->cb = cb;
    zr->ud = ud;
    zr->lim = *lim;
    wk_err_clear(&zr->src_err);
    zr->ar = archive_read_new();
    if (!zr->ar) {
        rc = wk_err_set(err, WK_E_NOMEM, "zip: out of memory");
        goto out;
    }
    /* ZIP only (streaming), no filters: nothing else is ever tasted. */
    if (archive_read_support_format_zip_streamable(zr->ar) != ARCHIVE_OK) {
        rc = wk_err_set(err, WK_E_INTERNAL, "zip reader: setup: %s",
                        archive_error_string(zr->ar));
        goto out;
    }
    if (zipr_src_open(zr) != ARCHIVE_OK) {
        rc = zipr_ar_fail(zr, UINT64_MAX, err);
        goto out;
    }
out:
    if (rc != WK_OK) {
        zipr_free(zr);
        return rc;
    }
    *out = zr;
    return WK_OK;
}

enum wk_code zipr_next(struct zipr *zr, struct zipr_entry *e, bool *eof,
                       struct wk_err *err)
{
    struct archive_entry *ae = NULL;
    enum wk_code rc = check_usable(zr, "zip next", err);
    int r;

    memset(e, 0, sizeof(*e));
    *eof = false;
    if (rc != WK_OK)
        return rc;
    if (zr->done) {
        *eof = true;
        return WK_OK;
    }
    /* The rest of an unread entry still counts and is still checked. */
    while (zr->in_entry && !zr->entry_done) {
        zr->blk_len = 0;
        rc = zipr_next_block(zr, err);
        if (rc != WK_OK)
            return rc;
    }
    zr->in_entry = false;
    zr->keep_follow = false;
    zr->keep_from = zr->next_hdr;
    r = archive_read_next_header(zr->ar, &ae);
    if (r == ARCHIVE_EOF) {
        rc = zipr_read_cd(zr, err);
        if (rc != WK_OK)
            return rc;
        zr->done = true;
        *eof = true;
        return WK_OK;
    }
    if (r != ARCHIVE_OK && !(r == ARCHIVE_WARN && conversion_warning(zr->ar)))
        return zipr_ar_fail(zr, zr->next_hdr, err);
    return zipr_begin_entry(zr, ae, e, err);
}

enum wk_code zipr_read(struct zipr *zr, void *buf, size_t len, size_t *nread,
                       struct wk_err *err)
{
    enum wk_code rc = check_usable(zr, "zip read", err);
    size_t n;

    *nread = 0;
    if (rc != WK_OK)
        return rc;
    if (!zr->in_entry || len == 0) {
        zr->failed = true;
        return wk_err_set(err, WK_E_INTERNAL,
                          len ? "zip read: no entry is open"
                              : "zip read: zero-length buffer");
    }
    if (zr->entry_done)
        return WK_OK;
    if (zr->blk_len == 0) {
        rc = zipr_next_block(zr, err);
        if (rc != WK_OK || zr->entry_done)
            return rc;
    }
    n = len < zr->blk_len ? len : zr->blk_len;
    memcpy(buf, zr->blk, n);
    zr->blk += n;
    zr->blk_len -= n;
    *nread = n;
    return WK_OK;
}

void zipr_set_declared(struct zipr *zr, zipr_declared_cb declared, void *ud)
{
    zr->declared_cb = declared;
    zr->declared_ud = ud;
}

uint64_t zipr_total_bytes(const struct zipr *zr)
{
    return zr->total;
}

void zipr_free(struct zipr *zr)
{
    if (!zr)
        return;
    if (zr->ar)
        archive_read_free(zr->ar);
    for (size_t i = 0; i < zr->n_recs; i++)
        free(zr->recs[i].name);
    free(zr->recs);
    free(zr->slots);
    free(zr->cap);
    free(zr);
}
