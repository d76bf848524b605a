/* q_claim: the stream entries of the two lanes: reading one for this
 * consumer (urgent lane first, the other lane's entry given back; or the
 * urgent lane alone, for an urgent runner),
 * reclaiming one whose worker stopped renewing it, renewing our hold on
 * it (q_touch) and acknowledging it; plus the parsing of an entry into a
 * struct q_msg. */
#include "worker/q_int.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "common/wk_fail.h"
#include "common/wk_log.h"

void q_msg_init(struct q_msg *m)
{
    memset(m, 0, sizeof(*m));
    wk_buf_init(&m->json, 1u << 20);
}

void q_msg_release(struct q_msg *m)
{
    wk_buf_release(&m->json);
}

/* The lane of an entry without the prefix ("jobs" or "jobs:urgent"). */
const char *q_lane_of(const struct q *q, const struct q_msg *m)
{
    return q_key_lane_of(q->prefix, m->stream);
}

static const redisReply *field_of(const redisReply *kv, const char *name)
{
    for (size_t i = 0; i + 1 < kv->elements; i += 2)
        if (kv->element[i]->type == REDIS_REPLY_STRING &&
            strcmp(kv->element[i]->str, name) == 0)
            return kv->element[i + 1];
    return NULL;
}

enum wk_code q_msg_from_entry(const char *stream, const redisReply *entry,
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
    q_key_lane(q->prefix, false, normal, sizeof(normal));
    q_key_lane(q->prefix, true, urgent, sizeof(urgent));
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
            rc = q_msg_from_entry(st->element[0]->str,
                                  st->element[1]->element[0], &out[*nout], err);
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
    const char *argv[] = {
        "XCLAIM",     m->stream,   Q_GROUP, consumer,
        "0",          m->entry_id, "IDLE",  Q_GIVE_BACK_IDLE_MS,
        "RETRYCOUNT", "0",         "JUSTID"
    };

    return q_cmds_ok(q, err, "XCLAIM", (int)(sizeof(argv) / sizeof(argv[0])),
                     argv);
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

enum wk_code q_claim_urgent(struct q *q, const char *consumer,
                            unsigned block_ms, struct q_msg *out, bool *got,
                            struct wk_err *err)
{
    size_t n = 0;
    enum wk_code rc = read_group(q, consumer, block_ms, false, out, &n, err);

    *got = rc == WK_OK && n == 1;
    return rc;
}

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

static enum wk_code reclaim_one(struct q *q, bool urgent, const char *consumer,
                                unsigned min_idle_ms, struct q_msg *out,
                                bool *got, struct wk_err *err)
{
    char stream[128], idle[16];
    redisReply *rep;
    enum wk_code rc = WK_OK;

    q_key_lane(q->prefix, urgent, stream, sizeof(stream));
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
            rc = q_msg_from_entry(stream, en, out, err);
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
    rc = reclaim_one(q, true, consumer, min_idle_ms, out, got, err);
    if (rc == WK_OK && !*got)
        rc = reclaim_one(q, false, consumer, min_idle_ms, out, got, err);
    return rc;
}

enum wk_code q_reclaim_urgent(struct q *q, const char *consumer,
                              unsigned min_idle_ms, struct q_msg *out,
                              bool *got, struct wk_err *err)
{
    *got = false;
    return reclaim_one(q, true, consumer, min_idle_ms, out, got, err);
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

enum wk_code q_ack(struct q *q, const struct q_msg *m, struct wk_err *err)
{
    const char *argv[] = { "XACK", m->stream, Q_GROUP, m->entry_id };
    return q_cmds_ok(q, err, "XACK", 4, argv);
}
