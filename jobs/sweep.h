/*
 * sweep: which active spaces to archive (docs/PROTOCOL.md, "Sweep").
 *
 * Two parts, neither of which sees Redis (STYLE 2.2):
 *
 * - the policy, pure functions of a space's signals (idle time, bytes,
 *   files, and the gates "locked", "job pending", "manifest archived"):
 *   sweep_decide() and sweep_needs_listing();
 * - the store scan, sweep_scan(): it walks active/ with the delimiter "/"
 *   (paginated by the backend), one space at a time in key order, asks the
 *   caller's hooks for what lives in Redis (activity index scores, locks,
 *   pending jobs) and hands every decided space to a report hook. It holds
 *   at most SWEEP_BATCH space ids at once, whatever the number of spaces.
 *   sweep_scan_range() starts after a cursor (a folder name, kept by the
 *   caller between runs), stops cleanly at a budget and says where the
 *   next run starts; at the end of active/ it wraps to the first folder.
 *   Signals come from listings only: no object body is ever read (the
 *   manifest metadata/<spaceId>.json is read for spaces about to be
 *   chosen, to skip those already archived).
 *
 * Blocking: sweep_scan() blocks on the store and on the hooks. Errors come
 * back as enum wk_code plus struct wk_err. A failure confined to one space
 * (its listing or its manifest) does not stop the scan: the space is
 * reported as "keep" with reason "error". Hook failures, a failed listing
 * of active/ itself and cancellation (tick) stop it.
 */
#ifndef WK_JOBS_SWEEP_H
#define WK_JOBS_SWEEP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/wk_err.h"
#include "jobs/job.h"

struct store;

/* Space ids looked up in the activity index per hook call. */
#define SWEEP_BATCH 256

/* Longest cursor: a folder's key below active/, "<name>/" (an S3 key has
 * at most 1,024 bytes, a file name 255). */
#define SWEEP_CURSOR_MAX 1024

/* Entries per LIST request counted by the scan: S3's ListObjectsV2 page. */
#define SWEEP_LIST_PAGE 1000

/* Thresholds, in seconds, bytes and objects (sweep_policy_default()). */
struct sweep_policy {
    int64_t idle_s;       /* archive any space idle this long (7 d) */
    int64_t early_idle_s; /* archive a large or many-file space idle this
                             long (1 d) */
    uint64_t large_bytes; /* "large" from this many bytes (100 MiB) */
    uint64_t many_files;  /* "many files" from this many objects (1,000) */
    int64_t recent_s;     /* never a space written within this (1 h) */
};

void sweep_policy_default(struct sweep_policy *p);

/* Why a space is archived or kept. Names (sweep_reason_name) are part of
 * the protocol: they appear in plan lines and in the summary. */
enum sweep_reason {
    SWEEP_R_IDLE = 0,     /* archive: idle >= idle_s */
    SWEEP_R_LARGE,        /* archive: idle >= early_idle_s, bytes >= large */
    SWEEP_R_MANY_FILES,   /* archive: idle >= early_idle_s, files >= many */
    SWEEP_R_RECENT_WRITE, /* keep: written within recent_s */
    SWEEP_R_NOT_IDLE,     /* keep: idle < early_idle_s (and < idle_s) */
    SWEEP_R_SMALL,        /* keep: idle between the two, small, few files */
    SWEEP_R_EMPTY,        /* keep: no objects under active/<spaceId>/ */
    SWEEP_R_LOCKED,       /* keep: <prefix>lock:<spaceId> exists */
    SWEEP_R_JOB_PENDING,  /* keep: an archive or unarchive job is pending */
    SWEEP_R_ARCHIVED,     /* keep: the manifest says "archived" */
    SWEEP_R_INVALID_ID,   /* keep: the folder name is not a valid spaceId */
    SWEEP_R_ERROR,        /* keep: the space could not be examined */
    SWEEP_R_COUNT
};

/* "idle", "large", "many-files", "recent-write", "not-idle", "small",
 * "empty", "locked", "job-pending", "archived", "invalid-id", "error". */
const char *sweep_reason_name(enum sweep_reason r);

/* What is known about one space. */
struct sweep_signals {
    int64_t idle_s;   /* now - last activity; negative (clock skew) = 0 */
    bool listed;      /* bytes and files are known (its objects listed) */
    uint64_t bytes;   /* total size of its objects (when listed) */
    uint64_t files;   /* number of its objects (when listed) */
    bool locked;      /* the space lock is held */
    bool job_pending; /* an archive/unarchive job is queued, running or
                         retrying */
    bool archived;    /* the manifest says "archived" */
};

/* The policy. Returns true to archive; *reason says why (either way).
 * Order: empty (listed, no objects), recent-write, then the thresholds
 * (idle, then large, then many-files, else not-idle or small), and for a
 * space the thresholds choose, the gates locked, job-pending, archived.
 * Without a listing (listed false) only idle_s can choose a space. */
bool sweep_decide(const struct sweep_policy *p, const struct sweep_signals *s,
                  enum sweep_reason *reason);

/* With the last activity known from the activity index: false when the
 * idle time alone keeps the space whatever its size (recent-write or
 * not-idle), so its objects need not be listed. */
bool sweep_needs_listing(const struct sweep_policy *p, int64_t idle_s);

/* One decided space, as handed to the report hook. */
struct sweep_item {
    char space_id[JOB_SPACE_ID_MAX + 1]; /* the folder name (cut at 128) */
    bool archive;
    enum sweep_reason reason;
    bool indexed;          /* last activity from the activity index */
    int64_t last_activity; /* unix seconds; 0 when unknown */
    int64_t idle_s;        /* -1 when unknown (empty, invalid, error) */
    bool listed;           /* bytes and files are known */
    uint64_t bytes, files;
    char error[256]; /* reason "error": what failed */
};

/* What the scan needs from outside the store. ud is passed back. */
struct sweep_hooks {
    void *ud;
    /* Last activity (unix seconds) of n spaces from the activity index:
     * present[i] false for a space that is not in it. NULL: no index. */
    enum wk_code (*activity)(void *ud, const char *const *ids, size_t n,
                             int64_t *last, bool *present, struct wk_err *err);
    /* Locks and pending jobs; called only for spaces the thresholds choose.
     * NULL: never locked or pending. */
    enum wk_code (*busy)(void *ud, const char *space_id, bool *locked,
                         bool *job_pending, struct wk_err *err);
    /* Every scanned space, once, in key order. Non-WK_OK stops the scan. */
    enum wk_code (*report)(void *ud, const struct sweep_item *it,
                           struct wk_err *err);
    /* Called often (per space, per listed object): renew a lock, check for
     * shutdown. Non-WK_OK (WK_E_CANCELLED) stops the scan. May be NULL. */
    enum wk_code (*tick)(void *ud, struct wk_err *err);
    /* Called before each space: false stops the scan cleanly there (a
     * time budget; the space is left for the next run). May be NULL. */
    bool (*more)(void *ud);
};

/* Where sweep_scan_range() starts and how far it goes. */
struct sweep_range {
    const char *after;   /* borrowed: start after this folder, given by its
                            key below active/ ("<spaceId>/", a cursor);
                            NULL or "": at the first folder */
    bool wrap;           /* at the end of active/, go on from the first
                            folder up to after: one full circle at most */
    uint64_t max_spaces; /* stop after this many spaces; 0: no limit */
};

struct sweep_totals {
    uint64_t scanned; /* spaces reported */
    uint64_t indexed; /* of which the activity index knew */
    uint64_t listed;  /* of which the objects were listed */
    uint64_t chosen;  /* of which decided "archive" */
    uint64_t by_reason[SWEEP_R_COUNT];
    /* listings: of active/ (each start) and of spaces */
    uint64_t list_calls;
    /* LIST requests: ListObjectsV2 pages of SWEEP_LIST_PAGE entries, so
     * ceil(entries seen / 1000) per listing and at least 1 (what S3 makes;
     * for fs and mem what S3 would make) */
    uint64_t list_requests;
    /* where the next run starts: the last folder examined, as its key
     * below active/ ("<spaceId>/"), or "" (the first folder) when the scan
     * ended at the end of active/ */
    char cursor[SWEEP_CURSOR_MAX + 1];
    bool pass_completed;     /* the end of active/ was reached */
    uint64_t scanned_at_end; /* spaces reported by then (when it was) */
    bool budget_stop;        /* stopped by max_spaces or more() */
};

/* Walk active/ of st and decide every space at time now (unix seconds).
 * totals is zeroed first and kept up to date, so it is meaningful after a
 * failure or cancellation too. Same as sweep_scan_range() from the first
 * folder, without a limit. */
enum wk_code sweep_scan(struct store *st, const struct sweep_policy *p,
                        int64_t now, const struct sweep_hooks *h,
                        struct sweep_totals *totals, struct wk_err *err);

/* The scan of the folders after r->after (store_list_after), then, with
 * r->wrap and a cursor, from the first folder up to the cursor. It stops
 * cleanly (WK_OK, totals->budget_stop) before a space once max_spaces were
 * examined or more() says no; totals->cursor is where the next run starts
 * (every space up to it was examined), totals->pass_completed whether the
 * end of active/ was reached. A space is examined at most once per call.
 * On a failure totals->cursor is the last space decided, as after a
 * budget. */
enum wk_code sweep_scan_range(struct store *st, const struct sweep_policy *p,
                              int64_t now, const struct sweep_range *r,
                              const struct sweep_hooks *h,
                              struct sweep_totals *totals, struct wk_err *err);

#endif
