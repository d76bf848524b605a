/*
 * zipr_src: the raw bytes under zipr (see zipr_int.h): the caller's pieces
 * handed to libarchive through its read callback, and our copy of every
 * byte we may still parse (a header, a data descriptor, the central
 * directory), kept in one buffer capped at ZIPR_CAPTURE_MAX.
 */
#include "zip/zipr_int.h"

#include <archive.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

uint64_t zipr_cap_end(const struct zipr *zr)
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
const unsigned char *zipr_cap_peek(const struct zipr *zr, uint64_t off,
                                   size_t n)
{
    if (off < zr->cap_off || off + n > zipr_cap_end(zr))
        return NULL;
    return zr->cap + (size_t)(off - zr->cap_off);
}

/* The next piece of at most ZIPR_PIECE_BYTES from the caller (n == 0 at
 * the end), also appended to our copy. */
enum wk_code zipr_src_take(struct zipr *zr, const unsigned char **p, size_t *n)
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
    if (zipr_src_take(zr, &p, &n) != WK_OK) {
        archive_set_error(a, EIO, "read failed");
        return -1;
    }
    *buf = p;
    return (la_ssize_t)n;
}

/* Make [off, off + n) available from the caller's bytes (after libarchive
 * has stopped reading), forgetting everything before off. */
enum wk_code zipr_src_need(struct zipr *zr, uint64_t off, size_t n,
                           const unsigned char **p, struct wk_err *err)
{
    if (off < zr->cap_off)
        return wk_err_set(err, WK_E_INTERNAL,
                          "zip reader: offset %llu already dropped",
                          zip_ull(off));
    cap_trim(zr, off);
    while (zipr_cap_end(zr) < off + n) {
        const unsigned char *q;
        size_t got;

        if (zipr_src_take(zr, &q, &got) != WK_OK) {
            if (zr->cap_overflow)
                return wk_err_set(err, WK_E_CORRUPT,
                                  "archive is truncated or corrupt: record "
                                  "at offset %llu is too large",
                                  zip_ull(off));
            return wk_err_copy(err, &zr->src_err);
        }
        if (got == 0)
            return wk_err_set(err, WK_E_CORRUPT,
                              "archive is truncated or corrupt: it ends in "
                              "the central directory");
    }
    *p = zipr_cap_peek(zr, off, n);
    return WK_OK;
}

int zipr_src_open(struct zipr *zr)
{
    return archive_read_open(zr->ar, zr, NULL, zipr_la_read, NULL);
}
