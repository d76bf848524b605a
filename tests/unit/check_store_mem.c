#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/wk_buf.h"
#include "common/wk_err.h"
#include "storage/store.h"
#include "tests/unit/suites.h"

static struct store *st;
static struct wk_err err;

static void setup(void)
{
    wk_err_clear(&err);
    ck_assert_int_eq(store_mem_new(&st, &err), WK_OK);
}

static void teardown(void)
{
    store_free(st);
    st = NULL;
}

static void put_str(const char *key, const char *s)
{
    struct wk_err e;
    wk_err_clear(&e);
    ck_assert_msg(store_put(st, key, s, strlen(s), &e) == WK_OK, "put %s: %s",
                  key, e.msg);
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
    ck_assert_int_eq(store_list(st, prefix, delim, list_cb, &b, &e), WK_OK);
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

START_TEST(test_store_mem_put_get_head)
{
    struct store_stat ss;

    put_str("a/b.txt", "hello");
    ck_assert_int_eq(store_head(st, "a/b.txt", &ss, &err), WK_OK);
    ck_assert_uint_eq(ss.size, 5);
    ck_assert_int_eq(strlen(ss.etag), 32);
    ck_assert(ss.mtime > 0);
    get_str("a/b.txt", 0, UINT64_MAX, "hello");
    put_str("a/b.txt", "bye");
    get_str("a/b.txt", 0, UINT64_MAX, "bye");
    put_str("empty", "");
    get_str("empty", 0, UINT64_MAX, "");
}
END_TEST

START_TEST(test_store_mem_missing_is_notfound)
{
    struct store_stat ss;
    struct wk_buf b;

    ck_assert_int_eq(store_head(st, "nope", &ss, &err), WK_E_NOTFOUND);
    ck_assert_str_eq(err.msg, "head 'nope': no such object");
    wk_err_clear(&err);
    wk_buf_init(&b, 100);
    ck_assert_int_eq(store_get_all(st, "x/nope", &b, &err), WK_E_NOTFOUND);
    ck_assert_str_eq(err.msg, "get 'x/nope': no such object");
    wk_buf_release(&b);
}
END_TEST

START_TEST(test_store_mem_list_order)
{
    put_str("b", "1");
    put_str("a/b", "22");
    put_str("a-b", "333");
    put_str("a/c/d", "4444");
    put_str("\xc3\xa4", "5");
    put_str("A", "6");
    check_list("", NULL, "A:1,a-b:3,a/b:2,a/c/d:4,b:1,\xc3\xa4:1");
    check_list("a/", NULL, "a/b:2,a/c/d:4");
    check_list("a", NULL, "a-b:3,a/b:2,a/c/d:4");
    check_list("zz", NULL, "");
}
END_TEST

START_TEST(test_store_mem_list_delimiter)
{
    put_str("active/s1/a.json", "1");
    put_str("active/s1/f/x", "1");
    put_str("active/s2/b", "1");
    put_str("active/s10/c", "1");
    put_str("active/top", "1");
    put_str("active-x", "1");
    check_list("", "/", "active-x:1,[active/]");
    check_list("active/", "/",
               "[active/s1/],[active/s10/],[active/s2/],"
               "active/top:1");
    check_list("active/s1/", "/", "active/s1/a.json:1,[active/s1/f/]");
    check_list("active/s", "/", "[active/s1/],[active/s10/],[active/s2/]");
}
END_TEST

START_TEST(test_store_mem_list_other_delimiter)
{
    put_str("x/a-1", "1");
    put_str("x/a-2", "1");
    put_str("x/b", "1");
    check_list("x/", "-", "[x/a-],x/b:1");
}
END_TEST

static enum wk_code stop_cb(const struct store_entry *e, void *ud,
                            struct wk_err *lerr)
{
    int *n = ud;
    (void)e;
    if (++*n == 2)
        return wk_err_set(lerr, WK_E_CANCELLED, "stop");
    return WK_OK;
}

START_TEST(test_store_mem_list_stops_on_error)
{
    int n = 0;

    put_str("a", "1");
    put_str("b", "1");
    put_str("c", "1");
    ck_assert_int_eq(store_list(st, "", NULL, stop_cb, &n, &err),
                     WK_E_CANCELLED);
    ck_assert_int_eq(n, 2);
    ck_assert_str_eq(err.msg, "stop");
}
END_TEST

static enum wk_code delete_cb(const struct store_entry *e, void *ud,
                              struct wk_err *lerr)
{
    const char *k = e->key;
    size_t nd;
    int *n = ud;

    (*n)++;
    return store_delete_many(st, &k, 1, &nd, lerr);
}

START_TEST(test_store_mem_list_callback_may_delete)
{
    int n = 0;

    put_str("a", "1");
    put_str("b", "1");
    put_str("c", "1");
    ck_assert_int_eq(store_list(st, "", NULL, delete_cb, &n, &err), WK_OK);
    ck_assert_int_eq(n, 3);
    check_list("", NULL, "");
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

START_TEST(test_store_mem_list_after)
{
    int n = 0;

    put_str("active/a-b/x", "1");
    put_str("active/a/x", "1");
    put_str("active/a/y/z", "1");
    put_str("active/b/x", "1");
    put_str("active/c/x", "1");
    put_str("active/d", "1");
    put_str("top", "1");

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

START_TEST(test_store_mem_get_range)
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

static enum wk_code count_sink(const void *p, size_t n, void *ud,
                               struct wk_err *serr)
{
    size_t *calls = ud;
    (void)p;
    (void)serr;
    ck_assert_uint_le(n, 64 * 1024);
    (*calls)++;
    return WK_OK;
}

START_TEST(test_store_mem_get_streams_in_chunks)
{
    static char big[200000];
    size_t calls = 0;

    memset(big, 'x', sizeof(big));
    ck_assert_int_eq(store_put(st, "big", big, sizeof(big), &err), WK_OK);
    ck_assert_int_eq(
        store_get(st, "big", 0, UINT64_MAX, count_sink, &calls, &err), WK_OK);
    ck_assert_uint_eq(calls, 4);
}
END_TEST

START_TEST(test_store_mem_get_many_put_many)
{
    struct store_put puts[2] = { { "p/1", "one", 3, { 0 }, false, { 0 } },
                                 { "p/2", "two!", 4, { 0 }, false, { 0 } } };
    struct wk_buf b[3];
    struct store_get reqs[3];

    ck_assert_int_eq(store_put_many(st, puts, 2, &err), WK_OK);
    for (int i = 0; i < 2; i++) {
        /* each PUT says the ETag it made (what a restore records) */
        struct store_stat sb;
        ck_assert_int_eq(store_head(st, puts[i].key, &sb, &err), WK_OK);
        ck_assert_str_ne(puts[i].etag, "");
        ck_assert_str_eq(puts[i].etag, sb.etag);
    }
    for (int i = 0; i < 3; i++)
        wk_buf_init(&b[i], 100);
    memset(reqs, 0, sizeof(reqs));
    reqs[0] = (struct store_get){ "p/1", 0, 3, &b[0], { 0 }, NULL, NULL };
    reqs[1] = (struct store_get){ "p/2", 1, 2, &b[1], { 0 }, NULL, NULL };
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

START_TEST(test_store_mem_delete_many)
{
    const char *keys[] = { "a/1", "a/2", "missing" };
    size_t nd = 0;

    put_str("a/1", "1");
    put_str("a/2", "2");
    put_str("a/3", "3");
    ck_assert_int_eq(store_delete_many(st, keys, 3, &nd, &err), WK_OK);
    ck_assert_uint_eq(nd, 3);
    check_list("", NULL, "a/3:1");
}
END_TEST

START_TEST(test_store_mem_writer_commit)
{
    struct store_writer *w = NULL;
    size_t n = 9;

    ck_assert_int_eq(store_open_write(st, "out/a.zip", NULL, &w, &err), WK_OK);
    ck_assert_int_eq(store_writer_write(w, "abc", 3, &err), WK_OK);
    ck_assert_int_eq(store_writer_write(w, "def", 3, &err), WK_OK);
    ck_assert_uint_eq(w->written, 6);
    check_list("", NULL, ""); /* invisible until commit */
    ck_assert_int_eq(store_count_pending(st, "out/", &n, &err), WK_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(store_writer_commit(w, &err), WK_OK);
    store_writer_free(w);
    get_str("out/a.zip", 0, UINT64_MAX, "abcdef");
    ck_assert_int_eq(store_count_pending(st, "", &n, &err), WK_OK);
    ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(test_store_mem_writer_free_discards)
{
    struct store_writer *w = NULL;
    size_t n = 9;

    put_str("out/a.zip", "old");
    ck_assert_int_eq(store_open_write(st, "out/a.zip", NULL, &w, &err), WK_OK);
    ck_assert_int_eq(store_writer_write(w, "new", 3, &err), WK_OK);
    store_writer_free(w);
    get_str("out/a.zip", 0, UINT64_MAX, "old");
    ck_assert_int_eq(store_count_pending(st, "", &n, &err), WK_OK);
    ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(test_store_mem_abort_pending)
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
    check_list("", NULL, "");
}
END_TEST

START_TEST(test_store_mem_invalid_keys_refused)
{
    static const char *const bad[] = { "",    "/abs", "a//b", "a/../b",
                                       "./a", "a/",   "a\\b" };
    struct store_writer *w = NULL;
    struct store_stat ss;
    size_t nd;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        wk_err_clear(&err);
        ck_assert_int_eq(store_put(st, bad[i], "x", 1, &err), WK_E_INVAL);
        wk_err_clear(&err);
        ck_assert_int_eq(store_head(st, bad[i], &ss, &err), WK_E_INVAL);
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
    store_put(st, "a/../b", "x", 1, &err);
    ck_assert_str_eq(err.msg, "put 'a/../b': invalid key");
}
END_TEST

Suite *store_mem_suite(void)
{
    Suite *s = suite_create("store_mem");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_store_mem_put_get_head);
    tcase_add_test(tc, test_store_mem_missing_is_notfound);
    tcase_add_test(tc, test_store_mem_list_order);
    tcase_add_test(tc, test_store_mem_list_delimiter);
    tcase_add_test(tc, test_store_mem_list_other_delimiter);
    tcase_add_test(tc, test_store_mem_list_stops_on_error);
    tcase_add_test(tc, test_store_mem_list_callback_may_delete);
    tcase_add_test(tc, test_store_mem_list_after);
    tcase_add_test(tc, test_store_mem_get_range);
    tcase_add_test(tc, test_store_mem_get_streams_in_chunks);
    tcase_add_test(tc, test_store_mem_get_many_put_many);
    tcase_add_test(tc, test_store_mem_delete_many);
    tcase_add_test(tc, test_store_mem_writer_commit);
    tcase_add_test(tc, test_store_mem_writer_free_discards);
    tcase_add_test(tc, test_store_mem_abort_pending);
    tcase_add_test(tc, test_store_mem_invalid_keys_refused);
    suite_add_tcase(s, tc);
    return s;
}
