/* Migrate end to end with a real worker: a folder built like a real Sila
 * space (tests/gen_space.py) to active/ (compared object by object with
 * boto3) and to an archive (it_verify_archived), from another bucket
 * prefix, a run killed with -9 and resumed by another worker, and the
 * refusals (a corrupt CAS blob, a folder that is not a space). Sources
 * never change: a checksum listing before and after is compared.
 *
 * The CLI cannot enqueue migrate jobs yet: they are added the way
 * docs/PROTOCOL.md shows for any client (HSET of the status hash, XADD). */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "jobs/job_migrate.h"
#include "jobs/manifest.h"
#include "tests/integration/it_flow.h"
#include "tests/integration/suites.h"

/* Enqueue a migrate job as another service would. */
static void enqueue_migrate(const struct it_env *e, const char *job,
                            const char *space_id, const char *source,
                            const char *extra)
{
    char json[2048];
    const char *r;

    snprintf(json, sizeof(json),
             "{\"id\":\"%s\",\"type\":\"migrate\",\"spaceId\":\"%s\","
             "\"source\":\"%s\"%s}",
             job, space_id, source, extra ? extra : "");
    r = it_redis("HSET %sjob:%s state queued type migrate spaceId %s "
                 "progress 0 spec %s",
                 it_prefix_of(e), job, space_id, json);
    ck_assert_msg(strncmp(r, "ERR", 3) != 0, "%s", r);
    r = it_redis("XADD %sjobs MAXLEN ~ 100000 * id %s job %s", it_prefix_of(e),
                 job, json);
    ck_assert_msg(strncmp(r, "ERR", 3) != 0, "%s", r);
}

/* Enqueue, wait for the end; returns the final state. */
static const char *migrate_wait(const struct it_env *e, const char *job,
                                const char *space_id, const char *source,
                                const char *extra)
{
    enqueue_migrate(e, job, space_id, source, extra);
    return it_wait_job(it_prefix_of(e), job, 240);
}

static const char *result_of(const struct it_env *e, const char *job)
{
    return it_job_field(it_prefix_of(e), job, "result");
}

/* An integer field of the job's result JSON, -1 when absent. */
static long long result_int(const struct it_env *e, const char *job,
                            const char *field)
{
    char pat[64];
    const char *res = result_of(e, job), *p;
    snprintf(pat, sizeof(pat), "\"%s\":", field);
    p = strstr(res, pat);
    if (!p)
        return -1;
    return strtoll(p + strlen(pat), NULL, 10);
}

/* Every file of dir with its size, mtime and SHA-256, into out. */
static void dir_digest(const char *dir, const char *out)
{
    ck_assert_int_eq(it_sh("cd '%s' && { find . -type f -printf '%%P %%s "
                           "%%T@\\n' | LC_ALL=C sort; find . -type f -print0 "
                           "| LC_ALL=C sort -z | xargs -0 sha256sum; } > '%s'",
                           dir, out),
                     0);
}

static void assert_unchanged(const char *dir, const char *before,
                             const char *tmp)
{
    char after[700];
    snprintf(after, sizeof(after), "%s/digest.after", tmp);
    dir_digest(dir, after);
    ck_assert_msg(it_sh("cmp -s '%s' '%s'", before, after) == 0,
                  "source %s changed", dir);
}

static int compare_active(const char *id, const char *src)
{
    return it_sh("python3 '%s/tests/compare_prefix.py' '%s' 'active/%s/' "
                 "'%s' --endpoint '%s' >/dev/null",
                 it_env("WK_SRCDIR"), it_env("WK_TEST_BUCKET"), id, src,
                 it_env("WK_TEST_S3_ENDPOINT"));
}

static void job_name(char *buf, size_t len, const char *what, int n)
{
    snprintf(buf, len, "mig-%d-%s-%d", (int)getpid(), what, n);
}

/* First line of a shell command's output. */
static void sh_line(char *buf, size_t len, const char *cmd)
{
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    buf[0] = '\0';
    if (fgets(buf, (int)len, p))
        buf[strcspn(buf, "\n")] = '\0';
    pclose(p);
}

START_TEST(test_it_migrate_folder_to_active_and_archived)
{
    char id[33], id2[33], tmp[512], src[600], src2[600], url[700], url2[700];
    char log[600], before[700], before2[700], store_url[128], job[128];
    struct it_env e;
    struct store *st = it_s3_store(NULL);
    struct it_dir_stats ds;
    pid_t w;

    it_space_id(id);
    it_space_id(id2);
    it_tmpdir("mig-folder", tmp, sizeof(tmp));
    /* as a Sila server keeps them: data/spaces/<id>/ */
    snprintf(src, sizeof(src), "%s/data/spaces/%s", tmp, id);
    snprintf(src2, sizeof(src2), "%s/data/spaces/%s", tmp, id2);
    it_gen_space(src, id, 21, "--unknown-files 2");
    it_gen_space(src2, id2, 22, NULL);
    snprintf(before, sizeof(before), "%s/digest.1", tmp);
    snprintf(before2, sizeof(before2), "%s/digest.2", tmp);
    dir_digest(src, before);
    dir_digest(src2, before2);
    snprintf(url, sizeof(url), "file://%s", src);
    snprintf(url2, sizeof(url2), "file://%s/", src2);

    snprintf(store_url, sizeof(store_url), "s3://%s", it_env("WK_TEST_BUCKET"));
    it_env_init(&e, store_url, "mig-folder", NULL);
    it_env_add(&e, "SILA_GET_CHUNK=1MiB"); /* big blobs take the stream */
    snprintf(log, sizeof(log), "%s/worker.log", tmp);
    w = it_start_worker(&e, log);

    /* to active/: every file, byte for byte */
    job_name(job, sizeof(job), "active", 1);
    ck_assert_msg(strcmp(migrate_wait(&e, job, id, url, NULL), "succeeded") ==
                      0,
                  "%s: %s (see %s)", job,
                  it_job_field(it_prefix_of(&e), job, "error"), log);
    ds = it_stats_of(src);
    ck_assert_int_eq(result_int(&e, job, "files"), (long long)ds.files);
    ck_assert_int_eq(result_int(&e, job, "bytes"), (long long)ds.bytes);
    ck_assert_int_eq(result_int(&e, job, "skipped"), 0);
    ck_assert_str_eq(it_job_field(it_prefix_of(&e), job, "progress"), "100");
    ck_assert_int_eq(compare_active(id, src), 0);
    /* the second run skips everything */
    job_name(job, sizeof(job), "active", 2);
    ck_assert_str_eq(migrate_wait(&e, job, id, url, NULL), "succeeded");
    ck_assert_int_eq(result_int(&e, job, "files"), 0);
    ck_assert_int_eq(result_int(&e, job, "skipped"), (long long)ds.files);
    ck_assert_int_eq(compare_active(id, src), 0);
    /* an archived migrate of an active space: reported, not done */
    job_name(job, sizeof(job), "active", 3);
    ck_assert_str_eq(migrate_wait(&e, job, id, url, ",\"target\":\"archived\""),
                     "succeeded");
    ck_assert_ptr_nonnull(strstr(result_of(&e, job), "\"skipped\":\"exists\""));

    /* to an archive, without an active copy */
    job_name(job, sizeof(job), "archived", 1);
    ck_assert_msg(
        strcmp(migrate_wait(&e, job, id2, url2, ",\"target\":\"archived\""),
               "succeeded") == 0,
        "%s: %s (see %s)", job, it_job_field(it_prefix_of(&e), job, "error"),
        log);
    ck_assert_ptr_nonnull(strstr(result_of(&e, job), "\"manifestKey\""));
    ck_assert_ptr_nonnull(strstr(result_of(&e, job), "\"archiveKey\""));
    it_verify_archived(st, id2, src2, tmp);
    job_name(job, sizeof(job), "archived", 2);
    ck_assert_str_eq(
        migrate_wait(&e, job, id2, url2, ",\"target\":\"archived\""),
        "succeeded");
    ck_assert_ptr_nonnull(strstr(result_of(&e, job),
                                 "\"skipped\":\"exists\",\"state\":"
                                 "\"archived\""));

    assert_unchanged(src, before, tmp);
    assert_unchanged(src2, before2, tmp);
    ck_assert_int_eq(it_stop(w), 0);
    store_free(st);
}
END_TEST

START_TEST(test_it_migrate_from_bucket_prefix)
{
    char id[33], id2[33], tmp[512], src[600], src2[600], url[256], url2[256];
    char log[600], store_url[128], job[128], legacy[128];
    struct it_env e;
    struct store *st = it_s3_store(NULL);
    struct it_dir_stats ds;
    pid_t w;

    it_space_id(id);
    it_space_id(id2);
    it_tmpdir("mig-s3", tmp, sizeof(tmp));
    snprintf(src, sizeof(src), "%s/%s", tmp, id);
    snprintf(src2, sizeof(src2), "%s/%s", tmp, id2);
    it_gen_space(src, id, 31, "--ops-files 120 --blobs 20 --big-blobs 1");
    it_gen_space(src2, id2, 32, "--ops-files 60 --blobs 10 --big-blobs 1");
    /* another prefix of the bucket, as an older deployment left it */
    snprintf(legacy, sizeof(legacy), "legacy-%d/spaces/%s/", (int)getpid(), id);
    it_upload_dir(src, legacy, NULL);
    snprintf(legacy, sizeof(legacy), "legacy-%d/spaces/%s/", (int)getpid(),
             id2);
    it_upload_dir(src2, legacy, NULL);
    snprintf(url, sizeof(url), "s3://%s/legacy-%d/spaces/%s",
             it_env("WK_TEST_BUCKET"), (int)getpid(), id);
    snprintf(url2, sizeof(url2), "s3://%s/legacy-%d/spaces/%s",
             it_env("WK_TEST_BUCKET"), (int)getpid(), id2);

    /* migrate-all's listing of the prefix: both folders are spaces */
    {
        struct job_migrate_list l;
        struct wk_err err;
        char root[256];
        snprintf(root, sizeof(root), "s3://%s/legacy-%d/spaces/",
                 it_env("WK_TEST_BUCKET"), (int)getpid());
        wk_err_clear(&err);
        ck_assert_msg(job_migrate_list_spaces(root, NULL, &l, &err) == WK_OK,
                      "%s", err.msg);
        ck_assert_uint_eq(l.n, 2);
        ck_assert_uint_eq(l.ok, 2);
        for (size_t i = 0; i < l.n; i++)
            ck_assert_str_eq(l.v[i].source,
                             strcmp(l.v[i].space_id, id) == 0 ? url : url2);
        job_migrate_list_release(&l);
    }

    snprintf(store_url, sizeof(store_url), "s3://%s", it_env("WK_TEST_BUCKET"));
    it_env_init(&e, store_url, "mig-s3", NULL);
    it_env_add(&e, "SILA_GET_CHUNK=1MiB");
    snprintf(log, sizeof(log), "%s/worker.log", tmp);
    w = it_start_worker(&e, log);

    job_name(job, sizeof(job), "s3active", 1);
    ck_assert_msg(strcmp(migrate_wait(&e, job, id, url, NULL), "succeeded") ==
                      0,
                  "%s: %s (see %s)", job,
                  it_job_field(it_prefix_of(&e), job, "error"), log);
    ds = it_stats_of(src);
    ck_assert_int_eq(result_int(&e, job, "files"), (long long)ds.files);
    ck_assert_int_eq(compare_active(id, src), 0);

    job_name(job, sizeof(job), "s3archived", 1);
    ck_assert_msg(
        strcmp(migrate_wait(&e, job, id2, url2, ",\"target\":\"archived\""),
               "succeeded") == 0,
        "%s: %s (see %s)", job, it_job_field(it_prefix_of(&e), job, "error"),
        log);
    it_verify_archived(st, id2, src2, tmp);

    /* the source prefixes are intact */
    snprintf(legacy, sizeof(legacy), "legacy-%d/spaces/%s/", (int)getpid(), id);
    ck_assert_int_eq(it_sh("python3 '%s/tests/compare_prefix.py' '%s' '%s' "
                           "'%s' --endpoint '%s' >/dev/null",
                           it_env("WK_SRCDIR"), it_env("WK_TEST_BUCKET"),
                           legacy, src, it_env("WK_TEST_S3_ENDPOINT")),
                     0);
    snprintf(legacy, sizeof(legacy), "legacy-%d/spaces/%s/", (int)getpid(),
             id2);
    ck_assert_uint_eq(it_count(st, legacy), it_stats_of(src2).files);

    ck_assert_int_eq(it_stop(w), 0);
    store_free(st);
}
END_TEST

/* A worker killed with -9 in the middle of a copy; another one takes the
 * job over once the lease expires and resumes: what was copied is
 * skipped, the rest copied, the result is the whole space. */
START_TEST(test_it_migrate_resumes_after_kill)
{
    char id[33], tmp[512], src[600], url[700], loga[600], logb[600];
    char before[700], store_url[128], job[128], prefix[128];
    struct it_env ea, eb;
    struct store *st = it_s3_store(NULL);
    struct it_dir_stats ds;
    struct wk_err err;
    size_t pending = 99;
    long long files_done = 0, skipped, copied;
    pid_t a, b;

    it_space_id(id);
    it_tmpdir("mig-kill", tmp, sizeof(tmp));
    snprintf(src, sizeof(src), "%s/%s", tmp, id);
    it_gen_space(src, id, 41, "--ops-files 600 --blobs 40 --big-blobs 2");
    snprintf(before, sizeof(before), "%s/digest", tmp);
    dir_digest(src, before);
    snprintf(url, sizeof(url), "file://%s", src);
    ds = it_stats_of(src);

    snprintf(store_url, sizeof(store_url), "s3://%s", it_env("WK_TEST_BUCKET"));
    /* worker a copies slowly (small batches): there is time to kill it */
    it_env_init(&ea, store_url, "mig-kill", NULL);
    it_env_add(&ea, "SILA_LEASE=2s");
    it_env_add(&ea, "SILA_FETCH_OBJECTS=4");
    it_env_init(&eb, store_url, "mig-kill", NULL);
    it_env_add(&eb, "SILA_LEASE=2s");
    snprintf(loga, sizeof(loga), "%s/worker-a.log", tmp);
    snprintf(logb, sizeof(logb), "%s/worker-b.log", tmp);
    a = it_start_worker(&ea, loga);
    job_name(job, sizeof(job), "kill", 1);
    enqueue_migrate(&ea, job, id, url, NULL);
    for (int i = 0; i < 600 && files_done < 40; i++) {
        const char *fd = it_job_field(it_prefix_of(&ea), job, "filesDone");
        files_done = fd[0] ? strtoll(fd, NULL, 10) : 0;
        ck_assert_str_ne(it_job_field(it_prefix_of(&ea), job, "state"),
                         "succeeded");
        it_sleep_ms(50);
    }
    ck_assert_int_ge(files_done, 40);
    kill(a, SIGKILL);
    waitpid(a, NULL, 0);
    snprintf(prefix, sizeof(prefix), "active/%s/", id);
    ck_assert_uint_lt(it_count(st, prefix), ds.files);
    /* the partial copy is no space yet: space.json comes last */
    snprintf(prefix, sizeof(prefix), "active/%s/space-v1/space.json", id);
    ck_assert_uint_eq(it_count(st, prefix), 0);

    b = it_start_worker(&eb, logb);
    ck_assert_msg(
        strcmp(it_wait_job(it_prefix_of(&eb), job, 240), "succeeded") == 0,
        "%s (see %s)", it_job_field(it_prefix_of(&eb), job, "error"), logb);
    ck_assert_str_eq(it_job_field(it_prefix_of(&eb), job, "attempts"), "2");
    skipped = result_int(&eb, job, "skipped");
    copied = result_int(&eb, job, "files");
    ck_assert_int_ge(skipped, files_done);
    ck_assert_int_gt(copied, 0);
    ck_assert_int_eq(skipped + copied, (long long)ds.files);
    ck_assert_int_eq(compare_active(id, src), 0);
    snprintf(prefix, sizeof(prefix), "active/%s/", id);
    wk_err_clear(&err);
    ck_assert_int_eq(store_count_pending(st, prefix, &pending, &err), WK_OK);
    ck_assert_uint_eq(pending, 0);
    assert_unchanged(src, before, tmp);
    ck_assert_int_eq(it_stop(b), 0);
    store_free(st);
}
END_TEST

START_TEST(test_it_migrate_refusals)
{
    char id[33], id2[33], tmp[512], src[600], bad[600], bad2[600], url[700];
    char plain[600], log[600], before[700], store_url[128], job[128];
    char blob[600], cmd[1024], key[800];
    const char *msg;
    struct it_env e;
    struct store *st = it_s3_store(NULL);
    pid_t w;

    it_space_id(id);
    it_space_id(id2);
    it_tmpdir("mig-refuse", tmp, sizeof(tmp));
    snprintf(src, sizeof(src), "%s/good", tmp);
    snprintf(bad, sizeof(bad), "%s/bad", tmp);
    snprintf(bad2, sizeof(bad2), "%s/bad2", tmp);
    it_gen_space(src, id, 51, "--ops-files 40 --blobs 12 --big-blobs 0");
    /* a copy with one byte of one CAS blob flipped */
    ck_assert_int_eq(it_sh("cp -a '%s' '%s'", src, bad), 0);
    snprintf(cmd, sizeof(cmd),
             "cd '%s' && find space-v1/files/static/sha256 -type f | "
             "LC_ALL=C sort | sed -n 5p",
             bad);
    sh_line(blob, sizeof(blob), cmd);
    ck_assert_uint_gt(strlen(blob), 40);
    ck_assert_int_eq(it_sh("python3 -c 'import sys; p = sys.argv[1]; "
                           "b = bytearray(open(p, \"rb\").read()); "
                           "b[len(b) // 2] ^= 1; open(p, \"wb\").write(b)' "
                           "'%s/%s'",
                           bad, blob),
                     0);
    it_gen_space(bad2, id2, 52, "--ops-files 40 --blobs 12 --big-blobs 0");
    ck_assert_int_eq(it_sh("cd '%s' && f=$(find space-v1/files/static/sha256 "
                           "-type f | LC_ALL=C sort | head -n 1) && "
                           "printf x >> \"$f\"",
                           bad2),
                     0);
    snprintf(before, sizeof(before), "%s/digest", tmp);
    dir_digest(bad, before);
    /* a folder that is not a space */
    snprintf(plain, sizeof(plain), "%s/plain", tmp);
    ck_assert_int_eq(it_sh("mkdir -p '%s/docs' && echo hi > '%s/docs/a.txt' "
                           "&& echo x > '%s/sila.md'",
                           plain, plain, plain),
                     0);

    snprintf(store_url, sizeof(store_url), "s3://%s", it_env("WK_TEST_BUCKET"));
    it_env_init(&e, store_url, "mig-refuse", NULL);
    snprintf(log, sizeof(log), "%s/worker.log", tmp);
    w = it_start_worker(&e, log);

    /* corrupt blob, to active/: fails at once naming it */
    snprintf(url, sizeof(url), "file://%s", bad);
    job_name(job, sizeof(job), "cas", 1);
    ck_assert_str_eq(migrate_wait(&e, job, id, url, NULL), "failed");
    msg = it_job_field(it_prefix_of(&e), job, "error");
    ck_assert_msg(strstr(msg, blob) && strstr(msg, "not its name"), "%s", msg);
    ck_assert_str_eq(it_job_field(it_prefix_of(&e), job, "attempts"), "1");
    snprintf(key, sizeof(key), "active/%s/%s", id, blob);
    ck_assert_uint_eq(it_count(st, key), 0);
    snprintf(key, sizeof(key), "active/%s/space-v1/space.json", id);
    ck_assert_uint_eq(it_count(st, key), 0);
    assert_unchanged(bad, before, tmp);

    /* corrupt blob, to an archive: no archive, no manifest */
    snprintf(url, sizeof(url), "file://%s", bad2);
    job_name(job, sizeof(job), "cas", 2);
    ck_assert_str_eq(
        migrate_wait(&e, job, id2, url, ",\"target\":\"archived\""), "failed");
    msg = it_job_field(it_prefix_of(&e), job, "error");
    ck_assert_msg(strstr(msg, "space-v1/files/static/sha256/") &&
                      strstr(msg, "not its name"),
                  "%s", msg);
    snprintf(key, sizeof(key), "archived/%s/", id2);
    ck_assert_uint_eq(it_count(st, key), 0);
    snprintf(key, sizeof(key), "metadata/%s.json", id2);
    ck_assert_uint_eq(it_count(st, key), 0);

    /* not a space */
    snprintf(url, sizeof(url), "file://%s", plain);
    job_name(job, sizeof(job), "plain", 1);
    ck_assert_str_eq(migrate_wait(&e, job, id, url, NULL), "failed");
    msg = it_job_field(it_prefix_of(&e), job, "error");
    ck_assert_msg(strstr(msg, "is not a Sila space: it has no space-v1/"), "%s",
                  msg);

    /* another space's folder */
    snprintf(url, sizeof(url), "file://%s", src);
    job_name(job, sizeof(job), "mismatch", 1);
    ck_assert_str_eq(migrate_wait(&e, job, id2, url, NULL), "failed");
    msg = it_job_field(it_prefix_of(&e), job, "error");
    ck_assert_msg(strstr(msg, "not the job's spaceId"), "%s", msg);

    /* a bad URL: refused before any storage call */
    job_name(job, sizeof(job), "url", 1);
    snprintf(url, sizeof(url), "file://%s/../good", tmp);
    ck_assert_str_eq(migrate_wait(&e, job, id, url, NULL), "failed");
    msg = it_job_field(it_prefix_of(&e), job, "error");
    ck_assert_msg(strstr(msg, "job field 'source'"), "%s", msg);

    /* the good folder still migrates (and the worker kept serving) */
    snprintf(url, sizeof(url), "file://%s", src);
    job_name(job, sizeof(job), "good", 1);
    ck_assert_str_eq(migrate_wait(&e, job, id, url, ",\"overwrite\":true"),
                     "succeeded");
    ck_assert_int_eq(compare_active(id, src), 0);
    ck_assert_int_eq(it_stop(w), 0);
    store_free(st);
}
END_TEST

/* The command line: a Sila server's data/spaces folder brought in with
 * migrate-all (and one space with enqueue migrate, id from the source). */
START_TEST(test_it_migrate_cli_migrate_all)
{
    char tmp[512], data[600], log[600], out[600], url[128], args[900];
    char ids[3][33], src[700], before[700], line[64];
    struct it_env e;
    struct store *st = it_s3_store(NULL);
    pid_t w;

    it_tmpdir("mig-cli", tmp, sizeof(tmp));
    snprintf(data, sizeof(data), "%s/data/spaces", tmp);
    for (int i = 0; i < 3; i++) {
        it_space_id(ids[i]);
        snprintf(src, sizeof(src), "%s/%s", data, ids[i]);
        it_gen_space(src, ids[i], 90 + i,
                     "--ops-files 15 --blobs 3 --big-blobs 0");
    }
    /* a folder that is not a Sila space */
    ck_assert_int_eq(it_sh("mkdir -p '%s/not-a-space' && echo hi > "
                           "'%s/not-a-space/readme.txt'",
                           data, data),
                     0);
    snprintf(before, sizeof(before), "%s/digest.before", tmp);
    dir_digest(data, before);
    snprintf(url, sizeof(url), "s3://%s", it_env("WK_TEST_BUCKET"));
    it_env_init(&e, url, "mig-cli", NULL);
    snprintf(log, sizeof(log), "%s/worker.log", tmp);
    snprintf(out, sizeof(out), "%s/out", tmp);
    w = it_start_worker(&e, log);

    /* refused folder: exit 1, but every real space is migrated */
    snprintf(args, sizeof(args),
             "migrate-all --from 'file://%s' --target archived --wait", data);
    ck_assert_int_eq(it_cli(&e, args, line, sizeof(line), out), 1);
    ck_assert_int_eq(it_sh("grep -q '\"folder\":\"not-a-space\",\"error\"' "
                           "'%s'",
                           out),
                     0);
    ck_assert_int_eq(it_sh("grep -q '\"folders\":4,\"enqueued\":3,"
                           "\"existingJobs\":0,\"refused\":1' '%s'",
                           out),
                     0);
    ck_assert_int_eq(
        it_sh("grep -q 'progress 3/3 jobs done, 0 failed' '%s'", out), 0);
    for (int i = 0; i < 3; i++) {
        char vt[700];
        snprintf(src, sizeof(src), "%s/%s", data, ids[i]);
        snprintf(vt, sizeof(vt), "%s/verify-%d", tmp, i);
        ck_assert_int_eq(it_sh("mkdir -p '%s'", vt), 0);
        it_verify_archived(st, ids[i], src, vt);
    }
    assert_unchanged(data, before, tmp);

    /* one space, its id read from the source's space.json */
    char id4[33];
    it_space_id(id4);
    snprintf(src, sizeof(src), "%s/extra/%s", tmp, id4);
    it_gen_space(src, id4, 99, "--ops-files 10 --blobs 2 --big-blobs 0");
    snprintf(args, sizeof(args), "enqueue migrate --source 'file://%s' --wait",
             src);
    ck_assert_int_eq(it_cli(&e, args, line, sizeof(line), out), 0);
    ck_assert_int_eq(compare_active(id4, src), 0);
    /* bad usage */
    ck_assert_int_eq(it_cli(&e, "enqueue migrate --source 'file://rel/x'", line,
                            sizeof(line), out),
                     2);
    ck_assert_int_eq(it_cli(&e, "enqueue archive abc --source file:///x", line,
                            sizeof(line), out),
                     2);
    ck_assert_int_eq(it_stop(w), 0);
    store_free(st);
}
END_TEST

/* A source bucket behind its own endpoint (SILA_SOURCE_S3_ENDPOINT): the
 * source is read there, not through the store's endpoint. The endpoint is
 * a proxy in front of the same server, so switching it off proves which
 * one the job uses. */
START_TEST(test_it_migrate_source_with_its_own_endpoint)
{
    char id[33], tmp[512], src[600], url[256], log[600], store_url[128];
    char ctl[600], target[128], src_ep[160], legacy[160], job[128];
    const char *ep = it_env("WK_TEST_S3_ENDPOINT");
    struct it_env e;
    int port = it_free_port();
    pid_t w, proxy;

    it_space_id(id);
    it_tmpdir("mig-ep", tmp, sizeof(tmp));
    snprintf(src, sizeof(src), "%s/%s", tmp, id);
    it_gen_space(src, id, 41, "--ops-files 20 --blobs 4 --big-blobs 0");
    snprintf(legacy, sizeof(legacy), "other-%d/%s/", (int)getpid(), id);
    it_upload_dir(src, legacy, NULL);
    snprintf(url, sizeof(url), "s3://%s/other-%d/%s", it_env("WK_TEST_BUCKET"),
             (int)getpid(), id);
    snprintf(ctl, sizeof(ctl), "%s/proxy.ctl", tmp);
    snprintf(target, sizeof(target), "%s", strstr(ep, "//") + 2);
    proxy = it_start_proxy(port, target, ctl);
    snprintf(src_ep, sizeof(src_ep),
             "SILA_SOURCE_S3_ENDPOINT=http://"
             "127.0.0.1:%d",
             port);
    snprintf(store_url, sizeof(store_url), "s3://%s", it_env("WK_TEST_BUCKET"));
    it_env_init(&e, store_url, "mig-ep", NULL);
    it_env_add(&e, src_ep);
    it_env_add(&e, "SILA_MAX_ATTEMPTS=1");
    it_env_add(&e, "SILA_S3_RETRIES=1");
    snprintf(log, sizeof(log), "%s/worker.log", tmp);
    w = it_start_worker(&e, log);

    it_write_file(ctl, "down\n");
    it_sleep_ms(300);
    job_name(job, sizeof(job), "ep-down", 1);
    ck_assert_str_eq(migrate_wait(&e, job, id, url, NULL), "failed");
    ck_assert_ptr_nonnull(
        strstr(it_job_field(it_prefix_of(&e), job, "error"), "source"));
    it_write_file(ctl, "up\n");
    it_sleep_ms(300);
    job_name(job, sizeof(job), "ep-up", 1);
    ck_assert_str_eq(migrate_wait(&e, job, id, url, NULL), "succeeded");
    ck_assert_int_eq(compare_active(id, src), 0);
    ck_assert_int_eq(it_stop(w), 0);
    it_stop(proxy);
}
END_TEST

Suite *it_migrate_suite(void)
{
    Suite *s = suite_create("it_migrate");
    TCase *tc = tcase_create("migrate");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_it_migrate_folder_to_active_and_archived);
    tcase_add_test(tc, test_it_migrate_from_bucket_prefix);
    tcase_add_test(tc, test_it_migrate_resumes_after_kill);
    tcase_add_test(tc, test_it_migrate_refusals);
    tcase_add_test(tc, test_it_migrate_cli_migrate_all);
    tcase_add_test(tc, test_it_migrate_source_with_its_own_endpoint);
    suite_add_tcase(s, tc);
    return s;
}
