/* The one name policy end to end (moto + redis-server, the real worker):
 * a space whose keys are every kind of safe name (root files, dotfiles,
 * spaces, + % ~, unicode NFC and NFD, empty files, deep paths) archives,
 * its originals go, and the restore gives back every key byte for byte;
 * a space with one key the policy refuses fails the archive job naming the
 * key, with nothing deleted and the space still active. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/integration/it_flow.h"
#include "tests/integration/suites.h"

static const char *const names[] = {
    "space-v1/space.json", /* written with the id */
    "sila.md",
    ".DS_Store",
    "notes.txt",
    ".cache/x",
    "empty",
    ".hidden/.also hidden/empty too",
    "a name with spaces.txt",
    "plus+percent%20tilde~.txt",
    "100%",
    "~",
    "...",
    "a/..b/c..",
    "caf\xc3\xa9.md",  /* NFC */
    "cafe\xcc\x81.md", /* NFD: another key */
    "\xe6\x97\xa5\xe6\x9c\xac/\xf0\x9f\x98\x80 emoji.txt",
    "d/e/e/p/l/y/n/e/s/t/e/d/f/o/l/d/e/r/s/file.bin",
    "space-v1/ops/ab/cdef/2026/11/26/1111aaaa-m.jsonl",
    "space-v1/files/var/uuid/9a/bcdef0123456789abcdef012345678",
    "SILA.md",
    "big-zeros.bin",
};
#define NNAMES (sizeof(names) / sizeof(names[0]))

static void mkdirs_for(const char *path)
{
    char buf[1200];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            ck_assert_msg(mkdir(buf, 0755) == 0 || errno == EEXIST, "mkdir %s",
                          buf);
            *p = '/';
        }
}

/* The content of names[i] for space id (bytes into buf, length returned). */
static size_t content(size_t i, const char *id, unsigned char *buf, size_t cap)
{
    size_t n = 0;
    if (i == 0)
        return (size_t)snprintf((char *)buf, cap, "{\"id\":\"%s\"}", id);
    if (strstr(names[i], "empty"))
        return 0;
    if (strcmp(names[i], "big-zeros.bin") == 0) {
        n = cap < (3u << 20) ? cap : (3u << 20);
        memset(buf, 0, n);
        return n;
    }
    for (size_t k = 0; k < 40 * i && n + 64 < cap; k++)
        n += (size_t)snprintf((char *)buf + n, cap - n, "%zu:%s;", k, names[i]);
    return n;
}

/* Lay out the space under dir. */
static void write_space(const char *dir, const char *id, unsigned char *buf,
                        size_t cap)
{
    for (size_t i = 0; i < NNAMES; i++) {
        char path[1200];
        size_t n = content(i, id, buf, cap);
        FILE *f;
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        mkdirs_for(path);
        f = fopen(path, "wb");
        ck_assert_ptr_nonnull(f);
        ck_assert_uint_eq(fwrite(buf, 1, n, f), n);
        ck_assert_int_eq(fclose(f), 0);
    }
}

static int enqueue_wait(const struct it_env *e, const char *type,
                        const char *id, char *job, size_t len, const char *out)
{
    char args[256];
    snprintf(args, sizeof(args), "enqueue %s '%s' --wait", type, id);
    return it_cli(e, args, job, len, out);
}

START_TEST(test_it_names_safe_keys_round_trip)
{
    char id[33], tmp[512], src[600], log[600], out[600], job[200], url[128];
    char prefix[128];
    size_t cap = 4u << 20;
    unsigned char *buf = malloc(cap);
    struct it_env e;
    struct store *st = it_s3_store(NULL);
    pid_t w;
    int rc;

    ck_assert_ptr_nonnull(buf);
    it_space_id(id);
    it_tmpdir("names", tmp, sizeof(tmp));
    snprintf(src, sizeof(src), "%s/space", tmp);
    write_space(src, id, buf, cap);
    snprintf(prefix, sizeof(prefix), "active/%s/", id);
    it_upload_dir(src, prefix, NULL);
    ck_assert_uint_eq(it_count(st, prefix), NNAMES);

    snprintf(url, sizeof(url), "s3://%s", it_env("WK_TEST_BUCKET"));
    it_env_init(&e, url, "names", NULL);
    snprintf(log, sizeof(log), "%s/worker.log", tmp);
    snprintf(out, sizeof(out), "%s/archive.out", tmp);
    w = it_start_worker(&e, log);
    rc = enqueue_wait(&e, "archive", id, job, sizeof(job), out);
    ck_assert_msg(rc == 0, "archive exited %d: %s (see %s, %s)", rc,
                  it_job_field(it_prefix_of(&e), job, "error"), out, log);
    ck_assert_str_eq(it_job_field(it_prefix_of(&e), job, "state"), "succeeded");
    ck_assert_uint_eq(it_count(st, prefix), 0); /* originals gone */
    ck_assert_str_eq(it_mf_state(st, id), "archived");

    snprintf(out, sizeof(out), "%s/unarchive.out", tmp);
    rc = enqueue_wait(&e, "unarchive", id, job, sizeof(job), out);
    ck_assert_msg(rc == 0, "unarchive exited %d: %s (see %s, %s)", rc,
                  it_job_field(it_prefix_of(&e), job, "error"), out, log);
    ck_assert_str_eq(it_mf_state(st, id), "active");
    ck_assert_uint_eq(it_count(st, prefix), NNAMES);
    for (size_t i = 0; i < NNAMES; i++) {
        char key[1200];
        size_t n = content(i, id, buf, cap), len = 0;
        char *got;
        snprintf(key, sizeof(key), "%s%s", prefix, names[i]);
        got = it_get_text(st, key, &len);
        ck_assert_msg(len == n && (n == 0 || memcmp(got, buf, n) == 0),
                      "'%s': %zu bytes back, %zu archived", key, len, n);
        free(got);
    }
    ck_assert_int_eq(it_stop(w), 0);
    free(buf);
    store_free(st);
}
END_TEST

/* A key S3 allows and the policy refuses (a Windows client's backslash):
 * the archive fails before anything is deleted, naming the key. */
START_TEST(test_it_names_refused_key_fails_archive)
{
    char id[33], tmp[512], src[600], log[600], out[600], job[200], url[128];
    char prefix[128], bad[200], hex[401], want[300];
    size_t cap = 4u << 20;
    unsigned char *buf = malloc(cap);
    struct it_env e;
    struct store *st = it_s3_store(NULL);
    size_t pending = 99;
    struct wk_err err;
    pid_t w;
    int rc;

    ck_assert_ptr_nonnull(buf);
    it_space_id(id);
    it_tmpdir("namesbad", tmp, sizeof(tmp));
    snprintf(src, sizeof(src), "%s/space", tmp);
    write_space(src, id, buf, cap);
    snprintf(prefix, sizeof(prefix), "active/%s/", id);
    it_upload_dir(src, prefix, NULL);
    snprintf(bad, sizeof(bad), "%snotes\\old.txt", prefix);
    for (size_t i = 0; bad[i]; i++)
        snprintf(hex + 2 * i, 3, "%02x", (unsigned char)bad[i]);
    ck_assert_int_eq(
        it_sh("python3 -c \"import boto3,sys; boto3.client('s3', "
              "endpoint_url=sys.argv[3], region_name='us-east-1', "
              "aws_access_key_id='test', aws_secret_access_key='test')"
              ".put_object(Bucket=sys.argv[1], "
              "Key=bytes.fromhex(sys.argv[2]).decode(), Body=b'old')\" "
              "'%s' '%s' '%s'",
              it_env("WK_TEST_BUCKET"), hex, it_env("WK_TEST_S3_ENDPOINT")),
        0);
    ck_assert_uint_eq(it_count(st, prefix), NNAMES + 1);

    snprintf(url, sizeof(url), "s3://%s", it_env("WK_TEST_BUCKET"));
    it_env_init(&e, url, "namesbad", NULL);
    snprintf(log, sizeof(log), "%s/worker.log", tmp);
    snprintf(out, sizeof(out), "%s/archive.out", tmp);
    w = it_start_worker(&e, log);
    rc = enqueue_wait(&e, "archive", id, job, sizeof(job), out);
    ck_assert_int_ne(rc, 0);
    ck_assert_str_eq(it_job_field(it_prefix_of(&e), job, "state"), "failed");
    snprintf(want, sizeof(want),
             "key '%s' cannot be archived: backslash in name", bad);
    ck_assert_msg(strstr(it_job_field(it_prefix_of(&e), job, "error"), want),
                  "error '%s' lacks '%s'",
                  it_job_field(it_prefix_of(&e), job, "error"), want);
    /* nothing deleted, nothing left behind, the space active */
    ck_assert_uint_eq(it_count(st, prefix), NNAMES + 1);
    {
        char ap[64];
        snprintf(ap, sizeof(ap), "archived/%s/", id);
        ck_assert_uint_eq(it_count(st, ap), 0);
        wk_err_clear(&err);
        ck_assert_int_eq(store_count_pending(st, ap, &pending, &err), WK_OK);
        ck_assert_uint_eq(pending, 0);
    }
    ck_assert_msg(strcmp(it_mf_state(st, id), "none") == 0 ||
                      strcmp(it_mf_state(st, id), "active") == 0,
                  "state %s", it_mf_state(st, id));
    for (size_t i = 0; i < NNAMES; i++) {
        char key[1200];
        size_t n = content(i, id, buf, cap), len = 0;
        char *got;
        snprintf(key, sizeof(key), "%s%s", prefix, names[i]);
        got = it_get_text(st, key, &len);
        ck_assert_msg(len == n && (n == 0 || memcmp(got, buf, n) == 0),
                      "'%s' changed", key);
        free(got);
    }
    ck_assert_int_eq(it_stop(w), 0);
    free(buf);
    store_free(st);
}
END_TEST

Suite *it_names_suite(void)
{
    Suite *s = suite_create("it_names");
    TCase *tc = tcase_create("names");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_it_names_safe_keys_round_trip);
    tcase_add_test(tc, test_it_names_refused_key_fails_archive);
    suite_add_tcase(s, tc);
    return s;
}
