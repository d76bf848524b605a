/*
 * ua_put: how the restore writes under active/<spaceId>/. Small entries
 * buffered for batched If-None-Match PUTs, big ones streamed through a
 * writer; an object present before is kept (read and verified, not
 * written), one a user wrote meanwhile is kept too (keptUserWrites); CAS
 * blobs checked against their names; every key written noted, so that a
 * failed restore deletes them again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/wk_fail.h"
#include "common/wk_log.h"
#include "jobs/job_archive.h"
#include "jobs/job_int.h"
#include "jobs/job_unarchive.h"
#include "jobs/progress.h"
#include "jobs/ua_int.h"
#include "storage/store.h"
#include "storage/store_hash.h"
#include "zip/zipr.h"

/* Bytes of an entry opened between two pumps of the store. */
#define UA_PUMP_BYTES (256u * 1024u)

static bool keys_has(const struct ua_keys *k, const char *key);

static enum wk_code note_written(struct ua_run *r, const char *key,
                                 struct wk_err *err)
{
    if (r->n_written == r->cap_written) {
        size_t ncap = r->cap_written ? r->cap_written * 2 : 256;
        char **p = realloc(r->written, ncap * sizeof(*p));
        if (!p)
            return wk_err_set(err, WK_E_NOMEM, "out of memory");
        r->written = p;
        r->cap_written = ncap;
    }
    r->written[r->n_written] = strdup(key);
    if (!r->written[r->n_written])
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    r->n_written++;
    return WK_OK;
}

/* A conditional PUT found key in place: is it exactly p[0..n) (this
 * restore's own PUT, its reply lost and retried, or the same entry written
 * by an earlier run)? Then *ours: counted as restored. Otherwise a user
 * wrote it after the restore began: kept. */
static enum wk_code exists_as(struct ua_run *r, const char *key, const void *p,
                              size_t n, bool *ours, struct wk_err *err)
{
    struct store_stat sb;
    struct store_get g;
    struct wk_buf cur;
    struct wk_err e;
    enum wk_code rc;

    *ours = false;
    wk_err_clear(&e);
    rc = store_head(r->ctx->store, key, &sb, &e);
    if (rc == WK_E_NOTFOUND)
        return wk_err_set(err, WK_E_CONFLICT,
                          "put '%s': refused as existing, but it is gone "
                          "(deleted meanwhile)",
                          key);
    if (rc != WK_OK)
        return wk_err_copy(err, &e);
    if (sb.size != n)
        return WK_OK;
    if (n == 0) {
        *ours = true;
        return WK_OK;
    }
    wk_buf_init(&cur, n + 1);
    memset(&g, 0, sizeof(g));
    g.key = key;
    g.len = n;
    g.out = &cur;
    g.if_match = sb.etag;
    rc = store_get_many(r->ctx->store, &g, 1, &e);
    if (rc == WK_OK)
        *ours = cur.len == n && memcmp(cur.data, p, n) == 0;
    else if (rc == WK_E_CONFLICT || rc == WK_E_NOTFOUND)
        rc = WK_OK; /* rewritten again meanwhile: a user's */
    else
        wk_err_copy(err, &e);
    wk_buf_release(&cur);
    return rc;
}

static void kept_user(struct ua_run *r, const char *key)
{
    r->n_kept++;
    r->n_user_kept++;
    WK_LOG(WK_LOG_WARN, "unarchive.kept_user_write",
           KV_STR("job_id", r->job->id), KV_STR("key", key));
}

/* The two batches (once): [0] on ua_run.pending, [1] on slots of its own.
 * With one slot (SILA_FETCH_OBJECTS=1) a single batch, never overlapped. */
static enum wk_code batches_setup(struct ua_run *r, struct wk_err *err)
{
    size_t w = r->ctx->cfg->window_objects;

    if (r->batch[0].cap)
        return WK_OK;
    r->batch[0].slots = r->pending;
    r->batch[0].cap = w;
    if (w < 2)
        return WK_OK;
    r->batch[1].slots = calloc(w, sizeof(*r->batch[1].slots));
    if (!r->batch[1].slots)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    for (size_t i = 0; i < w; i++)
        wk_buf_init(&r->batch[1].slots[i].data, r->ctx->cfg->chunk_bytes);
    r->batch[1].cap = w;
    return WK_OK;
}

/* Bytes a batch fills up to: half the window when two take turns. */
static uint64_t batch_bytes(const struct ua_run *r)
{
    uint64_t wb = r->ctx->cfg->window_bytes;
    return r->batch[1].cap ? (wb / 2 ? wb / 2 : 1) : wb;
}

/* Empty a batch's first n slots; a slot keeps its buffer while that stays
 * within its share of the batch's bytes, so that kept buffers never hold
 * more than the window. */
static void batch_reset(const struct ua_run *r, struct ua_batch *b, size_t n)
{
    uint64_t keep = batch_bytes(r) / (b->cap ? b->cap : 1);

    if (keep > UA_KEEP_BUF_BYTES)
        keep = UA_KEEP_BUF_BYTES;
    for (size_t i = 0; i < n; i++) {
        free(b->slots[i].key);
        b->slots[i].key = NULL;
        if (b->slots[i].data.cap > keep)
            wk_buf_release(&b->slots[i].data);
        else
            wk_buf_reset(&b->slots[i].data);
    }
}

/* Wait for a sent batch and take its outcome: every PUT that went through
 * is noted (so a failure cleans it up), a refused one is ours or a
 * user's. */
static enum wk_code batch_take(struct ua_run *r, struct ua_batch *b,
                               struct wk_err *err)
{
    struct store_put *reqs = b->reqs;
    struct wk_err perr;
    enum wk_code rc, first = WK_OK;

    if (!b->sent)
        return WK_OK;
    rc = b->rc;
    perr = b->err;
    if (b->p) {
        struct store_put_batch *p = b->p;
        b->p = NULL; /* (freed by put_finish whatever its outcome) */
        wk_err_clear(&perr);
        rc = store_put_finish(r->ctx->store, p, &perr);
    }
    if (rc != WK_OK) {
        bool any = false;
        for (size_t i = 0; i < b->n; i++)
            any = any || reqs[i].err.code != WK_OK;
        /* the batch itself failed: nothing known written */
        rc = any ? WK_OK : wk_err_copy(err, &perr);
    }
    for (size_t i = 0; rc == WK_OK && i < b->n; i++) {
        enum wk_code nrc = WK_OK;
        bool ours = false;
        if (reqs[i].err.code == WK_E_CONFLICT) {
            nrc = exists_as(r, reqs[i].key, reqs[i].data, reqs[i].len, &ours,
                            err);
            if (nrc == WK_OK && !ours)
                kept_user(r, reqs[i].key);
        } else if (reqs[i].err.code != WK_OK) {
            nrc = wk_err_copy(err, &reqs[i].err);
        }
        if (reqs[i].err.code == WK_OK || ours) {
            enum wk_code wrc = note_written(r, b->slots[i].key, err);
            /* only what this very PUT's reply said (never a later
             * read: that could be a user's write) */
            if (wrc == WK_OK && reqs[i].err.code == WK_OK)
                wrc = rrec_note(&r->rec, b->slots[i].key + strlen(r->prefix),
                                reqs[i].etag, err);
            if (nrc == WK_OK)
                nrc = wrc;
        }
        if (nrc != WK_OK && first == WK_OK)
            first = nrc;
    }
    if (rc == WK_OK)
        rc = first;
    batch_reset(r, b, b->n);
    free(reqs);
    b->reqs = NULL;
    b->n = 0;
    b->sent = false;
    if (rc == WK_OK)
        wk_fail_point("unarchive.flushed");
    return rc;
}

bool ua_content_addressed(const char *key)
{
    /* "active/<id>/space-v1/files/static/sha256/..." */
    const char *p = strchr(key, '/');
    p = p ? strchr(p + 1, '/') : NULL;
    return p && strncmp(p + 1, "space-v1/files/static/sha256/",
                        strlen("space-v1/files/static/sha256/")) == 0;
}

/* Send the batch being filled (fenced) and turn to the other one, taking
 * the outcome of its earlier PUTs first (they ran meanwhile): PUTs stay in
 * flight while the next batch fills. The first batch is waited for before
 * anything else is sent: a run stopped there has exactly one batch in
 * place (the failpoint unarchive.flushed), at the cost of one wait. */
static enum wk_code batch_send(struct ua_run *r, struct wk_err *err)
{
    struct ua_batch *b = &r->batch[r->fill], *other;
    struct store_put *reqs;
    enum wk_code rc;
    size_t n = r->n_pending;

    if (n == 0)
        return WK_OK;
    r->n_pending = 0;
    r->pending_bytes = 0;
    reqs = calloc(n, sizeof(*reqs));
    if (!reqs) {
        batch_reset(r, b, n);
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        reqs[i].key = b->slots[i].key;
        reqs[i].data = b->slots[i].data.data ? b->slots[i].data.data : "";
        reqs[i].len = b->slots[i].data.len;
        /* never over an object a user wrote since the listing. Without
         * conditional PUT (a HEAD each, in storage) only where a user may
         * write: after the ready point (before it the app server waits,
         * and what existed is known from the listing), and not on a
         * content-addressed blob (any object at its key has its bytes) */
        reqs[i].if_absent = r->cond_put || (r->want.ready &&
                                            !ua_content_addressed(reqs[i].key));
    }
    rc = job_fence(r->ctx, "unarchive.put", err);
    if (rc != WK_OK) { /* nothing of this batch was sent */
        free(reqs);
        batch_reset(r, b, n);
        return rc;
    }
    b->reqs = reqs;
    b->n = n;
    b->sent = true;
    b->n_sent++;
    wk_err_clear(&b->err);
    b->rc = store_put_start(r->ctx->store, reqs, n, &b->p, &b->err);
    if (b->rc != WK_OK && b->p) {
        store_put_abandon(r->ctx->store, b->p); /* (not by contract) */
        b->p = NULL;
    }
    if (!r->batch[1].cap || r->batch[0].n_sent + r->batch[1].n_sent == 1)
        return batch_take(r, b, err);
    r->fill = 1 - r->fill;
    other = &r->batch[r->fill];
    return batch_take(r, other, err);
}

enum wk_code ua_flush_pending(struct ua_run *r, struct wk_err *err)
{
    struct wk_err scratch;
    enum wk_code rc, rc2;
    unsigned older;

    rc = batches_setup(r, err);
    if (rc != WK_OK)
        return rc;
    older = 1 - r->fill; /* sent before the one being filled */
    rc = batch_take(r, &r->batch[older], err);
    if (rc == WK_OK)
        rc = batch_send(r, err);
    /* whatever happened, nothing stays in flight */
    for (unsigned k = 0; k < 2; k++) {
        wk_err_clear(&scratch);
        rc2 = batch_take(r, &r->batch[k], rc == WK_OK ? err : &scratch);
        if (rc == WK_OK)
            rc = rc2;
    }
    return rc;
}

void ua_put_release(struct ua_run *r)
{
    const struct job_config *cfg = r->ctx->cfg;

    for (unsigned k = 0; k < 2; k++) {
        struct ua_batch *b = &r->batch[k];
        store_put_abandon(r->ctx->store, b->p);
        b->p = NULL;
        free(b->reqs);
        b->reqs = NULL;
        b->sent = false;
    }
    if (r->batch[1].slots) {
        for (size_t i = 0; i < r->batch[1].cap; i++) {
            free(r->batch[1].slots[i].key);
            wk_buf_release(&r->batch[1].slots[i].data);
        }
        free(r->batch[1].slots);
    }
    r->batch[1].slots = NULL;
    r->batch[0].slots = NULL;
    r->batch[0].cap = r->batch[1].cap = 0;
    if (r->pending) {
        for (size_t i = 0; i < cfg->window_objects; i++) {
            free(r->pending[i].key);
            wk_buf_release(&r->pending[i].data);
        }
        free(r->pending);
    }
    r->pending = NULL;
}

/* Restore one entry: buffered for a batched PUT when it is small, else
 * streamed through a writer. */
enum wk_code ua_restore_entry(struct ua_run *r, struct zipr *zr,
                              const struct zipr_entry *e,
                              struct store_sha256 *cas, struct wk_err *err)
{
    const struct job_config *cfg = r->ctx->cfg;
    struct store_writer *w = NULL;
    struct ua_put *slot;
    char key[2048], want[65], got[65];
    bool check_cas = job_cas_name(e->name, want);
    bool keep, small;
    unsigned char chunk[16384];
    size_t since_pump = 0;
    enum wk_code rc = WK_OK;

    if ((size_t)snprintf(key, sizeof(key), "%s%s", r->prefix, e->name) >=
        sizeof(key))
        return wk_err_set(err, WK_E_CORRUPT, "entry '%.80s...': name too long",
                          e->name);
    /* present already: read (and verify) the entry, write nothing */
    keep = r->existing && keys_has(r->existing, key);
    /* small is what fits one GET (SILA_GET_CHUNK); zipr holds the entry
     * to its declared size */
    small = !keep && e->size != UINT64_MAX && e->size <= cfg->chunk_bytes;
    rc = batches_setup(r, err);
    /* An entry too big for one PUT streams through a writer (its parts in
     * flight): the small ones before it are written first, so that the
     * batches' buffers and the parts' are never held at once (memory:
     * the larger of the two, not their sum; one round trip per such
     * entry). */
    if (rc == WK_OK && !small && !keep && e->size != UINT64_MAX)
        rc = ua_flush_pending(r, err);
    /* full, or this entry would take it past its bytes: sent first (a
     * batch never holds more than its bytes or one entry) */
    if (rc == WK_OK && (r->n_pending == r->batch[r->fill].cap ||
                        (small && r->n_pending &&
                         e->size > batch_bytes(r) - r->pending_bytes)))
        rc = batch_send(r, err);
    if (rc != WK_OK)
        return rc;
    slot = &r->batch[r->fill].slots[r->n_pending];
    wk_buf_reset(&slot->data);
    if (small && e->size < slot->data.max) {
        /* the declared size at once, exactly: no growth by doubling */
        if (slot->data.cap && slot->data.cap <= e->size) {
            size_t max = slot->data.max;
            wk_buf_release(&slot->data);
            wk_buf_init(&slot->data, max);
        }
        rc = wk_buf_reserve(&slot->data, (size_t)e->size, err);
        if (rc != WK_OK)
            return rc;
    }
    store_sha256_reset(cas);
    if (!small && !keep && e->size != UINT64_MAX) {
        /* too big to hold, known from its header: streamed from the
         * first byte (multipart on S3), never buffered first */
        struct store_writer_opts wo = {
            .part_bytes = job_unarchive_part_bytes(e->size, cfg->part_bytes),
            .parts_in_flight = cfg->parts_in_flight
        };
        wk_buf_release(&slot->data);
        rc = store_open_write(r->ctx->store, key, &wo, &w, err);
        if (rc != WK_OK)
            goto out;
    }
    /* the PUTs and GETs in flight move along while entries are opened */
    store_pump(r->ctx->store);
    for (;;) {
        size_t n = 0;
        if (job_cancelled(r->ctx)) {
            rc = wk_err_set(err, WK_E_CANCELLED, "unarchive cancelled");
            goto out;
        }
        rc = zipr_read(zr, chunk, sizeof(chunk), &n, err);
        if (rc != WK_OK)
            goto out;
        if (n == 0)
            break;
        if (check_cas)
            store_sha256_update(cas, chunk, n);
        r->prog.st.bytes_done += n;
        since_pump += n;
        if (since_pump >= UA_PUMP_BYTES) {
            store_pump(r->ctx->store);
            since_pump = 0;
        }
        if (keep)
            continue;
        if (!w && slot->data.len + n > cfg->chunk_bytes) {
            /* too big to hold: stream it (multipart on S3) */
            struct store_writer_opts wo = {
                .part_bytes =
                    job_unarchive_part_bytes(e->size, cfg->part_bytes),
                .parts_in_flight = cfg->parts_in_flight
            };
            rc = store_open_write(r->ctx->store, key, &wo, &w, err);
            if (rc == WK_OK && slot->data.len)
                rc =
                    store_writer_write(w, slot->data.data, slot->data.len, err);
            wk_buf_release(&slot->data);
            if (rc != WK_OK)
                goto out;
        }
        if (w)
            rc = store_writer_write(w, chunk, n, err);
        else
            rc = wk_buf_append(&slot->data, chunk, n, err);
        if (rc != WK_OK)
            goto out;
        prog_update(&r->prog, false);
    }
    if (check_cas) {
        store_sha256_final_hex(cas, got);
        if (strcmp(got, want) != 0) {
            rc = wk_err_set(err, WK_E_CORRUPT,
                            "entry '%s': content hashes to %s, not its name",
                            e->name, got);
            goto out;
        }
    }
    if (keep) {
        r->n_kept++;
        goto out;
    }
    if (w) {
        /* Multipart: no If-None-Match on the commit here; an object that
         * appeared since the listing is a user's and is kept (a write
         * between this HEAD and the commit is the window left). */
        struct store_stat sb;
        struct wk_err herr;
        rc = job_fence(r->ctx, "unarchive.put", err);
        if (rc != WK_OK)
            goto out;
        wk_err_clear(&herr);
        rc = store_head(r->ctx->store, key, &sb, &herr);
        if (rc == WK_OK) {
            kept_user(r, key); /* freeing w aborts the upload */
            goto out;
        }
        if (rc != WK_E_NOTFOUND) {
            wk_err_copy(err, &herr);
            goto out;
        }
        rc = store_writer_commit(w, err);
        if (rc == WK_OK)
            rc = note_written(r, key, err);
        goto out;
    }
    slot->key = strdup(key);
    if (!slot->key) {
        rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
        goto out;
    }
    r->n_pending++;
    r->pending_bytes += slot->data.len;
    if (r->pending_bytes >= batch_bytes(r))
        rc = batch_send(r, err);
out:
    store_writer_free(w);
    if (rc == WK_OK)
        r->prog.st.files_done++;
    return rc;
}

/* Delete what was restored (failure path); the space stays archived. */
void ua_cleanup_written(struct ua_run *r)
{
    size_t nd = 0;
    struct wk_err derr;

    /* PUTs still in flight first: what they wrote is noted */
    for (unsigned k = 0; k < 2; k++) {
        wk_err_clear(&derr);
        (void)batch_take(r, &r->batch[k], &derr);
    }
    if (r->n_written == 0)
        return;
    wk_err_clear(&derr);
    /* the successor may count these as restored (kept as present) */
    if (job_fence(r->ctx, "unarchive.cleanup", &derr) != WK_OK) {
        WK_LOG(WK_LOG_WARN, "unarchive.cleanup_fenced",
               KV_STR("job_id", r->job->id), KV_INT("kept", r->n_written),
               KV_STR("msg", derr.msg));
        return;
    }
    if (store_delete_many(r->ctx->store, (const char *const *)r->written,
                          r->n_written, &nd, &derr) != WK_OK)
        WK_LOG(WK_LOG_ERROR, "unarchive.cleanup_failed",
               KV_STR("job_id", r->job->id),
               KV_STR("space_id", r->job->space_id),
               KV_INT("left", r->n_written - nd), KV_STR("msg", derr.msg));
    else
        WK_LOG(WK_LOG_INFO, "unarchive.cleaned_up",
               KV_STR("job_id", r->job->id), KV_INT("deleted", nd));
}

static enum wk_code keys_cb(const struct store_entry *e, void *ud,
                            struct wk_err *err)
{
    struct ua_keys *k = ud;
    if (e->is_prefix)
        return WK_OK;
    if (k->n == k->cap) {
        size_t ncap = k->cap ? k->cap * 2 : 64;
        char **p = realloc(k->v, ncap * sizeof(*p));
        if (!p)
            return wk_err_set(err, WK_E_NOMEM, "out of memory");
        k->v = p;
        k->cap = ncap;
    }
    k->v[k->n] = strdup(e->key);
    if (!k->v[k->n])
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    k->n++;
    return WK_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool keys_has(const struct ua_keys *k, const char *key)
{
    return k->n && bsearch(&key, k->v, k->n, sizeof(*k->v), cmp_str);
}

enum wk_code ua_keys_load(struct store *st, const char *prefix,
                          struct ua_keys *k, struct wk_err *err)
{
    enum wk_code rc = store_list(st, prefix, NULL, keys_cb, k, err);

    if (rc == WK_OK && k->n > 1) /* qsort(NULL, 0, ...) is undefined */
        qsort(k->v, k->n, sizeof(*k->v), cmp_str);
    return rc;
}

void ua_keys_release(struct ua_keys *k)
{
    for (size_t i = 0; i < k->n; i++)
        free(k->v[i]);
    free(k->v);
    memset(k, 0, sizeof(*k));
}
