/*
 * prog: progress of a running job, throttled, and the sink interface the
 * worker implements (Redis status hash + PUBLISH) so that jobs/ never sees
 * Redis. prog_update() forwards at most one event per PROG_MIN_INTERVAL_MS
 * unless forced; sinks must not block for long and cannot fail the job.
 */
#ifndef WK_JOBS_PROGRESS_H
#define WK_JOBS_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROG_MIN_INTERVAL_MS 250

struct prog_state {
    const char *phase; /* "listing", "archiving", "verifying", "deleting" */
    int progress;      /* 0..100 */
    uint64_t bytes_done, bytes_total;
    uint64_t files_done, files_total;
};

/* Milestones of a restore (unarchive): PROG_READY once sila.md,
 * space-v1/space.json, space-v1/secrets and every space-v1/ops/ object are
 * in place (the space is usable; blobs may still be missing), PROG_COMPLETE
 * once every object is. A successful restore reports PROG_READY before
 * PROG_COMPLETE, each once per run. */
enum prog_milestone { PROG_READY = 0, PROG_COMPLETE = 1 };

/* Longest path a client may ask to have restored ahead of order. */
#define PROG_WANT_PATH_MAX 1024
#define PROG_WANT_BATCH    16

struct prog_sink;
struct prog_sink_ops {
    void (*update)(struct prog_sink *s, const struct prog_state *st);
    /* Record json (an object, or "" to clear) with the job, for a run that
     * takes the job over after a crash (job_ctx.resume). May be NULL. */
    void (*checkpoint)(struct prog_sink *s, const char *json);
    /* A milestone was reached; ms: time from the request (the job's
     * enqueue, job_ctx.requested_ms) to now. May be NULL. */
    void (*milestone)(struct prog_sink *s, enum prog_milestone m, int64_t ms);
    /* Paths (relative to the space, e.g. "space-v1/files/static/sha256/
     * ab/cd…") that clients asked to have restored ahead of the archive's
     * order, taken off the request queue: up to max into out, returns how
     * many. One short round trip; the restore calls it every few tens of
     * milliseconds. May be NULL (nothing is ever asked). */
    size_t (*wants)(struct prog_sink *s, char (*out)[PROG_WANT_PATH_MAX + 1],
                    size_t max);
    /* A wanted path was answered: restored (or already there), found
     * true; not in the archive, found false. May be NULL. */
    void (*served)(struct prog_sink *s, const char *path, bool found);
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
/* Forward a milestone / take wanted paths / answer one, when the sink does
 * (prog_wants returns 0 without a sink or without the op). */
void prog_milestone(struct prog *p, enum prog_milestone m, int64_t ms);
size_t prog_wants(struct prog *p, char (*out)[PROG_WANT_PATH_MAX + 1],
                  size_t max);
void prog_served(struct prog *p, const char *path, bool found);

#endif
