/*
 * cli_ops: the operations: worker (the job loop until SIGTERM),
 * healthcheck (the worker's /healthz), rekey (data keys wrapped again
 * under the current master key, space by space under its lock),
 * migrate-all (one migrate job per space folder of a source) and sweep
 * (archive jobs for idle spaces).
 */
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/wk_log.h"
#include "jobs/job.h"
#include "jobs/job_migrate.h"
#include "jobs/rekey.h"
#include "storage/seal.h"
#include "storage/store.h"
#include "worker/cfg.h"
#include "worker/cli.h"
#include "worker/cli_int.h"
#include "worker/q.h"
#include "worker/q_lock.h"
#include "worker/sweep_run.h"
#include "worker/worker.h"

static const char usage_worker[] =
    "usage: sila-archiver worker\n"
    "\n"
    "Consumes jobs from the Redis stream <prefix>jobs (group sila-workers)\n"
    "and runs them against SILA_STORE (s3://bucket[/prefix] or\n"
    "file:///path). Logs one JSON object per line on stderr. SIGTERM or\n"
    "SIGINT: stop taking jobs, let the current one finish within\n"
    "SILA_SHUTDOWN_GRACE (25s), else hand it back to the queue; exit 0.\n";

int cli_worker(int argc, char **argv)
{
    struct cfg cfg;
    struct wk_err err;
    struct cli_args a;
    int rc;
    const struct cli_spec s = { "worker", usage_worker, NULL, 0, 0, 0 };

    if ((rc = cli_parse(&s, argc, argv, &a)) != CLI_GO)
        return rc;
    if ((rc = cli_load_cfg(&cfg)) != 0)
        return rc;
    wk_err_clear(&err);
    if (worker_run(&cfg, &cli_stop, &err) != WK_OK) {
        WK_LOG(WK_LOG_ERROR, "worker.failed", KV_STR("msg", err.msg));
        return cli_fail(&err);
    }
    return 0;
}

static const char usage_healthcheck[] =
    "usage: sila-archiver healthcheck\n"
    "\n"
    "Asks the worker's health endpoint (http://SILA_METRICS_ADDR/healthz,\n"
    "0.0.0.0 meaning this host) and exits 0 when it answers 200: the worker\n"
    "runs and reaches Redis. For container health checks.\n";

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

int cli_healthcheck(int argc, char **argv)
{
    struct cfg cfg;
    char url[256], host[128];
    const char *colon;
    CURL *c;
    long status = 0;
    struct cli_args a;
    int rc;
    const struct cli_spec s = {
        "healthcheck", usage_healthcheck, NULL, 0, 0, 0
    };

    if ((rc = cli_parse(&s, argc, argv, &a)) != CLI_GO)
        return rc;
    if ((rc = cli_load_cfg(&cfg)) != 0)
        return rc;
    colon = strrchr(cfg.metrics_addr, ':');
    if (!cfg.metrics_addr[0] || !colon) {
        fprintf(stderr, "sila-archiver healthcheck: SILA_METRICS_ADDR is not "
                        "set (the worker serves /healthz there)\n");
        return 2;
    }
    snprintf(host, sizeof(host), "%.*s", (int)(colon - cfg.metrics_addr),
             cfg.metrics_addr);
    snprintf(url, sizeof(url), "http://%s:%s/healthz",
             strcmp(host, "0.0.0.0") == 0 ? "127.0.0.1" : host, colon + 1);
    c = curl_easy_init();
    if (!c)
        return 1;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 3000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    if (status != 200) {
        fprintf(stderr, "sila-archiver healthcheck: %s: %s\n", url,
                status ? "unhealthy" : "no answer");
        return 1;
    }
    return 0;
}

static const char usage_rekey[] =
    "usage: sila-archiver rekey (<spaceId> | --all) [--dry-run]\n"
    "\n"
    "Retires old master keys: the data key of every encrypted archive the\n"
    "space's manifest names (current and history) that an older key of\n"
    "SILA_ENCRYPTION_KEY_FILE wraps is wrapped again under the first key.\n"
    "Only the manifest changes (conditionally, under the space's lock); the\n"
    "archives stay as they are. --all does every space with a manifest.\n"
    "Prints one JSON line per space and a summary; exits 1 when any space\n"
    "failed (a busy space: run again later). Once no manifest names an old\n"
    "key id, that key can be removed from the file.\n";

struct rekey_ids {
    char **v;
    size_t n, cap;
};

static enum wk_code rekey_list_cb(const struct store_entry *e, void *ud,
                                  struct wk_err *err)
{
    struct rekey_ids *ids = ud;
    const char *id = e->key + strlen("metadata/");
    size_t len = strlen(id);

    if (len <= 5 || strcmp(id + len - 5, ".json") != 0)
        return WK_OK;
    if (ids->n == ids->cap) {
        size_t ncap = ids->cap ? ids->cap * 2 : 256;
        char **p = realloc(ids->v, ncap * sizeof(*p));
        if (!p)
            return wk_err_set(err, WK_E_NOMEM, "out of memory");
        ids->v = p;
        ids->cap = ncap;
    }
    ids->v[ids->n] = strndup(id, len - 5);
    if (!ids->v[ids->n])
        return wk_err_set(err, WK_E_NOMEM, "out of memory");
    ids->n++;
    return WK_OK;
}

/* One space under its lock; prints its JSON line. */
static bool rekey_one(struct q *q, struct store *st,
                      const struct seal_keyring *kr, const struct cfg *cfg,
                      const char *space, bool dry_run, unsigned *rewrapped)
{
    char token[256] = "cli-rekey-";
    struct rekey_out ro;
    struct wk_err err;
    bool got = false;
    enum wk_code rc;
    json_t *o = json_object();

    wk_err_clear(&err);
    memset(&ro, 0, sizeof(ro));
    rc = q_lock_token(token + strlen(token), sizeof(token) - strlen(token),
                      &err);
    if (rc == WK_OK)
        rc = q_lock(q, space, token, cfg->lease_ms, &got, &err);
    if (rc == WK_OK && !got)
        rc = wk_err_set(&err, WK_E_CONFLICT,
                        "space '%s' is busy (a job holds its lock): run "
                        "again later",
                        space);
    if (rc == WK_OK)
        rc = job_rekey(st, kr, space, dry_run, &ro, &err);
    if (got) {
        struct wk_err uerr;
        wk_err_clear(&uerr);
        q_unlock(q, space, token, &uerr);
    }
    json_object_set_new(o, "spaceId", json_string(space));
    if (rc == WK_OK) {
        json_object_set_new(o, "sealed", json_integer(ro.sealed));
        json_object_set_new(o, dry_run ? "toRewrap" : "rewrapped",
                            json_integer(ro.rewrapped));
        json_object_set_new(o, "keyId", json_string(seal_keyring_id(kr, 0)));
        if (!ro.has_manifest)
            json_object_set_new(o, "manifest", json_false());
        *rewrapped += ro.rewrapped;
    } else {
        json_object_set_new(o, "error", json_string(err.msg));
    }
    cli_print_json_line(o);
    return rc == WK_OK;
}

int cli_rekey(int argc, char **argv)
{
    struct cfg cfg;
    struct store *st = NULL;
    struct seal_keyring *kr = NULL;
    struct q *q = NULL;
    struct rekey_ids ids = { NULL, 0, 0 };
    struct wk_err err;
    const char *space;
    bool all = false, dry_run = false;
    unsigned rewrapped = 0, failed = 0;
    struct cli_args a;
    int rc;
    const struct cli_opt opts[] = {
        { "--all", CLI_OPT_FLAG, &all, NULL, false },
        { "--dry-run", CLI_OPT_FLAG, &dry_run, NULL, false },
        { NULL, CLI_OPT_FLAG, NULL, NULL, false },
    };
    const struct cli_spec s = { "rekey", usage_rekey, opts, 0, 1, 0 };

    if ((rc = cli_parse(&s, argc, argv, &a)) != CLI_GO)
        return rc;
    space = a.pos[0];
    if (all == (space != NULL) || (space && !job_space_id_valid(space)))
        return cli_usage(&s);
    if ((rc = cli_load_cfg(&cfg)) != 0)
        return rc;
    rc = 1;
    wk_err_clear(&err);
    if (cfg_keys(&cfg, &kr, &err) != WK_OK)
        goto out;
    if (!kr) {
        wk_err_set(&err, WK_E_INVAL, "rekey needs SILA_ENCRYPTION_KEY_FILE");
        goto out;
    }
    if (store_open_url(cfg.store_url, &cfg.store, &st, &err) != WK_OK ||
        cli_connect(&cfg, &q, &err) != WK_OK)
        goto out;
    if (all &&
        store_list(st, "metadata/", NULL, rekey_list_cb, &ids, &err) != WK_OK)
        goto out;
    if (!all)
        failed += !rekey_one(q, st, kr, &cfg, space, dry_run, &rewrapped);
    for (size_t i = 0; i < ids.n && !cli_stop; i++)
        failed += !rekey_one(q, st, kr, &cfg, ids.v[i], dry_run, &rewrapped);
    printf("{\"summary\":true,\"spaces\":%zu,\"%s\":%u,\"failed\":%u,"
           "\"keyId\":\"%s\"}\n",
           all ? ids.n : (size_t)1, dry_run ? "toRewrap" : "rewrapped",
           rewrapped, failed, seal_keyring_id(kr, 0));
    rc = failed ? 1 : 0;
out:
    if (rc != 0 && err.code != WK_OK)
        rc = cli_fail(&err);
    for (size_t i = 0; i < ids.n; i++)
        free(ids.v[i]);
    free(ids.v);
    q_free(q);
    store_free(st);
    seal_keyring_free(kr);
    return rc;
}

static const char usage_migrate_all[] =
    "usage: sila-archiver migrate-all --from <url> [--target active|archived]\n"
    "                                 [--overwrite] [--wait]\n"
    "\n"
    "Enqueues one migrate job per space folder under --from (file:///dir of\n"
    "<spaceId>/ folders, or s3://bucket/prefix), after checking that each\n"
    "folder's space-v1/space.json names the folder. Prints one JSON line per\n"
    "folder and a summary. --wait follows every job and exits 1 if any job\n"
    "failed or any folder was refused. Sources are only read.\n";

/* The migrate job of one folder sp, its id into id. */
static enum wk_code migrate_one(struct q *q, const struct job_migrate_space *sp,
                                const char *target, bool overwrite,
                                char id[JOB_ID_MAX + 1], bool *created,
                                struct wk_err *err)
{
    struct q_spec spec;
    char who[128];

    memset(&spec, 0, sizeof(spec));
    cli_requester(who, sizeof(who));
    spec.requested_by = who;
    spec.type = "migrate";
    spec.space_id = sp->space_id;
    spec.source = sp->source;
    spec.target = target;
    spec.overwrite = overwrite;
    return q_enqueue(q, &spec, id, created, err);
}

int cli_migrate_all(int argc, char **argv)
{
    struct cfg cfg;
    struct q *q = NULL;
    struct wk_err err;
    struct job_migrate_list list;
    const char *from = NULL, *target = NULL;
    bool wait = false, overwrite = false;
    char(*ids)[JOB_ID_MAX + 1] = NULL;
    size_t nids = 0, existing = 0;
    struct cli_args a;
    int rc;
    const struct cli_opt opts[] = {
        { "--from", CLI_OPT_STR, &from, NULL, false },
        { "--target", CLI_OPT_STR, &target, NULL, false },
        { "--overwrite", CLI_OPT_FLAG, &overwrite, NULL, false },
        { "--wait", CLI_OPT_FLAG, &wait, NULL, false },
        { NULL, CLI_OPT_FLAG, NULL, NULL, false },
    };
    const struct cli_spec s = {
        "migrate-all", usage_migrate_all, opts, 0, 0, 0
    };

    memset(&list, 0, sizeof(list));
    if ((rc = cli_parse(&s, argc, argv, &a)) != CLI_GO)
        return rc;
    if (!from || (target && strcmp(target, "active") != 0 &&
                  strcmp(target, "archived") != 0))
        return cli_usage(&s);
    if ((rc = cli_load_cfg(&cfg)) != 0)
        return rc;
    wk_err_clear(&err);
    if (job_migrate_list_spaces(from, &cfg.store, &list, &err) != WK_OK ||
        cli_connect(&cfg, &q, &err) != WK_OK) {
        rc = cli_fail(&err);
        goto out;
    }
    ids = calloc(list.n ? list.n : 1, sizeof(*ids));
    if (!ids) {
        rc = 1;
        goto out;
    }
    for (size_t i = 0; i < list.n; i++) {
        const struct job_migrate_space *sp = &list.v[i];
        json_t *o = json_object();
        json_object_set_new(o, "folder", json_string(sp->name));
        if (sp->code != WK_OK) {
            json_object_set_new(o, "error", json_string(sp->error));
        } else {
            bool created = false;
            if (migrate_one(q, sp, target, overwrite, ids[nids], &created,
                            &err) != WK_OK) {
                json_decref(o);
                rc = cli_fail(&err);
                goto out;
            }
            json_object_set_new(o, "spaceId", json_string(sp->space_id));
            json_object_set_new(o, "jobId", json_string(ids[nids]));
            if (!created) {
                json_object_set_new(o, "existingJob", json_true());
                existing++;
            }
            nids++;
        }
        cli_print_json_line(o);
    }
    printf("{\"folders\":%zu,\"enqueued\":%zu,\"existingJobs\":%zu,"
           "\"refused\":%zu}\n",
           list.n, nids - existing, existing, list.failed);
    fflush(stdout);
    rc = list.failed ? 1 : 0;
    if (wait && nids && cli_wait_jobs(q, ids, nids) != 0)
        rc = 1;
out:
    free(ids);
    job_migrate_list_release(&list);
    q_free(q);
    return rc;
}

static const char usage_sweep[] =
    "usage: sila-archiver sweep [--dry-run] [--every <duration>]\n"
    "                           [--max-jobs <n>] [--idle <duration>]\n"
    "                           [--idle-early <duration>] [--large <size>]\n"
    "                           [--many-files <n>] [--recent <duration>]\n"
    "                           [--time-budget <duration>]\n"
    "                           [--max-spaces <n>] [--from-start]\n"
    "\n"
    "Decides which spaces under active/ of SILA_STORE to archive and queues\n"
    "their archive jobs (deduplicated, like 'enqueue'). A space is archived\n"
    "when idle for --idle (7d), or for --idle-early (1d) when it holds at\n"
    "least --large bytes (100MiB) or --many-files objects (1000); never\n"
    "when written within --recent (1h), locked, with a job pending, or\n"
    "already archived. Last activity: the Redis sorted set\n"
    "<prefix>activity (score = unix seconds of the last write) when it\n"
    "lists the space, else the newest object's LastModified; objects are\n"
    "listed, never read. One sweep at a time across all machines (lock\n"
    "<prefix>sweep:lock): a second one prints a summary with\n"
    "\"lockedOut\":true and exits 0. A sweep starts after the last space\n"
    "the previous one examined (cursor <prefix>sweep:cursor), stops at its\n"
    "budget and saves where it stopped; at the end of active/ it counts a\n"
    "pass and goes on from the first space (one full circle at most).\n"
    "\n"
    "  --dry-run          print one JSON line per space (spaceId, decision,\n"
    "                     reason, idleSeconds, bytes, files), queue nothing\n"
    "  --max-jobs <n>     at most n new jobs per sweep (1000)\n"
    "  --every <duration> sweep again this long after each sweep, until\n"
    "                     SIGTERM (default: once)\n"
    "  --time-budget <duration>  stop before the next space after this\n"
    "                     long (40m; 0: no limit)\n"
    "  --max-spaces <n>   stop after n spaces (0: no limit)\n"
    "  --from-start       ignore the cursor: start at the first space\n"
    "\n"
    "Prints one JSON line per chosen space, then a summary line (scanned,\n"
    "chosen, enqueued, deferred, skippedBy reason, errors, listRequests,\n"
    "cursorBefore, cursorAfter, passCompleted, stoppedBy, durationMs).\n"
    "Environment: SILA_SWEEP_IDLE, SILA_SWEEP_IDLE_EARLY, SILA_SWEEP_LARGE,\n"
    "SILA_SWEEP_MANY_FILES, SILA_SWEEP_RECENT, SILA_SWEEP_MAX_JOBS,\n"
    "SILA_SWEEP_TIME_BUDGET, SILA_SWEEP_MAX_SPACES (flags win). Exits 1\n"
    "when the sweep failed or a space could not be examined.\n";

static enum wk_code set_sweep(void *target, const char *name, const char *value,
                              struct wk_err *err)
{
    return sweep_opts_set(target, name, value, err);
}

int cli_sweep(int argc, char **argv)
{
    struct cfg cfg;
    struct sweep_opts o;
    struct wk_err err;
    struct cli_args a;
    int rc;
    /* the names of sweep_run.c's options; set_sweep() parses their values */
    const struct cli_opt opts[] = {
        { "--dry-run", CLI_OPT_FLAG, &o.dry_run, NULL, false },
        { "--idle", CLI_OPT_FN, &o, set_sweep, false },
        { "--idle-early", CLI_OPT_FN, &o, set_sweep, false },
        { "--large", CLI_OPT_FN, &o, set_sweep, false },
        { "--many-files", CLI_OPT_FN, &o, set_sweep, false },
        { "--recent", CLI_OPT_FN, &o, set_sweep, false },
        { "--max-jobs", CLI_OPT_FN, &o, set_sweep, false },
        { "--every", CLI_OPT_FN, &o, set_sweep, false },
        { "--time-budget", CLI_OPT_FN, &o, set_sweep, false },
        { "--max-spaces", CLI_OPT_FN, &o, set_sweep, false },
        { "--from-start", CLI_OPT_FLAG, &o.from_start, NULL, false },
        { NULL, CLI_OPT_FLAG, NULL, NULL, false },
    };
    const struct cli_spec s = {
        "sweep", usage_sweep, opts,
        0,       0,           CLI_SAY_UNEXPECTED | CLI_USAGE_ON_VALUE
    };

    /* the help first, then the environment's defaults the flags override */
    if (cli_help(&s, argc, argv))
        return 0;
    wk_err_clear(&err);
    if (sweep_opts_from_env(&o, &err) != WK_OK) {
        fprintf(stderr, "sila-archiver: configuration: %s\n", err.msg);
        return 2;
    }
    if ((rc = cli_parse(&s, argc, argv, &a)) != CLI_GO)
        return rc;
    if ((rc = cli_load_cfg(&cfg)) != 0)
        return rc;
    if (!cfg.store_url[0]) {
        fprintf(stderr, "sila-archiver sweep: SILA_STORE is not set\n");
        return 2;
    }
    wk_err_clear(&err);
    if (sweep_run(&cfg, &o, &cli_stop, stdout, &err) != WK_OK) {
        WK_LOG(WK_LOG_ERROR, "sweep.failed",
               KV_STR("code", wk_code_name(err.code)), KV_STR("msg", err.msg));
        return cli_fail(&err);
    }
    return 0;
}
