/*
 * cli_queue: the queue commands: enqueue (a job by type and space, or from
 * a job file, optionally followed to its end), status, jobs, stats, audit
 * and retry. All but enqueue only read or nudge Redis through q.h.
 */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/wk_buf.h"
#include "common/wk_parse.h"
#include "jobs/job.h"
#include "jobs/job_migrate.h"
#include "worker/acct.h"
#include "worker/cfg.h"
#include "worker/cli.h"
#include "worker/cli_int.h"
#include "worker/q.h"
#include "worker/q_report.h"

static const char usage_enqueue[] =
    "usage: sila-archiver enqueue archive <spaceId> [--urgent] [--wait]\n"
    "       sila-archiver enqueue migrate [<spaceId>] --source <url>\n"
    "                     [--target active|archived] [--overwrite] [--wait]\n"
    "       sila-archiver enqueue unarchive <spaceId> [--urgent]\n"
    "                     [--archive-key <key>] [--wait]\n"
    "       sila-archiver enqueue --file <job.json> [--urgent] [--wait]\n"
    "\n"
    "Queues a job and prints its id. When a job of the same kind for the\n"
    "same space is already queued or running, prints that job's id instead\n"
    "(--urgent moves a queued one to the urgent lane). --urgent: the urgent\n"
    "lane, served before all normal work. --archive-key: restore that older\n"
    "archive from the manifest's history. --file: a job spec as on the\n"
    "queue "
    "({\"type\":\"unarchive\",\"spaceId\":\"...\",\"priority\":\"urgent\"});\n"
    "its priority picks the lane. With --wait, follows the job (a\n"
    "progress bar on a terminal, plain lines otherwise) and exits 0 when it\n"
    "succeeded (for unarchive: the space is ready), 1 with its error when it\n"
    "failed.\n";

static const char usage_status[] =
    "usage: sila-archiver status <jobId>\n"
    "\n"
    "Prints the job's status hash as JSON (state, type, spaceId, progress,\n"
    "bytesDone, bytesTotal, filesDone, filesTotal, error, result, ...).\n"
    "Exits 1 when the job is unknown.\n";

static const char usage_jobs[] =
    "usage: sila-archiver jobs\n"
    "\n"
    "Prints one JSON line per job that has not succeeded (queued, running,\n"
    "retrying, failed: id, state, type, spaceId, attempts, error,\n"
    "updatedAt), then one per dead letter (\"dead\": true), from Redis.\n";

static const char usage_stats[] =
    "usage: sila-archiver stats\n"
    "\n"
    "Prints, from Redis alone, one JSON object: per lane the jobs waiting\n"
    "and running, jobs delayed (retry or busy space), dead letters, every\n"
    "running job with its phase and progress, the jobs and bytes\n"
    "finished in the last 1, 5, 15 and 60 minutes, and over the same\n"
    "minutes the count, p50 and p95 of the restores' time from the request\n"
    "to ready (timeToReady) and to complete (timeToComplete), in ms;\n"
    "the S3 requests of the jobs finished in those minutes by job type\n"
    "and operation with their estimated cost (requests), the same for\n"
    "today and yesterday (UTC, costPerDay), and the prices used\n"
    "(SILA_PRICE_PER_1K_WRITE, _READ, _DELETE; USD per 1,000 requests).\n";

static const char usage_audit[] =
    "usage: sila-archiver audit [--count N]\n"
    "\n"
    "Prints the latest N (100) entries of the audit trail <prefix>audit,\n"
    "oldest first, one JSON object per line: at, action, outcome, spaceId,\n"
    "jobId, worker, requestedBy, files, bytes, durationMs, result or error.\n";

static const char usage_retry[] =
    "usage: sila-archiver retry <jobId>\n"
    "\n"
    "Queues a failed job again with the same id and spec (attempts start\n"
    "over) and removes it from the dead letters. Exits 2 when the job is\n"
    "not failed.\n";

/* Read and validate a job spec file (at most JOB_JSON_MAX bytes). */
static int load_job_file(const char *path, struct job *out)
{
    struct wk_buf b;
    struct wk_err err;
    char chunk[4096];
    size_t n;
    int rc = 0;
    FILE *f = fopen(path, "rb");

    if (!f) {
        fprintf(stderr, "sila-archiver enqueue: cannot open '%s'\n", path);
        return 2;
    }
    wk_buf_init(&b, JOB_JSON_MAX + 1);
    wk_err_clear(&err);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        if (wk_buf_append(&b, chunk, n, &err) != WK_OK)
            break;
    fclose(f);
    if (err.code == WK_OK)
        job_parse(wk_buf_cstr(&b), b.len, out, &err);
    if (err.code != WK_OK) {
        fprintf(stderr, "sila-archiver enqueue: '%s': %s\n", path, err.msg);
        rc = 2;
    }
    wk_buf_release(&b);
    return rc;
}

/* enqueue --file: type, space and options from the job file fjob. */
static int spec_from_file(const char *file, struct job *fjob,
                          struct q_spec *spec, const char **pos)
{
    int rc;

    if ((rc = load_job_file(file, fjob)) != 0)
        return rc;
    pos[0] = job_type_name(fjob->type);
    pos[1] = fjob->space_id;
    spec->urgent = spec->urgent || fjob->urgent;
    if (fjob->archive_key[0])
        spec->archive_key = fjob->archive_key;
    if (fjob->type == JOB_MIGRATE) {
        spec->source = fjob->source;
        spec->target =
            fjob->target == JOB_TARGET_ARCHIVED ? "archived" : "active";
        spec->overwrite = fjob->overwrite;
    }
    return 0;
}

/* enqueue migrate: --source normalised into source, --target checked, and
 * an empty *space read from the source's space-v1/space.json (fjob holds
 * it). */
static int check_migrate(struct q_spec *spec, char *source, size_t len,
                         struct job *fjob, const char **space)
{
    char why[128];
    struct cfg cfg;
    struct wk_err err;
    int rc;

    if (!job_migrate_url_valid(spec->source, false, source, len, why,
                               sizeof(why))) {
        fprintf(stderr, "sila-archiver enqueue: --source: %s\n", why);
        return 2;
    }
    spec->source = source;
    if (spec->target && strcmp(spec->target, "active") != 0 &&
        strcmp(spec->target, "archived") != 0) {
        fprintf(stderr, "sila-archiver enqueue: --target is active or "
                        "archived\n");
        return 2;
    }
    if ((*space)[0])
        return 0;
    if ((rc = cli_load_cfg(&cfg)) != 0)
        return rc;
    fjob->type = JOB_MIGRATE;
    snprintf(fjob->source, sizeof(fjob->source), "%s", source);
    wk_err_clear(&err);
    if (job_migrate_resolve(fjob, &cfg.store, &err) != WK_OK)
        return cli_fail(&err);
    *space = fjob->space_id;
    return 0;
}

int cli_enqueue(int argc, char **argv)
{
    struct cfg cfg;
    struct q *q = NULL;
    struct wk_err err;
    struct q_spec spec;
    char id[JOB_ID_MAX + 1];
    bool wait = false, created = false;
    const char *file = NULL;
    const char *pos[2] = { NULL, NULL };
    struct job fjob;
    struct cli_args a;
    char source[JOB_SOURCE_MAX + 1] = "", who[128];
    int npos, rc;
    const struct cli_opt opts[] = {
        { "--wait", CLI_OPT_FLAG, &wait, NULL, false },
        { "--urgent", CLI_OPT_FLAG, &spec.urgent, NULL, false },
        { "--archive-key", CLI_OPT_STR, &spec.archive_key, NULL, false },
        { "--file", CLI_OPT_STR, &file, NULL, false },
        { "--source", CLI_OPT_STR, &spec.source, NULL, false },
        { "--target", CLI_OPT_STR, &spec.target, NULL, false },
        { "--overwrite", CLI_OPT_FLAG, &spec.overwrite, NULL, false },
        { NULL, CLI_OPT_FLAG, NULL, NULL, false },
    };
    const struct cli_spec s = { "enqueue", usage_enqueue,     opts, 0,
                                2,         CLI_SAY_UNEXPECTED };

    memset(&spec, 0, sizeof(spec));
    memset(&fjob, 0, sizeof(fjob));
    cli_requester(who, sizeof(who));
    spec.requested_by = who;
    if ((rc = cli_parse(&s, argc, argv, &a)) != CLI_GO)
        return rc;
    npos = a.npos;
    pos[0] = a.pos[0];
    pos[1] = a.pos[1];
    if (file) {
        /* a job file: the same JSON as on the queue */
        if (npos != 0 || spec.archive_key)
            return cli_usage(&s);
        if ((rc = spec_from_file(file, &fjob, &spec, pos)) != 0)
            return rc;
        npos = 2;
    }
    if (npos == 1 && strcmp(pos[0], "migrate") == 0) {
        pos[1] = ""; /* the space id comes from the source */
        npos = 2;
    }
    if (npos != 2)
        return cli_usage(&s);
    if (strcmp(pos[0], "archive") != 0 && strcmp(pos[0], "unarchive") != 0 &&
        strcmp(pos[0], "migrate") != 0) {
        fprintf(stderr, "sila-archiver enqueue: unknown job type '%s'\n",
                pos[0]);
        return 2;
    }
    if ((spec.source || spec.target || spec.overwrite) !=
        (strcmp(pos[0], "migrate") == 0)) {
        fprintf(stderr, "sila-archiver enqueue: --source (required), "
                        "--target and --overwrite are for migrate only\n");
        return 2;
    }
    if (strcmp(pos[0], "migrate") == 0 &&
        (rc = check_migrate(&spec, source, sizeof(source), &fjob, &pos[1])) !=
            0)
        return rc;
    if (!job_space_id_valid(pos[1])) {
        fprintf(stderr,
                "sila-archiver enqueue: '%s' is not a valid spaceId (1-128 "
                "characters of [A-Za-z0-9._-], not '.' or '..')\n",
                pos[1]);
        return 2;
    }
    if (spec.archive_key && strcmp(pos[0], "unarchive") != 0) {
        fprintf(stderr, "sila-archiver enqueue: --archive-key is only for "
                        "unarchive\n");
        return 2;
    }
    spec.type = pos[0];
    spec.space_id = pos[1];
    if ((rc = cli_load_cfg(&cfg)) != 0)
        return rc;
    wk_err_clear(&err);
    if (cli_connect(&cfg, &q, &err) != WK_OK ||
        q_enqueue(q, &spec, id, &created, &err) != WK_OK) {
        q_free(q);
        return cli_fail(&err);
    }
    printf("%s\n", id);
    fflush(stdout);
    if (!created)
        fprintf(stderr,
                "sila-archiver: a %s job for '%s' is already queued "
                "or running: following it\n",
                spec.type, spec.space_id);
    rc = wait ? cli_wait_job(q, id) : 0;
    q_free(q);
    return rc;
}

/* A command that reads or nudges Redis: parse by s, connect, run fn. */
static int
with_queue(const struct cli_spec *s, int argc, char **argv,
           int (*fn)(struct q *q, const struct cli_args *a, void *ud), void *ud)
{
    struct cfg cfg;
    struct q *q = NULL;
    struct wk_err err;
    struct cli_args a;
    int rc;

    if ((rc = cli_parse(s, argc, argv, &a)) != CLI_GO)
        return rc;
    if ((rc = cli_load_cfg(&cfg)) != 0)
        return rc;
    wk_err_clear(&err);
    if (cli_connect(&cfg, &q, &err) != WK_OK)
        return cli_fail(&err);
    rc = fn(q, &a, ud);
    q_free(q);
    return rc;
}

static int do_status(struct q *q, const struct cli_args *a, void *ud)
{
    struct wk_buf b;
    struct wk_err err;
    int rc = 0;

    (void)ud;
    wk_err_clear(&err);
    wk_buf_init(&b, 1u << 20);
    if (q_status_json(q, a->pos[0], &b, &err) != WK_OK)
        rc = cli_fail(&err);
    else
        printf("%s\n", wk_buf_cstr(&b));
    wk_buf_release(&b);
    return rc;
}

int cli_status(int argc, char **argv)
{
    const struct cli_spec s = { "status", usage_status,   NULL, 1,
                                1,        CLI_DASH_IS_POS };
    return with_queue(&s, argc, argv, do_status, NULL);
}

static int do_jobs(struct q *q, const struct cli_args *a, void *ud)
{
    struct wk_buf b;
    struct wk_err err;
    int rc = 0;

    (void)a;
    (void)ud;
    wk_buf_init(&b, 64u << 20);
    wk_err_clear(&err);
    if (q_jobs_report(q, &b, &err) != WK_OK)
        rc = cli_fail(&err);
    else
        fputs(wk_buf_cstr(&b), stdout);
    wk_buf_release(&b);
    return rc;
}

int cli_jobs(int argc, char **argv)
{
    const struct cli_spec s = { "jobs", usage_jobs, NULL, 0, 0, 0 };
    return with_queue(&s, argc, argv, do_jobs, NULL);
}

/* {type: {jobs, requests: {op: n}, requestRetries, bytesIn, bytesOut,
 * costUsd}} of r at prices p; *total += the cost. */
static json_t *requests_json(const struct q_requests *r,
                             const struct acct_prices *p, double *total)
{
    json_t *o = json_object();

    for (size_t i = 0; o && i < r->n_types; i++) {
        const struct q_req_type *t = &r->t[i];
        json_t *ops = json_object();
        double cost = 0;
        for (size_t k = 0; ops && k < t->n_ops; k++) {
            json_object_set_new(ops, t->ops[k].op,
                                json_integer((json_int_t)t->ops[k].n));
            cost += acct_cost_op(p, t->ops[k].op, t->ops[k].n);
        }
        cost = round(cost * 1e6) / 1e6;
        *total += cost;
        json_object_set_new(
            o, t->type,
            json_pack(
                "{s:I, s:I, s:o, s:I, s:I, s:I, s:f}", "jobs",
                (json_int_t)t->jobs, "requestCount", (json_int_t)t->requests,
                "requests", ops ? ops : json_object(), "requestRetries",
                (json_int_t)t->retries, "bytesIn", (json_int_t)t->bytes_in,
                "bytesOut", (json_int_t)t->bytes_out, "costUsd", cost));
    }
    return o;
}

/* requests (by window) and costPerDay (today, yesterday) into o. */
static enum wk_code stats_requests(struct q *q, const unsigned *windows,
                                   size_t n_windows,
                                   const struct acct_prices *p, json_t *o,
                                   struct wk_err *err)
{
    struct q_requests *r = calloc(1, sizeof(*r));
    json_t *win = json_object(), *days = json_object();
    enum wk_code rc = WK_OK;

    if (!r || !win || !days)
        rc = wk_err_set(err, WK_E_NOMEM, "out of memory");
    for (size_t i = 0; i < n_windows && rc == WK_OK; i++) {
        char k[8];
        double total = 0;
        rc = q_requests_window(q, windows[i], r, err);
        if (rc != WK_OK)
            break;
        snprintf(k, sizeof(k), "%um", windows[i]);
        json_object_set_new(win, k, requests_json(r, p, &total));
    }
    for (unsigned d = 0; d < 2 && rc == WK_OK; d++) {
        double total = 0;
        json_t *by;
        rc = q_requests_day(q, d, r, err);
        if (rc != WK_OK)
            break;
        by = requests_json(r, p, &total);
        json_object_set_new(days, d ? "yesterday" : "today",
                            json_pack("{s:f, s:o}", "costUsd",
                                      round(total * 1e6) / 1e6, "byType",
                                      by ? by : json_object()));
    }
    if (rc == WK_OK) {
        json_object_set_new(o, "requests", win);
        json_object_set_new(o, "costPerDay", days);
        json_object_set_new(o, "prices",
                            json_pack("{s:f, s:f, s:f}", "per1kWriteUsd",
                                      p->per_1k[ACCT_WRITE], "per1kReadUsd",
                                      p->per_1k[ACCT_READ], "per1kDeleteUsd",
                                      p->per_1k[ACCT_DELETE]));
        win = days = NULL;
    }
    json_decref(win);
    json_decref(days);
    free(r);
    return rc;
}

static int do_stats(struct q *q, const struct cli_args *a, void *ud)
{
    static const unsigned windows[] = { 1, 5, 15, 60 };
    struct q_depths d;
    struct wk_buf run;
    struct wk_err err;
    json_t *o = json_object(), *lanes = json_object(), *tp = json_object();
    json_t *running = json_array();
    char *text;
    int rc = 0;

    (void)a;
    wk_err_clear(&err);
    wk_buf_init(&run, 16u << 20);
    if (q_depths(q, &d, &err) != WK_OK ||
        q_running_report(q, &run, &err) != WK_OK) {
        rc = cli_fail(&err);
        goto out;
    }
    for (int l = 0; l < 2; l++)
        json_object_set_new(lanes, l ? "urgent" : "normal",
                            json_pack("{s:I, s:I}", "waiting",
                                      (json_int_t)d.waiting[l], "running",
                                      (json_int_t)d.running[l]));
    json_object_set_new(o, "lanes", lanes);
    lanes = NULL;
    json_object_set_new(o, "delayed", json_integer(d.delayed));
    json_object_set_new(o, "dead", json_integer(d.dead));
    for (char *line = run.data, *nl; line && *line; line = nl + 1) {
        json_t *j;
        nl = strchr(line, '\n');
        if (!nl)
            break;
        *nl = '\0';
        j = json_loads(line, 0, NULL);
        if (j)
            json_array_append_new(running, j);
    }
    json_object_set_new(o, "running", running);
    running = NULL;
    for (size_t i = 0; i < sizeof(windows) / sizeof(windows[0]); i++) {
        struct q_throughput t;
        char k[8];
        if (q_throughput(q, windows[i], &t, &err) != WK_OK) {
            rc = cli_fail(&err);
            goto out;
        }
        snprintf(k, sizeof(k), "%um", windows[i]);
        json_object_set_new(tp, k,
                            json_pack("{s:I, s:I, s:I, s:I}", "succeeded",
                                      (json_int_t)t.succeeded, "failed",
                                      (json_int_t)t.failed, "bytes",
                                      (json_int_t)t.bytes, "files",
                                      (json_int_t)t.files));
    }
    json_object_set_new(o, "throughput", tp);
    tp = NULL;
    for (int k = 0; k < 2; k++) {
        /* restores: open to ready, open to complete */
        json_t *lat = json_object();
        json_object_set_new(o, k ? "timeToComplete" : "timeToReady", lat);
        for (size_t i = 0; i < sizeof(windows) / sizeof(windows[0]); i++) {
            struct q_latency l;
            char w[8];
            if (q_latency(q, k == 0, windows[i], &l, &err) != WK_OK) {
                rc = cli_fail(&err);
                goto out;
            }
            snprintf(w, sizeof(w), "%um", windows[i]);
            json_object_set_new(lat, w,
                                json_pack("{s:I, s:I, s:I}", "count",
                                          (json_int_t)l.count, "p50Ms",
                                          (json_int_t)l.p50_ms, "p95Ms",
                                          (json_int_t)l.p95_ms));
        }
    }
    if (stats_requests(q, windows, sizeof(windows) / sizeof(windows[0]), ud, o,
                       &err) != WK_OK) {
        rc = cli_fail(&err);
        goto out;
    }
    text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER |
                             JSON_REAL_PRECISION(10));
    if (text)
        printf("%s\n", text);
    free(text);
out:
    json_decref(o);
    json_decref(lanes);
    json_decref(tp);
    json_decref(running);
    wk_buf_release(&run);
    return rc;
}

int cli_stats(int argc, char **argv)
{
    const struct cli_spec s = { "stats", usage_stats, NULL, 0, 0, 0 };
    struct acct_prices prices;
    struct wk_err err;

    wk_err_clear(&err);
    if (acct_prices_from_env(&prices, &err) != WK_OK)
        return cli_fail(&err);
    return with_queue(&s, argc, argv, do_stats, &prices);
}

static int do_audit(struct q *q, const struct cli_args *a, void *ud)
{
    struct wk_buf b;
    struct wk_err err;
    unsigned n = 100;
    const char *count = *(const char **)ud;
    int rc = 0;

    (void)a;
    /* the count is checked once Redis answers, as it always was */
    if (count) {
        uint64_t v;
        wk_err_clear(&err);
        if (wk_parse_u64(count, &v, &err) != WK_OK || v < 1 || v > 100000) {
            fprintf(stderr, "sila-archiver audit: --count: 1 to 100000\n");
            return 2;
        }
        n = (unsigned)v;
    }
    wk_buf_init(&b, 256u << 20);
    wk_err_clear(&err);
    if (q_audit_tail(q, n, &b, &err) != WK_OK)
        rc = cli_fail(&err);
    else
        fputs(wk_buf_cstr(&b), stdout);
    wk_buf_release(&b);
    return rc;
}

int cli_audit(int argc, char **argv)
{
    const char *count = NULL;
    const struct cli_opt opts[] = {
        { "--count", CLI_OPT_STR, &count, NULL, true },
        { NULL, CLI_OPT_FLAG, NULL, NULL, false },
    };
    const struct cli_spec s = { "audit", usage_audit, opts, 0, 0, 0 };

    return with_queue(&s, argc, argv, do_audit, &count);
}

static int do_retry(struct q *q, const struct cli_args *a, void *ud)
{
    struct wk_err err;

    (void)ud;
    wk_err_clear(&err);
    if (!job_id_valid(a->pos[0])) {
        fprintf(stderr, "sila-archiver retry: bad job id\n");
        return 2;
    }
    if (q_retry(q, a->pos[0], &err) != WK_OK)
        return cli_fail(&err);
    printf("%s\n", a->pos[0]);
    return 0;
}

int cli_retry(int argc, char **argv)
{
    const struct cli_spec s = { "retry", usage_retry, NULL,
                                1,       1,           CLI_DASH_IS_POS };
    return with_queue(&s, argc, argv, do_retry, NULL);
}
