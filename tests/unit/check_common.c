#include <stdio.h>
#include <string.h>

#include "common/wk_buf.h"
#include "common/wk_err.h"
#include "common/wk_parse.h"
#include "common/wk_path.h"
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
    /* a call the server does not have is not worth retrying (s3rver:
     * ListMultipartUploads, AbortMultipartUpload) */
    err.http_status = 501;
    snprintf(err.s3_code, sizeof(err.s3_code), "NotImplemented");
    ck_assert(!wk_err_transient(&err));
    err.s3_code[0] = '\0';
    ck_assert(!wk_err_transient(&err));
    err.http_status = 500;
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

START_TEST(test_common_path_problems)
{
    static const struct {
        const char *name;
        size_t len;          /* 0: strlen */
        const char *problem; /* NULL: fine */
    } cases[] = {
        { "space-v1/ops/ab/cd/2026/11/26/p-m.jsonl", 0, NULL },
        { "sila.md", 0, NULL },
        { "caf\xc3\xa9/na\xc3\xafve.txt", 0, NULL },
        { "", 0, "empty name" },
        { "/etc/passwd", 0, "absolute path" },
        { "a/../b", 0, "'..' component" },
        { "a/./b", 0, "'.' component" },
        { "a//b", 0, "empty component" },
        { "a/", 0, "trailing '/'" },
        { "a\\b", 0, "backslash in name" },
        { "a\x1b[31m", 0, "control character in name" },
        { "a\xc2\x85"
          "b",
          0, "control character in name" }, /* C1 NEL */
        { "a\xc3", 0, "name is not valid UTF-8" },
        { "a\xc0\xaf"
          "b",
          0, "name is not valid UTF-8" },                  /* overlong */
        { "a\xed\xa0\x80", 0, "name is not valid UTF-8" }, /* surrogate */
        { "ok\0/../x", 9, "NUL byte in name" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].name);
        const char *got = wk_path_problem(cases[i].name, len, 64);
        if (!cases[i].problem)
            ck_assert_msg(got == NULL, "case %zu: %s", i, got);
        else
            ck_assert_msg(got && strcmp(got, cases[i].problem) == 0,
                          "case %zu: got %s", i, got ? got : "(none)");
    }
    ck_assert_str_eq(wk_path_problem("abcdef", 6, 5), "name too long");
}
END_TEST

START_TEST(test_common_path_shown)
{
    char buf[16];
    wk_path_shown(buf, sizeof(buf),
                  "a\x1b"
                  "b",
                  3);
    ck_assert_str_eq(buf, "a?b");
    /* not clean UTF-8: every non-ASCII byte hidden */
    wk_path_shown(buf, sizeof(buf), "x\xff\xc3\xa9", 4);
    ck_assert_str_eq(buf, "x???");
    /* cut at a character boundary, marked */
    wk_path_shown(buf, sizeof(buf), "abcdefghijk\xc3\xa9xyz", 16);
    ck_assert_str_eq(buf, "abcdefghijk...");
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
    tcase_add_test(tc, test_common_path_problems);
    tcase_add_test(tc, test_common_path_shown);
    suite_add_tcase(s, tc);
    return s;
}
