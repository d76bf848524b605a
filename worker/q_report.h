/*
 * q_report: read-only views of the queue (worker/q_report.c): depths, the
 * running and `jobs` reports, a job's status as JSON, the audit trail, the
 * throughput counters and the time-to-ready samples behind `stats`, and the
 * activity index the sweep reads. None of them changes anything in Redis.
 */
#ifndef WK_WORKER_Q_REPORT_H
#define WK_WORKER_Q_REPORT_H

#include "worker/q.h"

/* How much work there is, from Redis alone. -1: unknown. */
struct q_depths {
    int64_t waiting[2]; /* entries not yet delivered (normal, urgent lane) */
    int64_t running[2]; /* delivered, not yet acknowledged */
    int64_t delayed;    /* waiting for a retry or a lock (jobs:delayed) */
    int64_t dead;       /* dead letters (jobs:dead) */
};
enum wk_code q_depths(struct q *q, struct q_depths *out, struct wk_err *err);

/* One JSON line per running job: id, state, type, spaceId, phase,
 * progress, worker, startedAt. */
enum wk_code q_running_report(struct q *q, struct wk_buf *out,
                              struct wk_err *err);

/* The audit trail and the throughput counters (q_finish writes both):
 * the last n entries of <prefix>audit, one JSON object per line, newest
 * last; and the jobs and bytes finished in each of the last `minutes`
 * minutes, summed. */
enum wk_code q_audit_tail(struct q *q, unsigned n, struct wk_buf *out,
                          struct wk_err *err);
struct q_throughput {
    uint64_t succeeded, failed, bytes, files;
};
enum wk_code q_throughput(struct q *q, unsigned minutes,
                          struct q_throughput *out, struct wk_err *err);

/* The S3 requests of the jobs that finished (q_finish's stats fields
 * jobs:<type>, req:<type>:<op>, retries:<type>, bytesIn:<type>,
 * bytesOut:<type>), by job type: over the last `minutes` minutes
 * (q_requests_window) or over one UTC day, days_ago 0 = today
 * (q_requests_day, from <prefix>stats:day:<YYYYMMDD>). Types and
 * operations past the caps are left out. */
#define Q_REQ_TYPES 8
#define Q_REQ_OPS   32
struct q_req_type {
    char type[24];
    uint64_t jobs, requests, retries, bytes_in, bytes_out;
    size_t n_ops;
    struct {
        char op[40];
        uint64_t n;
    } ops[Q_REQ_OPS];
};
struct q_requests {
    size_t n_types;
    struct q_req_type t[Q_REQ_TYPES];
};
enum wk_code q_requests_window(struct q *q, unsigned minutes,
                               struct q_requests *out, struct wk_err *err);
enum wk_code q_requests_day(struct q *q, unsigned days_ago,
                            struct q_requests *out, struct wk_err *err);

/* Time-to-ready (ready false: time-to-complete) of the restores of the
 * last `minutes` minutes, from the samples of <prefix>ttr:<minute>
 * (ttc:) the progress sink adds: how many, and the 50th and 95th
 * percentiles (nearest rank; 0 without samples). */
struct q_latency {
    uint64_t count;
    int64_t p50_ms, p95_ms;
};
enum wk_code q_latency(struct q *q, bool ready, unsigned minutes,
                       struct q_latency *out, struct wk_err *err);

/* One line per job that is not succeeded (queued, running, retrying,
 * failed), then the dead letters, as JSON lines into out. */
enum wk_code q_jobs_report(struct q *q, struct wk_buf *out, struct wk_err *err);

/* The status hash as a JSON object text (numbers as numbers, result as
 * JSON); WK_E_NOTFOUND for an unknown id. */
enum wk_code q_status_json(struct q *q, const char *job_id, struct wk_buf *out,
                           struct wk_err *err);

/* Number of members of the activity index <prefix>activity (0: absent). */
enum wk_code q_activity_count(struct q *q, uint64_t *count, struct wk_err *err);

/* Scores of n spaces in the activity index, pipelined (one round trip):
 * last[i] = the score as unix seconds and present[i] = true, or present[i]
 * = false for a space that is not a member (or has a score that is not a
 * finite number of seconds). */
enum wk_code q_activity_scores(struct q *q, const char *const *space_ids,
                               size_t n, int64_t *last, bool *present,
                               struct wk_err *err);

#endif
