/* q_report: read-only views of the queue for operators and the sweep: the
 * `jobs` and running reports (a SCAN of the status hashes and the dead
 * letters), the depths of the lanes, the audit trail's tail, the
 * throughput counters, and the activity index. */
#include "worker/q_int.h"
#include "worker/q_report.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static enum wk_code scan_jobs(struct q *q,
                              enum wk_code (*fn)(struct q *q, const char *key,
                                                 void *ud, struct wk_err *err),
                              void *ud, struct wk_err *err)
{
    char pattern[160], cursor[32] = "0";
    enum wk_code rc = WK_OK;

    q_key_job_match(q->prefix, pattern, sizeof(pattern));
    rc = q_home(q, err); /* SCAN names no key: be on the slot's node */
    if (rc != WK_OK)
        return rc;
    do {
        const char *argv[] = {
            "SCAN", cursor, "MATCH", pattern, "COUNT", "1000"
        };
        redisReply *rep = q_cmds(q, err, "SCAN", 6, argv);
        if (!rep)
            return err ? err->code : WK_E_NET;
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
            freeReplyObject(rep);
            return wk_err_set(err, WK_E_INTERNAL, "redis SCAN: bad reply");
        }
        snprintf(cursor, sizeof(cursor), "%s", rep->element[0]->str);
        for (size_t i = 0; i < rep->element[1]->elements && rc == WK_OK; i++)
            rc = fn(q, rep->element[1]->element[i]->str, ud, err);
        freeReplyObject(rep);
    } while (rc == WK_OK && strcmp(cursor, "0") != 0);
    return rc;
}

/* One JSON line of the fields of key that are set, when its state passes
 * the filter. */
struct job_lines {
    struct wk_buf *out;
    const char *const *fields; /* the first is "state" */
    size_t n;
    bool running_only; /* else: everything but succeeded */
};

static enum wk_code job_line(struct q *q, const char *k, void *ud,
                             struct wk_err *err)
{
    struct job_lines *jl = ud;
    const char *argv[16];
    redisReply *h;
    enum wk_code rc = WK_OK;

    argv[0] = "HMGET";
    argv[1] = k;
    for (size_t f = 0; f < jl->n; f++)
        argv[2 + f] = jl->fields[f];
    h = q_cmds(q, err, "HMGET", (int)(2 + jl->n), argv);
    if (!h)
        return err ? err->code : WK_E_NET;
    if (h->type == REDIS_REPLY_ARRAY && h->elements == jl->n &&
        h->element[0]->type == REDIS_REPLY_STRING &&
        (jl->running_only ? strcmp(h->element[0]->str, "running") == 0
                          : strcmp(h->element[0]->str, "succeeded") != 0)) {
        json_t *o = json_object();
        char *line;
        const char *id = q_key_job_id_of(q->prefix, k);
        json_object_set_new(o, "id", json_string(id ? id : k));
        for (size_t f = 0; f < jl->n; f++)
            if (h->element[f]->type == REDIS_REPLY_STRING &&
                h->element[f]->str[0])
                json_object_set_new(o, jl->fields[f],
                                    json_string(h->element[f]->str));
        line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(o);
        if (line)
            rc = wk_buf_appendf(jl->out, err, "%s\n", line);
        free(line);
    }
    freeReplyObject(h);
    return rc;
}

enum wk_code q_running_report(struct q *q, struct wk_buf *out,
                              struct wk_err *err)
{
    static const char *const fields[] = { "state",    "type",     "spaceId",
                                          "phase",    "progress", "worker",
                                          "startedAt" };
    struct job_lines jl = { out, fields, 7, true };
    return scan_jobs(q, job_line, &jl, err);
}

enum wk_code q_jobs_report(struct q *q, struct wk_buf *out, struct wk_err *err)
{
    static const char *const fields[] = { "state",    "type",  "spaceId",
                                          "attempts", "error", "updatedAt" };
    struct job_lines jl = { out, fields, 6, false };
    char dead[128];
    enum wk_code rc = scan_jobs(q, job_line, &jl, err);

    if (rc != WK_OK)
        return rc;

    q_key_dead(q->prefix, dead, sizeof(dead));
    const char *argv[] = { "XRANGE", dead, "-", "+", "COUNT", "1000" };
    redisReply *rep = q_cmds(q, err, "XRANGE", 6, argv);
    if (!rep)
        return err ? err->code : WK_E_NET;
    for (size_t i = 0;
         rep->type == REDIS_REPLY_ARRAY && i < rep->elements && rc == WK_OK;
         i++) {
        const redisReply *e = rep->element[i];
        const redisReply *kv;
        json_t *o;
        char *line;
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 2)
            continue;
        kv = e->element[1];
        o = json_object();
        json_object_set_new(o, "dead", json_true());
        for (size_t f = 0;
             kv->type == REDIS_REPLY_ARRAY && f + 1 < kv->elements; f += 2)
            if (strcmp(kv->element[f]->str, "job") != 0)
                json_object_set_new(o, kv->element[f]->str,
                                    json_string(kv->element[f + 1]->str));
        line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(o);
        if (line) {
            rc = wk_buf_appendf(out, err, "%s\n", line);
            free(line);
        }
    }
    freeReplyObject(rep);
    return rc;
}

enum wk_code q_activity_count(struct q *q, uint64_t *count, struct wk_err *err)
{
    char key[128];
    redisReply *rep;

    *count = 0;
    q_key_activity(q->prefix, key, sizeof(key));
    const char *argv[] = { "ZCARD", key };
    rep = q_cmds(q, err, "ZCARD", 2, argv);
    if (!rep)
        return err ? err->code : WK_E_NET;
    if (rep->type == REDIS_REPLY_INTEGER && rep->integer > 0)
        *count = (uint64_t)rep->integer;
    freeReplyObject(rep);
    return WK_OK;
}

/* A score as whole unix seconds; false for what cannot be one. */
static bool score_seconds(const char *s, int64_t *out)
{
    char *end = NULL;
    double d;

    errno = 0;
    d = strtod(s, &end);
    /* a time a century beyond 1970 either way is not a write time */
    if (errno || end == s || *end || !(d >= -4e9 && d <= 4e9))
        return false;
    *out = (int64_t)d;
    return true;
}

struct activity_batch {
    const char *key;
    const char *const *space_ids;
    int64_t *last;
    bool *present;
};

static int activity_arg(void *ud, size_t i, const char **argv, size_t *lens)
{
    const struct activity_batch *b = ud;
    argv[0] = "ZSCORE";
    argv[1] = b->key;
    argv[2] = b->space_ids[i];
    lens[0] = 6;
    lens[1] = strlen(b->key);
    lens[2] = strlen(b->space_ids[i]);
    return 3;
}

static void activity_reply(void *ud, size_t i, const redisReply *rep)
{
    const struct activity_batch *b = ud;
    if (rep->type == REDIS_REPLY_STRING)
        b->present[i] = score_seconds(rep->str, &b->last[i]);
}

enum wk_code q_activity_scores(struct q *q, const char *const *space_ids,
                               size_t n, int64_t *last, bool *present,
                               struct wk_err *err)
{
    char key[128];
    struct activity_batch b = { key, space_ids, last, present };

    q_key_activity(q->prefix, key, sizeof(key));
    for (size_t i = 0; i < n; i++) {
        last[i] = 0;
        present[i] = false;
    }
    /* one round trip for the whole batch: append all, then read all */
    return q_pipe(q, "ZSCORE", n, activity_arg, activity_reply, &b, err);
}

/* XINFO GROUPS of one lane: our group's lag and pending. */
static void lane_depth(struct q *q, const char *stream, int64_t *waiting,
                       int64_t *running, struct wk_err *err)
{
    const char *argv[] = { "XINFO", "GROUPS", stream };
    redisReply *rep = q_cmds(q, err, "XINFO", 3, argv);

    *waiting = *running = -1;
    if (!rep)
        return;
    for (size_t g = 0; rep->type == REDIS_REPLY_ARRAY && g < rep->elements;
         g++) {
        const redisReply *grp = rep->element[g];
        bool ours = false;
        int64_t lag = -1, pending = -1;
        if (grp->type != REDIS_REPLY_ARRAY)
            continue;
        for (size_t i = 0; i + 1 < grp->elements; i += 2) {
            const redisReply *k = grp->element[i], *v = grp->element[i + 1];
            if (k->type != REDIS_REPLY_STRING && k->type != REDIS_REPLY_STATUS)
                continue;
            if (strcmp(k->str, "name") == 0 && v->str &&
                strcmp(v->str, Q_GROUP) == 0)
                ours = true;
            else if (strcmp(k->str, "pending") == 0 &&
                     v->type == REDIS_REPLY_INTEGER)
                pending = v->integer;
            else if (strcmp(k->str, "lag") == 0 &&
                     v->type == REDIS_REPLY_INTEGER)
                lag = v->integer;
        }
        if (ours) {
            *waiting = lag;
            *running = pending;
        }
    }
    freeReplyObject(rep);
}

static int64_t int_reply(struct q *q, const char *cmd, const char *key,
                         struct wk_err *err)
{
    const char *argv[] = { cmd, key };
    redisReply *rep = q_cmds(q, err, cmd, 2, argv);
    int64_t v = -1;

    if (rep && rep->type == REDIS_REPLY_INTEGER)
        v = rep->integer;
    if (rep)
        freeReplyObject(rep);
    return v;
}

enum wk_code q_depths(struct q *q, struct q_depths *out, struct wk_err *err)
{
    char k[160];
    struct wk_err e;

    wk_err_clear(&e);
    q_key_lane(q->prefix, false, k, sizeof(k));
    lane_depth(q, k, &out->waiting[0], &out->running[0], &e);
    q_key_lane(q->prefix, true, k, sizeof(k));
    lane_depth(q, k, &out->waiting[1], &out->running[1], &e);
    q_key_delayed(q->prefix, k, sizeof(k));
    out->delayed = int_reply(q, "ZCARD", k, &e);
    q_key_dead(q->prefix, k, sizeof(k));
    out->dead = int_reply(q, "XLEN", k, &e);
    /* a lane without the group yet is no error; a dead connection is */
    if (e.code == WK_E_NET)
        return wk_err_copy(err, &e);
    return WK_OK;
}

enum wk_code q_audit_tail(struct q *q, unsigned n, struct wk_buf *out,
                          struct wk_err *err)
{
    char k[160], cnt[16];
    const char *argv[] = { "XREVRANGE", k, "+", "-", "COUNT", cnt };
    redisReply *rep;
    enum wk_code rc = WK_OK;

    q_key_audit(q->prefix, k, sizeof(k));
    snprintf(cnt, sizeof(cnt), "%u", n);
    rep = q_cmds(q, err, "XREVRANGE", 6, argv);
    if (!rep)
        return err && err->code ? err->code : WK_E_NET;
    /* newest first from Redis: print oldest first */
    for (size_t i = rep->type == REDIS_REPLY_ARRAY ? rep->elements : 0;
         i-- > 0 && rc == WK_OK;) {
        const redisReply *ent = rep->element[i];
        json_t *o;
        char *line;
        if (ent->type != REDIS_REPLY_ARRAY || ent->elements != 2 ||
            ent->element[1]->type != REDIS_REPLY_ARRAY)
            continue;
        o = json_object();
        json_object_set_new(o, "entry", json_string(ent->element[0]->str));
        for (size_t f = 0; f + 1 < ent->element[1]->elements; f += 2)
            json_object_set_new(
                o, ent->element[1]->element[f]->str,
                json_string(ent->element[1]->element[f + 1]->str));
        line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(o);
        if (line)
            rc = wk_buf_appendf(out, err, "%s\n", line);
        free(line);
    }
    freeReplyObject(rep);
    return rc;
}

enum wk_code q_throughput(struct q *q, unsigned minutes,
                          struct q_throughput *out, struct wk_err *err)
{
    time_t now = time(NULL);

    memset(out, 0, sizeof(*out));
    for (unsigned m = 0; m < minutes; m++) {
        char k[160];
        const char *argv[] = { "HMGET",  k,       "succeeded",
                               "failed", "bytes", "files" };
        redisReply *rep;
        q_key_stats(q->prefix, now - (time_t)m * 60, k, sizeof(k));
        rep = q_cmds(q, err, "HMGET", 6, argv);
        if (!rep)
            return err && err->code ? err->code : WK_E_NET;
        if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 4) {
            uint64_t *dst[] = { &out->succeeded, &out->failed, &out->bytes,
                                &out->files };
            for (size_t i = 0; i < 4; i++)
                if (rep->element[i]->type == REDIS_REPLY_STRING)
                    *dst[i] += strtoull(rep->element[i]->str, NULL, 10);
        }
        freeReplyObject(rep);
    }
    return WK_OK;
}

static struct q_req_type *req_type(struct q_requests *r, const char *type,
                                   size_t len)
{
    size_t i;

    if (len == 0 || len >= sizeof(r->t[0].type))
        return NULL;
    for (i = 0; i < r->n_types; i++)
        if (strlen(r->t[i].type) == len && memcmp(r->t[i].type, type, len) == 0)
            return &r->t[i];
    if (r->n_types == Q_REQ_TYPES)
        return NULL;
    memcpy(r->t[i].type, type, len);
    r->t[i].type[len] = '\0';
    r->n_types++;
    return &r->t[i];
}

/* One stats field ("req:archive:GetObject", "jobs:archive", ...) and its
 * value into r; other fields are not ours. */
static void req_field(struct q_requests *r, const char *f, uint64_t v)
{
    static const char *const kinds[] = { "jobs:", "retries:", "bytesIn:",
                                         "bytesOut:", "req:" };
    size_t k, klen = 0;
    const char *type, *colon;
    struct q_req_type *t;

    for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        klen = strlen(kinds[k]);
        if (strncmp(f, kinds[k], klen) == 0)
            break;
    }
    if (k == sizeof(kinds) / sizeof(kinds[0]))
        return;
    type = f + klen;
    colon = strchr(type, ':');
    if ((k == 4) != (colon != NULL))
        return;
    t = req_type(r, type, colon ? (size_t)(colon - type) : strlen(type));
    if (!t)
        return;
    if (k == 0)
        t->jobs += v;
    else if (k == 1)
        t->retries += v;
    else if (k == 2)
        t->bytes_in += v;
    else if (k == 3)
        t->bytes_out += v;
    else {
        const char *op = colon + 1;
        size_t i;
        if (!*op || strlen(op) >= sizeof(t->ops[0].op))
            return;
        for (i = 0; i < t->n_ops; i++)
            if (strcmp(t->ops[i].op, op) == 0)
                break;
        if (i == t->n_ops) {
            if (i == Q_REQ_OPS)
                return;
            snprintf(t->ops[i].op, sizeof(t->ops[i].op), "%s", op);
            t->n_ops++;
        }
        t->ops[i].n += v;
        t->requests += v;
    }
}

static enum wk_code req_hash(struct q *q, const char *key,
                             struct q_requests *out, struct wk_err *err)
{
    const char *argv[] = { "HGETALL", key };
    redisReply *rep = q_cmds(q, err, "HGETALL", 2, argv);

    if (!rep)
        return err && err->code ? err->code : WK_E_NET;
    for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i + 1 < rep->elements;
         i += 2)
        if (rep->element[i]->type == REDIS_REPLY_STRING &&
            rep->element[i + 1]->type == REDIS_REPLY_STRING)
            req_field(out, rep->element[i]->str,
                      strtoull(rep->element[i + 1]->str, NULL, 10));
    freeReplyObject(rep);
    return WK_OK;
}

enum wk_code q_requests_window(struct q *q, unsigned minutes,
                               struct q_requests *out, struct wk_err *err)
{
    time_t now = time(NULL);
    enum wk_code rc = WK_OK;

    memset(out, 0, sizeof(*out));
    for (unsigned m = 0; m < minutes && rc == WK_OK; m++) {
        char k[160];
        q_key_stats(q->prefix, now - (time_t)m * 60, k, sizeof(k));
        rc = req_hash(q, k, out, err);
    }
    return rc;
}

enum wk_code q_requests_day(struct q *q, unsigned days_ago,
                            struct q_requests *out, struct wk_err *err)
{
    char k[160];

    memset(out, 0, sizeof(*out));
    q_key_stats_day(q->prefix, time(NULL) - (time_t)days_ago * 86400, k,
                    sizeof(k));
    return req_hash(q, k, out, err);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest rank: the smallest sample with at least pct % at or below it. */
static int64_t rank_of(const int64_t *v, size_t n, unsigned pct)
{
    size_t k = (n * pct + 99) / 100;
    return n ? v[k ? k - 1 : 0] : 0;
}

enum wk_code q_latency(struct q *q, bool ready, unsigned minutes,
                       struct q_latency *out, struct wk_err *err)
{
    time_t now = time(NULL);
    int64_t *v = NULL;
    size_t n = 0, cap = 0;
    enum wk_code rc = WK_OK;

    memset(out, 0, sizeof(*out));
    for (unsigned m = 0; m < minutes && rc == WK_OK; m++) {
        char k[160];
        const char *argv[] = { "LRANGE", k, "0", "-1" };
        redisReply *rep;
        if (ready)
            q_key_ttr(q->prefix, now - (time_t)m * 60, k, sizeof(k));
        else
            q_key_ttc(q->prefix, now - (time_t)m * 60, k, sizeof(k));
        rep = q_cmds(q, err, "LRANGE", 4, argv);
        if (!rep) {
            rc = err && err->code ? err->code : WK_E_NET;
            break;
        }
        for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i < rep->elements;
             i++) {
            if (rep->element[i]->type != REDIS_REPLY_STRING)
                continue;
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 256;
                int64_t *p = realloc(v, ncap * sizeof(*p));
                if (!p) {
                    rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
                    break;
                }
                v = p;
                cap = ncap;
            }
            v[n++] = strtoll(rep->element[i]->str, NULL, 10);
        }
        freeReplyObject(rep);
    }
    if (rc == WK_OK && n > 0) {
        qsort(v, n, sizeof(*v), cmp_i64);
        out->count = n;
        out->p50_ms = rank_of(v, n, 50);
        out->p95_ms = rank_of(v, n, 95);
    }
    free(v);
    return rc;
}
