/* The multipart writer of the S3 backend (store_open_write): buffers
 * part_bytes at a time and keeps up to parts_in_flight UploadPart requests
 * going while its caller writes; creates the upload on the first full part
 * (a small object is one plain PUT), completes it on commit and aborts it
 * when freed uncommitted (unless told to keep it). Resuming takes over an
 * upload id: ListParts, then parts whose size and MD5 match are not sent again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "common/wk_log.h"
#include "common/wk_parse.h"
#include "storage/s3_int.h"
#include "storage/s3_xml.h"

#define S3_MIN_PART_BYTES     (5ULL << 20)
#define S3_MAX_PART_BYTES     (5ULL << 30)
#define S3_MAX_PARTS          10000
#define S3_DEFAULT_PART_BYTES (8ULL << 20)
#define S3_DEFAULT_PARTS      4

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
    const volatile sig_atomic_t *keep_if; /* borrowed: keep, not abort */
};

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
    rc = s3_store_run_one(w->st, &req, &w->failed);
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
    wk_hex_encode(md, mdlen, hex);
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
        rc = s3_store_run_one(w->st, &req, err);
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
    if (s3_store_head_full(w->st, w->key, &sb, &e) != WK_OK)
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
        rc = s3_store_run_one(w->st, &req, &e);
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
        rc = s3_store_run_one(w->st, &req, &w->failed);
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
    if (!w->committed && w->upload_id && w->keep_if && *w->keep_if) {
        /* parts still in flight were cancelled above: the server holds
         * them or not, and the resuming writer's ListParts says which */
        WK_LOG(WK_LOG_INFO, "s3.upload.kept",
               KV_STR("bucket", s3_client_bucket(w->st->cl)),
               KV_STR("key", w->key), KV_INT("parts", w->n_numbers),
               KV_INT("reused", w->reused));
    } else if (!w->committed && w->upload_id) {
        struct wk_err e;
        wk_err_clear(&e);
        if (s3_store_abort_upload(w->st, w->key, w->upload_id, &e) != WK_OK)
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

enum wk_code s3_store_open_write(struct store *base, const char *key,
                                 const struct store_writer_opts *opts,
                                 struct store_writer **out, struct wk_err *err)
{
    struct s3_store *st = (struct s3_store *)base;
    struct s3_writer *w = NULL;
    uint64_t part_bytes = opts ? opts->part_bytes : S3_DEFAULT_PART_BYTES;
    unsigned n_slots = opts ? opts->parts_in_flight : S3_DEFAULT_PARTS;
    enum wk_code rc = s3_store_check_key("open write", key, err);

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
        w->key = s3_store_join_key(st, key);
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
        w->keep_if = opts->keep_if;
    }
    if (opts && opts->resume_upload_id && opts->resume_upload_id[0])
        w_resume(w, opts->resume_upload_id);
    *out = &w->base;
    return WK_OK;
}
