/* q_redis: the Redis transport of q: connecting (AUTH, SELECT, timeouts),
 * running one command, a MULTI/EXEC transaction or a pipeline with every
 * reply checked and, in a Redis Cluster, MOVED / ASK / TRYAGAIN followed
 * (run_unit), the job channel's subscriber, the consumer group's creation,
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

/* Cluster redirections. A unit of work (one command, a transaction, a
 * pipeline) is run by run_unit(); its run() does it on one connection
 * (ASKING first when asking) and, when the server answers MOVED, ASK or
 * TRYAGAIN instead, copies that answer into redir: nothing of the unit was
 * done then, so run_unit() can do all of it again elsewhere. */
#define Q_MAX_TRYAGAIN 100 /* TRYAGAIN: keys of the slot are being moved */
#define Q_TRYAGAIN_MS  100

struct unit {
    const char *what;
    enum wk_code (*run)(struct unit *u, struct q *q, bool asking, char *redir,
                        size_t redirlen, struct wk_err *err);
};

static bool take_redirect(const redisReply *rep, char *redir, size_t len)
{
    if (!rep || rep->type != REDIS_REPLY_ERROR || !rep->str)
        return false;
    if (strncmp(rep->str, "MOVED ", 6) != 0 &&
        strncmp(rep->str, "ASK ", 4) != 0 &&
        strncmp(rep->str, "TRYAGAIN", 8) != 0)
        return false;
    if (!redir[0])
        snprintf(redir, len, "%s", rep->str);
    return true;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static enum wk_code do_connect(struct q *q, struct wk_err *err);

/* A connection of its own to host:port, like q's (TLS, AUTH): the target
 * of an ASK. Free with q_free(). */
static enum wk_code node_open(const struct q *q, const char *host, int port,
                              struct q **out, struct wk_err *err)
{
    struct q *t = calloc(1, sizeof(*t));
    enum wk_code rc;

    *out = NULL;
    if (!t)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    t->r = q->r;
    snprintf(t->r.host, sizeof(t->r.host), "%s", host);
    t->r.port = port;
    snprintf(t->seed_host, sizeof(t->seed_host), "%s", host);
    t->seed_port = port;
    snprintf(t->prefix, sizeof(t->prefix), "%s", q->prefix);
    t->read_timeout_ms = q->read_timeout_ms;
    rc = do_connect(t, err);
    if (rc != WK_OK) {
        q_free(t);
        return rc;
    }
    *out = t;
    return WK_OK;
}

static enum wk_code run_unit(struct q *q, struct unit *u, struct wk_err *err)
{
    char redir[192], host[256];
    struct q *t = NULL; /* the node an ASK named, for this unit only */
    unsigned slot = 0;
    int port = 0, hops = 0, waits = 0;
    bool ask = false;
    enum wk_code rc;

    for (;;) {
        redir[0] = '\0';
        rc = u->run(u, t ? t : q, t != NULL, redir, sizeof(redir), err);
        if (rc != WK_OK || !redir[0])
            break;
        if (!q->r.cluster) {
            rc = wk_err_set(err, WK_E_INVAL,
                            "redis %s: '%.80s': the server is a Redis "
                            "Cluster node; set SILA_REDIS_CLUSTER=1 and a "
                            "{tag} in SILA_KEY_PREFIX",
                            u->what, redir);
            break;
        }
        if (strncmp(redir, "TRYAGAIN", 8) == 0) {
            if (++waits > Q_MAX_TRYAGAIN) {
                rc = wk_err_set(err, WK_E_NET,
                                "redis %s: %.120s (a slot migration, still "
                                "after %d tries)",
                                u->what, redir, Q_MAX_TRYAGAIN);
                break;
            }
            sleep_ms(Q_TRYAGAIN_MS);
            continue; /* on the same node, ASKING again if asking */
        }
        rc =
            q_topo_redirect(redir, &ask, &slot, host, sizeof(host), &port, err);
        if (rc != WK_OK) {
            wk_err_prefix(err, "redis");
            break;
        }
        if (++hops > Q_MAX_REDIRECTS) {
            rc = wk_err_set(err, WK_E_NET,
                            "redis %s: more than %d cluster redirections "
                            "(last '%.80s')",
                            u->what, Q_MAX_REDIRECTS, redir);
            break;
        }
        WK_LOG(WK_LOG_INFO, "redis.redirected", KV_STR("what", u->what),
               KV_STR("kind", ask ? "ask" : "moved"), KV_INT("slot", slot),
               KV_STR("host", host), KV_INT("port", port));
        q_free(t);
        t = NULL;
        if (ask) {
            rc = node_open(q, host, port, &t, err);
        } else {
            snprintf(q->r.host, sizeof(q->r.host), "%s", host);
            q->r.port = port;
            rc = do_connect(q, err);
        }
        if (rc != WK_OK)
            break;
    }
    q_free(t);
    return rc;
}

/* ASKING: the next command (or the next MULTI ... EXEC) may use a slot
 * this node is importing. */
static enum wk_code send_asking(struct q *q, const char *what,
                                struct wk_err *err)
{
    const char *argv[] = { "ASKING" };
    const size_t lens[] = { 6 };
    redisReply *rep = rconn_command_argv(q->c, 1, argv, lens, NULL);
    enum wk_code rc = q_reply_check(q, rep, what, err);
    if (rep)
        freeReplyObject(rep);
    return rc;
}

struct cmd_unit {
    struct unit base;
    int argc;
    const char **argv;  /* borrowed */
    const size_t *lens; /* borrowed */
    redisReply *rep;    /* owned: the result */
};

static enum wk_code cmd_run(struct unit *u, struct q *q, bool asking,
                            char *redir, size_t redirlen, struct wk_err *err)
{
    struct cmd_unit *cu = (struct cmd_unit *)u;
    redisReply *rep;
    enum wk_code rc;

    if (!q->c)
        return wk_err_set(err, WK_E_NET, "redis %s: not connected", u->what);
    if (asking && (rc = send_asking(q, u->what, err)) != WK_OK)
        return rc;
    rep = rconn_command_argv(q->c, cu->argc, cu->argv, cu->lens, NULL);
    if (take_redirect(rep, redir, redirlen)) {
        freeReplyObject(rep);
        return WK_OK;
    }
    rc = q_reply_check(q, rep, u->what, err);
    if (rc != WK_OK) {
        if (rep)
            freeReplyObject(rep);
        return rc;
    }
    cu->rep = rep;
    return WK_OK;
}

redisReply *q_cmd(struct q *q, struct wk_err *err, const char *what, int argc,
                  const char **argv, const size_t *lens)
{
    struct cmd_unit cu = { { what, cmd_run }, argc, argv, lens, NULL };

    if (run_unit(q, &cu.base, err) != WK_OK) {
        if (cu.rep)
            freeReplyObject(cu.rep);
        return NULL;
    }
    return cu.rep;
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
    if (rc != WK_OK && q->r.cluster && q->seed_host[0] &&
        (strcmp(q->r.host, q->seed_host) != 0 || q->r.port != q->seed_port)) {
        /* the node a MOVED named is gone (failed over, removed): start
         * again from the configured one, which redirects us anew */
        WK_LOG(WK_LOG_WARN, "redis.node_lost", KV_STR("host", q->r.host),
               KV_INT("port", q->r.port), KV_STR("msg", err ? err->msg : ""));
        if (err)
            wk_err_clear(err);
        snprintf(q->r.host, sizeof(q->r.host), "%s", q->seed_host);
        q->r.port = q->seed_port;
        o.host = o.sni = q->r.host;
        o.port = q->r.port;
        rc = rconn_connect(&o, &q->c, err);
    }
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
    snprintf(q->seed_host, sizeof(q->seed_host), "%s", r->host);
    q->seed_port = r->port;
    snprintf(q->prefix, sizeof(q->prefix), "%s", prefix);
    q->read_timeout_ms = read_timeout_ms;
    rc = do_connect(q, err);
    if (rc == WK_OK)
        rc = q_home(q, err);
    if (rc != WK_OK) {
        q_free(q);
        return rc;
    }
    *out = q;
    return WK_OK;
}

enum wk_code q_reconnect(struct q *q, struct wk_err *err)
{
    enum wk_code rc = do_connect(q, err);
    return rc == WK_OK ? q_home(q, err) : rc;
}

enum wk_code q_home(struct q *q, struct wk_err *err)
{
    char key[128];

    if (!q->r.cluster)
        return WK_OK;
    q_key_lane(q->prefix, false, key, sizeof(key));
    const char *argv[] = { "EXISTS", key };
    return q_cmds_ok(q, err, "EXISTS", 2, argv);
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

struct tx_unit {
    struct unit base;
    struct q_tx_cmd *cmds; /* borrowed */
    int n;
};

/* End a transaction the server flagged (a command refused while queued):
 * its EXEC answers EXECABORT and runs nothing. */
static void tx_abandon(struct q *q)
{
    const char *argv[] = { "EXEC" };
    const size_t lens[] = { 4 };
    redisReply *rep;

    if (!q->c)
        return;
    rep = rconn_command_argv(q->c, 1, argv, lens, NULL);
    if (!rep) {
        rconn_free(q->c);
        q->c = NULL;
        return;
    }
    freeReplyObject(rep);
}

static enum wk_code tx_run(struct unit *u, struct q *q, bool asking,
                           char *redir, size_t redirlen, struct wk_err *err)
{
    struct tx_unit *tu = (struct tx_unit *)u;
    const char *multi[] = { "MULTI" };
    const char *exec[] = { "EXEC" };
    const size_t lmulti[] = { 5 }, lexec[] = { 4 };
    redisReply *rep;
    enum wk_code rc = WK_OK;

    if (!q->c)
        return wk_err_set(err, WK_E_NET, "redis %s: not connected", u->what);
    /* ASKING before MULTI holds for the whole transaction */
    if (asking && (rc = send_asking(q, u->what, err)) != WK_OK)
        return rc;
    rep = rconn_command_argv(q->c, 1, multi, lmulti, NULL);
    rc = q_reply_check(q, rep, u->what, err);
    if (rep)
        freeReplyObject(rep);
    if (rc != WK_OK)
        return rc;
    for (int i = 0; i < tu->n; i++) {
        rep = rconn_command_argv(q->c, tu->cmds[i].argc, tu->cmds[i].argv,
                                 tu->cmds[i].lens, NULL);
        if (take_redirect(rep, redir, redirlen)) {
            freeReplyObject(rep);
            tx_abandon(q);
            return WK_OK;
        }
        rc = q_reply_check(q, rep, u->what, err);
        if (rep)
            freeReplyObject(rep);
        if (rc != WK_OK) {
            tx_abandon(q); /* else the connection stays inside MULTI */
            return rc;
        }
    }
    rep = rconn_command_argv(q->c, 1, exec, lexec, NULL);
    /* the slot moved between MULTI and EXEC: the server discarded it all */
    if (take_redirect(rep, redir, redirlen)) {
        freeReplyObject(rep);
        return WK_OK;
    }
    rc = q_reply_check(q, rep, u->what, err);
    if (rc != WK_OK) {
        if (rep)
            freeReplyObject(rep);
        return rc;
    }
    if (rep->type != REDIS_REPLY_ARRAY) {
        rc = wk_err_set(err, WK_E_INTERNAL, "redis %s: transaction aborted",
                        u->what);
    } else {
        for (size_t i = 0; i < rep->elements; i++)
            if (rep->element[i]->type == REDIS_REPLY_ERROR) {
                rc = wk_err_set(err, WK_E_INTERNAL, "redis %s: %.160s", u->what,
                                rep->element[i]->str);
                break;
            }
    }
    freeReplyObject(rep);
    return rc;
}

enum wk_code q_exec_tx(struct q *q, struct q_tx_cmd *cmds, int n,
                       const char *what, struct wk_err *err)
{
    struct tx_unit tu = { { what, tx_run }, cmds, n };
    return run_unit(q, &tu.base, err);
}

struct pipe_unit {
    struct unit base;
    size_t n;
    int (*arg)(void *ud, size_t i, const char **argv, size_t *lens);
    void (*reply)(void *ud, size_t i, const redisReply *rep);
    void *ud; /* borrowed */
};

static enum wk_code pipe_run(struct unit *u, struct q *q, bool asking,
                             char *redir, size_t redirlen, struct wk_err *err)
{
    struct pipe_unit *pu = (struct pipe_unit *)u;
    const char *asking_argv[] = { "ASKING" };
    const size_t asking_lens[] = { 6 };
    const char *argv[Q_PIPE_ARGS];
    size_t lens[Q_PIPE_ARGS];
    enum wk_code rc = WK_OK;

    if (!q->c)
        return wk_err_set(err, WK_E_NET, "redis %s: not connected", u->what);
    for (size_t i = 0; i < pu->n; i++) {
        int argc = pu->arg(pu->ud, i, argv, lens);
        WK_ASSERT(argc > 0 && argc <= Q_PIPE_ARGS);
        /* ASKING holds for the next command only: one before each */
        if ((asking && rconn_append_argv(q->c, 1, asking_argv, asking_lens,
                                         err) != WK_OK) ||
            rconn_append_argv(q->c, argc, argv, lens, err) != WK_OK) {
            /* a half-sent pipeline would skew every later reply */
            rconn_free(q->c);
            q->c = NULL;
            wk_err_prefix(err, "redis %s", u->what);
            return err ? err->code : WK_E_NET;
        }
    }
    for (size_t i = 0; i < pu->n; i++) {
        redisReply *rep = NULL;
        if (asking) {
            /* ASKING's +OK; any other answer: give up the connection */
            if (rconn_reply(q->c, &rep, NULL) != WK_OK)
                rep = NULL;
            bool ok = rep && rep->type == REDIS_REPLY_STATUS;
            if (!ok) {
                rc = q_reply_check(q, rep, "ASKING", err);
                if (rep)
                    freeReplyObject(rep);
                if (q->c) {
                    rconn_free(q->c);
                    q->c = NULL;
                }
                return rc != WK_OK
                           ? rc
                           : wk_err_set(err, WK_E_NET,
                                        "redis %s: ASKING refused", u->what);
            }
            freeReplyObject(rep);
            rep = NULL;
        }
        if (rconn_reply(q->c, &rep, NULL) != WK_OK)
            rep = NULL;
        if (take_redirect(rep, redir, redirlen)) {
            freeReplyObject(rep);
            continue; /* read the rest: the connection stays in step */
        }
        if (q_reply_check(q, rep, u->what, err) != WK_OK) {
            if (!rep)
                return err ? err->code : WK_E_NET; /* the connection is gone */
            if (rc == WK_OK)
                rc = err ? err->code : WK_E_INTERNAL; /* read on */
        } else {
            pu->reply(pu->ud, i, rep);
        }
        freeReplyObject(rep);
    }
    if (rc != WK_OK)
        redir[0] = '\0'; /* an error wins over a redirection */
    return rc;
}

enum wk_code q_pipe(struct q *q, const char *what, size_t n,
                    int (*arg)(void *ud, size_t i, const char **argv,
                               size_t *lens),
                    void (*reply)(void *ud, size_t i, const redisReply *rep),
                    void *ud, struct wk_err *err)
{
    struct pipe_unit pu = { { what, pipe_run }, n, arg, reply, ud };
    if (n == 0)
        return WK_OK;
    return run_unit(q, &pu.base, err);
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
