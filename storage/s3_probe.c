/* s3_probe: the S3 feature set (storage/s3_features.h): the
 * SILA_S3_FEATURES syntax, the probe against a bucket and its cache (one
 * probe per process per endpoint, bucket and prefix). */
#include "storage/s3_features.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/wk_log.h"
#include "storage/s3_int.h"
#include "storage/s3_xml.h"

static const struct {
    unsigned flag;
    const char *name;
} s3f_names[] = {
    { STORE_F_COND_PUT, "cond-put" },
    { STORE_F_COND_DELETE, "cond-delete" },
    { STORE_F_VERSIONING, "versioning" },
    { STORE_F_PART_COPY, "part-copy" },
    { STORE_F_LIST_PARTS, "list-parts" },
    { STORE_F_DELETE_MD5, "delete-md5" },
};

#define S3F_N (sizeof(s3f_names) / sizeof(s3f_names[0]))

const char *s3f_name(unsigned flag)
{
    for (size_t i = 0; i < S3F_N; i++)
        if (s3f_names[i].flag == flag)
            return s3f_names[i].name;
    return NULL;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

enum wk_code s3f_parse(const char *s, bool *pinned, unsigned *out,
                       struct wk_err *err)
{
    unsigned flags = 0;
    const char *p = s;

    *pinned = false;
    *out = 0;
    while (p && is_space(*p))
        p++;
    if (!p || !*p || strcmp(p, "auto") == 0)
        return WK_OK;
    if (strcmp(p, "none") == 0) {
        *pinned = true;
        return WK_OK;
    }
    for (;;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        bool found = false;
        while (n > 0 && is_space(*p)) {
            p++;
            n--;
        }
        while (n > 0 && is_space(p[n - 1]))
            n--;
        for (size_t i = 0; i < S3F_N && n > 0; i++)
            if (strlen(s3f_names[i].name) == n &&
                memcmp(s3f_names[i].name, p, n) == 0) {
                flags |= s3f_names[i].flag;
                found = true;
            }
        if (!found)
            return wk_err_set(err, WK_E_INVAL,
                              "SILA_S3_FEATURES: unknown feature '%.*s' "
                              "(expected auto, none, or a comma list of "
                              "cond-put, cond-delete, versioning, part-copy, "
                              "list-parts, delete-md5)",
                              (int)(n > 64 ? 64 : n), p);
        if (!end)
            break;
        p = end + 1;
    }
    *pinned = true;
    *out = flags;
    return WK_OK;
}

void s3f_format(unsigned flags, char *buf, size_t len)
{
    size_t off = 0;

    if (!len)
        return;
    buf[0] = '\0';
    for (size_t i = 0; i < S3F_N; i++) {
        int w;
        if (!(flags & s3f_names[i].flag))
            continue;
        w = snprintf(buf + off, len - off, "%s%s", off ? "," : "",
                     s3f_names[i].name);
        if (w < 0 || (size_t)w >= len - off)
            return;
        off += (size_t)w;
    }
    if (off == 0)
        snprintf(buf, len, "none");
}

/* The probe */

#define PROBE_DIR "metadata/.sila-probe/"

/* A server that does not know a feature answers 501 NotImplemented, or a
 * 400 (MalformedXML, InvalidArgument, InvalidRequest); a 403 is a policy
 * that does not allow it. Anything else (network, 5xx after retries)
 * means the server could not be asked: the probe fails. */
static bool refused(const struct wk_err *e)
{
    return e->code == WK_E_HTTP &&
           (e->http_status == 501 || e->http_status == 400 ||
            e->http_status == 403 || e->http_status == 405);
}

static enum wk_code probe_put(struct s3_store *st, const char *full,
                              const char *hname, const char *hval,
                              struct wk_err *out)
{
    struct s3_req req;
    struct s3_kv hdr = { hname, hval };
    static const char body[] = "sila-archiver feature probe\n";

    s3_req_init(&req);
    req.method = "PUT";
    req.key = full;
    req.body = body;
    req.body_len = sizeof(body) - 1;
    if (hname) {
        req.headers = &hdr;
        req.n_headers = 1;
    }
    wk_err_clear(out);
    return s3_store_run_one(st, &req, out);
}

static enum wk_code probe_cond_put(struct s3_store *st, const char *full,
                                   unsigned *fl, struct wk_err *err)
{
    struct wk_err e;
    enum wk_code rc = probe_put(st, full, "If-None-Match", "*", &e);

    if (rc != WK_OK && !refused(&e))
        return wk_err_copy(err, &e);
    if (rc != WK_OK) /* not supported: write it plainly for what follows */
        return probe_put(st, full, NULL, NULL, err);
    /* it exists now: a second If-None-Match and a wrong If-Match must both
     * be refused with 412, else the server ignores them */
    rc = probe_put(st, full, "If-None-Match", "*", &e);
    if (rc == WK_OK)
        return WK_OK;
    if (e.code != WK_E_CONFLICT && !refused(&e))
        return wk_err_copy(err, &e);
    if (e.code != WK_E_CONFLICT)
        return WK_OK;
    rc = probe_put(st, full, "If-Match", "\"00000000000000000000000000000000\"",
                   &e);
    if (rc == WK_OK)
        return WK_OK; /* overwritten: If-Match ignored */
    if (e.code != WK_E_CONFLICT && !refused(&e))
        return wk_err_copy(err, &e);
    if (e.code == WK_E_CONFLICT)
        *fl |= STORE_F_COND_PUT;
    return WK_OK;
}

static enum wk_code probe_versioning(struct s3_store *st, unsigned *fl,
                                     struct wk_err *err)
{
    static const struct s3_kv q[] = { { "versioning", "" } };
    struct wk_buf body;
    struct wk_err e;
    enum wk_code rc;

    wk_buf_init(&body, 64u << 10);
    wk_err_clear(&e);
    rc = s3_store_get_page(st, q, 1, &body, &e);
    if (rc == WK_E_LIMIT) {
        /* a server that does not know ?versioning may answer with the
         * bucket's listing (s3rver): not versioned */
        rc = WK_OK;
        wk_buf_reset(&body);
    }
    if (rc == WK_OK) {
        const char *needle = "<Status>Enabled</Status>";
        size_t nl = strlen(needle);
        for (size_t i = 0; i + nl <= body.len; i++)
            if (memcmp(body.data + i, needle, nl) == 0) {
                *fl |= STORE_F_VERSIONING;
                break;
            }
    } else if (refused(&e)) {
        rc = WK_OK;
    } else {
        wk_err_copy(err, &e);
    }
    wk_buf_release(&body);
    return rc;
}

/* DeleteObjects with a wrong <ETag>: honoured when the object stays and
 * the reply says PreconditionFailed. A refused request (Swift:
 * MalformedXML) or a deleted object (ignored) means no. Leaves the object
 * in place (written again when it went). */
static enum wk_code probe_cond_delete(struct s3_store *st, const char *rel,
                                      const char *full, unsigned *fl,
                                      struct wk_err *err)
{
    const char *keys[1] = { rel };
    const char *etags[1] = { "00000000000000000000000000000000" };
    bool kept[1] = { false };
    size_t nd = 0;
    struct store_stat sb;
    struct wk_err e;
    enum wk_code rc;

    wk_err_clear(&e);
    rc = s3_store_delete_etag(st, keys, etags, 1, &nd, kept, &e);
    if (rc != WK_OK && !refused(&e))
        return wk_err_copy(err, &e);
    if (rc == WK_OK) /* (only a DeleteObjects that worked can be batched) */
        *fl |= STORE_F_DELETE_MD5;
    wk_err_clear(&e);
    rc = s3_store_head_full(st, full, &sb, &e);
    if (rc == WK_E_NOTFOUND) /* condition ignored: write it again */
        return probe_put(st, full, NULL, NULL, err);
    if (rc != WK_OK)
        return wk_err_copy(err, &e);
    if (kept[0])
        *fl |= STORE_F_COND_DELETE;
    return WK_OK;
}

/* CreateMultipartUpload, UploadPartCopy of the probe object, ListParts,
 * AbortMultipartUpload. */
static enum wk_code probe_parts(struct s3_store *st, const char *full,
                                unsigned *fl, struct wk_err *err)
{
    struct s3_req req;
    struct wk_buf body, src;
    struct wk_err e;
    char *upload_id = NULL;
    static const struct s3_kv q_up[] = { { "uploads", "" } };
    struct s3_kv q[2];
    struct s3_kv hdr;
    enum wk_code rc;

    wk_buf_init(&body, 1u << 20);
    wk_buf_init(&src, 4096);
    wk_err_clear(&e);
    s3_req_init(&req);
    req.method = "POST";
    req.key = full;
    req.query = q_up;
    req.n_query = 1;
    req.out = &body;
    rc = s3_store_run_one(st, &req, &e);
    if (rc == WK_OK)
        rc = s3_xml_parse_initiate(body.data, body.len, &upload_id, &e);
    if (rc != WK_OK) {
        if (refused(&e))
            rc = WK_OK; /* no multipart uploads at all: none of the two */
        else
            wk_err_copy(err, &e);
        goto out;
    }
    /* UploadPartCopy: x-amz-copy-source is /bucket/key, URL-encoded */
    rc = wk_buf_appends(&src, "/", err);
    if (rc == WK_OK)
        rc = s3_uri_encode(s3_client_bucket(st->cl),
                           strlen(s3_client_bucket(st->cl)), false, &src, err);
    if (rc == WK_OK)
        rc = wk_buf_appends(&src, "/", err);
    if (rc == WK_OK)
        rc = s3_uri_encode(full, strlen(full), true, &src, err);
    if (rc == WK_OK)
        rc = wk_buf_append(&src, "", 1, err);
    if (rc != WK_OK)
        goto abort;
    q[0] = (struct s3_kv){ "partNumber", "1" };
    q[1] = (struct s3_kv){ "uploadId", upload_id };
    hdr = (struct s3_kv){ "x-amz-copy-source", src.data };
    s3_req_init(&req);
    req.method = "PUT";
    req.key = full;
    req.query = q;
    req.n_query = 2;
    req.headers = &hdr;
    req.n_headers = 1;
    req.flags = S3_REQ_ERROR_IN_2XX;
    wk_buf_reset(&body);
    req.out = &body;
    wk_err_clear(&e);
    rc = s3_store_run_one(st, &req, &e);
    if (rc == WK_OK)
        *fl |= STORE_F_PART_COPY;
    else if (!refused(&e)) {
        wk_err_copy(err, &e);
        goto abort;
    }
    s3_req_init(&req);
    req.method = "GET";
    req.key = full;
    req.query = q + 1;
    req.n_query = 1;
    wk_buf_reset(&body);
    req.out = &body;
    wk_err_clear(&e);
    rc = s3_store_run_one(st, &req, &e);
    if (rc == WK_OK)
        *fl |= STORE_F_LIST_PARTS;
    else if (refused(&e))
        rc = WK_OK;
    else
        wk_err_copy(err, &e);
abort:
    s3_req_init(&req);
    req.method = "DELETE";
    req.key = full;
    req.query = q + 1;
    req.n_query = 1;
    wk_err_clear(&e);
    (void)s3_store_run_one(st, &req, &e); /* (a leftover is swept later) */
out:
    free(upload_id);
    wk_buf_release(&body);
    wk_buf_release(&src);
    return rc;
}

/* Remove the probe object, every version of it: with DeleteObjects (which
 * proves delete-md5 when the conditional one was refused), else with a
 * single DELETE. */
static enum wk_code probe_cleanup(struct s3_store *st, const char *rel,
                                  unsigned *flp, struct wk_err *err)
{
    const char *keys[1] = { rel };
    const char *etags[1] = { "" };
    bool kept[1];
    size_t nd;
    unsigned saved = st->features, fl = *flp;
    bool saved_known = st->features_known;
    enum wk_code rc;

    /* delete_if with an empty ETag on a versioned bucket removes every
     * version; elsewhere a plain delete */
    st->features = fl;
    st->features_known = true;
    rc = store_delete_if(&st->base, keys, etags, 1, &nd, kept, err);
    st->features = saved;
    st->features_known = saved_known;
    if (rc == WK_OK)
        *flp |= STORE_F_DELETE_MD5;
    if (rc != WK_OK && !(fl & STORE_F_DELETE_MD5)) {
        struct s3_req req;
        char *full = s3_store_join_key(st, rel);
        if (!full)
            return wk_err_set(err, WK_E_NOMEM, "out of memory");
        wk_err_clear(err);
        s3_req_init(&req);
        req.method = "DELETE";
        req.key = full;
        rc = s3_store_run_one(st, &req, err);
        free(full);
    }
    return rc;
}

enum wk_code s3f_probe(struct s3_store *st, unsigned *flags, struct wk_err *err)
{
    char rel[160], host[64] = "host";
    char *full = NULL;
    unsigned fl = 0;
    struct timespec ts;
    enum wk_code rc;

    *flags = 0;
    (void)gethostname(host, sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    for (char *c = host; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
              (*c >= '0' && *c <= '9') || *c == '-' || *c == '.'))
            *c = '_';
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(rel, sizeof(rel), PROBE_DIR "%s-%ld-%lld%09ld", host,
             (long)getpid(), (long long)ts.tv_sec, ts.tv_nsec);
    full = s3_store_join_key(st, rel);
    if (!full)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    rc = probe_cond_put(st, full, &fl, err);
    if (rc == WK_OK)
        rc = probe_versioning(st, &fl, err);
    if (rc == WK_OK)
        rc = probe_cond_delete(st, rel, full, &fl, err);
    if (rc == WK_OK)
        rc = probe_parts(st, full, &fl, err);
    if (rc == WK_OK)
        rc = probe_cleanup(st, rel, &fl, err);
    else {
        struct wk_err e;
        wk_err_clear(&e);
        (void)probe_cleanup(st, rel, &fl, &e);
    }
    if (rc != WK_OK)
        wk_err_prefix(err, "S3 feature probe of '%s'", st->cache_id);
    else
        *flags = fl;
    free(full);
    return rc;
}

/* The process-wide cache */

#define PROBE_CACHE 16

static pthread_mutex_t probe_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char id[512];
    unsigned flags;
} probe_cache[PROBE_CACHE];
static size_t probe_n;

static void log_features(const struct s3_store *st, unsigned fl,
                         const char *source)
{
    char names[160];

    s3f_format(fl, names, sizeof(names));
    WK_LOG(WK_LOG_INFO, "s3.features",
           KV_STR("bucket", s3_client_bucket(st->cl)),
           KV_STR("prefix", st->prefix), KV_STR("source", source),
           KV_STR("features", names),
           KV_STR("manifest_writes", fl & STORE_F_COND_PUT
                                         ? "conditional PUT"
                                         : "fenced through Redis"),
           KV_STR("deletes", fl & STORE_F_COND_DELETE ? "conditional (ETag)"
                             : fl & STORE_F_VERSIONING
                                 ? "by version id"
                                 : "unconditional (documented window)"));
    if (!(fl & (STORE_F_COND_DELETE | STORE_F_VERSIONING)))
        WK_LOG(WK_LOG_WARN, "s3.deletes_unconditional",
               KV_STR("bucket", s3_client_bucket(st->cl)),
               KV_STR("msg", "no conditional deletes and no versioning: a "
                             "write that lands between an archive's last "
                             "listing and its delete is lost (PROTOCOL.md); "
                             "enable bucket versioning to close it"));
}

enum wk_code s3_store_features(struct s3_store *st, unsigned *flags,
                               struct wk_err *err)
{
    enum wk_code rc = WK_OK;
    bool hit = false;

    if (st->features_known) {
        *flags = st->features;
        return WK_OK;
    }
    pthread_mutex_lock(&probe_mu);
    for (size_t i = 0; i < probe_n; i++)
        if (strcmp(probe_cache[i].id, st->cache_id) == 0) {
            if (!st->features_pinned)
                st->features = probe_cache[i].flags;
            hit = true;
            break;
        }
    pthread_mutex_unlock(&probe_mu);
    if (!hit && st->features_pinned) {
        pthread_mutex_lock(&probe_mu);
        if (probe_n < PROBE_CACHE) {
            snprintf(probe_cache[probe_n].id, sizeof(probe_cache[0].id), "%s",
                     st->cache_id);
            probe_cache[probe_n++].flags = st->features;
        }
        pthread_mutex_unlock(&probe_mu);
        log_features(st, st->features, "SILA_S3_FEATURES");
    } else if (!hit) {
        unsigned fl = 0;
        /* (two threads may probe the same bucket at once: both agree) */
        rc = s3f_probe(st, &fl, err);
        if (rc != WK_OK) {
            WK_LOG(WK_LOG_WARN, "s3.features_probe_failed",
                   KV_STR("bucket", s3_client_bucket(st->cl)),
                   KV_STR("msg", err->msg));
            return rc;
        }
        st->features = fl;
        pthread_mutex_lock(&probe_mu);
        if (probe_n < PROBE_CACHE) {
            snprintf(probe_cache[probe_n].id, sizeof(probe_cache[0].id), "%s",
                     st->cache_id);
            probe_cache[probe_n++].flags = fl;
        }
        pthread_mutex_unlock(&probe_mu);
        log_features(st, fl, "probe");
    }
    st->features_known = true;
    *flags = st->features;
    return WK_OK;
}
