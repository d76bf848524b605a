/*
 * job_migrate: the migrate job's state machine. The source resolved
 * (mig_source.c), the store's state of the space (manifest, migration
 * marker, listing of active/), then to_archived (the archive engine,
 * job_archive_from) or to_active (the copy, mig_copy.c), the overwrite's
 * deletes, and the result.
 */
#include "jobs/job_migrate.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/wk_log.h"
#include "common/wk_parse.h"
#include "jobs/job_archive.h"
#include "jobs/job_int.h"
#include "jobs/manifest.h"
#include "jobs/mig_int.h"
#include "jobs/progress.h"
#include "storage/store.h"
#include "storage/store_hash.h"

#define MIG_MARKER_MAX (64u * 1024u)

/* What a migration marker says (metadata/<id>.migrate.json). */
struct mig_marker {
    bool present;
    bool matches; /* same source, target active */
    bool done;    /* state "done" (else "copying") */
};

static time_t now_of(const struct job_ctx *ctx)
{
    return ctx->now ? ctx->now() : time(NULL);
}

/* ---- the store's state of the space ---- */

/* The manifest, if any (*has false when there is none). */
static enum wk_code read_manifest(struct mig_run *r, bool *has, struct mf *m,
                                  struct wk_err *err)
{
    return job_mf_read(r->ctx->store, r->mf_key, m, has, NULL, err);
}

static enum wk_code read_marker(struct mig_run *r, struct mig_marker *mk,
                                struct wk_err *err)
{
    struct wk_buf b;
    struct wk_err gerr;
    json_t *root = NULL, *src, *tgt, *state;
    enum wk_code rc;

    memset(mk, 0, sizeof(*mk));
    wk_buf_init(&b, MIG_MARKER_MAX);
    wk_err_clear(&gerr);
    rc = store_get_all(r->ctx->store, r->marker_key, &b, &gerr);
    if (rc == WK_E_NOTFOUND) {
        rc = WK_OK;
        goto out;
    }
    if (rc == WK_E_LIMIT) {
        rc = WK_OK; /* not ours: present, matching nothing */
        mk->present = true;
        goto out;
    }
    if (rc != WK_OK) {
        wk_err_copy(err, &gerr);
        goto out;
    }
    mk->present = true;
    root = json_loadb(wk_buf_cstr(&b), b.len, 0, NULL);
    src = json_object_get(root, "source");
    tgt = json_object_get(root, "target");
    state = json_object_get(root, "state");
    mk->matches = json_is_string(src) && json_is_string(tgt) &&
                  strcmp(json_string_value(src), r->job.source) == 0 &&
                  strcmp(json_string_value(tgt), "active") == 0;
    mk->done =
        json_is_string(state) && strcmp(json_string_value(state), "done") == 0;
out:
    json_decref(root);
    wk_buf_release(&b);
    return rc;
}

static enum wk_code write_marker(struct mig_run *r, const char *state,
                                 struct wk_err *err)
{
    char started[40], now[40];
    json_t *o = json_object();
    char *text = NULL;
    enum wk_code rc;

    if (!o)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    wk_fmt_rfc3339(r->started, started, sizeof(started));
    wk_fmt_rfc3339(now_of(r->ctx), now, sizeof(now));
    json_object_set_new(o, "spaceId", json_string(r->job.space_id));
    json_object_set_new(o, "source", json_string(r->job.source));
    json_object_set_new(o, "target", json_string("active"));
    json_object_set_new(o, "state", json_string(state));
    json_object_set_new(o, "startedAt", json_string(started));
    json_object_set_new(o, "updatedAt", json_string(now));
    json_object_set_new(o, "files", json_integer((json_int_t)r->slist.n));
    json_object_set_new(o, "bytes",
                        json_integer((json_int_t)r->slist.total_bytes));
    text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!text)
        rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
    else
        rc = store_put(r->ctx->store, r->marker_key, text, strlen(text), err);
    free(text);
    json_decref(o);
    return rc;
}

static void remove_marker(struct mig_run *r)
{
    const char *k = r->marker_key;
    size_t nd = 0;
    struct wk_err derr;

    wk_err_clear(&derr);
    if (store_delete_many(r->ctx->store, &k, 1, &nd, &derr) != WK_OK)
        WK_LOG(WK_LOG_WARN, "migrate.marker_kept", KV_STR("job_id", r->job.id),
               KV_STR("key", k), KV_STR("msg", derr.msg));
}

/* Overwrite: objects under active/<id>/ that the source does not have. */
static enum wk_code delete_extras(struct mig_run *r, size_t *ndeleted,
                                  struct wk_err *err)
{
    const char **keys = NULL;
    size_t nk = 0;
    enum wk_code rc = WK_OK;

    *ndeleted = 0;
    keys = calloc(r->dlist.n ? r->dlist.n : 1, sizeof(*keys));
    if (!keys)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    for (size_t i = 0; i < r->dlist.n; i++)
        if (!job_list_find(&r->slist, r->dlist.v[i].name))
            keys[nk++] = r->dlist.v[i].key;
    if (nk > 0)
        rc = job_delete_keys(r->ctx, NULL, keys, NULL, nk, ndeleted, NULL, err);
    free(keys);
    return rc;
}

/* Overwrite with target archived: the source replaces what is under
 * active/<id>/ (listed again now). */
static enum wk_code delete_active(struct mig_run *r, size_t *ndeleted,
                                  struct wk_err *err)
{
    struct job_list now;
    const char **keys = NULL;
    enum wk_code rc;

    memset(&now, 0, sizeof(now));
    *ndeleted = 0;
    rc = job_list_load(r->ctx->store, r->prefix, 0, &now, err);
    if (rc != WK_OK || now.n == 0)
        goto out;
    keys = calloc(now.n, sizeof(*keys));
    if (!keys) {
        rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < now.n; i++)
        keys[i] = now.v[i].key;
    rc = job_delete_keys(r->ctx, NULL, keys, NULL, now.n, ndeleted, NULL, err);
out:
    free(keys);
    job_list_release(&now);
    return rc;
}

/* ---- results ---- */

static json_t *result_base(const struct mig_run *r)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "spaceId", json_string(r->job.space_id));
    json_object_set_new(o, "target",
                        json_string(r->job.target == JOB_TARGET_ARCHIVED
                                        ? "archived"
                                        : "active"));
    json_object_set_new(o, "source", json_string(r->job.source));
    return o;
}

/* The result's last fields, then the result itself and the last progress
 * event. */
static enum wk_code result_finish(struct mig_run *r, json_t *o, size_t deleted,
                                  struct wk_buf *result, struct wk_err *err)
{
    enum wk_code rc;

    /* every safe file is migrated: nothing is ignored any more (the field
     * stays for clients that read it) */
    json_object_set_new(o, "ignored", json_integer(0));
    if (r->job.overwrite)
        json_object_set_new(o, "deleted", json_integer((json_int_t)deleted));
    rc = job_result_take(result, o, err);
    if (rc == WK_OK)
        job_prog_done(&r->prog);
    return rc;
}

/* Already in the store and not ours to change: say so, succeed. */
static enum wk_code report_exists(struct mig_run *r, const char *state,
                                  struct wk_buf *result, struct wk_err *err)
{
    json_t *o = json_object();
    enum wk_code rc;

    WK_LOG(WK_LOG_INFO, "migrate.skipped", KV_STR("job_id", r->job.id),
           KV_STR("space_id", r->job.space_id), KV_STR("reason", "exists"),
           KV_STR("state", state), KV_STR("differs", r->differs));
    if (!o)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    json_object_set_new(o, "skipped", json_string("exists"));
    json_object_set_new(o, "state", json_string(state));
    json_object_set_new(o, "spaceId", json_string(r->job.space_id));
    json_object_set_new(o, "target",
                        json_string(r->job.target == JOB_TARGET_ARCHIVED
                                        ? "archived"
                                        : "active"));
    if (r->differs[0])
        json_object_set_new(o, "differs", json_string(r->differs));
    rc = job_result_take(result, o, err);
    if (rc == WK_OK)
        job_prog_done(&r->prog);
    return rc;
}

/* ---- the two targets ---- */

static enum wk_code to_archived(struct mig_run *r, bool has_mf,
                                const struct mf *m, struct wk_buf *result,
                                struct wk_err *err)
{
    struct job_archive_src as;
    struct job_archive_out ao;
    size_t deleted = 0;
    json_t *o;
    enum wk_code rc;

    if (!r->job.overwrite && (has_mf || r->dlist.n > 0))
        return report_exists(r, has_mf ? mf_state_name(m->state) : "active",
                             result, err);
    as.store = r->src;
    as.prefix = "";
    as.verify_cas = true;
    rc = job_archive_from(&r->job, r->ctx, &as, &ao, err);
    if (rc != WK_OK)
        return rc;
    /* from here on the space is the archive */
    remove_marker(r);
    if (r->job.overwrite && r->dlist.n > 0) {
        rc = delete_active(r, &deleted, err);
        if (rc != WK_OK) {
            wk_err_prefix(err,
                          "archive and manifest are written, but deleting "
                          "the objects under '%s' failed",
                          r->prefix);
            return rc;
        }
    }
    WK_LOG(WK_LOG_INFO, "migrate.archived", KV_STR("job_id", r->job.id),
           KV_STR("space_id", r->job.space_id),
           KV_STR("archive_key", ao.archive_key),
           KV_INT("files", ao.file_count), KV_INT("deleted", deleted));
    o = result_base(r);
    if (!o)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    json_object_set_new(o, "files", json_integer((json_int_t)ao.file_count));
    json_object_set_new(o, "bytes",
                        json_integer((json_int_t)ao.uncompressed_size));
    json_object_set_new(o, "skipped", json_integer(0));
    json_object_set_new(o, "archiveKey", json_string(ao.archive_key));
    json_object_set_new(o, "manifestKey", json_string(ao.manifest_key));
    json_object_set_new(o, "checksum", json_string(ao.checksum));
    json_object_set_new(o, "size", json_integer((json_int_t)ao.size));
    return result_finish(r, o, deleted, result, err);
}

static enum wk_code to_active(struct mig_run *r, bool has_mf, struct mf *m,
                              struct wk_buf *result, struct wk_err *err)
{
    struct mig_marker mk;
    size_t deleted = 0, naborted = 0;
    json_t *o;
    enum wk_code rc;

    rc = read_marker(r, &mk, err);
    if (rc != WK_OK)
        return rc;
    if (r->job.overwrite) {
        r->write = true;
    } else if (has_mf && mf_in_archive(m)) {
        return report_exists(r, "archived", result, err);
    } else if (mk.matches && !mk.done && !has_mf) {
        r->write = true; /* resume an interrupted copy */
    } else if (mk.matches && mk.done) {
        r->write = false; /* done before: compare only */
    } else if (has_mf || r->dlist.n > 0) {
        return report_exists(r, "active", result, err);
    } else {
        r->write = true;
    }

    rc = job_list_load(r->src, "", JOB_LIST_STRICT, &r->slist, err);
    if (rc != WK_OK)
        return rc;
    if (r->write) {
        /* uploads left open by a run that died */
        rc = store_abort_pending(r->ctx->store, r->prefix, &naborted, err);
        if (rc == WK_OK)
            rc = write_marker(r, "copying", err);
        if (rc != WK_OK)
            return rc;
    }
    r->prog.st.phase = r->write ? "copying" : "comparing";
    r->prog.st.bytes_total = r->slist.total_bytes;
    r->prog.st.files_total = r->slist.n;
    prog_update(&r->prog, true);
    WK_LOG(WK_LOG_INFO, "migrate.started", KV_STR("job_id", r->job.id),
           KV_STR("space_id", r->job.space_id), KV_STR("target", "active"),
           KV_INT("files", r->slist.n), KV_INT("bytes", r->slist.total_bytes),
           KV_INT("present", r->dlist.n), KV_BOOL("write", r->write),
           KV_INT("foreign", r->slist.foreign));
    rc = mig_alloc_slots(r, err);
    if (rc == WK_OK)
        rc = store_sha256_new(&r->cas, err);
    if (rc == WK_OK)
        rc = mig_copy_all(r, err);
    if (rc != WK_OK)
        return rc;
    if (r->differs[0])
        return report_exists(r, "active", result, err);

    if (r->write) {
        r->prog.st.phase = "finishing";
        prog_update(&r->prog, true);
        if (r->job.overwrite) {
            rc = delete_extras(r, &deleted, err);
            if (rc == WK_OK && has_mf && m->state != MF_ACTIVE) {
                /* the source is the space now; its archive becomes
                 * history at the next archive */
                struct wk_buf mb;
                wk_buf_init(&mb, 1u << 20);
                m->state = MF_ACTIVE;
                m->restored_at = now_of(r->ctx);
                rc = mf_to_json(m, &mb, err);
                if (rc == WK_OK)
                    rc = store_put(r->ctx->store, r->mf_key, mb.data, mb.len,
                                   err);
                wk_buf_release(&mb);
            }
            if (rc != WK_OK)
                return rc;
        }
        rc = write_marker(r, "done", err);
        if (rc != WK_OK)
            return rc;
    }
    WK_LOG(WK_LOG_INFO, "migrate.copied", KV_STR("job_id", r->job.id),
           KV_STR("space_id", r->job.space_id), KV_INT("files", r->copied),
           KV_INT("bytes", r->copied_bytes), KV_INT("skipped", r->skipped),
           KV_INT("deleted", deleted));
    o = result_base(r);
    if (!o)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    json_object_set_new(o, "files", json_integer((json_int_t)r->copied));
    json_object_set_new(o, "bytes", json_integer((json_int_t)r->copied_bytes));
    json_object_set_new(o, "skipped", json_integer((json_int_t)r->skipped));
    json_object_set_new(o, "totalFiles", json_integer((json_int_t)r->slist.n));
    json_object_set_new(o, "totalBytes",
                        json_integer((json_int_t)r->slist.total_bytes));
    return result_finish(r, o, deleted, result, err);
}

/* ---- entry points ---- */

enum wk_code job_migrate_from(const struct job *job, const struct job_ctx *ctx,
                              struct store *src, struct wk_buf *result,
                              struct wk_err *err)
{
    struct mig_run *r = NULL;
    struct mf *m = NULL;
    char id[JOB_SPACE_ID_MAX + 1];
    bool has_mf = false;
    enum wk_code rc;

    r = calloc(1, sizeof(*r));
    m = calloc(1, sizeof(*m));
    if (!r || !m) {
        rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
        goto out;
    }
    r->job = *job;
    r->ctx = ctx;
    r->src = src;
    r->label = job->source[0] ? job->source : "(source)";
    r->started = now_of(ctx);
    prog_init(&r->prog, ctx->sink);
    r->prog.st.phase = "listing";
    prog_update(&r->prog, true);

    if (job->type != JOB_MIGRATE) {
        rc = wk_err_set(err, WK_E_INTERNAL, "not a migrate job");
        goto out;
    }
    rc = mig_read_space_id(src, "", r->label, id, err);
    if (rc != WK_OK)
        goto out;
    if (!r->job.space_id[0]) {
        snprintf(r->job.space_id, sizeof(r->job.space_id), "%s", id);
    } else if (strcmp(id, r->job.space_id) != 0) {
        rc = wk_err_set(err, WK_E_INVAL,
                        "source '%s' holds space '%s' (space-v1/space.json), "
                        "not the job's spaceId '%s'",
                        r->label, id, r->job.space_id);
        goto out;
    }
    snprintf(r->prefix, sizeof(r->prefix), "active/%s/", r->job.space_id);
    mf_key(r->job.space_id, r->mf_key, sizeof(r->mf_key));
    snprintf(r->marker_key, sizeof(r->marker_key), "metadata/%s.migrate.json",
             r->job.space_id);

    rc = read_manifest(r, &has_mf, m, err);
    if (rc == WK_OK)
        rc = job_list_load(ctx->store, r->prefix, 0, &r->dlist, err);
    if (rc != WK_OK)
        goto out;
    if (r->job.target == JOB_TARGET_ARCHIVED)
        rc = to_archived(r, has_mf, m, result, err);
    else
        rc = to_active(r, has_mf, m, result, err);
out:
    if (rc != WK_OK && r)
        WK_LOG(WK_LOG_INFO, "migrate.failed", KV_STR("job_id", job->id),
               KV_STR("space_id", r->job.space_id), KV_STR("source", r->label),
               KV_STR("msg", err ? err->msg : ""));
    if (r) {
        job_list_release(&r->slist);
        job_list_release(&r->dlist);
        mig_free_slots(r);
        store_sha256_free(r->cas);
    }
    free(r);
    free(m);
    return rc;
}

enum wk_code job_migrate_run(const struct job *job, const struct job_ctx *ctx,
                             struct wk_buf *result, struct wk_err *err)
{
    struct store *src = NULL;
    enum wk_code rc;

    if (ctx->store_url && mig_source_in_store(job->source, ctx->store_url))
        return wk_err_set(err, WK_E_INVAL,
                          "source '%s' is inside this store's active/, "
                          "archived/ or metadata/: migrate from another "
                          "place",
                          job->source);
    rc = mig_open_source(job->source, ctx->store_opts, &src, err);
    if (rc == WK_OK)
        rc = job_migrate_from(job, ctx, src, result, err);
    if (src && ctx->source_requests)
        store_requests(src, ctx->source_requests);
    store_free(src);
    return rc;
}
