/*
 * worker_hb: the heartbeat and the fence of a running job (internal to
 * worker.c). See struct hb.
 */
#ifndef WK_WORKER_WORKER_HB_H
#define WK_WORKER_WORKER_HB_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "jobs/job.h"
#include "worker/cfg.h"
#include "worker/q.h"

#define HB_TOKEN_MAX 400 /* a lock token, with room */

/*
 * The heartbeat: a thread with its own Redis connection that, while a job
 * runs, renews the job's lease (the stream entry's idle time) and the
 * space lock every lease/3, whatever the job thread is busy with (a long
 * compression never looks like a dead worker). It also turns SIGTERM into
 * a cancel of the job once the shutdown grace period has passed, and
 * cancels a job whose lease was taken over by another worker, or that it
 * could not renew for a whole lease, or (a background job) that an urgent
 * job of its space asked to yield (preemption).
 *
 * Fencing (fence_check, the job's ctx.fence): before a destructive step
 * the job thread asks whether it still owns the job, on a connection of
 * its own (hb.fq, used by the job thread only). last_ok_ms is the
 * monotonic time of the last proof of ownership.
 */
struct hb {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool quit;
    bool active;
    char stream[128], entry_id[64], job_id[JOB_ID_MAX + 1];
    char space_id[JOB_SPACE_ID_MAX + 1], token[HB_TOKEN_MAX];
    bool lost;                     /* another worker owns the entry now */
    int64_t last_ok_ms;            /* last proof of ownership (monotonic) */
    bool lock_only;                /* Redis lost its data and the lock was
                                      taken again: the lock alone proves it */
    char fenced_step[64];          /* the step a fence refused, or "" */
    struct q *fq;                  /* owned: the fence's connection (job
                                      thread only) */
    volatile sig_atomic_t cancel;  /* the running job's cancel flag */
    bool yieldable;                /* a background job: yields when an
                                      urgent job of its space asks */
    bool yielded;                  /* it was asked: cancelled for that */
    char yield_by[JOB_ID_MAX + 1]; /* the urgent job that asked */
    const struct cfg *cfg;         /* borrowed */
    const char *consumer;          /* borrowed */
    volatile sig_atomic_t *stop;   /* borrowed: the signal flag */
    pthread_t thread;              /* the heartbeat thread */
};

/* Monotonic clock in ms. */
int64_t hb_mono_ms(void);

/* Start the heartbeat thread of hb (zeroed here) for consumer. */
enum wk_code hb_start(struct hb *hb, const struct cfg *cfg,
                      const char *consumer, volatile sig_atomic_t *stop,
                      struct wk_err *err);
/* Stop it and free what it holds. */
void hb_stop(struct hb *hb);

/* A run of m begins (its space lock held with token; claimed_ms: when the
 * entry was claimed, monotonic): renew its lease from now on. yieldable:
 * also look for requests to yield (q_yield_take) every HB_YIELD_MS and
 * cancel the job when one comes (yielded, yield_by). */
#define HB_YIELD_MS 400
void hb_begin(struct hb *hb, const struct q_msg *m, const char *space_id,
              const char *token, int64_t claimed_ms, bool yieldable);
/* The run ended: stop renewing. Returns whether its lease was lost. */
bool hb_end(struct hb *hb);

/* The job's ownership check (job_ctx.fence; ud: the struct hb), on the job
 * thread. */
enum wk_code hb_fence_check(void *ud, const char *step, struct wk_err *err);

/* job_ctx.mf_record / mf_check (ud: the struct hb), on the job thread: the
 * fenced manifest record of an S3 server without conditional PUT, under
 * the run's space lock token (q_mf_record, q_mf_check). */
enum wk_code hb_mf_record(void *ud, const char *space_id, bool has_cur,
                          const char *cur, size_t cur_len, const char *body,
                          size_t len, struct wk_buf *newest,
                          struct wk_err *err);
enum wk_code hb_mf_check(void *ud, const char *space_id, const char *body,
                         size_t len, struct wk_buf *newest, struct wk_err *err);

#endif
