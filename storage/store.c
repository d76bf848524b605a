/* Generic parts of the store interface: URL parsing, options from the
 * environment, key validation and helpers written against the ops table. */
#include "storage/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/wk_parse.h"
#include "storage/s3_features.h"

static void copy_env(char *dst, size_t len, const char *name)
{
    const char *v = getenv(name);
    if (v && *v)
        snprintf(dst, len, "%s", v);
}

static enum wk_code env_uint(const char *name, unsigned lo, unsigned hi,
                             unsigned *out, struct wk_err *err)
{
    const char *v = getenv(name);
    uint64_t n;

    if (!v || !*v)
        return WK_OK;
    if (wk_parse_u64(v, &n, err) != WK_OK || n < lo || n > hi) {
        wk_err_clear(err);
        return wk_err_set(err, WK_E_INVAL,
                          "%s: expected a number from %u to %u, got '%s'", name,
                          lo, hi, v);
    }
    *out = (unsigned)n;
    return WK_OK;
}

enum wk_code store_opts_from_env(struct store_opts *opts, struct wk_err *err)
{
    enum wk_code rc;

    memset(opts, 0, sizeof(*opts));
    snprintf(opts->region, sizeof(opts->region), "us-east-1");
    opts->max_in_flight = 32;
    opts->max_retries = 5;
    opts->connect_timeout_ms = 5000;
    opts->request_timeout_ms = 30000;
    opts->max_small_body = 8u << 20;

    copy_env(opts->endpoint, sizeof(opts->endpoint), "AWS_ENDPOINT_URL");
    copy_env(opts->endpoint, sizeof(opts->endpoint), "AWS_ENDPOINT_URL_S3");
    copy_env(opts->region, sizeof(opts->region), "AWS_DEFAULT_REGION");
    copy_env(opts->region, sizeof(opts->region), "AWS_REGION");
    copy_env(opts->access_key, sizeof(opts->access_key), "AWS_ACCESS_KEY_ID");
    copy_env(opts->secret_key, sizeof(opts->secret_key),
             "AWS_SECRET_ACCESS_KEY");
    copy_env(opts->session_token, sizeof(opts->session_token),
             "AWS_SESSION_TOKEN");
    copy_env(opts->aws_credentials, sizeof(opts->aws_credentials),
             "SILA_AWS_CREDENTIALS");
    if (strcmp(opts->aws_credentials, "auto") == 0)
        opts->aws_credentials[0] = '\0';
    copy_env(opts->sse, sizeof(opts->sse), "SILA_SSE");
    copy_env(opts->sse_kms_key_id, sizeof(opts->sse_kms_key_id),
             "SILA_SSE_KMS_KEY_ID");
    copy_env(opts->ca_file, sizeof(opts->ca_file), "SILA_CA_FILE");
    copy_env(opts->s3_features, sizeof(opts->s3_features), "SILA_S3_FEATURES");
    {
        const char *v = getenv("SILA_ALLOW_INSECURE");
        opts->allow_insecure = v && strcmp(v, "1") == 0;
    }
    rc = env_uint("SILA_S3_MAX_IN_FLIGHT", 1, 1024, &opts->max_in_flight, err);
    if (rc == WK_OK)
        rc = env_uint("SILA_S3_RETRIES", 0, 100, &opts->max_retries, err);
    if (rc == WK_OK && opts->aws_credentials[0] &&
        strcmp(opts->aws_credentials, "env") != 0 &&
        strcmp(opts->aws_credentials, "profile") != 0 &&
        strcmp(opts->aws_credentials, "web-identity") != 0 &&
        strcmp(opts->aws_credentials, "container") != 0 &&
        strcmp(opts->aws_credentials, "imds") != 0)
        rc = wk_err_set(err, WK_E_INVAL,
                        "SILA_AWS_CREDENTIALS: expected auto, env, profile, "
                        "web-identity, container or imds, not '%.15s'",
                        getenv("SILA_AWS_CREDENTIALS"));
    if (rc == WK_OK && opts->sse[0] && strcmp(opts->sse, "AES256") != 0 &&
        strcmp(opts->sse, "aws:kms") != 0)
        rc = wk_err_set(err, WK_E_INVAL,
                        "SILA_SSE: expected AES256 or aws:kms, not '%s'",
                        opts->sse);
    if (rc == WK_OK && opts->sse_kms_key_id[0] &&
        strcmp(opts->sse, "aws:kms") != 0)
        rc = wk_err_set(err, WK_E_INVAL,
                        "SILA_SSE_KMS_KEY_ID needs SILA_SSE=aws:kms");
    if (rc == WK_OK) {
        bool pinned;
        unsigned fl;
        rc = s3f_parse(opts->s3_features, &pinned, &fl, err);
    }
    if (rc == WK_OK && opts->ca_file[0] && access(opts->ca_file, R_OK) != 0)
        rc = wk_err_set(err, WK_E_INVAL, "SILA_CA_FILE '%s': not readable",
                        opts->ca_file);
    return rc;
}

void store_opts_source_env(struct store_opts *opts)
{
    const char *key = getenv("SILA_SOURCE_AWS_ACCESS_KEY_ID");

    copy_env(opts->endpoint, sizeof(opts->endpoint), "SILA_SOURCE_S3_ENDPOINT");
    copy_env(opts->region, sizeof(opts->region), "SILA_SOURCE_AWS_REGION");
    if (key && *key) {
        /* other credentials: the store's session token is not theirs */
        opts->session_token[0] = '\0';
        copy_env(opts->access_key, sizeof(opts->access_key),
                 "SILA_SOURCE_AWS_ACCESS_KEY_ID");
        copy_env(opts->secret_key, sizeof(opts->secret_key),
                 "SILA_SOURCE_AWS_SECRET_ACCESS_KEY");
        copy_env(opts->session_token, sizeof(opts->session_token),
                 "SILA_SOURCE_AWS_SESSION_TOKEN");
        /* the source's own static keys, whatever the store's chain is */
        snprintf(opts->aws_credentials, sizeof(opts->aws_credentials), "env");
    }
}

enum wk_code store_open_url(const char *url, const struct store_opts *opts,
                            struct store **out, struct wk_err *err)
{
    *out = NULL;
    if (strncmp(url, "file://", 7) == 0) {
        const char *dir = url + 7;
        if (dir[0] != '/')
            return wk_err_set(err, WK_E_INVAL,
                              "store url '%s': expected file:///absolute/path",
                              url);
        return store_fs_new(dir, out, err);
    }
    if (strncmp(url, "s3://", 5) == 0) {
        char bucket[64];
        const char *b = url + 5;
        const char *slash = strchr(b, '/');
        size_t blen = slash ? (size_t)(slash - b) : strlen(b);
        const char *prefix = slash ? slash + 1 : "";

        /* S3 bucket names: 3-63 of [a-z0-9.-] */
        if (blen < 3 || blen > 63)
            return wk_err_set(err, WK_E_INVAL,
                              "store url '%s': bad bucket name", url);
        for (size_t i = 0; i < blen; i++) {
            char c = b[i];
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-'))
                return wk_err_set(err, WK_E_INVAL,
                                  "store url '%s': bad bucket name", url);
        }
        memcpy(bucket, b, blen);
        bucket[blen] = '\0';
        return store_s3_new(bucket, prefix, opts, out, err);
    }
    if (strcmp(url, "mem:") == 0)
        return store_mem_new(out, err);
    return wk_err_set(err, WK_E_INVAL,
                      "store url '%s': expected s3://bucket[/prefix] or "
                      "file:///path",
                      url);
}

bool store_key_valid(const char *key)
{
    const char *seg = key;
    size_t len = strlen(key);

    if (len == 0 || len > 1024 || key[0] == '/')
        return false;
    for (const char *p = key;; p++) {
        if (*p == '/' || *p == '\0') {
            size_t n = (size_t)(p - seg);
            if (n == 0)
                return false; /* "a//b" or a trailing '/' */
            if ((n == 1 && seg[0] == '.') ||
                (n == 2 && seg[0] == '.' && seg[1] == '.'))
                return false;
            if (*p == '\0')
                break;
            seg = p + 1;
        } else if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '\\') {
            return false;
        }
    }
    return true;
}

static enum wk_code sink_to_buf(const void *p, size_t n, void *ud,
                                struct wk_err *err)
{
    return wk_buf_append(ud, p, n, err);
}

/* A serial batch keeps its first failure (code and message) for the
 * caller. */
static void note_first(enum wk_code rc, const struct wk_err *e,
                       enum wk_code *first, struct wk_err *err)
{
    if (rc != WK_OK && *first == WK_OK) {
        *first = rc;
        wk_err_copy(err, e);
    }
}

/* One GET of a serial batch; the outcome also in g->err. */
static enum wk_code get_one(struct store *st, struct store_get *g)
{
    enum wk_code rc = WK_OK;

    wk_err_clear(&g->err);
    if ((g->if_match && g->if_match[0]) || g->etag_out) {
        /* compare, then read: not atomic, unlike S3's If-Match */
        struct store_stat cur;
        rc = store_head(st, g->key, &cur, &g->err);
        if (rc == WK_OK && g->if_match && g->if_match[0] &&
            strcmp(cur.etag, g->if_match) != 0)
            rc = wk_err_set(&g->err, WK_E_CONFLICT,
                            "get '%s': changed since it was listed (ETag "
                            "is no longer %s)",
                            g->key, g->if_match);
        if (rc == WK_OK && g->etag_out)
            memcpy(g->etag_out, cur.etag, sizeof(cur.etag));
    }
    if (rc == WK_OK)
        rc = store_get(st, g->key, g->offset, g->len, sink_to_buf, g->out,
                       &g->err);
    return rc;
}

enum wk_code store_get_many_serial(struct store *st, struct store_get *reqs,
                                   size_t n, struct wk_err *err)
{
    enum wk_code first = WK_OK;

    for (size_t i = 0; i < n; i++)
        note_first(get_one(st, &reqs[i]), &reqs[i].err, &first, err);
    return first;
}

/* One PUT of a serial batch; the outcome also in pr->err. */
static enum wk_code put_one(struct store *st, struct store_put *pr)
{
    wk_err_clear(&pr->err);
    pr->etag[0] = '\0';
    if (pr->if_absent)
        return store_put_if(st, pr->key, pr->data, pr->len, "", pr->etag,
                            sizeof(pr->etag), &pr->err);
    if (store_put(st, pr->key, pr->data, pr->len, &pr->err) != WK_OK)
        return pr->err.code;
    {
        struct store_stat cur;
        struct wk_err herr;
        wk_err_clear(&herr);
        if (store_head(st, pr->key, &cur, &herr) == WK_OK)
            snprintf(pr->etag, sizeof(pr->etag), "%s", cur.etag);
    }
    return WK_OK;
}

enum wk_code store_put_many_serial(struct store *st, struct store_put *reqs,
                                   size_t n, struct wk_err *err)
{
    enum wk_code first = WK_OK;

    for (size_t i = 0; i < n; i++)
        note_first(put_one(st, &reqs[i]), &reqs[i].err, &first, err);
    return first;
}

enum wk_code store_put_if_headput(struct store *st, const char *key,
                                  const void *p, size_t n, const char *if_match,
                                  char *etag_out, size_t etag_len,
                                  struct wk_err *err)
{
    struct store_stat cur;
    struct wk_err herr;
    enum wk_code rc;

    if (if_match) {
        wk_err_clear(&herr);
        rc = store_head(st, key, &cur, &herr);
        if (rc != WK_OK && rc != WK_E_NOTFOUND)
            return wk_err_copy(err, &herr);
        if ((rc == WK_E_NOTFOUND) != (if_match[0] == '\0') ||
            (rc == WK_OK && strcmp(cur.etag, if_match) != 0))
            return wk_err_set(err, WK_E_CONFLICT,
                              "put '%s': precondition failed (changed by "
                              "someone else)",
                              key);
    }
    rc = store_put(st, key, p, n, err);
    if (rc == WK_OK && etag_out && etag_len) {
        wk_err_clear(&herr);
        if (store_head(st, key, &cur, &herr) == WK_OK)
            snprintf(etag_out, etag_len, "%s", cur.etag);
        else
            etag_out[0] = '\0';
    }
    return rc;
}

enum wk_code store_delete_if_serial(struct store *st, const char *const *keys,
                                    const char *const *etags, size_t n,
                                    size_t *ndeleted, bool *kept,
                                    struct wk_err *err)
{
    *ndeleted = 0;
    for (size_t i = 0; i < n; i++) {
        struct store_stat cur;
        struct wk_err herr;
        size_t nd = 0;
        enum wk_code rc;

        kept[i] = false;
        if (etags && etags[i] && etags[i][0]) {
            wk_err_clear(&herr);
            rc = store_head(st, keys[i], &cur, &herr);
            if (rc == WK_E_NOTFOUND) {
                (*ndeleted)++;
                continue;
            }
            if (rc != WK_OK)
                return wk_err_copy(err, &herr);
            if (strcmp(cur.etag, etags[i]) != 0) {
                kept[i] = true;
                continue;
            }
        }
        rc = store_delete_many(st, &keys[i], 1, &nd, err);
        if (rc != WK_OK)
            return rc;
        *ndeleted += nd;
    }
    return WK_OK;
}

enum wk_code store_get_all(struct store *st, const char *key,
                           struct wk_buf *out, struct wk_err *err)
{
    return store_get(st, key, 0, UINT64_MAX, sink_to_buf, out, err);
}

enum wk_code store_get_all_etag(struct store *st, const char *key,
                                struct wk_buf *out, char *etag,
                                struct wk_err *err)
{
    struct store_get g;
    enum wk_code rc;

    memset(&g, 0, sizeof(g));
    g.key = key;
    g.len = UINT64_MAX;
    g.out = out;
    g.etag_out = etag;
    etag[0] = '\0';
    rc = store_get_many(st, &g, 1, err);
    if (rc != WK_OK && g.err.code != WK_OK)
        return wk_err_copy(err, &g.err);
    return rc;
}
