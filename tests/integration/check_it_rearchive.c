/*
 * Re-archiving a space that barely changed (issue 18, part 3), on moto: a
 * generated space is archived, restored (which writes the restore record
 * metadata/<id>.restored.jsonl), touched (three objects rewritten, one
 * added, one removed) and archived again. The second archive copies every
 * unchanged entry from the first one in a few ranged GETs (at most 20
 * GetObject requests for the whole job, against one per object the first
 * time), never copies a changed object, and restores to exactly the space
 * as it was left. A record that no longer fits (its archive's ETag is not
 * the one restored) is not used: that archive reads every object.
 */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/store.h"
#include "tests/integration/it_flow.h"
#include "tests/integration/suites.h"

static json_t *result_of(const struct it_env *e, const char *job_id)
{
    const char *text = it_job_field(it_prefix_of(e), job_id, "result");
    json_t *j = json_loads(text, 0, NULL);
    ck_assert_msg(j != NULL, "result of %s: '%s'", job_id, text);
    fprintf(stderr, "it_rearchive: %s\n", text);
    return j;
}

static long long num(json_t *o, const char *k)
{
    return (long long)json_integer_value(json_object_get(o, k));
}

static long long gets_of(json_t *res)
{
    return (long long)json_integer_value(
        json_object_get(json_object_get(res, "requests"), "GetObject"));
}

static void run_job(const struct it_env *e, const char *what, const char *id,
                    const char *out, char *job, size_t len)
{
    char args[160];
    snprintf(args, sizeof(args), "enqueue %s %s --wait%s", what, id,
             strcmp(what, "unarchive") == 0 ? " --urgent" : "");
    ck_assert_msg(it_cli(e, args, job, len, out) == 0, "%s of %s failed", what,
                  id);
}

static void same_as(const char *prefix, const char *dir)
{
    ck_assert_int_eq(it_sh("python3 '%s/tests/compare_prefix.py' '%s' '%s' "
                           "'%s' --endpoint '%s' >/dev/null",
                           it_env("WK_SRCDIR"), it_env("WK_TEST_BUCKET"),
                           prefix, dir, it_env("WK_TEST_S3_ENDPOINT")),
                     0);
}

START_TEST(test_it_rearchive_copies_what_did_not_change)
{
    char id[33], tmp[512], src[600], chg[600], log[600], out[600], url[128];
    char prefix[128], job[200], key[300], path[900];
    struct it_env e;
    struct it_dir_stats ds;
    struct store *st = it_s3_store(NULL);
    json_t *a1, *a2, *a3;
    long long files;
    pid_t w;
    char *rec;
    size_t rec_len = 0;

    it_space_id(id);
    it_tmpdir("rearchive", tmp, sizeof(tmp));
    snprintf(src, sizeof(src), "%s/space", tmp);
    snprintf(chg, sizeof(chg), "%s/changed", tmp);
    /* 800 files: ops logs, small blobs, mutable blobs (none past the GET
     * cap: each is restored with one PUT, so each is recorded) */
    it_gen_space(src, id, 18,
                 "--files 800 --big-blobs 0 --var-blobs 20 --total-mib 16");
    ds = it_stats_of(src);
    snprintf(prefix, sizeof(prefix), "active/%s/", id);
    it_upload_dir(src, prefix, NULL);
    snprintf(url, sizeof(url), "s3://%s", it_env("WK_TEST_BUCKET"));
    it_env_init(&e, url, "rearchive", NULL);
    snprintf(log, sizeof(log), "%s/worker.log", tmp);
    snprintf(out, sizeof(out), "%s/out", tmp);
    w = it_start_worker(&e, log);

    run_job(&e, "archive", id, out, job, sizeof(job));
    a1 = result_of(&e, job);
    ck_assert_int_eq(num(a1, "copiedFiles"), 0);
    ck_assert_int_ge(gets_of(a1), (long long)ds.files);
    run_job(&e, "unarchive", id, out, job, sizeof(job));
    same_as(prefix, src);

    /* the record names every restored object, with its PUT's ETag */
    snprintf(key, sizeof(key), "metadata/%s.restored.jsonl", id);
    rec = it_get_text(st, key, &rec_len);
    ck_assert_ptr_nonnull(rec);
    ck_assert_msg(strstr(rec, "\"format\":\"sila.restored/1\"") != NULL,
                  "%.300s", rec);
    {
        size_t lines = 0;
        for (size_t i = 0; i < rec_len; i++)
            lines += rec[i] == '\n';
        ck_assert_uint_eq(lines, ds.files + 1);
    }
    free(rec);

    /* a short session: three objects rewritten (sila.md, an ops log, a
     * mutable blob), one blob added, one removed; in the folder too */
    ck_assert_int_eq(
        it_sh("set -e; cd '%s'; mkdir -p '%s'; "
              "op=$(find space-v1/ops -type f | sort | sed -n 5p); "
              "var=$(find space-v1/files/var -type f | sort | sed -n 2p); "
              "gone=$(find space-v1/files/static -type f | sort | sed -n 7p); "
              "printf '# touched\\n' >> sila.md; "
              "printf '{\"op\":\"late\"}\\n' >> \"$op\"; "
              "head -c 3000 /dev/urandom > \"$var\"; "
              "printf 'new blob' > space-v1/files/new.bin; "
              "for f in sila.md \"$op\" \"$var\" space-v1/files/new.bin; do "
              "mkdir -p \"%s/$(dirname \"$f\")\"; cp \"$f\" \"%s/$f\"; done; "
              "rm \"$gone\"; echo \"$gone\" > '%s/gone'",
              src, chg, chg, chg, tmp),
        0);
    it_upload_dir(chg, prefix, NULL);
    {
        char gone[512] = { 0 };
        FILE *f;
        struct wk_err err;
        const char *k = gone;
        size_t nd = 0;
        snprintf(path, sizeof(path), "%s/gone", tmp);
        f = fopen(path, "r");
        ck_assert_ptr_nonnull(f);
        ck_assert_ptr_nonnull(fgets(gone, sizeof(gone), f));
        fclose(f);
        gone[strcspn(gone, "\n")] = '\0';
        snprintf(key, sizeof(key), "%s%s", prefix, gone);
        k = key;
        wk_err_clear(&err);
        ck_assert_int_eq(store_delete_many(st, &k, 1, &nd, &err), WK_OK);
        ck_assert_uint_eq(nd, 1);
    }
    ds = it_stats_of(src);
    files = (long long)ds.files;

    run_job(&e, "archive", id, out, job, sizeof(job));
    a2 = result_of(&e, job);
    /* every object but the four new or rewritten ones copied ... */
    ck_assert_int_eq(num(a2, "copiedFiles"), files - 4);
    ck_assert_int_eq(num(a2, "fileCount"), files);
    /* ... in a few long reads: the compass of issue 18 */
    ck_assert_int_le(gets_of(a2), 20);
    ck_assert_int_eq(it_count_in("archive.reuse_failed", log), 0);
    it_verify_archived(st, id, src, tmp);

    /* and the new archive restores to the space as it was left */
    run_job(&e, "unarchive", id, out, job, sizeof(job));
    same_as(prefix, src);

    /* A record whose archive is not the version restored is not used. */
    {
        struct wk_buf b;
        struct wk_err err;
        json_t *h;
        char *nl, *body;
        snprintf(key, sizeof(key), "metadata/%s.restored.jsonl", id);
        rec = it_get_text(st, key, &rec_len);
        ck_assert_ptr_nonnull(rec);
        nl = strchr(rec, '\n');
        ck_assert_ptr_nonnull(nl);
        *nl = '\0';
        h = json_loads(rec, 0, NULL);
        ck_assert_ptr_nonnull(h);
        json_object_set_new(h, "archiveEtag", json_string("0123456789abcdef"));
        body = json_dumps(h, JSON_COMPACT);
        wk_buf_init(&b, 64u << 20);
        wk_err_clear(&err);
        ck_assert_int_eq(wk_buf_appends(&b, body, &err), WK_OK);
        ck_assert_int_eq(wk_buf_append(&b, "\n", 1, &err), WK_OK);
        ck_assert_int_eq(wk_buf_appends(&b, nl + 1, &err), WK_OK);
        ck_assert_int_eq(store_put(st, key, b.data, b.len, &err), WK_OK);
        wk_buf_release(&b);
        free(body);
        json_decref(h);
        free(rec);
    }
    run_job(&e, "archive", id, out, job, sizeof(job));
    a3 = result_of(&e, job);
    ck_assert_int_eq(num(a3, "copiedFiles"), 0);
    ck_assert_int_ge(gets_of(a3), files);
    ck_assert_int_ge(it_count_in("not the version restored", log), 1);
    it_verify_archived(st, id, src, tmp);
    run_job(&e, "unarchive", id, out, job, sizeof(job));
    same_as(prefix, src);

    json_decref(a1);
    json_decref(a2);
    json_decref(a3);
    ck_assert_int_eq(it_stop(w), 0);
    store_free(st);
}
END_TEST

Suite *it_rearchive_suite(void)
{
    Suite *s = suite_create("it_rearchive");
    TCase *tc = tcase_create("rearchive");

    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_it_rearchive_copies_what_did_not_change);
    suite_add_tcase(s, tc);
    return s;
}
