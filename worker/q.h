/*
 * q: the Redis side of the job protocol (docs/PROTOCOL.md), on hiredis.
 *
 *   <prefix>jobs         stream; entries {id: <jobId>, job: <job JSON>},
 *                        consumer group "sila-workers"
 *   <prefix>jobs:urgent  the urgent lane, same format, always served first
 *   <prefix>dedup:<type>:<spaceId>  id of the pending or running job of
 *                        that kind for that space (enqueue deduplication)
 *   <prefix>space:<id>   channel: {"event":"ready"|"served"|"complete"|
 *                        "failed",...} as an unarchive of the space goes
 *   <prefix>want:<id>    list of paths clients want restored ahead of order
 *   <prefix>jobs:delayed sorted set of jobs waiting for a retry or a lock
 *                        (score: due time in ms; member: {id, lane, job})
 *   <prefix>jobs:dead    stream of jobs that ran out of attempts
 *   <prefix>jobs:running sorted set of jobs whose run began (member: job
 *                        id; score: ms when its queue entry was last seen
 *                        pending), for q_repair()
 *   <prefix>lock:<spaceId>  per-space lock: a random token, with an expiry
 *   <prefix>job:<id>     status hash (state, type, spaceId, progress, ...)
 *   <prefix>job:<id>     pub/sub channel of progress and final events
 *
 * A struct q owns one blocking connection and is not thread-safe: each
 * thread of a worker (every job runner, its heartbeat and its fence, the
 * housekeeping, the metrics server) has its own. Every
 * call blocks on the network (bounded by the connect/read timeouts). A lost
 * connection is reported as WK_E_NET; q_reconnect() re-establishes it.
 * Only worker/ includes hiredis.
 *
 * Where it lives: q_redis.c (connection, commands, subscriber), q_keys.c
 * (every key name), q_lua.c (every Lua script), q_claim.c (reading,
 * reclaiming, renewing, acknowledging entries), q_job.c (enqueue, begin,
 * the status hash, retry), q_finish.c (finish, requeue), q_repair.c
 * (promote delayed jobs, repair stranded ones), q_yield.c (preemption
 * requests). Locks and fencing are in
 * q_lock.h, the read-only reports in q_report.h.
 */
#ifndef WK_WORKER_Q_H
#define WK_WORKER_Q_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/wk_buf.h"
#include "common/wk_err.h"
#include "jobs/job.h"
#include "worker/cfg.h"

#define Q_GROUP "sila-workers"

struct q;

/* A claimed queue entry; release with q_msg_release(). */
struct q_msg {
    char stream[128];    /* the lane it came from */
    char entry_id[64];   /* stream entry id */
    char job_id[129];    /* from the entry's "id" field (or entry id) */
    bool job_id_ok;      /* the "id" field was present and valid */
    unsigned deliveries; /* times the entry was delivered, this one
                            included (XPENDING's count; 1 for a new read) */
    struct wk_buf json;  /* the entry's "job" field */
};

void q_msg_init(struct q_msg *m);
void q_msg_release(struct q_msg *m);

/* Connect (AUTH and SELECT as the config says). Free with q_free(). */
enum wk_code q_connect(const struct cfg_redis *r, const char *prefix,
                       unsigned read_timeout_ms, struct q **out,
                       struct wk_err *err);
enum wk_code q_reconnect(struct q *q, struct wk_err *err);
void q_free(struct q *q);

/* A second connection like q's, subscribed to the job's channel
 * <prefix>job:<id>: it serves only q_sub_wait(). Free with q_free(). */
enum wk_code q_subscribe_job(const struct q *q, const char *job_id,
                             struct q **out, struct wk_err *err);
/* Wait up to timeout_ms for a message on a q_subscribe_job() connection;
 * *got says whether one came (a signal ends the wait early, WK_OK). A lost
 * connection is WK_E_NET and stays lost: subscribe again. */
enum wk_code q_sub_wait(struct q *sub, unsigned timeout_ms, bool *got,
                        struct wk_err *err);

/* PING. */
enum wk_code q_ping(struct q *q, struct wk_err *err);

/* Create the stream and group if missing (idempotent). */
enum wk_code q_ensure_group(struct q *q, struct wk_err *err);

struct q_spec {
    const char *type; /* "archive", "unarchive" */
    const char *space_id;
    bool urgent;              /* the urgent lane */
    const char *archive_key;  /* unarchive of a specific archive, or NULL */
    const char *source;       /* migrate: the source URL, or NULL */
    const char *target;       /* migrate: "active" / "archived", or NULL */
    bool overwrite;           /* migrate: replace an existing space */
    const char *requested_by; /* who asks ("requestedBy": "cli:user@host",
                                 "sweep"), for the audit trail, or NULL */
};

/* New job, atomically (one Lua script): when a job of the same type for
 * the same space is queued or running, its id is returned (*created =
 * false; an urgent request also puts a queued job on the urgent lane);
 * otherwise a random id, the status hash "queued", the dedup key and the
 * stream entry. */
enum wk_code q_enqueue(struct q *q, const struct q_spec *spec,
                       char id_out[JOB_ID_MAX + 1], bool *created,
                       struct wk_err *err);

/* One entry for this consumer: the urgent lane first, then either lane,
 * waiting up to block_ms. When one read returns an entry of each lane, the
 * normal one is given back at once: it stays pending but with an idle time
 * of a day and a delivery count of 0, so the next q_reclaim() of any worker
 * (this one included) takes it. Nothing is held aside while a job runs. */
enum wk_code q_claim(struct q *q, const char *consumer, unsigned block_ms,
                     struct q_msg *out, bool *got, struct wk_err *err);

/* The urgent lane alone (an urgent runner): one entry for this consumer,
 * waiting up to block_ms. */
enum wk_code q_claim_urgent(struct q *q, const char *consumer,
                            unsigned block_ms, struct q_msg *out, bool *got,
                            struct wk_err *err);

/* The job's state into buf ("" when the hash is gone), and whether the run
 * it records (fields lane and entry, set by q_begin()) is this entry's:
 * *recorded false when the hash names no entry (a run by an older worker),
 * else *ours says whether it is m. */
enum wk_code q_delivery_state(struct q *q, const struct q_msg *m, char *buf,
                              size_t len, bool *recorded, bool *ours,
                              struct wk_err *err);

/* Begin a run of m, atomically (one script): unless the job has already
 * started max_attempts runs (*began = false; *attempts = that count), the
 * status hash takes attempts + 1, state "running", startedAt, worker,
 * lane and entry (the delivery that runs it), and the job joins
 * <prefix>jobs:running. q_finish() and q_requeue() take it out again. */
enum wk_code q_begin(struct q *q, const struct q_msg *m, const char *consumer,
                     unsigned max_attempts, bool *began, unsigned *attempts,
                     struct wk_err *err);

/* The job's state field into buf ("" when the hash is gone). */
enum wk_code q_state(struct q *q, const char *job_id, char *buf, size_t len,
                     struct wk_err *err);
/* Any field of the status hash into buf ("" when missing). */
enum wk_code q_field(struct q *q, const char *job_id, const char *field,
                     char *buf, size_t len, struct wk_err *err);

/* Acknowledge an entry without recording anything (a duplicate delivery
 * of a job that another lane already ran). */
enum wk_code q_ack(struct q *q, const struct q_msg *m, struct wk_err *err);

/* Status hash updates. fields: NULL-terminated name/value pairs. */
enum wk_code q_hset(struct q *q, const char *job_id, const char *const *fields,
                    struct wk_err *err);

/* PUBLISH a JSON text on the job's channel. */
enum wk_code q_publish(struct q *q, const char *job_id, const char *json,
                       struct wk_err *err);

/* Take over an entry whose worker stopped renewing it for min_idle_ms
 * (XAUTOCLAIM), urgent lane first. */
enum wk_code q_reclaim(struct q *q, const char *consumer, unsigned min_idle_ms,
                       struct q_msg *out, bool *got, struct wk_err *err);

/* q_reclaim of the urgent lane alone (an urgent runner). */
enum wk_code q_reclaim_urgent(struct q *q, const char *consumer,
                              unsigned min_idle_ms, struct q_msg *out,
                              bool *got, struct wk_err *err);

/* Renew the lease on an entry we hold (XCLAIM ... JUSTID resets its idle
 * time). *lost = true when the entry is no longer ours. */
enum wk_code q_touch(struct q *q, const struct q_msg *m, const char *consumer,
                     bool *lost, struct wk_err *err);

/* Put the job back for later (retry, lock busy, shutdown) and acknowledge
 * this entry, atomically: the status hash is given fields (NULL-terminated
 * name/value pairs), the job goes into the delayed set due in delay_ms. */
enum wk_code q_requeue(struct q *q, const struct q_msg *m, uint64_t delay_ms,
                       const char *const *fields, struct wk_err *err);

/* Repair stranded jobs, at most Q_REPAIR_BATCH per call, atomically (one
 * script; any number of workers may call it at once). A job of
 * <prefix>jobs:running whose state is "running" but whose queue entry is
 * not pending in its lane any more (acknowledged, trimmed, its consumer
 * deleted, a Redis restored from an old copy) is marked (entryLostAt);
 * when it is still so lease_ms later, it is put back on its lane (state
 * "queued", same id and spec; its dedup key keeps naming it) if it has
 * started fewer than max_attempts runs and has a spec, else failed for good
 * with a dead letter, its dedup key released. A job is looked at once per
 * lease_ms at most. *requeued and *failed count what this call did. */
#define Q_REPAIR_BATCH 16
enum wk_code q_repair(struct q *q, unsigned lease_ms, unsigned max_attempts,
                      unsigned *requeued, unsigned *failed, struct wk_err *err);

/* Move due delayed jobs to their lanes; *moved is set to the count. */
enum wk_code q_promote_delayed(struct q *q, unsigned *moved,
                               struct wk_err *err);

/* What a finished job did, for the audit trail and the throughput. */
struct q_done {
    const char *worker;    /* consumer name */
    uint64_t bytes, files; /* of the space, processed */
    int64_t duration_ms;
    /* the run's S3 requests (its stores', a migrate's source included) and
     * their estimated cost (worker/acct.h); NULL: none */
    const struct store_requests *requests;
    double cost_usd;
};

/* Record the outcome (status hash + final event), append it to the audit
 * trail <prefix>audit (a stream capped near Q_AUDIT_MAX entries: who,
 * what, when, result) and the throughput hash of this minute, and only
 * then XACK; all in one transaction. */
#define Q_AUDIT_MAX 100000
enum wk_code q_finish(struct q *q, const struct q_msg *m, const char *type,
                      const char *space_id, bool ok, const char *error,
                      const char *result_json, bool dead,
                      const struct q_done *done, struct wk_err *err);

/* Re-queue a failed job by id (its spec is in the status hash): it leaves
 * the dead-letter stream and starts again with attempts = 0. */
enum wk_code q_retry(struct q *q, const char *job_id, struct wk_err *err);

/* Preemption (q_yield.c). An urgent job by finds space_id locked: when
 * the holder is a background job (normal lane, archive or migrate,
 * running), ask it to yield (its status hash's yieldRequested field):
 * *asked, and its id into holder. */
enum wk_code q_ask_yield(struct q *q, const char *space_id, const char *by,
                         char holder[JOB_ID_MAX + 1], bool *asked,
                         struct wk_err *err);
/* The holder's side: take a request to yield made for job_id (it is
 * removed); *got when there was one younger than max_age_ms, by whom into
 * by. */
enum wk_code q_yield_take(struct q *q, const char *job_id, unsigned max_age_ms,
                          char by[JOB_ID_MAX + 1], bool *got,
                          struct wk_err *err);

/* Current time as RFC 3339 with milliseconds ("...T12:00:00.123Z"). */
void q_now_rfc3339(char *buf, size_t len);

#endif
