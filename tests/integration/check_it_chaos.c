/* Chaos: several workers, a stream of archive and unarchive jobs over many
 * spaces, and a killer that kill -9s a random worker at random moments and
 * starts a new one. At the end every job succeeded, every space is fully
 * active or fully archived as its manifest says, every byte matches the
 * generated original, no multipart upload is open and no lock is held.
 * WK_CHAOS_ROUNDS (default 3) and WK_CHAOS_SPACES (default 20) scale it:
 * `make check-long` runs a heavier setting. */
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

#define CHAOS_WORKERS    3
#define CHAOS_MAX_SPACES 64

static int env_int(const char *name, int def)
{
    const char *v = getenv(name);
    long n = v ? strtol(v, NULL, 10) : 0;
    return n > 0 ? (int)n : def;
}

struct chaos {
    struct it_env e;
    pid_t w[CHAOS_WORKERS];
    char logs[CHAOS_WORKERS][600];
    unsigned kills, restarts;
};

static void restart_worker(struct chaos *c, int i)
{
    c->w[i] = it_start_worker(&c->e, c->logs[i]);
    c->restarts++;
}

/* Kill one random worker with -9 and start a fresh one in its place. */
static void chaos_strike(struct chaos *c)
{
    int i = rand() % CHAOS_WORKERS;
    kill(c->w[i], SIGKILL);
    waitpid(c->w[i], NULL, 0);
    c->kills++;
    restart_worker(c, i);
}

START_TEST(test_it_chaos_kill9_workers_nothing_lost)
{
    int nspaces = env_int("WK_CHAOS_SPACES", 20);
    int rounds = env_int("WK_CHAOS_ROUNDS", 3);
    char tmp[512], url[128], out[600], src[CHAOS_MAX_SPACES][600];
    char ids[CHAOS_MAX_SPACES][33], jobs[CHAOS_MAX_SPACES][64];
    bool archived[CHAOS_MAX_SPACES];
    struct chaos c;
    struct store *st = it_s3_store(NULL);
    unsigned njobs = 0;
    unsigned long long bytes = 0;

    if (nspaces > CHAOS_MAX_SPACES)
        nspaces = CHAOS_MAX_SPACES;
    srand((unsigned)getpid());
    memset(&c, 0, sizeof(c));
    it_tmpdir("chaos", tmp, sizeof(tmp));
    snprintf(out, sizeof(out), "%s/out", tmp);
    for (int s = 0; s < nspaces; s++) {
        char prefix[2400];
        it_space_id(ids[s]);
        snprintf(src[s], sizeof(src[s]), "%s/space-%02d", tmp, s);
        /* small, with one blob big enough for a multipart upload */
        it_gen_space(src[s], ids[s], 100 + s,
                     "--ops-files 12 --blobs 3 --big-blobs 1 "
                     "--big-size 6291456 --var-blobs 2");
        snprintf(prefix, sizeof(prefix), "active/%s/", ids[s]);
        it_upload_dir(src[s], prefix, NULL);
        archived[s] = false;
        bytes += it_stats_of(src[s]).bytes;
    }
    snprintf(url, sizeof(url), "s3://%s", it_env("WK_TEST_BUCKET"));
    it_env_init(&c.e, url, "chaos", NULL);
    it_env_add(&c.e, "SILA_LEASE=2s");
    it_env_add(&c.e, "SILA_RETRY_BASE=200ms");
    it_env_add(&c.e, "SILA_RETRY_MAX=1s");
    it_env_add(&c.e, "SILA_MAX_ATTEMPTS=20");
    for (int i = 0; i < CHAOS_WORKERS; i++) {
        snprintf(c.logs[i], sizeof(c.logs[i]), "%s/worker-%d.log", tmp, i);
        restart_worker(&c, i);
    }
    c.restarts = 0;

    for (int r = 0; r < rounds; r++) {
        /* every space flips tier this round */
        for (int s = 0; s < nspaces; s++) {
            char args[2400];
            snprintf(args, sizeof(args), "enqueue %s %s",
                     archived[s] ? "unarchive" : "archive", ids[s]);
            ck_assert_int_eq(it_cli(&c.e, args, jobs[s], sizeof(jobs[s]), out),
                             0);
            njobs++;
        }
        /* strike at random moments while the round runs */
        for (int s = 0; s < nspaces; s++) {
            int left;
            do {
                left = 0;
                for (int k = 0; k < nspaces; k++) {
                    const char *stt =
                        it_job_field(it_prefix_of(&c.e), jobs[k], "state");
                    if (strcmp(stt, "succeeded") != 0 &&
                        strcmp(stt, "failed") != 0)
                        left++;
                }
                if (left && rand() % 3 == 0)
                    chaos_strike(&c);
                if (left)
                    it_sleep_ms(200 + (unsigned)(rand() % 800));
            } while (left && s == nspaces - 1);
            if (!left)
                break;
        }
        for (int s = 0; s < nspaces; s++) {
            const char *stt = it_wait_job(it_prefix_of(&c.e), jobs[s], 180);
            ck_assert_msg(strcmp(stt, "succeeded") == 0,
                          "round %d space %s job %s: %s (%s)", r, ids[s],
                          jobs[s], stt,
                          it_job_field(it_prefix_of(&c.e), jobs[s], "error"));
            archived[s] = !archived[s];
        }
    }
    for (int i = 0; i < CHAOS_WORKERS; i++)
        ck_assert_int_eq(it_stop(c.w[i]), 0);

    /* every space exactly as its manifest says, byte for byte */
    for (int s = 0; s < nspaces; s++) {
        char key[2400], stmp[700];
        struct mf m;
        struct wk_err err;
        size_t len;
        char *text;
        mf_key(ids[s], key, sizeof(key));
        text = it_get_text(st, key, &len);
        wk_err_clear(&err);
        ck_assert_int_eq(mf_parse(text, len, &m, &err), WK_OK);
        free(text);
        ck_assert_int_eq(m.state, archived[s] ? MF_ARCHIVED : MF_ACTIVE);
        if (archived[s]) {
            snprintf(stmp, sizeof(stmp), "%s/verify-%02d", tmp, s);
            ck_assert_int_eq(it_sh("mkdir -p '%s'", stmp), 0);
            it_verify_archived(st, ids[s], src[s], stmp);
        } else {
            ck_assert_int_eq(
                it_sh("python3 '%s/tests/compare_prefix.py' '%s' "
                      "'active/%s/' '%s' --endpoint '%s' >/dev/null",
                      it_env("WK_SRCDIR"), it_env("WK_TEST_BUCKET"), ids[s],
                      src[s], it_env("WK_TEST_S3_ENDPOINT")),
                0);
        }
        /* CAS blobs verify against their own names */
        ck_assert_int_eq(it_sh("python3 '%s/tests/gen_space.py' --check '%s' "
                               ">/dev/null",
                               it_env("WK_SRCDIR"), src[s]),
                         0);
        size_t pending = 99;
        snprintf(key, sizeof(key), "archived/%s/", ids[s]);
        ck_assert_int_eq(store_count_pending(st, key, &pending, &err), WK_OK);
        ck_assert_msg(pending == 0, "space %s: %zu open uploads", ids[s],
                      pending);
    }
    ck_assert_int_eq(it_sh("test -z \"$(redis-cli -p %s --scan --pattern "
                           "'%slock:*')\"",
                           it_env("WK_TEST_REDIS_PORT"), it_prefix_of(&c.e)),
                     0);
    fprintf(stderr,
            "it_chaos: %u kills, %u jobs, %d spaces, %d rounds, %llu bytes "
            "verified\n",
            c.kills, njobs, nspaces, rounds, bytes);
    ck_assert_uint_gt(c.kills, 0);
    store_free(st);
}
END_TEST

Suite *it_chaos_suite(void)
{
    Suite *s = suite_create("it_chaos");
    TCase *tc = tcase_create("chaos");
    tcase_set_timeout(tc, 1800);
    tcase_add_test(tc, test_it_chaos_kill9_workers_nothing_lost);
    suite_add_tcase(s, tc);
    return s;
}
