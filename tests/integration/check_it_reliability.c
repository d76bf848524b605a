/* Never lose a job: workers killed with -9, jobs longer than the lease,
 * retries and dead letters, per-space locks, SIGTERM hand-back (an
 * archive's multipart upload kept for the next worker), and a
 * Redis that restarts under a running job. Real processes throughout. */
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

/* A space big enough that archiving it at deflate level 9 keeps a core
 * busy for several seconds: big blobs of hex text (random content would
 * be stored, not deflated, and take no time). */
#define HEAVY_GEN \
    "--ops-files 60 --blobs 10 --big-blobs 3 --big-size 41943040 --big-text"

/* A file:// store under tmp holding one generated space in active/. */
static void fs_space(const char *tmp, const char *id, int seed, const char *gen,
                     char *src, size_t slen, char *root, size_t rlen)
{
    snprintf(src, slen, "%s/space", tmp);
    snprintf(root, rlen, "%s/store", tmp);
    it_gen_space(src, id, seed, gen);
    ck_assert_int_eq(it_sh("mkdir -p '%s/active/%s' && cp -a '%s/.' "
                           "'%s/active/%s/'",
                           root, id, src, root, id),
                     0);
}

static void enqueue(const struct it_env *e, const char *args, char *job,
                    size_t len, const char *out)
{
    ck_assert_int_eq(it_cli(e, args, job, len, out), 0);
    ck_assert_int_eq(strlen(job), 32);
}

/* Wait until the job is running. */
static void wait_running(const struct it_env *e, const char *job, int secs)
{
    for (int i = 0; i < secs * 20; i++) {
        if (strcmp(it_job_field(it_prefix_of(e), job, "state"), "running") == 0)
            return;
        it_sleep_ms(50);
    }
    ck_abort_msg("job %s never started", job);
}

START_TEST(test_it_rel_kill9_worker_job_taken_over)
{
    char id[33], tmp[512], src[600], root[600], loga[600], logb[600];
    char out[600], job[64], url[700], args[200];
    struct it_env e;
    struct store *st;
    pid_t a, b;

    it_space_id(id);
    it_tmpdir("rel-kill", tmp, sizeof(tmp));
    fs_space(tmp, id, 71, HEAVY_GEN, src, sizeof(src), root, sizeof(root));
    st = it_fs_store(root);
    snprintf(url, sizeof(url), "file://%s", root);
    it_env_init(&e, url, "rel-kill", NULL);
    it_env_add(&e, "SILA_LEASE=2s");
    it_env_add(&e, "SILA_DEFLATE_LEVEL=9");
    snprintf(loga, sizeof(loga), "%s/worker-a.log", tmp);
    snprintf(logb, sizeof(logb), "%s/worker-b.log", tmp);
    snprintf(out, sizeof(out), "%s/out", tmp);
    a = it_start_worker(&e, loga);
    snprintf(args, sizeof(args), "enqueue archive %s", id);
    enqueue(&e, args, job, sizeof(job), out);
    wait_running(&e, job, 30);
    b = it_start_worker(&e, logb);
    it_sleep_ms(700);
    kill(a, SIGKILL);
    waitpid(a, NULL, 0);

    ck_assert_str_eq(it_wait_job(it_prefix_of(&e), job, 120), "succeeded");
    ck_assert_int_eq(it_count_in("\"event\":\"job.reclaimed\"", logb), 1);
    ck_assert_str_eq(it_job_field(it_prefix_of(&e), job, "attempts"), "2");
    it_verify_archived(st, id, src, tmp);
    /* the dead worker's half-written archive was cleaned up */
    ck_assert_int_eq(it_sh("test -z \"$(find '%s' -name '*.partial*')\"", root),
                     0);
    ck_assert_int_eq(it_stop(b), 0);
    store_free(st);
}
END_TEST

/* A worker killed while uploading an archive to S3: the worker taking the
 * job over continues the same multipart upload (ListParts), sending only
 * the parts the server does not hold yet. */
START_TEST(test_it_rel_kill9_resumes_upload)
{
    char id[33], tmp[512], src[600], loga[600], logb[600], out[600];
    char job[64], url[128], args[200], prefix[128];
    struct it_env e;
    struct store *st = it_s3_store(NULL);
    struct wk_err err;
    size_t pending = 99;
    pid_t a, b;
    int uploaded = 0, reused;

    it_space_id(id);
    it_tmpdir("rel-resume", tmp, sizeof(tmp));
    snprintf(src, sizeof(src), "%s/space", tmp);
    it_gen_space(src, id, 77,
                 "--ops-files 40 --blobs 5 --big-blobs 6 --big-size 6291456");
    snprintf(prefix, sizeof(prefix), "active/%s/", id);
    it_upload_dir(src, prefix, NULL);
    snprintf(url, sizeof(url), "s3://%s", it_env("WK_TEST_BUCKET"));
    it_env_init(&e, url, "rel-resume", NULL);
    it_env_add(&e, "SILA_LEASE=2s");
    it_env_add(&e, "SILA_PART_SIZE=5MiB");
    it_env_add(&e, "SILA_PARTS_IN_FLIGHT=1");
    snprintf(loga, sizeof(loga), "%s/worker-a.log", tmp);
    snprintf(logb, sizeof(logb), "%s/worker-b.log", tmp);
    snprintf(out, sizeof(out), "%s/out", tmp);
    a = it_start_worker(&e, loga);
    snprintf(args, sizeof(args), "enqueue archive %s", id);
    enqueue(&e, args, job, sizeof(job), out);
    for (int i = 0; i < 1200 && uploaded < 3; i++) {
        uploaded = it_count_in("\"event\":\"s3.part.uploaded\"", loga);
        it_sleep_ms(25);
    }
    ck_assert_msg(uploaded >= 3, "no parts uploaded (see %s)", loga);
    kill(a, SIGKILL);
    waitpid(a, NULL, 0);
    uploaded = it_count_in("\"event\":\"s3.part.uploaded\"", loga);
    ck_assert_ptr_nonnull(
        strstr(it_job_field(it_prefix_of(&e), job, "upload"), "uploadId"));

    b = it_start_worker(&e, logb);
    ck_assert_str_eq(it_wait_job(it_prefix_of(&e), job, 120), "succeeded");
    ck_assert_int_eq(it_count_in("\"event\":\"job.reclaimed\"", logb), 1);
    ck_assert_int_eq(it_count_in("\"event\":\"archive.resuming\"", logb), 1);
    ck_assert_int_eq(it_count_in("\"event\":\"s3.upload.resumed\"", logb), 1);
    reused = it_count_in("\"event\":\"s3.part.reused\"", logb);
    /* (a part in flight can reach the server after the worker's last log
     * line: one at most, with one part in flight) */
    ck_assert_msg(reused >= 3 && reused <= uploaded + 1,
                  "%d parts reused of %d uploaded (see %s)", reused, uploaded,
                  logb);
    ck_assert_int_eq(it_count_in("\"event\":\"s3.upload.created\"", logb), 0);
    it_verify_archived(st, id, src, tmp);
    ck_assert_str_eq(it_job_field(it_prefix_of(&e), job, "upload"), "");
    snprintf(prefix, sizeof(prefix), "archived/%s/", id);
    wk_err_clear(&err);
    ck_assert_int_eq(store_count_pending(st, prefix, &pending, &err), WK_OK);
    ck_assert_uint_eq(pending, 0);
    printf("it_reliability: resumed upload: %d parts reused (%d logged as "
           "uploaded before the kill)\n",
           reused, uploaded);
    ck_assert_int_eq(it_stop(b), 0);
    store_free(st);
}
END_TEST

/* SIGTERM while an archive uploads to S3 (every batch slowed, so the
 * shutdown lands mid-upload): the run is handed back and keeps its
 * multipart upload and checkpoint (not aborted); the next worker resumes
 * that very upload (no new one), sends only the parts the server lacks,
 * and the archive verifies and restores. */
START_TEST(test_it_rel_sigterm_keeps_upload_for_next_worker)
{
    char id[33], tmp[512], src[600], loga[600], logb[600], out[600];
    char job[64], url[128], args[200], prefix[128], upload[1024];
    struct it_env e, ea;
    struct store *st = it_s3_store(NULL);
    struct wk_err err;
    size_t pending = 99;
    pid_t a, b;
    int uploaded = 0, reused, kept_parts = 0;

    it_space_id(id);
    it_tmpdir("rel-keep", tmp, sizeof(tmp));
    snprintf(src, sizeof(src), "%s/space", tmp);
    it_gen_space(src, id, 78,
                 "--ops-files 40 --blobs 5 --big-blobs 6 --big-size 6291456");
    snprintf(prefix, sizeof(prefix), "active/%s/", id);
    it_upload_dir(src, prefix, NULL);
    snprintf(url, sizeof(url), "s3://%s", it_env("WK_TEST_BUCKET"));
    it_env_init(&e, url, "rel-keep", NULL);
    it_env_add(&e, "SILA_PART_SIZE=5MiB");
    it_env_add(&e, "SILA_PARTS_IN_FLIGHT=1");
    it_env_add(&e, "SILA_SHUTDOWN_GRACE=0");
    ea = e;
    it_env_add(&ea, "SILA_FAILPOINTS=archive.batch=sleep:400@1+");
    snprintf(loga, sizeof(loga), "%s/worker-a.log", tmp);
    snprintf(logb, sizeof(logb), "%s/worker-b.log", tmp);
    snprintf(out, sizeof(out), "%s/out", tmp);
    a = it_start_worker(&ea, loga);
    snprintf(args, sizeof(args), "enqueue archive %s", id);
    enqueue(&e, args, job, sizeof(job), out);
    for (int i = 0; i < 2400 && uploaded < 3; i++) {
        uploaded = it_count_in("\"event\":\"s3.part.uploaded\"", loga);
        it_sleep_ms(25);
    }
    ck_assert_msg(uploaded >= 3, "no parts uploaded (see %s)", loga);
    ck_assert_int_eq(it_stop(a), 0); /* SIGTERM: handed back, exit 0 */
    uploaded = it_count_in("\"event\":\"s3.part.uploaded\"", loga);
    ck_assert_int_eq(it_count_in("\"event\":\"job.handed_back\"", loga), 1);
    ck_assert_int_eq(it_count_in("\"event\":\"s3.upload.kept\"", loga), 1);
    ck_assert_int_eq(it_count_in("\"event\":\"s3.upload.aborted\"", loga), 0);
    ck_assert_int_eq(it_count_in("\"event\":\"s3.upload.completed\"", loga), 0);
    ck_assert_str_eq(it_job_field(it_prefix_of(&e), job, "state"), "queued");
    snprintf(upload, sizeof(upload), "%s",
             it_job_field(it_prefix_of(&e), job, "upload"));
    ck_assert_ptr_nonnull(strstr(upload, "uploadId"));
    snprintf(prefix, sizeof(prefix), "archived/%s/", id);
    wk_err_clear(&err);
    ck_assert_int_eq(store_count_pending(st, prefix, &pending, &err), WK_OK);
    ck_assert_uint_eq(pending, 1); /* kept open for the next worker */
    {
        /* the server holds the parts uploaded before the shutdown */
        FILE *p;
        char cmd[1400];
        snprintf(
            cmd, sizeof(cmd),
            "python3 -c 'import boto3,json,sys; u=json.loads(sys.argv[1]); "
            "c=boto3.client(\"s3\",endpoint_url=sys.argv[2],"
            "region_name=\"us-east-1\",aws_access_key_id=\"x\","
            "aws_secret_access_key=\"x\"); "
            "r=c.list_parts(Bucket=sys.argv[3],Key=u[\"archiveKey\"],"
            "UploadId=u[\"uploadId\"]); print(len(r.get(\"Parts\",[])))' "
            "'%s' '%s' '%s'",
            upload, it_env("WK_TEST_S3_ENDPOINT"), it_env("WK_TEST_BUCKET"));
        p = popen(cmd, "r");
        ck_assert_ptr_nonnull(p);
        if (fscanf(p, "%d", &kept_parts) != 1)
            kept_parts = -1;
        pclose(p);
        ck_assert_msg(kept_parts >= uploaded && kept_parts <= uploaded + 1,
                      "%d parts on the server, %d logged as uploaded",
                      kept_parts, uploaded);
    }

    b = it_start_worker(&e, logb);
    ck_assert_str_eq(it_wait_job(it_prefix_of(&e), job, 120), "succeeded");
    ck_assert_int_eq(it_count_in("\"event\":\"archive.resuming\"", logb), 1);
    ck_assert_int_eq(it_count_in("\"event\":\"s3.upload.resumed\"", logb), 1);
    ck_assert_int_eq(it_count_in("\"event\":\"s3.upload.created\"", logb), 0);
    reused = it_count_in("\"event\":\"s3.part.reused\"", logb);
    /* every part the server held is taken as it is, not sent again */
    ck_assert_msg(reused == kept_parts,
                  "%d parts reused of %d held by the server (see %s)", reused,
                  kept_parts, logb);
    it_verify_archived(st, id, src, tmp);
    ck_assert_str_eq(it_job_field(it_prefix_of(&e), job, "upload"), "");
    ck_assert_str_eq(it_job_field(it_prefix_of(&e), job, "attempts"), "1");
    pending = 99;
    wk_err_clear(&err);
    ck_assert_int_eq(store_count_pending(st, prefix, &pending, &err), WK_OK);
    ck_assert_uint_eq(pending, 0);
    /* and it restores */
    snprintf(args, sizeof(args), "enqueue unarchive %s --wait", id);
    ck_assert_int_eq(it_cli(&e, args, job, sizeof(job), out), 0);
    ck_assert_int_eq(it_sh("python3 '%s/tests/compare_prefix.py' '%s' "
                           "'active/%s/' '%s' --endpoint '%s' >/dev/null",
                           it_env("WK_SRCDIR"), it_env("WK_TEST_BUCKET"), id,
                           src, it_env("WK_TEST_S3_ENDPOINT")),
                     0);
    printf("it_reliability: SIGTERM hand-back: %d parts kept on the server, "
           "%d reused by the next worker\n",
           kept_parts, reused);
    ck_assert_int_eq(it_stop(b), 0);
    store_free(st);
}
END_TEST

START_TEST(test_it_rel_long_job_keeps_its_lease)
{
    char id[33], tmp[512], src[600], root[600], loga[600], logb[600];
    char out[600], job[64], url[700], args[200];
    struct it_env e;
    struct store *st;
    pid_t a, b;
    int64_t t0;

    it_space_id(id);
    it_tmpdir("rel-lease", tmp, sizeof(tmp));
    fs_space(tmp, id, 72,
             "--ops-files 60 --blobs 10 --big-blobs 4 --big-size 41943040 "
             "--big-text",
             src, sizeof(src), root, sizeof(root));
    st = it_fs_store(root);
    snprintf(url, sizeof(url), "file://%s", root);
    it_env_init(&e, url, "rel-lease", NULL);
    it_env_add(&e, "SILA_LEASE=1s");
    it_env_add(&e, "SILA_DEFLATE_LEVEL=9");
    snprintf(loga, sizeof(loga), "%s/worker-a.log", tmp);
    snprintf(logb, sizeof(logb), "%s/worker-b.log", tmp);
    snprintf(out, sizeof(out), "%s/out", tmp);
    a = it_start_worker(&e, loga);
    b = it_start_worker(&e, logb);
    t0 = time(NULL);
    snprintf(args, sizeof(args), "enqueue archive %s --wait", id);
    ck_assert_int_eq(it_cli(&e, args, job, sizeof(job), out), 0);
    /* it ran well past the lease, compressing, and nobody took it over */
    (void)t0;
    ck_assert_int_eq(it_sh("grep -h '\"event\":\"job.succeeded\"' '%s' '%s' "
                           "| grep -o '\"duration_ms\":[0-9]*' | cut -d: -f2 "
                           "| awk '{ exit !($1 >= 2000) }'",
                           loga, logb),
                     0);
    ck_assert_int_eq(it_count_in("job.reclaimed", loga) +
                         it_count_in("job.reclaimed", logb),
                     0);
    ck_assert_int_eq(
        it_count_in("lease.lost", loga) + it_count_in("lease.lost", logb), 0);
    ck_assert_str_eq(it_job_field(it_prefix_of(&e), job, "attempts"), "1");
    it_verify_archived(st, id, src, tmp);
    ck_assert_int_eq(it_stop(a), 0);
    ck_assert_int_eq(it_stop(b), 0);
    store_free(st);
}
END_TEST

/* S3 behind the TCP proxy: down, the job retries; up, it succeeds. */
START_TEST(test_it_rel_retry_with_backoff_then_success)
{
    char id[33], tmp[512], src[600], log[600], out[600], job[64], url[128];
    char ctl[600], target[128], endpoint[128], prefix[128], args[200];
    const char *ep = it_env("WK_TEST_S3_ENDPOINT");
    struct it_env e;
    struct store *st = it_s3_store(NULL);
    pid_t w, proxy;

    it_space_id(id);
    it_tmpdir("rel-retry", tmp, sizeof(tmp));
    snprintf(src, sizeof(src), "%s/space", tmp);
    it_gen_space(src, id, 73, "--ops-files 40 --blobs 5 --big-blobs 1");
    snprintf(prefix, sizeof(prefix), "active/%s/", id);
    it_upload_dir(src, prefix, NULL);
    snprintf(ctl, sizeof(ctl), "%s/proxy.ctl", tmp);
    snprintf(target, sizeof(target), "%s", strstr(ep, "//") + 2);
    int pport = it_free_port();
    proxy = it_start_proxy(pport, target, ctl);
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", pport);
    snprintf(url, sizeof(url), "s3://%s", it_env("WK_TEST_BUCKET"));
    it_env_init(&e, url, "rel-retry", endpoint);
    it_env_add(&e, "SILA_MAX_ATTEMPTS=6");
    it_env_add(&e, "SILA_RETRY_BASE=500ms");
    it_env_add(&e, "SILA_RETRY_MAX=2s");
    snprintf(log, sizeof(log), "%s/worker.log", tmp);
    snprintf(out, sizeof(out), "%s/out", tmp);
    it_write_file(ctl, "down\n");
    it_sleep_ms(300); /* the proxy reads its control file every 50 ms */
    w = it_start_worker(&e, log);
    snprintf(args, sizeof(args), "enqueue archive %s", id);
    enqueue(&e, args, job, sizeof(job), out);
    for (int i = 0; i < 600; i++) {
        if (strcmp(it_job_field(it_prefix_of(&e), job, "state"), "retrying") ==
            0)
            break;
        it_sleep_ms(50);
    }
    ck_assert_str_eq(it_job_field(it_prefix_of(&e), job, "state"), "retrying");
    ck_assert(strlen(it_job_field(it_prefix_of(&e), job, "nextAttemptAt")) > 0);
    ck_assert(strlen(it_job_field(it_prefix_of(&e), job, "error")) > 0);
    it_write_file(ctl, "up\n");
    ck_assert_str_eq(it_wait_job(it_prefix_of(&e), job, 60), "succeeded");
    ck_assert_int_ge(
        strtol(it_job_field(it_prefix_of(&e), job, "attempts"), NULL, 10), 2);
    it_verify_archived(st, id, src, tmp);
    ck_assert_int_ge(it_count_in("\"event\":\"job.retrying\"", log), 1);
    ck_assert_int_eq(it_stop(w), 0);
    it_stop(proxy);
    store_free(st);
}
END_TEST

START_TEST(test_it_rel_dead_letter_then_retry_command)
{
    char id[33], tmp[512], src[600], log[600], out[600], job[64], url[128];
    char ctl[600], target[128], endpoint[128], prefix[128], args[200];
    char line[64];
    const char *ep = it_env("WK_TEST_S3_ENDPOINT");
    struct it_env e;
    struct store *st = it_s3_store(NULL);
    pid_t w, proxy;

    it_space_id(id);
    it_tmpdir("rel-dead", tmp, sizeof(tmp));
    snprintf(src, sizeof(src), "%s/space", tmp);
    it_gen_space(src, id, 74, "--ops-files 30 --blobs 5 --big-blobs 0");
    snprintf(prefix, sizeof(prefix), "active/%s/", id);
    it_upload_dir(src, prefix, NULL);
    snprintf(ctl, sizeof(ctl), "%s/proxy.ctl", tmp);
    snprintf(target, sizeof(target), "%s", strstr(ep, "//") + 2);
    int pport = it_free_port();
    proxy = it_start_proxy(pport, target, ctl);
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", pport);
    snprintf(url, sizeof(url), "s3://%s", it_env("WK_TEST_BUCKET"));
    it_env_init(&e, url, "rel-dead", endpoint);
    it_env_add(&e, "SILA_MAX_ATTEMPTS=2");
    it_env_add(&e, "SILA_RETRY_BASE=200ms");
    snprintf(log, sizeof(log), "%s/worker.log", tmp);
    snprintf(out, sizeof(out), "%s/out", tmp);
    it_write_file(ctl, "down\n");
    it_sleep_ms(300); /* the proxy reads its control file every 50 ms */
    w = it_start_worker(&e, log);
    snprintf(args, sizeof(args), "enqueue archive %s", id);
    enqueue(&e, args, job, sizeof(job), out);
    ck_assert_str_eq(it_wait_job(it_prefix_of(&e), job, 120), "failed");
    ck_assert_str_eq(it_job_field(it_prefix_of(&e), job, "attempts"), "2");
    ck_assert_str_eq(it_redis("XLEN %sjobs:dead", it_prefix_of(&e)), "1");
    /* the operator's view */
    ck_assert_int_eq(it_cli(&e, "jobs", line, sizeof(line), out), 0);
    ck_assert_int_eq(
        it_sh("grep -q '\"dead\":true,\"id\":\"%s\"' '%s'", job, out), 0);
    ck_assert_int_eq(it_sh("grep -q '\"id\":\"%s\",\"state\":\"failed\"' "
                           "'%s'",
                           job, out),
                     0);
    /* a job that is not failed cannot be retried */
    ck_assert_int_eq(it_cli(&e, "retry 0123456789abcdef0123456789abcdef", line,
                            sizeof(line), out),
                     2);
    /* server back: retry runs it again, with the same id */
    it_write_file(ctl, "up\n");
    snprintf(args, sizeof(args), "retry %s", job);
    ck_assert_int_eq(it_cli(&e, args, line, sizeof(line), out), 0);
    ck_assert_str_eq(it_wait_job(it_prefix_of(&e), job, 60), "succeeded");
    ck_assert_str_eq(it_redis("XLEN %sjobs:dead", it_prefix_of(&e)), "0");
    it_verify_archived(st, id, src, tmp);
    ck_assert_int_eq(it_stop(w), 0);
    it_stop(proxy);
    store_free(st);
}
END_TEST

/* Two jobs on one space never overlap: the second waits for the lock. */
START_TEST(test_it_rel_space_lock_serializes_jobs)
{
    char id[33], tmp[512], src[600], root[600], loga[600], logb[600];
    char out[600], a_job[64], u_job[64], url[700], args[200];
    struct it_env e;
    struct store *st;
    pid_t a, b;

    it_space_id(id);
    it_tmpdir("rel-lock", tmp, sizeof(tmp));
    fs_space(tmp, id, 75, HEAVY_GEN, src, sizeof(src), root, sizeof(root));
    st = it_fs_store(root);
    snprintf(url, sizeof(url), "file://%s", root);
    it_env_init(&e, url, "rel-lock", NULL);
    it_env_add(&e, "SILA_DEFLATE_LEVEL=9");
    snprintf(loga, sizeof(loga), "%s/worker-a.log", tmp);
    snprintf(logb, sizeof(logb), "%s/worker-b.log", tmp);
    snprintf(out, sizeof(out), "%s/out", tmp);
    a = it_start_worker(&e, loga);
    b = it_start_worker(&e, logb);
    snprintf(args, sizeof(args), "enqueue archive %s", id);
    enqueue(&e, args, a_job, sizeof(a_job), out);
    wait_running(&e, a_job, 30);
    /* a restore of the same space while it is being archived: it must
     * wait (and then find the space archived), not fail or overlap */
    snprintf(args, sizeof(args), "enqueue unarchive %s", id);
    enqueue(&e, args, u_job, sizeof(u_job), out);
    ck_assert_str_eq(it_wait_job(it_prefix_of(&e), a_job, 120), "succeeded");
    ck_assert_str_eq(it_wait_job(it_prefix_of(&e), u_job, 120), "succeeded");
    char a_end[64];
    snprintf(a_end, sizeof(a_end), "%s",
             it_job_field(it_prefix_of(&e), a_job, "finishedAt"));
    ck_assert_str_lt(a_end, it_job_field(it_prefix_of(&e), u_job, "startedAt"));
    ck_assert_int_ge(it_count_in("job.space_busy", loga) +
                         it_count_in("job.space_busy", logb),
                     1);
    ck_assert_str_eq(it_redis("EXISTS %slock:%s", it_prefix_of(&e), id), "0");
    ck_assert_int_eq(
        it_sh("diff -r '%s' '%s/active/%s' >/dev/null", src, root, id), 0);
    ck_assert_int_eq(it_stop(a), 0);
    ck_assert_int_eq(it_stop(b), 0);
    store_free(st);
}
END_TEST

/* SIGTERM with a short grace: the job is handed back, the worker exits 0,
 * another worker finishes the job. */
START_TEST(test_it_rel_sigterm_hands_job_back)
{
    char id[33], tmp[512], src[600], root[600], loga[600], logb[600];
    char out[600], job[64], url[700], args[200];
    struct it_env e;
    struct store *st;
    pid_t a, b;

    it_space_id(id);
    it_tmpdir("rel-term", tmp, sizeof(tmp));
    fs_space(tmp, id, 76, HEAVY_GEN, src, sizeof(src), root, sizeof(root));
    st = it_fs_store(root);
    snprintf(url, sizeof(url), "file://%s", root);
    it_env_init(&e, url, "rel-term", NULL);
    it_env_add(&e, "SILA_DEFLATE_LEVEL=9");
    it_env_add(&e, "SILA_SHUTDOWN_GRACE=300ms");
    snprintf(loga, sizeof(loga), "%s/worker-a.log", tmp);
    snprintf(logb, sizeof(logb), "%s/worker-b.log", tmp);
    snprintf(out, sizeof(out), "%s/out", tmp);
    a = it_start_worker(&e, loga);
    snprintf(args, sizeof(args), "enqueue archive %s", id);
    enqueue(&e, args, job, sizeof(job), out);
    wait_running(&e, job, 30);
    it_sleep_ms(300);
    ck_assert_int_eq(it_stop(a), 0); /* SIGTERM: exit 0 */
    ck_assert_int_eq(it_count_in("\"event\":\"job.handed_back\"", loga), 1);
    ck_assert_str_eq(it_job_field(it_prefix_of(&e), job, "state"), "queued");
    /* nothing half-done was left: space active, no archive, no temp */
    ck_assert_int_eq(it_sh("test -z \"$(find '%s' -name '*.partial*')\" && "
                           "test -z \"$(ls '%s/archived/%s' 2>/dev/null)\"",
                           root, root, id),
                     0);
    ck_assert_str_eq(it_mf_state(st, id), "active");
    b = it_start_worker(&e, logb);
    ck_assert_str_eq(it_wait_job(it_prefix_of(&e), job, 120), "succeeded");
    it_verify_archived(st, id, src, tmp);
    ck_assert_int_eq(it_stop(b), 0);
    store_free(st);
}
END_TEST

/* Redis killed and started again (empty) while a job runs: the worker
 * reconnects with backoff, the job's data ends up right, and the worker
 * serves the next job. */
START_TEST(test_it_rel_redis_restart_mid_job)
{
    char id[33], tmp[512], src[600], root[600], log[600], rlog[600];
    char out[600], job[64], url[700], args[200], port[16], redis_url[128];
    const char *argv[12];
    struct it_env e;
    struct store *st;
    pid_t w, srv;

    it_space_id(id);
    it_tmpdir("rel-redis", tmp, sizeof(tmp));
    fs_space(tmp, id, 77, HEAVY_GEN, src, sizeof(src), root, sizeof(root));
    st = it_fs_store(root);
    snprintf(port, sizeof(port), "%d", it_free_port());
    argv[0] = "redis-server";
    argv[1] = "--port";
    argv[2] = port;
    argv[3] = "--bind";
    argv[4] = "127.0.0.1";
    argv[5] = "--save";
    argv[6] = "";
    argv[7] = "--appendonly";
    argv[8] = "no";
    argv[9] = "--dir";
    argv[10] = tmp;
    argv[11] = NULL;
    snprintf(rlog, sizeof(rlog), "%s/redis.log", tmp);
    srv = it_spawn_prog(argv, rlog);
    for (int i = 0; i < 100 && it_sh("redis-cli -p %s ping 2>/dev/null | "
                                     "grep -q PONG",
                                     port);
         i++)
        it_sleep_ms(50);
    snprintf(url, sizeof(url), "file://%s", root);
    it_env_init(&e, url, "rel-redis", NULL);
    snprintf(redis_url, sizeof(redis_url), "REDIS_URL=redis://127.0.0.1:%s/0",
             port);
    it_env_add(&e, redis_url); /* the later REDIS_URL wins */
    it_env_add(&e, "SILA_DEFLATE_LEVEL=9");
    snprintf(log, sizeof(log), "%s/worker.log", tmp);
    snprintf(out, sizeof(out), "%s/out", tmp);
    w = it_start_worker(&e, log);
    snprintf(args, sizeof(args), "enqueue archive %s", id);
    enqueue(&e, args, job, sizeof(job), out);
    /* mid-job: running, and past its first step (the manifest says
     * "archiving"); a Redis that vanishes before that step leaves the job
     * fenced there, with nothing done and nothing to finish */
    for (int i = 0; i < 600; i++) {
        char mk[800];
        snprintf(mk, sizeof(mk), "%s/metadata/%s.json", root, id);
        if (it_sh("redis-cli -p %s HGET %sjob:%s state | grep -q running", port,
                  it_prefix_of(&e), job) == 0 &&
            access(mk, F_OK) == 0)
            break;
        it_sleep_ms(50);
    }
    kill(srv, SIGKILL);
    waitpid(srv, NULL, 0);
    it_sleep_ms(1500);
    srv = it_spawn_prog(argv, rlog);
    /* the job's work completes: the space ends archived and verified */
    for (int i = 0; i < 1200; i++) {
        char mk[800];
        snprintf(mk, sizeof(mk), "%s/metadata/%s.json", root, id);
        if (access(mk, F_OK) == 0 &&
            it_sh("test -z \"$(ls -A '%s/active/%s' 2>/dev/null)\"", root,
                  id) == 0)
            break;
        it_sleep_ms(100);
    }
    it_verify_archived(st, id, src, tmp);
    /* and the worker serves the next job on the new server */
    snprintf(args, sizeof(args), "enqueue unarchive %s --wait", id);
    ck_assert_int_eq(it_cli(&e, args, job, sizeof(job), out), 0);
    ck_assert_int_eq(
        it_sh("diff -r '%s' '%s/active/%s' >/dev/null", src, root, id), 0);
    /* reconnects backed off: not a busy loop */
    ck_assert_int_lt(it_count_in("queue.connect_failed", log), 40);
    ck_assert_int_eq(it_stop(w), 0);
    it_stop(srv);
    store_free(st);
}
END_TEST

Suite *it_reliability_suite(void)
{
    Suite *s = suite_create("it_reliability");
    TCase *tc = tcase_create("reliability");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_it_rel_kill9_worker_job_taken_over);
    tcase_add_test(tc, test_it_rel_kill9_resumes_upload);
    tcase_add_test(tc, test_it_rel_long_job_keeps_its_lease);
    tcase_add_test(tc, test_it_rel_retry_with_backoff_then_success);
    tcase_add_test(tc, test_it_rel_dead_letter_then_retry_command);
    tcase_add_test(tc, test_it_rel_space_lock_serializes_jobs);
    tcase_add_test(tc, test_it_rel_sigterm_hands_job_back);
    tcase_add_test(tc, test_it_rel_sigterm_keeps_upload_for_next_worker);
    tcase_add_test(tc, test_it_rel_redis_restart_mid_job);
    suite_add_tcase(s, tc);
    return s;
}
