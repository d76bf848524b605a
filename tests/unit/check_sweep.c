/* sweep: the policy at every threshold boundary (table-driven), when a
 * listing can be skipped, and the store scan over store_mem with fake
 * hooks (activity index, locks, pending jobs, cancellation, batching);
 * the cursor (runs that continue, wrap, stop at a budget) and the LIST
 * count on store_mem and on a directory store. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/wk_buf.h"
#include "common/wk_err.h"
#include "jobs/manifest.h"
#include "jobs/sweep.h"
#include "storage/store.h"
#include "tests/unit/suites.h"

#define DAY  86400
#define HOUR 3600
#define MiB  (1024ULL * 1024ULL)

/* Small numbers so that every boundary is easy to read. */
static const struct sweep_policy tp = {
    .idle_s = 700,
    .early_idle_s = 100,
    .large_bytes = 1000,
    .many_files = 10,
    .recent_s = 50,
};

struct decide_row {
    const char *what;
    int64_t idle;
    bool listed;
    uint64_t bytes, files;
    bool locked, pending, archived;
    bool archive;
    enum sweep_reason reason;
};

static void check_rows(const struct sweep_policy *p,
                       const struct decide_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct decide_row *r = &rows[i];
        struct sweep_signals s = { r->idle,   r->listed,  r->bytes,   r->files,
                                   r->locked, r->pending, r->archived };
        enum sweep_reason why = SWEEP_R_COUNT;
        bool got = sweep_decide(p, &s, &why);
        ck_assert_msg(
            got == r->archive && why == r->reason, "%s: got %s/%s, want %s/%s",
            r->what, got ? "archive" : "keep", sweep_reason_name(why),
            r->archive ? "archive" : "keep", sweep_reason_name(r->reason));
    }
}

START_TEST(test_sweep_decide_boundaries)
{
    static const struct decide_row rows[] = {
        /* recent window: never, whatever the size */
        { "recent-1", 49, true, 5000, 100, false, false, false, false,
          SWEEP_R_RECENT_WRITE },
        { "recent", 50, true, 1, 1, false, false, false, false,
          SWEEP_R_NOT_IDLE },
        { "negative idle (clock skew)", -5, true, 1, 1, false, false, false,
          false, SWEEP_R_RECENT_WRITE },
        /* early threshold: large */
        { "early-1 large", 99, true, 1000, 1, false, false, false, false,
          SWEEP_R_NOT_IDLE },
        { "early large", 100, true, 1000, 1, false, false, false, true,
          SWEEP_R_LARGE },
        { "early large-1", 100, true, 999, 9, false, false, false, false,
          SWEEP_R_SMALL },
        /* early threshold: many files */
        { "early-1 many", 99, true, 1, 10, false, false, false, false,
          SWEEP_R_NOT_IDLE },
        { "early many", 100, true, 999, 10, false, false, false, true,
          SWEEP_R_MANY_FILES },
        { "early large and many", 100, true, 1000, 10, false, false, false,
          true, SWEEP_R_LARGE },
        /* idle threshold */
        { "idle-1 small", 699, true, 999, 9, false, false, false, false,
          SWEEP_R_SMALL },
        { "idle small", 700, true, 1, 1, false, false, false, true,
          SWEEP_R_IDLE },
        { "idle large", 700, true, 5000, 50, false, false, false, true,
          SWEEP_R_IDLE },
        /* without a listing only idle can choose */
        { "unlisted idle", 700, false, 0, 0, false, false, false, true,
          SWEEP_R_IDLE },
        { "unlisted between", 300, false, 0, 0, false, false, false, false,
          SWEEP_R_SMALL },
        { "unlisted not idle", 60, false, 0, 0, false, false, false, false,
          SWEEP_R_NOT_IDLE },
        { "empty", 100000, true, 0, 0, false, false, false, false,
          SWEEP_R_EMPTY },
        /* gates, in order */
        { "locked", 700, true, 1, 1, true, false, false, false,
          SWEEP_R_LOCKED },
        { "locked and pending", 700, true, 1, 1, true, true, true, false,
          SWEEP_R_LOCKED },
        { "pending", 700, true, 1, 1, false, true, false, false,
          SWEEP_R_JOB_PENDING },
        { "pending and archived", 100, true, 1000, 1, false, true, true, false,
          SWEEP_R_JOB_PENDING },
        { "archived", 100, true, 1, 10, false, false, true, false,
          SWEEP_R_ARCHIVED },
        /* gates do not turn a kept space's reason */
        { "locked but not idle", 99, true, 1, 1, true, true, true, false,
          SWEEP_R_NOT_IDLE },
        { "locked but recent", 10, true, 1, 1, true, false, false, false,
          SWEEP_R_RECENT_WRITE },
    };
    check_rows(&tp, rows, sizeof(rows) / sizeof(rows[0]));
}
END_TEST

START_TEST(test_sweep_decide_default_policy)
{
    struct sweep_policy p;
    static const struct decide_row rows[] = {
        { "59m59s", HOUR - 1, true, 200 * MiB, 5000, false, false, false, false,
          SWEEP_R_RECENT_WRITE },
        { "1h", HOUR, true, 1, 1, false, false, false, false,
          SWEEP_R_NOT_IDLE },
        { "1d-1s 100MiB", DAY - 1, true, 100 * MiB, 1, false, false, false,
          false, SWEEP_R_NOT_IDLE },
        { "1d 100MiB", DAY, true, 100 * MiB, 1, false, false, false, true,
          SWEEP_R_LARGE },
        { "1d 100MiB-1", DAY, true, 100 * MiB - 1, 999, false, false, false,
          false, SWEEP_R_SMALL },
        { "1d 1000 files", DAY, true, 1, 1000, false, false, false, true,
          SWEEP_R_MANY_FILES },
        { "7d-1s", 7 * DAY - 1, true, 1, 1, false, false, false, false,
          SWEEP_R_SMALL },
        { "7d", 7 * DAY, true, 1, 1, false, false, false, true, SWEEP_R_IDLE },
    };

    sweep_policy_default(&p);
    ck_assert_int_eq(p.idle_s, 7 * DAY);
    ck_assert_int_eq(p.early_idle_s, DAY);
    ck_assert_uint_eq(p.large_bytes, 100 * MiB);
    ck_assert_uint_eq(p.many_files, 1000);
    ck_assert_int_eq(p.recent_s, HOUR);
    check_rows(&p, rows, sizeof(rows) / sizeof(rows[0]));
}
END_TEST

START_TEST(test_sweep_decide_recent_window_wins)
{
    /* a recent window longer than the early threshold still protects */
    struct sweep_policy p = tp;
    static const struct decide_row rows[] = {
        { "inside recent, past early", 150, true, 5000, 50, false, false, false,
          false, SWEEP_R_RECENT_WRITE },
        { "past recent", 200, true, 5000, 50, false, false, false, true,
          SWEEP_R_LARGE },
    };
    p.recent_s = 200;
    check_rows(&p, rows, sizeof(rows) / sizeof(rows[0]));
}
END_TEST

START_TEST(test_sweep_needs_listing)
{
    struct sweep_policy p = tp;
    static const struct {
        int64_t idle;
        bool want;
    } rows[] = { { -1, false }, { 0, false },  { 49, false },
                 { 50, false }, { 99, false }, { 100, true },
                 { 699, true }, { 700, true }, { 100000, true } };

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        ck_assert_msg(sweep_needs_listing(&p, rows[i].idle) == rows[i].want,
                      "idle %lld", (long long)rows[i].idle);
    /* early threshold above the idle one: the idle one decides */
    p.early_idle_s = 800;
    ck_assert(!sweep_needs_listing(&p, 699));
    ck_assert(sweep_needs_listing(&p, 700));
    /* recent window beyond both: nothing before it is listed */
    p = tp;
    p.recent_s = 1000;
    ck_assert(!sweep_needs_listing(&p, 999));
    ck_assert(sweep_needs_listing(&p, 1000));
}
END_TEST

START_TEST(test_sweep_reason_names)
{
    static const char *const want[SWEEP_R_COUNT] = {
        "idle",  "large",  "many-files",  "recent-write", "not-idle",   "small",
        "empty", "locked", "job-pending", "archived",     "invalid-id", "error"
    };
    for (int i = 0; i < SWEEP_R_COUNT; i++)
        ck_assert_str_eq(sweep_reason_name((enum sweep_reason)i), want[i]);
    ck_assert_str_eq(sweep_reason_name(SWEEP_R_COUNT), "unknown");
}
END_TEST

/* ---- the scan over store_mem ---- */

/* The default durations with small size thresholds. */
static const struct sweep_policy sp = {
    .idle_s = 7 * DAY,
    .early_idle_s = DAY,
    .large_bytes = 1000,
    .many_files = 10,
    .recent_s = HOUR,
};

static struct store *st;
static int64_t t0; /* when the objects were written */

static void setup(void)
{
    struct wk_err e;
    wk_err_clear(&e);
    ck_assert_int_eq(store_mem_new(&st, &e), WK_OK);
    t0 = (int64_t)time(NULL);
}

static char fs_root[64]; /* the directory store's root, or "" */

static void teardown(void)
{
    store_free(st);
    st = NULL;
    if (fs_root[0]) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fs_root);
        ck_assert_int_eq(system(cmd), 0);
        fs_root[0] = '\0';
    }
}

/* The same tests on a directory store. */
static void setup_fs(void)
{
    struct wk_err e;
    wk_err_clear(&e);
    snprintf(fs_root, sizeof(fs_root), "/tmp/check-sweep-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(fs_root));
    ck_assert_int_eq(store_fs_new(fs_root, &st, &e), WK_OK);
    t0 = (int64_t)time(NULL);
}

static void put_n(const char *key, size_t n)
{
    struct wk_err e;
    char *p = calloc(1, n + 1);
    ck_assert_ptr_nonnull(p);
    memset(p, 'x', n);
    wk_err_clear(&e);
    ck_assert_msg(store_put(st, key, p, n, &e) == WK_OK, "put %s: %s", key,
                  e.msg);
    free(p);
}

static void put_files(const char *space, size_t nfiles, size_t size)
{
    char key[256];
    for (size_t i = 0; i < nfiles; i++) {
        snprintf(key, sizeof(key), "active/%s/space-v1/ops/f%03zu.jsonl", space,
                 i);
        put_n(key, size);
    }
}

static void put_manifest_at(const char *space, enum mf_state state,
                            time_t restored_at);

static void put_manifest(const char *space, enum mf_state state)
{
    put_manifest_at(space, state, 0);
}

static void put_manifest_at(const char *space, enum mf_state state,
                            time_t restored_at)
{
    struct mf m;
    struct wk_buf b;
    struct wk_err e;
    char key[256];

    memset(&m, 0, sizeof(m));
    snprintf(m.version, sizeof(m.version), "%s", MF_VERSION);
    snprintf(m.space_id, sizeof(m.space_id), "%s", space);
    m.state = state;
    m.created_at = 1700000000;
    m.archived_at = 1700000000;
    m.restored_at = restored_at;
    snprintf(m.compression, sizeof(m.compression), "deflate");
    snprintf(m.archive_key, sizeof(m.archive_key),
             "archived/%s/workspace-20231114T221320Z.zip", space);
    memset(m.checksum, 'a', 64);
    m.size = 10;
    m.uncompressed_size = 20;
    m.file_count = 1;
    wk_err_clear(&e);
    wk_buf_init(&b, 1 << 16);
    ck_assert_int_eq(mf_to_json(&m, &b, &e), WK_OK);
    mf_key(space, key, sizeof(key));
    ck_assert_int_eq(store_put(st, key, b.data, b.len, &e), WK_OK);
    wk_buf_release(&b);
}

/* The fake Redis side. */
struct fake {
    int64_t now;
    /* activity index: id -> seconds before now (INT64_MIN: absent) */
    const char *const *idx_ids;
    const int64_t *idx_ago;
    size_t idx_n;
    const char *locked_id, *pending_id;
    enum wk_code busy_fails; /* WK_OK: no failure */
    int cancel_after;        /* ticks before WK_E_CANCELLED; 0: never */
    /* what happened */
    int ticks, activity_calls, busy_calls;
    size_t max_batch;
    struct wk_buf busy_log; /* ids asked about, comma-separated */
    struct wk_buf lines;    /* "id decision reason listed bytes files\n" */
    size_t nreports;
};

static enum wk_code f_activity(void *ud, const char *const *ids, size_t n,
                               int64_t *last, bool *present, struct wk_err *err)
{
    struct fake *f = ud;
    (void)err;
    f->activity_calls++;
    if (n > f->max_batch)
        f->max_batch = n;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < f->idx_n; j++)
            if (strcmp(ids[i], f->idx_ids[j]) == 0) {
                present[i] = true;
                last[i] = f->now - f->idx_ago[j];
            }
    return WK_OK;
}

static enum wk_code f_busy(void *ud, const char *id, bool *locked,
                           bool *pending, struct wk_err *err)
{
    struct fake *f = ud;
    f->busy_calls++;
    if (f->busy_log.len)
        wk_buf_appends(&f->busy_log, ",", NULL);
    wk_buf_appends(&f->busy_log, id, NULL);
    if (f->busy_fails != WK_OK)
        return wk_err_set(err, f->busy_fails, "redis away");
    *locked = f->locked_id && strcmp(id, f->locked_id) == 0;
    *pending = f->pending_id && strcmp(id, f->pending_id) == 0;
    return WK_OK;
}

static enum wk_code f_report(void *ud, const struct sweep_item *it,
                             struct wk_err *err)
{
    struct fake *f = ud;
    f->nreports++;
    if (it->listed)
        return wk_buf_appendf(
            &f->lines, err, "%s %s %s %llu %llu\n", it->space_id,
            it->archive ? "archive" : "keep", sweep_reason_name(it->reason),
            (unsigned long long)it->bytes, (unsigned long long)it->files);
    return wk_buf_appendf(&f->lines, err, "%s %s %s -\n", it->space_id,
                          it->archive ? "archive" : "keep",
                          sweep_reason_name(it->reason));
}

static enum wk_code f_tick(void *ud, struct wk_err *err)
{
    struct fake *f = ud;
    if (f->cancel_after && ++f->ticks >= f->cancel_after)
        return wk_err_set(err, WK_E_CANCELLED, "stop");
    return WK_OK;
}

static void fake_init(struct fake *f, int64_t now)
{
    memset(f, 0, sizeof(*f));
    f->now = now;
    wk_buf_init(&f->busy_log, 1 << 20);
    wk_buf_init(&f->lines, 1 << 24);
}

static void fake_release(struct fake *f)
{
    wk_buf_release(&f->busy_log);
    wk_buf_release(&f->lines);
}

static struct sweep_hooks hooks_of(struct fake *f, bool index)
{
    struct sweep_hooks h = { f,      index ? f_activity : NULL,
                             f_busy, f_report,
                             f_tick, NULL };
    return h;
}

START_TEST(test_sweep_scan_decides_each_space)
{
    /* objects were written at t0; the sweep runs 10 days later */
    int64_t now = t0 + 10 * DAY;
    static const char *const ids[] = { "a-recent", "b-notidle", "c-small",
                                       "d-large",  "e-many",    "j-future" };
    static const int64_t ago[] = { 60,      12 * HOUR, 2 * DAY,
                                   2 * DAY, 2 * DAY,   -HOUR };
    struct fake f;
    struct sweep_hooks h;
    struct sweep_totals tot;
    struct wk_err e;

    put_files("a-recent", 3, 5000);
    put_files("b-notidle", 2000, 1);
    put_files("c-small", 2, 10);
    put_files("d-large", 1, 2000);
    put_files("e-many", 10, 1);
    put_files("f-idle", 2, 7);
    put_files("g-locked", 1, 1);
    put_files("h-pending", 1, 1);
    put_files("i-archived", 1, 1);
    put_manifest("i-archived", MF_ARCHIVED);
    put_files("i2-restored", 1, 1);
    put_manifest("i2-restored", MF_ACTIVE);
    /* restored two hours ago: its objects look old, but it is in use */
    put_files("i3-restored-now", 1, 1);
    put_manifest_at("i3-restored-now", MF_ACTIVE, (time_t)(now - 2 * HOUR));
    put_files("j-future", 1, 1);
    put_files("bad id", 1, 1);
    put_n("active/stray-object", 3);
    put_n("archived/zz/workspace-1.zip", 3);

    fake_init(&f, now);
    f.idx_ids = ids;
    f.idx_ago = ago;
    f.idx_n = 6;
    f.locked_id = "g-locked";
    f.pending_id = "h-pending";
    h = hooks_of(&f, true);
    wk_err_clear(&e);
    ck_assert_int_eq(sweep_scan(st, &sp, now, &h, &tot, &e), WK_OK);
    ck_assert_str_eq(wk_buf_cstr(&f.lines), "a-recent keep recent-write -\n"
                                            "b-notidle keep not-idle -\n"
                                            "bad id keep invalid-id -\n"
                                            "c-small keep small 20 2\n"
                                            "d-large archive large 2000 1\n"
                                            "e-many archive many-files 10 10\n"
                                            "f-idle archive idle 14 2\n"
                                            "g-locked keep locked 1 1\n"
                                            "h-pending keep job-pending 1 1\n"
                                            "i-archived keep archived 1 1\n"
                                            "i2-restored archive idle 1 1\n"
                                            "i3-restored-now keep not-idle 1 "
                                            "1\n"
                                            "j-future keep recent-write -\n");
    /* locks and jobs are looked up only for spaces the thresholds chose */
    ck_assert_str_eq(wk_buf_cstr(&f.busy_log),
                     "d-large,e-many,f-idle,g-locked,h-pending,i-archived,"
                     "i2-restored,i3-restored-now");
    ck_assert_int_eq(f.activity_calls, 2); /* before and after "bad id" */
    ck_assert_uint_eq(tot.scanned, 13);
    ck_assert_uint_eq(tot.indexed, 6);
    ck_assert_uint_eq(tot.listed, 9);
    ck_assert_uint_eq(tot.chosen, 4);
    ck_assert_uint_eq(tot.by_reason[SWEEP_R_IDLE], 2);
    ck_assert_uint_eq(tot.by_reason[SWEEP_R_RECENT_WRITE], 2);
    ck_assert_uint_eq(tot.by_reason[SWEEP_R_INVALID_ID], 1);
    fake_release(&f);
}
END_TEST

START_TEST(test_sweep_scan_without_index_uses_newest_object)
{
    struct fake f;
    struct sweep_hooks h;
    struct sweep_totals tot;
    struct wk_err e;

    put_files("s1", 3, 1);
    fake_init(&f, t0);
    h = hooks_of(&f, false);
    wk_err_clear(&e);
    /* 1 s short of the idle threshold, then exactly at it */
    ck_assert_int_eq(sweep_scan(st, &tp, t0 + 699, &h, &tot, &e), WK_OK);
    ck_assert_int_eq(sweep_scan(st, &tp, t0 + 700 + 1, &h, &tot, &e), WK_OK);
    ck_assert_str_eq(wk_buf_cstr(&f.lines), "s1 keep small 3 3\n"
                                            "s1 archive idle 3 3\n");
    ck_assert_uint_eq(tot.indexed, 0);
    ck_assert_uint_eq(tot.listed, 1);
    fake_release(&f);
}
END_TEST

START_TEST(test_sweep_scan_batches_keep_memory_flat)
{
    char id[32];
    struct fake f;
    struct sweep_hooks h;
    struct sweep_totals tot;
    struct wk_err e;
    const size_t n = 2 * SWEEP_BATCH + 88;

    for (size_t i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "sp%05zu", i);
        put_files(id, 1, 1);
    }
    fake_init(&f, t0);
    h = hooks_of(&f, true);
    wk_err_clear(&e);
    ck_assert_int_eq(sweep_scan(st, &tp, t0, &h, &tot, &e), WK_OK);
    ck_assert_int_eq(f.activity_calls, 3);
    ck_assert_uint_eq(f.max_batch, SWEEP_BATCH);
    ck_assert_uint_eq(f.nreports, n);
    ck_assert_uint_eq(tot.scanned, n);
    /* every space once, in key order */
    {
        const char *p = wk_buf_cstr(&f.lines);
        for (size_t i = 0; i < n; i++) {
            char want[64];
            snprintf(want, sizeof(want), "sp%05zu keep recent-write 1 1\n", i);
            ck_assert_msg(strncmp(p, want, strlen(want)) == 0, "line %zu", i);
            p += strlen(want);
        }
        ck_assert_str_eq(p, "");
    }
    fake_release(&f);
}
END_TEST

START_TEST(test_sweep_scan_tick_cancels)
{
    struct fake f;
    struct sweep_hooks h;
    struct sweep_totals tot;
    struct wk_err e;

    put_files("s1", 3, 1);
    put_files("s2", 3, 1);
    put_files("s3", 3, 1);
    fake_init(&f, t0);
    f.cancel_after = 6; /* per space and per object: inside s2's listing */
    h = hooks_of(&f, false);
    wk_err_clear(&e);
    ck_assert_int_eq(sweep_scan(st, &tp, t0 + 200, &h, &tot, &e),
                     WK_E_CANCELLED);
    ck_assert_str_eq(e.msg, "stop");
    ck_assert_uint_eq(tot.scanned, 1);
    ck_assert_str_eq(wk_buf_cstr(&f.lines), "s1 keep small 3 3\n");
    fake_release(&f);
}
END_TEST

START_TEST(test_sweep_scan_busy_failure_stops)
{
    struct fake f;
    struct sweep_hooks h;
    struct sweep_totals tot;
    struct wk_err e;

    put_files("s1", 1, 1);
    put_files("s2", 1, 1);
    fake_init(&f, t0);
    f.busy_fails = WK_E_NET;
    h = hooks_of(&f, false);
    wk_err_clear(&e);
    ck_assert_int_eq(sweep_scan(st, &tp, t0 + 1000, &h, &tot, &e), WK_E_NET);
    ck_assert_str_eq(e.msg, "redis away");
    ck_assert_uint_eq(tot.scanned, 0);
    ck_assert_int_eq(f.busy_calls, 1);
    fake_release(&f);
}
END_TEST

START_TEST(test_sweep_scan_bad_manifest_is_an_error_of_that_space)
{
    struct fake f;
    struct sweep_hooks h;
    struct sweep_totals tot;
    struct wk_err e;

    put_files("s1", 1, 1);
    put_n("metadata/s1.json", 5); /* "xxxxx": not JSON */
    put_files("s2", 1, 1);
    fake_init(&f, t0);
    h = hooks_of(&f, false);
    wk_err_clear(&e);
    ck_assert_int_eq(sweep_scan(st, &tp, t0 + 1000, &h, &tot, &e), WK_OK);
    ck_assert_str_eq(wk_buf_cstr(&f.lines), "s1 keep error 1 1\n"
                                            "s2 archive idle 1 1\n");
    ck_assert_uint_eq(tot.by_reason[SWEEP_R_ERROR], 1);
    fake_release(&f);
}
END_TEST

START_TEST(test_sweep_scan_empty_store)
{
    struct fake f;
    struct sweep_hooks h;
    struct sweep_totals tot;
    struct wk_err e;

    put_n("metadata/x.json", 3);
    fake_init(&f, t0);
    h = hooks_of(&f, true);
    wk_err_clear(&e);
    ck_assert_int_eq(sweep_scan(st, &tp, t0, &h, &tot, &e), WK_OK);
    ck_assert_uint_eq(tot.scanned, 0);
    ck_assert_int_eq(f.activity_calls, 0);
    fake_release(&f);
}
END_TEST

/* ---- the cursor: runs that continue, wrap, and stop at a budget ---- */

/* spaces s00..s(n-1), one file each */
static void put_spaces(int n)
{
    char id[16];
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "s%02d", i);
        put_files(id, 1, 1);
    }
}

/* One run from after; the ids it decided, "s00 s01 ...", into ids. */
static void run_range(const char *after, bool wrap, uint64_t max,
                      struct sweep_totals *tot, char *ids, size_t len)
{
    struct fake f;
    struct sweep_hooks h;
    struct sweep_range r = { after, wrap, max };
    struct wk_err e;
    size_t n = 0;

    fake_init(&f, t0);
    h = hooks_of(&f, true); /* nothing indexed: every space listed */
    wk_err_clear(&e);
    ck_assert_msg(sweep_scan_range(st, &tp, t0, &r, &h, tot, &e) == WK_OK, "%s",
                  e.msg);
    ids[0] = '\0';
    for (const char *p = wk_buf_cstr(&f.lines); *p;) {
        const char *blank = strchr(p, ' ');
        const char *nl = strchr(p, '\n');
        ck_assert(blank && nl);
        n += (size_t)snprintf(ids + n, len - n, "%s%.*s", n ? " " : "",
                              (int)(blank - p), p);
        ck_assert(n < len);
        p = nl + 1;
    }
    fake_release(&f);
}

START_TEST(test_sweep_cursor_runs_continue_then_wrap)
{
    struct sweep_totals tot;
    char ids[512], cur[SWEEP_CURSOR_MAX + 1];

    put_spaces(10);
    run_range("", true, 4, &tot, ids, sizeof(ids));
    ck_assert_str_eq(ids, "s00 s01 s02 s03");
    ck_assert_str_eq(tot.cursor, "s03/");
    ck_assert(tot.budget_stop);
    ck_assert(!tot.pass_completed);
    snprintf(cur, sizeof(cur), "%s", tot.cursor);
    run_range(cur, true, 4, &tot, ids, sizeof(ids));
    ck_assert_str_eq(ids, "s04 s05 s06 s07");
    ck_assert_str_eq(tot.cursor, "s07/");
    snprintf(cur, sizeof(cur), "%s", tot.cursor);
    /* the end of active/: a pass, then on from the first space */
    run_range(cur, true, 4, &tot, ids, sizeof(ids));
    ck_assert_str_eq(ids, "s08 s09 s00 s01");
    ck_assert(tot.pass_completed);
    ck_assert(tot.budget_stop);
    ck_assert_str_eq(tot.cursor, "s01/");
    snprintf(cur, sizeof(cur), "%s", tot.cursor);
    run_range(cur, true, 4, &tot, ids, sizeof(ids));
    ck_assert_str_eq(ids, "s02 s03 s04 s05");
    ck_assert(!tot.pass_completed);
}
END_TEST

START_TEST(test_sweep_cursor_one_full_circle_at_most)
{
    struct sweep_totals tot;
    char ids[512];

    put_spaces(10);
    /* no limit: every space once, the circle closes at the cursor */
    run_range("s05/", true, 0, &tot, ids, sizeof(ids));
    ck_assert_str_eq(ids, "s06 s07 s08 s09 s00 s01 s02 s03 s04 s05");
    ck_assert(tot.pass_completed);
    ck_assert(!tot.budget_stop);
    ck_assert_str_eq(tot.cursor, "s05/");
    ck_assert_uint_eq(tot.scanned, 10);
    /* the budget equal to the spaces left: the end, no wrap needed */
    run_range("s05/", true, 4, &tot, ids, sizeof(ids));
    ck_assert_str_eq(ids, "s06 s07 s08 s09");
    ck_assert(tot.pass_completed);
    ck_assert(tot.budget_stop); /* it stopped before s00 */
    ck_assert_str_eq(tot.cursor, "");
    /* without wrap it stops at the end */
    run_range("s05/", false, 0, &tot, ids, sizeof(ids));
    ck_assert_str_eq(ids, "s06 s07 s08 s09");
    ck_assert(tot.pass_completed);
    ck_assert_str_eq(tot.cursor, "");
    /* from the start, no limit: the old whole scan */
    run_range(NULL, true, 0, &tot, ids, sizeof(ids));
    ck_assert_uint_eq(tot.scanned, 10);
    ck_assert(tot.pass_completed);
    ck_assert_str_eq(tot.cursor, "");
}
END_TEST

START_TEST(test_sweep_cursor_of_a_vanished_space)
{
    struct sweep_totals tot;
    char ids[512];

    put_spaces(6);
    /* s02 was archived since: the run goes on after where it was */
    run_range("s025/", true, 2, &tot, ids, sizeof(ids));
    ck_assert_str_eq(ids, "s03 s04");
    /* past every space: the end at once, then from the first */
    run_range("zz/", true, 0, &tot, ids, sizeof(ids));
    ck_assert_str_eq(ids, "s00 s01 s02 s03 s04 s05");
    ck_assert(tot.pass_completed);
    ck_assert_str_eq(tot.cursor, "s05/");
    /* "s0-" sorts before "s00" ('-' < '0'): all of them */
    run_range("s0-/", false, 0, &tot, ids, sizeof(ids));
    ck_assert_str_eq(ids, "s00 s01 s02 s03 s04 s05");
}
END_TEST

START_TEST(test_sweep_cursor_passes_an_invalid_folder)
{
    struct sweep_totals tot;
    char ids[512], cur[SWEEP_CURSOR_MAX + 1];

    put_files("a", 1, 1);
    put_files("b c", 1, 1); /* not a valid spaceId */
    put_files("d", 1, 1);
    run_range("", true, 1, &tot, ids, sizeof(ids));
    ck_assert_str_eq(ids, "a");
    snprintf(cur, sizeof(cur), "%s", tot.cursor);
    run_range(cur, true, 1, &tot, ids, sizeof(ids));
    ck_assert_str_eq(ids, "b");
    ck_assert_str_eq(tot.cursor, "b c/");
    snprintf(cur, sizeof(cur), "%s", tot.cursor);
    run_range(cur, true, 1, &tot, ids, sizeof(ids));
    ck_assert_str_eq(ids, "d");
}
END_TEST

static int more_left;
static bool f_more(void *ud)
{
    (void)ud;
    return more_left-- > 0;
}

START_TEST(test_sweep_cursor_more_hook_stops_cleanly)
{
    struct fake f;
    struct sweep_hooks h;
    struct sweep_range r = { "s01/", true, 0 };
    struct sweep_totals tot;
    struct wk_err e;

    put_spaces(8);
    fake_init(&f, t0);
    h = hooks_of(&f, false);
    h.more = f_more;
    more_left = 3;
    wk_err_clear(&e);
    ck_assert_int_eq(sweep_scan_range(st, &tp, t0, &r, &h, &tot, &e), WK_OK);
    ck_assert_str_eq(e.msg, "");
    ck_assert_uint_eq(tot.scanned, 3);
    ck_assert(tot.budget_stop);
    ck_assert_str_eq(tot.cursor, "s04/");
    ck_assert_str_eq(wk_buf_cstr(&f.lines), "s02 keep recent-write 1 1\n"
                                            "s03 keep recent-write 1 1\n"
                                            "s04 keep recent-write 1 1\n");
    fake_release(&f);
}
END_TEST

START_TEST(test_sweep_cursor_cancel_keeps_the_last_decided)
{
    struct fake f;
    struct sweep_hooks h;
    struct sweep_range r = { NULL, true, 0 };
    struct sweep_totals tot;
    struct wk_err e;

    put_files("s1", 3, 1);
    put_files("s2", 3, 1);
    fake_init(&f, t0);
    f.cancel_after = 6; /* inside s2's listing */
    h = hooks_of(&f, false);
    wk_err_clear(&e);
    ck_assert_int_eq(sweep_scan_range(st, &tp, t0, &r, &h, &tot, &e),
                     WK_E_CANCELLED);
    ck_assert_str_eq(tot.cursor, "s1/"); /* s2 is not skipped next time */
    fake_release(&f);
}
END_TEST

/* LIST requests: pages of 1,000 entries, at least one per listing; a space
 * the activity index calls recent is never listed. */
START_TEST(test_sweep_counts_list_requests)
{
    enum { N = 1500 };
    static char idbuf[N][8];
    static const char *ids[N];
    static int64_t ago[N];
    struct fake f;
    struct sweep_hooks h;
    struct sweep_totals tot;
    struct wk_err e;

    for (int i = 0; i < N; i++) {
        snprintf(idbuf[i], sizeof(idbuf[i]), "p%04d", i);
        ids[i] = idbuf[i];
        ago[i] = 10; /* written 10 s ago */
        put_files(idbuf[i], i == 0 ? 1001 : 1, 1);
    }
    fake_init(&f, t0);
    h = hooks_of(&f, false);
    wk_err_clear(&e);
    /* without the index: active/ (2 pages) + each space, p0000 in 2 */
    ck_assert_int_eq(sweep_scan(st, &tp, t0, &h, &tot, &e), WK_OK);
    ck_assert_uint_eq(tot.list_calls, 1 + N);
    ck_assert_uint_eq(tot.list_requests, 2 + N + 1);
    fake_release(&f);

    /* all of them recent in the index: active/ alone */
    fake_init(&f, t0);
    f.idx_ids = ids;
    f.idx_ago = ago;
    f.idx_n = N;
    h = hooks_of(&f, true);
    ck_assert_int_eq(sweep_scan(st, &tp, t0, &h, &tot, &e), WK_OK);
    ck_assert_uint_eq(tot.scanned, N);
    ck_assert_uint_eq(tot.listed, 0);
    ck_assert_uint_eq(tot.list_calls, 1);
    ck_assert_uint_eq(tot.list_requests, 2);
    fake_release(&f);

    /* a budget: the pages of active/ read up to where it stopped */
    {
        struct sweep_range r = { NULL, true, 10 };
        fake_init(&f, t0);
        f.idx_ids = ids;
        f.idx_ago = ago;
        f.idx_n = N;
        h = hooks_of(&f, true);
        ck_assert_int_eq(sweep_scan_range(st, &tp, t0, &r, &h, &tot, &e),
                         WK_OK);
        ck_assert_uint_eq(tot.scanned, 10);
        ck_assert_uint_eq(tot.list_requests, 1);
        fake_release(&f);
    }
}
END_TEST

/* The index's "recent" spaces on either side of the idle windows: a space
 * written within min(idle, idle-early) is never listed, whatever the run. */
START_TEST(test_sweep_recent_index_space_never_listed_by_any_run)
{
    static const char *const ids[] = { "a", "b", "c", "d" };
    static const int64_t ago[] = { 60, 99, 100, 800 };
    struct fake f;
    struct sweep_hooks h;
    struct sweep_totals tot;
    struct wk_err e;
    char cur[SWEEP_CURSOR_MAX + 1] = "";
    uint64_t calls = 0, listed = 0;

    for (size_t i = 0; i < 4; i++)
        put_files(ids[i], 2, 1);
    for (int run = 0; run < 4; run++) {
        struct sweep_range r = { cur, true, 1 };
        fake_init(&f, t0);
        f.idx_ids = ids;
        f.idx_ago = ago;
        f.idx_n = 4;
        h = hooks_of(&f, true);
        wk_err_clear(&e);
        ck_assert_int_eq(sweep_scan_range(st, &tp, t0, &r, &h, &tot, &e),
                         WK_OK);
        calls += tot.list_calls - 1; /* less the listing of active/ */
        listed += tot.listed;
        snprintf(cur, sizeof(cur), "%s", tot.cursor);
        fake_release(&f);
    }
    /* a (60 s) and b (99 s < early idle 100 s): not listed; c, d: listed */
    ck_assert_uint_eq(listed, 2);
    ck_assert_uint_eq(calls, 2);
}
END_TEST

static void add_cursor_tests(TCase *c)
{
    tcase_add_test(c, test_sweep_cursor_runs_continue_then_wrap);
    tcase_add_test(c, test_sweep_cursor_one_full_circle_at_most);
    tcase_add_test(c, test_sweep_cursor_of_a_vanished_space);
    tcase_add_test(c, test_sweep_cursor_passes_an_invalid_folder);
    tcase_add_test(c, test_sweep_cursor_more_hook_stops_cleanly);
    tcase_add_test(c, test_sweep_cursor_cancel_keeps_the_last_decided);
    tcase_add_test(c, test_sweep_counts_list_requests);
    tcase_add_test(c, test_sweep_recent_index_space_never_listed_by_any_run);
}

Suite *sweep_suite(void)
{
    Suite *s = suite_create("sweep");
    TCase *tc = tcase_create("policy");
    TCase *sc = tcase_create("scan");
    TCase *cm = tcase_create("cursor-mem");
    TCase *cf = tcase_create("cursor-fs");

    tcase_add_test(tc, test_sweep_decide_boundaries);
    tcase_add_test(tc, test_sweep_decide_default_policy);
    tcase_add_test(tc, test_sweep_decide_recent_window_wins);
    tcase_add_test(tc, test_sweep_needs_listing);
    tcase_add_test(tc, test_sweep_reason_names);
    suite_add_tcase(s, tc);

    tcase_add_checked_fixture(sc, setup, teardown);
    tcase_set_timeout(sc, 30);
    tcase_add_test(sc, test_sweep_scan_decides_each_space);
    tcase_add_test(sc, test_sweep_scan_without_index_uses_newest_object);
    tcase_add_test(sc, test_sweep_scan_batches_keep_memory_flat);
    tcase_add_test(sc, test_sweep_scan_tick_cancels);
    tcase_add_test(sc, test_sweep_scan_busy_failure_stops);
    tcase_add_test(sc, test_sweep_scan_bad_manifest_is_an_error_of_that_space);
    tcase_add_test(sc, test_sweep_scan_empty_store);
    suite_add_tcase(s, sc);

    tcase_add_checked_fixture(cm, setup, teardown);
    tcase_set_timeout(cm, 30);
    add_cursor_tests(cm);
    suite_add_tcase(s, cm);
    tcase_add_checked_fixture(cf, setup_fs, teardown);
    tcase_set_timeout(cf, 60);
    add_cursor_tests(cf);
    suite_add_tcase(s, cf);
    return s;
}
