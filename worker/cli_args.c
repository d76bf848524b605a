/*
 * cli_args: the one argument parser of the commands. A command describes
 * its options in a table (struct cli_opt) and its positionals and message
 * style in a struct cli_spec; cli_parse() walks argv in order, as every
 * command did by hand before: options spelled in full, a value taken from
 * the next argument, the first bad argument reported with the usage.
 */
#include <stdio.h>
#include <string.h>

#include "worker/cli_int.h"

bool cli_help(const struct cli_spec *s, int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(s->usage, stdout);
            return true;
        }
    return false;
}

int cli_usage(const struct cli_spec *s)
{
    fputs(s->usage, stderr);
    return 2;
}

static int unexpected(const struct cli_spec *s, const char *arg)
{
    if (s->flags & CLI_SAY_UNEXPECTED)
        fprintf(stderr, "sila-archiver %s: unexpected '%s'\n", s->name, arg);
    return cli_usage(s);
}

static const struct cli_opt *find_opt(const struct cli_spec *s, const char *arg)
{
    if (!s->opts || (s->flags & CLI_DASH_IS_POS))
        return NULL;
    for (const struct cli_opt *o = s->opts; o->name; o++)
        if (strcmp(o->name, arg) == 0)
            return o;
    return NULL;
}

/* The option o at argv[*i] (its value, if any, at argv[*i + 1]): CLI_GO,
 * or the exit code after a message. */
static int take_opt(const struct cli_spec *s, const struct cli_opt *o,
                    unsigned *seen, int argc, char **argv, int *i)
{
    unsigned bit = 1u << (o - s->opts);
    const char *arg = argv[*i];
    struct wk_err err;

    if (o->once && (*seen & bit))
        return unexpected(s, arg);
    *seen |= bit;
    if (o->kind == CLI_OPT_FLAG) {
        *(bool *)o->target = true;
        return CLI_GO;
    }
    if (*i + 1 >= argc)
        return unexpected(s, arg); /* no value */
    (*i)++;
    if (o->kind == CLI_OPT_STR) {
        *(const char **)o->target = argv[*i];
        return CLI_GO;
    }
    wk_err_clear(&err);
    if (o->set(o->target, o->name, argv[*i], &err) == WK_OK)
        return CLI_GO;
    fprintf(stderr, "sila-archiver %s: %s\n", s->name, err.msg);
    return (s->flags & CLI_USAGE_ON_VALUE) ? cli_usage(s) : 2;
}

int cli_parse(const struct cli_spec *s, int argc, char **argv,
              struct cli_args *out)
{
    unsigned seen = 0;
    int rc;

    /* the tables are the program's own: a bit per option in seen, room
     * for every positional in out->pos */
    WK_ASSERT(s->max_pos >= 0 && s->max_pos <= CLI_POS_MAX);
    if (s->opts)
        for (const struct cli_opt *o = s->opts; o->name; o++)
            WK_ASSERT(o - s->opts < 32);
    memset(out, 0, sizeof(*out));
    if (cli_help(s, argc, argv))
        return 0;
    for (int i = 1; i < argc; i++) {
        const struct cli_opt *o = find_opt(s, argv[i]);
        if (o) {
            if ((rc = take_opt(s, o, &seen, argc, argv, &i)) != CLI_GO)
                return rc;
        } else if ((argv[i][0] == '-' && !(s->flags & CLI_DASH_IS_POS)) ||
                   out->npos == s->max_pos) {
            return unexpected(s, argv[i]);
        } else {
            out->pos[out->npos++] = argv[i];
        }
    }
    if (out->npos < s->min_pos)
        return cli_usage(s);
    return CLI_GO;
}
