/*
 * job_unarchive: restore an archived space to individual objects under
 * active/<spaceId>/, verified while it streams: the archive's SHA-256 and
 * size against the manifest, every entry's CRC (libarchive), every CAS
 * blob against its own name, the entry count against fileCount, and the
 * hostile-archive rules of zip/zipr.h. Only when everything holds does
 * the manifest flip to "active". On any failure the objects restored so
 * far are deleted and the space stays archived. The archive is kept.
 * Before anything is written, the archive's central directory is read
 * (zip/zipcd.h, ranged GETs): each entry is then held to exactly the size
 * and CRC-32 it declares, instead of the ratio limit (max_ratio), which
 * only applies to entries without that authority.
 * Memory: window_bytes of pending PUTs + one chunk of the archive +
 * parts_in_flight x part_bytes for an entry too big to PUT at once (the
 * part size grown with the entry's size, job_unarchive_part_bytes) + 12
 * bytes per entry of the central directory (at most fileCount entries).
 */
#ifndef WK_JOBS_JOB_UNARCHIVE_H
#define WK_JOBS_JOB_UNARCHIVE_H

#include "jobs/job.h"

enum wk_code job_unarchive_run(const struct job *job, const struct job_ctx *ctx,
                               struct wk_buf *result, struct wk_err *err);

/* Part size of the multipart PUT that restores an entry of entry_size
 * bytes (UINT64_MAX: unknown): job_part_bytes(), so that no entry needs
 * more than 10,000 parts, as the archive's own upload. */
uint64_t job_unarchive_part_bytes(uint64_t entry_size, uint64_t configured);

#endif
