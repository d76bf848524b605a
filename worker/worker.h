/*
 * worker: the job loop. Claims one job at a time from the Redis stream,
 * runs it against the configured store, records the outcome in the status
 * hash and acknowledges only then. Bad jobs fail cleanly and the loop goes
 * on; a lost Redis connection is re-established with backoff. Returns when
 * *stop is set (SIGTERM/SIGINT), after the current job has finished.
 */
#ifndef WK_WORKER_WORKER_H
#define WK_WORKER_WORKER_H

#include <signal.h>

#include "common/wk_err.h"
#include "worker/cfg.h"

enum wk_code worker_run(const struct cfg *cfg, volatile sig_atomic_t *stop,
                        struct wk_err *err);

#endif
