/* Helpers shared by unit suites (see unit_util.h). */
#include <check.h>
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/wk_buf.h"
#include "tests/unit/unit_util.h"

void ut_noise(unsigned char *p, size_t n, unsigned seed)
{
    unsigned x = seed ? seed : 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (unsigned char)(x >> 7);
    }
}

void ut_rm_tree(const char *path)
{
    struct stat sb;
    DIR *d;
    struct dirent *de;

    if (lstat(path, &sb) != 0)
        return;
    if (!S_ISDIR(sb.st_mode)) {
        unlink(path);
        return;
    }
    d = opendir(path);
    while (d && (de = readdir(d)) != NULL) {
        char sub[1024];
        int n;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        n = snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
        ck_assert(n >= 0 && (size_t)n < sizeof(sub));
        ut_rm_tree(sub);
    }
    if (d)
        closedir(d);
    rmdir(path);
}

void ut_shell_quote(struct wk_buf *b, const char *s)
{
    ck_assert_int_eq(wk_buf_append(b, "'", 1, NULL), WK_OK);
    for (; *s; s++) {
        if (*s == '\'')
            ck_assert_int_eq(wk_buf_appends(b, "'\\''", NULL), WK_OK);
        else
            ck_assert_int_eq(wk_buf_append(b, s, 1, NULL), WK_OK);
    }
    ck_assert_int_eq(wk_buf_append(b, "' ", 2, NULL), WK_OK);
}

static void read_file(const char *path, struct wk_buf *out)
{
    FILE *f = fopen(path, "rb");
    char chunk[65536];
    size_t n;

    ck_assert_msg(f, "cannot open '%s'", path);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        ck_assert_int_eq(wk_buf_append(out, chunk, n, NULL), WK_OK);
    ck_assert_int_eq(fclose(f), 0);
}

bool ut_hostile_zip(const char *kind, const char *args, struct wk_buf *zip)
{
    const char *srcdir = getenv("WK_SRCDIR");
    char script[2048], dir[] = "/tmp/wk-zipr-XXXXXX", out[2200];
    char line[1024] = "";
    struct wk_buf cmd;
    bool skipped;
    FILE *f;
    int status;

    if (srcdir && *srcdir)
        snprintf(script, sizeof(script), "%s/tests/make_hostile_zip.py",
                 srcdir);
    else
        snprintf(script, sizeof(script), "tests/make_hostile_zip.py");
    ck_assert_msg(access(script, R_OK) == 0,
                  "'%s' not found: run from the source tree or set "
                  "WK_SRCDIR",
                  script);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(out, sizeof(out), "%s/%s.zip", dir, kind);
    wk_buf_init(&cmd, 16384);
    ut_shell_quote(&cmd, "python3");
    ut_shell_quote(&cmd, script);
    ut_shell_quote(&cmd, kind);
    ut_shell_quote(&cmd, out);
    if (args)
        ck_assert_int_eq(wk_buf_appends(&cmd, args, NULL), WK_OK);
    f = popen(wk_buf_cstr(&cmd), "r");
    ck_assert_ptr_nonnull(f);
    if (!fgets(line, sizeof(line), f))
        line[0] = '\0';
    status = pclose(f);
    ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "'%s' failed (status %d)", wk_buf_cstr(&cmd), status);
    wk_buf_release(&cmd);
    ck_assert_msg(strstr(line, "\"kind\""), "no JSON summary: '%s'", line);
    skipped = strstr(line, "\"skipped\": true") != NULL;
    wk_buf_init(zip, UT_ZIP_MAX_BYTES);
    if (!skipped) {
        read_file(out, zip);
        unlink(out);
    }
    rmdir(dir);
    return !skipped;
}
