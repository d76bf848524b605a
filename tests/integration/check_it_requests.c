/*
 * What a job cost: the S3 requests each job reports in its result
 * ("requests" by operation, "requestRetries", "bytesIn", "bytesOut",
 * "costUsd"), in its audit entry and in `stats`, and the worker's
 * sila_s3_requests_total{op=...} counters, after a real archive and
 * unarchive of a generated space on moto. The counts are held to the
 * compass of issue 18: per archive GET <= files, LIST and DELETE <=
 * ceil(files/1000) each plus a small constant; per restore PUT <= files
 * plus a small constant.
 */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/integration/it_flow.h"
#include "tests/integration/suites.h"

/* The "small constants" of the compass (bench/report.py uses the same):
 * the requests of an archive and of a restore that are neither per file
 * nor per page nor per part. */
#define IT_ARCHIVE_CONST 16
#define IT_RESTORE_CONST 16

static double op_metric(const char *path, const char *name, const char *op)
{
    char series[160];
    snprintf(series, sizeof(series), "%s{op=\"%s\"}", name, op);
    return it_metric(path, series);
}

/* requests[op] of a result (0 when absent). */
static long long req_of(json_t *res, const char *op)
{
    return (long long)json_integer_value(
        json_object_get(json_object_get(res, "requests"), op));
}

static long long req_sum(json_t *res)
{
    const char *k;
    json_t *v;
    long long n = 0;
    json_object_foreach(json_object_get(res, "requests"), k, v) n +=
        (long long)json_integer_value(v);
    return n;
}

/* The result of a finished job, parsed. */
static json_t *job_result(const struct it_env *e, const char *job_id)
{
    const char *text = it_job_field(it_prefix_of(e), job_id, "result");
    json_t *j = json_loads(text, 0, NULL);
    ck_assert_msg(j != NULL, "result of %s: '%s'", job_id, text);
    ck_assert_msg(json_is_object(json_object_get(j, "requests")),
                  "no requests in '%s'", text);
    fprintf(stderr, "it_requests: %s\n", text);
    return j;
}

/* Every result and audit field of the bill agree with each other. */
static void check_bill(json_t *res)
{
    ck_assert(json_is_integer(json_object_get(res, "requestRetries")));
    ck_assert(json_is_integer(json_object_get(res, "bytesIn")));
    ck_assert(json_is_integer(json_object_get(res, "bytesOut")));
    ck_assert(json_is_number(json_object_get(res, "costUsd")));
    ck_assert(json_number_value(json_object_get(res, "costUsd")) > 0);
}

START_TEST(test_it_requests_archive_unarchive_bill)
{
    char id[33], tmp[512], src[600], log[600], out[600], url[128];
    char prefix[128], addr[64], maddr[96], murl[128], mpath[600], args[128];
    char arch_job[200], ua_job[200];
    struct it_env e;
    struct it_dir_stats ds;
    json_t *ar, *ua, *j;
    double get0, put0, list0;
    long long files, lists, dels, parts;
    pid_t w;
    int port = it_free_port();

    it_space_id(id);
    it_tmpdir("requests", tmp, sizeof(tmp));
    snprintf(src, sizeof(src), "%s/space", tmp);
    it_gen_space(src, id, 57, "--ops-files 40 --blobs 12 --big-blobs 0");
    ds = it_stats_of(src);
    files = (long long)ds.files;
    snprintf(prefix, sizeof(prefix), "active/%s/", id);
    it_upload_dir(src, prefix, NULL);
    snprintf(url, sizeof(url), "s3://%s", it_env("WK_TEST_BUCKET"));
    it_env_init(&e, url, "requests", NULL);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    snprintf(maddr, sizeof(maddr), "SILA_METRICS_ADDR=%s", addr);
    it_env_add(&e, maddr);
    if (getenv("WK_IT_DEBUG"))
        it_env_add(&e, "SILA_LOG_LEVEL=debug");
    snprintf(log, sizeof(log), "%s/worker.log", tmp);
    snprintf(out, sizeof(out), "%s/out", tmp);
    snprintf(mpath, sizeof(mpath), "%s/metrics.txt", tmp);
    snprintf(murl, sizeof(murl), "http://%s/metrics", addr);
    w = it_start_worker(&e, log);
    for (int i = 0; i < 100 && it_http_get(murl, mpath) != 200; i++)
        it_sleep_ms(50);
    ck_assert_int_eq(it_http_get(murl, mpath), 200);
    /* the worker's own start-up requests are already counted */
    get0 = op_metric(mpath, "sila_s3_requests_total", "GetObject");
    put0 = op_metric(mpath, "sila_s3_requests_total", "PutObject");
    list0 = op_metric(mpath, "sila_s3_requests_total", "ListObjectsV2");
    ck_assert(get0 >= 0 && put0 >= 0 && list0 >= 0);

    snprintf(args, sizeof(args), "enqueue archive %s --wait", id);
    ck_assert_int_eq(it_cli(&e, args, arch_job, sizeof(arch_job), out), 0);
    ar = job_result(&e, arch_job);
    check_bill(ar);
    /* every original read once, whole (no object is past the GET cap),
     * plus the manifest's read (404: none yet) and one ranged read of the
     * new archive's end (its central directory, checked before the
     * originals go) */
    ck_assert_int_eq(req_of(ar, "GetObject"), files + 2);
    lists = req_of(ar, "ListObjectsV2");
    dels = req_of(ar, "DeleteObjects");
    parts = req_of(ar, "UploadPart");
    ck_assert_int_ge(lists, 1);
    ck_assert_int_le(lists, (files + 999) / 1000 + 3);
    ck_assert_int_ge(dels, 1);
    ck_assert_int_le(dels, (files + 999) / 1000 + 2);
    /* the compass: files + LIST and DELETE pages + parts + a constant
     * (manifest reads and writes, the pending-delete record, upload
     * checks, the archive's HEADs and its read-back) */
    ck_assert_int_le(req_sum(ar), files + 2 * ((files + 999) / 1000) + parts +
                                      IT_ARCHIVE_CONST);
    ck_assert_int_eq(req_of(ar, "PutObject") >= 1, 1); /* the manifest */
    ck_assert_int_eq(json_integer_value(json_object_get(ar, "requestRetries")),
                     0);
    ck_assert_int_ge(json_integer_value(json_object_get(ar, "bytesIn")),
                     (json_int_t)ds.bytes);

    snprintf(args, sizeof(args), "enqueue unarchive %s --urgent --wait", id);
    ck_assert_int_eq(it_cli(&e, args, ua_job, sizeof(ua_job), out), 0);
    ua = job_result(&e, ua_job);
    check_bill(ua);
    /* one PUT per restored object, the manifest's (restoring, ready,
     * active) and the restore record's */
    ck_assert_int_ge(req_of(ua, "PutObject"), files + 1);
    ck_assert_int_le(req_of(ua, "PutObject"), files + 4);
    ck_assert_int_le(req_sum(ua),
                     files + req_of(ua, "GetObject") + IT_RESTORE_CONST);
    ck_assert_int_ge(json_integer_value(json_object_get(ua, "bytesOut")),
                     (json_int_t)ds.bytes);

    /* /metrics: the process-wide counters moved by at least the jobs' */
    ck_assert_int_eq(it_http_get(murl, mpath), 200);
    ck_assert(op_metric(mpath, "sila_s3_requests_total", "GetObject") >=
              get0 +
                  (double)(req_of(ar, "GetObject") + req_of(ua, "GetObject")));
    ck_assert(op_metric(mpath, "sila_s3_requests_total", "PutObject") >=
              put0 +
                  (double)(req_of(ar, "PutObject") + req_of(ua, "PutObject")));
    ck_assert(op_metric(mpath, "sila_s3_requests_total", "ListObjectsV2") >=
              list0 + (double)lists);
    ck_assert(op_metric(mpath, "sila_s3_requests_total", "DeleteObjects") >=
              (double)dels);
    ck_assert(op_metric(mpath, "sila_s3_retries_total", "GetObject") == 0);
    /* the unlabelled totals are still there, and are the sums */
    ck_assert(it_metric(mpath, "sila_s3_requests_total") >=
              (double)(req_sum(ar) + req_sum(ua)));

    /* the audit entries carry the same bill */
    ck_assert_int_eq(it_cli(&e, "audit --count 10", args, sizeof(args), out),
                     0);
    {
        FILE *f = fopen(out, "r");
        char line[16384];
        int n = 0;
        ck_assert_ptr_nonnull(f);
        while (fgets(line, sizeof(line), f)) {
            json_t *o = json_loads(line, 0, NULL), *rq;
            json_t *res = n == 0 ? ar : ua;
            ck_assert_ptr_nonnull(o);
            rq = json_loads(json_string_value(json_object_get(o, "requests")),
                            0, NULL);
            ck_assert_msg(rq &&
                              json_equal(rq, json_object_get(res, "requests")),
                          "audit requests: %s", line);
            ck_assert_str_eq(
                json_string_value(json_object_get(o, "costUsd")) ? "set" : "",
                "set");
            json_decref(rq);
            json_decref(o);
            n++;
        }
        fclose(f);
        ck_assert_int_eq(n, 2);
    }

    /* stats: requests per job type, and today's cost */
    ck_assert_int_eq(it_cli(&e, "stats", args, sizeof(args), out), 0);
    {
        json_error_t je;
        json_t *t;
        j = json_load_file(out, 0, &je);
        ck_assert_msg(j != NULL, "%s", je.text);
        t = json_object_get(
            json_object_get(json_object_get(j, "requests"), "60m"), "archive");
        ck_assert_int_eq(json_integer_value(json_object_get(t, "jobs")), 1);
        ck_assert_int_eq(json_integer_value(json_object_get(
                             json_object_get(t, "requests"), "GetObject")),
                         files + 2);
        ck_assert_int_eq(json_integer_value(json_object_get(t, "requestCount")),
                         req_sum(ar));
        t = json_object_get(
            json_object_get(
                json_object_get(json_object_get(j, "costPerDay"), "today"),
                "byType"),
            "unarchive");
        ck_assert_int_eq(json_integer_value(json_object_get(
                             json_object_get(t, "requests"), "PutObject")),
                         req_of(ua, "PutObject"));
        ck_assert(
            json_real_value(json_object_get(
                json_object_get(json_object_get(j, "costPerDay"), "today"),
                "costUsd")) > 0);
        json_decref(j);
    }

    ck_assert_int_eq(it_stop(w), 0);
    json_decref(ar);
    json_decref(ua);
}
END_TEST

/* A migrate reads its source through a store of its own: its requests
 * are in the result's requests (the sum) and apart in sourceRequests. */
START_TEST(test_it_requests_migrate_counts_its_source)
{
    char id[33], tmp[512], src[600], url[256], log[600], store_url[128];
    char legacy[160], job[64], json[1024];
    const char *r;
    struct it_env e;
    struct it_dir_stats ds;
    json_t *res, *srq, *rq, *v;
    const char *k;
    pid_t w;

    it_space_id(id);
    it_tmpdir("req-mig", tmp, sizeof(tmp));
    snprintf(src, sizeof(src), "%s/%s", tmp, id);
    it_gen_space(src, id, 59, "--ops-files 12 --blobs 4 --big-blobs 0");
    ds = it_stats_of(src);
    snprintf(legacy, sizeof(legacy), "req-legacy-%d/%s/", (int)getpid(), id);
    it_upload_dir(src, legacy, NULL);
    snprintf(url, sizeof(url), "s3://%s/req-legacy-%d/%s",
             it_env("WK_TEST_BUCKET"), (int)getpid(), id);
    snprintf(store_url, sizeof(store_url), "s3://%s", it_env("WK_TEST_BUCKET"));
    it_env_init(&e, store_url, "req-mig", NULL);
    snprintf(log, sizeof(log), "%s/worker.log", tmp);
    w = it_start_worker(&e, log);
    /* enqueued as any client does (docs/PROTOCOL.md) */
    snprintf(job, sizeof(job), "req-mig-%d", (int)getpid());
    snprintf(json, sizeof(json),
             "{\"id\":\"%s\",\"type\":\"migrate\",\"spaceId\":\"%s\","
             "\"source\":\"%s\"}",
             job, id, url);
    r = it_redis("HSET %sjob:%s state queued type migrate spaceId %s "
                 "progress 0 spec %s",
                 it_prefix_of(&e), job, id, json);
    ck_assert_msg(strncmp(r, "ERR", 3) != 0, "%s", r);
    r = it_redis("XADD %sjobs MAXLEN ~ 100000 * id %s job %s", it_prefix_of(&e),
                 job, json);
    ck_assert_msg(strncmp(r, "ERR", 3) != 0, "%s", r);
    ck_assert_str_eq(it_wait_job(it_prefix_of(&e), job, 240), "succeeded");
    res = job_result(&e, job);
    check_bill(res);
    srq = json_object_get(res, "sourceRequests");
    rq = json_object_get(res, "requests");
    ck_assert(json_is_object(srq));
    /* the source was listed and each of its objects read once */
    ck_assert_int_ge(json_integer_value(json_object_get(srq, "ListObjectsV2")),
                     1);
    ck_assert_int_ge(json_integer_value(json_object_get(srq, "GetObject")),
                     (json_int_t)ds.files);
    json_object_foreach(srq, k, v)
    {
        ck_assert_msg(json_integer_value(json_object_get(rq, k)) >=
                          json_integer_value(v),
                      "requests.%s below sourceRequests.%s", k, k);
    }
    /* ...and written to active/ with one PUT each */
    ck_assert_int_ge(req_of(res, "PutObject"), (long long)ds.files);
    ck_assert_int_eq(it_stop(w), 0);
    json_decref(res);
}
END_TEST

Suite *it_requests_suite(void)
{
    Suite *s = suite_create("it_requests");
    TCase *tc = tcase_create("requests");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_it_requests_archive_unarchive_bill);
    tcase_add_test(tc, test_it_requests_migrate_counts_its_source);
    suite_add_tcase(s, tc);
    return s;
}
