/*
 * zipw: the ZIP records written by hand (APPNOTE 6.3.x) and deflate by
 * zlib (raw deflate, windowBits -15); no libarchive here (zip/ includes it
 * for reading only).
 *
 * What an entry looks like:
 * - local header: version needed 20 (45 with a ZIP64 extra field), flags
 *   bit 11 for a non-ASCII name, DOS time and date (UTC, clamped to
 *   1980..2107), the "UT" extra field with the exact mtime (32-bit).
 *   Stored (method 0, zipw_entry_begin_stored): CRC-32 and both sizes in
 *   the header, bit 3 clear, data right after, no descriptor. Deflated
 *   (method 8, zipw_entry_begin): bit 3, CRC and compressed size 0, the
 *   uncompressed size set (as libarchive did; readers with bit 3 take the
 *   descriptor's), then the data, then the data descriptor with its
 *   signature.
 * - ZIP64: a stored entry of 0xffffffff bytes or more has both header
 *   sizes at 0xffffffff and a ZIP64 extra field with both. A deflated
 *   entry has it (usize, csize 0) and a 64-bit data descriptor when its
 *   size, or deflateBound() of it, reaches 0xffffffff: whether the local
 *   header has the ZIP64 field is how libarchive, Info-ZIP and zipr pick
 *   the descriptor's width. (Java 17's ZipInputStream picks it by the
 *   actual sizes instead: the two disagree only for a deflated entry
 *   whose size is within deflateBound's margin, ~0.03 %, below 4 GiB.)
 *   The central directory record has a ZIP64 extra field holding exactly
 *   those of usize, csize and offset that reach 0xffffffff; the end has
 *   the ZIP64 end record and locator when the entry count reaches 0xffff
 *   or the central directory's size or offset 0xffffffff.
 * - central directory: version made by Unix 4.5, external attributes
 *   0100644 << 16, the same extra fields (ZIP64 as needed, then UT).
 *
 * Output goes through one ZIPW_BLOCK_BYTES block: the sink receives whole
 * blocks and an unpadded last one. Stored data that arrives while the
 * block is empty goes to the sink straight from the caller's buffer.
 */
#include "common/wk_path.h"
#include "zip/zipw.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/wk_buf.h"
#include "storage/store.h"
#include "storage/store_hash.h"
#include "zip/zip_fmt.h"

#include "zip/zipw_int.h"

uint32_t zipw_crc32(uint32_t crc, const void *p, size_t n)
{
    const unsigned char *c = p;

    /* zlib takes a uInt length */
    while (n > 0) {
        uInt k = n > (size_t)1 << 30 ? (uInt)1 << 30 : (uInt)n;
        crc = (uint32_t)crc32(crc, c, k);
        c += k;
        n -= k;
    }
    return crc;
}

/* ---- output ---- */

static enum wk_code sink_put(struct zipw *zw, const void *p, size_t n,
                             struct wk_err *err)
{
    enum wk_code rc = store_writer_write(zw->sink, p, n, err);

    if (rc != WK_OK) {
        zw->failed = true;
        return rc;
    }
    if (zw->hash)
        store_sha256_update(zw->hash, p, n);
    zw->bytes_out += n;
    return WK_OK;
}

static enum wk_code blk_flush(struct zipw *zw, struct wk_err *err)
{
    enum wk_code rc = WK_OK;

    if (zw->blk_len > 0)
        rc = sink_put(zw, zw->blk, zw->blk_len, err);
    zw->blk_len = 0;
    return rc;
}

/* Append n bytes to the output (through the block, or straight from p
 * while the block is empty: whole blocks only). */
enum wk_code zipw_out_put(struct zipw *zw, const void *p, size_t n,
                          struct wk_err *err)
{
    const unsigned char *c = p;
    enum wk_code rc;

    while (n > 0) {
        size_t room, k;

        if (zw->blk_len == 0 && n >= ZIPW_BLOCK_BYTES) {
            k = n - n % ZIPW_BLOCK_BYTES;
            rc = sink_put(zw, c, k, err);
            if (rc != WK_OK)
                return rc;
            c += k;
            n -= k;
            continue;
        }
        room = ZIPW_BLOCK_BYTES - zw->blk_len;
        k = n < room ? n : room;
        memcpy(zw->blk + zw->blk_len, c, k);
        zw->blk_len += k;
        c += k;
        n -= k;
        if (zw->blk_len == ZIPW_BLOCK_BYTES) {
            rc = blk_flush(zw, err);
            if (rc != WK_OK)
                return rc;
        }
    }
    return WK_OK;
}

/* Offset of the next byte of output. */
static uint64_t out_pos(const struct zipw *zw)
{
    return zw->bytes_out + zw->blk_len;
}

/* Run zlib over what z holds (flush: Z_NO_FLUSH or Z_FINISH), its output
 * straight into the block. */
static enum wk_code z_run(struct zipw *zw, int flush, struct wk_err *err)
{
    for (;;) {
        uInt room = (uInt)(ZIPW_BLOCK_BYTES - zw->blk_len);
        int r;

        zw->z.next_out = zw->blk + zw->blk_len;
        zw->z.avail_out = room;
        r = deflate(&zw->z, flush);
        if (r == Z_STREAM_ERROR) {
            zw->failed = true;
            return wk_err_set(err, WK_E_INTERNAL, "zip entry '%s': deflate: %s",
                              zw->name, zw->z.msg ? zw->z.msg : "error");
        }
        zw->blk_len += room - zw->z.avail_out;
        zw->entry_csize += room - zw->z.avail_out;
        if (zw->blk_len == ZIPW_BLOCK_BYTES) {
            enum wk_code rc = blk_flush(zw, err);
            if (rc != WK_OK)
                return rc;
        }
        if (flush == Z_FINISH ? r == Z_STREAM_END
                              : zw->z.avail_in == 0 && zw->z.avail_out > 0)
            return WK_OK;
    }
}

/* ---- helpers ---- */

enum wk_code zipw_rec_room(struct zipw *zw, struct wk_err *err)
{
    if (zw->n_recs == zw->cap_recs) {
        size_t ncap = zw->cap_recs ? zw->cap_recs * 2 : 256;
        struct zipw_rec *v = realloc(zw->recs, ncap * sizeof(*v));
        if (!v) {
            zw->failed = true;
            return wk_err_set(err, WK_E_NOMEM, "zip: out of memory");
        }
        zw->recs = v;
        zw->cap_recs = ncap;
    }
    return WK_OK;
}

enum wk_code zipw_check_usable(const struct zipw *zw, const char *what,
                               struct wk_err *err)
{
    if (zw->failed)
        return wk_err_set(err, WK_E_INTERNAL,
                          "%s: zip writer used after an error", what);
    if (zw->finished)
        return wk_err_set(err, WK_E_INTERNAL, "%s: zip writer already finished",
                          what);
    return WK_OK;
}

/* MS-DOS date << 16 | time of t (UTC), clamped to what it can hold. */
static uint32_t dos_time(time_t t)
{
    struct tm tm;

    if (t < 315532800) /* 1980-01-01 */
        return (uint32_t)((0u << 9 | 1u << 5 | 1u) << 16);
    if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 > 2107)
        return (uint32_t)((127u << 9 | 12u << 5 | 31u) << 16 |
                          (23u << 11 | 59u << 5 | 29u));
    return (uint32_t)(((unsigned)(tm.tm_year - 80) << 9 |
                       (unsigned)(tm.tm_mon + 1) << 5 | (unsigned)tm.tm_mday)
                          << 16 |
                      ((unsigned)tm.tm_hour << 11 | (unsigned)tm.tm_min << 5 |
                       (unsigned)tm.tm_sec / 2));
}

static bool name_is_ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80)
            return false;
    return true;
}

static unsigned char *put_ut(unsigned char *p, uint32_t mtime)
{
    p = zip_put16(p, ZIP_EXTRA_UT);
    p = zip_put16(p, 5);
    *p++ = 1; /* mtime present */
    return zip_put32(p, mtime);
}

enum wk_code zipw_new(struct store_writer *sink, const struct zipw_opts *opts,
                      struct zipw **out, struct wk_err *err)
{
    struct zipw *zw = NULL;
    int level = opts ? opts->level : 6;
    enum wk_code rc = WK_OK;

    *out = NULL;
    if (level < 0 || level > 9)
        return wk_err_set(err, WK_E_INVAL,
                          "zip: compression level %d is not in 0..9", level);
    zw = calloc(1, sizeof(*zw));
    if (!zw)
        return wk_err_set(err, WK_E_NOMEM, "zip: out of memory");
    zw->sink = sink;
    zw->level = level;
    wk_buf_init(&zw->cd, ZIPW_CD_MAX);
    wk_nameset_init(&zw->names);
    zw->blk = malloc(ZIPW_BLOCK_BYTES);
    if (!zw->blk) {
        rc = wk_err_set(err, WK_E_NOMEM, "zip: out of memory");
        goto out;
    }
    if (!opts || !opts->no_hash) {
        rc = store_sha256_new(&zw->hash, err);
        if (rc != WK_OK)
            goto out;
    }
out:
    if (rc != WK_OK) {
        zipw_free(zw);
        return rc;
    }
    *out = zw;
    return WK_OK;
}

/* Set z up for a new entry at level (zlib state made once, then reset). */
static enum wk_code z_prepare(struct zipw *zw, int level, struct wk_err *err)
{
    int r;

    if (!zw->z_ready) {
        memset(&zw->z, 0, sizeof(zw->z));
        r = deflateInit2(&zw->z, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
        if (r != Z_OK)
            return wk_err_set(err,
                              r == Z_MEM_ERROR ? WK_E_NOMEM : WK_E_INTERNAL,
                              "zip: deflate setup failed (%d)", r);
        zw->z_ready = true;
        zw->z_level = level;
        return WK_OK;
    }
    r = deflateReset(&zw->z);
    /* before any input a level change flushes nothing */
    if (r == Z_OK && level != zw->z_level)
        r = deflateParams(&zw->z, level, Z_DEFAULT_STRATEGY);
    if (r != Z_OK)
        return wk_err_set(err, WK_E_INTERNAL, "zip: deflate reset failed (%d)",
                          r);
    zw->z_level = level;
    return WK_OK;
}

/* The checks every begin makes; the name is remembered for the record. */
enum wk_code zipw_begin_checks(struct zipw *zw, const char *name, uint64_t size,
                               struct wk_err *err)
{
    const char *problem;
    char shown[sizeof(zw->name)];
    size_t n = strlen(name);
    enum wk_code rc = zipw_check_usable(zw, "zip entry", err);

    if (rc != WK_OK)
        return rc;
    wk_path_shown(shown, sizeof(shown), name, n);
    if (zw->in_entry) {
        zw->failed = true;
        return wk_err_set(err, WK_E_INTERNAL,
                          "zip entry '%s': entry '%s' is still open", shown,
                          zw->name);
    }
    /* the reader's own policy: we never write what a restore refuses */
    problem = wk_name_problem(name, n);
    if (!problem) {
        int added = wk_nameset_add(&zw->names, name, n);
        if (added < 0) {
            zw->failed = true;
            return wk_err_set(err, WK_E_NOMEM, "zip entry '%s': out of memory",
                              shown);
        }
        if (added == 0)
            problem = "duplicate name";
    }
    if (problem) {
        zw->failed = true;
        return wk_err_set(err, WK_E_INVAL, "zip entry '%s': %s", shown,
                          problem);
    }
    if (size > (uint64_t)INT64_MAX) {
        zw->failed = true;
        return wk_err_set(err, WK_E_INVAL, "zip entry '%s': size too large",
                          shown);
    }
    memcpy(zw->name, shown, sizeof(zw->name));
    zw->cur_name = name;
    zw->cur_name_len = n;
    return WK_OK;
}

/* Write the local header of the entry set up in zw. */
static enum wk_code local_header(struct zipw *zw, uint16_t method,
                                 struct wk_err *err)
{
    unsigned char h[ZIP_LOCAL_FIXED];
    unsigned char x[20 + ZIPW_UT_BYTES], *q = x;
    uint32_t crc = 0, cs32 = 0, us32;
    enum wk_code rc;

    us32 = zw->entry_size >= ZIPW_U32_MAX ? ZIPW_U32_MAX
                                          : (uint32_t)zw->entry_size;
    if (zw->entry_stored) {
        crc = zw->want_crc;
        cs32 = us32;
    }
    if (zw->entry_zip64) {
        us32 = cs32 = ZIPW_U32_MAX;
        q = zip_put16(q, ZIP_EXTRA_ZIP64);
        q = zip_put16(q, 16);
        q = zip_put64(q, zw->entry_size);
        q = zip_put64(q, zw->entry_stored ? zw->entry_size : 0);
    }
    q = put_ut(q, zw->entry_ut);
    zip_put32(h, ZIP_SIG_LOCAL);
    zip_put16(h + 4, zw->entry_zip64 ? 45 : 20);
    zip_put16(h + 6, zw->entry_flags);
    zip_put16(h + 8, method);
    zip_put16(h + 10, zw->entry_dos & 0xffff);
    zip_put16(h + 12, zw->entry_dos >> 16);
    zip_put32(h + 14, crc);
    zip_put32(h + 18, cs32);
    zip_put32(h + 22, us32);
    zip_put16(h + 26, (unsigned)zw->cur_name_len);
    zip_put16(h + 28, (unsigned)(q - x));
    rc = zipw_out_put(zw, h, sizeof(h), err);
    if (rc == WK_OK)
        rc = zipw_out_put(zw, zw->cur_name, zw->cur_name_len, err);
    if (rc == WK_OK)
        rc = zipw_out_put(zw, x, (size_t)(q - x), err);
    return rc;
}

static enum wk_code begin_common(struct zipw *zw, uint64_t size, time_t mtime,
                                 bool stored, struct wk_err *err)
{
    enum wk_code rc;

    zw->entry_size = size;
    zw->entry_written = 0;
    zw->entry_csize = 0;
    zw->entry_offset = out_pos(zw);
    zw->entry_crc = 0;
    zw->entry_stored = stored;
    zw->entry_flags = (uint16_t)((stored ? 0 : ZIP_FLAG_DESCRIPTOR) |
                                 (name_is_ascii(zw->cur_name, zw->cur_name_len)
                                      ? 0
                                      : ZIP_FLAG_UTF8));
    zw->entry_dos = dos_time(mtime);
    zw->entry_ut = mtime < 0                     ? 0
                   : (uint64_t)mtime > INT32_MAX ? (uint32_t)INT32_MAX
                                                 : (uint32_t)mtime;
    free(zw->cd_name);
    zw->cd_name = malloc(zw->cur_name_len + 1);
    if (!zw->cd_name) {
        zw->failed = true;
        return wk_err_set(err, WK_E_NOMEM, "zip: out of memory");
    }
    memcpy(zw->cd_name, zw->cur_name, zw->cur_name_len + 1);
    rc = local_header(zw, stored ? 0 : 8, err);
    zw->cur_name = zw->cd_name; /* the caller's may go away */
    if (rc != WK_OK)
        return rc;
    zw->in_entry = true;
    return WK_OK;
}

enum wk_code zipw_entry_begin(struct zipw *zw, const char *name, uint64_t size,
                              time_t mtime, int store, struct wk_err *err)
{
    int level = (zw->level == 0 || store) ? 0 : zw->level;
    enum wk_code rc = zipw_begin_checks(zw, name, size, err);

    if (rc != WK_OK)
        return rc;
    rc = z_prepare(zw, level, err);
    if (rc != WK_OK) {
        zw->failed = true;
        return rc;
    }
    /* ZIP64 decided before any data: when the size, or the most deflate
     * can make of it, does not fit 32 bits */
    zw->entry_zip64 =
        size >= ZIPW_U32_MAX ||
        (uint64_t)deflateBound(&zw->z, (uLong)size) >= ZIPW_U32_MAX;
    return begin_common(zw, size, mtime, false, err);
}

enum wk_code zipw_entry_begin_stored(struct zipw *zw, const char *name,
                                     uint64_t size, time_t mtime, uint32_t crc,
                                     struct wk_err *err)
{
    enum wk_code rc = zipw_begin_checks(zw, name, size, err);

    if (rc != WK_OK)
        return rc;
    zw->want_crc = crc;
    zw->entry_zip64 = size >= ZIPW_U32_MAX;
    return begin_common(zw, size, mtime, true, err);
}

enum wk_code zipw_entry_write(struct zipw *zw, const void *p, size_t n,
                              struct wk_err *err)
{
    const unsigned char *c = p;
    enum wk_code rc = zipw_check_usable(zw, "zip entry write", err);

    if (rc != WK_OK)
        return rc;
    if (!zw->in_entry || zw->copying) {
        zw->failed = true;
        return wk_err_set(err, WK_E_INTERNAL,
                          "zip entry write: no entry is open");
    }
    if (n > zw->entry_size - zw->entry_written) {
        zw->failed = true;
        return wk_err_set(err, WK_E_INVAL,
                          "zip entry '%s': more data than the %llu bytes "
                          "announced",
                          zw->name, (unsigned long long)zw->entry_size);
    }
    if (n == 0)
        return WK_OK;
    zw->entry_crc = zipw_crc32(zw->entry_crc, c, n);
    zw->entry_written += n;
    if (zw->entry_stored) {
        zw->entry_csize += n;
        return zipw_out_put(zw, c, n, err);
    }
    while (n > 0) {
        uInt k = n > (size_t)1 << 30 ? (uInt)1 << 30 : (uInt)n;
        zw->z.next_in = (Bytef *)(uintptr_t)c;
        zw->z.avail_in = k;
        rc = z_run(zw, Z_NO_FLUSH, err);
        if (rc != WK_OK)
            return rc;
        c += k;
        n -= k;
    }
    return WK_OK;
}

/* The entry's central directory record, appended to zw->cd. */
enum wk_code zipw_cd_append(struct zipw *zw, struct wk_err *err)
{
    unsigned char h[ZIP_CD_FIXED];
    unsigned char x[28 + ZIPW_UT_BYTES], *q = x + 4;
    bool big_u = zw->entry_written >= ZIPW_U32_MAX;
    bool big_c = zw->entry_csize >= ZIPW_U32_MAX;
    bool big_o = zw->entry_offset >= ZIPW_U32_MAX;
    bool z64 = big_u || big_c || big_o;
    enum wk_code rc;

    if (big_u)
        q = zip_put64(q, zw->entry_written);
    if (big_c)
        q = zip_put64(q, zw->entry_csize);
    if (big_o)
        q = zip_put64(q, zw->entry_offset);
    if (z64) {
        zip_put16(x, ZIP_EXTRA_ZIP64);
        zip_put16(x + 2, (unsigned)(q - x - 4));
    } else {
        q = x;
    }
    q = put_ut(q, zw->entry_ut);
    zip_put32(h, ZIP_SIG_CENTRAL);
    zip_put16(h + 4, ZIPW_MADE_BY);
    zip_put16(h + 6, (z64 || zw->entry_zip64) ? 45 : 20);
    zip_put16(h + 8, zw->entry_flags);
    zip_put16(h + 10, zw->entry_stored ? 0 : 8);
    zip_put16(h + 12, zw->entry_dos & 0xffff);
    zip_put16(h + 14, zw->entry_dos >> 16);
    zip_put32(h + 16, zw->entry_crc);
    zip_put32(h + 20, big_c ? ZIPW_U32_MAX : (uint32_t)zw->entry_csize);
    zip_put32(h + 24, big_u ? ZIPW_U32_MAX : (uint32_t)zw->entry_written);
    zip_put16(h + 28, (unsigned)zw->cur_name_len);
    zip_put16(h + 30, (unsigned)(q - x));
    zip_put16(h + 32, 0); /* comment */
    zip_put16(h + 34, 0); /* disk */
    zip_put16(h + 36, 0); /* internal attributes */
    zip_put32(h + 38, ZIPW_EXT_ATTR);
    zip_put32(h + 42, big_o ? ZIPW_U32_MAX : (uint32_t)zw->entry_offset);
    rc = wk_buf_append(&zw->cd, h, sizeof(h), err);
    if (rc == WK_OK)
        rc = wk_buf_append(&zw->cd, zw->cur_name, zw->cur_name_len, err);
    if (rc == WK_OK)
        rc = wk_buf_append(&zw->cd, x, (size_t)(q - x), err);
    if (rc != WK_OK)
        zw->failed = true;
    return rc;
}

enum wk_code zipw_entry_end(struct zipw *zw, struct wk_err *err)
{
    enum wk_code rc = zipw_check_usable(zw, "zip entry end", err);

    if (rc != WK_OK)
        return rc;
    if (!zw->in_entry || zw->copying) {
        zw->failed = true;
        return wk_err_set(err, WK_E_INTERNAL,
                          "zip entry end: no entry is open");
    }
    if (zw->entry_written != zw->entry_size) {
        zw->failed = true;
        return wk_err_set(err, WK_E_INVAL,
                          "zip entry '%s': got %llu of the %llu bytes "
                          "announced",
                          zw->name, (unsigned long long)zw->entry_written,
                          (unsigned long long)zw->entry_size);
    }
    if (zw->entry_stored && zw->entry_crc != zw->want_crc) {
        zw->failed = true;
        return wk_err_set(err, WK_E_INTERNAL,
                          "zip entry '%s': data has CRC-32 %08lx, %08lx was "
                          "announced",
                          zw->name, (unsigned long)zw->entry_crc,
                          (unsigned long)zw->want_crc);
    }
    rc = zipw_rec_room(zw, err);
    if (rc != WK_OK)
        return rc;
    if (!zw->entry_stored) {
        unsigned char d[24], *q = d;

        zw->z.next_in = Z_NULL;
        zw->z.avail_in = 0;
        rc = z_run(zw, Z_FINISH, err);
        if (rc != WK_OK)
            return rc;
        if (!zw->entry_zip64 && (zw->entry_csize >= ZIPW_U32_MAX ||
                                 zw->entry_written >= ZIPW_U32_MAX)) {
            /* deflateBound() is a bound: a bug if it was wrong */
            zw->failed = true;
            return wk_err_set(err, WK_E_INTERNAL,
                              "zip entry '%s': deflated past 4 GiB without "
                              "ZIP64",
                              zw->name);
        }
        q = zip_put32(q, ZIP_SIG_DESCRIPTOR);
        q = zip_put32(q, zw->entry_crc);
        if (zw->entry_zip64) {
            q = zip_put64(q, zw->entry_csize);
            q = zip_put64(q, zw->entry_written);
        } else {
            q = zip_put32(q, (uint32_t)zw->entry_csize);
            q = zip_put32(q, (uint32_t)zw->entry_written);
        }
        rc = zipw_out_put(zw, d, (size_t)(q - d), err);
        if (rc != WK_OK)
            return rc;
    }
    return zipw_entry_close(zw, err);
}

enum wk_code zipw_entry_close(struct zipw *zw, struct wk_err *err)
{
    enum wk_code rc = zipw_cd_append(zw, err);

    if (rc != WK_OK)
        return rc;
    zw->recs[zw->n_recs].size = zw->entry_written;
    zw->recs[zw->n_recs].crc32 = zw->entry_crc;
    zw->recs[zw->n_recs].stored = zw->entry_stored;
    zw->n_recs++;
    zw->in_entry = false;
    return WK_OK;
}

enum wk_code zipw_finish(struct zipw *zw, struct wk_err *err)
{
    unsigned char e[ZIP_Z64_BYTES + ZIP_LOC_BYTES + ZIP_EOCD_BYTES], *q = e;
    uint64_t cd_off, cd_size, n = zw->n_recs;
    enum wk_code rc = zipw_check_usable(zw, "zip finish", err);

    if (rc != WK_OK)
        return rc;
    if (zw->in_entry) {
        zw->failed = true;
        return wk_err_set(err, WK_E_INTERNAL,
                          "zip finish: entry '%s' is still open", zw->name);
    }
    cd_off = out_pos(zw);
    cd_size = zw->cd.len;
    rc = zipw_out_put(zw, zw->cd.data, zw->cd.len, err);
    if (rc != WK_OK)
        return rc;
    if (n >= ZIPW_U16_MAX || cd_size >= ZIPW_U32_MAX ||
        cd_off >= ZIPW_U32_MAX) {
        uint64_t z64_off = cd_off + cd_size;

        q = zip_put32(q, ZIP_SIG_Z64_END);
        q = zip_put64(q, ZIP_Z64_BYTES - 12);
        q = zip_put16(q, ZIPW_MADE_BY);
        q = zip_put16(q, 45);
        q = zip_put32(q, 0); /* this disk */
        q = zip_put32(q, 0); /* the central directory's */
        q = zip_put64(q, n);
        q = zip_put64(q, n);
        q = zip_put64(q, cd_size);
        q = zip_put64(q, cd_off);
        q = zip_put32(q, ZIP_SIG_Z64_LOC);
        q = zip_put32(q, 0);
        q = zip_put64(q, z64_off);
        q = zip_put32(q, 1); /* disks */
    }
    q = zip_put32(q, ZIP_SIG_END);
    q = zip_put16(q, 0);
    q = zip_put16(q, 0);
    q = zip_put16(q, n >= ZIPW_U16_MAX ? ZIPW_U16_MAX : (unsigned)n);
    q = zip_put16(q, n >= ZIPW_U16_MAX ? ZIPW_U16_MAX : (unsigned)n);
    q = zip_put32(q,
                  cd_size >= ZIPW_U32_MAX ? ZIPW_U32_MAX : (uint32_t)cd_size);
    q = zip_put32(q, cd_off >= ZIPW_U32_MAX ? ZIPW_U32_MAX : (uint32_t)cd_off);
    q = zip_put16(q, 0); /* comment */
    rc = zipw_out_put(zw, e, (size_t)(q - e), err);
    if (rc == WK_OK)
        rc = blk_flush(zw, err);
    if (rc != WK_OK)
        return rc;
    wk_buf_release(&zw->cd);
    zw->finished = true;
    if (zw->hash)
        store_sha256_final_hex(zw->hash, zw->hex);
    return WK_OK;
}

const struct zipw_rec *zipw_entries(const struct zipw *zw, size_t *n)
{
    *n = zw->n_recs;
    return zw->recs;
}

uint64_t zipw_bytes_out(const struct zipw *zw)
{
    return zw->bytes_out;
}

void zipw_sha256_hex(const struct zipw *zw, char hex[65])
{
    /* "" until zipw_finish() succeeded */
    memcpy(hex, zw->hex, 65);
}

void zipw_free(struct zipw *zw)
{
    if (!zw)
        return;
    /* nothing more goes to the sink: what is in the block is dropped */
    if (zw->z_ready)
        deflateEnd(&zw->z);
    free(zw->blk);
    wk_buf_release(&zw->cd);
    store_sha256_free(zw->hash);
    wk_nameset_release(&zw->names);
    free(zw->cd_name);
    free(zw->recs);
    free(zw);
}
