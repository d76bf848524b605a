/* acct: request counters into a job's bill (result and audit fields) and
 * the price table that turns requests into an estimated cost. */
#include "worker/acct.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void acct_prices_defaults(struct acct_prices *p)
{
    p->per_1k[ACCT_READ] = ACCT_PRICE_READ_DEFAULT;
    p->per_1k[ACCT_WRITE] = ACCT_PRICE_WRITE_DEFAULT;
    p->per_1k[ACCT_DELETE] = ACCT_PRICE_DELETE_DEFAULT;
}

static enum wk_code env_price(const char *name, double *out, struct wk_err *err)
{
    const char *v = getenv(name);
    char *end = NULL;
    double d;

    if (!v || !*v)
        return WK_OK;
    d = strtod(v, &end);
    if (end == v || *end || !isfinite(d) || d < 0 || d > 1000)
        return wk_err_set(err, WK_E_INVAL,
                          "%s: expected USD per 1,000 requests, a decimal "
                          "from 0 to 1000 (0.005)",
                          name);
    *out = d;
    return WK_OK;
}

enum wk_code acct_prices_from_env(struct acct_prices *p, struct wk_err *err)
{
    enum wk_code rc;

    acct_prices_defaults(p);
    rc = env_price("SILA_PRICE_PER_1K_WRITE", &p->per_1k[ACCT_WRITE], err);
    if (rc == WK_OK)
        rc = env_price("SILA_PRICE_PER_1K_READ", &p->per_1k[ACCT_READ], err);
    if (rc == WK_OK)
        rc =
            env_price("SILA_PRICE_PER_1K_DELETE", &p->per_1k[ACCT_DELETE], err);
    return rc;
}

static bool starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

enum acct_class acct_class_of(const char *op)
{
    static const char *const writes[] = { "Put",      "Copy", "Create",
                                          "Complete", "List", "UploadPart",
                                          "Other" };
    if (!op)
        return ACCT_WRITE;
    if (starts(op, "Delete") || starts(op, "Abort"))
        return ACCT_DELETE;
    for (size_t i = 0; i < sizeof(writes) / sizeof(writes[0]); i++)
        if (starts(op, writes[i]))
            return ACCT_WRITE;
    return ACCT_READ;
}

double acct_cost_op(const struct acct_prices *p, const char *op, uint64_t n)
{
    return (double)n * p->per_1k[acct_class_of(op)] / 1000.0;
}

double acct_cost(const struct acct_prices *p, const struct store_requests *r)
{
    double sum = 0;

    for (size_t i = 0; i < r->n_ops; i++)
        sum += acct_cost_op(p, r->ops[i].op, r->ops[i].requests);
    return sum;
}

void acct_merge(struct store_requests *into, const struct store_requests *add)
{
    for (size_t i = 0; i < add->n_ops; i++) {
        size_t k = 0;
        while (k < into->n_ops && strcmp(into->ops[k].op, add->ops[i].op) != 0)
            k++;
        if (k == into->n_ops) {
            if (k == STORE_REQ_OPS_MAX)
                continue;
            into->ops[k].op = add->ops[i].op;
            into->ops[k].requests = 0;
            into->ops[k].retries = 0;
            into->n_ops++;
        }
        into->ops[k].requests += add->ops[i].requests;
        into->ops[k].retries += add->ops[i].retries;
    }
    into->requests += add->requests;
    into->retries += add->retries;
    into->bytes_in += add->bytes_in;
    into->bytes_out += add->bytes_out;
}

static json_t *ops_object(const struct store_requests *r)
{
    json_t *o = json_object();

    for (size_t i = 0; o && i < r->n_ops; i++)
        if (json_object_set_new(o, r->ops[i].op,
                                json_integer((json_int_t)r->ops[i].requests)))
            break;
    return o;
}

enum wk_code acct_json_add(void *obj, const struct store_requests *r,
                           const struct store_requests *src,
                           const struct acct_prices *p, struct wk_err *err)
{
    json_t *o = obj;
    double cost = round(acct_cost(p, r) * 1e6) / 1e6;
    int bad = 0;

    if (!json_is_object(o))
        return wk_err_set(err, WK_E_INVAL, "a job result must be an object");
    bad |= json_object_set_new(o, "requests", ops_object(r));
    bad |= json_object_set_new(o, "requestRetries",
                               json_integer((json_int_t)r->retries));
    bad |= json_object_set_new(o, "bytesIn",
                               json_integer((json_int_t)r->bytes_in));
    bad |= json_object_set_new(o, "bytesOut",
                               json_integer((json_int_t)r->bytes_out));
    if (src && src->requests > 0)
        bad |= json_object_set_new(o, "sourceRequests", ops_object(src));
    bad |= json_object_set_new(o, "costUsd", json_real(cost));
    if (bad)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    return WK_OK;
}

static enum wk_code dump_into(json_t *o, struct wk_buf *out, struct wk_err *err)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER |
                                JSON_REAL_PRECISION(10));
    enum wk_code rc;

    if (!s)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    wk_buf_reset(out);
    rc = wk_buf_appends(out, s, err);
    free(s);
    return rc;
}

enum wk_code acct_result_add(struct wk_buf *result,
                             const struct store_requests *r,
                             const struct store_requests *src,
                             const struct acct_prices *p, struct wk_err *err)
{
    json_t *o = NULL;
    enum wk_code rc;

    if (result->len == 0)
        o = json_object();
    else
        o = json_loadb(result->data, result->len, 0, NULL);
    if (!o)
        return wk_err_set(err, WK_E_INVAL, "a job result is not JSON");
    rc = acct_json_add(o, r, src, p, err);
    if (rc == WK_OK)
        rc = dump_into(o, result, err);
    json_decref(o);
    return rc;
}

enum wk_code acct_requests_text(const struct store_requests *r,
                                struct wk_buf *out, struct wk_err *err)
{
    json_t *o = ops_object(r);
    enum wk_code rc;

    if (!o)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    rc = dump_into(o, out, err);
    json_decref(o);
    return rc;
}
