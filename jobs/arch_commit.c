/*
 * arch_commit: the archive's commit and delete. The manifest as found
 * (and the states archiving/active around an attempt), the pending-delete
 * record, the manifest naming the new archive with its history (written
 * fenced, read back when its outcome is unknown), the conditional delete
 * of the archived objects, and the drop of archives beyond the kept ones.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/wk_fail.h"
#include "common/wk_log.h"
#include "jobs/arch_int.h"
#include "jobs/job_int.h"
#include "jobs/manifest.h"
#include "storage/store.h"

bool arch_key_taken(const struct mf *old, bool has_old, const char *key)
{
    if (!has_old)
        return false;
    if (strcmp(old->archive_key, key) == 0)
        return true;
    for (size_t i = 0; i < old->n_history; i++)
        if (strcmp(old->history[i].key, key) == 0)
            return true;
    return false;
}

/* New manifest's history: the previous current archive, then the older
 * ones, newest first, keep - 1 of them; the rest go into drop (which has
 * room for MF_HISTORY_MAX + 1). */
static void build_history(const struct mf *old, bool has_old, unsigned keep,
                          struct mf *m, struct mf_archive *drop, size_t *ndrop)
{
    size_t max = keep > 0 ? keep - 1 : 0;
    size_t n = 0;

    *ndrop = 0;
    m->n_history = 0;
    if (!has_old)
        return;
    if (max > MF_HISTORY_MAX)
        max = MF_HISTORY_MAX;
    for (size_t i = 0; i <= old->n_history; i++) {
        struct mf_archive a;
        if (i == 0) {
            if (!old->archive_key[0])
                continue;
            mf_current(old, &a);
        } else {
            a = old->history[i - 1];
        }
        if (n++ < max)
            m->history[m->n_history++] = a;
        else
            drop[(*ndrop)++] = a;
    }
}

/* Existing manifest: none (*has_old false), archived already (a no-op),
 * or active after a restore (its archives become history). */
enum wk_code arch_check_manifest(struct arch_run *r, bool *noop, bool *has_old,
                                 struct mf *old, struct wk_err *err)
{
    enum wk_code rc;

    *noop = false;
    *has_old = false;
    r->mf_etag[0] = '\0';
    /* with its version: the new manifest is written only over this one
     * (a later change makes our write fail, never lose theirs) */
    rc = job_mf_read(r->ctx->store, r->mf_key, old, has_old, r->mf_etag, err);
    if (rc != WK_OK || !*has_old)
        return rc;
    r->mf_gen = old->generation;
    if (old->state == MF_ARCHIVED) {
        *noop = true;
    } else if (old->state == MF_RESTORING) {
        rc = wk_err_set(err, WK_E_CONFLICT,
                        "space '%s' is being restored (its manifest says "
                        "restoring): let the unarchive finish, or run it "
                        "again, before archiving",
                        r->job->space_id);
    }
    return rc;
}

/* After the manifest: delete the objects of the listing the archive was
 * checked against (r->list, which the listing after the upload matched),
 * each only at its archived version, then list what is left: the objects
 * added since, or rewritten and kept by a conditional delete (*kept_newer).
 * Listing after the delete rather than before it costs one listing of what
 * remains (usually nothing) instead of one of the whole space. */
enum wk_code arch_delete_archived(struct arch_run *r, size_t *kept_newer,
                                  struct wk_err *err)
{
    struct job_list now;
    const char **keys = NULL, **etags = NULL;
    bool *changed = NULL;
    size_t nkeys = r->list.n, kept = 0, ndeleted = 0;
    enum wk_code rc = WK_OK;

    memset(&now, 0, sizeof(now));
    *kept_newer = 0;
    keys = calloc(nkeys ? nkeys : 1, sizeof(*keys));
    etags = calloc(nkeys ? nkeys : 1, sizeof(*etags));
    changed = calloc(nkeys ? nkeys : 1, sizeof(*changed));
    if (!keys || !etags || !changed) {
        rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
        goto out;
    }
    /* archive order: the ops files (the ones users write) go first */
    for (size_t i = 0; i < nkeys; i++) {
        keys[i] = r->list.v[i].key;
        etags[i] = r->list.v[i].etag;
    }
    /* each only at its archived version: a write landing after the listing
     * makes the server keep the object (S3 conditional delete) */
    if (nkeys > 0)
        rc = job_delete_keys(r->ctx, "archive.delete", keys, etags, nkeys,
                             &ndeleted, changed, err);
    if (rc == WK_E_FENCED)
        goto out;
    if (rc != WK_OK) {
        wk_err_prefix(err,
                      "archive and manifest are written, but %zu of %zu "
                      "objects under '%s' could not be deleted",
                      nkeys - ndeleted, nkeys, r->prefix);
        goto out;
    }
    for (size_t k = 0; k < nkeys; k++)
        kept += changed[k];
    /* after the delete: what is left is kept, whatever its name */
    rc = arch_list_load(r, &now, true, err);
    if (rc != WK_OK) {
        wk_err_prefix(err,
                      "archive, manifest and delete are done, but listing "
                      "what is left under '%s' failed",
                      r->prefix);
        goto out;
    }
    *kept_newer = now.n;
    if (now.n)
        WK_LOG(WK_LOG_WARN, "archive.kept_newer", KV_STR("job_id", r->job->id),
               KV_STR("space_id", r->job->space_id), KV_INT("kept", now.n),
               KV_INT("kept_by_server", kept), KV_INT("deleted", ndeleted),
               KV_STR("key", now.v[0].key));
out:
    free(keys);
    free(etags);
    free(changed);
    job_list_release(&now);
    return rc;
}

/*
 * The pending-delete record, metadata/<spaceId>.pending-delete.json:
 * {"archiveKey": "...", "objects": [[key, etag, size], ...]}, the listing
 * the archive was verified against. Written before the manifest, removed
 * once the delete is done, so that a run that dies in between leaves
 * enough behind for the next run to finish the delete safely: only
 * objects still at their archived version go.
 */
static void record_key(const struct arch_run *r, char *buf, size_t len)
{
    snprintf(buf, len, "metadata/%s.pending-delete.json", r->job->space_id);
}

enum wk_code arch_record_write(struct arch_run *r, struct wk_err *err)
{
    char key[JOB_SPACE_ID_MAX + 48];
    json_t *o = json_object(), *arr = json_array();
    char *text = NULL;
    enum wk_code rc = WK_OK;

    if (!o || !arr) {
        json_decref(o);
        json_decref(arr);
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    }
    json_object_set_new(o, "archiveKey", json_string(r->archive_key));
    {
        /* what the delete it drives checks first (arch_record_finish) */
        struct store_stat ast;
        rc = store_head(r->ctx->store, r->archive_key, &ast, err);
        if (rc != WK_OK) {
            json_decref(arr);
            goto out;
        }
        json_object_set_new(o, "archiveSize",
                            json_integer((json_int_t)ast.size));
        json_object_set_new(o, "archiveEtag", json_string(ast.etag));
        json_object_set_new(o, "checksum", json_string(r->sha));
    }
    json_object_set_new(o, "objects", arr);
    for (size_t i = 0; i < r->list.n; i++) {
        const struct job_obj *ob = &r->list.v[i];
        json_t *e = json_pack("[s, s, I]", ob->key, ob->etag ? ob->etag : "",
                              (json_int_t)ob->size);
        if (!e || json_array_append_new(arr, e) != 0) {
            rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
            goto out;
        }
    }
    text = json_dumps(o, JSON_COMPACT);
    if (!text) {
        rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
        goto out;
    }
    record_key(r, key, sizeof(key));
    rc = job_fence(r->ctx, "archive.record", err);
    if (rc == WK_OK)
        rc = store_put(r->ctx->store, key, text, strlen(text), err);
out:
    free(text);
    json_decref(o);
    return rc;
}

/* WK_E_FENCED (into err) when this run no longer owns its job; any other
 * failure is only logged (the record is then left for the next run). */
enum wk_code arch_record_remove(struct arch_run *r, struct wk_err *err)
{
    char key[JOB_SPACE_ID_MAX + 48];
    const char *k = key;
    size_t nd = 0;
    struct wk_err derr;
    enum wk_code rc = job_fence(r->ctx, "archive.record_remove", err);

    if (rc != WK_OK)
        return rc;
    record_key(r, key, sizeof(key));
    wk_err_clear(&derr);
    if (store_delete_many(r->ctx->store, &k, 1, &nd, &derr) != WK_OK)
        WK_LOG(WK_LOG_WARN, "archive.record_kept", KV_STR("job_id", r->job->id),
               KV_STR("key", key), KV_STR("msg", derr.msg));
    return WK_OK;
}

/* Before a delete driven by a pending-delete record: the archive it names
 * must exist with the recorded size (and the manifest's), the recorded
 * ETag and checksum where recorded. WK_E_CORRUPT (nothing is deleted)
 * otherwise. */
static enum wk_code record_archive_check(struct arch_run *r,
                                         const struct mf *old, json_t *root,
                                         struct wk_err *err)
{
    struct store_stat ast;
    struct wk_err herr;
    json_t *sz = json_object_get(root, "archiveSize");
    const char *etag = json_string_value(json_object_get(root, "archiveEtag"));
    const char *sum = json_string_value(json_object_get(root, "checksum"));
    enum wk_code rc;

    wk_err_clear(&herr);
    rc = store_head(r->ctx->store, old->archive_key, &ast, &herr);
    if (rc == WK_E_NOTFOUND)
        return wk_err_set(err, WK_E_CORRUPT,
                          "archive '%s' named by the manifest and the "
                          "pending-delete record does not exist: nothing "
                          "under active/ is deleted",
                          old->archive_key);
    if (rc != WK_OK)
        return wk_err_copy(err, &herr);
    if (ast.size != old->size ||
        (json_is_integer(sz) && (uint64_t)json_integer_value(sz) != ast.size) ||
        (etag && etag[0] && strcmp(etag, ast.etag) != 0) ||
        (sum && sum[0] && strcmp(sum, old->checksum) != 0))
        return wk_err_set(err, WK_E_CORRUPT,
                          "archive '%s' is not the one the pending-delete "
                          "record names (%llu bytes, etag '%s'): nothing "
                          "under active/ is deleted",
                          old->archive_key, (unsigned long long)ast.size,
                          ast.etag);
    return WK_OK;
}

/* The space is archived (old) and r->list holds what is under active/.
 * With a record of that archive, delete the objects still at their
 * archived version (a delete that a dead run did not finish); *done is
 * how many, *left how many remain (newer writes). */
enum wk_code arch_record_finish(struct arch_run *r, const struct mf *old,
                                size_t *done, size_t *left, struct wk_err *err)
{
    char key[JOB_SPACE_ID_MAX + 48];
    struct wk_buf b;
    struct wk_err gerr;
    json_t *root = NULL, *objs;
    const char **del = NULL, **etags = NULL;
    bool *changed = NULL;
    size_t ndel = 0, nd = 0;
    enum wk_code rc;

    *done = 0;
    *left = r->list.n;
    record_key(r, key, sizeof(key));
    wk_buf_init(&b, 1u << 30);
    wk_err_clear(&gerr);
    rc = store_get_all(r->ctx->store, key, &b, &gerr);
    if (rc == WK_E_NOTFOUND) {
        rc = WK_OK; /* no record: nothing known to be ours */
        goto out;
    }
    if (rc != WK_OK) {
        wk_err_copy(err, &gerr);
        goto out;
    }
    root = json_loadb(b.data, b.len, 0, NULL);
    objs = root ? json_object_get(root, "objects") : NULL;
    if (!json_is_array(objs) ||
        !json_is_string(json_object_get(root, "archiveKey")) ||
        strcmp(json_string_value(json_object_get(root, "archiveKey")),
               old->archive_key) != 0)
        goto out; /* another archive's record: not evidence for this one */
    rc = record_archive_check(r, old, root, err);
    if (rc != WK_OK)
        goto out;
    del = calloc(r->list.n ? r->list.n : 1, sizeof(*del));
    etags = calloc(r->list.n ? r->list.n : 1, sizeof(*etags));
    changed = calloc(r->list.n ? r->list.n : 1, sizeof(*changed));
    if (!del || !etags || !changed) {
        rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
        goto out;
    }
    /* both small in practice (the leftovers of one delete): a scan */
    for (size_t i = 0; i < r->list.n; i++) {
        const struct job_obj *ob = &r->list.v[i];
        size_t j;
        json_t *e;
        json_array_foreach(objs, j, e)
        {
            if (json_is_array(e) && json_array_size(e) == 3 &&
                json_is_string(json_array_get(e, 0)) &&
                strcmp(json_string_value(json_array_get(e, 0)), ob->key) == 0 &&
                json_is_string(json_array_get(e, 1)) &&
                strcmp(json_string_value(json_array_get(e, 1)),
                       ob->etag ? ob->etag : "") == 0 &&
                json_integer_value(json_array_get(e, 2)) ==
                    (json_int_t)ob->size) {
                etags[ndel] = ob->etag;
                del[ndel++] = ob->key;
                break;
            }
        }
    }
    if (ndel)
        rc = job_delete_keys(r->ctx, "archive.delete", del, etags, ndel, &nd,
                             changed, err);
    if (rc != WK_OK)
        goto out;
    *done = nd;
    *left = r->list.n - nd;
    WK_LOG(WK_LOG_INFO, "archive.delete_finished", KV_STR("job_id", r->job->id),
           KV_STR("space_id", r->job->space_id), KV_INT("deleted", nd),
           KV_INT("kept", *left));
    rc = arch_record_remove(r, err);
out:
    free(del);
    free(etags);
    free(changed);
    json_decref(root);
    wk_buf_release(&b);
    return rc;
}

/* The manifest as read (old), or a new one naming no archive, in state st,
 * written over the version this run last read or wrote. */
enum wk_code arch_write_state(struct arch_run *r, const struct mf *old,
                              bool has_old, enum mf_state st,
                              struct wk_err *err)
{
    struct mf *m = calloc(1, sizeof(*m));
    enum wk_code rc;

    if (!m)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    if (has_old) {
        *m = *old;
    } else {
        snprintf(m->version, sizeof(m->version), "%s", MF_VERSION);
        snprintf(m->space_id, sizeof(m->space_id), "%s", r->job->space_id);
        snprintf(m->compression, sizeof(m->compression), "deflate");
        m->created_at = (time_t)r->list.oldest;
    }
    m->state = st;
    m->generation = r->mf_gen + 1;
    rc = job_fence(r->ctx, "archive.manifest_state", err);
    if (rc == WK_OK)
        rc = job_mf_put(r->ctx, r->ctx->store, r->mf_key, m, r->mf_etag,
                        sizeof(r->mf_etag), err);
    if (rc == WK_OK) {
        r->mf_gen = m->generation;
        r->marked = st == MF_ARCHIVING;
    }
    free(m);
    return rc;
}

/* The archive did not happen (failed, skipped, handed back): the space is
 * active again. A failure here leaves "archiving", which readers treat as
 * active, and the next archive or unarchive repairs it. */
void arch_unmark_archiving(struct arch_run *r, const struct mf *old,
                           bool has_old)
{
    struct wk_err e;

    wk_err_clear(&e);
    if (arch_write_state(r, old, has_old, MF_ACTIVE, &e) != WK_OK)
        WK_LOG(WK_LOG_WARN, "archive.unmark_failed",
               KV_STR("job_id", r->job->id),
               KV_STR("space_id", r->job->space_id), KV_STR("msg", e.msg));
}

/* After a failed manifest write: does the store hold m anyway (the first
 * PUT landed, its reply was lost, the retries failed)? *landed then, and
 * r->mf_etag is its version; *known false when the manifest could not be
 * read back either (then nothing may be undone: it may name the archive). */
static void manifest_read_back(struct arch_run *r, const struct mf *m,
                               bool *landed, bool *known)
{
    struct wk_err e;
    char tag[sizeof(((struct store_stat *)0)->etag)];
    struct mf *cur = calloc(1, sizeof(*cur));
    bool fetched = false;
    enum wk_code rc;

    *landed = false;
    *known = false;
    wk_err_clear(&e);
    if (!cur)
        goto out;
    rc = job_mf_get(r->ctx->store, r->mf_key, cur, &fetched, tag, &e);
    if (rc == WK_E_NOTFOUND) {
        *known = true; /* no manifest at all: ours did not land */
        goto out;
    }
    if (rc != WK_OK) {
        /* one that does not parse is not ours either */
        *known = fetched;
        goto out;
    }
    *known = true;
    *landed = strcmp(cur->archive_key, m->archive_key) == 0 &&
              cur->generation == m->generation && cur->state == m->state;
    if (*landed) /* its version (same GET), for a later write */
        snprintf(r->mf_etag, sizeof(r->mf_etag), "%s", tag);
out:
    WK_LOG(WK_LOG_WARN, "archive.manifest_read_back",
           KV_STR("job_id", r->job->id), KV_STR("key", r->mf_key),
           KV_BOOL("landed", *landed), KV_BOOL("known", *known),
           KV_STR("msg", e.msg));
    free(cur);
}

/* Write m over the manifest this run read (fencing, see arch_check_manifest).
 * A failure whose outcome is unknown (reply lost, then 503 or a timeout)
 * is settled by reading the manifest back: if it names our archive and
 * generation it was written (WK_OK). *unknown when even that failed: the
 * caller must not drop the archive. */
enum wk_code arch_manifest_write(struct arch_run *r, const struct mf *m,
                                 bool *unknown, struct wk_err *err)
{
    enum wk_code rc;

    *unknown = false;
    rc = job_fence(r->ctx, "archive.manifest", err);
    if (rc != WK_OK)
        return rc;
    rc = job_mf_put(r->ctx, r->ctx->store, r->mf_key, m, r->mf_etag,
                    sizeof(r->mf_etag), err);
    /* (a failed precondition is known: not ours; s3_put_if already
     * recognises its own retried write) */
    if (rc != WK_OK && rc != WK_E_FENCED && rc != WK_E_CONFLICT) {
        bool landed = false, known = false;
        manifest_read_back(r, m, &landed, &known);
        if (landed) {
            WK_LOG(WK_LOG_WARN, "archive.manifest_landed",
                   KV_STR("job_id", r->job->id), KV_STR("key", r->mf_key),
                   KV_STR("msg", err->msg));
            wk_err_clear(err);
            rc = WK_OK;
        } else if (!known) {
            *unknown = true;
        }
    }

    if (rc == WK_OK)
        WK_LOG(WK_LOG_INFO, "archive.uploaded", KV_STR("job_id", r->job->id),
               KV_STR("space_id", r->job->space_id),
               KV_STR("archive_key", r->archive_key), KV_INT("size", m->size),
               KV_STR("checksum", r->sha), KV_INT("attempts", r->attempt));
    return rc;
}

void arch_manifest_fill(const struct arch_run *r, const struct mf *old,
                        bool has_old, struct mf *m, struct mf_archive *drop,
                        size_t *ndrop)
{
    snprintf(m->version, sizeof(m->version), "%s", MF_VERSION);
    snprintf(m->space_id, sizeof(m->space_id), "%s", r->job->space_id);
    m->state = MF_ARCHIVED;
    m->created_at = (time_t)r->list.oldest;
    if (has_old && old->created_at > 0 && old->created_at < m->created_at)
        m->created_at = old->created_at; /* known from an earlier archive */
    m->archived_at = r->now;
    m->generation = r->mf_gen + 1;
    snprintf(m->compression, sizeof(m->compression), "deflate");
    snprintf(m->archive_key, sizeof(m->archive_key), "%s", r->archive_key);
    memcpy(m->checksum, r->sha, sizeof(m->checksum));
    m->size = r->zip_size;
    m->uncompressed_size = r->list.total_bytes;
    m->file_count = r->list.n;
    m->enc = r->enc;
    build_history(old, has_old, r->ctx->cfg->keep_archives, m, drop, ndrop);
}

/* Archives beyond the kept number: the manifest no longer names them. */
enum wk_code arch_drop_old_archives(const struct arch_run *r,
                                    const struct mf_archive *drop, size_t ndrop,
                                    struct wk_err *err)
{
    enum wk_code rc =
        ndrop ? job_fence(r->ctx, "archive.drop_old", err) : WK_OK;

    for (size_t i = 0; i < ndrop && rc == WK_OK; i++) {
        const char *k = drop[i].key;
        size_t nd = 0;
        struct wk_err derr;
        wk_err_clear(&derr);
        if (store_delete_many(r->ctx->store, &k, 1, &nd, &derr) != WK_OK)
            WK_LOG(WK_LOG_WARN, "archive.old_archive_kept",
                   KV_STR("job_id", r->job->id), KV_STR("archive_key", k),
                   KV_STR("msg", derr.msg));
        else
            WK_LOG(WK_LOG_INFO, "archive.old_archive_deleted",
                   KV_STR("job_id", r->job->id), KV_STR("archive_key", k));
    }
    return rc;
}
