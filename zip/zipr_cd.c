/*
 * zipr_cd: the end of a streamed archive under zipr: the central
 * directory and end records read from the raw bytes after the last entry
 * (records decoded by zipcd's record layer) and checked against the
 * entries seen: names, offsets, sizes, CRCs, methods, file types, no
 * entry listed twice or hidden inside another (overlapping entries), the
 * ZIP64 end record and locator, the counts, and nothing after the end.
 */
#include "zip/zipr_int.h"

#include "zip/zipcd.h"

#include <stdio.h>
#include <string.h>

/* The entry whose header or data holds offset off (entries are contiguous
 * from offset 0 to cd_start, in offset order), or NULL. A record naming an
 * entry we never saw, inside another one, points into its data. */
static const struct zipr_rec *rec_covering(const struct zipr *zr, uint64_t off,
                                           uint64_t cd_start)
{
    size_t lo = 0, hi = zr->n_recs;

    if (off >= cd_start)
        return NULL;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (zr->recs[mid].offset <= off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo > 0 ? &zr->recs[lo - 1] : NULL;
}

/* A central directory record (p, complete) starting past cd_start. */
static enum wk_code cd_record(struct zipr *zr, const unsigned char *p,
                              uint64_t cd_start, struct wk_err *err)
{
    struct zipcd_entry ce;
    struct zipr_rec *rec;
    const char *problem;

    zipcd_record_parse(p, &ce);
    rec = zipr_rec_find(zr, ce.name, ce.name_len);
    zipr_show_name(zr->shown, (const unsigned char *)ce.name, ce.name_len);
    if (!rec && ce.extra_ok) {
        /* David Fifield's "better zip bomb": entries overlapping in one
         * kernel, each local header quoted as the data of the one before */
        const struct zipr_rec *in = rec_covering(zr, ce.offset, cd_start);
        if (in && in->offset != ce.offset) {
            char inside[ZIPR_SHOWN_MAX + 4];
            zipr_show_name(inside, (const unsigned char *)in->name,
                           in->name_len);
            zr->failed = true;
            return wk_err_set(err, WK_E_CORRUPT,
                              "archive is truncated or corrupt: the central "
                              "directory's entry '%s' at offset %llu overlaps "
                              "entry '%s' (overlapping entries: zip bomb?)",
                              zr->shown, zip_ull(ce.offset), inside);
        }
    }
    if (!rec || rec->in_cd) {
        zr->failed = true;
        return wk_err_set(err, WK_E_CORRUPT,
                          "archive is truncated or corrupt: the central "
                          "directory lists '%s' %s",
                          zr->shown,
                          rec ? "twice" : "but the archive has no such entry");
    }
    rec->in_cd = true;
    problem = zipr_attr_problem(ce.version_made >> 8, ce.ext_attr);
    if (problem)
        return zipr_refuse(zr, err, problem);
    if (!ce.extra_ok)
        return zipr_refuse(
            zr, err, "malformed ZIP64 extra field in the central directory");
    if (ce.offset != rec->offset || ce.csize != rec->csize ||
        ce.usize != rec->usize || ce.crc != rec->crc ||
        ce.method != rec->method || ce.disk != 0)
        return zipr_refuse(zr, err,
                           "central directory disagrees with the local header");
    return WK_OK;
}

static enum wk_code end_refused(const char *why, struct wk_err *err)
{
    return wk_err_set(err, WK_E_CORRUPT, "archive is truncated or corrupt: %s",
                      why);
}

enum wk_code zipr_read_cd(struct zipr *zr, struct wk_err *err)
{
    uint64_t cd_start = zr->next_hdr, off = cd_start, n_cd = 0;
    uint64_t cd_size, z64_off = 0;
    const unsigned char *p;
    char why[200];
    bool z64 = false;
    size_t len;
    enum wk_code rc;

    zr->in_entry = false;
    for (;;) {
        rc = zipr_src_need(zr, off, 4, &p, err);
        if (rc != WK_OK)
            goto out;
        if (memcmp(p, "PK\001\002", 4) != 0)
            break;
        rc = zipr_src_need(zr, off, 46, &p, err);
        if (rc != WK_OK)
            goto out;
        len = zipcd_record_len(p);
        rc = zipr_src_need(zr, off, len, &p, err);
        if (rc != WK_OK)
            goto out;
        rc = cd_record(zr, p, cd_start, err);
        if (rc != WK_OK)
            goto out;
        n_cd++;
        off += len;
    }
    cd_size = off - cd_start;
    if (memcmp(p, "PK\006\006", 4) == 0) {
        uint64_t rest;

        rc = zipr_src_need(zr, off, ZIP_Z64_BYTES, &p, err);
        if (rc != WK_OK)
            goto out;
        rest = zip_le64(p + 4);
        if (zipcd_z64_end_problem(p, n_cd, cd_size, cd_start, why,
                                  sizeof(why))) {
            rc = end_refused(why, err);
            goto out;
        }
        z64 = true;
        z64_off = off;
        off += 12 + rest;
        rc = zipr_src_need(zr, off, ZIP_LOC_BYTES, &p, err);
        if (rc != WK_OK)
            goto out;
        if (memcmp(p, "PK\006\007", 4) != 0) {
            rc = end_refused("no ZIP64 end locator after the ZIP64 end record",
                             err);
            goto out;
        }
        if (zip_le64(p + 8) != z64_off) {
            snprintf(why, sizeof(why),
                     "the ZIP64 end locator points to offset %llu, the ZIP64 "
                     "end record is at %llu",
                     zip_ull(zip_le64(p + 8)), zip_ull(z64_off));
            rc = end_refused(why, err);
            goto out;
        }
        if (zip_le32(p + 4) != 0 || zip_le32(p + 16) > 1) {
            rc = end_refused("the ZIP64 end locator is for a multi-disk "
                             "archive",
                             err);
            goto out;
        }
        off += ZIP_LOC_BYTES;
        rc = zipr_src_need(zr, off, 4, &p, err);
        if (rc != WK_OK)
            goto out;
    }
    if (memcmp(p, "PK\005\006", 4) != 0) {
        rc = wk_err_set(err, WK_E_CORRUPT,
                        "archive is truncated or corrupt: unexpected data at "
                        "offset %llu, in the central directory",
                        zip_ull(off));
        goto out;
    }
    rc = zipr_src_need(zr, off, ZIP_EOCD_BYTES, &p, err);
    if (rc != WK_OK)
        goto out;
    if (zipcd_eocd_problem(p, n_cd, cd_size, cd_start, z64, why, sizeof(why))) {
        rc = end_refused(why, err);
        goto out;
    }
    len =
        ZIP_EOCD_BYTES + (size_t)zip_le16(p + 20); /* and the archive comment */
    rc = zipr_src_need(zr, off, len, &p, err);
    if (rc != WK_OK)
        goto out;
    off += len;
    if (n_cd != zr->n_recs) {
        rc = wk_err_set(err, WK_E_CORRUPT,
                        "archive is truncated or corrupt: the central "
                        "directory lists %llu of the %zu entries",
                        zip_ull(n_cd), zr->n_recs);
        goto out;
    }
    /* Nothing may follow the end record. */
    if (zipr_cap_end(zr) == off) {
        const unsigned char *q;
        size_t got;

        if (zipr_src_take(zr, &q, &got) != WK_OK) {
            rc = wk_err_copy(err, &zr->src_err);
            goto out;
        }
    }
    if (zipr_cap_end(zr) != off) {
        rc = wk_err_set(err, WK_E_CORRUPT,
                        "archive is truncated or corrupt: data after the end "
                        "of the archive (offset %llu)",
                        zip_ull(off));
        goto out;
    }
    rc = WK_OK;
out:
    if (rc != WK_OK)
        zr->failed = true;
    return rc;
}
