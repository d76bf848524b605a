#include "worker/worker.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/wk_fail.h"
#include "common/wk_log.h"
#include "common/wk_parse.h"
#include "jobs/job.h"
#include "jobs/job_migrate.h"
#include "storage/store.h"
#include "worker/metrics.h"
#include "worker/prog_redis.h"
#include "worker/q.h"

#define WORKER_BACKOFF_MIN_MS 100
#define WORKER_BACKOFF_MAX_MS 5000
#define WORKER_RESULT_MAX     (64u * 1024u)
#define WORKER_LOCK_WAIT_MS   2000 /* re-offer a job whose space is locked */
#define WORKER_TICK_MS        200
/* A run proves ownership before each destructive step only while its last
 * proof (claim, renewal, check) is younger than lease - lease/FENCE_DIV:
 * the rest of the lease is the margin for the step itself. */
#define WORKER_FENCE_DIV 4

/*
 * The heartbeat: a thread with its own Redis connection that, while a job
 * runs, renews the job's lease (the stream entry's idle time) and the
 * space lock every lease/3, whatever the job thread is busy with (a long
 * compression never looks like a dead worker). It also turns SIGTERM into
 * a cancel of the job once the shutdown grace period has passed, and
 * cancels a job whose lease was taken over by another worker, or that it
 * could not renew for a whole lease.
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
    char space_id[JOB_SPACE_ID_MAX + 1], token[400];
    bool lost;                    /* another worker owns the entry now */
    int64_t last_ok_ms;           /* last proof of ownership (monotonic) */
    bool lock_only;               /* Redis lost its data and the lock was
                                     taken again: the lock alone proves it */
    char fenced_step[64];         /* the step a fence refused, or "" */
    struct q *fq;                 /* owned: the fence's connection (job
                                     thread only) */
    volatile sig_atomic_t cancel; /* the running job's cancel flag */
    const struct cfg *cfg;        /* borrowed */
    const char *consumer;         /* borrowed */
    volatile sig_atomic_t *stop;  /* borrowed: the signal flag */
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* Exponential backoff with jitter; interrupted early by *stop. */
static void backoff(unsigned *cur_ms, volatile sig_atomic_t *stop)
{
    unsigned ms = *cur_ms / 2 + (unsigned)(rand() % (int)(*cur_ms / 2 + 1));
    for (unsigned slept = 0; slept < ms && !*stop; slept += 100)
        sleep_ms(100);
    *cur_ms = *cur_ms * 2 > WORKER_BACKOFF_MAX_MS ? WORKER_BACKOFF_MAX_MS
                                                  : *cur_ms * 2;
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

static void hb_renew(struct hb *hb, struct q **hq)
{
    struct q_msg m;
    char space[JOB_SPACE_ID_MAX + 1], token[400];
    struct wk_err err;
    enum q_own own = Q_OWN_NONE;
    int64_t sent;
    bool lock_only;

    q_msg_init(&m);
    pthread_mutex_lock(&hb->mu);
    memcpy(m.stream, hb->stream, sizeof(m.stream));
    memcpy(m.entry_id, hb->entry_id, sizeof(m.entry_id));
    memcpy(m.job_id, hb->job_id, sizeof(m.job_id));
    memcpy(space, hb->space_id, sizeof(space));
    memcpy(token, hb->token, sizeof(token));
    lock_only = hb->lock_only;
    pthread_mutex_unlock(&hb->mu);

    wk_err_clear(&err);
    if (!*hq &&
        q_connect(&hb->cfg->redis, hb->cfg->prefix, 5000, hq, &err) != WK_OK) {
        WK_LOG(WK_LOG_WARN, "lease.renew_failed", KV_STR("job_id", m.job_id),
               KV_STR("msg", err.msg));
        goto out;
    }
    /* lease (entry) and lock together, and only while both are ours: a
     * stale run never takes the entry back from its successor */
    sent = mono_ms();
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

static void *hb_main(void *arg)
{
    struct hb *hb = arg;
    struct q *hq = NULL;
    int64_t last_renew = 0, stop_seen = 0;
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
        int64_t now = mono_ms();
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
    }
    pthread_mutex_unlock(&hb->mu);
    q_free(hq);
    return NULL;
}

static void hb_begin(struct hb *hb, const struct q_msg *m, const char *space_id,
                     const char *token, int64_t claimed_ms)
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
    hb->cancel = *hb->stop && hb->cfg->grace_ms == 0;
    hb->active = true;
    pthread_cond_signal(&hb->cv);
    pthread_mutex_unlock(&hb->mu);
}

static bool hb_end(struct hb *hb)
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
static enum wk_code fence_check(void *ud, const char *step, struct wk_err *err)
{
    struct hb *hb = ud;
    const struct cfg *cfg = hb->cfg;
    int64_t limit = (int64_t)cfg->lease_ms - cfg->lease_ms / WORKER_FENCE_DIV;
    struct q_msg m;
    char space[JOB_SPACE_ID_MAX + 1], token[400], why[200] = "";
    struct wk_err qerr;
    enum q_own own = Q_OWN_NONE;
    int64_t last, now, sent;
    bool lost, lock_only;
    unsigned rt_ms = cfg->lease_ms / WORKER_FENCE_DIV;

    q_msg_init(&m);
    pthread_mutex_lock(&hb->mu);
    memcpy(m.stream, hb->stream, sizeof(m.stream));
    memcpy(m.entry_id, hb->entry_id, sizeof(m.entry_id));
    memcpy(m.job_id, hb->job_id, sizeof(m.job_id));
    memcpy(space, hb->space_id, sizeof(space));
    memcpy(token, hb->token, sizeof(token));
    lost = hb->lost;
    last = hb->last_ok_ms;
    lock_only = hb->lock_only;
    pthread_mutex_unlock(&hb->mu);

    now = mono_ms();
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
    sent = mono_ms();
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
            sent = mono_ms();
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
    if (mono_ms() - sent >= limit) {
        snprintf(why, sizeof(why), "the ownership check took %lld ms",
                 (long long)(mono_ms() - sent));
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

/* Record the outcome; keeps trying while Redis is away, so that a finished
 * job is not redone needlessly. Gives up only on stop. */
static void finish_job(struct q *q, const struct q_msg *m, const char *type,
                       const char *space_id, bool ok, const char *error,
                       const char *result, bool dead, const struct q_done *done,
                       volatile sig_atomic_t *stop)
{
    unsigned delay = WORKER_BACKOFF_MIN_MS;
    for (int attempt = 0;; attempt++) {
        struct wk_err err;
        wk_err_clear(&err);
        if (q_finish(q, m, type, space_id, ok, error, result, dead, done,
                     &err) == WK_OK)
            return;
        WK_LOG(WK_LOG_WARN, "job.finish_retried", KV_STR("job_id", m->job_id),
               KV_INT("attempt", attempt + 1), KV_STR("msg", err.msg));
        if (*stop && attempt >= 3) {
            WK_LOG(WK_LOG_ERROR, "job.finish_lost", KV_STR("job_id", m->job_id),
                   KV_STR("msg", err.msg));
            return;
        }
        backoff(&delay, stop);
        wk_err_clear(&err);
        q_reconnect(q, &err);
    }
}

/* Put the job back (retry, busy lock, shutdown), with the same patience
 * as finish_job(). */
static void requeue_job(struct q *q, const struct q_msg *m, uint64_t delay_ms,
                        const char *const *fields, volatile sig_atomic_t *stop)
{
    unsigned delay = WORKER_BACKOFF_MIN_MS;
    for (int attempt = 0;; attempt++) {
        struct wk_err err;
        wk_err_clear(&err);
        if (q_requeue(q, m, delay_ms, fields, &err) == WK_OK)
            return;
        WK_LOG(WK_LOG_WARN, "job.requeue_retried", KV_STR("job_id", m->job_id),
               KV_STR("msg", err.msg));
        if (*stop && attempt >= 3) {
            /* the entry stays pending: its lease expires and another
             * worker takes it over */
            WK_LOG(WK_LOG_ERROR, "job.requeue_lost",
                   KV_STR("job_id", m->job_id), KV_STR("msg", err.msg));
            return;
        }
        backoff(&delay, stop);
        wk_err_clear(&err);
        q_reconnect(q, &err);
    }
}

/* Worth another run: the network, the server, throttling. Bad input,
 * hostile or corrupt data and refusals are final. */
static bool retryable(const struct wk_err *err)
{
    return wk_err_transient(err) || err->code == WK_E_NOMEM;
}

static uint64_t retry_delay_ms(const struct cfg *cfg, unsigned attempts)
{
    uint64_t d = cfg->retry_base_ms;
    for (unsigned i = 1; i < attempts && d < cfg->retry_max_ms; i++)
        d *= 2;
    if (d > cfg->retry_max_ms)
        d = cfg->retry_max_ms;
    /* jitter: 50-100 % of the delay, so retries of many jobs spread out */
    return d / 2 + (uint64_t)rand() % (d / 2 + 1);
}

static void run_one(const struct cfg *cfg, struct q *q, struct hb *hb,
                    struct q_msg *m, const char *consumer, bool reclaimed,
                    volatile sig_atomic_t *stop)
{
    struct job job;
    struct job_ctx ctx;
    struct prog_redis pr;
    struct store *st = NULL;
    struct seal_keyring *keys = NULL;
    struct wk_buf result;
    struct wk_err err;
    char state[32] = "", token[400];
    char resume[1024] = "";
    unsigned attempts = 0;
    bool locked = false, lost = false, exhausted = false;
    int64_t t0 = mono_ms();
    enum wk_code rc;
    const char *type = NULL, *space_id = NULL;

    wk_err_clear(&err);
    memset(&pr, 0, sizeof(pr));
    wk_buf_init(&result, WORKER_RESULT_MAX);
    if (m->job_id_ok) {
        struct wk_err serr;
        bool recorded = false, ours = false;
        wk_err_clear(&serr);
        if (q_delivery_state(q, m, state, sizeof(state), &recorded, &ours,
                             &serr) != WK_OK)
            state[0] = '\0';
        /* A job put on both lanes (an urgent request for a queued job) is
         * delivered twice: the second delivery only acknowledges. A job
         * taken over from a dead worker says "running" with this very
         * entry (older workers recorded none: then a reclaim) and is run. */
        if ((strcmp(state, "running") == 0 &&
             (recorded ? !ours : !reclaimed)) ||
            strcmp(state, "succeeded") == 0 || strcmp(state, "failed") == 0) {
            WK_LOG(WK_LOG_INFO, "job.duplicate_skipped",
                   KV_STR("job_id", m->job_id), KV_STR("state", state),
                   KV_STR("stream", m->stream));
            if (q_ack(q, m, &serr) != WK_OK)
                WK_LOG(WK_LOG_WARN, "job.ack_failed",
                       KV_STR("job_id", m->job_id), KV_STR("msg", serr.msg));
            wk_buf_release(&result);
            return;
        }
    }
    WK_LOG(WK_LOG_INFO, reclaimed ? "job.reclaimed" : "job.claimed",
           KV_STR("job_id", m->job_id), KV_STR("entry_id", m->entry_id),
           KV_STR("stream", m->stream));

    if (!m->job_id_ok) {
        rc =
            wk_err_set(&err, WK_E_INVAL,
                       "queue entry '%s' has no valid 'id' field", m->entry_id);
        goto out;
    }
    rc = job_parse(wk_buf_cstr(&m->json), m->json.len, &job, &err);
    if (rc != WK_OK)
        goto out;
    /* a migrate job may take its space id from the source */
    if (job.type == JOB_MIGRATE && !job.space_id[0]) {
        rc = job_migrate_resolve(&job, &cfg->store, &err);
        if (rc != WK_OK)
            goto out;
    }
    type = job_type_name(job.type);
    space_id = job.space_id;
    if (job.id[0] && strcmp(job.id, m->job_id) != 0) {
        rc = wk_err_set(&err, WK_E_INVAL,
                        "job field 'id' ('%s') does not match the queue "
                        "entry's id ('%s')",
                        job.id, m->job_id);
        goto out;
    }
    snprintf(job.id, sizeof(job.id), "%s", m->job_id);
    /* Deliveries are counted when they happen, not when a run ends: a job
     * that kills its worker every time ends in the dead letters. */
    if (m->deliveries > cfg->max_attempts) {
        exhausted = true;
        rc = wk_err_set(&err, WK_E_LIMIT,
                        "gave up after %u deliveries without an outcome: the "
                        "worker died or lost its lease during each (out of "
                        "memory? a crash?); SILA_MAX_ATTEMPTS is %u",
                        m->deliveries - 1, cfg->max_attempts);
        goto out;
    }
    wk_fail_point("job.claimed");

    /* One job per space at a time: a busy space waits, it does not fail. */
    snprintf(token, sizeof(token), "%s/%s", consumer, job.id);
    if (q_lock(q, job.space_id, token, cfg->lease_ms, &locked, &err) != WK_OK) {
        /* nothing ran: the entry stays pending, taken over after the lease */
        WK_LOG(WK_LOG_WARN, "job.begin_failed", KV_STR("job_id", job.id),
               KV_STR("msg", err.msg));
        wk_buf_release(&result);
        return;
    }
    if (!locked) {
        const char *fields[] = { "state", "queued", "waiting",
                                 "space locked by another job", NULL };
        WK_LOG(WK_LOG_INFO, "job.space_busy", KV_STR("job_id", job.id),
               KV_STR("space_id", job.space_id));
        requeue_job(q, m, WORKER_LOCK_WAIT_MS, fields, stop);
        wk_buf_release(&result);
        return;
    }
    {
        /* attempts counts runs begun, in the status hash (crashes too) */
        bool began = false;
        struct wk_err herr;
        wk_err_clear(&herr);
        if (q_begin(q, m, consumer, cfg->max_attempts, &began, &attempts,
                    &herr) != WK_OK) {
            WK_LOG(WK_LOG_WARN, "job.begin_failed", KV_STR("job_id", job.id),
                   KV_STR("msg", herr.msg));
            q_unlock(q, job.space_id, token, &herr);
            wk_buf_release(&result);
            return;
        }
        if (!began) {
            exhausted = true;
            rc = wk_err_set(&err, WK_E_LIMIT,
                            "gave up after %u runs without an outcome: the "
                            "worker died or lost its lease during each (out "
                            "of memory? a crash?); SILA_MAX_ATTEMPTS is %u",
                            attempts, cfg->max_attempts);
            goto out;
        }
    }
    rc = store_open_url(cfg->store_url, &cfg->store, &st, &err);
    if (rc == WK_OK)
        rc = cfg_keys(cfg, &keys, &err);
    if (rc != WK_OK)
        goto out;
    prog_redis_init(&pr, q, job.id, type, job.space_id);
    memset(&ctx, 0, sizeof(ctx));
    ctx.store = st;
    ctx.sink = &pr.base;
    ctx.cfg = &cfg->job;
    ctx.cancel = &hb->cancel;
    ctx.store_opts = &cfg->store;
    ctx.store_url = cfg->store_url;
    ctx.keys = keys;
    ctx.fence = fence_check;
    ctx.fence_ud = hb;
    {
        /* what a run that died left to resume (its multipart upload) */
        struct wk_err cerr;
        wk_err_clear(&cerr);
        if (q_field(q, job.id, "upload", resume, sizeof(resume), &cerr) ==
                WK_OK &&
            resume[0])
            ctx.resume = resume;
    }
    metrics_job_started(type);
    WK_LOG(WK_LOG_INFO, "job.started", KV_STR("job_id", job.id),
           KV_STR("type", type), KV_STR("space_id", job.space_id),
           KV_INT("attempt", attempts));
    hb_begin(hb, m, job.space_id, token, t0);
    wk_fail_point("job.started");
    rc = job_run(&job, &ctx, &result, &err);
    lost = hb_end(hb) || rc == WK_E_FENCED;
    if (!lost && (pr.checkpointed || ctx.resume))
        prog_checkpoint_clear(&pr); /* done with: nothing to resume (a
                                       failed run aborted its upload) */
out : {
    long long ms = (long long)(mono_ms() - t0);
    struct q_done done = { consumer, pr.bytes_total, pr.files_total, ms };
    if (lost && (rc == WK_E_FENCED || hb->fenced_step[0])) {
        /* A fence stopped the job before a destructive step: finish,
         * ack, requeue and undo nothing (the successor owns it all). */
        WK_LOG(WK_LOG_ERROR, "job.fenced", KV_STR("job_id", m->job_id),
               KV_STR("step", hb->fenced_step), KV_STR("msg", err.msg));
    } else if (lost) {
        /* Another worker owns the job now: record nothing, ack nothing
         * (its delivery has the same entry id). */
        WK_LOG(WK_LOG_ERROR, "job.abandoned", KV_STR("job_id", m->job_id),
               KV_STR("msg", err.msg));
    } else if (rc == WK_OK) {
        WK_LOG(WK_LOG_INFO, "job.succeeded", KV_STR("job_id", m->job_id),
               KV_STR("type", type), KV_STR("space_id", space_id),
               KV_INT("duration_ms", ms));
        metrics_job_finished(type, true, (double)ms / 1000.0, pr.bytes_total,
                             pr.files_total);
        finish_job(q, m, type, space_id, true, NULL, wk_buf_cstr(&result),
                   false, &done, stop);
    } else if (rc == WK_E_CANCELLED) {
        /* a run handed back at shutdown does not count as an attempt */
        char prev[16];
        snprintf(prev, sizeof(prev), "%u", attempts ? attempts - 1 : 0);
        const char *fields[] = { "state",    "queued",
                                 "error",    "handed back at shutdown",
                                 "attempts", prev,
                                 NULL };
        WK_LOG(WK_LOG_WARN, "job.handed_back", KV_STR("job_id", m->job_id),
               KV_INT("duration_ms", ms));
        requeue_job(q, m, 0, fields, stop);
    } else if (retryable(&err) && attempts > 0 &&
               attempts < cfg->max_attempts) {
        uint64_t d = retry_delay_ms(cfg, attempts);
        char next[40], code[16];
        time_t due = time(NULL) + (time_t)(d / 1000);
        wk_fmt_rfc3339(due, next, sizeof(next));
        snprintf(code, sizeof(code), "%s", wk_code_name(err.code));
        const char *fields[] = { "state",         "retrying", "error", err.msg,
                                 "nextAttemptAt", next,       NULL };
        metrics_job_retried(type);
        WK_LOG(WK_LOG_WARN, "job.retrying", KV_STR("job_id", m->job_id),
               KV_STR("code", code), KV_INT("attempt", attempts),
               KV_INT("delay_ms", d), KV_STR("msg", err.msg));
        requeue_job(q, m, d, fields, stop);
    } else {
        bool dead = retryable(&err) || exhausted;
        WK_LOG(WK_LOG_ERROR, "job.failed", KV_STR("job_id", m->job_id),
               KV_STR("type", type), KV_STR("space_id", space_id),
               KV_STR("code", wk_code_name(err.code)),
               KV_INT("http_status", err.http_status), KV_STR("msg", err.msg),
               KV_INT("attempts", attempts), KV_BOOL("dead", dead),
               KV_INT("duration_ms", ms));
        metrics_job_finished(type, false, (double)ms / 1000.0, 0, 0);
        finish_job(q, m, type, space_id, false, err.msg, NULL, dead, &done,
                   stop);
    }
}
    if (locked) {
        struct wk_err uerr;
        wk_err_clear(&uerr);
        if (q_unlock(q, job.space_id, token, &uerr) != WK_OK)
            WK_LOG(WK_LOG_WARN, "lock.release_failed",
                   KV_STR("job_id", m->job_id), KV_STR("msg", uerr.msg));
    }
    store_free(st);
    seal_keyring_free(keys);
    wk_buf_release(&result);
}

enum wk_code worker_run(const struct cfg *cfg, volatile sig_atomic_t *stop,
                        struct wk_err *err)
{
    struct q *q = NULL;
    struct q_msg m;
    struct hb hb;
    struct metrics *metrics = NULL;
    pthread_t hb_thread;
    char consumer[256], host[128] = "host", boot[17];
    unsigned delay = WORKER_BACKOFF_MIN_MS;
    bool ready = false;
    int64_t next_repair = 0;

    if (!cfg->store_url[0])
        return wk_err_set(err, WK_E_INVAL,
                          "SILA_STORE is not set (s3://bucket[/prefix] or "
                          "file:///path)");
    q_msg_init(&m);
    gethostname(host, sizeof(host) - 1);
    srand((unsigned)time(NULL) ^ ((unsigned)getpid() << 16));
    snprintf(boot, sizeof(boot), "%08x%04x", (unsigned)rand(),
             (unsigned)(mono_ms() & 0xffff));
    snprintf(consumer, sizeof(consumer), "%s-%d-%s", host, (int)getpid(), boot);

    if (cfg->metrics_addr[0]) {
        enum wk_code mrc = metrics_start(cfg, &metrics, err);
        if (mrc != WK_OK) {
            q_msg_release(&m);
            return mrc;
        }
    }
    memset(&hb, 0, sizeof(hb));
    pthread_mutex_init(&hb.mu, NULL);
    pthread_cond_init(&hb.cv, NULL);
    hb.cfg = cfg;
    hb.consumer = consumer;
    hb.stop = stop;
    if (pthread_create(&hb_thread, NULL, hb_main, &hb) != 0) {
        q_msg_release(&m);
        metrics_stop(metrics);
        return wk_err_set(err, WK_E_INTERNAL, "cannot start the heartbeat");
    }
    {
        /* key ids only: which master key seals new archives */
        struct seal_keyring *kr = NULL;
        struct wk_err kerr;
        wk_err_clear(&kerr);
        if (cfg_keys(cfg, &kr, &kerr) != WK_OK)
            kr = NULL;
        WK_LOG(WK_LOG_INFO, "worker.started", KV_STR("consumer", consumer),
               KV_STR("redis_host", cfg->redis.host),
               KV_INT("redis_port", cfg->redis.port),
               KV_INT("lease_ms", cfg->lease_ms),
               KV_STR("encryption_key_id", seal_keyring_id(kr, 0)),
               KV_INT("encryption_keys", seal_keyring_count(kr)));
        seal_keyring_free(kr);
    }

    while (!*stop) {
        struct wk_err e;
        bool got = false, reclaimed = false;
        unsigned moved = 0;

        wk_err_clear(&e);
        if (!q) {
            if (q_connect(&cfg->redis, cfg->prefix, cfg->block_ms + 5000, &q,
                          &e) != WK_OK) {
                WK_LOG(WK_LOG_WARN, "queue.connect_failed",
                       KV_STR("msg", e.msg));
                backoff(&delay, stop);
                continue;
            }
            ready = false;
        }
        if (!ready) {
            if (q_ensure_group(q, &e) != WK_OK) {
                WK_LOG(WK_LOG_WARN, "queue.group_failed", KV_STR("msg", e.msg));
                q_free(q);
                q = NULL;
                backoff(&delay, stop);
                continue;
            }
            ready = true;
            WK_LOG(WK_LOG_INFO, "queue.connected",
                   KV_STR("consumer", consumer));
        }
        /* due retries back to their lanes; then work a dead worker left;
         * then new work, urgent lane first */
        if (mono_ms() >= next_repair) {
            /* stranded jobs (running, their entry gone) back or failed */
            unsigned requeued = 0, failed = 0;
            struct wk_err re;
            wk_err_clear(&re);
            next_repair = mono_ms() + cfg->lease_ms / 3;
            if (q_repair(q, cfg->lease_ms, cfg->max_attempts, &requeued,
                         &failed, &re) != WK_OK)
                WK_LOG(WK_LOG_WARN, "queue.repair_failed",
                       KV_STR("msg", re.msg));
        }
        if (q_promote_delayed(q, &moved, &e) == WK_OK &&
            q_reclaim(q, consumer, cfg->lease_ms, &m, &got, &e) == WK_OK) {
            reclaimed = got;
            if (!got)
                q_claim(q, consumer, cfg->block_ms, &m, &got, &e);
        }
        if (e.code != WK_OK) {
            WK_LOG(WK_LOG_WARN, "queue.read_failed", KV_STR("msg", e.msg));
            /* NOGROUP: the streams were deleted (FLUSHALL, a Redis that
             * restarted without data): create them again */
            ready = false;
            if (e.code == WK_E_NET) {
                q_free(q);
                q = NULL;
            }
            backoff(&delay, stop);
            continue;
        }
        delay = WORKER_BACKOFF_MIN_MS;
        if (moved)
            WK_LOG(WK_LOG_DEBUG, "queue.delayed_promoted",
                   KV_INT("count", moved));
        if (got)
            run_one(cfg, q, &hb, &m, consumer, reclaimed, stop);
    }
    pthread_mutex_lock(&hb.mu);
    hb.quit = true;
    pthread_cond_signal(&hb.cv);
    pthread_mutex_unlock(&hb.mu);
    pthread_join(hb_thread, NULL);
    q_free(hb.fq);
    pthread_cond_destroy(&hb.cv);
    pthread_mutex_destroy(&hb.mu);
    metrics_stop(metrics);
    WK_LOG(WK_LOG_INFO, "worker.stopped", KV_STR("consumer", consumer));
    q_free(q);
    q_msg_release(&m);
    return WK_OK;
}
