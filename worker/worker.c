/* worker: the worker process ("sila-archiver worker"): its job runners
 * (the main one, both lanes; SILA_URGENT_SLOTS more, the urgent lane
 * only; each a thread with its own connection, heartbeat and consumer
 * name), and a runner's loop: connect, reclaim or claim one entry, and run
 * it (run_one: parse, lock the space, begin, run the job under its
 * heartbeat, then finish, retry or requeue), with patience while Redis is
 * away. worker_hb.c renews the lease meanwhile; worker_hk.c promotes
 * delayed jobs and repairs stranded ones for the whole process. */
#include "worker/worker.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/wk_fail.h"
#include "common/wk_log.h"
#include "common/wk_parse.h"
#include "common/wk_time.h"
#include "jobs/job.h"
#include "jobs/job_migrate.h"
#include "storage/store.h"
#include "worker/acct.h"
#include "worker/metrics.h"
#include "worker/prog_redis.h"
#include "worker/q.h"
#include "worker/q_keys.h"
#include "worker/q_lock.h"
#include "worker/worker_hb.h"
#include "worker/worker_hk.h"

#define WORKER_BACKOFF_MIN_MS 100
#define WORKER_BACKOFF_MAX_MS 5000
#define WORKER_RESULT_MAX     (64u * 1024u)
#define WORKER_LOCK_WAIT_MS   2000 /* re-offer a job whose space is locked */
#define WORKER_YIELD_WAIT_MS  300  /* ... when its holder was asked to yield */
#define WORKER_YIELDED_MS     5000 /* a job that yielded runs again after */

/* One job runner: a thread (the main runner: the process's own) with its
 * own Redis connection, heartbeat and consumer name. */
/* Urgent jobs running in this process, on any runner: while it is
 * non-zero, background jobs keep SILA_BACKGROUND_IN_FLIGHT requests in
 * flight (store_throttle). */
static atomic_uint urgent_running;

struct runner {
    const struct cfg *cfg;
    volatile sig_atomic_t *stop;
    atomic_uint *busy; /* the process's runners with a job running */
    char consumer[256];
    bool urgent_only; /* serves the urgent lane alone */
    uint64_t rng;     /* backoff and retry jitter (rand() is shared) */
    struct hb hb;
    pthread_t thread;
};

static unsigned runner_rand(struct runner *r, unsigned below)
{
    /* xorshift64*: small, per runner, good enough for jitter */
    r->rng ^= r->rng >> 12;
    r->rng ^= r->rng << 25;
    r->rng ^= r->rng >> 27;
    return below ? (unsigned)((r->rng * 0x2545F4914F6CDD1DULL) >> 33) % below
                 : 0;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* Exponential backoff with jitter; interrupted early by *stop. */
static void backoff(struct runner *r, unsigned *cur_ms)
{
    unsigned ms = *cur_ms / 2 + runner_rand(r, *cur_ms / 2 + 1);
    for (unsigned slept = 0; slept < ms && !*r->stop; slept += 100)
        sleep_ms(100);
    *cur_ms = *cur_ms * 2 > WORKER_BACKOFF_MAX_MS ? WORKER_BACKOFF_MAX_MS
                                                  : *cur_ms * 2;
}

/* The job's bill into its result (worker/acct.h); a result that cannot
 * take it is kept as it is (the bill is also in the audit entry). */
static void add_bill(struct wk_buf *result, const struct store_requests *req,
                     const struct store_requests *src,
                     const struct acct_prices *prices, const char *job_id)
{
    struct wk_err e;
    wk_err_clear(&e);
    if (acct_result_add(result, req, src, prices, &e) != WK_OK)
        WK_LOG(WK_LOG_WARN, "job.bill_failed", KV_STR("job_id", job_id),
               KV_STR("msg", e.msg));
}

/* Record the outcome; keeps trying while Redis is away, so that a finished
 * job is not redone needlessly. Gives up only on stop. */
static void finish_job(struct runner *r, struct q *q, const struct q_msg *m,
                       const char *type, const char *space_id, bool ok,
                       const char *error, const char *result, bool dead,
                       const struct q_done *done)
{
    volatile sig_atomic_t *stop = r->stop;
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
        backoff(r, &delay);
        wk_err_clear(&err);
        q_reconnect(q, &err);
    }
}

/* Put the job back (retry, busy lock, shutdown), with the same patience
 * as finish_job(). */
static void requeue_job(struct runner *r, struct q *q, const struct q_msg *m,
                        uint64_t delay_ms, const char *const *fields)
{
    volatile sig_atomic_t *stop = r->stop;
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
        backoff(r, &delay);
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

static uint64_t retry_delay_ms(struct runner *r, unsigned attempts)
{
    const struct cfg *cfg = r->cfg;
    uint64_t d = cfg->retry_base_ms;
    for (unsigned i = 1; i < attempts && d < cfg->retry_max_ms; i++)
        d *= 2;
    if (d > cfg->retry_max_ms)
        d = cfg->retry_max_ms;
    /* jitter: 50-100 % of the delay, so retries of many jobs spread out */
    return d / 2 + (d / 2 + 1 <= UINT32_MAX
                        ? runner_rand(r, (unsigned)(d / 2 + 1))
                        : (uint64_t)runner_rand(r, UINT32_MAX));
}

/* When the job was requested (its status hash's createdAt), epoch ms; 0
 * when unknown. */
static int64_t requested_ms(struct q *q, const char *job_id)
{
    char created[64] = "";
    struct wk_err e;
    int64_t ms = 0;

    wk_err_clear(&e);
    if (q_field(q, job_id, "createdAt", created, sizeof(created), &e) !=
            WK_OK ||
        !created[0] || wk_time_parse_rfc3339_ms(created, &ms, &e) != WK_OK)
        return 0;
    return ms;
}

static void run_one(struct runner *r, struct q *q, struct q_msg *m,
                    bool reclaimed)
{
    const struct cfg *cfg = r->cfg;
    struct hb *hb = &r->hb;
    const char *consumer = r->consumer;
    struct job job;
    struct job_ctx ctx;
    struct job_config jcfg;
    struct prog_redis pr;
    struct store *st = NULL;
    struct seal_keyring *keys = NULL;
    struct wk_buf result;
    struct wk_err err;
    struct store_requests src_req; /* a migrate's source store's */
    char state[32] = "", token[400];
    char resume[1024] = "";
    unsigned attempts = 0;
    bool locked = false, lost = false, exhausted = false, urgent = false;
    bool yieldable = false;
    int64_t t0 = hb_mono_ms();
    enum wk_code rc;
    const char *type = NULL, *space_id = NULL;

    wk_err_clear(&err);
    memset(&pr, 0, sizeof(pr));
    memset(&src_req, 0, sizeof(src_req));
    wk_buf_init(&result, WORKER_RESULT_MAX);
    {
        char lane[128];
        urgent = q_key_lane(cfg->prefix, true, lane, sizeof(lane)) &&
                 strcmp(m->stream, lane) == 0;
    }
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
        char holder[JOB_ID_MAX + 1] = "";
        bool asked = false;
        if (urgent) {
            /* preemption: a background holder is asked to yield at its
             * next safe point; this job looks again soon */
            struct wk_err yerr;
            wk_err_clear(&yerr);
            if (q_ask_yield(q, job.space_id, job.id, holder, &asked, &yerr) !=
                WK_OK)
                WK_LOG(WK_LOG_WARN, "job.yield_ask_failed",
                       KV_STR("job_id", job.id), KV_STR("msg", yerr.msg));
        }
        WK_LOG(WK_LOG_INFO, "job.space_busy", KV_STR("job_id", job.id),
               KV_STR("space_id", job.space_id),
               KV_STR("asked_to_yield", asked ? holder : ""));
        requeue_job(r, q, m, asked ? WORKER_YIELD_WAIT_MS : WORKER_LOCK_WAIT_MS,
                    fields);
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
    jcfg = cfg->job;
    ctx.cfg = &jcfg; /* shared below when another job of ours runs */
    ctx.cancel = &hb->cancel;
    ctx.store_opts = &cfg->store;
    ctx.store_url = cfg->store_url;
    ctx.keys = keys;
    ctx.fence = hb_fence_check;
    ctx.fence_ud = hb;
    ctx.mf_record = hb_mf_record;
    ctx.mf_check = hb_mf_check;
    ctx.mf_ud = hb;
    ctx.source_requests = &src_req;
    {
        /* what a run that died left to resume (its multipart upload) */
        struct wk_err cerr;
        wk_err_clear(&cerr);
        if (q_field(q, job.id, "upload", resume, sizeof(resume), &cerr) ==
                WK_OK &&
            resume[0])
            ctx.resume = resume;
    }
    ctx.requested_ms = requested_ms(q, job.id);
    metrics_job_started(type);
    WK_LOG(WK_LOG_INFO, "job.started", KV_STR("job_id", job.id),
           KV_STR("type", type), KV_STR("space_id", job.space_id),
           KV_INT("attempt", attempts));
    {
        /* a background archive or migrate yields to an urgent job of its
         * space; a request left from an earlier run is dropped here */
        char by[JOB_ID_MAX + 1];
        bool stale = false;
        struct wk_err yerr;
        wk_err_clear(&yerr);
        yieldable =
            !urgent && (job.type == JOB_ARCHIVE || job.type == JOB_MIGRATE);
        if (yieldable)
            (void)q_yield_take(q, job.id, 0, by, &stale, &yerr);
    }
    if (atomic_fetch_add(r->busy, 1) > 0) {
        /* Another runner of this process has a job: this one takes the
         * shared budget, so that the process stays within one full budget
         * plus SILA_URGENT_SLOTS shared ones (README, "Memory"). */
        job_config_shared(&jcfg);
        WK_LOG(WK_LOG_INFO, "job.shared_budget", KV_STR("job_id", job.id),
               KV_INT("fetch_window", jcfg.window_bytes),
               KV_INT("parts_in_flight", jcfg.parts_in_flight));
    }
    /* A background job gives way to the process's urgent jobs: fewer S3
     * requests in flight while one runs (the server is shared) */
    if (urgent)
        atomic_fetch_add(&urgent_running, 1);
    else
        store_throttle(st, &urgent_running, cfg->bg_in_flight);
    hb_begin(hb, m, job.space_id, token, t0, yieldable);
    wk_fail_point("job.started");
    rc = job_run(&job, &ctx, &result, &err);
    lost = hb_end(hb) || rc == WK_E_FENCED;
    if (urgent)
        atomic_fetch_sub(&urgent_running, 1);
    atomic_fetch_sub(r->busy, 1);
    /* Done with the checkpoint: nothing to resume (a failed run aborted
     * its upload). A run handed back kept its upload for the next. */
    if (!lost && rc != WK_E_CANCELLED && (pr.checkpointed || ctx.resume))
        prog_checkpoint_clear(&pr);
out : {
    long long ms = (long long)(hb_mono_ms() - t0);
    struct store_requests req; /* the bill: every store of the run */
    struct q_done done = {
        consumer, pr.bytes_total, pr.files_total, ms, &req, 0
    };
    store_requests(st, &req);
    acct_merge(&req, &src_req);
    done.cost_usd = acct_cost(&cfg->prices, &req);
    WK_LOG(WK_LOG_INFO, "job.requests", KV_STR("job_id", m->job_id),
           KV_INT("requests", req.requests), KV_INT("retries", req.retries),
           KV_INT("bytes_in", req.bytes_in), KV_INT("bytes_out", req.bytes_out),
           KV_INT("cost_micro_usd", (long long)(done.cost_usd * 1e6 + 0.5)));
    if (rc == WK_OK && !lost)
        add_bill(&result, &req, &src_req, &cfg->prices, m->job_id);
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
        finish_job(r, q, m, type, space_id, true, NULL, wk_buf_cstr(&result),
                   false, &done);
    } else if (rc == WK_E_CANCELLED && hb->yielded && !*r->stop &&
               job.type == JOB_ARCHIVE) {
        /* An archive that gave way to an open of its space ends here: the
         * space is in use again (active, nothing deleted), and the sweep
         * decides later whether it is idle. Its kept upload is aborted by
         * the next archive of the space (or the bucket's lifecycle rule). */
        char res[JOB_ID_MAX + 64];
        snprintf(res, sizeof(res),
                 "{\"skipped\":\"opened\",\"yieldedTo\":\"%s\"}", hb->yield_by);
        wk_buf_reset(&result);
        if (wk_buf_appends(&result, res, NULL) == WK_OK)
            add_bill(&result, &req, &src_req, &cfg->prices, m->job_id);
        WK_LOG(WK_LOG_INFO, "job.yielded", KV_STR("job_id", m->job_id),
               KV_STR("by", hb->yield_by), KV_INT("duration_ms", ms),
               KV_STR("outcome", "skipped"));
        metrics_job_finished(type, true, (double)ms / 1000.0, 0, 0);
        finish_job(r, q, m, type, space_id, true, NULL,
                   result.len ? wk_buf_cstr(&result) : res, false, &done);
    } else if (rc == WK_E_CANCELLED && hb->yielded && !*r->stop) {
        /* preempted: back after a while, its upload kept; not an attempt */
        char prev[16], why[JOB_ID_MAX + 40];
        snprintf(prev, sizeof(prev), "%u", attempts ? attempts - 1 : 0);
        snprintf(why, sizeof(why), "yielded to urgent job %s", hb->yield_by);
        const char *fields[] = { "state",    "queued", "waiting", why,
                                 "attempts", prev,     NULL };
        WK_LOG(WK_LOG_INFO, "job.yielded", KV_STR("job_id", m->job_id),
               KV_STR("by", hb->yield_by), KV_INT("duration_ms", ms),
               KV_INT("delay_ms", WORKER_YIELDED_MS));
        requeue_job(r, q, m, WORKER_YIELDED_MS, fields);
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
        requeue_job(r, q, m, 0, fields);
    } else if (retryable(&err) && attempts > 0 &&
               attempts < cfg->max_attempts) {
        uint64_t d = retry_delay_ms(r, attempts);
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
        requeue_job(r, q, m, d, fields);
    } else {
        bool dead = retryable(&err) || exhausted;
        WK_LOG(WK_LOG_ERROR, "job.failed", KV_STR("job_id", m->job_id),
               KV_STR("type", type), KV_STR("space_id", space_id),
               KV_STR("code", wk_code_name(err.code)),
               KV_INT("http_status", err.http_status), KV_STR("msg", err.msg),
               KV_INT("attempts", attempts), KV_BOOL("dead", dead),
               KV_INT("duration_ms", ms));
        metrics_job_finished(type, false, (double)ms / 1000.0, 0, 0);
        finish_job(r, q, m, type, space_id, false, err.msg, NULL, dead, &done);
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

/* A runner's loop until *stop: (re)connect, then work a dead worker left,
 * then new work (urgent lane first; an urgent runner: that lane alone). */
static void runner_loop(struct runner *r)
{
    const struct cfg *cfg = r->cfg;
    struct q *q = NULL;
    struct q_msg m;
    unsigned delay = WORKER_BACKOFF_MIN_MS;
    bool ready = false, ensured = false;

    q_msg_init(&m);
    while (!*r->stop) {
        struct wk_err e;
        bool got = false, reclaimed = false;

        wk_err_clear(&e);
        if (!q) {
            if (q_connect(&cfg->redis, cfg->prefix, cfg->block_ms + 5000, &q,
                          &e) != WK_OK) {
                WK_LOG(WK_LOG_WARN, "queue.connect_failed",
                       KV_STR("consumer", r->consumer), KV_STR("msg", e.msg));
                backoff(r, &delay);
                continue;
            }
            ready = false;
        }
        /* The streams are (re)created only while no runner of this
         * process runs a job (or on this runner's first connection):
         * streams that reappear after a Redis lost its data would make a
         * running job's heartbeat take its entry for handed to another
         * worker, rather than take its lock again (q_own_renew). Until
         * then the lanes are read as they are (NOGROUP: backoff). */
        if (!ready && (!ensured || atomic_load(r->busy) == 0)) {
            if (q_ensure_group(q, &e) != WK_OK) {
                WK_LOG(WK_LOG_WARN, "queue.group_failed", KV_STR("msg", e.msg));
                q_free(q);
                q = NULL;
                backoff(r, &delay);
                continue;
            }
            ready = ensured = true;
            WK_LOG(WK_LOG_INFO, "queue.connected",
                   KV_STR("consumer", r->consumer),
                   KV_BOOL("urgent_only", r->urgent_only));
        }
        if (r->urgent_only) {
            if (q_reclaim_urgent(q, r->consumer, cfg->lease_ms, &m, &got, &e) ==
                WK_OK) {
                reclaimed = got;
                if (!got)
                    q_claim_urgent(q, r->consumer, cfg->block_ms, &m, &got, &e);
            }
        } else if (q_reclaim(q, r->consumer, cfg->lease_ms, &m, &got, &e) ==
                   WK_OK) {
            reclaimed = got;
            if (!got)
                q_claim(q, r->consumer, cfg->block_ms, &m, &got, &e);
        }
        if (e.code != WK_OK) {
            WK_LOG(WK_LOG_WARN, "queue.read_failed",
                   KV_STR("consumer", r->consumer), KV_STR("msg", e.msg));
            /* NOGROUP: the streams were deleted (FLUSHALL, a Redis that
             * restarted without data): create them again */
            ready = false;
            if (e.code == WK_E_NET) {
                q_free(q);
                q = NULL;
            }
            backoff(r, &delay);
            continue;
        }
        delay = WORKER_BACKOFF_MIN_MS;
        if (got)
            run_one(r, q, &m, reclaimed);
    }
    q_free(q);
    q_msg_release(&m);
}

/* An urgent runner's thread: its heartbeat, then its loop. */
static void *runner_main(void *arg)
{
    struct runner *r = arg;
    struct wk_err err;

    wk_err_clear(&err);
    if (hb_start(&r->hb, r->cfg, r->consumer, r->stop, &err) != WK_OK) {
        WK_LOG(WK_LOG_ERROR, "runner.failed", KV_STR("consumer", r->consumer),
               KV_STR("msg", err.msg));
        return NULL;
    }
    runner_loop(r);
    hb_stop(&r->hb);
    return NULL;
}

static void runner_init(struct runner *r, const struct cfg *cfg,
                        volatile sig_atomic_t *stop, atomic_uint *busy,
                        const char *base, unsigned index)
{
    memset(r, 0, sizeof(*r));
    r->cfg = cfg;
    r->stop = stop;
    r->busy = busy;
    r->urgent_only = index > 0;
    if (index)
        snprintf(r->consumer, sizeof(r->consumer), "%.240s-u%u", base, index);
    else
        snprintf(r->consumer, sizeof(r->consumer), "%s", base);
    r->rng = ((uint64_t)getpid() << 32) ^ (uint64_t)hb_mono_ms() ^
             ((uint64_t)(index + 1) * 0x9E3779B97F4A7C15ULL);
    if (!r->rng)
        r->rng = 1;
}

enum wk_code worker_run(const struct cfg *cfg, volatile sig_atomic_t *stop,
                        struct wk_err *err)
{
    struct runner main_r, urgent[CFG_URGENT_SLOTS_MAX];
    struct metrics *metrics = NULL;
    struct hk hk;
    char consumer[256], host[128] = "host", boot[17];
    unsigned slots = cfg->urgent_slots, started = 0;
    atomic_uint busy = 0;
    sigset_t block, old;
    enum wk_code rc;

    if (!cfg->store_url[0])
        return wk_err_set(err, WK_E_INVAL,
                          "SILA_STORE is not set (s3://bucket[/prefix] or "
                          "file:///path)");
    if (slots > CFG_URGENT_SLOTS_MAX)
        slots = CFG_URGENT_SLOTS_MAX;
    gethostname(host, sizeof(host) - 1);
    {
        /* the boot id tells this process from an earlier one of the same
         * pid (a container restarted) */
        struct timespec ts;
        uint64_t b;
        clock_gettime(CLOCK_REALTIME, &ts);
        b = ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)ts.tv_nsec ^
            ((uint64_t)getpid() << 40);
        snprintf(boot, sizeof(boot), "%08x%04x", (unsigned)(b ^ (b >> 32)),
                 (unsigned)(hb_mono_ms() & 0xffff));
    }
    snprintf(consumer, sizeof(consumer), "%s-%d-%s", host, (int)getpid(), boot);

    if (cfg->metrics_addr[0]) {
        rc = metrics_start(cfg, &metrics, err);
        if (rc != WK_OK)
            return rc;
    }
    runner_init(&main_r, cfg, stop, &busy, consumer, 0);
    if (hb_start(&main_r.hb, cfg, main_r.consumer, stop, err) != WK_OK) {
        metrics_stop(metrics);
        return err ? err->code : WK_E_INTERNAL;
    }
    /* The other threads leave SIGTERM and SIGINT to this one, which
     * receives them as before: their blocking calls are not interrupted. */
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    rc = hk_start(&hk, cfg, stop, err);
    for (unsigned i = 0; rc == WK_OK && i < slots; i++) {
        struct runner *u = &urgent[started];
        runner_init(u, cfg, stop, &busy, consumer, i + 1);
        if (pthread_create(&u->thread, NULL, runner_main, u) != 0) {
            /* fewer urgent runners, not no worker */
            WK_LOG(WK_LOG_ERROR, "runner.failed",
                   KV_STR("consumer", u->consumer),
                   KV_STR("msg", "cannot start the thread"));
            continue;
        }
        started++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != WK_OK) {
        hb_stop(&main_r.hb);
        metrics_stop(metrics);
        return rc;
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
               KV_INT("urgent_slots", started),
               KV_STR("encryption_key_id", seal_keyring_id(kr, 0)),
               KV_INT("encryption_keys", seal_keyring_count(kr)));
        seal_keyring_free(kr);
    }
    {
        /* what the bucket can do, found once and logged (s3.features);
         * a failure is retried by the first job that needs it */
        struct store *fst = NULL;
        struct wk_err ferr;
        unsigned fl = 0;
        wk_err_clear(&ferr);
        if (store_open_url(cfg->store_url, &cfg->store, &fst, &ferr) != WK_OK ||
            store_features(fst, &fl, &ferr) != WK_OK)
            WK_LOG(WK_LOG_WARN, "worker.features_unknown",
                   KV_STR("consumer", consumer), KV_STR("msg", ferr.msg));
        store_free(fst);
    }
    runner_loop(&main_r);
    /* *stop: each runner ends its job (the grace applies to each) */
    for (unsigned i = 0; i < started; i++)
        pthread_join(urgent[i].thread, NULL);
    hb_stop(&main_r.hb);
    hk_stop(&hk);
    metrics_stop(metrics);
    WK_LOG(WK_LOG_INFO, "worker.stopped", KV_STR("consumer", consumer));
    return WK_OK;
}
