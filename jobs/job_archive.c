#include "jobs/job_archive.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/wk_log.h"
#include "common/wk_parse.h"
#include "jobs/manifest.h"
#include "jobs/progress.h"
#include "jobs/zipw.h"
#include "storage/store.h"

#define ARCH_MAX_FILES      (10u * 1000u * 1000u)
#define ARCH_KEEP_BUF_BYTES (256u * 1024u) /* larger slot buffers are freed */

struct arch_obj {
    char *key; /* owned; full store key */
    uint64_t size;
    int64_t mtime;
};

struct arch_list {
    struct arch_obj *v; /* owned */
    size_t n, cap;
    uint64_t total_bytes;
    int64_t oldest;
};

/* One fetched range of one object, in archive order. */
struct arch_range {
    size_t obj;
    uint64_t off, len;
    size_t get; /* index into the batch's reqs; unused when len == 0 */
};

struct arch_run {
    const struct job *job;
    const struct job_ctx *ctx;
    char prefix[JOB_SPACE_ID_MAX + 16]; /* "active/<id>/" */
    size_t prefix_len;
    char archive_key[256];
    char mf_key[JOB_SPACE_ID_MAX + 32];
    struct arch_list list;
    struct prog prog;
    time_t now;
};

static void list_release(struct arch_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].key);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

static enum wk_code list_cb(const struct store_entry *e, void *ud,
                            struct wk_err *err)
{
    struct arch_list *l = ud;
    struct arch_obj *o;

    if (e->is_prefix)
        return WK_OK;
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 256;
        void *p;
        if (l->n >= ARCH_MAX_FILES)
            return wk_err_set(err, WK_E_LIMIT, "space has more than %u objects",
                              ARCH_MAX_FILES);
        p = realloc(l->v, ncap * sizeof(*l->v));
        if (!p)
            return wk_err_set(err, WK_E_NOMEM, "out of memory listing");
        l->v = p;
        l->cap = ncap;
    }
    o = &l->v[l->n];
    o->key = strdup(e->key);
    if (!o->key)
        return wk_err_set(err, WK_E_NOMEM, "out of memory listing");
    o->size = e->size;
    o->mtime = e->mtime;
    l->n++;
    l->total_bytes += e->size;
    if (l->n == 1 || e->mtime < l->oldest)
        l->oldest = e->mtime;
    return WK_OK;
}

/* Restore priority of a key "active/<id>/<rel>": what makes a space usable
 * first (PROTOCOL.md), so that unarchive can stream in archive order. */
static int restore_rank(const char *key)
{
    const char *rel = strchr(key, '/');
    rel = rel ? strchr(rel + 1, '/') : NULL;
    rel = rel ? rel + 1 : key;
    if (strcmp(rel, "space-v1/space.json") == 0)
        return 0;
    if (strcmp(rel, "sila.md") == 0)
        return 1;
    if (strcmp(rel, "space-v1/secrets") == 0)
        return 2;
    if (strncmp(rel, "space-v1/ops/", 13) == 0)
        return 3;
    return 4;
}

static int obj_cmp(const void *a, const void *b)
{
    const struct arch_obj *x = a, *y = b;
    int rx = restore_rank(x->key), ry = restore_rank(y->key);
    if (rx != ry)
        return rx < ry ? -1 : 1;
    return strcmp(x->key, y->key);
}

static bool key_taken(const struct mf *old, bool has_old, const char *key)
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
            memset(&a, 0, sizeof(a));
            snprintf(a.key, sizeof(a.key), "%s", old->archive_key);
            memcpy(a.checksum, old->checksum, sizeof(a.checksum));
            a.size = old->size;
            a.uncompressed_size = old->uncompressed_size;
            a.file_count = old->file_count;
            a.archived_at = old->archived_at;
        } else {
            a = old->history[i - 1];
        }
        if (n++ < max)
            m->history[m->n_history++] = a;
        else
            drop[(*ndrop)++] = a;
    }
}

static bool cancelled(const struct job_ctx *ctx)
{
    return ctx->cancel && *ctx->cancel;
}

/* Existing manifest: none (*has_old false), archived already (a no-op),
 * or active after a restore (its archives become history). */
static enum wk_code check_manifest(struct arch_run *r, bool *noop,
                                   bool *has_old, struct mf *old,
                                   struct wk_err *err)
{
    struct wk_buf b;
    struct wk_err gerr;
    enum wk_code rc;

    *noop = false;
    *has_old = false;
    wk_buf_init(&b, 1u << 20);
    wk_err_clear(&gerr);
    rc = store_get_all(r->ctx->store, r->mf_key, &b, &gerr);
    if (rc == WK_E_NOTFOUND) {
        rc = WK_OK;
        goto out;
    }
    if (rc != WK_OK) {
        wk_err_copy(err, &gerr);
        goto out;
    }
    rc = mf_parse(b.data, b.len, old, err);
    if (rc != WK_OK) {
        wk_err_prefix(err, "existing manifest '%s'", r->mf_key);
        rc = WK_E_CORRUPT;
        err->code = rc;
        goto out;
    }
    *has_old = true;
    if (old->state == MF_ARCHIVED)
        *noop = true;
out:
    wk_buf_release(&b);
    return rc;
}

static enum wk_code write_archive(struct arch_run *r, struct store_writer *w,
                                  struct zipw *zw, struct wk_err *err)
{
    const struct job_config *cfg = r->ctx->cfg;
    size_t slots = cfg->window_objects ? cfg->window_objects : 1;
    struct store_get *reqs = calloc(slots, sizeof(*reqs));
    struct wk_buf *bufs = calloc(slots, sizeof(*bufs));
    struct arch_range *ranges = calloc(slots, sizeof(*ranges));
    size_t next_obj = 0;
    uint64_t next_off = 0;
    enum wk_code rc = WK_OK;

    (void)w;
    if (!reqs || !bufs || !ranges) {
        rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < slots; i++)
        wk_buf_init(&bufs[i], cfg->chunk_bytes);

    while (next_obj < r->list.n) {
        size_t nr = 0, ng = 0;
        uint64_t batch_bytes = 0;

        if (cancelled(r->ctx)) {
            rc = wk_err_set(err, WK_E_CANCELLED, "archive cancelled");
            goto out;
        }
        /* Next batch: up to `slots` ranges and window_bytes of data. */
        while (next_obj < r->list.n && nr < slots) {
            const struct arch_obj *o = &r->list.v[next_obj];
            uint64_t len = o->size - next_off;
            if (len > cfg->chunk_bytes)
                len = cfg->chunk_bytes;
            if (nr > 0 && batch_bytes + len > cfg->window_bytes)
                break;
            ranges[nr].obj = next_obj;
            ranges[nr].off = next_off;
            ranges[nr].len = len;
            if (len > 0) {
                ranges[nr].get = ng;
                memset(&reqs[ng], 0, sizeof(reqs[ng]));
                reqs[ng].key = o->key;
                reqs[ng].offset = next_off;
                reqs[ng].len = len;
                reqs[ng].out = &bufs[ng];
                ng++;
            }
            nr++;
            batch_bytes += len;
            next_off += len;
            if (next_off >= o->size) {
                next_obj++;
                next_off = 0;
            }
        }
        if (ng > 0) {
            rc = store_get_many(r->ctx->store, reqs, ng, err);
            if (rc != WK_OK)
                goto out;
        }
        /* Commit in key order. */
        for (size_t i = 0; i < nr; i++) {
            const struct arch_range *rg = &ranges[i];
            const struct arch_obj *o = &r->list.v[rg->obj];
            const struct wk_buf *b = rg->len ? &bufs[rg->get] : NULL;

            if (b && b->len != rg->len) {
                rc = wk_err_set(err, WK_E_CONFLICT,
                                "object '%s' changed while archiving "
                                "(expected %llu bytes at offset %llu, got "
                                "%zu)",
                                o->key, (unsigned long long)rg->len,
                                (unsigned long long)rg->off, b->len);
                goto out;
            }
            if (rg->off == 0) {
                /* Every entry is deflated, even content that will not
                 * shrink: a stored entry with a data descriptor can be cut
                 * short by a user-crafted file holding a fake descriptor,
                 * which a streaming reader cannot tell from the real one,
                 * and the space could then never be restored. */
                rc = zipw_entry_begin(zw, o->key + r->prefix_len, o->size,
                                      (time_t)o->mtime, 0, err);
                if (rc != WK_OK)
                    goto out;
            }
            if (b) {
                rc = zipw_entry_write(zw, b->data, b->len, err);
                if (rc != WK_OK)
                    goto out;
                r->prog.st.bytes_done += b->len;
            }
            if (rg->off + rg->len >= o->size) {
                rc = zipw_entry_end(zw, err);
                if (rc != WK_OK)
                    goto out;
                r->prog.st.files_done++;
            }
        }
        for (size_t i = 0; i < ng; i++) {
            if (bufs[i].cap > ARCH_KEEP_BUF_BYTES)
                wk_buf_release(&bufs[i]);
            else
                wk_buf_reset(&bufs[i]);
        }
        prog_update(&r->prog, false);
    }
out:
    if (bufs)
        for (size_t i = 0; i < slots; i++)
            wk_buf_release(&bufs[i]);
    free(bufs);
    free(reqs);
    free(ranges);
    return rc;
}

static enum wk_code delete_archived(struct arch_run *r, struct wk_err *err)
{
    const char **keys = calloc(r->list.n ? r->list.n : 1, sizeof(*keys));
    size_t ndeleted = 0;
    enum wk_code rc;

    if (!keys)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    for (size_t i = 0; i < r->list.n; i++)
        keys[i] = r->list.v[i].key;
    rc = store_delete_many(r->ctx->store, keys, r->list.n, &ndeleted, err);
    if (rc != WK_OK)
        wk_err_prefix(err,
                      "archive and manifest are written, but %zu of %zu "
                      "objects under '%s' could not be deleted",
                      r->list.n - ndeleted, r->list.n, r->prefix);
    free(keys);
    return rc;
}

static enum wk_code set_result(struct wk_buf *result, json_t *o,
                               struct wk_err *err)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    enum wk_code rc;

    json_decref(o);
    if (!s)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    wk_buf_reset(result);
    rc = wk_buf_appends(result, s, err);
    free(s);
    return rc;
}

enum wk_code job_archive_run(const struct job *job, const struct job_ctx *ctx,
                             struct wk_buf *result, struct wk_err *err)
{
    struct arch_run r;
    struct store_writer *w = NULL;
    struct zipw *zw = NULL;
    struct store_writer_opts wopts;
    struct zipw_opts zopts;
    struct store_stat st;
    struct mf *m = NULL, *old = NULL;
    struct mf_archive *drop = NULL; /* archives to delete */
    size_t ndrop = 0;
    bool has_old = false;
    struct wk_buf mbuf;
    char stamp[32], sha[65];
    bool noop = false, committed = false, manifest_written = false;
    uint64_t est;
    enum wk_code rc;

    memset(&r, 0, sizeof(r));
    m = calloc(1, sizeof(*m));
    old = calloc(1, sizeof(*old));
    drop = calloc(MF_HISTORY_MAX + 1, sizeof(*drop));
    wk_buf_init(&mbuf, 1u << 20);
    r.job = job;
    r.ctx = ctx;
    r.now = ctx->now ? ctx->now() : time(NULL);
    prog_init(&r.prog, ctx->sink);
    if (!m || !old || !drop) {
        rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
        goto out;
    }

    if (!job_space_id_valid(job->space_id)) {
        rc = wk_err_set(err, WK_E_INVAL, "invalid spaceId");
        goto out;
    }
    snprintf(r.prefix, sizeof(r.prefix), "active/%s/", job->space_id);
    r.prefix_len = strlen(r.prefix);
    mf_key(job->space_id, r.mf_key, sizeof(r.mf_key));

    r.prog.st.phase = "listing";
    prog_update(&r.prog, true);
    rc = check_manifest(&r, &noop, &has_old, old, err);
    if (rc != WK_OK)
        goto out;
    /* never reuse a kept archive's key (two archives in one second) */
    for (;;) {
        wk_fmt_stamp(r.now, stamp, sizeof(stamp));
        snprintf(r.archive_key, sizeof(r.archive_key),
                 "archived/%s/workspace-%s.zip", job->space_id, stamp);
        if (!key_taken(old, has_old, r.archive_key))
            break;
        r.now++;
    }
    rc = store_list(ctx->store, r.prefix, NULL, list_cb, &r.list, err);
    if (rc != WK_OK)
        goto out;
    if (noop) {
        if (r.list.n > 0) {
            rc =
                wk_err_set(err, WK_E_CONFLICT,
                           "space '%s' is archived ('%s') but %zu objects "
                           "exist under '%s': refusing to archive over it",
                           job->space_id, old->archive_key, r.list.n, r.prefix);
            goto out;
        }
        json_t *o = json_object();
        json_object_set_new(o, "noop", json_true());
        json_object_set_new(o, "reason", json_string("already archived"));
        json_object_set_new(o, "archiveKey", json_string(old->archive_key));
        rc = set_result(result, o, err);
        goto out;
    }
    qsort(r.list.v, r.list.n, sizeof(*r.list.v), obj_cmp);
    if (r.list.n == 0) {
        rc = wk_err_set(err, WK_E_NOTFOUND,
                        "space '%s' has no objects under '%s'", job->space_id,
                        r.prefix);
        goto out;
    }
    r.prog.st.bytes_total = r.list.total_bytes;
    r.prog.st.files_total = r.list.n;
    r.prog.st.phase = "archiving";
    prog_update(&r.prog, true);

    /* Upper bound of the ZIP size: data + per-entry headers (local, data
     * descriptor, central directory, ZIP64 extras, two copies of the name)
     * + a little for the end records. Deflate can grow data slightly. */
    est = r.list.total_bytes + r.list.total_bytes / 100 +
          (uint64_t)r.list.n * (256 + 2 * 1024) + (1u << 20);
    /* An earlier run that died (or lost the server) before it could abort
     * leaves its upload open: clean it up before starting ours. */
    {
        char pfx[JOB_SPACE_ID_MAX + 16];
        size_t naborted = 0;
        snprintf(pfx, sizeof(pfx), "archived/%s/", job->space_id);
        rc = store_abort_pending(ctx->store, pfx, &naborted, err);
        if (rc != WK_OK)
            goto out;
        if (naborted)
            WK_LOG(WK_LOG_INFO, "archive.stale_uploads_aborted",
                   KV_STR("job_id", job->id), KV_INT("count", naborted));
    }
    wopts.part_bytes = job_part_bytes(est, ctx->cfg->part_bytes);
    wopts.parts_in_flight = ctx->cfg->parts_in_flight;
    rc = store_open_write(ctx->store, r.archive_key, &wopts, &w, err);
    if (rc != WK_OK)
        goto out;
    zopts.level = ctx->cfg->deflate_level;
    rc = zipw_new(w, &zopts, &zw, err);
    if (rc != WK_OK)
        goto out;
    WK_LOG(WK_LOG_INFO, "archive.started", KV_STR("job_id", job->id),
           KV_STR("space_id", job->space_id),
           KV_STR("archive_key", r.archive_key), KV_INT("files", r.list.n),
           KV_INT("bytes", r.list.total_bytes),
           KV_INT("part_bytes", wopts.part_bytes));
    rc = write_archive(&r, w, zw, err);
    if (rc == WK_OK)
        rc = zipw_finish(zw, err);
    if (rc == WK_OK) {
        r.prog.st.phase = "uploading";
        prog_update(&r.prog, true);
        rc = store_writer_commit(w, err);
    }
    if (rc != WK_OK)
        goto out;
    committed = true;

    /* Verify what the store holds before anything is deleted. */
    r.prog.st.phase = "verifying";
    prog_update(&r.prog, true);
    rc = store_head(ctx->store, r.archive_key, &st, err);
    if (rc != WK_OK)
        goto out;
    if (st.size != zipw_bytes_out(zw)) {
        rc = wk_err_set(err, WK_E_CORRUPT,
                        "archive '%s' is %llu bytes in the store, %llu "
                        "were written",
                        r.archive_key, (unsigned long long)st.size,
                        (unsigned long long)zipw_bytes_out(zw));
        goto out;
    }
    zipw_sha256_hex(zw, sha);

    snprintf(m->version, sizeof(m->version), "%s", MF_VERSION);
    snprintf(m->space_id, sizeof(m->space_id), "%s", job->space_id);
    m->state = MF_ARCHIVED;
    m->created_at = (time_t)r.list.oldest;
    if (has_old && old->created_at > 0 && old->created_at < m->created_at)
        m->created_at = old->created_at; /* known from an earlier archive */
    m->archived_at = r.now;
    snprintf(m->compression, sizeof(m->compression), "deflate");
    snprintf(m->archive_key, sizeof(m->archive_key), "%s", r.archive_key);
    memcpy(m->checksum, sha, sizeof(m->checksum));
    m->size = st.size;
    m->uncompressed_size = r.list.total_bytes;
    m->file_count = r.list.n;
    build_history(old, has_old, ctx->cfg->keep_archives, m, drop, &ndrop);
    rc = mf_to_json(m, &mbuf, err);
    if (rc == WK_OK)
        rc = store_put(ctx->store, r.mf_key, mbuf.data, mbuf.len, err);
    if (rc != WK_OK)
        goto out;
    manifest_written = true;
    WK_LOG(WK_LOG_INFO, "archive.uploaded", KV_STR("job_id", job->id),
           KV_STR("space_id", job->space_id),
           KV_STR("archive_key", r.archive_key), KV_INT("size", m->size),
           KV_STR("checksum", sha));
    /* Archives beyond the kept number: the manifest no longer names them. */
    for (size_t i = 0; i < ndrop; i++) {
        const char *k = drop[i].key;
        size_t nd = 0;
        struct wk_err derr;
        wk_err_clear(&derr);
        if (store_delete_many(ctx->store, &k, 1, &nd, &derr) != WK_OK)
            WK_LOG(WK_LOG_WARN, "archive.old_archive_kept",
                   KV_STR("job_id", job->id), KV_STR("archive_key", k),
                   KV_STR("msg", derr.msg));
        else
            WK_LOG(WK_LOG_INFO, "archive.old_archive_deleted",
                   KV_STR("job_id", job->id), KV_STR("archive_key", k));
    }

    r.prog.st.phase = "deleting";
    prog_update(&r.prog, true);
    rc = delete_archived(&r, err);
    if (rc != WK_OK)
        goto out;

    {
        json_t *o = json_object();
        json_object_set_new(o, "archiveKey", json_string(r.archive_key));
        json_object_set_new(o, "checksum", json_string(sha));
        json_object_set_new(o, "size", json_integer((json_int_t)m->size));
        json_object_set_new(o, "uncompressedSize",
                            json_integer((json_int_t)m->uncompressed_size));
        json_object_set_new(o, "fileCount",
                            json_integer((json_int_t)m->file_count));
        json_object_set_new(o, "manifestKey", json_string(r.mf_key));
        rc = set_result(result, o, err);
    }
    r.prog.st.phase = "done";
    r.prog.st.bytes_done = r.prog.st.bytes_total;
    r.prog.st.files_done = r.prog.st.files_total;
    prog_update(&r.prog, true);
out:
    if (rc != WK_OK && committed && !manifest_written) {
        /* The space stays active: do not leave an orphan archive behind. */
        const char *k = r.archive_key;
        size_t nd = 0;
        struct wk_err derr;
        wk_err_clear(&derr);
        if (store_delete_many(ctx->store, &k, 1, &nd, &derr) != WK_OK)
            WK_LOG(WK_LOG_WARN, "archive.orphan_kept",
                   KV_STR("job_id", job->id), KV_STR("archive_key", k),
                   KV_STR("msg", derr.msg));
    }
    zipw_free(zw);
    store_writer_free(w); /* aborts the upload unless committed */
    list_release(&r.list);
    wk_buf_release(&mbuf);
    free(m);
    free(old);
    free(drop);
    return rc;
}
