/*
 * job_migrate: bring an existing space into this store. The source is a
 * space folder as the Sila app or server writes it (sila.md, space-v1/...):
 * "file:///srv/sila/data/spaces/<id>" or a prefix of a bucket,
 * "s3://bucket/prefix/<id>" (same credentials and endpoint as the store).
 * Sources are only listed and read, never written or deleted.
 *
 * target "active" copies every file to active/<spaceId>/: small files in
 * batched PUTs (window_bytes per batch), big ones (> chunk_bytes) streamed
 * through a writer, space-v1/space.json last so that a partial copy never
 * looks like a space. target "archived" streams the folder straight into a
 * ZIP + manifest the way the archive job does (job_archive_from), with no
 * active copy. Both verify every CAS blob against its name as it streams;
 * a mismatch fails the job naming the file, before it is written.
 *
 * Resumable: a copy to active/ writes metadata/<spaceId>.migrate.json
 * (source, state "copying", then "done") and a run of the same source
 * resumes it, skipping objects already present with the same size (CAS
 * blobs: the name is the hash) and the same bytes (other files: compared
 * byte for byte). A space already in the store (manifest, objects under
 * active/) that this migration did not put there is reported, not
 * touched: the job succeeds with {"skipped":"exists","state":...}, unless
 * "overwrite": true. docs/PROTOCOL.md ("Migrate jobs") is the contract.
 *
 * Blocks until done; errors come back as wk_code + err (WK_E_INVAL for a
 * source that is not a space or whose space.json names another space,
 * WK_E_CORRUPT for a blob that does not match its name). Memory: two
 * listings (source and active/<spaceId>/, a key and size per file), up to
 * 2 x window_bytes of file data, parts_in_flight x part_bytes for a big
 * file; archived: what the archive job needs. jobs/ never sees Redis.
 */
#ifndef WK_JOBS_JOB_MIGRATE_H
#define WK_JOBS_JOB_MIGRATE_H

#include <stdbool.h>
#include <stddef.h>

#include "jobs/job.h"

struct store;
struct store_opts;

/* A migrate source URL, checked strictly: "file://" + an absolute path, or
 * "s3://" + a bucket name (3-63 of [a-z0-9.-]) + "/" + a key prefix; no
 * empty, "." or ".." component, no control character or backslash, no
 * '%', '?' or '#' (nothing is decoded), at most JOB_SOURCE_MAX bytes. A
 * space folder (root false) must not be "/" or a bare bucket; a root of
 * space folders (root true, migrate-all) may be a bare bucket. On true the
 * URL is copied to out without its trailing '/'; on false why (if not
 * NULL) says which rule failed. */
bool job_migrate_url_valid(const char *url, bool root, char *out, size_t outlen,
                           char *why, size_t whylen);

/* Run a migrate job (job_run() dispatches here): opens job->source with
 * ctx->store_opts and calls job_migrate_from(). On success result holds
 * the JSON result (PROTOCOL.md). */
enum wk_code job_migrate_run(const struct job *job, const struct job_ctx *ctx,
                             struct wk_buf *result, struct wk_err *err);

/* The same from an opened source store whose root is the space folder
 * (tests and other callers); job->source is what the marker and messages
 * name. An empty job->space_id is taken from the source's space.json. */
enum wk_code job_migrate_from(const struct job *job, const struct job_ctx *ctx,
                              struct store *src, struct wk_buf *result,
                              struct wk_err *err);

/* For a migrate job without spaceId: read the source's
 * space-v1/space.json and fill job->space_id, so that the worker can lock
 * and deduplicate on the space before running it. Does nothing for other
 * jobs or when space_id is set. opts NULL = store_opts_from_env(). */
enum wk_code job_migrate_resolve(struct job *job, const struct store_opts *opts,
                                 struct wk_err *err);

/*
 * migrate-all: the space folders under a root ("file:///srv/sila/data/
 * spaces", or "s3://bucket[/prefix]" listed with delimiter '/'). Each
 * folder is checked: its name must be a valid spaceId and its
 * space-v1/space.json must hold that id. Plain files under the root are
 * ignored. One GET per folder (a listing more when space.json is missing).
 */
struct job_migrate_space {
    char space_id[JOB_SPACE_ID_MAX + 1]; /* the folder's name when it is a
                                            valid spaceId, else "" */
    char *name;                          /* owned: the folder's name (no '/') */
    char *source;      /* owned: URL of the folder, for the job's
                          "source" */
    enum wk_code code; /* WK_OK: a space; else why not */
    char error[256];   /* "" when code is WK_OK */
};

struct job_migrate_list {
    struct job_migrate_space *v; /* owned; in folder-name order */
    size_t n, cap;
    size_t ok, failed; /* folders with code WK_OK / not */
};

/* Fill out with every folder under root_url (out is initialised here;
 * release with job_migrate_list_release(), also after a failure). Fails
 * only when the root itself cannot be listed (or memory); folders that are
 * not spaces are entries with their own code and error. opts NULL =
 * store_opts_from_env(). */
enum wk_code job_migrate_list_spaces(const char *root_url,
                                     const struct store_opts *opts,
                                     struct job_migrate_list *out,
                                     struct wk_err *err);
void job_migrate_list_release(struct job_migrate_list *l);

#endif
