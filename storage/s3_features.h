/*
 * s3_features: what an S3 server supports, as bit flags (issue 17). The
 * probe (s3_probe.c) finds them once per process per bucket, or the
 * operator pins them with SILA_S3_FEATURES ("auto", "none", or a comma
 * list of the names below).
 */
#ifndef WK_STORAGE_S3_FEATURES_H
#define WK_STORAGE_S3_FEATURES_H

#include <stdbool.h>
#include <stddef.h>

#include "common/wk_err.h"

enum s3f_flags {
    S3F_COND_PUT = 1 << 0,    /* If-None-Match: * and If-Match on PUT */
    S3F_COND_DELETE = 1 << 1, /* DeleteObjects honours an ETag per key */
    S3F_VERSIONING = 1 << 2,  /* bucket versioning enabled */
    S3F_PART_COPY = 1 << 3,   /* UploadPartCopy */
    S3F_LIST_PARTS = 1 << 4,  /* ListParts */
    S3F_DELETE_MD5 = 1 << 5,  /* DeleteObjects (with Content-MD5) */
};

#define S3F_ALL                                                        \
    (S3F_COND_PUT | S3F_COND_DELETE | S3F_VERSIONING | S3F_PART_COPY | \
     S3F_LIST_PARTS | S3F_DELETE_MD5)

/* Parse a SILA_S3_FEATURES value: NULL, "" or "auto" sets *pinned false
 * (probe); "none" pins 0; else a comma list of feature names (spaces
 * around names allowed) pins their union. An unknown or empty name is
 * WK_E_INVAL naming it. */
enum wk_code s3f_parse(const char *s, bool *pinned, unsigned *out,
                       struct wk_err *err);

/* flags as the comma list s3f_parse reads ("none" for 0), into buf. */
void s3f_format(unsigned flags, char *buf, size_t len);

/* The name of one flag ("cond-put"), or NULL. */
const char *s3f_name(unsigned flag);

#endif
