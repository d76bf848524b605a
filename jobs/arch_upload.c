/*
 * arch_upload: one archive attempt and the attempts until one holds: the
 * upload (sealed when keys are set, resumable), the central directory
 * read back and checked with the restore's rules, the listing after the
 * upload compared with the one archived, and the drop of an archive no
 * manifest names.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/wk_log.h"
#include "common/wk_path.h"
#include "jobs/arch_int.h"
#include "jobs/job_int.h"
#include "jobs/progress.h"
#include "storage/seal.h"
#include "storage/store.h"
#include "zip/zip_fmt.h"
#include "zip/zipcd.h"
#include "zip/zipr.h"
#include "zip/zipw.h"

/* The upload exists: record it with the job, so that a run taking the job
 * over after a crash can continue it (job_ctx.resume). */
static void upload_started(void *ud, const char *upload_id)
{
    struct arch_run *r = ud;
    json_t *o = json_pack("{s:s, s:s, s:s}", "archiveKey", r->archive_key,
                          "uploadId", upload_id, "listing", r->listing);
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;

    if (s)
        prog_checkpoint(&r->prog, s);
    free(s);
    json_decref(o);
}

/* Delete the just-uploaded archive: no manifest names it. */
enum wk_code arch_drop_archive(struct arch_run *r, struct wk_err *err)
{
    const char *k = r->archive_key;
    size_t nd = 0;
    enum wk_code rc;

    /* a successor may have adopted this very key (a resumed upload) */
    rc = job_fence(r->ctx, "archive.drop", err);
    if (rc != WK_OK)
        return rc;
    rc = store_delete_many(r->ctx->store, &k, 1, &nd, err);

    if (rc != WK_OK)
        WK_LOG(WK_LOG_WARN, "archive.orphan_kept", KV_STR("job_id", r->job->id),
               KV_STR("archive_key", k), KV_STR("msg", err ? err->msg : ""));
    return rc;
}

/* Reading the uploaded archive's central directory back (verify_upload):
 * entry i must be what the writer wrote for r->list.v[i]. */
struct arch_verify {
    const struct arch_run *r;
    const struct zipw_rec *recs; /* borrowed from the zipw */
    size_t n_recs;
};

static enum wk_code verify_entry(const struct zipcd_entry *e, void *ud,
                                 struct wk_err *err)
{
    const struct arch_verify *v = ud;
    const struct arch_run *r = v->r;
    const struct job_obj *o;
    const struct zipw_rec *w;
    const char *want;
    char shown[128], why[160];

    wk_path_shown(shown, sizeof(shown), e->name, e->name_len);
    why[0] = '\0';
    if (e->index >= r->list.n || e->index >= v->n_recs) {
        snprintf(why, sizeof(why), "more entries than the %zu written",
                 v->n_recs);
        goto bad;
    }
    o = &r->list.v[e->index];
    w = &v->recs[e->index];
    want = o->key + r->prefix_len;
    if (e->name_len != strlen(e->name)) {
        snprintf(why, sizeof(why), "name holds a NUL byte");
    } else if (!zipr_name_valid(e->name, why, sizeof(why))) {
        /* why says which rule */
    } else if (strcmp(e->name, want) != 0) {
        char w_shown[128];
        wk_path_shown(w_shown, sizeof(w_shown), want, strlen(want));
        snprintf(why, sizeof(why), "written as '%s'", w_shown);
    } else if (e->index > 0 && strcmp(e->name, r->list.v[e->index - 1].key +
                                                   r->prefix_len) == 0) {
        /* names equal the listing in its order (sorted): a repeat is the
         * one before */
        snprintf(why, sizeof(why), "duplicate name");
    } else if (e->usize != w->size || e->usize != o->size) {
        snprintf(why, sizeof(why),
                 "%llu bytes in the central directory, %llu were written",
                 (unsigned long long)e->usize, (unsigned long long)w->size);
    } else if (e->crc != w->crc32) {
        snprintf(why, sizeof(why),
                 "CRC-32 %08lx in the central directory, %08lx was written",
                 (unsigned long)e->crc, (unsigned long)w->crc32);
    } else if (e->method != (w->stored ? 0 : 8)) {
        snprintf(why, sizeof(why), "compression method %u, not %s",
                 (unsigned)e->method, w->stored ? "stored" : "deflate");
    } else if (w->stored && e->csize != e->usize) {
        snprintf(why, sizeof(why), "stored with %llu compressed bytes for %llu",
                 (unsigned long long)e->csize, (unsigned long long)e->usize);
    } else if (w->stored && (e->flags & ZIP_FLAG_DESCRIPTOR)) {
        /* a streaming reader (Java's ZipInputStream) refuses that */
        snprintf(why, sizeof(why), "stored with a data descriptor");
    } else if (e->flags & 0x2041) {
        snprintf(why, sizeof(why), "marked encrypted");
    }
    if (!why[0])
        return WK_OK;
bad:
    return wk_err_set(err, WK_E_CORRUPT,
                      "archive '%s' does not verify: entry %llu '%s': %s",
                      r->archive_key, (unsigned long long)e->index, shown, why);
}

/* Read the uploaded archive's central directory back (ranged GETs: the
 * tail, then the directory in chunk_bytes blocks) and check it with the
 * restore's rules against what zw wrote: every name valid, none repeated,
 * the count, each entry's name, size, CRC-32 and method, ZIP64 records
 * wherever a value needs them (zipcd.h). Nothing was deleted yet: a
 * failure here drops the upload and leaves the space active. */
static enum wk_code verify_upload(struct arch_run *r, const struct zipw *zw,
                                  uint64_t stored_size,
                                  const struct seal_dk *dk, struct wk_err *err)
{
    struct arch_verify v;
    struct zipcd_info info;
    enum wk_code rc;

    memset(&v, 0, sizeof(v));
    memset(&info, 0, sizeof(info));
    v.r = r;
    v.recs = zipw_entries(zw, &v.n_recs);
    if (v.n_recs != r->list.n)
        return wk_err_set(err, WK_E_INTERNAL,
                          "archive '%s': %zu entries written for %zu listed",
                          r->archive_key, v.n_recs, r->list.n);
    rc = zipcd_read(r->ctx->store, r->archive_key, stored_size, dk,
                    (size_t)r->ctx->cfg->chunk_bytes, verify_entry, &v, &info,
                    err);
    if (rc != WK_OK)
        return rc;
    if (info.entries != v.n_recs)
        return wk_err_set(err, WK_E_CORRUPT,
                          "archive '%s' does not verify: %llu entries in the "
                          "central directory, %zu were written",
                          r->archive_key, (unsigned long long)info.entries,
                          v.n_recs);
    WK_LOG(WK_LOG_INFO, "archive.verified", KV_STR("job_id", r->job->id),
           KV_STR("archive_key", r->archive_key),
           KV_INT("entries", info.entries), KV_INT("cd_bytes", info.cd_size),
           KV_INT("zip64", info.zip64 ? 1 : 0),
           KV_INT("requests", info.requests));
    return WK_OK;
}

/* One attempt: r->list into a new ZIP, uploaded, verified, then listed
 * again. On WK_OK either the archive is in place and matches r->list
 * (r->sha, r->zip_size set), or *changed: the space changed meanwhile and
 * the archive was deleted again; r->next holds the new listing when
 * r->have_next. On failure no archive is left (as far as deleting it
 * worked) and active/ is untouched. */
static enum wk_code archive_once(struct arch_run *r, bool *changed,
                                 struct wk_err *err)
{
    const struct job_ctx *ctx = r->ctx;
    struct store_writer *w = NULL;
    struct seal_writer *sw = NULL;
    struct seal_dk dk;
    struct zipw *zw = NULL;
    struct store_writer_opts wopts;
    struct zipw_opts zopts;
    struct store_stat st;
    struct job_list_diff d;
    bool committed = false;
    uint64_t est;
    enum wk_code rc;

    *changed = false;
    r->have_next = false;
    memset(&r->enc, 0, sizeof(r->enc));
    memset(&dk, 0, sizeof(dk));
    memset(&zopts, 0, sizeof(zopts));
    job_list_release(&r->next);
    r->prog.st.bytes_total = r->list.total_bytes;
    r->prog.st.files_total = r->list.n;
    r->prog.st.bytes_done = 0;
    r->prog.st.files_done = 0; /* progress itself never goes back */
    r->prog.st.phase = "archiving";
    prog_update(&r->prog, true);

    /* Upper bound of the ZIP size: data + per-entry headers (local, data
     * descriptor, central directory, ZIP64 extras, two copies of the name)
     * + a little for the end records. Deflate can grow data slightly. */
    est = r->list.total_bytes + r->list.total_bytes / 100 +
          (uint64_t)r->list.n * (256 + 2 * 1024) + (1u << 20);
    memset(&wopts, 0, sizeof(wopts));
    wopts.part_bytes = job_part_bytes(est, ctx->cfg->part_bytes);
    wopts.parts_in_flight = ctx->cfg->parts_in_flight;
    job_list_digest(&r->list, r->listing);
    wopts.on_upload = upload_started;
    wopts.on_upload_ud = r;
    /* A run cancelled (handed back at shutdown, or its lease lost) keeps
     * its upload and checkpoint: the next run resumes it (job_ctx.resume)
     * rather than send every part again. */
    wopts.keep_if = ctx->cancel;
    if (r->attempt == 1 && r->resume_id[0])
        wopts.resume_upload_id = r->resume_id;
    rc = store_open_write(ctx->store, r->archive_key, &wopts, &w, err);
    if (rc != WK_OK)
        goto out;
    if (ctx->keys) {
        /* a fresh data key for every stream: one key never seals two
         * different streams, so a redo or a resumed upload re-sends its
         * parts rather than reuse a nonce */
        rc = seal_dk_new(ctx->keys, r->job->space_id, &r->enc, &dk, err);
        if (rc == WK_OK) {
            rc = seal_writer_new(w, &dk, &sw, err);
            w = NULL; /* owned by sw, even on failure */
        }
        /* (dk is kept to read the upload back: wiped at out) */
        if (rc != WK_OK)
            goto out;
        w = seal_writer_sink(sw);
        zopts.no_hash = true; /* the stored bytes are hashed by sw */
    }
    zopts.level = ctx->cfg->deflate_level;
    rc = zipw_new(w, &zopts, &zw, err);
    if (rc != WK_OK)
        goto out;
    WK_LOG(WK_LOG_INFO, "archive.started", KV_STR("job_id", r->job->id),
           KV_STR("space_id", r->job->space_id),
           KV_STR("archive_key", r->archive_key), KV_INT("files", r->list.n),
           KV_INT("bytes", r->list.total_bytes),
           KV_INT("part_bytes", wopts.part_bytes),
           KV_STR("key_id", r->enc.on ? r->enc.key_id : ""),
           KV_INT("attempt", r->attempt));
    rc = arch_write_archive(r, zw, changed, err);
    if (rc != WK_OK || *changed)
        goto out; /* freeing the writer aborts the upload */
    rc = zipw_finish(zw, err);
    if (rc == WK_OK) {
        r->prog.st.phase = "uploading";
        prog_update(&r->prog, true);
        rc = store_writer_commit(w, err);
    }
    if (rc != WK_OK)
        goto out;
    committed = true;
    {
        /* A CreateMultipartUpload whose reply was lost (and retried) left
         * a second upload on this very key: abort it. */
        /* (resuming: also the uploads of older runs, not aborted before) */
        char pfx[sizeof(r->archive_key)];
        size_t n = 0;
        struct wk_err aerr;
        wk_err_clear(&aerr);
        if (r->resume_id[0])
            snprintf(pfx, sizeof(pfx), "archived/%s/", r->job->space_id);
        else
            snprintf(pfx, sizeof(pfx), "%s", r->archive_key);
        /* An abort is destructive too: a run that lost its job must not
         * abort the upload its successor is writing (the next step, the
         * pending-delete record, stops such a run). */
        if (job_fence(r->ctx, "archive.abort_extra", &aerr) != WK_OK)
            WK_LOG(WK_LOG_WARN, "archive.abort_extra_fenced",
                   KV_STR("job_id", r->job->id), KV_STR("msg", aerr.msg));
        else if (store_abort_pending(ctx->store, pfx, &n, &aerr) != WK_OK)
            WK_LOG(WK_LOG_WARN, "archive.abort_extra_failed",
                   KV_STR("job_id", r->job->id), KV_STR("msg", aerr.msg));
        else if (n)
            WK_LOG(WK_LOG_INFO, "archive.extra_uploads_aborted",
                   KV_STR("job_id", r->job->id), KV_INT("count", n));
    }

    /* Verify what the store holds before anything is deleted. */
    r->prog.st.phase = "verifying";
    prog_update(&r->prog, true);
    rc = store_head(ctx->store, r->archive_key, &st, err);
    if (rc != WK_OK)
        goto out;
    {
        uint64_t wrote = sw ? seal_writer_bytes_out(sw) : zipw_bytes_out(zw);
        if (st.size != wrote) {
            rc = wk_err_set(err, WK_E_CORRUPT,
                            "archive '%s' is %llu bytes in the store, %llu "
                            "were written",
                            r->archive_key, (unsigned long long)st.size,
                            (unsigned long long)wrote);
            goto out;
        }
    }
    rc = verify_upload(r, zw, st.size, sw ? &dk : NULL, err);
    if (rc != WK_OK)
        goto out;
    if (sw)
        seal_writer_sha256_hex(sw, r->sha);
    else
        zipw_sha256_hex(zw, r->sha);
    r->zip_size = st.size;

    /* Users keep writing while a space is archived: the archive holds the
     * space only if nothing was added, changed or removed since the
     * listing it was made from. */
    rc = arch_list_load(r, &r->next, false, err);
    if (rc != WK_OK)
        goto out;
    r->have_next = true;
    if (!job_list_same(&r->list, &r->next, &d)) {
        WK_LOG(WK_LOG_INFO, "archive.space_changed",
               KV_STR("job_id", r->job->id), KV_INT("attempt", r->attempt),
               KV_INT("added", d.added), KV_INT("changed", d.changed),
               KV_INT("removed", d.removed), KV_STR("key", d.first));
        *changed = true;
    }
out:
    if (committed && (rc != WK_OK || *changed)) {
        struct wk_err derr;
        wk_err_clear(&derr);
        enum wk_code drc = arch_drop_archive(r, &derr);
        if (drc == WK_E_FENCED && rc != WK_E_FENCED) {
            wk_err_clear(err);
            rc = wk_err_copy(err, &derr);
        } else if (drc != WK_OK && rc == WK_OK) {
            /* A redo or a skip would leave it behind: fail instead. */
            wk_err_copy(err, &derr);
            wk_err_prefix(err, "space changed while archiving, and the "
                               "unused archive could not be deleted");
            rc = derr.code;
        }
    }
    seal_dk_wipe(&dk);
    zipw_free(zw);
    store_writer_free(w); /* aborts the upload unless committed or
                             cancelled */
    return rc;
}

/* Archive attempts until one matches the listing after its upload, at
 * most max_attempts; *gave_up (with WK_OK) when the space kept changing.
 * r->list must hold the first listing. */
enum wk_code arch_archive_until_stable(struct arch_run *r,
                                       unsigned max_attempts, bool *gave_up,
                                       struct wk_err *err)
{
    enum wk_code rc;

    *gave_up = false;
    for (r->attempt = 1;; r->attempt++) {
        bool changed = false;

        rc = archive_once(r, &changed, err);
        if (rc != WK_OK)
            return rc;
        if (!changed) {
            /* the listing after the upload matched r->list: one is enough */
            job_list_release(&r->next);
            r->have_next = false;
            return WK_OK;
        }
        if (r->attempt >= max_attempts) {
            *gave_up = true;
            return WK_OK;
        }
        /* Redo from the newest listing there is. */
        if (r->have_next) {
            job_list_release(&r->list);
            r->list = r->next;
            memset(&r->next, 0, sizeof(r->next));
            r->have_next = false;
        } else {
            r->prog.st.phase = "listing";
            prog_update(&r->prog, true);
            rc = arch_list_load(r, &r->list, false, err);
            if (rc != WK_OK)
                return rc;
        }
        if (r->list.n == 0)
            return wk_err_set(err, WK_E_NOTFOUND,
                              "space '%s' has no objects under '%s' any more",
                              r->job->space_id, r->prefix);
    }
}
