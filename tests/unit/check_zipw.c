#include <archive.h>
#include <archive_entry.h>
#include <locale.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <zlib.h>

#include "common/wk_buf.h"
#include "common/wk_err.h"
#include "zip/zip_fmt.h"
#include "zip/zipcd.h"
#include "zip/zipw.h"
#include "storage/store.h"
#include "storage/store_hash.h"
#include "tests/unit/suites.h"

#define TEXT_BYTES   (300 * 1024)
#define RANDOM_BYTES (150 * 1024)

struct tentry {
    const char *name;
    const unsigned char *data; /* borrowed */
    size_t len;
    time_t mtime;
    int store;
};

#define PK_BYTES 20000

static unsigned char *text_data, *random_data, *pk_data;
static struct tentry entries[6];
static size_t n_entries;

static void fill_random(unsigned char *p, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        p[i] = (unsigned char)(seed >> 24);
    }
}

static void setup(void)
{
    static const char line[] = "{\"id\": 42, \"title\": \"Sila workspace "
                               "note\", \"body\": \"lorem ipsum dolor\"}\n";
    size_t ll = strlen(line);

    text_data = malloc(TEXT_BYTES);
    random_data = malloc(RANDOM_BYTES);
    pk_data = malloc(PK_BYTES);
    ck_assert_ptr_nonnull(text_data);
    ck_assert_ptr_nonnull(random_data);
    ck_assert_ptr_nonnull(pk_data);
    for (size_t i = 0; i < TEXT_BYTES; i++)
        text_data[i] = (unsigned char)line[i % ll];
    fill_random(random_data, RANDOM_BYTES, 0x9e3779b97f4a7c15ULL);
    /* stored content holding "PK\7\8" + the CRC-32 and sizes of the bytes
     * before it: what once ended a stored entry early for a streaming
     * reader; now plain data */
    fill_random(pk_data, PK_BYTES, 7);
    {
        uint32_t c = zipw_crc32(0, pk_data, 1000);
        unsigned char *q = pk_data + 1000;
        q = zip_put32(q, ZIP_SIG_DESCRIPTOR);
        q = zip_put32(q, c);
        q = zip_put32(q, 1000);
        zip_put32(q, 1000);
    }
    n_entries = 0;
    entries[n_entries++] = (struct tentry){ "space-v1/space.json", text_data,
                                            TEXT_BYTES, 1700000000, 0 };
    entries[n_entries++] = (struct tentry){ "files/random.bin", random_data,
                                            RANDOM_BYTES, 1600000001, 0 };
    entries[n_entries++] = (struct tentry){ "files/stored.bin", random_data,
                                            70000, 1500000002, 1 };
    entries[n_entries++] =
        (struct tentry){ "empty.txt", (const unsigned char *)"", 0, 1400000000,
                         0 };
    entries[n_entries++] =
        (struct tentry){ "n\xc3\xa4me/\xe6\x97\xa5\xe6\x9c\xac-\xc3\xa9.txt",
                         text_data, 1000, 1300000000, 0 };
    entries[n_entries++] =
        (struct tentry){ "files/pk.jpg", pk_data, PK_BYTES, 1700000300, 1 };
}

static void teardown(void)
{
    free(text_data);
    free(random_data);
    free(pk_data);
}

/* Write entries through zipw into a store_mem object, read it back. */
static void build_zip(int level, struct wk_buf *zip, char hex[65],
                      uint64_t *bytes_out)
{
    struct store *st = NULL;
    struct store_writer *w = NULL;
    struct zipw *zw = NULL;
    struct zipw_opts opts = { .level = level };
    struct wk_err err;

    wk_err_clear(&err);
    ck_assert_int_eq(store_mem_new(&st, &err), WK_OK);
    ck_assert_int_eq(store_open_write(st, "archived/s/a.zip", NULL, &w, &err),
                     WK_OK);
    ck_assert_int_eq(zipw_new(w, &opts, &zw, &err), WK_OK);
    for (size_t i = 0; i < n_entries; i++) {
        const struct tentry *t = &entries[i];
        size_t half = t->len / 2;

        /* stored as the archive job stores a whole object: CRC first */
        ck_assert_msg(
            (t->store
                 ? zipw_entry_begin_stored(zw, t->name, t->len, t->mtime,
                                           zipw_crc32(0, t->data, t->len), &err)
                 : zipw_entry_begin(zw, t->name, t->len, t->mtime, 0, &err)) ==
                WK_OK,
            "%s", err.msg);
        /* two writes, the first possibly empty */
        ck_assert_int_eq(zipw_entry_write(zw, t->data, half, &err), WK_OK);
        ck_assert_int_eq(
            zipw_entry_write(zw, t->data + half, t->len - half, &err), WK_OK);
        ck_assert_int_eq(zipw_entry_end(zw, &err), WK_OK);
    }
    ck_assert_int_eq(zipw_finish(zw, &err), WK_OK);
    *bytes_out = zipw_bytes_out(zw);
    zipw_sha256_hex(zw, hex);
    ck_assert_uint_eq(*bytes_out, w->written);
    ck_assert_int_eq(store_writer_commit(w, &err), WK_OK);
    zipw_free(zw);
    store_writer_free(w);
    wk_buf_init(zip, 16u << 20);
    ck_assert_int_eq(store_get_all(st, "archived/s/a.zip", zip, &err), WK_OK);
    store_free(st);
}

static void write_file(const char *path, const struct wk_buf *b)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(b->data, 1, b->len, f), b->len);
    ck_assert_int_eq(fclose(f), 0);
}

/* A sink that records its write sizes, and can fail on demand. */
struct rec_writer {
    struct store_writer base;
    size_t calls;
    size_t sizes[64];
    uint64_t total;
    size_t fail_at; /* fail the nth call (1-based); 0 = never */
};

static enum wk_code rec_write(struct store_writer *w, const void *p, size_t n,
                              struct wk_err *err)
{
    struct rec_writer *r = (struct rec_writer *)w;
    (void)p;
    r->calls++;
    if (r->fail_at && r->calls == r->fail_at)
        return wk_err_sys(err, WK_E_IO, 28, "write 'x.zip'");
    if (r->calls <= 64)
        r->sizes[r->calls - 1] = n;
    r->total += n;
    return WK_OK;
}

static enum wk_code rec_commit(struct store_writer *w, struct wk_err *err)
{
    (void)w;
    (void)err;
    return WK_OK;
}

static void rec_free(struct store_writer *w)
{
    (void)w;
}

static const struct store_writer_ops rec_ops = { "rec", rec_write, rec_commit,
                                                 rec_free };

/* Read zip back with libarchive, seekable (central directory first) or
 * streaming (local headers only, as from a pipe): every entry as written. */
static void read_back(const struct wk_buf *zip, bool streaming)
{
    struct archive *ar = archive_read_new();
    struct archive_entry *ae;
    unsigned char *buf = malloc(TEXT_BYTES + 1);
    size_t i = 0;
    int rr;

    ck_assert_ptr_nonnull(buf);
    ck_assert_int_eq(streaming ? archive_read_support_format_zip_streamable(ar)
                               : archive_read_support_format_zip(ar),
                     ARCHIVE_OK);
    ck_assert_int_eq(archive_read_open_memory(ar, zip->data, zip->len),
                     ARCHIVE_OK);
    /* zipw ran in the C locale (like the worker); the reader needs a UTF-8
     * one to hand back non-ASCII names. */
    ck_assert_ptr_nonnull(setlocale(LC_CTYPE, "C.UTF-8"));
    while ((rr = archive_read_next_header(ar, &ae)) == ARCHIVE_OK) {
        const struct tentry *t = &entries[i];
        la_ssize_t got;

        ck_assert_uint_lt(i, n_entries);
        ck_assert_str_eq(archive_entry_pathname_utf8(ae), t->name);
        /* streaming, a deflated entry's size comes after its data */
        if (!streaming || t->store) {
            ck_assert(archive_entry_size_is_set(ae));
            ck_assert_int_eq(archive_entry_size(ae), (la_int64_t)t->len);
        }
        ck_assert_int_eq(archive_entry_mtime(ae), t->mtime);
        ck_assert_int_eq(archive_entry_filetype(ae), AE_IFREG);
        if (!streaming) /* (from the central directory only) */
            ck_assert_int_eq(archive_entry_perm(ae), 0644);
        got = archive_read_data(ar, buf, TEXT_BYTES + 1);
        ck_assert_msg(got == (la_ssize_t)t->len, "%s: %zd of %zu: %s", t->name,
                      (ssize_t)got, t->len, archive_error_string(ar));
        ck_assert(t->len == 0 || memcmp(buf, t->data, t->len) == 0);
        i++;
    }
    ck_assert_msg(rr == ARCHIVE_EOF, "read: %d %s", rr,
                  archive_error_string(ar));
    ck_assert_uint_eq(i, n_entries);
    setlocale(LC_CTYPE, "C");
    archive_read_free(ar);
    free(buf);
}

START_TEST(test_zipw_roundtrip_with_libarchive)
{
    struct wk_buf zip;
    char hex[65], want_hex[65];
    uint64_t out = 0;
    size_t total = 0;

    build_zip(6, &zip, hex, &out);
    ck_assert_uint_eq(out, zip.len);
    store_sha256_hex(zip.data, zip.len, want_hex);
    ck_assert_str_eq(hex, want_hex);
    for (size_t k = 0; k < n_entries; k++)
        total += entries[k].len;
    /* the text compresses, the random data doesn't grow much */
    ck_assert_uint_lt(zip.len, total - TEXT_BYTES + TEXT_BYTES / 10);
    read_back(&zip, false);
    read_back(&zip, true);
    wk_buf_release(&zip);
}
END_TEST

/* The records as APPNOTE has them, walked from the central directory:
 * stored entries with CRC-32 and sizes in the local header, bit 3 clear
 * and the next header right after the data; deflated ones with bit 3, the
 * size in the header and a data descriptor after the data; the UTF-8 flag
 * exactly on non-ASCII names; DOS time (UTC) and the UT field; no ZIP64
 * anywhere in a small archive. */
START_TEST(test_zipw_header_fields)
{
    struct wk_buf zip;
    char hex[65];
    uint64_t out;
    const unsigned char *z, *e, *c;
    uint64_t cd_off, next = 0;

    build_zip(6, &zip, hex, &out);
    z = (const unsigned char *)zip.data;
    e = z + zip.len - ZIP_EOCD_BYTES;
    ck_assert_uint_eq(zip_le32(e), ZIP_SIG_END);
    ck_assert_uint_eq(zip_le16(e + 10), n_entries);
    cd_off = zip_le32(e + 16);
    ck_assert_uint_eq(cd_off + zip_le32(e + 12), zip.len - ZIP_EOCD_BYTES);
    ck_assert_uint_ne(zip_le32(e - ZIP_LOC_BYTES), ZIP_SIG_Z64_LOC);
    c = z + cd_off;
    for (size_t i = 0; i < n_entries; i++) {
        const struct tentry *t = &entries[i];
        struct zipcd_entry ce;
        const unsigned char *lh, *x;
        uint16_t flags;
        uint32_t crc = zipw_crc32(0, t->data, t->len);
        bool ascii = true;
        struct tm tm;
        size_t n, m;

        ck_assert_uint_eq(zip_le32(c), ZIP_SIG_CENTRAL);
        zipcd_record_parse(c, &ce);
        ck_assert(ce.extra_ok && !ce.zip64);
        ck_assert_uint_eq(ce.name_len, strlen(t->name));
        ck_assert(memcmp(ce.name, t->name, ce.name_len) == 0);
        ck_assert_uint_eq(ce.crc, crc);
        ck_assert_uint_eq(ce.usize, t->len);
        ck_assert_uint_eq(ce.method, t->store ? 0 : 8);
        ck_assert_uint_eq(ce.ext_attr, 0100644u << 16);
        ck_assert_uint_eq(ce.version_made >> 8, 3);
        ck_assert_uint_eq(ce.offset, next); /* entries back to back */
        for (size_t k = 0; t->name[k]; k++)
            ascii = ascii && (unsigned char)t->name[k] < 0x80;

        lh = z + ce.offset;
        ck_assert_uint_eq(zip_le32(lh), ZIP_SIG_LOCAL);
        flags = zip_le16(lh + 6);
        ck_assert_uint_eq(flags, ce.flags);
        ck_assert_uint_eq(!!(flags & ZIP_FLAG_UTF8), !ascii);
        ck_assert_uint_eq(zip_le16(lh + 8), ce.method);
        ck_assert_uint_eq(zip_le16(lh + 4), 20);
        gmtime_r(&t->mtime, &tm);
        ck_assert_uint_eq(
            zip_le16(lh + 10),
            (unsigned)(tm.tm_hour << 11 | tm.tm_min << 5 | tm.tm_sec / 2));
        ck_assert_uint_eq(zip_le16(lh + 12),
                          (unsigned)((tm.tm_year - 80) << 9 |
                                     (tm.tm_mon + 1) << 5 | tm.tm_mday));
        n = zip_le16(lh + 26);
        m = zip_le16(lh + 28);
        ck_assert_uint_eq(n, ce.name_len);
        x = lh + ZIP_LOCAL_FIXED + n;
        ck_assert_uint_eq(m, 9); /* UT only */
        ck_assert_uint_eq(zip_le16(x), ZIP_EXTRA_UT);
        ck_assert_uint_eq(zip_le16(x + 2), 5);
        ck_assert_uint_eq(x[4], 1);
        ck_assert_uint_eq(zip_le32(x + 5), (uint32_t)t->mtime);
        ck_assert_uint_eq(zip_le32(lh + 22), t->len);
        next = ce.offset + ZIP_LOCAL_FIXED + n + m + ce.csize;
        if (t->store) {
            ck_assert_uint_eq(flags & ZIP_FLAG_DESCRIPTOR, 0);
            ck_assert_uint_eq(zip_le32(lh + 14), crc);
            ck_assert_uint_eq(zip_le32(lh + 18), t->len);
            ck_assert_uint_eq(ce.csize, t->len);
            ck_assert(memcmp(x + m, t->data, t->len) == 0);
        } else {
            const unsigned char *d = z + next;
            ck_assert_uint_eq(flags & ZIP_FLAG_DESCRIPTOR, ZIP_FLAG_DESCRIPTOR);
            ck_assert_uint_eq(zip_le32(lh + 14), 0);
            ck_assert_uint_eq(zip_le32(lh + 18), 0);
            ck_assert_uint_eq(zip_le32(d), ZIP_SIG_DESCRIPTOR);
            ck_assert_uint_eq(zip_le32(d + 4), crc);
            ck_assert_uint_eq(zip_le32(d + 8), ce.csize);
            ck_assert_uint_eq(zip_le32(d + 12), t->len);
            next += 16;
        }
        c += zipcd_record_len(c);
    }
    ck_assert_uint_eq(next, cd_off);
    ck_assert_ptr_eq(c, e);
    wk_buf_release(&zip);
}
END_TEST

/* A stored entry must carry exactly the CRC it announced: the header is
 * out already, so a wrong one fails the archive. */
START_TEST(test_zipw_stored_crc_mismatch_fails)
{
    struct rec_writer r;
    struct zipw *zw = NULL;
    struct wk_err err;

    memset(&r, 0, sizeof(r));
    r.base.ops = &rec_ops;
    wk_err_clear(&err);
    ck_assert_int_eq(zipw_new(&r.base, NULL, &zw, &err), WK_OK);
    ck_assert_int_eq(zipw_entry_begin_stored(zw, "a.jpg", 3, 0,
                                             zipw_crc32(0, "abd", 3), &err),
                     WK_OK);
    ck_assert_int_eq(zipw_entry_write(zw, "abc", 3, &err), WK_OK);
    ck_assert_int_eq(zipw_entry_end(zw, &err), WK_E_INTERNAL);
    ck_assert_msg(strstr(err.msg, "zip entry 'a.jpg': data has CRC-32") ==
                      err.msg,
                  "%s", err.msg);
    wk_err_clear(&err);
    ck_assert_int_eq(zipw_finish(zw, &err), WK_E_INTERNAL);
    zipw_free(zw);
}
END_TEST

START_TEST(test_zipw_external_tools_accept)
{
    char path[] = "/tmp/wk-zipw-XXXXXX";
    char cmd[1024];
    struct wk_buf zip;
    char hex[65];
    uint64_t out;
    int fd = mkstemp(path);

    ck_assert_int_ge(fd, 0);
    close(fd);
    build_zip(6, &zip, hex, &out);
    write_file(path, &zip);
    snprintf(cmd, sizeof(cmd), "unzip -t -q '%s' >/dev/null", path);
    ck_assert_msg(system(cmd) == 0, "unzip -t failed for %s", path);
    snprintf(cmd, sizeof(cmd),
             "python3 -c \"import zipfile,sys; z=zipfile.ZipFile(sys.argv[1]); "
             "assert z.testzip() is None; "
             "i={x.filename: x for x in z.infolist()}; "
             "assert i['files/stored.bin'].compress_type == 0; "
             "assert i['files/pk.jpg'].compress_type == 0; "
             "assert i['files/pk.jpg'].flag_bits & 8 == 0; "
             "assert i['space-v1/space.json'].compress_type == 8; "
             "assert i['n\\u00e4me/\\u65e5\\u672c-\\u00e9.txt'].flag_bits & "
             "0x800\" '%s'",
             path);
    ck_assert_msg(system(cmd) == 0, "python zipfile check failed for %s", path);
    unlink(path);
    wk_buf_release(&zip);
}
END_TEST

/* Level 0: nothing compressed; entries begun without a CRC are deflate
 * at level 0 (stored blocks), stored ones stay stored. */
START_TEST(test_zipw_level0_compresses_nothing)
{
    char path[] = "/tmp/wk-zipw-XXXXXX";
    char cmd[512];
    struct wk_buf zip;
    char hex[65];
    uint64_t out;
    size_t total = 0;
    int fd = mkstemp(path);

    ck_assert_int_ge(fd, 0);
    close(fd);
    build_zip(0, &zip, hex, &out);
    for (size_t k = 0; k < n_entries; k++)
        total += entries[k].len;
    ck_assert_uint_gt(zip.len, total);
    write_file(path, &zip);
    snprintf(cmd, sizeof(cmd),
             "python3 -c \"import zipfile,sys; z=zipfile.ZipFile(sys.argv[1]); "
             "assert z.testzip() is None; "
             "assert all(x.compress_type == (0 if x.filename in "
             "('files/stored.bin', 'files/pk.jpg') else 8) "
             "for x in z.infolist())\" '%s'",
             path);
    ck_assert_int_eq(system(cmd), 0);
    unlink(path);
    wk_buf_release(&zip);
}
END_TEST

START_TEST(test_zipw_same_bytes_in_any_locale)
{
    struct wk_buf a, b;
    char hex_a[65], hex_b[65];
    uint64_t out;

    build_zip(6, &a, hex_a, &out);
    ck_assert_ptr_nonnull(setlocale(LC_CTYPE, "C.UTF-8"));
    build_zip(6, &b, hex_b, &out);
    setlocale(LC_CTYPE, "C");
    ck_assert_str_eq(hex_a, hex_b);
    ck_assert_uint_eq(a.len, b.len);
    wk_buf_release(&a);
    wk_buf_release(&b);
}
END_TEST

START_TEST(test_zipw_sink_gets_whole_blocks)
{
    struct rec_writer r;
    struct zipw *zw = NULL;
    struct zipw_opts opts = { .level = 1 };
    struct wk_err err;

    memset(&r, 0, sizeof(r));
    r.base.ops = &rec_ops;
    wk_err_clear(&err);
    ck_assert_int_eq(zipw_new(&r.base, &opts, &zw, &err), WK_OK);
    ck_assert_int_eq(
        zipw_entry_begin_stored(zw, "r.bin", RANDOM_BYTES, 0,
                                zipw_crc32(0, random_data, RANDOM_BYTES), &err),
        WK_OK);
    ck_assert_int_eq(zipw_entry_write(zw, random_data, RANDOM_BYTES, &err),
                     WK_OK);
    ck_assert_int_eq(zipw_entry_end(zw, &err), WK_OK);
    ck_assert_int_eq(zipw_finish(zw, &err), WK_OK);
    ck_assert_uint_ge(r.calls, 3);
    for (size_t i = 0; i + 1 < r.calls; i++)
        ck_assert_uint_eq(r.sizes[i], ZIPW_BLOCK_BYTES);
    ck_assert_uint_lt(r.sizes[r.calls - 1], ZIPW_BLOCK_BYTES); /* no pad */
    ck_assert_uint_eq(r.total, zipw_bytes_out(zw));
    zipw_free(zw);
}
END_TEST

START_TEST(test_zipw_sink_error_propagates)
{
    struct rec_writer r;
    struct zipw *zw = NULL;
    struct wk_err err;
    enum wk_code rc;

    memset(&r, 0, sizeof(r));
    r.base.ops = &rec_ops;
    r.fail_at = 2;
    wk_err_clear(&err);
    ck_assert_int_eq(zipw_new(&r.base, NULL, &zw, &err), WK_OK);
    ck_assert_int_eq(
        zipw_entry_begin_stored(zw, "r.bin", RANDOM_BYTES, 0,
                                zipw_crc32(0, random_data, RANDOM_BYTES), &err),
        WK_OK);
    rc = zipw_entry_write(zw, random_data, RANDOM_BYTES, &err);
    ck_assert_int_eq(rc, WK_E_IO);
    ck_assert_int_eq(err.sys_errno, 28);
    ck_assert_ptr_nonnull(strstr(err.msg, "write 'x.zip'"));
    /* only good for zipw_free() now */
    wk_err_clear(&err);
    ck_assert_int_eq(zipw_finish(zw, &err), WK_E_INTERNAL);
    zipw_free(zw);
}
END_TEST

START_TEST(test_zipw_sink_error_at_finish_propagates)
{
    struct rec_writer r;
    struct zipw *zw = NULL;
    struct wk_err err;

    memset(&r, 0, sizeof(r));
    r.base.ops = &rec_ops;
    r.fail_at = 3; /* two whole blocks of entry data, then the rest */
    wk_err_clear(&err);
    ck_assert_int_eq(zipw_new(&r.base, NULL, &zw, &err), WK_OK);
    ck_assert_int_eq(
        zipw_entry_begin_stored(zw, "r.bin", RANDOM_BYTES, 0,
                                zipw_crc32(0, random_data, RANDOM_BYTES), &err),
        WK_OK);
    ck_assert_int_eq(zipw_entry_write(zw, random_data, RANDOM_BYTES, &err),
                     WK_OK);
    ck_assert_int_eq(zipw_entry_end(zw, &err), WK_OK);
    ck_assert_uint_eq(r.calls, 2);
    ck_assert_int_eq(zipw_finish(zw, &err), WK_E_IO);
    ck_assert_ptr_nonnull(strstr(err.msg, "write 'x.zip'"));
    ck_assert_uint_eq(zipw_bytes_out(zw), 2 * ZIPW_BLOCK_BYTES);
    zipw_free(zw);
    ck_assert_uint_eq(r.calls, 3);
}
END_TEST

START_TEST(test_zipw_free_unfinished_writes_nothing_more)
{
    struct rec_writer r;
    struct zipw *zw = NULL;
    struct wk_err err;
    size_t calls;

    memset(&r, 0, sizeof(r));
    r.base.ops = &rec_ops;
    wk_err_clear(&err);
    ck_assert_int_eq(zipw_new(&r.base, NULL, &zw, &err), WK_OK);
    ck_assert_int_eq(
        zipw_entry_begin_stored(zw, "r.bin", RANDOM_BYTES, 0,
                                zipw_crc32(0, random_data, RANDOM_BYTES), &err),
        WK_OK);
    ck_assert_int_eq(zipw_entry_write(zw, random_data, RANDOM_BYTES, &err),
                     WK_OK);
    calls = r.calls;
    zipw_free(zw);
    ck_assert_uint_eq(r.calls, calls);
}
END_TEST

START_TEST(test_zipw_entry_longer_than_announced_fails)
{
    struct rec_writer r;
    struct zipw *zw = NULL;
    struct wk_err err;

    memset(&r, 0, sizeof(r));
    r.base.ops = &rec_ops;
    wk_err_clear(&err);
    ck_assert_int_eq(zipw_new(&r.base, NULL, &zw, &err), WK_OK);
    ck_assert_int_eq(zipw_entry_begin(zw, "a.txt", 5, 0, 0, &err), WK_OK);
    ck_assert_int_eq(zipw_entry_write(zw, "abc", 3, &err), WK_OK);
    ck_assert_int_eq(zipw_entry_write(zw, "def", 3, &err), WK_E_INVAL);
    ck_assert_str_eq(err.msg,
                     "zip entry 'a.txt': more data than the 5 bytes announced");
    zipw_free(zw);
}
END_TEST

START_TEST(test_zipw_entry_shorter_than_announced_fails)
{
    struct rec_writer r;
    struct zipw *zw = NULL;
    struct wk_err err;

    memset(&r, 0, sizeof(r));
    r.base.ops = &rec_ops;
    wk_err_clear(&err);
    ck_assert_int_eq(zipw_new(&r.base, NULL, &zw, &err), WK_OK);
    ck_assert_int_eq(zipw_entry_begin(zw, "a.txt", 5, 0, 0, &err), WK_OK);
    ck_assert_int_eq(zipw_entry_write(zw, "abc", 3, &err), WK_OK);
    ck_assert_int_eq(zipw_entry_end(zw, &err), WK_E_INVAL);
    ck_assert_str_eq(err.msg,
                     "zip entry 'a.txt': got 3 of the 5 bytes announced");
    zipw_free(zw);
}
END_TEST

START_TEST(test_zipw_bad_names_refused)
{
    static const struct {
        const char *name;
        const char *msg;
    } cases[] = {
        { "", "zip entry '': empty name" },
        { "/etc/passwd", "zip entry '/etc/passwd': absolute path" },
        { "a/../../b", "zip entry 'a/../../b': '..' component" },
        { "a//b", "zip entry 'a//b': empty component" },
        { "dir/", "zip entry 'dir/': trailing '/'" },
        { "bad\xff.txt", "zip entry 'bad?.txt': name is not valid UTF-8" },
        { "\xc0\xaf", "zip entry '?\?': name is not valid UTF-8" },
        { "a\nb", "zip entry 'a?b': control character in name" },
        { "a\\..\\b", "zip entry 'a\\..\\b': backslash in name" },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct rec_writer r;
        struct zipw *zw = NULL;
        struct wk_err err;

        memset(&r, 0, sizeof(r));
        r.base.ops = &rec_ops;
        wk_err_clear(&err);
        ck_assert_int_eq(zipw_new(&r.base, NULL, &zw, &err), WK_OK);
        ck_assert_int_eq(zipw_entry_begin(zw, cases[i].name, 1, 0, 0, &err),
                         WK_E_INVAL);
        ck_assert_str_eq(err.msg, cases[i].msg);
        zipw_free(zw);
    }
}
END_TEST

/* The writer's "no name twice" and length rules are the reader's: it never
 * makes an archive the restore refuses. */
START_TEST(test_zipw_duplicate_and_long_names_refused)
{
    struct rec_writer r;
    struct zipw *zw = NULL;
    struct wk_err err;
    char name[1100];

    memset(&r, 0, sizeof(r));
    r.base.ops = &rec_ops;
    wk_err_clear(&err);
    ck_assert_int_eq(zipw_new(&r.base, NULL, &zw, &err), WK_OK);
    ck_assert_int_eq(zipw_entry_begin(zw, ".DS_Store", 1, 0, 0, &err), WK_OK);
    ck_assert_int_eq(zipw_entry_write(zw, "x", 1, &err), WK_OK);
    ck_assert_int_eq(zipw_entry_end(zw, &err), WK_OK);
    ck_assert_int_eq(zipw_entry_begin(zw, ".DS_Store", 1, 0, 0, &err),
                     WK_E_INVAL);
    ck_assert_str_eq(err.msg, "zip entry '.DS_Store': duplicate name");
    zipw_free(zw);

    memset(name, 'a', 1024);
    name[1024] = '\0';
    wk_err_clear(&err);
    ck_assert_int_eq(zipw_new(&r.base, NULL, &zw, &err), WK_OK);
    ck_assert_msg(zipw_entry_begin(zw, name, 0, 0, 0, &err) == WK_OK, "%s",
                  err.msg);
    ck_assert_int_eq(zipw_entry_end(zw, &err), WK_OK);
    name[1024] = 'b';
    name[1025] = '\0';
    ck_assert_int_eq(zipw_entry_begin(zw, name, 0, 0, 0, &err), WK_E_INVAL);
    ck_assert(strstr(err.msg, "name too long") != NULL);
    zipw_free(zw);
}
END_TEST

START_TEST(test_zipw_bad_level_refused)
{
    struct rec_writer r;
    struct zipw *zw = NULL;
    struct zipw_opts opts = { .level = 10 };
    struct wk_err err;

    memset(&r, 0, sizeof(r));
    r.base.ops = &rec_ops;
    wk_err_clear(&err);
    ck_assert_int_eq(zipw_new(&r.base, &opts, &zw, &err), WK_E_INVAL);
    ck_assert_ptr_null(zw);
    ck_assert_str_eq(err.msg, "zip: compression level 10 is not in 0..9");
}
END_TEST

START_TEST(test_zipw_misuse_is_internal)
{
    struct rec_writer r;
    struct zipw *zw = NULL;
    struct wk_err err;

    memset(&r, 0, sizeof(r));
    r.base.ops = &rec_ops;
    wk_err_clear(&err);
    ck_assert_int_eq(zipw_new(&r.base, NULL, &zw, &err), WK_OK);
    ck_assert_int_eq(zipw_entry_begin(zw, "a", 1, 0, 0, &err), WK_OK);
    ck_assert_int_eq(zipw_finish(zw, &err), WK_E_INTERNAL);
    ck_assert_str_eq(err.msg, "zip finish: entry 'a' is still open");
    zipw_free(zw);
}
END_TEST

/* A sparse file sink for the ZIP64 check: runs of zeros become holes, so
 * an archive over 4 GiB of zeros costs no disk (and no disk bandwidth). */
struct sparse_writer {
    struct store_writer base;
    int fd;
    uint64_t off;
};

static enum wk_code sparse_write(struct store_writer *w, const void *p,
                                 size_t n, struct wk_err *err)
{
    static const unsigned char zero[4096];
    struct sparse_writer *sw = (struct sparse_writer *)w;
    const unsigned char *c = p;

    while (n > 0) {
        size_t k = n < sizeof(zero) ? n : sizeof(zero);
        if (memcmp(c, zero, k) != 0 &&
            pwrite(sw->fd, c, k, (off_t)sw->off) != (ssize_t)k)
            return wk_err_set(err, WK_E_IO, "pwrite");
        sw->off += k;
        c += k;
        n -= k;
    }
    return WK_OK;
}

static const struct store_writer_ops sparse_ops = { "sparse", sparse_write,
                                                    rec_commit, rec_free };

/* One stored entry over 4 GiB (zeros, no bandwidth: the sink leaves holes)
 * and one whose local header is past 4 GiB: the writer must use ZIP64
 * sizes, offsets and end records. Checked by Python's zipfile (sizes, the
 * CRC against one computed here, every byte read back) and unzip -t. */
START_TEST(test_zipw_zip64_over_4gib)
{
    const uint64_t big = (4ULL << 30) + 12345;
    char path[] = "/tmp/wk-zipw64-XXXXXX";
    char cmd[2048];
    struct sparse_writer sw;
    struct zipw *zw = NULL;
    struct zipw_opts opts = { .level = 0, .no_hash = true };
    struct wk_err err;
    unsigned char *zeros;
    unsigned long crc = crc32(0L, Z_NULL, 0);
    uint64_t left;
    struct stat st;

    sw.fd = mkstemp(path);
    ck_assert_int_ge(sw.fd, 0);
    sw.base.ops = &sparse_ops;
    sw.base.written = 0;
    sw.off = 0;
    zeros = calloc(1, 1 << 20);
    ck_assert_ptr_nonnull(zeros);
    wk_err_clear(&err);
    ck_assert_int_eq(zipw_new(&sw.base, &opts, &zw, &err), WK_OK);
    /* stored, so the CRC first (as for an object held whole) */
    for (left = big; left > 0;) {
        size_t n = left < (1 << 20) ? (size_t)left : (1 << 20);
        crc = crc32(crc, zeros, (uInt)n);
        left -= n;
    }
    ck_assert_int_eq(
        zipw_entry_begin_stored(zw, "big.bin", big, 0, (uint32_t)crc, &err),
        WK_OK);
    for (left = big; left > 0;) {
        size_t n = left < (1 << 20) ? (size_t)left : (1 << 20);
        ck_assert_int_eq(zipw_entry_write(zw, zeros, n, &err), WK_OK);
        left -= n;
    }
    ck_assert_int_eq(zipw_entry_end(zw, &err), WK_OK);
    ck_assert_int_eq(zipw_entry_begin(zw, "after.txt", 5, 0, 0, &err), WK_OK);
    ck_assert_int_eq(zipw_entry_write(zw, "after", 5, &err), WK_OK);
    ck_assert_int_eq(zipw_entry_end(zw, &err), WK_OK);
    ck_assert_int_eq(zipw_finish(zw, &err), WK_OK);
    ck_assert_uint_gt(zipw_bytes_out(zw), big);
    ck_assert_uint_eq(zipw_bytes_out(zw), sw.off);
    zipw_free(zw);
    free(zeros);
    ck_assert_int_eq(ftruncate(sw.fd, (off_t)sw.off), 0);
    ck_assert_int_eq(fstat(sw.fd, &st), 0);
    ck_assert_uint_lt((uint64_t)st.st_blocks * 512, 64u << 20); /* sparse */
    ck_assert_int_eq(close(sw.fd), 0);
    snprintf(cmd, sizeof(cmd),
             "python3 -c \"import zipfile,struct,sys\n"
             "p=sys.argv[1]; z=zipfile.ZipFile(p)\n"
             "i=z.getinfo('big.bin')\n"
             "assert i.file_size == %llu and i.compress_size == %llu\n"
             "assert i.compress_type == 0 and i.CRC == %lu, i.CRC\n"
             "x=i.extra; ids=[]\n"
             "while len(x) >= 4:\n"
             " t,n=struct.unpack('<HH',x[:4]); ids.append(t); x=x[4+n:]\n"
             "assert 1 in ids, ids\n"
             "f=open(p,'rb'); h=f.read(100)\n"
             "fl,me,_,_,c,cs,us,n,m=struct.unpack('<HHHHIIIHH',h[6:30])\n"
             "assert fl & 8 == 0 and me == 0 and c == i.CRC, (fl, me, c)\n"
             "assert cs == us == 0xffffffff and h[4] == 45\n"
             "x=h[30+n:30+n+m]; t,k,u,cc=struct.unpack('<HHQQ',x[:20])\n"
             "assert t == 1 and k == 16 and u == cc == %llu, (t, k, u, cc)\n"
             "a0=z.getinfo('after.txt').header_offset\n"
             "assert a0 == 30+n+m+%llu, a0\n"
             "a=z.getinfo('after.txt'); assert a.header_offset > 1<<32\n"
             "assert z.read('after.txt') == b'after'\n"
             "assert z.testzip() is None\n"
             "f=open(p,'rb'); f.seek(-4096,2); t=f.read()\n"
             "assert b'PK\\x06\\x06' in t and b'PK\\x06\\x07' in t\n"
             "\" '%s' && unzip -t -q '%s' >/dev/null",
             (unsigned long long)big, (unsigned long long)big, crc,
             (unsigned long long)big, (unsigned long long)big, path, path);
    ck_assert_int_eq(system(cmd), 0);
    unlink(path);
}
END_TEST

/* A sink that counts, keeping only the first and the last bytes. */
struct ends_writer {
    struct store_writer base;
    uint64_t total;
    unsigned char head[4096];
    unsigned char tail[65536]; /* ring: the last bytes */
};

static enum wk_code ends_write(struct store_writer *w, const void *p, size_t n,
                               struct wk_err *err)
{
    struct ends_writer *ew = (struct ends_writer *)w;
    const unsigned char *c = p;
    size_t skip = n > sizeof(ew->tail) ? n - sizeof(ew->tail) : 0;

    (void)err;
    if (ew->total < sizeof(ew->head)) {
        size_t k = sizeof(ew->head) - (size_t)ew->total;
        memcpy(ew->head + ew->total, c, k < n ? k : n);
    }
    for (size_t i = skip; i < n;) {
        size_t at = (size_t)((ew->total + i) % sizeof(ew->tail));
        size_t k = sizeof(ew->tail) - at;
        if (k > n - i)
            k = n - i;
        memcpy(ew->tail + at, c + i, k);
        i += k;
    }
    ew->total += n;
    return WK_OK;
}

static const struct store_writer_ops ends_ops = { "ends", ends_write,
                                                  rec_commit, rec_free };

/* Byte at offset off of what ends_writer saw last (within its tail). */
static const unsigned char *ends_at(struct ends_writer *ew, uint64_t off,
                                    unsigned char *buf, size_t n)
{
    ck_assert_uint_le(off + n, ew->total);
    ck_assert_uint_ge(off, ew->total - sizeof(ew->tail));
    for (size_t i = 0; i < n; i++)
        buf[i] = ew->tail[(off + i) % sizeof(ew->tail)];
    return buf;
}

/* A big compressed object the worker cannot hold goes in deflated at level
 * 0 with a data descriptor; over 4 GiB that is ZIP64 throughout: the local
 * header's ZIP64 field (which tells readers the descriptor is 64-bit), the
 * 64-bit descriptor, the central directory's ZIP64 sizes, the ZIP64 end
 * records. Nothing is kept but the ends of the output. */
START_TEST(test_zipw_zip64_deflated_big_has_descriptor)
{
    const uint64_t big = (4ULL << 30) + 777;
    struct ends_writer *ew = calloc(1, sizeof(*ew));
    struct zipw *zw = NULL;
    struct zipw_opts opts = { .level = 6, .no_hash = true };
    struct wk_err err;
    unsigned char *zeros = calloc(1, 1 << 20);
    unsigned char b[64];
    const unsigned char *h, *x, *e, *d;
    struct zipcd_entry ce;
    uint32_t crc = 0;
    uint64_t cd_off, z64;
    size_t n, m;

    ck_assert_ptr_nonnull(ew);
    ck_assert_ptr_nonnull(zeros);
    ew->base.ops = &ends_ops;
    wk_err_clear(&err);
    ck_assert_int_eq(zipw_new(&ew->base, &opts, &zw, &err), WK_OK);
    ck_assert_int_eq(zipw_entry_begin(zw, "big.mp4", big, 0, 1, &err), WK_OK);
    for (uint64_t left = big; left > 0;) {
        size_t k = left < (1 << 20) ? (size_t)left : (1 << 20);
        ck_assert_int_eq(zipw_entry_write(zw, zeros, k, &err), WK_OK);
        crc = zipw_crc32(crc, zeros, k);
        left -= k;
    }
    ck_assert_int_eq(zipw_entry_end(zw, &err), WK_OK);
    ck_assert_int_eq(zipw_finish(zw, &err), WK_OK);
    ck_assert_uint_eq(zipw_bytes_out(zw), ew->total);
    zipw_free(zw);
    free(zeros);

    h = ew->head;
    ck_assert_uint_eq(zip_le32(h), ZIP_SIG_LOCAL);
    ck_assert_uint_eq(zip_le16(h + 4), 45);
    ck_assert_uint_eq(zip_le16(h + 6) & ZIP_FLAG_DESCRIPTOR,
                      ZIP_FLAG_DESCRIPTOR);
    ck_assert_uint_eq(zip_le16(h + 8), 8);
    ck_assert_uint_eq(zip_le32(h + 18), 0xffffffffu);
    ck_assert_uint_eq(zip_le32(h + 22), 0xffffffffu);
    n = zip_le16(h + 26);
    m = zip_le16(h + 28);
    x = h + ZIP_LOCAL_FIXED + n;
    ck_assert_uint_eq(zip_le16(x), ZIP_EXTRA_ZIP64);
    ck_assert_uint_eq(zip_le16(x + 2), 16);
    ck_assert_uint_eq(zip_le64(x + 4), big);

    /* the end: ZIP64 end record, locator, end record */
    e = ends_at(ew, ew->total - ZIP_EOCD_BYTES, b, ZIP_EOCD_BYTES);
    ck_assert_uint_eq(zip_le32(e), ZIP_SIG_END);
    ck_assert_uint_eq(zip_le32(e + 16), 0xffffffffu);
    e = ends_at(ew, ew->total - ZIP_EOCD_BYTES - ZIP_LOC_BYTES, b,
                ZIP_LOC_BYTES);
    ck_assert_uint_eq(zip_le32(e), ZIP_SIG_Z64_LOC);
    z64 = zip_le64(e + 8);
    e = ends_at(ew, z64, b, ZIP_Z64_BYTES);
    ck_assert_uint_eq(zip_le32(e), ZIP_SIG_Z64_END);
    ck_assert_uint_eq(zip_le64(e + 32), 1);
    cd_off = zip_le64(e + 48);
    ck_assert_uint_eq(cd_off + zip_le64(e + 40), z64);

    /* the central directory's record, and the 64-bit descriptor before */
    {
        unsigned char rec[ZIP_CD_FIXED + 64];
        ck_assert_uint_le(z64 - cd_off, sizeof(rec));
        ends_at(ew, cd_off, rec, (size_t)(z64 - cd_off));
        zipcd_record_parse(rec, &ce);
    }
    ck_assert(ce.extra_ok && ce.zip64);
    ck_assert_uint_eq(ce.method, 8);
    ck_assert_uint_eq(ce.usize, big);
    ck_assert_uint_eq(ce.crc, crc);
    ck_assert_uint_eq(ce.offset, 0);
    /* level 0: 5 bytes of block header per 64 KiB at most */
    ck_assert_uint_gt(ce.csize, big);
    ck_assert_uint_lt(ce.csize, big + big / 10000);
    ck_assert_uint_eq(ZIP_LOCAL_FIXED + n + m + ce.csize + 24, cd_off);
    d = ends_at(ew, cd_off - 24, b, 24);
    ck_assert_uint_eq(zip_le32(d), ZIP_SIG_DESCRIPTOR);
    ck_assert_uint_eq(zip_le32(d + 4), crc);
    ck_assert_uint_eq(zip_le64(d + 8), ce.csize);
    ck_assert_uint_eq(zip_le64(d + 16), big);
    free(ew);
}
END_TEST

/* Over 65535 entries: the count goes to the ZIP64 end record. */
START_TEST(test_zipw_zip64_many_entries)
{
    struct ends_writer *ew = calloc(1, sizeof(*ew));
    struct zipw *zw = NULL;
    struct zipw_opts opts = { .level = 1, .no_hash = true };
    struct wk_err err;
    unsigned char b[ZIP_Z64_BYTES];
    const unsigned char *e;
    char name[32];
    const unsigned nent = 70000;

    ck_assert_ptr_nonnull(ew);
    ew->base.ops = &ends_ops;
    wk_err_clear(&err);
    ck_assert_int_eq(zipw_new(&ew->base, &opts, &zw, &err), WK_OK);
    for (unsigned i = 0; i < nent; i++) {
        snprintf(name, sizeof(name), "f/%06u.jpg", i);
        ck_assert_int_eq(zipw_entry_begin_stored(zw, name, 3, 0,
                                                 zipw_crc32(0, "abc", 3), &err),
                         WK_OK);
        ck_assert_int_eq(zipw_entry_write(zw, "abc", 3, &err), WK_OK);
        ck_assert_int_eq(zipw_entry_end(zw, &err), WK_OK);
    }
    ck_assert_int_eq(zipw_finish(zw, &err), WK_OK);
    zipw_free(zw);
    e = ends_at(ew, ew->total - ZIP_EOCD_BYTES, b, ZIP_EOCD_BYTES);
    ck_assert_uint_eq(zip_le32(e), ZIP_SIG_END);
    ck_assert_uint_eq(zip_le16(e + 8), 0xffff);
    ck_assert_uint_eq(zip_le16(e + 10), 0xffff);
    e = ends_at(ew, ew->total - ZIP_EOCD_BYTES - ZIP_LOC_BYTES - ZIP_Z64_BYTES,
                b, ZIP_Z64_BYTES);
    ck_assert_uint_eq(zip_le32(e), ZIP_SIG_Z64_END);
    ck_assert_uint_eq(zip_le64(e + 24), nent);
    ck_assert_uint_eq(zip_le64(e + 32), nent);
    free(ew);
}
END_TEST

/* ---- entries copied from an earlier archive (zipw_copy_*) ---- */

struct cd_rows {
    struct zipcd_entry e[8];
    char names[8][128];
    size_t n;
};

static enum wk_code collect_cd(const struct zipcd_entry *e, void *ud,
                               struct wk_err *err)
{
    struct cd_rows *c = ud;
    (void)err;
    ck_assert_uint_lt(c->n, 8);
    c->e[c->n] = *e;
    snprintf(c->names[c->n], sizeof(c->names[0]), "%s", e->name);
    c->e[c->n].name = c->names[c->n];
    c->n++;
    return WK_OK;
}

/* Archive A's central directory (A written by build_zip). */
static void read_cd(const struct wk_buf *a, struct cd_rows *c,
                    struct zipcd_info *info)
{
    struct store *st = NULL;
    struct wk_err err;

    wk_err_clear(&err);
    memset(c, 0, sizeof(*c));
    ck_assert_int_eq(store_mem_new(&st, &err), WK_OK);
    ck_assert_int_eq(store_put(st, "a.zip", a->data, a->len, &err), WK_OK);
    ck_assert_msg(zipcd_read(st, "a.zip", a->len, NULL, 0, collect_cd, c, info,
                             &err) == WK_OK,
                  "%s", err.msg);
    store_free(st);
}

static uint64_t rec_len_of(const struct cd_rows *c,
                           const struct zipcd_info *info, size_t i)
{
    uint64_t end = i + 1 < c->n ? c->e[i + 1].offset : info->cd_offset;
    return end - c->e[i].offset;
}

/* B: entry i copied from A's bytes when copy(i), else written fresh;
 * each copy handed over in two pieces split at `split` bytes. Returns the
 * first failure's code (err says it). */
static enum wk_code build_mixed(const struct wk_buf *a, const struct cd_rows *c,
                                const struct zipcd_info *info, unsigned mask,
                                size_t split, struct wk_buf *out,
                                struct wk_err *err)
{
    struct store *st = NULL;
    struct store_writer *w = NULL;
    struct zipw *zw = NULL;
    struct zipw_opts opts = { .level = 6 };
    enum wk_code rc;

    ck_assert_int_eq(store_mem_new(&st, err), WK_OK);
    ck_assert_int_eq(store_open_write(st, "b.zip", NULL, &w, err), WK_OK);
    ck_assert_int_eq(zipw_new(w, &opts, &zw, err), WK_OK);
    rc = WK_OK;
    for (size_t i = 0; i < n_entries && rc == WK_OK; i++) {
        const struct tentry *t = &entries[i];
        if (mask & (1u << i)) {
            const struct zipcd_entry *e = &c->e[i];
            uint64_t len = rec_len_of(c, info, i);
            size_t k = split < len ? split : (size_t)len;
            rc = zipw_copy_begin(zw, e->name, e->usize, e->csize, e->crc, len,
                                 err);
            if (rc == WK_OK)
                rc = zipw_copy_write(zw, a->data + e->offset, k, err);
            if (rc == WK_OK)
                rc = zipw_copy_write(zw, a->data + e->offset + k, len - k, err);
            if (rc == WK_OK)
                rc = zipw_copy_end(zw, err);
            continue;
        }
        rc = t->store
                 ? zipw_entry_begin_stored(zw, t->name, t->len, t->mtime,
                                           zipw_crc32(0, t->data, t->len), err)
                 : zipw_entry_begin(zw, t->name, t->len, t->mtime, 0, err);
        if (rc == WK_OK)
            rc = zipw_entry_write(zw, t->data, t->len, err);
        if (rc == WK_OK)
            rc = zipw_entry_end(zw, err);
    }
    if (rc == WK_OK)
        rc = zipw_finish(zw, err);
    if (rc == WK_OK)
        rc = store_writer_commit(w, err);
    zipw_free(zw);
    store_writer_free(w);
    if (rc == WK_OK) {
        wk_buf_init(out, 16u << 20);
        ck_assert_int_eq(store_get_all(st, "b.zip", out, err), WK_OK);
    }
    store_free(st);
    return rc;
}

START_TEST(test_zipw_copy_gives_the_same_bytes)
{
    struct wk_buf a, b;
    struct cd_rows c;
    struct zipcd_info info;
    struct wk_err err;
    char hex[65];
    uint64_t n;
    /* every mix of copied and fresh entries, the copies cut at several
     * places (inside the fixed header, the name, the extra, the data) */
    const unsigned masks[] = { 0x3f, 0x15, 0x2a, 0x01, 0x20 };
    const size_t splits[] = { 0, 7, 35, 60, 1000 };

    wk_err_clear(&err);
    build_zip(6, &a, hex, &n);
    read_cd(&a, &c, &info);
    ck_assert_uint_eq(c.n, n_entries);
    for (size_t m = 0; m < sizeof(masks) / sizeof(masks[0]); m++)
        for (size_t s = 0; s < sizeof(splits) / sizeof(splits[0]); s++) {
            ck_assert_msg(build_mixed(&a, &c, &info, masks[m], splits[s], &b,
                                      &err) == WK_OK,
                          "mask %x split %zu: %s", masks[m], splits[s],
                          err.msg);
            /* byte for byte what a fresh archive of the same entries is */
            ck_assert_uint_eq(b.len, a.len);
            ck_assert(memcmp(b.data, a.data, a.len) == 0);
            wk_buf_release(&b);
        }
    /* and libarchive reads the copy as written */
    ck_assert_int_eq(build_mixed(&a, &c, &info, 0x2a, 9, &b, &err), WK_OK);
    read_back(&b, false);
    read_back(&b, true);
    wk_buf_release(&b);
    wk_buf_release(&a);
}
END_TEST

/* A copy of a damaged record fails as corrupt, never a wrong archive. */
START_TEST(test_zipw_copy_refuses_damaged_records)
{
    struct wk_buf a, b;
    struct cd_rows c;
    struct zipcd_info info;
    struct wk_err err;
    char hex[65];
    uint64_t n;
    size_t stored = 2, deflated = 0; /* files/stored.bin, space.json */
    struct {
        size_t entry;
        size_t at; /* byte of the record to flip */
    } cases[] = {
        { 2, 0 },                     /* signature */
        { 2, 31 },                    /* a name byte */
        { 2, 8 },                     /* method */
        { 2, 14 },                    /* CRC-32 in the header */
        { 2, 30 + 16 + 1 + 9 + 100 }, /* stored data: its CRC */
        { 0, 6 },                     /* flags: the encryption bit */
    };

    wk_err_clear(&err);
    build_zip(6, &a, hex, &n);
    read_cd(&a, &c, &info);
    ck_assert_str_eq(c.e[stored].name, "files/stored.bin");
    ck_assert_str_eq(c.e[deflated].name, "space-v1/space.json");
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        size_t pos = (size_t)c.e[cases[k].entry].offset + cases[k].at;
        a.data[pos] ^= 0x01;
        wk_err_clear(&err);
        ck_assert_int_eq(
            build_mixed(&a, &c, &info, 1u << cases[k].entry, 5, &b, &err),
            WK_E_CORRUPT);
        ck_assert_msg(strstr(err.msg, "cannot be copied") != NULL, "%s",
                      err.msg);
        a.data[pos] ^= 0x01;
    }
    /* directory values that are not the record's */
    {
        struct zipcd_entry keep = c.e[stored];
        c.e[stored].csize -= 1; /* the directory says one byte less */
        wk_err_clear(&err);
        ck_assert_int_eq(build_mixed(&a, &c, &info, 1u << stored, 5, &b, &err),
                         WK_E_CORRUPT);
        c.e[stored] = keep;
        c.e[deflated].crc ^= 1; /* the descriptor says another CRC */
        wk_err_clear(&err);
        ck_assert_int_eq(
            build_mixed(&a, &c, &info, 1u << deflated, 5, &b, &err),
            WK_E_CORRUPT);
    }
    wk_buf_release(&a);
}
END_TEST

Suite *zipw_suite(void)
{
    Suite *s = suite_create("zipw");
    TCase *tc = tcase_create("core");
    TCase *big = tcase_create("zip64");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_zipw_roundtrip_with_libarchive);
    tcase_add_test(tc, test_zipw_header_fields);
    tcase_add_test(tc, test_zipw_stored_crc_mismatch_fails);
    tcase_add_test(tc, test_zipw_external_tools_accept);
    tcase_add_test(tc, test_zipw_level0_compresses_nothing);
    tcase_add_test(tc, test_zipw_same_bytes_in_any_locale);
    tcase_add_test(tc, test_zipw_sink_gets_whole_blocks);
    tcase_add_test(tc, test_zipw_sink_error_propagates);
    tcase_add_test(tc, test_zipw_sink_error_at_finish_propagates);
    tcase_add_test(tc, test_zipw_free_unfinished_writes_nothing_more);
    tcase_add_test(tc, test_zipw_entry_longer_than_announced_fails);
    tcase_add_test(tc, test_zipw_entry_shorter_than_announced_fails);
    tcase_add_test(tc, test_zipw_bad_names_refused);
    tcase_add_test(tc, test_zipw_bad_level_refused);
    tcase_add_test(tc, test_zipw_duplicate_and_long_names_refused);
    tcase_add_test(tc, test_zipw_misuse_is_internal);
    tcase_add_test(tc, test_zipw_copy_gives_the_same_bytes);
    tcase_add_test(tc, test_zipw_copy_refuses_damaged_records);
    suite_add_tcase(s, tc);
    tcase_set_timeout(big, 300);
    tcase_add_test(big, test_zipw_zip64_over_4gib);
    tcase_add_test(big, test_zipw_zip64_deflated_big_has_descriptor);
    tcase_add_test(big, test_zipw_zip64_many_entries);
    suite_add_tcase(s, big);
    return s;
}
