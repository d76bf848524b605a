/*
 * worker_hk: the housekeeping thread of a worker process (internal to
 * worker.c): with its own Redis connection it promotes due delayed jobs
 * (retries, lock-waits) every HK_PROMOTE_MS and repairs stranded jobs every
 * lease/3, whatever the job runners are busy with.
 */
#ifndef WK_WORKER_WORKER_HK_H
#define WK_WORKER_WORKER_HK_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>

#include "common/wk_err.h"
#include "worker/cfg.h"

/* Delayed jobs become claimable at most this long after they are due. */
#define HK_PROMOTE_MS 250

struct hk {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool quit;
    const struct cfg *cfg;       /* borrowed */
    volatile sig_atomic_t *stop; /* borrowed: the signal flag */
    pthread_t thread;
};

/* Start the thread of hk (zeroed here). */
enum wk_code hk_start(struct hk *hk, const struct cfg *cfg,
                      volatile sig_atomic_t *stop, struct wk_err *err);
/* Stop it (at once: it never waits on a job). */
void hk_stop(struct hk *hk);

#endif
