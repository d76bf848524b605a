/* q_lock: leases and locks: the per-space lock and the named locks (the
 * sweep's), their tokens, the ownership check that extends a space lock
 * and a stream entry together (fencing), and the sweep's one-script look
 * at whether a space is locked or has a job pending. */
#include "worker/q_int.h"
#include "worker/q_lock.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "worker/q_lua.h"

enum wk_code q_lock_token(char *out, size_t len, struct wk_err *err)
{
    char host[128] = "", rnd[17];
    enum wk_code rc = q_random_hex(rnd, 8, err);

    if (rc != WK_OK)
        return rc;
    if (gethostname(host, sizeof(host) - 1) != 0 || !host[0])
        snprintf(host, sizeof(host), "host");
    snprintf(out, len, "%s-%ld-%s", host, (long)getpid(), rnd);
    return WK_OK;
}

/* SET NX PX of the lock key; see q_named_lock. */
static enum wk_code lock_take(struct q *q, const char *key, const char *token,
                              unsigned ttl_ms, bool *got, char *holder,
                              size_t holder_len, struct wk_err *err)
{
    char ttl[16];
    redisReply *rep;

    *got = false;
    if (holder && holder_len)
        holder[0] = '\0';
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

static enum wk_code lock_renew(struct q *q, const char *key, const char *token,
                               unsigned ttl_ms, bool *held, struct wk_err *err)
{
    char ttl[16];
    redisReply *rep;

    *held = false;
    snprintf(ttl, sizeof(ttl), "%u", ttl_ms);
    const char *argv[] = { "EVAL", q_lua_pexpire_if, "1", key, token, ttl };
    rep = q_cmds(q, err, "lock renew", 6, argv);
    if (!rep)
        return err ? err->code : WK_E_NET;
    *held = rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
    freeReplyObject(rep);
    return WK_OK;
}

static enum wk_code lock_release(struct q *q, const char *key,
                                 const char *token, struct wk_err *err)
{
    const char *argv[] = { "EVAL", q_lua_del_if, "1", key, token };
    return q_cmds_ok(q, err, "unlock", 5, argv);
}

/* The key of a named lock (space_id NULL) or of a space lock, into buf. */
static const char *lock_key(const struct q *q, const char *name,
                            const char *space_id, char *buf, size_t len)
{
    if (space_id)
        q_key_lock(q->prefix, space_id, buf, len);
    else
        q_key_named(q->prefix, name, buf, len);
    return buf;
}

enum wk_code q_named_lock(struct q *q, const char *name, const char *token,
                          unsigned ttl_ms, bool *got, char *holder,
                          size_t holder_len, struct wk_err *err)
{
    char k[256];
    return lock_take(q, lock_key(q, name, NULL, k, sizeof(k)), token, ttl_ms,
                     got, holder, holder_len, err);
}

enum wk_code q_named_lock_renew(struct q *q, const char *name,
                                const char *token, unsigned ttl_ms, bool *held,
                                struct wk_err *err)
{
    char k[256];
    return lock_renew(q, lock_key(q, name, NULL, k, sizeof(k)), token, ttl_ms,
                      held, err);
}

enum wk_code q_named_unlock(struct q *q, const char *name, const char *token,
                            struct wk_err *err)
{
    char k[256];
    return lock_release(q, lock_key(q, name, NULL, k, sizeof(k)), token, err);
}

enum wk_code q_lock(struct q *q, const char *space_id, const char *token,
                    unsigned ttl_ms, bool *got, struct wk_err *err)
{
    char k[256];
    return lock_take(q, lock_key(q, NULL, space_id, k, sizeof(k)), token,
                     ttl_ms, got, NULL, 0, err);
}

enum wk_code q_lock_renew(struct q *q, const char *space_id, const char *token,
                          unsigned ttl_ms, bool *held, struct wk_err *err)
{
    char k[256];
    return lock_renew(q, lock_key(q, NULL, space_id, k, sizeof(k)), token,
                      ttl_ms, held, err);
}

enum wk_code q_unlock(struct q *q, const char *space_id, const char *token,
                      struct wk_err *err)
{
    char k[256];
    return lock_release(q, lock_key(q, NULL, space_id, k, sizeof(k)), token,
                        err);
}

/* Tries of q_space_busy when a dedup key changes between its read and the
 * script. */
#define Q_BUSY_TRIES 100

/* The value of a dedup key ("" for none) and the key of the hash it names
 * (the dedup key itself for none), for q_lua_space_busy. */
static enum wk_code dedup_read(struct q *q, const char *dedup, char *id,
                               size_t id_len, char *hash, size_t hash_len,
                               struct wk_err *err)
{
    const char *argv[] = { "GET", dedup };
    redisReply *rep = q_cmds(q, err, "space busy", 2, argv);

    if (!rep)
        return err ? err->code : WK_E_NET;
    snprintf(id, id_len, "%s", rep->type == REDIS_REPLY_STRING ? rep->str : "");
    if (rep->type == REDIS_REPLY_STRING)
        q_key_job(q->prefix, id, hash, hash_len);
    else
        snprintf(hash, hash_len, "%s", dedup);
    freeReplyObject(rep);
    return WK_OK;
}

enum wk_code q_space_busy(struct q *q, const char *space_id, bool *locked,
                          char *pending_id, size_t pending_len,
                          struct wk_err *err)
{
    char lock[256], da[256], du[256], ha[640], hu[640];
    char ida[512], idu[512]; /* a dedup value is a job id */
    redisReply *rep = NULL;
    enum wk_code rc = WK_OK;

    *locked = false;
    if (pending_len)
        pending_id[0] = '\0';
    q_key_lock(q->prefix, space_id, lock, sizeof(lock));
    q_key_dedup(q->prefix, "archive", space_id, da, sizeof(da));
    q_key_dedup(q->prefix, "unarchive", space_id, du, sizeof(du));
    for (int tries = 0; tries < Q_BUSY_TRIES; tries++) {
        rc = dedup_read(q, da, ida, sizeof(ida), ha, sizeof(ha), err);
        if (rc == WK_OK)
            rc = dedup_read(q, du, idu, sizeof(idu), hu, sizeof(hu), err);
        if (rc != WK_OK)
            return rc;
        const char *argv[] = {
            "EVAL", q_lua_space_busy, "5", lock, da, du, ha, hu, ida, idu
        };
        rep = q_cmds(q, err, "space busy", 10, argv);
        if (!rep)
            return err ? err->code : WK_E_NET;
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
            rep->element[0]->type != REDIS_REPLY_INTEGER ||
            rep->element[0]->integer != Q_LUA_STALE)
            break;
        freeReplyObject(rep);
        rep = NULL;
    }
    if (!rep)
        return wk_err_set(err, WK_E_NET,
                          "redis space busy: the dedup keys keep changing");
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

enum wk_code q_own_renew(struct q *q, const struct q_msg *m,
                         const char *consumer, const char *space_id,
                         const char *token, unsigned ttl_ms, bool lock_only,
                         enum q_own *state, struct wk_err *err)
{
    char lock[JOB_SPACE_ID_MAX + 80], ttl[16];
    redisReply *rep;

    *state = Q_OWN_NONE;
    q_key_lock(q->prefix, space_id, lock, sizeof(lock));
    snprintf(ttl, sizeof(ttl), "%u", ttl_ms);
    const char *argv[] = { "EVAL",
                           q_lua_own,
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

enum wk_code q_mf_record(struct q *q, const char *space_id, const char *token,
                         bool has_cur, const char *cur, size_t cur_len,
                         const char *body, size_t len, struct wk_buf *newest,
                         struct wk_err *err)
{
    char lock[JOB_SPACE_ID_MAX + 80], rec[JOB_SPACE_ID_MAX + 80], at[24],
        ttl[24];
    struct timespec ts;
    redisReply *rep;
    enum wk_code rc = WK_OK;

    wk_buf_reset(newest);
    q_key_lock(q->prefix, space_id, lock, sizeof(lock));
    q_key_mf(q->prefix, space_id, rec, sizeof(rec));
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(at, sizeof(at), "%lld",
             (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    snprintf(ttl, sizeof(ttl), "%lld", (long long)Q_MF_TTL_MS);
    const char *argv[] = {
        "EVAL", q_lua_mf_record,     "2",           lock, rec, token, body, at,
        ttl,    has_cur ? "1" : "0", cur ? cur : ""
    };
    size_t lens[] = { 4,
                      strlen(q_lua_mf_record),
                      1,
                      strlen(lock),
                      strlen(rec),
                      strlen(token),
                      len,
                      strlen(at),
                      strlen(ttl),
                      1,
                      cur ? cur_len : 0 };
    rep = q_cmd(q, err, "manifest record", 11, argv, lens);
    if (!rep)
        return err->code ? err->code : WK_E_NET;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER ||
        rep->element[1]->type != REDIS_REPLY_STRING) {
        rc =
            wk_err_set(err, WK_E_INTERNAL, "manifest record: unexpected reply");
    } else if (rep->element[0]->integer == 0) {
        rc = wk_err_set(err, WK_E_FENCED,
                        "manifest of '%s' not recorded: the space lock no "
                        "longer holds this run's token",
                        space_id);
    } else if (rep->element[0]->integer == 2) {
        rc = wk_buf_append(newest, rep->element[1]->str, rep->element[1]->len,
                           err);
        if (rc == WK_OK)
            rc = wk_err_set(err, WK_E_CONFLICT,
                            "manifest of '%s': S3 holds an older manifest "
                            "than the last confirmed one (a stale writer's)",
                            space_id);
    }
    freeReplyObject(rep);
    return rc;
}

enum wk_code q_mf_check(struct q *q, const char *space_id, const char *token,
                        const char *body, size_t len, struct wk_buf *newest,
                        struct wk_err *err)
{
    char lock[JOB_SPACE_ID_MAX + 80], rec[JOB_SPACE_ID_MAX + 80];
    redisReply *rep;
    enum wk_code rc = WK_OK;

    wk_buf_reset(newest);
    q_key_lock(q->prefix, space_id, lock, sizeof(lock));
    q_key_mf(q->prefix, space_id, rec, sizeof(rec));
    const char *argv[] = {
        "EVAL", q_lua_mf_check, "2", lock, rec, token, body
    };
    size_t lens[] = { 4,           strlen(q_lua_mf_check), 1,  strlen(lock),
                      strlen(rec), strlen(token),          len };
    rep = q_cmd(q, err, "manifest check", 7, argv, lens);
    if (!rep)
        return err->code ? err->code : WK_E_NET;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER ||
        rep->element[1]->type != REDIS_REPLY_STRING) {
        rc = wk_err_set(err, WK_E_INTERNAL, "manifest check: unexpected reply");
    } else if (rep->element[0]->integer != 1) {
        rc = wk_buf_append(newest, rep->element[1]->str, rep->element[1]->len,
                           err);
        if (rc == WK_OK)
            rc = wk_err_set(err, WK_E_FENCED,
                            "manifest of '%s': a newer one was recorded, or "
                            "the space lock moved on",
                            space_id);
    }
    freeReplyObject(rep);
    return rc;
}
