#include "jobs/job_unarchive.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/wk_fail.h"
#include "common/wk_log.h"
#include "common/wk_path.h"
#include "jobs/job_archive.h"
#include "jobs/job_int.h"
#include "jobs/manifest.h"
#include "jobs/progress.h"
#include "zip/zipcd.h"
#include "zip/zipr.h"
#include "storage/seal.h"
#include "storage/store.h"
#include "storage/store_hash.h"

#define UA_RATIO_MIN_BYTES (1u << 20)
#define UA_KEEP_BUF_BYTES  (256u * 1024u)

/* The archive, read in ranged GETs of chunk bytes and hashed in order (the
 * stored bytes); a sealed one is opened on the way, a chunk at a time. */
struct ua_src {
    struct store *st; /* borrowed */
    const char *key;  /* borrowed */
    uint64_t size, off;
    uint64_t chunk;
    struct wk_buf buf;
    struct store_sha256 *hash; /* owned */
    struct seal_dec *dec;      /* owned; NULL: a plain ZIP */
    size_t used;               /* bytes of buf already opened */
    struct wk_buf plain;       /* the plaintext of one chunk */
};

/* The central directory of the archive, read before the restore (zipcd):
 * per entry, in archive order, its uncompressed size and CRC-32, the
 * authority zipr holds each entry to (zipr_set_declared) instead of the
 * ratio limit. 12 bytes per entry; never more entries than the manifest's
 * fileCount, nor more declared bytes than its uncompressedSize (a directory
 * that says more is refused before anything is written). */
struct ua_cd {
    uint64_t *usize; /* owned */
    uint32_t *crc;   /* owned */
    size_t n, cap;
    uint64_t max;       /* entries allowed */
    uint64_t max_bytes; /* declared bytes allowed (uncompressedSize) */
    uint64_t bytes;     /* declared so far */
    uint64_t next_at;   /* local header offsets must grow */
    bool ordered;       /* entries in offset order: index i is entry i */
};

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
        cd->cap = ncap;
    }
    if (e->offset < cd->next_at)
        cd->ordered = false;
    cd->next_at = e->offset + 1;
    cd->usize[cd->n] = e->usize;
    cd->crc[cd->n] = e->crc;
    cd->n++;
    return WK_OK;
}

/* zipr's authority: entry i is central directory record i. */
static bool cd_declared(void *ud, uint64_t index, uint64_t *usize,
                        uint32_t *crc)
{
    const struct ua_cd *cd = ud;

    if (!cd->ordered || index >= cd->n)
        return false;
    *usize = cd->usize[index];
    *crc = cd->crc[index];
    return true;
}

static void cd_release(struct ua_cd *cd)
{
    free(cd->usize);
    free(cd->crc);
    memset(cd, 0, sizeof(*cd));
}

/* Read the central directory of want (dk: sealed, else NULL) into cd. */
static enum wk_code cd_preread(const struct job *job, const struct job_ctx *ctx,
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
    WK_LOG(WK_LOG_INFO, "unarchive.directory_read", KV_STR("job_id", job->id),
           KV_STR("archive_key", want->key), KV_INT("entries", info.entries),
           KV_INT("ordered", cd->ordered), KV_INT("requests", info.requests));
    return WK_OK;
}

struct ua_keys;
static bool keys_has(const struct ua_keys *k, const char *key);

/* A restored object waiting for its PUT. */
struct ua_put {
    char *key; /* owned */
    struct wk_buf data;
};

struct ua_run {
    const struct job *job;
    const struct job_ctx *ctx;
    char prefix[JOB_SPACE_ID_MAX + 16]; /* "active/<id>/" */
    char mf_key[JOB_SPACE_ID_MAX + 32];
    struct ua_src src;
    struct ua_put *pending; /* owned, window_objects slots */
    size_t n_pending;
    uint64_t pending_bytes;
    char **written; /* owned: keys restored so far (cleanup on failure) */
    size_t n_written, cap_written;
    const struct ua_keys *existing; /* borrowed: keys present before */
    size_t n_kept;                  /* entries skipped: key present */
    size_t n_user_kept;             /* of which written by a user while
                                       this restore ran (If-None-Match) */
    struct prog prog;
};

/* Does this run still own its job (job_ctx.fence)? Called right before
 * every write under active/, the cleanup and every manifest write;
 * WK_E_FENCED: stop, undo nothing (the successor owns the state). */
static enum wk_code fence(const struct job_ctx *ctx, const char *step,
                          struct wk_err *err)
{
    if (!ctx->fence)
        return WK_OK;
    return ctx->fence(ctx->fence_ud, step, err);
}

/* The next stored bytes into s->buf, hashed; nothing at the end. */
static enum wk_code src_fetch(struct ua_src *s, struct wk_err *err)
{
    struct store_get g;
    uint64_t len;
    enum wk_code rc;

    wk_buf_reset(&s->buf);
    if (s->off >= s->size)
        return WK_OK;
    len = s->size - s->off;
    if (len > s->chunk)
        len = s->chunk;
    memset(&g, 0, sizeof(g));
    g.key = s->key;
    g.offset = s->off;
    g.len = len;
    g.out = &s->buf;
    rc = store_get_many(s->st, &g, 1, err);
    if (rc != WK_OK)
        return rc;
    if (s->buf.len != len)
        return wk_err_set(err, WK_E_CORRUPT,
                          "archive '%s': short read at offset %llu", s->key,
                          (unsigned long long)s->off);
    store_sha256_update(s->hash, s->buf.data, s->buf.len);
    s->off += len;
    return WK_OK;
}

static enum wk_code src_read(void *ud, const void **p, size_t *n,
                             struct wk_err *err)
{
    struct ua_src *s = ud;
    enum wk_code rc;

    *p = NULL;
    *n = 0;
    if (!s->dec) {
        rc = src_fetch(s, err);
        *p = s->buf.data;
        *n = s->buf.len;
        return rc;
    }
    /* Sealed: hand out each chunk's plaintext once its tag checked. */
    for (;;) {
        size_t take;
        if (s->used == s->buf.len) {
            if (s->off >= s->size)
                return seal_dec_final(s->dec, err);
            rc = src_fetch(s, err);
            if (rc != WK_OK)
                return rc;
            s->used = 0;
        }
        /* up to the next chunk boundary: opened where it lies */
        take = s->buf.len - s->used;
        if (seal_dec_want(s->dec) && take > seal_dec_want(s->dec))
            take = seal_dec_want(s->dec); /* (0: extra bytes, refused) */
        wk_buf_reset(&s->plain);
        rc = seal_dec_update(s->dec, s->buf.data + s->used, take, &s->plain,
                             err);
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

static enum wk_code flush_pending(struct ua_run *r, struct wk_err *err)
{
    struct store_put *reqs;
    enum wk_code rc = WK_OK, first = WK_OK;

    if (r->n_pending == 0)
        return WK_OK;
    reqs = calloc(r->n_pending, sizeof(*reqs));
    if (!reqs)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    for (size_t i = 0; i < r->n_pending; i++) {
        reqs[i].key = r->pending[i].key;
        reqs[i].data = r->pending[i].data.data ? r->pending[i].data.data : "";
        reqs[i].len = r->pending[i].data.len;
        /* never over an object a user wrote since the listing */
        reqs[i].if_absent = true;
    }
    rc = fence(r->ctx, "unarchive.put", err);
    if (rc == WK_OK) {
        struct wk_err perr;
        bool any = false;
        wk_err_clear(&perr);
        if (store_put_many(r->ctx->store, reqs, r->n_pending, &perr) != WK_OK) {
            for (size_t i = 0; i < r->n_pending; i++)
                any = any || reqs[i].err.code != WK_OK;
            if (!any) /* the batch itself failed: nothing known written */
                rc = wk_err_copy(err, &perr);
        }
    }
    /* every PUT that went through is noted, so a failure cleans it up
     * (none was sent when the fence refused) */
    for (size_t i = 0; rc == WK_OK && i < r->n_pending; i++) {
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
            enum wk_code wrc = note_written(r, r->pending[i].key, err);
            if (nrc == WK_OK)
                nrc = wrc;
        }
        if (nrc != WK_OK && first == WK_OK)
            first = nrc;
    }
    if (rc == WK_OK)
        rc = first;
    for (size_t i = 0; i < r->n_pending; i++) {
        free(r->pending[i].key);
        r->pending[i].key = NULL;
        if (r->pending[i].data.cap > UA_KEEP_BUF_BYTES)
            wk_buf_release(&r->pending[i].data);
        else
            wk_buf_reset(&r->pending[i].data);
    }
    free(reqs);
    r->n_pending = 0;
    r->pending_bytes = 0;
    if (rc == WK_OK)
        wk_fail_point("unarchive.flushed");
    return rc;
}

/* Restore one entry: buffered for a batched PUT when it is small, else
 * streamed through a writer. */
static enum wk_code restore_entry(struct ua_run *r, struct zipr *zr,
                                  const struct zipr_entry *e,
                                  struct store_sha256 *cas, struct wk_err *err)
{
    const struct job_config *cfg = r->ctx->cfg;
    struct store_writer *w = NULL;
    struct ua_put *slot;
    char key[2048], want[65], got[65];
    bool check_cas = job_cas_name(e->name, want);
    bool keep;
    unsigned char chunk[16384];
    enum wk_code rc = WK_OK;

    if ((size_t)snprintf(key, sizeof(key), "%s%s", r->prefix, e->name) >=
        sizeof(key))
        return wk_err_set(err, WK_E_CORRUPT, "entry '%.80s...': name too long",
                          e->name);
    /* present already: read (and verify) the entry, write nothing */
    keep = r->existing && keys_has(r->existing, key);
    if (r->n_pending == cfg->window_objects) {
        rc = flush_pending(r, err);
        if (rc != WK_OK)
            return rc;
    }
    slot = &r->pending[r->n_pending];
    wk_buf_reset(&slot->data);
    store_sha256_reset(cas);
    for (;;) {
        size_t n = 0;
        if (r->ctx->cancel && *r->ctx->cancel) {
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
        rc = fence(r->ctx, "unarchive.put", err);
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
    if (r->pending_bytes >= cfg->window_bytes)
        rc = flush_pending(r, err);
out:
    store_writer_free(w);
    if (rc == WK_OK)
        r->prog.st.files_done++;
    return rc;
}

/* Delete what was restored (failure path); the space stays archived. */
static void cleanup_written(struct ua_run *r)
{
    size_t nd = 0;
    struct wk_err derr;

    if (r->n_written == 0)
        return;
    wk_err_clear(&derr);
    /* the successor may count these as restored (kept as present) */
    if (fence(r->ctx, "unarchive.cleanup", &derr) != WK_OK) {
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

/* Keys already under active/ (listed in key order, so sorted). */
struct ua_keys {
    char **v; /* owned */
    size_t n, cap;
};

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

/* Best effort: write m in state st (a repair or a revert); a failure is
 * logged, and leaves a state the next run handles. Noted in o when set. */
/* Write m in state st over the version etag names; m (in memory) says
 * what the store holds afterwards either way. */
/* After a failed manifest write whose outcome is unknown (reply lost,
 * retries ended in 503 or a timeout): read it back. *landed when it holds
 * m's state and generation (etag then names it); *known false when it
 * could not be read either. */
static void state_read_back(struct ua_run *r, const struct mf *m, char *etag,
                            size_t etag_len, bool *landed, bool *known)
{
    struct wk_buf b;
    struct wk_err e;
    struct store_stat mst;
    struct mf *cur = calloc(1, sizeof(*cur));

    *landed = false;
    *known = false;
    wk_buf_init(&b, 1u << 20);
    wk_err_clear(&e);
    if (cur && store_get_all(r->ctx->store, r->mf_key, &b, &e) == WK_OK) {
        /* one that does not parse is not ours either */
        *known = true;
        *landed = mf_parse(b.data, b.len, cur, &e) == WK_OK &&
                  cur->state == m->state && cur->generation == m->generation;
        wk_err_clear(&e);
        if (*landed && store_head(r->ctx->store, r->mf_key, &mst, &e) == WK_OK)
            snprintf(etag, etag_len, "%s", mst.etag);
        else if (*landed)
            *known = false; /* its version is unknown: no later write */
    }
    WK_LOG(WK_LOG_WARN, "unarchive.manifest_read_back",
           KV_STR("job_id", r->job->id), KV_STR("key", r->mf_key),
           KV_BOOL("landed", *landed), KV_BOOL("known", *known),
           KV_STR("msg", e.msg));
    wk_buf_release(&b);
    free(cur);
}

/* Write m in state st over the version etag names; m (in memory) says
 * what the store holds afterwards either way; *unknown (may be NULL) when
 * the outcome could not be settled (then nothing may be undone). */
static enum wk_code put_state(struct ua_run *r, struct mf *m, enum mf_state st,
                              char *etag, size_t etag_len, bool *unknown,
                              struct wk_err *err)
{
    enum mf_state was = m->state;
    enum wk_code rc;

    if (unknown)
        *unknown = false;
    rc = fence(r->ctx, "unarchive.manifest", err);
    if (rc != WK_OK)
        return rc;
    m->state = st;
    m->generation++;
    rc = job_mf_put(r->ctx->store, r->mf_key, m, etag, etag_len, err);
    if (rc != WK_OK && rc != WK_E_CONFLICT) {
        bool landed = false, known = false;
        state_read_back(r, m, etag, etag_len, &landed, &known);
        if (landed && known) {
            wk_err_clear(err);
            rc = WK_OK;
        } else if (!known && unknown) {
            *unknown = true;
        }
    }
    if (rc != WK_OK) {
        m->state = was;
        m->generation--;
    }
    return rc;
}

static void set_state(struct ua_run *r, struct mf *m, enum mf_state st,
                      char *etag, size_t etag_len, json_t *o)
{
    struct wk_err e;
    enum mf_state was = m->state;

    wk_err_clear(&e);
    if (put_state(r, m, st, etag, etag_len, NULL, &e) != WK_OK) {
        WK_LOG(WK_LOG_WARN, "unarchive.manifest_state_kept",
               KV_STR("job_id", r->job->id),
               KV_STR("space_id", r->job->space_id),
               KV_STR("state", mf_state_name(was)), KV_STR("msg", e.msg));
        return;
    }
    WK_LOG(WK_LOG_INFO, "unarchive.manifest_state",
           KV_STR("job_id", r->job->id), KV_STR("space_id", r->job->space_id),
           KV_STR("from", mf_state_name(was)), KV_STR("to", mf_state_name(st)));
    if (o)
        json_object_set_new(o, "repaired", json_string(mf_state_name(was)));
}

uint64_t job_unarchive_part_bytes(uint64_t entry_size, uint64_t configured)
{
    /* an entry of unknown size (a foreign archive without sizes) takes the
     * configured part size */
    return job_part_bytes(entry_size == UINT64_MAX ? 0 : entry_size,
                          configured);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

enum wk_code job_unarchive_run(const struct job *job, const struct job_ctx *ctx,
                               struct wk_buf *result, struct wk_err *err)
{
    const struct job_config *cfg = ctx->cfg;
    struct ua_run r;
    struct mf *m = NULL;
    struct mf_archive want;
    struct zipr *zr = NULL;
    struct zipr_limits lim;
    struct ua_cd cd;
    struct store_sha256 *cas = NULL;
    struct store_stat st;
    struct wk_buf mbuf;
    char sha[65];
    struct ua_keys existing = { NULL, 0, 0 };
    char mf_etag[80] = "";
    uint64_t nentries = 0;
    bool flipped = false, mf_unknown = false;
    int64_t t0 = mono_ms();
    enum wk_code rc;

    memset(&r, 0, sizeof(r));
    memset(&want, 0, sizeof(want));
    memset(&cd, 0, sizeof(cd));
    wk_buf_init(&mbuf, 1u << 20);
    r.job = job;
    r.ctx = ctx;
    prog_init(&r.prog, ctx->sink);
    wk_buf_init(&r.src.buf, cfg->chunk_bytes);

    if (!job_space_id_valid(job->space_id)) {
        rc = wk_err_set(err, WK_E_INVAL, "invalid spaceId");
        goto out;
    }
    snprintf(r.prefix, sizeof(r.prefix), "active/%s/", job->space_id);
    mf_key(job->space_id, r.mf_key, sizeof(r.mf_key));
    r.prog.st.phase = "reading manifest";
    prog_update(&r.prog, true);

    m = calloc(1, sizeof(*m));
    if (!m) {
        rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
        goto out;
    }
    {
        /* its version first: the flip is written only over this one */
        struct store_stat mst;
        struct wk_err herr;
        wk_err_clear(&herr);
        rc = store_head(ctx->store, r.mf_key, &mst, &herr);
        if (rc == WK_OK) {
            snprintf(mf_etag, sizeof(mf_etag), "%s", mst.etag);
        } else if (rc != WK_E_NOTFOUND) {
            wk_err_copy(err, &herr);
            goto out;
        }
    }
    rc = store_get_all(ctx->store, r.mf_key, &mbuf, err);
    if (rc == WK_E_NOTFOUND) {
        wk_err_clear(err);
        rc = wk_err_set(err, WK_E_NOTFOUND,
                        "space '%s' has no manifest '%s': nothing to restore",
                        job->space_id, r.mf_key);
        goto out;
    }
    if (rc == WK_OK)
        rc = mf_parse(mbuf.data, mbuf.len, m, err);
    if (rc != WK_OK)
        goto out;

    if (!mf_in_archive(m)) {
        if (job->archive_key[0]) {
            rc = wk_err_set(err, WK_E_INVAL,
                            "space '%s' is active: archive it before "
                            "restoring '%s'",
                            job->space_id, job->archive_key);
            goto out;
        }
        json_t *o = json_object();
        json_object_set_new(o, "noop", json_true());
        json_object_set_new(o, "reason", json_string("already active"));
        if (m->state == MF_ARCHIVING)
            set_state(&r, m, MF_ACTIVE, mf_etag, sizeof(mf_etag), o);
        rc = job_result_take(result, o, err);
        if (rc == WK_OK) {
            r.prog.st.phase = "done";
            r.prog.st.progress = 100;
            prog_update(&r.prog, true);
        }
        goto out;
    }

    /* Which archive: the current one, or one named from the history. */
    if (!mf_find_archive(m, job->archive_key, &want)) {
        rc = wk_err_set(err, WK_E_NOTFOUND,
                        "archive '%s' is not in the manifest of space "
                        "'%s' (current or history)",
                        job->archive_key, job->space_id);
        goto out;
    }

    /* One restore at a time per space: a restore that did not finish
     * (restoring) is finished first, never mixed with another archive's
     * files (a manifest without restoringArchive restores the current). */
    if (m->state == MF_RESTORING) {
        const char *was =
            m->restoring_archive[0] ? m->restoring_archive : m->archive_key;
        if (strcmp(was, want.key) != 0) {
            rc = wk_err_set(err, WK_E_CONFLICT,
                            "space '%s' is being restored from '%.100s': "
                            "finish that restore (run it again) before "
                            "restoring another archive",
                            job->space_id, was);
            goto out;
        }
    }
    snprintf(m->restoring_archive, sizeof(m->restoring_archive), "%s",
             want.key);

    /* Objects already under active/ are newer than the archive (written
     * after it was made) or were restored by an earlier run that died:
     * either way they are kept as they are, never overwritten. */
    rc = store_list(ctx->store, r.prefix, NULL, keys_cb, &existing, err);
    if (rc != WK_OK)
        goto out;
    if (existing.n > 1) /* qsort(NULL, 0, ...) is undefined */
        qsort(existing.v, existing.n, sizeof(*existing.v), cmp_str);
    r.existing = &existing;
    rc = store_head(ctx->store, want.key, &st, err);
    if (rc != WK_OK)
        goto out;
    if (st.size != want.size) {
        rc = wk_err_set(err, WK_E_CORRUPT,
                        "archive '%s' is %llu bytes, the manifest says %llu",
                        want.key, (unsigned long long)st.size,
                        (unsigned long long)want.size);
        goto out;
    }

    r.pending = calloc(cfg->window_objects, sizeof(*r.pending));
    if (!r.pending) {
        rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < cfg->window_objects; i++)
        wk_buf_init(&r.pending[i].data, cfg->chunk_bytes);
    r.src.st = ctx->store;
    r.src.key = want.key;
    r.src.size = want.size;
    r.src.chunk = cfg->chunk_bytes;
    if (want.enc.on) {
        /* opened before anything changes: without the key the space
         * simply stays archived */
        struct seal_dk dk;
        rc = mf_open_key(&want, job->space_id, ctx->keys, &dk, err);
        if (rc == WK_OK) {
            rc = seal_dec_new(&dk, want.size, &r.src.dec, err);
            if (rc == WK_OK)
                rc = cd_preread(job, ctx, &want, &dk, &cd, err);
            seal_dk_wipe(&dk);
        }
        if (rc != WK_OK) {
            if (rc != WK_E_INVAL) /* (INVAL names the archive's key) */
                wk_err_prefix(err, "archive '%s'", want.key);
            goto out;
        }
        wk_buf_init(&r.src.plain, want.enc.chunk_bytes);
    } else {
        rc = cd_preread(job, ctx, &want, NULL, &cd, err);
        if (rc != WK_OK)
            goto out;
    }
    rc = store_sha256_new(&r.src.hash, err);
    if (rc == WK_OK)
        rc = store_sha256_new(&cas, err);
    if (rc != WK_OK)
        goto out;
    lim.max_total_bytes = want.uncompressed_size;
    lim.max_entries = want.file_count;
    lim.max_ratio = cfg->max_ratio;
    lim.ratio_min_bytes = UA_RATIO_MIN_BYTES;
    rc = zipr_new(src_read, &r.src, &lim, &zr, err);
    if (rc != WK_OK)
        goto out;
    /* our own archive: its central directory, not the ratio, bounds it */
    zipr_set_declared(zr, cd_declared, &cd);

    if (m->state == MF_ARCHIVED) {
        /* Readers wait for "ready"; a run that dies from here on leaves
         * "restoring" and its retry carries on. */
        rc = put_state(&r, m, MF_RESTORING, mf_etag, sizeof(mf_etag),
                       &mf_unknown, err);
        if (rc != WK_OK)
            goto out;
    }

    r.prog.st.phase = "restoring";
    r.prog.st.bytes_total = want.uncompressed_size;
    r.prog.st.files_total = want.file_count;
    prog_update(&r.prog, true);
    WK_LOG(WK_LOG_INFO, "unarchive.started", KV_STR("job_id", job->id),
           KV_STR("space_id", job->space_id), KV_STR("archive_key", want.key),
           KV_INT("files", want.file_count),
           KV_INT("bytes", want.uncompressed_size));
    for (;;) {
        struct zipr_entry e;
        bool eof = false;
        rc = zipr_next(zr, &e, &eof, err);
        if (rc != WK_OK || eof)
            break;
        nentries++;
        rc = restore_entry(&r, zr, &e, cas, err);
        if (rc != WK_OK)
            break;
    }
    if (rc == WK_OK)
        rc = flush_pending(&r, err);
    if (rc != WK_OK)
        goto out;
    if (nentries != want.file_count) {
        rc = wk_err_set(err, WK_E_CORRUPT,
                        "archive '%s' has %llu entries, the manifest says "
                        "%llu",
                        want.key, (unsigned long long)nentries,
                        (unsigned long long)want.file_count);
        goto out;
    }
    /* The rest (central directory) still counts for the checksum. */
    for (;;) {
        const void *p;
        size_t n;
        rc = src_read(&r.src, &p, &n, err);
        if (rc != WK_OK || n == 0)
            break;
    }
    if (rc != WK_OK)
        goto out;
    store_sha256_final_hex(r.src.hash, sha);
    if (strcmp(sha, want.checksum) != 0) {
        rc = wk_err_set(err, WK_E_CORRUPT,
                        "archive '%s': SHA-256 %s does not match the "
                        "manifest's %s",
                        want.key, sha, want.checksum);
        goto out;
    }

    /* Everything verified: the space is active again. */
    r.prog.st.phase = "activating";
    prog_update(&r.prog, true);
    /* test failpoint: paused here, a successor may finish the restore */
    wk_fail_point("unarchive.before_flip");
    {
        time_t before = m->restored_at;
        m->restored_at = ctx->now ? ctx->now() : time(NULL);
        rc = put_state(&r, m, MF_ACTIVE, mf_etag, sizeof(mf_etag), &mf_unknown,
                       err);
        if (rc != WK_OK) {
            m->restored_at = before; /* still restoring: reverted below */
            goto out;
        }
    }
    flipped = true;
    {
        int64_t ms = mono_ms() - t0;
        json_t *o = json_object();
        json_object_set_new(o, "archiveKey", json_string(want.key));
        json_object_set_new(o, "restored",
                            json_integer((json_int_t)r.n_written));
        json_object_set_new(o, "kept", json_integer((json_int_t)r.n_kept));
        json_object_set_new(o, "keptUserWrites",
                            json_integer((json_int_t)r.n_user_kept));
        json_object_set_new(o, "bytes",
                            json_integer((json_int_t)zipr_total_bytes(zr)));
        json_object_set_new(o, "checksum", json_string(sha));
        json_object_set_new(o, "timeToReadyMs", json_integer(ms));
        rc = job_result_take(result, o, err);
        WK_LOG(WK_LOG_INFO, "unarchive.restored", KV_STR("job_id", job->id),
               KV_STR("space_id", job->space_id),
               KV_STR("archive_key", want.key), KV_INT("files", r.n_written),
               KV_INT("time_to_ready_ms", ms));
    }
    r.prog.st.phase = "done";
    r.prog.st.bytes_done = r.prog.st.bytes_total;
    r.prog.st.files_done = r.prog.st.files_total;
    prog_update(&r.prog, true);
out:
    /* Fenced: the successor owns what was written, nothing is undone. A
     * flip of unknown outcome may have made the space active: kept. */
    if (rc != WK_OK && rc != WK_E_FENCED && !flipped && !mf_unknown)
        cleanup_written(&r);
    if (rc != WK_OK && rc != WK_E_FENCED && !flipped && !mf_unknown && m &&
        m->state == MF_RESTORING &&
        rc != WK_E_CONFLICT) /* a conflict: someone else has it now */
        set_state(&r, m, MF_ARCHIVED, mf_etag, sizeof(mf_etag), NULL);
    zipr_free(zr);
    cd_release(&cd);
    store_sha256_free(cas);
    store_sha256_free(r.src.hash);
    seal_dec_free(r.src.dec);
    wk_buf_release(&r.src.plain);
    wk_buf_release(&r.src.buf);
    if (r.pending) {
        for (size_t i = 0; i < cfg->window_objects; i++) {
            free(r.pending[i].key);
            wk_buf_release(&r.pending[i].data);
        }
        free(r.pending);
    }
    for (size_t i = 0; i < r.n_written; i++)
        free(r.written[i]);
    free(r.written);
    for (size_t i = 0; i < existing.n; i++)
        free(existing.v[i]);
    free(existing.v);
    wk_buf_release(&mbuf);
    free(m);
    return rc;
}
