/* AWS credentials from the chain, end to end: archives signed with
 * credentials from moto's STS (web identity), from a container endpoint
 * that issues short-lived ones (refreshed during the job) and from EC2
 * IMDSv2. tests/integration/creds_server.py stands in for the endpoints
 * that cannot exist here and checks every S3 request's signature against
 * the credentials it knows were issued (expired ones are refused) before
 * passing it on to moto. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/integration/it_flow.h"
#include "tests/integration/suites.h"

#define CONTAINER_TOKEN "ctTokenZx81Qp"

struct cs {
    pid_t pid;
    int port;
    char endpoint[64];
    char stats[600];
};

/* Start creds_server.py in front of the test S3 server. */
static void cs_start(struct cs *c, const char *tmp, const char *lifetime_s,
                     const char *delay_ms)
{
    char script[600], port[16], target[128], log[700];
    const char *s3 = it_env("WK_TEST_S3_ENDPOINT");

    ck_assert_int_eq(strncmp(s3, "http://", 7), 0);
    snprintf(target, sizeof(target), "%s", s3 + 7);
    snprintf(script, sizeof(script), "%s/tests/integration/creds_server.py",
             it_env("WK_SRCDIR"));
    /* the stats hold the secrets: under "keys", which the secret scan
     * skips */
    ck_assert_int_eq(it_sh("mkdir -p '%s/keys'", tmp), 0);
    snprintf(c->stats, sizeof(c->stats), "%s/keys/stats.json", tmp);
    snprintf(log, sizeof(log), "%s/keys/creds_server.log", tmp);
    c->port = it_free_port();
    snprintf(port, sizeof(port), "%d", c->port);
    snprintf(c->endpoint, sizeof(c->endpoint), "http://127.0.0.1:%d", c->port);
    const char *argv[] = { "python3",
                           script,
                           "--port",
                           port,
                           "--s3-target",
                           target,
                           "--sts-target",
                           target,
                           "--stats",
                           c->stats,
                           "--lifetime-s",
                           lifetime_s,
                           "--container-token",
                           CONTAINER_TOKEN,
                           "--s3-delay-ms",
                           delay_ms,
                           NULL };
    c->pid = it_spawn_prog(argv, log);
    for (int i = 0; i < 100; i++) {
        if (it_sh("curl -sf -o /dev/null http://127.0.0.1:%d/ping", c->port) ==
            0)
            return;
        it_sleep_ms(100);
    }
    ck_abort_msg("creds_server.py did not start (see %s)", log);
}

/* A Python check over the stats file (exit status 0 = holds). */
static int cs_check(const struct cs *c, const char *expr)
{
    return it_sh("python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); "
                 "sys.exit(0 if (%s) else 1)' '%s'",
                 expr, c->stats);
}

/* No secret or token the server issued or relayed appears in file. */
static void assert_no_issued_secret(const struct cs *c, const char *file)
{
    ck_assert_int_eq(
        it_sh("python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); "
              "t=open(sys.argv[2]).read(); "
              "sys.exit(1 if any(i[\"secret\"] in t or i[\"token\"] in t "
              "for i in d[\"issued\"]) else 0)' '%s' '%s'",
              c->stats, file),
        0);
}

/* Archive a fresh space through the worker with env e (endpoint: the
 * creds server) and check the archive and that no secret leaked. */
static void archive_with(struct it_env *e, const char *tmp, const char *tag,
                         struct cs *c, int seed)
{
    char id[33], src[600], log[600], out[600], job[200], url[128], prefix[128];
    char args[256];
    struct store *st = it_s3_store(NULL);
    pid_t w;
    int rc;

    it_space_id(id);
    snprintf(src, sizeof(src), "%s/space", tmp);
    it_gen_space(src, id, seed, NULL);
    snprintf(prefix, sizeof(prefix), "active/%s/", id);
    it_upload_dir(src, prefix, NULL);
    snprintf(url, sizeof(url), "s3://%s", it_env("WK_TEST_BUCKET"));
    it_env_init(e, url, tag, c->endpoint);
    /* none of the run's own test keys: only the chain may sign */
    it_env_add(e, "AWS_ACCESS_KEY_ID=");
    it_env_add(e, "AWS_SECRET_ACCESS_KEY=");
    it_env_add(e, "AWS_SESSION_TOKEN=");
    snprintf(log, sizeof(log), "%s/worker.log", tmp);
    snprintf(out, sizeof(out), "%s/enqueue.out", tmp);
    w = it_start_worker(e, log);
    snprintf(args, sizeof(args), "enqueue archive '%s' --wait", id);
    rc = it_cli(e, args, job, sizeof(job), out);
    ck_assert_msg(rc == 0, "enqueue --wait exited %d (see %s, %s)", rc, out,
                  log);
    ck_assert_str_eq(it_job_field(it_prefix_of(e), job, "state"), "succeeded");
    it_verify_archived(st, id, src, tmp);
    ck_assert_int_eq(it_stop(w), 0);
    assert_no_issued_secret(c, log);
    assert_no_issued_secret(c, out);
    store_free(st);
}

START_TEST(test_it_creds_web_identity_moto_sts)
{
    char tmp[512], tokfile[600];
    struct it_env e;
    struct cs c;

    it_tmpdir("credswi", tmp, sizeof(tmp));
    cs_start(&c, tmp, "3600", "0");
    snprintf(tokfile, sizeof(tokfile), "%s/token", tmp);
    it_write_file(tokfile, "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzaWxhIn0.c2ln\n");
    /* each test runs in a process of its own: the worker inherits these */
    setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/sila-archiver", 1);
    setenv("AWS_WEB_IDENTITY_TOKEN_FILE", tokfile, 1);
    setenv("AWS_ENDPOINT_URL_STS", c.endpoint, 1);
    /* the front refuses what is not signed with issued credentials */
    ck_assert_int_eq(it_sh("test \"$(curl -s -o /dev/null -w '%%{http_code}' "
                           "'%s/%s/')\" = 403",
                           c.endpoint, it_env("WK_TEST_BUCKET")),
                     0);
    archive_with(&e, tmp, "credswi", &c, 21);
    /* moto's STS issued them, every S3 request was signed with them */
    ck_assert_int_eq(cs_check(&c, "d[\"sts_calls\"] >= 1 and "
                                  "d[\"s3_ok\"] > 0 and "
                                  "d[\"s3_rejected\"] == 1 and "
                                  "len(d[\"by_key\"]) >= 1"),
                     0);
    ck_assert_int_eq(it_stop(c.pid), 0);
}
END_TEST

START_TEST(test_it_creds_container_refresh_during_job)
{
    char tmp[512], tokfile[600], log[700];
    struct it_env e;
    struct cs c;

    it_tmpdir("credsct", tmp, sizeof(tmp));
    /* 4 s credentials, S3 slowed down: the job outlives several of them */
    cs_start(&c, tmp, "4", "40");
    snprintf(tokfile, sizeof(tokfile), "%s/keys/ct-token", tmp);
    it_write_file(tokfile, CONTAINER_TOKEN);
    {
        char uri[128];
        snprintf(uri, sizeof(uri), "%s/v2/credentials/task-1", c.endpoint);
        setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri, 1);
    }
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", tokfile, 1);
    archive_with(&e, tmp, "credsct", &c, 22);
    /* refreshed while the job ran; never an unknown key. A request signed
     * just before its credentials' end may reach the server after it on
     * a loaded machine: answered ExpiredToken, it is sent again with new
     * ones (the job above succeeded), and nothing else is refused */
    ck_assert_int_eq(cs_check(&c, "len(d[\"by_key\"]) >= 2 and "
                                  "all(\": ExpiredToken (\" in r "
                                  "for r in d[\"rejects\"]) and "
                                  "d[\"s3_rejected\"] <= 20 and "
                                  "d[\"container_denied\"] == 0"),
                     0);
    snprintf(log, sizeof(log), "%s/worker.log", tmp);
    ck_assert_int_eq(it_sh("grep -q '\"event\":\"aws.credentials.refreshed\""
                           ".*\"source\":\"container\"' '%s'",
                           log),
                     0);
    ck_assert_int_eq(it_stop(c.pid), 0);
}
END_TEST

START_TEST(test_it_creds_imds_v2)
{
    char tmp[512];
    struct it_env e;
    struct cs c;

    it_tmpdir("credsim", tmp, sizeof(tmp));
    cs_start(&c, tmp, "3600", "0");
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", c.endpoint, 1);
    setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent", 1);
    setenv("AWS_CONFIG_FILE", "/nonexistent", 1);
    archive_with(&e, tmp, "credsim", &c, 23);
    ck_assert_int_eq(cs_check(&c, "d[\"imds_tokens\"] >= 1 and "
                                  "d[\"s3_ok\"] > 0 and "
                                  "d[\"s3_rejected\"] == 0 and "
                                  "d[\"imds_v1_refused\"] == 0"),
                     0);
    ck_assert_int_eq(it_stop(c.pid), 0);
}
END_TEST

Suite *it_creds_suite(void)
{
    Suite *s = suite_create("it_creds");
    TCase *tc = tcase_create("chain");

    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_it_creds_web_identity_moto_sts);
    tcase_add_test(tc, test_it_creds_container_refresh_during_job);
    tcase_add_test(tc, test_it_creds_imds_v2);
    suite_add_tcase(s, tc);
    return s;
}
