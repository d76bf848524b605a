/* s3_features: SILA_S3_FEATURES parsing and formatting (issue 17). */
#include <check.h>
#include <string.h>

#include "storage/s3_features.h"
#include "tests/unit/suites.h"

static struct wk_err e;
static bool pinned;
static unsigned fl;

static enum wk_code parse(const char *s)
{
    wk_err_clear(&e);
    return s3f_parse(s, &pinned, &fl, &e);
}

START_TEST(test_s3f_auto_and_none)
{
    ck_assert_int_eq(parse(NULL), WK_OK);
    ck_assert(!pinned);
    ck_assert_int_eq(parse(""), WK_OK);
    ck_assert(!pinned);
    ck_assert_int_eq(parse("auto"), WK_OK);
    ck_assert(!pinned);
    ck_assert_int_eq(parse("none"), WK_OK);
    ck_assert(pinned);
    ck_assert_uint_eq(fl, 0);
}
END_TEST

START_TEST(test_s3f_lists)
{
    char buf[128];

    ck_assert_int_eq(parse("cond-put,cond-delete,versioning,part-copy,"
                           "list-parts,delete-md5"),
                     WK_OK);
    ck_assert(pinned);
    ck_assert_uint_eq(fl, STORE_F_ALL);
    ck_assert_int_eq(parse(" versioning , delete-md5"), WK_OK);
    ck_assert_uint_eq(fl, STORE_F_VERSIONING | STORE_F_DELETE_MD5);
    s3f_format(fl, buf, sizeof(buf));
    ck_assert_str_eq(buf, "versioning,delete-md5");
    s3f_format(0, buf, sizeof(buf));
    ck_assert_str_eq(buf, "none");
    s3f_format(STORE_F_ALL, buf, sizeof(buf));
    ck_assert_int_eq(parse(buf), WK_OK);
    ck_assert_uint_eq(fl, STORE_F_ALL);
    ck_assert_str_eq(s3f_name(STORE_F_COND_PUT), "cond-put");
    ck_assert_ptr_null(s3f_name(1u << 20));
}
END_TEST

START_TEST(test_s3f_errors)
{
    ck_assert_int_eq(parse("cond-put,bogus"), WK_E_INVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "'bogus'"));
    ck_assert(!pinned);
    ck_assert_int_eq(parse("cond-put,,versioning"), WK_E_INVAL);
    ck_assert_int_eq(parse("-cond-put"), WK_E_INVAL);
    ck_assert_int_eq(parse("cond-put,"), WK_E_INVAL);
}
END_TEST

Suite *s3features_suite(void)
{
    Suite *s = suite_create("s3features");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, test_s3f_auto_and_none);
    tcase_add_test(tc, test_s3f_lists);
    tcase_add_test(tc, test_s3f_errors);
    suite_add_tcase(s, tc);
    return s;
}
