/* q_topo: Sentinel discovery, cluster slots and checks, MOVED / ASK
 * parsing. */
#include "worker/q_topo.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/wk_log.h"

unsigned q_topo_crc16(const char *buf, size_t len)
{
    unsigned crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (unsigned)(unsigned char)buf[i] << 8;
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000u) ? ((crc << 1) ^ 0x1021u) : (crc << 1);
        crc &= 0xffffu;
    }
    return crc;
}

unsigned q_topo_slot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t off = (size_t)(open - key) + 1;
        const char *close = memchr(open + 1, '}', len - off);
        if (close && close > open + 1)
            return q_topo_crc16(open + 1, (size_t)(close - open - 1)) %
                   Q_TOPO_SLOTS;
    }
    return q_topo_crc16(key, len) % Q_TOPO_SLOTS;
}

bool q_topo_prefix_tagged(const char *prefix)
{
    const char *open = strchr(prefix, '{');
    const char *close = open ? strchr(open + 1, '}') : NULL;
    return close && close > open + 1;
}

enum wk_code q_topo_cluster_check(const struct cfg_redis *r, const char *prefix,
                                  struct wk_err *err)
{
    if (!r->cluster)
        return WK_OK;
    if (!q_topo_prefix_tagged(prefix))
        return wk_err_set(err, WK_E_INVAL,
                          "SILA_REDIS_CLUSTER=1 needs a {tag} in "
                          "SILA_KEY_PREFIX (e.g. '{sila}:') so that every key "
                          "is in one hash slot, got '%.60s'",
                          prefix);
    if (r->sentinels[0])
        return wk_err_set(err, WK_E_INVAL,
                          "SILA_REDIS_CLUSTER=1 and SILA_REDIS_SENTINELS "
                          "exclude each other");
    if (r->db != 0)
        return wk_err_set(err, WK_E_INVAL,
                          "SILA_REDIS_CLUSTER=1: a cluster has only database "
                          "0, REDIS_URL names database %d",
                          r->db);
    return WK_OK;
}

static enum wk_code parse_hostport(const char *s, size_t n, char *host,
                                   size_t hostlen, int *port,
                                   struct wk_err *err)
{
    const char *colon;
    const char *h = s;
    size_t hl;
    char num[8];
    char *end;
    long p;

    if (n && s[0] == '[') {
        const char *rb = memchr(s, ']', n);
        if (!rb || (size_t)(rb - s) + 1 >= n || rb[1] != ':')
            return wk_err_set(err, WK_E_INVAL, "bad host:port entry");
        h = s + 1;
        hl = (size_t)(rb - h);
        colon = rb + 1;
    } else {
        colon = NULL;
        for (size_t i = 0; i < n; i++)
            if (s[i] == ':')
                colon = s + i;
        if (!colon)
            return wk_err_set(err, WK_E_INVAL, "bad host:port entry");
        hl = (size_t)(colon - s);
    }
    if (hl == 0 || hl >= hostlen)
        return wk_err_set(err, WK_E_INVAL, "bad host in host:port entry");
    n -= (size_t)(colon + 1 - s);
    if (n == 0 || n >= sizeof(num))
        return wk_err_set(err, WK_E_INVAL, "bad port in host:port entry");
    memcpy(num, colon + 1, n);
    num[n] = '\0';
    p = strtol(num, &end, 10);
    if (*end || p < 1 || p > 65535)
        return wk_err_set(err, WK_E_INVAL, "bad port in host:port entry");
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)p;
    return WK_OK;
}

enum wk_code q_topo_sentinel_at(const char *list, int i, char *host,
                                size_t hostlen, int *port, struct wk_err *err)
{
    const char *s = list;
    for (int k = 0; k < i; k++) {
        s = strchr(s, ',');
        if (!s)
            return wk_err_set(err, WK_E_NOTFOUND, "no sentinel %d", i);
        s++;
    }
    while (*s == ' ')
        s++;
    if (!*s)
        return wk_err_set(err, WK_E_NOTFOUND, "no sentinel %d", i);
    const char *e = strchr(s, ',');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    while (n && s[n - 1] == ' ')
        n--;
    return parse_hostport(s, n, host, hostlen, port, err);
}

enum wk_code q_topo_redirect(const char *msg, bool *ask, unsigned *slot,
                             char *host, size_t hostlen, int *port,
                             struct wk_err *err)
{
    const char *p;
    char *end;
    unsigned long s;

    if (strncmp(msg, "MOVED ", 6) == 0) {
        *ask = false;
        p = msg + 6;
    } else if (strncmp(msg, "ASK ", 4) == 0) {
        *ask = true;
        p = msg + 4;
    } else
        return wk_err_set(err, WK_E_INVAL, "not a redirection");
    s = strtoul(p, &end, 10);
    if (end == p || *end != ' ' || s >= Q_TOPO_SLOTS)
        return wk_err_set(err, WK_E_INVAL, "bad slot in redirection");
    *slot = (unsigned)s;
    p = end + 1;
    return parse_hostport(p, strlen(p), host, hostlen, port, err);
}

/* One sentinel: AUTH if configured, then get-master-addr-by-name. */
static enum wk_code ask_one(const struct cfg_redis *r, const char *shost,
                            int sport, char *host, size_t hostlen, int *port,
                            struct wk_err *err)
{
    struct timeval tv = { 2, 0 };
    redisContext *c = redisConnectWithTimeout(shost, sport, tv);
    redisReply *rep = NULL;
    enum wk_code rc = WK_E_NET;
    char addr[300];

    if (!c)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    if (c->err) {
        rc = wk_err_set(err, WK_E_NET, "sentinel %s:%d: %s", shost, sport,
                        c->errstr);
        goto cleanup;
    }
    redisSetTimeout(c, tv);
    if (r->sentinel_pass[0]) {
        if (r->sentinel_user[0])
            rep = redisCommand(c, "AUTH %s %s", r->sentinel_user,
                               r->sentinel_pass);
        else
            rep = redisCommand(c, "AUTH %s", r->sentinel_pass);
        if (!rep || rep->type == REDIS_REPLY_ERROR) {
            rc = wk_err_set(err, WK_E_NET, "sentinel %s:%d: AUTH refused",
                            shost, sport);
            goto cleanup;
        }
        freeReplyObject(rep);
    }
    rep = redisCommand(c, "SENTINEL get-master-addr-by-name %s", r->master);
    if (!rep) {
        rc = wk_err_set(err, WK_E_NET, "sentinel %s:%d: %s", shost, sport,
                        c->errstr);
        goto cleanup;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_STRING ||
        rep->element[1]->type != REDIS_REPLY_STRING) {
        rc = wk_err_set(err, WK_E_NET, "sentinel %s:%d: no master named %.60s",
                        shost, sport, r->master);
        goto cleanup;
    }
    if (strchr(rep->element[0]->str, ':'))
        snprintf(addr, sizeof(addr), "[%.256s]:%.8s", rep->element[0]->str,
                 rep->element[1]->str);
    else
        snprintf(addr, sizeof(addr), "%.256s:%.8s", rep->element[0]->str,
                 rep->element[1]->str);
    rc = parse_hostport(addr, strlen(addr), host, hostlen, port, err);
cleanup:
    if (rep)
        freeReplyObject(rep);
    redisFree(c);
    return rc;
}

enum wk_code q_topo_sentinel_master(const struct cfg_redis *r, char *host,
                                    size_t hostlen, int *port,
                                    struct wk_err *err)
{
    char shost[256];
    int sport;
    enum wk_code rc;

    for (int i = 0;; i++) {
        rc = q_topo_sentinel_at(r->sentinels, i, shost, sizeof(shost), &sport,
                                err);
        if (rc == WK_E_NOTFOUND)
            break;
        if (rc != WK_OK)
            return rc;
        rc = ask_one(r, shost, sport, host, hostlen, port, err);
        if (rc == WK_OK) {
            WK_LOG(WK_LOG_INFO, "redis.sentinel", KV_STR("master", r->master),
                   KV_STR("host", host), KV_INT("port", *port));
            return WK_OK;
        }
    }
    return wk_err_set(err, WK_E_NET,
                      "no sentinel of SILA_REDIS_SENTINELS knows master %.60s",
                      r->master);
}
