/* The counters of S3 requests: the name of a request's operation
 * (s3_op_of, s3_op_name), each client's counters by operation
 * (s3_client_counts: one store's, so one job's) and the process-wide ones
 * over every client (s3_http_stats): attempts and retries by operation,
 * bytes each way, attempts in flight and failed attempts by code, behind
 * one mutex. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/wk_log.h"
#include "storage/s3_http_int.h"

static pthread_mutex_t stats_mu = PTHREAD_MUTEX_INITIALIZER;
static struct s3_http_stats stats;

static const char *const op_names[S3_OP_N] = {
    [S3_OP_OTHER] = "Other",
    [S3_OP_GET_OBJECT] = "GetObject",
    [S3_OP_HEAD_OBJECT] = "HeadObject",
    [S3_OP_PUT_OBJECT] = "PutObject",
    [S3_OP_COPY_OBJECT] = "CopyObject",
    [S3_OP_DELETE_OBJECT] = "DeleteObject",
    [S3_OP_DELETE_OBJECTS] = "DeleteObjects",
    [S3_OP_LIST_OBJECTS_V2] = "ListObjectsV2",
    [S3_OP_LIST_OBJECTS] = "ListObjects",
    [S3_OP_LIST_OBJECT_VERSIONS] = "ListObjectVersions",
    [S3_OP_CREATE_MULTIPART_UPLOAD] = "CreateMultipartUpload",
    [S3_OP_UPLOAD_PART] = "UploadPart",
    [S3_OP_UPLOAD_PART_COPY] = "UploadPartCopy",
    [S3_OP_COMPLETE_MULTIPART_UPLOAD] = "CompleteMultipartUpload",
    [S3_OP_ABORT_MULTIPART_UPLOAD] = "AbortMultipartUpload",
    [S3_OP_LIST_PARTS] = "ListParts",
    [S3_OP_LIST_MULTIPART_UPLOADS] = "ListMultipartUploads",
    [S3_OP_GET_BUCKET_VERSIONING] = "GetBucketVersioning",
    [S3_OP_PUT_BUCKET_VERSIONING] = "PutBucketVersioning",
    [S3_OP_HEAD_BUCKET] = "HeadBucket",
    [S3_OP_CREATE_BUCKET] = "CreateBucket",
    [S3_OP_DELETE_BUCKET] = "DeleteBucket",
};

const char *s3_op_name(enum s3_op op)
{
    if ((int)op < 0 || op >= S3_OP_N || !op_names[op])
        return "Other";
    return op_names[op];
}

static bool has_param(const struct s3_kv *q, size_t n, const char *name)
{
    for (size_t i = 0; q && i < n; i++)
        if (q[i].name && strcmp(q[i].name, name) == 0)
            return true;
    return false;
}

enum s3_op s3_op_of(const char *method, bool has_key, const struct s3_kv *query,
                    size_t n_query, const struct s3_kv *headers,
                    size_t n_headers)
{
    bool copy = false;

    if (!method)
        return S3_OP_OTHER;
    for (size_t i = 0; headers && i < n_headers; i++)
        if (headers[i].name &&
            strcasecmp(headers[i].name, "x-amz-copy-source") == 0)
            copy = true;
#define Q(name) has_param(query, n_query, name)
    if (strcmp(method, "GET") == 0) {
        if (has_key)
            return Q("uploadId") ? S3_OP_LIST_PARTS : S3_OP_GET_OBJECT;
        if (Q("versioning"))
            return S3_OP_GET_BUCKET_VERSIONING;
        if (Q("uploads"))
            return S3_OP_LIST_MULTIPART_UPLOADS;
        if (Q("versions"))
            return S3_OP_LIST_OBJECT_VERSIONS;
        if (Q("list-type"))
            return S3_OP_LIST_OBJECTS_V2;
        /* a bucket GET with some other subresource is not a listing */
        return n_query == 0 || Q("prefix") || Q("marker") || Q("delimiter")
                   ? S3_OP_LIST_OBJECTS
                   : S3_OP_OTHER;
    }
    if (strcmp(method, "HEAD") == 0)
        return has_key ? S3_OP_HEAD_OBJECT : S3_OP_HEAD_BUCKET;
    if (strcmp(method, "PUT") == 0) {
        if (!has_key) {
            if (Q("versioning"))
                return S3_OP_PUT_BUCKET_VERSIONING;
            return n_query == 0 ? S3_OP_CREATE_BUCKET : S3_OP_OTHER;
        }
        if (Q("partNumber") && Q("uploadId"))
            return copy ? S3_OP_UPLOAD_PART_COPY : S3_OP_UPLOAD_PART;
        if (n_query == 0)
            return copy ? S3_OP_COPY_OBJECT : S3_OP_PUT_OBJECT;
        return S3_OP_OTHER;
    }
    if (strcmp(method, "POST") == 0) {
        if (!has_key)
            return Q("delete") ? S3_OP_DELETE_OBJECTS : S3_OP_OTHER;
        if (Q("uploads"))
            return S3_OP_CREATE_MULTIPART_UPLOAD;
        if (Q("uploadId"))
            return S3_OP_COMPLETE_MULTIPART_UPLOAD;
        return S3_OP_OTHER;
    }
    if (strcmp(method, "DELETE") == 0) {
        if (!has_key)
            return n_query == 0 ? S3_OP_DELETE_BUCKET : S3_OP_OTHER;
        if (Q("uploadId"))
            return S3_OP_ABORT_MULTIPART_UPLOAD;
        return S3_OP_DELETE_OBJECT; /* versionId too: still DeleteObject */
    }
#undef Q
    return S3_OP_OTHER;
}

static void count(struct s3_op_counts *c, enum s3_op op, bool retry,
                  uint64_t up, uint64_t down)
{
    c->requests[op]++;
    c->retries[op] += retry;
    c->bytes_sent += up;
    c->bytes_received += down;
}

void s3_client_counts(const struct s3_client *cl, struct s3_op_counts *out)
{
    *out = cl->counts;
}

void s3_stats_attempt(struct s3_client *cl, const struct s3_xfer *x,
                      const struct wk_err *e, bool retry)
{
    curl_off_t up = 0, down = 0;
    enum s3_op op = x->op < S3_OP_N ? x->op : S3_OP_OTHER;
    uint64_t nup, ndown;

    curl_easy_getinfo(x->easy, CURLINFO_SIZE_UPLOAD_T, &up);
    curl_easy_getinfo(x->easy, CURLINFO_SIZE_DOWNLOAD_T, &down);
    nup = up > 0 ? (uint64_t)up : 0;
    ndown = down > 0 ? (uint64_t)down : 0;
    count(&cl->counts, op, retry, nup, ndown); /* the client's thread */
    WK_LOG(WK_LOG_DEBUG, "s3.request.done", KV_STR("bucket", cl->bucket),
           KV_STR("key", x->req->key ? x->req->key : ""),
           KV_STR("op", op_names[op]), KV_INT("http_status", x->status),
           KV_INT("attempt", x->req->attempts), KV_BOOL("retried", retry));
    pthread_mutex_lock(&stats_mu);
    count(&stats.ops, op, retry, nup, ndown);
    stats.requests++;
    stats.retries += retry;
    stats.bytes_sent += nup;
    stats.bytes_received += ndown;
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

void s3_stats_in_flight(int delta)
{
    pthread_mutex_lock(&stats_mu);
    stats.in_flight += delta;
    pthread_mutex_unlock(&stats_mu);
}
