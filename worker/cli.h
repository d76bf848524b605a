/*
 * cli: the commands of the sila-archiver binary, one function each, as
 * main.c's dispatch table calls them: argv[0] is the command's name, the
 * return value the process's exit code (0 done, 1 failed, 2 bad usage or
 * configuration).
 */
#ifndef WK_WORKER_CLI_H
#define WK_WORKER_CLI_H

/* SIGTERM and SIGINT set the stop flag the commands watch; SIGPIPE is
 * ignored. */
void cli_install_signals(void);

/* cli_queue.c */
int cli_enqueue(int argc, char **argv);
int cli_status(int argc, char **argv);
int cli_jobs(int argc, char **argv);
int cli_stats(int argc, char **argv);
int cli_audit(int argc, char **argv);
int cli_retry(int argc, char **argv);

/* cli_space.c */
int cli_cat(int argc, char **argv);
int cli_export(int argc, char **argv);
int cli_presign(int argc, char **argv);

/* cli_ops.c */
int cli_worker(int argc, char **argv);
int cli_healthcheck(int argc, char **argv);
int cli_rekey(int argc, char **argv);
int cli_migrate_all(int argc, char **argv);
int cli_sweep(int argc, char **argv);

#endif
