/*
 * zipw_copy: entries copied whole from an earlier archive (zipw.h,
 * zipw_copy_begin). The record's bytes go to the output as they arrive;
 * the local header is parsed and checked on the way, and the central
 * directory record is rebuilt from it with the new offset.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zip/zip_fmt.h"
#include "zip/zipw.h"
#include "zip/zipw_int.h"

static enum wk_code cp_bad(struct zipw *zw, struct wk_err *err, const char *why)
{
    zw->failed = true;
    return wk_err_set(err, WK_E_CORRUPT,
                      "zip entry '%s': cannot be copied from the earlier "
                      "archive: %s",
                      zw->name, why);
}

enum wk_code zipw_copy_begin(struct zipw *zw, const char *name, uint64_t usize,
                             uint64_t csize, uint32_t crc, uint64_t rec_len,
                             struct wk_err *err)
{
    size_t n = strlen(name);
    enum wk_code rc = zipw_begin_checks(zw, name, usize, err);

    if (rc != WK_OK)
        return rc;
    free(zw->cd_name);
    zw->cd_name = malloc(n + 1);
    if (!zw->cd_name) {
        zw->failed = true;
        return wk_err_set(err, WK_E_NOMEM, "zip: out of memory");
    }
    memcpy(zw->cd_name, name, n + 1);
    zw->cur_name = zw->cd_name;
    zw->entry_size = usize;
    zw->entry_written = usize;
    zw->entry_csize = csize;
    zw->entry_crc = crc;
    zw->entry_offset = zw->bytes_out + zw->blk_len;
    zw->entry_stored = false;
    zw->entry_zip64 = false;
    zw->entry_ut = 0;
    zw->copying = true;
    zw->cp_len = rec_len;
    zw->cp_got = 0;
    zw->cp_hdr_len = 0;
    zw->cp_name_len = zw->cp_extra_len = zw->cp_desc_len = 0;
    zw->cp_crc = 0;
    zw->in_entry = true;
    if (rec_len < ZIP_LOCAL_FIXED + n + csize)
        return cp_bad(zw, err, "record shorter than its header and data");
    return WK_OK;
}

/* The local header is whole: check it against the central directory's
 * values and take what the new record repeats. */
static enum wk_code header_done(struct zipw *zw, struct wk_err *err)
{
    const unsigned char *h = zw->cp_hdr;
    uint16_t flags = zip_le16(h + 6), method = zip_le16(h + 8);
    uint32_t hcrc = zip_le32(h + 14);
    uint64_t hcs = zip_le32(h + 18), hus = zip_le32(h + 22);
    bool z64 = false, ut = false;
    const unsigned char *x = zw->cp_extra;
    size_t m = zw->cp_extra_len, i = 0;

    while (i + 4 <= m) {
        unsigned id = zip_le16(x + i), len = zip_le16(x + i + 2);
        if (i + 4 + len > m)
            return cp_bad(zw, err, "malformed extra field");
        if (id == ZIP_EXTRA_ZIP64 && len == 16) {
            z64 = true;
            hus = zip_le64(x + i + 4);
            hcs = zip_le64(x + i + 12);
        } else if (id == ZIP_EXTRA_UT && len == 5 && x[i + 4] == 1) {
            ut = true;
            zw->entry_ut = zip_le32(x + i + 5);
        } else {
            return cp_bad(zw, err, "an extra field zipw does not write");
        }
        i += 4 + len;
    }
    if (i != m || !ut)
        return cp_bad(zw, err, "extra fields are not zipw's");
    if (flags &
        (ZIP_FLAG_ENCRYPTED | ZIP_FLAG_STRONG_CRYPT | ZIP_FLAG_CD_CRYPT))
        return cp_bad(zw, err, "encrypted");
    if (method != 0 && method != 8)
        return cp_bad(zw, err, "compression method is neither 0 nor 8");
    if (method == 0) {
        /* what every streaming reader opens: no descriptor */
        if (flags & ZIP_FLAG_DESCRIPTOR)
            return cp_bad(zw, err, "stored with a data descriptor");
        if (hcrc != zw->entry_crc || hcs != zw->entry_csize ||
            hus != zw->entry_size || zw->entry_csize != zw->entry_size)
            return cp_bad(zw, err,
                          "local header's CRC-32 or sizes differ from the "
                          "central directory's");
        zw->cp_desc_len = 0;
    } else {
        if (!(flags & ZIP_FLAG_DESCRIPTOR))
            return cp_bad(zw, err, "deflated without a data descriptor");
        zw->cp_desc_len = z64 ? 24u : 16u;
    }
    if (zw->cp_hdr_len + zw->entry_csize + zw->cp_desc_len != zw->cp_len)
        return cp_bad(zw, err,
                      "header, data and descriptor do not fill the record");
    zw->entry_stored = method == 0;
    zw->entry_flags = flags;
    zw->entry_dos = (uint32_t)zip_le16(h + 12) << 16 | zip_le16(h + 10);
    zw->entry_zip64 = z64;
    return WK_OK;
}

enum wk_code zipw_copy_write(struct zipw *zw, const void *p, size_t n,
                             struct wk_err *err)
{
    const unsigned char *c = p;
    enum wk_code rc = zipw_check_usable(zw, "zip copy write", err);

    if (rc != WK_OK)
        return rc;
    if (!zw->copying) {
        zw->failed = true;
        return wk_err_set(err, WK_E_INTERNAL,
                          "zip copy write: no copied entry is open");
    }
    if (n > zw->cp_len - zw->cp_got)
        return cp_bad(zw, err, "more bytes than its record");
    rc = zipw_out_put(zw, p, n, err);
    if (rc != WK_OK)
        return rc;
    while (n > 0) {
        uint64_t at = zw->cp_got;
        size_t k = 1;

        if (at < ZIP_LOCAL_FIXED) {
            k = (size_t)(ZIP_LOCAL_FIXED - at);
            k = k < n ? k : n;
            memcpy(zw->cp_hdr + at, c, k);
            if (at + k == ZIP_LOCAL_FIXED) {
                if (zip_le32(zw->cp_hdr) != ZIP_SIG_LOCAL)
                    return cp_bad(zw, err, "no local header signature");
                zw->cp_name_len = zip_le16(zw->cp_hdr + 26);
                zw->cp_extra_len = zip_le16(zw->cp_hdr + 28);
                if (zw->cp_name_len != zw->cur_name_len)
                    return cp_bad(zw, err, "local header names another file");
                if (zw->cp_extra_len > ZIPW_CP_EXTRA_MAX)
                    return cp_bad(zw, err, "extra fields are not zipw's");
                zw->cp_hdr_len =
                    ZIP_LOCAL_FIXED + zw->cp_name_len + zw->cp_extra_len;
                if (zw->cp_extra_len == 0) /* (refused: no UT) */
                    rc = header_done(zw, err);
                if (rc != WK_OK)
                    return rc;
            }
        } else if (at < ZIP_LOCAL_FIXED + zw->cp_name_len) {
            uint64_t o = at - ZIP_LOCAL_FIXED;
            k = (size_t)(zw->cp_name_len - o);
            k = k < n ? k : n;
            if (memcmp(zw->cur_name + o, c, k) != 0)
                return cp_bad(zw, err, "local header names another file");
        } else if (at < zw->cp_hdr_len) {
            uint64_t o = at - ZIP_LOCAL_FIXED - zw->cp_name_len;
            k = (size_t)(zw->cp_extra_len - o);
            k = k < n ? k : n;
            memcpy(zw->cp_extra + o, c, k);
            if (at + k == zw->cp_hdr_len) {
                rc = header_done(zw, err);
                if (rc != WK_OK)
                    return rc;
            }
        } else if (at < zw->cp_hdr_len + zw->entry_csize) {
            uint64_t left = zw->cp_hdr_len + zw->entry_csize - at;
            k = left < n ? (size_t)left : n;
            if (zw->entry_stored)
                zw->cp_crc = zipw_crc32(zw->cp_crc, c, k);
        } else {
            uint64_t o = at - zw->cp_hdr_len - zw->entry_csize;
            k = n; /* (bounded: the record's length is checked) */
            memcpy(zw->cp_desc + o, c, k);
        }
        zw->cp_got += k;
        c += k;
        n -= k;
    }
    return WK_OK;
}

enum wk_code zipw_copy_end(struct zipw *zw, struct wk_err *err)
{
    enum wk_code rc = zipw_check_usable(zw, "zip copy end", err);

    if (rc != WK_OK)
        return rc;
    if (!zw->copying) {
        zw->failed = true;
        return wk_err_set(err, WK_E_INTERNAL,
                          "zip copy end: no copied entry is open");
    }
    if (zw->cp_got != zw->cp_len || zw->cp_hdr_len == 0)
        return cp_bad(zw, err, "record cut short");
    if (zw->entry_stored && zw->cp_crc != zw->entry_crc)
        return cp_bad(zw, err, "data does not have its CRC-32");
    if (!zw->entry_stored) {
        const unsigned char *d = zw->cp_desc;
        bool w = zw->cp_desc_len == 24;
        uint64_t cs = w ? zip_le64(d + 8) : zip_le32(d + 8);
        uint64_t us = w ? zip_le64(d + 16) : zip_le32(d + 12);
        if (zip_le32(d) != ZIP_SIG_DESCRIPTOR ||
            zip_le32(d + 4) != zw->entry_crc || cs != zw->entry_csize ||
            us != zw->entry_size)
            return cp_bad(zw, err,
                          "data descriptor differs from the central "
                          "directory");
    }
    rc = zipw_rec_room(zw, err);
    if (rc == WK_OK)
        rc = zipw_entry_close(zw, err); /* entry_written is usize */
    if (rc == WK_OK)
        zw->copying = false;
    return rc;
}
