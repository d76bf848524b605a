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
                             const char *const *etags, size_t from, size_t to,
                             struct wk_buf *body, struct wk_err *err)
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

static enum wk_code s3_delete(struct s3_store *st, const char *const *keys,
                              const char *const *etags, size_t n,
                              size_t *ndeleted, bool *kept, struct wk_err *err);

enum wk_code s3_store_delete_many(struct store *base, const char *const *keys,
                                  size_t n, size_t *ndeleted,
                                  struct wk_err *err)
{
    return s3_delete((struct s3_store *)base, keys, NULL, n, ndeleted, NULL,
                     err);
}

enum wk_code s3_store_delete_if(struct store *base, const char *const *keys,
                                const char *const *etags, size_t n,
                                size_t *ndeleted, bool *kept,
                                struct wk_err *err)
{
    for (size_t i = 0; i < n; i++)
        kept[i] = false;
    return s3_delete((struct s3_store *)base, keys, etags, n, ndeleted, kept,
                     err);
}

static enum wk_code s3_delete(struct s3_store *st, const char *const *keys,
                              const char *const *etags, size_t n,
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
            rc = del_body(st, keys, etags, from[w], to[w], &bodies[w], err);
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
