/* wk_err: error codes, their names, and the message of the first error
 * set (see wk_err.h). */
#include "common/wk_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void wk_err_clear(struct wk_err *err)
{
    if (err)
        memset(err, 0, sizeof(*err));
}

static enum wk_code err_vset(struct wk_err *err, enum wk_code code, int errnum,
                             const char *fmt, va_list ap)
{
    if (!err || err->code != WK_OK)
        return code;
    err->code = code;
    err->sys_errno = errnum;
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    if (errnum) {
        char eb[128];
        size_t len = strlen(err->msg);
        if (strerror_r(errnum, eb, sizeof(eb)) != 0)
            snprintf(eb, sizeof(eb), "errno %d", errnum);
        snprintf(err->msg + len, sizeof(err->msg) - len, ": %s", eb);
    }
    return code;
}

enum wk_code wk_err_set(struct wk_err *err, enum wk_code code, const char *fmt,
                        ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_vset(err, code, 0, fmt, ap);
    va_end(ap);
    return code;
}

enum wk_code wk_err_sys(struct wk_err *err, enum wk_code code, int errnum,
                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_vset(err, code, errnum, fmt, ap);
    va_end(ap);
    return code;
}

enum wk_code wk_err_copy(struct wk_err *dst, const struct wk_err *src)
{
    if (dst && dst->code == WK_OK && src->code != WK_OK)
        *dst = *src;
    return src->code;
}

void wk_err_prefix(struct wk_err *err, const char *fmt, ...)
{
    char pre[128], old[sizeof(err->msg)];
    va_list ap;

    if (!err || err->code == WK_OK)
        return;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof(pre), fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof(old));
    /* a message too long for the buffer is cut, which is acceptable */
    if (snprintf(err->msg, sizeof(err->msg), "%s: %s", pre, old) < 0)
        err->msg[0] = '\0';
}

bool wk_err_transient(const struct wk_err *err)
{
    switch (err->code) {
    case WK_E_NET:
        return true;
    case WK_E_HTTP:
        /* 501 Not Implemented: the server lacks the call, for good */
        if (err->http_status == 501 ||
            strcmp(err->s3_code, "NotImplemented") == 0)
            return false;
        if (err->http_status >= 500 || err->http_status == 429 ||
            err->http_status == 408)
            return true;
        return strcmp(err->s3_code, "SlowDown") == 0 ||
               strcmp(err->s3_code, "RequestTimeout") == 0 ||
               strcmp(err->s3_code, "InternalError") == 0;
    default:
        return false;
    }
}

const char *wk_code_name(enum wk_code code)
{
    switch (code) {
    case WK_OK:
        return "ok";
    case WK_E_INVAL:
        return "inval";
    case WK_E_NOMEM:
        return "nomem";
    case WK_E_IO:
        return "io";
    case WK_E_NET:
        return "net";
    case WK_E_HTTP:
        return "http";
    case WK_E_NOTFOUND:
        return "notfound";
    case WK_E_LIMIT:
        return "limit";
    case WK_E_CANCELLED:
        return "cancelled";
    case WK_E_INTERNAL:
        return "internal";
    case WK_E_CORRUPT:
        return "corrupt";
    case WK_E_CONFLICT:
        return "conflict";
    case WK_E_FENCED:
        return "fenced";
    }
    return "unknown";
}

void wk_assert_fail(const char *expr, const char *file, int line)
{
    char line_buf[512];
    int n = snprintf(line_buf, sizeof(line_buf),
                     "{\"level\":\"fatal\",\"event\":\"assert.failed\","
                     "\"expr\":\"%s\",\"file\":\"%s\",\"line\":%d}\n",
                     expr, file, line);
    if (n > 0) {
        size_t len =
            (size_t)n < sizeof(line_buf) ? (size_t)n : sizeof(line_buf) - 1;
        ssize_t w = write(2, line_buf, len);
        (void)w;
    }
    abort();
}
