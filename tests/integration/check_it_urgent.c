/* Reserved capacity for opens: an urgent restore is served while the same
 * worker process archives a long space, two urgent restores of two spaces
 * run side by side, and a delayed job (a lock-wait) is promoted while every
 * runner of the only worker is busy, an urgent job that preempts the
 * background job holding its space, and the peak memory of one worker
 * running an archive and an urgent restore at once. Real redis-server,
 * file:// store (S3 for the memory case), failpoints to make the long jobs
 * long deterministically. */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "tests/integration/it_flow.h"
#include "tests/integration/suites.h"

/* A file:// store under tmp/store holding generated spaces in active/
 * (their sources in tmp/space-<i>). */
static void fs_spaces(const char *tmp, char ids[][33], int n, int seed,
                      const char *gen, char *root, size_t rlen)
{
    snprintf(root, rlen, "%s/store", tmp);
    for (int i = 0; i < n; i++) {
        char src[700];
        it_space_id(ids[i]);
        snprintf(src, sizeof(src), "%s/space-%d", tmp, i);
        it_gen_space(src, ids[i], seed + i, gen);
        ck_assert_int_eq(it_sh("mkdir -p '%s/active/%s' && cp -a '%s/.' "
                               "'%s/active/%s/'",
                               root, ids[i], src, root, ids[i]),
                         0);
    }
}

static void enqueue(const struct it_env *e, const char *args, char *job,
                    size_t len, const char *out)
{
    ck_assert_int_eq(it_cli(e, args, job, len, out), 0);
    ck_assert_int_eq(strlen(job), 32);
}

/* Archive the spaces with a worker of its own (no failpoints), so that
 * the test's worker restores them. */
static void archive_first(const struct it_env *base, const char *tmp,
                          char ids[][33], int n)
{
    char log[700], out[700], args[200], job[64];
    struct it_env e = *base;
    pid_t w;

    snprintf(log, sizeof(log), "%s/worker-setup.log", tmp);
    snprintf(out, sizeof(out), "%s/out-setup", tmp);
    w = it_start_worker(&e, log);
    for (int i = 0; i < n; i++) {
        snprintf(args, sizeof(args), "enqueue archive %s --wait", ids[i]);
        ck_assert_int_eq(it_cli(&e, args, job, sizeof(job), out), 0);
    }
    ck_assert_int_eq(it_stop(w), 0);
}

static const char *state_of(const struct it_env *e, const char *job)
{
    return it_job_field(it_prefix_of(e), job, "state");
}

static void wait_state(const struct it_env *e, const char *job,
                       const char *state, int secs)
{
    for (int i = 0; i < secs * 20; i++) {
        if (strcmp(state_of(e, job), state) == 0)
            return;
        it_sleep_ms(50);
    }
    ck_abort_msg("job %s never reached '%s' (is '%s')", job, state,
                 state_of(e, job));
}

/* Line number (1-based) of the first line of file holding both a and b,
 * 0 when none does. */
static int line_of(const char *a, const char *b, const char *file)
{
    char cmd[1200];
    int n = 0;
    FILE *p;
    snprintf(cmd, sizeof(cmd),
             "grep -n -- '%s' '%s' | grep -- '%s' | head -1 | cut -d: -f1", a,
             file, b);
    p = popen(cmd, "r");
    if (p) {
        if (fscanf(p, "%d", &n) != 1)
            n = 0;
        pclose(p);
    }
    return n;
}

/* The restored space equals its source. */
static void assert_restored(const char *root, const char *id, const char *tmp,
                            int i)
{
    ck_assert_int_eq(it_sh("diff -r '%s/space-%d' '%s/active/%s' >/dev/null",
                           tmp, i, root, id),
                     0);
}

/* 1. One worker with two urgent runners, its main runner archiving a
 * space (held 10 s at its first batch): two urgent restores of two other
 * spaces are both served by the urgent runners, side by side (each held
 * 2 s after it starts: both start before either ends), and succeed while
 * the archive still runs; the archive then ends verified. */
START_TEST(test_it_urgent_open_while_archiving)
{
    char ids[3][33], tmp[512], root[600], log[600], out[600], url[700];
    char args[200], arch[64], ua[2][64], who[2][128];
    struct it_env e, ew;
    struct store *st;
    pid_t w;

    it_tmpdir("urg-busy", tmp, sizeof(tmp));
    fs_spaces(tmp, ids, 3, 301, "--ops-files 30 --blobs 20", root,
              sizeof(root));
    st = it_fs_store(root);
    snprintf(url, sizeof(url), "file://%s", root);
    it_env_init(&e, url, "urg-busy", NULL);
    archive_first(&e, tmp, ids + 1, 2);
    ck_assert_str_eq(it_mf_state(st, ids[1]), "archived");
    ck_assert_str_eq(it_mf_state(st, ids[2]), "archived");

    ew = e;
    it_env_add(&ew, "SILA_URGENT_SLOTS=2");
    /* job.started: pass 1 is the archive's, 2 and on the restores' */
    it_env_add(&ew, "SILA_FAILPOINTS=archive.batch=sleep:10000,"
                    "job.started=sleep:2000@2+");
    snprintf(log, sizeof(log), "%s/worker.log", tmp);
    snprintf(out, sizeof(out), "%s/out", tmp);
    w = it_start_worker(&ew, log);
    snprintf(args, sizeof(args), "enqueue archive %s", ids[0]);
    enqueue(&e, args, arch, sizeof(arch), out);
    wait_state(&e, arch, "running", 20);
    for (int i = 0; i < 2; i++) {
        snprintf(args, sizeof(args), "enqueue unarchive %s --urgent",
                 ids[i + 1]);
        enqueue(&e, args, ua[i], sizeof(ua[i]), out);
    }
    for (int i = 0; i < 2; i++)
        ck_assert_str_eq(it_wait_job(it_prefix_of(&e), ua[i], 30), "succeeded");
    /* served before the archive ended */
    ck_assert_str_eq(state_of(&e, arch), "running");
    for (int i = 0; i < 2; i++) {
        const char *wk = it_job_field(it_prefix_of(&e), ua[i], "worker");
        snprintf(who[i], sizeof(who[i]), "%s", wk);
        ck_assert_msg(strstr(who[i], "-u1") || strstr(who[i], "-u2"),
                      "restore %d ran on '%s', not an urgent runner", i, wk);
        assert_restored(root, ids[i + 1], tmp, i + 1);
    }
    ck_assert_str_ne(who[0], who[1]);
    {
        /* side by side: both started before either succeeded */
        int s0 = line_of("\"event\":\"job.started\"", ua[0], log);
        int s1 = line_of("\"event\":\"job.started\"", ua[1], log);
        int d0 = line_of("\"event\":\"job.succeeded\"", ua[0], log);
        int d1 = line_of("\"event\":\"job.succeeded\"", ua[1], log);
        ck_assert_msg(s0 > 0 && s1 > 0 && d0 > 0 && d1 > 0,
                      "events missing in %s", log);
        ck_assert_msg(s0 < d1 && s1 < d0,
                      "restores ran one after the other (see %s)", log);
    }
    ck_assert_str_eq(it_wait_job(it_prefix_of(&e), arch, 60), "succeeded");
    {
        char src[700];
        snprintf(src, sizeof(src), "%s/space-0", tmp);
        it_verify_archived(st, ids[0], src, tmp);
    }
    ck_assert_int_eq(it_stop(w), 0);
    store_free(st);
}
END_TEST

/* 2. Default settings (one urgent runner): an idle worker runs two urgent
 * restores side by side, one on its main runner, one on its urgent
 * runner. */
START_TEST(test_it_urgent_two_opens_side_by_side)
{
    char ids[2][33], tmp[512], root[600], log[600], out[600], url[700];
    char args[200], ua[2][64];
    struct it_env e, ew;
    struct store *st;
    pid_t w;

    it_tmpdir("urg-two", tmp, sizeof(tmp));
    fs_spaces(tmp, ids, 2, 311, "--ops-files 20 --blobs 10", root,
              sizeof(root));
    st = it_fs_store(root);
    snprintf(url, sizeof(url), "file://%s", root);
    it_env_init(&e, url, "urg-two", NULL);
    archive_first(&e, tmp, ids, 2);

    ew = e;
    it_env_add(&ew, "SILA_FAILPOINTS=job.started=sleep:2000@1+");
    snprintf(log, sizeof(log), "%s/worker.log", tmp);
    snprintf(out, sizeof(out), "%s/out", tmp);
    w = it_start_worker(&ew, log);
    for (int i = 0; i < 2; i++) {
        snprintf(args, sizeof(args), "enqueue unarchive %s --urgent", ids[i]);
        enqueue(&e, args, ua[i], sizeof(ua[i]), out);
    }
    for (int i = 0; i < 2; i++) {
        ck_assert_str_eq(it_wait_job(it_prefix_of(&e), ua[i], 30), "succeeded");
        assert_restored(root, ids[i], tmp, i);
    }
    {
        int s0 = line_of("\"event\":\"job.started\"", ua[0], log);
        int s1 = line_of("\"event\":\"job.started\"", ua[1], log);
        int d0 = line_of("\"event\":\"job.succeeded\"", ua[0], log);
        int d1 = line_of("\"event\":\"job.succeeded\"", ua[1], log);
        ck_assert_msg(s0 > 0 && s1 > 0 && d0 > 0 && d1 > 0,
                      "events missing in %s", log);
        ck_assert_msg(s0 < d1 && s1 < d0,
                      "restores ran one after the other (see %s)", log);
    }
    {
        /* one on the main runner, one on the urgent runner */
        char w0[128];
        snprintf(w0, sizeof(w0), "%s",
                 it_job_field(it_prefix_of(&e), ua[0], "worker"));
        ck_assert_str_ne(w0, it_job_field(it_prefix_of(&e), ua[1], "worker"));
    }
    ck_assert_int_eq(it_stop(w), 0);
    store_free(st);
}
END_TEST

/* 3. One worker, both runners busy (one archiving space A, held 12 s; the
 * other restoring B, held 7 s): an urgent restore of A found A locked and
 * waits in the delayed set (2 s; the archive is on the urgent lane itself,
 * so it is not asked to yield). It must be back on
 * its lane within about a second of being due, while both runners are
 * still busy: no runner's loop does it, the housekeeping thread does.
 * Later it runs and restores A. */
START_TEST(test_it_urgent_delayed_promoted_while_busy)
{
    char ids[2][33], tmp[512], root[600], log[600], out[600], url[700];
    char args[200], arch[64], ua_b[64], ua_a[64];
    struct it_env e, ew;
    struct store *st;
    struct timespec t0, t1;
    long long waited_ms;
    pid_t w;

    it_tmpdir("urg-delay", tmp, sizeof(tmp));
    fs_spaces(tmp, ids, 2, 321, "--ops-files 20 --blobs 10", root,
              sizeof(root));
    st = it_fs_store(root);
    snprintf(url, sizeof(url), "file://%s", root);
    it_env_init(&e, url, "urg-delay", NULL);
    archive_first(&e, tmp, ids + 1, 1);

    ew = e;
    /* job.started: pass 1 the archive of A, pass 2 the restore of B (the
     * restore of A stops at the lock, before its start) */
    it_env_add(&ew, "SILA_FAILPOINTS=archive.batch=sleep:12000,"
                    "job.started=sleep:7000@2");
    snprintf(log, sizeof(log), "%s/worker.log", tmp);
    snprintf(out, sizeof(out), "%s/out", tmp);
    w = it_start_worker(&ew, log);
    snprintf(args, sizeof(args), "enqueue archive %s --urgent", ids[0]);
    enqueue(&e, args, arch, sizeof(arch), out);
    wait_state(&e, arch, "running", 20);
    /* the other runner takes it, finds A locked: delayed 2 s */
    snprintf(args, sizeof(args), "enqueue unarchive %s --urgent", ids[0]);
    enqueue(&e, args, ua_a, sizeof(ua_a), out);
    for (int i = 0; i < 200 && line_of("job.space_busy", ua_a, log) == 0; i++)
        it_sleep_ms(50);
    ck_assert_int_gt(line_of("job.space_busy", ua_a, log), 0);
    for (int i = 0; i < 100; i++) {
        if (strcmp(it_redis("ZCARD %sjobs:delayed", it_prefix_of(&e)), "1") ==
            0)
            break;
        it_sleep_ms(20);
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_str_eq(it_redis("ZCARD %sjobs:delayed", it_prefix_of(&e)), "1");
    /* now that runner is given B and held there */
    snprintf(args, sizeof(args), "enqueue unarchive %s --urgent", ids[1]);
    enqueue(&e, args, ua_b, sizeof(ua_b), out);
    wait_state(&e, ua_b, "running", 10);
    for (int i = 0; i < 100; i++) {
        if (strcmp(it_redis("ZCARD %sjobs:delayed", it_prefix_of(&e)), "0") ==
            0)
            break;
        it_sleep_ms(50);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    waited_ms = (long long)(t1.tv_sec - t0.tv_sec) * 1000 +
                (t1.tv_nsec - t0.tv_nsec) / 1000000;
    ck_assert_str_eq(it_redis("ZCARD %sjobs:delayed", it_prefix_of(&e)), "0");
    /* due 2 s after its requeue; promoted within ~0.25 s after that */
    ck_assert_msg(waited_ms < 3500, "promoted after %lld ms", waited_ms);
    /* ... while every runner was busy */
    ck_assert_str_eq(state_of(&e, arch), "running");
    ck_assert_str_eq(state_of(&e, ua_b), "running");
    printf("it_urgent: lock-wait promoted %lld ms after its requeue, both "
           "runners busy\n",
           waited_ms);

    ck_assert_str_eq(it_wait_job(it_prefix_of(&e), ua_b, 30), "succeeded");
    assert_restored(root, ids[1], tmp, 1);
    ck_assert_str_eq(it_wait_job(it_prefix_of(&e), arch, 60), "succeeded");
    /* the restore of A waited for the archive, then brought it back */
    ck_assert_str_eq(it_wait_job(it_prefix_of(&e), ua_a, 60), "succeeded");
    assert_restored(root, ids[0], tmp, 0);
    ck_assert_int_eq(it_stop(w), 0);
    store_free(st);
}
END_TEST

/* 4. Preemption: the main runner archives space A (every batch held
 * 1.5 s); an urgent restore of A finds A locked by that background job
 * and asks it to yield: the archive stops at its next batch (its cancel
 * path: the space stays active), goes back to the queue for a while, and
 * the restore takes the lock and succeeds long before the archive could
 * have ended; the archive then ends, skipped ("opened"), the space active. */
START_TEST(test_it_urgent_preempts_background_job)
{
    char ids[1][33], tmp[512], root[600], log[600], out[600], url[700];
    char args[200], arch[64], ua[64], src[700];
    struct it_env e, ew;
    struct store *st;
    pid_t w;

    it_tmpdir("urg-yield", tmp, sizeof(tmp));
    fs_spaces(tmp, ids, 1, 341, "--ops-files 40 --blobs 30", root,
              sizeof(root));
    st = it_fs_store(root);
    snprintf(url, sizeof(url), "file://%s", root);
    it_env_init(&e, url, "urg-yield", NULL);
    ew = e;
    it_env_add(&ew, "SILA_FAILPOINTS=archive.batch=sleep:1500@1+");
    snprintf(log, sizeof(log), "%s/worker.log", tmp);
    snprintf(out, sizeof(out), "%s/out", tmp);
    w = it_start_worker(&ew, log);
    snprintf(args, sizeof(args), "enqueue archive %s", ids[0]);
    enqueue(&e, args, arch, sizeof(arch), out);
    wait_state(&e, arch, "running", 20);
    snprintf(args, sizeof(args), "enqueue unarchive %s --urgent", ids[0]);
    enqueue(&e, args, ua, sizeof(ua), out);
    ck_assert_str_eq(it_wait_job(it_prefix_of(&e), ua, 30), "succeeded");
    /* the archive gave way: it was asked and yielded before the open ended,
     * and it ended there, skipped: the space is in use again */
    ck_assert_int_gt(line_of("\"event\":\"job.yield_requested\"", arch, log),
                     0);
    ck_assert_int_gt(line_of("\"event\":\"job.yielded\"", arch, log), 0);
    ck_assert_int_lt(line_of("\"event\":\"job.yielded\"", arch, log),
                     line_of("\"event\":\"job.succeeded\"", ua, log));
    ck_assert_str_eq(it_wait_job(it_prefix_of(&e), arch, 30), "succeeded");
    {
        /* skipped for the open, and its bill (issue 18) like any result */
        json_error_t je;
        json_t *res =
            json_loads(it_job_field(it_prefix_of(&e), arch, "result"), 0, &je);
        ck_assert_msg(res != NULL, "result: %s", je.text);
        ck_assert_str_eq(json_string_value(json_object_get(res, "skipped")),
                         "opened");
        ck_assert_str_eq(json_string_value(json_object_get(res, "yieldedTo")),
                         ua);
        ck_assert(json_is_object(json_object_get(res, "requests")));
        json_decref(res);
    }
    /* a yield is not an attempt; nothing was archived or deleted */
    ck_assert_str_eq(it_job_field(it_prefix_of(&e), arch, "attempts"), "1");
    ck_assert_str_eq(it_mf_state(st, ids[0]), "active");
    snprintf(src, sizeof(src), "%s/space-0", tmp);
    ck_assert_int_eq(
        it_sh("diff -r '%s' '%s/active/%s' >/dev/null", src, root, ids[0]), 0);
    ck_assert_int_eq(it_stop(w), 0);
    store_free(st);
}
END_TEST

/* Peak resident size (VmHWM, KiB) of process pid; 0 when unreadable. */
static long peak_rss_kib(pid_t pid)
{
    char path[64], line[256];
    long kib = 0;
    FILE *f;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "VmHWM:", 6) == 0)
            kib = strtol(line + 6, NULL, 10);
    fclose(f);
    return kib;
}

/* 5. Memory: one worker with the default settings archives a 60 MiB space
 * to S3 (its batches slowed so that the restore overlaps it) while its
 * urgent runner restores a 40 MiB space: the peak resident size stays
 * within the 64 MiB target. */
START_TEST(test_it_urgent_peak_rss_both_jobs)
{
    char ids[2][33], tmp[512], src[2][600], log[600], out[600], url[128];
    char args[200], prefix[128], arch[64], ua[64];
    struct it_env e, ew;
    pid_t w;
    long kib;

    it_tmpdir("urg-rss", tmp, sizeof(tmp));
    for (int i = 0; i < 2; i++) {
        it_space_id(ids[i]);
        snprintf(src[i], sizeof(src[i]), "%s/space-%d", tmp, i);
        it_gen_space(src[i], ids[i], 331 + i,
                     i == 0 ? "--ops-files 60 --blobs 40 --big-blobs 10 "
                              "--big-size 6291456"
                            : "--ops-files 40 --blobs 40 --big-blobs 6 "
                              "--big-size 6291456");
        snprintf(prefix, sizeof(prefix), "active/%s/", ids[i]);
        it_upload_dir(src[i], prefix, NULL);
    }
    snprintf(url, sizeof(url), "s3://%s", it_env("WK_TEST_BUCKET"));
    it_env_init(&e, url, "urg-rss", NULL);
    archive_first(&e, tmp, ids + 1, 1);

    ew = e;
    it_env_add(&ew, "SILA_FAILPOINTS=archive.batch=sleep:300@1+");
    snprintf(log, sizeof(log), "%s/worker.log", tmp);
    snprintf(out, sizeof(out), "%s/out", tmp);
    w = it_start_worker(&ew, log);
    snprintf(args, sizeof(args), "enqueue archive %s", ids[0]);
    enqueue(&e, args, arch, sizeof(arch), out);
    wait_state(&e, arch, "running", 20);
    snprintf(args, sizeof(args), "enqueue unarchive %s --urgent", ids[1]);
    enqueue(&e, args, ua, sizeof(ua), out);
    ck_assert_str_eq(it_wait_job(it_prefix_of(&e), ua, 120), "succeeded");
    ck_assert_str_eq(state_of(&e, arch), "running"); /* they overlapped */
    ck_assert_str_eq(it_wait_job(it_prefix_of(&e), arch, 180), "succeeded");
    kib = peak_rss_kib(w);
    printf("it_urgent: peak RSS of one worker, archive (60 MiB) and urgent "
           "restore (40 MiB) at once, default settings: %ld KiB (%.1f "
           "MiB)\n",
           kib, (double)kib / 1024.0);
    ck_assert_int_gt(kib, 0);
    ck_assert_msg(kib <= 64 * 1024, "peak RSS %ld KiB over the 64 MiB target",
                  kib);
    ck_assert_int_eq(it_stop(w), 0);
}
END_TEST

Suite *it_urgent_suite(void)
{
    Suite *s = suite_create("it_urgent");
    TCase *tc = tcase_create("urgent");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_it_urgent_open_while_archiving);
    tcase_add_test(tc, test_it_urgent_two_opens_side_by_side);
    tcase_add_test(tc, test_it_urgent_delayed_promoted_while_busy);
    tcase_add_test(tc, test_it_urgent_preempts_background_job);
    tcase_add_test(tc, test_it_urgent_peak_rss_both_jobs);
    suite_add_tcase(s, tc);
    return s;
}
