/* prog_redis: the progress sink that writes the status hash and
 * publishes on the job's channel, and a restore's milestones, wanted paths
 * and answers on the space's (see prog_redis.h). */
#include "worker/prog_redis.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/wk_log.h"
#include "common/wk_parse.h"
#include "worker/q.h"
#include "worker/q_int.h" /* (the command helpers: q_cmds, q_exec_tx) */

static void pr_update(struct prog_sink *s, const struct prog_state *st)
{
    struct prog_redis *pr = (struct prog_redis *)s;
    char pct[8], bd[24], bt[24], fd[24], ft[24];
    struct wk_err err;
    json_t *ev;
    char *evs;

    pr->bytes_total = st->bytes_total;
    pr->files_total = st->files_total;
    snprintf(pct, sizeof(pct), "%d", st->progress);
    snprintf(bd, sizeof(bd), "%llu", (unsigned long long)st->bytes_done);
    snprintf(bt, sizeof(bt), "%llu", (unsigned long long)st->bytes_total);
    snprintf(fd, sizeof(fd), "%llu", (unsigned long long)st->files_done);
    snprintf(ft, sizeof(ft), "%llu", (unsigned long long)st->files_total);
    const char *fields[] = { "progress",   pct, "bytesDone", bd,
                             "bytesTotal", bt,  "filesDone", fd,
                             "filesTotal", ft,  "phase",     st->phase,
                             NULL };
    wk_err_clear(&err);
    if (q_hset(pr->q, pr->job_id, fields, &err) != WK_OK) {
        WK_LOG(WK_LOG_WARN, "progress.update_failed",
               KV_STR("job_id", pr->job_id), KV_STR("msg", err.msg));
        return;
    }
    ev = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:I, s:I, s:I, s:I}",
                   "jobId", pr->job_id, "state", "running", "type", pr->type,
                   "spaceId", pr->space_id, "phase", st->phase, "progress",
                   st->progress, "bytesDone", (json_int_t)st->bytes_done,
                   "bytesTotal", (json_int_t)st->bytes_total, "filesDone",
                   (json_int_t)st->files_done, "filesTotal",
                   (json_int_t)st->files_total);
    evs = ev ? json_dumps(ev, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(ev);
    if (evs && q_publish(pr->q, pr->job_id, evs, &err) != WK_OK)
        WK_LOG(WK_LOG_WARN, "progress.publish_failed",
               KV_STR("job_id", pr->job_id), KV_STR("msg", err.msg));
    free(evs);
}

/* The status hash's "upload" field. */
static void pr_checkpoint(struct prog_sink *s, const char *json)
{
    struct prog_redis *pr = (struct prog_redis *)s;
    const char *fields[] = { "upload", json, NULL };
    struct wk_err err;

    wk_err_clear(&err);
    pr->checkpointed = json[0] != '\0';
    if (q_hset(pr->q, pr->job_id, fields, &err) != WK_OK)
        WK_LOG(WK_LOG_WARN, "progress.checkpoint_failed",
               KV_STR("job_id", pr->job_id), KV_STR("msg", err.msg));
}

/* o (taken) as compact JSON text (free()), or NULL. */
static char *space_event(json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    return s;
}

static void pr_milestone(struct prog_sink *s, enum prog_milestone m, int64_t ms)
{
    struct prog_redis *pr = (struct prog_redis *)s;
    struct q_tx_cmd cmds[5];
    char key[256], chan[256], sample[160], now[40], num[24], ttl[16];
    struct wk_err err;
    char *ev = NULL;
    int n = 0;
    bool ready = m == PROG_READY;

    /* ms counts from the request: the job reckons it from
     * job_ctx.requested_ms, the status hash's createdAt */
    memset(cmds, 0, sizeof(cmds));
    q_key_job(pr->q->prefix, pr->job_id, key, sizeof(key));
    q_now_rfc3339(now, sizeof(now));
    snprintf(num, sizeof(num), "%lld", (long long)ms);
    snprintf(ttl, sizeof(ttl), "%d", 7200);
    q_tx_add(&cmds[n], "HSET");
    q_tx_add(&cmds[n], key);
    if (ready) {
        q_tx_add(&cmds[n], "readyAt");
        q_tx_add(&cmds[n], now);
    }
    q_tx_add(&cmds[n], ready ? "timeToReadyMs" : "timeToCompleteMs");
    q_tx_add(&cmds[n], num);
    n++;
    if (ready) {
        ev = space_event(json_pack("{s:s, s:s, s:s, s:I}", "event", "ready",
                                   "spaceId", pr->space_id, "jobId", pr->job_id,
                                   "timeToReadyMs", (json_int_t)ms));
        if (ev) {
            q_key_space(pr->q->prefix, pr->space_id, chan, sizeof(chan));
            q_tx_add(&cmds[n], "PUBLISH");
            q_tx_add(&cmds[n], chan);
            q_tx_add(&cmds[n], ev);
            n++;
        }
        q_key_ttr(pr->q->prefix, time(NULL), sample, sizeof(sample));
    } else {
        q_key_ttc(pr->q->prefix, time(NULL), sample, sizeof(sample));
    }
    q_tx_add(&cmds[n], "RPUSH");
    q_tx_add(&cmds[n], sample);
    q_tx_add(&cmds[n], num);
    n++;
    q_tx_add(&cmds[n], "EXPIRE");
    q_tx_add(&cmds[n], sample);
    q_tx_add(&cmds[n], ttl);
    n++;
    wk_err_clear(&err);
    if (q_exec_tx(pr->q, cmds, n, ready ? "ready" : "complete", &err) != WK_OK)
        WK_LOG(WK_LOG_WARN, "progress.milestone_failed",
               KV_STR("job_id", pr->job_id),
               KV_STR("milestone", ready ? "ready" : "complete"),
               KV_STR("msg", err.msg));
    free(ev);
}

static void pr_served(struct prog_sink *s, const char *path, bool found);

static size_t pr_wants(struct prog_sink *s, char (*out)[PROG_WANT_PATH_MAX + 1],
                       size_t max)
{
    struct prog_redis *pr = (struct prog_redis *)s;
    char key[256], cnt[24];
    const char *argv[3];
    struct wk_err err;
    redisReply *rep;
    size_t n = 0;

    if (pr->wants_failed || max == 0)
        return 0;
    q_key_want(pr->q->prefix, pr->space_id, key, sizeof(key));
    snprintf(cnt, sizeof(cnt), "%zu", max);
    argv[0] = "LPOP";
    argv[1] = key;
    argv[2] = cnt;
    wk_err_clear(&err);
    rep = q_cmds(pr->q, &err, "LPOP", 3, argv);
    if (!rep) {
        /* (a Redis before 6.2 has no count: nothing is ever served) */
        pr->wants_failed = true;
        WK_LOG(WK_LOG_WARN, "progress.wants_failed",
               KV_STR("job_id", pr->job_id), KV_STR("msg", err.msg));
        return 0;
    }
    for (size_t i = 0;
         rep->type == REDIS_REPLY_ARRAY && i < rep->elements && n < max; i++) {
        const redisReply *e = rep->element[i];
        if (e->type != REDIS_REPLY_STRING)
            continue;
        if (e->len > PROG_WANT_PATH_MAX || memchr(e->str, '\0', e->len)) {
            /* no such entry can exist: answered at once */
            WK_LOG(WK_LOG_WARN, "progress.want_refused",
                   KV_STR("job_id", pr->job_id), KV_INT("bytes", e->len));
            pr_served(s, e->str, false);
            continue;
        }
        memcpy(out[n], e->str, e->len);
        out[n][e->len] = '\0';
        n++;
    }
    freeReplyObject(rep);
    return n;
}

static void pr_served(struct prog_sink *s, const char *path, bool found)
{
    struct prog_redis *pr = (struct prog_redis *)s;
    char chan[256];
    const char *argv[3];
    struct wk_err err;
    char *ev = space_event(json_pack("{s:s, s:s, s:s, s:s, s:b}", "event",
                                     "served", "spaceId", pr->space_id, "jobId",
                                     pr->job_id, "path", path, "found", found));

    if (!ev)
        return;
    q_key_space(pr->q->prefix, pr->space_id, chan, sizeof(chan));
    argv[0] = "PUBLISH";
    argv[1] = chan;
    argv[2] = ev;
    wk_err_clear(&err);
    if (q_cmds_ok(pr->q, &err, "PUBLISH", 3, argv) != WK_OK)
        WK_LOG(WK_LOG_WARN, "progress.served_failed",
               KV_STR("job_id", pr->job_id), KV_STR("msg", err.msg));
    free(ev);
}

static const struct prog_sink_ops prog_redis_ops = {
    .update = pr_update,
    .checkpoint = pr_checkpoint,
    .milestone = pr_milestone,
    .wants = pr_wants,
    .served = pr_served,
};

void prog_redis_init(struct prog_redis *pr, struct q *q, const char *job_id,
                     const char *type, const char *space_id)
{
    pr->base.ops = &prog_redis_ops;
    pr->q = q;
    pr->job_id = job_id;
    pr->type = type;
    pr->space_id = space_id;
    pr->checkpointed = false;
    pr->wants_failed = false;
    pr->bytes_total = pr->files_total = 0;
}

void prog_checkpoint_clear(struct prog_redis *pr)
{
    pr_checkpoint(&pr->base, "");
}
