/* S3 requests on one libcurl multi handle: the engine. A started request
 * owns a private struct s3_xfer that moves between three places: the
 * waiting FIFO (not sent yet), the multi handle (an attempt in flight,
 * counted by n_active) and the delayed list (a retry waiting for its
 * backoff). When it ends, the xfer is freed and the request joins the
 * report queue. Here: the queues, the end of an attempt (retry or finish),
 * driving (poll, wait, run), start and cancel. One attempt on the wire is
 * in s3_wire.c, the client in s3_client.c. */
#include "storage/s3_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/wk_log.h"
#include "storage/s3_http_int.h"
#include "storage/s3_xml.h"
#include "storage/store_hash.h"

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

void s3_client_rq_unlink(struct s3_client *cl, struct s3_req *req)
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

CURL *s3_client_pool_get(struct s3_client *cl)
{
    if (cl->n_pool > 0) {
        CURL *e = cl->pool[--cl->n_pool];
        curl_easy_reset(e);
        return e;
    }
    return curl_easy_init();
}

void s3_client_pool_put(struct s3_client *cl, CURL *e)
{
    if (!e)
        return;
    if (cl->n_pool < cl->opts.max_in_flight)
        cl->pool[cl->n_pool++] = e;
    else
        curl_easy_cleanup(e);
}

void s3_client_describe(const struct s3_client *cl, const struct s3_req *req,
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
    } else if (res != CURLE_OK && !(x->err_cut && !s3_status_ok(x->status))) {
        s3_xfer_net_error(cl, x, res, &e);
        retry = s3_curl_transient(res);
    } else if (!s3_status_ok(x->status)) {
        s3_xfer_http_error(cl, x, x->errbody.data, x->errbody.len, &e);
        retry = wk_err_transient(&e);
        if (!retry && cl->prov && strcmp(e.s3_code, "ExpiredToken") == 0) {
            /* signed just before the credentials' end, arrived after it:
             * new ones, and the request again (as the AWS SDKs do) */
            awsc_provider_expired(cl->prov, cl->snap->gen);
            retry = true;
        }
    } else if (strcmp(req->method, "GET") == 0 && x->status != 200 &&
               x->status != 206) {
        /* 204, 203...: S3 never answers a GET so; no body is not an
         * empty object */
        char what[160];
        s3_client_describe(cl, req, what, sizeof(what));
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
            s3_xfer_http_error(cl, x, body, len, &e);
            retry = wk_err_transient(&e);
        }
    }
    s3_stats_attempt(cl, x, &e,
                     e.code != WK_OK && retry &&
                         req->attempts <= cl->opts.max_retries);
    s3_client_pool_put(cl, x->easy);
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
    if (s3_xfer_send(cl, x, &e) != WK_OK) {
        xfer_finish(cl, x, &e);
        return;
    }
    x->state = XS_ACTIVE;
    list_push(&cl->active, x);
    cl->n_active++;
    s3_stats_in_flight(1);
}

/* Fill free slots: due retries first, then new requests in order. */
static void promote(struct s3_client *cl)
{
    uint64_t now = now_ms();
    struct s3_xfer *x = cl->delayed.head;
    size_t slots = s3_client_slots(cl);

    while (x && cl->n_active < slots) {
        struct s3_xfer *next = x->next;
        if (x->due_ms <= now) {
            list_unlink(&cl->delayed, x);
            activate(cl, x);
        }
        x = next;
    }
    while (cl->waiting.head && cl->n_active < slots) {
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
            s3_client_rq_unlink(cl, cl->rq_head);
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
            s3_client_pool_put(cl, x->easy);
            x->easy = NULL;
            list_unlink(&cl->active, x);
            cl->n_active--;
            s3_stats_in_flight(-1);
        } else if (x->state == XS_WAITING) {
            list_unlink(&cl->waiting, x);
        } else {
            list_unlink(&cl->delayed, x);
        }
        req->xfer = NULL;
        xfer_free(x);
        cl->n_pending--;
        req->done = true;
        s3_client_describe(cl, req, what, sizeof(what));
        wk_err_set(&req->err, WK_E_CANCELLED, "%s: cancelled", what);
    }
    s3_client_rq_unlink(cl, req);
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
    s3_client_rq_unlink(cl, req);
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
    s3_client_describe(cl, req, what, sizeof(what));
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
    x->op = s3_op_of(req->method, req->key != NULL, req->query, req->n_query,
                     req->headers, req->n_headers);
    x->state = XS_WAITING;
    list_push(&cl->waiting, x);
    req->xfer = x;
    cl->n_pending++;
    return WK_OK;
}
