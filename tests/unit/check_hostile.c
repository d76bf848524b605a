/*
 * The hostile-input corpus under tests/hostile/: job specs, manifests and
 * S3 listing replies that must each be refused with a clear error, named
 * in the file beside it (<input>.expect holds a part of the message).
 * Parsing runs in this process: a crash, a hang or an accepted input fails
 * the suite. (Hostile ZIP archives: tests/make_hostile_zip.py, refused by
 * the restore in tests/integration/check_it_hostile.c.)
 */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/wk_buf.h"
#include "common/wk_err.h"
#include "jobs/job.h"
#include "jobs/manifest.h"
#include "storage/s3_xml.h"
#include "tests/unit/suites.h"

#define CORPUS "tests/hostile"

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *p;
    long n;

    ck_assert_msg(f != NULL, "%s: cannot open", path);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    p = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(fread(p, 1, (size_t)n, f), (size_t)n);
    p[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return p;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Run parse on every input of CORPUS/<kind> (not the .expect files);
 * returns how many. */
static size_t run_kind(const char *kind,
                       enum wk_code (*parse)(const char *p, size_t n,
                                             struct wk_err *err))
{
    char dir[256], path[512], epath[560];
    char *names[256];
    size_t nn = 0;
    DIR *d;
    struct dirent *de;

    snprintf(dir, sizeof(dir), "%s/%s", CORPUS, kind);
    d = opendir(dir);
    ck_assert_msg(d != NULL, "%s: missing (run from the source tree)", dir);
    while ((de = readdir(d)) != NULL && nn < 256) {
        size_t l = strlen(de->d_name);
        if (de->d_name[0] == '.' ||
            (l > 7 && strcmp(de->d_name + l - 7, ".expect") == 0))
            continue;
        names[nn++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, nn, sizeof(*names), cmp_names);
    for (size_t i = 0; i < nn; i++) {
        size_t len, elen;
        char *in, *want;
        struct wk_err err;
        enum wk_code rc;

        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        snprintf(epath, sizeof(epath), "%s.expect", path);
        in = slurp(path, &len);
        want = slurp(epath, &elen);
        while (elen > 0 && (want[elen - 1] == '\n' || want[elen - 1] == '\r'))
            want[--elen] = '\0';
        wk_err_clear(&err);
        rc = parse(in, len, &err);
        ck_assert_msg(rc != WK_OK, "%s: accepted", path);
        ck_assert_msg(elen > 0 && strstr(err.msg, want) != NULL,
                      "%s: error '%s' does not say '%s'", path, err.msg, want);
        free(in);
        free(want);
        free(names[i]);
    }
    return nn;
}

static enum wk_code parse_job(const char *p, size_t n, struct wk_err *err)
{
    struct job j;
    enum wk_code rc = job_parse(p, n, &j, err);
    ck_assert(rc == WK_OK || rc == WK_E_INVAL);
    return rc;
}

static enum wk_code parse_manifest(const char *p, size_t n, struct wk_err *err)
{
    struct mf m;
    enum wk_code rc = mf_parse(p, n, &m, err);
    ck_assert(rc == WK_OK || rc == WK_E_CORRUPT);
    return rc;
}

static enum wk_code parse_listing(const char *p, size_t n, struct wk_err *err)
{
    struct s3_xml_list l;
    enum wk_code rc = s3_xml_parse_list(p, n, &l, err);
    if (rc == WK_OK)
        s3_xml_list_release(&l);
    return rc;
}

START_TEST(test_hostile_corpus)
{
    size_t n = run_kind("job", parse_job);
    n += run_kind("manifest", parse_manifest);
    n += run_kind("s3xml", parse_listing);
    ck_assert_uint_ge(n, 30); /* the corpus was found and read */
}
END_TEST

Suite *hostile_suite(void)
{
    Suite *s = suite_create("hostile");
    TCase *tc = tcase_create("corpus");

    tcase_add_test(tc, test_hostile_corpus);
    suite_add_tcase(s, tc);
    return s;
}
