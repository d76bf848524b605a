/*
 * q_int: what the q_*.c files share and nothing else sees: the connection
 * struct, the command helpers of q_redis.c, the stream entry parsing of
 * q_claim.c and the small clocks and encoders.
 */
#ifndef WK_WORKER_Q_INT_H
#define WK_WORKER_Q_INT_H

#include <hiredis.h>

#include "worker/rconn.h"

#include "worker/q.h"
#include "worker/q_keys.h"

#define Q_STATUS_TTL_S (7 * 24 * 3600) /* finished status hashes */
#define Q_MAX_FIELDS   32
#define Q_MAX_ARGS     (Q_MAX_FIELDS * 2 + 8)

/* A normal-lane entry given back by q_claim() looks idle this long, more
 * than any lease (SILA_LEASE is at most 1 h): any worker reclaims it. */
#define Q_GIVE_BACK_IDLE_MS "86400000"

struct q {
    struct rconn *c;     /* owned; NULL after an I/O error */
    struct cfg_redis r;  /* r.host / r.port: the node of c (the master a
                            sentinel named, the cluster node a MOVED named) */
    char seed_host[256]; /* the configured node, tried again in a cluster
                            when r.host cannot be reached */
    int seed_port;
    char prefix[64];
    unsigned read_timeout_ms;
};

/* Turn a reply (or its absence) into a code; frees nothing. A lost
 * connection (no reply) frees the context. */
enum wk_code q_reply_check(struct q *q, const redisReply *rep, const char *what,
                           struct wk_err *err);
/* One command; NULL (err set) on any failure or error reply. */
redisReply *q_cmd(struct q *q, struct wk_err *err, const char *what, int argc,
                  const char **argv, const size_t *lens);
/* The same with C strings (lengths by strlen); argc <= Q_MAX_ARGS. */
redisReply *q_cmds(struct q *q, struct wk_err *err, const char *what, int argc,
                   const char **argv);
/* In a cluster (SILA_REDIS_CLUSTER=1) every command, transaction and
 * pipeline below follows MOVED (reconnect to the named node, same TLS and
 * AUTH, and repeat) and ASK (ASKING + the command on the named node, once,
 * without switching), waits out TRYAGAIN (a slot being migrated), at most
 * Q_MAX_REDIRECTS redirections per call; "redis.redirected" is logged.
 * Outside a cluster a redirection is an error that says to set it. */
#define Q_MAX_REDIRECTS 5
/* A command whose reply is only checked, then freed. */
enum wk_code q_cmds_ok(struct q *q, struct wk_err *err, const char *what,
                       int argc, const char **argv);

/* MULTI ... EXEC of prepared commands; every reply is checked. */
struct q_tx_cmd {
    int argc;
    const char *argv[Q_MAX_ARGS];
    size_t lens[Q_MAX_ARGS];
};
void q_tx_add(struct q_tx_cmd *c, const char *s);
enum wk_code q_exec_tx(struct q *q, struct q_tx_cmd *cmds, int n,
                       const char *what, struct wk_err *err);

/* A pipeline of n commands, sent at once, then n replies read (one round
 * trip). arg(ud, i, argv, lens) fills command i (at most Q_PIPE_ARGS
 * arguments) and returns its argc; reply(ud, i, rep) is called with the
 * reply of each command that did not fail (rep is freed after it). A
 * redirection of any command repeats the whole pipeline, so reply() may
 * see one i more than once: read-only commands only. The first error reply
 * is returned once every reply was read. */
#define Q_PIPE_ARGS 8
enum wk_code q_pipe(struct q *q, const char *what, size_t n,
                    int (*arg)(void *ud, size_t i, const char **argv,
                               size_t *lens),
                    void (*reply)(void *ud, size_t i, const redisReply *rep),
                    void *ud, struct wk_err *err);

/* In a cluster: make sure the connection is on the node that serves the
 * prefix's slot (a keyed EXISTS, following a MOVED), before a command that
 * names no key (SCAN) and would else see another node's keys. Does nothing
 * outside a cluster. */
enum wk_code q_home(struct q *q, struct wk_err *err);

/* nbytes random bytes from /dev/urandom as 2 * nbytes hex digits. */
enum wk_code q_random_hex(char *out, size_t nbytes, struct wk_err *err);
/* Wall clock in ms since the epoch. */
unsigned long long q_now_ms(void);

/* The lane of an entry without the prefix ("jobs" or "jobs:urgent"). */
const char *q_lane_of(const struct q *q, const struct q_msg *m);

/* Fill out from one stream entry reply [id, [field, value, ...]]. */
enum wk_code q_msg_from_entry(const char *stream, const redisReply *entry,
                              struct q_msg *out, struct wk_err *err);

#endif
