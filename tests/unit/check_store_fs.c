#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/wk_buf.h"
#include "common/wk_err.h"
#include "storage/store.h"
#include "tests/unit/suites.h"
#include "tests/unit/unit_util.h"

static char root[64];
static struct store *st;
static struct wk_err err;

/* snprintf that must not truncate */
static void fmt2(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fmt2(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    ck_assert(n >= 0 && (size_t)n < len);
}

/* Every path under dir (files and directories), sorted, comma-separated. */
static void tree_into(const char *dir, const char *rel, struct wk_buf *b)
{
    struct dirent *de;
    char path[1024];
    DIR *d;
    char *names[256];
    size_t n = 0;

    fmt2(path, sizeof(path), "%s/%s", dir, rel);
    d = opendir(path);
    ck_assert_ptr_nonnull(d);
    while ((de = readdir(d)) != NULL && n < 256)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            names[n++] = strdup(de->d_name);
    closedir(d);
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    for (size_t i = 0; i < n; i++) {
        char sub[1024];
        struct stat sb;

        fmt2(sub, sizeof(sub), "%s%s", rel, names[i]);
        fmt2(path, sizeof(path), "%s/%s", dir, sub);
        ck_assert_int_eq(lstat(path, &sb), 0);
        if (b->len)
            wk_buf_appends(b, ",", NULL);
        wk_buf_appends(b, sub, NULL);
        if (S_ISDIR(sb.st_mode)) {
            wk_buf_appends(b, "/", NULL);
            fmt2(sub, sizeof(sub), "%s%s/", rel, names[i]);
            tree_into(dir, sub, b);
        }
        free(names[i]);
    }
}

static void check_tree(const char *want)
{
    struct wk_buf b;

    wk_buf_init(&b, 1 << 16);
    tree_into(root, "", &b);
    ck_assert_str_eq(wk_buf_cstr(&b), want);
    wk_buf_release(&b);
}

static void setup(void)
{
    snprintf(root, sizeof(root), "/tmp/wk-store-fs-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(root));
    wk_err_clear(&err);
    ck_assert_int_eq(store_fs_new(root, &st, &err), WK_OK);
}

static void teardown(void)
{
    store_free(st);
    st = NULL;
    ut_rm_tree(root);
}

static void put_str(const char *key, const char *s)
{
    struct wk_err e;
    wk_err_clear(&e);
    ck_assert_msg(store_put(st, key, s, strlen(s), &e) == WK_OK, "put %s: %s",
                  key, e.msg);
}

/* A file placed behind the store's back. */
static void make_file(const char *rel)
{
    char path[1024];
    FILE *f;

    fmt2(path, sizeof(path), "%s/%s", root, rel);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("junk", f);
    fclose(f);
}

static void mkdir_rel(const char *rel)
{
    char path[1024];

    fmt2(path, sizeof(path), "%s/%s", root, rel);
    ck_assert_int_eq(mkdir(path, 0777), 0);
}

/* "key:size" per object, "[key]" per prefix, comma-separated. */
static enum wk_code list_cb(const struct store_entry *e, void *ud,
                            struct wk_err *lerr)
{
    struct wk_buf *b = ud;

    ck_assert_ptr_nonnull(e->etag);
    if (b->len)
        wk_buf_appends(b, ",", lerr);
    if (e->is_prefix)
        return wk_buf_appendf(b, lerr, "[%s]", e->key);
    return wk_buf_appendf(b, lerr, "%s:%llu", e->key,
                          (unsigned long long)e->size);
}

static void check_list(const char *prefix, const char *delim, const char *want)
{
    struct wk_buf b;
    struct wk_err e;

    wk_err_clear(&e);
    wk_buf_init(&b, 1 << 16);
    ck_assert_msg(store_list(st, prefix, delim, list_cb, &b, &e) == WK_OK,
                  "list: %s", e.msg);
    ck_assert_str_eq(wk_buf_cstr(&b), want);
    wk_buf_release(&b);
}

static enum wk_code buf_sink(const void *p, size_t n, void *ud,
                             struct wk_err *serr)
{
    return wk_buf_append(ud, p, n, serr);
}

static void get_str(const char *key, uint64_t off, uint64_t len,
                    const char *want)
{
    struct wk_buf b;
    struct wk_err e;
    enum wk_code rc;

    wk_err_clear(&e);
    wk_buf_init(&b, 1 << 20);
    rc = store_get(st, key, off, len, buf_sink, &b, &e);
    ck_assert_msg(rc == WK_OK, "get %s: %s", key, e.msg);
    ck_assert_str_eq(wk_buf_cstr(&b), want);
    wk_buf_release(&b);
}

START_TEST(test_store_fs_put_get_head)
{
    struct store_stat ss, ss2;

    put_str("a/b/c.txt", "hello");
    ck_assert_int_eq(store_head(st, "a/b/c.txt", &ss, &err), WK_OK);
    ck_assert_uint_eq(ss.size, 5);
    ck_assert(ss.mtime > 0);
    ck_assert_ptr_nonnull(strchr(ss.etag, '-'));
    ck_assert(strncmp(ss.etag, "5-", 2) == 0);
    get_str("a/b/c.txt", 0, UINT64_MAX, "hello");
    put_str("a/b/c.txt", "bye");
    get_str("a/b/c.txt", 0, UINT64_MAX, "bye");
    ck_assert_int_eq(store_head(st, "a/b/c.txt", &ss2, &err), WK_OK);
    ck_assert_str_ne(ss.etag, ss2.etag);
    put_str("empty", "");
    get_str("empty", 0, UINT64_MAX, "");
    check_tree("a/,a/b/,a/b/c.txt,empty");
}
END_TEST

START_TEST(test_store_fs_missing_is_notfound)
{
    struct store_stat ss;
    struct wk_buf b;

    ck_assert_int_eq(store_head(st, "nope", &ss, &err), WK_E_NOTFOUND);
    ck_assert_str_eq(err.msg, "head 'nope': no such object");
    wk_err_clear(&err);
    wk_buf_init(&b, 100);
    ck_assert_int_eq(store_get_all(st, "x/nope", &b, &err), WK_E_NOTFOUND);
    ck_assert_str_eq(err.msg, "get 'x/nope': no such object");
    /* a directory is not an object */
    put_str("d/f", "1");
    wk_err_clear(&err);
    ck_assert_int_eq(store_head(st, "d", &ss, &err), WK_E_NOTFOUND);
    wk_err_clear(&err);
    ck_assert_int_eq(store_get_all(st, "d", &b, &err), WK_E_NOTFOUND);
    wk_buf_release(&b);
}
END_TEST

START_TEST(test_store_fs_new_needs_a_directory)
{
    struct store *s2 = NULL;
    char path[128];

    wk_err_clear(&err);
    fmt2(path, sizeof(path), "%s/missing", root);
    ck_assert_int_eq(store_fs_new(path, &s2, &err), WK_E_NOTFOUND);
    ck_assert_ptr_null(s2);
    put_str("file", "x");
    fmt2(path, sizeof(path), "%s/file", root);
    wk_err_clear(&err);
    ck_assert_int_eq(store_fs_new(path, &s2, &err), WK_E_INVAL);
    /* a trailing slash is fine */
    fmt2(path, sizeof(path), "%s/", root);
    wk_err_clear(&err);
    ck_assert_int_eq(store_fs_new(path, &s2, &err), WK_OK);
    ck_assert_int_eq(store_head(s2, "file", &(struct store_stat){ 0 }, &err),
                     WK_OK);
    store_free(s2);
}
END_TEST

START_TEST(test_store_fs_list_order)
{
    put_str("b", "1");
    put_str("a/b", "22");
    put_str("a-b", "333");
    put_str("a/c/d", "4444");
    put_str("\xc3\xa4", "5");
    put_str("A", "6");
    put_str("a0", "7");
    check_list("", NULL, "A:1,a-b:3,a/b:2,a/c/d:4,a0:1,b:1,\xc3\xa4:1");
    check_list("a/", NULL, "a/b:2,a/c/d:4");
    check_list("a", NULL, "a-b:3,a/b:2,a/c/d:4,a0:1");
    check_list("a/c", NULL, "a/c/d:4");
    check_list("zz", NULL, "");
    check_list("zz/", NULL, "");
    check_list("../", NULL, "");
}
END_TEST

START_TEST(test_store_fs_list_delimiter)
{
    put_str("active/s1/a.json", "1");
    put_str("active/s1/f/x", "1");
    put_str("active/s2/b", "1");
    put_str("active/s10/c", "1");
    put_str("active/top", "1");
    put_str("active-x", "1");
    /* a directory holding only a temporary file is no common prefix */
    mkdir_rel("active/s3");
    make_file("active/s3/y.partial.abc123");
    check_list("", "/", "active-x:1,[active/]");
    check_list("active/", "/",
               "[active/s1/],[active/s10/],[active/s2/],active/top:1");
    check_list("active/s1/", "/", "active/s1/a.json:1,[active/s1/f/]");
    check_list("active/s", "/", "[active/s1/],[active/s10/],[active/s2/]");
}
END_TEST

START_TEST(test_store_fs_list_other_delimiter)
{
    put_str("x/a-1", "1");
    put_str("x/a-2", "1");
    put_str("x/b", "1");
    put_str("x/c/d-e", "1");
    check_list("x/", "-", "[x/a-],x/b:1,[x/c/d-]");
    check_list("", "x", "[x]");
}
END_TEST

START_TEST(test_store_fs_list_skips_partial_files)
{
    size_t n = 9;

    put_str("s/a", "1");
    make_file("s/a.partial.Xy12z9");
    make_file("s/b.partial.q1w2e3");
    make_file("s/c.partial"); /* not ours: an ordinary object */
    check_list("s/", NULL, "s/a:1,s/c.partial:4");
    ck_assert_int_eq(store_count_pending(st, "s/", &n, &err), WK_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(store_count_pending(st, "s/b", &n, &err), WK_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(store_count_pending(st, "t/", &n, &err), WK_OK);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(store_abort_pending(st, "s/", &n, &err), WK_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(store_count_pending(st, "", &n, &err), WK_OK);
    ck_assert_uint_eq(n, 0);
    check_tree("s/,s/a,s/c.partial");
}
END_TEST

static void check_after(const char *prefix, const char *delim,
                        const char *after, const char *want)
{
    struct wk_buf b;
    struct wk_err e;

    wk_err_clear(&e);
    wk_buf_init(&b, 1 << 16);
    ck_assert_msg(store_list_after(st, prefix, delim, after, list_cb, &b, &e) ==
                      WK_OK,
                  "list: %s", e.msg);
    ck_assert_msg(strcmp(wk_buf_cstr(&b), want) == 0,
                  "after '%s' (delimiter %s): got '%s', want '%s'", after,
                  delim ? delim : "none", wk_buf_cstr(&b), want);
    wk_buf_release(&b);
}

static enum wk_code count_stop_cb(const struct store_entry *e, void *ud,
                                  struct wk_err *lerr)
{
    int *n = ud;
    (void)e;
    (void)lerr;
    return ++*n == 2 ? WK_E_LIMIT : WK_OK;
}

START_TEST(test_store_fs_list_after)
{
    int n = 0;

    put_str("active/a-b/x", "1");
    put_str("active/a/x", "1");
    put_str("active/a/y/z", "1");
    put_str("active/b/x", "1");
    put_str("active/c/x", "1");
    put_str("active/d", "1");
    put_str("top", "1");
    mkdir_rel("active/bb"); /* empty: never a prefix */
    mkdir_rel("active/bb/e");
    /* keys strictly greater, in key order; "" and NULL: everything */
    check_after("active/", NULL, "active/a/x",
                "active/a/y/z:1,active/b/x:1,active/c/x:1,active/d:1");
    check_after("active/", NULL, "",
                "active/a-b/x:1,active/a/x:1,active/a/y/z:1,active/b/x:1,"
                "active/c/x:1,active/d:1");
    check_after("active/", NULL, NULL,
                "active/a-b/x:1,active/a/x:1,active/a/y/z:1,active/b/x:1,"
                "active/c/x:1,active/d:1");
    check_after("active/", NULL, "active/d", "");
    check_after("active/", NULL, "b", "");
    /* before the prefix: the whole prefix */
    check_after("active/", NULL, "a",
                "active/a-b/x:1,active/a/x:1,active/a/y/z:1,active/b/x:1,"
                "active/c/x:1,active/d:1");
    /* common prefixes greater than start_after ("a-b/" < "a/") */
    check_after("active/", "/", "active/a-b/",
                "[active/a/],[active/b/],[active/c/],active/d:1");
    check_after("active/", "/", "active/a/",
                "[active/b/],[active/c/],active/d:1");
    /* inside a prefix: that prefix is not listed again */
    check_after("active/", "/", "active/a/x",
                "[active/b/],[active/c/],active/d:1");
    check_after("active/", "/", "active/c", "[active/c/],active/d:1");
    check_after("active/", "/", "active/c/", "active/d:1");
    check_after("", "/", "active/", "top:1");
    /* another delimiter: the same rule on the rolled-up listing */
    check_after("active/", "-", "active/a-",
                "active/a/x:1,active/a/y/z:1,active/b/x:1,active/c/x:1,"
                "active/d:1");
    /* a callback still stops it */
    ck_assert_int_eq(store_list_after(st, "active/", "/", "active/a-b/",
                                      count_stop_cb, &n, &err),
                     WK_E_LIMIT);
    ck_assert_int_eq(n, 2);
}
END_TEST

START_TEST(test_store_fs_get_range)
{
    struct wk_buf b;

    put_str("k", "0123456789");
    get_str("k", 0, 3, "012");
    get_str("k", 7, UINT64_MAX, "789");
    get_str("k", 7, 3, "789");
    get_str("k", 10, UINT64_MAX, "");
    get_str("k", 4, 0, "");
    wk_buf_init(&b, 100);
    ck_assert_int_eq(store_get(st, "k", 8, 3, buf_sink, &b, &err),
                     WK_E_CONFLICT);
    ck_assert_str_eq(err.msg, "get 'k': range 8+3 is past the end of the "
                              "object (10 bytes)");
    wk_buf_release(&b);
}
END_TEST

struct chunks {
    size_t calls;
    struct wk_buf data;
};

static enum wk_code chunk_sink(const void *p, size_t n, void *ud,
                               struct wk_err *serr)
{
    struct chunks *c = ud;
    ck_assert_uint_le(n, 64 * 1024);
    c->calls++;
    return wk_buf_append(&c->data, p, n, serr);
}

START_TEST(test_store_fs_get_streams_in_chunks)
{
    static char big[200000];
    struct chunks c = { 0, { 0 } };

    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)(i * 7);
    ck_assert_int_eq(store_put(st, "big", big, sizeof(big), &err), WK_OK);
    wk_buf_init(&c.data, sizeof(big));
    ck_assert_int_eq(store_get(st, "big", 0, UINT64_MAX, chunk_sink, &c, &err),
                     WK_OK);
    ck_assert_uint_eq(c.calls, 4);
    ck_assert_uint_eq(c.data.len, sizeof(big));
    ck_assert(memcmp(c.data.data, big, sizeof(big)) == 0);
    wk_buf_reset(&c.data);
    ck_assert_int_eq(store_get(st, "big", 70000, 100000, chunk_sink, &c, &err),
                     WK_OK);
    ck_assert_uint_eq(c.data.len, 100000);
    ck_assert(memcmp(c.data.data, big + 70000, 100000) == 0);
    wk_buf_release(&c.data);
}
END_TEST

START_TEST(test_store_fs_get_many_put_many)
{
    struct store_put puts[2] = { { "p/1", "one", 3, { 0 }, false, { 0 } },
                                 { "p/q/2", "two!", 4, { 0 }, false, { 0 } } };
    struct wk_buf b[3];
    struct store_get reqs[3];

    ck_assert_int_eq(store_put_many(st, puts, 2, &err), WK_OK);
    for (int i = 0; i < 3; i++)
        wk_buf_init(&b[i], 100);
    reqs[0] = (struct store_get){ "p/1", 0, 3, &b[0], { 0 }, NULL, NULL };
    reqs[1] = (struct store_get){ "p/q/2", 1, 2, &b[1], { 0 }, NULL, NULL };
    reqs[2] = (struct store_get){ "p/3", 0, 1, &b[2], { 0 }, NULL, NULL };
    ck_assert_int_eq(store_get_many(st, reqs, 2, &err), WK_OK);
    ck_assert_str_eq(wk_buf_cstr(&b[0]), "one");
    ck_assert_str_eq(wk_buf_cstr(&b[1]), "wo");
    ck_assert_int_eq(store_get_many(st, reqs, 3, &err), WK_E_NOTFOUND);
    ck_assert_int_eq(reqs[0].err.code, WK_OK);
    ck_assert_int_eq(reqs[2].err.code, WK_E_NOTFOUND);
    ck_assert_str_eq(err.msg, "get 'p/3': no such object");
    for (int i = 0; i < 3; i++)
        wk_buf_release(&b[i]);
}
END_TEST

START_TEST(test_store_fs_delete_many_prunes_directories)
{
    const char *keys[] = { "a/b/1", "a/b/c/2", "missing/x", "a/b/c" };
    size_t nd = 0;

    put_str("a/b/1", "1");
    put_str("a/b/c/2", "2");
    put_str("a/3", "3");
    ck_assert_int_eq(store_delete_many(st, keys, 4, &nd, &err), WK_OK);
    ck_assert_uint_eq(nd, 4);
    check_tree("a/,a/3");
    keys[0] = "a/3";
    ck_assert_int_eq(store_delete_many(st, keys, 1, &nd, &err), WK_OK);
    check_tree(""); /* the root itself stays */
    ck_assert_int_eq(access(root, F_OK), 0);
}
END_TEST

/* Conditional delete: only the version asked for; a rewrite of the same
 * size in the same clock tick is a new version too (a new inode). */
START_TEST(test_store_fs_delete_if_keeps_changed)
{
    const char *keys[] = { "d/1", "d/2", "d/missing" };
    char e1[80], e2[80];
    const char *etags[3] = { e1, e2, "1-2-3" };
    bool kept[3] = { true, true, true };
    struct store_stat sb;
    size_t nd = 0;

    put_str("d/1", "one");
    put_str("d/2", "two");
    ck_assert_int_eq(store_head(st, "d/1", &sb, &err), WK_OK);
    snprintf(e1, sizeof(e1), "%s", sb.etag);
    ck_assert_int_eq(store_head(st, "d/2", &sb, &err), WK_OK);
    snprintf(e2, sizeof(e2), "%s", sb.etag);
    put_str("d/2", "TWO"); /* same size, at once */
    ck_assert_int_eq(store_head(st, "d/2", &sb, &err), WK_OK);
    ck_assert_str_ne(sb.etag, e2);
    ck_assert_int_eq(store_delete_if(st, keys, etags, 3, &nd, kept, &err),
                     WK_OK);
    ck_assert_uint_eq(nd, 2); /* d/1, and d/missing (gone already) */
    ck_assert(!kept[0]);
    ck_assert(kept[1]);
    ck_assert(!kept[2]);
    check_tree("d/,d/2");
}
END_TEST

START_TEST(test_store_fs_atomic_put_leaves_no_temp_files)
{
    static char big[300000];

    memset(big, 'z', sizeof(big));
    ck_assert_int_eq(store_put(st, "x/y.bin", big, sizeof(big), &err), WK_OK);
    ck_assert_int_eq(store_put(st, "x/y.bin", "s", 1, &err), WK_OK);
    check_tree("x/,x/y.bin");
    get_str("x/y.bin", 0, UINT64_MAX, "s");
}
END_TEST

START_TEST(test_store_fs_put_failure_leaves_nothing)
{
    put_str("f", "file");
    /* "f" is a file, so "f/g" cannot be created */
    ck_assert_int_eq(store_put(st, "f/g", "x", 1, &err), WK_E_IO);
    ck_assert_ptr_nonnull(strstr(err.msg, "'f/g'"));
    ck_assert_int_eq(err.sys_errno, ENOTDIR);
    check_tree("f");
}
END_TEST

START_TEST(test_store_fs_writer_commit)
{
    struct store_writer *w = NULL;
    size_t n = 9;

    ck_assert_int_eq(store_open_write(st, "out/s/a.zip", NULL, &w, &err),
                     WK_OK);
    ck_assert_int_eq(store_writer_write(w, "abc", 3, &err), WK_OK);
    ck_assert_int_eq(store_writer_write(w, "def", 3, &err), WK_OK);
    ck_assert_uint_eq(w->written, 6);
    check_list("", NULL, ""); /* invisible until commit */
    ck_assert_int_eq(store_count_pending(st, "out/", &n, &err), WK_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(store_writer_commit(w, &err), WK_OK);
    store_writer_free(w);
    get_str("out/s/a.zip", 0, UINT64_MAX, "abcdef");
    ck_assert_int_eq(store_count_pending(st, "", &n, &err), WK_OK);
    ck_assert_uint_eq(n, 0);
    check_tree("out/,out/s/,out/s/a.zip");
}
END_TEST

START_TEST(test_store_fs_writer_free_discards)
{
    struct store_writer *w = NULL;

    ck_assert_int_eq(store_open_write(st, "out/s/a.zip", NULL, &w, &err),
                     WK_OK);
    ck_assert_int_eq(store_writer_write(w, "new", 3, &err), WK_OK);
    store_writer_free(w);
    check_tree(""); /* no object, no .partial, no directories */

    put_str("out/a.zip", "old");
    ck_assert_int_eq(store_open_write(st, "out/a.zip", NULL, &w, &err), WK_OK);
    ck_assert_int_eq(store_writer_write(w, "new", 3, &err), WK_OK);
    store_writer_free(w);
    get_str("out/a.zip", 0, UINT64_MAX, "old");
    check_tree("out/,out/a.zip");
}
END_TEST

START_TEST(test_store_fs_abort_pending_fails_commit)
{
    struct store_writer *w1 = NULL, *w2 = NULL;
    size_t n = 0;

    ck_assert_int_eq(store_open_write(st, "archived/s/x.zip", NULL, &w1, &err),
                     WK_OK);
    ck_assert_int_eq(store_open_write(st, "other/y.zip", NULL, &w2, &err),
                     WK_OK);
    ck_assert_int_eq(store_abort_pending(st, "archived/", &n, &err), WK_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(store_count_pending(st, "", &n, &err), WK_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(store_writer_commit(w1, &err), WK_E_NOTFOUND);
    ck_assert_str_eq(err.msg, "commit 'archived/s/x.zip': the upload was "
                              "aborted");
    store_writer_free(w1);
    store_writer_free(w2);
    check_tree("");
}
END_TEST

START_TEST(test_store_fs_invalid_keys_refused)
{
    static const char *const bad[] = {
        "",       "/abs",      "a//b",
        "a/../b", "./a",       "a/",
        "a\\b",   "../escape", "x/y.partial.abc123"
    };
    struct store_writer *w = NULL;
    struct store_stat ss;
    struct wk_buf b;
    size_t nd;

    wk_buf_init(&b, 100);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        wk_err_clear(&err);
        ck_assert_int_eq(store_put(st, bad[i], "x", 1, &err), WK_E_INVAL);
        wk_err_clear(&err);
        ck_assert_int_eq(store_head(st, bad[i], &ss, &err), WK_E_INVAL);
        wk_err_clear(&err);
        ck_assert_int_eq(store_get_all(st, bad[i], &b, &err), WK_E_INVAL);
        wk_err_clear(&err);
        ck_assert_int_eq(store_open_write(st, bad[i], NULL, &w, &err),
                         WK_E_INVAL);
        ck_assert_ptr_null(w);
        wk_err_clear(&err);
        ck_assert_int_eq(store_delete_many(st, &bad[i], 1, &nd, &err),
                         WK_E_INVAL);
        ck_assert_uint_eq(nd, 0);
    }
    wk_err_clear(&err);
    store_put(st, "../escape", "x", 1, &err);
    ck_assert_str_eq(err.msg, "put '../escape': invalid key");
    check_tree("");
    wk_buf_release(&b);
}
END_TEST

Suite *store_fs_suite(void)
{
    Suite *s = suite_create("store_fs");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_store_fs_put_get_head);
    tcase_add_test(tc, test_store_fs_missing_is_notfound);
    tcase_add_test(tc, test_store_fs_new_needs_a_directory);
    tcase_add_test(tc, test_store_fs_list_order);
    tcase_add_test(tc, test_store_fs_list_delimiter);
    tcase_add_test(tc, test_store_fs_list_other_delimiter);
    tcase_add_test(tc, test_store_fs_list_skips_partial_files);
    tcase_add_test(tc, test_store_fs_list_after);
    tcase_add_test(tc, test_store_fs_get_range);
    tcase_add_test(tc, test_store_fs_get_streams_in_chunks);
    tcase_add_test(tc, test_store_fs_get_many_put_many);
    tcase_add_test(tc, test_store_fs_delete_many_prunes_directories);
    tcase_add_test(tc, test_store_fs_delete_if_keeps_changed);
    tcase_add_test(tc, test_store_fs_atomic_put_leaves_no_temp_files);
    tcase_add_test(tc, test_store_fs_put_failure_leaves_nothing);
    tcase_add_test(tc, test_store_fs_writer_commit);
    tcase_add_test(tc, test_store_fs_writer_free_discards);
    tcase_add_test(tc, test_store_fs_abort_pending_fails_commit);
    tcase_add_test(tc, test_store_fs_invalid_keys_refused);
    suite_add_tcase(s, tc);
    return s;
}
