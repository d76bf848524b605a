/*
 * wk_buf: a growable byte buffer with a hard ceiling (curl's dynbuf).
 *
 * wk_buf_init(&b, max) sets the ceiling; growing past it fails with
 * WK_E_LIMIT and leaves the buffer as it was. The buffer owns its memory;
 * data is NUL-terminated whenever len > 0 (so text can be used as a C
 * string), and wk_buf_cstr() never returns NULL. Nothing blocks.
 */
#ifndef WK_COMMON_WK_BUF_H
#define WK_COMMON_WK_BUF_H

#include <stddef.h>

#include "common/wk_err.h"

struct wk_buf {
    char *data; /* owned; NULL until the first append */
    size_t len;
    size_t cap;
    size_t max; /* ceiling for len, in bytes */
};

void wk_buf_init(struct wk_buf *b, size_t max);
/* Free the memory; the buffer can be reused after wk_buf_init(). */
void wk_buf_release(struct wk_buf *b);
/* Drop the contents, keep the memory. */
void wk_buf_reset(struct wk_buf *b);

enum wk_code wk_buf_append(struct wk_buf *b, const void *p, size_t n,
                           struct wk_err *err);
enum wk_code wk_buf_appends(struct wk_buf *b, const char *s,
                            struct wk_err *err);
enum wk_code wk_buf_appendf(struct wk_buf *b, struct wk_err *err,
                            const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Make room for n more bytes without changing len. */
enum wk_code wk_buf_reserve(struct wk_buf *b, size_t n, struct wk_err *err);

/* The contents as a C string ("" when empty). Valid until the next call. */
const char *wk_buf_cstr(const struct wk_buf *b);

/* Hand the memory to the caller (free() it); the buffer becomes empty. */
char *wk_buf_detach(struct wk_buf *b, size_t *len);

#endif
