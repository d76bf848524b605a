/*
 * cli_util: what every command shares: the stop flag SIGTERM and SIGINT
 * set, the configuration load and the error-to-exit-code rule (2 for bad
 * usage or configuration, 1 for a failure), the Redis connection, the
 * requester name for the audit trail and the JSON line output.
 */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "worker/cfg.h"
#include "worker/cli.h"
#include "worker/cli_int.h"
#include "worker/q.h"

volatile sig_atomic_t cli_stop;

static void on_signal(int sig)
{
    (void)sig;
    cli_stop = 1;
}

void cli_install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int cli_fail(const struct wk_err *err)
{
    fprintf(stderr, "sila-archiver: %s\n", err->msg);
    return err->code == WK_E_INVAL ? 2 : 1;
}

int cli_load_cfg(struct cfg *cfg)
{
    struct wk_err err;
    wk_err_clear(&err);
    if (cfg_from_env(cfg, &err) != WK_OK) {
        fprintf(stderr, "sila-archiver: configuration: %s\n", err.msg);
        return 2;
    }
    return 0;
}

enum wk_code cli_connect(const struct cfg *cfg, struct q **out,
                         struct wk_err *err)
{
    return q_connect(&cfg->redis, cfg->prefix, CLI_REDIS_TIMEOUT_MS, out, err);
}

void cli_requester(char *buf, size_t len)
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

void cli_print_json_line(json_t *o)
{
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (line)
        printf("%s\n", line);
    free(line);
}

void cli_sleep_ms(unsigned ms)
{
    struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}
