/*
 * s3_http: S3 requests over libcurl's multi interface, many in flight at
 * once on one thread, with SigV4 signing, retries and error mapping.
 *
 * A struct s3_client talks to one bucket. It owns one CURLM (connection
 * cache, so connections are reused), at most opts->max_in_flight transfers
 * run at once and the rest wait in FIFO order. Every attempt is signed with
 * s3_sigv4_sign() when it is sent and sends exactly the path and query the
 * signer encoded.
 *
 * Requests: the caller owns each struct s3_req. Fill it after
 * s3_req_init(), then s3_client_start() it; the client borrows the request
 * and everything it points to until the request is done (req->done) or
 * cancelled. Results (status, captured headers, body, err) are then in the
 * request. A done request stays in the client's report queue until
 * s3_client_poll() hands it out, s3_client_wait()/s3_client_run() return
 * for it, or s3_client_cancel() drops it: call s3_client_cancel() before
 * freeing a request you are not sure was reported (it is always safe).
 *
 * Driving: nothing moves unless the caller drives the client with
 * s3_client_poll() (non-blocking with timeout_ms = 0), s3_client_wait() or
 * s3_client_run(). Any of them drives every started request, whoever
 * started it: a multipart writer's parts keep uploading while another
 * caller waits for its GETs. Not thread-safe: one thread per client. A
 * sink runs inside the driving call and must not call s3_client_* itself.
 *
 * Retries: connection errors, timeouts, resets, HTTP 5xx, 408, 429 and the
 * S3 codes SlowDown, RequestTimeout and InternalError are retried up to
 * opts->max_retries times with exponential backoff and full jitter (base
 * 100 ms, cap 5 s) without blocking other transfers; each retry is logged
 * at warn as "s3.request.retried". A body streamed to a sink resumes with
 * a Range and If-Match on the first attempt's ETag instead of repeating
 * bytes; a body into a wk_buf is truncated back and fetched again.
 *
 * Errors (req->err, first failure wins): WK_E_NET for curl failures
 * (sys_errno when known), WK_E_HTTP for other statuses (http_status and
 * s3_code set, message "GET 'key': HTTP 503 SlowDown: <Message>"),
 * WK_E_NOTFOUND for 404 NoSuchKey / NoSuchUpload and a HEAD 404,
 * WK_E_CONFLICT for 412 and 416, WK_E_LIMIT when a body passes its buffer's
 * cap, and the sink's own code when a sink fails (never retried). A 2xx
 * reply to a request with a Range must be for the bytes asked for (a 206
 * whose Content-Range starts there and ends within the range, or a 200
 * when the range starts at 0), else WK_E_CORRUPT before any byte reaches
 * the sink or buffer; a GET answered with a 2xx other than 200 or 206 is
 * WK_E_HTTP. Neither is retried. An error body is read up to
 * S3_ERR_BODY_MAX only, then the transfer stops. Messages name the method
 * and key, never credentials, signatures or headers.
 */
#ifndef WK_STORAGE_S3_HTTP_H
#define WK_STORAGE_S3_HTTP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/wk_buf.h"
#include "common/wk_err.h"
#include "storage/s3_sigv4.h"
#include "storage/store.h"

#define S3_RETRY_BASE_MS 100
#define S3_RETRY_CAP_MS  5000
#define S3_MAX_HEADERS   8           /* extra headers per request */
#define S3_ERR_BODY_MAX  (64u << 10) /* error bodies kept for parsing */
#define S3_ETAG_MAX      80

struct s3_client;
struct s3_xfer; /* private per-request state */

enum s3_req_flags {
    /* Sign "UNSIGNED-PAYLOAD" instead of the body's SHA-256. */
    S3_REQ_UNSIGNED_PAYLOAD = 1 << 0,
    /* A 2xx reply whose body is an <Error> document is a failure (S3 does
     * this for CompleteMultipartUpload and CopyObject). */
    S3_REQ_ERROR_IN_2XX = 1 << 1,
};

struct s3_req {
    /* Inputs (borrowed until done or cancelled). */
    const char *method;        /* "GET", "HEAD", "PUT", "POST", "DELETE" */
    const char *key;           /* raw object key; NULL for the bucket */
    const struct s3_kv *query; /* raw names and values */
    size_t n_query;
    const struct s3_kv *headers; /* extra headers, signed; at most
                                    S3_MAX_HEADERS; not Range */
    size_t n_headers;
    const void *body; /* request body, body_len bytes (PUT, POST) */
    size_t body_len;
    bool ranged;        /* send "Range: bytes=range_off-..." */
    uint64_t range_off; /* first byte */
    uint64_t range_len; /* bytes; UINT64_MAX: to the end */
    unsigned flags;     /* enum s3_req_flags */
    /* Where a 2xx body goes: to sink if set, else appended to out if set,
     * else dropped. Error bodies never reach either. */
    store_sink_cb sink;
    void *sink_ud;
    struct wk_buf *out;
    void *ud; /* the caller's, untouched */

    /* Outputs, valid once done. */
    bool done;
    long http_status;       /* last reply's status, 0 if none */
    unsigned attempts;      /* attempts sent */
    char etag[S3_ETAG_MAX]; /* ETag header, quotes removed, or "" */
    bool has_content_length;
    uint64_t content_length; /* Content-Length header */
    int64_t last_modified;   /* Last-Modified, unix seconds, or 0 */
    char content_range[96];  /* Content-Range header or "" */
    uint64_t received;       /* 2xx body bytes delivered (all attempts) */
    struct wk_err err;       /* the outcome */

    /* Private to s3_http. */
    struct s3_xfer *xfer;
    struct s3_req *rq_prev, *rq_next;
    bool in_report_queue;
};

/* Zero the request; set inputs afterwards. Holds no resources. */
void s3_req_init(struct s3_req *req);

/* A client for bucket with opts (copied, secrets included; the copy is
 * wiped by s3_client_free()). Endpoint: opts->endpoint gives path-style
 * "<endpoint>/<bucket>/<key>", else virtual-hosted
 * "https://<bucket>.s3.<region>.amazonaws.com/<key>". Release with
 * s3_client_free(). */
enum wk_code s3_client_new(const struct store_opts *opts, const char *bucket,
                           struct s3_client **out, struct wk_err *err);

/* Cancel whatever is still started, then release. NULL does nothing. */
void s3_client_free(struct s3_client *cl);

/* The bucket this client talks to (borrowed, valid until free). */
const char *s3_client_bucket(const struct s3_client *cl);

/* The cap on the body of small replies (listings, errors): from
 * opts->max_small_body. */
size_t s3_client_max_small_body(const struct s3_client *cl);

/* The opts->max_in_flight the client was created with. */
unsigned s3_client_max_in_flight(const struct s3_client *cl);
/* While *gate is non-zero, start new attempts only while fewer than cap
 * (>= 1) are in flight; those already sent run on. gate is borrowed and
 * read atomically on every scheduling step; NULL or cap 0 = no limit. */
void s3_client_throttle(struct s3_client *cl, const atomic_uint *gate,
                        unsigned cap);
/* The attempts that may be in flight now (max_in_flight, or the throttle's
 * cap while its gate is up). */
size_t s3_client_slots(const struct s3_client *cl);

/* Queue req (clears its outputs); it is sent as soon as a slot is free.
 * Fails only on a bad request (WK_E_INVAL) or memory; then req is not
 * started and the error is in both err and req->err. */
enum wk_code s3_client_start(struct s3_client *cl, struct s3_req *req,
                             struct wk_err *err);

/* Drive every started request for up to timeout_ms (-1: no limit; 0: one
 * non-blocking pass). Returns when a request completed during the call or,
 * if completed is not NULL, as soon as the report queue holds one: it is
 * popped into *completed (else *completed = NULL). Also returns at once
 * when nothing is started. Per-request failures are in the requests; the
 * return value is WK_OK unless libcurl itself failed. */
enum wk_code s3_client_poll(struct s3_client *cl, int timeout_ms,
                            struct s3_req **completed, struct wk_err *err);

/* Drive until req (started) is done; drops it from the report queue and
 * returns its outcome (copied into err). */
enum wk_code s3_client_wait(struct s3_client *cl, struct s3_req *req,
                            struct wk_err *err);

/* Start reqs[0..n), wait for all of them and return WK_OK or the first
 * failure in index order (copied into err); each keeps its own outcome. */
enum wk_code s3_client_run(struct s3_client *cl, struct s3_req *reqs, size_t n,
                           struct wk_err *err);

/* Detach req from the client: a request still queued or in flight is
 * stopped (done, WK_E_CANCELLED); a done one leaves the report queue.
 * Afterwards the client holds no pointer to req. NULL-safe. */
void s3_client_cancel(struct s3_client *cl, struct s3_req *req);

/* Requests started and not yet done (queued, in flight or waiting to be
 * retried). */
size_t s3_client_pending(const struct s3_client *cl);

/* A presigned GET URL of key (full key, prefix included) valid for
 * expires_s seconds from now, into url (replaced). Secret: never log it. */
enum wk_code s3_client_presign(struct s3_client *cl, const char *key,
                               unsigned expires_s, time_t now,
                               struct wk_buf *url, struct wk_err *err);

/* The S3 API operation of a request (s3_op_of), named as in the S3 API
 * reference by s3_op_name(): "GetObject", "UploadPartCopy", ... */
enum s3_op {
    S3_OP_OTHER, /* "Other": a request none of the names below fits */
    S3_OP_GET_OBJECT,
    S3_OP_HEAD_OBJECT,
    S3_OP_PUT_OBJECT,
    S3_OP_COPY_OBJECT,
    S3_OP_DELETE_OBJECT,
    S3_OP_DELETE_OBJECTS,
    S3_OP_LIST_OBJECTS_V2,
    S3_OP_LIST_OBJECTS,
    S3_OP_LIST_OBJECT_VERSIONS,
    S3_OP_CREATE_MULTIPART_UPLOAD,
    S3_OP_UPLOAD_PART,
    S3_OP_UPLOAD_PART_COPY,
    S3_OP_COMPLETE_MULTIPART_UPLOAD,
    S3_OP_ABORT_MULTIPART_UPLOAD,
    S3_OP_LIST_PARTS,
    S3_OP_LIST_MULTIPART_UPLOADS,
    S3_OP_GET_BUCKET_VERSIONING,
    S3_OP_PUT_BUCKET_VERSIONING,
    S3_OP_HEAD_BUCKET,
    S3_OP_CREATE_BUCKET,
    S3_OP_DELETE_BUCKET,
    S3_OP_N
};

/* The API name of op ("Other" for S3_OP_OTHER or a value out of range);
 * a static string. */
const char *s3_op_name(enum s3_op op);

/* The operation a request is, from what it sends: the method, whether it
 * names an object (has_key), its query parameters (by name: "uploads",
 * "uploadId", "partNumber", "list-type", "versions", "delete",
 * "versioning") and the x-amz-copy-source header. Pure. */
enum s3_op s3_op_of(const char *method, bool has_key, const struct s3_kv *query,
                    size_t n_query, const struct s3_kv *headers,
                    size_t n_headers);

/* Requests by operation: attempts that completed (retries included, as
 * they are billed) and, of those, the attempts that were sent again; and
 * the body bytes of every attempt each way. */
struct s3_op_counts {
    uint64_t requests[S3_OP_N];
    uint64_t retries[S3_OP_N];
    uint64_t bytes_sent, bytes_received;
};

/* What cl has sent since s3_client_new() (the client's own counters, so
 * one store's, one job's). Not thread-safe, like the client. */
void s3_client_counts(const struct s3_client *cl, struct s3_op_counts *out);

/* Process-wide counters over every client, for metrics. */
#define S3_STATS_CODES 24
struct s3_http_stats {
    uint64_t requests;       /* attempts that completed (retries included) */
    uint64_t retries;        /* attempts that were retried */
    struct s3_op_counts ops; /* the same by operation, and bytes */
    uint64_t bytes_sent, bytes_received; /* bodies, every attempt */
    int64_t in_flight;                   /* attempts on the wire now */
    size_t n_errors;
    struct {
        char code[40]; /* S3 error code, "HTTP <status>" or the wk code */
        uint64_t count;
    } errors[S3_STATS_CODES]; /* failed attempts by code (the rest of the
                                 codes add to the last one, "other") */
};
void s3_http_stats(struct s3_http_stats *out);

/* Content-MD5 header value: base64 of the MD5 of (p, n); out >= 25. */
void s3_content_md5(const void *p, size_t n, char out[25]);

#endif
