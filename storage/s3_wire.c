/* One attempt of an S3 request on the wire: the signed URL and headers
 * (Range, If-Match of a resumed read, SSE), the curl options, the reply
 * callbacks (status and headers, body to a sink or buffer, the upload
 * body) with the check of a ranged reply, and the mapping of a failed
 * attempt to an error (network, HTTP status and S3 code). */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/wk_parse.h"
#include "common/wk_time.h"
#include "storage/s3_http_int.h"
#include "storage/s3_xml.h"

/* Response headers */

static bool hdr_is(const char *line, size_t n, const char *name,
                   const char **val, size_t *vlen)
{
    size_t nl = strlen(name);
    const char *v, *end = line + n;

    if (n <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return false;
    v = line + nl + 1;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' ||
                       end[-1] == '\t'))
        end--;
    *val = v;
    *vlen = (size_t)(end - v);
    return true;
}

static void copy_value(char *dst, size_t len, const char *v, size_t n)
{
    if (n >= len)
        n = len - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static size_t on_header(char *p, size_t size, size_t nitems, void *ud)
{
    struct s3_xfer *x = ud;
    struct s3_req *req = x->req;
    size_t n = size * nitems;
    const char *v;
    size_t vlen;
    char tmp[128];

    if (n >= 5 && strncmp(p, "HTTP/", 5) == 0) {
        /* a new response (after 1xx or a redirect): forget the last one */
        long st = 0;
        copy_value(tmp, sizeof(tmp), p, n);
        if (sscanf(tmp, "HTTP/%*s %ld", &st) == 1)
            x->status = st;
        req->etag[0] = '\0';
        req->has_content_length = false;
        req->content_length = 0;
        req->last_modified = 0;
        req->content_range[0] = '\0';
    } else if (hdr_is(p, n, "etag", &v, &vlen)) {
        if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"') {
            v++;
            vlen -= 2;
        }
        copy_value(req->etag, sizeof(req->etag), v, vlen);
    } else if (hdr_is(p, n, "content-length", &v, &vlen)) {
        copy_value(tmp, sizeof(tmp), v, vlen);
        req->has_content_length =
            wk_parse_u64(tmp, &req->content_length, NULL) == WK_OK;
    } else if (hdr_is(p, n, "last-modified", &v, &vlen)) {
        int64_t t;
        copy_value(tmp, sizeof(tmp), v, vlen);
        if (wk_time_parse_http(tmp, &t))
            req->last_modified = t;
    } else if (hdr_is(p, n, "content-range", &v, &vlen)) {
        copy_value(req->content_range, sizeof(req->content_range), v, vlen);
    }
    return n;
}

static bool attempt_range(const struct s3_xfer *x, char *buf, size_t len);

/* A 2xx reply to a request with a Range (or a resumed one) must hold the
 * bytes asked for: a 206 whose Content-Range starts where we asked and
 * ends within the range, or a 200 (the whole object) only when we asked
 * from byte 0 (the caller checks the length). Sets cb_err if not. */
static bool range_reply_ok(struct s3_xfer *x)
{
    const struct s3_req *req = x->req;
    uint64_t off =
        (req->ranged ? req->range_off : 0) + (x->resumed ? req->received : 0);
    unsigned long long a = 0, b = 0;
    int used = 0;
    char what[160], asked[64];

    if (!req->ranged && !x->resumed)
        return true;
    if (!attempt_range(x, asked, sizeof(asked)))
        asked[0] = '\0';
    s3_client_describe(x->cl, req, what, sizeof(what));
    if (x->status != 206) {
        if (off == 0)
            return true;
        wk_err_set(&x->cb_err, WK_E_CORRUPT,
                   "%s: asked for %s, got HTTP %ld (the whole object)", what,
                   asked, x->status);
        return false;
    }
    if (sscanf(req->content_range, "bytes %llu-%llu/%n", &a, &b, &used) < 2 ||
        used == 0 || a != off || b < a ||
        (req->ranged && req->range_len != UINT64_MAX &&
         b - req->range_off >= req->range_len)) {
        wk_err_set(&x->cb_err, WK_E_CORRUPT,
                   "%s: asked for %s, got HTTP 206 with Content-Range "
                   "'%.60s'",
                   what, asked, req->content_range);
        return false;
    }
    return true;
}

static size_t on_write(char *p, size_t size, size_t nitems, void *ud)
{
    struct s3_xfer *x = ud;
    struct s3_req *req = x->req;
    size_t n = size * nitems;
    char what[160];

    if (!s3_status_ok(x->status)) {
        /* keep the start of an error body; past that, stop reading it (a
         * huge or endless error body is not worth the wait) */
        size_t room = x->errbody.max - x->errbody.len;
        (void)wk_buf_append(&x->errbody, p, n < room ? n : room, NULL);
        if (n > room) {
            x->err_cut = true;
            return 0;
        }
        return n;
    }
    if (x->resumed && x->status != 206) {
        s3_client_describe(x->cl, req, what, sizeof(what));
        wk_err_set(&x->cb_err, WK_E_CONFLICT,
                   "%s: resumed read got HTTP %ld instead of 206", what,
                   x->status);
        return 0;
    }
    if (!x->range_checked) {
        x->range_checked = true;
        if (!range_reply_ok(x))
            return 0;
    }
    if (x->resume_etag[0] == '\0')
        copy_value(x->resume_etag, sizeof(x->resume_etag), req->etag,
                   strlen(req->etag));
    if (req->sink) {
        if (req->sink(p, n, req->sink_ud, &x->cb_err) != WK_OK) {
            if (x->cb_err.code == WK_OK) {
                s3_client_describe(x->cl, req, what, sizeof(what));
                wk_err_set(&x->cb_err, WK_E_INTERNAL,
                           "%s: sink failed without an error", what);
            }
            return 0;
        }
    } else if (req->out) {
        if (wk_buf_append(req->out, p, n, NULL) != WK_OK) {
            s3_client_describe(x->cl, req, what, sizeof(what));
            wk_err_set(&x->cb_err, WK_E_LIMIT,
                       "%s: reply body over the limit of %zu bytes", what,
                       req->out->max);
            return 0;
        }
    } else if (req->flags & S3_REQ_ERROR_IN_2XX) {
        size_t room = x->errbody.max - x->errbody.len;
        (void)wk_buf_append(&x->errbody, p, n < room ? n : room, NULL);
    }
    req->received += n;
    return n;
}

static size_t on_read(char *p, size_t size, size_t nitems, void *ud)
{
    struct s3_xfer *x = ud;
    size_t room = size * nitems;
    size_t left = x->req->body_len - x->up_off;
    size_t n = left < room ? left : room;

    if (n)
        memcpy(p, (const char *)x->req->body + x->up_off, n);
    x->up_off += n;
    return n;
}

static int on_seek(void *ud, curl_off_t offset, int origin)
{
    struct s3_xfer *x = ud;

    if (origin != SEEK_SET || offset < 0 ||
        (uint64_t)offset > (uint64_t)x->req->body_len)
        return CURL_SEEKFUNC_CANTSEEK;
    x->up_off = (size_t)offset;
    return CURL_SEEKFUNC_OK;
}

/* Sending one attempt */

static enum wk_code add_header(struct curl_slist **list, struct wk_buf *line,
                               const char *name, const char *value,
                               struct wk_err *err)
{
    struct curl_slist *n;
    enum wk_code rc;

    wk_buf_reset(line);
    rc = wk_buf_appendf(line, err, value ? "%s: %s" : "%s:", name,
                        value ? value : "");
    if (rc != WK_OK)
        return rc;
    n = curl_slist_append(*list, wk_buf_cstr(line));
    if (!n)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    *list = n;
    return WK_OK;
}

/* The Range of this attempt: the request's, moved past what a sink already
 * received. Returns false when there is no Range to send. */
static bool attempt_range(const struct s3_xfer *x, char *buf, size_t len)
{
    const struct s3_req *req = x->req;
    uint64_t off = req->ranged ? req->range_off : 0;
    uint64_t skip = x->resumed ? req->received : 0;

    if (!req->ranged && skip == 0)
        return false;
    if (req->ranged && req->range_len != UINT64_MAX)
        snprintf(buf, len, "bytes=%llu-%llu", (unsigned long long)(off + skip),
                 (unsigned long long)(off + req->range_len - 1));
    else
        snprintf(buf, len, "bytes=%llu-", (unsigned long long)(off + skip));
    return true;
}

#define SETOPT(e, opt, val)                                  \
    do {                                                     \
        if (curl_easy_setopt((e), (opt), (val)) != CURLE_OK) \
            ok = false;                                      \
    } while (0)

static enum wk_code set_options(struct s3_client *cl, struct s3_xfer *x,
                                struct wk_err *err)
{
    const struct s3_req *req = x->req;
    CURL *e = x->easy;
    long low_speed_s = (long)(cl->opts.request_timeout_ms + 999) / 1000;
    bool ok = true;

    SETOPT(e, CURLOPT_URL, wk_buf_cstr(&x->url));
    SETOPT(e, CURLOPT_PRIVATE, (void *)x);
    SETOPT(e, CURLOPT_HTTPHEADER, x->hdrs);
    SETOPT(e, CURLOPT_NOSIGNAL, 1L);
    SETOPT(e, CURLOPT_PATH_AS_IS, 1L);
    SETOPT(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (cl->opts.ca_file[0])
        SETOPT(e, CURLOPT_CAINFO, cl->opts.ca_file);
    SETOPT(e, CURLOPT_USERAGENT, S3_USER_AGENT);
    SETOPT(e, CURLOPT_TCP_KEEPALIVE, 1L);
    SETOPT(e, CURLOPT_CONNECTTIMEOUT_MS, (long)cl->opts.connect_timeout_ms);
    /* no total timeout: a big part may take long; a stall may not */
    SETOPT(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    SETOPT(e, CURLOPT_LOW_SPEED_TIME, low_speed_s > 0 ? low_speed_s : 1L);
    SETOPT(e, CURLOPT_ERRORBUFFER, x->errbuf);
    SETOPT(e, CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(e, CURLOPT_HEADERDATA, (void *)x);
    SETOPT(e, CURLOPT_WRITEFUNCTION, on_write);
    SETOPT(e, CURLOPT_WRITEDATA, (void *)x);
    if (strcmp(req->method, "HEAD") == 0) {
        SETOPT(e, CURLOPT_NOBODY, 1L);
    } else if (strcmp(req->method, "PUT") == 0 ||
               strcmp(req->method, "POST") == 0) {
        SETOPT(e, CURLOPT_UPLOAD, 1L);
        SETOPT(e, CURLOPT_READFUNCTION, on_read);
        SETOPT(e, CURLOPT_READDATA, (void *)x);
        SETOPT(e, CURLOPT_SEEKFUNCTION, on_seek);
        SETOPT(e, CURLOPT_SEEKDATA, (void *)x);
        SETOPT(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)req->body_len);
        if (strcmp(req->method, "POST") == 0)
            SETOPT(e, CURLOPT_CUSTOMREQUEST, "POST");
    } else if (strcmp(req->method, "GET") == 0) {
        SETOPT(e, CURLOPT_HTTPGET, 1L);
    } else {
        SETOPT(e, CURLOPT_CUSTOMREQUEST, req->method);
    }
    if (!ok)
        return wk_err_set(err, WK_E_INTERNAL, "curl rejected an option");
    return WK_OK;
}

static bool has_header(const struct s3_req *req, const char *name)
{
    for (size_t i = 0; i < req->n_headers; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return true;
    return false;
}

static bool has_query(const struct s3_req *req, const char *name)
{
    for (size_t i = 0; i < req->n_query; i++)
        if (strcmp(req->query[i].name, name) == 0)
            return true;
    return false;
}

/* A request that makes an object (where SSE headers go): PUT Object, and
 * CreateMultipartUpload (its parts inherit the setting). */
static bool creates_object(const struct s3_req *req)
{
    if (strcmp(req->method, "PUT") == 0)
        return !has_query(req, "partNumber");
    return strcmp(req->method, "POST") == 0 && has_query(req, "uploads");
}

enum wk_code s3_xfer_send(struct s3_client *cl, struct s3_xfer *x,
                          struct wk_err *err)
{
    struct s3_req *req = x->req;
    struct s3_kv hdrs[S3_MAX_HEADERS + 4];
    size_t nh = 0;
    char range[96], if_match[S3_ETAG_MAX + 4];
    struct s3_sigv4_req sr;
    struct s3_sigv4_out so;
    struct wk_buf path, line;
    enum wk_code rc;
    CURLMcode mc;

    s3_sigv4_out_init(&so);
    wk_buf_init(&path, S3_URL_MAX);
    wk_buf_init(&line, S3_HDR_LINE_MAX);

    for (size_t i = 0; i < req->n_headers; i++)
        hdrs[nh++] = req->headers[i];
    if (attempt_range(x, range, sizeof(range)))
        hdrs[nh++] = (struct s3_kv){ "Range", range };
    if (x->resumed && !has_header(req, "If-Match")) {
        snprintf(if_match, sizeof(if_match), "\"%s\"", x->resume_etag);
        hdrs[nh++] = (struct s3_kv){ "If-Match", if_match };
    }
    if (cl->opts.sse[0] && creates_object(req)) {
        /* server-side encryption of every object written */
        hdrs[nh++] =
            (struct s3_kv){ "x-amz-server-side-encryption", cl->opts.sse };
        if (cl->opts.sse_kms_key_id[0])
            hdrs[nh++] =
                (struct s3_kv){ "x-amz-server-side-encryption-aws-kms-key-id",
                                cl->opts.sse_kms_key_id };
    }

    rc = wk_buf_appends(&path, cl->path_base, err);
    if (rc == WK_OK && req->key)
        rc = wk_buf_appendf(&path, err, "/%s", req->key);
    else if (rc == WK_OK && path.len == 0)
        rc = wk_buf_appends(&path, "/", err);
    if (rc != WK_OK)
        goto out;

    memset(&sr, 0, sizeof(sr));
    sr.method = req->method;
    sr.host = cl->host;
    sr.path = wk_buf_cstr(&path);
    sr.query = req->query;
    sr.n_query = req->n_query;
    sr.headers = hdrs;
    sr.n_headers = nh;
    sr.payload_hash = x->payload_hash;
    sr.region = cl->opts.region;
    sr.service = "s3";
    sr.now = time(NULL);
    rc = s3_client_sign_creds(cl, err);
    if (rc == WK_OK)
        rc = s3_sigv4_sign(&sr, &cl->creds, &so, err);
    if (rc != WK_OK)
        goto out;

    wk_buf_reset(&x->url);
    rc = wk_buf_appendf(
        &x->url, err, "%s%s%s%s", cl->base_url, wk_buf_cstr(&so.encoded_path),
        so.query_string.len ? "?" : "", wk_buf_cstr(&so.query_string));
    if (rc != WK_OK)
        goto out;

    curl_slist_free_all(x->hdrs);
    x->hdrs = NULL;
    rc = add_header(&x->hdrs, &line, "Host", cl->host, err);
    if (rc == WK_OK)
        rc = add_header(&x->hdrs, &line, "x-amz-date", so.amz_date, err);
    if (rc == WK_OK)
        rc = add_header(&x->hdrs, &line, "x-amz-content-sha256",
                        x->payload_hash, err);
    if (rc == WK_OK && cl->creds.session_token)
        rc = add_header(&x->hdrs, &line, "x-amz-security-token",
                        cl->creds.session_token, err);
    if (rc == WK_OK)
        rc =
            add_header(&x->hdrs, &line, "Authorization", so.authorization, err);
    for (size_t i = 0; rc == WK_OK && i < nh; i++)
        rc = add_header(&x->hdrs, &line, hdrs[i].name, hdrs[i].value, err);
    /* no "Expect: 100-continue" round trip before bodies */
    if (rc == WK_OK)
        rc = add_header(&x->hdrs, &line, "Expect", NULL, err);
    if (rc != WK_OK)
        goto out;

    x->easy = s3_client_pool_get(cl);
    if (!x->easy) {
        rc = wk_err_set(err, WK_E_NOMEM, "curl: cannot create a handle");
        goto out;
    }
    x->status = 0;
    x->range_checked = false;
    x->err_cut = false;
    x->up_off = 0;
    x->errbuf[0] = '\0';
    wk_buf_reset(&x->errbody);
    rc = set_options(cl, x, err);
    if (rc != WK_OK)
        goto out;
    mc = curl_multi_add_handle(cl->multi, x->easy);
    if (mc != CURLM_OK) {
        rc = wk_err_set(err, WK_E_INTERNAL, "curl multi: %s",
                        curl_multi_strerror(mc));
        goto out;
    }
    req->attempts++;
out:
    if (rc != WK_OK) {
        s3_client_pool_put(cl, x->easy);
        x->easy = NULL;
    }
    OPENSSL_cleanse(line.data, line.cap);
    wk_buf_release(&line);
    wk_buf_release(&path);
    s3_sigv4_out_release(&so);
    return rc;
}

bool s3_curl_transient(CURLcode res)
{
    switch (res) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_SEND_FAIL_REWIND:
        return true;
    default:
        return false;
    }
}

void s3_xfer_net_error(struct s3_client *cl, struct s3_xfer *x, CURLcode res,
                       struct wk_err *e)
{
    char what[160];
    long oserr = 0;
    enum wk_code code = WK_E_NET;

    s3_client_describe(cl, x->req, what, sizeof(what));
    if (res == CURLE_OUT_OF_MEMORY)
        code = WK_E_NOMEM;
    if (x->easy)
        curl_easy_getinfo(x->easy, CURLINFO_OS_ERRNO, &oserr);
    if (x->errbuf[0])
        wk_err_set(e, code, "%s: %s (%s)", what, curl_easy_strerror(res),
                   x->errbuf);
    else
        wk_err_set(e, code, "%s: %s", what, curl_easy_strerror(res));
    e->sys_errno = (int)oserr;
}

void s3_xfer_http_error(struct s3_client *cl, const struct s3_xfer *x,
                        const char *body, size_t len, struct wk_err *e)
{
    const struct s3_req *req = x->req;
    struct s3_xml_error xe;
    bool have = false;
    enum wk_code code = WK_E_HTTP;
    char what[160];

    if (len > 0 && s3_xml_parse_error(body, len, &xe, NULL) == WK_OK)
        have = xe.code[0] != '\0';
    if (x->status == 404 && (!have || strcmp(req->method, "HEAD") == 0 ||
                             strcmp(xe.code, "NoSuchKey") == 0 ||
                             strcmp(xe.code, "NoSuchUpload") == 0))
        code = WK_E_NOTFOUND;
    else if (x->status == 412 || x->status == 416)
        code = WK_E_CONFLICT;
    s3_client_describe(cl, req, what, sizeof(what));
    if (have)
        wk_err_set(e, code, "%s: HTTP %ld %s: %s", what, x->status, xe.code,
                   xe.message);
    else
        wk_err_set(e, code, "%s: HTTP %ld", what, x->status);
    e->http_status = x->status;
    if (have)
        snprintf(e->s3_code, sizeof(e->s3_code), "%s", xe.code);
}
