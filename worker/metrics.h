/*
 * metrics: what a worker has done, in Prometheus text format on
 * SILA_METRICS_ADDR (GET /metrics), whether it can work (GET /healthz:
 * 200 when Redis answers a PING, 503 otherwise; for readiness) and whether
 * it runs at all (GET /livez, for liveness: a Redis outage is not cured by
 * restarting workers), served by libmicrohttpd
 * from its own thread with its own Redis connection. The counters are
 * process-wide; metrics_job_*() may be called from any thread.
 */
#ifndef WK_WORKER_METRICS_H
#define WK_WORKER_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "common/wk_buf.h"
#include "common/wk_err.h"
#include "worker/cfg.h"

struct metrics;

/* Listen on cfg->metrics_addr ("host:port"; IPv4 or a name that resolves
 * to one). Stop with metrics_stop(). */
enum wk_code metrics_start(const struct cfg *cfg, struct metrics **out,
                           struct wk_err *err);
void metrics_stop(struct metrics *m);

/* type: "archive", "unarchive", "migrate" (others are not counted). */
void metrics_job_started(const char *type);
void metrics_job_retried(const char *type);
void metrics_job_finished(const char *type, bool ok, double seconds,
                          uint64_t bytes, uint64_t files);

/* The exposition text (what /metrics serves); depths from Redis are
 * included when q_depths can read them (q may be NULL). Exposed for tests. */
struct q;
enum wk_code metrics_render(struct q *q, struct wk_buf *out,
                            struct wk_err *err);

#endif
