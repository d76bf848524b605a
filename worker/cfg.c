/* cfg: the process configuration read from the environment, every
 * value checked (see cfg.h). */
#include "worker/cfg.h"
#include "worker/q_topo.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>

#include "common/wk_log.h"
#include "common/wk_parse.h"

/* Percent-decoding for user and password in the URL. */
static enum wk_code url_decode(const char *s, size_t n, char *out,
                               size_t outlen, struct wk_err *err)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            unsigned v = 0;
            if (i + 2 >= n || !isxdigit((unsigned char)s[i + 1]) ||
                !isxdigit((unsigned char)s[i + 2]) ||
                sscanf(s + i + 1, "%2x", &v) != 1 || v == 0)
                return wk_err_set(err, WK_E_INVAL,
                                  "REDIS_URL: bad percent escape");
            c = (char)v;
            i += 2;
        }
        if (o + 1 >= outlen)
            return wk_err_set(err, WK_E_INVAL, "REDIS_URL: field too long");
        out[o++] = c;
    }
    out[o] = '\0';
    return WK_OK;
}

/* A host name or an IPv4 address: letters, digits, '.', '-', '_'. */
static bool host_ok(const char *h, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)h[i]) && !strchr(".-_", h[i]))
            return false;
    return true;
}

/* An IPv6 address between brackets: hex digits, ':' and '.'. */
static bool ipv6_ok(const char *h, size_t n)
{
    if (n < 2)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)h[i]) && h[i] != ':' && h[i] != '.')
            return false;
    return true;
}

static enum wk_code parse_redis_url(const char *url, struct cfg_redis *out,
                                    struct wk_err *err)
{
    const char *p, *at, *hostp, *end, *portp = NULL;
    size_t hlen;
    uint64_t n;

    memset(out, 0, sizeof(*out));
    out->port = 6379;
    if (strncmp(url, "redis://", 8) == 0) {
        p = url + 8;
    } else if (strncmp(url, "rediss://", 9) == 0) {
        p = url + 9; /* TLS (see worker/rconn.h) */
        out->tls = true;
    } else {
        return wk_err_set(err, WK_E_INVAL,
                          "REDIS_URL: expected redis[s]://host[:port][/db]");
    }
    /* The userinfo ends at the LAST '@' (as in redis-py and urllib): a
     * password may hold '@', ':' and even '/' unencoded. user and password
     * split at the first ':'; both are percent-decoded. */
    at = strrchr(p, '@');
    if (at) {
        const char *uc = memchr(p, ':', (size_t)(at - p));
        if (uc) {
            if (url_decode(p, (size_t)(uc - p), out->user, sizeof(out->user),
                           err) != WK_OK ||
                url_decode(uc + 1, (size_t)(at - uc - 1), out->pass,
                           sizeof(out->pass), err) != WK_OK)
                return WK_E_INVAL;
        } else if (url_decode(p, (size_t)(at - p), out->pass, sizeof(out->pass),
                              err) != WK_OK) {
            return WK_E_INVAL; /* "redis://secret@host": a password */
        }
        hostp = at + 1;
    } else {
        hostp = p;
    }
    end = hostp + strcspn(hostp, "/");
    /* The host is checked strictly, so that whatever a mistyped URL holds
     * (a password cut at an unencoded character) never becomes a "host"
     * that is logged; errors never quote the URL. */
    if (hostp[0] == '[') {
        const char *rb = memchr(hostp, ']', (size_t)(end - hostp));
        if (!rb || !ipv6_ok(hostp + 1, (size_t)(rb - hostp - 1)) ||
            (rb + 1 != end && rb[1] != ':'))
            return wk_err_set(err, WK_E_INVAL, "REDIS_URL: bad host");
        hostp++;
        hlen = (size_t)(rb - hostp);
        if (rb + 1 != end)
            portp = rb + 2;
    } else {
        const char *colon = memchr(hostp, ':', (size_t)(end - hostp));
        hlen = colon ? (size_t)(colon - hostp) : (size_t)(end - hostp);
        if (!host_ok(hostp, hlen))
            return wk_err_set(err, WK_E_INVAL, "REDIS_URL: bad host");
        if (colon)
            portp = colon + 1;
    }
    if (hlen >= sizeof(out->host))
        return wk_err_set(err, WK_E_INVAL, "REDIS_URL: bad host");
    memcpy(out->host, hostp, hlen);
    out->host[hlen] = '\0';
    if (portp) {
        char port[8];
        size_t plen = (size_t)(end - portp);
        if (plen == 0 || plen >= sizeof(port))
            return wk_err_set(err, WK_E_INVAL, "REDIS_URL: bad port");
        memcpy(port, portp, plen);
        port[plen] = '\0';
        if (wk_parse_u64(port, &n, NULL) != WK_OK || n == 0 || n > 65535)
            return wk_err_set(err, WK_E_INVAL, "REDIS_URL: bad port");
        out->port = (int)n;
    }
    if (*end == '/' && end[1]) {
        if (wk_parse_u64(end + 1, &n, NULL) != WK_OK || n > 10000)
            return wk_err_set(err, WK_E_INVAL,
                              "REDIS_URL: bad database number");
        out->db = (int)n;
    }
    return WK_OK;
}

enum wk_code cfg_parse_redis_url(const char *url, struct cfg_redis *out,
                                 struct wk_err *err)
{
    enum wk_code rc = parse_redis_url(url, out, err);
    if (rc != WK_OK) /* nothing of a half-parsed password stays behind */
        memset(out, 0, sizeof(*out));
    return rc;
}

static enum wk_code env_size(const char *name, uint64_t lo, uint64_t hi,
                             uint64_t *out, struct wk_err *err)
{
    const char *v = getenv(name);
    uint64_t n;
    if (!v || !*v)
        return WK_OK;
    if (wk_parse_size(v, &n, NULL) != WK_OK || n < lo || n > hi)
        return wk_err_set(err, WK_E_INVAL,
                          "%s: expected a size from %llu to %llu bytes, got "
                          "'%s'",
                          name, (unsigned long long)lo, (unsigned long long)hi,
                          v);
    *out = n;
    return WK_OK;
}

static enum wk_code env_num(const char *name, uint64_t lo, uint64_t hi,
                            uint64_t *out, struct wk_err *err)
{
    const char *v = getenv(name);
    uint64_t n;
    if (!v || !*v)
        return WK_OK;
    if (wk_parse_u64(v, &n, NULL) != WK_OK || n < lo || n > hi)
        return wk_err_set(err, WK_E_INVAL,
                          "%s: expected a number from %llu to %llu, got '%s'",
                          name, (unsigned long long)lo, (unsigned long long)hi,
                          v);
    *out = n;
    return WK_OK;
}

/* A duration ("30s", "500ms", "5m"; a bare number is seconds). */
static enum wk_code env_ms(const char *name, uint64_t lo, uint64_t hi,
                           unsigned *out, struct wk_err *err)
{
    const char *v = getenv(name);
    uint64_t n;
    if (!v || !*v)
        return WK_OK;
    if (wk_parse_duration_ms(v, &n, NULL) != WK_OK || n < lo || n > hi)
        return wk_err_set(err, WK_E_INVAL,
                          "%s: expected a duration from %llu ms to %llu ms "
                          "(\"30s\", \"500ms\"), got '%s'",
                          name, (unsigned long long)lo, (unsigned long long)hi,
                          v);
    *out = (unsigned)n;
    return WK_OK;
}

static enum wk_code env_copy(const char *name, char *dst, size_t n,
                             struct wk_err *err)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return WK_OK;
    if (strlen(v) >= n)
        return wk_err_set(err, WK_E_INVAL, "%s: too long", name);
    snprintf(dst, n, "%s", v);
    return WK_OK;
}

enum wk_code cfg_redis_sentinel_env(struct cfg_redis *r, struct wk_err *err)
{
    enum wk_code rc;
    char host[256];
    int port;

    snprintf(r->master, sizeof(r->master), "mymaster");
    rc = env_copy("SILA_REDIS_SENTINELS", r->sentinels, sizeof(r->sentinels),
                  err);
    if (rc == WK_OK)
        rc = env_copy("SILA_REDIS_MASTER", r->master, sizeof(r->master), err);
    if (rc == WK_OK)
        rc = env_copy("SILA_REDIS_SENTINEL_USERNAME", r->sentinel_user,
                      sizeof(r->sentinel_user), err);
    if (rc == WK_OK)
        rc = env_copy("SILA_REDIS_SENTINEL_PASSWORD", r->sentinel_pass,
                      sizeof(r->sentinel_pass), err);
    if (rc != WK_OK || !r->sentinels[0])
        return rc;
    for (int i = 0;; i++) {
        rc =
            q_topo_sentinel_at(r->sentinels, i, host, sizeof(host), &port, err);
        if (rc == WK_E_NOTFOUND && i > 0) {
            wk_err_clear(err);
            return WK_OK;
        }
        if (rc != WK_OK)
            return wk_err_set(err, WK_E_INVAL,
                              "SILA_REDIS_SENTINELS: expected "
                              "host:port[,host:port...], entry %d is bad",
                              i + 1);
    }
}

enum wk_code cfg_from_env(struct cfg *c, struct wk_err *err)
{
    const char *v;
    uint64_t n;
    enum wk_code rc;

    memset(c, 0, sizeof(*c));
    snprintf(c->redis_url, sizeof(c->redis_url), "redis://127.0.0.1:6379/0");
    snprintf(c->prefix, sizeof(c->prefix), "sila:");
    c->block_ms = 2000;
    c->lease_ms = 30000;
    c->max_attempts = 5;
    c->retry_base_ms = 2000;
    c->retry_max_ms = 300000;
    c->grace_ms = 25000;
    c->urgent_slots = 1;
    c->bg_in_flight = 4;
    job_config_defaults(&c->job);

    if ((v = getenv("SILA_LOG_LEVEL")) && *v && wk_log_set_level(v) != 0)
        return wk_err_set(err, WK_E_INVAL,
                          "SILA_LOG_LEVEL: expected debug, info, warn or "
                          "error, got '%s'",
                          v);
    if ((v = getenv("SILA_STORE")) && *v)
        snprintf(c->store_url, sizeof(c->store_url), "%s", v);
    if ((v = getenv("REDIS_URL")) && *v)
        snprintf(c->redis_url, sizeof(c->redis_url), "%s", v);
    rc = cfg_parse_redis_url(c->redis_url, &c->redis, err);
    if (rc != WK_OK)
        return rc;
    rc = cfg_redis_sentinel_env(&c->redis, err);
    if (rc != WK_OK)
        return rc;
    {
        static const struct {
            const char *env;
            size_t off;
        } files[] = {
            { "SILA_REDIS_CA_FILE", offsetof(struct cfg_redis, ca_file) },
            { "SILA_REDIS_CERT_FILE", offsetof(struct cfg_redis, cert_file) },
            { "SILA_REDIS_KEY_FILE", offsetof(struct cfg_redis, key_file) },
        };
        for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
            char *dst = (char *)&c->redis + files[i].off;
            if (!(v = getenv(files[i].env)) || !*v)
                continue;
            if (strlen(v) >= sizeof(c->redis.ca_file))
                return wk_err_set(err, WK_E_INVAL, "%s: path too long",
                                  files[i].env);
            snprintf(dst, sizeof(c->redis.ca_file), "%s", v);
        }
        if (c->redis.cert_file[0] != '\0' && c->redis.key_file[0] == '\0')
            return wk_err_set(err, WK_E_INVAL,
                              "SILA_REDIS_CERT_FILE needs SILA_REDIS_KEY_FILE");
    }
    if ((v = getenv("SILA_METRICS_ADDR")) && *v) {
        if (strlen(v) >= sizeof(c->metrics_addr) || !strchr(v, ':'))
            return wk_err_set(err, WK_E_INVAL,
                              "SILA_METRICS_ADDR: expected host:port "
                              "(127.0.0.1:9464)");
        snprintf(c->metrics_addr, sizeof(c->metrics_addr), "%s", v);
    }
    if ((v = getenv("SILA_KEY_PREFIX"))) {
        if (strlen(v) >= sizeof(c->prefix))
            return wk_err_set(err, WK_E_INVAL, "SILA_KEY_PREFIX: too long");
        snprintf(c->prefix, sizeof(c->prefix), "%s", v);
    }
    if ((v = getenv("SILA_REDIS_CLUSTER")) && *v) {
        if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0)
            return wk_err_set(
                err, WK_E_INVAL,
                "SILA_REDIS_CLUSTER: expected 0 or 1, got '%.16s'", v);
        c->redis.cluster = v[0] == '1';
    }
    rc = q_topo_cluster_check(&c->redis, c->prefix, err);
    if (rc != WK_OK)
        return rc;
    rc = env_size("SILA_PART_SIZE", 5u << 20, 5ULL << 30, &c->job.part_bytes,
                  err);
    if (rc == WK_OK) {
        n = c->job.parts_in_flight;
        rc = env_num("SILA_PARTS_IN_FLIGHT", 1, 64, &n, err);
        c->job.parts_in_flight = (unsigned)n;
    }
    if (rc == WK_OK)
        rc = env_size("SILA_FETCH_WINDOW", 64u << 10, 4ULL << 30,
                      &c->job.window_bytes, err);
    if (rc == WK_OK) {
        n = c->job.window_objects;
        rc = env_num("SILA_FETCH_OBJECTS", 1, 4096, &n, err);
        c->job.window_objects = (unsigned)n;
    }
    if (rc == WK_OK)
        rc = env_size("SILA_GET_CHUNK", 64u << 10, 1ULL << 30,
                      &c->job.chunk_bytes, err);
    if (rc == WK_OK) {
        n = c->job.reads;
        rc = env_num("SILA_RESTORE_READS", 1, 64, &n, err);
        c->job.reads = (unsigned)n;
    }
    if (rc == WK_OK)
        rc = env_size("SILA_RESTORE_READ_SIZE", 64u << 10, 1ULL << 30,
                      &c->job.read_bytes, err);
    if (rc == WK_OK) {
        n = (uint64_t)c->job.deflate_level;
        rc = env_num("SILA_DEFLATE_LEVEL", 1, 9, &n, err);
        c->job.deflate_level = (int)n;
    }
    if (rc == WK_OK) {
        n = c->job.archive_tries;
        rc = env_num("SILA_ARCHIVE_TRIES", 1, 20, &n, err);
        c->job.archive_tries = (unsigned)n;
    }
    if (rc == WK_OK) {
        /* SILA_ARCHIVE_REUSE=0: a re-archive reads every object (no copies
         * from the previous archive) */
        n = c->job.no_reuse ? 0 : 1;
        rc = env_num("SILA_ARCHIVE_REUSE", 0, 1, &n, err);
        c->job.no_reuse = n == 0;
    }
    if (rc == WK_OK) {
        n = c->job.keep_archives;
        rc = env_num("SILA_KEEP_ARCHIVES", 1, 17, &n, err);
        c->job.keep_archives = (unsigned)n;
    }
    if (rc == WK_OK) {
        n = c->job.max_ratio;
        rc = env_num("SILA_MAX_RATIO", 10, 100000, &n, err);
        c->job.max_ratio = (unsigned)n;
    }
    if (rc == WK_OK) {
        n = c->block_ms;
        rc = env_num("SILA_QUEUE_BLOCK_MS", 100, 60000, &n, err);
        c->block_ms = (unsigned)n;
    }
    if (rc == WK_OK) {
        n = c->max_attempts;
        rc = env_num("SILA_MAX_ATTEMPTS", 1, 100, &n, err);
        c->max_attempts = (unsigned)n;
    }
    if (rc == WK_OK) {
        n = c->urgent_slots;
        rc = env_num("SILA_URGENT_SLOTS", 0, CFG_URGENT_SLOTS_MAX, &n, err);
        c->urgent_slots = (unsigned)n;
    }
    if (rc == WK_OK) {
        n = c->bg_in_flight;
        rc = env_num("SILA_BACKGROUND_IN_FLIGHT", 0, 1024, &n, err);
        c->bg_in_flight = (unsigned)n;
    }
    if (rc == WK_OK)
        rc = acct_prices_from_env(&c->prices, err);
    if (rc == WK_OK)
        rc = env_ms("SILA_LEASE", 1000, 3600000, &c->lease_ms, err);
    if (rc == WK_OK)
        rc = env_ms("SILA_RETRY_BASE", 10, 3600000, &c->retry_base_ms, err);
    if (rc == WK_OK)
        rc = env_ms("SILA_RETRY_MAX", 10, 86400000, &c->retry_max_ms, err);
    if (rc == WK_OK)
        rc = env_ms("SILA_SHUTDOWN_GRACE", 0, 3600000, &c->grace_ms, err);
    if (rc == WK_OK)
        rc = store_opts_from_env(&c->store, err);
    if (rc == WK_OK && (v = getenv("SILA_ENCRYPTION_KEY_FILE")) && *v) {
        struct seal_keyring *kr = NULL;
        if (strlen(v) >= sizeof(c->key_file))
            return wk_err_set(err, WK_E_INVAL,
                              "SILA_ENCRYPTION_KEY_FILE: path too long");
        snprintf(c->key_file, sizeof(c->key_file), "%s", v);
        /* a bad key file stops the process now, not the first job */
        rc = cfg_keys(c, &kr, err);
        seal_keyring_free(kr);
        if (rc != WK_OK)
            wk_err_prefix(err, "SILA_ENCRYPTION_KEY_FILE");
    }
    return rc;
}

enum wk_code cfg_keys(const struct cfg *c, struct seal_keyring **out,
                      struct wk_err *err)
{
    *out = NULL;
    if (!c->key_file[0])
        return WK_OK;
    return seal_keyring_load(c->key_file, out, err);
}
