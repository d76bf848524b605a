/*
 * zipr_data: an entry's data path under zipr: blocks from libarchive
 * (inflated or stored) checked against the limits before anyone sees them
 * (declared size, max_total_bytes, the expansion ratio), and the entry's
 * end: the data descriptor or the header's sizes, the declared size and
 * CRC-32 of the authority, and where the next header must start.
 */
#include "zip/zipr_int.h"

#include <archive.h>
#include <stdio.h>
#include <string.h>

/* libarchive said the entry's data is over (and checked it): check the
 * sizes and the data descriptor ourselves, and find the next header. */
static enum wk_code end_entry(struct zipr *zr, struct wk_err *err)
{
    struct zipr_rec *rec = &zr->recs[zr->n_recs - 1];
    uint64_t data_end = (uint64_t)archive_filter_bytes(zr->ar, -1);
    uint64_t csize = data_end - zr->data_start;

    if (zr->flags & ZIP_FLAG_DESCRIPTOR) {
        size_t w = zr->zip64 ? 8 : 4;
        const unsigned char *d = zipr_cap_peek(zr, data_end, 4);
        size_t sig = (d && memcmp(d, "PK\007\010", 4) == 0) ? 4 : 0;
        uint64_t dcs, dus;

        d = zipr_cap_peek(zr, data_end, sig + 4 + 2 * w);
        if (!d) {
            zr->failed = true;
            return wk_err_set(err, WK_E_CORRUPT,
                              "archive is truncated or corrupt: entry '%s': "
                              "no data descriptor",
                              zr->shown);
        }
        rec->crc = zip_le32(d + sig);
        dcs = w == 8 ? zip_le64(d + sig + 4) : zip_le32(d + sig + 4);
        dus = w == 8 ? zip_le64(d + sig + 12) : zip_le32(d + sig + 8);
        if (dcs != csize || dus != zr->produced) {
            char why[160];
            snprintf(why, sizeof(why),
                     "data descriptor says %llu bytes (%llu compressed), "
                     "the data has %llu (%llu)",
                     zip_ull(dus), zip_ull(dcs), zip_ull(zr->produced),
                     zip_ull(csize));
            return zipr_refuse(zr, err, why);
        }
        zr->next_hdr = data_end + sig + 4 + 2 * w;
    } else {
        if (zr->local_csize != csize) {
            char why[128];
            snprintf(why, sizeof(why),
                     "header says %llu compressed bytes, the data has %llu",
                     zip_ull(zr->local_csize), zip_ull(csize));
            return zipr_refuse(zr, err, why);
        }
        zr->next_hdr = data_end;
    }
    if (zr->declared != UINT64_MAX && zr->produced != zr->declared) {
        char why[128];
        snprintf(why, sizeof(why), "%llu bytes, its %s declares %llu",
                 zip_ull(zr->produced),
                 zr->authority ? "central directory" : "header",
                 zip_ull(zr->declared));
        return zipr_refuse(zr, err, why);
    }
    if (zr->authority && rec->crc != zr->auth_crc) {
        char why[128];
        snprintf(why, sizeof(why),
                 "CRC-32 %08lx, its central directory declares %08lx",
                 (unsigned long)rec->crc, (unsigned long)zr->auth_crc);
        return zipr_refuse(zr, err, why);
    }
    rec->csize = csize;
    rec->usize = zr->produced;
    zr->entry_done = true;
    zr->keep_follow = false;
    zr->keep_from = zr->next_hdr;
    return WK_OK;
}

/* The limits on a block of n bytes before anyone sees it. */
static enum wk_code check_block(struct zipr *zr, size_t n, struct wk_err *err)
{
    uint64_t after = zr->produced + n;
    const struct zipr_rec *rec = &zr->recs[zr->n_recs - 1];

    if (zr->declared != UINT64_MAX && after > zr->declared) {
        char why[96];
        snprintf(why, sizeof(why), "more than the %llu bytes its %s declares",
                 zip_ull(zr->declared),
                 zr->authority ? "central directory" : "header");
        return zipr_refuse(zr, err, why);
    }
    if (zr->total > zr->lim.max_total_bytes ||
        n > zr->lim.max_total_bytes - zr->total) {
        zr->failed = true;
        return wk_err_set(err, WK_E_CORRUPT,
                          "archive holds more than %llu bytes, the "
                          "manifest's uncompressedSize",
                          zip_ull(zr->lim.max_total_bytes));
    }
    if (rec->method != 0 && !zr->authority && after > zr->lim.ratio_min_bytes) {
        la_int64_t pos = archive_filter_bytes(zr->ar, -1);
        uint64_t in = pos > 0 && (uint64_t)pos > zr->data_start
                          ? (uint64_t)pos - zr->data_start
                          : 0;

        if (in <= UINT64_MAX / zr->lim.max_ratio &&
            after > in * zr->lim.max_ratio) {
            char why[96];
            snprintf(why, sizeof(why), "expands %llu:1 (zip bomb?)",
                     zip_ull(after / (in ? in : 1)));
            return zipr_refuse(zr, err, why);
        }
    }
    return WK_OK;
}

/* The entry's next block from libarchive into blk, or entry_done. */
enum wk_code zipr_next_block(struct zipr *zr, struct wk_err *err)
{
    for (;;) {
        const void *p = NULL;
        size_t n = 0;
        la_int64_t off = 0;
        int r = archive_read_data_block(zr->ar, &p, &n, &off);
        enum wk_code rc;

        if (r == ARCHIVE_EOF)
            return end_entry(zr, err);
        if (r != ARCHIVE_OK)
            return zipr_ar_fail(zr, UINT64_MAX, err);
        if (n == 0)
            continue;
        if (off < 0 || (uint64_t)off != zr->produced)
            return zipr_refuse(zr, err, "data out of order");
        rc = check_block(zr, n, err);
        if (rc != WK_OK)
            return rc;
        zr->produced += n;
        zr->total += n;
        zr->blk = p;
        zr->blk_len = n;
        return WK_OK;
    }
}
