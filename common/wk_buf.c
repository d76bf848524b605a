/* wk_buf: the bounded growable buffer (see wk_buf.h); growth past the
 * ceiling fails and leaves the buffer as it was. */
#include "common/wk_buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void wk_buf_init(struct wk_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void wk_buf_release(struct wk_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void wk_buf_reset(struct wk_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

enum wk_code wk_buf_reserve(struct wk_buf *b, size_t n, struct wk_err *err)
{
    size_t need, ncap;
    char *p;

    if (n > b->max || b->len > b->max - n)
        return wk_err_set(err, WK_E_LIMIT,
                          "buffer would exceed its limit of %zu bytes", b->max);
    need = b->len + n + 1; /* room for the NUL */
    if (need <= b->cap)
        return WK_OK;
    /* a first allocation is what is asked for (a reserve of a known size
     * must not take twice that); growth doubles */
    ncap = b->cap ? b->cap : (need > 256 ? need : 256);
    while (ncap < need)
        ncap = ncap > (SIZE_MAX / 2) ? need : ncap * 2;
    if (ncap > b->max + 1)
        ncap = b->max + 1;
    if (ncap < need)
        ncap = need;
    p = realloc(b->data, ncap);
    if (!p)
        return wk_err_set(err, WK_E_NOMEM, "out of memory (%zu bytes)", ncap);
    b->data = p;
    b->cap = ncap;
    return WK_OK;
}

enum wk_code wk_buf_append(struct wk_buf *b, const void *p, size_t n,
                           struct wk_err *err)
{
    enum wk_code rc = wk_buf_reserve(b, n, err);
    if (rc != WK_OK)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return WK_OK;
}

enum wk_code wk_buf_appends(struct wk_buf *b, const char *s, struct wk_err *err)
{
    return wk_buf_append(b, s, strlen(s), err);
}

enum wk_code wk_buf_appendf(struct wk_buf *b, struct wk_err *err,
                            const char *fmt, ...)
{
    va_list ap;
    int n;
    enum wk_code rc;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return wk_err_set(err, WK_E_INTERNAL, "bad format string");
    rc = wk_buf_reserve(b, (size_t)n, err);
    if (rc != WK_OK)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return WK_OK;
}

const char *wk_buf_cstr(const struct wk_buf *b)
{
    return b->data ? b->data : "";
}

char *wk_buf_detach(struct wk_buf *b, size_t *len)
{
    char *p = b->data;
    if (len)
        *len = b->len;
    if (!p)
        p = calloc(1, 1);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}
