#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/job.h"
#include "tests/unit/suites.h"
#include "worker/cfg.h"

static enum wk_code parse(const char *json, struct job *j, struct wk_err *e)
{
    wk_err_clear(e);
    return job_parse(json, strlen(json), j, e);
}

/* The shared budget: the defaults' buffers shrink to the documented
 * fractions, never below their floors; small settings stay as they are. */
START_TEST(test_job_config_shared)
{
    struct job_config c;
    const uint64_t mib = 1024u * 1024u;

    job_config_defaults(&c);
    job_config_shared(&c);
    ck_assert_uint_eq(c.window_bytes, 4 * mib);
    ck_assert_uint_eq(c.chunk_bytes, 4 * mib);
    ck_assert_uint_eq(c.read_bytes, 512 * 1024);
    ck_assert_uint_eq(c.parts_in_flight, 1);
    ck_assert_uint_eq(c.reads, 4);
    ck_assert_uint_eq(c.part_bytes, 5 * mib);
    ck_assert_uint_eq(c.window_objects, 64);
    /* restore buffers: 4 x 512 KiB + 2 x max(2, 4) MiB + 1 x 5 MiB */
    ck_assert_uint_eq(c.reads * c.read_bytes +
                          2 * (c.window_bytes / 2 > c.chunk_bytes
                                   ? c.window_bytes / 2
                                   : c.chunk_bytes) +
                          c.parts_in_flight * c.part_bytes,
                      15 * mib);

    /* floors, and nothing grows */
    c.window_bytes = 2 * mib;
    c.chunk_bytes = 512 * 1024;
    c.read_bytes = 128 * 1024;
    c.parts_in_flight = 3;
    job_config_shared(&c);
    ck_assert_uint_eq(c.window_bytes, 1 * mib);
    ck_assert_uint_eq(c.chunk_bytes, 512 * 1024);
    ck_assert_uint_eq(c.read_bytes, 128 * 1024);
    ck_assert_uint_eq(c.parts_in_flight, 1);
    c.window_bytes = 64 * mib;
    c.chunk_bytes = 64 * mib;
    c.parts_in_flight = 16;
    job_config_shared(&c);
    ck_assert_uint_eq(c.window_bytes, 16 * mib);
    ck_assert_uint_eq(c.chunk_bytes, 4 * mib);
    ck_assert_uint_eq(c.parts_in_flight, 4);
}
END_TEST

START_TEST(test_job_parse_archive)
{
    struct job j;
    struct wk_err e;
    ck_assert_int_eq(parse("{\"id\":\"j-1\",\"type\":\"archive\","
                           "\"spaceId\":\"0123456789abcdef0123456789abcdef\"}",
                           &j, &e),
                     WK_OK);
    ck_assert_str_eq(j.id, "j-1");
    ck_assert_int_eq(j.type, JOB_ARCHIVE);
    ck_assert_str_eq(j.space_id, "0123456789abcdef0123456789abcdef");
    /* id is optional in the JSON (the queue entry carries it) */
    ck_assert_int_eq(
        parse("{\"type\":\"archive\",\"spaceId\":\"s.1_x-2\"}", &j, &e), WK_OK);
    ck_assert_str_eq(j.id, "");
}
END_TEST

START_TEST(test_job_parse_malformed)
{
    struct job j;
    struct wk_err e;
    ck_assert_int_eq(parse("{\"type\":\"archive\",", &j, &e), WK_E_INVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "not valid JSON"));
    ck_assert_int_eq(parse("[1,2]", &j, &e), WK_E_INVAL);
    ck_assert_str_eq(e.msg, "job spec must be a JSON object");
    ck_assert_int_eq(parse("{\"spaceId\":\"abc\"}", &j, &e), WK_E_INVAL);
    ck_assert_str_eq(e.msg, "job field 'type' is missing");
    ck_assert_int_eq(parse("{\"type\":7,\"spaceId\":\"abc\"}", &j, &e),
                     WK_E_INVAL);
    ck_assert_str_eq(e.msg, "job field 'type' must be a string");
    ck_assert_int_eq(
        parse("{\"type\":\"explode\",\"spaceId\":\"abc\"}", &j, &e),
        WK_E_INVAL);
    ck_assert_str_eq(e.msg, "job field 'type': unknown type 'explode'");
    ck_assert_int_eq(parse("{\"type\":\"archive\",\"spaceId\":\"a\","
                           "\"spaceId\":\"b\"}",
                           &j, &e),
                     WK_E_INVAL);
}
END_TEST

START_TEST(test_job_parse_bad_space_ids)
{
    static const char *const bad[] = {
        "\"\"",
        "\".\"",
        "\"..\"",
        "\"a/b\"",
        "\"../etc\"",
        "\"a b\"",
        "\"a\\u0000b\"",
        "\"caf\\u00e9\"",
        "\"a\\\\b\"",
        "null",
        "12",
    };
    struct job j;
    struct wk_err e;
    char json[512];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(json, sizeof(json), "{\"type\":\"archive\",\"spaceId\":%s}",
                 bad[i]);
        ck_assert_msg(parse(json, &j, &e) == WK_E_INVAL, "accepted %s", bad[i]);
        ck_assert_msg(strstr(e.msg, "spaceId") != NULL, "message: %s", e.msg);
    }
    char longid[200];
    memset(longid, 'a', 129);
    longid[129] = '\0';
    snprintf(json, sizeof(json), "{\"type\":\"archive\",\"spaceId\":\"%s\"}",
             longid);
    ck_assert_int_eq(parse(json, &j, &e), WK_E_INVAL);
    longid[128] = '\0';
    snprintf(json, sizeof(json), "{\"type\":\"archive\",\"spaceId\":\"%s\"}",
             longid);
    ck_assert_int_eq(parse(json, &j, &e), WK_OK);
}
END_TEST

START_TEST(test_job_parse_oversized)
{
    struct job j;
    struct wk_err e;
    size_t n = JOB_JSON_MAX + 10;
    char *big = malloc(n + 1);
    memset(big, ' ', n);
    big[n] = '\0';
    wk_err_clear(&e);
    ck_assert_int_eq(job_parse(big, n, &j, &e), WK_E_INVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "over the limit"));
    free(big);
}
END_TEST

START_TEST(test_job_part_bytes)
{
    const uint64_t mib = 1024 * 1024;
    ck_assert(job_part_bytes(100 * mib, 16 * mib) == 16 * mib);
    /* never below the S3 minimum */
    ck_assert(job_part_bytes(100 * mib, 1 * mib) == 5 * mib);
    /* 1 TiB at 16 MiB would need 65,536 parts: grown, whole MiB */
    uint64_t p = job_part_bytes(1024 * 1024 * mib, 16 * mib);
    ck_assert(p % mib == 0);
    ck_assert((1024 * 1024 * mib + p - 1) / p <= 10000);
    ck_assert(p >= 16 * mib);
    /* exactly at the limit stays */
    ck_assert(job_part_bytes(10000 * 16 * mib, 16 * mib) == 16 * mib);
    ck_assert(job_part_bytes(10000 * 16 * mib + 1, 16 * mib) == 17 * mib);
}
END_TEST

START_TEST(test_job_redis_url)
{
    struct cfg_redis r;
    struct wk_err e;
    wk_err_clear(&e);
    ck_assert_int_eq(cfg_parse_redis_url("redis://127.0.0.1:6390/2", &r, &e),
                     WK_OK);
    ck_assert_str_eq(r.host, "127.0.0.1");
    ck_assert_int_eq(r.port, 6390);
    ck_assert_int_eq(r.db, 2);
    ck_assert_str_eq(r.pass, "");
    ck_assert_int_eq(
        cfg_parse_redis_url("redis://bob:p%40ss@redis.local", &r, &e), WK_OK);
    ck_assert_str_eq(r.user, "bob");
    ck_assert_str_eq(r.pass, "p@ss");
    ck_assert_int_eq(r.port, 6379);
    ck_assert_int_eq(cfg_parse_redis_url("redis://:only@h:1/0", &r, &e), WK_OK);
    ck_assert_str_eq(r.user, "");
    ck_assert_str_eq(r.pass, "only");
    ck_assert_int_eq(cfg_parse_redis_url("http://h", &r, &e), WK_E_INVAL);
    wk_err_clear(&e);
    ck_assert_int_eq(cfg_parse_redis_url("redis://h:99999", &r, &e),
                     WK_E_INVAL);
    ck_assert_str_eq(e.msg, "REDIS_URL: bad port");
    /* the password never shows up in errors */
    wk_err_clear(&e);
    ck_assert_int_eq(cfg_parse_redis_url("redis://u:s3cret%zz@h", &r, &e),
                     WK_E_INVAL);
    ck_assert_ptr_null(strstr(e.msg, "s3cret"));
}
END_TEST

Suite *job_suite(void)
{
    Suite *s = suite_create("job");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_job_config_shared);
    tcase_add_test(tc, test_job_parse_archive);
    tcase_add_test(tc, test_job_parse_malformed);
    tcase_add_test(tc, test_job_parse_bad_space_ids);
    tcase_add_test(tc, test_job_parse_oversized);
    tcase_add_test(tc, test_job_part_bytes);
    tcase_add_test(tc, test_job_redis_url);
    suite_add_tcase(s, tc);
    return s;
}
