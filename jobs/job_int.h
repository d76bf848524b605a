/*
 * job_int: what the job modules (job_archive, job_unarchive, job_migrate)
 * share and nobody else needs.
 */
#ifndef WK_JOBS_JOB_INT_H
#define WK_JOBS_JOB_INT_H

#include "common/wk_buf.h"
#include "common/wk_err.h"

struct json_t;

/* Serialise o (compact, in insertion order) into result, replacing what
 * was there; takes the reference to o in every case. */
enum wk_code job_result_take(struct wk_buf *result, struct json_t *o,
                             struct wk_err *err);

#endif
