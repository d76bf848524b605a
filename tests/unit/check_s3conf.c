/* S3 client settings that guard the data: where plain HTTP is allowed, and
 * what SILA_SSE / SILA_CA_FILE accept. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/s3_http.h"
#include "storage/store.h"
#include "tests/unit/suites.h"

static enum wk_code client_for(const char *endpoint, bool insecure,
                               struct wk_err *err)
{
    struct store_opts o;
    struct s3_client *cl = NULL;
    enum wk_code rc;

    memset(&o, 0, sizeof(o));
    snprintf(o.endpoint, sizeof(o.endpoint), "%s", endpoint);
    snprintf(o.region, sizeof(o.region), "us-east-1");
    snprintf(o.access_key, sizeof(o.access_key), "AKIDEXAMPLE");
    snprintf(o.secret_key, sizeof(o.secret_key), "secret");
    o.allow_insecure = insecure;
    wk_err_clear(err);
    rc = s3_client_new(&o, "bucket", &cl, err);
    s3_client_free(cl);
    return rc;
}

START_TEST(test_s3conf_plain_http_only_on_loopback)
{
    static const char *const ok[] = {
        "http://127.0.0.1:9000",  "http://127.1.2.3",
        "http://localhost:9000",  "http://[::1]:9000",
        "https://s3.example.com", "https://10.0.0.5:9000/prefix",
    };
    static const char *const refused[] = {
        "http://10.0.0.5:9000",      "http://minio:9000",
        "http://127.0.0.1.evil.com", "http://localhost.evil.com:80",
        "http://[::2]:9000",
    };
    struct wk_err err;

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        ck_assert_msg(client_for(ok[i], false, &err) == WK_OK, "%s: %s", ok[i],
                      err.msg);
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        ck_assert_msg(client_for(refused[i], false, &err) == WK_E_INVAL, "%s",
                      refused[i]);
        ck_assert_ptr_nonnull(strstr(err.msg, "SILA_ALLOW_INSECURE=1"));
        /* ...unless the operator says so */
        ck_assert_msg(client_for(refused[i], true, &err) == WK_OK, "%s: %s",
                      refused[i], err.msg);
    }
}
END_TEST

/* A background job's client gives way while the gate (urgent jobs of the
 * process) is up, and only then; a cap above the client's own limit or 0
 * changes nothing. */
START_TEST(test_s3conf_throttle)
{
    struct store_opts o;
    struct s3_client *cl = NULL;
    struct wk_err err;
    atomic_uint gate = 0;

    memset(&o, 0, sizeof(o));
    snprintf(o.endpoint, sizeof(o.endpoint), "http://127.0.0.1:9");
    snprintf(o.access_key, sizeof(o.access_key), "AKIDEXAMPLE");
    snprintf(o.secret_key, sizeof(o.secret_key), "secret");
    o.max_in_flight = 32;
    ck_assert_int_eq(s3_client_new(&o, "bucket", &cl, &err), WK_OK);
    ck_assert_uint_eq(s3_client_slots(cl), 32);
    s3_client_throttle(cl, &gate, 4);
    ck_assert_uint_eq(s3_client_slots(cl), 32); /* gate down */
    atomic_store(&gate, 1);
    ck_assert_uint_eq(s3_client_slots(cl), 4);
    atomic_store(&gate, 2);
    ck_assert_uint_eq(s3_client_slots(cl), 4);
    atomic_store(&gate, 0);
    ck_assert_uint_eq(s3_client_slots(cl), 32); /* back to full */
    atomic_store(&gate, 1);
    s3_client_throttle(cl, &gate, 64);
    ck_assert_uint_eq(s3_client_slots(cl), 32);
    s3_client_throttle(cl, &gate, 0);
    ck_assert_uint_eq(s3_client_slots(cl), 32);
    s3_client_free(cl);
}
END_TEST

START_TEST(test_s3conf_env)
{
    struct store_opts o;
    struct wk_err err;

    wk_err_clear(&err);
    setenv("SILA_SSE", "AES256", 1);
    wk_err_clear(&err);
    ck_assert_int_eq(store_opts_from_env(&o, &err), WK_OK);
    ck_assert_str_eq(o.sse, "AES256");
    ck_assert(!o.allow_insecure);

    setenv("SILA_SSE", "aws:kms", 1);
    setenv("SILA_SSE_KMS_KEY_ID", "arn:aws:kms:eu-west-1:1:key/abc", 1);
    setenv("SILA_ALLOW_INSECURE", "1", 1);
    wk_err_clear(&err);
    ck_assert_int_eq(store_opts_from_env(&o, &err), WK_OK);
    ck_assert_str_eq(o.sse_kms_key_id, "arn:aws:kms:eu-west-1:1:key/abc");
    ck_assert(o.allow_insecure);

    setenv("SILA_SSE", "AES256", 1); /* a key id without aws:kms */
    wk_err_clear(&err);
    ck_assert_int_eq(store_opts_from_env(&o, &err), WK_E_INVAL);
    ck_assert_str_eq(err.msg, "SILA_SSE_KMS_KEY_ID needs SILA_SSE=aws:kms");
    unsetenv("SILA_SSE_KMS_KEY_ID");

    setenv("SILA_SSE", "rot13", 1);
    wk_err_clear(&err);
    ck_assert_int_eq(store_opts_from_env(&o, &err), WK_E_INVAL);
    ck_assert_str_eq(err.msg,
                     "SILA_SSE: expected AES256 or aws:kms, not 'rot13'");
    unsetenv("SILA_SSE");

    setenv("SILA_CA_FILE", "/nonexistent/ca.pem", 1);
    wk_err_clear(&err);
    ck_assert_int_eq(store_opts_from_env(&o, &err), WK_E_INVAL);
    ck_assert_str_eq(err.msg,
                     "SILA_CA_FILE '/nonexistent/ca.pem': not readable");
    unsetenv("SILA_CA_FILE");
    unsetenv("SILA_ALLOW_INSECURE");
    wk_err_clear(&err);
    ck_assert_int_eq(store_opts_from_env(&o, &err), WK_OK);
    ck_assert_str_eq(o.sse, "");
}
END_TEST

Suite *s3conf_suite(void)
{
    Suite *s = suite_create("s3conf");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_s3conf_plain_http_only_on_loopback);
    tcase_add_test(tc, test_s3conf_env);
    tcase_add_test(tc, test_s3conf_throttle);
    suite_add_tcase(s, tc);
    return s;
}
