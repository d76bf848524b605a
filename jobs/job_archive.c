/*
 * job_archive: the archive job's state machine (job_archive_run, and
 * job_archive_from for a migration's source): the manifest checked, the
 * no-op and the finishing of an interrupted delete, the resume of a dead
 * run's upload, the attempts (arch_upload.c), the commit and the delete
 * (arch_commit.c), and the result. See arch_int.h for the parts.
 */
#include "jobs/job_archive.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/wk_fail.h"
#include "common/wk_log.h"
#include "common/wk_parse.h"
#include "jobs/arch_int.h"
#include "jobs/job_int.h"
#include "jobs/manifest.h"
#include "jobs/progress.h"
#include "storage/store.h"
#include "storage/store_hash.h"

#define ARCH_CAS_PREFIX "space-v1/files/static/sha256/"

/* A run of this job died while uploading (ctx->resume): if the space is
 * still listed exactly as then, take over its archive key and upload. */
static void resume_check(struct arch_run *r, const struct mf *old, bool has_old)
{
    char want[65], pfx[JOB_SPACE_ID_MAX + 32];
    const char *key, *id, *listing;
    json_t *o;

    r->resume_id[0] = '\0';
    if (!r->ctx->resume || !r->ctx->resume[0])
        return;
    o = json_loads(r->ctx->resume, 0, NULL);
    key = json_string_value(json_object_get(o, "archiveKey"));
    id = json_string_value(json_object_get(o, "uploadId"));
    listing = json_string_value(json_object_get(o, "listing"));
    job_list_digest(&r->list, want);
    snprintf(pfx, sizeof(pfx), "archived/%s/workspace-", r->job->space_id);
    if (key && id && listing && id[0] && strlen(id) < sizeof(r->resume_id) &&
        strlen(key) < sizeof(r->archive_key) &&
        strncmp(key, pfx, strlen(pfx)) == 0 && store_key_valid(key) &&
        !arch_key_taken(old, has_old, key) && want[0] &&
        strcmp(listing, want) == 0) {
        snprintf(r->archive_key, sizeof(r->archive_key), "%s", key);
        snprintf(r->resume_id, sizeof(r->resume_id), "%s", id);
        WK_LOG(WK_LOG_INFO, "archive.resuming", KV_STR("job_id", r->job->id),
               KV_STR("space_id", r->job->space_id),
               KV_STR("archive_key", key));
    } else {
        WK_LOG(WK_LOG_INFO, "archive.not_resumed", KV_STR("job_id", r->job->id),
               KV_STR("space_id", r->job->space_id),
               KV_STR("reason", listing && want[0] && strcmp(listing, want) != 0
                                    ? "listing changed"
                                    : "unusable checkpoint"));
    }
    json_decref(o);
}

/* A key for the new archive that no kept archive has (two archives in one
 * second get consecutive stamps). */
static void pick_archive_key(struct arch_run *r, const struct mf *old,
                             bool has_old)
{
    char stamp[32];

    for (;;) {
        wk_fmt_stamp(r->now, stamp, sizeof(stamp));
        snprintf(r->archive_key, sizeof(r->archive_key),
                 "archived/%s/workspace-%s.zip", r->job->space_id, stamp);
        if (!arch_key_taken(old, has_old, r->archive_key))
            break;
        r->now++;
    }
}

/* An earlier run that died (or lost the server) before it could abort
 * leaves its upload open: clean it up before starting ours. */
static enum wk_code abort_stale_uploads(struct arch_run *r, struct wk_err *err)
{
    char pfx[JOB_SPACE_ID_MAX + 16];
    size_t naborted = 0;
    enum wk_code rc;

    snprintf(pfx, sizeof(pfx), "archived/%s/", r->job->space_id);
    rc = store_abort_pending(r->ctx->store, pfx, &naborted, err);
    if (rc == WK_OK && naborted)
        WK_LOG(WK_LOG_INFO, "archive.stale_uploads_aborted",
               KV_STR("job_id", r->job->id), KV_INT("count", naborted));
    return rc;
}

/* Set r up for job (reading from src), with the manifests and the list
 * of archives to drop allocated; *max_attempts from the config. */
static enum wk_code run_init(struct arch_run *r, const struct job *job,
                             const struct job_ctx *ctx, struct store *src,
                             struct mf **m, struct mf **old,
                             struct mf_archive **drop, unsigned *max_attempts,
                             struct wk_err *err)
{
    memset(r, 0, sizeof(*r));
    r->job = job;
    r->ctx = ctx;
    r->src = src;
    r->now = ctx->now ? ctx->now() : time(NULL);
    prog_init(&r->prog, ctx->sink);
    *m = calloc(1, sizeof(**m));
    *old = calloc(1, sizeof(**old));
    *drop = calloc(MF_HISTORY_MAX + 1, sizeof(**drop));
    *max_attempts = ctx->cfg->archive_tries;
    if (*max_attempts < 1)
        *max_attempts = 1;
    if (!*m || !*old || !*drop)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    if (!job_space_id_valid(job->space_id))
        return wk_err_set(err, WK_E_INVAL, "invalid spaceId");
    return WK_OK;
}

static void run_release(struct arch_run *r, struct mf *m, struct mf *old,
                        struct mf_archive *drop)
{
    store_sha256_free(r->cas);
    arch_prev_release(&r->prev);
    job_list_release(&r->list);
    job_list_release(&r->next);
    free(m);
    free(old);
    free(drop);
}

/* r->prefix set: the manifest as found (arch_check_manifest), and a key
 * for the new archive. */
static enum wk_code run_begin(struct arch_run *r, bool *noop, bool *has_old,
                              struct mf *old, struct wk_err *err)
{
    enum wk_code rc;

    mf_key(r->job->space_id, r->mf_key, sizeof(r->mf_key));
    r->prog.st.phase = "listing";
    prog_update(&r->prog, true);
    rc = arch_check_manifest(r, noop, has_old, old, err);
    if (rc == WK_OK)
        pick_archive_key(r, old, *has_old);
    return rc;
}

/* The space is archived already: the no-op result (completed: how many
 * objects an interrupted delete left, now deleted; < 0: not said). */
static enum wk_code noop_result(struct arch_run *r, const struct mf *old,
                                long long completed, struct wk_buf *result,
                                struct wk_err *err)
{
    json_t *o = json_object();
    enum wk_code rc;

    json_object_set_new(o, "noop", json_true());
    json_object_set_new(o, "reason", json_string("already archived"));
    json_object_set_new(o, "archiveKey", json_string(old->archive_key));
    if (completed >= 0)
        json_object_set_new(o, "completedDelete",
                            json_integer((json_int_t)completed));
    rc = job_result_take(result, o, err);
    if (rc == WK_OK)
        job_prog_done(&r->prog);
    return rc;
}

enum wk_code arch_list_load(struct arch_run *r, struct job_list *l,
                            bool tolerant, struct wk_err *err)
{
    enum wk_code rc = job_list_load(
        r->src, r->prefix, JOB_LIST_ARCHIVE | (tolerant ? 0 : JOB_LIST_STRICT),
        l, err);

    if (rc == WK_OK && l->foreign)
        WK_LOG(WK_LOG_WARN, "archive.foreign_keys_skipped",
               KV_STR("job_id", r->job->id), KV_STR("prefix", r->prefix),
               KV_INT("count", l->foreign));
    return rc;
}

enum wk_code job_archive_run(const struct job *job, const struct job_ctx *ctx,
                             struct wk_buf *result, struct wk_err *err)
{
    struct arch_run r;
    struct mf *m = NULL, *old = NULL;
    struct mf_archive *drop = NULL; /* archives to delete */
    size_t ndrop = 0, kept_newer = 0;
    bool has_old = false;
    bool noop = false, archived = false, manifest_written = false;
    bool gave_up = false, mf_unknown = false;
    unsigned max_attempts = 1;
    enum wk_code rc;

    rc =
        run_init(&r, job, ctx, ctx->store, &m, &old, &drop, &max_attempts, err);
    if (rc != WK_OK)
        goto out;
    snprintf(r.prefix, sizeof(r.prefix), "active/%s/", job->space_id);
    r.prefix_len = strlen(r.prefix);
    rc = run_begin(&r, &noop, &has_old, old, err);
    if (rc != WK_OK)
        goto out;
    /* archived already: what is left is only counted (tolerant) */
    rc = arch_list_load(&r, &r.list, noop, err);
    if (rc != WK_OK)
        goto out;
    if (noop && r.list.n > 0) {
        /* a run that died between the manifest and the delete? */
        size_t done = 0, left = 0;
        rc = arch_record_finish(&r, old, &done, &left, err);
        if (rc != WK_OK)
            goto out;
        if (left == 0) {
            rc = noop_result(&r, old, (long long)done, result, err);
            goto out;
        }
        job_list_release(&r.list);
        rc = arch_list_load(&r, &r.list, true, err);
        if (rc != WK_OK)
            goto out;
    }
    if (noop) {
        if (r.list.n > 0) {
            /* Objects written after the archive was made (keptNewer) or
             * left by an interrupted delete. Archiving them alone would
             * make an archive missing the rest of the space; a restore
             * merges them (it never overwrites what is under active/),
             * and the next archive then takes the whole space. */
            WK_LOG(WK_LOG_WARN, "archive.refused", KV_STR("job_id", job->id),
                   KV_STR("space_id", job->space_id),
                   KV_STR("archive_key", old->archive_key),
                   KV_INT("objects", r.list.n));
            rc = wk_err_set(err, WK_E_CONFLICT,
                            "space '%s' is archived but %zu objects remain "
                            "under active/ (newer writes or an interrupted "
                            "delete): unarchive it first (the restore keeps "
                            "them), then archive again",
                            job->space_id, r.list.n);
            goto out;
        }
        rc = noop_result(&r, old, -1, result, err);
        goto out;
    }
    if (r.list.n == 0) {
        rc = wk_err_set(err, WK_E_NOTFOUND,
                        "space '%s' has no objects under '%s'", job->space_id,
                        r.prefix);
        goto out;
    }

    resume_check(&r, old, has_old);
    /* after a restore: what may be copied from the archive it came from */
    arch_prev_load(&r, old, has_old);
    rc = r.resume_id[0] ? WK_OK : abort_stale_uploads(&r, err);
    if (rc == WK_OK)
        rc = arch_write_state(&r, old, has_old, MF_ARCHIVING, err); /* the
        objects stay the space until "archived": nothing is deleted before */
    if (rc != WK_OK)
        goto out;
    rc = arch_archive_until_stable(&r, max_attempts, &gave_up, err);
    if (rc != WK_OK)
        goto out;
    if (gave_up) {
        arch_unmark_archiving(&r, old, has_old);
        /* Still in use: leave it active, untouched, and say so. */
        json_t *o = json_object();
        WK_LOG(WK_LOG_INFO, "archive.skipped", KV_STR("job_id", job->id),
               KV_STR("space_id", job->space_id),
               KV_STR("reason", "concurrent-writes"),
               KV_INT("attempts", r.attempt));
        json_object_set_new(o, "skipped", json_string("concurrent-writes"));
        json_object_set_new(o, "attempts", json_integer(r.attempt));
        rc = job_result_take(result, o, err);
        if (rc == WK_OK)
            job_prog_done(&r.prog);
        goto out;
    }
    archived = true;
    /* test failpoint: paused here, a successor may adopt this archive */
    wk_fail_point("archive.uploaded");

    arch_manifest_fill(&r, old, has_old, m, drop, &ndrop);
    rc = arch_record_write(&r, err);
    if (rc == WK_OK)
        rc = arch_manifest_write(&r, m, &mf_unknown, err);
    if (rc != WK_OK)
        goto out;
    manifest_written = true;

    /* Delete right away, while the listing after the upload is fresh: on a
     * server without conditional deletes, a write landing between that
     * listing and the delete is the one a user could lose. */
    r.prog.st.phase = "deleting";
    prog_update(&r.prog, true);
    rc = arch_delete_archived(&r, &kept_newer, err);
    if (rc == WK_OK)
        rc = arch_record_remove(&r, err);

    /* (whatever the delete above did, unless this run lost its job) */
    if (rc != WK_E_FENCED) {
        struct wk_err derr;
        wk_err_clear(&derr);
        if (arch_drop_old_archives(&r, drop, ndrop, &derr) == WK_E_FENCED &&
            rc == WK_OK)
            rc = wk_err_copy(err, &derr);
    }
    if (rc != WK_OK)
        goto out;

    {
        json_t *o = json_object();
        json_object_set_new(o, "archiveKey", json_string(r.archive_key));
        json_object_set_new(o, "checksum", json_string(r.sha));
        json_object_set_new(o, "size", json_integer((json_int_t)m->size));
        json_object_set_new(o, "uncompressedSize",
                            json_integer((json_int_t)m->uncompressed_size));
        json_object_set_new(o, "fileCount",
                            json_integer((json_int_t)m->file_count));
        json_object_set_new(o, "manifestKey", json_string(r.mf_key));
        json_object_set_new(o, "attempts", json_integer(r.attempt));
        /* entries copied from the previous archive instead of read */
        json_object_set_new(o, "copiedFiles",
                            json_integer((json_int_t)r.prev.copied_files));
        json_object_set_new(o, "copiedBytes",
                            json_integer((json_int_t)r.prev.copied_bytes));
        json_object_set_new(o, "keptNewer",
                            json_integer((json_int_t)kept_newer));
        rc = job_result_take(result, o, err);
    }
    if (rc == WK_OK)
        job_prog_done(&r.prog);
out:
    /* Fenced: the state is the successor's, nothing is undone. A manifest
     * write of unknown outcome may name the archive: it is kept. */
    if (rc != WK_OK && rc != WK_E_FENCED && archived && !manifest_written &&
        !mf_unknown) {
        /* The space stays active: do not leave an orphan archive behind. */
        struct wk_err derr;
        wk_err_clear(&derr);
        (void)arch_drop_archive(&r, &derr);
    }
    if (rc != WK_OK && rc != WK_E_FENCED && r.marked && !manifest_written &&
        !mf_unknown &&
        rc != WK_E_CONFLICT) /* a conflict: someone else has it now */
        arch_unmark_archiving(&r, old, has_old);
    run_release(&r, m, old, drop);
    return rc;
}

enum wk_code job_archive_from(const struct job *job, const struct job_ctx *ctx,
                              const struct job_archive_src *src,
                              struct job_archive_out *out, struct wk_err *err)
{
    struct arch_run r;
    struct mf *m = NULL, *old = NULL;
    struct mf_archive *drop = NULL;
    size_t ndrop = 0;
    bool has_old = false, noop = false, orphan = false, gave_up = false;
    bool mf_unknown = false;
    unsigned max_attempts = 1;
    enum wk_code rc;

    memset(out, 0, sizeof(*out));
    rc =
        run_init(&r, job, ctx, src->store, &m, &old, &drop, &max_attempts, err);
    if (rc != WK_OK)
        goto out;
    if (strlen(src->prefix) > ARCH_PREFIX_MAX) {
        rc = wk_err_set(err, WK_E_INVAL, "source prefix longer than %u bytes",
                        ARCH_PREFIX_MAX);
        goto out;
    }
    snprintf(r.prefix, sizeof(r.prefix), "%s", src->prefix);
    r.prefix_len = strlen(r.prefix);
    if (src->verify_cas) {
        rc = store_sha256_new(&r.cas, err);
        if (rc != WK_OK)
            goto out;
    }
    rc = run_begin(&r, &noop, &has_old, old, err);
    if (rc != WK_OK)
        goto out;
    rc = arch_list_load(&r, &r.list, false, err);
    if (rc != WK_OK)
        goto out;
    if (r.list.n == 0) {
        rc = wk_err_set(err, WK_E_NOTFOUND,
                        "source of space '%s' has no files under '%s'",
                        job->space_id, r.prefix);
        goto out;
    }
    rc = abort_stale_uploads(&r, err);
    if (rc == WK_OK)
        rc = arch_archive_until_stable(&r, max_attempts, &gave_up, err);
    if (rc != WK_OK)
        goto out;
    if (gave_up) {
        rc = wk_err_set(err, WK_E_CONFLICT,
                        "the source of space '%s' changed during each of %u "
                        "tries: stop what writes to it, then run again",
                        job->space_id, r.attempt);
        goto out;
    }
    orphan = true;

    arch_manifest_fill(&r, old, has_old, m, drop, &ndrop);
    rc = arch_manifest_write(&r, m, &mf_unknown, err);
    if (rc != WK_OK)
        goto out;
    orphan = false; /* named by the manifest: kept from here on */
    rc = arch_drop_old_archives(&r, drop, ndrop, err);
    if (rc != WK_OK)
        goto out;

    snprintf(out->archive_key, sizeof(out->archive_key), "%s", r.archive_key);
    snprintf(out->manifest_key, sizeof(out->manifest_key), "%s", r.mf_key);
    memcpy(out->checksum, r.sha, sizeof(out->checksum));
    out->size = m->size;
    out->uncompressed_size = m->uncompressed_size;
    out->file_count = m->file_count;
    out->attempts = r.attempt;
out:
    if (rc != WK_OK && rc != WK_E_FENCED && orphan && !mf_unknown) {
        /* No manifest names it: do not leave an orphan archive behind. */
        struct wk_err derr;
        wk_err_clear(&derr);
        (void)arch_drop_archive(&r, &derr);
    }
    run_release(&r, m, old, drop);
    return rc;
}

bool job_cas_name(const char *name, char want[65])
{
    size_t pl = strlen(ARCH_CAS_PREFIX);
    const char *p = name + pl;

    if (strncmp(name, ARCH_CAS_PREFIX, pl) != 0 || strlen(p) != 2 + 1 + 62 ||
        p[2] != '/')
        return false;
    memcpy(want, p, 2);
    memcpy(want + 2, p + 3, 62);
    want[64] = '\0';
    for (size_t i = 0; i < 64; i++)
        if (!((want[i] >= '0' && want[i] <= '9') ||
              (want[i] >= 'a' && want[i] <= 'f')))
            return false;
    return true;
}
