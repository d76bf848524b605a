/* A worker that lost its lease does nothing destructive. Each scenario
 * pauses a real worker (SILA_FAILPOINTS=<step>=stop raises SIGSTOP at that
 * step) past its lease, lets a second worker take the job over and finish
 * it, then resumes the first (SIGCONT) and checks that nothing was lost.
 * Also: an ambiguous manifest write (through tests/s3_fault_proxy.py), the
 * pending-delete record's archive check, one restore at a time, and a
 * user's write during a restore (If-None-Match). Real redis-server and moto
 * throughout; every process is stopped by PID. */
#include <check.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "jobs/manifest.h"
#include "tests/integration/it_flow.h"
#include "tests/integration/suites.h"

#define LEASE_ENV     "SILA_LEASE=2s"
#define PAST_LEASE_MS 2600

/* One scenario's space, environment and logs. */
struct fx {
    char id[33], tmp[512], src[600], log1[600], log2[600], out[600];
    char url[128], prefix[128];
    struct it_env e;  /* both workers' environment */
    struct it_env e1; /* e + the failpoint of worker 1 */
    char fp[160];     /* "SILA_FAILPOINTS=..." */
    struct store *st;
};

static void fx_init(struct fx *f, const char *tag, int seed, const char *gen,
                    const char *failpoints, bool short_lease)
{
    it_space_id(f->id);
    it_tmpdir(tag, f->tmp, sizeof(f->tmp));
    snprintf(f->src, sizeof(f->src), "%s/space", f->tmp);
    it_gen_space(f->src, f->id, seed, gen);
    snprintf(f->prefix, sizeof(f->prefix), "active/%s/", f->id);
    it_upload_dir(f->src, f->prefix, NULL);
    snprintf(f->url, sizeof(f->url), "s3://%s", it_env("WK_TEST_BUCKET"));
    it_env_init(&f->e, f->url, tag, NULL);
    if (short_lease)
        it_env_add(&f->e, LEASE_ENV);
    it_env_add(&f->e, "SILA_FETCH_OBJECTS=4");
    f->e1 = f->e;
    snprintf(f->fp, sizeof(f->fp), "SILA_FAILPOINTS=%s", failpoints);
    it_env_add(&f->e1, f->fp);
    snprintf(f->log1, sizeof(f->log1), "%s/worker-1.log", f->tmp);
    snprintf(f->log2, sizeof(f->log2), "%s/worker-2.log", f->tmp);
    snprintf(f->out, sizeof(f->out), "%s/out", f->tmp);
    f->st = it_s3_store(NULL);
}

static void enqueue(const struct it_env *e, const char *args, char *job,
                    size_t len, const char *out)
{
    ck_assert_int_eq(it_cli(e, args, job, len, out), 0);
    ck_assert_int_eq(strlen(job), 32);
}

/* The state letter of /proc/<pid>/stat ('T': stopped), or 0. */
static char proc_state(pid_t pid)
{
    char path[64], buf[512];
    const char *p;
    size_t n;
    FILE *fp;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    fp = fopen(path, "r");
    if (!fp)
        return 0;
    n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    p = strrchr(buf, ')');
    return p && p[1] == ' ' ? p[2] : 0;
}

static void wait_stopped(pid_t pid, const char *log, int secs)
{
    for (int i = 0; i < secs * 20; i++) {
        if (proc_state(pid) == 'T')
            return;
        it_sleep_ms(50);
    }
    ck_abort_msg("worker %d never stopped at its failpoint (see %s)", (int)pid,
                 log);
}

/* Resume the paused worker and wait until its fence stopped the job. */
static void resume_fenced(pid_t w1, const char *log1, const char *step)
{
    char pat[128];
    kill(w1, SIGCONT);
    ck_assert_msg(it_wait_in_log("\"event\":\"job.fenced\"", log1, 20),
                  "the resumed worker was not fenced (see %s)", log1);
    snprintf(pat, sizeof(pat), "\"event\":\"job.fenced\".*\"step\":\"%s\"",
             step);
    ck_assert_msg(it_count_in(pat, log1) == 1, "not fenced at '%s' (see %s)",
                  step, log1);
    /* it recorded nothing for the job */
    ck_assert_int_eq(it_count_in("\"event\":\"job.succeeded\"", log1), 0);
    ck_assert_int_eq(it_count_in("\"event\":\"job.failed\"", log1), 0);
    ck_assert_int_eq(it_count_in("\"event\":\"job.retrying\"", log1), 0);
    it_sleep_ms(500); /* let it settle: it must stay idle */
}

/* Every file of dir is an object under active/<id>/ with the same bytes,
 * and there is no other object. */
static void assert_space_is(struct store *st, const char *id, const char *dir)
{
    char cmd[800], rel[1024], key[1200], path[1700], prefix[64];
    size_t nfiles = 0;
    FILE *p;

    snprintf(cmd, sizeof(cmd), "cd '%s' && find . -type f | sed 's|^\\./||'",
             dir);
    p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    while (fgets(rel, sizeof(rel), p)) {
        struct wk_buf b, want;
        struct wk_err err;
        FILE *fp;
        size_t n;
        char chunk[8192];

        rel[strcspn(rel, "\n")] = '\0';
        snprintf(key, sizeof(key), "active/%s/%s", id, rel);
        snprintf(path, sizeof(path), "%s/%s", dir, rel);
        wk_buf_init(&b, 1u << 30);
        wk_buf_init(&want, 1u << 30);
        wk_err_clear(&err);
        ck_assert_msg(store_get_all(st, key, &b, &err) == WK_OK,
                      "'%s' is missing: %s", key, err.msg);
        fp = fopen(path, "rb");
        ck_assert_ptr_nonnull(fp);
        while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
            ck_assert_int_eq(wk_buf_append(&want, chunk, n, &err), WK_OK);
        fclose(fp);
        ck_assert_msg(b.len == want.len &&
                          (b.len == 0 || memcmp(b.data, want.data, b.len) == 0),
                      "'%s' differs from '%s'", key, path);
        wk_buf_release(&b);
        wk_buf_release(&want);
        nfiles++;
    }
    pclose(p);
    ck_assert_uint_gt(nfiles, 0);
    snprintf(prefix, sizeof(prefix), "active/%s/", id);
    ck_assert_uint_eq(it_count(st, prefix), nfiles);
}

static void put_object(struct store *st, const char *key, const char *text)
{
    struct wk_err err;
    wk_err_clear(&err);
    ck_assert_msg(store_put(st, key, text, strlen(text), &err) == WK_OK, "%s",
                  err.msg);
}

/* The last entry a restore writes (restore order: space.json, sila.md,
 * secrets, ops/, then the rest by key), relative to the space. */
static void last_restored(const char *dir, char *out, size_t len)
{
    char cmd[800];
    FILE *p;

    snprintf(cmd, sizeof(cmd),
             "cd '%s' && find . -type f | sed 's|^\\./||' | "
             "grep -v -e '^space-v1/space.json$' -e '^sila.md$' "
             "-e '^space-v1/secrets$' -e '^space-v1/ops/' | LC_ALL=C sort | "
             "tail -1",
             dir);
    p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    out[0] = '\0';
    ck_assert_ptr_nonnull(fgets(out, (int)len, p));
    out[strcspn(out, "\n")] = '\0';
    pclose(p);
    ck_assert_uint_gt(strlen(out), 0);
}

/* Archive f's space with a worker of its own (no failpoint), then stop it. */
static void archive_first(struct fx *f, const char *log)
{
    char args[200], job[64];
    pid_t w = it_start_worker(&f->e, log);
    snprintf(args, sizeof(args), "enqueue archive %s --wait", f->id);
    ck_assert_int_eq(it_cli(&f->e, args, job, sizeof(job), f->out), 0);
    ck_assert_int_eq(it_stop(w), 0);
    it_verify_archived(f->st, f->id, f->src, f->tmp);
}

/* The archive key worker 1 logged when it started its archive. */
static void started_key(const char *log, char *out, size_t len)
{
    char cmd[800];
    FILE *p;

    snprintf(cmd, sizeof(cmd),
             "grep '\"event\":\"archive.started\"' '%s' | head -1 | "
             "grep -o '\"archive_key\":\"[^\"]*\"' | cut -d'\"' -f4",
             log);
    p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    out[0] = '\0';
    if (!fgets(out, (int)len, p))
        out[0] = '\0';
    out[strcspn(out, "\n")] = '\0';
    pclose(p);
    ck_assert_msg(out[0], "no archive.started in %s", log);
}

/* (a) Paused after its upload completed, before the pending-delete record
 * and the manifest: the successor adopts the very archive key (it resumes
 * the upload the job's checkpoint names) and finishes. The stale worker
 * must not delete that key (its manifest write would fail and, unfenced,
 * drop "its" archive). */
START_TEST(test_it_fence_archive_after_upload)
{
    struct fx f;
    struct mf m;
    char args[200], job[64], key1[256];
    pid_t w1, w2;

    fx_init(&f, "fence-up", 81, "--ops-files 30 --blobs 6 --big-blobs 1",
            "archive.uploaded=stop", true);
    w1 = it_start_worker(&f.e1, f.log1);
    snprintf(args, sizeof(args), "enqueue archive %s", f.id);
    enqueue(&f.e, args, job, sizeof(job), f.out);
    wait_stopped(w1, f.log1, 60);
    started_key(f.log1, key1, sizeof(key1));
    it_sleep_ms(PAST_LEASE_MS);
    w2 = it_start_worker(&f.e, f.log2);
    ck_assert_str_eq(it_wait_job(it_prefix_of(&f.e), job, 90), "succeeded");
    ck_assert_int_eq(it_count_in("\"event\":\"job.reclaimed\"", f.log2), 1);
    ck_assert_int_eq(it_count_in("\"event\":\"archive.resuming\"", f.log2), 1);
    it_read_mf(f.st, f.id, &m);
    ck_assert_str_eq(m.archive_key, key1); /* adopted */

    resume_fenced(w1, f.log1, "archive.record");
    ck_assert_int_eq(it_stop(w1), 0);
    ck_assert_int_eq(it_stop(w2), 0);
    /* the adopted archive is whole, the manifest names it, active/ empty */
    it_verify_archived(f.st, f.id, f.src, f.tmp);
    ck_assert_str_eq(it_job_field(it_prefix_of(&f.e), job, "state"),
                     "succeeded");
    store_free(f.st);
}
END_TEST

/* (b) Paused after the first batch of deletes of the originals (a space of
 * more than one batch): the successor finishes the delete from the
 * pending-delete record, then the space is restored. The stale worker,
 * resumed, must not go on deleting: its next batch would hit the restored
 * objects, whose ETags are the archived ones again. */
START_TEST(test_it_fence_archive_during_delete)
{
    struct fx f;
    char args[200], job[64], ujob[64];
    pid_t w1, w2;

    fx_init(&f, "fence-del", 82,
            "--ops-files 1080 --blobs 20 --big-blobs 0 --var-blobs 5",
            "archive.delete_batch=stop", true);
    w1 = it_start_worker(&f.e1, f.log1);
    snprintf(args, sizeof(args), "enqueue archive %s", f.id);
    enqueue(&f.e, args, job, sizeof(job), f.out);
    wait_stopped(w1, f.log1, 120);
    /* one batch went: the rest is still there */
    ck_assert_uint_gt(it_count(f.st, f.prefix), 0);
    ck_assert_uint_lt(it_count(f.st, f.prefix), it_stats_of(f.src).files);
    it_sleep_ms(PAST_LEASE_MS);
    w2 = it_start_worker(&f.e, f.log2);
    ck_assert_str_eq(it_wait_job(it_prefix_of(&f.e), job, 120), "succeeded");
    ck_assert_int_eq(
        it_count_in("\"event\":\"archive.delete_finished\"", f.log2), 1);
    it_verify_archived(f.st, f.id, f.src, f.tmp);
    snprintf(args, sizeof(args), "enqueue unarchive %s --wait", f.id);
    ck_assert_int_eq(it_cli(&f.e, args, ujob, sizeof(ujob), f.out), 0);
    assert_space_is(f.st, f.id, f.src);

    resume_fenced(w1, f.log1, "archive.delete");
    ck_assert_int_eq(it_stop(w1), 0);
    ck_assert_int_eq(it_stop(w2), 0);
    assert_space_is(f.st, f.id, f.src);
    ck_assert_str_eq(it_mf_state(f.st, f.id), "active");
    store_free(f.st);
}
END_TEST

/* (c) Paused in the middle of a restore (after its first batch of PUTs):
 * the successor keeps what is there and restores the rest, then a user
 * rewrites one of the objects the stale worker had written. Resumed, the
 * stale worker must neither write on nor clean up what it wrote. */
START_TEST(test_it_fence_unarchive_mid_restore)
{
    struct fx f;
    char args[200], job[64], key[1200], path[1700], first[1024];
    const char *user = "{\"written\":\"by the user after the restore\"}\n";
    pid_t w1, w2;

    fx_init(&f, "fence-mid", 83, "--ops-files 40 --blobs 8 --big-blobs 0",
            "unarchive.flushed=stop", true);
    snprintf(path, sizeof(path), "%s/arch.log", f.tmp);
    archive_first(&f, path);
    w1 = it_start_worker(&f.e1, f.log1);
    snprintf(args, sizeof(args), "enqueue unarchive %s", f.id);
    enqueue(&f.e, args, job, sizeof(job), f.out);
    wait_stopped(w1, f.log1, 60);
    ck_assert_str_eq(it_mf_state(f.st, f.id), "restoring");
    ck_assert_uint_eq(it_count(f.st, f.prefix), 4); /* one batch */
    it_sleep_ms(PAST_LEASE_MS);
    w2 = it_start_worker(&f.e, f.log2);
    ck_assert_str_eq(it_wait_job(it_prefix_of(&f.e), job, 90), "succeeded");
    ck_assert_ptr_nonnull(
        strstr(it_job_field(it_prefix_of(&f.e), job, "result"), "\"kept\":4"));
    assert_space_is(f.st, f.id, f.src);
    /* the user works on the restored space: space.json is restored first */
    snprintf(first, sizeof(first), "space-v1/space.json");
    snprintf(key, sizeof(key), "active/%s/%s", f.id, first);
    put_object(f.st, key, user);
    snprintf(path, sizeof(path), "%s/%s", f.src, first);
    it_write_file(path, user);

    /* (the next PUT, or the cleanup when the heartbeat's cancel of the
     * lost run comes first) */
    resume_fenced(w1, f.log1, "unarchive\\.(put|cleanup)");
    ck_assert_int_eq(it_stop(w1), 0);
    ck_assert_int_eq(it_stop(w2), 0);
    assert_space_is(f.st, f.id, f.src);
    ck_assert_str_eq(it_mf_state(f.st, f.id), "active");
    store_free(f.st);
}
END_TEST

/* (d) Paused after everything was written and verified, before the flip to
 * active: the successor finds every object in place (kept), flips. The
 * stale worker's flip would fail (the manifest changed) and, unfenced, its
 * cleanup_written would delete the whole restored space. */
START_TEST(test_it_fence_unarchive_before_flip)
{
    struct fx f;
    char args[200], job[64], path[700];
    size_t n;
    pid_t w1, w2;

    fx_init(&f, "fence-flip", 84, "--ops-files 30 --blobs 6 --big-blobs 0",
            "unarchive.before_flip=stop", true);
    snprintf(path, sizeof(path), "%s/arch.log", f.tmp);
    archive_first(&f, path);
    n = it_stats_of(f.src).files;
    w1 = it_start_worker(&f.e1, f.log1);
    snprintf(args, sizeof(args), "enqueue unarchive %s", f.id);
    enqueue(&f.e, args, job, sizeof(job), f.out);
    wait_stopped(w1, f.log1, 60);
    ck_assert_str_eq(it_mf_state(f.st, f.id), "restoring");
    ck_assert_uint_eq(it_count(f.st, f.prefix), n);
    it_sleep_ms(PAST_LEASE_MS);
    w2 = it_start_worker(&f.e, f.log2);
    ck_assert_str_eq(it_wait_job(it_prefix_of(&f.e), job, 90), "succeeded");
    ck_assert_ptr_nonnull(strstr(
        it_job_field(it_prefix_of(&f.e), job, "result"), "\"restored\":0"));

    resume_fenced(w1, f.log1, "unarchive.manifest");
    ck_assert_int_eq(it_count_in("\"event\":\"unarchive.cleaned_up\"", f.log1),
                     0);
    ck_assert_int_eq(it_stop(w1), 0);
    ck_assert_int_eq(it_stop(w2), 0);
    assert_space_is(f.st, f.id, f.src);
    ck_assert_str_eq(it_mf_state(f.st, f.id), "active");
    store_free(f.st);
}
END_TEST

/* Start tests/s3_fault_proxy.py in front of target with control written to
 * ctl first; returns its pid once it listens. */
static pid_t start_s3_proxy(int port, const char *target, const char *ctl,
                            const char *control, const char *seed)
{
    char portstr[16], script[600], out[700];
    pid_t pid;

    snprintf(portstr, sizeof(portstr), "%d", port);
    snprintf(script, sizeof(script), "%s/tests/s3_fault_proxy.py",
             it_env("WK_SRCDIR"));
    snprintf(out, sizeof(out), "%s.out", ctl);
    it_write_file(ctl, control);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execlp("python3", "python3", script, "--port", portstr, "--target",
               target, "--control", ctl, "--seed", seed, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 100; i++) {
        if (it_sh("grep -qx ready '%s' 2>/dev/null", out) == 0)
            return pid;
        it_sleep_ms(100);
    }
    it_stop(pid);
    ck_abort_msg("s3 fault proxy did not start (see %s)", out);
    return -1;
}

/* The seed under which the proxy's draws for the n-th PUT of target
 * (n = 1, 2, 3: the manifest write and its two retries; n = 0 was the
 * "archiving" write) are: a reset, a 503, a 503 (p503_slowdown 0.5 first,
 * then preset 0.5: see draw() in tests/s3_fault_proxy.py). */
static long reset_then_503_seed(const char *target)
{
    char cmd[1024];
    long seed = -1;
    FILE *p;

    snprintf(
        cmd, sizeof(cmd),
        "python3 -c \"import random,sys\n"
        "t=sys.argv[1]\n"
        "u=lambda s,n: random.Random('%%d|PUT|%%s|%%d' %% (s,t,n)).random()\n"
        "print(next(s for s in range(1,100000) if u(s,1)>=0.5 and "
        "u(s,2)<0.5 and u(s,3)<0.5))\" '%s'",
        target);
    p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(fscanf(p, "%ld", &seed), 1);
    pclose(p);
    return seed;
}

/* (e) The manifest PUT lands but its reply is lost, and the retries fail
 * too: with then_503, the first reply is lost (reset after the server
 * handled it) and both retries get 503 SlowDown; otherwise every reply is
 * lost. The worker reads the manifest back, finds our archive and
 * generation, and carries on. (Unfixed, it dropped the archive the
 * manifest names, and the retry deleted the originals from the
 * pending-delete record.) */
static void ambiguous_manifest_write(bool then_503)
{
    struct fx f;
    char args[200], job[64], ctl[600], control[512], endpoint[128];
    char target[128], ep_env[200], mtarget[300], seed[24] = "20261206";
    const char *ep = it_env("WK_TEST_S3_ENDPOINT");
    pid_t w1, proxy;
    int port = it_free_port();

    fx_init(&f, then_503 ? "fence-amb503" : "fence-amb", 85,
            "--ops-files 30 --blobs 6 --big-blobs 1", "archive.uploaded=stop",
            false);
    snprintf(ctl, sizeof(ctl), "%s/proxy.ctl", f.tmp);
    snprintf(target, sizeof(target), "%s", strstr(ep, "//") + 2);
    snprintf(mtarget, sizeof(mtarget), "/%s/metadata/%s.json",
             it_env("WK_TEST_BUCKET"), f.id);
    if (then_503)
        snprintf(seed, sizeof(seed), "%ld", reset_then_503_seed(mtarget));
    proxy = start_s3_proxy(port, target, ctl, "{}", seed);
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", port);
    snprintf(ep_env, sizeof(ep_env), "AWS_ENDPOINT_URL_S3=%s", endpoint);
    it_env_add(&f.e1, ep_env); /* the later one wins */
    w1 = it_start_worker(&f.e1, f.log1);
    snprintf(args, sizeof(args), "enqueue archive %s", f.id);
    enqueue(&f.e, args, job, sizeof(job), f.out);
    wait_stopped(w1, f.log1, 60);
    /* from now on the PUTs of the manifest (the record is another key) */
    if (then_503)
        snprintf(control, sizeof(control),
                 "{\"p503_slowdown\": 0.5, \"preset\": 0.5, "
                 "\"reset_modes\": [\"response\"], \"match\": \"PUT\", "
                 "\"path\": \"metadata/%s\\\\.json\"}",
                 f.id);
    else
        snprintf(control, sizeof(control),
                 "{\"preset\": 1.0, \"reset_modes\": [\"response\"], "
                 "\"match\": \"PUT\", \"path\": \"metadata/%s\\\\.json\"}",
                 f.id);
    it_write_file(ctl, control);
    it_sleep_ms(400); /* read every 50 ms */
    kill(w1, SIGCONT);
    ck_assert_str_eq(it_wait_job(it_prefix_of(&f.e), job, 90), "succeeded");
    it_write_file(ctl, "{}");
    ck_assert_int_eq(
        it_count_in("\"event\":\"archive.manifest_landed\"", f.log1), 1);
    ck_assert_int_eq(it_count_in("\"event\":\"archive.orphan_kept\"", f.log1),
                     0);
    it_sleep_ms(200);
    /* the faults were the ones meant: the first reply lost, then 503s */
    if (then_503)
        ck_assert_int_eq(it_sh("python3 -c \"import json,sys; "
                               "d=json.load(open(sys.argv[1]))['by_method']"
                               "['PUT']; sys.exit(0 if d['reset_response'] == "
                               "1 and d['p503_slowdown'] == 2 else 1)\" "
                               "'%s.stats'",
                               ctl),
                         0);
    else
        ck_assert_int_eq(it_sh("python3 -c \"import json,sys; "
                               "d=json.load(open(sys.argv[1]))['by_method']"
                               "['PUT']; sys.exit(0 if d['reset_response'] >= "
                               "2 else 1)\" '%s.stats'",
                               ctl),
                         0);
    ck_assert_int_eq(it_stop(w1), 0);
    it_stop(proxy);
    it_verify_archived(f.st, f.id, f.src, f.tmp);
    store_free(f.st);
}

START_TEST(test_it_fence_ambiguous_manifest_write)
{
    ambiguous_manifest_write(false);
}
END_TEST

START_TEST(test_it_fence_ambiguous_manifest_write_then_503)
{
    ambiguous_manifest_write(true);
}
END_TEST

struct etags {
    json_t *objs; /* [[key, etag, size], ...] */
};

static enum wk_code etag_cb(const struct store_entry *e, void *ud,
                            struct wk_err *err)
{
    struct etags *t = ud;
    (void)err;
    if (!e->is_prefix)
        json_array_append_new(t->objs, json_pack("[s, s, I]", e->key, e->etag,
                                                 (json_int_t)e->size));
    return WK_OK;
}

/* (e2) A pending-delete record drives a delete only while the archive it
 * names exists: the archive is gone (deleted by the run that could not
 * tell whether its manifest landed, in older versions), the originals are
 * back under active/ with a record listing them: the archive job refuses
 * to delete, naming the archive, and every original stays. */
START_TEST(test_it_fence_pending_delete_checks_archive)
{
    struct fx f;
    struct mf m;
    struct etags t;
    struct wk_err err;
    char args[200], job[64], rkey[128], log[700];
    const char *k;
    char *text;
    size_t nd = 0, n;
    pid_t w;

    fx_init(&f, "fence-rec", 86, "--ops-files 20 --blobs 4 --big-blobs 0",
            "none=stop", false);
    snprintf(log, sizeof(log), "%s/arch.log", f.tmp);
    archive_first(&f, log);
    it_read_mf(f.st, f.id, &m);
    n = it_stats_of(f.src).files;
    it_upload_dir(f.src, f.prefix, NULL);
    t.objs = json_array();
    wk_err_clear(&err);
    ck_assert_int_eq(store_list(f.st, f.prefix, NULL, etag_cb, &t, &err),
                     WK_OK);
    {
        json_t *o = json_pack("{s:s, s:o}", "archiveKey", m.archive_key,
                              "objects", t.objs);
        text = json_dumps(o, JSON_COMPACT);
        json_decref(o);
    }
    snprintf(rkey, sizeof(rkey), "metadata/%s.pending-delete.json", f.id);
    put_object(f.st, rkey, text);
    free(text);
    k = m.archive_key;
    ck_assert_int_eq(store_delete_many(f.st, &k, 1, &nd, &err), WK_OK);

    w = it_start_worker(&f.e, f.log1);
    snprintf(args, sizeof(args), "enqueue archive %s", f.id);
    enqueue(&f.e, args, job, sizeof(job), f.out);
    ck_assert_str_eq(it_wait_job(it_prefix_of(&f.e), job, 60), "failed");
    ck_assert_ptr_nonnull(strstr(it_job_field(it_prefix_of(&f.e), job, "error"),
                                 "does not exist"));
    ck_assert_int_eq(it_stop(w), 0);
    ck_assert_uint_eq(it_count(f.st, f.prefix), n);
    assert_space_is(f.st, f.id, f.src);
    store_free(f.st);
}
END_TEST

/* (f) A restore of archive X died half way (the manifest says restoring X);
 * a restore of another archive (from the history) is refused, with an
 * error naming X, and changes nothing; restoring X again finishes it, and
 * the space is X's version exactly, not a mix. */
START_TEST(test_it_fence_one_restore_at_a_time)
{
    struct fx f;
    struct mf m;
    char args[600], job[64], log[700], key[1200], path[1700], last[1024];
    char old_key[256], cur_key[256], dedup[300];
    const char *v2 = "version two of this file\n";
    pid_t w0, w1, w2;

    fx_init(&f, "fence-two", 87, "--ops-files 30 --blobs 6 --big-blobs 0",
            "unarchive.flushed=kill", true);
    snprintf(log, sizeof(log), "%s/setup.log", f.tmp);
    /* archive A1; restore; change the file restored last; archive A2 */
    w0 = it_start_worker(&f.e, log);
    snprintf(args, sizeof(args), "enqueue archive %s --wait", f.id);
    ck_assert_int_eq(it_cli(&f.e, args, job, sizeof(job), f.out), 0);
    snprintf(args, sizeof(args), "enqueue unarchive %s --wait", f.id);
    ck_assert_int_eq(it_cli(&f.e, args, job, sizeof(job), f.out), 0);
    last_restored(f.src, last, sizeof(last));
    snprintf(key, sizeof(key), "active/%s/%s", f.id, last);
    put_object(f.st, key, v2);
    snprintf(path, sizeof(path), "%s/%s", f.src, last);
    it_write_file(path, v2);
    snprintf(args, sizeof(args), "enqueue archive %s --wait", f.id);
    ck_assert_int_eq(it_cli(&f.e, args, job, sizeof(job), f.out), 0);
    ck_assert_int_eq(it_stop(w0), 0);
    it_read_mf(f.st, f.id, &m);
    ck_assert_uint_ge(m.n_history, 1);
    snprintf(cur_key, sizeof(cur_key), "%s", m.archive_key);
    snprintf(old_key, sizeof(old_key), "%s", m.history[0].key);

    /* the restore of A2 dies after its first batch */
    w1 = it_start_worker(&f.e1, f.log1);
    snprintf(args, sizeof(args), "enqueue unarchive %s", f.id);
    enqueue(&f.e, args, job, sizeof(job), f.out);
    ck_assert_int_eq(waitpid(w1, NULL, 0), w1);
    it_read_mf(f.st, f.id, &m);
    ck_assert_int_eq(m.state, MF_RESTORING);
    ck_assert_str_eq(m.restoring_archive, cur_key);
    ck_assert_uint_eq(it_count(f.st, f.prefix), 4);
    /* the operator gives that job up (it_redis: no arrays) */
    ck_assert_str_eq(
        it_redis("HSET %sjob:%s state failed", it_prefix_of(&f.e), job), "0");
    snprintf(dedup, sizeof(dedup), "%sdedup:unarchive:%s", it_prefix_of(&f.e),
             f.id);
    it_redis("DEL %s", dedup);

    w2 = it_start_worker(&f.e, f.log2);
    snprintf(args, sizeof(args), "enqueue unarchive %s --archive-key %s", f.id,
             old_key);
    enqueue(&f.e, args, job, sizeof(job), f.out);
    ck_assert_str_eq(it_wait_job(it_prefix_of(&f.e), job, 60), "failed");
    ck_assert_ptr_nonnull(strstr(it_job_field(it_prefix_of(&f.e), job, "error"),
                                 "is being restored from"));
    it_read_mf(f.st, f.id, &m);
    ck_assert_int_eq(m.state, MF_RESTORING);
    ck_assert_str_eq(m.restoring_archive, cur_key);
    ck_assert_uint_eq(it_count(f.st, f.prefix), 4);

    snprintf(args, sizeof(args), "enqueue unarchive %s --wait", f.id);
    ck_assert_int_eq(it_cli(&f.e, args, job, sizeof(job), f.out), 0);
    ck_assert_int_eq(it_stop(w2), 0);
    assert_space_is(f.st, f.id, f.src); /* A2 exactly (v2 of that file) */
    ck_assert_str_eq(it_mf_state(f.st, f.id), "active");
    store_free(f.st);
}
END_TEST

/* (g) A user writes an object while a restore runs, before the restore
 * reaches it: the restore's conditional PUT (If-None-Match: *) keeps the
 * user's version, and the result counts it. */
START_TEST(test_it_fence_user_write_during_restore_survives)
{
    struct fx f;
    char args[200], job[64], log[700], key[1200], path[1700], last[1024];
    const char *user = "written by the user while the restore ran\n";
    pid_t w;

    fx_init(&f, "fence-inm", 88, "--ops-files 30 --blobs 6 --big-blobs 0",
            "unarchive.flushed=stop", false);
    snprintf(log, sizeof(log), "%s/arch.log", f.tmp);
    archive_first(&f, log);
    last_restored(f.src, last, sizeof(last));
    w = it_start_worker(&f.e1, f.log1);
    snprintf(args, sizeof(args), "enqueue unarchive %s", f.id);
    enqueue(&f.e, args, job, sizeof(job), f.out);
    wait_stopped(w, f.log1, 60);
    snprintf(key, sizeof(key), "active/%s/%s", f.id, last);
    put_object(f.st, key, user);
    kill(w, SIGCONT);
    ck_assert_str_eq(it_wait_job(it_prefix_of(&f.e), job, 60), "succeeded");
    ck_assert_ptr_nonnull(
        strstr(it_job_field(it_prefix_of(&f.e), job, "result"),
               "\"keptUserWrites\":1"));
    ck_assert_int_eq(
        it_count_in("\"event\":\"unarchive.kept_user_write\"", f.log1), 1);
    ck_assert_int_eq(it_stop(w), 0);
    snprintf(path, sizeof(path), "%s/%s", f.src, last);
    it_write_file(path, user);
    assert_space_is(f.st, f.id, f.src);
    store_free(f.st);
}
END_TEST

/* (h) Redis out of reach at the moment of a destructive step (a partition
 * from Redis only): ownership cannot be proven, so the run is fenced, and
 * records nothing; once Redis is back the job is taken over (here by the
 * same worker, after the lease) and finishes. */
START_TEST(test_it_fence_redis_unreachable)
{
    struct fx f;
    char args[200], job[64], ctl[600], target[64], redis_env[128];
    pid_t w1, proxy;
    int port = it_free_port();

    fx_init(&f, "fence-part", 89, "--ops-files 30 --blobs 6 --big-blobs 1",
            "archive.uploaded=stop", false);
    it_env_add(&f.e1, "SILA_LEASE=3s");
    snprintf(ctl, sizeof(ctl), "%s/redis-proxy.ctl", f.tmp);
    snprintf(target, sizeof(target), "127.0.0.1:%s",
             it_env("WK_TEST_REDIS_PORT"));
    it_write_file(ctl, "up\n");
    proxy = it_start_proxy(port, target, ctl);
    snprintf(redis_env, sizeof(redis_env), "REDIS_URL=redis://127.0.0.1:%d/0",
             port);
    it_env_add(&f.e1, redis_env); /* the later one wins */
    w1 = it_start_worker(&f.e1, f.log1);
    snprintf(args, sizeof(args), "enqueue archive %s", f.id);
    enqueue(&f.e, args, job, sizeof(job), f.out);
    wait_stopped(w1, f.log1, 60);
    it_write_file(ctl, "down\n");
    it_sleep_ms(300); /* read every 50 ms */
    kill(w1, SIGCONT);
    ck_assert_msg(it_wait_in_log("\"event\":\"job.fenced\"", f.log1, 20),
                  "not fenced (see %s)", f.log1);
    ck_assert_int_eq(
        it_count_in("\"event\":\"fence.refused\".*cannot reach redis", f.log1),
        1);
    /* nothing recorded, nothing undone: still archiving, archive kept */
    ck_assert_str_eq(it_job_field(it_prefix_of(&f.e), job, "state"), "running");
    ck_assert_str_eq(it_mf_state(f.st, f.id), "archiving");
    ck_assert_int_eq(it_count_in("\"event\":\"archive.orphan_kept\"", f.log1),
                     0);
    it_write_file(ctl, "up\n");
    ck_assert_str_eq(it_wait_job(it_prefix_of(&f.e), job, 90), "succeeded");
    ck_assert_int_eq(it_count_in("\"event\":\"job.reclaimed\"", f.log1), 1);
    ck_assert_int_eq(it_stop(w1), 0);
    it_stop(proxy);
    it_verify_archived(f.st, f.id, f.src, f.tmp);
    store_free(f.st);
}
END_TEST

Suite *it_fence_suite(void)
{
    Suite *s = suite_create("it_fence");
    TCase *tc = tcase_create("fence");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_it_fence_archive_after_upload);
    tcase_add_test(tc, test_it_fence_archive_during_delete);
    tcase_add_test(tc, test_it_fence_unarchive_mid_restore);
    tcase_add_test(tc, test_it_fence_unarchive_before_flip);
    tcase_add_test(tc, test_it_fence_ambiguous_manifest_write);
    tcase_add_test(tc, test_it_fence_ambiguous_manifest_write_then_503);
    tcase_add_test(tc, test_it_fence_pending_delete_checks_archive);
    tcase_add_test(tc, test_it_fence_one_restore_at_a_time);
    tcase_add_test(tc, test_it_fence_user_write_during_restore_survives);
    tcase_add_test(tc, test_it_fence_redis_unreachable);
    suite_add_tcase(s, tc);
    return s;
}
