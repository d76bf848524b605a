/* q_redis: the Redis transport of q: connecting (AUTH, SELECT, timeouts),
 * running one command or a MULTI/EXEC transaction with every reply
 * checked, the job channel's subscriber, the consumer group's creation,
 * PING, and the small clocks and random ids the protocol needs. */
#include "worker/q_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "common/wk_log.h"
#include "common/wk_time.h"
#include "worker/q_topo.h"

void q_now_rfc3339(char *buf, size_t len)
{
    wk_time_now_rfc3339_ms(buf, len);
}

unsigned long long q_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (unsigned long long)ts.tv_sec * 1000ULL +
           (unsigned long long)(ts.tv_nsec / 1000000);
}

enum wk_code q_reply_check(struct q *q, const redisReply *rep, const char *what,
                           struct wk_err *err)
{
    if (!rep) {
        enum wk_code rc =
            wk_err_set(err, WK_E_NET, "redis %s: %s", what,
                       q->c && rconn_errstr(q->c)[0] ? rconn_errstr(q->c)
                                                     : "connection lost");
        /* the connection is unusable after an I/O error */
        if (q->c) {
            rconn_free(q->c);
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
        /* READONLY: we talk to a replica (a failover happened); drop the
         * connection so that the next connect asks the sentinels again */
        if (strncmp(rep->str, "READONLY", 8) == 0) {
            transient = true;
            if (q->c) {
                rconn_free(q->c);
                q->c = NULL;
            }
            WK_LOG(WK_LOG_WARN, "redis.readonly", KV_STR("what", what),
                   KV_STR("host", q->r.host), KV_INT("port", q->r.port));
        }
        return wk_err_set(err, transient ? WK_E_NET : WK_E_INTERNAL,
                          "redis %s: %.160s", what, rep->str);
    }
    return WK_OK;
}

redisReply *q_cmd(struct q *q, struct wk_err *err, const char *what, int argc,
                  const char **argv, const size_t *lens)
{
    redisReply *rep;
    if (!q->c) {
        wk_err_set(err, WK_E_NET, "redis %s: not connected", what);
        return NULL;
    }
    rep = rconn_command_argv(q->c, argc, argv, lens, NULL);
    if (q_reply_check(q, rep, what, err) != WK_OK) {
        if (rep)
            freeReplyObject(rep);
        return NULL;
    }
    return rep;
}

redisReply *q_cmds(struct q *q, struct wk_err *err, const char *what, int argc,
                   const char **argv)
{
    size_t lens[Q_MAX_ARGS];
    WK_ASSERT(argc <= (int)(sizeof(lens) / sizeof(lens[0])));
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    return q_cmd(q, err, what, argc, argv, lens);
}

enum wk_code q_cmds_ok(struct q *q, struct wk_err *err, const char *what,
                       int argc, const char **argv)
{
    redisReply *rep = q_cmds(q, err, what, argc, argv);
    if (!rep)
        return err && err->code ? err->code : WK_E_NET;
    freeReplyObject(rep);
    return WK_OK;
}

static enum wk_code do_connect(struct q *q, struct wk_err *err)
{
    struct rconn_opts o;
    redisReply *rep;
    char db[16];
    enum wk_code rc;

    if (q->c) {
        rconn_free(q->c);
        q->c = NULL;
    }
    if (q->r.sentinels[0]) {
        /* the master may have moved since the last connect */
        enum wk_code trc = q_topo_sentinel_master(
            &q->r, q->r.host, sizeof(q->r.host), &q->r.port, err);
        if (trc != WK_OK)
            return trc;
    }
    memset(&o, 0, sizeof(o));
    o.host = q->r.host;
    o.port = q->r.port;
    o.tls = q->r.tls;
    o.ca_file = q->r.ca_file;
    o.cert_file = q->r.cert_file;
    o.key_file = q->r.key_file;
    o.sni = q->r.host;
    o.connect_timeout_ms = 5000;
    o.rw_timeout_ms = (int)q->read_timeout_ms;
    rc = rconn_connect(&o, &q->c, err);
    if (rc != WK_OK)
        return rc;
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
    if (q->r.sentinels[0]) {
        /* a sentinel's answer can lag a failover: insist on a master */
        const char *argv[1] = { "ROLE" };
        rep = q_cmds(q, err, "ROLE", 1, argv);
        if (!rep)
            return err ? err->code : WK_E_NET;
        bool master = rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 &&
                      rep->element[0]->type == REDIS_REPLY_STRING &&
                      strcmp(rep->element[0]->str, "master") == 0;
        freeReplyObject(rep);
        if (!master) {
            rconn_free(q->c);
            q->c = NULL;
            return wk_err_set(err, WK_E_NET,
                              "redis %s:%d is not a master (yet)", q->r.host,
                              q->r.port);
        }
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
    rconn_free(q->c);
    free(q);
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
    q_key_job(q->prefix, job_id, chan, sizeof(chan));
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
    redisReply *rep = NULL;
    struct pollfd pfd;
    enum wk_code rc;
    int n;

    *got = false;
    if (!sub->c)
        return wk_err_set(err, WK_E_NET, "redis subscription: not connected");
    /* a message already read along with an earlier one (or held by TLS)? */
    rc = rconn_reply_nowait(sub->c, &rep, err);
    if (rc != WK_OK)
        goto lost;
    if (!rep) {
        pfd.fd = rconn_fd(sub->c);
        pfd.events = POLLIN;
        pfd.revents = 0;
        n = poll(&pfd, 1, timeout_ms > INT_MAX ? INT_MAX : (int)timeout_ms);
        if (n < 0 && errno == EINTR)
            return WK_OK; /* a signal: the caller looks at its flags */
        if (n < 0)
            return wk_err_sys(err, WK_E_NET, errno, "redis subscription: poll");
        if (n == 0)
            return WK_OK;
        rc = rconn_reply_nowait(sub->c, &rep, err);
        if (rc != WK_OK)
            goto lost;
    }
    if (rep) { /* (none yet when only a part of one has arrived) */
        *got = true;
        freeReplyObject(rep);
    }
    return WK_OK;
lost:
    wk_err_prefix(err, "redis subscription");
    rconn_free(sub->c);
    sub->c = NULL;
    return rc;
}

static enum wk_code ensure_group(struct q *q, bool urgent, struct wk_err *err)
{
    char stream[128];
    redisReply *rep;
    struct wk_err e2;

    q_key_lane(q->prefix, urgent, stream, sizeof(stream));
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
    enum wk_code rc = ensure_group(q, false, err);
    if (rc == WK_OK)
        rc = ensure_group(q, true, err);
    return rc;
}

enum wk_code q_random_hex(char *out, size_t nbytes, struct wk_err *err)
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

enum wk_code q_exec_tx(struct q *q, struct q_tx_cmd *cmds, int n,
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

void q_tx_add(struct q_tx_cmd *c, const char *s)
{
    WK_ASSERT(c->argc < (int)(sizeof(c->argv) / sizeof(c->argv[0])));
    c->argv[c->argc] = s;
    c->lens[c->argc] = strlen(s);
    c->argc++;
}

enum wk_code q_ping(struct q *q, struct wk_err *err)
{
    const char *argv[] = { "PING" };
    return q_cmds_ok(q, err, "PING", 1, argv);
}
