/* The archive flow end to end: Redis job -> worker -> ZIP in the store ->
 * manifest -> active/ emptied; and its failure paths. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "jobs/manifest.h"
#include "tests/integration/it_flow.h"
#include "tests/integration/suites.h"

static int archive_wait(const struct it_env *e, const char *space_id, char *job,
                        size_t len, const char *out)
{
    char args[256];
    snprintf(args, sizeof(args), "enqueue archive '%s' --wait", space_id);
    return it_cli(e, args, job, len, out);
}

START_TEST(test_it_archive_s3_end_to_end)
{
    char id[33], tmp[512], src[600], log[600], out[600], job[200], url[128];
    char prefix[128];
    struct it_env e;
    struct store *st = it_s3_store(NULL);
    struct wk_err err;
    size_t pending = 99;
    pid_t w;

    it_space_id(id);
    it_tmpdir("s3e2e", tmp, sizeof(tmp));
    snprintf(src, sizeof(src), "%s/space", tmp);
    it_gen_space(src, id, 7, NULL);
    snprintf(prefix, sizeof(prefix), "active/%s/", id);
    it_upload_dir(src, prefix, NULL);
    ck_assert_uint_eq(it_count(st, prefix), it_stats_of(src).files);

    snprintf(url, sizeof(url), "s3://%s", it_env("WK_TEST_BUCKET"));
    it_env_init(&e, url, "s3e2e", NULL);
    snprintf(log, sizeof(log), "%s/worker.log", tmp);
    snprintf(out, sizeof(out), "%s/enqueue.out", tmp);
    w = it_start_worker(&e, log);
    int rc = archive_wait(&e, id, job, sizeof(job), out);
    ck_assert_msg(rc == 0, "enqueue --wait exited %d (see %s, %s)", rc, out,
                  log);
    ck_assert_int_eq(strlen(job), 32);
    ck_assert_str_eq(it_job_field(it_prefix_of(&e), job, "state"), "succeeded");
    ck_assert_str_eq(it_job_field(it_prefix_of(&e), job, "progress"), "100");
    ck_assert_str_eq(it_job_field(it_prefix_of(&e), job, "spaceId"), id);
    ck_assert_str_eq(it_job_field(it_prefix_of(&e), job, "type"), "archive");
    ck_assert_ptr_nonnull(strstr(it_job_field(it_prefix_of(&e), job, "result"),
                                 "\"archiveKey\""));
    /* the archive spans several 5 MiB parts */
    ck_assert_int_eq(it_sh("grep -q '\"event\":\"archive.started\"' '%s'", log),
                     0);

    it_verify_archived(st, id, src, tmp);
    /* big enough that the upload spanned at least three 5 MiB parts */
    ck_assert_int_eq(it_sh("test $(stat -c %%s '%s/archive.zip') -gt "
                           "10485760",
                           tmp),
                     0);
    wk_err_clear(&err);
    ck_assert_int_eq(store_count_pending(st, "archived/", &pending, &err),
                     WK_OK);
    ck_assert_uint_eq(pending, 0);

    /* archiving an archived space again is a no-op that says so */
    rc = archive_wait(&e, id, job, sizeof(job), out);
    ck_assert_int_eq(rc, 0);
    ck_assert_ptr_nonnull(
        strstr(it_job_field(it_prefix_of(&e), job, "result"), "\"noop\""));

    /* SIGTERM: the worker exits 0 */
    ck_assert_int_eq(it_stop(w), 0);
    /* no credential or signature in the log or the CLI's output */
    /* grep exits 1 for "no match" (2 would be an error) */
    ck_assert_int_eq(it_sh("grep -q 'Signature=\\|AWS4-HMAC\\|%s\\|%s' "
                           "'%s' '%s'",
                           IT_SECRET, IT_TOKEN, log, out),
                     1);
    ck_assert_int_eq(it_sh("redis-cli -p %s --scan --pattern '%s*' | while "
                           "read k; do redis-cli -p %s HGETALL \"$k\"; done "
                           "| grep -q '%s\\|%s'",
                           it_env("WK_TEST_REDIS_PORT"), it_prefix_of(&e),
                           it_env("WK_TEST_REDIS_PORT"), IT_SECRET, IT_TOKEN),
                     1);
    store_free(st);
}
END_TEST

START_TEST(test_it_archive_fs_end_to_end)
{
    char id[33], tmp[512], src[600], root[600], log[600], out[600], job[200];
    char url[700];
    struct it_env e;
    struct store *st;
    pid_t w;

    it_space_id(id);
    it_tmpdir("fse2e", tmp, sizeof(tmp));
    snprintf(src, sizeof(src), "%s/space", tmp);
    snprintf(root, sizeof(root), "%s/store", tmp);
    it_gen_space(src, id, 11, NULL);
    ck_assert_int_eq(it_sh("mkdir -p '%s/active/%s' && cp -a '%s/.' "
                           "'%s/active/%s/'",
                           root, id, src, root, id),
                     0);
    st = it_fs_store(root);
    snprintf(url, sizeof(url), "file://%s", root);
    it_env_init(&e, url, "fse2e", NULL);
    snprintf(log, sizeof(log), "%s/worker.log", tmp);
    snprintf(out, sizeof(out), "%s/enqueue.out", tmp);
    w = it_start_worker(&e, log);
    int rc = archive_wait(&e, id, job, sizeof(job), out);
    ck_assert_msg(rc == 0, "enqueue --wait exited %d (see %s, %s)", rc, out,
                  log);
    it_verify_archived(st, id, src, tmp);
    /* nothing but the archive and the manifest remains */
    ck_assert_int_eq(it_sh("test -z \"$(find '%s' -type f ! -path "
                           "'*/archived/%s/workspace-*.zip' ! -path "
                           "'*/metadata/%s.json')\"",
                           root, id, id),
                     0);
    ck_assert_int_eq(it_stop(w), 0);
    store_free(st);
}
END_TEST

/* XADD a raw entry as another service would (or a broken one). */
static void xadd_raw(const struct it_env *e, const char *id, const char *json)
{
    const char *r;
    if (id)
        r = it_redis("XADD %sjobs * id %s job %s", it_prefix_of(e), id, json);
    else
        r = it_redis("XADD %sjobs * job %s", it_prefix_of(e), json);
    ck_assert_msg(strncmp(r, "ERR", 3) != 0, "%s", r);
}

START_TEST(test_it_archive_bad_jobs_fail_worker_keeps_serving)
{
    static const struct {
        const char *id, *json, *expect;
    } cases[] = {
        { "bad-json", "{\"type\":\"archive\",", "not valid JSON" },
        { "bad-array", "[\"archive\"]", "must be a JSON object" },
        { "no-space", "{\"type\":\"archive\"}", "'spaceId' is missing" },
        { "dotdot", "{\"type\":\"archive\",\"spaceId\":\"..\"}", "spaceId" },
        { "traversal", "{\"type\":\"archive\",\"spaceId\":\"../etc\"}",
          "spaceId" },
        { "slash", "{\"type\":\"archive\",\"spaceId\":\"a/b\"}", "spaceId" },
        { "empty", "{\"type\":\"archive\",\"spaceId\":\"\"}", "spaceId" },
        { "nul", "{\"type\":\"archive\",\"spaceId\":\"a\\u0000b\"}",
          "spaceId" },
        { "type", "{\"type\":\"explode\",\"spaceId\":\"abc\"}",
          "unknown type 'explode'" },
        { "type-num", "{\"type\":3,\"spaceId\":\"abc\"}",
          "'type' must be a string" },
        { "mismatch",
          "{\"id\":\"other\",\"type\":\"archive\","
          "\"spaceId\":\"abc\"}",
          "does not match" },
        { "unknown-space",
          "{\"type\":\"archive\",\"spaceId\":\"nosuchspace0000\"}",
          "has no objects" },
    };
    char tmp[512], log[600], url[128], longid[300];
    struct it_env e;
    struct store *st = it_s3_store(NULL);
    pid_t w;

    it_tmpdir("badjobs", tmp, sizeof(tmp));
    snprintf(url, sizeof(url), "s3://%s", it_env("WK_TEST_BUCKET"));
    it_env_init(&e, url, "badjobs", NULL);
    snprintf(log, sizeof(log), "%s/worker.log", tmp);
    w = it_start_worker(&e, log);

    /* entries the worker cannot attribute still get consumed */
    xadd_raw(&e, NULL, "{\"type\":\"archive\",\"spaceId\":\"abc\"}");
    memset(longid, 'x', 200);
    longid[200] = '\0';
    xadd_raw(&e, longid, "{}");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        xadd_raw(&e, cases[i].id, cases[i].json);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *state = it_wait_job(it_prefix_of(&e), cases[i].id, 30);
        ck_assert_msg(strcmp(state, "failed") == 0, "%s: state %s", cases[i].id,
                      state);
        const char *msg = it_job_field(it_prefix_of(&e), cases[i].id, "error");
        ck_assert_msg(strstr(msg, cases[i].expect) != NULL,
                      "%s: error '%s' lacks '%s'", cases[i].id, msg,
                      cases[i].expect);
    }
    /* the log says why, as JSON with the job id */
    ck_assert_int_eq(it_sh("grep '\"event\":\"job.failed\"' '%s' | grep -q "
                           "'\"job_id\":\"traversal\"'",
                           log),
                     0);
    /* nothing was written for the unknown space */
    ck_assert_uint_eq(it_count(st, "metadata/nosuchspace0000"), 0);
    ck_assert_uint_eq(it_count(st, "archived/nosuchspace0000/"), 0);
    /* and the worker still serves: a good job after the bad ones */
    {
        char id[33], src[600], prefix[128], out[600], job[200];
        it_space_id(id);
        snprintf(src, sizeof(src), "%s/space", tmp);
        it_gen_space(src, id, 3,
                     "--ops-files 20 --blobs 5 --big-blobs 0 --var-blobs 2");
        snprintf(prefix, sizeof(prefix), "active/%s/", id);
        it_upload_dir(src, prefix, NULL);
        snprintf(out, sizeof(out), "%s/enqueue.out", tmp);
        ck_assert_int_eq(archive_wait(&e, id, job, sizeof(job), out), 0);
        it_verify_archived(st, id, src, tmp);
    }
    /* every entry, attributable or not, was acknowledged */
    ck_assert_int_eq(it_sh("test \"$(redis-cli -p %s XPENDING '%sjobs' "
                           "sila-workers | head -n 1)\" = 0",
                           it_env("WK_TEST_REDIS_PORT"), it_prefix_of(&e)),
                     0);
    ck_assert_int_eq(kill(w, 0), 0); /* alive all along */
    ck_assert_int_eq(it_stop(w), 0);
    store_free(st);
}
END_TEST

/* The S3 server dies mid-job: the job fails with a clear error, active/ is
 * intact, and the next run (server back) archives and leaves no multipart
 * upload open. */
START_TEST(test_it_archive_s3_down_mid_job)
{
    char id[33], tmp[512], src[600], log[600], out[600], job[200], url[128];
    char ctl[600], target[128], endpoint[128], prefix[128], cmd[4096];
    const char *ep = it_env("WK_TEST_S3_ENDPOINT");
    struct it_env e;
    struct store *st = it_s3_store(NULL);
    struct wk_err err;
    size_t pending = 99;
    int port = it_free_port(), n = 0;
    pid_t w, proxy;

    it_space_id(id);
    it_tmpdir("s3down", tmp, sizeof(tmp));
    snprintf(src, sizeof(src), "%s/space", tmp);
    it_gen_space(src, id, 5,
                 "--ops-files 100 --blobs 10 --big-blobs 8 "
                 "--big-size 6291456");
    snprintf(prefix, sizeof(prefix), "active/%s/", id);
    it_upload_dir(src, prefix, NULL);
    struct it_dir_stats ds = it_stats_of(src);

    snprintf(ctl, sizeof(ctl), "%s/proxy.ctl", tmp);
    snprintf(target, sizeof(target), "%s", strstr(ep, "//") + 2);
    proxy = it_start_proxy(port, target, ctl);
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", port);
    snprintf(url, sizeof(url), "s3://%s", it_env("WK_TEST_BUCKET"));
    it_env_init(&e, url, "s3down", endpoint);
    it_env_add(&e, "SILA_MAX_ATTEMPTS=1"); /* retries: see it_reliability */
    snprintf(log, sizeof(log), "%s/worker.log", tmp);
    w = it_start_worker(&e, log);

    n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, "env");
    for (int i = 0; e.vars[i]; i++)
        n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, " '%s'", e.vars[i]);
    snprintf(out, sizeof(out), "%s/enqueue.out", tmp);
    ck_assert_int_eq(it_sh("%s '%s' enqueue archive %s > '%s'", cmd,
                           it_env("WK_BIN"), id, out),
                     0);
    FILE *f = fopen(out, "r");
    ck_assert_ptr_nonnull(fgets(job, sizeof(job), f));
    fclose(f);
    job[strcspn(job, "\n")] = '\0';

    /* wait until bytes are flowing, then kill the server */
    for (int i = 0; i < 300; i++) {
        const char *bd = it_job_field(it_prefix_of(&e), job, "bytesDone");
        if (bd[0] && strcmp(bd, "0") != 0)
            break;
        ck_assert_str_ne(it_job_field(it_prefix_of(&e), job, "state"),
                         "succeeded");
        it_sleep_ms(20);
    }
    it_write_file(ctl, "down\n");
    ck_assert_str_eq(it_wait_job(it_prefix_of(&e), job, 120), "failed");
    const char *msg = it_job_field(it_prefix_of(&e), job, "error");
    ck_assert_msg(strlen(msg) > 10, "unclear error '%s'", msg);
    it_write_file(ctl, "up\n");

    /* nothing lost, nothing half-done */
    ck_assert_uint_eq(it_count(st, prefix), ds.files);
    /* "archiving" when the server was down for the revert too: readers
     * take it as active, and the next run carries on from it */
    ck_assert_str_eq(it_mf_state(st, id), "archiving");
    ck_assert_int_eq(kill(w, 0), 0);

    /* server back: the next run archives and cleans up the stale upload */
    ck_assert_int_eq(archive_wait(&e, id, job, sizeof(job), out), 0);
    it_verify_archived(st, id, src, tmp);
    snprintf(prefix, sizeof(prefix), "archived/%s/", id);
    wk_err_clear(&err);
    ck_assert_int_eq(store_count_pending(st, prefix, &pending, &err), WK_OK);
    ck_assert_uint_eq(pending, 0);

    ck_assert_int_eq(it_stop(w), 0);
    it_stop(proxy);
    store_free(st);
}
END_TEST

Suite *it_archive_suite(void)
{
    Suite *s = suite_create("it_archive");
    TCase *tc = tcase_create("archive");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_it_archive_s3_end_to_end);
    tcase_add_test(tc, test_it_archive_fs_end_to_end);
    tcase_add_test(tc, test_it_archive_bad_jobs_fail_worker_keeps_serving);
    tcase_add_test(tc, test_it_archive_s3_down_mid_job);
    suite_add_tcase(s, tc);
    return s;
}
