/* job_archive against store_mem, through a wrapper store whose listings and
 * reads can change the space the way a user writing during an archive
 * does: the archive is redone from the new listing, given up after the
 * configured tries (space left active and untouched), and objects written
 * after the manifest are kept, never deleted. */
#include <jansson.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#if defined(__SANITIZE_ADDRESS__)
/* ASan's allocator replaces glibc's (its <sanitizer/allocator_interface.h>
 * comes with clang, not with gcc) */
size_t __sanitizer_get_current_allocated_bytes(void);
#endif

#include "jobs/job.h"
#include "jobs/manifest.h"
#include "jobs/rekey.h"
#include "jobs/progress.h"
#include "zip/zcat.h"
#include "zip/zipr.h"
#include "storage/seal.h"
#include "storage/store.h"
#include "storage/store_hash.h"
#include "tests/unit/suites.h"
#include "tests/unit/unit_util.h"

#define SPACE     "0123456789abcdef0123456789abcdef"
#define ACTIVE    "active/" SPACE "/"
#define MF_KEY    "metadata/" SPACE ".json"
#define ARCHIVE   "archived/" SPACE "/workspace-20261126T140000Z.zip"
#define FIXED_NOW 1795701600 /* 2026-11-26T14:00:00Z */

#define K_SPACE   ACTIVE "space-v1/space.json"
#define K_SILA    ACTIVE "sila.md"
#define K_SECRETS ACTIVE "space-v1/secrets"
#define OPS_DAY   ACTIVE "space-v1/ops/ab/cdef/2026/11/26/"
#define K_MOVES   OPS_DAY "1111aaaa-m.jsonl"
#define K_PROPS   OPS_DAY "1111aaaa-p.jsonl"
#define K_NEWPEER OPS_DAY "2222bbbb-m.jsonl"
#define K_OLDOPS  ACTIVE "space-v1/ops/ab/cdef/2026/01/02/0000cccc-m.jsonl"
#define K_VAR     ACTIVE "space-v1/files/var/uuid/9a/bcdef0123456789abcdef012345678"

/* ---- a store that forwards to store_mem, with hooks ---- */

struct wrap_store;
typedef void (*wrap_hook)(struct wrap_store *w, unsigned n);

struct wrap_store {
    struct store base;
    struct store *inner;      /* owned */
    unsigned nlist;           /* listings of active/ so far */
    unsigned nget;            /* batch reads so far */
    wrap_hook on_list;        /* before listing nlist (1-based) is served */
    wrap_hook on_get;         /* before batch read nget is served */
    wrap_hook on_delete;      /* before a conditional delete of n keys */
    bool fail_archive_delete; /* deleting archived/ keys fails */
    bool fail_active_delete;  /* deleting active/ keys fails */
    unsigned fail_active_put; /* writing active/ keys fails after this many
                                 batches (0 = never) */
    unsigned nput;            /* batch writes to active/ so far */
    char put_state[16];       /* the manifest's state at the first one */
    unsigned lines;           /* lines appended by the hooks */
    /* after a streamed write of an archived/ key is committed (the store
     * now holds it; the job has not read it back yet) */
    void (*on_commit)(struct wrap_store *w, const char *key);
};

static struct wrap_store *wrap_of(struct store *st)
{
    return (struct wrap_store *)st;
}

static enum wk_code wrap_list(struct store *st, const char *prefix,
                              const char *delimiter, store_list_cb cb, void *ud,
                              struct wk_err *err)
{
    struct wrap_store *w = wrap_of(st);
    if (prefix && strncmp(prefix, "active/", 7) == 0) {
        w->nlist++;
        if (w->on_list)
            w->on_list(w, w->nlist);
    }
    return store_list(w->inner, prefix, delimiter, cb, ud, err);
}

static enum wk_code wrap_head(struct store *st, const char *key,
                              struct store_stat *out, struct wk_err *err)
{
    return store_head(wrap_of(st)->inner, key, out, err);
}

static enum wk_code wrap_get(struct store *st, const char *key, uint64_t offset,
                             uint64_t len, store_sink_cb sink, void *ud,
                             struct wk_err *err)
{
    return store_get(wrap_of(st)->inner, key, offset, len, sink, ud, err);
}

static enum wk_code wrap_get_many(struct store *st, struct store_get *reqs,
                                  size_t n, struct wk_err *err)
{
    struct wrap_store *w = wrap_of(st);
    w->nget++;
    if (w->on_get)
        w->on_get(w, w->nget);
    return store_get_many(w->inner, reqs, n, err);
}

static enum wk_code wrap_put(struct store *st, const char *key, const void *p,
                             size_t n, struct wk_err *err)
{
    return store_put(wrap_of(st)->inner, key, p, n, err);
}

static enum wk_code wrap_put_if(struct store *st, const char *key,
                                const void *p, size_t n, const char *if_match,
                                char *etag_out, size_t etag_len,
                                struct wk_err *err)
{
    return store_put_if(wrap_of(st)->inner, key, p, n, if_match, etag_out,
                        etag_len, err);
}

static void manifest_state(struct store *st, char *out, size_t len);

static enum wk_code wrap_put_many(struct store *st, struct store_put *reqs,
                                  size_t n, struct wk_err *err)
{
    struct wrap_store *w = wrap_of(st);
    if (n > 0 && strncmp(reqs[0].key, "active/", 7) == 0) {
        if (w->nput++ == 0)
            manifest_state(w->inner, w->put_state, sizeof(w->put_state));
        if (w->fail_active_put && w->nput > w->fail_active_put)
            return wk_err_set(err, WK_E_NET, "put '%s': reset (test)",
                              reqs[0].key);
    }
    return store_put_many(w->inner, reqs, n, err);
}

/* A streamed write through to the inner store, with on_commit. */
struct wrap_writer {
    struct store_writer base;
    struct store_writer *inner; /* owned */
    struct wrap_store *w;       /* borrowed */
    char key[256];
};

static enum wk_code wrap_w_write(struct store_writer *sw, const void *p,
                                 size_t n, struct wk_err *err)
{
    return store_writer_write(((struct wrap_writer *)sw)->inner, p, n, err);
}

static enum wk_code wrap_w_commit(struct store_writer *sw, struct wk_err *err)
{
    struct wrap_writer *ww = (struct wrap_writer *)sw;
    enum wk_code rc = store_writer_commit(ww->inner, err);
    if (rc == WK_OK && ww->w->on_commit &&
        strncmp(ww->key, "archived/", 9) == 0)
        ww->w->on_commit(ww->w, ww->key);
    return rc;
}

static void wrap_w_free(struct store_writer *sw)
{
    struct wrap_writer *ww = (struct wrap_writer *)sw;
    store_writer_free(ww->inner);
    free(ww);
}

static const struct store_writer_ops wrap_writer_ops = {
    .name = "wrap",
    .write = wrap_w_write,
    .commit = wrap_w_commit,
    .free = wrap_w_free,
};

static enum wk_code wrap_open_write(struct store *st, const char *key,
                                    const struct store_writer_opts *opts,
                                    struct store_writer **out,
                                    struct wk_err *err)
{
    struct wrap_store *w = wrap_of(st);
    struct wrap_writer *ww;
    enum wk_code rc;

    if (!w->on_commit)
        return store_open_write(w->inner, key, opts, out, err);
    ww = calloc(1, sizeof(*ww));
    ck_assert_ptr_nonnull(ww);
    rc = store_open_write(w->inner, key, opts, &ww->inner, err);
    if (rc != WK_OK) {
        free(ww);
        return rc;
    }
    ww->base.ops = &wrap_writer_ops;
    ww->w = w;
    snprintf(ww->key, sizeof(ww->key), "%s", key);
    *out = &ww->base;
    return WK_OK;
}

static enum wk_code wrap_delete_many(struct store *st, const char *const *keys,
                                     size_t n, size_t *ndeleted,
                                     struct wk_err *err)
{
    struct wrap_store *w = wrap_of(st);
    for (size_t i = 0; i < n && w->fail_active_delete; i++)
        if (strncmp(keys[i], "active/", 7) == 0) {
            if (ndeleted)
                *ndeleted = 0;
            return wk_err_set(err, WK_E_NET, "delete '%s': reset (test)",
                              keys[i]);
        }
    for (size_t i = 0; i < n && w->fail_archive_delete; i++)
        if (strncmp(keys[i], "archived/", 9) == 0) {
            if (ndeleted)
                *ndeleted = 0;
            return wk_err_set(err, WK_E_HTTP, "delete '%s': HTTP 500 (test)",
                              keys[i]);
        }
    return store_delete_many(w->inner, keys, n, ndeleted, err);
}

static enum wk_code wrap_delete_if(struct store *st, const char *const *keys,
                                   const char *const *etags, size_t n,
                                   size_t *ndeleted, bool *kept,
                                   struct wk_err *err)
{
    struct wrap_store *w = wrap_of(st);
    if (w->on_delete)
        w->on_delete(w, n);
    for (size_t i = 0; i < n && w->fail_active_delete; i++)
        if (strncmp(keys[i], "active/", 7) == 0) {
            *ndeleted = 0;
            return wk_err_set(err, WK_E_NET, "delete '%s': reset (test)",
                              keys[i]);
        }
    return store_delete_if(w->inner, keys, etags, n, ndeleted, kept, err);
}

static enum wk_code wrap_abort_pending(struct store *st, const char *prefix,
                                       size_t *naborted, struct wk_err *err)
{
    return store_abort_pending(wrap_of(st)->inner, prefix, naborted, err);
}

static enum wk_code wrap_count_pending(struct store *st, const char *prefix,
                                       size_t *npending, struct wk_err *err)
{
    return store_count_pending(wrap_of(st)->inner, prefix, npending, err);
}

static void wrap_free(struct store *st)
{
    struct wrap_store *w = wrap_of(st);
    store_free(w->inner);
    free(w);
}

static const struct store_ops wrap_ops = {
    .name = "wrap",
    .list = wrap_list,
    .head = wrap_head,
    .get = wrap_get,
    .get_many = wrap_get_many,
    .put = wrap_put,
    .put_if = wrap_put_if,
    .put_many = wrap_put_many,
    .open_write = wrap_open_write,
    .delete_many = wrap_delete_many,
    .delete_if = wrap_delete_if,
    .abort_pending = wrap_abort_pending,
    .count_pending = wrap_count_pending,
    .free = wrap_free,
};

/* ---- helpers ---- */

static void put_text(struct store *st, const char *key, const char *text)
{
    struct wk_err err;
    wk_err_clear(&err);
    ck_assert_msg(store_put(st, key, text, strlen(text), &err) == WK_OK,
                  "put '%s': %s", key, err.msg);
}

/* The object's text (free()), or NULL when it does not exist. */
static char *get_text(struct store *st, const char *key)
{
    struct wk_buf b;
    struct wk_err err;
    enum wk_code rc;
    size_t len;
    char *s;

    wk_buf_init(&b, 1u << 24);
    wk_err_clear(&err);
    rc = store_get_all(st, key, &b, &err);
    if (rc == WK_E_NOTFOUND) {
        wk_buf_release(&b);
        return NULL;
    }
    ck_assert_msg(rc == WK_OK, "get '%s': %s", key, err.msg);
    s = wk_buf_detach(&b, &len);
    if (!s)
        s = strdup("");
    ck_assert_ptr_nonnull(s);
    return s;
}

/* A user's session appending one op line (or creating the file). */
static void append_line(struct wrap_store *w, const char *key)
{
    char *old = get_text(w->inner, key);
    char line[128];
    struct wk_buf b;
    struct wk_err err;

    snprintf(line, sizeof(line), "[%u,\"0123456789abcdef\",null]\n",
             ++w->lines);
    wk_buf_init(&b, 1u << 20);
    wk_err_clear(&err);
    ck_assert_int_eq(wk_buf_appends(&b, old ? old : "", &err), WK_OK);
    ck_assert_int_eq(wk_buf_appends(&b, line, &err), WK_OK);
    put_text(w->inner, key, wk_buf_cstr(&b));
    wk_buf_release(&b);
    free(old);
}

static enum wk_code count_cb(const struct store_entry *e, void *ud,
                             struct wk_err *err)
{
    (void)e;
    (void)err;
    (*(size_t *)ud)++;
    return WK_OK;
}

/* Objects under prefix (on the inner store: not one of the job's
 * listings). */
static size_t count(struct store *st, const char *prefix)
{
    size_t n = 0;
    struct wk_err err;

    wk_err_clear(&err);
    ck_assert_int_eq(store_list(st, prefix, NULL, count_cb, &n, &err), WK_OK);
    return n;
}

static struct wrap_store *new_space(void)
{
    struct wrap_store *w = calloc(1, sizeof(*w));
    struct wk_err err;

    ck_assert_ptr_nonnull(w);
    wk_err_clear(&err);
    ck_assert_int_eq(store_mem_new(&w->inner, &err), WK_OK);
    w->base.ops = &wrap_ops;
    put_text(w->inner, K_SPACE, "{\"id\":\"" SPACE "\"}");
    put_text(w->inner, K_SILA, "# Sila workspace\n");
    put_text(w->inner, K_SECRETS, "c2VjcmV0cw==\n");
    put_text(w->inner, K_OLDOPS, "[1,\"aa\",null]\n[2,\"bb\",\"aa\"]\n");
    put_text(w->inner, K_MOVES, "[1,\"cc\",null]\n");
    put_text(w->inner, K_PROPS,
             "[1,\"cc\",\"name\",\"a long enough value\"]\n"
             "[2,\"cc\",\"name\",\"another long value\"]\n");
    put_text(w->inner, K_VAR, "variable blob contents");
    return w;
}

/* A sink that checks progress never goes back and remembers the end. */
struct test_sink {
    struct prog_sink base;
    int last_progress;
    const char *last_phase;
    unsigned updates;
};

static void test_sink_update(struct prog_sink *s, const struct prog_state *st)
{
    struct test_sink *t = (struct test_sink *)s;
    ck_assert_int_ge(st->progress, t->last_progress);
    t->last_progress = st->progress;
    t->last_phase = st->phase;
    t->updates++;
}

static const struct prog_sink_ops test_sink_ops = {
    .update = test_sink_update,
};

static time_t fixed_now(void)
{
    return (time_t)FIXED_NOW;
}

struct run {
    struct job_config cfg;
    struct test_sink sink;
    struct wk_buf result;
    struct wk_err err;
    json_t *res; /* parsed result on success */
};

/* Master keys the next runs get (NULL: no client-side encryption). */
static const struct seal_keyring *g_keys;

static enum wk_code run_job(struct wrap_store *w, struct run *r,
                            enum job_type type, unsigned tries, bool set_tries)
{
    struct job job;
    struct job_ctx ctx;
    enum wk_code rc;

    memset(r, 0, sizeof(*r));
    job_config_defaults(&r->cfg);
    if (set_tries)
        r->cfg.archive_tries = tries;
    r->cfg.window_objects = 3; /* several batches */
    r->sink.base.ops = &test_sink_ops;
    memset(&job, 0, sizeof(job));
    snprintf(job.id, sizeof(job.id), "j-1");
    job.type = type;
    snprintf(job.space_id, sizeof(job.space_id), "%s", SPACE);
    memset(&ctx, 0, sizeof(ctx));
    ctx.store = &w->base;
    ctx.sink = &r->sink.base;
    ctx.cfg = &r->cfg;
    ctx.now = fixed_now;
    ctx.keys = g_keys;
    wk_buf_init(&r->result, 1u << 16);
    wk_err_clear(&r->err);
    rc = job_run(&job, &ctx, &r->result, &r->err);
    if (rc == WK_OK) {
        json_error_t jerr;
        r->res = json_loads(wk_buf_cstr(&r->result), 0, &jerr);
        ck_assert_msg(r->res != NULL, "result '%s'", wk_buf_cstr(&r->result));
        ck_assert_int_eq(r->sink.last_progress, 100);
        ck_assert_str_eq(r->sink.last_phase, "done");
    }
    return rc;
}

static enum wk_code run_archive_cfg(struct wrap_store *w, struct run *r,
                                    unsigned tries, bool set_tries)
{
    return run_job(w, r, JOB_ARCHIVE, tries, set_tries);
}

static enum wk_code run_archive(struct wrap_store *w, struct run *r)
{
    return run_job(w, r, JOB_ARCHIVE, 0, false);
}

static void run_release(struct run *r)
{
    json_decref(r->res);
    wk_buf_release(&r->result);
}

static long long res_int(const struct run *r, const char *field)
{
    json_t *v = json_object_get(r->res, field);
    ck_assert_msg(json_is_integer(v), "result field '%s' in %s", field,
                  wk_buf_cstr(&r->result));
    return (long long)json_integer_value(v);
}

static const char *res_str(const struct run *r, const char *field)
{
    json_t *v = json_object_get(r->res, field);
    ck_assert_msg(json_is_string(v), "result field '%s' in %s", field,
                  wk_buf_cstr(&r->result));
    return json_string_value(v);
}

static void read_manifest(struct store *st, struct mf *m)
{
    char *text = get_text(st, MF_KEY);
    struct wk_err err;

    ck_assert_ptr_nonnull(text);
    wk_err_clear(&err);
    ck_assert_msg(mf_parse(text, strlen(text), m, &err) == WK_OK, "%s",
                  err.msg);
    free(text);
}

static void manifest_state(struct store *st, char *out, size_t len)
{
    struct mf m;
    read_manifest(st, &m);
    snprintf(out, len, "%s", mf_state_name(m.state));
}

/* Rewrite the manifest's state (what a run that died would leave). */
static void set_manifest_state(struct store *st, enum mf_state state)
{
    struct mf m;
    struct wk_buf b;
    struct wk_err e;

    read_manifest(st, &m);
    m.state = state;
    wk_buf_init(&b, 1u << 20);
    wk_err_clear(&e);
    ck_assert_int_eq(mf_to_json(&m, &b, &e), WK_OK);
    put_text(st, MF_KEY, wk_buf_cstr(&b));
    wk_buf_release(&b);
}

/* ---- reading an archive back ---- */

struct zip_src {
    char *data;
    size_t len;
    bool done;
};

static enum wk_code zip_read(void *ud, const void **p, size_t *n,
                             struct wk_err *err)
{
    struct zip_src *z = ud;
    (void)err;
    *p = z->data;
    *n = z->done ? 0 : z->len;
    z->done = true;
    return WK_OK;
}

/* Every entry of the ZIP at key: names[i] and texts[i] (free() each). */
struct zip_content {
    size_t n;
    char *names[32];
    char *texts[32];
};

static void zip_load(struct store *st, const char *key, struct zip_content *c)
{
    struct zipr_limits lim = { 1u << 24, 32, 1000, 1u << 20 };
    struct zip_src src = { NULL, 0, false };
    struct zipr *zr = NULL;
    struct wk_err err;
    bool eof = false;

    memset(c, 0, sizeof(*c));
    src.data = get_text(st, key);
    ck_assert_msg(src.data != NULL, "no archive '%s'", key);
    {
        struct store_stat sb;
        wk_err_clear(&err);
        ck_assert_int_eq(store_head(st, key, &sb, &err), WK_OK);
        src.len = (size_t)sb.size;
    }
    wk_err_clear(&err);
    ck_assert_msg(zipr_new(zip_read, &src, &lim, &zr, &err) == WK_OK, "%s",
                  err.msg);
    for (;;) {
        struct zipr_entry e;
        struct wk_buf b;
        char buf[4096];
        size_t nr;
        ck_assert_msg(zipr_next(zr, &e, &eof, &err) == WK_OK, "%s", err.msg);
        if (eof)
            break;
        ck_assert_uint_lt(c->n, 32);
        c->names[c->n] = strdup(e.name);
        wk_buf_init(&b, 1u << 20);
        do {
            ck_assert_msg(zipr_read(zr, buf, sizeof(buf), &nr, &err) == WK_OK,
                          "%s", err.msg);
            ck_assert_int_eq(wk_buf_append(&b, buf, nr, &err), WK_OK);
        } while (nr > 0);
        c->texts[c->n] = strdup(wk_buf_cstr(&b));
        wk_buf_release(&b);
        c->n++;
    }
    zipr_free(zr);
    free(src.data);
}

/* The entry's text, or NULL when the archive has no such entry. */
static const char *zip_text(const struct zip_content *c, const char *key)
{
    const char *name = key + strlen(ACTIVE);
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->names[i], name) == 0)
            return c->texts[i];
    return NULL;
}

static void zip_release(struct zip_content *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->names[i]);
        free(c->texts[i]);
    }
}

static size_t pending(struct store *st)
{
    size_t n = 99;
    struct wk_err err;
    wk_err_clear(&err);
    ck_assert_int_eq(store_count_pending(st, "", &n, &err), WK_OK);
    return n;
}

/* ---- hooks ---- */

/* After the first upload: a session appends to today's ops file and a new
 * session starts its own file. */
static void hook_write_after_upload(struct wrap_store *w, unsigned n)
{
    if (n == 2) {
        append_line(w, K_MOVES);
        append_line(w, K_NEWPEER);
    }
}

/* Every check after an upload finds a new write. */
static void hook_write_always(struct wrap_store *w, unsigned n)
{
    if (n >= 2)
        append_line(w, K_MOVES);
}

/* Listing 3 is the one before deleting (after the manifest). */
/* After the manifest, before the delete (on_delete hooks): no listing of
 * the space comes in between (the one after the upload is the fresh one),
 * so the archive has made exactly two so far. */
static void hook_change_after_manifest(struct wrap_store *w, unsigned n)
{
    (void)n;
    ck_assert_uint_eq(w->nlist, 2);
    put_text(w->inner, K_PROPS,
             "[1,\"cc\",\"name\",\"compacted after the manifest\"]\n");
}

static void hook_add_after_manifest(struct wrap_store *w, unsigned n)
{
    (void)n;
    ck_assert_uint_eq(w->nlist, 2);
    append_line(w, K_NEWPEER);
}

/* Between the last listing and the delete: the window only a conditional
 * delete closes. */
static void hook_change_at_delete(struct wrap_store *w, unsigned n)
{
    (void)n;
    if (!w->lines++)
        put_text(w->inner, K_PROPS,
                 "[1,\"cc\",\"name\",\"written at the very last moment\"]\n");
}

/* Before the first read: compaction rewrites -p.jsonl shorter. */
/* (batch read 1 is the manifest's, with its version: the objects' first
 * batch is read 2) */
static void hook_shrink_before_read(struct wrap_store *w, unsigned n)
{
    if (n == 2)
        put_text(w->inner, K_PROPS, "[3,\"cc\",\"name\",\"x\"]\n");
}

/* Before the first read: an object disappears. */
static void hook_remove_before_read(struct wrap_store *w, unsigned n)
{
    if (n == 2) {
        const char *k = K_SECRETS;
        size_t nd = 0;
        struct wk_err err;
        wk_err_clear(&err);
        ck_assert_int_eq(store_delete_many(w->inner, &k, 1, &nd, &err), WK_OK);
    }
}

static void hook_remove_all_after_upload(struct wrap_store *w, unsigned n)
{
    static const char *const keys[] = { K_SPACE, K_SILA,  K_SECRETS, K_OLDOPS,
                                        K_MOVES, K_PROPS, K_VAR };
    if (n == 2) {
        size_t nd = 0;
        struct wk_err err;
        wk_err_clear(&err);
        ck_assert_int_eq(store_delete_many(w->inner, keys,
                                           sizeof(keys) / sizeof(keys[0]), &nd,
                                           &err),
                         WK_OK);
    }
}

/* ---- tests ---- */

START_TEST(test_job_archive_quiet_space)
{
    struct wrap_store *w = new_space();
    struct zip_content z;
    struct run r;
    struct mf m;

    ck_assert_msg(run_archive(w, &r) == WK_OK, "%s", r.err.msg);
    ck_assert_str_eq(res_str(&r, "archiveKey"), ARCHIVE);
    ck_assert_int_eq(res_int(&r, "fileCount"), 7);
    ck_assert_int_eq(res_int(&r, "attempts"), 1);
    ck_assert_int_eq(res_int(&r, "keptNewer"), 0);
    ck_assert_ptr_null(json_object_get(r.res, "skipped"));
    /* listed to archive, to check, and to delete */
    ck_assert_uint_eq(w->nlist, 3);
    read_manifest(w->inner, &m);
    ck_assert_int_eq(m.state, MF_ARCHIVED);
    ck_assert_str_eq(m.archive_key, ARCHIVE);
    ck_assert_uint_eq(m.file_count, 7);
    ck_assert_uint_eq(count(w->inner, ACTIVE), 0);
    zip_load(w->inner, ARCHIVE, &z);
    ck_assert_uint_eq(z.n, 7);
    ck_assert_str_eq(z.names[0], "space-v1/space.json"); /* restore order */
    ck_assert_str_eq(zip_text(&z, K_MOVES), "[1,\"cc\",null]\n");
    zip_release(&z);
    run_release(&r);
    store_free(&w->base);
}
END_TEST

START_TEST(test_job_archive_redone_after_writes)
{
    struct wrap_store *w = new_space();
    struct zip_content z;
    struct run r;
    struct mf m;

    w->on_list = hook_write_after_upload;
    ck_assert_msg(run_archive(w, &r) == WK_OK, "%s", r.err.msg);
    ck_assert_int_eq(res_int(&r, "attempts"), 2);
    ck_assert_int_eq(res_int(&r, "keptNewer"), 0);
    ck_assert_int_eq(res_int(&r, "fileCount"), 8);
    /* the redo started from the listing that saw the writes */
    ck_assert_uint_eq(w->nlist, 4);
    read_manifest(w->inner, &m);
    ck_assert_int_eq(m.state, MF_ARCHIVED);
    ck_assert_uint_eq(m.file_count, 8);
    /* one archive: the first attempt's was deleted */
    ck_assert_uint_eq(count(w->inner, "archived/"), 1);
    ck_assert_uint_eq(count(w->inner, ACTIVE), 0);
    zip_load(w->inner, m.archive_key, &z);
    ck_assert_uint_eq(z.n, 8);
    ck_assert_str_eq(zip_text(&z, K_MOVES),
                     "[1,\"cc\",null]\n[1,\"0123456789abcdef\",null]\n");
    ck_assert_str_eq(zip_text(&z, K_NEWPEER),
                     "[2,\"0123456789abcdef\",null]\n");
    zip_release(&z);
    ck_assert_uint_eq(pending(w->inner), 0);
    run_release(&r);
    store_free(&w->base);
}
END_TEST

/* The manifest after an archive that did not happen: active, naming no
 * archive, written twice (archiving, then active again) per run. */
static void assert_still_active(struct wrap_store *w, uint64_t generation)
{
    char *text = get_text(w->inner, MF_KEY);
    struct mf m;
    struct wk_err e;

    wk_err_clear(&e);
    ck_assert_ptr_nonnull(text);
    ck_assert_msg(mf_parse(text, strlen(text), &m, &e) == WK_OK, "%s", e.msg);
    ck_assert_int_eq(m.state, MF_ACTIVE);
    ck_assert_str_eq(m.archive_key, "");
    ck_assert_str_eq(m.checksum, "");
    ck_assert_uint_eq(m.n_history, 0);
    ck_assert_uint_eq(m.generation, generation);
    ck_assert_ptr_null(strstr(text, "archivedAt"));
    free(text);
}

START_TEST(test_job_archive_gives_up_leaving_space_active)
{
    struct wrap_store *w = new_space();
    struct run r;
    char *moves;

    w->on_list = hook_write_always;
    ck_assert_msg(run_archive(w, &r) == WK_OK, "%s", r.err.msg);
    ck_assert_str_eq(wk_buf_cstr(&r.result),
                     "{\"skipped\":\"concurrent-writes\",\"attempts\":3}");
    ck_assert_uint_eq(w->lines, 3); /* one write seen per try */
    /* still active, no archive, no upload left open, all of active/ */
    assert_still_active(w, 2);
    ck_assert_uint_eq(count(w->inner, "archived/"), 0);
    ck_assert_uint_eq(pending(w->inner), 0);
    ck_assert_uint_eq(count(w->inner, ACTIVE), 7);
    moves = get_text(w->inner, K_MOVES);
    ck_assert_str_eq(moves, "[1,\"cc\",null]\n"
                            "[1,\"0123456789abcdef\",null]\n"
                            "[2,\"0123456789abcdef\",null]\n"
                            "[3,\"0123456789abcdef\",null]\n");
    free(moves);
    run_release(&r);
    store_free(&w->base);
}
END_TEST

START_TEST(test_job_archive_tries_configurable)
{
    struct wrap_store *w = new_space();
    struct run r;

    w->on_list = hook_write_always;
    ck_assert_msg(run_archive_cfg(w, &r, 1, true) == WK_OK, "%s", r.err.msg);
    ck_assert_str_eq(res_str(&r, "skipped"), "concurrent-writes");
    ck_assert_int_eq(res_int(&r, "attempts"), 1);
    run_release(&r);
    /* 0 means one try, not none */
    ck_assert_msg(run_archive_cfg(w, &r, 0, true) == WK_OK, "%s", r.err.msg);
    ck_assert_int_eq(res_int(&r, "attempts"), 1);
    run_release(&r);
    assert_still_active(w, 4);
    ck_assert_uint_eq(count(w->inner, "archived/"), 0);
    ck_assert_uint_eq(count(w->inner, ACTIVE), 7);
    store_free(&w->base);
}
END_TEST

START_TEST(test_job_archive_keeps_object_changed_after_manifest)
{
    struct wrap_store *w = new_space();
    struct zip_content z;
    struct run r;
    struct mf m;
    char *props;

    w->on_delete = hook_change_after_manifest;
    ck_assert_msg(run_archive(w, &r) == WK_OK, "%s", r.err.msg);
    ck_assert_int_eq(res_int(&r, "attempts"), 1);
    ck_assert_int_eq(res_int(&r, "keptNewer"), 1);
    read_manifest(w->inner, &m);
    ck_assert_int_eq(m.state, MF_ARCHIVED);
    ck_assert_uint_eq(m.file_count, 7);
    /* the newer version survives, alone; the archive has the older one */
    ck_assert_uint_eq(count(w->inner, ACTIVE), 1);
    props = get_text(w->inner, K_PROPS);
    ck_assert_str_eq(props,
                     "[1,\"cc\",\"name\",\"compacted after the manifest\"]\n");
    free(props);
    zip_load(w->inner, m.archive_key, &z);
    ck_assert_str_eq(zip_text(&z, K_PROPS),
                     "[1,\"cc\",\"name\",\"a long enough value\"]\n"
                     "[2,\"cc\",\"name\",\"another long value\"]\n");
    zip_release(&z);
    run_release(&r);
    store_free(&w->base);
}
END_TEST

START_TEST(test_job_archive_keeps_object_added_after_manifest)
{
    struct wrap_store *w = new_space();
    struct run r;

    w->on_delete = hook_add_after_manifest;
    ck_assert_msg(run_archive(w, &r) == WK_OK, "%s", r.err.msg);
    ck_assert_int_eq(res_int(&r, "keptNewer"), 1);
    ck_assert_int_eq(res_int(&r, "fileCount"), 7);
    ck_assert_uint_eq(count(w->inner, ACTIVE), 1);
    ck_assert_uint_eq(count(w->inner, K_NEWPEER), 1);
    run_release(&r);
    store_free(&w->base);
}
END_TEST

START_TEST(test_job_archive_refuses_archived_space_with_newer_objects)
{
    struct wrap_store *w = new_space();
    struct run r;
    char *before, *after;

    w->on_delete = hook_change_after_manifest;
    ck_assert_msg(run_archive(w, &r) == WK_OK, "%s", r.err.msg);
    run_release(&r);
    before = get_text(w->inner, MF_KEY);
    w->on_delete = NULL;
    ck_assert_int_eq(run_archive(w, &r), WK_E_CONFLICT);
    ck_assert_str_eq(r.err.msg,
                     "space '" SPACE "' is archived but 1 objects remain "
                     "under active/ (newer writes or an interrupted "
                     "delete): unarchive it first (the restore keeps "
                     "them), then archive again");
    run_release(&r);
    /* nothing moved */
    after = get_text(w->inner, MF_KEY);
    ck_assert_str_eq(before, after);
    free(before);
    free(after);
    ck_assert_uint_eq(count(w->inner, ACTIVE), 1);
    ck_assert_uint_eq(count(w->inner, "archived/"), 1);
    store_free(&w->base);
}
END_TEST

/* The way out of "archived with newer objects": a restore merges the
 * archive around them, and the next archive holds the whole space with
 * the newer version. */
START_TEST(test_job_archive_newer_objects_merged_by_restore)
{
    struct wrap_store *w = new_space();
    struct zip_content z;
    struct run r;
    struct mf m;

    w->on_delete = hook_change_after_manifest;
    ck_assert_msg(run_archive(w, &r) == WK_OK, "%s", r.err.msg);
    ck_assert_int_eq(res_int(&r, "keptNewer"), 1);
    run_release(&r);
    w->on_delete = NULL;
    ck_assert_msg(run_job(w, &r, JOB_UNARCHIVE, 0, false) == WK_OK, "%s",
                  r.err.msg);
    run_release(&r);
    ck_assert_uint_eq(count(w->inner, ACTIVE), 7);
    ck_assert_msg(run_archive(w, &r) == WK_OK, "%s", r.err.msg);
    ck_assert_int_eq(res_int(&r, "fileCount"), 7);
    ck_assert_int_eq(res_int(&r, "keptNewer"), 0);
    run_release(&r);
    read_manifest(w->inner, &m);
    ck_assert_uint_eq(m.n_history, 1); /* the first archive, kept */
    ck_assert_uint_eq(count(w->inner, ACTIVE), 0);
    zip_load(w->inner, m.archive_key, &z);
    ck_assert_uint_eq(z.n, 7);
    ck_assert_str_eq(zip_text(&z, K_PROPS),
                     "[1,\"cc\",\"name\",\"compacted after the manifest\"]\n");
    ck_assert_str_eq(zip_text(&z, K_MOVES), "[1,\"cc\",null]\n");
    zip_release(&z);
    store_free(&w->base);
}
END_TEST

START_TEST(test_job_archive_shrunk_object_redone)
{
    struct wrap_store *w = new_space();
    struct zip_content z;
    struct run r;
    struct mf m;

    w->on_get = hook_shrink_before_read;
    ck_assert_msg(run_archive(w, &r) == WK_OK, "%s", r.err.msg);
    ck_assert_int_eq(res_int(&r, "attempts"), 2);
    ck_assert_int_eq(res_int(&r, "keptNewer"), 0);
    /* no listing after the failed read: the redo listed afresh */
    ck_assert_uint_eq(w->nlist, 4);
    read_manifest(w->inner, &m);
    zip_load(w->inner, m.archive_key, &z);
    ck_assert_str_eq(zip_text(&z, K_PROPS), "[3,\"cc\",\"name\",\"x\"]\n");
    zip_release(&z);
    ck_assert_uint_eq(count(w->inner, ACTIVE), 0);
    ck_assert_uint_eq(count(w->inner, "archived/"), 1);
    ck_assert_uint_eq(pending(w->inner), 0);
    run_release(&r);
    store_free(&w->base);
}
END_TEST

START_TEST(test_job_archive_vanished_object_redone)
{
    struct wrap_store *w = new_space();
    struct zip_content z;
    struct run r;
    struct mf m;

    w->on_get = hook_remove_before_read;
    ck_assert_msg(run_archive(w, &r) == WK_OK, "%s", r.err.msg);
    ck_assert_int_eq(res_int(&r, "attempts"), 2);
    ck_assert_int_eq(res_int(&r, "fileCount"), 6);
    read_manifest(w->inner, &m);
    zip_load(w->inner, m.archive_key, &z);
    ck_assert_uint_eq(z.n, 6);
    ck_assert_ptr_null(zip_text(&z, K_SECRETS));
    zip_release(&z);
    ck_assert_uint_eq(count(w->inner, ACTIVE), 0);
    run_release(&r);
    store_free(&w->base);
}
END_TEST

START_TEST(test_job_archive_space_emptied_meanwhile)
{
    struct wrap_store *w = new_space();
    struct run r;

    w->on_list = hook_remove_all_after_upload;
    ck_assert_int_eq(run_archive(w, &r), WK_E_NOTFOUND);
    ck_assert_str_eq(r.err.msg, "space '" SPACE
                                "' has no objects under '" ACTIVE "' any more");
    assert_still_active(w, 2);
    ck_assert_uint_eq(count(w->inner, "archived/"), 0);
    run_release(&r);
    store_free(&w->base);
}
END_TEST

START_TEST(test_job_archive_undeletable_archive_fails)
{
    struct wrap_store *w = new_space();
    struct run r;

    w->on_list = hook_write_after_upload;
    w->fail_archive_delete = true;
    ck_assert_int_eq(run_archive(w, &r), WK_E_HTTP);
    ck_assert_str_eq(r.err.msg, "space changed while archiving, and the unused "
                                "archive could not be deleted: delete '" ARCHIVE
                                "': HTTP 500 (test)");
    /* active/ untouched, still active */
    assert_still_active(w, 2);
    ck_assert_uint_eq(count(w->inner, ACTIVE), 8);
    run_release(&r);
    store_free(&w->base);
}
END_TEST

#define RECORD "metadata/" SPACE ".pending-delete.json"

/* Another worker writes the manifest while this one uploads (a stale
 * worker that lost its lease, say): after the upload, before ours. */
static void hook_manifest_meanwhile(struct wrap_store *w, unsigned n)
{
    if (n == 2)
        put_text(w->inner, MF_KEY, "{\"written\":\"by someone else\"}");
}

START_TEST(test_job_archive_manifest_written_meanwhile_is_fenced)
{
    struct wrap_store *w = new_space();
    struct run r;
    char *text;

    w->on_list = hook_manifest_meanwhile;
    ck_assert_int_eq(run_archive(w, &r), WK_E_CONFLICT);
    ck_assert_ptr_nonnull(strstr(r.err.msg, "precondition failed"));
    run_release(&r);
    /* theirs stays; ours was dropped; the space is untouched */
    text = get_text(w->inner, MF_KEY);
    ck_assert_str_eq(text, "{\"written\":\"by someone else\"}");
    free(text);
    ck_assert_uint_eq(count(w->inner, "archived/"), 0);
    ck_assert_uint_eq(count(w->inner, ACTIVE), 7);
    store_free(&w->base);
}
END_TEST

/* Every manifest write counts up. */
START_TEST(test_job_archive_generation_grows)
{
    struct wrap_store *w = new_space();
    struct run r;
    struct mf m;
    struct wk_err e;
    char *text;

    ck_assert_int_eq(run_archive(w, &r), WK_OK);
    run_release(&r);
    text = get_text(w->inner, MF_KEY);
    wk_err_clear(&e);
    ck_assert_int_eq(mf_parse(text, strlen(text), &m, &e), WK_OK);
    ck_assert_uint_eq(m.generation, 2); /* archiving, archived */
    free(text);
    ck_assert_int_eq(run_job(w, &r, JOB_UNARCHIVE, 0, false), WK_OK);
    run_release(&r);
    text = get_text(w->inner, MF_KEY);
    ck_assert_int_eq(mf_parse(text, strlen(text), &m, &e), WK_OK);
    ck_assert_uint_eq(m.generation, 5); /* restoring, ready, active */
    ck_assert_int_eq(m.state, MF_ACTIVE);
    free(text);
    store_free(&w->base);
}
END_TEST

/* A big object that sniffs as compressed is stored as it streams; one
 * that holds a crafted end-of-entry marker (the data descriptor signature
 * followed by the CRC-32 before it) is caught and deflated instead, in a
 * redo that is no try against the space's writers, and it restores
 * byte for byte. */
#define K_BIG ACTIVE "space-v1/files/var/uuid/0b/big-video"

static unsigned char *big_object(size_t n, bool crafted)
{
    unsigned char *p = malloc(n);
    unsigned x = 12345;

    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (unsigned char)(x >> 9);
    }
    memcpy(p,
           "\x00\x00\x00\x20"
           "ftypisom",
           12);
    if (crafted) {
        size_t at = n - 1000;
        uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), p, (uInt)at);
        memcpy(p + at, "PK\x07\x08", 4);
        for (int k = 0; k < 4; k++)
            p[at + 4 + (size_t)k] = (unsigned char)(crc >> (8 * k));
    }
    return p;
}

/* The compression method of the entry `name` in a ZIP's bytes, from its
 * local header (8 deflate, 0 stored), or -1. */
static int zip_method(const struct wk_buf *z, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i + 30 + nl <= z->len; i++) {
        const unsigned char *h = (const unsigned char *)z->data + i;
        if (memcmp(h, "PK\x03\x04", 4) == 0 &&
            (size_t)(h[26] | h[27] << 8) == nl && memcmp(h + 30, name, nl) == 0)
            return h[8] | h[9] << 8;
    }
    return -1;
}

static void big_roundtrip(bool crafted)
{
    struct wrap_store *w = new_space();
    struct run r;
    struct wk_err e;
    size_t n = 6u << 20; /* ranged: more than a quarter of the window */
    unsigned char *p = big_object(n, crafted);
    struct wk_buf b;

    wk_err_clear(&e);
    ck_assert_int_eq(store_put(w->inner, K_BIG, p, n, &e), WK_OK);
    ck_assert_msg(run_archive(w, &r) == WK_OK, "%s", r.err.msg);
    ck_assert_int_eq(res_int(&r, "attempts"), 1);
    run_release(&r);
    ck_assert_uint_eq(count(w->inner, ACTIVE), 0);
    {
        struct mf m;
        read_manifest(w->inner, &m);
        wk_buf_init(&b, 64u << 20);
        ck_assert_int_eq(store_get_all(w->inner, m.archive_key, &b, &e), WK_OK);
        /* too big to hold: deflated at level 0 with a data descriptor
         * (only whole objects are stored), crafted or not */
        (void)crafted;
        ck_assert_int_eq(zip_method(&b, K_BIG + strlen(ACTIVE)), 8);
        ck_assert_int_eq(zip_method(&b, K_PROPS + strlen(ACTIVE)), 8);
        wk_buf_release(&b);
    }
    ck_assert_msg(run_job(w, &r, JOB_UNARCHIVE, 0, false) == WK_OK, "%s",
                  r.err.msg);
    run_release(&r);
    wk_buf_init(&b, 64u << 20);
    ck_assert_int_eq(store_get_all(w->inner, K_BIG, &b, &e), WK_OK);
    ck_assert_uint_eq(b.len, n);
    ck_assert(memcmp(b.data, p, n) == 0);
    wk_buf_release(&b);
    free(p);
    store_free(&w->base);
}

START_TEST(test_job_archive_big_compressed_object_level0)
{
    big_roundtrip(false);
}
END_TEST

START_TEST(test_job_archive_big_object_with_fake_end_deflated)
{
    big_roundtrip(true);
}
END_TEST

START_TEST(test_job_archive_write_at_delete_is_kept)
{
    struct wrap_store *w = new_space();
    struct run r;
    char *props;

    w->on_delete = hook_change_at_delete;
    ck_assert_msg(run_archive(w, &r) == WK_OK, "%s", r.err.msg);
    ck_assert_int_eq(res_int(&r, "keptNewer"), 1);
    run_release(&r);
    ck_assert_uint_eq(count(w->inner, ACTIVE), 1);
    props = get_text(w->inner, K_PROPS);
    ck_assert_str_eq(
        props, "[1,\"cc\",\"name\",\"written at the very last moment\"]\n");
    free(props);
    store_free(&w->base);
}
END_TEST

/* While the archive is made the manifest says archiving (the objects are
 * still the space); while a restore writes, restoring. */
static char list_state[16];
static void hook_state_after_upload(struct wrap_store *w, unsigned n)
{
    if (n == 2)
        manifest_state(w->inner, list_state, sizeof(list_state));
}

START_TEST(test_job_archive_intermediate_states)
{
    struct wrap_store *w = new_space();
    struct run r;
    struct mf m;

    list_state[0] = '\0';
    w->on_list = hook_state_after_upload;
    ck_assert_msg(run_archive(w, &r) == WK_OK, "%s", r.err.msg);
    run_release(&r);
    ck_assert_str_eq(list_state, "archiving");
    read_manifest(w->inner, &m);
    ck_assert_int_eq(m.state, MF_ARCHIVED);

    ck_assert_msg(run_job(w, &r, JOB_UNARCHIVE, 0, false) == WK_OK, "%s",
                  r.err.msg);
    run_release(&r);
    ck_assert_str_eq(w->put_state, "restoring");
    read_manifest(w->inner, &m);
    ck_assert_int_eq(m.state, MF_ACTIVE);
    ck_assert_uint_eq(m.generation, 5); /* restoring, ready, active */
    store_free(&w->base);
}
END_TEST

/* A restore that fails half way leaves the space archived, not restoring,
 * and nothing it wrote. */
START_TEST(test_job_unarchive_failure_reverts_to_archived)
{
    struct wrap_store *w = new_space();
    struct run r;
    struct mf m;

    ck_assert_int_eq(run_archive(w, &r), WK_OK);
    run_release(&r);
    w->fail_active_put = 1;
    ck_assert_int_eq(run_job(w, &r, JOB_UNARCHIVE, 0, false), WK_E_NET);
    run_release(&r);
    read_manifest(w->inner, &m);
    ck_assert_int_eq(m.state, MF_ARCHIVED);
    ck_assert_uint_eq(m.generation, 4); /* restoring, archived again */
    ck_assert_uint_eq(count(w->inner, ACTIVE), 0);
    store_free(&w->base);
}
END_TEST

/* What a run that died leaves is carried on by the next one: "restoring"
 * by the next unarchive (an archive refuses it), "archiving" by the next
 * archive, or repaired to active by an unarchive. */
START_TEST(test_job_states_left_by_a_dead_run)
{
    struct wrap_store *w = new_space();
    struct run r;
    struct mf m;

    ck_assert_int_eq(run_archive(w, &r), WK_OK);
    run_release(&r);
    set_manifest_state(w->inner, MF_RESTORING);
    ck_assert_int_eq(run_archive(w, &r), WK_E_CONFLICT);
    ck_assert_str_eq(r.err.msg,
                     "space '" SPACE "' is being restored (its manifest says "
                     "restoring): let the unarchive finish, or run it again, "
                     "before archiving");
    run_release(&r);
    ck_assert_msg(run_job(w, &r, JOB_UNARCHIVE, 0, false) == WK_OK, "%s",
                  r.err.msg);
    ck_assert_int_eq(res_int(&r, "restored"), 7);
    run_release(&r);
    read_manifest(w->inner, &m);
    ck_assert_int_eq(m.state, MF_ACTIVE);

    set_manifest_state(w->inner, MF_ARCHIVING);
    ck_assert_msg(run_job(w, &r, JOB_UNARCHIVE, 0, false) == WK_OK, "%s",
                  r.err.msg);
    ck_assert_str_eq(res_str(&r, "reason"), "already active");
    ck_assert_str_eq(res_str(&r, "repaired"), "archiving");
    run_release(&r);
    read_manifest(w->inner, &m);
    ck_assert_int_eq(m.state, MF_ACTIVE);

    set_manifest_state(w->inner, MF_ARCHIVING);
    ck_assert_msg(run_archive(w, &r) == WK_OK, "%s", r.err.msg);
    run_release(&r);
    read_manifest(w->inner, &m);
    ck_assert_int_eq(m.state, MF_ARCHIVED);
    ck_assert_uint_eq(m.n_history, 1); /* the first archive, not a phantom */
    ck_assert_uint_eq(count(w->inner, ACTIVE), 0);
    store_free(&w->base);
}
END_TEST

/* The run dies (here: fails) between the manifest and the delete: the
 * next run finishes the delete from the pending-delete record. */
START_TEST(test_job_archive_rerun_finishes_interrupted_delete)
{
    struct wrap_store *w = new_space();
    struct run r;

    w->fail_active_delete = true;
    ck_assert_int_eq(run_archive(w, &r), WK_E_NET);
    ck_assert_ptr_nonnull(strstr(r.err.msg, "could not be deleted"));
    run_release(&r);
    ck_assert_uint_eq(count(w->inner, ACTIVE), 7);
    ck_assert_uint_eq(count(w->inner, RECORD), 1);

    w->fail_active_delete = false;
    ck_assert_int_eq(run_archive(w, &r), WK_OK);
    ck_assert_int_eq(res_int(&r, "completedDelete"), 7);
    ck_assert_uint_eq(count(w->inner, ACTIVE), 0);
    ck_assert_uint_eq(count(w->inner, RECORD), 0);
    run_release(&r);
    store_free(&w->base);
}
END_TEST

/* ... but an object written since is newer than the archive: kept. */
START_TEST(test_job_archive_rerun_keeps_object_newer_than_record)
{
    struct wrap_store *w = new_space();
    struct run r;

    w->fail_active_delete = true;
    ck_assert_int_eq(run_archive(w, &r), WK_E_NET);
    run_release(&r);
    w->fail_active_delete = false;
    put_text(w->inner, K_MOVES, "[1,\"cc\",null]\n[2,\"dd\",\"cc\"]\n");
    ck_assert_int_eq(run_archive(w, &r), WK_E_CONFLICT);
    ck_assert_ptr_nonnull(strstr(r.err.msg, "unarchive it first"));
    run_release(&r);
    ck_assert_uint_eq(count(w->inner, ACTIVE), 1);
    ck_assert_uint_eq(count(w->inner, K_MOVES), 1);
    ck_assert_uint_eq(count(w->inner, RECORD), 0);
    store_free(&w->base);
}
END_TEST

/* ---- client-side encryption (storage/seal.h) ---- */

#define SEAL_KEY_A \
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"
#define SEAL_KEY_B \
    "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\n"

static struct seal_keyring *test_ring(const char *text)
{
    struct seal_keyring *kr = NULL;
    struct wk_err err;
    wk_err_clear(&err);
    ck_assert_msg(seal_keyring_parse(text, strlen(text), "test", &kr, &err) ==
                      WK_OK,
                  "%s", err.msg);
    return kr;
}

static void get_bytes(struct store *st, const char *key, struct wk_buf *b)
{
    struct wk_err err;
    wk_buf_init(b, 1u << 24);
    wk_err_clear(&err);
    ck_assert_msg(store_get_all(st, key, b, &err) == WK_OK, "%s", err.msg);
}

static bool contains(const struct wk_buf *b, const char *s)
{
    size_t k = strlen(s);
    for (size_t i = 0; i + k <= b->len; i++)
        if (memcmp(b->data + i, s, k) == 0)
            return true;
    return false;
}

static enum wk_code sink_to_buf(const void *p, size_t n, void *ud,
                                struct wk_err *err)
{
    return wk_buf_append(ud, p, n, err);
}

/* One file of an archive (plain or sealed) through zcat. */
static char *cat_file(struct store *st, const struct mf_archive *a,
                      const struct seal_keyring *kr, const char *name,
                      enum wk_code *rc_out, struct wk_err *err)
{
    struct seal_dk dk;
    struct wk_buf out;
    enum wk_code rc = WK_OK;
    size_t len;

    wk_buf_init(&out, 1u << 20);
    wk_err_clear(err);
    if (a->enc.on)
        rc = seal_dk_open(kr, SPACE, &a->enc, &dk, err);
    if (rc == WK_OK)
        rc = zcat_read(st, a->key, a->size, a->enc.on ? &dk : NULL, name,
                       sink_to_buf, &out, NULL, err);
    seal_dk_wipe(&dk);
    *rc_out = rc;
    if (rc != WK_OK) {
        wk_buf_release(&out);
        return NULL;
    }
    char *s = wk_buf_detach(&out, &len);
    return s ? s : strdup("");
}

static void assert_archived_untouched(struct wrap_store *w)
{
    struct mf m;
    read_manifest(w->inner, &m);
    ck_assert_int_eq(m.state, MF_ARCHIVED);
    ck_assert_uint_eq(count(w->inner, ACTIVE), 0);
}

START_TEST(test_job_archive_sealed_round_trip)
{
    struct seal_keyring *a = test_ring(SEAL_KEY_A);
    struct wrap_store *w = new_space();
    struct run r;
    struct mf m;
    struct mf_archive cur;
    struct wk_buf zip;
    struct wk_err err;
    enum wk_code rc;
    char sha[65], *text;

    /* many chunks: text and a big incompressible object */
    {
        size_t n = 700000;
        unsigned char *p = malloc(n);
        ck_assert_ptr_nonnull(p);
        ut_noise(p, n, 7);
        wk_err_clear(&err);
        ck_assert_int_eq(store_put(w->inner, K_BIG, p, n, &err), WK_OK);
        free(p);
    }
    g_keys = a;
    ck_assert_msg(run_archive(w, &r) == WK_OK, "%s", r.err.msg);
    run_release(&r);
    read_manifest(w->inner, &m);
    ck_assert(m.enc.on);
    ck_assert_uint_gt(m.size, 10 * SEAL_CHUNK_BYTES);
    ck_assert_str_eq(m.enc.key_id, seal_keyring_id(a, 0));
    ck_assert_uint_eq(m.enc.chunk_bytes, SEAL_CHUNK_BYTES);
    /* the stored object: sealed, its checksum and size the manifest's, no
     * name or content of the space readable in it */
    get_bytes(w->inner, m.archive_key, &zip);
    ck_assert_uint_eq(zip.len, m.size);
    store_sha256_hex(zip.data, zip.len, sha);
    ck_assert_str_eq(sha, m.checksum);
    ck_assert(memcmp(zip.data, "SILASEAL\x01", 9) == 0);
    ck_assert(!contains(&zip, "space-v1/"));
    ck_assert(!contains(&zip, "# Sila workspace"));
    ck_assert(!contains(&zip, "PK\x03\x04"));
    wk_buf_release(&zip);

    /* cat: one entry through ranged, authenticated reads */
    mf_current(&m, &cur);
    text = cat_file(w->inner, &cur, a, "sila.md", &rc, &err);
    ck_assert_msg(rc == WK_OK, "%s", err.msg);
    ck_assert_str_eq(text, "# Sila workspace\n");
    free(text);

    /* restore: every file back as it was */
    ck_assert_msg(run_job(w, &r, JOB_UNARCHIVE, 0, false) == WK_OK, "%s",
                  r.err.msg);
    run_release(&r);
    ck_assert_uint_eq(count(w->inner, ACTIVE), 8);
    text = get_text(w->inner, K_SILA);
    ck_assert_str_eq(text, "# Sila workspace\n");
    free(text);
    text = get_text(w->inner, K_SECRETS);
    ck_assert_str_eq(text, "c2VjcmV0cw==\n");
    free(text);
    read_manifest(w->inner, &m);
    ck_assert_int_eq(m.state, MF_ACTIVE);

    g_keys = NULL;
    store_free(&w->base);
    seal_keyring_free(a);
}
END_TEST

/* Archive under first, restore and archive again under then: the current
 * archive is then sealed by then's first key, the older one in history. */
static void archive_twice(struct wrap_store *w,
                          const struct seal_keyring *first,
                          const struct seal_keyring *then)
{
    struct run r;

    g_keys = first;
    ck_assert_msg(run_archive(w, &r) == WK_OK, "%s", r.err.msg);
    run_release(&r);
    g_keys = then;
    ck_assert_msg(run_job(w, &r, JOB_UNARCHIVE, 0, false) == WK_OK, "%s",
                  r.err.msg);
    run_release(&r);
    ck_assert_msg(run_archive(w, &r) == WK_OK, "%s", r.err.msg);
    run_release(&r);
}

START_TEST(test_job_archive_sealed_key_rotation)
{
    struct seal_keyring *a = test_ring(SEAL_KEY_A);
    struct seal_keyring *ba = test_ring(SEAL_KEY_B SEAL_KEY_A);
    struct seal_keyring *b = test_ring(SEAL_KEY_B);
    struct wrap_store *w = new_space();
    struct run r;
    struct mf m;
    struct wk_err err;
    enum wk_code rc;
    char *text;

    /* the new key goes first; the old one stays for old archives */
    archive_twice(w, a, ba);
    read_manifest(w->inner, &m);
    ck_assert_str_eq(m.enc.key_id, seal_keyring_id(b, 0));
    ck_assert_uint_eq(m.n_history, 1);
    ck_assert(m.history[0].enc.on);
    ck_assert_str_eq(m.history[0].enc.key_id, seal_keyring_id(a, 0));
    ck_assert_str_ne(m.history[0].enc.wrapped, m.enc.wrapped);
    /* the old archive reads with the ring that still holds its key... */
    text = cat_file(w->inner, &m.history[0], ba, "sila.md", &rc, &err);
    ck_assert_msg(rc == WK_OK, "%s", err.msg);
    ck_assert_str_eq(text, "# Sila workspace\n");
    free(text);
    /* ...and not once that key is gone; the current one still does */
    ck_assert_ptr_null(
        cat_file(w->inner, &m.history[0], b, "sila.md", &rc, &err));
    ck_assert_int_eq(rc, WK_E_INVAL);
    ck_assert(strstr(err.msg, seal_keyring_id(a, 0)));
    g_keys = b;
    ck_assert_msg(run_job(w, &r, JOB_UNARCHIVE, 0, false) == WK_OK, "%s",
                  r.err.msg);
    run_release(&r);
    ck_assert_uint_eq(count(w->inner, ACTIVE), 7);

    g_keys = NULL;
    store_free(&w->base);
    seal_keyring_free(a);
    seal_keyring_free(ba);
    seal_keyring_free(b);
}
END_TEST

/* Turning encryption on: the plain archive made before still restores
 * and reads, the next archive is sealed, the plain one kept in history. */
START_TEST(test_job_archive_plain_then_sealed)
{
    struct seal_keyring *a = test_ring(SEAL_KEY_A);
    struct wrap_store *w = new_space();
    struct run r;
    struct mf m;
    struct wk_err err;
    enum wk_code rc;
    char *text;

    g_keys = NULL;
    ck_assert_msg(run_archive(w, &r) == WK_OK, "%s", r.err.msg);
    run_release(&r);
    read_manifest(w->inner, &m);
    ck_assert(!m.enc.on);
    g_keys = a;
    ck_assert_msg(run_job(w, &r, JOB_UNARCHIVE, 0, false) == WK_OK, "%s",
                  r.err.msg);
    run_release(&r);
    ck_assert_uint_eq(count(w->inner, ACTIVE), 7);
    ck_assert_msg(run_archive(w, &r) == WK_OK, "%s", r.err.msg);
    run_release(&r);
    read_manifest(w->inner, &m);
    ck_assert(m.enc.on);
    ck_assert_uint_eq(m.n_history, 1);
    ck_assert(!m.history[0].enc.on);
    text = cat_file(w->inner, &m.history[0], a, "sila.md", &rc, &err);
    ck_assert_msg(rc == WK_OK, "%s", err.msg);
    ck_assert_str_eq(text, "# Sila workspace\n");
    free(text);
    g_keys = NULL;
    store_free(&w->base);
    seal_keyring_free(a);
}
END_TEST

/* rekey: old archives' data keys wrapped again under the current key, the
 * archives untouched; then the old key is no longer needed. */
START_TEST(test_job_archive_sealed_rekey)
{
    struct seal_keyring *a = test_ring(SEAL_KEY_A);
    struct seal_keyring *ba = test_ring(SEAL_KEY_B SEAL_KEY_A);
    struct seal_keyring *b = test_ring(SEAL_KEY_B);
    struct wrap_store *w = new_space();
    struct rekey_out ro;
    struct mf before, m;
    struct wk_buf z0, z1;
    struct wk_err err;
    enum wk_code rc;
    char *text;

    archive_twice(w, a, ba);
    read_manifest(w->inner, &before);
    ck_assert_str_eq(before.history[0].enc.key_id, seal_keyring_id(a, 0));
    get_bytes(w->inner, before.history[0].key, &z0);

    /* without the old key: refused, nothing written */
    wk_err_clear(&err);
    ck_assert_int_eq(job_rekey(w->inner, b, SPACE, false, &ro, &err),
                     WK_E_INVAL);
    read_manifest(w->inner, &m);
    ck_assert_uint_eq(m.generation, before.generation);
    /* a dry run counts */
    wk_err_clear(&err);
    ck_assert_int_eq(job_rekey(w->inner, ba, SPACE, true, &ro, &err), WK_OK);
    ck_assert_uint_eq(ro.sealed, 2);
    ck_assert_uint_eq(ro.rewrapped, 1);
    read_manifest(w->inner, &m);
    ck_assert_uint_eq(m.generation, before.generation);
    /* the real thing */
    ck_assert_int_eq(job_rekey(w->inner, ba, SPACE, false, &ro, &err), WK_OK);
    ck_assert_uint_eq(ro.rewrapped, 1);
    read_manifest(w->inner, &m);
    ck_assert_uint_eq(m.generation, before.generation + 1);
    ck_assert_str_eq(m.history[0].enc.key_id, seal_keyring_id(b, 0));
    ck_assert_str_eq(m.enc.wrapped, before.enc.wrapped); /* current: as is */
    ck_assert_str_eq(m.history[0].checksum, before.history[0].checksum);
    get_bytes(w->inner, m.history[0].key, &z1);
    ck_assert(z0.len == z1.len && memcmp(z0.data, z1.data, z0.len) == 0);
    /* again: nothing left to do */
    ck_assert_int_eq(job_rekey(w->inner, ba, SPACE, false, &ro, &err), WK_OK);
    ck_assert_uint_eq(ro.rewrapped, 0);
    /* the old archive opens with the new key alone */
    text = cat_file(w->inner, &m.history[0], b, "sila.md", &rc, &err);
    ck_assert_msg(rc == WK_OK, "%s", err.msg);
    ck_assert_str_eq(text, "# Sila workspace\n");
    free(text);
    /* no manifest: nothing to do, not an error */
    ck_assert_int_eq(job_rekey(w->inner, b, "no-such-space", false, &ro, &err),
                     WK_OK);
    ck_assert(!ro.has_manifest);

    wk_buf_release(&z0);
    wk_buf_release(&z1);
    g_keys = NULL;
    store_free(&w->base);
    seal_keyring_free(a);
    seal_keyring_free(ba);
    seal_keyring_free(b);
}
END_TEST

START_TEST(test_job_archive_sealed_restore_refused)
{
    struct seal_keyring *a = test_ring(SEAL_KEY_A);
    struct seal_keyring *b = test_ring(SEAL_KEY_B);
    struct wrap_store *w = new_space();
    struct run r;
    struct mf m;
    struct wk_buf zip, mtext;
    struct wk_err err;
    char sha[65];

    g_keys = a;
    ck_assert_msg(run_archive(w, &r) == WK_OK, "%s", r.err.msg);
    run_release(&r);
    read_manifest(w->inner, &m);

    /* no key configured: a clear error, the space stays archived */
    g_keys = NULL;
    ck_assert_int_eq(run_job(w, &r, JOB_UNARCHIVE, 0, false), WK_E_INVAL);
    ck_assert_msg(strstr(r.err.msg, "is encrypted (key ") &&
                      strstr(r.err.msg, "no SILA_ENCRYPTION_KEY_FILE"),
                  "%s", r.err.msg);
    run_release(&r);
    assert_archived_untouched(w);
    /* another key only */
    g_keys = b;
    ck_assert_int_eq(run_job(w, &r, JOB_UNARCHIVE, 0, false), WK_E_INVAL);
    ck_assert_msg(strstr(r.err.msg, m.enc.key_id), "%s", r.err.msg);
    run_release(&r);
    assert_archived_untouched(w);

    /* one byte of the archive changed, and the manifest's checksum and
     * size made to match it: only the authentication can tell */
    g_keys = a;
    get_bytes(w->inner, m.archive_key, &zip);
    zip.data[zip.len / 2] ^= 0x01;
    wk_err_clear(&err);
    ck_assert_int_eq(
        store_put(w->inner, m.archive_key, zip.data, zip.len, &err), WK_OK);
    store_sha256_hex(zip.data, zip.len, sha);
    memcpy(m.checksum, sha, sizeof(m.checksum));
    wk_buf_init(&mtext, 1u << 20);
    ck_assert_int_eq(mf_to_json(&m, &mtext, &err), WK_OK);
    put_text(w->inner, MF_KEY, wk_buf_cstr(&mtext));
    ck_assert_int_eq(run_job(w, &r, JOB_UNARCHIVE, 0, false), WK_E_CORRUPT);
    ck_assert_msg(strstr(r.err.msg, "does not authenticate"), "%s", r.err.msg);
    run_release(&r);
    assert_archived_untouched(w);
    /* the wrapped key moved from another archive of another space is
     * refused too (it is bound to the spaceId) */
    {
        struct seal_info other;
        struct seal_dk dk;
        ck_assert_int_eq(seal_dk_new(a, "another-space", &other, &dk, &err),
                         WK_OK);
        seal_dk_wipe(&dk);
        m.enc = other;
        wk_buf_reset(&mtext);
        ck_assert_int_eq(mf_to_json(&m, &mtext, &err), WK_OK);
        put_text(w->inner, MF_KEY, wk_buf_cstr(&mtext));
        ck_assert_int_eq(run_job(w, &r, JOB_UNARCHIVE, 0, false), WK_E_CORRUPT);
        ck_assert_msg(strstr(r.err.msg, "data key does not authenticate"), "%s",
                      r.err.msg);
        run_release(&r);
        assert_archived_untouched(w);
    }
    wk_buf_release(&mtext);
    wk_buf_release(&zip);
    g_keys = NULL;
    store_free(&w->base);
    seal_keyring_free(a);
    seal_keyring_free(b);
}
END_TEST

/* ---- verification before the delete: a corrupted upload ---- */

/* What the store holds of an uploaded archive, rewritten by a hook. */
static void archive_edit(struct wrap_store *w, const char *key,
                         void (*edit)(unsigned char *zip, size_t *len))
{
    struct wk_buf b;
    struct wk_err err;
    size_t len;
    unsigned char *zip;

    wk_buf_init(&b, 1u << 24);
    wk_err_clear(&err);
    ck_assert_int_eq(store_get_all(w->inner, key, &b, &err), WK_OK);
    zip = (unsigned char *)wk_buf_detach(&b, &len);
    ck_assert_ptr_nonnull(zip);
    edit(zip, &len);
    ck_assert_int_eq(store_put(w->inner, key, zip, len, &err), WK_OK);
    free(zip);
}

static uint32_t zle32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

/* The central directory record of entry i (no comment, no ZIP64 here). */
static unsigned char *cd_rec(unsigned char *zip, size_t len, unsigned i)
{
    unsigned char *e = zip + len - 22;
    unsigned char *p;

    ck_assert_int_eq(memcmp(e, "PK\005\006", 4), 0);
    p = zip + zle32(e + 16);
    while (i-- > 0)
        p += 46 + (p[28] | (p[29] << 8)) + (p[30] | (p[31] << 8)) +
             (p[32] | (p[33] << 8));
    ck_assert_int_eq(memcmp(p, "PK\001\002", 4), 0);
    return p;
}

/* Entry 1 is sila.md (restore order: space.json, sila.md, secrets...). */
static void edit_crc(unsigned char *zip, size_t *len)
{
    cd_rec(zip, *len, 1)[16] ^= 0x01;
}

static void edit_name(unsigned char *zip, size_t *len)
{
    unsigned char *p = cd_rec(zip, *len, 1);
    ck_assert_int_eq(memcmp(p + 46, "sila.md", 7), 0);
    p[46 + 6] = 'x'; /* "sila.mx" */
}

static void edit_size(unsigned char *zip, size_t *len)
{
    cd_rec(zip, *len, 1)[24] ^= 0x04;
}

static void edit_offset(unsigned char *zip, size_t *len)
{
    unsigned char *e = zip + *len - 22;
    unsigned char *p = cd_rec(zip, *len, 1);
    uint32_t cd = zle32(e + 16);
    p[42] = (unsigned char)cd;
    p[43] = (unsigned char)(cd >> 8);
    p[44] = (unsigned char)(cd >> 16);
    p[45] = (unsigned char)(cd >> 24);
}

static void edit_count(unsigned char *zip, size_t *len)
{
    unsigned char *e = zip + *len - 22;
    e[8]--;
    e[10]--;
}

static void edit_truncate(unsigned char *zip, size_t *len)
{
    (void)zip;
    *len -= 10;
}

static void edit_dup(unsigned char *zip, size_t *len)
{
    /* entry 6's name becomes entry 5's: both are space-v1/ops/... of the
     * same length in this space (K_MOVES, K_PROPS) */
    unsigned char *a = cd_rec(zip, *len, 4), *b = cd_rec(zip, *len, 5);
    size_t na = a[28] | (a[29] << 8), nb = b[28] | (b[29] << 8);
    ck_assert_uint_eq(na, nb);
    memcpy(b + 46, a + 46, na);
}

static void (*g_edit)(unsigned char *zip, size_t *len);

static void hook_corrupt_upload(struct wrap_store *w, const char *key)
{
    archive_edit(w, key, g_edit);
}

/* The archive job fails before deleting anything: the space is active
 * with all of its objects, the upload is gone, the error says why. */
static void check_corrupt_upload(void (*edit)(unsigned char *, size_t *),
                                 const char *want)
{
    struct wrap_store *w = new_space();
    struct run r;
    char *sila;

    g_edit = edit;
    w->on_commit = hook_corrupt_upload;
    ck_assert_int_eq(run_archive(w, &r), WK_E_CORRUPT);
    ck_assert_msg(strstr(r.err.msg, want), "error '%s' lacks '%s'", r.err.msg,
                  want);
    assert_still_active(w, 2);
    ck_assert_uint_eq(count(w->inner, ACTIVE), 7);
    ck_assert_uint_eq(count(w->inner, "archived/"), 0);
    ck_assert_ptr_null(get_text(w->inner, RECORD));
    ck_assert_uint_eq(pending(w->inner), 0);
    sila = get_text(w->inner, K_SILA);
    ck_assert_str_eq(sila, "# Sila workspace\n");
    free(sila);
    run_release(&r);
    /* and it archives once the store behaves */
    w->on_commit = NULL;
    ck_assert_msg(run_archive(w, &r) == WK_OK, "%s", r.err.msg);
    ck_assert_uint_eq(count(w->inner, ACTIVE), 0);
    run_release(&r);
    store_free(&w->base);
}

START_TEST(test_job_archive_verify_bad_crc)
{
    check_corrupt_upload(edit_crc, "does not verify: entry 1 'sila.md': "
                                   "CRC-32");
}
END_TEST

START_TEST(test_job_archive_verify_bad_name)
{
    check_corrupt_upload(edit_name, "entry 1 'sila.mx': ");
}
END_TEST

START_TEST(test_job_archive_verify_bad_size)
{
    check_corrupt_upload(edit_size, "entry 1 'sila.md': ");
}
END_TEST

START_TEST(test_job_archive_verify_offset_outside)
{
    check_corrupt_upload(edit_offset, "entry 1 'sila.md': local header or "
                                      "data outside");
}
END_TEST

START_TEST(test_job_archive_verify_bad_count)
{
    check_corrupt_upload(edit_count, "more records than the end record says");
}
END_TEST

START_TEST(test_job_archive_verify_truncated)
{
    check_corrupt_upload(edit_truncate, "bytes in the store");
}
END_TEST

START_TEST(test_job_archive_verify_duplicate)
{
    check_corrupt_upload(edit_dup, "entry 5 '");
}
END_TEST

/* ---- memory: the fetch window bounds what the read batches hold ---- */

/* Bytes the allocator has handed out and not taken back. */
static size_t heap_in_use(void)
{
#if defined(__SANITIZE_ADDRESS__)
    return __sanitizer_get_current_allocated_bytes();
#else
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
#endif
}

static size_t g_heap_peak;

/* At each batch read (the batches ahead of it hold their data) */
static void sample_heap(struct wrap_store *w, unsigned n)
{
    size_t now = heap_in_use();
    (void)w;
    (void)n;
    if (now > g_heap_peak)
        g_heap_peak = now;
}

/* Small objects first (they fill every slot of every batch), big ones
 * after (each batch one range): a batch that kept the buffers of the
 * batch before it, or grew a small one by doubling, would hold its old
 * slots next to its new range, twice the window and more. */
START_TEST(test_job_archive_batches_hold_the_window)
{
    enum { N_SMALL = 64, SMALL = 60 * 1024, N_BIG = 4, BIG = 3 << 20 };
    char dir[] = "/tmp/sila-ut-window.XXXXXX";
    struct wrap_store *w = calloc(1, sizeof(*w));
    unsigned char *data = malloc(BIG);
    struct wk_buf result;
    struct test_sink sink;
    struct job_config cfg;
    struct job_ctx ctx;
    struct wk_err err;
    struct job job;
    size_t base;

    ck_assert_ptr_nonnull(w);
    ck_assert_ptr_nonnull(data);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    wk_err_clear(&err);
    ck_assert_int_eq(store_fs_new(dir, &w->inner, &err), WK_OK);
    w->base.ops = &wrap_ops;
    put_text(w->inner, K_SPACE, "{\"id\":\"" SPACE "\"}");
    for (unsigned i = 0; i < N_SMALL + N_BIG; i++) {
        char key[256];
        size_t len = i < N_SMALL ? SMALL : BIG;
        ut_noise(data, len, i + 1);
        if (i < N_SMALL)
            snprintf(key, sizeof(key), OPS_DAY "%08x-m.jsonl", i);
        else
            snprintf(key, sizeof(key),
                     ACTIVE "space-v1/files/var/uuid/9a/%030x", i);
        ck_assert_msg(store_put(w->inner, key, data, len, &err) == WK_OK,
                      "put '%s': %s", key, err.msg);
    }
    free(data);

    job_config_defaults(&cfg);
    cfg.window_bytes = 4u << 20; /* four batches of 1 MiB */
    cfg.window_objects = 64;     /* sixteen slots each */
    memset(&sink, 0, sizeof(sink));
    sink.base.ops = &test_sink_ops;
    memset(&job, 0, sizeof(job));
    snprintf(job.id, sizeof(job.id), "j-window");
    job.type = JOB_ARCHIVE;
    snprintf(job.space_id, sizeof(job.space_id), "%s", SPACE);
    memset(&ctx, 0, sizeof(ctx));
    ctx.store = &w->base;
    ctx.sink = &sink.base;
    ctx.cfg = &cfg;
    ctx.now = fixed_now;
    wk_buf_init(&result, 1u << 16);
    w->on_get = sample_heap;
    base = heap_in_use();
    g_heap_peak = base;
    ck_assert_msg(job_run(&job, &ctx, &result, &err) == WK_OK, "%s", err.msg);
    ck_assert_uint_gt(w->nget, 8); /* the small batches and the big ones */
    /* a measure that sees nothing (an allocator it does not know) fails
     * here rather than passing below: a batch of the big objects holds
     * its 1 MiB range at least */
    ck_assert_msg(g_heap_peak - base >= (1u << 20),
                  "allocator bytes not measured (%zu)", g_heap_peak - base);
    /* the window, plus the ZIP writer (deflate state, block, directory)
     * and the listings of 69 objects */
    ck_assert_msg(g_heap_peak - base <= cfg.window_bytes + (1u << 20),
                  "the read batches held %zu bytes over a %llu-byte window",
                  g_heap_peak - base, (unsigned long long)cfg.window_bytes);
    ck_assert_uint_eq(count(w->inner, ACTIVE), 0);
    wk_buf_release(&result);
    store_free(&w->base);
    ut_rm_tree(dir);
}
END_TEST

Suite *job_archive_suite(void)
{
    Suite *s = suite_create("job_archive");
    TCase *tc = tcase_create("concurrent");
    tcase_add_test(tc, test_job_archive_quiet_space);
    tcase_add_test(tc, test_job_archive_batches_hold_the_window);
    tcase_add_test(tc, test_job_archive_redone_after_writes);
    tcase_add_test(tc, test_job_archive_gives_up_leaving_space_active);
    tcase_add_test(tc, test_job_archive_tries_configurable);
    tcase_add_test(tc, test_job_archive_keeps_object_changed_after_manifest);
    tcase_add_test(tc, test_job_archive_keeps_object_added_after_manifest);
    tcase_add_test(tc,
                   test_job_archive_refuses_archived_space_with_newer_objects);
    tcase_add_test(tc, test_job_archive_newer_objects_merged_by_restore);
    tcase_add_test(tc, test_job_archive_shrunk_object_redone);
    tcase_add_test(tc, test_job_archive_vanished_object_redone);
    tcase_add_test(tc, test_job_archive_space_emptied_meanwhile);
    tcase_add_test(tc, test_job_archive_undeletable_archive_fails);
    tcase_add_test(tc, test_job_archive_rerun_finishes_interrupted_delete);
    tcase_add_test(tc, test_job_archive_manifest_written_meanwhile_is_fenced);
    tcase_add_test(tc, test_job_archive_generation_grows);
    tcase_add_test(tc, test_job_archive_intermediate_states);
    tcase_add_test(tc, test_job_archive_write_at_delete_is_kept);
    tcase_add_test(tc, test_job_archive_big_compressed_object_level0);
    tcase_add_test(tc, test_job_archive_big_object_with_fake_end_deflated);
    tcase_add_test(tc, test_job_unarchive_failure_reverts_to_archived);
    tcase_add_test(tc, test_job_states_left_by_a_dead_run);
    tcase_add_test(tc, test_job_archive_rerun_keeps_object_newer_than_record);
    tcase_add_test(tc, test_job_archive_sealed_round_trip);
    tcase_add_test(tc, test_job_archive_sealed_key_rotation);
    tcase_add_test(tc, test_job_archive_sealed_restore_refused);
    tcase_add_test(tc, test_job_archive_plain_then_sealed);
    tcase_add_test(tc, test_job_archive_sealed_rekey);
    tcase_add_test(tc, test_job_archive_verify_bad_crc);
    tcase_add_test(tc, test_job_archive_verify_bad_name);
    tcase_add_test(tc, test_job_archive_verify_bad_size);
    tcase_add_test(tc, test_job_archive_verify_offset_outside);
    tcase_add_test(tc, test_job_archive_verify_bad_count);
    tcase_add_test(tc, test_job_archive_verify_truncated);
    tcase_add_test(tc, test_job_archive_verify_duplicate);
    suite_add_tcase(s, tc);
    return s;
}
