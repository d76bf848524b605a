/*
 * check_ua_pipe: the whole restore (job_run: archive, then unarchive) over
 * a store whose GETs and PUT batches run asynchronously and complete in a
 * random order (store_mem behind it): with the read window and the two
 * PUT batches overlapping, every object comes back exactly; a PUT failing
 * mid-restore fails the job, the PUTs in flight are taken (what they wrote
 * is deleted again) and nothing is left in flight.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/job.h"
#include "storage/store.h"
#include "storage/store_hash.h"
#include "tests/unit/suites.h"
#include "tests/unit/unit_util.h"

#define SPACE  "00112233445566778899aabbccddeeff"
#define ACTIVE "active/" SPACE "/"
#define NBLOBS 120

/* One asynchronous request: a GET batch or a PUT batch. */
struct pend {
    bool put;
    struct store_get *greqs;
    struct store_put *puts;
    size_t n;
    bool done;
    enum wk_code rc;
    struct wk_err err;
    struct pend *next;
};

struct store_pending {
    struct pend p;
};
struct store_put_batch {
    struct pend p;
};

struct pst {
    struct store base;
    struct store *inner; /* owned: store_mem */
    struct pend *q;
    unsigned live, max_live;
    uint64_t rng;
    const char *fail_put; /* a PUT whose key holds this fails (NULL: none) */
    unsigned puts_async, gets_async;
    unsigned puts_live, max_puts_live; /* PUT batches in flight */
};

static struct pst *ps(struct store *st)
{
    return (struct pst *)st;
}

static void pend_complete(struct pst *s, struct pend *p)
{
    wk_err_clear(&p->err);
    if (p->put) {
        p->rc = WK_OK;
        for (size_t i = 0; i < p->n; i++) {
            struct store_put *q = &p->puts[i];
            if (s->fail_put && strstr(q->key, s->fail_put)) {
                wk_err_set(&q->err, WK_E_IO, "put '%s': injected", q->key);
            } else {
                struct store_put one = *q;
                (void)store_put_many(s->inner, &one, 1, &one.err);
                q->err = one.err;
            }
            if (q->err.code != WK_OK && p->rc == WK_OK)
                p->rc = wk_err_copy(&p->err, &q->err);
        }
    } else {
        p->rc = store_get_many(s->inner, p->greqs, p->n, &p->err);
    }
    p->done = true;
}

static void complete_one(struct pst *s)
{
    unsigned n = 0, k;
    struct pend *p;

    for (p = s->q; p; p = p->next)
        n += !p->done;
    if (n == 0)
        return;
    s->rng = s->rng * 6364136223846793005ULL + 1442695040888963407ULL;
    k = (unsigned)((s->rng >> 33) % n);
    for (p = s->q; p; p = p->next)
        if (!p->done && k-- == 0)
            break;
    pend_complete(s, p);
}

static void pend_add(struct pst *s, struct pend *p)
{
    p->next = s->q;
    s->q = p;
    if (++s->live > s->max_live)
        s->max_live = s->live;
}

static void pend_drop(struct pst *s, struct pend *p)
{
    struct pend **pp = &s->q;
    if (p->put)
        s->puts_live--;
    while (*pp != p)
        pp = &(*pp)->next;
    *pp = p->next;
    s->live--;
}

static enum wk_code pend_finish(struct pst *s, struct pend *p,
                                struct wk_err *err)
{
    enum wk_code rc;
    while (!p->done)
        complete_one(s);
    rc = p->rc;
    if (rc != WK_OK)
        wk_err_copy(err, &p->err);
    pend_drop(s, p);
    return rc;
}

static enum wk_code p_get_start(struct store *st, struct store_get *reqs,
                                size_t n, struct store_pending **out,
                                struct wk_err *err)
{
    struct store_pending *p = calloc(1, sizeof(*p));
    (void)err;
    ck_assert_ptr_nonnull(p);
    p->p.greqs = reqs;
    p->p.n = n;
    pend_add(ps(st), &p->p);
    ps(st)->gets_async++;
    *out = p;
    return WK_OK;
}

static enum wk_code p_get_finish(struct store *st, struct store_pending *p,
                                 struct wk_err *err)
{
    enum wk_code rc = pend_finish(ps(st), &p->p, err);
    free(p);
    return rc;
}

static void p_get_abandon(struct store *st, struct store_pending *p)
{
    pend_drop(ps(st), &p->p);
    free(p);
}

static enum wk_code p_put_start(struct store *st, struct store_put *reqs,
                                size_t n, struct store_put_batch **out,
                                struct wk_err *err)
{
    struct store_put_batch *p = calloc(1, sizeof(*p));
    (void)err;
    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < n; i++)
        wk_err_clear(&reqs[i].err);
    p->p.put = true;
    p->p.puts = reqs;
    p->p.n = n;
    pend_add(ps(st), &p->p);
    ps(st)->puts_async++;
    if (++ps(st)->puts_live > ps(st)->max_puts_live)
        ps(st)->max_puts_live = ps(st)->puts_live;
    *out = p;
    return WK_OK;
}

static enum wk_code p_put_finish(struct store *st, struct store_put_batch *p,
                                 struct wk_err *err)
{
    enum wk_code rc = pend_finish(ps(st), &p->p, err);
    free(p);
    return rc;
}

static void p_put_abandon(struct store *st, struct store_put_batch *p)
{
    pend_drop(ps(st), &p->p);
    free(p);
}

static void p_pump(struct store *st)
{
    complete_one(ps(st));
}

/* everything else: store_mem's, at once */
static enum wk_code p_list(struct store *st, const char *prefix,
                           const char *delim, store_list_cb cb, void *ud,
                           struct wk_err *err)
{
    return store_list(ps(st)->inner, prefix, delim, cb, ud, err);
}
static enum wk_code p_head(struct store *st, const char *key,
                           struct store_stat *out, struct wk_err *err)
{
    return store_head(ps(st)->inner, key, out, err);
}
static enum wk_code p_get(struct store *st, const char *key, uint64_t off,
                          uint64_t len, store_sink_cb sink, void *ud,
                          struct wk_err *err)
{
    return store_get(ps(st)->inner, key, off, len, sink, ud, err);
}
static enum wk_code p_get_many(struct store *st, struct store_get *reqs,
                               size_t n, struct wk_err *err)
{
    return store_get_many(ps(st)->inner, reqs, n, err);
}
static enum wk_code p_put(struct store *st, const char *key, const void *p,
                          size_t n, struct wk_err *err)
{
    return store_put(ps(st)->inner, key, p, n, err);
}
static enum wk_code p_put_if(struct store *st, const char *key, const void *p,
                             size_t n, const char *if_match, char *etag_out,
                             size_t etag_len, struct wk_err *err)
{
    return store_put_if(ps(st)->inner, key, p, n, if_match, etag_out, etag_len,
                        err);
}
static enum wk_code p_put_many(struct store *st, struct store_put *reqs,
                               size_t n, struct wk_err *err)
{
    return store_put_many(ps(st)->inner, reqs, n, err);
}
static enum wk_code p_open_write(struct store *st, const char *key,
                                 const struct store_writer_opts *o,
                                 struct store_writer **out, struct wk_err *err)
{
    return store_open_write(ps(st)->inner, key, o, out, err);
}
static enum wk_code p_delete_many(struct store *st, const char *const *keys,
                                  size_t n, size_t *nd, struct wk_err *err)
{
    return store_delete_many(ps(st)->inner, keys, n, nd, err);
}
static enum wk_code p_delete_if(struct store *st, const char *const *keys,
                                const char *const *etags, size_t n, size_t *nd,
                                bool *kept, struct wk_err *err)
{
    return store_delete_if(ps(st)->inner, keys, etags, n, nd, kept, err);
}
static enum wk_code p_abort_pending(struct store *st, const char *prefix,
                                    size_t *na, struct wk_err *err)
{
    return store_abort_pending(ps(st)->inner, prefix, na, err);
}
static enum wk_code p_count_pending(struct store *st, const char *prefix,
                                    size_t *np, struct wk_err *err)
{
    return store_count_pending(ps(st)->inner, prefix, np, err);
}
static void p_free(struct store *st)
{
    store_free(ps(st)->inner);
    free(st);
}

static const struct store_ops p_ops = {
    .name = "async-random",
    .list = p_list,
    .head = p_head,
    .get = p_get,
    .get_many = p_get_many,
    .get_start = p_get_start,
    .get_finish = p_get_finish,
    .get_abandon = p_get_abandon,
    .pump = p_pump,
    .put = p_put,
    .put_if = p_put_if,
    .put_many = p_put_many,
    .put_start = p_put_start,
    .put_finish = p_put_finish,
    .put_abandon = p_put_abandon,
    .open_write = p_open_write,
    .delete_many = p_delete_many,
    .delete_if = p_delete_if,
    .abort_pending = p_abort_pending,
    .count_pending = p_count_pending,
    .free = p_free,
};

/* ---- a space ---- */

struct obj {
    char key[200];
    unsigned char *data;
    size_t len;
};

static struct obj objs[NBLOBS + 3];
static size_t n_objs;

static void add_obj(struct store *st, const char *key, size_t len,
                    unsigned seed, bool cas)
{
    struct obj *o = &objs[n_objs++];
    struct wk_err e;
    char hex[65];

    o->len = len;
    o->data = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(o->data);
    ut_noise(o->data, len, seed);
    if (cas) {
        store_sha256_hex(o->data, len, hex);
        snprintf(o->key, sizeof(o->key),
                 ACTIVE "space-v1/files/static/sha256/%.2s/%s", hex, hex + 2);
    } else {
        snprintf(o->key, sizeof(o->key), "%s", key);
    }
    wk_err_clear(&e);
    ck_assert_int_eq(store_put(st, o->key, o->data, len, &e), WK_OK);
}

static struct pst *space_new(uint64_t seed)
{
    struct pst *s = calloc(1, sizeof(*s));
    struct wk_err e;

    ck_assert_ptr_nonnull(s);
    wk_err_clear(&e);
    s->base.ops = &p_ops;
    s->rng = seed;
    ck_assert_int_eq(store_mem_new(&s->inner, &e), WK_OK);
    n_objs = 0;
    add_obj(s->inner, ACTIVE "space-v1/space.json", 40, 1, false);
    add_obj(s->inner, ACTIVE "sila.md", 30, 2, false);
    add_obj(s->inner, ACTIVE "space-v1/secrets", 20, 3, false);
    /* small blobs, a few of 100 KiB and more: batches fill by count and by
     * bytes, reads end mid-entry */
    for (unsigned i = 0; i < NBLOBS; i++)
        add_obj(s->inner, NULL, i % 17 == 0 ? 100000 + i * 731 : 50 + i * 37,
                100 + i, true);
    return s;
}

static void space_free(struct pst *s)
{
    for (size_t i = 0; i < n_objs; i++)
        free(objs[i].data);
    n_objs = 0;
    store_free(&s->base);
}

static enum wk_code run(struct pst *s, enum job_type type, struct wk_err *err)
{
    struct job job;
    struct job_ctx ctx;
    struct job_config cfg;
    struct wk_buf result;
    enum wk_code rc;

    job_config_defaults(&cfg);
    cfg.window_objects = 5;        /* many batches */
    cfg.window_bytes = 256 * 1024; /* halves of 128 KiB: some by bytes */
    cfg.reads = 3;
    cfg.read_bytes = 64 * 1024 + 3;
    memset(&job, 0, sizeof(job));
    snprintf(job.id, sizeof(job.id), "j-pipe");
    job.type = type;
    snprintf(job.space_id, sizeof(job.space_id), "%s", SPACE);
    memset(&ctx, 0, sizeof(ctx));
    ctx.store = &s->base;
    ctx.cfg = &cfg;
    wk_buf_init(&result, 1u << 16);
    wk_err_clear(err);
    rc = job_run(&job, &ctx, &result, err);
    wk_buf_release(&result);
    return rc;
}

static size_t count_cb_n;
static enum wk_code count_cb(const struct store_entry *e, void *ud,
                             struct wk_err *err)
{
    (void)e;
    (void)ud;
    (void)err;
    count_cb_n++;
    return WK_OK;
}

static size_t count(struct store *st, const char *prefix)
{
    struct wk_err e;
    wk_err_clear(&e);
    count_cb_n = 0;
    ck_assert_int_eq(store_list(st, prefix, NULL, count_cb, NULL, &e), WK_OK);
    return count_cb_n;
}

START_TEST(test_pipe_restore_exact)
{
    for (uint64_t seed = 1; seed <= 4; seed++) {
        struct pst *s = space_new(seed);
        struct wk_err e;
        ck_assert_msg(run(s, JOB_ARCHIVE, &e) == WK_OK, "archive: %s", e.msg);
        ck_assert_uint_eq(count(s->inner, ACTIVE), 0);
        s->puts_async = s->gets_async = 0;
        ck_assert_msg(run(s, JOB_UNARCHIVE, &e) == WK_OK, "unarchive: %s",
                      e.msg);
        /* the asynchronous paths ran, two batches at once */
        ck_assert_uint_gt(s->puts_async, 10);
        ck_assert_uint_gt(s->gets_async, 3);
        ck_assert_uint_eq(s->max_puts_live, 2);
        ck_assert_uint_eq(s->live, 0);
        ck_assert_uint_eq(count(s->inner, ACTIVE), n_objs);
        for (size_t i = 0; i < n_objs; i++) {
            struct wk_buf b;
            wk_buf_init(&b, 1u << 20);
            wk_err_clear(&e);
            ck_assert_int_eq(store_get_all(s->inner, objs[i].key, &b, &e),
                             WK_OK);
            ck_assert_uint_eq(b.len, objs[i].len);
            ck_assert(memcmp(b.data, objs[i].data, b.len) == 0);
            wk_buf_release(&b);
        }
        space_free(s);
    }
}
END_TEST

/* Every object under active/ is exactly one of the space's (none half
 * written, none foreign); how many. */
static size_t check_present(struct pst *s)
{
    size_t n = 0;
    for (size_t i = 0; i < n_objs; i++) {
        struct wk_buf b;
        struct wk_err e;
        enum wk_code rc;
        wk_buf_init(&b, 1u << 20);
        wk_err_clear(&e);
        rc = store_get_all(s->inner, objs[i].key, &b, &e);
        if (rc == WK_OK) {
            ck_assert_uint_eq(b.len, objs[i].len);
            ck_assert(memcmp(b.data, objs[i].data, b.len) == 0);
            n++;
        } else {
            ck_assert_int_eq(rc, WK_E_NOTFOUND);
        }
        wk_buf_release(&b);
    }
    ck_assert_uint_eq(count(s->inner, ACTIVE), n);
    return n;
}

/* A PUT failing mid-restore (after others landed, with a batch in flight):
 * the job fails with its error, nothing stays in flight, what is under
 * active/ is only the space's own objects, and the next run restores all
 * of them. */
START_TEST(test_pipe_put_fails_mid_restore)
{
    for (uint64_t seed = 1; seed <= 4; seed++) {
        struct pst *s = space_new(seed + 10);
        struct wk_err e;
        ck_assert_msg(run(s, JOB_ARCHIVE, &e) == WK_OK, "archive: %s", e.msg);
        s->fail_put = objs[3 + (seed * 37) % NBLOBS].key + strlen(ACTIVE);
        ck_assert_int_eq(run(s, JOB_UNARCHIVE, &e), WK_E_IO);
        ck_assert_ptr_nonnull(strstr(e.msg, "injected"));
        ck_assert_uint_eq(s->live, 0);
        ck_assert_uint_lt(check_present(s), n_objs);
        s->fail_put = NULL;
        ck_assert_msg(run(s, JOB_UNARCHIVE, &e) == WK_OK, "again: %s", e.msg);
        ck_assert_uint_eq(check_present(s), n_objs);
        space_free(s);
    }
}
END_TEST

Suite *ua_pipe_suite(void)
{
    Suite *s = suite_create("ua_pipe");
    TCase *tc = tcase_create("pipe");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_pipe_restore_exact);
    tcase_add_test(tc, test_pipe_put_fails_mid_restore);
    suite_add_tcase(s, tc);
    return s;
}
