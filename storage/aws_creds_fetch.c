/* The fetches of the credential chain (aws_creds.h): environment, shared
 * files, STS AssumeRoleWithWebIdentity (unsigned POST, XML reply read with
 * the s3_xml walker), the container endpoint and EC2 IMDSv2 (JSON replies,
 * jansson). One blocking libcurl easy request at a time, bounded by the
 * configured timeouts; replies are capped at AWSC_BODY_MAX. Messages never
 * carry a secret, a token or a reply body (only its status, or STS's own
 * Code and Message). */
#include "storage/aws_creds.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "common/wk_buf.h"
#include "common/wk_time.h"
#include "storage/s3_xml_int.h"

#define AWSC_ECS_HOST        "169.254.170.2"
#define AWSC_IMDS_DEFAULT    "http://169.254.169.254"
#define AWSC_IMDS_TTL_S      "21600"
#define AWSC_HTTP_ATTEMPTS   3
#define AWSC_HTTP_BACKOFF_MS 200

static void buf_wipe(struct wk_buf *b)
{
    if (b->data)
        OPENSSL_cleanse(b->data, b->len);
    wk_buf_release(b);
}

static void creds_wipe(struct awsc_creds *c)
{
    OPENSSL_cleanse(c, sizeof(*c));
}

/* Copy a value into a fixed field; WK_E_LIMIT when it does not fit. */
static enum wk_code put_field(char *dst, size_t len, const char *v,
                              const char *what, struct wk_err *err)
{
    size_t n = strlen(v);
    if (n >= len)
        return wk_err_set(err, WK_E_LIMIT,
                          "AWS credentials: %s of %zu bytes is too long", what,
                          n);
    memcpy(dst, v, n + 1);
    return WK_OK;
}

static enum wk_code parse_expiration(const char *v, int64_t *out_ms,
                                     struct wk_err *err)
{
    struct wk_err perr;

    wk_err_clear(&perr);
    if (wk_time_parse_rfc3339_ms(v, out_ms, &perr) != WK_OK)
        return wk_err_set(err, WK_E_CORRUPT,
                          "AWS credentials: bad Expiration '%.40s'", v);
    return WK_OK;
}

/* Replies */

struct sts_doc {
    struct awsc_creds *out;
    char code[64];
    char message[256];
    char expiration[64];
    bool is_error_response;
};

static void sts_end(struct xp *x, char *text, size_t len)
{
    struct sts_doc *d = x->out;

    (void)len;
    if (d->is_error_response) {
        if (xp_closing(x, "Error", "Code"))
            xp_copy_cut(d->code, sizeof(d->code), xp_trim(text));
        else if (xp_closing(x, "Error", "Message"))
            xp_copy_cut(d->message, sizeof(d->message), xp_trim(text));
        return;
    }
    if (x->depth != 4 ||
        strcmp(x->names[1], "AssumeRoleWithWebIdentityResult") != 0 ||
        strcmp(x->names[2], "Credentials") != 0)
        return;
    if (strcmp(x->names[3], "AccessKeyId") == 0) {
        if (put_field(d->out->access_key, sizeof(d->out->access_key),
                      xp_trim(text), "AccessKeyId", x->err) != WK_OK)
            xp_fail(x, WK_E_LIMIT, "STS AccessKeyId too long");
    } else if (strcmp(x->names[3], "SecretAccessKey") == 0) {
        if (put_field(d->out->secret_key, sizeof(d->out->secret_key),
                      xp_trim(text), "SecretAccessKey", x->err) != WK_OK)
            xp_fail(x, WK_E_LIMIT, "STS SecretAccessKey too long");
    } else if (strcmp(x->names[3], "SessionToken") == 0) {
        if (put_field(d->out->session_token, sizeof(d->out->session_token),
                      xp_trim(text), "SessionToken", x->err) != WK_OK)
            xp_fail(x, WK_E_LIMIT, "STS SessionToken too long");
    } else if (strcmp(x->names[3], "Expiration") == 0) {
        xp_copy_cut(d->expiration, sizeof(d->expiration), xp_trim(text));
    }
}

static void sts_start(struct xp *x)
{
    struct sts_doc *d = x->out;
    if (x->depth == 2 && strcmp(x->names[0], "ErrorResponse") == 0)
        d->is_error_response = true;
}

enum wk_code awsc_parse_sts(const char *p, size_t n, struct awsc_creds *out,
                            struct wk_err *err)
{
    struct sts_doc d;
    struct xp x;
    enum wk_code rc;

    memset(out, 0, sizeof(*out));
    memset(&d, 0, sizeof(d));
    d.out = out;
    xp_begin(&x, "AssumeRoleWithWebIdentityResponse", sts_start, sts_end, &d);
    x.root2 = "ErrorResponse";
    rc = xp_run(&x, p, n, err);
    if (rc == WK_OK && d.is_error_response) {
        rc = wk_err_set(err, WK_E_HTTP, "STS AssumeRoleWithWebIdentity: %s: %s",
                        d.code[0] ? d.code : "(no code)", d.message);
        if (err && err->s3_code[0] == '\0')
            xp_copy_cut(err->s3_code, sizeof(err->s3_code), d.code);
    } else if (rc == WK_OK && (!out->access_key[0] || !out->secret_key[0] ||
                               !out->session_token[0] || !d.expiration[0])) {
        rc = wk_err_set(err, WK_E_CORRUPT,
                        "STS AssumeRoleWithWebIdentity reply without "
                        "AccessKeyId, SecretAccessKey, SessionToken and "
                        "Expiration");
    }
    if (rc == WK_OK)
        rc = parse_expiration(d.expiration, &out->expires_ms, err);
    if (rc != WK_OK)
        creds_wipe(out);
    return rc;
}

static const char *json_str(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

enum wk_code awsc_parse_json(const char *p, size_t n, struct awsc_creds *out,
                             struct wk_err *err)
{
    json_error_t jerr;
    json_t *o = NULL;
    const char *ak, *sk, *tok, *exp, *code;
    enum wk_code rc = WK_OK;

    memset(out, 0, sizeof(*out));
    if (n > AWSC_BODY_MAX)
        return wk_err_set(err, WK_E_LIMIT,
                          "AWS credentials reply of %zu bytes is too long", n);
    o = json_loadb(p, n, JSON_REJECT_DUPLICATES, &jerr);
    if (!o || !json_is_object(o)) {
        rc = wk_err_set(err, WK_E_CORRUPT,
                        "AWS credentials reply is not a JSON object");
        goto out;
    }
    code = json_str(o, "Code");
    if (json_object_get(o, "Code") && (!code || strcmp(code, "Success") != 0)) {
        rc = wk_err_set(err, WK_E_HTTP,
                        "AWS credentials reply says Code '%.40s'",
                        code ? code : "(not a string)");
        goto out;
    }
    ak = json_str(o, "AccessKeyId");
    sk = json_str(o, "SecretAccessKey");
    tok = json_str(o, "Token");
    exp = json_str(o, "Expiration");
    if (!ak || !*ak || !sk || !*sk) {
        rc = wk_err_set(err, WK_E_CORRUPT,
                        "AWS credentials reply without AccessKeyId and "
                        "SecretAccessKey");
        goto out;
    }
    rc = put_field(out->access_key, sizeof(out->access_key), ak, "AccessKeyId",
                   err);
    if (rc == WK_OK)
        rc = put_field(out->secret_key, sizeof(out->secret_key), sk,
                       "SecretAccessKey", err);
    if (rc == WK_OK && tok)
        rc = put_field(out->session_token, sizeof(out->session_token), tok,
                       "Token", err);
    if (rc == WK_OK && exp && *exp)
        rc = parse_expiration(exp, &out->expires_ms, err);
out:
    if (o) {
        /* jansson keeps its copies: wipe the secret strings it holds */
        const char *keys[] = { "SecretAccessKey", "Token" };
        for (size_t i = 0; i < 2; i++) {
            json_t *v = json_object_get(o, keys[i]);
            if (json_is_string(v))
                OPENSSL_cleanse((void *)(uintptr_t)json_string_value(v),
                                json_string_length(v));
        }
        json_decref(o);
    }
    if (rc != WK_OK)
        creds_wipe(out);
    return rc;
}

/* HTTP */

struct http_call {
    const char *what;   /* for messages: "STS", "container credentials" */
    const char *method; /* "GET", "PUT", "POST" */
    const char *url;
    const char *const *headers; /* NULL-terminated "Name: value" */
    const char *body;           /* POST/PUT body or NULL */
    bool no_proxy;
    const struct awsc_config *cfg;
    unsigned connect_timeout_ms, timeout_ms;
    /* out */
    long status;
    struct wk_buf reply; /* owned by the caller (init/release) */
};

static size_t on_write(char *p, size_t size, size_t nmemb, void *ud)
{
    struct wk_buf *b = ud;
    size_t n = size * nmemb;
    return wk_buf_append(b, p, n, NULL) == WK_OK ? n : 0;
}

static enum wk_code http_once(struct http_call *h, struct wk_err *err)
{
    CURL *e = curl_easy_init();
    struct curl_slist *hl = NULL;
    char ebuf[CURL_ERROR_SIZE] = "";
    enum wk_code rc = WK_OK;
    CURLcode cr;

    if (!e)
        return wk_err_set(err, WK_E_NOMEM, "%s: curl: cannot create a handle",
                          h->what);
    for (size_t i = 0; h->headers && h->headers[i]; i++) {
        struct curl_slist *t = curl_slist_append(hl, h->headers[i]);
        if (!t) {
            rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
            goto out;
        }
        hl = t;
    }
    {
        struct curl_slist *t = curl_slist_append(hl, "Expect:");
        if (!t) {
            rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
            goto out;
        }
        hl = t;
    }
    wk_buf_reset(&h->reply);
    curl_easy_setopt(e, CURLOPT_URL, h->url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "sila-archiver");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, ebuf);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)h->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)h->timeout_ms);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)&h->reply);
    if (h->no_proxy)
        curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    if (h->cfg->ca_file[0])
        curl_easy_setopt(e, CURLOPT_CAINFO, h->cfg->ca_file);
    if (strcmp(h->method, "POST") == 0 || strcmp(h->method, "PUT") == 0) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, h->body ? h->body : "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE,
                         (long)(h->body ? strlen(h->body) : 0));
        if (strcmp(h->method, "PUT") == 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "PUT");
    }
    cr = curl_easy_perform(e);
    if (cr == CURLE_WRITE_ERROR) {
        rc = wk_err_set(err, WK_E_LIMIT, "%s: reply over %u bytes", h->what,
                        AWSC_BODY_MAX);
        goto out;
    }
    if (cr != CURLE_OK) {
        rc = wk_err_set(err, WK_E_NET, "%s: %s", h->what,
                        ebuf[0] ? ebuf : curl_easy_strerror(cr));
        goto out;
    }
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &h->status);
out:
    curl_slist_free_all(hl);
    curl_easy_cleanup(e);
    return rc;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* A few attempts for connection failures and 5xx; the status in h. */
static enum wk_code http_call(struct http_call *h, struct wk_err *err)
{
    enum wk_code rc = WK_OK;

    for (unsigned i = 0; i < AWSC_HTTP_ATTEMPTS; i++) {
        struct wk_err e1;
        wk_err_clear(&e1);
        h->status = 0;
        rc = http_once(h, &e1);
        if (rc == WK_OK && h->status < 500)
            return WK_OK;
        if (rc != WK_OK && rc != WK_E_NET)
            return wk_err_copy(err, &e1);
        if (i + 1 == AWSC_HTTP_ATTEMPTS) {
            if (rc != WK_OK)
                return wk_err_copy(err, &e1);
            return WK_OK; /* the caller reports the 5xx */
        }
        sleep_ms(AWSC_HTTP_BACKOFF_MS << i);
    }
    return rc;
}

static enum wk_code http_status_error(const struct http_call *h,
                                      struct wk_err *err)
{
    wk_err_set(err, WK_E_HTTP, "%s: HTTP %ld", h->what, h->status);
    if (err)
        err->http_status = h->status;
    return WK_E_HTTP;
}

/* The call, a 200, and its JSON body's credentials (container, IMDS). */
static enum wk_code http_json_creds(struct http_call *h, struct awsc_creds *out,
                                    struct wk_err *err)
{
    enum wk_code rc = http_call(h, err);

    if (rc == WK_OK && h->status != 200)
        rc = http_status_error(h, err);
    if (rc == WK_OK)
        rc = awsc_parse_json(h->reply.data ? h->reply.data : "", h->reply.len,
                             out, err);
    return rc;
}

/* host[:port] of an http(s) URL, into buf; the scheme into *https. */
static bool url_host(const char *url, bool *https, char *buf, size_t len)
{
    const char *rest, *end;

    if (strncmp(url, "http://", 7) == 0) {
        *https = false;
        rest = url + 7;
    } else if (strncmp(url, "https://", 8) == 0) {
        *https = true;
        rest = url + 8;
    } else {
        return false;
    }
    end = rest + strcspn(rest, "/?#");
    if (end == rest || (size_t)(end - rest) >= len ||
        memchr(rest, '@', (size_t)(end - rest)))
        return false;
    snprintf(buf, len, "%.*s", (int)(end - rest), rest);
    return true;
}

/* The host part without the port. */
static void host_only(const char *hostport, char *buf, size_t len)
{
    if (hostport[0] == '[') {
        const char *close = strchr(hostport, ']');
        size_t n = close ? (size_t)(close - hostport + 1) : strlen(hostport);
        snprintf(buf, len, "%.*s", (int)n, hostport);
        return;
    }
    snprintf(buf, len, "%.*s", (int)strcspn(hostport, ":"), hostport);
}

static bool is_loopback(const char *host)
{
    if (strcasecmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0)
        return true;
    if (strncmp(host, "127.", 4) != 0)
        return false;
    return strspn(host + 4, "0123456789.") == strlen(host + 4);
}

/* A token file's text (white space around it dropped) into out. */
static enum wk_code read_token(const char *path, const char *what, char *out,
                               size_t len, struct wk_err *err)
{
    char chunk[4096];
    struct wk_buf b;
    FILE *f = fopen(path, "rb");
    enum wk_code rc = WK_OK;
    size_t nr;

    if (!f)
        return wk_err_sys(err, WK_E_IO, errno, "%s '%s'", what, path);
    wk_buf_init(&b, AWSC_TOKEN_FILE_MAX);
    while (rc == WK_OK && (nr = fread(chunk, 1, sizeof(chunk), f)) > 0)
        rc = wk_buf_append(&b, chunk, nr, err);
    fclose(f);
    OPENSSL_cleanse(chunk, sizeof(chunk));
    if (rc == WK_OK) {
        const char *s = wk_buf_cstr(&b);
        size_t n;
        while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
            s++;
        n = strlen(s);
        while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' ||
                         s[n - 1] == '\r' || s[n - 1] == '\n'))
            n--;
        if (n == 0)
            rc = wk_err_set(err, WK_E_INVAL, "%s '%s' is empty", what, path);
        else if (n >= len || memchr(s, '\n', n) || memchr(s, '\r', n))
            rc = wk_err_set(err, WK_E_INVAL,
                            "%s '%s': not a one-line token of less than %zu "
                            "bytes",
                            what, path, len);
        else {
            memcpy(out, s, n);
            out[n] = '\0';
        }
    } else {
        wk_err_prefix(err, "%s '%s'", what, path);
    }
    buf_wipe(&b);
    return rc;
}

/* Web identity (STS) */

static enum wk_code append_form(struct wk_buf *b, const char *name,
                                const char *value, struct wk_err *err)
{
    char *enc = curl_easy_escape(NULL, value, 0);
    enum wk_code rc;

    if (!enc)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    rc = wk_buf_appendf(b, err, "%s%s=%s", b->len ? "&" : "", name, enc);
    OPENSSL_cleanse(enc, strlen(enc));
    curl_free(enc);
    return rc;
}

static bool session_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 2 || n > 64)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || strchr("_+=,.@-", *s)))
            return false;
    return true;
}

static enum wk_code
fetch_web_identity(const struct awsc_config *c, const char *role_arn,
                   const char *token_file, const char *session_name,
                   struct awsc_creds *out, struct wk_err *err)
{
    static const char *const hdrs[] = {
        "Content-Type: application/x-www-form-urlencoded; charset=utf-8",
        "Accept: text/xml", NULL
    };
    char *token = NULL;
    char url[400], host[300], name[65];
    struct wk_buf form;
    struct http_call h;
    enum wk_code rc = WK_OK;
    bool https;

    memset(&h, 0, sizeof(h));
    wk_buf_init(&form, AWSC_TOKEN_FILE_MAX * 4);
    wk_buf_init(&h.reply, AWSC_BODY_MAX);
    token = malloc(AWSC_TOKEN_FILE_MAX);
    if (!token) {
        rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
        goto out;
    }
    if (c->sts_endpoint[0]) {
        size_t n = strlen(c->sts_endpoint);
        while (n > 0 && c->sts_endpoint[n - 1] == '/')
            n--;
        snprintf(url, sizeof(url), "%.*s/", (int)n, c->sts_endpoint);
    } else {
        snprintf(url, sizeof(url), "https://sts.%s.amazonaws.com/",
                 c->region[0] ? c->region : "us-east-1");
    }
    if (!url_host(url, &https, host, sizeof(host))) {
        rc = wk_err_set(err, WK_E_INVAL,
                        "STS endpoint '%s': expected http:// or https://", url);
        goto out;
    }
    {
        char h_only[300];
        host_only(host, h_only, sizeof(h_only));
        if (!https && !c->allow_insecure && !is_loopback(h_only)) {
            rc = wk_err_set(err, WK_E_INVAL,
                            "STS endpoint '%s': plain http:// only on "
                            "loopback; use https://, or SILA_ALLOW_INSECURE=1",
                            url);
            goto out;
        }
    }
    if (session_name && session_name[0])
        snprintf(name, sizeof(name), "%s", session_name);
    else
        snprintf(name, sizeof(name), "sila-archiver-%lld",
                 (long long)time(NULL));
    if (!session_name_ok(name)) {
        rc = wk_err_set(err, WK_E_INVAL,
                        "role session name '%s': 2 to 64 of "
                        "[A-Za-z0-9_+=,.@-]",
                        name);
        goto out;
    }
    rc = read_token(token_file, "web identity token file", token,
                    AWSC_TOKEN_FILE_MAX, err);
    if (rc == WK_OK)
        rc = append_form(&form, "Action", "AssumeRoleWithWebIdentity", err);
    if (rc == WK_OK)
        rc = append_form(&form, "Version", "2011-06-15", err);
    if (rc == WK_OK)
        rc = append_form(&form, "RoleArn", role_arn, err);
    if (rc == WK_OK)
        rc = append_form(&form, "RoleSessionName", name, err);
    if (rc == WK_OK)
        rc = append_form(&form, "WebIdentityToken", token, err);
    if (rc != WK_OK)
        goto out;
    h.what = "STS AssumeRoleWithWebIdentity";
    h.method = "POST";
    h.url = url;
    h.headers = hdrs;
    h.body = wk_buf_cstr(&form);
    h.cfg = c;
    h.connect_timeout_ms = c->connect_timeout_ms;
    h.timeout_ms = c->timeout_ms;
    rc = http_call(&h, err);
    if (rc != WK_OK)
        goto out;
    if (h.status == 200) {
        rc = awsc_parse_sts(h.reply.data ? h.reply.data : "", h.reply.len, out,
                            err);
    } else {
        /* STS's ErrorResponse names the problem (InvalidIdentityToken,
         * AccessDenied, ExpiredTokenException) */
        struct awsc_creds junk;
        struct wk_err perr;
        wk_err_clear(&perr);
        if (h.reply.len && awsc_parse_sts(h.reply.data, h.reply.len, &junk,
                                          &perr) == WK_E_HTTP) {
            wk_err_set(err, WK_E_HTTP, "HTTP %ld: %s", h.status, perr.msg);
            if (err) {
                err->http_status = h.status;
                memcpy(err->s3_code, perr.s3_code, sizeof(err->s3_code));
            }
            rc = WK_E_HTTP;
        } else {
            rc = http_status_error(&h, err);
        }
        creds_wipe(&junk);
    }
out:
    if (token) {
        OPENSSL_cleanse(token, AWSC_TOKEN_FILE_MAX);
        free(token);
    }
    buf_wipe(&form);
    buf_wipe(&h.reply);
    return rc;
}

/* Container (ECS, EKS Pod Identity) */

/* The SDKs' rule: http:// only to loopback or the ECS / EKS link-local
 * hosts; https:// anywhere. */
static bool container_host_ok(const char *host, bool https)
{
    char h[300];

    if (https)
        return true;
    host_only(host, h, sizeof(h));
    return is_loopback(h) || strcmp(h, AWSC_ECS_HOST) == 0 ||
           strcmp(h, "169.254.170.23") == 0 ||
           strcasecmp(h, "[fd00:ec2::23]") == 0;
}

static enum wk_code fetch_container(const struct awsc_config *c,
                                    struct awsc_creds *out, struct wk_err *err)
{
    char url[AWSC_URL_MAX + 64], host[300];
    char *auth = NULL;
    const char *hdrs[2] = { NULL, NULL };
    struct http_call h;
    enum wk_code rc = WK_OK;
    bool https = false;

    memset(&h, 0, sizeof(h));
    wk_buf_init(&h.reply, AWSC_BODY_MAX);
    if (c->container_relative_uri[0]) {
        snprintf(url, sizeof(url), "http://" AWSC_ECS_HOST "%s%s",
                 c->container_relative_uri[0] == '/' ? "" : "/",
                 c->container_relative_uri);
    } else {
        snprintf(url, sizeof(url), "%s", c->container_full_uri);
        if (!url_host(url, &https, host, sizeof(host)) ||
            !container_host_ok(host, https)) {
            rc = wk_err_set(err, WK_E_INVAL,
                            "AWS_CONTAINER_CREDENTIALS_FULL_URI '%s': "
                            "expected https://, or http:// to loopback, "
                            "169.254.170.2, 169.254.170.23 or fd00:ec2::23",
                            url);
            goto out;
        }
    }
    if (c->container_token_file[0] || c->container_token[0]) {
        auth = malloc(AWSC_TOKEN_MAX + 32);
        if (!auth) {
            rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
            goto out;
        }
        memcpy(auth, "Authorization: ", 16);
        if (c->container_token_file[0]) {
            rc = read_token(c->container_token_file,
                            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", auth + 15,
                            AWSC_TOKEN_MAX, err);
        } else if (strpbrk(c->container_token, "\r\n")) {
            rc = wk_err_set(err, WK_E_INVAL,
                            "AWS_CONTAINER_AUTHORIZATION_TOKEN holds a line "
                            "break");
        } else {
            snprintf(auth + 15, AWSC_TOKEN_MAX, "%s", c->container_token);
        }
        if (rc != WK_OK)
            goto out;
        hdrs[0] = auth;
    }
    h.what = "container credentials";
    h.method = "GET";
    h.url = url;
    h.headers = hdrs;
    h.no_proxy = true;
    h.cfg = c;
    h.connect_timeout_ms = c->connect_timeout_ms;
    h.timeout_ms = c->timeout_ms;
    rc = http_json_creds(&h, out, err);
    if (rc != WK_OK)
        wk_err_prefix(err, "container credentials");
out:
    if (auth) {
        OPENSSL_cleanse(auth, AWSC_TOKEN_MAX + 32);
        free(auth);
    }
    buf_wipe(&h.reply);
    return rc;
}

/* EC2 instance metadata, IMDSv2 */

static enum wk_code fetch_imds(const struct awsc_config *c,
                               struct awsc_creds *out, struct wk_err *err)
{
    static const char *const put_hdrs[] = {
        "X-aws-ec2-metadata-token-ttl-seconds: " AWSC_IMDS_TTL_S, NULL
    };
    char base[300], url[600], role[256];
    char tok_hdr[200];
    const char *hdrs[2] = { tok_hdr, NULL };
    struct http_call h;
    enum wk_code rc = WK_OK;
    size_t n;

    memset(&h, 0, sizeof(h));
    tok_hdr[0] = '\0';
    wk_buf_init(&h.reply, AWSC_BODY_MAX);
    snprintf(base, sizeof(base), "%s",
             c->imds_endpoint[0] ? c->imds_endpoint : AWSC_IMDS_DEFAULT);
    n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        base[--n] = '\0';
    h.cfg = c;
    h.no_proxy = true;
    /* the SDKs' short timeouts: off EC2 nothing answers */
    h.connect_timeout_ms = 1000;
    h.timeout_ms = c->timeout_ms < 2000 ? c->timeout_ms : 2000;

    h.what = "EC2 metadata token (IMDSv2)";
    h.method = "PUT";
    snprintf(url, sizeof(url), "%s/latest/api/token", base);
    h.url = url;
    h.headers = put_hdrs;
    rc = http_call(&h, err);
    if (rc == WK_OK && h.status != 200)
        rc = http_status_error(&h, err);
    if (rc == WK_OK) {
        const char *t = wk_buf_cstr(&h.reply);
        if (h.reply.len == 0 || h.reply.len >= sizeof(tok_hdr) - 40 ||
            strcspn(t, "\r\n") != h.reply.len)
            rc = wk_err_set(err, WK_E_CORRUPT,
                            "EC2 metadata: bad session token reply");
        else
            snprintf(tok_hdr, sizeof(tok_hdr), "X-aws-ec2-metadata-token: %s",
                     t);
    }
    if (rc != WK_OK)
        goto out;

    h.what = "EC2 metadata role";
    h.method = "GET";
    h.headers = hdrs;
    snprintf(url, sizeof(url), "%s/latest/meta-data/iam/security-credentials/",
             base);
    rc = http_call(&h, err);
    if (rc == WK_OK && h.status == 404)
        rc = wk_err_set(err, WK_E_NOTFOUND,
                        "EC2 metadata: the instance has no IAM role "
                        "(instance profile)");
    else if (rc == WK_OK && h.status != 200)
        rc = http_status_error(&h, err);
    if (rc == WK_OK) {
        const char *t = wk_buf_cstr(&h.reply);
        size_t rl = strcspn(t, "\r\n");
        if (rl == 0 || rl >= sizeof(role))
            rc = wk_err_set(err, WK_E_CORRUPT, "EC2 metadata: bad role name");
        else
            snprintf(role, sizeof(role), "%.*s", (int)rl, t);
        for (size_t i = 0; rc == WK_OK && role[i]; i++)
            if (role[i] == '/' || role[i] == '?' || role[i] == '#' ||
                (unsigned char)role[i] < 0x21)
                rc = wk_err_set(err, WK_E_CORRUPT,
                                "EC2 metadata: bad role name");
    }
    if (rc != WK_OK)
        goto out;

    h.what = "EC2 metadata credentials";
    snprintf(url, sizeof(url),
             "%s/latest/meta-data/iam/security-credentials/%s", base, role);
    rc = http_json_creds(&h, out, err);
out:
    OPENSSL_cleanse(tok_hdr, sizeof(tok_hdr));
    buf_wipe(&h.reply);
    return rc;
}

/* Any source */

static enum wk_code fetch_profile(const struct awsc_config *c,
                                  struct awsc_creds *out, struct wk_err *err)
{
    struct awsc_profile *p = calloc(1, sizeof(*p));
    enum wk_code rc;

    if (!p)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    rc = awsc_profile_load(c, p, err);
    if (rc == WK_OK && p->found && p->access_key[0] && p->secret_key[0]) {
        snprintf(out->access_key, sizeof(out->access_key), "%s", p->access_key);
        snprintf(out->secret_key, sizeof(out->secret_key), "%s", p->secret_key);
        snprintf(out->session_token, sizeof(out->session_token), "%s",
                 p->session_token);
        out->expires_ms = 0;
    } else if (rc == WK_OK && p->found && p->role_arn[0] &&
               p->web_identity_token_file[0]) {
        rc = fetch_web_identity(c, p->role_arn, p->web_identity_token_file,
                                p->role_session_name[0] ? p->role_session_name
                                                        : c->role_session_name,
                                out, err);
    } else if (rc == WK_OK) {
        rc = wk_err_set(err, WK_E_NOTFOUND,
                        "AWS profile '%s': no credentials in '%s' or '%s'",
                        c->profile, c->credentials_file, c->config_file);
    }
    OPENSSL_cleanse(p, sizeof(*p));
    free(p);
    return rc;
}

enum wk_code awsc_fetch(const struct awsc_config *c, enum awsc_source src,
                        struct awsc_creds *out, struct wk_err *err)
{
    enum wk_code rc;

    memset(out, 0, sizeof(*out));
    switch (src) {
    case AWSC_ENV:
        if (!c->access_key[0] || !c->secret_key[0])
            return wk_err_set(err, WK_E_NOTFOUND,
                              "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                              "are not set");
        memcpy(out->access_key, c->access_key, sizeof(out->access_key));
        memcpy(out->secret_key, c->secret_key, sizeof(out->secret_key));
        memcpy(out->session_token, c->session_token,
               sizeof(out->session_token));
        rc = WK_OK;
        break;
    case AWSC_PROFILE:
        rc = fetch_profile(c, out, err);
        break;
    case AWSC_WEB_IDENTITY:
        rc = fetch_web_identity(c, c->role_arn, c->web_identity_token_file,
                                c->role_session_name, out, err);
        break;
    case AWSC_CONTAINER:
        rc = fetch_container(c, out, err);
        break;
    case AWSC_IMDS:
        rc = fetch_imds(c, out, err);
        break;
    default:
        return wk_err_set(err, WK_E_INTERNAL, "no credential source");
    }
    if (rc == WK_OK)
        out->source = src;
    else
        creds_wipe(out);
    return rc;
}
