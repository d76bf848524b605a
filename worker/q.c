#include "worker/q.h"

#include <errno.h>
#include <fcntl.h>
#include <hiredis.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "common/wk_fail.h"
#include "common/wk_log.h"
#include "common/wk_parse.h"

#define Q_STATUS_TTL_S  (7 * 24 * 3600) /* finished status hashes */
#define Q_STREAM_MAXLEN "100000"        /* approximate trim at XADD */
#define Q_MAX_FIELDS    32

/* A normal-lane entry given back by q_claim() looks idle this long, more
 * than any lease (SILA_LEASE is at most 1 h): any worker reclaims it. */
#define Q_GIVE_BACK_IDLE_MS "86400000"

struct q {
    redisContext *c; /* owned */
    struct cfg_redis r;
    char prefix[64];
    unsigned read_timeout_ms;
};

void q_msg_init(struct q_msg *m)
{
    memset(m, 0, sizeof(*m));
    wk_buf_init(&m->json, 1u << 20);
}

void q_msg_release(struct q_msg *m)
{
    wk_buf_release(&m->json);
}

void q_now_rfc3339(char *buf, size_t len)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(ts.tv_nsec / 1000000));
}

/* Turn a reply (or its absence) into a code; frees nothing. */
static enum wk_code reply_check(struct q *q, const redisReply *rep,
                                const char *what, struct wk_err *err)
{
    if (!rep) {
        enum wk_code rc = wk_err_set(
            err, WK_E_NET, "redis %s: %s", what,
            q->c && q->c->errstr[0] ? q->c->errstr : "connection lost");
        /* the context is unusable after an I/O error */
        if (q->c) {
            redisFree(q->c);
            q->c = NULL;
        }
        return rc;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        /* LOADING / BUSY / MASTERDOWN: the server comes back; retry */
        bool transient = strncmp(rep->str, "LOADING", 7) == 0 ||
                         strncmp(rep->str, "BUSY", 4) == 0 ||
                         strncmp(rep->str, "MASTERDOWN", 10) == 0 ||
                         strncmp(rep->str, "TRYAGAIN", 8) == 0;
        return wk_err_set(err, transient ? WK_E_NET : WK_E_INTERNAL,
                          "redis %s: %.160s", what, rep->str);
    }
    return WK_OK;
}

static redisReply *q_cmd(struct q *q, struct wk_err *err, const char *what,
                         int argc, const char **argv, const size_t *lens)
{
    redisReply *rep;
    if (!q->c) {
        wk_err_set(err, WK_E_NET, "redis %s: not connected", what);
        return NULL;
    }
    rep = redisCommandArgv(q->c, argc, argv, lens);
    if (reply_check(q, rep, what, err) != WK_OK) {
        if (rep)
            freeReplyObject(rep);
        return NULL;
    }
    return rep;
}

/* argv of C strings (lengths by strlen) */
static redisReply *q_cmds(struct q *q, struct wk_err *err, const char *what,
                          int argc, const char **argv)
{
    size_t lens[Q_MAX_FIELDS * 2 + 8];
    WK_ASSERT(argc <= (int)(sizeof(lens) / sizeof(lens[0])));
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    return q_cmd(q, err, what, argc, argv, lens);
}

static enum wk_code do_connect(struct q *q, struct wk_err *err)
{
    struct timeval tv = { 5, 0 };
    struct timeval rt;
    redisReply *rep;
    char db[16];

    if (q->c) {
        redisFree(q->c);
        q->c = NULL;
    }
    q->c = redisConnectWithTimeout(q->r.host, q->r.port, tv);
    if (!q->c)
        return wk_err_set(err, WK_E_NOMEM, "redis connect: out of memory");
    if (q->c->err) {
        enum wk_code rc =
            wk_err_set(err, WK_E_NET, "redis connect to %s:%d: %s", q->r.host,
                       q->r.port, q->c->errstr);
        redisFree(q->c);
        q->c = NULL;
        return rc;
    }
    rt.tv_sec = q->read_timeout_ms / 1000;
    rt.tv_usec = (q->read_timeout_ms % 1000) * 1000;
    redisSetTimeout(q->c, rt);
    if (q->r.pass[0]) {
        const char *argv[3] = { "AUTH", q->r.user, q->r.pass };
        if (q->r.user[0])
            rep = q_cmds(q, err, "AUTH", 3, argv);
        else {
            argv[1] = q->r.pass;
            rep = q_cmds(q, err, "AUTH", 2, argv);
        }
        if (!rep)
            return err ? err->code : WK_E_NET;
        freeReplyObject(rep);
    }
    if (q->r.db) {
        const char *argv[2] = { "SELECT", db };
        snprintf(db, sizeof(db), "%d", q->r.db);
        rep = q_cmds(q, err, "SELECT", 2, argv);
        if (!rep)
            return err ? err->code : WK_E_NET;
        freeReplyObject(rep);
    }
    return WK_OK;
}

enum wk_code q_connect(const struct cfg_redis *r, const char *prefix,
                       unsigned read_timeout_ms, struct q **out,
                       struct wk_err *err)
{
    struct q *q = calloc(1, sizeof(*q));
    enum wk_code rc;

    *out = NULL;
    if (!q)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    q->r = *r;
    snprintf(q->prefix, sizeof(q->prefix), "%s", prefix);
    q->read_timeout_ms = read_timeout_ms;
    rc = do_connect(q, err);
    if (rc != WK_OK) {
        q_free(q);
        return rc;
    }
    *out = q;
    return WK_OK;
}

enum wk_code q_reconnect(struct q *q, struct wk_err *err)
{
    return do_connect(q, err);
}

void q_free(struct q *q)
{
    if (!q)
        return;
    if (q->c)
        redisFree(q->c);
    free(q);
}

static void key_of(const struct q *q, const char *suffix, const char *id,
                   char *buf, size_t len)
{
    snprintf(buf, len, "%s%s%s", q->prefix, suffix, id ? id : "");
}

enum wk_code q_subscribe_job(const struct q *q, const char *job_id,
                             struct q **out, struct wk_err *err)
{
    char chan[256];
    struct q *sub = NULL;
    redisReply *rep;
    enum wk_code rc;

    *out = NULL;
    rc = q_connect(&q->r, q->prefix, q->read_timeout_ms, &sub, err);
    if (rc != WK_OK)
        return rc;
    key_of(q, "job:", job_id, chan, sizeof(chan));
    const char *argv[] = { "SUBSCRIBE", chan };
    rep = q_cmds(sub, err, "SUBSCRIBE", 2, argv); /* the confirmation */
    if (!rep) {
        q_free(sub);
        return err ? err->code : WK_E_NET;
    }
    freeReplyObject(rep);
    *out = sub;
    return WK_OK;
}

enum wk_code q_sub_wait(struct q *sub, unsigned timeout_ms, bool *got,
                        struct wk_err *err)
{
    void *rep = NULL;
    struct pollfd pfd;
    enum wk_code rc;
    int n;

    *got = false;
    if (!sub->c)
        return wk_err_set(err, WK_E_NET, "redis subscription: not connected");
    /* a message already read along with an earlier one? */
    if (redisGetReplyFromReader(sub->c, &rep) != REDIS_OK)
        goto lost;
    if (!rep) {
        pfd.fd = sub->c->fd;
        pfd.events = POLLIN;
        pfd.revents = 0;
        n = poll(&pfd, 1, timeout_ms > INT_MAX ? INT_MAX : (int)timeout_ms);
        if (n < 0 && errno == EINTR)
            return WK_OK; /* a signal: the caller looks at its flags */
        if (n < 0)
            return wk_err_sys(err, WK_E_NET, errno, "redis subscription: poll");
        if (n == 0)
            return WK_OK;
        if (redisBufferRead(sub->c) != REDIS_OK ||
            redisGetReplyFromReader(sub->c, &rep) != REDIS_OK)
            goto lost;
    }
    if (rep) { /* (none yet when only a part of one has arrived) */
        *got = true;
        freeReplyObject(rep);
    }
    return WK_OK;
lost:
    rc = wk_err_set(err, WK_E_NET, "redis subscription: %s",
                    sub->c->errstr[0] ? sub->c->errstr : "connection lost");
    redisFree(sub->c);
    sub->c = NULL;
    return rc;
}

static enum wk_code ensure_group(struct q *q, const char *suffix,
                                 struct wk_err *err)
{
    char stream[128];
    redisReply *rep;
    struct wk_err e2;

    key_of(q, suffix, NULL, stream, sizeof(stream));
    const char *argv[] = {
        "XGROUP", "CREATE", stream, Q_GROUP, "0", "MKSTREAM"
    };
    wk_err_clear(&e2);
    rep = q_cmds(q, &e2, "XGROUP CREATE", 6, argv);
    if (rep) {
        freeReplyObject(rep);
        return WK_OK;
    }
    if (strstr(e2.msg, "BUSYGROUP"))
        return WK_OK;
    return wk_err_copy(err, &e2);
}

enum wk_code q_ensure_group(struct q *q, struct wk_err *err)
{
    enum wk_code rc = ensure_group(q, "jobs", err);
    if (rc == WK_OK)
        rc = ensure_group(q, "jobs:urgent", err);
    return rc;
}

static enum wk_code random_hex(char *out, size_t nbytes, struct wk_err *err)
{
    static const char digits[] = "0123456789abcdef";
    unsigned char raw[32];
    int fd;
    ssize_t n;

    WK_ASSERT(nbytes <= sizeof(raw));
    fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return wk_err_sys(err, WK_E_IO, errno, "open '/dev/urandom'");
    n = read(fd, raw, nbytes);
    close(fd);
    if (n != (ssize_t)nbytes)
        return wk_err_set(err, WK_E_IO, "short read from '/dev/urandom'");
    for (size_t i = 0; i < nbytes; i++) {
        out[2 * i] = digits[raw[i] >> 4];
        out[2 * i + 1] = digits[raw[i] & 15];
    }
    out[2 * nbytes] = '\0';
    return WK_OK;
}

/* MULTI ... EXEC of prepared commands; every reply is checked. */
struct q_tx_cmd {
    int argc;
    const char *argv[Q_MAX_FIELDS * 2 + 8];
    size_t lens[Q_MAX_FIELDS * 2 + 8];
};

static enum wk_code q_exec_tx(struct q *q, struct q_tx_cmd *cmds, int n,
                              const char *what, struct wk_err *err)
{
    redisReply *rep;
    enum wk_code rc = WK_OK;
    const char *multi[] = { "MULTI" };
    const char *exec[] = { "EXEC" };

    rep = q_cmds(q, err, what, 1, multi);
    if (!rep)
        return err ? err->code : WK_E_NET;
    freeReplyObject(rep);
    for (int i = 0; i < n; i++) {
        rep = q_cmd(q, err, what, cmds[i].argc, cmds[i].argv, cmds[i].lens);
        if (!rep)
            return err ? err->code : WK_E_NET;
        freeReplyObject(rep);
    }
    rep = q_cmds(q, err, what, 1, exec);
    if (!rep)
        return err ? err->code : WK_E_NET;
    if (rep->type != REDIS_REPLY_ARRAY) {
        rc = wk_err_set(err, WK_E_INTERNAL, "redis %s: transaction aborted",
                        what);
    } else {
        for (size_t i = 0; i < rep->elements; i++)
            if (rep->element[i]->type == REDIS_REPLY_ERROR) {
                rc = wk_err_set(err, WK_E_INTERNAL, "redis %s: %.160s", what,
                                rep->element[i]->str);
                break;
            }
    }
    freeReplyObject(rep);
    return rc;
}

static void tx_add(struct q_tx_cmd *c, const char *s)
{
    WK_ASSERT(c->argc < (int)(sizeof(c->argv) / sizeof(c->argv[0])));
    c->argv[c->argc] = s;
    c->lens[c->argc] = strlen(s);
    c->argc++;
}

/* Enqueue with deduplication; see q.h. KEYS: dedup key, new job's hash,
 * lane stream, urgent stream. ARGV: id, job JSON, type, spaceId, now,
 * "<prefix>job:", priority. Returns {id, created}. */
static const char enqueue_lua[] =
    "local cur = redis.call('GET', KEYS[1])\n"
    "if cur then\n"
    "  local h = ARGV[6] .. cur\n"
    "  local st = redis.call('HGET', h, 'state')\n"
    "  if st == 'queued' or st == 'running' or st == 'retrying' then\n"
    "    if st == 'queued' and ARGV[7] == 'urgent' and\n"
    "       redis.call('HGET', h, 'priority') ~= 'urgent' then\n"
    "      local spec = cjson.decode(ARGV[2])\n"
    "      spec['id'] = cur\n"
    "      redis.call('HSET', h, 'priority', 'urgent', 'updatedAt', ARGV[5])\n"
    "      redis.call('XADD', KEYS[4], 'MAXLEN', '~', '100000', '*',\n"
    "                 'id', cur, 'job', cjson.encode(spec))\n"
    "    end\n"
    "    return {cur, 0}\n"
    "  end\n"
    "end\n"
    "redis.call('SET', KEYS[1], ARGV[1], 'EX', 86400)\n"
    "redis.call('HSET', KEYS[2], 'state', 'queued', 'type', ARGV[3],\n"
    "           'spaceId', ARGV[4], 'progress', '0', 'priority', ARGV[7],\n"
    "           'attempts', '0', 'spec', ARGV[2],\n"
    "           'createdAt', ARGV[5], 'updatedAt', ARGV[5])\n"
    "redis.call('XADD', KEYS[3], 'MAXLEN', '~', '100000', '*',\n"
    "           'id', ARGV[1], 'job', ARGV[2])\n"
    "return {ARGV[1], 1}\n";

enum wk_code q_enqueue(struct q *q, const struct q_spec *spec,
                       char id_out[JOB_ID_MAX + 1], bool *created,
                       struct wk_err *err)
{
    char id[33], dedup[256], key[256], stream[128], urgent[128], now[40];
    char hprefix[128];
    json_t *js = NULL;
    char *json = NULL;
    redisReply *rep = NULL;
    enum wk_code rc;

    *created = false;
    rc = random_hex(id, 16, err);
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
    snprintf(dedup, sizeof(dedup), "%sdedup:%s:%s", q->prefix, spec->type,
             spec->space_id);
    key_of(q, "job:", id, key, sizeof(key));
    key_of(q, spec->urgent ? "jobs:urgent" : "jobs", NULL, stream,
           sizeof(stream));
    key_of(q, "jobs:urgent", NULL, urgent, sizeof(urgent));
    key_of(q, "job:", NULL, hprefix, sizeof(hprefix));
    q_now_rfc3339(now, sizeof(now));
    const char *argv[] = { "EVAL",
                           enqueue_lua,
                           "4",
                           dedup,
                           key,
                           stream,
                           urgent,
                           id,
                           json,
                           spec->type,
                           spec->space_id,
                           now,
                           hprefix,
                           spec->urgent ? "urgent" : "normal" };
    rep =
        q_cmds(q, err, "enqueue", (int)(sizeof(argv) / sizeof(argv[0])), argv);
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

static const redisReply *field_of(const redisReply *kv, const char *name)
{
    for (size_t i = 0; i + 1 < kv->elements; i += 2)
        if (kv->element[i]->type == REDIS_REPLY_STRING &&
            strcmp(kv->element[i]->str, name) == 0)
            return kv->element[i + 1];
    return NULL;
}

/* Fill m from one stream entry reply [id, [field, value, ...]]. */
static enum wk_code msg_from_entry(const char *stream, const redisReply *entry,
                                   struct q_msg *out, struct wk_err *err)
{
    const redisReply *kv, *f;

    if (entry->type != REDIS_REPLY_ARRAY || entry->elements < 2 ||
        entry->element[0]->type != REDIS_REPLY_STRING)
        return wk_err_set(err, WK_E_INTERNAL, "redis XREADGROUP: bad entry");
    snprintf(out->stream, sizeof(out->stream), "%s", stream);
    snprintf(out->entry_id, sizeof(out->entry_id), "%s",
             entry->element[0]->str);
    out->deliveries = 1; /* a new read; q_reclaim() asks XPENDING */
    kv = entry->element[1];
    out->job_id_ok = false;
    snprintf(out->job_id, sizeof(out->job_id), "%s", out->entry_id);
    wk_buf_reset(&out->json);
    if (kv->type != REDIS_REPLY_ARRAY)
        return WK_OK; /* deleted entry: no fields */
    f = field_of(kv, "id");
    if (f && f->type == REDIS_REPLY_STRING && f->len <= JOB_ID_MAX &&
        strlen(f->str) == f->len && job_id_valid(f->str)) {
        memcpy(out->job_id, f->str, f->len + 1);
        out->job_id_ok = true;
    }
    f = field_of(kv, "job");
    if (f && f->type == REDIS_REPLY_STRING) {
        /* an oversized spec is cut here and refused by job_parse */
        size_t n = f->len < out->json.max ? f->len : out->json.max;
        return wk_buf_append(&out->json, f->str, n, err);
    }
    return WK_OK;
}

/* One XREADGROUP; every entry returned goes to out[] (at most 2). */
static enum wk_code read_group(struct q *q, const char *consumer,
                               unsigned block_ms, bool both, struct q_msg *out,
                               size_t *nout, struct wk_err *err)
{
    char normal[128], urgent[128], block[16];
    const char *argv[14];
    int argc = 0;
    redisReply *rep;
    enum wk_code rc = WK_OK;

    *nout = 0;
    key_of(q, "jobs", NULL, normal, sizeof(normal));
    key_of(q, "jobs:urgent", NULL, urgent, sizeof(urgent));
    snprintf(block, sizeof(block), "%u", block_ms);
    argv[argc++] = "XREADGROUP";
    argv[argc++] = "GROUP";
    argv[argc++] = Q_GROUP;
    argv[argc++] = consumer;
    argv[argc++] = "COUNT";
    argv[argc++] = "1";
    if (block_ms) {
        argv[argc++] = "BLOCK";
        argv[argc++] = block;
    }
    argv[argc++] = "STREAMS";
    argv[argc++] = urgent;
    if (both)
        argv[argc++] = normal;
    argv[argc++] = ">";
    if (both)
        argv[argc++] = ">";
    rep = q_cmds(q, err, "XREADGROUP", argc, argv);
    if (!rep)
        return err ? err->code : WK_E_NET;
    if (rep->type == REDIS_REPLY_ARRAY) {
        /* urgent first in the reply order we asked for */
        for (size_t i = 0; i < rep->elements && *nout < 2 && rc == WK_OK; i++) {
            const redisReply *st = rep->element[i];
            if (st->type != REDIS_REPLY_ARRAY || st->elements < 2 ||
                st->element[0]->type != REDIS_REPLY_STRING ||
                st->element[1]->type != REDIS_REPLY_ARRAY ||
                st->element[1]->elements < 1)
                continue;
            rc = msg_from_entry(st->element[0]->str, st->element[1]->element[0],
                                &out[*nout], err);
            if (rc == WK_OK)
                (*nout)++;
        }
    }
    freeReplyObject(rep);
    return rc;
}

static void msg_move(struct q_msg *dst, struct q_msg *src)
{
    struct wk_buf keep = dst->json;
    wk_buf_reset(&keep);
    memcpy(dst->stream, src->stream, sizeof(dst->stream));
    memcpy(dst->entry_id, src->entry_id, sizeof(dst->entry_id));
    memcpy(dst->job_id, src->job_id, sizeof(dst->job_id));
    dst->job_id_ok = src->job_id_ok;
    dst->deliveries = src->deliveries;
    dst->json = keep;
    if (src->json.len)
        wk_buf_append(&dst->json, src->json.data, src->json.len, NULL);
}

/* Hand a pending entry of ours back to the group: it looks idle for a day
 * (any worker's XAUTOCLAIM takes it at once) and its delivery count is
 * reset, so that this delivery, which ran nothing, does not count. */
static enum wk_code give_back(struct q *q, const char *consumer,
                              const struct q_msg *m, struct wk_err *err)
{
    redisReply *rep;
    const char *argv[] = {
        "XCLAIM",     m->stream,   Q_GROUP, consumer,
        "0",          m->entry_id, "IDLE",  Q_GIVE_BACK_IDLE_MS,
        "RETRYCOUNT", "0",         "JUSTID"
    };

    rep = q_cmds(q, err, "XCLAIM", (int)(sizeof(argv) / sizeof(argv[0])), argv);
    if (!rep)
        return err ? err->code : WK_E_NET;
    freeReplyObject(rep);
    return WK_OK;
}

enum wk_code q_claim(struct q *q, const char *consumer, unsigned block_ms,
                     struct q_msg *out, bool *got, struct wk_err *err)
{
    struct q_msg two[2];
    size_t n = 0;
    enum wk_code rc;

    *got = false;
    q_msg_init(&two[0]);
    q_msg_init(&two[1]);
    /* urgent work first, without waiting */
    rc = read_group(q, consumer, 0, false, two, &n, err);
    if (rc == WK_OK && n == 0) {
        wk_fail_point("queue.read_both");
        rc = read_group(q, consumer, block_ms, true, two, &n, err);
    }
    if (rc != WK_OK || n == 0)
        goto out;
    msg_move(out, &two[0]);
    *got = true;
    if (n == 2) {
        /* both lanes answered: run the urgent entry; the normal one goes
         * back now rather than wait (unrenewed) behind it */
        struct wk_err gerr;
        wk_err_clear(&gerr);
        if (give_back(q, consumer, &two[1], &gerr) == WK_OK)
            WK_LOG(WK_LOG_INFO, "queue.given_back",
                   KV_STR("job_id", two[1].job_id),
                   KV_STR("entry_id", two[1].entry_id),
                   KV_STR("stream", two[1].stream));
        else /* still pending for us: reclaimed once its lease runs out */
            WK_LOG(WK_LOG_WARN, "queue.give_back_failed",
                   KV_STR("job_id", two[1].job_id), KV_STR("msg", gerr.msg));
    }
out:
    q_msg_release(&two[0]);
    q_msg_release(&two[1]);
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

    key_of(q, "job:", job_id, key, sizeof(key));
    const char *argv[] = { "HGET", key, field };
    rep = q_cmds(q, err, "HGET", 3, argv);
    if (!rep)
        return err ? err->code : WK_E_NET;
    snprintf(buf, len, "%s", rep->type == REDIS_REPLY_STRING ? rep->str : "");
    freeReplyObject(rep);
    return WK_OK;
}

/* The lane of an entry without the prefix ("jobs" or "jobs:urgent"). */
static const char *lane_of(const struct q *q, const struct q_msg *m);

enum wk_code q_delivery_state(struct q *q, const struct q_msg *m, char *buf,
                              size_t len, bool *recorded, bool *ours,
                              struct wk_err *err)
{
    char key[256];
    redisReply *rep;
    const redisReply *st, *lane, *entry;

    *recorded = *ours = false;
    key_of(q, "job:", m->job_id, key, sizeof(key));
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
                strcmp(lane->str, lane_of(q, m)) == 0 &&
                strcmp(entry->str, m->entry_id) == 0;
    }
    freeReplyObject(rep);
    return WK_OK;
}

/* KEYS: job hash, running index. ARGV: consumer, now RFC 3339, now ms,
 * max attempts, lane, entry id, job id. Returns {began 0|1, attempts}. */
static const char begin_lua[] =
    "local a = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0') or 0\n"
    "if a >= tonumber(ARGV[4]) then return {0, a} end\n"
    "a = redis.call('HINCRBY', KEYS[1], 'attempts', 1)\n"
    "redis.call('HSET', KEYS[1], 'state', 'running', 'startedAt', ARGV[2],\n"
    "           'worker', ARGV[1], 'waiting', '', 'lane', ARGV[5],\n"
    "           'entry', ARGV[6], 'updatedAt', ARGV[2])\n"
    "redis.call('HDEL', KEYS[1], 'entryLostAt')\n"
    "redis.call('ZADD', KEYS[2], ARGV[3], ARGV[7])\n"
    "return {1, a}\n";

static void now_ms_str(char *buf, size_t len)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(buf, len, "%llu",
             (unsigned long long)ts.tv_sec * 1000ULL +
                 (unsigned long long)(ts.tv_nsec / 1000000));
}

enum wk_code q_begin(struct q *q, const struct q_msg *m, const char *consumer,
                     unsigned max_attempts, bool *began, unsigned *attempts,
                     struct wk_err *err)
{
    char key[256], running[128], now[40], ms[32], maxa[16];
    redisReply *rep;
    enum wk_code rc = WK_OK;

    *began = false;
    *attempts = 0;
    key_of(q, "job:", m->job_id, key, sizeof(key));
    key_of(q, "jobs:running", NULL, running, sizeof(running));
    q_now_rfc3339(now, sizeof(now));
    now_ms_str(ms, sizeof(ms));
    snprintf(maxa, sizeof(maxa), "%u", max_attempts);
    const char *argv[] = { "EVAL",  begin_lua,     "2",         key,
                           running, consumer,      now,         ms,
                           maxa,    lane_of(q, m), m->entry_id, m->job_id };
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

enum wk_code q_ack(struct q *q, const struct q_msg *m, struct wk_err *err)
{
    redisReply *rep;
    const char *argv[] = { "XACK", m->stream, Q_GROUP, m->entry_id };
    rep = q_cmds(q, err, "XACK", 4, argv);
    if (!rep)
        return err ? err->code : WK_E_NET;
    freeReplyObject(rep);
    return WK_OK;
}

enum wk_code q_hset(struct q *q, const char *job_id, const char *const *fields,
                    struct wk_err *err)
{
    char key[256], now[40];
    const char *argv[Q_MAX_FIELDS * 2 + 8];
    int argc = 0;
    redisReply *rep;

    key_of(q, "job:", job_id, key, sizeof(key));
    q_now_rfc3339(now, sizeof(now));
    argv[argc++] = "HSET";
    argv[argc++] = key;
    for (int i = 0; fields[i] && argc < Q_MAX_FIELDS * 2; i += 2) {
        argv[argc++] = fields[i];
        argv[argc++] = fields[i + 1];
    }
    argv[argc++] = "updatedAt";
    argv[argc++] = now;
    rep = q_cmds(q, err, "HSET", argc, argv);
    if (!rep)
        return err ? err->code : WK_E_NET;
    freeReplyObject(rep);
    return WK_OK;
}

enum wk_code q_publish(struct q *q, const char *job_id, const char *json,
                       struct wk_err *err)
{
    char chan[256];
    redisReply *rep;

    key_of(q, "job:", job_id, chan, sizeof(chan));
    const char *argv[] = { "PUBLISH", chan, json };
    rep = q_cmds(q, err, "PUBLISH", 3, argv);
    if (!rep)
        return err ? err->code : WK_E_NET;
    freeReplyObject(rep);
    return WK_OK;
}

static void minute_key(const struct q *q, time_t t, char *buf, size_t len);

enum wk_code q_finish(struct q *q, const struct q_msg *m, const char *type,
                      const char *space_id, bool ok, const char *error,
                      const char *result_json, bool dead,
                      const struct q_done *done, struct wk_err *err)
{
    char key[256], now[40], ttl[16], dedup[256], chan[256], deadkey[128];
    char auditkey[128], audmax[16], statkey[160], nbytes[24], nfiles[24];
    char ms[24], who[JOB_ID_MAX + 1] = "", running[128];
    struct q_tx_cmd cmds[13];
    int ncmd = 5;
    char *sev = NULL;
    json_t *ev = json_object();
    char *evs = NULL;
    enum wk_code rc;

    key_of(q, "job:", m->job_id, key, sizeof(key));
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
    evs = json_dumps(ev, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(ev);
    if (!evs)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");

    memset(cmds, 0, sizeof(cmds));
    tx_add(&cmds[0], "HSET");
    tx_add(&cmds[0], key);
    tx_add(&cmds[0], "state");
    tx_add(&cmds[0], ok ? "succeeded" : "failed");
    tx_add(&cmds[0], "finishedAt");
    tx_add(&cmds[0], now);
    tx_add(&cmds[0], "updatedAt");
    tx_add(&cmds[0], now);
    if (type) {
        tx_add(&cmds[0], "type");
        tx_add(&cmds[0], type);
    }
    if (space_id) {
        tx_add(&cmds[0], "spaceId");
        tx_add(&cmds[0], space_id);
    }
    if (ok) {
        tx_add(&cmds[0], "progress");
        tx_add(&cmds[0], "100");
        tx_add(&cmds[0], "result");
        tx_add(&cmds[0], result_json ? result_json : "{}");
        tx_add(&cmds[0], "error");
        tx_add(&cmds[0], "");
    } else {
        tx_add(&cmds[0], "error");
        tx_add(&cmds[0], error ? error : "failed");
    }
    tx_add(&cmds[1], "EXPIRE");
    tx_add(&cmds[1], key);
    tx_add(&cmds[1], ttl);
    tx_add(&cmds[2], "PUBLISH");
    tx_add(&cmds[2], key);
    tx_add(&cmds[2], evs);
    tx_add(&cmds[3], "XACK");
    tx_add(&cmds[3], m->stream);
    tx_add(&cmds[3], Q_GROUP);
    tx_add(&cmds[3], m->entry_id);
    key_of(q, "jobs:running", NULL, running, sizeof(running));
    tx_add(&cmds[4], "ZREM");
    tx_add(&cmds[4], running);
    tx_add(&cmds[4], m->job_id);
    if (type && space_id) {
        /* this job no longer blocks a new one of its kind */
        snprintf(dedup, sizeof(dedup), "%sdedup:%s:%s", q->prefix, type,
                 space_id);
        tx_add(&cmds[ncmd], "EVAL");
        tx_add(&cmds[ncmd], "if redis.call('GET', KEYS[1]) == ARGV[1] then "
                            "return redis.call('DEL', KEYS[1]) end return 0");
        tx_add(&cmds[ncmd], "1");
        tx_add(&cmds[ncmd], dedup);
        tx_add(&cmds[ncmd], m->job_id);
        ncmd++;
    }
    if (type && space_id && strcmp(type, "unarchive") == 0) {
        /* the app server waits on the space's channel, not on polling */
        json_t *se =
            json_pack("{s:s, s:s, s:s}", "event", ok ? "ready" : "failed",
                      "spaceId", space_id, "jobId", m->job_id);
        if (se && !ok)
            json_object_set_new(se, "error",
                                json_string(error ? error : "failed"));
        sev = se ? json_dumps(se, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(se);
        if (sev) {
            snprintf(chan, sizeof(chan), "%sspace:%s", q->prefix, space_id);
            tx_add(&cmds[ncmd], "PUBLISH");
            tx_add(&cmds[ncmd], chan);
            tx_add(&cmds[ncmd], sev);
            ncmd++;
        }
    }
    if (!ok && dead) {
        /* out of attempts: kept for an operator ("jobs", "retry") */
        key_of(q, "jobs:dead", NULL, deadkey, sizeof(deadkey));
        tx_add(&cmds[ncmd], "XADD");
        tx_add(&cmds[ncmd], deadkey);
        tx_add(&cmds[ncmd], "MAXLEN");
        tx_add(&cmds[ncmd], "~");
        tx_add(&cmds[ncmd], "10000");
        tx_add(&cmds[ncmd], "*");
        tx_add(&cmds[ncmd], "id");
        tx_add(&cmds[ncmd], m->job_id);
        tx_add(&cmds[ncmd], "job");
        tx_add(&cmds[ncmd], wk_buf_cstr(&m->json));
        tx_add(&cmds[ncmd], "error");
        tx_add(&cmds[ncmd], error ? error : "failed");
        tx_add(&cmds[ncmd], "failedAt");
        tx_add(&cmds[ncmd], now);
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
    key_of(q, "audit", NULL, auditkey, sizeof(auditkey));
    snprintf(audmax, sizeof(audmax), "%d", Q_AUDIT_MAX);
    snprintf(nbytes, sizeof(nbytes), "%llu",
             (unsigned long long)(done ? done->bytes : 0));
    snprintf(nfiles, sizeof(nfiles), "%llu",
             (unsigned long long)(done ? done->files : 0));
    snprintf(ms, sizeof(ms), "%lld", (long long)(done ? done->duration_ms : 0));
    tx_add(&cmds[ncmd], "XADD");
    tx_add(&cmds[ncmd], auditkey);
    tx_add(&cmds[ncmd], "MAXLEN");
    tx_add(&cmds[ncmd], "~");
    tx_add(&cmds[ncmd], audmax);
    tx_add(&cmds[ncmd], "*");
    tx_add(&cmds[ncmd], "at");
    tx_add(&cmds[ncmd], now);
    tx_add(&cmds[ncmd], "action");
    tx_add(&cmds[ncmd], type ? type : "unknown");
    tx_add(&cmds[ncmd], "outcome");
    tx_add(&cmds[ncmd], ok ? "succeeded" : "failed");
    tx_add(&cmds[ncmd], "spaceId");
    tx_add(&cmds[ncmd], space_id ? space_id : "");
    tx_add(&cmds[ncmd], "jobId");
    tx_add(&cmds[ncmd], m->job_id);
    tx_add(&cmds[ncmd], "worker");
    tx_add(&cmds[ncmd], done && done->worker ? done->worker : "");
    tx_add(&cmds[ncmd], "requestedBy");
    tx_add(&cmds[ncmd], who);
    tx_add(&cmds[ncmd], "files");
    tx_add(&cmds[ncmd], nfiles);
    tx_add(&cmds[ncmd], "bytes");
    tx_add(&cmds[ncmd], nbytes);
    tx_add(&cmds[ncmd], "durationMs");
    tx_add(&cmds[ncmd], ms);
    tx_add(&cmds[ncmd], ok ? "result" : "error");
    tx_add(&cmds[ncmd], ok ? (result_json ? result_json : "{}")
                           : (error ? error : "failed"));
    ncmd++;
    minute_key(q, time(NULL), statkey, sizeof(statkey));
    tx_add(&cmds[ncmd], "HINCRBY");
    tx_add(&cmds[ncmd], statkey);
    tx_add(&cmds[ncmd], ok ? "succeeded" : "failed");
    tx_add(&cmds[ncmd], "1");
    ncmd++;
    if (ok) {
        tx_add(&cmds[ncmd], "HINCRBY");
        tx_add(&cmds[ncmd], statkey);
        tx_add(&cmds[ncmd], "bytes");
        tx_add(&cmds[ncmd], nbytes);
        ncmd++;
        tx_add(&cmds[ncmd], "HINCRBY");
        tx_add(&cmds[ncmd], statkey);
        tx_add(&cmds[ncmd], "files");
        tx_add(&cmds[ncmd], nfiles);
        ncmd++;
    }
    tx_add(&cmds[ncmd], "EXPIRE");
    tx_add(&cmds[ncmd], statkey);
    tx_add(&cmds[ncmd], "7200");
    ncmd++;
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
    return rc;
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

    key_of(q, "job:", job_id, key, sizeof(key));
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

/* ---- leases, locks, retries ---- */

/* m->deliveries from XPENDING (the count includes this delivery). */
static enum wk_code delivery_count(struct q *q, struct q_msg *m,
                                   struct wk_err *err)
{
    redisReply *rep;
    const char *argv[] = { "XPENDING",  m->stream,   Q_GROUP,
                           m->entry_id, m->entry_id, "1" };

    rep = q_cmds(q, err, "XPENDING", 6, argv);
    if (!rep)
        return err ? err->code : WK_E_NET;
    /* [[id, consumer, idle ms, deliveries]] */
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 &&
        rep->element[0]->type == REDIS_REPLY_ARRAY &&
        rep->element[0]->elements == 4 &&
        rep->element[0]->element[3]->type == REDIS_REPLY_INTEGER &&
        rep->element[0]->element[3]->integer > 0)
        m->deliveries = rep->element[0]->element[3]->integer > UINT_MAX
                            ? UINT_MAX
                            : (unsigned)rep->element[0]->element[3]->integer;
    freeReplyObject(rep);
    return WK_OK;
}

static enum wk_code reclaim_one(struct q *q, const char *suffix,
                                const char *consumer, unsigned min_idle_ms,
                                struct q_msg *out, bool *got,
                                struct wk_err *err)
{
    char stream[128], idle[16];
    redisReply *rep;
    enum wk_code rc = WK_OK;

    key_of(q, suffix, NULL, stream, sizeof(stream));
    snprintf(idle, sizeof(idle), "%u", min_idle_ms);
    const char *argv[] = { "XAUTOCLAIM", stream, Q_GROUP, consumer,
                           idle,         "0-0",  "COUNT", "1" };
    rep = q_cmds(q, err, "XAUTOCLAIM", 8, argv);
    if (!rep)
        return err ? err->code : WK_E_NET;
    /* [next cursor, [[id, [fields...]], ...], [deleted ids]] */
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements >= 2 &&
        rep->element[1]->type == REDIS_REPLY_ARRAY) {
        const redisReply *entries = rep->element[1];
        for (size_t i = 0; i < entries->elements && !*got; i++) {
            const redisReply *en = entries->element[i];
            if (en->type != REDIS_REPLY_ARRAY || en->elements < 2 ||
                en->element[1]->type != REDIS_REPLY_ARRAY)
                continue; /* deleted entry: XAUTOCLAIM drops it */
            rc = msg_from_entry(stream, en, out, err);
            if (rc == WK_OK)
                *got = true;
        }
    }
    freeReplyObject(rep);
    if (rc == WK_OK && *got)
        rc = delivery_count(q, out, err);
    return rc;
}

enum wk_code q_reclaim(struct q *q, const char *consumer, unsigned min_idle_ms,
                       struct q_msg *out, bool *got, struct wk_err *err)
{
    enum wk_code rc;

    *got = false;
    rc = reclaim_one(q, "jobs:urgent", consumer, min_idle_ms, out, got, err);
    if (rc == WK_OK && !*got)
        rc = reclaim_one(q, "jobs", consumer, min_idle_ms, out, got, err);
    return rc;
}

enum wk_code q_touch(struct q *q, const struct q_msg *m, const char *consumer,
                     bool *lost, struct wk_err *err)
{
    redisReply *rep;
    const char *argv[] = { "XCLAIM", m->stream,   Q_GROUP, consumer,
                           "0",      m->entry_id, "JUSTID" };

    *lost = false;
    rep = q_cmds(q, err, "XCLAIM", 7, argv);
    if (!rep)
        return err ? err->code : WK_E_NET;
    /* an entry that was acknowledged or deleted comes back empty */
    *lost = rep->type != REDIS_REPLY_ARRAY || rep->elements == 0;
    freeReplyObject(rep);
    return WK_OK;
}

static void lock_key(const struct q *q, const char *space_id, char *buf,
                     size_t len)
{
    snprintf(buf, len, "%slock:%s", q->prefix, space_id);
}

enum wk_code q_lock(struct q *q, const char *space_id, const char *token,
                    unsigned ttl_ms, bool *got, struct wk_err *err)
{
    char name[JOB_SPACE_ID_MAX + 8];
    snprintf(name, sizeof(name), "lock:%s", space_id);
    return q_named_lock(q, name, token, ttl_ms, got, NULL, 0, err);
}

enum wk_code q_lock_renew(struct q *q, const char *space_id, const char *token,
                          unsigned ttl_ms, bool *held, struct wk_err *err)
{
    char name[JOB_SPACE_ID_MAX + 8];
    snprintf(name, sizeof(name), "lock:%s", space_id);
    return q_named_lock_renew(q, name, token, ttl_ms, held, err);
}

enum wk_code q_unlock(struct q *q, const char *space_id, const char *token,
                      struct wk_err *err)
{
    char name[JOB_SPACE_ID_MAX + 8];
    snprintf(name, sizeof(name), "lock:%s", space_id);
    return q_named_unlock(q, name, token, err);
}

/* The lane of an entry without the prefix ("jobs" or "jobs:urgent"). */
static const char *lane_of(const struct q *q, const struct q_msg *m)
{
    size_t pl = strlen(q->prefix);
    if (strncmp(m->stream, q->prefix, pl) == 0)
        return m->stream + pl;
    return "jobs";
}

/* KEYS: job hash, delayed set, lane stream, running index. ARGV: group,
 * entry id, lane, due ms, delayed member, job id, then field/value pairs.
 * A job running under another delivery (both lanes of one job) is not
 * touched: this entry is only acknowledged. Returns 1, or 0 for that. */
static const char requeue_lua[] =
    "local f = redis.call('HMGET', KEYS[1], 'state', 'lane', 'entry')\n"
    "if f[1] == 'running' and f[3] and f[3] ~= '' and\n"
    "   (f[2] ~= ARGV[3] or f[3] ~= ARGV[2]) then\n"
    "  redis.call('XACK', KEYS[3], ARGV[1], ARGV[2])\n"
    "  return 0\n"
    "end\n"
    "redis.call('HSET', KEYS[1], unpack(ARGV, 7))\n"
    "redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])\n"
    "redis.call('XACK', KEYS[3], ARGV[1], ARGV[2])\n"
    "redis.call('ZREM', KEYS[4], ARGV[6])\n"
    "return 1\n";

enum wk_code q_requeue(struct q *q, const struct q_msg *m, uint64_t delay_ms,
                       const char *const *fields, struct wk_err *err)
{
    char key[256], delayed[128], now[40], due[32], running[128];
    const char *argv[Q_MAX_FIELDS * 2 + 8];
    int argc = 0;
    struct timespec ts;
    json_t *mem = NULL;
    char *mems = NULL;
    redisReply *rep;

    key_of(q, "job:", m->job_id, key, sizeof(key));
    key_of(q, "jobs:delayed", NULL, delayed, sizeof(delayed));
    key_of(q, "jobs:running", NULL, running, sizeof(running));
    q_now_rfc3339(now, sizeof(now));
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(due, sizeof(due), "%llu",
             (unsigned long long)ts.tv_sec * 1000ULL +
                 (unsigned long long)(ts.tv_nsec / 1000000) + delay_ms);
    mem = json_pack("{s:s, s:s, s:s%}", "id", m->job_id, "lane", lane_of(q, m),
                    "job", wk_buf_cstr(&m->json), m->json.len);
    mems = mem ? json_dumps(mem, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(mem);
    if (!mems)
        return wk_err_set(err, WK_E_NOMEM, "cannot encode the job");
    argv[argc++] = "EVAL";
    argv[argc++] = requeue_lua;
    argv[argc++] = "4";
    argv[argc++] = key;
    argv[argc++] = delayed;
    argv[argc++] = m->stream;
    argv[argc++] = running;
    argv[argc++] = Q_GROUP;
    argv[argc++] = m->entry_id;
    argv[argc++] = lane_of(q, m);
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

/* KEYS[1] delayed set; ARGV[1] now ms, ARGV[2] key prefix. */
static const char promote_lua[] =
    "local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1],\n"
    "                       'LIMIT', 0, 100)\n"
    "for _, m in ipairs(due) do\n"
    "  redis.call('ZREM', KEYS[1], m)\n"
    "  local ok, j = pcall(cjson.decode, m)\n"
    "  if ok and type(j) == 'table' and type(j.id) == 'string' and\n"
    "     (j.lane == 'jobs' or j.lane == 'jobs:urgent') then\n"
    "    redis.call('XADD', ARGV[2] .. j.lane, 'MAXLEN', '~', '100000', '*',\n"
    "               'id', j.id, 'job', j.job)\n"
    "  end\n"
    "end\n"
    "return #due\n";

enum wk_code q_promote_delayed(struct q *q, unsigned *moved, struct wk_err *err)
{
    char delayed[128], now[32];
    struct timespec ts;
    redisReply *rep;

    *moved = 0;
    key_of(q, "jobs:delayed", NULL, delayed, sizeof(delayed));
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(now, sizeof(now), "%llu",
             (unsigned long long)ts.tv_sec * 1000ULL +
                 (unsigned long long)(ts.tv_nsec / 1000000));
    const char *argv[] = { "EVAL", promote_lua, "1", delayed, now, q->prefix };
    rep = q_cmds(q, err, "promote", 6, argv);
    if (!rep)
        return err ? err->code : WK_E_NET;
    if (rep->type == REDIS_REPLY_INTEGER && rep->integer > 0)
        *moved = (unsigned)rep->integer;
    freeReplyObject(rep);
    return WK_OK;
}

/* KEYS[1] running index. ARGV: [1] now ms, [2] lease ms, [3] max attempts,
 * [4] key prefix, [5] now RFC 3339, [6] group, [7] batch, [8] audit max.
 * Returns {job id, "requeued"|"failed", ...}. */
static const char repair_lua[] =
    "local now, lease = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local pre = ARGV[4]\n"
    "local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - lease,\n"
    "                       'LIMIT', 0, tonumber(ARGV[7]))\n"
    "local out = {}\n"
    "for _, id in ipairs(ids) do\n"
    "  local h = pre .. 'job:' .. id\n"
    "  local f = redis.call('HMGET', h, 'state', 'lane', 'entry',\n"
    "                       'entryLostAt', 'attempts', 'spec', 'type',\n"
    "                       'spaceId')\n"
    "  local lane, entry, lost = f[2], f[3], tonumber(f[4])\n"
    "  if f[1] ~= 'running' or not entry or\n"
    "     (lane ~= 'jobs' and lane ~= 'jobs:urgent') then\n"
    "    redis.call('ZREM', KEYS[1], id)\n"
    "  else\n"
    "    local stream = pre .. lane\n"
    /* pending in the group and still in the stream (a trimmed entry stays
     * in the PEL, but XAUTOCLAIM only drops it) */
    "    local pending = false\n"
    "    local ok, r = pcall(redis.call, 'XPENDING', stream, ARGV[6], entry,\n"
    "                        entry, 1)\n"
    "    if ok and type(r) == 'table' and #r > 0 then\n"
    "      pending = #redis.call('XRANGE', stream, entry, entry) > 0\n"
    "    end\n"
    "    if pending then\n"
    "      if lost then redis.call('HDEL', h, 'entryLostAt') end\n"
    "      redis.call('ZADD', KEYS[1], now, id)\n"
    "    elseif not lost then\n"
    /* seen gone once: a live owner notices within a lease (its heartbeat
     * finds the entry gone); look again after a whole lease */
    "      redis.call('HSET', h, 'entryLostAt', ARGV[1])\n"
    "      redis.call('ZADD', KEYS[1], now, id)\n"
    "    elseif now - lost < lease then\n"
    "      redis.call('ZADD', KEYS[1], lost, id)\n"
    "    else\n"
    "      local spec, jt, sp = f[6], f[7], f[8]\n"
    "      local attempts = tonumber(f[5]) or 0\n"
    "      redis.call('ZREM', KEYS[1], id)\n"
    "      redis.call('HDEL', h, 'entryLostAt', 'lane', 'entry')\n"
    "      if spec and attempts < tonumber(ARGV[3]) then\n"
    "        redis.call('HSET', h, 'state', 'queued', 'phase', '',\n"
    "                   'waiting', 'its queue entry was lost: queued again',\n"
    "                   'updatedAt', ARGV[5])\n"
    "        redis.call('XADD', stream, 'MAXLEN', '~', '100000', '*',\n"
    "                   'id', id, 'job', spec)\n"
    "        out[#out + 1] = id\n"
    "        out[#out + 1] = 'requeued'\n"
    "      else\n"
    "        local msg = 'the queue entry of this running job was lost ' ..\n"
    "          '(acknowledged, trimmed or its consumer deleted) after ' ..\n"
    "          attempts .. ' runs'\n"
    "        if not spec then\n"
    "          msg = msg .. ', and no spec is kept to queue it again'\n"
    "        else\n"
    "          msg = msg .. ' (SILA_MAX_ATTEMPTS is ' .. ARGV[3] .. ')'\n"
    "        end\n"
    "        redis.call('HSET', h, 'state', 'failed', 'error', msg,\n"
    "                   'phase', '', 'finishedAt', ARGV[5],\n"
    "                   'updatedAt', ARGV[5])\n"
    "        redis.call('EXPIRE', h, 604800)\n"
    "        local rb = ''\n"
    "        if spec then\n"
    "          local okj, j = pcall(cjson.decode, spec)\n"
    "          if okj and type(j) == 'table' and\n"
    "             type(j.requestedBy) == 'string' then rb = j.requestedBy end\n"
    "        end\n"
    "        if jt and sp then\n"
    "          local dk = pre .. 'dedup:' .. jt .. ':' .. sp\n"
    "          if redis.call('GET', dk) == id then redis.call('DEL', dk) end\n"
    "          if jt == 'unarchive' then\n"
    "            redis.call('PUBLISH', pre .. 'space:' .. sp, cjson.encode(\n"
    "              {event = 'failed', spaceId = sp, jobId = id, error = "
    "msg}))\n"
    "          end\n"
    "        end\n"
    "        redis.call('XADD', pre .. 'jobs:dead', 'MAXLEN', '~', '10000',\n"
    "                   '*', 'id', id, 'job', spec or '', 'error', msg,\n"
    "                   'failedAt', ARGV[5])\n"
    "        redis.call('XADD', pre .. 'audit', 'MAXLEN', '~', ARGV[8], '*',\n"
    "                   'at', ARGV[5], 'action', jt or 'unknown',\n"
    "                   'outcome', 'failed', 'spaceId', sp or '',\n"
    "                   'jobId', id, 'worker', 'repair', 'requestedBy', rb,\n"
    "                   'files', '0', 'bytes', '0', 'durationMs', '0',\n"
    "                   'error', msg)\n"
    "        redis.call('PUBLISH', h, cjson.encode(\n"
    "          {jobId = id, state = 'failed', error = msg}))\n"
    "        out[#out + 1] = id\n"
    "        out[#out + 1] = 'failed'\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return out\n";

enum wk_code q_repair(struct q *q, unsigned lease_ms, unsigned max_attempts,
                      unsigned *requeued, unsigned *failed, struct wk_err *err)
{
    char running[128], now_ms[32], now[40], lease[16], maxa[16], batch[8];
    char audmax[16];
    redisReply *rep;

    *requeued = *failed = 0;
    key_of(q, "jobs:running", NULL, running, sizeof(running));
    now_ms_str(now_ms, sizeof(now_ms));
    q_now_rfc3339(now, sizeof(now));
    snprintf(lease, sizeof(lease), "%u", lease_ms);
    snprintf(maxa, sizeof(maxa), "%u", max_attempts);
    snprintf(batch, sizeof(batch), "%d", Q_REPAIR_BATCH);
    snprintf(audmax, sizeof(audmax), "%d", Q_AUDIT_MAX);
    const char *argv[] = { "EVAL", repair_lua, "1", running, now_ms, lease,
                           maxa,   q->prefix,  now, Q_GROUP, batch,  audmax };
    rep = q_cmds(q, err, "repair", (int)(sizeof(argv) / sizeof(argv[0])), argv);
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

/* KEYS[1] job hash, KEYS[2] dead stream, KEYS[3] lane stream.
 * ARGV[1] id, ARGV[2] now. */
static const char retry_lua[] =
    "local st = redis.call('HGET', KEYS[1], 'state')\n"
    "if st ~= 'failed' then return {0, st or ''} end\n"
    "local spec = redis.call('HGET', KEYS[1], 'spec')\n"
    "if not spec then return {0, 'nospec'} end\n"
    "local ents = redis.call('XRANGE', KEYS[2], '-', '+')\n"
    "for _, e in ipairs(ents) do\n"
    "  local f = e[2]\n"
    "  for i = 1, #f, 2 do\n"
    "    if f[i] == 'id' and f[i + 1] == ARGV[1] then\n"
    "      redis.call('XDEL', KEYS[2], e[1])\n"
    "    end\n"
    "  end\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'state', 'queued', 'attempts', '0',\n"
    "           'error', '', 'progress', '0', 'updatedAt', ARGV[2])\n"
    "redis.call('PERSIST', KEYS[1])\n"
    "redis.call('XADD', KEYS[3], 'MAXLEN', '~', '100000', '*', 'id',\n"
    "           ARGV[1], 'job', spec)\n"
    "return {1, 'queued'}\n";

enum wk_code q_retry(struct q *q, const char *job_id, struct wk_err *err)
{
    char key[256], dead[128], lane[128], now[40];
    redisReply *rep;
    enum wk_code rc = WK_OK;

    key_of(q, "job:", job_id, key, sizeof(key));
    key_of(q, "jobs:dead", NULL, dead, sizeof(dead));
    key_of(q, "jobs", NULL, lane, sizeof(lane));
    q_now_rfc3339(now, sizeof(now));
    const char *argv[] = {
        "EVAL", retry_lua, "3", key, dead, lane, job_id, now
    };
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
static enum wk_code scan_jobs(struct q *q,
                              enum wk_code (*fn)(struct q *q, const char *key,
                                                 void *ud, struct wk_err *err),
                              void *ud, struct wk_err *err)
{
    char pattern[160], cursor[32] = "0";
    enum wk_code rc = WK_OK;

    snprintf(pattern, sizeof(pattern), "%sjob:*", q->prefix);
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
        json_object_set_new(o, "id", json_string(k + strlen(q->prefix) + 4));
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

    key_of(q, "jobs:dead", NULL, dead, sizeof(dead));
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

/* ---- sweep ---- */

enum wk_code q_lock_token(char *out, size_t len, struct wk_err *err)
{
    char host[128] = "", rnd[17];
    enum wk_code rc = random_hex(rnd, 8, err);

    if (rc != WK_OK)
        return rc;
    if (gethostname(host, sizeof(host) - 1) != 0 || !host[0])
        snprintf(host, sizeof(host), "host");
    snprintf(out, len, "%s-%ld-%s", host, (long)getpid(), rnd);
    return WK_OK;
}

enum wk_code q_named_lock(struct q *q, const char *name, const char *token,
                          unsigned ttl_ms, bool *got, char *holder,
                          size_t holder_len, struct wk_err *err)
{
    char key[256], ttl[16];
    redisReply *rep;

    *got = false;
    if (holder && holder_len)
        holder[0] = '\0';
    key_of(q, name, NULL, key, sizeof(key));
    snprintf(ttl, sizeof(ttl), "%u", ttl_ms);
    const char *argv[] = { "SET", key, token, "NX", "PX", ttl };
    rep = q_cmds(q, err, "SET NX", 6, argv);
    if (!rep)
        return err ? err->code : WK_E_NET;
    *got = rep->type == REDIS_REPLY_STATUS;
    freeReplyObject(rep);
    if (*got || !holder || !holder_len)
        return WK_OK;
    const char *gargv[] = { "GET", key };
    rep = q_cmds(q, err, "GET", 2, gargv);
    if (!rep)
        return err ? err->code : WK_E_NET;
    if (rep->type == REDIS_REPLY_STRING)
        snprintf(holder, holder_len, "%s", rep->str);
    freeReplyObject(rep);
    return WK_OK;
}

enum wk_code q_named_lock_renew(struct q *q, const char *name,
                                const char *token, unsigned ttl_ms, bool *held,
                                struct wk_err *err)
{
    char key[256], ttl[16];
    redisReply *rep;

    *held = false;
    key_of(q, name, NULL, key, sizeof(key));
    snprintf(ttl, sizeof(ttl), "%u", ttl_ms);
    const char *argv[] = {
        "EVAL",
        "if redis.call('GET', KEYS[1]) == ARGV[1] then "
        "return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0",
        "1",
        key,
        token,
        ttl
    };
    rep = q_cmds(q, err, "lock renew", 6, argv);
    if (!rep)
        return err ? err->code : WK_E_NET;
    *held = rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
    freeReplyObject(rep);
    return WK_OK;
}

enum wk_code q_named_unlock(struct q *q, const char *name, const char *token,
                            struct wk_err *err)
{
    char key[256];
    redisReply *rep;

    key_of(q, name, NULL, key, sizeof(key));
    const char *argv[] = { "EVAL",
                           "if redis.call('GET', KEYS[1]) == ARGV[1] then "
                           "return redis.call('DEL', KEYS[1]) end return 0",
                           "1", key, token };
    rep = q_cmds(q, err, "unlock", 5, argv);
    if (!rep)
        return err ? err->code : WK_E_NET;
    freeReplyObject(rep);
    return WK_OK;
}

enum wk_code q_activity_count(struct q *q, uint64_t *count, struct wk_err *err)
{
    char key[128];
    redisReply *rep;

    *count = 0;
    key_of(q, "activity", NULL, key, sizeof(key));
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

enum wk_code q_activity_scores(struct q *q, const char *const *space_ids,
                               size_t n, int64_t *last, bool *present,
                               struct wk_err *err)
{
    char key[128];
    enum wk_code rc = WK_OK;
    size_t got = 0;

    key_of(q, "activity", NULL, key, sizeof(key));
    for (size_t i = 0; i < n; i++) {
        last[i] = 0;
        present[i] = false;
    }
    if (!q->c)
        return wk_err_set(err, WK_E_NET, "redis ZSCORE: not connected");
    /* one round trip for the whole batch: append all, then read all */
    for (size_t i = 0; i < n; i++) {
        const char *argv[] = { "ZSCORE", key, space_ids[i] };
        size_t lens[] = { 6, strlen(key), strlen(space_ids[i]) };
        if (redisAppendCommandArgv(q->c, 3, argv, lens) != REDIS_OK) {
            /* a half-sent pipeline would skew every later reply */
            redisFree(q->c);
            q->c = NULL;
            return wk_err_set(err, WK_E_NOMEM, "redis ZSCORE: out of memory");
        }
    }
    for (got = 0; got < n; got++) {
        void *r = NULL;
        redisReply *rep;
        if (redisGetReply(q->c, &r) != REDIS_OK)
            r = NULL;
        rep = r;
        if (reply_check(q, rep, "ZSCORE", err) != WK_OK) {
            if (!rep)
                return err ? err->code : WK_E_NET; /* context is gone */
            rc = err ? err->code : WK_E_INTERNAL;  /* keep reading replies */
        } else if (rep->type == REDIS_REPLY_STRING) {
            present[got] = score_seconds(rep->str, &last[got]);
        }
        freeReplyObject(rep);
    }
    return rc;
}

/* KEYS: lock, dedup:archive, dedup:unarchive. ARGV[1]: "<prefix>job:".
 * Returns {locked 0|1, pending job id or ""}. */
static const char space_busy_lua[] =
    "local locked = redis.call('EXISTS', KEYS[1])\n"
    "for i = 2, 3 do\n"
    "  local id = redis.call('GET', KEYS[i])\n"
    "  if id then\n"
    "    local st = redis.call('HGET', ARGV[1] .. id, 'state')\n"
    "    if st == 'queued' or st == 'running' or st == 'retrying' then\n"
    "      return {locked, id}\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return {locked, ''}\n";

enum wk_code q_space_busy(struct q *q, const char *space_id, bool *locked,
                          char *pending_id, size_t pending_len,
                          struct wk_err *err)
{
    char lock[256], da[256], du[256], hprefix[128];
    redisReply *rep;
    enum wk_code rc = WK_OK;

    *locked = false;
    if (pending_len)
        pending_id[0] = '\0';
    lock_key(q, space_id, lock, sizeof(lock));
    snprintf(da, sizeof(da), "%sdedup:archive:%s", q->prefix, space_id);
    snprintf(du, sizeof(du), "%sdedup:unarchive:%s", q->prefix, space_id);
    key_of(q, "job:", NULL, hprefix, sizeof(hprefix));
    const char *argv[] = { "EVAL", space_busy_lua, "3", lock, da, du, hprefix };
    rep = q_cmds(q, err, "space busy", 7, argv);
    if (!rep)
        return err ? err->code : WK_E_NET;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER ||
        rep->element[1]->type != REDIS_REPLY_STRING) {
        rc = wk_err_set(err, WK_E_INTERNAL, "redis space busy: bad reply");
    } else {
        *locked = rep->element[0]->integer == 1;
        if (pending_len)
            snprintf(pending_id, pending_len, "%s", rep->element[1]->str);
    }
    freeReplyObject(rep);
    return rc;
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
    key_of(q, "jobs", NULL, k, sizeof(k));
    lane_depth(q, k, &out->waiting[0], &out->running[0], &e);
    key_of(q, "jobs:urgent", NULL, k, sizeof(k));
    lane_depth(q, k, &out->waiting[1], &out->running[1], &e);
    key_of(q, "jobs:delayed", NULL, k, sizeof(k));
    out->delayed = int_reply(q, "ZCARD", k, &e);
    key_of(q, "jobs:dead", NULL, k, sizeof(k));
    out->dead = int_reply(q, "XLEN", k, &e);
    /* a lane without the group yet is no error; a dead connection is */
    if (e.code == WK_E_NET)
        return wk_err_copy(err, &e);
    return WK_OK;
}

enum wk_code q_ping(struct q *q, struct wk_err *err)
{
    const char *argv[] = { "PING" };
    redisReply *rep = q_cmds(q, err, "PING", 1, argv);

    if (!rep)
        return err && err->code ? err->code : WK_E_NET;
    freeReplyObject(rep);
    return WK_OK;
}

enum wk_code q_audit_tail(struct q *q, unsigned n, struct wk_buf *out,
                          struct wk_err *err)
{
    char k[160], cnt[16];
    const char *argv[] = { "XREVRANGE", k, "+", "-", "COUNT", cnt };
    redisReply *rep;
    enum wk_code rc = WK_OK;

    key_of(q, "audit", NULL, k, sizeof(k));
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

/* The throughput hash of the minute t falls in. */
static void minute_key(const struct q *q, time_t t, char *buf, size_t len)
{
    char stamp[32];
    wk_fmt_stamp(t - t % 60, stamp, sizeof(stamp));
    snprintf(buf, len, "%sstats:%.13s", q->prefix, stamp); /* ...THHMM */
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
        minute_key(q, now - (time_t)m * 60, k, sizeof(k));
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

/* ---- ownership (fencing) ---- */

/* Both halves of a lease, checked and extended in one step: the space
 * lock must hold our token and the stream entry must be pending to us.
 * XCLAIM with min-idle 0 would take an entry from anyone, so the owner is
 * read first (XPENDING) and the entry is claimed only when it is ours.
 * A Redis that lost its data (no lock, no stream at all: restarted empty,
 * flushed) cannot have handed the job to anyone: the lock is taken again
 * (2), and from then on the lock alone is checked (ARGV[6] = "1"). */
static const char own_lua[] =
    "local cur = redis.call('GET', KEYS[2]) "
    "if not cur then "
    "  if ARGV[6] ~= '1' and redis.call('EXISTS', KEYS[1]) == 0 then "
    "    redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[5]) return 2 end "
    "  return 0 end "
    "if cur ~= ARGV[4] then return 0 end "
    "if ARGV[6] ~= '1' then "
    "  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], "
    "1) "
    "  if #p == 0 or p[1][2] ~= ARGV[3] then return -1 end "
    "  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, ARGV[2], 'JUSTID') "
    "end "
    "redis.call('PEXPIRE', KEYS[2], ARGV[5]) "
    "return 1";

enum wk_code q_own_renew(struct q *q, const struct q_msg *m,
                         const char *consumer, const char *space_id,
                         const char *token, unsigned ttl_ms, bool lock_only,
                         enum q_own *state, struct wk_err *err)
{
    char lock[JOB_SPACE_ID_MAX + 80], ttl[16];
    redisReply *rep;

    *state = Q_OWN_NONE;
    lock_key(q, space_id, lock, sizeof(lock));
    snprintf(ttl, sizeof(ttl), "%u", ttl_ms);
    const char *argv[] = { "EVAL",
                           own_lua,
                           "2",
                           m->stream,
                           lock,
                           Q_GROUP,
                           m->entry_id,
                           consumer,
                           token,
                           ttl,
                           lock_only ? "1" : "0" };
    rep = q_cmds(q, err, "ownership check", 11, argv);
    if (!rep)
        return err ? err->code : WK_E_NET;
    if (rep->type == REDIS_REPLY_INTEGER)
        *state = rep->integer == 1    ? Q_OWN_HELD
                 : rep->integer == 2  ? Q_OWN_RELOCKED
                 : rep->integer == -1 ? Q_OWN_ENTRY_LOST
                                      : Q_OWN_LOCK_LOST;
    freeReplyObject(rep);
    return WK_OK;
}
