/*
 * prog_redis: the progress sink of a running job: updates the status hash
 * (progress, bytesDone, bytesTotal, filesDone, filesTotal, phase) and
 * PUBLISHes one JSON event per update on the job's channel. Throttling is
 * done by jobs/progress.c. A restore's milestones: READY sets readyAt and
 * timeToReadyMs in the status hash, publishes {"event":"ready"} on the
 * space's channel and adds the sample to <prefix>ttr:<minute>; COMPLETE
 * sets timeToCompleteMs and adds to <prefix>ttc:<minute> (q_finish
 * publishes "complete"). Wanted paths come off <prefix>want:<spaceId>
 * (LPOP with a count, one round trip) and are answered with
 * {"event":"served"} on the space's channel. Redis errors are logged, never
 * fail the job. Borrows the queue connection and job id for its lifetime.
 */
#ifndef WK_WORKER_PROG_REDIS_H
#define WK_WORKER_PROG_REDIS_H

#include <stdbool.h>
#include <stdint.h>

#include "jobs/progress.h"

struct q;

struct prog_redis {
    struct prog_sink base;
    struct q *q;                       /* borrowed */
    const char *job_id;                /* borrowed */
    const char *type;                  /* borrowed */
    const char *space_id;              /* borrowed */
    bool checkpointed;                 /* a checkpoint was recorded */
    uint64_t bytes_total, files_total; /* of the space, as last reported */
    bool wants_failed; /* a want LPOP failed once (logged once) */
};

/* Clear the job's checkpoint (the "upload" field). */
void prog_checkpoint_clear(struct prog_redis *pr);

/* Milestone times are the job's own (from job_ctx.requested_ms, which the
 * worker sets from the status hash's createdAt). */
void prog_redis_init(struct prog_redis *pr, struct q *q, const char *job_id,
                     const char *type, const char *space_id);

#endif
