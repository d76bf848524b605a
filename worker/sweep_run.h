/*
 * sweep_run: the Redis side of "sila-archiver sweep" (docs/PROTOCOL.md,
 * "Sweep"). jobs/sweep decides; this module supplies what lives in Redis
 * and acts on the decisions:
 *
 *   <prefix>sweep:lock   one sweep at a time across all machines: a random
 *                        token with an expiry (SILA_LEASE), renewed while
 *                        the sweep runs, released by its owner only
 *   <prefix>activity     the optional activity index (sorted set, member
 *                        spaceId, score = unix seconds of the last write),
 *                        looked up in pipelined batches
 *   <prefix>sweep:cursor where the next sweep starts (worker/q_sweep.h): a
 *                        sweep continues after the last space the one
 *                        before examined, stops at its budget (time,
 *                        spaces) and saves it, fenced by the lock; at the
 *                        end of active/ it counts a pass and goes on from
 *                        the first space
 *   <prefix>lock:<id>, <prefix>dedup:<type>:<id>  spaces with a lock or a
 *                        pending job are kept
 *
 * Chosen spaces are enqueued with q_enqueue() (the CLI's path, with its
 * deduplication), at most max_jobs new jobs per sweep. Plan lines and the
 * summary (one JSON object per line) go to the caller's FILE; logs go to
 * stderr through wk_log.
 *
 * Everything blocks (store and Redis). Errors come back as enum wk_code
 * plus struct wk_err. Options are plain data, nothing to free.
 */
#ifndef WK_WORKER_SWEEP_RUN_H
#define WK_WORKER_SWEEP_RUN_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/wk_err.h"
#include "jobs/sweep.h"
#include "worker/cfg.h"

struct q;
struct store;

/* Name of the sweep lock below the key prefix. */
#define SWEEP_LOCK_NAME "sweep:lock"

/* Default time budget of one sweep: under the CronJob's
 * activeDeadlineSeconds (3000 s, deploy/k8s/cronjob-sweep.yaml), with
 * room for start-up and the last space. */
#define SWEEP_TIME_BUDGET_MS (40ULL * 60 * 1000)

struct sweep_opts {
    struct sweep_policy policy;
    uint64_t max_jobs;       /* new jobs per sweep, >= 1 (1000) */
    uint64_t every_ms;       /* 0: one sweep; else repeat this long after */
    uint64_t time_budget_ms; /* stop before a space after this; 0: none */
    uint64_t max_spaces;     /* stop after this many spaces; 0: none */
    bool dry_run;    /* print the plan, enqueue nothing, take no lock, and
                        leave the cursor as it is */
    bool from_start; /* ignore the saved cursor: start at the first space */
};

/* Defaults: sweep_policy_default(), max_jobs 1000, once, a time budget of
 * SWEEP_TIME_BUDGET_MS, no space limit, not a dry run, from the cursor. */
void sweep_opts_default(struct sweep_opts *o);

/* Defaults, then SILA_SWEEP_IDLE, SILA_SWEEP_IDLE_EARLY, SILA_SWEEP_LARGE,
 * SILA_SWEEP_MANY_FILES, SILA_SWEEP_RECENT, SILA_SWEEP_MAX_JOBS,
 * SILA_SWEEP_TIME_BUDGET, SILA_SWEEP_MAX_SPACES. err names the variable
 * and the bad value. */
enum wk_code sweep_opts_from_env(struct sweep_opts *o, struct wk_err *err);

/* One command-line option with a value: --idle, --idle-early, --large,
 * --many-files, --recent, --max-jobs, --every, --time-budget,
 * --max-spaces. WK_E_NOTFOUND for any other flag, WK_E_INVAL (naming the
 * flag) for a bad value. */
enum wk_code sweep_opts_set(struct sweep_opts *o, const char *flag,
                            const char *value, struct wk_err *err);

/* What one sweep did (the summary line, as data). */
struct sweep_result {
    struct sweep_totals totals;
    uint64_t index_members; /* ZCARD of the activity index (0: absent) */
    uint64_t enqueued;      /* new jobs */
    uint64_t existing;      /* chosen, but q_enqueue found a pending job */
    uint64_t deferred;      /* chosen beyond max_jobs */
    bool locked_out;        /* another sweep held the lock: did nothing */
    bool interrupted;       /* stopped by *stop (SIGTERM) */
    int64_t duration_ms;
    /* the cursor: where this sweep started and where the next one starts
     * (totals.cursor), the passes completed after it, and whether it was
     * saved (never in a dry run, nor when the lock was lost meanwhile) */
    char cursor_before[SWEEP_CURSOR_MAX + 1];
    uint64_t passes;
    bool cursor_saved;
    const char *stopped_by; /* "time-budget", "max-spaces", "signal", or
                               NULL (the scan ended) */
};

/* One sweep with an open store and queue: take the sweep lock (unless a
 * dry run), read the cursor, scan from it to the budget (one full circle
 * at most), enqueue, print one plan line per space (dry run) or per
 * chosen space, save the cursor (unless a dry run), then the summary line,
 * release the lock. Another sweep holding the lock: res->locked_out,
 * WK_OK, nothing done. *stop set: the scan ends early (res->interrupted),
 * the cursor is saved, WK_OK. Redis failures and a lock lost during the
 * scan are errors (the cursor is not saved). */
enum wk_code sweep_once(const struct cfg *cfg, const struct sweep_opts *o,
                        struct store *st, struct q *q, FILE *out,
                        volatile sig_atomic_t *stop, struct sweep_result *res,
                        struct wk_err *err);

/* The command: opens SILA_STORE and Redis, runs one sweep, or with
 * every_ms one after another until *stop (a failed round is logged and
 * the next one tries again, reconnecting). One sweep that could not
 * examine some spaces (reason "error") fails with WK_E_IO after its
 * summary. */
enum wk_code sweep_run(const struct cfg *cfg, const struct sweep_opts *o,
                       volatile sig_atomic_t *stop, FILE *out,
                       struct wk_err *err);

#endif
