/*
 * zipcd: the central directory parser (see zipcd.h).
 *
 * zipcd_read() finds the end record in the tail it fetched first: the
 * last "PK\5\6" whose comment length reaches exactly the end of the
 * object (nothing may follow it). A ZIP64 locator, when present, sits
 * right before it and points at the ZIP64 end record, which must end
 * where the locator starts. The central directory must then end exactly
 * where the first end record starts: no gap, no overlap.
 */
#include "zip/zipcd.h"

#include "zip/zip_fmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/wk_buf.h"
#include "common/wk_path.h"
#include "storage/seal.h"
#include "storage/store.h"

#define ZIPCD_SHOWN_MAX 100u

/* ---- record layer ---- */

size_t zipcd_record_len(const unsigned char *p)
{
    return ZIPCD_RECORD_FIXED + (size_t)zip_le16(p + 28) + zip_le16(p + 30) +
           zip_le16(p + 32);
}

bool zipcd_zip64_extra(const unsigned char *x, size_t m, bool *found,
                       uint64_t *usize, uint64_t *csize, uint64_t *offset,
                       uint32_t *disk)
{
    size_t i = 0;

    *found = false;
    while (i + 4 <= m) {
        unsigned id = zip_le16(x + i), size = zip_le16(x + i + 2);
        const unsigned char *d = x + i + 4;
        size_t k = 0;

        if (i + 4 + size > m)
            return false;
        if (id == 0x0001) {
            *found = true;
            if (usize && *usize == 0xffffffff) {
                if (k + 8 > size)
                    return false;
                *usize = zip_le64(d + k);
                k += 8;
            }
            if (csize && *csize == 0xffffffff) {
                if (k + 8 > size)
                    return false;
                *csize = zip_le64(d + k);
                k += 8;
            }
            if (offset && *offset == 0xffffffff) {
                if (k + 8 > size)
                    return false;
                *offset = zip_le64(d + k);
                k += 8;
            }
            if (disk && *disk == 0xffff) {
                if (k + 4 > size)
                    return false;
                *disk = zip_le32(d + k);
            }
        }
        i += 4 + (size_t)size;
    }
    return true;
}

void zipcd_record_parse(const unsigned char *p, struct zipcd_entry *e)
{
    size_t n = zip_le16(p + 28), m = zip_le16(p + 30);
    bool deferred;

    memset(e, 0, sizeof(*e));
    e->version_made = zip_le16(p + 4);
    e->flags = zip_le16(p + 8);
    e->method = zip_le16(p + 10);
    e->crc = zip_le32(p + 16);
    e->csize = zip_le32(p + 20);
    e->usize = zip_le32(p + 24);
    e->disk = zip_le16(p + 34);
    e->ext_attr = zip_le32(p + 38);
    e->offset = zip_le32(p + 42);
    e->name = (const char *)p + ZIPCD_RECORD_FIXED;
    e->name_len = n;
    deferred = e->csize == 0xffffffff || e->usize == 0xffffffff ||
               e->offset == 0xffffffff || e->disk == 0xffff;
    e->extra_ok =
        zipcd_zip64_extra(p + ZIPCD_RECORD_FIXED + n, m, &e->zip64, &e->usize,
                          &e->csize, &e->offset, &e->disk) &&
        (!deferred || e->zip64);
}

const char *zipcd_z64_end_problem(const unsigned char *p, uint64_t n_cd,
                                  uint64_t cd_size, uint64_t cd_start,
                                  char *why, size_t whylen)
{
    uint64_t rest = zip_le64(p + 4);

    if (memcmp(p, "PK\006\006", 4) != 0)
        snprintf(why, whylen, "no ZIP64 end record where the locator points");
    else if (rest < 44 || rest > 65536)
        snprintf(why, whylen, "the ZIP64 end record's size (%llu) is wrong",
                 zip_ull(rest));
    else if (zip_le32(p + 16) != 0 || zip_le32(p + 20) != 0)
        snprintf(why, whylen,
                 "the ZIP64 end record is for a multi-disk "
                 "archive");
    else if (zip_le64(p + 24) != n_cd || zip_le64(p + 32) != n_cd)
        snprintf(why, whylen,
                 "the ZIP64 end record says %llu entries, the central "
                 "directory has %llu",
                 zip_ull(zip_le64(p + 32)), zip_ull(n_cd));
    else if (zip_le64(p + 40) != cd_size || zip_le64(p + 48) != cd_start)
        snprintf(why, whylen,
                 "the ZIP64 end record says the central directory is %llu "
                 "bytes at offset %llu, it is %llu bytes at offset %llu",
                 zip_ull(zip_le64(p + 40)), zip_ull(zip_le64(p + 48)),
                 zip_ull(cd_size), zip_ull(cd_start));
    else
        return NULL;
    return why;
}

/* An end record field: the value, or the ZIP64 sentinel when the value is
 * that large or a ZIP64 end record holds it. */
static bool eocd_field(uint64_t field, uint64_t value, uint64_t sentinel,
                       bool zip64)
{
    if (field == (value < sentinel ? value : sentinel))
        return zip64 || value <= sentinel; /* (== : the value itself) */
    return zip64 && field == sentinel;
}

bool zipcd_eocd_matches(const unsigned char *p, uint64_t n_cd, uint64_t cd_size,
                        uint64_t cd_start, bool zip64)
{
    return eocd_field(zip_le16(p + 4), 0, 0xffff, zip64) &&
           eocd_field(zip_le16(p + 6), 0, 0xffff, zip64) &&
           eocd_field(zip_le16(p + 8), n_cd, 0xffff, zip64) &&
           eocd_field(zip_le16(p + 10), n_cd, 0xffff, zip64) &&
           eocd_field(zip_le32(p + 12), cd_size, 0xffffffff, zip64) &&
           eocd_field(zip_le32(p + 16), cd_start, 0xffffffff, zip64);
}

const char *zipcd_eocd_problem(const unsigned char *p, uint64_t n_cd,
                               uint64_t cd_size, uint64_t cd_start, bool zip64,
                               char *why, size_t whylen)
{
    if (zipcd_eocd_matches(p, n_cd, cd_size, cd_start, zip64))
        return NULL;
    snprintf(why, whylen,
             "the end record (%u entries, %lu bytes at offset %lu) does "
             "not match the central directory (%llu entries, %llu bytes "
             "at offset %llu)",
             (unsigned)zip_le16(p + 10), (unsigned long)zip_le32(p + 12),
             (unsigned long)zip_le32(p + 16), zip_ull(n_cd), zip_ull(cd_size),
             zip_ull(cd_start));
    return why;
}

/* ---- store layer ---- */

struct zipcd_rd {
    struct store *st;         /* borrowed */
    const char *key;          /* borrowed */
    const struct seal_dk *dk; /* borrowed; NULL: plain */
    uint64_t stored_size;
    uint64_t size;        /* plain ZIP bytes */
    struct wk_buf sealed; /* stored bytes of one fetch */
    struct wk_buf plain;  /* their plaintext (whole chunks) */
    unsigned requests;
};

/* Append plain bytes [off, off + len) of the ZIP to out. */
static enum wk_code fetch(struct zipcd_rd *rd, uint64_t off, uint64_t len,
                          struct wk_buf *out, struct wk_err *err)
{
    struct store_get g;
    uint64_t p_off = off;
    size_t before = out->len;
    enum wk_code rc;

    memset(&g, 0, sizeof(g));
    g.key = rd->key;
    g.offset = off;
    g.len = len;
    g.out = out;
    if (rd->dk) {
        seal_range(rd->size, rd->dk->chunk_bytes, off, len, &g.offset, &g.len,
                   &p_off);
        wk_buf_reset(&rd->sealed);
        g.out = &rd->sealed;
    }
    rd->requests++;
    rc = store_get_many(rd->st, &g, 1, err);
    if (rc != WK_OK)
        return rc;
    if (!rd->dk) {
        if (out->len - before != len)
            return wk_err_set(err, WK_E_CORRUPT,
                              "archive '%s': short read at offset %llu",
                              rd->key, zip_ull(off));
        return WK_OK;
    }
    wk_buf_reset(&rd->plain);
    rc = seal_open_range(rd->dk, rd->size, g.offset, rd->sealed.data,
                         rd->sealed.len, &rd->plain, err);
    if (rc != WK_OK)
        return rc;
    if (off < p_off || off - p_off + len > rd->plain.len)
        return wk_err_set(err, WK_E_CORRUPT,
                          "archive '%s': short read at offset %llu", rd->key,
                          zip_ull(off));
    return wk_buf_append(out, rd->plain.data + (off - p_off), (size_t)len, err);
}

static enum wk_code bad(struct zipcd_rd *rd, struct wk_err *err,
                        const char *why)
{
    return wk_err_set(err, WK_E_CORRUPT,
                      "archive '%s' is truncated or corrupt: %s", rd->key, why);
}

/* The checks of one decoded record against the archive's layout. */
static enum wk_code record_check(struct zipcd_rd *rd,
                                 const struct zipcd_entry *e, uint64_t cd_off,
                                 struct wk_err *err)
{
    char shown[ZIPCD_SHOWN_MAX + 4];
    const char *why = NULL;

    /* the name for messages: wk_path's one rendering of untrusted names */
    wk_path_shown(shown, sizeof(shown), e->name, e->name_len);
    if (!e->extra_ok)
        why = "a size or offset needs a ZIP64 extra field that is missing or "
              "malformed";
    else if (e->usize > (uint64_t)INT64_MAX)
        why = "Malformed 64-bit uncompressed size";
    else if (e->csize > (uint64_t)INT64_MAX)
        why = "Malformed 64-bit compressed size";
    else if (e->disk != 0)
        why = "entry on another disk";
    else if (e->offset > cd_off || cd_off - e->offset < ZIP_LOCAL_FIXED ||
             e->csize > cd_off - e->offset - ZIP_LOCAL_FIXED)
        why = "local header or data outside the entries before the central "
              "directory";
    else if (e->csize >= 0xffffffff || e->usize >= 0xffffffff ||
             e->offset >= 0xffffffff) {
        if (!e->zip64)
            why = "a 64-bit value without a ZIP64 extra field";
    }
    if (!why)
        return WK_OK;
    return wk_err_set(err, WK_E_CORRUPT,
                      "archive '%s' is truncated or corrupt: central "
                      "directory entry %llu '%s': %s",
                      rd->key, zip_ull(e->index), shown, why);
}

/* Stream the records of [cd_off, cd_off + cd_size) to cb; the first
 * have bytes of it may already be in tail (at tail_off). */
static enum wk_code stream_cd(struct zipcd_rd *rd, const struct wk_buf *tail,
                              uint64_t tail_off, uint64_t cd_off,
                              uint64_t cd_size, uint64_t n_entries, bool zip64,
                              size_t block, zipcd_entry_cb cb, void *ud,
                              struct wk_err *err)
{
    struct wk_buf win; /* plain bytes [win_off, win_off + win.len) */
    char *name = NULL; /* NUL-terminated copy for the callback */
    uint64_t win_off = cd_off, pos = cd_off, end = cd_off + cd_size;
    uint64_t fetched; /* next byte not yet in win */
    uint64_t idx = 0;
    uint64_t prev_end = 0; /* least end of the entry before, in offset order */
    uint64_t prev_off = 0;
    const unsigned char *base;
    enum wk_code rc = WK_OK;

    wk_buf_init(&win, block + ZIPCD_RECORD_MAX);
    fetched = cd_off;
    name = malloc(65536);
    if (!name) {
        rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
        goto out;
    }
    while (pos < end) {
        struct zipcd_entry e;
        size_t need = ZIPCD_RECORD_FIXED, len;
        bool in_tail = cd_off >= tail_off;

        for (int pass = 0; pass < 2; pass++) {
            /* make [pos, pos + need) available */
            if (end - pos < need) {
                rc = bad(rd, err, "the central directory ends inside a record");
                goto out;
            }
            if (in_tail) {
                base = (const unsigned char *)tail->data +
                       (size_t)(pos - tail_off);
            } else {
                while (fetched < pos + need) {
                    uint64_t want = end - fetched;
                    size_t keep = (size_t)(fetched - pos);
                    if (want > block)
                        want = block;
                    /* drop what was parsed */
                    if (pos > win_off) {
                        memmove(win.data, win.data + (size_t)(pos - win_off),
                                keep);
                        win.len = keep;
                        win_off = pos;
                    }
                    rc = fetch(rd, fetched, want, &win, err);
                    if (rc != WK_OK)
                        goto out;
                    fetched += want;
                }
                base =
                    (const unsigned char *)win.data + (size_t)(pos - win_off);
            }
            if (pass == 0) {
                if (memcmp(base, "PK\001\002", 4) != 0) {
                    char why[96];
                    snprintf(why, sizeof(why),
                             "no central directory record at offset %llu",
                             zip_ull(pos));
                    rc = bad(rd, err, why);
                    goto out;
                }
                need = zipcd_record_len(base);
            }
        }
        len = need;
        if (idx >= n_entries) {
            rc = bad(rd, err,
                     "the central directory holds more records than the "
                     "end record says");
            goto out;
        }
        zipcd_record_parse(base, &e);
        e.index = idx;
        memcpy(name, e.name, e.name_len);
        name[e.name_len] = '\0';
        e.name = name;
        rc = record_check(rd, &e, cd_off, err);
        if (rc == WK_OK && idx > 0 && e.offset >= prev_off &&
            e.offset < prev_end) {
            /* in offset order, each local header (at least 30 bytes and
             * the name) and its data end before the next one starts;
             * overlapping entries share one kernel (Fifield's bomb) */
            char why[160];
            snprintf(why, sizeof(why),
                     "central directory entry %llu at offset %llu overlaps "
                     "the entry before it (overlapping entries: zip bomb?)",
                     zip_ull(idx), zip_ull(e.offset));
            rc = bad(rd, err, why);
        }
        if (rc == WK_OK) {
            prev_off = e.offset;
            prev_end = e.offset + ZIP_LOCAL_FIXED + e.name_len + e.csize;
        }
        if (rc == WK_OK && cb)
            rc = cb(&e, ud, err);
        if (rc != WK_OK)
            goto out;
        idx++;
        pos += len;
    }
    if (idx != n_entries) {
        char why[128];
        snprintf(why, sizeof(why),
                 "the %send record says %llu entries, the central directory "
                 "has %llu",
                 zip64 ? "ZIP64 " : "", zip_ull(n_entries), zip_ull(idx));
        rc = bad(rd, err, why);
    }
out:
    free(name);
    wk_buf_release(&win);
    return rc;
}

enum wk_code zipcd_read(struct store *st, const char *key, uint64_t stored_size,
                        const struct seal_dk *dk, size_t block_bytes,
                        zipcd_entry_cb cb, void *ud, struct zipcd_info *info,
                        struct wk_err *err)
{
    struct zipcd_rd rd;
    struct wk_buf tail, z64;
    uint64_t tail_off, eocd = 0, n_entries, cd_size, cd_off, cd_end;
    uint64_t z64_off = 0;
    const unsigned char *t, *e = NULL;
    bool zip64 = false;
    char why[256];
    size_t tlen;
    enum wk_code rc;

    memset(&rd, 0, sizeof(rd));
    rd.st = st;
    rd.key = key;
    rd.dk = dk;
    rd.stored_size = stored_size;
    rd.size = stored_size;
    if (block_bytes == 0)
        block_bytes = ZIPCD_BLOCK_BYTES;
    if (block_bytes < ZIPCD_BLOCK_MIN)
        block_bytes = ZIPCD_BLOCK_MIN;
    {
        size_t more = dk ? 2 * (size_t)dk->chunk_bytes : 0;
        size_t span =
            (block_bytes > ZIPCD_TAIL_BYTES ? block_bytes : ZIPCD_TAIL_BYTES) +
            more;
        size_t tags = dk ? (span / dk->chunk_bytes + 2) * SEAL_TAG_BYTES : 0;
        wk_buf_init(&rd.sealed, span + tags);
        wk_buf_init(&rd.plain, span);
    }
    wk_buf_init(&tail, ZIPCD_TAIL_BYTES);
    wk_buf_init(&z64, ZIP_Z64_BYTES);
    if (dk) {
        rc = seal_plain_size(stored_size, dk->chunk_bytes, &rd.size, err);
        if (rc != WK_OK) {
            wk_err_prefix(err, "archive '%s'", key);
            goto out;
        }
    }
    if (rd.size < ZIP_EOCD_BYTES) {
        snprintf(why, sizeof(why), "%llu bytes cannot be a ZIP archive",
                 zip_ull(rd.size));
        rc = bad(&rd, err, why);
        goto out;
    }
    tail_off = rd.size > ZIPCD_TAIL_BYTES ? rd.size - ZIPCD_TAIL_BYTES : 0;
    rc = fetch(&rd, tail_off, rd.size - tail_off, &tail, err);
    if (rc != WK_OK)
        goto out;
    t = (const unsigned char *)tail.data;
    tlen = tail.len;
    /* the last end record whose comment reaches the end exactly */
    for (size_t i = tlen - ZIP_EOCD_BYTES + 1; i-- > 0;) {
        if (memcmp(t + i, "PK\005\006", 4) == 0 &&
            i + ZIP_EOCD_BYTES + zip_le16(t + i + 20) == tlen) {
            e = t + i;
            eocd = tail_off + i;
            break;
        }
    }
    if (!e) {
        rc = bad(&rd, err, "no end of central directory record at its end");
        goto out;
    }
    n_entries = zip_le16(e + 10);
    cd_size = zip_le32(e + 12);
    cd_off = zip_le32(e + 16);
    cd_end = eocd;
    if (eocd >= ZIP_LOC_BYTES && eocd - ZIP_LOC_BYTES >= tail_off &&
        memcmp(t + (size_t)(eocd - ZIP_LOC_BYTES - tail_off), "PK\006\007",
               4) == 0) {
        const unsigned char *loc =
            t + (size_t)(eocd - ZIP_LOC_BYTES - tail_off);
        const unsigned char *zr;

        zip64 = true;
        z64_off = zip_le64(loc + 8);
        if (zip_le32(loc + 4) != 0 || zip_le32(loc + 16) > 1) {
            rc = bad(&rd, err,
                     "the ZIP64 end locator is for a multi-disk archive");
            goto out;
        }
        if (z64_off > eocd - ZIP_LOC_BYTES ||
            eocd - ZIP_LOC_BYTES - z64_off < ZIP_Z64_BYTES) {
            snprintf(why, sizeof(why),
                     "the ZIP64 end locator points to offset %llu, outside "
                     "the archive's end",
                     zip_ull(z64_off));
            rc = bad(&rd, err, why);
            goto out;
        }
        if (z64_off >= tail_off) {
            zr = t + (size_t)(z64_off - tail_off);
        } else {
            rc = fetch(&rd, z64_off, ZIP_Z64_BYTES, &z64, err);
            if (rc != WK_OK)
                goto out;
            zr = (const unsigned char *)z64.data;
        }
        if (memcmp(zr, "PK\006\006", 4) != 0 ||
            z64_off + 12 + zip_le64(zr + 4) != eocd - ZIP_LOC_BYTES) {
            snprintf(why, sizeof(why),
                     "the ZIP64 end locator points to offset %llu, where no "
                     "ZIP64 end record ends at the locator",
                     zip_ull(z64_off));
            rc = bad(&rd, err, why);
            goto out;
        }
        n_entries = zip_le64(zr + 32);
        cd_size = zip_le64(zr + 40);
        cd_off = zip_le64(zr + 48);
        if (zipcd_z64_end_problem(zr, n_entries, cd_size, cd_off, why,
                                  sizeof(why))) {
            rc = bad(&rd, err, why);
            goto out;
        }
        cd_end = z64_off;
    }
    if (cd_off > cd_end || cd_end - cd_off != cd_size) {
        snprintf(why, sizeof(why),
                 "the %send record says the central directory is %llu bytes "
                 "at offset %llu, which does not end where the end records "
                 "start (offset %llu)",
                 zip64 ? "ZIP64 " : "", zip_ull(cd_size), zip_ull(cd_off),
                 zip_ull(cd_end));
        rc = bad(&rd, err, why);
        goto out;
    }
    if (zipcd_eocd_problem(e, n_entries, cd_size, cd_off, zip64, why,
                           sizeof(why))) {
        size_t wl = strlen(why);
        if (!zip64)
            snprintf(why + wl, sizeof(why) - wl,
                     ", and there is no ZIP64 end record");
        rc = bad(&rd, err, why);
        goto out;
    }
    /* a record is at least 46 bytes: a count that cannot fit is a lie */
    if (n_entries > cd_size / ZIPCD_RECORD_FIXED) {
        snprintf(why, sizeof(why),
                 "%llu entries cannot fit in a central directory of %llu "
                 "bytes",
                 zip_ull(n_entries), zip_ull(cd_size));
        rc = bad(&rd, err, why);
        goto out;
    }
    rc = stream_cd(&rd, &tail, tail_off, cd_off, cd_size, n_entries, zip64,
                   block_bytes, cb, ud, err);
    if (rc != WK_OK)
        goto out;
    if (info) {
        info->entries = n_entries;
        info->cd_offset = cd_off;
        info->cd_size = cd_size;
        info->eocd_offset = eocd;
        info->zip_size = rd.size;
        info->zip64 = zip64;
        info->requests = rd.requests;
    }
out:
    wk_buf_release(&z64);
    wk_buf_release(&tail);
    wk_buf_release(&rd.sealed);
    wk_buf_release(&rd.plain);
    return rc;
}
