/*
 * job_int: what the job modules (job_archive, job_unarchive, job_migrate)
 * share and nobody else needs.
 */
#ifndef WK_JOBS_JOB_INT_H
#define WK_JOBS_JOB_INT_H

#include "common/wk_buf.h"
#include "common/wk_err.h"

struct json_t;
struct mf;
struct store;

/* Serialise o (compact, in insertion order) into result, replacing what
 * was there; takes the reference to o in every case. */
enum wk_code job_result_take(struct wk_buf *result, struct json_t *o,
                             struct wk_err *err);

/* Write manifest m at key over the version whose etag is etag ("" = the
 * manifest must not exist): fencing, so a stale worker's write fails with
 * WK_E_CONFLICT instead of overwriting a newer state. On success etag holds
 * the new version's. */
enum wk_code job_mf_put(struct store *st, const char *key, const struct mf *m,
                        char *etag, size_t etag_len, struct wk_err *err);

#endif
