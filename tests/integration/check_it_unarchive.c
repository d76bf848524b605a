/* Unarchive end to end: restore verified and byte-identical, events on the
 * space channel, history and older versions, the urgent lane, enqueue
 * deduplication, hostile archives refused, and cat without restoring. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jobs/manifest.h"
#include "tests/integration/it_flow.h"
#include "tests/integration/suites.h"

static int run_job(const struct it_env *e, const char *type, const char *id,
                   const char *extra, char *job, size_t len, const char *out)
{
    char args[700];
    snprintf(args, sizeof(args), "enqueue %s '%s' %s --wait", type, id,
             extra ? extra : "");
    return it_cli(e, args, job, len, out);
}

/* A generated space uploaded to active/ of the S3 test bucket. */
static void s3_space(const char *tmp, const char *id, int seed,
                     const char *gen_args, char *src, size_t len)
{
    char prefix[128];
    snprintf(src, len, "%s/space-%s", tmp, id);
    it_gen_space(src, id, seed, gen_args);
    snprintf(prefix, sizeof(prefix), "active/%s/", id);
    it_upload_dir(src, prefix, NULL);
}

static int compare_active(const char *id, const char *src)
{
    return it_sh("python3 '%s/tests/compare_prefix.py' '%s' 'active/%s/' "
                 "'%s' --endpoint '%s' >/dev/null",
                 it_env("WK_SRCDIR"), it_env("WK_TEST_BUCKET"), id, src,
                 it_env("WK_TEST_S3_ENDPOINT"));
}

START_TEST(test_it_unarchive_s3_roundtrip_events_history)
{
    char id[33], tmp[512], src[600], log[600], out[600], job[200], url[128];
    char sublog[600], pattern[128], extra[400], key[300];
    const char *sub_argv[6];
    struct it_env e;
    struct store *st = it_s3_store(NULL);
    struct store_stat ss;
    struct wk_err err;
    struct mf *m = calloc(1, sizeof(*m));
    struct mf *m2 = calloc(1, sizeof(*m2));
    pid_t w, sub;

    it_space_id(id);
    it_tmpdir("ua-s3", tmp, sizeof(tmp));
    s3_space(tmp, id, 31, NULL, src, sizeof(src));
    snprintf(url, sizeof(url), "s3://%s", it_env("WK_TEST_BUCKET"));
    it_env_init(&e, url, "ua-s3", NULL);
    snprintf(log, sizeof(log), "%s/worker.log", tmp);
    snprintf(out, sizeof(out), "%s/out", tmp);
    w = it_start_worker(&e, log);
    ck_assert_int_eq(run_job(&e, "archive", id, NULL, job, sizeof(job), out),
                     0);
    it_verify_archived(st, id, src, tmp);
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

    ck_assert_msg(
        run_job(&e, "unarchive", id, "--urgent", job, sizeof(job), out) == 0,
        "unarchive failed, see %s and %s", out, log);
    ck_assert_int_eq(compare_active(id, src), 0);
    it_read_mf(st, id, m2);
    ck_assert_int_eq(m2->state, MF_ACTIVE);
    ck_assert(m2->restored_at >= m->archived_at);
    ck_assert_str_eq(m2->archive_key, m->archive_key);
    /* the archive is kept */
    wk_err_clear(&err);
    ck_assert_int_eq(store_head(st, m->archive_key, &ss, &err), WK_OK);
    ck_assert_uint_eq(ss.size, m->size);
    ck_assert_ptr_nonnull(strstr(it_job_field(it_prefix_of(&e), job, "result"),
                                 "\"timeToReadyMs\""));
    fprintf(stderr, "it_unarchive: %s: result %s\n", id,
            it_job_field(it_prefix_of(&e), job, "result"));
    it_sleep_ms(200);
    it_stop(sub);
    /* ready early (the sink), complete at the end (q_finish) */
    ck_assert_int_eq(it_sh("grep -q '\"event\":\"ready\",\"spaceId\":\"%s\","
                           "\"jobId\":\"%s\"' '%s'",
                           id, job, sublog),
                     0);
    ck_assert_int_eq(it_sh("grep -q '\"event\":\"complete\",\"spaceId\":"
                           "\"%s\",\"jobId\":\"%s\"' '%s'",
                           id, job, sublog),
                     0);
    ck_assert_int_eq(it_sh("test $(grep -n '\"event\":\"ready\"' '%s' | "
                           "head -n1 | cut -d: -f1) -lt $(grep -n "
                           "'\"event\":\"complete\"' '%s' | head -n1 | "
                           "cut -d: -f1)",
                           sublog, sublog),
                     0);
    ck_assert_ptr_nonnull(strstr(it_job_field(it_prefix_of(&e), job, "result"),
                                 "\"timeToCompleteMs\""));

    /* idempotent both ways */
    ck_assert_int_eq(run_job(&e, "unarchive", id, NULL, job, sizeof(job), out),
                     0);
    ck_assert_ptr_nonnull(strstr(it_job_field(it_prefix_of(&e), job, "result"),
                                 "already active"));

    /* a new version: one more ops file, archived again; the first archive
     * goes into the history */
    snprintf(key, sizeof(key),
             "active/%s/space-v1/ops/ab/cdef/2026/11/26/"
             "0123456789abcdef0123456789abcdef-m.jsonl",
             id);
    wk_err_clear(&err);
    ck_assert_int_eq(store_put(st, key, "[1,\"x\",null]\n", 13, &err), WK_OK);
    ck_assert_int_eq(run_job(&e, "archive", id, NULL, job, sizeof(job), out),
                     0);
    it_read_mf(st, id, m2);
    ck_assert_int_eq(m2->state, MF_ARCHIVED);
    ck_assert_uint_eq(m2->n_history, 1);
    ck_assert_str_eq(m2->history[0].key, m->archive_key);
    ck_assert_str_eq(m2->history[0].checksum, m->checksum);
    ck_assert_uint_eq(m2->file_count, m->file_count + 1);

    /* restore the older version: exactly the original space */
    snprintf(extra, sizeof(extra), "--archive-key '%s'", m->archive_key);
    ck_assert_msg(run_job(&e, "unarchive", id, extra, job, sizeof(job), out) ==
                      0,
                  "see %s", out);
    ck_assert_int_eq(compare_active(id, src), 0);

    ck_assert_int_eq(it_stop(w), 0);
    store_free(st);
    free(m);
    free(m2);
}
END_TEST

START_TEST(test_it_unarchive_fs_roundtrip_keeps_newest)
{
    char id[33], tmp[512], src[600], root[600], log[600], out[600], job[200];
    char url[700];
    struct it_env e;
    struct store *st;
    struct mf *m = calloc(1, sizeof(*m));
    pid_t w;

    it_space_id(id);
    it_tmpdir("ua-fs", tmp, sizeof(tmp));
    snprintf(src, sizeof(src), "%s/space", tmp);
    snprintf(root, sizeof(root), "%s/store", tmp);
    it_gen_space(src, id, 41, "--ops-files 80 --blobs 20 --big-blobs 1");
    ck_assert_int_eq(it_sh("mkdir -p '%s/active/%s' && cp -a '%s/.' "
                           "'%s/active/%s/'",
                           root, id, src, root, id),
                     0);
    st = it_fs_store(root);
    snprintf(url, sizeof(url), "file://%s", root);
    it_env_init(&e, url, "ua-fs", NULL);
    it_env_add(&e, "SILA_KEEP_ARCHIVES=2");
    snprintf(log, sizeof(log), "%s/worker.log", tmp);
    snprintf(out, sizeof(out), "%s/out", tmp);
    w = it_start_worker(&e, log);
    for (int round = 0; round < 3; round++) {
        ck_assert_int_eq(
            run_job(&e, "archive", id, NULL, job, sizeof(job), out), 0);
        ck_assert_int_eq(
            run_job(&e, "unarchive", id, NULL, job, sizeof(job), out), 0);
        /* byte-identical, same keys, nothing else */
        ck_assert_int_eq(
            it_sh("diff -r '%s' '%s/active/%s' >/dev/null", src, root, id), 0);
        it_sleep_ms(1100); /* archive names have one-second resolution */
    }
    /* newest 2 kept: the current one and one in the history */
    it_read_mf(st, id, m);
    ck_assert_uint_eq(m->n_history, 1);
    ck_assert_int_eq(
        it_sh("test $(ls '%s/archived/%s' | wc -l) -eq 2", root, id), 0);
    ck_assert_int_eq(it_sh("test -f '%s/%s' && test -f '%s/%s'", root,
                           m->archive_key, root, m->history[0].key),
                     0);
    ck_assert_int_eq(it_stop(w), 0);
    store_free(st);
    free(m);
}
END_TEST

START_TEST(test_it_unarchive_urgent_overtakes_normal_queue)
{
    char id[33], tmp[512], src[600], root[600], log[600], out[600], job[200];
    char url[700], args[800], urgent_started[64];
    struct it_env e;
    pid_t w;

    it_space_id(id);
    it_tmpdir("ua-urgent", tmp, sizeof(tmp));
    snprintf(src, sizeof(src), "%s/store/active/%s", tmp, id);
    snprintf(root, sizeof(root), "%s/store", tmp);
    it_gen_space(src, id, 51, "--ops-files 30 --blobs 5 --big-blobs 0");
    snprintf(url, sizeof(url), "file://%s", root);
    it_env_init(&e, url, "ua-urgent", NULL);
    snprintf(log, sizeof(log), "%s/worker.log", tmp);
    snprintf(out, sizeof(out), "%s/out", tmp);
    w = it_start_worker(&e, log);
    ck_assert_int_eq(run_job(&e, "archive", id, NULL, job, sizeof(job), out),
                     0);
    ck_assert_int_eq(it_stop(w), 0);

    /* 50 normal jobs wait in the queue, then one urgent restore */
    char normal[50][64];
    for (int i = 0; i < 50; i++) {
        snprintf(args, sizeof(args), "enqueue archive other-space-%02d", i);
        ck_assert_int_eq(it_cli(&e, args, normal[i], sizeof(normal[i]), out),
                         0);
    }
    /* a job file that asks for the urgent lane, as a client would */
    char jf[600], spec[200];
    snprintf(jf, sizeof(jf), "%s/job.json", tmp);
    snprintf(spec, sizeof(spec),
             "{\"type\":\"unarchive\",\"spaceId\":\"%s\","
             "\"priority\":\"urgent\"}",
             id);
    it_write_file(jf, spec);
    snprintf(args, sizeof(args), "enqueue --file '%s'", jf);
    ck_assert_int_eq(it_cli(&e, args, job, sizeof(job), out), 0);
    ck_assert_str_eq(it_redis("XLEN %sjobs:urgent", it_prefix_of(&e)), "1");

    w = it_start_worker(&e, log);
    ck_assert_str_eq(it_wait_job(it_prefix_of(&e), job, 60), "succeeded");
    snprintf(urgent_started, sizeof(urgent_started), "%s",
             it_job_field(it_prefix_of(&e), job, "startedAt"));
    int before = 0;
    for (int i = 0; i < 50; i++) {
        const char *s = it_job_field(it_prefix_of(&e), normal[i], "startedAt");
        if (s[0] && strcmp(s, urgent_started) < 0)
            before++;
    }
    /* the urgent job was the first one any worker started */
    ck_assert_int_eq(before, 0);
    for (int i = 0; i < 50; i++)
        ck_assert_str_eq(it_wait_job(it_prefix_of(&e), normal[i], 60),
                         "failed"); /* no such spaces: they fail cleanly */
    ck_assert_int_eq(it_stop(w), 0);
}
END_TEST

START_TEST(test_it_unarchive_dedup_concurrent_enqueues)
{
    char tmp[512], out[600], url[700], first[64], line[64];
    struct it_env e;
    int n = 0;

    it_tmpdir("ua-dedup", tmp, sizeof(tmp));
    snprintf(url, sizeof(url), "file://%s", tmp);
    it_env_init(&e, url, "ua-dedup", NULL);
    /* 10 processes at once, no worker running */
    char cmd[4096];
    n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, "env");
    for (int i = 0; e.vars[i]; i++)
        n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, " '%s'", e.vars[i]);
    ck_assert_int_eq(it_sh("cd '%s' && for i in 0 1 2 3 4 5 6 7 8 9; do "
                           "%s '%s' enqueue unarchive popular-space > out.$i "
                           "2>/dev/null & done; wait",
                           tmp, cmd, it_env("WK_BIN")),
                     0);
    for (int i = 0; i < 10; i++) {
        snprintf(out, sizeof(out), "%s/out.%d", tmp, i);
        FILE *f = fopen(out, "r");
        ck_assert_ptr_nonnull(f);
        ck_assert_ptr_nonnull(fgets(line, sizeof(line), f));
        fclose(f);
        line[strcspn(line, "\n")] = '\0';
        if (i == 0)
            snprintf(first, sizeof(first), "%s", line);
        ck_assert_str_eq(line, first);
    }
    ck_assert_str_eq(it_redis("XLEN %sjobs", it_prefix_of(&e)), "1");
    /* an urgent request for the same queued job: same id, urgent lane */
    snprintf(cmd, sizeof(cmd), "enqueue unarchive popular-space --urgent");
    snprintf(out, sizeof(out), "%s/out.u", tmp);
    ck_assert_int_eq(it_cli(&e, cmd, line, sizeof(line), out), 0);
    ck_assert_str_eq(line, first);
    ck_assert_str_eq(it_redis("XLEN %sjobs:urgent", it_prefix_of(&e)), "1");
    ck_assert_str_eq(it_job_field(it_prefix_of(&e), first, "priority"),
                     "urgent");
    /* another kind of job for the same space is not a duplicate */
    snprintf(cmd, sizeof(cmd), "enqueue archive popular-space");
    ck_assert_int_eq(it_cli(&e, cmd, line, sizeof(line), out), 0);
    ck_assert_str_ne(line, first);

    /* a worker runs the job once, though it sits on both lanes */
    char log[600];
    snprintf(log, sizeof(log), "%s/worker.log", tmp);
    pid_t w = it_start_worker(&e, log);
    ck_assert_str_eq(it_wait_job(it_prefix_of(&e), first, 30), "failed");
    it_sleep_ms(800);
    ck_assert_int_eq(it_sh("test $(grep -c '\"event\":\"job.started\".*"
                           "\"job_id\":\"%s\"\\|\"job_id\":\"%s\".*"
                           "\"event\":\"job.started\"' '%s') -eq 1",
                           first, first, log),
                     0);
    /* the other delivery is acknowledged without a run; with an urgent
     * runner and the main runner each taking one lane, the second read may
     * come a little later */
    ck_assert_int_eq(it_sh("for i in $(seq 100); do grep -q "
                           "job.duplicate_skipped '%s' && exit 0; "
                           "sleep 0.1; done; exit 1",
                           log),
                     0);
    ck_assert_int_eq(it_sh("test $(grep -c '\"event\":\"job.started\".*"
                           "\"job_id\":\"%s\"\\|\"job_id\":\"%s\".*"
                           "\"event\":\"job.started\"' '%s') -eq 1",
                           first, first, log),
                     0);
    /* once finished, a new request makes a new job */
    snprintf(cmd, sizeof(cmd), "enqueue unarchive popular-space");
    ck_assert_int_eq(it_cli(&e, cmd, line, sizeof(line), out), 0);
    ck_assert_str_ne(line, first);
    ck_assert_int_eq(it_stop(w), 0);
}
END_TEST

START_TEST(test_it_cat_reads_archived_and_active)
{
    char id[33], tmp[512], src[600], log[600], out[600], job[200], url[128];
    char args[700], cas[300];
    struct it_env e;
    pid_t w;

    it_space_id(id);
    it_tmpdir("cat", tmp, sizeof(tmp));
    s3_space(tmp, id, 61, "--ops-files 40 --blobs 8 --big-blobs 1", src,
             sizeof(src));
    snprintf(url, sizeof(url), "s3://%s", it_env("WK_TEST_BUCKET"));
    it_env_init(&e, url, "cat", NULL);
    snprintf(log, sizeof(log), "%s/worker.log", tmp);
    snprintf(out, sizeof(out), "%s/out", tmp);
    w = it_start_worker(&e, log);
    ck_assert_int_eq(run_job(&e, "archive", id, NULL, job, sizeof(job), out),
                     0);
    /* archived: read out of the ZIP with range requests */
    snprintf(args, sizeof(args), "cat %s space-v1/space.json", id);
    ck_assert_int_eq(it_cli(&e, args, job, sizeof(job), out), 0);
    ck_assert_int_eq(it_sh("cmp -s '%s' '%s/space-v1/space.json'", out, src),
                     0);
    /* a CAS blob, byte for byte */
    FILE *p;
    char cmd[800];
    snprintf(cmd, sizeof(cmd),
             "cd '%s' && find space-v1/files/static -type f | head -n 1", src);
    p = popen(cmd, "r");
    ck_assert_ptr_nonnull(fgets(cas, sizeof(cas), p));
    pclose(p);
    cas[strcspn(cas, "\n")] = '\0';
    snprintf(args, sizeof(args), "cat %s '%s'", id, cas);
    ck_assert_int_eq(it_cli(&e, args, job, sizeof(job), out), 0);
    ck_assert_int_eq(it_sh("cmp -s '%s' '%s/%s'", out, src, cas), 0);
    /* missing: exit 1, clear error */
    snprintf(args, sizeof(args), "cat %s space-v1/nope", id);
    ck_assert_int_eq(it_cli(&e, args, job, sizeof(job), out), 1);
    ck_assert_int_eq(it_sh("grep -q 'space-v1/nope' '%s'", out), 0);
    /* refused paths */
    snprintf(args, sizeof(args), "cat %s ../../etc/passwd", id);
    ck_assert_int_eq(it_cli(&e, args, job, sizeof(job), out), 2);
    /* active again: cat reads the object */
    ck_assert_int_eq(run_job(&e, "unarchive", id, NULL, job, sizeof(job), out),
                     0);
    snprintf(args, sizeof(args), "cat %s sila.md", id);
    ck_assert_int_eq(it_cli(&e, args, job, sizeof(job), out), 0);
    ck_assert_int_eq(it_sh("cmp -s '%s' '%s/sila.md'", out, src), 0);
    ck_assert_int_eq(it_stop(w), 0);
}
END_TEST

/* Objects written under active/ after the archive was made (or restored by
 * a run that died) are newer: a restore keeps them and fills in the rest. */
START_TEST(test_it_unarchive_keeps_objects_already_present)
{
    char id[33], tmp[512], src[600], root[600], log[600], out[600], job[200];
    char url[700];
    struct it_env e;
    pid_t w;

    it_space_id(id);
    it_tmpdir("ua-keep", tmp, sizeof(tmp));
    snprintf(src, sizeof(src), "%s/space", tmp);
    snprintf(root, sizeof(root), "%s/store", tmp);
    it_gen_space(src, id, 81, "--ops-files 30 --blobs 5 --big-blobs 0");
    ck_assert_int_eq(it_sh("mkdir -p '%s/active/%s' && cp -a '%s/.' "
                           "'%s/active/%s/'",
                           root, id, src, root, id),
                     0);
    snprintf(url, sizeof(url), "file://%s", root);
    it_env_init(&e, url, "ua-keep", NULL);
    snprintf(log, sizeof(log), "%s/worker.log", tmp);
    snprintf(out, sizeof(out), "%s/out", tmp);
    w = it_start_worker(&e, log);
    ck_assert_int_eq(run_job(&e, "archive", id, NULL, job, sizeof(job), out),
                     0);
    /* a newer sila.md appears, and half of a dead restore's work */
    ck_assert_int_eq(it_sh("mkdir -p '%s/active/%s/space-v1' && printf "
                           "'newer text' > '%s/active/%s/sila.md' && cp "
                           "'%s/space-v1/space.json' '%s/active/%s/space-v1/'",
                           root, id, root, id, src, root, id),
                     0);
    ck_assert_int_eq(run_job(&e, "unarchive", id, NULL, job, sizeof(job), out),
                     0);
    ck_assert_ptr_nonnull(
        strstr(it_job_field(it_prefix_of(&e), job, "result"), "\"kept\":2"));
    ck_assert_int_eq(it_sh("test \"$(cat '%s/active/%s/sila.md')\" = "
                           "'newer text'",
                           root, id),
                     0);
    /* everything else is the archive's content */
    ck_assert_int_eq(it_sh("cp '%s/active/%s/sila.md' '%s/newer' && cp "
                           "'%s/sila.md' '%s/active/%s/sila.md' && diff -r "
                           "'%s' '%s/active/%s' >/dev/null",
                           root, id, tmp, src, root, id, src, root, id),
                     0);
    ck_assert_int_eq(it_stop(w), 0);
}
END_TEST

Suite *it_unarchive_suite(void)
{
    Suite *s = suite_create("it_unarchive");
    TCase *tc = tcase_create("unarchive");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_it_unarchive_s3_roundtrip_events_history);
    tcase_add_test(tc, test_it_unarchive_fs_roundtrip_keeps_newest);
    tcase_add_test(tc, test_it_unarchive_urgent_overtakes_normal_queue);
    tcase_add_test(tc, test_it_unarchive_dedup_concurrent_enqueues);
    tcase_add_test(tc, test_it_cat_reads_archived_and_active);
    tcase_add_test(tc, test_it_unarchive_keeps_objects_already_present);
    suite_add_tcase(s, tc);
    return s;
}
