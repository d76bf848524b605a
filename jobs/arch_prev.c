/*
 * arch_prev: what a re-archive may copy from the space's previous archive
 * (PROTOCOL.md "Re-archiving"). The restore record (jobs/rrec.h) says
 * which objects a restore wrote from which archive, with the ETag each
 * PUT got; an object still listed with that ETag and its entry's size is
 * unchanged, and its entry's record (local header, data, descriptor) is
 * read from the old archive in long runs of ranged GETs instead of one GET
 * per object (arch_stream.c), then copied into the new archive as it is
 * (zipw_copy_*). Everything here is best effort: without a record, with a
 * record of another archive, a sealed archive, or any failure, the archive
 * reads every object as before.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/wk_log.h"
#include "jobs/arch_int.h"
#include "jobs/manifest.h"
#include "jobs/rrec.h"
#include "storage/store.h"
#include "zip/zip_fmt.h"
#include "zip/zipcd.h"

/* The central directory of the old archive, joined with the record. */
struct prev_load {
    struct arch_prev *p;
    const struct rrec_table *rec;
    size_t cap;
    uint64_t last_off; /* offsets grow: entry i + 1 after entry i */
    bool ordered;
};

static enum wk_code prev_entry(const struct zipcd_entry *e, void *ud,
                               struct wk_err *err)
{
    struct prev_load *l = ud;
    struct arch_prev *p = l->p;
    const char *etag;
    struct arch_prev_ent *pe;

    if (p->n > 0 && e->offset <= l->last_off)
        l->ordered = false;
    l->last_off = e->offset;
    /* every entry takes a slot: a record's length runs to the next one */
    if (p->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 256;
        struct arch_prev_ent *v = realloc(p->v, ncap * sizeof(*v));
        if (!v)
            return wk_err_set(err, WK_E_NOMEM, "out of memory");
        p->v = v;
        l->cap = ncap;
    }
    pe = &p->v[p->n];
    memset(pe, 0, sizeof(*pe));
    pe->off = e->offset;
    pe->csize = e->csize;
    pe->usize = e->usize;
    pe->crc = e->crc;
    etag = e->name_len == strlen(e->name) ? rrec_etag(l->rec, e->name) : NULL;
    /* what zipw_copy takes: deflated with a descriptor, or stored without
     * one (an archive of an older writer has stored entries with
     * descriptors: those are read again) */
    pe->usable = etag && !(e->flags & 0x2041) &&
                 ((e->method == 8 && (e->flags & ZIP_FLAG_DESCRIPTOR)) ||
                  (e->method == 0 && !(e->flags & ZIP_FLAG_DESCRIPTOR)));
    if (pe->usable) {
        size_t nl = strlen(e->name), el = strlen(etag);
        pe->name = malloc(nl + el + 2);
        if (!pe->name)
            return wk_err_set(err, WK_E_NOMEM, "out of memory");
        memcpy(pe->name, e->name, nl + 1);
        pe->etag = pe->name + nl + 1;
        memcpy(pe->name + nl + 1, etag, el + 1);
    }
    p->n++;
    return WK_OK;
}

static int ent_cmp(const void *a, const void *b)
{
    const struct arch_prev_ent *x = a, *y = b;
    return strcmp(x->name, y->name);
}

void arch_prev_release(struct arch_prev *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->v[i].name);
    free(p->v);
    memset(p, 0, sizeof(*p));
}

/* The manifest names the record's archive (current or history), plain. */
static bool names_archive(const struct mf *old, const struct rrec_table *t)
{
    if (strcmp(old->archive_key, t->archive_key) == 0)
        return strcmp(old->checksum, t->checksum) == 0 &&
               old->size == t->size && !old->enc.on;
    for (size_t i = 0; i < old->n_history; i++) {
        const struct mf_archive *h = &old->history[i];
        if (strcmp(h->key, t->archive_key) == 0)
            return strcmp(h->checksum, t->checksum) == 0 &&
                   h->size == t->size && !h->enc.on;
    }
    return false;
}

static void prev_off(struct arch_run *r, const char *why, const char *msg)
{
    WK_LOG(WK_LOG_INFO, "archive.no_reuse", KV_STR("job_id", r->job->id),
           KV_STR("why", why), KV_STR("msg", msg ? msg : ""));
    arch_prev_release(&r->prev);
}

void arch_prev_load(struct arch_run *r, const struct mf *old, bool has_old)
{
    struct arch_prev *p = &r->prev;
    struct rrec_table t;
    struct prev_load l;
    struct zipcd_info info;
    struct store_stat st;
    struct wk_err e;
    bool found = false;
    size_t keep = 0;

    memset(p, 0, sizeof(*p));
    memset(&t, 0, sizeof(t));
    wk_err_clear(&e);
    if (!has_old || !old->archive_key[0] || r->ctx->cfg->no_reuse)
        return;
    if (rrec_load(r->ctx->store, r->job->space_id, &t, &found, &e) != WK_OK) {
        prev_off(r, "record unreadable", e.msg);
        return;
    }
    if (!found)
        return;
    if (!names_archive(old, &t)) {
        prev_off(r, "record of an archive the manifest does not name", NULL);
        goto out;
    }
    /* the very version the restore read and verified */
    if (store_head(r->ctx->store, t.archive_key, &st, &e) != WK_OK ||
        st.size != t.size || strcmp(st.etag, t.archive_etag) != 0) {
        prev_off(r, "archive gone or not the version restored", e.msg);
        goto out;
    }
    snprintf(p->key, sizeof(p->key), "%s", t.archive_key);
    snprintf(p->etag, sizeof(p->etag), "%s", st.etag);
    memset(&l, 0, sizeof(l));
    l.p = p;
    l.rec = &t;
    l.ordered = true;
    memset(&info, 0, sizeof(info));
    if (zipcd_read(r->ctx->store, p->key, st.size, NULL,
                   (size_t)r->ctx->cfg->chunk_bytes, prev_entry, &l, &info,
                   &e) != WK_OK) {
        prev_off(r, "central directory unreadable", e.msg);
        goto out;
    }
    if (!l.ordered) {
        prev_off(r, "entries not in offset order", NULL);
        goto out;
    }
    /* each record runs to the next one's header, the last to the central
     * directory; then only the usable ones are kept, sorted by name */
    for (size_t i = 0; i < p->n; i++) {
        uint64_t end = i + 1 < p->n ? p->v[i + 1].off : info.cd_offset;
        p->v[i].len = end - p->v[i].off;
    }
    for (size_t i = 0; i < p->n; i++) {
        if (p->v[i].usable)
            p->v[keep++] = p->v[i];
    }
    p->n = keep;
    if (keep > 1)
        qsort(p->v, keep, sizeof(*p->v), ent_cmp);
    p->on = keep > 0;
    p->cd_requests = info.requests;
    WK_LOG(WK_LOG_INFO, "archive.reuse_from", KV_STR("job_id", r->job->id),
           KV_STR("archive_key", p->key), KV_INT("recorded", t.n),
           KV_INT("usable", keep), KV_INT("requests", info.requests + 2));
out:
    rrec_table_release(&t);
}

static int cmp_ent_name(const void *name, const void *elem)
{
    return strcmp(name, ((const struct arch_prev_ent *)elem)->name);
}

const struct arch_prev_ent *arch_prev_match(const struct arch_run *r,
                                            const struct job_obj *o)
{
    const struct arch_prev *p = &r->prev;
    const struct arch_prev_ent *pe;

    if (!p->on || p->dead || !o->etag || !o->etag[0] || p->n == 0)
        return NULL;
    pe = bsearch(o->key + r->prefix_len, p->v, p->n, sizeof(*p->v),
                 cmp_ent_name);
    if (!pe || strcmp(pe->etag, o->etag) != 0 || pe->usize != o->size)
        return NULL; /* changed since the restore wrote it, or not written */
    return pe;
}

void arch_prev_failed(struct arch_run *r, const char *msg)
{
    WK_LOG(WK_LOG_WARN, "archive.reuse_failed", KV_STR("job_id", r->job->id),
           KV_STR("archive_key", r->prev.key), KV_INT("attempt", r->attempt),
           KV_STR("msg", msg ? msg : ""));
    r->prev.dead = true;
}
