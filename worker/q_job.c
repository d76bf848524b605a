/* q_job: a job's status hash and its start: the deduplicated enqueue, the
 * begin of a run (attempt count, running index), reads and writes of the
 * hash and its channel, the status as JSON, and the retry of a failed job
 * by an operator. */
#include "worker/q_int.h"
#include "worker/q_report.h"

#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/wk_parse.h"
#include "worker/q_lua.h"

/* Tries of the enqueue when the dedup key changes between its read and
 * the script (another enqueue or a finish in between). */
#define Q_ENQUEUE_TRIES 100

enum wk_code q_enqueue(struct q *q, const struct q_spec *spec,
                       char id_out[JOB_ID_MAX + 1], bool *created,
                       struct wk_err *err)
{
    char id[33], dedup[256], key[256], stream[128], urgent[128], now[40];
    char cur[512], curkey[640]; /* a dedup value is a job id */
    json_t *js = NULL;
    char *json = NULL;
    redisReply *rep = NULL;
    enum wk_code rc;

    *created = false;
    rc = q_random_hex(id, 16, err);
    if (rc != WK_OK)
        return rc;
    js = json_pack("{s:s, s:s, s:s}", "id", id, "type", spec->type, "spaceId",
                   spec->space_id);
    if (js && spec->urgent)
        json_object_set_new(js, "priority", json_string("urgent"));
    if (js && spec->archive_key && spec->archive_key[0])
        json_object_set_new(js, "archiveKey", json_string(spec->archive_key));
    if (js && spec->source && spec->source[0])
        json_object_set_new(js, "source", json_string(spec->source));
    if (js && spec->target && spec->target[0])
        json_object_set_new(js, "target", json_string(spec->target));
    if (js && spec->overwrite)
        json_object_set_new(js, "overwrite", json_true());
    if (js && spec->requested_by && spec->requested_by[0])
        json_object_set_new(js, "requestedBy", json_string(spec->requested_by));
    json = js ? json_dumps(js, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(js);
    if (!json)
        return wk_err_set(err, WK_E_INVAL, "cannot encode the job as JSON");
    q_key_dedup(q->prefix, spec->type, spec->space_id, dedup, sizeof(dedup));
    q_key_job(q->prefix, id, key, sizeof(key));
    q_key_lane(q->prefix, spec->urgent, stream, sizeof(stream));
    q_key_lane(q->prefix, true, urgent, sizeof(urgent));
    q_now_rfc3339(now, sizeof(now));
    for (int tries = 0;; tries++) {
        /* the job the dedup key names now: its hash goes into KEYS; the
         * script checks that the key still names it */
        const char *gargv[] = { "GET", dedup };
        rep = q_cmds(q, err, "enqueue", 2, gargv);
        if (!rep)
            break;
        snprintf(cur, sizeof(cur), "%s",
                 rep->type == REDIS_REPLY_STRING ? rep->str : "");
        if (rep->type == REDIS_REPLY_STRING)
            q_key_job(q->prefix, cur, curkey, sizeof(curkey));
        else
            snprintf(curkey, sizeof(curkey), "%s", key);
        freeReplyObject(rep);
        const char *argv[] = {
            "EVAL", q_lua_enqueue, "5",
            dedup,  key,           stream,
            urgent, curkey,        id,
            json,   spec->type,    spec->space_id,
            now,    cur,           spec->urgent ? "urgent" : "normal"
        };
        rep = q_cmds(q, err, "enqueue", (int)(sizeof(argv) / sizeof(argv[0])),
                     argv);
        if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
            rep->element[1]->type != REDIS_REPLY_INTEGER ||
            rep->element[1]->integer != Q_LUA_STALE)
            break;
        freeReplyObject(rep);
        rep = NULL;
        if (tries + 1 >= Q_ENQUEUE_TRIES) {
            free(json);
            return wk_err_set(err, WK_E_NET,
                              "redis enqueue: the dedup key keeps changing");
        }
    }
    free(json);
    if (!rep)
        return err ? err->code : WK_E_NET;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_STRING ||
        rep->element[0]->len > JOB_ID_MAX) {
        rc = wk_err_set(err, WK_E_INTERNAL, "redis enqueue: bad reply");
    } else {
        memcpy(id_out, rep->element[0]->str, rep->element[0]->len);
        id_out[rep->element[0]->len] = '\0';
        *created = rep->element[1]->type == REDIS_REPLY_INTEGER &&
                   rep->element[1]->integer == 1;
    }
    freeReplyObject(rep);
    return rc;
}

enum wk_code q_state(struct q *q, const char *job_id, char *buf, size_t len,
                     struct wk_err *err)
{
    return q_field(q, job_id, "state", buf, len, err);
}

enum wk_code q_field(struct q *q, const char *job_id, const char *field,
                     char *buf, size_t len, struct wk_err *err)
{
    char key[256];
    redisReply *rep;

    q_key_job(q->prefix, job_id, key, sizeof(key));
    const char *argv[] = { "HGET", key, field };
    rep = q_cmds(q, err, "HGET", 3, argv);
    if (!rep)
        return err ? err->code : WK_E_NET;
    snprintf(buf, len, "%s", rep->type == REDIS_REPLY_STRING ? rep->str : "");
    freeReplyObject(rep);
    return WK_OK;
}

enum wk_code q_delivery_state(struct q *q, const struct q_msg *m, char *buf,
                              size_t len, bool *recorded, bool *ours,
                              struct wk_err *err)
{
    char key[256];
    redisReply *rep;
    const redisReply *st, *lane, *entry;

    *recorded = *ours = false;
    q_key_job(q->prefix, m->job_id, key, sizeof(key));
    const char *argv[] = { "HMGET", key, "state", "lane", "entry" };
    rep = q_cmds(q, err, "HMGET", 5, argv);
    if (!rep)
        return err ? err->code : WK_E_NET;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3) {
        freeReplyObject(rep);
        return wk_err_set(err, WK_E_INTERNAL, "redis HMGET: bad reply");
    }
    st = rep->element[0];
    lane = rep->element[1];
    entry = rep->element[2];
    snprintf(buf, len, "%s", st->type == REDIS_REPLY_STRING ? st->str : "");
    if (entry->type == REDIS_REPLY_STRING && entry->str[0]) {
        *recorded = true;
        *ours = lane->type == REDIS_REPLY_STRING &&
                strcmp(lane->str, q_lane_of(q, m)) == 0 &&
                strcmp(entry->str, m->entry_id) == 0;
    }
    freeReplyObject(rep);
    return WK_OK;
}

/* KEYS: job hash, running index. ARGV: consumer, now RFC 3339, now ms,
 * max attempts, lane, entry id, job id. Returns {began 0|1, attempts}. */
enum wk_code q_begin(struct q *q, const struct q_msg *m, const char *consumer,
                     unsigned max_attempts, bool *began, unsigned *attempts,
                     struct wk_err *err)
{
    char key[256], running[128], now[40], ms[32], maxa[16];
    redisReply *rep;
    enum wk_code rc = WK_OK;

    *began = false;
    *attempts = 0;
    q_key_job(q->prefix, m->job_id, key, sizeof(key));
    q_key_running(q->prefix, running, sizeof(running));
    q_now_rfc3339(now, sizeof(now));
    snprintf(ms, sizeof(ms), "%llu", q_now_ms());
    snprintf(maxa, sizeof(maxa), "%u", max_attempts);
    const char *argv[] = { "EVAL",  q_lua_begin,     "2",         key,
                           running, consumer,        now,         ms,
                           maxa,    q_lane_of(q, m), m->entry_id, m->job_id };
    rep = q_cmds(q, err, "begin", (int)(sizeof(argv) / sizeof(argv[0])), argv);
    if (!rep)
        return err ? err->code : WK_E_NET;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER ||
        rep->element[1]->type != REDIS_REPLY_INTEGER) {
        rc = wk_err_set(err, WK_E_INTERNAL, "redis begin: bad reply");
    } else {
        *began = rep->element[0]->integer == 1;
        *attempts = rep->element[1]->integer < 0 ? 0
                    : rep->element[1]->integer > UINT_MAX
                        ? UINT_MAX
                        : (unsigned)rep->element[1]->integer;
    }
    freeReplyObject(rep);
    return rc;
}

enum wk_code q_hset(struct q *q, const char *job_id, const char *const *fields,
                    struct wk_err *err)
{
    char key[256], now[40];
    const char *argv[Q_MAX_ARGS];
    int argc = 0;

    q_key_job(q->prefix, job_id, key, sizeof(key));
    q_now_rfc3339(now, sizeof(now));
    argv[argc++] = "HSET";
    argv[argc++] = key;
    for (int i = 0; fields[i] && argc < Q_MAX_FIELDS * 2; i += 2) {
        argv[argc++] = fields[i];
        argv[argc++] = fields[i + 1];
    }
    argv[argc++] = "updatedAt";
    argv[argc++] = now;
    return q_cmds_ok(q, err, "HSET", argc, argv);
}

enum wk_code q_publish(struct q *q, const char *job_id, const char *json,
                       struct wk_err *err)
{
    char chan[256];

    q_key_job(q->prefix, job_id, chan, sizeof(chan));
    const char *argv[] = { "PUBLISH", chan, json };
    return q_cmds_ok(q, err, "PUBLISH", 3, argv);
}

static bool numeric_field(const char *name)
{
    static const char *const names[] = { "progress",   "bytesDone",
                                         "bytesTotal", "filesDone",
                                         "filesTotal", "attempts" };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(name, names[i]) == 0)
            return true;
    return false;
}

enum wk_code q_status_json(struct q *q, const char *job_id, struct wk_buf *out,
                           struct wk_err *err)
{
    char key[256];
    redisReply *rep;
    json_t *o = NULL;
    char *s = NULL;
    enum wk_code rc = WK_OK;

    q_key_job(q->prefix, job_id, key, sizeof(key));
    const char *argv[] = { "HGETALL", key };
    rep = q_cmds(q, err, "HGETALL", 2, argv);
    if (!rep)
        return err ? err->code : WK_E_NET;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements == 0) {
        rc = wk_err_set(err, WK_E_NOTFOUND, "job '%s' not found", job_id);
        goto out;
    }
    o = json_object();
    json_object_set_new(o, "id", json_string(job_id));
    for (size_t i = 0; i + 1 < rep->elements; i += 2) {
        const char *name = rep->element[i]->str;
        const char *val = rep->element[i + 1]->str;
        json_t *v = NULL;
        uint64_t n;
        if (!name || !val)
            continue;
        if (numeric_field(name) && wk_parse_u64(val, &n, NULL) == WK_OK)
            v = json_integer((json_int_t)n);
        else if (strcmp(name, "result") == 0 && val[0])
            v = json_loads(val, 0, NULL);
        if (!v)
            v = json_string(val);
        if (v)
            json_object_set_new(o, name, v);
    }
    s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (!s) {
        rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
        goto out;
    }
    wk_buf_reset(out);
    rc = wk_buf_appends(out, s, err);
out:
    free(s);
    json_decref(o);
    freeReplyObject(rep);
    return rc;
}

enum wk_code q_retry(struct q *q, const char *job_id, struct wk_err *err)
{
    char key[256], dead[128], lane[128], now[40];
    redisReply *rep;
    enum wk_code rc = WK_OK;

    q_key_job(q->prefix, job_id, key, sizeof(key));
    q_key_dead(q->prefix, dead, sizeof(dead));
    q_key_lane(q->prefix, false, lane, sizeof(lane));
    q_now_rfc3339(now, sizeof(now));
    const char *argv[] = { "EVAL", q_lua_retry, "3",    key,
                           dead,   lane,        job_id, now };
    rep = q_cmds(q, err, "retry", 8, argv);
    if (!rep)
        return err ? err->code : WK_E_NET;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER)
        rc = wk_err_set(err, WK_E_INTERNAL, "redis retry: bad reply");
    else if (rep->element[0]->integer != 1)
        rc = wk_err_set(err, WK_E_INVAL,
                        "job '%s' cannot be retried (state '%s'): only a "
                        "failed job can",
                        job_id,
                        rep->element[1]->type == REDIS_REPLY_STRING
                            ? rep->element[1]->str
                            : "");
    freeReplyObject(rep);
    return rc;
}

/* Call fn for every status hash key (SCAN MATCH <prefix>job:*). */
