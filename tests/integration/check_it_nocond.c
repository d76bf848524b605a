/* An S3 server without conditional writes (issue 17), on moto with the
 * worker's features pinned (SILA_S3_FEATURES) to what Swift's s3api has:
 * no conditional PUT, no conditional DELETE, versioning. Manifests are then
 * written fenced through Redis (record under the space lock, PUT, read
 * back, confirm), originals are deleted by version id, and restored
 * objects go without If-None-Match. Checked: archive and urgent restore
 * end whole; a user's write during the archive's delete survives as the
 * current version; a worker paused past its lease between its record and
 * its PUT, then resumed, writes the newer manifest back and stops; the
 * start log says how manifests are written and deletes go.
 * Real redis-server and moto; every process is stopped by PID. */
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

/* Swift 2.30's s3api, less what it lacks (tests/swift/features.py). */
#define PIN_SWIFT     "SILA_S3_FEATURES=versioning,part-copy,list-parts,delete-md5"
#define PIN_BARE      "SILA_S3_FEATURES=part-copy,list-parts,delete-md5"
#define LEASE_ENV     "SILA_LEASE=2s"
#define PAST_LEASE_MS 2600

struct nc {
    char id[33], tmp[512], src[600], log1[600], log2[600], out[600];
    char bucket[64], url[128], prefix[128], fp[160];
    struct it_env e, e1;
    struct store *st;
};

static struct store *bucket_store(const char *bucket)
{
    struct store_opts o;
    struct store *st = NULL;
    struct wk_err err;
    char url[128];

    wk_err_clear(&err);
    ck_assert_int_eq(store_opts_from_env(&o, &err), WK_OK);
    snprintf(o.endpoint, sizeof(o.endpoint), "%s",
             it_env("WK_TEST_S3_ENDPOINT"));
    snprintf(url, sizeof(url), "s3://%s", bucket);
    ck_assert_msg(store_open_url(url, &o, &st, &err) == WK_OK, "%s", err.msg);
    return st;
}

static void nc_init(struct nc *f, const char *tag, bool versioned,
                    const char *pin, const char *gen, const char *failpoints,
                    bool short_lease)
{
    it_space_id(f->id);
    it_tmpdir(tag, f->tmp, sizeof(f->tmp));
    snprintf(f->bucket, sizeof(f->bucket), "nc-%.8s-%d", f->id, (int)getpid());
    ck_assert_int_eq(
        it_sh("python3 -c \"import boto3; s = boto3.client('s3', "
              "endpoint_url='%s'); b = '%s'; s.create_bucket(Bucket=b)%s\"",
              it_env("WK_TEST_S3_ENDPOINT"), f->bucket,
              versioned ? "; s.put_bucket_versioning(Bucket=b, "
                          "VersioningConfiguration={'Status': 'Enabled'})"
                        : ""),
        0);
    f->st = bucket_store(f->bucket);
    snprintf(f->src, sizeof(f->src), "%s/space", f->tmp);
    it_gen_space(f->src, f->id, 17, gen);
    snprintf(f->prefix, sizeof(f->prefix), "active/%s/", f->id);
    {
        /* (it_upload_dir writes to WK_TEST_BUCKET) */
        char up[900];
        snprintf(up, sizeof(up),
                 "python3 '%s/tests/upload_dir.py' '%s' '%s' '%s' "
                 "--endpoint '%s' >/dev/null",
                 it_env("WK_SRCDIR"), f->src, f->bucket, f->prefix,
                 it_env("WK_TEST_S3_ENDPOINT"));
        ck_assert_int_eq(it_sh("%s", up), 0);
    }
    snprintf(f->url, sizeof(f->url), "s3://%s", f->bucket);
    it_env_init(&f->e, f->url, tag, NULL);
    it_env_add(&f->e, pin);
    if (short_lease)
        it_env_add(&f->e, LEASE_ENV);
    f->e1 = f->e;
    snprintf(f->fp, sizeof(f->fp), "SILA_FAILPOINTS=%s",
             failpoints ? failpoints : "");
    if (failpoints)
        it_env_add(&f->e1, f->fp);
    snprintf(f->log1, sizeof(f->log1), "%s/worker-1.log", f->tmp);
    snprintf(f->log2, sizeof(f->log2), "%s/worker-2.log", f->tmp);
    snprintf(f->out, sizeof(f->out), "%s/out", f->tmp);
}

/* Versions (and delete markers) under prefix in f's bucket. */
static int versions_under(const struct nc *f, const char *prefix)
{
    char cmd[900];
    int n = -1;
    FILE *p;
    snprintf(cmd, sizeof(cmd),
             "python3 -c \"import boto3; s = boto3.client('s3', "
             "endpoint_url='%s'); r = s.list_object_versions(Bucket='%s', "
             "Prefix='%s'); print(len(r.get('Versions', [])) + "
             "len(r.get('DeleteMarkers', [])))\"",
             it_env("WK_TEST_S3_ENDPOINT"), f->bucket, prefix);
    p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    if (fscanf(p, "%d", &n) != 1)
        n = -1;
    pclose(p);
    return n;
}

/* The manifest in S3 is byte for byte the record in Redis. */
static void assert_mf_is_record(const struct nc *f)
{
    size_t len = 0;
    char key[128];
    char *text;
    const char *rec;

    snprintf(key, sizeof(key), "metadata/%s.json", f->id);
    text = it_get_text(f->st, key, &len);
    rec = it_redis("HGET %smf:%s body", it_prefix_of(&f->e), f->id);
    ck_assert_msg(strlen(rec) == len && memcmp(rec, text, len) == 0,
                  "manifest in S3 is not the recorded one:\n%s\nvs\n%s", text,
                  rec);
    free(text);
}

/* Archive, then urgent restore, without conditional writes. */
START_TEST(test_it_nocond_archive_unarchive)
{
    struct nc f;
    char args[200], job[64];
    pid_t w;

    nc_init(&f, "nc-flow", true, PIN_SWIFT,
            "--ops-files 40 --blobs 12 --big-blobs 1 --var-blobs 3", NULL,
            false);
    w = it_start_worker(&f.e, f.log1);
    snprintf(args, sizeof(args), "enqueue archive %s --wait", f.id);
    ck_assert_int_eq(it_cli(&f.e, args, job, sizeof(job), f.out), 0);
    ck_assert_str_eq(it_job_field(it_prefix_of(&f.e), job, "state"),
                     "succeeded");
    it_verify_archived(f.st, f.id, f.src, f.tmp);
    assert_mf_is_record(&f);
    /* deleted by version id: no old version, no delete marker is left */
    ck_assert_int_eq(versions_under(&f, f.prefix), 0);
    ck_assert_int_eq(
        it_count_in("\"event\":\"s3.features\".*\"source\":"
                    "\"SILA_S3_FEATURES\".*\"deletes\":\"by version "
                    "id\"",
                    f.log1),
        1);

    snprintf(args, sizeof(args), "enqueue unarchive %s --urgent --wait", f.id);
    ck_assert_int_eq(it_cli(&f.e, args, job, sizeof(job), f.out), 0);
    ck_assert_str_eq(it_job_field(it_prefix_of(&f.e), job, "state"),
                     "succeeded");
    ck_assert_uint_eq(it_count(f.st, f.prefix), it_stats_of(f.src).files);
    ck_assert_str_eq(it_mf_state(f.st, f.id), "active");
    assert_mf_is_record(&f);
    ck_assert_int_eq(it_stop(w), 0);
    store_free(f.st);
}
END_TEST

/* A user writes one object while the archive deletes: that write stays
 * the current version (the archived version alone is deleted). */
START_TEST(test_it_nocond_user_write_during_delete)
{
    struct nc f;
    char args[200], job[64], key[256];
    const char *text = "written by the user during the delete\n";
    struct wk_err err;
    size_t len = 0;
    char *got;
    pid_t w;

    nc_init(&f, "nc-write", true, PIN_SWIFT,
            "--ops-files 20 --blobs 4 --big-blobs 0",
            "archive.delete_batch=stop", false);
    snprintf(key, sizeof(key), "active/%s/sila.md", f.id);
    w = it_start_worker(&f.e1, f.log1);
    snprintf(args, sizeof(args), "enqueue archive %s", f.id);
    ck_assert_int_eq(it_cli(&f.e, args, job, sizeof(job), f.out), 0);
    ck_assert_msg(it_wait_in_log("\"event\":\"failpoint.hit\"", f.log1, 60),
                  "no failpoint hit (see %s)", f.log1);
    it_sleep_ms(300);
    wk_err_clear(&err);
    ck_assert_int_eq(store_put(f.st, key, text, strlen(text), &err), WK_OK);
    kill(w, SIGCONT);
    ck_assert_str_eq(it_wait_job(it_prefix_of(&f.e), job, 60), "succeeded");
    got = it_get_text(f.st, key, &len);
    ck_assert_msg(len == strlen(text) && memcmp(got, text, len) == 0,
                  "the user's write was lost: '%s'", got);
    free(got);
    /* and it is the only object left (the rest was archived) */
    ck_assert_uint_eq(it_count(f.st, f.prefix), 1);
    ck_assert_int_eq(it_stop(w), 0);
    store_free(f.st);
}
END_TEST

/* Worker 1 records its "archiving" manifest and is paused before the PUT,
 * past its lease; worker 2 takes the job over and archives the space.
 * Resumed, worker 1 PUTs its stale manifest, finds a newer record, writes
 * that one back and stops: the space stays archived, the manifest is the
 * newest, and worker 1 records no outcome. */
START_TEST(test_it_nocond_stale_manifest_writer)
{
    struct nc f;
    char args[200], job[64];
    pid_t w1, w2;

    nc_init(&f, "nc-stale", true, PIN_SWIFT,
            "--ops-files 20 --blobs 4 --big-blobs 0", "manifest.recorded=stop",
            true);
    w1 = it_start_worker(&f.e1, f.log1);
    snprintf(args, sizeof(args), "enqueue archive %s", f.id);
    ck_assert_int_eq(it_cli(&f.e, args, job, sizeof(job), f.out), 0);
    ck_assert_msg(it_wait_in_log("\"event\":\"failpoint.hit\"", f.log1, 60),
                  "no failpoint hit (see %s)", f.log1);
    it_sleep_ms(PAST_LEASE_MS);
    w2 = it_start_worker(&f.e, f.log2);
    ck_assert_str_eq(it_wait_job(it_prefix_of(&f.e), job, 90), "succeeded");
    it_verify_archived(f.st, f.id, f.src, f.tmp);

    kill(w1, SIGCONT);
    ck_assert_msg(
        it_wait_in_log("\"event\":\"manifest.written_back\"", f.log1, 20),
        "the stale worker did not write the newer manifest back "
        "(see %s)",
        f.log1);
    ck_assert_msg(it_wait_in_log("\"event\":\"job.fenced\"", f.log1, 20),
                  "the stale worker was not fenced (see %s)", f.log1);
    ck_assert_int_eq(it_count_in("\"event\":\"job.succeeded\"", f.log1), 0);
    ck_assert_int_eq(it_count_in("\"event\":\"job.failed\"", f.log1), 0);
    ck_assert_int_eq(it_stop(w1), 0);
    ck_assert_int_eq(it_stop(w2), 0);
    it_verify_archived(f.st, f.id, f.src, f.tmp);
    assert_mf_is_record(&f);
    store_free(f.st);
}
END_TEST

/* The same, but worker 1 is killed right after its stale PUT, before it
 * can write the newer manifest back: S3 then holds its older "archiving"
 * manifest. The next job of the space finds the confirmed record newer,
 * writes it back and fails with a conflict; run again, the restore ends
 * whole. */
START_TEST(test_it_nocond_stale_writer_killed)
{
    struct nc f;
    char args[200], job[64];
    pid_t w1, w2;
    int st = 0;

    nc_init(&f, "nc-kill", true, PIN_SWIFT,
            "--ops-files 20 --blobs 4 --big-blobs 0",
            "manifest.recorded=stop,manifest.put=kill", true);
    w1 = it_start_worker(&f.e1, f.log1);
    snprintf(args, sizeof(args), "enqueue archive %s", f.id);
    ck_assert_int_eq(it_cli(&f.e, args, job, sizeof(job), f.out), 0);
    ck_assert_msg(it_wait_in_log("\"event\":\"failpoint.hit\"", f.log1, 60),
                  "no failpoint hit (see %s)", f.log1);
    it_sleep_ms(PAST_LEASE_MS);
    w2 = it_start_worker(&f.e, f.log2);
    ck_assert_str_eq(it_wait_job(it_prefix_of(&f.e), job, 90), "succeeded");
    it_verify_archived(f.st, f.id, f.src, f.tmp);

    kill(w1, SIGCONT);
    ck_assert_int_eq(waitpid(w1, &st, 0), w1);
    ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    /* the hole: S3 holds the stale manifest */
    ck_assert_str_eq(it_mf_state(f.st, f.id), "archiving");

    snprintf(args, sizeof(args), "enqueue unarchive %s --urgent", f.id);
    ck_assert_int_eq(it_cli(&f.e, args, job, sizeof(job), f.out), 0);
    ck_assert_str_eq(it_wait_job(it_prefix_of(&f.e), job, 60), "failed");
    ck_assert_int_eq(it_count_in("\"event\":\"manifest.repaired\"", f.log2), 1);
    ck_assert_str_eq(it_mf_state(f.st, f.id), "archived");
    assert_mf_is_record(&f);

    snprintf(args, sizeof(args), "enqueue unarchive %s --urgent", f.id);
    ck_assert_int_eq(it_cli(&f.e, args, job, sizeof(job), f.out), 0);
    ck_assert_str_eq(it_wait_job(it_prefix_of(&f.e), job, 60), "succeeded");
    ck_assert_uint_eq(it_count(f.st, f.prefix), it_stats_of(f.src).files);
    ck_assert_str_eq(it_mf_state(f.st, f.id), "active");
    ck_assert_int_eq(it_stop(w2), 0);
    store_free(f.st);
}
END_TEST

/* Without versioning either, the worker's start log names the window
 * of unconditional deletes (PROTOCOL.md). */
START_TEST(test_it_nocond_window_logged)
{
    struct nc f;
    pid_t w;

    nc_init(&f, "nc-bare", false, PIN_BARE, "--ops-files 5 --blobs 2", NULL,
            false);
    w = it_start_worker(&f.e, f.log1);
    ck_assert(
        it_wait_in_log("\"event\":\"s3.deletes_unconditional\"", f.log1, 20));
    ck_assert_int_eq(
        it_count_in("\"event\":\"s3.features\".*\"manifest_writes\":"
                    "\"fenced through Redis\"",
                    f.log1),
        1);
    ck_assert_int_eq(it_stop(w), 0);
    store_free(f.st);
}
END_TEST

/* The worker's own probe, unpinned, on moto: conditional PUT yes,
 * conditional DeleteObjects no (moto ignores the ETag), versioning as the
 * bucket is set; nothing is left under metadata/.sila-probe/, no version
 * either. */
static void probe_on(bool versioned, const char *want)
{
    struct nc f;
    char pat[300];
    pid_t w;

    nc_init(&f, versioned ? "nc-probe-v" : "nc-probe", versioned,
            "SILA_S3_FEATURES=auto", "--ops-files 2 --blobs 1", NULL, false);
    w = it_start_worker(&f.e, f.log1);
    ck_assert_msg(it_wait_in_log("\"event\":\"s3.features\"", f.log1, 30),
                  "no s3.features in %s", f.log1);
    snprintf(pat, sizeof(pat),
             "\"event\":\"s3.features\".*\"source\":\"probe\".*"
             "\"features\":\"%s\"",
             want);
    ck_assert_msg(it_count_in(pat, f.log1) == 1, "not '%s' (see %s)", want,
                  f.log1);
    ck_assert_int_eq(it_stop(w), 0);
    ck_assert_uint_eq(it_count(f.st, "metadata/"), 0);
    ck_assert_int_eq(versions_under(&f, "metadata/"), 0);
    store_free(f.st);
}

START_TEST(test_it_nocond_probe_moto)
{
    probe_on(false, "cond-put,part-copy,list-parts,delete-md5");
    probe_on(true, "cond-put,versioning,part-copy,list-parts,delete-md5");
}
END_TEST

Suite *it_nocond_suite(void)
{
    Suite *s = suite_create("it_nocond");
    TCase *tc = tcase_create("nocond");

    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_it_nocond_probe_moto);
    tcase_add_test(tc, test_it_nocond_archive_unarchive);
    tcase_add_test(tc, test_it_nocond_user_write_during_delete);
    tcase_add_test(tc, test_it_nocond_stale_manifest_writer);
    tcase_add_test(tc, test_it_nocond_stale_writer_killed);
    tcase_add_test(tc, test_it_nocond_window_logged);
    suite_add_tcase(s, tc);
    return s;
}
