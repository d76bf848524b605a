/* The one name policy through the archive and unarchive jobs (store_mem):
 * every safe key anywhere under active/<spaceId>/ is archived and restored
 * verbatim; a key the policy refuses, a key outside the listed prefix (a
 * server that ignores "prefix") or a key listed twice fails the archive
 * before anything is written or deleted; archives of earlier versions with
 * root-level files restore; more than 65,535 entries (ZIP64 end records)
 * archive and restore through the job path. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/wk_path.h"
#include "jobs/job.h"
#include "jobs/manifest.h"
#include "jobs/progress.h"
#include "zip/zipr.h"
#include "storage/store.h"
#include "storage/store_hash.h"
#include "tests/unit/suites.h"
#include "tests/unit/unit_util.h"

#define SPACE   "5f1c2a3b4d5e6f708192a3b4c5d6e7f8"
#define ACTIVE  "active/" SPACE "/"
#define MF_KEY  "metadata/" SPACE ".json"
#define OLD_ZIP "archived/" SPACE "/workspace-20240501T120000Z.zip"

/* ---- a store_mem behind a listing that can lie ---- */

struct nstore {
    struct store base;
    struct store *inner;   /* owned */
    const char *extra[4];  /* keys a listing of active/ adds at its end */
    const char *dup;       /* a key a listing of active/ repeats */
    size_t active_deletes; /* keys under active/ a delete was asked for */
};

struct nlist_ud {
    struct nstore *ns;
    store_list_cb cb;
    void *ud;
};

static struct nstore *ns_of(struct store *st)
{
    return (struct nstore *)st;
}

static enum wk_code nlist_cb(const struct store_entry *e, void *ud,
                             struct wk_err *err)
{
    struct nlist_ud *l = ud;
    enum wk_code rc = l->cb(e, l->ud, err);
    if (rc == WK_OK && l->ns->dup && strcmp(e->key, l->ns->dup) == 0)
        rc = l->cb(e, l->ud, err);
    return rc;
}

static enum wk_code n_list(struct store *st, const char *prefix,
                           const char *delimiter, store_list_cb cb, void *ud,
                           struct wk_err *err)
{
    struct nstore *ns = ns_of(st);
    struct nlist_ud l = { ns, cb, ud };
    enum wk_code rc;

    if (!prefix || strncmp(prefix, "active/", 7) != 0)
        return store_list(ns->inner, prefix, delimiter, cb, ud, err);
    rc = store_list(ns->inner, prefix, delimiter, nlist_cb, &l, err);
    for (size_t i = 0; rc == WK_OK && i < 4 && ns->extra[i]; i++) {
        struct store_entry e = { ns->extra[i], 3, 1714564800, "e-extra",
                                 false };
        rc = cb(&e, ud, err);
    }
    return rc;
}

static enum wk_code n_head(struct store *st, const char *key,
                           struct store_stat *out, struct wk_err *err)
{
    return store_head(ns_of(st)->inner, key, out, err);
}

static enum wk_code n_get(struct store *st, const char *key, uint64_t offset,
                          uint64_t len, store_sink_cb sink, void *ud,
                          struct wk_err *err)
{
    return store_get(ns_of(st)->inner, key, offset, len, sink, ud, err);
}

static enum wk_code n_get_many(struct store *st, struct store_get *reqs,
                               size_t n, struct wk_err *err)
{
    return store_get_many(ns_of(st)->inner, reqs, n, err);
}

static enum wk_code n_put(struct store *st, const char *key, const void *p,
                          size_t n, struct wk_err *err)
{
    return store_put(ns_of(st)->inner, key, p, n, err);
}

static enum wk_code n_put_if(struct store *st, const char *key, const void *p,
                             size_t n, const char *if_match, char *etag_out,
                             size_t etag_len, struct wk_err *err)
{
    return store_put_if(ns_of(st)->inner, key, p, n, if_match, etag_out,
                        etag_len, err);
}

static enum wk_code n_put_many(struct store *st, struct store_put *reqs,
                               size_t n, struct wk_err *err)
{
    return store_put_many(ns_of(st)->inner, reqs, n, err);
}

static enum wk_code n_open_write(struct store *st, const char *key,
                                 const struct store_writer_opts *opts,
                                 struct store_writer **out, struct wk_err *err)
{
    return store_open_write(ns_of(st)->inner, key, opts, out, err);
}

static void count_active(struct nstore *ns, const char *const *keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ns->active_deletes += strncmp(keys[i], "active/", 7) == 0;
}

static enum wk_code n_delete_many(struct store *st, const char *const *keys,
                                  size_t n, size_t *ndeleted,
                                  struct wk_err *err)
{
    count_active(ns_of(st), keys, n);
    return store_delete_many(ns_of(st)->inner, keys, n, ndeleted, err);
}

static enum wk_code n_delete_if(struct store *st, const char *const *keys,
                                const char *const *etags, size_t n,
                                size_t *ndeleted, bool *kept,
                                struct wk_err *err)
{
    count_active(ns_of(st), keys, n);
    return store_delete_if(ns_of(st)->inner, keys, etags, n, ndeleted, kept,
                           err);
}

static enum wk_code n_abort_pending(struct store *st, const char *prefix,
                                    size_t *naborted, struct wk_err *err)
{
    return store_abort_pending(ns_of(st)->inner, prefix, naborted, err);
}

static enum wk_code n_count_pending(struct store *st, const char *prefix,
                                    size_t *npending, struct wk_err *err)
{
    return store_count_pending(ns_of(st)->inner, prefix, npending, err);
}

static void n_free(struct store *st)
{
    struct nstore *ns = ns_of(st);
    store_free(ns->inner);
    free(ns);
}

static const struct store_ops n_ops = {
    .name = "names",
    .list = n_list,
    .head = n_head,
    .get = n_get,
    .get_many = n_get_many,
    .put = n_put,
    .put_if = n_put_if,
    .put_many = n_put_many,
    .open_write = n_open_write,
    .delete_many = n_delete_many,
    .delete_if = n_delete_if,
    .abort_pending = n_abort_pending,
    .count_pending = n_count_pending,
    .free = n_free,
};

static struct nstore *ns_new(void)
{
    struct nstore *ns = calloc(1, sizeof(*ns));
    struct wk_err err;

    ck_assert_ptr_nonnull(ns);
    wk_err_clear(&err);
    ck_assert_int_eq(store_mem_new(&ns->inner, &err), WK_OK);
    ns->base.ops = &n_ops;
    return ns;
}

/* ---- helpers ---- */

static void put_bytes(struct store *st, const char *key, const void *p,
                      size_t n)
{
    struct wk_err err;
    wk_err_clear(&err);
    ck_assert_msg(store_put(st, key, p, n, &err) == WK_OK, "put '%s': %s", key,
                  err.msg);
}

static void put_text(struct store *st, const char *key, const char *text)
{
    put_bytes(st, key, text, strlen(text));
}

/* The object's bytes into b (initialised here), false when missing. */
static bool get_bytes(struct store *st, const char *key, struct wk_buf *b)
{
    struct wk_err err;
    enum wk_code rc;

    wk_buf_init(b, 1u << 24);
    wk_err_clear(&err);
    rc = store_get_all(st, key, b, &err);
    if (rc == WK_E_NOTFOUND)
        return false;
    ck_assert_msg(rc == WK_OK, "get '%s': %s", key, err.msg);
    return true;
}

static enum wk_code count_cb(const struct store_entry *e, void *ud,
                             struct wk_err *err)
{
    (void)e;
    (void)err;
    (*(size_t *)ud)++;
    return WK_OK;
}

static size_t count(struct store *st, const char *prefix)
{
    size_t n = 0;
    struct wk_err err;

    wk_err_clear(&err);
    ck_assert_int_eq(store_list(st, prefix, NULL, count_cb, &n, &err), WK_OK);
    return n;
}

static void sink_update(struct prog_sink *s, const struct prog_state *st)
{
    (void)s;
    (void)st;
}

static const struct prog_sink_ops sink_ops = { .update = sink_update };

static time_t fixed_now(void)
{
    return (time_t)1795701600; /* 2026-11-26T14:00:00Z */
}

struct run {
    struct job_config cfg;
    struct prog_sink sink;
    struct wk_buf result;
    struct wk_err err;
};

static enum wk_code run_job(struct nstore *ns, enum job_type type, int level,
                            struct run *r)
{
    struct job job;
    struct job_ctx ctx;

    memset(r, 0, sizeof(*r));
    job_config_defaults(&r->cfg);
    if (level >= 0)
        r->cfg.deflate_level = level;
    r->sink.ops = &sink_ops;
    memset(&job, 0, sizeof(job));
    snprintf(job.id, sizeof(job.id), "j-names");
    job.type = type;
    snprintf(job.space_id, sizeof(job.space_id), "%s", SPACE);
    memset(&ctx, 0, sizeof(ctx));
    ctx.store = &ns->base;
    ctx.sink = &r->sink;
    ctx.cfg = &r->cfg;
    ctx.now = fixed_now;
    wk_buf_init(&r->result, 1u << 16);
    wk_err_clear(&r->err);
    return job_run(&job, &ctx, &r->result, &r->err);
}

static void run_release(struct run *r)
{
    wk_buf_release(&r->result);
}

/* The manifest's state, or "" without one. */
static void mf_state_of(struct store *st, char *out, size_t len)
{
    struct wk_buf b;
    struct mf m;
    struct wk_err err;

    out[0] = '\0';
    if (!get_bytes(st, MF_KEY, &b)) {
        wk_buf_release(&b);
        return;
    }
    wk_err_clear(&err);
    ck_assert_msg(mf_parse((const char *)b.data, b.len, &m, &err) == WK_OK,
                  "%s", err.msg);
    snprintf(out, len, "%s", mf_state_name(m.state));
    wk_buf_release(&b);
}

/* ---- the policy itself ---- */

/* zipr_name_valid() is wk_name_problem(): the same verdict and reason. */
START_TEST(test_names_policy_is_one_function)
{
    static const char *const cases[] = {
        "sila.md", ".DS_Store",   "a b",  "x/../y", "a//b",      "a\\b", "/abs",
        "dir/",    "caf\xc3\xa9", "\xff", "a\x01",  "a\xc2\x85", ".",    "",
    };
    char why[64];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *p = wk_name_problem(cases[i], strlen(cases[i]));
        why[0] = '\0';
        ck_assert_int_eq(zipr_name_valid(cases[i], why, sizeof(why)),
                         p == NULL);
        if (p)
            ck_assert_str_eq(why, p);
    }
}
END_TEST

START_TEST(test_names_nameset_finds_duplicates)
{
    struct wk_nameset set;
    char name[32];

    wk_nameset_init(&set);
    for (unsigned i = 0; i < 5000; i++) {
        snprintf(name, sizeof(name), "space-v1/f%u", i);
        ck_assert_int_eq(wk_nameset_add(&set, name, strlen(name)), 1);
    }
    ck_assert_uint_eq(set.n, 5000);
    for (unsigned i = 0; i < 5000; i += 7) {
        snprintf(name, sizeof(name), "space-v1/f%u", i);
        ck_assert(wk_nameset_has(&set, name, strlen(name)));
        ck_assert_int_eq(wk_nameset_add(&set, name, strlen(name)), 0);
    }
    /* bytes, not characters: NFC and NFD are two names; a prefix is not
     * the name */
    ck_assert_int_eq(wk_nameset_add(&set, "caf\xc3\xa9", 5), 1);
    ck_assert_int_eq(wk_nameset_add(&set, "cafe\xcc\x81", 6), 1);
    ck_assert(!wk_nameset_has(&set, "space-v1/f1", 10));
    ck_assert_uint_eq(set.n, 5002);
    wk_nameset_release(&set);
    ck_assert(!wk_nameset_has(&set, "caf\xc3\xa9", 5));
}
END_TEST

/* ---- safe names: verbatim both ways ---- */

static const char *const safe_names[] = {
    "space-v1/space.json",
    "sila.md",
    ".DS_Store",
    "notes.txt",
    ".cache/x",
    "empty",
    ".hidden/.also hidden/empty too",
    "a name with spaces.txt",
    "plus+percent%20tilde~.txt",
    "100%",
    "~",
    "...",
    "a/..b/c..",
    "caf\xc3\xa9.md",  /* NFC */
    "cafe\xcc\x81.md", /* NFD: another key, kept apart */
    "\xe6\x97\xa5\xe6\x9c\xac/\xf0\x9f\x98\x80.txt",
    "d/e/e/p/l/y/n/e/s/t/e/d/f/o/l/d/e/r/s/file.bin",
    "space-v1/files/var/uuid/9a/bcdef0123456789abcdef012345678",
    "space-v1/ops/ab/cdef/2026/11/26/1111aaaa-m.jsonl",
    "SILA.md",
    "space-v1", /* a root file named like the folder's prefix */
};
#define NSAFE (sizeof(safe_names) / sizeof(safe_names[0]))

/* Content of the i-th name: empty for names with "empty", else varied
 * (text, zeros, noise, a little over a block). */
static void safe_content(size_t i, struct wk_buf *b)
{
    struct wk_err err;
    const char *name = safe_names[i];

    wk_buf_init(b, 1u << 20);
    wk_err_clear(&err);
    if (i == 0) {
        ck_assert_int_eq(wk_buf_appends(b, "{\"id\":\"" SPACE "\"}", &err),
                         WK_OK);
    } else if (strstr(name, "empty")) {
        /* nothing */
    } else if (i % 3 == 0) {
        unsigned char z[70000];
        memset(z, 0, sizeof(z));
        ck_assert_int_eq(wk_buf_append(b, z, sizeof(z), &err), WK_OK);
    } else if (i % 3 == 1) {
        unsigned char z[3000];
        ut_noise(z, sizeof(z), (unsigned)i);
        ck_assert_int_eq(wk_buf_append(b, z, sizeof(z), &err), WK_OK);
    } else {
        for (size_t k = 0; k <= i; k++)
            ck_assert_int_eq(wk_buf_appends(b, name, &err), WK_OK);
    }
}

static void put_safe_space(struct nstore *ns)
{
    for (size_t i = 0; i < NSAFE; i++) {
        struct wk_buf b;
        char key[1200];
        safe_content(i, &b);
        snprintf(key, sizeof(key), "%s%s", ACTIVE, safe_names[i]);
        put_bytes(ns->inner, key, b.data ? b.data : (const void *)"", b.len);
        wk_buf_release(&b);
    }
}

static void check_safe_space(struct nstore *ns)
{
    ck_assert_uint_eq(count(ns->inner, ACTIVE), NSAFE);
    for (size_t i = 0; i < NSAFE; i++) {
        struct wk_buf want, got;
        char key[1200];
        safe_content(i, &want);
        snprintf(key, sizeof(key), "%s%s", ACTIVE, safe_names[i]);
        ck_assert_msg(get_bytes(ns->inner, key, &got), "'%s' not restored",
                      key);
        ck_assert_msg(
            got.len == want.len &&
                (want.len == 0 || memcmp(got.data, want.data, want.len) == 0),
            "'%s' differs", key);
        wk_buf_release(&want);
        wk_buf_release(&got);
    }
}

START_TEST(test_names_safe_keys_round_trip)
{
    static const int levels[] = { 1, 9, 0 };

    for (size_t l = 0; l < 3; l++) {
        struct nstore *ns = ns_new();
        struct run r;
        char st[16];

        put_safe_space(ns);
        ck_assert_msg(run_job(ns, JOB_ARCHIVE, levels[l], &r) == WK_OK,
                      "archive (level %d): %s", levels[l], r.err.msg);
        run_release(&r);
        ck_assert_uint_eq(count(ns->inner, ACTIVE), 0); /* originals gone */
        mf_state_of(ns->inner, st, sizeof(st));
        ck_assert_str_eq(st, "archived");
        ck_assert_msg(run_job(ns, JOB_UNARCHIVE, -1, &r) == WK_OK,
                      "unarchive (level %d): %s", levels[l], r.err.msg);
        run_release(&r);
        check_safe_space(ns);
        mf_state_of(ns->inner, st, sizeof(st));
        ck_assert_str_eq(st, "active");
        store_free(&ns->base);
    }
}
END_TEST

/* ---- refused before anything is written or deleted ---- */

/* The archive job fails with code and a message holding want; the space
 * is as it was: every object there, no archive, no upload, nothing asked
 * to be deleted, the manifest (if any) back to active. */
static void expect_archive_refused(struct nstore *ns, enum wk_code code,
                                   const char *want)
{
    struct run r;
    char st[16];
    size_t pending = 0;
    struct wk_err err;

    ck_assert_int_eq(run_job(ns, JOB_ARCHIVE, -1, &r), code);
    ck_assert_msg(strstr(r.err.msg, want) != NULL, "'%s' not in '%s'", want,
                  r.err.msg);
    run_release(&r);
    ck_assert_uint_eq(ns->active_deletes, 0);
    ck_assert_uint_eq(count(ns->inner, ACTIVE), NSAFE);
    ck_assert_uint_eq(count(ns->inner, "archived/"), 0);
    wk_err_clear(&err);
    ck_assert_int_eq(
        store_count_pending(ns->inner, "archived/", &pending, &err), WK_OK);
    ck_assert_uint_eq(pending, 0);
    mf_state_of(ns->inner, st, sizeof(st));
    ck_assert_msg(st[0] == '\0' || strcmp(st, "active") == 0, "state %s", st);
    check_safe_space(ns);
}

START_TEST(test_names_refused_key_fails_archive_before_delete)
{
    static const struct {
        const char *key, *want;
    } cases[] = {
        { ACTIVE "a/../b", "key 'active/" SPACE "/a/../b' cannot be "
                           "archived: '..' component" },
        { ACTIVE "a//b", "key 'active/" SPACE "/a//b' cannot be archived: "
                         "empty component" },
        { ACTIVE "a\\b", "key 'active/" SPACE "/a\\b' cannot be archived: "
                         "backslash in name" },
        { ACTIVE "bad\x1b[31mname", "key 'active/" SPACE "/bad?[31mname' "
                                    "cannot be archived: control character" },
        { ACTIVE "dir/", "trailing '/'" },
        { ACTIVE "./x", "'.' component" },
        { ACTIVE "x\xff", "not valid UTF-8" },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct nstore *ns = ns_new();
        put_safe_space(ns);
        ns->extra[0] = cases[i].key;
        expect_archive_refused(ns, WK_E_INVAL, cases[i].want);
        store_free(&ns->base);
    }
}
END_TEST

/* A server that ignores "prefix": the keys of another space, or of
 * another folder, are never archived under a made-up name, never deleted. */
START_TEST(test_names_foreign_key_refused)
{
    static const char *const foreign[] = {
        "active/ffffffffffffffffffffffffffffffff/sila.md",
        "metadata/" SPACE ".json.bak",
        "zzz",
    };

    for (size_t i = 0; i < 3; i++) {
        struct nstore *ns = ns_new();
        char want[256];
        put_safe_space(ns);
        put_text(ns->inner, "active/ffffffffffffffffffffffffffffffff/sila.md",
                 "other space");
        ns->extra[0] = foreign[i];
        snprintf(want, sizeof(want),
                 "listing of '" ACTIVE "' returned key '%s', which is "
                 "outside it",
                 foreign[i]);
        expect_archive_refused(ns, WK_E_CORRUPT, want);
        ck_assert_uint_eq(
            count(ns->inner, "active/ffffffffffffffffffffffffffffffff/"), 1);
        store_free(&ns->base);
    }
}
END_TEST

START_TEST(test_names_duplicate_listing_refused)
{
    struct nstore *ns = ns_new();

    put_safe_space(ns);
    ns->dup = ACTIVE "notes.txt";
    expect_archive_refused(ns, WK_E_CORRUPT,
                           "listing of '" ACTIVE "' returned key '" ACTIVE
                           "notes.txt' twice");
    store_free(&ns->base);
}
END_TEST

/* ---- archives of earlier versions ---- */

struct buf_src {
    const struct wk_buf *b;
    bool done;
};

static enum wk_code buf_read(void *ud, const void **p, size_t *n,
                             struct wk_err *err)
{
    struct buf_src *s = ud;
    (void)err;
    *p = s->b->data;
    *n = s->done ? 0 : s->b->len;
    s->done = true;
    return WK_OK;
}

/* Install zip as the space's archive with a manifest (state archived) the
 * way an earlier version wrote them. */
static void install_old_archive(struct nstore *ns, const struct wk_buf *zip,
                                uint64_t files, uint64_t bytes)
{
    struct mf m;
    struct wk_buf j;
    struct wk_err err;

    put_bytes(ns->inner, OLD_ZIP, zip->data, zip->len);
    memset(&m, 0, sizeof(m));
    snprintf(m.version, sizeof(m.version), "%s", MF_VERSION);
    snprintf(m.space_id, sizeof(m.space_id), "%s", SPACE);
    m.state = MF_ARCHIVED;
    m.created_at = 1714564800;
    m.archived_at = 1714564800;
    snprintf(m.compression, sizeof(m.compression), "deflate");
    snprintf(m.archive_key, sizeof(m.archive_key), "%s", OLD_ZIP);
    store_sha256_hex(zip->data, zip->len, m.checksum);
    m.size = zip->len;
    m.uncompressed_size = bytes;
    m.file_count = files;
    wk_buf_init(&j, 1u << 20);
    wk_err_clear(&err);
    ck_assert_int_eq(mf_to_json(&m, &j, &err), WK_OK);
    put_bytes(ns->inner, MF_KEY, j.data, j.len);
    wk_buf_release(&j);
}

/* Entries and bytes of a ZIP (read with our reader). */
static void zip_totals(const struct wk_buf *zip, uint64_t *files,
                       uint64_t *bytes)
{
    static const struct zipr_limits lim = { 1u << 30, 1000, 100000, 0 };
    struct buf_src src = { zip, false };
    struct zipr *zr = NULL;
    struct zipr_entry e;
    struct wk_err err;
    bool eof = false;
    char buf[4096];
    size_t n;

    *files = 0;
    wk_err_clear(&err);
    ck_assert_int_eq(zipr_new(buf_read, &src, &lim, &zr, &err), WK_OK);
    for (;;) {
        ck_assert_msg(zipr_next(zr, &e, &eof, &err) == WK_OK, "%s", err.msg);
        if (eof)
            break;
        (*files)++;
        do
            ck_assert_int_eq(zipr_read(zr, buf, sizeof(buf), &n, &err), WK_OK);
        while (n > 0);
    }
    *bytes = zipr_total_bytes(zr);
    zipr_free(zr);
}

/* An archive from Python's zipfile holding root-level files, dotfiles and
 * a dotted folder, as earlier versions archived them: the unarchive job
 * restores every file. */
START_TEST(test_names_old_archive_with_root_files_restores)
{
    static const struct {
        const char *key, *data;
        size_t len;
    } want[] = {
        { ACTIVE "notes.txt", "my notes\n", 9 },
        { ACTIVE ".DS_Store", "\0\0\0\001Bud1", 8 },
        { ACTIVE ".cache/x", "", 0 },
        { ACTIVE "a b+c%d~e.txt", "odd but safe\n", 13 },
    };
    struct nstore *ns = ns_new();
    struct wk_buf zip, got;
    uint64_t files, bytes;
    struct run r;
    char st[16];

    ck_assert(ut_hostile_zip("rootfiles", NULL, &zip));
    zip_totals(&zip, &files, &bytes);
    ck_assert_uint_eq(files, 8);
    install_old_archive(ns, &zip, files, bytes);
    ck_assert_msg(run_job(ns, JOB_UNARCHIVE, -1, &r) == WK_OK, "%s", r.err.msg);
    run_release(&r);
    ck_assert_uint_eq(count(ns->inner, ACTIVE), 8);
    for (size_t i = 0; i < 4; i++) {
        ck_assert_msg(get_bytes(ns->inner, want[i].key, &got), "'%s' missing",
                      want[i].key);
        ck_assert_uint_eq(got.len, want[i].len);
        ck_assert(want[i].len == 0 ||
                  memcmp(got.data, want[i].data, want[i].len) == 0);
        wk_buf_release(&got);
    }
    mf_state_of(ns->inner, st, sizeof(st));
    ck_assert_str_eq(st, "active");
    wk_buf_release(&zip);
    store_free(&ns->base);
}
END_TEST

/* An archive with one name twice (a buggy writer): the restore fails
 * clearly, and leaves the space archived with nothing half restored. */
START_TEST(test_names_restore_refuses_duplicate_names)
{
    struct nstore *ns = ns_new();
    struct wk_buf zip;
    struct run r;
    char st[16];

    ck_assert(ut_hostile_zip("duplicate", NULL, &zip));
    install_old_archive(ns, &zip, 2, 13);
    ck_assert_int_eq(run_job(ns, JOB_UNARCHIVE, -1, &r), WK_E_CORRUPT);
    ck_assert_msg(strstr(r.err.msg, "'space-v1/a': duplicate name") != NULL,
                  "%s", r.err.msg);
    run_release(&r);
    ck_assert_uint_eq(count(ns->inner, ACTIVE), 0);
    mf_state_of(ns->inner, st, sizeof(st));
    ck_assert_str_eq(st, "archived");
    ck_assert_uint_eq(count(ns->inner, OLD_ZIP), 1);
    wk_buf_release(&zip);
    store_free(&ns->base);
}
END_TEST

/* ---- more than 65,535 entries ---- */

#define MANY 70000u

static void many_content(unsigned i, char *buf, size_t len)
{
    snprintf(buf, len, "file %u of the space\n", i);
}

/* An archive of MANY small files through the job path: the ZIP needs the
 * ZIP64 end records (the classic entry count field is 16 bits); restored,
 * every key is back and a sample of contents matches. */
START_TEST(test_names_more_than_65535_entries)
{
    struct nstore *ns = ns_new();
    struct wk_buf zip;
    struct run r;
    char key[256], text[64];
    json_t *res;
    const char *akey;
    bool z64 = false;

    put_text(ns->inner, ACTIVE "space-v1/space.json", "{\"id\":\"" SPACE "\"}");
    for (unsigned i = 0; i < MANY; i++) {
        snprintf(key, sizeof(key), ACTIVE "space-v1/ops/%02u/%05u.jsonl",
                 i % 97, i);
        many_content(i, text, sizeof(text));
        put_text(ns->inner, key, text);
    }
    ck_assert_msg(run_job(ns, JOB_ARCHIVE, 1, &r) == WK_OK, "%s", r.err.msg);
    res = json_loads(wk_buf_cstr(&r.result), 0, NULL);
    ck_assert_ptr_nonnull(res);
    ck_assert_int_eq(json_integer_value(json_object_get(res, "fileCount")),
                     MANY + 1);
    akey = json_string_value(json_object_get(res, "archiveKey"));
    ck_assert_ptr_nonnull(akey);
    ck_assert(get_bytes(ns->inner, akey, &zip));
    /* the ZIP64 end of central directory record and locator, near the end */
    for (size_t i = zip.len > 200 ? zip.len - 200 : 0; i + 4 <= zip.len; i++)
        z64 |= memcmp(zip.data + i, "PK\006\006", 4) == 0;
    ck_assert(z64);
    wk_buf_release(&zip);
    json_decref(res);
    run_release(&r);
    ck_assert_uint_eq(count(ns->inner, ACTIVE), 0);

    ck_assert_msg(run_job(ns, JOB_UNARCHIVE, -1, &r) == WK_OK, "%s", r.err.msg);
    run_release(&r);
    ck_assert_uint_eq(count(ns->inner, ACTIVE), MANY + 1);
    for (unsigned i = 0; i < MANY; i += 997) {
        struct wk_buf got;
        snprintf(key, sizeof(key), ACTIVE "space-v1/ops/%02u/%05u.jsonl",
                 i % 97, i);
        many_content(i, text, sizeof(text));
        ck_assert_msg(get_bytes(ns->inner, key, &got), "'%s' missing", key);
        ck_assert_uint_eq(got.len, strlen(text));
        ck_assert(memcmp(got.data, text, got.len) == 0);
        wk_buf_release(&got);
    }
    store_free(&ns->base);
}
END_TEST

Suite *names_suite(void)
{
    Suite *s = suite_create("names");
    TCase *tc = tcase_create("core");
    TCase *big = tcase_create("zip64");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_names_policy_is_one_function);
    tcase_add_test(tc, test_names_nameset_finds_duplicates);
    tcase_add_test(tc, test_names_safe_keys_round_trip);
    tcase_add_test(tc, test_names_refused_key_fails_archive_before_delete);
    tcase_add_test(tc, test_names_foreign_key_refused);
    tcase_add_test(tc, test_names_duplicate_listing_refused);
    tcase_add_test(tc, test_names_old_archive_with_root_files_restores);
    tcase_add_test(tc, test_names_restore_refuses_duplicate_names);
    suite_add_tcase(s, tc);

    tcase_set_timeout(big, 300);
    tcase_add_test(big, test_names_more_than_65535_entries);
    suite_add_tcase(s, big);
    return s;
}
