/*
 * s3_sigv4: AWS Signature Version 4 for S3 requests (header signing), with
 * OpenSSL HMAC-SHA256. Pure functions: no I/O, no globals, nothing blocks.
 *
 * The caller passes the raw (unencoded) path and query parameters; the
 * signer encodes them exactly as S3 expects (RFC 3986 unreserved characters
 * kept, everything else %XX in uppercase hex over UTF-8 bytes, '/' kept in
 * the path, encoded in query values) and returns the encoded path and the
 * canonical query string so the HTTP layer sends exactly what was signed.
 *
 * Signed headers: host, x-amz-content-sha256, x-amz-date,
 * x-amz-security-token (when a session token is set) plus every header in
 * req->headers. out owns its buffers: release with s3_sigv4_out_release().
 * Secrets never appear in err messages.
 */
#ifndef WK_STORAGE_S3_SIGV4_H
#define WK_STORAGE_S3_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "common/wk_buf.h"
#include "common/wk_err.h"

struct s3_kv {
    const char *name;  /* borrowed */
    const char *value; /* borrowed; "" for a valueless query parameter */
};

struct s3_creds { /* all borrowed for the duration of the call */
    const char *access_key;
    const char *secret_key;
    const char *session_token; /* NULL or "" when none */
};

struct s3_sigv4_req {
    const char *method; /* "GET", "PUT", ... */
    const char *host;   /* Host header value: "b.s3.amazonaws.com",
                           "127.0.0.1:9000" */
    const char *path;   /* raw path starting with '/': "/bucket/a b.txt" */
    const struct s3_kv *query; /* raw names/values, any order */
    size_t n_query;
    const struct s3_kv *headers; /* extra headers to sign (content-md5,
                                    content-type, x-amz-*), any case */
    size_t n_headers;
    const char *payload_hash; /* lowercase hex SHA-256 or
                                 "UNSIGNED-PAYLOAD" */
    const char *region;       /* "us-east-1" */
    const char *service;      /* "s3" */
    time_t now;               /* request time (UTC) */
};

struct s3_sigv4_out {
    char amz_date[17];          /* "20130524T000000Z": send as x-amz-date */
    char signature[65];         /* lowercase hex */
    char authorization[1024];   /* full Authorization header value */
    struct wk_buf encoded_path; /* send this path */
    struct wk_buf query_string; /* canonical query: send after '?' */
    struct wk_buf canonical_request; /* for tests; never log it */
    struct wk_buf string_to_sign;    /* for tests; never log it */
};

void s3_sigv4_out_init(struct s3_sigv4_out *out);
void s3_sigv4_out_release(struct s3_sigv4_out *out);

/* Sign one request. Refuses (WK_E_INVAL) caller-supplied host, x-amz-date,
 * x-amz-content-sha256, x-amz-security-token and authorization headers, and
 * header values with control characters; repeated header names are merged
 * as "a,b". out is reset on each call (so it can be reused for a retry) and
 * cleared on failure. The caller sends Host exactly as req->host, and
 * x-amz-security-token itself when a token is set. */
enum wk_code s3_sigv4_sign(const struct s3_sigv4_req *req,
                           const struct s3_creds *creds,
                           struct s3_sigv4_out *out, struct wk_err *err);

/* A presigned URL's query (query-string signing, "UNSIGNED-PAYLOAD",
 * only the Host header signed), valid expires_s seconds (1..604800) from
 * req->now: out->query_string receives everything after '?' (req->query, the
 * X-Amz-* parameters, then X-Amz-Signature), out->encoded_path the path.
 * req->headers must be empty; req->payload_hash is ignored. */
enum wk_code s3_sigv4_presign(const struct s3_sigv4_req *req,
                              const struct s3_creds *creds, unsigned expires_s,
                              struct s3_sigv4_out *out, struct wk_err *err);

/* S3 URI encoding of (s, n) appended to out; keep_slash leaves '/' as is
 * (paths) and encodes it otherwise (query names and values). */
enum wk_code s3_uri_encode(const char *s, size_t n, bool keep_slash,
                           struct wk_buf *out, struct wk_err *err);

#endif
