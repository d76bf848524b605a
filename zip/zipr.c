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
 */
#include "zip/zipr.h"

#include "zip/zipcd.h"

#include "common/wk_path.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest piece handed to libarchive at once. */
#define ZIPR_PIECE_BYTES ((size_t)64 * 1024)
/* Raw bytes kept for our own parsing: a local header (30 + 2 x 64 KiB), a
 * central directory record (46 + 3 x 64 KiB), plus one piece, fit. */
#define ZIPR_CAPTURE_MAX ((size_t)1024 * 1024)
/* Names in messages are cut to this many bytes. */
#define ZIPR_SHOWN_MAX 100u

#define ZIP_FLAG_ENCRYPTED    (1u << 0)
#define ZIP_FLAG_DESCRIPTOR   (1u << 3)
#define ZIP_FLAG_STRONG_CRYPT (1u << 6)
#define ZIP_FLAG_CD_CRYPT     (1u << 13)

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

static uint16_t le16(const unsigned char *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static uint64_t le64(const unsigned char *p)
{
    return (uint64_t)le32(p) | ((uint64_t)le32(p + 4) << 32);
}

static unsigned long long ull(uint64_t v)
{
    return (unsigned long long)v;
}

/* Why the name s (len bytes, possibly holding NUL) is refused, or NULL:
 * the one policy (wk_name_problem), nothing of our own. */
static const char *name_problem(const unsigned char *s, size_t len)
{
    return wk_name_problem(s, len);
}

bool zipr_name_valid(const char *name, char *why, size_t whylen)
{
    const char *problem =
        name_problem((const unsigned char *)name, strlen(name));

    if (problem && why && whylen > 0)
        snprintf(why, whylen, "%s", problem);
    return problem == NULL;
}

/* The name for messages (see wk_path_shown). */
static void show_name(char *dst, const unsigned char *s, size_t len)
{
    wk_path_shown(dst, ZIPR_SHOWN_MAX + 4, s, len);
}

/* ---- raw bytes: the caller's pieces and our copy of them ---- */

static uint64_t cap_end(const struct zipr *zr)
{
    return zr->cap_off + zr->cap_len;
}

/* Forget the bytes before offset upto. */
static void cap_trim(struct zipr *zr, uint64_t upto)
{
    size_t drop;

    if (upto <= zr->cap_off)
        return;
    drop = upto - zr->cap_off < zr->cap_len ? (size_t)(upto - zr->cap_off)
                                            : zr->cap_len;
    memmove(zr->cap, zr->cap + drop, zr->cap_len - drop);
    zr->cap_len -= drop;
    zr->cap_off += drop;
}

static bool cap_append(struct zipr *zr, const unsigned char *p, size_t n)
{
    if (n > ZIPR_CAPTURE_MAX - zr->cap_len) {
        zr->cap_overflow = true;
        return false;
    }
    if (zr->cap_len + n > zr->cap_size) {
        size_t size = zr->cap_size ? zr->cap_size : ZIPR_PIECE_BYTES * 2;
        unsigned char *c;

        while (size < zr->cap_len + n)
            size *= 2;
        if (size > ZIPR_CAPTURE_MAX)
            size = ZIPR_CAPTURE_MAX;
        c = realloc(zr->cap, size);
        if (!c)
            return false;
        zr->cap = c;
        zr->cap_size = size;
    }
    memcpy(zr->cap + zr->cap_len, p, n);
    zr->cap_len += n;
    return true;
}

/* The kept bytes [off, off + n), or NULL when we do not hold them all. */
static const unsigned char *cap_peek(const struct zipr *zr, uint64_t off,
                                     size_t n)
{
    if (off < zr->cap_off || off + n > cap_end(zr))
        return NULL;
    return zr->cap + (size_t)(off - zr->cap_off);
}

/* The next piece of at most ZIPR_PIECE_BYTES from the caller (n == 0 at
 * the end), also appended to our copy. */
static enum wk_code src_take(struct zipr *zr, const unsigned char **p,
                             size_t *n)
{
    *p = NULL;
    *n = 0;
    if (zr->src_pos == zr->src_len && !zr->src_eof) {
        const void *q = NULL;
        size_t len = 0;
        enum wk_code rc;

        zr->src = NULL;
        zr->src_len = zr->src_pos = 0;
        rc = zr->cb(zr->ud, &q, &len, &zr->src_err);
        if (rc != WK_OK) {
            if (zr->src_err.code == WK_OK)
                wk_err_set(&zr->src_err, rc, "zip read callback failed");
            return rc;
        }
        if (len > 0 && !q)
            return wk_err_set(&zr->src_err, WK_E_INTERNAL,
                              "zip read callback gave no data");
        if (len == 0)
            zr->src_eof = true;
        zr->src = q;
        zr->src_len = len;
    }
    if (zr->src_pos == zr->src_len)
        return WK_OK;
    *n = zr->src_len - zr->src_pos;
    if (*n > ZIPR_PIECE_BYTES)
        *n = ZIPR_PIECE_BYTES;
    *p = zr->src + zr->src_pos;
    if (!cap_append(zr, *p, *n)) {
        if (zr->cap_overflow)
            return WK_E_CORRUPT;
        return wk_err_set(&zr->src_err, WK_E_NOMEM, "zip: out of memory");
    }
    zr->src_pos += *n;
    return WK_OK;
}

/* libarchive's read callback. */
static la_ssize_t zipr_la_read(struct archive *a, void *ud, const void **buf)
{
    struct zipr *zr = ud;
    const unsigned char *p;
    size_t n;
    la_int64_t consumed = archive_filter_bytes(a, -1);

    /* Keep only what we may still parse: nothing libarchive has consumed
     * while it reads entry data, else from the next header on. */
    if (consumed >= 0) {
        uint64_t upto = (uint64_t)consumed;
        if (!zr->keep_follow && zr->keep_from < upto)
            upto = zr->keep_from;
        cap_trim(zr, upto);
    }
    if (src_take(zr, &p, &n) != WK_OK) {
        archive_set_error(a, EIO, "read failed");
        return -1;
    }
    *buf = p;
    return (la_ssize_t)n;
}

/* Make [off, off + n) available from the caller's bytes (after libarchive
 * has stopped reading), forgetting everything before off. */
static enum wk_code src_need(struct zipr *zr, uint64_t off, size_t n,
                             const unsigned char **p, struct wk_err *err)
{
    if (off < zr->cap_off)
        return wk_err_set(err, WK_E_INTERNAL,
                          "zip reader: offset %llu already dropped", ull(off));
    cap_trim(zr, off);
    while (cap_end(zr) < off + n) {
        const unsigned char *q;
        size_t got;

        if (src_take(zr, &q, &got) != WK_OK) {
            if (zr->cap_overflow)
                return wk_err_set(err, WK_E_CORRUPT,
                                  "archive is truncated or corrupt: record "
                                  "at offset %llu is too large",
                                  ull(off));
            return wk_err_copy(err, &zr->src_err);
        }
        if (got == 0)
            return wk_err_set(err, WK_E_CORRUPT,
                              "archive is truncated or corrupt: it ends in "
                              "the central directory");
    }
    *p = cap_peek(zr, off, n);
    return WK_OK;
}

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

static struct zipr_rec *rec_find(const struct zipr *zr, const char *name,
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

/* ---- errors ---- */

static enum wk_code refuse(struct zipr *zr, struct wk_err *err, const char *why)
{
    zr->failed = true;
    return wk_err_set(err, WK_E_CORRUPT, "entry '%s': %s", zr->shown, why);
}

/* A libarchive failure: the caller's read error if that was the cause,
 * else the archive is bad. hdr: the offset of the header libarchive was
 * reading, or UINT64_MAX. */
static enum wk_code ar_fail(struct zipr *zr, uint64_t hdr, struct wk_err *err)
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
                          ZIPR_CAPTURE_MAX, ull(zr->next_hdr));
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
                          ull(hdr), text);
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
static const char *attr_problem(unsigned system, uint32_t ext)
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
static enum wk_code begin_entry(struct zipr *zr, struct archive_entry *ae,
                                struct zipr_entry *e, struct wk_err *err)
{
    uint64_t h = zr->next_hdr;
    la_int64_t consumed = archive_filter_bytes(zr->ar, -1);
    const unsigned char *lh = cap_peek(zr, h, 30);
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
                          ull(h));
    }
    zr->flags = le16(lh + 6);
    method = le16(lh + 8);
    csize = le32(lh + 18);
    usize = le32(lh + 22);
    n = le16(lh + 26);
    m = le16(lh + 28);
    name = cap_peek(zr, h + 30, n);
    extra = cap_peek(zr, h + 30 + n, m);
    if (!name || !extra) {
        zr->failed = true;
        return wk_err_set(err, WK_E_CORRUPT,
                          "archive is truncated or corrupt: header at offset "
                          "%llu does not match the archive",
                          ull(h));
    }
    show_name(zr->shown, name, n);
    zr->in_entry = true;
    zr->entry_done = false;

    problem = type_problem(ae);
    if (!problem)
        problem = name_problem(name, n);
    if (problem)
        return refuse(zr, err, problem);
    if (zr->flags &
        (ZIP_FLAG_ENCRYPTED | ZIP_FLAG_STRONG_CRYPT | ZIP_FLAG_CD_CRYPT))
        return refuse(zr, err, "encrypted");
    if (method != 0 && method != 8) {
        char why[64];
        snprintf(why, sizeof(why), "compression method %u is not supported",
                 (unsigned)method);
        return refuse(zr, err, why);
    }
    if (consumed < 0 || (uint64_t)consumed != h + 30 + n + m) {
        zr->failed = true;
        return wk_err_set(err, WK_E_CORRUPT,
                          "archive is truncated or corrupt: entry '%s': "
                          "header does not match the archive",
                          zr->shown);
    }
    if (!zipcd_zip64_extra(extra, m, &z64, &usize, &csize, NULL, NULL))
        return refuse(zr, err, "malformed ZIP64 extra field");
    if (rec_find(zr, (const char *)name, n))
        return refuse(zr, err, "duplicate name");
    if (zr->n_recs >= zr->lim.max_entries) {
        zr->failed = true;
        return wk_err_set(err, WK_E_CORRUPT,
                          "archive has more than %llu entries",
                          ull(zr->lim.max_entries));
    }
    rc = rec_add(zr, name, n, &rec, err);
    if (rc != WK_OK) {
        zr->failed = true;
        return rc;
    }
    rec->offset = h;
    rec->method = method;
    rec->crc = le32(lh + 14);

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
                         ull(dus), ull(zr->declared));
                return refuse(zr, err, why);
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

/* libarchive said the entry's data is over (and checked it): check the
 * sizes and the data descriptor ourselves, and find the next header. */
static enum wk_code end_entry(struct zipr *zr, struct wk_err *err)
{
    struct zipr_rec *rec = &zr->recs[zr->n_recs - 1];
    uint64_t data_end = (uint64_t)archive_filter_bytes(zr->ar, -1);
    uint64_t csize = data_end - zr->data_start;

    if (zr->flags & ZIP_FLAG_DESCRIPTOR) {
        size_t w = zr->zip64 ? 8 : 4;
        const unsigned char *d = cap_peek(zr, data_end, 4);
        size_t sig = (d && memcmp(d, "PK\007\010", 4) == 0) ? 4 : 0;
        uint64_t dcs, dus;

        d = cap_peek(zr, data_end, sig + 4 + 2 * w);
        if (!d) {
            zr->failed = true;
            return wk_err_set(err, WK_E_CORRUPT,
                              "archive is truncated or corrupt: entry '%s': "
                              "no data descriptor",
                              zr->shown);
        }
        rec->crc = le32(d + sig);
        dcs = w == 8 ? le64(d + sig + 4) : le32(d + sig + 4);
        dus = w == 8 ? le64(d + sig + 12) : le32(d + sig + 8);
        if (dcs != csize || dus != zr->produced) {
            char why[160];
            snprintf(why, sizeof(why),
                     "data descriptor says %llu bytes (%llu compressed), "
                     "the data has %llu (%llu)",
                     ull(dus), ull(dcs), ull(zr->produced), ull(csize));
            return refuse(zr, err, why);
        }
        zr->next_hdr = data_end + sig + 4 + 2 * w;
    } else {
        if (zr->local_csize != csize) {
            char why[128];
            snprintf(why, sizeof(why),
                     "header says %llu compressed bytes, the data has %llu",
                     ull(zr->local_csize), ull(csize));
            return refuse(zr, err, why);
        }
        zr->next_hdr = data_end;
    }
    if (zr->declared != UINT64_MAX && zr->produced != zr->declared) {
        char why[128];
        snprintf(why, sizeof(why), "%llu bytes, its %s declares %llu",
                 ull(zr->produced),
                 zr->authority ? "central directory" : "header",
                 ull(zr->declared));
        return refuse(zr, err, why);
    }
    if (zr->authority && rec->crc != zr->auth_crc) {
        char why[128];
        snprintf(why, sizeof(why),
                 "CRC-32 %08lx, its central directory declares %08lx",
                 (unsigned long)rec->crc, (unsigned long)zr->auth_crc);
        return refuse(zr, err, why);
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
                 ull(zr->declared),
                 zr->authority ? "central directory" : "header");
        return refuse(zr, err, why);
    }
    if (zr->total > zr->lim.max_total_bytes ||
        n > zr->lim.max_total_bytes - zr->total) {
        zr->failed = true;
        return wk_err_set(err, WK_E_CORRUPT,
                          "archive holds more than %llu bytes, the "
                          "manifest's uncompressedSize",
                          ull(zr->lim.max_total_bytes));
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
                     ull(after / (in ? in : 1)));
            return refuse(zr, err, why);
        }
    }
    return WK_OK;
}

/* The entry's next block from libarchive into blk, or entry_done. */
static enum wk_code next_block(struct zipr *zr, struct wk_err *err)
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
            return ar_fail(zr, UINT64_MAX, err);
        if (n == 0)
            continue;
        if (off < 0 || (uint64_t)off != zr->produced)
            return refuse(zr, err, "data out of order");
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

/* ---- the central directory and end records ---- */

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
    rec = rec_find(zr, ce.name, ce.name_len);
    show_name(zr->shown, (const unsigned char *)ce.name, ce.name_len);
    if (!rec && ce.extra_ok) {
        /* David Fifield's "better zip bomb": entries overlapping in one
         * kernel, each local header quoted as the data of the one before */
        const struct zipr_rec *in = rec_covering(zr, ce.offset, cd_start);
        if (in && in->offset != ce.offset) {
            char inside[ZIPR_SHOWN_MAX + 4];
            show_name(inside, (const unsigned char *)in->name, in->name_len);
            zr->failed = true;
            return wk_err_set(err, WK_E_CORRUPT,
                              "archive is truncated or corrupt: the central "
                              "directory's entry '%s' at offset %llu overlaps "
                              "entry '%s' (overlapping entries: zip bomb?)",
                              zr->shown, ull(ce.offset), inside);
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
    problem = attr_problem(ce.version_made >> 8, ce.ext_attr);
    if (problem)
        return refuse(zr, err, problem);
    if (!ce.extra_ok)
        return refuse(zr, err,
                      "malformed ZIP64 extra field in the central directory");
    if (ce.offset != rec->offset || ce.csize != rec->csize ||
        ce.usize != rec->usize || ce.crc != rec->crc ||
        ce.method != rec->method || ce.disk != 0)
        return refuse(zr, err,
                      "central directory disagrees with the local header");
    return WK_OK;
}

static enum wk_code end_refused(const char *why, struct wk_err *err)
{
    return wk_err_set(err, WK_E_CORRUPT, "archive is truncated or corrupt: %s",
                      why);
}

static enum wk_code read_central_directory(struct zipr *zr, struct wk_err *err)
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
        rc = src_need(zr, off, 4, &p, err);
        if (rc != WK_OK)
            goto out;
        if (memcmp(p, "PK\001\002", 4) != 0)
            break;
        rc = src_need(zr, off, 46, &p, err);
        if (rc != WK_OK)
            goto out;
        len = zipcd_record_len(p);
        rc = src_need(zr, off, len, &p, err);
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

        rc = src_need(zr, off, 56, &p, err);
        if (rc != WK_OK)
            goto out;
        rest = le64(p + 4);
        if (zipcd_z64_end_problem(p, n_cd, cd_size, cd_start, why,
                                  sizeof(why))) {
            rc = end_refused(why, err);
            goto out;
        }
        z64 = true;
        z64_off = off;
        off += 12 + rest;
        rc = src_need(zr, off, 20, &p, err);
        if (rc != WK_OK)
            goto out;
        if (memcmp(p, "PK\006\007", 4) != 0) {
            rc = end_refused("no ZIP64 end locator after the ZIP64 end record",
                             err);
            goto out;
        }
        if (le64(p + 8) != z64_off) {
            snprintf(why, sizeof(why),
                     "the ZIP64 end locator points to offset %llu, the ZIP64 "
                     "end record is at %llu",
                     ull(le64(p + 8)), ull(z64_off));
            rc = end_refused(why, err);
            goto out;
        }
        if (le32(p + 4) != 0 || le32(p + 16) > 1) {
            rc = end_refused("the ZIP64 end locator is for a multi-disk "
                             "archive",
                             err);
            goto out;
        }
        off += 20;
        rc = src_need(zr, off, 4, &p, err);
        if (rc != WK_OK)
            goto out;
    }
    if (memcmp(p, "PK\005\006", 4) != 0) {
        rc = wk_err_set(err, WK_E_CORRUPT,
                        "archive is truncated or corrupt: unexpected data at "
                        "offset %llu, in the central directory",
                        ull(off));
        goto out;
    }
    rc = src_need(zr, off, 22, &p, err);
    if (rc != WK_OK)
        goto out;
    if (!zipcd_eocd_matches(p, n_cd, cd_size, cd_start, z64)) {
        snprintf(why, sizeof(why),
                 "the end record (%u entries, %lu bytes at offset %lu) does "
                 "not match the central directory (%llu entries, %llu bytes "
                 "at offset %llu)",
                 (unsigned)le16(p + 10), (unsigned long)le32(p + 12),
                 (unsigned long)le32(p + 16), ull(n_cd), ull(cd_size),
                 ull(cd_start));
        rc = end_refused(why, err);
        goto out;
    }
    len = 22 + (size_t)le16(p + 20); /* and the archive comment */
    rc = src_need(zr, off, len, &p, err);
    if (rc != WK_OK)
        goto out;
    off += len;
    if (n_cd != zr->n_recs) {
        rc = wk_err_set(err, WK_E_CORRUPT,
                        "archive is truncated or corrupt: the central "
                        "directory lists %llu of the %zu entries",
                        ull(n_cd), zr->n_recs);
        goto out;
    }
    /* Nothing may follow the end record. */
    if (cap_end(zr) == off) {
        const unsigned char *q;
        size_t got;

        if (src_take(zr, &q, &got) != WK_OK) {
            rc = wk_err_copy(err, &zr->src_err);
            goto out;
        }
    }
    if (cap_end(zr) != off) {
        rc = wk_err_set(err, WK_E_CORRUPT,
                        "archive is truncated or corrupt: data after the end "
                        "of the archive (offset %llu)",
                        ull(off));
        goto out;
    }
    rc = WK_OK;
out:
    if (rc != WK_OK)
        zr->failed = true;
    return rc;
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
    if (archive_read_open(zr->ar, zr, NULL, zipr_la_read, NULL) != ARCHIVE_OK) {
        rc = ar_fail(zr, UINT64_MAX, err);
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
        rc = next_block(zr, err);
        if (rc != WK_OK)
            return rc;
    }
    zr->in_entry = false;
    zr->keep_follow = false;
    zr->keep_from = zr->next_hdr;
    r = archive_read_next_header(zr->ar, &ae);
    if (r == ARCHIVE_EOF) {
        rc = read_central_directory(zr, err);
        if (rc != WK_OK)
            return rc;
        zr->done = true;
        *eof = true;
        return WK_OK;
    }
    if (r != ARCHIVE_OK && !(r == ARCHIVE_WARN && conversion_warning(zr->ar)))
        return ar_fail(zr, zr->next_hdr, err);
    return begin_entry(zr, ae, e, err);
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
        rc = next_block(zr, err);
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
