/*
 * job_archive: the archive job. Lists active/<spaceId>/, streams every
 * object in key order into one ZIP uploaded while it is written
 * (archived/<spaceId>/workspace-<stamp>.zip), verifies the upload, writes
 * the manifest, and only then deletes the archived objects. Any failure
 * before the manifest is written aborts the upload and leaves active/
 * untouched. Memory: window_bytes of fetched data + parts_in_flight x
 * part_bytes + fixed, whatever the space's size.
 */
#ifndef WK_JOBS_JOB_ARCHIVE_H
#define WK_JOBS_JOB_ARCHIVE_H

#include "jobs/job.h"

enum wk_code job_archive_run(const struct job *job, const struct job_ctx *ctx,
                             struct wk_buf *result, struct wk_err *err);

#endif
