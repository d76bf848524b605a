/*
 * mig_copy: a migration's copy to active/<spaceId>/. Small files in
 * batches (GETs of the source, and of active/ where the bytes decide,
 * then one batched PUT of what is missing or different), big ones
 * streamed in ranges through a writer; CAS blobs verified against their
 * names before they are written; compare-only mode stops at the first
 * difference.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/wk_log.h"
#include "jobs/job_archive.h"
#include "jobs/job_int.h"
#include "jobs/mig_int.h"
#include "jobs/progress.h"
#include "storage/store.h"
#include "storage/store_hash.h"

static enum wk_code first_failure(const struct store_get *reqs, size_t n,
                                  const struct wk_err *batch, const char *what,
                                  struct wk_err *err)
{
    for (size_t i = 0; i < n; i++)
        if (reqs[i].err.code != WK_OK) {
            wk_err_copy(err, &reqs[i].err);
            wk_err_prefix(err, "%s", what);
            return reqs[i].err.code;
        }
    if (batch->code != WK_OK)
        return wk_err_copy(err, batch);
    return wk_err_set(err, WK_E_INTERNAL, "batch read failed");
}

static enum mig_act classify(const struct mig_run *r, const struct job_obj *o)
{
    const struct job_obj *d = job_list_find(&r->dlist, o->name);
    char want[65];

    if (!d || d->size != o->size)
        return MIG_COPY;
    /* a CAS blob's name is its hash: the same size is the same blob */
    if (job_cas_name(o->name, want))
        return MIG_SKIP;
    return MIG_COMPARE;
}

static enum wk_code check_cas(struct mig_run *r, const char *name,
                              const void *p, size_t n, struct wk_err *err)
{
    char want[65], got[65];

    if (!job_cas_name(name, want))
        return WK_OK;
    store_sha256_reset(r->cas);
    store_sha256_update(r->cas, p, n);
    store_sha256_final_hex(r->cas, got);
    if (strcmp(got, want) != 0)
        return wk_err_set(err, WK_E_CORRUPT,
                          "source file '%s': content hashes to %s, not its "
                          "name",
                          name, got);
    return WK_OK;
}

static void note_differs(struct mig_run *r, const char *name)
{
    snprintf(r->differs, sizeof(r->differs), "%s", name);
}

/* Fetch a batch of small files (and the destination's bytes where the
 * bytes decide), verify, and PUT what is missing or different. */
static enum wk_code run_batch(struct mig_run *r, size_t nb, struct wk_err *err)
{
    size_t ns = 0, nd = 0, np = 0;
    uint64_t put_bytes = 0;
    struct wk_err berr;
    enum wk_code rc = WK_OK;

    for (size_t i = 0; i < nb; i++) {
        struct mig_slot *sl = &r->slots[i];
        const struct job_obj *o = &r->slist.v[sl->obj];
        wk_buf_reset(&sl->sbuf);
        wk_buf_reset(&sl->dbuf);
        if (sl->act == MIG_SKIP || o->size == 0)
            continue;
        memset(&r->sget[ns], 0, sizeof(r->sget[ns]));
        r->sget[ns].key = o->name;
        r->sget[ns].len = o->size;
        r->sget[ns].out = &sl->sbuf;
        ns++;
        if (sl->act == MIG_COMPARE) {
            memset(&r->dget[nd], 0, sizeof(r->dget[nd]));
            r->dget[nd].key = sl->dkey;
            r->dget[nd].len = o->size;
            r->dget[nd].out = &sl->dbuf;
            nd++;
        }
    }
    wk_err_clear(&berr);
    if (ns > 0 && store_get_many(r->src, r->sget, ns, &berr) != WK_OK)
        return first_failure(r->sget, ns, &berr, "reading the source", err);
    wk_err_clear(&berr);
    if (nd > 0 && store_get_many(r->ctx->store, r->dget, nd, &berr) != WK_OK)
        return first_failure(r->dget, nd, &berr, "reading active/", err);

    for (size_t i = 0; i < nb; i++) {
        struct mig_slot *sl = &r->slots[i];
        const struct job_obj *o = &r->slist.v[sl->obj];
        bool same;

        if (sl->sbuf.len != (sl->act == MIG_SKIP ? 0 : o->size))
            return wk_err_set(err, WK_E_CONFLICT,
                              "source file '%s' changed while it was "
                              "migrated",
                              o->name);
        if (sl->act == MIG_COMPARE) {
            same = o->size == 0 ||
                   (sl->dbuf.len == sl->sbuf.len &&
                    memcmp(sl->dbuf.data, sl->sbuf.data, sl->sbuf.len) == 0);
            if (same) {
                sl->act = MIG_SKIP;
            } else if (!r->write) {
                note_differs(r, o->name);
                return WK_OK;
            } else {
                sl->act = MIG_COPY;
            }
        }
        if (sl->act == MIG_SKIP) {
            r->skipped++;
            continue;
        }
        rc = check_cas(r, o->name, sl->sbuf.data ? sl->sbuf.data : "",
                       sl->sbuf.len, err);
        if (rc != WK_OK)
            return rc;
        memset(&r->puts[np], 0, sizeof(r->puts[np]));
        r->puts[np].key = sl->dkey;
        r->puts[np].data = sl->sbuf.data ? sl->sbuf.data : "";
        r->puts[np].len = sl->sbuf.len;
        put_bytes += sl->sbuf.len;
        np++;
    }
    if (np > 0) {
        wk_err_clear(&berr);
        rc = store_put_many(r->ctx->store, r->puts, np, &berr);
        if (rc != WK_OK) {
            for (size_t i = 0; i < np; i++)
                if (r->puts[i].err.code != WK_OK)
                    return wk_err_copy(err, &r->puts[i].err);
            return wk_err_copy(err, &berr);
        }
        r->copied += np;
        r->copied_bytes += put_bytes;
    }
    for (size_t i = 0; i < nb; i++) {
        const struct job_obj *o = &r->slist.v[r->slots[i].obj];
        r->prog.st.bytes_done += o->size;
        r->prog.st.files_done++;
        /* released, not kept: a kept buffer would hold its size past
         * this batch, beyond the window the next batch is planned in */
        wk_buf_release(&r->slots[i].sbuf);
        wk_buf_release(&r->slots[i].dbuf);
    }
    prog_update(&r->prog, false);
    return WK_OK;
}

/* One range of key in st into b (exactly len bytes). */
static enum wk_code get_range(struct store *st, const char *key, uint64_t off,
                              uint64_t len, struct wk_buf *b, const char *what,
                              struct wk_err *err)
{
    struct store_get g;
    struct wk_err berr;

    wk_buf_reset(b);
    memset(&g, 0, sizeof(g));
    g.key = key;
    g.offset = off;
    g.len = len;
    g.out = b;
    wk_err_clear(&berr);
    if (store_get_many(st, &g, 1, &berr) != WK_OK)
        return first_failure(&g, 1, &berr, what, err);
    if (b->len != len)
        return wk_err_set(err, WK_E_CONFLICT,
                          "%s: '%s' changed while it was migrated", what, key);
    return WK_OK;
}

/* A file bigger than one GET: compared and copied in chunk_bytes ranges,
 * streamed through a writer (multipart on S3), committed only once its
 * CAS hash (if it is a blob) was verified. */
static enum wk_code run_big(struct mig_run *r, size_t obj, enum mig_act act,
                            struct wk_err *err)
{
    const struct job_config *cfg = r->ctx->cfg;
    const struct job_obj *o = &r->slist.v[obj];
    struct mig_slot *sl = &r->slots[0];
    struct store_writer *w = NULL;
    struct store_writer_opts wo;
    char want[65], got[65];
    bool is_cas = job_cas_name(o->name, want);
    enum wk_code rc = WK_OK;

    if ((size_t)snprintf(sl->dkey, sizeof(sl->dkey), "%s%s", r->prefix,
                         o->name) >= sizeof(sl->dkey))
        return wk_err_set(err, WK_E_INVAL,
                          "source file '%.200s': name too long", o->name);
    if (act == MIG_COMPARE) {
        bool same = true;
        for (uint64_t off = 0; off < o->size && same; off += cfg->chunk_bytes) {
            uint64_t len = o->size - off;
            if (len > cfg->chunk_bytes)
                len = cfg->chunk_bytes;
            if (job_cancelled(r->ctx))
                return wk_err_set(err, WK_E_CANCELLED, "migrate cancelled");
            rc = get_range(r->src, o->name, off, len, &sl->sbuf,
                           "reading the source", err);
            if (rc == WK_OK)
                rc = get_range(r->ctx->store, sl->dkey, off, len, &sl->dbuf,
                               "reading active/", err);
            if (rc != WK_OK)
                goto out;
            same = memcmp(sl->sbuf.data, sl->dbuf.data, (size_t)len) == 0;
        }
        if (same) {
            r->skipped++;
            r->prog.st.bytes_done += o->size;
            goto out;
        }
        act = MIG_COPY;
    }
    if (act == MIG_SKIP) {
        r->skipped++;
        r->prog.st.bytes_done += o->size;
        goto out;
    }
    if (!r->write) {
        note_differs(r, o->name);
        goto out;
    }
    memset(&wo, 0, sizeof(wo));
    wo.part_bytes = job_part_bytes(o->size, cfg->part_bytes);
    wo.parts_in_flight = cfg->parts_in_flight;
    rc = store_open_write(r->ctx->store, sl->dkey, &wo, &w, err);
    if (rc != WK_OK)
        goto out;
    if (is_cas)
        store_sha256_reset(r->cas);
    for (uint64_t off = 0; off < o->size; off += cfg->chunk_bytes) {
        uint64_t len = o->size - off;
        if (len > cfg->chunk_bytes)
            len = cfg->chunk_bytes;
        if (job_cancelled(r->ctx)) {
            rc = wk_err_set(err, WK_E_CANCELLED, "migrate cancelled");
            goto out;
        }
        rc = get_range(r->src, o->name, off, len, &sl->sbuf,
                       "reading the source", err);
        if (rc == WK_OK && is_cas)
            store_sha256_update(r->cas, sl->sbuf.data, sl->sbuf.len);
        if (rc == WK_OK)
            rc = store_writer_write(w, sl->sbuf.data, sl->sbuf.len, err);
        if (rc != WK_OK)
            goto out;
        r->prog.st.bytes_done += len;
        prog_update(&r->prog, false);
    }
    if (is_cas) {
        store_sha256_final_hex(r->cas, got);
        if (strcmp(got, want) != 0) {
            rc = wk_err_set(err, WK_E_CORRUPT,
                            "source file '%s': content hashes to %s, not its "
                            "name",
                            o->name, got);
            goto out; /* freeing the writer drops the upload */
        }
    }
    rc = store_writer_commit(w, err);
    if (rc != WK_OK)
        goto out;
    r->copied++;
    r->copied_bytes += o->size;
out:
    store_writer_free(w);
    if (rc == WK_OK && !r->differs[0])
        r->prog.st.files_done++;
    wk_buf_release(&sl->sbuf);
    wk_buf_release(&sl->dbuf);
    return rc;
}

/* Every source file to active/<id>/, space-v1/space.json last (a partial
 * copy never looks like a space); when !r->write, only compare and stop
 * at the first difference (r->differs). */
enum wk_code mig_copy_all(struct mig_run *r, struct wk_err *err)
{
    const struct job_config *cfg = r->ctx->cfg;
    size_t n = r->slist.n, k = 0, *order = NULL, no = 0;
    enum wk_code rc = WK_OK;

    order = calloc(n ? n : 1, sizeof(*order));
    if (!order)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        if (strcmp(r->slist.v[i].name, MIG_SPACE_JSON) != 0)
            order[no++] = i;
    for (size_t i = 0; i < n; i++)
        if (strcmp(r->slist.v[i].name, MIG_SPACE_JSON) == 0)
            order[no++] = i;

    while (k < no && rc == WK_OK && !r->differs[0]) {
        size_t nb = 0;
        uint64_t bytes = 0;

        if (job_cancelled(r->ctx)) {
            rc = wk_err_set(err, WK_E_CANCELLED, "migrate cancelled");
            break;
        }
        while (k < no && nb < r->nslots) {
            const struct job_obj *o = &r->slist.v[order[k]];
            enum mig_act act = classify(r, o);
            uint64_t cost = act == MIG_COPY      ? o->size
                            : act == MIG_COMPARE ? 2 * o->size
                                                 : 0;
            struct mig_slot *sl;

            if (!r->write && act == MIG_COPY) {
                note_differs(r, o->name);
                break;
            }
            if (o->size > cfg->chunk_bytes) {
                if (nb == 0) {
                    rc = run_big(r, order[k], act, err);
                    k++;
                }
                break;
            }
            if (nb > 0 && bytes + cost > cfg->window_bytes)
                break;
            sl = &r->slots[nb];
            if ((size_t)snprintf(sl->dkey, sizeof(sl->dkey), "%s%s", r->prefix,
                                 o->name) >= sizeof(sl->dkey)) {
                rc = wk_err_set(err, WK_E_INVAL,
                                "source file '%.200s': name too long", o->name);
                break;
            }
            sl->obj = order[k];
            sl->act = act;
            nb++;
            bytes += cost;
            k++;
        }
        if (rc == WK_OK && nb > 0 && !r->differs[0])
            rc = run_batch(r, nb, err);
    }
    free(order);
    return rc;
}

enum wk_code mig_alloc_slots(struct mig_run *r, struct wk_err *err)
{
    const struct job_config *cfg = r->ctx->cfg;

    r->nslots = cfg->window_objects ? cfg->window_objects : 1;
    r->slots = calloc(r->nslots, sizeof(*r->slots));
    r->sget = calloc(r->nslots, sizeof(*r->sget));
    r->dget = calloc(r->nslots, sizeof(*r->dget));
    r->puts = calloc(r->nslots, sizeof(*r->puts));
    if (!r->slots || !r->sget || !r->dget || !r->puts)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    for (size_t i = 0; i < r->nslots; i++) {
        wk_buf_init(&r->slots[i].sbuf, cfg->chunk_bytes);
        wk_buf_init(&r->slots[i].dbuf, cfg->chunk_bytes);
    }
    return WK_OK;
}

void mig_free_slots(struct mig_run *r)
{
    if (r->slots)
        for (size_t i = 0; i < r->nslots; i++) {
            wk_buf_release(&r->slots[i].sbuf);
            wk_buf_release(&r->slots[i].dbuf);
        }
    free(r->slots);
    free(r->sget);
    free(r->dget);
    free(r->puts);
}
