/* q_topo: where the Redis master is. Sentinel discovery (ask each
 * sentinel in turn for the master's address), the cluster hash slot of a
 * key (CRC16, hash tags), the check of a cluster configuration and the
 * parsing of MOVED / ASK redirections (q_redis.c follows them). Plain
 * hiredis for the sentinel queries; no state of its own. */
#ifndef WK_WORKER_Q_TOPO_H
#define WK_WORKER_Q_TOPO_H

#include <stdbool.h>
#include <stddef.h>

#include "common/wk_err.h"
#include "worker/cfg.h"

#define Q_TOPO_SLOTS 16384

/* CRC16-CCITT (XMODEM), as Redis Cluster uses it. */
unsigned q_topo_crc16(const char *buf, size_t len);
/* The cluster slot of a key: the CRC16 of its first non-empty {...} tag,
 * else of the whole key, modulo 16384. */
unsigned q_topo_slot(const char *key, size_t len);
/* true when the prefix has a non-empty {...} tag, so that every key built
 * on it lands in one slot. */
bool q_topo_prefix_tagged(const char *prefix);

/* SILA_REDIS_CLUSTER=1 (r->cluster) needs every key of sila in one hash
 * slot, so that the Lua scripts and MULTI / EXEC (which name several keys)
 * run on one node: prefix must have a non-empty {tag}. A cluster has only
 * database 0 and no sentinels. WK_E_INVAL with the reason; WK_OK when r is
 * not a cluster. */
enum wk_code q_topo_cluster_check(const struct cfg_redis *r, const char *prefix,
                                  struct wk_err *err);

/* The i-th "host:port" of a comma list (IPv6 as "[::1]:26379"); WK_E_NOTFOUND
 * past the end, WK_E_INVAL on a malformed entry. */
enum wk_code q_topo_sentinel_at(const char *list, int i, char *host,
                                size_t hostlen, int *port, struct wk_err *err);

/* "MOVED 3999 127.0.0.1:6381" / "ASK 3999 127.0.0.1:6381": *ask tells which;
 * WK_E_INVAL when the error is neither. */
enum wk_code q_topo_redirect(const char *msg, bool *ask, unsigned *slot,
                             char *host, size_t hostlen, int *port,
                             struct wk_err *err);

/* Ask the sentinels of r->sentinels, in order, for the address of master
 * r->master (SENTINEL get-master-addr-by-name), authenticating with
 * r->sentinel_user / r->sentinel_pass when set. The first sentinel that
 * answers with an address wins. WK_E_NET when none does. */
enum wk_code q_topo_sentinel_master(const struct cfg_redis *r, char *host,
                                    size_t hostlen, int *port,
                                    struct wk_err *err);

#endif
