/* The restore's milestones and wanted paths against store_mem and a test
 * sink: ready once the metadata and ops are in place (manifest restoring +
 * readyAt), complete at the end (active, readyAt gone); a wanted blob
 * served ahead of order (plain and sealed, small and streamed), a missing
 * or refused path answered not found; a failure after ready keeps
 * everything and the next run finishes; a no-op restore reports both
 * milestones; times count from the request. */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jobs/job.h"
#include "jobs/manifest.h"
#include "jobs/progress.h"
#include "storage/seal.h"
#include "storage/store.h"
#include "storage/store_hash.h"
#include "tests/unit/suites.h"
#include "tests/unit/unit_util.h"

#define SPACE  "fedcba9876543210fedcba9876543210"
#define ACTIVE "active/" SPACE "/"
#define MF_KEY "metadata/" SPACE ".json"
#define N_VAR  6
#define BIG    (200u * 1024u) /* more than a chunk below: streamed */
#define SEAL_KEY \
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"

static const char *const meta[][2] = {
    { "sila.md", "# Sila workspace\n" },
    { "space-v1/space.json", "{\"id\":\"" SPACE "\"}" },
    { "space-v1/secrets", "c2VjcmV0cw==\n" },
    { "space-v1/ops/ab/cdef/2026/11/26/1111aaaa-m.jsonl", "[1,\"a\",null]\n" },
};

struct served {
    char path[PROG_WANT_PATH_MAX + 1];
    bool found;
    bool present;        /* the object was there when answered */
    size_t n_active;     /* objects under active/ then */
    enum mf_state state; /* the manifest's state then */
};

struct rsink {
    struct prog_sink base;
    struct store *st;
    int order[4];
    int64_t ms[4];
    size_t n_ms;
    bool ready_ok; /* at READY: restoring + readyAt, meta in place, no blob */
    const char *want[8];
    size_t n_want;
    bool given;
    struct served served[8];
    size_t n_served;
    volatile sig_atomic_t *cancel_at_ready;
};

static char g_cas[160]; /* the CAS blob's path */
static char g_big[160]; /* the big blob's path */
static unsigned char *g_big_data;

static size_t count_active(struct store *st);
static bool exists(struct store *st, const char *key);
static void read_mf(struct store *st, struct mf *m);

static void s_update(struct prog_sink *s, const struct prog_state *st)
{
    (void)s;
    (void)st;
}

static void s_milestone(struct prog_sink *s, enum prog_milestone m, int64_t ms)
{
    struct rsink *t = (struct rsink *)s;
    struct mf mf;

    ck_assert_uint_lt(t->n_ms, 4);
    t->order[t->n_ms] = (int)m;
    t->ms[t->n_ms++] = ms;
    if (m != PROG_READY)
        return;
    read_mf(t->st, &mf);
    t->ready_ok = (mf.state == MF_RESTORING && mf.ready_at != 0) ||
                  mf.state == MF_ACTIVE; /* (a no-op restore) */
    for (size_t i = 0; mf.state == MF_RESTORING && i < 4; i++) {
        char key[256];
        snprintf(key, sizeof(key), ACTIVE "%s", meta[i][0]);
        t->ready_ok = t->ready_ok && exists(t->st, key);
    }
    if (t->cancel_at_ready)
        *t->cancel_at_ready = 1;
}

static size_t s_wants(struct prog_sink *s, char (*out)[PROG_WANT_PATH_MAX + 1],
                      size_t max)
{
    struct rsink *t = (struct rsink *)s;
    size_t n = 0;

    if (t->given)
        return 0;
    t->given = true;
    for (; n < t->n_want && n < max; n++)
        snprintf(out[n], PROG_WANT_PATH_MAX + 1, "%s", t->want[n]);
    return n;
}

static void s_served(struct prog_sink *s, const char *path, bool found)
{
    struct rsink *t = (struct rsink *)s;
    struct served *v;
    char key[1200];
    struct mf mf;

    ck_assert_uint_lt(t->n_served, 8);
    v = &t->served[t->n_served++];
    snprintf(v->path, sizeof(v->path), "%s", path);
    v->found = found;
    snprintf(key, sizeof(key), ACTIVE "%s", path);
    v->present = exists(t->st, key);
    v->n_active = count_active(t->st);
    read_mf(t->st, &mf);
    v->state = mf.state;
}

static const struct prog_sink_ops rsink_ops = {
    .update = s_update,
    .milestone = s_milestone,
    .wants = s_wants,
    .served = s_served,
};

static enum wk_code count_cb(const struct store_entry *e, void *ud,
                             struct wk_err *err)
{
    (void)err;
    if (!e->is_prefix)
        (*(size_t *)ud)++;
    return WK_OK;
}

static size_t count_active(struct store *st)
{
    size_t n = 0;
    struct wk_err err;
    wk_err_clear(&err);
    ck_assert_int_eq(store_list(st, ACTIVE, NULL, count_cb, &n, &err), WK_OK);
    return n;
}

static bool exists(struct store *st, const char *key)
{
    struct store_stat sb;
    struct wk_err err;
    wk_err_clear(&err);
    return store_head(st, key, &sb, &err) == WK_OK;
}

static void read_mf(struct store *st, struct mf *m)
{
    struct wk_buf b;
    struct wk_err err;
    wk_buf_init(&b, 1u << 20);
    wk_err_clear(&err);
    ck_assert_int_eq(store_get_all(st, MF_KEY, &b, &err), WK_OK);
    ck_assert_msg(mf_parse(b.data, b.len, m, &err) == WK_OK, "%s", err.msg);
    wk_buf_release(&b);
}

static void put(struct store *st, const char *rel, const void *p, size_t n)
{
    char key[512];
    struct wk_err err;
    snprintf(key, sizeof(key), ACTIVE "%s", rel);
    wk_err_clear(&err);
    ck_assert_int_eq(store_put(st, key, p, n, &err), WK_OK);
}

static bool same(struct store *st, const char *rel, const void *p, size_t n)
{
    char key[512];
    struct wk_buf b;
    struct wk_err err;
    bool ok;
    snprintf(key, sizeof(key), ACTIVE "%s", rel);
    wk_buf_init(&b, 1u << 20);
    wk_err_clear(&err);
    ok = store_get_all(st, key, &b, &err) == WK_OK && b.len == n &&
         (n == 0 || memcmp(b.data, p, n) == 0);
    wk_buf_release(&b);
    return ok;
}

static void var_path(int i, char *buf, size_t len)
{
    snprintf(buf, len, "space-v1/files/var/uuid/%02d/blob-%d", i, i);
}

static void var_data(int i, char *buf, size_t len)
{
    snprintf(buf, len, "variable blob %d contents", i);
}

/* A space: the metadata, N_VAR variable blobs, a CAS blob and a big one. */
static struct store *new_space(void)
{
    struct store *st = NULL;
    struct wk_err err;
    char p[160], d[80], hex[65];
    static const char cas[] = "content-addressed blob\n";

    wk_err_clear(&err);
    ck_assert_int_eq(store_mem_new(&st, &err), WK_OK);
    for (size_t i = 0; i < 4; i++)
        put(st, meta[i][0], meta[i][1], strlen(meta[i][1]));
    for (int i = 0; i < N_VAR; i++) {
        var_path(i, p, sizeof(p));
        var_data(i, d, sizeof(d));
        put(st, p, d, strlen(d));
    }
    store_sha256_hex(cas, strlen(cas), hex);
    snprintf(g_cas, sizeof(g_cas), "space-v1/files/static/sha256/%.2s/%s", hex,
             hex + 2);
    put(st, g_cas, cas, strlen(cas));
    if (!g_big_data) {
        g_big_data = malloc(BIG);
        ut_noise(g_big_data, BIG, 7);
    }
    snprintf(g_big, sizeof(g_big), "space-v1/files/var/uuid/zz/big");
    put(st, g_big, g_big_data, BIG);
    return st;
}

static size_t n_files(void)
{
    return 4 + N_VAR + 2;
}

static void check_content(struct store *st)
{
    char p[160], d[80];
    for (size_t i = 0; i < 4; i++)
        ck_assert(same(st, meta[i][0], meta[i][1], strlen(meta[i][1])));
    for (int i = 0; i < N_VAR; i++) {
        var_path(i, p, sizeof(p));
        var_data(i, d, sizeof(d));
        ck_assert_msg(same(st, p, d, strlen(d)), "%s", p);
    }
    ck_assert(same(st, g_cas, "content-addressed blob\n", 23));
    ck_assert(same(st, g_big, g_big_data, BIG));
    ck_assert_uint_eq(count_active(st), n_files());
}

static time_t fixed_now(void)
{
    return (time_t)1795701600;
}

struct urun {
    struct job_config cfg;
    struct rsink sink;
    struct wk_buf result;
    struct wk_err err;
    json_t *res;
    volatile sig_atomic_t cancel;
};

static enum wk_code run(struct store *st, enum job_type type, struct urun *r,
                        const struct seal_keyring *kr, int64_t requested_ms)
{
    struct job job;
    struct job_ctx ctx;
    enum wk_code rc;
    volatile sig_atomic_t *cancel_at_ready = r->sink.cancel_at_ready;
    const char *want[8];
    size_t n_want = r->sink.n_want;

    memcpy(want, r->sink.want, sizeof(want));
    memset(r, 0, sizeof(*r));
    job_config_defaults(&r->cfg);
    r->cfg.chunk_bytes = 64u * 1024u; /* several GETs, a streamed blob */
    r->cfg.window_objects = 3;
    r->sink.base.ops = &rsink_ops;
    r->sink.st = st;
    r->sink.cancel_at_ready = cancel_at_ready ? &r->cancel : NULL;
    memcpy(r->sink.want, want, sizeof(want));
    r->sink.n_want = n_want;
    memset(&job, 0, sizeof(job));
    snprintf(job.id, sizeof(job.id), "j-ready");
    job.type = type;
    snprintf(job.space_id, sizeof(job.space_id), "%s", SPACE);
    memset(&ctx, 0, sizeof(ctx));
    ctx.store = st;
    ctx.sink = &r->sink.base;
    ctx.cfg = &r->cfg;
    ctx.now = fixed_now;
    ctx.keys = kr;
    ctx.cancel = &r->cancel;
    ctx.requested_ms = requested_ms;
    wk_buf_init(&r->result, 1u << 16);
    wk_err_clear(&r->err);
    rc = job_run(&job, &ctx, &r->result, &r->err);
    if (rc == WK_OK) {
        r->res = json_loads(wk_buf_cstr(&r->result), 0, NULL);
        ck_assert_ptr_nonnull(r->res);
    }
    return rc;
}

static long long res_int(const struct urun *r, const char *k)
{
    json_t *v = json_object_get(r->res, k);
    ck_assert_msg(json_is_integer(v), "'%s' in %s", k, wk_buf_cstr(&r->result));
    return (long long)json_integer_value(v);
}

static void release(struct urun *r)
{
    json_decref(r->res);
    r->res = NULL;
    wk_buf_release(&r->result);
}

static struct store *archived_space(const struct seal_keyring *kr)
{
    struct store *st = new_space();
    struct urun r;
    memset(&r, 0, sizeof(r));
    ck_assert_msg(run(st, JOB_ARCHIVE, &r, kr, 0) == WK_OK, "%s", r.err.msg);
    release(&r);
    ck_assert_uint_eq(count_active(st), 0);
    return st;
}

static const struct served *answer(const struct urun *r, const char *path)
{
    for (size_t i = 0; i < r->sink.n_served; i++)
        if (strcmp(r->sink.served[i].path, path) == 0)
            return &r->sink.served[i];
    ck_abort_msg("no answer for '%s'", path);
    return NULL;
}

static void ready_and_wants(const struct seal_keyring *kr)
{
    struct store *st = archived_space(kr);
    struct urun r;
    const struct served *v;
    struct mf m;

    memset(&r, 0, sizeof(r));
    r.sink.want[0] = g_big;
    r.sink.want[1] = g_cas;
    r.sink.want[2] = "space-v1/files/var/uuid/00/nope";
    r.sink.want[3] = "sila.md";
    r.sink.want[4] = "../../etc/passwd";
    r.sink.n_want = 5;
    ck_assert_msg(run(st, JOB_UNARCHIVE, &r, kr, 0) == WK_OK, "%s", r.err.msg);
    /* ready, then complete */
    ck_assert_uint_eq(r.sink.n_ms, 2);
    ck_assert_int_eq(r.sink.order[0], PROG_READY);
    ck_assert_int_eq(r.sink.order[1], PROG_COMPLETE);
    ck_assert(r.sink.ready_ok);
    ck_assert_int_le(r.sink.ms[0], r.sink.ms[1]);
    /* every want answered */
    ck_assert_uint_eq(r.sink.n_served, 5);
    v = answer(&r, g_big);
    ck_assert(v->found && v->present);
    ck_assert_int_eq(v->state, MF_RESTORING);
    /* ahead of order: the blobs were not there yet */
    ck_assert_uint_lt(v->n_active, n_files());
    v = answer(&r, g_cas);
    ck_assert(v->found && v->present);
    ck_assert_uint_lt(v->n_active, n_files());
    v = answer(&r, "space-v1/files/var/uuid/00/nope");
    ck_assert(!v->found && !v->present);
    v = answer(&r, "sila.md");
    ck_assert(v->found && v->present);
    ck_assert(!answer(&r, "../../etc/passwd")->found);
    /* complete: active, readyAt gone, everything the archive's bytes */
    read_mf(st, &m);
    ck_assert_int_eq(m.state, MF_ACTIVE);
    ck_assert_int_eq(m.ready_at, 0);
    check_content(st);
    /* served ones count as restored, not kept */
    ck_assert_int_eq(res_int(&r, "restored"), (long long)n_files());
    ck_assert_int_eq(res_int(&r, "kept"), 0);
    ck_assert_int_ge(res_int(&r, "timeToCompleteMs"),
                     res_int(&r, "timeToReadyMs"));
    release(&r);
    store_free(st);
}

START_TEST(test_unarchive_ready_then_complete_serves_wants)
{
    ready_and_wants(NULL);
}
END_TEST

START_TEST(test_unarchive_serves_wants_sealed)
{
    struct seal_keyring *kr = NULL;
    struct wk_err err;
    wk_err_clear(&err);
    ck_assert_int_eq(
        seal_keyring_parse(SEAL_KEY, strlen(SEAL_KEY), "test", &kr, &err),
        WK_OK);
    ready_and_wants(kr);
    seal_keyring_free(kr);
}
END_TEST

/* Failed after ready: nothing deleted, restoring + readyAt kept (users may
 * have written); the next run reports ready at once and finishes. */
START_TEST(test_unarchive_failure_after_ready_keeps_everything)
{
    struct store *st = archived_space(NULL);
    struct urun r;
    struct mf m;
    size_t n;
    static const char user[] = "written by a user after ready";

    memset(&r, 0, sizeof(r));
    r.sink.cancel_at_ready = &r.cancel; /* (any non-NULL: cancel at READY) */
    ck_assert_int_eq(run(st, JOB_UNARCHIVE, &r, NULL, 0), WK_E_CANCELLED);
    ck_assert_uint_eq(r.sink.n_ms, 1);
    ck_assert_int_eq(r.sink.order[0], PROG_READY);
    release(&r);
    read_mf(st, &m);
    ck_assert_int_eq(m.state, MF_RESTORING);
    ck_assert_int_ne(m.ready_at, 0);
    n = count_active(st);
    ck_assert_uint_ge(n, 4); /* the metadata, kept */
    ck_assert_uint_lt(n, n_files());
    /* a user writes a blob the restore has not reached */
    put(st, g_cas, user, strlen(user));

    memset(&r, 0, sizeof(r));
    ck_assert_msg(run(st, JOB_UNARCHIVE, &r, NULL, 0) == WK_OK, "%s",
                  r.err.msg);
    ck_assert_uint_eq(r.sink.n_ms, 2);
    ck_assert_int_eq(r.sink.order[0], PROG_READY);
    ck_assert_int_eq(r.sink.order[1], PROG_COMPLETE);
    ck_assert_int_ge(res_int(&r, "kept"), 5);
    release(&r);
    read_mf(st, &m);
    ck_assert_int_eq(m.state, MF_ACTIVE);
    ck_assert_int_eq(m.ready_at, 0);
    /* the user's write survived */
    ck_assert(same(st, g_cas, user, strlen(user)));
    ck_assert_uint_eq(count_active(st), n_files());
    store_free(st);
}
END_TEST

/* Already active: ready and complete at once; times from the request. */
START_TEST(test_unarchive_noop_and_times_from_request)
{
    struct store *st = archived_space(NULL);
    struct urun r;
    struct timespec ts;
    int64_t now;

    clock_gettime(CLOCK_REALTIME, &ts);
    now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    memset(&r, 0, sizeof(r));
    ck_assert_int_eq(run(st, JOB_UNARCHIVE, &r, NULL, now - 5000), WK_OK);
    ck_assert_int_ge(r.sink.ms[0], 5000);
    ck_assert_int_ge(res_int(&r, "timeToReadyMs"), 5000);
    ck_assert_int_ge(res_int(&r, "timeToCompleteMs"), 5000);
    release(&r);
    memset(&r, 0, sizeof(r));
    ck_assert_int_eq(run(st, JOB_UNARCHIVE, &r, NULL, 0), WK_OK);
    ck_assert_ptr_nonnull(strstr(wk_buf_cstr(&r.result), "already active"));
    ck_assert_uint_eq(r.sink.n_ms, 2);
    ck_assert_int_eq(r.sink.order[0], PROG_READY);
    ck_assert_int_eq(r.sink.order[1], PROG_COMPLETE);
    ck_assert(r.sink.ready_ok);
    ck_assert_int_ge(res_int(&r, "timeToReadyMs"), 0);
    release(&r);
    store_free(st);
}
END_TEST

Suite *unarchive_ready_suite(void)
{
    Suite *s = suite_create("unarchive_ready");
    TCase *tc = tcase_create("ready");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_unarchive_ready_then_complete_serves_wants);
    tcase_add_test(tc, test_unarchive_serves_wants_sealed);
    tcase_add_test(tc, test_unarchive_failure_after_ready_keeps_everything);
    tcase_add_test(tc, test_unarchive_noop_and_times_from_request);
    suite_add_tcase(s, tc);
    return s;
}
