/* Batches of the S3 backend: GETs started together and finished later
 * (get_start/get_finish, get_many, with If-Match), PUTs run together
 * (put_many, If-None-Match), and the conditional PUT (put_if) with its
 * check for a retry that landed anyway. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/wk_log.h"
#include "storage/s3_int.h"

/* Batches: requests for the valid entries only, run together. */
struct batch {
    struct s3_req *reqs; /* owned, n entries */
    char **keys;         /* owned full keys */
    size_t *idx;         /* owned: the caller's index of each request */
    size_t n;
};

static void batch_release(struct batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        free(b->keys[i]);
    free(b->reqs);
    free(b->keys);
    free(b->idx);
    memset(b, 0, sizeof(*b));
}

static enum wk_code batch_alloc(struct batch *b, size_t n, const char *what,
                                struct wk_err *err)
{
    memset(b, 0, sizeof(*b));
    b->reqs = calloc(n ? n : 1, sizeof(*b->reqs));
    b->keys = calloc(n ? n : 1, sizeof(*b->keys));
    b->idx = calloc(n ? n : 1, sizeof(*b->idx));
    if (!b->reqs || !b->keys || !b->idx) {
        batch_release(b);
        return wk_err_set(err, WK_E_NOMEM, "%s of %zu objects: out of memory",
                          what, n);
    }
    return WK_OK;
}

/* Add key at caller index i; false (with e set) when the key is refused. */
static bool batch_add(struct s3_store *st, struct batch *b, const char *what,
                      const char *key, size_t i, struct wk_err *e)
{
    char *full;

    if (s3_store_check_key(what, key, e) != WK_OK)
        return false;
    full = s3_store_join_key(st, key);
    if (!full) {
        wk_err_set(e, WK_E_NOMEM, "%s '%s': out of memory", what, key);
        return false;
    }
    s3_req_init(&b->reqs[b->n]);
    b->reqs[b->n].key = full;
    b->keys[b->n] = full;
    b->idx[b->n] = i;
    b->n++;
    return true;
}

/* Drive started requests without waiting (store_pump). A failure of
 * libcurl itself shows in the requests when they are waited for. */
void s3_store_pump(struct store *base)
{
    struct s3_store *st = (struct s3_store *)base;
    struct wk_err e;
    wk_err_clear(&e);
    (void)s3_client_poll(st->cl, 0, NULL, &e);
}

/* A batch of GETs in flight (store_get_start). */
struct store_pending {
    struct batch b;
    struct s3_kv *hdrs;
    char (*quoted)[S3_ETAG_MAX + 3];
    struct store_get *reqs; /* borrowed, n entries */
    size_t n;
};

static void pending_free(struct s3_store *st, struct store_pending *p)
{
    if (!p)
        return;
    for (size_t k = 0; k < p->b.n; k++)
        s3_client_cancel(st->cl, &p->b.reqs[k]);
    batch_release(&p->b);
    free(p->hdrs);
    free(p->quoted);
    free(p);
}

enum wk_code s3_store_get_start(struct store *base, struct store_get *reqs,
                                size_t n, struct store_pending **out,
                                struct wk_err *err)
{
    struct s3_store *st = (struct s3_store *)base;
    struct store_pending *p = calloc(1, sizeof(*p));
    enum wk_code rc;

    *out = NULL;
    for (size_t i = 0; i < n; i++)
        wk_err_clear(&reqs[i].err);
    if (!p)
        return wk_err_set(err, WK_E_NOMEM, "get: out of memory");
    p->reqs = reqs;
    p->n = n;
    rc = batch_alloc(&p->b, n, "get", err);
    if (rc != WK_OK) {
        free(p);
        return rc;
    }
    p->hdrs = calloc(n ? n : 1, sizeof(*p->hdrs));
    p->quoted = calloc(n ? n : 1, sizeof(*p->quoted));
    if (!p->hdrs || !p->quoted) {
        pending_free(st, p);
        return wk_err_set(err, WK_E_NOMEM, "get: out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        struct store_get *g = &reqs[i];
        struct s3_req *r;
        if (!batch_add(st, &p->b, "get", g->key, i, &g->err))
            continue;
        r = &p->b.reqs[p->b.n - 1];
        if (g->if_match && g->if_match[0]) {
            snprintf(p->quoted[i], sizeof(p->quoted[i]), "\"%s\"", g->if_match);
            p->hdrs[i] = (struct s3_kv){ "If-Match", p->quoted[i] };
            r->headers = &p->hdrs[i];
            r->n_headers = 1;
        }
        if (g->len == 0) {
            r->method = "HEAD";
        } else {
            r->method = "GET";
            r->out = g->out;
            s3_store_set_range(r, g->offset, g->len);
        }
    }
    for (size_t k = 0; k < p->b.n; k++) {
        struct wk_err e;
        wk_err_clear(&e);
        /* a request that cannot start keeps its error in req.err */
        (void)s3_client_start(st->cl, &p->b.reqs[k], &e);
    }
    s3_store_pump(base); /* get them going */
    *out = p;
    return WK_OK;
}

enum wk_code s3_store_get_finish(struct store *base, struct store_pending *p,
                                 struct wk_err *err)
{
    struct s3_store *st = (struct s3_store *)base;

    for (size_t k = 0; k < p->b.n; k++) {
        struct s3_req *r = &p->b.reqs[k];
        struct store_get *g = &p->reqs[p->b.idx[k]];
        struct wk_err e;
        wk_err_clear(&e);
        if (r->xfer || r->done) /* (not started: its error is in r) */
            (void)s3_client_wait(st->cl, r, &e); /* outcome: in r */
        if (r->err.code != WK_OK && r->err.http_status == 412) {
            wk_err_set(&g->err, WK_E_CONFLICT,
                       "get '%s': changed since it was listed (ETag is no "
                       "longer %s)",
                       g->key, g->if_match);
        } else if (r->err.code != WK_OK) {
            wk_err_copy(&g->err, &r->err);
        } else if (g->len == 0) {
            if (!r->has_content_length || g->offset > r->content_length)
                wk_err_set(&g->err, WK_E_CONFLICT,
                           "get '%s': offset %llu is past the end of the "
                           "object",
                           g->key, (unsigned long long)g->offset);
        } else if (g->len != UINT64_MAX && r->received != g->len) {
            wk_err_set(&g->err, WK_E_CONFLICT,
                       "get '%s': got %llu of %llu bytes (object changed "
                       "or shorter than the range)",
                       g->key, (unsigned long long)r->received,
                       (unsigned long long)g->len);
        }
        if (g->etag_out && g->err.code == WK_OK)
            snprintf(g->etag_out, sizeof(((struct store_stat *)0)->etag), "%s",
                     r->etag);
    }
    for (size_t i = 0; i < p->n; i++)
        if (p->reqs[i].err.code != WK_OK) {
            enum wk_code rc = wk_err_copy(err, &p->reqs[i].err);
            pending_free(st, p);
            return rc;
        }
    pending_free(st, p);
    return WK_OK;
}

void s3_store_get_abandon(struct store *base, struct store_pending *p)
{
    pending_free((struct s3_store *)base, p);
}

enum wk_code s3_store_get_many(struct store *base, struct store_get *reqs,
                               size_t n, struct wk_err *err)
{
    struct store_pending *p = NULL;
    enum wk_code rc = s3_store_get_start(base, reqs, n, &p, err);

    if (rc != WK_OK)
        return rc;
    return s3_store_get_finish(base, p, err);
}

/* put */

static const struct s3_kv if_none_match = { "If-None-Match", "*" };

/* A batch of PUTs in flight (store_put_start). */
struct store_put_batch {
    struct batch b;
    struct store_put *reqs; /* borrowed, n entries */
    size_t n;
};

/* if_absent on a server without conditional PUT: a HEAD of each such key
 * first (all at once); one that exists has WK_E_CONFLICT and is not sent,
 * the others go as plain PUTs. A write landing between the HEAD and the
 * PUT is overwritten: the window PROTOCOL.md documents for such servers.
 * Sets *cond_put. Fails only when the features cannot be known. */
static enum wk_code absent_by_head(struct s3_store *st, struct store_put *reqs,
                                   size_t n, bool *cond_put, struct wk_err *err)
{
    struct batch hb;
    unsigned fl = 0;
    size_t nabs = 0;
    enum wk_code rc;

    *cond_put = true;
    for (size_t i = 0; i < n; i++)
        nabs += reqs[i].if_absent;
    if (nabs == 0)
        return WK_OK; /* (plain PUTs: no need to know) */
    rc = s3_store_features(st, &fl, err);
    if (rc != WK_OK)
        return rc;
    *cond_put = (fl & STORE_F_COND_PUT) != 0;
    if (*cond_put)
        return WK_OK;
    rc = batch_alloc(&hb, nabs, "head", err);
    if (rc != WK_OK)
        return rc;
    for (size_t i = 0; i < n; i++)
        if (reqs[i].if_absent &&
            batch_add(st, &hb, "head", reqs[i].key, i, &reqs[i].err))
            hb.reqs[hb.n - 1].method = "HEAD";
    (void)s3_client_run(st->cl, hb.reqs, hb.n, NULL); /* outcomes: below */
    for (size_t k = 0; k < hb.n; k++) {
        struct store_put *pr = &reqs[hb.idx[k]];
        const struct s3_req *r = &hb.reqs[k];
        if (r->err.code == WK_OK)
            wk_err_set(&pr->err, WK_E_CONFLICT, "put '%s': exists", pr->key);
        else if (r->err.code != WK_E_NOTFOUND)
            wk_err_copy(&pr->err, &r->err);
    }
    batch_release(&hb);
    return WK_OK;
}

enum wk_code s3_store_put_start(struct store *base, struct store_put *reqs,
                                size_t n, struct store_put_batch **out,
                                struct wk_err *err)
{
    struct s3_store *st = (struct s3_store *)base;
    struct store_put_batch *p = calloc(1, sizeof(*p));
    bool cond_put = true;
    enum wk_code rc;

    *out = NULL;
    for (size_t i = 0; i < n; i++) {
        wk_err_clear(&reqs[i].err);
        reqs[i].etag[0] = '\0';
    }
    if (!p)
        return wk_err_set(err, WK_E_NOMEM, "put: out of memory");
    rc = batch_alloc(&p->b, n, "put", err);
    if (rc != WK_OK) {
        free(p);
        return rc;
    }
    p->reqs = reqs;
    p->n = n;
    rc = absent_by_head(st, reqs, n, &cond_put, err);
    if (rc != WK_OK) {
        batch_release(&p->b);
        free(p);
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        struct s3_req *r;
        if (reqs[i].err.code != WK_OK) /* (present: absent_by_head) */
            continue;
        if (!batch_add(st, &p->b, "put", reqs[i].key, i, &reqs[i].err))
            continue;
        r = &p->b.reqs[p->b.n - 1];
        r->method = "PUT";
        r->body = reqs[i].data;
        r->body_len = reqs[i].len;
        if (reqs[i].if_absent && cond_put) {
            r->headers = &if_none_match;
            r->n_headers = 1;
        }
    }
    for (size_t k = 0; k < p->b.n; k++) {
        struct wk_err e;
        wk_err_clear(&e);
        /* a request that cannot start keeps its error in req.err */
        (void)s3_client_start(st->cl, &p->b.reqs[k], &e);
    }
    s3_store_pump(base); /* get them going */
    *out = p;
    return WK_OK;
}

enum wk_code s3_store_put_finish(struct store *base, struct store_put_batch *p,
                                 struct wk_err *err)
{
    struct s3_store *st = (struct s3_store *)base;
    enum wk_code rc = WK_OK;

    for (size_t k = 0; k < p->b.n; k++) {
        struct s3_req *r = &p->b.reqs[k];
        struct wk_err *e = &p->reqs[p->b.idx[k]].err;
        struct wk_err we;
        wk_err_clear(&we);
        if (r->xfer || r->done) /* (not started: its error is in r) */
            (void)s3_client_wait(st->cl, r, &we); /* outcome: in r */
        wk_err_copy(e, &r->err);
        if (e->code == WK_OK)
            snprintf(p->reqs[p->b.idx[k]].etag,
                     sizeof(p->reqs[p->b.idx[k]].etag), "%s", r->etag);
        if (p->reqs[p->b.idx[k]].if_absent && e->http_status == 412)
            e->code = WK_E_CONFLICT; /* the object exists */
    }
    for (size_t i = 0; i < p->n; i++)
        if (p->reqs[i].err.code != WK_OK) {
            rc = wk_err_copy(err, &p->reqs[i].err);
            break;
        }
    s3_store_put_abandon(base, p); /* (all done: frees) */
    return rc;
}

void s3_store_put_abandon(struct store *base, struct store_put_batch *p)
{
    struct s3_store *st = (struct s3_store *)base;

    if (!p)
        return;
    for (size_t k = 0; k < p->b.n; k++)
        s3_client_cancel(st->cl, &p->b.reqs[k]);
    batch_release(&p->b);
    free(p);
}

enum wk_code s3_store_put_many(struct store *base, struct store_put *reqs,
                               size_t n, struct wk_err *err)
{
    struct store_put_batch *p = NULL;
    enum wk_code rc = s3_store_put_start(base, reqs, n, &p, err);

    if (rc != WK_OK)
        return rc;
    return s3_store_put_finish(base, p, err);
}

enum wk_code s3_store_put(struct store *base, const char *key, const void *p,
                          size_t n, struct wk_err *err)
{
    struct store_put one = { key, p, n, { 0 }, false, { 0 } };
    return s3_store_put_many(base, &one, 1, err);
}

/* After a retried conditional PUT failed its precondition: does the key
 * hold exactly p[0..n) (what the first attempt sent)? Then its etag. */
static bool landed_anyway(struct store *base, const char *key, const void *p,
                          size_t n, char *etag_out, size_t etag_len)
{
    struct store_stat sb;
    struct store_get g;
    struct wk_buf cur;
    struct wk_err e;
    bool same;

    wk_err_clear(&e);
    wk_buf_init(&cur, n + 1);
    memset(&g, 0, sizeof(g));
    g.key = key;
    g.len = n;
    g.out = &cur;
    g.if_match = sb.etag; /* the bytes of the version the HEAD saw */
    same = store_head(base, key, &sb, &e) == WK_OK && sb.size == n &&
           (n == 0 || (store_get_many(base, &g, 1, &e) == WK_OK &&
                       cur.len == n && memcmp(cur.data, p, n) == 0));
    wk_buf_release(&cur);
    if (same && etag_out && etag_len)
        snprintf(etag_out, etag_len, "%s", sb.etag);
    return same;
}

enum wk_code s3_store_put_if(struct store *base, const char *key, const void *p,
                             size_t n, const char *if_match, char *etag_out,
                             size_t etag_len, struct wk_err *err)
{
    struct s3_store *st = (struct s3_store *)base;
    struct batch b;
    struct s3_kv hdr;
    char quoted[S3_ETAG_MAX + 3];
    struct wk_err one;
    unsigned attempts = 0;
    enum wk_code rc;

    if (!if_match)
        return s3_store_put(base, key, p, n, err);
    if (if_match[0]) {
        snprintf(quoted, sizeof(quoted), "\"%s\"", if_match);
        hdr.name = "If-Match";
        hdr.value = quoted;
    } else {
        hdr.name = "If-None-Match";
        hdr.value = "*";
    }
    wk_err_clear(&one);
    rc = batch_alloc(&b, 1, "put", err);
    if (rc != WK_OK)
        return rc;
    if (batch_add(st, &b, "put", key, 0, &one)) {
        struct s3_req *r = &b.reqs[0];
        r->method = "PUT";
        r->body = p;
        r->body_len = n;
        r->headers = &hdr;
        r->n_headers = 1;
        (void)s3_client_run(st->cl, b.reqs, b.n, NULL);
        wk_err_copy(&one, &b.reqs[0].err);
        attempts = b.reqs[0].attempts;
        if (one.code == WK_OK && etag_out && etag_len)
            snprintf(etag_out, etag_len, "%s", b.reqs[0].etag);
    }
    batch_release(&b);
    if ((one.code == WK_E_CONFLICT || one.http_status == 412) && attempts > 1 &&
        landed_anyway(base, key, p, n, etag_out, etag_len)) {
        /* an earlier attempt wrote it, but its reply was lost: the retry
         * found our own version in place */
        WK_LOG(WK_LOG_WARN, "s3.put_if.repeated",
               KV_STR("bucket", s3_client_bucket(st->cl)), KV_STR("key", key));
        return WK_OK;
    }
    if (one.code == WK_E_CONFLICT || one.http_status == 412)
        return wk_err_set(err, WK_E_CONFLICT,
                          "put '%s': precondition failed (changed by someone "
                          "else)",
                          key);
    return wk_err_copy(err, &one);
}

/* delete_many */