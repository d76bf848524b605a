/* sila-archiver: process entry and command line. */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/wk_log.h"
#include "common/wk_parse.h"
#include "jobs/job.h"
#include "worker/cfg.h"
#include "worker/q.h"
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
    "  status <jobId>               print a job's status as JSON\n"
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
    "SIGINT: stop taking jobs, finish the current one, exit 0.\n";

static const char usage_enqueue[] =
    "usage: sila-archiver enqueue archive <spaceId> [--wait]\n"
    "\n"
    "Queues a job and prints its id. With --wait, follows the job (a progress\n"
    "bar on a terminal, plain lines otherwise) and exits 0 when it\n"
    "succeeded, 1 with its error when it failed.\n";

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

/* Follow a job until it ends: 0 succeeded, 1 failed. */
static int wait_job(struct q *q, const char *id)
{
    bool tty = isatty(STDOUT_FILENO);
    int last_pct = -1;
    char last_phase[32] = "";
    struct wk_buf b;
    int rc = 1;
    unsigned delay = 100;

    wk_buf_init(&b, 1u << 20);
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
        sleep_ms(200);
    }
    wk_buf_release(&b);
    return rc;
}

static int cmd_enqueue(int argc, char **argv)
{
    struct cfg cfg;
    struct q *q = NULL;
    struct wk_err err;
    char id[33];
    bool wait = false;
    const char *pos[2] = { NULL, NULL };
    int npos = 0, rc;

    if (wants_help(argc, argv)) {
        fputs(usage_enqueue, stdout);
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--wait") == 0)
            wait = true;
        else if (argv[i][0] == '-' || npos == 2) {
            fprintf(stderr, "sila-archiver enqueue: unexpected '%s'\n",
                    argv[i]);
            fputs(usage_enqueue, stderr);
            return 2;
        } else
            pos[npos++] = argv[i];
    }
    if (npos != 2) {
        fputs(usage_enqueue, stderr);
        return 2;
    }
    if (strcmp(pos[0], "archive") != 0) {
        fprintf(stderr, "sila-archiver enqueue: unknown job type '%s'\n",
                pos[0]);
        return 2;
    }
    if (!job_space_id_valid(pos[1])) {
        fprintf(stderr,
                "sila-archiver enqueue: '%s' is not a valid spaceId (1-128 "
                "characters of [A-Za-z0-9._-], not '.' or '..')\n",
                pos[1]);
        return 2;
    }
    if ((rc = load_cfg(&cfg)) != 0)
        return rc;
    wk_err_clear(&err);
    if (q_connect(&cfg.redis, cfg.prefix, 10000, &q, &err) != WK_OK ||
        q_enqueue(q, pos[0], pos[1], id, &err) != WK_OK) {
        q_free(q);
        return fail(&err);
    }
    printf("%s\n", id);
    fflush(stdout);
    rc = wait ? wait_job(q, id) : 0;
    q_free(q);
    return rc;
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

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : NULL;

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
    fprintf(stderr, "sila-archiver: unknown command '%s'\n\n%s", cmd,
            usage_main);
    return 2;
}
