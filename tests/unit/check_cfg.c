/* cfg: REDIS_URL parsing (userinfo up to the last '@', percent-decoding,
 * strict hosts) and that no error message quotes a password. */
#include <check.h>
#include <string.h>

#include "tests/unit/suites.h"
#include "worker/cfg.h"

static struct cfg_redis r;
static struct wk_err e;

static enum wk_code parse(const char *url)
{
    wk_err_clear(&e);
    return cfg_parse_redis_url(url, &r, &e);
}

START_TEST(test_cfg_redis_url_password_with_at_and_colon)
{
    /* split at the last '@' (redis-py, urllib), user:pass at the first ':' */
    ck_assert_int_eq(parse("redis://:p%40ss@w:rd@127.0.0.1:6390/2"), WK_OK);
    ck_assert_str_eq(r.user, "");
    ck_assert_str_eq(r.pass, "p@ss@w:rd");
    ck_assert_str_eq(r.host, "127.0.0.1");
    ck_assert_int_eq(r.port, 6390);
    ck_assert_int_eq(r.db, 2);

    ck_assert_int_eq(parse("redis://alice:a@b@redis.local"), WK_OK);
    ck_assert_str_eq(r.user, "alice");
    ck_assert_str_eq(r.pass, "a@b");
    ck_assert_str_eq(r.host, "redis.local");
    ck_assert_int_eq(r.port, 6379);
    ck_assert_int_eq(r.db, 0);

    /* a ':' in the password stays in the password */
    ck_assert_int_eq(parse("redis://bob:x:y:z@h:7000"), WK_OK);
    ck_assert_str_eq(r.user, "bob");
    ck_assert_str_eq(r.pass, "x:y:z");
    ck_assert_str_eq(r.host, "h");
    ck_assert_int_eq(r.port, 7000);

    /* and so does a '/' (nothing after the host is a path but the db) */
    ck_assert_int_eq(parse("redis://:pa/ss@h/3"), WK_OK);
    ck_assert_str_eq(r.pass, "pa/ss");
    ck_assert_str_eq(r.host, "h");
    ck_assert_int_eq(r.db, 3);

    /* everything percent-encoded */
    ck_assert_int_eq(parse("redis://u%3Ax:%40%3A%2F%25@h"), WK_OK);
    ck_assert_str_eq(r.user, "u:x");
    ck_assert_str_eq(r.pass, "@:/%");

    /* "redis://secret@host": a password alone */
    ck_assert_int_eq(parse("redis://s%40cret@h:1"), WK_OK);
    ck_assert_str_eq(r.user, "");
    ck_assert_str_eq(r.pass, "s@cret");
}
END_TEST

START_TEST(test_cfg_redis_url_hosts)
{
    ck_assert_int_eq(parse("redis://[::1]:6381/1"), WK_OK);
    ck_assert_str_eq(r.host, "::1");
    ck_assert_int_eq(r.port, 6381);
    ck_assert_int_eq(r.db, 1);
    ck_assert_int_eq(parse("redis://:pw@[fe80::1]"), WK_OK);
    ck_assert_str_eq(r.host, "fe80::1");
    ck_assert_int_eq(r.port, 6379);
    ck_assert_int_eq(parse("redis://redis-0.redis.svc_x:1/"), WK_OK);
    ck_assert_str_eq(r.host, "redis-0.redis.svc_x");

    ck_assert_int_eq(parse("redis://"), WK_E_INVAL);
    ck_assert_str_eq(e.msg, "REDIS_URL: bad host");
    ck_assert_int_eq(parse("redis://:pw@"), WK_E_INVAL);
    ck_assert_str_eq(e.msg, "REDIS_URL: bad host");
    ck_assert_int_eq(parse("redis://[::1"), WK_E_INVAL);
    ck_assert_str_eq(e.msg, "REDIS_URL: bad host");
    ck_assert_int_eq(parse("redis://[::1]x"), WK_E_INVAL);
    ck_assert_int_eq(parse("redis://h st:1"), WK_E_INVAL);
    ck_assert_str_eq(e.msg, "REDIS_URL: bad host");
    ck_assert_int_eq(parse("redis://h:"), WK_E_INVAL);
    ck_assert_str_eq(e.msg, "REDIS_URL: bad port");
    ck_assert_int_eq(parse("redis://h:0"), WK_E_INVAL);
    ck_assert_int_eq(parse("redis://h:65536"), WK_E_INVAL);
    ck_assert_str_eq(e.msg, "REDIS_URL: bad port");
    ck_assert_int_eq(parse("redis://h:1/x"), WK_E_INVAL);
    ck_assert_str_eq(e.msg, "REDIS_URL: bad database number");
}
END_TEST

/* A mistyped URL never turns part of a password into a host (which the
 * start log and connection errors show), and no error quotes it. */
START_TEST(test_cfg_redis_url_errors_never_show_the_password)
{
    static const char *const bad[] = {
        "redis://:Sekr3t%zz@h",  /* bad escape */
        "redis://:Sekr3t%00x@h", /* NUL */
        "redis://:Sekr3t:6379",  /* no '@', no host */
        "redis://user:Sekr3t/0", /* no '@' */
        "redis://:Se kr3t@h",    /* a space is fine in a password */
        "redis://:x@Sekr3t!:1",  /* what follows the last '@' */
        "http://:Sekr3t@h",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        enum wk_code rc = parse(bad[i]);
        if (i == 4) { /* the one that is valid */
            ck_assert_int_eq(rc, WK_OK);
            ck_assert_str_eq(r.pass, "Se kr3t");
            continue;
        }
        ck_assert_msg(rc == WK_E_INVAL, "'%s' was accepted", bad[i]);
        ck_assert_msg(!strstr(e.msg, "Sekr3t") && !strstr(e.msg, "kr3"),
                      "error '%s' shows the password", e.msg);
        ck_assert_ptr_null(strstr(r.host, "kr3"));
        ck_assert_str_eq(r.pass, "");
    }
    /* "redis://:Sekr3t@h@st:1" splits at the last '@': host "st" */
    ck_assert_int_eq(parse("redis://:Sekr3t@h@st:1"), WK_OK);
    ck_assert_str_eq(r.pass, "Sekr3t@h");
    ck_assert_str_eq(r.host, "st");
}
END_TEST

START_TEST(test_cfg_redis_url_tls)
{
    ck_assert_int_eq(parse("rediss://u:p@redis.example:6380/3"), WK_OK);
    ck_assert(r.tls);
    ck_assert_str_eq(r.host, "redis.example");
    ck_assert_int_eq(r.port, 6380);
    ck_assert_int_eq(r.db, 3);
    ck_assert_str_eq(r.pass, "p");
    ck_assert_int_eq(parse("redis://h"), WK_OK);
    ck_assert(!r.tls);
    ck_assert_int_eq(parse("redisss://h"), WK_E_INVAL);
    ck_assert_int_eq(parse("tls://h"), WK_E_INVAL);
}
END_TEST

Suite *cfg_suite(void)
{
    Suite *s = suite_create("cfg");
    TCase *tc = tcase_create("redis_url");
    tcase_add_test(tc, test_cfg_redis_url_password_with_at_and_colon);
    tcase_add_test(tc, test_cfg_redis_url_hosts);
    tcase_add_test(tc, test_cfg_redis_url_errors_never_show_the_password);
    tcase_add_test(tc, test_cfg_redis_url_tls);
    suite_add_tcase(s, tc);
    return s;
}
