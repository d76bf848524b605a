/*
 * store: where bytes live. One interface, several backends (STYLE 2.8):
 * S3 (store_s3_new), a local directory (store_fs_new) and memory for tests
 * (store_mem_new). Every job is written against struct store only.
 *
 * Keys are relative to the store's root (a bucket prefix or a directory):
 * "active/<spaceId>/space-v1/space.json". They are UTF-8, never start with
 * '/', and never contain "." or ".." components (backends refuse them).
 *
 * Ownership: a store is owned by whoever opened it and released with
 * store_free(). Writers are owned by the caller of store_open_write() and
 * released with store_writer_free(), which aborts an uncommitted object.
 * Strings in callbacks are borrowed for the duration of the call.
 *
 * Blocking: every call blocks until done (the S3 backend drives many
 * transfers at once inside one call, with libcurl multi). Errors come back
 * as enum wk_code plus struct wk_err; transient ones (network, 5xx,
 * throttling) have already been retried with backoff when they surface.
 */
#ifndef WK_STORAGE_STORE_H
#define WK_STORAGE_STORE_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/wk_buf.h"
#include "common/wk_err.h"

struct store;
struct store_writer;
struct store_pending;   /* a batch of GETs in flight (get_start) */
struct store_put_batch; /* a batch of PUTs in flight (put_start) */

/* One object in a listing. */
struct store_entry {
    const char *key; /* borrowed, relative to the store root */
    uint64_t size;
    int64_t mtime;    /* unix seconds (S3 LastModified, file mtime) */
    const char *etag; /* borrowed; S3 ETag with quotes removed, or a
                         backend-specific change tag; never NULL */
    bool is_prefix;   /* a common prefix (delimiter listings): only key set */
};

/* Called once per entry, in key order (byte order of UTF-8). Returning
 * anything but WK_OK stops the listing and is returned by store_list(). */
typedef enum wk_code (*store_list_cb)(const struct store_entry *e, void *ud,
                                      struct wk_err *err);

/* Receives a streamed object's bytes in order; non-WK_OK stops the read. */
typedef enum wk_code (*store_sink_cb)(const void *p, size_t n, void *ud,
                                      struct wk_err *err);

struct store_stat {
    uint64_t size;
    int64_t mtime;
    char etag[80];
};

/* One request of a batch GET (store_get_many). */
struct store_get {
    const char *key;    /* borrowed */
    uint64_t offset;    /* first byte */
    uint64_t len;       /* bytes wanted; exactly this many must arrive */
    struct wk_buf *out; /* borrowed; the bytes are appended */
    struct wk_err err;  /* this request's outcome */
    /* borrowed; NULL or "": any version. Else the read succeeds only while
     * the object's ETag is this one, WK_E_CONFLICT otherwise (S3 If-Match,
     * atomic; fs and mem compare before reading). */
    const char *if_match;
    /* NULL, or receives the ETag of the version read (sizeof
     * store_stat.etag bytes): from the same response on S3, so body and
     * ETag always belong together; fs and mem look it up before reading. */
    char *etag_out;
};

/* One request of a batch PUT (store_put_many). */
struct store_put {
    const char *key;  /* borrowed */
    const void *data; /* borrowed */
    size_t len;
    struct wk_err err; /* this request's outcome */
    /* Only if no object has the key (S3 If-None-Match: *; fs, mem: as
     * put_if with ""): an existing object is kept and this request fails
     * with WK_E_CONFLICT. A server that ignores the header overwrites. */
    bool if_absent;
    /* Out: the ETag the store gave this PUT (S3: from its own response,
     * quotes removed; fs, mem: looked up right after the write), or "" when
     * it failed or the store did not say. */
    char etag[80];
};

struct store_writer_opts {
    uint64_t part_bytes;      /* multipart part size (S3); >= 5 MiB */
    unsigned parts_in_flight; /* concurrent part uploads (S3); >= 1 */
    /* S3: continue this unfinished multipart upload (of the same key)
     * instead of creating one. Its parts are listed (ListParts), and a
     * part about to be sent whose size and MD5 equal a listed part's is
     * not sent again. When the upload is gone, or the server cannot list
     * parts, a new upload is made. NULL: a new upload. Others ignore it. */
    const char *resume_upload_id;
    /* Called with the upload's id once it exists (created or resumed), so
     * that the caller can record it; may be NULL. */
    void (*on_upload)(void *ud, const char *upload_id);
    void *on_upload_ud;
    /* S3: when *keep_if is set at free time, an uncommitted upload is left
     * open (not aborted), for a later writer to resume (a job handed back
     * at shutdown). NULL: always aborted. Others ignore it. */
    const volatile sig_atomic_t *keep_if;
};

/* The requests a store has sent since it was opened (store_requests): by
 * S3 operation name ("GetObject", "PutObject", "ListObjectsV2", ...),
 * only the operations it used, in a fixed order. requests counts every
 * attempt that completed (retries included: each is billed); retries
 * counts the attempts that were sent again; bytes are request and
 * response bodies, every attempt. fs and mem send no requests: zeros. */
#define STORE_REQ_OPS_MAX 32
struct store_requests {
    size_t n_ops;
    struct {
        const char *op; /* static: the S3 API name */
        uint64_t requests, retries;
    } ops[STORE_REQ_OPS_MAX];
    uint64_t requests, retries;   /* over every operation */
    uint64_t bytes_in, bytes_out; /* response / request bodies */
};

/* What a backend can do (store_features). fs and mem can do everything;
 * an S3 server is probed once per process and bucket (storage/s3_probe.c)
 * or pinned by the operator (SILA_S3_FEATURES). */
enum store_feature {
    STORE_F_COND_PUT = 1 << 0,    /* put_if / if_absent are atomic */
    STORE_F_COND_DELETE = 1 << 1, /* delete_if is atomic per key */
    STORE_F_VERSIONING = 1 << 2,  /* versions kept: delete_if removes exactly
                                     the version with the given ETag */
    STORE_F_PART_COPY = 1 << 3,   /* server-side copy of a part */
    STORE_F_LIST_PARTS = 1 << 4,  /* parts of an upload can be listed */
    STORE_F_DELETE_MD5 = 1 << 5,  /* batched deletes (DeleteObjects) */
};

#define STORE_F_ALL                                                \
    (STORE_F_COND_PUT | STORE_F_COND_DELETE | STORE_F_VERSIONING | \
     STORE_F_PART_COPY | STORE_F_LIST_PARTS | STORE_F_DELETE_MD5)

struct store_ops {
    const char *name; /* "s3", "fs", "mem": appears in logs */
    /* Every object whose key starts with prefix, in key order. With a
     * delimiter ("/"), keys containing it after the prefix are rolled up
     * into one is_prefix entry each (like S3's CommonPrefixes). */
    enum wk_code (*list)(struct store *st, const char *prefix,
                         const char *delimiter, store_list_cb cb, void *ud,
                         struct wk_err *err);
    /* Optional (NULL: store_list_after() filters list). The entries of
     * list whose key is strictly greater than start_after (NULL or "":
     * all): objects and, with a delimiter, common prefixes (S3's
     * start-after, with a prefix <= start_after dropped even when keys
     * above start_after roll up into it). Cheaper than list: it starts
     * there (S3: one parameter; fs: skipped subtrees; mem: a search). */
    enum wk_code (*list_after)(struct store *st, const char *prefix,
                               const char *delimiter, const char *start_after,
                               store_list_cb cb, void *ud, struct wk_err *err);
    /* WK_E_NOTFOUND when the key does not exist. */
    enum wk_code (*head)(struct store *st, const char *key,
                         struct store_stat *out, struct wk_err *err);
    /* Stream len bytes from offset (len == UINT64_MAX: to the end). */
    enum wk_code (*get)(struct store *st, const char *key, uint64_t offset,
                        uint64_t len, store_sink_cb sink, void *ud,
                        struct wk_err *err);
    /* Fetch n ranges, as many at once as the backend allows. Returns WK_OK
     * when all succeeded, else the first failure (each has its own err). */
    enum wk_code (*get_many)(struct store *st, struct store_get *reqs, size_t n,
                             struct wk_err *err);
    /* Optional (NULL: store_get_start() runs get_many at once). Start the
     * GETs of reqs and return without waiting; they progress whenever the
     * store is pumped or waited on (also by its writers), and get_finish
     * waits for them, fills every req as get_many does, returns the same
     * and frees *p. reqs and their buffers stay the caller's and must
     * outlive p. On failure nothing is started and *p is NULL. */
    enum wk_code (*get_start)(struct store *st, struct store_get *reqs,
                              size_t n, struct store_pending **p,
                              struct wk_err *err);
    enum wk_code (*get_finish)(struct store *st, struct store_pending *p,
                               struct wk_err *err);
    /* Stop what p still has in flight and free it (an error path: the
     * reqs' outcomes are then undefined). */
    void (*get_abandon)(struct store *st, struct store_pending *p);
    /* Optional: move started requests along without blocking. */
    void (*pump)(struct store *st);
    /* Optional (S3 only): a URL anyone can GET key with, for expires_s
     * seconds (SigV4 query signing), into url. A secret: never log it. */
    enum wk_code (*presign)(struct store *st, const char *key,
                            unsigned expires_s, struct wk_buf *url,
                            struct wk_err *err);
    /* Optional (S3; NULL: nothing to limit). While *gate is non-zero, keep
     * at most cap requests in flight (a background job gives way while an
     * urgent one of its process runs); gate is borrowed, read atomically
     * at every scheduling step, and must outlive the store. cap 0 = off. */
    void (*throttle)(struct store *st, const atomic_uint *gate, unsigned cap);
    /* Optional (NULL: STORE_F_ALL). The enum store_feature flags of the
     * store, found on the first call (S3: the probe, which writes and
     * deletes one object under metadata/.sila-probe/, unless pinned) and
     * cached. A store that is only read (a migrate source) is never asked.
     * Failure (the probe could not run: network, credentials) is not
     * cached: the next call tries again. */
    enum wk_code (*features)(struct store *st, unsigned *flags,
                             struct wk_err *err);
    /* Write a whole object atomically (readers see old or new). */
    enum wk_code (*put)(struct store *st, const char *key, const void *p,
                        size_t n, struct wk_err *err);
    /* Like put, only if the object is still what the caller saw: if_match
     * "" = it must not exist, else its etag must equal if_match. A failed
     * precondition is WK_E_CONFLICT (fencing: a stale writer never
     * overwrites a newer state). etag_out (may be NULL) receives the new etag.
     * S3: If-Match / If-None-Match; fs: under an flock of the directory;
     * mem: under its lock. */
    enum wk_code (*put_if)(struct store *st, const char *key, const void *p,
                           size_t n, const char *if_match, char *etag_out,
                           size_t etag_len, struct wk_err *err);
    /* Like put, n objects at once; results as in get_many. */
    enum wk_code (*put_many)(struct store *st, struct store_put *reqs, size_t n,
                             struct wk_err *err);
    /* Optional (NULL: store_put_start() runs put_many at once). Start the
     * PUTs of reqs and return without waiting; they progress whenever the
     * store is pumped or waited on (also by GETs and writers), and
     * put_finish waits for them, fills every req as put_many does, returns
     * the same and frees *p. reqs and their data stay the caller's and
     * must outlive p. On failure nothing is started and *p is NULL. */
    enum wk_code (*put_start)(struct store *st, struct store_put *reqs,
                              size_t n, struct store_put_batch **p,
                              struct wk_err *err);
    enum wk_code (*put_finish)(struct store *st, struct store_put_batch *p,
                               struct wk_err *err);
    /* Stop what p still has in flight and free it (an error path: which
     * of its PUTs landed is then unknown). */
    void (*put_abandon)(struct store *st, struct store_put_batch *p);
    /* Start a streamed object (multipart on S3, .partial file on fs). */
    enum wk_code (*open_write)(struct store *st, const char *key,
                               const struct store_writer_opts *opts,
                               struct store_writer **out, struct wk_err *err);
    /* Delete keys (batched; missing keys count as deleted). ndeleted is
     * how many succeeded; per-key failures make the call fail naming the
     * first key that could not be deleted. */
    enum wk_code (*delete_many)(struct store *st, const char *const *keys,
                                size_t n, size_t *ndeleted, struct wk_err *err);
    /* Like delete_many, but each key only while its ETag is etags[i]
     * (NULL or "": any version). An object that changed is neither deleted
     * nor an error: kept[i] is set (every kept[i] is written). S3:
     * DeleteObjects with an ETag per object (a server without conditional
     * deletes deletes unconditionally); fs, mem: compare and delete under
     * the lock of put_if. */
    enum wk_code (*delete_if)(struct store *st, const char *const *keys,
                              const char *const *etags, size_t n,
                              size_t *ndeleted, bool *kept, struct wk_err *err);
    /* Abort unfinished streamed writes under prefix (S3: multipart uploads;
     * fs: stale .partial files). "Not implemented" by a server is not an
     * error: naborted = 0. */
    enum wk_code (*abort_pending)(struct store *st, const char *prefix,
                                  size_t *naborted, struct wk_err *err);
    /* Count of streamed writes still open under prefix (tests, checks). */
    enum wk_code (*count_pending)(struct store *st, const char *prefix,
                                  size_t *npending, struct wk_err *err);
    /* Optional (NULL: none sent, all zero). The store's request counters
     * (struct store_requests) into out; no request is sent. */
    void (*requests)(const struct store *st, struct store_requests *out);
    void (*free)(struct store *st);
};

struct store {
    const struct store_ops *ops;
};

struct store_writer_ops {
    const char *name;
    /* Accept all n bytes or fail; may block while a part uploads. */
    enum wk_code (*write)(struct store_writer *w, const void *p, size_t n,
                          struct wk_err *err);
    /* Make the object visible (CompleteMultipartUpload, rename(2)). */
    enum wk_code (*commit)(struct store_writer *w, struct wk_err *err);
    /* Release everything; an uncommitted object is aborted, never kept. */
    void (*free)(struct store_writer *w);
};

struct store_writer {
    const struct store_writer_ops *ops;
    uint64_t written; /* bytes accepted so far, kept by the wrappers */
};

/* Settings shared by the backends; store_opts_from_env() fills them. */
struct store_opts {
    /* S3 */
    char endpoint[256];       /* "http://127.0.0.1:9000" (path-style) or "" */
    char region[64];          /* default "us-east-1" */
    char access_key[128];     /* never logged */
    char secret_key[128];     /* never logged */
    char session_token[2048]; /* never logged; "" if none */
    /* SILA_AWS_CREDENTIALS: "" (auto: the keys above when set, else the
     * chain of storage/aws_creds.h), "env" (only the keys above) or one
     * source of the chain ("profile", "web-identity", "container",
     * "imds") */
    char aws_credentials[16];
    unsigned max_in_flight;      /* concurrent requests (default 16) */
    unsigned max_retries;        /* per request, transient failures (5) */
    unsigned connect_timeout_ms; /* default 5000 */
    unsigned request_timeout_ms; /* low-speed limit window (default 30000) */
    size_t max_small_body;       /* cap for listing/error bodies (8 MiB) */
    char sse[16];                /* SILA_SSE: "", "AES256", "aws:kms" */
    char sse_kms_key_id[256];    /* SILA_SSE_KMS_KEY_ID (aws:kms only) */
    char ca_file[512];           /* SILA_CA_FILE: trust this CA bundle */
    /* SILA_S3_FEATURES: "" or "auto" (probe), "none", or a comma list of
     * cond-put, cond-delete, versioning, part-copy, list-parts, delete-md5
     * (validated by store_opts_from_env) */
    char s3_features[160];
    bool allow_insecure; /* SILA_ALLOW_INSECURE=1: http:// off loopback */
};

/* Defaults, then AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, AWS_REGION /
 * AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 * AWS_SESSION_TOKEN, SILA_AWS_CREDENTIALS, SILA_S3_MAX_IN_FLIGHT,
 * SILA_S3_RETRIES, SILA_SSE, SILA_SSE_KMS_KEY_ID, SILA_CA_FILE,
 * SILA_ALLOW_INSECURE, SILA_S3_FEATURES. */
enum wk_code store_opts_from_env(struct store_opts *opts, struct wk_err *err);

/* Settings of a migrate source that lives elsewhere: SILA_SOURCE_S3_ENDPOINT,
 * SILA_SOURCE_AWS_REGION, SILA_SOURCE_AWS_ACCESS_KEY_ID,
 * SILA_SOURCE_AWS_SECRET_ACCESS_KEY, SILA_SOURCE_AWS_SESSION_TOKEN override
 * the matching fields when set (static keys then: aws_credentials "env"). */
void store_opts_source_env(struct store_opts *opts);

/* Open "s3://bucket[/prefix]" or "file:///abs/dir" (or "mem:" for tests).
 * Release with store_free(). */
enum wk_code store_open_url(const char *url, const struct store_opts *opts,
                            struct store **out, struct wk_err *err);

/* Constructors (backend-specific; everything else is generic). */
enum wk_code store_s3_new(const char *bucket, const char *prefix,
                          const struct store_opts *opts, struct store **out,
                          struct wk_err *err);
enum wk_code store_fs_new(const char *dir, struct store **out,
                          struct wk_err *err);
enum wk_code store_mem_new(struct store **out, struct wk_err *err);

/* True when key is acceptable to every backend (see top of file). */
bool store_key_valid(const char *key);

/* Wrappers: callers never touch ops. store_free(NULL) does nothing. */
static inline enum wk_code store_list(struct store *st, const char *prefix,
                                      const char *delimiter, store_list_cb cb,
                                      void *ud, struct wk_err *err)
{
    return st->ops->list(st, prefix, delimiter, cb, ud, err);
}
/* store_list_after() on a store without list_after: the whole listing,
 * entries <= after skipped. */
struct store_after_filter {
    const char *after; /* borrowed */
    store_list_cb cb;
    void *ud;
};
static inline enum wk_code store_after_filter_cb(const struct store_entry *e,
                                                 void *ud, struct wk_err *err)
{
    const struct store_after_filter *f = ud;
    return strcmp(e->key, f->after) > 0 ? f->cb(e, f->ud, err) : WK_OK;
}
/* Entries of store_list() with a key strictly greater than start_after
 * (NULL or "": all of them); see store_ops.list_after. */
static inline enum wk_code
store_list_after(struct store *st, const char *prefix, const char *delimiter,
                 const char *start_after, store_list_cb cb, void *ud,
                 struct wk_err *err)
{
    struct store_after_filter f = { start_after, cb, ud };

    if (!start_after || !*start_after)
        return st->ops->list(st, prefix, delimiter, cb, ud, err);
    if (st->ops->list_after)
        return st->ops->list_after(st, prefix, delimiter, start_after, cb, ud,
                                   err);
    return st->ops->list(st, prefix, delimiter, store_after_filter_cb, &f, err);
}
static inline enum wk_code store_head(struct store *st, const char *key,
                                      struct store_stat *out,
                                      struct wk_err *err)
{
    return st->ops->head(st, key, out, err);
}
static inline enum wk_code store_get(struct store *st, const char *key,
                                     uint64_t offset, uint64_t len,
                                     store_sink_cb sink, void *ud,
                                     struct wk_err *err)
{
    return st->ops->get(st, key, offset, len, sink, ud, err);
}
static inline enum wk_code store_get_many(struct store *st,
                                          struct store_get *reqs, size_t n,
                                          struct wk_err *err)
{
    return st->ops->get_many(st, reqs, n, err);
}
/* Start GETs (see get_start). Stores without asynchronous reads do the
 * whole batch here: then *p is NULL and the return value and reqs hold
 * the outcome; otherwise call store_get_finish(p) for it. */
static inline enum wk_code store_get_start(struct store *st,
                                           struct store_get *reqs, size_t n,
                                           struct store_pending **p,
                                           struct wk_err *err)
{
    *p = NULL;
    if (st->ops->get_start)
        return st->ops->get_start(st, reqs, n, p, err);
    return st->ops->get_many(st, reqs, n, err);
}
static inline enum wk_code
store_get_finish(struct store *st, struct store_pending *p, struct wk_err *err)
{
    return st->ops->get_finish(st, p, err);
}
static inline enum wk_code store_presign(struct store *st, const char *key,
                                         unsigned expires_s, struct wk_buf *url,
                                         struct wk_err *err)
{
    if (!st->ops->presign)
        return wk_err_set(err, WK_E_INVAL,
                          "presigned URLs need an s3:// store, not %s",
                          st->ops->name);
    return st->ops->presign(st, key, expires_s, url, err);
}
static inline void store_throttle(struct store *st, const atomic_uint *gate,
                                  unsigned cap)
{
    if (st->ops->throttle)
        st->ops->throttle(st, gate, cap);
}
/* The store's enum store_feature flags (see store_ops.features). */
static inline enum wk_code store_features(struct store *st, unsigned *flags,
                                          struct wk_err *err)
{
    if (!st->ops->features) {
        *flags = STORE_F_ALL;
        return WK_OK;
    }
    return st->ops->features(st, flags, err);
}
static inline void store_get_abandon(struct store *st, struct store_pending *p)
{
    if (p)
        st->ops->get_abandon(st, p);
}
static inline void store_pump(struct store *st)
{
    if (st->ops->pump)
        st->ops->pump(st);
}
static inline enum wk_code store_put(struct store *st, const char *key,
                                     const void *p, size_t n,
                                     struct wk_err *err)
{
    return st->ops->put(st, key, p, n, err);
}
static inline enum wk_code store_put_if(struct store *st, const char *key,
                                        const void *p, size_t n,
                                        const char *if_match, char *etag_out,
                                        size_t etag_len, struct wk_err *err)
{
    return st->ops->put_if(st, key, p, n, if_match, etag_out, etag_len, err);
}
static inline enum wk_code store_put_many(struct store *st,
                                          struct store_put *reqs, size_t n,
                                          struct wk_err *err)
{
    return st->ops->put_many(st, reqs, n, err);
}
/* Start PUTs (see put_start). Stores without asynchronous writes do the
 * whole batch here: then *p is NULL and the return value and reqs hold
 * the outcome; otherwise call store_put_finish(p) for it. */
static inline enum wk_code store_put_start(struct store *st,
                                           struct store_put *reqs, size_t n,
                                           struct store_put_batch **p,
                                           struct wk_err *err)
{
    *p = NULL;
    if (st->ops->put_start)
        return st->ops->put_start(st, reqs, n, p, err);
    return st->ops->put_many(st, reqs, n, err);
}
static inline enum wk_code store_put_finish(struct store *st,
                                            struct store_put_batch *p,
                                            struct wk_err *err)
{
    return st->ops->put_finish(st, p, err);
}
static inline void store_put_abandon(struct store *st,
                                     struct store_put_batch *p)
{
    if (p)
        st->ops->put_abandon(st, p);
}
static inline enum wk_code
store_open_write(struct store *st, const char *key,
                 const struct store_writer_opts *opts,
                 struct store_writer **out, struct wk_err *err)
{
    return st->ops->open_write(st, key, opts, out, err);
}
static inline enum wk_code store_delete_many(struct store *st,
                                             const char *const *keys, size_t n,
                                             size_t *ndeleted,
                                             struct wk_err *err)
{
    return st->ops->delete_many(st, keys, n, ndeleted, err);
}
static inline enum wk_code store_delete_if(struct store *st,
                                           const char *const *keys,
                                           const char *const *etags, size_t n,
                                           size_t *ndeleted, bool *kept,
                                           struct wk_err *err)
{
    return st->ops->delete_if(st, keys, etags, n, ndeleted, kept, err);
}
static inline enum wk_code store_abort_pending(struct store *st,
                                               const char *prefix,
                                               size_t *naborted,
                                               struct wk_err *err)
{
    return st->ops->abort_pending(st, prefix, naborted, err);
}
static inline enum wk_code store_count_pending(struct store *st,
                                               const char *prefix,
                                               size_t *npending,
                                               struct wk_err *err)
{
    return st->ops->count_pending(st, prefix, npending, err);
}
/* The requests st has sent so far (see struct store_requests); zeros for
 * a backend without requests or a NULL st. */
static inline void store_requests(const struct store *st,
                                  struct store_requests *out)
{
    memset(out, 0, sizeof(*out));
    if (st && st->ops->requests)
        st->ops->requests(st, out);
}
static inline void store_free(struct store *st)
{
    if (st)
        st->ops->free(st);
}

static inline enum wk_code store_writer_write(struct store_writer *w,
                                              const void *p, size_t n,
                                              struct wk_err *err)
{
    enum wk_code rc = w->ops->write(w, p, n, err);
    if (rc == WK_OK)
        w->written += n;
    return rc;
}
static inline enum wk_code store_writer_commit(struct store_writer *w,
                                               struct wk_err *err)
{
    return w->ops->commit(w, err);
}
static inline void store_writer_free(struct store_writer *w)
{
    if (w)
        w->ops->free(w);
}

/* get_many / put_many one request after another through the store's own
 * get and put: for backends without concurrency (fs, mem). */
enum wk_code store_get_many_serial(struct store *st, struct store_get *reqs,
                                   size_t n, struct wk_err *err);
/* delete_if by head, compare, delete_many, key by key (the caller holds
 * whatever lock makes that atomic). */
enum wk_code store_delete_if_serial(struct store *st, const char *const *keys,
                                    const char *const *etags, size_t n,
                                    size_t *ndeleted, bool *kept,
                                    struct wk_err *err);
enum wk_code store_put_many_serial(struct store *st, struct store_put *reqs,
                                   size_t n, struct wk_err *err);

/* put_if through the store's own head and put: the caller makes it atomic
 * (fs: an flock; mem: one process). */
enum wk_code store_put_if_headput(struct store *st, const char *key,
                                  const void *p, size_t n, const char *if_match,
                                  char *etag_out, size_t etag_len,
                                  struct wk_err *err);

/* Read a whole (small) object into out, at most out->max bytes. */
enum wk_code store_get_all(struct store *st, const char *key,
                           struct wk_buf *out, struct wk_err *err);
/* The whole object and the ETag of that version, in one request on S3
 * (etag: sizeof store_stat.etag bytes). */
enum wk_code store_get_all_etag(struct store *st, const char *key,
                                struct wk_buf *out, char *etag,
                                struct wk_err *err);

#endif
