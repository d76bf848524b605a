/*
 * ua_source: what the restore reads. The archive's central directory read
 * first (the authority each entry is held to, bounded by the manifest),
 * and the archive itself in ranged GETs of chunk bytes, hashed in order
 * and opened a chunk at a time when sealed (zipr's read callback).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/wk_log.h"
#include "common/wk_path.h"
#include "jobs/manifest.h"
#include "jobs/ua_int.h"
#include "storage/seal.h"
#include "storage/store.h"
#include "storage/store_hash.h"
#include "zip/zipcd.h"

static enum wk_code cd_entry(const struct zipcd_entry *e, void *ud,
                             struct wk_err *err)
{
    struct ua_cd *cd = ud;

    if (e->index >= cd->max)
        return wk_err_set(err, WK_E_CORRUPT,
                          "archive has more than %llu entries, the "
                          "manifest's fileCount",
                          (unsigned long long)cd->max);
    if (e->usize > cd->max_bytes - cd->bytes) {
        char shown[128];
        wk_path_shown(shown, sizeof(shown), e->name, e->name_len);
        return wk_err_set(err, WK_E_CORRUPT,
                          "archive holds more than %llu bytes, the "
                          "manifest's uncompressedSize: its central directory "
                          "declares entry '%s' past them",
                          (unsigned long long)cd->max_bytes, shown);
    }
    cd->bytes += e->usize;
    if (cd->n == cd->cap) {
        size_t ncap = cd->cap ? cd->cap * 2 : 256;
        uint64_t *u;
        uint32_t *c;
        if (ncap > cd->max)
            ncap = (size_t)cd->max;
        u = realloc(cd->usize, ncap * sizeof(*u));
        if (!u)
            return wk_err_set(err, WK_E_NOMEM, "out of memory");
        cd->usize = u;
        c = realloc(cd->crc, ncap * sizeof(*c));
        if (!c)
            return wk_err_set(err, WK_E_NOMEM, "out of memory");
        cd->crc = c;
        u = realloc(cd->off, ncap * sizeof(*u));
        if (!u)
            return wk_err_set(err, WK_E_NOMEM, "out of memory");
        cd->off = u;
        u = realloc(cd->hash, ncap * sizeof(*u));
        if (!u)
            return wk_err_set(err, WK_E_NOMEM, "out of memory");
        cd->hash = u;
        cd->cap = ncap;
    }
    if (e->offset < cd->next_at)
        cd->ordered = false;
    cd->next_at = e->offset + 1;
    cd->usize[cd->n] = e->usize;
    cd->crc[cd->n] = e->crc;
    cd->off[cd->n] = e->offset;
    cd->hash[cd->n] = ua_name_hash(e->name, e->name_len);
    cd->n++;
    return WK_OK;
}

/* zipr's authority: entry i is central directory record i. */
bool ua_cd_declared(void *ud, uint64_t index, uint64_t *usize, uint32_t *crc)
{
    const struct ua_cd *cd = ud;

    if (!cd->ordered || index >= cd->n)
        return false;
    *usize = cd->usize[index];
    *crc = cd->crc[index];
    return true;
}

void ua_cd_release(struct ua_cd *cd)
{
    free(cd->usize);
    free(cd->crc);
    free(cd->off);
    free(cd->hash);
    memset(cd, 0, sizeof(*cd));
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The second look for a name hash seen twice: its first name kept, a
 * second entry of that same name refused. */
struct cd_dup {
    uint64_t hash;
    char *first; /* owned */
};

static enum wk_code cd_dup_entry(const struct zipcd_entry *e, void *ud,
                                 struct wk_err *err)
{
    struct cd_dup *d = ud;
    char shown[128];

    if (ua_name_hash(e->name, e->name_len) != d->hash)
        return WK_OK;
    if (!d->first) {
        d->first = strdup(e->name);
        return d->first ? WK_OK : wk_err_set(err, WK_E_NOMEM, "out of memory");
    }
    if (strcmp(d->first, e->name) != 0)
        return WK_OK; /* (two names, one hash: both fine) */
    wk_path_shown(shown, sizeof(shown), e->name, e->name_len);
    return wk_err_set(err, WK_E_CORRUPT,
                      "entry '%s': duplicate name (in the central directory, "
                      "refused before anything is written)",
                      shown);
}

/* Names repeat nowhere: a repeated one is refused now, before the ready
 * point (after it, a failure leaves the space restoring). Costs a sorted
 * copy of the hashes; a second directory read only when two are equal. */
static enum wk_code cd_unique(const struct job_ctx *ctx,
                              const struct mf_archive *want,
                              const struct seal_dk *dk, const struct ua_cd *cd,
                              struct wk_err *err)
{
    uint64_t *h;
    enum wk_code rc = WK_OK;

    if (cd->n < 2)
        return WK_OK;
    h = malloc(cd->n * sizeof(*h));
    if (!h)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    memcpy(h, cd->hash, cd->n * sizeof(*h));
    qsort(h, cd->n, sizeof(*h), cmp_u64);
    for (size_t i = 1; i < cd->n && rc == WK_OK; i++) {
        struct cd_dup d = { h[i], NULL };
        if (h[i] != h[i - 1] || (i > 1 && h[i] == h[i - 2]))
            continue;
        rc = zipcd_read(ctx->store, want->key, want->size, dk,
                        (size_t)ctx->cfg->chunk_bytes, cd_dup_entry, &d, NULL,
                        err);
        free(d.first);
    }
    free(h);
    return rc;
}

/* Read the central directory of want (dk: sealed, else NULL) into cd. */
enum wk_code ua_cd_preread(const struct job *job, const struct job_ctx *ctx,
                           const struct mf_archive *want,
                           const struct seal_dk *dk, struct ua_cd *cd,
                           struct wk_err *err)
{
    struct zipcd_info info;
    enum wk_code rc;

    cd->max = want->file_count;
    cd->max_bytes = want->uncompressed_size;
    cd->ordered = true;
    rc = zipcd_read(ctx->store, want->key, want->size, dk,
                    (size_t)ctx->cfg->chunk_bytes, cd_entry, cd, &info, err);
    if (rc != WK_OK)
        return rc; /* (zipcd's messages name the archive) */
    cd->cd_offset = info.cd_offset;
    cd->zip_size = info.zip_size;
    rc = cd_unique(ctx, want, dk, cd, err);
    if (rc != WK_OK)
        return rc;
    WK_LOG(WK_LOG_INFO, "unarchive.directory_read", KV_STR("job_id", job->id),
           KV_STR("archive_key", want->key), KV_INT("entries", info.entries),
           KV_INT("ordered", cd->ordered), KV_INT("requests", info.requests));
    return WK_OK;
}

/* Start GETs on the free reads of the window, in offset order. */
static enum wk_code src_fill(struct ua_src *s, struct wk_err *err)
{
    if (!s->reads) {
        if (s->n_reads == 0 || s->read_bytes == 0)
            return wk_err_set(err, WK_E_INVAL, "archive '%s': no read window",
                              s->key);
        s->reads = calloc(s->n_reads, sizeof(*s->reads));
        if (!s->reads)
            return wk_err_set(err, WK_E_NOMEM, "out of memory");
        for (unsigned i = 0; i < s->n_reads; i++)
            wk_buf_init(&s->reads[i].buf, (size_t)s->read_bytes);
    }
    while (s->n_busy < s->n_reads && s->next < s->size) {
        enum wk_code rc;
        struct ua_read *rd = &s->reads[(s->head + s->n_busy) % s->n_reads];
        uint64_t len = s->size - s->next;
        if (rd == s->cur)
            break; /* still handed out: the window is full */
        if (len > s->read_bytes)
            len = s->read_bytes;
        wk_buf_reset(&rd->buf);
        /* its size at once: no growth (and copies) while it arrives */
        rc = wk_buf_reserve(&rd->buf, (size_t)len, err);
        if (rc != WK_OK)
            return rc;
        memset(&rd->g, 0, sizeof(rd->g));
        rd->g.key = s->key;
        rd->g.offset = s->next;
        rd->g.len = len;
        rd->g.out = &rd->buf;
        rd->etag[0] = '\0';
        rd->g.etag_out = rd->etag;
        wk_err_clear(&rd->err);
        rd->p = NULL;
        /* a store without asynchronous reads reads here: its outcome is
         * kept for when these bytes are due */
        rd->rc = store_get_start(s->st, &rd->g, 1, &rd->p, &rd->err);
        if (rd->rc != WK_OK && rd->p) {
            store_get_abandon(s->st, rd->p);
            rd->p = NULL;
        }
        rd->busy = true;
        s->next += len;
        s->n_busy++;
        s->n_started++;
    }
    return WK_OK;
}

enum wk_code ua_src_start(struct ua_src *s, struct wk_err *err)
{
    return src_fill(s, err);
}

/* The next stored bytes into s->cur, hashed; cur NULL at the end. */
static enum wk_code src_fetch(struct ua_src *s, struct wk_err *err)
{
    struct ua_read *rd;
    enum wk_code rc;

    s->cur = NULL; /* its bytes are consumed: the read is free again */
    if (s->off >= s->size)
        return WK_OK;
    rc = src_fill(s, err);
    if (rc != WK_OK)
        return rc;
    rd = &s->reads[s->head];
    if (!rd->busy)
        return wk_err_set(err, WK_E_INVAL, "archive '%s': read window lost",
                          s->key);
    rc = rd->rc;
    if (rd->p) {
        struct store_pending *p = rd->p;
        rd->p = NULL; /* (freed by get_finish whatever its outcome) */
        rc = store_get_finish(s->st, p, &rd->err);
    }
    rd->busy = false;
    s->head = (s->head + 1) % s->n_reads;
    s->n_busy--;
    if (rc != WK_OK) {
        wk_err_copy(err, &rd->err);
        return rc;
    }
    if (rd->g.offset != s->off || rd->buf.len != rd->g.len)
        return wk_err_set(err, WK_E_CORRUPT,
                          "archive '%s': short read at offset %llu", s->key,
                          (unsigned long long)s->off);
    store_sha256_update(s->hash, rd->buf.data, rd->buf.len);
    if (!s->etag[0] && s->off == 0)
        snprintf(s->etag, sizeof(s->etag), "%s", rd->etag);
    else if (strcmp(s->etag, rd->etag) != 0)
        s->etag_mixed = true;
    s->off += rd->buf.len;
    s->cur = rd;
    s->used = 0;
    /* the freed read goes out again at once, while these bytes are used */
    return src_fill(s, err);
}

void ua_src_close(struct ua_src *s)
{
    if (s->reads) {
        for (unsigned i = 0; i < s->n_reads; i++) {
            store_get_abandon(s->st, s->reads[i].p);
            wk_buf_release(&s->reads[i].buf);
        }
        free(s->reads);
    }
    s->reads = NULL;
    s->cur = NULL;
    s->n_busy = 0;
}

enum wk_code ua_src_read(void *ud, const void **p, size_t *n,
                         struct wk_err *err)
{
    struct ua_src *s = ud;
    enum wk_code rc;

    *p = NULL;
    *n = 0;
    if (!s->dec) {
        rc = src_fetch(s, err);
        if (rc == WK_OK && s->cur) {
            *p = s->cur->buf.data;
            *n = s->cur->buf.len;
        }
        return rc;
    }
    /* Sealed: hand out each chunk's plaintext once its tag checked. */
    for (;;) {
        size_t take;
        if (!s->cur || s->used == s->cur->buf.len) {
            if (s->off >= s->size) {
                s->cur = NULL;
                return seal_dec_final(s->dec, err);
            }
            rc = src_fetch(s, err);
            if (rc != WK_OK)
                return rc;
        }
        /* up to the next chunk boundary: opened where it lies */
        take = s->cur->buf.len - s->used;
        if (seal_dec_want(s->dec) && take > seal_dec_want(s->dec))
            take = seal_dec_want(s->dec); /* (0: extra bytes, refused) */
        wk_buf_reset(&s->plain);
        rc = seal_dec_update(s->dec, s->cur->buf.data + s->used, take,
                             &s->plain, err);
        if (rc != WK_OK) {
            wk_err_prefix(err, "archive '%s'", s->key);
            return rc;
        }
        s->used += take;
        if (s->plain.len > 0) {
            *p = s->plain.data;
            *n = s->plain.len;
            return WK_OK;
        }
    }
}
