#include <errno.h>
#include <locale.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "common/wk_buf.h"
#include "common/wk_err.h"
#include "zip/zipr.h"
#include "zip/zipw.h"
#include "storage/store.h"
#include "storage/store_hash.h"
#include "tests/unit/suites.h"
#include "tests/unit/unit_util.h"

#define ZIP_MAX_BYTES ((size_t)64 << 20)
#define MAX_GOT       16

/* Roomy limits: nothing legitimate in these tests comes near them. */
static const struct zipr_limits roomy = { (uint64_t)1 << 30, 1000, 1000,
                                          (uint64_t)1 << 20 };

/* Piece patterns for the source: the whole archive at once, and odd small
 * pieces that put every boundary somewhere awkward. */
static const size_t whole[] = { SIZE_MAX };
static const size_t odd[] = { 1, 7, 4096, 3, 65536 + 13 };

/* ---- an archive in memory, handed out in pieces ---- */

struct msrc {
    const unsigned char *data; /* borrowed */
    size_t len;
    size_t off;
    const size_t *pieces; /* sizes, used in turn */
    size_t n_pieces;
    size_t k;
    size_t fail_at; /* fail once off reaches this; 0 = never */
    unsigned calls_after_end;
    bool ended;
};

static enum wk_code msrc_read(void *ud, const void **p, size_t *n,
                              struct wk_err *err)
{
    struct msrc *s = ud;
    size_t want = s->pieces[s->k++ % s->n_pieces];

    *p = NULL;
    *n = 0;
    if (s->ended)
        s->calls_after_end++;
    if (s->fail_at && s->off >= s->fail_at)
        return wk_err_set(err, WK_E_NET, "GET 'a.zip' bytes=%zu-: timed out",
                          s->off);
    if (want > s->len - s->off)
        want = s->len - s->off;
    *p = s->data + s->off;
    *n = want;
    s->off += want;
    if (want == 0)
        s->ended = true;
    return WK_OK;
}

static void msrc_init(struct msrc *s, const void *zip, size_t len,
                      const size_t *pieces, size_t n_pieces)
{
    memset(s, 0, sizeof(*s));
    s->data = zip;
    s->len = len;
    s->pieces = pieces;
    s->n_pieces = n_pieces;
}

/* ---- everything zipr handed out ---- */

struct got_entry {
    char *name;
    struct wk_buf data;
    uint64_t size;
    time_t mtime;
};

struct got {
    struct got_entry e[MAX_GOT];
    size_t n;
    uint64_t total;
    bool eof;
};

static void got_release(struct got *g)
{
    for (size_t i = 0; i < g->n; i++) {
        free(g->e[i].name);
        wk_buf_release(&g->e[i].data);
    }
    memset(g, 0, sizeof(*g));
}

/* The size authority the next reads get (zipr_set_declared), or NULL. */
static zipr_declared_cb g_decl;
static void *g_decl_ud;

/* Read the whole archive through zipr, in reads of odd sizes. */
static enum wk_code read_with(struct msrc *s, const struct zipr_limits *lim,
                              struct got *g, struct wk_err *err)
{
    static const size_t reads[] = { 1000, 1, 333, 70000 };
    unsigned char *buf = malloc(70000);
    struct zipr *zr = NULL;
    size_t r = 0;
    enum wk_code rc;

    ck_assert_ptr_nonnull(buf);
    memset(g, 0, sizeof(*g));
    rc = zipr_new(msrc_read, s, lim, &zr, err);
    if (rc == WK_OK && g_decl)
        zipr_set_declared(zr, g_decl, g_decl_ud);
    while (rc == WK_OK) {
        struct zipr_entry e;
        struct got_entry *ge;
        bool eof = true;
        size_t n;

        rc = zipr_next(zr, &e, &eof, err);
        if (rc != WK_OK)
            break;
        if (eof) {
            g->eof = true;
            break;
        }
        ck_assert_uint_lt(g->n, MAX_GOT);
        ge = &g->e[g->n++];
        ge->name = strdup(e.name);
        ge->size = e.size;
        ge->mtime = e.mtime;
        wk_buf_init(&ge->data, ZIP_MAX_BYTES);
        do {
            rc = zipr_read(zr, buf, reads[r++ % 4], &n, err);
            if (rc == WK_OK && n > 0)
                ck_assert_int_eq(wk_buf_append(&ge->data, buf, n, NULL), WK_OK);
        } while (rc == WK_OK && n > 0);
    }
    if (zr)
        g->total = zipr_total_bytes(zr);
    zipr_free(zr);
    free(buf);
    return rc;
}

static enum wk_code read_zip(const struct wk_buf *zip,
                             const struct zipr_limits *lim,
                             const size_t *pieces, size_t n_pieces,
                             struct got *g, struct wk_err *err)
{
    struct msrc s;

    msrc_init(&s, zip->data, zip->len, pieces, n_pieces);
    return read_with(&s, lim, g, err);
}

/* ---- archives from the hostile-zip script ---- */

/* The kind is refused as corrupt with exactly msg, whatever the pieces. */
static void expect_refused(const char *kind, const char *args,
                           const struct zipr_limits *lim, const char *msg)
{
    struct wk_buf zip;
    struct got g;
    struct wk_err err;

    ck_assert(ut_hostile_zip(kind, args, &zip));
    for (int pass = 0; pass < 2; pass++) {
        wk_err_clear(&err);
        ck_assert_int_eq(
            read_zip(&zip, lim, pass ? odd : whole, pass ? 5 : 1, &g, &err),
            WK_E_CORRUPT);
        ck_assert_str_eq(err.msg, msg);
        got_release(&g);
    }
    wk_buf_release(&zip);
}

/* ---- archives from our writer ---- */

struct buf_writer {
    struct store_writer base;
    struct wk_buf *b; /* borrowed */
};

static enum wk_code buf_write(struct store_writer *w, const void *p, size_t n,
                              struct wk_err *err)
{
    struct buf_writer *bw = (struct buf_writer *)w;
    return wk_buf_append(bw->b, p, n, err);
}

static enum wk_code buf_commit(struct store_writer *w, struct wk_err *err)
{
    (void)w;
    (void)err;
    return WK_OK;
}

static void buf_free(struct store_writer *w)
{
    (void)w;
}

static const struct store_writer_ops buf_ops = { "buf", buf_write, buf_commit,
                                                 buf_free };

struct tentry {
    const char *name;
    const unsigned char *data; /* borrowed */
    size_t len;
    int store;
};

static unsigned char *text_data, *random_data, *pk_data;
#define TEXT_BYTES   (300 * 1024)
#define RANDOM_BYTES (150 * 1024)
#define PK_BYTES     (20 * 1024)

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
    static const char line[] = "[12,\"5f1c2a3b4d5e6f708192a3b4c5d6e7f8\","
                               "\"text\",\"a message in a Sila space\"]\n";
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
    /* Data descriptor signatures all over a stored entry. */
    fill_random(pk_data, PK_BYTES, 42);
    for (size_t i = 0; i + 16 <= PK_BYTES; i += 97)
        memcpy(pk_data + i, "PK\007\010", 4);
}

static void teardown(void)
{
    g_decl = NULL;
    g_decl_ud = NULL;
    free(text_data);
    free(random_data);
    free(pk_data);
}

/* Our writer's archive of entries t[0..n) into zip. */
static unsigned long crc32_of(const unsigned char *p, size_t n)
{
    return crc32(crc32(0L, Z_NULL, 0), p, (uInt)n);
}

static void write_zip(const struct tentry *t, size_t n, int level,
                      struct wk_buf *zip)
{
    struct buf_writer w = { { &buf_ops, 0 }, zip };
    struct zipw_opts opts = { .level = level };
    struct zipw *zw = NULL;
    struct wk_err err;

    wk_buf_init(zip, ZIP_MAX_BYTES);
    wk_err_clear(&err);
    ck_assert_int_eq(zipw_new(&w.base, &opts, &zw, &err), WK_OK);
    for (size_t i = 0; i < n; i++) {
        size_t half = t[i].len / 2;
        /* stored as the archive job stores: CRC-32 known up front */
        ck_assert_msg(
            (t[i].store
                 ? zipw_entry_begin_stored(
                       zw, t[i].name, t[i].len, 1700000000 + (time_t)i,
                       zipw_crc32(0, t[i].data, t[i].len), &err)
                 : zipw_entry_begin(zw, t[i].name, t[i].len,
                                    1700000000 + (time_t)i, 0, &err)) == WK_OK,
            "%s", err.msg);
        ck_assert_int_eq(zipw_entry_write(zw, t[i].data, half, &err), WK_OK);
        ck_assert_int_eq(
            zipw_entry_write(zw, t[i].data + half, t[i].len - half, &err),
            WK_OK);
        ck_assert_int_eq(zipw_entry_end(zw, &err), WK_OK);
    }
    ck_assert_int_eq(zipw_finish(zw, &err), WK_OK);
    zipw_free(zw);
}

static const char utf8_name[] =
    "space-v1/n\xc3\xa4me/\xe6\x97\xa5\xe6\x9c\xac-\xc3\xa9.txt";

static size_t roundtrip_entries(struct tentry *t)
{
    size_t n = 0;

    t[n++] = (struct tentry){ "sila.md", text_data, 94, 0 };
    t[n++] = (struct tentry){ "space-v1/space.json", text_data, 41, 1 };
    t[n++] = (struct tentry){ "space-v1/ops/0a/1b/2024/05/01/p-p.jsonl",
                              text_data, TEXT_BYTES, 0 };
    t[n++] = (struct tentry){ "space-v1/files/static/sha256/ab/cd", random_data,
                              RANDOM_BYTES, 1 };
    t[n++] = (struct tentry){ "space-v1/random.z", random_data, 70000, 0 };
    t[n++] = (struct tentry){ "space-v1/empty.z", text_data, 0, 0 };
    t[n++] = (struct tentry){ "space-v1/empty.stored", text_data, 0, 1 };
    t[n++] = (struct tentry){ utf8_name, text_data, 1000, 0 };
    t[n++] = (struct tentry){ "space-v1/pk.stored", pk_data, PK_BYTES, 1 };
    t[n++] = (struct tentry){ "space-v1/last", text_data, 5, 1 };
    return n;
}

static void check_roundtrip(const struct wk_buf *zip, const struct tentry *t,
                            size_t n, const size_t *pieces, size_t n_pieces)
{
    struct got g;
    struct wk_err err;
    uint64_t total = 0;

    wk_err_clear(&err);
    ck_assert_msg(read_zip(zip, &roomy, pieces, n_pieces, &g, &err) == WK_OK,
                  "%s", err.msg);
    ck_assert(g.eof);
    ck_assert_uint_eq(g.n, n);
    for (size_t i = 0; i < n; i++) {
        ck_assert_str_eq(g.e[i].name, t[i].name);
        /* with a data descriptor (deflated entries), a size of 0 in the
         * header means "not declared"; stored ones have none */
        ck_assert_uint_eq(g.e[i].size,
                          t[i].len || t[i].store ? t[i].len : UINT64_MAX);
        ck_assert_int_eq(g.e[i].mtime, 1700000000 + (time_t)i);
        ck_assert_uint_eq(g.e[i].data.len, t[i].len);
        ck_assert(t[i].len == 0 ||
                  memcmp(g.e[i].data.data, t[i].data, t[i].len) == 0);
        total += t[i].len;
    }
    ck_assert_uint_eq(g.total, total);
    got_release(&g);
}

/* ---- round trips ---- */

START_TEST(test_zipr_roundtrip_our_writer)
{
    struct tentry t[16];
    size_t n = roundtrip_entries(t);
    static const size_t ones[] = { 1 };
    static const size_t page[] = { 4096 };
    struct wk_buf zip;

    /* the worker's locale, where libarchive cannot convert non-ASCII
     * names */
    ck_assert_ptr_nonnull(setlocale(LC_CTYPE, "C"));
    write_zip(t, n, 6, &zip);
    check_roundtrip(&zip, t, n, whole, 1);
    check_roundtrip(&zip, t, n, ones, 1);
    check_roundtrip(&zip, t, n, page, 1);
    check_roundtrip(&zip, t, n, odd, 5);
    wk_buf_release(&zip);
}
END_TEST

START_TEST(test_zipr_roundtrip_level0_stores_everything)
{
    struct tentry t[16];
    size_t n = roundtrip_entries(t);
    struct wk_buf zip;

    write_zip(t, n, 0, &zip);
    check_roundtrip(&zip, t, n, whole, 1);
    check_roundtrip(&zip, t, n, odd, 5);
    wk_buf_release(&zip);
}
END_TEST

START_TEST(test_zipr_roundtrip_same_in_utf8_locale)
{
    struct tentry t[16];
    size_t n = roundtrip_entries(t);
    struct wk_buf zip;

    write_zip(t, n, 6, &zip);
    ck_assert_ptr_nonnull(setlocale(LC_CTYPE, "C.UTF-8"));
    check_roundtrip(&zip, t, n, odd, 5);
    setlocale(LC_CTYPE, "C");
    wk_buf_release(&zip);
}
END_TEST

START_TEST(test_zipr_empty_archive)
{
    struct wk_buf zip;
    struct got g;
    struct wk_err err;

    write_zip(NULL, 0, 6, &zip);
    wk_err_clear(&err);
    ck_assert_int_eq(read_zip(&zip, &roomy, whole, 1, &g, &err), WK_OK);
    ck_assert(g.eof);
    ck_assert_uint_eq(g.n, 0);
    got_release(&g);
    wk_buf_release(&zip);
}
END_TEST

/* The reader pulls the archive to its last byte (the caller hashes it),
 * and stops asking once the source said "end". */
START_TEST(test_zipr_reads_to_the_end_then_stops)
{
    struct tentry t[16];
    size_t n = roundtrip_entries(t);
    struct wk_buf zip;
    struct msrc s;
    struct got g;
    struct wk_err err;

    write_zip(t, n, 6, &zip);
    msrc_init(&s, zip.data, zip.len, odd, 5);
    wk_err_clear(&err);
    ck_assert_int_eq(read_with(&s, &roomy, &g, &err), WK_OK);
    ck_assert_uint_eq(s.off, zip.len);
    ck_assert(s.ended);
    ck_assert_uint_eq(s.calls_after_end, 0);
    got_release(&g);
    wk_buf_release(&zip);
}
END_TEST

START_TEST(test_zipr_good_space_from_python)
{
    static const char *kinds[] = { "good", "stream", "zip64", "zip64_stream" };

    for (size_t k = 0; k < 4; k++) {
        struct wk_buf zip;
        struct got g;
        struct wk_err err;

        ck_assert(ut_hostile_zip(kinds[k], NULL, &zip));
        for (int pass = 0; pass < 2; pass++) {
            wk_err_clear(&err);
            ck_assert_msg(read_zip(&zip, &roomy, pass ? odd : whole,
                                   pass ? 5 : 1, &g, &err) == WK_OK,
                          "%s: %s", kinds[k], err.msg);
            ck_assert(g.eof);
            ck_assert_uint_eq(g.n, 4);
            ck_assert_str_eq(g.e[0].name, "sila.md");
            ck_assert_str_eq(g.e[1].name, "space-v1/space.json");
            ck_assert_uint_eq(g.e[1].data.len, 41);
            ck_assert(memcmp(g.e[1].data.data,
                             "{\"id\":\"5f1c2a3b4d5e6f708192a3b4c5d6e7f8\"}",
                             41) == 0);
            ck_assert_int_eq(g.e[1].mtime, 1714564800); /* 2024-05-01 12:00 */
            /* the CAS blob is named by its SHA-256 */
            {
                const char *nm = g.e[3].name;
                const char *pre = "space-v1/files/static/sha256/";
                char hex[65], want[65];

                ck_assert(strncmp(nm, pre, strlen(pre)) == 0);
                nm += strlen(pre);
                memcpy(want, nm, 2);
                memcpy(want + 2, nm + 3, 62);
                want[64] = '\0';
                store_sha256_hex(g.e[3].data.data, g.e[3].data.len, hex);
                ck_assert_str_eq(hex, want);
            }
            got_release(&g);
        }
        wk_buf_release(&zip);
    }
}
END_TEST

/* What earlier versions archived: files outside sila.md and space-v1/
 * read back by name and content. */
START_TEST(test_zipr_root_files_from_python)
{
    static const struct {
        const char *name, *data;
        size_t len;
    } want[] = {
        { "notes.txt", "my notes\n", 9 },
        { ".DS_Store", "\0\0\0\001Bud1", 8 },
        { ".cache/x", "", 0 },
        { "a b+c%d~e.txt", "odd but safe\n", 13 },
    };
    struct wk_buf zip;
    struct got g;
    struct wk_err err;

    ck_assert(ut_hostile_zip("rootfiles", NULL, &zip));
    wk_err_clear(&err);
    ck_assert_msg(read_zip(&zip, &roomy, whole, 1, &g, &err) == WK_OK, "%s",
                  err.msg);
    ck_assert(g.eof);
    ck_assert_uint_eq(g.n, 8);
    for (size_t i = 0; i < 4; i++) {
        ck_assert_str_eq(g.e[4 + i].name, want[i].name);
        ck_assert_uint_eq(g.e[4 + i].data.len, want[i].len);
        ck_assert(want[i].len == 0 ||
                  memcmp(g.e[4 + i].data.data, want[i].data, want[i].len) == 0);
    }
    got_release(&g);
    wk_buf_release(&zip);
}
END_TEST

/* ---- names ---- */

START_TEST(test_zipr_name_valid)
{
    static const struct {
        const char *name;
        const char *why; /* NULL: valid */
    } cases[] = {
        { "sila.md", NULL },
        { "space-v1/space.json", NULL },
        { "space-v1/files/static/sha256/ab/cdef", NULL },
        { "space-v1/n\xc3\xa4me \xe6\x97\xa5.txt", NULL },
        { "space-v1/..a/b..", NULL },
        { "space-v1/.hidden", NULL },
        /* anywhere in the space: no layout rule (an archived space with a
         * .DS_Store must restore) */
        { "space-v1", NULL },
        { "sila.md/x", NULL },
        { "SILA.md", NULL },
        { "etc/passwd", NULL },
        { ".DS_Store", NULL },
        { "notes.txt", NULL },
        { ".cache/x", NULL },
        { "a b+c%20d~e", NULL },
        { "caf\xc3\xa9", NULL },  /* NFC */
        { "cafe\xcc\x81", NULL }, /* NFD: another name, also fine */
        { "...", NULL },
        { "a/.b/..c", NULL },
        { "", "empty name" },
        { "/etc/passwd", "absolute path" },
        { "/space-v1/a", "absolute path" },
        { "space-v1/../etc", "'..' component" },
        { "../space-v1/a", "'..' component" },
        { "space-v1/./a", "'.' component" },
        { "space-v1//a", "empty component" },
        { "space-v1/a/", "trailing '/'" },
        { "space-v1/", "trailing '/'" },
        { "/", "absolute path" },
        { "a//b", "empty component" },
        { "a/../b", "'..' component" },
        { "a/..", "'..' component" },
        { ".", "'.' component" },
        { "a\\b", "backslash in name" },
        { "a\tb", "control character in name" },
        { "a\rb", "control character in name" },
        { "space-v1\\a", "backslash in name" },
        { "space-v1/a\\..\\b", "backslash in name" },
        { "space-v1/a\nb", "control character in name" },
        { "space-v1/a\x7f", "control character in name" },
        { "space-v1/a\xc2\x85", "control character in name" },
        { "space-v1/a\xff", "name is not valid UTF-8" },
        { "space-v1/\xc0\xaf", "name is not valid UTF-8" },
        { "space-v1/\xed\xa0\x80", "name is not valid UTF-8" },
        { "space-v1/\xe6\x97", "name is not valid UTF-8" },
    };
    char why[64];
    char long_name[1100];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool ok;

        why[0] = '\0';
        ok = zipr_name_valid(cases[i].name, why, sizeof(why));
        if (!cases[i].why) {
            ck_assert_msg(ok, "'%s' refused: %s", cases[i].name, why);
        } else {
            ck_assert_msg(!ok, "'%s' accepted", cases[i].name);
            ck_assert_str_eq(why, cases[i].why);
        }
    }
    ck_assert(!zipr_name_valid("..", NULL, 0));
    memcpy(long_name, "space-v1/", 9);
    memset(long_name + 9, 'a', 1024 - 9);
    long_name[1024] = '\0';
    ck_assert(zipr_name_valid(long_name, why, sizeof(why)));
    long_name[1024] = 'a';
    long_name[1025] = '\0';
    ck_assert(!zipr_name_valid(long_name, why, sizeof(why)));
    ck_assert_str_eq(why, "name too long");
}
END_TEST

/* ---- hostile archives: one behaviour each ---- */

START_TEST(test_zipr_refuses_absolute_name)
{
    expect_refused("absolute", NULL, &roomy,
                   "entry '/etc/passwd': absolute path");
}
END_TEST

START_TEST(test_zipr_refuses_dotdot)
{
    expect_refused("dotdot", NULL, &roomy,
                   "entry 'space-v1/../../etc/passwd': '..' component");
}
END_TEST

/* libarchive would hand this out as "space-v1/../../evil" */
START_TEST(test_zipr_refuses_backslash)
{
    expect_refused("backslash", NULL, &roomy,
                   "entry 'space-v1\\..\\..\\evil': backslash in name");
}
END_TEST

/* libarchive would hand this out as "space-v1/ok.txt" */
START_TEST(test_zipr_refuses_nul_in_name)
{
    expect_refused("nul", NULL, &roomy,
                   "entry 'space-v1/ok.txt?/../../evil': NUL byte in name");
}
END_TEST

START_TEST(test_zipr_refuses_control_character)
{
    expect_refused("control", NULL, &roomy,
                   "entry 'space-v1/a?[31mred': control character in name");
}
END_TEST

START_TEST(test_zipr_refuses_empty_component)
{
    expect_refused("emptycomp", NULL, &roomy,
                   "entry 'space-v1//a': empty component");
}
END_TEST

START_TEST(test_zipr_refuses_invalid_utf8)
{
    expect_refused("badutf8", NULL, &roomy,
                   "entry 'space-v1/a?b': name is not valid UTF-8");
}
END_TEST

/* Only the central directory says "symlink": found at the end. */
START_TEST(test_zipr_refuses_symlink)
{
    expect_refused("symlink", NULL, &roomy,
                   "entry 'space-v1/link': symbolic link");
}
END_TEST

/* The local header says "symlink" too: found before any data. */
START_TEST(test_zipr_refuses_symlink_in_local_header)
{
    expect_refused("symlink_xl", NULL, &roomy,
                   "entry 'space-v1/link': symbolic link");
}
END_TEST

START_TEST(test_zipr_hardlink_cannot_be_expressed)
{
    struct wk_buf zip;

    ck_assert(!ut_hostile_zip("hardlink", NULL, &zip));
    wk_buf_release(&zip);
}
END_TEST

START_TEST(test_zipr_refuses_device)
{
    expect_refused("device", NULL, &roomy, "entry 'space-v1/dev': device");
}
END_TEST

START_TEST(test_zipr_refuses_directory)
{
    expect_refused("directory", NULL, &roomy,
                   "entry 'space-v1/dir/': directory");
}
END_TEST

START_TEST(test_zipr_refuses_duplicate)
{
    expect_refused("duplicate", NULL, &roomy,
                   "entry 'space-v1/a': duplicate name");
}
END_TEST

START_TEST(test_zipr_refuses_bomb)
{
    static const struct zipr_limits lim = { (uint64_t)1 << 30, 10, 100,
                                            (uint64_t)1 << 20 };
    static const char pre[] = "entry 'space-v1/bomb': expands ";
    static const char post[] = ":1 (zip bomb?)";
    struct wk_buf zip;
    struct got g;
    struct wk_err err;

    ck_assert(ut_hostile_zip("bomb", NULL, &zip));
    for (int pass = 0; pass < 2; pass++) {
        size_t len;

        wk_err_clear(&err);
        ck_assert_int_eq(
            read_zip(&zip, &lim, pass ? odd : whole, pass ? 5 : 1, &g, &err),
            WK_E_CORRUPT);
        len = strlen(err.msg);
        ck_assert_msg(strncmp(err.msg, pre, strlen(pre)) == 0 &&
                          len > strlen(post) &&
                          strcmp(err.msg + len - strlen(post), post) == 0,
                      "%s", err.msg);
        ck_assert_int_ge(strtol(err.msg + strlen(pre), NULL, 10), 100);
        /* stopped soon after ratio_min_bytes, long before 50 MiB */
        ck_assert_uint_lt(g.total, 2u << 20);
        got_release(&g);
    }
    wk_buf_release(&zip);
}
END_TEST

/* Compressible data under ratio_min_bytes is fine, and so is stored
 * data, which cannot expand. */
START_TEST(test_zipr_ratio_only_past_min_bytes)
{
    static const struct zipr_limits lim = { (uint64_t)1 << 30, 10, 2,
                                            (uint64_t)TEXT_BYTES };
    static const struct zipr_limits stored_lim = { (uint64_t)1 << 30, 10, 1,
                                                   0 };
    struct tentry t[1] = { { "space-v1/text", NULL, TEXT_BYTES, 0 } };
    struct wk_buf zip;
    struct got g;
    struct wk_err err;

    t[0].data = text_data;
    write_zip(t, 1, 6, &zip);
    wk_err_clear(&err);
    ck_assert_int_eq(read_zip(&zip, &lim, whole, 1, &g, &err), WK_OK);
    got_release(&g);
    wk_buf_release(&zip);

    t[0].store = 1;
    write_zip(t, 1, 6, &zip);
    ck_assert_int_eq(read_zip(&zip, &stored_lim, odd, 5, &g, &err), WK_OK);
    got_release(&g);
    wk_buf_release(&zip);
}
END_TEST

/* ---- the central directory as the authority for sizes ---- */

#define ZEROS_BYTES (4u * 1024u * 1024u)

/* What a pre-read central directory would say, per entry index. */
struct decl {
    uint64_t usize[4];
    uint32_t crc[4];
    size_t n;
    unsigned calls;
};

static bool decl_cb(void *ud, uint64_t index, uint64_t *usize, uint32_t *crc)
{
    struct decl *d = ud;
    d->calls++;
    if (index >= d->n)
        return false;
    *usize = d->usize[index];
    *crc = d->crc[index];
    return true;
}

/* The real declaration of our own writer's archive t (from its records). */
static void decl_of(const struct tentry *t, size_t n, struct decl *d)
{
    memset(d, 0, sizeof(*d));
    for (size_t i = 0; i < n; i++) {
        d->usize[i] = t[i].len;
        d->crc[i] = (uint32_t)crc32_of(t[i].data, t[i].len);
    }
    d->n = n;
}

/* 4 MiB of zeros at deflate level 9 expand past 1000:1: refused as a bomb
 * by the ratio limit without authority (a foreign archive), restored with
 * the central directory's declaration. */
START_TEST(test_zipr_declared_size_lifts_ratio)
{
    static const struct zipr_limits lim = { (uint64_t)1 << 30, 10, 1000,
                                            (uint64_t)1 << 20 };
    unsigned char *zeros = calloc(1, ZEROS_BYTES);
    struct tentry t[2] = { { "space-v1/zeros", NULL, ZEROS_BYTES, 0 },
                           { "space-v1/text", NULL, TEXT_BYTES, 0 } };
    struct decl d;
    struct wk_buf zip;
    struct got g;
    struct wk_err err;

    ck_assert_ptr_nonnull(zeros);
    t[0].data = zeros;
    t[1].data = text_data;
    write_zip(t, 2, 9, &zip);
    wk_err_clear(&err);
    ck_assert_int_eq(read_zip(&zip, &lim, whole, 1, &g, &err), WK_E_CORRUPT);
    ck_assert_msg(strstr(err.msg, "entry 'space-v1/zeros': expands ") &&
                      strstr(err.msg, "(zip bomb?)"),
                  "%s", err.msg);
    got_release(&g);

    decl_of(t, 2, &d);
    g_decl = decl_cb;
    g_decl_ud = &d;
    for (int pass = 0; pass < 2; pass++) {
        wk_err_clear(&err);
        ck_assert_msg(read_zip(&zip, &lim, pass ? odd : whole, pass ? 5 : 1, &g,
                               &err) == WK_OK,
                      "%s", err.msg);
        ck_assert(g.eof);
        ck_assert_uint_eq(g.n, 2);
        ck_assert_uint_eq(g.e[0].data.len, ZEROS_BYTES);
        ck_assert_int_eq(memcmp(g.e[0].data.data, zeros, ZEROS_BYTES), 0);
        ck_assert_uint_eq(g.e[0].size, ZEROS_BYTES);
        got_release(&g);
    }
    ck_assert_uint_ge(d.calls, 4);
    wk_buf_release(&zip);
    free(zeros);
}
END_TEST

/* With authority the size must be exact: a declaration the entry does not
 * match is refused, before any data for a header that disagrees. */
START_TEST(test_zipr_declared_size_must_match)
{
    static const struct zipr_limits lim = { (uint64_t)1 << 30, 10, 1000,
                                            (uint64_t)1 << 20 };
    struct tentry t[1] = { { "space-v1/text", NULL, TEXT_BYTES, 0 } };
    struct decl d;
    struct wk_buf zip;
    struct got g;
    struct wk_err err;
    char want[160];

    t[0].data = text_data;
    write_zip(t, 1, 9, &zip);
    decl_of(t, 1, &d);
    d.usize[0] = TEXT_BYTES - 1;
    g_decl = decl_cb;
    g_decl_ud = &d;
    wk_err_clear(&err);
    ck_assert_int_eq(read_zip(&zip, &lim, odd, 5, &g, &err), WK_E_CORRUPT);
    snprintf(want, sizeof(want),
             "entry 'space-v1/text': central directory disagrees with the "
             "local header (%u bytes, the header %u)",
             (unsigned)TEXT_BYTES - 1, (unsigned)TEXT_BYTES);
    ck_assert_str_eq(err.msg, want);
    ck_assert_uint_eq(g.n, 0);
    got_release(&g);
    wk_buf_release(&zip);
}
END_TEST

START_TEST(test_zipr_declared_crc_must_match)
{
    static const struct zipr_limits lim = { (uint64_t)1 << 30, 10, 1000,
                                            (uint64_t)1 << 20 };
    struct tentry t[1] = { { "space-v1/text", NULL, TEXT_BYTES, 0 } };
    struct decl d;
    struct wk_buf zip;
    struct got g;
    struct wk_err err;

    t[0].data = text_data;
    write_zip(t, 1, 1, &zip);
    decl_of(t, 1, &d);
    d.crc[0] ^= 1;
    g_decl = decl_cb;
    g_decl_ud = &d;
    wk_err_clear(&err);
    ck_assert_int_eq(read_zip(&zip, &lim, whole, 1, &g, &err), WK_E_CORRUPT);
    ck_assert_msg(strstr(err.msg, "entry 'space-v1/text': CRC-32 ") &&
                      strstr(err.msg, "its central directory declares"),
                  "%s", err.msg);
    got_release(&g);
    wk_buf_release(&zip);
}
END_TEST

/* An entry without a declaration (index past it) keeps the ratio limit. */
START_TEST(test_zipr_undeclared_entry_keeps_ratio)
{
    static const struct zipr_limits lim = { (uint64_t)1 << 30, 10, 1000,
                                            (uint64_t)1 << 20 };
    unsigned char *zeros = calloc(1, ZEROS_BYTES);
    struct tentry t[2] = { { "space-v1/text", NULL, TEXT_BYTES, 0 },
                           { "space-v1/zeros", NULL, ZEROS_BYTES, 0 } };
    struct decl d;
    struct wk_buf zip;
    struct got g;
    struct wk_err err;

    ck_assert_ptr_nonnull(zeros);
    t[0].data = text_data;
    t[1].data = zeros;
    write_zip(t, 2, 9, &zip);
    decl_of(t, 1, &d); /* only the first entry */
    g_decl = decl_cb;
    g_decl_ud = &d;
    wk_err_clear(&err);
    ck_assert_int_eq(read_zip(&zip, &lim, whole, 1, &g, &err), WK_E_CORRUPT);
    ck_assert_msg(strstr(err.msg, "entry 'space-v1/zeros': expands "), "%s",
                  err.msg);
    got_release(&g);
    wk_buf_release(&zip);
    free(zeros);
}
END_TEST

START_TEST(test_zipr_refuses_more_than_max_total)
{
    static const struct zipr_limits lim = { (uint64_t)1 << 20, 10, 100,
                                            (uint64_t)1 << 20 };

    expect_refused("oversize", "--max 1048576", &lim,
                   "archive holds more than 1048576 bytes, the manifest's "
                   "uncompressedSize");
}
END_TEST

START_TEST(test_zipr_total_may_reach_max_exactly)
{
    struct tentry t[2] = { { "space-v1/a", NULL, 1000, 0 },
                           { "space-v1/b", NULL, 2000, 1 } };
    struct zipr_limits lim = { 3000, 2, 100, 1 << 20 };
    struct wk_buf zip;
    struct got g;
    struct wk_err err;

    t[0].data = t[1].data = random_data;
    write_zip(t, 2, 6, &zip);
    wk_err_clear(&err);
    ck_assert_int_eq(read_zip(&zip, &lim, odd, 5, &g, &err), WK_OK);
    ck_assert_uint_eq(g.total, 3000);
    got_release(&g);
    lim.max_total_bytes = 2999;
    ck_assert_int_eq(read_zip(&zip, &lim, odd, 5, &g, &err), WK_E_CORRUPT);
    ck_assert_str_eq(err.msg, "archive holds more than 2999 bytes, the "
                              "manifest's uncompressedSize");
    got_release(&g);
    wk_buf_release(&zip);
}
END_TEST

START_TEST(test_zipr_refuses_more_than_max_entries)
{
    struct tentry t[3] = { { "space-v1/a", NULL, 10, 0 },
                           { "space-v1/b", NULL, 10, 0 },
                           { "space-v1/c", NULL, 10, 0 } };
    struct zipr_limits lim = roomy;
    struct wk_buf zip;
    struct got g;
    struct wk_err err;

    t[0].data = t[1].data = t[2].data = text_data;
    write_zip(t, 3, 6, &zip);
    lim.max_entries = 3;
    wk_err_clear(&err);
    ck_assert_int_eq(read_zip(&zip, &lim, whole, 1, &g, &err), WK_OK);
    got_release(&g);
    lim.max_entries = 2;
    ck_assert_int_eq(read_zip(&zip, &lim, whole, 1, &g, &err), WK_E_CORRUPT);
    ck_assert_str_eq(err.msg, "archive has more than 2 entries");
    ck_assert_uint_eq(g.n, 2);
    got_release(&g);
    wk_buf_release(&zip);
}
END_TEST

START_TEST(test_zipr_refuses_truncated)
{
    expect_refused("truncated", NULL, &roomy,
                   "archive is truncated or corrupt: entry 'space-v1/big': "
                   "ZIP decompression failed (-5)");
}
END_TEST

/* Every prefix of a good archive is refused, never read as complete. */
START_TEST(test_zipr_every_truncation_refused)
{
    struct tentry t[4] = { { "sila.md", NULL, 94, 0 },
                           { "space-v1/s", NULL, 300, 1 },
                           { "space-v1/e", NULL, 0, 1 },
                           { "space-v1/z", NULL, 2000, 0 } };
    static const size_t pieces[] = { 5 };
    struct wk_buf zip, cut;
    struct got g;
    struct wk_err err;

    t[0].data = t[2].data = text_data;
    t[1].data = t[3].data = random_data;
    write_zip(t, 4, 6, &zip);
    for (size_t len = 0; len < zip.len; len++) {
        cut = zip;
        cut.len = len;
        wk_err_clear(&err);
        ck_assert_msg(read_zip(&cut, &roomy, len % 2 ? whole : pieces, 1, &g,
                               &err) == WK_E_CORRUPT,
                      "cut at %zu of %zu: %s", len, zip.len, err.msg);
        ck_assert_msg(
            strncmp(err.msg, "archive is truncated or corrupt: ", 33) == 0,
            "cut at %zu: %s", len, err.msg);
        got_release(&g);
    }
    wk_buf_release(&zip);
}
END_TEST

START_TEST(test_zipr_refuses_corrupt_deflate)
{
    struct wk_buf zip;
    struct got g;
    struct wk_err err;

    ck_assert(ut_hostile_zip("corrupt", NULL, &zip));
    wk_err_clear(&err);
    ck_assert_int_eq(read_zip(&zip, &roomy, odd, 5, &g, &err), WK_E_CORRUPT);
    /* how it shows depends on the damage: bad data, size or CRC */
    ck_assert_msg(strstr(err.msg, "entry 'space-v1/big': "), "%s", err.msg);
    got_release(&g);
    wk_buf_release(&zip);
}
END_TEST

START_TEST(test_zipr_refuses_bad_crc)
{
    expect_refused("badcrc", NULL, &roomy,
                   "archive is truncated or corrupt: entry 'space-v1/crc': "
                   "ZIP bad CRC: 0xcaecf016 should be 0xcaecf017");
}
END_TEST

/* Stored + data descriptor with a wrong CRC and no size in the header:
 * libarchive reads on to the end looking for a matching descriptor. */
START_TEST(test_zipr_refuses_bad_crc_stored_descriptor)
{
    expect_refused("badcrc_stored", NULL, &roomy,
                   "archive is truncated or corrupt: entry 'space-v1/crc': "
                   "Truncated ZIP file data");
}
END_TEST

/* The local header of our writer's entry `name`. */
static size_t find_local(const struct wk_buf *zip, const char *name)
{
    const unsigned char *z = (const unsigned char *)zip->data;
    size_t nl = strlen(name);

    for (size_t i = 0; i + 30 + nl <= zip->len; i++)
        if (memcmp(z + i, "PK\003\004", 4) == 0 && z[i + 26] == nl &&
            z[i + 27] == 0 && memcmp(z + i + 30, name, nl) == 0)
            return i;
    ck_abort_msg("entry '%s' not found", name);
    return 0;
}

/* Our writer's stored entries carry CRC-32 and size in the local header
 * (no data descriptor): a wrong CRC there is refused at the entry's end,
 * never read past its declared size. */
START_TEST(test_zipr_bad_crc_stored_stops_at_declared_size)
{
    struct tentry t[2] = { { "space-v1/s", NULL, 5000, 1 },
                           { "space-v1/next", NULL, 100000, 1 } };
    struct wk_buf zip;
    struct got g;
    struct wk_err err;
    size_t h;

    t[0].data = t[1].data = random_data;
    write_zip(t, 2, 6, &zip);
    h = find_local(&zip, "space-v1/s");
    ck_assert_uint_eq((unsigned char)zip.data[h + 6] & 8, 0); /* no bit 3 */
    zip.data[h + 14] ^= 1;
    wk_err_clear(&err);
    ck_assert_int_eq(read_zip(&zip, &roomy, odd, 5, &g, &err), WK_E_CORRUPT);
    ck_assert_msg(strstr(err.msg, "entry 'space-v1/s'") &&
                      strstr(err.msg, "CRC"),
                  "%s", err.msg);
    ck_assert_uint_le(g.total, 5000);
    got_release(&g);
    wk_buf_release(&zip);
}
END_TEST

/* Content that holds a valid-looking data descriptor for its own first
 * bytes ended libarchive's scan of a stored entry early when stored
 * entries had descriptors; with the size in the local header it is just
 * data: read whole. */
START_TEST(test_zipr_stored_fake_descriptor_is_data)
{
    struct tentry t[1] = { { "space-v1/f", NULL, 4000, 1 } };
    unsigned char *data = malloc(4000);
    struct wk_buf zip;
    struct got g;
    struct wk_err err;
    uint32_t crc;

    ck_assert_ptr_nonnull(data);
    memcpy(data, random_data, 4000);
    /* CRC-32 of the first 1000 bytes, then "PK\7\8" crc 1000 1000 */
    crc = 0xffffffffu;
    for (size_t i = 0; i < 1000; i++) {
        crc ^= data[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1)));
    }
    crc ^= 0xffffffffu;
    memcpy(data + 1000, "PK\007\010", 4);
    for (int k = 0; k < 4; k++) {
        data[1004 + k] = (unsigned char)(crc >> (8 * k));
        data[1008 + k] = (unsigned char)(1000 >> (8 * k));
        data[1012 + k] = (unsigned char)(1000 >> (8 * k));
    }
    t[0].data = data;
    write_zip(t, 1, 6, &zip);
    wk_err_clear(&err);
    ck_assert_msg(read_zip(&zip, &roomy, whole, 1, &g, &err) == WK_OK, "%s",
                  err.msg);
    ck_assert_uint_eq(g.total, 4000);
    got_release(&g);
    wk_buf_release(&zip);
    free(data);
}
END_TEST

START_TEST(test_zipr_refuses_central_directory_mismatch)
{
    expect_refused("cdname", NULL, &roomy,
                   "archive is truncated or corrupt: the central directory "
                   "lists 'space-v1/b' but the archive has no such entry");
}
END_TEST

START_TEST(test_zipr_refuses_central_directory_crc_mismatch)
{
    struct tentry t[1] = { { "space-v1/a", NULL, 100, 0 } };
    struct wk_buf zip;
    struct got g;
    struct wk_err err;
    unsigned char *z;
    size_t i;

    t[0].data = text_data;
    write_zip(t, 1, 6, &zip);
    z = (unsigned char *)zip.data;
    for (i = 0; i + 4 <= zip.len; i++)
        if (memcmp(z + i, "PK\001\002", 4) == 0)
            break;
    ck_assert_uint_lt(i + 46, zip.len);
    z[i + 16] ^= 1;
    wk_err_clear(&err);
    ck_assert_int_eq(read_zip(&zip, &roomy, odd, 5, &g, &err), WK_E_CORRUPT);
    ck_assert_str_eq(err.msg, "entry 'space-v1/a': central directory "
                              "disagrees with the local header");
    got_release(&g);
    wk_buf_release(&zip);
}
END_TEST

/* libarchive skips junk between entries; we do not. */
START_TEST(test_zipr_refuses_junk_between_entries)
{
    expect_refused("gap", NULL, &roomy,
                   "archive is truncated or corrupt: unexpected data at "
                   "offset 44, where an entry should start");
}
END_TEST

START_TEST(test_zipr_refuses_trailing_data)
{
    expect_refused("trailing", NULL, &roomy,
                   "archive is truncated or corrupt: data after the end of "
                   "the archive (offset 122)");
}
END_TEST

START_TEST(test_zipr_refuses_encrypted)
{
    expect_refused("encrypted", NULL, &roomy, "entry 'space-v1/a': encrypted");
}
END_TEST

START_TEST(test_zipr_refuses_other_compression)
{
    expect_refused("method", NULL, &roomy,
                   "entry 'space-v1/a': compression method 12 is not "
                   "supported");
}
END_TEST

/* ---- ZIP64 edge cases and overlapping entries ---- */

/* The locator must point at the ZIP64 end record that precedes it. */
START_TEST(test_zipr_refuses_zip64_locator_outside_file)
{
    expect_refused(
        "z64_locator_outside", NULL, &roomy,
        "archive is truncated or corrupt: the ZIP64 end locator points to "
        "offset 1099511627776, the ZIP64 end record is at 11353");
}
END_TEST

START_TEST(test_zipr_refuses_zip64_locator_at_garbage)
{
    expect_refused(
        "z64_locator_garbage", NULL, &roomy,
        "archive is truncated or corrupt: the ZIP64 end locator points to "
        "offset 0, the ZIP64 end record is at 11353");
}
END_TEST

START_TEST(test_zipr_refuses_zip64_end_record_count)
{
    expect_refused(
        "z64_eocd_count", NULL, &roomy,
        "archive is truncated or corrupt: the ZIP64 end record says 5 "
        "entries, the central directory has 4");
}
END_TEST

START_TEST(test_zipr_refuses_zip64_end_record_cd_size)
{
    expect_refused(
        "z64_eocd_size", NULL, &roomy,
        "archive is truncated or corrupt: the ZIP64 end record says the "
        "central directory is 560 bytes at offset 10839, it is 514 "
        "bytes at offset 10839");
}
END_TEST

/* The central directory said to start over the entries. */
START_TEST(test_zipr_refuses_zip64_end_record_cd_offset)
{
    expect_refused(
        "z64_eocd_offset", NULL, &roomy,
        "archive is truncated or corrupt: the ZIP64 end record says the "
        "central directory is 514 bytes at offset 0, it is 514 "
        "bytes at offset 10839");
}
END_TEST

START_TEST(test_zipr_refuses_zip64_extra_too_short)
{
    expect_refused(
        "z64_extra_short", NULL, &roomy,
        "archive is truncated or corrupt: header at offset 0: Malformed "
        "64-bit compressed size");
}
END_TEST

START_TEST(test_zipr_refuses_zip64_extra_overrun)
{
    expect_refused(
        "z64_extra_overrun", NULL, &roomy,
        "archive is truncated or corrupt: header at offset 0: Extra data "
        "overflow: Need 24 bytes but only found 16 bytes");
}
END_TEST

/* libarchive refuses a size past INT64_MAX in the header already. */
START_TEST(test_zipr_refuses_zip64_size_2_63)
{
    expect_refused(
        "z64_huge", NULL, &roomy,
        "archive is truncated or corrupt: header at offset 0: Malformed "
        "64-bit uncompressed size");
}
END_TEST

/* A stored entry declaring 2^62 bytes would swallow the rest of the
 * archive as its data: it ends truncated, and nothing comes after it. */
START_TEST(test_zipr_refuses_zip64_huge_stored_size)
{
    expect_refused("z64_huge_stored", NULL, &roomy,
                   "archive is truncated or corrupt: entry 'space-v1/huge': "
                   "Truncated ZIP file data");
}
END_TEST

/* The central directory's ZIP64 sizes are checked against what the entry
 * really held, not only the 32-bit fields. */
START_TEST(test_zipr_refuses_zip64_sizes_disagree)
{
    expect_refused(
        "z64_cd_disagrees", NULL, &roomy,
        "entry 'sila.md': central directory disagrees with the local "
        "header");
}
END_TEST

/* 0xFFFFFFFF sizes with no ZIP64 extra field are taken literally. */
START_TEST(test_zipr_refuses_size_sentinel_without_zip64)
{
    expect_refused("sentinel", NULL, &roomy,
                   "archive is truncated or corrupt: entry 'sila.md': ZIP "
                   "compressed data is wrong size (read 78, expected "
                   "4294967295)");
}
END_TEST

/* David Fifield's overlapping-files bomb: 5 x 4 MiB out of 4 KiB. */
START_TEST(test_zipr_refuses_overlapping_entries)
{
    expect_refused(
        "overlap", NULL, &roomy,
        "archive is truncated or corrupt: the central directory's entry "
        "'space-v1/bomb-1' at offset 50 overlaps entry "
        "'space-v1/bomb-0' (overlapping entries: zip bomb?)");
}
END_TEST

START_TEST(test_zipr_refuses_non_zip)
{
    struct wk_buf zip;
    struct got g;
    struct wk_err err;

    wk_buf_init(&zip, 1024);
    ck_assert_int_eq(wk_buf_appends(&zip, "not a zip at all", NULL), WK_OK);
    wk_err_clear(&err);
    ck_assert_int_eq(read_zip(&zip, &roomy, whole, 1, &g, &err), WK_E_CORRUPT);
    ck_assert_str_eq(err.msg, "archive is truncated or corrupt: Unrecognized "
                              "archive format");
    got_release(&g);
    wk_buf_release(&zip);
}
END_TEST

/* An unread entry is still read to its end and checked (CRC, limits). */
START_TEST(test_zipr_skipped_entry_still_checked)
{
    struct wk_buf zip;
    struct msrc s;
    struct zipr *zr = NULL;
    struct zipr_entry e;
    struct wk_err err;
    bool eof;

    ck_assert(ut_hostile_zip("badcrc", NULL, &zip));
    msrc_init(&s, zip.data, zip.len, odd, 5);
    wk_err_clear(&err);
    ck_assert_int_eq(zipr_new(msrc_read, &s, &roomy, &zr, &err), WK_OK);
    ck_assert_int_eq(zipr_next(zr, &e, &eof, &err), WK_OK);
    ck_assert(!eof);
    ck_assert_int_eq(zipr_next(zr, &e, &eof, &err), WK_E_CORRUPT);
    ck_assert_ptr_nonnull(strstr(err.msg, "ZIP bad CRC"));
    zipr_free(zr);
    wk_buf_release(&zip);
}
END_TEST

START_TEST(test_zipr_skipping_entries_counts_their_bytes)
{
    struct tentry t[16];
    size_t n = roundtrip_entries(t), want = 0;
    struct wk_buf zip;
    struct msrc s;
    struct zipr *zr = NULL;
    struct zipr_entry e;
    struct wk_err err;
    bool eof = false;
    size_t seen = 0;

    for (size_t i = 0; i < n; i++)
        want += t[i].len;
    write_zip(t, n, 6, &zip);
    msrc_init(&s, zip.data, zip.len, odd, 5);
    wk_err_clear(&err);
    ck_assert_int_eq(zipr_new(msrc_read, &s, &roomy, &zr, &err), WK_OK);
    while (!eof) {
        ck_assert_int_eq(zipr_next(zr, &e, &eof, &err), WK_OK);
        seen += !eof;
    }
    ck_assert_uint_eq(seen, n);
    ck_assert_uint_eq(zipr_total_bytes(zr), want);
    /* eof again is still eof */
    ck_assert_int_eq(zipr_next(zr, &e, &eof, &err), WK_OK);
    ck_assert(eof);
    zipr_free(zr);
    wk_buf_release(&zip);
}
END_TEST

/* A failing source is the source's error (maybe transient), not corrupt. */
START_TEST(test_zipr_read_error_propagates)
{
    struct tentry t[16];
    size_t n = roundtrip_entries(t);
    struct wk_buf zip;
    struct msrc s;
    struct got g;
    struct wk_err err;

    write_zip(t, n, 6, &zip);
    for (size_t at = 1; at < zip.len; at += zip.len / 7) {
        msrc_init(&s, zip.data, zip.len, odd, 5);
        s.fail_at = at;
        wk_err_clear(&err);
        ck_assert_int_eq(read_with(&s, &roomy, &g, &err), WK_E_NET);
        ck_assert_msg(strncmp(err.msg, "GET 'a.zip' bytes=", 18) == 0, "%s",
                      err.msg);
        got_release(&g);
    }
    wk_buf_release(&zip);
}
END_TEST

START_TEST(test_zipr_misuse_is_internal)
{
    struct tentry t[1] = { { "space-v1/a", NULL, 10, 0 } };
    struct zipr_limits bad = roomy;
    struct wk_buf zip;
    struct msrc s;
    struct zipr *zr = NULL;
    struct zipr_entry e;
    struct wk_err err;
    unsigned char buf[16];
    size_t n;
    bool eof;

    t[0].data = text_data;
    write_zip(t, 1, 6, &zip);
    msrc_init(&s, zip.data, zip.len, whole, 1);
    wk_err_clear(&err);
    bad.max_ratio = 0;
    ck_assert_int_eq(zipr_new(msrc_read, &s, &bad, &zr, &err), WK_E_INVAL);
    ck_assert_str_eq(err.msg, "zip reader: max_ratio must be at least 1");
    ck_assert_ptr_null(zr);

    wk_err_clear(&err);
    ck_assert_int_eq(zipr_new(msrc_read, &s, &roomy, &zr, &err), WK_OK);
    ck_assert_int_eq(zipr_read(zr, buf, sizeof(buf), &n, &err), WK_E_INTERNAL);
    ck_assert_str_eq(err.msg, "zip read: no entry is open");
    wk_err_clear(&err);
    ck_assert_int_eq(zipr_next(zr, &e, &eof, &err), WK_E_INTERNAL);
    ck_assert_str_eq(err.msg, "zip next: zip reader used after an error");
    zipr_free(zr);
    zipr_free(NULL);
    wk_buf_release(&zip);
}
END_TEST

/* ---- ZIP64 from our writer, through a pipe (no disk) ---- */

#define BIG_BYTES ((4ULL << 30) + 12345)

struct pipe_writer {
    struct store_writer base;
    int fd;
};

static enum wk_code pipe_write(struct store_writer *w, const void *p, size_t n,
                               struct wk_err *err)
{
    struct pipe_writer *pw = (struct pipe_writer *)w;
    const char *c = p;

    while (n > 0) {
        ssize_t k = write(pw->fd, c, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return wk_err_sys(err, WK_E_IO, errno, "write to pipe");
        c += k;
        n -= (size_t)k;
    }
    return WK_OK;
}

static const struct store_writer_ops pipe_ops = { "pipe", pipe_write,
                                                  buf_commit, buf_free };

struct zip64_writer {
    int fd;
    const unsigned char *pat; /* borrowed: the repeating block */
    unsigned long crc;        /* of the big entry's data, as written */
    enum wk_code rc;
    struct wk_err err;
};

/* The big entry's data: a 1 MiB block of pseudo-random bytes, repeated
 * (so a byte read at the wrong offset shows), BIG_BYTES in all. */
#define PAT_BYTES (1u << 20)

/* A stored entry over 4 GiB, then one whose local header is past 4 GiB
 * (so the central directory has ZIP64 fields and the end has the ZIP64
 * end record). Stored: no deflate cost, nothing but a pipe. */
static void *zip64_write(void *arg)
{
    struct zip64_writer *zw64 = arg;
    struct pipe_writer pw = { { &pipe_ops, 0 }, zw64->fd };
    struct zipw_opts opts = { .level = 0, .no_hash = true };
    struct zipw *zw = NULL;
    enum wk_code rc;

    zw64->crc = crc32(0L, Z_NULL, 0);
    rc = zipw_new(&pw.base, &opts, &zw, &zw64->err);
    if (rc == WK_OK)
        rc = zipw_entry_begin(zw, "big.bin", BIG_BYTES, 0, 1, &zw64->err);
    for (uint64_t left = BIG_BYTES; left > 0 && rc == WK_OK;) {
        size_t n = left < PAT_BYTES ? (size_t)left : PAT_BYTES;
        rc = zipw_entry_write(zw, zw64->pat, n, &zw64->err);
        zw64->crc = crc32(zw64->crc, zw64->pat, (uInt)n);
        left -= n;
    }
    if (rc == WK_OK)
        rc = zipw_entry_end(zw, &zw64->err);
    if (rc == WK_OK)
        rc = zipw_entry_begin(zw, "after.txt", 5, 0, 0, &zw64->err);
    if (rc == WK_OK)
        rc = zipw_entry_write(zw, "after", 5, &zw64->err);
    if (rc == WK_OK)
        rc = zipw_entry_end(zw, &zw64->err);
    if (rc == WK_OK)
        rc = zipw_finish(zw, &zw64->err);
    zipw_free(zw);
    close(zw64->fd);
    zw64->rc = rc;
    return NULL;
}

/* Reads the pipe, keeping the last bytes seen (the end records). */
struct fd_src {
    int fd;
    uint64_t total;
    unsigned char tail[8192];
    size_t tail_len;
    unsigned char buf[65536];
};

static enum wk_code fd_read(void *ud, const void **p, size_t *n,
                            struct wk_err *err)
{
    struct fd_src *s = ud;
    ssize_t k;
    size_t keep, add;

    do {
        k = read(s->fd, s->buf, sizeof(s->buf));
    } while (k < 0 && errno == EINTR);
    if (k < 0)
        return wk_err_sys(err, WK_E_IO, errno, "read from pipe");
    add = (size_t)k < sizeof(s->tail) ? (size_t)k : sizeof(s->tail);
    keep = sizeof(s->tail) - add < s->tail_len ? sizeof(s->tail) - add
                                               : s->tail_len;
    memmove(s->tail, s->tail + s->tail_len - keep, keep);
    memcpy(s->tail + keep, s->buf + (size_t)k - add, add);
    s->tail_len = keep + add;
    s->total += (uint64_t)k;
    *p = s->buf;
    *n = (size_t)k;
    return WK_OK;
}

static bool has_sig(const unsigned char *p, size_t n, const char *sig)
{
    for (size_t i = 0; i + 4 <= n; i++)
        if (memcmp(p + i, sig, 4) == 0)
            return true;
    return false;
}

/* One entry over 4 GiB streamed from our writer through a pipe into the
 * reader (no 4 GiB buffer, no file): every byte at its offset, the size,
 * the CRC (libarchive's check, and ours against the writer's), and the
 * ZIP64 end records in what came through. */
START_TEST(test_zipr_zip64_over_4gib_from_our_writer)
{
    static const struct zipr_limits lim = { 2 * BIG_BYTES, 3, 2000,
                                            (uint64_t)1 << 20 };
    struct zip64_writer zw64;
    struct fd_src *src = calloc(1, sizeof(*src));
    unsigned char *buf = malloc(1 << 20);
    unsigned char *pat = malloc(PAT_BYTES);
    struct zipr *zr = NULL;
    struct wk_err err;
    pthread_t th;
    int fds[2];
    size_t k = 0;
    bool eof = false;
    unsigned long crc = crc32(0L, Z_NULL, 0);
    uint32_t x = 2463534242u;

    ck_assert_ptr_nonnull(src);
    ck_assert_ptr_nonnull(buf);
    ck_assert_ptr_nonnull(pat);
    for (size_t i = 0; i < PAT_BYTES; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        pat[i] = (unsigned char)x;
    }
    ck_assert_int_eq(pipe(fds), 0);
    memset(&zw64, 0, sizeof(zw64));
    zw64.fd = fds[1];
    zw64.pat = pat;
    src->fd = fds[0];
    ck_assert_int_eq(pthread_create(&th, NULL, zip64_write, &zw64), 0);
    wk_err_clear(&err);
    ck_assert_int_eq(zipr_new(fd_read, src, &lim, &zr, &err), WK_OK);
    for (;;) {
        static const char *const names[] = { "big.bin", "after.txt" };
        struct zipr_entry e;
        uint64_t got = 0;
        size_t n;

        ck_assert_msg(zipr_next(zr, &e, &eof, &err) == WK_OK, "%s", err.msg);
        if (eof)
            break;
        ck_assert_uint_lt(k, 2);
        ck_assert_str_eq(e.name, names[k]);
        do {
            ck_assert_msg(zipr_read(zr, buf, 1 << 20, &n, &err) == WK_OK, "%s",
                          err.msg);
            if (k == 0) {
                /* where this piece sits in the repeating block */
                size_t at = (size_t)(got % PAT_BYTES), done = 0;
                while (done < n) {
                    size_t m =
                        PAT_BYTES - at < n - done ? PAT_BYTES - at : n - done;
                    if (memcmp(buf + done, pat + at, m) != 0)
                        ck_abort_msg("big.bin differs near byte %llu",
                                     (unsigned long long)(got + done));
                    done += m;
                    at = 0;
                }
                crc = crc32(crc, buf, (uInt)n);
            } else if (n)
                ck_assert(n == 5 && memcmp(buf, "after", 5) == 0);
            got += n;
        } while (n > 0);
        ck_assert_uint_eq(e.size, k == 0 ? BIG_BYTES : 5);
        ck_assert_uint_eq(got, k == 0 ? BIG_BYTES : 5);
        k++;
    }
    ck_assert_uint_eq(k, 2);
    ck_assert_uint_eq(zipr_total_bytes(zr), BIG_BYTES + 5);
    zipr_free(zr);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_msg(zw64.rc == WK_OK, "%s", zw64.err.msg);
    ck_assert_uint_eq(crc, zw64.crc);
    ck_assert_uint_gt(src->total, (uint64_t)1 << 32);
    /* ZIP64 end of central directory record and its locator */
    ck_assert(has_sig(src->tail, src->tail_len, "PK\006\006"));
    ck_assert(has_sig(src->tail, src->tail_len, "PK\006\007"));
    close(fds[0]);
    free(src);
    free(buf);
    free(pat);
}
END_TEST

Suite *zipr_suite(void)
{
    Suite *s = suite_create("zipr");
    TCase *tc = tcase_create("core");
    TCase *hz = tcase_create("hostile");
    TCase *big = tcase_create("zip64");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_zipr_roundtrip_our_writer);
    tcase_add_test(tc, test_zipr_roundtrip_level0_stores_everything);
    tcase_add_test(tc, test_zipr_roundtrip_same_in_utf8_locale);
    tcase_add_test(tc, test_zipr_empty_archive);
    tcase_add_test(tc, test_zipr_reads_to_the_end_then_stops);
    tcase_add_test(tc, test_zipr_name_valid);
    tcase_add_test(tc, test_zipr_ratio_only_past_min_bytes);
    tcase_add_test(tc, test_zipr_declared_size_lifts_ratio);
    tcase_add_test(tc, test_zipr_declared_size_must_match);
    tcase_add_test(tc, test_zipr_declared_crc_must_match);
    tcase_add_test(tc, test_zipr_undeclared_entry_keeps_ratio);
    tcase_add_test(tc, test_zipr_total_may_reach_max_exactly);
    tcase_add_test(tc, test_zipr_refuses_more_than_max_entries);
    tcase_add_test(tc, test_zipr_every_truncation_refused);
    tcase_add_test(tc, test_zipr_bad_crc_stored_stops_at_declared_size);
    tcase_add_test(tc, test_zipr_stored_fake_descriptor_is_data);
    tcase_add_test(tc, test_zipr_refuses_central_directory_crc_mismatch);
    tcase_add_test(tc, test_zipr_refuses_non_zip);
    tcase_add_test(tc, test_zipr_skipping_entries_counts_their_bytes);
    tcase_add_test(tc, test_zipr_read_error_propagates);
    tcase_add_test(tc, test_zipr_misuse_is_internal);
    suite_add_tcase(s, tc);

    /* archives from tests/make_hostile_zip.py (python3) */
    tcase_add_checked_fixture(hz, setup, teardown);
    tcase_set_timeout(hz, 120);
    tcase_add_test(hz, test_zipr_good_space_from_python);
    tcase_add_test(hz, test_zipr_refuses_absolute_name);
    tcase_add_test(hz, test_zipr_refuses_dotdot);
    tcase_add_test(hz, test_zipr_refuses_backslash);
    tcase_add_test(hz, test_zipr_refuses_nul_in_name);
    tcase_add_test(hz, test_zipr_refuses_control_character);
    tcase_add_test(hz, test_zipr_refuses_empty_component);
    tcase_add_test(hz, test_zipr_refuses_invalid_utf8);
    tcase_add_test(hz, test_zipr_root_files_from_python);
    tcase_add_test(hz, test_zipr_refuses_symlink);
    tcase_add_test(hz, test_zipr_refuses_symlink_in_local_header);
    tcase_add_test(hz, test_zipr_hardlink_cannot_be_expressed);
    tcase_add_test(hz, test_zipr_refuses_device);
    tcase_add_test(hz, test_zipr_refuses_directory);
    tcase_add_test(hz, test_zipr_refuses_duplicate);
    tcase_add_test(hz, test_zipr_refuses_bomb);
    tcase_add_test(hz, test_zipr_refuses_more_than_max_total);
    tcase_add_test(hz, test_zipr_refuses_truncated);
    tcase_add_test(hz, test_zipr_refuses_corrupt_deflate);
    tcase_add_test(hz, test_zipr_refuses_bad_crc);
    tcase_add_test(hz, test_zipr_refuses_bad_crc_stored_descriptor);
    tcase_add_test(hz, test_zipr_refuses_central_directory_mismatch);
    tcase_add_test(hz, test_zipr_refuses_junk_between_entries);
    tcase_add_test(hz, test_zipr_refuses_trailing_data);
    tcase_add_test(hz, test_zipr_refuses_encrypted);
    tcase_add_test(hz, test_zipr_refuses_other_compression);
    tcase_add_test(hz, test_zipr_skipped_entry_still_checked);
    tcase_add_test(hz, test_zipr_refuses_zip64_locator_outside_file);
    tcase_add_test(hz, test_zipr_refuses_zip64_locator_at_garbage);
    tcase_add_test(hz, test_zipr_refuses_zip64_end_record_count);
    tcase_add_test(hz, test_zipr_refuses_zip64_end_record_cd_size);
    tcase_add_test(hz, test_zipr_refuses_zip64_end_record_cd_offset);
    tcase_add_test(hz, test_zipr_refuses_zip64_extra_too_short);
    tcase_add_test(hz, test_zipr_refuses_zip64_extra_overrun);
    tcase_add_test(hz, test_zipr_refuses_zip64_size_2_63);
    tcase_add_test(hz, test_zipr_refuses_zip64_huge_stored_size);
    tcase_add_test(hz, test_zipr_refuses_zip64_sizes_disagree);
    tcase_add_test(hz, test_zipr_refuses_size_sentinel_without_zip64);
    tcase_add_test(hz, test_zipr_refuses_overlapping_entries);
    suite_add_tcase(s, hz);

    tcase_set_timeout(big, 300);
    tcase_add_test(big, test_zipr_zip64_over_4gib_from_our_writer);
    suite_add_tcase(s, big);
    return s;
}
