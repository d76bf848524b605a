/* worker_hb: the heartbeat thread that renews a running job's lease and
 * space lock, turns a shutdown into a cancel after the grace period (and a
 * request to yield to an urgent job into one), and
 * the fence check a job runs before each destructive step. */
#include "worker/worker_hb.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/wk_log.h"
#include "worker/q_lock.h"

#define WORKER_TICK_MS 200
/* A run proves ownership before each destructive step only while its last
 * proof (claim, renewal, check) is younger than lease - lease/FENCE_DIV:
 * the rest of the lease is the margin for the step itself. */
#define WORKER_FENCE_DIV 4

int64_t hb_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Mark the run lost (lock held by the caller): the job is cancelled and
 * nothing is recorded for it. */
static void hb_mark_lost(struct hb *hb)
{
    hb->lost = true;
    hb->cancel = 1;
}

/* Redis lost its data and the lock was taken again (lock held by the
 * caller). */
static void hb_relocked(struct hb *hb, const char *job_id)
{
    if (!hb->lock_only)
        WK_LOG(WK_LOG_WARN, "lease.relocked", KV_STR("job_id", job_id),
               KV_STR("reason", "redis lost the lock and the stream"));
    hb->lock_only = true;
}

/* What a renewal or a check needs of the run, copied under the lock: m
 * (initialized here, entry and job only), the space and token, and the
 * flags (lost and last may be NULL). */
static void hb_snapshot(struct hb *hb, struct q_msg *m,
                        char space[JOB_SPACE_ID_MAX + 1],
                        char token[HB_TOKEN_MAX], bool *lock_only, bool *lost,
                        int64_t *last)
{
    q_msg_init(m);
    pthread_mutex_lock(&hb->mu);
    memcpy(m->stream, hb->stream, sizeof(m->stream));
    memcpy(m->entry_id, hb->entry_id, sizeof(m->entry_id));
    memcpy(m->job_id, hb->job_id, sizeof(m->job_id));
    memcpy(space, hb->space_id, JOB_SPACE_ID_MAX + 1);
    memcpy(token, hb->token, sizeof(hb->token));
    *lock_only = hb->lock_only;
    if (lost)
        *lost = hb->lost;
    if (last)
        *last = hb->last_ok_ms;
    pthread_mutex_unlock(&hb->mu);
}

static void hb_renew(struct hb *hb, struct q **hq)
{
    struct q_msg m;
    char space[JOB_SPACE_ID_MAX + 1], token[HB_TOKEN_MAX];
    struct wk_err err;
    enum q_own own = Q_OWN_NONE;
    int64_t sent;
    bool lock_only;

    hb_snapshot(hb, &m, space, token, &lock_only, NULL, NULL);

    wk_err_clear(&err);
    if (!*hq &&
        q_connect(&hb->cfg->redis, hb->cfg->prefix, 5000, hq, &err) != WK_OK) {
        WK_LOG(WK_LOG_WARN, "lease.renew_failed", KV_STR("job_id", m.job_id),
               KV_STR("msg", err.msg));
        goto out;
    }
    /* lease (entry) and lock together, and only while both are ours: a
     * stale run never takes the entry back from its successor */
    sent = hb_mono_ms();
    if (q_own_renew(*hq, &m, hb->consumer, space, token, hb->cfg->lease_ms,
                    lock_only, &own, &err) != WK_OK) {
        WK_LOG(WK_LOG_WARN, "lease.renew_failed", KV_STR("job_id", m.job_id),
               KV_STR("msg", err.msg));
        q_free(*hq);
        *hq = NULL;
        goto out;
    }
    pthread_mutex_lock(&hb->mu);
    if (own == Q_OWN_RELOCKED)
        hb_relocked(hb, m.job_id);
    if (own == Q_OWN_HELD || own == Q_OWN_RELOCKED) {
        if (sent > hb->last_ok_ms)
            hb->last_ok_ms = sent;
    } else if (!hb->lost) {
        WK_LOG(WK_LOG_ERROR, "lease.lost", KV_STR("job_id", m.job_id),
               KV_BOOL("entry_lost", own == Q_OWN_ENTRY_LOST),
               KV_BOOL("lock_lost", own != Q_OWN_ENTRY_LOST));
        hb_mark_lost(hb);
    }
    pthread_mutex_unlock(&hb->mu);
out:
    q_msg_release(&m);
}

/* Preemption: has an urgent job of the space asked this run to yield?
 * Then cancel it (lock not held by the caller). */
static void hb_yield_check(struct hb *hb, struct q **hq)
{
    char job_id[JOB_ID_MAX + 1], by[JOB_ID_MAX + 1];
    struct wk_err err;
    bool got = false;

    pthread_mutex_lock(&hb->mu);
    memcpy(job_id, hb->job_id, sizeof(job_id));
    pthread_mutex_unlock(&hb->mu);
    wk_err_clear(&err);
    if (!*hq &&
        q_connect(&hb->cfg->redis, hb->cfg->prefix, 5000, hq, &err) != WK_OK)
        return; /* the renewal reports an outage */
    if (q_yield_take(*hq, job_id, hb->cfg->lease_ms, by, &got, &err) != WK_OK) {
        if (err.code == WK_E_NET) {
            q_free(*hq);
            *hq = NULL;
        }
        return;
    }
    if (!got)
        return;
    pthread_mutex_lock(&hb->mu);
    if (hb->active && strcmp(hb->job_id, job_id) == 0 && !hb->lost) {
        WK_LOG(WK_LOG_INFO, "job.yield_requested", KV_STR("job_id", job_id),
               KV_STR("by", by));
        snprintf(hb->yield_by, sizeof(hb->yield_by), "%s", by);
        hb->yielded = true;
        hb->cancel = 1;
    }
    pthread_mutex_unlock(&hb->mu);
}

static void *hb_main(void *arg)
{
    struct hb *hb = arg;
    struct q *hq = NULL;
    int64_t last_renew = 0, stop_seen = 0, last_yield = 0;
    unsigned every = hb->cfg->lease_ms / 3;

    pthread_mutex_lock(&hb->mu);
    while (!hb->quit) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += WORKER_TICK_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&hb->cv, &hb->mu, &until);
        if (hb->quit || !hb->active) {
            last_renew = 0;
            continue;
        }
        int64_t now = hb_mono_ms();
        if (*hb->stop) {
            if (!stop_seen)
                stop_seen = now;
            if (!hb->cancel && now - stop_seen >= hb->cfg->grace_ms) {
                WK_LOG(WK_LOG_WARN, "job.cancel_requested",
                       KV_STR("job_id", hb->job_id),
                       KV_INT("grace_ms", hb->cfg->grace_ms));
                hb->cancel = 1;
            }
        }
        if (last_renew == 0)
            last_renew = now; /* the claim itself just reset the lease */
        if (!hb->lost && now - hb->last_ok_ms >= (int64_t)hb->cfg->lease_ms) {
            /* not renewed for a whole lease (a pause, Redis away): another
             * worker may hold the job by now */
            WK_LOG(WK_LOG_ERROR, "lease.expired", KV_STR("job_id", hb->job_id),
                   KV_INT("since_ms", now - hb->last_ok_ms),
                   KV_INT("lease_ms", hb->cfg->lease_ms));
            hb_mark_lost(hb);
        }
        if (!hb->lost && now - last_renew >= every) {
            last_renew = now;
            pthread_mutex_unlock(&hb->mu);
            hb_renew(hb, &hq);
            pthread_mutex_lock(&hb->mu);
        }
        if (hb->active && hb->yieldable && !hb->yielded && !hb->lost &&
            !hb->cancel && now - last_yield >= HB_YIELD_MS) {
            last_yield = now;
            pthread_mutex_unlock(&hb->mu);
            hb_yield_check(hb, &hq);
            pthread_mutex_lock(&hb->mu);
        }
    }
    pthread_mutex_unlock(&hb->mu);
    q_free(hq);
    return NULL;
}

void hb_begin(struct hb *hb, const struct q_msg *m, const char *space_id,
              const char *token, int64_t claimed_ms, bool yieldable)
{
    pthread_mutex_lock(&hb->mu);
    memcpy(hb->stream, m->stream, sizeof(hb->stream));
    memcpy(hb->entry_id, m->entry_id, sizeof(hb->entry_id));
    memcpy(hb->job_id, m->job_id, sizeof(hb->job_id));
    snprintf(hb->space_id, sizeof(hb->space_id), "%s", space_id);
    snprintf(hb->token, sizeof(hb->token), "%s", token);
    hb->lost = false;
    hb->last_ok_ms = claimed_ms;
    hb->lock_only = false;
    hb->fenced_step[0] = '\0';
    hb->yieldable = yieldable;
    hb->yielded = false;
    hb->yield_by[0] = '\0';
    hb->cancel = *hb->stop && hb->cfg->grace_ms == 0;
    hb->active = true;
    pthread_cond_signal(&hb->cv);
    pthread_mutex_unlock(&hb->mu);
}

bool hb_end(struct hb *hb)
{
    bool lost;
    pthread_mutex_lock(&hb->mu);
    hb->active = false;
    lost = hb->lost;
    pthread_mutex_unlock(&hb->mu);
    return lost;
}

/* The job's ownership check (job_ctx.fence), on the job thread. Fenced
 * unless (a) the last proof of ownership is younger than the lease minus
 * the margin (monotonic: a run paused past its lease is fenced on waking,
 * before it talks to anyone) and (b) one script confirms that the space
 * lock holds our token and the entry is pending to us, and extends both.
 * Redis out of reach: fenced (ownership cannot be proven). */
enum wk_code hb_fence_check(void *ud, const char *step, struct wk_err *err)
{
    struct hb *hb = ud;
    const struct cfg *cfg = hb->cfg;
    int64_t limit = (int64_t)cfg->lease_ms - cfg->lease_ms / WORKER_FENCE_DIV;
    struct q_msg m;
    char space[JOB_SPACE_ID_MAX + 1], token[HB_TOKEN_MAX], why[200] = "";
    struct wk_err qerr;
    enum q_own own = Q_OWN_NONE;
    int64_t last, now, sent;
    bool lost, lock_only;
    unsigned rt_ms = cfg->lease_ms / WORKER_FENCE_DIV;

    hb_snapshot(hb, &m, space, token, &lock_only, &lost, &last);

    now = hb_mono_ms();
    if (lost) {
        snprintf(why, sizeof(why), "the lease was lost");
        goto fenced;
    }
    if (now - last >= limit) {
        snprintf(why, sizeof(why),
                 "no proof of ownership for %lld ms (lease %u ms)",
                 (long long)(now - last), cfg->lease_ms);
        goto fenced;
    }
    wk_err_clear(&qerr);
    if (rt_ms > 5000)
        rt_ms = 5000;
    if (rt_ms < 200)
        rt_ms = 200;
    if (!hb->fq &&
        q_connect(&cfg->redis, cfg->prefix, rt_ms, &hb->fq, &qerr) != WK_OK) {
        snprintf(why, sizeof(why), "cannot reach redis: %.160s", qerr.msg);
        goto fenced;
    }
    sent = hb_mono_ms();
    if (q_own_renew(hb->fq, &m, hb->consumer, space, token, cfg->lease_ms,
                    lock_only, &own, &qerr) != WK_OK &&
        qerr.code == WK_E_NET) {
        /* a connection that broke since the last check (a Redis restart):
         * once more on a new one */
        wk_err_clear(&qerr);
        q_free(hb->fq);
        hb->fq = NULL;
        if (q_connect(&cfg->redis, cfg->prefix, rt_ms, &hb->fq, &qerr) ==
            WK_OK) {
            sent = hb_mono_ms();
            q_own_renew(hb->fq, &m, hb->consumer, space, token, cfg->lease_ms,
                        lock_only, &own, &qerr);
        }
    }
    if (qerr.code != WK_OK) {
        snprintf(why, sizeof(why), "cannot reach redis: %.160s", qerr.msg);
        q_free(hb->fq);
        hb->fq = NULL;
        goto fenced;
    }
    if (own != Q_OWN_HELD && own != Q_OWN_RELOCKED) {
        snprintf(why, sizeof(why), "%s",
                 own == Q_OWN_ENTRY_LOST
                     ? "the queue entry is no longer pending to this worker"
                     : "the space lock is held by another run");
        goto fenced;
    }
    if (hb_mono_ms() - sent >= limit) {
        snprintf(why, sizeof(why), "the ownership check took %lld ms",
                 (long long)(hb_mono_ms() - sent));
        goto fenced;
    }
    pthread_mutex_lock(&hb->mu);
    if (own == Q_OWN_RELOCKED)
        hb_relocked(hb, m.job_id);
    if (sent > hb->last_ok_ms)
        hb->last_ok_ms = sent;
    pthread_mutex_unlock(&hb->mu);
    q_msg_release(&m);
    return WK_OK;
fenced:
    pthread_mutex_lock(&hb->mu);
    hb_mark_lost(hb);
    if (!hb->fenced_step[0])
        snprintf(hb->fenced_step, sizeof(hb->fenced_step), "%s", step);
    pthread_mutex_unlock(&hb->mu);
    WK_LOG(WK_LOG_WARN, "fence.refused", KV_STR("job_id", m.job_id),
           KV_STR("step", step), KV_STR("msg", why));
    q_msg_release(&m);
    return wk_err_set(err, WK_E_FENCED, "fenced before '%s': %s", step, why);
}

/* A manifest record or check found the run no longer owns its space. */
static void hb_mf_fenced(struct hb *hb, const char *step)
{
    pthread_mutex_lock(&hb->mu);
    hb_mark_lost(hb);
    if (!hb->fenced_step[0])
        snprintf(hb->fenced_step, sizeof(hb->fenced_step), "%s", step);
    pthread_mutex_unlock(&hb->mu);
}

static void hb_token(struct hb *hb, char *token, size_t len)
{
    pthread_mutex_lock(&hb->mu);
    snprintf(token, len, "%s", hb->token);
    pthread_mutex_unlock(&hb->mu);
}

/* A broken fence connection is dropped: the next check connects again. */
static enum wk_code hb_fq_result(struct hb *hb, enum wk_code rc)
{
    if (rc == WK_E_NET) {
        q_free(hb->fq);
        hb->fq = NULL;
    }
    return rc;
}

enum wk_code hb_mf_record(void *ud, const char *space_id, bool has_cur,
                          const char *cur, size_t cur_len, const char *body,
                          size_t len, struct wk_buf *newest, struct wk_err *err)
{
    struct hb *hb = ud;
    char token[HB_TOKEN_MAX];
    enum wk_code rc = hb_fence_check(ud, "manifest.record", err);

    if (rc != WK_OK)
        return rc;
    hb_token(hb, token, sizeof(token));
    rc = q_mf_record(hb->fq, space_id, token, has_cur, cur, cur_len, body, len,
                     newest, err);
    if (rc == WK_E_FENCED)
        hb_mf_fenced(hb, "manifest.record");
    if (rc == WK_E_FENCED)
        WK_LOG(WK_LOG_WARN, "fence.refused", KV_STR("space_id", space_id),
               KV_STR("step", "manifest.record"), KV_STR("msg", err->msg));
    return hb_fq_result(hb, rc);
}

enum wk_code hb_mf_check(void *ud, const char *space_id, const char *body,
                         size_t len, struct wk_buf *newest, struct wk_err *err)
{
    struct hb *hb = ud;
    char token[HB_TOKEN_MAX];
    struct wk_err qerr;
    enum wk_code rc;

    wk_buf_reset(newest);
    hb_token(hb, token, sizeof(token));
    if (!hb->fq) {
        wk_err_clear(&qerr);
        if (q_connect(&hb->cfg->redis, hb->cfg->prefix, 5000, &hb->fq, &qerr) !=
            WK_OK) {
            hb_mf_fenced(hb, "manifest.check");
            return wk_err_set(err, WK_E_FENCED,
                              "manifest check: cannot reach redis: %.160s",
                              qerr.msg);
        }
    }
    rc = q_mf_check(hb->fq, space_id, token, body, len, newest, err);
    if (rc == WK_E_NET) {
        /* ownership cannot be proven: as a lost lease */
        char msg[sizeof(err->msg)];
        snprintf(msg, sizeof(msg), "%s", err->msg);
        hb_fq_result(hb, rc);
        hb_mf_fenced(hb, "manifest.check");
        return wk_err_set(err, WK_E_FENCED, "manifest check: %.200s", msg);
    }
    if (rc == WK_E_FENCED)
        hb_mf_fenced(hb, "manifest.check");
    if (rc == WK_E_FENCED)
        WK_LOG(WK_LOG_WARN, "fence.refused", KV_STR("space_id", space_id),
               KV_STR("step", "manifest.check"), KV_STR("msg", err->msg));
    return rc;
}

enum wk_code hb_start(struct hb *hb, const struct cfg *cfg,
                      const char *consumer, volatile sig_atomic_t *stop,
                      struct wk_err *err)
{
    memset(hb, 0, sizeof(*hb));
    pthread_mutex_init(&hb->mu, NULL);
    pthread_cond_init(&hb->cv, NULL);
    hb->cfg = cfg;
    hb->consumer = consumer;
    hb->stop = stop;
    if (pthread_create(&hb->thread, NULL, hb_main, hb) != 0)
        return wk_err_set(err, WK_E_INTERNAL, "cannot start the heartbeat");
    return WK_OK;
}

void hb_stop(struct hb *hb)
{
    pthread_mutex_lock(&hb->mu);
    hb->quit = true;
    pthread_cond_signal(&hb->cv);
    pthread_mutex_unlock(&hb->mu);
    pthread_join(hb->thread, NULL);
    q_free(hb->fq);
    pthread_cond_destroy(&hb->cv);
    pthread_mutex_destroy(&hb->mu);
}
