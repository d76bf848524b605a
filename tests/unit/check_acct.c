/* What a job cost (issue 18): the S3 operation name of every request shape
 * the code sends (s3_op_of), attempts and retries counted per client and
 * process-wide, store_requests of the backends, and worker/acct (price
 * classes, the price table from the environment, merging a migrate's
 * source, the result's fields). */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/s3_http.h"
#include "storage/store.h"
#include "tests/unit/suites.h"
#include "worker/acct.h"

#define KV(n, v) ((struct s3_kv){ (n), (v) })

struct shape {
    const char *method;
    bool key;
    struct s3_kv q[3];
    size_t nq;
    bool copy;
    const char *want;
};

/* The requests storage/ builds (store_s3.c, s3_batch.c, s3_mpu.c,
 * s3_delete.c, s3_uploads.c, s3_probe.c), by what they send. */
static const struct shape shapes[] = {
    { "GET", true, { { NULL, NULL } }, 0, false, "GetObject" },
    { "HEAD", true, { { NULL, NULL } }, 0, false, "HeadObject" },
    { "PUT", true, { { NULL, NULL } }, 0, false, "PutObject" },
    { "PUT", true, { { NULL, NULL } }, 0, true, "CopyObject" },
    { "DELETE", true, { { NULL, NULL } }, 0, false, "DeleteObject" },
    { "POST", false, { { "delete", "" } }, 1, false, "DeleteObjects" },
    { "GET",
      false,
      { { "list-type", "2" }, { "prefix", "a/" }, { "encoding-type", "url" } },
      3,
      false,
      "ListObjectsV2" },
    { "GET", false, { { "prefix", "a/" } }, 1, false, "ListObjects" },
    { "GET",
      false,
      { { "versions", "" }, { "prefix", "a/" } },
      2,
      false,
      "ListObjectVersions" },
    { "POST", true, { { "uploads", "" } }, 1, false, "CreateMultipartUpload" },
    { "PUT",
      true,
      { { "partNumber", "3" }, { "uploadId", "u" } },
      2,
      false,
      "UploadPart" },
    { "PUT",
      true,
      { { "partNumber", "1" }, { "uploadId", "u" } },
      2,
      true,
      "UploadPartCopy" },
    { "POST",
      true,
      { { "uploadId", "u" } },
      1,
      false,
      "CompleteMultipartUpload" },
    { "DELETE",
      true,
      { { "uploadId", "u" } },
      1,
      false,
      "AbortMultipartUpload" },
    { "GET",
      true,
      { { "uploadId", "u" }, { "part-number-marker", "5" } },
      2,
      false,
      "ListParts" },
    { "GET",
      false,
      { { "uploads", "" }, { "prefix", "p/" } },
      2,
      false,
      "ListMultipartUploads" },
    { "GET", false, { { "versioning", "" } }, 1, false, "GetBucketVersioning" },
    { "PUT", false, { { "versioning", "" } }, 1, false, "PutBucketVersioning" },
    { "HEAD", false, { { NULL, NULL } }, 0, false, "HeadBucket" },
    { "PUT", false, { { NULL, NULL } }, 0, false, "CreateBucket" },
    { "DELETE", false, { { NULL, NULL } }, 0, false, "DeleteBucket" },
    { "GET", false, { { NULL, NULL } }, 0, false, "ListObjects" },
    /* what none of the names fits */
    { "PATCH", true, { { NULL, NULL } }, 0, false, "Other" },
    { "GET", false, { { "policy", "" } }, 1, false, "Other" },
    { "POST", true, { { NULL, NULL } }, 0, false, "Other" },
    { "PUT", true, { { "tagging", "" } }, 1, false, "Other" },
};

START_TEST(test_acct_op_names_of_every_request_shape)
{
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        const struct shape *s = &shapes[i];
        struct s3_kv hdr[2] = { KV("Content-MD5", "x"),
                                KV("X-Amz-Copy-Source", "/b/k") };
        enum s3_op op =
            s3_op_of(s->method, s->key, s->q, s->nq, hdr, s->copy ? 2 : 1);
        ck_assert_msg(strcmp(s3_op_name(op), s->want) == 0,
                      "%zu: %s%s -> %s, want %s", i, s->method,
                      s->key ? " key" : "", s3_op_name(op), s->want);
    }
    /* a copy-source header is recognised in any case, and only it */
    {
        struct s3_kv h = KV("x-amz-copy-source-range", "bytes=0-1");
        ck_assert_str_eq(s3_op_name(s3_op_of("PUT", true, NULL, 0, &h, 1)),
                         "PutObject");
    }
    ck_assert_str_eq(s3_op_name(s3_op_of(NULL, true, NULL, 0, NULL, 0)),
                     "Other");
}
END_TEST

START_TEST(test_acct_op_names_distinct)
{
    ck_assert_str_eq(s3_op_name(S3_OP_N), "Other");
    ck_assert_str_eq(s3_op_name((enum s3_op) - 1), "Other");
    for (int a = 0; a < S3_OP_N; a++)
        for (int b = a + 1; b < S3_OP_N; b++)
            ck_assert_str_ne(s3_op_name((enum s3_op)a),
                             s3_op_name((enum s3_op)b));
}
END_TEST

/* A GET to a port nobody listens on: every attempt fails to connect and
 * is retried until max_retries; all attempts are counted for GetObject,
 * all but the last as retries, on the client and process-wide. */
START_TEST(test_acct_attempts_and_retries_counted)
{
    struct store_opts o;
    struct s3_client *cl = NULL;
    struct s3_req req;
    struct s3_op_counts c;
    struct s3_http_stats before, after;
    struct wk_err err;

    memset(&o, 0, sizeof(o));
    snprintf(o.endpoint, sizeof(o.endpoint), "http://127.0.0.1:9");
    snprintf(o.access_key, sizeof(o.access_key), "AKIDEXAMPLE");
    snprintf(o.secret_key, sizeof(o.secret_key), "secret");
    o.max_retries = 2;
    o.max_in_flight = 4;
    o.connect_timeout_ms = 1000;
    o.request_timeout_ms = 2000;
    wk_err_clear(&err);
    ck_assert_int_eq(s3_client_new(&o, "bucket", &cl, &err), WK_OK);
    s3_http_stats(&before);
    s3_req_init(&req);
    req.method = "GET";
    req.key = "a/b.txt";
    ck_assert_int_eq(s3_client_start(cl, &req, &err), WK_OK);
    ck_assert_int_eq(s3_client_wait(cl, &req, &err), WK_E_NET);
    ck_assert_uint_eq(req.attempts, 3);
    s3_client_counts(cl, &c);
    ck_assert_uint_eq(c.requests[S3_OP_GET_OBJECT], 3);
    ck_assert_uint_eq(c.retries[S3_OP_GET_OBJECT], 2);
    for (int op = 0; op < S3_OP_N; op++)
        if (op != S3_OP_GET_OBJECT)
            ck_assert_uint_eq(c.requests[op], 0);
    s3_http_stats(&after);
    ck_assert_uint_eq(after.ops.requests[S3_OP_GET_OBJECT] -
                          before.ops.requests[S3_OP_GET_OBJECT],
                      3);
    ck_assert_uint_eq(after.ops.retries[S3_OP_GET_OBJECT] -
                          before.ops.retries[S3_OP_GET_OBJECT],
                      2);
    ck_assert_uint_eq(after.requests - before.requests, 3);
    ck_assert_uint_eq(after.retries - before.retries, 2);
    s3_client_free(cl);
}
END_TEST

/* The store accessor: an S3 store reports its client's counters by name,
 * only the operations used; mem (like fs) sends no requests: zeros. */
START_TEST(test_acct_store_requests)
{
    struct store_opts o;
    struct store *st = NULL;
    struct store_requests r;
    struct store_stat ss;
    struct wk_err err;

    store_requests(NULL, &r);
    ck_assert_uint_eq(r.n_ops, 0);
    ck_assert_int_eq(store_mem_new(&st, &err), WK_OK);
    ck_assert_int_eq(store_put(st, "k", "v", 1, &err), WK_OK);
    store_requests(st, &r);
    ck_assert_uint_eq(r.n_ops, 0);
    ck_assert_uint_eq(r.requests, 0);
    store_free(st);

    memset(&o, 0, sizeof(o));
    snprintf(o.endpoint, sizeof(o.endpoint), "http://127.0.0.1:9");
    snprintf(o.access_key, sizeof(o.access_key), "AKIDEXAMPLE");
    snprintf(o.secret_key, sizeof(o.secret_key), "secret");
    o.max_retries = 1;
    o.max_in_flight = 4;
    o.connect_timeout_ms = 1000;
    o.request_timeout_ms = 2000;
    ck_assert_int_eq(store_s3_new("bucket", "pre/", &o, &st, &err), WK_OK);
    wk_err_clear(&err);
    ck_assert_int_eq(store_head(st, "x", &ss, &err), WK_E_NET);
    store_requests(st, &r);
    ck_assert_uint_eq(r.n_ops, 1);
    ck_assert_str_eq(r.ops[0].op, "HeadObject");
    ck_assert_uint_eq(r.ops[0].requests, 2);
    ck_assert_uint_eq(r.ops[0].retries, 1);
    ck_assert_uint_eq(r.requests, 2);
    ck_assert_uint_eq(r.retries, 1);
    store_free(st);
}
END_TEST

START_TEST(test_acct_classes)
{
    static const char *const w[] = { "PutObject",
                                     "CopyObject",
                                     "UploadPart",
                                     "UploadPartCopy",
                                     "CreateMultipartUpload",
                                     "CompleteMultipartUpload",
                                     "ListObjectsV2",
                                     "ListObjectVersions",
                                     "ListParts",
                                     "ListMultipartUploads",
                                     "PutBucketVersioning",
                                     "Other" };
    static const char *const rd[] = { "GetObject", "HeadObject",
                                      "GetBucketVersioning", "HeadBucket" };
    static const char *const d[] = { "DeleteObject", "DeleteObjects",
                                     "AbortMultipartUpload" };

    for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++)
        ck_assert_msg(acct_class_of(w[i]) == ACCT_WRITE, "%s", w[i]);
    for (size_t i = 0; i < sizeof(rd) / sizeof(rd[0]); i++)
        ck_assert_msg(acct_class_of(rd[i]) == ACCT_READ, "%s", rd[i]);
    for (size_t i = 0; i < sizeof(d) / sizeof(d[0]); i++)
        ck_assert_msg(acct_class_of(d[i]) == ACCT_DELETE, "%s", d[i]);
    /* every name the storage layer uses has a class on purpose */
    for (int op = 0; op < S3_OP_N; op++)
        (void)acct_class_of(s3_op_name((enum s3_op)op));
}
END_TEST

static void reqs_add(struct store_requests *r, const char *op, uint64_t n,
                     uint64_t retries)
{
    r->ops[r->n_ops].op = op;
    r->ops[r->n_ops].requests = n;
    r->ops[r->n_ops].retries = retries;
    r->n_ops++;
    r->requests += n;
    r->retries += retries;
}

START_TEST(test_acct_cost_defaults_and_env)
{
    struct acct_prices p;
    struct store_requests r;
    struct wk_err err;

    memset(&r, 0, sizeof(r));
    reqs_add(&r, "GetObject", 1000, 0);
    reqs_add(&r, "PutObject", 2000, 1);
    reqs_add(&r, "DeleteObjects", 5, 0);
    unsetenv("SILA_PRICE_PER_1K_WRITE");
    unsetenv("SILA_PRICE_PER_1K_READ");
    unsetenv("SILA_PRICE_PER_1K_DELETE");
    wk_err_clear(&err);
    ck_assert_int_eq(acct_prices_from_env(&p, &err), WK_OK);
    /* 1000 GET x $0.0004/1k + 2000 PUT x $0.005/1k + deletes free */
    ck_assert(fabs(acct_cost(&p, &r) - (0.0004 + 0.01)) < 1e-12);

    setenv("SILA_PRICE_PER_1K_WRITE", "0.0054", 1);
    setenv("SILA_PRICE_PER_1K_READ", "0", 1);
    setenv("SILA_PRICE_PER_1K_DELETE", "1", 1);
    ck_assert_int_eq(acct_prices_from_env(&p, &err), WK_OK);
    ck_assert(fabs(acct_cost(&p, &r) - (0.0108 + 0.005)) < 1e-12);

    setenv("SILA_PRICE_PER_1K_READ", "cheap", 1);
    ck_assert_int_eq(acct_prices_from_env(&p, &err), WK_E_INVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "SILA_PRICE_PER_1K_READ"));
    wk_err_clear(&err);
    setenv("SILA_PRICE_PER_1K_READ", "-1", 1);
    ck_assert_int_eq(acct_prices_from_env(&p, &err), WK_E_INVAL);
    unsetenv("SILA_PRICE_PER_1K_WRITE");
    unsetenv("SILA_PRICE_PER_1K_READ");
    unsetenv("SILA_PRICE_PER_1K_DELETE");
}
END_TEST

START_TEST(test_acct_merge_and_result)
{
    struct store_requests dst, src;
    struct acct_prices p;
    struct wk_buf b;
    struct wk_err err;
    json_t *o, *rq;

    memset(&dst, 0, sizeof(dst));
    memset(&src, 0, sizeof(src));
    reqs_add(&dst, "PutObject", 10, 1);
    reqs_add(&dst, "HeadObject", 2, 0);
    dst.bytes_out = 100;
    reqs_add(&src, "GetObject", 7, 0);
    reqs_add(&src, "HeadObject", 3, 2);
    src.bytes_in = 70;
    acct_merge(&dst, &src);
    ck_assert_uint_eq(dst.n_ops, 3);
    ck_assert_uint_eq(dst.requests, 22);
    ck_assert_uint_eq(dst.retries, 3);
    ck_assert_str_eq(dst.ops[1].op, "HeadObject");
    ck_assert_uint_eq(dst.ops[1].requests, 5);
    ck_assert_uint_eq(dst.ops[1].retries, 2);
    ck_assert_str_eq(dst.ops[2].op, "GetObject");

    acct_prices_defaults(&p);
    wk_buf_init(&b, 1u << 16);
    wk_err_clear(&err);
    ck_assert_int_eq(wk_buf_appends(&b, "{\"archiveKey\":\"a.zip\"}", &err),
                     WK_OK);
    ck_assert_int_eq(acct_result_add(&b, &dst, &src, &p, &err), WK_OK);
    o = json_loads(wk_buf_cstr(&b), 0, NULL);
    ck_assert_ptr_nonnull(o);
    ck_assert_str_eq(json_string_value(json_object_get(o, "archiveKey")),
                     "a.zip");
    rq = json_object_get(o, "requests");
    ck_assert_int_eq(json_integer_value(json_object_get(rq, "PutObject")), 10);
    ck_assert_int_eq(json_integer_value(json_object_get(rq, "HeadObject")), 5);
    ck_assert_int_eq(json_integer_value(json_object_get(rq, "GetObject")), 7);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "requestRetries")),
                     3);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "bytesIn")), 70);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "bytesOut")), 100);
    ck_assert_int_eq(json_integer_value(json_object_get(
                         json_object_get(o, "sourceRequests"), "GetObject")),
                     7);
    /* 10 PUT x 0.005/1k + 12 GET/HEAD x 0.0004/1k, to the micro-dollar */
    ck_assert(fabs(json_number_value(json_object_get(o, "costUsd")) -
                   0.000055) < 1e-12);
    /* the printed cost is short, not 17 digits */
    ck_assert_ptr_nonnull(strstr(wk_buf_cstr(&b), "\"costUsd\":5.5e-5"));
    json_decref(o);

    /* no source requests: no sourceRequests; an empty result is an
     * object; a result that is not an object is refused */
    memset(&src, 0, sizeof(src));
    wk_buf_reset(&b);
    ck_assert_int_eq(acct_result_add(&b, &dst, &src, &p, &err), WK_OK);
    ck_assert_ptr_null(strstr(wk_buf_cstr(&b), "sourceRequests"));
    wk_buf_reset(&b);
    ck_assert_int_eq(wk_buf_appends(&b, "[1]", &err), WK_OK);
    ck_assert_int_eq(acct_result_add(&b, &dst, NULL, &p, &err), WK_E_INVAL);
    ck_assert_str_eq(wk_buf_cstr(&b), "[1]");

    wk_err_clear(&err);
    ck_assert_int_eq(acct_requests_text(&dst, &b, &err), WK_OK);
    ck_assert_str_eq(wk_buf_cstr(&b),
                     "{\"PutObject\":10,\"HeadObject\":5,\"GetObject\":7}");
    wk_buf_release(&b);
}
END_TEST

Suite *acct_suite(void)
{
    Suite *s = suite_create("acct");
    TCase *tc = tcase_create("names");
    TCase *tn = tcase_create("counts");
    TCase *tp = tcase_create("bill");
    tcase_add_test(tc, test_acct_op_names_of_every_request_shape);
    tcase_add_test(tc, test_acct_op_names_distinct);
    tcase_set_timeout(tn, 20);
    tcase_add_test(tn, test_acct_attempts_and_retries_counted);
    tcase_add_test(tn, test_acct_store_requests);
    tcase_add_test(tp, test_acct_classes);
    tcase_add_test(tp, test_acct_cost_defaults_and_env);
    tcase_add_test(tp, test_acct_merge_and_result);
    suite_add_tcase(s, tc);
    suite_add_tcase(s, tn);
    suite_add_tcase(s, tp);
    return s;
}
