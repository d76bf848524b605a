/*
 * job_int: what the job modules (job_archive, job_unarchive, job_migrate)
 * share and nobody else needs: the result and manifest writes, the
 * cancel and fence checks (job.c), and the listing of a prefix
 * (job_list.c).
 */
#ifndef WK_JOBS_JOB_INT_H
#define WK_JOBS_JOB_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "common/wk_buf.h"
#include "common/wk_err.h"

struct job_ctx;
struct json_t;
struct mf;
struct prog;
struct store;

/* *ctx->cancel is set: the job stops at the next check. */
bool job_cancelled(const struct job_ctx *ctx);

/* Does this run still own its job (job_ctx.fence)? Called right before a
 * destructive or state-changing step; WK_E_FENCED: stop, undo nothing (the
 * successor owns the state). */
enum wk_code job_fence(const struct job_ctx *ctx, const char *step,
                       struct wk_err *err);

/* The last progress event: phase "done", every count complete, 100 %
 * (also when there was nothing to count). */
void job_prog_done(struct prog *p);

/* Delete keys (each only at etags[i] when etags is set: store_delete_if,
 * kept[i] set for an object that changed; else store_delete_many). With a
 * fence step: in batches of JOB_DELETE_BATCH, each right after an
 * ownership check (a run that lost its job stops between two batches,
 * WK_E_FENCED), the failpoint "<step>_batch" after each; without:
 * one call. *ndeleted counts all batches. */
#define JOB_DELETE_BATCH 1000u
enum wk_code job_delete_keys(const struct job_ctx *ctx, const char *step,
                             const char *const *keys, const char *const *etags,
                             size_t n, size_t *ndeleted, bool *kept,
                             struct wk_err *err);

/* Serialise o (compact, in insertion order) into result, replacing what
 * was there; takes the reference to o in every case. */
enum wk_code job_result_take(struct wk_buf *result, struct json_t *o,
                             struct wk_err *err);

/* GET and parse the manifest at key into m: *fetched once the GET
 * succeeded; the store's code (WK_E_NOTFOUND: there is none) or
 * mf_parse's, its message as it is. etag (NULL, or sizeof store_stat.etag
 * bytes) receives the version read, from the same request: the version a
 * fenced write goes over ("" when there is none). */
enum wk_code job_mf_get(struct store *st, const char *key, struct mf *m,
                        bool *fetched, char *etag, struct wk_err *err);

/* The manifest at key, if any, into m (*has false, WK_OK, when there is
 * none); one that does not parse is WK_E_CORRUPT, its message prefixed
 * "existing manifest '<key>'". */
enum wk_code job_mf_read(struct store *st, const char *key, struct mf *m,
                         bool *has, char *etag, struct wk_err *err);

/* Write manifest m at key over the version whose etag is etag ("" = the
 * manifest must not exist): fencing, so a stale worker's write fails with
 * WK_E_CONFLICT instead of overwriting a newer state. On success etag holds
 * the new version's. A store without conditional PUT (STORE_F_COND_PUT)
 * is written through ctx's mf_record / mf_check (see job_ctx): the
 * precondition is checked by a HEAD, the body recorded under the space's
 * lock, PUT, read back (it must be byte for byte ours) and confirmed; a
 * run that finds a newer record writes that one back and stops with
 * WK_E_FENCED. ctx NULL or without them: WK_E_INVAL on such a store. */
enum wk_code job_mf_put(const struct job_ctx *ctx, struct store *st,
                        const char *key, const struct mf *m, char *etag,
                        size_t etag_len, struct wk_err *err);

/* ---- job_list: one listing of a prefix (job_list.c) ---- */

#define JOB_LIST_MAX_FILES (10u * 1000u * 1000u)
#define JOB_LIST_ETAG_MAX  1024u /* longer change tags are refused */

enum job_list_flags {
    /* every key is under the prefix, its name passes the name policy and
     * no key is listed twice, else the listing fails naming the key; not
     * set: a key outside the prefix is skipped (counted in foreign), a
     * name the policy refuses is kept like any other */
    JOB_LIST_STRICT = 1 << 0,
    /* the archive's listing: restore order (space.json first, see
     * job_list.c), ETags kept (and bounded), messages name the keys; not
     * set: the migration's, in name order, messages name source files */
    JOB_LIST_ARCHIVE = 1 << 1,
};

struct job_obj {
    char *key;        /* owned; full store key, then the etag in the same
                         allocation */
    const char *name; /* borrowed from key: the part after the prefix */
    const char *etag; /* borrowed from key's allocation ("" when not kept) */
    uint64_t size;
    int64_t mtime;
    int rank; /* restore rank of the name (JOB_LIST_ARCHIVE), else 0 */
};

struct job_list {
    struct job_obj *v; /* owned; sorted once loaded (rank, then key) */
    size_t n, cap;
    uint64_t total_bytes;
    int64_t oldest;
    const char *prefix; /* borrowed: the listed prefix */
    size_t skip;        /* its length: the part of a key that is no name */
    unsigned flags;     /* enum job_list_flags */
    size_t foreign;     /* keys skipped (not JOB_LIST_STRICT) */
};

/* How a later listing differs from an earlier one. */
struct job_list_diff {
    size_t added, changed, removed;
    const char *first; /* borrowed: one differing key, for the log */
};

void job_list_release(struct job_list *l);
/* Replace l with the listing of prefix in st (flags: enum job_list_flags);
 * prefix is borrowed for l's life. */
enum wk_code job_list_load(struct store *st, const char *prefix, unsigned flags,
                           struct job_list *l, struct wk_err *err);
/* The object named name (the part after the prefix), or NULL. */
const struct job_obj *job_list_find(const struct job_list *l, const char *name);
/* Both listings in order; true when they hold the same keys with the same
 * versions (size and ETag). */
bool job_list_same(const struct job_list *was, const struct job_list *now,
                   struct job_list_diff *d);
/* What a listing is (key, ETag, size of every object, in order), as a
 * SHA-256 in hex ("" when it could not be computed). */
void job_list_digest(const struct job_list *l, char hex[65]);

#endif
