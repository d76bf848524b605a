/*
 * zipr_entry: an entry's local header and the rules it must pass before
 * its data is handed out (zipr_begin_entry): the header parsed again from
 * the raw bytes and checked against libarchive's view, the file type (from
 * libarchive, and from the central directory's external attributes), the
 * name policy, encryption, the compression method, the ZIP64 extra field,
 * no name twice (a hash set over the entries seen), max_entries, and the
 * size authority (zipr_set_declared).
 */
#include "zip/zipr_int.h"

#include "common/wk_path.h"
#include "zip/zipcd.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- names seen: a hash set over recs ---- */

static uint64_t name_hash(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;

    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

struct zipr_rec *zipr_rec_find(const struct zipr *zr, const char *name,
                               size_t len)
{
    size_t mask = zr->n_slots - 1;

    if (zr->n_slots == 0)
        return NULL;
    for (size_t i = (size_t)name_hash(name, len) & mask;; i = (i + 1) & mask) {
        struct zipr_rec *r;

        if (zr->slots[i] == 0)
            return NULL;
        r = &zr->recs[zr->slots[i] - 1];
        if (r->name_len == len && memcmp(r->name, name, len) == 0)
            return r;
    }
}

static void slot_put(size_t *slots, size_t n_slots, const struct zipr_rec *r,
                     size_t idx)
{
    size_t mask = n_slots - 1;
    size_t i = (size_t)name_hash(r->name, r->name_len) & mask;

    while (slots[i] != 0)
        i = (i + 1) & mask;
    slots[i] = idx + 1;
}

/* Append a record for name (len bytes) and index it; recs grow and the set
 * stays at most half full. */
static enum wk_code rec_add(struct zipr *zr, const unsigned char *name,
                            size_t len, struct zipr_rec **out,
                            struct wk_err *err)
{
    struct zipr_rec *r;

    if (zr->n_recs == zr->recs_size) {
        size_t size = zr->recs_size ? zr->recs_size * 2 : 64;
        struct zipr_rec *nr = realloc(zr->recs, size * sizeof(*nr));
        if (!nr)
            return wk_err_set(err, WK_E_NOMEM, "zip: out of memory");
        zr->recs = nr;
        zr->recs_size = size;
    }
    if ((zr->n_recs + 1) * 2 > zr->n_slots) {
        size_t n_slots = zr->n_slots ? zr->n_slots * 2 : 128;
        size_t *slots = calloc(n_slots, sizeof(*slots));
        if (!slots)
            return wk_err_set(err, WK_E_NOMEM, "zip: out of memory");
        for (size_t i = 0; i < zr->n_recs; i++)
            slot_put(slots, n_slots, &zr->recs[i], i);
        free(zr->slots);
        zr->slots = slots;
        zr->n_slots = n_slots;
    }
    r = &zr->recs[zr->n_recs];
    memset(r, 0, sizeof(*r));
    r->name = malloc(len + 1);
    if (!r->name)
        return wk_err_set(err, WK_E_NOMEM, "zip: out of memory");
    memcpy(r->name, name, len);
    r->name[len] = '\0';
    r->name_len = len;
    slot_put(zr->slots, zr->n_slots, r, zr->n_recs);
    zr->n_recs++;
    *out = r;
    return WK_OK;
}

/* ---- entries ---- */

static const char *type_problem(struct archive_entry *ae)
{
    switch (archive_entry_filetype(ae)) {
    case AE_IFREG:
        break;
    case AE_IFLNK:
        return "symbolic link";
    case AE_IFDIR:
        return "directory";
    case AE_IFCHR:
    case AE_IFBLK:
        return "device";
    case AE_IFIFO:
        return "fifo";
    case AE_IFSOCK:
        return "socket";
    default:
        return "not a regular file";
    }
    if (archive_entry_hardlink(ae) != NULL)
        return "hard link";
    return NULL;
}

/* From external attributes (central directory): Unix mode in the high 16
 * bits when made on Unix, the MS-DOS directory bit for every system. */
const char *zipr_attr_problem(unsigned system, uint32_t ext)
{
    if (system == 3) {
        switch ((ext >> 16) & 0170000) {
        case 0:
        case 0100000:
            break;
        case 0120000:
            return "symbolic link";
        case 0040000:
            return "directory";
        case 0020000:
        case 0060000:
            return "device";
        case 0010000:
            return "fifo";
        case 0140000:
            return "socket";
        default:
            return "not a regular file";
        }
    }
    if (ext & 0x10)
        return "directory";
    return NULL;
}

/* Check the header libarchive just parsed against the raw bytes, and the
 * entry against the rules. */
enum wk_code zipr_begin_entry(struct zipr *zr, struct archive_entry *ae,
                              struct zipr_entry *e, struct wk_err *err)
{
    uint64_t h = zr->next_hdr;
    la_int64_t consumed = archive_filter_bytes(zr->ar, -1);
    const unsigned char *lh = zipr_cap_peek(zr, h, ZIP_LOCAL_FIXED);
    const unsigned char *name, *extra;
    const char *problem;
    struct zipr_rec *rec = NULL;
    uint16_t method;
    size_t n, m;
    uint64_t usize, csize;
    bool z64;
    enum wk_code rc;

    if (!lh || memcmp(lh, "PK\003\004", 4) != 0) {
        zr->failed = true;
        return wk_err_set(err, WK_E_CORRUPT,
                          "archive is truncated or corrupt: unexpected data "
                          "at offset %llu, where an entry should start",
                          zip_ull(h));
    }
    zr->flags = zip_le16(lh + 6);
    method = zip_le16(lh + 8);
    csize = zip_le32(lh + 18);
    usize = zip_le32(lh + 22);
    n = zip_le16(lh + 26);
    m = zip_le16(lh + 28);
    name = zipr_cap_peek(zr, h + ZIP_LOCAL_FIXED, n);
    extra = zipr_cap_peek(zr, h + ZIP_LOCAL_FIXED + n, m);
    if (!name || !extra) {
        zr->failed = true;
        return wk_err_set(err, WK_E_CORRUPT,
                          "archive is truncated or corrupt: header at offset "
                          "%llu does not match the archive",
                          zip_ull(h));
    }
    zipr_show_name(zr->shown, name, n);
    zr->in_entry = true;
    zr->entry_done = false;

    problem = type_problem(ae);
    if (!problem)
        problem = wk_name_problem(name, n);
    if (problem)
        return zipr_refuse(zr, err, problem);
    if (zr->flags &
        (ZIP_FLAG_ENCRYPTED | ZIP_FLAG_STRONG_CRYPT | ZIP_FLAG_CD_CRYPT))
        return zipr_refuse(zr, err, "encrypted");
    if (method != 0 && method != 8) {
        char why[64];
        snprintf(why, sizeof(why), "compression method %u is not supported",
                 (unsigned)method);
        return zipr_refuse(zr, err, why);
    }
    if (consumed < 0 || (uint64_t)consumed != h + ZIP_LOCAL_FIXED + n + m) {
        zr->failed = true;
        return wk_err_set(err, WK_E_CORRUPT,
                          "archive is truncated or corrupt: entry '%s': "
                          "header does not match the archive",
                          zr->shown);
    }
    if (!zipcd_zip64_extra(extra, m, &z64, &usize, &csize, NULL, NULL))
        return zipr_refuse(zr, err, "malformed ZIP64 extra field");
    if (zipr_rec_find(zr, (const char *)name, n))
        return zipr_refuse(zr, err, "duplicate name");
    if (zr->n_recs >= zr->lim.max_entries) {
        zr->failed = true;
        return wk_err_set(err, WK_E_CORRUPT,
                          "archive has more than %llu entries",
                          zip_ull(zr->lim.max_entries));
    }
    rc = rec_add(zr, name, n, &rec, err);
    if (rc != WK_OK) {
        zr->failed = true;
        return rc;
    }
    rec->offset = h;
    rec->method = method;
    rec->crc = zip_le32(lh + 14);

    zr->zip64 = z64;
    zr->local_csize = csize;
    /* With a data descriptor the header's sizes may be 0 ("unknown"); our
     * writer fills in the uncompressed size anyway. */
    if ((zr->flags & ZIP_FLAG_DESCRIPTOR) &&
        (usize == 0 || (usize == 0xffffffff && !z64)))
        zr->declared = UINT64_MAX;
    else
        zr->declared = usize;
    zr->authority = false;
    if (zr->declared_cb) {
        uint64_t dus = 0;
        uint32_t dcrc = 0;
        if (zr->declared_cb(zr->declared_ud, zr->n_recs - 1, &dus, &dcrc)) {
            if (zr->declared != UINT64_MAX && zr->declared != dus) {
                char why[128];
                snprintf(why, sizeof(why),
                         "central directory disagrees with the local header "
                         "(%llu bytes, the header %llu)",
                         zip_ull(dus), zip_ull(zr->declared));
                return zipr_refuse(zr, err, why);
            }
            zr->declared = dus;
            zr->authority = true;
            zr->auth_crc = dcrc;
        }
    }
    zr->data_start = (uint64_t)consumed;
    zr->produced = 0;
    zr->blk = NULL;
    zr->blk_len = 0;
    zr->keep_follow = true;

    e->name = rec->name;
    e->size = zr->declared;
    e->mtime = archive_entry_mtime(ae);
    return WK_OK;
}
