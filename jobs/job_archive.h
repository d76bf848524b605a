/*
 * job_archive: the archive job. Lists active/<spaceId>/ (key, size and ETag
 * of every object), streams every object in restore order into one ZIP
 * uploaded while it is written (archived/<spaceId>/workspace-<stamp>.zip),
 * verifies the upload, and lists again: users write while a space is
 * archived, so an archive is used only if the space did not change
 * meanwhile. Otherwise (or when a read finds an object shorter, longer or
 * gone) the archive is deleted and redone from the new listing, at most
 * cfg->archive_tries times in all; then the job gives up and succeeds with
 * {"skipped":"concurrent-writes","attempts":N}, the space left untouched.
 * An archive that matched is named by the manifest; a third listing decides
 * what is deleted: only objects whose ETag and size are still the archived
 * ones. Newer ones stay under active/ (result "keptNewer"). Any failure
 * before the manifest is written aborts the upload or deletes the archive
 * and leaves active/ untouched.
 *
 * Blocks until done; errors come back as wk_code + err (WK_E_CONFLICT for
 * an archived space that still has objects under active/: a restore has to
 * merge them first). Memory: window_bytes of fetched data +
 * parts_in_flight x part_bytes + fixed, plus two listings (key and ETag per
 * object), whatever the space's size.
 */
#ifndef WK_JOBS_JOB_ARCHIVE_H
#define WK_JOBS_JOB_ARCHIVE_H

#include "jobs/job.h"

/* Archive job->space_id; on success result holds the JSON result object
 * (PROTOCOL.md: archived, skipped or a no-op). */
enum wk_code job_archive_run(const struct job *job, const struct job_ctx *ctx,
                             struct wk_buf *result, struct wk_err *err);

#endif
