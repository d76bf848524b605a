/* Deletes of the S3 backend: DeleteObjects (quiet) in requests of up to
 * S3_DELETE_BATCH keys, S3_DELETE_WINDOW of them at once, unconditional
 * (delete_many) or on each key's ETag (delete_if), with per-key results. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/s3_int.h"
#include "storage/s3_xml.h"

#define S3_DELETE_BATCH    1000
#define S3_DELETE_WINDOW   4 /* DeleteObjects requests at once */
#define S3_DELETE_BODY_MAX (8u << 20)

struct del_state {
    size_t first_idx; /* caller index of the first failing key */
    struct wk_err first;
    size_t ndeleted;
    const char *const *etags; /* borrowed; NULL: unconditional */
    bool *kept;               /* borrowed; with etags */
};

static void del_fail(struct del_state *ds, size_t idx, const struct wk_err *e)
{
    if (idx < ds->first_idx) {
        ds->first_idx = idx;
        ds->first = *e;
    }
}

static enum wk_code del_body(struct s3_store *st, const char *const *keys,
                             const char *const *etags, const char *const *vids,
                             size_t from, size_t to, struct wk_buf *body,
                             struct wk_err *err)
{
    enum wk_code rc =
        wk_buf_appends(body,
                       "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
                       "<Delete xmlns=\"" S3_XMLNS "\">"
                       "<Quiet>true</Quiet>",
                       err);
    for (size_t i = from; i < to && rc == WK_OK; i++) {
        if (!store_key_valid(keys[i]))
            continue;
        rc = wk_buf_appends(body, "<Object><Key>", err);
        if (rc == WK_OK)
            rc = s3_xml_escape(st->prefix, st->prefix_len, body, err);
        if (rc == WK_OK)
            rc = s3_xml_escape(keys[i], strlen(keys[i]), body, err);
        if (rc == WK_OK)
            rc = wk_buf_appends(body, "</Key>", err);
        if (rc == WK_OK && vids && vids[i] && vids[i][0]) {
            rc = wk_buf_appends(body, "<VersionId>", err);
            if (rc == WK_OK)
                rc = s3_xml_escape(vids[i], strlen(vids[i]), body, err);
            if (rc == WK_OK)
                rc = wk_buf_appends(body, "</VersionId>", err);
        }
        if (rc == WK_OK && etags && etags[i] && etags[i][0]) {
            rc = wk_buf_appends(body, "<ETag>&quot;", err);
            if (rc == WK_OK)
                rc = s3_xml_escape(etags[i], strlen(etags[i]), body, err);
            if (rc == WK_OK)
                rc = wk_buf_appends(body, "&quot;</ETag>", err);
        }
        if (rc == WK_OK)
            rc = wk_buf_appends(body, "</Object>", err);
    }
    if (rc == WK_OK)
        rc = wk_buf_appends(body, "</Delete>", err);
    return rc;
}

/* Results of one DeleteObjects reply for keys[from, to). */
static void del_result(struct s3_store *st, const char *const *keys,
                       size_t from, size_t to, const struct s3_req *req,
                       const struct wk_buf *out, struct del_state *ds)
{
    struct s3_xml_delete res;
    struct wk_err e;
    size_t nvalid = 0, first_valid = to;

    for (size_t i = from; i < to; i++)
        if (store_key_valid(keys[i])) {
            nvalid++;
            if (first_valid == to)
                first_valid = i;
        }
    if (nvalid == 0)
        return;
    wk_err_clear(&e);
    if (req->err.code != WK_OK) {
        e = req->err;
        wk_err_prefix(&e, "delete '%s' and %zu more", keys[first_valid],
                      nvalid - 1);
        del_fail(ds, first_valid, &e);
        return;
    }
    if (s3_xml_parse_delete(out->data, out->len, &res, &e) != WK_OK) {
        wk_err_prefix(&e, "delete '%s' and %zu more", keys[first_valid],
                      nvalid - 1);
        del_fail(ds, first_valid, &e);
        return;
    }
    ds->ndeleted += nvalid - (res.n_errors < nvalid ? res.n_errors : nvalid);
    for (size_t k = 0; k < res.n_errors; k++) {
        const struct s3_xml_delete_error *de = &res.errors[k];
        const char *rel = s3_store_rel_key(st, de->key);
        size_t idx = first_valid;
        for (size_t i = from; rel && i < to; i++)
            if (strcmp(keys[i], rel) == 0) {
                idx = i;
                break;
            }
        if (strcmp(de->code, "NoSuchKey") == 0) {
            ds->ndeleted++; /* gone already */
            continue;
        }
        if (ds->kept && strcmp(de->code, "PreconditionFailed") == 0 && rel &&
            strcmp(keys[idx], rel) == 0) {
            ds->kept[idx] = true; /* changed: kept, as asked */
            continue;
        }
        wk_err_clear(&e);
        wk_err_set(&e, WK_E_HTTP, "delete '%s': %s: %s", rel ? rel : de->key,
                   de->code, de->message);
        e.http_status = req->http_status;
        snprintf(e.s3_code, sizeof(e.s3_code), "%s", de->code);
        del_fail(ds, idx, &e);
    }
    s3_xml_delete_release(&res);
}

static size_t count_valid(const char *const *keys, size_t from, size_t to)
{
    size_t n = 0;
    for (size_t i = from; i < to; i++)
        n += store_key_valid(keys[i]);
    return n;
}

static enum wk_code delete_run(struct s3_store *st, const char *const *keys,
                               const char *const *etags,
                               const char *const *vids, size_t n,
                               size_t *ndeleted, bool *kept,
                               struct wk_err *err);

/* Versioned deletes (a versioned bucket without conditional deletes):
 * exactly the versions a caller archived are deleted, by VersionId, so a
 * write made since survives as the current version. */

struct vdel {
    const char *const *keys; /* the caller's, relative */
    const char *const *etags;
    size_t *order; /* indexes of keys[from..to) sorted by key */
    size_t n_order;
    /* the versions to delete: rel keys (borrowed from keys) + owned ids */
    const char **dkeys;
    char **dvids;
    size_t n_del, cap_del;
    bool *kept;
};

static const char *const *vdel_sort_keys; /* qsort has no user data */

static int vdel_cmp(const void *a, const void *b)
{
    return strcmp(vdel_sort_keys[*(const size_t *)a],
                  vdel_sort_keys[*(const size_t *)b]);
}

/* Index in keys of rel, or SIZE_MAX. */
static size_t vdel_find(const struct vdel *vd, const char *rel)
{
    size_t lo = 0, hi = vd->n_order;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(vd->keys[vd->order[mid]], rel);
        if (c == 0)
            return vd->order[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return SIZE_MAX;
}

static enum wk_code vdel_add(struct vdel *vd, size_t idx, const char *vid,
                             struct wk_err *err)
{
    if (vd->n_del == vd->cap_del) {
        size_t ncap = vd->cap_del ? vd->cap_del * 2 : 64;
        const char **k = realloc(vd->dkeys, ncap * sizeof(*k));
        char **v;
        if (!k)
            return wk_err_set(err, WK_E_NOMEM, "out of memory");
        vd->dkeys = k;
        v = realloc(vd->dvids, ncap * sizeof(*v));
        if (!v)
            return wk_err_set(err, WK_E_NOMEM, "out of memory");
        vd->dvids = v;
        vd->cap_del = ncap;
    }
    vd->dvids[vd->n_del] = strdup(vid);
    if (!vd->dvids[vd->n_del])
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    vd->dkeys[vd->n_del++] = vd->keys[idx];
    return WK_OK;
}

/* One version listing: under prefix, after marker (NULL: from the start),
 * until a key past stop; entries of key skip are ignored, and with only
 * set nothing but that key is looked at. */
static enum wk_code vdel_list(struct s3_store *st, struct vdel *vd,
                              const char *prefix, const char *marker,
                              const char *only, const char *skip,
                              const char *stop, struct wk_err *err)
{
    char *kmark = marker ? strdup(marker) : NULL, *vmark = NULL;
    struct wk_buf body;
    bool done = false;
    enum wk_code rc = WK_OK;

    if (marker && !kmark)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    wk_buf_init(&body, s3_client_max_small_body(st->cl));
    while (!done && rc == WK_OK) {
        struct s3_kv q[6];
        size_t nq = 0;
        struct s3_xml_versions page;
        q[nq++] = (struct s3_kv){ "versions", "" };
        q[nq++] = (struct s3_kv){ "prefix", prefix };
        q[nq++] = (struct s3_kv){ "max-keys", "1000" };
        q[nq++] = (struct s3_kv){ "encoding-type", "url" };
        if (kmark)
            q[nq++] = (struct s3_kv){ "key-marker", kmark };
        if (vmark)
            q[nq++] = (struct s3_kv){ "version-id-marker", vmark };
        rc = s3_store_get_page(st, q, nq, &body, err);
        if (rc == WK_OK)
            rc = s3_xml_parse_versions(body.data, body.len, &page, err);
        if (rc != WK_OK) {
            wk_err_prefix(err, "list versions under '%s'", prefix);
            break;
        }
        for (size_t i = 0; i < page.n_versions && rc == WK_OK; i++) {
            const struct s3_xml_version *v = &page.versions[i];
            const char *rel = s3_store_rel_key(st, v->key);
            size_t idx;
            bool any;
            if (strcmp(v->key, stop) > 0 || (only && strcmp(v->key, only))) {
                done = true;
                break;
            }
            if (skip && strcmp(v->key, skip) == 0)
                continue;
            idx = rel ? vdel_find(vd, rel) : SIZE_MAX;
            if (idx == SIZE_MAX)
                continue;
            any = !vd->etags || !vd->etags[idx] || !vd->etags[idx][0];
            if (v->delete_marker && !any)
                continue; /* (a delete marker: "" asks for every version) */
            if (any || strcmp(v->etag, vd->etags[idx]) == 0)
                rc = vdel_add(vd, idx, v->version_id, err);
            else if (v->is_latest)
                vd->kept[idx] = true; /* written since: its version stays */
        }
        if (rc == WK_OK && !done && page.is_truncated) {
            if (!page.next_key_marker) {
                rc = wk_err_set(err, WK_E_CORRUPT,
                                "S3 version listing under '%s' truncated "
                                "without a NextKeyMarker",
                                prefix);
            } else {
                free(kmark);
                free(vmark);
                kmark = page.next_key_marker;
                vmark = page.next_version_id_marker;
                page.next_key_marker = NULL;
                page.next_version_id_marker = NULL;
            }
        } else {
            done = true;
        }
        s3_xml_versions_release(&page);
    }
    wk_buf_release(&body);
    free(kmark);
    free(vmark);
    return rc;
}

/* The versions of the sorted keys vd->order (one chunk): those of the
 * smallest key by a listing of its own, then the rest after it (key-marker
 * = that key) under the chunk's common prefix, until past the largest.
 * Two listings, not one from the prefix's start (which may hold far more
 * keys), and the first key apart: some servers (moto) also drop the first
 * version after a key-marker and repeat the marker's own. */
static enum wk_code vdel_scan(struct s3_store *st, struct vdel *vd,
                              struct wk_err *err)
{
    const char *lo = vd->keys[vd->order[0]];
    const char *hi = vd->keys[vd->order[vd->n_order - 1]];
    size_t lcp = 0;
    char *prefix = NULL, *lo_full = NULL, *hi_full = NULL;
    enum wk_code rc = WK_OK;

    while (lo[lcp] && lo[lcp] == hi[lcp])
        lcp++;
    prefix = malloc(st->prefix_len + lcp + 1);
    lo_full = s3_store_join_key(st, lo);
    hi_full = s3_store_join_key(st, hi);
    if (!prefix || !lo_full || !hi_full) {
        rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
        goto out;
    }
    memcpy(prefix, st->prefix, st->prefix_len);
    memcpy(prefix + st->prefix_len, lo, lcp);
    prefix[st->prefix_len + lcp] = '\0';
    rc = vdel_list(st, vd, lo_full, NULL, lo_full, NULL, lo_full, err);
    if (rc == WK_OK && vd->n_order > 1)
        rc = vdel_list(st, vd, prefix, lo_full, NULL, lo_full, hi_full, err);
out:
    free(prefix);
    free(lo_full);
    free(hi_full);
    return rc;
}

static enum wk_code delete_versions(struct s3_store *st,
                                    const char *const *keys,
                                    const char *const *etags, size_t n,
                                    size_t *ndeleted, bool *kept,
                                    struct wk_err *err)
{
    struct vdel vd;
    size_t from = 0, nkept = 0;
    enum wk_code rc = WK_OK;

    *ndeleted = 0;
    memset(&vd, 0, sizeof(vd));
    vd.keys = keys;
    vd.etags = etags;
    vd.kept = kept;
    vd.order = calloc(n ? n : 1, sizeof(*vd.order));
    if (!vd.order)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    while (from < n && rc == WK_OK) {
        size_t to = n - from > S3_DELETE_BATCH ? from + S3_DELETE_BATCH : n;
        size_t nd = 0;
        vd.n_order = 0;
        for (size_t i = from; i < to; i++) {
            if (!store_key_valid(keys[i])) {
                rc = s3_store_check_key("delete", keys[i], err);
                break;
            }
            vd.order[vd.n_order++] = i;
        }
        if (rc != WK_OK || vd.n_order == 0)
            break;
        vdel_sort_keys = keys;
        qsort(vd.order, vd.n_order, sizeof(*vd.order), vdel_cmp);
        rc = vdel_scan(st, &vd, err);
        if (rc == WK_OK && vd.n_del)
            rc = delete_run(st, vd.dkeys, NULL, (const char *const *)vd.dvids,
                            vd.n_del, &nd, NULL, err);
        for (size_t i = 0; i < vd.n_del; i++)
            free(vd.dvids[i]);
        vd.n_del = 0;
        from = to;
    }
    for (size_t i = 0; i < n; i++)
        nkept += kept[i];
    if (rc == WK_OK)
        *ndeleted = n - nkept; /* missing keys count as deleted */
    free(vd.order);
    free(vd.dkeys);
    free(vd.dvids);
    return rc;
}

enum wk_code s3_store_delete_many(struct store *base, const char *const *keys,
                                  size_t n, size_t *ndeleted,
                                  struct wk_err *err)
{
    return s3_store_delete_etag((struct s3_store *)base, keys, NULL, n,
                                ndeleted, NULL, err);
}

enum wk_code s3_store_delete_if(struct store *base, const char *const *keys,
                                const char *const *etags, size_t n,
                                size_t *ndeleted, bool *kept,
                                struct wk_err *err)
{
    struct s3_store *st = (struct s3_store *)base;
    unsigned fl = 0;
    enum wk_code rc;

    for (size_t i = 0; i < n; i++)
        kept[i] = false;
    *ndeleted = 0;
    rc = s3_store_features(st, &fl, err);
    if (rc != WK_OK)
        return rc;
    if (!(fl & STORE_F_COND_DELETE) && (fl & STORE_F_VERSIONING))
        return delete_versions(st, keys, etags, n, ndeleted, kept, err);
    if (!(fl & STORE_F_COND_DELETE))
        /* an <ETag> the server would refuse (Swift: MalformedXML) or
         * ignore: unconditional, the window PROTOCOL.md documents */
        etags = NULL;
    return s3_store_delete_etag(st, keys, etags, n, ndeleted, kept, err);
}

enum wk_code s3_store_delete_etag(struct s3_store *st, const char *const *keys,
                                  const char *const *etags, size_t n,
                                  size_t *ndeleted, bool *kept,
                                  struct wk_err *err)
{
    return delete_run(st, keys, etags, NULL, n, ndeleted, kept, err);
}

static enum wk_code delete_run(struct s3_store *st, const char *const *keys,
                               const char *const *etags,
                               const char *const *vids, size_t n,
                               size_t *ndeleted, bool *kept, struct wk_err *err)
{
    struct s3_req reqs[S3_DELETE_WINDOW];
    struct wk_buf bodies[S3_DELETE_WINDOW], outs[S3_DELETE_WINDOW];
    size_t from[S3_DELETE_WINDOW], to[S3_DELETE_WINDOW];
    char md5[S3_DELETE_WINDOW][25];
    struct s3_kv hdrs[S3_DELETE_WINDOW][1];
    static const struct s3_kv query[] = { { "delete", "" } };
    struct del_state ds;
    size_t pos = 0;
    enum wk_code rc = WK_OK;

    memset(&ds, 0, sizeof(ds));
    ds.first_idx = SIZE_MAX;
    ds.etags = etags;
    ds.kept = kept;
    *ndeleted = 0;
    for (size_t w = 0; w < S3_DELETE_WINDOW; w++) {
        wk_buf_init(&bodies[w], S3_DELETE_BODY_MAX);
        wk_buf_init(&outs[w], s3_client_max_small_body(st->cl));
    }
    for (size_t i = 0; i < n; i++)
        if (!store_key_valid(keys[i])) {
            struct wk_err e;
            wk_err_clear(&e);
            s3_store_check_key("delete", keys[i], &e);
            del_fail(&ds, i, &e);
        }
    while (pos < n && rc == WK_OK) {
        size_t nreq = 0;
        /* up to S3_DELETE_WINDOW requests of up to S3_DELETE_BATCH keys */
        while (pos < n && nreq < S3_DELETE_WINDOW && rc == WK_OK) {
            size_t w = nreq;
            from[w] = pos;
            to[w] = n - pos > S3_DELETE_BATCH ? pos + S3_DELETE_BATCH : n;
            pos = to[w];
            if (count_valid(keys, from[w], to[w]) == 0)
                continue;
            wk_buf_reset(&bodies[w]);
            wk_buf_reset(&outs[w]);
            rc = del_body(st, keys, etags, vids, from[w], to[w], &bodies[w],
                          err);
            if (rc != WK_OK)
                break;
            s3_content_md5(bodies[w].data, bodies[w].len, md5[w]);
            hdrs[w][0] = (struct s3_kv){ "Content-MD5", md5[w] };
            s3_req_init(&reqs[w]);
            reqs[w].method = "POST";
            reqs[w].query = query;
            reqs[w].n_query = 1;
            reqs[w].headers = hdrs[w];
            reqs[w].n_headers = 1;
            reqs[w].body = bodies[w].data;
            reqs[w].body_len = bodies[w].len;
            reqs[w].out = &outs[w];
            nreq++;
        }
        if (rc != WK_OK)
            break;
        (void)s3_client_run(st->cl, reqs, nreq, NULL); /* outcomes: below */
        for (size_t w = 0; w < nreq; w++)
            del_result(st, keys, from[w], to[w], &reqs[w], &outs[w], &ds);
    }
    for (size_t w = 0; w < S3_DELETE_WINDOW; w++) {
        wk_buf_release(&bodies[w]);
        wk_buf_release(&outs[w]);
    }
    *ndeleted = ds.ndeleted;
    if (rc == WK_OK && ds.first_idx != SIZE_MAX)
        rc = wk_err_copy(err, &ds.first);
    return rc;
}
