/*
 * s3_http_int: what the files of s3_http (s3_http.c the engine, s3_wire.c
 * one attempt on the wire, s3_client.c the client, s3_stats.c the counters,
 * s3_presign.c presigned URLs) share: the client and per-request structs
 * and the helpers they call across files. Not for use outside storage/.
 */
#ifndef WK_STORAGE_S3_HTTP_INT_H
#define WK_STORAGE_S3_HTTP_INT_H

#include <stdatomic.h>
#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/aws_creds.h"
#include "storage/s3_http.h"

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
    enum s3_op op;                 /* what the request is (s3_op_of) */
    bool err_cut;                  /* error body past its cap: stopped */
    struct wk_err cb_err;          /* a sink or buffer failure: final */
    char resume_etag[S3_ETAG_MAX]; /* the body's ETag, for If-Match */
    char errbuf[CURL_ERROR_SIZE];
};

struct s3_client {
    struct store_opts opts;     /* owned copy, secrets included; wiped */
    struct s3_creds creds;      /* borrows from opts or snap */
    struct awsc_provider *prov; /* borrowed (process-wide), NULL: static */
    struct awsc_creds *snap;    /* owned: prov's credentials; wiped */
    char *bucket;               /* owned */
    char base_url[400];         /* "http://127.0.0.1:9000" */
    char host[384];             /* Host header, as signed */
    char path_base[600];        /* "/bucket" (path-style) or "" */
    CURLM *multi;               /* owned */
    CURL **pool;                /* owned: idle easy handles */
    size_t n_pool;
    struct xfer_list waiting, active, delayed;
    size_t n_active;                  /* attempts in the multi handle */
    size_t n_pending;                 /* started and not done */
    struct s3_req *rq_head, *rq_tail; /* report queue (borrowed) */
    uint64_t completions;
    uint64_t rng;
    bool global_init;
    /* s3_client_throttle: while *gate is non-zero, at most gate_cap
     * attempts in flight (borrowed; NULL = never) */
    const atomic_uint *gate;
    unsigned gate_cap;
    struct s3_op_counts counts; /* this client's requests (s3_stats.c) */
};

static inline bool s3_status_ok(long st)
{
    return st >= 200 && st < 300;
}

/* s3_http.c: the engine */
CURL *s3_client_pool_get(struct s3_client *cl);
void s3_client_pool_put(struct s3_client *cl, CURL *e);
void s3_client_rq_unlink(struct s3_client *cl, struct s3_req *req);
/* "GET 'key'" or "GET bucket 'name'": how messages name a request. */
void s3_client_describe(const struct s3_client *cl, const struct s3_req *req,
                        char *buf, size_t len);

/* s3_client.c: the credentials to sign with now (cl->creds), refreshed
 * from the provider when it has newer ones; fails only when there are no
 * valid credentials. */
enum wk_code s3_client_sign_creds(struct s3_client *cl, struct wk_err *err);

/* s3_wire.c: one attempt */
/* Sign and build the attempt of x, hand it to the multi handle. */
enum wk_code s3_xfer_send(struct s3_client *cl, struct s3_xfer *x,
                          struct wk_err *err);
/* A curl failure worth another attempt. */
bool s3_curl_transient(CURLcode res);
void s3_xfer_net_error(struct s3_client *cl, struct s3_xfer *x, CURLcode res,
                       struct wk_err *e);
/* An HTTP failure with the S3 code and message from body, if any. */
void s3_xfer_http_error(struct s3_client *cl, const struct s3_xfer *x,
                        const char *body, size_t len, struct wk_err *e);

/* s3_stats.c: the client's and the process-wide counters */
/* An attempt of x (on x->easy) ended with e (retry: it is sent again):
 * counted for x->op in the client's counters and the process's. */
void s3_stats_attempt(struct s3_client *cl, const struct s3_xfer *x,
                      const struct wk_err *e, bool retry);
/* An attempt went on the wire (+1) or was taken off it unfinished (-1). */
void s3_stats_in_flight(int delta);

#endif
