/* The command line and the Redis side of the protocol: help, usage errors,
 * AUTH from REDIS_URL, progress events on the job's channel. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/integration/it_util.h"
#include "tests/integration/suites.h"
#include "worker/cfg.h"
#include "worker/q.h"

/* Run the CLI with an environment prefix; output into path. */
static int cli(const char *envs, const char *args, const char *out)
{
    return it_sh("env %s '%s' %s > '%s' 2>&1", envs, it_env("WK_BIN"), args,
                 out);
}

static int grep_file(const char *pattern, const char *path)
{
    return it_sh("grep -q -- '%s' '%s'", pattern, path);
}

START_TEST(test_it_cli_help_and_usage_errors)
{
    char tmp[512], out[600], envs[256];
    it_tmpdir("cli", tmp, sizeof(tmp));
    snprintf(out, sizeof(out), "%s/out", tmp);
    snprintf(envs, sizeof(envs), "REDIS_URL=redis://127.0.0.1:%s/0",
             it_env("WK_TEST_REDIS_PORT"));

    ck_assert_int_eq(cli(envs, "--help", out), 0);
    ck_assert_int_eq(grep_file("enqueue archive <spaceId>", out), 0);
    ck_assert_int_eq(cli(envs, "worker --help", out), 0);
    ck_assert_int_eq(grep_file("SIGTERM", out), 0);
    ck_assert_int_eq(cli(envs, "enqueue --help", out), 0);
    ck_assert_int_eq(grep_file("--wait", out), 0);
    ck_assert_int_eq(cli(envs, "status --help", out), 0);
    ck_assert_int_eq(grep_file("usage: sila-archiver status", out), 0);

    ck_assert_int_eq(cli(envs, "explode", out), 2);
    ck_assert_int_eq(grep_file("unknown command .explode.", out), 0);
    ck_assert_int_eq(cli(envs, "enqueue archive ../etc", out), 2);
    ck_assert_int_eq(grep_file("not a valid spaceId", out), 0);
    ck_assert_int_eq(cli(envs, "enqueue frobnicate abc", out), 2);
    ck_assert_int_eq(grep_file("unknown job type .frobnicate.", out), 0);
    ck_assert_int_eq(cli(envs, "status nosuchjob0000", out), 1);
    ck_assert_int_eq(grep_file("job .nosuchjob0000. not found", out), 0);
    /* the worker refuses to start without a store */
    ck_assert_int_eq(cli(envs, "worker", out), 2);
    ck_assert_int_eq(grep_file("SILA_STORE is not set", out), 0);
    ck_assert_int_eq(cli("SILA_PART_SIZE=1MiB", "worker", out), 2);
    ck_assert_int_eq(grep_file("SILA_PART_SIZE", out), 0);
}
END_TEST

/* A second redis-server with a password and an ACL user. */
START_TEST(test_it_cli_redis_auth_from_url)
{
    char tmp[512], out[600], log[600], envs[256], port[16], job[64];
    const char *argv[16];
    int n = 0;
    pid_t srv;

    it_tmpdir("auth", tmp, sizeof(tmp));
    snprintf(out, sizeof(out), "%s/out", tmp);
    snprintf(log, sizeof(log), "%s/redis.log", tmp);
    snprintf(port, sizeof(port), "%d", it_free_port());
    argv[n++] = "redis-server";
    argv[n++] = "--port";
    argv[n++] = port;
    argv[n++] = "--bind";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--save";
    argv[n++] = "";
    argv[n++] = "--appendonly";
    argv[n++] = "no";
    argv[n++] = "--dir";
    argv[n++] = tmp;
    argv[n++] = "--requirepass";
    argv[n++] = "pw-Default-9";
    argv[n] = NULL;
    srv = it_spawn_prog(argv, log);
    for (int i = 0; i < 100; i++) {
        if (it_sh("redis-cli -p %s -a pw-Default-9 --no-auth-warning ping "
                  "2>/dev/null | grep -q PONG",
                  port) == 0)
            break;
        it_sleep_ms(100);
    }
    ck_assert_int_eq(it_sh("redis-cli -p %s -a pw-Default-9 --no-auth-warning "
                           "ACL SETUSER alice on '>pw-Alice-7' '~*' '&*' "
                           "'+@all' | grep -q OK",
                           port),
                     0);

    /* password only */
    snprintf(envs, sizeof(envs),
             "REDIS_URL=redis://:pw-Default-9@127.0.0.1:%s/0", port);
    ck_assert_int_eq(cli(envs, "enqueue archive space-a", out), 0);
    FILE *f = fopen(out, "r");
    ck_assert_ptr_nonnull(fgets(job, sizeof(job), f));
    fclose(f);
    job[strcspn(job, "\n")] = '\0';
    ck_assert_int_eq(it_sh("redis-cli -p %s -a pw-Default-9 --no-auth-warning "
                           "HGET sila:job:%s state | grep -qx queued",
                           port, job),
                     0);
    /* user and password, percent-encoded as URLs allow */
    snprintf(envs, sizeof(envs),
             "REDIS_URL=redis://alice:pw%%2DAlice%%2D7@127.0.0.1:%s/3", port);
    ck_assert_int_eq(cli(envs, "enqueue archive space-b", out), 0);
    ck_assert_int_eq(it_sh("redis-cli -p %s -a pw-Default-9 --no-auth-warning "
                           "-n 3 XLEN sila:jobs | grep -qx 1",
                           port),
                     0);
    /* a wrong password: clear error, and the password is not echoed */
    snprintf(envs, sizeof(envs),
             "REDIS_URL=redis://:wrong-Pass-3@127.0.0.1:%s/0", port);
    ck_assert_int_eq(cli(envs, "enqueue archive space-c", out), 1);
    ck_assert_int_eq(grep_file("redis AUTH", out), 0);
    ck_assert_int_eq(grep_file("wrong-Pass-3", out), 1);
    /* no server at all */
    snprintf(envs, sizeof(envs), "REDIS_URL=redis://127.0.0.1:%d/0",
             it_free_port());
    ck_assert_int_eq(cli(envs, "enqueue archive space-d", out), 1);
    ck_assert_int_eq(grep_file("redis connect to 127.0.0.1", out), 0);

    it_stop(srv);
}
END_TEST

/* Progress events on sila:job:<id> as documented in PROTOCOL.md. */
START_TEST(test_it_cli_progress_events_published)
{
    char tmp[512], src[600], root[600], log[600], sublog[600], out[600];
    char id[33], envs[1024], pattern[128], args[128];
    const char *sub_argv[8];
    const char *wargs[] = { "worker", NULL };
    char e_store[700], e_redis[128], e_prefix[128];
    const char *wenv[6];
    pid_t sub, w;

    it_space_id(id);
    it_tmpdir("events", tmp, sizeof(tmp));
    snprintf(src, sizeof(src), "%s/store/active/%s", tmp, id);
    snprintf(root, sizeof(root), "%s/store", tmp);
    it_gen_space(src, id, 21, "--ops-files 60 --blobs 10 --big-blobs 2");
    snprintf(e_store, sizeof(e_store), "SILA_STORE=file://%s", root);
    snprintf(e_redis, sizeof(e_redis), "REDIS_URL=redis://127.0.0.1:%s/0",
             it_env("WK_TEST_REDIS_PORT"));
    snprintf(e_prefix, sizeof(e_prefix),
             "SILA_KEY_PREFIX=test:%d:ev:", (int)getpid());
    wenv[0] = e_store;
    wenv[1] = e_redis;
    wenv[2] = e_prefix;
    wenv[3] = "SILA_QUEUE_BLOCK_MS=200";
    wenv[4] = NULL;

    snprintf(sublog, sizeof(sublog), "%s/events.txt", tmp);
    snprintf(pattern, sizeof(pattern), "test:%d:ev:job:*", (int)getpid());
    sub_argv[0] = "redis-cli";
    sub_argv[1] = "-p";
    sub_argv[2] = it_env("WK_TEST_REDIS_PORT");
    sub_argv[3] = "PSUBSCRIBE";
    sub_argv[4] = pattern;
    sub_argv[5] = NULL;
    sub = it_spawn_prog(sub_argv, sublog);
    for (int i = 0; i < 50 && grep_file("psubscribe", sublog) != 0; i++)
        it_sleep_ms(100);

    snprintf(log, sizeof(log), "%s/worker.log", tmp);
    w = it_spawn(wargs, wenv, log);
    snprintf(envs, sizeof(envs), "'%s' '%s' '%s'", e_store, e_redis, e_prefix);
    snprintf(out, sizeof(out), "%s/out", tmp);
    snprintf(args, sizeof(args), "enqueue archive %s --wait", id);
    ck_assert_int_eq(cli(envs, args, out), 0);
    it_sleep_ms(300);
    it_stop(sub);
    it_stop(w);

    /* running events with progress counters, then the final one */
    ck_assert_int_eq(
        grep_file("\"state\":\"running\",\"type\":\"archive\"", sublog), 0);
    ck_assert_int_eq(grep_file("\"phase\":\"archiving\"", sublog), 0);
    ck_assert_int_eq(grep_file("\"filesTotal\":", sublog), 0);
    ck_assert_int_eq(grep_file("\"state\":\"succeeded\"", sublog), 0);
    ck_assert_int_eq(grep_file("\"archiveKey\":\"archived/", sublog), 0);
    /* throttled: a few events, not one per file */
    ck_assert_int_eq(it_sh("test $(grep -c '\"state\":\"running\"' '%s') -lt "
                           "40",
                           sublog),
                     0);
}
END_TEST

/* The job channel as --wait follows it: a wait ends with the job's own
 * events, never another job's, and times out when nothing comes. */
START_TEST(test_it_cli_job_channel_wait)
{
    struct cfg_redis rc;
    struct q *q = NULL, *sub = NULL;
    struct wk_err err;
    char url[128], prefix[64], chan[128];
    bool got = true;

    wk_err_clear(&err);
    snprintf(url, sizeof(url), "redis://127.0.0.1:%s/0",
             it_env("WK_TEST_REDIS_PORT"));
    ck_assert_int_eq(cfg_parse_redis_url(url, &rc, &err), WK_OK);
    snprintf(prefix, sizeof(prefix), "test:%d:chan:", (int)getpid());
    ck_assert_int_eq(q_connect(&rc, prefix, 5000, &q, &err), WK_OK);
    ck_assert_msg(q_subscribe_job(q, "job1", &sub, &err) == WK_OK, "%s",
                  err.msg);
    snprintf(chan, sizeof(chan), "%sjob:job1", prefix);
    ck_assert_str_eq(it_redis("PUBLISH %s %s", chan, "{}"), "1");

    ck_assert_int_eq(q_sub_wait(sub, 2000, &got, &err), WK_OK);
    ck_assert(got);
    ck_assert_int_eq(q_sub_wait(sub, 50, &got, &err), WK_OK);
    ck_assert(!got); /* nothing more */
    ck_assert_int_eq(q_publish(q, "job2", "{}", &err), WK_OK);
    ck_assert_int_eq(q_sub_wait(sub, 200, &got, &err), WK_OK);
    ck_assert(!got); /* another job's */
    /* two at once: the second may arrive in the same read */
    ck_assert_int_eq(q_publish(q, "job1", "{\"state\":\"running\"}", &err),
                     WK_OK);
    ck_assert_int_eq(q_publish(q, "job1", "{\"state\":\"succeeded\"}", &err),
                     WK_OK);
    ck_assert_int_eq(q_sub_wait(sub, 2000, &got, &err), WK_OK);
    ck_assert(got);
    ck_assert_int_eq(q_sub_wait(sub, 2000, &got, &err), WK_OK);
    ck_assert(got);
    ck_assert_int_eq(q_sub_wait(sub, 50, &got, &err), WK_OK);
    ck_assert(!got);
    q_free(sub);
    q_free(q);
}
END_TEST

/* Pub/sub is lossy: a job that ends without an event (its final PUBLISH
 * lost) still ends the wait, from the status hash. */
START_TEST(test_it_cli_wait_ends_without_event)
{
    char tmp[512], log[600], prefix[64], e_prefix[96], e_redis[96];
    char id[128] = "", key[256];
    const char *args[] = { "enqueue", "archive", "nowaitevent", "--wait",
                           NULL };
    const char *env[3];
    pid_t pid;
    int st = 0, status = -1;
    FILE *f;

    it_tmpdir("cli-wait", tmp, sizeof(tmp));
    snprintf(log, sizeof(log), "%s/out", tmp);
    snprintf(prefix, sizeof(prefix), "test:%d:nowait:", (int)getpid());
    snprintf(e_prefix, sizeof(e_prefix), "SILA_KEY_PREFIX=%s", prefix);
    snprintf(e_redis, sizeof(e_redis), "REDIS_URL=redis://127.0.0.1:%s/0",
             it_env("WK_TEST_REDIS_PORT"));
    env[0] = e_prefix;
    env[1] = e_redis;
    env[2] = NULL;
    pid = it_spawn(args, env, log); /* no worker: it waits */
    for (int i = 0; i < 100 && !id[0]; i++) {
        it_sleep_ms(50);
        f = fopen(log, "r");
        if (f) {
            if (!fgets(id, sizeof(id), f) || !strchr(id, '\n'))
                id[0] = '\0';
            fclose(f);
        }
    }
    ck_assert_msg(id[0], "no job id printed");
    id[strcspn(id, "\n")] = '\0';
    it_sleep_ms(300); /* it is waiting now */
    ck_assert_int_eq(waitpid(pid, &st, WNOHANG), 0);
    snprintf(key, sizeof(key), "%sjob:%s", prefix, id);
    it_redis("HSET %s state succeeded progress 100 result {\"ok\":1}", key);
    for (int i = 0; i < 100 && status < 0; i++) { /* up to 5 s */
        if (waitpid(pid, &st, WNOHANG) == pid)
            status = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
        else
            it_sleep_ms(50);
    }
    if (status < 0)
        it_stop(pid);
    ck_assert_int_eq(status, 0);
    ck_assert_int_eq(grep_file("succeeded", log), 0);
}
END_TEST

Suite *it_cli_suite(void)
{
    Suite *s = suite_create("it_cli");
    TCase *tc = tcase_create("cli");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_it_cli_help_and_usage_errors);
    tcase_add_test(tc, test_it_cli_redis_auth_from_url);
    tcase_add_test(tc, test_it_cli_progress_events_published);
    tcase_add_test(tc, test_it_cli_job_channel_wait);
    tcase_add_test(tc, test_it_cli_wait_ends_without_event);
    suite_add_tcase(s, tc);
    return s;
}
