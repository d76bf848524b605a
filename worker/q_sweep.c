/* q_sweep: the sweep's cursor hash, read plainly and written by a script
 * that checks the sweep lock and the cursor first (see q_sweep.h). */
#include "worker/q_int.h"
#include "worker/q_sweep.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/wk_parse.h"
#include "worker/q_lua.h"

/* The fields, in the order of HMGET and of the script's pairs. */
static const char *const fields[] = {
    "after",      "passes",         "passStartedAt", "passSpaces",
    "lastPassAt", "lastPassSpaces", "runs",
};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

static uint64_t as_u64(const redisReply *r)
{
    uint64_t v = 0;
    if (r->type != REDIS_REPLY_STRING ||
        wk_parse_u64(r->str, &v, NULL) != WK_OK)
        return 0;
    return v;
}

static int64_t as_time(const redisReply *r)
{
    time_t t = 0;
    if (r->type != REDIS_REPLY_STRING ||
        wk_parse_rfc3339(r->str, &t, NULL) != WK_OK)
        return 0;
    return (int64_t)t;
}

enum wk_code q_sweep_cursor_load(struct q *q, struct q_sweep_cursor *c,
                                 struct wk_err *err)
{
    char key[128];
    const char *argv[2 + NFIELDS];
    redisReply *rep;

    memset(c, 0, sizeof(*c));
    q_key_sweep_cursor(q->prefix, key, sizeof(key));
    argv[0] = "HMGET";
    argv[1] = key;
    for (size_t i = 0; i < NFIELDS; i++)
        argv[2 + i] = fields[i];
    rep = q_cmds(q, err, "HMGET sweep cursor", (int)(2 + NFIELDS), argv);
    if (!rep)
        return err ? err->code : WK_E_NET;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != NFIELDS) {
        freeReplyObject(rep);
        return wk_err_set(err, WK_E_INTERNAL, "redis HMGET '%s': bad reply",
                          key);
    }
    if (rep->element[0]->type == REDIS_REPLY_STRING &&
        rep->element[0]->len <= SWEEP_CURSOR_MAX)
        snprintf(c->after, sizeof(c->after), "%s", rep->element[0]->str);
    c->passes = as_u64(rep->element[1]);
    c->pass_started_at = as_time(rep->element[2]);
    c->pass_spaces = as_u64(rep->element[3]);
    c->last_pass_at = as_time(rep->element[4]);
    c->last_pass_spaces = as_u64(rep->element[5]);
    c->runs = as_u64(rep->element[6]);
    freeReplyObject(rep);
    return WK_OK;
}

static void fmt_time(int64_t t, char *buf, size_t len)
{
    if (t > 0)
        wk_fmt_rfc3339((time_t)t, buf, len);
    else
        buf[0] = '\0';
}

enum wk_code q_sweep_cursor_save(struct q *q, const char *lock_name,
                                 const char *token, const char *expect_after,
                                 const struct q_sweep_cursor *c, int64_t now,
                                 bool *saved, struct wk_err *err)
{
    char lock[256], key[128], passes[24], started[32], pspaces[24];
    char last[32], lspaces[24], runs[24], updated[32];
    const char *argv[7 + 2 * (NFIELDS + 1)];
    const char *vals[NFIELDS + 1];
    int argc = 0;
    redisReply *rep;

    *saved = false;
    q_key_named(q->prefix, lock_name, lock, sizeof(lock));
    q_key_sweep_cursor(q->prefix, key, sizeof(key));
    snprintf(passes, sizeof(passes), "%llu", (unsigned long long)c->passes);
    fmt_time(c->pass_started_at, started, sizeof(started));
    snprintf(pspaces, sizeof(pspaces), "%llu",
             (unsigned long long)c->pass_spaces);
    fmt_time(c->last_pass_at, last, sizeof(last));
    snprintf(lspaces, sizeof(lspaces), "%llu",
             (unsigned long long)c->last_pass_spaces);
    snprintf(runs, sizeof(runs), "%llu", (unsigned long long)c->runs);
    fmt_time(now, updated, sizeof(updated));
    vals[0] = c->after;
    vals[1] = passes;
    vals[2] = started;
    vals[3] = pspaces;
    vals[4] = last;
    vals[5] = lspaces;
    vals[6] = runs;
    vals[7] = updated;
    argv[argc++] = "EVAL";
    argv[argc++] = q_lua_sweep_cur;
    argv[argc++] = "2";
    argv[argc++] = lock;
    argv[argc++] = key;
    argv[argc++] = token;
    argv[argc++] = expect_after ? expect_after : "";
    for (size_t i = 0; i < NFIELDS + 1; i++) {
        argv[argc++] = i < NFIELDS ? fields[i] : "updatedAt";
        argv[argc++] = vals[i];
    }
    rep = q_cmds(q, err, "sweep cursor save", argc, argv);
    if (!rep)
        return err ? err->code : WK_E_NET;
    *saved = rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
    freeReplyObject(rep);
    return WK_OK;
}
