/*
 * zcat on libarchive's seekable ZIP reader (with zipr*.c and zipw.c, the only
 * files that include archive.h).
 *
 * Where the bytes go. libarchive pulls through three callbacks over ranged
 * store reads; what it asks for, in 3.6.2:
 * - archive_read_open1() reads at least one byte at offset 0 (the filter
 *   layer checks that data comes), then the seekable bidder seeks to the end
 *   and reads the last 16 KiB looking for the end of central directory
 *   record (and the ZIP64 locator and record just before it).
 * - The first archive_read_next_header() seeks to the central directory and
 *   reads it whole into its entry tree.
 * - Every archive_read_next_header() then visits the next entry in local
 *   header offset order: it skips forward to that entry's local header and
 *   reads it (30 bytes, name, extra fields). There is no way to jump to an
 *   entry by name, so finding the N-th entry visits N local headers: the
 *   cost of a lookup grows with the number of entries stored before the
 *   wanted one (never with their sizes: data that is not wanted is skipped,
 *   not read). libarchive skips with the skip callback when one is set;
 *   without it, skips of up to 64 KiB are done by reading and discarding,
 *   so we set one.
 * - Entry data is pulled with read-ahead of at least one byte, so each of
 *   our blocks is handed to the decoder (or the sink) as it is.
 *
 * How we keep that cheap:
 * - One round trip up front fetches, at once, the first ZCAT_MIN_BLOCK bytes
 *   (the open probe; also the first entry's header) and the last
 *   ZCAT_TAIL_BYTES (end records and, for up to several hundred entries,
 *   the whole central directory). Both stay cached for the whole read.
 * - Every other read fetches one block into one reused buffer. A read that
 *   starts far from where the previous block ended (a seek, or a skip over
 *   an entry's data) fetches ZCAT_MIN_BLOCK bytes: enough for a local header
 *   and a small entry. While libarchive keeps reading on (a large central
 *   directory or entry, or the headers of a run of small entries), each
 *   block doubles, up to ZCAT_MAX_BLOCK.
 * So the bytes fetched are: the head and tail blocks; the central directory
 * (when it does not fit in the tail); for each local header visited before
 * the entry, one small block, or, along a run of small entries, the run
 * itself read on through (plus at most one block where the run ends); and
 * the entry's compressed size plus at most one block. That grows with the
 * number of entries stored before the wanted one, never with the size of
 * their data, nor with the archive's size.
 *
 * Names: libarchive converts entry names to the current locale's charset;
 * under LC_CTYPE=C (the worker's and the CLI's) a non-ASCII UTF-8 name
 * gives ARCHIVE_WARN "Pathname cannot be converted from UTF-8 to current
 * locale" and no name at all. So libarchive runs under a thread-local
 * C.UTF-8 LC_CTYPE (uselocale) and names are compared as UTF-8 bytes.
 */
#include "common/wk_path.h"
#include "zip/zcat.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <locale.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* First block after a jump: a local header plus a small entry. */
#define ZCAT_MIN_BLOCK (4u * 1024u)
/* Largest block: the most a sequential read fetches in one request. */
#define ZCAT_MAX_BLOCK (1024u * 1024u)
/* Cached end of the archive: libarchive's 16 KiB end-record search plus
 * room for the central directory of a few hundred entries. */
#define ZCAT_TAIL_BYTES (64u * 1024u)
/* Smallest ZIP: an end of central directory record. */
#define ZCAT_EOCD_BYTES 22u

/* A cached range of the archive. */
struct zcat_block {
    struct wk_buf buf; /* owned */
    uint64_t off;      /* archive offset of buf.data[0] */
};

struct zcat {
    struct store *st;         /* borrowed */
    const char *key;          /* borrowed */
    const struct seal_dk *dk; /* borrowed; NULL: a plain ZIP */
    struct wk_buf sealed[2];  /* stored chunks of a fetch (sealed) */
    uint64_t size;            /* archive (ZIP) size */
    uint64_t pos;             /* next byte libarchive reads */
    struct zcat_block tail;   /* the last ZCAT_TAIL_BYTES, kept */
    struct zcat_block head;   /* the first ZCAT_MIN_BLOCK, kept */
    struct zcat_block block;  /* the latest fetch, reused */
    uint64_t last_end;        /* end of the range handed out last */
    size_t last_bytes;        /* its size: the next block doubles it */
    uint64_t data_end; /* where the entry's data would end stored; 0: unknown */
    struct zcat_stats stats;
    struct wk_err err; /* first store failure seen in a callback */
    char shown[128];   /* entry name for messages */
};

static bool in_block(const struct zcat_block *b, uint64_t pos)
{
    return b->buf.len > 0 && pos >= b->off && pos - b->off < b->buf.len;
}

static void block_release(struct zcat_block *b)
{
    wk_buf_release(&b->buf);
}

/* The name for messages (see wk_path_shown). */
static void set_shown(char *dst, size_t cap, const char *name)
{
    wk_path_shown(dst, cap, name, strlen(name));
}

/* Fetch n ranges of the archive at once into their blocks. */
static enum wk_code fetch(struct zcat *zc, struct zcat_block **blocks,
                          const uint64_t *offs, const size_t *lens, size_t n,
                          struct wk_err *err)
{
    struct store_get reqs[2];
    enum wk_code rc;

    WK_ASSERT(n >= 1 && n <= 2);
    memset(reqs, 0, sizeof(reqs));
    for (size_t i = 0; i < n; i++) {
        wk_buf_reset(&blocks[i]->buf);
        blocks[i]->off = offs[i];
        reqs[i].key = zc->key;
        reqs[i].offset = offs[i];
        reqs[i].len = lens[i];
        reqs[i].out = &blocks[i]->buf;
        if (zc->dk) {
            /* the whole chunks around the range: the block then starts at
             * the first one's plaintext offset */
            seal_range(zc->size, zc->dk->chunk_bytes, offs[i], lens[i],
                       &reqs[i].offset, &reqs[i].len, &blocks[i]->off);
            wk_buf_reset(&zc->sealed[i]);
            reqs[i].out = &zc->sealed[i];
        }
        zc->stats.requests++;
    }
    rc = store_get_many(zc->st, reqs, n, err);
    for (size_t i = 0; i < n; i++) {
        zc->stats.bytes_fetched += reqs[i].out->len;
        if (rc == WK_OK && zc->dk)
            rc = seal_open_range(zc->dk, zc->size, reqs[i].offset,
                                 zc->sealed[i].data, zc->sealed[i].len,
                                 &blocks[i]->buf, err);
    }
    if (rc != WK_OK)
        for (size_t i = 0; i < n; i++)
            wk_buf_reset(&blocks[i]->buf);
    return rc;
}

/* The head and tail blocks, in one round trip. */
static enum wk_code fetch_ends(struct zcat *zc, struct wk_err *err)
{
    struct zcat_block *blocks[2] = { &zc->tail, &zc->head };
    uint64_t offs[2];
    size_t lens[2];
    size_t n = 1;
    enum wk_code rc;

    if (zc->size <= ZCAT_TAIL_BYTES) {
        offs[0] = 0;
        lens[0] = (size_t)zc->size;
    } else {
        offs[0] = zc->size - ZCAT_TAIL_BYTES;
        lens[0] = ZCAT_TAIL_BYTES;
        offs[1] = 0;
        lens[1] = offs[0] < ZCAT_MIN_BLOCK ? (size_t)offs[0] : ZCAT_MIN_BLOCK;
        n = 2;
    }
    rc = fetch(zc, blocks, offs, lens, n, err);
    /* reading on from the head block grows from there */
    zc->last_end = lens[n - 1] + offs[n - 1];
    zc->last_bytes = lens[n - 1];
    return rc;
}

/* Hand out what is cached from pos on, else fetch a block there. */
static la_ssize_t zcat_read_cb(struct archive *a, void *ud, const void **out)
{
    struct zcat *zc = ud;
    struct zcat_block *cached[3] = { &zc->tail, &zc->head, &zc->block };
    struct zcat_block *b = &zc->block;
    uint64_t left;
    size_t want;

    *out = NULL;
    if (zc->pos >= zc->size)
        return 0;
    for (size_t i = 0; i < 3; i++) {
        if (in_block(cached[i], zc->pos)) {
            size_t skip = (size_t)(zc->pos - cached[i]->off);
            size_t n = cached[i]->buf.len - skip;

            *out = cached[i]->buf.data + skip;
            zc->pos += n;
            zc->last_end = zc->pos;
            zc->last_bytes = cached[i]->buf.len;
            return (la_ssize_t)n;
        }
    }
    /* Reading on from the last block, or from less than a small block past
     * it (the headers of a run of small entries): grow. A longer jump
     * starts small again, so a block never spans more than ZCAT_MIN_BLOCK
     * of skipped data per entry. */
    if (zc->last_bytes > 0 && zc->pos >= zc->last_end &&
        zc->pos - zc->last_end < ZCAT_MIN_BLOCK)
        want = zc->last_bytes * 2;
    else
        want = ZCAT_MIN_BLOCK;
    if (want > ZCAT_MAX_BLOCK)
        want = ZCAT_MAX_BLOCK;
    /* Entry data: a stored entry ends at data_end, a deflated one usually
     * before (or a few bytes after, for incompressible data). */
    if (zc->data_end > 0 && zc->pos < zc->data_end &&
        want > zc->data_end - zc->pos)
        want = (size_t)(zc->data_end - zc->pos);
    else if (zc->data_end > 0 && zc->pos >= zc->data_end)
        want = ZCAT_MIN_BLOCK;
    left = zc->size - zc->pos;
    if (zc->pos < zc->tail.off)
        left = zc->tail.off - zc->pos; /* the rest is cached */
    if (want > left)
        want = (size_t)left;
    if (fetch(zc, &b, &zc->pos, &want, 1, &zc->err) != WK_OK) {
        archive_set_error(a, EIO, "%s", zc->err.msg);
        return ARCHIVE_FATAL;
    }
    /* (sealed: the block may start before pos and end after pos + want) */
    if (!in_block(b, zc->pos)) {
        wk_err_set(&zc->err, WK_E_CORRUPT, "short read at offset %llu",
                   (unsigned long long)zc->pos);
        archive_set_error(a, EIO, "%s", zc->err.msg);
        return ARCHIVE_FATAL;
    }
    {
        size_t skip = (size_t)(zc->pos - b->off);
        size_t n = b->buf.len - skip;
        *out = b->buf.data + skip;
        zc->pos += n;
        zc->last_end = zc->pos;
        zc->last_bytes = want;
        return (la_ssize_t)n;
    }
}

static la_int64_t zcat_seek_cb(struct archive *a, void *ud, la_int64_t off,
                               int whence)
{
    struct zcat *zc = ud;
    uint64_t base;

    switch (whence) {
    case SEEK_SET:
        base = 0;
        break;
    case SEEK_CUR:
        base = zc->pos;
        break;
    case SEEK_END:
        base = zc->size;
        break;
    default:
        archive_set_error(a, EINVAL, "bad seek origin %d", whence);
        return ARCHIVE_FATAL;
    }
    /* size <= INT64_MAX, so -off and off fit once compared */
    if ((off < 0 && (uint64_t)(-(off + 1)) >= base) ||
        (off > 0 && (uint64_t)off > zc->size - base)) {
        archive_set_error(a, EINVAL, "seek outside the archive");
        return ARCHIVE_FATAL;
    }
    zc->pos =
        off < 0 ? base - (uint64_t)(-(off + 1)) - 1 : base + (uint64_t)off;
    return (la_int64_t)zc->pos;
}

/* Skipping only moves the position: nothing is fetched until read. */
static la_int64_t zcat_skip_cb(struct archive *a, void *ud, la_int64_t n)
{
    struct zcat *zc = ud;
    uint64_t left = zc->size - zc->pos;

    (void)a;
    if (n <= 0)
        return 0;
    if ((uint64_t)n > left)
        n = (la_int64_t)left;
    zc->pos += (uint64_t)n;
    return n;
}

/* A store failure kept in zc->err, into err with context. */
static enum wk_code store_failed(struct zcat *zc, struct wk_err *err)
{
    if (err && err->code == WK_OK) {
        wk_err_copy(err, &zc->err);
        wk_err_prefix(err, "read '%s' from '%s'", zc->shown, zc->key);
    }
    return zc->err.code;
}

/* A libarchive failure as err: a store failure seen by a callback first,
 * else the archive is bad (or memory ran out). */
static enum wk_code ar_fail(struct zcat *zc, struct archive *ar,
                            const char *what, struct wk_err *err)
{
    const char *msg = archive_error_string(ar);

    if (zc->err.code != WK_OK)
        return store_failed(zc, err);
    if (archive_errno(ar) == ENOMEM)
        return wk_err_set(err, WK_E_NOMEM, "read '%s' from '%s': out of memory",
                          zc->shown, zc->key);
    return wk_err_set(err, WK_E_CORRUPT, "read '%s' from '%s': %s: %s",
                      zc->shown, zc->key, what, msg ? msg : "libarchive error");
}

/* Position ar on the data of the entry called name. */
static enum wk_code find_entry(struct zcat *zc, struct archive *ar,
                               const char *name, struct wk_err *err)
{
    struct archive_entry *ae;
    la_int64_t at, size;

    for (;;) {
        const char *p;
        int r = archive_read_next_header(ar, &ae);

        if (r == ARCHIVE_EOF)
            return wk_err_set(err, WK_E_NOTFOUND,
                              "read '%s' from '%s': no such entry", zc->shown,
                              zc->key);
        if (r == ARCHIVE_FATAL)
            return ar_fail(zc, ar, "entry header", err);
        p = archive_entry_pathname_utf8(ae);
        if (!p || strcmp(p, name) != 0)
            continue; /* a problem with another entry is not ours */
        if (r != ARCHIVE_OK)
            return ar_fail(zc, ar, "entry header", err);
        if (archive_entry_filetype(ae) != AE_IFREG)
            return wk_err_set(err, WK_E_INVAL,
                              "read '%s' from '%s': not a regular file",
                              zc->shown, zc->key);
        /* libarchive has read the local header: its data starts here */
        at = archive_filter_bytes(ar, 0);
        size = archive_entry_size(ae);
        if (at > 0 && size >= 0 && (uint64_t)size <= zc->size &&
            (uint64_t)at <= zc->size - (uint64_t)size)
            zc->data_end = (uint64_t)at + (uint64_t)size;
        return WK_OK;
    }
}

/* Stream the current entry's data to sink. libarchive checks the CRC (and
 * the sizes) once all the data has come, so when that check fails the sink
 * has already had the bytes; the block that comes with the failure is held
 * back. */
static enum wk_code copy_entry(struct zcat *zc, struct archive *ar,
                               store_sink_cb sink, void *ud, struct wk_err *err)
{
    uint64_t done = 0;

    for (;;) {
        const void *p;
        size_t n;
        la_int64_t off;
        enum wk_code rc;
        int r = archive_read_data_block(ar, &p, &n, &off);

        if (r == ARCHIVE_EOF)
            return WK_OK;
        if (r != ARCHIVE_OK)
            return ar_fail(zc, ar, "entry data", err);
        if (off < 0 || (uint64_t)off != done)
            return wk_err_set(err, WK_E_CORRUPT,
                              "read '%s' from '%s': entry data out of order",
                              zc->shown, zc->key);
        if (n == 0)
            continue;
        rc = sink(p, n, ud, err);
        if (rc != WK_OK)
            return wk_err_set(err, rc, "read '%s' from '%s': output failed",
                              zc->shown, zc->key);
        done += n;
    }
}

enum wk_code zcat_read(struct store *st, const char *archive_key,
                       uint64_t archive_size, const struct seal_dk *dk,
                       const char *name, store_sink_cb sink, void *ud,
                       struct zcat_stats *stats, struct wk_err *err)
{
    struct zcat zc;
    struct archive *ar = NULL;
    locale_t utf8 = (locale_t)0;
    locale_t prev = (locale_t)0;
    const char *problem;
    enum wk_code rc = WK_OK;

    memset(&zc, 0, sizeof(zc));
    zc.st = st;
    zc.key = archive_key;
    zc.size = archive_size;
    zc.dk = dk;
    {
        /* sealed: a block grows by up to a chunk at either end */
        size_t more = dk ? 2 * (size_t)dk->chunk_bytes : 0;
        wk_buf_init(&zc.tail.buf, ZCAT_TAIL_BYTES + more);
        wk_buf_init(&zc.head.buf, ZCAT_MIN_BLOCK + more);
        wk_buf_init(&zc.block.buf, ZCAT_MAX_BLOCK + more);
        size_t span = ZCAT_MAX_BLOCK + ZCAT_TAIL_BYTES + more;
        size_t tags = dk ? (span / dk->chunk_bytes + 2) * SEAL_TAG_BYTES : 0;
        for (size_t i = 0; i < 2; i++)
            wk_buf_init(&zc.sealed[i], span + tags);
    }
    wk_err_clear(&zc.err);
    set_shown(zc.shown, sizeof(zc.shown), name);
    if (stats)
        memset(stats, 0, sizeof(*stats));

    problem = wk_name_problem(name, strlen(name)); /* the one policy */
    if (problem) {
        rc = wk_err_set(err, WK_E_INVAL, "read '%s' from '%s': %s", zc.shown,
                        archive_key, problem);
        goto out;
    }
    if (dk) {
        struct wk_err serr;
        wk_err_clear(&serr);
        if (seal_plain_size(archive_size, dk->chunk_bytes, &zc.size, &serr) !=
            WK_OK) {
            rc = wk_err_set(err, WK_E_CORRUPT, "read '%s' from '%s': %s",
                            zc.shown, archive_key, serr.msg);
            goto out;
        }
    }
    if (zc.size < ZCAT_EOCD_BYTES || zc.size > (uint64_t)INT64_MAX) {
        rc =
            wk_err_set(err, WK_E_CORRUPT,
                       "read '%s' from '%s': %llu bytes cannot be a ZIP "
                       "archive",
                       zc.shown, archive_key, (unsigned long long)archive_size);
        goto out;
    }
    /* Without C.UTF-8 (not in this libc) only ASCII names are found. */
    utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    if (utf8 != (locale_t)0)
        prev = uselocale(utf8);

    rc = fetch_ends(&zc, &zc.err);
    if (rc != WK_OK) {
        rc = store_failed(&zc, err);
        goto out;
    }
    ar = archive_read_new();
    if (!ar) {
        rc = wk_err_set(err, WK_E_NOMEM, "read '%s' from '%s': out of memory",
                        zc.shown, archive_key);
        goto out;
    }
    if (archive_read_support_format_zip_seekable(ar) != ARCHIVE_OK ||
        archive_read_set_read_callback(ar, zcat_read_cb) != ARCHIVE_OK ||
        archive_read_set_seek_callback(ar, zcat_seek_cb) != ARCHIVE_OK ||
        archive_read_set_skip_callback(ar, zcat_skip_cb) != ARCHIVE_OK ||
        archive_read_set_callback_data(ar, &zc) != ARCHIVE_OK) {
        rc = ar_fail(&zc, ar, "setup", err);
        goto out;
    }
    if (archive_read_open1(ar) != ARCHIVE_OK) {
        rc = ar_fail(&zc, ar, "open", err);
        goto out;
    }
    rc = find_entry(&zc, ar, name, err);
    if (rc == WK_OK)
        rc = copy_entry(&zc, ar, sink, ud, err);
out:
    archive_read_free(ar);
    if (utf8 != (locale_t)0) {
        uselocale(prev);
        freelocale(utf8);
    }
    if (stats)
        *stats = zc.stats;
    block_release(&zc.block);
    block_release(&zc.head);
    block_release(&zc.tail);
    wk_buf_release(&zc.sealed[0]);
    wk_buf_release(&zc.sealed[1]);
    return rc;
}
