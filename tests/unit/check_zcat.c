/* zcat: ZIPs written by zipw into store_mem, read back entry by entry
 * through a spy store that records every ranged read. */
#include <locale.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/wk_buf.h"
#include "common/wk_err.h"
#include "zip/zcat.h"
#include "zip/zipw.h"
#include "storage/store.h"
#include "tests/unit/suites.h"
#include "tests/unit/unit_util.h"

#define KIB          1024u
#define MIB          (1024u * 1024u)
#define ZIP_KEY      "archived/s1/workspace-20250101T000000Z.zip"
#define UTF8_NAME    "n\xc3\xa4me/\xe6\x97\xa5\xe6\x9c\xac-\xc3\xa9.txt"
#define N_NOTES      40
#define MANY_ENTRIES 66000u
#define TEXT_BYTES   (300u * KIB)
#define RAND_BYTES   (3u * MIB)
/* What zcat.c fetches up front: the first block and the tail. */
#define HEAD_BYTES (4u * KIB)
#define TAIL_BYTES (64u * KIB)

struct tentry {
    char name[64];
    const unsigned char *data; /* borrowed */
    size_t len;
    int store;
};

/* A store that forwards to store_mem and records the ranged reads. */
struct spy_store {
    struct store base;
    struct store *inner; /* owned */
    unsigned nreads;
    unsigned fail_at; /* the read (1-based) that fails; 0: none */
    uint64_t bytes;
    uint64_t max_len;
    uint64_t first_len[64]; /* lengths of the first reads, in order */
};

static struct spy_store *spy_of(struct store *st)
{
    return (struct spy_store *)st;
}

static enum wk_code spy_list(struct store *st, const char *prefix,
                             const char *delimiter, store_list_cb cb, void *ud,
                             struct wk_err *err)
{
    return store_list(spy_of(st)->inner, prefix, delimiter, cb, ud, err);
}

static enum wk_code spy_head(struct store *st, const char *key,
                             struct store_stat *out, struct wk_err *err)
{
    return store_head(spy_of(st)->inner, key, out, err);
}

static void spy_count(struct spy_store *sp, uint64_t len)
{
    if (sp->nreads < sizeof(sp->first_len) / sizeof(sp->first_len[0]))
        sp->first_len[sp->nreads] = len;
    sp->nreads++;
    if (len > sp->max_len)
        sp->max_len = len;
}

static enum wk_code spy_get(struct store *st, const char *key, uint64_t offset,
                            uint64_t len, store_sink_cb sink, void *ud,
                            struct wk_err *err)
{
    struct spy_store *sp = spy_of(st);
    enum wk_code rc = store_get(sp->inner, key, offset, len, sink, ud, err);

    spy_count(sp, len);
    if (rc == WK_OK)
        sp->bytes += len;
    return rc;
}

static enum wk_code spy_get_many(struct store *st, struct store_get *reqs,
                                 size_t n, struct wk_err *err)
{
    struct spy_store *sp = spy_of(st);
    enum wk_code first = WK_OK;

    for (size_t i = 0; i < n; i++) {
        struct store_get *g = &reqs[i];
        struct wk_err e;
        enum wk_code rc;

        spy_count(sp, g->len);
        wk_err_clear(&e);
        if (sp->fail_at == sp->nreads) {
            wk_err_clear(&g->err);
            rc = wk_err_set(&g->err, WK_E_NET, "get '%s': connection reset",
                            g->key);
        } else {
            rc = store_get_many(sp->inner, g, 1, &e);
        }
        if (rc == WK_OK)
            sp->bytes += g->len;
        else if (first == WK_OK)
            first = wk_err_copy(err, &g->err);
    }
    return first;
}

static enum wk_code spy_put(struct store *st, const char *key, const void *p,
                            size_t n, struct wk_err *err)
{
    return store_put(spy_of(st)->inner, key, p, n, err);
}

static enum wk_code spy_put_many(struct store *st, struct store_put *reqs,
                                 size_t n, struct wk_err *err)
{
    return store_put_many(spy_of(st)->inner, reqs, n, err);
}

static enum wk_code spy_open_write(struct store *st, const char *key,
                                   const struct store_writer_opts *opts,
                                   struct store_writer **out,
                                   struct wk_err *err)
{
    return store_open_write(spy_of(st)->inner, key, opts, out, err);
}

static enum wk_code spy_delete_many(struct store *st, const char *const *keys,
                                    size_t n, size_t *ndeleted,
                                    struct wk_err *err)
{
    return store_delete_many(spy_of(st)->inner, keys, n, ndeleted, err);
}

static enum wk_code spy_abort_pending(struct store *st, const char *prefix,
                                      size_t *naborted, struct wk_err *err)
{
    return store_abort_pending(spy_of(st)->inner, prefix, naborted, err);
}

static enum wk_code spy_count_pending(struct store *st, const char *prefix,
                                      size_t *npending, struct wk_err *err)
{
    return store_count_pending(spy_of(st)->inner, prefix, npending, err);
}

static void spy_free(struct store *st)
{
    store_free(spy_of(st)->inner);
    free(st);
}

static const struct store_ops spy_ops = {
    .name = "spy",
    .list = spy_list,
    .head = spy_head,
    .get = spy_get,
    .get_many = spy_get_many,
    .put = spy_put,
    .put_many = spy_put_many,
    .open_write = spy_open_write,
    .delete_many = spy_delete_many,
    .abort_pending = spy_abort_pending,
    .count_pending = spy_count_pending,
    .free = spy_free,
};

static struct store *spy_new(void)
{
    struct spy_store *sp = calloc(1, sizeof(*sp));
    struct wk_err err;

    ck_assert_ptr_nonnull(sp);
    sp->base.ops = &spy_ops;
    wk_err_clear(&err);
    ck_assert_int_eq(store_mem_new(&sp->inner, &err), WK_OK);
    return &sp->base;
}

static void spy_reset(struct store *st)
{
    struct spy_store *sp = spy_of(st);

    sp->nreads = 0;
    sp->fail_at = 0;
    sp->bytes = 0;
    sp->max_len = 0;
    memset(sp->first_len, 0, sizeof(sp->first_len));
}

/* The fixture: one archive of every kind of entry. */
static struct store *st;
static uint64_t zip_size;
static unsigned char *text_data, *rand_data;
static struct tentry entries[N_NOTES + 8];
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

static void add_entry(const char *name, const unsigned char *data, size_t len,
                      int store)
{
    struct tentry *t = &entries[n_entries++];

    ck_assert_uint_le(n_entries, sizeof(entries) / sizeof(entries[0]));
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->data = data;
    t->len = len;
    t->store = store;
}

static const struct tentry *entry_named(const char *name)
{
    for (size_t i = 0; i < n_entries; i++)
        if (strcmp(entries[i].name, name) == 0)
            return &entries[i];
    ck_abort_msg("no test entry '%s'", name);
    return NULL;
}

/* Write list through zipw into key; returns the archive size. */
static uint64_t put_zip(struct store *dst, const char *key,
                        const struct tentry *list, size_t n)
{
    struct store_writer *w = NULL;
    struct zipw *zw = NULL;
    struct zipw_opts opts = { .level = 6 };
    struct wk_err err;
    uint64_t size;

    wk_err_clear(&err);
    ck_assert_int_eq(store_open_write(dst, key, NULL, &w, &err), WK_OK);
    ck_assert_int_eq(zipw_new(w, &opts, &zw, &err), WK_OK);
    for (size_t i = 0; i < n; i++) {
        const struct tentry *t = &list[i];

        ck_assert_msg(
            (t->store
                 ? zipw_entry_begin_stored(zw, t->name, t->len, 1700000000,
                                           zipw_crc32(0, t->data, t->len), &err)
                 : zipw_entry_begin(zw, t->name, t->len, 1700000000, 0,
                                    &err)) == WK_OK,
            "%s", err.msg);
        ck_assert_int_eq(zipw_entry_write(zw, t->data, t->len, &err), WK_OK);
        ck_assert_int_eq(zipw_entry_end(zw, &err), WK_OK);
    }
    ck_assert_int_eq(zipw_finish(zw, &err), WK_OK);
    size = zipw_bytes_out(zw);
    ck_assert_int_eq(store_writer_commit(w, &err), WK_OK);
    zipw_free(zw);
    store_writer_free(w);
    return size;
}

static void setup(void)
{
    static const char line[] = "{\"id\": 42, \"title\": \"Sila workspace "
                               "note\", \"body\": \"lorem ipsum dolor\"}\n";
    size_t ll = strlen(line);

    text_data = malloc(TEXT_BYTES);
    rand_data = malloc(RAND_BYTES);
    ck_assert_ptr_nonnull(text_data);
    ck_assert_ptr_nonnull(rand_data);
    for (size_t i = 0; i < TEXT_BYTES; i++)
        text_data[i] = (unsigned char)line[i % ll];
    fill_random(rand_data, RAND_BYTES, 0x9e3779b97f4a7c15ULL);

    n_entries = 0;
    add_entry("sila.md", (const unsigned char *)"# Sila\n", 7, 0);
    add_entry("space-v1/space.json", text_data, TEXT_BYTES, 0);
    add_entry("files/random.bin", rand_data, 150 * KIB, 0);
    add_entry("files/stored.bin", rand_data + 1, 70000, 1);
    add_entry("empty.txt", (const unsigned char *)"", 0, 0);
    add_entry(UTF8_NAME, text_data + 5, 1000, 0);
    for (int i = 0; i < N_NOTES; i++) {
        char name[64];
        snprintf(name, sizeof(name), "space-v1/notes/n%02d.md", i);
        add_entry(name, text_data + i, 100 + (size_t)(i * 53) % 1500, 0);
    }
    add_entry("files/big.bin", rand_data, RAND_BYTES, 1);
    add_entry("last.txt", (const unsigned char *)"the last entry\n", 15, 0);

    st = spy_new();
    zip_size = put_zip(st, ZIP_KEY, entries, n_entries);
    spy_reset(st);
}

static void teardown(void)
{
    store_free(st);
    free(text_data);
    free(rand_data);
}

static enum wk_code sink_buf(const void *p, size_t n, void *ud,
                             struct wk_err *err)
{
    return wk_buf_append(ud, p, n, err);
}

/* zcat_read of name into out (initialised here, max 16 MiB). */
static enum wk_code cat(struct store *from, const char *key, uint64_t size,
                        const char *name, struct wk_buf *out,
                        struct zcat_stats *stats, struct wk_err *err)
{
    wk_buf_init(out, 16u * MIB);
    wk_err_clear(err);
    return zcat_read(from, key, size, NULL, name, sink_buf, out, stats, err);
}

/* Read name from the fixture archive and compare with what was written;
 * the stats must agree with what the store saw. */
static void check_entry(const char *name, struct zcat_stats *stats)
{
    const struct tentry *t = entry_named(name);
    struct wk_buf out;
    struct wk_err err;

    spy_reset(st);
    ck_assert_msg(cat(st, ZIP_KEY, zip_size, name, &out, stats, &err) == WK_OK,
                  "%s: %s", name, err.msg);
    ck_assert_uint_eq(out.len, t->len);
    ck_assert(t->len == 0 || memcmp(out.data, t->data, t->len) == 0);
    ck_assert_uint_eq(stats->requests, spy_of(st)->nreads);
    ck_assert_uint_eq(stats->bytes_fetched, spy_of(st)->bytes);
    ck_assert_uint_le(spy_of(st)->max_len, MIB);
    wk_buf_release(&out);
}

START_TEST(test_zcat_reads_deflated_entry)
{
    struct zcat_stats s;

    check_entry("space-v1/space.json", &s);
    /* 300 KiB of text deflates to a few KiB: nowhere near the archive */
    ck_assert_uint_lt(s.bytes_fetched, HEAD_BYTES + TAIL_BYTES + 64 * KIB);
    check_entry("files/random.bin", &s);
}
END_TEST

START_TEST(test_zcat_reads_stored_entry)
{
    struct zcat_stats s;

    check_entry("files/stored.bin", &s);
}
END_TEST

START_TEST(test_zcat_reads_empty_entry)
{
    struct zcat_stats s;

    check_entry("empty.txt", &s);
}
END_TEST

START_TEST(test_zcat_reads_utf8_name_in_c_locale)
{
    struct zcat_stats s;
    const char *loc = setlocale(LC_CTYPE, NULL);

    /* the worker and the CLI run in the C locale */
    ck_assert_ptr_nonnull(loc);
    ck_assert_str_eq(loc, "C");
    check_entry(UTF8_NAME, &s);
    ck_assert_str_eq(setlocale(LC_CTYPE, NULL), "C");
}
END_TEST

START_TEST(test_zcat_reads_first_entry_in_one_round_trip)
{
    struct zcat_stats s;

    check_entry("sila.md", &s);
    /* the head and tail blocks, fetched together, hold all it needs */
    ck_assert_uint_eq(s.requests, 2);
    ck_assert_uint_eq(s.bytes_fetched, HEAD_BYTES + TAIL_BYTES);
}
END_TEST

START_TEST(test_zcat_reads_last_entry)
{
    struct zcat_stats s;

    check_entry("last.txt", &s);
    /* every local header before it is visited, but the 3 MiB entry just
     * before it is skipped, not read */
    ck_assert_uint_lt(s.bytes_fetched, zip_size / 10);
    ck_assert_uint_le(s.requests, 8);
}
END_TEST

START_TEST(test_zcat_reads_every_entry)
{
    struct zcat_stats s;

    for (size_t i = 0; i < n_entries; i++)
        check_entry(entries[i].name, &s);
}
END_TEST

START_TEST(test_zcat_big_entry_blocks_grow)
{
    struct zcat_stats s;
    struct spy_store *sp = spy_of(st);
    unsigned last_small = 0;
    uint64_t want = 4 * KIB, total = 0;

    check_entry("files/big.bin", &s);
    /* 3 MiB stored: its data is read with no more than a few KiB around */
    ck_assert_uint_le(s.bytes_fetched,
                      RAND_BYTES + HEAD_BYTES + TAIL_BYTES + 64 * KIB);
    ck_assert_uint_le(s.requests, 16);
    ck_assert_uint_le(sp->nreads, 64);
    /* 4 KiB after the jump to its header, then 8, 16, ... up to 1 MiB,
     * the last one cut where the entry or the uncached range ends */
    for (unsigned i = 2; i < sp->nreads; i++)
        if (sp->first_len[i] == 4 * KIB)
            last_small = i;
    ck_assert_msg(last_small > 0, "no small read after the jump");
    for (unsigned i = last_small; i < sp->nreads; i++) {
        if (i + 1 < sp->nreads)
            ck_assert_uint_eq(sp->first_len[i], want);
        else
            ck_assert_uint_le(sp->first_len[i], want);
        total += sp->first_len[i];
        want = want * 2 > MIB ? MIB : want * 2;
    }
    ck_assert_uint_eq(sp->max_len, MIB);
    /* the entry's last bytes come from the tail block */
    ck_assert_uint_ge(total + TAIL_BYTES, RAND_BYTES);
}
END_TEST

START_TEST(test_zcat_bytes_do_not_depend_on_archive_size)
{
    struct tentry list[3];
    struct zcat_stats s1, s2;
    struct wk_buf out;
    struct wk_err err;
    uint64_t size1, size2;

    /* the same entries, but the one before the target is 1 or 3 MiB */
    memset(list, 0, sizeof(list));
    snprintf(list[0].name, sizeof(list[0].name), "a.txt");
    list[0].data = text_data;
    list[0].len = 20 * KIB;
    snprintf(list[1].name, sizeof(list[1].name), "big.bin");
    list[1].data = rand_data;
    list[1].len = MIB;
    list[1].store = 1;
    snprintf(list[2].name, sizeof(list[2].name), "b.txt");
    list[2].data = text_data + 1;
    list[2].len = 30 * KIB;
    size1 = put_zip(st, "z/1.zip", list, 3);
    list[1].len = RAND_BYTES;
    size2 = put_zip(st, "z/2.zip", list, 3);
    ck_assert_uint_eq(size2 - size1, RAND_BYTES - MIB);

    ck_assert_int_eq(cat(st, "z/1.zip", size1, "b.txt", &out, &s1, &err),
                     WK_OK);
    ck_assert_uint_eq(out.len, 30 * KIB);
    wk_buf_release(&out);
    ck_assert_int_eq(cat(st, "z/2.zip", size2, "b.txt", &out, &s2, &err),
                     WK_OK);
    ck_assert_uint_eq(out.len, 30 * KIB);
    ck_assert(memcmp(out.data, text_data + 1, 30 * KIB) == 0);
    wk_buf_release(&out);
    ck_assert_uint_eq(s1.bytes_fetched, s2.bytes_fetched);
    ck_assert_uint_eq(s1.requests, s2.requests);
}
END_TEST

START_TEST(test_zcat_lookup_costs_one_small_read_per_entry_before)
{
    struct tentry list[9];
    struct zcat_stats s;
    struct wk_buf out;
    struct wk_err err;
    uint64_t size;

    /* 8 stored entries of 256 KiB, then the target: libarchive visits the
     * 8 local headers before it, each a 4 KiB read after a skip */
    memset(list, 0, sizeof(list));
    for (int i = 0; i < 9; i++) {
        snprintf(list[i].name, sizeof(list[i].name), "e%d.bin", i);
        list[i].data = rand_data + i;
        list[i].len = i < 8 ? 256 * KIB : 100;
        list[i].store = 1;
    }
    size = put_zip(st, "z/mid.zip", list, 9);
    ck_assert_int_eq(cat(st, "z/mid.zip", size, "e8.bin", &out, &s, &err),
                     WK_OK);
    ck_assert_uint_eq(out.len, 100);
    ck_assert(memcmp(out.data, rand_data + 8, 100) == 0);
    wk_buf_release(&out);
    /* e0's header is in the head block, e8's in the tail */
    ck_assert_uint_eq(s.requests, 2 + 7);
    ck_assert_uint_eq(s.bytes_fetched, HEAD_BYTES + TAIL_BYTES + 7 * 4 * KIB);
}
END_TEST

START_TEST(test_zcat_zip64_entry_count)
{
    struct store_writer *w = NULL;
    struct zipw *zw = NULL;
    struct zipw_opts opts = { .level = 6 };
    struct zcat_stats s;
    struct wk_buf out;
    struct wk_err err;
    char name[32];
    uint64_t size;

    /* over 65535 entries: the end records are the ZIP64 ones */
    wk_err_clear(&err);
    ck_assert_int_eq(store_open_write(st, "z/many.zip", NULL, &w, &err), WK_OK);
    ck_assert_int_eq(zipw_new(w, &opts, &zw, &err), WK_OK);
    for (unsigned i = 0; i < MANY_ENTRIES; i++) {
        snprintf(name, sizeof(name), "d/%05u", i);
        ck_assert_int_eq(zipw_entry_begin(zw, name, 6, 1700000000, 1, &err),
                         WK_OK);
        ck_assert_int_eq(zipw_entry_write(zw, name + 1, 6, &err), WK_OK);
        ck_assert_int_eq(zipw_entry_end(zw, &err), WK_OK);
    }
    ck_assert_int_eq(zipw_finish(zw, &err), WK_OK);
    size = zipw_bytes_out(zw);
    ck_assert_int_eq(store_writer_commit(w, &err), WK_OK);
    zipw_free(zw);
    store_writer_free(w);
    /* the ZIP64 end locator sits right before the classic end record */
    wk_buf_init(&out, 64);
    ck_assert_int_eq(
        store_get(st, "z/many.zip", size - 42, 4, sink_buf, &out, &err), WK_OK);
    ck_assert(memcmp(out.data, "PK\006\007", 4) == 0);
    wk_buf_release(&out);

    ck_assert_int_eq(cat(st, "z/many.zip", size, "d/00007", &out, &s, &err),
                     WK_OK);
    ck_assert_uint_eq(out.len, 6);
    ck_assert(memcmp(out.data, "/00007", 6) == 0);
    wk_buf_release(&out);
    snprintf(name, sizeof(name), "d/%05u", MANY_ENTRIES - 1);
    ck_assert_int_eq(cat(st, "z/many.zip", size, name, &out, &s, &err), WK_OK);
    ck_assert_uint_eq(out.len, 6);
    ck_assert(memcmp(out.data, name + 1, 6) == 0);
    wk_buf_release(&out);
}
END_TEST

START_TEST(test_zcat_missing_name_not_found)
{
    struct zcat_stats s;
    struct wk_buf out;
    struct wk_err err;

    ck_assert_int_eq(
        cat(st, ZIP_KEY, zip_size, "space-v1/nope.md", &out, &s, &err),
        WK_E_NOTFOUND);
    ck_assert_uint_eq(out.len, 0);
    ck_assert_ptr_nonnull(strstr(err.msg, "'space-v1/nope.md'"));
    ck_assert_ptr_nonnull(strstr(err.msg, ZIP_KEY));
    ck_assert_ptr_nonnull(strstr(err.msg, "no such entry"));
    wk_buf_release(&out);
    /* a prefix of a name, or a directory of names, is no entry either */
    ck_assert_int_eq(cat(st, ZIP_KEY, zip_size, "space-v1", &out, &s, &err),
                     WK_E_NOTFOUND);
    wk_buf_release(&out);
    ck_assert_int_eq(
        cat(st, ZIP_KEY, zip_size, "space-v1/space.jso", &out, &s, &err),
        WK_E_NOTFOUND);
    wk_buf_release(&out);
}
END_TEST

START_TEST(test_zcat_bad_names_refused)
{
    static const char *const bad[] = {
        "",
        "/etc/passwd",
        "../x",
        "a/../b",
        "a/./b",
        "a//b",
        "dir/",
        ".",
        "a\\b",
        "a\tb",
        "a\x7f",
        "\xc3\x28",
        "\xed\xa0\x80", /* a UTF-16 surrogate */
    };
    struct zcat_stats s;
    struct wk_buf out;
    struct wk_err err;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        spy_reset(st);
        ck_assert_int_eq(cat(st, ZIP_KEY, zip_size, bad[i], &out, &s, &err),
                         WK_E_INVAL);
        ck_assert_ptr_nonnull(strstr(err.msg, ZIP_KEY));
        ck_assert_uint_eq(s.requests, 0);
        ck_assert_uint_eq(spy_of(st)->nreads, 0);
        wk_buf_release(&out);
    }
    ck_assert_int_eq(cat(st, ZIP_KEY, zip_size, "a/../b", &out, &s, &err),
                     WK_E_INVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "'..'"));
    wk_buf_release(&out);
}
END_TEST

/* Offset of name's data in a ZIP image (after its local header). */
static size_t data_offset(const unsigned char *zip, size_t len,
                          const char *name)
{
    size_t nl = strlen(name);

    for (size_t i = 0; i + 30 + nl <= len; i++) {
        if (memcmp(zip + i, "PK\003\004", 4) != 0)
            continue;
        if ((size_t)(zip[i + 26] | zip[i + 27] << 8) == nl &&
            memcmp(zip + i + 30, name, nl) == 0)
            return i + 30 + nl + (size_t)(zip[i + 28] | zip[i + 29] << 8);
    }
    ck_abort_msg("no local header for '%s'", name);
    return 0;
}

/* A copy of the fixture archive at key with one byte of name's data
 * flipped, at offset at into the data. */
static void put_corrupted(const char *key, const char *name, size_t at)
{
    struct wk_buf zip;
    struct wk_err err;
    size_t off;

    wk_buf_init(&zip, 16u * MIB);
    wk_err_clear(&err);
    ck_assert_int_eq(store_get_all(st, ZIP_KEY, &zip, &err), WK_OK);
    ck_assert_uint_eq(zip.len, zip_size);
    off = data_offset((const unsigned char *)zip.data, zip.len, name);
    zip.data[off + at] ^= 0x20;
    ck_assert_int_eq(store_put(st, key, zip.data, zip.len, &err), WK_OK);
    wk_buf_release(&zip);
}

START_TEST(test_zcat_crc_mismatch_is_corrupt)
{
    struct zcat_stats s;
    struct wk_buf out;
    struct wk_err err;

    put_corrupted("z/bad.zip", "files/stored.bin", 1234);
    ck_assert_int_eq(
        cat(st, "z/bad.zip", zip_size, "files/stored.bin", &out, &s, &err),
        WK_E_CORRUPT);
    ck_assert_ptr_nonnull(strstr(err.msg, "'files/stored.bin'"));
    ck_assert_ptr_nonnull(strstr(err.msg, "CRC"));
    wk_buf_release(&out);
    /* the other entries still read */
    ck_assert_int_eq(cat(st, "z/bad.zip", zip_size, "last.txt", &out, &s, &err),
                     WK_OK);
    ck_assert_uint_eq(out.len, 15);
    wk_buf_release(&out);
}
END_TEST

START_TEST(test_zcat_corrupt_deflate_is_corrupt)
{
    struct zcat_stats s;
    struct wk_buf out;
    struct wk_err err;

    put_corrupted("z/bad.zip", "space-v1/space.json", 100);
    ck_assert_int_eq(
        cat(st, "z/bad.zip", zip_size, "space-v1/space.json", &out, &s, &err),
        WK_E_CORRUPT);
    ck_assert_ptr_nonnull(strstr(err.msg, "'space-v1/space.json'"));
    wk_buf_release(&out);
}
END_TEST

static enum wk_code sink_fail(const void *p, size_t n, void *ud,
                              struct wk_err *err)
{
    (void)p;
    (void)n;
    (*(int *)ud)++;
    return wk_err_set(err, WK_E_IO, "write 'stdout': broken pipe");
}

START_TEST(test_zcat_sink_error_stops)
{
    struct wk_err err;
    int calls = 0;

    wk_err_clear(&err);
    ck_assert_int_eq(zcat_read(st, ZIP_KEY, zip_size, NULL, "files/big.bin",
                               sink_fail, &calls, NULL, &err),
                     WK_E_IO);
    ck_assert_int_eq(calls, 1);
    ck_assert_str_eq(err.msg, "write 'stdout': broken pipe");
}
END_TEST

START_TEST(test_zcat_store_failure_propagates)
{
    struct wk_buf out;
    struct wk_err err;

    /* the first round trip (the tail), then a read libarchive asks for */
    for (unsigned at = 1; at <= 3; at += 2) {
        spy_reset(st);
        spy_of(st)->fail_at = at;
        ck_assert_int_eq(
            cat(st, ZIP_KEY, zip_size, "files/big.bin", &out, NULL, &err),
            WK_E_NET);
        ck_assert_ptr_nonnull(strstr(err.msg, "connection reset"));
        ck_assert_ptr_nonnull(strstr(err.msg, "read 'files/big.bin' from"));
        ck_assert_uint_gt(spy_of(st)->nreads, at - 1);
        wk_buf_release(&out);
    }
}
END_TEST

START_TEST(test_zcat_missing_archive_not_found)
{
    struct zcat_stats s;
    struct wk_buf out;
    struct wk_err err;

    ck_assert_int_eq(
        cat(st, "archived/none/w.zip", zip_size, "sila.md", &out, &s, &err),
        WK_E_NOTFOUND);
    ck_assert_ptr_nonnull(strstr(err.msg, "archived/none/w.zip"));
    wk_buf_release(&out);
}
END_TEST

START_TEST(test_zcat_not_a_zip_is_corrupt)
{
    struct zcat_stats s;
    struct wk_buf out;
    struct wk_err err;

    wk_err_clear(&err);
    ck_assert_int_eq(store_put(st, "z/junk.zip", rand_data, 200 * KIB, &err),
                     WK_OK);
    ck_assert_int_eq(
        cat(st, "z/junk.zip", 200 * KIB, "sila.md", &out, &s, &err),
        WK_E_CORRUPT);
    ck_assert_ptr_nonnull(strstr(err.msg, "z/junk.zip"));
    wk_buf_release(&out);
    /* too short to hold an end record: refused before any read */
    spy_reset(st);
    ck_assert_int_eq(cat(st, "z/junk.zip", 21, "sila.md", &out, &s, &err),
                     WK_E_CORRUPT);
    ck_assert_uint_eq(spy_of(st)->nreads, 0);
    wk_buf_release(&out);
}
END_TEST

START_TEST(test_zcat_wrong_size_fails)
{
    struct zcat_stats s;
    struct wk_buf out;
    struct wk_err err;

    /* larger than the object: the ranged read cannot be served */
    ck_assert_int_ne(
        cat(st, ZIP_KEY, zip_size + 100, "sila.md", &out, &s, &err), WK_OK);
    ck_assert_ptr_nonnull(strstr(err.msg, ZIP_KEY));
    wk_buf_release(&out);
    /* smaller: the end record is not where it should be */
    ck_assert_int_eq(
        cat(st, ZIP_KEY, zip_size - 100, "sila.md", &out, &s, &err),
        WK_E_CORRUPT);
    wk_buf_release(&out);
}
END_TEST

START_TEST(test_zcat_small_archive_read_whole)
{
    struct tentry list[2];
    struct zcat_stats s;
    struct wk_buf out;
    struct wk_err err;
    uint64_t size;

    memset(list, 0, sizeof(list));
    snprintf(list[0].name, sizeof(list[0].name), "a.txt");
    list[0].data = (const unsigned char *)"alpha\n";
    list[0].len = 6;
    snprintf(list[1].name, sizeof(list[1].name), "b/c.txt");
    list[1].data = (const unsigned char *)"gamma\n";
    list[1].len = 6;
    size = put_zip(st, "z/small.zip", list, 2);
    ck_assert_int_eq(cat(st, "z/small.zip", size, "b/c.txt", &out, &s, &err),
                     WK_OK);
    ck_assert_uint_eq(out.len, 6);
    ck_assert(memcmp(out.data, "gamma\n", 6) == 0);
    /* smaller than the tail block: one read of the whole archive */
    ck_assert_uint_eq(s.requests, 1);
    ck_assert_uint_eq(s.bytes_fetched, size);
    wk_buf_release(&out);
}
END_TEST

/* At most cap bytes, then WK_E_LIMIT: what a caller of cat bounds. */
struct capped {
    struct wk_buf buf;
    size_t cap;
};

static enum wk_code sink_capped(const void *p, size_t n, void *ud,
                                struct wk_err *err)
{
    struct capped *c = ud;
    if (n > c->cap - c->buf.len)
        return wk_err_set(err, WK_E_LIMIT, "more than %zu bytes", c->cap);
    return wk_buf_append(&c->buf, p, n, err);
}

/* The entry names Python's zipfile finds in zip (none when it cannot read
 * it), one per line, into names. */
static void zip_names(const struct wk_buf *zip, char *names, size_t cap)
{
    char path[] = "/tmp/wk-zcat-XXXXXX";
    int fd = mkstemp(path);
    FILE *f;
    size_t n;
    char cmd[512];

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, zip->data, zip->len), (ssize_t)zip->len);
    close(fd);
    snprintf(
        cmd, sizeof(cmd),
        "python3 -c 'import sys, zipfile\n"
        "try:\n"
        "    print(\"\\n\".join(zipfile.ZipFile(sys.argv[1]).namelist()))\n"
        "except Exception:\n"
        "    pass' '%s'",
        path);
    f = popen(cmd, "r");
    ck_assert_ptr_nonnull(f);
    n = fread(names, 1, cap - 1, f);
    names[n] = '\0';
    pclose(f);
    unlink(path);
}

/* Every archive of tests/make_hostile_zip.py (the unarchive's corpus), each
 * of its entries read with cat: never a crash, a hang or output beyond
 * what the caller allows; the good ones read, the bad ones end in a clear
 * corrupt, not found, or a refused name. */
START_TEST(test_zcat_hostile_archives)
{
    static const char *const good[] = { "good", "stream", "zip64",
                                        "zip64_stream", "rootfiles" };
    static const char *const bad_crc[] = { "badcrc", "badcrc_stored" };
    char kinds[4096], names[16384], *ks = NULL;
    FILE *f;
    size_t nk = 0, nread = 0, n;
    struct store *hs;
    struct wk_err err;

    f = popen("python3 tests/make_hostile_zip.py --list", "r");
    ck_assert_ptr_nonnull(f);
    n = fread(kinds, 1, sizeof(kinds) - 1, f);
    kinds[n] = '\0';
    ck_assert_int_eq(pclose(f), 0);
    wk_err_clear(&err);
    ck_assert_int_eq(store_mem_new(&hs, &err), WK_OK);
    for (char *k = strtok_r(kinds, "\n", &ks); k;
         k = strtok_r(NULL, "\n", &ks)) {
        struct wk_buf zip;
        char *ns = NULL;
        bool is_good = false, is_badcrc = false, saw_crc = false;
        if (!ut_hostile_zip(k, NULL, &zip)) {
            wk_buf_release(&zip);
            continue;
        }
        nk++;
        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
            is_good |= strcmp(k, good[i]) == 0;
        for (size_t i = 0; i < sizeof(bad_crc) / sizeof(bad_crc[0]); i++)
            is_badcrc |= strcmp(k, bad_crc[i]) == 0;
        zip_names(&zip, names, sizeof(names));
        ck_assert_int_eq(store_put(hs, ZIP_KEY, zip.data, zip.len, &err),
                         WK_OK);
        for (char *name = strtok_r(names, "\n", &ns); name;
             name = strtok_r(NULL, "\n", &ns)) {
            struct capped c;
            enum wk_code rc;
            wk_buf_init(&c.buf, 16u * MIB);
            c.cap = 16u * MIB;
            wk_err_clear(&err);
            rc = zcat_read(hs, ZIP_KEY, zip.len, NULL, name, sink_capped, &c,
                           NULL, &err);
            nread++;
            ck_assert_msg(
                rc == WK_OK || rc == WK_E_CORRUPT || rc == WK_E_NOTFOUND ||
                    rc == WK_E_INVAL || rc == WK_E_LIMIT,
                "%s '%s': %s: %s", k, name, wk_code_name(rc), err.msg);
            ck_assert_uint_le(c.buf.len, c.cap);
            if (is_good)
                ck_assert_msg(rc == WK_OK, "%s '%s': %s", k, name, err.msg);
            saw_crc |= rc == WK_E_CORRUPT && strstr(err.msg, "CRC");
            wk_buf_release(&c.buf);
        }
        /* the entry with the bad CRC is caught, when read to its end */
        ck_assert_msg(!is_badcrc || saw_crc, "%s: no CRC error", k);
        wk_buf_release(&zip);
    }
    ck_assert_uint_ge(nk, 30);
    ck_assert_uint_ge(nread, 60);
    store_free(hs);
}
END_TEST

Suite *zcat_suite(void)
{
    Suite *s = suite_create("zcat");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_zcat_reads_deflated_entry);
    tcase_add_test(tc, test_zcat_reads_stored_entry);
    tcase_add_test(tc, test_zcat_reads_empty_entry);
    tcase_add_test(tc, test_zcat_reads_utf8_name_in_c_locale);
    tcase_add_test(tc, test_zcat_reads_first_entry_in_one_round_trip);
    tcase_add_test(tc, test_zcat_reads_last_entry);
    tcase_add_test(tc, test_zcat_reads_every_entry);
    tcase_add_test(tc, test_zcat_big_entry_blocks_grow);
    tcase_add_test(tc, test_zcat_bytes_do_not_depend_on_archive_size);
    tcase_add_test(tc, test_zcat_lookup_costs_one_small_read_per_entry_before);
    tcase_add_test(tc, test_zcat_zip64_entry_count);
    tcase_add_test(tc, test_zcat_missing_name_not_found);
    tcase_add_test(tc, test_zcat_bad_names_refused);
    tcase_add_test(tc, test_zcat_crc_mismatch_is_corrupt);
    tcase_add_test(tc, test_zcat_corrupt_deflate_is_corrupt);
    tcase_add_test(tc, test_zcat_sink_error_stops);
    tcase_add_test(tc, test_zcat_store_failure_propagates);
    tcase_add_test(tc, test_zcat_missing_archive_not_found);
    tcase_add_test(tc, test_zcat_not_a_zip_is_corrupt);
    tcase_add_test(tc, test_zcat_wrong_size_fails);
    tcase_add_test(tc, test_zcat_small_archive_read_whole);
    tcase_add_test(tc, test_zcat_hostile_archives);
    suite_add_tcase(s, tc);
    return s;
}
