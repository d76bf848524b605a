/*
 * ua_want: paths clients want before the restore reaches them (read a blob
 * before complete, docs/PROTOCOL.md). Between entries, once the space is
 * ready, the restore takes up to PROG_WANT_BATCH paths from the sink (at
 * most every UA_WANT_POLL_MS), finds each in the central directory read
 * beforehand (a 64-bit hash of the name; the name itself is checked in the
 * local header), reads that entry alone with ranged GETs of [its offset,
 * the next entry's) (a sealed archive: the whole chunks around it, each
 * authenticated, storage/seal.h), verifies it through zipr against the
 * directory's size and CRC-32 (and a CAS blob against its name), PUTs it
 * with If-None-Match and answers (prog_served). A served entry's key joins
 * the run's existing keys: the in-order pass still reads and verifies its
 * bytes (the archive's SHA-256) but writes nothing; it counts as restored.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/wk_fail.h"
#include "common/wk_log.h"
#include "jobs/job_archive.h"
#include "jobs/job_int.h"
#include "jobs/job_unarchive.h"
#include "jobs/ua_int.h"
#include "storage/seal.h"
#include "storage/store.h"
#include "storage/store_hash.h"
#include "zip/zipr.h"

/* Bytes read past an entry's end: libarchive looks a little beyond a data
 * descriptor (the next record's signature), which the range then holds. */
#define WANT_SLACK_BYTES 64u
/* Largest GET of a wanted entry (less when chunk_bytes is smaller): what a
 * served entry costs in memory, besides its buffered bytes (at most
 * chunk_bytes, more goes through a writer): twice this, plus two sealed
 * chunks around each GET. */
#define WANT_GET_BYTES (1u << 20)

uint64_t ua_name_hash(const char *name, size_t len)
{
    uint64_t h = 14695981039346656037ull; /* FNV-1a, 64 bits */

    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)name[i];
        h *= 1099511628211ull;
    }
    return h;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool keys_has(const struct ua_keys *k, const char *key)
{
    return k && k->n && bsearch(&key, k->v, k->n, sizeof(*k->v), cmp_str);
}

/* Insert key into the sorted k (nothing when it is there already). */
static enum wk_code keys_insert(struct ua_keys *k, const char *key,
                                struct wk_err *err)
{
    size_t lo = 0, hi = k->n;
    char *dup;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(k->v[mid], key);
        if (c == 0)
            return WK_OK;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (k->n == k->cap) {
        size_t ncap = k->cap ? k->cap * 2 : 64;
        char **p = realloc(k->v, ncap * sizeof(*p));
        if (!p)
            return wk_err_set(err, WK_E_NOMEM, "out of memory");
        k->v = p;
        k->cap = ncap;
    }
    dup = strdup(key);
    if (!dup)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    memmove(k->v + lo + 1, k->v + lo, (k->n - lo) * sizeof(*k->v));
    k->v[lo] = dup;
    k->n++;
    return WK_OK;
}

static bool bit_get(const struct ua_want *w, size_t i)
{
    return w->served && (w->served[i / 8] >> (i % 8)) & 1u;
}

/* Where entry i ends: the next local header in offset order, or the
 * central directory. */
static uint64_t entry_end(const struct ua_cd *cd, size_t i)
{
    uint64_t end = cd->cd_offset;

    if (cd->ordered)
        return i + 1 < cd->n ? cd->off[i + 1] : end;
    for (size_t j = 0; j < cd->n; j++)
        if (cd->off[j] > cd->off[i] && cd->off[j] < end)
            end = cd->off[j];
    return end;
}

/* zipr's read callback over plain bytes [pos, end) of the archive, in GETs
 * of at most chunk bytes (sealed: the whole chunks around each). */
struct want_src {
    const struct ua_run *r;
    uint64_t pos, end, chunk;
    struct wk_buf raw;   /* stored bytes of a sealed range */
    struct wk_buf plain; /* what is handed out */
};

static enum wk_code want_read(void *ud, const void **p, size_t *n,
                              struct wk_err *err)
{
    struct want_src *s = ud;
    const struct ua_want *w = &s->r->want;
    struct store_get g;
    uint64_t len, p_off = s->pos;
    size_t skip = 0;
    enum wk_code rc;

    *p = NULL;
    *n = 0;
    if (s->pos >= s->end)
        return WK_OK;
    len = s->end - s->pos;
    if (len > s->chunk)
        len = s->chunk;
    memset(&g, 0, sizeof(g));
    g.key = w->archive_key;
    g.offset = s->pos;
    g.len = len;
    wk_buf_reset(&s->plain);
    g.out = &s->plain;
    if (w->sealed) {
        seal_range(w->cd->zip_size, w->dk->chunk_bytes, s->pos, len, &g.offset,
                   &g.len, &p_off);
        wk_buf_reset(&s->raw);
        g.out = &s->raw;
    }
    rc = store_get_many(s->r->ctx->store, &g, 1, err);
    if (rc == WK_OK && w->sealed)
        rc = seal_open_range(w->dk, w->cd->zip_size, g.offset, s->raw.data,
                             s->raw.len, &s->plain, err);
    if (rc != WK_OK)
        return rc;
    skip = (size_t)(s->pos - p_off);
    if (s->plain.len <= skip)
        return wk_err_set(err, WK_E_CORRUPT,
                          "archive '%s': short read at offset %llu",
                          w->archive_key, (unsigned long long)s->pos);
    *n = s->plain.len - skip;
    if (*n > len)
        *n = (size_t)len;
    *p = s->plain.data + skip;
    s->pos += *n;
    return WK_OK;
}

/* The directory's word on the one entry of a want_src (index 0 there). */
struct want_decl {
    uint64_t usize;
    uint32_t crc;
};

static bool want_declared(void *ud, uint64_t index, uint64_t *usize,
                          uint32_t *crc)
{
    const struct want_decl *d = ud;

    if (index != 0)
        return false;
    *usize = d->usize;
    *crc = d->crc;
    return true;
}

/* Write key from the verified bytes: one conditional PUT when they fit in
 * buf (w NULL), else the streamed writer's commit after a HEAD (as the
 * in-order pass does). *present: an object was there (a user's). */
static enum wk_code want_put(struct ua_run *r, const char *key,
                             struct wk_buf *buf, struct store_writer *w,
                             bool *present, struct wk_err *err)
{
    struct store_put req;
    struct store_stat sb;
    struct wk_err e;
    enum wk_code rc;

    *present = false;
    rc = job_fence(r->ctx, "unarchive.put", err);
    if (rc != WK_OK)
        return rc;
    wk_err_clear(&e);
    if (w) {
        rc = store_head(r->ctx->store, key, &sb, &e);
        if (rc == WK_OK) {
            *present = true;
            return WK_OK;
        }
        if (rc != WK_E_NOTFOUND)
            return wk_err_copy(err, &e);
        return store_writer_commit(w, err);
    }
    memset(&req, 0, sizeof(req));
    req.key = key;
    req.data = buf->data ? buf->data : "";
    req.len = buf->len;
    req.if_absent = true;
    rc = store_put_many(r->ctx->store, &req, 1, &e);
    if (req.err.code == WK_E_CONFLICT) {
        *present = true;
        return WK_OK;
    }
    if (rc != WK_OK)
        return wk_err_copy(err, req.err.code ? &req.err : &e);
    return WK_OK;
}

/* Read entry i alone, and when its name is path (*match), verify and write
 * it under key. */
static enum wk_code read_entry(struct ua_run *r, size_t i, const char *path,
                               const char *key, bool *match, struct wk_err *err)
{
    const struct job_config *cfg = r->ctx->cfg;
    const struct ua_cd *cd = r->want.cd;
    struct want_src src;
    struct want_decl decl = { cd->usize[i], cd->crc[i] };
    struct zipr_limits lim;
    struct zipr *zr = NULL;
    struct zipr_entry e;
    struct store_writer *w = NULL;
    struct store_sha256 *cas = NULL;
    struct wk_buf data;
    unsigned char chunk[16384];
    char want_sha[65], got[65];
    bool eof = false, present = false, check_cas;
    enum wk_code rc;

    *match = false;
    memset(&src, 0, sizeof(src));
    src.r = r;
    src.pos = cd->off[i];
    src.end = entry_end(cd, i) + WANT_SLACK_BYTES;
    if (src.end > cd->zip_size)
        src.end = cd->zip_size;
    src.chunk =
        cfg->chunk_bytes < WANT_GET_BYTES ? cfg->chunk_bytes : WANT_GET_BYTES;
    {
        /* sealed: the whole chunks around a GET, one more on each side */
        uint64_t cap = src.chunk + 64;
        if (r->want.sealed)
            cap += 2u * ((uint64_t)r->want.dk->chunk_bytes + SEAL_TAG_BYTES) +
                   SEAL_HEADER_BYTES;
        wk_buf_init(&src.raw, (size_t)cap);
        wk_buf_init(&src.plain, (size_t)cap);
    }
    wk_buf_init(&data, cfg->chunk_bytes);
    lim.max_total_bytes = decl.usize;
    lim.max_entries = 2;
    lim.max_ratio = cfg->max_ratio;
    lim.ratio_min_bytes = 1u << 20;
    rc = zipr_new(want_read, &src, &lim, &zr, err);
    if (rc != WK_OK)
        goto out;
    zipr_set_declared(zr, want_declared, &decl);
    rc = zipr_next(zr, &e, &eof, err);
    if (rc != WK_OK || eof || strcmp(e.name, path) != 0)
        goto out; /* (eof or another name: a hash that collided) */
    *match = true;
    check_cas = job_cas_name(e.name, want_sha);
    if (check_cas) {
        rc = store_sha256_new(&cas, err);
        if (rc != WK_OK)
            goto out;
    }
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
        if (cas)
            store_sha256_update(cas, chunk, n);
        if (!w && data.len + n > cfg->chunk_bytes) {
            struct store_writer_opts wo = {
                .part_bytes =
                    job_unarchive_part_bytes(decl.usize, cfg->part_bytes),
                .parts_in_flight = cfg->parts_in_flight
            };
            rc = store_open_write(r->ctx->store, key, &wo, &w, err);
            if (rc == WK_OK && data.len)
                rc = store_writer_write(w, data.data, data.len, err);
            wk_buf_reset(&data);
            if (rc != WK_OK)
                goto out;
        }
        rc = w ? store_writer_write(w, chunk, n, err)
               : wk_buf_append(&data, chunk, n, err);
        if (rc != WK_OK)
            goto out;
    }
    if (cas) {
        store_sha256_final_hex(cas, got);
        if (strcmp(got, want_sha) != 0) {
            rc = wk_err_set(err, WK_E_CORRUPT,
                            "entry '%s': content hashes to %s, not its name",
                            e.name, got);
            goto out;
        }
    }
    rc = want_put(r, key, &data, w, &present, err);
    if (rc != WK_OK)
        goto out;
    rc = keys_insert(r->want.keys, key, err);
    if (rc != WK_OK)
        goto out;
    r->want.served[i / 8] |= (unsigned char)(1u << (i % 8));
    if (present) {
        r->n_user_kept++; /* (the in-order pass counts it kept) */
        WK_LOG(WK_LOG_WARN, "unarchive.kept_user_write",
               KV_STR("job_id", r->job->id), KV_STR("key", key));
    } else {
        r->want.n_served_put++;
    }
out:
    if (rc != WK_OK && *match)
        wk_err_prefix(err, "wanted '%s'", path);
    store_writer_free(w);
    store_sha256_free(cas);
    zipr_free(zr);
    wk_buf_release(&data);
    wk_buf_release(&src.raw);
    wk_buf_release(&src.plain);
    return rc;
}

/* Answer one wanted path. */
static enum wk_code serve_one(struct ua_run *r, const char *path,
                              struct wk_err *err)
{
    struct ua_want *w = &r->want;
    const struct ua_cd *cd = w->cd;
    char key[2048], why[96];
    uint64_t h;
    int64_t t0 = mono_ms();
    enum wk_code rc = WK_OK;

    if (!zipr_name_valid(path, why, sizeof(why)) ||
        (size_t)snprintf(key, sizeof(key), "%s%s", r->prefix, path) >=
            sizeof(key)) {
        prog_served(&r->prog, path, false);
        return WK_OK;
    }
    h = ua_name_hash(path, strlen(path));
    for (size_t i = 0; i < cd->n; i++) {
        bool match = false;
        if (cd->hash[i] != h)
            continue;
        if (bit_get(w, i) || keys_has(w->keys, key))
            match = true; /* served, or present before the restore */
        if (!match && cd->ordered && i < w->next_index) {
            /* the in-order pass has it (buffered, perhaps) */
            struct store_stat sb;
            struct wk_err e;
            rc = ua_flush_pending(r, err);
            if (rc != WK_OK)
                return rc;
            wk_err_clear(&e);
            rc = store_head(r->ctx->store, key, &sb, &e);
            if (rc == WK_OK)
                match = true;
            else if (rc != WK_E_NOTFOUND)
                return wk_err_copy(err, &e);
            rc = WK_OK; /* gone since: read it again */
        }
        if (!match) {
            rc = read_entry(r, i, path, key, &match, err);
            if (rc != WK_OK)
                return rc;
        }
        if (match) {
            WK_LOG(WK_LOG_INFO, "unarchive.served",
                   KV_STR("job_id", r->job->id), KV_STR("path", path),
                   KV_BOOL("found", true), KV_INT("entry", i),
                   KV_INT("ms", mono_ms() - t0));
            prog_served(&r->prog, path, true);
            wk_fail_point("unarchive.served");
            return WK_OK;
        }
    }
    WK_LOG(WK_LOG_INFO, "unarchive.served", KV_STR("job_id", r->job->id),
           KV_STR("path", path), KV_BOOL("found", false));
    prog_served(&r->prog, path, false);
    return WK_OK;
}

enum wk_code ua_want_poll(struct ua_run *r, bool force, struct wk_err *err)
{
    struct ua_want *w = &r->want;
    char(*paths)[PROG_WANT_PATH_MAX + 1] = NULL;
    int64_t now;
    size_t n;
    enum wk_code rc = WK_OK;

    if (!w->ready || !w->cd || !r->ctx->sink)
        return WK_OK;
    now = mono_ms();
    if (!force && w->last_poll_ms && now - w->last_poll_ms < UA_WANT_POLL_MS)
        return WK_OK;
    w->last_poll_ms = now;
    if (!w->served) {
        w->served = calloc(w->cd->n / 8 + 1, 1);
        if (!w->served)
            return wk_err_set(err, WK_E_NOMEM, "out of memory");
    }
    paths = malloc(PROG_WANT_BATCH * sizeof(*paths));
    if (!paths)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    n = prog_wants(&r->prog, paths, PROG_WANT_BATCH);
    for (size_t i = 0; i < n && rc == WK_OK; i++) {
        paths[i][PROG_WANT_PATH_MAX] = '\0';
        rc = serve_one(r, paths[i], err);
    }
    free(paths);
    return rc;
}

void ua_want_release(struct ua_want *w)
{
    free(w->served);
    if (w->dk) {
        seal_dk_wipe(w->dk);
        free(w->dk);
    }
    memset(w, 0, sizeof(*w));
}
