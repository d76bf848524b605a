#include "jobs/job_archive.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/wk_fail.h"
#include "common/wk_log.h"
#include "common/wk_parse.h"
#include "common/wk_path.h"
#include "jobs/job_int.h"
#include "jobs/manifest.h"
#include "jobs/progress.h"
#include "zip/zipcd.h"
#include "zip/zsniff.h"
#include "zip/zipr.h"
#include "zip/zipw.h"
#include "storage/seal.h"
#include "storage/store.h"
#include "storage/store_hash.h"

#define ARCH_MAX_FILES      (10u * 1000u * 1000u)
#define ARCH_KEEP_BUF_BYTES (256u * 1024u) /* larger slot buffers are freed */
#define ARCH_ETAG_MAX       1024u          /* longer change tags are refused */
#define ARCH_PREFIX_MAX     1024u          /* longest source key prefix */
#define ARCH_CAS_PREFIX     "space-v1/files/static/sha256/"
/* Originals are deleted this many at a time (one DeleteObjects), each
 * batch after an ownership check (job_ctx.fence). */
#define ARCH_DELETE_BATCH 1000u

struct arch_obj {
    char *key;        /* owned; full store key, then the etag in the same
                         allocation */
    const char *etag; /* borrowed from key's allocation */
    uint64_t size;
    int64_t mtime;
    int rank; /* restore_rank() of the entry name */
};

struct arch_list {
    struct arch_obj *v; /* owned; sorted by obj_cmp once loaded */
    size_t n, cap;
    uint64_t total_bytes;
    int64_t oldest;
    const char *prefix; /* borrowed: the listed prefix (the run's) */
    size_t skip;        /* its length: the part of a key that is no name */
    bool tolerant;      /* what is left after the delete: a key outside the
                           prefix is skipped (counted in foreign), a name
                           the policy refuses is kept like any other */
    size_t foreign;     /* keys skipped by tolerant */
};

/* How a later listing differs from an earlier one. */
struct arch_diff {
    size_t added, changed, removed;
    const char *first; /* borrowed: one differing key, for the log */
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
    struct store *src;                /* borrowed: ctx->store, or a source */
    char prefix[ARCH_PREFIX_MAX + 1]; /* "active/<id>/", or the source's */
    size_t prefix_len;
    struct store_sha256 *cas; /* owned; CAS blobs verified when set */
    bool cas_on;              /* the current entry is a CAS blob */
    char cas_want[65];        /* its name's hash */
    char archive_key[256];
    char mf_key[JOB_SPACE_ID_MAX + 32];
    char mf_etag[80];        /* the manifest as read or last written ("" =
                                none): fencing */
    uint64_t mf_gen;         /* and its generation */
    char resume_id[256];     /* a dead run's upload to continue, or "" */
    struct zsniff_desc desc; /* the stored entry being streamed, when */
    bool desc_on;            /* ...a big one is stored (see zsniff.h) */
    bool hazard;             /* this attempt stored what it must not */
    char **forced;           /* owned: keys to deflate, not store */
    size_t nforced;
    char listing[65];      /* digest of the current attempt's listing */
    bool marked;           /* this run wrote it "archiving" */
    struct arch_list list; /* what the current attempt archives */
    struct arch_list next; /* the listing after its upload */
    bool have_next;
    unsigned attempt; /* 1-based */
    char sha[65];     /* of the verified archive */
    uint64_t zip_size;
    struct seal_info enc; /* how the verified archive is sealed */
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

/* Restore priority of an entry name (the key without "active/<id>/"):
 * what makes a space usable first (PROTOCOL.md), so that unarchive can
 * stream in archive order. */
static int restore_rank(const char *rel)
{
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

static enum wk_code list_cb(const struct store_entry *e, void *ud,
                            struct wk_err *err)
{
    struct arch_list *l = ud;
    struct arch_obj *o;
    size_t klen, elen;
    char *p;

    if (e->is_prefix)
        return WK_OK;
    klen = strlen(e->key);
    if (klen < l->skip || memcmp(e->key, l->prefix, l->skip) != 0) {
        /* a server that ignores the prefix: such a key is never archived
         * under a made-up name, nor deleted */
        char shown[160];
        if (l->tolerant) {
            l->foreign++;
            return WK_OK;
        }
        wk_path_shown(shown, sizeof(shown), e->key, klen);
        return wk_err_set(err, WK_E_CORRUPT,
                          "listing of '%s' returned key '%s', which is "
                          "outside it: the store ignores the prefix",
                          l->prefix, shown);
    }
    if (!l->tolerant) {
        /* the one name policy, the restore's own: refused before anything
         * is written or deleted */
        char why[64], shown[160];
        if (!zipr_name_valid(e->key + l->skip, why, sizeof(why))) {
            wk_path_shown(shown, sizeof(shown), e->key, klen);
            return wk_err_set(err, WK_E_INVAL,
                              "key '%s' cannot be archived: %s (rename or "
                              "delete it)",
                              shown, why);
        }
    }
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 256;
        void *v;
        if (l->n >= ARCH_MAX_FILES)
            return wk_err_set(err, WK_E_LIMIT, "space has more than %u objects",
                              ARCH_MAX_FILES);
        v = realloc(l->v, ncap * sizeof(*l->v));
        if (!v)
            return wk_err_set(err, WK_E_NOMEM, "out of memory listing");
        l->v = v;
        l->cap = ncap;
    }
    elen = e->etag ? strlen(e->etag) : 0;
    if (elen > ARCH_ETAG_MAX)
        return wk_err_set(err, WK_E_LIMIT, "object '%s': etag of %zu bytes",
                          e->key, elen);
    p = malloc(klen + elen + 2);
    if (!p)
        return wk_err_set(err, WK_E_NOMEM, "out of memory listing");
    memcpy(p, e->key, klen + 1);
    if (elen)
        memcpy(p + klen + 1, e->etag, elen);
    p[klen + 1 + elen] = '\0';
    o = &l->v[l->n];
    o->key = p;
    o->etag = p + klen + 1;
    o->size = e->size;
    o->mtime = e->mtime;
    o->rank = restore_rank(p + l->skip);
    l->n++;
    l->total_bytes += e->size;
    if (l->n == 1 || e->mtime < l->oldest)
        l->oldest = e->mtime;
    return WK_OK;
}

static int obj_cmp(const void *a, const void *b)
{
    const struct arch_obj *x = a, *y = b;
    if (x->rank != y->rank)
        return x->rank < y->rank ? -1 : 1;
    return strcmp(x->key, y->key);
}

/* A listing of active/<spaceId>/ (or the source) in archive order
 * (obj_cmp); tolerant: see struct arch_list. Unless tolerant, every key
 * is under the prefix, its name passes the name policy, and no key is
 * listed twice (a buggy listing would make an archive the restore
 * refuses), else the listing fails naming the key. */
static enum wk_code list_load_as(struct arch_run *r, struct arch_list *l,
                                 bool tolerant, struct wk_err *err)
{
    enum wk_code rc;

    list_release(l);
    l->prefix = r->prefix;
    l->skip = r->prefix_len;
    l->tolerant = tolerant;
    rc = store_list(r->src, r->prefix, NULL, list_cb, l, err);
    if (rc == WK_OK && l->n > 1)
        qsort(l->v, l->n, sizeof(*l->v), obj_cmp);
    for (size_t i = 1; rc == WK_OK && !tolerant && i < l->n; i++)
        if (strcmp(l->v[i - 1].key, l->v[i].key) == 0) {
            char shown[160];
            wk_path_shown(shown, sizeof(shown), l->v[i].key,
                          strlen(l->v[i].key));
            rc = wk_err_set(err, WK_E_CORRUPT,
                            "listing of '%s' returned key '%s' twice",
                            r->prefix, shown);
        }
    if (rc == WK_OK && l->foreign)
        WK_LOG(WK_LOG_WARN, "archive.foreign_keys_skipped",
               KV_STR("job_id", r->job->id), KV_STR("prefix", r->prefix),
               KV_INT("count", l->foreign));
    return rc;
}

static enum wk_code list_load(struct arch_run *r, struct arch_list *l,
                              struct wk_err *err)
{
    return list_load_as(r, l, false, err);
}

/* The same object version: a write changes the ETag (S3: the content's
 * MD5 or the multipart tag; fs: size and mtime in ns), and the size is
 * compared too because that is what the reads were checked against. */
static bool obj_same(const struct arch_obj *a, const struct arch_obj *b)
{
    return a->size == b->size && strcmp(a->etag, b->etag) == 0;
}

/* Both listings in archive order; true when they hold the same keys with
 * the same versions. */
static bool list_diff(const struct arch_list *was, const struct arch_list *now,
                      struct arch_diff *d)
{
    size_t i = 0, j = 0;

    memset(d, 0, sizeof(*d));
    while (i < was->n || j < now->n) {
        int c;
        if (i == was->n)
            c = 1;
        else if (j == now->n)
            c = -1;
        else
            c = obj_cmp(&was->v[i], &now->v[j]);
        if (c < 0) {
            d->removed++;
            if (!d->first)
                d->first = was->v[i].key;
            i++;
        } else if (c > 0) {
            d->added++;
            if (!d->first)
                d->first = now->v[j].key;
            j++;
        } else {
            if (!obj_same(&was->v[i], &now->v[j])) {
                d->changed++;
                if (!d->first)
                    d->first = now->v[j].key;
            }
            i++;
            j++;
        }
    }
    return d->added + d->changed + d->removed == 0;
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

static bool cancelled(const struct job_ctx *ctx)
{
    return ctx->cancel && *ctx->cancel;
}

/* Does this run still own its job (job_ctx.fence)? Called right before a
 * destructive or state-changing step; WK_E_FENCED: stop, undo nothing. */
static enum wk_code fence(const struct job_ctx *ctx, const char *step,
                          struct wk_err *err)
{
    if (!ctx->fence)
        return WK_OK;
    return ctx->fence(ctx->fence_ud, step, err);
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
    r->mf_etag[0] = '\0';
    {
        /* its version first: the new manifest is written only over this
         * one (a later change makes our write fail, never lose theirs) */
        struct store_stat mst;
        rc = store_head(r->ctx->store, r->mf_key, &mst, &gerr);
        if (rc == WK_OK)
            snprintf(r->mf_etag, sizeof(r->mf_etag), "%s", mst.etag);
        else if (rc != WK_E_NOTFOUND) {
            wk_err_copy(err, &gerr);
            goto out;
        }
        wk_err_clear(&gerr);
    }
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
out:
    wk_buf_release(&b);
    return rc;
}

/* What a listing is (key, ETag, size of every object, in order), as a
 * SHA-256: an upload is resumed only for the very same listing. */
static void list_digest(const struct arch_list *l, char hex[65])
{
    struct store_sha256 *h = NULL;
    struct wk_err e;

    wk_err_clear(&e);
    hex[0] = '\0';
    if (store_sha256_new(&h, &e) != WK_OK)
        return;
    for (size_t i = 0; i < l->n; i++) {
        const struct arch_obj *o = &l->v[i];
        const char *etag = o->etag ? o->etag : "";
        char sz[24];
        int n = snprintf(sz, sizeof(sz), "%llu\n", (unsigned long long)o->size);
        store_sha256_update(h, o->key, strlen(o->key) + 1);
        store_sha256_update(h, etag, strlen(etag) + 1);
        store_sha256_update(h, sz, (size_t)n);
    }
    store_sha256_final_hex(h, hex);
    store_sha256_free(h);
}

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
    list_digest(&r->list, want);
    snprintf(pfx, sizeof(pfx), "archived/%s/workspace-", r->job->space_id);
    if (key && id && listing && id[0] && strlen(id) < sizeof(r->resume_id) &&
        strlen(key) < sizeof(r->archive_key) &&
        strncmp(key, pfx, strlen(pfx)) == 0 && store_key_valid(key) &&
        !key_taken(old, has_old, key) && want[0] &&
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

/* A batch GET failed. Objects that shrank, grew past a range or vanished
 * since the listing (WK_E_CONFLICT, WK_E_NOTFOUND) are a user writing:
 * *changed, and the attempt is redone. Anything else fails the job. */
static enum wk_code read_failed(struct arch_run *r,
                                const struct store_get *reqs, size_t ng,
                                const struct wk_err *batch, bool *changed,
                                struct wk_err *err)
{
    const struct store_get *moved = NULL;

    for (size_t i = 0; i < ng; i++) {
        enum wk_code c = reqs[i].err.code;
        if (c == WK_OK)
            continue;
        if (c != WK_E_CONFLICT && c != WK_E_NOTFOUND)
            return wk_err_copy(err, &reqs[i].err);
        if (!moved)
            moved = &reqs[i];
    }
    if (!moved) /* the batch itself failed (memory, setup) */
        return batch->code != WK_OK
                   ? wk_err_copy(err, batch)
                   : wk_err_set(err, WK_E_INTERNAL, "batch read failed");
    WK_LOG(WK_LOG_INFO, "archive.object_changed", KV_STR("job_id", r->job->id),
           KV_STR("key", moved->key), KV_INT("attempt", r->attempt),
           KV_STR("msg", moved->err.msg));
    *changed = true;
    return WK_OK;
}

/* One batch of ranges, read ahead of the ZIP writer (write_archive). */
struct arch_batch {
    struct store_get *reqs;     /* owned, slots */
    struct wk_buf *bufs;        /* owned, slots */
    struct arch_range *ranges;  /* owned, slots */
    size_t nr, ng;              /* ranges, and GETs among them */
    struct store_pending *pend; /* in flight, or NULL */
    enum wk_code rc;            /* of the reads (once waited for) */
    struct wk_err gerr;         /* and their error */
};

static enum wk_code batch_init(struct arch_batch *bt, size_t slots,
                               uint64_t chunk, struct wk_err *err)
{
    memset(bt, 0, sizeof(*bt));
    bt->reqs = calloc(slots, sizeof(*bt->reqs));
    bt->bufs = calloc(slots, sizeof(*bt->bufs));
    bt->ranges = calloc(slots, sizeof(*bt->ranges));
    if (!bt->reqs || !bt->bufs || !bt->ranges)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    for (size_t i = 0; i < slots; i++)
        wk_buf_init(&bt->bufs[i], chunk);
    return WK_OK;
}

/* Wait for what is in flight (its outcome goes to bt->rc, bt->gerr). */
static void batch_wait(struct arch_run *r, struct arch_batch *bt)
{
    if (bt->pend) {
        bt->rc = store_get_finish(r->src, bt->pend, &bt->gerr);
        bt->pend = NULL;
    }
}

static void batch_release(struct arch_run *r, struct arch_batch *bt,
                          size_t slots)
{
    /* still in flight only when the archive stopped early: stop it */
    store_get_abandon(r->src, bt->pend);
    bt->pend = NULL;
    if (bt->bufs)
        for (size_t i = 0; i < slots; i++)
            wk_buf_release(&bt->bufs[i]);
    free(bt->bufs);
    free(bt->reqs);
    free(bt->ranges);
}

/* Plan the next batch from (*next_obj, *next_off), up to `slots` ranges
 * and `bytes` of data, and start reading it. */
static void batch_start(struct arch_run *r, struct arch_batch *bt, size_t slots,
                        uint64_t bytes, size_t *next_obj, uint64_t *next_off)
{
    const struct job_config *cfg = r->ctx->cfg;
    uint64_t batch_bytes = 0;

    for (size_t i = 0; i < bt->ng; i++) {
        if (bt->bufs[i].cap > ARCH_KEEP_BUF_BYTES)
            wk_buf_release(&bt->bufs[i]);
        else
            wk_buf_reset(&bt->bufs[i]);
    }
    bt->nr = bt->ng = 0;
    bt->rc = WK_OK;
    wk_err_clear(&bt->gerr);
    while (*next_obj < r->list.n && bt->nr < slots) {
        const struct arch_obj *o = &r->list.v[*next_obj];
        struct arch_range *rg = &bt->ranges[bt->nr];
        uint64_t len = o->size - *next_off;
        if (len > cfg->chunk_bytes)
            len = cfg->chunk_bytes;
        if (len > bytes) /* a big object: ranges of one batch's share */
            len = bytes;
        if (bt->nr > 0 && batch_bytes + len > bytes)
            break;
        rg->obj = *next_obj;
        rg->off = *next_off;
        rg->len = len;
        if (len > 0) {
            struct store_get *g = &bt->reqs[bt->ng];
            rg->get = bt->ng;
            memset(g, 0, sizeof(*g));
            g->key = o->key;
            g->offset = *next_off;
            g->len = len;
            g->out = &bt->bufs[bt->ng];
            /* the listed version or nothing: a rewrite in between is a
             * concurrent write, never a mix of two versions */
            g->if_match = o->etag;
            /* room for exactly this (no doubling while it arrives); on
             * failure the read fails and says so */
            (void)wk_buf_reserve(g->out, (size_t)len, &g->err);
            bt->ng++;
        }
        bt->nr++;
        batch_bytes += len;
        *next_off += len;
        if (*next_off >= o->size) {
            (*next_obj)++;
            *next_off = 0;
        }
    }
    if (bt->ng > 0)
        bt->rc =
            store_get_start(r->src, bt->reqs, bt->ng, &bt->pend, &bt->gerr);
}

static bool is_forced(const struct arch_run *r, const char *key)
{
    for (size_t i = 0; i < r->nforced; i++)
        if (strcmp(r->forced[i], key) == 0)
            return true;
    return false;
}

/* A big stored entry holds what a streaming reader would take for its
 * end: this archive is dropped and made again with the object deflated. */
static enum wk_code store_refused(struct arch_run *r, const char *key,
                                  bool *changed, struct wk_err *err)
{
    char **v = realloc(r->forced, (r->nforced + 1) * sizeof(*v));

    if (!v)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    r->forced = v;
    r->forced[r->nforced] = strdup(key);
    if (!r->forced[r->nforced])
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    r->nforced++;
    r->hazard = true;
    r->desc_on = false;
    *changed = true;
    WK_LOG(WK_LOG_INFO, "archive.store_refused", KV_STR("job_id", r->job->id),
           KV_STR("key", key),
           KV_STR("reason", "holds a data descriptor signature with the "
                            "CRC before it"));
    return WK_OK;
}

static void forced_release(struct arch_run *r)
{
    for (size_t i = 0; i < r->nforced; i++)
        free(r->forced[i]);
    free(r->forced);
    r->forced = NULL;
    r->nforced = 0;
}

/* Write a read batch into zw, in key order. */
static enum wk_code batch_commit(struct arch_run *r, struct zipw *zw,
                                 struct arch_batch *bt, bool *changed,
                                 struct wk_err *err)
{
    enum wk_code rc = WK_OK;

    for (size_t i = 0; i < bt->nr; i++) {
        const struct arch_range *rg = &bt->ranges[i];
        const struct arch_obj *o = &r->list.v[rg->obj];
        const struct wk_buf *b = rg->len ? &bt->bufs[rg->get] : NULL;

        if (b && b->len != rg->len) {
            /* The stores check this already; an exact length is what
             * stands in for If-Match on every read. */
            WK_LOG(WK_LOG_INFO, "archive.object_changed",
                   KV_STR("job_id", r->job->id), KV_STR("key", o->key),
                   KV_INT("attempt", r->attempt), KV_INT("expected", rg->len),
                   KV_INT("got", b->len));
            *changed = true;
            return WK_OK;
        }
        if (rg->off == 0) {
            /* Content that is compressed already is stored, not
             * deflated again: only when the whole object is at hand
             * and holds no data descriptor signature, which would
             * cut the entry short for a streaming reader (zsniff.h);
             * a bigger object is deflated. */
            int store = 0;
            r->desc_on = false;
            if (b && zsniff_compressed(b->data, b->len, NULL) &&
                !is_forced(r, o->key)) {
                if (rg->len == o->size) {
                    store = zsniff_store_safe(b->data, b->len);
                } else {
                    /* judged while it streams; a hazard redoes the
                     * archive with this object deflated */
                    store = 1;
                    r->desc_on = true;
                    zsniff_desc_init(&r->desc);
                }
            }
            rc = zipw_entry_begin(zw, o->key + r->prefix_len, o->size,
                                  (time_t)o->mtime, store, err);
            if (rc != WK_OK)
                return rc;
            r->cas_on =
                r->cas && job_cas_name(o->key + r->prefix_len, r->cas_want);
            if (r->cas_on)
                store_sha256_reset(r->cas);
        }
        if (b && r->desc_on && !zsniff_desc_feed(&r->desc, b->data, b->len))
            return store_refused(r, o->key, changed, err);
        if (b) {
            rc = zipw_entry_write(zw, b->data, b->len, err);
            if (rc != WK_OK)
                return rc;
            if (r->cas_on)
                store_sha256_update(r->cas, b->data, b->len);
            r->prog.st.bytes_done += b->len;
        }
        if (rg->off + rg->len >= o->size) {
            if (r->desc_on && !zsniff_desc_end(&r->desc))
                return store_refused(r, o->key, changed, err);
            r->desc_on = false;
            if (r->cas_on) {
                char got[65];
                store_sha256_final_hex(r->cas, got);
                if (strcmp(got, r->cas_want) != 0) {
                    rc = wk_err_set(err, WK_E_CORRUPT,
                                    "source file '%s': content hashes "
                                    "to %s, not its name",
                                    o->key + r->prefix_len, got);
                    return rc;
                }
            }
            rc = zipw_entry_end(zw, err);
            if (rc != WK_OK)
                return rc;
            r->prog.st.files_done++;
        }
        /* keep the next batch's reads moving while this one is written */
        store_pump(r->src);
    }
    return WK_OK;
}

/* Batches read ahead of the ZIP writer: while the oldest is compressed and
 * uploaded, the others are being read, so the store always has requests
 * to work on (no stall at a batch's slowest object). */
#define ARCH_BATCHES 4

/* Stream r->list into zw. *changed (with WK_OK) when an object no longer
 * matches its listing: the archive is incomplete and must not be used.
 * The fetch window is split into ARCH_BATCHES batches, committed in key
 * order; each is read again for what follows as soon as it is written. */
static enum wk_code write_archive(struct arch_run *r, struct zipw *zw,
                                  bool *changed, struct wk_err *err)
{
    const struct job_config *cfg = r->ctx->cfg;
    size_t slots = cfg->window_objects / ARCH_BATCHES;
    uint64_t bytes = cfg->window_bytes / ARCH_BATCHES;
    struct arch_batch bt[ARCH_BATCHES];
    size_t next_obj = 0, head = 0;
    uint64_t next_off = 0;
    enum wk_code rc = WK_OK;

    *changed = false;
    if (slots < 1)
        slots = 1;
    if (bytes < 1)
        bytes = 1;
    memset(bt, 0, sizeof(bt));
    for (size_t i = 0; i < ARCH_BATCHES && rc == WK_OK; i++)
        rc = batch_init(&bt[i], slots, cfg->chunk_bytes, err);
    if (rc != WK_OK)
        goto out;
    for (size_t i = 0; i < ARCH_BATCHES; i++)
        batch_start(r, &bt[i], slots, bytes, &next_obj, &next_off);
    while (bt[head].nr > 0) {
        struct arch_batch *cur = &bt[head];
        if (cancelled(r->ctx)) {
            rc = wk_err_set(err, WK_E_CANCELLED, "archive cancelled");
            goto out;
        }
        batch_wait(r, cur);
        if (cur->rc != WK_OK) {
            /* own error record: a failure that only means "changed" must
             * not become the job's error */
            rc = read_failed(r, cur->reqs, cur->ng, &cur->gerr, changed, err);
            goto out;
        }
        rc = batch_commit(r, zw, cur, changed, err);
        if (rc != WK_OK || *changed)
            goto out;
        batch_start(r, cur, slots, bytes, &next_obj, &next_off);
        prog_update(&r->prog, false);
        head = (head + 1) % ARCH_BATCHES;
    }
out:
    for (size_t i = 0; i < ARCH_BATCHES; i++)
        batch_release(r, &bt[i], slots);
    return rc;
}

/* Delete the just-uploaded archive: no manifest names it. */
static enum wk_code drop_archive(struct arch_run *r, struct wk_err *err)
{
    const char *k = r->archive_key;
    size_t nd = 0;
    enum wk_code rc;

    /* a successor may have adopted this very key (a resumed upload) */
    rc = fence(r->ctx, "archive.drop", err);
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
    const struct arch_obj *o;
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
    struct arch_diff d;
    bool committed = false;
    uint64_t est;
    enum wk_code rc;

    *changed = false;
    r->have_next = false;
    memset(&r->enc, 0, sizeof(r->enc));
    memset(&dk, 0, sizeof(dk));
    memset(&zopts, 0, sizeof(zopts));
    list_release(&r->next);
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
    list_digest(&r->list, r->listing);
    wopts.on_upload = upload_started;
    wopts.on_upload_ud = r;
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
    rc = write_archive(r, zw, changed, err);
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
        if (fence(r->ctx, "archive.abort_extra", &aerr) != WK_OK)
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
    rc = list_load(r, &r->next, err);
    if (rc != WK_OK)
        goto out;
    r->have_next = true;
    if (!list_diff(&r->list, &r->next, &d)) {
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
        enum wk_code drc = drop_archive(r, &derr);
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
    store_writer_free(w); /* aborts the upload unless committed */
    return rc;
}

/* store_delete_if in batches of ARCH_DELETE_BATCH, each right after an
 * ownership check: a run that lost its job stops between two batches
 * (WK_E_FENCED) and deletes nothing more. *ndeleted counts all batches. */
static enum wk_code delete_batched(struct arch_run *r, const char **keys,
                                   const char **etags, size_t n,
                                   size_t *ndeleted, bool *kept,
                                   struct wk_err *err)
{
    enum wk_code rc = WK_OK;

    *ndeleted = 0;
    for (size_t off = 0; off < n && rc == WK_OK; off += ARCH_DELETE_BATCH) {
        size_t cnt = n - off < ARCH_DELETE_BATCH ? n - off : ARCH_DELETE_BATCH;
        size_t nd = 0;
        rc = fence(r->ctx, "archive.delete", err);
        if (rc != WK_OK)
            break;
        rc = store_delete_if(r->ctx->store, keys + off, etags + off, cnt, &nd,
                             kept + off, err);
        *ndeleted += nd;
        if (rc == WK_OK)
            wk_fail_point("archive.delete_batch");
    }
    return rc;
}

/* After the manifest: delete the objects of the listing the archive was
 * checked against (r->list, which the listing after the upload matched),
 * each only at its archived version, then list what is left: the objects
 * added since, or rewritten and kept by a conditional delete (*kept_newer).
 * Listing after the delete rather than before it costs one listing of what
 * remains (usually nothing) instead of one of the whole space. */
static enum wk_code delete_archived(struct arch_run *r, size_t *kept_newer,
                                    struct wk_err *err)
{
    struct arch_list now;
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
        rc = delete_batched(r, keys, etags, nkeys, &ndeleted, changed, err);
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
    rc = list_load_as(r, &now, true, err);
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
    list_release(&now);
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

static enum wk_code record_write(struct arch_run *r, struct wk_err *err)
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
        /* what the delete it drives checks first (record_finish) */
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
        const struct arch_obj *ob = &r->list.v[i];
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
    rc = fence(r->ctx, "archive.record", err);
    if (rc == WK_OK)
        rc = store_put(r->ctx->store, key, text, strlen(text), err);
out:
    free(text);
    json_decref(o);
    return rc;
}

/* WK_E_FENCED (into err) when this run no longer owns its job; any other
 * failure is only logged (the record is then left for the next run). */
static enum wk_code record_remove(struct arch_run *r, struct wk_err *err)
{
    char key[JOB_SPACE_ID_MAX + 48];
    const char *k = key;
    size_t nd = 0;
    struct wk_err derr;
    enum wk_code rc = fence(r->ctx, "archive.record_remove", err);

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
static enum wk_code record_finish(struct arch_run *r, const struct mf *old,
                                  size_t *done, size_t *left,
                                  struct wk_err *err)
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
        const struct arch_obj *ob = &r->list.v[i];
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
        rc = delete_batched(r, del, etags, ndel, &nd, changed, err);
    if (rc != WK_OK)
        goto out;
    *done = nd;
    *left = r->list.n - nd;
    WK_LOG(WK_LOG_INFO, "archive.delete_finished", KV_STR("job_id", r->job->id),
           KV_STR("space_id", r->job->space_id), KV_INT("deleted", nd),
           KV_INT("kept", *left));
    rc = record_remove(r, err);
out:
    free(del);
    free(etags);
    free(changed);
    json_decref(root);
    wk_buf_release(&b);
    return rc;
}

static void prog_done(struct prog *p)
{
    p->st.phase = "done";
    p->st.bytes_done = p->st.bytes_total;
    p->st.files_done = p->st.files_total;
    p->st.progress = 100; /* also when there was nothing to count */
    prog_update(p, true);
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
        if (!key_taken(old, has_old, r->archive_key))
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

/* Archive attempts until one matches the listing after its upload, at
 * most max_attempts; *gave_up (with WK_OK) when the space kept changing.
 * r->list must hold the first listing. */
static enum wk_code archive_until_stable(struct arch_run *r,
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
            list_release(&r->next);
            r->have_next = false;
            return WK_OK;
        }
        if (r->hazard) {
            /* not a try: the object is deflated next time (a redo per
             * such object, at most) */
            r->hazard = false;
            r->attempt--;
        } else if (r->attempt >= max_attempts) {
            *gave_up = true;
            return WK_OK;
        }
        /* Redo from the newest listing there is. */
        if (r->have_next) {
            list_release(&r->list);
            r->list = r->next;
            memset(&r->next, 0, sizeof(r->next));
            r->have_next = false;
        } else {
            r->prog.st.phase = "listing";
            prog_update(&r->prog, true);
            rc = list_load(r, &r->list, err);
            if (rc != WK_OK)
                return rc;
        }
        if (r->list.n == 0)
            return wk_err_set(err, WK_E_NOTFOUND,
                              "space '%s' has no objects under '%s' any more",
                              r->job->space_id, r->prefix);
    }
}

/* The manifest naming r's verified archive, superseding old (whose
 * archives become history); archives beyond the kept number go to drop
 * (room for MF_HISTORY_MAX + 1). */
static void run_init(struct arch_run *r, const struct job *job,
                     const struct job_ctx *ctx, struct store *src)
{
    memset(r, 0, sizeof(*r));
    r->job = job;
    r->ctx = ctx;
    r->src = src;
    r->now = ctx->now ? ctx->now() : time(NULL);
    prog_init(&r->prog, ctx->sink);
}

/* The manifest as read (old), or a new one naming no archive, in state st,
 * written over the version this run last read or wrote. */
static enum wk_code write_state(struct arch_run *r, const struct mf *old,
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
    rc = fence(r->ctx, "archive.manifest_state", err);
    if (rc == WK_OK)
        rc = job_mf_put(r->ctx->store, r->mf_key, m, r->mf_etag,
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
static void unmark_archiving(struct arch_run *r, const struct mf *old,
                             bool has_old)
{
    struct wk_err e;

    wk_err_clear(&e);
    if (write_state(r, old, has_old, MF_ACTIVE, &e) != WK_OK)
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
    struct wk_buf b;
    struct wk_err e;
    struct store_stat mst;
    struct mf *cur = calloc(1, sizeof(*cur));

    *landed = false;
    *known = false;
    wk_buf_init(&b, 1u << 20);
    wk_err_clear(&e);
    if (!cur)
        goto out;
    if (store_head(r->ctx->store, r->mf_key, &mst, &e) == WK_E_NOTFOUND) {
        *known = true; /* no manifest at all: ours did not land */
        goto out;
    }
    wk_err_clear(&e);
    if (store_get_all(r->ctx->store, r->mf_key, &b, &e) != WK_OK)
        goto out;
    *known = true; /* one that does not parse is not ours either */
    if (mf_parse(b.data, b.len, cur, &e) != WK_OK)
        goto out;
    *landed = strcmp(cur->archive_key, m->archive_key) == 0 &&
              cur->generation == m->generation && cur->state == m->state;
    if (*landed) {
        /* its version, for a later write (the HEAD may predate the GET:
         * read it again) */
        wk_err_clear(&e);
        if (store_head(r->ctx->store, r->mf_key, &mst, &e) == WK_OK)
            snprintf(r->mf_etag, sizeof(r->mf_etag), "%s", mst.etag);
    }
out:
    WK_LOG(WK_LOG_WARN, "archive.manifest_read_back",
           KV_STR("job_id", r->job->id), KV_STR("key", r->mf_key),
           KV_BOOL("landed", *landed), KV_BOOL("known", *known),
           KV_STR("msg", e.msg));
    wk_buf_release(&b);
    free(cur);
}

/* Write m over the manifest this run read (fencing, see check_manifest).
 * A failure whose outcome is unknown (reply lost, then 503 or a timeout)
 * is settled by reading the manifest back: if it names our archive and
 * generation it was written (WK_OK). *unknown when even that failed: the
 * caller must not drop the archive. */
static enum wk_code manifest_write(struct arch_run *r, const struct mf *m,
                                   bool *unknown, struct wk_err *err)
{
    enum wk_code rc;

    *unknown = false;
    rc = fence(r->ctx, "archive.manifest", err);
    if (rc != WK_OK)
        return rc;
    rc = job_mf_put(r->ctx->store, r->mf_key, m, r->mf_etag, sizeof(r->mf_etag),
                    err);
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

static void manifest_fill(const struct arch_run *r, const struct mf *old,
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
static enum wk_code drop_old_archives(const struct arch_run *r,
                                      const struct mf_archive *drop,
                                      size_t ndrop, struct wk_err *err)
{
    enum wk_code rc = ndrop ? fence(r->ctx, "archive.drop_old", err) : WK_OK;

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
    unsigned max_attempts = ctx->cfg->archive_tries;
    enum wk_code rc;

    run_init(&r, job, ctx, ctx->store);
    m = calloc(1, sizeof(*m));
    old = calloc(1, sizeof(*old));
    drop = calloc(MF_HISTORY_MAX + 1, sizeof(*drop));
    if (max_attempts < 1)
        max_attempts = 1;
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
    pick_archive_key(&r, old, has_old);
    /* archived already: what is left is only counted (tolerant) */
    rc = list_load_as(&r, &r.list, noop, err);
    if (rc != WK_OK)
        goto out;
    if (noop && r.list.n > 0) {
        /* a run that died between the manifest and the delete? */
        size_t done = 0, left = 0;
        rc = record_finish(&r, old, &done, &left, err);
        if (rc != WK_OK)
            goto out;
        if (left == 0) {
            json_t *o = json_object();
            json_object_set_new(o, "noop", json_true());
            json_object_set_new(o, "reason", json_string("already archived"));
            json_object_set_new(o, "archiveKey", json_string(old->archive_key));
            json_object_set_new(o, "completedDelete",
                                json_integer((json_int_t)done));
            rc = job_result_take(result, o, err);
            if (rc == WK_OK)
                prog_done(&r.prog);
            goto out;
        }
        list_release(&r.list);
        rc = list_load_as(&r, &r.list, true, err);
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
        json_t *o = json_object();
        json_object_set_new(o, "noop", json_true());
        json_object_set_new(o, "reason", json_string("already archived"));
        json_object_set_new(o, "archiveKey", json_string(old->archive_key));
        rc = job_result_take(result, o, err);
        if (rc == WK_OK)
            prog_done(&r.prog);
        goto out;
    }
    if (r.list.n == 0) {
        rc = wk_err_set(err, WK_E_NOTFOUND,
                        "space '%s' has no objects under '%s'", job->space_id,
                        r.prefix);
        goto out;
    }

    resume_check(&r, old, has_old);
    rc = r.resume_id[0] ? WK_OK : abort_stale_uploads(&r, err);
    if (rc == WK_OK)
        rc = write_state(&r, old, has_old, MF_ARCHIVING, err); /* the
        objects stay the space until "archived": nothing is deleted before */
    if (rc != WK_OK)
        goto out;
    rc = archive_until_stable(&r, max_attempts, &gave_up, err);
    if (rc != WK_OK)
        goto out;
    if (gave_up) {
        unmark_archiving(&r, old, has_old);
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
            prog_done(&r.prog);
        goto out;
    }
    archived = true;
    /* test failpoint: paused here, a successor may adopt this archive */
    wk_fail_point("archive.uploaded");

    manifest_fill(&r, old, has_old, m, drop, &ndrop);
    rc = record_write(&r, err);
    if (rc == WK_OK)
        rc = manifest_write(&r, m, &mf_unknown, err);
    if (rc != WK_OK)
        goto out;
    manifest_written = true;

    /* Delete right away, while the listing after the upload is fresh: on a
     * server without conditional deletes, a write landing between that
     * listing and the delete is the one a user could lose. */
    r.prog.st.phase = "deleting";
    prog_update(&r.prog, true);
    rc = delete_archived(&r, &kept_newer, err);
    if (rc == WK_OK)
        rc = record_remove(&r, err);

    /* (whatever the delete above did, unless this run lost its job) */
    if (rc != WK_E_FENCED) {
        struct wk_err derr;
        wk_err_clear(&derr);
        if (drop_old_archives(&r, drop, ndrop, &derr) == WK_E_FENCED &&
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
        json_object_set_new(o, "keptNewer",
                            json_integer((json_int_t)kept_newer));
        rc = job_result_take(result, o, err);
    }
    if (rc == WK_OK)
        prog_done(&r.prog);
out:
    /* Fenced: the state is the successor's, nothing is undone. A manifest
     * write of unknown outcome may name the archive: it is kept. */
    if (rc != WK_OK && rc != WK_E_FENCED && archived && !manifest_written &&
        !mf_unknown) {
        /* The space stays active: do not leave an orphan archive behind. */
        struct wk_err derr;
        wk_err_clear(&derr);
        (void)drop_archive(&r, &derr);
    }
    if (rc != WK_OK && rc != WK_E_FENCED && r.marked && !manifest_written &&
        !mf_unknown &&
        rc != WK_E_CONFLICT) /* a conflict: someone else has it now */
        unmark_archiving(&r, old, has_old);
    list_release(&r.list);
    list_release(&r.next);
    forced_release(&r);
    free(m);
    free(old);
    free(drop);
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
    unsigned max_attempts = ctx->cfg->archive_tries;
    enum wk_code rc;

    run_init(&r, job, ctx, src->store);
    memset(out, 0, sizeof(*out));
    m = calloc(1, sizeof(*m));
    old = calloc(1, sizeof(*old));
    drop = calloc(MF_HISTORY_MAX + 1, sizeof(*drop));
    if (max_attempts < 1)
        max_attempts = 1;
    if (!m || !old || !drop) {
        rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
        goto out;
    }
    if (!job_space_id_valid(job->space_id)) {
        rc = wk_err_set(err, WK_E_INVAL, "invalid spaceId");
        goto out;
    }
    if (strlen(src->prefix) > ARCH_PREFIX_MAX) {
        rc = wk_err_set(err, WK_E_INVAL, "source prefix longer than %u bytes",
                        ARCH_PREFIX_MAX);
        goto out;
    }
    snprintf(r.prefix, sizeof(r.prefix), "%s", src->prefix);
    r.prefix_len = strlen(r.prefix);
    mf_key(job->space_id, r.mf_key, sizeof(r.mf_key));
    if (src->verify_cas) {
        rc = store_sha256_new(&r.cas, err);
        if (rc != WK_OK)
            goto out;
    }

    r.prog.st.phase = "listing";
    prog_update(&r.prog, true);
    rc = check_manifest(&r, &noop, &has_old, old, err);
    if (rc != WK_OK)
        goto out;
    pick_archive_key(&r, old, has_old);
    rc = list_load(&r, &r.list, err);
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
        rc = archive_until_stable(&r, max_attempts, &gave_up, err);
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

    manifest_fill(&r, old, has_old, m, drop, &ndrop);
    rc = manifest_write(&r, m, &mf_unknown, err);
    if (rc != WK_OK)
        goto out;
    orphan = false; /* named by the manifest: kept from here on */
    rc = drop_old_archives(&r, drop, ndrop, err);
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
        (void)drop_archive(&r, &derr);
    }
    store_sha256_free(r.cas);
    list_release(&r.list);
    list_release(&r.next);
    forced_release(&r);
    free(m);
    free(old);
    free(drop);
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
