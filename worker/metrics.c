/* metrics: the Prometheus text of /metrics and the /healthz and /livez
 * endpoints on libmicrohttpd (see metrics.h). */
#include "worker/metrics.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/wk_log.h"
#include "storage/s3_http.h"
#include "worker/q.h"
#include "worker/q_report.h"

#define N_TYPES 3
static const char *const type_names[N_TYPES] = { "archive", "unarchive",
                                                 "migrate" };
/* Job duration buckets, seconds. */
static const double buckets[] = { 0.5, 1,   2.5, 5,   10,  30,
                                  60,  120, 300, 600, 1800 };
#define N_BUCKETS (sizeof(buckets) / sizeof(buckets[0]))

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct counters {
    uint64_t started[N_TYPES], succeeded[N_TYPES], failed[N_TYPES];
    uint64_t retried[N_TYPES];
    uint64_t bytes[N_TYPES], files[N_TYPES];
    uint64_t hist[N_TYPES][N_BUCKETS + 1]; /* last: +Inf */
    double seconds[N_TYPES];
} c;

static int type_index(const char *type)
{
    for (int i = 0; type && i < N_TYPES; i++)
        if (strcmp(type, type_names[i]) == 0)
            return i;
    return -1;
}

void metrics_job_started(const char *type)
{
    int t = type_index(type);
    if (t < 0)
        return;
    pthread_mutex_lock(&mu);
    c.started[t]++;
    pthread_mutex_unlock(&mu);
}

void metrics_job_retried(const char *type)
{
    int t = type_index(type);
    if (t < 0)
        return;
    pthread_mutex_lock(&mu);
    c.retried[t]++;
    pthread_mutex_unlock(&mu);
}

void metrics_job_finished(const char *type, bool ok, double seconds,
                          uint64_t bytes, uint64_t files)
{
    int t = type_index(type);
    size_t b = 0;

    if (t < 0)
        return;
    while (b < N_BUCKETS && seconds > buckets[b])
        b++;
    pthread_mutex_lock(&mu);
    if (ok) {
        c.succeeded[t]++;
        c.bytes[t] += bytes;
        c.files[t] += files;
    } else {
        c.failed[t]++;
    }
    c.hist[t][b]++;
    c.seconds[t] += seconds;
    pthread_mutex_unlock(&mu);
}

static enum wk_code per_type(struct wk_buf *o, const char *name,
                             const char *help, const char *kind,
                             const uint64_t *v, struct wk_err *err)
{
    enum wk_code rc = wk_buf_appendf(o, err, "# HELP %s %s\n# TYPE %s %s\n",
                                     name, help, name, kind);
    for (int t = 0; t < N_TYPES && rc == WK_OK; t++)
        rc = wk_buf_appendf(o, err, "%s{type=\"%s\"} %llu\n", name,
                            type_names[t], (unsigned long long)v[t]);
    return rc;
}

/* An S3 error code as a label value (letters, digits, space, '_', '-'). */
static void label_value(const char *in, char *out, size_t len)
{
    size_t n = 0;
    for (; *in && n + 1 < len; in++)
        out[n++] = (*in == '"' || *in == '\\' || *in == '\n') ? '_' : *in;
    out[n] = '\0';
}

/* name{op="<S3 operation>"} for every operation, after rc == WK_OK. */
static enum wk_code per_op(struct wk_buf *o, const char *name,
                           const uint64_t *v, enum wk_code rc,
                           struct wk_err *err)
{
    for (int op = 0; op < S3_OP_N && rc == WK_OK; op++)
        rc = wk_buf_appendf(o, err, "%s{op=\"%s\"} %llu\n", name,
                            s3_op_name((enum s3_op)op),
                            (unsigned long long)v[op]);
    return rc;
}

enum wk_code metrics_render(struct q *q, struct wk_buf *o, struct wk_err *err)
{
    struct s3_http_stats s3;
    struct q_depths d;
    struct counters snap;
    enum wk_code rc;
    bool have_depths = false;

    pthread_mutex_lock(&mu);
    snap = c;
    pthread_mutex_unlock(&mu);
    s3_http_stats(&s3);
    if (q) {
        struct wk_err e;
        wk_err_clear(&e);
        have_depths = q_depths(q, &d, &e) == WK_OK;
    }

    rc = per_type(o, "sila_jobs_started_total", "Jobs started by this worker.",
                  "counter", snap.started, err);
    if (rc == WK_OK)
        rc = per_type(o, "sila_jobs_succeeded_total",
                      "Jobs that succeeded on this worker.", "counter",
                      snap.succeeded, err);
    if (rc == WK_OK)
        rc = per_type(o, "sila_jobs_failed_total",
                      "Jobs that failed for good on this worker.", "counter",
                      snap.failed, err);
    if (rc == WK_OK)
        rc = per_type(o, "sila_jobs_retried_total",
                      "Runs that failed transiently and were put back for a "
                      "retry.",
                      "counter", snap.retried, err);
    if (rc == WK_OK)
        rc = per_type(o, "sila_space_bytes_total",
                      "Bytes of spaces processed by succeeded jobs.", "counter",
                      snap.bytes, err);
    if (rc == WK_OK)
        rc = per_type(o, "sila_space_files_total",
                      "Files of spaces processed by succeeded jobs.", "counter",
                      snap.files, err);
    if (rc == WK_OK)
        rc = wk_buf_appendf(o, err,
                            "# HELP sila_job_duration_seconds Wall time of "
                            "finished jobs.\n"
                            "# TYPE sila_job_duration_seconds histogram\n");
    for (int t = 0; t < N_TYPES && rc == WK_OK; t++) {
        uint64_t cum = 0;
        for (size_t b = 0; b <= N_BUCKETS && rc == WK_OK; b++) {
            char le[16];
            cum += snap.hist[t][b];
            if (b < N_BUCKETS)
                snprintf(le, sizeof(le), "%g", buckets[b]);
            else
                snprintf(le, sizeof(le), "+Inf");
            rc = wk_buf_appendf(o, err,
                                "sila_job_duration_seconds_bucket{type=\"%s\","
                                "le=\"%s\"} %llu\n",
                                type_names[t], le, (unsigned long long)cum);
        }
        if (rc == WK_OK)
            rc = wk_buf_appendf(
                o, err,
                "sila_job_duration_seconds_sum{type=\"%s\"} %.3f\n"
                "sila_job_duration_seconds_count{type=\"%s\"} %llu\n",
                type_names[t], snap.seconds[t], type_names[t],
                (unsigned long long)cum);
    }
    /* the unlabelled sample is the total (older dashboards read it); the
     * op-labelled ones split it by S3 operation */
    if (rc == WK_OK)
        rc = wk_buf_appendf(
            o, err,
            "# HELP sila_s3_requests_total S3 request attempts completed "
            "(no label: all; op: by S3 operation).\n"
            "# TYPE sila_s3_requests_total counter\n"
            "sila_s3_requests_total %llu\n",
            (unsigned long long)s3.requests);
    rc = per_op(o, "sila_s3_requests_total", s3.ops.requests, rc, err);
    if (rc == WK_OK)
        rc = wk_buf_appendf(
            o, err,
            "# HELP sila_s3_retries_total S3 request attempts retried "
            "(no label: all; op: by S3 operation).\n"
            "# TYPE sila_s3_retries_total counter\n"
            "sila_s3_retries_total %llu\n",
            (unsigned long long)s3.retries);
    rc = per_op(o, "sila_s3_retries_total", s3.ops.retries, rc, err);
    if (rc == WK_OK)
        rc = wk_buf_appendf(
            o, err,
            "# HELP sila_s3_bytes_sent_total Request bodies sent to S3.\n"
            "# TYPE sila_s3_bytes_sent_total counter\n"
            "sila_s3_bytes_sent_total %llu\n"
            "# HELP sila_s3_bytes_received_total Response bodies read from "
            "S3.\n"
            "# TYPE sila_s3_bytes_received_total counter\n"
            "sila_s3_bytes_received_total %llu\n"
            "# HELP sila_s3_requests_in_flight S3 requests on the wire.\n"
            "# TYPE sila_s3_requests_in_flight gauge\n"
            "sila_s3_requests_in_flight %lld\n"
            "# HELP sila_s3_errors_total Failed S3 request attempts by "
            "code.\n"
            "# TYPE sila_s3_errors_total counter\n",
            (unsigned long long)s3.bytes_sent,
            (unsigned long long)s3.bytes_received, (long long)s3.in_flight);
    for (size_t i = 0; i < s3.n_errors && rc == WK_OK; i++) {
        char code[64];
        label_value(s3.errors[i].code, code, sizeof(code));
        rc = wk_buf_appendf(o, err, "sila_s3_errors_total{code=\"%s\"} %llu\n",
                            code, (unsigned long long)s3.errors[i].count);
    }
    if (rc == WK_OK && have_depths) {
        static const char *const lanes[2] = { "normal", "urgent" };
        rc = wk_buf_appendf(o, err,
                            "# HELP sila_queue_waiting Jobs not yet taken, "
                            "by lane.\n"
                            "# TYPE sila_queue_waiting gauge\n");
        for (int l = 0; l < 2 && rc == WK_OK; l++)
            if (d.waiting[l] >= 0)
                rc = wk_buf_appendf(o, err,
                                    "sila_queue_waiting{lane=\"%s\"} %lld\n",
                                    lanes[l], (long long)d.waiting[l]);
        if (rc == WK_OK)
            rc = wk_buf_appendf(o, err,
                                "# HELP sila_queue_running Jobs taken and "
                                "not yet finished, by lane.\n"
                                "# TYPE sila_queue_running gauge\n");
        for (int l = 0; l < 2 && rc == WK_OK; l++)
            if (d.running[l] >= 0)
                rc = wk_buf_appendf(o, err,
                                    "sila_queue_running{lane=\"%s\"} %lld\n",
                                    lanes[l], (long long)d.running[l]);
        if (rc == WK_OK && d.delayed >= 0)
            rc = wk_buf_appendf(o, err,
                                "# HELP sila_queue_delayed Jobs waiting for a "
                                "retry or a space lock.\n"
                                "# TYPE sila_queue_delayed gauge\n"
                                "sila_queue_delayed %lld\n",
                                (long long)d.delayed);
        if (rc == WK_OK && d.dead >= 0)
            rc = wk_buf_appendf(o, err,
                                "# HELP sila_dead_letters Jobs in the "
                                "dead-letter stream.\n"
                                "# TYPE sila_dead_letters gauge\n"
                                "sila_dead_letters %lld\n",
                                (long long)d.dead);
    }
    if (rc == WK_OK)
        rc = wk_buf_appendf(o, err,
                            "# HELP sila_redis_up Whether the metrics "
                            "connection reached Redis.\n"
                            "# TYPE sila_redis_up gauge\n"
                            "sila_redis_up %d\n",
                            have_depths ? 1 : 0);
    return rc;
}

struct metrics {
    struct MHD_Daemon *d;
    const struct cfg *cfg; /* borrowed */
    struct q *q;           /* owned; used by the daemon's thread only */
};

/* The metrics thread's Redis connection, (re)made on demand. */
static struct q *conn(struct metrics *m)
{
    struct wk_err e;

    wk_err_clear(&e);
    if (m->q && q_ping(m->q, &e) == WK_OK)
        return m->q;
    q_free(m->q);
    m->q = NULL;
    wk_err_clear(&e);
    if (q_connect(&m->cfg->redis, m->cfg->prefix, 1000, &m->q, &e) != WK_OK) {
        m->q = NULL;
        return NULL;
    }
    return m->q;
}

static enum MHD_Result reply(struct MHD_Connection *con, unsigned status,
                             const char *type, const char *body, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, (void *)(uintptr_t)body, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ret;

    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    ret = MHD_queue_response(con, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *con,
                              const char *url, const char *method,
                              const char *version, const char *upload_data,
                              size_t *upload_size, void **req_cls)
{
    struct metrics *m = cls;

    (void)version;
    (void)upload_data;
    (void)upload_size;
    (void)req_cls;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return reply(con, 405, "text/plain", "method not allowed\n", 19);
    if (strcmp(url, "/livez") == 0) /* the process serves: no restart */
        return reply(con, 200, "text/plain", "ok\n", 3);
    if (strcmp(url, "/healthz") == 0) {
        if (conn(m))
            return reply(con, 200, "text/plain", "ok\n", 3);
        return reply(con, 503, "text/plain", "redis unreachable\n", 18);
    }
    if (strcmp(url, "/metrics") == 0) {
        struct wk_buf b;
        struct wk_err e;
        enum MHD_Result ret;
        wk_buf_init(&b, 1u << 20);
        wk_err_clear(&e);
        if (metrics_render(conn(m), &b, &e) != WK_OK)
            ret = reply(con, 500, "text/plain", "render failed\n", 14);
        else
            ret = reply(con, 200, "text/plain; version=0.0.4", wk_buf_cstr(&b),
                        b.len);
        wk_buf_release(&b);
        return ret;
    }
    return reply(con, 404, "text/plain", "not found\n", 10);
}

enum wk_code metrics_start(const struct cfg *cfg, struct metrics **out,
                           struct wk_err *err)
{
    char host[128];
    const char *colon = strrchr(cfg->metrics_addr, ':');
    struct addrinfo hints, *ai = NULL;
    struct sockaddr_in sa;
    struct metrics *m;
    long port;
    char *end;

    *out = NULL;
    if (!colon || colon == cfg->metrics_addr ||
        (size_t)(colon - cfg->metrics_addr) >= sizeof(host))
        return wk_err_set(err, WK_E_INVAL,
                          "SILA_METRICS_ADDR '%s': expected host:port",
                          cfg->metrics_addr);
    port = strtol(colon + 1, &end, 10);
    if (*end || port < 1 || port > 65535)
        return wk_err_set(err, WK_E_INVAL, "SILA_METRICS_ADDR '%s': bad port",
                          cfg->metrics_addr);
    snprintf(host, sizeof(host), "%.*s", (int)(colon - cfg->metrics_addr),
             cfg->metrics_addr);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, NULL, &hints, &ai) != 0 || !ai)
        return wk_err_set(err, WK_E_INVAL,
                          "SILA_METRICS_ADDR '%s': cannot resolve '%s' to an "
                          "IPv4 address",
                          cfg->metrics_addr, host);
    memcpy(&sa, ai->ai_addr, sizeof(sa));
    freeaddrinfo(ai);
    sa.sin_port = htons((uint16_t)port);

    m = calloc(1, sizeof(*m));
    if (!m)
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    m->cfg = cfg;
    /* (no MHD_USE_ERROR_LOG: the log is JSON lines only) */
    m->d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD, (uint16_t)port, NULL, NULL, handle, m,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)16, MHD_OPTION_END);
    if (!m->d) {
        free(m);
        return wk_err_set(err, WK_E_IO,
                          "SILA_METRICS_ADDR '%s': cannot listen (address in "
                          "use?)",
                          cfg->metrics_addr);
    }
    WK_LOG(WK_LOG_INFO, "metrics.listening", KV_STR("addr", cfg->metrics_addr));
    *out = m;
    return WK_OK;
}

void metrics_stop(struct metrics *m)
{
    if (!m)
        return;
    MHD_stop_daemon(m->d);
    q_free(m->q);
    free(m);
}
