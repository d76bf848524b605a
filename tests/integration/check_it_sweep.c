/* Sweep end to end: spaces with controlled ages (file mtimes set with
 * touch -d on the file:// store, scores in the activity index, S3 through
 * the index), exactly the spaces the policy names are enqueued (stream and
 * dedup keys), the dry run enqueues nothing, a second concurrent sweep does
 * nothing, locked spaces and pending jobs are skipped with their reason,
 * --max-jobs, --every until SIGTERM, settings and usage errors; the cursor
 * (runs with a budget continue where the last stopped, every space is
 * reached, LIST requests as S3 counts them through a proxy, a recent space
 * is never listed, a lost lock or a moved cursor is never overwritten);
 * and a benchmark over 100,000 spaces in the activity index. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/wk_buf.h"
#include "common/wk_log.h"
#include "jobs/manifest.h"
#include "tests/integration/it_flow.h"
#include "tests/integration/suites.h"
#include "worker/cfg.h"
#include "worker/q.h"
#include "worker/sweep_run.h"

#define DAY  86400
#define HOUR 3600

/* ---- helpers ---- */

/* Run "sila-archiver sweep <args>" in e's environment (plus extra, a
 * string of K=V words): stdout into out, stderr into log. */
static int sweep_cli(const struct it_env *e, const char *extra,
                     const char *args, const char *out, const char *log)
{
    char cmd[4096];
    int n = 0;
    n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, "env");
    for (int i = 0; e->vars[i]; i++)
        n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, " '%s'", e->vars[i]);
    snprintf(cmd + n, sizeof(cmd) - (size_t)n,
             " %s '%s' sweep %s > '%s' 2> '%s'", extra ? extra : "",
             it_env("WK_BIN"), args, out, log);
    return it_sh("%s", cmd);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The JSON lines of a file; f(obj, ud) for each. */
static void each_line(const char *path, void (*f)(json_t *o, void *ud),
                      void *ud)
{
    char *line = NULL;
    size_t cap = 0;
    FILE *fp = fopen(path, "r");
    ck_assert_msg(fp != NULL, "open %s", path);
    while (getline(&line, &cap, fp) > 0) {
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        ck_assert_msg(o != NULL, "not JSON in %s: %s", path, line);
        f(o, ud);
        json_decref(o);
    }
    free(line);
    fclose(fp);
}

struct find {
    const char *id;
    json_t *found; /* the last line for id (or the summary) */
    int count;     /* lines with a spaceId */
};

static void find_cb(json_t *o, void *ud)
{
    struct find *f = ud;
    json_t *id = json_object_get(o, "spaceId");
    if (id)
        f->count++;
    if ((!f->id && json_is_true(json_object_get(o, "summary"))) ||
        (f->id && id && strcmp(json_string_value(id), f->id) == 0)) {
        json_decref(f->found);
        f->found = json_incref(o);
    }
}

/* The line for space id (NULL: the summary); the caller json_decref()s. */
static json_t *line_of(const char *path, const char *id)
{
    struct find f = { id, NULL, 0 };
    each_line(path, find_cb, &f);
    return f.found;
}

static int space_lines(const char *path)
{
    struct find f = { "", NULL, 0 };
    each_line(path, find_cb, &f);
    json_decref(f.found);
    return f.count;
}

static const char *str_at(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : "";
}

static long long int_at(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    ck_assert_msg(json_is_integer(v), "field %s is not an integer", k);
    return (long long)json_integer_value(v);
}

static long long reason_count(json_t *summary, const char *group,
                              const char *reason)
{
    return int_at(json_object_get(summary, group), reason);
}

/* Check the plan line of a space. */
static void expect(const char *out, const char *id, const char *decision,
                   const char *reason)
{
    json_t *o = line_of(out, id);
    ck_assert_msg(o != NULL, "no line for %s in %s", id, out);
    ck_assert_msg(strcmp(str_at(o, "decision"), decision) == 0 &&
                      strcmp(str_at(o, "reason"), reason) == 0,
                  "%s: got %s/%s, want %s/%s", id, str_at(o, "decision"),
                  str_at(o, "reason"), decision, reason);
    json_decref(o);
}

/* A space folder with n files of size bytes, every mtime at t (touch -d). */
static void fs_space(const char *root, const char *id, int n, long long size,
                     time_t t)
{
    ck_assert_int_eq(it_sh("d='%s/active/%s/space-v1/ops' && mkdir -p \"$d\" "
                           "&& i=0 && while [ $i -lt %d ]; do "
                           "truncate -s %lld \"$d/f$i.jsonl\"; i=$((i+1)); "
                           "done && find '%s/active/%s' -type f -exec "
                           "touch -d @%lld {} +",
                           root, id, n, size, root, id, (long long)t),
                     0);
}

/* One more file in a space, written at t. */
static void fs_touch(const char *root, const char *id, const char *name,
                     time_t t)
{
    ck_assert_int_eq(it_sh("echo x > '%s/active/%s/%s' && touch -d @%lld "
                           "'%s/active/%s/%s'",
                           root, id, name, (long long)t, root, id, name),
                     0);
}

static void write_manifest(struct store *st, const char *id,
                           enum mf_state state)
{
    struct mf m;
    struct wk_buf b;
    struct wk_err err;
    char key[256];

    memset(&m, 0, sizeof(m));
    snprintf(m.version, sizeof(m.version), "%s", MF_VERSION);
    snprintf(m.space_id, sizeof(m.space_id), "%s", id);
    m.state = state;
    m.created_at = 1700000000;
    m.archived_at = 1700000000;
    snprintf(m.compression, sizeof(m.compression), "deflate");
    snprintf(m.archive_key, sizeof(m.archive_key),
             "archived/%s/workspace-20231114T221320Z.zip", id);
    memset(m.checksum, 'a', 64);
    m.size = 10;
    m.uncompressed_size = 20;
    m.file_count = 1;
    wk_err_clear(&err);
    wk_buf_init(&b, 1 << 16);
    ck_assert_int_eq(mf_to_json(&m, &b, &err), WK_OK);
    mf_key(id, key, sizeof(key));
    ck_assert_msg(store_put(st, key, b.data, b.len, &err) == WK_OK, "%s",
                  err.msg);
    wk_buf_release(&b);
}

static long long xlen(const char *prefix)
{
    return strtoll(it_redis("XLEN %sjobs", prefix), NULL, 10);
}

/* The archive job queued for a space by the sweep: its dedup key names a
 * queued archive job of that space. */
static void expect_enqueued(const char *prefix, const char *id)
{
    char job[200];
    const char *v = it_redis("GET %sdedup:archive:%s", prefix, id);
    ck_assert_msg(strcmp(v, "(nil)") != 0, "%s: no dedup key", id);
    snprintf(job, sizeof(job), "%s", v);
    ck_assert_str_eq(it_job_field(prefix, job, "spaceId"), id);
    ck_assert_str_eq(it_job_field(prefix, job, "type"), "archive");
    ck_assert_str_eq(it_job_field(prefix, job, "state"), "queued");
}

static void expect_not_enqueued(const char *prefix, const char *id)
{
    ck_assert_msg(
        strcmp(it_redis("GET %sdedup:archive:%s", prefix, id), "(nil)") == 0,
        "%s: enqueued", id);
}

static void zadd(const char *prefix, const char *id, time_t t)
{
    char score[32];
    snprintf(score, sizeof(score), "%lld", (long long)t);
    ck_assert_str_eq(it_redis("ZADD %sactivity %s %s", prefix, score, id), "1");
}

struct fs_case {
    const char *id;
    const char *decision, *reason;
};

/* ---- file:// store: the policy end to end ---- */

START_TEST(test_it_sweep_fs_dry_run_then_enqueue_exactly_the_policy)
{
    char tmp[512], root[600], url[700], out[700], log[700];
    struct it_env e;
    struct store *st;
    const char *p;
    time_t now = time(NULL);
    json_t *s;
    static const struct fs_case cases[] = {
        { "idle8d", "archive", "idle" },
        { "large2d", "archive", "large" },
        { "large2d-minus", "keep", "small" },
        { "many2d", "archive", "many-files" },
        { "few2d", "keep", "small" },
        { "idle6d23h", "keep", "small" },
        { "recent30m", "keep", "recent-write" },
        { "large23h", "keep", "not-idle" },
        { "locked8d", "keep", "locked" },
        { "pending8d", "keep", "job-pending" },
        { "unarch8d", "keep", "job-pending" },
        { "stale8d", "archive", "idle" },
        { "archived8d", "keep", "archived" },
        { "idx-recent", "keep", "recent-write" },
        { "idx-old", "archive", "idle" },
        { "idx-2d-large", "archive", "large" },
    };
    const size_t ncases = sizeof(cases) / sizeof(cases[0]);

    it_tmpdir("sweep-fs", tmp, sizeof(tmp));
    snprintf(root, sizeof(root), "%s/store", tmp);
    snprintf(url, sizeof(url), "file://%s", root);
    snprintf(out, sizeof(out), "%s/out", tmp);
    snprintf(log, sizeof(log), "%s/log", tmp);
    it_env_init(&e, url, "sweep-fs", NULL);
    p = it_prefix_of(&e);
    /* sizes at the default thresholds: 100 MiB (sparse), 1000 files */
    fs_space(root, "idle8d", 3, 100, now - 8 * DAY);
    fs_space(root, "large2d", 1, 100LL << 20, now - 2 * DAY);
    fs_space(root, "large2d-minus", 1, (100LL << 20) - 1, now - 2 * DAY);
    fs_space(root, "many2d", 1000, 10, now - 2 * DAY);
    fs_space(root, "few2d", 999, 10, now - 2 * DAY);
    fs_space(root, "idle6d23h", 2, 10, now - 7 * DAY + HOUR);
    fs_space(root, "recent30m", 5, 10, now - 8 * DAY);
    fs_touch(root, "recent30m", "sila.md", now - 1800); /* newest wins */
    fs_space(root, "large23h", 1, 200LL << 20, now - DAY + HOUR);
    fs_space(root, "locked8d", 1, 10, now - 8 * DAY);
    it_redis("SET %slock:locked8d someworker/job1 PX 60000", p);
    fs_space(root, "pending8d", 1, 10, now - 8 * DAY);
    it_redis("SET %sdedup:archive:pending8d j-pending", p);
    it_redis("HSET %sjob:j-pending state retrying type archive", p);
    fs_space(root, "unarch8d", 1, 10, now - 8 * DAY);
    it_redis("SET %sdedup:unarchive:unarch8d j-unarch", p);
    it_redis("HSET %sjob:j-unarch state queued type unarchive", p);
    fs_space(root, "stale8d", 1, 10, now - 8 * DAY);
    it_redis("SET %sdedup:archive:stale8d j-done", p);
    it_redis("HSET %sjob:j-done state succeeded type archive", p);
    fs_space(root, "archived8d", 1, 10, now - 8 * DAY);
    st = it_fs_store(root);
    write_manifest(st, "archived8d", MF_ARCHIVED);
    store_free(st);
    /* the activity index is authoritative for the spaces it lists */
    fs_space(root, "idx-recent", 2, 10, now - 30 * DAY);
    zadd(p, "idx-recent", now - 120);
    fs_space(root, "idx-old", 2, 10, now);
    zadd(p, "idx-old", now - 9 * DAY);
    fs_space(root, "idx-2d-large", 1, 100LL << 20, now);
    zadd(p, "idx-2d-large", now - 2 * DAY);
    zadd(p, "not-a-space-here", now - 30 * DAY); /* indexed, no objects */

    /* dry run: the whole plan, nothing queued */
    ck_assert_int_eq(sweep_cli(&e, NULL, "--dry-run", out, log), 0);
    for (size_t i = 0; i < ncases; i++)
        expect(out, cases[i].id, cases[i].decision, cases[i].reason);
    ck_assert_int_eq(space_lines(out), (int)ncases);
    {
        json_t *o = line_of(out, "idx-recent"); /* not even listed */
        ck_assert(json_is_null(json_object_get(o, "bytes")));
        ck_assert(json_is_null(json_object_get(o, "files")));
        ck_assert_str_eq(str_at(o, "activitySource"), "index");
        ck_assert_int_eq(int_at(o, "idleSeconds") >= 120, 1);
        json_decref(o);
        o = line_of(out, "idx-2d-large");
        ck_assert_int_eq(int_at(o, "bytes"), 100LL << 20);
        ck_assert_int_eq(int_at(o, "files"), 1);
        ck_assert_str_eq(str_at(o, "activitySource"), "index");
        json_decref(o);
        o = line_of(out, "many2d");
        ck_assert_int_eq(int_at(o, "files"), 1000);
        ck_assert_int_eq(int_at(o, "bytes"), 10000);
        ck_assert_str_eq(str_at(o, "activitySource"), "objects");
        ck_assert_int_eq(int_at(o, "idleSeconds") >= 2 * DAY, 1);
        json_decref(o);
    }
    s = line_of(out, NULL);
    ck_assert_ptr_nonnull(s);
    ck_assert(json_is_true(json_object_get(s, "dryRun")));
    ck_assert_int_eq(int_at(s, "scanned"), (long long)ncases);
    ck_assert_int_eq(int_at(s, "chosen"), 6);
    ck_assert_int_eq(int_at(s, "enqueued"), 0);
    ck_assert_int_eq(int_at(s, "indexed"), 3);
    ck_assert_int_eq(int_at(s, "activityIndex"), 4);
    json_decref(s);
    ck_assert_str_eq(it_redis("EXISTS %sjobs", p), "0");
    for (size_t i = 0; i < ncases; i++)
        if (strcmp(cases[i].id, "pending8d") != 0 &&
            strcmp(cases[i].id, "stale8d") != 0)
            expect_not_enqueued(p, cases[i].id);
    ck_assert_int_eq(it_sh("grep -q '\"event\":\"sweep.finished\"' '%s'", log),
                     0);

    /* the real sweep: exactly the chosen spaces are queued */
    ck_assert_int_eq(sweep_cli(&e, NULL, "", out, log), 0);
    ck_assert_int_eq(space_lines(out), 6); /* one line per chosen space */
    for (size_t i = 0; i < ncases; i++) {
        if (strcmp(cases[i].decision, "archive") == 0) {
            json_t *o = line_of(out, cases[i].id);
            ck_assert_ptr_nonnull(o);
            ck_assert(json_is_true(json_object_get(o, "created")));
            ck_assert_str_eq(
                str_at(o, "jobId"),
                it_redis("GET %sdedup:archive:%s", p, cases[i].id));
            json_decref(o);
            expect_enqueued(p, cases[i].id);
        } else if (strcmp(cases[i].id, "pending8d") != 0) {
            expect_not_enqueued(p, cases[i].id);
        }
    }
    ck_assert_str_eq(it_redis("GET %sdedup:archive:pending8d", p), "j-pending");
    ck_assert_int_eq(xlen(p), 6);
    s = line_of(out, NULL);
    ck_assert(json_is_false(json_object_get(s, "dryRun")));
    ck_assert_int_eq(int_at(s, "enqueued"), 6);
    ck_assert_int_eq(int_at(s, "deferred"), 0);
    ck_assert_int_eq(reason_count(s, "chosenBy", "idle"), 3);
    ck_assert_int_eq(reason_count(s, "chosenBy", "large"), 2);
    ck_assert_int_eq(reason_count(s, "chosenBy", "many-files"), 1);
    ck_assert_int_eq(reason_count(s, "skippedBy", "locked"), 1);
    ck_assert_int_eq(reason_count(s, "skippedBy", "job-pending"), 2);
    ck_assert_int_eq(reason_count(s, "skippedBy", "archived"), 1);
    ck_assert_int_eq(reason_count(s, "skippedBy", "recent-write"), 2);
    ck_assert_int_eq(reason_count(s, "skippedBy", "not-idle"), 1);
    ck_assert_int_eq(reason_count(s, "skippedBy", "small"), 3);
    ck_assert_int_eq(int_at(s, "skipped"), (long long)ncases - 6);
    ck_assert_int_eq(int_at(s, "errors"), 0);
    json_decref(s);
    /* the lock is released; the space lock it skipped is untouched */
    ck_assert_str_eq(it_redis("EXISTS %ssweep:lock", p), "0");
    ck_assert_str_eq(it_redis("GET %slock:locked8d", p), "someworker/job1");

    /* again: the jobs just queued are pending, nothing new */
    ck_assert_int_eq(sweep_cli(&e, NULL, "", out, log), 0);
    s = line_of(out, NULL);
    ck_assert_int_eq(int_at(s, "enqueued"), 0);
    ck_assert_int_eq(int_at(s, "chosen"), 0);
    ck_assert_int_eq(reason_count(s, "skippedBy", "job-pending"), 8);
    json_decref(s);
    ck_assert_int_eq(xlen(p), 6);
}
END_TEST

START_TEST(test_it_sweep_second_concurrent_sweep_does_nothing)
{
    char tmp[512], root[600], url[700], out[700], log[700];
    struct it_env e;
    const char *p;
    time_t now = time(NULL);
    json_t *s;

    it_tmpdir("sweep-lock", tmp, sizeof(tmp));
    snprintf(root, sizeof(root), "%s/store", tmp);
    snprintf(url, sizeof(url), "file://%s", root);
    snprintf(out, sizeof(out), "%s/out", tmp);
    snprintf(log, sizeof(log), "%s/log", tmp);
    it_env_init(&e, url, "sweep-lock", NULL);
    p = it_prefix_of(&e);
    fs_space(root, "idle1", 2, 10, now - 10 * DAY);

    /* another sweep holds the lock */
    ck_assert_str_eq(
        it_redis("SET %ssweep:lock other-host-7-abcdef PX 60000", p), "OK");
    ck_assert_int_eq(sweep_cli(&e, NULL, "", out, log), 0);
    ck_assert_int_eq(space_lines(out), 0);
    s = line_of(out, NULL);
    ck_assert(json_is_true(json_object_get(s, "lockedOut")));
    ck_assert_str_eq(str_at(s, "lockHolder"), "other-host-7-abcdef");
    ck_assert_int_eq(int_at(s, "scanned"), 0);
    ck_assert_int_eq(int_at(s, "enqueued"), 0);
    json_decref(s);
    ck_assert_int_eq(
        it_sh("grep -q '\"event\":\"sweep.locked_out\"' '%s'", log), 0);
    ck_assert_str_eq(it_redis("EXISTS %sjobs", p), "0");
    expect_not_enqueued(p, "idle1");
    /* its lock is not ours to release */
    ck_assert_str_eq(it_redis("GET %ssweep:lock", p), "other-host-7-abcdef");
    /* a dry run takes no lock: it still shows the plan */
    ck_assert_int_eq(sweep_cli(&e, NULL, "--dry-run", out, log), 0);
    expect(out, "idle1", "archive", "idle");
    ck_assert_str_eq(it_redis("EXISTS %sjobs", p), "0");

    /* once the other sweep is done, the next one works */
    it_redis("DEL %ssweep:lock", p);
    ck_assert_int_eq(sweep_cli(&e, NULL, "", out, log), 0);
    s = line_of(out, NULL);
    ck_assert(json_is_false(json_object_get(s, "lockedOut")));
    ck_assert_int_eq(int_at(s, "enqueued"), 1);
    json_decref(s);
    expect_enqueued(p, "idle1");
    ck_assert_str_eq(it_redis("EXISTS %ssweep:lock", p), "0");
}
END_TEST

START_TEST(test_it_sweep_max_jobs_bounds_each_sweep)
{
    char tmp[512], root[600], url[700], out[700], log[700], id[32];
    struct it_env e;
    const char *p;
    time_t now = time(NULL);
    json_t *s, *o;

    it_tmpdir("sweep-max", tmp, sizeof(tmp));
    snprintf(root, sizeof(root), "%s/store", tmp);
    snprintf(url, sizeof(url), "file://%s", root);
    snprintf(out, sizeof(out), "%s/out", tmp);
    snprintf(log, sizeof(log), "%s/log", tmp);
    it_env_init(&e, url, "sweep-max", NULL);
    p = it_prefix_of(&e);
    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof(id), "sp%d", i);
        fs_space(root, id, 1, 10, now - 9 * DAY);
    }
    /* the dry run shows what would be deferred */
    ck_assert_int_eq(sweep_cli(&e, NULL, "--dry-run --max-jobs 2", out, log),
                     0);
    o = line_of(out, "sp2");
    ck_assert(json_is_true(json_object_get(o, "deferred")));
    json_decref(o);
    o = line_of(out, "sp1");
    ck_assert_ptr_null(json_object_get(o, "deferred"));
    json_decref(o);

    ck_assert_int_eq(sweep_cli(&e, NULL, "--max-jobs 2", out, log), 0);
    s = line_of(out, NULL);
    ck_assert_int_eq(int_at(s, "chosen"), 5);
    ck_assert_int_eq(int_at(s, "enqueued"), 2);
    ck_assert_int_eq(int_at(s, "deferred"), 3);
    ck_assert_int_eq(int_at(s, "maxJobs"), 2);
    json_decref(s);
    ck_assert_int_eq(xlen(p), 2);
    expect_enqueued(p, "sp0");
    expect_enqueued(p, "sp1");
    expect_not_enqueued(p, "sp2");
    o = line_of(out, "sp4");
    ck_assert(json_is_true(json_object_get(o, "deferred")));
    ck_assert_ptr_null(json_object_get(o, "jobId"));
    json_decref(o);

    /* the next sweep takes the next ones (the first are pending) */
    ck_assert_int_eq(sweep_cli(&e, NULL, "--max-jobs 2", out, log), 0);
    ck_assert_int_eq(xlen(p), 4);
    expect_enqueued(p, "sp2");
    expect_enqueued(p, "sp3");
    /* from the environment; a flag wins over it */
    ck_assert_int_eq(
        sweep_cli(&e, "SILA_SWEEP_MAX_JOBS=7", "--max-jobs 1", out, log), 0);
    s = line_of(out, NULL);
    ck_assert_int_eq(int_at(s, "maxJobs"), 1);
    ck_assert_int_eq(int_at(s, "enqueued"), 1);
    json_decref(s);
    ck_assert_int_eq(sweep_cli(&e, "SILA_SWEEP_MAX_JOBS=7", "", out, log), 0);
    s = line_of(out, NULL);
    ck_assert_int_eq(int_at(s, "maxJobs"), 7);
    ck_assert_int_eq(int_at(s, "chosen"), 0);
    json_decref(s);
    ck_assert_int_eq(xlen(p), 5);
}
END_TEST

START_TEST(test_it_sweep_settings_and_usage_errors)
{
    char tmp[512], root[600], url[700], out[700], log[700];
    struct it_env e;
    time_t now = time(NULL);

    it_tmpdir("sweep-cfg", tmp, sizeof(tmp));
    snprintf(root, sizeof(root), "%s/store", tmp);
    snprintf(url, sizeof(url), "file://%s", root);
    snprintf(out, sizeof(out), "%s/out", tmp);
    snprintf(log, sizeof(log), "%s/log", tmp);
    it_env_init(&e, url, "sweep-cfg", NULL);
    fs_space(root, "three-hours", 2, 10, now - 3 * HOUR);
    fs_space(root, "kib-90m", 1, 2048, now - 90 * 60);
    fs_space(root, "ten-min", 1, 10, now - 600);

    ck_assert_int_eq(sweep_cli(&e, "SILA_SWEEP_IDLE=2h", "--dry-run", out, log),
                     0);
    expect(out, "three-hours", "archive", "idle");
    expect(out, "kib-90m", "keep", "not-idle");
    ck_assert_int_eq(
        sweep_cli(&e, "SILA_SWEEP_IDLE=2h", "--dry-run --idle 4h", out, log),
        0);
    expect(out, "three-hours", "keep", "not-idle");
    ck_assert_int_eq(sweep_cli(&e, "SILA_SWEEP_LARGE=2KiB",
                               "--dry-run --idle-early 1h", out, log),
                     0);
    expect(out, "kib-90m", "archive", "large");
    expect(out, "three-hours", "keep", "small");
    ck_assert_int_eq(sweep_cli(&e, "SILA_SWEEP_MANY_FILES=2",
                               "--dry-run --idle-early 1h", out, log),
                     0);
    expect(out, "three-hours", "archive", "many-files");
    ck_assert_int_eq(sweep_cli(&e, "SILA_SWEEP_IDLE=1m SILA_SWEEP_RECENT=2h",
                               "--dry-run", out, log),
                     0);
    expect(out, "ten-min", "keep", "recent-write");
    expect(out, "three-hours", "archive", "idle");
    ck_assert_int_eq(
        sweep_cli(&e, NULL, "--dry-run --idle 1m --recent 0", out, log), 0);
    expect(out, "ten-min", "archive", "idle");

    ck_assert_int_eq(sweep_cli(&e, NULL, "--help", out, log), 0);
    ck_assert_int_eq(it_sh("grep -q -- '--max-jobs' '%s'", out), 0);
    ck_assert_int_eq(
        it_sh("env '%s' --help | grep -q '^  sweep '", it_env("WK_BIN")), 0);
    ck_assert_int_eq(sweep_cli(&e, NULL, "--max-jobs 0", out, log), 2);
    ck_assert_int_eq(
        it_sh("grep -q -- '--max-jobs: expected a number' '%s'", log), 0);
    ck_assert_int_eq(sweep_cli(&e, NULL, "--idle soon", out, log), 2);
    ck_assert_int_eq(
        it_sh("grep -q -- '--idle: expected a duration' '%s'", log), 0);
    ck_assert_int_eq(sweep_cli(&e, NULL, "--every 10ms", out, log), 2);
    ck_assert_int_eq(sweep_cli(&e, NULL, "--idle", out, log), 2);
    ck_assert_int_eq(sweep_cli(&e, NULL, "--bogus", out, log), 2);
    ck_assert_int_eq(it_sh("grep -q \"unexpected '--bogus'\" '%s'", log), 0);
    ck_assert_int_eq(sweep_cli(&e, "SILA_SWEEP_LARGE=big", "", out, log), 2);
    ck_assert_int_eq(
        it_sh("grep -q 'SILA_SWEEP_LARGE: expected a size' '%s'", log), 0);
    ck_assert_int_eq(it_sh("env -u SILA_STORE REDIS_URL=redis://127.0.0.1:%s/0 "
                           "'%s' sweep > '%s' 2>&1",
                           it_env("WK_TEST_REDIS_PORT"), it_env("WK_BIN"), out),
                     2);
    ck_assert_int_eq(it_sh("grep -q 'SILA_STORE is not set' '%s'", out), 0);
}
END_TEST

START_TEST(test_it_sweep_every_until_sigterm)
{
    char tmp[512], root[600], url[700], log[700];
    struct it_env e;
    const char *p;
    const char *args[] = { "sweep", "--every", "1s", NULL };
    time_t now = time(NULL);
    pid_t pid;
    int rounds = 0;

    it_tmpdir("sweep-every", tmp, sizeof(tmp));
    snprintf(root, sizeof(root), "%s/store", tmp);
    snprintf(url, sizeof(url), "file://%s", root);
    snprintf(log, sizeof(log), "%s/log", tmp);
    it_env_init(&e, url, "sweep-every", NULL);
    p = it_prefix_of(&e);
    fs_space(root, "first", 1, 10, now - 10 * DAY);
    pid = it_spawn(args, e.vars, log);
    for (int i = 0; i < 100 && rounds < 1; i++) {
        it_sleep_ms(100);
        rounds =
            it_sh("test $(grep -c '\"summary\":true' '%s') -ge 1", log) == 0;
    }
    ck_assert_int_eq(rounds, 1);
    expect_enqueued(p, "first");
    /* a space that goes idle later is found by a later round */
    fs_space(root, "second", 1, 10, now - 10 * DAY);
    for (int i = 0; i < 100; i++) {
        if (strcmp(it_redis("EXISTS %sdedup:archive:second", p), "1") == 0)
            break;
        it_sleep_ms(100);
    }
    expect_enqueued(p, "second");
    ck_assert_int_eq(it_stop(pid), 0);
    ck_assert_int_eq(xlen(p), 2);
    ck_assert_str_eq(it_redis("EXISTS %ssweep:lock", p), "0");
}
END_TEST

/* ---- S3: ages only through the activity index ---- */

START_TEST(test_it_sweep_s3_through_activity_index)
{
    char tmp[512], url[700], out[700], log[700], wlog[700], key[256];
    char job[200];
    struct it_env e;
    struct store *st = NULL;
    struct store_opts so;
    struct wk_err err;
    const char *p;
    time_t now = time(NULL);
    json_t *s;
    pid_t w;
    static const char *const spaces[] = { "s3-2d-small", "s3-idle", "s3-recent",
                                          "s3-unindexed" };

    it_tmpdir("sweep-s3", tmp, sizeof(tmp));
    /* a prefix of our own: other suites' spaces are not in this sweep */
    snprintf(url, sizeof(url), "s3://%s/sweep-%d", it_env("WK_TEST_BUCKET"),
             (int)getpid());
    snprintf(out, sizeof(out), "%s/out", tmp);
    snprintf(log, sizeof(log), "%s/log", tmp);
    snprintf(wlog, sizeof(wlog), "%s/worker.log", tmp);
    it_env_init(&e, url, "sweep-s3", NULL);
    p = it_prefix_of(&e);
    wk_err_clear(&err);
    ck_assert_int_eq(store_opts_from_env(&so, &err), WK_OK);
    snprintf(so.endpoint, sizeof(so.endpoint), "%s",
             it_env("WK_TEST_S3_ENDPOINT"));
    ck_assert_msg(store_open_url(url, &so, &st, &err) == WK_OK, "%s", err.msg);
    for (size_t i = 0; i < 4; i++) {
        static const char *const files[] = { "sila.md", "space-v1/space.json",
                                             "space-v1/ops/a/b/x-m.jsonl" };
        for (size_t f = 0; f < 3; f++) {
            snprintf(key, sizeof(key), "active/%s/%s", spaces[i], files[f]);
            ck_assert_msg(store_put(st, key, "0123456789", 10, &err) == WK_OK,
                          "%s", err.msg);
        }
    }
    zadd(p, "s3-idle", now - 10 * DAY);
    zadd(p, "s3-recent", now - 60);
    zadd(p, "s3-2d-small", now - 2 * DAY);

    ck_assert_int_eq(sweep_cli(&e, NULL, "--dry-run", out, log), 0);
    expect(out, "s3-idle", "archive", "idle");
    expect(out, "s3-recent", "keep", "recent-write");
    expect(out, "s3-2d-small", "keep", "small");
    /* object times on S3 are "now": without the index, recent */
    expect(out, "s3-unindexed", "keep", "recent-write");
    s = line_of(out, "s3-recent");
    ck_assert(json_is_null(json_object_get(s, "files")));
    json_decref(s);
    s = line_of(out, "s3-2d-small");
    ck_assert_int_eq(int_at(s, "files"), 3);
    ck_assert_int_eq(int_at(s, "bytes"), 30);
    json_decref(s);
    s = line_of(out, NULL);
    ck_assert_int_eq(int_at(s, "scanned"), 4);
    ck_assert_int_eq(int_at(s, "listed"), 3);
    json_decref(s);

    /* the real sweep queues s3-idle; a worker archives it */
    ck_assert_int_eq(sweep_cli(&e, NULL, "", out, log), 0);
    ck_assert_int_eq(xlen(p), 1);
    expect_enqueued(p, "s3-idle");
    snprintf(job, sizeof(job), "%s",
             it_redis("GET %sdedup:archive:s3-idle", p));
    w = it_start_worker(&e, wlog);
    ck_assert_str_eq(it_wait_job(p, job, 60), "succeeded");
    it_stop(w);
    ck_assert_uint_eq(it_count(st, "active/s3-idle/"), 0);
    /* archived spaces are no longer under active/: not scanned again */
    ck_assert_int_eq(sweep_cli(&e, NULL, "", out, log), 0);
    s = line_of(out, NULL);
    ck_assert_int_eq(int_at(s, "scanned"), 3);
    ck_assert_int_eq(int_at(s, "enqueued"), 0);
    json_decref(s);
    store_free(st);
}
END_TEST

/* ---- the lock: renewed while a sweep runs, a lost lock stops it ---- */

/* store_mem whose per-space listings are slow, and which can hand the
 * sweep lock to someone else while a given space is listed. */
struct slow_store {
    struct store base;
    struct store *inner;
    unsigned delay_ms;
    const char *prefix;   /* Redis key prefix */
    const char *steal_at; /* space whose listing steals the lock, or NULL */
    const char *move_at;  /* space whose listing moves the cursor, or NULL */
    int listings, lock_seen;
};

static enum wk_code slow_list(struct store *base, const char *prefix,
                              const char *delim, store_list_cb cb, void *ud,
                              struct wk_err *err)
{
    struct slow_store *s = (struct slow_store *)base;
    if (!delim) { /* one space's objects */
        it_sleep_ms(s->delay_ms);
        s->listings++;
        if (strcmp(it_redis("EXISTS %ssweep:lock", s->prefix), "1") == 0)
            s->lock_seen++;
        if (s->steal_at && strstr(prefix, s->steal_at))
            it_redis("SET %ssweep:lock thief-1-00 PX 60000", s->prefix);
        if (s->move_at && strstr(prefix, s->move_at))
            it_redis("HSET %ssweep:cursor after elsewhere/", s->prefix);
    }
    return store_list(s->inner, prefix, delim, cb, ud, err);
}

static enum wk_code slow_get(struct store *base, const char *key,
                             uint64_t offset, uint64_t len, store_sink_cb sink,
                             void *ud, struct wk_err *err)
{
    struct slow_store *s = (struct slow_store *)base;
    return store_get(s->inner, key, offset, len, sink, ud, err);
}

static void slow_free(struct store *base)
{
    (void)base; /* on the test's stack; the inner store is freed there */
}

static const struct store_ops slow_ops = {
    .name = "slow", .list = slow_list, .get = slow_get, .free = slow_free
};

static void run_slow_sweep(const char *tag, const char *steal_at,
                           enum wk_code want, struct slow_store *ss,
                           struct sweep_result *res, char *prefix, size_t len)
{
    struct cfg cfg;
    struct sweep_opts o;
    struct q *q = NULL;
    struct wk_err err;
    char url[128], key[64];
    FILE *devnull = fopen("/dev/null", "w");

    memset(&cfg, 0, sizeof(cfg));
    snprintf(url, sizeof(url), "redis://127.0.0.1:%s/0",
             it_env("WK_TEST_REDIS_PORT"));
    wk_err_clear(&err);
    ck_assert_int_eq(cfg_parse_redis_url(url, &cfg.redis, &err), WK_OK);
    snprintf(prefix, len, "test:%d:%s:", (int)getpid(), tag);
    snprintf(cfg.prefix, sizeof(cfg.prefix), "%s", prefix);
    cfg.lease_ms = 300; /* renewed every 100 ms */
    sweep_opts_default(&o);
    memset(ss, 0, sizeof(*ss));
    ss->base.ops = &slow_ops;
    ss->delay_ms = 150;
    ss->prefix = prefix;
    ss->steal_at = steal_at;
    ck_assert_int_eq(store_mem_new(&ss->inner, &err), WK_OK);
    for (int i = 1; i <= 6; i++) {
        snprintf(key, sizeof(key), "active/s%d/sila.md", i);
        ck_assert_int_eq(store_put(ss->inner, key, "x", 1, &err), WK_OK);
    }
    ck_assert_int_eq(q_connect(&cfg.redis, cfg.prefix, 10000, &q, &err), WK_OK);
    wk_log_set_fd(fileno(devnull)); /* sweep.lock_lost is expected */
    ck_assert_int_eq(
        sweep_once(&cfg, &o, &ss->base, q, devnull, NULL, res, &err), want);
    wk_log_set_fd(2);
    if (want == WK_E_CONFLICT)
        ck_assert_msg(strstr(err.msg, "sweep lock lost") != NULL, "%s",
                      err.msg);
    q_free(q);
    store_free(ss->inner);
    fclose(devnull);
}

START_TEST(test_it_sweep_lock_renewed_while_running_lost_stops)
{
    struct slow_store ss;
    struct sweep_result res;
    char prefix[128];

    /* 6 spaces x 150 ms = 900 ms, three times the lock's expiry */
    run_slow_sweep("sweep-renew", NULL, WK_OK, &ss, &res, prefix,
                   sizeof(prefix));
    ck_assert_int_eq(ss.listings, 6);
    ck_assert_int_eq(ss.lock_seen, 6); /* still held at 750 ms */
    ck_assert_uint_eq(res.totals.scanned, 6);
    ck_assert_str_eq(it_redis("EXISTS %ssweep:lock", prefix), "0");

    /* another sweep takes the lock over while s3 is listed */
    run_slow_sweep("sweep-lost", "/s3/", WK_E_CONFLICT, &ss, &res, prefix,
                   sizeof(prefix));
    ck_assert_int_lt(ss.listings, 6);
    ck_assert_uint_lt(res.totals.scanned, 6);
    /* the new holder's lock is left alone */
    ck_assert_str_eq(it_redis("GET %ssweep:lock", prefix), "thief-1-00");
}
END_TEST

/* ---- the cursor: runs that continue, budgets, LIST requests ---- */

/* The sweep cursor's field (HGET), "" when absent. */
static const char *cursor_field(const char *prefix, const char *field)
{
    const char *v = it_redis("HGET %ssweep:cursor %s", prefix, field);
    return strcmp(v, "(nil)") == 0 ? "" : v;
}

/* The summary's field as a string ("" when null). */
static void summary_is(json_t *s, const char *before, const char *after,
                       bool pass, const char *stopped_by)
{
    json_t *sb = json_object_get(s, "stoppedBy");
    ck_assert_str_eq(str_at(s, "cursorBefore"), before);
    ck_assert_str_eq(str_at(s, "cursorAfter"), after);
    ck_assert_msg(json_is_boolean(json_object_get(s, "passCompleted")) &&
                      json_is_true(json_object_get(s, "passCompleted")) == pass,
                  "passCompleted is not %d", pass);
    if (stopped_by)
        ck_assert_str_eq(json_string_value(sb), stopped_by);
    else
        ck_assert(json_is_null(sb));
}

START_TEST(test_it_sweep_fs_cursor_continues_across_runs)
{
    char tmp[512], root[600], url[700], out[700], log[700], id[32];
    struct it_env e;
    const char *p;
    time_t now = time(NULL);
    json_t *s;

    it_tmpdir("sweep-cursor", tmp, sizeof(tmp));
    snprintf(root, sizeof(root), "%s/store", tmp);
    snprintf(url, sizeof(url), "file://%s", root);
    snprintf(out, sizeof(out), "%s/out", tmp);
    snprintf(log, sizeof(log), "%s/log", tmp);
    it_env_init(&e, url, "sweep-cursor", NULL);
    p = it_prefix_of(&e);
    for (int i = 0; i < 7; i++) {
        snprintf(id, sizeof(id), "c%d", i);
        fs_space(root, id, 1, 10, now - 10 * DAY);
    }

    /* three at a time: c0 c1 c2, then c3 c4 c5 */
    ck_assert_int_eq(sweep_cli(&e, NULL, "--max-spaces 3", out, log), 0);
    s = line_of(out, NULL);
    summary_is(s, "", "c2/", false, "max-spaces");
    ck_assert_int_eq(int_at(s, "scanned"), 3);
    ck_assert_int_eq(int_at(s, "enqueued"), 3);
    ck_assert(json_is_true(json_object_get(s, "cursorSaved")));
    /* active/ once, each space once: nothing here is indexed */
    ck_assert_int_eq(int_at(s, "listCalls"), 4);
    ck_assert_int_eq(int_at(s, "listRequests"), 4);
    json_decref(s);
    ck_assert_str_eq(cursor_field(p, "after"), "c2/");
    ck_assert_str_eq(cursor_field(p, "passes"), "0");
    ck_assert_str_eq(cursor_field(p, "passSpaces"), "3");
    ck_assert_str_eq(cursor_field(p, "runs"), "1");
    expect_enqueued(p, "c2");
    expect_not_enqueued(p, "c3");

    /* a dry run starts at the cursor and leaves it where it is */
    ck_assert_int_eq(sweep_cli(&e, NULL, "--dry-run --max-spaces 2", out, log),
                     0);
    ck_assert_int_eq(space_lines(out), 2);
    expect(out, "c3", "archive", "idle");
    expect(out, "c4", "archive", "idle");
    s = line_of(out, NULL);
    summary_is(s, "c2/", "c4/", false, "max-spaces");
    ck_assert(json_is_false(json_object_get(s, "cursorSaved")));
    json_decref(s);
    ck_assert_str_eq(cursor_field(p, "after"), "c2/");

    /* from the environment; the next run goes on from c2 */
    ck_assert_int_eq(sweep_cli(&e, "SILA_SWEEP_MAX_SPACES=3", "", out, log), 0);
    s = line_of(out, NULL);
    summary_is(s, "c2/", "c5/", false, "max-spaces");
    ck_assert_int_eq(int_at(s, "maxSpaces"), 3);
    json_decref(s);
    expect_enqueued(p, "c5");
    expect_not_enqueued(p, "c6");

    /* c6, the end of active/ (a pass), then from the first again: c0 and
     * c1 have their jobs pending */
    ck_assert_int_eq(sweep_cli(&e, NULL, "--max-spaces 3", out, log), 0);
    s = line_of(out, NULL);
    summary_is(s, "c5/", "c1/", true, "max-spaces");
    ck_assert_int_eq(int_at(s, "enqueued"), 1);
    ck_assert_int_eq(reason_count(s, "skippedBy", "job-pending"), 2);
    ck_assert_int_eq(int_at(s, "passes"), 1);
    json_decref(s);
    expect_enqueued(p, "c6");
    ck_assert_int_eq(xlen(p), 7); /* every space reached */
    ck_assert_str_eq(cursor_field(p, "passes"), "1");
    ck_assert_str_eq(cursor_field(p, "lastPassSpaces"), "7");
    ck_assert_str_eq(cursor_field(p, "passSpaces"), "2");
    ck_assert_int_eq(strlen(cursor_field(p, "lastPassAt")), 20);

    /* no limit: one full circle from the cursor, back to it */
    ck_assert_int_eq(sweep_cli(&e, NULL, "", out, log), 0);
    s = line_of(out, NULL);
    summary_is(s, "c1/", "c1/", true, NULL);
    ck_assert_int_eq(int_at(s, "scanned"), 7);
    ck_assert_int_eq(int_at(s, "timeBudgetMs"), 40 * 60 * 1000);
    json_decref(s);
    /* --from-start ignores it */
    ck_assert_int_eq(
        sweep_cli(&e, NULL, "--from-start --max-spaces 1", out, log), 0);
    s = line_of(out, NULL);
    summary_is(s, "", "c0/", false, "max-spaces");
    json_decref(s);
    ck_assert_str_eq(cursor_field(p, "after"), "c0/");

    /* another sweep holds the lock: the cursor is not touched */
    ck_assert_str_eq(it_redis("SET %ssweep:lock other-1-00 PX 60000", p), "OK");
    ck_assert_int_eq(sweep_cli(&e, NULL, "--max-spaces 1", out, log), 0);
    s = line_of(out, NULL);
    ck_assert(json_is_true(json_object_get(s, "lockedOut")));
    json_decref(s);
    ck_assert_str_eq(cursor_field(p, "after"), "c0/");
    it_redis("DEL %ssweep:lock", p);

    /* settings */
    ck_assert_int_eq(sweep_cli(&e, NULL, "--max-spaces many", out, log), 2);
    ck_assert_int_eq(
        it_sh("grep -q -- '--max-spaces: expected a number' '%s'", log), 0);
    ck_assert_int_eq(sweep_cli(&e, "SILA_SWEEP_TIME_BUDGET=soon", "", out, log),
                     2);
    ck_assert_int_eq(it_sh("grep -q 'SILA_SWEEP_TIME_BUDGET: expected a "
                           "duration' '%s'",
                           log),
                     0);
    ck_assert_int_eq(sweep_cli(&e, NULL, "--help", out, log), 0);
    ck_assert_int_eq(it_sh("grep -q -- '--time-budget' '%s'", out), 0);
}
END_TEST

/* Start tests/s3_fault_proxy.py without faults in front of the test S3
 * server: it counts the requests by method (<ctl>.stats). */
static pid_t start_counting_proxy(int port, const char *ctl)
{
    char portstr[16], script[600], outp[800], target[300];
    const char *ep = it_env("WK_TEST_S3_ENDPOINT");
    pid_t pid;

    snprintf(portstr, sizeof(portstr), "%d", port);
    snprintf(script, sizeof(script), "%s/tests/s3_fault_proxy.py",
             it_env("WK_SRCDIR"));
    snprintf(outp, sizeof(outp), "%s.out", ctl);
    snprintf(target, sizeof(target), "%s",
             strncmp(ep, "http://", 7) == 0 ? ep + 7 : ep);
    it_write_file(ctl, "{}");
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fd = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execlp("python3", "python3", script, "--port", portstr, "--target",
               target, "--control", ctl, "--seed", "1", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 100; i++) {
        if (it_sh("grep -qx ready '%s' 2>/dev/null", outp) == 0)
            return pid;
        it_sleep_ms(100);
    }
    it_stop(pid);
    ck_abort_msg("s3 proxy did not start (see %s)", outp);
    return -1;
}

/* GET requests the proxy forwarded so far (its stats are rewritten every
 * 50 ms: wait until two reads a moment apart agree). */
static long long proxy_get_count(const char *ctl)
{
    char path[800];
    long long last = -1;

    snprintf(path, sizeof(path), "%s.stats", ctl);
    for (int i = 0; i < 50; i++) {
        json_error_t je;
        json_t *o;
        long long n = 0;

        it_sleep_ms(150);
        o = json_load_file(path, 0, &je);
        if (o) {
            json_t *g = json_object_get(json_object_get(o, "by_method"), "GET");
            json_t *v = json_object_get(g, "forwarded");
            n = json_is_integer(v) ? (long long)json_integer_value(v) : 0;
            json_decref(o);
        }
        if (n == last)
            return n;
        last = n;
    }
    ck_abort_msg("proxy stats did not settle");
    return -1;
}

/* On S3 through a proxy that counts the requests: the sweep's listRequests
 * are the ListObjectsV2 requests S3 saw (each other GET is a manifest read
 * of a chosen space), a run with a small budget stops and the next one
 * continues, every space is reached, and the space the activity index
 * calls recent is never listed. */
START_TEST(test_it_sweep_s3_cursor_counts_list_requests)
{
    char tmp[512], url[700], out[700], log[700], key[256], ctl[700], ep[64];
    char id[16];
    struct it_env e;
    struct store *st = NULL;
    struct store_opts so;
    struct wk_err err;
    const char *p;
    time_t now = time(NULL);
    int port = it_free_port();
    long long n_get0, n_get;
    pid_t proxy;
    json_t *s;
    /* spaces examined per run, of them listed (all but c03), and enqueued */
    static const struct {
        const char *before, *after;
        bool pass;
        long long scanned, list_requests, enqueued;
    } runs[] = {
        /* active/ + c00 c01 c02 c04 */
        { "", "c04/", false, 5, 1 + 4, 4 },
        /* active/ + c05..c09 */
        { "c04/", "c09/", false, 5, 1 + 5, 5 },
        /* active/ + c10 c11, the end, active/ again + c00 c01 c02 (their
         * jobs are pending: listed, no manifest read) */
        { "c09/", "c02/", true, 5, 1 + 2 + 1 + 3, 2 },
    };

    it_tmpdir("sweep-s3cur", tmp, sizeof(tmp));
    snprintf(url, sizeof(url), "s3://%s/sweepcur-%d", it_env("WK_TEST_BUCKET"),
             (int)getpid());
    snprintf(out, sizeof(out), "%s/out", tmp);
    snprintf(log, sizeof(log), "%s/log", tmp);
    snprintf(ctl, sizeof(ctl), "%s/proxy.json", tmp);
    snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", port);
    proxy = start_counting_proxy(port, ctl);
    it_env_init(&e, url, "sweep-s3cur", ep);
    p = it_prefix_of(&e);
    wk_err_clear(&err);
    ck_assert_int_eq(store_opts_from_env(&so, &err), WK_OK);
    snprintf(so.endpoint, sizeof(so.endpoint), "%s",
             it_env("WK_TEST_S3_ENDPOINT"));
    ck_assert_msg(store_open_url(url, &so, &st, &err) == WK_OK, "%s", err.msg);
    for (int i = 0; i < 12; i++) {
        snprintf(id, sizeof(id), "c%02d", i);
        snprintf(key, sizeof(key), "active/%s/sila.md", id);
        ck_assert_msg(store_put(st, key, "0123456789", 10, &err) == WK_OK, "%s",
                      err.msg);
        /* idle by the index, except c03: written a minute ago */
        zadd(p, id, i == 3 ? now - 60 : now - 10 * DAY);
    }

    for (size_t r = 0; r < sizeof(runs) / sizeof(runs[0]); r++) {
        n_get0 = proxy_get_count(ctl);
        ck_assert_int_eq(sweep_cli(&e, NULL, "--max-spaces 5", out, log), 0);
        n_get = proxy_get_count(ctl) - n_get0;
        s = line_of(out, NULL);
        ck_assert_ptr_nonnull(s);
        summary_is(s, runs[r].before, runs[r].after, runs[r].pass,
                   "max-spaces");
        ck_assert_int_eq(int_at(s, "scanned"), runs[r].scanned);
        ck_assert_int_eq(int_at(s, "enqueued"), runs[r].enqueued);
        ck_assert_int_eq(int_at(s, "listRequests"), runs[r].list_requests);
        /* what S3 saw: the LISTs counted, plus one manifest GET per space
         * about to be enqueued */
        ck_assert_msg(n_get == runs[r].list_requests + runs[r].enqueued,
                      "run %zu: %lld GETs at S3, %lld LIST + %lld manifests", r,
                      n_get, runs[r].list_requests, runs[r].enqueued);
        json_decref(s);
    }
    /* every space but the recent one is queued, after three runs */
    for (int i = 0; i < 12; i++) {
        snprintf(id, sizeof(id), "c%02d", i);
        if (i == 3)
            expect_not_enqueued(p, id);
        else
            expect_enqueued(p, id);
    }
    ck_assert_int_eq(xlen(p), 11);
    ck_assert_str_eq(cursor_field(p, "passes"), "1");

    /* a dry run without a limit: the whole circle, c03 still not listed */
    n_get0 = proxy_get_count(ctl);
    ck_assert_int_eq(sweep_cli(&e, NULL, "--dry-run", out, log), 0);
    n_get = proxy_get_count(ctl) - n_get0;
    expect(out, "c03", "keep", "recent-write");
    s = line_of(out, "c03");
    ck_assert(json_is_null(json_object_get(s, "files")));
    json_decref(s);
    s = line_of(out, NULL);
    ck_assert_int_eq(int_at(s, "scanned"), 12);
    ck_assert_int_eq(int_at(s, "listed"), 11);
    /* active/ twice (after c02, then up to it) + 11 spaces */
    ck_assert_int_eq(int_at(s, "listRequests"), 2 + 11);
    ck_assert_int_eq(n_get, 2 + 11);
    json_decref(s);
    store_free(st);
    it_stop(proxy);
}
END_TEST

/* ---- the cursor and the lock: a time budget, fenced saves ---- */

/* sweep_once on the slow store over s1..s6 (300 ms per space listing)
 * with a time budget, under prefix; WK_OK expected. */
static void budget_sweep(const char *prefix, uint64_t budget_ms,
                         struct slow_store *ss, struct sweep_result *res)
{
    struct cfg cfg;
    struct sweep_opts o;
    struct q *q = NULL;
    struct wk_err err;
    char url[128];
    FILE *devnull = fopen("/dev/null", "w");

    memset(&cfg, 0, sizeof(cfg));
    snprintf(url, sizeof(url), "redis://127.0.0.1:%s/0",
             it_env("WK_TEST_REDIS_PORT"));
    wk_err_clear(&err);
    ck_assert_int_eq(cfg_parse_redis_url(url, &cfg.redis, &err), WK_OK);
    snprintf(cfg.prefix, sizeof(cfg.prefix), "%s", prefix);
    cfg.lease_ms = 30000;
    sweep_opts_default(&o);
    o.time_budget_ms = budget_ms;
    ss->base.ops = &slow_ops;
    ss->delay_ms = 300;
    ss->prefix = prefix;
    ck_assert_int_eq(q_connect(&cfg.redis, cfg.prefix, 10000, &q, &err), WK_OK);
    wk_log_set_fd(fileno(devnull)); /* sweep.cursor_not_saved is expected */
    ck_assert_msg(
        sweep_once(&cfg, &o, &ss->base, q, devnull, NULL, res, &err) == WK_OK,
        "%s", err.msg);
    wk_log_set_fd(2);
    q_free(q);
    fclose(devnull);
}

static void slow_spaces(struct slow_store *ss)
{
    struct wk_err err;
    char key[64];

    memset(ss, 0, sizeof(*ss));
    wk_err_clear(&err);
    ck_assert_int_eq(store_mem_new(&ss->inner, &err), WK_OK);
    for (int i = 1; i <= 6; i++) {
        snprintf(key, sizeof(key), "active/s%d/sila.md", i);
        ck_assert_int_eq(store_put(ss->inner, key, "x", 1, &err), WK_OK);
    }
}

START_TEST(test_it_sweep_time_budget_and_fenced_cursor)
{
    struct slow_store ss;
    struct sweep_result res;
    char prefix[128];

    snprintf(prefix, sizeof(prefix), "test:%d:sweep-budget:", (int)getpid());
    slow_spaces(&ss);
    /* 750 ms: s1, s2, s3 begin within it (at 0, 300, 600 ms), not s4 */
    budget_sweep(prefix, 750, &ss, &res);
    ck_assert_uint_eq(res.totals.scanned, 3);
    ck_assert_str_eq(res.stopped_by, "time-budget");
    ck_assert(res.cursor_saved);
    ck_assert_str_eq(cursor_field(prefix, "after"), "s3/");
    /* the next one goes on from there: s4 s5 s6, the end of the pass, and
     * no time left for s1 */
    budget_sweep(prefix, 750, &ss, &res);
    ck_assert_str_eq(res.cursor_before, "s3/");
    ck_assert_uint_eq(res.totals.scanned, 3);
    ck_assert(res.totals.pass_completed);
    ck_assert_str_eq(res.stopped_by, "time-budget");
    ck_assert_str_eq(cursor_field(prefix, "after"), "");
    ck_assert_str_eq(cursor_field(prefix, "passes"), "1");
    ck_assert_str_eq(cursor_field(prefix, "lastPassSpaces"), "6");
    budget_sweep(prefix, 0, &ss, &res); /* no budget: all of them */
    ck_assert_uint_eq(res.totals.scanned, 6);
    ck_assert(res.totals.pass_completed);
    ck_assert_ptr_null(res.stopped_by);
    ck_assert_str_eq(cursor_field(prefix, "passes"), "2");

    /* someone moved the cursor meanwhile (a sweep that should not have
     * run): this one does not overwrite it */
    ss.move_at = "/s2/";
    budget_sweep(prefix, 750, &ss, &res);
    ck_assert(!res.cursor_saved);
    ck_assert_str_eq(cursor_field(prefix, "after"), "elsewhere/");
    ss.move_at = NULL;
    store_free(ss.inner);
}
END_TEST

START_TEST(test_it_sweep_lost_lock_saves_no_cursor)
{
    struct slow_store ss;
    struct sweep_result res;
    char prefix[128];

    /* the lock is taken over during s3's listing: the sweep stops with an
     * error and writes no cursor */
    run_slow_sweep("sweep-lost-cur", "/s3/", WK_E_CONFLICT, &ss, &res, prefix,
                   sizeof(prefix));
    ck_assert_str_eq(it_redis("EXISTS %ssweep:cursor", prefix), "0");
    ck_assert(!res.cursor_saved);
}
END_TEST

/* ---- benchmark: 100,000 spaces in the activity index ---- */

static long bench_spaces(void)
{
    const char *v = getenv("WK_SWEEP_BENCH_SPACES");
    return v && *v ? strtol(v, NULL, 10) : 100000;
}

/* ZADD n members "<stem>NNNNNNN" in one script: scores spread over the
 * last 20 hours (recently active, whatever their size). */
static void zadd_many(const char *prefix, const char *stem, long n, time_t now)
{
    char key[256], ns[32], ts[32];
    static const char script[] =
        "local t = tonumber(ARGV[1])\n"
        "for i = 1, tonumber(ARGV[2]) do\n"
        "  redis.call('ZADD', KEYS[1], t - (i % 72000),\n"
        "             ARGV[3] .. string.format('%07d', i))\n"
        "end\n"
        "return redis.call('ZCARD', KEYS[1])\n";
    snprintf(key, sizeof(key), "%sactivity", prefix);
    snprintf(ns, sizeof(ns), "%ld", n);
    snprintf(ts, sizeof(ts), "%lld", (long long)now);
    it_redis("EVAL %s 1 %s %s %s %s", script, key, ts, ns, stem);
}

/* n folders active/<stem>NNNNNNN/ holding one empty sila.md each. */
static void make_dirs(const char *root, const char *stem, long n)
{
    char path[900];
    snprintf(path, sizeof(path), "%s/active", root);
    ck_assert_int_eq(it_sh("mkdir -p '%s'", path), 0);
    for (long i = 1; i <= n; i++) {
        int fd;
        snprintf(path, sizeof(path), "%s/active/%s%07ld", root, stem, i);
        ck_assert_int_eq(mkdir(path, 0755), 0);
        snprintf(path, sizeof(path), "%s/active/%s%07ld/sila.md", root, stem,
                 i);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        ck_assert_int_ge(fd, 0);
        close(fd);
    }
}

static long max_rss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    return ru.ru_maxrss;
}

START_TEST(test_it_sweep_bench_100k_indexed_spaces)
{
    char tmp[512], root[600], url[700], out[700], log[700];
    struct it_env e, e2;
    const char *p;
    time_t now = time(NULL);
    long n = bench_spaces();
    double t, t_ghost, t_real, t_noindex, t_make;
    long rss;
    json_t *s;

    it_tmpdir("sweep-bench", tmp, sizeof(tmp));
    snprintf(root, sizeof(root), "%s/store", tmp);
    snprintf(url, sizeof(url), "file://%s", root);
    snprintf(out, sizeof(out), "%s/out", tmp);
    snprintf(log, sizeof(log), "%s/log", tmp);
    it_env_init(&e, url, "sweep-bench", NULL);
    p = it_prefix_of(&e);
    /* a handful of real spaces: two idle by the index, three recent */
    fs_space(root, "real-idle-1", 3, 100, now);
    fs_space(root, "real-idle-2", 3, 100, now);
    fs_space(root, "real-new-1", 3, 100, now);
    fs_space(root, "real-new-2", 3, 100, now);
    fs_space(root, "real-new-3", 3, 100, now - 8 * DAY); /* not indexed */
    zadd(p, "real-idle-1", now - 8 * DAY);
    zadd(p, "real-idle-2", now - 30 * DAY);
    zadd(p, "real-new-1", now - 60);
    zadd(p, "real-new-2", now - 5 * HOUR);

    /* (a) n index members that have no objects, plus the handful */
    t = now_s();
    zadd_many(p, "ghost", n, now);
    fprintf(stderr, "sweep-bench: ZADD of %ld members: %.2f s\n", n,
            now_s() - t);
    ck_assert_int_eq(strtol(it_redis("ZCARD %sactivity", p), NULL, 10), n + 4);
    t = now_s();
    ck_assert_int_eq(sweep_cli(&e, NULL, "", out, log), 0);
    t_ghost = now_s() - t;
    expect(out, "real-idle-1", "archive", "idle");
    expect(out, "real-idle-2", "archive", "idle");
    expect(out, "real-new-3", "archive", "idle");
    s = line_of(out, NULL);
    ck_assert_int_eq(int_at(s, "scanned"), 5);
    ck_assert_int_eq(int_at(s, "enqueued"), 3);
    ck_assert_int_eq(int_at(s, "activityIndex"), n + 4);
    json_decref(s);
    ck_assert_int_eq(xlen(p), 3);

    /* (b) n real spaces, all in the index and recently active */
    it_env_init(&e2, url, "sweep-bench2", NULL);
    p = it_prefix_of(&e2);
    zadd(p, "real-idle-1", now - 8 * DAY);
    zadd(p, "real-idle-2", now - 30 * DAY);
    zadd(p, "real-new-1", now - 60);
    zadd(p, "real-new-2", now - 5 * HOUR);
    zadd_many(p, "b", n, now);
    t = now_s();
    make_dirs(root, "b", n);
    t_make = now_s() - t;
    t = now_s();
    ck_assert_int_eq(sweep_cli(&e2, NULL, "", out, log), 0);
    t_real = now_s() - t;
    rss = max_rss_kib();
    s = line_of(out, NULL);
    ck_assert_int_eq(int_at(s, "scanned"), n + 5);
    ck_assert_int_eq(int_at(s, "indexed"), n + 4);
    ck_assert_int_eq(int_at(s, "listed"), 3); /* 2 idle + 1 unindexed */
    ck_assert_int_eq(int_at(s, "enqueued"), 3);
    ck_assert_int_eq(reason_count(s, "skippedBy", "not-idle") +
                         reason_count(s, "skippedBy", "recent-write"),
                     n + 2);
    json_decref(s);
    ck_assert_int_eq(xlen(p), 3);

    /* (c) the same tree without the index: every space is listed */
    it_redis("DEL %sactivity", p);
    t = now_s();
    ck_assert_int_eq(sweep_cli(&e2, NULL, "--dry-run", out, log), 0);
    t_noindex = now_s() - t;
    s = line_of(out, NULL);
    ck_assert_int_eq(int_at(s, "listed"), n + 5);
    json_decref(s);

    fprintf(stderr,
            "sweep-bench: (a) %ld indexed members without objects + 5 real "
            "spaces: %.2f s\n"
            "sweep-bench: (b) %ld real spaces (file://, made in %.1f s), "
            "all indexed: %.2f s, max RSS %ld KiB\n"
            "sweep-bench: (c) the same %ld spaces without the index (dry "
            "run, every space listed): %.2f s\n",
            n, t_ghost, n, t_make, t_real, rss, n, t_noindex);
    /* "in seconds" */
    ck_assert_msg(t_ghost < 10.0, "sweep (a) took %.2f s", t_ghost);
    ck_assert_msg(t_real < 30.0, "sweep (b) took %.2f s", t_real);
    ck_assert_int_eq(it_sh("rm -rf '%s'", root), 0);
}
END_TEST

Suite *it_sweep_suite(void)
{
    Suite *s = suite_create("it_sweep");
    TCase *tc = tcase_create("sweep");
    TCase *bc = tcase_create("bench");

    tcase_set_timeout(tc, 300);
    tcase_add_test(tc,
                   test_it_sweep_fs_dry_run_then_enqueue_exactly_the_policy);
    tcase_add_test(tc, test_it_sweep_second_concurrent_sweep_does_nothing);
    tcase_add_test(tc, test_it_sweep_max_jobs_bounds_each_sweep);
    tcase_add_test(tc, test_it_sweep_settings_and_usage_errors);
    tcase_add_test(tc, test_it_sweep_every_until_sigterm);
    tcase_add_test(tc, test_it_sweep_s3_through_activity_index);
    tcase_add_test(tc, test_it_sweep_lock_renewed_while_running_lost_stops);
    tcase_add_test(tc, test_it_sweep_fs_cursor_continues_across_runs);
    tcase_add_test(tc, test_it_sweep_s3_cursor_counts_list_requests);
    tcase_add_test(tc, test_it_sweep_time_budget_and_fenced_cursor);
    tcase_add_test(tc, test_it_sweep_lost_lock_saves_no_cursor);
    suite_add_tcase(s, tc);
    tcase_set_timeout(bc, 600);
    tcase_add_test(bc, test_it_sweep_bench_100k_indexed_spaces);
    suite_add_tcase(s, bc);
    return s;
}
