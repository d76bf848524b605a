/*
 * cfg: the process configuration, from the environment (every variable is
 * listed in README.md and docs/OPERATIONS.md). Plain data, nothing to free.
 * Errors name the variable and the bad value (never a secret's value).
 */
#ifndef WK_WORKER_CFG_H
#define WK_WORKER_CFG_H

#include "common/wk_err.h"
#include "jobs/job.h"
#include "storage/seal.h"
#include "storage/store.h"
#include "worker/acct.h"

struct cfg_redis {
    char host[256];
    int port;
    char user[128];
    char pass[256]; /* never logged */
    int db;
    char sentinels[512]; /* SILA_REDIS_SENTINELS "host:port,...", "" = off */
    char master[128];    /* SILA_REDIS_MASTER (default "mymaster") */
    char sentinel_user[128]; /* SILA_REDIS_SENTINEL_USERNAME */
    char sentinel_pass[256]; /* SILA_REDIS_SENTINEL_PASSWORD, never logged */
    bool tls;                /* rediss:// */
    char ca_file[512];       /* SILA_REDIS_CA_FILE ("" = system CAs) */
    char cert_file[512];     /* SILA_REDIS_CERT_FILE (client certificate) */
    char key_file[512];      /* SILA_REDIS_KEY_FILE */
    bool cluster; /* SILA_REDIS_CLUSTER=1: follow MOVED / ASK (q_topo.h) */
};

#define CFG_URGENT_SLOTS_MAX 8

struct cfg {
    char store_url[1024]; /* SILA_STORE */
    char redis_url[1024]; /* REDIS_URL */
    struct cfg_redis redis;
    char prefix[64];        /* SILA_KEY_PREFIX, default "sila:" */
    unsigned block_ms;      /* how long one queue read waits (2000) */
    unsigned lease_ms;      /* SILA_LEASE: a silent worker's job is taken
                               over after this (30 s) */
    unsigned max_attempts;  /* SILA_MAX_ATTEMPTS: runs of a job that keeps
                               failing transiently (5) */
    unsigned retry_base_ms; /* SILA_RETRY_BASE: first retry delay (2 s) */
    unsigned retry_max_ms;  /* SILA_RETRY_MAX: longest retry delay (5 min) */
    unsigned grace_ms;      /* SILA_SHUTDOWN_GRACE: SIGTERM waits this long
                               for the current job (25 s) */
    unsigned urgent_slots;  /* SILA_URGENT_SLOTS: runners that serve only
                               the urgent lane, besides the main one (1) */
    unsigned bg_in_flight;  /* SILA_BACKGROUND_IN_FLIGHT: S3 requests a
                               background job keeps in flight while an
                               urgent job of the worker runs (4; 0 = no
                               limit) */
    char metrics_addr[128]; /* SILA_METRICS_ADDR "host:port", "" = off */
    char key_file[512];     /* SILA_ENCRYPTION_KEY_FILE, "" = no client-side
                               encryption; checked by cfg_from_env() */
    struct job_config job;
    struct store_opts store;
    /* SILA_PRICE_PER_1K_WRITE / _READ / _DELETE: the estimated cost of a
     * job's requests (worker/acct.h; AWS S3 Standard by default) */
    struct acct_prices prices;
};

/* Defaults, then the environment. */
enum wk_code cfg_from_env(struct cfg *c, struct wk_err *err);

/* The master keys of c->key_file, read now (so a rotated key file is seen
 * by the next job); *out = NULL when none is configured. Release with
 * seal_keyring_free(). */
enum wk_code cfg_keys(const struct cfg *c, struct seal_keyring **out,
                      struct wk_err *err);

/* "redis://[user[:pass]@]host[:port][/db]" (also "redis://:pass@host",
 * "redis://[::1]:6379"). The userinfo ends at the last '@', user and
 * password split at its first ':', both percent-decoded (%00 refused); so a
 * password may hold '@', ':' and '/' as they are. The host must be a name,
 * an IPv4 address or a bracketed IPv6 address. Error messages never quote
 * the URL. */
enum wk_code cfg_parse_redis_url(const char *url, struct cfg_redis *out,
                                 struct wk_err *err);

/* SILA_REDIS_SENTINELS, SILA_REDIS_MASTER (default "mymaster"),
 * SILA_REDIS_SENTINEL_USERNAME / _PASSWORD into r; the list is checked. */
enum wk_code cfg_redis_sentinel_env(struct cfg_redis *r, struct wk_err *err);

#endif
