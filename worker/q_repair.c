/* q_repair: the housekeeping of every worker process (its housekeeping
 * thread, worker_hk.c, whatever its runners are busy with): delayed jobs
 * whose time has come go back to their lanes (q_promote_delayed), and
 * running jobs whose queue entry was lost are queued again or failed for
 * good (q_repair). */
#include "worker/q_int.h"

#include <stdio.h>
#include <string.h>

#include "common/wk_log.h"
#include "worker/q_lua.h"

enum wk_code q_promote_delayed(struct q *q, unsigned *moved, struct wk_err *err)
{
    char delayed[128], normal[128], urgent[128], now[32];
    redisReply *rep;

    *moved = 0;
    q_key_delayed(q->prefix, delayed, sizeof(delayed));
    q_key_lane(q->prefix, false, normal, sizeof(normal));
    q_key_lane(q->prefix, true, urgent, sizeof(urgent));
    snprintf(now, sizeof(now), "%llu", q_now_ms());
    const char *argv[] = { "EVAL", q_lua_promote, "3", delayed,
                           normal, urgent,        now };
    rep = q_cmds(q, err, "promote", 7, argv);
    if (!rep)
        return err ? err->code : WK_E_NET;
    if (rep->type == REDIS_REPLY_INTEGER && rep->integer > 0)
        *moved = (unsigned)rep->integer;
    freeReplyObject(rep);
    return WK_OK;
}

/* One candidate of q_repair: its id, what its hash said, and its keys. */
struct repair_cand {
    char id[JOB_ID_MAX + 1];
    char type[64];
    char space_id[JOB_SPACE_ID_MAX + 1];
    bool seen; /* type and spaceId both present */
    char hash[JOB_ID_MAX + 80];
    char dedup[JOB_SPACE_ID_MAX + 160];
    char chan[JOB_SPACE_ID_MAX + 80];
};

/* Step one: the members of the running index not looked at for a lease,
 * with the type and spaceId of each (the script checks both again). */
static enum wk_code repair_candidates(struct q *q, const char *running,
                                      unsigned long long max_score,
                                      struct repair_cand *c, size_t *n,
                                      struct wk_err *err)
{
    char max[32], batch[8];
    redisReply *rep;

    *n = 0;
    snprintf(max, sizeof(max), "%llu", max_score);
    snprintf(batch, sizeof(batch), "%d", Q_REPAIR_BATCH);
    const char *argv[] = { "ZRANGEBYSCORE", running, "-inf", max,
                           "LIMIT",         "0",     batch };
    rep = q_cmds(q, err, "repair", 7, argv);
    if (!rep)
        return err ? err->code : WK_E_NET;
    for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i < rep->elements &&
                       *n < Q_REPAIR_BATCH;
         i++) {
        const redisReply *id = rep->element[i];
        if (id->type != REDIS_REPLY_STRING || id->len > JOB_ID_MAX ||
            strlen(id->str) != id->len)
            continue; /* not an id this worker wrote: left alone */
        memset(&c[*n], 0, sizeof(c[*n]));
        memcpy(c[*n].id, id->str, id->len + 1);
        (*n)++;
    }
    freeReplyObject(rep);
    for (size_t i = 0; i < *n; i++) {
        struct repair_cand *k = &c[i];
        q_key_job(q->prefix, k->id, k->hash, sizeof(k->hash));
        const char *hargv[] = { "HMGET", k->hash, "type", "spaceId" };
        rep = q_cmds(q, err, "repair", 4, hargv);
        if (!rep)
            return err ? err->code : WK_E_NET;
        k->seen = rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
                  rep->element[0]->type == REDIS_REPLY_STRING &&
                  rep->element[1]->type == REDIS_REPLY_STRING &&
                  rep->element[0]->len < sizeof(k->type) &&
                  rep->element[1]->len < sizeof(k->space_id);
        if (k->seen) {
            memcpy(k->type, rep->element[0]->str, rep->element[0]->len + 1);
            memcpy(k->space_id, rep->element[1]->str, rep->element[1]->len + 1);
            q_key_dedup(q->prefix, k->type, k->space_id, k->dedup,
                        sizeof(k->dedup));
            q_key_space(q->prefix, k->space_id, k->chan, sizeof(k->chan));
        } else { /* not used by the script: any key of this job's */
            snprintf(k->dedup, sizeof(k->dedup), "%s", k->hash);
            snprintf(k->chan, sizeof(k->chan), "%s", k->hash);
        }
        freeReplyObject(rep);
    }
    return WK_OK;
}

enum wk_code q_repair(struct q *q, unsigned lease_ms, unsigned max_attempts,
                      unsigned *requeued, unsigned *failed, struct wk_err *err)
{
    char running[128], normal[128], urgent[128], dead[128], audit[128];
    char now_ms[32], now[40], lease[16], maxa[16], audmax[16], nkeys[8];
    struct repair_cand c[Q_REPAIR_BATCH];
    const char *argv[3 + 5 + 3 * Q_REPAIR_BATCH + 6 + 4 * Q_REPAIR_BATCH];
    size_t lens[sizeof(argv) / sizeof(argv[0])];
    unsigned long long ms = q_now_ms();
    size_t n = 0;
    int argc = 0;
    redisReply *rep;
    enum wk_code rc;

    *requeued = *failed = 0;
    q_key_running(q->prefix, running, sizeof(running));
    rc = repair_candidates(q, running, ms > lease_ms ? ms - lease_ms : 0, c, &n,
                           err);
    if (rc != WK_OK || n == 0)
        return rc;
    q_key_lane(q->prefix, false, normal, sizeof(normal));
    q_key_lane(q->prefix, true, urgent, sizeof(urgent));
    q_key_dead(q->prefix, dead, sizeof(dead));
    q_key_audit(q->prefix, audit, sizeof(audit));
    snprintf(now_ms, sizeof(now_ms), "%llu", ms);
    q_now_rfc3339(now, sizeof(now));
    snprintf(lease, sizeof(lease), "%u", lease_ms);
    snprintf(maxa, sizeof(maxa), "%u", max_attempts);
    snprintf(audmax, sizeof(audmax), "%d", Q_AUDIT_MAX);
    snprintf(nkeys, sizeof(nkeys), "%zu", 5 + 3 * n);
    argv[argc++] = "EVAL";
    argv[argc++] = q_lua_repair;
    argv[argc++] = nkeys;
    argv[argc++] = running;
    argv[argc++] = normal;
    argv[argc++] = urgent;
    argv[argc++] = dead;
    argv[argc++] = audit;
    for (size_t i = 0; i < n; i++) {
        argv[argc++] = c[i].hash;
        argv[argc++] = c[i].dedup;
        argv[argc++] = c[i].chan;
    }
    argv[argc++] = now_ms;
    argv[argc++] = lease;
    argv[argc++] = maxa;
    argv[argc++] = now;
    argv[argc++] = Q_GROUP;
    argv[argc++] = audmax;
    for (size_t i = 0; i < n; i++) {
        argv[argc++] = c[i].id;
        argv[argc++] = c[i].seen ? "1" : "0";
        argv[argc++] = c[i].type;
        argv[argc++] = c[i].space_id;
    }
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    rep = q_cmd(q, err, "repair", argc, argv, lens);
    if (!rep)
        return err ? err->code : WK_E_NET;
    for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i + 1 < rep->elements;
         i += 2) {
        const redisReply *id = rep->element[i], *what = rep->element[i + 1];
        bool req;
        if (id->type != REDIS_REPLY_STRING || what->type != REDIS_REPLY_STRING)
            continue;
        req = strcmp(what->str, "requeued") == 0;
        if (req)
            (*requeued)++;
        else
            (*failed)++;
        WK_LOG(req ? WK_LOG_WARN : WK_LOG_ERROR, "queue.job_repaired",
               KV_STR("job_id", id->str), KV_STR("action", what->str));
    }
    freeReplyObject(rep);
    return WK_OK;
}
