/* The credential chain (aws_creds.h): configuration from the environment,
 * the shared files, which source the chain picks, and the shared provider
 * that keeps the credentials fresh. The fetches are in aws_creds_fetch.c. */
#include "storage/aws_creds.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/wk_buf.h"
#include "common/wk_log.h"
#include "common/wk_time.h"

const char *awsc_source_name(enum awsc_source s)
{
    switch (s) {
    case AWSC_ENV:
        return "env";
    case AWSC_PROFILE:
        return "profile";
    case AWSC_WEB_IDENTITY:
        return "web-identity";
    case AWSC_CONTAINER:
        return "container";
    case AWSC_IMDS:
        return "imds";
    case AWSC_CUSTOM:
        return "custom";
    case AWSC_NONE:
        break;
    }
    return "none";
}

/* Configuration */

static bool env_copy(char *dst, size_t len, const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return false;
    snprintf(dst, len, "%s", v);
    return true;
}

static bool env_true(const char *name)
{
    const char *v = getenv(name);
    return v && (strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

enum wk_code awsc_config_from_env(struct awsc_config *c, struct wk_err *err)
{
    static const enum awsc_source pins[] = { AWSC_ENV, AWSC_PROFILE,
                                             AWSC_WEB_IDENTITY, AWSC_CONTAINER,
                                             AWSC_IMDS };
    const char *pin = getenv("SILA_AWS_CREDENTIALS");
    const char *home = getenv("HOME");

    memset(c, 0, sizeof(*c));
    if (pin && *pin && strcmp(pin, "auto") != 0) {
        for (size_t i = 0; i < sizeof(pins) / sizeof(pins[0]); i++)
            if (strcmp(pin, awsc_source_name(pins[i])) == 0)
                c->pin = pins[i];
        if (c->pin == AWSC_NONE)
            return wk_err_set(err, WK_E_INVAL,
                              "SILA_AWS_CREDENTIALS: expected auto, env, "
                              "profile, web-identity, container or imds, not "
                              "'%s'",
                              pin);
    }
    env_copy(c->access_key, sizeof(c->access_key), "AWS_ACCESS_KEY_ID");
    env_copy(c->secret_key, sizeof(c->secret_key), "AWS_SECRET_ACCESS_KEY");
    env_copy(c->session_token, sizeof(c->session_token), "AWS_SESSION_TOKEN");
    snprintf(c->profile, sizeof(c->profile), "default");
    if (env_copy(c->profile, sizeof(c->profile), "AWS_DEFAULT_PROFILE"))
        c->profile_set = true;
    if (env_copy(c->profile, sizeof(c->profile), "AWS_PROFILE"))
        c->profile_set = true;
    if (!env_copy(c->credentials_file, sizeof(c->credentials_file),
                  "AWS_SHARED_CREDENTIALS_FILE") &&
        home && *home)
        snprintf(c->credentials_file, sizeof(c->credentials_file),
                 "%s/.aws/credentials", home);
    if (!env_copy(c->config_file, sizeof(c->config_file), "AWS_CONFIG_FILE") &&
        home && *home)
        snprintf(c->config_file, sizeof(c->config_file), "%s/.aws/config",
                 home);
    env_copy(c->role_arn, sizeof(c->role_arn), "AWS_ROLE_ARN");
    env_copy(c->web_identity_token_file, sizeof(c->web_identity_token_file),
             "AWS_WEB_IDENTITY_TOKEN_FILE");
    env_copy(c->role_session_name, sizeof(c->role_session_name),
             "AWS_ROLE_SESSION_NAME");
    if (!env_copy(c->sts_endpoint, sizeof(c->sts_endpoint),
                  "AWS_ENDPOINT_URL_STS"))
        env_copy(c->sts_endpoint, sizeof(c->sts_endpoint), "AWS_ENDPOINT_URL");
    snprintf(c->region, sizeof(c->region), "us-east-1");
    env_copy(c->region, sizeof(c->region), "AWS_DEFAULT_REGION");
    env_copy(c->region, sizeof(c->region), "AWS_REGION");
    env_copy(c->container_full_uri, sizeof(c->container_full_uri),
             "AWS_CONTAINER_CREDENTIALS_FULL_URI");
    env_copy(c->container_relative_uri, sizeof(c->container_relative_uri),
             "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    env_copy(c->container_token, sizeof(c->container_token),
             "AWS_CONTAINER_AUTHORIZATION_TOKEN");
    env_copy(c->container_token_file, sizeof(c->container_token_file),
             "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    if (!env_copy(c->imds_endpoint, sizeof(c->imds_endpoint),
                  "AWS_EC2_METADATA_SERVICE_ENDPOINT")) {
        const char *mode = getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
        if (mode && strcasecmp(mode, "IPv6") == 0)
            snprintf(c->imds_endpoint, sizeof(c->imds_endpoint),
                     "http://[fd00:ec2::254]");
    }
    c->imds_disabled = env_true("AWS_EC2_METADATA_DISABLED");
    env_copy(c->ca_file, sizeof(c->ca_file), "SILA_CA_FILE");
    {
        const char *v = getenv("SILA_ALLOW_INSECURE");
        c->allow_insecure = v && strcmp(v, "1") == 0;
    }
    c->connect_timeout_ms = 2000;
    c->timeout_ms = 5000;
    return WK_OK;
}

/* Shared files */

static char *trim(char *s)
{
    char *e;
    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
        *--e = '\0';
    return s;
}

/* Is "[...]" (inside the brackets: in) the section we want? */
static bool section_is(const char *in, const char *want, bool config_style)
{
    char buf[160];
    const char *name;

    snprintf(buf, sizeof(buf), "%s", in);
    name = trim(buf);
    if (config_style) {
        if (strncmp(name, "profile", 7) == 0 &&
            (name[7] == ' ' || name[7] == '\t')) {
            char rest[160];
            snprintf(rest, sizeof(rest), "%s", name + 8);
            return strcmp(trim(rest), want) == 0;
        }
        /* only "default" may go without the word profile */
        return strcmp(name, "default") == 0 && strcmp(want, "default") == 0;
    }
    return strcmp(name, want) == 0;
}

static void set_once(char *dst, size_t len, const char *v)
{
    if (dst[0] == '\0')
        snprintf(dst, len, "%s", v);
}

static void profile_key(struct awsc_profile *out, const char *k, const char *v)
{
    if (strcmp(k, "aws_access_key_id") == 0)
        set_once(out->access_key, sizeof(out->access_key), v);
    else if (strcmp(k, "aws_secret_access_key") == 0)
        set_once(out->secret_key, sizeof(out->secret_key), v);
    else if (strcmp(k, "aws_session_token") == 0 ||
             strcmp(k, "aws_security_token") == 0)
        set_once(out->session_token, sizeof(out->session_token), v);
    else if (strcmp(k, "role_arn") == 0)
        set_once(out->role_arn, sizeof(out->role_arn), v);
    else if (strcmp(k, "web_identity_token_file") == 0)
        set_once(out->web_identity_token_file,
                 sizeof(out->web_identity_token_file), v);
    else if (strcmp(k, "role_session_name") == 0)
        set_once(out->role_session_name, sizeof(out->role_session_name), v);
    else if (strcmp(k, "region") == 0)
        set_once(out->region, sizeof(out->region), v);
    else if (strcmp(k, "source_profile") == 0 ||
             strcmp(k, "credential_source") == 0 ||
             strcmp(k, "credential_process") == 0 ||
             strcmp(k, "sso_session") == 0 || strcmp(k, "sso_start_url") == 0)
        set_once(out->unsupported, sizeof(out->unsupported), k);
}

enum wk_code awsc_ini_merge(const char *text, size_t n, const char *section,
                            bool config_style, struct awsc_profile *out,
                            struct wk_err *err)
{
    char line[AWSC_TOKEN_MAX + 256];
    bool in = false;
    size_t i = 0;

    if (n > AWSC_INI_MAX)
        return wk_err_set(err, WK_E_LIMIT,
                          "AWS shared file of %zu bytes is over the limit of "
                          "%u",
                          n, AWSC_INI_MAX);
    while (i < n) {
        size_t start = i, len;
        char *s, *eq;
        bool indented;

        while (i < n && text[i] != '\n')
            i++;
        len = i - start;
        i++; /* past '\n' */
        if (len >= sizeof(line))
            continue; /* no value we read is that long */
        memcpy(line, text + start, len);
        line[len] = '\0';
        indented = line[0] == ' ' || line[0] == '\t';
        s = trim(line);
        if (*s == '\0' || *s == '#' || *s == ';')
            continue;
        if (*s == '[') {
            char *close = strchr(s, ']');
            if (!close)
                continue;
            *close = '\0';
            in = section_is(s + 1, section, config_style);
            if (in)
                out->found = true;
            continue;
        }
        if (!in || indented)
            continue; /* another profile, or a nested "s3 =" block */
        eq = strchr(s, '=');
        if (!eq)
            continue;
        *eq = '\0';
        {
            char *k = trim(s), *v = trim(eq + 1);
            /* an inline comment needs white space before it */
            for (char *c = v; *c; c++)
                if ((*c == '#' || *c == ';') && c > v &&
                    (c[-1] == ' ' || c[-1] == '\t')) {
                    *c = '\0';
                    v = trim(v);
                    break;
                }
            profile_key(out, k, v);
        }
    }
    OPENSSL_cleanse(line, sizeof(line));
    return WK_OK;
}

/* The whole of a small file into b; *missing when it does not exist. */
static enum wk_code read_small(const char *path, size_t max, struct wk_buf *b,
                               bool *missing, struct wk_err *err)
{
    char chunk[4096];
    FILE *f = fopen(path, "rb");
    enum wk_code rc = WK_OK;
    size_t nr;

    *missing = false;
    if (!f) {
        if (errno == ENOENT || errno == ENOTDIR) {
            *missing = true;
            return WK_OK;
        }
        return wk_err_sys(err, WK_E_IO, errno, "open '%s'", path);
    }
    wk_buf_init(b, max);
    while (rc == WK_OK && (nr = fread(chunk, 1, sizeof(chunk), f)) > 0)
        rc = wk_buf_append(b, chunk, nr, err);
    if (rc == WK_OK && ferror(f))
        rc = wk_err_set(err, WK_E_IO, "read '%s' failed", path);
    if (rc == WK_E_LIMIT)
        wk_err_prefix(err, "'%s'", path);
    fclose(f);
    OPENSSL_cleanse(chunk, sizeof(chunk));
    return rc;
}

static void buf_wipe(struct wk_buf *b)
{
    if (b->data)
        OPENSSL_cleanse(b->data, b->len);
    wk_buf_release(b);
}

enum wk_code awsc_profile_load(const struct awsc_config *c,
                               struct awsc_profile *out, struct wk_err *err)
{
    const char *files[2] = { c->credentials_file, c->config_file };
    enum wk_code rc = WK_OK;

    memset(out, 0, sizeof(*out));
    for (int i = 0; i < 2 && rc == WK_OK; i++) {
        struct wk_buf b;
        bool missing;

        if (files[i][0] == '\0')
            continue;
        wk_buf_init(&b, AWSC_INI_MAX);
        rc = read_small(files[i], AWSC_INI_MAX, &b, &missing, err);
        if (rc == WK_OK && !missing)
            rc = awsc_ini_merge(b.data ? b.data : "", b.len, c->profile, i == 1,
                                out, err);
        buf_wipe(&b);
    }
    return rc;
}

/* Which source */

static bool env_ready(const struct awsc_config *c)
{
    return c->access_key[0] && c->secret_key[0];
}

static bool web_identity_ready(const struct awsc_config *c)
{
    return c->role_arn[0] && c->web_identity_token_file[0];
}

static bool container_ready(const struct awsc_config *c)
{
    return c->container_full_uri[0] || c->container_relative_uri[0];
}

/* The profile's verdict: usable (*ok), absent, or an error. */
static enum wk_code profile_state(const struct awsc_config *c, bool *ok,
                                  struct wk_err *err)
{
    struct awsc_profile *p = calloc(1, sizeof(*p));
    enum wk_code rc;

    *ok = false;
    if (!p)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    rc = awsc_profile_load(c, p, err);
    if (rc == WK_OK && p->found) {
        if (p->access_key[0] && p->secret_key[0])
            *ok = true;
        else if (p->role_arn[0] && p->web_identity_token_file[0])
            *ok = true;
        else if (p->unsupported[0])
            rc = wk_err_set(err, WK_E_INVAL,
                            "AWS profile '%s' uses %s, which sila-archiver "
                            "does not support (use static keys, "
                            "role_arn + web_identity_token_file, or another "
                            "source)",
                            c->profile, p->unsupported);
        else if (c->profile_set)
            rc = wk_err_set(err, WK_E_INVAL,
                            "AWS profile '%s' has no aws_access_key_id + "
                            "aws_secret_access_key nor role_arn + "
                            "web_identity_token_file",
                            c->profile);
    } else if (rc == WK_OK && c->profile_set) {
        rc = wk_err_set(err, WK_E_INVAL,
                        "AWS profile '%s' (AWS_PROFILE) not found in '%s' "
                        "or '%s'",
                        c->profile, c->credentials_file, c->config_file);
    }
    OPENSSL_cleanse(p, sizeof(*p));
    free(p);
    return rc;
}

enum wk_code awsc_detect(const struct awsc_config *c, enum awsc_source *out,
                         struct wk_err *err)
{
    bool ok = false;
    enum wk_code rc;

    *out = AWSC_NONE;
    switch (c->pin) {
    case AWSC_ENV:
        if (!env_ready(c))
            return wk_err_set(err, WK_E_NOTFOUND,
                              "SILA_AWS_CREDENTIALS=env: AWS_ACCESS_KEY_ID "
                              "and AWS_SECRET_ACCESS_KEY must be set");
        *out = AWSC_ENV;
        return WK_OK;
    case AWSC_PROFILE:
        rc = profile_state(c, &ok, err);
        if (rc == WK_OK && !ok)
            rc = wk_err_set(err, WK_E_NOTFOUND,
                            "SILA_AWS_CREDENTIALS=profile: no profile '%s' "
                            "in '%s' or '%s'",
                            c->profile, c->credentials_file, c->config_file);
        if (rc == WK_OK)
            *out = AWSC_PROFILE;
        return rc;
    case AWSC_WEB_IDENTITY:
        if (!web_identity_ready(c))
            return wk_err_set(err, WK_E_NOTFOUND,
                              "SILA_AWS_CREDENTIALS=web-identity: "
                              "AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE "
                              "must be set");
        *out = AWSC_WEB_IDENTITY;
        return WK_OK;
    case AWSC_CONTAINER:
        if (!container_ready(c))
            return wk_err_set(err, WK_E_NOTFOUND,
                              "SILA_AWS_CREDENTIALS=container: "
                              "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or "
                              "_FULL_URI must be set");
        *out = AWSC_CONTAINER;
        return WK_OK;
    case AWSC_IMDS:
        *out = AWSC_IMDS;
        return WK_OK;
    case AWSC_CUSTOM:
    case AWSC_NONE:
        break;
    }
    if (env_ready(c)) {
        *out = AWSC_ENV;
        return WK_OK;
    }
    rc = profile_state(c, &ok, err);
    if (rc != WK_OK)
        return rc;
    if (ok)
        *out = AWSC_PROFILE;
    else if (web_identity_ready(c))
        *out = AWSC_WEB_IDENTITY;
    else if (container_ready(c))
        *out = AWSC_CONTAINER;
    else if (!c->imds_disabled)
        *out = AWSC_IMDS;
    else
        return wk_err_set(err, WK_E_NOTFOUND,
                          "no AWS credentials: AWS_ACCESS_KEY_ID and "
                          "AWS_SECRET_ACCESS_KEY unset, no profile '%s' in "
                          "'%s' or '%s', AWS_ROLE_ARN + "
                          "AWS_WEB_IDENTITY_TOKEN_FILE unset, "
                          "AWS_CONTAINER_CREDENTIALS_* unset, EC2 metadata "
                          "disabled (AWS_EC2_METADATA_DISABLED)",
                          c->profile, c->credentials_file, c->config_file);
    return WK_OK;
}

/* Refresh policy */

int64_t awsc_refresh_at_ms(int64_t fetched_ms, int64_t expires_ms)
{
    int64_t ahead = expires_ms - AWSC_REFRESH_AHEAD_MS;
    int64_t half = fetched_ms + (expires_ms - fetched_ms) / 2;

    if (expires_ms == 0)
        return 0;
    return ahead > half ? ahead : half;
}

int64_t awsc_unusable_at_ms(int64_t fetched_ms, int64_t expires_ms)
{
    int64_t slack = (expires_ms - fetched_ms) / 10;

    if (expires_ms == 0)
        return 0;
    if (slack > 10000)
        slack = 10000;
    if (slack < 0)
        slack = 0;
    return expires_ms - slack;
}

/* The provider */

struct awsc_provider {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    enum awsc_source source;
    struct awsc_config *cfg; /* owned (NULL for AWSC_CUSTOM) */
    awsc_fetch_fn fn;        /* AWSC_CUSTOM */
    void *ud;                /* borrowed */
    awsc_clock_fn clock;
    struct awsc_creds cur; /* guarded by mu */
    int64_t refresh_at_ms, unusable_at_ms, retry_at_ms;
    bool refreshing;
    struct wk_err last_err; /* the last failed fetch */
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static enum wk_code provider_alloc(struct awsc_provider **out,
                                   struct wk_err *err)
{
    struct awsc_provider *p = calloc(1, sizeof(*p));

    *out = NULL;
    if (!p)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p);
        return wk_err_set(err, WK_E_INTERNAL, "pthread_mutex_init failed");
    }
    if (pthread_cond_init(&p->cv, NULL) != 0) {
        pthread_mutex_destroy(&p->mu);
        free(p);
        return wk_err_set(err, WK_E_INTERNAL, "pthread_cond_init failed");
    }
    p->clock = wall_ms;
    *out = p;
    return WK_OK;
}

enum wk_code awsc_provider_new(const struct awsc_config *c,
                               struct awsc_provider **out, struct wk_err *err)
{
    struct awsc_provider *p = NULL;
    enum awsc_source src;
    enum wk_code rc;

    *out = NULL;
    rc = awsc_detect(c, &src, err);
    if (rc == WK_OK)
        rc = provider_alloc(&p, err);
    if (rc == WK_OK) {
        p->cfg = malloc(sizeof(*p->cfg));
        if (!p->cfg)
            rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
    }
    if (rc != WK_OK) {
        awsc_provider_free(p);
        return rc;
    }
    *p->cfg = *c;
    p->source = src;
    *out = p;
    return WK_OK;
}

enum wk_code awsc_provider_new_fn(awsc_fetch_fn fn, void *ud,
                                  awsc_clock_fn clock,
                                  struct awsc_provider **out,
                                  struct wk_err *err)
{
    enum wk_code rc = provider_alloc(out, err);

    if (rc != WK_OK)
        return rc;
    (*out)->source = AWSC_CUSTOM;
    (*out)->fn = fn;
    (*out)->ud = ud;
    if (clock)
        (*out)->clock = clock;
    return WK_OK;
}

void awsc_provider_free(struct awsc_provider *p)
{
    if (!p)
        return;
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    if (p->cfg) {
        OPENSSL_cleanse(p->cfg, sizeof(*p->cfg));
        free(p->cfg);
    }
    OPENSSL_cleanse(&p->cur, sizeof(p->cur));
    free(p);
}

enum awsc_source awsc_provider_source(const struct awsc_provider *p)
{
    return p->source;
}

static void expiry_text(int64_t expires_ms, char *buf, size_t len)
{
    if (expires_ms == 0)
        snprintf(buf, len, "never");
    else
        wk_time_fmt_rfc3339((time_t)(expires_ms / 1000), buf, len);
}

/* Under mu: is cur good to sign with at now? */
static bool usable(const struct awsc_provider *p, int64_t now)
{
    return p->cur.gen != 0 &&
           (p->unusable_at_ms == 0 || now < p->unusable_at_ms);
}

static void copy_out(const struct awsc_provider *p, struct awsc_creds *snap)
{
    if (snap->gen != p->cur.gen)
        *snap = p->cur;
}

/* Under mu, with refreshing set by us: fetch (mu released meanwhile). */
static void refresh_locked(struct awsc_provider *p)
{
    struct awsc_creds *fresh = calloc(1, sizeof(*fresh));
    struct wk_err ferr;
    enum wk_code rc;
    int64_t start = p->clock(), now;
    bool first = p->cur.gen == 0;
    char exp[32];

    wk_err_clear(&ferr);
    pthread_mutex_unlock(&p->mu);
    if (!fresh)
        rc = wk_err_set(&ferr, WK_E_NOMEM, "out of memory");
    else if (p->source == AWSC_CUSTOM)
        rc = p->fn(p->ud, fresh, &ferr);
    else
        rc = awsc_fetch(p->cfg, p->source, fresh, &ferr);
    if (rc == WK_OK && fresh->expires_ms != 0 && fresh->expires_ms <= start)
        rc = wk_err_set(&ferr, WK_E_CORRUPT,
                        "credentials from %s came already expired",
                        awsc_source_name(p->source));
    pthread_mutex_lock(&p->mu);
    now = p->clock();
    if (rc == WK_OK) {
        fresh->source = p->source;
        fresh->gen = p->cur.gen + 1;
        p->cur = *fresh;
        p->refresh_at_ms = awsc_refresh_at_ms(start, fresh->expires_ms);
        p->unusable_at_ms = awsc_unusable_at_ms(start, fresh->expires_ms);
        p->retry_at_ms = 0;
        wk_err_clear(&p->last_err);
        expiry_text(fresh->expires_ms, exp, sizeof(exp));
        WK_LOG(WK_LOG_INFO,
               first ? "aws.credentials.loaded" : "aws.credentials.refreshed",
               KV_STR("source", awsc_source_name(p->source)),
               KV_STR("expires", exp));
    } else {
        /* try again soon, sooner as the expiry nears; never in a loop */
        int64_t left = p->unusable_at_ms ? p->unusable_at_ms - now : 0;
        int64_t wait = left / 4;
        if (wait > 30000)
            wait = 30000;
        if (wait < 1000)
            wait = 1000;
        p->retry_at_ms = now + wait;
        wk_err_clear(&p->last_err);
        wk_err_copy(&p->last_err, &ferr);
        expiry_text(p->cur.gen ? p->cur.expires_ms : 0, exp, sizeof(exp));
        WK_LOG(WK_LOG_WARN, "aws.credentials.refresh_failed",
               KV_STR("source", awsc_source_name(p->source)),
               KV_INT("code", ferr.code),
               KV_INT("http_status", ferr.http_status), KV_STR("msg", ferr.msg),
               KV_BOOL("kept", usable(p, now)),
               KV_STR("expires", p->cur.gen ? exp : ""));
    }
    if (fresh) {
        OPENSSL_cleanse(fresh, sizeof(*fresh));
        free(fresh);
    }
    p->refreshing = false;
    pthread_cond_broadcast(&p->cv);
}

enum wk_code awsc_provider_get(struct awsc_provider *p, struct awsc_creds *snap,
                               struct wk_err *err)
{
    enum wk_code rc = WK_OK;
    bool tried = false;

    pthread_mutex_lock(&p->mu);
    for (;;) {
        int64_t now = p->clock();
        bool ok = usable(p, now);
        bool due = p->cur.gen == 0 ||
                   (p->refresh_at_ms != 0 && now >= p->refresh_at_ms);

        if (ok && (!due || p->refreshing || now < p->retry_at_ms)) {
            copy_out(p, snap);
            break;
        }
        if (p->refreshing) {
            pthread_cond_wait(&p->cv, &p->mu);
            continue;
        }
        if (!ok && (tried || now < p->retry_at_ms)) {
            /* no valid credentials and the last fetch failed */
            if (p->cur.gen == 0)
                rc = wk_err_set(err,
                                p->last_err.code ? p->last_err.code : WK_E_NET,
                                "AWS credentials (%s): %s",
                                awsc_source_name(p->source), p->last_err.msg);
            else
                rc = wk_err_set(err, WK_E_NET,
                                "AWS credentials (%s) expired and the "
                                "refresh failed: %s",
                                awsc_source_name(p->source), p->last_err.msg);
            if (err)
                err->http_status = p->last_err.http_status;
            break;
        }
        p->refreshing = true;
        tried = true;
        refresh_locked(p);
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

void awsc_provider_expired(struct awsc_provider *p, uint64_t gen)
{
    pthread_mutex_lock(&p->mu);
    if (gen != 0 && p->cur.gen == gen && p->cur.expires_ms != 0) {
        p->refresh_at_ms = 1; /* due now */
        p->retry_at_ms = 0;
    }
    pthread_mutex_unlock(&p->mu);
}

static pthread_mutex_t shared_mu = PTHREAD_MUTEX_INITIALIZER;
static struct awsc_provider *shared_p;

enum wk_code awsc_shared(struct awsc_provider **out, struct wk_err *err)
{
    struct awsc_config *c = NULL;
    enum wk_code rc = WK_OK;

    *out = NULL;
    pthread_mutex_lock(&shared_mu);
    if (!shared_p) {
        c = malloc(sizeof(*c));
        if (!c)
            rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
        if (rc == WK_OK)
            rc = awsc_config_from_env(c, err);
        if (rc == WK_OK)
            rc = awsc_provider_new(c, &shared_p, err);
        if (rc == WK_OK)
            WK_LOG(WK_LOG_INFO, "aws.credentials.source",
                   KV_STR("source", awsc_source_name(shared_p->source)),
                   KV_STR("pinned", c->pin ? "yes" : "no"));
    }
    *out = shared_p;
    pthread_mutex_unlock(&shared_mu);
    if (c) {
        OPENSSL_cleanse(c, sizeof(*c));
        free(c);
    }
    return rc;
}
