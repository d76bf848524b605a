/* prog_redis: the progress sink that writes the status hash and
 * publishes on the job's channel (see prog_redis.h). */
#include "worker/prog_redis.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/wk_log.h"
#include "worker/q.h"

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

static const struct prog_sink_ops prog_redis_ops = {
    .update = pr_update,
    .checkpoint = pr_checkpoint,
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
    pr->bytes_total = pr->files_total = 0;
}

void prog_checkpoint_clear(struct prog_redis *pr)
{
    pr_checkpoint(&pr->base, "");
}
