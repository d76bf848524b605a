/* Hostile archives: each one generated here (tests/make_hostile_zip.py),
 * put in place with a manifest as if we had archived it, then restored by
 * a real worker. Every one must be refused with its reason, the space must
 * stay archived, and nothing may be written anywhere (the store is a
 * directory, so an escaping path would show up as a file). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jobs/manifest.h"
#include "tests/integration/it_flow.h"
#include "tests/integration/suites.h"

#define STAMP_KEY "workspace-20200101T000000Z.zip"

/* Place zip as the archive of space id, with a manifest that describes it
 * (checksum and size real; uncompressedSize and fileCount as given). */
static void plant(struct store *st, const char *root, const char *id,
                  const char *zip, uint64_t uncompressed, uint64_t files,
                  const char *checksum_override)
{
    struct mf *m = calloc(1, sizeof(*m));
    struct wk_buf b;
    struct wk_err err;
    char hex[65], key[300];
    unsigned long long size;

    ck_assert_int_eq(it_sh("mkdir -p '%s/archived/%s' && cp '%s' "
                           "'%s/archived/%s/" STAMP_KEY "'",
                           root, id, zip, root, id),
                     0);
    it_file_sha256(zip, hex, &size);
    snprintf(m->version, sizeof(m->version), "%s", MF_VERSION);
    snprintf(m->space_id, sizeof(m->space_id), "%s", id);
    m->state = MF_ARCHIVED;
    m->created_at = 1577836800;
    m->archived_at = 1577836800;
    snprintf(m->compression, sizeof(m->compression), "deflate");
    snprintf(m->archive_key, sizeof(m->archive_key), "archived/%s/" STAMP_KEY,
             id);
    snprintf(m->checksum, sizeof(m->checksum), "%s",
             checksum_override ? checksum_override : hex);
    m->size = size;
    m->uncompressed_size = uncompressed;
    m->file_count = files;
    wk_buf_init(&b, 1 << 20);
    wk_err_clear(&err);
    ck_assert_int_eq(mf_to_json(m, &b, &err), WK_OK);
    mf_key(id, key, sizeof(key));
    ck_assert_int_eq(store_put(st, key, b.data, b.len, &err), WK_OK);
    wk_buf_release(&b);
    free(m);
}

static void make_zip(const char *kind, const char *args, const char *out)
{
    ck_assert_int_eq(it_sh("python3 '%s/tests/make_hostile_zip.py' %s %s "
                           "'%s' >/dev/null",
                           it_env("WK_SRCDIR"), args ? args : "", kind, out),
                     0);
}

/* Entries and total bytes of a well-formed zip (Python's zipfile). */
static void zip_counts(const char *zip, uint64_t *files, uint64_t *bytes)
{
    char cmd[1200];
    unsigned long long f = 0, b = 0;
    FILE *p;
    snprintf(cmd, sizeof(cmd),
             "python3 -c \"import zipfile,sys; z=zipfile.ZipFile(sys.argv[1]);"
             " i=z.infolist(); print(len(i), sum(x.file_size for x in i))\" "
             "'%s'",
             zip);
    p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(fscanf(p, "%llu %llu", &f, &b), 2);
    pclose(p);
    *files = f;
    *bytes = b;
}

/* A listing of every file under dir (the store and around it). */
static void snapshot(const char *dir, const char *out)
{
    ck_assert_int_eq(it_sh("cd '%s' && find . -type f -o -type l | grep -v "
                           "'/work/\\|\\.log$\\|/out$\\|snap\\.' | sort > '%s'",
                           dir, out),
                     0);
}

START_TEST(test_it_hostile_archives_refused)
{
    static const struct {
        const char *kind, *args, *expect;
        uint64_t uncompressed; /* 0: generous (1 GiB) */
    } cases[] = {
        { "absolute", NULL, "absolute path", 0 },
        { "dotdot", NULL, "'..' component", 0 },
        { "backslash", NULL, "backslash in name", 0 },
        { "nul", NULL, "NUL byte in name", 0 },
        { "control", NULL, "control character in name", 0 },
        { "emptycomp", NULL, "empty component", 0 },
        { "badutf8", NULL, "name is not valid UTF-8", 0 },
        { "symlink", NULL, "symbolic link", 0 },
        { "symlink_xl", NULL, "symbolic link", 0 },
        { "device", NULL, "device", 0 },
        { "directory", NULL, "directory", 0 },
        { "duplicate", NULL, "duplicate name", 0 },
        /* (the central directory declares 50 MiB: past uncompressedSize,
         * refused before a byte is inflated; within it, the restore holds
         * the entry to its declared size, not to the ratio) */
        { "bomb", NULL,
          "more than 1048576 bytes, the manifest's uncompressedSize", 1048576 },
        { "oversize", "--max 1048576",
          "more than 1048576 bytes, the manifest's uncompressedSize", 1048576 },
        { "truncated", NULL, "truncated or corrupt", 0 },
        { "corrupt", NULL, "truncated or corrupt", 0 },
        { "badcrc", NULL, "bad CRC", 0 },
        { "gap", NULL, "truncated or corrupt", 0 },
        { "trailing", NULL, "truncated or corrupt", 0 },
        { "encrypted", NULL, "encrypted", 0 },
        /* ZIP64 edge cases and overlapping entries */
        { "z64_locator_outside", NULL,
          "ZIP64 end locator points to offset 1099511627776", 0 },
        { "z64_locator_garbage", NULL, "ZIP64 end locator points to offset 0",
          0 },
        { "z64_eocd_count", NULL,
          "ZIP64 end record says 5 entries, the central directory has 4", 0 },
        { "z64_eocd_size", NULL,
          "ZIP64 end record says the central directory is 560 bytes", 0 },
        { "z64_eocd_offset", NULL,
          "ZIP64 end record says the central directory is 514 bytes at "
          "offset 0",
          0 },
        { "z64_extra_short", NULL, "Malformed 64-bit compressed size", 0 },
        { "z64_extra_overrun", NULL, "Extra data overflow", 0 },
        { "z64_huge", NULL, "Malformed 64-bit uncompressed size", 0 },
        { "z64_huge_stored", NULL,
          "'space-v1/huge': local header or data outside the entries", 0 },
        { "z64_cd_disagrees", NULL,
          "central directory disagrees with the local header", 0 },
        { "sentinel", NULL, "needs a ZIP64 extra field that is missing", 0 },
        { "overlap", NULL, "overlapping entries: zip bomb?", 0 },
    };
    char tmp[512], root[600], log[600], out[600], job[200], url[700];
    char zip[700], id[64], args[200], before[600], after[600];
    struct it_env e;
    struct store *st;
    pid_t w;

    it_tmpdir("hostile", tmp, sizeof(tmp));
    snprintf(root, sizeof(root), "%s/store", tmp);
    ck_assert_int_eq(it_sh("mkdir -p '%s'", root), 0);
    st = it_fs_store(root);
    snprintf(url, sizeof(url), "file://%s", root);
    it_env_init(&e, url, "hostile", NULL);
    snprintf(log, sizeof(log), "%s/worker.log", tmp);
    snprintf(out, sizeof(out), "%s/out", tmp);
    w = it_start_worker(&e, log);

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(id, sizeof(id), "space-%s", cases[i].kind);
        snprintf(zip, sizeof(zip), "%s/zips-%s.zip", tmp, cases[i].kind);
        make_zip(cases[i].kind, cases[i].args, zip);
        plant(st, root, id, zip,
              cases[i].uncompressed ? cases[i].uncompressed : 1ULL << 30, 1000,
              NULL);
        snprintf(before, sizeof(before), "%s/snap.before", tmp);
        snprintf(after, sizeof(after), "%s/snap.after", tmp);
        snapshot(tmp, before);
        snprintf(args, sizeof(args), "enqueue unarchive %s --wait", id);
        ck_assert_msg(it_cli(&e, args, job, sizeof(job), out) == 1,
                      "%s: not refused (see %s)", cases[i].kind, out);
        const char *msg = it_job_field(it_prefix_of(&e), job, "error");
        ck_assert_msg(strstr(msg, cases[i].expect) != NULL,
                      "%s: error '%s' lacks '%s'", cases[i].kind, msg,
                      cases[i].expect);
        /* nothing written anywhere, nothing left in active/ */
        snapshot(tmp, after);
        ck_assert_msg(it_sh("cmp -s '%s' '%s'", before, after) == 0,
                      "%s: files changed: see diff %s %s", cases[i].kind,
                      before, after);
        char pfx[128];
        snprintf(pfx, sizeof(pfx), "active/%s/", id);
        ck_assert_uint_eq(it_count(st, pfx), 0);
        /* the space stays archived and readable */
        char mkey[128];
        size_t len;
        struct mf m;
        struct wk_err err;
        mf_key(id, mkey, sizeof(mkey));
        char *text = it_get_text(st, mkey, &len);
        wk_err_clear(&err);
        ck_assert_int_eq(mf_parse(text, len, &m, &err), WK_OK);
        ck_assert_int_eq(m.state, MF_ARCHIVED);
        free(text);
    }
    ck_assert_int_eq(it_sh("grep -c '\"event\":\"job.failed\"' '%s' | grep "
                           "-qx %zu",
                           log, sizeof(cases) / sizeof(cases[0])),
                     0);
    /* cat stops a bomb at the manifest's uncompressedSize: 50 MiB of
     * zeros in an archive that says 1 MiB */
    snprintf(zip, sizeof(zip), "%s/zips-bomb.zip", tmp);
    plant(st, root, "space-catbomb", zip, 1048576, 1, NULL);
    ck_assert_int_eq(
        it_cli(&e, "cat space-catbomb space-v1/bomb", job, sizeof(job), out),
        1);
    ck_assert_int_eq(it_sh("grep -a -q 'zip bomb?' '%s' && test $(stat -c %%s "
                           "'%s') -le 1100000",
                           out, out),
                     0);
    ck_assert_int_eq(it_stop(w), 0);
    store_free(st);
}
END_TEST

/* A good archive with a manifest that lies: checksum, entry count, size. */
START_TEST(test_it_hostile_manifest_mismatch_refused)
{
    static const char *bad_sum =
        "0000000000000000000000000000000000000000000000000000000000000000";
    char tmp[512], root[600], log[600], out[600], job[200], url[700];
    char zip[700], args[200], pfx[128];
    struct it_env e;
    struct store *st;
    uint64_t files, bytes;
    pid_t w;

    it_tmpdir("mfmismatch", tmp, sizeof(tmp));
    snprintf(root, sizeof(root), "%s/store", tmp);
    ck_assert_int_eq(it_sh("mkdir -p '%s'", root), 0);
    st = it_fs_store(root);
    snprintf(url, sizeof(url), "file://%s", root);
    it_env_init(&e, url, "mfmismatch", NULL);
    snprintf(log, sizeof(log), "%s/worker.log", tmp);
    snprintf(out, sizeof(out), "%s/out", tmp);
    w = it_start_worker(&e, log);
    snprintf(zip, sizeof(zip), "%s/good.zip", tmp);
    make_zip("good", NULL, zip);
    zip_counts(zip, &files, &bytes);

    /* the good one restores: the harness itself is sound */
    plant(st, root, "space-good", zip, bytes, files, NULL);
    ck_assert_int_eq(it_cli(&e, "enqueue unarchive space-good --wait", job,
                            sizeof(job), out),
                     0);
    ck_assert_uint_eq(it_count(st, "active/space-good/"), files);

    /* and so does the same space in ZIP64 */
    snprintf(zip, sizeof(zip), "%s/zip64.zip", tmp);
    make_zip("zip64", NULL, zip);
    zip_counts(zip, &files, &bytes);
    plant(st, root, "space-zip64", zip, bytes, files, NULL);
    ck_assert_int_eq(it_cli(&e, "enqueue unarchive space-zip64 --wait", job,
                            sizeof(job), out),
                     0);
    ck_assert_uint_eq(it_count(st, "active/space-zip64/"), files);
    snprintf(zip, sizeof(zip), "%s/good.zip", tmp);
    zip_counts(zip, &files, &bytes);

    plant(st, root, "space-sum", zip, bytes, files, bad_sum);
    snprintf(args, sizeof(args), "enqueue unarchive space-sum --wait");
    ck_assert_int_eq(it_cli(&e, args, job, sizeof(job), out), 1);
    ck_assert_ptr_nonnull(strstr(it_job_field(it_prefix_of(&e), job, "error"),
                                 "does not match the manifest's 000000000000"));
    snprintf(pfx, sizeof(pfx), "active/space-sum/");
    /* The checksum covers the whole archive: it is known at the end, past
     * the ready point (the space was usable, users may have written), so
     * nothing is removed and the space stays restoring with readyAt. */
    ck_assert_uint_eq(it_count(st, pfx), files);
    ck_assert_str_eq(it_mf_state(st, "space-sum"), "restoring");

    plant(st, root, "space-count", zip, bytes, files + 1, NULL);
    ck_assert_int_eq(it_cli(&e, "enqueue unarchive space-count --wait", job,
                            sizeof(job), out),
                     1);
    ck_assert_ptr_nonnull(strstr(it_job_field(it_prefix_of(&e), job, "error"),
                                 "entries, the manifest says"));
    ck_assert_uint_eq(it_count(st, "active/space-count/"), 0);

    /* the archive object is not the size the manifest says */
    plant(st, root, "space-size", zip, bytes, files, NULL);
    ck_assert_int_eq(
        it_sh("printf x >> '%s/archived/space-size/" STAMP_KEY "'", root), 0);
    ck_assert_int_eq(it_cli(&e, "enqueue unarchive space-size --wait", job,
                            sizeof(job), out),
                     1);
    ck_assert_ptr_nonnull(strstr(it_job_field(it_prefix_of(&e), job, "error"),
                                 "the manifest says"));
    ck_assert_int_eq(it_stop(w), 0);
    store_free(st);
}
END_TEST

Suite *it_hostile_suite(void)
{
    Suite *s = suite_create("it_hostile");
    TCase *tc = tcase_create("hostile");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_it_hostile_archives_refused);
    tcase_add_test(tc, test_it_hostile_manifest_mismatch_refused);
    suite_add_tcase(s, tc);
    return s;
}
