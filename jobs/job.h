/*
 * job: what a job is (its JSON spec, validated) and how it runs, without
 * knowing where it came from: jobs/ never sees Redis (STYLE 2.2).
 *
 * job_parse() turns untrusted JSON into a struct job (plain data, nothing
 * to free) or a clear WK_E_INVAL error naming the field. job_run() executes
 * a job against a store, reporting progress to a sink, and fills a result
 * JSON object text; it blocks until the job ends or *ctx->cancel is set.
 * Everything a run allocates is released before it returns.
 */
#ifndef WK_JOBS_JOB_H
#define WK_JOBS_JOB_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/wk_buf.h"
#include "common/wk_err.h"

struct store;
struct store_requests;
struct store_opts;
struct prog_sink;
struct seal_keyring;

#define JOB_ID_MAX       128
#define JOB_SPACE_ID_MAX 128
/* A job spec larger than this is refused. */
#define JOB_JSON_MAX (64u * 1024u)
/* Longest migrate source URL. */
#define JOB_SOURCE_MAX 1024

enum job_type { JOB_ARCHIVE = 0, JOB_UNARCHIVE = 1, JOB_MIGRATE = 2 };

/* Where a migrated space goes. */
enum job_target { JOB_TARGET_ACTIVE = 0, JOB_TARGET_ARCHIVED = 1 };

struct job {
    char id[JOB_ID_MAX + 1];
    enum job_type type;
    char space_id[JOB_SPACE_ID_MAX + 1]; /* "" only for a migrate job whose
                                            spec has none (see
                                            job_migrate_resolve) */
    bool urgent;                         /* "priority": "urgent" */
    char archive_key[256]; /* unarchive: a specific archive, "" = current */
    char source[JOB_SOURCE_MAX + 1]; /* migrate: the space folder's URL,
                                        validated, no trailing '/' */
    enum job_target target;          /* migrate: "target" (active) */
    bool overwrite;                  /* migrate: "overwrite" (false) */
};

/* Sizes and limits for a run; job_config_defaults() fills the defaults. */
struct job_config {
    uint64_t part_bytes;      /* multipart part size, >= 5 MiB (5 MiB) */
    unsigned parts_in_flight; /* concurrent part uploads (4) */
    uint64_t window_bytes;    /* object bytes fetched per batch (16 MiB) */
    unsigned window_objects;  /* objects fetched per batch (64) */
    uint64_t chunk_bytes;     /* largest single GET, ranged beyond (8 MiB) */
    unsigned reads;           /* unarchive: archive GETs in flight (4) */
    uint64_t read_bytes;      /* unarchive: bytes per archive GET (2 MiB) */
    int deflate_level;        /* 1..9 (1) */
    unsigned keep_archives;   /* archives kept per space, newest first (3) */
    unsigned max_ratio;       /* unarchive: refuse entries expanding more */
    unsigned archive_tries;   /* archive: tries while users write (3) */
    bool no_reuse; /* archive: never copy entries of the previous archive
                      (SILA_ARCHIVE_REUSE=0; false) */
};

struct job_ctx {
    struct store *store;           /* borrowed */
    struct prog_sink *sink;        /* borrowed; may be NULL */
    const struct job_config *cfg;  /* borrowed */
    volatile sig_atomic_t *cancel; /* borrowed; may be NULL */
    time_t (*now)(void);           /* clock (tests pin it); NULL = time() */
    /* migrate: options for opening an s3:// source (same credentials and
     * endpoint as store); borrowed; NULL = store_opts_from_env() */
    const struct store_opts *store_opts;
    /* migrate: store's URL (SILA_STORE), to refuse a source inside its
     * active/, archived/ or metadata/; borrowed; NULL = not checked */
    const char *store_url;
    /* The checkpoint an earlier run of this job recorded (see
     * prog_sink_ops.checkpoint) and never cleared because it died; NULL or
     * "" = none. Archive: {"archiveKey", "uploadId", "listing"}, to resume
     * its multipart upload. Borrowed. */
    const char *resume;
    /* Master keys (SILA_ENCRYPTION_KEY_FILE); borrowed. Set: new archives
     * are sealed under the first key (storage/seal.h), sealed archives are
     * opened with any. NULL: archives are plain ZIPs and a sealed one
     * cannot be read. */
    const struct seal_keyring *keys;
    /* Ownership check, called right before every destructive or
     * state-changing step (a delete of originals, the drop of an archive,
     * the cleanup of restored objects, a manifest write, a pending-delete
     * record): WK_OK while this run still owns its job, WK_E_FENCED when
     * another worker may have taken it over (lease lost or not renewed in
     * time). On WK_E_FENCED the job stops at once and undoes nothing: the
     * state belongs to the successor. step names the step for the log.
     * NULL = the run always owns its job (CLI, unit tests). */
    enum wk_code (*fence)(void *fence_ud, const char *step, struct wk_err *err);
    void *fence_ud;
    /* When the job was requested (its enqueue: the status hash's
     * createdAt), ms since the epoch; 0 = unknown (then the run's start).
     * Time-to-ready and time-to-complete count from it. */
    int64_t requested_ms;
    /* Manifest writes on a store without conditional PUT (its features
     * lack STORE_F_COND_PUT; storage/store.h). mf_record is called right
     * before the PUT, with the manifest now in the store (cur, when
     * has_cur): it must record body as the newest manifest of space_id
     * atomically with the proof that this run still holds the space
     * (WK_E_FENCED otherwise), unless cur is not the last confirmed
     * record: then WK_E_CONFLICT with that record in newest (the run
     * writes it back and fails). mf_check is called after the PUT and its
     * read-back: WK_OK (the record confirmed) while that record is still
     * the newest and ours, else WK_E_FENCED with the newest confirmed body
     * in newest ("" if none). NULL: such a store's manifests are not
     * written (the CLI cannot fence: it refuses). */
    enum wk_code (*mf_record)(void *mf_ud, const char *space_id, bool has_cur,
                              const char *cur, size_t cur_len, const char *body,
                              size_t len, struct wk_buf *newest,
                              struct wk_err *err);
    enum wk_code (*mf_check)(void *mf_ud, const char *space_id,
                             const char *body, size_t len,
                             struct wk_buf *newest, struct wk_err *err);
    void *mf_ud;
    /* Out, may be NULL: a migrate adds the requests of its source store
     * here (struct store_requests) before it closes it; store's own are
     * read by the caller (store_requests). Borrowed. */
    struct store_requests *source_requests;
};

void job_config_defaults(struct job_config *cfg);
/* The budget of a job that starts while another job of the same process
 * runs (a worker's urgent runner next to its background job, or the other
 * way round): a quarter of the fetch window (at least 1 MiB), half of the
 * largest single GET (at most 4 MiB, at least 1 MiB), a quarter of the
 * archive read size (at least 256 KiB) and of the parts in flight (at
 * least 1). Sizes and counts only: the result is the same, slower. */
void job_config_shared(struct job_config *cfg);

/* 1..128 of [A-Za-z0-9._-], not "." or "..". */
bool job_space_id_valid(const char *s);
/* 1..128 of [A-Za-z0-9._:-]. */
bool job_id_valid(const char *s);

/* Parse and validate a job spec; err names the offending field. */
enum wk_code job_parse(const char *json, size_t len, struct job *out,
                       struct wk_err *err);

const char *job_type_name(enum job_type t);

/* Run the job; on success result holds a JSON object (see PROTOCOL.md). */
enum wk_code job_run(const struct job *job, const struct job_ctx *ctx,
                     struct wk_buf *result, struct wk_err *err);

/* Part size for an archive of at most est_bytes: the configured size, grown
 * (to a whole MiB) so that no upload needs more than 10,000 parts. */
uint64_t job_part_bytes(uint64_t est_bytes, uint64_t configured);

#endif
