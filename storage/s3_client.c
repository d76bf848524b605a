/* An S3 client (struct s3_client): its creation from store_opts (bucket
 * name, endpoint and path or virtual-hosted style, defaults, credentials,
 * curl and the multi handle), its release, its accessors, and the
 * Content-MD5 header value. */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "storage/s3_http_int.h"

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

void s3_client_throttle(struct s3_client *cl, const atomic_uint *gate,
                        unsigned cap)
{
    cl->gate = cap ? gate : NULL;
    cl->gate_cap = cap;
}

size_t s3_client_slots(const struct s3_client *cl)
{
    if (cl->gate && atomic_load(cl->gate) > 0 &&
        cl->gate_cap < cl->opts.max_in_flight)
        return cl->gate_cap;
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

/* Static keys from opts (the environment, or a migrate source's own), or
 * the process-wide chain (storage/aws_creds.h), fetched once here so that a
 * missing or broken source fails at open, not at the first request. */
static enum wk_code pick_creds(struct s3_client *cl, struct wk_err *err)
{
    const char *pin = cl->opts.aws_credentials;
    bool have = cl->opts.access_key[0] && cl->opts.secret_key[0];
    enum wk_code rc;

    if (have && (pin[0] == '\0' || strcmp(pin, "env") == 0))
        return WK_OK;
    if (strcmp(pin, "env") == 0)
        return wk_err_set(err, WK_E_INVAL,
                          "S3 bucket '%s': no credentials (set "
                          "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
                          cl->bucket);
    cl->snap = calloc(1, sizeof(*cl->snap));
    if (!cl->snap)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    rc = awsc_shared(&cl->prov, err);
    if (rc == WK_OK)
        rc = s3_client_sign_creds(cl, err);
    if (rc == WK_E_NOTFOUND && err) {
        /* no source at all: a configuration problem, not a missing key */
        rc = WK_E_INVAL;
        err->code = WK_E_INVAL;
    }
    if (rc != WK_OK)
        wk_err_prefix(err, "S3 bucket '%s'", cl->bucket);
    return rc;
}

enum wk_code s3_client_sign_creds(struct s3_client *cl, struct wk_err *err)
{
    enum wk_code rc;

    if (!cl->prov)
        return WK_OK;
    rc = awsc_provider_get(cl->prov, cl->snap, err);
    if (rc != WK_OK)
        return rc;
    cl->creds.access_key = cl->snap->access_key;
    cl->creds.secret_key = cl->snap->secret_key;
    cl->creds.session_token =
        cl->snap->session_token[0] ? cl->snap->session_token : NULL;
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
    rc = set_endpoint(cl, err);
    if (rc == WK_OK)
        rc = pick_creds(cl, err);
    if (rc != WK_OK)
        goto out;
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
        s3_client_rq_unlink(cl, cl->rq_head);
    for (size_t i = 0; i < cl->n_pool; i++)
        curl_easy_cleanup(cl->pool[i]);
    free(cl->pool);
    if (cl->multi)
        curl_multi_cleanup(cl->multi);
    if (cl->global_init)
        curl_global_cleanup();
    free(cl->bucket);
    if (cl->snap) {
        OPENSSL_cleanse(cl->snap, sizeof(*cl->snap));
        free(cl->snap);
    }
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
