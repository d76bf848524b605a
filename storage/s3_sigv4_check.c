/* The checks SigV4 makes before signing: method, host, path, payload hash,
 * credential scope, access key, secret and token, header names and values,
 * and the headers the signer sets itself. Messages name the field, never a
 * secret or a header value. */
#include <stdbool.h>
#include <string.h>

#include "storage/s3_sigv4_int.h"

/* 1 to S3_SIGV4_NAME_MAX characters, each one char_ok. */
static bool short_name_ok(const char *s, bool (*char_ok)(unsigned char c))
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > S3_SIGV4_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!char_ok((unsigned char)s[i]))
            return false;
    return true;
}

/* Letters, digits and "-_." : safe inside the credential scope. */
static bool scope_char(unsigned char c)
{
    return s3_sigv4_unreserved(c) && c != '~';
}

static bool scope_part_ok(const char *s)
{
    return short_name_ok(s, scope_char);
}

bool s3_sigv4_header_name_ok(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (s3_sigv4_unreserved(c))
            continue;
        if (!strchr("!#$%&'*+^`|", c))
            return false;
    }
    return true;
}

bool s3_sigv4_header_value_ok(const char *s)
{
    if (!s)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

/* Visible ASCII, no separators that would break the Authorization value. */
static bool access_key_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != '/' && c != ',';
}

static bool access_key_ok(const char *s)
{
    return short_name_ok(s, access_key_char);
}

static bool method_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 16)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 'A' || s[i] > 'Z')
            return false;
    return true;
}

static bool host_ok(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 0x20 || c >= 0x7f)
            return false;
    }
    return true;
}

static bool payload_hash_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 64) {
        for (size_t i = 0; i < n; i++)
            if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                return false;
        return true;
    }
    return s && strcmp(s, S3_UNSIGNED_PAYLOAD) == 0;
}

bool s3_sigv4_has_token(const struct s3_creds *creds)
{
    return creds->session_token && creds->session_token[0] != '\0';
}

bool s3_sigv4_header_reserved(const char *lname)
{
    static const char *const names[] = {
        "authorization",        "host", "x-amz-content-sha256", "x-amz-date",
        "x-amz-security-token",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(lname, names[i]) == 0)
            return true;
    return false;
}

enum wk_code s3_sigv4_check_request(const struct s3_sigv4_req *req,
                                    const struct s3_creds *creds,
                                    struct wk_err *err)
{
    if (!method_ok(req->method))
        return wk_err_set(err, WK_E_INVAL, "sigv4: bad http method");
    if (!host_ok(req->host))
        return wk_err_set(err, WK_E_INVAL, "sigv4: bad host");
    if (!req->path || req->path[0] != '/')
        return wk_err_set(err, WK_E_INVAL, "sigv4: path must start with '/'");
    if (req->n_query > 0 && !req->query)
        return wk_err_set(err, WK_E_INVAL, "sigv4: null query list");
    if (req->n_headers > 0 && !req->headers)
        return wk_err_set(err, WK_E_INVAL, "sigv4: null header list");
    if (!payload_hash_ok(req->payload_hash))
        return wk_err_set(err, WK_E_INVAL,
                          "sigv4: payload hash must be 64 lowercase hex "
                          "digits or '" S3_UNSIGNED_PAYLOAD "'");
    if (!scope_part_ok(req->region))
        return wk_err_set(err, WK_E_INVAL, "sigv4: bad region");
    if (!scope_part_ok(req->service))
        return wk_err_set(err, WK_E_INVAL, "sigv4: bad service");
    if (!access_key_ok(creds->access_key))
        return wk_err_set(err, WK_E_INVAL, "sigv4: bad access key id");
    if (!creds->secret_key || !creds->secret_key[0])
        return wk_err_set(err, WK_E_INVAL, "sigv4: empty secret key");
    if (strlen(creds->secret_key) > S3_SIGV4_SECRET_MAX)
        return wk_err_set(err, WK_E_INVAL,
                          "sigv4: secret key longer than %d bytes",
                          S3_SIGV4_SECRET_MAX);
    if (s3_sigv4_has_token(creds) &&
        !s3_sigv4_header_value_ok(creds->session_token))
        return wk_err_set(err, WK_E_INVAL,
                          "sigv4: session token holds control characters");
    return WK_OK;
}
