/*
 * s3_int: what the files of the S3 backend (store_s3.c, s3_batch.c,
 * s3_delete.c, s3_uploads.c, s3_mpu.c) share: the store's struct, key
 * helpers, one-request helpers and the store_ops they implement. Not for
 * use outside storage/.
 */
#ifndef WK_STORAGE_S3_INT_H
#define WK_STORAGE_S3_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/wk_buf.h"
#include "common/wk_err.h"
#include "storage/s3_http.h"
#include "storage/store.h"

#define S3_XMLNS "http://s3.amazonaws.com/doc/2006-03-01/"

struct s3_store {
    struct store base;
    struct s3_client *cl; /* owned */
    char *prefix;         /* owned: "" or "dir/" */
    size_t prefix_len;
    /* enum store_feature flags: pinned (SILA_S3_FEATURES) or probed on
     * first use (s3_store_features) */
    unsigned features;
    bool features_pinned; /* SILA_S3_FEATURES set: never probed */
    bool features_known;  /* features final (and logged once) */
    char cache_id[512];   /* endpoint, bucket and prefix: the probe cache key */
};

/* The flags of st (see store_ops.features): pinned, cached for the
 * process, or probed now (s3_probe.c). */
enum wk_code s3_store_features(struct s3_store *st, unsigned *flags,
                               struct wk_err *err);

/* store_s3.c: keys and single requests */
enum wk_code s3_store_check_key(const char *what, const char *key,
                                struct wk_err *err);
/* prefix + key as a new string (free()); NULL when out of memory. */
char *s3_store_join_key(const struct s3_store *st, const char *key);
/* The key relative to the store, or NULL when S3 sent one outside it. */
const char *s3_store_rel_key(const struct s3_store *st, const char *full);
/* Start req and wait for it. */
enum wk_code s3_store_run_one(struct s3_store *st, struct s3_req *req,
                              struct wk_err *err);
/* One GET of a bucket listing page (query q[0..nq)) into body (reset). */
enum wk_code s3_store_get_page(struct s3_store *st, const struct s3_kv *q,
                               size_t nq, struct wk_buf *body,
                               struct wk_err *err);
enum wk_code s3_store_head_full(struct s3_store *st, const char *full,
                                struct store_stat *out, struct wk_err *err);
/* A Range on req unless it is the whole object (0, UINT64_MAX). */
void s3_store_set_range(struct s3_req *req, uint64_t offset, uint64_t len);

/* s3_batch.c: batched GETs and PUTs, conditional PUT */
void s3_store_pump(struct store *base);
enum wk_code s3_store_get_start(struct store *base, struct store_get *reqs,
                                size_t n, struct store_pending **out,
                                struct wk_err *err);
enum wk_code s3_store_get_finish(struct store *base, struct store_pending *p,
                                 struct wk_err *err);
void s3_store_get_abandon(struct store *base, struct store_pending *p);
enum wk_code s3_store_put_start(struct store *base, struct store_put *reqs,
                                size_t n, struct store_put_batch **out,
                                struct wk_err *err);
enum wk_code s3_store_put_finish(struct store *base, struct store_put_batch *p,
                                 struct wk_err *err);
void s3_store_put_abandon(struct store *base, struct store_put_batch *p);
enum wk_code s3_store_get_many(struct store *base, struct store_get *reqs,
                               size_t n, struct wk_err *err);
enum wk_code s3_store_put_many(struct store *base, struct store_put *reqs,
                               size_t n, struct wk_err *err);
enum wk_code s3_store_put(struct store *base, const char *key, const void *p,
                          size_t n, struct wk_err *err);
enum wk_code s3_store_put_if(struct store *base, const char *key, const void *p,
                             size_t n, const char *if_match, char *etag_out,
                             size_t etag_len, struct wk_err *err);

/* s3_delete.c: DeleteObjects batches */
/* DeleteObjects of keys, each with etags[i] as its <ETag> condition when
 * etags is set, whatever the server's features (the probe's own test). */
enum wk_code s3_store_delete_etag(struct s3_store *st, const char *const *keys,
                                  const char *const *etags, size_t n,
                                  size_t *ndeleted, bool *kept,
                                  struct wk_err *err);
enum wk_code s3_store_delete_many(struct store *base, const char *const *keys,
                                  size_t n, size_t *ndeleted,
                                  struct wk_err *err);
enum wk_code s3_store_delete_if(struct store *base, const char *const *keys,
                                const char *const *etags, size_t n,
                                size_t *ndeleted, bool *kept,
                                struct wk_err *err);

/* s3_uploads.c: pending multipart uploads */
/* The bucket does not do it (HTTP 501 or NotImplemented). */
bool s3_store_not_implemented(const struct wk_err *e);
/* AbortMultipartUpload of upload_id on full (the full key). */
enum wk_code s3_store_abort_upload(struct s3_store *st, const char *full,
                                   const char *upload_id, struct wk_err *err);
enum wk_code s3_store_abort_pending(struct store *base, const char *prefix,
                                    size_t *naborted, struct wk_err *err);
enum wk_code s3_store_count_pending(struct store *base, const char *prefix,
                                    size_t *npending, struct wk_err *err);

/* s3_mpu.c: the multipart writer */
enum wk_code s3_store_open_write(struct store *base, const char *key,
                                 const struct store_writer_opts *opts,
                                 struct store_writer **out, struct wk_err *err);

#endif
