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

#include <stdbool.h>
#include <stdint.h>

#include "jobs/job.h"

/* Archive job->space_id; on success result holds the JSON result object
 * (PROTOCOL.md: archived, skipped or a no-op). */
enum wk_code job_archive_run(const struct job *job, const struct job_ctx *ctx,
                             struct wk_buf *result, struct wk_err *err);

/* Where job_archive_from() reads a space's files. */
struct job_archive_src {
    struct store *store; /* borrowed: only listed and read, never written */
    const char *prefix;  /* borrowed: the files' common key prefix ("" = all
                            of store); entry names are the keys without it */
    bool verify_cas;     /* hash every CAS blob against its name while it
                            streams: a mismatch is WK_E_CORRUPT, naming it */
};

/* What job_archive_from() made. */
struct job_archive_out {
    char archive_key[256];
    char manifest_key[JOB_SPACE_ID_MAX + 32];
    char checksum[65]; /* SHA-256 of the ZIP */
    uint64_t size, uncompressed_size, file_count;
    unsigned attempts;
};

/* Archive the files of src (not active/) as job->space_id, the way the
 * archive job does: in restore order into one ZIP uploaded while it is
 * written, verified (size, SHA-256), redone when the source changed
 * meanwhile (at most cfg->archive_tries tries, then WK_E_CONFLICT), and
 * named by a new manifest in ctx->store (state archived; an existing
 * manifest's archives become its history, pruned to keep_archives). Reads
 * the source only; touches neither active/ nor a pending-delete record.
 * The caller decides whether an existing space may be superseded. Reports
 * the phases listing, archiving, uploading, verifying (never "done"). On
 * failure no archive is left (as far as deleting it worked). */
enum wk_code job_archive_from(const struct job *job, const struct job_ctx *ctx,
                              const struct job_archive_src *src,
                              struct job_archive_out *out, struct wk_err *err);

/* A content-addressed blob's name, "space-v1/files/static/sha256/<2>/<62>"
 * with lowercase hex: true, and the 64-hex hash into want. */
bool job_cas_name(const char *name, char want[65]);

#endif
