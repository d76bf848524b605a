/* wk_fail: SILA_FAILPOINTS parsed once, then matched by name (wk_fail.h). */
#include "common/wk_fail.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/wk_log.h"

#define WK_FAIL_MAX      16
#define WK_FAIL_NAME_MAX 64

enum wk_fail_action { WK_FAIL_STOP, WK_FAIL_KILL, WK_FAIL_SLEEP };

struct wk_fail_entry {
    char name[WK_FAIL_NAME_MAX];
    enum wk_fail_action action;
    unsigned long sleep_ms;
    unsigned long at;   /* fires on this pass (1-based) */
    unsigned long hits; /* passes so far */
    bool repeat;        /* "@n+": every pass from the n-th on */
};

static struct wk_fail_entry fail_tab[WK_FAIL_MAX];
static unsigned fail_n;
static atomic_bool fail_any;
static pthread_once_t fail_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t fail_mu = PTHREAD_MUTEX_INITIALIZER;

static void fail_parse_one(const char *s, size_t len)
{
    struct wk_fail_entry e = { .at = 1 };
    const char *eq = memchr(s, '=', len), *act, *end = s + len, *at;
    size_t alen;

    if (!eq || eq == s || (size_t)(eq - s) >= sizeof(e.name) ||
        fail_n >= WK_FAIL_MAX)
        goto bad;
    memcpy(e.name, s, (size_t)(eq - s));
    act = eq + 1;
    at = memchr(act, '@', (size_t)(end - act));
    alen = (size_t)((at ? at : end) - act);
    if (at) {
        char num[24] = { 0 }, *stop = NULL;
        size_t nlen = (size_t)(end - at - 1);
        if (nlen == 0 || nlen >= sizeof(num))
            goto bad;
        memcpy(num, at + 1, nlen);
        if (num[nlen - 1] == '+') {
            e.repeat = true;
            num[nlen - 1] = '\0';
        }
        e.at = strtoul(num, &stop, 10);
        if (stop == num || *stop || e.at == 0)
            goto bad;
    }
    if (alen == 4 && memcmp(act, "stop", 4) == 0) {
        e.action = WK_FAIL_STOP;
    } else if (alen == 4 && memcmp(act, "kill", 4) == 0) {
        e.action = WK_FAIL_KILL;
    } else if (alen > 6 && alen < 24 && memcmp(act, "sleep:", 6) == 0) {
        char num[24] = { 0 }, *stop = NULL;
        memcpy(num, act + 6, alen - 6);
        e.sleep_ms = strtoul(num, &stop, 10);
        if (*stop)
            goto bad;
        e.action = WK_FAIL_SLEEP;
    } else {
        goto bad;
    }
    fail_tab[fail_n++] = e;
    return;
bad:
    WK_LOG(WK_LOG_WARN, "failpoint.ignored", KV_STR("reason", "malformed"));
}

static void fail_init(void)
{
    const char *env = getenv("SILA_FAILPOINTS");
    if (!env || !*env)
        return;
    while (*env) {
        const char *comma = strchr(env, ',');
        size_t len = comma ? (size_t)(comma - env) : strlen(env);
        if (len)
            fail_parse_one(env, len);
        env += len + (comma ? 1 : 0);
    }
    atomic_store(&fail_any, fail_n > 0);
}

void wk_fail_point(const char *name)
{
    struct wk_fail_entry hit;
    bool fire = false;

    pthread_once(&fail_once, fail_init);
    if (!atomic_load_explicit(&fail_any, memory_order_relaxed))
        return;
    pthread_mutex_lock(&fail_mu);
    for (unsigned i = 0; i < fail_n; i++) {
        if (strcmp(fail_tab[i].name, name) != 0)
            continue;
        ++fail_tab[i].hits;
        if (fail_tab[i].hits == fail_tab[i].at ||
            (fail_tab[i].repeat && fail_tab[i].hits > fail_tab[i].at)) {
            hit = fail_tab[i];
            fire = true;
        }
    }
    pthread_mutex_unlock(&fail_mu);
    if (!fire)
        return;
    WK_LOG(WK_LOG_WARN, "failpoint.hit", KV_STR("name", name),
           KV_INT("pass", hit.hits));
    switch (hit.action) {
    case WK_FAIL_STOP:
        raise(SIGSTOP);
        break;
    case WK_FAIL_KILL:
        raise(SIGKILL);
        break;
    case WK_FAIL_SLEEP: {
        struct timespec ts = { (time_t)(hit.sleep_ms / 1000),
                               (long)(hit.sleep_ms % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) != 0)
            ;
        break;
    }
    }
}
