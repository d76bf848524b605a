/* Ready early, complete later, against real Redis and S3: "ready" on the
 * space channel before "complete", with the manifest restoring + readyAt and
 * the metadata in place at that moment; a blob read between the two through
 * a want request; a user's write between them kept; timeToReadyMs counted
 * from the enqueue; stats' percentiles; a failure after ready that keeps
 * everything, finished by the next run. The restore is held between ready
 * and complete by failpoints that sleep (common/wk_fail.h). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jobs/manifest.h"
#include "tests/integration/it_flow.h"
#include "tests/integration/suites.h"

/* A generated space uploaded to active/ of the S3 test bucket. */
static void s3_space(const char *tmp, const char *id, int seed,
                     const char *gen_args, char *src, size_t len)
{
    char prefix[128];
    snprintf(src, len, "%s/space-%s", tmp, id);
    it_gen_space(src, id, seed, gen_args);
    snprintf(prefix, sizeof(prefix), "active/%s/", id);
    it_upload_dir(src, prefix, NULL);
}

/* redis-cli PSUBSCRIBE to every space channel of e, output to log. */
static pid_t subscribe(const struct it_env *e, const char *log)
{
    static char pattern[160];
    const char *argv[6];
    pid_t p;

    snprintf(pattern, sizeof(pattern), "%sspace:*", it_prefix_of(e));
    argv[0] = "redis-cli";
    argv[1] = "-p";
    argv[2] = it_env("WK_TEST_REDIS_PORT");
    argv[3] = "PSUBSCRIBE";
    argv[4] = pattern;
    argv[5] = NULL;
    p = it_spawn_prog(argv, log);
    for (int i = 0; i < 50 && it_sh("grep -q psubscribe '%s'", log); i++)
        it_sleep_ms(100);
    return p;
}

static long num(const char *s)
{
    return strtol(s, NULL, 10);
}

/* Wait up to timeout_ms for a line of file matching the grep pattern. */
static bool wait_line(const char *file, const char *pattern, int timeout_ms)
{
    for (int t = 0; t < timeout_ms; t += 20) {
        if (it_sh("grep -q -- '%s' '%s'", pattern, file) == 0)
            return true;
        it_sleep_ms(20);
    }
    return false;
}

/* The line number of the first line of file matching pattern (0: none). */
static int line_of(const char *file, const char *pattern)
{
    char cmd[1200], out[32] = "";
    FILE *p;
    snprintf(cmd, sizeof(cmd), "grep -n -m1 -- '%s' '%s' | cut -d: -f1",
             pattern, file);
    p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    if (!fgets(out, sizeof(out), p))
        out[0] = '\0';
    pclose(p);
    return num(out);
}

static bool present(struct store *st, const char *key)
{
    struct store_stat sb;
    struct wk_err err;
    wk_err_clear(&err);
    return store_head(st, key, &sb, &err) == WK_OK;
}

/* The last file (in name order) under a folder of src, relative to src. */
static void last_file(const char *src, const char *dir, char *out, size_t len)
{
    char cmd[800];
    FILE *p;
    snprintf(cmd, sizeof(cmd), "cd '%s' && find %s -type f | sort | tail -n 1",
             src, dir);
    p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_nonnull(fgets(out, (int)len, p));
    pclose(p);
    out[strcspn(out, "\n")] = '\0';
}

static void archive_space(struct it_env *e, const char *id, const char *tmp)
{
    char log[600], out[600], job[200], args[300];
    pid_t w;
    snprintf(log, sizeof(log), "%s/worker-archive.log", tmp);
    snprintf(out, sizeof(out), "%s/out-archive", tmp);
    w = it_start_worker(e, log);
    snprintf(args, sizeof(args), "enqueue archive '%s' --wait", id);
    ck_assert_msg(it_cli(e, args, job, sizeof(job), out) == 0, "see %s", out);
    ck_assert_int_eq(it_stop(w), 0);
}

START_TEST(test_it_ready_before_complete_want_and_user_write)
{
    char id[33], tmp[512], src[600], log[600], out[600], job[200], url[128];
    char sublog[600], key[1200], cas[400], var[400], ops_new[400], pat[1400];
    char args[300];
    static const char user_var[] = "a user's newer var blob\n";
    static const char user_ops[] = "[9,\"zz\",null]\n";
    struct it_env e;
    struct store *st = it_s3_store(NULL);
    struct mf *m = calloc(1, sizeof(*m));
    char *text;
    size_t len;
    pid_t w, sub;

    it_space_id(id);
    it_tmpdir("ready", tmp, sizeof(tmp));
    s3_space(tmp, id, 91,
             "--ops-files 40 --blobs 12 --big-blobs 1 "
             "--var-blobs 3",
             src, sizeof(src));
    last_file(src, "space-v1/files/static", cas, sizeof(cas));
    last_file(src, "space-v1/files/var", var, sizeof(var));
    snprintf(url, sizeof(url), "s3://%s", it_env("WK_TEST_BUCKET"));
    it_env_init(&e, url, "ready", NULL);
    archive_space(&e, id, tmp);

    snprintf(sublog, sizeof(sublog), "%s/space-events.txt", tmp);
    sub = subscribe(&e, sublog);
    /* requested while no worker runs: time-to-ready counts from here */
    snprintf(out, sizeof(out), "%s/out-enqueue", tmp);
    snprintf(args, sizeof(args), "enqueue unarchive '%s' --urgent", id);
    ck_assert_int_eq(it_cli(&e, args, job, sizeof(job), out), 0);
    it_sleep_ms(1500);
    it_env_add(&e, "SILA_FAILPOINTS=unarchive.ready=sleep:3000,"
                   "unarchive.served=sleep:1500");
    snprintf(log, sizeof(log), "%s/worker.log", tmp);
    w = it_start_worker(&e, log);

    /* ready: usable now, while the restore sleeps right after it */
    ck_assert_msg(wait_line(sublog, "\"event\":\"ready\"", 30000),
                  "no ready event, see %s", log);
    it_read_mf(st, id, m);
    ck_assert_int_eq(m->state, MF_RESTORING);
    ck_assert_int_ne(m->ready_at, 0);
    snprintf(key, sizeof(key), "active/%s/space-v1/space.json", id);
    ck_assert(present(st, key));
    snprintf(key, sizeof(key), "active/%s/sila.md", id);
    ck_assert(present(st, key));
    snprintf(key, sizeof(key), "active/%s/space-v1/secrets", id);
    ck_assert(present(st, key));
    {
        /* every ops file */
        char dir[700];
        snprintf(dir, sizeof(dir), "%s/space-v1/ops", src);
        snprintf(key, sizeof(key), "active/%s/space-v1/ops/", id);
        ck_assert_uint_eq(it_count(st, key), it_stats_of(dir).files);
        ck_assert_uint_ge(it_count(st, key), 40);
    }
    snprintf(key, sizeof(key), "active/%s/%s", id, cas);
    ck_assert(!present(st, key)); /* the blobs come later */
    ck_assert_int_eq(line_of(sublog, "\"event\":\"complete\""), 0);
    ck_assert(it_job_field(it_prefix_of(&e), job, "readyAt")[0] != '\0');
    ck_assert_int_ge(num(it_job_field(it_prefix_of(&e), job, "timeToReadyMs")),
                     1500);

    /* the app server writes: a var blob the restore has not reached, and a
     * new ops file */
    snprintf(key, sizeof(key), "active/%s/%s", id, var);
    {
        struct wk_err err;
        wk_err_clear(&err);
        ck_assert_int_eq(store_put(st, key, user_var, strlen(user_var), &err),
                         WK_OK);
        snprintf(ops_new, sizeof(ops_new),
                 "active/%s/space-v1/ops/ab/cdef/2026/12/07/"
                 "0123456789abcdef0123456789abcdef-m.jsonl",
                 id);
        ck_assert_int_eq(
            store_put(st, ops_new, user_ops, strlen(user_ops), &err), WK_OK);
    }

    /* and asks for a blob the restore has not reached either */
    it_redis("RPUSH %swant:%s %s", it_prefix_of(&e), id, cas);
    it_redis("EXPIRE %swant:%s 300", it_prefix_of(&e), id);
    snprintf(pat, sizeof(pat), "\"event\":\"served\".*\"path\":\"%s\"", cas);
    ck_assert_msg(wait_line(sublog, pat, 30000), "no served event, see %s",
                  log);
    ck_assert_int_eq(
        it_sh("grep -- '%s' '%s' | grep -q '\"found\":true'", pat, sublog), 0);
    /* read now, between ready and complete: the archive's bytes */
    snprintf(key, sizeof(key), "active/%s/%s", id, cas);
    text = it_get_text(st, key, &len);
    {
        char path[1100];
        FILE *f;
        char *want;
        size_t n;
        snprintf(path, sizeof(path), "%s/%s", src, cas);
        f = fopen(path, "rb");
        ck_assert_ptr_nonnull(f);
        want = malloc(len + 1);
        n = fread(want, 1, len + 1, f);
        fclose(f);
        ck_assert_uint_eq(n, len);
        ck_assert(memcmp(want, text, len) == 0);
        free(want);
    }
    free(text);
    it_read_mf(st, id, m);
    ck_assert_int_eq(m->state, MF_RESTORING);
    ck_assert_int_eq(line_of(sublog, "\"event\":\"complete\""), 0);

    /* complete at the end */
    ck_assert_str_eq(it_wait_job(it_prefix_of(&e), job, 120), "succeeded");
    ck_assert_msg(wait_line(sublog, "\"event\":\"complete\"", 5000), "see %s",
                  sublog);
    ck_assert_int_lt(line_of(sublog, "\"event\":\"ready\""),
                     line_of(sublog, pat));
    ck_assert_int_lt(line_of(sublog, pat),
                     line_of(sublog, "\"event\":\"complete\""));
    snprintf(pat, sizeof(pat),
             "\"event\":\"complete\",\"spaceId\":\"%s\",\"jobId\":\"%s\","
             "\"timeToCompleteMs\":",
             id, job);
    ck_assert_int_ne(line_of(sublog, pat), 0);
    it_read_mf(st, id, m);
    ck_assert_int_eq(m->state, MF_ACTIVE);
    ck_assert_int_eq(m->ready_at, 0);
    /* the user's writes survived */
    snprintf(key, sizeof(key), "active/%s/%s", id, var);
    text = it_get_text(st, key, &len);
    ck_assert_str_eq(text, user_var);
    free(text);
    text = it_get_text(st, ops_new, &len);
    ck_assert_str_eq(text, user_ops);
    free(text);
    ck_assert_ptr_nonnull(strstr(it_job_field(it_prefix_of(&e), job, "result"),
                                 "\"keptUserWrites\":1"));
    ck_assert_int_ge(
        num(it_job_field(it_prefix_of(&e), job, "timeToCompleteMs")),
        num(it_job_field(it_prefix_of(&e), job, "timeToReadyMs")));
    fprintf(stderr, "it_ready: result %s\n",
            it_job_field(it_prefix_of(&e), job, "result"));

    /* stats: the percentiles of this minute's restore */
    snprintf(out, sizeof(out), "%s/stats.json", tmp);
    ck_assert_int_eq(it_cli(&e, "stats", job, sizeof(job), out), 0);
    ck_assert_int_eq(
        it_sh("python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); "
              "r=s[\"timeToReady\"][\"5m\"]; c=s[\"timeToComplete\"][\"5m\"]; "
              "assert r[\"count\"]==1 and r[\"p50Ms\"]>=1500 and "
              "r[\"p95Ms\"]==r[\"p50Ms\"], r; "
              "assert c[\"count\"]==1 and c[\"p95Ms\"]>=r[\"p95Ms\"]+3000, c' "
              "'%s'",
              out),
        0);
    it_stop(sub);
    ck_assert_int_eq(it_stop(w), 0);
    store_free(st);
    free(m);
}
END_TEST

/* Flip one byte in the data of the archive's last entry (a blob): its CRC
 * fails once the restore is past ready. */
static void corrupt_last_entry(struct store *st, const char *archive_key,
                               const char *tmp, struct wk_buf *orig)
{
    char path[700], cmd[1200], off[32] = "";
    struct wk_buf bad;
    struct wk_err err;
    FILE *p;
    unsigned long long at;

    snprintf(path, sizeof(path), "%s/archive.zip", tmp);
    it_download(st, archive_key, path);
    snprintf(
        cmd, sizeof(cmd),
        "python3 -c 'import zipfile,struct,sys; z=zipfile.ZipFile(sys."
        "argv[1]); i=max(z.infolist(), key=lambda i: i.header_offset); "
        "f=open(sys.argv[1],\"rb\"); f.seek(i.header_offset); h=f.read(30);"
        " n,x=struct.unpack(\"<HH\", h[26:30]); "
        "print(i.header_offset+30+n+x+i.compress_size//2)' '%s'",
        path);
    p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_nonnull(fgets(off, sizeof(off), p));
    pclose(p);
    at = strtoull(off, NULL, 10);
    wk_buf_init(orig, 1u << 30);
    wk_buf_init(&bad, 1u << 30);
    wk_err_clear(&err);
    ck_assert_int_eq(store_get_all(st, archive_key, orig, &err), WK_OK);
    ck_assert_uint_lt(at, orig->len);
    ck_assert_int_eq(wk_buf_append(&bad, orig->data, orig->len, &err), WK_OK);
    bad.data[at] ^= 0x5a;
    ck_assert_int_eq(store_put(st, archive_key, bad.data, bad.len, &err),
                     WK_OK);
    wk_buf_release(&bad);
}

START_TEST(test_it_ready_failure_after_ready_keeps_and_next_run_completes)
{
    char id[33], tmp[512], src[600], log[600], out[600], job[200], url[128];
    char sublog[600], args[300];
    struct it_env e;
    struct store *st = it_s3_store(NULL);
    struct mf *m = calloc(1, sizeof(*m));
    struct wk_buf orig;
    struct wk_err err;
    size_t n_after;
    pid_t w, sub;

    it_space_id(id);
    it_tmpdir("ready-fail", tmp, sizeof(tmp));
    s3_space(tmp, id, 93,
             "--ops-files 20 --blobs 8 --big-blobs 0 "
             "--var-blobs 2",
             src, sizeof(src));
    snprintf(url, sizeof(url), "s3://%s", it_env("WK_TEST_BUCKET"));
    it_env_init(&e, url, "ready-fail", NULL);
    archive_space(&e, id, tmp);
    it_read_mf(st, id, m);
    corrupt_last_entry(st, m->archive_key, tmp, &orig);

    snprintf(sublog, sizeof(sublog), "%s/space-events.txt", tmp);
    sub = subscribe(&e, sublog);
    snprintf(log, sizeof(log), "%s/worker.log", tmp);
    w = it_start_worker(&e, log);
    snprintf(out, sizeof(out), "%s/out-1", tmp);
    snprintf(args, sizeof(args), "enqueue unarchive '%s' --wait", id);
    ck_assert_int_ne(it_cli(&e, args, job, sizeof(job), out), 0);
    ck_assert_str_eq(it_wait_job(it_prefix_of(&e), job, 60), "failed");
    ck_assert_msg(wait_line(sublog, "\"event\":\"failed\"", 5000), "see %s",
                  sublog);
    ck_assert_int_lt(line_of(sublog, "\"event\":\"ready\""),
                     line_of(sublog, "\"event\":\"failed\""));
    ck_assert_int_ne(line_of(sublog, "\"event\":\"ready\""), 0);
    /* kept: restoring + readyAt, and everything written stays */
    it_read_mf(st, id, m);
    ck_assert_int_eq(m->state, MF_RESTORING);
    ck_assert_int_ne(m->ready_at, 0);
    {
        char prefix[128];
        snprintf(prefix, sizeof(prefix), "active/%s/", id);
        n_after = it_count(st, prefix);
        ck_assert_uint_ge(n_after, 20 + 3); /* ops + the metadata at least */
    }
    ck_assert_int_eq(it_sh("grep -q unarchive.left_ready '%s'", log), 0);

    /* the archive mended: the next run reports ready at once, finishes */
    wk_err_clear(&err);
    ck_assert_int_eq(store_put(st,
                               m->restoring_archive[0] ? m->restoring_archive
                                                       : m->archive_key,
                               orig.data, orig.len, &err),
                     WK_OK);
    wk_buf_release(&orig);
    snprintf(out, sizeof(out), "%s/out-2", tmp);
    ck_assert_msg(it_cli(&e, args, job, sizeof(job), out) == 0, "see %s", out);
    it_read_mf(st, id, m);
    ck_assert_int_eq(m->state, MF_ACTIVE);
    ck_assert_int_eq(m->ready_at, 0);
    ck_assert_int_eq(it_sh("python3 '%s/tests/compare_prefix.py' '%s' "
                           "'active/%s/' '%s' --endpoint '%s' >/dev/null",
                           it_env("WK_SRCDIR"), it_env("WK_TEST_BUCKET"), id,
                           src, it_env("WK_TEST_S3_ENDPOINT")),
                     0);
    ck_assert_msg(wait_line(sublog, "\"event\":\"complete\"", 5000), "see %s",
                  sublog);
    it_stop(sub);
    ck_assert_int_eq(it_stop(w), 0);
    store_free(st);
    free(m);
}
END_TEST

Suite *it_ready_suite(void)
{
    Suite *s = suite_create("it_ready");
    TCase *tc = tcase_create("ready");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_it_ready_before_complete_want_and_user_write);
    tcase_add_test(
        tc, test_it_ready_failure_after_ready_keeps_and_next_run_completes);
    suite_add_tcase(s, tc);
    return s;
}
