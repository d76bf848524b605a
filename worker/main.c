/*
 * sila-archiver: the process entry: the allocator tuning, the libraries'
 * process-wide state (set up once, before any thread), the signals,
 * the overview usage and the dispatch of argv[1] to its command
 * (worker/cli_*.c).
 */
#include <stdio.h> /* first: it defines __GLIBC__ */
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <curl/curl.h>
#include <jansson.h>

#include "worker/cli.h"

#define SILA_VERSION "0.1.0"

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

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
} commands[] = {
    { "worker", cli_worker },
    { "enqueue", cli_enqueue },
    { "status", cli_status },
    { "cat", cli_cat },
    { "migrate-all", cli_migrate_all },
    { "jobs", cli_jobs },
    { "stats", cli_stats },
    { "audit", cli_audit },
    { "presign", cli_presign },
    { "export", cli_export },
    { "rekey", cli_rekey },
    { "healthcheck", cli_healthcheck },
    { "retry", cli_retry },
    { "sweep", cli_sweep },
};

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
    /* Once, before any thread: the job runners (worker.c) open S3 clients
     * at the same time, and this reference keeps libcurl initialised
     * between their jobs (each client's init and cleanup only count). The
     * JSON hash seed likewise. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fputs("sila-archiver: cannot initialise libcurl\n", stderr);
        return 1;
    }
    json_object_seed(0);
    cli_install_signals();
    if (!cmd || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 ||
        strcmp(cmd, "help") == 0) {
        fputs(usage_main, cmd ? stdout : stderr);
        return cmd ? 0 : 2;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("sila-archiver %s\n", SILA_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(cmd, commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "sila-archiver: unknown command '%s'\n\n%s", cmd,
            usage_main);
    return 2;
}
