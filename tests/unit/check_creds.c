/* The AWS credential chain (storage/aws_creds.h): shared-file parsing, the
 * order of the sources, the replies of STS and the credential endpoints,
 * and the provider's refresh (before expiry; a failed refresh keeps the old
 * credentials until they expire). No network. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/aws_creds.h"
#include "storage/s3_http.h"
#include "storage/store.h"
#include "tests/unit/suites.h"

static void blank_config(struct awsc_config *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->profile, sizeof(c->profile), "default");
    snprintf(c->credentials_file, sizeof(c->credentials_file),
             "/nonexistent/credentials");
    snprintf(c->config_file, sizeof(c->config_file), "/nonexistent/config");
    c->imds_disabled = true;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

START_TEST(test_creds_ini_profiles)
{
    static const char creds[] = "# comment\n"
                                "[default]\n"
                                "aws_access_key_id = AKDEF\n"
                                "aws_secret_access_key=SKDEF ; note\n"
                                "[prod]\n"
                                "aws_access_key_id = AKPROD\n"
                                "aws_secret_access_key = SKPROD\n"
                                "aws_session_token = TOKPROD\n"
                                "s3 =\n"
                                "  aws_access_key_id = NESTED\n";
    static const char config[] = "[profile prod]\n"
                                 "region = eu-west-1\n"
                                 "aws_access_key_id = FROMCONFIG\n"
                                 "[profile irsa]\n"
                                 "role_arn = arn:aws:iam::1:role/r\n"
                                 "web_identity_token_file = /t\n"
                                 "[irsa]\n"
                                 "region = wrong\n";
    struct awsc_profile p;
    struct wk_err err;

    memset(&p, 0, sizeof(p));
    wk_err_clear(&err);
    ck_assert_int_eq(
        awsc_ini_merge(creds, strlen(creds), "prod", false, &p, &err), WK_OK);
    ck_assert_int_eq(
        awsc_ini_merge(config, strlen(config), "prod", true, &p, &err), WK_OK);
    ck_assert(p.found);
    /* the credentials file wins; the nested block is not the profile's */
    ck_assert_str_eq(p.access_key, "AKPROD");
    ck_assert_str_eq(p.secret_key, "SKPROD");
    ck_assert_str_eq(p.session_token, "TOKPROD");
    ck_assert_str_eq(p.region, "eu-west-1");

    memset(&p, 0, sizeof(p));
    ck_assert_int_eq(
        awsc_ini_merge(creds, strlen(creds), "default", false, &p, &err),
        WK_OK);
    ck_assert_str_eq(p.secret_key, "SKDEF"); /* inline comment dropped */

    /* config style: "[irsa]" is not "[profile irsa]" */
    memset(&p, 0, sizeof(p));
    ck_assert_int_eq(
        awsc_ini_merge(config, strlen(config), "irsa", true, &p, &err), WK_OK);
    ck_assert_str_eq(p.role_arn, "arn:aws:iam::1:role/r");
    ck_assert_str_eq(p.web_identity_token_file, "/t");
    ck_assert_str_eq(p.region, "");

    memset(&p, 0, sizeof(p));
    ck_assert_int_eq(
        awsc_ini_merge(creds, strlen(creds), "none", false, &p, &err), WK_OK);
    ck_assert(!p.found);
}
END_TEST

START_TEST(test_creds_chain_order)
{
    char dir[] = "/tmp/ck-creds-XXXXXX";
    struct awsc_config c;
    enum awsc_source s;
    struct wk_err err;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    blank_config(&c);
    wk_err_clear(&err);
    /* nothing at all, IMDS disabled */
    ck_assert_int_eq(awsc_detect(&c, &s, &err), WK_E_NOTFOUND);
    ck_assert_ptr_nonnull(strstr(err.msg, "no AWS credentials"));
    /* IMDS is the last resort */
    c.imds_disabled = false;
    ck_assert_int_eq(awsc_detect(&c, &s, &err), WK_OK);
    ck_assert_int_eq(s, AWSC_IMDS);
    snprintf(c.container_full_uri, sizeof(c.container_full_uri),
             "http://127.0.0.1:1/v2/credentials/x");
    ck_assert_int_eq(awsc_detect(&c, &s, &err), WK_OK);
    ck_assert_int_eq(s, AWSC_CONTAINER);
    snprintf(c.role_arn, sizeof(c.role_arn), "arn:aws:iam::1:role/r");
    snprintf(c.web_identity_token_file, sizeof(c.web_identity_token_file),
             "/t");
    ck_assert_int_eq(awsc_detect(&c, &s, &err), WK_OK);
    ck_assert_int_eq(s, AWSC_WEB_IDENTITY);
    snprintf(c.credentials_file, sizeof(c.credentials_file), "%s/credentials",
             dir);
    write_text(c.credentials_file,
               "[default]\naws_access_key_id=A\naws_secret_access_key=B\n");
    ck_assert_int_eq(awsc_detect(&c, &s, &err), WK_OK);
    ck_assert_int_eq(s, AWSC_PROFILE);
    snprintf(c.access_key, sizeof(c.access_key), "AKENV");
    ck_assert_int_eq(awsc_detect(&c, &s, &err), WK_OK);
    ck_assert_int_eq(s, AWSC_PROFILE); /* a key without its secret: not env */
    snprintf(c.secret_key, sizeof(c.secret_key), "SKENV");
    ck_assert_int_eq(awsc_detect(&c, &s, &err), WK_OK);
    ck_assert_int_eq(s, AWSC_ENV);
    /* a pin skips the others */
    c.pin = AWSC_CONTAINER;
    ck_assert_int_eq(awsc_detect(&c, &s, &err), WK_OK);
    ck_assert_int_eq(s, AWSC_CONTAINER);
    /* a named profile that does not exist is an error, not a fall-through */
    c.pin = AWSC_NONE;
    c.access_key[0] = '\0';
    snprintf(c.profile, sizeof(c.profile), "missing");
    c.profile_set = true;
    wk_err_clear(&err);
    ck_assert_int_eq(awsc_detect(&c, &s, &err), WK_E_INVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "'missing'"));
    unlink(c.credentials_file);
    rmdir(dir);
}
END_TEST

START_TEST(test_creds_pin_from_env)
{
    struct awsc_config c;
    struct wk_err err;

    wk_err_clear(&err);
    setenv("SILA_AWS_CREDENTIALS", "web-identity", 1);
    ck_assert_int_eq(awsc_config_from_env(&c, &err), WK_OK);
    ck_assert_int_eq(c.pin, AWSC_WEB_IDENTITY);
    setenv("SILA_AWS_CREDENTIALS", "auto", 1);
    ck_assert_int_eq(awsc_config_from_env(&c, &err), WK_OK);
    ck_assert_int_eq(c.pin, AWSC_NONE);
    setenv("SILA_AWS_CREDENTIALS", "instance", 1);
    ck_assert_int_eq(awsc_config_from_env(&c, &err), WK_E_INVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "'instance'"));
    unsetenv("SILA_AWS_CREDENTIALS");
}
END_TEST

START_TEST(test_creds_parse_sts)
{
    static const char ok[] =
        "<AssumeRoleWithWebIdentityResponse "
        "xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
        "<AssumeRoleWithWebIdentityResult><Credentials>"
        "<AccessKeyId>ASIAX</AccessKeyId><SecretAccessKey>SK</SecretAccessKey>"
        "<SessionToken>TOK</SessionToken>"
        "<Expiration>2026-12-07T10:00:00.000Z</Expiration>"
        "</Credentials></AssumeRoleWithWebIdentityResult>"
        "</AssumeRoleWithWebIdentityResponse>";
    static const char bad[] =
        "<ErrorResponse><Error><Type>Sender</Type>"
        "<Code>InvalidIdentityToken</Code><Message>expired jwt</Message>"
        "</Error></ErrorResponse>";
    struct awsc_creds cr;
    struct wk_err err;

    wk_err_clear(&err);
    ck_assert_int_eq(awsc_parse_sts(ok, strlen(ok), &cr, &err), WK_OK);
    ck_assert_str_eq(cr.access_key, "ASIAX");
    ck_assert_str_eq(cr.secret_key, "SK");
    ck_assert_str_eq(cr.session_token, "TOK");
    ck_assert(cr.expires_ms == 1796637600000LL);
    ck_assert_int_eq(awsc_parse_sts(bad, strlen(bad), &cr, &err), WK_E_HTTP);
    ck_assert_ptr_nonnull(strstr(err.msg, "InvalidIdentityToken"));
}
END_TEST

START_TEST(test_creds_parse_json)
{
    static const char ok[] = "{\"Code\":\"Success\",\"AccessKeyId\":\"ASIAJ\","
                             "\"SecretAccessKey\":\"SKJ\",\"Token\":\"TJ\","
                             "\"Expiration\":\"2026-12-07T10:00:00Z\"}";
    static const char fail[] = "{\"Code\":\"Failed\"}";
    static const char nokey[] = "{\"Token\":\"x\"}";
    struct awsc_creds cr;
    struct wk_err err;

    wk_err_clear(&err);
    ck_assert_int_eq(awsc_parse_json(ok, strlen(ok), &cr, &err), WK_OK);
    ck_assert_str_eq(cr.access_key, "ASIAJ");
    ck_assert_str_eq(cr.session_token, "TJ");
    ck_assert(cr.expires_ms == 1796637600000LL);
    ck_assert_int_eq(awsc_parse_json(fail, strlen(fail), &cr, &err), WK_E_HTTP);
    wk_err_clear(&err);
    ck_assert_int_eq(awsc_parse_json(nokey, strlen(nokey), &cr, &err),
                     WK_E_CORRUPT);
    wk_err_clear(&err);
    ck_assert_int_eq(awsc_parse_json("[1]", 3, &cr, &err), WK_E_CORRUPT);
}
END_TEST

START_TEST(test_creds_refresh_times)
{
    /* an hour: 5 minutes ahead; a minute: at half its lifetime */
    ck_assert(awsc_refresh_at_ms(0, 3600000) == 3300000);
    ck_assert(awsc_refresh_at_ms(0, 60000) == 30000);
    ck_assert(awsc_refresh_at_ms(0, 0) == 0);
    ck_assert(awsc_unusable_at_ms(0, 3600000) == 3590000);
    ck_assert(awsc_unusable_at_ms(0, 20000) == 18000);
}
END_TEST

static int64_t fake_now;
static int fetches;
static bool fail_next;

static int64_t fake_clock(void)
{
    return fake_now;
}

static enum wk_code fake_fetch(void *ud, struct awsc_creds *out,
                               struct wk_err *err)
{
    (void)ud;
    fetches++;
    if (fail_next)
        return wk_err_set(err, WK_E_NET, "endpoint down");
    snprintf(out->access_key, sizeof(out->access_key), "AK%d", fetches);
    snprintf(out->secret_key, sizeof(out->secret_key), "SK%d", fetches);
    out->expires_ms = fake_now + 100000;
    return WK_OK;
}

START_TEST(test_creds_provider_refresh_keeps_old)
{
    struct awsc_provider *p = NULL;
    struct awsc_creds snap;
    struct wk_err err;

    memset(&snap, 0, sizeof(snap));
    fake_now = 1000000;
    fetches = 0;
    fail_next = false;
    wk_err_clear(&err);
    ck_assert_int_eq(
        awsc_provider_new_fn(fake_fetch, NULL, fake_clock, &p, &err), WK_OK);
    ck_assert_int_eq(awsc_provider_get(p, &snap, &err), WK_OK);
    ck_assert_str_eq(snap.access_key, "AK1");
    /* not due yet: no fetch */
    fake_now += 40000;
    ck_assert_int_eq(awsc_provider_get(p, &snap, &err), WK_OK);
    ck_assert_int_eq(fetches, 1);
    /* due (half of 100 s), endpoint down: the old ones still serve */
    fake_now += 20000;
    fail_next = true;
    ck_assert_int_eq(awsc_provider_get(p, &snap, &err), WK_OK);
    ck_assert_int_eq(fetches, 2);
    ck_assert_str_eq(snap.access_key, "AK1");
    /* back up: the next try (after its pause) refreshes */
    fail_next = false;
    fake_now += 30000;
    ck_assert_int_eq(awsc_provider_get(p, &snap, &err), WK_OK);
    ck_assert_str_eq(snap.access_key, "AK3");
    /* down again until past the expiry: then it fails */
    fail_next = true;
    fake_now += 101000;
    wk_err_clear(&err);
    ck_assert_int_eq(awsc_provider_get(p, &snap, &err), WK_E_NET);
    ck_assert_ptr_nonnull(strstr(err.msg, "expired"));
    ck_assert_ptr_null(strstr(err.msg, "SK"));
    awsc_provider_free(p);
}
END_TEST

/* An ExpiredToken answer for the current credentials makes the next get
 * fetch new ones at once; one for older credentials changes nothing. */
START_TEST(test_creds_provider_expired_refetches)
{
    struct awsc_provider *p = NULL;
    struct awsc_creds snap;
    struct wk_err err;
    uint64_t old;

    memset(&snap, 0, sizeof(snap));
    fake_now = 1000000;
    fetches = 0;
    fail_next = false;
    wk_err_clear(&err);
    ck_assert_int_eq(
        awsc_provider_new_fn(fake_fetch, NULL, fake_clock, &p, &err), WK_OK);
    ck_assert_int_eq(awsc_provider_get(p, &snap, &err), WK_OK);
    ck_assert_str_eq(snap.access_key, "AK1");
    old = snap.gen;
    fake_now += 1000; /* far from the refresh point */
    awsc_provider_expired(p, old);
    ck_assert_int_eq(awsc_provider_get(p, &snap, &err), WK_OK);
    ck_assert_int_eq(fetches, 2);
    ck_assert_str_eq(snap.access_key, "AK2");
    /* a late answer about the old ones: no fetch */
    awsc_provider_expired(p, old);
    ck_assert_int_eq(awsc_provider_get(p, &snap, &err), WK_OK);
    ck_assert_int_eq(fetches, 2);
    ck_assert_str_eq(snap.access_key, "AK2");
    awsc_provider_free(p);
}
END_TEST

/* A migrate source's own keys (SILA_SOURCE_AWS_*) stay static keys even
 * when the store's credentials come from a pinned chain source. */
START_TEST(test_creds_source_keys_stay_static)
{
    struct store_opts o;
    struct s3_client *cl = NULL;
    struct wk_err err;

    setenv("SILA_AWS_CREDENTIALS", "container", 1);
    setenv("SILA_SOURCE_AWS_ACCESS_KEY_ID", "AKSRC", 1);
    setenv("SILA_SOURCE_AWS_SECRET_ACCESS_KEY", "SKSRC", 1);
    setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9", 1);
    wk_err_clear(&err);
    ck_assert_int_eq(store_opts_from_env(&o, &err), WK_OK);
    ck_assert_str_eq(o.aws_credentials, "container");
    store_opts_source_env(&o);
    ck_assert_str_eq(o.aws_credentials, "env");
    ck_assert_str_eq(o.access_key, "AKSRC");
    /* no container endpoint is configured: only static keys can work */
    ck_assert_msg(s3_client_new(&o, "bucket", &cl, &err) == WK_OK, "%s",
                  err.msg);
    s3_client_free(cl);
    /* the store itself, pinned to a source that is not configured, fails
     * at open with a clear message */
    ck_assert_int_eq(store_opts_from_env(&o, &err), WK_OK);
    unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    unsetenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    cl = NULL;
    ck_assert_int_eq(s3_client_new(&o, "bucket", &cl, &err), WK_E_INVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "SILA_AWS_CREDENTIALS=container"));
    unsetenv("SILA_AWS_CREDENTIALS");
    unsetenv("SILA_SOURCE_AWS_ACCESS_KEY_ID");
    unsetenv("SILA_SOURCE_AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_ENDPOINT_URL_S3");
}
END_TEST

Suite *creds_suite(void)
{
    Suite *s = suite_create("creds");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_creds_ini_profiles);
    tcase_add_test(tc, test_creds_chain_order);
    tcase_add_test(tc, test_creds_pin_from_env);
    tcase_add_test(tc, test_creds_parse_sts);
    tcase_add_test(tc, test_creds_parse_json);
    tcase_add_test(tc, test_creds_refresh_times);
    tcase_add_test(tc, test_creds_provider_refresh_keeps_old);
    tcase_add_test(tc, test_creds_provider_expired_refetches);
    tcase_add_test(tc, test_creds_source_keys_stay_static);
    suite_add_tcase(s, tc);
    return s;
}
