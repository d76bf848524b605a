/*
 * prog: progress of a running job, throttled, and the sink interface the
 * worker implements (Redis status hash + PUBLISH) so that jobs/ never sees
 * Redis. prog_update() forwards at most one event per PROG_MIN_INTERVAL_MS
 * unless forced; sinks must not block for long and cannot fail the job.
 */
#ifndef WK_JOBS_PROGRESS_H
#define WK_JOBS_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

#define PROG_MIN_INTERVAL_MS 250

struct prog_state {
    const char *phase; /* "listing", "archiving", "verifying", "deleting" */
    int progress;      /* 0..100 */
    uint64_t bytes_done, bytes_total;
    uint64_t files_done, files_total;
};

struct prog_sink;
struct prog_sink_ops {
    void (*update)(struct prog_sink *s, const struct prog_state *st);
    /* Record json (an object, or "" to clear) with the job, for a run that
     * takes the job over after a crash (job_ctx.resume). May be NULL. */
    void (*checkpoint)(struct prog_sink *s, const char *json);
};
struct prog_sink {
    const struct prog_sink_ops *ops;
};

struct prog {
    struct prog_sink *sink; /* borrowed; may be NULL */
    struct prog_state st;
    int64_t last_ms;
};

void prog_init(struct prog *p, struct prog_sink *sink);
/* Recompute progress from the counters and emit when due (or forced). */
void prog_update(struct prog *p, bool force);
/* Forward a checkpoint to the sink, if it keeps them. */
void prog_checkpoint(struct prog *p, const char *json);

#endif
