/*
 * cli_int: what the command files (cli_queue, cli_space, cli_ops) share
 * and nobody else needs: the one argument parser (cli_args.c), the exit
 * code rules and helpers every command uses (cli_util.c) and the
 * following of jobs (cli_progress.c).
 */
#ifndef WK_WORKER_CLI_INT_H
#define WK_WORKER_CLI_INT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/wk_err.h"
#include "jobs/job.h"

struct cfg;
struct json_t;
struct q;

/* ---- cli_args.c: one table-driven parser for every command ---- */

enum cli_opt_kind {
    CLI_OPT_FLAG, /* no value: *(bool *)target = true */
    CLI_OPT_STR,  /* the next argument: *(const char **)target */
    CLI_OPT_FN,   /* the next argument, given to set() */
};

/* One option, spelled in full ("--wait"; no abbreviation, no "=value").
 * An option that takes a value and ends argv is an unexpected argument;
 * its value is the next argument whatever it looks like. */
struct cli_opt {
    const char *name;
    enum cli_opt_kind kind;
    void *target;
    /* CLI_OPT_FN: stores value; any error rejects it (err->msg says
     * why) */
    enum wk_code (*set)(void *target, const char *name, const char *value,
                        struct wk_err *err);
    bool once; /* a second use is an unexpected argument */
};

enum cli_spec_flags {
    /* "sila-archiver <name>: unexpected '<arg>'" before the usage */
    CLI_SAY_UNEXPECTED = 1 << 0,
    /* the usage follows the message of a rejected value */
    CLI_USAGE_ON_VALUE = 1 << 1,
    /* no options: an argument that starts with '-' is a positional */
    CLI_DASH_IS_POS = 1 << 2,
};

#define CLI_POS_MAX 2

struct cli_spec {
    const char *name;           /* in messages: "sila-archiver <name>: " */
    const char *usage;          /* --help on stdout, errors on stderr */
    const struct cli_opt *opts; /* ends with a NULL name; NULL: none */
    int min_pos, max_pos;       /* positionals, max_pos <= CLI_POS_MAX */
    unsigned flags;             /* enum cli_spec_flags */
};

struct cli_args {
    char *pos[CLI_POS_MAX + 1]; /* NULL after the last */
    int npos;
};

/* What cli_parse() returns when the command goes on. */
#define CLI_GO (-1)

/* --help or -h anywhere in argv[1..]: the usage on stdout, true. */
bool cli_help(const struct cli_spec *s, int argc, char **argv);

/* argv[1..] against s, in order: CLI_GO, or the exit code once the help
 * (0) or a usage error (2) is printed. The first unexpected argument or
 * rejected value stops the parse. */
int cli_parse(const struct cli_spec *s, int argc, char **argv,
              struct cli_args *out);

/* The usage on stderr; returns 2. */
int cli_usage(const struct cli_spec *s);

/* ---- cli_util.c: what every command shares ---- */

#define CLI_REDIS_TIMEOUT_MS 10000

extern volatile sig_atomic_t cli_stop; /* SIGTERM or SIGINT seen */

/* "sila-archiver: <msg>" on stderr; the exit code: 2 for WK_E_INVAL, else
 * 1. */
int cli_fail(const struct wk_err *err);

/* The configuration from the environment: 0, or 2 after a message. */
int cli_load_cfg(struct cfg *cfg);

/* Connect to cfg's Redis with the CLI's timeout. */
enum wk_code cli_connect(const struct cfg *cfg, struct q **out,
                         struct wk_err *err);

/* "cli:<user>@<host>": who enqueued, for the audit trail. */
void cli_requester(char *buf, size_t len);

/* o as one compact line on stdout; takes the reference to o. */
void cli_print_json_line(struct json_t *o);

void cli_sleep_ms(unsigned ms);

/* ---- cli_progress.c: following jobs ---- */

/* Follow a job until it ends (a progress bar on a terminal, plain lines
 * otherwise): 0 succeeded, 1 failed. */
int cli_wait_job(struct q *q, const char *id);

/* Follow n jobs until all ended: 0 when all succeeded, else 1. */
int cli_wait_jobs(struct q *q, char (*ids)[JOB_ID_MAX + 1], size_t n);

#endif
