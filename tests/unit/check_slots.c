/* slots: what the job runners read: SILA_URGENT_SLOTS (default, range),
 * and the request time of a job (createdAt, RFC 3339 with milliseconds). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "common/wk_time.h"
#include "tests/unit/suites.h"
#include "worker/cfg.h"

START_TEST(test_slots_urgent_slots_setting)
{
    struct cfg c;
    struct wk_err e;

    unsetenv("SILA_URGENT_SLOTS");
    wk_err_clear(&e);
    ck_assert_int_eq(cfg_from_env(&c, &e), WK_OK);
    ck_assert_uint_eq(c.urgent_slots, 1);
    setenv("SILA_URGENT_SLOTS", "0", 1);
    ck_assert_int_eq(cfg_from_env(&c, &e), WK_OK);
    ck_assert_uint_eq(c.urgent_slots, 0);
    setenv("SILA_URGENT_SLOTS", "8", 1);
    ck_assert_int_eq(cfg_from_env(&c, &e), WK_OK);
    ck_assert_uint_eq(c.urgent_slots, 8);
    setenv("SILA_URGENT_SLOTS", "9", 1);
    wk_err_clear(&e);
    ck_assert_int_eq(cfg_from_env(&c, &e), WK_E_INVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "SILA_URGENT_SLOTS"));
    setenv("SILA_URGENT_SLOTS", "two", 1);
    ck_assert_int_eq(cfg_from_env(&c, &e), WK_E_INVAL);
    unsetenv("SILA_URGENT_SLOTS");
}
END_TEST

START_TEST(test_slots_requested_ms_parse)
{
    struct wk_err e;
    int64_t ms = -1;

    wk_err_clear(&e);
    ck_assert_int_eq(
        wk_time_parse_rfc3339_ms("2024-01-15T10:20:30.123Z", &ms, &e), WK_OK);
    ck_assert_int_eq(ms, 1705314030123LL);
    ck_assert_int_eq(
        wk_time_parse_rfc3339_ms("2024-01-15T10:20:30.5Z", &ms, &e), WK_OK);
    ck_assert_int_eq(ms, 1705314030500LL);
    ck_assert_int_eq(
        wk_time_parse_rfc3339_ms("2024-01-15T10:20:30.123456Z", &ms, &e),
        WK_OK);
    ck_assert_int_eq(ms, 1705314030123LL);
    ck_assert_int_eq(wk_time_parse_rfc3339_ms("2024-01-15T10:20:30Z", &ms, &e),
                     WK_OK);
    ck_assert_int_eq(ms, 1705314030000LL);
    ck_assert_int_eq(wk_time_parse_rfc3339_ms("2024-01-15 10:20:30Z", &ms, &e),
                     WK_E_INVAL);
    ck_assert_int_eq(wk_time_parse_rfc3339_ms("", &ms, &e), WK_E_INVAL);
}
END_TEST

Suite *slots_suite(void)
{
    Suite *s = suite_create("slots");
    TCase *tc = tcase_create("slots");
    tcase_add_test(tc, test_slots_urgent_slots_setting);
    tcase_add_test(tc, test_slots_requested_ms_parse);
    suite_add_tcase(s, tc);
    return s;
}
