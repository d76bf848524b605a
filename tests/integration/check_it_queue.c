/* The queue never strands a job: a normal entry read together with an
 * urgent one goes back at once; a running job whose queue entry is gone is
 * repaired (queued again, or failed with its dedup key released); a job
 * that kills its worker every time ends in the dead letters after
 * SILA_MAX_ATTEMPTS deliveries; REDIS_URL passwords holding '@' and ':'
 * work and never reach a log line. Real redis-server, real workers. */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/integration/it_flow.h"
#include "tests/integration/suites.h"
#include "worker/cfg.h"
#include "worker/q.h"

#define SMALL_GEN "--ops-files 3 --blobs 2 --big-blobs 0"

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A file:// store under tmp holding n generated spaces in active/. */
static void fs_spaces(const char *tmp, char ids[][33], int n, char *root,
                      size_t rlen)
{
    snprintf(root, rlen, "%s/store", tmp);
    for (int i = 0; i < n; i++) {
        char src[700];
        it_space_id(ids[i]);
        snprintf(src, sizeof(src), "%s/space-%d", tmp, i);
        it_gen_space(src, ids[i], 300 + i, SMALL_GEN);
        ck_assert_int_eq(it_sh("mkdir -p '%s/active/%s' && cp -a '%s/.' "
                               "'%s/active/%s/'",
                               root, ids[i], src, root, ids[i]),
                         0);
    }
}

/* Lines of file holding both a and b. */
static int count_both(const char *a, const char *b, const char *file)
{
    char cmd[1024];
    int n = 0;
    FILE *p;
    snprintf(cmd, sizeof(cmd),
             "grep -- '%s' '%s' 2>/dev/null | grep -c -- '%s' 2>/dev/null", a,
             file, b);
    p = popen(cmd, "r");
    if (p) {
        if (fscanf(p, "%d", &n) != 1)
            n = 0;
        pclose(p);
    }
    return n;
}

/* Lines holding both a and b in the worker logs dir/worker-*.log. */
static int count_both_logs(const char *a, const char *b, const char *dir)
{
    char cmd[1024];
    int n = 0;
    FILE *p;
    snprintf(cmd, sizeof(cmd),
             "cat '%s'/worker-*.log | grep -- '%s' | grep -c -- '%s'", dir, a,
             b);
    p = popen(cmd, "r");
    if (p) {
        if (fscanf(p, "%d", &n) != 1)
            n = 0;
        pclose(p);
    }
    return n;
}

static void wait_for_line(const char *pattern, const char *file, int secs)
{
    for (int i = 0; i < secs * 20; i++) {
        if (it_count_in(pattern, file) > 0)
            return;
        it_sleep_ms(50);
    }
    ck_abort_msg("'%s' never appeared in %s", pattern, file);
}

static void wait_state(const struct it_env *e, const char *job,
                       const char *state, int secs)
{
    for (int i = 0; i < secs * 20; i++) {
        if (strcmp(it_job_field(it_prefix_of(e), job, "state"), state) == 0)
            return;
        it_sleep_ms(50);
    }
    ck_abort_msg("job %s never reached '%s' (is '%s')", job, state,
                 it_job_field(it_prefix_of(e), job, "state"));
}

static void enqueue(const struct it_env *e, const char *args, char *job,
                    size_t len, const char *out)
{
    ck_assert_int_eq(it_cli(e, args, job, len, out), 0);
    ck_assert_int_eq(strlen(job), 32);
}

/* Wait up to ms for pid to exit; true and *status when it did. */
static bool wait_exit(pid_t pid, unsigned ms, int *status)
{
    for (unsigned t = 0; t < ms; t += 50) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return true;
        ck_assert_int_ne(r, -1);
        it_sleep_ms(50);
    }
    return false;
}

/* 1. Worker A reads an urgent and a normal entry in one XREADGROUP (the
 * failpoint holds it between its urgent-only look and the read of both
 * lanes while the test enqueues both). The urgent job runs 6 s, past the
 * 4 s lease; the normal entry must go back at once: worker B runs it (for
 * 5 s) while the urgent job still runs, and A never touches it again. Before
 * the fix A kept it aside unrenewed, B took it over after the lease, and
 * A, done with the urgent job, acknowledged it as a duplicate under B's
 * feet (B lost its lease, the job stayed "running" for good). */
START_TEST(test_it_queue_held_aside_entry_goes_back)
{
    char ids[2][33], tmp[512], root[600], loga[600], logb[600], out[600];
    char url[700], args[200], normal[64], urgent[64];
    struct it_env ea, eb;
    pid_t a, b;
    long long t_b;

    it_tmpdir("q-aside", tmp, sizeof(tmp));
    fs_spaces(tmp, ids, 2, root, sizeof(root));
    snprintf(url, sizeof(url), "file://%s", root);
    it_env_init(&ea, url, "q-aside", NULL);
    it_env_add(&ea, "SILA_LEASE=4s");
    it_env_add(&ea, "SILA_QUEUE_BLOCK_MS=1000");
    eb = ea;
    /* A's main runner reads both lanes at once: no urgent runner of A may
     * take the urgent entry first */
    it_env_add(&ea, "SILA_URGENT_SLOTS=0");
    it_env_add(&ea,
               "SILA_FAILPOINTS=queue.read_both=sleep:3000,job.started=sleep:"
               "6000");
    it_env_add(&eb, "SILA_FAILPOINTS=job.started=sleep:5000");
    snprintf(loga, sizeof(loga), "%s/worker-a.log", tmp);
    snprintf(logb, sizeof(logb), "%s/worker-b.log", tmp);
    snprintf(out, sizeof(out), "%s/out", tmp);

    a = it_start_worker(&ea, loga);
    wait_for_line("\"name\":\"queue.read_both\"", loga, 20);
    snprintf(args, sizeof(args), "enqueue archive %s", ids[0]);
    enqueue(&ea, args, normal, sizeof(normal), out);
    snprintf(args, sizeof(args), "enqueue archive %s --urgent", ids[1]);
    enqueue(&ea, args, urgent, sizeof(urgent), out);
    /* A read both, gave the normal entry back, runs the urgent job */
    wait_for_line("\"event\":\"queue.given_back\"", loga, 10);
    ck_assert_int_eq(count_both("queue.given_back", normal, loga), 1);
    wait_state(&ea, urgent, "running", 10);
    ck_assert_str_eq(it_job_field(it_prefix_of(&ea), normal, "state"),
                     "queued");

    t_b = now_ms();
    b = it_start_worker(&eb, logb);
    /* B takes it at once (no lease to wait out), while A's urgent job
     * still runs */
    wait_state(&eb, normal, "running", 10);
    ck_assert_msg(now_ms() - t_b < 2000, "B took %lld ms to start it",
                  now_ms() - t_b);
    ck_assert_str_eq(it_job_field(it_prefix_of(&ea), urgent, "state"),
                     "running");

    ck_assert_str_eq(it_wait_job(it_prefix_of(&ea), urgent, 30), "succeeded");
    ck_assert_str_eq(it_wait_job(it_prefix_of(&ea), normal, 30), "succeeded");
    it_sleep_ms(1500); /* A loops again after its job: nothing for it */
    ck_assert_str_eq(it_job_field(it_prefix_of(&ea), normal, "attempts"), "1");
    ck_assert_str_eq(it_job_field(it_prefix_of(&ea), urgent, "attempts"), "1");
    {
        char who[64];
        snprintf(who, sizeof(who), "-%d-", (int)b);
        ck_assert_ptr_nonnull(
            strstr(it_job_field(it_prefix_of(&ea), normal, "worker"), who));
    }
    ck_assert_int_eq(count_both("\"job.claimed\"", normal, loga), 0);
    ck_assert_int_eq(count_both("\"job.reclaimed\"", normal, loga), 0);
    ck_assert_int_eq(count_both("job.duplicate_skipped", normal, loga), 0);
    ck_assert_int_eq(count_both("\"job.started\"", normal, logb), 1);
    ck_assert_int_eq(
        it_count_in("lease.lost", loga) + it_count_in("lease.lost", logb), 0);
    ck_assert_int_eq(it_count_in("job.abandoned", loga) +
                         it_count_in("job.abandoned", logb),
                     0);
    /* nothing left pending in either lane */
    ck_assert_str_eq(
        it_redis("XPENDING %sjobs sila-workers - + 10", it_prefix_of(&ea)),
        "(array of 0)");
    ck_assert_str_eq(it_redis("XPENDING %sjobs:urgent sila-workers - + 10",
                              it_prefix_of(&ea)),
                     "(array of 0)");
    ck_assert_int_eq(it_stop(a), 0);
    ck_assert_int_eq(it_stop(b), 0);
}
END_TEST

/* 1b. The same read returns both deliveries of one job (an urgent request
 * for a job queued on the normal lane adds it to the urgent lane too). A
 * runs the urgent delivery; B takes the given-back normal one over and
 * must see that the job runs under another entry: acknowledged, not run,
 * and the status hash keeps saying "running" (no "queued" from a busy
 * space lock written over a running job). */
START_TEST(test_it_queue_both_deliveries_of_one_job)
{
    char ids[1][33], tmp[512], root[600], loga[600], logb[600], out[600];
    char url[700], args[200], job[64], again[64];
    struct it_env ea, eb;
    pid_t a, b;

    it_tmpdir("q-twice", tmp, sizeof(tmp));
    fs_spaces(tmp, ids, 1, root, sizeof(root));
    snprintf(url, sizeof(url), "file://%s", root);
    it_env_init(&ea, url, "q-twice", NULL);
    it_env_add(&ea, "SILA_LEASE=4s");
    it_env_add(&ea, "SILA_QUEUE_BLOCK_MS=1000");
    eb = ea;
    /* A's main runner reads both lanes at once: no urgent runner of A may
     * take the urgent entry first */
    it_env_add(&ea, "SILA_URGENT_SLOTS=0");
    it_env_add(&ea,
               "SILA_FAILPOINTS=queue.read_both=sleep:3000,job.started=sleep:"
               "6000");
    snprintf(loga, sizeof(loga), "%s/worker-a.log", tmp);
    snprintf(logb, sizeof(logb), "%s/worker-b.log", tmp);
    snprintf(out, sizeof(out), "%s/out", tmp);

    a = it_start_worker(&ea, loga);
    wait_for_line("\"name\":\"queue.read_both\"", loga, 20);
    snprintf(args, sizeof(args), "enqueue archive %s", ids[0]);
    enqueue(&ea, args, job, sizeof(job), out);
    snprintf(args, sizeof(args), "enqueue archive %s --urgent", ids[0]);
    enqueue(&ea, args, again, sizeof(again), out);
    ck_assert_str_eq(again, job);
    wait_for_line("\"event\":\"queue.given_back\"", loga, 10);
    wait_state(&ea, job, "running", 10);
    ck_assert_str_eq(it_job_field(it_prefix_of(&ea), job, "lane"),
                     "jobs:urgent");

    b = it_start_worker(&eb, logb);
    wait_for_line("job.duplicate_skipped", logb, 3);
    ck_assert_int_eq(count_both("job.duplicate_skipped", job, logb), 1);
    for (int i = 0; i < 10; i++) { /* A's run goes on, undisturbed */
        ck_assert_str_eq(it_job_field(it_prefix_of(&ea), job, "state"),
                         "running");
        it_sleep_ms(100);
    }
    ck_assert_str_eq(it_wait_job(it_prefix_of(&ea), job, 30), "succeeded");
    ck_assert_str_eq(it_job_field(it_prefix_of(&ea), job, "attempts"), "1");
    ck_assert_int_eq(it_count_in("job.started", logb), 0);
    ck_assert_int_eq(it_count_in("job.space_busy", logb), 0);
    ck_assert_int_eq(it_count_in("lease.lost", loga), 0);
    ck_assert_str_eq(
        it_redis("XPENDING %sjobs sila-workers - + 10", it_prefix_of(&ea)),
        "(array of 0)");
    ck_assert_str_eq(it_redis("XPENDING %sjobs:urgent sila-workers - + 10",
                              it_prefix_of(&ea)),
                     "(array of 0)");
    ck_assert_int_eq(it_stop(a), 0);
    ck_assert_int_eq(it_stop(b), 0);
}
END_TEST

/* A test-side "worker" that claims the next entry and begins its run, as
 * a worker would, then vanishes. */
static void ghost_begin(struct q *q, const char *consumer, const char *job)
{
    struct q_msg m;
    struct wk_err err;
    bool got = false, began = false;
    unsigned attempts = 0;

    q_msg_init(&m);
    wk_err_clear(&err);
    ck_assert_int_eq(q_claim(q, consumer, 100, &m, &got, &err), WK_OK);
    ck_assert(got);
    ck_assert_str_eq(m.job_id, job);
    ck_assert_int_eq(q_begin(q, &m, consumer, 5, &began, &attempts, &err),
                     WK_OK);
    ck_assert(began);
    ck_assert_uint_eq(attempts, 1);
    q_msg_release(&m);
}

/* 2. Three jobs left "running" with no pending queue entry: acknowledged
 * (what a duplicate skip did), deleted from the stream (trimmed), and
 * its consumer deleted, that one with all its attempts used up. While
 * stranded, the dedup key hands each id to new requests. A worker's
 * repair pass must put the first two back (same id, they then succeed)
 * and fail the third (dead letter, dedup key released) within a bounded
 * time, after which new requests get jobs that complete. */
START_TEST(test_it_queue_stranded_job_repaired)
{
    char ids[3][33], tmp[512], root[600], log[700], out[600], url[700];
    char args[200], job[3][64], again[64], redis_url[128];
    struct it_env e;
    struct cfg_redis rc;
    struct q *q = NULL;
    struct wk_err err;
    const char *pre;
    pid_t w[3];
    long long t0, took;

    it_tmpdir("q-strand", tmp, sizeof(tmp));
    fs_spaces(tmp, ids, 3, root, sizeof(root));
    snprintf(url, sizeof(url), "file://%s", root);
    it_env_init(&e, url, "q-strand", NULL);
    it_env_add(&e, "SILA_LEASE=1s");
    it_env_add(&e, "SILA_MAX_ATTEMPTS=5");
    pre = it_prefix_of(&e);
    snprintf(out, sizeof(out), "%s/out", tmp);
    for (int i = 0; i < 3; i++) {
        snprintf(args, sizeof(args), "enqueue archive %s", ids[i]);
        enqueue(&e, args, job[i], sizeof(job[i]), out);
    }

    snprintf(redis_url, sizeof(redis_url), "redis://127.0.0.1:%s/0",
             it_env("WK_TEST_REDIS_PORT"));
    wk_err_clear(&err);
    ck_assert_int_eq(cfg_parse_redis_url(redis_url, &rc, &err), WK_OK);
    ck_assert_int_eq(q_connect(&rc, pre, 5000, &q, &err), WK_OK);
    ck_assert_int_eq(q_ensure_group(q, &err), WK_OK);
    ghost_begin(q, "ghost-a", job[0]);
    ghost_begin(q, "ghost-b", job[1]);
    ghost_begin(q, "ghost-c", job[2]);
    q_free(q);
    /* a: acknowledged; b: deleted from the stream (still in the PEL);
     * c: its consumer deleted, all attempts used */
    ck_assert_str_eq(it_redis("XACK %sjobs sila-workers %s", pre,
                              it_job_field(pre, job[0], "entry")),
                     "1");
    ck_assert_str_eq(
        it_redis("XDEL %sjobs %s", pre, it_job_field(pre, job[1], "entry")),
        "1");
    ck_assert_str_eq(
        it_redis("XGROUP DELCONSUMER %sjobs sila-workers ghost-c", pre), "1");
    ck_assert_str_eq(it_redis("HSET %sjob:%s attempts 5", pre, job[2]), "0");
    for (int i = 0; i < 3; i++)
        ck_assert_str_eq(it_job_field(pre, job[i], "state"), "running");
    /* stranded: a new request is handed the dead id */
    snprintf(args, sizeof(args), "enqueue archive %s", ids[2]);
    enqueue(&e, args, again, sizeof(again), out);
    ck_assert_str_eq(again, job[2]);

    t0 = now_ms();
    /* three workers run the repair at once: each job is repaired once */
    for (int i = 0; i < 3; i++) {
        snprintf(log, sizeof(log), "%s/worker-%d.log", tmp, i);
        w[i] = it_start_worker(&e, log);
    }
    /* a and b: queued again under their own id, then run to the end */
    ck_assert_str_eq(it_wait_job(pre, job[0], 30), "succeeded");
    ck_assert_str_eq(it_wait_job(pre, job[1], 30), "succeeded");
    ck_assert_str_eq(it_wait_job(pre, job[2], 30), "failed");
    took = now_ms() - t0;
    /* two leases (seen gone, then still gone a lease later) and a pass
     * interval, plus the runs and the start of the worker */
    ck_assert_msg(took < 8000, "repair took %lld ms", took);
    ck_assert_str_eq(it_job_field(pre, job[0], "attempts"), "2");
    ck_assert_str_eq(it_job_field(pre, job[1], "attempts"), "2");
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(count_both_logs("queue.job_repaired", job[i], tmp), 1);
    ck_assert_int_eq(count_both_logs("\"requeued\"", job[0], tmp), 1);
    ck_assert_int_eq(count_both_logs("\"requeued\"", job[1], tmp), 1);
    ck_assert_int_eq(count_both_logs("\"failed\"", job[2], tmp), 1);
    ck_assert_int_eq(count_both_logs("\"job.started\"", job[0], tmp), 1);
    ck_assert_int_eq(count_both_logs("\"job.started\"", job[1], tmp), 1);
    ck_assert_int_eq(count_both_logs("\"job.started\"", job[2], tmp), 0);
    ck_assert_ptr_nonnull(strstr(it_job_field(pre, job[2], "error"),
                                 "queue entry of this running job was lost"));
    ck_assert_ptr_nonnull(
        strstr(it_job_field(pre, job[2], "error"), "after 5 runs"));
    /* the failed one: dead letter, dedup key released */
    ck_assert_int_eq(it_sh("redis-cli -p %s XRANGE %sjobs:dead - + | "
                           "grep -qx %s",
                           it_env("WK_TEST_REDIS_PORT"), pre, job[2]),
                     0);
    ck_assert_str_eq(it_redis("EXISTS %sdedup:archive:%s", pre, ids[2]), "0");
    ck_assert_str_eq(it_redis("ZCARD %sjobs:running", pre), "0");

    /* new requests now get jobs that complete */
    snprintf(args, sizeof(args), "enqueue archive %s --wait", ids[2]);
    ck_assert_int_eq(it_cli(&e, args, again, sizeof(again), out), 0);
    ck_assert_str_ne(again, job[2]);
    ck_assert_str_eq(it_job_field(pre, again, "state"), "succeeded");
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(it_stop(w[i]), 0);
}
END_TEST

/* Start workers with failpoint fp=kill, one after the other; each takes
 * the job (a new delivery), dies at fp, until one that does not die.
 * Returns how many died. */
static int crash_loop(const struct it_env *e0, const char *fp, const char *tmp,
                      const char *job, pid_t *survivor, char *slog, size_t slen)
{
    int died = 0;
    for (int round = 0; round < 12; round++) {
        struct it_env e = *e0;
        char log[600], env[128];
        int status = 0;
        pid_t w;
        snprintf(env, sizeof(env), "SILA_FAILPOINTS=%s=kill", fp);
        it_env_add(&e, env);
        snprintf(log, sizeof(log), "%s/worker-%d.log", tmp, round);
        w = it_start_worker(&e, log);
        /* the lease of the dead one runs out (1 s), then it is taken */
        if (wait_exit(w, 8000, &status)) {
            ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                          "worker %d exited otherwise (status %d)", round,
                          status);
            ck_assert_int_eq(it_count_in("\"event\":\"failpoint.hit\"", log),
                             1);
            died++;
            continue;
        }
        /* alive: it must have ended the job instead */
        ck_assert_str_eq(it_wait_job(it_prefix_of(&e), job, 10), "failed");
        *survivor = w;
        snprintf(slog, slen, "%s", log);
        return died;
    }
    ck_abort_msg("the job was taken over more than 12 times");
    return died;
}

/* What a job that ended in the dead letters for good must look like; a
 * normal worker started afterwards does not run it again. */
static void check_dead_for_good(const struct it_env *e, const char *tmp,
                                const char *space, const char *job,
                                const char *why)
{
    const char *pre = it_prefix_of(e);
    char log[600], out[600], args[200], again[64];
    pid_t w;

    ck_assert_str_eq(it_job_field(pre, job, "state"), "failed");
    ck_assert_msg(strstr(it_job_field(pre, job, "error"), why), "error is '%s'",
                  it_job_field(pre, job, "error"));
    ck_assert_int_eq(it_sh("redis-cli -p %s XRANGE %sjobs:dead - + | "
                           "grep -qx %s",
                           it_env("WK_TEST_REDIS_PORT"), pre, job),
                     0);
    ck_assert_str_eq(it_redis("EXISTS %sdedup:archive:%s", pre, space), "0");
    ck_assert_str_eq(it_redis("ZCARD %sjobs:running", pre), "0");

    snprintf(log, sizeof(log), "%s/worker-normal.log", tmp);
    w = it_start_worker(e, log);
    wait_for_line("\"event\":\"queue.connected\"", log, 10);
    it_sleep_ms(3000); /* three leases: anything pending would be taken */
    ck_assert_int_eq(it_count_in(job, log), 0);
    ck_assert_str_eq(it_job_field(pre, job, "state"), "failed");
    /* the dedup key was released: a new request makes a new job */
    snprintf(out, sizeof(out), "%s/out", tmp);
    snprintf(args, sizeof(args), "enqueue archive %s --wait", space);
    ck_assert_int_eq(it_cli(e, args, again, sizeof(again), out), 0);
    ck_assert_str_ne(again, job);
    ck_assert_str_eq(it_job_field(pre, again, "state"), "succeeded");
    ck_assert_int_eq(it_stop(w), 0);
}

/* 3. A job that kills its worker every time it starts (OOM, a crash):
 * SILA_MAX_ATTEMPTS=3 deliveries die at job.started, the next delivery
 * puts it in the dead letters without running it. Before the fix every
 * takeover ran it again, forever. */
START_TEST(test_it_queue_crashing_job_dead_lettered)
{
    char ids[1][33], tmp[512], root[600], out[600], url[700], args[200];
    char job[64], slog[600];
    struct it_env e;
    pid_t survivor = 0;
    int died;

    it_tmpdir("q-crash", tmp, sizeof(tmp));
    fs_spaces(tmp, ids, 1, root, sizeof(root));
    snprintf(url, sizeof(url), "file://%s", root);
    it_env_init(&e, url, "q-crash", NULL);
    it_env_add(&e, "SILA_LEASE=1s");
    it_env_add(&e, "SILA_MAX_ATTEMPTS=3");
    snprintf(out, sizeof(out), "%s/out", tmp);
    snprintf(args, sizeof(args), "enqueue archive %s", ids[0]);
    enqueue(&e, args, job, sizeof(job), out);

    died =
        crash_loop(&e, "job.started", tmp, job, &survivor, slog, sizeof(slog));
    ck_assert_int_eq(died, 3);
    ck_assert_str_eq(it_job_field(it_prefix_of(&e), job, "attempts"), "3");
    /* the one that ended it did not start it */
    ck_assert_int_eq(count_both("\"job.started\"", job, slog), 0);
    ck_assert_int_eq(count_both("\"job.failed\"", job, slog), 1);
    ck_assert_int_eq(it_stop(survivor), 0);
    check_dead_for_good(&e, tmp, ids[0], job,
                        "gave up after 3 deliveries without an outcome");
}
END_TEST

/* 3b. The same when the worker dies before the run is even recorded
 * (job.claimed: attempts stays 0): the delivery count of the entry
 * catches it. */
START_TEST(test_it_queue_crash_before_run_counted)
{
    char ids[1][33], tmp[512], root[600], out[600], url[700], args[200];
    char job[64], slog[600];
    struct it_env e;
    pid_t survivor = 0;

    it_tmpdir("q-crash0", tmp, sizeof(tmp));
    fs_spaces(tmp, ids, 1, root, sizeof(root));
    snprintf(url, sizeof(url), "file://%s", root);
    it_env_init(&e, url, "q-crash0", NULL);
    it_env_add(&e, "SILA_LEASE=1s");
    it_env_add(&e, "SILA_MAX_ATTEMPTS=2");
    snprintf(out, sizeof(out), "%s/out", tmp);
    snprintf(args, sizeof(args), "enqueue archive %s", ids[0]);
    enqueue(&e, args, job, sizeof(job), out);

    ck_assert_int_eq(
        crash_loop(&e, "job.claimed", tmp, job, &survivor, slog, sizeof(slog)),
        2);
    ck_assert_str_eq(it_job_field(it_prefix_of(&e), job, "attempts"), "0");
    ck_assert_int_eq(it_stop(survivor), 0);
    check_dead_for_good(&e, tmp, ids[0], job,
                        "gave up after 2 deliveries without an outcome");
}
END_TEST

/* grep -F for each part of the password in every file under dir. */
static void assert_no_password(const char *dir)
{
    static const char *const parts[] = { "p@ss",   "ss@w", "w:rd",
                                         "p%40ss", "p%40", "@w:" };
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
        ck_assert_msg(it_sh("! grep -rqF -- '%s' '%s'", parts[i], dir) == 0,
                      "'%s' found in a log under %s", parts[i], dir);
}

/* 4. A redis-server whose password holds '@' and ':'; the worker and the
 * CLI connect with REDIS_URL=redis://:p%40ss@w:rd@127.0.0.1:<port>/0, run
 * a job, and no output line holds any part of the password; neither when
 * the host is wrong, unreachable or the password wrong. */
START_TEST(test_it_queue_redis_password_with_at)
{
    char ids[1][33], tmp[512], root[600], logs[600], url[700], port[16];
    char srvlog[600], envurl[200], out[700], log[700], job[64];
    const char *argv[16];
    struct it_env e;
    int n = 0;
    pid_t srv, w;

    it_tmpdir("q-auth", tmp, sizeof(tmp));
    snprintf(logs, sizeof(logs), "%s/logs", tmp);
    ck_assert_int_eq(it_sh("mkdir -p '%s'", logs), 0);
    fs_spaces(tmp, ids, 1, root, sizeof(root));
    snprintf(srvlog, sizeof(srvlog), "%s/redis.log", tmp); /* not searched */
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
    argv[n++] = "p@ss@w:rd";
    argv[n] = NULL;
    srv = it_spawn_prog(argv, srvlog);
    for (int i = 0; i < 100; i++) {
        if (it_sh("redis-cli -p %s -a 'p@ss@w:rd' --no-auth-warning ping "
                  "2>/dev/null | grep -q PONG",
                  port) == 0)
            break;
        it_sleep_ms(100);
    }

    snprintf(url, sizeof(url), "file://%s", root);
    it_env_init(&e, url, "q-auth", NULL);
    snprintf(envurl, sizeof(envurl),
             "REDIS_URL=redis://:p%%40ss@w:rd@127.0.0.1:%s/0", port);
    it_env_add(&e, envurl); /* the later REDIS_URL wins */
    snprintf(log, sizeof(log), "%s/worker.log", logs);
    snprintf(out, sizeof(out), "%s/enqueue.out", logs);
    w = it_start_worker(&e, log);
    {
        char args[200];
        snprintf(args, sizeof(args), "enqueue archive %s --wait", ids[0]);
        ck_assert_int_eq(it_cli(&e, args, job, sizeof(job), out), 0);
    }
    ck_assert_int_eq(it_sh("redis-cli -p %s -a 'p@ss@w:rd' --no-auth-warning "
                           "HGET %sjob:%s state | grep -qx succeeded",
                           port, it_prefix_of(&e), job),
                     0);
    ck_assert_int_eq(it_count_in("\"event\":\"worker.started\"", log), 1);
    ck_assert_int_eq(it_count_in("\"redis_host\":\"127.0.0.1\"", log), 1);
    ck_assert_int_eq(it_stop(w), 0);

    /* the wrong host, an unreachable port, the wrong password: errors in
     * the log, none of them with the password */
    for (int i = 0; i < 3; i++) {
        struct it_env eb = e;
        char env[200], blog[700], bout[700];
        if (i == 0)
            snprintf(env, sizeof(env),
                     "REDIS_URL=redis://:p%%40ss@w:rd@no-such-host.invalid:%s"
                     "/0",
                     port);
        else if (i == 1)
            snprintf(env, sizeof(env),
                     "REDIS_URL=redis://:p%%40ss@w:rd@127.0.0.1:%d/0",
                     it_free_port());
        else
            snprintf(env, sizeof(env),
                     "REDIS_URL=redis://:p%%40ss@w:rdX@127.0.0.1:%s/0", port);
        it_env_add(&eb, env);
        snprintf(blog, sizeof(blog), "%s/worker-bad-%d.log", logs, i);
        snprintf(bout, sizeof(bout), "%s/cli-bad-%d.out", logs, i);
        w = it_start_worker(&eb, blog);
        ck_assert_int_eq(it_cli(&eb, "jobs", job, sizeof(job), bout), 1);
        wait_for_line("\"event\":\"queue.connect_failed\"", blog, 10);
        ck_assert_int_eq(it_stop(w), 0);
        ck_assert_int_eq(
            it_count_in(i == 2 ? "redis AUTH" : "redis connect to", bout), 1);
    }
    ck_assert_int_eq(it_sh("grep -rq 'redis connect to no-such-host.invalid' "
                           "'%s'",
                           logs),
                     0);
    assert_no_password(logs);
    ck_assert_int_eq(it_stop(srv), 0);
}
END_TEST

Suite *it_queue_suite(void)
{
    const struct {
        const char *name;
        const TTest *test;
    } cases[] = {
        { "aside", test_it_queue_held_aside_entry_goes_back },
        { "aside", test_it_queue_both_deliveries_of_one_job },
        { "repair", test_it_queue_stranded_job_repaired },
        { "deliveries", test_it_queue_crashing_job_dead_lettered },
        { "deliveries", test_it_queue_crash_before_run_counted },
        { "auth", test_it_queue_redis_password_with_at },
    };
    Suite *s = suite_create("it_queue");
    TCase *tc = NULL;
    const char *cur = "";
    /* one case per behaviour: CK_RUN_CASE=aside runs one */
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (strcmp(cur, cases[i].name) != 0) {
            cur = cases[i].name;
            tc = tcase_create(cur);
            tcase_set_timeout(tc, 180);
            suite_add_tcase(s, tc);
        }
        tcase_add_test(tc, cases[i].test);
    }
    return s;
}
