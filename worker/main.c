/* sila-archiver: process entry and command line. */
#include <curl/curl.h>
#include <jansson.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/wk_log.h"
#include "common/wk_parse.h"
#include "jobs/job.h"
#include "jobs/job_migrate.h"
#include "jobs/manifest.h"
#include "jobs/rekey.h"
#include "zip/zcat.h"
#include "zip/zipr.h"
#include "storage/seal.h"
#include "storage/store.h"
#include "storage/store_hash.h"
#include "worker/cfg.h"
#include "worker/q.h"
#include "worker/sweep_run.h"
#include "worker/worker.h"

#define SILA_VERSION "0.1.0"

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static const char usage_main[] =
    "usage: sila-archiver <command> [options]\n"
    "\n"
    "Moves Sila spaces between individual objects (active/<spaceId>/) and\n"
    "one ZIP archive (archived/<spaceId>/), driven by jobs in Redis.\n"
    "\n"
    "commands:\n"
    "  worker                       consume and run jobs until SIGTERM\n"
    "  enqueue archive <spaceId>    queue an archive job, print its id\n"
    "  enqueue unarchive <spaceId>  queue a restore (--urgent: ahead of all)\n"
    "  cat <spaceId> <path>         print one file of a space, archived or "
    "not\n"
    "  status <jobId>               print a job's status as JSON\n"
    "  jobs                         list jobs not succeeded, and dead letters\n"
    "  stats                        queue depths, running jobs, throughput\n"
    "  audit [--count N]            the latest entries of the audit trail\n"
    "  healthcheck                  exit 0 when this host's worker is healthy\n"
    "  presign <spaceId>            print a download URL of the space's ZIP\n"
    "  export <spaceId>             write the space's archive (a ZIP) to "
    "stdout\n"
    "  rekey <spaceId>|--all        wrap archives' data keys under the "
    "current key\n"
    "  retry <jobId>                run a failed (or dead) job again\n"
    "  enqueue migrate --source <u> bring a space folder or prefix in\n"
    "  migrate-all --from <url>     enqueue a migrate job per space folder\n"
    "  sweep                        enqueue archive jobs for idle spaces\n"
    "  version                      print the version\n"
    "\n"
    "'sila-archiver <command> --help' describes a command. Configuration is\n"
    "read from the environment (README.md lists every variable): SILA_STORE,\n"
    "REDIS_URL, SILA_KEY_PREFIX, AWS_* and the SILA_* tuning settings.\n";

static const char usage_worker[] =
    "usage: sila-archiver worker\n"
    "\n"
    "Consumes jobs from the Redis stream <prefix>jobs (group sila-workers)\n"
    "and runs them against SILA_STORE (s3://bucket[/prefix] or\n"
    "file:///path). Logs one JSON object per line on stderr. SIGTERM or\n"
    "SIGINT: stop taking jobs, let the current one finish within\n"
    "SILA_SHUTDOWN_GRACE (25s), else hand it back to the queue; exit 0.\n";

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

static const char usage_cat[] =
    "usage: sila-archiver cat <spaceId> <path> [--archive-key <key>]\n"
    "\n"
    "Writes one file of a space to stdout, e.g. 'space-v1/space.json'. An\n"
    "archived space is read without restoring it: range requests fetch the\n"
    "archive's central directory and the one entry (an encrypted archive\n"
    "is decrypted and authenticated on the way, with the key from\n"
    "SILA_ENCRYPTION_KEY_FILE). Reads SILA_STORE.\n";

static const char usage_export[] =
    "usage: sila-archiver export <spaceId> [--archive-key <key>] > space.zip\n"
    "\n"
    "Writes the space's current archive (or the one named, from its\n"
    "history) to stdout as a plain ZIP: an encrypted archive is decrypted\n"
    "and authenticated chunk by chunk (SILA_ENCRYPTION_KEY_FILE), and the\n"
    "stored object's SHA-256 is checked against the manifest at the end.\n"
    "Exits 1, after a message on stderr, when any check fails: the output\n"
    "is then incomplete and must be discarded. Refuses a terminal.\n";

static const char usage_status[] =
    "usage: sila-archiver status <jobId>\n"
    "\n"
    "Prints the job's status hash as JSON (state, type, spaceId, progress,\n"
    "bytesDone, bytesTotal, filesDone, filesTotal, error, result, ...).\n"
    "Exits 1 when the job is unknown.\n";

static bool wants_help(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return true;
    return false;
}

static int fail(const struct wk_err *err)
{
    fprintf(stderr, "sila-archiver: %s\n", err->msg);
    return err->code == WK_E_INVAL ? 2 : 1;
}

static int load_cfg(struct cfg *cfg)
{
    struct wk_err err;
    wk_err_clear(&err);
    if (cfg_from_env(cfg, &err) != WK_OK) {
        fprintf(stderr, "sila-archiver: configuration: %s\n", err.msg);
        return 2;
    }
    return 0;
}

static int cmd_worker(int argc, char **argv)
{
    struct cfg cfg;
    struct wk_err err;
    int rc;

    if (wants_help(argc, argv)) {
        fputs(usage_worker, stdout);
        return 0;
    }
    if (argc > 1) {
        fputs(usage_worker, stderr);
        return 2;
    }
    if ((rc = load_cfg(&cfg)) != 0)
        return rc;
    wk_err_clear(&err);
    if (worker_run(&cfg, &stop_flag, &err) != WK_OK) {
        WK_LOG(WK_LOG_ERROR, "worker.failed", KV_STR("msg", err.msg));
        return fail(&err);
    }
    return 0;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static void human(uint64_t n, char *buf, size_t len)
{
    if (n >= (1u << 20))
        snprintf(buf, len, "%.1f MiB", (double)n / (1u << 20));
    else if (n >= 1024)
        snprintf(buf, len, "%.1f KiB", (double)n / 1024);
    else
        snprintf(buf, len, "%llu B", (unsigned long long)n);
}

static json_int_t int_of(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? json_integer_value(v) : 0;
}

static const char *str_of(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : "";
}

/* Follow a job until it ends: 0 succeeded, 1 failed. As PROTOCOL.md
 * advises: subscribe to the job's channel first, then read the status hash
 * (the truth) again at every event, so the end is seen when it is
 * published; every WAIT_POLL_MS anyway (pub/sub is lossy), and every
 * 200 ms when the subscription cannot be had. */
#define WAIT_POLL_MS 1000
static int wait_job(struct q *q, const char *id)
{
    bool tty = isatty(STDOUT_FILENO);
    int last_pct = -1;
    char last_phase[32] = "";
    struct wk_buf b;
    struct q *sub = NULL;
    struct wk_err serr;
    int rc = 1;
    unsigned delay = 100;

    wk_buf_init(&b, 1u << 20);
    wk_err_clear(&serr);
    (void)q_subscribe_job(q, id, &sub, &serr); /* none: poll */
    while (!stop_flag) {
        struct wk_err err;
        json_t *o;
        const char *state;

        wk_err_clear(&err);
        if (q_status_json(q, id, &b, &err) != WK_OK) {
            if (err.code != WK_E_NET) {
                fprintf(stderr, "sila-archiver: %s\n", err.msg);
                break;
            }
            /* Redis away: keep waiting, reconnect with backoff */
            sleep_ms(delay);
            delay = delay * 2 > 5000 ? 5000 : delay * 2;
            wk_err_clear(&err);
            q_reconnect(q, &err);
            continue;
        }
        delay = 100;
        o = json_loads(wk_buf_cstr(&b), 0, NULL);
        if (!o) {
            fprintf(stderr, "sila-archiver: bad status JSON\n");
            break;
        }
        state = str_of(o, "state");
        int pct = (int)int_of(o, "progress");
        const char *phase = str_of(o, "phase");
        if (strcmp(state, "succeeded") == 0)
            pct = 100;
        if (pct != last_pct || strcmp(phase, last_phase) != 0) {
            char bd[32], bt[32];
            human((uint64_t)int_of(o, "bytesDone"), bd, sizeof(bd));
            human((uint64_t)int_of(o, "bytesTotal"), bt, sizeof(bt));
            if (tty) {
                char bar[31];
                int fill = pct * 30 / 100;
                for (int i = 0; i < 30; i++)
                    bar[i] = i < fill ? '#' : '.';
                bar[30] = '\0';
                printf("\r[%s] %3d%%  %s / %s  %lld/%lld files  %-10s", bar,
                       pct, bd, bt, (long long)int_of(o, "filesDone"),
                       (long long)int_of(o, "filesTotal"),
                       phase[0] ? phase : state);
            } else {
                printf("progress %d%% %s/%s bytes=%s/%s files=%lld/%lld\n", pct,
                       state, phase, bd, bt, (long long)int_of(o, "filesDone"),
                       (long long)int_of(o, "filesTotal"));
            }
            fflush(stdout);
            last_pct = pct;
            snprintf(last_phase, sizeof(last_phase), "%s", phase);
        }
        if (strcmp(state, "succeeded") == 0 || strcmp(state, "failed") == 0) {
            if (tty)
                printf("\n");
            if (strcmp(state, "succeeded") == 0) {
                char *res = json_dumps(json_object_get(o, "result"),
                                       JSON_INDENT(2) | JSON_PRESERVE_ORDER);
                printf("job %s succeeded\n%s\n", id, res ? res : "{}");
                free(res);
                rc = 0;
            } else {
                fprintf(stderr, "job %s failed: %s\n", id, str_of(o, "error"));
                rc = 1;
            }
            json_decref(o);
            break;
        }
        json_decref(o);
        if (sub) {
            bool got;
            wk_err_clear(&serr);
            if (q_sub_wait(sub, WAIT_POLL_MS, &got, &serr) != WK_OK) {
                q_free(sub); /* lost: poll from here on */
                sub = NULL;
            }
        } else {
            sleep_ms(200);
        }
    }
    q_free(sub);
    wk_buf_release(&b);
    return rc;
}

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

/* "cli:<user>@<host>": who enqueued, for the audit trail. */
static void cli_requester(char *buf, size_t len)
{
    char host[64] = "localhost";
    const char *user = getenv("USER");

    gethostname(host, sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    if (user && *user)
        snprintf(buf, len, "cli:%.40s@%s", user, host);
    else
        snprintf(buf, len, "cli:uid%u@%s", (unsigned)getuid(), host);
}

static int cmd_enqueue(int argc, char **argv)
{
    struct cfg cfg;
    struct q *q = NULL;
    struct wk_err err;
    struct q_spec spec;
    char id[JOB_ID_MAX + 1];
    bool wait = false, created = false;
    const char *pos[2] = { NULL, NULL };
    const char *file = NULL;
    struct job fjob;
    char source[JOB_SOURCE_MAX + 1] = "", who[128];
    int npos = 0, rc;

    memset(&spec, 0, sizeof(spec));
    memset(&fjob, 0, sizeof(fjob));
    cli_requester(who, sizeof(who));
    spec.requested_by = who;
    if (wants_help(argc, argv)) {
        fputs(usage_enqueue, stdout);
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--wait") == 0) {
            wait = true;
        } else if (strcmp(argv[i], "--urgent") == 0) {
            spec.urgent = true;
        } else if (strcmp(argv[i], "--archive-key") == 0 && i + 1 < argc) {
            spec.archive_key = argv[++i];
        } else if (strcmp(argv[i], "--file") == 0 && i + 1 < argc) {
            file = argv[++i];
        } else if (strcmp(argv[i], "--source") == 0 && i + 1 < argc) {
            spec.source = argv[++i];
        } else if (strcmp(argv[i], "--target") == 0 && i + 1 < argc) {
            spec.target = argv[++i];
        } else if (strcmp(argv[i], "--overwrite") == 0) {
            spec.overwrite = true;
        } else if (argv[i][0] == '-' || npos == 2) {
            fprintf(stderr, "sila-archiver enqueue: unexpected '%s'\n",
                    argv[i]);
            fputs(usage_enqueue, stderr);
            return 2;
        } else {
            pos[npos++] = argv[i];
        }
    }
    if (file) {
        /* a job file: the same JSON as on the queue */
        if (npos != 0 || spec.archive_key) {
            fputs(usage_enqueue, stderr);
            return 2;
        }
        if ((rc = load_job_file(file, &fjob)) != 0)
            return rc;
        pos[0] = job_type_name(fjob.type);
        pos[1] = fjob.space_id;
        npos = 2;
        spec.urgent = spec.urgent || fjob.urgent;
        if (fjob.archive_key[0])
            spec.archive_key = fjob.archive_key;
        if (fjob.type == JOB_MIGRATE) {
            spec.source = fjob.source;
            spec.target =
                fjob.target == JOB_TARGET_ARCHIVED ? "archived" : "active";
            spec.overwrite = fjob.overwrite;
        }
    }
    if (npos == 1 && strcmp(pos[0], "migrate") == 0) {
        pos[1] = ""; /* the space id comes from the source */
        npos = 2;
    }
    if (npos != 2) {
        fputs(usage_enqueue, stderr);
        return 2;
    }
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
    if (strcmp(pos[0], "migrate") == 0) {
        char why[128];
        if (!job_migrate_url_valid(spec.source, false, source, sizeof(source),
                                   why, sizeof(why))) {
            fprintf(stderr, "sila-archiver enqueue: --source: %s\n", why);
            return 2;
        }
        spec.source = source;
        if (spec.target && strcmp(spec.target, "active") != 0 &&
            strcmp(spec.target, "archived") != 0) {
            fprintf(stderr, "sila-archiver enqueue: --target is active or "
                            "archived\n");
            return 2;
        }
        if (!pos[1][0]) {
            /* read space-v1/space.json of the source for the id */
            struct cfg c2;
            struct wk_err e2;
            if ((rc = load_cfg(&c2)) != 0)
                return rc;
            fjob.type = JOB_MIGRATE;
            snprintf(fjob.source, sizeof(fjob.source), "%s", source);
            wk_err_clear(&e2);
            if (job_migrate_resolve(&fjob, &c2.store, &e2) != WK_OK)
                return fail(&e2);
            pos[1] = fjob.space_id;
        }
    }
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
    if ((rc = load_cfg(&cfg)) != 0)
        return rc;
    wk_err_clear(&err);
    if (q_connect(&cfg.redis, cfg.prefix, 10000, &q, &err) != WK_OK ||
        q_enqueue(q, &spec, id, &created, &err) != WK_OK) {
        q_free(q);
        return fail(&err);
    }
    printf("%s\n", id);
    fflush(stdout);
    if (!created)
        fprintf(stderr,
                "sila-archiver: a %s job for '%s' is already queued "
                "or running: following it\n",
                spec.type, spec.space_id);
    rc = wait ? wait_job(q, id) : 0;
    q_free(q);
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

static int cmd_migrate_all(int argc, char **argv)
{
    struct cfg cfg;
    struct q *q = NULL;
    struct wk_err err;
    struct job_migrate_list list;
    const char *from = NULL, *target = NULL;
    bool wait = false, overwrite = false;
    char(*ids)[JOB_ID_MAX + 1] = NULL;
    size_t nids = 0, existing = 0;
    int rc;

    memset(&list, 0, sizeof(list));
    if (wants_help(argc, argv)) {
        fputs(usage_migrate_all, stdout);
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--from") == 0 && i + 1 < argc)
            from = argv[++i];
        else if (strcmp(argv[i], "--target") == 0 && i + 1 < argc)
            target = argv[++i];
        else if (strcmp(argv[i], "--overwrite") == 0)
            overwrite = true;
        else if (strcmp(argv[i], "--wait") == 0)
            wait = true;
        else {
            fputs(usage_migrate_all, stderr);
            return 2;
        }
    }
    if (!from || (target && strcmp(target, "active") != 0 &&
                  strcmp(target, "archived") != 0)) {
        fputs(usage_migrate_all, stderr);
        return 2;
    }
    if ((rc = load_cfg(&cfg)) != 0)
        return rc;
    wk_err_clear(&err);
    if (job_migrate_list_spaces(from, &cfg.store, &list, &err) != WK_OK ||
        q_connect(&cfg.redis, cfg.prefix, 10000, &q, &err) != WK_OK) {
        rc = fail(&err);
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
        char *line;
        json_object_set_new(o, "folder", json_string(sp->name));
        if (sp->code != WK_OK) {
            json_object_set_new(o, "error", json_string(sp->error));
        } else {
            struct q_spec spec;
            bool created = false;
            char who[128];
            memset(&spec, 0, sizeof(spec));
            cli_requester(who, sizeof(who));
            spec.requested_by = who;
            spec.type = "migrate";
            spec.space_id = sp->space_id;
            spec.source = sp->source;
            spec.target = target;
            spec.overwrite = overwrite;
            if (q_enqueue(q, &spec, ids[nids], &created, &err) != WK_OK) {
                json_decref(o);
                rc = fail(&err);
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
        line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(o);
        if (line)
            printf("%s\n", line);
        free(line);
    }
    printf("{\"folders\":%zu,\"enqueued\":%zu,\"existingJobs\":%zu,"
           "\"refused\":%zu}\n",
           list.n, nids - existing, existing, list.failed);
    fflush(stdout);
    rc = list.failed ? 1 : 0;
    if (wait && nids) {
        size_t done = 0, failed = 0, last = (size_t)-1;
        while (!stop_flag) {
            done = failed = 0;
            for (size_t i = 0; i < nids; i++) {
                char st[32] = "";
                wk_err_clear(&err);
                if (q_state(q, ids[i], st, sizeof(st), &err) != WK_OK) {
                    wk_err_clear(&err);
                    q_reconnect(q, &err);
                    continue;
                }
                if (strcmp(st, "succeeded") == 0)
                    done++;
                else if (strcmp(st, "failed") == 0) {
                    done++;
                    failed++;
                }
            }
            if (done != last)
                printf("progress %zu/%zu jobs done, %zu failed\n", done, nids,
                       failed);
            fflush(stdout);
            last = done;
            if (done == nids)
                break;
            sleep_ms(300);
        }
        if (failed || done != nids)
            rc = 1;
    }
out:
    free(ids);
    job_migrate_list_release(&list);
    q_free(q);
    return rc;
}

static enum wk_code write_out(FILE *f, const void *p, size_t n,
                              struct wk_err *err)
{
    if (fwrite(p, 1, n, f) != n)
        return wk_err_set(err, WK_E_IO, "write to stdout failed");
    return WK_OK;
}

struct cat_out {
    FILE *f;
    uint64_t left; /* an entry of an archive is never larger than the
                      archive's uncompressedSize (a zip bomb is) */
};

static enum wk_code cat_sink(const void *p, size_t n, void *ud,
                             struct wk_err *err)
{
    struct cat_out *o = ud;
    if (n > o->left)
        return wk_err_set(err, WK_E_CORRUPT,
                          "the entry is larger than the archive's "
                          "uncompressedSize: stopped (zip bomb?)");
    o->left -= n;
    return write_out(o->f, p, n, err);
}

/* The archive of manifest m named key ("" or NULL: the current one) into
 * *a, and its data key into *dk when it is sealed (*sealed). */
static enum wk_code pick_archive(const struct cfg *cfg, const struct mf *m,
                                 const char *key, struct mf_archive *a,
                                 struct seal_dk *dk, bool *sealed,
                                 struct wk_err *err)
{
    struct seal_keyring *kr = NULL;
    enum wk_code rc;

    *sealed = false;
    if (!mf_find_archive(m, key ? key : "", a))
        return key && key[0]
                   ? wk_err_set(err, WK_E_NOTFOUND,
                                "archive '%s' is not in the manifest", key)
                   : wk_err_set(err, WK_E_NOTFOUND, "space '%s' has no archive",
                                m->space_id);
    if (!a->enc.on)
        return WK_OK;
    rc = cfg_keys(cfg, &kr, err);
    if (rc == WK_OK)
        rc = mf_open_key(a, m->space_id, kr, dk, err);
    seal_keyring_free(kr);
    *sealed = rc == WK_OK;
    return rc;
}

static const char usage_presign[] =
    "usage: sila-archiver presign <spaceId> [--expires SECONDS]\n"
    "\n"
    "Prints a URL that downloads the space's current archive (a ZIP) with a\n"
    "plain GET, valid for --expires seconds (3600; at most 604800, 7 days):\n"
    "S3 query-string signing (SigV4) with the worker's credentials, no\n"
    "request to the store but reading the manifest. Treat it as a secret.\n";

static int cmd_presign(int argc, char **argv)
{
    struct cfg cfg;
    struct store *st = NULL;
    struct wk_err err;
    struct wk_buf mb, url;
    struct mf m;
    char mkey[JOB_SPACE_ID_MAX + 32];
    const char *space = NULL;
    uint64_t expires = 3600;
    int rc = 1;

    if (wants_help(argc, argv)) {
        fputs(usage_presign, stdout);
        return 0;
    }
    wk_err_clear(&err);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--expires") == 0 && i + 1 < argc) {
            if (wk_parse_u64(argv[++i], &expires, &err) != WK_OK ||
                expires < 1 || expires > 604800) {
                fprintf(stderr, "sila-archiver presign: --expires: 1 to "
                                "604800 seconds\n");
                return 2;
            }
        } else if (argv[i][0] == '-' || space) {
            fputs(usage_presign, stderr);
            return 2;
        } else {
            space = argv[i];
        }
    }
    if (!space || !job_space_id_valid(space)) {
        fputs(usage_presign, stderr);
        return 2;
    }
    if ((rc = load_cfg(&cfg)) != 0)
        return rc;
    rc = 1;
    wk_buf_init(&mb, 1u << 20);
    wk_buf_init(&url, 64u << 10);
    if (store_open_url(cfg.store_url, &cfg.store, &st, &err) != WK_OK)
        goto out;
    mf_key(space, mkey, sizeof(mkey));
    if (store_get_all(st, mkey, &mb, &err) != WK_OK ||
        mf_parse(mb.data, mb.len, &m, &err) != WK_OK)
        goto out;
    if (!m.archive_key[0]) {
        wk_err_set(&err, WK_E_NOTFOUND, "space '%s' has no archive", space);
        goto out;
    }
    if (m.enc.on) {
        /* the URL would serve ciphertext nobody outside can open */
        wk_err_set(&err, WK_E_INVAL,
                   "the archive of space '%s' is encrypted client-side (key "
                   "%s): a presigned URL would serve ciphertext; use "
                   "'sila-archiver export %s > space.zip'",
                   space, m.enc.key_id, space);
        goto out;
    }
    if (store_presign(st, m.archive_key, (unsigned)expires, &url, &err) !=
        WK_OK)
        goto out;
    printf("%s\n", wk_buf_cstr(&url));
    rc = 0;
out:
    if (rc != 0)
        rc = fail(&err);
    store_free(st);
    wk_buf_release(&mb);
    wk_buf_release(&url);
    return rc;
}

static int cmd_cat(int argc, char **argv)
{
    struct cfg cfg;
    struct store *st = NULL;
    struct wk_err err;
    struct wk_buf mb, key;
    struct mf *m = NULL;
    struct cat_out out = { stdout, UINT64_MAX };
    const char *archive_key = NULL;
    const char *pos[2] = { NULL, NULL };
    int npos = 0, rc;
    char mkey[JOB_SPACE_ID_MAX + 32];

    if (wants_help(argc, argv)) {
        fputs(usage_cat, stdout);
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--archive-key") == 0 && i + 1 < argc)
            archive_key = argv[++i];
        else if (argv[i][0] == '-' || npos == 2) {
            fputs(usage_cat, stderr);
            return 2;
        } else
            pos[npos++] = argv[i];
    }
    if (npos != 2) {
        fputs(usage_cat, stderr);
        return 2;
    }
    if (!job_space_id_valid(pos[0]) || !zipr_name_valid(pos[1], NULL, 0)) {
        fprintf(stderr, "sila-archiver cat: bad spaceId or path\n");
        return 2;
    }
    if ((rc = load_cfg(&cfg)) != 0)
        return rc;
    if (!cfg.store_url[0]) {
        fprintf(stderr, "sila-archiver cat: SILA_STORE is not set\n");
        return 2;
    }
    wk_err_clear(&err);
    wk_buf_init(&mb, 1u << 20);
    wk_buf_init(&key, 4096);
    m = calloc(1, sizeof(*m));
    rc = 1;
    if (!m || store_open_url(cfg.store_url, &cfg.store, &st, &err) != WK_OK)
        goto out;
    mf_key(pos[0], mkey, sizeof(mkey));
    if (store_get_all(st, mkey, &mb, &err) == WK_OK) {
        if (mf_parse(mb.data, mb.len, m, &err) != WK_OK)
            goto out;
    } else if (err.code == WK_E_NOTFOUND) {
        wk_err_clear(&err); /* never archived: read the active object */
        m->state = MF_ACTIVE;
    } else {
        goto out;
    }
    if (mf_in_archive(m) || archive_key) {
        struct mf_archive a;
        struct seal_dk dk;
        bool sealed = false;
        enum wk_code zrc;
        if (pick_archive(&cfg, m, archive_key, &a, &dk, &sealed, &err) != WK_OK)
            goto out;
        out.left = a.uncompressed_size;
        zrc = zcat_read(st, a.key, a.size, sealed ? &dk : NULL, pos[1],
                        cat_sink, &out, NULL, &err);
        seal_dk_wipe(&dk);
        if (zrc != WK_OK)
            goto out;
    } else {
        if (wk_buf_appendf(&key, &err, "active/%s/%s", pos[0], pos[1]) !=
                WK_OK ||
            store_get(st, wk_buf_cstr(&key), 0, UINT64_MAX, cat_sink, &out,
                      &err) != WK_OK)
            goto out;
    }
    if (fflush(stdout) != 0) {
        wk_err_set(&err, WK_E_IO, "write to stdout failed");
        goto out;
    }
    rc = 0;
out:
    if (rc != 0)
        rc = fail(&err);
    store_free(st);
    wk_buf_release(&mb);
    wk_buf_release(&key);
    free(m);
    return rc;
}

/* export: the stored archive streamed through SHA-256 (and, sealed,
 * through the chunk opener) to stdout. */
struct export_out {
    FILE *f;
    struct store_sha256 *hash;
    struct seal_dec *dec; /* NULL: a plain ZIP */
    struct wk_buf plain;
};

static enum wk_code export_sink(const void *p, size_t n, void *ud,
                                struct wk_err *err)
{
    struct export_out *o = ud;
    const char *s = p;

    store_sha256_update(o->hash, p, n);
    if (!o->dec)
        return write_out(o->f, p, n, err);
    /* a chunk at a time: plaintext is written once authenticated */
    while (n > 0) {
        size_t want = seal_dec_want(o->dec);
        size_t take = want && n > want ? want : n;
        enum wk_code rc;
        wk_buf_reset(&o->plain);
        rc = seal_dec_update(o->dec, s, take, &o->plain, err);
        if (rc == WK_OK && o->plain.len)
            rc = write_out(o->f, o->plain.data, o->plain.len, err);
        if (rc != WK_OK)
            return rc;
        s += take;
        n -= take;
    }
    return WK_OK;
}

static int cmd_export(int argc, char **argv)
{
    struct cfg cfg;
    struct store *st = NULL;
    struct wk_err err;
    struct wk_buf mb;
    struct mf *m = NULL;
    struct mf_archive a;
    struct seal_dk dk;
    struct export_out out;
    const char *space = NULL, *archive_key = NULL;
    char mkey[JOB_SPACE_ID_MAX + 32], sha[65];
    bool sealed = false;
    int rc;

    if (wants_help(argc, argv)) {
        fputs(usage_export, stdout);
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--archive-key") == 0 && i + 1 < argc)
            archive_key = argv[++i];
        else if (argv[i][0] == '-' || space) {
            fputs(usage_export, stderr);
            return 2;
        } else
            space = argv[i];
    }
    if (!space || !job_space_id_valid(space)) {
        fputs(usage_export, stderr);
        return 2;
    }
    if (isatty(STDOUT_FILENO)) {
        fprintf(stderr, "sila-archiver export: stdout is a terminal; "
                        "redirect it to a file\n");
        return 2;
    }
    if ((rc = load_cfg(&cfg)) != 0)
        return rc;
    rc = 1;
    wk_err_clear(&err);
    memset(&out, 0, sizeof(out));
    memset(&dk, 0, sizeof(dk));
    out.f = stdout;
    wk_buf_init(&mb, 1u << 20);
    wk_buf_init(&out.plain, SEAL_CHUNK_MAX);
    m = calloc(1, sizeof(*m));
    if (!m) {
        wk_err_set(&err, WK_E_NOMEM, "out of memory");
        goto out;
    }
    if (store_open_url(cfg.store_url, &cfg.store, &st, &err) != WK_OK)
        goto out;
    mf_key(space, mkey, sizeof(mkey));
    if (store_get_all(st, mkey, &mb, &err) != WK_OK ||
        mf_parse(mb.data, mb.len, m, &err) != WK_OK ||
        pick_archive(&cfg, m, archive_key, &a, &dk, &sealed, &err) != WK_OK ||
        store_sha256_new(&out.hash, &err) != WK_OK ||
        (sealed && seal_dec_new(&dk, a.size, &out.dec, &err) != WK_OK))
        goto out;
    if (store_get(st, a.key, 0, UINT64_MAX, export_sink, &out, &err) != WK_OK ||
        (out.dec && seal_dec_final(out.dec, &err) != WK_OK))
        goto out;
    store_sha256_final_hex(out.hash, sha);
    if (strcmp(sha, a.checksum) != 0) {
        wk_err_set(&err, WK_E_CORRUPT,
                   "archive '%s': SHA-256 %s does not match the manifest's %s",
                   a.key, sha, a.checksum);
        goto out;
    }
    if (fflush(stdout) != 0) {
        wk_err_set(&err, WK_E_IO, "write to stdout failed");
        goto out;
    }
    rc = 0;
out:
    if (rc != 0)
        rc = fail(&err);
    seal_dk_wipe(&dk);
    seal_dec_free(out.dec);
    store_sha256_free(out.hash);
    wk_buf_release(&out.plain);
    wk_buf_release(&mb);
    store_free(st);
    free(m);
    return rc;
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
    {
        char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (line)
            printf("%s\n", line);
        free(line);
    }
    json_decref(o);
    return rc == WK_OK;
}

static int cmd_rekey(int argc, char **argv)
{
    struct cfg cfg;
    struct store *st = NULL;
    struct seal_keyring *kr = NULL;
    struct q *q = NULL;
    struct rekey_ids ids = { NULL, 0, 0 };
    struct wk_err err;
    const char *space = NULL;
    bool all = false, dry_run = false;
    unsigned rewrapped = 0, failed = 0;
    int rc;

    if (wants_help(argc, argv)) {
        fputs(usage_rekey, stdout);
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--all") == 0)
            all = true;
        else if (strcmp(argv[i], "--dry-run") == 0)
            dry_run = true;
        else if (argv[i][0] == '-' || space) {
            fputs(usage_rekey, stderr);
            return 2;
        } else
            space = argv[i];
    }
    if (all == (space != NULL) || (space && !job_space_id_valid(space))) {
        fputs(usage_rekey, stderr);
        return 2;
    }
    if ((rc = load_cfg(&cfg)) != 0)
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
        q_connect(&cfg.redis, cfg.prefix, 10000, &q, &err) != WK_OK)
        goto out;
    if (all &&
        store_list(st, "metadata/", NULL, rekey_list_cb, &ids, &err) != WK_OK)
        goto out;
    if (!all)
        failed += !rekey_one(q, st, kr, &cfg, space, dry_run, &rewrapped);
    for (size_t i = 0; i < ids.n && !stop_flag; i++)
        failed += !rekey_one(q, st, kr, &cfg, ids.v[i], dry_run, &rewrapped);
    printf("{\"summary\":true,\"spaces\":%zu,\"%s\":%u,\"failed\":%u,"
           "\"keyId\":\"%s\"}\n",
           all ? ids.n : (size_t)1, dry_run ? "toRewrap" : "rewrapped",
           rewrapped, failed, seal_keyring_id(kr, 0));
    rc = failed ? 1 : 0;
out:
    if (rc != 0 && err.code != WK_OK)
        rc = fail(&err);
    for (size_t i = 0; i < ids.n; i++)
        free(ids.v[i]);
    free(ids.v);
    q_free(q);
    store_free(st);
    seal_keyring_free(kr);
    return rc;
}

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
    "running job with its phase and progress, and the jobs and bytes\n"
    "finished in the last 1, 5, 15 and 60 minutes.\n";

static const char usage_audit[] =
    "usage: sila-archiver audit [--count N]\n"
    "\n"
    "Prints the latest N (100) entries of the audit trail <prefix>audit,\n"
    "oldest first, one JSON object per line: at, action, outcome, spaceId,\n"
    "jobId, worker, requestedBy, files, bytes, durationMs, result or error.\n";

static const char usage_healthcheck[] =
    "usage: sila-archiver healthcheck\n"
    "\n"
    "Asks the worker's health endpoint (http://SILA_METRICS_ADDR/healthz,\n"
    "0.0.0.0 meaning this host) and exits 0 when it answers 200: the worker\n"
    "runs and reaches Redis. For container health checks.\n";

static const char usage_retry[] =
    "usage: sila-archiver retry <jobId>\n"
    "\n"
    "Queues a failed job again with the same id and spec (attempts start\n"
    "over) and removes it from the dead letters. Exits 2 when the job is\n"
    "not failed.\n";

static int with_queue(int argc, char **argv, const char *usage, int nargs,
                      int (*fn)(struct q *q, char **args))
{
    struct cfg cfg;
    struct q *q = NULL;
    struct wk_err err;
    int rc;

    if (wants_help(argc, argv)) {
        fputs(usage, stdout);
        return 0;
    }
    if (argc != nargs + 1) {
        fputs(usage, stderr);
        return 2;
    }
    if ((rc = load_cfg(&cfg)) != 0)
        return rc;
    wk_err_clear(&err);
    if (q_connect(&cfg.redis, cfg.prefix, 10000, &q, &err) != WK_OK)
        return fail(&err);
    rc = fn(q, argv + 1);
    q_free(q);
    return rc;
}

static int do_jobs(struct q *q, char **args)
{
    struct wk_buf b;
    struct wk_err err;
    int rc = 0;
    (void)args;
    wk_buf_init(&b, 64u << 20);
    wk_err_clear(&err);
    if (q_jobs_report(q, &b, &err) != WK_OK)
        rc = fail(&err);
    else
        fputs(wk_buf_cstr(&b), stdout);
    wk_buf_release(&b);
    return rc;
}

static int do_stats(struct q *q, char **args)
{
    static const unsigned windows[] = { 1, 5, 15, 60 };
    struct q_depths d;
    struct wk_buf run;
    struct wk_err err;
    json_t *o = json_object(), *lanes = json_object(), *tp = json_object();
    json_t *running = json_array();
    char *text;
    int rc = 0;

    (void)args;
    wk_err_clear(&err);
    wk_buf_init(&run, 16u << 20);
    if (q_depths(q, &d, &err) != WK_OK ||
        q_running_report(q, &run, &err) != WK_OK) {
        rc = fail(&err);
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
            rc = fail(&err);
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
    text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
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

static int do_audit(struct q *q, char **args)
{
    struct wk_buf b;
    struct wk_err err;
    unsigned n = 100;
    int rc = 0;

    if (args[0]) {
        uint64_t v;
        wk_err_clear(&err);
        if (wk_parse_u64(args[0], &v, &err) != WK_OK || v < 1 || v > 100000) {
            fprintf(stderr, "sila-archiver audit: --count: 1 to 100000\n");
            return 2;
        }
        n = (unsigned)v;
    }
    wk_buf_init(&b, 256u << 20);
    wk_err_clear(&err);
    if (q_audit_tail(q, n, &b, &err) != WK_OK)
        rc = fail(&err);
    else
        fputs(wk_buf_cstr(&b), stdout);
    wk_buf_release(&b);
    return rc;
}

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

static int cmd_healthcheck(int argc, char **argv)
{
    struct cfg cfg;
    char url[256], host[128];
    const char *colon;
    CURL *c;
    long status = 0;
    int rc;

    if (wants_help(argc, argv)) {
        fputs(usage_healthcheck, stdout);
        return 0;
    }
    if (argc != 1) {
        fputs(usage_healthcheck, stderr);
        return 2;
    }
    if ((rc = load_cfg(&cfg)) != 0)
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

static int do_retry(struct q *q, char **args)
{
    struct wk_err err;
    wk_err_clear(&err);
    if (!job_id_valid(args[0])) {
        fprintf(stderr, "sila-archiver retry: bad job id\n");
        return 2;
    }
    if (q_retry(q, args[0], &err) != WK_OK)
        return fail(&err);
    printf("%s\n", args[0]);
    return 0;
}

static int cmd_status(int argc, char **argv)
{
    struct cfg cfg;
    struct q *q = NULL;
    struct wk_err err;
    struct wk_buf b;
    int rc;

    if (wants_help(argc, argv)) {
        fputs(usage_status, stdout);
        return 0;
    }
    if (argc != 2) {
        fputs(usage_status, stderr);
        return 2;
    }
    if ((rc = load_cfg(&cfg)) != 0)
        return rc;
    wk_err_clear(&err);
    wk_buf_init(&b, 1u << 20);
    if (q_connect(&cfg.redis, cfg.prefix, 10000, &q, &err) != WK_OK ||
        q_status_json(q, argv[1], &b, &err) != WK_OK) {
        rc = fail(&err);
    } else {
        printf("%s\n", wk_buf_cstr(&b));
        rc = 0;
    }
    wk_buf_release(&b);
    q_free(q);
    return rc;
}

static const char usage_sweep[] =
    "usage: sila-archiver sweep [--dry-run] [--every <duration>]\n"
    "                           [--max-jobs <n>] [--idle <duration>]\n"
    "                           [--idle-early <duration>] [--large <size>]\n"
    "                           [--many-files <n>] [--recent <duration>]\n"
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
    "\"lockedOut\":true and exits 0.\n"
    "\n"
    "  --dry-run          print one JSON line per space (spaceId, decision,\n"
    "                     reason, idleSeconds, bytes, files), queue nothing\n"
    "  --max-jobs <n>     at most n new jobs per sweep (1000)\n"
    "  --every <duration> sweep again this long after each sweep, until\n"
    "                     SIGTERM (default: once)\n"
    "\n"
    "Prints one JSON line per chosen space, then a summary line (scanned,\n"
    "chosen, enqueued, deferred, skippedBy reason, errors). Environment:\n"
    "SILA_SWEEP_IDLE, SILA_SWEEP_IDLE_EARLY, SILA_SWEEP_LARGE,\n"
    "SILA_SWEEP_MANY_FILES, SILA_SWEEP_RECENT, SILA_SWEEP_MAX_JOBS (flags\n"
    "win). Exits 1 when the sweep failed or a space could not be examined.\n";

static int cmd_sweep(int argc, char **argv)
{
    struct cfg cfg;
    struct sweep_opts o;
    struct wk_err err;
    int rc;

    if (wants_help(argc, argv)) {
        fputs(usage_sweep, stdout);
        return 0;
    }
    wk_err_clear(&err);
    if (sweep_opts_from_env(&o, &err) != WK_OK) {
        fprintf(stderr, "sila-archiver: configuration: %s\n", err.msg);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        enum wk_code oc = WK_E_NOTFOUND;
        if (strcmp(argv[i], "--dry-run") == 0) {
            o.dry_run = true;
            continue;
        }
        if (i + 1 < argc)
            oc = sweep_opts_set(&o, argv[i], argv[i + 1], &err);
        if (oc == WK_OK) {
            i++;
            continue;
        }
        if (oc == WK_E_INVAL)
            fprintf(stderr, "sila-archiver sweep: %s\n", err.msg);
        else
            fprintf(stderr, "sila-archiver sweep: unexpected '%s'\n", argv[i]);
        fputs(usage_sweep, stderr);
        return 2;
    }
    if ((rc = load_cfg(&cfg)) != 0)
        return rc;
    if (!cfg.store_url[0]) {
        fprintf(stderr, "sila-archiver sweep: SILA_STORE is not set\n");
        return 2;
    }
    wk_err_clear(&err);
    if (sweep_run(&cfg, &o, &stop_flag, stdout, &err) != WK_OK) {
        WK_LOG(WK_LOG_ERROR, "sweep.failed",
               KV_STR("code", wk_code_name(err.code)), KV_STR("msg", err.msg));
        return fail(&err);
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : NULL;

#ifdef __GLIBC__
    /* The big buffers (upload parts, read batches) come from mmap and go
     * back to the system when freed. glibc's adaptive threshold would
     * serve them from the heap after the first free and keep them there,
     * so the resident size would creep past the configured budget. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    mallopt(M_ARENA_MAX, 2);
#endif
    install_signals();
    if (!cmd || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 ||
        strcmp(cmd, "help") == 0) {
        fputs(usage_main, cmd ? stdout : stderr);
        return cmd ? 0 : 2;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("sila-archiver %s\n", SILA_VERSION);
        return 0;
    }
    if (strcmp(cmd, "worker") == 0)
        return cmd_worker(argc - 1, argv + 1);
    if (strcmp(cmd, "enqueue") == 0)
        return cmd_enqueue(argc - 1, argv + 1);
    if (strcmp(cmd, "status") == 0)
        return cmd_status(argc - 1, argv + 1);
    if (strcmp(cmd, "cat") == 0)
        return cmd_cat(argc - 1, argv + 1);
    if (strcmp(cmd, "migrate-all") == 0)
        return cmd_migrate_all(argc - 1, argv + 1);
    if (strcmp(cmd, "jobs") == 0)
        return with_queue(argc - 1, argv + 1, usage_jobs, 0, do_jobs);
    if (strcmp(cmd, "stats") == 0)
        return with_queue(argc - 1, argv + 1, usage_stats, 0, do_stats);
    if (strcmp(cmd, "audit") == 0) {
        /* "audit --count N": the count is the one argument */
        if (argc == 4 && strcmp(argv[2], "--count") == 0) {
            char *a[] = { argv[0], argv[1], argv[3], NULL };
            return with_queue(2, a + 1, usage_audit, 1, do_audit);
        }
        if (argc == 2) {
            char *a[] = { argv[0], argv[1], NULL, NULL };
            return with_queue(1, a + 1, usage_audit, 0, do_audit);
        }
        fputs(usage_audit, wants_help(argc - 1, argv + 1) ? stdout : stderr);
        return wants_help(argc - 1, argv + 1) ? 0 : 2;
    }
    if (strcmp(cmd, "presign") == 0)
        return cmd_presign(argc - 1, argv + 1);
    if (strcmp(cmd, "export") == 0)
        return cmd_export(argc - 1, argv + 1);
    if (strcmp(cmd, "rekey") == 0)
        return cmd_rekey(argc - 1, argv + 1);
    if (strcmp(cmd, "healthcheck") == 0)
        return cmd_healthcheck(argc - 1, argv + 1);
    if (strcmp(cmd, "retry") == 0)
        return with_queue(argc - 1, argv + 1, usage_retry, 1, do_retry);
    if (strcmp(cmd, "sweep") == 0)
        return cmd_sweep(argc - 1, argv + 1);
    fprintf(stderr, "sila-archiver: unknown command '%s'\n\n%s", cmd,
            usage_main);
    return 2;
}
