/* q_topo: CRC16 and cluster slots (hash tags), sentinel list parsing,
 * MOVED / ASK parsing, the cluster check, and the sentinel and cluster
 * settings of cfg. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/suites.h"
#include "worker/cfg.h"
#include "worker/q_topo.h"

START_TEST(test_topo_crc16_and_slots)
{
    /* the reference value of the Redis Cluster spec */
    ck_assert_uint_eq(q_topo_crc16("123456789", 9), 0x31C3);
    /* values CLUSTER KEYSLOT gives on a real server */
    ck_assert_uint_eq(q_topo_slot("foo", 3), 12182);
    ck_assert_uint_eq(q_topo_slot("bar", 3), 5061);
    /* a tag: only its content counts */
    ck_assert_uint_eq(q_topo_slot("{user1000}.following", 20),
                      q_topo_slot("user1000", 8));
    ck_assert_uint_eq(q_topo_slot("{sila}:job:1", 12),
                      q_topo_slot("{sila}:stream", 13));
    /* an empty tag is no tag: the whole key is hashed */
    ck_assert_uint_eq(q_topo_slot("{}x", 3), q_topo_crc16("{}x", 3) % 16384);
    /* only the first tag counts */
    ck_assert_uint_eq(q_topo_slot("a{b}{c}", 7), q_topo_slot("b", 1));
    ck_assert(q_topo_prefix_tagged("{sila}:"));
    ck_assert(!q_topo_prefix_tagged("sila:"));
    ck_assert(!q_topo_prefix_tagged("{}sila:"));
}
END_TEST

START_TEST(test_topo_sentinel_list)
{
    char h[64];
    int p = 0;
    struct wk_err e;
    const char *l = "127.0.0.1:26379, s2.local:26380,[::1]:26381";

    wk_err_clear(&e);
    ck_assert_int_eq(q_topo_sentinel_at(l, 0, h, sizeof(h), &p, &e), WK_OK);
    ck_assert_str_eq(h, "127.0.0.1");
    ck_assert_int_eq(p, 26379);
    ck_assert_int_eq(q_topo_sentinel_at(l, 1, h, sizeof(h), &p, &e), WK_OK);
    ck_assert_str_eq(h, "s2.local");
    ck_assert_int_eq(p, 26380);
    ck_assert_int_eq(q_topo_sentinel_at(l, 2, h, sizeof(h), &p, &e), WK_OK);
    ck_assert_str_eq(h, "::1");
    ck_assert_int_eq(p, 26381);
    ck_assert_int_eq(q_topo_sentinel_at(l, 3, h, sizeof(h), &p, &e),
                     WK_E_NOTFOUND);
    ck_assert_int_eq(q_topo_sentinel_at("h", 0, h, sizeof(h), &p, &e),
                     WK_E_INVAL);
    ck_assert_int_eq(q_topo_sentinel_at("h:0", 0, h, sizeof(h), &p, &e),
                     WK_E_INVAL);
    ck_assert_int_eq(q_topo_sentinel_at("h:70000", 0, h, sizeof(h), &p, &e),
                     WK_E_INVAL);
    ck_assert_int_eq(q_topo_sentinel_at(":1", 0, h, sizeof(h), &p, &e),
                     WK_E_INVAL);
    ck_assert_int_eq(q_topo_sentinel_at("[::1]", 0, h, sizeof(h), &p, &e),
                     WK_E_INVAL);
}
END_TEST

START_TEST(test_topo_redirect)
{
    char h[64];
    int p = 0;
    unsigned slot = 0;
    bool ask = true;
    struct wk_err e;

    wk_err_clear(&e);
    ck_assert_int_eq(q_topo_redirect("MOVED 3999 127.0.0.1:6381", &ask, &slot,
                                     h, sizeof(h), &p, &e),
                     WK_OK);
    ck_assert(!ask);
    ck_assert_uint_eq(slot, 3999);
    ck_assert_str_eq(h, "127.0.0.1");
    ck_assert_int_eq(p, 6381);
    ck_assert_int_eq(
        q_topo_redirect("ASK 0 [::1]:7000", &ask, &slot, h, sizeof(h), &p, &e),
        WK_OK);
    ck_assert(ask);
    ck_assert_uint_eq(slot, 0);
    ck_assert_str_eq(h, "::1");
    ck_assert_int_eq(p, 7000);
    ck_assert_int_eq(
        q_topo_redirect("MOVED 16384 h:1", &ask, &slot, h, sizeof(h), &p, &e),
        WK_E_INVAL);
    ck_assert_int_eq(q_topo_redirect("READONLY You can't write", &ask, &slot, h,
                                     sizeof(h), &p, &e),
                     WK_E_INVAL);
}
END_TEST

START_TEST(test_topo_cfg_sentinel_env)
{
    struct cfg_redis r;
    struct wk_err e;

    memset(&r, 0, sizeof(r));
    wk_err_clear(&e);
    unsetenv("SILA_REDIS_SENTINELS");
    unsetenv("SILA_REDIS_MASTER");
    ck_assert_int_eq(cfg_redis_sentinel_env(&r, &e), WK_OK);
    ck_assert_str_eq(r.sentinels, "");
    ck_assert_str_eq(r.master, "mymaster");

    setenv("SILA_REDIS_SENTINELS", "10.0.0.1:26379,10.0.0.2:26379", 1);
    setenv("SILA_REDIS_MASTER", "sila", 1);
    setenv("SILA_REDIS_SENTINEL_PASSWORD", "s3cret", 1);
    memset(&r, 0, sizeof(r));
    ck_assert_int_eq(cfg_redis_sentinel_env(&r, &e), WK_OK);
    ck_assert_str_eq(r.master, "sila");
    ck_assert_str_eq(r.sentinel_pass, "s3cret");

    setenv("SILA_REDIS_SENTINELS", "10.0.0.1:26379,s3cret", 1);
    memset(&r, 0, sizeof(r));
    ck_assert_int_eq(cfg_redis_sentinel_env(&r, &e), WK_E_INVAL);
    ck_assert_ptr_null(strstr(e.msg, "s3cret"));
    unsetenv("SILA_REDIS_SENTINELS");
    unsetenv("SILA_REDIS_MASTER");
    unsetenv("SILA_REDIS_SENTINEL_PASSWORD");
}
END_TEST

START_TEST(test_topo_cluster_check)
{
    struct cfg_redis r;
    struct wk_err e;

    memset(&r, 0, sizeof(r));
    wk_err_clear(&e);
    /* not a cluster: any prefix */
    ck_assert_int_eq(q_topo_cluster_check(&r, "sila:", &e), WK_OK);
    r.cluster = true;
    ck_assert_int_eq(q_topo_cluster_check(&r, "{sila}:", &e), WK_OK);
    ck_assert_int_eq(q_topo_cluster_check(&r, "app:{sila}:", &e), WK_OK);
}
END_TEST

START_TEST(test_topo_cluster_check_untagged)
{
    struct cfg_redis r;
    struct wk_err e;

    memset(&r, 0, sizeof(r));
    r.cluster = true;
    wk_err_clear(&e);
    ck_assert_int_eq(q_topo_cluster_check(&r, "sila:", &e), WK_E_INVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "needs a {tag} in SILA_KEY_PREFIX"));
    ck_assert_ptr_nonnull(strstr(e.msg, "'sila:'"));
    wk_err_clear(&e);
    ck_assert_int_eq(q_topo_cluster_check(&r, "{}sila:", &e), WK_E_INVAL);
    wk_err_clear(&e);
    ck_assert_int_eq(q_topo_cluster_check(&r, "", &e), WK_E_INVAL);
}
END_TEST

START_TEST(test_topo_cluster_check_db_and_sentinels)
{
    struct cfg_redis r;
    struct wk_err e;

    memset(&r, 0, sizeof(r));
    r.cluster = true;
    r.db = 2;
    wk_err_clear(&e);
    ck_assert_int_eq(q_topo_cluster_check(&r, "{sila}:", &e), WK_E_INVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "only database 0"));
    r.db = 0;
    snprintf(r.sentinels, sizeof(r.sentinels), "127.0.0.1:26379");
    wk_err_clear(&e);
    ck_assert_int_eq(q_topo_cluster_check(&r, "{sila}:", &e), WK_E_INVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "exclude each other"));
}
END_TEST

START_TEST(test_topo_cfg_cluster_env)
{
    struct cfg c;
    struct wk_err e;

    unsetenv("REDIS_URL");
    unsetenv("SILA_REDIS_SENTINELS");
    setenv("SILA_REDIS_CLUSTER", "1", 1);
    setenv("SILA_KEY_PREFIX", "{sila}:", 1);
    wk_err_clear(&e);
    ck_assert_int_eq(cfg_from_env(&c, &e), WK_OK);
    ck_assert(c.redis.cluster);

    /* the worker refuses to start with keys spread over slots */
    setenv("SILA_KEY_PREFIX", "sila:", 1);
    wk_err_clear(&e);
    ck_assert_int_eq(cfg_from_env(&c, &e), WK_E_INVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "SILA_REDIS_CLUSTER=1 needs a {tag}"));

    setenv("SILA_REDIS_CLUSTER", "yes", 1);
    wk_err_clear(&e);
    ck_assert_int_eq(cfg_from_env(&c, &e), WK_E_INVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "SILA_REDIS_CLUSTER: expected 0 or 1"));

    setenv("SILA_REDIS_CLUSTER", "0", 1);
    wk_err_clear(&e);
    ck_assert_int_eq(cfg_from_env(&c, &e), WK_OK);
    ck_assert(!c.redis.cluster);
    unsetenv("SILA_REDIS_CLUSTER");
    unsetenv("SILA_KEY_PREFIX");
}
END_TEST

Suite *topo_suite(void)
{
    Suite *s = suite_create("topo");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_topo_crc16_and_slots);
    tcase_add_test(tc, test_topo_sentinel_list);
    tcase_add_test(tc, test_topo_redirect);
    tcase_add_test(tc, test_topo_cfg_sentinel_env);
    tcase_add_test(tc, test_topo_cluster_check);
    tcase_add_test(tc, test_topo_cluster_check_untagged);
    tcase_add_test(tc, test_topo_cluster_check_db_and_sentinels);
    tcase_add_test(tc, test_topo_cfg_cluster_env);
    suite_add_tcase(s, tc);
    return s;
}
