/* The S3 backend of struct store: the store itself (keys under its prefix,
 * the ops table, store_s3_new), listing, HEAD and the single streamed GET,
 * and presigning. Batched GETs and PUTs are in s3_batch.c, deletes in
 * s3_delete.c, pending uploads in s3_uploads.c and the multipart writer in
 * s3_mpu.c; they share storage/s3_int.h. Every operation is one or more
 * requests through s3_http's multi engine. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "storage/s3_features.h"
#include "storage/s3_int.h"
#include "storage/s3_xml.h"

enum wk_code s3_store_check_key(const char *what, const char *key,
                                struct wk_err *err)
{
    if (!key || !store_key_valid(key))
        return wk_err_set(err, WK_E_INVAL, "%s '%s': invalid key", what,
                          key ? key : "");
    return WK_OK;
}

char *s3_store_join_key(const struct s3_store *st, const char *key)
{
    size_t n = strlen(key);
    char *s = malloc(st->prefix_len + n + 1);

    if (!s)
        return NULL;
    memcpy(s, st->prefix, st->prefix_len);
    memcpy(s + st->prefix_len, key, n + 1);
    return s;
}

const char *s3_store_rel_key(const struct s3_store *st, const char *full)
{
    if (strncmp(full, st->prefix, st->prefix_len) != 0)
        return NULL;
    return full + st->prefix_len;
}

enum wk_code s3_store_run_one(struct s3_store *st, struct s3_req *req,
                              struct wk_err *err)
{
    enum wk_code rc = s3_client_start(st->cl, req, err);
    if (rc != WK_OK)
        return rc;
    return s3_client_wait(st->cl, req, err);
}

enum wk_code s3_store_get_page(struct s3_store *st, const struct s3_kv *q,
                               size_t nq, struct wk_buf *body,
                               struct wk_err *err)
{
    struct s3_req req;

    wk_buf_reset(body);
    s3_req_init(&req);
    req.method = "GET";
    req.query = q;
    req.n_query = nq;
    req.out = body;
    return s3_store_run_one(st, &req, err);
}

/* list */

/* One listing's callback and its start-after (relative, or NULL). */
struct s3_lister {
    store_list_cb cb;
    void *ud;
    const char *after;
};

static enum wk_code emit(struct s3_store *st, const char *full, uint64_t size,
                         int64_t mtime, const char *etag, bool is_prefix,
                         const struct s3_lister *ls, struct wk_err *err)
{
    struct store_entry e;

    e.key = s3_store_rel_key(st, full);
    if (!e.key)
        return wk_err_set(err, WK_E_CORRUPT,
                          "S3 listed '%s' outside the prefix '%s'", full,
                          st->prefix);
    /* S3 may give a common prefix at or before start-after (keys after it
     * roll up into it): not listed (store.h) */
    if (ls->after && strcmp(e.key, ls->after) <= 0)
        return WK_OK;
    e.size = size;
    e.mtime = mtime;
    e.etag = etag;
    e.is_prefix = is_prefix;
    return ls->cb(&e, ls->ud, err);
}

/* Objects and common prefixes of a page, merged in key order. */
static enum wk_code emit_page(struct s3_store *st, const struct s3_xml_list *l,
                              const struct s3_lister *ls, struct wk_err *err)
{
    size_t i = 0, j = 0;
    enum wk_code rc = WK_OK;

    while (rc == WK_OK && (i < l->n_objects || j < l->n_prefixes)) {
        bool obj =
            j >= l->n_prefixes ||
            (i < l->n_objects && strcmp(l->objects[i].key, l->prefixes[j]) < 0);
        if (obj) {
            const struct s3_xml_object *o = &l->objects[i++];
            rc = emit(st, o->key, o->size, o->mtime, o->etag, false, ls, err);
        } else {
            rc = emit(st, l->prefixes[j++], 0, 0, "", true, ls, err);
        }
    }
    return rc;
}

static enum wk_code s3_list_after(struct store *base, const char *prefix,
                                  const char *delimiter,
                                  const char *start_after, store_list_cb cb,
                                  void *ud, struct wk_err *err)
{
    struct s3_store *st = (struct s3_store *)base;
    struct s3_lister ls = { cb, ud, NULL };
    struct s3_xml_list page;
    struct wk_buf body;
    char *full = NULL, *token = NULL, *after = NULL;
    bool more = true;
    enum wk_code rc = WK_OK;

    memset(&page, 0, sizeof(page));
    wk_buf_init(&body, s3_client_max_small_body(st->cl));
    if (!prefix)
        prefix = "";
    if (delimiter && !*delimiter)
        delimiter = NULL;
    full = s3_store_join_key(st, prefix);
    if (start_after && *start_after) {
        ls.after = start_after;
        after = s3_store_join_key(st, start_after);
    }
    if (!full || (ls.after && !after)) {
        rc = wk_err_set(err, WK_E_NOMEM, "list '%s': out of memory", prefix);
        goto out;
    }
    while (more && rc == WK_OK) {
        struct s3_kv q[6];
        size_t nq = 0;

        q[nq++] = (struct s3_kv){ "list-type", "2" };
        q[nq++] = (struct s3_kv){ "encoding-type", "url" };
        if (full[0])
            q[nq++] = (struct s3_kv){ "prefix", full };
        if (delimiter)
            q[nq++] = (struct s3_kv){ "delimiter", delimiter };
        if (token)
            q[nq++] = (struct s3_kv){ "continuation-token", token };
        else if (after) /* the token carries on from where it started */
            q[nq++] = (struct s3_kv){ "start-after", after };
        rc = s3_store_get_page(st, q, nq, &body, err);
        if (rc == WK_OK)
            rc = s3_xml_parse_list(body.data, body.len, &page, err);
        if (rc != WK_OK) {
            wk_err_prefix(err, "list '%s'", prefix);
            break;
        }
        rc = emit_page(st, &page, &ls, err);
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
    free(after);
    free(full);
    wk_buf_release(&body);
    return rc;
}

static enum wk_code s3_list(struct store *base, const char *prefix,
                            const char *delimiter, store_list_cb cb, void *ud,
                            struct wk_err *err)
{
    return s3_list_after(base, prefix, delimiter, NULL, cb, ud, err);
}

/* head, get */

enum wk_code s3_store_head_full(struct s3_store *st, const char *full,
                                struct store_stat *out, struct wk_err *err)
{
    struct s3_req req;
    enum wk_code rc;

    s3_req_init(&req);
    req.method = "HEAD";
    req.key = full;
    rc = s3_store_run_one(st, &req, err);
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
    enum wk_code rc = s3_store_check_key("head", key, err);

    if (rc != WK_OK)
        return rc;
    full = s3_store_join_key(st, key);
    if (!full)
        return wk_err_set(err, WK_E_NOMEM, "head '%s': out of memory", key);
    rc = s3_store_head_full(st, full, out, err);
    free(full);
    return rc;
}

/* A zero-length read still has to find the object, and the offset must
 * lie inside it. */
static enum wk_code check_empty_range(struct s3_store *st, const char *full,
                                      uint64_t offset, struct wk_err *err)
{
    struct store_stat sb;
    enum wk_code rc = s3_store_head_full(st, full, &sb, err);

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

void s3_store_set_range(struct s3_req *req, uint64_t offset, uint64_t len)
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
    enum wk_code rc = s3_store_check_key("get", key, err);

    if (rc != WK_OK)
        return rc;
    full = s3_store_join_key(st, key);
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
    s3_store_set_range(&req, offset, len);
    wk_err_clear(&rerr);
    rc = s3_store_run_one(st, &req, &rerr);
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

static enum wk_code s3_presign(struct store *base, const char *key,
                               unsigned expires_s, struct wk_buf *url,
                               struct wk_err *err)
{
    struct s3_store *st = (struct s3_store *)base;
    char *full;
    enum wk_code rc = s3_store_check_key("presign", key, err);

    if (rc != WK_OK)
        return rc;
    full = s3_store_join_key(st, key);
    if (!full)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    rc = s3_client_presign(st->cl, full, expires_s, time(NULL), url, err);
    free(full);
    return rc;
}

static enum wk_code s3_features(struct store *base, unsigned *flags,
                                struct wk_err *err)
{
    return s3_store_features((struct s3_store *)base, flags, err);
}

static void s3_throttle(struct store *base, const atomic_uint *gate,
                        unsigned cap)
{
    s3_client_throttle(((struct s3_store *)base)->cl, gate, cap);
}

/* The store */

static void s3_free(struct store *base)
{
    struct s3_store *st = (struct s3_store *)base;

    s3_client_free(st->cl);
    free(st->prefix);
    free(st);
}

_Static_assert(S3_OP_N <= STORE_REQ_OPS_MAX, "store_requests too small");

/* The client's counters as store_requests: the operations used, in the
 * order of enum s3_op. */
static void s3_requests(const struct store *base, struct store_requests *out)
{
    const struct s3_store *st = (const struct s3_store *)base;
    struct s3_op_counts c;

    s3_client_counts(st->cl, &c);
    for (int op = 0; op < S3_OP_N; op++) {
        if (c.requests[op] == 0 || out->n_ops == STORE_REQ_OPS_MAX)
            continue;
        out->ops[out->n_ops].op = s3_op_name((enum s3_op)op);
        out->ops[out->n_ops].requests = c.requests[op];
        out->ops[out->n_ops].retries = c.retries[op];
        out->n_ops++;
        out->requests += c.requests[op];
        out->retries += c.retries[op];
    }
    out->bytes_in = c.bytes_received;
    out->bytes_out = c.bytes_sent;
}

static const struct store_ops s3_ops = {
    .name = "s3",
    .list = s3_list,
    .list_after = s3_list_after,
    .head = s3_head,
    .get = s3_get,
    .get_many = s3_store_get_many,
    .put = s3_store_put,
    .put_if = s3_store_put_if,
    .put_many = s3_store_put_many,
    .open_write = s3_store_open_write,
    .presign = s3_presign,
    .throttle = s3_throttle,
    .features = s3_features,
    .get_start = s3_store_get_start,
    .get_finish = s3_store_get_finish,
    .get_abandon = s3_store_get_abandon,
    .put_start = s3_store_put_start,
    .put_finish = s3_store_put_finish,
    .put_abandon = s3_store_put_abandon,
    .pump = s3_store_pump,
    .delete_many = s3_store_delete_many,
    .delete_if = s3_store_delete_if,
    .abort_pending = s3_store_abort_pending,
    .count_pending = s3_store_count_pending,
    .requests = s3_requests,
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
    {
        bool pinned = false;
        rc = s3f_parse(opts->s3_features, &pinned, &st->features, err);
        if (rc != WK_OK)
            goto out;
        st->features_pinned = pinned;
    }
    snprintf(st->cache_id, sizeof(st->cache_id), "%s|%s|%s", opts->endpoint,
             bucket ? bucket : "", st->prefix);
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
