/* worker_hk: the housekeeping thread (see worker_hk.h): due delayed jobs
 * back to their lanes every HK_PROMOTE_MS, stranded jobs repaired every
 * lease/3, on a connection of its own, with backoff while Redis is away. */
#include "worker/worker_hk.h"

#include <string.h>
#include <time.h>

#include "common/wk_log.h"
#include "worker/q.h"
#include "worker/worker_hb.h"

#define HK_BACKOFF_MAX_MS 5000

/* Wait ms on hk's condition; false when told to quit. */
static bool hk_wait(struct hk *hk, unsigned ms)
{
    struct timespec until;
    bool go;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)(ms / 1000);
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&hk->mu);
    if (!hk->quit)
        pthread_cond_timedwait(&hk->cv, &hk->mu, &until);
    go = !hk->quit;
    pthread_mutex_unlock(&hk->mu);
    return go;
}

static void *hk_main(void *arg)
{
    struct hk *hk = arg;
    const struct cfg *cfg = hk->cfg;
    struct q *q = NULL;
    int64_t next_repair = 0;
    unsigned pause = HK_PROMOTE_MS;

    while (hk_wait(hk, pause)) {
        struct wk_err e;
        unsigned moved = 0;

        wk_err_clear(&e);
        if (!q && q_connect(&cfg->redis, cfg->prefix, 5000, &q, &e) != WK_OK) {
            /* the runners log the outage; this thread only backs off */
            pause =
                pause * 2 > HK_BACKOFF_MAX_MS ? HK_BACKOFF_MAX_MS : pause * 2;
            continue;
        }
        if (hb_mono_ms() >= next_repair) {
            /* stranded jobs (running, their entry gone) back or failed */
            unsigned requeued = 0, failed = 0;
            next_repair = hb_mono_ms() + cfg->lease_ms / 3;
            if (q_repair(q, cfg->lease_ms, cfg->max_attempts, &requeued,
                         &failed, &e) != WK_OK)
                WK_LOG(WK_LOG_WARN, "queue.repair_failed",
                       KV_STR("msg", e.msg));
        }
        if (e.code == WK_OK && q_promote_delayed(q, &moved, &e) == WK_OK) {
            if (moved)
                WK_LOG(WK_LOG_DEBUG, "queue.delayed_promoted",
                       KV_INT("count", moved));
        }
        if (e.code == WK_E_NET) {
            q_free(q);
            q = NULL;
            pause =
                pause * 2 > HK_BACKOFF_MAX_MS ? HK_BACKOFF_MAX_MS : pause * 2;
            continue;
        }
        if (e.code != WK_OK)
            WK_LOG(WK_LOG_WARN, "queue.promote_failed", KV_STR("msg", e.msg));
        pause = HK_PROMOTE_MS;
    }
    q_free(q);
    return NULL;
}

enum wk_code hk_start(struct hk *hk, const struct cfg *cfg,
                      volatile sig_atomic_t *stop, struct wk_err *err)
{
    memset(hk, 0, sizeof(*hk));
    pthread_mutex_init(&hk->mu, NULL);
    pthread_cond_init(&hk->cv, NULL);
    hk->cfg = cfg;
    hk->stop = stop;
    if (pthread_create(&hk->thread, NULL, hk_main, hk) != 0) {
        pthread_cond_destroy(&hk->cv);
        pthread_mutex_destroy(&hk->mu);
        return wk_err_set(err, WK_E_INTERNAL,
                          "cannot start the housekeeping thread");
    }
    return WK_OK;
}

void hk_stop(struct hk *hk)
{
    pthread_mutex_lock(&hk->mu);
    hk->quit = true;
    pthread_cond_signal(&hk->cv);
    pthread_mutex_unlock(&hk->mu);
    pthread_join(hk->thread, NULL);
    pthread_cond_destroy(&hk->cv);
    pthread_mutex_destroy(&hk->mu);
}
