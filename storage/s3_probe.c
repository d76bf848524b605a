/* s3_probe: the S3 feature set (storage/s3_features.h). This file holds
 * the SILA_S3_FEATURES syntax; the probe against a bucket is issue 17's
 * next step (see docs). */
#include "storage/s3_features.h"

#include <stdio.h>
#include <string.h>

static const struct {
    unsigned flag;
    const char *name;
} s3f_names[] = {
    { S3F_COND_PUT, "cond-put" },     { S3F_COND_DELETE, "cond-delete" },
    { S3F_VERSIONING, "versioning" }, { S3F_PART_COPY, "part-copy" },
    { S3F_LIST_PARTS, "list-parts" }, { S3F_DELETE_MD5, "delete-md5" },
};

#define S3F_N (sizeof(s3f_names) / sizeof(s3f_names[0]))

const char *s3f_name(unsigned flag)
{
    for (size_t i = 0; i < S3F_N; i++)
        if (s3f_names[i].flag == flag)
            return s3f_names[i].name;
    return NULL;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

enum wk_code s3f_parse(const char *s, bool *pinned, unsigned *out,
                       struct wk_err *err)
{
    unsigned flags = 0;
    const char *p = s;

    *pinned = false;
    *out = 0;
    while (p && is_space(*p))
        p++;
    if (!p || !*p || strcmp(p, "auto") == 0)
        return WK_OK;
    if (strcmp(p, "none") == 0) {
        *pinned = true;
        return WK_OK;
    }
    for (;;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        bool found = false;
        while (n > 0 && is_space(*p)) {
            p++;
            n--;
        }
        while (n > 0 && is_space(p[n - 1]))
            n--;
        for (size_t i = 0; i < S3F_N && n > 0; i++)
            if (strlen(s3f_names[i].name) == n &&
                memcmp(s3f_names[i].name, p, n) == 0) {
                flags |= s3f_names[i].flag;
                found = true;
            }
        if (!found)
            return wk_err_set(err, WK_E_INVAL,
                              "SILA_S3_FEATURES: unknown feature '%.*s' "
                              "(expected auto, none, or a comma list of "
                              "cond-put, cond-delete, versioning, part-copy, "
                              "list-parts, delete-md5)",
                              (int)(n > 64 ? 64 : n), p);
        if (!end)
            break;
        p = end + 1;
    }
    *pinned = true;
    *out = flags;
    return WK_OK;
}

void s3f_format(unsigned flags, char *buf, size_t len)
{
    size_t off = 0;

    if (!len)
        return;
    buf[0] = '\0';
    for (size_t i = 0; i < S3F_N; i++) {
        int w;
        if (!(flags & s3f_names[i].flag))
            continue;
        w = snprintf(buf + off, len - off, "%s%s", off ? "," : "",
                     s3f_names[i].name);
        if (w < 0 || (size_t)w >= len - off)
            return;
        off += (size_t)w;
    }
    if (off == 0)
        snprintf(buf, len, "none");
}
