/*
 * check_ua_src: the restore's windowed reader of the archive (struct
 * ua_src, jobs/ua_source.c) over store_mem, directly and behind a store
 * whose GETs run asynchronously and complete in a random order: the bytes
 * and their SHA-256 are those of one sequential read for any window and
 * read size, the window is bounded and used, a sealed archive opens chunk
 * by chunk, and a GET failing mid-window fails the read with its error and
 * leaves nothing in flight once the reader is closed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/wk_buf.h"
#include "common/wk_err.h"
#include "jobs/ua_int.h"
#include "storage/seal.h"
#include "storage/store.h"
#include "storage/store_hash.h"
#include "tests/unit/suites.h"
#include "tests/unit/unit_util.h"
#include "worker/cfg.h"

#define KEY "archived/s/a.zip"

/* ---- a store whose GETs complete later, in a random order ---- */

struct store_pending {
    struct store_get *reqs; /* borrowed */
    size_t n;
    bool done;
    enum wk_code rc;
    struct wk_err err;
    struct store_pending *next;
};

struct fake {
    struct store base;
    struct store *inner;     /* owned: store_mem */
    struct store_pending *q; /* started, not finished */
    unsigned live, max_live; /* pendings allocated (in flight or done) */
    unsigned inflight, max_inflight;
    uint64_t rng;
    uint64_t fail_at;   /* a GET at this offset fails (UINT64_MAX: none) */
    uint64_t refuse_at; /* get_start at this offset fails at once */
    unsigned started, completed_early; /* done before its own finish */
};

static struct fake *fk(struct store *st)
{
    return (struct fake *)st;
}

static unsigned fake_rand(struct fake *f, unsigned n)
{
    f->rng = f->rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (unsigned)((f->rng >> 33) % n);
}

static void complete(struct fake *f, struct store_pending *p)
{
    wk_err_clear(&p->err);
    if (p->reqs[0].offset == f->fail_at) {
        p->rc = wk_err_set(&p->err, WK_E_IO, "get '%s': injected failure",
                           p->reqs[0].key);
        wk_err_copy(&p->reqs[0].err, &p->err);
    } else {
        p->rc = store_get_many(f->inner, p->reqs, p->n, &p->err);
    }
    p->done = true;
    f->inflight--;
}

/* Complete one started request, chosen at random. */
static void complete_one(struct fake *f)
{
    unsigned n = 0, k;
    struct store_pending *p;

    for (p = f->q; p; p = p->next)
        n += !p->done;
    if (n == 0)
        return;
    k = fake_rand(f, n);
    for (p = f->q; p; p = p->next)
        if (!p->done && k-- == 0)
            break;
    complete(f, p);
}

static void unlink_p(struct fake *f, struct store_pending *p)
{
    struct store_pending **pp = &f->q;
    while (*pp != p)
        pp = &(*pp)->next;
    *pp = p->next;
    if (!p->done)
        f->inflight--;
    f->live--;
    free(p);
}

static enum wk_code fake_get_start(struct store *st, struct store_get *reqs,
                                   size_t n, struct store_pending **out,
                                   struct wk_err *err)
{
    struct fake *f = fk(st);
    struct store_pending *p;

    *out = NULL;
    if (n && reqs[0].offset == f->refuse_at)
        return wk_err_set(err, WK_E_NOMEM, "get: injected out of memory");
    p = calloc(1, sizeof(*p));
    ck_assert_ptr_nonnull(p);
    p->reqs = reqs;
    p->n = n;
    p->next = f->q;
    f->q = p;
    f->live++;
    f->started++;
    if (f->live > f->max_live)
        f->max_live = f->live;
    f->inflight++;
    if (f->inflight > f->max_inflight)
        f->max_inflight = f->inflight;
    *out = p;
    return WK_OK;
}

static enum wk_code fake_get_finish(struct store *st, struct store_pending *p,
                                    struct wk_err *err)
{
    struct fake *f = fk(st);
    enum wk_code rc;

    /* others complete first, in any order, until p has */
    if (p->done)
        f->completed_early++;
    while (!p->done)
        complete_one(f);
    rc = p->rc;
    if (rc != WK_OK)
        wk_err_copy(err, &p->err);
    unlink_p(f, p);
    return rc;
}

static void fake_get_abandon(struct store *st, struct store_pending *p)
{
    unlink_p(fk(st), p);
}

static void fake_pump(struct store *st)
{
    complete_one(fk(st));
}

static enum wk_code fake_get_many(struct store *st, struct store_get *reqs,
                                  size_t n, struct wk_err *err)
{
    return store_get_many(fk(st)->inner, reqs, n, err);
}

static void fake_free(struct store *st)
{
    struct fake *f = fk(st);
    store_free(f->inner);
    free(f);
}

static const struct store_ops fake_ops = {
    .name = "fake-async",
    .get_many = fake_get_many,
    .get_start = fake_get_start,
    .get_finish = fake_get_finish,
    .get_abandon = fake_get_abandon,
    .pump = fake_pump,
    .free = fake_free,
};

static struct fake *fake_new(uint64_t seed)
{
    struct fake *f = calloc(1, sizeof(*f));
    struct wk_err e;

    ck_assert_ptr_nonnull(f);
    wk_err_clear(&e);
    f->base.ops = &fake_ops;
    ck_assert_int_eq(store_mem_new(&f->inner, &e), WK_OK);
    f->rng = seed;
    f->fail_at = UINT64_MAX;
    f->refuse_at = UINT64_MAX;
    return f;
}

/* ---- reading ---- */

struct got {
    struct wk_buf bytes;
    char sha[65];
    enum wk_code rc;
    struct wk_err err;
    uint64_t n_reqs;
};

/* Read the whole object through a window of n_reads GETs of read_bytes,
 * as zipr would (pieces used only until the next call). */
static void read_all(struct store *st, uint64_t size, unsigned n_reads,
                     uint64_t read_bytes, const struct seal_dk *dk,
                     struct got *g)
{
    struct ua_src s;
    struct wk_err e;

    memset(&s, 0, sizeof(s));
    memset(g, 0, sizeof(*g));
    wk_err_clear(&e);
    wk_buf_init(&g->bytes, 64u << 20);
    s.st = st;
    s.key = KEY;
    s.size = size;
    s.n_reads = n_reads;
    s.read_bytes = read_bytes;
    ck_assert_int_eq(store_sha256_new(&s.hash, &e), WK_OK);
    if (dk) {
        ck_assert_int_eq(seal_dec_new(dk, size, &s.dec, &e), WK_OK);
        wk_buf_init(&s.plain, dk->chunk_bytes);
    }
    for (;;) {
        const void *p;
        size_t n;
        g->rc = ua_src_read(&s, &p, &n, &g->err);
        if (g->rc != WK_OK || n == 0)
            break;
        ck_assert_int_eq(wk_buf_append(&g->bytes, p, n, &e), WK_OK);
        /* requests move along (complete) between reads, as the store's
         * engine runs them while entries are written */
        if (st->ops->pump)
            store_pump(st);
    }
    store_sha256_final_hex(s.hash, g->sha);
    g->n_reqs = s.n_started;
    ua_src_close(&s);
    ck_assert_ptr_null(s.reads);
    store_sha256_free(s.hash);
    seal_dec_free(s.dec);
    wk_buf_release(&s.plain);
}

static unsigned char *noise(size_t n, unsigned seed)
{
    unsigned char *p = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(p);
    ut_noise(p, n, seed);
    return p;
}

static void put_obj(struct store *st, const void *p, size_t n)
{
    struct wk_err e;
    wk_err_clear(&e);
    ck_assert_int_eq(store_put(st, KEY, p, n, &e), WK_OK);
}

static void check_same(const struct got *g, const unsigned char *want, size_t n,
                       uint64_t read_bytes, const char *what)
{
    char sha[65];

    ck_assert_msg(g->rc == WK_OK, "%s: %s", what, g->err.msg);
    ck_assert_msg(g->bytes.len == n, "%s: %zu bytes, want %zu", what,
                  g->bytes.len, n);
    ck_assert_msg(n == 0 || memcmp(g->bytes.data, want, n) == 0,
                  "%s: bytes differ", what);
    store_sha256_hex(want, n, sha);
    ck_assert_msg(strcmp(g->sha, sha) == 0, "%s: sha %s, want %s", what, g->sha,
                  sha);
    ck_assert_msg(g->n_reqs == (n + read_bytes - 1) / read_bytes,
                  "%s: %llu requests", what, (unsigned long long)g->n_reqs);
}

static const unsigned windows[] = { 1, 2, 3, 4, 7 };

/* Any window and read size over the asynchronous store: a sequential
 * read's bytes and hash, never more GETs in flight than the window, and
 * the whole window in flight when there is that much to read. */
START_TEST(test_window_async_any_size)
{
    static const size_t sizes[] = { 0, 1, 3001, 300 * 1024 + 7 };
    static const uint64_t rbytes[] = { 1, 2, 1000, 4093, 65536, 307207 };

    for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
        unsigned char *data = noise(sizes[si], (unsigned)si + 1);
        for (size_t ri = 0; ri < sizeof(rbytes) / sizeof(rbytes[0]); ri++) {
            if (sizes[si] / rbytes[ri] > 4000)
                continue; /* (1-byte reads of 300 KiB: covered by 3001) */
            for (size_t wi = 0; wi < sizeof(windows) / sizeof(windows[0]);
                 wi++) {
                struct fake *f = fake_new(si * 100 + ri * 10 + wi + 1);
                uint64_t chunks = (sizes[si] + rbytes[ri] - 1) / rbytes[ri];
                unsigned want_max =
                    chunks < windows[wi] ? (unsigned)chunks : windows[wi];
                char what[128];
                struct got g;
                snprintf(what, sizeof(what), "size %zu, reads %u x %llu",
                         sizes[si], windows[wi],
                         (unsigned long long)rbytes[ri]);
                put_obj(f->inner, data, sizes[si]);
                read_all(&f->base, sizes[si], windows[wi], rbytes[ri], NULL,
                         &g);
                check_same(&g, data, sizes[si], rbytes[ri], what);
                ck_assert_msg(f->max_inflight == want_max,
                              "%s: %u in flight at most, want %u", what,
                              f->max_inflight, want_max);
                ck_assert_uint_le(f->max_live, windows[wi]);
                ck_assert_uint_eq(f->live, 0);
                wk_buf_release(&g.bytes);
                store_free(&f->base);
            }
        }
        free(data);
    }
}
END_TEST

/* Completions out of order really happen in the test above: a later GET
 * done before an earlier one is handed out. */
START_TEST(test_window_out_of_order)
{
    size_t n = 200 * 1024 + 3;
    unsigned char *data = noise(n, 9);
    struct fake *f = fake_new(42);
    struct got g;

    put_obj(f->inner, data, n);
    read_all(&f->base, n, 4, 4096, NULL, &g);
    check_same(&g, data, n, 4096, "out of order");
    ck_assert_uint_gt(f->completed_early, 0);
    wk_buf_release(&g.bytes);
    store_free(&f->base);
    free(data);
}
END_TEST

/* A store without asynchronous reads (store_mem): the same bytes. */
START_TEST(test_window_sync_store)
{
    size_t n = 100 * 1024 + 1;
    unsigned char *data = noise(n, 3);
    struct store *st;
    struct wk_err e;

    wk_err_clear(&e);
    ck_assert_int_eq(store_mem_new(&st, &e), WK_OK);
    put_obj(st, data, n);
    for (size_t wi = 0; wi < sizeof(windows) / sizeof(windows[0]); wi++) {
        struct got g;
        read_all(st, n, windows[wi], 777, NULL, &g);
        check_same(&g, data, n, 777, "sync store");
        wk_buf_release(&g.bytes);
    }
    store_free(st);
    free(data);
}
END_TEST

/* A sealed archive: its plaintext, opened chunk by chunk across reads that
 * do not fall on chunk boundaries; the hash is the stored bytes'. */
START_TEST(test_window_sealed)
{
    size_t n = 150 * 1024 + 11, stored;
    unsigned char *plain = noise(n, 5);
    struct seal_dk dk;
    struct store_writer *w;
    struct seal_writer *sw;
    struct store_writer_opts o;
    struct wk_buf sb;
    struct wk_err e;
    static const uint64_t rbytes[] = { 1000, 4096, 4097, 65536 + 5, 1u << 20 };

    memset(&o, 0, sizeof(o));
    wk_err_clear(&e);
    ut_noise(dk.key, sizeof(dk.key), 77);
    dk.chunk_bytes = SEAL_CHUNK_MIN;
    for (size_t ri = 0; ri < sizeof(rbytes) / sizeof(rbytes[0]); ri++) {
        struct fake *f = fake_new(ri + 7);
        char sha[65];
        struct got g;
        ck_assert_int_eq(store_open_write(f->inner, KEY, &o, &w, &e), WK_OK);
        ck_assert_int_eq(seal_writer_new(w, &dk, &sw, &e), WK_OK);
        ck_assert_int_eq(store_writer_write(seal_writer_sink(sw), plain, n, &e),
                         WK_OK);
        ck_assert_int_eq(store_writer_commit(seal_writer_sink(sw), &e), WK_OK);
        store_writer_free(seal_writer_sink(sw));
        wk_buf_init(&sb, 64u << 20);
        ck_assert_int_eq(store_get_all(f->inner, KEY, &sb, &e), WK_OK);
        stored = sb.len;
        ck_assert_uint_eq(stored, seal_stored_size(n, dk.chunk_bytes));
        read_all(&f->base, stored, 3, rbytes[ri], &dk, &g);
        ck_assert_msg(g.rc == WK_OK, "sealed: %s", g.err.msg);
        ck_assert_uint_eq(g.bytes.len, n);
        ck_assert(memcmp(g.bytes.data, plain, n) == 0);
        store_sha256_hex(sb.data, sb.len, sha);
        ck_assert_str_eq(g.sha, sha);
        ck_assert_uint_eq(g.n_reqs, (stored + rbytes[ri] - 1) / rbytes[ri]);
        ck_assert_uint_eq(f->live, 0);
        wk_buf_release(&g.bytes);
        wk_buf_release(&sb);
        store_free(&f->base);
    }
    free(plain);
}
END_TEST

/* A GET failing mid-window: the read fails with its error after exactly
 * the bytes before it, no later bytes are handed out, and closing the
 * reader leaves nothing in flight (ASan: nothing leaked). */
START_TEST(test_window_error_mid_window)
{
    size_t n = 64 * 1024;
    unsigned char *data = noise(n, 11);
    static const uint64_t fail_chunk[] = { 0, 1, 5, 14 };

    for (size_t k = 0; k < sizeof(fail_chunk) / sizeof(fail_chunk[0]); k++) {
        for (int refuse = 0; refuse < 2; refuse++) {
            struct fake *f = fake_new(k + 100);
            struct got g;
            if (refuse)
                f->refuse_at = fail_chunk[k] * 4096;
            else
                f->fail_at = fail_chunk[k] * 4096;
            put_obj(f->inner, data, n);
            read_all(&f->base, n, 4, 4096, NULL, &g);
            ck_assert_int_eq(g.rc, refuse ? WK_E_NOMEM : WK_E_IO);
            ck_assert_ptr_nonnull(strstr(g.err.msg, "injected"));
            ck_assert_uint_eq(g.bytes.len, fail_chunk[k] * 4096);
            ck_assert(g.bytes.len == 0 ||
                      memcmp(g.bytes.data, data, g.bytes.len) == 0);
            /* GETs beyond the failing one were in flight: all gone */
            ck_assert_uint_gt(f->started, fail_chunk[k] + (refuse ? 0 : 1));
            ck_assert_uint_eq(f->live, 0);
            ck_assert_uint_eq(f->inflight, 0);
            wk_buf_release(&g.bytes);
            store_free(&f->base);
        }
    }
    free(data);
}
END_TEST

/* An object shorter than the manifest says: a short read, refused. */
START_TEST(test_window_short_object)
{
    size_t n = 10000;
    unsigned char *data = noise(n, 13);
    struct fake *f = fake_new(5);
    struct got g;

    put_obj(f->inner, data, n);
    read_all(&f->base, n + 100, 3, 4096, NULL, &g);
    ck_assert_int_ne(g.rc, WK_OK);
    ck_assert_uint_le(g.bytes.len, n);
    ck_assert_uint_eq(f->live, 0);
    wk_buf_release(&g.bytes);
    store_free(&f->base);
    free(data);
}
END_TEST

/* The window's settings: defaults, SILA_RESTORE_READS and
 * SILA_RESTORE_READ_SIZE read, values out of range refused. */
START_TEST(test_window_settings)
{
    struct cfg *c = calloc(1, sizeof(*c));
    struct wk_err e;

    ck_assert_ptr_nonnull(c);
    unsetenv("SILA_RESTORE_READS");
    unsetenv("SILA_RESTORE_READ_SIZE");
    wk_err_clear(&e);
    ck_assert_msg(cfg_from_env(c, &e) == WK_OK, "%s", e.msg);
    ck_assert_uint_eq(c->job.reads, 4);
    ck_assert_uint_eq(c->job.read_bytes, 2u << 20);
    setenv("SILA_RESTORE_READS", "9", 1);
    setenv("SILA_RESTORE_READ_SIZE", "3MiB", 1);
    wk_err_clear(&e);
    ck_assert_msg(cfg_from_env(c, &e) == WK_OK, "%s", e.msg);
    ck_assert_uint_eq(c->job.reads, 9);
    ck_assert_uint_eq(c->job.read_bytes, 3u << 20);
    setenv("SILA_RESTORE_READS", "0", 1);
    wk_err_clear(&e);
    ck_assert_int_eq(cfg_from_env(c, &e), WK_E_INVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "SILA_RESTORE_READS"));
    setenv("SILA_RESTORE_READS", "65", 1);
    wk_err_clear(&e);
    ck_assert_int_eq(cfg_from_env(c, &e), WK_E_INVAL);
    unsetenv("SILA_RESTORE_READS");
    setenv("SILA_RESTORE_READ_SIZE", "1KiB", 1);
    wk_err_clear(&e);
    ck_assert_int_eq(cfg_from_env(c, &e), WK_E_INVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "SILA_RESTORE_READ_SIZE"));
    unsetenv("SILA_RESTORE_READ_SIZE");
    free(c);
}
END_TEST

Suite *ua_src_suite(void)
{
    Suite *s = suite_create("ua_src");
    TCase *tc = tcase_create("window");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_window_async_any_size);
    tcase_add_test(tc, test_window_out_of_order);
    tcase_add_test(tc, test_window_sync_store);
    tcase_add_test(tc, test_window_sealed);
    tcase_add_test(tc, test_window_error_mid_window);
    tcase_add_test(tc, test_window_short_object);
    tcase_add_test(tc, test_window_settings);
    suite_add_tcase(s, tc);
    return s;
}
