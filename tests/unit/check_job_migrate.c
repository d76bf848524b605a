/* job_migrate: spec parsing and source URL rules; a space folder (a temp
 * directory, file://) migrated into store_mem, to active/ and to an
 * archive: every file verbatim, CAS blobs verified (a flipped byte fails
 * the job naming the file, and nothing of it is written), a second run
 * skips everything, an interrupted run resumes, a space already in the
 * store is reported (or replaced with overwrite), a folder that is not a
 * space or holds another space is refused, the source never changes; and
 * the migrate-all listing of a folder of spaces. */
#include <dirent.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jobs/job.h"
#include "jobs/job_migrate.h"
#include "jobs/manifest.h"
#include "jobs/progress.h"
#include "zip/zipr.h"
#include "storage/seal.h"
#include "storage/store.h"
#include "storage/store_hash.h"
#include "tests/unit/suites.h"
#include "tests/unit/unit_util.h"

#define SPACE  "0123456789abcdef0123456789abcdef"
#define OTHER  "fedcba9876543210fedcba9876543210"
#define ACTIVE "active/" SPACE "/"
#define MF_KEY "metadata/" SPACE ".json"
#define MARKER "metadata/" SPACE ".migrate.json"
#define CHUNK  4096u /* small: the big-file paths run too */

#define F_SPACE   "space-v1/space.json"
#define F_SILA    "sila.md"
#define F_SECRETS "space-v1/secrets"
#define F_MOVES   "space-v1/ops/ab/cdef/2026/11/26/1111aaaa-m.jsonl"
#define F_PROPS   "space-v1/ops/ab/cdef/2026/11/26/1111aaaa-p.jsonl"
#define F_VAR     "space-v1/files/var/uuid/9a/bcdef0123456789abcdef012345678"
#define F_BIGVAR  "space-v1/files/var/uuid/11/22334455667788990011223344556"

/* ---- temp dirs ---- */

static char tmp[128];

static void fmt(char *buf, size_t len, const char *f, ...)
    __attribute__((format(printf, 3, 4)));
static void fmt(char *buf, size_t len, const char *f, ...)
{
    va_list ap;
    int n;

    va_start(ap, f);
    n = vsnprintf(buf, len, f, ap);
    va_end(ap);
    ck_assert(n >= 0 && (size_t)n < len);
}

static void setup(void)
{
    snprintf(tmp, sizeof(tmp), "/tmp/wk-migrate-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmp));
}

static void teardown(void)
{
    ut_rm_tree(tmp);
}

/* ---- the space folder ---- */

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

/* "space-v1/files/static/sha256/<2>/<62>" of the bytes. */
static void cas_key(const void *p, size_t n, char *out, size_t len)
{
    char hex[65];
    store_sha256_hex(p, n, hex);
    fmt(out, len, "space-v1/files/static/sha256/%.2s/%s", hex, hex + 2);
}

/* The CAS blobs of the test space: one small, one bigger than CHUNK. */
static char k_blob[128], k_bigblob[128], k_empty[128];
static char bigblob[10000], bigvar[9000];
static const char blob[] = "a small content-addressed blob\n";
#define NFILES 10u

/* A space folder at <tmp>/<name> holding space id; returns its URL. */
static void make_space(const char *name, const char *id, char *url,
                       size_t urllen)
{
    char dir[256], json[200];
    struct store *st = NULL;
    struct wk_err err;

    fmt(dir, sizeof(dir), "%s/%s", tmp, name);
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    wk_err_clear(&err);
    ck_assert_int_eq(store_fs_new(dir, &st, &err), WK_OK);
    for (size_t i = 0; i < sizeof(bigblob); i++)
        bigblob[i] = (char)(i * 7 + i / 251);
    for (size_t i = 0; i < sizeof(bigvar); i++)
        bigvar[i] = (char)('a' + i % 23);
    cas_key(blob, strlen(blob), k_blob, sizeof(k_blob));
    cas_key(bigblob, sizeof(bigblob), k_bigblob, sizeof(k_bigblob));
    cas_key("", 0, k_empty, sizeof(k_empty));
    fmt(json, sizeof(json), "{\"id\":\"%s\"}", id);
    put_text(st, F_SPACE, json);
    put_text(st, F_SILA, "# Sila workspace\n");
    put_text(st, F_SECRETS, "c2VjcmV0cw==\n");
    put_text(st, F_MOVES, "[1,\"cc\",null]\n[2,\"dd\",\"cc\"]\n");
    put_text(st, F_PROPS, "[1,\"cc\",\"name\",\"a value\"]\n");
    put_text(st, F_VAR, "variable blob contents");
    put_text(st, k_blob, blob);
    put_bytes(st, k_bigblob, bigblob, sizeof(bigblob));
    put_bytes(st, F_BIGVAR, bigvar, sizeof(bigvar));
    put_bytes(st, k_empty, "", 0);
    store_free(st);
    fmt(url, urllen, "file://%s", dir);
}

/* Every file of a folder with its change tag (size and mtime in ns). */
static enum wk_code snap_cb(const struct store_entry *e, void *ud,
                            struct wk_err *err)
{
    wk_buf_appendf(ud, err, "%s %s\n", e->key, e->etag);
    return WK_OK;
}

static char *snapshot(const char *url)
{
    struct store *st = NULL;
    struct wk_buf b;
    struct wk_err err;
    size_t len;
    char *s;

    wk_err_clear(&err);
    ck_assert_int_eq(store_fs_new(url + 7, &st, &err), WK_OK);
    wk_buf_init(&b, 1u << 20);
    ck_assert_int_eq(store_list(st, "", NULL, snap_cb, &b, &err), WK_OK);
    store_free(st);
    s = wk_buf_detach(&b, &len);
    ck_assert_ptr_nonnull(s);
    return s;
}

/* ---- the destination ---- */

static struct store *new_mem(void)
{
    struct store *st = NULL;
    struct wk_err err;
    wk_err_clear(&err);
    ck_assert_int_eq(store_mem_new(&st, &err), WK_OK);
    return st;
}

/* The object's bytes (free()), or NULL when it does not exist. */
static char *get_obj(struct store *st, const char *key, size_t *len)
{
    struct wk_buf b;
    struct wk_err err;
    enum wk_code rc;
    char *s;

    wk_buf_init(&b, 1u << 24);
    wk_err_clear(&err);
    rc = store_get_all(st, key, &b, &err);
    if (rc == WK_E_NOTFOUND) {
        wk_buf_release(&b);
        return NULL;
    }
    ck_assert_msg(rc == WK_OK, "get '%s': %s", key, err.msg);
    s = wk_buf_detach(&b, len);
    if (!s)
        s = strdup("");
    return s;
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

/* active/<SPACE>/<name> holds exactly the bytes of the source file. */
static void assert_copied(struct store *dst, const char *src_url,
                          const char *name)
{
    char key[300], path[600];
    size_t n1 = 0, n2 = 0;
    struct store *src = NULL;
    struct wk_err err;
    char *a, *b;

    fmt(key, sizeof(key), "%s%s", ACTIVE, name);
    fmt(path, sizeof(path), "%s", src_url + 7);
    wk_err_clear(&err);
    ck_assert_int_eq(store_fs_new(path, &src, &err), WK_OK);
    a = get_obj(src, name, &n1);
    b = get_obj(dst, key, &n2);
    ck_assert_msg(a && b, "'%s' missing", name);
    ck_assert_uint_eq(n1, n2);
    ck_assert_msg(memcmp(a, b, n1) == 0, "'%s' differs", name);
    free(a);
    free(b);
    store_free(src);
}

/* ---- running ---- */

struct test_sink {
    struct prog_sink base;
    int last_progress;
    const char *last_phase;
};

static void test_sink_update(struct prog_sink *s, const struct prog_state *st)
{
    struct test_sink *t = (struct test_sink *)s;
    ck_assert_int_ge(st->progress, t->last_progress);
    t->last_progress = st->progress;
    t->last_phase = st->phase;
}

static const struct prog_sink_ops test_sink_ops = {
    .update = test_sink_update,
};

static time_t fixed_now(void)
{
    return (time_t)1795701600; /* 2026-11-26T14:00:00Z */
}

struct run {
    struct job_config cfg;
    struct test_sink sink;
    struct wk_buf result;
    struct wk_err err;
    json_t *res;
};

/* Master keys of the next runs (NULL: no client-side encryption). */
static const struct seal_keyring *g_keys;

static enum wk_code run_spec(struct store *dst, const char *spec,
                             const char *store_url, struct run *r)
{
    struct job job;
    struct job_ctx ctx;
    enum wk_code rc;

    memset(r, 0, sizeof(*r));
    job_config_defaults(&r->cfg);
    r->cfg.chunk_bytes = CHUNK;
    r->cfg.window_bytes = 3 * CHUNK;
    r->cfg.window_objects = 3; /* several batches */
    r->sink.base.ops = &test_sink_ops;
    wk_buf_init(&r->result, 1u << 16);
    wk_err_clear(&r->err);
    rc = job_parse(spec, strlen(spec), &job, &r->err);
    ck_assert_msg(rc == WK_OK, "spec %s: %s", spec, r->err.msg);
    snprintf(job.id, sizeof(job.id), "j-1");
    memset(&ctx, 0, sizeof(ctx));
    ctx.store = dst;
    ctx.sink = &r->sink.base;
    ctx.cfg = &r->cfg;
    ctx.now = fixed_now;
    ctx.store_url = store_url;
    ctx.keys = g_keys;
    rc = job_run(&job, &ctx, &r->result, &r->err);
    if (rc == WK_OK) {
        r->res = json_loads(wk_buf_cstr(&r->result), 0, NULL);
        ck_assert_msg(r->res != NULL, "result '%s'", wk_buf_cstr(&r->result));
        ck_assert_int_eq(r->sink.last_progress, 100);
        ck_assert_str_eq(r->sink.last_phase, "done");
    }
    return rc;
}

/* {"type":"migrate","spaceId":SPACE,"source":url<extra>} */
static enum wk_code run_migrate(struct store *dst, const char *url,
                                const char *extra, struct run *r)
{
    char spec[1024];
    fmt(spec, sizeof(spec),
        "{\"type\":\"migrate\",\"spaceId\":\"" SPACE "\",\"source\":\"%s\"%s}",
        url, extra ? extra : "");
    return run_spec(dst, spec, NULL, r);
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

static void flip_byte(const char *url, const char *name, size_t off)
{
    char path[600];
    FILE *f;
    int c;

    fmt(path, sizeof(path), "%s/%s", url + 7, name);
    f = fopen(path, "r+b");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fseek(f, (long)off, SEEK_SET), 0);
    c = fgetc(f);
    ck_assert_int_ne(c, EOF);
    ck_assert_int_eq(fseek(f, (long)off, SEEK_SET), 0);
    fputc(c ^ 0x01, f);
    fclose(f);
}

/* ---- parsing ---- */

static enum wk_code parse(const char *json, struct job *j, struct wk_err *e)
{
    wk_err_clear(e);
    return job_parse(json, strlen(json), j, e);
}

START_TEST(test_job_migrate_parse)
{
    struct job j;
    struct wk_err e;

    ck_assert_int_eq(parse("{\"type\":\"migrate\",\"spaceId\":\"" SPACE
                           "\",\"source\":\"file:///srv/sila/data/spaces/" SPACE
                           "/\"}",
                           &j, &e),
                     WK_OK);
    ck_assert_int_eq(j.type, JOB_MIGRATE);
    ck_assert_str_eq(j.space_id, SPACE);
    ck_assert_str_eq(j.source, "file:///srv/sila/data/spaces/" SPACE);
    ck_assert_int_eq(j.target, JOB_TARGET_ACTIVE);
    ck_assert(!j.overwrite);
    ck_assert_str_eq(job_type_name(j.type), "migrate");

    /* spaceId optional; target and overwrite */
    ck_assert_int_eq(parse("{\"type\":\"migrate\",\"source\":\"s3://old-bucket/"
                           "spaces/x1\",\"target\":\"archived\","
                           "\"overwrite\":true}",
                           &j, &e),
                     WK_OK);
    ck_assert_str_eq(j.space_id, "");
    ck_assert_str_eq(j.source, "s3://old-bucket/spaces/x1");
    ck_assert_int_eq(j.target, JOB_TARGET_ARCHIVED);
    ck_assert(j.overwrite);
    ck_assert_int_eq(parse("{\"type\":\"migrate\",\"source\":\"file:///a\","
                           "\"target\":\"active\",\"overwrite\":false}",
                           &j, &e),
                     WK_OK);
    ck_assert_int_eq(j.target, JOB_TARGET_ACTIVE);

    ck_assert_int_eq(
        parse("{\"type\":\"migrate\",\"spaceId\":\"abc\"}", &j, &e),
        WK_E_INVAL);
    ck_assert_str_eq(e.msg, "job field 'source' is missing");
    ck_assert_int_eq(parse("{\"type\":\"migrate\",\"source\":\"file:///a\","
                           "\"target\":\"cold\"}",
                           &j, &e),
                     WK_E_INVAL);
    ck_assert_str_eq(e.msg, "job field 'target': expected \"active\" or "
                            "\"archived\", got 'cold'");
    ck_assert_int_eq(parse("{\"type\":\"migrate\",\"source\":\"file:///a\","
                           "\"overwrite\":\"yes\"}",
                           &j, &e),
                     WK_E_INVAL);
    ck_assert_str_eq(e.msg, "job field 'overwrite' must be true or false");
    ck_assert_int_eq(parse("{\"type\":\"migrate\",\"source\":\"file:///a\","
                           "\"spaceId\":\"../x\"}",
                           &j, &e),
                     WK_E_INVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "job field 'spaceId'"));
    /* the migrate fields belong to migrate */
    ck_assert_int_eq(parse("{\"type\":\"archive\",\"spaceId\":\"abc\","
                           "\"source\":\"file:///a\"}",
                           &j, &e),
                     WK_E_INVAL);
    ck_assert_str_eq(e.msg, "job field 'source' is only for migrate");
    ck_assert_int_eq(parse("{\"type\":\"unarchive\",\"spaceId\":\"abc\","
                           "\"overwrite\":true}",
                           &j, &e),
                     WK_E_INVAL);
    ck_assert_str_eq(e.msg, "job field 'overwrite' is only for migrate");
    /* archive still needs its spaceId */
    ck_assert_int_eq(parse("{\"type\":\"archive\"}", &j, &e), WK_E_INVAL);
    ck_assert_str_eq(e.msg, "job field 'spaceId' is missing");
}
END_TEST

START_TEST(test_job_migrate_source_urls)
{
    static const struct {
        const char *url, *why;
    } bad[] = {
        { "srv/sila", "expected file:///absolute/path or s3://bucket/prefix" },
        { "http://host/x", "expected file:///" },
        { "file://srv/sila", "no host" },
        { "file://localhost/srv", "no host" },
        { "file:///", "root directory" },
        { "file:///srv/../etc", "'..'" },
        { "file:///srv/./x", "'.'" },
        { "file:///srv//x", "empty path component" },
        { "file:///srv/x//", "empty path component" },
        { "file:///srv/a%2e%2e", "nothing is decoded" },
        { "file:///srv/a?x", "nothing is decoded" },
        { "file:///srv/a\\b", "backslash" },
        { "file:///srv/a\nb", "control character" },
        { "s3://bucket", "never a whole bucket" },
        { "s3://bucket/", "never a whole bucket" },
        { "s3://Bucket/x", "bad bucket name" },
        { "s3://ab/x", "bad bucket name" },
        { "s3://bucket/a/../b", "'..'" },
    };
    char out[JOB_SOURCE_MAX + 1], why[160], longurl[1100];
    struct job j;
    struct wk_err e;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why[0] = '\0';
        ck_assert_msg(!job_migrate_url_valid(bad[i].url, false, out,
                                             sizeof(out), why, sizeof(why)),
                      "'%s' accepted", bad[i].url);
        ck_assert_msg(strstr(why, bad[i].why) != NULL, "'%s': '%s' lacks '%s'",
                      bad[i].url, why, bad[i].why);
    }
    ck_assert(job_migrate_url_valid("s3://b.u-c/p/" SPACE "/", false, out,
                                    sizeof(out), why, sizeof(why)));
    ck_assert_str_eq(out, "s3://b.u-c/p/" SPACE);
    /* a root of space folders may be a whole bucket, never "/" */
    ck_assert(job_migrate_url_valid("s3://bucket/", true, out, sizeof(out), why,
                                    sizeof(why)));
    ck_assert_str_eq(out, "s3://bucket");
    ck_assert(job_migrate_url_valid("s3://bucket", true, out, sizeof(out), why,
                                    sizeof(why)));
    ck_assert_str_eq(out, "s3://bucket");
    ck_assert(!job_migrate_url_valid("file:///", true, out, sizeof(out), why,
                                     sizeof(why)));
    ck_assert(job_migrate_url_valid("file:///srv/sila/data/spaces/", true, out,
                                    sizeof(out), why, sizeof(why)));
    ck_assert_str_eq(out, "file:///srv/sila/data/spaces");
    memset(longurl, 'a', sizeof(longurl) - 1);
    memcpy(longurl, "file:///", 8);
    longurl[sizeof(longurl) - 1] = '\0';
    ck_assert(!job_migrate_url_valid(longurl, false, out, sizeof(out), why,
                                     sizeof(why)));
    ck_assert_ptr_nonnull(strstr(why, "longer than 1024"));
    /* job_parse applies them and names the field */
    ck_assert_int_eq(parse("{\"type\":\"migrate\",\"source\":"
                           "\"file:///srv/../etc\"}",
                           &j, &e),
                     WK_E_INVAL);
    ck_assert_str_eq(e.msg, "job field 'source': 'file:///srv/../etc': '.' or "
                            "'..' path component");
    ck_assert_int_eq(parse("{\"type\":\"migrate\",\"source\":"
                           "\"file:///a\\u0000b\"}",
                           &j, &e),
                     WK_E_INVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "NUL byte"));
}
END_TEST

/* ---- copying to active/ ---- */

START_TEST(test_job_migrate_to_active)
{
    struct store *dst = new_mem();
    char url[256], *before, *after, *marker;
    const char *names[] = { F_SPACE, F_SILA, F_SECRETS, F_MOVES,  F_PROPS,
                            F_VAR,   k_blob, k_bigblob, F_BIGVAR, k_empty };
    struct run r;
    size_t len;

    make_space("s1", SPACE, url, sizeof(url));
    before = snapshot(url);
    ck_assert_msg(run_migrate(dst, url, NULL, &r) == WK_OK, "%s", r.err.msg);
    ck_assert_int_eq(res_int(&r, "files"), NFILES);
    ck_assert_int_eq(res_int(&r, "skipped"), 0);
    ck_assert_int_eq(res_int(&r, "totalFiles"), NFILES);
    ck_assert_int_eq(res_int(&r, "bytes"), res_int(&r, "totalBytes"));
    ck_assert_int_eq(res_int(&r, "ignored"), 0);
    ck_assert_str_eq(res_str(&r, "target"), "active");
    ck_assert_str_eq(res_str(&r, "spaceId"), SPACE);
    ck_assert_str_eq(res_str(&r, "source"), url);
    run_release(&r);
    ck_assert_uint_eq(count(dst, ACTIVE), NFILES);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        assert_copied(dst, url, names[i]);
    /* no manifest for an active space; the marker says done */
    ck_assert_ptr_null(get_obj(dst, MF_KEY, &len));
    marker = get_obj(dst, MARKER, &len);
    ck_assert_ptr_nonnull(marker);
    ck_assert_ptr_nonnull(strstr(marker, "\"state\":\"done\""));
    free(marker);
    /* read-only source */
    after = snapshot(url);
    ck_assert_str_eq(before, after);
    free(before);
    free(after);
    store_free(dst);
}
END_TEST

START_TEST(test_job_migrate_second_run_skips_everything)
{
    struct store *dst = new_mem();
    char url[256];
    struct run r;

    make_space("s1", SPACE, url, sizeof(url));
    ck_assert_msg(run_migrate(dst, url, NULL, &r) == WK_OK, "%s", r.err.msg);
    run_release(&r);
    ck_assert_msg(run_migrate(dst, url, NULL, &r) == WK_OK, "%s", r.err.msg);
    ck_assert_int_eq(res_int(&r, "files"), 0);
    ck_assert_int_eq(res_int(&r, "bytes"), 0);
    ck_assert_int_eq(res_int(&r, "skipped"), NFILES);
    ck_assert_ptr_null(json_object_get(r.res, "differs"));
    run_release(&r);
    ck_assert_uint_eq(count(dst, ACTIVE), NFILES);
    store_free(dst);
}
END_TEST

/* ---- a destination that fails its second batch PUT (a run that dies) */

struct flaky {
    struct store base;
    struct store *inner; /* owned */
    unsigned nput, fail_at;
};

static struct store *inner_of(struct store *st)
{
    return ((struct flaky *)st)->inner;
}

static enum wk_code fl_list(struct store *st, const char *prefix,
                            const char *delimiter, store_list_cb cb, void *ud,
                            struct wk_err *err)
{
    return store_list(inner_of(st), prefix, delimiter, cb, ud, err);
}

static enum wk_code fl_head(struct store *st, const char *key,
                            struct store_stat *out, struct wk_err *err)
{
    return store_head(inner_of(st), key, out, err);
}

static enum wk_code fl_get(struct store *st, const char *key, uint64_t offset,
                           uint64_t len, store_sink_cb sink, void *ud,
                           struct wk_err *err)
{
    return store_get(inner_of(st), key, offset, len, sink, ud, err);
}

static enum wk_code fl_get_many(struct store *st, struct store_get *reqs,
                                size_t n, struct wk_err *err)
{
    return store_get_many(inner_of(st), reqs, n, err);
}

static enum wk_code fl_put(struct store *st, const char *key, const void *p,
                           size_t n, struct wk_err *err)
{
    return store_put(inner_of(st), key, p, n, err);
}

static enum wk_code fl_put_many(struct store *st, struct store_put *reqs,
                                size_t n, struct wk_err *err)
{
    struct flaky *f = (struct flaky *)st;
    if (++f->nput == f->fail_at)
        return wk_err_set(err, WK_E_NET, "put: connection reset (test)");
    return store_put_many(f->inner, reqs, n, err);
}

static enum wk_code fl_open_write(struct store *st, const char *key,
                                  const struct store_writer_opts *opts,
                                  struct store_writer **out, struct wk_err *err)
{
    return store_open_write(inner_of(st), key, opts, out, err);
}

static enum wk_code fl_delete_many(struct store *st, const char *const *keys,
                                   size_t n, size_t *nd, struct wk_err *err)
{
    return store_delete_many(inner_of(st), keys, n, nd, err);
}

static enum wk_code fl_delete_if(struct store *st, const char *const *keys,
                                 const char *const *etags, size_t n, size_t *nd,
                                 bool *kept, struct wk_err *err)
{
    return store_delete_if(inner_of(st), keys, etags, n, nd, kept, err);
}

static enum wk_code fl_abort_pending(struct store *st, const char *prefix,
                                     size_t *n, struct wk_err *err)
{
    return store_abort_pending(inner_of(st), prefix, n, err);
}

static enum wk_code fl_count_pending(struct store *st, const char *prefix,
                                     size_t *n, struct wk_err *err)
{
    return store_count_pending(inner_of(st), prefix, n, err);
}

static void fl_free(struct store *st)
{
    store_free(inner_of(st));
    free(st);
}

static const struct store_ops flaky_ops = {
    .name = "flaky",
    .list = fl_list,
    .head = fl_head,
    .get = fl_get,
    .get_many = fl_get_many,
    .put = fl_put,
    .put_many = fl_put_many,
    .open_write = fl_open_write,
    .delete_many = fl_delete_many,
    .delete_if = fl_delete_if,
    .abort_pending = fl_abort_pending,
    .count_pending = fl_count_pending,
    .free = fl_free,
};

START_TEST(test_job_migrate_resumes_interrupted_copy)
{
    struct flaky *f = calloc(1, sizeof(*f));
    char url[256], key[300], *marker, *text;
    struct run r;
    size_t len, had;

    ck_assert_ptr_nonnull(f);
    f->base.ops = &flaky_ops;
    f->inner = new_mem();
    f->fail_at = 2;
    make_space("s1", SPACE, url, sizeof(url));
    ck_assert_int_eq(run_migrate(&f->base, url, NULL, &r), WK_E_NET);
    run_release(&r);
    had = count(f->inner, ACTIVE);
    ck_assert_uint_gt(had, 0);
    ck_assert_uint_lt(had, NFILES);
    /* a partial copy never has space.json (it comes last) */
    ck_assert_ptr_null(get_obj(f->inner, ACTIVE F_SPACE, &len));
    marker = get_obj(f->inner, MARKER, &len);
    ck_assert_ptr_nonnull(strstr(marker, "\"state\":\"copying\""));
    free(marker);
    /* one copied file differs now, same size: the bytes decide */
    fmt(key, sizeof(key), "%s%s", ACTIVE, F_MOVES);
    text = get_obj(f->inner, key, &len);
    if (text) {
        text[0] = 'X';
        put_bytes(f->inner, key, text, len);
        free(text);
        had--;
    }
    /* the job runs again (retry): it resumes, skipping what is there */
    ck_assert_msg(run_migrate(&f->base, url, NULL, &r) == WK_OK, "%s",
                  r.err.msg);
    ck_assert_int_eq(res_int(&r, "skipped"), (long long)had);
    ck_assert_int_eq(res_int(&r, "files"), (long long)(NFILES - had));
    run_release(&r);
    assert_copied(f->inner, url, F_MOVES);
    assert_copied(f->inner, url, F_SPACE);
    assert_copied(f->inner, url, k_bigblob);
    ck_assert_uint_eq(count(f->inner, ACTIVE), NFILES);
    marker = get_obj(f->inner, MARKER, &len);
    ck_assert_ptr_nonnull(strstr(marker, "\"state\":\"done\""));
    free(marker);
    store_free(&f->base);
}
END_TEST

START_TEST(test_job_migrate_existing_space_reported)
{
    struct store *dst = new_mem();
    char url[256], *text;
    struct run r;
    size_t len;

    make_space("s1", SPACE, url, sizeof(url));
    /* a space in use that no migration put there */
    put_text(dst, ACTIVE F_SPACE, "{\"id\":\"" SPACE "\"}");
    put_text(dst, ACTIVE F_MOVES, "[1,\"users\",null]\n");
    ck_assert_msg(run_migrate(dst, url, NULL, &r) == WK_OK, "%s", r.err.msg);
    ck_assert_str_eq(res_str(&r, "skipped"), "exists");
    ck_assert_str_eq(res_str(&r, "state"), "active");
    run_release(&r);
    ck_assert_uint_eq(count(dst, ACTIVE), 2);
    ck_assert_uint_eq(count(dst, "metadata/"), 0);
    ck_assert_msg(run_migrate(dst, url, ",\"target\":\"archived\"", &r) ==
                      WK_OK,
                  "%s", r.err.msg);
    ck_assert_str_eq(res_str(&r, "skipped"), "exists");
    ck_assert_uint_eq(count(dst, "archived/"), 0);
    run_release(&r);

    /* overwrite: the source replaces it, extra objects go */
    ck_assert_msg(run_migrate(dst, url, ",\"overwrite\":true", &r) == WK_OK,
                  "%s", r.err.msg);
    ck_assert_int_eq(res_int(&r, "deleted"), 0);
    ck_assert_int_eq(res_int(&r, "skipped"), 1); /* space.json: same bytes */
    run_release(&r);
    assert_copied(dst, url, F_MOVES);
    ck_assert_uint_eq(count(dst, ACTIVE), NFILES);
    put_text(dst, ACTIVE "space-v1/ops/zz/extra.jsonl", "[1]\n");
    ck_assert_msg(run_migrate(dst, url, ",\"overwrite\":true", &r) == WK_OK,
                  "%s", r.err.msg);
    ck_assert_int_eq(res_int(&r, "deleted"), 1);
    ck_assert_int_eq(res_int(&r, "skipped"), NFILES);
    run_release(&r);
    ck_assert_uint_eq(count(dst, ACTIVE), NFILES);

    /* a finished migration whose space was changed since: reported */
    put_text(dst, ACTIVE F_MOVES, "[1,\"cc\",null]\n[2,\"ee\",\"cc\"]\n");
    ck_assert_msg(run_migrate(dst, url, NULL, &r) == WK_OK, "%s", r.err.msg);
    ck_assert_str_eq(res_str(&r, "skipped"), "exists");
    ck_assert_str_eq(res_str(&r, "differs"), F_MOVES);
    run_release(&r);
    text = get_obj(dst, ACTIVE F_MOVES, &len);
    ck_assert_str_eq(text, "[1,\"cc\",null]\n[2,\"ee\",\"cc\"]\n");
    free(text);
    store_free(dst);
}
END_TEST

START_TEST(test_job_migrate_cas_mismatch_fails)
{
    struct store *dst = new_mem();
    char url[256], key[300], *before;
    struct run r;
    size_t len;

    make_space("s1", SPACE, url, sizeof(url));
    flip_byte(url, k_blob, 3);
    before = snapshot(url);
    ck_assert_int_eq(run_migrate(dst, url, NULL, &r), WK_E_CORRUPT);
    ck_assert_msg(strstr(r.err.msg, k_blob) &&
                      strstr(r.err.msg, "not its name"),
                  "%s", r.err.msg);
    run_release(&r);
    fmt(key, sizeof(key), "%s%s", ACTIVE, k_blob);
    ck_assert_ptr_null(get_obj(dst, key, &len));
    ck_assert_ptr_null(get_obj(dst, ACTIVE F_SPACE, &len));
    store_free(dst);
    /* archived: no archive, no manifest, no upload left open */
    dst = new_mem();
    ck_assert_int_eq(run_migrate(dst, url, ",\"target\":\"archived\"", &r),
                     WK_E_CORRUPT);
    ck_assert_ptr_nonnull(strstr(r.err.msg, k_blob));
    run_release(&r);
    ck_assert_uint_eq(count(dst, ""), 0);
    {
        size_t n = 99;
        struct wk_err err;
        wk_err_clear(&err);
        ck_assert_int_eq(store_count_pending(dst, "", &n, &err), WK_OK);
        ck_assert_uint_eq(n, 0);
    }
    {
        char *after = snapshot(url);
        ck_assert_str_eq(before, after);
        free(after);
    }
    free(before);
    store_free(dst);
}
END_TEST

START_TEST(test_job_migrate_big_cas_mismatch_not_committed)
{
    struct store *dst = new_mem();
    char url[256], key[300];
    struct run r;
    size_t len, n = 99;
    struct wk_err err;

    make_space("s1", SPACE, url, sizeof(url));
    flip_byte(url, k_bigblob, sizeof(bigblob) - 1);
    ck_assert_int_eq(run_migrate(dst, url, NULL, &r), WK_E_CORRUPT);
    ck_assert_ptr_nonnull(strstr(r.err.msg, k_bigblob));
    run_release(&r);
    fmt(key, sizeof(key), "%s%s", ACTIVE, k_bigblob);
    ck_assert_ptr_null(get_obj(dst, key, &len));
    wk_err_clear(&err);
    ck_assert_int_eq(store_count_pending(dst, "", &n, &err), WK_OK);
    ck_assert_uint_eq(n, 0);
    store_free(dst);
}
END_TEST

START_TEST(test_job_migrate_refuses_non_space)
{
    struct store *dst = new_mem(), *st = NULL;
    char dir[256], url[300];
    struct wk_err err;
    struct run r;

    fmt(dir, sizeof(dir), "%s/plain", tmp);
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    wk_err_clear(&err);
    ck_assert_int_eq(store_fs_new(dir, &st, &err), WK_OK);
    put_text(st, "notes.txt", "just a folder\n");
    fmt(url, sizeof(url), "file://%s", dir);
    ck_assert_int_eq(run_migrate(dst, url, NULL, &r), WK_E_INVAL);
    ck_assert_msg(strstr(r.err.msg, "is not a Sila space: it has no "
                                    "space-v1/ folder") != NULL,
                  "%s", r.err.msg);
    run_release(&r);
    put_text(st, "space-v1/secrets", "x\n");
    ck_assert_int_eq(run_migrate(dst, url, ",\"target\":\"archived\"", &r),
                     WK_E_INVAL);
    ck_assert_ptr_nonnull(strstr(r.err.msg, "space.json is missing"));
    run_release(&r);
    put_text(st, F_SPACE, "[\"no id\"]");
    ck_assert_int_eq(run_migrate(dst, url, NULL, &r), WK_E_INVAL);
    ck_assert_ptr_nonnull(strstr(r.err.msg, "does not hold"));
    run_release(&r);
    /* a folder that does not exist */
    fmt(url, sizeof(url), "file://%s/nothing-here", tmp);
    ck_assert_int_eq(run_migrate(dst, url, NULL, &r), WK_E_NOTFOUND);
    ck_assert_ptr_nonnull(strstr(r.err.msg, "does not exist"));
    run_release(&r);
    ck_assert_uint_eq(count(dst, ""), 0);
    store_free(st);
    store_free(dst);
}
END_TEST

START_TEST(test_job_migrate_refuses_id_mismatch)
{
    struct store *dst = new_mem();
    char url[256], spec[600];
    struct run r;

    make_space("s1", OTHER, url, sizeof(url));
    ck_assert_int_eq(run_migrate(dst, url, NULL, &r), WK_E_INVAL);
    ck_assert_msg(strstr(r.err.msg, "holds space '" OTHER
                                    "' (space-v1/space.json), not the job's "
                                    "spaceId '" SPACE "'") != NULL,
                  "%s", r.err.msg);
    run_release(&r);
    ck_assert_uint_eq(count(dst, ""), 0);
    /* without spaceId the job takes the source's */
    fmt(spec, sizeof(spec), "{\"type\":\"migrate\",\"source\":\"%s\"}", url);
    ck_assert_msg(run_spec(dst, spec, NULL, &r) == WK_OK, "%s", r.err.msg);
    ck_assert_str_eq(res_str(&r, "spaceId"), OTHER);
    run_release(&r);
    ck_assert_uint_eq(count(dst, "active/" OTHER "/"), NFILES);
    store_free(dst);
}
END_TEST

START_TEST(test_job_migrate_resolve_space_id)
{
    char url[256], spec[600];
    struct job j;
    struct wk_err e;

    make_space("s1", OTHER, url, sizeof(url));
    fmt(spec, sizeof(spec), "{\"type\":\"migrate\",\"source\":\"%s\"}", url);
    ck_assert_int_eq(parse(spec, &j, &e), WK_OK);
    ck_assert_str_eq(j.space_id, "");
    ck_assert_int_eq(job_migrate_resolve(&j, NULL, &e), WK_OK);
    ck_assert_str_eq(j.space_id, OTHER);
    fmt(spec, sizeof(spec), "{\"type\":\"migrate\",\"source\":\"%s/x\"}", url);
    ck_assert_int_eq(parse(spec, &j, &e), WK_OK);
    ck_assert_int_eq(job_migrate_resolve(&j, NULL, &e), WK_E_NOTFOUND);
}
END_TEST

START_TEST(test_job_migrate_refuses_source_inside_store)
{
    struct store *dst = new_mem();
    struct run r;

    ck_assert_int_eq(
        run_spec(dst,
                 "{\"type\":\"migrate\",\"source\":\"s3://bkt/pre/active/" SPACE
                 "\"}",
                 "s3://bkt/pre/", &r),
        WK_E_INVAL);
    ck_assert_ptr_nonnull(strstr(r.err.msg, "inside this store"));
    run_release(&r);
    store_free(dst);
}
END_TEST

/* One name policy: a space folder's safe files outside sila.md and
 * space-v1/ are migrated as they are (the archive and restore keep them
 * too); a name the policy refuses fails the job, naming it. */
START_TEST(test_job_migrate_copies_files_outside_space)
{
    struct store *dst = new_mem(), *st = NULL;
    char url[256];
    struct wk_err err;
    struct wk_buf b;
    struct run r;

    make_space("s1", SPACE, url, sizeof(url));
    wk_err_clear(&err);
    ck_assert_int_eq(store_fs_new(url + 7, &st, &err), WK_OK);
    put_text(st, ".DS_Store", "finder junk");
    ck_assert_msg(run_migrate(dst, url, NULL, &r) == WK_OK, "%s", r.err.msg);
    ck_assert_int_eq(res_int(&r, "ignored"), 0);
    ck_assert_int_eq(res_int(&r, "files"), NFILES + 1);
    run_release(&r);
    ck_assert_uint_eq(count(dst, ACTIVE), NFILES + 1);
    wk_buf_init(&b, 1024);
    ck_assert_int_eq(store_get_all(dst, "active/" SPACE "/.DS_Store", &b, &err),
                     WK_OK);
    ck_assert_uint_eq(b.len, 11);
    ck_assert(memcmp(b.data, "finder junk", 11) == 0);
    wk_buf_release(&b);
    /* a name the policy refuses fails the job */
    {
        char path[600];
        FILE *fp;
        fmt(path, sizeof(path), "%s/space-v1/bad\x01name", url + 7);
        fp = fopen(path, "w");
        ck_assert_ptr_nonnull(fp);
        fputs("x", fp);
        fclose(fp);
    }
    ck_assert_int_eq(run_migrate(dst, url, ",\"overwrite\":true", &r),
                     WK_E_INVAL);
    ck_assert_ptr_nonnull(strstr(r.err.msg, "control character"));
    run_release(&r);
    store_free(st);
    store_free(dst);
}
END_TEST

/* ---- to an archive ---- */

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

/* Entry names of a ZIP in order (comma-joined) and a check of every
 * entry's bytes against the source folder. */
static void zip_check(struct store *st, const char *key, const char *src_url,
                      char *names, size_t nlen, size_t *nentries)
{
    struct zipr_limits lim = { 1u << 24, 64, 1000, 1u << 20 };
    struct zip_src zs = { NULL, 0, false };
    struct store *src = NULL;
    struct zipr *zr = NULL;
    struct wk_err err;
    bool eof = false;
    size_t used = 0;

    *nentries = 0;
    names[0] = '\0';
    zs.data = get_obj(st, key, &zs.len);
    ck_assert_ptr_nonnull(zs.data);
    wk_err_clear(&err);
    ck_assert_int_eq(store_fs_new(src_url + 7, &src, &err), WK_OK);
    ck_assert_msg(zipr_new(zip_read, &zs, &lim, &zr, &err) == WK_OK, "%s",
                  err.msg);
    for (;;) {
        struct zipr_entry e;
        struct wk_buf b;
        char buf[4096], *want;
        size_t nr, wlen = 0;
        ck_assert_msg(zipr_next(zr, &e, &eof, &err) == WK_OK, "%s", err.msg);
        if (eof)
            break;
        used += (size_t)snprintf(names + used, nlen - used, "%s%s",
                                 used ? "," : "", e.name);
        ck_assert_uint_lt(used, nlen);
        wk_buf_init(&b, 1u << 20);
        do {
            ck_assert_int_eq(zipr_read(zr, buf, sizeof(buf), &nr, &err), WK_OK);
            ck_assert_int_eq(wk_buf_append(&b, buf, nr, &err), WK_OK);
        } while (nr > 0);
        want = get_obj(src, e.name, &wlen);
        ck_assert_ptr_nonnull(want);
        ck_assert_uint_eq(b.len, wlen);
        ck_assert(wlen == 0 || memcmp(b.data, want, wlen) == 0);
        free(want);
        wk_buf_release(&b);
        (*nentries)++;
    }
    zipr_free(zr);
    store_free(src);
    free(zs.data);
}

START_TEST(test_job_migrate_to_archived)
{
    struct store *dst = new_mem();
    char url[256], names[4096], *before, *after;
    struct run r;
    struct mf m;
    struct wk_err err;
    size_t len, n;
    char *text;

    make_space("s1", SPACE, url, sizeof(url));
    before = snapshot(url);
    ck_assert_msg(run_migrate(dst, url, ",\"target\":\"archived\"", &r) ==
                      WK_OK,
                  "%s", r.err.msg);
    ck_assert_str_eq(res_str(&r, "target"), "archived");
    ck_assert_str_eq(res_str(&r, "manifestKey"), MF_KEY);
    ck_assert_str_eq(res_str(&r, "archiveKey"),
                     "archived/" SPACE "/workspace-20261126T140000Z.zip");
    ck_assert_int_eq(res_int(&r, "files"), NFILES);
    ck_assert_int_eq(res_int(&r, "skipped"), 0);
    run_release(&r);
    /* no active copy */
    ck_assert_uint_eq(count(dst, ACTIVE), 0);
    text = get_obj(dst, MF_KEY, &len);
    wk_err_clear(&err);
    ck_assert_msg(mf_parse(text, len, &m, &err) == WK_OK, "%s", err.msg);
    free(text);
    ck_assert_int_eq(m.state, MF_ARCHIVED);
    ck_assert_uint_eq(m.file_count, NFILES);
    zip_check(dst, m.archive_key, url, names, sizeof(names), &n);
    ck_assert_uint_eq(n, NFILES);
    /* restore order: space.json, sila.md, secrets, ops, the rest */
    ck_assert_msg(
        strncmp(names,
                F_SPACE "," F_SILA "," F_SECRETS "," F_MOVES "," F_PROPS ",",
                strlen(F_SPACE F_SILA F_SECRETS F_MOVES F_PROPS) + 5) == 0,
        "%s", names);
    after = snapshot(url);
    ck_assert_str_eq(before, after);
    free(before);
    free(after);

    /* a second run reports the archived space */
    ck_assert_msg(run_migrate(dst, url, ",\"target\":\"archived\"", &r) ==
                      WK_OK,
                  "%s", r.err.msg);
    ck_assert_str_eq(res_str(&r, "skipped"), "exists");
    ck_assert_str_eq(res_str(&r, "state"), "archived");
    run_release(&r);
    ck_assert_uint_eq(count(dst, "archived/"), 1);
    /* and so does one to active */
    ck_assert_msg(run_migrate(dst, url, NULL, &r) == WK_OK, "%s", r.err.msg);
    ck_assert_str_eq(res_str(&r, "skipped"), "exists");
    ck_assert_str_eq(res_str(&r, "state"), "archived");
    run_release(&r);
    ck_assert_uint_eq(count(dst, ACTIVE), 0);
    store_free(dst);
}
END_TEST

/* With client-side encryption a migrate straight to archived seals its
 * archive like an archive job, and it restores. */
START_TEST(test_job_migrate_to_archived_sealed)
{
    static const char key[] =
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n";
    struct store *dst = new_mem();
    struct seal_keyring *kr = NULL;
    char url[256];
    struct run r;
    struct mf m;
    struct wk_err err;
    size_t len;
    char *text;

    wk_err_clear(&err);
    ck_assert_int_eq(seal_keyring_parse(key, strlen(key), "k", &kr, &err),
                     WK_OK);
    g_keys = kr;
    make_space("s1", SPACE, url, sizeof(url));
    ck_assert_msg(run_migrate(dst, url, ",\"target\":\"archived\"", &r) ==
                      WK_OK,
                  "%s", r.err.msg);
    run_release(&r);
    text = get_obj(dst, MF_KEY, &len);
    ck_assert_msg(mf_parse(text, len, &m, &err) == WK_OK, "%s", err.msg);
    free(text);
    ck_assert_int_eq(m.state, MF_ARCHIVED);
    ck_assert(m.enc.on);
    ck_assert_str_eq(m.enc.key_id, seal_keyring_id(kr, 0));
    text = get_obj(dst, m.archive_key, &len);
    ck_assert(len > 9 && memcmp(text, "SILASEAL\x01", 9) == 0);
    free(text);
    ck_assert_msg(run_spec(dst,
                           "{\"type\":\"unarchive\",\"spaceId\":\"" SPACE "\"}",
                           NULL, &r) == WK_OK,
                  "%s", r.err.msg);
    run_release(&r);
    ck_assert_uint_eq(count(dst, ACTIVE), NFILES);
    g_keys = NULL;
    seal_keyring_free(kr);
    store_free(dst);
}
END_TEST

START_TEST(test_job_migrate_overwrite_archived_with_active)
{
    struct store *dst = new_mem();
    char url[256], *text;
    struct run r;
    struct mf m;
    struct wk_err err;
    size_t len;

    make_space("s1", SPACE, url, sizeof(url));
    ck_assert_msg(run_migrate(dst, url, ",\"target\":\"archived\"", &r) ==
                      WK_OK,
                  "%s", r.err.msg);
    run_release(&r);
    /* active with overwrite: copied, the manifest says active */
    ck_assert_msg(run_migrate(dst, url, ",\"overwrite\":true", &r) == WK_OK,
                  "%s", r.err.msg);
    ck_assert_int_eq(res_int(&r, "files"), NFILES);
    run_release(&r);
    text = get_obj(dst, MF_KEY, &len);
    wk_err_clear(&err);
    ck_assert_int_eq(mf_parse(text, len, &m, &err), WK_OK);
    free(text);
    ck_assert_int_eq(m.state, MF_ACTIVE);
    ck_assert_uint_eq(count(dst, ACTIVE), NFILES);
    /* archived with overwrite: a new archive, active/ emptied, history */
    ck_assert_msg(run_migrate(dst, url,
                              ",\"target\":\"archived\",\"overwrite\":true",
                              &r) == WK_OK,
                  "%s", r.err.msg);
    ck_assert_int_eq(res_int(&r, "deleted"), NFILES);
    run_release(&r);
    ck_assert_uint_eq(count(dst, ACTIVE), 0);
    ck_assert_uint_eq(count(dst, MARKER), 0);
    text = get_obj(dst, MF_KEY, &len);
    ck_assert_int_eq(mf_parse(text, len, &m, &err), WK_OK);
    free(text);
    ck_assert_int_eq(m.state, MF_ARCHIVED);
    ck_assert_uint_eq(m.n_history, 1);
    ck_assert_uint_eq(count(dst, "archived/"), 2);
    store_free(dst);
}
END_TEST

/* ---- migrate-all ---- */

START_TEST(test_job_migrate_list_spaces)
{
    char url[256], root[256], dir[300];
    struct job_migrate_list l;
    struct store *st = NULL;
    struct wk_err err;

    make_space(SPACE, SPACE, url, sizeof(url));
    make_space(OTHER, SPACE, url, sizeof(url)); /* id mismatch */
    fmt(dir, sizeof(dir), "%s/not.a.space", tmp);
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    wk_err_clear(&err);
    ck_assert_int_eq(store_fs_new(dir, &st, &err), WK_OK);
    put_text(st, "readme.txt", "x");
    store_free(st);
    fmt(dir, sizeof(dir), "%s/bad name", tmp);
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    ck_assert_int_eq(store_fs_new(dir, &st, &err), WK_OK);
    put_text(st, F_SPACE, "{\"id\":\"x\"}");
    store_free(st);
    ck_assert_int_eq(store_fs_new(tmp, &st, &err), WK_OK);
    put_text(st, "a-plain-file", "ignored");
    store_free(st);

    fmt(root, sizeof(root), "file://%s/", tmp);
    ck_assert_msg(job_migrate_list_spaces(root, NULL, &l, &err) == WK_OK, "%s",
                  err.msg);
    ck_assert_uint_eq(l.n, 4);
    ck_assert_uint_eq(l.ok, 1);
    ck_assert_uint_eq(l.failed, 3);
    /* folder-name order: "0123…", "bad name", "fedc…", "not.a.space" */
    ck_assert_str_eq(l.v[0].name, SPACE);
    ck_assert_str_eq(l.v[0].space_id, SPACE);
    ck_assert_int_eq(l.v[0].code, WK_OK);
    fmt(url, sizeof(url), "file://%s/%s", tmp, SPACE);
    ck_assert_str_eq(l.v[0].source, url);
    ck_assert_str_eq(l.v[0].error, "");
    ck_assert_str_eq(l.v[1].name, "bad name");
    ck_assert_str_eq(l.v[1].space_id, "");
    ck_assert_ptr_nonnull(strstr(l.v[1].error, "is not a spaceId"));
    ck_assert_str_eq(l.v[2].name, OTHER);
    ck_assert_int_eq(l.v[2].code, WK_E_INVAL);
    ck_assert_ptr_nonnull(strstr(l.v[2].error, "not the folder's name"));
    ck_assert_str_eq(l.v[3].name, "not.a.space");
    ck_assert_ptr_nonnull(strstr(l.v[3].error, "no space-v1/ folder"));
    job_migrate_list_release(&l);

    ck_assert_int_eq(job_migrate_list_spaces("file:///x/../y", NULL, &l, &err),
                     WK_E_INVAL);
    job_migrate_list_release(&l);
}
END_TEST

Suite *job_migrate_suite(void)
{
    Suite *s = suite_create("job_migrate");
    TCase *tc = tcase_create("migrate");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_job_migrate_parse);
    tcase_add_test(tc, test_job_migrate_source_urls);
    tcase_add_test(tc, test_job_migrate_to_active);
    tcase_add_test(tc, test_job_migrate_second_run_skips_everything);
    tcase_add_test(tc, test_job_migrate_resumes_interrupted_copy);
    tcase_add_test(tc, test_job_migrate_existing_space_reported);
    tcase_add_test(tc, test_job_migrate_cas_mismatch_fails);
    tcase_add_test(tc, test_job_migrate_big_cas_mismatch_not_committed);
    tcase_add_test(tc, test_job_migrate_refuses_non_space);
    tcase_add_test(tc, test_job_migrate_refuses_id_mismatch);
    tcase_add_test(tc, test_job_migrate_resolve_space_id);
    tcase_add_test(tc, test_job_migrate_refuses_source_inside_store);
    tcase_add_test(tc, test_job_migrate_copies_files_outside_space);
    tcase_add_test(tc, test_job_migrate_to_archived);
    tcase_add_test(tc, test_job_migrate_overwrite_archived_with_active);
    tcase_add_test(tc, test_job_migrate_to_archived_sealed);
    tcase_add_test(tc, test_job_migrate_list_spaces);
    suite_add_tcase(s, tc);
    return s;
}
