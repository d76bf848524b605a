/*
 * wk_log: one JSON object per line on stderr, written with a single write(2).
 *
 *   WK_LOG(WK_LOG_INFO, "job.claimed", KV_STR("job_id", id), KV_INT("n", 3));
 *
 * The level is checked before any argument is evaluated. Values are escaped
 * by jansson, never pasted into a format. Event names are stable, dotted and
 * in the past tense. Never pass credentials, Authorization headers,
 * signatures or presigned URLs. Thread-safe (one write per line).
 */
#ifndef WK_COMMON_WK_LOG_H
#define WK_COMMON_WK_LOG_H

#include <stdint.h>

enum wk_log_level {
    WK_LOG_DEBUG = 0,
    WK_LOG_INFO = 1,
    WK_LOG_WARN = 2,
    WK_LOG_ERROR = 3,
};

enum wk_kv_type { WK_KV_NONE = 0, WK_KV_STR, WK_KV_INT, WK_KV_BOOL };

struct wk_kv {
    const char *key; /* borrowed */
    enum wk_kv_type type;
    const char *s; /* borrowed; NULL is written as null */
    long long i;
};

#define KV_STR(k, v)  ((struct wk_kv){ (k), WK_KV_STR, (v), 0 })
#define KV_INT(k, v)  ((struct wk_kv){ (k), WK_KV_INT, NULL, (long long)(v) })
#define KV_BOOL(k, v) ((struct wk_kv){ (k), WK_KV_BOOL, NULL, (v) ? 1 : 0 })

extern int wk_log_min_level;

#define WK_LOG(level, event, ...)                                           \
    do {                                                                    \
        if ((int)(level) >= wk_log_min_level) {                             \
            const struct wk_kv wk_kvs_[] = { { NULL, WK_KV_NONE, NULL, 0 }, \
                                             __VA_ARGS__ };                 \
            wk_log_emit((level), (event), wk_kvs_,                          \
                        sizeof(wk_kvs_) / sizeof(wk_kvs_[0]));              \
        }                                                                   \
    } while (0)

/* Set the minimum level from a name ("debug", "info", "warn", "error");
 * returns -1 for an unknown name and leaves the level unchanged. */
int wk_log_set_level(const char *name);

/* Redirect output to fd (default 2). */
void wk_log_set_fd(int fd);

/* Writes the line; entries of type WK_KV_NONE are skipped. */
void wk_log_emit(enum wk_log_level level, const char *event,
                 const struct wk_kv *kvs, unsigned n);

#endif
