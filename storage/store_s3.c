/* The S3 backend of struct store: every operation is one or more requests
 * through s3_http's multi engine; batches (get_many, put_many, deletes,
 * aborts) run up to max_in_flight at once, and the multipart writer keeps
 * up to parts_in_flight part uploads going while its caller writes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "common/wk_log.h"
#include "storage/s3_http.h"
#include "storage/s3_xml.h"
#include "storage/store.h"

#define S3_MIN_PART_BYTES     (5ULL << 20)
#define S3_MAX_PART_BYTES     (5ULL << 30)
#define S3_MAX_PARTS          10000
#define S3_DELETE_BATCH       1000
#define S3_DELETE_WINDOW      4 /* DeleteObjects requests at once */
#define S3_DELETE_BODY_MAX    (8u << 20)
#define S3_DEFAULT_PART_BYTES (8ULL << 20)
#define S3_DEFAULT_PARTS      4
#define S3_XMLNS              "http://s3.amazonaws.com/doc/2006-03-01/"

struct s3_store {
    struct store base;
    struct s3_client *cl; /* owned */
    char *prefix;         /* owned: "" or "dir/" */
    size_t prefix_len;
};

struct s3_part {
    char *buf; /* owned: part_bytes, allocated on first use */
    size_t len;
    bool busy; /* an upload of this buffer is started */
    unsigned number;
    char num[16];
    struct s3_kv query[2];
    struct s3_req req;
};

struct s3_writer {
    struct store_writer base;
    struct s3_store *st; /* borrowed: the store outlives its writers */
    char *key;           /* owned: full key */
    size_t part_bytes;
    unsigned n_slots;
    struct s3_part *slots;      /* owned: n_slots part buffers */
    struct s3_part *cur;        /* borrowed: the slot being filled, or NULL */
    char *upload_id;            /* owned; NULL until the upload is created */
    unsigned n_numbers;         /* part numbers handed out */
    char (*etags)[S3_ETAG_MAX]; /* owned: etags[n - 1] of part n */
    size_t etags_cap;
    uint64_t bytes;       /* bytes accepted */
    struct wk_err failed; /* first failure; later calls return it */
    bool committed;
    /* resuming: the parts the upload already had, by ascending number */
    struct s3_xml_part *known; /* owned, n_known entries */
    size_t n_known, known_at;  /* known_at: next one to compare */
    unsigned reused;           /* parts not sent again */
    void (*on_upload)(void *ud, const char *upload_id);
    void *on_upload_ud;
};

static enum wk_code check_key(const char *what, const char *key,
                              struct wk_err *err)
{
    if (!key || !store_key_valid(key))
        return wk_err_set(err, WK_E_INVAL, "%s '%s': invalid key", what,
                          key ? key : "");
    return WK_OK;
}

/* prefix + key as a new string (free()); NULL when out of memory. */
static char *join_key(const struct s3_store *st, const char *key)
{
    size_t n = strlen(key);
    char *s = malloc(st->prefix_len + n + 1);

    if (!s)
        return NULL;
    memcpy(s, st->prefix, st->prefix_len);
    memcpy(s + st->prefix_len, key, n + 1);
    return s;
}

/* The key relative to the store, or NULL when S3 sent one outside it. */
static const char *rel_key(const struct s3_store *st, const char *full)
{
    if (strncmp(full, st->prefix, st->prefix_len) != 0)
        return NULL;
    return full + st->prefix_len;
}

static enum wk_code run_one(struct s3_store *st, struct s3_req *req,
                            struct wk_err *err)
{
    enum wk_code rc = s3_client_start(st->cl, req, err);
    if (rc != WK_OK)
        return rc;
    return s3_client_wait(st->cl, req, err);
}

/* list */

static enum wk_code emit(struct s3_store *st, const char *full, uint64_t size,
                         int64_t mtime, const char *etag, bool is_prefix,
                         store_list_cb cb, void *ud, struct wk_err *err)
{
    struct store_entry e;

    e.key = rel_key(st, full);
    if (!e.key)
        return wk_err_set(err, WK_E_CORRUPT,
                          "S3 listed '%s' outside the prefix '%s'", full,
                          st->prefix);
    e.size = size;
    e.mtime = mtime;
    e.etag = etag;
    e.is_prefix = is_prefix;
    return cb(&e, ud, err);
}

/* Objects and common prefixes of a page, merged in key order. */
static enum wk_code emit_page(struct s3_store *st, const struct s3_xml_list *l,
                              store_list_cb cb, void *ud, struct wk_err *err)
{
    size_t i = 0, j = 0;
    enum wk_code rc = WK_OK;

    while (rc == WK_OK && (i < l->n_objects || j < l->n_prefixes)) {
        bool obj =
            j >= l->n_prefixes ||
            (i < l->n_objects && strcmp(l->objects[i].key, l->prefixes[j]) < 0);
        if (obj) {
            const struct s3_xml_object *o = &l->objects[i++];
            rc = emit(st, o->key, o->size, o->mtime, o->etag, false, cb, ud,
                      err);
        } else {
            rc = emit(st, l->prefixes[j++], 0, 0, "", true, cb, ud, err);
        }
    }
    return rc;
}

static enum wk_code s3_list(struct store *base, const char *prefix,
                            const char *delimiter, store_list_cb cb, void *ud,
                            struct wk_err *err)
{
    struct s3_store *st = (struct s3_store *)base;
    struct s3_xml_list page;
    struct wk_buf body;
    struct s3_req req;
    char *full = NULL, *token = NULL;
    bool more = true;
    enum wk_code rc = WK_OK;

    memset(&page, 0, sizeof(page));
    wk_buf_init(&body, s3_client_max_small_body(st->cl));
    if (!prefix)
        prefix = "";
    if (delimiter && !*delimiter)
        delimiter = NULL;
    full = join_key(st, prefix);
    if (!full) {
        rc = wk_err_set(err, WK_E_NOMEM, "list '%s': out of memory", prefix);
        goto out;
    }
    while (more && rc == WK_OK) {
        struct s3_kv q[5];
        size_t nq = 0;

        q[nq++] = (struct s3_kv){ "list-type", "2" };
        q[nq++] = (struct s3_kv){ "encoding-type", "url" };
        if (full[0])
            q[nq++] = (struct s3_kv){ "prefix", full };
        if (delimiter)
            q[nq++] = (struct s3_kv){ "delimiter", delimiter };
        if (token)
            q[nq++] = (struct s3_kv){ "continuation-token", token };
        wk_buf_reset(&body);
        s3_req_init(&req);
        req.method = "GET";
        req.query = q;
        req.n_query = nq;
        req.out = &body;
        rc = run_one(st, &req, err);
        if (rc == WK_OK)
            rc = s3_xml_parse_list(body.data, body.len, &page, err);
        if (rc != WK_OK) {
            wk_err_prefix(err, "list '%s'", prefix);
            break;
        }
        rc = emit_page(st, &page, cb, ud, err);
        free(token);
        token = page.next_token;
        page.next_token = NULL;
        more = page.is_truncated;
        s3_xml_list_release(&page);
        if (rc == WK_OK && more && !token)
            rc = wk_err_set(err, WK_E_CORRUPT,
                            "list '%s': truncated S3 listing without a "
                            "continuation token",
                            prefix);
    }
out:
    s3_xml_list_release(&page);
    free(token);
    free(full);
    wk_buf_release(&body);
    return rc;
}

/* head, get */

static enum wk_code head_full(struct s3_store *st, const char *full,
                              struct store_stat *out, struct wk_err *err)
{
    struct s3_req req;
    enum wk_code rc;

    s3_req_init(&req);
    req.method = "HEAD";
    req.key = full;
    rc = run_one(st, &req, err);
    if (rc != WK_OK)
        return rc;
    if (!req.has_content_length)
        return wk_err_set(err, WK_E_CORRUPT,
                          "HEAD '%s': reply without Content-Length", full);
    memset(out, 0, sizeof(*out));
    out->size = req.content_length;
    out->mtime = req.last_modified;
    snprintf(out->etag, sizeof(out->etag), "%s", req.etag);
    return WK_OK;
}

static enum wk_code s3_head(struct store *base, const char *key,
                            struct store_stat *out, struct wk_err *err)
{
    struct s3_store *st = (struct s3_store *)base;
    char *full = NULL;
    enum wk_code rc = check_key("head", key, err);

    if (rc != WK_OK)
        return rc;
    full = join_key(st, key);
    if (!full)
        return wk_err_set(err, WK_E_NOMEM, "head '%s': out of memory", key);
    rc = head_full(st, full, out, err);
    free(full);
    return rc;
}

/* A zero-length read still has to find the object, and the offset must
 * lie inside it. */
static enum wk_code check_empty_range(struct s3_store *st, const char *full,
                                      uint64_t offset, struct wk_err *err)
{
    struct store_stat sb;
    enum wk_code rc = head_full(st, full, &sb, err);

    if (rc == WK_OK && offset > sb.size)
        rc = wk_err_set(err, WK_E_CONFLICT,
                        "get '%s': offset %llu is past the end of the "
                        "object (%llu bytes)",
                        full, (unsigned long long)offset,
                        (unsigned long long)sb.size);
    return rc;
}

struct get_sink {
    store_sink_cb sink; /* borrowed */
    void *ud;
    uint64_t want; /* UINT64_MAX: unknown */
    uint64_t got;
    const char *key; /* borrowed */
};

static enum wk_code get_sink_cb(const void *p, size_t n, void *ud,
                                struct wk_err *err)
{
    struct get_sink *g = ud;

    if (g->want != UINT64_MAX && n > g->want - g->got)
        return wk_err_set(err, WK_E_CONFLICT,
                          "get '%s': more than the %llu bytes asked for",
                          g->key, (unsigned long long)g->want);
    g->got += n;
    return g->sink(p, n, g->ud, err);
}

static void set_range(struct s3_req *req, uint64_t offset, uint64_t len)
{
    if (offset == 0 && len == UINT64_MAX)
        return;
    req->ranged = true;
    req->range_off = offset;
    req->range_len = len;
}

static enum wk_code s3_get(struct store *base, const char *key, uint64_t offset,
                           uint64_t len, store_sink_cb sink, void *ud,
                           struct wk_err *err)
{
    struct s3_store *st = (struct s3_store *)base;
    struct get_sink g = { sink, ud, len, 0, key };
    struct s3_req req;
    struct wk_err rerr;
    char *full = NULL;
    enum wk_code rc = check_key("get", key, err);

    if (rc != WK_OK)
        return rc;
    full = join_key(st, key);
    if (!full)
        return wk_err_set(err, WK_E_NOMEM, "get '%s': out of memory", key);
    if (len == 0) {
        rc = check_empty_range(st, full, offset, err);
        goto out;
    }
    s3_req_init(&req);
    req.method = "GET";
    req.key = full;
    req.sink = get_sink_cb;
    req.sink_ud = &g;
    set_range(&req, offset, len);
    wk_err_clear(&rerr);
    rc = run_one(st, &req, &rerr);
    if (rc == WK_E_CONFLICT && req.http_status == 416 && len == UINT64_MAX) {
        /* "from offset to the end" with offset == size is empty, not an
         * error; S3 answers 416 for it */
        rc = check_empty_range(st, full, offset, err);
        goto out;
    }
    if (rc != WK_OK) {
        wk_err_copy(err, &rerr);
        goto out;
    }
    if (len != UINT64_MAX && g.got != len)
        rc =
            wk_err_set(err, WK_E_CONFLICT,
                       "get '%s': got %llu of %llu bytes (object changed "
                       "or shorter than the range)",
                       key, (unsigned long long)g.got, (unsigned long long)len);
out:
    free(full);
    return rc;
}

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

    if (check_key(what, key, e) != WK_OK)
        return false;
    full = join_key(st, key);
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
static void s3_pump(struct store *base)
{
    struct s3_store *st = (struct s3_store *)base;
    struct wk_err e;
    wk_err_clear(&e);
    (void)s3_client_poll(st->cl, 0, NULL, &e);
}

static enum wk_code s3_presign(struct store *base, const char *key,
                               unsigned expires_s, struct wk_buf *url,
                               struct wk_err *err)
{
    struct s3_store *st = (struct s3_store *)base;
    char *full;
    enum wk_code rc = check_key("presign", key, err);

    if (rc != WK_OK)
        return rc;
    full = join_key(st, key);
    if (!full)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    rc = s3_client_presign(st->cl, full, expires_s, time(NULL), url, err);
    free(full);
    return rc;
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

static enum wk_code s3_get_start(struct store *base, struct store_get *reqs,
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
            set_range(r, g->offset, g->len);
        }
    }
    for (size_t k = 0; k < p->b.n; k++) {
        struct wk_err e;
        wk_err_clear(&e);
        /* a request that cannot start keeps its error in req.err */
        (void)s3_client_start(st->cl, &p->b.reqs[k], &e);
    }
    s3_pump(base); /* get them going */
    *out = p;
    return WK_OK;
}

static enum wk_code s3_get_finish(struct store *base, struct store_pending *p,
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

static void s3_get_abandon(struct store *base, struct store_pending *p)
{
    pending_free((struct s3_store *)base, p);
}

static enum wk_code s3_get_many(struct store *base, struct store_get *reqs,
                                size_t n, struct wk_err *err)
{
    struct store_pending *p = NULL;
    enum wk_code rc = s3_get_start(base, reqs, n, &p, err);

    if (rc != WK_OK)
        return rc;
    return s3_get_finish(base, p, err);
}

/* put */

static enum wk_code s3_put_many(struct store *base, struct store_put *reqs,
                                size_t n, struct wk_err *err)
{
    struct s3_store *st = (struct s3_store *)base;
    struct s3_kv if_none_match = { "If-None-Match", "*" };
    struct batch b;
    enum wk_code rc;

    for (size_t i = 0; i < n; i++)
        wk_err_clear(&reqs[i].err);
    rc = batch_alloc(&b, n, "put", err);
    if (rc != WK_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        struct s3_req *r;
        if (!batch_add(st, &b, "put", reqs[i].key, i, &reqs[i].err))
            continue;
        r = &b.reqs[b.n - 1];
        r->method = "PUT";
        r->body = reqs[i].data;
        r->body_len = reqs[i].len;
        if (reqs[i].if_absent) {
            r->headers = &if_none_match;
            r->n_headers = 1;
        }
    }
    (void)s3_client_run(st->cl, b.reqs, b.n, NULL);
    for (size_t k = 0; k < b.n; k++) {
        struct wk_err *e = &reqs[b.idx[k]].err;
        wk_err_copy(e, &b.reqs[k].err);
        if (reqs[b.idx[k]].if_absent && e->http_status == 412)
            e->code = WK_E_CONFLICT; /* the object exists */
    }
    batch_release(&b);
    for (size_t i = 0; i < n; i++)
        if (reqs[i].err.code != WK_OK)
            return wk_err_copy(err, &reqs[i].err);
    return WK_OK;
}

static enum wk_code s3_put(struct store *base, const char *key, const void *p,
                           size_t n, struct wk_err *err)
{
    struct store_put one = { key, p, n, { 0 }, false };
    return s3_put_many(base, &one, 1, err);
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

static enum wk_code s3_put_if(struct store *base, const char *key,
                              const void *p, size_t n, const char *if_match,
                              char *etag_out, size_t etag_len,
                              struct wk_err *err)
{
    struct s3_store *st = (struct s3_store *)base;
    struct batch b;
    struct s3_kv hdr;
    char quoted[S3_ETAG_MAX + 3];
    struct wk_err one;
    unsigned attempts = 0;
    enum wk_code rc;

    if (!if_match)
        return s3_put(base, key, p, n, err);
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
        const char *rel = rel_key(st, de->key);
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

static enum wk_code s3_delete_many(struct store *base, const char *const *keys,
                                   size_t n, size_t *ndeleted,
                                   struct wk_err *err)
{
    return s3_delete((struct s3_store *)base, keys, NULL, n, ndeleted, NULL,
                     err);
}

static enum wk_code s3_delete_if(struct store *base, const char *const *keys,
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
            check_key("delete", keys[i], &e);
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

/* multipart uploads: abort_pending, count_pending */

static bool not_implemented(const struct wk_err *e)
{
    return e->http_status == 501 || strcmp(e->s3_code, "NotImplemented") == 0;
}

static enum wk_code abort_upload(struct s3_store *st, const char *full,
                                 const char *upload_id, struct wk_err *err)
{
    struct s3_kv q[1] = { { "uploadId", upload_id } };
    struct s3_req req;
    struct wk_err e;
    enum wk_code rc;

    s3_req_init(&req);
    req.method = "DELETE";
    req.key = full;
    req.query = q;
    req.n_query = 1;
    wk_err_clear(&e);
    rc = run_one(st, &req, &e);
    if (rc == WK_E_NOTFOUND)
        return WK_OK; /* already gone */
    if (rc != WK_OK && not_implemented(&e)) {
        WK_LOG(WK_LOG_INFO, "s3.upload.abort_unsupported",
               KV_STR("bucket", s3_client_bucket(st->cl)), KV_STR("key", full));
        return WK_OK;
    }
    return rc == WK_OK ? WK_OK : wk_err_copy(err, &e);
}

static enum wk_code scan_uploads(struct s3_store *st, const char *prefix,
                                 bool do_abort, size_t *count,
                                 struct wk_err *err)
{
    struct s3_xml_uploads page;
    struct wk_buf body;
    struct s3_req req;
    struct s3_req *aborts = NULL;
    struct s3_kv(*aq)[1] = NULL;
    char *full = NULL, *key_marker = NULL, *id_marker = NULL;
    bool more = true;
    enum wk_code rc = WK_OK;

    *count = 0;
    memset(&page, 0, sizeof(page));
    wk_buf_init(&body, s3_client_max_small_body(st->cl));
    full = join_key(st, prefix ? prefix : "");
    if (!full) {
        rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
        goto out;
    }
    while (more && rc == WK_OK) {
        struct s3_kv q[5];
        size_t nq = 0;
        struct wk_err e;

        q[nq++] = (struct s3_kv){ "uploads", "" };
        q[nq++] = (struct s3_kv){ "encoding-type", "url" };
        if (full[0])
            q[nq++] = (struct s3_kv){ "prefix", full };
        if (key_marker)
            q[nq++] = (struct s3_kv){ "key-marker", key_marker };
        if (id_marker)
            q[nq++] = (struct s3_kv){ "upload-id-marker", id_marker };
        wk_buf_reset(&body);
        s3_req_init(&req);
        req.method = "GET";
        req.query = q;
        req.n_query = nq;
        req.out = &body;
        wk_err_clear(&e);
        rc = run_one(st, &req, &e);
        if (rc != WK_OK && not_implemented(&e)) {
            WK_LOG(WK_LOG_INFO, "s3.uploads.unsupported",
                   KV_STR("bucket", s3_client_bucket(st->cl)),
                   KV_STR("prefix", full));
            *count = 0;
            rc = WK_OK;
            goto out;
        }
        if (rc == WK_OK)
            rc = s3_xml_parse_uploads(body.data, body.len, &page, &e);
        if (rc != WK_OK) {
            wk_err_copy(err, &e);
            wk_err_prefix(err, "list multipart uploads under '%s'",
                          prefix ? prefix : "");
            break;
        }
        *count += page.n_uploads;
        if (do_abort && page.n_uploads > 0) {
            aborts = calloc(page.n_uploads, sizeof(*aborts));
            aq = calloc(page.n_uploads, sizeof(*aq));
            if (!aborts || !aq) {
                rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
                break;
            }
            for (size_t i = 0; i < page.n_uploads; i++) {
                aq[i][0] =
                    (struct s3_kv){ "uploadId", page.uploads[i].upload_id };
                s3_req_init(&aborts[i]);
                aborts[i].method = "DELETE";
                aborts[i].key = page.uploads[i].key;
                aborts[i].query = aq[i];
                aborts[i].n_query = 1;
            }
            (void)s3_client_run(st->cl, aborts, page.n_uploads, NULL);
            for (size_t i = 0; i < page.n_uploads && rc == WK_OK; i++) {
                const struct wk_err *ae = &aborts[i].err;
                if (ae->code == WK_OK || ae->code == WK_E_NOTFOUND)
                    continue;
                rc = wk_err_copy(err, ae);
            }
            if (rc == WK_OK)
                WK_LOG(WK_LOG_INFO, "s3.uploads.aborted",
                       KV_STR("bucket", s3_client_bucket(st->cl)),
                       KV_STR("prefix", full), KV_INT("count", page.n_uploads));
            free(aborts);
            free(aq);
            aborts = NULL;
            aq = NULL;
        }
        more = page.is_truncated;
        free(key_marker);
        free(id_marker);
        key_marker = page.next_key_marker;
        id_marker = page.next_upload_id_marker;
        page.next_key_marker = page.next_upload_id_marker = NULL;
        s3_xml_uploads_release(&page);
        if (rc == WK_OK && more && !key_marker)
            rc = wk_err_set(err, WK_E_CORRUPT,
                            "truncated S3 upload listing without a marker");
    }
out:
    free(aborts);
    free(aq);
    s3_xml_uploads_release(&page);
    free(key_marker);
    free(id_marker);
    free(full);
    wk_buf_release(&body);
    return rc;
}

static enum wk_code s3_abort_pending(struct store *base, const char *prefix,
                                     size_t *naborted, struct wk_err *err)
{
    return scan_uploads((struct s3_store *)base, prefix, true, naborted, err);
}

static enum wk_code s3_count_pending(struct store *base, const char *prefix,
                                     size_t *npending, struct wk_err *err)
{
    return scan_uploads((struct s3_store *)base, prefix, false, npending, err);
}

/* The multipart writer */

static enum wk_code w_fail(struct s3_writer *w, struct wk_err *err)
{
    return wk_err_copy(err, &w->failed);
}

/* Collect finished part uploads (non-blocking). */
static void w_reap(struct s3_writer *w)
{
    for (unsigned i = 0; i < w->n_slots; i++) {
        struct s3_part *s = &w->slots[i];
        if (!s->busy || !s->req.done)
            continue;
        s3_client_cancel(w->st->cl, &s->req); /* leave the report queue */
        s->busy = false;
        if (s->req.err.code != WK_OK) {
            struct wk_err e = s->req.err;
            wk_err_prefix(&e, "upload part %u", s->number);
            wk_err_copy(&w->failed, &e);
        } else if (s->req.etag[0] == '\0') {
            wk_err_set(&w->failed, WK_E_CORRUPT,
                       "upload part %u of '%s': reply without an ETag",
                       s->number, w->key);
        } else {
            snprintf(w->etags[s->number - 1], S3_ETAG_MAX, "%s", s->req.etag);
            WK_LOG(WK_LOG_INFO, "s3.part.uploaded",
                   KV_STR("bucket", s3_client_bucket(w->st->cl)),
                   KV_STR("key", w->key), KV_INT("part", s->number),
                   KV_INT("bytes", s->len),
                   KV_INT("attempts", s->req.attempts));
        }
        s->len = 0;
    }
}

static unsigned w_busy(const struct s3_writer *w)
{
    unsigned n = 0;
    for (unsigned i = 0; i < w->n_slots; i++)
        n += w->slots[i].busy;
    return n;
}

/* Drive the uploads: one non-blocking pass, or (block) until a part
 * finishes. Parts that finished while someone else drove the client count:
 * then there is no wait at all. */
static enum wk_code w_drive(struct s3_writer *w, bool block)
{
    unsigned busy = w_busy(w);
    enum wk_code rc = WK_OK;

    w_reap(w);
    if (!block || w_busy(w) == busy)
        rc = s3_client_poll(w->st->cl, block ? -1 : 0, NULL, &w->failed);
    w_reap(w);
    return rc != WK_OK ? rc : w->failed.code;
}

static enum wk_code w_create(struct s3_writer *w)
{
    static const struct s3_kv q[] = { { "uploads", "" } };
    struct s3_req req;
    struct wk_buf body;
    enum wk_code rc;

    wk_buf_init(&body, s3_client_max_small_body(w->st->cl));
    s3_req_init(&req);
    req.method = "POST";
    req.key = w->key;
    req.query = q;
    req.n_query = 1;
    req.out = &body;
    rc = run_one(w->st, &req, &w->failed);
    if (rc == WK_OK)
        rc = s3_xml_parse_initiate(body.data, body.len, &w->upload_id,
                                   &w->failed);
    if (rc != WK_OK)
        wk_err_prefix(&w->failed, "create multipart upload");
    wk_buf_release(&body);
    if (rc == WK_OK) {
        WK_LOG(WK_LOG_INFO, "s3.upload.created",
               KV_STR("bucket", s3_client_bucket(w->st->cl)),
               KV_STR("key", w->key));
        if (w->on_upload)
            w->on_upload(w->on_upload_ud, w->upload_id);
    }
    return rc;
}

/* Resuming: does the upload hold part s already, the same bytes (size and
 * MD5, which is what a part's ETag is without SSE-KMS/SSE-C)? Then it is
 * taken as it is, not sent again. */
static bool w_reuse(struct s3_writer *w, struct s3_part *s)
{
    const struct s3_xml_part *k;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char hex[2 * EVP_MAX_MD_SIZE + 1];

    while (w->known_at < w->n_known && w->known[w->known_at].number < s->number)
        w->known_at++;
    if (w->known_at >= w->n_known)
        return false;
    k = &w->known[w->known_at];
    if (k->number != s->number || k->size != s->len)
        return false;
    if (EVP_Digest(s->buf, s->len, md, &mdlen, EVP_md5(), NULL) != 1)
        return false;
    for (unsigned i = 0; i < mdlen; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    if (strcmp(hex, k->etag) != 0)
        return false;
    snprintf(w->etags[s->number - 1], S3_ETAG_MAX, "%s", k->etag);
    w->reused++;
    s->len = 0;
    if (w->cur == s)
        w->cur = NULL;
    WK_LOG(WK_LOG_INFO, "s3.part.reused",
           KV_STR("bucket", s3_client_bucket(w->st->cl)), KV_STR("key", w->key),
           KV_INT("part", s->number), KV_INT("bytes", k->size));
    return true;
}

/* Resuming: the parts upload_id holds (ListParts, every page). */
static enum wk_code w_list_parts(struct s3_writer *w, struct wk_err *err)
{
    uint64_t marker = 0;
    enum wk_code rc = WK_OK;

    do {
        struct s3_kv q[2];
        char mk[24];
        struct s3_req req;
        struct wk_buf body;
        struct s3_xml_parts page;
        size_t nq = 0;

        q[nq++] = (struct s3_kv){ "uploadId", w->upload_id };
        if (marker) {
            snprintf(mk, sizeof(mk), "%llu", (unsigned long long)marker);
            q[nq++] = (struct s3_kv){ "part-number-marker", mk };
        }
        wk_buf_init(&body, s3_client_max_small_body(w->st->cl));
        s3_req_init(&req);
        req.method = "GET";
        req.key = w->key;
        req.query = q;
        req.n_query = nq;
        req.out = &body;
        rc = run_one(w->st, &req, err);
        if (rc == WK_OK)
            rc = s3_xml_parse_parts(body.data, body.len, &page, err);
        wk_buf_release(&body);
        if (rc != WK_OK)
            break;
        if (page.n_parts) {
            void *p = realloc(w->known,
                              (w->n_known + page.n_parts) * sizeof(*w->known));
            if (!p) {
                s3_xml_parts_release(&page);
                return wk_err_set(err, WK_E_NOMEM, "out of memory");
            }
            w->known = p;
            memcpy(w->known + w->n_known, page.parts,
                   page.n_parts * sizeof(*page.parts));
            w->n_known += page.n_parts;
        }
        marker = page.is_truncated && page.next_marker > marker
                     ? page.next_marker
                     : 0;
        s3_xml_parts_release(&page);
    } while (marker);
    return rc;
}

/* Start uploading slot s as the next part. */
static enum wk_code w_submit(struct s3_writer *w, struct s3_part *s)
{
    enum wk_code rc;

    if (w->n_numbers >= S3_MAX_PARTS)
        return wk_err_set(&w->failed, WK_E_LIMIT,
                          "write '%s': more than %d parts of %zu bytes", w->key,
                          S3_MAX_PARTS, w->part_bytes);
    if (!w->upload_id && (rc = w_create(w)) != WK_OK)
        return rc;
    if (w->n_numbers >= w->etags_cap) {
        size_t ncap = w->etags_cap ? w->etags_cap * 2 : 64;
        void *p = realloc(w->etags, ncap * sizeof(*w->etags));
        if (!p)
            return wk_err_set(&w->failed, WK_E_NOMEM, "out of memory");
        w->etags = p;
        w->etags_cap = ncap;
    }
    s->number = ++w->n_numbers;
    w->etags[s->number - 1][0] = '\0';
    if (w_reuse(w, s))
        return WK_OK;
    snprintf(s->num, sizeof(s->num), "%u", s->number);
    s->query[0] = (struct s3_kv){ "partNumber", s->num };
    s->query[1] = (struct s3_kv){ "uploadId", w->upload_id };
    s3_req_init(&s->req);
    s->req.method = "PUT";
    s->req.key = w->key;
    s->req.query = s->query;
    s->req.n_query = 2;
    s->req.body = s->buf;
    s->req.body_len = s->len;
    rc = s3_client_start(w->st->cl, &s->req, &w->failed);
    if (rc != WK_OK)
        return rc;
    s->busy = true;
    if (w->cur == s)
        w->cur = NULL;
    /* get it going now; later writes keep it moving */
    return w_drive(w, false);
}

/* A free slot to fill, waiting for an upload to finish if all are busy. */
static enum wk_code w_acquire(struct s3_writer *w)
{
    for (;;) {
        for (unsigned i = 0; i < w->n_slots; i++) {
            struct s3_part *s = &w->slots[i];
            if (s->busy)
                continue;
            if (!s->buf && !(s->buf = malloc(w->part_bytes)))
                return wk_err_set(&w->failed, WK_E_NOMEM,
                                  "write '%s': no memory for a part of %zu "
                                  "bytes",
                                  w->key, w->part_bytes);
            s->len = 0;
            w->cur = s;
            return WK_OK;
        }
        if (w_drive(w, true) != WK_OK)
            return w->failed.code ? w->failed.code : WK_E_INTERNAL;
    }
}

static enum wk_code s3w_write(struct store_writer *base, const void *p,
                              size_t n, struct wk_err *err)
{
    struct s3_writer *w = (struct s3_writer *)base;
    const char *src = p;

    if (w->committed)
        return wk_err_set(err, WK_E_INVAL, "write '%s': already committed",
                          w->key);
    if (w->failed.code != WK_OK)
        return w_fail(w, err);
    if (w_busy(w) > 0 && w_drive(w, false) != WK_OK)
        return w_fail(w, err);
    while (n > 0) {
        size_t take;
        if (w->cur && w->cur->len == w->part_bytes) {
            /* more data follows, so this full buffer is not the last part;
             * it must leave room for at least one more part number */
            if (w->n_numbers + 2 > S3_MAX_PARTS) {
                wk_err_set(&w->failed, WK_E_LIMIT,
                           "write '%s': more than %d parts of %zu bytes",
                           w->key, S3_MAX_PARTS, w->part_bytes);
                return w_fail(w, err);
            }
            if (w_submit(w, w->cur) != WK_OK)
                return w_fail(w, err);
        }
        if (!w->cur && w_acquire(w) != WK_OK)
            return w_fail(w, err);
        take = w->part_bytes - w->cur->len;
        if (take > n)
            take = n;
        memcpy(w->cur->buf + w->cur->len, src, take);
        w->cur->len += take;
        src += take;
        n -= take;
        w->bytes += take;
    }
    return WK_OK;
}

/* After a retried Complete answered NoSuchUpload: is the object there,
 * made of as many parts and bytes as we sent (ETag "<md5>-<parts>")? */
static bool completed_anyway(struct s3_writer *w)
{
    struct store_stat sb;
    struct wk_err e;
    char tail[16];
    size_t n, tn;

    wk_err_clear(&e);
    if (head_full(w->st, w->key, &sb, &e) != WK_OK)
        return false;
    snprintf(tail, sizeof(tail), "-%u", w->n_numbers);
    n = strlen(sb.etag);
    tn = strlen(tail);
    return n > tn && strcmp(sb.etag + n - tn, tail) == 0 && sb.size == w->bytes;
}

static enum wk_code w_complete(struct s3_writer *w)
{
    struct s3_kv q[1] = { { "uploadId", w->upload_id } };
    struct wk_buf body, out;
    struct s3_req req;
    struct wk_err e;
    char etag[S3_XML_ETAG_MAX];
    enum wk_code rc;

    wk_err_clear(&e);
    wk_buf_init(&body, (size_t)w->n_numbers * 160 + 256);
    wk_buf_init(&out, s3_client_max_small_body(w->st->cl));
    rc = wk_buf_appends(&body,
                        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
                        "<CompleteMultipartUpload xmlns=\"" S3_XMLNS "\">",
                        &e);
    for (unsigned i = 0; i < w->n_numbers && rc == WK_OK; i++) {
        rc = wk_buf_appendf(
            &body, &e, "<Part><PartNumber>%u</PartNumber><ETag>&quot;", i + 1);
        if (rc == WK_OK)
            rc = s3_xml_escape(w->etags[i], strlen(w->etags[i]), &body, &e);
        if (rc == WK_OK)
            rc = wk_buf_appends(&body, "&quot;</ETag></Part>", &e);
    }
    if (rc == WK_OK)
        rc = wk_buf_appends(&body, "</CompleteMultipartUpload>", &e);
    if (rc == WK_OK) {
        s3_req_init(&req);
        req.method = "POST";
        req.key = w->key;
        req.query = q;
        req.n_query = 1;
        req.body = body.data;
        req.body_len = body.len;
        req.out = &out;
        req.flags = S3_REQ_ERROR_IN_2XX;
        rc = run_one(w->st, &req, &e);
        if (rc == WK_E_NOTFOUND && req.attempts > 1 && completed_anyway(w)) {
            /* an earlier attempt completed it, but its reply was lost */
            WK_LOG(WK_LOG_WARN, "s3.upload.complete_repeated",
                   KV_STR("bucket", s3_client_bucket(w->st->cl)),
                   KV_STR("key", w->key), KV_INT("parts", w->n_numbers));
            rc = WK_OK;
            goto out;
        }
    }
    if (rc == WK_OK)
        rc = s3_xml_parse_complete(out.data, out.len, etag, &e);
    if (rc != WK_OK) {
        wk_err_prefix(&e, "complete multipart upload of %u parts",
                      w->n_numbers);
        wk_err_copy(&w->failed, &e);
    }
out:
    wk_buf_release(&body);
    wk_buf_release(&out);
    return rc;
}

static enum wk_code s3w_commit(struct store_writer *base, struct wk_err *err)
{
    struct s3_writer *w = (struct s3_writer *)base;
    struct s3_part *last = w->cur;
    enum wk_code rc;

    if (w->committed)
        return WK_OK;
    if (w->failed.code != WK_OK)
        return w_fail(w, err);
    if (!w->upload_id && w->n_numbers == 0) {
        /* it all fits in one part: a plain PUT is one request, not three */
        struct s3_req req;
        s3_req_init(&req);
        req.method = "PUT";
        req.key = w->key;
        req.body = last ? last->buf : "";
        req.body_len = last ? last->len : 0;
        rc = run_one(w->st, &req, &w->failed);
        if (rc != WK_OK)
            return w_fail(w, err);
        w->committed = true;
        return WK_OK;
    }
    if (last && last->len > 0 && w_submit(w, last) != WK_OK)
        return w_fail(w, err);
    while (w_busy(w) > 0)
        if (w_drive(w, true) != WK_OK)
            return w_fail(w, err);
    if (w_complete(w) != WK_OK)
        return w_fail(w, err);
    w->committed = true;
    WK_LOG(WK_LOG_INFO, "s3.upload.completed",
           KV_STR("bucket", s3_client_bucket(w->st->cl)), KV_STR("key", w->key),
           KV_INT("parts", w->n_numbers), KV_INT("reused", w->reused),
           KV_INT("bytes", w->bytes));
    return WK_OK;
}

static void s3w_free(struct store_writer *base)
{
    struct s3_writer *w = (struct s3_writer *)base;

    if (!w)
        return;
    for (unsigned i = 0; i < w->n_slots; i++) {
        if (w->slots[i].busy)
            s3_client_cancel(w->st->cl, &w->slots[i].req);
        free(w->slots[i].buf);
    }
    if (!w->committed && w->upload_id) {
        struct wk_err e;
        wk_err_clear(&e);
        if (abort_upload(w->st, w->key, w->upload_id, &e) != WK_OK)
            WK_LOG(WK_LOG_WARN, "s3.upload.abort_failed",
                   KV_STR("bucket", s3_client_bucket(w->st->cl)),
                   KV_STR("key", w->key), KV_STR("code", wk_code_name(e.code)),
                   KV_INT("http_status", e.http_status), KV_STR("msg", e.msg));
        else
            WK_LOG(WK_LOG_INFO, "s3.upload.aborted",
                   KV_STR("bucket", s3_client_bucket(w->st->cl)),
                   KV_STR("key", w->key), KV_INT("parts", w->n_numbers));
    }
    free(w->slots);
    free(w->etags);
    free(w->known);
    free(w->upload_id);
    free(w->key);
    free(w);
}

/* Take over upload_id (see store_writer_opts); anything amiss: a new
 * upload, and the old one is left to abort_pending. */
static void w_resume(struct s3_writer *w, const char *upload_id)
{
    struct wk_err e;

    wk_err_clear(&e);
    w->upload_id = strdup(upload_id);
    if (!w->upload_id)
        return;
    if (w_list_parts(w, &e) != WK_OK) {
        WK_LOG(WK_LOG_INFO, "s3.upload.not_resumed",
               KV_STR("bucket", s3_client_bucket(w->st->cl)),
               KV_STR("key", w->key), KV_STR("code", wk_code_name(e.code)),
               KV_STR("msg", e.msg));
        free(w->upload_id);
        w->upload_id = NULL;
        free(w->known);
        w->known = NULL;
        w->n_known = 0;
        return;
    }
    WK_LOG(WK_LOG_INFO, "s3.upload.resumed",
           KV_STR("bucket", s3_client_bucket(w->st->cl)), KV_STR("key", w->key),
           KV_INT("parts_there", w->n_known));
    if (w->on_upload)
        w->on_upload(w->on_upload_ud, w->upload_id);
}

static const struct store_writer_ops s3_writer_ops = {
    .name = "s3",
    .write = s3w_write,
    .commit = s3w_commit,
    .free = s3w_free,
};

static enum wk_code s3_open_write(struct store *base, const char *key,
                                  const struct store_writer_opts *opts,
                                  struct store_writer **out, struct wk_err *err)
{
    struct s3_store *st = (struct s3_store *)base;
    struct s3_writer *w = NULL;
    uint64_t part_bytes = opts ? opts->part_bytes : S3_DEFAULT_PART_BYTES;
    unsigned n_slots = opts ? opts->parts_in_flight : S3_DEFAULT_PARTS;
    enum wk_code rc = check_key("open write", key, err);

    *out = NULL;
    if (rc != WK_OK)
        return rc;
    if (part_bytes < S3_MIN_PART_BYTES || part_bytes > S3_MAX_PART_BYTES ||
        part_bytes > SIZE_MAX)
        return wk_err_set(err, WK_E_INVAL,
                          "open write '%s': part size of %llu bytes is "
                          "outside S3's 5 MiB to 5 GiB",
                          key, (unsigned long long)part_bytes);
    if (n_slots == 0)
        return wk_err_set(err, WK_E_INVAL,
                          "open write '%s': parts_in_flight must be >= 1", key);
    w = calloc(1, sizeof(*w));
    if (w)
        w->slots = calloc(n_slots, sizeof(*w->slots));
    if (w)
        w->key = join_key(st, key);
    if (!w || !w->slots || !w->key) {
        if (w) {
            free(w->slots);
            free(w->key);
        }
        free(w);
        return wk_err_set(err, WK_E_NOMEM, "open write '%s': out of memory",
                          key);
    }
    w->base.ops = &s3_writer_ops;
    w->st = st;
    w->part_bytes = (size_t)part_bytes;
    w->n_slots = n_slots;
    if (opts) {
        w->on_upload = opts->on_upload;
        w->on_upload_ud = opts->on_upload_ud;
    }
    if (opts && opts->resume_upload_id && opts->resume_upload_id[0])
        w_resume(w, opts->resume_upload_id);
    *out = &w->base;
    return WK_OK;
}

/* The store */

static void s3_free(struct store *base)
{
    struct s3_store *st = (struct s3_store *)base;

    s3_client_free(st->cl);
    free(st->prefix);
    free(st);
}

static const struct store_ops s3_ops = {
    .name = "s3",
    .list = s3_list,
    .head = s3_head,
    .get = s3_get,
    .get_many = s3_get_many,
    .put = s3_put,
    .put_if = s3_put_if,
    .put_many = s3_put_many,
    .open_write = s3_open_write,
    .presign = s3_presign,
    .get_start = s3_get_start,
    .get_finish = s3_get_finish,
    .get_abandon = s3_get_abandon,
    .pump = s3_pump,
    .delete_many = s3_delete_many,
    .delete_if = s3_delete_if,
    .abort_pending = s3_abort_pending,
    .count_pending = s3_count_pending,
    .free = s3_free,
};

enum wk_code store_s3_new(const char *bucket, const char *prefix,
                          const struct store_opts *opts, struct store **out,
                          struct wk_err *err)
{
    struct s3_store *st = NULL;
    size_t plen;
    enum wk_code rc = WK_OK;

    *out = NULL;
    if (!opts)
        return wk_err_set(err, WK_E_INVAL, "S3 store '%s': no options",
                          bucket ? bucket : "");
    if (!prefix)
        prefix = "";
    while (*prefix == '/')
        prefix++;
    plen = strlen(prefix);
    while (plen > 0 && prefix[plen - 1] == '/')
        plen--;
    st = calloc(1, sizeof(*st));
    if (st)
        st->prefix = malloc(plen + 2);
    if (!st || !st->prefix) {
        rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
        goto out;
    }
    memcpy(st->prefix, prefix, plen);
    st->prefix[plen] = '\0';
    if (plen > 0 && !store_key_valid(st->prefix)) {
        rc = wk_err_set(err, WK_E_INVAL, "S3 store prefix '%s' is invalid",
                        st->prefix);
        goto out;
    }
    if (plen > 0) {
        st->prefix[plen++] = '/';
        st->prefix[plen] = '\0';
    }
    st->prefix_len = plen;
    rc = s3_client_new(opts, bucket, &st->cl, err);
    if (rc != WK_OK)
        goto out;
    st->base.ops = &s3_ops;
    *out = &st->base;
    st = NULL;
out:
    if (st) {
        s3_client_free(st->cl);
        free(st->prefix);
        free(st);
    }
    return rc;
}
