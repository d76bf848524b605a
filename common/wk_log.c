/* wk_log: the JSON-lines logger: level filter, escaping, one write(2)
 * per event (see wk_log.h), under a lock: lines of the job runners and the
 * heartbeats never interleave, even past PIPE_BUF or on a short write. */
#include "common/wk_log.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/wk_time.h"

int wk_log_min_level = WK_LOG_INFO;
static int log_fd = 2;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

int wk_log_set_level(const char *name)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            wk_log_min_level = i;
            return 0;
        }
    }
    return -1;
}

void wk_log_set_fd(int fd)
{
    log_fd = fd;
}

void wk_log_emit(enum wk_log_level level, const char *event,
                 const struct wk_kv *kvs, unsigned n)
{
    char ts[96];
    struct timespec now;
    json_t *o = json_object();
    char *line = NULL;

    if (!o)
        return;
    clock_gettime(CLOCK_REALTIME, &now);
    wk_time_fmt_rfc3339_ms(&now, ts, sizeof(ts));
    json_object_set_new(o, "ts", json_string(ts));
    json_object_set_new(
        o, "level",
        json_string(level_names[level <= WK_LOG_ERROR ? level : WK_LOG_ERROR]));
    json_object_set_new(o, "event", json_string(event));
    for (unsigned i = 0; i < n; i++) {
        const struct wk_kv *kv = &kvs[i];
        json_t *v = NULL;
        switch (kv->type) {
        case WK_KV_NONE:
            continue;
        case WK_KV_STR:
            /* json_string() refuses invalid UTF-8: keep the line anyway */
            v = kv->s ? json_string(kv->s) : json_null();
            if (!v)
                v = json_string("<invalid utf-8>");
            break;
        case WK_KV_INT:
            v = json_integer(kv->i);
            break;
        case WK_KV_BOOL:
            v = json_boolean(kv->i);
            break;
        }
        if (v)
            json_object_set_new(o, kv->key, v);
    }
    line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!line)
        return;
    size_t len = strlen(line);
    line[len] = '\n'; /* json_dumps leaves room: overwrite NUL, write len+1 */
    const char *p = line;
    size_t left = len + 1;
    pthread_mutex_lock(&log_mu);
    while (left > 0) {
        ssize_t w = write(log_fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        p += w;
        left -= (size_t)w;
    }
    pthread_mutex_unlock(&log_mu);
    free(line);
}
