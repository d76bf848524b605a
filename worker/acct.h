/*
 * acct: what a job cost. Turns a store's request counters (struct
 * store_requests, storage/store.h) into the job result's and audit
 * entry's fields ("requests" keyed by S3 operation name, "requestRetries",
 * "bytesIn", "bytesOut", "costUsd"; docs/PROTOCOL.md) and requests into
 * an estimated price with a table of three request classes
 * (SILA_PRICE_PER_1K_WRITE / _READ / _DELETE, defaults the public AWS S3
 * Standard prices of us-east-1).
 *
 * Pure functions except acct_prices_from_env() (reads the environment)
 * and the JSON ones (allocate; errors as WK_E_NOMEM / WK_E_INVAL). Nothing
 * here blocks or sends a request.
 */
#ifndef WK_WORKER_ACCT_H
#define WK_WORKER_ACCT_H

#include <stdint.h>

#include "common/wk_buf.h"
#include "common/wk_err.h"
#include "storage/store.h"

/* USD per 1,000 requests (AWS S3 Standard, us-east-1). */
#define ACCT_PRICE_WRITE_DEFAULT  0.005  /* PUT, COPY, POST, LIST */
#define ACCT_PRICE_READ_DEFAULT   0.0004 /* GET, HEAD and all others */
#define ACCT_PRICE_DELETE_DEFAULT 0.0    /* DELETE, abort: free */

/* How S3 bills a request. */
enum acct_class { ACCT_READ, ACCT_WRITE, ACCT_DELETE };

struct acct_prices {
    double per_1k[3]; /* by enum acct_class, USD */
};

/* The defaults above. */
void acct_prices_defaults(struct acct_prices *p);
/* The defaults, then SILA_PRICE_PER_1K_WRITE, _READ and _DELETE (decimal
 * USD per 1,000 requests, 0 to 1000); WK_E_INVAL naming the variable. */
enum wk_code acct_prices_from_env(struct acct_prices *p, struct wk_err *err);

/* The class of an S3 operation name: Put*, Copy*, Create*, Complete*,
 * UploadPart*, List* and Other are writes (PUT/COPY/POST/LIST), Delete*
 * and Abort* deletes (DeleteObjects too: a multi-object delete), the rest
 * (Get*, Head*) reads. */
enum acct_class acct_class_of(const char *op);

/* Estimated USD of n requests of op. */
double acct_cost_op(const struct acct_prices *p, const char *op, uint64_t n);
/* Estimated USD of every request of r. */
double acct_cost(const struct acct_prices *p, const struct store_requests *r);

/* into += add, operation by operation (in add's order after into's). */
void acct_merge(struct store_requests *into, const struct store_requests *add);

/* The fields of a job's bill, added to the JSON object o (a jansson
 * json_t *, passed as void * so that this header stays free of jansson):
 * "requests" {op: n}, "requestRetries", "bytesIn", "bytesOut" from r,
 * "sourceRequests" {op: n} when src has any (a migrate's source store;
 * r already includes it), and "costUsd" (r at prices p, rounded to 1e-6). */
enum wk_code acct_json_add(void *o, const struct store_requests *r,
                           const struct store_requests *src,
                           const struct acct_prices *p, struct wk_err *err);

/* The result JSON object in result (replaced) with acct_json_add()'s
 * fields added; a result that is not a JSON object is WK_E_INVAL. */
enum wk_code acct_result_add(struct wk_buf *result,
                             const struct store_requests *r,
                             const struct store_requests *src,
                             const struct acct_prices *p, struct wk_err *err);

/* {"GetObject":n,...} of r as compact JSON into out (replaced). */
enum wk_code acct_requests_text(const struct store_requests *r,
                                struct wk_buf *out, struct wk_err *err);

#endif
