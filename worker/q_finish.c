/* q_finish: the end of a run: q_finish (status hash, final event, the
 * space's channel ("complete" or "failed" of an unarchive), dedup release, dead
 * letter, audit trail (with the run's S3 requests), throughput and request
 * counters and only then XACK, in one transaction) and q_requeue (back into
 * the delayed set for a retry, a busy lock or a shutdown). */
#include "worker/q_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/wk_log.h"
#include "worker/acct.h"
#include "worker/q_lua.h"

/* KEYS[1] the minute's stats hash, KEYS[2] the day's; ARGV[1], ARGV[2]
 * their TTLs in seconds, then field, increment pairs added to both. */
static const char lua_stats_add[] =
    "for i = 3, #ARGV, 2 do\n"
    "  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])\n"
    "  redis.call('HINCRBY', KEYS[2], ARGV[i], ARGV[i + 1])\n"
    "end\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[1])\n"
    "redis.call('EXPIRE', KEYS[2], ARGV[2])\n"
    "return 0\n";

#define STATS_DAY_TTL_S (8 * 86400) /* `stats` shows today and yesterday */
#define STATS_FIELD_MAX 96
#define STATS_PAIRS     (STORE_REQ_OPS_MAX + 4)

/* The request counters of one run, as field/increment pairs of
 * lua_stats_add: jobs:<type>, req:<type>:<op>, retries:<type>,
 * bytesIn:<type>, bytesOut:<type> (docs/PROTOCOL.md). */
struct stats_args {
    char field[STATS_PAIRS][STATS_FIELD_MAX];
    char num[STATS_PAIRS][24];
    size_t n;
};

static void stats_pair(struct stats_args *a, const char *type, const char *what,
                       const char *op, uint64_t n)
{
    if (a->n == STATS_PAIRS)
        return;
    if (op)
        snprintf(a->field[a->n], STATS_FIELD_MAX, "%s:%s:%s", what, type, op);
    else
        snprintf(a->field[a->n], STATS_FIELD_MAX, "%s:%s", what, type);
    snprintf(a->num[a->n], sizeof(a->num[0]), "%llu", (unsigned long long)n);
    a->n++;
}

enum wk_code q_finish(struct q *q, const struct q_msg *m, const char *type,
                      const char *space_id, bool ok, const char *error,
                      const char *result_json, bool dead,
                      const struct q_done *done, struct wk_err *err)
{
    char key[256], now[40], ttl[16], dedup[256], chan[256], deadkey[128];
    char auditkey[128], audmax[16], statkey[160], nbytes[24], nfiles[24];
    char ms[24], who[JOB_ID_MAX + 1] = "", running[128];
    char dstatkey[160], minttl[16], dayttl[16], nretries[24], nin[24];
    char nout[24], cost[32];
    struct q_tx_cmd cmds[14];
    int ncmd = 5;
    char *sev = NULL;
    struct stats_args *sa = calloc(1, sizeof(*sa));
    struct wk_buf reqs;
    json_t *ev = json_object();
    char *evs = NULL;
    enum wk_code rc;

    q_key_job(q->prefix, m->job_id, key, sizeof(key));
    q_now_rfc3339(now, sizeof(now));
    snprintf(ttl, sizeof(ttl), "%d", Q_STATUS_TTL_S);

    json_object_set_new(ev, "jobId", json_string(m->job_id));
    json_object_set_new(ev, "state", json_string(ok ? "succeeded" : "failed"));
    if (type)
        json_object_set_new(ev, "type", json_string(type));
    if (space_id)
        json_object_set_new(ev, "spaceId", json_string(space_id));
    if (ok) {
        json_t *res = result_json ? json_loads(result_json, 0, NULL) : NULL;
        json_object_set_new(ev, "progress", json_integer(100));
        json_object_set_new(ev, "result", res ? res : json_object());
    } else {
        json_t *e = json_string(error ? error : "failed");
        json_object_set_new(ev, "error", e ? e : json_string("failed"));
    }
    evs = json_dumps(ev, JSON_COMPACT | JSON_PRESERVE_ORDER |
                             JSON_REAL_PRECISION(10));
    json_decref(ev);
    wk_buf_init(&reqs, 4096);
    if (!evs || !sa ||
        (done && done->requests &&
         acct_requests_text(done->requests, &reqs, err) != WK_OK)) {
        free(evs);
        free(sa);
        wk_buf_release(&reqs);
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    }

    memset(cmds, 0, sizeof(cmds));
    q_tx_add(&cmds[0], "HSET");
    q_tx_add(&cmds[0], key);
    q_tx_add(&cmds[0], "state");
    q_tx_add(&cmds[0], ok ? "succeeded" : "failed");
    q_tx_add(&cmds[0], "finishedAt");
    q_tx_add(&cmds[0], now);
    q_tx_add(&cmds[0], "updatedAt");
    q_tx_add(&cmds[0], now);
    if (type) {
        q_tx_add(&cmds[0], "type");
        q_tx_add(&cmds[0], type);
    }
    if (space_id) {
        q_tx_add(&cmds[0], "spaceId");
        q_tx_add(&cmds[0], space_id);
    }
    if (ok) {
        q_tx_add(&cmds[0], "progress");
        q_tx_add(&cmds[0], "100");
        q_tx_add(&cmds[0], "result");
        q_tx_add(&cmds[0], result_json ? result_json : "{}");
        q_tx_add(&cmds[0], "error");
        q_tx_add(&cmds[0], "");
    } else {
        q_tx_add(&cmds[0], "error");
        q_tx_add(&cmds[0], error ? error : "failed");
    }
    q_tx_add(&cmds[1], "EXPIRE");
    q_tx_add(&cmds[1], key);
    q_tx_add(&cmds[1], ttl);
    q_tx_add(&cmds[2], "PUBLISH");
    q_tx_add(&cmds[2], key);
    q_tx_add(&cmds[2], evs);
    q_tx_add(&cmds[3], "XACK");
    q_tx_add(&cmds[3], m->stream);
    q_tx_add(&cmds[3], Q_GROUP);
    q_tx_add(&cmds[3], m->entry_id);
    q_key_running(q->prefix, running, sizeof(running));
    q_tx_add(&cmds[4], "ZREM");
    q_tx_add(&cmds[4], running);
    q_tx_add(&cmds[4], m->job_id);
    if (type && space_id) {
        /* this job no longer blocks a new one of its kind */
        q_key_dedup(q->prefix, type, space_id, dedup, sizeof(dedup));
        q_tx_add(&cmds[ncmd], "EVAL");
        q_tx_add(&cmds[ncmd], q_lua_del_if);
        q_tx_add(&cmds[ncmd], "1");
        q_tx_add(&cmds[ncmd], dedup);
        q_tx_add(&cmds[ncmd], m->job_id);
        ncmd++;
    }
    if (type && space_id && strcmp(type, "unarchive") == 0) {
        /* the app server waits on the space's channel, not on polling:
         * "ready" came earlier (the sink's READY milestone); this is
         * "complete" (every object in place) or "failed" */
        json_t *se =
            json_pack("{s:s, s:s, s:s}", "event", ok ? "complete" : "failed",
                      "spaceId", space_id, "jobId", m->job_id);
        if (se && !ok)
            json_object_set_new(se, "error",
                                json_string(error ? error : "failed"));
        if (se && ok && result_json) {
            json_t *res = json_loads(result_json, 0, NULL);
            json_t *ttc = json_object_get(res, "timeToCompleteMs");
            if (json_is_integer(ttc))
                json_object_set_new(se, "timeToCompleteMs",
                                    json_integer(json_integer_value(ttc)));
            json_decref(res);
        }
        sev = se ? json_dumps(se, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(se);
        if (sev) {
            q_key_space(q->prefix, space_id, chan, sizeof(chan));
            q_tx_add(&cmds[ncmd], "PUBLISH");
            q_tx_add(&cmds[ncmd], chan);
            q_tx_add(&cmds[ncmd], sev);
            ncmd++;
        }
    }
    if (!ok && dead) {
        /* out of attempts: kept for an operator ("jobs", "retry") */
        q_key_dead(q->prefix, deadkey, sizeof(deadkey));
        q_tx_add(&cmds[ncmd], "XADD");
        q_tx_add(&cmds[ncmd], deadkey);
        q_tx_add(&cmds[ncmd], "MAXLEN");
        q_tx_add(&cmds[ncmd], "~");
        q_tx_add(&cmds[ncmd], "10000");
        q_tx_add(&cmds[ncmd], "*");
        q_tx_add(&cmds[ncmd], "id");
        q_tx_add(&cmds[ncmd], m->job_id);
        q_tx_add(&cmds[ncmd], "job");
        q_tx_add(&cmds[ncmd], wk_buf_cstr(&m->json));
        q_tx_add(&cmds[ncmd], "error");
        q_tx_add(&cmds[ncmd], error ? error : "failed");
        q_tx_add(&cmds[ncmd], "failedAt");
        q_tx_add(&cmds[ncmd], now);
        ncmd++;
    }
    {
        /* who asked for it, when the spec says ("requestedBy") */
        json_t *spec =
            json_loadb(m->json.data ? m->json.data : "", m->json.len, 0, NULL);
        const char *rb =
            json_string_value(json_object_get(spec, "requestedBy"));
        if (rb)
            snprintf(who, sizeof(who), "%s", rb);
        json_decref(spec);
    }
    q_key_audit(q->prefix, auditkey, sizeof(auditkey));
    snprintf(audmax, sizeof(audmax), "%d", Q_AUDIT_MAX);
    snprintf(nbytes, sizeof(nbytes), "%llu",
             (unsigned long long)(done ? done->bytes : 0));
    snprintf(nfiles, sizeof(nfiles), "%llu",
             (unsigned long long)(done ? done->files : 0));
    snprintf(ms, sizeof(ms), "%lld", (long long)(done ? done->duration_ms : 0));
    q_tx_add(&cmds[ncmd], "XADD");
    q_tx_add(&cmds[ncmd], auditkey);
    q_tx_add(&cmds[ncmd], "MAXLEN");
    q_tx_add(&cmds[ncmd], "~");
    q_tx_add(&cmds[ncmd], audmax);
    q_tx_add(&cmds[ncmd], "*");
    q_tx_add(&cmds[ncmd], "at");
    q_tx_add(&cmds[ncmd], now);
    q_tx_add(&cmds[ncmd], "action");
    q_tx_add(&cmds[ncmd], type ? type : "unknown");
    q_tx_add(&cmds[ncmd], "outcome");
    q_tx_add(&cmds[ncmd], ok ? "succeeded" : "failed");
    q_tx_add(&cmds[ncmd], "spaceId");
    q_tx_add(&cmds[ncmd], space_id ? space_id : "");
    q_tx_add(&cmds[ncmd], "jobId");
    q_tx_add(&cmds[ncmd], m->job_id);
    q_tx_add(&cmds[ncmd], "worker");
    q_tx_add(&cmds[ncmd], done && done->worker ? done->worker : "");
    q_tx_add(&cmds[ncmd], "requestedBy");
    q_tx_add(&cmds[ncmd], who);
    q_tx_add(&cmds[ncmd], "files");
    q_tx_add(&cmds[ncmd], nfiles);
    q_tx_add(&cmds[ncmd], "bytes");
    q_tx_add(&cmds[ncmd], nbytes);
    q_tx_add(&cmds[ncmd], "durationMs");
    q_tx_add(&cmds[ncmd], ms);
    if (done && done->requests) {
        /* the run's bill, whatever its outcome */
        const struct store_requests *r = done->requests;
        snprintf(nretries, sizeof(nretries), "%llu",
                 (unsigned long long)r->retries);
        snprintf(nin, sizeof(nin), "%llu", (unsigned long long)r->bytes_in);
        snprintf(nout, sizeof(nout), "%llu", (unsigned long long)r->bytes_out);
        snprintf(cost, sizeof(cost), "%.6f", done->cost_usd);
        q_tx_add(&cmds[ncmd], "requests");
        q_tx_add(&cmds[ncmd], wk_buf_cstr(&reqs));
        q_tx_add(&cmds[ncmd], "requestRetries");
        q_tx_add(&cmds[ncmd], nretries);
        q_tx_add(&cmds[ncmd], "bytesIn");
        q_tx_add(&cmds[ncmd], nin);
        q_tx_add(&cmds[ncmd], "bytesOut");
        q_tx_add(&cmds[ncmd], nout);
        q_tx_add(&cmds[ncmd], "costUsd");
        q_tx_add(&cmds[ncmd], cost);
    }
    q_tx_add(&cmds[ncmd], ok ? "result" : "error");
    q_tx_add(&cmds[ncmd], ok ? (result_json ? result_json : "{}")
                             : (error ? error : "failed"));
    ncmd++;
    q_key_stats(q->prefix, time(NULL), statkey, sizeof(statkey));
    q_tx_add(&cmds[ncmd], "HINCRBY");
    q_tx_add(&cmds[ncmd], statkey);
    q_tx_add(&cmds[ncmd], ok ? "succeeded" : "failed");
    q_tx_add(&cmds[ncmd], "1");
    ncmd++;
    if (ok) {
        q_tx_add(&cmds[ncmd], "HINCRBY");
        q_tx_add(&cmds[ncmd], statkey);
        q_tx_add(&cmds[ncmd], "bytes");
        q_tx_add(&cmds[ncmd], nbytes);
        ncmd++;
        q_tx_add(&cmds[ncmd], "HINCRBY");
        q_tx_add(&cmds[ncmd], statkey);
        q_tx_add(&cmds[ncmd], "files");
        q_tx_add(&cmds[ncmd], nfiles);
        ncmd++;
    }
    q_tx_add(&cmds[ncmd], "EXPIRE");
    q_tx_add(&cmds[ncmd], statkey);
    q_tx_add(&cmds[ncmd], "7200");
    ncmd++;
    if (done && done->requests) {
        /* requests per job type: this minute's and this day's */
        const struct store_requests *r = done->requests;
        const char *t = type ? type : "unknown";
        stats_pair(sa, t, "jobs", NULL, 1);
        for (size_t i = 0; i < r->n_ops; i++)
            stats_pair(sa, t, "req", r->ops[i].op, r->ops[i].requests);
        stats_pair(sa, t, "retries", NULL, r->retries);
        stats_pair(sa, t, "bytesIn", NULL, r->bytes_in);
        stats_pair(sa, t, "bytesOut", NULL, r->bytes_out);
        q_key_stats_day(q->prefix, time(NULL), dstatkey, sizeof(dstatkey));
        snprintf(minttl, sizeof(minttl), "%d", 7200);
        snprintf(dayttl, sizeof(dayttl), "%d", STATS_DAY_TTL_S);
        q_tx_add(&cmds[ncmd], "EVAL");
        q_tx_add(&cmds[ncmd], lua_stats_add);
        q_tx_add(&cmds[ncmd], "2");
        q_tx_add(&cmds[ncmd], statkey);
        q_tx_add(&cmds[ncmd], dstatkey);
        q_tx_add(&cmds[ncmd], minttl);
        q_tx_add(&cmds[ncmd], dayttl);
        for (size_t i = 0; i < sa->n && cmds[ncmd].argc + 2 <= Q_MAX_ARGS;
             i++) {
            q_tx_add(&cmds[ncmd], sa->field[i]);
            q_tx_add(&cmds[ncmd], sa->num[i]);
        }
        ncmd++;
    }
    rc = q_exec_tx(q, cmds, ncmd, "finish", err);
    if (rc == WK_OK) /* the audit trail's line in the log too */
        WK_LOG(WK_LOG_INFO, "audit", KV_STR("action", type ? type : "unknown"),
               KV_STR("outcome", ok ? "succeeded" : "failed"),
               KV_STR("space_id", space_id ? space_id : ""),
               KV_STR("job_id", m->job_id),
               KV_STR("worker", done && done->worker ? done->worker : ""),
               KV_STR("requested_by", who), KV_STR("files", nfiles),
               KV_STR("bytes", nbytes), KV_STR("duration_ms", ms));
    free(evs);
    free(sev);
    free(sa);
    wk_buf_release(&reqs);
    return rc;
}

enum wk_code q_requeue(struct q *q, const struct q_msg *m, uint64_t delay_ms,
                       const char *const *fields, struct wk_err *err)
{
    char key[256], delayed[128], now[40], due[32], running[128];
    const char *argv[Q_MAX_ARGS];
    int argc = 0;
    json_t *mem = NULL;
    char *mems = NULL;
    redisReply *rep;

    q_key_job(q->prefix, m->job_id, key, sizeof(key));
    q_key_delayed(q->prefix, delayed, sizeof(delayed));
    q_key_running(q->prefix, running, sizeof(running));
    q_now_rfc3339(now, sizeof(now));
    snprintf(due, sizeof(due), "%llu", q_now_ms() + delay_ms);
    mem = json_pack("{s:s, s:s, s:s%}", "id", m->job_id, "lane",
                    q_lane_of(q, m), "job", wk_buf_cstr(&m->json), m->json.len);
    mems = mem ? json_dumps(mem, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(mem);
    if (!mems)
        return wk_err_set(err, WK_E_NOMEM, "cannot encode the job");
    argv[argc++] = "EVAL";
    argv[argc++] = q_lua_requeue;
    argv[argc++] = "4";
    argv[argc++] = key;
    argv[argc++] = delayed;
    argv[argc++] = m->stream;
    argv[argc++] = running;
    argv[argc++] = Q_GROUP;
    argv[argc++] = m->entry_id;
    argv[argc++] = q_lane_of(q, m);
    argv[argc++] = due;
    argv[argc++] = mems;
    argv[argc++] = m->job_id;
    for (int i = 0; fields && fields[i] && argc + 4 <= Q_MAX_FIELDS * 2;
         i += 2) {
        argv[argc++] = fields[i];
        argv[argc++] = fields[i + 1];
    }
    argv[argc++] = "updatedAt";
    argv[argc++] = now;
    rep = q_cmds(q, err, "requeue", argc, argv);
    free(mems);
    if (!rep)
        return err ? err->code : WK_E_NET;
    if (rep->type == REDIS_REPLY_INTEGER && rep->integer == 0)
        WK_LOG(WK_LOG_INFO, "job.duplicate_skipped",
               KV_STR("job_id", m->job_id), KV_STR("state", "running"),
               KV_STR("stream", m->stream));
    freeReplyObject(rep);
    return WK_OK;
}
