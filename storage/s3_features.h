/*
 * s3_features: what an S3 server supports, as enum store_feature flags. The
 * probe (s3_probe.c) finds them once per process per bucket, or the
 * operator pins them with SILA_S3_FEATURES ("auto", "none", or a comma
 * list of the names below).
 */
#ifndef WK_STORAGE_S3_FEATURES_H
#define WK_STORAGE_S3_FEATURES_H

#include <stdbool.h>
#include <stddef.h>

#include "common/wk_err.h"
#include "storage/store.h"

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

/* The probe: the flags of the bucket behind st (an S3 store), found with
 * a few requests on one object under metadata/.sila-probe/ (written, then
 * deleted, every version). A condition a server accepts but ignores counts
 * as missing. Fails only when the server could not be asked (network,
 * credentials, 5xx after retries). */
struct s3_store;
enum wk_code s3f_probe(struct s3_store *st, unsigned *flags,
                       struct wk_err *err);

#endif
