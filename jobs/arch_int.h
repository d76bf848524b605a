/*
 * arch_int: what the archive job's files share (job_archive.c the state
 * machine, arch_stream.c the streaming engine, arch_upload.c an attempt,
 * arch_commit.c the manifest, record and delete); nobody else needs it.
 */
#ifndef WK_JOBS_ARCH_INT_H
#define WK_JOBS_ARCH_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "common/wk_err.h"
#include "jobs/job.h"
#include "jobs/job_int.h"
#include "jobs/manifest.h"
#include "jobs/progress.h"
#include "storage/seal.h"

struct zipw;

#define ARCH_PREFIX_MAX 1024u /* longest source key prefix */

/* An entry of the previous archive that the restore record vouches for
 * (arch_prev.c). */
struct arch_prev_ent {
    char *name;        /* owned (the etag in the same allocation) */
    const char *etag;  /* the ETag the restore's PUT got */
    uint64_t off, len; /* its record: local header .. descriptor */
    uint64_t csize, usize;
    uint32_t crc;
    bool usable; /* (while loading) a record zipw_copy takes */
};

/* The previous archive, as far as a re-archive copies from it. */
struct arch_prev {
    bool on;                 /* entries may be copied */
    bool dead;               /* a read or a copy failed: not used again */
    char key[256];           /* the old archive */
    char etag[80];           /* its ETag: every range GET is If-Match */
    struct arch_prev_ent *v; /* owned, sorted by name */
    size_t n;
    unsigned cd_requests;  /* GETs its central directory took */
    uint64_t copied_files; /* of the attempt that was kept */
    uint64_t copied_bytes;
};

struct arch_run {
    const struct job *job;
    const struct job_ctx *ctx;
    struct store *src;                /* borrowed: ctx->store, or a source */
    char prefix[ARCH_PREFIX_MAX + 1]; /* "active/<id>/", or the source's */
    size_t prefix_len;
    struct store_sha256 *cas; /* owned; CAS blobs verified when set */
    bool cas_on;              /* the current entry is a CAS blob */
    char cas_want[65];        /* its name's hash */
    char archive_key[256];
    char mf_key[JOB_SPACE_ID_MAX + 32];
    char mf_etag[80];     /* the manifest as read or last written ("" =
                             none): fencing */
    uint64_t mf_gen;      /* and its generation */
    char resume_id[256];  /* a dead run's upload to continue, or "" */
    char listing[65];     /* digest of the current attempt's listing */
    bool marked;          /* this run wrote it "archiving" */
    struct job_list list; /* what the current attempt archives */
    struct job_list next; /* the listing after its upload */
    bool have_next;
    unsigned attempt; /* 1-based */
    char sha[65];     /* of the verified archive */
    uint64_t zip_size;
    struct seal_info enc; /* how the verified archive is sealed */
    struct prog prog;
    time_t now;
    struct arch_prev prev; /* what may be copied from the last archive */
};

/* ---- arch_prev.c ---- */

/* Load what may be copied from the archive the restore record names
 * (best effort: on any doubt r->prev stays off, logged). */
void arch_prev_load(struct arch_run *r, const struct mf *old, bool has_old);
/* The old entry o may be copied from, or NULL (read o itself). */
const struct arch_prev_ent *arch_prev_match(const struct arch_run *r,
                                            const struct job_obj *o);
/* A read or copy from the old archive failed: stop using it. */
void arch_prev_failed(struct arch_run *r, const char *msg);
void arch_prev_release(struct arch_prev *p);

/* A listing of r->prefix in archive order into l (job_list.c); tolerant:
 * what is left after the delete (see JOB_LIST_STRICT); the keys skipped
 * are logged. */
enum wk_code arch_list_load(struct arch_run *r, struct job_list *l,
                            bool tolerant, struct wk_err *err);

/* ---- arch_stream.c ---- */

/* Stream r->list into zw. *changed (with WK_OK) when an object no longer
 * matches its listing: the archive is incomplete and must not be used. */
enum wk_code arch_write_archive(struct arch_run *r, struct zipw *zw,
                                bool *changed, struct wk_err *err);

/* ---- arch_upload.c ---- */

/* Archive attempts until one matches the listing after its upload, at
 * most max_attempts; *gave_up (with WK_OK) when the space kept changing.
 * r->list must hold the first listing. */
enum wk_code arch_archive_until_stable(struct arch_run *r,
                                       unsigned max_attempts, bool *gave_up,
                                       struct wk_err *err);
/* Delete the just-uploaded archive: no manifest names it. */
enum wk_code arch_drop_archive(struct arch_run *r, struct wk_err *err);

/* ---- arch_commit.c ---- */

/* Is key the current archive of old, or one of its history? */
bool arch_key_taken(const struct mf *old, bool has_old, const char *key);
/* Existing manifest: none (*has_old false), archived already (a no-op),
 * or active after a restore (its archives become history). */
enum wk_code arch_check_manifest(struct arch_run *r, bool *noop, bool *has_old,
                                 struct mf *old, struct wk_err *err);
/* The manifest as read (old), or a new one naming no archive, in state
 * st, written over the version this run last read or wrote. */
enum wk_code arch_write_state(struct arch_run *r, const struct mf *old,
                              bool has_old, enum mf_state st,
                              struct wk_err *err);
/* The archive did not happen: the space is active again (best effort). */
void arch_unmark_archiving(struct arch_run *r, const struct mf *old,
                           bool has_old);
/* The manifest naming r's verified archive, superseding old (whose
 * archives become history); archives beyond the kept number go to drop
 * (room for MF_HISTORY_MAX + 1). */
void arch_manifest_fill(const struct arch_run *r, const struct mf *old,
                        bool has_old, struct mf *m, struct mf_archive *drop,
                        size_t *ndrop);
/* Write m over the manifest this run read, fenced; an unknown outcome is
 * settled by reading it back (*unknown when even that failed). */
enum wk_code arch_manifest_write(struct arch_run *r, const struct mf *m,
                                 bool *unknown, struct wk_err *err);
/* Archives beyond the kept number: the manifest no longer names them. */
enum wk_code arch_drop_old_archives(const struct arch_run *r,
                                    const struct mf_archive *drop, size_t ndrop,
                                    struct wk_err *err);
/* The pending-delete record: written before the manifest, removed once
 * the delete is done; finished by a later run (see arch_commit.c). */
enum wk_code arch_record_write(struct arch_run *r, struct wk_err *err);
enum wk_code arch_record_remove(struct arch_run *r, struct wk_err *err);
enum wk_code arch_record_finish(struct arch_run *r, const struct mf *old,
                                size_t *done, size_t *left, struct wk_err *err);
/* After the manifest: delete r->list at its archived versions, then list
 * what is left (*kept_newer). */
enum wk_code arch_delete_archived(struct arch_run *r, size_t *kept_newer,
                                  struct wk_err *err);

#endif
