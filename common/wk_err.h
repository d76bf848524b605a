/*
 * wk_err: error codes plus a message, the way every fallible call reports.
 *
 * A function that can fail returns enum wk_code and takes struct wk_err *err
 * last. The first error set wins (the deepest caller knows the most); later
 * wk_err_set() calls only return their code. err may be NULL. Messages are
 * lowercase, without a final period, and never hold secrets. Nothing here
 * blocks or allocates.
 */
#ifndef WK_COMMON_WK_ERR_H
#define WK_COMMON_WK_ERR_H

#include <stdbool.h>

enum wk_code {
    WK_OK = 0,
    WK_E_INVAL, /* bad job spec, config or argument: permanent */
    WK_E_NOMEM,
    WK_E_IO,   /* local I/O; sys_errno is set */
    WK_E_NET,  /* connect, timeout, TLS: usually transient */
    WK_E_HTTP, /* unexpected status; http_status is set */
    WK_E_NOTFOUND,
    WK_E_LIMIT,     /* a configured bound was hit */
    WK_E_CANCELLED, /* shutdown requested */
    WK_E_INTERNAL,  /* broken invariant: a bug */
    WK_E_CORRUPT,   /* data failed verification (checksum, format): permanent */
    WK_E_CONFLICT,  /* state changed under us (precondition failed) */
    WK_E_FENCED,    /* this run lost its job (lease) to another worker */
};

struct wk_err {
    enum wk_code code;
    int sys_errno;    /* 0 unless code == WK_E_IO or WK_E_NET */
    long http_status; /* 0 unless an HTTP reply was seen */
    char s3_code[64]; /* S3 error code ("SlowDown"), "" if none */
    char msg[256];    /* first failure wins; never holds secrets */
};

/* Reset to "no error". */
void wk_err_clear(struct wk_err *err);

/* Keeps the first error only and returns code: "return wk_err_set(...);" */
enum wk_code wk_err_set(struct wk_err *err, enum wk_code code, const char *fmt,
                        ...) __attribute__((format(printf, 3, 4)));

/* Like wk_err_set(), also records errno and appends ": <the errno text>". */
enum wk_code wk_err_sys(struct wk_err *err, enum wk_code code, int errnum,
                        const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Copy src into dst unless dst already holds an error; returns src->code. */
enum wk_code wk_err_copy(struct wk_err *dst, const struct wk_err *src);

/* Prefix the message with "what: " (used when a caller adds context). */
void wk_err_prefix(struct wk_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* True for failures worth retrying later: network, 5xx, throttling. */
bool wk_err_transient(const struct wk_err *err);

/* Stable lowercase name of a code ("net", "inval"): appears in logs. */
const char *wk_code_name(enum wk_code code);

/* Bugs only: logs and aborts. Never on data from the network or a job. */
#define WK_ASSERT(cond)                                \
    do {                                               \
        if (!(cond))                                   \
            wk_assert_fail(#cond, __FILE__, __LINE__); \
    } while (0)
void wk_assert_fail(const char *expr, const char *file, int line)
    __attribute__((noreturn));

#endif
