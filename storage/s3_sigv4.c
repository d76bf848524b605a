/* AWS Signature Version 4 (see s3_sigv4.h): URI encoding, the canonical
 * query and headers, the signing key and signature, header signing
 * (s3_sigv4_sign) and query presigning (s3_sigv4_presign). The checks of
 * a request's fields are in s3_sigv4_check.c. */
#include "storage/s3_sigv4.h"

#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/wk_parse.h"
#include "common/wk_time.h"
#include "storage/s3_sigv4_int.h"

/* One header to sign; names are lowercase. */
struct sigv4_hdr {
    const char *name;  /* borrowed: a literal or the lowercased names copy */
    const char *value; /* borrowed: from the request, creds or out */
    size_t idx;        /* input order: repeated names keep their order */
};

/* One encoded query parameter; the strings live in a scratch buffer. */
struct sigv4_param {
    size_t name_off, name_len;
    size_t value_off, value_len;
    const char *name;  /* borrowed from the scratch buffer once it is full */
    const char *value; /* same */
};

void s3_sigv4_out_init(struct s3_sigv4_out *out)
{
    memset(out->amz_date, 0, sizeof(out->amz_date));
    memset(out->signature, 0, sizeof(out->signature));
    memset(out->authorization, 0, sizeof(out->authorization));
    wk_buf_init(&out->encoded_path, S3_SIGV4_BUF_MAX);
    wk_buf_init(&out->query_string, S3_SIGV4_BUF_MAX);
    wk_buf_init(&out->canonical_request, S3_SIGV4_BUF_MAX);
    wk_buf_init(&out->string_to_sign, S3_SIGV4_BUF_MAX);
}

void s3_sigv4_out_release(struct s3_sigv4_out *out)
{
    if (!out)
        return;
    OPENSSL_cleanse(out->signature, sizeof(out->signature));
    OPENSSL_cleanse(out->authorization, sizeof(out->authorization));
    memset(out->amz_date, 0, sizeof(out->amz_date));
    wk_buf_release(&out->encoded_path);
    wk_buf_release(&out->query_string);
    wk_buf_release(&out->canonical_request);
    wk_buf_release(&out->string_to_sign);
}

/* Empty every output, keeping the memory, so a failed or repeated signing
 * never leaves a stale or half-built result behind. */
static void sigv4_out_clear(struct s3_sigv4_out *out)
{
    OPENSSL_cleanse(out->signature, sizeof(out->signature));
    OPENSSL_cleanse(out->authorization, sizeof(out->authorization));
    memset(out->amz_date, 0, sizeof(out->amz_date));
    wk_buf_reset(&out->encoded_path);
    wk_buf_reset(&out->query_string);
    wk_buf_reset(&out->canonical_request);
    wk_buf_reset(&out->string_to_sign);
}

bool s3_sigv4_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
           c == '~';
}

enum wk_code s3_uri_encode(const char *s, size_t n, bool keep_slash,
                           struct wk_buf *out, struct wk_err *err)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = (const unsigned char *)s;
    size_t need = 0;
    char *dst;
    enum wk_code rc;

    if (!s && n > 0)
        return wk_err_set(err, WK_E_INVAL, "uri encode: null input");
    if (n > (SIZE_MAX - 1) / 3)
        return wk_err_set(err, WK_E_LIMIT, "uri encode: input too long");
    /* Size first, so the append is all or nothing. */
    for (size_t i = 0; i < n; i++)
        need +=
            (s3_sigv4_unreserved(p[i]) || (keep_slash && p[i] == '/')) ? 1 : 3;
    rc = wk_buf_reserve(out, need, err);
    if (rc != WK_OK)
        return rc;
    dst = out->data + out->len;
    for (size_t i = 0; i < n; i++) {
        if (s3_sigv4_unreserved(p[i]) || (keep_slash && p[i] == '/')) {
            *dst++ = (char)p[i];
        } else {
            *dst++ = '%';
            *dst++ = hex[p[i] >> 4];
            *dst++ = hex[p[i] & 15];
        }
    }
    out->len += need;
    out->data[out->len] = '\0';
    return WK_OK;
}

static enum wk_code sha256_hex(const void *p, size_t n, char hex[65],
                               struct wk_err *err)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;

    if (EVP_Digest(p, n, md, &len, EVP_sha256(), NULL) != 1 ||
        len != SHA256_BYTES)
        return wk_err_set(err, WK_E_INTERNAL, "sigv4: sha256 failed");
    wk_hex_encode(md, len, hex);
    return WK_OK;
}

static enum wk_code hmac_sha256(const void *key, size_t key_len,
                                const void *msg, size_t msg_len,
                                unsigned char mac[SHA256_BYTES],
                                struct wk_err *err)
{
    unsigned int len = 0;

    if (key_len > INT_MAX ||
        !HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)msg,
              msg_len, mac, &len) ||
        len != SHA256_BYTES)
        return wk_err_set(err, WK_E_INTERNAL, "sigv4: hmac-sha256 failed");
    return WK_OK;
}

static enum wk_code format_amz_date(time_t now, char amz_date[17],
                                    struct wk_err *err)
{
    /* four-digit years only */
    if (now < WK_TIME_YEAR0_S || now > WK_TIME_YEAR9999_S ||
        !wk_time_fmt_stamp(now, amz_date, 17))
        return wk_err_set(err, WK_E_INVAL, "sigv4: request time out of range");
    if (strlen(amz_date) != 16)
        return wk_err_set(err, WK_E_INTERNAL, "sigv4: bad date format");
    return WK_OK;
}

static int cmp_bytes(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c != 0)
        return c;
    return alen < blen ? -1 : alen > blen;
}

/* Sorted by encoded name, then encoded value (byte order). */
static int cmp_param(const void *pa, const void *pb)
{
    const struct sigv4_param *a = pa;
    const struct sigv4_param *b = pb;
    int c = cmp_bytes(a->name, a->name_len, b->name, b->name_len);
    if (c != 0)
        return c;
    return cmp_bytes(a->value, a->value_len, b->value, b->value_len);
}

/* Encode every parameter into scratch, sort, and join into out. */
static enum wk_code build_query(const struct s3_sigv4_req *req,
                                struct wk_buf *scratch, struct wk_buf *out,
                                struct wk_err *err)
{
    struct sigv4_param *params = NULL;
    enum wk_code rc = WK_OK;

    if (req->n_query == 0)
        return WK_OK;
    params = calloc(req->n_query, sizeof(*params));
    if (!params)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    for (size_t i = 0; i < req->n_query; i++) {
        const struct s3_kv *kv = &req->query[i];
        struct sigv4_param *p = &params[i];

        if (!kv->name || !kv->name[0] || !kv->value) {
            rc = wk_err_set(err, WK_E_INVAL,
                            "sigv4: query parameter %zu has no name or value",
                            i);
            goto out;
        }
        p->name_off = scratch->len;
        rc = s3_uri_encode(kv->name, strlen(kv->name), false, scratch, err);
        if (rc != WK_OK)
            goto out;
        p->name_len = scratch->len - p->name_off;
        p->value_off = scratch->len;
        rc = s3_uri_encode(kv->value, strlen(kv->value), false, scratch, err);
        if (rc != WK_OK)
            goto out;
        p->value_len = scratch->len - p->value_off;
    }
    /* The scratch buffer no longer moves: offsets become pointers. */
    for (size_t i = 0; i < req->n_query; i++) {
        params[i].name = scratch->data + params[i].name_off;
        params[i].value = scratch->data + params[i].value_off;
    }
    qsort(params, req->n_query, sizeof(*params), cmp_param);
    for (size_t i = 0; i < req->n_query && rc == WK_OK; i++) {
        if (i > 0)
            rc = wk_buf_append(out, "&", 1, err);
        if (rc == WK_OK)
            rc = wk_buf_append(out, params[i].name, params[i].name_len, err);
        if (rc == WK_OK)
            rc = wk_buf_append(out, "=", 1, err);
        if (rc == WK_OK)
            rc = wk_buf_append(out, params[i].value, params[i].value_len, err);
    }
out:
    free(params);
    return rc;
}

static int cmp_hdr(const void *pa, const void *pb)
{
    const struct sigv4_hdr *a = pa;
    const struct sigv4_hdr *b = pb;
    int c = strcmp(a->name, b->name);
    if (c != 0)
        return c;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/* Collect the headers to sign: the caller's (lowercased into one owned
 * copy, *names) and the signer's own. Sorted by name, input order within
 * a name. */
static enum wk_code collect_headers(const struct s3_sigv4_req *req,
                                    const struct s3_creds *creds,
                                    const char *amz_date,
                                    struct sigv4_hdr **hdrs_out, size_t *n_out,
                                    char **names_out, struct wk_err *err)
{
    struct sigv4_hdr *hdrs = NULL;
    char *names = NULL;
    size_t names_len = 0, n = 0;
    char *p;
    enum wk_code rc = WK_OK;

    for (size_t i = 0; i < req->n_headers; i++) {
        const struct s3_kv *kv = &req->headers[i];
        size_t len;

        if (!s3_sigv4_header_name_ok(kv->name))
            return wk_err_set(err, WK_E_INVAL,
                              "sigv4: header %zu has an invalid name", i);
        len = strlen(kv->name);
        if (len > S3_SIGV4_BUF_MAX || names_len > S3_SIGV4_BUF_MAX)
            return wk_err_set(err, WK_E_LIMIT,
                              "sigv4: header names exceed %d bytes",
                              S3_SIGV4_BUF_MAX);
        names_len += len + 1;
    }
    hdrs = calloc(req->n_headers + 4, sizeof(*hdrs));
    names = malloc(names_len + 1);
    if (!hdrs || !names) {
        rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
        goto out;
    }
    p = names;
    for (size_t i = 0; i < req->n_headers; i++) {
        const struct s3_kv *kv = &req->headers[i];
        size_t len = strlen(kv->name);

        for (size_t j = 0; j < len; j++) {
            char c = kv->name[j];
            p[j] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
        }
        p[len] = '\0';
        if (s3_sigv4_header_reserved(p)) {
            rc = wk_err_set(err, WK_E_INVAL,
                            "sigv4: header '%s' is set by the signer", p);
            goto out;
        }
        if (!s3_sigv4_header_value_ok(kv->value)) {
            rc = wk_err_set(err, WK_E_INVAL,
                            "sigv4: header '%s' has an invalid value", p);
            goto out;
        }
        hdrs[n].name = p;
        hdrs[n].value = kv->value;
        hdrs[n].idx = n;
        n++;
        p += len + 1;
    }
    hdrs[n].name = "host";
    hdrs[n].value = req->host;
    hdrs[n].idx = n;
    n++;
    hdrs[n].name = "x-amz-content-sha256";
    hdrs[n].value = req->payload_hash;
    hdrs[n].idx = n;
    n++;
    hdrs[n].name = "x-amz-date";
    hdrs[n].value = amz_date;
    hdrs[n].idx = n;
    n++;
    if (s3_sigv4_has_token(creds)) {
        hdrs[n].name = "x-amz-security-token";
        hdrs[n].value = creds->session_token;
        hdrs[n].idx = n;
        n++;
    }
    qsort(hdrs, n, sizeof(*hdrs), cmp_hdr);
    *hdrs_out = hdrs;
    *names_out = names;
    *n_out = n;
    hdrs = NULL;
    names = NULL;
out:
    free(names);
    free(hdrs);
    return rc;
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t';
}

/* SigV4 "Trimall": drop outer whitespace, collapse inner runs to a space. */
static enum wk_code append_trimmed(struct wk_buf *b, const char *v,
                                   struct wk_err *err)
{
    bool first = true;
    enum wk_code rc = WK_OK;

    while (*v && rc == WK_OK) {
        const char *start;

        while (is_ws(*v))
            v++;
        if (!*v)
            break;
        start = v;
        while (*v && !is_ws(*v))
            v++;
        if (!first)
            rc = wk_buf_append(b, " ", 1, err);
        if (rc == WK_OK)
            rc = wk_buf_append(b, start, (size_t)(v - start), err);
        first = false;
    }
    return rc;
}

/* Canonical header lines into cr, "a;b;c" into signed_hdrs. Repeated names
 * become one line with the values joined by commas. */
static enum wk_code append_headers(const struct sigv4_hdr *hdrs, size_t n,
                                   struct wk_buf *cr,
                                   struct wk_buf *signed_hdrs,
                                   struct wk_err *err)
{
    enum wk_code rc = WK_OK;

    for (size_t i = 0; i < n && rc == WK_OK; i++) {
        bool same = i > 0 && strcmp(hdrs[i].name, hdrs[i - 1].name) == 0;

        if (same) {
            rc = wk_buf_append(cr, ",", 1, err);
        } else {
            if (i > 0)
                rc = wk_buf_append(cr, "\n", 1, err);
            if (rc == WK_OK)
                rc = wk_buf_appendf(cr, err, "%s:", hdrs[i].name);
            if (rc == WK_OK && i > 0)
                rc = wk_buf_append(signed_hdrs, ";", 1, err);
            if (rc == WK_OK)
                rc = wk_buf_appends(signed_hdrs, hdrs[i].name, err);
        }
        if (rc == WK_OK)
            rc = append_trimmed(cr, hdrs[i].value, err);
    }
    if (rc == WK_OK)
        rc = wk_buf_append(cr, "\n", 1, err);
    return rc;
}

/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service),
 * "aws4_request"); the signature is HMAC(kSigning, string to sign). */
static enum wk_code compute_signature(const struct s3_sigv4_req *req,
                                      const struct s3_creds *creds,
                                      const char *date8,
                                      const struct wk_buf *sts,
                                      char signature[65], struct wk_err *err)
{
    unsigned char secret[4 + S3_SIGV4_SECRET_MAX];
    unsigned char k1[SHA256_BYTES], k2[SHA256_BYTES];
    size_t secret_len = strlen(creds->secret_key);
    enum wk_code rc;

    memcpy(secret, "AWS4", 4);
    memcpy(secret + 4, creds->secret_key, secret_len);
    rc = hmac_sha256(secret, 4 + secret_len, date8, 8, k1, err);
    if (rc == WK_OK)
        rc = hmac_sha256(k1, sizeof(k1), req->region, strlen(req->region), k2,
                         err);
    if (rc == WK_OK)
        rc = hmac_sha256(k2, sizeof(k2), req->service, strlen(req->service), k1,
                         err);
    if (rc == WK_OK)
        rc = hmac_sha256(k1, sizeof(k1), "aws4_request", 12, k2, err);
    if (rc == WK_OK)
        rc = hmac_sha256(k2, sizeof(k2), sts->data, sts->len, k1, err);
    if (rc == WK_OK)
        wk_hex_encode(k1, sizeof(k1), signature);
    OPENSSL_cleanse(secret, sizeof(secret));
    OPENSSL_cleanse(k1, sizeof(k1));
    OPENSSL_cleanse(k2, sizeof(k2));
    return rc;
}

/* out->canonical_request is complete: hash it into the string to sign
 * and sign that into out->signature. */
static enum wk_code sign_canonical(const struct s3_sigv4_req *req,
                                   const struct s3_creds *creds,
                                   const char *date8, const char *scope,
                                   struct s3_sigv4_out *out, struct wk_err *err)
{
    char cr_hash[65];
    enum wk_code rc = sha256_hex(out->canonical_request.data,
                                 out->canonical_request.len, cr_hash, err);
    if (rc == WK_OK)
        rc = wk_buf_appendf(&out->string_to_sign, err,
                            S3_SIGV4_ALGORITHM "\n%s\n%s\n%s", out->amz_date,
                            scope, cr_hash);
    if (rc == WK_OK)
        rc = compute_signature(req, creds, date8, &out->string_to_sign,
                               out->signature, err);
    return rc;
}

enum wk_code s3_sigv4_sign(const struct s3_sigv4_req *req,
                           const struct s3_creds *creds,
                           struct s3_sigv4_out *out, struct wk_err *err)
{
    struct sigv4_hdr *hdrs = NULL;
    char *names = NULL;
    size_t n_hdrs = 0;
    struct wk_buf scratch;     /* encoded query names and values */
    struct wk_buf signed_hdrs; /* "host;x-amz-content-sha256;..." */
    char date8[9];
    char scope[3 * S3_SIGV4_NAME_MAX];
    int n;
    enum wk_code rc;

    if (!req || !creds || !out)
        return wk_err_set(err, WK_E_INVAL, "sigv4: null argument");
    wk_buf_init(&scratch, S3_SIGV4_BUF_MAX);
    wk_buf_init(&signed_hdrs, S3_SIGV4_BUF_MAX);
    sigv4_out_clear(out);

    rc = s3_sigv4_check_request(req, creds, err);
    if (rc != WK_OK)
        goto out;
    rc = format_amz_date(req->now, out->amz_date, err);
    if (rc != WK_OK)
        goto out;
    memcpy(date8, out->amz_date, 8);
    date8[8] = '\0';
    n = snprintf(scope, sizeof(scope), "%s/%s/%s/aws4_request", date8,
                 req->region, req->service);
    if (n < 0 || (size_t)n >= sizeof(scope)) {
        rc = wk_err_set(err, WK_E_INTERNAL, "sigv4: credential scope too long");
        goto out;
    }

    /* S3 paths are encoded once, '/' kept, and never normalised. */
    rc = s3_uri_encode(req->path, strlen(req->path), true, &out->encoded_path,
                       err);
    if (rc != WK_OK)
        goto out;
    rc = build_query(req, &scratch, &out->query_string, err);
    if (rc != WK_OK)
        goto out;
    rc =
        collect_headers(req, creds, out->amz_date, &hdrs, &n_hdrs, &names, err);
    if (rc != WK_OK)
        goto out;

    rc = wk_buf_appendf(&out->canonical_request, err, "%s\n%s\n%s\n",
                        req->method, wk_buf_cstr(&out->encoded_path),
                        wk_buf_cstr(&out->query_string));
    if (rc == WK_OK)
        rc = append_headers(hdrs, n_hdrs, &out->canonical_request, &signed_hdrs,
                            err);
    if (rc == WK_OK)
        rc = wk_buf_appendf(&out->canonical_request, err, "\n%s\n%s",
                            wk_buf_cstr(&signed_hdrs), req->payload_hash);
    if (rc == WK_OK)
        rc = sign_canonical(req, creds, date8, scope, out, err);
    if (rc != WK_OK)
        goto out;

    n = snprintf(
        out->authorization, sizeof(out->authorization),
        S3_SIGV4_ALGORITHM " Credential=%s/%s, SignedHeaders=%s, Signature=%s",
        creds->access_key, scope, wk_buf_cstr(&signed_hdrs), out->signature);
    if (n < 0 || (size_t)n >= sizeof(out->authorization))
        rc = wk_err_set(err, WK_E_LIMIT,
                        "sigv4: authorization header longer than %zu bytes "
                        "(%zu signed headers)",
                        sizeof(out->authorization) - 1, n_hdrs);
out:
    if (rc != WK_OK)
        sigv4_out_clear(out);
    free(names);
    free(hdrs);
    wk_buf_release(&signed_hdrs);
    wk_buf_release(&scratch);
    return rc;
}

enum wk_code s3_sigv4_presign(const struct s3_sigv4_req *req,
                              const struct s3_creds *creds, unsigned expires_s,
                              struct s3_sigv4_out *out, struct wk_err *err)
{
    struct s3_sigv4_req r;
    struct s3_kv *q = NULL;
    struct wk_buf scratch;
    char date8[9], scope[3 * S3_SIGV4_NAME_MAX], cred[512], expires[16];
    size_t nq = 0;
    int n;
    enum wk_code rc;

    if (!req || !creds || !out)
        return wk_err_set(err, WK_E_INVAL, "sigv4: null argument");
    if (req->n_headers)
        return wk_err_set(err, WK_E_INVAL,
                          "sigv4: a presigned URL signs the host only");
    if (expires_s < 1 || expires_s > 604800)
        return wk_err_set(err, WK_E_INVAL,
                          "sigv4: a presigned URL lasts 1 s to 7 days");
    wk_buf_init(&scratch, S3_SIGV4_BUF_MAX);
    sigv4_out_clear(out);
    r = *req;
    r.payload_hash = S3_UNSIGNED_PAYLOAD;
    rc = s3_sigv4_check_request(&r, creds, err);
    if (rc == WK_OK)
        rc = format_amz_date(r.now, out->amz_date, err);
    if (rc != WK_OK)
        goto out;
    memcpy(date8, out->amz_date, 8);
    date8[8] = '\0';
    n = snprintf(scope, sizeof(scope), "%s/%s/%s/aws4_request", date8, r.region,
                 r.service);
    if (n < 0 || (size_t)n >= sizeof(scope) ||
        (size_t)snprintf(cred, sizeof(cred), "%s/%s", creds->access_key,
                         scope) >= sizeof(cred)) {
        rc = wk_err_set(err, WK_E_INTERNAL, "sigv4: credential too long");
        goto out;
    }
    snprintf(expires, sizeof(expires), "%u", expires_s);
    q = calloc(r.n_query + 6, sizeof(*q));
    if (!q) {
        rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < r.n_query; i++)
        q[nq++] = r.query[i];
    q[nq++] = (struct s3_kv){ "X-Amz-Algorithm", S3_SIGV4_ALGORITHM };
    q[nq++] = (struct s3_kv){ "X-Amz-Credential", cred };
    q[nq++] = (struct s3_kv){ "X-Amz-Date", out->amz_date };
    q[nq++] = (struct s3_kv){ "X-Amz-Expires", expires };
    if (s3_sigv4_has_token(creds))
        q[nq++] =
            (struct s3_kv){ "X-Amz-Security-Token", creds->session_token };
    q[nq++] = (struct s3_kv){ "X-Amz-SignedHeaders", "host" };
    r.query = q;
    r.n_query = nq;

    rc = s3_uri_encode(r.path, strlen(r.path), true, &out->encoded_path, err);
    if (rc == WK_OK)
        rc = build_query(&r, &scratch, &out->query_string, err);
    if (rc == WK_OK)
        rc = wk_buf_appendf(
            &out->canonical_request, err, "%s\n%s\n%s\nhost:%s\n\nhost\n%s",
            r.method, wk_buf_cstr(&out->encoded_path),
            wk_buf_cstr(&out->query_string), r.host, S3_UNSIGNED_PAYLOAD);
    if (rc == WK_OK)
        rc = sign_canonical(&r, creds, date8, scope, out, err);
    if (rc == WK_OK)
        rc = wk_buf_appendf(&out->query_string, err, "&X-Amz-Signature=%s",
                            out->signature);
out:
    if (rc != WK_OK)
        sigv4_out_clear(out);
    free(q);
    wk_buf_release(&scratch);
    return rc;
}
