/*
 * prog_redis: the progress sink of a running job: updates the status hash
 * (progress, bytesDone, bytesTotal, filesDone, filesTotal, phase) and
 * PUBLISHes one JSON event per update on the job's channel. Throttling is
 * done by jobs/progress.c. Redis errors are logged, never fail the job.
 * Borrows the queue connection and job id for its lifetime.
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
};

/* Clear the job's checkpoint (the "upload" field). */
void prog_checkpoint_clear(struct prog_redis *pr);

void prog_redis_init(struct prog_redis *pr, struct q *q, const char *job_id,
                     const char *type, const char *space_id);

#endif
