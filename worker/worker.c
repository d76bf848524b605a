#include "worker/worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/wk_log.h"
#include "jobs/job.h"
#include "storage/store.h"
#include "worker/prog_redis.h"
#include "worker/q.h"

#define WORKER_BACKOFF_MIN_MS 100
#define WORKER_BACKOFF_MAX_MS 5000
#define WORKER_RESULT_MAX     (64u * 1024u)

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

/* Record the outcome; keeps trying while Redis is away, so that a finished
 * job is not redone needlessly. Gives up only on stop. */
static void finish_job(struct q *q, const struct q_msg *m, const char *type,
                       const char *space_id, bool ok, const char *error,
                       const char *result, volatile sig_atomic_t *stop)
{
    unsigned delay = WORKER_BACKOFF_MIN_MS;
    for (int attempt = 0;; attempt++) {
        struct wk_err err;
        wk_err_clear(&err);
        if (q_finish(q, m, type, space_id, ok, error, result, &err) == WK_OK)
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
        if (q_reconnect(q, &err) != WK_OK)
            continue;
    }
}

static void run_one(const struct cfg *cfg, struct q *q, struct q_msg *m,
                    const char *consumer, volatile sig_atomic_t *stop)
{
    struct job job;
    struct job_ctx ctx;
    struct prog_redis pr;
    struct store *st = NULL;
    struct wk_buf result;
    struct wk_err err;
    struct timespec t0, t1;
    enum wk_code rc;
    const char *type = NULL, *space_id = NULL;

    wk_err_clear(&err);
    wk_buf_init(&result, WORKER_RESULT_MAX);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (m->job_id_ok) {
        /* A job put on both lanes (an urgent request for a queued job) is
         * delivered twice: the second delivery only acknowledges. */
        char state[32] = "";
        struct wk_err serr;
        wk_err_clear(&serr);
        if (q_state(q, m->job_id, state, sizeof(state), &serr) == WK_OK &&
            (strcmp(state, "running") == 0 || strcmp(state, "succeeded") == 0 ||
             strcmp(state, "failed") == 0)) {
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
    {
        char now[40];
        q_now_rfc3339(now, sizeof(now));
        const char *fields[] = { "state",  "running", "startedAt", now,
                                 "worker", consumer,  NULL };
        struct wk_err herr;
        wk_err_clear(&herr);
        if (q_hset(q, m->job_id, fields, &herr) != WK_OK)
            WK_LOG(WK_LOG_WARN, "job.status_failed",
                   KV_STR("job_id", m->job_id), KV_STR("msg", herr.msg));
    }
    WK_LOG(WK_LOG_INFO, "job.claimed", KV_STR("job_id", m->job_id),
           KV_STR("entry_id", m->entry_id));

    if (!m->job_id_ok) {
        rc =
            wk_err_set(&err, WK_E_INVAL,
                       "queue entry '%s' has no valid 'id' field", m->entry_id);
        goto out;
    }
    rc = job_parse(wk_buf_cstr(&m->json), m->json.len, &job, &err);
    if (rc != WK_OK)
        goto out;
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
    rc = store_open_url(cfg->store_url, &cfg->store, &st, &err);
    if (rc != WK_OK)
        goto out;
    prog_redis_init(&pr, q, job.id, type, job.space_id);
    memset(&ctx, 0, sizeof(ctx));
    ctx.store = st;
    ctx.sink = &pr.base;
    ctx.cfg = &cfg->job;
    ctx.cancel = NULL; /* a started job runs to its end (see PROTOCOL.md) */
    WK_LOG(WK_LOG_INFO, "job.started", KV_STR("job_id", job.id),
           KV_STR("type", type), KV_STR("space_id", job.space_id));
    rc = job_run(&job, &ctx, &result, &err);
out:
    clock_gettime(CLOCK_MONOTONIC, &t1);
    {
        long long ms = (long long)(t1.tv_sec - t0.tv_sec) * 1000 +
                       (t1.tv_nsec - t0.tv_nsec) / 1000000;
        if (rc == WK_OK)
            WK_LOG(WK_LOG_INFO, "job.succeeded", KV_STR("job_id", m->job_id),
                   KV_STR("type", type), KV_STR("space_id", space_id),
                   KV_INT("duration_ms", ms));
        else
            WK_LOG(WK_LOG_ERROR, "job.failed", KV_STR("job_id", m->job_id),
                   KV_STR("type", type), KV_STR("space_id", space_id),
                   KV_STR("code", wk_code_name(err.code)),
                   KV_INT("http_status", err.http_status),
                   KV_STR("msg", err.msg), KV_INT("duration_ms", ms));
    }
    finish_job(q, m, type, space_id, rc == WK_OK, err.msg,
               rc == WK_OK ? wk_buf_cstr(&result) : NULL, stop);
    store_free(st);
    wk_buf_release(&result);
}

enum wk_code worker_run(const struct cfg *cfg, volatile sig_atomic_t *stop,
                        struct wk_err *err)
{
    struct q *q = NULL;
    struct q_msg m;
    char consumer[256], host[128] = "host", boot[9];
    unsigned delay = WORKER_BACKOFF_MIN_MS;
    bool ready = false;
    enum wk_code rc = WK_OK;

    q_msg_init(&m);
    if (!cfg->store_url[0])
        return wk_err_set(err, WK_E_INVAL,
                          "SILA_STORE is not set (s3://bucket[/prefix] or "
                          "file:///path)");
    gethostname(host, sizeof(host) - 1);
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    snprintf(boot, sizeof(boot), "%08x", (unsigned)rand());
    snprintf(consumer, sizeof(consumer), "%s-%d-%s", host, (int)getpid(), boot);
    WK_LOG(WK_LOG_INFO, "worker.started", KV_STR("consumer", consumer),
           KV_STR("redis_host", cfg->redis.host),
           KV_INT("redis_port", cfg->redis.port));

    while (!*stop) {
        struct wk_err e;
        bool got = false;

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
            delay = WORKER_BACKOFF_MIN_MS;
            WK_LOG(WK_LOG_INFO, "queue.connected",
                   KV_STR("consumer", consumer));
        }
        if (q_claim(q, consumer, cfg->block_ms, &m, &got, &e) != WK_OK) {
            WK_LOG(WK_LOG_WARN, "queue.read_failed", KV_STR("msg", e.msg));
            q_free(q);
            q = NULL;
            backoff(&delay, stop);
            continue;
        }
        if (got)
            run_one(cfg, q, &m, consumer, stop);
    }
    WK_LOG(WK_LOG_INFO, "worker.stopped", KV_STR("consumer", consumer));
    q_free(q);
    q_msg_release(&m);
    return rc;
}
