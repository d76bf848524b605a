/* The store contract, run against every backend: S3 (the server run.sh
 * starts: WK_TEST_S3_ENDPOINT, WK_TEST_BUCKET, AWS_* credentials) and a
 * local directory. Each case is a loop test over the backend table and uses
 * fresh keys under test/<pid>/<case>/. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/wk_buf.h"
#include "storage/store.h"
#include "tests/integration/it_util.h"
#include "tests/integration/suites.h"

#define MIB           (1024u * 1024u)
#define MANY_KEYS     1100
#define S3_STORE_ROOT "it-store" /* the S3 store's own prefix */

struct backend {
    const char *name;
    bool multipart; /* has parts: part_bytes is checked, uploads listed */
    bool (*open)(struct store **st, char *dir, size_t dirlen);
};

struct ctx {
    const struct backend *be;
    struct store *st;
    char dir[512];    /* fs: the store's directory */
    char prefix[128]; /* "test/<pid>/<case>/" */
};

static bool open_s3(struct store **st, char *dir, size_t dirlen)
{
    const char *ep = getenv("WK_TEST_S3_ENDPOINT");
    const char *bucket = getenv("WK_TEST_BUCKET");
    struct store_opts o;
    struct wk_err err;

    (void)dir;
    (void)dirlen;
    /* a missing service fails: never a silent skip */
    ck_assert_msg(ep && *ep && bucket && *bucket,
                  "WK_TEST_S3_ENDPOINT and WK_TEST_BUCKET must be set (run "
                  "through tests/integration/run.sh)");
    wk_err_clear(&err);
    ck_assert_msg(store_opts_from_env(&o, &err) == WK_OK, "%s", err.msg);
    snprintf(o.endpoint, sizeof(o.endpoint), "%s", ep);
    ck_assert_msg(store_s3_new(bucket, S3_STORE_ROOT, &o, st, &err) == WK_OK,
                  "%s", err.msg);
    return true;
}

static bool open_fs(struct store **st, char *dir, size_t dirlen)
{
    const char *tmp = getenv("WK_TEST_TMP");
    struct wk_err err;

    if (!tmp || !*tmp)
        tmp = getenv("TMPDIR");
    if (!tmp || !*tmp)
        tmp = "/tmp";
    snprintf(dir, dirlen, "%s/it-store.XXXXXX", tmp);
    ck_assert_msg(mkdtemp(dir) != NULL, "mkdtemp in '%s' failed", tmp);
    wk_err_clear(&err);
    ck_assert_msg(store_fs_new(dir, st, &err) == WK_OK, "%s", err.msg);
    return true;
}

static const struct backend backends[] = {
    { "s3", true, open_s3 },
    { "fs", false, open_fs },
};
#define N_BACKENDS ((int)(sizeof(backends) / sizeof(backends[0])))

/* Remove a directory tree (fs backend cleanup). */
static void rm_tree(const char *path)
{
    struct stat sb;
    DIR *d;
    struct dirent *de;
    char sub[1024];

    if (lstat(path, &sb) != 0)
        return;
    if (!S_ISDIR(sb.st_mode)) {
        unlink(path);
        return;
    }
    d = opendir(path);
    while (d && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name) <
            (int)sizeof(sub))
            rm_tree(sub);
    }
    if (d)
        closedir(d);
    rmdir(path);
}

/* Open backend i for case name; false when the backend is skipped. */
static bool ctx_open(struct ctx *c, int i, const char *name)
{
    memset(c, 0, sizeof(*c));
    c->be = &backends[i];
    snprintf(c->prefix, sizeof(c->prefix), "test/%ld/%s/", (long)getpid(),
             name);
    return c->be->open(&c->st, c->dir, sizeof(c->dir));
}

static void ctx_close(struct ctx *c)
{
    store_free(c->st);
    c->st = NULL;
    if (c->dir[0])
        rm_tree(c->dir);
}

static void key_of(const struct ctx *c, const char *name, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s%s", c->prefix, name);
    ck_assert(n > 0 && (size_t)n < len);
}

/* Listing into an array of owned copies. */
struct listing {
    size_t n, cap;
    char **keys;
    uint64_t *sizes;
    bool *is_prefix;
};

static enum wk_code collect(const struct store_entry *e, void *ud,
                            struct wk_err *err)
{
    struct listing *l = ud;

    (void)err;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->keys = realloc(l->keys, l->cap * sizeof(*l->keys));
        l->sizes = realloc(l->sizes, l->cap * sizeof(*l->sizes));
        l->is_prefix = realloc(l->is_prefix, l->cap * sizeof(*l->is_prefix));
        ck_assert(l->keys && l->sizes && l->is_prefix);
    }
    ck_assert_ptr_nonnull(e->etag);
    l->keys[l->n] = strdup(e->key);
    ck_assert_ptr_nonnull(l->keys[l->n]);
    l->sizes[l->n] = e->size;
    l->is_prefix[l->n] = e->is_prefix;
    l->n++;
    return WK_OK;
}

static void listing_free(struct listing *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->keys[i]);
    free(l->keys);
    free(l->sizes);
    free(l->is_prefix);
    memset(l, 0, sizeof(*l));
}

static void list_all(struct ctx *c, const char *delimiter, struct listing *l)
{
    struct wk_err err;

    memset(l, 0, sizeof(*l));
    wk_err_clear(&err);
    ck_assert_msg(store_list(c->st, c->prefix, delimiter, collect, l, &err) ==
                      WK_OK,
                  "%s: list: %s", c->be->name, err.msg);
}

static enum wk_code sink_buf(const void *p, size_t n, void *ud,
                             struct wk_err *err)
{
    return wk_buf_append(ud, p, n, err);
}

static void put_text(struct ctx *c, const char *key, const char *text)
{
    struct wk_err err;

    wk_err_clear(&err);
    ck_assert_msg(store_put(c->st, key, text, strlen(text), &err) == WK_OK,
                  "%s: put '%s': %s", c->be->name, key, err.msg);
}

static void fill_pattern(unsigned char *p, size_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (unsigned char)x;
    }
}

/* Create n small objects "<prefix>k0000".. with put_many; keys returned
 * (owned, free each and the array). */
static char **put_many_keys(struct ctx *c, size_t n)
{
    struct store_put *reqs = calloc(n, sizeof(*reqs));
    char **keys = calloc(n, sizeof(*keys));
    struct wk_err err;

    ck_assert(reqs && keys);
    for (size_t i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof(name), "k%04zu", i);
        keys[i] = malloc(256);
        ck_assert_ptr_nonnull(keys[i]);
        key_of(c, name, keys[i], 256);
        reqs[i].key = keys[i];
        reqs[i].data = keys[i];
        reqs[i].len = strlen(keys[i]);
    }
    wk_err_clear(&err);
    ck_assert_msg(store_put_many(c->st, reqs, n, &err) == WK_OK,
                  "%s: put_many: %s", c->be->name, err.msg);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(reqs[i].err.code, WK_OK);
    free(reqs);
    return keys;
}

static void free_keys(char **keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
    free(keys);
}

START_TEST(test_it_store_round_trip)
{
    struct ctx c;
    char key[256];
    struct store_stat sb;
    struct wk_buf b;
    struct wk_err err;

    if (!ctx_open(&c, _i, "round_trip"))
        return;
    key_of(&c, "dir/hello.txt", key, sizeof(key));
    put_text(&c, key, "hello, world\n");
    wk_err_clear(&err);
    ck_assert_msg(store_head(c.st, key, &sb, &err) == WK_OK, "%s: %s",
                  c.be->name, err.msg);
    ck_assert(sb.size == 13);
    ck_assert(sb.mtime > 1600000000);
    ck_assert(sb.etag[0] != '\0');
    wk_buf_init(&b, 1024);
    ck_assert_msg(store_get_all(c.st, key, &b, &err) == WK_OK, "%s: %s",
                  c.be->name, err.msg);
    ck_assert_str_eq(wk_buf_cstr(&b), "hello, world\n");
    /* overwrite: readers see the new object */
    put_text(&c, key, "v2");
    wk_buf_reset(&b);
    ck_assert_int_eq(store_get_all(c.st, key, &b, &err), WK_OK);
    ck_assert_str_eq(wk_buf_cstr(&b), "v2");
    /* an empty object */
    key_of(&c, "empty", key, sizeof(key));
    put_text(&c, key, "");
    ck_assert_int_eq(store_head(c.st, key, &sb, &err), WK_OK);
    ck_assert(sb.size == 0);
    wk_buf_reset(&b);
    ck_assert_int_eq(store_get_all(c.st, key, &b, &err), WK_OK);
    ck_assert_uint_eq(b.len, 0);
    wk_buf_release(&b);
    ctx_close(&c);
}
END_TEST

START_TEST(test_it_store_ranged_get)
{
    struct ctx c;
    char key[256];
    unsigned char data[1000];
    struct wk_buf b, b1, b2;
    struct store_get ranges[2];
    struct wk_err err;

    if (!ctx_open(&c, _i, "ranged_get"))
        return;
    key_of(&c, "blob", key, sizeof(key));
    fill_pattern(data, sizeof(data), 7);
    wk_err_clear(&err);
    ck_assert_int_eq(store_put(c.st, key, data, sizeof(data), &err), WK_OK);
    wk_buf_init(&b, 4096);
    ck_assert_msg(store_get(c.st, key, 100, 50, sink_buf, &b, &err) == WK_OK,
                  "%s: %s", c.be->name, err.msg);
    ck_assert_uint_eq(b.len, 50);
    ck_assert(memcmp(b.data, data + 100, 50) == 0);
    wk_buf_reset(&b);
    ck_assert_int_eq(store_get(c.st, key, 990, UINT64_MAX, sink_buf, &b, &err),
                     WK_OK);
    ck_assert_uint_eq(b.len, 10);
    ck_assert(memcmp(b.data, data + 990, 10) == 0);

    /* a batch of ranges */
    wk_buf_init(&b1, 4096);
    wk_buf_init(&b2, 4096);
    memset(ranges, 0, sizeof(ranges));
    ranges[0] = (struct store_get){ key, 0, 10, &b1, { 0 }, NULL, NULL };
    ranges[1] = (struct store_get){ key, 500, 500, &b2, { 0 }, NULL, NULL };
    ck_assert_msg(store_get_many(c.st, ranges, 2, &err) == WK_OK, "%s: %s",
                  c.be->name, err.msg);
    ck_assert_uint_eq(b1.len, 10);
    ck_assert(memcmp(b1.data, data, 10) == 0);
    ck_assert_uint_eq(b2.len, 500);
    ck_assert(memcmp(b2.data, data + 500, 500) == 0);

    /* past the end: the object is shorter than asked */
    wk_buf_reset(&b);
    ck_assert_int_eq(store_get(c.st, key, 900, 200, sink_buf, &b, &err),
                     WK_E_CONFLICT);

    /* If-Match: the listed version or nothing */
    {
        struct store_stat sb;
        char etag[sizeof(sb.etag)];
        ck_assert_int_eq(store_head(c.st, key, &sb, &err), WK_OK);
        snprintf(etag, sizeof(etag), "%s", sb.etag);
        wk_buf_reset(&b1);
        ranges[0] = (struct store_get){ key, 0, 10, &b1, { 0 }, etag, NULL };
        ck_assert_msg(store_get_many(c.st, ranges, 1, &err) == WK_OK, "%s: %s",
                      c.be->name, err.msg);
        ck_assert_uint_eq(b1.len, 10);
        fill_pattern(data, sizeof(data), 8); /* rewritten, same size */
        ck_assert_int_eq(store_put(c.st, key, data, sizeof(data), &err), WK_OK);
        wk_buf_reset(&b1);
        ranges[0] = (struct store_get){ key, 0, 10, &b1, { 0 }, etag, NULL };
        ck_assert_int_eq(store_get_many(c.st, ranges, 1, &err), WK_E_CONFLICT);
        ck_assert_int_eq(ranges[0].err.code, WK_E_CONFLICT);
        ck_assert_msg(strstr(ranges[0].err.msg, "changed since it was listed"),
                      "%s: %s", c.be->name, ranges[0].err.msg);
        ck_assert_uint_eq(b1.len, 0);

        /* the whole object and its version in one read: the ETag of the
         * bytes read (the rewritten ones), as HEAD names it */
        {
            struct wk_buf all;
            char got[sizeof(sb.etag)];
            wk_buf_init(&all, 1u << 20);
            ck_assert_msg(store_get_all_etag(c.st, key, &all, got, &err) ==
                              WK_OK,
                          "%s: %s", c.be->name, err.msg);
            ck_assert_uint_eq(all.len, sizeof(data));
            ck_assert(memcmp(all.data, data, sizeof(data)) == 0);
            ck_assert_int_eq(store_head(c.st, key, &sb, &err), WK_OK);
            ck_assert_str_eq(got, sb.etag);
            ck_assert_str_ne(got, etag);
            char absent[256];
            key_of(&c, "absent", absent, sizeof(absent));
            wk_buf_reset(&all);
            ck_assert_int_eq(store_get_all_etag(c.st, absent, &all, got, &err),
                             WK_E_NOTFOUND);
            ck_assert_str_eq(got, "");
            wk_buf_release(&all);
        }
    }
    wk_buf_release(&b);
    wk_buf_release(&b1);
    wk_buf_release(&b2);
    ctx_close(&c);
}
END_TEST

START_TEST(test_it_store_missing_key)
{
    struct ctx c;
    char key[256];
    struct store_stat sb;
    struct wk_buf b;
    struct wk_err err;

    if (!ctx_open(&c, _i, "missing_key"))
        return;
    key_of(&c, "nope", key, sizeof(key));
    wk_err_clear(&err);
    ck_assert_int_eq(store_head(c.st, key, &sb, &err), WK_E_NOTFOUND);
    ck_assert_ptr_nonnull(strstr(err.msg, "nope"));
    wk_err_clear(&err);
    wk_buf_init(&b, 64);
    ck_assert_int_eq(store_get_all(c.st, key, &b, &err), WK_E_NOTFOUND);
    ck_assert_ptr_nonnull(strstr(err.msg, "nope"));
    wk_buf_release(&b);
    /* an invalid key is refused before any request */
    wk_err_clear(&err);
    ck_assert_int_eq(store_head(c.st, "../etc/passwd", &sb, &err), WK_E_INVAL);
    ctx_close(&c);
}
END_TEST

/* Conditional writes: what fences a stale worker off the manifest. */
START_TEST(test_it_store_put_if)
{
    struct ctx c;
    char key[256], etag[80], etag2[80];
    struct store_stat sb;
    struct wk_buf b;
    struct wk_err err;

    if (!ctx_open(&c, _i, "put_if"))
        return;
    key_of(&c, "manifest.json", key, sizeof(key));
    wk_err_clear(&err);
    /* "" = only if absent */
    ck_assert_int_eq(
        store_put_if(c.st, key, "v1", 2, "", etag, sizeof(etag), &err), WK_OK);
    ck_assert_int_eq(store_put_if(c.st, key, "v2", 2, "", NULL, 0, &err),
                     WK_E_CONFLICT);
    ck_assert_ptr_nonnull(strstr(err.msg, "precondition failed"));
    /* the etag seen: only over that version */
    wk_err_clear(&err);
    ck_assert_int_eq(store_head(c.st, key, &sb, &err), WK_OK);
    ck_assert_str_eq(sb.etag, etag);
    ck_assert_int_eq(
        store_put_if(c.st, key, "v3!", 3, sb.etag, etag2, sizeof(etag2), &err),
        WK_OK);
    ck_assert_str_ne(etag2, etag);
    /* a stale writer still holding the first etag loses */
    ck_assert_int_eq(store_put_if(c.st, key, "v4", 2, etag, NULL, 0, &err),
                     WK_E_CONFLICT);
    wk_err_clear(&err);
    wk_buf_init(&b, 64);
    ck_assert_int_eq(store_get_all(c.st, key, &b, &err), WK_OK);
    ck_assert_str_eq(wk_buf_cstr(&b), "v3!");
    wk_buf_release(&b);
    ctx_close(&c);
}
END_TEST

START_TEST(test_it_store_list_paginated)
{
    struct ctx c;
    struct listing l;
    char **keys;

    if (!ctx_open(&c, _i, "list_paginated"))
        return;
    keys = put_many_keys(&c, MANY_KEYS);
    list_all(&c, NULL, &l);
    ck_assert_uint_eq(l.n, MANY_KEYS);
    for (size_t i = 0; i < l.n; i++) {
        ck_assert_str_eq(l.keys[i], keys[i]);
        ck_assert(l.sizes[i] == strlen(keys[i]));
        ck_assert(!l.is_prefix[i]);
        if (i > 0)
            ck_assert(strcmp(l.keys[i - 1], l.keys[i]) < 0);
    }
    listing_free(&l);
    free_keys(keys, MANY_KEYS);
    ctx_close(&c);
}
END_TEST

START_TEST(test_it_store_list_delimiter)
{
    struct ctx c;
    struct listing l;
    char key[256], want[256];
    static const char *const names[] = { "b/1", "a/2",      "a/1",
                                         "c",   "a/x/deep", "0" };

    if (!ctx_open(&c, _i, "list_delimiter"))
        return;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        key_of(&c, names[i], key, sizeof(key));
        put_text(&c, key, names[i]);
    }
    list_all(&c, "/", &l);
    ck_assert_uint_eq(l.n, 4);
    key_of(&c, "0", want, sizeof(want));
    ck_assert_str_eq(l.keys[0], want);
    ck_assert(!l.is_prefix[0]);
    key_of(&c, "a/", want, sizeof(want));
    ck_assert_str_eq(l.keys[1], want);
    ck_assert(l.is_prefix[1]);
    key_of(&c, "b/", want, sizeof(want));
    ck_assert_str_eq(l.keys[2], want);
    ck_assert(l.is_prefix[2]);
    key_of(&c, "c", want, sizeof(want));
    ck_assert_str_eq(l.keys[3], want);
    ck_assert(!l.is_prefix[3]);
    ck_assert(l.sizes[3] == 1);
    listing_free(&l);
    ctx_close(&c);
}
END_TEST

/* store_list_after: keys (and common prefixes) strictly after start_after,
 * across pages (S3: start-after on the first request, then the
 * continuation token). */
static void list_after(struct ctx *c, const char *delimiter, const char *after,
                       struct listing *l)
{
    struct wk_err err;

    memset(l, 0, sizeof(*l));
    wk_err_clear(&err);
    ck_assert_msg(store_list_after(c->st, c->prefix, delimiter, after, collect,
                                   l, &err) == WK_OK,
                  "%s: list after '%s': %s", c->be->name, after, err.msg);
}

START_TEST(test_it_store_list_after)
{
    struct ctx c;
    struct listing l;
    char key[256], want[256];
    char **keys;
    static const char *const names[] = { "d/a-b/1", "d/a/1", "d/a/x/deep",
                                         "d/b/1", "d/c" };

    if (!ctx_open(&c, _i, "list_after"))
        return;
    keys = put_many_keys(&c, MANY_KEYS);
    list_after(&c, NULL, keys[499], &l);
    ck_assert_uint_eq(l.n, MANY_KEYS - 500);
    for (size_t i = 0; i < l.n; i++)
        ck_assert_str_eq(l.keys[i], keys[500 + i]);
    listing_free(&l);
    list_after(&c, NULL, keys[MANY_KEYS - 1], &l); /* the last one */
    ck_assert_uint_eq(l.n, 0);
    listing_free(&l);

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        key_of(&c, names[i], key, sizeof(key));
        put_text(&c, key, names[i]);
    }
    /* delimiter: the common prefixes after it ("a-b/" < "a/") */
    key_of(&c, "d/a-b/", key, sizeof(key));
    memset(&l, 0, sizeof(l));
    {
        struct wk_err err;
        char pfx[256];
        key_of(&c, "d/", pfx, sizeof(pfx));
        wk_err_clear(&err);
        ck_assert_msg(
            store_list_after(c.st, pfx, "/", key, collect, &l, &err) == WK_OK,
            "%s: %s", c.be->name, err.msg);
        ck_assert_uint_eq(l.n, 3);
        key_of(&c, "d/a/", want, sizeof(want));
        ck_assert_str_eq(l.keys[0], want);
        ck_assert(l.is_prefix[0]);
        key_of(&c, "d/b/", want, sizeof(want));
        ck_assert_str_eq(l.keys[1], want);
        key_of(&c, "d/c", want, sizeof(want));
        ck_assert_str_eq(l.keys[2], want);
        ck_assert(!l.is_prefix[2]);
        listing_free(&l);
        /* inside a/: that prefix is not listed again */
        key_of(&c, "d/a/1", key, sizeof(key));
        ck_assert_msg(
            store_list_after(c.st, pfx, "/", key, collect, &l, &err) == WK_OK,
            "%s: %s", c.be->name, err.msg);
        ck_assert_uint_eq(l.n, 2);
        key_of(&c, "d/b/", want, sizeof(want));
        ck_assert_str_eq(l.keys[0], want);
        listing_free(&l);
    }
    free_keys(keys, MANY_KEYS);
    ctx_close(&c);
}
END_TEST

START_TEST(test_it_store_odd_keys)
{
    static const char *const names[] = {
        "with space.txt",
        "sp  two  spaces",
        "plus+sign",
        "eq=ual=s",
        "til~de",
        "uni\xc3\xbc\xc3\xb1\xc3\xaf/c\xc3\xb8\x64\xc3\xa9\xe2\x82\xac.txt",
        "emoji \xf0\x9f\x98\x80",
        "amp&er;semi",
        "pct%20not-an-escape",
        "quote'single\"double",
        "lt<gt>",
        "star*paren(1)!",
        "comma,colon:at@dollar$",
        "hash#q?",
        "trailing space ",
    };
    const size_t n = sizeof(names) / sizeof(names[0]);
    struct ctx c;
    struct listing l;
    char keys[sizeof(names) / sizeof(names[0])][256];
    const char *kp[sizeof(names) / sizeof(names[0])];
    size_t ndeleted = 0;
    struct wk_buf b;
    struct wk_err err;

    if (!ctx_open(&c, _i, "odd_keys"))
        return;
    for (size_t i = 0; i < n; i++) {
        key_of(&c, names[i], keys[i], sizeof(keys[i]));
        kp[i] = keys[i];
        put_text(&c, keys[i], names[i]);
    }
    list_all(&c, NULL, &l);
    ck_assert_uint_eq(l.n, n);
    for (size_t i = 0; i < n; i++) {
        bool found = false;
        for (size_t j = 0; j < l.n && !found; j++)
            found = strcmp(l.keys[j], keys[i]) == 0;
        ck_assert_msg(found, "%s: '%s' not listed", c.be->name, keys[i]);
        if (i > 0)
            ck_assert(strcmp(l.keys[i - 1], l.keys[i]) < 0);
    }
    listing_free(&l);
    wk_buf_init(&b, 1024);
    wk_err_clear(&err);
    for (size_t i = 0; i < n; i++) {
        wk_buf_reset(&b);
        ck_assert_msg(store_get_all(c.st, keys[i], &b, &err) == WK_OK,
                      "%s: get '%s': %s", c.be->name, keys[i], err.msg);
        ck_assert_str_eq(wk_buf_cstr(&b), names[i]);
    }
    wk_buf_release(&b);
    ck_assert_msg(store_delete_many(c.st, kp, n, &ndeleted, &err) == WK_OK,
                  "%s: %s", c.be->name, err.msg);
    ck_assert_uint_eq(ndeleted, n);
    list_all(&c, NULL, &l);
    ck_assert_uint_eq(l.n, 0);
    listing_free(&l);
    ctx_close(&c);
}
END_TEST

START_TEST(test_it_store_delete_many)
{
    struct ctx c;
    struct listing l;
    char **keys;
    size_t ndeleted = 0;
    struct wk_err err;

    if (!ctx_open(&c, _i, "delete_many"))
        return;
    keys = put_many_keys(&c, MANY_KEYS);
    wk_err_clear(&err);
    ck_assert_msg(store_delete_many(c.st, (const char *const *)keys, MANY_KEYS,
                                    &ndeleted, &err) == WK_OK,
                  "%s: %s", c.be->name, err.msg);
    ck_assert_uint_eq(ndeleted, MANY_KEYS);
    list_all(&c, NULL, &l);
    ck_assert_uint_eq(l.n, 0);
    listing_free(&l);
    /* missing keys count as deleted */
    ck_assert_int_eq(
        store_delete_many(c.st, (const char *const *)keys, 3, &ndeleted, &err),
        WK_OK);
    ck_assert_uint_eq(ndeleted, 3);
    free_keys(keys, MANY_KEYS);
    ctx_close(&c);
}
END_TEST

START_TEST(test_it_store_multipart_round_trip)
{
    const size_t total = 13 * MIB + 12345;
    struct store_writer_opts wo = { .part_bytes = 5 * MIB,
                                    .parts_in_flight = 2 };
    struct store_writer *w = NULL;
    unsigned char *data = malloc(total);
    struct ctx c;
    char key[256];
    struct store_stat sb;
    struct wk_buf b;
    struct wk_err err;
    size_t off = 0, step = 1;
    size_t npending = 99;

    ck_assert_ptr_nonnull(data);
    if (!ctx_open(&c, _i, "multipart")) {
        free(data);
        return;
    }
    fill_pattern(data, total, 13);
    key_of(&c, "out/archive.zip", key, sizeof(key));
    wk_err_clear(&err);
    ck_assert_msg(store_open_write(c.st, key, &wo, &w, &err) == WK_OK, "%s: %s",
                  c.be->name, err.msg);
    while (off < total) {
        /* uneven chunks, as a ZIP writer produces them */
        size_t n = step % 3 == 0 ? 65536 : step * 7919 % 300000 + 1;
        if (n > total - off)
            n = total - off;
        ck_assert_msg(store_writer_write(w, data + off, n, &err) == WK_OK,
                      "%s: %s", c.be->name, err.msg);
        off += n;
        step++;
    }
    ck_assert(w->written == total);
    ck_assert_msg(store_writer_commit(w, &err) == WK_OK, "%s: %s", c.be->name,
                  err.msg);
    store_writer_free(w);

    ck_assert_int_eq(store_head(c.st, key, &sb, &err), WK_OK);
    ck_assert(sb.size == total);
    if (c.be->multipart) /* 3 parts: 5 + 5 + 3 MiB */
        ck_assert_msg(strlen(sb.etag) > 2 &&
                          strcmp(sb.etag + strlen(sb.etag) - 2, "-3") == 0,
                      "etag '%s'", sb.etag);
    wk_buf_init(&b, total);
    ck_assert_msg(store_get_all(c.st, key, &b, &err) == WK_OK, "%s: %s",
                  c.be->name, err.msg);
    ck_assert_uint_eq(b.len, total);
    ck_assert(memcmp(b.data, data, total) == 0);
    wk_buf_release(&b);
    ck_assert_int_eq(store_count_pending(c.st, c.prefix, &npending, &err),
                     WK_OK);
    ck_assert_uint_eq(npending, 0);
    free(data);
    ctx_close(&c);
}
END_TEST

START_TEST(test_it_store_multipart_small_object)
{
    struct store_writer_opts wo = { .part_bytes = 5 * MIB,
                                    .parts_in_flight = 2 };
    struct store_writer *w = NULL;
    struct ctx c;
    char key[256];
    struct wk_buf b;
    struct wk_err err;

    if (!ctx_open(&c, _i, "multipart_small"))
        return;
    key_of(&c, "small.zip", key, sizeof(key));
    wk_err_clear(&err);
    ck_assert_int_eq(store_open_write(c.st, key, &wo, &w, &err), WK_OK);
    ck_assert_int_eq(store_writer_write(w, "tiny", 4, &err), WK_OK);
    ck_assert_msg(store_writer_commit(w, &err) == WK_OK, "%s: %s", c.be->name,
                  err.msg);
    store_writer_free(w);
    wk_buf_init(&b, 64);
    ck_assert_int_eq(store_get_all(c.st, key, &b, &err), WK_OK);
    ck_assert_str_eq(wk_buf_cstr(&b), "tiny");
    wk_buf_release(&b);
    ctx_close(&c);
}
END_TEST

START_TEST(test_it_store_writer_abandoned)
{
    const size_t total = 6 * MIB; /* one full part has gone up on S3 */
    struct store_writer_opts wo = { .part_bytes = 5 * MIB,
                                    .parts_in_flight = 2 };
    struct store_writer *w = NULL;
    unsigned char *data = malloc(total);
    struct ctx c;
    char key[256];
    struct store_stat sb;
    struct listing l;
    struct wk_err err;
    size_t npending = 99;

    ck_assert_ptr_nonnull(data);
    if (!ctx_open(&c, _i, "abandoned")) {
        free(data);
        return;
    }
    fill_pattern(data, total, 3);
    key_of(&c, "never.zip", key, sizeof(key));
    wk_err_clear(&err);
    ck_assert_int_eq(store_open_write(c.st, key, &wo, &w, &err), WK_OK);
    ck_assert_msg(store_writer_write(w, data, total, &err) == WK_OK, "%s: %s",
                  c.be->name, err.msg);
    store_writer_free(w); /* no commit: aborted */

    ck_assert_int_eq(store_head(c.st, key, &sb, &err), WK_E_NOTFOUND);
    list_all(&c, NULL, &l);
    ck_assert_uint_eq(l.n, 0);
    listing_free(&l);
    wk_err_clear(&err);
    ck_assert_msg(store_count_pending(c.st, c.prefix, &npending, &err) == WK_OK,
                  "%s: %s", c.be->name, err.msg);
    ck_assert_uint_eq(npending, 0);
    free(data);
    ctx_close(&c);
}
END_TEST

START_TEST(test_it_store_abort_pending)
{
    const size_t total = 6 * MIB;
    struct store_writer_opts wo = { .part_bytes = 5 * MIB,
                                    .parts_in_flight = 1 };
    struct store_writer *w = NULL;
    unsigned char *data;
    struct ctx c;
    char key[256];
    struct wk_err err;
    size_t n = 0;

    if (!ctx_open(&c, _i, "abort_pending"))
        return;
    if (!c.be->multipart) {
        ctx_close(&c);
        return;
    }
    data = calloc(1, total);
    ck_assert_ptr_nonnull(data);
    key_of(&c, "crashed.zip", key, sizeof(key));
    wk_err_clear(&err);
    ck_assert_int_eq(store_open_write(c.st, key, &wo, &w, &err), WK_OK);
    ck_assert_int_eq(store_writer_write(w, data, total, &err), WK_OK);
    /* a crash would leave the upload open: look before freeing */
    ck_assert_int_eq(store_count_pending(c.st, c.prefix, &n, &err), WK_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(store_abort_pending(c.st, c.prefix, &n, &err), WK_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(store_count_pending(c.st, c.prefix, &n, &err), WK_OK);
    ck_assert_uint_eq(n, 0);
    store_writer_free(w); /* its abort finds nothing: not an error */
    free(data);
    ctx_close(&c);
}
END_TEST

START_TEST(test_it_store_part_size_refused)
{
    struct store_writer_opts wo = { .part_bytes = 5 * MIB - 1,
                                    .parts_in_flight = 2 };
    struct store_writer *w = NULL;
    struct ctx c;
    char key[256];
    struct wk_err err;

    if (!ctx_open(&c, _i, "part_size"))
        return;
    if (c.be->multipart) {
        key_of(&c, "x.zip", key, sizeof(key));
        wk_err_clear(&err);
        ck_assert_int_eq(store_open_write(c.st, key, &wo, &w, &err),
                         WK_E_INVAL);
        ck_assert_ptr_null(w);
        ck_assert_ptr_nonnull(strstr(err.msg, "5 MiB"));
        wo.part_bytes = 5 * MIB;
        wo.parts_in_flight = 0;
        wk_err_clear(&err);
        ck_assert_int_eq(store_open_write(c.st, key, &wo, &w, &err),
                         WK_E_INVAL);
        ck_assert_ptr_null(w);
    }
    ctx_close(&c);
}
END_TEST

START_TEST(test_it_store_delete_invalid_key)
{
    struct ctx c;
    char a[256], b[256];
    const char *keys[3];
    struct store_stat sb;
    size_t ndeleted = 0;
    struct wk_err err;

    if (!ctx_open(&c, _i, "delete_invalid"))
        return;
    key_of(&c, "a", a, sizeof(a));
    key_of(&c, "b", b, sizeof(b));
    put_text(&c, a, "a");
    put_text(&c, b, "b");
    keys[0] = a;
    keys[1] = "bad/../key";
    keys[2] = b;
    wk_err_clear(&err);
    ck_assert_int_eq(store_delete_many(c.st, keys, 3, &ndeleted, &err),
                     WK_E_INVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "bad/../key"));
    ck_assert_uint_eq(ndeleted, 2);
    ck_assert_int_eq(store_head(c.st, a, &sb, &err), WK_E_NOTFOUND);
    ck_assert_int_eq(store_head(c.st, b, &sb, &err), WK_E_NOTFOUND);
    ctx_close(&c);
}
END_TEST

struct stop_sink {
    size_t calls;
};

static enum wk_code stop_sink_cb(const void *p, size_t n, void *ud,
                                 struct wk_err *err)
{
    struct stop_sink *s = ud;

    (void)p;
    (void)n;
    s->calls++;
    return wk_err_set(err, WK_E_CANCELLED, "sink says stop");
}

START_TEST(test_it_store_sink_error_aborts)
{
    const size_t total = 4 * MIB;
    unsigned char *data = calloc(1, total);
    struct stop_sink ss = { 0 };
    struct ctx c;
    char key[256];
    struct wk_err err;

    ck_assert_ptr_nonnull(data);
    if (!ctx_open(&c, _i, "sink_error")) {
        free(data);
        return;
    }
    key_of(&c, "big", key, sizeof(key));
    wk_err_clear(&err);
    ck_assert_int_eq(store_put(c.st, key, data, total, &err), WK_OK);
    ck_assert_int_eq(
        store_get(c.st, key, 0, UINT64_MAX, stop_sink_cb, &ss, &err),
        WK_E_CANCELLED);
    ck_assert_str_eq(err.msg, "sink says stop");
    ck_assert_uint_eq(ss.calls, 1); /* not retried */
    free(data);
    ctx_close(&c);
}
END_TEST

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* S3 through a proxy that drops every connection for a while: requests are
 * retried with backoff and succeed once it is back; with too few retries
 * the failure is a transient WK_E_NET naming the key. */
START_TEST(test_it_store_s3_outage_retried)
{
    const char *ep = getenv("WK_TEST_S3_ENDPOINT");
    const char *bucket = getenv("WK_TEST_BUCKET");
    char dir[512], ctl[600], target[256];
    struct store_opts o;
    struct store *st = NULL;
    struct store_stat sb;
    struct wk_err err;
    char key[128];
    int port, status = 0;
    pid_t proxy, flip;
    double t0;

    if (!ep || !bucket) {
        ck_assert_msg(getenv("CI") == NULL, "WK_TEST_S3_ENDPOINT not set");
        return;
    }
    snprintf(target, sizeof(target), "%s",
             strncmp(ep, "http://", 7) == 0 ? ep + 7 : ep);
    it_tmpdir("it_store_outage", dir, sizeof(dir));
    snprintf(ctl, sizeof(ctl), "%s/ctl", dir);
    port = it_free_port();
    proxy = it_start_proxy(port, target, ctl);

    wk_err_clear(&err);
    ck_assert_int_eq(store_opts_from_env(&o, &err), WK_OK);
    snprintf(o.endpoint, sizeof(o.endpoint), "http://127.0.0.1:%d", port);
    o.max_retries = 10;
    o.connect_timeout_ms = 2000;
    ck_assert_msg(store_s3_new(bucket, S3_STORE_ROOT, &o, &st, &err) == WK_OK,
                  "%s", err.msg);
    snprintf(key, sizeof(key), "test/%ld/outage/x", (long)getpid());
    ck_assert_msg(store_put(st, key, "x", 1, &err) == WK_OK, "%s", err.msg);

    it_write_file(ctl, "down\n");
    sleep_ms(200); /* the proxy looks at ctl every 50 ms */
    flip = fork();
    ck_assert_int_ge(flip, 0);
    if (flip == 0) {
        int fd;
        sleep_ms(400);
        fd = open(ctl, O_WRONLY | O_TRUNC);
        if (fd >= 0 && write(fd, "up\n", 3) == 3)
            close(fd);
        _exit(0);
    }
    t0 = mono_s();
    ck_assert_msg(store_head(st, key, &sb, &err) == WK_OK, "%s", err.msg);
    ck_assert(sb.size == 1);
    ck_assert(mono_s() - t0 >= 0.3); /* it did wait for the proxy */
    ck_assert_int_eq(waitpid(flip, &status, 0), flip);
    store_free(st);

    /* no retries left: a transient network error naming the key */
    it_write_file(ctl, "down\n");
    sleep_ms(200);
    o.max_retries = 1;
    ck_assert_int_eq(store_s3_new(bucket, S3_STORE_ROOT, &o, &st, &err), WK_OK);
    wk_err_clear(&err);
    ck_assert_int_eq(store_head(st, key, &sb, &err), WK_E_NET);
    ck_assert(wk_err_transient(&err));
    ck_assert_ptr_nonnull(strstr(err.msg, key));
    store_free(st);
    it_stop(proxy);
}
END_TEST

Suite *it_store_suite(void)
{
    Suite *s = suite_create("it_store");
    TCase *tc = tcase_create("contract");

    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_it_store_round_trip, 0, N_BACKENDS);
    tcase_add_loop_test(tc, test_it_store_put_if, 0, N_BACKENDS);
    tcase_add_loop_test(tc, test_it_store_ranged_get, 0, N_BACKENDS);
    tcase_add_loop_test(tc, test_it_store_missing_key, 0, N_BACKENDS);
    tcase_add_loop_test(tc, test_it_store_list_paginated, 0, N_BACKENDS);
    tcase_add_loop_test(tc, test_it_store_list_delimiter, 0, N_BACKENDS);
    tcase_add_loop_test(tc, test_it_store_list_after, 0, N_BACKENDS);
    tcase_add_loop_test(tc, test_it_store_odd_keys, 0, N_BACKENDS);
    tcase_add_loop_test(tc, test_it_store_delete_many, 0, N_BACKENDS);
    tcase_add_loop_test(tc, test_it_store_multipart_round_trip, 0, N_BACKENDS);
    tcase_add_loop_test(tc, test_it_store_multipart_small_object, 0,
                        N_BACKENDS);
    tcase_add_loop_test(tc, test_it_store_writer_abandoned, 0, N_BACKENDS);
    tcase_add_loop_test(tc, test_it_store_abort_pending, 0, N_BACKENDS);
    tcase_add_loop_test(tc, test_it_store_part_size_refused, 0, N_BACKENDS);
    tcase_add_loop_test(tc, test_it_store_delete_invalid_key, 0, N_BACKENDS);
    tcase_add_loop_test(tc, test_it_store_sink_error_aborts, 0, N_BACKENDS);
    tcase_add_test(tc, test_it_store_s3_outage_retried);
    suite_add_tcase(s, tc);
    return s;
}
