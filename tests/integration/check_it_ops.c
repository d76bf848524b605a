/*
 * What an operator sees: the worker's /metrics and /healthz on
 * SILA_METRICS_ADDR, `healthcheck`, `stats` and the audit trail, after a
 * real archive and unarchive on moto.
 */
#include <check.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "tests/integration/it_flow.h"
#include "tests/integration/suites.h"

static json_t *load_json(const char *path)
{
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    ck_assert_msg(j != NULL, "%s: %s", path, je.text);
    return j;
}

START_TEST(test_it_ops_metrics_health_stats_audit)
{
    char id[33], tmp[512], src[600], log[600], out[600], job[200], url[128];
    char prefix[128], addr[64], maddr[96], murl[128], mpath[600], args[128];
    struct it_env e;
    struct it_dir_stats ds;
    json_t *j, *a;
    pid_t w;
    int port = it_free_port();

    it_space_id(id);
    it_tmpdir("ops", tmp, sizeof(tmp));
    snprintf(src, sizeof(src), "%s/space", tmp);
    it_gen_space(src, id, 41, "--ops-files 30 --blobs 8 --big-blobs 0");
    ds = it_stats_of(src);
    snprintf(prefix, sizeof(prefix), "active/%s/", id);
    it_upload_dir(src, prefix, NULL);
    snprintf(url, sizeof(url), "s3://%s", it_env("WK_TEST_BUCKET"));
    it_env_init(&e, url, "ops", NULL);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    snprintf(maddr, sizeof(maddr), "SILA_METRICS_ADDR=%s", addr);
    it_env_add(&e, maddr);
    snprintf(log, sizeof(log), "%s/worker.log", tmp);
    snprintf(out, sizeof(out), "%s/out", tmp);
    snprintf(mpath, sizeof(mpath), "%s/metrics.txt", tmp);
    w = it_start_worker(&e, log);

    /* healthy: the endpoint and the command agree */
    snprintf(murl, sizeof(murl), "http://%s/healthz", addr);
    for (int i = 0; i < 100 && it_http_get(murl, mpath) != 200; i++)
        it_sleep_ms(50);
    ck_assert_int_eq(it_http_get(murl, mpath), 200);
    ck_assert_int_eq(it_cli(&e, "healthcheck", job, sizeof(job), out), 0);
    snprintf(murl, sizeof(murl), "http://%s/livez", addr);
    ck_assert_int_eq(it_http_get(murl, mpath), 200);
    snprintf(murl, sizeof(murl), "http://%s/nope", addr);
    ck_assert_int_eq(it_http_get(murl, mpath), 404);

    snprintf(args, sizeof(args), "enqueue archive %s --wait", id);
    ck_assert_int_eq(it_cli(&e, args, job, sizeof(job), out), 0);
    snprintf(args, sizeof(args), "enqueue unarchive %s --urgent --wait", id);
    ck_assert_int_eq(it_cli(&e, args, job, sizeof(job), out), 0);

    snprintf(murl, sizeof(murl), "http://%s/metrics", addr);
    ck_assert_int_eq(it_http_get(murl, mpath), 200);
    ck_assert(it_metric(mpath, "sila_jobs_started_total{type=\"archive\"}") ==
              1);
    ck_assert(it_metric(mpath, "sila_jobs_succeeded_total{type=\"archive\"}") ==
              1);
    ck_assert(
        it_metric(mpath, "sila_jobs_succeeded_total{type=\"unarchive\"}") == 1);
    ck_assert(it_metric(mpath, "sila_jobs_failed_total{type=\"archive\"}") ==
              0);
    ck_assert(it_metric(mpath, "sila_space_files_total{type=\"archive\"}") ==
              (double)ds.files);
    ck_assert(it_metric(mpath, "sila_space_bytes_total{type=\"unarchive\"}") ==
              (double)ds.bytes);
    ck_assert(
        it_metric(mpath, "sila_job_duration_seconds_count{type=\"archive\"}") ==
        1);
    ck_assert(it_metric(mpath,
                        "sila_job_duration_seconds_bucket{type=\"archive\","
                        "le=\"+Inf\"}") == 1);
    ck_assert(it_metric(mpath, "sila_s3_requests_total") > ds.files);
    ck_assert(it_metric(mpath, "sila_s3_bytes_received_total") >= ds.bytes);
    ck_assert(it_metric(mpath, "sila_s3_bytes_sent_total") >= ds.bytes / 2);
    ck_assert(it_metric(mpath, "sila_s3_requests_in_flight") == 0);
    ck_assert(it_metric(mpath, "sila_queue_waiting{lane=\"normal\"}") == 0);
    ck_assert(it_metric(mpath, "sila_queue_running{lane=\"urgent\"}") == 0);
    ck_assert(it_metric(mpath, "sila_dead_letters") == 0);
    ck_assert(it_metric(mpath, "sila_redis_up") == 1);

    /* stats: from Redis alone */
    ck_assert_int_eq(it_cli(&e, "stats", job, sizeof(job), out), 0);
    j = load_json(out);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "dead")), 0);
    ck_assert_int_eq(json_array_size(json_object_get(j, "running")), 0);
    a = json_object_get(json_object_get(j, "throughput"), "60m");
    ck_assert_int_eq(json_integer_value(json_object_get(a, "succeeded")), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(a, "bytes")),
                     2 * (json_int_t)ds.bytes);
    ck_assert_int_eq(
        json_integer_value(json_object_get(
            json_object_get(json_object_get(j, "lanes"), "normal"), "waiting")),
        0);
    json_decref(j);

    /* the audit trail: who, what, when, result */
    ck_assert_int_eq(it_cli(&e, "audit --count 10", job, sizeof(job), out), 0);
    {
        FILE *f = fopen(out, "r");
        char line[8192];
        int n = 0;
        ck_assert_ptr_nonnull(f);
        while (fgets(line, sizeof(line), f)) {
            json_t *o = json_loads(line, 0, NULL);
            ck_assert_ptr_nonnull(o);
            ck_assert_str_eq(json_string_value(json_object_get(o, "action")),
                             n == 0 ? "archive" : "unarchive");
            ck_assert_str_eq(json_string_value(json_object_get(o, "outcome")),
                             "succeeded");
            ck_assert_str_eq(json_string_value(json_object_get(o, "spaceId")),
                             id);
            ck_assert(
                strncmp(json_string_value(json_object_get(o, "requestedBy")),
                        "cli:", 4) == 0);
            ck_assert(strlen(json_string_value(json_object_get(o, "worker"))) >
                      0);
            ck_assert_int_eq(
                (int)strtol(json_string_value(json_object_get(o, "files")),
                            NULL, 10),
                (int)ds.files);
            ck_assert_ptr_nonnull(strstr(
                json_string_value(json_object_get(o, "result")), "archiveKey"));
            json_decref(o);
            n++;
        }
        fclose(f);
        ck_assert_int_eq(n, 2);
        /* ...and the same in the worker's JSON log */
        ck_assert_int_eq(it_sh("test $(grep -c '\"event\":\"audit\".*"
                               "\"requested_by\":\"cli:' '%s') -eq 2",
                               log),
                         0);
    }

    /* a worker that is gone: the health check says so */
    ck_assert_int_eq(it_stop(w), 0);
    ck_assert_int_ne(it_cli(&e, "healthcheck", job, sizeof(job), out), 0);
    ck_assert_ptr_nonnull(strstr(job, "no answer"));

    /* no secret anywhere: the worker's log, every command's output, the
     * metrics, and everything under the test's Redis prefix (status
     * hashes, results, audit, events are not kept) */
    it_assert_no_secrets(&e, tmp, NULL);
}
END_TEST

/* SILA_SSE=AES256: every object the worker writes asks for server-side
 * encryption (the archive, made by multipart upload; the manifest; the
 * restored objects), which moto records and reports back. */
START_TEST(test_it_ops_sse_on_every_write)
{
    char id[33], tmp[512], src[600], log[600], out[600], job[200], url[128];
    char prefix[128], args[128];
    struct it_env e;
    pid_t w;

    it_space_id(id);
    it_tmpdir("sse", tmp, sizeof(tmp));
    snprintf(src, sizeof(src), "%s/space", tmp);
    it_gen_space(src, id, 43, "--ops-files 10 --blobs 3 --big-blobs 1");
    snprintf(prefix, sizeof(prefix), "active/%s/", id);
    it_upload_dir(src, prefix, NULL);
    snprintf(url, sizeof(url), "s3://%s", it_env("WK_TEST_BUCKET"));
    it_env_init(&e, url, "sse", NULL);
    it_env_add(&e, "SILA_SSE=AES256");
    snprintf(log, sizeof(log), "%s/worker.log", tmp);
    snprintf(out, sizeof(out), "%s/out", tmp);
    w = it_start_worker(&e, log);
    snprintf(args, sizeof(args), "enqueue archive %s --wait", id);
    ck_assert_int_eq(it_cli(&e, args, job, sizeof(job), out), 0);
    /* the archive (multipart) and the manifest */
    ck_assert_int_eq(
        it_sh("python3 - '%s' '%s' '%s' <<'PY'\n"
              "import boto3, json, sys\n"
              "ep, b, sid = sys.argv[1:4]\n"
              "s3 = boto3.client('s3', endpoint_url=ep, "
              "region_name='us-east-1')\n"
              "mk = 'metadata/%%s.json' %% sid\n"
              "m = json.loads(s3.get_object(Bucket=b, Key=mk)['Body'].read())\n"
              "for k in (m['archiveKey'], mk):\n"
              "    h = s3.head_object(Bucket=b, Key=k)\n"
              "    assert h.get('ServerSideEncryption') == 'AES256', (k, h)\n"
              "PY",
              it_env("WK_TEST_S3_ENDPOINT"), it_env("WK_TEST_BUCKET"), id),
        0);
    /* a presigned URL downloads the archive with plain curl, and carries
     * a signature, never the secret */
    {
        char purl[4096], zip[600];
        FILE *f;
        snprintf(args, sizeof(args), "presign %s --expires 600", id);
        ck_assert_int_eq(it_cli(&e, args, job, sizeof(job), out), 0);
        f = fopen(out, "r");
        ck_assert_ptr_nonnull(f);
        ck_assert_ptr_nonnull(fgets(purl, sizeof(purl), f));
        fclose(f);
        purl[strcspn(purl, "\n")] = '\0';
        ck_assert_ptr_nonnull(strstr(purl, "X-Amz-Signature="));
        ck_assert_ptr_nonnull(strstr(purl, "X-Amz-Expires=600"));
        ck_assert_ptr_null(strstr(purl, IT_SECRET));
        snprintf(zip, sizeof(zip), "%s/presigned.zip", tmp);
        ck_assert_int_eq(
            it_sh("curl -sf --noproxy '*' -o '%s' '%s'", zip, purl), 0);
        ck_assert_int_eq(
            it_sh("python3 - '%s' '%s' '%s' '%s' <<'PY'\n"
                  "import boto3, hashlib, json, sys\n"
                  "ep, b, sid, zp = sys.argv[1:5]\n"
                  "s3 = boto3.client('s3', endpoint_url=ep, "
                  "region_name='us-east-1')\n"
                  "mk = 'metadata/%%s.json' %% sid\n"
                  "m = json.loads(s3.get_object(Bucket=b, Key=mk)['Body']"
                  ".read())\n"
                  "h = hashlib.sha256(open(zp, 'rb').read()).hexdigest()\n"
                  "assert h == m['checksum'], (h, m['checksum'])\n"
                  "PY",
                  it_env("WK_TEST_S3_ENDPOINT"), it_env("WK_TEST_BUCKET"), id,
                  zip),
            0);
    }
    snprintf(args, sizeof(args), "enqueue unarchive %s --wait", id);
    ck_assert_int_eq(it_cli(&e, args, job, sizeof(job), out), 0);
    /* every restored object */
    ck_assert_int_eq(
        it_sh("python3 - '%s' '%s' '%s' <<'PY'\n"
              "import boto3, sys\n"
              "ep, b, sid = sys.argv[1:4]\n"
              "s3 = boto3.client('s3', endpoint_url=ep, "
              "region_name='us-east-1')\n"
              "n = 0\n"
              "for p in s3.get_paginator('list_objects_v2').paginate(\n"
              "        Bucket=b, Prefix='active/%%s/' %% sid):\n"
              "    for o in p.get('Contents', []):\n"
              "        h = s3.head_object(Bucket=b, Key=o['Key'])\n"
              "        assert h.get('ServerSideEncryption') == 'AES256', o\n"
              "        n += 1\n"
              "assert n > 10, n\n"
              "PY",
              it_env("WK_TEST_S3_ENDPOINT"), it_env("WK_TEST_BUCKET"), id),
        0);
    ck_assert_int_eq(it_stop(w), 0);
}
END_TEST

Suite *it_ops_suite(void)
{
    Suite *s = suite_create("it_ops");
    TCase *tc = tcase_create("ops");

    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_it_ops_metrics_health_stats_audit);
    tcase_add_test(tc, test_it_ops_sse_on_every_write);
    suite_add_tcase(s, tc);
    return s;
}
