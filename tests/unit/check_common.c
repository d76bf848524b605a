#include <stdio.h>
#include <string.h>

#include "common/wk_buf.h"
#include "common/wk_err.h"
#include "common/wk_parse.h"
#include "tests/unit/suites.h"

START_TEST(test_common_err_first_wins)
{
    struct wk_err err;
    wk_err_clear(&err);
    ck_assert_int_eq(wk_err_set(&err, WK_E_NET, "connect to '%s'", "h"),
                     WK_E_NET);
    ck_assert_int_eq(wk_err_set(&err, WK_E_IO, "later"), WK_E_IO);
    ck_assert_int_eq(err.code, WK_E_NET);
    ck_assert_str_eq(err.msg, "connect to 'h'");
    wk_err_prefix(&err, "job %d", 7);
    ck_assert_str_eq(err.msg, "job 7: connect to 'h'");
}
END_TEST

START_TEST(test_common_err_transient)
{
    struct wk_err err;
    wk_err_clear(&err);
    wk_err_set(&err, WK_E_HTTP, "x");
    err.http_status = 503;
    ck_assert(wk_err_transient(&err));
    err.http_status = 403;
    ck_assert(!wk_err_transient(&err));
    snprintf(err.s3_code, sizeof(err.s3_code), "SlowDown");
    ck_assert(wk_err_transient(&err));
    wk_err_clear(&err);
    wk_err_set(&err, WK_E_INVAL, "bad");
    ck_assert(!wk_err_transient(&err));
}
END_TEST

START_TEST(test_common_buf_limit)
{
    struct wk_buf b;
    struct wk_err err;
    wk_err_clear(&err);
    wk_buf_init(&b, 8);
    ck_assert_int_eq(wk_buf_appends(&b, "12345678", &err), WK_OK);
    ck_assert_str_eq(wk_buf_cstr(&b), "12345678");
    ck_assert_int_eq(wk_buf_appends(&b, "9", &err), WK_E_LIMIT);
    ck_assert_uint_eq(b.len, 8);
    ck_assert_ptr_nonnull(strstr(err.msg, "limit of 8 bytes"));
    wk_buf_release(&b);
}
END_TEST

START_TEST(test_common_parse_numbers)
{
    struct wk_err err;
    uint64_t v;
    wk_err_clear(&err);
    ck_assert_int_eq(wk_parse_u64("18446744073709551615", &v, &err), WK_OK);
    ck_assert(v == UINT64_MAX);
    ck_assert_int_eq(wk_parse_u64("18446744073709551616", &v, &err),
                     WK_E_INVAL);
    ck_assert_int_eq(wk_parse_u64("-1", &v, NULL), WK_E_INVAL);
    ck_assert_int_eq(wk_parse_u64("12x", &v, NULL), WK_E_INVAL);
    ck_assert_int_eq(wk_parse_size("16MiB", &v, NULL), WK_OK);
    ck_assert(v == 16u << 20);
    ck_assert_int_eq(wk_parse_size("5m", &v, NULL), WK_OK);
    ck_assert(v == 5u << 20);
    ck_assert_int_eq(wk_parse_size("5q", &v, NULL), WK_E_INVAL);
    ck_assert_int_eq(wk_parse_duration_ms("30s", &v, NULL), WK_OK);
    ck_assert(v == 30000);
    ck_assert_int_eq(wk_parse_duration_ms("7d", &v, NULL), WK_OK);
    ck_assert(v == 7ULL * 86400000);
}
END_TEST

START_TEST(test_common_parse_time)
{
    time_t t;
    char buf[32];
    ck_assert_int_eq(wk_parse_rfc3339("2009-10-12T17:50:30.000Z", &t, NULL),
                     WK_OK);
    ck_assert_int_eq((long long)t, 1255369830LL);
    wk_fmt_rfc3339(t, buf, sizeof(buf));
    ck_assert_str_eq(buf, "2009-10-12T17:50:30Z");
    wk_fmt_stamp(t, buf, sizeof(buf));
    ck_assert_str_eq(buf, "20091012T175030Z");
    ck_assert_int_eq(wk_parse_rfc3339("2009-10-12 17:50:30", &t, NULL),
                     WK_E_INVAL);
}
END_TEST

Suite *common_suite(void)
{
    Suite *s = suite_create("common");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_common_err_first_wins);
    tcase_add_test(tc, test_common_err_transient);
    tcase_add_test(tc, test_common_buf_limit);
    tcase_add_test(tc, test_common_parse_numbers);
    tcase_add_test(tc, test_common_parse_time);
    suite_add_tcase(s, tc);
    return s;
}
