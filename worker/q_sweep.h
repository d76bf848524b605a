/*
 * q_sweep: the sweep's cursor in Redis (worker/q_sweep.c), the hash
 * <prefix>sweep:cursor (docs/PROTOCOL.md, "Sweep cursor"): where the next
 * sweep starts, and the passes over active/ so far. It is written only by
 * the holder of the sweep lock, atomically with the check that the lock
 * still holds its token and that nobody moved the cursor since it was
 * read (a Lua script), so that a sweep that lost its lock, or two sweeps
 * at once, never corrupt it.
 *
 * Calls block on Redis. Errors come back as enum wk_code plus struct
 * wk_err; values that cannot be parsed read as 0 or "" (the cursor is a
 * hint: the worst a bad one does is start a pass again).
 */
#ifndef WK_WORKER_Q_SWEEP_H
#define WK_WORKER_Q_SWEEP_H

#include <stdbool.h>
#include <stdint.h>

#include "jobs/sweep.h"
#include "worker/q.h"

struct q_sweep_cursor {
    char after[SWEEP_CURSOR_MAX + 1]; /* folder key below active/ of the
                                         last space examined; "": start at
                                         the first */
    uint64_t passes;                  /* passes completed */
    int64_t pass_started_at;   /* unix s: the current pass began (0: unknown) */
    uint64_t pass_spaces;      /* spaces examined in the current pass */
    int64_t last_pass_at;      /* unix s: the last pass completed (0: never) */
    uint64_t last_pass_spaces; /* spaces the last completed pass examined */
    uint64_t runs;             /* sweeps that saved the cursor */
};

/* Read <prefix>sweep:cursor into c (all zero and "" when absent). */
enum wk_code q_sweep_cursor_load(struct q *q, struct q_sweep_cursor *c,
                                 struct wk_err *err);

/* Write c at time now (unix s) if the named lock (SWEEP_LOCK_NAME) still
 * holds token and the stored "after" is still expect_after (as loaded at
 * the start of the sweep). *saved false when either check failed: then
 * nothing was written. */
enum wk_code q_sweep_cursor_save(struct q *q, const char *lock_name,
                                 const char *token, const char *expect_after,
                                 const struct q_sweep_cursor *c, int64_t now,
                                 bool *saved, struct wk_err *err);

#endif
