/* The worker's flows on OpenStack Swift's S3 API (s3api + tempauth, which
 * check every signature), started by tests/swift/run.sh: the store's own
 * SigV4 requests (a wrong secret is refused), archive then an urgent
 * unarchive, migrate (a folder to active/ and to an archive), and sweep
 * through the activity index with a worker archiving what it queued. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "jobs/manifest.h"
#include "tests/integration/it_flow.h"
#include "tests/swift/suites.h"

#define DAY 86400

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void store_url(char *buf, size_t len)
{
    snprintf(buf, len, "s3://%s", it_env("WK_TEST_BUCKET"));
}

static int run_job(const struct it_env *e, const char *type, const char *id,
                   const char *extra, char *job, size_t len, const char *out)
{
    char args[700];
    snprintf(args, sizeof(args), "enqueue %s '%s' %s --wait", type, id,
             extra ? extra : "");
    return it_cli(e, args, job, len, out);
}

/* active/<id>/ in the bucket holds exactly the files of src (boto3). */
static int compare_active(const char *id, const char *src)
{
    return it_sh("python3 '%s/tests/compare_prefix.py' '%s' 'active/%s/' "
                 "'%s' --endpoint '%s' >/dev/null",
                 it_env("WK_SRCDIR"), it_env("WK_TEST_BUCKET"), id, src,
                 it_env("WK_TEST_S3_ENDPOINT"));
}

/* ---- the store's requests, signed by our SigV4, on Swift ---- */

START_TEST(test_swift_store_sigv4)
{
    static const char body[] = "{\"hello\":\"swift\"}\n";
    char id[33], key[200], prefix[100];
    struct store *st = it_s3_store(NULL), *bad = NULL;
    struct store_opts o;
    struct store_stat ss;
    struct wk_err err;
    const char *keys[1];
    size_t len, n = 0;
    char *text;

    /* the endpoint is Swift (its proxy names each transaction), not moto */
    ck_assert_int_eq(it_sh("curl -sS -o /dev/null -D - '%s/healthcheck' | "
                           "grep -qi '^x-trans-id:'",
                           it_env("WK_TEST_S3_ENDPOINT")),
                     0);
    it_space_id(id);
    snprintf(prefix, sizeof(prefix), "smoke/%s/", id);
    snprintf(key, sizeof(key), "%sa b+c%%d.json", prefix);
    wk_err_clear(&err);
    ck_assert_msg(store_put(st, key, body, sizeof(body) - 1, &err) == WK_OK,
                  "put: %s", err.msg);
    text = it_get_text(st, key, &len);
    ck_assert_uint_eq(len, sizeof(body) - 1);
    ck_assert_mem_eq(text, body, len);
    free(text);
    ck_assert_msg(store_head(st, key, &ss, &err) == WK_OK, "%s", err.msg);
    ck_assert_uint_eq(ss.size, sizeof(body) - 1);
    ck_assert_uint_eq(it_count(st, prefix), 1);
    keys[0] = key;
    ck_assert_msg(store_delete_many(st, keys, 1, &n, &err) == WK_OK, "%s",
                  err.msg);
    ck_assert_uint_eq(it_count(st, prefix), 0);
    ck_assert_int_eq(store_head(st, key, &ss, &err), WK_E_NOTFOUND);

    /* Swift checks signatures: the same request with a wrong secret is
     * refused (moto would take it) */
    ck_assert_int_eq(store_opts_from_env(&o, &err), WK_OK);
    snprintf(o.endpoint, sizeof(o.endpoint), "%s",
             it_env("WK_TEST_S3_ENDPOINT"));
    snprintf(o.secret_key, sizeof(o.secret_key), "not-the-secret");
    o.max_retries = 0;
    {
        char url[200];
        store_url(url, sizeof(url));
        ck_assert_int_eq(store_open_url(url, &o, &bad, &err), WK_OK);
    }
    wk_err_clear(&err);
    ck_assert_int_ne(store_put(bad, key, body, sizeof(body) - 1, &err), WK_OK);
    ck_assert_msg(err.http_status == 403, "status %ld: %s", err.http_status,
                  err.msg);
    ck_assert_uint_eq(it_count(st, prefix), 0);
    store_free(bad);
    store_free(st);
}
END_TEST

/* ---- archive, then an urgent unarchive ---- */

START_TEST(test_swift_archive_then_urgent_unarchive)
{
    char id[33], tmp[512], src[600], log[600], out[600], job[200], url[128];
    char prefix[128], sublog[600], pattern[128];
    const char *sub_argv[6];
    struct it_env e;
    struct store *st = it_s3_store(NULL);
    struct mf *m = calloc(1, sizeof(*m)), *m2 = calloc(1, sizeof(*m2));
    struct store_stat ss;
    struct wk_err err;
    double t0, t_arch, t_ua;
    pid_t w, sub;
    int rc;

    ck_assert_ptr_nonnull(m);
    ck_assert_ptr_nonnull(m2);
    it_space_id(id);
    it_tmpdir("sw-arch", tmp, sizeof(tmp));
    snprintf(src, sizeof(src), "%s/space", tmp);
    /* the suites' usual space: several 5 MiB parts, text and blobs */
    it_gen_space(src, id, 7, NULL);
    snprintf(prefix, sizeof(prefix), "active/%s/", id);
    it_upload_dir(src, prefix, NULL);
    ck_assert_uint_eq(it_count(st, prefix), it_stats_of(src).files);

    store_url(url, sizeof(url));
    it_env_init(&e, url, "sw-arch", NULL);
    snprintf(log, sizeof(log), "%s/worker.log", tmp);
    snprintf(out, sizeof(out), "%s/out", tmp);
    w = it_start_worker(&e, log);

    t0 = now_s();
    rc = run_job(&e, "archive", id, NULL, job, sizeof(job), out);
    t_arch = now_s() - t0;
    ck_assert_msg(rc == 0,
                  "archive on Swift: enqueue --wait exited %d: %s "
                  "(see %s, %s)",
                  rc, it_job_field(it_prefix_of(&e), job, "error"), out, log);
    ck_assert_str_eq(it_job_field(it_prefix_of(&e), job, "state"), "succeeded");
    /* the worker's own probe found what features.py measures, and chose
     * the fenced manifest writes and the deletes by version id */
    ck_assert_msg(it_sh("grep '\"event\":\"s3.features\"' '%s' | grep "
                        "'\"source\":\"probe\"' | grep "
                        "'\"features\":\"versioning,part-copy,list-parts,"
                        "delete-md5\"' | grep -q '\"deletes\":\"by version "
                        "id\"'",
                        log) == 0,
                  "no s3.features line with Swift's features in %s", log);
    it_verify_archived(st, id, src, tmp);
    ck_assert_int_eq(it_sh("test $(stat -c %%s '%s/archive.zip') -gt "
                           "10485760",
                           tmp),
                     0);
    it_read_mf(st, id, m);

    /* the app server waits on the space's channel */
    snprintf(sublog, sizeof(sublog), "%s/space-events.txt", tmp);
    snprintf(pattern, sizeof(pattern), "%sspace:*", it_prefix_of(&e));
    sub_argv[0] = "redis-cli";
    sub_argv[1] = "-p";
    sub_argv[2] = it_env("WK_TEST_REDIS_PORT");
    sub_argv[3] = "PSUBSCRIBE";
    sub_argv[4] = pattern;
    sub_argv[5] = NULL;
    sub = it_spawn_prog(sub_argv, sublog);
    for (int i = 0; i < 50 && it_sh("grep -q psubscribe '%s'", sublog); i++)
        it_sleep_ms(100);

    t0 = now_s();
    rc = run_job(&e, "unarchive", id, "--urgent", job, sizeof(job), out);
    t_ua = now_s() - t0;
    ck_assert_msg(rc == 0,
                  "urgent unarchive on Swift exited %d: %s (see %s, "
                  "%s)",
                  rc, it_job_field(it_prefix_of(&e), job, "error"), out, log);
    ck_assert_int_eq(compare_active(id, src), 0);
    it_read_mf(st, id, m2);
    ck_assert_int_eq(m2->state, MF_ACTIVE);
    ck_assert_str_eq(m2->archive_key, m->archive_key);
    wk_err_clear(&err);
    ck_assert_int_eq(store_head(st, m->archive_key, &ss, &err), WK_OK);
    ck_assert_uint_eq(ss.size, m->size);
    ck_assert_ptr_nonnull(strstr(it_job_field(it_prefix_of(&e), job, "result"),
                                 "\"timeToReadyMs\""));
    it_sleep_ms(200);
    it_stop(sub);
    ck_assert_int_eq(it_sh("grep -q '\"event\":\"ready\",\"spaceId\":\"%s\","
                           "\"jobId\":\"%s\"' '%s'",
                           id, job, sublog),
                     0);
    ck_assert_int_eq(it_sh("grep -q '\"event\":\"complete\",\"spaceId\":"
                           "\"%s\",\"jobId\":\"%s\"' '%s'",
                           id, job, sublog),
                     0);
    fprintf(stderr,
            "swift: archive of %llu files, %llu bytes: %.1f s; urgent "
            "unarchive: %.1f s (%s)\n",
            (unsigned long long)m->file_count,
            (unsigned long long)m->uncompressed_size, t_arch, t_ua,
            it_job_field(it_prefix_of(&e), job, "result"));

    ck_assert_int_eq(it_stop(w), 0);
    it_assert_no_secrets(&e, tmp, NULL);
    store_free(st);
    free(m);
    free(m2);
}
END_TEST

/* ---- migrate: a Sila server's folder to active/ and to an archive ---- */

/* Enqueue a migrate job as another service would (docs/PROTOCOL.md), wait
 * for its end; returns the final state. */
static const char *migrate_wait(const struct it_env *e, const char *job,
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
    return it_wait_job(it_prefix_of(e), job, 240);
}

START_TEST(test_swift_migrate_folder_to_active_and_archived)
{
    char id[33], id2[33], tmp[512], src[600], src2[600], url[700], url2[700];
    char log[600], surl[128], job[128];
    struct it_env e;
    struct store *st = it_s3_store(NULL);
    pid_t w;

    it_space_id(id);
    it_space_id(id2);
    it_tmpdir("sw-mig", tmp, sizeof(tmp));
    snprintf(src, sizeof(src), "%s/data/spaces/%s", tmp, id);
    snprintf(src2, sizeof(src2), "%s/data/spaces/%s", tmp, id2);
    it_gen_space(src, id, 21, "--unknown-files 2");
    it_gen_space(src2, id2, 22, NULL);
    snprintf(url, sizeof(url), "file://%s", src);
    snprintf(url2, sizeof(url2), "file://%s/", src2);

    store_url(surl, sizeof(surl));
    it_env_init(&e, surl, "sw-mig", NULL);
    it_env_add(&e, "SILA_GET_CHUNK=1MiB"); /* big blobs take the stream */
    snprintf(log, sizeof(log), "%s/worker.log", tmp);
    w = it_start_worker(&e, log);

    snprintf(job, sizeof(job), "swmig-%d-active", (int)getpid());
    ck_assert_msg(strcmp(migrate_wait(&e, job, id, url, NULL), "succeeded") ==
                      0,
                  "%s: %s (see %s)", job,
                  it_job_field(it_prefix_of(&e), job, "error"), log);
    ck_assert_int_eq(compare_active(id, src), 0);

    snprintf(job, sizeof(job), "swmig-%d-archived", (int)getpid());
    ck_assert_msg(
        strcmp(migrate_wait(&e, job, id2, url2, ",\"target\":\"archived\""),
               "succeeded") == 0,
        "%s: %s (see %s)", job, it_job_field(it_prefix_of(&e), job, "error"),
        log);
    ck_assert_ptr_nonnull(strstr(it_job_field(it_prefix_of(&e), job, "result"),
                                 "\"archiveKey\""));
    it_verify_archived(st, id2, src2, tmp);

    ck_assert_int_eq(it_stop(w), 0);
    store_free(st);
}
END_TEST

/* ---- sweep: the activity index names the idle space, a worker archives
 * it ---- */

START_TEST(test_swift_sweep_then_archive)
{
    static const char *const spaces[] = { "sw-idle", "sw-recent" };
    static const char *const files[] = { "sila.md", "space-v1/space.json",
                                         "space-v1/ops/a/b/x-m.jsonl" };
    char tmp[512], url[700], out[700], log[700], wlog[700], key[256];
    char job[200], cmd[4096], score[32];
    struct it_env e;
    struct store *st = NULL;
    struct store_opts so;
    struct wk_err err;
    const char *p;
    time_t now = time(NULL);
    pid_t w;
    int n = 0;

    it_tmpdir("sw-sweep", tmp, sizeof(tmp));
    /* a prefix of our own: the other tests' spaces are not in this sweep */
    snprintf(url, sizeof(url), "s3://%s/sweep-%d", it_env("WK_TEST_BUCKET"),
             (int)getpid());
    snprintf(out, sizeof(out), "%s/out", tmp);
    snprintf(log, sizeof(log), "%s/log", tmp);
    snprintf(wlog, sizeof(wlog), "%s/worker.log", tmp);
    it_env_init(&e, url, "sw-sweep", NULL);
    p = it_prefix_of(&e);
    wk_err_clear(&err);
    ck_assert_int_eq(store_opts_from_env(&so, &err), WK_OK);
    snprintf(so.endpoint, sizeof(so.endpoint), "%s",
             it_env("WK_TEST_S3_ENDPOINT"));
    ck_assert_msg(store_open_url(url, &so, &st, &err) == WK_OK, "%s", err.msg);
    for (size_t i = 0; i < 2; i++) {
        for (size_t f = 0; f < 3; f++) {
            snprintf(key, sizeof(key), "active/%s/%s", spaces[i], files[f]);
            ck_assert_msg(store_put(st, key, "0123456789", 10, &err) == WK_OK,
                          "%s", err.msg);
        }
    }
    snprintf(score, sizeof(score), "%lld", (long long)(now - 10 * DAY));
    ck_assert_str_eq(it_redis("ZADD %sactivity %s sw-idle", p, score), "1");
    snprintf(score, sizeof(score), "%lld", (long long)(now - 60));
    ck_assert_str_eq(it_redis("ZADD %sactivity %s sw-recent", p, score), "1");

    n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, "env");
    for (int i = 0; e.vars[i]; i++)
        n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, " '%s'", e.vars[i]);
    snprintf(cmd + n, sizeof(cmd) - (size_t)n, " '%s' sweep > '%s' 2> '%s'",
             it_env("WK_BIN"), out, log);
    ck_assert_msg(it_sh("%s", cmd) == 0, "sweep failed (see %s)", log);
    ck_assert_int_eq(it_sh("grep '\"spaceId\":\"sw-idle\"' '%s' | grep -q "
                           "'\"decision\":\"archive\"'",
                           out),
                     0);
    /* the real sweep prints the chosen spaces; the kept one is counted */
    ck_assert_int_eq(it_sh("grep -q '\"skippedBy\":{\"recent-write\":1,' "
                           "'%s'",
                           out),
                     0);
    ck_assert_str_eq(it_redis("XLEN %sjobs", p), "1");
    ck_assert_str_eq(it_redis("GET %sdedup:archive:sw-recent", p), "(nil)");
    snprintf(job, sizeof(job), "%s",
             it_redis("GET %sdedup:archive:sw-idle", p));
    ck_assert_str_ne(job, "(nil)");
    ck_assert_str_eq(it_job_field(p, job, "type"), "archive");

    w = it_start_worker(&e, wlog);
    ck_assert_msg(strcmp(it_wait_job(p, job, 90), "succeeded") == 0,
                  "archive of sw-idle: %s (see %s)",
                  it_job_field(p, job, "error"), wlog);
    ck_assert_int_eq(it_stop(w), 0);
    ck_assert_uint_eq(it_count(st, "active/sw-idle/"), 0);
    ck_assert_uint_eq(it_count(st, "active/sw-recent/"), 3);
    ck_assert_str_eq(it_mf_state(st, "sw-idle"), "archived");
    store_free(st);
}
END_TEST

Suite *swift_flows_suite(void)
{
    Suite *s = suite_create("swift_flows");
    TCase *tc = tcase_create("swift");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_swift_store_sigv4);
    tcase_add_test(tc, test_swift_archive_then_urgent_unarchive);
    tcase_add_test(tc, test_swift_migrate_folder_to_active_and_archived);
    tcase_add_test(tc, test_swift_sweep_then_archive);
    suite_add_tcase(s, tc);
    return s;
}
