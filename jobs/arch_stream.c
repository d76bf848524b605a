/*
 * arch_stream: the archive's streaming engine. The listing's objects are
 * read in batches ahead of the ZIP writer (ranges of If-Match GETs), each
 * entry stored (content compressed already and held whole: CRC-32 and
 * sizes in its local header) or deflated (at level 0 for compressed
 * content too big to hold), CAS blobs checked against their names while
 * they stream.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/wk_fail.h"
#include "common/wk_log.h"
#include "jobs/arch_int.h"
#include "jobs/job_archive.h"
#include "jobs/job_int.h"
#include "jobs/progress.h"
#include "storage/store.h"
#include "storage/store_hash.h"
#include "zip/zipw.h"
#include "zip/zsniff.h"

/* One fetched range of one object, in archive order: of the object
 * itself, or (pe set) of its entry's record in the previous archive. */
struct arch_range {
    size_t obj;
    uint64_t off, len;
    size_t get; /* index into the batch's reqs; unused when len == 0 */
    const struct arch_prev_ent *pe; /* copied from the old archive */
    uint64_t buf_off; /* where its bytes start in the GET's buffer (copied
                         records next to each other share one GET) */
};

/* Ranges per GET slot of a batch: copied records share GETs, so a batch
 * can hold many more ranges than GETs. */
#define ARCH_RANGES_PER_GET 32

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
        if (r->prev.on && strcmp(reqs[i].key, r->prev.key) == 0) {
            /* the old archive, not the space: redo without copies */
            arch_prev_failed(r, reqs[i].err.msg);
            *changed = true;
            return WK_OK;
        }
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

/* One batch of ranges, read ahead of the ZIP writer (arch_write_archive). */
struct arch_batch {
    struct store_get *reqs;    /* owned, slots */
    struct wk_buf *bufs;       /* owned, slots */
    struct arch_range *ranges; /* owned, range_cap */
    size_t range_cap;
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
    bt->range_cap = slots * ARCH_RANGES_PER_GET;
    bt->ranges = calloc(bt->range_cap, sizeof(*bt->ranges));
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

    /* every buffer of the last batch goes back: a kept one would hold its
     * old size past this batch's share (a slot this batch leaves unused, or
     * a small buffer doubled to fit a bigger object), and the window is a
     * memory bound, not a hint. A malloc per object costs nothing next to
     * its GET. */
    for (size_t i = 0; i < bt->ng; i++)
        wk_buf_release(&bt->bufs[i]);
    bt->nr = bt->ng = 0;
    bt->rc = WK_OK;
    wk_err_clear(&bt->gerr);
    while (*next_obj < r->list.n && bt->nr < bt->range_cap) {
        const struct job_obj *o = &r->list.v[*next_obj];
        const struct arch_prev_ent *pe = arch_prev_match(r, o);
        const struct arch_range *prv = bt->nr ? &bt->ranges[bt->nr - 1] : NULL;
        struct store_get *last = bt->ng ? &bt->reqs[bt->ng - 1] : NULL;
        struct arch_range *rg = &bt->ranges[bt->nr];
        uint64_t total = pe ? pe->len : o->size;
        uint64_t len = total - *next_off;
        bool join;
        if (len > cfg->chunk_bytes)
            len = cfg->chunk_bytes;
        if (len > bytes) /* a big object: ranges of one batch's share */
            len = bytes;
        if (bt->nr > 0 && batch_bytes + len > bytes)
            break;
        /* a copied record that follows the previous one in the old
         * archive joins its GET: unchanged runs take one request */
        join = pe && prv && prv->pe && prv->len > 0 && last &&
               prv->get == bt->ng - 1 &&
               prv->pe->off + prv->off + prv->len == pe->off + *next_off &&
               last->len + len <= cfg->chunk_bytes;
        if (len > 0 && !join && bt->ng == slots)
            break;
        rg->obj = *next_obj;
        rg->off = *next_off;
        rg->len = len;
        rg->pe = pe;
        rg->buf_off = 0;
        if (join) {
            rg->get = prv->get;
            rg->buf_off = prv->buf_off + prv->len;
            last->len += len;
        } else if (len > 0) {
            struct store_get *g = &bt->reqs[bt->ng];
            rg->get = bt->ng;
            memset(g, 0, sizeof(*g));
            g->key = pe ? r->prev.key : o->key;
            g->offset = (pe ? pe->off : 0) + *next_off;
            g->len = len;
            g->out = &bt->bufs[bt->ng];
            /* the listed version or nothing: a rewrite in between is a
             * concurrent write, never a mix of two versions (the old
             * archive: the version its record was made from) */
            g->if_match = pe ? r->prev.etag : o->etag;
            bt->ng++;
        }
        bt->nr++;
        batch_bytes += len;
        *next_off += len;
        if (*next_off >= total) {
            (*next_obj)++;
            *next_off = 0;
        }
    }
    /* room for exactly what each GET brings (no doubling while it
     * arrives); on failure the read fails and says so */
    for (size_t i = 0; i < bt->ng; i++)
        (void)wk_buf_reserve(bt->reqs[i].out, (size_t)bt->reqs[i].len,
                             &bt->reqs[i].err);
    if (bt->ng > 0)
        bt->rc =
            store_get_start(r->src, bt->reqs, bt->ng, &bt->pend, &bt->gerr);
}

/* A range of a copied record into zw (zipw_copy_*). A record that does
 * not copy (WK_E_CORRUPT: not what the old archive's directory says) is
 * no loss: the old archive is set aside and the attempt is redone reading
 * every object (*changed). */
static enum wk_code commit_copy(struct arch_run *r, struct zipw *zw,
                                const struct arch_range *rg,
                                const struct job_obj *o, const void *data,
                                bool *changed, struct wk_err *err)
{
    const struct arch_prev_ent *pe = rg->pe;
    enum wk_code rc = WK_OK;

    if (rg->off == 0)
        rc = zipw_copy_begin(zw, o->key + r->prefix_len, pe->usize, pe->csize,
                             pe->crc, pe->len, err);
    if (rc == WK_OK)
        rc = zipw_copy_write(zw, data, (size_t)rg->len, err);
    if (rc == WK_OK && rg->off + rg->len >= pe->len) {
        rc = zipw_copy_end(zw, err);
        if (rc == WK_OK) {
            r->prog.st.files_done++;
            r->prog.st.bytes_done += o->size;
            r->prev.copied_files++;
            r->prev.copied_bytes += pe->len;
        }
    }
    if (rc == WK_E_CORRUPT) {
        arch_prev_failed(r, err->msg);
        wk_err_clear(err);
        *changed = true;
        return WK_OK;
    }
    return rc;
}

/* Write a read batch into zw, in key order. */
static enum wk_code batch_commit(struct arch_run *r, struct zipw *zw,
                                 struct arch_batch *bt, bool *changed,
                                 struct wk_err *err)
{
    enum wk_code rc = WK_OK;

    for (size_t i = 0; i < bt->nr; i++) {
        const struct arch_range *rg = &bt->ranges[i];
        const struct job_obj *o = &r->list.v[rg->obj];
        const struct wk_buf *b = rg->len ? &bt->bufs[rg->get] : NULL;
        uint64_t want = rg->len ? bt->reqs[rg->get].len : 0;
        const unsigned char *data =
            b ? (const unsigned char *)b->data + rg->buf_off : NULL;

        if (b && b->len != want) {
            /* The stores check this already; an exact length is what
             * stands in for If-Match on every read. */
            WK_LOG(WK_LOG_INFO, "archive.object_changed",
                   KV_STR("job_id", r->job->id), KV_STR("key", o->key),
                   KV_INT("attempt", r->attempt), KV_INT("expected", want),
                   KV_INT("got", b->len));
            *changed = true;
            return WK_OK;
        }
        if (rg->pe) {
            rc = commit_copy(r, zw, rg, o, data, changed, err);
            if (rc != WK_OK || *changed)
                return rc;
            store_pump(r->src);
            continue;
        }
        if (rg->off == 0) {
            /* Content that is compressed already is not deflated again:
             * held whole, it is stored with its CRC-32 in the local
             * header (every streaming reader opens that); too big to
             * hold, it is deflated at level 0 (stored deflate blocks,
             * with a data descriptor). */
            const char *name = o->key + r->prefix_len;
            bool packed = b && zsniff_compressed(data, (size_t)rg->len, NULL);
            if (packed && rg->len == o->size)
                rc = zipw_entry_begin_stored(
                    zw, name, o->size, (time_t)o->mtime,
                    zipw_crc32(0, data, (size_t)rg->len), err);
            else
                rc = zipw_entry_begin(zw, name, o->size, (time_t)o->mtime,
                                      packed, err);
            if (rc != WK_OK)
                return rc;
            r->cas_on =
                r->cas && job_cas_name(o->key + r->prefix_len, r->cas_want);
            if (r->cas_on)
                store_sha256_reset(r->cas);
        }
        if (b) {
            rc = zipw_entry_write(zw, data, (size_t)rg->len, err);
            if (rc != WK_OK)
                return rc;
            if (r->cas_on)
                store_sha256_update(r->cas, data, (size_t)rg->len);
            r->prog.st.bytes_done += rg->len;
        }
        if (rg->off + rg->len >= o->size) {
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
enum wk_code arch_write_archive(struct arch_run *r, struct zipw *zw,
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
    r->prev.copied_files = r->prev.copied_bytes = 0;
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
        /* test failpoint: a slow archive (sleep), cancelled right after */
        wk_fail_point("archive.batch");
        if (job_cancelled(r->ctx)) {
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
