/* Presigned GET URLs (s3_client_presign): SigV4 query signing of a key of
 * the client's bucket, for a link that works without credentials. */
#include <string.h>

#include "storage/s3_http_int.h"

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
        rc = s3_client_sign_creds(cl, err);
        if (rc == WK_OK)
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
