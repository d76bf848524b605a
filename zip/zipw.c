/*
 * zipw on libarchive's ZIP writer (with zipr*.c and zcat.c, the only files
 * that include archive.h).
 *
 * What libarchive 3.6.2 does, and what we rely on:
 * - Format options ("zip:compression-level", "zip:hdrcharset") can only be
 *   set before archive_write_open2(); a late archive_write_set_options()
 *   fails and leaves the archive in the fatal state. The deflate level is
 *   therefore fixed per archive, and store vs deflate is switched per entry
 *   with archive_write_zip_set_compression_store()/_deflate(), which are
 *   allowed between entries.
 * - hdrcharset=UTF-8 makes it set the UTF-8 flag (bit 11) on non-ASCII
 *   names whatever the process locale; the names are given as UTF-8.
 * - Every regular-file entry has a data descriptor (sizes and CRC after the
 *   data), so the output is append-only.
 * - ZIP64 (we never set zip:!zip64): an entry whose size is set has the
 *   ZIP64 extra field in its local header (and a 64-bit data descriptor)
 *   when it is over 4 GiB - 1, or over 3.75 GiB and deflated. The central
 *   directory has a ZIP64 extra field for any entry whose sizes or local
 *   header offset pass 4 GiB - 1, and the end of the archive has the ZIP64
 *   end record and locator when the central directory starts past 4 GiB or
 *   there are more than 65535 entries. Entries and archives over 4 GiB
 *   are therefore valid as long as the entry's size is set up front, which
 *   zipw_entry_begin() always does. (Edge case in libarchive: a size or
 *   offset of exactly 0xffffffff is written as that value with no ZIP64
 *   field, since its tests are "> 0xffffffff"; readers that find no ZIP64
 *   field use the value as is, which is then the right one.)
 * - archive_write_data() silently drops bytes past the size given in the
 *   header, and a short entry is not an error for it either; zipw counts
 *   the bytes itself and fails both cases.
 * - DOS times in the headers are in the local time zone (the worker runs
 *   in UTC); the exact mtime is also stored in the "UT" extra field.
 * - With bytes_per_block = ZIPW_BLOCK_BYTES and bytes_in_last_block = 1 the
 *   sink receives whole blocks and an unpadded last one.
 */
#include "common/wk_path.h"
#include "zip/zipw.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "storage/store.h"
#include "storage/store_hash.h"

/* Largest piece handed to archive_write_data() at once. */
#define ZIPW_WRITE_MAX ((size_t)1 << 30)

struct zipw {
    struct archive *ar;          /* owned */
    struct archive_entry *entry; /* owned, reused for every entry */
    struct store_writer *sink;   /* borrowed */
    struct store_sha256 *hash;   /* owned */
    struct wk_err sink_err;      /* first failure seen by the callback */
    uint64_t bytes_out;
    int level;
    char name[128]; /* current entry, cut for messages */
    uint64_t entry_size;
    uint64_t entry_written;
    uint32_t entry_crc;
    bool entry_stored;
    struct zipw_rec *recs; /* owned: one per completed entry */
    size_t n_recs, cap_recs;
    bool in_entry;
    bool finished;
    bool failed;
    bool discard;            /* drop output: the sink failed, or zipw_free() */
    char hex[65];            /* SHA-256 of the output, set by zipw_finish() */
    struct wk_nameset names; /* owned: every entry name so far */
};

/* zlib's crc32 takes a uInt length. */
static uint32_t crc_update(uint32_t crc, const unsigned char *p, size_t n)
{
    while (n > 0) {
        uInt k = n > (size_t)1 << 30 ? (uInt)1 << 30 : (uInt)n;
        crc = (uint32_t)crc32(crc, p, k);
        p += k;
        n -= k;
    }
    return crc;
}

/* Never fails toward libarchive: after a sink failure (kept in sink_err
 * and reported by the zipw call that caused it) or once zipw_free() is
 * discarding, bytes are dropped. libarchive 3.6.2 leaks its deflate state
 * and central directory when an archive in the fatal state is freed, so we
 * never let it get there because of the sink. */
static la_ssize_t zipw_write_cb(struct archive *a, void *ud, const void *p,
                                size_t n)
{
    struct zipw *zw = ud;

    (void)a;
    if (zw->discard)
        return (la_ssize_t)n;
    if (store_writer_write(zw->sink, p, n, &zw->sink_err) != WK_OK) {
        zw->discard = true;
        return (la_ssize_t)n;
    }
    if (zw->hash)
        store_sha256_update(zw->hash, p, n);
    zw->bytes_out += n;
    return (la_ssize_t)n;
}

/* After a libarchive call: a sink failure it hid from libarchive. */
static enum wk_code sink_failed(struct zipw *zw, struct wk_err *err)
{
    if (zw->sink_err.code == WK_OK)
        return WK_OK;
    zw->failed = true;
    return wk_err_copy(err, &zw->sink_err);
}

/* Turn a libarchive failure into err. */
static enum wk_code ar_fail(struct zipw *zw, const char *what,
                            struct wk_err *err)
{
    const char *msg = archive_error_string(zw->ar);
    enum wk_code code = WK_E_INTERNAL;

    zw->failed = true;
    if (zw->sink_err.code != WK_OK)
        return wk_err_copy(err, &zw->sink_err);
    if (archive_errno(zw->ar) == ENOMEM)
        code = WK_E_NOMEM;
    return wk_err_set(err, code, "%s: %s", what,
                      msg ? msg : "libarchive error");
}

static enum wk_code check_usable(const struct zipw *zw, const char *what,
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

/* The name for messages (see wk_path_shown). */
static void set_msg_name(char *dst, size_t cap, const char *name)
{
    wk_path_shown(dst, cap, name, strlen(name));
}

enum wk_code zipw_new(struct store_writer *sink, const struct zipw_opts *opts,
                      struct zipw **out, struct wk_err *err)
{
    struct zipw *zw = NULL;
    int level = opts ? opts->level : 6;
    char lvl[2];
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
    wk_err_clear(&zw->sink_err);
    if (!opts || !opts->no_hash) {
        rc = store_sha256_new(&zw->hash, err);
        if (rc != WK_OK)
            goto out;
    }
    zw->ar = archive_write_new();
    zw->entry = archive_entry_new();
    if (!zw->ar || !zw->entry) {
        rc = wk_err_set(err, WK_E_NOMEM, "zip: out of memory");
        goto out;
    }
    lvl[0] = (char)('0' + level);
    lvl[1] = '\0';
    if (archive_write_set_format_zip(zw->ar) != ARCHIVE_OK ||
        archive_write_set_format_option(zw->ar, "zip", "hdrcharset", "UTF-8") !=
            ARCHIVE_OK ||
        archive_write_set_format_option(zw->ar, "zip", "compression-level",
                                        lvl) != ARCHIVE_OK ||
        archive_write_set_bytes_per_block(zw->ar, (int)ZIPW_BLOCK_BYTES) !=
            ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(zw->ar, 1) != ARCHIVE_OK) {
        rc = ar_fail(zw, "zip: setup", err);
        goto out;
    }
    if (archive_write_open2(zw->ar, zw, NULL, zipw_write_cb, NULL, NULL) !=
        ARCHIVE_OK) {
        rc = ar_fail(zw, "zip: open", err);
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

enum wk_code zipw_entry_begin(struct zipw *zw, const char *name, uint64_t size,
                              time_t mtime, int store, struct wk_err *err)
{
    const char *problem;
    char shown[sizeof(zw->name)];
    enum wk_code rc = check_usable(zw, "zip entry", err);
    int r;

    if (rc != WK_OK)
        return rc;
    set_msg_name(shown, sizeof(shown), name);
    /* the reader's own policy: we never write what a restore refuses */
    problem = wk_name_problem(name, strlen(name));
    if (!problem) {
        int added = wk_nameset_add(&zw->names, name, strlen(name));
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
    if (zw->in_entry) {
        zw->failed = true;
        return wk_err_set(err, WK_E_INTERNAL,
                          "zip entry '%s': entry '%s' is still open", shown,
                          zw->name);
    }
    if (size > (uint64_t)INT64_MAX) {
        zw->failed = true;
        return wk_err_set(err, WK_E_INVAL, "zip entry '%s': size too large",
                          shown);
    }
    memcpy(zw->name, shown, sizeof(zw->name));
    r = (zw->level == 0 || store)
            ? archive_write_zip_set_compression_store(zw->ar)
            : archive_write_zip_set_compression_deflate(zw->ar);
    if (r != ARCHIVE_OK)
        return ar_fail(zw, "zip entry: set compression", err);
    archive_entry_clear(zw->entry);
    archive_entry_set_pathname_utf8(zw->entry, name);
    archive_entry_set_filetype(zw->entry, AE_IFREG);
    archive_entry_set_perm(zw->entry, 0644);
    archive_entry_set_size(zw->entry, (la_int64_t)size);
    archive_entry_set_mtime(zw->entry, mtime, 0);
    /* ARCHIVE_WARN here means the name could not be converted: fail. */
    if (archive_write_header(zw->ar, zw->entry) != ARCHIVE_OK) {
        char what[160];
        snprintf(what, sizeof(what), "zip entry '%s'", zw->name);
        return ar_fail(zw, what, err);
    }
    zw->entry_size = size;
    zw->entry_written = 0;
    zw->entry_crc = (uint32_t)crc32(0L, Z_NULL, 0);
    zw->entry_stored = zw->level == 0 || store;
    zw->in_entry = true;
    return sink_failed(zw, err);
}

enum wk_code zipw_entry_write(struct zipw *zw, const void *p, size_t n,
                              struct wk_err *err)
{
    const unsigned char *c = p;
    enum wk_code rc = check_usable(zw, "zip entry write", err);

    if (rc != WK_OK)
        return rc;
    if (!zw->in_entry) {
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
    while (n > 0) {
        size_t chunk = n < ZIPW_WRITE_MAX ? n : ZIPW_WRITE_MAX;
        la_ssize_t w = archive_write_data(zw->ar, c, chunk);

        if (w <= 0) {
            char what[160];
            snprintf(what, sizeof(what), "zip entry '%s'", zw->name);
            if (w == 0)
                archive_set_error(zw->ar, EIO, "no data accepted");
            return ar_fail(zw, what, err);
        }
        zw->entry_crc = crc_update(zw->entry_crc, c, (size_t)w);
        c += w;
        n -= (size_t)w;
        zw->entry_written += (uint64_t)w;
        rc = sink_failed(zw, err);
        if (rc != WK_OK)
            return rc;
    }
    return WK_OK;
}

enum wk_code zipw_entry_end(struct zipw *zw, struct wk_err *err)
{
    enum wk_code rc = check_usable(zw, "zip entry end", err);

    if (rc != WK_OK)
        return rc;
    if (!zw->in_entry) {
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
    if (archive_write_finish_entry(zw->ar) != ARCHIVE_OK) {
        char what[160];
        snprintf(what, sizeof(what), "zip entry '%s'", zw->name);
        return ar_fail(zw, what, err);
    }
    zw->recs[zw->n_recs].size = zw->entry_written;
    zw->recs[zw->n_recs].crc32 = zw->entry_crc;
    zw->recs[zw->n_recs].stored = zw->entry_stored;
    zw->n_recs++;
    zw->in_entry = false;
    return sink_failed(zw, err);
}

enum wk_code zipw_finish(struct zipw *zw, struct wk_err *err)
{
    enum wk_code rc = check_usable(zw, "zip finish", err);

    if (rc != WK_OK)
        return rc;
    if (zw->in_entry) {
        zw->failed = true;
        return wk_err_set(err, WK_E_INTERNAL,
                          "zip finish: entry '%s' is still open", zw->name);
    }
    if (archive_write_close(zw->ar) != ARCHIVE_OK)
        return ar_fail(zw, "zip finish", err);
    rc = sink_failed(zw, err);
    if (rc != WK_OK)
        return rc;
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
    if (zw->ar) {
        /* Unfinished: close into the void (which also releases the deflate
         * state of an open entry), never into the sink. */
        zw->discard = true;
        if (!zw->finished)
            archive_write_close(zw->ar);
        archive_write_free(zw->ar);
    }
    archive_entry_free(zw->entry);
    store_sha256_free(zw->hash);
    wk_nameset_release(&zw->names);
    free(zw->recs);
    free(zw);
}
