/*
 * worker: the job runners of a worker process. The main runner claims one
 * job at a time (urgent lane first, then either), cfg->urgent_slots more
 * serve the urgent lane only, each on its own thread; every runner runs
 * its job against the configured store, records the outcome in the status
 * hash and acknowledges only then. Bad jobs fail cleanly and the loop goes
 * on; a lost Redis connection is re-established with backoff. Returns when
 * *stop is set (SIGTERM/SIGINT), after every runner's job has finished or
 * been handed back (the shutdown grace applies to each).
 */
#ifndef WK_WORKER_WORKER_H
#define WK_WORKER_WORKER_H

#include <signal.h>

#include "common/wk_err.h"
#include "worker/cfg.h"

enum wk_code worker_run(const struct cfg *cfg, volatile sig_atomic_t *stop,
                        struct wk_err *err);

#endif
