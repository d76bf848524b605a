/*
 * cli_progress: following jobs from the command line: one job's status
 * rendered as a progress bar on a terminal (plain "progress" lines
 * otherwise) until it ends, and a set of jobs counted until all ended.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/wk_buf.h"
#include "worker/cli_int.h"
#include "worker/q.h"
#include "worker/q_report.h"

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

/* One line of progress for status o, when it moved since the last. */
static void render(json_t *o, bool tty, int *last_pct, char *last_phase,
                   size_t last_len)
{
    const char *state = str_of(o, "state");
    const char *phase = str_of(o, "phase");
    int pct = (int)int_of(o, "progress");
    char bd[32], bt[32];

    if (strcmp(state, "succeeded") == 0)
        pct = 100;
    if (pct == *last_pct && strcmp(phase, last_phase) == 0)
        return;
    human((uint64_t)int_of(o, "bytesDone"), bd, sizeof(bd));
    human((uint64_t)int_of(o, "bytesTotal"), bt, sizeof(bt));
    if (tty) {
        char bar[31];
        int fill = pct * 30 / 100;
        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[30] = '\0';
        printf("\r[%s] %3d%%  %s / %s  %lld/%lld files  %-10s", bar, pct, bd,
               bt, (long long)int_of(o, "filesDone"),
               (long long)int_of(o, "filesTotal"), phase[0] ? phase : state);
    } else {
        printf("progress %d%% %s/%s bytes=%s/%s files=%lld/%lld\n", pct, state,
               phase, bd, bt, (long long)int_of(o, "filesDone"),
               (long long)int_of(o, "filesTotal"));
    }
    fflush(stdout);
    *last_pct = pct;
    snprintf(last_phase, last_len, "%s", phase);
}

/* The end of a job: its result on stdout (0) or its error on stderr (1). */
static int report_end(json_t *o, const char *id, bool tty)
{
    if (tty)
        printf("\n");
    if (strcmp(str_of(o, "state"), "succeeded") == 0) {
        char *res = json_dumps(json_object_get(o, "result"),
                               JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("job %s succeeded\n%s\n", id, res ? res : "{}");
        free(res);
        return 0;
    }
    fprintf(stderr, "job %s failed: %s\n", id, str_of(o, "error"));
    return 1;
}

/* As PROTOCOL.md advises: subscribe to the job's channel first, then read
 * the status hash (the truth) again at every event, so the end is seen
 * when it is published; every WAIT_POLL_MS anyway (pub/sub is lossy), and
 * every 200 ms when the subscription cannot be had. */
#define WAIT_POLL_MS 1000
int cli_wait_job(struct q *q, const char *id)
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
    while (!cli_stop) {
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
            cli_sleep_ms(delay);
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
        render(o, tty, &last_pct, last_phase, sizeof(last_phase));
        state = str_of(o, "state");
        if (strcmp(state, "succeeded") == 0 || strcmp(state, "failed") == 0) {
            rc = report_end(o, id, tty);
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
            cli_sleep_ms(200);
        }
    }
    q_free(sub);
    wk_buf_release(&b);
    return rc;
}

int cli_wait_jobs(struct q *q, char (*ids)[JOB_ID_MAX + 1], size_t n)
{
    size_t done = 0, failed = 0, last = (size_t)-1;
    struct wk_err err;

    while (!cli_stop) {
        done = failed = 0;
        for (size_t i = 0; i < n; i++) {
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
            printf("progress %zu/%zu jobs done, %zu failed\n", done, n, failed);
        fflush(stdout);
        last = done;
        if (done == n)
            break;
        cli_sleep_ms(300);
    }
    return failed || done != n ? 1 : 0;
}
