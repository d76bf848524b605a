/* q_yield: preemption requests between jobs of one space. An urgent job
 * that finds its space locked by a background job (normal lane, archive or
 * migrate, running) records in the holder's status hash that it asks it to
 * yield (field yieldRequested: "<urgent job id> <ms>"); the holder's
 * heartbeat takes the request (q_yield_take) and cancels its job at its
 * next safe point. */
#include "worker/q_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/q_lock.h"

#define Q_YIELD_FIELD "yieldRequested"

enum wk_code q_ask_yield(struct q *q, const char *space_id, const char *by,
                         char holder_out[JOB_ID_MAX + 1], bool *asked,
                         struct wk_err *err)
{
    char lock[JOB_SPACE_ID_MAX + 80], key[JOB_ID_MAX + 80];
    char holder[JOB_ID_MAX + 1] = "", val[JOB_ID_MAX + 32];
    const char *slash;
    redisReply *rep;
    bool yieldable = false;

    *asked = false;
    holder_out[0] = '\0';
    if (!q_key_lock(q->prefix, space_id, lock, sizeof(lock)))
        return wk_err_set(err, WK_E_INVAL, "space id too long");
    {
        const char *argv[] = { "GET", lock };
        rep = q_cmds(q, err, "yield", 2, argv);
    }
    if (!rep)
        return err ? err->code : WK_E_NET;
    /* the token is "<consumer>/<job id>" */
    if (rep->type == REDIS_REPLY_STRING && (slash = strrchr(rep->str, '/')) &&
        strlen(slash + 1) <= JOB_ID_MAX && job_id_valid(slash + 1))
        snprintf(holder, sizeof(holder), "%s", slash + 1);
    freeReplyObject(rep);
    if (!holder[0] || strcmp(holder, by) == 0 ||
        !q_key_job(q->prefix, holder, key, sizeof(key)))
        return WK_OK;
    {
        const char *argv[] = { "HMGET", key, "state", "lane", "type" };
        rep = q_cmds(q, err, "yield", 5, argv);
    }
    if (!rep)
        return err ? err->code : WK_E_NET;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 &&
        rep->element[0]->type == REDIS_REPLY_STRING &&
        rep->element[1]->type == REDIS_REPLY_STRING &&
        rep->element[2]->type == REDIS_REPLY_STRING)
        yieldable = strcmp(rep->element[0]->str, "running") == 0 &&
                    strcmp(rep->element[1]->str, "jobs") == 0 &&
                    (strcmp(rep->element[2]->str, "archive") == 0 ||
                     strcmp(rep->element[2]->str, "migrate") == 0);
    freeReplyObject(rep);
    if (!yieldable)
        return WK_OK;
    snprintf(val, sizeof(val), "%s %llu", by, q_now_ms());
    {
        const char *argv[] = { "HSET", key, Q_YIELD_FIELD, val };
        if (q_cmds_ok(q, err, "yield", 4, argv) != WK_OK)
            return err ? err->code : WK_E_NET;
    }
    snprintf(holder_out, JOB_ID_MAX + 1, "%s", holder);
    *asked = true;
    return WK_OK;
}

enum wk_code q_yield_take(struct q *q, const char *job_id, unsigned max_age_ms,
                          char by_out[JOB_ID_MAX + 1], bool *got,
                          struct wk_err *err)
{
    char key[JOB_ID_MAX + 80], val[JOB_ID_MAX + 32] = "";
    const char *sp;
    redisReply *rep;
    unsigned long long at, now = q_now_ms();

    *got = false;
    by_out[0] = '\0';
    if (!q_key_job(q->prefix, job_id, key, sizeof(key)))
        return wk_err_set(err, WK_E_INVAL, "job id too long");
    {
        const char *argv[] = { "HGET", key, Q_YIELD_FIELD };
        rep = q_cmds(q, err, "yield", 3, argv);
    }
    if (!rep)
        return err ? err->code : WK_E_NET;
    if (rep->type == REDIS_REPLY_STRING && rep->len < sizeof(val))
        memcpy(val, rep->str, rep->len + 1);
    freeReplyObject(rep);
    if (!val[0])
        return WK_OK;
    {
        const char *argv[] = { "HDEL", key, Q_YIELD_FIELD };
        if (q_cmds_ok(q, err, "yield", 3, argv) != WK_OK)
            return err ? err->code : WK_E_NET;
    }
    /* a request older than max_age_ms is stale (its asker gave up) */
    sp = strchr(val, ' ');
    if (!sp || (size_t)(sp - val) > JOB_ID_MAX)
        return WK_OK;
    at = strtoull(sp + 1, NULL, 10);
    if (at > now + 1000 || now - at > max_age_ms)
        return WK_OK;
    memcpy(by_out, val, (size_t)(sp - val));
    by_out[sp - val] = '\0';
    *got = true;
    return WK_OK;
}
