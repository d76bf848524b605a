/* Pending multipart uploads of the S3 backend: ListMultipartUploads under
 * a prefix, counted (count_pending) or aborted page by page
 * (abort_pending), and the abort of one upload (the writer's cleanup). */
#include <stdlib.h>
#include <string.h>

#include "common/wk_log.h"
#include "storage/s3_int.h"
#include "storage/s3_xml.h"

bool s3_store_not_implemented(const struct wk_err *e)
{
    return e->http_status == 501 || strcmp(e->s3_code, "NotImplemented") == 0;
}

enum wk_code s3_store_abort_upload(struct s3_store *st, const char *full,
                                   const char *upload_id, struct wk_err *err)
{
    struct s3_kv q[1] = { { "uploadId", upload_id } };
    struct s3_req req;
    struct wk_err e;
    enum wk_code rc;

    s3_req_init(&req);
    req.method = "DELETE";
    req.key = full;
    req.query = q;
    req.n_query = 1;
    wk_err_clear(&e);
    rc = s3_store_run_one(st, &req, &e);
    if (rc == WK_E_NOTFOUND)
        return WK_OK; /* already gone */
    if (rc != WK_OK && s3_store_not_implemented(&e)) {
        WK_LOG(WK_LOG_INFO, "s3.upload.abort_unsupported",
               KV_STR("bucket", s3_client_bucket(st->cl)), KV_STR("key", full));
        return WK_OK;
    }
    return rc == WK_OK ? WK_OK : wk_err_copy(err, &e);
}

static enum wk_code scan_uploads(struct s3_store *st, const char *prefix,
                                 bool do_abort, size_t *count,
                                 struct wk_err *err)
{
    struct s3_xml_uploads page;
    struct wk_buf body;
    struct s3_req *aborts = NULL;
    struct s3_kv(*aq)[1] = NULL;
    char *full = NULL, *key_marker = NULL, *id_marker = NULL;
    bool more = true;
    enum wk_code rc = WK_OK;

    *count = 0;
    memset(&page, 0, sizeof(page));
    wk_buf_init(&body, s3_client_max_small_body(st->cl));
    full = s3_store_join_key(st, prefix ? prefix : "");
    if (!full) {
        rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
        goto out;
    }
    while (more && rc == WK_OK) {
        struct s3_kv q[5];
        size_t nq = 0;
        struct wk_err e;

        q[nq++] = (struct s3_kv){ "uploads", "" };
        q[nq++] = (struct s3_kv){ "encoding-type", "url" };
        if (full[0])
            q[nq++] = (struct s3_kv){ "prefix", full };
        if (key_marker)
            q[nq++] = (struct s3_kv){ "key-marker", key_marker };
        if (id_marker)
            q[nq++] = (struct s3_kv){ "upload-id-marker", id_marker };
        wk_err_clear(&e);
        rc = s3_store_get_page(st, q, nq, &body, &e);
        if (rc != WK_OK && s3_store_not_implemented(&e)) {
            WK_LOG(WK_LOG_INFO, "s3.uploads.unsupported",
                   KV_STR("bucket", s3_client_bucket(st->cl)),
                   KV_STR("prefix", full));
            *count = 0;
            rc = WK_OK;
            goto out;
        }
        if (rc == WK_OK)
            rc = s3_xml_parse_uploads(body.data, body.len, &page, &e);
        if (rc != WK_OK) {
            wk_err_copy(err, &e);
            wk_err_prefix(err, "list multipart uploads under '%s'",
                          prefix ? prefix : "");
            break;
        }
        *count += page.n_uploads;
        if (do_abort && page.n_uploads > 0) {
            aborts = calloc(page.n_uploads, sizeof(*aborts));
            aq = calloc(page.n_uploads, sizeof(*aq));
            if (!aborts || !aq) {
                rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
                break;
            }
            for (size_t i = 0; i < page.n_uploads; i++) {
                aq[i][0] =
                    (struct s3_kv){ "uploadId", page.uploads[i].upload_id };
                s3_req_init(&aborts[i]);
                aborts[i].method = "DELETE";
                aborts[i].key = page.uploads[i].key;
                aborts[i].query = aq[i];
                aborts[i].n_query = 1;
            }
            (void)s3_client_run(st->cl, aborts, page.n_uploads, NULL);
            for (size_t i = 0; i < page.n_uploads && rc == WK_OK; i++) {
                const struct wk_err *ae = &aborts[i].err;
                if (ae->code == WK_OK || ae->code == WK_E_NOTFOUND)
                    continue;
                rc = wk_err_copy(err, ae);
            }
            if (rc == WK_OK)
                WK_LOG(WK_LOG_INFO, "s3.uploads.aborted",
                       KV_STR("bucket", s3_client_bucket(st->cl)),
                       KV_STR("prefix", full), KV_INT("count", page.n_uploads));
            free(aborts);
            free(aq);
            aborts = NULL;
            aq = NULL;
        }
        more = page.is_truncated;
        free(key_marker);
        free(id_marker);
        key_marker = page.next_key_marker;
        id_marker = page.next_upload_id_marker;
        page.next_key_marker = page.next_upload_id_marker = NULL;
        s3_xml_uploads_release(&page);
        if (rc == WK_OK && more && !key_marker)
            rc = wk_err_set(err, WK_E_CORRUPT,
                            "truncated S3 upload listing without a marker");
    }
out:
    free(aborts);
    free(aq);
    s3_xml_uploads_release(&page);
    free(key_marker);
    free(id_marker);
    free(full);
    wk_buf_release(&body);
    return rc;
}

enum wk_code s3_store_abort_pending(struct store *base, const char *prefix,
                                    size_t *naborted, struct wk_err *err)
{
    return scan_uploads((struct s3_store *)base, prefix, true, naborted, err);
}

enum wk_code s3_store_count_pending(struct store *base, const char *prefix,
                                    size_t *npending, struct wk_err *err)
{
    return scan_uploads((struct s3_store *)base, prefix, false, npending, err);
}

/* The multipart writer */