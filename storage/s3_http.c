/* S3 requests on one libcurl multi handle. A started request owns a private
 * struct s3_xfer that moves between three places: the waiting
 * FIFO (not sent yet), the multi handle (an attempt in flight, counted by
 * n_active) and the delayed list (a retry waiting for its backoff). When it
 * ends, the xfer is freed and the request joins the report queue. */
#include "storage/s3_http.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "common/wk_log.h"
#include "common/wk_parse.h"
#include "storage/s3_xml.h"
#include "storage/store_hash.h"

#define S3_URL_MAX        (80u << 10) /* encoded path + query + base */
#define S3_HDR_LINE_MAX   (8u << 10)
#define S3_POLL_SLICE_MS  1000
#define S3_USER_AGENT     "sila-archiver"
#define S3_DEFAULT_REGION "us-east-1"

enum xfer_state { XS_WAITING, XS_ACTIVE, XS_DELAYED };

struct xfer_list {
    struct s3_xfer *head, *tail;
};

struct s3_xfer {
    struct s3_req *req;      /* borrowed: the request being run */
    struct s3_client *cl;    /* borrowed */
    CURL *easy;              /* owned while an attempt is in flight */
    struct curl_slist *hdrs; /* owned, one attempt */
    struct wk_buf url;       /* owned, one attempt */
    struct wk_buf errbody;   /* owned: an error body, or a 2xx body that
                                may hold <Error> when there is no out */
    char payload_hash[65];
    enum xfer_state state;
    struct s3_xfer *prev, *next;   /* in the waiting or delayed list */
    uint64_t due_ms;               /* delayed: when to send again */
    size_t up_off;                 /* request body bytes given to curl */
    size_t out_start;              /* req->out->len before the first attempt */
    long status;                   /* this attempt's status line */
    bool resumed;                  /* this attempt resumes a streamed body */
    bool range_checked;            /* this attempt's Content-Range checked */
    bool err_cut;                  /* error body past its cap: stopped */
    struct wk_err cb_err;          /* a sink or buffer failure: final */
    char resume_etag[S3_ETAG_MAX]; /* the body's ETag, for If-Match */
    char errbuf[CURL_ERROR_SIZE];
};

struct s3_client {
    struct store_opts opts; /* owned copy, secrets included; wiped */
    struct s3_creds creds;  /* borrows from opts */
    char *bucket;           /* owned */
    char base_url[400];     /* "http://127.0.0.1:9000" */
    char host[384];         /* Host header, as signed */
    char path_base[600];    /* "/bucket" (path-style) or "" */
    CURLM *multi;           /* owned */
    CURL **pool;            /* owned: idle easy handles */
    size_t n_pool;
    struct xfer_list waiting, active, delayed;
    size_t n_active;                  /* attempts in the multi handle */
    size_t n_pending;                 /* started and not done */
    struct s3_req *rq_head, *rq_tail; /* report queue (borrowed) */
    uint64_t completions;
    uint64_t rng;
    bool global_init;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t rng_next(struct s3_client *cl)
{
    /* xorshift64*: jitter only, not security */
    cl->rng ^= cl->rng >> 12;
    cl->rng ^= cl->rng << 25;
    cl->rng ^= cl->rng >> 27;
    return cl->rng * 0x2545F4914F6CDD1DULL;
}

/* Full jitter: uniform in [0, min(cap, base * 2^(attempt-1))]. */
static uint64_t backoff_ms(struct s3_client *cl, unsigned attempt)
{
    uint64_t ceil = S3_RETRY_BASE_MS;
    for (unsigned i = 1; i < attempt && ceil < S3_RETRY_CAP_MS; i++)
        ceil *= 2;
    if (ceil > S3_RETRY_CAP_MS)
        ceil = S3_RETRY_CAP_MS;
    return rng_next(cl) % (ceil + 1);
}

static void list_push(struct xfer_list *l, struct s3_xfer *x)
{
    x->next = NULL;
    x->prev = l->tail;
    if (l->tail)
        l->tail->next = x;
    else
        l->head = x;
    l->tail = x;
}

static void list_unlink(struct xfer_list *l, struct s3_xfer *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        l->head = x->next;
    if (x->next)
        x->next->prev = x->prev;
    else
        l->tail = x->prev;
    x->prev = x->next = NULL;
}

static void rq_push(struct s3_client *cl, struct s3_req *req)
{
    req->rq_next = NULL;
    req->rq_prev = cl->rq_tail;
    if (cl->rq_tail)
        cl->rq_tail->rq_next = req;
    else
        cl->rq_head = req;
    cl->rq_tail = req;
    req->in_report_queue = true;
}

static void rq_unlink(struct s3_client *cl, struct s3_req *req)
{
    if (!req->in_report_queue)
        return;
    if (req->rq_prev)
        req->rq_prev->rq_next = req->rq_next;
    else
        cl->rq_head = req->rq_next;
    if (req->rq_next)
        req->rq_next->rq_prev = req->rq_prev;
    else
        cl->rq_tail = req->rq_prev;
    req->rq_prev = req->rq_next = NULL;
    req->in_report_queue = false;
}

static CURL *pool_get(struct s3_client *cl)
{
    if (cl->n_pool > 0) {
        CURL *e = cl->pool[--cl->n_pool];
        curl_easy_reset(e);
        return e;
    }
    return curl_easy_init();
}

static void pool_put(struct s3_client *cl, CURL *e)
{
    if (!e)
        return;
    if (cl->n_pool < cl->opts.max_in_flight)
        cl->pool[cl->n_pool++] = e;
    else
        curl_easy_cleanup(e);
}

/* "GET 'key'" or "GET bucket 'name'": how messages name a request. */
static void describe(const struct s3_client *cl, const struct s3_req *req,
                     char *buf, size_t len)
{
    if (req->key)
        snprintf(buf, len, "%s '%s'", req->method, req->key);
    else
        snprintf(buf, len, "%s bucket '%s'", req->method, cl->bucket);
}

void s3_req_init(struct s3_req *req)
{
    memset(req, 0, sizeof(*req));
}

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

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    /* Howard Hinnant's algorithm: days since 1970-01-01 */
    int64_t era;
    unsigned yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* RFC 9110 IMF-fixdate: "Wed, 21 Oct 2015 07:28:00 GMT". */
static bool parse_http_date(const char *s, int64_t *out)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    char wd[4], mon[4];
    int d, y, hh, mm, ss;
    const char *m;

    if (sscanf(s, "%3s, %d %3s %d %d:%d:%d", wd, &d, mon, &y, &hh, &mm, &ss) !=
        7)
        return false;
    m = strstr(months, mon);
    if (!m || strlen(mon) != 3 || (m - months) % 3 != 0 || d < 1 || d > 31 ||
        y < 1970 || hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 || ss > 60)
        return false;
    *out = days_from_civil(y, (unsigned)((m - months) / 3 + 1), (unsigned)d) *
               86400 +
           hh * 3600 + mm * 60 + ss;
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
        if (parse_http_date(tmp, &t))
            req->last_modified = t;
    } else if (hdr_is(p, n, "content-range", &v, &vlen)) {
        copy_value(req->content_range, sizeof(req->content_range), v, vlen);
    }
    return n;
}

static bool status_ok(long st)
{
    return st >= 200 && st < 300;
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
    describe(x->cl, req, what, sizeof(what));
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

    if (!status_ok(x->status)) {
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
        describe(x->cl, req, what, sizeof(what));
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
                describe(x->cl, req, what, sizeof(what));
                wk_err_set(&x->cb_err, WK_E_INTERNAL,
                           "%s: sink failed without an error", what);
            }
            return 0;
        }
    } else if (req->out) {
        if (wk_buf_append(req->out, p, n, NULL) != WK_OK) {
            describe(x->cl, req, what, sizeof(what));
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

static enum wk_code xfer_send(struct s3_client *cl, struct s3_xfer *x,
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

    x->easy = pool_get(cl);
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
        pool_put(cl, x->easy);
        x->easy = NULL;
    }
    OPENSSL_cleanse(line.data, line.cap);
    wk_buf_release(&line);
    wk_buf_release(&path);
    s3_sigv4_out_release(&so);
    return rc;
}

/* Ending an attempt */

static void xfer_free(struct s3_xfer *x)
{
    if (!x)
        return;
    curl_slist_free_all(x->hdrs);
    wk_buf_release(&x->url);
    wk_buf_release(&x->errbody);
    free(x);
}

static void xfer_finish(struct s3_client *cl, struct s3_xfer *x,
                        const struct wk_err *e)
{
    struct s3_req *req = x->req;

    if (e->code != WK_OK)
        wk_err_copy(&req->err, e);
    req->xfer = NULL;
    xfer_free(x);
    req->done = true;
    cl->n_pending--;
    cl->completions++;
    rq_push(cl, req);
}

static bool curl_transient(CURLcode res)
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

static void net_error(struct s3_client *cl, struct s3_xfer *x, CURLcode res,
                      struct wk_err *e)
{
    char what[160];
    long oserr = 0;
    enum wk_code code = WK_E_NET;

    describe(cl, x->req, what, sizeof(what));
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

/* An HTTP failure with the S3 code and message from body, if any. */
static void http_error(struct s3_client *cl, const struct s3_xfer *x,
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
    describe(cl, req, what, sizeof(what));
    if (have)
        wk_err_set(e, code, "%s: HTTP %ld %s: %s", what, x->status, xe.code,
                   xe.message);
    else
        wk_err_set(e, code, "%s: HTTP %ld", what, x->status);
    e->http_status = x->status;
    if (have)
        snprintf(e->s3_code, sizeof(e->s3_code), "%s", xe.code);
}

/* Make x ready to be sent again; false when it cannot be repeated. */
static bool prepare_retry(struct s3_xfer *x)
{
    struct s3_req *req = x->req;

    if (req->sink) {
        if (req->received == 0)
            return true;
        /* bytes already went to the sink: continue after them, and only
         * from the same version of the object */
        if (x->resume_etag[0] == '\0')
            return false;
        if (req->ranged && req->range_len != UINT64_MAX &&
            req->received >= req->range_len)
            return false;
        x->resumed = true;
        return true;
    }
    if (req->out) {
        req->out->len = x->out_start;
        if (req->out->data)
            req->out->data[req->out->len] = '\0';
    }
    req->received = 0;
    return true;
}

/* The process-wide counters (s3_http_stats). */
static pthread_mutex_t stats_mu = PTHREAD_MUTEX_INITIALIZER;
static struct s3_http_stats stats;

static void stats_attempt(CURL *easy, const struct wk_err *e, bool retry)
{
    curl_off_t up = 0, down = 0;

    curl_easy_getinfo(easy, CURLINFO_SIZE_UPLOAD_T, &up);
    curl_easy_getinfo(easy, CURLINFO_SIZE_DOWNLOAD_T, &down);
    pthread_mutex_lock(&stats_mu);
    stats.requests++;
    stats.retries += retry;
    stats.bytes_sent += up > 0 ? (uint64_t)up : 0;
    stats.bytes_received += down > 0 ? (uint64_t)down : 0;
    stats.in_flight--;
    if (e->code != WK_OK) {
        char code[sizeof(stats.errors[0].code)];
        size_t i;
        if (e->s3_code[0])
            snprintf(code, sizeof(code), "%.39s", e->s3_code);
        else if (e->http_status)
            snprintf(code, sizeof(code), "HTTP %ld", (long)e->http_status);
        else
            snprintf(code, sizeof(code), "%s", wk_code_name(e->code));
        for (i = 0; i < stats.n_errors; i++)
            if (strcmp(stats.errors[i].code, code) == 0)
                break;
        if (i == stats.n_errors) {
            if (stats.n_errors < S3_STATS_CODES) {
                stats.n_errors++;
                snprintf(stats.errors[i].code, sizeof(stats.errors[i].code),
                         "%s", i == S3_STATS_CODES - 1 ? "other" : code);
            } else {
                i = S3_STATS_CODES - 1;
            }
        }
        stats.errors[i].count++;
    }
    pthread_mutex_unlock(&stats_mu);
}

void s3_http_stats(struct s3_http_stats *out)
{
    pthread_mutex_lock(&stats_mu);
    *out = stats;
    pthread_mutex_unlock(&stats_mu);
}

static void attempt_done(struct s3_client *cl, struct s3_xfer *x, CURLcode res)
{
    struct s3_req *req = x->req;
    struct wk_err e;
    bool retry = false;

    wk_err_clear(&e);
    curl_multi_remove_handle(cl->multi, x->easy);
    list_unlink(&cl->active, x);
    cl->n_active--;
    req->http_status = x->status;

    if (x->cb_err.code != WK_OK) {
        e = x->cb_err;
    } else if (res != CURLE_OK && !(x->err_cut && !status_ok(x->status))) {
        net_error(cl, x, res, &e);
        retry = curl_transient(res);
    } else if (!status_ok(x->status)) {
        http_error(cl, x, x->errbody.data, x->errbody.len, &e);
        retry = wk_err_transient(&e);
    } else if (strcmp(req->method, "GET") == 0 && x->status != 200 &&
               x->status != 206) {
        /* 204, 203...: S3 never answers a GET so; no body is not an
         * empty object */
        char what[160];
        describe(cl, req, what, sizeof(what));
        wk_err_set(&e, WK_E_HTTP, "%s: unexpected HTTP %ld", what, x->status);
        e.http_status = x->status;
    } else if (req->flags & S3_REQ_ERROR_IN_2XX) {
        const char *body = x->errbody.data;
        size_t len = x->errbody.len;
        struct s3_xml_error xe;
        if (req->out && !req->sink) {
            body = req->out->data + x->out_start;
            len = req->out->len - x->out_start;
        }
        if (len > 0 && s3_xml_parse_error(body, len, &xe, NULL) == WK_OK) {
            http_error(cl, x, body, len, &e);
            retry = wk_err_transient(&e);
        }
    }
    stats_attempt(x->easy, &e,
                  e.code != WK_OK && retry &&
                      req->attempts <= cl->opts.max_retries);
    pool_put(cl, x->easy);
    x->easy = NULL;
    curl_slist_free_all(x->hdrs);
    x->hdrs = NULL;

    if (e.code != WK_OK && retry && req->attempts <= cl->opts.max_retries &&
        prepare_retry(x)) {
        uint64_t delay = backoff_ms(cl, req->attempts);
        WK_LOG(WK_LOG_WARN, "s3.request.retried", KV_STR("bucket", cl->bucket),
               KV_STR("key", req->key ? req->key : ""),
               KV_STR("method", req->method), KV_INT("attempt", req->attempts),
               KV_INT("http_status", e.http_status),
               KV_STR("code", wk_code_name(e.code)),
               KV_STR("s3_code", e.s3_code), KV_INT("delay_ms", delay),
               KV_STR("msg", e.msg));
        x->due_ms = now_ms() + delay;
        x->state = XS_DELAYED;
        list_push(&cl->delayed, x);
        return;
    }
    xfer_finish(cl, x, &e);
}

static void activate(struct s3_client *cl, struct s3_xfer *x)
{
    struct wk_err e;

    wk_err_clear(&e);
    if (xfer_send(cl, x, &e) != WK_OK) {
        xfer_finish(cl, x, &e);
        return;
    }
    x->state = XS_ACTIVE;
    list_push(&cl->active, x);
    cl->n_active++;
    pthread_mutex_lock(&stats_mu);
    stats.in_flight++;
    pthread_mutex_unlock(&stats_mu);
}

/* Fill free slots: due retries first, then new requests in order. */
static void promote(struct s3_client *cl)
{
    uint64_t now = now_ms();
    struct s3_xfer *x = cl->delayed.head;

    while (x && cl->n_active < cl->opts.max_in_flight) {
        struct s3_xfer *next = x->next;
        if (x->due_ms <= now) {
            list_unlink(&cl->delayed, x);
            activate(cl, x);
        }
        x = next;
    }
    while (cl->waiting.head && cl->n_active < cl->opts.max_in_flight) {
        x = cl->waiting.head;
        list_unlink(&cl->waiting, x);
        activate(cl, x);
    }
}

static void read_messages(struct s3_client *cl)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(cl->multi, &left)) != NULL) {
        char *priv = NULL;
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        if (priv)
            attempt_done(cl, (struct s3_xfer *)priv, msg->data.result);
    }
}

/* Milliseconds until the first delayed retry is due (-1: none). */
static long next_due_ms(const struct s3_client *cl)
{
    uint64_t now = now_ms(), first = UINT64_MAX;

    for (const struct s3_xfer *x = cl->delayed.head; x; x = x->next)
        if (x->due_ms < first)
            first = x->due_ms;
    if (first == UINT64_MAX)
        return -1;
    return first <= now ? 0 : (long)(first - now);
}

enum wk_code s3_client_poll(struct s3_client *cl, int timeout_ms,
                            struct s3_req **completed, struct wk_err *err)
{
    uint64_t start = now_ms();
    uint64_t seen = cl->completions;

    if (completed)
        *completed = NULL;
    for (;;) {
        int running = 0;
        long wait, due;
        uint64_t elapsed;
        CURLMcode mc;

        if (completed && cl->rq_head) {
            *completed = cl->rq_head;
            rq_unlink(cl, cl->rq_head);
            return WK_OK;
        }
        if (cl->completions != seen || cl->n_pending == 0)
            return WK_OK;
        promote(cl);
        mc = curl_multi_perform(cl->multi, &running);
        if (mc != CURLM_OK)
            return wk_err_set(err, WK_E_INTERNAL, "curl multi: %s",
                              curl_multi_strerror(mc));
        read_messages(cl);
        promote(cl);
        if (cl->completions != seen || (completed && cl->rq_head))
            continue;
        elapsed = now_ms() - start;
        if (timeout_ms >= 0 && elapsed >= (uint64_t)timeout_ms)
            return WK_OK;
        wait = timeout_ms < 0 ? S3_POLL_SLICE_MS
                              : (long)((uint64_t)timeout_ms - elapsed);
        if (wait > S3_POLL_SLICE_MS)
            wait = S3_POLL_SLICE_MS;
        due = next_due_ms(cl);
        if (due >= 0 && due < wait)
            wait = due;
        /* curl shortens the wait to its own timers (connects, new handles) */
        mc = curl_multi_poll(cl->multi, NULL, 0, (int)wait, NULL);
        if (mc != CURLM_OK)
            return wk_err_set(err, WK_E_INTERNAL, "curl multi: %s",
                              curl_multi_strerror(mc));
    }
}

enum wk_code s3_client_wait(struct s3_client *cl, struct s3_req *req,
                            struct wk_err *err)
{
    struct wk_err eng;
    enum wk_code rc = WK_OK;

    wk_err_clear(&eng);
    if (!req->done && !req->xfer)
        return wk_err_set(err, WK_E_INTERNAL,
                          "waiting for an s3 request that was not started");
    while (!req->done && rc == WK_OK)
        rc = s3_client_poll(cl, -1, NULL, &eng);
    if (rc != WK_OK && !req->done)
        wk_err_copy(&req->err, &eng); /* before cancel, so it wins */
    s3_client_cancel(cl, req);
    return wk_err_copy(err, &req->err);
}

enum wk_code s3_client_run(struct s3_client *cl, struct s3_req *reqs, size_t n,
                           struct wk_err *err)
{
    struct wk_err eng;
    enum wk_code rc = WK_OK;
    size_t next = 0; /* reqs[0, next) are done */

    wk_err_clear(&eng);
    for (size_t i = 0; i < n; i++)
        (void)s3_client_start(cl, &reqs[i], NULL); /* failures: in req */
    while (rc == WK_OK) {
        while (next < n && reqs[next].done)
            next++;
        if (next == n)
            break;
        rc = s3_client_poll(cl, -1, NULL, &eng);
    }
    for (size_t i = 0; i < n; i++) {
        if (rc != WK_OK && !reqs[i].done)
            wk_err_copy(&reqs[i].err, &eng);
        s3_client_cancel(cl, &reqs[i]);
    }
    for (size_t i = 0; i < n; i++)
        if (reqs[i].err.code != WK_OK)
            return wk_err_copy(err, &reqs[i].err);
    return WK_OK;
}

void s3_client_cancel(struct s3_client *cl, struct s3_req *req)
{
    struct s3_xfer *x;
    char what[160];

    if (!cl || !req)
        return;
    x = req->xfer;
    if (x) {
        if (x->state == XS_ACTIVE) {
            curl_multi_remove_handle(cl->multi, x->easy);
            pool_put(cl, x->easy);
            x->easy = NULL;
            list_unlink(&cl->active, x);
            cl->n_active--;
            pthread_mutex_lock(&stats_mu);
            stats.in_flight--;
            pthread_mutex_unlock(&stats_mu);
        } else if (x->state == XS_WAITING) {
            list_unlink(&cl->waiting, x);
        } else {
            list_unlink(&cl->delayed, x);
        }
        req->xfer = NULL;
        xfer_free(x);
        cl->n_pending--;
        req->done = true;
        describe(cl, req, what, sizeof(what));
        wk_err_set(&req->err, WK_E_CANCELLED, "%s: cancelled", what);
    }
    rq_unlink(cl, req);
}

static bool header_text_ok(const char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s < 0x20 && *s != '\t')
            return false;
    return s != NULL;
}

enum wk_code s3_client_start(struct s3_client *cl, struct s3_req *req,
                             struct wk_err *err)
{
    struct s3_xfer *x;
    char what[160];

    if (req->xfer)
        return wk_err_set(err, WK_E_INTERNAL, "s3 request started twice");
    rq_unlink(cl, req);
    req->done = false;
    req->http_status = 0;
    req->attempts = 0;
    req->etag[0] = '\0';
    req->has_content_length = false;
    req->content_length = 0;
    req->last_modified = 0;
    req->content_range[0] = '\0';
    req->received = 0;
    wk_err_clear(&req->err);

    if (!req->method || !req->method[0] || (req->key && !req->key[0])) {
        wk_err_set(&req->err, WK_E_INVAL,
                   "s3 request without a method or with an empty key");
        req->done = true;
        return wk_err_copy(err, &req->err);
    }
    describe(cl, req, what, sizeof(what));
    if (req->n_headers > S3_MAX_HEADERS || (req->n_headers && !req->headers))
        wk_err_set(&req->err, WK_E_INVAL, "%s: too many headers", what);
    for (size_t i = 0; i < req->n_headers && req->err.code == WK_OK; i++)
        if (!header_text_ok(req->headers[i].name) ||
            !header_text_ok(req->headers[i].value))
            wk_err_set(&req->err, WK_E_INVAL, "%s: bad header", what);
    if (req->body_len && !req->body)
        wk_err_set(&req->err, WK_E_INVAL, "%s: body without data", what);
    if (req->ranged && req->range_len == 0)
        wk_err_set(&req->err, WK_E_INVAL, "%s: empty range", what);
    if (req->ranged && req->range_len != UINT64_MAX &&
        req->range_len - 1 > UINT64_MAX - req->range_off)
        wk_err_set(&req->err, WK_E_INVAL, "%s: range past 2^64", what);
    if (req->err.code != WK_OK) {
        req->done = true;
        return wk_err_copy(err, &req->err);
    }

    x = calloc(1, sizeof(*x));
    if (!x) {
        wk_err_set(&req->err, WK_E_NOMEM, "%s: out of memory", what);
        req->done = true;
        return wk_err_copy(err, &req->err);
    }
    x->req = req;
    x->cl = cl;
    wk_buf_init(&x->url, S3_URL_MAX);
    wk_buf_init(&x->errbody, cl->opts.max_small_body < S3_ERR_BODY_MAX
                                 ? cl->opts.max_small_body
                                 : S3_ERR_BODY_MAX);
    if (req->flags & S3_REQ_UNSIGNED_PAYLOAD)
        snprintf(x->payload_hash, sizeof(x->payload_hash), "%s",
                 "UNSIGNED-PAYLOAD");
    else
        store_sha256_hex(req->body ? req->body : "", req->body_len,
                         x->payload_hash);
    x->out_start = req->out ? req->out->len : 0;
    x->state = XS_WAITING;
    list_push(&cl->waiting, x);
    req->xfer = x;
    cl->n_pending++;
    return WK_OK;
}

size_t s3_client_pending(const struct s3_client *cl)
{
    return cl->n_pending;
}

const char *s3_client_bucket(const struct s3_client *cl)
{
    return cl->bucket;
}

size_t s3_client_max_small_body(const struct s3_client *cl)
{
    return cl->opts.max_small_body;
}

unsigned s3_client_max_in_flight(const struct s3_client *cl)
{
    return cl->opts.max_in_flight;
}

/* Client */

static bool bucket_ok(const char *b)
{
    size_t n = strlen(b);
    if (n == 0 || n > 255)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = b[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* host[:port] names this machine: 127.0.0.0/8, [::1] or localhost. */
static bool loopback(const char *hostport)
{
    char h[256];
    const char *end;

    if (hostport[0] == '[') {
        end = strchr(hostport, ']');
        return end && (size_t)(end - hostport) == 4 &&
               strncmp(hostport, "[::1", 4) == 0;
    }
    end = strchr(hostport, ':');
    snprintf(h, sizeof(h), "%.*s",
             (int)(end ? (size_t)(end - hostport) : strlen(hostport)),
             hostport);
    if (strcasecmp(h, "localhost") == 0)
        return true;
    if (strncmp(h, "127.", 4) != 0)
        return false;
    for (const char *p = h + 4; *p; p++)
        if (!((*p >= '0' && *p <= '9') || *p == '.'))
            return false;
    return true;
}

static enum wk_code set_endpoint(struct s3_client *cl, struct wk_err *err)
{
    const char *ep = cl->opts.endpoint;
    const char *rest, *slash;
    size_t hostlen, pathlen;
    int n;

    if (ep[0] == '\0') {
        /* virtual-hosted, except for dotted names that would break TLS
         * certificate matching: those go path-style */
        if (strchr(cl->bucket, '.')) {
            snprintf(cl->host, sizeof(cl->host), "s3.%s.amazonaws.com",
                     cl->opts.region);
            snprintf(cl->path_base, sizeof(cl->path_base), "/%s", cl->bucket);
        } else {
            snprintf(cl->host, sizeof(cl->host), "%s.s3.%s.amazonaws.com",
                     cl->bucket, cl->opts.region);
            cl->path_base[0] = '\0';
        }
        snprintf(cl->base_url, sizeof(cl->base_url), "https://%s", cl->host);
        return WK_OK;
    }
    if (strncmp(ep, "http://", 7) == 0)
        rest = ep + 7;
    else if (strncmp(ep, "https://", 8) == 0)
        rest = ep + 8;
    else
        return wk_err_set(err, WK_E_INVAL,
                          "S3 endpoint '%s': expected http:// or https://", ep);
    slash = strchr(rest, '/');
    hostlen = slash ? (size_t)(slash - rest) : strlen(rest);
    pathlen = slash ? strlen(slash) : 0;
    while (pathlen > 0 && slash[pathlen - 1] == '/')
        pathlen--;
    if (hostlen == 0 || hostlen >= sizeof(cl->host) ||
        strcspn(rest, " ?#@") < hostlen + pathlen)
        return wk_err_set(err, WK_E_INVAL, "S3 endpoint '%s': bad host", ep);
    memcpy(cl->host, rest, hostlen);
    cl->host[hostlen] = '\0';
    if (rest == ep + 7 && !cl->opts.allow_insecure && !loopback(cl->host))
        return wk_err_set(err, WK_E_INVAL,
                          "S3 endpoint '%s': plain http:// only on loopback "
                          "(127.0.0.0/8, ::1, localhost); use https://, or "
                          "SILA_ALLOW_INSECURE=1",
                          ep);
    n = snprintf(cl->base_url, sizeof(cl->base_url), "%.*s",
                 (int)(rest - ep + hostlen), ep);
    if (n < 0 || (size_t)n >= sizeof(cl->base_url))
        return wk_err_set(err, WK_E_INVAL, "S3 endpoint '%s': too long", ep);
    n = snprintf(cl->path_base, sizeof(cl->path_base), "%.*s/%s", (int)pathlen,
                 slash ? slash : "", cl->bucket);
    if (n < 0 || (size_t)n >= sizeof(cl->path_base))
        return wk_err_set(err, WK_E_INVAL, "S3 endpoint '%s': too long", ep);
    return WK_OK;
}

enum wk_code s3_client_new(const struct store_opts *opts, const char *bucket,
                           struct s3_client **out, struct wk_err *err)
{
    struct s3_client *cl = NULL;
    struct timespec ts;
    enum wk_code rc = WK_OK;

    *out = NULL;
    if (!bucket || !bucket_ok(bucket))
        return wk_err_set(err, WK_E_INVAL, "bad S3 bucket name '%s'",
                          bucket ? bucket : "");
    cl = calloc(1, sizeof(*cl));
    if (!cl)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    cl->opts = *opts;
    if (cl->opts.region[0] == '\0')
        snprintf(cl->opts.region, sizeof(cl->opts.region), "%s",
                 S3_DEFAULT_REGION);
    if (cl->opts.max_in_flight == 0)
        cl->opts.max_in_flight = 16;
    if (cl->opts.connect_timeout_ms == 0)
        cl->opts.connect_timeout_ms = 5000;
    if (cl->opts.request_timeout_ms == 0)
        cl->opts.request_timeout_ms = 30000;
    if (cl->opts.max_small_body == 0)
        cl->opts.max_small_body = 8u << 20;
    cl->creds.access_key = cl->opts.access_key;
    cl->creds.secret_key = cl->opts.secret_key;
    cl->creds.session_token =
        cl->opts.session_token[0] ? cl->opts.session_token : NULL;

    cl->bucket = strdup(bucket);
    if (!cl->bucket) {
        rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
        goto out;
    }
    if (cl->opts.access_key[0] == '\0' || cl->opts.secret_key[0] == '\0') {
        rc = wk_err_set(err, WK_E_INVAL,
                        "S3 bucket '%s': no credentials (set "
                        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
                        bucket);
        goto out;
    }
    rc = set_endpoint(cl, err);
    if (rc != WK_OK)
        goto out;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        rc = wk_err_set(err, WK_E_INTERNAL, "curl_global_init failed");
        goto out;
    }
    cl->global_init = true;
    cl->multi = curl_multi_init();
    cl->pool = calloc(cl->opts.max_in_flight, sizeof(*cl->pool));
    if (!cl->multi || !cl->pool) {
        rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
        goto out;
    }
    /* keep one idle connection per slot for reuse */
    curl_multi_setopt(cl->multi, CURLMOPT_MAXCONNECTS,
                      (long)cl->opts.max_in_flight);
    clock_gettime(CLOCK_REALTIME, &ts);
    cl->rng = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^
              ((uint64_t)getpid() << 40) ^ (uint64_t)(uintptr_t)cl;
    if (cl->rng == 0)
        cl->rng = 0x9E3779B97F4A7C15ULL;
    *out = cl;
    cl = NULL;
out:
    s3_client_free(cl);
    return rc;
}

void s3_client_free(struct s3_client *cl)
{
    if (!cl)
        return;
    while (cl->waiting.head)
        s3_client_cancel(cl, cl->waiting.head->req);
    while (cl->delayed.head)
        s3_client_cancel(cl, cl->delayed.head->req);
    while (cl->active.head)
        s3_client_cancel(cl, cl->active.head->req);
    while (cl->rq_head)
        rq_unlink(cl, cl->rq_head);
    for (size_t i = 0; i < cl->n_pool; i++)
        curl_easy_cleanup(cl->pool[i]);
    free(cl->pool);
    if (cl->multi)
        curl_multi_cleanup(cl->multi);
    if (cl->global_init)
        curl_global_cleanup();
    free(cl->bucket);
    OPENSSL_cleanse(&cl->opts, sizeof(cl->opts));
    free(cl);
}

void s3_content_md5(const void *p, size_t n, char out[25])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;

    if (EVP_Digest(p, n, md, &len, EVP_md5(), NULL) != 1 || len != 16) {
        out[0] = '\0';
        return;
    }
    EVP_EncodeBlock((unsigned char *)out, md, 16);
}

enum wk_code s3_client_presign(struct s3_client *cl, const char *key,
                               unsigned expires_s, time_t now,
                               struct wk_buf *url, struct wk_err *err)
{
    struct s3_sigv4_req sr;
    struct s3_sigv4_out so;
    struct wk_buf path;
    enum wk_code rc;

    s3_sigv4_out_init(&so);
    wk_buf_init(&path, S3_URL_MAX);
    rc = wk_buf_appendf(&path, err, "%s/%s", cl->path_base, key);
    if (rc == WK_OK) {
        memset(&sr, 0, sizeof(sr));
        sr.method = "GET";
        sr.host = cl->host;
        sr.path = wk_buf_cstr(&path);
        sr.region = cl->opts.region;
        sr.service = "s3";
        sr.now = now;
        rc = s3_sigv4_presign(&sr, &cl->creds, expires_s, &so, err);
    }
    if (rc == WK_OK) {
        wk_buf_reset(url);
        rc = wk_buf_appendf(url, err, "%s%s?%s", cl->base_url,
                            wk_buf_cstr(&so.encoded_path),
                            wk_buf_cstr(&so.query_string));
    }
    s3_sigv4_out_release(&so);
    wk_buf_release(&path);
    return rc;
}
