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
    struct rconn *c; /* owned; NULL after an I/O error */
    struct cfg_redis r;
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
