/*
 * job_unarchive: restore an archived space to individual objects under
 * active/<spaceId>/, verified while it streams: the archive's SHA-256 and
 * size against the manifest, every entry's CRC (libarchive), every CAS
 * blob against its own name, the entry count against fileCount, and the
 * hostile-archive rules of jobs/zipr.h. Only when everything holds does
 * the manifest flip to "active". On any failure the objects restored so
 * far are deleted and the space stays archived. The archive is kept.
 * Memory: window_bytes of pending PUTs + one chunk of the archive +
 * parts_in_flight x part_bytes for an entry too big to PUT at once.
 */
#ifndef WK_JOBS_JOB_UNARCHIVE_H
#define WK_JOBS_JOB_UNARCHIVE_H

#include "jobs/job.h"

enum wk_code job_unarchive_run(const struct job *job, const struct job_ctx *ctx,
                               struct wk_buf *result, struct wk_err *err);

#endif
