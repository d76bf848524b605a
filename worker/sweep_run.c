/* sweep_run: the Redis side of a sweep run: its lock, its cursor and
 * budget, the activity index, busy spaces and the enqueue of its
 * decisions (see sweep_run.h). */
#include "worker/sweep_run.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/wk_log.h"
#include "common/wk_parse.h"
#include "storage/store.h"
#include "worker/q.h"
#include "worker/q_report.h"
#include "worker/q_lock.h"
#include "worker/q_sweep.h"

#define SWEEP_EVERY_MIN_MS 1000ULL
#define SWEEP_EVERY_MAX_MS (30ULL * 86400 * 1000)
#define SWEEP_DURATION_MAX (100ULL * 365 * 86400 * 1000) /* ms */

void sweep_opts_default(struct sweep_opts *o)
{
    memset(o, 0, sizeof(*o));
    sweep_policy_default(&o->policy);
    o->max_jobs = 1000;
    o->time_budget_ms = SWEEP_TIME_BUDGET_MS;
}

/* ---- options: one table for the environment and the flags ---- */

enum opt_kind { OPT_SECONDS, OPT_SIZE, OPT_COUNT, OPT_MS, OPT_BUDGET_MS };

struct opt_def {
    const char *flag;
    const char *env; /* NULL: a flag only */
    enum opt_kind kind;
    uint64_t lo, hi;
};

static const struct opt_def opt_defs[] = {
    { "--idle", "SILA_SWEEP_IDLE", OPT_SECONDS, 0, SWEEP_DURATION_MAX },
    { "--idle-early", "SILA_SWEEP_IDLE_EARLY", OPT_SECONDS, 0,
      SWEEP_DURATION_MAX },
    { "--large", "SILA_SWEEP_LARGE", OPT_SIZE, 1, UINT64_MAX },
    { "--many-files", "SILA_SWEEP_MANY_FILES", OPT_COUNT, 1, UINT64_MAX },
    { "--recent", "SILA_SWEEP_RECENT", OPT_SECONDS, 0, SWEEP_DURATION_MAX },
    { "--max-jobs", "SILA_SWEEP_MAX_JOBS", OPT_COUNT, 1, 1000000 },
    { "--every", NULL, OPT_MS, SWEEP_EVERY_MIN_MS, SWEEP_EVERY_MAX_MS },
    { "--time-budget", "SILA_SWEEP_TIME_BUDGET", OPT_BUDGET_MS, 0,
      SWEEP_DURATION_MAX },
    { "--max-spaces", "SILA_SWEEP_MAX_SPACES", OPT_COUNT, 0, 1000000000000ULL },
};

static void opt_store(struct sweep_opts *o, size_t which, uint64_t v)
{
    switch (which) {
    case 0:
        o->policy.idle_s = (int64_t)v;
        break;
    case 1:
        o->policy.early_idle_s = (int64_t)v;
        break;
    case 2:
        o->policy.large_bytes = v;
        break;
    case 3:
        o->policy.many_files = v;
        break;
    case 4:
        o->policy.recent_s = (int64_t)v;
        break;
    case 5:
        o->max_jobs = v;
        break;
    case 6:
        o->every_ms = v;
        break;
    case 7:
        o->time_budget_ms = v;
        break;
    default:
        o->max_spaces = v;
        break;
    }
}

static enum wk_code opt_parse(const struct opt_def *d, const char *name,
                              const char *v, uint64_t *out, struct wk_err *err)
{
    uint64_t n = 0;
    enum wk_code rc;

    switch (d->kind) {
    case OPT_SECONDS:
    case OPT_MS:
    case OPT_BUDGET_MS:
        rc = wk_parse_duration_ms(v, &n, NULL);
        break;
    case OPT_SIZE:
        rc = wk_parse_size(v, &n, NULL);
        break;
    default:
        rc = wk_parse_u64(v, &n, NULL);
        break;
    }
    if (rc == WK_OK && n >= d->lo && n <= d->hi) {
        *out = d->kind == OPT_SECONDS ? n / 1000 : n;
        return WK_OK;
    }
    switch (d->kind) {
    case OPT_SECONDS:
        return wk_err_set(err, WK_E_INVAL,
                          "%s: expected a duration (\"30m\", \"1h\", "
                          "\"7d\"), got '%s'",
                          name, v);
    case OPT_MS:
        return wk_err_set(err, WK_E_INVAL,
                          "%s: expected a duration from 1s to 30d (\"10m\", "
                          "\"1h\"), got '%s'",
                          name, v);
    case OPT_BUDGET_MS:
        return wk_err_set(err, WK_E_INVAL,
                          "%s: expected a duration (\"40m\", \"2h\"; 0 for "
                          "none), got '%s'",
                          name, v);
    case OPT_SIZE:
        return wk_err_set(err, WK_E_INVAL,
                          "%s: expected a size of at least 1 byte "
                          "(\"100MiB\", \"1G\"), got '%s'",
                          name, v);
    default:
        return wk_err_set(err, WK_E_INVAL,
                          "%s: expected a number from %llu to %llu, got '%s'",
                          name, (unsigned long long)d->lo,
                          (unsigned long long)d->hi, v);
    }
}

enum wk_code sweep_opts_from_env(struct sweep_opts *o, struct wk_err *err)
{
    sweep_opts_default(o);
    for (size_t i = 0; i < sizeof(opt_defs) / sizeof(opt_defs[0]); i++) {
        const char *v = opt_defs[i].env ? getenv(opt_defs[i].env) : NULL;
        uint64_t n;
        if (!v || !*v)
            continue;
        if (opt_parse(&opt_defs[i], opt_defs[i].env, v, &n, err) != WK_OK)
            return WK_E_INVAL;
        opt_store(o, i, n);
    }
    return WK_OK;
}

enum wk_code sweep_opts_set(struct sweep_opts *o, const char *flag,
                            const char *value, struct wk_err *err)
{
    for (size_t i = 0; i < sizeof(opt_defs) / sizeof(opt_defs[0]); i++) {
        uint64_t n;
        if (strcmp(flag, opt_defs[i].flag) != 0)
            continue;
        if (opt_parse(&opt_defs[i], flag, value, &n, err) != WK_OK)
            return WK_E_INVAL;
        opt_store(o, i, n);
        return WK_OK;
    }
    return wk_err_set(err, WK_E_NOTFOUND, "unknown option '%s'", flag);
}

/* ---- one sweep ---- */

struct run {
    const struct cfg *cfg;
    const struct sweep_opts *o;
    struct q *q;
    FILE *out;
    volatile sig_atomic_t *stop;
    struct sweep_result *res;
    uint64_t planned; /* chosen spaces within max_jobs so far */
    int64_t t0_ms;    /* monotonic start, for the time budget */
    bool out_of_time; /* more() said no */
    bool locked;      /* we hold the sweep lock */
    char token[256];
    struct timespec renewed; /* last time the lock was renewed */
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static enum wk_code write_line(FILE *out, json_t *o, struct wk_err *err)
{
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    int bad;

    json_decref(o);
    if (!s)
        return wk_err_set(err, WK_E_NOMEM, "sweep: cannot encode a line");
    bad = fputs(s, out) == EOF || fputc('\n', out) == EOF;
    free(s);
    if (bad)
        return wk_err_set(err, WK_E_IO, "sweep: cannot write the plan");
    return WK_OK;
}

static json_t *int_or_null(bool known, uint64_t v)
{
    return known ? json_integer((json_int_t)v) : json_null();
}

static enum wk_code hook_tick(void *ud, struct wk_err *err)
{
    struct run *r = ud;
    struct timespec now;
    int64_t since;
    bool held = false;
    enum wk_code rc;

    if (r->stop && *r->stop)
        return wk_err_set(err, WK_E_CANCELLED, "sweep: shutdown requested");
    if (!r->locked)
        return WK_OK;
    clock_gettime(CLOCK_MONOTONIC, &now);
    since = (int64_t)(now.tv_sec - r->renewed.tv_sec) * 1000 +
            (now.tv_nsec - r->renewed.tv_nsec) / 1000000;
    if (since < (int64_t)r->cfg->lease_ms / 3)
        return WK_OK;
    rc = q_named_lock_renew(r->q, SWEEP_LOCK_NAME, r->token, r->cfg->lease_ms,
                            &held, err);
    if (rc != WK_OK)
        return rc;
    if (!held) {
        r->locked = false;
        WK_LOG(WK_LOG_ERROR, "sweep.lock_lost", KV_STR("token", r->token));
        return wk_err_set(err, WK_E_CONFLICT,
                          "sweep lock lost (expired or taken over): "
                          "stopped");
    }
    r->renewed = now;
    return WK_OK;
}

/* The time budget, checked before each space. */
static bool hook_more(void *ud)
{
    struct run *r = ud;

    if (!r->o->time_budget_ms ||
        mono_ms() - r->t0_ms < (int64_t)r->o->time_budget_ms)
        return true;
    r->out_of_time = true;
    return false;
}

static enum wk_code hook_activity(void *ud, const char *const *ids, size_t n,
                                  int64_t *last, bool *present,
                                  struct wk_err *err)
{
    struct run *r = ud;
    return q_activity_scores(r->q, ids, n, last, present, err);
}

static enum wk_code hook_busy(void *ud, const char *space_id, bool *locked,
                              bool *job_pending, struct wk_err *err)
{
    struct run *r = ud;
    char pending[JOB_ID_MAX + 1];
    enum wk_code rc =
        q_space_busy(r->q, space_id, locked, pending, sizeof(pending), err);
    *job_pending = rc == WK_OK && pending[0];
    return rc;
}

static enum wk_code hook_report(void *ud, const struct sweep_item *it,
                                struct wk_err *err)
{
    struct run *r = ud;
    struct sweep_result *res = r->res;
    char id[JOB_ID_MAX + 1] = "", when[32];
    bool created = false, deferred = false;
    json_t *o;
    enum wk_code rc;

    if (it->reason == SWEEP_R_ERROR)
        WK_LOG(WK_LOG_WARN, "sweep.space_failed",
               KV_STR("space_id", it->space_id), KV_STR("msg", it->error));
    if (it->archive) {
        if (r->planned >= r->o->max_jobs) {
            deferred = true;
            res->deferred++;
        } else if (r->o->dry_run) {
            r->planned++;
        } else {
            struct q_spec spec;
            memset(&spec, 0, sizeof(spec));
            spec.type = "archive";
            spec.requested_by = "sweep";
            spec.space_id = it->space_id;
            rc = q_enqueue(r->q, &spec, id, &created, err);
            if (rc != WK_OK)
                return rc;
            if (created) {
                res->enqueued++;
                r->planned++;
            } else {
                res->existing++;
            }
            WK_LOG(WK_LOG_INFO, "sweep.job_enqueued",
                   KV_STR("space_id", it->space_id), KV_STR("job_id", id),
                   KV_STR("reason", sweep_reason_name(it->reason)),
                   KV_BOOL("created", created));
        }
    }
    if (!r->o->dry_run && !it->archive)
        return WK_OK;
    o = json_object();
    if (!o)
        return wk_err_set(err, WK_E_NOMEM, "sweep: out of memory");
    json_object_set_new(o, "spaceId", json_string(it->space_id));
    json_object_set_new(o, "decision",
                        json_string(it->archive ? "archive" : "keep"));
    json_object_set_new(o, "reason",
                        json_string(sweep_reason_name(it->reason)));
    json_object_set_new(o, "idleSeconds",
                        it->idle_s >= 0 ? json_integer(it->idle_s)
                                        : json_null());
    json_object_set_new(o, "bytes", int_or_null(it->listed, it->bytes));
    json_object_set_new(o, "files", int_or_null(it->listed, it->files));
    if (it->last_activity > 0 && it->idle_s >= 0) {
        wk_fmt_rfc3339((time_t)it->last_activity, when, sizeof(when));
        json_object_set_new(o, "lastActivity", json_string(when));
        json_object_set_new(o, "activitySource",
                            json_string(it->indexed ? "index" : "objects"));
    }
    if (it->reason == SWEEP_R_ERROR)
        json_object_set_new(o, "error", json_string(it->error));
    if (deferred)
        json_object_set_new(o, "deferred", json_true());
    if (id[0]) {
        json_object_set_new(o, "jobId", json_string(id));
        json_object_set_new(o, "created", json_boolean(created));
    }
    return write_line(r->out, o, err);
}

static enum wk_code print_summary(const struct run *r, const char *holder,
                                  struct wk_err *err)
{
    const struct sweep_result *res = r->res;
    json_t *o = json_object(), *skipped = json_object(),
           *chosen = json_object();

    if (!o || !skipped || !chosen) {
        json_decref(o);
        json_decref(skipped);
        json_decref(chosen);
        return wk_err_set(err, WK_E_NOMEM, "sweep: out of memory");
    }
    for (int i = 0; i < SWEEP_R_COUNT; i++) {
        bool is_archive =
            i == SWEEP_R_IDLE || i == SWEEP_R_LARGE || i == SWEEP_R_MANY_FILES;
        json_object_set_new(is_archive ? chosen : skipped,
                            sweep_reason_name((enum sweep_reason)i),
                            json_integer((json_int_t)res->totals.by_reason[i]));
    }
    json_object_set_new(o, "summary", json_true());
    json_object_set_new(o, "dryRun", json_boolean(r->o->dry_run));
    json_object_set_new(o, "lockedOut", json_boolean(res->locked_out));
    if (res->locked_out)
        json_object_set_new(o, "lockHolder", json_string(holder));
    json_object_set_new(o, "interrupted", json_boolean(res->interrupted));
    json_object_set_new(o, "activityIndex",
                        json_integer((json_int_t)res->index_members));
    json_object_set_new(o, "scanned",
                        json_integer((json_int_t)res->totals.scanned));
    json_object_set_new(o, "indexed",
                        json_integer((json_int_t)res->totals.indexed));
    json_object_set_new(o, "listed",
                        json_integer((json_int_t)res->totals.listed));
    json_object_set_new(o, "chosen",
                        json_integer((json_int_t)res->totals.chosen));
    json_object_set_new(o, "chosenBy", chosen);
    json_object_set_new(o, "enqueued", json_integer((json_int_t)res->enqueued));
    json_object_set_new(o, "alreadyQueued",
                        json_integer((json_int_t)res->existing));
    json_object_set_new(o, "deferred", json_integer((json_int_t)res->deferred));
    json_object_set_new(
        o, "skipped",
        json_integer((json_int_t)(res->totals.scanned - res->totals.chosen)));
    json_object_set_new(o, "skippedBy", skipped);
    json_object_set_new(
        o, "errors",
        json_integer((json_int_t)res->totals.by_reason[SWEEP_R_ERROR]));
    json_object_set_new(o, "maxJobs", json_integer((json_int_t)r->o->max_jobs));
    json_object_set_new(o, "listCalls",
                        json_integer((json_int_t)res->totals.list_calls));
    json_object_set_new(o, "listRequests",
                        json_integer((json_int_t)res->totals.list_requests));
    json_object_set_new(o, "cursorBefore", json_string(res->cursor_before));
    json_object_set_new(
        o, "cursorAfter",
        json_string(res->locked_out ? res->cursor_before : res->totals.cursor));
    json_object_set_new(o, "cursorSaved", json_boolean(res->cursor_saved));
    json_object_set_new(o, "passCompleted",
                        json_boolean(res->totals.pass_completed));
    json_object_set_new(o, "passes", json_integer((json_int_t)res->passes));
    json_object_set_new(o, "stoppedBy",
                        res->stopped_by ? json_string(res->stopped_by)
                                        : json_null());
    json_object_set_new(o, "timeBudgetMs",
                        json_integer((json_int_t)r->o->time_budget_ms));
    json_object_set_new(o, "maxSpaces",
                        json_integer((json_int_t)r->o->max_spaces));
    json_object_set_new(o, "durationMs", json_integer(res->duration_ms));
    return write_line(r->out, o, err);
}

/* After the scan, with the lock held: the cursor where the next sweep
 * starts, and the pass counts (the spaces before the end belong to the
 * pass that ended, those after it to the next). Not in a dry run. */
static enum wk_code save_cursor(struct run *r, const struct q_sweep_cursor *cur,
                                int64_t now, struct wk_err *err)
{
    const struct sweep_totals *t = &r->res->totals;
    struct q_sweep_cursor nc = *cur;
    enum wk_code rc;

    if (r->o->dry_run)
        return WK_OK;
    if (r->o->from_start || !nc.pass_started_at) {
        nc.pass_started_at = now; /* a pass begins with this sweep */
        nc.pass_spaces = 0;
    }
    snprintf(nc.after, sizeof(nc.after), "%s", t->cursor);
    if (t->pass_completed) {
        nc.passes++;
        nc.last_pass_at = now;
        nc.last_pass_spaces = nc.pass_spaces + t->scanned_at_end;
        nc.pass_started_at = now;
        nc.pass_spaces = t->scanned - t->scanned_at_end;
    } else {
        nc.pass_spaces += t->scanned;
    }
    nc.runs++;
    rc = q_sweep_cursor_save(r->q, SWEEP_LOCK_NAME, r->token, cur->after, &nc,
                             now, &r->res->cursor_saved, err);
    if (rc == WK_OK && !r->res->cursor_saved)
        WK_LOG(WK_LOG_WARN, "sweep.cursor_not_saved", KV_STR("token", r->token),
               KV_STR("cursor", t->cursor),
               KV_STR("why", "the sweep lock or the cursor changed hands; "
                             "the next sweep repeats this part"));
    return rc;
}

enum wk_code sweep_once(const struct cfg *cfg, const struct sweep_opts *o,
                        struct store *st, struct q *q, FILE *out,
                        volatile sig_atomic_t *stop, struct sweep_result *res,
                        struct wk_err *err)
{
    struct run r;
    struct sweep_hooks h;
    struct sweep_range range;
    struct q_sweep_cursor cur;
    char holder[256] = "";
    int64_t t0 = mono_ms(), now = (int64_t)time(NULL);
    enum wk_code rc;
    struct wk_err e2;

    memset(res, 0, sizeof(*res));
    memset(&cur, 0, sizeof(cur));
    r = (struct run){ .cfg = cfg,
                      .o = o,
                      .q = q,
                      .out = out,
                      .stop = stop,
                      .res = res,
                      .t0_ms = t0 };
    if (!o->dry_run) {
        bool got = false;
        rc = q_lock_token(r.token, sizeof(r.token), err);
        if (rc == WK_OK)
            rc = q_named_lock(q, SWEEP_LOCK_NAME, r.token, cfg->lease_ms, &got,
                              holder, sizeof(holder), err);
        if (rc != WK_OK)
            return rc;
        if (!got) {
            res->locked_out = true;
            WK_LOG(WK_LOG_INFO, "sweep.locked_out", KV_STR("holder", holder));
            rc = print_summary(&r, holder, err);
            fflush(out);
            return rc;
        }
        r.locked = true;
        clock_gettime(CLOCK_MONOTONIC, &r.renewed);
    }
    rc = q_activity_count(q, &res->index_members, err);
    if (rc == WK_OK)
        rc = q_sweep_cursor_load(q, &cur, err);
    if (rc != WK_OK)
        goto out;
    if (!o->from_start)
        snprintf(res->cursor_before, sizeof(res->cursor_before), "%s",
                 cur.after);
    res->passes = cur.passes;
    WK_LOG(WK_LOG_INFO, "sweep.started", KV_BOOL("dry_run", o->dry_run),
           KV_INT("activity_index", res->index_members),
           KV_INT("max_jobs", o->max_jobs),
           KV_STR("cursor", res->cursor_before));
    memset(&h, 0, sizeof(h));
    h.ud = &r;
    h.activity = res->index_members ? hook_activity : NULL;
    h.busy = hook_busy;
    h.report = hook_report;
    h.tick = hook_tick;
    h.more = hook_more;
    range = (struct sweep_range){ res->cursor_before, true, o->max_spaces };
    rc = sweep_scan_range(st, &o->policy, now, &range, &h, &res->totals, err);
    if (rc == WK_E_CANCELLED && stop && *stop) {
        res->interrupted = true;
        res->stopped_by = "signal";
        wk_err_clear(err);
        rc = WK_OK;
    } else if (rc == WK_OK && res->totals.budget_stop) {
        res->stopped_by = r.out_of_time ? "time-budget" : "max-spaces";
    }
    if (rc == WK_OK && res->totals.pass_completed)
        res->passes++;
    if (rc == WK_OK && r.locked)
        rc = save_cursor(&r, &cur, now, err);
out:
    if (r.locked) {
        wk_err_clear(&e2);
        if (q_named_unlock(q, SWEEP_LOCK_NAME, r.token, &e2) != WK_OK)
            WK_LOG(WK_LOG_WARN, "sweep.unlock_failed", KV_STR("msg", e2.msg));
    }
    res->duration_ms = mono_ms() - t0;
    if (rc == WK_OK) {
        rc = print_summary(&r, holder, err);
        WK_LOG(WK_LOG_INFO, "sweep.finished",
               KV_INT("scanned", res->totals.scanned),
               KV_INT("chosen", res->totals.chosen),
               KV_INT("enqueued", res->enqueued),
               KV_INT("errors", res->totals.by_reason[SWEEP_R_ERROR]),
               KV_BOOL("interrupted", res->interrupted),
               KV_INT("list_requests", res->totals.list_requests),
               KV_STR("cursor_before", res->cursor_before),
               KV_STR("cursor_after", res->totals.cursor),
               KV_BOOL("pass_completed", res->totals.pass_completed),
               KV_BOOL("cursor_saved", res->cursor_saved),
               KV_STR("stopped_by", res->stopped_by ? res->stopped_by : "end"),
               KV_INT("duration_ms", res->duration_ms));
    }
    fflush(out);
    return rc;
}

/* Sleep up to ms, waking early when *stop is set. */
static void nap(uint64_t ms, volatile sig_atomic_t *stop)
{
    int64_t end = mono_ms() + (int64_t)ms;
    while (!(stop && *stop) && mono_ms() < end) {
        struct timespec ts = { 0, 100 * 1000000L };
        nanosleep(&ts, NULL);
    }
}

enum wk_code sweep_run(const struct cfg *cfg, const struct sweep_opts *o,
                       volatile sig_atomic_t *stop, FILE *out,
                       struct wk_err *err)
{
    struct store *st = NULL;
    struct q *q = NULL;
    struct sweep_result res;
    enum wk_code rc;

    if (!cfg->store_url[0])
        return wk_err_set(err, WK_E_INVAL, "SILA_STORE is not set");
    rc = store_open_url(cfg->store_url, &cfg->store, &st, err);
    if (rc == WK_OK)
        rc = q_connect(&cfg->redis, cfg->prefix, 10000, &q, err);
    if (rc != WK_OK)
        goto out;
    if (!o->every_ms) {
        rc = sweep_once(cfg, o, st, q, out, stop, &res, err);
        if (rc == WK_OK && res.totals.by_reason[SWEEP_R_ERROR])
            rc = wk_err_set(
                err, WK_E_IO,
                "%llu spaces could not be examined (reason "
                "\"error\" in the plan and the log)",
                (unsigned long long)res.totals.by_reason[SWEEP_R_ERROR]);
        goto out;
    }
    while (!(stop && *stop)) {
        struct wk_err e2;
        wk_err_clear(&e2);
        if (sweep_once(cfg, o, st, q, out, stop, &res, &e2) != WK_OK) {
            WK_LOG(WK_LOG_ERROR, "sweep.failed",
                   KV_STR("code", wk_code_name(e2.code)),
                   KV_STR("msg", e2.msg));
            if (e2.code == WK_E_NET) {
                wk_err_clear(&e2);
                q_reconnect(q, &e2); /* failing again is logged next round */
            }
        }
        nap(o->every_ms, stop);
    }
out:
    q_free(q);
    store_free(st);
    return rc;
}
