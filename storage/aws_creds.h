/*
 * aws_creds: AWS credentials found the way the AWS SDKs find them, and kept
 * fresh while they are used.
 *
 * The chain, in this order unless SILA_AWS_CREDENTIALS pins one source:
 *   env           AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ token)
 *   profile       AWS_PROFILE (or "default") in AWS_SHARED_CREDENTIALS_FILE
 *                 (~/.aws/credentials), then AWS_CONFIG_FILE (~/.aws/config):
 *                 static keys, or role_arn + web_identity_token_file
 *   web-identity  AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE: an unsigned
 *                 STS AssumeRoleWithWebIdentity (EKS IRSA) at
 *                 AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL or
 *                 https://sts.<region>.amazonaws.com
 *   container     AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (ECS, on
 *                 169.254.170.2) or _FULL_URI (EKS Pod Identity), with
 *                 AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE or _TOKEN
 *   imds          EC2 instance metadata, IMDSv2 only (token, role, creds) at
 *                 AWS_EC2_METADATA_SERVICE_ENDPOINT or 169.254.169.254,
 *                 unless AWS_EC2_METADATA_DISABLED=true
 * A source that is configured but fails is an error: the chain does not
 * fall through to the next one (the SDKs' rule), so a broken IRSA setup
 * never silently runs with an instance profile's rights.
 *
 * The provider (struct awsc_provider) holds the current credentials of one
 * source. It is shared by every S3 client of the process (one per runner
 * thread) and thread safe: a mutex guards the credentials, and one caller at
 * a time refreshes them, outside the mutex, while the others go on with the
 * old ones. Temporary credentials are refreshed before they expire (5 min
 * before, or at half their lifetime when that is shorter); a refresh that
 * fails keeps the old credentials until they really expire, so a running
 * job never fails while its credentials are valid. Calls block only while
 * they fetch (network, bounded by timeouts). Secrets are never logged and
 * never appear in error messages: the log says the source and the expiry.
 *
 * Errors come back as enum wk_code + struct wk_err: WK_E_INVAL for bad
 * configuration, WK_E_NOTFOUND when no source has credentials, WK_E_NET /
 * WK_E_HTTP when an endpoint fails, WK_E_CORRUPT for a reply that does not
 * parse.
 */
#ifndef WK_STORAGE_AWS_CREDS_H
#define WK_STORAGE_AWS_CREDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/wk_err.h"

#define AWSC_KEY_MAX          128
#define AWSC_TOKEN_MAX        4096
#define AWSC_PATH_MAX         512
#define AWSC_URL_MAX          512
#define AWSC_BODY_MAX         (64u << 10) /* any reply of an endpoint */
#define AWSC_TOKEN_FILE_MAX   (16u << 10) /* a token file */
#define AWSC_INI_MAX          (1u << 20)  /* a shared file */
#define AWSC_REFRESH_AHEAD_MS (5 * 60 * 1000)

enum awsc_source {
    AWSC_NONE = 0,
    AWSC_ENV,
    AWSC_PROFILE,
    AWSC_WEB_IDENTITY,
    AWSC_CONTAINER,
    AWSC_IMDS,
    AWSC_CUSTOM, /* a fetch function of the caller's (tests) */
};

/* "env", "profile", "web-identity", "container", "imds", "custom", "none". */
const char *awsc_source_name(enum awsc_source s);

struct awsc_creds {
    char access_key[AWSC_KEY_MAX];
    char secret_key[AWSC_KEY_MAX];
    char session_token[AWSC_TOKEN_MAX]; /* "" when none */
    int64_t expires_ms;                 /* unix ms; 0: never expires */
    enum awsc_source source;
    uint64_t gen; /* provider's generation (0: never filled) */
};

/* Everything the chain reads from the environment, read once. */
struct awsc_config {
    enum awsc_source pin; /* AWSC_NONE: the whole chain (auto) */
    char access_key[AWSC_KEY_MAX];
    char secret_key[AWSC_KEY_MAX];
    char session_token[AWSC_TOKEN_MAX];
    char profile[128];
    bool profile_set; /* AWS_PROFILE was given: it must exist */
    char credentials_file[AWSC_PATH_MAX];
    char config_file[AWSC_PATH_MAX];
    char role_arn[256];
    char web_identity_token_file[AWSC_PATH_MAX];
    char role_session_name[65];
    char sts_endpoint[256]; /* "" = https://sts.<region>.amazonaws.com */
    char region[64];
    char container_full_uri[AWSC_URL_MAX];
    char container_relative_uri[AWSC_URL_MAX];
    char container_token[AWSC_TOKEN_MAX];
    char container_token_file[AWSC_PATH_MAX];
    char imds_endpoint[256]; /* "" = http://169.254.169.254 */
    bool imds_disabled;
    char ca_file[AWSC_PATH_MAX]; /* SILA_CA_FILE, for STS over https */
    bool allow_insecure;         /* SILA_ALLOW_INSECURE: STS http:// */
    unsigned connect_timeout_ms; /* default 2000 (IMDS 1000) */
    unsigned timeout_ms;         /* whole request, default 5000 */
};

/* Fill c from the environment (see the top of this file; empty variables
 * count as unset). WK_E_INVAL for a bad SILA_AWS_CREDENTIALS (expected
 * auto, env, profile, web-identity, container or imds). */
enum wk_code awsc_config_from_env(struct awsc_config *c, struct wk_err *err);

/* What a profile of the shared files says. */
struct awsc_profile {
    bool found;
    char access_key[AWSC_KEY_MAX];
    char secret_key[AWSC_KEY_MAX];
    char session_token[AWSC_TOKEN_MAX];
    char role_arn[256];
    char web_identity_token_file[AWSC_PATH_MAX];
    char role_session_name[65];
    char region[64];
    char unsupported[32]; /* "source_profile", "credential_process", ... */
};

/* Merge section of one INI text into out: "[name]" (credentials file) or
 * "[profile name]" ("[default]" too) when config_style; keys already set
 * in out are kept (the credentials file is read first and wins). '#' and
 * ';' start comments, indented lines continue a nested block and are
 * skipped. Pure. WK_E_LIMIT when n > AWSC_INI_MAX. */
enum wk_code awsc_ini_merge(const char *text, size_t n, const char *section,
                            bool config_style, struct awsc_profile *out,
                            struct wk_err *err);

/* Read c's profile from both files (a missing file is no error). */
enum wk_code awsc_profile_load(const struct awsc_config *c,
                               struct awsc_profile *out, struct wk_err *err);

/* The source the chain would use, without any network request (the shared
 * files are read). WK_E_NOTFOUND, naming what was looked at, when none is
 * configured (the imds step counts as configured unless disabled). */
enum wk_code awsc_detect(const struct awsc_config *c, enum awsc_source *out,
                         struct wk_err *err);

/* One fetch from src (network for web-identity, container and imds). */
enum wk_code awsc_fetch(const struct awsc_config *c, enum awsc_source src,
                        struct awsc_creds *out, struct wk_err *err);

/* Replies, pure: STS AssumeRoleWithWebIdentityResponse (an ErrorResponse is
 * WK_E_HTTP with its Code and Message) and the JSON of the container and
 * IMDS endpoints (AccessKeyId, SecretAccessKey, Token, Expiration; IMDS's
 * Code must be "Success" when present). */
enum wk_code awsc_parse_sts(const char *p, size_t n, struct awsc_creds *out,
                            struct wk_err *err);
enum wk_code awsc_parse_json(const char *p, size_t n, struct awsc_creds *out,
                             struct wk_err *err);

/* When credentials fetched at fetched_ms and expiring at expires_ms are
 * refreshed: AWSC_REFRESH_AHEAD_MS before the expiry, or at half the
 * lifetime when that comes later (short-lived credentials). 0 = never. */
int64_t awsc_refresh_at_ms(int64_t fetched_ms, int64_t expires_ms);
/* From when they are no longer used to sign at all: a tenth of the
 * lifetime, at most 10 s, before the expiry. 0 = never. */
int64_t awsc_unusable_at_ms(int64_t fetched_ms, int64_t expires_ms);

struct awsc_provider;

/* A fetch function (AWSC_CUSTOM) and a clock in unix ms, for tests. */
typedef enum wk_code (*awsc_fetch_fn)(void *ud, struct awsc_creds *out,
                                      struct wk_err *err);
typedef int64_t (*awsc_clock_fn)(void);

/* A provider for the source the chain picks for c (awsc_detect); nothing is
 * fetched yet. Release with awsc_provider_free(). */
enum wk_code awsc_provider_new(const struct awsc_config *c,
                               struct awsc_provider **out, struct wk_err *err);
/* A provider around fn (ud borrowed while the provider lives); clock NULL
 * = the wall clock. */
enum wk_code awsc_provider_new_fn(awsc_fetch_fn fn, void *ud,
                                  awsc_clock_fn clock,
                                  struct awsc_provider **out,
                                  struct wk_err *err);
/* NULL does nothing. Not while another thread uses p. */
void awsc_provider_free(struct awsc_provider *p);

enum awsc_source awsc_provider_source(const struct awsc_provider *p);

/* Usable credentials into snap: unchanged when snap already holds the
 * current generation and no refresh is due, else copied. Fetches the first
 * time and when a refresh is due (blocking; one thread at a time, others
 * keep the old ones). Fails only when no valid credentials exist (never
 * fetched, or expired and the refresh failed). Thread safe. */
enum wk_code awsc_provider_get(struct awsc_provider *p, struct awsc_creds *snap,
                               struct wk_err *err);

/* The server refused credentials of generation gen as expired (an
 * ExpiredToken answer: signed just before their end, they arrived after
 * it): when they are still the current ones, the next get fetches new
 * ones instead of waiting for the refresh point. Thread safe. */
void awsc_provider_expired(struct awsc_provider *p, uint64_t gen);

/* The process-wide provider of the chain from the environment, made on the
 * first call (later calls return the same one; a failure is not kept, the
 * next call tries again). Lives until exit. Thread safe. */
enum wk_code awsc_shared(struct awsc_provider **out, struct wk_err *err);

#endif
