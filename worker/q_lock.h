/*
 * q_lock: leases and locks on the Redis side (worker/q_lock.c): the
 * per-space lock and named locks (a random token, SET NX PX, renewed and
 * released only by their holder), the fencing check a job runs before each
 * destructive step (q_own_renew), and the sweep's view of a busy space.
 */
#ifndef WK_WORKER_Q_LOCK_H
#define WK_WORKER_Q_LOCK_H

#include "worker/q.h"

/* Per-space lock: SET NX PX. *got false when someone else holds it. */
enum wk_code q_lock(struct q *q, const char *space_id, const char *token,
                    unsigned ttl_ms, bool *got, struct wk_err *err);
/* Extend the lock if token still holds it (*held false otherwise). */
enum wk_code q_lock_renew(struct q *q, const char *space_id, const char *token,
                          unsigned ttl_ms, bool *held, struct wk_err *err);
/* Release the lock if token holds it. */
enum wk_code q_unlock(struct q *q, const char *space_id, const char *token,
                      struct wk_err *err);

/* A random token for a lock: "<host>-<pid>-<16 hex>" into out. */
enum wk_code q_lock_token(char *out, size_t len, struct wk_err *err);

/* A named lock <prefix><name> (e.g. "sweep:lock"): SET NX PX. *got false
 * when someone else holds it; then holder (if not NULL) receives its value
 * ("" when it expired meanwhile). */
enum wk_code q_named_lock(struct q *q, const char *name, const char *token,
                          unsigned ttl_ms, bool *got, char *holder,
                          size_t holder_len, struct wk_err *err);
/* Extend it if token still holds it (*held false otherwise). */
enum wk_code q_named_lock_renew(struct q *q, const char *name,
                                const char *token, unsigned ttl_ms, bool *held,
                                struct wk_err *err);
/* Release it if token holds it. */
enum wk_code q_named_unlock(struct q *q, const char *name, const char *token,
                            struct wk_err *err);

/* Is <prefix>lock:<spaceId> held, and is a job pending for the space: the
 * id in <prefix>dedup:archive:<spaceId> or dedup:unarchive:<spaceId> names
 * a job whose state is queued, running or retrying (its id into
 * pending_id, "" when none). One script, so one consistent view. */
enum wk_code q_space_busy(struct q *q, const char *space_id, bool *locked,
                          char *pending_id, size_t pending_len,
                          struct wk_err *err);

enum q_own {
    Q_OWN_NONE = 0,       /* no answer */
    Q_OWN_HELD = 1,       /* both ours: extended */
    Q_OWN_LOCK_LOST = 2,  /* the space lock holds another token, or none */
    Q_OWN_ENTRY_LOST = 3, /* the entry is acknowledged, gone or pending to
                             another consumer */
    Q_OWN_RELOCKED = 4,   /* Redis lost its data (no lock, no stream): the
                             lock was taken again; check with lock_only
                             from now on */
};

/* One Lua script (atomic): does the space lock of space_id still hold
 * token AND is the stream entry m still pending to consumer? Only then are
 * both extended (the lock to ttl_ms, the entry's idle time reset), so that
 * the caller has a full lease from the moment the server ran the script.
 * Never takes an entry from another consumer (unlike q_touch). *state says
 * which; a lost connection is WK_E_NET (the caller cannot prove ownership).
 * A Redis without the lock and without the stream (it lost its data: no
 * other worker can have the job) takes the lock back: Q_OWN_RELOCKED. With
 * lock_only (after that), only the lock is checked and extended. */
enum wk_code q_own_renew(struct q *q, const struct q_msg *m,
                         const char *consumer, const char *space_id,
                         const char *token, unsigned ttl_ms, bool lock_only,
                         enum q_own *state, struct wk_err *err);

/* How long a manifest record lives (<prefix>mf:<spaceId>): far longer
 * than any lease, so that a writer paused between its record and its PUT
 * still finds the newer one when it wakes. */
#define Q_MF_TTL_MS (7LL * 24 * 3600 * 1000)

/* Record body as the newest manifest of space_id, atomically with the
 * check that its lock holds token (WK_E_FENCED when not) and that the
 * manifest now in S3 (cur, when has_cur) is the last confirmed record:
 * when it is not, nothing is recorded, newest receives that record's body
 * and the result is WK_E_CONFLICT. */
enum wk_code q_mf_record(struct q *q, const char *space_id, const char *token,
                         bool has_cur, const char *cur, size_t cur_len,
                         const char *body, size_t len, struct wk_buf *newest,
                         struct wk_err *err);
/* After the PUT: WK_OK (and the record confirmed) while body is still the
 * newest record, ours, and the lock still holds token. Else WK_E_FENCED,
 * and newest receives the newest confirmed body ("" when the newest record
 * is not confirmed, or there is none). */
enum wk_code q_mf_check(struct q *q, const char *space_id, const char *token,
                        const char *body, size_t len, struct wk_buf *newest,
                        struct wk_err *err);

#endif
